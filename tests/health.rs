//! Key health (`civikey check`) and "whose key is this?" (`civikey whose`): each finding
//! code on planted cases and nothing else flagged (SQLite, and MariaDB when a test server
//! runs), the JSON shape, the exit codes, lookups on several profiles, and the key kept out
//! of every output and of the journal.

mod binary;
mod fake_civicrm;

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use civikey::audit::{Actor, Journal};
use civikey::health::{self, Code, Options, Report};
use civikey::key::{ApiKey, SeededKeySource};
use civikey::rotation::{self, Expectation, NewKey};
use civikey::seed::SeedContact;
use civikey::store::sqlite::SqliteStore;
use civikey::store::ContactStore;

/// Keys that pass every rule, and the planted ones.
const GOOD: [&str; 6] = [
    "xM4qT9vB2nL7kP3wZ8rY5cF1hJ6dG0sA",
    "pR7nW2kX9mQ4tV8bZ3cL6hY1fJ5gD0sE",
    "uH3yN8rT2wK6mP9qB4xV7cL1zF5jG0dA",
    "eS9gK4pW7nR2tX6mQ8vB3cL5hY1zJ0fD",
    "bT6rN1wQ8kX3mV9pZ4cH7yL2fJ5gS0dE",
    "kY2mR7tW4nX9qP3vB8cL6hZ1fJ5gD0sU",
];
const DUP_UPPER: &str = "Kp3Vx9QlM2tZr8WyC4nBj6HfD1gSa7Eq";
const DUP_LOWER: &str = "kP3vX9qLm2TzR8wYc4NbJ6hFd1GsA7eQ";
const SHORT: &str = "abc12345";
const DOCS_KEY: &str = "T0PS3CR3T6ateeUXgTOJ9e3PpXvDZF9A";
const RUN: &str = "Q7wKx9AAAAAAm2Pz4RtY8vLnZ3cJ6hF1";

fn person(id: i64, name: &str, key: Option<&str>, uf: Option<i64>, roles: &[&str]) -> SeedContact {
    SeedContact {
        id: Some(id),
        contact_type: "Individual".into(),
        display_name: name.into(),
        sort_name: name.into(),
        email: Some(format!("c{id}@example.org")),
        api_key: key.map(|k| ApiKey::from_store(k.into())),
        uf_id: uf,
        roles: roles.iter().map(|r| r.to_string()).collect(),
        ..SeedContact::default()
    }
}

/// One planted case per contact; contact 1 and 12 are healthy, 9 has no key.
fn planted() -> Vec<SeedContact> {
    let api = &["api client"];
    let mut trashed = person(5, "Trashed Holder", Some(GOOD[1]), Some(50), api);
    trashed.is_deleted = true;
    vec![
        person(1, "Healthy Holder", Some(GOOD[0]), Some(10), api),
        person(2, "Dup Upper", Some(DUP_UPPER), Some(20), api),
        person(3, "Dup Lower", Some(DUP_LOWER), Some(30), api),
        person(4, "Short Key", Some(SHORT), Some(40), api),
        trashed,
        person(6, "No Account", Some(GOOD[2]), None, &[]),
        person(7, "Blocked User", Some(GOOD[3]), Some(70), api),
        person(
            8,
            "No Permission",
            Some(GOOD[4]),
            Some(80),
            &["authenticated"],
        ),
        person(9, "No Key", None, Some(90), api),
        person(10, "Docs Key", Some(DOCS_KEY), Some(100), api),
        person(11, "Run Key", Some(RUN), Some(110), api),
        person(12, "Admin", Some(GOOD[5]), Some(120), &["administrator"]),
    ]
}

/// The findings as (code, contact) pairs.
fn found(report: &Report) -> BTreeSet<(&'static str, u64)> {
    report
        .findings
        .iter()
        .map(|f| (f.code.as_str(), f.contact.id))
        .collect()
}

/// What must be found on the planted data, and nothing else; `standing_known`: the store
/// reads user accounts and roles (else a blocked user and a missing permission cannot be told).
fn expected(standing_known: bool) -> BTreeSet<(&'static str, u64)> {
    let mut set: BTreeSet<(&'static str, u64)> = [
        ("duplicate", 2),
        ("duplicate", 3),
        ("weak", 4),
        ("weak", 10),
        ("weak", 11),
        ("trashed", 5),
        ("no_user_account", 6),
    ]
    .into_iter()
    .collect();
    if standing_known {
        set.insert(("user_blocked", 7));
        set.insert(("no_api_login_permission", 8));
    }
    set
}

fn sqlite_store(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("planted.sqlite");
    SqliteStore::create(&path, planted(), &mut |_| {}).unwrap();
    // Contact 7's user is blocked (Standalone: civicrm_uf_match.is_active = 0).
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE civicrm_uf_match SET is_active = 0 WHERE contact_id = 7",
            [],
        )
        .unwrap();
    path
}

fn check(
    store: &mut dyn ContactStore,
    journal: Option<&Journal>,
    max_age: Option<u32>,
    now: i64,
) -> Report {
    health::check(
        store,
        journal,
        Options {
            max_age_days: max_age,
            now,
        },
        &mut |_, _| {},
    )
    .unwrap()
}

fn rules(report: &Report) -> BTreeSet<(u64, &'static str)> {
    report
        .findings
        .iter()
        .filter_map(|f| f.rule.map(|r| (f.contact.id, r.as_str())))
        .collect()
}

fn assert_planted_cases(store: &mut dyn ContactStore) {
    let standing_known = store.standing(8).unwrap().roles.is_some();
    let report = check(store, None, None, 0);
    assert_eq!(found(&report), expected(standing_known), "{report:#?}");
    assert_eq!(report.holders, 11, "every key holder, the trashed one too");
    assert_eq!(
        rules(&report),
        [(4, "short"), (10, "known_sample"), (11, "run")]
            .into_iter()
            .collect(),
        "each weak finding names its rule"
    );
    let dup = report
        .findings
        .iter()
        .find(|f| f.code == Code::Duplicate && f.contact.id == 3)
        .unwrap();
    assert_eq!(dup.holders, [2, 3], "all holders of the shared key");
    assert!(dup.detail.contains("contact 2"), "{}", dup.detail);
    // Most severe first.
    let severities: Vec<_> = report.findings.iter().map(|f| f.code.severity()).collect();
    let mut sorted = severities.clone();
    sorted.sort();
    assert_eq!(severities, sorted);
    // Masks only: no finding's text holds a key.
    let text = format!("{report:?}");
    for key in GOOD.iter().chain([&DUP_UPPER, &DUP_LOWER, &DOCS_KEY, &RUN]) {
        assert!(!text.contains(key), "a key in the report");
    }
}

#[test]
fn sqlite_each_planted_case_is_found_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&sqlite_store(dir.path())).unwrap();
    assert!(
        store.standing(8).unwrap().roles.is_some(),
        "SQLite reads roles"
    );
    assert_planted_cases(&mut store);
}

#[test]
fn duplicates_are_compared_as_the_store_compares() {
    // Without case on SQLite's NOCASE index (as on MySQL's _ci collations); the two keys
    // differ in every letter's case, so a byte comparison would find nothing.
    assert_ne!(DUP_UPPER, DUP_LOWER);
    assert!(DUP_UPPER.eq_ignore_ascii_case(DUP_LOWER));
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&sqlite_store(dir.path())).unwrap();
    assert!(store.info().keys_case_insensitive);
    let report = check(&mut store, None, None, 0);
    assert_eq!(report.count(Code::Duplicate), 2);
}

#[test]
fn ages_come_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let path = sqlite_store(dir.path());
    let mut store = SqliteStore::open(&path).unwrap();
    let actor = Actor {
        operator: "tester".into(),
        store: store.info().location.to_string(),
        ..Actor::default()
    };
    let mut journal = Journal::open(&dir.path().join("data"), actor).unwrap();
    let mut keys = SeededKeySource::new(5);
    let new = ApiKey::generate_from(&mut keys).unwrap();
    let seen = store.contact(1).unwrap().key;
    rotation::assign(
        &mut store,
        &mut journal,
        &mut keys,
        1,
        &Expectation::Seen(seen),
        NewKey::Generated(new),
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let ages = |report: &Report| -> BTreeSet<(&'static str, u64)> {
        found(report)
            .into_iter()
            .filter(|(code, _)| matches!(*code, "old" | "age_unknown"))
            .collect()
    };
    // Today: contact 1's key is new; every other key was never set by civikey.
    let report = check(&mut store, Some(&journal), Some(90), now);
    let unknown: BTreeSet<_> = [2, 3, 4, 5, 6, 7, 8, 10, 11, 12]
        .into_iter()
        .map(|id| ("age_unknown", id))
        .collect();
    assert_eq!(ages(&report), unknown);
    // 100 days on, it is old.
    let later = check(&mut store, Some(&journal), Some(90), now + 100 * 86_400);
    let mut expected = unknown.clone();
    expected.insert(("old", 1));
    assert_eq!(ages(&later), expected);
    let old = later.findings.iter().find(|f| f.code == Code::Old).unwrap();
    assert!(old.detail.contains("100 days ago"), "{}", old.detail);
    // Changed outside civikey since: its age is unknown again, not "new".
    let outside = ApiKey::from_store(GOOD[0].into());
    let current = store.read_key(1).unwrap();
    store.swap_key(1, current.as_ref(), Some(&outside)).unwrap();
    let report = check(&mut store, Some(&journal), Some(90), now);
    let mut expected = unknown;
    expected.insert(("age_unknown", 1));
    assert_eq!(ages(&report), expected);
    // Without --max-age no age is judged; nor without a journal (never guessed "unknown").
    assert!(ages(&check(&mut store, Some(&journal), None, now)).is_empty());
    let blind = check(&mut store, None, Some(90), now);
    assert!(ages(&blind).is_empty());
    assert_eq!(
        blind.max_age_days, None,
        "the summary says ages were not checked"
    );
}

// ---- REST (the fake API v4 site) -------------------------------------------------------

#[test]
fn rest_each_planted_case_is_found_paging_with_progress() {
    use civikey::secret::Secret;
    use civikey::store::rest::RestOptions;
    use civikey::store::rest::RestStore;
    let server = fake_civicrm::FakeCivi::start(planted());
    server.state().user_of_mut(7).unwrap().active = false;
    let mut store = RestStore::connect(&RestOptions {
        base_url: server.url(),
        api_key: ApiKey::from_store(fake_civicrm::ADMIN_KEY.into()),
        site_key: Some(Secret::new(fake_civicrm::SITE_KEY.into())),
        timeout: Duration::from_secs(10),
    })
    .unwrap();
    assert!(
        store.standing(8).unwrap().roles.is_some(),
        "User.get and Role.get"
    );
    assert_planted_cases(&mut store);
    // Paged through `api_key IS NOT NULL`, the running count reported after each page.
    let mut counts = Vec::new();
    let mut page = None;
    loop {
        let got = store.key_holders(page.as_ref(), 4).unwrap();
        counts.push(got.holders.len());
        match got.next {
            Some(next) => page = Some(next),
            None => break,
        }
    }
    assert_eq!(counts, [4, 4, 3]);
    let mut progress = Vec::new();
    health::check(&mut store, None, Options::default(), &mut |n, _| {
        progress.push(n)
    })
    .unwrap();
    assert_eq!(progress.last(), Some(&11));
    let state = server.state();
    assert!(state
        .requests
        .iter()
        .all(|r| !r.target.contains(GOOD[0]) && r.method == "POST"));
}

/// A site with 1,250 key holders (more than a page of ids, 200, and than the old page of
/// holders, 1,000): the whole check in five requests, the store's probe of whether it may
/// see every user (a one-row Role.get), every user in one User.get, every role in one
/// Role.get, the highest id in one Contact.get, then the holders' one window in one
/// Contact.get with their CMS links joined; no request per chunk of holders. The users'
/// calls go beside the holders' (in any order between them). The findings are judged as
/// the holders come.
#[test]
fn rest_reads_the_whole_site_in_five_requests() {
    use civikey::store::rest::{RestOptions, RestStore};
    let mut contacts = planted();
    for id in 100..1350 {
        let key = ApiKey::generate().unwrap().expose().to_string();
        let uf = (id % 2 == 0).then_some(id + 10_000);
        contacts.push(person(
            id,
            &format!("Holder {id}"),
            Some(&key),
            uf,
            &["api client"],
        ));
    }
    let server = fake_civicrm::FakeCivi::start(contacts);
    server.state().user_of_mut(7).unwrap().active = false;
    let mut store = RestStore::connect(&RestOptions {
        base_url: server.url(),
        api_key: ApiKey::from_store(fake_civicrm::ADMIN_KEY.into()),
        site_key: Some(civikey::secret::Secret::new(fake_civicrm::SITE_KEY.into())),
        timeout: Duration::from_secs(30),
    })
    .unwrap();
    let before = server.state().requests.len();
    let mut batches = 0;
    let report = health::check(&mut store, None, Options::default(), &mut |_, found| {
        batches += 1;
        assert!(found.iter().all(|f| f.code.as_str() != "duplicate"));
    })
    .unwrap();
    assert_eq!(report.holders, 1261);
    assert_eq!(batches, 1);
    let mut calls: Vec<String> = server.state().requests[before..]
        .iter()
        .map(|r| r.call.clone())
        .collect();
    calls.sort();
    assert_eq!(
        calls,
        [
            "Contact/get",
            "Contact/get",
            "Role/get",
            "Role/get",
            "User/get"
        ],
        "{calls:?}"
    );
    let found = found(&report);
    // The planted cases, and the odd ids' missing accounts.
    for case in expected(true) {
        assert!(found.contains(&case), "{case:?}");
    }
    let no_account = report.count(Code::NoUserAccount);
    assert_eq!(no_account, 1 + 625, "contact 6 and the odd ids");
}

// ---- MariaDB -------------------------------------------------------------------------

const URL_VAR: &str = "CIVIKEY_TEST_MYSQL_URL";
const PASSWORD_VAR: &str = "CIVIKEY_TEST_MYSQL_PASSWORD";

/// The test server, or None after a visible SKIP (a failure under CI=true).
fn mysql_server() -> Option<(String, String)> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => Some((
            url.trim_end_matches('/').to_string(),
            std::env::var(PASSWORD_VAR).unwrap_or_default(),
        )),
        _ => {
            let reason = format!("{URL_VAR} is not set; start a server with: eval \"$(bash scripts/mariadb-test-server.sh)\"");
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{reason}");
            }
            let _ = writeln!(std::io::stderr(), "SKIP health mariadb: {reason}");
            None
        }
    }
}

fn mysql_options(address: String, password: &str) -> civikey::store::mysql::MysqlOptions {
    civikey::store::mysql::MysqlOptions {
        address,
        password: Some(civikey::secret::Secret::new(password.to_string())),
        table_prefix: String::new(),
        tls: civikey::store::mysql::MysqlTls::Auto,
        tls_ca_file: None,
        timeout: Duration::from_secs(20),
    }
}

#[test]
fn mariadb_each_planted_case_is_found_and_nothing_else() {
    use civikey::store::mysql::{insert_contacts, install_schema, open_connection, MysqlStore};
    use mysql::prelude::Queryable;
    let Some((url, password)) = mysql_server() else {
        return;
    };
    let db = format!("civikey_health_{}", std::process::id());
    let mut admin = open_connection(&mysql_options(
        format!("{url}/information_schema"),
        &password,
    ))
    .unwrap();
    admin
        .query_drop(format!(
            "CREATE DATABASE `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        ))
        .unwrap();
    let options = mysql_options(format!("{url}/{db}"), &password);
    let result = std::panic::catch_unwind(|| {
        let mut conn = open_connection(&options).unwrap();
        install_schema(&mut conn, "").unwrap();
        insert_contacts(&mut conn, "", planted(), &mut |_| {}).unwrap();
        // A Standalone site's users and roles, as CiviCRM creates them: users are
        // civicrm_uf_match rows (username, is_active), roles hold their permissions.
        // Contact 7's user is blocked; contact 8's only role lacks 'authenticate with api key'.
        conn.query_drop(
            "ALTER TABLE civicrm_uf_match ADD COLUMN username varchar(60) NULL,
                 ADD COLUMN is_active tinyint NOT NULL DEFAULT 1;
             CREATE TABLE civicrm_role (id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
                 name varchar(60) NOT NULL, label varchar(128) NULL, permissions text NULL,
                 is_active tinyint NOT NULL DEFAULT 1);
             CREATE TABLE civicrm_user_role (id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
                 user_id int unsigned NOT NULL, role_id int unsigned NOT NULL);
             INSERT INTO civicrm_role (name, label, permissions) VALUES
                 ('api client', 'API client', '[\"access CiviCRM\",\"authenticate with api key\"]'),
                 ('authenticated', 'Authenticated', '[\"access CiviCRM\"]'),
                 ('administrator', 'Administrator', '[\"all CiviCRM permissions and ACLs\"]');
             INSERT INTO civicrm_user_role (user_id, role_id)
                 SELECT u.id, r.id FROM civicrm_uf_match u JOIN civicrm_role r
                     ON r.name = CASE u.contact_id WHEN 8 THEN 'authenticated'
                                                   WHEN 12 THEN 'administrator'
                                                   ELSE 'api client' END;
             UPDATE civicrm_uf_match SET username = CONCAT('user', contact_id),
                 is_active = (contact_id <> 7);",
        )
        .unwrap();
        let mut store = MysqlStore::connect(&options).unwrap();
        assert!(
            store.info().keys_case_insensitive,
            "utf8mb4_unicode_ci compares without case"
        );
        assert!(
            store.standing(8).unwrap().roles.is_some(),
            "a Standalone-shaped database: users and roles are read, so every code can be found"
        );
        assert_planted_cases(&mut store);
    });
    admin.query_drop(format!("DROP DATABASE `{db}`")).unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

// ---- the binary ----------------------------------------------------------------------

fn run(home: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = binary::civikey(home);
    cmd.args(args);
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn all_keys() -> Vec<&'static str> {
    let mut keys: Vec<&str> = GOOD.to_vec();
    keys.extend([DUP_UPPER, DUP_LOWER, SHORT, DOCS_KEY, RUN]);
    keys
}

#[test]
fn check_exits_6_with_findings_and_0_once_they_are_fixed() {
    let home = tempfile::tempdir().unwrap();
    let path = sqlite_store(home.path());
    let store = format!("sqlite:{}", path.display());
    let out = run(home.path(), &["check", "--store", &store], None);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    // Into a pipe: the findings only, no header, no advice; the summary once, on stderr.
    assert_eq!(lines.len(), 9, "{stdout}");
    assert!(
        lines[0].starts_with("critical  duplicate"),
        "most severe first: {stdout}"
    );
    assert!(
        !stdout.contains("SEVERITY") && !stdout.contains("civikey check:"),
        "{stdout}"
    );
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr.matches("9 findings").count(),
        1,
        "the summary once: {stderr}"
    );
    assert!(
        stderr.contains("civikey check: 9 findings on 9 of 11 key holders"),
        "{stderr}"
    );
    for key in all_keys() {
        // The short key's last four characters are its mask; nothing more of any key.
        assert!(!stdout.contains(key) && !text(&out.stderr).contains(key));
    }
    assert!(
        stdout.contains("civikey revoke 5"),
        "what to do, as a command"
    );

    // Fix every finding as the TUI would (revoke or rotate, journaled), then: exit 0.
    let report = {
        let mut s = SqliteStore::open(&path).unwrap();
        check(&mut s, None, None, 0)
    };
    for f in &report.findings {
        let id = f.contact.id.to_string();
        let action = f.code.remedy().as_str();
        let out = run(
            home.path(),
            &["--store", &store, action, &id, "--yes"],
            None,
        );
        // A contact with two findings is fixed by the first.
        assert!(
            out.status.success() || text(&out.stderr).contains("no key"),
            "{action} {id}: {}",
            text(&out.stderr)
        );
    }
    let out = run(home.path(), &["check", "--store", &store], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("no findings on"));
    // --max-age 0d: every key is old, as the TUI's A with 0 lists them all.
    let out = run(
        home.path(),
        &["check", "--max-age", "0d", "--store", &store],
        None,
    );
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
}

#[test]
fn check_json_is_one_object_with_findings_and_summary() {
    let home = tempfile::tempdir().unwrap();
    let path = sqlite_store(home.path());
    let store = format!("sqlite:{}", path.display());
    let out = run(home.path(), &["check", "--json", "--store", &store], None);
    assert_eq!(out.status.code(), Some(6));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "one JSON document");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let findings = doc["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 9);
    let first = &findings[0];
    for field in [
        "code", "severity", "key", "detail", "remedy", "advice", "command",
    ] {
        assert!(first[field].is_string(), "{field}: {first}");
    }
    assert!(first["contact"]["id"].is_u64());
    assert!(first["key"].as_str().unwrap().starts_with("••••"));
    let dup = findings.iter().find(|f| f["code"] == "duplicate").unwrap();
    assert_eq!(dup["holders"], serde_json::json!([2, 3]));
    let weak: Vec<&str> = findings
        .iter()
        .filter(|f| f["code"] == "weak")
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(weak, ["short", "known_sample", "run"]);
    let summary = &doc["summary"];
    assert_eq!(summary["holders"], 11);
    assert_eq!(summary["findings"], 9);
    assert_eq!(summary["by_code"]["duplicate"], 2);
    assert_eq!(summary["by_code"]["old"], 0);
    assert!(summary["max_age_days"].is_null());
    for key in all_keys() {
        assert!(!stdout.contains(key));
    }
    // With --max-age: ages too (every key here was set outside civikey).
    let out = run(
        home.path(),
        &["check", "--json", "--max-age", "90d", "--store", &store],
        None,
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["summary"]["by_code"]["age_unknown"], 11);
    assert_eq!(doc["summary"]["max_age_days"], 90);
    let out = run(home.path(), &["check", "--max-age", "soon"], None);
    assert_eq!(out.status.code(), Some(2), "a bad age is a usage error");
}

#[test]
fn the_sample_store_shows_a_new_user_each_case() {
    let home = tempfile::tempdir().unwrap();
    let out = run(home.path(), &["check", "--json"], None);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let found: BTreeSet<(String, u64)> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["contact"]["id"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, u64)> = [
        ("duplicate", 145),
        ("duplicate", 146),
        ("weak", 147),
        ("trashed", 141),
        ("no_user_account", 103),
        ("no_api_login_permission", 104),
    ]
    .into_iter()
    .map(|(c, id)| (c.to_string(), id))
    .collect();
    assert_eq!(found, expected);
}

/// A config file (0600) with the given profiles.
fn config(home: &Path, profiles: &[(&str, String)], cv_binary: &Path) -> std::path::PathBuf {
    let mut text = String::new();
    for (name, address) in profiles {
        let kind = match address.split(':').next() {
            Some("sqlite") => "sqlite",
            Some("cv") => "cv",
            _ => "mysql",
        };
        text.push_str(&format!(
            "[profiles.{name}]\nkind = \"{kind}\"\naddress = \"{address}\"\n"
        ));
        if kind == "cv" {
            text.push_str(&format!("cv_binary = \"{}\"\n", cv_binary.display()));
        }
        text.push('\n');
    }
    let path = home.join("config.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn bytes_of_dir(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            all.extend(std::fs::read(&path).unwrap());
        }
    }
    all
}

#[test]
fn whose_finds_the_holder_on_the_right_profile_and_names_the_unreachable_one() {
    let home = tempfile::tempdir().unwrap();
    let holder = sqlite_store(home.path());
    let other = home.path().join("other.sqlite");
    SqliteStore::create(
        &other,
        vec![person(1, "Someone Else", Some(GOOD[5]), Some(1), &[])],
        &mut |_| {},
    )
    .unwrap();
    // A cv site (the fake cv) whose contact 31 holds the same key as contact 8: keys go
    // to cv on stdin, and the fake logs every argv it was given.
    let site = home.path().join("site");
    std::fs::create_dir(&site).unwrap();
    let data = home.path().join("cv-data.json");
    let cv_contact = serde_json::json!({
        "id": 31, "contact_type": "Individual", "display_name": "Cv Holder",
        "sort_name": "Holder, Cv", "is_deleted": false, "api_key": GOOD[4],
        "emails": [], "uf_matches": [],
    });
    std::fs::write(
        &data,
        serde_json::json!({"contacts": [cv_contact], "seen_keys": []}).to_string(),
    )
    .unwrap();
    let argv_log = home.path().join("argv.log");
    let cv = home.path().join("cv");
    std::fs::write(
        &cv,
        format!(
            "#!/bin/sh\nexport FAKE_CV_DATA='{}' FAKE_CV_SITE='{}' FAKE_CV_ARGV_LOG='{}'\nexec '{}/tests/fake-cv/cv' \"$@\"\n",
            data.display(),
            site.display(),
            argv_log.display(),
            env!("CARGO_MANIFEST_DIR")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&cv, std::fs::Permissions::from_mode(0o700)).unwrap();
    let config = config(
        home.path(),
        &[
            ("a-other", format!("sqlite:{}", other.display())),
            ("b-holder", format!("sqlite:{}", holder.display())),
            ("c-gone", "mysql://civikey@127.0.0.1:9/civicrm".to_string()),
            ("d-cv", format!("cv:{}", site.display())),
        ],
        &cv,
    );
    let lookup = |key: &str| {
        let mut cmd = binary::civikey(home.path());
        cmd.env("CIVIKEY_CONFIG", &config)
            .args(["whose", "--key-stdin", "--all-profiles"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{key}\n").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = lookup(GOOD[4]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("a-other") && lines[0].ends_with("no holder"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("b-holder") && lines[1].ends_with("1 holder"),
        "{stdout}"
    );
    assert!(
        lines[2].contains("No Permission"),
        "shown as `show` does: {stdout}"
    );
    assert!(
        lines[3].contains("civikey --profile b-holder rotate 8"),
        "{stdout}"
    );
    assert!(
        lines[4].starts_with("c-gone") && lines[4].contains("unreachable"),
        "{stdout}"
    );
    assert!(
        lines[5].starts_with("d-cv") && lines[5].ends_with("1 holder"),
        "{stdout}"
    );
    assert!(lines[6].contains("Cv Holder"), "{stdout}");
    assert!(
        lines[7].contains("civikey --profile d-cv rotate 31"),
        "{stdout}"
    );
    assert_eq!(lines.len(), 8, "{stdout}");
    // cv was asked (the key went on stdin: the fake saw it), never with the key in argv.
    let seen: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&data).unwrap()).unwrap();
    assert!(seen["seen_keys"].to_string().contains(GOOD[4]), "{seen}");
    let argv = std::fs::read_to_string(&argv_log).unwrap();
    assert!(!argv.is_empty() && !argv.contains(GOOD[4]), "{argv}");
    // Compared as the store compares: the other case of a shared key finds both holders.
    let out = lookup(&DUP_UPPER.to_ascii_lowercase());
    assert!(
        text(&out.stdout).contains("2 holders"),
        "{}",
        text(&out.stdout)
    );
    // A key nobody holds: not found (exit 4 only when every profile could be searched).
    let out = lookup("NobodyHoldsThisKeyNobodyHolds01");
    assert_eq!(out.status.code(), Some(1), "one profile was unreachable");
    // The key never reached an output, the journal or its folder; the lookups did.
    let out = lookup(GOOD[4]);
    assert!(!text(&out.stdout).contains(GOOD[4]));
    assert!(!text(&out.stderr).contains(GOOD[4]));
    let data = home.path().join("data");
    let files = bytes_of_dir(&data);
    assert!(!files.is_empty());
    assert!(
        !String::from_utf8_lossy(&files).contains(GOOD[4]),
        "the key is in a file of the data folder"
    );
    // Every profile's store: each lookup is journaled under the store it searched.
    let out = run(home.path(), &["audit", "--json", "--all-stores"], None);
    let entries: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let lookups: Vec<&serde_json::Value> = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "lookup")
        .collect();
    assert_eq!(
        lookups.len(),
        12,
        "one record per searched profile and lookup"
    );
    assert!(lookups
        .iter()
        .any(|e| e["contact_id"] == 8 && e["profile"] == "b-holder"));
    assert!(lookups.iter().all(|e| e["new_fingerprint"].is_string()));
}

#[test]
fn whose_on_one_store_and_without_a_key() {
    let home = tempfile::tempdir().unwrap();
    let path = sqlite_store(home.path());
    let store = format!("sqlite:{}", path.display());
    let out = run(
        home.path(),
        &["--store", &store, "whose", "--key-stdin"],
        Some(&format!("{}\n", GOOD[2])),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("No Account"));
    assert!(text(&out.stdout).contains(&format!("civikey --store {store} rotate 6")));
    let out = run(
        home.path(),
        &["--store", &store, "whose", "--key-stdin"],
        Some("NobodyHoldsThisKeyNobodyHolds01\n"),
    );
    assert_eq!(out.status.code(), Some(4), "no holder: not found");
    let out = run(
        home.path(),
        &["--store", &store, "whose", "--key-stdin"],
        Some(""),
    );
    assert_eq!(out.status.code(), Some(2), "no key given");
    let out = run(home.path(), &["--store", &store, "whose"], None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--key-stdin is required: keys never in argv"
    );
    // Read-only: the store file is unchanged by a lookup.
    let before = std::fs::read(&path).unwrap();
    run(
        home.path(),
        &["--store", &store, "whose", "--key-stdin"],
        Some(GOOD[0]),
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
}
