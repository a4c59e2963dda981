//! The embedded store: a SQLite file on a CiviCRM-shaped schema.
//!
//! The tables and column names are CiviCRM's (`civicrm_contact`, `civicrm_email`,
//! `civicrm_uf_match`); civikey adds its own search structures beside them, all named
//! `civikey_*` (see [`SEARCH_OBJECTS`]), so a name search stays an index range at a million
//! contacts. A file is opened only after it has proven to be a SQLite database holding
//! that schema (small files pass SQLite's full check, big ones a size check; see
//! [`FULL_CHECK_MAX_BYTES`]); a file that is not is refused and never modified.

use std::fs::{self, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use crate::fsperm;
use crate::key::{ApiKey, KeyHint, KEY_LEN};
use crate::sanitize::SafeText;
use crate::seed::SeedContact;
use crate::store::{
    split_permissions, AccountState, CmsLink, Contact, ContactId, ContactStore, Cursor, Holder,
    HolderCursor, HolderPage, Matcher, Page, Query, Role, Standing, StoreError, StoreInfo,
    StoreKind, UserAccount,
};

/// The CiviCRM tables. Their indexes come after the bulk insert of a new store (building
/// an index once is much faster than keeping it sorted row by row).
const TABLES: &str = "
CREATE TABLE civicrm_contact (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_type  TEXT,
    display_name  TEXT COLLATE NOCASE,
    sort_name     TEXT COLLATE NOCASE,
    first_name    TEXT,
    last_name     TEXT,
    is_deleted    INTEGER NOT NULL DEFAULT 0,
    created_date  TEXT DEFAULT CURRENT_TIMESTAMP,
    modified_date TEXT DEFAULT CURRENT_TIMESTAMP,
    -- varchar(32) in CiviCRM; SQLite does not enforce lengths, the CHECK does, like MySQL's
    -- strict mode.
    api_key       TEXT CHECK (api_key IS NULL OR length(api_key) <= 32)
);

CREATE TABLE civicrm_email (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id       INTEGER REFERENCES civicrm_contact (id) ON DELETE CASCADE,
    email            TEXT COLLATE NOCASE,
    is_primary       INTEGER NOT NULL DEFAULT 0,
    location_type_id INTEGER,
    on_hold          INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE civicrm_uf_match (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    domain_id  INTEGER NOT NULL,
    uf_id      INTEGER NOT NULL,
    uf_name    TEXT,
    contact_id INTEGER REFERENCES civicrm_contact (id) ON DELETE CASCADE,
    -- Standalone: the user account is this row (uf_id equals id).
    username   TEXT,
    is_active  INTEGER NOT NULL DEFAULT 1,
    UNIQUE (contact_id, domain_id)
);

-- A Standalone site's roles: what a key's holder can do.
CREATE TABLE civicrm_role (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    label       TEXT,
    permissions TEXT,
    is_active   INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE civicrm_user_role (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    -- civicrm_uf_match.id
    user_id INTEGER NOT NULL,
    role_id INTEGER NOT NULL REFERENCES civicrm_role (id) ON DELETE CASCADE
);
CREATE INDEX civikey_user_role_user ON civicrm_user_role (user_id);
";

const INDEXES: &str = "
-- CiviCRM's own indexes. index_api_key compares case-insensitively, as MySQL's _ci
-- collations do, so the uniqueness check means the same here as on a real CiviCRM.
CREATE INDEX index_api_key ON civicrm_contact (api_key COLLATE NOCASE);
CREATE INDEX index_is_deleted_sort_name ON civicrm_contact (is_deleted, sort_name, id);
CREATE INDEX UI_email ON civicrm_email (email);
CREATE INDEX FK_civicrm_email_contact_id ON civicrm_email (contact_id);
";

/// civikey's own search structures. Every name here starts with `civikey_`; stores made
/// before they existed (or with an older form of them, [`OLD_SEARCH_OBJECTS`]) get them
/// when opened writable (see [`install_search_index`]), once.
///
/// `civikey_sort_key` is the list order itself (lists mix deleted and live contacts), so a
/// page is an index range. `civikey_word` holds, for each contact, its names as a
/// keystroke search matches them ([`name_words`]: sort, first, last name, and the display
/// name of an organisation or household, which is its own name), folded in Rust
/// ([`crate::store::collation::fold`]: case and accents ignored), so a name search is a prefix range
/// of that one table. SQL cannot fold Unicode (and a function of civikey's own in a
/// trigger would break every other writer of the file), so the triggers only note which
/// contacts changed, with the names they had, in `civikey_word_stale`; civikey refolds
/// those before its next search ([`SqliteStore::refresh_words`]). Searches still test
/// each found contact, so a stale word can never show a wrong one.
///
/// `civikey_word_pair` ([`PAIR_OBJECTS`]) answers a search of several words: see
/// [`PAIR_TABLES`].
const SEARCH_OBJECTS: &[&str] = &[
    "civikey_sort_key",
    "civikey_word",
    "civikey_word_head",
    "civikey_word_head2",
    "civikey_word_stale",
    "civikey_word_insert",
    "civikey_word_update",
    "civikey_word_delete",
];

/// The first form of the search index (display-name words compared with ASCII NOCASE):
/// dropped when the new one is built.
const OLD_SEARCH_OBJECTS: &str = "
DROP TRIGGER IF EXISTS civikey_name_word_insert;
DROP TRIGGER IF EXISTS civikey_name_word_update;
DROP TRIGGER IF EXISTS civikey_name_word_delete;
DROP TABLE IF EXISTS civikey_name_word;
DROP TABLE IF EXISTS civikey_position;
";

const SEARCH_TABLES: &str = "
CREATE INDEX IF NOT EXISTS civikey_sort_key ON civicrm_contact (coalesce(sort_name, ''), id);
CREATE TABLE civikey_word (
    word       TEXT NOT NULL,
    contact_id INTEGER NOT NULL,
    -- The contact's place in the list, coalesce(sort_name, ''), and the word's first one
    -- and two characters: civikey_word_head and _head2 list the words that start alike in
    -- list order.
    sort_key   TEXT NOT NULL,
    head       TEXT NOT NULL,
    head2      TEXT NOT NULL,
    PRIMARY KEY (word, contact_id)
) WITHOUT ROWID;
-- Contacts whose words must be refolded, with the names their words were made from
-- (indexed = 1) or none yet (indexed = 0: a new contact).
CREATE TABLE civikey_word_stale (
    contact_id   INTEGER PRIMARY KEY,
    indexed      INTEGER NOT NULL,
    sort_name    TEXT,
    first_name   TEXT,
    last_name    TEXT,
    display_name TEXT,
    contact_type TEXT
);
";

/// Names the folding the words were made with (a view of one row, its version): words
/// folded another way, by an older civikey (`ß` was once folded to `ss`), are refolded,
/// once, as a missing index is. Bump the number when [`crate::store::collation::fold`] changes.
const FOLD_MARK: &str = "civikey_fold_2";

/// Made after the words are in (one sort instead of a million ordered inserts).
const HEAD_INDEX: &str =
    "CREATE INDEX civikey_word_head ON civikey_word (head, sort_key, contact_id);
     CREATE INDEX civikey_word_head2 ON civikey_word (head2, sort_key, contact_id);";

/// Plain SQL, so every writer of the file (the sqlite3 shell, a script) can run them. Each
/// change is noted twice, for the words and for the pairs: a civikey from before the pair
/// table refolds (and clears) only `civikey_word_stale`, and the pairs' own notes wait for
/// the next civikey that knows them.
const SEARCH_TRIGGERS: &str = "
CREATE TRIGGER civikey_word_insert AFTER INSERT ON civicrm_contact BEGIN
    INSERT OR IGNORE INTO civikey_word_stale (contact_id, indexed) VALUES (NEW.id, 0);
    INSERT OR IGNORE INTO civikey_pair_stale (contact_id, indexed) VALUES (NEW.id, 0);
END;
CREATE TRIGGER civikey_word_update
AFTER UPDATE OF id, sort_name, first_name, last_name, display_name, contact_type
ON civicrm_contact BEGIN
    INSERT OR IGNORE INTO civikey_word_stale VALUES
        (OLD.id, 1, OLD.sort_name, OLD.first_name, OLD.last_name, OLD.display_name, OLD.contact_type);
    INSERT OR IGNORE INTO civikey_word_stale (contact_id, indexed) VALUES (NEW.id, 0);
    INSERT OR IGNORE INTO civikey_pair_stale VALUES
        (OLD.id, 1, OLD.sort_name, OLD.first_name, OLD.last_name, OLD.display_name, OLD.contact_type);
    INSERT OR IGNORE INTO civikey_pair_stale (contact_id, indexed) VALUES (NEW.id, 0);
END;
CREATE TRIGGER civikey_word_delete AFTER DELETE ON civicrm_contact BEGIN
    INSERT OR IGNORE INTO civikey_word_stale VALUES
        (OLD.id, 1, OLD.sort_name, OLD.first_name, OLD.last_name, OLD.display_name, OLD.contact_type);
    INSERT OR IGNORE INTO civikey_pair_stale VALUES
        (OLD.id, 1, OLD.sort_name, OLD.first_name, OLD.last_name, OLD.display_name, OLD.contact_type);
END;
";

/// The pair table and its notes: [`PAIR_TABLES`].
const PAIR_OBJECTS: &[&str] = &["civikey_word_pair", "civikey_pair_stale"];

/// `civikey_word_pair` holds, for each contact with a first and a last name, both folded
/// ([`crate::store::collation::fold`]), the rows (first, last) and (last, first): a split of a search
/// of several words (a first-name prefix and a last-name prefix, in either order, see
/// [`crate::store::name_splits`]) is then the rows whose `a` and `b` start with its two parts,
/// found exactly, without reading a contact. `sort_key` is the contact's list position,
/// as in `civikey_word`. `civikey_pair_stale` notes changed contacts as
/// `civikey_word_stale` does.
const PAIR_TABLES: &str = "
CREATE TABLE civikey_word_pair (
    a          TEXT NOT NULL,
    b          TEXT NOT NULL,
    contact_id INTEGER NOT NULL,
    sort_key   TEXT NOT NULL,
    PRIMARY KEY (a, b, contact_id)
) WITHOUT ROWID;
CREATE TABLE civikey_pair_stale (
    contact_id   INTEGER PRIMARY KEY,
    indexed      INTEGER NOT NULL,
    sort_name    TEXT,
    first_name   TEXT,
    last_name    TEXT,
    display_name TEXT,
    contact_type TEXT
);
";

/// A contact's names as the SQLite schema holds them.
#[derive(Default)]
struct RowNames {
    sort_name: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    display_name: Option<String>,
    contact_type: Option<String>,
}

impl RowNames {
    /// As a name search reads them: CiviCRM keeps an organisation's or household's name in
    /// a column of its own and makes the display name from it; this schema has only the
    /// display name, which is that name.
    fn names(&self) -> crate::store::Names<'_> {
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
fn name_words(names: &crate::store::Names<'_>) -> Vec<String> {
    let mut words: Vec<String> = [
        names.sort_name,
        names.first_name,
        names.last_name,
        names.organization_name,
        names.household_name,
    ]
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
struct Word {
    /// Folded: the table compares bytes.
    word: String,
    contact_id: i64,
    sort_key: std::rc::Rc<str>,
}

fn words_of(id: i64, names: &RowNames) -> impl Iterator<Item = Word> {
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
fn head(word: &str, n: usize) -> String {
    word.chars().take(n).collect()
}

/// Inserts `words` (sorted, for speed), many rows per statement.
fn insert_words(tx: &rusqlite::Transaction<'_>, words: &[Word]) -> rusqlite::Result<()> {
    // Many rows per statement: a million statements cost more than their rows.
    const ROWS: usize = 200;
    let statement = |rows: usize| {
        format!(
            "INSERT OR IGNORE INTO civikey_word (word, contact_id, sort_key, head, head2) VALUES {}",
            vec!["(?, ?, ?, ?, ?)"; rows].join(", ")
        )
    };
    let mut full = tx.prepare_cached(&statement(ROWS))?;
    for chunk in words.chunks(ROWS) {
        let values = chunk.iter().flat_map(|w| {
            [
                Value::Text(w.word.clone()),
                Value::Integer(w.contact_id),
                Value::Text(w.sort_key.to_string()),
                Value::Text(head(&w.word, 1)),
                Value::Text(head(&w.word, 2)),
            ]
        });
        if chunk.len() == ROWS {
            full.execute(rusqlite::params_from_iter(values))?;
        } else {
            tx.execute(&statement(chunk.len()), rusqlite::params_from_iter(values))?;
        }
    }
    Ok(())
}

/// One row of `civikey_word_pair` ([`PAIR_TABLES`]).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Pair {
    a: String,
    b: String,
    contact_id: i64,
    sort_key: std::rc::Rc<str>,
}

/// The pairs of a contact: (first, last) and (last, first), folded, when it has both
/// names (an empty name starts with no prefix: no row).
fn pairs_of(id: i64, names: &RowNames) -> Vec<Pair> {
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

/// Inserts `pairs` (sorted, for speed), many rows per statement.
fn insert_pairs(tx: &rusqlite::Transaction<'_>, pairs: &[Pair]) -> rusqlite::Result<()> {
    const ROWS: usize = 200;
    let statement = |rows: usize| {
        format!(
            "INSERT OR IGNORE INTO civikey_word_pair (a, b, contact_id, sort_key) VALUES {}",
            vec!["(?, ?, ?, ?)"; rows].join(", ")
        )
    };
    let mut full = tx.prepare_cached(&statement(ROWS))?;
    for chunk in pairs.chunks(ROWS) {
        let values = chunk.iter().flat_map(|p| {
            [
                Value::Text(p.a.clone()),
                Value::Text(p.b.clone()),
                Value::Integer(p.contact_id),
                Value::Text(p.sort_key.to_string()),
            ]
        });
        if chunk.len() == ROWS {
            full.execute(rusqlite::params_from_iter(values))?;
        } else {
            tx.execute(&statement(chunk.len()), rusqlite::params_from_iter(values))?;
        }
    }
    Ok(())
}

/// Reads a `RowNames` from columns `at..at + 5` (sort, first, last, display, type).
fn row_names(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<RowNames> {
    Ok(RowNames {
        sort_name: row.get(at)?,
        first_name: row.get(at + 1)?,
        last_name: row.get(at + 2)?,
        display_name: row.get(at + 3)?,
        contact_type: row.get(at + 4)?,
    })
}

/// The words and the pairs of every contact, sorted.
fn read_all_names(
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

/// Drops civikey's triggers (made again last, by [`SEARCH_TRIGGERS`]).
fn drop_triggers(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    for trigger in &SEARCH_OBJECTS[5..] {
        tx.execute_batch(&format!("DROP TRIGGER IF EXISTS {trigger}"))?;
    }
    Ok(())
}

/// (Re)makes the pair table from `pairs`, sorted.
fn fill_pair_table(tx: &rusqlite::Transaction<'_>, pairs: &[Pair]) -> rusqlite::Result<()> {
    tx.execute_batch(
        "DROP TABLE IF EXISTS civikey_word_pair; DROP TABLE IF EXISTS civikey_pair_stale;",
    )?;
    tx.execute_batch(PAIR_TABLES)?;
    insert_pairs(tx, pairs)
}

/// Builds civikey's search structures from scratch (dropping any partial or older ones),
/// in one transaction: afterwards either all of them exist and agree with the contacts, or
/// none changed. `names` are the words and pairs of every contact when the caller already
/// has them, sorted; otherwise they are read from the contacts and folded here.
fn install_search_index(
    conn: &mut Connection,
    names: Option<(Vec<Word>, Vec<Pair>)>,
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.execute_batch(OLD_SEARCH_OBJECTS)?;
    drop_triggers(&tx)?;
    tx.execute_batch(
        "DROP TABLE IF EXISTS civikey_word; DROP TABLE IF EXISTS civikey_word_stale;",
    )?;
    // Any earlier fold mark (there was none before version 2) and this one.
    let marks: Vec<String> = tx
        .prepare("SELECT name FROM sqlite_master WHERE type = 'view' AND name LIKE 'civikey!_fold!_%' ESCAPE '!'")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for mark in marks {
        tx.execute_batch(&format!("DROP VIEW \"{}\"", mark.replace('"', "\"\"")))?;
    }
    tx.execute_batch(SEARCH_TABLES)?;
    let (words, pairs) = match names {
        Some(names) => names,
        None => read_all_names(&tx, true)?,
    };
    insert_words(&tx, &words)?;
    drop(words);
    tx.execute_batch(HEAD_INDEX)?;
    fill_pair_table(&tx, &pairs)?;
    tx.execute_batch(SEARCH_TRIGGERS)?;
    tx.execute_batch(&format!(
        "CREATE VIEW {FOLD_MARK} AS SELECT {} AS fold_version",
        FOLD_MARK.trim_start_matches("civikey_fold_")
    ))?;
    tx.commit()
}

/// Adds the pair table to a store whose word table came before it (and makes the
/// triggers that keep it in step), in one transaction.
fn install_pair_index(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    let (_, pairs) = read_all_names(&tx, false)?;
    drop_triggers(&tx)?;
    fill_pair_table(&tx, &pairs)?;
    tx.execute_batch(SEARCH_TRIGGERS)?;
    tx.commit()
}

/// Whether the pair table is in the file and the triggers note changes for it (a civikey
/// from before it could have made the triggers again without).
fn has_pair_index(conn: &Connection) -> rusqlite::Result<bool> {
    let found: i64 = conn.query_row(
        "SELECT (SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN (?1, ?2))
              + (SELECT count(*) FROM sqlite_master WHERE type = 'trigger'
                  AND name IN ('civikey_word_insert', 'civikey_word_update', 'civikey_word_delete')
                  AND sql LIKE '%civikey_pair_stale%')",
        [PAIR_OBJECTS[0], PAIR_OBJECTS[1]],
        |r| r.get(0),
    )?;
    Ok(found == 5)
}

/// The contacts the notes table `stale` lists: id, the names their rows were made from
/// (None: a new contact, no rows yet) and their names now (None: deleted).
type Change = (i64, Option<RowNames>, Option<RowNames>);

fn changes(tx: &rusqlite::Transaction<'_>, stale: &str) -> rusqlite::Result<Vec<Change>> {
    let noted: Vec<(i64, bool, RowNames)> = {
        let mut stmt = tx.prepare(&format!(
            "SELECT contact_id, indexed, sort_name, first_name, last_name, display_name,
                    contact_type FROM {stale}"
        ))?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, row_names(r, 2)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut current = tx.prepare_cached(
        "SELECT sort_name, first_name, last_name, display_name, contact_type
           FROM civicrm_contact WHERE id = ?",
    )?;
    noted
        .into_iter()
        .map(|(id, indexed, old)| {
            let now = current.query_row([id], |r| row_names(r, 0)).optional()?;
            Ok((id, indexed.then_some(old), now))
        })
        .collect()
}

/// Whether every one of civikey's search structures is in the file.
fn has_search_index(conn: &Connection) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare("SELECT count(*) FROM sqlite_master WHERE name = ?")?;
    for name in SEARCH_OBJECTS.iter().chain([&FOLD_MARK]) {
        if stmt.query_row([name], |r| r.get::<_, i64>(0))? == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `civikey_name_match(text, deep, sort_name, first_name, last_name, display_name,
/// contact_type)`: [`crate::store::name_matches`] in SQL, on civikey's own connections only (never
/// in a trigger or an index, which other programs must be able to run).
fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "civikey_name_match",
        7,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            // The text is the same for every row of a statement: folded and split once.
            let query =
                ctx.get_or_create_aux(0, |text| -> Result<_, rusqlite::types::FromSqlError> {
                    Ok(crate::store::NameQuery::new(text.as_str()?))
                })?;
            let deep: bool = ctx.get(1)?;
            let names = RowNames {
                sort_name: ctx.get(2)?,
                first_name: ctx.get(3)?,
                last_name: ctx.get(4)?,
                display_name: ctx.get(5)?,
                contact_type: ctx.get(6)?,
            };
            Ok(query.matches(&names.names(), deep))
        },
    )
}

/// The columns a list reads, then the sort key the next page starts after.
const CONTACT_COLUMNS: &str = "
       c.id, c.contact_type, c.display_name, c.sort_name,
       (SELECT e.email FROM civicrm_email e
         WHERE e.contact_id = c.id AND e.is_primary = 1 ORDER BY e.id LIMIT 1),
       c.is_deleted,
       CASE WHEN c.api_key IS NULL OR c.api_key = '' THEN NULL ELSE c.api_key END,
       (SELECT u.uf_id FROM civicrm_uf_match u
         WHERE u.contact_id = c.id ORDER BY u.domain_id LIMIT 1),
       coalesce(c.sort_name, '')";

/// Above this many index entries a prefix is common: walking the contacts in list order
/// finds a page of matches sooner than collecting and sorting every match. Below it,
/// collecting and sorting the matches is cheaper than walking past non-matches.
const DENSE_MATCHES: i64 = 5_000;

/// A search of several words collects up to this many times [`DENSE_MATCHES`] candidates
/// from the pair table (read from the index alone, about 0.2 microseconds each to sort and
/// merge) before it walks the list instead: that walk tests each contact having a word that
/// starts with the text's first word, in list order, and can read tens of thousands before
/// a page (`j s`: 13,000 pairs, the walk 70 to 120 ms, the pairs 3 ms).
const PAIR_DENSE_FACTOR: i64 = 4;

pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    writable: bool,
    /// civikey's search structures are present (see [`SEARCH_OBJECTS`]). A read-only
    /// store made before they existed is searched without them, more slowly.
    indexed: bool,
    /// The pair table ([`PAIR_TABLES`]) is present and kept in step (a read-only store
    /// made before it searches several words the older way: candidates tested one by one).
    paired: bool,
    /// The pair table agreed with the contacts at the last [`SqliteStore::refresh_words`].
    pairs_fresh: bool,
    /// [`DENSE_MATCHES`]; the tests lower it to check both plans give the same answers.
    dense_matches: i64,
    /// `PRAGMA quick_check` passed (on open for small stores, before the first write for big ones).
    integrity_checked: bool,
    /// Which Standalone columns this file has (stores made by older civikeys lack some).
    standalone: Option<StandaloneColumns>,
}

/// The user and role columns a store made by an older civikey may lack.
#[derive(Clone, Copy, Debug)]
struct StandaloneColumns {
    roles: bool,
    username: bool,
    user_active: bool,
    role_active: bool,
}

/// Ids per `IN (...)` list when reading standings.
const STANDING_CHUNK: usize = 500;

impl SqliteStore {
    /// Opens an existing store. Refuses (without touching the file) anything that is not a
    /// healthy SQLite database with the CiviCRM tables, and a file others can read.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, false)
    }

    /// Opens an existing store; `read_only` forces read-only mode even on a writable file
    /// (`civikey --read-only`: look without any chance of changing a key).
    pub fn open_with(path: &Path, read_only: bool) -> Result<Self, StoreError> {
        let shown = path.display();
        let meta = fs::metadata(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                StoreError::invalid(format!(
                    "no store at {shown}; create one with `civikey seed --sample --store sqlite:{shown}`"
                ))
            } else {
                StoreError::invalid(format!("cannot read {shown}: {e}"))
            }
        })?;
        if meta.is_dir() {
            return Err(StoreError::invalid(format!(
                "{shown} is a directory, not a SQLite store"
            )));
        }
        fsperm::refuse_if_exposed(path, &meta).map_err(StoreError::invalid)?;
        check_header(path)?;
        let writable = !read_only && fsperm::is_writable(path);
        let flags = if writable {
            OpenFlags::SQLITE_OPEN_READ_WRITE
        } else {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags)
            .map_err(|e| StoreError::invalid(format!("{shown}: {e}")))?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(sql_err)?;
        // quick_check reads every page: about a second per million contacts. Small stores
        // are checked on open; big ones get the size check (check_header) and SQLite's own
        // checks as pages are read, and the full check before their first write, so a
        // damaged file is still never modified.
        let mut integrity_checked = meta.len() <= FULL_CHECK_MAX_BYTES;
        if integrity_checked {
            quick_check(&conn, path)?;
        }
        // Decided before anything is written: only a file holding the columns civikey
        // reads may get civikey's search structures (a foreign file is never modified).
        check_schema(&conn, path)?;
        // Freed pages are zeroed: a rotated-away key does not stay in the file.
        conn.execute_batch("PRAGMA secure_delete = ON")
            .map_err(sql_err)?;
        conn.execute_batch("PRAGMA foreign_keys = ON")
            .map_err(sql_err)?;
        register_functions(&conn).map_err(sql_err)?;
        let mut indexed = has_search_index(&conn).map_err(sql_err)?;
        let mut paired = indexed && has_pair_index(&conn).map_err(sql_err)?;
        if !paired && writable {
            if !integrity_checked {
                quick_check(&conn, path)?;
                integrity_checked = true;
            }
            // A store from before the search index (or with its older, ASCII-only form):
            // build it once; one from before the pair table: add that, once. If that fails
            // (a full disk, another writer holding the lock) the store still works,
            // unindexed or without the pairs.
            if indexed {
                paired = install_pair_index(&mut conn).is_ok();
            } else {
                indexed = install_search_index(&mut conn, None).is_ok();
                paired = indexed;
            }
        }
        Ok(SqliteStore {
            conn,
            path: path.to_path_buf(),
            writable,
            indexed,
            paired,
            pairs_fresh: false,
            dense_matches: DENSE_MATCHES,
            integrity_checked,
            standalone: None,
        })
    }

    /// Whether the word table can answer a search now: contacts other writers changed are
    /// refolded first (one transaction, nothing when none changed). A read-only store with
    /// changed contacts is searched without the table (correct, slower). Sets
    /// `pairs_fresh`: whether the pair table can answer too.
    fn refresh_words(&mut self) -> Result<bool, StoreError> {
        self.pairs_fresh = false;
        if !self.indexed {
            return Ok(false);
        }
        let sql = if self.paired {
            "SELECT EXISTS (SELECT 1 FROM civikey_word_stale), EXISTS (SELECT 1 FROM civikey_pair_stale)"
        } else {
            "SELECT EXISTS (SELECT 1 FROM civikey_word_stale), 0"
        };
        let (words_stale, pairs_stale): (bool, bool) = self
            .conn
            .prepare_cached(sql)
            .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
            .map_err(sql_err)?;
        if !words_stale && !pairs_stale {
            self.pairs_fresh = self.paired;
            return Ok(true);
        }
        if !self.writable {
            self.pairs_fresh = self.paired && !pairs_stale;
            return Ok(!words_stale);
        }
        let tx = self.conn.transaction().map_err(sql_err)?;
        if words_stale {
            let mut words = Vec::new();
            {
                let mut delete = tx
                    .prepare("DELETE FROM civikey_word WHERE word = ? AND contact_id = ?")
                    .map_err(sql_err)?;
                for (id, old, now) in changes(&tx, "civikey_word_stale").map_err(sql_err)? {
                    for word in old.iter().flat_map(|old| words_of(id, old)) {
                        delete.execute(params![word.word, id]).map_err(sql_err)?;
                    }
                    words.extend(now.iter().flat_map(|now| words_of(id, now)));
                }
            }
            words.sort_unstable();
            insert_words(&tx, &words).map_err(sql_err)?;
            tx.execute("DELETE FROM civikey_word_stale", [])
                .map_err(sql_err)?;
        }
        if pairs_stale {
            let mut pairs = Vec::new();
            {
                let mut delete = tx
                    .prepare(
                        "DELETE FROM civikey_word_pair WHERE a = ? AND b = ? AND contact_id = ?",
                    )
                    .map_err(sql_err)?;
                for (id, old, now) in changes(&tx, "civikey_pair_stale").map_err(sql_err)? {
                    for pair in old.iter().flat_map(|old| pairs_of(id, old)) {
                        delete
                            .execute(params![pair.a, pair.b, id])
                            .map_err(sql_err)?;
                    }
                    pairs.extend(now.iter().flat_map(|now| pairs_of(id, now)));
                }
            }
            pairs.sort_unstable();
            insert_pairs(&tx, &pairs).map_err(sql_err)?;
            tx.execute("DELETE FROM civikey_pair_stale", [])
                .map_err(sql_err)?;
        }
        tx.commit().map_err(sql_err)?;
        self.pairs_fresh = self.paired;
        Ok(true)
    }

    /// Creates a new store at `path` (0600, in a 0700 folder) filled with `contacts`.
    /// Refuses to overwrite an existing file.
    pub fn create(
        path: &Path,
        contacts: impl IntoIterator<Item = SeedContact>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Not in another user's folder, nor one others can write: the file made there
            // would be refused on open anyway, after keys were put in it.
            // Each missing folder made here, the folder checked through its descriptor.
            fsperm::open_private_dir(dir).map_err(StoreError::invalid)?;
        }
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| StoreError::invalid(format!("cannot create {}: {e}", path.display())))?;
        let result = Self::fill_new(path, contacts, progress);
        if result.is_err() {
            // A half-made store would be refused later anyway; do not leave it behind.
            let _ = fs::remove_file(path);
        }
        result?;
        Self::open(path)
    }

    fn fill_new(
        path: &Path,
        contacts: impl IntoIterator<Item = SeedContact>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<(), StoreError> {
        let mut conn = Connection::open(path).map_err(sql_err)?;
        // No journal and no fsync, only while filling a file no one else has yet: a crash
        // leaves a broken file, which `create` deletes. A big cache keeps index builds in
        // memory. Both last as long as this connection. secure_delete: pages split while
        // filling keep no stale copies of keys in their free space.
        conn.execute_batch(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;
             PRAGMA temp_store = MEMORY; PRAGMA secure_delete = ON;",
        )
        .map_err(sql_err)?;
        conn.execute_batch(TABLES).map_err(sql_err)?;
        let (mut words, mut pairs) = insert_contacts(&mut conn, contacts, progress)?;
        conn.execute_batch(INDEXES).map_err(sql_err)?;
        // Sorted here, the words go into their table in key order: far faster than SQLite
        // sorting them.
        words.sort_unstable();
        pairs.sort_unstable();
        install_search_index(&mut conn, Some((words, pairs))).map_err(sql_err)
    }

    fn standalone_columns(&mut self) -> Result<StandaloneColumns, StoreError> {
        if let Some(columns) = self.standalone {
            return Ok(columns);
        }
        let has = |table: &str, column: &str| -> Result<bool, StoreError> {
            self.conn
                .query_row(
                    "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2",
                    [table, column],
                    |_| Ok(()),
                )
                .optional()
                .map(|found| found.is_some())
                .map_err(sql_err)
        };
        let columns = StandaloneColumns {
            roles: has("civicrm_user_role", "user_id")?,
            username: has("civicrm_uf_match", "username")?,
            user_active: has("civicrm_uf_match", "is_active")?,
            role_active: has("civicrm_role", "is_active")?,
        };
        self.standalone = Some(columns);
        Ok(columns)
    }

    /// Standings of at most [`STANDING_CHUNK`] contacts: two queries.
    fn standings_chunk(
        &mut self,
        ids: &[ContactId],
        out: &mut std::collections::HashMap<ContactId, Standing>,
    ) -> Result<(), StoreError> {
        let columns = self.standalone_columns()?;
        let marks = vec!["?"; ids.len()].join(", ");
        let args: Vec<Value> = ids.iter().map(|&id| Value::Integer(id as i64)).collect();
        // The current domain's row (the lowest domain id: SQLite stores have one).
        let sql = format!(
            "SELECT c.id, u.id, {name}, {active} FROM civicrm_contact c
               LEFT JOIN civicrm_uf_match u ON u.contact_id = c.id
                AND u.domain_id = (SELECT min(d.domain_id) FROM civicrm_uf_match d
                                    WHERE d.contact_id = c.id)
              WHERE c.id IN ({marks})",
            name = if columns.username {
                "coalesce(nullif(u.username, ''), u.uf_name, '')"
            } else {
                "coalesce(u.uf_name, '')"
            },
            active = if columns.user_active {
                "coalesce(u.is_active, 1)"
            } else {
                "1"
            },
        );
        let mut users = Vec::new();
        {
            let mut stmt = self.conn.prepare_cached(&sql).map_err(sql_err)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                    Ok((
                        r.get::<_, i64>(0)? as ContactId,
                        r.get::<_, Option<i64>>(1)?.map(|u| u as u64),
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)? != 0,
                    ))
                })
                .map_err(sql_err)?;
            for row in rows {
                users.push(row.map_err(sql_err)?);
            }
        }
        let mut roles: std::collections::HashMap<u64, Vec<Role>> = Default::default();
        let user_ids: Vec<i64> = users.iter().filter_map(|u| u.1).map(|u| u as i64).collect();
        if columns.roles && !user_ids.is_empty() {
            let user_marks = vec!["?"; user_ids.len()].join(", ");
            let sql = format!(
                "SELECT ur.user_id, coalesce(nullif(r.label, ''), r.name), coalesce(r.permissions, '')
                   FROM civicrm_user_role ur JOIN civicrm_role r ON r.id = ur.role_id
                  WHERE ur.user_id IN ({user_marks}){active}
                  ORDER BY ur.user_id, r.name",
                active = if columns.role_active {
                    " AND r.is_active = 1"
                } else {
                    ""
                },
            );
            let mut stmt = self.conn.prepare_cached(&sql).map_err(sql_err)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(user_ids.iter()), |r| {
                    Ok((
                        r.get::<_, i64>(0)? as u64,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })
                .map_err(sql_err)?;
            for row in rows {
                let (user_id, name, permissions) = row.map_err(sql_err)?;
                let permissions = split_permissions(&permissions);
                roles
                    .entry(user_id)
                    .or_default()
                    .push(Role::from_permissions(
                        &name,
                        permissions.iter().map(String::as_str),
                    ));
            }
        }
        for (contact_id, user_id, name, active) in users {
            let Some(user_id) = user_id else {
                out.insert(contact_id, Standing::no_account());
                continue;
            };
            out.insert(
                contact_id,
                Standing {
                    account: AccountState::Account(UserAccount {
                        id: user_id,
                        name: SafeText::new(&name),
                        active,
                    }),
                    roles: columns
                        .roles
                        .then(|| roles.remove(&user_id).unwrap_or_default()),
                },
            );
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection for `civikey import`, which writes contacts in one transaction of
    /// its own; refused on a store opened read-only.
    pub(crate) fn connection_for_import(&mut self) -> Result<&mut Connection, StoreError> {
        self.require_writable()?;
        Ok(&mut self.conn)
    }

    /// Writes are allowed: the store is writable and has passed the full integrity check.
    fn require_writable(&mut self) -> Result<(), StoreError> {
        if self.writable {
            if !self.integrity_checked {
                quick_check(&self.conn, &self.path)?;
                self.integrity_checked = true;
            }
            Ok(())
        } else {
            Err(StoreError::ReadOnly(SafeText::new(&format!(
                "{} was opened read-only (--read-only, or the file has no write permission for this user); viewing works, changes are refused",
                self.path.display()
            ))))
        }
    }
}

/// Inserts contacts in one transaction, reporting progress every 10,000; returns the words
/// of their names (see [`name_words`]) and their pairs ([`pairs_of`]) for the search index.
fn insert_contacts(
    conn: &mut Connection,
    contacts: impl IntoIterator<Item = SeedContact>,
    progress: &mut dyn FnMut(usize),
) -> Result<(Vec<Word>, Vec<Pair>), StoreError> {
    let mut words = Vec::new();
    let mut pairs = Vec::new();
    let tx = conn.transaction().map_err(sql_err)?;
    {
        let mut contact_stmt = tx
            .prepare(
                "INSERT INTO civicrm_contact (id, contact_type, display_name, sort_name,
                     first_name, last_name, is_deleted, api_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .map_err(sql_err)?;
        let mut email_stmt = tx
            .prepare(
                "INSERT INTO civicrm_email (contact_id, email, is_primary, location_type_id)
                 VALUES (?1, ?2, 1, 1)",
            )
            .map_err(sql_err)?;
        let mut uf_stmt = tx
            .prepare(
                "INSERT INTO civicrm_uf_match (id, domain_id, uf_id, uf_name, username, contact_id)
                 VALUES (?1, 1, ?1, ?2, ?3, ?4)",
            )
            .map_err(sql_err)?;
        let mut role_stmt = tx
            .prepare(
                "INSERT OR IGNORE INTO civicrm_role (name, label, permissions) VALUES (?1, ?1, ?2)",
            )
            .map_err(sql_err)?;
        let mut user_role_stmt = tx
            .prepare(
                "INSERT INTO civicrm_user_role (user_id, role_id)
                 SELECT ?1, id FROM civicrm_role WHERE name = ?2",
            )
            .map_err(sql_err)?;
        let mut done = 0;
        for c in contacts {
            contact_stmt
                .execute(params![
                    c.id,
                    c.contact_type,
                    c.display_name,
                    c.sort_name,
                    c.first_name,
                    c.last_name,
                    c.is_deleted,
                    c.api_key.as_ref().map(ApiKey::expose),
                ])
                .map_err(sql_err)?;
            let id = tx.last_insert_rowid();
            let names = RowNames {
                sort_name: Some(c.sort_name.clone()),
                first_name: c.first_name.clone(),
                last_name: c.last_name.clone(),
                display_name: Some(c.display_name.clone()),
                contact_type: Some(c.contact_type.clone()),
            };
            words.extend(words_of(id, &names));
            pairs.extend(pairs_of(id, &names));
            if let Some(email) = &c.email {
                email_stmt.execute(params![id, email]).map_err(sql_err)?;
            }
            if let Some(uf_id) = c.uf_id {
                let username = c
                    .email
                    .as_deref()
                    .and_then(|e| e.split('@').next())
                    .map_or_else(|| format!("user{uf_id}"), str::to_string);
                uf_stmt
                    .execute(params![uf_id, c.email, username, id])
                    .map_err(sql_err)?;
                for role in &c.roles {
                    role_stmt
                        .execute(params![role, crate::seed::role_permissions(role)])
                        .map_err(sql_err)?;
                    user_role_stmt
                        .execute(params![uf_id, role])
                        .map_err(sql_err)?;
                }
            }
            done += 1;
            if done % 10_000 == 0 {
                progress(done);
            }
        }
        if done % 10_000 != 0 {
            progress(done);
        }
    }
    tx.commit().map_err(sql_err)?;
    Ok((words, pairs))
}

/// SQLite's `quick_check`; a damaged file is refused, and was not modified.
fn quick_check(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let shown = path.display();
    let verdict: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| StoreError::invalid(format!("{shown} is damaged: {e}")))?;
    if verdict == "ok" {
        Ok(())
    } else {
        Err(StoreError::invalid(format!(
            "{shown} failed its integrity check ({}); it was not modified",
            SafeText::new(&verdict)
        )))
    }
}

/// The tables and columns civikey reads and its search structures index: a file without
/// every one of them is not a civikey store, nor a CiviCRM-shaped database civikey may
/// index.
const REQUIRED_COLUMNS: &[(&str, &[&str])] = &[
    (
        "civicrm_contact",
        &[
            "id",
            "contact_type",
            "display_name",
            "sort_name",
            "is_deleted",
            "api_key",
        ],
    ),
    ("civicrm_email", &["contact_id", "email", "is_primary"]),
    ("civicrm_uf_match", &["contact_id", "uf_id", "domain_id"]),
];

/// Refuses (without writing) a database that lacks a table or column of [`REQUIRED_COLUMNS`].
fn check_schema(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let shown = path.display();
    let mut stmt = conn
        .prepare("SELECT name FROM pragma_table_info(?1)")
        .map_err(sql_err)?;
    for (table, columns) in REQUIRED_COLUMNS {
        let present: Vec<String> = stmt
            .query_map([table], |r| r.get(0))
            .and_then(Iterator::collect)
            .map_err(sql_err)?;
        if present.is_empty() {
            return Err(StoreError::invalid(format!(
                "{shown} is a SQLite database but holds no {table} table; it is not a civikey store, and it was not modified"
            )));
        }
        let missing: Vec<&str> = columns
            .iter()
            .copied()
            .filter(|c| !present.iter().any(|p| p.eq_ignore_ascii_case(c)))
            .collect();
        if !missing.is_empty() {
            return Err(StoreError::invalid(format!(
                "{shown} has a {table} table without the column(s) {}; it is not a civikey store, and it was not modified",
                missing.join(", ")
            )));
        }
    }
    Ok(())
}

/// Stores up to this size get SQLite's full `quick_check` on every open.
const FULL_CHECK_MAX_BYTES: u64 = 16 << 20;

fn check_header(path: &Path) -> Result<(), StoreError> {
    let shown = path.display();
    let mut header = [0u8; 100];
    // O_NONBLOCK: a FIFO put in the file's place cannot hang civikey at open.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| StoreError::invalid(format!("cannot read {shown}: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| StoreError::invalid(format!("cannot read {shown}: {e}")))?;
    if !meta.is_file() {
        return Err(StoreError::invalid(format!(
            "{shown} is not a regular file (a FIFO, a device or a socket?); civikey refuses to use it"
        )));
    }
    let len = meta.len();
    let n = file
        .take(100)
        .read(&mut header)
        .map_err(|e| StoreError::invalid(format!("cannot read {shown}: {e}")))?;
    if n == 0 {
        return Err(StoreError::invalid(format!(
            "{shown} is empty, not a SQLite store; it was not modified"
        )));
    }
    if n < 16 || &header[..16] != b"SQLite format 3\0" {
        return Err(StoreError::invalid(format!(
            "{shown} is not a SQLite database; it was not modified"
        )));
    }
    // The header's page count is trustworthy when its "valid for" counter matches the
    // change counter (file format, section 1.3.7); a file shorter than that lost its end.
    let be32 = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    if n == 100 && be32(24) == be32(92) {
        let page_size = match u16::from_be_bytes([header[16], header[17]]) {
            1 => 65_536,
            size => u64::from(size),
        };
        let expected = page_size * u64::from(be32(28));
        if len < expected {
            return Err(StoreError::invalid(format!(
                "{shown} is damaged: it is {len} bytes long but its header says {expected} (was it cut off in a copy?); it was not modified"
            )));
        }
    }
    Ok(())
}

pub(crate) fn sql_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::ReadOnly) => StoreError::ReadOnly(SafeText::new(&e.to_string())),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Timeout(SafeText::new(&format!("the store file is locked: {e}")))
        }
        Some(ErrorCode::PermissionDenied) => {
            StoreError::PermissionDenied(SafeText::new(&e.to_string()))
        }
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::bad_data(e),
        Some(ErrorCode::DiskFull) => StoreError::invalid(format!("the disk is full: {e}")),
        _ => StoreError::bad_data(e),
    }
}

fn row_to_contact(row: &rusqlite::Row<'_>) -> rusqlite::Result<Contact> {
    let text = |i: usize| -> rusqlite::Result<SafeText> {
        Ok(SafeText::new(
            &row.get::<_, Option<String>>(i)?.unwrap_or_default(),
        ))
    };
    let id: i64 = row.get(0)?;
    Ok(Contact {
        id: id as ContactId,
        contact_type: text(1)?,
        display_name: text(2)?,
        sort_name: text(3)?,
        email: row.get::<_, Option<String>>(4)?.map(|e| SafeText::new(&e)),
        is_deleted: row.get::<_, Option<i64>>(5)?.unwrap_or(0) != 0,
        key: row
            .get::<_, Option<String>>(6)?
            .map(|k| KeyHint::of_whole(&zeroize::Zeroizing::new(k))),
        cms: match row.get::<_, Option<i64>>(7)? {
            Some(uf_id) => CmsLink::Linked {
                uf_id: uf_id as u64,
            },
            None => CmsLink::None,
        },
    })
}

/// `text` with LIKE's wildcards escaped (`\` is the escape character), then `%`.
fn like_prefix(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Where a search reads its contacts from and what they must satisfy (besides the
/// deleted flag and the page cursor, which every plan shares).
struct Plan {
    from: String,
    conditions: Vec<String>,
    args: Vec<Value>,
    /// The list order's two columns as this plan reads them; rows come out in this order.
    sort_key: &'static str,
    id: &'static str,
    /// Several rows per contact may match (one per word): keep one.
    one_per_contact: bool,
    /// The deleted flag and the cursor are already applied inside `from`.
    pages_itself: bool,
    /// An expression that is false for a row the index found wrongly (a stale word): the
    /// search is then answered without the index.
    check: Option<(String, Vec<Value>)>,
}

const LIST_ORDER: (&str, &str) = ("coalesce(c.sort_name, '')", "c.id");

impl Plan {
    /// Walk the contacts in list order (an index range on `civikey_sort_key`), testing each.
    fn in_list_order(indexed: bool, conditions: Vec<String>, args: Vec<Value>) -> Plan {
        let from = if indexed {
            "civicrm_contact c INDEXED BY civikey_sort_key"
        } else {
            "civicrm_contact c"
        };
        Plan {
            from: from.into(),
            conditions,
            args,
            sort_key: LIST_ORDER.0,
            id: LIST_ORDER.1,
            one_per_contact: false,
            pages_itself: false,
            check: None,
        }
    }

    /// Collect the ids `ids_sql` yields, then read and sort just those contacts.
    fn from_ids(ids_sql: &str, args: Vec<Value>) -> Plan {
        Plan {
            from: format!("({ids_sql}) m CROSS JOIN civicrm_contact c ON c.id = m.contact_id"),
            conditions: Vec::new(),
            args,
            sort_key: LIST_ORDER.0,
            id: LIST_ORDER.1,
            one_per_contact: false,
            pages_itself: false,
            check: None,
        }
    }

    /// Walk the words starting with the text's first one or `two` characters in list
    /// order (`civikey_word_head`, `_head2`), reading the contact of each that matches.
    fn by_head(two: bool, conditions: Vec<String>, args: Vec<Value>) -> Plan {
        let index = if two {
            "civikey_word_head2"
        } else {
            "civikey_word_head"
        };
        Plan {
            from: format!(
                "civikey_word w INDEXED BY {index}
                 CROSS JOIN civicrm_contact c ON c.id = w.contact_id"
            ),
            conditions,
            args,
            sort_key: "w.sort_key",
            id: "w.contact_id",
            one_per_contact: true,
            pages_itself: false,
            check: None,
        }
    }
}

/// The most contacts one page holds, whatever the caller asks for.
const MAX_PAGE: usize = 1000;

fn offset_refused() -> StoreError {
    StoreError::invalid("the SQLite store pages by key, not by offset")
}

/// The smallest string above every string starting with `prefix` in NOCASE order (which
/// is code point order after folding A-Z to a-z), or None when there is none.
fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        // The next code point NOCASE can hold (it never sees A-Z: they compare as a-z).
        let next = (u32::from(last) + 1..=u32::from(char::MAX))
            .filter_map(char::from_u32)
            .find(|c| !c.is_ascii_uppercase());
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

impl SqliteStore {
    /// Chooses how to find the contacts `query` matches.
    fn plan(&mut self, query: &Query) -> Result<Plan, StoreError> {
        let indexed = self.indexed;
        Ok(match query.matcher() {
            Matcher::All => Plan::in_list_order(indexed, Vec::new(), Vec::new()),
            Matcher::Id(id) => {
                let mut plan = Plan::in_list_order(false, vec!["c.id = ?".into()], Vec::new());
                plan.args.push(Value::Integer(id as i64));
                plan
            }
            Matcher::EmailPrefix(text) => {
                // UI_email compares without case, so the LIKE is a range of that index.
                let pattern = Value::Text(like_prefix(text));
                let matches = self.count_up_to(
                    "SELECT 1 FROM civicrm_email WHERE email LIKE ?1 ESCAPE '\\' LIMIT ?2",
                    vec![pattern.clone()],
                    self.dense_matches,
                )?;
                if matches > self.dense_matches {
                    Plan::in_list_order(
                        indexed,
                        vec!["EXISTS (SELECT 1 FROM civicrm_email e WHERE e.contact_id = c.id AND e.email LIKE ? ESCAPE '\\')".into()],
                        vec![pattern],
                    )
                } else {
                    Plan::from_ids(
                        "SELECT DISTINCT contact_id FROM civicrm_email WHERE email LIKE ? ESCAPE '\\'",
                        vec![pattern],
                    )
                }
            }
            Matcher::Name(text) if !query.deep && self.refresh_words()? => {
                // Every keystroke match has a word starting with the text's first word (the
                // whole text starts with it, and so does the first part of every first/last
                // split): that range finds the candidates, [`name_matches`] decides.
                let folded = crate::store::collation::fold(text);
                let prefix = folded
                    .split(char::is_whitespace)
                    .next()
                    .unwrap_or(&folded)
                    .to_string();
                let several_words = prefix.len() < folded.len();
                if several_words && self.pairs_fresh {
                    if let Some(plan) = self.pair_plan(query, text, &folded)? {
                        return Ok(plan);
                    }
                }
                // Both bounds must be in the SQL text (not `? IS NULL OR ...`) for SQLite
                // to read only the range.
                let mut range_args = vec![Value::Text(prefix.clone())];
                let upper = match prefix_upper_bound(&prefix) {
                    Some(high) => {
                        range_args.push(Value::Text(high));
                        " AND {w}word < ?"
                    }
                    None => "",
                };
                let range = |w: &str| format!("{w}word >= ?{}", upper.replace("{w}", w));
                // One or two characters: every word in that head's list matches, so walking
                // it in list order wastes nothing. Longer: count the matching words.
                let short = prefix.chars().nth(2).is_none();
                let matches = if short {
                    i64::MAX
                } else {
                    self.count_up_to(
                        &format!("SELECT 1 FROM civikey_word WHERE {} LIMIT ?", range("")),
                        range_args.clone(),
                        self.dense_matches,
                    )?
                };
                let (verify, verify_args) = name_condition(text, false);
                if matches > self.dense_matches {
                    // Common: walk the words that start as the text does (one or two
                    // characters), list order. A page needs only its first matches.
                    let two = prefix.chars().nth(1).is_some();
                    let column = if two { "head2" } else { "head" };
                    let mut args = vec![Value::Text(head(&prefix, if two { 2 } else { 1 }))];
                    args.extend(range_args);
                    args.extend(verify_args);
                    Plan::by_head(
                        two,
                        vec![format!("w.{column} = ? AND {} AND {verify}", range("w."))],
                        args,
                    )
                } else {
                    // Rare: sort the matching words' contacts by the list order the word
                    // table holds, then read only one page of contacts. Several words:
                    // the candidates are tested before the page is cut.
                    let mut inner = format!(
                        "SELECT w.sort_key, w.contact_id FROM civikey_word w WHERE {}",
                        range("w.")
                    );
                    let mut args = range_args;
                    if several_words {
                        inner.push_str(&format!(
                            " AND EXISTS (SELECT 1 FROM civicrm_contact c WHERE c.id = w.contact_id AND {verify})"
                        ));
                        args.extend(verify_args.iter().cloned());
                    }
                    if !query.include_deleted {
                        inner.push_str(" AND EXISTS (SELECT 1 FROM civicrm_contact d WHERE d.id = w.contact_id AND d.is_deleted = 0)");
                    }
                    match &query.after {
                        Some(Cursor::After { sort_name, id }) => {
                            inner.push_str(
                                " AND w.sort_key >= ? AND (w.sort_key > ? OR w.contact_id > ?)",
                            );
                            args.push(Value::Text(sort_name.clone().unwrap_or_default()));
                            args.push(Value::Text(sort_name.clone().unwrap_or_default()));
                            args.push(Value::Integer(*id as i64));
                        }
                        Some(Cursor::Offset(_)) => return Err(offset_refused()),
                        None => {}
                    }
                    inner.push_str(" GROUP BY w.sort_key, w.contact_id ORDER BY w.sort_key, w.contact_id LIMIT ?");
                    args.push(Value::Integer(query.limit.clamp(1, MAX_PAGE) as i64 + 1));
                    Plan {
                        from: format!(
                            "({inner}) m CROSS JOIN civicrm_contact c ON c.id = m.contact_id"
                        ),
                        conditions: Vec::new(),
                        args,
                        sort_key: "m.sort_key",
                        id: "m.contact_id",
                        one_per_contact: false,
                        pages_itself: true,
                        check: Some((verify, verify_args)),
                    }
                }
            }
            Matcher::Name(text) => {
                // A deep search (a word inside the display name), or no usable word table:
                // every contact tested, in list order.
                let (condition, args) = name_condition(text, query.deep);
                Plan::in_list_order(indexed, vec![condition], args)
            }
        })
    }

    /// A search of several words through the pair table ([`PAIR_TABLES`]). Its matches
    /// are exactly the contacts with a word starting with the whole text (a name that
    /// starts so) and, for each split into a first-name and a last-name prefix, those with
    /// a pair whose two names start with its two parts: index ranges only, no contact read
    /// or tested before the page is cut. A split's pairs are found by the distinct names
    /// starting with its longer part (both orders are in the table, so either part can
    /// lead), each a range of the pairs that continue with the other part. The candidates
    /// (past the cursor) come in the list position the tables hold and are merged
    /// (`UNION ... ORDER BY`), cut to the page, and only the page's contacts read. None
    /// (search the older way): more than [`PAIR_DENSE_FACTOR`] times the dense threshold
    /// of pairs, or a prefix whose range has no upper bound.
    fn pair_plan(
        &mut self,
        query: &Query,
        text: &str,
        folded: &str,
    ) -> Result<Option<Plan>, StoreError> {
        let Some(high) = prefix_upper_bound(folded) else {
            return Ok(None);
        };
        // Parameters in the order they appear: the name lists (WITH) first, then the arms.
        let mut lists = Vec::new();
        let mut list_args = Vec::new();
        // Each arm: its FROM and WHERE, the columns it reads the list order from, its
        // parameters. The words starting with the text: more than the dense threshold,
        // walked in list order (the words with the text's first two characters,
        // `civikey_word_head2`), so the merge below reads only as many as the page needs;
        // fewer, collected and sorted.
        let range_args = vec![Value::Text(folded.to_string()), Value::Text(high)];
        let words = self.count_up_to(
            "SELECT 1 FROM civikey_word WHERE word >= ? AND word < ? LIMIT ?",
            range_args.clone(),
            self.dense_matches,
        )?;
        let mut arms = vec![if words > self.dense_matches {
            let mut args = vec![Value::Text(head(folded, 2))];
            args.extend(range_args);
            (
                "FROM civikey_word w INDEXED BY civikey_word_head2
                  WHERE w.head2 = ? AND w.word >= ? AND w.word < ?"
                    .to_string(),
                "w",
                args,
            )
        } else {
            (
                "FROM civikey_word w WHERE w.word >= ? AND w.word < ?".to_string(),
                "w",
                range_args,
            )
        }];
        for (i, (a, b)) in crate::store::name_splits(folded).into_iter().enumerate() {
            let (lead, other) = if b.chars().count() > a.chars().count() {
                (b, a)
            } else {
                (a, b)
            };
            let (Some(lead_high), Some(other_high)) =
                (prefix_upper_bound(lead), prefix_upper_bound(other))
            else {
                return Ok(None);
            };
            // The distinct names starting with `lead`, one index seek each (a skip scan).
            lists.push(format!(
                "n{i}(a) AS (
                   SELECT (SELECT a FROM civikey_word_pair WHERE a >= ? AND a < ? ORDER BY a LIMIT 1)
                   UNION ALL
                   SELECT (SELECT p.a FROM civikey_word_pair p WHERE p.a > n{i}.a AND p.a < ? ORDER BY p.a LIMIT 1)
                     FROM n{i} WHERE n{i}.a IS NOT NULL)"
            ));
            list_args.extend([
                Value::Text(lead.to_string()),
                Value::Text(lead_high.clone()),
                Value::Text(lead_high),
            ]);
            arms.push((
                format!(
                    "FROM n{i} CROSS JOIN civikey_word_pair p
                      WHERE p.a = n{i}.a AND p.b >= ? AND p.b < ?"
                ),
                "p",
                vec![Value::Text(other.to_string()), Value::Text(other_high)],
            ));
        }
        let with = if lists.is_empty() {
            String::new()
        } else {
            format!("WITH RECURSIVE {} ", lists.join(", "))
        };
        // The pairs are always collected and sorted: beyond a bound, the older walk.
        let most = self.dense_matches.saturating_mul(PAIR_DENSE_FACTOR);
        if arms.len() > 1 {
            let mut args = list_args.clone();
            args.extend(arms[1..].iter().flat_map(|(_, _, a)| a.iter().cloned()));
            let pairs = self.count_up_to(
                &format!(
                    "{with}SELECT 1 FROM ({}) LIMIT ?",
                    arms[1..]
                        .iter()
                        .map(|(from, _, _)| format!("SELECT 1 {from}"))
                        .collect::<Vec<_>>()
                        .join(" UNION ALL ")
                ),
                args,
                most,
            )?;
            if pairs > most {
                return Ok(None);
            }
        }
        let mut args = list_args;
        let mut selects = Vec::new();
        for (from, t, arm_args) in arms {
            let mut select = format!("SELECT {t}.sort_key, {t}.contact_id {from}");
            args.extend(arm_args);
            if !query.include_deleted {
                select.push_str(&format!(" AND EXISTS (SELECT 1 FROM civicrm_contact d WHERE d.id = {t}.contact_id AND d.is_deleted = 0)"));
            }
            match &query.after {
                Some(Cursor::After { sort_name, id }) => {
                    select.push_str(&format!(
                        " AND {t}.sort_key >= ? AND ({t}.sort_key > ? OR {t}.contact_id > ?)"
                    ));
                    args.push(Value::Text(sort_name.clone().unwrap_or_default()));
                    args.push(Value::Text(sort_name.clone().unwrap_or_default()));
                    args.push(Value::Integer(*id as i64));
                }
                Some(Cursor::Offset(_)) => return Err(offset_refused()),
                None => {}
            }
            selects.push(select);
        }
        // A compound ORDER BY: each arm sorted, then merged without duplicates (cheaper
        // than a UNION sorted again).
        let inner = format!("{with}{} ORDER BY 1, 2 LIMIT ?", selects.join(" UNION "));
        args.push(Value::Integer(query.limit.clamp(1, MAX_PAGE) as i64 + 1));
        Ok(Some(Plan {
            from: format!("({inner}) m CROSS JOIN civicrm_contact c ON c.id = m.contact_id"),
            conditions: Vec::new(),
            args,
            sort_key: "m.sort_key",
            id: "m.contact_id",
            one_per_contact: false,
            pages_itself: true,
            // The page's contacts are tested: a pair the index holds wrongly (a writer
            // around the triggers) sends the search the unindexed way.
            check: Some(name_condition(text, false)),
        }))
    }

    /// How many rows `sql` (whose last parameter is its LIMIT) yields, counting at most
    /// one more than `most`.
    fn count_up_to(
        &mut self,
        sql: &str,
        mut args: Vec<Value>,
        most: i64,
    ) -> Result<i64, StoreError> {
        args.push(Value::Integer(most.saturating_add(1)));
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT count(*) FROM ({sql})"))
            .map_err(sql_err)?;
        stmt.query_row(rusqlite::params_from_iter(args), |r| r.get(0))
            .map_err(sql_err)
    }
}

/// The name match ([`crate::store::name_matches`]) tested on contact `c`.
fn name_condition(text: &str, deep: bool) -> (String, Vec<Value>) {
    (
        "civikey_name_match(?, ?, c.sort_name, c.first_name, c.last_name, c.display_name, c.contact_type)"
            .into(),
        vec![Value::Text(text.to_string()), Value::Integer(i64::from(deep))],
    )
}

impl ContactStore for SqliteStore {
    fn info(&self) -> StoreInfo {
        StoreInfo {
            kind: StoreKind::Sqlite,
            location: SafeText::new(&format!("sqlite:{}", self.path.display())),
            key_capacity: KEY_LEN,
            keys_case_insensitive: true,
            writable: self.writable,
        }
    }

    fn search(&mut self, query: &Query) -> Result<Page, StoreError> {
        let limit = query.limit.clamp(1, MAX_PAGE);
        let plan = self.plan(query)?;
        let (check, mut args) = match plan.check {
            Some((check, check_args)) => (check, check_args),
            None => ("1".to_string(), Vec::new()),
        };
        args.extend(plan.args);
        let mut sql = format!("SELECT {CONTACT_COLUMNS}, {check} FROM {}", plan.from);
        let mut conditions = plan.conditions;
        if !query.include_deleted && !plan.pages_itself {
            conditions.push("c.is_deleted = 0".into());
        }
        let (sort_key, id_column) = (plan.sort_key, plan.id);
        match &query.after {
            _ if plan.pages_itself => {}
            None => {}
            Some(Cursor::After { sort_name, id }) => {
                // Spelled out rather than as a row value, which SQLite does not turn into
                // a range of the expression index (it would scan from the first contact).
                conditions.push(format!(
                    "{sort_key} >= ? AND ({sort_key} > ? OR {id_column} > ?)"
                ));
                args.push(Value::Text(sort_name.clone().unwrap_or_default()));
                args.push(Value::Text(sort_name.clone().unwrap_or_default()));
                args.push(Value::Integer(*id as i64));
            }
            Some(Cursor::Offset(_)) => return Err(offset_refused()),
        }
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        if plan.one_per_contact {
            sql.push_str(&format!(" GROUP BY {sort_key}, {id_column}"));
        }
        sql.push_str(&format!(" ORDER BY {sort_key}, {id_column} LIMIT ?"));
        args.push(Value::Integer(limit as i64 + 1));

        let mut stmt = self.conn.prepare_cached(&sql).map_err(sql_err)?;
        let mut rows: Vec<(Contact, String, bool)> = stmt
            .query_map(rusqlite::params_from_iter(args), |row| {
                Ok((
                    row_to_contact(row)?,
                    row.get::<_, String>(8)?,
                    row.get::<_, Option<bool>>(9)?.unwrap_or(false),
                ))
            })
            .map_err(sql_err)?
            .collect::<Result<_, _>>()
            .map_err(sql_err)?;
        drop(stmt);
        if rows.iter().any(|(_, _, ok)| !ok) {
            // The word table disagrees with a contact (a writer went around the triggers):
            // answer this search without it.
            self.indexed = false;
            let page = self.search(query);
            self.indexed = true;
            return page;
        }
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = match rows.last() {
            // The list order's key is `coalesce(sort_name, '')`: a NULL sort name is ''.
            Some((last, sort_key, _)) if more => Some(Cursor::After {
                sort_name: Some(sort_key.clone()),
                id: last.id,
            }),
            _ => None,
        };
        Ok(Page {
            contacts: rows.into_iter().map(|(c, _, _)| c).collect(),
            next,
        })
    }

    fn contact(&mut self, id: ContactId) -> Result<Contact, StoreError> {
        let sql = format!("SELECT {CONTACT_COLUMNS} FROM civicrm_contact c WHERE c.id = ?");
        self.conn
            .query_row(&sql, [id as i64], row_to_contact)
            .optional()
            .map_err(sql_err)?
            .ok_or(StoreError::NotFound(id))
    }

    /// Contacts that do not exist are left out.
    fn standings(
        &mut self,
        ids: &[ContactId],
    ) -> Result<std::collections::HashMap<ContactId, Standing>, StoreError> {
        let mut out = std::collections::HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(STANDING_CHUNK) {
            self.standings_chunk(chunk, &mut out)?;
        }
        Ok(out)
    }

    fn holders_of(&mut self, key: &ApiKey) -> Result<Vec<ContactId>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id FROM civicrm_contact WHERE api_key = ? COLLATE NOCASE ORDER BY id",
            )
            .map_err(sql_err)?;
        let ids = stmt
            .query_map([key.expose()], |r| r.get::<_, i64>(0))
            .map_err(sql_err)?
            .map(|r| r.map(|id| id as ContactId))
            .collect::<Result<_, _>>()
            .map_err(sql_err)?;
        Ok(ids)
    }

    fn read_key(&mut self, id: ContactId) -> Result<Option<ApiKey>, StoreError> {
        let value: Option<Option<String>> = self
            .conn
            .query_row(
                "SELECT api_key FROM civicrm_contact WHERE id = ?",
                [id as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql_err)?;
        match value {
            None => Err(StoreError::NotFound(id)),
            Some(None) => Ok(None),
            Some(Some(v)) if v.is_empty() => Ok(None),
            Some(Some(v)) => Ok(Some(ApiKey::from_store(v))),
        }
    }

    /// A range of index_api_key (NOCASE, then id): the keyed rows only, in key order
    /// (`> ''` starts the range past the NULLs and empty strings).
    fn key_holders(
        &mut self,
        after: Option<&HolderCursor>,
        limit: usize,
    ) -> Result<HolderPage, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let mut sql = format!(
            "SELECT {CONTACT_COLUMNS}, c.api_key FROM civicrm_contact c
              WHERE c.api_key > '' COLLATE NOCASE"
        );
        let mut args = Vec::new();
        match after {
            None => {}
            Some(HolderCursor::AfterKey { key, id }) => {
                sql.push_str(
                    " AND c.api_key >= ?1 COLLATE NOCASE
                      AND (c.api_key > ?1 COLLATE NOCASE OR c.id > ?2)",
                );
                args.push(Value::Text(key.expose().to_string()));
                args.push(Value::Integer(*id as i64));
            }
            Some(HolderCursor::Offset(_)) => return Err(offset_refused()),
        }
        sql.push_str(&format!(
            " ORDER BY c.api_key COLLATE NOCASE, c.id LIMIT {}",
            limit + 1
        ));
        let mut stmt = self.conn.prepare_cached(&sql).map_err(sql_err)?;
        let mut holders = stmt
            .query_map(rusqlite::params_from_iter(&args), |row| {
                Ok(Holder {
                    contact: row_to_contact(row)?,
                    key: ApiKey::from_store(row.get::<_, String>(9)?),
                })
            })
            .map_err(sql_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql_err)?;
        // The cursor's copy of a key is wiped with the argument list.
        for arg in &mut args {
            if let Value::Text(text) = arg {
                zeroize::Zeroize::zeroize(text);
            }
        }
        let more = holders.len() > limit;
        holders.truncate(limit);
        let next = match holders.last() {
            Some(last) if more => Some(HolderCursor::AfterKey {
                key: last.key.clone(),
                id: last.contact.id,
            }),
            _ => None,
        };
        Ok(HolderPage { holders, next })
    }

    fn swap_key(
        &mut self,
        id: ContactId,
        expected: Option<&ApiKey>,
        new: Option<&ApiKey>,
    ) -> Result<(), StoreError> {
        self.require_writable()?;
        // `IS` is SQLite's null-safe equality; BINARY collation makes it byte for byte. An
        // empty string counts as "no key", as CiviCRM treats it.
        let changed = self
            .conn
            .execute(
                "UPDATE civicrm_contact
                    SET api_key = ?1, modified_date = CURRENT_TIMESTAMP
                  WHERE id = ?2
                    AND (api_key IS ?3 COLLATE BINARY
                         OR (?3 IS NULL AND api_key = ''))",
                params![
                    new.map(ApiKey::expose),
                    id as i64,
                    expected.map(ApiKey::expose)
                ],
            )
            .map_err(sql_err)?;
        match changed {
            1 => Ok(()),
            0 => {
                let exists: Option<i64> = self
                    .conn
                    .query_row(
                        "SELECT 1 FROM civicrm_contact WHERE id = ?",
                        [id as i64],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(sql_err)?;
                match exists {
                    Some(_) => Err(StoreError::Conflict),
                    None => Err(StoreError::NotFound(id)),
                }
            }
            n => Err(StoreError::bad_data(format!(
                "{n} rows changed for one contact id"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::synthetic_contacts;

    fn ids(store: &mut SqliteStore, text: &str, include_deleted: bool) -> Vec<ContactId> {
        let mut q = Query::new(text, 7);
        q.include_deleted = include_deleted;
        let mut out = Vec::new();
        loop {
            let page = store.search(&q).unwrap();
            out.extend(page.contacts.iter().map(|c| c.id));
            match page.next {
                Some(next) => q.after = Some(next),
                None => return out,
            }
        }
    }

    /// The answer by definition: every contact tested in Rust ([`crate::store::name_matches`]
    /// for names, the email LIKE for emails), in list order.
    fn reference(conn: &Connection, text: &str, include_deleted: bool) -> Vec<ContactId> {
        reference_with(conn, text, include_deleted, false)
    }

    fn reference_with(
        conn: &Connection,
        text: &str,
        include_deleted: bool,
        deep: bool,
    ) -> Vec<ContactId> {
        let deleted = if include_deleted {
            ""
        } else {
            " WHERE c.is_deleted = 0"
        };
        let q = Query::new(text, 1);
        let email = match q.matcher() {
            Matcher::EmailPrefix(t) => Some(like_prefix(t)),
            Matcher::Name(_) => None,
            other => panic!("not a text search: {other:?}"),
        };
        let sql = format!(
            "SELECT c.id, c.sort_name, c.first_name, c.last_name, c.display_name, c.contact_type,
                    EXISTS (SELECT 1 FROM civicrm_email e WHERE e.contact_id = c.id AND e.email LIKE ?1 ESCAPE '\\')
               FROM civicrm_contact c NOT INDEXED{deleted} ORDER BY coalesce(c.sort_name, ''), c.id"
        );
        let mut stmt = conn.prepare(&sql).unwrap();
        let pattern = email.clone().unwrap_or_default();
        stmt.query_map([pattern], |r| {
            Ok((r.get::<_, i64>(0)?, row_names(r, 1)?, r.get::<_, bool>(6)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .filter(|(_, names, email_match)| match &email {
            Some(_) => *email_match,
            None => crate::store::name_matches(&q.text, &names.names(), deep),
        })
        .map(|(id, _, _)| id as ContactId)
        .collect()
    }

    const QUERIES: &[&str] = &[
        "s",
        "Sm",
        "smith",
        "SMITH, J",
        "wang",
        "li",
        "van der",
        "der Berg",
        "de la",
        "ann lee",
        "wei w",
        "wei wang",
        "WANG WEI",
        "w wei",
        "wu w",
        "li na",
        "li na w",
        "na li",
        "garcía, j",
        "maria garcia",
        "garcia m",
        "m g",
        "van d",
        "jose maria",
        "müller",
        "MÜLLER",
        "Мария",
        "山",
        "山田",
        "o'b",
        "family",
        "acme",
        "%",
        "_",
        "a_",
        "zz",
        "ada.",
        "info1",
        "MARIA.GARCIA",
        "household12@",
        "x@",
        "@",
        "ü",
    ];

    fn store_with(count: usize) -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let mut contacts: Vec<SeedContact> = synthetic_contacts(count, 3).collect();
        // Edge cases: spaces where words are looked for, case, wildcards, no names.
        for (i, (sort, display)) in [
            ("  lead, Space", "  Lead Space"),
            ("Tail ", "Tail  "),
            ("double  gap, X", "X  double  gap"),
            ("", ""),
            ("100%Sure", "a_b 100%Sure"),
        ]
        .into_iter()
        .enumerate()
        {
            contacts.push(SeedContact {
                id: Some((count + 1 + i) as i64),
                contact_type: "Individual".into(),
                sort_name: sort.into(),
                display_name: display.into(),
                ..SeedContact::default()
            });
        }
        let store = SqliteStore::create(&path, contacts, &mut |_| {}).unwrap();
        (dir, store)
    }

    #[test]
    fn every_plan_answers_as_the_reference() {
        let (_dir, mut store) = store_with(3000);
        assert!(store.indexed);
        for text in QUERIES.iter().copied().chain([
            "  lead", "tail", "double", "gap", "a_b", "ann l", "l ann", "jose",
        ]) {
            for deleted in [true, false] {
                let expected = reference(&store.conn, text, deleted);
                for dense in [0, 20, DENSE_MATCHES] {
                    store.dense_matches = dense;
                    for paired in [true, false] {
                        store.paired = paired;
                        assert_eq!(
                            ids(&mut store, text, deleted),
                            expected,
                            "{text:?} dense={dense} deleted={deleted} paired={paired}"
                        );
                    }
                }
                store.indexed = false;
                assert_eq!(
                    ids(&mut store, text, deleted),
                    expected,
                    "{text:?} unindexed"
                );
                store.indexed = true;
            }
        }
    }

    #[test]
    fn a_deep_search_also_finds_a_word_inside_the_display_name() {
        let (_dir, mut store) = store_with(2000);
        let deep = |store: &mut SqliteStore, text: &str| {
            let mut q = Query::new(text, 1000);
            q.deep = true;
            store
                .search(&q)
                .unwrap()
                .contacts
                .iter()
                .map(|c| c.id)
                .collect::<Vec<_>>()
        };
        for text in ["der Berg", "lee", "gap", "Widgets"] {
            let expected = reference_with(&store.conn, text, true, true);
            assert_eq!(deep(&mut store, text), expected, "{text:?}");
            let keystroke = reference(&store.conn, text, true);
            assert!(keystroke.iter().all(|id| expected.contains(id)), "{text:?}");
        }
        // "double  gap, X" / "X  double  gap": "gap" is inside the display name only.
        assert!(reference(&store.conn, "gap", true).is_empty());
        assert!(!deep(&mut store, "gap").is_empty());
    }

    #[test]
    fn names_match_without_case_or_accents_in_every_script() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u.sqlite");
        let person = |id: i64, first: &str, last: &str| SeedContact {
            id: Some(id),
            contact_type: "Individual".into(),
            display_name: format!("{first} {last}"),
            sort_name: format!("{last}, {first}"),
            first_name: Some(first.into()),
            last_name: Some(last.into()),
            ..SeedContact::default()
        };
        let contacts = vec![
            person(1, "José", "García"),
            person(2, "Søren", "Kierkegaard"),
            person(3, "Иван", "Петров"),
            SeedContact {
                id: Some(4),
                contact_type: "Organization".into(),
                display_name: "Café Étoile".into(),
                sort_name: "Café Étoile".into(),
                ..SeedContact::default()
            },
            person(5, "Jürgen", "Straße"),
        ];
        let mut store = SqliteStore::create(&path, contacts, &mut |_| {}).unwrap();
        for (text, expected) in [
            ("jose", vec![1]),
            ("JOSÉ GARC", vec![1]),
            ("garcia, j", vec![1]),
            ("SØREN", vec![2]),
            ("søren k", vec![2]),
            ("иван", vec![3]),
            ("ПЕТР", vec![3]),
            ("cafe", vec![4]),
            ("CAFÉ ÉT", vec![4]),
            ("etoile", vec![]),
            ("straße", vec![5]),
            ("STRAẞE", vec![5]),
            ("strasse", vec![]),
            ("jurgen", vec![5]),
        ] {
            for indexed in [true, false] {
                store.indexed = indexed;
                assert_eq!(ids(&mut store, text, true), expected, "{text:?} {indexed}");
            }
        }
        let mut q = Query::new("etoile", 10);
        q.deep = true;
        let found: Vec<_> = store
            .search(&q)
            .unwrap()
            .contacts
            .iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(
            found,
            vec![4],
            "a deep search finds the word inside the name"
        );
    }

    fn word_rows(conn: &Connection) -> Vec<(String, i64, String, String)> {
        let mut stmt = conn
            .prepare("SELECT word, contact_id, sort_key, head || '|' || head2 FROM civikey_word ORDER BY 1, 2")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn pair_rows(conn: &Connection) -> Vec<(String, String, i64, String)> {
        let mut stmt = conn
            .prepare("SELECT a, b, contact_id, sort_key FROM civikey_word_pair ORDER BY 1, 2, 3")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn words_built_while_seeding_equal_words_built_on_open() {
        let (_dir, mut store) = store_with(2000);
        let built = word_rows(&store.conn);
        let pairs = pair_rows(&store.conn);
        assert!(built.len() > 4000);
        assert!(pairs.len() > 2000);
        install_search_index(&mut store.conn, None).unwrap();
        assert_eq!(word_rows(&store.conn), built);
        assert_eq!(pair_rows(&store.conn), pairs);
        install_pair_index(&mut store.conn).unwrap();
        assert_eq!(pair_rows(&store.conn), pairs);
        assert!(has_pair_index(&store.conn).unwrap());
    }

    #[test]
    fn a_store_from_before_the_pair_table_gets_it_once() {
        let (dir, store) = store_with(600);
        let path = dir.path().join("s.sqlite");
        let pairs = pair_rows(&store.conn);
        let words = word_rows(&store.conn);
        drop(store);
        // The previous version: the word table and triggers that note only its changes.
        let old_triggers = "
            CREATE TRIGGER civikey_word_insert AFTER INSERT ON civicrm_contact BEGIN
                INSERT OR IGNORE INTO civikey_word_stale (contact_id, indexed) VALUES (NEW.id, 0);
            END;
            CREATE TRIGGER civikey_word_update
            AFTER UPDATE OF id, sort_name, first_name, last_name, display_name, contact_type
            ON civicrm_contact BEGIN
                INSERT OR IGNORE INTO civikey_word_stale VALUES
                    (OLD.id, 1, OLD.sort_name, OLD.first_name, OLD.last_name, OLD.display_name, OLD.contact_type);
                INSERT OR IGNORE INTO civikey_word_stale (contact_id, indexed) VALUES (NEW.id, 0);
            END;
            CREATE TRIGGER civikey_word_delete AFTER DELETE ON civicrm_contact BEGIN
                INSERT OR IGNORE INTO civikey_word_stale VALUES
                    (OLD.id, 1, OLD.sort_name, OLD.first_name, OLD.last_name, OLD.display_name, OLD.contact_type);
            END;";
        let old = Connection::open(&path).unwrap();
        old.execute_batch(&format!(
            "DROP TRIGGER civikey_word_insert; DROP TRIGGER civikey_word_update;
             DROP TRIGGER civikey_word_delete; DROP TABLE civikey_word_pair;
             DROP TABLE civikey_pair_stale; {old_triggers}"
        ))
        .unwrap();
        // A read-only handle searches several words the older way, with the same answers.
        let mut read_only = SqliteStore::open_with(&path, true).unwrap();
        assert!(read_only.indexed && !read_only.paired);
        for text in ["wei w", "maria garcia", "smith"] {
            let expected = reference(&read_only.conn, text, true);
            assert_eq!(ids(&mut read_only, text, true), expected, "{text}");
        }
        drop(read_only);
        let store = SqliteStore::open(&path).unwrap();
        assert!(store.indexed && store.paired);
        assert_eq!(pair_rows(&store.conn), pairs);
        assert_eq!(word_rows(&store.conn), words, "the words were kept");
        // Once: a marker row survives the next open.
        store
            .conn
            .execute(
                "INSERT INTO civikey_word_pair VALUES ('marker', 'row', 1, '')",
                [],
            )
            .unwrap();
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        assert!(store.paired);
        assert_eq!(pair_rows(&store.conn).len(), pairs.len() + 1);
        // Triggers made again without the pair notes (an older civikey rebuilding its
        // index): the pairs are rebuilt too.
        drop(store);
        Connection::open(&path)
            .unwrap()
            .execute_batch(&format!(
                "DROP TRIGGER civikey_word_insert; DROP TRIGGER civikey_word_update;
                 DROP TRIGGER civikey_word_delete; {old_triggers}"
            ))
            .unwrap();
        let store = SqliteStore::open(&path).unwrap();
        assert!(store.paired);
        assert_eq!(pair_rows(&store.conn), pairs);
    }

    #[test]
    fn several_words_are_answered_by_the_pair_table() {
        let (dir, mut store) = store_with(3000);
        for text in ["wei w", "maria garcia", "garcía, j", "li na w"] {
            let plan = store.plan(&Query::new(text, 7)).unwrap();
            assert!(plan.from.contains("civikey_word_pair"), "{text}");
            assert!(!reference(&store.conn, text, true).is_empty(), "{text}");
        }
        // One word: the word table alone.
        let plan = store.plan(&Query::new("wei", 7)).unwrap();
        assert!(!plan.from.contains("civikey_word_pair"));
        // Many names starting with the whole text: walked in list order, merged with the
        // pairs; too many pairs: the older walk.
        store.dense_matches = 2;
        let plan = store.plan(&Query::new("van d", 7)).unwrap();
        assert!(plan.from.contains("civikey_word_pair"));
        assert!(plan.from.contains("INDEXED BY civikey_word_head2"));
        let plan = store.plan(&Query::new("m g", 7)).unwrap();
        assert!(!plan.from.contains("civikey_word_pair"));
        store.dense_matches = DENSE_MATCHES;
        // A pair no contact has (written around the triggers) never shows a contact.
        let other = Connection::open(dir.path().join("s.sqlite")).unwrap();
        other
            .execute(
                "INSERT INTO civikey_word_pair VALUES ('bogusfirst', 'boguslast', 3, 'B')",
                [],
            )
            .unwrap();
        assert!(reference(&store.conn, "bogusfirst bogusl", true).is_empty());
        assert!(ids(&mut store, "bogusfirst bogusl", true).is_empty());
        assert!(ids(&mut store, "boguslast b", true).is_empty());
    }

    #[test]
    fn pairs_an_older_civikey_left_stale_are_refolded() {
        let (dir, mut store) = store_with(300);
        let path = dir.path().join("s.sqlite");
        let other = Connection::open(&path).unwrap();
        other
            .execute_batch(
                "UPDATE civicrm_contact SET first_name = 'Quentin', last_name = 'Zebrafish', sort_name = 'Zebrafish, Quentin' WHERE id = 1;
                 INSERT INTO civicrm_contact (id, contact_type, display_name, sort_name, first_name, last_name) VALUES (9001, 'Individual', 'Xavier Quokka', 'Quokka, Xavier', 'Xavier', 'Quokka');",
            )
            .unwrap();
        // An older civikey refolds the words (here: this one, pairs left out) and clears
        // only the word notes.
        store.paired = false;
        assert_eq!(ids(&mut store, "zebrafish", true), vec![1]);
        store.paired = true;
        let noted: i64 = store
            .conn
            .query_row("SELECT count(*) FROM civikey_pair_stale", [], |r| r.get(0))
            .unwrap();
        assert!(noted >= 2, "the pair notes wait");
        let mut read_only = SqliteStore::open_with(&path, true).unwrap();
        assert!(read_only.paired);
        for text in ["quentin zeb", "zebrafish q", "xavier quokka", "q x"] {
            let expected = reference(&store.conn, text, true);
            assert!(!expected.is_empty(), "{text}");
            assert_eq!(
                ids(&mut read_only, text, true),
                expected,
                "{text} read-only"
            );
            assert_eq!(ids(&mut store, text, true), expected, "{text}");
        }
        assert_eq!(pair_rows(&store.conn), {
            let fresh = pair_rows(&store.conn);
            install_pair_index(&mut store.conn).unwrap();
            assert_eq!(
                pair_rows(&store.conn),
                fresh,
                "refolded as a rebuild makes them"
            );
            fresh
        });
    }

    #[test]
    fn other_writers_keep_the_index_in_step() {
        let (dir, mut store) = store_with(500);
        let path = dir.path().join("s.sqlite");
        // Another program writes the file: the sqlite3 shell, a script (no civikey function
        // is needed to write).
        let other = Connection::open(&path).unwrap();
        other
            .execute_batch(
                "UPDATE civicrm_contact SET contact_type = 'Individual', display_name = 'Quentin Zebrafish', sort_name = 'Zebrafish, Quentin', first_name = 'Quentin', last_name = 'Zebrafish' WHERE id = 1;
                 INSERT INTO civicrm_contact (id, contact_type, display_name, sort_name, first_name, last_name) VALUES (9001, 'Individual', 'Xavier Quokka', 'Quokka, Xavier', 'Xavier', 'Quokka');
                 UPDATE civicrm_contact SET is_deleted = 1 WHERE id = 9001;
                 DELETE FROM civicrm_contact WHERE id = 2;",
            )
            .unwrap();
        // A read-only handle cannot refold: it answers without the word table, correctly.
        let mut read_only = SqliteStore::open_with(&path, true).unwrap();
        for text in ["zebra", "quentin", "quokka", "xavier q", "QUOKKA X"] {
            let expected = reference(&store.conn, text, true);
            assert!(!expected.is_empty(), "{text}");
            assert_eq!(
                ids(&mut read_only, text, true),
                expected,
                "{text} read-only"
            );
            assert_eq!(ids(&mut store, text, true), expected, "{text}");
        }
        assert!(ids(&mut store, "quokka", false).is_empty());
        let stale: i64 = store
            .conn
            .query_row("SELECT count(*) FROM civikey_word_stale", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stale, 0, "the changed contacts were refolded");
        // A word no contact has (written around the triggers) never shows a contact.
        other
            .execute(
                "INSERT INTO civikey_word VALUES ('bogusname', 3, 'B', 'b', 'bo')",
                [],
            )
            .unwrap();
        assert!(reference(&store.conn, "bogus", true).is_empty());
        assert!(ids(&mut store, "bogus", true).is_empty());
        let words = |id: i64| -> Vec<String> {
            let mut stmt = store
                .conn
                .prepare("SELECT word FROM civikey_word WHERE contact_id = ? ORDER BY word")
                .unwrap();
            stmt.query_map([id], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert!(words(2).is_empty(), "a deleted contact leaves no words");
        assert_eq!(
            words(1),
            vec!["quentin", "zebrafish", "zebrafish, quentin"],
            "a renamed contact has only its new words"
        );
    }

    #[test]
    fn stores_from_before_the_index_still_work() {
        let (dir, store) = store_with(300);
        let path = dir.path().join("s.sqlite");
        drop(store);
        let strip = || {
            Connection::open(&path)
                .unwrap()
                .execute_batch(
                    "DROP TRIGGER civikey_word_insert; DROP TRIGGER civikey_word_update;
                     DROP TRIGGER civikey_word_delete; DROP TABLE civikey_word;
                     DROP TABLE civikey_word_stale; DROP INDEX civikey_sort_key;",
                )
                .unwrap();
        };
        strip();
        let mut read_only = SqliteStore::open_with(&path, true).unwrap();
        assert!(!read_only.indexed, "a read-only store is left as it is");
        let expected = reference(&read_only.conn, "smith", true);
        assert_eq!(ids(&mut read_only, "smith", true), expected);
        drop(read_only);
        let mut writable = SqliteStore::open(&path).unwrap();
        assert!(writable.indexed, "a writable one gets the index on open");
        assert_eq!(ids(&mut writable, "smith", true), expected);
    }

    #[test]
    fn words_folded_by_an_older_version_are_refolded_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.sqlite");
        let person = SeedContact {
            id: Some(1),
            contact_type: "Individual".into(),
            display_name: "Jürgen Straße".into(),
            sort_name: "Straße, Jürgen".into(),
            first_name: Some("Jürgen".into()),
            last_name: Some("Straße".into()),
            ..SeedContact::default()
        };
        let store = SqliteStore::create(&path, vec![person], &mut |_| {}).unwrap();
        let expected = word_rows(&store.conn);
        drop(store);
        // As version 1 left it: ß folded to "ss", and no fold mark.
        Connection::open(&path)
            .unwrap()
            .execute_batch(&format!(
                "UPDATE civikey_word SET word = replace(word, 'ß', 'ss');
                 DROP VIEW {FOLD_MARK};"
            ))
            .unwrap();
        let mut store = SqliteStore::open(&path).unwrap();
        assert!(store.indexed);
        assert_eq!(word_rows(&store.conn), expected, "refolded");
        assert_eq!(ids(&mut store, "straß", true), vec![1]);
        assert_a_second_open_keeps_the_words(store, &path);
    }

    #[test]
    fn the_ascii_only_index_of_older_versions_is_replaced_once() {
        let (dir, store) = store_with(300);
        let path = dir.path().join("s.sqlite");
        let expected = word_rows(&store.conn);
        drop(store);
        // The first version's objects, as an older civikey left them.
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "DROP TRIGGER civikey_word_insert; DROP TRIGGER civikey_word_update;
                 DROP TRIGGER civikey_word_delete; DROP TABLE civikey_word;
                 DROP TABLE civikey_word_stale;
                 CREATE TABLE civikey_position (i INTEGER PRIMARY KEY);
                 CREATE TABLE civikey_name_word (word TEXT COLLATE NOCASE, contact_id INTEGER);
                 CREATE TRIGGER civikey_name_word_delete AFTER DELETE ON civicrm_contact BEGIN
                     DELETE FROM civikey_name_word WHERE contact_id = OLD.id;
                 END;",
            )
            .unwrap();
        let store = SqliteStore::open(&path).unwrap();
        assert!(store.indexed);
        assert_eq!(word_rows(&store.conn), expected);
        let old: i64 = store
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name LIKE 'civikey_name_word%' OR name = 'civikey_position'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(old, 0, "the old objects are gone");
        assert_a_second_open_keeps_the_words(store, &path);
    }

    /// A migration happens once: a second open keeps the word table as it is (a marker row
    /// put in by hand survives).
    fn assert_a_second_open_keeps_the_words(store: SqliteStore, path: &Path) {
        store
            .conn
            .execute(
                "INSERT INTO civikey_word VALUES ('marker', 1, '', 'm', 'ma')",
                [],
            )
            .unwrap();
        drop(store);
        let store = SqliteStore::open(path).unwrap();
        let marker: i64 = store
            .conn
            .query_row(
                "SELECT count(*) FROM civikey_word WHERE word = 'marker'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(marker, 1, "the words were rebuilt a second time");
    }

    #[test]
    fn upper_bounds_close_prefix_ranges() {
        assert_eq!(prefix_upper_bound("ab").as_deref(), Some("ac"));
        assert_eq!(
            prefix_upper_bound("a@").as_deref(),
            Some("a["),
            "A-Z fold to a-z"
        );
        assert_eq!(
            prefix_upper_bound("a\u{d7ff}").as_deref(),
            Some("a\u{e000}")
        );
        assert_eq!(prefix_upper_bound("b\u{10ffff}").as_deref(), Some("c"));
        assert_eq!(prefix_upper_bound("\u{10ffff}"), None);
    }
}
