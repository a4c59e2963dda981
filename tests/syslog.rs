//! An audit trail others can see: with `syslog = true` every journal record goes to the
//! syslog socket as one line (never a key), a socket that cannot be written never stops a
//! rotation and is said once; `audit --since` and `--format jsonl`.

mod binary;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use civikey::key::ApiKey;
use civikey::seed::SeedContact;
use civikey::store::sqlite::SqliteStore;

const OLD_KEY: &str = "xM4qT9vB2nL7kP3wZ8rY5cF1hJ6dG0sA";

fn setup(home: &Path, syslog: &str) -> PathBuf {
    let store = home.join("a.sqlite");
    SqliteStore::create(
        &store,
        vec![SeedContact {
            id: Some(1),
            contact_type: "Individual".into(),
            display_name: "Ann Smith".into(),
            sort_name: "Smith, Ann".into(),
            api_key: Some(ApiKey::from_store(OLD_KEY.into())),
            ..SeedContact::default()
        }],
        &mut |_| {},
    )
    .unwrap();
    let path = home.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "{syslog}default_profile = \"site-a\"\n[profiles.site-a]\nkind = \"sqlite\"\naddress = \"sqlite:{}\"\n",
            store.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn run(home: &Path, config: &Path, args: &[&str]) -> Output {
    binary::civikey(home)
        .env("CIVIKEY_CONFIG", config)
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn every_journal_record_reaches_the_syslog_socket_without_the_key() {
    let home = tempfile::tempdir().unwrap();
    let socket_path = home.path().join("log.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let config = setup(
        home.path(),
        &format!(
            "syslog = true\nsyslog_socket = \"{}\"\n",
            socket_path.display()
        ),
    );
    let out = run(home.path(), &config, &["rotate", "1", "--yes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let new_key = text(&out.stdout).trim().to_string();
    let mut lines = Vec::new();
    let mut buf = [0u8; 4096];
    while lines.len() < 2 {
        let n = socket.recv(&mut buf).expect("a syslog line");
        lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let (intent, outcome) = (&lines[0], &lines[1]);
    for line in [intent, outcome] {
        assert!(line.starts_with("<37>"), "auth.notice: {line}");
        assert!(line.contains(" civikey["), "{line}");
        assert!(
            line.contains("profile=site-a")
                && line.contains("contact=1 ")
                && line.contains("action=assign")
                && line.contains("operator="),
            "{line}"
        );
        assert!(
            !line.contains(OLD_KEY) && !line.contains(&new_key),
            "{line}"
        );
    }
    assert!(intent.contains("phase=intent") && intent.contains("outcome=in-flight"));
    assert!(outcome.contains("phase=outcome") && outcome.contains("outcome=done"));
    // The fingerprint prefixes the journal shows.
    let out = run(home.path(), &config, &["audit", "--format", "jsonl"]);
    let record: serde_json::Value =
        serde_json::from_str(text(&out.stdout).lines().next().unwrap()).unwrap();
    let new_fp = record["new_fingerprint"].as_str().unwrap();
    assert!(outcome.contains(&format!("new_fp={new_fp}")), "{outcome}");
    assert!(outcome.contains(&format!(
        "time={}",
        record["time_rfc3339"].as_str().unwrap()
    )));
}

#[test]
fn a_syslog_that_cannot_be_written_never_stops_a_rotation_and_is_said_once() {
    let home = tempfile::tempdir().unwrap();
    let config = setup(
        home.path(),
        &format!(
            "syslog = true\nsyslog_socket = \"{}\"\n",
            home.path().join("no-such.sock").display()
        ),
    );
    let out = run(home.path(), &config, &["rotate", "1", "--yes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr.matches("the system log").count(),
        1,
        "said once: {stderr}"
    );
    assert!(stderr.contains("could not be written"), "{stderr}");
}

#[test]
fn audit_since_and_jsonl() {
    let home = tempfile::tempdir().unwrap();
    let config = setup(home.path(), "");
    for _ in 0..2 {
        let out = run(home.path(), &config, &["rotate", "1", "--yes"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let out = run(home.path(), &config, &["audit", "--format", "jsonl"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let records: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    assert!(records[0]["time_rfc3339"].as_str().unwrap().ends_with('Z'));
    let out = run(home.path(), &config, &["audit", "--since", "1h", "--json"]);
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2);
    let out = run(
        home.path(),
        &config,
        &[
            "audit",
            "--since",
            "2999-01-01T00:00:00Z",
            "--format",
            "jsonl",
        ],
    );
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let out = run(home.path(), &config, &["audit", "--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(2), "a bad time is a usage error");
}
