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
    let out = env.run(
        &["assign", "103", "--key-stdin", "--yes"],
        Some(&key.to_lowercase()),
    );
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

/// HMAC-SHA256 of `key` under the journal's secret in `data`, hex (as the journal stores it).
fn fingerprint(data: &Path, key: &str) -> String {
    use hmac::Mac;
    let secret = fs::read(data.join("audit.key")).unwrap();
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&secret).unwrap();
    mac.update(key.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Finding 2 of the security review: with several civikeys rotating one contact at once,
/// each settled the others' records still in flight as if they had crashed, so "done"
/// records later showed as `unknown->not-applied`, `superseded` or `applied`. Runs
/// `PROCESSES` loops of `ROUNDS` rotations in parallel on one data folder, then checks that
/// every record's verdict matches what happened and what the store holds.
fn parallel_rotations_keep_every_verdict(
    home: &Path,
    store_args: &[&str],
    id: u64,
    current_key: &dyn Fn() -> Option<String>,
) {
    const PROCESSES: usize = 4;
    const ROUNDS: usize = 30;
    let data = home.join("data");
    let initial = current_key();
    let runs: Vec<Vec<Output>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..PROCESSES)
            .map(|_| {
                scope.spawn(|| {
                    (0..ROUNDS)
                        .map(|_| {
                            binary::civikey(home)
                                .args(store_args)
                                .args(["rotate", &id.to_string(), "--yes", "--json"])
                                .output()
                                .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut printed = Vec::new();
    let mut conflicts = 0;
    let mut replaced = 0;
    for out in runs.iter().flatten() {
        match out.status.code() {
            Some(0) => {
                let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                printed.push(doc["key"].as_str().unwrap().to_string());
            }
            // Another run replaced this run's key between its write and its read-back.
            Some(3) if text(&out.stderr).contains("replaced it before") => replaced += 1,
            Some(3) => conflicts += 1,
            other => panic!("exit {other:?}: {}", text(&out.stderr)),
        }
    }
    assert!(!printed.is_empty());

    let journal = rusqlite::Connection::open(data.join("audit.sqlite")).unwrap();
    type Row = (String, Option<String>, Option<String>, Option<String>);
    let records: Vec<Row> = journal
        .prepare(
            "SELECT outcome, reconciled, old_fp, new_fp FROM audit
              WHERE contact_id = ?1 AND action = 'assign' ORDER BY id",
        )
        .unwrap()
        .query_map([id as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (outcome, reconciled, _, _) in &records {
        assert!(
            matches!(outcome.as_str(), "done" | "conflict") && reconciled.is_none(),
            "a live writer's record was settled as crashed: {outcome} / {reconciled:?}"
        );
    }
    let done: Vec<&Row> = records.iter().filter(|r| r.0 == "done").collect();
    assert_eq!(
        done.len(),
        printed.len() + replaced,
        "one done record per key printed or replaced before its read-back"
    );
    // A conflict needs its intent written (changes caught earlier leave no record).
    assert!(records.len() - done.len() <= conflicts);
    // Compare-and-set makes the done records a chain from the first key to the stored one.
    let mut expected_old = initial.as_deref().map(|k| fingerprint(&data, k));
    for (_, _, old_fp, new_fp) in &done {
        assert_eq!(
            *old_fp, expected_old,
            "a done record replaced a key it did not hold"
        );
        expected_old = new_fp.clone();
    }
    let stored = current_key().expect("the contact has a key");
    assert_eq!(expected_old, Some(fingerprint(&data, &stored)));
    for key in &printed {
        let fp = fingerprint(&data, key);
        assert!(
            done.iter().any(|r| r.3.as_deref() == Some(fp.as_str())),
            "a printed key has no done record"
        );
    }
    // And as `civikey audit` shows them: no verdict but done or conflict.
    let out = binary::civikey(home)
        .args(store_args)
        .args(["audit", "--contact", &id.to_string(), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let entries: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for e in entries.as_array().unwrap() {
        assert!(e["reconciled"].is_null(), "{e}");
        assert!(e["outcome"] == "done" || e["outcome"] == "conflict", "{e}");
    }
}

#[test]
fn parallel_rotations_keep_every_verdict_true_sqlite() {
    let env = Env::new();
    let store = env.data().join("contacts.sqlite");
    let current = || {
        rusqlite::Connection::open(&store)
            .unwrap()
            .query_row(
                "SELECT api_key FROM civicrm_contact WHERE id = 110",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    parallel_rotations_keep_every_verdict(env.dir.path(), &[], 110, &current);
}

#[test]
fn parallel_rotations_keep_every_verdict_true_mariadb() {
    use civikey::secret::Secret;
    use civikey::store::mysql::open_connection;
    use civikey::store::mysql::MysqlOptions;
    use mysql::prelude::Queryable;
    let Ok(url) = std::env::var("CIVIKEY_TEST_MYSQL_URL") else {
        let reason = "CIVIKEY_TEST_MYSQL_URL is not set; start a server with: eval \"$(bash scripts/mariadb-test-server.sh)\"";
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{reason}");
        }
        let _ = writeln!(
            std::io::stderr(),
            "SKIP parallel_rotations_keep_every_verdict_true_mariadb: {reason}"
        );
        return;
    };
    let url = url.trim_end_matches('/').to_string();
    let password = std::env::var("CIVIKEY_TEST_MYSQL_PASSWORD").unwrap_or_default();
    let options = |db: &str| MysqlOptions {
        address: format!("{url}/{db}"),
        password: Some(Secret::new(password.clone())),
        table_prefix: String::new(),
        tls: civikey::store::mysql::MysqlTls::Auto,
        tls_ca_file: None,
        timeout: std::time::Duration::from_secs(10),
    };
    let db = format!("civikey_t_parallel_{}", std::process::id());
    let mut admin = open_connection(&options("information_schema")).unwrap();
    admin
        .query_drop(format!("CREATE DATABASE `{db}` CHARACTER SET utf8mb4"))
        .unwrap();
    struct DropDatabase<'a>(&'a mut mysql::Conn, String);
    impl Drop for DropDatabase<'_> {
        fn drop(&mut self) {
            let _ = self
                .0
                .query_drop(format!("DROP DATABASE IF EXISTS `{}`", self.1));
        }
    }
    let _cleanup = DropDatabase(&mut admin, db.clone());

    let home = tempfile::tempdir().unwrap();
    let address = format!("{url}/{db}");
    let seeded = binary::civikey(home.path())
        .args(["--store", &address, "seed", "--synthetic", "5"])
        .args(["--password-env", "CIVIKEY_TEST_MYSQL_PASSWORD"])
        .output()
        .unwrap();
    assert!(seeded.status.success(), "{}", text(&seeded.stderr));
    // The rotations read the password from ~/.my.cnf, as an operator's would.
    let cnf = home.path().join(".my.cnf");
    fs::write(&cnf, format!("[client]\npassword={password}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&cnf, fs::Permissions::from_mode(0o600)).unwrap();
    let current = || {
        let mut conn = open_connection(&options(&db)).unwrap();
        conn.query_first::<Option<String>, _>("SELECT api_key FROM civicrm_contact WHERE id = 3")
            .unwrap()
            .flatten()
    };
    parallel_rotations_keep_every_verdict(home.path(), &["--store", &address], 3, &current);
}

/// The lease itself: a record without an outcome whose writer still holds its lease is
/// left alone by another civikey; once that writer is gone, it is settled.
#[test]
fn a_record_of_a_live_writer_is_settled_only_after_it_is_gone() {
    let env = Env::new();
    let out = env.run(&["rotate", "101", "--yes"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let journal = rusqlite::Connection::open(env.data().join("audit.sqlite")).unwrap();
    // Another civikey, mid-write: its lease is held (here by this test) and its intent for
    // contact 101 has no outcome yet.
    let token = "0123456789abcdef0123456789abcdef";
    let lease = fs::File::create(env.data().join("leases").join(token)).unwrap();
    rustix::fs::flock(&lease, rustix::fs::FlockOperation::LockExclusive).unwrap();
    journal
        .execute(
            "INSERT INTO audit (time, operator, store, contact_id, contact_name, action,
                                old_fp, new_fp, writer)
             SELECT time, operator, store, contact_id, contact_name, 'assign', new_fp,
                    'feedfeed', ?1 FROM audit WHERE contact_id = 101",
            [token],
        )
        .unwrap();
    let planted = journal.last_insert_rowid();
    let verdict = || -> (Option<String>, Option<String>) {
        journal
            .query_row(
                "SELECT outcome, reconciled FROM audit WHERE id = ?",
                [planted],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    };
    // Looking at and rotating the contact would settle unsettled records: not this one.
    let out = env.run(&["rotate", "101", "--yes"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        verdict(),
        (None, None),
        "a live writer's record was settled"
    );
    // The writer dies (its lock goes with it): the next look settles the record.
    drop(lease);
    let out = env.run(&["rotate", "101", "--yes"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        verdict(),
        (Some("unknown".into()), Some("superseded".into()))
    );
    assert!(
        !env.data().join("leases").join(token).exists(),
        "a dead writer's lease is cleared"
    );
    let leftover: Vec<_> = fs::read_dir(env.data().join("leases")).unwrap().collect();
    assert!(
        leftover.is_empty(),
        "civikey left its lease behind: {leftover:?}"
    );
}

/// civikeys starting together on a data folder without a journal all get the same journal
/// and secret (each used to find the other's half-made `audit.key` and refuse to run).
#[test]
fn civikeys_starting_together_share_one_new_journal() {
    for _ in 0..3 {
        let env = Env::new();
        assert!(!env.data().join("audit.key").exists());
        let outs: Vec<Output> = std::thread::scope(|scope| {
            let handles: Vec<_> = (101..109)
                .map(|id| {
                    let env = &env;
                    scope.spawn(move || env.run(&["rotate", &id.to_string(), "--yes"], None))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for out in &outs {
            assert!(out.status.success(), "{}", text(&out.stderr));
        }
        let journal = rusqlite::Connection::open(env.data().join("audit.sqlite")).unwrap();
        let done: i64 = journal
            .query_row(
                "SELECT count(*) FROM audit WHERE outcome = 'done'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(done, 8);
        let names: Vec<String> = fs::read_dir(env.data())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("audit.key"))
            .collect();
        assert_eq!(names, vec!["audit.key".to_string()], "temporary files left");
    }
}
