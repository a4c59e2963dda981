//! What a name search matches: the one definition every store is held to (the SQLite
//! store tests its candidates with it, the SQL and API v4 stores write it as a where
//! clause, the contract test compares every store's answers to it).

use super::collation;

/// The ways a name text of two or more words splits into a first-name prefix and a
/// last-name prefix: `mary ann lee` gives (`mary`, `ann lee`) and (`mary ann`, `lee`).
/// Each pair is tried in both orders (first AND last, last AND first).
pub fn name_splits(text: &str) -> Vec<(&str, &str)> {
    let text = text.trim();
    text.char_indices()
        .filter(|(_, c)| c.is_whitespace())
        .map(|(i, _)| (text[..i].trim_end(), text[i..].trim_start()))
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .fold(Vec::new(), |mut out, pair| {
            if !out.contains(&pair) {
                out.push(pair);
            }
            out
        })
}

/// A contact's names as a name search reads them (CiviCRM's columns).
#[derive(Clone, Copy, Debug, Default)]
pub struct Names<'a> {
    pub sort_name: Option<&'a str>,
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    pub organization_name: Option<&'a str>,
    pub household_name: Option<&'a str>,
    pub display_name: Option<&'a str>,
}

impl Names<'_> {
    /// The names a keystroke's text is matched against as a prefix (each on its own):
    /// sort, first, last, organisation and household name.
    pub fn prefixed(&self) -> [Option<&str>; 5] {
        [
            self.sort_name,
            self.first_name,
            self.last_name,
            self.organization_name,
            self.household_name,
        ]
    }
}

/// Whether a name search for `text` finds a contact with `names`, every comparison made
/// on [`collation::fold`]ed text (case and accents ignored, as MySQL's utf8mb4 `_ci`
/// collations compare). The one definition of a name match: the SQLite store tests its
/// candidates with it, and the contract test holds every store to the same answers.
pub fn name_matches(text: &str, names: &Names<'_>, deep: bool) -> bool {
    NameQuery::new(text).matches(names, deep)
}

/// A name search's text, folded and split once, for testing many contacts.
pub struct NameQuery {
    text: String,
    splits: Vec<(String, String)>,
    /// ` text`: a word inside the display name starts so.
    inner_word: String,
}

impl NameQuery {
    pub fn new(text: &str) -> Self {
        let text = collation::fold(text.trim());
        let splits = name_splits(&text)
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        NameQuery {
            inner_word: format!(" {text}"),
            text,
            splits,
        }
    }

    /// [`name_matches`] for this text.
    pub fn matches(&self, names: &Names<'_>, deep: bool) -> bool {
        if self.text.is_empty() {
            return true;
        }
        let starts = |name: Option<&str>, prefix: &str| {
            name.is_some_and(|n| collation::starts_with_folded(n, prefix))
        };
        let one_name = names.prefixed().into_iter().any(|n| starts(n, &self.text));
        if one_name {
            return true;
        }
        if !self.splits.is_empty() {
            let first = names.first_name.map(collation::fold);
            let last = names.last_name.map(collation::fold);
            let begins = |name: &Option<String>, prefix: &str| {
                name.as_deref().is_some_and(|n| n.starts_with(prefix))
            };
            let split = self.splits.iter().any(|(a, b)| {
                (begins(&first, a) && begins(&last, b)) || (begins(&last, a) && begins(&first, b))
            });
            if split {
                return true;
            }
        }
        deep && names
            .display_name
            .is_some_and(|d| collation::fold(d).contains(&self.inner_word))
    }
}

/// Whether a stored email is the address asked for, as CiviCRM's utf8mb4_unicode_ci
/// compares them with `=`: case and accents ignored ([`collation::fold`]), trailing spaces
/// too (PAD SPACE). The one definition of an exact email match: the SQLite store tests
/// with it, the MySQL and API v4 stores send `=` to the collation it models.
pub fn email_is(stored: &str, address: &str) -> bool {
    collation::fold(stored.trim_end_matches(' ')) == collation::fold(address.trim_end_matches(' '))
}

/// A keystroke's first-name prefix at least this long is read by the REST and cv stores
/// sorted on its own index range (sort name ascending, id descending, which no index
/// serves), its last sort name's contacts read again with the page: such a prefix has as
/// many contacts as some thousands, which may all sort late, where walking the list in
/// order reads every row until a page is found. A one-letter prefix's contacts are
/// everywhere in the list: walked.
pub(crate) const SORTED_FIRST_NAME_CHARS: usize = 2;

/// `text` as a SQL LIKE prefix: its own wildcards (`%`, `_`) and the escape character
/// escaped by `escape`, then `%`. Every store's name and email search uses it.
pub fn like_prefix(text: &str, escape: char) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if matches!(c, '%' | '_') || c == escape {
            out.push(escape);
        }
        out.push(c);
    }
    out.push('%');
    out
}

#[cfg(test)]
mod tests {
    use super::like_prefix;

    #[test]
    fn an_exact_email_ignores_case_accents_and_trailing_spaces_only() {
        use super::email_is;
        assert!(email_is("Zoë@Example.DE", "zoe@example.de"));
        assert!(email_is("ann@example.org ", "ann@example.org"));
        assert!(!email_is("ann@example.org", "ann@example.or"));
        assert!(!email_is("ann@example.org", "ann@example.org.uk"));
        assert!(!email_is(" ann@example.org", "ann@example.org"));
    }

    #[test]
    fn like_wildcards_and_the_escape_character_are_escaped() {
        assert_eq!(like_prefix("100%_a!", '!'), "100!%!_a!!%");
        assert_eq!(like_prefix("a\\b_%", '\\'), "a\\\\b\\_\\%%");
    }
}
