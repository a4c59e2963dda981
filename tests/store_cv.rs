//! The store contract and cv's own failure modes, on the cv store driving a fake `cv`
//! (tests/fake-cv/cv, a Python 3 script over a JSON data file).
//!
//! Each fixture writes its own data file and a small wrapper script that sets the fake's
//! environment (data file, site, argv log, failure mode) and execs it, so tests running in
//! parallel never share environment variables. When a fixture is dropped it checks the
//! argv log: every call was `api4 Contact.get|update --in=json --out=json --cwd SITE` (or
//! a `pipe --cwd SITE` session) and no key the test used (listed by the fake as it saw them
//! on stdin) ever reached argv. By default the fake has no `pipe` (an older cv): those tests
//! run the per-call fallback; `mod pipe` runs the contract through a pipe session, `mod
//! cv_user` as a CMS user with CiviCRM's permission checks on, both ways.

mod contract;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use civikey::key::ApiKey;
use civikey::rotation::{self, Expectation};
use civikey::seed::SeedContact;
use civikey::store::cv::CvOptions;
use civikey::store::cv::CvStore;
use civikey::store::StoreSpec;
use civikey::store::{CmsLink, ContactStore, Query, StoreError, StoreKind};
use serde_json::{json, Value};

struct CvFixture {
    dir: tempfile::TempDir,
    /// The site folder the store is configured with.
    site: PathBuf,
    data: PathBuf,
    log: PathBuf,
    binary: PathBuf,
    timeout: Duration,
    /// The profile's `cv_user`.
    user: Option<String>,
}

impl contract::Fixture for CvFixture {
    fn open(&self) -> Box<dyn ContactStore> {
        Box::new(self.store())
    }
}

impl CvFixture {
    fn options(&self) -> CvOptions {
        CvOptions {
            site_path: self.site.clone(),
            cv_binary: self.binary.clone(),
            cv_user: self.user.clone(),
            timeout: self.timeout,
        }
    }

    fn store(&self) -> CvStore {
        CvStore::new(&self.options()).expect("open cv store")
    }

    fn data(&self) -> Value {
        serde_json::from_str(&fs::read_to_string(&self.data).unwrap()).unwrap()
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.path().join("cv.pid")
    }

    /// Every key the fake saw on stdin, every key in the data now, and the contract's.
    fn keys_used(&self) -> Vec<String> {
        let data = self.data();
        let mut keys: Vec<String> = data["seen_keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        for contact in data["contacts"].as_array().unwrap() {
            if let Some(k) = contact["api_key"].as_str() {
                keys.push(k.to_string());
            }
        }
        keys.extend([contract::KEY_A, contract::KEY_B, contract::KEY_DELETED].map(String::from));
        keys
    }

    fn check_argv_log(&self) {
        let raw = fs::read_to_string(&self.log).unwrap_or_default();
        let site = self.site.to_str().unwrap();
        let mut calls = 0;
        for line in raw.lines() {
            calls += 1;
            let mut argv: Vec<String> = serde_json::from_str(line).unwrap();
            if argv[0] == "pipe" {
                // A `cv pipe` session (tried first on every store): site only, in argv; the
                // user logs in on stdin.
                assert_eq!(argv, ["pipe", "--cwd", site], "{argv:?}");
                continue;
            }
            // Acting as the cv_user: exactly one `--user=NAME` argument first; none without.
            match &self.user {
                Some(user) => assert_eq!(argv.remove(0), format!("--user={user}"), "{argv:?}"),
                None => assert!(!argv.iter().any(|a| a.starts_with("--user")), "{argv:?}"),
            }
            assert_eq!(argv.len(), 6, "{argv:?}");
            assert_eq!(argv[0], "api4", "{argv:?}");
            assert!(
                ["Contact.get", "Contact.update", "User.get", "Role.get"]
                    .contains(&argv[1].as_str()),
                "{argv:?}"
            );
            assert_eq!(argv[2..5], ["--in=json", "--out=json", "--cwd"], "{argv:?}");
            assert_eq!(argv[5], site, "the working folder is the configured site");
            for arg in &argv {
                assert!(!has_key_like_run(arg), "key-like value in argv: {argv:?}");
                assert!(!arg.to_lowercase().contains("api_key"), "{argv:?}");
            }
        }
        assert!(calls > 0, "cv was never called");
        let lowered = raw.to_lowercase();
        for key in self.keys_used() {
            assert!(!lowered.contains(&key.to_lowercase()), "a key reached argv");
        }
    }
}

impl Drop for CvFixture {
    fn drop(&mut self) {
        // Checked after every test, the contract's included; not while a test is already
        // failing (a second panic would abort the run and hide the first).
        if !std::thread::panicking() {
            self.check_argv_log();
        }
    }
}

fn has_key_like_run(text: &str) -> bool {
    let mut run = 0;
    for c in text.chars() {
        run = if c.is_ascii_alphanumeric() {
            run + 1
        } else {
            0
        };
        if run >= 20 {
            return true;
        }
    }
    false
}

fn data_from(contacts: &[SeedContact]) -> Value {
    let list: Vec<Value> = contacts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({
                "id": c.id.unwrap_or(i as i64 + 1),
                "contact_type": c.contact_type,
                "display_name": c.display_name,
                "sort_name": c.sort_name,
                "first_name": c.first_name,
                "last_name": c.last_name,
                "is_deleted": c.is_deleted,
                "api_key": c.api_key.as_ref().map(|k| k.expose()),
                "emails": c.email.iter().map(|e| json!({"email": e, "is_primary": true})).collect::<Vec<_>>(),
                "uf_matches": c.uf_id.iter().map(|u| json!({"domain_id": 1, "uf_id": u})).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "contacts": list, "seen_keys": [] })
}

/// [`data_from`] with the sort names of `ids` NULL (`"sort_name": null`, as cv prints it).
fn data_with_null_sort_names(contacts: &[SeedContact], ids: &[i64]) -> Value {
    let mut data = data_from(contacts);
    for c in data["contacts"].as_array_mut().unwrap() {
        if ids.contains(&c["id"].as_i64().unwrap()) {
            c["sort_name"] = Value::Null;
        }
    }
    data
}

fn fake_cv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake-cv/cv")
}

fn fixture() -> CvFixture {
    fixture_with(&[], data_from(&contract::contacts()))
}

/// A fixture whose fake cv runs with `env` on top of the usual settings.
fn fixture_with(env: &[(&str, &str)], data: Value) -> CvFixture {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    fs::create_dir(&site).unwrap();
    let data_path = dir.path().join("data.json");
    fs::write(&data_path, serde_json::to_string(&data).unwrap()).unwrap();
    let log = dir.path().join("argv.log");
    let pid_file = dir.path().join("cv.pid");
    let mut script = String::from("#!/bin/sh\n");
    let settings = [
        ("FAKE_CV_DATA", data_path.to_str().unwrap()),
        ("FAKE_CV_SITE", site.to_str().unwrap()),
        ("FAKE_CV_ARGV_LOG", log.to_str().unwrap()),
        ("FAKE_CV_PID_FILE", pid_file.to_str().unwrap()),
    ];
    for (name, value) in settings.iter().chain(env) {
        assert!(!value.contains('\''));
        script.push_str(&format!("export {name}='{value}'\n"));
    }
    script.push_str(&format!("exec '{}' \"$@\"\n", fake_cv().display()));
    let binary = dir.path().join("cv");
    fs::write(&binary, script).unwrap();
    fs::set_permissions(&binary, fs::Permissions::from_mode(0o700)).unwrap();
    CvFixture {
        dir,
        site,
        data: data_path,
        log,
        binary,
        timeout: Duration::from_secs(20),
        user: None,
    }
}

contract_tests!(fixture(); wrapped);

/// Contacts whose sort name is NULL, through `cv api4` (no pipe: pages by offset): every
/// one comes, the NULL sort names first.
#[test]
fn null_sort_names_page_first_and_completely() {
    let f = fixture_with(
        &[],
        data_with_null_sort_names(
            &contract::null_sort_name_contacts(),
            &contract::NULL_SORT_NAME_IDS,
        ),
    );
    contract::null_sort_names_page_first_and_completely(&mut f.store());
}

fn key(text: &str) -> ApiKey {
    ApiKey::from_store(text.into())
}

fn all_ids(store: &mut dyn ContactStore, text: &str, limit: usize) -> Vec<u64> {
    let mut q = Query::new(text, limit);
    let mut ids = Vec::new();
    for _ in 0..100 {
        let page = store.search(&q).expect("search");
        assert!(page.contacts.len() <= limit);
        ids.extend(page.contacts.iter().map(|c| c.id));
        match page.next {
            Some(next) => q.after = Some(next),
            None => return ids,
        }
    }
    panic!("paging never ended");
}

/// Each cv run's argv, in order.
fn log_lines(f: &CvFixture) -> Vec<Vec<String>> {
    fs::read_to_string(&f.log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The process is gone: killed and reaped (a zombie still has a /proc entry).
fn assert_process_gone(pid_file: &Path) {
    let pid = fs::read_to_string(pid_file).expect("the fake wrote its pid");
    let proc_dir = PathBuf::from(format!("/proc/{}", pid.trim()));
    assert!(
        !proc_dir.exists(),
        "cv (pid {}) was left behind",
        pid.trim()
    );
}

#[test]
fn every_call_is_api4_json_on_stdin_in_the_site_folder() {
    let f = fixture();
    let mut s = f.store();
    let (_journal_dir, mut j, result) = contract::assign_generated(&mut s, 3, 2);
    let done = result.unwrap();
    assert_eq!(s.holders_of(&done.key).unwrap(), vec![2]);
    rotation::revoke(&mut s, &mut j, 2, &Expectation::Current).unwrap();
    assert_eq!(all_ids(&mut s, "ada@", 5), vec![1]);
    // The check below is only meaningful if the keys went to cv at all (on stdin).
    let seen = f.keys_used();
    assert!(
        seen.iter().any(|k| k == done.key.expose()),
        "the generated key went to cv"
    );
    let log = fs::read_to_string(&f.log).unwrap();
    assert!(log.contains("Contact.update") && log.contains("Contact.get"));
    f.check_argv_log();
}

#[test]
fn info_describes_the_store_and_the_spec_opens_it() {
    let f = fixture();
    let info = f.store().info();
    assert_eq!(info.kind, StoreKind::Cv);
    assert_eq!(info.location.as_str(), format!("cv:{}", f.site.display()));
    assert_eq!(info.key_capacity, 32);
    assert!(info.keys_case_insensitive);
    assert!(info.writable);
    let mut opened = StoreSpec::Cv(f.options()).open().unwrap();
    assert_eq!(
        opened.contact(1).unwrap().display_name.as_str(),
        "Ada Lovelace"
    );
}

#[test]
fn missing_binary_is_a_clear_error() {
    let f = fixture();
    for binary in [
        f.dir.path().join("no-such-cv"),
        PathBuf::from("civikey-test-no-such-cv"),
    ] {
        let opts = CvOptions {
            cv_binary: binary,
            ..f.options()
        };
        let err = CvStore::new(&opts)
            .unwrap()
            .search(&Query::new("", 5))
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("cv not found") && text.contains("cv_binary"),
            "{text}"
        );
    }
    // Keep the drop check meaningful: one real call.
    f.store().contact(1).unwrap();
}

#[test]
fn missing_site_folder_is_refused_at_open() {
    let f = fixture();
    let opts = CvOptions {
        site_path: f.dir.path().join("no-such-site"),
        ..f.options()
    };
    let err = CvStore::new(&opts).err().expect("refused");
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert!(err.to_string().contains("does not exist"), "{err}");
    f.store().contact(1).unwrap();
}

#[test]
fn wrong_site_folder_is_a_clear_error() {
    let mut f = fixture();
    let elsewhere = f.dir.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    f.site = elsewhere;
    let err = f.store().search(&Query::new("", 5)).unwrap_err();
    assert!(matches!(err, StoreError::Unreachable(_)), "{err:?}");
    assert!(err.to_string().contains("civicrm.settings.php"), "{err}");
}

#[test]
fn garbage_output_is_bad_data() {
    let f = fixture_with(
        &[("FAKE_CV_MODE", "garbage")],
        data_from(&contract::contacts()),
    );
    let mut s = f.store();
    for err in [
        s.search(&Query::new("", 5)).unwrap_err(),
        s.contact(1).unwrap_err(),
        s.read_key(1).unwrap_err(),
        s.holders_of(&key(contract::KEY_A)).unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::BadData(_)), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("did not print JSON") && !text.contains("<html>"),
            "{text}"
        );
    }
}

#[test]
fn garbage_after_a_write_is_outcome_unknown() {
    let env = [("FAKE_CV_MODE", "garbage"), ("FAKE_CV_MODE_ON", "update")];
    let f = fixture_with(&env, data_from(&contract::contacts()));
    let mut s = f.store();
    let err = s
        .swap_key(2, None, Some(&key("GarbageGarbageGarbageGarbage01")))
        .unwrap_err();
    assert!(matches!(err, StoreError::OutcomeUnknown(_)), "{err:?}");
}

#[test]
fn php_warnings_before_the_json_are_tolerated() {
    let f = fixture_with(
        &[("FAKE_CV_MODE", "php-warnings")],
        data_from(&contract::contacts()),
    );
    let mut s = f.store();
    let ada = s.contact(1).unwrap();
    assert_eq!(
        ada.email.as_ref().map(|e| e.as_str()),
        Some("ada@example.org")
    );
    assert_eq!(ada.cms, CmsLink::Linked { uf_id: 11 });
    assert_eq!(all_ids(&mut s, "smith", 2), vec![4, 5, 6]);
    let k = key("WarnedWarnedWarnedWarnedWarned01");
    s.swap_key(2, None, Some(&k)).unwrap();
    assert_eq!(s.read_key(2).unwrap(), Some(k));
}

#[test]
fn nonzero_exit_reports_its_stderr() {
    let message = "DB Error: no such table civicrm_contact";
    let f = fixture_with(
        &[("FAKE_CV_MODE", "fail"), ("FAKE_CV_STDERR", message)],
        data_from(&contract::contacts()),
    );
    let err = f.store().search(&Query::new("", 5)).unwrap_err();
    assert!(matches!(err, StoreError::Unreachable(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(message) && text.contains("exit status 2"),
        "{text}"
    );

    let env = [
        ("FAKE_CV_MODE", "fail"),
        ("FAKE_CV_STDERR", message),
        ("FAKE_CV_MODE_ON", "update"),
    ];
    let f = fixture_with(&env, data_from(&contract::contacts()));
    let err = f
        .store()
        .swap_key(2, None, Some(&key("FailedFailedFailedFailedFailed01")))
        .unwrap_err();
    assert!(matches!(err, StoreError::OutcomeUnknown(_)), "{err:?}");
    assert!(err.to_string().contains(message), "{err}");
}

#[test]
fn stderr_never_carries_a_key_and_is_inert() {
    let new = key("EchoedEchoedEchoedEchoedEchoed01");
    let env = [("FAKE_CV_MODE", "fail-echo"), ("FAKE_CV_MODE_ON", "update")];
    let f = fixture_with(&env, data_from(&contract::contacts()));
    let err = f
        .store()
        .swap_key(1, Some(&key(contract::KEY_A)), Some(&new))
        .unwrap_err();
    let write_text = err.to_string();
    assert!(matches!(err, StoreError::OutcomeUnknown(_)), "{err:?}");

    let env = [("FAKE_CV_MODE", "fail-echo"), ("FAKE_CV_MODE_ON", "get")];
    let g = fixture_with(&env, data_from(&contract::contacts()));
    let read_text = g
        .store()
        .holders_of(&key(&contract::KEY_B.to_lowercase()))
        .unwrap_err()
        .to_string();

    for text in [write_text, read_text] {
        assert!(text.contains("DB Error"), "{text}");
        assert!(
            text.contains("params"),
            "the rest of the message is kept: {text}"
        );
        let lowered = text.to_lowercase();
        for k in [contract::KEY_A, contract::KEY_B, new.expose()] {
            assert!(!lowered.contains(&k.to_lowercase()), "{text}");
        }
        assert!(!has_key_like_run(&text), "{text}");
        assert!(!text.chars().any(|c| c.is_control()), "{text:?}");
    }
}

#[test]
fn slow_read_times_out_and_cv_is_killed() {
    let f = fixture_with(
        &[("FAKE_CV_MODE", "slow"), ("FAKE_CV_SLEEP", "30")],
        data_from(&contract::contacts()),
    );
    // 3 s: the fake (a Python program) must have started and be sleeping when the
    // deadline comes, even on a loaded machine; it sleeps 30 s.
    let opts = CvOptions {
        timeout: Duration::from_secs(3),
        ..f.options()
    };
    let mut s = CvStore::new(&opts).unwrap();
    let started = Instant::now();
    let err = s.search(&Query::new("", 5)).unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, StoreError::Timeout(_)), "{err:?}");
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert_process_gone(&f.pid_file());
}

#[test]
fn slow_write_is_outcome_unknown_and_cv_is_killed() {
    let env = [
        ("FAKE_CV_MODE", "slow"),
        ("FAKE_CV_SLEEP", "30"),
        ("FAKE_CV_MODE_ON", "update"),
    ];
    let f = fixture_with(&env, data_from(&contract::contacts()));
    // 3 s: the fake (a Python program) must have started and be sleeping when the
    // deadline comes, even on a loaded machine; it sleeps 30 s.
    let opts = CvOptions {
        timeout: Duration::from_secs(3),
        ..f.options()
    };
    let mut s = CvStore::new(&opts).unwrap();
    let err = s
        .swap_key(2, None, Some(&key("SlowSlowSlowSlowSlowSlowSlow01")))
        .unwrap_err();
    assert!(matches!(err, StoreError::OutcomeUnknown(_)), "{err:?}");
    assert_process_gone(&f.pid_file());
    // Killed before it wrote: the key is unchanged.
    assert_eq!(s.read_key(2).unwrap(), None);
}

#[test]
fn chatty_stderr_does_not_deadlock() {
    let f = fixture_with(
        &[("FAKE_CV_MODE", "chatty")],
        data_from(&contract::contacts()),
    );
    let mut s = f.store();
    assert_eq!(all_ids(&mut s, "", 12).len(), 30);
}

#[test]
fn runaway_output_is_refused() {
    let f = fixture_with(
        &[("FAKE_CV_MODE", "huge")],
        data_from(&contract::contacts()),
    );
    let err = f.store().search(&Query::new("", 5)).unwrap_err();
    assert!(matches!(err, StoreError::BadData(_)), "{err:?}");
    assert!(err.to_string().contains("more than 16 MiB"), "{err}");
}

/// Contact 4 has two emails starting "sam@" and CMS users in two domains; contact 5 one
/// more "sam@" email. Joins return a row per email and per domain; lists show each once.
#[test]
fn a_contact_with_several_rows_is_listed_once() {
    let mut data = data_from(&contract::contacts());
    let contacts = data["contacts"].as_array_mut().unwrap();
    contacts[3]["emails"]
        .as_array_mut()
        .unwrap()
        .push(json!({"email": "sam@work.example", "is_primary": false}));
    contacts[3]["uf_matches"] =
        json!([{"domain_id": 2, "uf_id": 41}, {"domain_id": 1, "uf_id": 40}]);
    contacts[4]["emails"]
        .as_array_mut()
        .unwrap()
        .push(json!({"email": "Sam@home.example", "is_primary": false}));
    let f = fixture_with(&[], data);
    let mut s = f.store();
    for limit in [1, 2, 50] {
        assert_eq!(all_ids(&mut s, "sam@", limit), vec![4, 5], "limit {limit}");
        assert_eq!(
            all_ids(&mut s, "smith", limit),
            vec![4, 5, 6],
            "limit {limit}"
        );
    }
    let everyone = all_ids(&mut s, "", 7);
    assert_eq!(everyone.len(), 30, "{everyone:?}");
    let sam = s.contact(4).unwrap();
    assert_eq!(sam.cms, CmsLink::Linked { uf_id: 40 });
    assert_eq!(
        sam.email.as_ref().map(|e| e.as_str()),
        Some("sam@example.org"),
        "the primary email"
    );
    let page = s.search(&Query::new("sam@work", 5)).unwrap();
    assert_eq!(page.contacts.len(), 1);
    assert_eq!(
        page.contacts[0].id, 4,
        "any email matches, not only the primary one"
    );
}

#[test]
fn a_trashed_contact_key_can_be_changed() {
    let f = fixture();
    let mut s = f.store();
    s.swap_key(11, Some(&key(contract::KEY_DELETED)), None)
        .unwrap();
    assert_eq!(s.read_key(11).unwrap(), None);
    assert!(s.contact(11).unwrap().is_deleted);
}

/// Standalone's users and roles through `cv api4 User.get` and `Role.get`.
#[test]
fn standing_comes_from_user_get_and_role_get() {
    use civikey::store::{AccountState, Standing};
    let mut data = data_from(&contract::contacts());
    data["roles"] = json!([
        {"id": 1, "name": "api", "label": "API", "permissions": ["authenticate with api key"], "is_active": true},
        {"id": 2, "name": "staff", "label": "", "permissions": ["access CiviCRM"], "is_active": true},
        {"id": 3, "name": "old", "label": "Old", "permissions": ["authenticate with api key"], "is_active": false},
    ]);
    // Contact 1 (uf 11): an API user with an inactive role too; contact 2 (uf 12): blocked.
    data["contacts"][0]["uf_matches"] = json!([{"domain_id": 1, "uf_id": 11, "id": 11, "username": "ada", "is_active": true, "roles": [1, 3]}]);
    data["contacts"][1]["uf_matches"] = json!([{"domain_id": 1, "uf_id": 12, "id": 12, "username": "alan", "is_active": false, "roles": [2]}]);
    let f = fixture_with(&[], data.clone());
    let mut s = f.store();
    let all = s.standings(&[1, 2, 3]).unwrap();
    let AccountState::Account(ada) = &all[&1].account else {
        panic!("{:?}", all[&1])
    };
    assert_eq!((ada.id, ada.name.as_str(), ada.active), (11, "ada", true));
    let roles = all[&1].roles.as_ref().unwrap();
    assert_eq!(roles.len(), 1, "the inactive role is left out: {roles:?}");
    assert!(roles[0].grants_api_login);
    let codes = |id: u64, all: &std::collections::HashMap<u64, Standing>, s: &mut CvStore| {
        civikey::assess::assess(&s.contact(id).unwrap(), &all[&id])
            .iter()
            .map(|w| w.code.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        codes(2, &all, &mut s),
        ["user_blocked", "no_api_login_permission"]
    );
    assert_eq!(all[&3], Standing::no_account());

    // Not Standalone: cv says the User entity does not exist; the roles are unknown.
    data["standalone"] = json!(false);
    let f = fixture_with(&[], data);
    let mut s = f.store();
    assert_eq!(s.standing(1).unwrap(), Standing::UNKNOWN);
    assert_eq!(
        codes(1, &s.standings(&[1]).unwrap(), &mut s),
        ["roles_unknown"]
    );
}

/// cv's errors as recorded (tests/recorded/cv/13, 16): the message out of the box.
#[test]
fn recorded_cv_errors_read_as_their_message() {
    let mut f = fixture();
    let elsewhere = f.dir.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    f.site = elsewhere;
    let text = f.store().contact(1).unwrap_err().to_string();
    assert!(
        text.contains("Failed to locate civicrm.settings.php. By default, this tool searches the parent directories"),
        "{text}"
    );
    assert!(
        !text.contains("api4 ["),
        "the usage line is left out: {text}"
    );
    assert!(
        text.contains("the profile's address must be cv:PATH"),
        "{text}"
    );
}

/// Through the rotation workflow: cv's stderr quoting the request (both keys) reaches
/// neither the error the operator sees nor the journal, in any case.
#[test]
fn a_rotation_journals_and_shows_cv_errors_without_keys() {
    let env = [("FAKE_CV_MODE", "fail-echo"), ("FAKE_CV_MODE_ON", "update")];
    let f = fixture_with(&env, data_from(&contract::contacts()));
    let mut store = f.store();
    let (_dir, mut journal) = contract::journal(&store);
    let new = key("EchoedEchoedEchoedEchoedEchoed02");
    let err = rotation::assign(
        &mut store,
        &mut journal,
        &mut civikey::key::OsKeySource,
        1,
        &Expectation::Current,
        rotation::NewKey::Given(new.clone()),
    )
    .err()
    .expect("cv failed");
    let record = &journal.entries(Some(1), true, 1).unwrap()[0];
    let journaled = record.error.clone().unwrap_or_default();
    assert!(journaled.contains("DB Error"), "{journaled}");
    let file = String::from_utf8_lossy(&fs::read(journal.path()).unwrap()).to_lowercase();
    for text in [
        err.to_string().to_lowercase(),
        journaled.to_lowercase(),
        file,
    ] {
        for k in [contract::KEY_A, new.expose()] {
            assert!(!text.contains(&k.to_lowercase()), "{text}");
        }
    }
}

/// The same contract through a `cv pipe` session, and the session's own behaviour.
mod pipe {
    use super::*;

    fn piped(extra: &[(&str, &str)]) -> CvFixture {
        let mut env = vec![("FAKE_CV_PIPE", "on")];
        env.extend_from_slice(extra);
        fixture_with(&env, data_from(&contract::contacts()))
    }

    contract_tests!(piped(&[]));

    /// A first-name prefix of two letters or more is read sort name ascending, id
    /// descending, then the last sort name's lowest ids by one more call: paged by 4, every
    /// contact comes once, in (sort name, id) order, even when many share one sort name
    /// and some of them are spelt in another case.
    #[test]
    fn a_sorted_first_name_branch_pages_through_a_shared_sort_name() {
        let f = fixture_with(
            &[("FAKE_CV_PIPE", "on")],
            data_from(&contract::shared_sort_name_contacts()),
        );
        contract::a_sorted_branch_pages_through_a_shared_sort_name(&mut f.store(), &mut || {});
    }

    /// Contacts whose sort name is NULL (cv prints `"sort_name": null`; MariaDB sorts them
    /// first): a keystroke through the pipe pages through every one, by 1, 2, 4 and 50.
    #[test]
    fn null_sort_names_page_first_and_completely() {
        let f = fixture_with(
            &[("FAKE_CV_PIPE", "on")],
            data_with_null_sort_names(
                &contract::null_sort_name_contacts(),
                &contract::NULL_SORT_NAME_IDS,
            ),
        );
        contract::null_sort_names_page_first_and_completely(&mut f.store());
    }

    #[test]
    fn one_session_answers_every_call_and_ends_with_the_store() {
        let f = piped(&[]);
        let mut s = f.store();
        for text in ["ada", "s", "grace@", "3", ""] {
            s.search(&Query::new(text, 50)).unwrap();
        }
        let k = key("PipePipePipePipePipePipePipe0001");
        s.swap_key(2, None, Some(&k)).unwrap();
        assert_eq!(s.read_key(2).unwrap().unwrap().expose(), k.expose());
        let lines = log_lines(&f);
        assert_eq!(lines.len(), 1, "one cv process for every call: {lines:?}");
        assert_eq!(lines[0][0], "pipe");
        let pid: i32 = fs::read_to_string(f.pid_file())
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(alive(pid), "the session runs while the store is open");
        drop(s);
        assert!(!alive(pid), "dropping the store ends the session");
    }

    #[test]
    fn a_session_that_dies_is_restarted() {
        let f = piped(&[
            ("FAKE_CV_PIPE_MODE", "die"),
            ("FAKE_CV_PIPE_DIE_AFTER", "1"),
        ]);
        let mut s = f.store();
        assert_eq!(s.search(&Query::new("ada", 50)).unwrap().contacts[0].id, 1);
        // The session exits after each answer: every call finds it gone and starts another.
        assert_eq!(
            s.search(&Query::new("grace", 50)).unwrap().contacts[0].id,
            3
        );
        let sessions = log_lines(&f).iter().filter(|l| l[0] == "pipe").count();
        assert!(sessions >= 2, "{sessions}");
    }

    #[test]
    fn a_timeout_kills_the_session_and_the_next_call_starts_another() {
        let mut f = piped(&[("FAKE_CV_PIPE_MODE", "slow"), ("FAKE_CV_SLEEP", "30")]);
        f.timeout = Duration::from_millis(1500);
        let mut s = f.store();
        let started = Instant::now();
        let err = s.search(&Query::new("ada", 50)).unwrap_err();
        assert!(matches!(err, StoreError::Timeout(_)), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let pid: i32 = fs::read_to_string(f.pid_file())
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(!alive(pid), "the timed-out session's process is gone");
        // The next call starts a new session (and times out in its turn).
        let err = s.search(&Query::new("grace", 50)).unwrap_err();
        assert!(matches!(err, StoreError::Timeout(_)), "{err:?}");
        let sessions = log_lines(&f).iter().filter(|l| l[0] == "pipe").count();
        assert_eq!(sessions, 2);
    }

    #[test]
    fn an_untrusted_pipe_falls_back_to_one_cv_api4_per_call() {
        let f = fixture_with(
            &[("FAKE_CV_PIPE", "untrusted")],
            data_from(&contract::contacts()),
        );
        let mut s = f.store();
        assert_eq!(s.search(&Query::new("ada", 50)).unwrap().contacts[0].id, 1);
        assert_eq!(
            s.search(&Query::new("grace", 50)).unwrap().contacts[0].id,
            3
        );
        let lines = log_lines(&f);
        assert_eq!(
            lines.iter().filter(|l| l[0] == "pipe").count(),
            1,
            "tried once"
        );
        assert!(lines.iter().filter(|l| l[0] == "api4").count() >= 2);
    }

    #[test]
    fn api_errors_come_back_and_the_session_goes_on() {
        let f = piped(&[]);
        let mut s = f.store();
        // An update the fake refuses: more than api_key in values is not what civikey
        // sends, so use a missing contact instead (an empty answer), then a normal call.
        assert!(matches!(s.contact(424242), Err(StoreError::NotFound(_))));
        assert_eq!(s.search(&Query::new("ada", 50)).unwrap().contacts[0].id, 1);
        assert_eq!(log_lines(&f).len(), 1);
    }

    fn alive(pid: i32) -> bool {
        // Reaped processes are gone; a zombie would still answer kill(0).
        std::path::Path::new(&format!("/proc/{pid}")).exists()
            && !fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
    }
}

/// Acting as a CMS user (`cv_user`): `--user=NAME` and `"checkPermissions": true` per call,
/// a login through `cv pipe`; that user's own CiviCRM permissions apply (the fake models
/// them as recorded in cv/20-23, 27, 29-31).
mod cv_user {
    use super::*;

    const PIPE: &[(&str, &str)] = &[("FAKE_CV_PIPE", "on")];

    /// The contract's data with three Standalone users: `admin` (contact 1, every
    /// permission), `limited` (contact 2, the recorded `apiuser` role: no key permission)
    /// and `keyreader` (contact 5: may read keys, may not edit contacts).
    fn users_data() -> Value {
        let mut data = data_from(&contract::contacts());
        data["roles"] = json!([
            {"id": 2, "name": "admin", "label": "Administrator", "is_active": true,
             "permissions": ["all CiviCRM permissions and ACLs"]},
            {"id": 4, "name": "apiuser", "label": "API user", "is_active": true,
             "permissions": ["access CiviCRM", "view all contacts", "authenticate with api key", "access AJAX API"]},
            {"id": 6, "name": "keyreader", "label": "Key reader", "is_active": true,
             "permissions": ["access CiviCRM", "view all contacts", "access deleted contacts", "edit api keys"]},
        ]);
        for (index, uf_id, username, role) in [
            (0, 11, "admin", 2),
            (1, 12, "limited", 4),
            (4, 15, "keyreader", 6),
        ] {
            data["contacts"][index]["uf_matches"] = json!([{"domain_id": 1, "uf_id": uf_id,
                "id": uf_id, "username": username, "is_active": true, "roles": [role]}]);
        }
        data
    }

    pub(super) fn as_user(user: &str, env: &[(&str, &str)]) -> CvFixture {
        let mut f = fixture_with(env, users_data());
        f.user = Some(user.into());
        f
    }

    /// The whole contract as the admin, one `cv --user=admin api4` per call (the fixture's
    /// drop check: that one argument on every run, no key in argv).
    mod per_call {
        use super::super::*;
        use super::as_user;

        contract_tests!(as_user("admin", &[]));
    }

    /// The whole contract as the admin, logged in through one `cv pipe` session.
    mod piped {
        use super::super::*;
        use super::{as_user, PIPE};

        contract_tests!(as_user("admin", PIPE));
    }

    /// A `cv_user` that may read keys but not 'cms:administer users' (keyreader): User.get
    /// answers its own row only and Role.get is refused, so every user is unknown, never
    /// "none": per call and through the pipe.
    #[test]
    fn a_cv_user_that_may_not_read_users_is_told_they_are_unknown() {
        use civikey::store::{AccountState, Standing};
        for env in [&[][..], PIPE] {
            let f = as_user("keyreader", env);
            let mut s = f.store();
            let all = s.standings(&[1, 2, 3]).unwrap();
            for id in [1, 2, 3] {
                assert_eq!(all[&id], Standing::HIDDEN, "contact {id} ({env:?})");
            }
            let admin = s.contact(1).unwrap();
            let codes: Vec<&str> = civikey::assess::assess(&admin, &all[&1])
                .iter()
                .map(|w| w.code.as_str())
                .collect();
            assert_eq!(codes, ["roles_unknown"], "{env:?}");
            // The admin sees every user.
            let f = as_user("admin", env);
            let mut s = f.store();
            assert!(matches!(
                s.standing(1).unwrap().account,
                AccountState::Account(_)
            ));
        }
    }

    #[test]
    fn per_call_every_run_names_the_user_in_one_argument_and_keys_stay_on_stdin() {
        let f = as_user("admin", &[]);
        let mut s = f.store();
        let (_dir, mut j, result) = contract::assign_generated(&mut s, 5, 2);
        let done = result.unwrap();
        assert_eq!(s.holders_of(&done.key).unwrap(), vec![2]);
        rotation::revoke(&mut s, &mut j, 2, &Expectation::Current).unwrap();
        assert_eq!(s.read_key(2).unwrap(), None);
        let runs = log_lines(&f);
        let api4: Vec<&Vec<String>> = runs.iter().filter(|argv| argv[0] != "pipe").collect();
        assert!(api4.len() >= 6, "{runs:?}");
        for argv in &api4 {
            assert_eq!(argv[..2], ["--user=admin", "api4"], "{argv:?}");
        }
        assert!(
            f.keys_used().iter().any(|k| k == done.key.expose()),
            "the new key went to cv, on stdin"
        );
        f.check_argv_log();
    }

    #[test]
    fn through_the_pipe_one_logged_in_session_answers_every_call() {
        let f = as_user("admin", PIPE);
        let mut s = f.store();
        let (_dir, mut j, result) = contract::assign_generated(&mut s, 6, 2);
        let done = result.unwrap();
        assert_eq!(s.read_key(2).unwrap(), Some(done.key.clone()));
        rotation::revoke(&mut s, &mut j, 2, &Expectation::Current).unwrap();
        assert_eq!(s.search(&Query::new("ada", 5)).unwrap().contacts[0].id, 1);
        let site = f.site.to_str().unwrap().to_string();
        assert_eq!(log_lines(&f), [["pipe".to_string(), "--cwd".into(), site]]);
    }

    /// A name that looks like options stays one argument: cv sees the user it names (and
    /// knows no such user), not `--cwd` or `-v`.
    #[test]
    fn a_name_like_options_stays_one_argument() {
        let name = "-v --cwd=/ x";
        let f = as_user(name, &[]);
        let err = f.store().contact(1).unwrap_err();
        assert_login_refused(&err, name);
        let runs = log_lines(&f);
        assert_eq!(
            runs.last().unwrap()[0],
            format!("--user={name}"),
            "{runs:?}"
        );
    }

    fn assert_login_refused(err: &StoreError, user: &str) {
        assert!(matches!(err, StoreError::PermissionDenied(_)), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("cv could not log in as cv_user \"{user}\""))
                && text.contains("Must specify principal with valid user, userId, or contactId"),
            "{text}"
        );
    }

    #[test]
    fn an_unknown_user_is_a_clear_error_never_an_anonymous_empty_answer() {
        let f = as_user("nobody", &[]);
        let mut s = f.store();
        let new = key("NobodyNobodyNobodyNobodyNobody01");
        for err in [
            s.search(&Query::new("", 5)).unwrap_err(),
            s.read_key(1).unwrap_err(),
            s.swap_key(2, None, Some(&new)).unwrap_err(),
        ] {
            assert_login_refused(&err, "nobody");
        }

        // Through the pipe the refused login is final: no anonymous session, no `cv api4`
        // fall-back, no new session per call.
        let f = as_user("nobody", PIPE);
        let before = f.data()["contacts"].clone();
        let mut s = f.store();
        for _ in 0..3 {
            assert_login_refused(&s.search(&Query::new("ada", 5)).unwrap_err(), "nobody");
        }
        assert_login_refused(&s.read_key(1).unwrap_err(), "nobody");
        assert_login_refused(&s.swap_key(2, None, Some(&new)).unwrap_err(), "nobody");
        let site = f.site.to_str().unwrap().to_string();
        assert_eq!(log_lines(&f), [["pipe".to_string(), "--cwd".into(), site]]);
        assert_eq!(f.data()["contacts"], before);
    }

    fn assert_may_not_read_keys(err: &StoreError) {
        assert!(matches!(err, StoreError::PermissionDenied(_)), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("cv_user \"limited\" may not read API keys: its role needs the CiviCRM permission 'edit api keys' (or 'administer CiviCRM')"),
            "{text}"
        );
    }

    /// CiviCRM drops api_key from the answer and from the filter of a user without the key
    /// permission (cv/21, 30): no list shows "no key", no lookup matches everyone, and a
    /// rotation stops before it writes.
    #[test]
    fn a_user_who_may_not_read_keys_gets_a_clear_error_and_nothing_changes() {
        for env in [&[][..], PIPE] {
            let f = as_user("limited", env);
            let before = f.data()["contacts"].clone();
            let mut s = f.store();
            assert_may_not_read_keys(&s.read_key(1).unwrap_err());
            assert_may_not_read_keys(&s.contact(1).unwrap_err());
            assert_may_not_read_keys(&s.search(&Query::new("ada", 5)).unwrap_err());
            assert_may_not_read_keys(&s.holders_of(&key(contract::KEY_A)).unwrap_err());
            let (_dir, _j, result) = contract::assign_generated(&mut s, 7, 2);
            let err = result.err().expect("refused");
            assert!(
                err.to_string().contains("may not read API keys"),
                "{env:?}: {err}"
            );
            assert_eq!(f.data()["contacts"], before, "{env:?}: nothing changed");
        }
    }

    /// A user who may read keys but not edit contacts: CiviCRM refuses the update with
    /// 'ACL check failed' (cv/22, 30) before writing; civikey says so (not "outcome
    /// unknown") and journals the attempt as failed.
    #[test]
    fn an_update_refused_by_civicrm_is_a_clear_error_and_changes_nothing() {
        for env in [&[][..], PIPE] {
            let f = as_user("keyreader", env);
            let before = f.data()["contacts"].clone();
            let mut s = f.store();
            assert_eq!(s.read_key(1).unwrap(), Some(key(contract::KEY_A)));
            let err = s
                .swap_key(2, None, Some(&key("RefusedRefusedRefusedRefused01")))
                .unwrap_err();
            assert!(
                matches!(err, StoreError::PermissionDenied(_)),
                "{env:?}: {err:?}"
            );
            let text = err.to_string();
            assert!(
                text.contains("CiviCRM refused the key change for cv_user \"keyreader\": ACL check failed; nothing was written"),
                "{env:?}: {text}"
            );
            let (_dir, journal, result) = contract::assign_generated(&mut s, 8, 2);
            assert!(result.is_err());
            let record = &journal.entries(Some(2), true, 1).unwrap()[0];
            assert_eq!(record.outcome.as_deref(), Some("failed"), "{env:?}");
            assert_eq!(s.read_key(2).unwrap(), None);
            assert_eq!(f.data()["contacts"], before, "{env:?}: nothing changed");
        }
    }

    /// An untrusted session may not log in: each call is `cv --user=NAME api4`, checks on.
    #[test]
    fn an_untrusted_pipe_falls_back_to_cv_api4_as_the_user() {
        let f = as_user("admin", &[("FAKE_CV_PIPE", "untrusted")]);
        let mut s = f.store();
        let (_dir, _j, result) = contract::assign_generated(&mut s, 9, 2);
        result.unwrap();
        let runs = log_lines(&f);
        assert_eq!(runs.iter().filter(|argv| argv[0] == "pipe").count(), 1);
        let as_admin = runs
            .iter()
            .filter(|argv| argv[..2] == ["--user=admin", "api4"]);
        assert!(as_admin.count() >= 4, "{runs:?}");
        drop(s);

        // And the checks are on there: the limited user is refused the keys.
        let f = as_user("limited", &[("FAKE_CV_PIPE", "untrusted")]);
        assert_may_not_read_keys(&f.store().read_key(1).unwrap_err());
    }
}

/// Bulk rotation through cv: the reads, the uniqueness check and the read-back are one
/// call per batch, the updates one call each (cv has no multi-call): 30 contacts in 35
/// calls instead of about seven per contact. Each rotated, delivered and journaled.
#[test]
fn bulk_rotation_reads_and_checks_a_batch_in_one_call_each() {
    use civikey::audit::{Actor, Journal};
    use civikey::bulk::{self, BulkOutcome, OutFile};
    let seeds: Vec<SeedContact> = (1..=30i64)
        .map(|id| SeedContact {
            id: Some(id),
            contact_type: "Individual".into(),
            display_name: format!("Person {id}"),
            sort_name: format!("{id:03}, Person"),
            first_name: None,
            last_name: None,
            email: None,
            is_deleted: false,
            api_key: (id % 2 == 0).then(|| ApiKey::generate().unwrap()),
            uf_id: None,
            roles: vec![],
        })
        .collect();
    let f = fixture_with(&[], data_from(&seeds));
    let mut s = f.store();
    let actor = Actor {
        operator: "alice".into(),
        store: "cv:fake".into(),
        ..Actor::default()
    };
    let mut journal = Journal::open(&f.dir.path().join("data"), actor).unwrap();
    let path = f.dir.path().join("keys.csv");
    let mut out = OutFile::create(&path).unwrap();
    let items: Vec<(u64, Expectation)> = (1..=30).map(|id| (id, Expectation::Current)).collect();
    let results = bulk::rotate_many(
        &mut s,
        &mut journal,
        &mut civikey::key::OsKeySource,
        &items,
        &mut out,
        &std::sync::atomic::AtomicBool::new(false),
        &mut |_, _, _| {},
    );
    assert!(
        results.iter().all(|r| r.outcome == BulkOutcome::Done),
        "{results:?}"
    );
    let data = f.data();
    let text = fs::read_to_string(&path).unwrap();
    let entries = journal.entries(None, true, 100).unwrap();
    for contact in data["contacts"].as_array().unwrap() {
        let id = contact["id"].as_u64().unwrap();
        let now = contact["api_key"].as_str().unwrap();
        let seeded = seeds[id as usize - 1].api_key.as_ref().map(|k| k.expose());
        assert_ne!(Some(now), seeded, "contact {id} not rotated");
        assert!(
            // contact_id,display_name,email,api_key
            text.lines()
                .any(|l| l.starts_with(&format!("{id},Person {id},"))
                    && l.ends_with(&format!(",{now}"))),
            "contact {id} not delivered"
        );
        assert!(entries
            .iter()
            .any(|e| e.contact_id == id && e.outcome.as_deref() == Some("done")));
    }
    let calls = fs::read_to_string(&f.log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"api4\""))
        .count();
    // The batch's contacts, keys, holders, exact keys and read-back, and 30 updates.
    assert_eq!(calls, 35, "{calls} cv calls for 30 contacts");
}

/// Bulk rotation through a cv profile with `site_url` (the store inside the wrapper, with a
/// login site) writes 50 contacts per batch as the bare store does: 120 contacts make 3
/// batches and exactly the bare store's cv runs. A hand-written wrapper once forgot
/// `rotation_batch` and the batched steps, and rotated one contact per batch.
#[test]
fn bulk_rotation_through_a_login_site_profile_batches_as_the_store_does() {
    use civikey::bulk::{self, BulkOutcome, OutFile};
    use civikey::key::SeededKeySource;
    use std::sync::atomic::AtomicBool;

    let contacts: Vec<SeedContact> = (1..=120)
        .map(|i| contract::individual(i, &format!("Batch{i:03}, Al"), "Al"))
        .collect();
    let run = |login: bool| -> (usize, usize) {
        let f = fixture_with(&[], data_from(&contacts));
        let spec = StoreSpec::Cv(f.options());
        let spec = if login {
            StoreSpec::WithLogin(Box::new(spec), contract::login_site())
        } else {
            spec
        };
        let mut store = spec.open().unwrap();
        let (dir, mut journal) = contract::journal(&*store);
        let mut out = OutFile::create(&dir.path().join("keys.csv")).unwrap();
        let items: Vec<(u64, Expectation)> =
            (1..=120).map(|id| (id, Expectation::Seen(None))).collect();
        let results = bulk::rotate_many(
            &mut *store,
            &mut journal,
            &mut SeededKeySource::new(120),
            &items,
            &mut out,
            &AtomicBool::new(false),
            &mut |_, _, _| {},
        );
        assert_eq!(results.len(), 120);
        for r in &results {
            assert!(matches!(r.outcome, BulkOutcome::Done), "{}", r.id);
        }
        (store.rotation_batch(), log_lines(&f).len())
    };
    let (bare_batch, bare_runs) = run(false);
    let (login_batch, login_runs) = run(true);
    assert_eq!(bare_batch, 50);
    assert_eq!(login_batch, 50, "the wrapper kept the store's batch size");
    assert_eq!(login_runs, bare_runs, "the same cv runs as the bare store");
    // cv has no multi-call: each contact's update is its own run, the reads are batched
    // (one contact per batch would take five runs a contact).
    assert!(
        login_runs < 2 * 120,
        "{login_runs} cv runs for 3 batches of 120 contacts"
    );
}
