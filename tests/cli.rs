//! The binary as a script sees it: stdout, stderr, exit codes, files.

mod binary;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn store(&self) -> PathBuf {
        self.data_dir().join("contacts.sqlite")
    }

    fn run(&self, args: &[&str]) -> Output {
        binary::civikey(self.dir.path())
            .args(args)
            .output()
            .unwrap()
    }

    /// Creates the sample store and returns its address.
    fn sample_store(&self) -> String {
        let out = self.run(&["list", "--limit", "1"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!("sqlite:{}", self.store().display())
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stored_key(path: &Path, id: i64) -> Option<String> {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT api_key FROM civicrm_contact WHERE id = ?",
            [id],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn generate_prints_one_key() {
    let env = Env::new();
    let out = env.run(&["generate"]);
    assert!(out.status.success());
    let text = stdout(&out);
    let key = text.strip_suffix('\n').unwrap();
    assert_eq!(key.len(), 32);
    assert!(key.chars().all(|c| c.is_ascii_alphanumeric()));
    assert!(out.stderr.is_empty());
    let out = env.run(&["generate", "--length", "20"]);
    assert_eq!(stdout(&out).trim().len(), 20);
    let out = env.run(&["generate", "--length", "40"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn default_store_is_created_private_from_the_sample() {
    let env = Env::new();
    let out = env.run(&["list", "--limit", "100"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("sample contacts"),
        "progress goes to stderr"
    );
    assert!(stdout(&out).lines().count() >= 40);
    assert_eq!(
        fs::metadata(env.store()).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        fs::metadata(env.data_dir()).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

#[test]
fn list_is_masked_and_inert() {
    let env = Env::new();
    let store = env.sample_store();
    let out = env.run(&["list", "--limit", "200", "--store", &store]);
    let text = stdout(&out);
    assert!(
        !text.contains('\x1b'),
        "raw escape from data reached stdout"
    );
    assert!(!text.bytes().any(|b| b == 0x07));
    assert!(text.contains("Mallory ␛[2J"));
    assert!(text.contains("••••"));
    // No stored key appears in the listing.
    let conn = rusqlite::Connection::open(env.store()).unwrap();
    let mut stmt = conn
        .prepare("SELECT api_key FROM civicrm_contact WHERE api_key IS NOT NULL")
        .unwrap();
    let keys: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!keys.is_empty());
    for key in keys {
        assert!(!text.contains(&key));
    }
}

#[test]
fn list_json_and_search() {
    let env = Env::new();
    let store = env.sample_store();
    let out = env.run(&["--store", &store, "list", "--search", "smith", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let items: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let names: Vec<&str> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["display_name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Sam Smith"), "{names:?}");
    assert!(names.iter().all(|n| n.to_lowercase().contains("smith")));
}

#[test]
fn rotate_prints_only_the_key_the_store_then_holds() {
    let env = Env::new();
    let store = env.sample_store();
    let out = env.run(&["rotate", "101", "--yes", "--store", &store]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let key = text.strip_suffix('\n').unwrap();
    assert_eq!(key.len(), 32);
    assert!(key.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(stored_key(&env.store(), 101).as_deref(), Some(key));
    assert!(!stderr(&out).contains(key), "the key must not reach stderr");
    // Unique: no other contact holds it.
    let n: i64 = rusqlite::Connection::open(env.store())
        .unwrap()
        .query_row(
            "SELECT count(*) FROM civicrm_contact WHERE api_key = ? COLLATE NOCASE",
            [key],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn rotate_json_shape() {
    let env = Env::new();
    let store = env.sample_store();
    let out = env.run(&["rotate", "102", "--yes", "--json", "--store", &store]);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["contact_id"], 102);
    assert_eq!(
        stored_key(&env.store(), 102).as_deref(),
        doc["key"].as_str()
    );
}

#[test]
fn rotate_without_a_terminal_needs_yes() {
    let env = Env::new();
    let store = env.sample_store();
    let before = stored_key(&env.store(), 101);
    let out = env.run(&["rotate", "101", "--store", &store]);
    assert_eq!(out.status.code(), Some(5));
    assert!(stderr(&out).contains("--yes"));
    assert!(out.stdout.is_empty());
    assert_eq!(stored_key(&env.store(), 101), before);
}

#[test]
fn exit_codes_for_not_found_and_bad_store() {
    let env = Env::new();
    let store = env.sample_store();
    let out = env.run(&["rotate", "999999", "--yes", "--store", &store]);
    assert_eq!(out.status.code(), Some(4));
    assert!(stderr(&out).contains("999999"));

    let bad = env.dir.path().join("notes.txt");
    fs::write(&bad, "not a database\n").unwrap();
    fs::set_permissions(&bad, fs::Permissions::from_mode(0o600)).unwrap();
    let out = env.run(&["list", "--store", &format!("sqlite:{}", bad.display())]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a SQLite database"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read_to_string(&bad).unwrap(), "not a database\n");

    let out = env.run(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn revoke_removes_the_key() {
    let env = Env::new();
    let store = env.sample_store();
    assert!(stored_key(&env.store(), 101).is_some());
    let out = env.run(&["revoke", "101", "--yes", "--store", &store]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stored_key(&env.store(), 101), None);
}

#[test]
fn read_only_flag_refuses_rotation() {
    let env = Env::new();
    let store = env.sample_store();
    let before = stored_key(&env.store(), 101);
    let out = env.run(&["rotate", "101", "--yes", "--read-only", "--store", &store]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert_eq!(stored_key(&env.store(), 101), before);
}

#[test]
fn tui_needs_a_terminal() {
    let env = Env::new();
    env.sample_store();
    let out = env.run(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("terminal"));
}

#[test]
fn profiles_lists_names_never_secrets() {
    let env = Env::new();
    let dir = env.dir.path();
    let key_file = dir.join("api.key");
    fs::write(&key_file, "AdminKeyAdminKeyAdminKey0123456\n").unwrap();
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.join("config/civikey/config.toml");
    fs::create_dir_all(config.parent().unwrap()).unwrap();
    fs::write(
        &config,
        format!(
            "default_profile = \"api\"\n[profiles.api]\nkind = \"civicrm-rest\"\naddress = \"https://crm.example.org\"\napi_key_file = \"{}\"\n",
            key_file.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&config, fs::Permissions::from_mode(0o600)).unwrap();
    let out = env.run(&["profiles"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("* api") && text.contains("civicrm-rest") && text.contains("api.key"),
        "{text}"
    );
    assert!(!text.contains("AdminKey"), "a secret was printed");
    let out = env.run(&["profiles", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc[0]["name"], "api");
    assert!(!stdout(&out).contains("AdminKey"));
    fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
    let out = env.run(&["profiles"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
}

#[test]
fn completions_and_man_page_come_from_the_clap_definitions() {
    let env = Env::new();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef civikey"),
        ("fish", "complete -c civikey"),
    ] {
        let out = env.run(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let text = stdout(&out);
        assert!(
            text.contains(marker),
            "{shell}: {}",
            &text[..text.len().min(200)]
        );
        for command in ["rotate", "assign", "revoke", "audit", "profiles"] {
            assert!(text.contains(command), "{shell} completion lacks {command}");
        }
    }
    let out = env.run(&["man"]);
    assert!(out.status.success());
    let page = stdout(&out);
    assert!(page.contains(".TH civikey 1"));
    assert!(page.contains("rotate"));
}

/// The journal's records for a contact: (action, outcome, error), oldest first.
fn journal_records(env: &Env, id: i64) -> Vec<(String, String, Option<String>)> {
    rusqlite::Connection::open(env.data_dir().join("audit.sqlite"))
        .unwrap()
        .prepare("SELECT action, outcome, error FROM audit WHERE contact_id = ? ORDER BY id")
        .unwrap()
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Finding 3 of the security review: `rotate --yes > /dev/full` and into a closed pipe
/// replaced the key and printed it nowhere. Now the old key is put back (journaled as
/// undo), the command says so and exits 1.
#[test]
fn a_key_that_cannot_be_delivered_is_taken_back() {
    use std::process::Stdio;
    let env = Env::new();
    env.sample_store();
    let cases: [(&str, &[&str]); 3] = [
        ("/dev/full", &["rotate", "101", "--yes"]),
        ("closed pipe", &["rotate", "102", "--yes"]),
        ("closed pipe", &["rotate", "103", "--yes", "--json"]),
    ];
    for (into, args) in cases {
        let id: i64 = args[1].parse().unwrap();
        let before = stored_key(&env.store(), id);
        let mut cmd = binary::civikey(env.dir.path());
        cmd.args(args).stderr(Stdio::piped());
        let out = if into == "/dev/full" {
            cmd.stdout(fs::File::create("/dev/full").unwrap())
                .output()
                .unwrap()
        } else {
            let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
            // The reader goes away before civikey writes: like `| true`.
            drop(child.stdout.take());
            child.wait_with_output().unwrap()
        };
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{into} {args:?}: {err}");
        assert!(
            err.contains("the old key was put back"),
            "{into} {args:?}: {err}"
        );
        assert_eq!(
            stored_key(&env.store(), id),
            before,
            "{into} {args:?}: the store kept a key nobody received"
        );
        let records = journal_records(&env, id);
        assert_eq!(records.len(), 2, "{records:?}");
        assert_eq!((&records[0].0[..], &records[0].1[..]), ("assign", "done"));
        assert!(
            records[0]
                .2
                .as_deref()
                .is_some_and(|e| e.contains("not delivered") && e.contains("put back")),
            "{records:?}"
        );
        assert_eq!((&records[1].0[..], &records[1].1[..]), ("undo", "done"));
    }
}

/// When the old key cannot be put back either, civikey says plainly that the contact holds
/// a key nobody has.
#[test]
fn a_failed_put_back_says_nobody_holds_the_key() {
    let env = Env::new();
    env.sample_store();
    let old = stored_key(&env.store(), 104).expect("contact 104 has a key in the sample");
    // A trigger (as a site might have) refuses to set this key again: the put-back fails.
    rusqlite::Connection::open(env.store())
        .unwrap()
        .execute_batch(&format!(
            "CREATE TRIGGER no_reuse BEFORE UPDATE OF api_key ON civicrm_contact
               WHEN NEW.api_key = '{old}' BEGIN SELECT RAISE(ABORT, 'no reuse'); END;"
        ))
        .unwrap();
    let out = binary::civikey(env.dir.path())
        .args(["rotate", "104", "--yes"])
        .stdout(fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("now holds a key nobody has") && err.contains("rotated again"),
        "{err}"
    );
    assert!(!err.contains(&old));
    let records = journal_records(&env, 104);
    assert!(
        records[0]
            .2
            .as_deref()
            .is_some_and(|e| e.contains("nobody holds this key")),
        "{records:?}"
    );
}
