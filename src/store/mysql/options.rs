//! What a MySQL profile or `--store mysql://...` resolved to.

use std::path::PathBuf;
use std::time::Duration;

use crate::secret::Secret;

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
