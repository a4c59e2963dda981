//! Many sites from one terminal (`--all-profiles`): the fleet health check (one line or one
//! JSON object per profile, a summary, exit 6/1, a hung site timed out alone), a person's
//! contacts found, revoked and rotated across profiles in one confirm.

mod binary;
mod fake_civicrm;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use civikey::key::ApiKey;
use civikey::seed::SeedContact;
use civikey::store::sqlite::SqliteStore;
use fake_civicrm::{FakeCivi, Mode, ADMIN_KEY, SITE_KEY};

const GOOD: [&str; 3] = [
    "xM4qT9vB2nL7kP3wZ8rY5cF1hJ6dG0sA",
    "pR7nW2kX9mQ4tV8bZ3cL6hY1fJ5gD0sE",
    "uH3yN8rT2wK6mP9qB4xV7cL1zF5jG0dA",
];
/// Weak: `check` flags it (`weak`).
const WEAK: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn person(id: i64, name: &str, email: &str, key: Option<&str>) -> SeedContact {
    SeedContact {
        id: Some(id),
        contact_type: "Individual".into(),
        display_name: name.into(),
        sort_name: name.into(),
        email: Some(email.into()),
        api_key: key.map(|k| ApiKey::from_store(k.into())),
        uf_id: Some(id + 100),
        roles: vec!["api client".into()],
        ..SeedContact::default()
    }
}

fn sqlite(home: &Path, name: &str, contacts: Vec<SeedContact>) -> String {
    let path = home.join(format!("{name}.sqlite"));
    SqliteStore::create(&path, contacts, &mut |_| {}).unwrap();
    format!("sqlite:{}", path.display())
}

/// A config of `profiles` (name, address); REST ones log in with the fake's admin key.
fn config(home: &Path, profiles: &[(&str, String)]) -> PathBuf {
    let key = home.join("admin.key");
    let site_key = home.join("site.key");
    for (path, secret) in [(&key, ADMIN_KEY), (&site_key, SITE_KEY)] {
        std::fs::write(path, format!("{secret}\n")).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut text = String::new();
    for (name, address) in profiles {
        if address.starts_with("sqlite:") {
            text.push_str(&format!(
                "[profiles.{name}]\nkind = \"sqlite\"\naddress = \"{address}\"\n\n"
            ));
        } else {
            text.push_str(&format!(
                "[profiles.{name}]\nkind = \"civicrm-rest\"\naddress = \"{address}\"\napi_key_file = \"{}\"\nsite_key_file = \"{}\"\ntimeout_seconds = 30\n\n",
                key.display(),
                site_key.display()
            ));
        }
    }
    let path = home.join("config.toml");
    std::fs::write(&path, text).unwrap();
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
fn fleet_check_gives_one_line_per_profile_a_summary_and_the_exit_code() {
    let home = tempfile::tempdir().unwrap();
    let clean = sqlite(
        home.path(),
        "clean",
        vec![person(1, "Ann Clean", "ann@example.org", Some(GOOD[0]))],
    );
    let flagged = sqlite(
        home.path(),
        "flagged",
        vec![
            person(1, "Bob Weak", "bob@example.org", Some(WEAK)),
            person(2, "Cat Fine", "cat@example.org", Some(GOOD[1])),
        ],
    );
    let slow = FakeCivi::start(vec![person(
        5,
        "Dan Slow",
        "dan@example.org",
        Some(GOOD[2]),
    )]);
    slow.set_mode(Mode::Slow(Duration::from_secs(20)));
    let profiles = vec![
        ("a-clean", clean.clone()),
        ("b-flagged", flagged),
        ("c-gone", "http://127.0.0.1:9".to_string()),
        ("d-slow", slow.url()),
    ];
    let cfg = config(home.path(), &profiles);
    let started = Instant::now();
    let out = run(
        home.path(),
        &cfg,
        &["check", "--all-profiles", "--timeout", "3"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the slow site held the run: {:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(
        lines[0].starts_with("a-clean") && lines[0].contains(" ok "),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("b-flagged")
            && lines[1].contains("FINDINGS")
            && lines[1].contains("1 critical")
            && lines[1].contains("1 weak"),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with("c-gone") && lines[2].contains("could not be checked"),
        "{stdout}"
    );
    assert!(
        lines[3].starts_with("d-slow") && lines[3].contains("no answer within 3 s"),
        "{stdout}"
    );
    assert!(
        text(&out.stderr)
            .contains("4 profiles: 1 with findings (1 finding), 2 could not be checked, 1 clean"),
        "{}",
        text(&out.stderr)
    );
    assert!(!stdout.contains(WEAK) && !text(&out.stderr).contains(WEAK));

    // --json: one object per profile, one per line.
    let out = run(
        home.path(),
        &cfg,
        &["check", "--all-profiles", "--json", "--timeout", "3"],
    );
    assert_eq!(out.status.code(), Some(6));
    let docs: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let statuses: Vec<&str> = docs.iter().map(|d| d["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["ok", "findings", "unchecked", "timeout"]);
    assert_eq!(docs[1]["profile"], "b-flagged");
    assert_eq!(docs[1]["findings"][0]["code"], "weak");
    assert_eq!(docs[1]["by_severity"]["critical"], 1);

    // No findings anywhere, one site unreachable: exit 1.
    let cfg = config(
        home.path(),
        &[("a-clean", clean), ("c-gone", "http://127.0.0.1:9".into())],
    );
    let out = run(home.path(), &cfg, &["check", "--all-profiles"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
}

/// The key a SQLite store holds for contact `id`.
fn sqlite_key(address: &str, id: i64) -> Option<String> {
    let path = address.strip_prefix("sqlite:").unwrap();
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(
        "SELECT api_key FROM civicrm_contact WHERE id = ?1",
        [id],
        |r| r.get::<_, Option<String>>(0),
    )
    .unwrap()
    .filter(|k| !k.is_empty())
}

/// Ann (ann@example.org) holds a key on three sites (two SQLite, one REST) under three ids,
/// a namesake with another email does not count, and a fourth site is unreachable.
fn three_sites(home: &Path) -> (String, String, FakeCivi, PathBuf) {
    let a = sqlite(
        home,
        "a",
        vec![
            person(1, "Ann Smith", "ann@example.org", Some(GOOD[0])),
            person(2, "Ann Smith", "ann.smith@example.org", Some(GOOD[1])),
        ],
    );
    let b = sqlite(
        home,
        "b",
        vec![
            person(7, "Bob Other", "bob@example.org", Some(GOOD[2])),
            person(8, "A. Smith", "ANN@example.org", Some(GOOD[1])),
        ],
    );
    let c = FakeCivi::start(vec![person(
        40,
        "Ann Smith",
        "ann@example.org",
        Some(GOOD[2]),
    )]);
    let cfg = config(
        home,
        &[
            ("site-a", a.clone()),
            ("site-b", b.clone()),
            ("site-c", c.url()),
            ("site-d", "http://127.0.0.1:9".into()),
        ],
    );
    (a, b, c, cfg)
}

#[test]
fn a_person_is_found_and_revoked_on_every_site_in_one_run() {
    let home = tempfile::tempdir().unwrap();
    let (a, b, c, cfg) = three_sites(home.path());
    let out = run(
        home.path(),
        &cfg,
        &["list", "--email", "ann@example.org", "--all-profiles"],
    );
    assert_eq!(out.status.code(), Some(1), "site-d could not be searched");
    let stdout = text(&out.stdout);
    let rows: Vec<(&str, &str)> = stdout
        .lines()
        .map(|l| {
            let mut cells = l.split_whitespace();
            (cells.next().unwrap(), cells.next().unwrap())
        })
        .collect();
    assert_eq!(
        rows,
        [("site-a", "1"), ("site-b", "8"), ("site-c", "40")],
        "{stdout}"
    );
    assert!(text(&out.stderr).contains("site-d: could not be searched"));
    let out = run(
        home.path(),
        &cfg,
        &["list", "--search", "ann", "--all-profiles", "--json"],
    );
    let docs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let found: Vec<(String, u64)> = docs
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["profile"].as_str().unwrap().into(),
                d["id"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("site-a".into(), 1),
            ("site-a".into(), 2),
            ("site-c".into(), 40)
        ]
    );

    // Without --yes and without a terminal: refused, nothing written.
    let out = run(
        home.path(),
        &cfg,
        &["revoke", "--email", "ann@example.org", "--all-profiles"],
    );
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(sqlite_key(&a, 1).is_some());

    let out = run(
        home.path(),
        &cfg,
        &[
            "revoke",
            "--email",
            "ann@example.org",
            "--all-profiles",
            "--yes",
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("revoked 3 keys of ann@example.org"),
        "{stderr}"
    );
    assert!(stderr.contains("site-d: not searched"), "{stderr}");
    assert_eq!(sqlite_key(&a, 1), None);
    assert_eq!(sqlite_key(&a, 2).as_deref(), Some(GOOD[1]), "another email");
    assert_eq!(sqlite_key(&b, 8), None);
    assert_eq!(sqlite_key(&b, 7).as_deref(), Some(GOOD[2]));
    assert_eq!(c.key_of(40), None);
    // Journaled per profile, under its own store.
    let out = run(home.path(), &cfg, &["audit", "--all-stores", "--json"]);
    let entries: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut revokes: Vec<String> = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "revoke" && e["outcome"] == "done")
        .map(|e| e["profile"].as_str().unwrap().to_string())
        .collect();
    revokes.sort();
    assert_eq!(revokes, ["site-a", "site-b", "site-c"]);
}

#[test]
fn a_persons_keys_are_rotated_on_every_site_into_one_private_file() {
    let home = tempfile::tempdir().unwrap();
    let (a, b, c, cfg) = three_sites(home.path());
    let keys = home.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700)).unwrap();
    let file = keys.join("ann.csv");
    let out = run(
        home.path(),
        &cfg,
        &[
            "rotate",
            "--email",
            "ann@example.org",
            "--all-profiles",
            "--out",
            file.to_str().unwrap(),
            "--yes",
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "site-d: {stderr}");
    assert!(stderr.contains("rotated 3 keys"), "{stderr}");
    assert!(out.stdout.is_empty(), "keys never reach stdout");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let csv = std::fs::read_to_string(&file).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("contact_id,display_name,email,api_key,profile")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 3, "{csv}");
    for row in &rows {
        let (id, key, profile) = (row[0].parse::<i64>().unwrap(), row[3], row[4]);
        let held = match profile {
            "site-a" => sqlite_key(&a, id),
            "site-b" => sqlite_key(&b, id),
            "site-c" => c.key_of(id as u64),
            other => panic!("{other}"),
        };
        assert_eq!(held.as_deref(), Some(key), "{profile} {id}");
        assert!(!GOOD.contains(&key));
    }
    assert_eq!(sqlite_key(&a, 2).as_deref(), Some(GOOD[1]), "untouched");
    // The audit finds every key delivered (a profile's row is its own).
    let out = run(home.path(), &cfg, &["audit", "--all-stores"]);
    assert!(!text(&out.stdout).contains("KEY-NOT-DELIVERED"));
}

fn run_with_stdin(home: &Path, config: &Path, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = binary::civikey(home)
        .env("CIVIKEY_CONFIG", config)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn whose_tells_a_retired_keys_past_from_the_journal() {
    let home = tempfile::tempdir().unwrap();
    let a = sqlite(
        home.path(),
        "a",
        vec![person(1, "Ann Smith", "ann@example.org", Some(GOOD[0]))],
    );
    let cfg = config(home.path(), &[("site-a", a)]);
    let rotate = || {
        let out = run(
            home.path(),
            &cfg,
            &["--profile", "site-a", "rotate", "1", "--yes"],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    };
    let first = rotate();
    let second = rotate();
    let out = run_with_stdin(
        home.path(),
        &cfg,
        &["whose", "--key-stdin", "--all-profiles"],
        &format!("{first}\n"),
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("not held now"), "{stdout}");
    let past = stdout
        .lines()
        .find(|l| l.contains("set on contact 1 (Ann Smith, profile site-a) on 20"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        past.contains(", replaced on 20") && past.contains("Z by "),
        "{past}"
    );
    assert!(!stdout.contains(&first) && !text(&out.stderr).contains(&first));
    // The key held now: its holder, and since when.
    let out = run_with_stdin(
        home.path(),
        &cfg,
        &["--profile", "site-a", "whose", "--key-stdin"],
        &format!("{second}\n"),
    );
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("not held now"), "{stdout}");
    assert!(stdout.contains("not replaced since"), "{stdout}");
    // A key never seen: nothing from the journal.
    let out = run_with_stdin(
        home.path(),
        &cfg,
        &["whose", "--key-stdin", "--all-profiles"],
        "NeverSeenNeverSeenNeverSeen00001\n",
    );
    assert_eq!(out.status.code(), Some(4));
    assert!(!text(&out.stdout).contains("journal"));
}
