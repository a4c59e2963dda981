//! [`StoreError`], and the one place an error is made safe: [`StoreError::hiding`] hides
//! every secret a store and its operation hold, whatever the case, before the text is
//! shown, journaled or returned.
//!
//! A store's error text is untrusted: a MySQL trigger can `SIGNAL` with
//! `CONCAT(OLD.api_key, NEW.api_key)`, a REST site or `cv` can quote the request, its
//! headers or the SQL it failed on, upper- or lower-cased. The stores themselves do not
//! redact: every store is opened inside [`super::wrap::Wrapped`], which passes each error
//! through here with the admin key, the site key, the database password and the keys of
//! the call (old, new, looked up).

use std::fmt;

use super::ContactId;
use crate::sanitize::SafeText;

/// What a hidden secret is replaced with. No letter or digit run in it can be taken for a
/// key, and no secret can match inside it (see [`hide_secrets`]).
pub const HIDDEN: &str = "[hidden]";

/// A run of this many ASCII letters and digits is taken for a key even when it is none of
/// the secrets civikey holds: a site's error may quote another contact's key (cv's PHP
/// errors quote the SQL they failed on). CiviCRM's keys are at least this long, and words
/// of text are not.
pub const KEY_LIKE_RUN: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("contact {0} was not found")]
    NotFound(ContactId),
    #[error(
        "the key changed since it was read (another writer got there first); nothing was written"
    )]
    Conflict,
    #[error("permission denied: {0}")]
    PermissionDenied(SafeText),
    #[error("the store is read-only: {0}")]
    ReadOnly(SafeText),
    #[error("the store cannot be reached: {0}")]
    Unreachable(SafeText),
    #[error("the store did not answer in time: {0}")]
    Timeout(SafeText),
    #[error("the store answered with something civikey cannot use: {0}")]
    BadData(SafeText),
    /// The answer was larger than civikey reads (REST's cap): a whole-site read asks again
    /// for a smaller page.
    #[error("the store's answer was too large: {0}")]
    TooLarge(SafeText),
    #[error("the outcome is unknown (the request may or may not have been applied): {0}")]
    OutcomeUnknown(SafeText),
    #[error("{0}")]
    Invalid(SafeText),
}

impl StoreError {
    pub fn bad_data(message: impl fmt::Display) -> Self {
        StoreError::BadData(SafeText::new(&message.to_string()))
    }
    pub fn unreachable(message: impl fmt::Display) -> Self {
        StoreError::Unreachable(SafeText::new(&message.to_string()))
    }
    pub fn invalid(message: impl fmt::Display) -> Self {
        StoreError::Invalid(SafeText::new(&message.to_string()))
    }

    /// The error with every one of `secrets` (and anything else that looks like a key)
    /// hidden from its message: the one redaction policy.
    pub fn hiding(self, secrets: &[&str]) -> StoreError {
        let hide = |text: SafeText| SafeText::new(&hide_secrets(text.as_str(), secrets));
        match self {
            StoreError::PermissionDenied(t) => StoreError::PermissionDenied(hide(t)),
            StoreError::ReadOnly(t) => StoreError::ReadOnly(hide(t)),
            StoreError::Unreachable(t) => StoreError::Unreachable(hide(t)),
            StoreError::Timeout(t) => StoreError::Timeout(hide(t)),
            StoreError::BadData(t) => StoreError::BadData(hide(t)),
            StoreError::TooLarge(t) => StoreError::TooLarge(hide(t)),
            StoreError::OutcomeUnknown(t) => StoreError::OutcomeUnknown(hide(t)),
            StoreError::Invalid(t) => StoreError::Invalid(hide(t)),
            e @ (StoreError::NotFound(_) | StoreError::Conflict) => e,
        }
    }
    /// The same error again, for each of the swaps one failed request was for.
    pub fn again(&self) -> StoreError {
        match self {
            StoreError::NotFound(id) => StoreError::NotFound(*id),
            StoreError::Conflict => StoreError::Conflict,
            StoreError::PermissionDenied(t) => StoreError::PermissionDenied(t.clone()),
            StoreError::ReadOnly(t) => StoreError::ReadOnly(t.clone()),
            StoreError::Unreachable(t) => StoreError::Unreachable(t.clone()),
            StoreError::Timeout(t) => StoreError::Timeout(t.clone()),
            StoreError::BadData(t) => StoreError::BadData(t.clone()),
            StoreError::TooLarge(t) => StoreError::TooLarge(t.clone()),
            StoreError::OutcomeUnknown(t) => StoreError::OutcomeUnknown(t.clone()),
            StoreError::Invalid(t) => StoreError::Invalid(t.clone()),
        }
    }
}

/// `text` with every occurrence of each secret replaced by [`HIDDEN`], compared ignoring
/// ASCII case (MySQL's collations do, so a trigger's `UPPER(NEW.api_key)` still is the
/// key; a site may echo a header upper-cased), then every run of [`KEY_LIKE_RUN`] or more
/// ASCII letters and digits hidden too. One pass each: a replacement is never searched
/// again, so a secret cannot match inside it. The longest secret wins where two overlap.
pub fn hide_secrets(text: &str, secrets: &[&str]) -> String {
    // Copies of the secrets, and of a text that quotes them: wiped when dropped.
    let mut needles: Vec<zeroize::Zeroizing<String>> = secrets
        .iter()
        .map(|s| zeroize::Zeroizing::new(s.to_ascii_lowercase()))
        .filter(|s| !s.is_empty())
        .collect();
    needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    // ASCII lowercasing keeps byte offsets and char boundaries.
    let lower = zeroize::Zeroizing::new(text.to_ascii_lowercase());
    let mut out = String::with_capacity(text.len());
    let mut run = zeroize::Zeroizing::new(String::new());
    let mut at = 0;
    while at < text.len() {
        if let Some(needle) = needles.iter().find(|n| lower[at..].starts_with(n.as_str())) {
            flush_run(&mut out, &mut run);
            out.push_str(HIDDEN);
            at += needle.len();
            continue;
        }
        let Some(c) = text[at..].chars().next() else {
            break;
        };
        if c.is_ascii_alphanumeric() {
            run.push(c);
        } else {
            flush_run(&mut out, &mut run);
            out.push(c);
        }
        at += c.len_utf8();
    }
    flush_run(&mut out, &mut run);
    out
}

fn flush_run(out: &mut String, run: &mut String) {
    if run.len() >= KEY_LIKE_RUN {
        out.push_str(HIDDEN);
    } else {
        out.push_str(run);
    }
    run.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_hidden_in_any_case_and_when_joined() {
        let old = "OldKeyOldKeyOldKeyOldKey01";
        let new = "NewKeyNewKeyNewKeyNewKeyNewKey02";
        let text = "1644 trigger: OldKeyOldKeyOldKeyOldKey01NewKeyNewKeyNewKeyNewKeyNewKey02 / oldkeyoldkeyoldkeyoldkey01 (x) BEARER NEWKEYNEWKEYNEWKEYNEWKEYNEWKEY02.";
        assert_eq!(
            hide_secrets(text, &[old, new]),
            "1644 trigger: [hidden][hidden] / [hidden] (x) BEARER [hidden]."
        );
    }

    #[test]
    fn short_secrets_and_key_like_runs_are_hidden() {
        // A site key or password shorter than a key, inside a word, any case.
        assert_eq!(
            hide_secrets("auth: x-civi-key=S3cr3t; pw=s3CR3Tish", &["s3cr3t"]),
            "auth: x-civi-key=[hidden]; pw=[hidden]ish"
        );
        // 19 letters stay, 20 go: a key nobody told civikey about.
        assert_eq!(
            hide_secrets("abcdefghijklmnopqrs abcdefghijklmnopqrst", &[]),
            "abcdefghijklmnopqrs [hidden]"
        );
    }

    #[test]
    fn a_secret_that_occurs_in_the_marker_cannot_loop() {
        for short in ["e", "key", "hidden", "[", "k"] {
            let hidden = hide_secrets("the key: hidden key e", &[short]);
            assert!(
                !hidden
                    .to_ascii_lowercase()
                    .replace(HIDDEN, "")
                    .contains(short),
                "{short}: {hidden}"
            );
        }
        assert_eq!(hide_secrets("abc", &[]), "abc");
        assert_eq!(hide_secrets("Zoë ünï", &["ü"]), "Zoë [hidden]nï");
    }

    #[test]
    fn every_message_carrying_variant_is_redacted() {
        let k = "AbCdEfGhIjKlMnOpQrStUvWxYz012345";
        let text = || SafeText::new("near abcdefghijklmnopqrstuvwxyz012345!");
        for e in [
            StoreError::PermissionDenied(text()),
            StoreError::ReadOnly(text()),
            StoreError::Unreachable(text()),
            StoreError::Timeout(text()),
            StoreError::BadData(text()),
            StoreError::OutcomeUnknown(text()),
            StoreError::Invalid(text()),
        ] {
            let shown = e.hiding(&[k]).to_string();
            assert!(
                !shown.to_ascii_lowercase().contains(&k.to_ascii_lowercase()),
                "{shown}"
            );
            assert!(shown.contains("near [hidden]!"), "{shown}");
        }
    }
}
