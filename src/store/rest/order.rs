//! The order of a keystroke page where the REST store can be sure of it without the
//! site's collation (so it need not ask the site to order the page).

use std::cmp::Ordering;

/// How MariaDB's `utf8mb4_unicode_ci` (CiviCRM's usual collation: case and accents
/// ignored, trailing spaces ignored) orders two sort names, where that is certain without
/// its weight tables: the same characters, ASCII letters in any case, then at the first
/// difference two ASCII characters of different kinds (space, then punctuation, then
/// digits, then letters) or two digits or two letters. None where only the collation can
/// tell (punctuation against punctuation, anything outside ASCII, control characters).
pub fn site_order(a: &str, b: &str) -> Option<Ordering> {
    let (mut x, mut y) = (a.chars(), b.chars());
    loop {
        match (x.next(), y.next()) {
            (None, None) => return Some(Ordering::Equal),
            // The shorter is padded with spaces: before a digit or a letter.
            (Some(c), None) => return (ascii_kind(c)? >= 2).then_some(Ordering::Greater),
            (None, Some(d)) => return (ascii_kind(d)? >= 2).then_some(Ordering::Less),
            (Some(c), Some(d)) if c == d || (c.is_ascii() && c.eq_ignore_ascii_case(&d)) => {}
            (Some(c), Some(d)) => {
                let (k, l) = (ascii_kind(c)?, ascii_kind(d)?);
                return match k.cmp(&l) {
                    Ordering::Equal if k == 1 => None,
                    Ordering::Equal => Some(c.to_ascii_lowercase().cmp(&d.to_ascii_lowercase())),
                    other => Some(other),
                };
            }
        }
    }
}

/// Space, punctuation and symbols, digits, letters: the collation's order of the kinds of
/// ASCII characters (None: not ASCII, or a control character).
fn ascii_kind(c: char) -> Option<u8> {
    match c {
        ' ' => Some(0),
        '!'..='/' | ':'..='@' | '['..='`' | '{'..='~' => Some(1),
        '0'..='9' => Some(2),
        'a'..='z' | 'A'..='Z' => Some(3),
        _ => None,
    }
}

/// A sort key whose order agrees with [`site_order`] wherever that is sure: each character
/// as its kind and its lower case, other characters after every ASCII kind.
pub(super) fn site_order_key(name: &str) -> Vec<(u8, char)> {
    name.chars()
        .map(|c| (ascii_kind(c).unwrap_or(4), c.to_ascii_lowercase()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{site_order, site_order_key};

    /// The page is sorted by `site_order_key` (a total order) and then checked with
    /// `site_order`: the key must agree with every order `site_order` is sure of.
    #[test]
    fn the_sort_key_agrees_with_every_sure_order() {
        let names = [
            "Smith, John",
            "SMITH, JOHN",
            "Smith",
            "Smith ",
            "Smith-Jones",
            "Smith Jones",
            "Smith.Jones",
            "Smith2",
            "Smith10",
            "Smith~",
            "Smith:",
            "Smith[",
            "Smíth",
            "Smith\t",
            "O'Brien",
            "Obrien",
            "O Brien",
            "",
            "123",
            "Acme Inc.",
            "Acme, Inc",
            "Zoë",
            "zoe",
        ];
        let mut sure = 0;
        for a in names {
            for b in names {
                if let Some(order) = site_order(a, b) {
                    sure += 1;
                    assert_eq!(
                        site_order_key(a).cmp(&site_order_key(b)),
                        order,
                        "{a:?} / {b:?}"
                    );
                }
            }
        }
        assert!(
            sure > names.len() * names.len() / 2,
            "sure of only {sure} pairs"
        );
    }
}
