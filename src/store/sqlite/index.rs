//! civikey's own search structures beside CiviCRM's tables: the word table, the pair
//! table and the triggers that note changed contacts; built once (or rebuilt when an
//! older civikey left another form), and refolded before a search when other writers
//! changed contacts.

use rusqlite::{params, Connection, OptionalExtension};

use super::errors::sql_err;
use super::words::{
    insert_pairs, insert_words, pairs_of, read_all_names, row_names, words_of, Pair, RowNames, Word,
};
use super::SqliteStore;
use crate::store::StoreError;

/// civikey's own search structures. Every name here starts with `civikey_`; stores made
/// before they existed (or with an older form of them, [`OLD_SEARCH_OBJECTS`]) get them
/// when opened writable (see [`install_search_index`]), once.
///
/// `civikey_sort_key` is the list order itself (lists mix deleted and live contacts), so a
/// page is an index range. `civikey_word` holds, for each contact, its names as a
/// keystroke search matches them ([`super::words::name_words`]: sort, first, last name, and the display
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
pub(super) const SEARCH_OBJECTS: &[&str] = &[
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
pub(super) const OLD_SEARCH_OBJECTS: &str = "
DROP TRIGGER IF EXISTS civikey_name_word_insert;
DROP TRIGGER IF EXISTS civikey_name_word_update;
DROP TRIGGER IF EXISTS civikey_name_word_delete;
DROP TABLE IF EXISTS civikey_name_word;
DROP TABLE IF EXISTS civikey_position;
";

pub(super) const SEARCH_TABLES: &str = "
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
pub(super) const FOLD_MARK: &str = "civikey_fold_2";

/// Made after the words are in (one sort instead of a million ordered inserts).
pub(super) const HEAD_INDEX: &str =
    "CREATE INDEX civikey_word_head ON civikey_word (head, sort_key, contact_id);
     CREATE INDEX civikey_word_head2 ON civikey_word (head2, sort_key, contact_id);";

/// Plain SQL, so every writer of the file (the sqlite3 shell, a script) can run them. Each
/// change is noted twice, for the words and for the pairs: a civikey from before the pair
/// table refolds (and clears) only `civikey_word_stale`, and the pairs' own notes wait for
/// the next civikey that knows them.
pub(super) const SEARCH_TRIGGERS: &str = "
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
pub(super) const PAIR_OBJECTS: &[&str] = &["civikey_word_pair", "civikey_pair_stale"];

/// `civikey_word_pair` holds, for each contact with a first and a last name, both folded
/// ([`crate::store::collation::fold`]), the rows (first, last) and (last, first): a split of a search
/// of several words (a first-name prefix and a last-name prefix, in either order, see
/// [`crate::store::name_splits`]) is then the rows whose `a` and `b` start with its two parts,
/// found exactly, without reading a contact. `sort_key` is the contact's list position,
/// as in `civikey_word`. `civikey_pair_stale` notes changed contacts as
/// `civikey_word_stale` does.
pub(super) const PAIR_TABLES: &str = "
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

/// Drops civikey's triggers (made again last, by [`SEARCH_TRIGGERS`]).
pub(super) fn drop_triggers(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    for trigger in &SEARCH_OBJECTS[5..] {
        tx.execute_batch(&format!("DROP TRIGGER IF EXISTS {trigger}"))?;
    }
    Ok(())
}

/// (Re)makes the pair table from `pairs`, sorted.
pub(super) fn fill_pair_table(
    tx: &rusqlite::Transaction<'_>,
    pairs: &[Pair],
) -> rusqlite::Result<()> {
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
pub(super) fn install_search_index(
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
pub(super) fn install_pair_index(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    let (_, pairs) = read_all_names(&tx, false)?;
    drop_triggers(&tx)?;
    fill_pair_table(&tx, &pairs)?;
    tx.execute_batch(SEARCH_TRIGGERS)?;
    tx.commit()
}

/// Whether the pair table is in the file and the triggers note changes for it (a civikey
/// from before it could have made the triggers again without).
pub(super) fn has_pair_index(conn: &Connection) -> rusqlite::Result<bool> {
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
pub(super) type Change = (i64, Option<RowNames>, Option<RowNames>);

pub(super) fn changes(
    tx: &rusqlite::Transaction<'_>,
    stale: &str,
) -> rusqlite::Result<Vec<Change>> {
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
pub(super) fn has_search_index(conn: &Connection) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare("SELECT count(*) FROM sqlite_master WHERE name = ?")?;
    for name in SEARCH_OBJECTS.iter().chain([&FOLD_MARK]) {
        if stmt.query_row([name], |r| r.get::<_, i64>(0))? == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

impl SqliteStore {
    /// Whether the word table can answer a search now: contacts other writers changed are
    /// refolded first (one transaction, nothing when none changed). A read-only store with
    /// changed contacts is searched without the table (correct, slower). Sets
    /// `pairs_fresh`: whether the pair table can answer too.
    pub(super) fn refresh_words(&mut self) -> Result<bool, StoreError> {
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
}
