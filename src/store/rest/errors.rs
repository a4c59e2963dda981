//! What a REST answer means: the API v4 result, or the StoreError that says what went
//! wrong (authentication, permissions, maintenance, redirects, a lost answer), with every
//! secret of the call hidden from the site's text before it is cut to length.

use serde_json::Value;

use super::reply::{no_edit_api_keys, parse_reply, Reply, MAX_BODY, MAX_ERROR_BODY};
use crate::sanitize::SafeText;
use crate::store::api4::rows::{contacts_of, ContactRow};
use crate::store::error::hide_secrets;
use crate::store::{Contact, StoreError};

/// Columns of server text quoted in one error message.
pub(super) const MAX_SHOWN: usize = 300;

/// Whether a request may have changed the site: decides how a lost answer is reported.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Call {
    Read,
    Write,
}

/// One call's particulars, for judging its answer.
pub(super) struct Exchange<'a> {
    pub(super) url: &'a str,
    pub(super) kind: Call,
    /// Values that must not come back in an error message (CiviCRM error texts may quote
    /// the request): the admin key, the site key, keys in the request.
    pub(super) secrets: Vec<&'a str>,
    pub(super) site_key_sent: bool,
}

/// An HTTP answer (status, lowercased content type, redirect target, body read up to the
/// cap) into the API v4 result or the StoreError that says what went wrong.
pub(super) fn judge_answer(
    x: &Exchange<'_>,
    status: u16,
    content_type: &str,
    location: Option<&str>,
    bytes: &[u8],
    too_big: bool,
) -> Result<Reply, StoreError> {
    let url = x.url;
    let redact = |text: &str| shown(text, &x.secrets);

    if status == 200 {
        if too_big {
            let why = format!(
                "{url} sent an answer larger than {} MiB; civikey stopped reading it",
                MAX_BODY / (1024 * 1024)
            );
            return Err(match x.kind {
                Call::Read => StoreError::TooLarge(SafeText::new(&why)),
                Call::Write => unknown_after_ok(&why),
            });
        }
        return match parse_reply(bytes, content_type) {
            Ok(reply) => match reply.error_message() {
                // API v4 reports errors by status, but a proxy or an old version may not.
                Some(message) => Err(StoreError::bad_data(format!(
                    "the site reported an error: {}",
                    redact(&message)
                ))),
                None => Ok(reply),
            },
            Err(why) => Err(match x.kind {
                Call::Read => StoreError::bad_data(format!("{url}: {why}")),
                Call::Write => unknown_after_ok(&why),
            }),
        };
    }

    let json_message = serde_json::from_slice::<Value>(bytes)
        .ok()
        .map(Reply)
        .and_then(|r| r.error_message());
    let message = match &json_message {
        Some(m) => redact(m),
        None if content_type.starts_with("text/plain") => redact(&String::from_utf8_lossy(bytes)),
        None => String::new(),
    };
    let detail = if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    };
    // Without 'view debug output' CiviCRM answers a generic text; the real message is in
    // its log under this id.
    let error_id = serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| {
            v.get("error_id")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .or_else(|| {
            let at = message.find("(Error ID: ")? + "(Error ID: ".len();
            message[at..].split(')').next().map(str::to_string)
        })
        .map(|id| {
            format!(
                "; the site admin finds the details in CiviCRM's log under Error ID {}",
                SafeText::new(&id)
            )
        })
        .unwrap_or_default();
    Err(match status {
        400 => StoreError::invalid(format!(
            "{url} did not recognise the request as an API call (HTTP 400){detail}. CiviCRM \
             answers so when a request carries neither credentials nor X-Requested-With: \
             check that nothing between civikey and the site strips headers"
        )),
        401 => {
            let hint = if message.contains("Must satisfy guard") {
                format!(
                    "the admin key logs in only with the site key or when its user's role \
                     grants 'authenticate with api key': {}",
                    if x.site_key_sent {
                        "the site key sent is wrong (check site_key_file), or grant that permission"
                    } else {
                        "add the site key to the profile (site_key_file) or grant that permission"
                    }
                )
            } else if message.contains("User is blocked") {
                "the admin key's user account is blocked; unblock it in CiviCRM (Users)".to_string()
            } else {
                format!(
                    "check the admin API key{}, and that its contact's user may \
                     'authenticate with api key'",
                    if x.site_key_sent {
                        " and the site key"
                    } else {
                        ""
                    }
                )
            };
            StoreError::PermissionDenied(SafeText::new(&format!(
                "authentication failed (HTTP 401){detail}. {hint}"
            )))
        }
        403 if x.kind == Call::Write => StoreError::PermissionDenied(SafeText::new(&format!(
            "permission denied: the site refused to change the key (HTTP 403){detail}{error_id}. \
             The admin user's role needs the CiviCRM permission 'edit api keys' (or \
             'administer CiviCRM') and may edit this contact; nothing was changed"
        ))),
        403 => StoreError::PermissionDenied(SafeText::new(&format!(
            "the site refused the request (HTTP 403){detail}{error_id}. The admin user's role \
             lacks a permission civikey needs (see docs/SECURITY.md: 'edit api keys', 'view all \
             contacts', 'access deleted contacts', 'access AJAX API')"
        ))),
        404 => StoreError::invalid(format!(
            "{url} answered 404: no CiviCRM API v4 there; check the site address \
             (the CiviCRM base URL, without /civicrm)"
        )),
        405 => StoreError::invalid(format!(
            "{url} refused the request method (HTTP 405){detail}"
        )),
        503 => StoreError::unreachable(format!(
            "site in maintenance mode or overloaded (HTTP 503){detail}; nothing was done, try \
             again later"
        )),
        300..=399 => StoreError::invalid(format!(
            "{url} redirected (HTTP {status}) to {}; civikey does not resend credentials \
             to another address: set the profile's address to the site's final https URL",
            location.unwrap_or("an unnamed location")
        )),
        // CiviCRM's own exception handler answered: the API call failed and its
        // transaction was rolled back, so even an update did not apply.
        500 if json_message.is_some() => StoreError::bad_data(format!(
            "the site reported an error (HTTP 500){detail}{error_id}"
        )),
        // A success other than 200 is not API v4's answer: the update may have applied.
        201..=299 if x.kind == Call::Write => unknown_after_ok(&format!("HTTP {status}")),
        500..=599 if x.kind == Call::Write => StoreError::OutcomeUnknown(SafeText::new(&format!(
            "the update reached {url} but it answered HTTP {status} without an API error \
             (a crash or a gateway){detail}; it may or may not have been applied: look at \
             the contact again before retrying"
        ))),
        502 | 504 => StoreError::unreachable(format!(
            "a gateway in front of the site failed (HTTP {status}){detail}"
        )),
        _ => StoreError::bad_data(format!("{url} answered HTTP {status}{detail}")),
    })
}

/// The answer to a Contact.get, judged exactly as a live call judges it but with no network:
/// an HTTP status, a content type and a body in; the contacts, or the StoreError the
/// operator would see, out. An entry point for the property tests (tests/proptest_rest.rs).
pub fn parse_contacts_answer(
    status: u16,
    content_type: &str,
    body: &[u8],
) -> Result<Vec<Contact>, StoreError> {
    let limit = if status == 200 {
        MAX_BODY
    } else {
        MAX_ERROR_BODY
    };
    let exchange = Exchange {
        url: "https://civicrm.invalid/civicrm/ajax/api4/Contact/get",
        kind: Call::Read,
        secrets: Vec::new(),
        site_key_sent: false,
    };
    let body = &body[..body.len().min(limit as usize + 1)];
    let reply = judge_answer(
        &exchange,
        status,
        &content_type.to_ascii_lowercase(),
        None,
        body,
        body.len() as u64 > limit,
    )?;
    reply.refuse_trap()?;
    contacts_of(reply.rows::<ContactRow>()?, no_edit_api_keys)
}

/// The site's `text` as an error quotes it: every one of `secrets` (and anything else that
/// looks like a key) hidden by the one policy, then cut to [`MAX_SHOWN`] columns. Hidden
/// first: a key cut in half would no longer be recognised.
pub(super) fn shown(text: &str, secrets: &[&str]) -> String {
    SafeText::new(&hide_secrets(text, secrets)).truncated(MAX_SHOWN)
}

pub(super) fn unknown_after_ok(why: &str) -> StoreError {
    StoreError::OutcomeUnknown(SafeText::new(&format!(
        "the site accepted the update but its answer could not be read ({why}); it may or may \
         not have been applied: look at the contact again before retrying"
    )))
}
