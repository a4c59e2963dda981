//! Making a new store: the file created 0600 in a private folder, the tables, the contacts
//! in one transaction, then the indexes and the search structures built once.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rusqlite::{params, Connection};

use super::errors::sql_err;
use super::index::install_search_index;
use super::schema::{INDEXES, TABLES};
use super::words::{pairs_of, words_of, Pair, RowNames, Word};
use super::SqliteStore;
use crate::fsperm;
use crate::key::ApiKey;
use crate::seed::SeedContact;
use crate::store::StoreError;

impl SqliteStore {
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
}

/// Inserts contacts in one transaction, reporting progress every 10,000; returns the words
/// of their names (see [`super::words::name_words`]) and their pairs ([`pairs_of`]) for the search index.
pub(super) fn insert_contacts(
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
