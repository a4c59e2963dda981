//! Config loading, profile resolution, secrets and paths; `civikey config path|init|check`.

mod binary;

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use civikey::config::{self, Config, ConfigError, Resolved};
use civikey::store::StoreSpec;

/// Serialises the tests that read or set environment variables (HOME, CIVIKEY_*, XDG_*,
/// secret variables): the process environment is shared by all test threads.
static ENV: Mutex<()> = Mutex::new(());

fn env_lock() -> MutexGuard<'static, ()> {
    ENV.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sets (or removes) environment variables for the life of the guard, then restores them.
struct EnvVars(Vec<(&'static str, Option<OsString>)>);

impl EnvVars {
    fn set(vars: &[(&'static str, Option<&str>)]) -> Self {
        let saved = vars
            .iter()
            .map(|(name, _)| (*name, std::env::var_os(name)))
            .collect();
        for (name, value) in vars {
            match value {
                Some(value) => std::env::set_var(name, value),
                None => std::env::remove_var(name),
            }
        }
        EnvVars(saved)
    }
}

impl Drop for EnvVars {
    fn drop(&mut self) {
        for (name, value) in &self.0 {
            match value {
                Some(value) => std::env::set_var(name, value),
                None => std::env::remove_var(name),
            }
        }
    }
}

fn write_file(path: &Path, contents: &str, mode: u32) {
    fs::write(path, contents).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Git does not keep 0600, so fixtures are copied to a private file before loading.
fn load_private_copy(fixture: &Path, dir: &Path) -> Result<Config, ConfigError> {
    let copy = dir.join(fixture.file_name().unwrap());
    write_file(&copy, &fs::read_to_string(fixture).unwrap(), 0o600);
    Config::load(&copy)
}

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/configs")
        .join(kind);
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn load_str(dir: &Path, text: &str) -> Result<Config, ConfigError> {
    let path = dir.join("config.toml");
    write_file(&path, text, 0o600);
    Config::load(&path)
}

fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

#[test]
fn valid_configs_load() {
    let _env = env_lock(); // some use `~`, which reads HOME
    let dir = tempfile::tempdir().unwrap();
    let files = fixtures("valid");
    assert!(files.len() >= 5, "{files:?}");
    for file in &files {
        let config = load_private_copy(file, dir.path())
            .unwrap_or_else(|e| panic!("{} should load: {e}", file.display()));
        for summary in config.summaries() {
            assert!(!summary.name.is_empty());
        }
    }
}

#[test]
fn invalid_configs_fail_with_their_message_and_line() {
    let _env = env_lock();
    let dir = tempfile::tempdir().unwrap();
    let files = fixtures("invalid");
    assert!(files.len() >= 10, "{files:?}");
    for file in &files {
        let text = fs::read_to_string(file).unwrap();
        // First line: `# expect: line N: fragment`
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: line "))
            .unwrap_or_else(|| {
                panic!(
                    "{} lacks its `# expect: line N: fragment` first line",
                    file.display()
                )
            });
        let (line, fragment) = expect.split_once(": ").unwrap();
        let line: usize = line.parse().unwrap();
        let err = load_private_copy(file, dir.path())
            .err()
            .unwrap_or_else(|| panic!("{} should fail to load", file.display()));
        let shown = err.to_string();
        assert_eq!(err.line(), Some(line), "{}: {shown}", file.display());
        assert!(
            shown.contains(fragment.trim()),
            "{}: expected {fragment:?} in {shown:?}",
            file.display()
        );
        let column = err.column().unwrap();
        assert!(
            shown.contains(&format!("line {line}, column {column}: ")),
            "{shown}"
        );
        assert!(shown.ends_with(err.message()), "{shown}");
        assert!(
            shown.contains(file.file_name().unwrap().to_str().unwrap()),
            "names the file: {shown}"
        );
        assert!(
            !has_control(&shown),
            "{}: control characters in {shown:?}",
            file.display()
        );
    }
}

#[test]
fn the_example_config_loads_and_shows_all_four_kinds() {
    let _env = env_lock();
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/config.example.toml");
    let config = load_private_copy(&example, dir.path()).unwrap();
    let mut kinds: Vec<&str> = config.summaries().iter().map(|s| s.kind).collect();
    kinds.sort();
    assert_eq!(kinds, ["civicrm-rest", "cv", "mysql", "sqlite"]);
    assert_eq!(config.default_profile(), Some("local"));
}

#[test]
fn a_config_open_to_others_is_refused_with_the_chmod_that_fixes_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    for mode in [0o644, 0o640, 0o606, 0o620] {
        write_file(&path, "", mode);
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(
            err.contains(&format!("chmod 600 {}", civikey::fsperm::quoted(&path))),
            "{err}"
        );
        assert!(err.contains(&format!("{mode:04o}")), "{err}");
    }
    write_file(&path, "", 0o400);
    assert!(Config::load(&path).is_ok());
}

#[test]
fn a_missing_or_odd_config_file_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let err = Config::load(&missing).unwrap_err().to_string();
    assert!(
        err.contains("nope.toml") && err.contains("does not exist"),
        "{err}"
    );
    let err = Config::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("not a regular file"), "{err}");
    let binary = dir.path().join("binary.toml");
    fs::write(&binary, b"a = 1\n\xff\xfe").unwrap();
    fs::set_permissions(&binary, fs::Permissions::from_mode(0o600)).unwrap();
    let err = Config::load(&binary).unwrap_err();
    assert_eq!(err.line(), Some(2));
    assert!(err.to_string().contains("not valid UTF-8"), "{err}");
}

#[test]
fn a_fifo_as_config_or_secret_does_not_hang() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: c_path is a valid NUL-terminated string.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let err = Config::load(&fifo).unwrap_err().to_string();
    assert!(err.contains("not a regular file"), "{err}");
    let config = load_str(
        dir.path(),
        "[profiles.db]\nkind = \"mysql\"\naddress = \"mysql://u@h/d\"\npassword_file = \"fifo\"\n",
    )
    .unwrap();
    let err = config
        .resolve(None, Some("db"), dir.path(), false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a regular file"), "{err}");
}

/// A profile file and the secret files it names, in a private temp folder.
fn rest_fixture(key_mode: u32, key: &str) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    write_file(&dir.path().join("admin.key"), key, key_mode);
    write_file(&dir.path().join("site.key"), "SiteKey123\n", 0o600);
    let config = load_str(
        dir.path(),
        r#"
[profiles.api]
kind = "civicrm-rest"
address = "https://crm.example.org/"
api_key_file = "admin.key"
site_key_file = "site.key"
"#,
    )
    .unwrap();
    (dir, config)
}

#[test]
fn rest_secrets_are_read_from_files_relative_to_the_config() {
    let (dir, config) = rest_fixture(0o600, "AdminKeyAdminKey1234\n");
    let resolved = config
        .resolve(None, Some("api"), dir.path(), false)
        .unwrap();
    assert_eq!(resolved.profile.as_deref(), Some("api"));
    assert!(!resolved.is_default_store);
    let StoreSpec::Rest(options) = resolved.spec else {
        panic!("not a REST spec")
    };
    assert_eq!(options.base_url, "https://crm.example.org");
    assert_eq!(
        options.api_key.expose(),
        "AdminKeyAdminKey1234",
        "trailing newline trimmed"
    );
    assert_eq!(options.site_key.unwrap().expose(), "SiteKey123");
    assert_eq!(options.timeout, std::time::Duration::from_secs(10));
}

#[test]
fn a_secret_file_open_to_others_is_refused_with_chmod() {
    for mode in [0o644, 0o640, 0o660] {
        let (dir, config) = rest_fixture(mode, "AdminKeyAdminKey1234");
        let err = config
            .resolve(None, Some("api"), dir.path(), false)
            .unwrap_err();
        let shown = err.to_string();
        let key_path = dir.path().join("admin.key");
        assert!(
            shown.contains(&format!("chmod 600 {}", civikey::fsperm::quoted(&key_path))),
            "{shown}"
        );
        assert!(shown.contains("profiles.api: the API key"), "{shown}");
        assert_eq!(
            (err.line(), err.column()),
            (Some(5), Some(16)),
            "points at api_key_file's value: {shown}"
        );
    }
}

#[test]
fn empty_or_multi_line_or_missing_secret_files_are_refused() {
    for (content, fragment) in [
        ("", "is empty"),
        ("\n", "is empty"),
        ("AdminKey\nSecondLine", "more than one line"),
        ("Admin Key With Spaces", "holds spaces"),
    ] {
        let (dir, config) = rest_fixture(0o600, content);
        let err = config
            .resolve(None, Some("api"), dir.path(), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains(fragment), "{content:?}: {err}");
        assert!(
            !err.contains("AdminKey") && !err.contains("SecondLine"),
            "{err}"
        );
    }
    let (dir, config) = rest_fixture(0o600, "x");
    fs::remove_file(dir.path().join("admin.key")).unwrap();
    let err = config
        .resolve(None, Some("api"), dir.path(), false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("admin.key does not exist"), "{err}");
}

#[test]
fn env_secrets_must_be_set_and_not_empty() {
    let _env = env_lock();
    let dir = tempfile::tempdir().unwrap();
    let config = load_str(
        dir.path(),
        r#"
[profiles.db]
kind = "mysql"
address = "mysql://civikey@db.example.org/civicrm"
password_env = "CIVIKEY_TEST_DB_PASSWORD"
"#,
    )
    .unwrap();
    let _vars = EnvVars::set(&[("CIVIKEY_TEST_DB_PASSWORD", None)]);
    let err = config
        .resolve(None, Some("db"), dir.path(), false)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("environment variable CIVIKEY_TEST_DB_PASSWORD is not set"),
        "{err}"
    );
    assert_eq!(err.line(), Some(5));

    let _vars = EnvVars::set(&[("CIVIKEY_TEST_DB_PASSWORD", Some(""))]);
    let err = config
        .resolve(None, Some("db"), dir.path(), false)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("env CIVIKEY_TEST_DB_PASSWORD is empty"),
        "{err}"
    );

    let _vars = EnvVars::set(&[("CIVIKEY_TEST_DB_PASSWORD", Some("pa ss\tword"))]);
    let resolved = config.resolve(None, Some("db"), dir.path(), false);
    assert!(resolved.is_err(), "a tab is a control character");
    let _vars = EnvVars::set(&[("CIVIKEY_TEST_DB_PASSWORD", Some("pa ss word"))]);
    let StoreSpec::Mysql(options) = config
        .resolve(None, Some("db"), dir.path(), false)
        .unwrap()
        .spec
    else {
        panic!("not a MySQL spec")
    };
    assert_eq!(
        options.password.unwrap().expose(),
        "pa ss word",
        "passwords may hold spaces"
    );
}

#[test]
fn secrets_never_appear_in_errors_summaries_or_debug() {
    let _env = env_lock();
    let dir = tempfile::tempdir().unwrap();
    let key = "TopSecretAdminKey0123456789abcd";
    let password = "TopSecretDbPassword";
    let site = "TopSecretSiteKey";
    write_file(&dir.path().join("admin.key"), key, 0o600);
    write_file(&dir.path().join("db.password"), password, 0o600);
    let _vars = EnvVars::set(&[("CIVIKEY_TEST_SITE_KEY", Some(site))]);
    let config = load_str(
        dir.path(),
        r#"
default_profile = "api"
[profiles.api]
kind = "civicrm-rest"
address = "https://crm.example.org"
api_key_file = "admin.key"
site_key_env = "CIVIKEY_TEST_SITE_KEY"

[profiles.db]
kind = "mysql"
address = "mysql://civikey@db/civicrm"
password_file = "db.password"
"#,
    )
    .unwrap();
    let mut shown = format!("{config:?} {:?}", config.summaries());
    for profile in ["api", "db"] {
        let resolved = config
            .resolve(None, Some(profile), dir.path(), false)
            .unwrap();
        shown.push_str(&format!("{resolved:?} {resolved:#?} {:?}", resolved.spec));
    }
    // Now make every secret bad in a way that errors, and collect those errors too.
    write_file(
        &dir.path().join("admin.key"),
        &format!("{key}\n{key}"),
        0o600,
    );
    write_file(&dir.path().join("db.password"), password, 0o644);
    for profile in ["api", "db"] {
        let err = config
            .resolve(None, Some(profile), dir.path(), false)
            .unwrap_err();
        shown.push_str(&format!("{err} {err:?}"));
    }
    let err = config
        .resolve(
            Some("mysql://civikey:TopSecretDbPassword@db/civicrm"),
            None,
            dir.path(),
            false,
        )
        .unwrap_err();
    assert!(err.to_string().contains("password_file"), "{err}");
    shown.push_str(&format!("{err} {err:?}"));
    for secret in [key, password, site, "TopSecret"] {
        assert!(!shown.contains(secret), "{secret} leaked into: {shown}");
    }
    assert!(shown.contains("redacted"), "{shown}");
}

#[test]
fn a_password_in_a_mysql_address_is_refused_without_repeating_it() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_str(
        dir.path(),
        "[profiles.db]\nkind = \"mysql\"\naddress = \"mysql://civikey:hunter2@db/civicrm\"\n",
    )
    .unwrap_err();
    let shown = err.to_string();
    assert!(shown.contains("put it in password_file"), "{shown}");
    assert!(
        !shown.contains("hunter2") && !format!("{err:?}").contains("hunter2"),
        "{shown}"
    );
    assert_eq!(err.line(), Some(3));
}

#[test]
fn resolution_order_store_or_profile_then_default_profile_then_default_store() {
    let _env = env_lock();
    let dir = tempfile::tempdir().unwrap();
    let config = load_str(
        dir.path(),
        r#"
default_profile = "archive"

[profiles.archive]
kind = "sqlite"
address = "sqlite:/srv/archive.sqlite"
read_only = true

[profiles.site]
kind = "cv"
address = "cv:/var/www/crm"
cv_binary = "~/bin/cv"
timeout_seconds = 45
"#,
    )
    .unwrap();
    let data = dir.path().join("data");

    // Both name a store: a usage error naming both, never one taken silently.
    let Err(err) = config.resolve(Some("sqlite:/tmp/other.sqlite"), Some("site"), &data, false)
    else {
        panic!("--store with --profile was taken");
    };
    assert!(err.is_usage());
    assert!(
        err.to_string()
            .contains("--profile site and --store both name a store"),
        "{err}"
    );
    let r = config
        .resolve(Some("sqlite:/tmp/other.sqlite"), None, &data, false)
        .unwrap();
    assert!(
        matches!(&r.spec, StoreSpec::Sqlite { path, read_only: false } if path == Path::new("/tmp/other.sqlite"))
    );
    assert_eq!(
        (r.profile, r.is_default_store),
        (None, false),
        "--store wins over the default profile"
    );

    let r = config.resolve(None, Some("site"), &data, false).unwrap();
    let StoreSpec::Cv(cv) = &r.spec else {
        panic!("{:?}", r.spec)
    };
    assert_eq!(cv.site_path, Path::new("/var/www/crm"));
    let home = std::env::var_os("HOME").unwrap();
    assert_eq!(cv.cv_binary, Path::new(&home).join("bin/cv"), "~ is HOME");
    assert_eq!(cv.timeout.as_secs(), 45);
    assert_eq!(cv.cv_user, None, "no cv_user: no login, cv's own trust");
    assert_eq!(r.profile.as_deref(), Some("site"));

    let r = config.resolve(None, None, &data, false).unwrap();
    assert!(
        matches!(&r.spec, StoreSpec::Sqlite { path, read_only: true } if path == Path::new("/srv/archive.sqlite"))
    );
    assert_eq!(
        (r.profile.as_deref(), r.is_default_store),
        (Some("archive"), false)
    );

    let empty = load_str(dir.path(), "").unwrap();
    let r = empty.resolve(None, None, &data, true).unwrap();
    assert!(
        matches!(&r.spec, StoreSpec::Sqlite { path, read_only: true } if *path == data.join("contacts.sqlite"))
    );
    assert_eq!((r.profile, r.is_default_store), (None, true));
    assert_eq!(
        config::default_store_path(&data),
        data.join("contacts.sqlite")
    );
}

/// `cv_user` reaches the cv store as written (spaces and all); a bare `cv:` address has
/// none; any other kind refuses it, naming the kind it is for.
#[test]
fn cv_user_is_taken_for_cv_profiles_only() {
    let dir = tempfile::tempdir().unwrap();
    let config = load_str(
        dir.path(),
        "[profiles.site]\nkind = \"cv\"\naddress = \"cv:/var/www/crm\"\ncv_user = \"Jo Admin-ü\"\n",
    )
    .unwrap();
    let r = config
        .resolve(None, Some("site"), dir.path(), false)
        .unwrap();
    let StoreSpec::Cv(cv) = &r.spec else {
        panic!("{:?}", r.spec)
    };
    assert_eq!(cv.cv_user.as_deref(), Some("Jo Admin-ü"));
    let StoreSpec::Cv(bare) =
        config::resolve_without_config(Some("cv:/var/www/crm"), None, dir.path(), false)
            .unwrap()
            .spec
    else {
        panic!("not cv")
    };
    assert_eq!(bare.cv_user, None);

    let longest = "u".repeat(255);
    let config = load_str(
        dir.path(),
        &format!("[profiles.site]\nkind = \"cv\"\naddress = \"cv:/x\"\ncv_user = \"{longest}\"\n"),
    )
    .unwrap();
    let r = config
        .resolve(None, Some("site"), dir.path(), false)
        .unwrap();
    assert!(
        matches!(&r.spec, StoreSpec::Cv(cv) if cv.cv_user.as_deref() == Some(longest.as_str()))
    );

    for (kind, address, secret, line) in [
        ("sqlite", "sqlite:/tmp/c.sqlite", "", 4),
        ("mysql", "mysql://civikey@localhost/civicrm", "", 4),
        (
            "civicrm-rest",
            "https://crm.example.org",
            "api_key_env = \"K\"\n",
            5,
        ),
    ] {
        let err = load_str(
            dir.path(),
            &format!("[profiles.p]\nkind = \"{kind}\"\naddress = \"{address}\"\n{secret}cv_user = \"admin\"\n"),
        )
        .unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.contains(&format!("profiles.p.cv_user: this field does not belong to a profile of kind {kind} (it is for cv)")),
            "{shown}"
        );
        assert_eq!(err.line(), Some(line), "{shown}");
    }
}

#[test]
fn an_unknown_profile_lists_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let config = load_str(
        dir.path(),
        "[profiles.b]\nkind = \"cv\"\naddress = \"cv:/x\"\n[profiles.a]\nkind = \"cv\"\naddress = \"cv:/y\"\n",
    )
    .unwrap();
    let err = config
        .resolve(None, Some("prod"), dir.path(), false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no profile named \"prod\""), "{err}");
    assert!(err.contains("the profiles are: a, b"), "{err}");
    let err = config
        .resolve(None, Some("\x1b[2Jx"), dir.path(), false)
        .unwrap_err()
        .to_string();
    assert!(!has_control(&err), "{err:?}");
}

#[test]
fn bare_store_addresses_without_a_config() {
    let _env = env_lock();
    let data = Path::new("/nonexistent/data");
    let resolve = |store: &str| config::resolve_without_config(Some(store), None, data, false);

    let StoreSpec::Mysql(mysql) = resolve("mysql://civikey@db.example.org:3306/civicrm")
        .unwrap()
        .spec
    else {
        panic!("not MySQL")
    };
    assert_eq!(mysql.address, "mysql://civikey@db.example.org:3306/civicrm");
    assert!(
        mysql.password.is_none(),
        "the MySQL store falls back to ~/.my.cnf"
    );
    assert_eq!(mysql.table_prefix, "");

    let err = resolve("https://crm.example.org").unwrap_err().to_string();
    assert!(
        err.contains("needs a profile") && err.contains("civicrm-rest"),
        "{err}"
    );

    let StoreSpec::Cv(cv) = resolve("cv:/var/www/crm").unwrap().spec else {
        panic!("not cv")
    };
    assert_eq!(
        (cv.site_path.as_path(), cv.cv_binary.as_path()),
        (Path::new("/var/www/crm"), Path::new("cv"))
    );

    let r = resolve("sqlite:relative/contacts.sqlite").unwrap();
    assert!(
        matches!(&r.spec, StoreSpec::Sqlite { path, .. } if path == Path::new("relative/contacts.sqlite"))
    );
    assert!(!r.is_default_store);

    for (bad, fragment) in [
        ("contacts.sqlite", "is not a store address"),
        ("http://crm.example.org", "https://"),
        ("mysql://civikey@db", "no database"),
        ("\x1b]52;c;eA==\x07", "is not a store address"),
    ] {
        let err = resolve(bad).unwrap_err().to_string();
        assert!(
            err.contains(fragment) && err.starts_with("--store"),
            "{bad:?}: {err}"
        );
        assert!(!has_control(&err), "{err:?}");
    }

    let err = config::resolve_without_config(None, Some("prod"), data, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no profile named \"prod\"") && err.contains("no config file"),
        "{err}"
    );

    let r: Resolved = config::resolve_without_config(None, None, data, false).unwrap();
    assert!(r.is_default_store);
}

#[test]
fn summaries_say_where_secrets_come_from() {
    let _env = env_lock();
    let dir = tempfile::tempdir().unwrap();
    let config = load_str(
        dir.path(),
        r#"
default_profile = "db"
[profiles.api]
kind = "civicrm-rest"
address = "http://127.0.0.1:8080"
api_key_file = "/etc/civikey/api.key"
site_key_env = "SITE_KEY"

[profiles.db]
kind = "mysql"
address = "mysql://civikey@db/civicrm"

[profiles.local]
kind = "sqlite"
address = "sqlite:/srv/c.sqlite"
"#,
    )
    .unwrap();
    let summaries = config.summaries();
    let names: Vec<&str> = summaries.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["api", "db", "local"]);
    let api = &summaries[0];
    assert_eq!(
        (api.kind, api.address.as_str(), api.is_default),
        ("civicrm-rest", "http://127.0.0.1:8080", false)
    );
    let secrets: Vec<(&str, &str)> = api.secrets.iter().map(|(w, s)| (*w, s.as_str())).collect();
    assert_eq!(
        secrets,
        [
            ("api key", "file /etc/civikey/api.key"),
            ("site key", "env SITE_KEY")
        ]
    );
    assert!(summaries[1].is_default);
    assert_eq!(summaries[1].secrets[0].0, "password");
    assert!(summaries[2].secrets.is_empty());
    assert_eq!(summaries[2].address.as_str(), "sqlite:/srv/c.sqlite");
}

#[test]
fn civikey_config_and_civikey_data_dir_override_the_defaults() {
    let _env = env_lock();
    let home = tempfile::tempdir().unwrap();
    let home_str = home.path().to_str().unwrap();
    let _vars = EnvVars::set(&[
        ("HOME", Some(home_str)),
        ("XDG_CONFIG_HOME", None),
        ("XDG_DATA_HOME", None),
        ("CIVIKEY_CONFIG", None),
        ("CIVIKEY_DATA_DIR", None),
    ]);
    // The platform defaults, under HOME.
    assert_eq!(
        config::data_dir().unwrap(),
        home.path().join(".local/share/civikey")
    );
    assert_eq!(
        config::config_path().unwrap(),
        home.path().join(".config/civikey/config.toml")
    );
    assert!(
        Config::load_default().unwrap().is_none(),
        "no default file: no config, no error"
    );

    let default_file = home.path().join(".config/civikey/config.toml");
    fs::create_dir_all(default_file.parent().unwrap()).unwrap();
    write_file(&default_file, "default_profile = \"x\"\n", 0o600);
    let err = Config::load_default().unwrap_err();
    assert!(
        err.to_string().contains(default_file.to_str().unwrap()),
        "the default file is read: {err}"
    );

    // Empty values count as unset.
    let _vars = EnvVars::set(&[("CIVIKEY_CONFIG", Some("")), ("CIVIKEY_DATA_DIR", Some(""))]);
    assert_eq!(
        config::data_dir().unwrap(),
        home.path().join(".local/share/civikey")
    );
    assert_eq!(config::config_path().unwrap(), default_file);

    let other = home.path().join("other.toml");
    write_file(
        &other,
        "[profiles.o]\nkind = \"cv\"\naddress = \"cv:/o\"\n",
        0o600,
    );
    let _vars = EnvVars::set(&[
        ("CIVIKEY_CONFIG", Some(other.to_str().unwrap())),
        ("CIVIKEY_DATA_DIR", Some("/srv/civikey-data")),
    ]);
    assert_eq!(config::data_dir().unwrap(), Path::new("/srv/civikey-data"));
    assert_eq!(config::config_path().unwrap(), other);
    let loaded = Config::load_default().unwrap().unwrap();
    assert_eq!(loaded.summaries()[0].name.as_str(), "o");

    // A config the operator named must exist.
    let gone = home.path().join("gone.toml");
    let _vars = EnvVars::set(&[("CIVIKEY_CONFIG", Some(gone.to_str().unwrap()))]);
    let err = Config::load_default().unwrap_err().to_string();
    assert!(
        err.contains("gone.toml") && err.contains("does not exist"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// civikey config path | init | check

fn run_civikey(home: &Path, args: &[&str]) -> std::process::Output {
    binary::civikey(home).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn init_templates_list_every_field_of_their_kind_and_load() {
    use civikey::cli::config_cmd::{template, InitKind};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    for kind in [
        InitKind::Sqlite,
        InitKind::Mysql,
        InitKind::CivicrmRest,
        InitKind::Cv,
    ] {
        let text = template(kind, &path, dir.path());
        let (fields, form) = config::kind_fields(kind.label()).unwrap();
        for field in fields {
            assert!(
                text.contains(&format!("\n# {field}: ")),
                "{}: no comment for {field}",
                kind.label()
            );
            assert!(
                text.contains(&format!("\n{field} = "))
                    || text.contains(&format!("\n# {field} = ")),
                "{}: no line for {field}",
                kind.label()
            );
        }
        for other in config::kind_names() {
            for field in config::kind_fields(other).unwrap().0 {
                if !fields.contains(field) {
                    assert!(
                        !text.contains(&format!("{field} =")),
                        "{}: {field} belongs to {other}",
                        kind.label()
                    );
                }
            }
        }
        assert!(text.contains(form), "{}", kind.label());
        // Explanations are wrapped; only an example value may be longer.
        assert!(
            text.lines()
                .filter(|l| !l.contains(" = "))
                .all(|l| l.chars().count() <= 90),
            "{text}"
        );
        let loaded =
            Config::parse(&text, &path).unwrap_or_else(|e| panic!("{}: {e}\n{text}", kind.label()));
        let summaries = loaded.summaries();
        assert_eq!(summaries.len(), 1);
        // Only the SQLite profile works as written; the others are filled in first.
        assert_eq!(summaries[0].is_default, kind == InitKind::Sqlite);
        assert_eq!(summaries[0].kind, kind.label());
    }
}

#[test]
fn config_path_says_where_and_whether() {
    let home = tempfile::tempdir().unwrap();
    let expected = home.path().join("config/civikey/config.toml");
    let out = run_civikey(home.path(), &["config", "path"]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), format!("{}\n", expected.display()));
    assert!(
        text(&out.stderr).contains("no config file there yet"),
        "{}",
        text(&out.stderr)
    );
    let named = home.path().join("elsewhere.toml");
    write_file(&named, "", 0o600);
    let out = binary::civikey(home.path())
        .env("CIVIKEY_CONFIG", &named)
        .args(["config", "path"])
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), format!("{}\n", named.display()));
    assert!(
        text(&out.stderr).contains("exists (named by $CIVIKEY_CONFIG)"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn init_then_check_round_trip_for_sqlite() {
    let home = tempfile::tempdir().unwrap();
    let out = run_civikey(home.path(), &["config", "init"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let path = home.path().join("config/civikey/config.toml");
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let written = fs::read_to_string(&path).unwrap();

    // The profile names the default store, which the first run makes: check says so.
    let out = run_civikey(home.path(), &["config", "check"]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).starts_with("ok    local")
            && text(&out.stdout).contains("the first run makes it from the sample"),
        "{}",
        text(&out.stdout)
    );
    // The first run on it works, as without a config.
    let out = run_civikey(home.path(), &["list", "--limit", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("sample contacts"),
        "{}",
        text(&out.stderr)
    );
    let out = run_civikey(home.path(), &["config", "check"]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).starts_with("ok    local"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("1 profile checked, all fine"),
        "{}",
        text(&out.stderr)
    );
    let out = run_civikey(home.path(), &["config", "check", "--connect"]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("(opened read-only)"),
        "{}",
        text(&out.stdout)
    );
    // The profile works for real commands too.
    let out = run_civikey(home.path(), &["list", "--limit", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A second init adds its profile, not as the default; the file is otherwise as it was.
    let out = run_civikey(home.path(), &["config", "init", "--kind", "cv"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("added a cv profile \"crm-cv\"")
            && text(&out.stderr).contains("default profile is unchanged"),
        "{}",
        text(&out.stderr)
    );
    let now = fs::read_to_string(&path).unwrap();
    assert!(now.starts_with(&written), "{now}");
    let config = Config::load(&path).unwrap();
    assert_eq!(config.default_profile(), Some("local"));
    assert_eq!(
        config.profile_names().collect::<Vec<_>>(),
        ["crm-cv", "local"]
    );
    // Again: under a name not taken.
    let out = run_civikey(home.path(), &["config", "init", "--kind", "cv"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let config = Config::load(&path).unwrap();
    assert!(config.profile_names().any(|n| n == "crm-cv-2"));
    assert_eq!(config.default_profile(), Some("local"));
}

/// `config check` judges a MySQL profile as a run would before it sends anything: a
/// remote host without TLS settings refused, `tls = "off"` warned about, no password from
/// anywhere (no `~/.my.cnf`) said, a `~/.my.cnf` others can read refused. And `config init
/// --kind mysql` never makes its half-filled profile the default: the first run still works.
#[test]
fn check_judges_a_mysql_profile_as_a_run_would() {
    let home = tempfile::tempdir().unwrap();
    let out = run_civikey(home.path(), &["config", "init", "--kind", "mysql"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let path = home.path().join("config/civikey/config.toml");
    let config = Config::load(&path).unwrap();
    assert_eq!(
        config.default_profile(),
        None,
        "a half-filled profile is no default"
    );
    let out = run_civikey(home.path(), &["list", "--limit", "1"]);
    assert!(out.status.success(), "the first run: {}", text(&out.stderr));

    let check = || run_civikey(home.path(), &["config", "check"]);
    let edit = |from: &str, to: &str| {
        let now = fs::read_to_string(&path).unwrap();
        assert!(now.contains(from), "{from} in {now}");
        write_file(&path, &now.replacen(from, to, 1), 0o600);
    };
    // Loopback, no password anywhere: fine, with a warning.
    let out = check();
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("warn  crm-db") && text(&out.stdout).contains("no password"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("1 with a warning"),
        "{}",
        text(&out.stderr)
    );
    // ~/.my.cnf others can read: a run refuses it, so does check.
    let my_cnf = home.path().join(".my.cnf");
    write_file(&my_cnf, "[client]\npassword=Sekr3tSekr3t\n", 0o644);
    let out = check();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("FAIL  crm-db") && text(&out.stdout).contains("chmod"),
        "{}",
        text(&out.stdout)
    );
    fs::set_permissions(&my_cnf, fs::Permissions::from_mode(0o600)).unwrap();
    let out = check();
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(!text(&out.stdout).contains("warn"), "{}", text(&out.stdout));
    // Another machine without TLS settings: refused before anything is sent.
    edit("civikey@localhost:3306", "civikey@db.example.org:3306");
    let out = check();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("FAIL  crm-db")
            && text(&out.stdout).contains("another machine")
            && text(&out.stdout).contains("tls = true"),
        "{}",
        text(&out.stdout)
    );
    // tls = "off": fine, warned about as on every run.
    edit("# tls = true", "tls = \"off\"");
    let out = check();
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("warn  crm-db") && text(&out.stdout).contains("TLS is off"),
        "{}",
        text(&out.stdout)
    );
    for output in [&out.stdout, &out.stderr] {
        assert!(!text(output).contains("Sekr3t"), "a secret was printed");
    }
}

#[test]
fn check_reads_secrets_as_a_run_would_and_says_what_is_wrong() {
    let home = tempfile::tempdir().unwrap();
    let out = run_civikey(home.path(), &["config", "init", "--kind", "civicrm-rest"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let key_file = home.path().join("config/civikey/crm-api.key");
    let check = || run_civikey(home.path(), &["config", "check"]);

    let out = check();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("FAIL  crm-api") && text(&out.stdout).contains("does not exist"),
        "{}",
        text(&out.stdout)
    );
    write_file(&key_file, "AdminKeyAdminKeyAdminKey0123456\n", 0o644);
    let out = check();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("chmod 600"),
        "{}",
        text(&out.stdout)
    );
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o600)).unwrap();
    let out = check();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("ok    crm-api          https://crm.example.org"));
    for output in [&out.stdout, &out.stderr] {
        assert!(!text(output).contains("AdminKey"), "a secret was printed");
    }

    // A config others may read is refused by check as by every command.
    let config = home.path().join("config/civikey/config.toml");
    fs::set_permissions(&config, fs::Permissions::from_mode(0o640)).unwrap();
    let out = check();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("chmod 600"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn check_without_a_config_points_at_init() {
    let home = tempfile::tempdir().unwrap();
    let out = run_civikey(home.path(), &["config", "check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("civikey config init"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn mysql_tls_resolves_from_the_profile() {
    use civikey::store::mysql::MysqlTls;
    use civikey::store::mysql::{decide_tls, TlsDecision};
    let _env = env_lock();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let profile = |tls: &str, host: &str| {
        let config = load_str(
            dir.path(),
            &format!("[profiles.db]\nkind = \"mysql\"\naddress = \"mysql://civikey@{host}/civicrm\"\n{tls}\n"),
        )
        .unwrap();
        match config.resolve(None, Some("db"), &data, false).unwrap().spec {
            StoreSpec::Mysql(o) => o,
            _ => panic!("not MySQL"),
        }
    };
    for (line, expected) in [
        ("", MysqlTls::Auto),
        ("tls = false", MysqlTls::Auto),
        ("tls = true", MysqlTls::Required),
        ("tls = \"off\"", MysqlTls::Off),
        ("tls_ca_file = \"/etc/ssl/ca.pem\"", MysqlTls::Required),
    ] {
        assert_eq!(profile(line, "db.example.org").tls, expected, "{line:?}");
    }
    // The decision, host by host: loopback as before; another machine needs TLS or "off".
    for (host, tls, expected) in [
        (
            "localhost",
            MysqlTls::Auto,
            Some(TlsDecision::PlainLoopback),
        ),
        (
            "127.0.0.1:3307",
            MysqlTls::Auto,
            Some(TlsDecision::PlainLoopback),
        ),
        (
            "127.3.4.5",
            MysqlTls::Auto,
            Some(TlsDecision::PlainLoopback),
        ),
        (
            "[::1]:3306",
            MysqlTls::Auto,
            Some(TlsDecision::PlainLoopback),
        ),
        (
            "[::ffff:127.0.0.1]",
            MysqlTls::Auto,
            Some(TlsDecision::PlainLoopback),
        ),
        ("localhost", MysqlTls::Required, Some(TlsDecision::Verified)),
        ("localhost", MysqlTls::Off, Some(TlsDecision::PlainLoopback)),
        ("db.example.invalid", MysqlTls::Auto, None),
        ("10.0.0.5", MysqlTls::Auto, None),
        ("[2001:db8::1]", MysqlTls::Auto, None),
        ("localhost.evil.example", MysqlTls::Auto, None),
        (
            "db.example.invalid",
            MysqlTls::Required,
            Some(TlsDecision::Verified),
        ),
        (
            "db.example.invalid",
            MysqlTls::Off,
            Some(TlsDecision::PlainRemote),
        ),
    ] {
        let address = format!("mysql://civikey@{host}/civicrm");
        match (decide_tls(&address, tls), expected) {
            (Ok(got), Some(want)) => assert_eq!(got, want, "{host} {tls:?}"),
            (Err(e), None) => {
                let shown = e.to_string();
                assert!(
                    shown.contains("tls = true")
                        && shown.contains("tls = \"off\"")
                        && shown.contains("nothing was sent"),
                    "{shown}"
                );
            }
            (got, want) => panic!("{host} {tls:?}: {got:?}, expected {want:?}"),
        }
    }
    // A bare --store to another machine has no profile to say either: refused too.
    let StoreSpec::Mysql(bare) = config::resolve_without_config(
        Some("mysql://civikey@db.example.org/civicrm"),
        None,
        &data,
        false,
    )
    .unwrap()
    .spec
    else {
        panic!("not MySQL")
    };
    assert_eq!(bare.tls, MysqlTls::Auto);
    assert!(decide_tls(&bare.address, bare.tls).is_err());
    // "off" with a CA file contradicts itself.
    let err = load_str(
        dir.path(),
        "[profiles.db]\nkind = \"mysql\"\naddress = \"mysql://u@h/db\"\ntls = \"off\"\ntls_ca_file = \"/ca.pem\"\n",
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("TLS is off but tls_ca_file is set"),
        "{err}"
    );
    assert_eq!(err.line(), Some(4));
}

#[test]
fn api_url_and_site_url_are_checked_and_carried_into_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    write_file(
        &dir.path().join("admin.key"),
        "AdminKeyAdminKey1234\n",
        0o600,
    );
    write_file(&dir.path().join("site.key"), "SiteKey123\n", 0o600);
    let config = load_str(
        dir.path(),
        r#"
[profiles.wp]
kind = "civicrm-rest"
address = "https://crm.example.org"
api_url = "https://crm.example.org/wp-admin/admin.php?page=CiviCRM&q=civicrm/ajax/api4/{entity}/{action}"
api_key_file = "admin.key"

[profiles.db]
kind = "mysql"
address = "mysql://civikey@db.example.org/civicrm"
site_url = "https://crm.example.org/"
site_key_file = "site.key"

[profiles.cv]
kind = "cv"
address = "cv:/var/www/crm"
"#,
    )
    .unwrap();
    let resolved = config.resolve(None, Some("wp"), dir.path(), false).unwrap();
    let StoreSpec::Rest(options) = resolved.spec else {
        panic!("not a REST spec")
    };
    assert!(options
        .base_url
        .contains("?page=CiviCRM&q=civicrm/ajax/api4/{entity}/{action}"));
    let resolved = config.resolve(None, Some("db"), dir.path(), false).unwrap();
    let StoreSpec::WithLogin(inner, login) = resolved.spec else {
        panic!("no login site")
    };
    assert!(matches!(*inner, StoreSpec::Mysql(_)));
    assert_eq!(
        login.api_address,
        "https://crm.example.org/civicrm/ajax/api4/{entity}/{action}"
    );
    assert_eq!(login.site_key.unwrap().expose(), "SiteKey123");
    let resolved = config.resolve(None, Some("cv"), dir.path(), false).unwrap();
    assert!(
        matches!(resolved.spec, StoreSpec::Cv(_)),
        "no site_url, no login check"
    );

    for (profile, words) in [
        (
            "kind = \"civicrm-rest\"\naddress = \"https://x.org\"\napi_key_file = \"admin.key\"\napi_url = \"https://x.org/?q=civicrm/ajax/api4/{entity}\"",
            "api_url: https://x.org/?q=civicrm/ajax/api4/{entity}: an api_url template needs both",
        ),
        (
            "kind = \"mysql\"\naddress = \"mysql://u@h/db\"\nsite_url = \"http://crm.example.org\"",
            "site_url: http://crm.example.org: plain http",
        ),
        (
            "kind = \"mysql\"\naddress = \"mysql://u@h/db\"\nsite_key_file = \"site.key\"",
            "a site key is set but no site_url",
        ),
        (
            "kind = \"sqlite\"\naddress = \"sqlite:x.sqlite\"\nsite_url = \"https://x.org\"",
            "site_url: this field does not belong to a profile of kind sqlite",
        ),
    ] {
        let err = load_str(dir.path(), &format!("[profiles.p]\n{profile}\n")).unwrap_err();
        assert!(err.to_string().contains(words), "{profile}: {err}");
    }
}
