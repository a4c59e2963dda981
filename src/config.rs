//! The config file (TOML profiles), civikey's folders, and turning `--store` / `--profile`
//! into a [`StoreSpec`].
//!
//! Loading checks everything that can be checked without secrets (types, fields per kind,
//! addresses), so `civikey profiles` works on a machine that lacks the key files. Secrets
//! are read only by [`Config::resolve`], from files (0600 or stricter) or named environment
//! variables, never from the config file itself or argv. Every piece of file text that can
//! end up in an error passes [`SafeText`]: a hostile config cannot put escapes on the
//! operator's terminal. No error ever holds a secret or a MySQL address (it may hold one).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::fs::OpenOptions;
use std::io::Read;
use std::ops::Range;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use zeroize::Zeroizing;

use crate::fsperm;
use crate::key::ApiKey;
use crate::sanitize::SafeText;
use crate::secret::Secret;
use crate::store::address::host_and_port;
use crate::store::cv::CvOptions;
use crate::store::mysql::{MysqlAddress, MysqlOptions, MysqlTls};
use crate::store::rest::RestOptions;
use crate::store::SiteLogin;
use crate::store::StoreSpec;

/// Environment variable naming the config file.
pub const CONFIG_ENV: &str = "CIVIKEY_CONFIG";
/// Environment variable naming the data folder (the default store lives there).
pub const DATA_DIR_ENV: &str = "CIVIKEY_DATA_DIR";
/// File name of the default store inside the data folder.
pub const DEFAULT_STORE_FILE: &str = "contacts.sqlite";

const DEFAULT_REST_TIMEOUT: u64 = 10;
const DEFAULT_MYSQL_TIMEOUT: u64 = 10;
/// `cv` boots CiviCRM (PHP, the CMS) on every call, which takes seconds on a busy host.
const DEFAULT_CV_TIMEOUT: u64 = 30;
const MAX_TIMEOUT: i64 = 3600;
/// A config is a few hundred bytes; the cap keeps a mistaken path (a log, a device) cheap.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// Secrets are short; the cap also lets the buffer be allocated once, so no reallocation
/// leaves an unzeroized copy of a secret behind.
const MAX_SECRET_BYTES: usize = 64 * 1024;
const KINDS: &str = "sqlite, mysql, civicrm-rest, cv";

/// Something wrong with the config, a path, an address or a secret. The message is safe to
/// print (file text passed SafeText) and never holds a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    file: Option<SafeText>,
    /// 1-based line and column in `file`.
    position: Option<(usize, usize)>,
    message: String,
    /// The command line asked for something that cannot be (a bad `--store` address, an
    /// unknown `--profile`): exit code 2, not a broken config.
    usage: bool,
}

impl ConfigError {
    fn new(message: impl Into<String>) -> Self {
        ConfigError {
            file: None,
            position: None,
            message: message.into(),
            usage: false,
        }
    }

    fn usage(message: impl Into<String>) -> Self {
        ConfigError {
            usage: true,
            ..ConfigError::new(message)
        }
    }

    /// Whether the command line, not a file, is at fault (exit code 2).
    pub fn is_usage(&self) -> bool {
        self.usage
    }

    fn in_file(file: &Path, message: impl Into<String>) -> Self {
        ConfigError {
            file: Some(safe_path(file)),
            position: None,
            message: message.into(),
            usage: false,
        }
    }

    fn at(src: &Source<'_>, span: &Range<usize>, message: impl Into<String>) -> Self {
        ConfigError {
            file: Some(safe_path(src.path)),
            position: Some(line_column(src.text, span.start)),
            message: message.into(),
            usage: false,
        }
    }

    /// 1-based line in the config file, when the error has a place there.
    pub fn line(&self) -> Option<usize> {
        self.position.map(|(line, _)| line)
    }

    /// 1-based column (in characters) in the config file.
    pub fn column(&self) -> Option<usize> {
        self.position.map(|(_, column)| column)
    }

    /// What is wrong, without the file and position.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.position) {
            (Some(file), Some((line, column))) => {
                write!(f, "{file}, line {line}, column {column}: {}", self.message)
            }
            (Some(file), None) => write!(f, "{file}: {}", self.message),
            (None, _) => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

fn safe_path(path: &Path) -> SafeText {
    SafeText::new(&path.to_string_lossy())
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

// ---------------------------------------------------------------------------------------
// Folders

/// The data folder: `$CIVIKEY_DATA_DIR` if set and not empty, else the platform's data
/// folder for civikey (`~/.local/share/civikey` on Linux).
pub fn data_dir() -> Result<PathBuf, ConfigError> {
    if let Some(dir) = non_empty_env(DATA_DIR_ENV) {
        return Ok(PathBuf::from(dir));
    }
    project_dirs().map(|dirs| dirs.data_dir().to_path_buf())
}

/// The config file: `$CIVIKEY_CONFIG` if set and not empty, else `config.toml` in the
/// platform's config folder for civikey (`~/.config/civikey` on Linux).
pub fn config_path() -> Result<PathBuf, ConfigError> {
    config_location().map(|(path, _)| path)
}

/// Where the config is looked for, and whether `$CIVIKEY_CONFIG` named it.
pub fn config_path_and_origin() -> Result<(PathBuf, bool), ConfigError> {
    config_location()
}

/// The profile kinds, as `kind = "..."` spells them.
pub fn kind_names() -> [&'static str; 4] {
    Kind::ALL.map(Kind::label)
}

/// The fields a profile of `kind` takes besides `kind` and `address`, and the form of its
/// address; None for an unknown kind.
pub fn kind_fields(kind: &str) -> Option<(&'static [&'static str], &'static str)> {
    Kind::parse(kind).map(|kind| (kind.fields(), kind.address_form()))
}

/// The store used when nothing else is named.
pub fn default_store_path(data_dir: &Path) -> PathBuf {
    data_dir.join(DEFAULT_STORE_FILE)
}

/// The config path and whether the operator named it (so its absence is an error).
fn config_location() -> Result<(PathBuf, bool), ConfigError> {
    if let Some(path) = non_empty_env(CONFIG_ENV) {
        return Ok((PathBuf::from(path), true));
    }
    project_dirs().map(|dirs| (dirs.config_dir().join("config.toml"), false))
}

fn project_dirs() -> Result<directories::ProjectDirs, ConfigError> {
    directories::ProjectDirs::from("org", "civikey", "civikey").ok_or_else(|| {
        ConfigError::new(format!(
            "cannot find your home folder (is HOME set?); set {DATA_DIR_ENV} and {CONFIG_ENV} instead"
        ))
    })
}

fn non_empty_env(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|value| !value.is_empty())
}

// ---------------------------------------------------------------------------------------
// The file as written: every field optional and spanned, so each check can point at a line.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    default_profile: Option<Spanned<String>>,
    /// Every journal record to the system log too.
    syslog: Option<bool>,
    /// The syslog socket (default /dev/log).
    syslog_socket: Option<Spanned<String>>,
    #[serde(default)]
    profiles: BTreeMap<Spanned<String>, RawProfile>,
}

/// All fields of all kinds; [`Kind::fields`] says which belong to which kind.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    kind: Option<Spanned<String>>,
    address: Option<Spanned<String>>,
    read_only: Option<Spanned<bool>>,
    password_file: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    table_prefix: Option<Spanned<String>>,
    tls: Option<Spanned<RawTls>>,
    tls_ca_file: Option<Spanned<String>>,
    timeout_seconds: Option<Spanned<i64>>,
    api_key_file: Option<Spanned<String>>,
    api_key_env: Option<Spanned<String>>,
    site_key_file: Option<Spanned<String>>,
    site_key_env: Option<Spanned<String>>,
    cv_binary: Option<Spanned<String>>,
    cv_user: Option<Spanned<String>>,
    api_url: Option<Spanned<String>>,
    site_url: Option<Spanned<String>>,
}

/// A MySQL profile's `tls` as written: `true`, `false` or `"off"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RawTls {
    Bool(bool),
    Off,
}

impl<'de> Deserialize<'de> for RawTls {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawTls;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false or \"off\"")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<RawTls, E> {
                Ok(RawTls::Bool(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawTls, E> {
                if v == "off" {
                    Ok(RawTls::Off)
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Str(v), &self))
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl RawProfile {
    /// The fields that are set, with where their values are.
    fn set_fields(&self) -> Vec<(&'static str, Range<usize>)> {
        fn span<T>(field: &Option<Spanned<T>>) -> Option<Range<usize>> {
            field.as_ref().map(Spanned::span)
        }
        [
            ("read_only", span(&self.read_only)),
            ("password_file", span(&self.password_file)),
            ("password_env", span(&self.password_env)),
            ("table_prefix", span(&self.table_prefix)),
            ("tls", span(&self.tls)),
            ("tls_ca_file", span(&self.tls_ca_file)),
            ("timeout_seconds", span(&self.timeout_seconds)),
            ("api_key_file", span(&self.api_key_file)),
            ("api_key_env", span(&self.api_key_env)),
            ("site_key_file", span(&self.site_key_file)),
            ("site_key_env", span(&self.site_key_env)),
            ("cv_binary", span(&self.cv_binary)),
            ("cv_user", span(&self.cv_user)),
            ("api_url", span(&self.api_url)),
            ("site_url", span(&self.site_url)),
        ]
        .into_iter()
        .filter_map(|(name, span)| span.map(|span| (name, span)))
        .collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sqlite,
    Mysql,
    Rest,
    Cv,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Sqlite, Kind::Mysql, Kind::Rest, Kind::Cv];

    fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.label() == text)
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Sqlite => "sqlite",
            Kind::Mysql => "mysql",
            Kind::Rest => "civicrm-rest",
            Kind::Cv => "cv",
        }
    }

    /// The fields a profile of this kind takes besides `kind` and `address`.
    fn fields(self) -> &'static [&'static str] {
        match self {
            Kind::Sqlite => &["read_only"],
            Kind::Mysql => &[
                "password_file",
                "password_env",
                "table_prefix",
                "tls",
                "tls_ca_file",
                "timeout_seconds",
                "site_url",
                "site_key_file",
                "site_key_env",
            ],
            Kind::Rest => &[
                "api_key_file",
                "api_key_env",
                "site_key_file",
                "site_key_env",
                "timeout_seconds",
                "api_url",
            ],
            Kind::Cv => &[
                "cv_binary",
                "cv_user",
                "timeout_seconds",
                "site_url",
                "site_key_file",
                "site_key_env",
            ],
        }
    }

    fn address_form(self) -> &'static str {
        match self {
            Kind::Sqlite => "sqlite:PATH",
            Kind::Mysql => "mysql://USER@HOST[:PORT]/DB",
            Kind::Rest => "https://SITE",
            Kind::Cv => "cv:PATH",
        }
    }
}

/// The config text and where it came from, for error positions.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

// ---------------------------------------------------------------------------------------
// The checked config

/// Where a secret is read from when a profile is resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
enum SecretSource {
    /// `at`: line and column of the field's value, for errors found when reading it.
    File {
        path: PathBuf,
        at: (usize, usize),
    },
    Env {
        name: String,
        at: (usize, usize),
    },
}

impl SecretSource {
    fn describe(&self) -> SafeText {
        match self {
            SecretSource::File { path, .. } => SafeText::new(&format!("file {}", path.display())),
            SecretSource::Env { name, .. } => SafeText::new(&format!("env {name}")),
        }
    }
}

/// The site a MySQL or cv profile names (`site_url`), to check new keys by logging in.
#[derive(Clone, Debug)]
struct LoginTarget {
    address: String,
    site_key: Option<SecretSource>,
}

#[derive(Clone, Debug)]
enum Target {
    Sqlite {
        path: PathBuf,
        read_only: bool,
    },
    Mysql {
        address: String,
        password: Option<SecretSource>,
        table_prefix: String,
        tls: MysqlTls,
        tls_ca_file: Option<PathBuf>,
        timeout: Duration,
        login: Option<LoginTarget>,
    },
    Rest {
        base_url: String,
        /// The API v4 address template, when the CMS routes it through a query string.
        api_url: Option<String>,
        api_key: SecretSource,
        site_key: Option<SecretSource>,
        timeout: Duration,
    },
    Cv {
        site_path: PathBuf,
        cv_binary: PathBuf,
        /// The CMS user cv acts as (`cv_user`), permission checks on; None: no login.
        cv_user: Option<String>,
        timeout: Duration,
        login: Option<LoginTarget>,
    },
}

impl Target {
    fn kind(&self) -> Kind {
        match self {
            Target::Sqlite { .. } => Kind::Sqlite,
            Target::Mysql { .. } => Kind::Mysql,
            Target::Rest { .. } => Kind::Rest,
            Target::Cv { .. } => Kind::Cv,
        }
    }
}

/// A loaded, checked config file. Holds where secrets are, never the secrets.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// The file it came from; None for the empty config used when there is no file.
    path: Option<PathBuf>,
    default_profile: Option<String>,
    profiles: BTreeMap<String, Target>,
    /// `syslog = true`: the socket the journal's records go to.
    syslog: Option<PathBuf>,
}

/// What `--store` / `--profile` / the config resolved to.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub spec: StoreSpec,
    /// The profile used, if any.
    pub profile: Option<String>,
    /// True for the default store (data_dir/contacts.sqlite), reached without `--store` or
    /// `--profile`, or through a profile naming that file (as `civikey config init` writes
    /// one): main may create it from the sample contacts. Any other file, and an address
    /// given with `--store`, is never created.
    pub is_default_store: bool,
}

/// One line of `civikey profiles`: never a secret value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileSummary {
    pub name: SafeText,
    /// sqlite | mysql | civicrm-rest | cv
    pub kind: &'static str,
    pub address: SafeText,
    /// Where each secret comes from, e.g. ("api key", "file /etc/civikey/crm.key").
    pub secrets: Vec<(&'static str, SafeText)>,
    pub is_default: bool,
}

impl Config {
    /// Reads and checks the config at `path`. Refuses a file that group or others may read
    /// or write (it names where the secrets are and which stores to trust).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = read_config_text(path)?;
        Config::parse(&text, path)
    }

    /// Loads the config at `$CIVIKEY_CONFIG` or the default place. `None` when the default
    /// file does not exist; a file named by `$CIVIKEY_CONFIG` must exist.
    pub fn load_default() -> Result<Option<Config>, ConfigError> {
        let (path, explicit) = config_location()?;
        // Only "not there" means no config: a file we may not read (or a dangling link) is
        // an error the operator should see, not a silent fall-back to the default store.
        let absent =
            matches!(path.symlink_metadata(), Err(e) if e.kind() == std::io::ErrorKind::NotFound);
        if !explicit && absent {
            return Ok(None);
        }
        Config::load(&path).map(Some)
    }

    /// Checks config text; `path` is where it came from (errors name it, and relative paths
    /// in it are relative to its folder).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let src = Source { path, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| toml_error(&src, e))?;
        let mut profiles = BTreeMap::new();
        for (name, raw_profile) in raw.profiles {
            let span = name.span();
            let name = name.into_inner();
            check_profile_name(&src, &name, &span)?;
            let target = check_profile(&src, &name, &span, raw_profile)?;
            profiles.insert(name, target);
        }
        let default_profile = match raw.default_profile {
            None => None,
            Some(name) => {
                if !profiles.contains_key(name.get_ref()) {
                    return Err(ConfigError::at(
                        &src,
                        &name.span(),
                        format!(
                            "default_profile = \"{}\" names no profile; {}",
                            SafeText::new(name.get_ref()),
                            known_profiles(profiles.keys())
                        ),
                    ));
                }
                Some(name.into_inner())
            }
        };
        let base = path.parent().unwrap_or(Path::new(""));
        let socket = match &raw.syslog_socket {
            None => PathBuf::from(crate::syslog::DEFAULT_SOCKET),
            Some(value) => config_path_value(value.get_ref(), base).map_err(|problem| {
                ConfigError::at(&src, &value.span(), format!("syslog_socket: {problem}"))
            })?,
        };
        Ok(Config {
            path: Some(path.to_path_buf()),
            default_profile,
            profiles,
            syslog: raw.syslog.unwrap_or(false).then_some(socket),
        })
    }

    /// The profile names, in order.
    pub fn profile_names(&self) -> impl Iterator<Item = &str> {
        self.profiles.keys().map(String::as_str)
    }

    /// With `syslog = true`: the socket every journal record is sent to as well.
    pub fn syslog_socket(&self) -> Option<&Path> {
        self.syslog.as_deref()
    }

    /// The profile used when neither `--store` nor `--profile` is given.
    pub fn default_profile(&self) -> Option<&str> {
        self.default_profile.as_deref()
    }

    /// The profiles, by name, for `civikey profiles`.
    pub fn summaries(&self) -> Vec<ProfileSummary> {
        self.profiles
            .iter()
            .map(|(name, target)| {
                let (address, secrets) = match target {
                    Target::Sqlite { path, .. } => (
                        SafeText::new(&format!("sqlite:{}", path.display())),
                        Vec::new(),
                    ),
                    Target::Mysql {
                        address, password, ..
                    } => {
                        let from = password.as_ref().map_or_else(
                            || SafeText::new("~/.my.cnf [client], if any"),
                            SecretSource::describe,
                        );
                        (SafeText::new(address), vec![("password", from)])
                    }
                    Target::Rest {
                        base_url,
                        api_key,
                        site_key,
                        ..
                    } => {
                        let mut secrets = vec![("api key", api_key.describe())];
                        if let Some(site_key) = site_key {
                            secrets.push(("site key", site_key.describe()));
                        }
                        (SafeText::new(base_url), secrets)
                    }
                    Target::Cv { site_path, .. } => (
                        SafeText::new(&format!("cv:{}", site_path.display())),
                        Vec::new(),
                    ),
                };
                ProfileSummary {
                    name: SafeText::new(name),
                    kind: target.kind().label(),
                    address,
                    secrets,
                    is_default: self.default_profile.as_deref() == Some(name.as_str()),
                }
            })
            .collect()
    }

    /// Picks the store: `--store ADDR` wins, then `--profile NAME`, then `default_profile`,
    /// then the default SQLite store in `data_dir`. Reads the chosen profile's secrets.
    /// `read_only` (the `--read-only` flag) is carried into SQLite specs; other kinds have
    /// no read-only switch in their spec, so the caller enforces it for them.
    pub fn resolve(
        &self,
        store: Option<&str>,
        profile: Option<&str>,
        data_dir: &Path,
        read_only: bool,
    ) -> Result<Resolved, ConfigError> {
        if let (Some(_), Some(name)) = (store, profile) {
            // Each names a store: taking one silently could act on the wrong one. (The
            // address is not repeated: a mistyped mysql:// one may hold a password.)
            return Err(ConfigError::usage(format!(
                "--profile {} and --store both name a store; give one of them",
                SafeText::new(name)
            )));
        }
        if let Some(address) = store {
            return Ok(Resolved {
                spec: bare_store(address, read_only)?,
                profile: None,
                is_default_store: false,
            });
        }
        let name = match profile.or(self.default_profile.as_deref()) {
            Some(name) => name,
            None => {
                return Ok(Resolved {
                    spec: StoreSpec::Sqlite {
                        path: default_store_path(data_dir),
                        read_only,
                    },
                    profile: None,
                    is_default_store: true,
                })
            }
        };
        let Some(target) = self.profiles.get(name) else {
            let place = match &self.path {
                Some(path) => format!("in {}", safe_path(path)),
                None => match config_path() {
                    Ok(path) => format!(
                        "(there is no config file; civikey looked for {})",
                        safe_path(&path)
                    ),
                    Err(_) => "(there is no config file)".to_string(),
                },
            };
            return Err(ConfigError::usage(format!(
                "no profile named \"{}\" {place}; {}",
                SafeText::new(name),
                known_profiles(self.profiles.keys())
            )));
        };
        let is_default_store =
            matches!(target, Target::Sqlite { path, .. } if *path == default_store_path(data_dir));
        Ok(Resolved {
            spec: self.spec_for(name, target, read_only)?,
            profile: Some(name.to_string()),
            is_default_store,
        })
    }

    fn spec_for(
        &self,
        name: &str,
        target: &Target,
        read_only: bool,
    ) -> Result<StoreSpec, ConfigError> {
        Ok(match target {
            Target::Sqlite {
                path,
                read_only: profile_read_only,
            } => StoreSpec::Sqlite {
                path: path.clone(),
                read_only: read_only || *profile_read_only,
            },
            Target::Mysql {
                address,
                password,
                table_prefix,
                tls,
                tls_ca_file,
                timeout,
                login,
            } => self.with_login(
                name,
                login,
                *timeout,
                StoreSpec::Mysql(MysqlOptions {
                    address: address.clone(),
                    password: match password {
                        Some(source) => {
                            Some(Secret(self.read_secret(name, "password", source, false)?))
                        }
                        None => None,
                    },
                    table_prefix: table_prefix.clone(),
                    tls: *tls,
                    tls_ca_file: tls_ca_file.clone(),
                    timeout: *timeout,
                }),
            )?,
            Target::Rest {
                base_url,
                api_url,
                api_key,
                site_key,
                timeout,
            } => StoreSpec::Rest(RestOptions {
                base_url: api_url.clone().unwrap_or_else(|| base_url.clone()),
                api_key: ApiKey::from_store(
                    self.read_secret(name, "API key", api_key, true)?
                        .to_string(),
                ),
                site_key: match site_key {
                    Some(source) => Some(Secret(self.read_secret(name, "site key", source, true)?)),
                    None => None,
                },
                timeout: *timeout,
            }),
            Target::Cv {
                site_path,
                cv_binary,
                cv_user,
                timeout,
                login,
            } => self.with_login(
                name,
                login,
                *timeout,
                StoreSpec::Cv(CvOptions {
                    site_path: site_path.clone(),
                    cv_binary: cv_binary.clone(),
                    cv_user: cv_user.clone(),
                    timeout: *timeout,
                }),
            )?,
        })
    }

    /// `spec`, with the site its new keys are checked on when the profile names one.
    fn with_login(
        &self,
        name: &str,
        login: &Option<LoginTarget>,
        timeout: Duration,
        spec: StoreSpec,
    ) -> Result<StoreSpec, ConfigError> {
        let Some(login) = login else {
            return Ok(spec);
        };
        let site_key = match &login.site_key {
            Some(source) => Some(Secret(self.read_secret(name, "site key", source, true)?)),
            None => None,
        };
        Ok(StoreSpec::WithLogin(
            Box::new(spec),
            SiteLogin {
                api_address: login.address.clone(),
                site_key,
                timeout,
            },
        ))
    }

    /// Reads one secret. Errors say which profile, which secret and where it should come
    /// from, never what it holds. `header` secrets go into HTTP headers: no whitespace.
    fn read_secret(
        &self,
        profile: &str,
        what: &str,
        source: &SecretSource,
        header: bool,
    ) -> Result<Zeroizing<String>, ConfigError> {
        let (at, result) = match source {
            SecretSource::File { path, at } => (*at, read_secret_file(path)),
            SecretSource::Env { name, at } => (*at, read_secret_env(name)),
        };
        let fail = |problem: String| {
            let message = format!("profiles.{}: the {what}: {problem}", SafeText::new(profile));
            match &self.path {
                Some(path) => ConfigError {
                    file: Some(safe_path(path)),
                    position: Some(at),
                    message,
                    usage: false,
                },
                None => ConfigError::new(message),
            }
        };
        let value = result.map_err(&fail)?;
        if value.is_empty() {
            return Err(fail(format!("{} is empty", source.describe())));
        }
        if value.chars().any(char::is_control) {
            return Err(fail(format!(
                "{} holds control characters or more than one line",
                source.describe()
            )));
        }
        if header && value.chars().any(char::is_whitespace) {
            return Err(fail(format!("{} holds spaces", source.describe())));
        }
        Ok(value)
    }
}

/// For when there is no config file: `--store`, or the default store; `--profile` fails.
pub fn resolve_without_config(
    store: Option<&str>,
    profile: Option<&str>,
    data_dir: &Path,
    read_only: bool,
) -> Result<Resolved, ConfigError> {
    Config::default().resolve(store, profile, data_dir, read_only)
}

fn known_profiles<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<String> = names.map(|n| SafeText::new(n).to_string()).collect();
    if names.is_empty() {
        "no profiles are defined".to_string()
    } else {
        format!("the profiles are: {}", names.join(", "))
    }
}

fn read_config_text(path: &Path) -> Result<String, ConfigError> {
    let file = open_regular(path).map_err(|e| ConfigError::in_file(path, e))?;
    let meta = file
        .metadata()
        .map_err(|e| ConfigError::in_file(path, format!("cannot read it: {e}")))?;
    fsperm::refuse_if_exposed(path, &meta)
        .map_err(|e| ConfigError::new(SafeText::new(&e).to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ConfigError::in_file(path, format!("cannot read it: {e}")))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ConfigError::in_file(
            path,
            "is larger than 1 MiB; is this really the config file?",
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let (line, column) = line_column(
            &String::from_utf8_lossy(e.as_bytes()),
            e.utf8_error().valid_up_to(),
        );
        ConfigError {
            file: Some(safe_path(path)),
            position: Some((line, column)),
            message: "the file is not valid UTF-8 text".to_string(),
            usage: false,
        }
    })
}

/// Opens a regular file for reading. O_NONBLOCK so that a FIFO named by mistake (or by an
/// attacker) cannot hang civikey at open; it has no effect on reading a regular file.
fn open_regular(path: &Path) -> Result<std::fs::File, String> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "does not exist".to_string(),
            _ => format!("cannot open it: {e}"),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_file() {
        return Err("is not a regular file".to_string());
    }
    Ok(file)
}

fn read_secret_file(path: &Path) -> Result<Zeroizing<String>, String> {
    let shown = safe_path(path);
    let file = open_regular(path).map_err(|e| format!("file {shown} {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read file {shown}: {e}"))?;
    fsperm::refuse_if_exposed(path, &meta).map_err(|e| SafeText::new(&e).to_string())?;
    let mut bytes = Zeroizing::new(Vec::with_capacity(MAX_SECRET_BYTES + 1));
    file.take(MAX_SECRET_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read file {shown}: {e}"))?;
    if bytes.len() > MAX_SECRET_BYTES {
        return Err(format!(
            "file {shown} is larger than 64 KiB; is this really the secret?"
        ));
    }
    let text =
        std::str::from_utf8(&bytes).map_err(|_| format!("file {shown} is not UTF-8 text"))?;
    Ok(Zeroizing::new(
        text.trim_end_matches(['\n', '\r']).to_string(),
    ))
}

fn read_secret_env(name: &str) -> Result<Zeroizing<String>, String> {
    match std::env::var_os(name) {
        None => Err(format!("environment variable {name} is not set")),
        Some(value) => value
            .into_string()
            .map(Zeroizing::new)
            .map_err(|_| format!("environment variable {name} is not UTF-8 text")),
    }
}

// ---------------------------------------------------------------------------------------
// Checks

fn toml_error(src: &Source<'_>, mut error: toml::de::Error) -> ConfigError {
    // serde speaks of Rust types; an operator knows TOML's words.
    let message = SafeText::new(error.message().trim_end())
        .to_string()
        .replace("expected i64", "expected a whole number")
        .replace("expected a map", "expected a table");
    // Without the input, toml's Display is the message plus "in `key.path`": the field name,
    // which toml does not expose otherwise.
    error.set_input(None);
    let shown = error.to_string();
    let field = shown
        .lines()
        .filter_map(|line| {
            line.strip_prefix("in `")
                .and_then(|rest| rest.strip_suffix('`'))
        })
        .next_back()
        .map(|field| format!("{}: ", SafeText::new(field)));
    let message = format!("{}{message}", field.unwrap_or_default());
    match error.span() {
        Some(span) => ConfigError::at(src, &span, message),
        None => ConfigError::in_file(src.path, message),
    }
}

/// Profile names are printed in lists and typed after `--profile`: keep them plain.
fn check_profile_name(
    src: &Source<'_>,
    name: &str,
    span: &Range<usize>,
) -> Result<(), ConfigError> {
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if name.is_empty() || name.len() > 64 || !name.chars().all(plain) {
        return Err(ConfigError::at(
            src,
            span,
            format!(
                "profile name \"{}\": expected 1 to 64 letters, digits, '-' or '_'",
                SafeText::new(name)
            ),
        ));
    }
    Ok(())
}

fn check_profile(
    src: &Source<'_>,
    name: &str,
    name_span: &Range<usize>,
    raw: RawProfile,
) -> Result<Target, ConfigError> {
    let here = format!("profiles.{name}");
    let Some(kind_field) = &raw.kind else {
        return Err(ConfigError::at(
            src,
            name_span,
            format!("{here}: kind is missing; expected kind = one of {KINDS}"),
        ));
    };
    let Some(kind) = Kind::parse(kind_field.get_ref()) else {
        return Err(ConfigError::at(
            src,
            &kind_field.span(),
            format!(
                "{here}.kind: unknown kind \"{}\"; expected one of {KINDS}",
                SafeText::new(kind_field.get_ref())
            ),
        ));
    };
    for (field, span) in raw.set_fields() {
        if !kind.fields().contains(&field) {
            let owners: Vec<&str> = Kind::ALL
                .into_iter()
                .filter(|k| k.fields().contains(&field))
                .map(Kind::label)
                .collect();
            return Err(ConfigError::at(
                src,
                &span,
                format!(
                    "{here}.{field}: this field does not belong to a profile of kind {} (it is for {}); a {} profile takes kind, address, {}",
                    kind.label(),
                    owners.join(", "),
                    kind.label(),
                    kind.fields().join(", ")
                ),
            ));
        }
    }
    let Some(address) = &raw.address else {
        return Err(ConfigError::at(
            src,
            name_span,
            format!(
                "{here}: address is missing; expected address = \"{}\"",
                kind.address_form()
            ),
        ));
    };
    let at_address = |problem: String| {
        ConfigError::at(src, &address.span(), format!("{here}.address: {problem}"))
    };
    let base = src.path.parent().unwrap_or(Path::new(""));
    let path_field = |field: &str, value: &Spanned<String>| -> Result<PathBuf, ConfigError> {
        config_path_value(value.get_ref(), base).map_err(|problem| {
            ConfigError::at(src, &value.span(), format!("{here}.{field}: {problem}"))
        })
    };
    let timeout = |default: u64| -> Result<Duration, ConfigError> {
        match &raw.timeout_seconds {
            None => Ok(Duration::from_secs(default)),
            Some(t) if (1..=MAX_TIMEOUT).contains(t.get_ref()) => {
                Ok(Duration::from_secs(t.get_ref().unsigned_abs()))
            }
            Some(t) => Err(ConfigError::at(
                src,
                &t.span(),
                format!(
                    "{here}.timeout_seconds: {} is out of range; expected 1 to {MAX_TIMEOUT}",
                    t.get_ref()
                ),
            )),
        }
    };
    let secret = |file_field: (&str, &Option<Spanned<String>>),
                  env_field: (&str, &Option<Spanned<String>>)|
     -> Result<Option<SecretSource>, ConfigError> {
        match (file_field.1, env_field.1) {
            (Some(_), Some(env)) => Err(ConfigError::at(
                src,
                &env.span(),
                format!(
                    "{here}.{}: {} is set too; expected one of them, not both",
                    env_field.0, file_field.0
                ),
            )),
            (Some(file), None) => Ok(Some(SecretSource::File {
                path: path_field(file_field.0, file)?,
                at: line_column(src.text, file.span().start),
            })),
            (None, Some(env)) => {
                check_env_name(env.get_ref()).map_err(|problem| {
                    ConfigError::at(
                        src,
                        &env.span(),
                        format!("{here}.{}: {problem}", env_field.0),
                    )
                })?;
                Ok(Some(SecretSource::Env {
                    name: env.get_ref().clone(),
                    at: line_column(src.text, env.span().start),
                }))
            }
            (None, None) => Ok(None),
        }
    };

    // An API address (api_url, site_url): the REST store's own rules, at the field's line.
    let api_address = |field: &str, value: &Spanned<String>| -> Result<String, ConfigError> {
        crate::store::rest::check_api_address(value.get_ref())
            .map(|(_, template, _)| template)
            .map_err(|e| ConfigError::at(src, &value.span(), format!("{here}.{field}: {e}")))
    };
    let login = || -> Result<Option<LoginTarget>, ConfigError> {
        let site_key = secret(
            ("site_key_file", &raw.site_key_file),
            ("site_key_env", &raw.site_key_env),
        )?;
        match (&raw.site_url, site_key) {
            (Some(url), site_key) => Ok(Some(LoginTarget {
                address: api_address("site_url", url)?,
                site_key,
            })),
            (None, Some(_)) => Err(ConfigError::at(
                src,
                name_span,
                format!("{here}: a site key is set but no site_url; expected site_url = \"https://SITE\" (where new keys are checked by logging in)"),
            )),
            (None, None) => Ok(None),
        }
    };

    let parsed = parse_address(address.get_ref(), base).map_err(at_address)?;
    if parsed.kind() != kind {
        return Err(at_address(format!(
            "a {} profile needs an address of the form {}",
            kind.label(),
            kind.address_form()
        )));
    }
    Ok(match parsed {
        Address::Sqlite(path) => Target::Sqlite {
            path,
            read_only: raw.read_only.as_ref().is_some_and(|r| *r.get_ref()),
        },
        Address::Mysql(address) => {
            let table_prefix = match &raw.table_prefix {
                None => String::new(),
                Some(prefix) => {
                    let p = prefix.get_ref();
                    // It goes into SQL table names: only what an identifier may hold unquoted.
                    if p.len() > 32 || !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                        return Err(ConfigError::at(
                            src,
                            &prefix.span(),
                            format!(
                                "{here}.table_prefix: expected up to 32 letters, digits or '_'"
                            ),
                        ));
                    }
                    p.clone()
                }
            };
            let tls_ca_file = match &raw.tls_ca_file {
                Some(ca) => Some(path_field("tls_ca_file", ca)?),
                None => None,
            };
            let tls = match (raw.tls.as_ref().map(|t| (*t.get_ref(), t.span())), &tls_ca_file) {
                (Some((RawTls::Bool(false) | RawTls::Off, span)), Some(_)) => {
                    return Err(ConfigError::at(
                        src,
                        &span,
                        format!("{here}.tls: TLS is off but tls_ca_file is set; expected tls = true or no tls_ca_file"),
                    ))
                }
                (Some((RawTls::Bool(true), _)), _) => MysqlTls::Required,
                (Some((RawTls::Off, _)), _) => MysqlTls::Off,
                // `false` is the same as leaving it out: no TLS to this machine, any other
                // host refused until the profile says true or "off".
                (Some((RawTls::Bool(false), _)), None) => MysqlTls::Auto,
                // A CA file only makes sense with TLS: asking for one asks for TLS.
                (None, Some(_)) => MysqlTls::Required,
                (None, None) => MysqlTls::Auto,
            };
            Target::Mysql {
                address,
                password: secret(
                    ("password_file", &raw.password_file),
                    ("password_env", &raw.password_env),
                )?,
                table_prefix,
                tls,
                tls_ca_file,
                timeout: timeout(DEFAULT_MYSQL_TIMEOUT)?,
                login: login()?,
            }
        }
        Address::Rest(base_url) => {
            let api_key = secret(("api_key_file", &raw.api_key_file), ("api_key_env", &raw.api_key_env))?
                .ok_or_else(|| {
                    ConfigError::at(
                        src,
                        name_span,
                        format!("{here}: a civicrm-rest profile needs the admin's API key: expected api_key_file or api_key_env"),
                    )
                })?;
            let api_url = match &raw.api_url {
                Some(url) => Some(api_address("api_url", url)?),
                None => None,
            };
            Target::Rest {
                base_url,
                api_url,
                api_key,
                site_key: secret(
                    ("site_key_file", &raw.site_key_file),
                    ("site_key_env", &raw.site_key_env),
                )?,
                timeout: timeout(DEFAULT_REST_TIMEOUT)?,
            }
        }
        Address::Cv(site_path) => {
            let cv_binary = match &raw.cv_binary {
                None => PathBuf::from("cv"),
                // A bare name is looked up in PATH; anything with a slash is a path.
                Some(bin) if !bin.get_ref().contains('/') && !bin.get_ref().starts_with('~') => {
                    if bin.get_ref().is_empty() || bin.get_ref().chars().any(char::is_control) {
                        return Err(ConfigError::at(
                            src,
                            &bin.span(),
                            format!("{here}.cv_binary: expected a program name or a path"),
                        ));
                    }
                    PathBuf::from(bin.get_ref())
                }
                Some(bin) => path_field("cv_binary", bin)?,
            };
            let cv_user = match &raw.cv_user {
                None => None,
                Some(user) => Some(
                    check_cv_user(user.get_ref())
                        .map_err(|problem| {
                            ConfigError::at(src, &user.span(), format!("{here}.cv_user: {problem}"))
                        })?
                        .to_string(),
                ),
            };
            Target::Cv {
                site_path,
                cv_binary,
                cv_user,
                timeout: timeout(DEFAULT_CV_TIMEOUT)?,
                login: login()?,
            }
        }
    })
}

/// The longest `cv_user` taken: CMS user names are far shorter (WordPress and Drupal
/// allow 60 characters); this only bounds a mistake.
const MAX_CV_USER_CHARS: usize = 255;

/// A `cv_user` as cv takes it (`--user=NAME`, `login {"user": NAME}`): any text a CMS user
/// name may be, but not empty, not absurdly long, and without control characters (a
/// user name holds none, and they would garble every message that names it).
fn check_cv_user(name: &str) -> Result<&str, String> {
    if name.is_empty() {
        return Err(
            "is empty; name the CMS user cv acts as, or leave cv_user out (cv then runs without permission checks)"
                .to_string(),
        );
    }
    let chars = name.chars().count();
    if chars > MAX_CV_USER_CHARS {
        return Err(format!(
            "is {chars} characters long; expected a CMS user name of at most {MAX_CV_USER_CHARS}"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(format!(
            "\"{}\" holds control characters; expected a CMS user name",
            SafeText::new(name)
        ));
    }
    Ok(name)
}

fn check_env_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(format!(
            "\"{}\" is not an environment variable name; expected letters, digits and '_'",
            SafeText::new(name)
        ))
    }
}

/// A path from the config: `~` means $HOME, a relative path is relative to the config's folder.
fn config_path_value(text: &str, base: &Path) -> Result<PathBuf, String> {
    let path = expand_home(text)?;
    Ok(if path.is_relative() {
        base.join(path)
    } else {
        path
    })
}

/// `~` or `~/...` at the start becomes $HOME. `~user` is not supported: said so, not guessed.
fn expand_home(text: &str) -> Result<PathBuf, String> {
    if text.is_empty() {
        return Err("expected a path, found an empty string".to_string());
    }
    if text.chars().any(char::is_control) {
        return Err("the path holds control characters".to_string());
    }
    let rest = match text.strip_prefix('~') {
        None => return Ok(PathBuf::from(text)),
        Some(rest) => rest,
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return Err(format!(
            "\"{}\": only ~ and ~/ are expanded (to $HOME); write the full path",
            SafeText::new(text)
        ));
    }
    let home =
        non_empty_env("HOME").ok_or_else(|| "~ cannot be expanded: HOME is not set".to_string())?;
    let mut path = PathBuf::from(home);
    if let Some(rest) = rest.strip_prefix('/').filter(|r| !r.is_empty()) {
        path.push(rest);
    }
    Ok(path)
}

/// A `--store` address with no profile behind it.
fn bare_store(address: &str, read_only: bool) -> Result<StoreSpec, ConfigError> {
    let fail = |problem: String| ConfigError::usage(format!("--store: {problem}"));
    // Relative paths on the command line are relative to where the operator is.
    match parse_address(address, Path::new("")).map_err(fail)? {
        Address::Sqlite(path) => Ok(StoreSpec::Sqlite { path, read_only }),
        Address::Mysql(address) => Ok(StoreSpec::Mysql(MysqlOptions {
            address,
            // The MySQL store falls back to ~/.my.cnf [client] when there is no password.
            password: None,
            table_prefix: String::new(),
            // Loopback only: another host needs a profile that says tls = true or "off".
            tls: MysqlTls::Auto,
            tls_ca_file: None,
            timeout: Duration::from_secs(DEFAULT_MYSQL_TIMEOUT),
        })),
        Address::Rest(_) => Err(fail(format!(
            "a CiviCRM REST store needs a profile for its key files (never on the command line): add a [profiles.NAME] with kind = \"civicrm-rest\", address, api_key_file to the config ({}) and use --profile NAME",
            config_path().map_or_else(|_| "config.toml".to_string(), |p| safe_path(&p).to_string())
        ))),
        Address::Cv(site_path) => Ok(StoreSpec::Cv(CvOptions {
            site_path,
            cv_binary: PathBuf::from("cv"),
            // A user to act as needs a profile; a bare address keeps cv's own trust.
            cv_user: None,
            timeout: Duration::from_secs(DEFAULT_CV_TIMEOUT),
        })),
    }
}

/// What an address names, before any profile options.
enum Address {
    Sqlite(PathBuf),
    Mysql(String),
    Rest(String),
    Cv(PathBuf),
}

impl Address {
    fn kind(&self) -> Kind {
        match self {
            Address::Sqlite(_) => Kind::Sqlite,
            Address::Mysql(_) => Kind::Mysql,
            Address::Rest(_) => Kind::Rest,
            Address::Cv(_) => Kind::Cv,
        }
    }
}

/// Parses and checks an address; relative paths are relative to `base`. Errors never
/// repeat a MySQL address (it may hold a password).
fn parse_address(address: &str, base: &Path) -> Result<Address, String> {
    if let Some(path) = address.strip_prefix("sqlite:") {
        return config_path_value(path, base).map(Address::Sqlite);
    }
    if let Some(path) = address.strip_prefix("cv:") {
        return config_path_value(path, base).map(Address::Cv);
    }
    if address.starts_with("mysql://") {
        MysqlAddress::parse(address)?;
        return Ok(Address::Mysql(address.to_string()));
    }
    // The scheme is case-insensitive; the stored URL gets it in lower case so the REST
    // store can rely on the exact prefix.
    let url = ["https", "http"].into_iter().find_map(|scheme| {
        let (head, rest) = address.split_once("://")?;
        head.eq_ignore_ascii_case(scheme).then_some((scheme, rest))
    });
    if let Some((scheme, rest)) = url {
        let host = check_site(rest)?;
        if scheme == "http" && !crate::store::address::is_loopback(&host) {
            return Err(format!(
                "plain http:// is only allowed to this machine (127.0.0.1, ::1, localhost); {} would carry the admin's API key unencrypted: expected https://",
                SafeText::new(&host)
            ));
        }
        return Ok(Address::Rest(format!(
            "{scheme}://{}",
            rest.trim_end_matches('/')
        )));
    }
    Err(format!(
        "\"{}\" is not a store address; expected sqlite:PATH, mysql://USER@HOST[:PORT]/DB, https://SITE or cv:PATH",
        SafeText::new(address)
    ))
}

/// Checks `SITE[/PATH]` of an http(s) address and returns its host.
fn check_site(rest: &str) -> Result<String, String> {
    let form = "expected https://SITE";
    if rest.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "the address holds spaces or control characters; {form}"
        ));
    }
    if rest.contains(['?', '#']) {
        return Err(format!(
            "the address holds a query or fragment ('?' or '#'); {form}"
        ));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(
            "the address holds credentials ('@'); put the API key in api_key_file".to_string(),
        );
    }
    let (host, _) = host_and_port(authority).map_err(|problem| format!("{problem}; {form}"))?;
    if host.is_empty() {
        return Err(format!("no site name; {form}"));
    }
    Ok(host.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_from_byte_offsets() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(
            line_column(text, 9),
            (2, 3),
            "columns count characters, not bytes"
        );
        assert_eq!(line_column(text, 999), (3, 1));
    }

    #[test]
    fn addresses_are_checked_by_kind() {
        let base = Path::new("/etc/civikey");
        assert!(
            matches!(parse_address("sqlite:x.sqlite", base), Ok(Address::Sqlite(path)) if path == Path::new("/etc/civikey/x.sqlite"))
        );
        assert!(matches!(
            parse_address("cv:/var/www/crm", base),
            Ok(Address::Cv(_))
        ));
        for ok in [
            "mysql://civi@db/civicrm",
            "mysql://civi@db.example.org:3306/civicrm",
            "mysql://civi@[::1]:3306/civicrm",
            "https://crm.example.org",
            "https://crm.example.org:8443/sub/",
            "http://127.0.0.2:8080",
            "http://[::1]",
            "http://LOCALHOST/",
        ] {
            assert!(parse_address(ok, base).is_ok(), "{ok}");
        }
        for (bad, fragment) in [
            ("mysql://civi:hunter2@db/civicrm", "password_file"),
            ("mysql://db/civicrm", "no user"),
            ("mysql://civi@db", "no database"),
            ("mysql://civi@db:99999/c", "port"),
            ("http://crm.example.org", "https://"),
            ("http://127.0.0.1.evil.org", "https://"),
            ("https://user:pw@crm.example.org", "credentials"),
            ("https://crm.example.org/?q=1", "query"),
            ("postgres://x", "not a store address"),
            ("sqlite:", "empty"),
            ("sqlite:~bob/x", "only ~"),
        ] {
            let err = parse_address(bad, base)
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(err.contains(fragment), "{bad}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn site_addresses_are_normalised() {
        let base = Path::new("/");
        assert!(
            matches!(parse_address("HTTPS://crm.example.org/", base), Ok(Address::Rest(url)) if url == "https://crm.example.org")
        );
        assert!(
            matches!(parse_address("Http://localhost:8080/civi/", base), Ok(Address::Rest(url)) if url == "http://localhost:8080/civi")
        );
    }

    #[test]
    fn env_names_are_plain() {
        assert!(check_env_name("CIVI_KEY_1").is_ok());
        assert!(check_env_name("_X").is_ok());
        for bad in ["", "1X", "A-B", "A B", "A=B"] {
            assert!(check_env_name(bad).is_err(), "{bad}");
        }
    }
}
