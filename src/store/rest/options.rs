//! What a REST profile or `--store https://...` resolved to.

use std::time::Duration;

use crate::key::ApiKey;
use crate::secret::Secret;

#[derive(Debug, Clone)]
pub struct RestOptions {
    /// `https://SITE` (plain http only for loopback addresses), or an API v4 address
    /// template with `{entity}` and `{action}` (the profile's `api_url`, for WordPress
    /// without clean URLs and Joomla).
    pub base_url: String,
    /// The admin's API key, sent as `X-Civi-Auth: Bearer ...`.
    pub api_key: ApiKey,
    /// Sent as `X-Civi-Key` when present.
    pub site_key: Option<Secret>,
    pub timeout: Duration,
}
