//! Files owned by another user, and folders others can write, are refused (as OpenSSH
//! refuses them): the config, a secret file, the store, the journal, its key, and the
//! folders they are in. Through the binary, as root, with uid 65534 (nobody) as the
//! other user: `chown` needs root, so elsewhere these print SKIP, and fail under CI=true.

mod binary;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use civikey::key::ApiKey;
use civikey::seed::SeedContact;
use civikey::store::sqlite::SqliteStore;

const OTHER_UID: u32 = 65534;

/// True when the tests can run (as root); otherwise prints SKIP, or panics under CI=true.
fn as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let reason = "needs root, to chown files to another user";
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{reason}");
    }
    let name = std::thread::current()
        .name()
        .unwrap_or("ownership")
        .to_string();
    let _ = writeln!(std::io::stderr(), "SKIP {name}: {reason}");
    false
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), None).unwrap();
}

fn private(path: &Path, bytes: &[u8]) -> PathBuf {
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
    path.to_path_buf()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

struct Env {
    home: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Env {
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    fn store(&self) -> PathBuf {
        let path = self.path("store/contacts.sqlite");
        let contacts = (1..=2).map(|i| SeedContact {
            id: Some(i),
            contact_type: "Individual".into(),
            display_name: format!("Person {i}"),
            sort_name: format!("{i}, Person"),
            api_key: Some(ApiKey::from_store(format!(
                "KeepKeepKeepKeepKeepKeepKeep000{i}"
            ))),
            ..Default::default()
        });
        SqliteStore::create(&path, contacts, &mut |_| {}).unwrap();
        path
    }

    fn run(&self, args: &[&str], config: Option<&Path>) -> Output {
        let mut cmd = binary::civikey(self.home.path());
        if let Some(config) = config {
            cmd.env("CIVIKEY_CONFIG", config);
        }
        cmd.args(args).output().unwrap()
    }
}

/// Refused with exit code `code`, the message naming `words` and a "Fix with:" command.
fn assert_refused(out: &Output, code: i32, words: &[&str], what: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{what}: {err}");
    for w in words {
        assert!(err.contains(w), "{what}: no {w:?} in {err}");
    }
    assert!(err.contains("Fix with: "), "{what}: {err}");
    assert!(out.stdout.is_empty(), "{what}");
}

#[test]
fn a_config_owned_by_another_user_is_refused_and_its_cv_binary_never_runs() {
    if !as_root() {
        return;
    }
    let env = Env::new();
    let marker = env.path("ran");
    let planted = env.path("planted-cv");
    fs::write(
        &planted,
        format!("#!/bin/sh\ntouch '{}'\n", marker.display()),
    )
    .unwrap();
    fs::set_permissions(&planted, fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir(env.path("site")).unwrap();
    let config = private(
        &env.path("config.toml"),
        format!(
            "[profiles.site]\nkind = \"cv\"\naddress = \"cv:{}\"\ncv_binary = \"{}\"\n",
            env.path("site").display(),
            planted.display()
        )
        .as_bytes(),
    );
    chown(&config, OTHER_UID);
    let out = env.run(&["list", "--profile", "site"], Some(&config));
    assert_refused(
        &out,
        1,
        &["config.toml", "belongs to user 65534", "chown 0 "],
        "foreign config",
    );
    assert!(!marker.exists(), "the planted cv_binary ran");
    // Owned by the operator again: it is used (and the binary runs).
    chown(&config, 0);
    let _ = env.run(&["list", "--profile", "site"], Some(&config));
    assert!(marker.exists(), "the test's own config should be used");
}

#[test]
fn a_secret_file_owned_by_another_user_is_refused() {
    if !as_root() {
        return;
    }
    let env = Env::new();
    let key = private(
        &env.path("admin.key"),
        b"AdminKeyAdminKeyAdminKey00000001\n",
    );
    chown(&key, OTHER_UID);
    let config = private(
        &env.path("config.toml"),
        format!(
            "[profiles.api]\nkind = \"civicrm-rest\"\naddress = \"https://crm.example.invalid\"\napi_key_file = \"{}\"\n",
            key.display()
        )
        .as_bytes(),
    );
    let out = env.run(&["list", "--profile", "api"], Some(&config));
    assert_refused(
        &out,
        1,
        &["admin.key", "belongs to user 65534"],
        "foreign secret",
    );
    assert!(!stderr(&out).contains("AdminKey"), "{}", stderr(&out));
}

#[test]
fn a_store_owned_by_another_user_or_in_an_open_folder_is_refused() {
    if !as_root() {
        return;
    }
    let env = Env::new();
    let store = env.store();
    let address = format!("sqlite:{}", store.display());
    let before = fs::read(&store).unwrap();

    chown(&store, OTHER_UID);
    let out = env.run(&["rotate", "1", "--yes", "--store", &address], None);
    assert_refused(&out, 1, &["belongs to user 65534"], "foreign store");
    chown(&store, 0);

    let folder = store.parent().unwrap();
    chown(folder, OTHER_UID);
    let out = env.run(&["list", "--store", &address], None);
    assert_refused(
        &out,
        1,
        &["the folder", "belongs to user 65534"],
        "store in a foreign folder",
    );
    chown(folder, 0);

    fs::set_permissions(folder, fs::Permissions::from_mode(0o777)).unwrap();
    let out = env.run(&["list", "--store", &address], None);
    assert_refused(
        &out,
        1,
        &["writable by other users", "chmod go-w"],
        "store in a 0777 folder",
    );
    assert_eq!(fs::read(&store).unwrap(), before, "a refused store changed");

    // Nor is a store made there (the default store, `seed`, `import`).
    let made = folder.join("new.sqlite");
    let out = env.run(
        &[
            "seed",
            "--sample",
            "--store",
            &format!("sqlite:{}", made.display()),
        ],
        None,
    );
    assert_refused(
        &out,
        1,
        &["writable by other users"],
        "seed into a 0777 folder",
    );
    assert!(!made.exists(), "a store was made in an open folder");

    // A sticky folder (as /tmp): others cannot replace what is in it; accepted.
    fs::set_permissions(folder, fs::Permissions::from_mode(0o1777)).unwrap();
    let out = env.run(&["list", "--store", &address], None);
    assert!(out.status.success(), "sticky folder: {}", stderr(&out));
}

#[test]
fn a_foreign_or_open_data_dir_and_a_planted_journal_key_are_refused() {
    if !as_root() {
        return;
    }
    let env = Env::new();
    let store = env.store();
    let address = format!("sqlite:{}", store.display());
    let before = fs::read(&store).unwrap();
    let data = env.path("data");

    // Another user's data dir, empty: nothing is made in it.
    fs::create_dir(&data).unwrap();
    fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).unwrap();
    chown(&data, OTHER_UID);
    let out = env.run(&["rotate", "1", "--yes", "--store", &address], None);
    assert_refused(
        &out,
        5,
        &["the folder", "belongs to user 65534"],
        "foreign empty data dir",
    );
    assert_eq!(
        fs::read_dir(&data).unwrap().count(),
        0,
        "files were made in it"
    );
    chown(&data, 0);

    // Another user's data dir, with a journal key planted in it.
    fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).unwrap();
    let planted = private(&data.join("audit.key"), &[7u8; 32]);
    chown(&planted, OTHER_UID);
    chown(&data, OTHER_UID);
    let out = env.run(&["rotate", "1", "--yes", "--store", &address], None);
    assert_refused(&out, 5, &["belongs to user 65534"], "foreign data dir");
    assert_eq!(fs::read(&store).unwrap(), before, "nothing may be written");

    // The folder is the operator's again, the planted key is not.
    chown(&data, 0);
    let out = env.run(&["rotate", "1", "--yes", "--store", &address], None);
    assert_refused(
        &out,
        5,
        &["audit.key", "belongs to user 65534"],
        "planted audit.key",
    );
    assert_eq!(fs::read(&store).unwrap(), before);
    fs::remove_file(&planted).unwrap();

    // A data dir anyone can write.
    fs::set_permissions(&data, fs::Permissions::from_mode(0o777)).unwrap();
    let out = env.run(&["rotate", "1", "--yes", "--store", &address], None);
    assert_refused(&out, 5, &["writable by other users"], "0777 data dir");
    assert_eq!(fs::read(&store).unwrap(), before);

    // Put right, the same command works, and the journal is the operator's.
    fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).unwrap();
    let out = env.run(&["rotate", "1", "--yes", "--store", &address], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::metadata(data.join("audit.sqlite")).unwrap().uid(), 0);
}
