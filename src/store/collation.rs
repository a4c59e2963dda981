//! Text folding for name matching: case and accents ignored, as CiviCRM's MySQL collation
//! (utf8mb4_unicode_ci) matches names with `LIKE 'text%'`.
//!
//! `fold(text)` folds each character on its own, as `LIKE` compares them: Unicode full
//! case folding (the `caseless` crate), then compatibility decomposition (NFKD,
//! `unicode-normalization`) with every combining mark dropped. "José" and "JOSE" fold to
//! "jose", "Søren" and "SØREN" to "søren", "Иван" and "иван" to "иван", fullwidth letters
//! to ASCII. A character that would fold to several ("ß" to "ss", "ﬁ" to "fi", a Hangul
//! syllable to its jamo) stays one character, lowercased: MySQL's `LIKE` does not match
//! "Straße" with `strasse%` either.
//!
//! `tests/store_mysql.rs` (`folding_matches_as_civicrm_collation_does`) asks MariaDB itself
//! about a table of names and texts in many scripts and checks this folding agrees. Letters
//! that carry their mark in the letter itself (ø, ł, đ, ħ) stay themselves, as in
//! utf8mb4_unicode_ci ("soren" does not find "Søren" there either; the newer
//! utf8mb4_unicode_520_ci would). Not modelled: contractions of particular languages, and
//! characters the collation ignores (a hyphen or an apostrophe is a character here and
//! there).

use caseless::Caseless;
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// `text` folded for comparison; ASCII is only lowered, without allocating twice.
pub fn fold(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
            continue;
        }
        let mut folded = std::iter::once(c)
            .default_case_fold()
            .nfkd()
            .filter(|c| !is_combining_mark(*c));
        match (folded.next(), folded.next()) {
            (Some(one), None) => out.push(one),
            // A combining mark on its own (decomposed input): dropped.
            (None, _) => {}
            // An expansion: compared as the one character it is.
            (Some(_), Some(_)) => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// Whether `text`, folded, starts with `prefix` (already folded); ASCII text is compared
/// without folding a copy.
pub fn starts_with_folded(text: &str, prefix: &str) -> bool {
    if text.is_ascii() {
        return text.len() >= prefix.len()
            && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
            && prefix.is_ascii();
    }
    fold(text).starts_with(prefix)
}

#[cfg(test)]
mod tests {
    use super::{fold, starts_with_folded};

    #[test]
    fn folded_prefixes() {
        assert!(starts_with_folded("Carter", "car"));
        assert!(starts_with_folded("CARTER", "carter"));
        assert!(!starts_with_folded("Car", "cart"));
        assert!(starts_with_folded("José", "jose"));
        assert!(
            !starts_with_folded("Jose", "josé"),
            "a folded prefix has no accents"
        );
        assert!(starts_with_folded("Straße", "straß"));
        assert!(
            !starts_with_folded("Straße", "strass"),
            "ß is one character to LIKE"
        );
    }

    #[test]
    fn case_and_accents_fold_in_every_script() {
        for (a, b) in [
            ("José", "jose"),
            ("JOSÉ", "josé"),
            ("SØREN", "søren"),
            ("Иван", "иван"),
            ("Café Étoile", "cafe etoile"),
            ("Straße", "STRAẞE"),
            ("Jose\u{301}", "josé"),
            ("ΣΟΦΊΑ", "σοφια"),
            ("Müller", "MULLER"),
            ("ｔｅｓｔ", "test"),
            ("Nguyễn", "nguyen"),
            ("Đặng", "đang"),
        ] {
            assert_eq!(fold(a), fold(b), "{a} / {b}");
        }
        assert_ne!(fold("Søren"), fold("soren"), "ø has no decomposition");
        assert_ne!(
            fold("Иван"),
            fold("ivan"),
            "no transliteration across scripts"
        );
        assert_eq!(fold("山田"), "山田");
        assert_eq!(fold("김민준"), "김민준", "a syllable stays one character");
        assert_ne!(fold("Straße"), fold("strasse"), "ß is not expanded");
        assert_ne!(fold("ﬁona"), fold("fiona"), "nor is a ligature");
    }
}
