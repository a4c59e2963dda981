//! Keys out of error messages. A store's error text is untrusted: a MySQL trigger can
//! `SIGNAL` with `CONCAT(OLD.api_key, NEW.api_key)`, a REST site or `cv` can quote the
//! request. Every store error of a rotation passes [`store_error`] with the keys that
//! operation holds before it is shown or journaled, whichever store produced it.

use crate::key::ApiKey;
use crate::sanitize::SafeText;
use crate::store::StoreError;

/// What a hidden key is replaced with. No letter or digit run in it can be taken for a key.
pub const HIDDEN: &str = "[key hidden]";

/// `text` with every occurrence of each key replaced by [`HIDDEN`], compared ignoring
/// ASCII case (MySQL's collations do, so a trigger's `UPPER(NEW.api_key)` still is the
/// key). One pass: the replacement is never searched again, so a key cannot match inside
/// it. The longest key wins where two overlap.
pub fn hide_keys(text: &str, keys: &[&ApiKey]) -> String {
    // Copies of the keys, and of a text that quotes them: wiped when dropped.
    let mut needles: Vec<zeroize::Zeroizing<String>> = keys
        .iter()
        .map(|k| zeroize::Zeroizing::new(k.expose().to_ascii_lowercase()))
        .filter(|k| !k.is_empty())
        .collect();
    if needles.is_empty() {
        return text.to_string();
    }
    needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    // ASCII lowercasing keeps byte offsets and char boundaries.
    let lower = zeroize::Zeroizing::new(text.to_ascii_lowercase());
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while at < text.len() {
        if let Some(needle) = needles.iter().find(|n| lower[at..].starts_with(n.as_str())) {
            out.push_str(HIDDEN);
            at += needle.len();
            continue;
        }
        let Some(c) = text[at..].chars().next() else {
            break;
        };
        out.push(c);
        at += c.len_utf8();
    }
    out
}

/// The error with every one of `keys` hidden from its message.
pub fn store_error(e: StoreError, keys: &[&ApiKey]) -> StoreError {
    let hide = |text: SafeText| SafeText::new(&hide_keys(text.as_str(), keys));
    match e {
        StoreError::PermissionDenied(t) => StoreError::PermissionDenied(hide(t)),
        StoreError::ReadOnly(t) => StoreError::ReadOnly(hide(t)),
        StoreError::Unreachable(t) => StoreError::Unreachable(hide(t)),
        StoreError::Timeout(t) => StoreError::Timeout(hide(t)),
        StoreError::BadData(t) => StoreError::BadData(hide(t)),
        StoreError::OutcomeUnknown(t) => StoreError::OutcomeUnknown(hide(t)),
        StoreError::Invalid(t) => StoreError::Invalid(hide(t)),
        e @ (StoreError::NotFound(_) | StoreError::Conflict) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> ApiKey {
        ApiKey::from_store(text.to_string())
    }

    #[test]
    fn keys_are_hidden_in_any_case_and_when_joined() {
        let old = key("OldKeyOldKeyOldKeyOldKey01");
        let new = key("NewKeyNewKeyNewKeyNewKeyNewKey02");
        let text = "1644 trigger: OldKeyOldKeyOldKeyOldKey01NewKeyNewKeyNewKeyNewKeyNewKey02 / oldkeyoldkeyoldkeyoldkey01 (x)";
        let hidden = hide_keys(text, &[&old, &new]);
        assert_eq!(
            hidden,
            "1644 trigger: [key hidden][key hidden] / [key hidden] (x)"
        );
    }

    #[test]
    fn a_key_that_occurs_in_the_marker_cannot_loop() {
        for short in ["e", "key", "hidden", "[", "k"] {
            let k = key(short);
            let hidden = hide_keys("the key: hidden key e", &[&k]);
            assert!(
                !hidden
                    .to_ascii_lowercase()
                    .replace(HIDDEN, "")
                    .contains(short),
                "{short}: {hidden}"
            );
        }
        assert_eq!(hide_keys("abc", &[]), "abc");
        assert_eq!(hide_keys("Zoë ünï", &[&key("ü")]), "Zoë [key hidden]nï");
    }

    #[test]
    fn every_message_carrying_variant_is_redacted() {
        let k = key("AbCdEfGhIjKlMnOpQrStUvWxYz012345");
        let text = || SafeText::new("near AbCdEfGhIjKlMnOpQrStUvWxYz012345!");
        for e in [
            StoreError::PermissionDenied(text()),
            StoreError::ReadOnly(text()),
            StoreError::Unreachable(text()),
            StoreError::Timeout(text()),
            StoreError::BadData(text()),
            StoreError::OutcomeUnknown(text()),
            StoreError::Invalid(text()),
        ] {
            let shown = store_error(e, &[&k]).to_string();
            assert!(!shown.contains(k.expose()), "{shown}");
            assert!(shown.contains("near [key hidden]!"), "{shown}");
        }
    }
}
