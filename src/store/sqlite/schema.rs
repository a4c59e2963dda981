//! CiviCRM's tables as the SQLite store holds them (their names and columns, the
//! `api_key` limit, `index_api_key` compared as MySQL's `_ci` collations compare), and the
//! check that a file holds every table and column civikey reads.

use std::path::Path;

use rusqlite::Connection;

use super::errors::sql_err;
use crate::store::StoreError;

/// The CiviCRM tables. Their indexes come after the bulk insert of a new store (building
/// an index once is much faster than keeping it sorted row by row).
pub(super) const TABLES: &str = "
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

pub(super) const INDEXES: &str = "
-- CiviCRM's own indexes. index_api_key compares case-insensitively, as MySQL's _ci
-- collations do, so the uniqueness check means the same here as on a real CiviCRM.
CREATE INDEX index_api_key ON civicrm_contact (api_key COLLATE NOCASE);
CREATE INDEX index_is_deleted_sort_name ON civicrm_contact (is_deleted, sort_name, id);
CREATE INDEX UI_email ON civicrm_email (email);
CREATE INDEX FK_civicrm_email_contact_id ON civicrm_email (contact_id);
";

/// The tables and columns civikey reads and its search structures index: a file without
/// every one of them is not a civikey store, nor a CiviCRM-shaped database civikey may
/// index.
pub(super) const REQUIRED_COLUMNS: &[(&str, &[&str])] = &[
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
pub(super) fn check_schema(conn: &Connection, path: &Path) -> Result<(), StoreError> {
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
                "{shown} is a SQLite database but holds no {table} table; it is not a civikey or CiviCRM store, and it was not modified"
            )));
        }
        let missing: Vec<&str> = columns
            .iter()
            .copied()
            .filter(|c| !present.iter().any(|p| p.eq_ignore_ascii_case(c)))
            .collect();
        if !missing.is_empty() {
            return Err(StoreError::invalid(format!(
                "{shown} has a {table} table without the column(s) {}; it is not a civikey or CiviCRM store, and it was not modified",
                missing.join(", ")
            )));
        }
    }
    Ok(())
}
