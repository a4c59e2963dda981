//! `civikey config path | init | check`: where the config is, a commented one to start
//! from, and a check of every profile that says what is wrong.
//!
//! `init` writes a file whose comments list every field of the chosen kind (the list comes
//! from config.rs, so a new field cannot be forgotten here without a test failing). `check`
//! reads each profile's secrets exactly as a real run would (modes, lines, variables) but
//! opens no store unless `--connect` is given, and then read-only.

use std::path::Path;

use clap::{Subcommand, ValueEnum};

use crate::cli::{exit, out, plural, Failure};
use crate::config::{self, Config};
use crate::sanitize::SafeText;
use crate::store::Query;
use crate::store::StoreSpec;

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print where the config file is looked for (stdout) and whether it exists (stderr)
    Path,
    /// Write a commented config with one profile, mode 0600; to a config that exists, add the
    /// profile (never as the default)
    Init {
        /// The kind of store the profile opens
        #[arg(long, value_enum, default_value_t = InitKind::Sqlite)]
        kind: InitKind,
    },
    /// Load the config and check every profile and its secrets, without connecting
    Check {
        /// Also open each profile's store, read-only, and read one contact
        #[arg(long)]
        connect: bool,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitKind {
    /// A SQLite file on CiviCRM's schema (no server)
    Sqlite,
    /// The CiviCRM database on MySQL or MariaDB
    Mysql,
    /// The CiviCRM REST API v4 over HTTPS
    #[value(name = "civicrm-rest")]
    CivicrmRest,
    /// The `cv` command on the CiviCRM host
    Cv,
}

impl InitKind {
    /// As `kind = "..."` spells it.
    pub fn label(self) -> &'static str {
        match self {
            InitKind::Sqlite => "sqlite",
            InitKind::Mysql => "mysql",
            InitKind::CivicrmRest => "civicrm-rest",
            InitKind::Cv => "cv",
        }
    }

    fn profile_name(self) -> &'static str {
        match self {
            InitKind::Sqlite => "local",
            InitKind::Mysql => "crm-db",
            InitKind::CivicrmRest => "crm-api",
            InitKind::Cv => "crm-cv",
        }
    }
}

/// Every profile field: what it means, an example value, and whether the written config
/// sets it (required fields) or leaves it commented out (optional ones).
const FIELDS: &[(&str, &str, &str, bool)] = &[
    ("read_only", "optional; true refuses every write (default false)", "true", false),
    (
        "password_file",
        "the database password: a file, mode 0600, one line (or password_env, not both; neither: ~/.my.cnf [client])",
        "\"crm-db.password\"",
        false,
    ),
    (
        "password_env",
        "or the name of an environment variable holding the password",
        "\"CIVIKEY_DB_PASSWORD\"",
        false,
    ),
    (
        "table_prefix",
        "optional; the prefix CiviCRM's tables were installed with: letters, digits, _",
        "\"civi_\"",
        false,
    ),
    (
        "tls",
        "true: verified TLS; \"off\": clear text, warned on every run; not set (or false): only a database on this machine (loopback) is reached",
        "true",
        false,
    ),
    (
        "tls_ca_file",
        "optional; the CA certificate that signed the server's (PEM); implies tls",
        "\"/etc/ssl/certs/db-ca.pem\"",
        false,
    ),
    (
        "timeout_seconds",
        "optional; seconds one request may take, 1 to 3600 (default 10; cv 30)",
        "10",
        false,
    ),
    (
        "api_key_file",
        "required: the API key of a CiviCRM user with 'edit api keys' in a file, mode 0600, one line (or api_key_env, not both)",
        "\"crm-api.key\"",
        true,
    ),
    (
        "api_key_env",
        "or the name of an environment variable holding that key",
        "\"CIVIKEY_API_KEY\"",
        false,
    ),
    (
        "site_key_file",
        "optional; the site key (CIVICRM_SITE_KEY) in a file, mode 0600, if the site asks for it; for mysql and cv only with site_url (or site_key_env)",
        "\"crm-site.key\"",
        false,
    ),
    (
        "site_key_env",
        "or the name of an environment variable holding the site key",
        "\"CIVIKEY_SITE_KEY\"",
        false,
    ),
    (
        "site_url",
        "optional; the site's address: each new key is checked by logging in with it there",
        "\"https://crm.example.org\"",
        false,
    ),
    (
        "api_url",
        "optional; API v4 through a CMS query-string route, e.g. WordPress without clean URLs (Joomla: /administrator/ then index.php?option=com_civicrm&task=civicrm/ajax/api4/{entity}/{action})",
        "\"https://crm.example.org/wp-admin/admin.php?page=CiviCRM&q=civicrm/ajax/api4/{entity}/{action}\"",
        false,
    ),
    (
        "cv_binary",
        "optional; the cv program: a name looked up in PATH, or a path (default cv)",
        "\"/usr/local/bin/cv\"",
        false,
    ),
    (
        "cv_user",
        "optional; the CMS user cv acts as, with CiviCRM's permission checks on: it needs 'edit api keys' (or 'administer CiviCRM') to read keys, 'edit all contacts' to change them, 'view all contacts' and 'access deleted contacts' to see every contact. Not set: no login and no permission checks (whoever may run cv may change every key)",
        "\"civikey-admin\"",
        false,
    ),
];

/// The commented config `civikey config init --kind KIND` writes; `data_dir` gives the
/// SQLite profile its address (the default store). Only the SQLite profile, which works as
/// written, becomes the default; another kind's profile has fields to fill in first, so
/// its `default_profile` line is left commented out (until then civikey opens the default
/// store).
pub fn template(kind: InitKind, config_path: &Path, data_dir: &Path) -> String {
    let name = kind.profile_name();
    let default = if kind == InitKind::Sqlite {
        format!("default_profile = \"{name}\"\n")
    } else {
        format!(
            "# Uncomment once the profile below is filled in and `civikey config check` says ok\n\
             # (until then civikey opens the sample store in its data folder):\n\
             # default_profile = \"{name}\"\n"
        )
    };
    format!(
        "# civikey configuration, written by `civikey config init --kind {kind}`.\n\
         #\n\
         # This file: {path} ($CIVIKEY_CONFIG names another).\n\
         # It must stay readable by you alone (mode 0600): civikey refuses it otherwise.\n\
         # `civikey config check` checks it (add --connect to also open the stores);\n\
         # `civikey profiles` lists the profiles; `man civikey` tells more.\n\
         #\n\
         # Secrets (passwords, API keys, site keys) never go in this file or on the command\n\
         # line: name a file holding the secret (mode 0600, one line) or an environment\n\
         # variable. They are read only when the profile is used.\n\
         # Paths: ~/ is your home folder; a relative path is relative to this file's folder\n\
         # (so \"crm-api.key\" is a file beside this one).\n\
         \n\
         # The profile used when neither --store nor --profile is given.\n\
         {default}\
         \n\
         # Every journal record to the system log too (/dev/log, or syslog_socket = \"PATH\"),\n\
         # never a key; off unless set.\n\
         # syslog = true\n\
         \n\
         # Add more profiles as [profiles.NAME] tables (names: letters, digits, - and _),\n\
         # or with `civikey config init --kind KIND` again.\n\
         {profile}",
        kind = kind.label(),
        path = config_path.display(),
        profile = profile_block(kind, name, data_dir),
    )
}

/// One commented `[profiles.NAME]` table of `kind`: every field of the kind, the required
/// ones set to an example, the optional ones commented out.
fn profile_block(kind: InitKind, name: &str, data_dir: &Path) -> String {
    let (fields, form) = config::kind_fields(kind.label()).unwrap_or((&[], "sqlite:PATH"));
    let address = match kind {
        InitKind::Sqlite => format!("sqlite:{}", config::default_store_path(data_dir).display()),
        InitKind::Mysql => "mysql://civikey@localhost:3306/civicrm".to_string(),
        InitKind::CivicrmRest => "https://crm.example.org".to_string(),
        InitKind::Cv => "cv:/var/www/civicrm".to_string(),
    };
    let mut text = format!(
        "[profiles.{name}]\n\
         # The kind of store: {kinds}.\n\
         kind = \"{kind}\"\n\
         # Where it is: {form}.\n\
         address = \"{address}\"\n",
        kind = kind.label(),
        kinds = config::kind_names().join(" | "),
    );
    for field in fields {
        let Some((_, what, example, set)) = FIELDS.iter().find(|(name, ..)| name == field) else {
            continue;
        };
        text.push_str(&comment(&format!("{field}: {what}.")));
        let comment_out = if *set { "" } else { "# " };
        text.push_str(&format!("{comment_out}{field} = {example}\n"));
    }
    text
}

/// `# ` lines of at most 88 characters.
fn comment(text: &str) -> String {
    let mut lines = String::new();
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > 88 && line.len() > 1 {
            lines.push_str(&line);
            lines.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    lines.push_str(&line);
    lines.push('\n');
    lines
}

pub fn run(command: &ConfigCommand) -> Result<(), Failure> {
    let location =
        config::config_path_and_origin().map_err(|e| Failure::new(exit::ERROR, e.to_string()))?;
    match command {
        ConfigCommand::Path => path(&location.0, location.1),
        ConfigCommand::Init { kind } => init(&location.0, *kind),
        ConfigCommand::Check { connect } => check(*connect),
    }
}

fn path(path: &Path, named: bool) -> Result<(), Failure> {
    out::line(path.display())?;
    let origin = if named {
        format!(" (named by ${})", config::CONFIG_ENV)
    } else {
        String::new()
    };
    match path.symlink_metadata() {
        Ok(_) => out::note(format_args!("civikey: the config file exists{origin}")),
        Err(_) => out::note(format_args!(
            "civikey: there is no config file there yet{origin}; `civikey config init` writes one"
        )),
    }
    Ok(())
}

fn init(path: &Path, kind: InitKind) -> Result<(), Failure> {
    let data_dir = config::data_dir().map_err(|e| Failure::new(exit::ERROR, e.to_string()))?;
    if path.symlink_metadata().is_ok() {
        return add_profile(path, kind, &data_dir);
    }
    let text = template(kind, path, &data_dir);
    crate::fsperm::write_new_private_file(path, text.as_bytes())
        .map_err(|e| Failure::new(exit::REFUSED, e))?;
    out::note(format_args!(
        "civikey: wrote {} (mode 0600) with a {} profile \"{}\"; edit it, then run `civikey config check`",
        path.display(),
        kind.label(),
        kind.profile_name()
    ));
    Ok(())
}

/// `config init` on a config that exists: the kind's profile appended under a name not
/// taken yet, never the default, the rest of the file as it was. Refused (nothing written)
/// when the file does not load as it is, or would not load with the profile added.
fn add_profile(path: &Path, kind: InitKind, data_dir: &Path) -> Result<(), Failure> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let refused = |why: String| Failure::new(exit::REFUSED, why);
    let existing = Config::load(path).map_err(|e| {
        refused(format!(
            "{e}; civikey adds a profile only to a config that loads"
        ))
    })?;
    let taken: Vec<&str> = existing.profile_names().collect();
    let base = kind.profile_name();
    let name = std::iter::once(base.to_string())
        .chain((2..).map(|n| format!("{base}-{n}")))
        .find(|candidate| !taken.contains(&candidate.as_str()))
        .unwrap_or_else(|| base.to_string());
    let text = std::fs::read_to_string(path)
        .map_err(|e| refused(format!("cannot read {}: {e}", path.display())))?;
    let separator = if text.is_empty() || text.ends_with('\n') {
        "\n"
    } else {
        "\n\n"
    };
    let block = format!(
        "{separator}# Added by `civikey config init --kind {kind}`; not the default profile: fill\n\
         # it in, check it with `civikey config check`, then use it with --profile {name}.\n\
         {profile}",
        kind = kind.label(),
        profile = profile_block(kind, &name, data_dir),
    );
    Config::parse(&format!("{text}{block}"), path).map_err(|e| {
        refused(format!(
            "{} would not load with a {} profile added ({e}); nothing was written",
            path.display(),
            kind.label()
        ))
    })?;
    // The file Config::load checked (regular, private): appended to, never followed.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            refused(format!(
                "cannot open {} to add a profile: {e}",
                path.display()
            ))
        })?;
    let meta = file
        .metadata()
        .map_err(|e| refused(format!("cannot read {}: {e}", path.display())))?;
    crate::fsperm::refuse_if_exposed(path, &meta).map_err(refused)?;
    file.write_all(block.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| refused(format!("cannot write {}: {e}", path.display())))?;
    out::note(format_args!(
        "civikey: added a {} profile \"{name}\" to {} (the default profile is unchanged); fill it in, \
         then run `civikey config check`",
        kind.label(),
        path.display()
    ));
    Ok(())
}

/// What is wrong with one profile, found without connecting: missing files and folders
/// that opening would stumble on.
fn local_problem(spec: &StoreSpec) -> Option<String> {
    match spec {
        StoreSpec::Sqlite { path, .. } if !path.is_file() => Some(format!(
            "the store file {} does not exist (civikey seed --sample --store sqlite:{} makes one)",
            path.display(),
            path.display()
        )),
        StoreSpec::Mysql(o) => o
            .tls_ca_file
            .as_ref()
            .filter(|ca| !ca.is_file())
            .map(|ca| format!("tls_ca_file {} does not exist", ca.display())),
        StoreSpec::Cv(o) if !o.site_path.is_dir() => Some(format!(
            "the site folder {} does not exist",
            o.site_path.display()
        )),
        StoreSpec::ReadOnly(inner) => local_problem(inner),
        _ => None,
    }
}

/// Opens the store read-only and reads one contact.
fn connect_problem(spec: StoreSpec) -> Option<String> {
    let spec = match spec {
        spec @ StoreSpec::Sqlite { .. } => spec,
        spec => StoreSpec::ReadOnly(Box::new(spec)),
    };
    let mut store = match spec.open() {
        Ok(store) => store,
        Err(e) => return Some(format!("cannot open the store: {e}")),
    };
    store
        .search(&Query::new("", 1))
        .err()
        .map(|e| format!("opened, but cannot read contacts: {e}"))
}

/// One profile as a real run would resolve it (secrets read, modes checked, the
/// store's own checks before anything is sent): where it is and what a run would warn
/// about, or what is wrong.
fn check_profile(
    config: &Config,
    name: &str,
    data_dir: &Path,
    connect: bool,
) -> Result<(String, Vec<String>), String> {
    let resolved = config
        .resolve(None, Some(name), data_dir, true)
        .map_err(|e| e.to_string())?;
    let location = SafeText::new(&resolved.spec.location()).to_string();
    if resolved.is_default_store {
        if let StoreSpec::Sqlite { path, .. } = &resolved.spec {
            if !path.exists() {
                return Ok((
                    format!("{location} (not made yet: the first run makes it from the sample contacts)"),
                    Vec::new(),
                ));
            }
        }
    }
    if let Some(problem) = local_problem(&resolved.spec) {
        return Err(format!("{location}: {problem}"));
    }
    let warnings = resolved
        .spec
        .preflight()
        .map_err(|e| format!("{location}: {}", SafeText::new(&e.to_string())))?;
    if !connect {
        return Ok((location, warnings));
    }
    match connect_problem(resolved.spec) {
        Some(problem) => Err(format!("{location}: {problem}")),
        None => Ok((format!("{location} (opened read-only)"), warnings)),
    }
}

fn check(connect: bool) -> Result<(), Failure> {
    let data_dir = config::data_dir().map_err(|e| Failure::new(exit::ERROR, e.to_string()))?;
    let config = match Config::load_default() {
        Ok(Some(config)) => config,
        Ok(None) => {
            return Err(Failure::new(
                exit::ERROR,
                format!(
                    "there is no config file at {}; `civikey config init` writes one",
                    config::config_path()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                ),
            ))
        }
        Err(e) => return Err(Failure::new(exit::ERROR, e.to_string())),
    };
    let names: Vec<String> = config.profile_names().map(str::to_string).collect();
    let (mut bad, mut warned) = (0, 0);
    for name in &names {
        match check_profile(&config, name, &data_dir, connect) {
            Ok((what, warnings)) => {
                out::line(format_args!("ok    {name:<16} {what}"))?;
                warned += usize::from(!warnings.is_empty());
                for warning in warnings {
                    out::line(format_args!("warn  {name:<16} {warning}"))?;
                }
            }
            Err(problem) => {
                bad += 1;
                out::line(format_args!("FAIL  {name:<16} {problem}"))?;
            }
        }
    }
    let checked = plural(names.len(), "profile", "profiles");
    if bad > 0 {
        return Err(Failure::new(
            exit::ERROR,
            format!("{checked} checked, {bad} with a problem (see above)"),
        ));
    }
    let how = if connect {
        "opened read-only"
    } else {
        "not connected; add --connect to open the stores"
    };
    let verdict = if warned > 0 {
        format!("no problem, {warned} with a warning (see above)")
    } else {
        "all fine".to_string()
    };
    out::note(format_args!(
        "civikey: {checked} checked, {verdict} ({how})"
    ));
    Ok(())
}

/// Profile names for shell completion of `--profile`: read from the config at each Tab;
/// nothing when there is no config or it does not load.
pub fn profile_candidates() -> Vec<clap_complete::CompletionCandidate> {
    let Ok(Some(config)) = Config::load_default() else {
        return Vec::new();
    };
    let default = config.default_profile().map(str::to_string);
    config
        .profile_names()
        .map(|name| {
            let candidate = clap_complete::CompletionCandidate::new(name);
            if default.as_deref() == Some(name) {
                candidate.help(Some("the default profile".into()))
            } else {
                candidate
            }
        })
        .collect()
}
