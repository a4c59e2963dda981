//! The embedded store: a SQLite file on a CiviCRM-shaped schema.
//!
//! The tables and column names are CiviCRM's (`civicrm_contact`, `civicrm_email`,
//! `civicrm_uf_match`, schema.rs); civikey adds its own search structures beside them, all
//! named `civikey_*` (index.rs, words.rs), so a name search (planned in plan.rs) stays an
//! index range at a million contacts. A file is opened only after it has proven to be a
//! SQLite database holding that schema (integrity.rs: small files pass SQLite's full
//! check, big ones a size check); a file that is not is refused and never modified.

mod errors;
mod index;
mod integrity;
mod plan;
mod rows;
mod schema;
mod seed;
#[cfg(test)]
mod tests;
mod words;

pub(crate) use errors::sql_err;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use crate::fsperm;
use crate::key::{ApiKey, KEY_LEN};
use crate::sanitize::SafeText;
use crate::store::read_ahead::{in_batches, read_ahead};
use crate::store::sql::holders::holder_page;
use crate::store::sql::standings::{
    read_site_users, read_standings, RoleRow, StandaloneColumns, StandingQueries, StandingTables,
    UserRow,
};
use crate::store::swap::swap_outcome;
use crate::store::{
    paging, Contact, ContactId, ContactStore, Cursor, Holder, HolderCursor, HolderPage, Page,
    Query, Standing, StoreError, StoreInfo, StoreKind,
};
use index::{has_pair_index, has_search_index, install_pair_index, install_search_index};
use integrity::{check_header, quick_check, FULL_CHECK_MAX_BYTES};
use plan::{after_cursor, register_functions, DENSE_MATCHES};
use rows::{row_to_contact, CONTACT_COLUMNS};
use schema::check_schema;

pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    writable: bool,
    /// civikey's search structures are present (see [`index::SEARCH_OBJECTS`]). A read-only
    /// store made before they existed is searched without them, more slowly.
    indexed: bool,
    /// The pair table ([`index::PAIR_TABLES`]) is present and kept in step (a read-only store
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

/// CiviCRM's user and role tables, as the standings queries read them.
const STANDING_TABLES: StandingTables<'static> = StandingTables {
    contact: "civicrm_contact",
    uf: "civicrm_uf_match",
    role: "civicrm_role",
    user_role: "civicrm_user_role",
};

impl SqliteStore {
    /// Runs `sql` (the contact columns, then `api_key`) and hands each row, as a key
    /// holder, to `each`.
    fn each_holder(
        &self,
        sql: &str,
        args: &[&dyn rusqlite::ToSql],
        each: &mut dyn FnMut(Holder) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(sql_err)?;
        let mut rows = stmt.query(args).map_err(sql_err)?;
        while let Some(row) = rows.next().map_err(sql_err)? {
            each(Holder {
                contact: row_to_contact(row).map_err(sql_err)?,
                key: ApiKey::from_store(row.get::<_, String>(9).map_err(sql_err)?),
            })?;
        }
        Ok(())
    }

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
        // What the file is comes first: advice to chmod a file that is no store at all
        // (`--store sqlite:/etc/passwd`) would send the operator the wrong way.
        check_header(path)?;
        if let Err(exposed) = fsperm::refuse_if_exposed(path, &meta) {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| StoreError::invalid(format!("{shown}: {e}")))?;
            check_schema(&conn, path)?;
            return Err(StoreError::invalid(exposed));
        }
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

    /// Which user and role columns this file has (a store made by an older civikey may
    /// lack some), read once.
    fn standalone_columns(&mut self) -> Result<StandaloneColumns, StoreError> {
        if let Some(columns) = self.standalone {
            return Ok(columns);
        }
        let mut present = Vec::new();
        {
            let mut stmt = self
                .conn
                .prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")
                .map_err(sql_err)?;
            for (table, column) in StandaloneColumns::ASKED {
                if stmt.exists([table, column]).map_err(sql_err)? {
                    present.push((table, column));
                }
            }
        }
        let columns = StandaloneColumns::from_present(|t, c| present.contains(&(t, c)));
        self.standalone = Some(columns);
        Ok(columns)
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

impl StandingQueries for SqliteStore {
    fn user_rows(&mut self, sql: &str, ids: &[u64]) -> Result<Vec<UserRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(sql_err)?;
        let rows = stmt
            .query_map(
                rusqlite::params_from_iter(ids.iter().map(|&id| id as i64)),
                |r| {
                    Ok(UserRow {
                        contact: r.get::<_, i64>(0)? as ContactId,
                        user: r.get::<_, Option<i64>>(1)?.map(|u| u as u64),
                        name: r.get(2)?,
                        active: r.get::<_, Option<i64>>(3)?.map(|a| a != 0),
                    })
                },
            )
            .map_err(sql_err)?;
        rows.collect::<Result<_, _>>().map_err(sql_err)
    }

    fn role_rows(&mut self, sql: &str, users: &[u64]) -> Result<Vec<RoleRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(sql_err)?;
        let rows = stmt
            .query_map(
                rusqlite::params_from_iter(users.iter().map(|&u| u as i64)),
                |r| {
                    Ok(RoleRow {
                        user: r.get::<_, i64>(0)? as u64,
                        name: r.get(1)?,
                        permissions: r.get(2)?,
                    })
                },
            )
            .map_err(sql_err)?;
        rows.collect::<Result<_, _>>().map_err(sql_err)
    }
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
        let limit = paging::page_limit(query.limit);
        let plan = self.plan(query)?;
        let (check, mut args) = match plan.check {
            Some((check, check_args)) => (check, check_args),
            None => ("1".to_string(), Vec::new()),
        };
        args.extend(plan.args);
        let mut sql = format!("SELECT {}, {check} FROM {}", *CONTACT_COLUMNS, plan.from);
        let mut conditions = plan.conditions;
        if !query.include_deleted && !plan.pages_itself {
            conditions.push("c.is_deleted = 0".into());
        }
        let (sort_key, id_column) = (plan.sort_key, plan.id);
        if !plan.pages_itself {
            if let Some((after, after_args)) =
                after_cursor(query.after.as_ref(), sort_key, id_column)?
            {
                conditions.push(after);
                args.extend(after_args);
            }
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
        let rows: Vec<(Contact, String, bool)> = stmt
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
        let (rows, next) = paging::cut(rows, limit, |(last, sort_key, _)| Cursor::After {
            sort_name: Some(sort_key.clone()),
            id: last.id,
        });
        Ok(Page {
            contacts: rows.into_iter().map(|(c, _, _)| c).collect(),
            next,
        })
    }

    fn contact(&mut self, id: ContactId) -> Result<Contact, StoreError> {
        let sql = format!(
            "SELECT {} FROM civicrm_contact c WHERE c.id = ?",
            *CONTACT_COLUMNS
        );
        self.conn
            .query_row(&sql, [id as i64], row_to_contact)
            .optional()
            .map_err(sql_err)?
            .ok_or(StoreError::NotFound(id))
    }

    /// The user (a civicrm_uf_match row: username, is_active) and its active roles, by
    /// the SQL stores' one rule ([`crate::store::sql::standings`]); contacts that do not
    /// exist are left out.
    fn standings(
        &mut self,
        ids: &[ContactId],
    ) -> Result<std::collections::HashMap<ContactId, Standing>, StoreError> {
        let columns = self.standalone_columns()?;
        read_standings(self, &STANDING_TABLES, columns, ids)
    }

    /// Users and roles of the whole store: two queries.
    fn site_users(&mut self) -> Result<Option<crate::store::SiteUsers>, StoreError> {
        let columns = self.standalone_columns()?;
        read_site_users(self, &STANDING_TABLES, columns).map(Some)
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

    /// The keyed rows only (`> ''` is past the NULLs and empty strings), in id order, after
    /// the cursor's id.
    fn key_holders(
        &mut self,
        after: Option<&HolderCursor>,
        limit: usize,
    ) -> Result<HolderPage, StoreError> {
        let limit = paging::holder_limit(limit);
        let sql = format!(
            "SELECT {}, c.api_key FROM civicrm_contact c
              WHERE c.api_key > '' COLLATE NOCASE AND c.id > ?1
              ORDER BY c.id LIMIT {}",
            *CONTACT_COLUMNS,
            limit + 1
        );
        let after = after.map_or(0, |c| c.after_id) as i64;
        let mut holders = Vec::new();
        self.each_holder(&sql, &[&after], &mut |h| {
            holders.push(h);
            Ok(())
        })?;
        Ok(holder_page(holders, limit))
    }

    /// One statement over index_api_key (a range past the NULLs and empty strings): one
    /// consistent read of every holder, handed on [`paging::HOLDER_PAGE`] at a time.
    fn read_key_holders(
        &mut self,
        each: &mut dyn FnMut(Vec<Holder>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "SELECT {}, c.api_key FROM civicrm_contact c
              WHERE c.api_key > '' COLLATE NOCASE",
            *CONTACT_COLUMNS
        );
        // Moved to the reading thread whole (a SQLite connection is not shared).
        let store = &mut *self;
        read_ahead(
            move |emit| in_batches(|row| store.each_holder(&sql, &[], row), emit),
            each,
        )
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
        swap_outcome(id, changed as u64, || {
            self.conn
                .prepare_cached("SELECT 1 FROM civicrm_contact WHERE id = ?")
                .and_then(|mut stmt| stmt.exists([id as i64]))
                .map_err(sql_err)
        })
    }
}
