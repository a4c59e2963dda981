//! What a MySQL profile or `--store mysql://...` resolved to: the options, the address
//! taken apart (the one parser, which config.rs checks addresses with too) and the TLS rule
//! decided from them before anything is sent.

use std::path::PathBuf;
use std::time::Duration;

use crate::secret::Secret;
use crate::store::address::{host_and_port, is_loopback};
use crate::store::StoreError;

/// A MySQL profile's `tls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MysqlTls {
    /// Not set (or `tls = false`): no TLS to a loopback host; any other host is refused,
    /// before anything is sent, until the profile says `true` or `"off"`.
    Auto,
    /// `tls = true`: verified TLS, whatever the host.
    Required,
    /// `tls = "off"`: clear text even to another machine, warned about on every run.
    Off,
}

#[derive(Debug, Clone)]
pub struct MysqlOptions {
    /// `mysql://USER@HOST[:PORT]/DB` (no password in it: refused if one is there).
    pub address: String,
    /// From the profile's password_file / password_env; None = the client's option file
    /// (`~/.my.cnf`, `[client]` section) or no password.
    pub password: Option<Secret>,
    pub table_prefix: String,
    /// Whether the connection uses TLS (rustls, system roots or `tls_ca_file`).
    pub tls: MysqlTls,
    pub tls_ca_file: Option<PathBuf>,
    pub timeout: Duration,
}

const DEFAULT_PORT: u16 = 3306;

/// `mysql://USER@HOST[:PORT]/DB`, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlAddress {
    pub user: String,
    pub host: String,
    pub port: u16,
    pub db: String,
}

impl MysqlAddress {
    /// Parses and checks an address. Errors never repeat it: a malformed one may hold a
    /// password in a place the parser did not expect.
    pub fn parse(address: &str) -> Result<MysqlAddress, String> {
        let form = "expected mysql://USER@HOST[:PORT]/DB";
        let rest = address
            .strip_prefix("mysql://")
            .ok_or_else(|| format!("a MySQL store address starts with mysql://; {form}"))?;
        if rest.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!(
                "the mysql address holds spaces or control characters; {form}"
            ));
        }
        let (authority, db) = rest
            .split_once('/')
            .ok_or_else(|| format!("no database name; {form}"))?;
        let (user, host_port) = authority
            .rsplit_once('@')
            .ok_or_else(|| format!("no user name; {form}"))?;
        if user.contains(':') {
            return Err(
                "the mysql address holds a password; civikey refuses passwords in addresses (they end up in shell \
                 history, process lists and logs): put it in password_file or password_env of a mysql profile, or \
                 in the [client] section of ~/.my.cnf (mode 600)"
                    .to_string(),
            );
        }
        if user.is_empty() {
            return Err(format!("no user name; {form}"));
        }
        let (host, port) =
            host_and_port(host_port).map_err(|problem| format!("{problem}; {form}"))?;
        if host.is_empty() {
            return Err(format!("no host; {form}"));
        }
        if db.is_empty() || db.contains(['/', '?', '#']) {
            return Err(format!(
                "the database name is missing or holds '/', '?' or '#' (TLS and timeouts are profile fields, not part of the address); {form}"
            ));
        }
        Ok(MysqlAddress {
            user: user.to_string(),
            host: host.to_string(),
            port: port.unwrap_or(DEFAULT_PORT),
            db: db.to_string(),
        })
    }

    /// The address as shown to the operator: never a password (there cannot be one).
    pub fn shown(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("mysql://{}@{}:{}/{}", self.user, host, self.port, self.db)
    }
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
    let parsed = MysqlAddress::parse(address).map_err(StoreError::invalid)?;
    Ok(match (tls, is_loopback(&parsed.host)) {
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
            MysqlAddress::parse(&opts.address).map_or_else(|_| opts.address.clone(), |a| a.shown())
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        let a = MysqlAddress::parse("mysql://civikey@db.example.org:3307/civicrm").unwrap();
        assert_eq!(
            a,
            MysqlAddress {
                user: "civikey".into(),
                host: "db.example.org".into(),
                port: 3307,
                db: "civicrm".into()
            }
        );
        assert_eq!(MysqlAddress::parse("mysql://u@h/d").unwrap().port, 3306);
        let v6 = MysqlAddress::parse("mysql://u@[::1]:3310/d").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 3310));
        assert_eq!(v6.shown(), "mysql://u@[::1]:3310/d");
        for (bad, says) in [
            ("mysql://h/d", "no user"),
            ("mysql://u@h", "no database"),
            ("mysql://u@h/", "database name"),
            ("mysql://u@h:x/d", "port"),
            ("mysql://u@h:0/d", "port"),
            ("mysql://u@h:99999/d", "port"),
            ("mysql://u@:3306/d", "no host"),
            ("mysql://u@[db]/d", "IPv6"),
            ("mysql://u@h /d", "spaces"),
            ("postgres://u@h/d", "mysql://"),
            ("mysql://u@h/d?ssl=1", "database name"),
            ("mysql://@h/d", "no user"),
        ] {
            let err = MysqlAddress::parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn password_in_address_is_refused_without_repeating_it() {
        for address in ["mysql://u:Sekr3t@h/d", "mysql://u:Sekr3t@x@h:1/d"] {
            let err = MysqlAddress::parse(address).unwrap_err();
            assert!(err.contains("put it in password_file"), "{err}");
            assert!(!err.contains("Sekr3t"), "{err}");
        }
        let err = MysqlAddress::parse("mysql://u@h:Sekr3t/d").unwrap_err();
        assert!(!err.contains("Sekr3t"), "{err}");
    }
}
