//! The embedded store: a SQLite file on a CiviCRM-shaped schema.
//!
//! The tables and column names are CiviCRM's (`civicrm_contact`, `civicrm_email`,
//! `civicrm_uf_match`), so every query here reads the same on a real CiviCRM database.
//! A file is opened only after it has proven to be a healthy SQLite database holding that
//! schema; a file that is not is refused and never modified.

use std::fs::{self, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::{
    CmsLink, Contact, ContactId, ContactStore, Cursor, Matcher, Page, Query, StoreError, StoreInfo,
    StoreKind,
};
use crate::fsperm;
use crate::key::{ApiKey, KeyHint, KEY_LEN};
use crate::sanitize::SafeText;
use crate::seed::SeedContact;

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
    UNIQUE (contact_id, domain_id)
);
";

const INDEXES: &str = "
-- CiviCRM's own indexes. index_api_key compares case-insensitively, as MySQL's _ci
-- collations do, so the uniqueness check means the same here as on a real CiviCRM.
CREATE INDEX index_api_key ON civicrm_contact (api_key COLLATE NOCASE);
CREATE INDEX index_is_deleted_sort_name ON civicrm_contact (is_deleted, sort_name, id);
CREATE INDEX UI_email ON civicrm_email (email);
CREATE INDEX FK_civicrm_email_contact_id ON civicrm_email (contact_id);
";

/// civikey's own search structures (see [`install_search_index`]). Every name here starts
/// with `civikey_`; stores made before they existed get them when opened writable.
///
/// `civikey_sort_key` is the list order itself (lists mix deleted and live contacts), so a
/// page is an index range. `civikey_name_word` holds, for each contact, its sort name, its
/// display name and every tail of the display name after a space: a name search is then a
/// prefix range of one index, exactly the contacts `sort_name LIKE 'x%' OR display_name
/// LIKE 'x%' OR display_name LIKE '% x%'` finds. Triggers keep it in step with every
/// writer of the file (the sqlite3 shell, a script), not only civikey. `civikey_position`
/// lists the character positions 1..1024 where a trigger looks for spaces (triggers may
/// not use recursive queries); words starting after character 1024 are not indexed.
const SEARCH_OBJECTS: &[&str] = &[
    "civikey_sort_key",
    "civikey_position",
    "civikey_name_word",
    "civikey_name_word_contact",
    "civikey_name_word_insert",
    "civikey_name_word_update",
    "civikey_name_word_delete",
];

const SEARCH_TABLES: &str = "
CREATE INDEX IF NOT EXISTS civikey_sort_key ON civicrm_contact (coalesce(sort_name, ''), id);
CREATE TABLE civikey_position (i INTEGER PRIMARY KEY);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1024)
INSERT INTO civikey_position (i) SELECT i FROM n;
CREATE TABLE civikey_name_word (
    word       TEXT NOT NULL COLLATE NOCASE,
    contact_id INTEGER NOT NULL,
    sort_key   TEXT NOT NULL,
    is_deleted INTEGER NOT NULL,
    PRIMARY KEY (word, contact_id)
) WITHOUT ROWID;
INSERT OR IGNORE INTO civikey_name_word (word, contact_id, sort_key, is_deleted)
SELECT w, id, sort_key, is_deleted FROM (
    SELECT c.id, coalesce(c.sort_name, '') AS sort_key, coalesce(c.is_deleted, 0) AS is_deleted,
           c.sort_name AS w
      FROM civicrm_contact c
    UNION ALL
    SELECT c.id, coalesce(c.sort_name, ''), coalesce(c.is_deleted, 0), c.display_name
      FROM civicrm_contact c
    UNION ALL
    SELECT c.id, coalesce(c.sort_name, ''), coalesce(c.is_deleted, 0), substr(c.display_name, p.i + 1)
      FROM civicrm_contact c JOIN civikey_position p
        ON p.i < length(c.display_name) AND substr(c.display_name, p.i, 1) = ' '
) WHERE w IS NOT NULL AND w <> '' AND substr(w, 1, 1) <> ' '
ORDER BY w COLLATE NOCASE, id;
CREATE INDEX civikey_name_word_contact ON civikey_name_word (contact_id);
";

/// The triggers' shared body: index NEW's words (the same words the bulk build above makes).
const INDEX_NEW_WORDS: &str = "
    INSERT OR IGNORE INTO civikey_name_word (word, contact_id, sort_key, is_deleted)
    SELECT w, NEW.id, coalesce(NEW.sort_name, ''), coalesce(NEW.is_deleted, 0) FROM (
        SELECT NEW.sort_name AS w
        UNION ALL SELECT NEW.display_name
        UNION ALL SELECT substr(NEW.display_name, p.i + 1) FROM civikey_position p
         WHERE p.i < length(NEW.display_name) AND substr(NEW.display_name, p.i, 1) = ' '
    ) WHERE w IS NOT NULL AND w <> '' AND substr(w, 1, 1) <> ' ';";

fn search_triggers() -> String {
    format!(
        "
CREATE TRIGGER civikey_name_word_insert AFTER INSERT ON civicrm_contact BEGIN{INDEX_NEW_WORDS}
END;
CREATE TRIGGER civikey_name_word_update
AFTER UPDATE OF id, sort_name, display_name, is_deleted ON civicrm_contact BEGIN
    DELETE FROM civikey_name_word WHERE contact_id = OLD.id;{INDEX_NEW_WORDS}
END;
CREATE TRIGGER civikey_name_word_delete AFTER DELETE ON civicrm_contact BEGIN
    DELETE FROM civikey_name_word WHERE contact_id = OLD.id;
END;
"
    )
}

/// Builds civikey's search structures from scratch (dropping any partial ones), in one
/// transaction: afterwards either all of them exist and agree with the contacts, or none
/// changed.
fn install_search_index(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for trigger in &SEARCH_OBJECTS[4..] {
        tx.execute_batch(&format!("DROP TRIGGER IF EXISTS {trigger}"))?;
    }
    tx.execute_batch(
        "DROP TABLE IF EXISTS civikey_name_word; DROP TABLE IF EXISTS civikey_position;",
    )?;
    tx.execute_batch(SEARCH_TABLES)?;
    tx.execute_batch(&search_triggers())?;
    tx.commit()
}

/// Whether every one of civikey's search structures is in the file.
fn has_search_index(conn: &Connection) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare("SELECT count(*) FROM sqlite_master WHERE name = ?")?;
    for name in SEARCH_OBJECTS {
        if stmt.query_row([name], |r| r.get::<_, i64>(0))? == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The columns a list reads, then the sort key the next page starts after.
const CONTACT_COLUMNS: &str = "
       c.id, c.contact_type, c.display_name, c.sort_name,
       (SELECT e.email FROM civicrm_email e
         WHERE e.contact_id = c.id AND e.is_primary = 1 ORDER BY e.id LIMIT 1),
       c.is_deleted,
       CASE WHEN c.api_key IS NULL OR c.api_key = '' THEN NULL ELSE substr(c.api_key, -4) END,
       (SELECT u.uf_id FROM civicrm_uf_match u
         WHERE u.contact_id = c.id ORDER BY u.domain_id LIMIT 1),
       coalesce(c.sort_name, '')";

/// Above this many index entries a prefix is common: walking the contacts in list order
/// finds a page of matches sooner than collecting and sorting every match. Below it,
/// collecting and sorting the matches is cheaper than walking past non-matches.
const DENSE_MATCHES: i64 = 10_000;

pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    writable: bool,
    /// civikey's search structures are present (see [`SEARCH_OBJECTS`]). A read-only
    /// store made before they existed is searched without them, more slowly.
    indexed: bool,
}

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
        let verdict: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| StoreError::invalid(format!("{shown} is damaged: {e}")))?;
        if verdict != "ok" {
            return Err(StoreError::invalid(format!(
                "{shown} failed its integrity check ({verdict}); it was not modified"
            )));
        }
        let has_table: Option<i64> = conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'civicrm_contact'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql_err)?;
        if has_table.is_none() {
            return Err(StoreError::invalid(format!(
                "{shown} is a SQLite database but holds no civicrm_contact table; it is not a civikey store"
            )));
        }
        conn.execute_batch("PRAGMA foreign_keys = ON")
            .map_err(sql_err)?;
        let mut indexed = has_search_index(&conn).map_err(sql_err)?;
        if !indexed && writable {
            // A store from before the search index: build it once. If that fails (a full
            // disk, another writer holding the lock) the store still works, unindexed.
            indexed = install_search_index(&mut conn).is_ok();
        }
        Ok(SqliteStore {
            conn,
            path: path.to_path_buf(),
            writable,
            indexed,
        })
    }

    /// Creates a new store at `path` (0600, in a 0700 folder) filled with `contacts`.
    /// Refuses to overwrite an existing file.
    pub fn create(
        path: &Path,
        contacts: impl IntoIterator<Item = SeedContact>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fsperm::create_private_dir(dir).map_err(StoreError::invalid)?;
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
        // memory. Both last as long as this connection.
        conn.execute_batch(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;",
        )
        .map_err(sql_err)?;
        conn.execute_batch(TABLES).map_err(sql_err)?;
        insert_contacts(&mut conn, contacts, progress)?;
        conn.execute_batch(INDEXES).map_err(sql_err)?;
        install_search_index(&mut conn).map_err(sql_err)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn require_writable(&self) -> Result<(), StoreError> {
        if self.writable {
            Ok(())
        } else {
            Err(StoreError::ReadOnly(SafeText::new(&format!(
                "{} was opened read-only (--read-only, or the file is not writable by this user); viewing works, changes are refused",
                self.path.display()
            ))))
        }
    }
}

/// Inserts contacts in one transaction, reporting progress every 10,000.
pub(crate) fn insert_contacts(
    conn: &mut Connection,
    contacts: impl IntoIterator<Item = SeedContact>,
    progress: &mut dyn FnMut(usize),
) -> Result<(), StoreError> {
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
                "INSERT INTO civicrm_uf_match (domain_id, uf_id, uf_name, contact_id)
                 VALUES (1, ?1, ?2, ?3)",
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
            if let Some(email) = &c.email {
                email_stmt.execute(params![id, email]).map_err(sql_err)?;
            }
            if let Some(uf_id) = c.uf_id {
                uf_stmt
                    .execute(params![uf_id, c.email, id])
                    .map_err(sql_err)?;
            }
            done += 1;
            if done % 10_000 == 0 {
                progress(done);
            }
        }
        progress(done);
    }
    tx.commit().map_err(sql_err)
}

fn check_header(path: &Path) -> Result<(), StoreError> {
    let shown = path.display();
    let mut header = [0u8; 16];
    let mut file = fs::File::open(path)
        .map_err(|e| StoreError::invalid(format!("cannot read {shown}: {e}")))?;
    let n = file
        .read(&mut header)
        .map_err(|e| StoreError::invalid(format!("cannot read {shown}: {e}")))?;
    if n == 0 {
        return Err(StoreError::invalid(format!(
            "{shown} is empty, not a SQLite store; it was not modified"
        )));
    }
    if n < 16 || &header != b"SQLite format 3\0" {
        return Err(StoreError::invalid(format!(
            "{shown} is not a SQLite database; it was not modified"
        )));
    }
    Ok(())
}

fn sql_err(e: rusqlite::Error) -> StoreError {
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
            .map(|t| KeyHint::from_tail(&t)),
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
}

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
        }
    }

    /// Collect the ids `ids_sql` yields, then read and sort just those contacts.
    fn from_ids(ids_sql: &str, args: Vec<Value>) -> Plan {
        Plan {
            from: format!("({ids_sql}) m CROSS JOIN civicrm_contact c ON c.id = m.contact_id"),
            conditions: Vec::new(),
            args,
        }
    }
}

/// `text` with ASCII letters in lower case: the form NOCASE compares in.
fn nocase_fold(text: &str) -> String {
    text.to_ascii_lowercase()
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
            Matcher::Id(id) => Plan {
                from: "civicrm_contact c".into(),
                conditions: vec!["c.id = ?".into()],
                args: vec![Value::Integer(id as i64)],
            },
            Matcher::EmailPrefix(text) => {
                // UI_email compares without case, so the LIKE is a range of that index.
                let pattern = Value::Text(like_prefix(text));
                let matches = self.count_up_to(
                    "SELECT 1 FROM civicrm_email WHERE email LIKE ?1 ESCAPE '\\' LIMIT ?2",
                    vec![pattern.clone()],
                )?;
                if matches > DENSE_MATCHES {
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
            Matcher::Name(text) if indexed => {
                let low = Value::Text(nocase_fold(text));
                let high = prefix_upper_bound(&nocase_fold(text)).map_or(Value::Null, Value::Text);
                let pattern = Value::Text(like_prefix(text));
                // The range finds the words; the LIKE keeps the match exact whatever the
                // collation does at the range's edges.
                let words = "FROM civikey_name_word WHERE word >= ? AND (? IS NULL OR word < ?) AND word LIKE ? ESCAPE '\\'";
                let word_args = vec![low, high.clone(), high, pattern];
                let matches = self.count_up_to(
                    &format!("SELECT 1 {words} LIMIT ?"),
                    word_args.clone(),
                )?;
                if matches > DENSE_MATCHES {
                    let (conditions, args) = name_like(text);
                    Plan::in_list_order(true, conditions, args)
                } else {
                    Plan::from_ids(&format!("SELECT DISTINCT contact_id {words}"), word_args)
                }
            }
            Matcher::Name(text) => {
                let (conditions, args) = name_like(text);
                Plan::in_list_order(false, conditions, args)
            }
        })
    }

    /// How many rows `sql` (whose last parameter is its LIMIT) yields, counting at most
    /// one more than [`DENSE_MATCHES`].
    fn count_up_to(&mut self, sql: &str, mut args: Vec<Value>) -> Result<i64, StoreError> {
        args.push(Value::Integer(DENSE_MATCHES + 1));
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT count(*) FROM ({sql})"))
            .map_err(sql_err)?;
        stmt.query_row(rusqlite::params_from_iter(args), |r| r.get(0))
            .map_err(sql_err)
    }
}

/// The name match as CiviCRM's quick search writes it, tested contact by contact.
fn name_like(text: &str) -> (Vec<String>, Vec<Value>) {
    let prefix = like_prefix(text);
    (
        vec!["(c.sort_name LIKE ? ESCAPE '\\' OR c.display_name LIKE ? ESCAPE '\\'
              OR c.display_name LIKE ? ESCAPE '\\')"
            .into()],
        vec![
            Value::Text(prefix.clone()),
            Value::Text(prefix.clone()),
            Value::Text(format!("% {prefix}")),
        ],
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
        let limit = query.limit.clamp(1, 1000);
        let plan = self.plan(query)?;
        let mut args = plan.args;
        let mut sql = format!("SELECT {CONTACT_COLUMNS} FROM {}", plan.from);
        let mut conditions = plan.conditions;
        if !query.include_deleted {
            conditions.push("c.is_deleted = 0".into());
        }
        match &query.after {
            None => {}
            Some(Cursor::After { sort_name, id }) => {
                conditions.push("(coalesce(c.sort_name, ''), c.id) > (?, ?)".into());
                args.push(Value::Text(sort_name.clone()));
                args.push(Value::Integer(*id as i64));
            }
            Some(Cursor::Offset(_)) => {
                return Err(StoreError::invalid(
                    "the SQLite store pages by key, not by offset",
                ))
            }
        }
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(" ORDER BY coalesce(c.sort_name, ''), c.id LIMIT ?");
        args.push(Value::Integer(limit as i64 + 1));

        let mut stmt = self.conn.prepare_cached(&sql).map_err(sql_err)?;
        let mut rows: Vec<(Contact, String)> = stmt
            .query_map(rusqlite::params_from_iter(args), |row| {
                Ok((row_to_contact(row)?, row.get::<_, String>(8)?))
            })
            .map_err(sql_err)?
            .collect::<Result<_, _>>()
            .map_err(sql_err)?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = match rows.last() {
            Some((last, sort_key)) if more => Some(Cursor::After {
                sort_name: sort_key.clone(),
                id: last.id,
            }),
            _ => None,
        };
        Ok(Page {
            contacts: rows.into_iter().map(|(c, _)| c).collect(),
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
