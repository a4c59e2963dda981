//! How to open a store: what `--store` or a config profile resolved to, secrets included.
//!
//! Secrets here were read from files or the environment (never argv) by config.rs and
//! are zeroized on drop; Debug never prints them.

use std::path::PathBuf;
use std::time::Duration;

use zeroize::Zeroizing;

use super::{ContactStore, StoreError};
use crate::key::ApiKey;

/// A password or site key: redacted in Debug, zeroized on drop.
#[derive(Clone)]
pub struct Secret(pub Zeroizing<String>);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(Zeroizing::new(value))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Clone)]
pub struct MysqlOptions {
    /// `mysql://USER@HOST[:PORT]/DB` (no password in it: refused if one is there).
    pub address: String,
    /// From the profile's password_file / password_env; None = the client's option file
    /// (`~/.my.cnf`, `[client]` section) or no password.
    pub password: Option<Secret>,
    pub table_prefix: String,
    /// Require TLS (rustls, system roots or `tls_ca_file`).
    pub tls: bool,
    pub tls_ca_file: Option<PathBuf>,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct RestOptions {
    /// `https://SITE` (plain http only for loopback addresses).
    pub base_url: String,
    /// The admin's API key, sent as `X-Civi-Auth: Bearer ...`.
    pub api_key: ApiKey,
    /// Sent as `X-Civi-Key` when present.
    pub site_key: Option<Secret>,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct CvOptions {
    /// The CiviCRM site folder, passed as `--cwd`.
    pub site_path: PathBuf,
    /// The `cv` program (a name looked up in PATH, or a path).
    pub cv_binary: PathBuf,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub enum StoreSpec {
    Sqlite {
        path: PathBuf,
        read_only: bool,
    },
    Mysql(MysqlOptions),
    Rest(RestOptions),
    Cv(CvOptions),
    /// `--read-only`: the inner store, with every write refused before it is sent.
    ReadOnly(Box<StoreSpec>),
}

impl StoreSpec {
    /// Where the store is, for messages: never a secret.
    pub fn location(&self) -> String {
        match self {
            StoreSpec::Sqlite { path, .. } => format!("sqlite:{}", path.display()),
            StoreSpec::Mysql(o) => o.address.clone(),
            StoreSpec::Rest(o) => o.base_url.clone(),
            StoreSpec::Cv(o) => format!("cv:{}", o.site_path.display()),
            StoreSpec::ReadOnly(inner) => inner.location(),
        }
    }

    /// Opens (connects to) the store. May be slow for remote stores: call it off the UI thread.
    pub fn open(&self) -> Result<Box<dyn ContactStore>, StoreError> {
        match self {
            StoreSpec::Sqlite { path, read_only } => Ok(Box::new(
                super::sqlite::SqliteStore::open_with(path, *read_only)?,
            )),
            StoreSpec::Mysql(o) => Ok(Box::new(super::mysql::MysqlStore::connect(o)?)),
            StoreSpec::Rest(o) => Ok(Box::new(super::rest::RestStore::connect(o)?)),
            StoreSpec::Cv(o) => Ok(Box::new(super::cv::CvStore::new(o)?)),
            StoreSpec::ReadOnly(inner) => Ok(Box::new(ReadOnlyStore(inner.open()?))),
        }
    }
}

/// A store with writes refused: views work, `info().writable` is false, `swap_key` fails
/// without reaching the backend.
struct ReadOnlyStore(Box<dyn ContactStore>);

impl ContactStore for ReadOnlyStore {
    fn info(&self) -> super::StoreInfo {
        super::StoreInfo {
            writable: false,
            ..self.0.info()
        }
    }
    fn search(&mut self, query: &super::Query) -> Result<super::Page, StoreError> {
        self.0.search(query)
    }
    fn contact(&mut self, id: super::ContactId) -> Result<super::Contact, StoreError> {
        self.0.contact(id)
    }
    fn contacts(&mut self, ids: &[super::ContactId]) -> Result<Vec<super::Contact>, StoreError> {
        self.0.contacts(ids)
    }
    fn holders_of(&mut self, key: &ApiKey) -> Result<Vec<super::ContactId>, StoreError> {
        self.0.holders_of(key)
    }
    fn read_key(&mut self, id: super::ContactId) -> Result<Option<ApiKey>, StoreError> {
        self.0.read_key(id)
    }
    fn swap_key(
        &mut self,
        _id: super::ContactId,
        _expected: Option<&ApiKey>,
        _new: Option<&ApiKey>,
    ) -> Result<(), StoreError> {
        Err(StoreError::ReadOnly(crate::sanitize::SafeText::new(
            "civikey was started with --read-only",
        )))
    }
}
