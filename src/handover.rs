//! What the app receiving a new key needs besides the key: the API v4 endpoint to call
//! and whether it must also send the site key. The "shown once" popup, `rotate`'s stderr
//! and `rotate --json` all say it from here. Never the site key itself: only whether the
//! app needs it.

use crate::sanitize::SafeText;
use crate::store::{Contact, SiteLogin, Standing};

/// The hand-over of one contact's new key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handover {
    /// The API v4 address the app calls, `{entity}` and `{action}` in it (the profile's
    /// site or `site_url`, or its `api_url` template); None where the profile names no site.
    pub endpoint: Option<SafeText>,
    /// Whether the app must also send the site key (`X-Civi-Key`): true without a user
    /// account or a role granting 'authenticate with api key'; None when unknown.
    pub needs_site_key: Option<bool>,
}

impl Handover {
    /// The hand-over for `contact`, judged from its standing as the warnings are
    /// ([`crate::assess::needs_site_key`]).
    pub fn new(site: Option<&SiteLogin>, contact: &Contact, standing: &Standing) -> Handover {
        Handover {
            endpoint: site.map(|s| SafeText::new(&s.api_address)),
            needs_site_key: crate::assess::needs_site_key(contact, standing),
        }
    }

    /// The lines the popup and `rotate`'s stderr show.
    pub fn lines(&self) -> Vec<String> {
        let endpoint = match &self.endpoint {
            Some(url) => format!("App endpoint (API v4): {url}"),
            None => "App endpoint (API v4): not known (the profile names no site_url)".into(),
        };
        let site_key = match self.needs_site_key {
            Some(true) => {
                "Site key: the app must ALSO send the site key (X-Civi-Key): no user account, or no role granting 'authenticate with api key'"
            }
            Some(false) => {
                "Site key: not needed; the app sends the key alone (X-Civi-Auth: Bearer KEY)"
            }
            None => {
                "Site key: unknown whether the app must also send it (civikey cannot read this contact's user and roles)"
            }
        };
        vec![endpoint, site_key.to_string()]
    }

    /// `{"api_endpoint", "needs_site_key"}` for `rotate --json` (null where unknown).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "api_endpoint": self.endpoint.as_ref().map(SafeText::lossless_json),
            "needs_site_key": self.needs_site_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::secret::Secret;
    use crate::store::CmsLink;

    fn contact(cms: CmsLink) -> Contact {
        Contact {
            id: 205,
            contact_type: SafeText::new("Individual"),
            display_name: SafeText::new("No User"),
            sort_name: SafeText::new("User, No"),
            email: None,
            is_deleted: false,
            key: None,
            cms,
        }
    }

    #[test]
    fn names_the_endpoint_and_the_site_key_need_never_the_site_key() {
        let site = SiteLogin {
            api_address: "https://crm.example.org/civicrm/ajax/api4/{entity}/{action}".into(),
            site_key: Some(Secret::new("SiteKeyValue0123456789xyz".into())),
            timeout: Duration::from_secs(5),
        };
        let h = Handover::new(
            Some(&site),
            &contact(CmsLink::None),
            &Standing::no_account(),
        );
        assert_eq!(h.needs_site_key, Some(true));
        let json = h.to_json().to_string();
        assert!(json.contains("https://crm.example.org/civicrm/ajax/api4/{entity}/{action}"));
        assert!(json.contains("\"needs_site_key\":true"));
        let all = format!("{json}{}", h.lines().join("\n"));
        assert!(!all.contains("SiteKeyValue"), "never the site key: {all}");

        let unknown = Handover::new(None, &contact(CmsLink::Unknown), &Standing::HIDDEN);
        assert_eq!(unknown.to_json()["needs_site_key"], serde_json::Value::Null);
        assert_eq!(unknown.to_json()["api_endpoint"], serde_json::Value::Null);
        assert!(unknown.lines()[1].contains("unknown"));
    }
}
