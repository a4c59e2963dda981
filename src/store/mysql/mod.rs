//! The CiviCRM database itself, over the MySQL/MariaDB protocol.
//!
//! civikey never alters a CiviCRM schema: every query here runs on the tables and indexes
//! CiviCRM creates (`index_is_deleted_sort_name`, `index_first_name`, `index_last_name`,
//! `index_organization_name`, `index_household_name`, `index_api_key`, `UI_email`, the foreign
//! key indexes), and nothing but `civicrm_contact.api_key` is ever written.
//! [`install_schema`] and [`insert_contacts`] exist only to build a CiviCRM-shaped test or
//! demo database; they refuse to touch tables that already exist.

mod connect;
mod errors;
mod options;
mod plan;
mod rows;
mod search;
mod seed;
mod tables;

pub use connect::{open_connection, preflight, Preflight};
pub use options::{
    clear_text_warning, decide_tls, MysqlAddress, MysqlOptions, MysqlTls, TlsDecision,
};
pub use plan::RangeLimits;
pub use seed::{insert_contacts, install_schema};

use mysql::prelude::Queryable;
use mysql::{Conn, Opts, Params, Row, Value};

use crate::key::ApiKey;
use crate::sanitize::SafeText;
use crate::store::read_ahead::{in_batches, read_ahead, users_beside, Emit};
use crate::store::sql::holders::holder_page;
use crate::store::sql::standings::{
    read_site_users, read_standings, RoleRow, StandaloneColumns, StandingQueries, UserRow,
};
use crate::store::swap::swap_outcome;
use crate::store::{
    paging, Contact, ContactId, ContactStore, Holder, HolderCursor, HolderPage, Page, Query,
    SiteReader, SiteUsers, Standing, StoreError, StoreInfo, StoreKind,
};
use errors::Phase;
use plan::NamePlan;
use rows::{row_to_contact, text, uint};
use tables::Tables;

pub struct MysqlStore {
    /// None after the connection broke; the next call opens a new one (and never resends
    /// a write whose outcome was unknown: that call has already returned).
    conn: Option<Conn>,
    opts: Opts,
    location: String,
    /// `tls = "off"` to another machine: the header says so.
    clear_text_remote: bool,
    tables: Tables,
    key_capacity: usize,
    keys_case_insensitive: bool,
    /// Which of Standalone's user and role columns the database has (checked once).
    standalone: Option<StandaloneColumns>,
    /// How name searches run (decided at the first search).
    name_plan: Option<NamePlan>,
    /// Whether CiviCRM's `index_sort_name` (sort_name, then the id) is there: the whole
    /// list, trash included, in list order in one range (decided with `name_plan`).
    sort_name_index: bool,
    /// Up to this many contacts, name searches test every row (see [`NamePlan::Scan`]).
    exact_scan_max: u64,
    /// Where the indexed name search switches from reading a range's rows to index-only
    /// plans (see [`RangeLimits`]).
    range_limits: RangeLimits,
}

impl MysqlStore {
    /// Which of Standalone's user and role columns the database has, read once from
    /// information_schema.
    fn standalone_columns(&mut self) -> Result<StandaloneColumns, StoreError> {
        if let Some(columns) = self.standalone {
            return Ok(columns);
        }
        let prefix = self.tables.prefix.clone();
        let names: Vec<String> = ["civicrm_uf_match", "civicrm_role", "civicrm_user_role"]
            .iter()
            .map(|table| format!("{prefix}{table}"))
            .collect();
        let rows: Vec<Row> = self.run(Phase::Read, |c| {
            c.exec(
                "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS
                  WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (?, ?, ?)",
                names,
            )
        })?;
        let mut present = Vec::new();
        for row in &rows {
            let table = text(row, 0)
                .map_err(StoreError::bad_data)?
                .unwrap_or_default();
            let column = text(row, 1)
                .map_err(StoreError::bad_data)?
                .unwrap_or_default();
            present.push((table, column.to_ascii_lowercase()));
        }
        let columns = StandaloneColumns::from_present(|table, column| {
            let table = format!("{prefix}{table}");
            present.iter().any(|(t, c)| *t == table && c == column)
        });
        self.standalone = Some(columns);
        Ok(columns)
    }

    /// Name searches on a table of at most `contacts` rows test every row, exactly (the
    /// default is 10,000); above it they use CiviCRM's name indexes. Tests set 0 to run
    /// the indexed plan on small data.
    pub fn set_exact_scan_max(&mut self, contacts: u64) {
        self.exact_scan_max = contacts;
        self.name_plan = None;
    }

    /// Sets where the indexed name search stops reading a range's rows (tests set small
    /// limits so that small data takes every plan; see [`RangeLimits`]).
    pub fn set_range_limits(&mut self, limits: RangeLimits) {
        self.range_limits = limits;
    }

    fn contact_exists(&mut self, id: ContactId) -> Result<bool, StoreError> {
        let sql = format!("SELECT 1 FROM {} WHERE id = ?", self.tables.contact);
        let found: Option<Row> = self.run(Phase::Read, |c| c.exec_first(sql, (id,)))?;
        Ok(found.is_some())
    }
}

impl MysqlStore {
    /// The key holders' query: the list's columns and the key, keyed rows only.
    fn holders_sql(&self, index_hint: &str) -> String {
        format!(
            "SELECT {}, c.api_key FROM {} c {index_hint}
              WHERE c.api_key IS NOT NULL AND LENGTH(c.api_key) > 0",
            self.tables.contact_columns(),
            self.tables.contact,
        )
    }

    /// Runs `sql` ([`Self::holders_sql`]) and hands each row, as a key holder, to `each`,
    /// as the server sends them (nothing gathered here). Without `args` it runs as text,
    /// so [`Self::rowid_ordered`] may prefix it.
    fn each_holder(
        &mut self,
        sql: &str,
        args: Vec<Value>,
        each: &mut dyn FnMut(Holder) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let location = self.location.clone();
        let bad = |e: String| StoreError::bad_data(format!("{location}: {e}"));
        // `each`'s refusal, or a row that is not a holder: the read stops there.
        let mut stopped: Option<StoreError> = None;
        let mut feed = |rows: &mut dyn Iterator<Item = mysql::Result<Row>>| -> mysql::Result<()> {
            for row in rows {
                let row = row?;
                let holder = row_to_contact(&row)
                    .map_err(&bad)
                    .and_then(|(contact, _)| match row.as_ref(8) {
                        Some(Value::Bytes(bytes)) => Ok(Holder {
                            contact,
                            key: ApiKey::from_store(String::from_utf8_lossy(bytes).into_owned()),
                        }),
                        _ => Err(bad("api_key is not text".into())),
                    });
                if let Err(e) = holder.and_then(&mut *each) {
                    stopped = Some(e);
                    break;
                }
            }
            Ok(())
        };
        self.run(Phase::Read, |c| {
            if args.is_empty() {
                feed(&mut c.query_iter(sql)?)
            } else {
                feed(&mut c.exec_iter(sql, Params::Positional(args))?)
            }
        })?;
        stopped.map_or(Ok(()), Err)
    }

    /// Every holder in one query ([`Self::holders_sql`] on index_api_key, rows fetched in
    /// id order: [`Self::rowid_ordered`]).
    fn whole_read_sql(&mut self) -> Result<String, StoreError> {
        let sql = self.holders_sql("FORCE INDEX (index_api_key)");
        self.rowid_ordered(&sql)
    }

    /// Every holder in one query, streamed: one consistent read, the number of queries not
    /// growing with the holders. (Two halves of the ids side by side, each on a connection
    /// of its own, were tried: on two cores 4% quicker, within the noise.)
    fn read_all(&mut self, emit: &mut Emit<'_>) -> Result<(), StoreError> {
        let sql = self.whole_read_sql()?;
        in_batches(|row| self.each_holder(&sql, Vec::new(), row), emit)
    }

    /// The key holders' users and every user's roles: two queries.
    fn users_of_holders(
        &mut self,
        columns: StandaloneColumns,
    ) -> Result<Option<SiteUsers>, StoreError> {
        let tables = self.tables.clone();
        read_site_users(self, &tables.standing_tables(), columns).map(Some)
    }

    /// `sql` run with the rows of a secondary index range fetched in primary key order
    /// (multi-range read): on `index_api_key` the holders come in key order, scattered
    /// over the table, and each row fetched at random cost three to four times as much at
    /// 50,000 holders (12.3 s against 3.6 s, MariaDB 10.11 with its default 128 MiB buffer
    /// pool, docs/PERFORMANCE.md). MariaDB (its `VERSION()` says so) takes it per statement
    /// (`SET STATEMENT ... FOR`); MySQL as an optimizer hint, which MariaDB reads as a
    /// comment.
    fn rowid_ordered(&mut self, sql: &str) -> Result<String, StoreError> {
        let version: Option<String> =
            self.run(Phase::Read, |c| c.query_first("SELECT VERSION()"))?;
        let mariadb = version.is_some_and(|v| v.contains("MariaDB"));
        let hinted = sql.replacen(
            "SELECT ",
            "SELECT /*+ SET_VAR(optimizer_switch = 'mrr=on,mrr_cost_based=off') */ ",
            1,
        );
        Ok(if mariadb {
            format!(
                "SET STATEMENT optimizer_switch = 'mrr=on,mrr_sort_keys=on,mrr_cost_based=off' FOR {hinted}"
            )
        } else {
            hinted
        })
    }
}

impl StandingQueries for MysqlStore {
    fn user_rows(&mut self, sql: &str, ids: &[u64]) -> Result<Vec<UserRow>, StoreError> {
        let params: Vec<Value> = ids.iter().map(|&id| Value::from(id)).collect();
        let rows: Vec<Row> = self.run(Phase::Read, |c| c.exec(sql, params))?;
        let read = |row: &Row| -> Result<UserRow, String> {
            Ok(UserRow {
                contact: uint(row, 0)?.unwrap_or_default(),
                user: uint(row, 1)?,
                name: text(row, 2)?.unwrap_or_default(),
                active: uint(row, 3)?.map(|a| a != 0),
            })
        };
        rows.iter()
            .map(read)
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::bad_data(format!("{}: {e}", self.location)))
    }

    fn role_rows(&mut self, sql: &str, users: &[u64]) -> Result<Vec<RoleRow>, StoreError> {
        let params: Vec<Value> = users.iter().map(|&id| Value::from(id)).collect();
        let rows: Vec<Row> = self.run(Phase::Read, |c| c.exec(sql, params))?;
        let read = |row: &Row| -> Result<RoleRow, String> {
            Ok(RoleRow {
                user: uint(row, 0)?.unwrap_or_default(),
                name: text(row, 1)?.unwrap_or_default(),
                permissions: text(row, 2)?.unwrap_or_default(),
            })
        };
        rows.iter()
            .map(read)
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::bad_data(format!("{}: {e}", self.location)))
    }
}

impl ContactStore for MysqlStore {
    fn info(&self) -> StoreInfo {
        StoreInfo {
            kind: StoreKind::Mysql,
            location: SafeText::new(&if self.clear_text_remote {
                format!(
                    "{} (TLS OFF: keys cross the network readable)",
                    self.location
                )
            } else {
                self.location.clone()
            }),
            key_capacity: self.key_capacity,
            keys_case_insensitive: self.keys_case_insensitive,
            writable: true,
        }
    }

    /// Keyset paging in list order (sort_name, id), on CiviCRM's own indexes only
    /// (search.rs; docs/PERFORMANCE.md).
    fn search(&mut self, query: &Query) -> Result<Page, StoreError> {
        self.search_page(query)
    }

    fn contact(&mut self, id: ContactId) -> Result<Contact, StoreError> {
        let sql = format!(
            "SELECT {} FROM {} c WHERE c.id = ?",
            self.tables.contact_columns(),
            self.tables.contact
        );
        let row: Option<Row> = self.run(Phase::Read, |c| c.exec_first(sql, (id,)))?;
        let row = row.ok_or(StoreError::NotFound(id))?;
        row_to_contact(&row)
            .map(|(contact, _)| contact)
            .map_err(|e| StoreError::bad_data(format!("{}: {e}", self.location)))
    }

    /// On a Standalone site, the user (a civicrm_uf_match row: username, is_active) and its
    /// active roles (civicrm_user_role.user_id is civicrm_uf_match.id); elsewhere the CMS
    /// holds users and roles and only "no user account" can be told. Two queries per
    /// chunk of ids; contacts that do not exist are left out.
    fn standings(
        &mut self,
        ids: &[ContactId],
    ) -> Result<std::collections::HashMap<ContactId, Standing>, StoreError> {
        let columns = self.standalone_columns()?;
        let tables = self.tables.clone();
        read_standings(self, &tables.standing_tables(), columns, ids)
    }

    /// `api_key = ?` on index_api_key, compared as the column's collation compares (as
    /// CiviCRM's own login check does).
    fn holders_of(&mut self, key: &ApiKey) -> Result<Vec<ContactId>, StoreError> {
        let sql = format!(
            "SELECT id FROM {} WHERE api_key = ? ORDER BY id",
            self.tables.contact
        );
        let rows: Vec<Row> = self.run(Phase::Read, |c| c.exec(sql, (key.expose(),)))?;
        rows.iter()
            .map(|r| {
                uint(r, 0).and_then(|id| id.ok_or_else(|| "a contact without an id".to_string()))
            })
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::bad_data(format!("{}: {e}", self.location)))
    }

    fn read_key(&mut self, id: ContactId) -> Result<Option<ApiKey>, StoreError> {
        let sql = format!("SELECT api_key FROM {} WHERE id = ?", self.tables.contact);
        let row: Option<Row> = self.run(Phase::Read, |c| c.exec_first(sql, (id,)))?;
        let row = row.ok_or(StoreError::NotFound(id))?;
        match row.as_ref(0) {
            Some(Value::NULL) => Ok(None),
            Some(Value::Bytes(bytes)) if bytes.is_empty() => Ok(None),
            Some(Value::Bytes(bytes)) => Ok(Some(ApiKey::from_store(
                String::from_utf8_lossy(bytes).into_owned(),
            ))),
            _ => Err(StoreError::bad_data(format!(
                "{}: api_key is not text",
                self.location
            ))),
        }
    }

    /// The keyed rows in id order after the cursor's id, with the list's columns (the
    /// primary email and the first domain's CMS user included).
    fn key_holders(
        &mut self,
        after: Option<&HolderCursor>,
        limit: usize,
    ) -> Result<HolderPage, StoreError> {
        let limit = paging::holder_limit(limit);
        let sql = format!(
            "{} AND c.id > ? ORDER BY c.id LIMIT {}",
            self.holders_sql(""),
            limit + 1
        );
        let after = after.map_or(0, |c| c.after_id);
        let mut holders = Vec::new();
        self.each_holder(&sql, vec![Value::from(after)], &mut |h| {
            holders.push(h);
            Ok(())
        })?;
        Ok(holder_page(holders, limit))
    }

    /// Every holder in one query on index_api_key (one consistent read, streamed): the
    /// number of queries does not grow with the holders.
    fn read_key_holders(
        &mut self,
        each: &mut dyn FnMut(Vec<Holder>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        read_ahead(|emit| self.read_all(emit), each)
    }

    /// The users' two queries on a second connection ([`MysqlStore::sibling`]) while this
    /// one streams the holders: the users' time (a fifth of a second at 50,000 holders)
    /// hides behind the holders'.
    fn read_users_and_holders(&mut self, each: &mut SiteReader<'_>) -> Result<(), StoreError> {
        let columns = self.standalone_columns()?;
        let mut beside = self.sibling();
        users_beside(
            move || beside.users_of_holders(columns),
            |emit| read_ahead(|emit| self.read_all(emit), emit),
            each,
        )
    }

    /// Users and roles of the whole site: two queries.
    fn site_users(&mut self) -> Result<Option<SiteUsers>, StoreError> {
        let columns = self.standalone_columns()?;
        self.users_of_holders(columns)
    }

    /// One UPDATE that matches only if the key is still `expected`, byte for byte (CAST AS
    /// BINARY: on a `_ci` column plain `=` would match another case of the key); `<=>` is
    /// NULL-safe, and an empty string counts as no key.
    fn swap_key(
        &mut self,
        id: ContactId,
        expected: Option<&ApiKey>,
        new: Option<&ApiKey>,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "UPDATE {} SET api_key = ?
              WHERE id = ?
                AND (CAST(api_key AS BINARY) <=> CAST(? AS BINARY)
                     OR (? IS NULL AND LENGTH(api_key) = 0))",
            self.tables.contact
        );
        let stmt = self.run(Phase::Read, |c| c.prep(sql))?;
        let expected = expected.map(ApiKey::expose);
        let params = (new.map(ApiKey::expose), id, expected, expected);
        // From here on the server may have applied the change.
        let matched = self.run(Phase::WriteSent, |c| {
            c.exec_drop(&stmt, params).map(|()| c.affected_rows())
        })?;
        swap_outcome(id, matched, || self.contact_exists(id))
    }
}
