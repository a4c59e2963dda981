//! The audit promises, from outside: no write without a journaled intent, no key in the
//! journal, manual keys validated, fingerprints that match.

mod binary;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use base64::Engine as _;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let env = Env {
            dir: tempfile::tempdir().unwrap(),
        };
        let out = env.run(&["list", "--limit", "1"], None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        env
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = binary::civikey(self.dir.path())
            .args(args)
            .env("USER", "alice")
            .env_remove("SUDO_USER")
            .env("SSH_CONNECTION", "192.0.2.7 50000 192.0.2.1 22")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    }

    fn key_of(&self, id: i64) -> Option<String> {
        rusqlite::Connection::open(self.data().join("contacts.sqlite"))
            .unwrap()
            .query_row(
                "SELECT api_key FROM civicrm_contact WHERE id = ?",
                [id],
                |r| r.get(0),
            )
            .unwrap()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_no_key_in(path: &Path, key: &str) {
    let bytes = fs::read(path).unwrap();
    let haystack = text(&bytes);
    let b64 = base64::engine::general_purpose::STANDARD.encode(key);
    assert!(!haystack.contains(key), "{} holds the key", path.display());
    assert!(
        !haystack.contains(&b64[..24]),
        "{} holds the key's base64",
        path.display()
    );
}

#[test]
fn rotation_is_journaled_with_fingerprints_only() {
    let env = Env::new();
    let out = env.run(&["rotate", "101", "--yes", "--json"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = doc["key"].as_str().unwrap().to_string();
    let fingerprint = doc["fingerprint"].as_str().unwrap().to_string();
    assert_eq!(fingerprint.len(), 8);
    assert!(!text(&out.stderr).contains(&key));

    let out = env.run(&["audit", "--contact", "101", "--json"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let entries: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = &entries[0];
    assert_eq!(e["contact_id"], 101);
    assert_eq!(e["action"], "assign");
    assert_eq!(e["outcome"], "done");
    assert_eq!(e["operator"], "alice");
    assert_eq!(e["ssh_client"], "192.0.2.7");
    assert_eq!(e["new_fingerprint"], fingerprint.as_str());
    assert!(
        e["old_fingerprint"].is_string(),
        "contact 101 had a key before"
    );

    for file in ["audit.sqlite", "audit.key"] {
        assert_no_key_in(&env.data().join(file), &key);
    }
    let plain = env.run(&["audit"], None);
    assert!(text(&plain.stdout).contains(&fingerprint));
    assert!(!text(&plain.stdout).contains(&key));
}

#[test]
fn unwritable_journal_means_no_store_write() {
    let env = Env::new();
    let out = env.run(&["rotate", "101", "--yes"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let before = env.key_of(102);
    // SQLite must create audit.sqlite-journal to write; a folder in its place makes every
    // journal write fail, even for root (who ignores file modes).
    fs::create_dir(env.data().join("audit.sqlite-journal")).unwrap();
    let out = env.run(&["rotate", "102", "--yes"], None);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("audit journal"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        out.stdout.is_empty(),
        "no key may be printed when nothing was assigned"
    );
    assert_eq!(
        env.key_of(102),
        before,
        "the store changed without a journaled intent"
    );
}

#[test]
fn exposed_journal_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    env.run(&["rotate", "101", "--yes"], None);
    let journal = env.data().join("audit.sqlite");
    fs::set_permissions(&journal, fs::Permissions::from_mode(0o644)).unwrap();
    let before = env.key_of(102);
    let out = env.run(&["rotate", "102", "--yes"], None);
    assert_eq!(out.status.code(), Some(5));
    assert!(
        text(&out.stderr).contains("chmod 600"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(env.key_of(102), before);
}

#[test]
fn assign_from_stdin_validates_and_refuses_clashes() {
    let env = Env::new();
    let key = "MigratedKeyMigratedKey0123";
    let out = env.run(&["assign", "102", "--key-stdin"], Some(&format!("{key}\n")));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(env.key_of(102).as_deref(), Some(key));
    assert!(out.stdout.is_empty());
    assert!(!text(&out.stderr).contains(key));

    // Held by 102 already, in another case: MySQL would confuse them. Refused.
    let before = env.key_of(103);
    let out = env.run(&["assign", "103", "--key-stdin"], Some(&key.to_lowercase()));
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("already held by contact 102"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(env.key_of(103), before);

    for (bad, why) in [
        ("short123", "20 to 32"),
        ("has space in it 0123456789", "A-Z"),
        ("ThisKeyIsMuchTooLongForTheColumn0123456789", "20 to 32"),
        ("", "no key"),
    ] {
        let out = env.run(&["assign", "103", "--key-stdin"], Some(bad));
        assert_eq!(out.status.code(), Some(5), "{bad:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(why),
            "{bad:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(env.key_of(103), before);
    }
    let out = env.run(&["assign", "103"], None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--key-stdin is required: keys never go in argv"
    );
}

/// Two stores share contact ids (different people): `audit` shows this store's records only,
/// `--all-stores` every store's, with a store column.
#[test]
fn audit_shows_this_stores_records_unless_all_stores() {
    let env = Env::new();
    let other = env.dir.path().join("other.sqlite");
    let other_spec = format!("sqlite:{}", other.display());
    let out = env.run(&["seed", "--sample", "--store", &other_spec], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for store in [None, Some(other_spec.as_str())] {
        let mut args = vec!["rotate", "101", "--yes"];
        if let Some(spec) = store {
            args.extend(["--store", spec]);
        }
        let out = env.run(&args, None);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let stores = |args: &[&str]| -> Vec<String> {
        let out = env.run(args, None);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let entries: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        entries
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["store"].as_str().unwrap().to_string())
            .collect()
    };
    let here = stores(&["audit", "--json"]);
    assert_eq!(here.len(), 1, "{here:?}");
    assert!(!here[0].contains("other.sqlite"), "{here:?}");
    let there = stores(&["audit", "--json", "--store", &other_spec]);
    assert_eq!(there.len(), 1, "{there:?}");
    assert!(there[0].contains("other.sqlite"), "{there:?}");
    assert_eq!(
        stores(&["audit", "--json", "--contact", "101", "--all-stores"]).len(),
        2
    );
    let plain = text(&env.run(&["audit", "--all-stores"], None).stdout);
    assert_eq!(plain.lines().count(), 2, "{plain}");
    assert!(plain.contains("other.sqlite"), "a store column: {plain}");
    let plain = text(&env.run(&["audit"], None).stdout);
    assert!(!plain.contains("sqlite:"), "no store column: {plain}");
}
