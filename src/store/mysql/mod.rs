//! The CiviCRM database itself, over the MySQL/MariaDB protocol.
//!
//! civikey never alters a CiviCRM schema: every query here runs on the tables and indexes
//! CiviCRM creates (`index_is_deleted_sort_name`, `index_first_name`, `index_last_name`,
//! `index_organization_name`, `index_household_name`, `index_api_key`, `UI_email`, the foreign
//! key indexes), and nothing but `civicrm_contact.api_key` is ever written.
//! [`install_schema`] and [`insert_contacts`] exist only to build a CiviCRM-shaped test or
//! demo database; they refuse to touch tables that already exist.

mod options;

pub use options::{MysqlOptions, MysqlTls};

use std::fs;
use std::path::Path;

use mysql::consts::CapabilityFlags;
use mysql::prelude::Queryable;
use mysql::{Conn, Opts, OptsBuilder, Params, Row, SslOpts, TxOpts, Value};
use zeroize::Zeroizing;

use crate::fsperm;
use crate::key::{ApiKey, KeyHint};
use crate::sanitize::SafeText;
use crate::seed::SeedContact;
use crate::store::{
    split_permissions, AccountState, CmsLink, Contact, ContactId, ContactStore, Cursor, Holder,
    HolderCursor, HolderPage, Matcher, Page, Query, Role, Standing, StoreError, StoreInfo,
    StoreKind, UserAccount,
};

const DEFAULT_PORT: u16 = 3306;

/// A search page is at most this long, whatever the caller asks for.
const MAX_PAGE: usize = 1000;

/// How many rows one multi-row INSERT carries, and how many contacts one transaction holds.
const INSERT_BATCH: usize = 500;
const INSERT_TRANSACTION: usize = 10_000;

/// The contact columns every list and detail view reads. `{email}` and `{uf}` are the
/// prefixed table names. The key's last four characters and its SHA-256 (for "changed
/// since seen") are all that leaves the server for a list; an empty string counts as "no
/// key", as CiviCRM treats it.
const CONTACT_COLUMNS: &str = "c.id, c.contact_type, c.display_name, c.sort_name,
       (SELECT e.email FROM {email} e
         WHERE e.contact_id = c.id AND e.is_primary = 1 ORDER BY e.id LIMIT 1),
       c.is_deleted,
       CASE WHEN c.api_key IS NULL OR LENGTH(c.api_key) = 0 THEN NULL
            ELSE CONCAT(RIGHT(c.api_key, 4), COALESCE(SHA2(c.api_key, 256), '')) END,
       (SELECT u.uf_id FROM {uf} u WHERE u.contact_id = c.id ORDER BY u.domain_id LIMIT 1)";

/// `mysql://USER@HOST[:PORT]/DB`, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Address {
    user: String,
    host: String,
    port: u16,
    db: String,
}

impl Address {
    /// The address as shown to the operator: never a password (there cannot be one).
    fn shown(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("mysql://{}@{}:{}/{}", self.user, host, self.port, self.db)
    }
}

const ADDRESS_FORM: &str = "expected mysql://USER@HOST[:PORT]/DB";

/// Parses the address. Error messages never repeat the address: a malformed one may
/// hold a password in a place this parser did not expect.
fn parse_address(address: &str) -> Result<Address, StoreError> {
    let rest = address.strip_prefix("mysql://").ok_or_else(|| {
        StoreError::invalid(format!(
            "a MySQL store address must start with mysql:// ({ADDRESS_FORM})"
        ))
    })?;
    let (authority, db) = rest.split_once('/').ok_or_else(|| {
        StoreError::invalid(format!("the address names no database ({ADDRESS_FORM})"))
    })?;
    let (user, host_port) = authority.rsplit_once('@').ok_or_else(|| {
        StoreError::invalid(format!("the address names no user ({ADDRESS_FORM})"))
    })?;
    if user.contains(':') {
        return Err(StoreError::invalid(
            "the address holds a password (mysql://USER:PASSWORD@...); civikey refuses passwords in addresses \
             because they end up in shell history, process lists and config files. Remove it and set the \
             profile's password_file or password_env, or put it in the [client] section of ~/.my.cnf (mode 600)",
        ));
    }
    if user.is_empty() {
        return Err(StoreError::invalid(format!(
            "the address names no user ({ADDRESS_FORM})"
        )));
    }
    if db.is_empty() || db.contains(['/', '?', '#']) {
        return Err(StoreError::invalid(format!(
            "the database name is missing or holds '/', '?' or '#' ({ADDRESS_FORM}; TLS and timeouts are set in the profile, not the address)"
        )));
    }
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or_else(|| {
            StoreError::invalid(format!(
                "an IPv6 host lacks its closing ']' ({ADDRESS_FORM})"
            ))
        })?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').unwrap_or(after))),
        }
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err(StoreError::invalid(format!(
            "the address names no host ({ADDRESS_FORM})"
        )));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(text) => text
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                StoreError::invalid("the port in the address is not a number from 1 to 65535")
            })?,
    };
    Ok(Address {
        user: user.to_string(),
        host: host.to_string(),
        port,
        db: db.to_string(),
    })
}

/// How a connection to `host` is made under the profile's `tls`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsDecision {
    /// Verified TLS (system roots, or the profile's tls_ca_file).
    Verified,
    /// No TLS, to this machine.
    PlainLoopback,
    /// No TLS to another machine, because the profile says `tls = "off"`: warned about.
    PlainRemote,
}

/// The TLS rule, decided before anything is sent: verified TLS to any host but this
/// machine unless the profile says `tls = "off"`; a remote host with `tls` unset is refused.
pub fn decide_tls(address: &str, tls: MysqlTls) -> Result<TlsDecision, StoreError> {
    let parsed = parse_address(address)?;
    Ok(match (tls, crate::store::address::is_loopback(&parsed.host)) {
        (MysqlTls::Required, _) => TlsDecision::Verified,
        (MysqlTls::Auto | MysqlTls::Off, true) => TlsDecision::PlainLoopback,
        (MysqlTls::Off, false) => TlsDecision::PlainRemote,
        (MysqlTls::Auto, false) => {
            return Err(StoreError::invalid(format!(
                "{} is another machine, and civikey sends keys there only over verified TLS; nothing was sent. \
                 Set tls = true in the profile (with tls_ca_file if the server's certificate is not signed by a \
                 public CA), or tls = \"off\" to send keys and the password readable by anyone on the network",
                parsed.shown()
            )))
        }
    })
}

/// The warning for every run of a profile with `tls = "off"` to another machine.
pub fn clear_text_warning(opts: &MysqlOptions) -> Option<String> {
    match decide_tls(&opts.address, opts.tls) {
        Ok(TlsDecision::PlainRemote) => Some(format!(
            "warning: TLS is off for {} (tls = \"off\"): keys and the password cross the network readable by anyone on the way",
            parse_address(&opts.address).map_or_else(|_| opts.address.clone(), |a| a.shown())
        )),
        _ => None,
    }
}

/// Only letters, digits and `_`: the prefix is pasted into SQL as part of table names.
fn check_prefix(prefix: &str) -> Result<(), StoreError> {
    if prefix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
        && prefix.len() <= 40
    {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "table_prefix may hold only the letters A-Z, a-z, the digits 0-9 and '_' (at most 40 of them)",
        ))
    }
}

/// Standalone's user and role columns, as far as the database has them.
#[derive(Clone, Copy, Debug)]
struct StandaloneColumns {
    /// civicrm_uf_match.username and is_active: users are uf_match rows (Standalone).
    users: bool,
    roles: bool,
    role_active: bool,
}

/// Ids per `IN (...)` list when reading standings.
const STANDING_CHUNK: usize = 500;

/// The three table names, prefixed and quoted, ready to paste into SQL.
#[derive(Clone)]
struct Tables {
    contact: String,
    email: String,
    uf: String,
    /// A Standalone site's roles (absent elsewhere).
    role: String,
    user_role: String,
    /// The unquoted table names, for information_schema.
    contact_name: String,
    uf_name: String,
    role_name: String,
    user_role_name: String,
}

impl Tables {
    fn new(prefix: &str) -> Result<Self, StoreError> {
        check_prefix(prefix)?;
        Ok(Tables {
            contact: format!("`{prefix}civicrm_contact`"),
            email: format!("`{prefix}civicrm_email`"),
            uf: format!("`{prefix}civicrm_uf_match`"),
            role: format!("`{prefix}civicrm_role`"),
            user_role: format!("`{prefix}civicrm_user_role`"),
            contact_name: format!("{prefix}civicrm_contact"),
            uf_name: format!("{prefix}civicrm_uf_match"),
            role_name: format!("{prefix}civicrm_role"),
            user_role_name: format!("{prefix}civicrm_user_role"),
        })
    }

    fn contact_columns(&self) -> String {
        CONTACT_COLUMNS
            .replace("{email}", &self.email)
            .replace("{uf}", &self.uf)
    }
}

/// The `[client]` password of a MySQL option file, or None when it sets none.
/// Follows the option file rules: `#`/`;` comment lines, optional quotes, backslash
/// escapes, the last setting wins. A bare `password` (prompt for it) counts as none.
fn option_file_password(text: &str) -> Option<Zeroizing<String>> {
    let mut in_client = false;
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_client = section.trim().eq_ignore_ascii_case("client");
            continue;
        }
        if !in_client {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            if line == "password" {
                found = None;
            }
            continue;
        };
        if name.trim() != "password" {
            continue;
        }
        let value = value.trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)));
        let raw = match unquoted {
            Some(inner) => inner,
            // Unquoted values end at a comment.
            None => value.split('#').next().unwrap_or("").trim_end(),
        };
        let mut out = Zeroizing::new(String::with_capacity(raw.len()));
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('b') => out.push('\u{8}'),
                Some('s') => out.push(' '),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        }
        found = Some(out);
    }
    found
}

/// The password from `path` (a MySQL option file) if it exists; refused if others can read it.
fn password_from_option_file(path: &Path) -> Result<Option<Zeroizing<String>>, StoreError> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StoreError::invalid(format!(
                "cannot read {}: {e}",
                path.display()
            )))
        }
    };
    fsperm::refuse_if_exposed(path, &meta).map_err(StoreError::invalid)?;
    let text = Zeroizing::new(
        fs::read_to_string(path)
            .map_err(|e| StoreError::invalid(format!("cannot read {}: {e}", path.display())))?,
    );
    Ok(option_file_password(&text))
}

/// The connection options for `opts`, and the address as shown to the operator.
fn connection_opts(opts: &MysqlOptions) -> Result<(Opts, Address), StoreError> {
    let address = parse_address(&opts.address)?;
    let tls = decide_tls(&opts.address, opts.tls)?;
    let password: Option<Zeroizing<String>> = match &opts.password {
        Some(secret) => Some(Zeroizing::new(secret.expose().to_string())),
        None => match directories::BaseDirs::new() {
            Some(dirs) => password_from_option_file(&dirs.home_dir().join(".my.cnf"))?,
            None => None,
        },
    };
    let timeout = (!opts.timeout.is_zero()).then_some(opts.timeout);
    let mut builder = OptsBuilder::new()
        .ip_or_hostname(Some(address.host.clone()))
        .tcp_port(address.port)
        .user(Some(address.user.clone()))
        .pass(password.as_ref().map(|p| p.as_str().to_string()))
        .db_name(Some(address.db.clone()))
        // The address names a TCP host; do not quietly switch to a local socket (and so to
        // another account, user@localhost) behind the operator's back.
        .prefer_socket(false)
        .tcp_connect_timeout(timeout)
        .read_timeout(timeout)
        .write_timeout(timeout)
        // Affected rows must count matched rows, not changed ones: compare-and-set checks
        // "exactly one row matched", and a key rewritten with itself changes nothing.
        .additional_capabilities(CapabilityFlags::CLIENT_FOUND_ROWS)
        // A too-long value must fail, not be silently cut (CiviCRM runs non-strict).
        .init(vec!["SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'STRICT_ALL_TABLES')"]);
    if tls == TlsDecision::Verified {
        let mut ssl = SslOpts::default();
        if let Some(ca) = &opts.tls_ca_file {
            ssl = ssl.with_root_cert_path(Some(ca.clone()));
        }
        builder = builder.ssl_opts(Some(ssl));
    }
    Ok((Opts::from(builder), address))
}

/// A connection to the database `opts` names, for tools that build one (tests, `seed`).
pub fn open_connection(opts: &MysqlOptions) -> Result<Conn, StoreError> {
    let (conn_opts, address) = connection_opts(opts)?;
    Conn::new(conn_opts).map_err(|e| map_error(e, &address.shown(), Phase::Read))
}

/// Whether a failed call happened before a write could have reached the server.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Read,
    /// The UPDATE was sent: a lost connection leaves its outcome unknown.
    WriteSent,
}

/// Whether the connection is unusable after `e` (it must be reopened).
fn connection_lost(e: &mysql::Error) -> bool {
    match e {
        mysql::Error::IoError(_) | mysql::Error::CodecError(_) | mysql::Error::DriverError(_) => {
            true
        }
        mysql::Error::TlsError(_) => true,
        mysql::Error::MySqlError(e) => matches!(e.code, 1053 | 1927 | 4031),
        mysql::Error::UrlError(_)
        | mysql::Error::FromValueError(_)
        | mysql::Error::FromRowError(_) => false,
    }
}

/// Maps a driver error onto the store's error kinds. Server messages are untrusted text
/// (the constructors sanitize them); none of them carries the password.
fn map_error(e: mysql::Error, location: &str, phase: Phase) -> StoreError {
    let text = |message: String| SafeText::new(&format!("{location}: {message}"));
    if phase == Phase::WriteSent && connection_lost(&e) {
        return StoreError::OutcomeUnknown(text(format!(
            "the connection failed after the key change was sent ({e}); it may or may not have been applied. \
             Check the contact's key before trying again"
        )));
    }
    match e {
        mysql::Error::MySqlError(err) => {
            let message = format!("server error {}: {}", err.code, err.message);
            match err.code {
                // Access denied to the database, for the user, for a table, for a column;
                // host not allowed; an expired password.
                1044 | 1045 | 1142 | 1143 | 1130 | 1227 | 1820 | 1862 => StoreError::PermissionDenied(text(
                    if err.code == 1045 {
                        format!("{message}. Check the user and the password (the profile's password_file or password_env, or ~/.my.cnf)")
                    } else {
                        message
                    },
                )),
                // --read-only server, read-only transaction.
                1290 | 1792 | 1836 => StoreError::ReadOnly(text(message)),
                1049 => StoreError::Invalid(text(format!("{message} (is the database name in the address right?)"))),
                1146 => StoreError::Invalid(text(format!(
                    "{message} (is this a CiviCRM database, and is table_prefix right?)"
                ))),
                1406 => StoreError::Invalid(text(format!("{message}; nothing was written"))),
                1205 | 1213 => StoreError::Timeout(text(format!(
                    "{message}; another session holds the row, the statement was rolled back and nothing was written"
                ))),
                1317 | 1969 | 3024 => StoreError::Timeout(text(message)),
                1040 | 1053 | 1927 | 4031 => StoreError::Unreachable(text(message)),
                _ => StoreError::BadData(text(message)),
            }
        }
        mysql::Error::IoError(io) => match io.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                StoreError::Timeout(text(format!("no answer within the timeout ({io})")))
            }
            _ => StoreError::Unreachable(text(format!("connection failed: {io}"))),
        },
        mysql::Error::DriverError(driver) => match driver {
            mysql::DriverError::ConnectTimeout | mysql::DriverError::Timeout => {
                StoreError::Timeout(text(format!("no answer within the timeout ({driver})")))
            }
            mysql::DriverError::CouldNotConnect(_) => {
                StoreError::Unreachable(text(format!("cannot connect: {driver}")))
            }
            mysql::DriverError::TlsNotSupported => StoreError::Unreachable(text(
                "the profile requires TLS but the server does not offer it; nothing was sent"
                    .to_string(),
            )),
            other => StoreError::Unreachable(text(format!("protocol failure: {other}"))),
        },
        mysql::Error::TlsError(tls) => StoreError::Unreachable(text(format!("TLS failed: {tls}"))),
        mysql::Error::CodecError(codec) => {
            // Reads go through the packet codec, so a read timeout arrives wrapped in it.
            let io_kind = std::error::Error::source(&codec)
                .and_then(|inner| inner.downcast_ref::<std::io::Error>())
                .map(std::io::Error::kind);
            match io_kind {
                Some(std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    StoreError::Timeout(text(format!("no answer within the timeout ({codec})")))
                }
                _ => StoreError::Unreachable(text(format!("connection failed: {codec}"))),
            }
        }
        mysql::Error::UrlError(url) => StoreError::Invalid(text(url.to_string())),
        mysql::Error::FromValueError(_) | mysql::Error::FromRowError(_) => {
            StoreError::BadData(text("a value of an unexpected type".to_string()))
        }
    }
}

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
    /// Connects, and reads how the api_key column is defined (length and collation).
    pub fn connect(opts: &MysqlOptions) -> Result<Self, StoreError> {
        let tables = Tables::new(&opts.table_prefix)?;
        let (conn_opts, address) = connection_opts(opts)?;
        let location = address.shown();
        let mut conn =
            Conn::new(conn_opts.clone()).map_err(|e| map_error(e, &location, Phase::Read))?;
        let column: Option<Row> = conn
            .exec_first(
                "SELECT CHARACTER_MAXIMUM_LENGTH, COLLATION_NAME FROM information_schema.COLUMNS
                  WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = 'api_key'",
                (tables.contact_name.as_str(),),
            )
            .map_err(|e| map_error(e, &location, Phase::Read))?;
        let Some(row) = column else {
            return Err(StoreError::invalid(format!(
                "{location}: there is no table {} with an api_key column in this database; is it the CiviCRM database, and is table_prefix right?",
                tables.contact_name
            )));
        };
        let capacity = uint(&row, 0)
            .map_err(|e| StoreError::bad_data(format!("{location}: api_key column length: {e}")))?
            .ok_or_else(|| {
                StoreError::bad_data(format!("{location}: api_key is not a text column"))
            })?;
        let collation =
            text(&row, 1).map_err(|e| StoreError::bad_data(format!("{location}: {e}")))?;
        let store = MysqlStore {
            conn: Some(conn),
            opts: conn_opts,
            location: if opts.table_prefix.is_empty() {
                location
            } else {
                format!("{location} (table prefix {})", opts.table_prefix)
            },
            clear_text_remote: clear_text_warning(opts).is_some(),
            tables,
            key_capacity: usize::try_from(capacity).unwrap_or(usize::MAX),
            keys_case_insensitive: collation_is_case_insensitive(collation.as_deref()),
            standalone: None,
            name_plan: None,
            sort_name_index: false,
            exact_scan_max: EXACT_SCAN_MAX_CONTACTS,
            range_limits: RangeLimits::default(),
        };
        Ok(store)
    }

    fn conn(&mut self) -> Result<&mut Conn, StoreError> {
        if self.conn.is_none() {
            let conn = Conn::new(self.opts.clone())
                .map_err(|e| map_error(e, &self.location, Phase::Read))?;
            self.conn = Some(conn);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| StoreError::unreachable(format!("{}: no connection", self.location)))
    }

    fn standalone_columns(&mut self) -> Result<StandaloneColumns, StoreError> {
        if let Some(columns) = self.standalone {
            return Ok(columns);
        }
        let names = (
            self.tables.uf_name.clone(),
            self.tables.role_name.clone(),
            self.tables.user_role_name.clone(),
        );
        let rows: Vec<Row> = self.run(Phase::Read, |c| {
            c.exec(
                "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS
                  WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (?, ?, ?)",
                names.clone(),
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
        let has =
            |table: &str, column: &str| present.iter().any(|(t, c)| t == table && c == column);
        let columns = StandaloneColumns {
            users: has(&names.0, "username") && has(&names.0, "is_active"),
            roles: has(&names.2, "user_id") && has(&names.1, "permissions"),
            role_active: has(&names.1, "is_active"),
        };
        self.standalone = Some(columns);
        Ok(columns)
    }

    fn standings_chunk(
        &mut self,
        ids: &[ContactId],
        columns: StandaloneColumns,
        out: &mut std::collections::HashMap<ContactId, Standing>,
    ) -> Result<(), StoreError> {
        let marks = vec!["?"; ids.len()].join(", ");
        let params: Vec<Value> = ids.iter().map(|&id| Value::from(id)).collect();
        // The lowest domain's row: a Standalone site has one domain.
        let sql = format!(
            "SELECT c.id, u.id, {name}, {active} FROM {contact} c
               LEFT JOIN {uf} u ON u.contact_id = c.id
                AND u.domain_id = (SELECT MIN(d.domain_id) FROM {uf} d WHERE d.contact_id = c.id)
              WHERE c.id IN ({marks})",
            name = if columns.users {
                "COALESCE(NULLIF(u.username, ''), u.uf_name, '')"
            } else {
                "COALESCE(u.uf_name, '')"
            },
            active = if columns.users { "u.is_active" } else { "NULL" },
            contact = self.tables.contact,
            uf = self.tables.uf,
        );
        let rows: Vec<Row> = self.run(Phase::Read, |c| c.exec(sql, params))?;
        let bad = |e: String| StoreError::bad_data(format!("{}: {e}", self.location));
        let mut users = Vec::with_capacity(rows.len());
        for row in &rows {
            let contact = uint(row, 0).map_err(bad)?.unwrap_or_default();
            let user = uint(row, 1).map_err(bad)?;
            let name = text(row, 2).map_err(bad)?.unwrap_or_default();
            let active = uint(row, 3).map_err(bad)?.map(|a| a != 0);
            users.push((contact, user, name, active));
        }
        let user_ids: Vec<Value> = users.iter().filter_map(|u| u.1).map(Value::from).collect();
        let mut roles: std::collections::HashMap<u64, Vec<Role>> = Default::default();
        if columns.users && columns.roles && !user_ids.is_empty() {
            let sql = format!(
                "SELECT ur.user_id, COALESCE(NULLIF(r.label, ''), r.name), COALESCE(r.permissions, '')
                   FROM {ur} ur JOIN {r} r ON r.id = ur.role_id
                  WHERE ur.user_id IN ({marks}){active}
                  ORDER BY ur.user_id, r.name",
                marks = vec!["?"; user_ids.len()].join(", "),
                active = if columns.role_active {
                    " AND r.is_active = 1"
                } else {
                    ""
                },
                ur = self.tables.user_role,
                r = self.tables.role,
            );
            let rows: Vec<Row> = self.run(Phase::Read, |c| c.exec(sql, user_ids))?;
            let bad = |e: String| StoreError::bad_data(format!("{}: {e}", self.location));
            for row in &rows {
                let user = uint(row, 0).map_err(bad)?.unwrap_or_default();
                let name = text(row, 1).map_err(bad)?.unwrap_or_default();
                let permissions =
                    split_permissions(&text(row, 2).map_err(bad)?.unwrap_or_default());
                roles.entry(user).or_default().push(Role::from_permissions(
                    &name,
                    permissions.iter().map(String::as_str),
                ));
            }
        }
        for (contact, user, name, active) in users {
            let standing = match (user, active) {
                (None, _) => Standing::no_account(),
                // Not Standalone: the CMS holds the account, its state and roles.
                (Some(_), None) => Standing::UNKNOWN,
                (Some(user), Some(active)) => Standing {
                    account: AccountState::Account(UserAccount {
                        id: user,
                        name: SafeText::new(&name),
                        active,
                    }),
                    roles: columns
                        .roles
                        .then(|| roles.remove(&user).unwrap_or_default()),
                },
            };
            out.insert(contact, standing);
        }
        Ok(())
    }

    /// Runs `f` on the connection; forgets the connection if it broke.
    fn run<T>(
        &mut self,
        phase: Phase,
        f: impl FnOnce(&mut Conn) -> mysql::Result<T>,
    ) -> Result<T, StoreError> {
        let result = f(self.conn()?);
        result.map_err(|e| {
            if connection_lost(&e) {
                self.conn = None;
            }
            map_error(e, &self.location, phase)
        })
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

    /// Decides once how name searches run: through the name indexes when CiviCRM's are
    /// all there (a database may predate one) and the table is too big to scan.
    fn name_plan(&mut self) -> Result<NamePlan, StoreError> {
        if let Some(plan) = self.name_plan {
            return Ok(plan);
        }
        let table = self.tables.contact_name.clone();
        let columns: Vec<(String, u64, String)> = self.run(Phase::Read, |c| {
            c.exec(
                "SELECT INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME FROM information_schema.STATISTICS
                  WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                (table,),
            )
        })?;
        let has = |(index, position, column): &(&str, u64, &str)| {
            columns.iter().any(|(i, p, c)| {
                i.eq_ignore_ascii_case(index) && p == position && c.eq_ignore_ascii_case(column)
            })
        };
        let indexed = NAME_INDEXES.iter().all(has);
        // Its first column is sort_name and it has no second one (InnoDB then orders its
        // entries by the primary key, the id).
        self.sort_name_index = has(&("index_sort_name", 1, "sort_name"))
            && !columns
                .iter()
                .any(|(i, p, _)| i.eq_ignore_ascii_case("index_sort_name") && *p > 1);
        let plan = if indexed {
            // Counting stops one row past the limit: cheap on any table.
            let sql = format!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM {} LIMIT {}) x",
                self.tables.contact,
                self.exact_scan_max.saturating_add(1)
            );
            let rows: Option<u64> = self.run(Phase::Read, |c| c.query_first(sql))?;
            if rows.unwrap_or(0) > self.exact_scan_max {
                NamePlan::Indexed
            } else {
                NamePlan::Scan
            }
        } else {
            NamePlan::Scan
        };
        self.name_plan = Some(plan);
        Ok(plan)
    }

    /// How many entries each range holds, counted up to its `sparse_max` + 1 on the index
    /// alone (no row is read).
    fn range_sizes(&mut self, ranges: &[NameRange]) -> Result<Vec<u64>, StoreError> {
        let counts: Vec<String> = ranges
            .iter()
            .map(|r| {
                format!(
                    "(SELECT COUNT(*) FROM (SELECT 1 FROM {contact} c FORCE INDEX ({index})
                       WHERE {condition} LIMIT {limit}) x)",
                    contact = self.tables.contact,
                    index = r.index,
                    condition = r.condition,
                    limit = r.sparse_max + 1
                )
            })
            .collect();
        let sql = format!("SELECT {}", counts.join(", "));
        let args: Vec<Value> = ranges.iter().flat_map(|r| r.args.clone()).collect();
        let row: Option<Row> =
            self.run(Phase::Read, |c| c.exec_first(sql, Params::Positional(args)))?;
        let row =
            row.ok_or_else(|| StoreError::bad_data(format!("{}: no counts", self.location)))?;
        (0..ranges.len())
            .map(|i| uint(&row, i).map(|n| n.unwrap_or(0)))
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::bad_data(format!("{}: {e}", self.location)))
    }

    fn contact_exists(&mut self, id: ContactId) -> Result<bool, StoreError> {
        let sql = format!("SELECT 1 FROM {} WHERE id = ?", self.tables.contact);
        let found: Option<Row> = self.run(Phase::Read, |c| c.exec_first(sql, (id,)))?;
        Ok(found.is_some())
    }
}

/// `_ci` collations compare case-insensitively; `_bin`, `_cs` and binary columns (no
/// collation) do not. An unknown suffix is taken as case-insensitive, the cautious side
/// for a uniqueness check.
fn collation_is_case_insensitive(collation: Option<&str>) -> bool {
    match collation {
        None => false,
        Some(name) => {
            let name = name.to_ascii_lowercase();
            !(name.ends_with("_bin") || name.ends_with("_cs") || name == "binary")
        }
    }
}

/// Column `i` as text (NULL = None). Non-UTF-8 bytes are decoded lossily: the caller
/// sanitizes the result.
fn text(row: &Row, i: usize) -> Result<Option<String>, String> {
    match row.as_ref(i) {
        None => Err(format!("column {i} is missing from the result")),
        Some(Value::NULL) => Ok(None),
        Some(Value::Bytes(bytes)) => Ok(Some(String::from_utf8_lossy(bytes).into_owned())),
        Some(Value::Int(n)) => Ok(Some(n.to_string())),
        Some(Value::UInt(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(format!("column {i} holds a value of an unexpected type")),
    }
}

/// Column `i` as a non-negative integer (NULL = None).
fn uint(row: &Row, i: usize) -> Result<Option<u64>, String> {
    match row.as_ref(i) {
        None => Err(format!("column {i} is missing from the result")),
        Some(Value::NULL) => Ok(None),
        Some(Value::UInt(n)) => Ok(Some(*n)),
        Some(Value::Int(n)) => u64::try_from(*n)
            .map(Some)
            .map_err(|_| format!("column {i} is negative")),
        Some(Value::Bytes(bytes)) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| format!("column {i} is not a number")),
        Some(_) => Err(format!("column {i} holds a value of an unexpected type")),
    }
}

/// One row of [`CONTACT_COLUMNS`]: the contact, and its raw sort_name for the cursor.
fn row_to_contact(row: &Row) -> Result<(Contact, Option<String>), String> {
    let id = uint(row, 0)?.ok_or("a contact without an id")?;
    let sort_name = text(row, 3)?;
    let safe = |i: usize| -> Result<SafeText, String> {
        Ok(SafeText::new(&text(row, i)?.unwrap_or_default()))
    };
    let contact = Contact {
        id,
        contact_type: safe(1)?,
        display_name: safe(2)?,
        sort_name: SafeText::new(sort_name.as_deref().unwrap_or_default()),
        email: text(row, 4)?.map(|e| SafeText::new(&e)),
        is_deleted: uint(row, 5)?.unwrap_or(0) != 0,
        key: text(row, 6)?.map(|tail| KeyHint::from_tail_and_sha256(&tail)),
        cms: match uint(row, 7)? {
            Some(uf_id) => CmsLink::Linked { uf_id },
            None => CmsLink::None,
        },
    };
    Ok((contact, sort_name))
}

/// The name condition ([`crate::store::name_matches`] in SQL; the collation ignores case and
/// accents): a prefix of the sort, first, last, organisation or household name, a
/// first-name and a last-name prefix in either order for each split of a text of several
/// words, and with `deep` a word inside the display name. Starts with ` AND `.
fn name_condition(text: &str, deep: bool) -> (String, Vec<Value>) {
    let like = |t: &str| Value::from(crate::store::like_prefix(t, '!'));
    let mut sql = String::from(
        " AND (c.sort_name LIKE ? ESCAPE '!' OR c.first_name LIKE ? ESCAPE '!'
               OR c.last_name LIKE ? ESCAPE '!' OR c.organization_name LIKE ? ESCAPE '!'
               OR c.household_name LIKE ? ESCAPE '!'",
    );
    let mut args = vec![like(text); 5];
    for (a, b) in crate::store::name_splits(text) {
        sql.push_str(
            " OR (c.first_name LIKE ? ESCAPE '!' AND c.last_name LIKE ? ESCAPE '!')
              OR (c.last_name LIKE ? ESCAPE '!' AND c.first_name LIKE ? ESCAPE '!')",
        );
        args.extend([like(a), like(b), like(a), like(b)]);
    }
    if deep {
        sql.push_str(" OR c.display_name LIKE ? ESCAPE '!'");
        args.push(Value::from(format!(
            "% {}",
            crate::store::like_prefix(text, '!')
        )));
    }
    sql.push(')');
    (sql, args)
}

/// Where the indexed name search switches plans, in index entries of a range (counted on
/// the index alone, no row read). Reading a range's rows costs a row lookup each (about
/// 3 microseconds in the buffer pool, 20 or more when the page must be read: a million
/// contacts do not fit a default buffer pool), so big ranges are answered on the indexes
/// alone (see [`MysqlStore::search`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeLimits {
    /// A first-name range up to this size is read whole and sorted; a bigger one is
    /// matched against the list order on the indexes alone.
    pub first_name_rows: u64,
    /// A first/last split whose smaller half has up to this many entries is intersected on
    /// the two name indexes (no row read) before the few contacts in both are read.
    pub split_half: u64,
    /// A last, organisation or household name range with more entries than this is left
    /// out: CiviCRM's sort names start with the last name (individuals: "Last, First") or
    /// the organisation or household name, so the sort-name range holds those contacts
    /// already, and reading a common surname's range whole (13,539 Smiths at 1M: 60-90 ms)
    /// would only find them again. Up to this size it is read, for sites with other sort
    /// name formats.
    pub covered_rows: u64,
}

impl Default for RangeLimits {
    fn default() -> Self {
        RangeLimits {
            first_name_rows: 5_000,
            split_half: 20_000,
            covered_rows: 500,
        }
    }
}

/// "No limit" in a derived table: MariaDB materializes a derived table that has a LIMIT
/// (it never merges it into the outer query), which is what the index-only plans need.
const NO_LIMIT: &str = "18446744073709551615";

/// A contact table with at most this many rows is searched by testing every row for the
/// exact name condition (later words of every name included): a scan that small takes a
/// few ms. Bigger ones use the name indexes.
const EXACT_SCAN_MAX_CONTACTS: u64 = 10_000;

/// CiviCRM's indexes the indexed name search forces, as (index, position, column).
const NAME_INDEXES: [(&str, u64, &str); 6] = [
    ("index_is_deleted_sort_name", 1, "is_deleted"),
    ("index_is_deleted_sort_name", 2, "sort_name"),
    ("index_first_name", 1, "first_name"),
    ("index_last_name", 1, "last_name"),
    ("index_organization_name", 1, "organization_name"),
    ("index_household_name", 1, "household_name"),
];

/// How name searches run on this database (decided once per store).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NamePlan {
    /// Walk index_is_deleted_sort_name testing every row: a small table, or one without
    /// CiviCRM's name indexes.
    Scan,
    /// A union of ranges of CiviCRM's name indexes.
    Indexed,
}

/// One range of a name column's index that holds some of a search's matches.
struct NameRange {
    index: &'static str,
    /// The condition on the indexed column (a range of its index), and its arguments.
    condition: String,
    args: Vec<Value>,
    /// What else a row of the range must satisfy (for a split's first-name half, the
    /// last-name half), with its arguments; starts with ` AND ` when present.
    filter: (String, Vec<Value>),
    /// When a single range is too big to read whole: match it against the list order (a
    /// first name), or leave it out (its contacts are in the sort-name range).
    walk_when_big: bool,
    /// The most entries read whole and sorted (from [`RangeLimits`]).
    sparse_max: u64,
}

impl NameRange {
    fn prefix(index: &'static str, column: &str, text: &str, sparse_max: u64) -> NameRange {
        NameRange {
            index,
            condition: format!("c.{column} LIKE ? ESCAPE '!'"),
            args: vec![Value::from(crate::store::like_prefix(text, '!'))],
            filter: (String::new(), Vec::new()),
            walk_when_big: false,
            sparse_max,
        }
    }

    /// The ranges whose union, with the sort-name range, holds every keystroke match of
    /// `text`: the first, last, organisation and household name prefixes (a big last,
    /// organisation or household range starts the sort name too: CiviCRM's sort names
    /// start with it), then for each first/last split both halves' ranges, by first name
    /// (filtered by the last-name half) then by last name ([`MysqlStore::search`]
    /// intersects the two, or walks the list when both are big).
    fn for_text(text: &str, limits: RangeLimits) -> Vec<NameRange> {
        let mut first = NameRange::prefix(
            "index_first_name",
            "first_name",
            text,
            limits.first_name_rows,
        );
        first.walk_when_big = true;
        let covered = limits.covered_rows;
        let mut out = vec![
            first,
            NameRange::prefix("index_last_name", "last_name", text, covered),
            NameRange::prefix(
                "index_organization_name",
                "organization_name",
                text,
                covered,
            ),
            NameRange::prefix("index_household_name", "household_name", text, covered),
        ];
        let like = |t: &str| Value::from(crate::store::like_prefix(t, '!'));
        for (a, b) in crate::store::name_splits(text) {
            for (first_part, last_part) in [(a, b), (b, a)] {
                let half = limits.split_half;
                let mut by_first =
                    NameRange::prefix("index_first_name", "first_name", first_part, half);
                by_first.filter = (
                    " AND c.last_name LIKE ? ESCAPE '!'".into(),
                    vec![like(last_part)],
                );
                out.push(by_first);
                out.push(NameRange::prefix(
                    "index_last_name",
                    "last_name",
                    last_part,
                    half,
                ));
            }
        }
        out
    }

    /// The ids of the range, on its index alone, as a derived table MariaDB materializes.
    fn ids(&self, contact: &str) -> String {
        format!(
            "(SELECT c.id FROM {contact} c FORCE INDEX ({index}) WHERE {condition} LIMIT {NO_LIMIT})",
            index = self.index,
            condition = self.condition,
        )
    }
}

/// The keyset condition for `after` (with its arguments): rows after the cursor in list
/// order, NULL sort names first.
fn cursor_condition(after: Option<&Cursor>) -> Result<(String, Vec<Value>), StoreError> {
    match after {
        None => Ok((String::new(), Vec::new())),
        // Still among the NULL sort names (they sort first), or past them.
        Some(Cursor::After {
            sort_name: None,
            id,
        }) => Ok((
            " AND (c.sort_name IS NOT NULL OR c.id > ?)".into(),
            vec![Value::UInt(*id)],
        )),
        Some(Cursor::After {
            sort_name: Some(sort_name),
            id,
        }) => Ok((
            " AND (c.sort_name > ? OR (c.sort_name = ? AND c.id > ?))".into(),
            vec![
                Value::from(sort_name.as_str()),
                Value::from(sort_name.as_str()),
                Value::UInt(*id),
            ],
        )),
        Some(Cursor::Offset(_)) => Err(StoreError::invalid(
            "the MySQL store pages by key, not by offset",
        )),
    }
}

/// A search being built: parenthesized SELECTs of (id, sort_name), each already limited
/// to one page past the cursor, to be merged with UNION (which also drops a contact two
/// ranges found).
struct Union<'a> {
    contact: String,
    cursor: String,
    cursor_args: Vec<Value>,
    /// The ranges that hold the list in list order: one of index_sort_name when the trash
    /// is included (and the index is there), else one of index_is_deleted_sort_name per
    /// is_deleted value, as (index, condition).
    list_ranges: &'a [(&'static str, &'static str)],
    fetch: usize,
    branches: Vec<String>,
    args: Vec<Value>,
}

impl Union<'_> {
    /// The list order walked on the index alone (`list_ranges`), each entry looked up in
    /// `members` (a derived table of ids, materialized once per range, with its
    /// arguments), until a page of members is found; no row is read.
    fn walk_members(&mut self, members: &str, members_args: &[Value]) {
        for (index, list) in self.list_ranges {
            let select = format!(
                "(SELECT c.id, c.sort_name FROM {contact} c FORCE INDEX ({index})
                   STRAIGHT_JOIN {members} m ON m.id = c.id
                   WHERE {list}{cursor}
                   ORDER BY c.sort_name, c.id LIMIT {fetch})",
                contact = self.contact,
                cursor = self.cursor,
                fetch = self.fetch,
            );
            self.branches.push(select);
            self.args.extend_from_slice(members_args);
            self.args.extend_from_slice(&self.cursor_args);
        }
    }

    /// `select`, whose placeholders are `before`, the cursor's, then `after`.
    fn add(&mut self, select: String, before: Vec<Value>, after: &[Value]) {
        self.branches.push(select);
        self.args.extend(before);
        self.args.extend_from_slice(&self.cursor_args);
        self.args.extend_from_slice(after);
    }

    /// The list order (`list_ranges`), `condition` (starting with ` AND `) tested on each
    /// row, read until a page is found.
    fn walk(&mut self, condition: &str, condition_args: &[Value]) {
        for (index, list) in self.list_ranges {
            let select = format!(
                "(SELECT c.id, c.sort_name FROM {contact} c FORCE INDEX ({index})
                   WHERE {list}{condition}{cursor}
                   ORDER BY c.sort_name, c.id LIMIT {fetch})",
                contact = self.contact,
                cursor = self.cursor,
                fetch = self.fetch,
            );
            self.branches.push(select);
            self.args.extend_from_slice(condition_args);
            self.args.extend_from_slice(&self.cursor_args);
        }
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

    /// Keyset paging in list order (sort_name, id), on CiviCRM's own indexes only (see
    /// docs/PERFORMANCE.md): each matcher becomes a union of index ranges, each read at most
    /// up to the page size, merged, and only the page's contacts are read in full.
    fn search(&mut self, query: &Query) -> Result<Page, StoreError> {
        let limit = query.limit.clamp(1, MAX_PAGE);
        let fetch = limit + 1;
        let t = self.tables.clone();
        let (cursor, cursor_args) = cursor_condition(query.after.as_ref())?;
        // Decided once, with the name indexes: whether index_sort_name is there.
        self.name_plan()?;
        let list_ranges: &[(&str, &str)] = match (query.include_deleted, self.sort_name_index) {
            (true, true) => &[("index_sort_name", "TRUE")],
            (true, false) => &[
                ("index_is_deleted_sort_name", "c.is_deleted = 0"),
                ("index_is_deleted_sort_name", "c.is_deleted = 1"),
            ],
            (false, _) => &[("index_is_deleted_sort_name", "c.is_deleted = 0")],
        };
        let live_only = if query.include_deleted {
            ""
        } else {
            " AND c.is_deleted = 0"
        };
        let mut sql = Union {
            contact: t.contact.clone(),
            cursor,
            cursor_args,
            list_ranges,
            fetch,
            branches: Vec::new(),
            args: Vec::new(),
        };
        match query.matcher() {
            Matcher::All => sql.walk("", &[]),
            Matcher::Id(id) => {
                // The primary key: one row at most.
                sql.add(
                    format!(
                        "(SELECT c.id, c.sort_name FROM {} c WHERE c.id = ?{live_only}{})",
                        t.contact, sql.cursor
                    ),
                    vec![Value::UInt(id)],
                    &[],
                );
            }
            Matcher::EmailPrefix(text) => {
                // A LIKE prefix is a range of UI_email (a case-insensitive index, as LIKE
                // compares); a contact with two matching emails is one row.
                sql.add(
                    format!(
                        "(SELECT DISTINCT c.id, c.sort_name FROM {email} e
                           JOIN {contact} c ON c.id = e.contact_id
                          WHERE e.email LIKE ? ESCAPE '!'{live_only}{cursor}
                          ORDER BY c.sort_name, c.id LIMIT {fetch})",
                        email = t.email,
                        contact = t.contact,
                        cursor = sql.cursor
                    ),
                    vec![Value::from(crate::store::like_prefix(text, '!'))],
                    &[],
                );
            }
            Matcher::Name(text) => {
                let (condition, condition_args) = name_condition(text, query.deep);
                if query.deep || self.name_plan()? == NamePlan::Scan {
                    // A word inside the display name has no index: every row is tested
                    // (a deep search, never sent per keystroke), as on a small table.
                    sql.walk(&condition, &condition_args);
                } else {
                    // sort_name prefix: a range of index_is_deleted_sort_name in list order.
                    sql.walk(
                        " AND c.sort_name LIKE ? ESCAPE '!'",
                        &[Value::from(crate::store::like_prefix(text, '!'))],
                    );
                    let ranges = NameRange::for_text(text, self.range_limits);
                    let sizes = self.range_sizes(&ranges)?;
                    // The first four are single ranges.
                    for (range, &size) in ranges.iter().zip(&sizes).take(4) {
                        if size <= range.sparse_max {
                            // Few enough to read them all and sort: the range of the
                            // column's own index.
                            sql.add(
                                format!(
                                    "(SELECT c.id, c.sort_name FROM {contact} c FORCE INDEX ({index})
                                       WHERE {range_condition}{live_only}{cursor}
                                       ORDER BY c.sort_name, c.id LIMIT {fetch})",
                                    contact = t.contact,
                                    index = range.index,
                                    range_condition = range.condition,
                                    cursor = sql.cursor,
                                ),
                                range.args.clone(),
                                &[],
                            );
                        } else if range.walk_when_big {
                            // A common first name: its ids on index_first_name alone,
                            // matched against the list order on the sort-name index alone
                            // (reading its rows would be a lookup each, most of them
                            // outside the buffer pool at a million contacts).
                            sql.walk_members(&range.ids(&t.contact), &range.args);
                        }
                    }
                    // Then pairs (by first name, by last name) for each first/last split.
                    for (pair, size) in ranges[4..].chunks(2).zip(sizes[4..].chunks(2)) {
                        let (by_first, by_last) = (&pair[0], &pair[1]);
                        if size[0].min(size[1]) <= by_first.sparse_max {
                            // The two halves intersected on their indexes alone; only the
                            // contacts in both (usually a few) are read.
                            let mut args = by_first.args.clone();
                            args.extend_from_slice(&by_last.args);
                            sql.add(
                                format!(
                                    "(SELECT c.id, c.sort_name FROM
                                       (SELECT f.id FROM {first} f JOIN {last} l ON l.id = f.id
                                         LIMIT {NO_LIMIT}) m
                                       STRAIGHT_JOIN {contact} c ON c.id = m.id
                                       WHERE TRUE{live_only}{cursor}
                                       ORDER BY c.sort_name, c.id LIMIT {fetch})",
                                    first = by_first.ids(&t.contact),
                                    last = by_last.ids(&t.contact),
                                    contact = t.contact,
                                    cursor = sql.cursor,
                                ),
                                args,
                                &[],
                            );
                        } else {
                            // Both halves common: a page of contacts having both comes
                            // soon in list order.
                            let (filter, filter_args) = &by_first.filter;
                            let walk_condition = format!(" AND {}{filter}", by_first.condition);
                            let mut walk_args = by_first.args.clone();
                            walk_args.extend_from_slice(filter_args);
                            sql.walk(&walk_condition, &walk_args);
                        }
                    }
                }
            }
        }
        let Union { branches, args, .. } = sql;
        let sql = format!(
            "SELECT {} FROM ({}) k JOIN {} c ON c.id = k.id ORDER BY k.sort_name, k.id LIMIT {fetch}",
            t.contact_columns(),
            branches.join(" UNION "),
            t.contact
        );
        let rows: Vec<Row> = self.run(Phase::Read, |c| c.exec(sql, Params::Positional(args)))?;
        let mut found = rows
            .iter()
            .map(row_to_contact)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::bad_data(format!("{}: {e}", self.location)))?;
        let more = found.len() > limit;
        found.truncate(limit);
        let next = match found.last() {
            Some((last, sort_name)) if more => Some(Cursor::After {
                sort_name: sort_name.clone(),
                id: last.id,
            }),
            _ => None,
        };
        Ok(Page {
            contacts: found.into_iter().map(|(c, _)| c).collect(),
            next,
        })
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
        let mut out = std::collections::HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(STANDING_CHUNK) {
            self.standings_chunk(chunk, columns, &mut out)?;
        }
        Ok(out)
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

    /// A range of index_api_key in the column's own collation (so on `_ci` columns keys that
    /// differ only in case sit together, as the login check sees them), then id.
    fn key_holders(
        &mut self,
        after: Option<&HolderCursor>,
        limit: usize,
    ) -> Result<HolderPage, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let (condition, args) = match after {
            None => (String::new(), Vec::new()),
            Some(HolderCursor::AfterKey { key, id }) => (
                " AND c.api_key >= ? AND (c.api_key > ? OR c.id > ?)".to_string(),
                vec![
                    Value::from(key.expose()),
                    Value::from(key.expose()),
                    Value::from(*id),
                ],
            ),
            Some(HolderCursor::Offset(_)) => {
                return Err(StoreError::invalid(
                    "the MySQL store pages key holders by key, not by offset",
                ))
            }
        };
        // The list columns without the email (NULL in its place): its subquery would double
        // the cost of reading 50,000 holders, and the check does not need it.
        let sql = format!(
            "SELECT c.id, c.contact_type, c.display_name, c.sort_name, NULL, c.is_deleted,
                    CONCAT(RIGHT(c.api_key, 4), COALESCE(SHA2(c.api_key, 256), '')),
                    (SELECT u.uf_id FROM {uf} u WHERE u.contact_id = c.id
                      ORDER BY u.domain_id LIMIT 1),
                    c.api_key
               FROM {contact} c FORCE INDEX (index_api_key)
              WHERE c.api_key IS NOT NULL AND LENGTH(c.api_key) > 0{condition}
              ORDER BY c.api_key, c.id LIMIT {}",
            limit + 1,
            uf = self.tables.uf,
            contact = self.tables.contact,
        );
        let rows: Result<Vec<Row>, StoreError> =
            self.run(Phase::Read, |c| c.exec(sql, Params::Positional(args)));
        let location = self.location.clone();
        let bad = |e: String| StoreError::bad_data(format!("{location}: {e}"));
        let mut holders = Vec::new();
        for row in rows? {
            let (contact, _) = row_to_contact(&row).map_err(bad)?;
            let key = match row.as_ref(8) {
                Some(Value::Bytes(bytes)) => {
                    ApiKey::from_store(String::from_utf8_lossy(bytes).into_owned())
                }
                _ => return Err(bad("api_key is not text".into())),
            };
            holders.push(Holder { contact, key });
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
        match matched {
            1 => Ok(()),
            0 if self.contact_exists(id)? => Err(StoreError::Conflict),
            0 => Err(StoreError::NotFound(id)),
            n => Err(StoreError::bad_data(format!(
                "{}: {n} rows matched one contact id",
                self.location
            ))),
        }
    }
}

/// Creates CiviCRM-shaped tables (the columns and indexes civikey reads, with the names and
/// columns CiviCRM's schema/Contact/Contact.entityType.php gives them: InnoDB, utf8mb4,
/// utf8mb4_unicode_ci). For test and demo databases only; fails if
/// a table already exists, so it can never change a real CiviCRM schema.
pub fn install_schema(conn: &mut Conn, prefix: &str) -> Result<(), StoreError> {
    let t = Tables::new(prefix)?;
    let options =
        "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC";
    let statements = [
        format!(
            "CREATE TABLE {contact} (
               id int unsigned NOT NULL AUTO_INCREMENT,
               contact_type varchar(64) DEFAULT NULL,
               display_name varchar(128) DEFAULT NULL,
               sort_name varchar(128) DEFAULT NULL,
               organization_name varchar(128) DEFAULT NULL,
               first_name varchar(64) DEFAULT NULL,
               last_name varchar(64) DEFAULT NULL,
               household_name varchar(128) DEFAULT NULL,
               is_deleted tinyint NOT NULL DEFAULT 0,
               created_date timestamp NULL DEFAULT CURRENT_TIMESTAMP,
               modified_date timestamp NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
               api_key varchar(32) DEFAULT NULL,
               PRIMARY KEY (id),
               INDEX index_organization_name (organization_name),
               INDEX index_first_name (first_name),
               INDEX index_last_name (last_name),
               INDEX index_sort_name (sort_name),
               INDEX index_api_key (api_key),
               INDEX index_household_name (household_name),
               INDEX index_is_deleted_sort_name (is_deleted, sort_name, id)
             ) {options}",
            contact = t.contact
        ),
        format!(
            "CREATE TABLE {email} (
               id int unsigned NOT NULL AUTO_INCREMENT,
               contact_id int unsigned DEFAULT NULL,
               location_type_id int unsigned DEFAULT NULL,
               email varchar(254) DEFAULT NULL,
               is_primary tinyint NOT NULL DEFAULT 0,
               on_hold tinyint NOT NULL DEFAULT 0,
               PRIMARY KEY (id),
               INDEX UI_email (email),
               CONSTRAINT `FK_{prefix}civicrm_email_contact_id` FOREIGN KEY (contact_id)
                 REFERENCES {contact} (id) ON DELETE CASCADE
             ) {options}",
            email = t.email,
            contact = t.contact
        ),
        format!(
            "CREATE TABLE {uf} (
               id int unsigned NOT NULL AUTO_INCREMENT,
               domain_id int unsigned NOT NULL,
               uf_id int unsigned NOT NULL,
               uf_name varchar(128) DEFAULT NULL,
               contact_id int unsigned DEFAULT NULL,
               PRIMARY KEY (id),
               UNIQUE INDEX UI_uf_match_contact_id_domain_id (contact_id, domain_id),
               INDEX I_civicrm_uf_match_uf_id (uf_id),
               CONSTRAINT `FK_{prefix}civicrm_uf_match_contact_id` FOREIGN KEY (contact_id)
                 REFERENCES {contact} (id) ON DELETE CASCADE
             ) {options}",
            uf = t.uf,
            contact = t.contact
        ),
    ];
    for sql in statements {
        conn.query_drop(sql).map_err(|e| match e {
            mysql::Error::MySqlError(ref err) if err.code == 1050 => StoreError::invalid(format!(
                "{}; civikey never changes an existing schema",
                err.message
            )),
            other => map_error(other, "install_schema", Phase::Read),
        })?;
    }
    Ok(())
}

/// Fills CiviCRM-shaped tables (see [`install_schema`]) with `contacts`: multi-row INSERTs,
/// one transaction per 10,000 contacts, `progress` told the running total after each.
/// Contacts without an id get the next free ones.
pub fn insert_contacts(
    conn: &mut Conn,
    prefix: &str,
    contacts: impl IntoIterator<Item = SeedContact>,
    progress: &mut dyn FnMut(usize),
) -> Result<(), StoreError> {
    let t = Tables::new(prefix)?;
    let fail = |e| map_error(e, "insert_contacts", Phase::Read);
    let max_id: Option<Row> = conn
        .query_first(format!("SELECT COALESCE(MAX(id), 0) FROM {}", t.contact))
        .map_err(fail)?;
    let mut last_id = max_id
        .as_ref()
        .map(|r| uint(r, 0))
        .transpose()
        .map_err(StoreError::bad_data)?
        .flatten()
        .unwrap_or(0);
    let mut batch = Batch::default();
    let mut done = 0;
    let mut tx = conn.start_transaction(TxOpts::default()).map_err(fail)?;
    for c in contacts {
        let id = match c.id {
            Some(id) => u64::try_from(id)
                .map_err(|_| StoreError::invalid(format!("contact id {id} is negative")))?,
            None => last_id + 1,
        };
        last_id = last_id.max(id);
        batch.add(id, c);
        if batch.rows == INSERT_BATCH {
            batch.flush(&mut tx, &t).map_err(fail)?;
        }
        done += 1;
        if done % INSERT_TRANSACTION == 0 {
            batch.flush(&mut tx, &t).map_err(fail)?;
            tx.commit().map_err(fail)?;
            progress(done);
            tx = conn.start_transaction(TxOpts::default()).map_err(fail)?;
        }
    }
    batch.flush(&mut tx, &t).map_err(fail)?;
    tx.commit().map_err(fail)?;
    progress(done);
    Ok(())
}

/// Rows waiting for their multi-row INSERT.
#[derive(Default)]
struct Batch {
    /// Contacts waiting (each has one row in `contacts`, at most one in `emails` and `ufs`).
    rows: usize,
    contacts: Vec<Value>,
    emails: Vec<Value>,
    ufs: Vec<Value>,
}

impl Batch {
    const CONTACT_COLUMNS: usize = 10;
    const EMAIL_COLUMNS: usize = 2;
    const UF_COLUMNS: usize = 3;

    fn add(&mut self, id: u64, c: SeedContact) {
        self.rows += 1;
        let text = |s: Option<String>| s.map_or(Value::NULL, Value::from);
        // CiviCRM keeps an organisation's or household's name in a column of its own and
        // derives display_name from it: the name is the display name.
        let own_name = |kind: &str| {
            if c.contact_type == kind {
                Value::from(c.display_name.as_str())
            } else {
                Value::NULL
            }
        };
        let organization_name = own_name("Organization");
        let household_name = own_name("Household");
        self.contacts.extend([
            Value::UInt(id),
            Value::from(c.contact_type),
            Value::from(c.display_name),
            Value::from(c.sort_name),
            organization_name,
            text(c.first_name),
            text(c.last_name),
            household_name,
            Value::from(c.is_deleted),
            c.api_key
                .as_ref()
                .map_or(Value::NULL, |k| Value::from(k.expose())),
        ]);
        if let Some(email) = &c.email {
            self.emails
                .extend([Value::UInt(id), Value::from(email.as_str())]);
        }
        if let Some(uf_id) = c.uf_id {
            self.ufs
                .extend([Value::Int(uf_id), text(c.email), Value::UInt(id)]);
        }
    }

    fn flush(&mut self, tx: &mut mysql::Transaction<'_>, t: &Tables) -> mysql::Result<()> {
        let inserts = [
            (
                &mut self.contacts,
                Self::CONTACT_COLUMNS,
                format!(
                    "INSERT INTO {} (id, contact_type, display_name, sort_name, organization_name, first_name, last_name, household_name, is_deleted, api_key) VALUES ",
                    t.contact
                ),
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ),
            (
                &mut self.emails,
                Self::EMAIL_COLUMNS,
                format!("INSERT INTO {} (contact_id, email, is_primary, location_type_id) VALUES ", t.email),
                "(?, ?, 1, 1)",
            ),
            (
                &mut self.ufs,
                Self::UF_COLUMNS,
                format!("INSERT INTO {} (domain_id, uf_id, uf_name, contact_id) VALUES ", t.uf),
                "(1, ?, ?, ?)",
            ),
        ];
        for (values, columns, head, row) in inserts {
            let rows = values.len() / columns;
            if rows == 0 {
                continue;
            }
            let mut sql = head;
            sql.push_str(&vec![row; rows].join(", "));
            tx.exec_drop(sql, Params::Positional(std::mem::take(values)))?;
        }
        self.rows = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn addresses_parse() {
        let a = parse_address("mysql://civikey@db.example.org:3307/civicrm").unwrap();
        assert_eq!(
            a,
            Address {
                user: "civikey".into(),
                host: "db.example.org".into(),
                port: 3307,
                db: "civicrm".into()
            }
        );
        assert_eq!(parse_address("mysql://u@h/d").unwrap().port, 3306);
        let v6 = parse_address("mysql://u@[::1]:3310/d").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 3310));
        assert_eq!(v6.shown(), "mysql://u@[::1]:3310/d");
        for bad in [
            "mysql://h/d",
            "mysql://u@h",
            "mysql://u@h/",
            "mysql://u@h:x/d",
            "mysql://u@h:0/d",
            "mysql://u@:3306/d",
            "postgres://u@h/d",
            "mysql://u@h/d?ssl=1",
            "mysql://@h/d",
        ] {
            assert!(parse_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn password_in_address_is_refused_without_repeating_it() {
        for address in ["mysql://u:Sekr3t@h/d", "mysql://u:Sekr3t@x@h:1/d"] {
            let err = parse_address(address).unwrap_err().to_string();
            assert!(err.contains("password"), "{err}");
            assert!(!err.contains("Sekr3t"), "{err}");
        }
        let err = parse_address("mysql://u@h:Sekr3t/d")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("Sekr3t"), "{err}");
    }

    #[test]
    fn prefixes_are_validated() {
        assert!(check_prefix("").is_ok());
        assert!(check_prefix("crm_2").is_ok());
        for bad in ["a-b", "x`; DROP", "é", "a b"] {
            assert!(check_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn option_file_passwords() {
        let read = |t: &str| option_file_password(t).map(|p| p.to_string());
        assert_eq!(read("[client]\npassword=abc\n"), Some("abc".into()));
        assert_eq!(
            read("[mysqld]\npassword=no\n[client]\nuser=u\npassword = \"a b#c\"\n"),
            Some("a b#c".into())
        );
        assert_eq!(read("[client]\npassword='x\\\\y'\n"), Some("x\\y".into()));
        assert_eq!(
            read("[client]\npassword=abc # comment\n"),
            Some("abc".into())
        );
        assert_eq!(read("[mysql]\npassword=abc\n"), None);
        assert_eq!(read("# [client]\n[client]\n; password=x\n"), None);
        assert_eq!(read("[client]\npassword=a\npassword=b\n"), Some("b".into()));
        assert_eq!(read("[client]\npassword\n"), None);
    }

    #[test]
    fn exposed_option_file_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".my.cnf");
        assert!(
            password_from_option_file(&path).unwrap().is_none(),
            "absent file: no password"
        );
        fs::write(&path, "[client]\npassword=Sekr3t\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = password_from_option_file(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        assert!(!err.contains("Sekr3t"), "{err}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            password_from_option_file(&path)
                .unwrap()
                .as_deref()
                .map(String::as_str),
            Some("Sekr3t")
        );
    }

    #[test]
    fn collations() {
        assert!(collation_is_case_insensitive(Some("utf8mb4_unicode_ci")));
        assert!(collation_is_case_insensitive(Some("utf8mb4_0900_ai_ci")));
        assert!(!collation_is_case_insensitive(Some("utf8mb4_bin")));
        assert!(!collation_is_case_insensitive(Some("utf8mb4_0900_as_cs")));
        assert!(!collation_is_case_insensitive(None));
    }

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(crate::store::like_prefix("100%_a!", '!'), "100!%!_a!!%");
    }
}
