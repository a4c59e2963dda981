//! The rows of the search structures ([`super::index`]): a contact's names folded into
//! the words a keystroke search finds it by, and its (first, last) and (last, first)
//! pairs; written many rows per statement.

use rusqlite::types::Value;

/// A contact's names as the SQLite schema holds them.
#[derive(Default)]
pub(super) struct RowNames {
    pub(super) sort_name: Option<String>,
    pub(super) first_name: Option<String>,
    pub(super) last_name: Option<String>,
    pub(super) display_name: Option<String>,
    pub(super) contact_type: Option<String>,
}

impl RowNames {
    /// As a name search reads them: CiviCRM keeps an organisation's or household's name in
    /// a column of its own and makes the display name from it; this schema has only the
    /// display name, which is that name.
    pub(super) fn names(&self) -> crate::store::Names<'_> {
        let own = |kind: &str| {
            (self.contact_type.as_deref() == Some(kind))
                .then_some(self.display_name.as_deref())
                .flatten()
        };
        crate::store::Names {
            sort_name: self.sort_name.as_deref(),
            first_name: self.first_name.as_deref(),
            last_name: self.last_name.as_deref(),
            organization_name: own("Organization"),
            household_name: own("Household"),
            display_name: self.display_name.as_deref(),
        }
    }
}

/// The folded words a keystroke search finds a contact by: each name a prefix is matched
/// against ([`crate::store::name_matches`]), once each, empty ones left out.
pub(super) fn name_words(names: &crate::store::Names<'_>) -> Vec<String> {
    let mut words: Vec<String> = names
        .prefixed()
        .into_iter()
        .flatten()
        .map(crate::store::collation::fold)
        .filter(|w| !w.is_empty())
        .collect();
    words.sort_unstable();
    words.dedup();
    words
}

/// One row of `civikey_word`.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Word {
    /// Folded: the table compares bytes.
    pub(super) word: String,
    pub(super) contact_id: i64,
    pub(super) sort_key: std::rc::Rc<str>,
}

pub(super) fn words_of(id: i64, names: &RowNames) -> impl Iterator<Item = Word> {
    let sort_key: std::rc::Rc<str> = names.sort_name.as_deref().unwrap_or("").into();
    name_words(&names.names())
        .into_iter()
        .map(move |word| Word {
            word,
            contact_id: id,
            sort_key: sort_key.clone(),
        })
}

/// substr(word, 1, n): the first n characters.
pub(super) fn head(word: &str, n: usize) -> String {
    word.chars().take(n).collect()
}

/// Inserts `words` (sorted, for speed).
pub(super) fn insert_words(tx: &rusqlite::Transaction<'_>, words: &[Word]) -> rusqlite::Result<()> {
    insert_many(
        tx,
        "INSERT OR IGNORE INTO civikey_word (word, contact_id, sort_key, head, head2)",
        words,
        |w| {
            [
                Value::Text(w.word.clone()),
                Value::Integer(w.contact_id),
                Value::Text(w.sort_key.to_string()),
                Value::Text(head(&w.word, 1)),
                Value::Text(head(&w.word, 2)),
            ]
        },
    )
}

/// Inserts `rows` with `insert` (`INSERT ... (columns)`, one per value `values` gives),
/// many rows per statement: a million statements cost more than their rows.
fn insert_many<T, const N: usize>(
    tx: &rusqlite::Transaction<'_>,
    insert: &str,
    rows: &[T],
    values: impl Fn(&T) -> [Value; N],
) -> rusqlite::Result<()> {
    const ROWS: usize = 200;
    let row = format!("({})", vec!["?"; N].join(", "));
    let statement =
        |rows: usize| format!("{insert} VALUES {}", vec![row.as_str(); rows].join(", "));
    let mut full = tx.prepare_cached(&statement(ROWS))?;
    for chunk in rows.chunks(ROWS) {
        let values = rusqlite::params_from_iter(chunk.iter().flat_map(&values));
        if chunk.len() == ROWS {
            full.execute(values)?;
        } else {
            tx.execute(&statement(chunk.len()), values)?;
        }
    }
    Ok(())
}

/// One row of `civikey_word_pair` ([`super::index::PAIR_TABLES`]).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Pair {
    pub(super) a: String,
    pub(super) b: String,
    pub(super) contact_id: i64,
    pub(super) sort_key: std::rc::Rc<str>,
}

/// The pairs of a contact: (first, last) and (last, first), folded, when it has both
/// names (an empty name starts with no prefix: no row).
pub(super) fn pairs_of(id: i64, names: &RowNames) -> Vec<Pair> {
    let folded = |name: &Option<String>| {
        name.as_deref()
            .map(crate::store::collation::fold)
            .filter(|n| !n.is_empty())
    };
    let (Some(first), Some(last)) = (folded(&names.first_name), folded(&names.last_name)) else {
        return Vec::new();
    };
    let sort_key: std::rc::Rc<str> = names.sort_name.as_deref().unwrap_or("").into();
    let mut pairs = vec![Pair {
        a: first.clone(),
        b: last.clone(),
        contact_id: id,
        sort_key: sort_key.clone(),
    }];
    if first != last {
        pairs.push(Pair {
            a: last,
            b: first,
            contact_id: id,
            sort_key,
        });
    }
    pairs
}

/// Inserts `pairs` (sorted, for speed).
pub(super) fn insert_pairs(tx: &rusqlite::Transaction<'_>, pairs: &[Pair]) -> rusqlite::Result<()> {
    insert_many(
        tx,
        "INSERT OR IGNORE INTO civikey_word_pair (a, b, contact_id, sort_key)",
        pairs,
        |p| {
            [
                Value::Text(p.a.clone()),
                Value::Text(p.b.clone()),
                Value::Integer(p.contact_id),
                Value::Text(p.sort_key.to_string()),
            ]
        },
    )
}

/// Reads a `RowNames` from columns `at..at + 5` (sort, first, last, display, type).
pub(super) fn row_names(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<RowNames> {
    Ok(RowNames {
        sort_name: row.get(at)?,
        first_name: row.get(at + 1)?,
        last_name: row.get(at + 2)?,
        display_name: row.get(at + 3)?,
        contact_type: row.get(at + 4)?,
    })
}

/// The words and the pairs of every contact, sorted.
pub(super) fn read_all_names(
    tx: &rusqlite::Transaction<'_>,
    want_words: bool,
) -> rusqlite::Result<(Vec<Word>, Vec<Pair>)> {
    let mut stmt = tx.prepare(
        "SELECT id, sort_name, first_name, last_name, display_name, contact_type
           FROM civicrm_contact",
    )?;
    let (mut words, mut pairs) = (Vec::new(), Vec::new());
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let (id, names) = (row.get(0)?, row_names(row, 1)?);
        if want_words {
            words.extend(words_of(id, &names));
        }
        pairs.extend(pairs_of(id, &names));
    }
    words.sort_unstable();
    pairs.sort_unstable();
    Ok((words, pairs))
}
