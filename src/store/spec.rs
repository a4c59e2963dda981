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

#[derive(Debug, Clone)]
pub struct RestOptions {
    /// `https://SITE` (plain http only for loopback addresses), or an API v4 address
    /// template with `{entity}` and `{action}` (the profile's `api_url`, for WordPress
    /// without clean URLs and Joomla).
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
    /// The profile's `cv_user`: the CMS user cv acts as, with CiviCRM's own permission
    /// checks on (`cv pipe`'s `login`, or `--user=NAME` and `checkPermissions: true` per
    /// call). None: no login and no permission checks, the trust of `cv api4` itself.
    pub cv_user: Option<String>,
    pub timeout: Duration,
}

/// A site to log in to with a new key (the login check): an address as
/// [`RestOptions::base_url`] takes it, and the site key if the profile has one.
#[derive(Debug, Clone)]
pub struct SiteLogin {
    pub api_address: String,
    pub site_key: Option<Secret>,
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
    /// A MySQL or cv store whose profile names the site (`site_url`), so new keys can be
    /// checked by logging in with them.
    WithLogin(Box<StoreSpec>, SiteLogin),
}

impl StoreSpec {
    /// Where the store is, for messages: never a secret.
    pub fn location(&self) -> String {
        match self {
            StoreSpec::Sqlite { path, .. } => format!("sqlite:{}", path.display()),
            StoreSpec::Mysql(o) => o.address.clone(),
            StoreSpec::Rest(o) => o.base_url.clone(),
            StoreSpec::Cv(o) => format!("cv:{}", o.site_path.display()),
            StoreSpec::ReadOnly(inner) | StoreSpec::WithLogin(inner, _) => inner.location(),
        }
    }

    /// What the operator must be told on every run about this store: clear-text MySQL to
    /// another machine (`tls = "off"`).
    pub fn warning(&self) -> Option<String> {
        match self {
            StoreSpec::Mysql(o) => super::mysql::clear_text_warning(o),
            StoreSpec::ReadOnly(inner) => inner.warning(),
            _ => None,
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
            StoreSpec::WithLogin(inner, login) => Ok(Box::new(LoginStore {
                inner: inner.open()?,
                login: login.clone(),
            })),
        }
    }

    /// The store itself, without the login site.
    pub fn without_login(&self) -> &StoreSpec {
        match self {
            StoreSpec::WithLogin(inner, _) => inner,
            other => other,
        }
    }
}

/// A store and the site its new keys are checked on.
struct LoginStore {
    inner: Box<dyn ContactStore>,
    login: SiteLogin,
}

impl ContactStore for LoginStore {
    fn info(&self) -> super::StoreInfo {
        self.inner.info()
    }
    fn search(&mut self, query: &super::Query) -> Result<super::Page, StoreError> {
        self.inner.search(query)
    }
    fn contact(&mut self, id: super::ContactId) -> Result<super::Contact, StoreError> {
        self.inner.contact(id)
    }
    fn holders_of(&mut self, key: &ApiKey) -> Result<Vec<super::ContactId>, StoreError> {
        self.inner.holders_of(key)
    }
    fn read_key(&mut self, id: super::ContactId) -> Result<Option<ApiKey>, StoreError> {
        self.inner.read_key(id)
    }
    fn standing(&mut self, id: super::ContactId) -> Result<super::Standing, StoreError> {
        self.inner.standing(id)
    }
    fn standings(
        &mut self,
        ids: &[super::ContactId],
    ) -> Result<std::collections::HashMap<super::ContactId, super::Standing>, StoreError> {
        self.inner.standings(ids)
    }
    fn key_holders(
        &mut self,
        after: Option<&super::HolderCursor>,
        limit: usize,
    ) -> Result<super::HolderPage, StoreError> {
        self.inner.key_holders(after, limit)
    }
    fn login_site(&self) -> Option<SiteLogin> {
        Some(self.login.clone())
    }
    fn swap_key(
        &mut self,
        id: super::ContactId,
        expected: Option<&ApiKey>,
        new: Option<&ApiKey>,
    ) -> Result<(), StoreError> {
        self.inner.swap_key(id, expected, new)
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
    fn key_holders(
        &mut self,
        after: Option<&super::HolderCursor>,
        limit: usize,
    ) -> Result<super::HolderPage, StoreError> {
        self.0.key_holders(after, limit)
    }
    fn standing(&mut self, id: super::ContactId) -> Result<super::Standing, StoreError> {
        self.0.standing(id)
    }
    fn standings(
        &mut self,
        ids: &[super::ContactId],
    ) -> Result<std::collections::HashMap<super::ContactId, super::Standing>, StoreError> {
        self.0.standings(ids)
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
