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
use fake_civicrm::{FakeCivi, Mode, ADMIN_KEY};

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
    std::fs::write(&key, format!("{ADMIN_KEY}\n")).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut text = String::new();
    for (name, address) in profiles {
        if address.starts_with("sqlite:") {
            text.push_str(&format!(
                "[profiles.{name}]\nkind = \"sqlite\"\naddress = \"{address}\"\n\n"
            ));
        } else {
            text.push_str(&format!(
                "[profiles.{name}]\nkind = \"civicrm-rest\"\naddress = \"{address}\"\napi_key_file = \"{}\"\ntimeout_seconds = 30\n\n",
                key.display()
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
