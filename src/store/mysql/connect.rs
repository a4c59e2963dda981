//! Connecting: the connection options (the password from the profile or the client's
//! option file, TLS as decided, a strict session), the store's first look at the
//! api_key column, and the one connection every call runs on, reopened after it broke.

use std::fs;
use std::path::Path;

use mysql::consts::CapabilityFlags;
use mysql::prelude::Queryable;
use mysql::{Conn, Opts, OptsBuilder, Row, SslOpts};
use zeroize::Zeroizing;

use super::errors::{connection_lost, map_error, Phase};
use super::options::{clear_text_warning, decide_tls, MysqlAddress, MysqlOptions, TlsDecision};
use super::plan::{RangeLimits, EXACT_SCAN_MAX_CONTACTS};
use super::rows::{text, uint};
use super::tables::Tables;
use super::MysqlStore;
use crate::fsperm;
use crate::store::StoreError;

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

/// What connecting decides before anything is sent: the address, the TLS rule and the
/// password. A run connects with it; `civikey config check` judges a profile by it.
pub struct Preflight {
    pub address: MysqlAddress,
    pub tls: TlsDecision,
    password: Option<Zeroizing<String>>,
}

/// The address and TLS rule checked, the password read (the profile's, or the `[client]`
/// one of `~/.my.cnf`, refused if others can read that file); nothing is sent.
pub fn preflight(opts: &MysqlOptions) -> Result<Preflight, StoreError> {
    let address = MysqlAddress::parse(&opts.address).map_err(StoreError::invalid)?;
    let tls = decide_tls(&opts.address, opts.tls)?;
    let password: Option<Zeroizing<String>> = match &opts.password {
        Some(secret) => Some(Zeroizing::new(secret.expose().to_string())),
        None => match directories::BaseDirs::new() {
            Some(dirs) => password_from_option_file(&dirs.home_dir().join(".my.cnf"))?,
            None => None,
        },
    };
    Ok(Preflight {
        address,
        tls,
        password,
    })
}

impl Preflight {
    /// What the operator should hear before connecting: clear text to another machine (as
    /// every run warns), or no password from anywhere (the server is asked without one).
    pub fn warnings(&self, opts: &MysqlOptions) -> Vec<String> {
        let mut warnings: Vec<String> = clear_text_warning(opts).into_iter().collect();
        if self.password.is_none() {
            warnings.push(
                "no password: the profile has no password_file or password_env, and ~/.my.cnf does not exist \
                 or sets no password in its [client] section; the server will be asked without one"
                    .to_string(),
            );
        }
        warnings
    }
}

/// The connection options for `opts`, and the address as shown to the operator.
fn connection_opts(opts: &MysqlOptions) -> Result<(Opts, MysqlAddress), StoreError> {
    let Preflight {
        address,
        tls,
        password,
    } = preflight(opts)?;
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

    /// A store on the same database with a connection of its own, opened at its first
    /// call: for a read beside this one ([`ContactStore::read_users_and_holders`]).
    pub(super) fn sibling(&self) -> MysqlStore {
        MysqlStore {
            conn: None,
            opts: self.opts.clone(),
            location: self.location.clone(),
            clear_text_remote: self.clear_text_remote,
            tables: self.tables.clone(),
            key_capacity: self.key_capacity,
            keys_case_insensitive: self.keys_case_insensitive,
            standalone: self.standalone,
            name_plan: None,
            sort_name_index: false,
            exact_scan_max: self.exact_scan_max,
            range_limits: self.range_limits,
        }
    }

    pub(super) fn conn(&mut self) -> Result<&mut Conn, StoreError> {
        if self.conn.is_none() {
            let conn = Conn::new(self.opts.clone())
                .map_err(|e| map_error(e, &self.location, Phase::Read))?;
            self.conn = Some(conn);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| StoreError::unreachable(format!("{}: no connection", self.location)))
    }

    /// Runs `f` on the connection; forgets the connection if it broke.
    pub(super) fn run<T>(
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

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
}
