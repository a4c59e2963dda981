//! Proof that a new key logs in: one API v4 call with the NEW key (Contact.get where
//! id = 'user_contact_id', plus the site key only if the profile has one), right after it
//! was assigned. Never retried; a failed check never undoes the assignment (it says what
//! to fix); the key is never shown or logged.

use crate::key::ApiKey;
use crate::store::rest::RestOptions;
use crate::store::rest::RestStore;
use crate::store::ContactId;
use crate::store::SiteLogin;

/// What logging in with the new key showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginCheck {
    pub ok: bool,
    /// The contact the key logged in as, if it did.
    pub contact_id: Option<ContactId>,
    /// Plain words: "logs in as contact 204", or authx's reason and what to do.
    pub detail: String,
}

impl LoginCheck {
    fn failed(contact_id: Option<ContactId>, detail: String) -> LoginCheck {
        LoginCheck {
            ok: false,
            contact_id,
            detail,
        }
    }

    /// `{"ok", "contact_id", "detail"}` for `rotate --json`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "ok": self.ok,
            "contact_id": self.contact_id,
            "detail": self.detail,
        })
    }
}

/// Logs in to `site` with `key`, which was just assigned to contact `expected`. The detail
/// passes the one redaction policy (the new key, the site key, key-like runs), whatever
/// part of it a site wrote.
pub fn check(site: &SiteLogin, key: &ApiKey, expected: ContactId) -> LoginCheck {
    let mut result = check_unhidden(site, key, expected);
    let secrets: Vec<&str> = [key.expose()]
        .into_iter()
        .chain(site.site_key.as_ref().map(|k| k.expose()))
        .collect();
    result.detail = crate::store::error::hide_secrets(&result.detail, &secrets);
    result
}

fn check_unhidden(site: &SiteLogin, key: &ApiKey, expected: ContactId) -> LoginCheck {
    let options = RestOptions {
        base_url: site.api_address.clone(),
        api_key: key.clone(),
        site_key: site.site_key.clone(),
        timeout: site.timeout,
    };
    let store = match RestStore::connect(&options) {
        Ok(store) => store,
        Err(e) => return LoginCheck::failed(None, format!("could not check the login: {e}")),
    };
    match store.whoami() {
        Ok(Some(id)) if id == expected => LoginCheck {
            ok: true,
            contact_id: Some(id),
            detail: format!("logs in as contact {id}"),
        },
        Ok(Some(id)) => LoginCheck::failed(
            Some(id),
            format!(
                "logs in, but as contact {id}: another contact holds the same key (letter case \
                 aside) and CiviCRM picks the lowest id; give contact {expected} another key"
            ),
        ),
        Ok(None) => LoginCheck::failed(
            None,
            "the key was accepted, but the login cannot see its own contact: no user account, \
             or no role with 'view my contact' or 'view all contacts'"
                .to_string(),
        ),
        Err(reason) => {
            let fix = if reason.contains("Must satisfy guard") {
                if site.site_key.is_some() {
                    "; the site key was sent and refused: check the profile's site key file"
                } else {
                    "; the user's role needs 'authenticate with api key', or the app must also send the site key"
                }
            } else if reason.contains("User is blocked") {
                "; unblock the user account in CiviCRM (Users)"
            } else if reason.contains("Invalid credential") {
                "; CiviCRM does not know this key: check that it was written to the same site"
            } else {
                ""
            };
            LoginCheck::failed(None, format!("does not log in: {reason}{fix}"))
        }
    }
}
