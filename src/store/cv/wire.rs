//! cv's side of the wire: the params on stdin (with `checkPermissions` when acting as a
//! `cv_user`), and the rows out of what cv printed (possibly after PHP's warnings).

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};

use super::errors::{redact, FailKind, Failure};
use crate::key::ApiKey;

/// How many lines that look like the start of JSON are tried when cv printed warnings
/// first: bounds the work on hostile output.
pub(super) const MAX_JSON_CANDIDATES: usize = 50;

/// A call's params with `"checkPermissions": true` added when the store acts as a
/// `cv_user` (serialized in place: no copy of a key is made).
#[derive(Serialize)]
pub(super) struct Checked<'a, T: Serialize> {
    #[serde(flatten)]
    pub(super) params: &'a T,
    #[serde(rename = "checkPermissions", skip_serializing_if = "Option::is_none")]
    pub(super) check_permissions: Option<bool>,
}

#[derive(Deserialize)]
pub(super) struct Envelope<T> {
    values: Vec<T>,
}

#[derive(Deserialize)]
pub(super) struct ErrorBody {
    error_message: String,
}

/// cv's rows: a JSON list (or an API result object with `values`), possibly after lines
/// PHP printed first. Only a parse that consumes the whole rest of the output counts, so a
/// warning cannot pass for the answer; the output itself never goes into a message.
pub(super) fn parse_rows<T: DeserializeOwned>(
    out: &[u8],
    secrets: &[&ApiKey],
) -> Result<Vec<T>, Failure> {
    for start in json_candidates(out).take(MAX_JSON_CANDIDATES) {
        let rest = &out[start..];
        let as_list = match serde_json::from_slice::<Vec<T>>(rest) {
            Ok(rows) => return Ok(rows),
            Err(e) => e,
        };
        if let Ok(envelope) = serde_json::from_slice::<Envelope<T>>(rest) {
            return Ok(envelope.values);
        }
        if let Ok(body) = serde_json::from_slice::<ErrorBody>(rest) {
            return Err(Failure::ran(
                FailKind::Exit,
                format!(
                    "cv answered with an error: {}",
                    redact(&body.error_message, secrets)
                ),
            ));
        }
        if serde_json::from_slice::<IgnoredAny>(rest).is_ok() {
            return Err(Failure::ran(
                FailKind::Output,
                format!(
                    "cv's JSON is not the contact list civikey asked for ({})",
                    redact(&as_list.to_string(), secrets)
                ),
            ));
        }
    }
    let what = if out.iter().all(u8::is_ascii_whitespace) {
        "cv printed nothing".to_string()
    } else {
        format!(
            "cv did not print JSON ({} bytes of other output)",
            out.len()
        )
    };
    Err(Failure::ran(
        FailKind::Output,
        format!("{what}; run `cv api4 Contact.get +l 1` in the site folder to see what it prints"),
    ))
}

/// Offsets of the lines that start (after blanks) with `[` or `{`.
pub(super) fn json_candidates(out: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let line_starts = std::iter::once(0).chain(
        out.iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i + 1),
    );
    line_starts.filter_map(move |start| {
        let skip = out[start..]
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t' | b'\r'))
            .count();
        let at = start + skip;
        matches!(out.get(at), Some(b'[' | b'{')).then_some(at)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::api4::clause::{starts, GetParams, LIST_ORDER};
    use crate::store::api4::rows::{KeyRow, KEY_FIELDS};
    use crate::store::StoreError;

    #[test]
    fn acting_as_a_cv_user_asks_for_permission_checks_at_the_end() {
        let get = GetParams::new(KEY_FIELDS, vec![starts("sort_name", "ad")])
            .order(LIST_ORDER)
            .limit(8);
        let plain = serde_json::to_string(&get).unwrap();
        let checked = Checked {
            params: &get,
            check_permissions: Some(true),
        };
        assert_eq!(
            serde_json::to_string(&checked).unwrap(),
            format!("{},\"checkPermissions\":true}}", &plain[..plain.len() - 1])
        );
        let unchecked = Checked {
            params: &get,
            check_permissions: None,
        };
        assert_eq!(serde_json::to_string(&unchecked).unwrap(), plain);
    }

    #[test]
    fn json_after_php_warnings_is_found_and_junk_is_not_taken() {
        let out = b"PHP Warning:  Undefined array key \"x\" in /var/www/a.php on line 3\n[warn] {not json\n  [{\"id\":1,\"api_key\":null}]\n";
        let rows: Vec<KeyRow> = parse_rows(out, &[]).ok().unwrap();
        assert_eq!(rows.len(), 1);
        let key = rows
            .into_iter()
            .next()
            .unwrap()
            .key(|| StoreError::Conflict);
        assert!(matches!(key, Ok(None)));
        // JSON followed by junk is not an answer.
        assert!(parse_rows::<KeyRow>(b"[]\nDeprecated: x\n", &[]).is_err());
        let envelope: Vec<KeyRow> =
            parse_rows(br#"{"values":[{"id":"3","api_key":"k"}],"count":1}"#, &[])
                .ok()
                .unwrap();
        assert_eq!(envelope[0].id, 3);
    }
}
