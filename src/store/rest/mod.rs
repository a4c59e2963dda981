//! The CiviCRM REST API v4 store: `POST {site}/civicrm/ajax/api4/Contact/{get|update}`
//! (or the profile's address template, for CMSs that route API v4 through a query string).
//!
//! Everything here follows CiviCRM's documented behaviour (shared/CIVICRM.md, "REST API
//! v4"): credentials travel only in headers (never in the URL, where web server logs would
//! keep them), deleted contacts are asked for explicitly (API v4 hides them unless
//! `is_deleted` is in the where clause), and the permission trap is detected: without
//! `edit api keys`, CiviCRM silently drops `api_key` from select AND where, so a filter on
//! a key would match every contact. Any answer missing `api_key` is therefore refused.
//!
//! What it shares with the cv store (clauses, rows, the key steps, users and roles) is in
//! `store/api4/`; here: the address (`address.rs`), HTTP and the form body (`wire.rs`),
//! an answer (`reply.rs`) and what it means (`errors.rs`), the calls the shared steps
//! make (`calls.rs`), the searches (`search.rs`, `order.rs`) and CMS links (`links.rs`).

mod address;
mod calls;
mod errors;
mod links;
mod options;
mod order;
mod reply;
mod search;
mod wire;

pub(crate) use address::check_api_address;
pub use errors::parse_contacts_answer;
pub use options::RestOptions;
pub use order::site_order;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::key::{ApiKey, KEY_LEN};
use crate::sanitize::SafeText;
use crate::secret::Secret;
use crate::store::api4::{self, users};
use crate::store::{
    CmsLink, Contact, ContactId, ContactStore, HolderCursor, HolderPage, Page, Query, SiteLogin,
    Standing, StoreError, StoreInfo,
};

pub struct RestStore {
    agent: ureq::Agent,
    /// The API v4 address with `{entity}` and `{action}` in it; holds no credentials.
    template: String,
    /// Where the site is, for messages: the site address, or the template.
    base: String,
    api_key: ApiKey,
    site_key: Option<Secret>,
    timeout: Duration,
    /// A keystroke's links calls came back full (a site where many contacts have CMS
    /// users): its keystrokes then take two requests anyway, and from then on skip the
    /// links calls and the page's fields in the first (`search_by_prefixes`).
    many_users: AtomicBool,
    /// Whether the admin may see every user (`users::seen`), once asked.
    users_seen: std::sync::OnceLock<users::Seen>,
}

impl fmt::Debug for RestStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestStore")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl RestStore {
    /// Checks the address and credentials and prepares the HTTP client. Sends nothing:
    /// every call reports its own failure (401, maintenance, the permission trap) clearly,
    /// so opening stays instant and the first screen is not held up by the network.
    pub fn connect(opts: &RestOptions) -> Result<Self, StoreError> {
        let (base, template, plain_http) = check_api_address(&opts.base_url)?;
        address::check_header_secret(opts.api_key.expose(), "the admin API key")?;
        if let Some(site_key) = &opts.site_key {
            address::check_header_secret(site_key.expose(), "the site key")?;
        }
        if opts.timeout.is_zero() {
            return Err(StoreError::invalid(
                "the REST store's timeout must be more than 0 seconds",
            ));
        }
        let mut config = ureq::Agent::config_builder()
            // Error statuses carry CiviCRM's error_message: read them rather than fail early.
            .http_status_as_error(false)
            // A redirect would resend the credential headers to wherever it points, and turn
            // the POST into a GET: stop and tell the operator the right address instead.
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_connect(Some(opts.timeout))
            .timeout_global(Some(opts.timeout))
            .user_agent(concat!("civikey/", env!("CARGO_PKG_VERSION")))
            .accept("application/json");
        if plain_http {
            // Plain http is allowed only to this machine; a proxy would carry the key off it
            // in clear text.
            config = config.proxy(None);
        } else {
            config = config.https_only(true);
        }
        Ok(RestStore {
            agent: config.build().into(),
            template,
            base,
            api_key: opts.api_key.clone(),
            site_key: opts.site_key.clone(),
            timeout: opts.timeout,
            many_users: AtomicBool::new(false),
            users_seen: std::sync::OnceLock::new(),
        })
    }

    /// The address of `entity`.`action`.
    fn url(&self, entity: &str, action: &str) -> String {
        self.template
            .replace("{entity}", entity)
            .replace("{action}", action)
    }

    /// The address of several API v4 calls in one request (form field `calls`): the
    /// route without its entity and action.
    fn multi_url(&self) -> String {
        self.template.replace("/{entity}/{action}", "")
    }

    /// What to log in with to check a new key on this site (the login check).
    pub fn site_login(&self) -> SiteLogin {
        SiteLogin {
            api_address: self.template.clone(),
            site_key: self.site_key.clone(),
            timeout: self.timeout,
        }
    }
}

impl ContactStore for RestStore {
    fn info(&self) -> StoreInfo {
        StoreInfo {
            kind: crate::store::StoreKind::Rest,
            location: SafeText::new(&self.base),
            key_capacity: KEY_LEN,
            keys_case_insensitive: true,
            writable: true,
        }
    }

    fn login_site(&self) -> Option<SiteLogin> {
        Some(self.site_login())
    }

    /// Through User.get and Role.get on a Standalone site (every contact's user hidden when
    /// the admin may not see every user); elsewhere only whether a CMS user exists, roles
    /// unknown.
    fn standings(&mut self, ids: &[ContactId]) -> Result<HashMap<ContactId, Standing>, StoreError> {
        if let Some(found) = users::users(self, ids)? {
            return Ok(found);
        }
        let links = self.cms_links(ids)?;
        Ok(ids
            .iter()
            .map(|&id| {
                let standing = match links.get(&id) {
                    Some(CmsLink::None) => Standing::no_account(),
                    _ => Standing::UNKNOWN,
                };
                (id, standing)
            })
            .collect())
    }

    fn search(&mut self, query: &Query) -> Result<Page, StoreError> {
        self.search_page(query)
    }

    fn contact(&mut self, id: ContactId) -> Result<Contact, StoreError> {
        let mut found = self.contacts_by_ids(&[id])?;
        match found.pop() {
            Some(c) if c.id == id && found.is_empty() => Ok(c),
            Some(_) => Err(StoreError::bad_data(format!(
                "the site answered a lookup of contact {id} with other or several contacts"
            ))),
            None => Err(StoreError::NotFound(id)),
        }
    }

    /// A page of ids per call, then their CMS links in one more call.
    fn contacts(&mut self, ids: &[ContactId]) -> Result<Vec<Contact>, StoreError> {
        api4::contacts_in_order(ids, |chunk| self.contacts_by_ids(chunk))
    }

    fn key_holders(
        &mut self,
        after: Option<&HolderCursor>,
        limit: usize,
    ) -> Result<HolderPage, StoreError> {
        self.holders_page(after, limit)
    }

    api4::key_steps!();
}
