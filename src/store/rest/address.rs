//! The REST store's address: the site address or an `api_url` template, checked before
//! anything is sent (https, or plain http to this machine only; no credentials in it).

use crate::sanitize::SafeText;
use crate::store::StoreError;

/// API v4's route under the site address (Standalone, Drupal, Backdrop, WordPress with
/// clean URLs).
const API_ROUTE: &str = "/civicrm/ajax/api4/{entity}/{action}";

/// The site address or an API v4 address template (with `{entity}` and `{action}`), checked:
/// the address for messages, the template, and whether it is plain http.
pub(crate) fn check_api_address(address: &str) -> Result<(String, String, bool), StoreError> {
    if !(address.contains("{entity}") || address.contains("{action}")) {
        let (base, plain_http) = check_base_url(address)?;
        let template = format!("{base}{API_ROUTE}");
        return Ok((base, template, plain_http));
    }
    let template = address.trim();
    let shown = SafeText::new(template);
    if !(template.contains("{entity}") && template.contains("{action}")) {
        return Err(StoreError::invalid(format!(
            "{shown}: an api_url template needs both {{entity}} and {{action}}"
        )));
    }
    if template.contains('#') {
        return Err(StoreError::invalid(format!(
            "{shown}: the api_url must not have a fragment"
        )));
    }
    // The template's query is allowed as written (WordPress's page=CiviCRM&q=..., Joomla's
    // option=com_civicrm&task=...), but never one that carries a credential.
    let example = template
        .replace("{entity}", "Contact")
        .replace("{action}", "get");
    let (before_query, query) = match example.split_once('?') {
        Some((path, query)) => (path.to_string(), Some(query.to_string())),
        None => (example.clone(), None),
    };
    if before_query.contains("{") || before_query.contains("}") {
        return Err(StoreError::invalid(format!(
            "{shown}: unknown placeholder in the api_url; only {{entity}} and {{action}} are replaced"
        )));
    }
    if let Some(query) = &query {
        for pair in query.split('&') {
            let name = pair.split('=').next().unwrap_or("").to_ascii_lowercase();
            if matches!(name.as_str(), "_authx" | "api_key" | "key" | "_civi_key") {
                return Err(StoreError::invalid(format!(
                    "{shown}: the api_url carries a credential ({name}=); credentials go in the \
                     profile's key files, never in the address"
                )));
            }
        }
    }
    let (_, plain_http) = check_base_url(&before_query)?;
    Ok((template.to_string(), template.to_string(), plain_http))
}

/// Validates the site address; returns it without a trailing slash, and whether it is
/// plain http (allowed for loopback hosts only).
fn check_base_url(address: &str) -> Result<(String, bool), StoreError> {
    let trimmed = address.trim().trim_end_matches('/');
    let shown = SafeText::new(trimmed);
    let uri: ureq::http::Uri = trimmed
        .parse()
        .map_err(|e| StoreError::invalid(format!("{shown} is not a valid site address: {e}")))?;
    let plain_http = match uri.scheme_str() {
        Some("https") => false,
        Some("http") => true,
        _ => {
            return Err(StoreError::invalid(format!(
                "{shown}: the site address must start with https://"
            )))
        }
    };
    let Some(authority) = uri.authority() else {
        return Err(StoreError::invalid(format!(
            "{shown}: the site address names no host"
        )));
    };
    if authority.as_str().contains('@') {
        return Err(StoreError::invalid(
            "the site address holds a user name or password; credentials go in the profile's \
             key files, never in the address",
        ));
    }
    if uri.query().is_some() || trimmed.contains('#') {
        return Err(StoreError::invalid(format!(
            "{shown}: the site address must not have a query or fragment; give the CiviCRM base URL"
        )));
    }
    if plain_http && !crate::store::address::is_loopback(authority.host()) {
        return Err(StoreError::invalid(format!(
            "{shown}: plain http would send the admin API key in clear text; use https:// \
             (http is allowed only for this machine: localhost, 127.0.0.0/8, ::1)"
        )));
    }
    Ok((trimmed.to_string(), plain_http))
}

/// A credential goes into an HTTP header: it must be visible ASCII without spaces (a space
/// splits a CiviCRM credential; a newline would end the header).
pub(super) fn check_header_secret(value: &str, what: &str) -> Result<(), StoreError> {
    if value.is_empty() {
        return Err(StoreError::invalid(format!("{what} is empty")));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(StoreError::invalid(format!(
            "{what} holds a space, a control or a non-ASCII character; check the file or variable it was read from"
        )));
    }
    Ok(())
}
