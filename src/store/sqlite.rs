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

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::{
    CmsLink, Contact, ContactId, ContactStore, Cursor, Matcher, Page, Query, StoreError, StoreInfo,
    StoreKind,
};
use crate::fsperm;
use crate::key::{ApiKey, KeyHint, KEY_LEN};
use crate::sanitize::SafeText;
use crate::seed::SeedContact;

const SCHEMA: &str = "
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
-- CiviCRM's own indexes. index_api_key compares case-insensitively, as MySQL's _ci
-- collations do, so the uniqueness check means the same here as on a real CiviCRM.
CREATE INDEX index_api_key ON civicrm_contact (api_key COLLATE NOCASE);
CREATE INDEX index_is_deleted_sort_name ON civicrm_contact (is_deleted, sort_name, id);
-- civikey's own: lists mix deleted and live contacts in sort_name order.
CREATE INDEX civikey_sort_name ON civicrm_contact (sort_name, id);
CREATE INDEX civikey_display_name ON civicrm_contact (display_name);

CREATE TABLE civicrm_email (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id       INTEGER REFERENCES civicrm_contact (id) ON DELETE CASCADE,
    email            TEXT COLLATE NOCASE,
    is_primary       INTEGER NOT NULL DEFAULT 0,
    location_type_id INTEGER,
    on_hold          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX UI_email ON civicrm_email (email);
CREATE INDEX FK_civicrm_email_contact_id ON civicrm_email (contact_id);

CREATE TABLE civicrm_uf_match (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    domain_id  INTEGER NOT NULL,
    uf_id      INTEGER NOT NULL,
    uf_name    TEXT,
    contact_id INTEGER REFERENCES civicrm_contact (id) ON DELETE CASCADE,
    UNIQUE (contact_id, domain_id)
);

-- A Standalone site's roles: what a key's holder can do.
CREATE TABLE civicrm_role (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    label       TEXT,
    permissions TEXT
);
CREATE TABLE civicrm_user_role (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL,
    role_id INTEGER NOT NULL REFERENCES civicrm_role (id) ON DELETE CASCADE
);
CREATE INDEX civikey_user_role_user ON civicrm_user_role (user_id);
";

const SELECT_CONTACT: &str = "
SELECT c.id, c.contact_type, c.display_name, c.sort_name,
       (SELECT e.email FROM civicrm_email e
         WHERE e.contact_id = c.id AND e.is_primary = 1 ORDER BY e.id LIMIT 1),
       c.is_deleted,
       CASE WHEN c.api_key IS NULL OR c.api_key = '' THEN NULL ELSE substr(c.api_key, -4) END,
       (SELECT u.uf_id FROM civicrm_uf_match u
         WHERE u.contact_id = c.id ORDER BY u.domain_id LIMIT 1)
  FROM civicrm_contact c";

pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    writable: bool,
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
        let conn = Connection::open_with_flags(path, flags)
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
        Ok(SqliteStore {
            conn,
            path: path.to_path_buf(),
            writable,
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
        conn.execute_batch(SCHEMA).map_err(sql_err)?;
        insert_contacts(&mut conn, contacts, progress)
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

    fn require_writable(&self) -> Result<(), StoreError> {
        if self.writable {
            Ok(())
        } else {
            Err(StoreError::ReadOnly(SafeText::new(&format!(
                "{} was opened read-only (--read-only, or the file has no write permission for this user); viewing works, changes are refused",
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
        let mut role_stmt = tx
            .prepare("INSERT OR IGNORE INTO civicrm_role (name, label) VALUES (?1, ?1)")
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
            if let Some(email) = &c.email {
                email_stmt.execute(params![id, email]).map_err(sql_err)?;
            }
            if let Some(uf_id) = c.uf_id {
                uf_stmt
                    .execute(params![uf_id, c.email, id])
                    .map_err(sql_err)?;
                for role in &c.roles {
                    role_stmt.execute([role]).map_err(sql_err)?;
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
        let mut conditions: Vec<&str> = Vec::new();
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        use rusqlite::types::Value;
        match query.matcher() {
            Matcher::All => {}
            Matcher::Id(id) => {
                conditions.push("c.id = ?");
                args.push(Value::Integer(id as i64));
            }
            Matcher::EmailPrefix(text) => {
                conditions.push(
                    "c.id IN (SELECT e.contact_id FROM civicrm_email e WHERE e.email LIKE ? ESCAPE '\\')",
                );
                args.push(Value::Text(like_prefix(text)));
            }
            Matcher::Name(text) => {
                conditions.push(
                    "(c.sort_name LIKE ? ESCAPE '\\' OR c.display_name LIKE ? ESCAPE '\\'
                      OR c.display_name LIKE ? ESCAPE '\\')",
                );
                let prefix = like_prefix(text);
                args.push(Value::Text(prefix.clone()));
                args.push(Value::Text(prefix.clone()));
                args.push(Value::Text(format!("% {prefix}")));
            }
        }
        if !query.include_deleted {
            conditions.push("c.is_deleted = 0");
        }
        match &query.after {
            None => {}
            Some(Cursor::After { sort_name, id }) => {
                conditions.push("(coalesce(c.sort_name, ''), c.id) > (?, ?)");
                args.push(Value::Text(sort_name.clone()));
                args.push(Value::Integer(*id as i64));
            }
            Some(Cursor::Offset(_)) => {
                return Err(StoreError::invalid(
                    "the SQLite store pages by key, not by offset",
                ))
            }
        }
        let mut sql = String::from(SELECT_CONTACT);
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(" ORDER BY coalesce(c.sort_name, ''), c.id LIMIT ?");
        args.push(Value::Integer(limit as i64 + 1));

        let mut stmt = self.conn.prepare_cached(&sql).map_err(sql_err)?;
        let mut contacts: Vec<Contact> = stmt
            .query_map(rusqlite::params_from_iter(args), row_to_contact)
            .map_err(sql_err)?
            .collect::<Result<_, _>>()
            .map_err(sql_err)?;
        let next = if contacts.len() > limit {
            contacts.truncate(limit);
            let last = contacts.last().map(|c| c.id).unwrap_or_default();
            let sort_name: Option<String> = self
                .conn
                .query_row(
                    "SELECT coalesce(sort_name, '') FROM civicrm_contact WHERE id = ?",
                    [last as i64],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_err)?;
            sort_name.map(|sort_name| Cursor::After {
                sort_name,
                id: last,
            })
        } else {
            None
        };
        Ok(Page { contacts, next })
    }

    fn contact(&mut self, id: ContactId) -> Result<Contact, StoreError> {
        let sql = format!("{SELECT_CONTACT} WHERE c.id = ?");
        self.conn
            .query_row(&sql, [id as i64], row_to_contact)
            .optional()
            .map_err(sql_err)?
            .ok_or(StoreError::NotFound(id))
    }

    fn roles(&mut self, id: ContactId) -> Result<Option<Vec<SafeText>>, StoreError> {
        // Stores made before roles existed have no role tables: the store cannot tell.
        let has_roles: Option<i64> = self
            .conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'civicrm_user_role'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql_err)?;
        if has_roles.is_none() {
            return Ok(None);
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT coalesce(r.label, r.name) FROM civicrm_uf_match u
                   JOIN civicrm_user_role ur ON ur.user_id = u.uf_id
                   JOIN civicrm_role r ON r.id = ur.role_id
                  WHERE u.contact_id = ? ORDER BY r.name",
            )
            .map_err(sql_err)?;
        let roles = stmt
            .query_map([id as i64], |r| r.get::<_, String>(0))
            .map_err(sql_err)?
            .map(|r| r.map(|name| SafeText::new(&name)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql_err)?;
        Ok(Some(roles))
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
