//! A parsed API v4 answer ([`Reply`], wiped when dropped): its values as typed rows, its
//! error message, how many rows an update changed, and the permission trap as CiviCRM
//! reports it; and the size caps an answer is read under.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::sanitize::SafeText;
use crate::store::api4::wipe;
use crate::store::error::hide_secrets;
use crate::store::StoreError;

/// The largest answer read. A page of contacts is a few kilobytes; anything near this is a
/// misbehaving server, and reading it unbounded would let it exhaust memory.
pub(super) const MAX_BODY: u64 = 8 * 1024 * 1024;
/// Error bodies are only shown in part; no need to read more of them.
pub(super) const MAX_ERROR_BODY: u64 = 64 * 1024;

pub(super) const NO_EDIT_API_KEYS: &str = "the admin API key's user lacks the CiviCRM permission \
'edit api keys' (or 'administer CiviCRM'). CiviCRM then silently hides api_key from answers \
and ignores it in filters, so key states, uniqueness checks and compare-and-set cannot be \
trusted; civikey refuses to read or change keys through this key. Grant that permission to \
the admin user's role, or use another admin key";

pub(super) fn no_edit_api_keys() -> StoreError {
    StoreError::PermissionDenied(SafeText::new(NO_EDIT_API_KEYS))
}

/// A parsed answer, wiped on drop.
pub(super) struct Reply(pub(super) Value);

impl Drop for Reply {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

impl Reply {
    pub(super) fn error_message(&self) -> Option<String> {
        let map = self.0.as_object()?;
        if let Some(Value::String(m)) = map.get("status_message") {
            return Some(m.clone());
        }
        match map.get("error_message") {
            Some(Value::String(m)) => Some(m.clone()),
            Some(Value::Null) | None if map.contains_key("error_code") => {
                Some("an unnamed error".to_string())
            }
            Some(other) if !other.is_null() => Some(other.to_string()),
            _ => None,
        }
    }

    pub(super) fn records(&self) -> Result<&Vec<Value>, StoreError> {
        match self.0.get("values") {
            Some(Value::Array(values)) => Ok(values),
            _ => Err(StoreError::bad_data(
                "the site's answer has no list of values",
            )),
        }
    }

    /// The answer's rows, typed.
    pub(super) fn rows<T: DeserializeOwned>(&self) -> Result<Vec<T>, StoreError> {
        self.records()?
            .iter()
            .map(|record| {
                T::deserialize(record).map_err(|e| {
                    StoreError::bad_data(format!(
                        "a record in the site's answer is not what civikey asked for ({})",
                        hide_secrets(&e.to_string(), &[])
                    ))
                })
            })
            .collect()
    }

    /// The permission trap, as CiviCRM reports it (`debug.unauthorized_fields`).
    pub(super) fn refuse_trap(&self) -> Result<(), StoreError> {
        let named = self
            .0
            .pointer("/debug/unauthorized_fields")
            .and_then(Value::as_array)
            .is_some_and(|fields| fields.iter().any(|f| f.as_str() == Some("api_key")));
        if named {
            Err(no_edit_api_keys())
        } else {
            Ok(())
        }
    }

    /// How many rows an update changed.
    pub(super) fn count(&self) -> Option<u64> {
        self.0.get("count").and_then(Value::as_u64).or_else(|| {
            self.0
                .get("values")
                .and_then(Value::as_array)
                .map(|v| v.len() as u64)
        })
    }
}

pub(super) fn parse_reply(bytes: &[u8], content_type: &str) -> Result<Reply, String> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(value) if value.is_object() => Ok(Reply(value)),
        Ok(mut value) => {
            wipe(&mut value);
            Err("the answer is JSON but not an API v4 result object".to_string())
        }
        Err(_) if content_type.contains("html") || bytes.trim_ascii_start().starts_with(b"<") => {
            Err(
                "the site answered with a web page instead of API data (usually a login page: \
                 the admin key or site key was not accepted, or the site does not allow API keys)"
                    .to_string(),
            )
        }
        Err(e) if e.is_eof() => Err(
            "the answer was cut short (truncated JSON); the connection or a proxy dropped the rest"
                .to_string(),
        ),
        Err(e) => Err(format!("the answer is not valid JSON ({e})")),
    }
}
