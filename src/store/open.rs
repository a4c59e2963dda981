//! The factory: what `--store` or a config profile resolved to, and how it opens. It
//! imports every backend; no backend imports it.
//!
//! Secrets here were read from files or the environment (never argv) by config.rs and
//! are zeroized on drop; Debug never prints them.

use std::path::PathBuf;

use zeroize::Zeroizing;

use super::cv::{CvOptions, CvStore};
use super::mysql::{MysqlOptions, MysqlStore};
use super::rest::{RestOptions, RestStore};
use super::sqlite::SqliteStore;
use super::wrap::Wrapped;
use super::{ContactStore, SiteLogin, StoreError};

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
            StoreSpec::ReadOnly(inner) | StoreSpec::WithLogin(inner, _) => inner.warning(),
            StoreSpec::Sqlite { .. } | StoreSpec::Rest(_) | StoreSpec::Cv(_) => None,
        }
    }

    /// What opening would refuse before anything is sent (a remote MySQL host without TLS
    /// settings, a `~/.my.cnf` others can read), else what a run would warn about (clear
    /// text, no password from anywhere): the judgement a run makes, for `config check`.
    pub fn preflight(&self) -> Result<Vec<String>, StoreError> {
        match self {
            StoreSpec::Mysql(o) => super::mysql::preflight(o).map(|p| p.warnings(o)),
            StoreSpec::ReadOnly(inner) | StoreSpec::WithLogin(inner, _) => inner.preflight(),
            StoreSpec::Sqlite { .. } | StoreSpec::Rest(_) | StoreSpec::Cv(_) => Ok(Vec::new()),
        }
    }

    /// Opens (connects to) the store, inside the one [`Wrapped`] layer (read-only, login
    /// site, errors made safe). May be slow for remote stores: call it off the UI thread.
    pub fn open(&self) -> Result<Box<dyn ContactStore>, StoreError> {
        let secrets = self.secrets();
        let exposed: Vec<&str> = secrets.iter().map(|s| s.as_str()).collect();
        match self.open_wrapped(&secrets) {
            Ok(store) => Ok(Box::new(store)),
            Err(e) => Err(e.hiding(&exposed)),
        }
    }

    fn open_wrapped(&self, secrets: &[Zeroizing<String>]) -> Result<Wrapped, StoreError> {
        let backend: Box<dyn ContactStore> = match self {
            StoreSpec::Sqlite { path, read_only } => {
                Box::new(SqliteStore::open_with(path, *read_only)?)
            }
            StoreSpec::Mysql(o) => Box::new(MysqlStore::connect(o)?),
            StoreSpec::Rest(o) => Box::new(RestStore::connect(o)?),
            StoreSpec::Cv(o) => Box::new(CvStore::new(o)?),
            StoreSpec::ReadOnly(inner) => return Ok(inner.open_wrapped(secrets)?.read_only(true)),
            StoreSpec::WithLogin(inner, login) => {
                return Ok(inner.open_wrapped(secrets)?.login(Some(login.clone())))
            }
        };
        Ok(Wrapped::new(backend, secrets.to_vec()))
    }

    /// Every secret this store is opened with (admin key, site key, database password):
    /// what [`Wrapped`] hides from its errors.
    fn secrets(&self) -> Vec<Zeroizing<String>> {
        let own = |s: &str| Zeroizing::new(s.to_string());
        match self {
            StoreSpec::Sqlite { .. } | StoreSpec::Cv(_) => Vec::new(),
            StoreSpec::Mysql(o) => o.password.iter().map(|p| own(p.expose())).collect(),
            StoreSpec::Rest(o) => std::iter::once(own(o.api_key.expose()))
                .chain(o.site_key.iter().map(|s| own(s.expose())))
                .collect(),
            StoreSpec::ReadOnly(inner) => inner.secrets(),
            StoreSpec::WithLogin(inner, login) => {
                let mut secrets = inner.secrets();
                secrets.extend(login.site_key.iter().map(|s| own(s.expose())));
                secrets
            }
        }
    }

    /// The same store, opened so that no write can reach it (SQLite opens read-only
    /// itself; every other store is wrapped).
    pub fn into_read_only(self) -> StoreSpec {
        match self {
            StoreSpec::Sqlite { path, .. } => StoreSpec::Sqlite {
                path,
                read_only: true,
            },
            spec @ StoreSpec::ReadOnly(_) => spec,
            spec => StoreSpec::ReadOnly(Box::new(spec)),
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
