//! The store contract and CiviCRM's documented REST API v4 behaviour, on the REST store
//! against a fake CiviCRM site (tests/fake_civicrm) on 127.0.0.1.

mod contract;
mod fake_civicrm;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use civikey::key::{ApiKey, SeededKeySource};
use civikey::rotation::{self, Expectation, NewKey};
use civikey::secret::Secret;
use civikey::seed::SeedContact;
use civikey::store::rest::RestOptions;
use civikey::store::rest::RestStore;
use civikey::store::StoreSpec;
use civikey::store::{CmsLink, ContactStore, Cursor, Query, StoreError};

use fake_civicrm::{FakeCivi, Mode, ADMIN_KEY, SITE_KEY};

fn options(url: &str, timeout: Duration) -> RestOptions {
    RestOptions {
        base_url: url.to_string(),
        api_key: ApiKey::from_store(ADMIN_KEY.into()),
        site_key: Some(Secret::new(SITE_KEY.into())),
        timeout,
    }
}

fn connect(server: &FakeCivi) -> RestStore {
    RestStore::connect(&options(&server.url(), Duration::from_secs(10))).unwrap()
}

/// One fake site shared by every handle the contract opens.
struct RestFixture {
    server: FakeCivi,
}

impl contract::Fixture for RestFixture {
    fn open(&self) -> Box<dyn ContactStore> {
        // Through StoreSpec, as the application opens it.
        StoreSpec::Rest(options(&self.server.url(), Duration::from_secs(10)))
            .open()
            .unwrap()
    }
}

impl Drop for RestFixture {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert_keys_stayed_out_of_urls(&self.server);
        }
    }
}

fn fixture() -> RestFixture {
    RestFixture {
        server: FakeCivi::start(contract::contacts()),
    }
}

contract_tests!(fixture(); wrapped);

/// The contract through a least-privilege key admin: `edit api keys`, every contact and the
/// trash, but not `cms:administer users` (User.get answers its own row only, UFMatch.get
/// and Role.get 403, as rest/117-121 recorded).
struct LeastPrivilegeFixture {
    server: FakeCivi,
}

impl contract::Fixture for LeastPrivilegeFixture {
    fn open(&self) -> Box<dyn ContactStore> {
        StoreSpec::Rest(options(&self.server.url(), Duration::from_secs(10)))
            .open()
            .unwrap()
    }

    fn sees_users(&self) -> bool {
        false
    }
}

fn least_privilege() -> LeastPrivilegeFixture {
    let server = FakeCivi::start(contract::contacts());
    server
        .state()
        .admin_permissions
        .retain(|p| p != "cms:administer users");
    LeastPrivilegeFixture { server }
}

mod least_privilege {
    use super::*;
    contract_tests!(least_privilege(); wrapped);
}

/// The server's own record: every request was a POST to the API path, no credential in a URL.
fn assert_keys_stayed_out_of_urls(server: &FakeCivi) {
    let state = server.state();
    assert!(!state.key_in_url, "a credential appeared in a request URL");
    assert!(!state.requests.is_empty());
    for seen in &state.requests {
        assert_eq!(seen.method, "POST", "{seen:?}");
        assert!(
            [
                "/civicrm/ajax/api4/Contact/get",
                "/civicrm/ajax/api4/Contact/update",
                "/civicrm/ajax/api4/UFMatch/get",
                "/civicrm/ajax/api4/User/get",
                "/civicrm/ajax/api4/Role/get",
                // A keystroke name search: its prefixes as one multi-call request.
                "/civicrm/ajax/api4",
            ]
            .contains(&seen.target.as_str()),
            "{seen:?}"
        );
    }
}

fn key(text: &str) -> ApiKey {
    ApiKey::from_store(text.into())
}

fn assert_no_secret(message: &str) {
    assert!(!message.contains(ADMIN_KEY), "admin key in {message:?}");
    assert!(!message.contains(SITE_KEY), "site key in {message:?}");
    assert!(
        !message.chars().any(|c| c.is_control()),
        "control character in {message:?}"
    );
}

#[test]
fn missing_edit_api_keys_is_refused_and_nothing_is_written() {
    // Named in debug.unauthorized_fields, or only visible as a missing field.
    for debug in [true, false] {
        trap_is_refused(debug);
    }
}

fn trap_is_refused(debug: bool) {
    let server = FakeCivi::start(contract::contacts());
    server.set_mode(Mode::NoEditApiKeys { debug });
    let mut s = connect(&server);
    let expect_refusal = |r: Result<(), StoreError>| {
        let err = r.unwrap_err();
        assert!(matches!(err, StoreError::PermissionDenied(_)), "{err}");
        assert!(err.to_string().contains("'edit api keys'"), "{err}");
    };
    expect_refusal(s.read_key(1).map(drop));
    // The filter is ignored by the site: every contact would "hold" this key.
    expect_refusal(
        s.holders_of(&key("NobodyHasThisKeyNobodyHasThis01"))
            .map(drop),
    );
    expect_refusal(s.search(&Query::new("smith", 10)).map(drop));
    expect_refusal(s.contact(1).map(drop));
    let new = key("NewKeyNewKeyNewKeyNewKeyNewKey03");
    expect_refusal(s.swap_key(1, Some(&key(contract::KEY_A)), Some(&new)));
    expect_refusal(s.swap_key(2, None, Some(&new)));
    let mut keys = SeededKeySource::new(1);
    let (_journal_dir, mut j) = contract::journal(&s);
    let err = rotation::assign(
        &mut s,
        &mut j,
        &mut keys,
        2,
        &Expectation::Current,
        NewKey::Given(new),
    )
    .err()
    .expect("refused");
    assert!(err.to_string().contains("'edit api keys'"), "{err}");
    assert!(!err.store_may_have_changed());
    assert_eq!(server.state().updates_received, 0, "no update may be sent");
    assert_eq!(server.key_of(1).as_deref(), Some(contract::KEY_A));
    assert_eq!(server.key_of(2), None);
}

#[test]
fn http_failures_are_clear_errors() {
    let server = FakeCivi::start(contract::contacts());
    let mut s = connect(&server);
    type Check = fn(&StoreError) -> bool;
    let cases: Vec<(Mode, Check, &str)> = vec![
        (
            Mode::Forbidden,
            |e| matches!(e, StoreError::PermissionDenied(_)),
            "Error ID",
        ),
        (
            Mode::Maintenance,
            |e| matches!(e, StoreError::Unreachable(_)),
            "maintenance mode",
        ),
        (
            Mode::Html,
            |e| matches!(e, StoreError::BadData(_)),
            "web page instead of API data",
        ),
        (
            Mode::TruncatedJson,
            |e| matches!(e, StoreError::BadData(_)),
            "truncated JSON",
        ),
        (
            Mode::Huge,
            |e| matches!(e, StoreError::TooLarge(_)),
            "larger than 8 MiB",
        ),
        (
            Mode::ServerError,
            |e| matches!(e, StoreError::BadData(_)),
            "the site admin finds the details in CiviCRM's log under Error ID Fk",
        ),
    ];
    for (mode, is_right_kind, words) in cases {
        server.set_mode(mode.clone());
        for err in [
            s.search(&Query::new("", 50)).unwrap_err(),
            s.contact(1).unwrap_err(),
            s.read_key(1).unwrap_err(),
            s.swap_key(2, None, Some(&key("NewKeyNewKeyNewKeyNewKeyNewKey04")))
                .unwrap_err(),
        ] {
            let text = err.to_string();
            assert!(is_right_kind(&err), "{mode:?}: {text}");
            assert!(text.contains(words), "{mode:?}: {text}");
            assert_no_secret(&text);
        }
    }
    server.set_mode(Mode::Normal);
    assert_eq!(server.key_of(2), None, "no failed call wrote anything");
    assert_eq!(
        s.contact(1).unwrap().id,
        1,
        "the client still works after them"
    );
}

/// An update whose answer is unreadable may have applied; one CiviCRM itself rejected did not.
#[test]
fn failed_update_answers_say_whether_anything_may_have_changed() {
    let server = FakeCivi::start(contract::contacts());
    let mut s = connect(&server);
    let new = key("NewKeyNewKeyNewKeyNewKeyNewKey06");
    // The fake applies the truncated one and not the others: the client cannot tell which.
    for (id, mode, applied) in [
        (2, Mode::TruncatedJson, true),
        (5, Mode::Html, false),
        (6, Mode::Huge, false),
    ] {
        server.set_mode_for(mode.clone(), Some("update"));
        let err = s.swap_key(id, None, Some(&new)).unwrap_err();
        assert!(
            matches!(err, StoreError::OutcomeUnknown(_)),
            "{mode:?}: {err}"
        );
        assert_no_secret(&err.to_string());
        assert_eq!(server.key_of(id).is_some(), applied, "{mode:?}");
    }
    server.set_mode_for(Mode::ServerError, Some("update"));
    let err = s.swap_key(4, None, Some(&new)).unwrap_err();
    assert!(matches!(err, StoreError::BadData(_)), "{err}");
    assert!(err.to_string().contains("Error ID"), "{err}");
    // As CiviCRM refuses a key write by a user without 'edit api keys' (rest/028, 038).
    server.set_mode_for(Mode::Forbidden, Some("update"));
    let err = s.swap_key(4, None, Some(&new)).unwrap_err();
    assert!(matches!(err, StoreError::PermissionDenied(_)), "{err}");
    assert!(err.to_string().contains("'edit api keys'"), "{err}");
    assert!(err.to_string().contains("Error ID"), "{err}");
    assert_eq!(server.key_of(4), None);
    // With 'view debug output' the real message comes through instead.
    server.set_mode_for(Mode::Forbidden, Some("update"));
    server
        .state()
        .admin_permissions
        .push("view debug output".into());
    let err = s.swap_key(4, None, Some(&new)).unwrap_err();
    assert!(err.to_string().contains("Authorization failed"), "{err}");
}

#[test]
fn wrong_or_missing_credentials_answer_401() {
    let server = FakeCivi::start(contract::contacts());
    let mut wrong = options(&server.url(), Duration::from_secs(5));
    wrong.api_key = key("WrongWrongWrongWrongWrongWrong01");
    let err = RestStore::connect(&wrong)
        .unwrap()
        .search(&Query::new("", 5))
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::PermissionDenied(_)), "{text}");
    assert!(text.contains("authentication failed (HTTP 401)"), "{text}");
    // The text/plain body is quoted, its escape sequence made inert.
    assert!(text.contains("Invalid credential"), "{text}");
    assert!(!text.contains("WrongWrong"), "{text}");
    assert_no_secret(&text);

    let mut no_site_key = options(&server.url(), Duration::from_secs(5));
    no_site_key.site_key = None;
    let err = RestStore::connect(&no_site_key)
        .unwrap()
        .contact(1)
        .unwrap_err();
    assert!(matches!(err, StoreError::PermissionDenied(_)), "{err}");
}

/// Waits (up to 10 s) until the fake site shows `id` holding `expected`.
fn wait_for_key(server: &FakeCivi, id: u64, expected: Option<&str>) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if server.key_of(id).as_deref() == expected {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn slow_site_times_out_reads_and_leaves_writes_unknown() {
    let server = FakeCivi::start(contract::contacts());
    let mut s = RestStore::connect(&options(&server.url(), Duration::from_secs(1))).unwrap();
    server.set_mode(Mode::Slow(Duration::from_secs(3)));
    let start = Instant::now();
    let err = s.search(&Query::new("", 10)).unwrap_err();
    assert!(matches!(err, StoreError::Timeout(_)), "{err}");
    assert!(
        start.elapsed() < Duration::from_millis(2500),
        "{:?}",
        start.elapsed()
    );

    // Only the update is slow: the request reaches the site, the answer does not come back.
    server.set_mode_for(Mode::Slow(Duration::from_secs(3)), Some("update"));
    let new = key("SlowSlowSlowSlowSlowSlowSlowSl01");
    let err = s.swap_key(2, None, Some(&new)).unwrap_err();
    assert!(matches!(err, StoreError::OutcomeUnknown(_)), "{err}");
    assert!(err.to_string().contains("may or may not"), "{err}");
    assert_eq!(
        server.state().updates_received,
        1,
        "sent once, never retried"
    );
    // The site applied it after all: exactly why the outcome had to be "unknown".
    assert!(wait_for_key(&server, 2, Some(new.expose())));
    assert_eq!(server.state().updates_received, 1);

    // Through the workflow, the same failure says the store may have changed.
    let mut keys = SeededKeySource::new(3);
    let (_journal_dir, mut j) = contract::journal(&s);
    let err = rotation::assign(
        &mut s,
        &mut j,
        &mut keys,
        4,
        &Expectation::Current,
        NewKey::Generated(key("SlowSlowSlowSlowSlowSlowSlowSl02")),
    )
    .err()
    .expect("unknown");
    assert!(err.store_may_have_changed(), "{err}");
    assert!(wait_for_key(
        &server,
        4,
        Some("SlowSlowSlowSlowSlowSlowSlowSl02")
    ));
}

#[test]
fn nothing_listening_is_unreachable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut s = RestStore::connect(&options(
        &format!("http://127.0.0.1:{port}"),
        Duration::from_secs(2),
    ))
    .unwrap();
    let err = s.search(&Query::new("", 5)).unwrap_err();
    assert!(matches!(err, StoreError::Unreachable(_)), "{err}");
    let err = s
        .swap_key(1, None, Some(&key("NewKeyNewKeyNewKeyNewKeyNewKey05")))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Unreachable(_)),
        "nothing was sent: {err}"
    );
}

#[test]
fn plain_http_only_to_loopback_and_no_credentials_in_the_address() {
    let refused = |url: &str| -> String {
        match RestStore::connect(&options(url, Duration::from_secs(5))) {
            Ok(_) => panic!("{url} was accepted"),
            Err(e) => {
                assert!(matches!(e, StoreError::Invalid(_)), "{url}: {e}");
                e.to_string()
            }
        }
    };
    for url in [
        "http://crm.example.org",
        "http://10.0.0.5:8080",
        "http://localhost.example.org",
        "http://[2001:db8::1]",
    ] {
        assert!(refused(url).contains("https://"), "{url}");
    }
    let err = refused("https://admin:hunter2@crm.example.org");
    assert!(!err.contains("hunter2"), "{err}");
    refused("ftp://crm.example.org");
    refused("https://crm.example.org/?api_key=x");
    refused("not a url");
    for url in [
        "http://localhost:8080",
        "http://127.0.0.1",
        "http://127.9.9.9/",
        "http://[::1]:8080",
        "https://crm.example.org/",
    ] {
        let store = RestStore::connect(&options(url, Duration::from_secs(5)))
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(store.info().key_capacity, 32);
        assert!(store.info().keys_case_insensitive);
        assert!(!store.info().location.as_str().ends_with('/'));
    }
}

#[test]
fn secrets_stay_out_of_debug_and_info() {
    let server = FakeCivi::start(contract::contacts());
    let opts = options(&server.url(), Duration::from_secs(5));
    let store = RestStore::connect(&opts).unwrap();
    for text in [
        format!("{store:?}"),
        format!("{opts:?}"),
        format!("{:?}", store.info()),
    ] {
        assert_no_secret(&text);
    }
}

#[test]
fn deleted_contacts_are_written_through_the_explicit_is_deleted_filter() {
    let server = FakeCivi::start(contract::contacts());
    let mut s = connect(&server);
    assert_eq!(s.read_key(11).unwrap(), Some(key(contract::KEY_DELETED)));
    s.swap_key(11, Some(&key(contract::KEY_DELETED)), None)
        .unwrap();
    assert_eq!(server.key_of(11), None);
    assert_keys_stayed_out_of_urls(&server);
}

#[test]
fn keys_longer_than_the_column_are_refused_before_sending() {
    let server = FakeCivi::start(contract::contacts());
    let mut s = connect(&server);
    let long = key("LongLongLongLongLongLongLongLong123");
    let err = s.swap_key(2, None, Some(&long)).unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert_eq!(server.state().updates_received, 0);
}

/// Raw HTTP against the fake itself: it must behave as the documented API does, or the
/// tests above prove nothing.
fn raw(server: &FakeCivi, request: &str) -> String {
    let addr = server.url().trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn the_fake_site_answers_as_api_v4_documents() {
    let server = FakeCivi::start(contract::contacts());
    let no_auth = raw(
        &server,
        "POST /civicrm/ajax/api4/Contact/get HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(no_auth.starts_with("HTTP/1.1 400"), "{no_auth}");
    assert!(no_auth.contains("SECURITY ALERT"), "{no_auth}");
    let get_update = raw(
        &server,
        &format!(
            "GET /civicrm/ajax/api4/Contact/update HTTP/1.1\r\nHost: x\r\nX-Civi-Auth: Bearer {ADMIN_KEY}\r\nX-Civi-Key: {SITE_KEY}\r\nX-Requested-With: XMLHttpRequest\r\n\r\n"
        ),
    );
    assert!(get_update.starts_with("HTTP/1.1 405"), "{get_update}");
    // Deleted contacts are hidden unless is_deleted (or the id) is named.
    let body = "params=%7B%22select%22%3A%5B%22id%22%5D%2C%22where%22%3A%5B%5B%22display_name%22%2C%22%3D%22%2C%22Del+Eted%22%5D%5D%7D";
    let hidden = raw(
        &server,
        &format!(
            "POST /civicrm/ajax/api4/Contact/get HTTP/1.1\r\nHost: x\r\nX-Civi-Auth: Bearer {ADMIN_KEY}\r\nX-Civi-Key: {SITE_KEY}\r\nX-Requested-With: XMLHttpRequest\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(hidden.starts_with("HTTP/1.1 200"), "{hidden}");
    assert!(hidden.contains("\"values\":[]"), "{hidden}");
}

#[test]
fn recorded_refusals_become_clear_errors() {
    use civikey::store::rest::parse_contacts_answer;
    // rest/044: neither credentials nor X-Requested-With.
    let err = parse_contacts_answer(
        400,
        "application/json",
        br#"{"error_code": 400, "error_message": "SECURITY ALERT: Ajax requests can only be issued by javascript clients, eg. CRM.api4()."}"#,
    )
    .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert!(
        err.to_string()
            .contains("did not recognise the request as an API call"),
        "{err}"
    );
    // rest/064: the generic 500 a user without 'view debug output' gets.
    let err = parse_contacts_answer(
        500,
        "application/json",
        br#"{"error_code": "1", "error_message": "Sorry an error occurred and your request was not completed. (Error ID: rogO-PGAw-5L7B)", "status": 500}"#,
    )
    .unwrap_err();
    assert!(matches!(err, StoreError::BadData(_)), "{err}");
    assert!(
        err.to_string()
            .contains("CiviCRM's log under Error ID rogO-PGAw-5L7B"),
        "{err}"
    );
    // Maintenance mode: 503 JSON with status_message.
    let err = parse_contacts_answer(
        503,
        "application/json",
        br#"{"status_code": 503, "status_message": "The site is down for maintenance."}"#,
    )
    .unwrap_err();
    assert!(matches!(err, StoreError::Unreachable(_)), "{err}");
    assert!(err.to_string().contains("maintenance mode"), "{err}");
    assert!(
        err.to_string()
            .contains("The site is down for maintenance."),
        "{err}"
    );
    // rest/041: authx's guard.
    let err = parse_contacts_answer(
        401,
        "text/plain;charset=UTF-8",
        b"HTTP 401 Login not permitted. Must satisfy guard (site_key, perm).",
    )
    .unwrap_err();
    assert!(err.to_string().contains("site_key_file"), "{err}");
}

/// A least-privilege key admin (edit api keys, every contact, but not 'cms:administer
/// users'): User.get answers its own user row only, UFMatch.get and Role.get 403. No
/// contact may be said to lack a user; one Role.get tells, once per store.
#[test]
fn a_least_privilege_admin_is_told_users_are_unknown_never_none() {
    use civikey::store::{AccountState, CmsLink, Standing};
    let server = FakeCivi::start(contract::contacts());
    server
        .state()
        .admin_permissions
        .retain(|p| p != "cms:administer users");
    let mut s = connect(&server);
    let all = s.standings(&[1, 2, 3]).unwrap();
    for id in [1, 2, 3] {
        assert_eq!(all[&id], Standing::HIDDEN, "contact {id}");
        let contact = s.contact(id).unwrap();
        assert_eq!(contact.cms, CmsLink::Unknown, "the list says cms? too");
        let warnings = civikey::assess::assess(&contact, &all[&id]);
        let codes: Vec<&str> = warnings.iter().map(|w| w.code.as_str()).collect();
        assert!(!codes.contains(&"no_user_account"), "{id}: {codes:?}");
        assert!(
            !codes.contains(&"no_api_login_permission"),
            "{id}: {codes:?}"
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.code.as_str() == "roles_unknown"
                    && w.text.contains("'cms:administer users'")),
            "{id}: {warnings:?}"
        );
        assert_eq!(civikey::assess::needs_site_key(&contact, &all[&id]), None);
    }
    let _ = s.standing(2).unwrap();
    let probes = server
        .state()
        .requests
        .iter()
        .filter(|r| r.call == "Role/get")
        .count();
    assert_eq!(probes, 1, "asked once per store, not per contact");
    assert!(matches!(
        s.standing(1).unwrap().account,
        AccountState::Hidden
    ));

    let report = civikey::health::check(
        &mut s,
        None,
        civikey::health::Options::default(),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(report.count(civikey::health::Code::NoUserAccount), 0);
    assert_eq!(report.count(civikey::health::Code::NoApiLoginPermission), 0);
    assert!(report.users_hidden);
    assert!(
        report.summary().contains("user accounts could not be read")
            && report.summary().contains("'cms:administer users'"),
        "{}",
        report.summary()
    );
}

/// A blocked Standalone user's key still logs in: the warning says so and `check` ranks
/// it high, with "revoke".
#[test]
fn a_blocked_standalone_user_s_key_is_a_high_finding() {
    let server = FakeCivi::start(contract::contacts());
    server.state().user_of_mut(1).unwrap().active = false;
    let mut s = connect(&server);
    let contact = s.contact(1).unwrap();
    let warnings = civikey::assess::assess(&contact, &s.standing(1).unwrap());
    assert_eq!(warnings[0].code.as_str(), "user_blocked");
    assert!(warnings[0].text.contains("STILL logs in"), "{warnings:?}");
    let report = civikey::health::check(
        &mut s,
        None,
        civikey::health::Options::default(),
        &mut |_, _| {},
    )
    .unwrap();
    let blocked: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.code == civikey::health::Code::UserBlocked)
        .collect();
    assert!(!blocked.is_empty(), "{report:?}");
    for f in blocked {
        assert_eq!(f.severity, civikey::health::Severity::High);
        assert_eq!(f.code.remedy().as_str(), "revoke");
        assert!(f.advice.contains("still logs in"), "{}", f.advice);
    }
}

#[test]
fn standing_comes_from_user_get_and_role_get_on_standalone() {
    use civikey::store::{AccountState, Standing};
    let server = FakeCivi::start(contract::contacts());
    server.state().user_of_mut(2).unwrap().active = false;
    let mut s = connect(&server);
    let all = s.standings(&[1, 2, 3]).unwrap();
    let AccountState::Account(ada) = &all[&1].account else {
        panic!("{:?}", all[&1])
    };
    assert_eq!((ada.id, ada.name.as_str(), ada.active), (11, "ada", true));
    let roles = all[&1].roles.as_ref().unwrap();
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0].name.as_str(), "authenticated");
    assert!(!roles[0].grants_api_login);
    assert!(matches!(&all[&2].account, AccountState::Account(u) if !u.active));
    assert_eq!(all[&3], Standing::no_account());
    let warnings: Vec<&str> = civikey::assess::assess(&s.contact(2).unwrap(), &all[&2])
        .iter()
        .map(|w| w.code.as_str())
        .collect();
    assert_eq!(warnings, ["user_blocked", "no_api_login_permission"]);

    // Not Standalone (no User entity): only "no user account" can be told.
    server.state().standalone = false;
    assert_eq!(s.standing(1).unwrap(), Standing::UNKNOWN);
    assert_eq!(s.standing(3).unwrap(), Standing::no_account());
    // An admin who may not read users or UFMatch: nothing can be told, and lists still work.
    server
        .state()
        .admin_permissions
        .retain(|p| p != "cms:administer users");
    assert_eq!(s.standing(3).unwrap(), Standing::UNKNOWN);
    assert_eq!(s.contact(1).unwrap().cms, civikey::store::CmsLink::Unknown);
    // A keystroke search (its links asked in the page's multi-call) still lists them.
    let page = s.search(&Query::new("ad", 50)).unwrap();
    assert!(!page.contacts.is_empty());
    assert!(page
        .contacts
        .iter()
        .all(|c| c.cms == civikey::store::CmsLink::Unknown));
}

#[test]
fn a_site_with_two_domains_lists_each_contact_once() {
    let server = FakeCivi::start(contract::contacts());
    server.add_second_domain();
    let mut s = connect(&server);
    let mut seen = Vec::new();
    let mut query = Query::new("", 3);
    loop {
        let page = s.search(&query).unwrap();
        seen.extend(page.contacts.iter().map(|c| (c.id, c.cms)));
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    let mut ids: Vec<u64> = seen.iter().map(|(id, _)| *id).collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "a contact came twice: {seen:?}");
    assert_eq!(count, contract::contacts().len());
    assert!(
        seen.contains(&(1, civikey::store::CmsLink::Linked { uf_id: 11 })),
        "the current domain's link: {seen:?}"
    );
    // A keystroke search gets its links in the page's multi-call: the current domain's,
    // once, and none for a contact without a user.
    for (text, id, link) in [
        ("ad", 1, civikey::store::CmsLink::Linked { uf_id: 11 }),
        ("gra", 3, civikey::store::CmsLink::None),
    ] {
        let page = s.search(&Query::new(text, 50)).unwrap();
        let found: Vec<_> = page.contacts.iter().filter(|c| c.id == id).collect();
        assert_eq!(found.len(), 1, "{text}");
        assert_eq!(found[0].cms, link, "{text}");
    }
}

#[test]
fn api_url_templates_reach_api_v4_through_the_cms_route() {
    for route in [
        "/wp-admin/admin.php?page=CiviCRM&q=civicrm/ajax/api4/{entity}/{action}",
        "/administrator/index.php?option=com_civicrm&task=civicrm/ajax/api4/{entity}/{action}",
    ] {
        let server = FakeCivi::start(contract::contacts());
        let mut opts = options(&server.url(), Duration::from_secs(5));
        opts.base_url = format!("{}{route}", server.url());
        let mut s = StoreSpec::Rest(opts).open().unwrap();
        assert_eq!(s.contact(1).unwrap().id, 1);
        let new = key("TemplateTemplateTemplateTemplat1");
        s.swap_key(2, None, Some(&new)).unwrap();
        assert_eq!(server.key_of(2).as_deref(), Some(new.expose()));
        let state = server.state();
        assert!(!state.key_in_url);
        let path = route.split('?').next().unwrap();
        assert!(
            state
                .requests
                .iter()
                .all(|r| r.target.starts_with(path) && r.method == "POST"),
            "{:?}",
            state.requests
        );
        assert!(state
            .requests
            .iter()
            .any(|r| r.target.ends_with("civicrm/ajax/api4/Contact/update")));
    }
    for (address, words) in [
        (
            "https://example.org/wp-admin/admin.php?page=CiviCRM&q=civicrm/ajax/api4/{entity}",
            "{entity} and {action}",
        ),
        (
            "https://example.org/x.php?q=civicrm/ajax/api4/{entity}/{action}&_authx=Bearer+x",
            "credential",
        ),
        (
            "https://example.org/x.php?q=civicrm/ajax/api4/{entity}/{action}#top",
            "fragment",
        ),
        (
            "http://example.org/x.php?q=civicrm/ajax/api4/{entity}/{action}",
            "plain http",
        ),
        (
            "https://user:pw@example.org/x.php?q={entity}/{action}",
            "user name or password",
        ),
        (
            "https://example.org/?q=civicrm/ajax/api4/Contact/get",
            "must not have a query",
        ),
    ] {
        let mut opts = options("https://example.org", Duration::from_secs(5));
        opts.base_url = address.to_string();
        let err = RestStore::connect(&opts).unwrap_err();
        assert!(err.to_string().contains(words), "{address}: {err}");
    }
}

/// The login check against authx's guards as recorded (rest/036, 037, 041, 101, 104).
#[test]
fn the_login_check_logs_in_once_with_the_new_key_and_says_what_it_saw() {
    use civikey::login_check::check;
    let server = FakeCivi::start(contract::contacts());
    let mut s = connect(&server);
    let site = s.login_site().expect("a REST store knows its site");
    let new = key("LoginCheckLoginCheckLoginCheck01");
    let (_journal_dir, mut j) = contract::journal(&s);
    let mut keys = SeededKeySource::new(9);
    rotation::assign(
        &mut s,
        &mut j,
        &mut keys,
        1,
        &Expectation::Current,
        NewKey::Given(new.clone()),
    )
    .unwrap();
    let before = server.state().requests.len();
    let ok = check(&site, &new, 1);
    assert!(ok.ok, "{ok:?}");
    assert_eq!(ok.contact_id, Some(1));
    assert_eq!(ok.detail, "logs in as contact 1");
    {
        let state = server.state();
        let sent: Vec<_> = state.requests[before..].iter().collect();
        assert_eq!(sent.len(), 1, "one call: {sent:?}");
        assert_eq!(sent[0].credential.as_deref(), Some(new.expose()));
        assert!(sent[0].site_key_sent, "the profile has a site key");
    }

    // Ada's role lacks 'authenticate with api key': without the site key authx refuses.
    let mut no_site_key = site.clone();
    no_site_key.site_key = None;
    let before = server.state().requests.len();
    let refused = check(&no_site_key, &new, 1);
    assert!(!refused.ok);
    assert_eq!(refused.contact_id, None);
    assert!(
        refused
            .detail
            .contains("HTTP 401 Login not permitted. Must satisfy guard (site_key, perm)."),
        "{refused:?}"
    );
    assert!(
        refused.detail.contains("'authenticate with api key'"),
        "{refused:?}"
    );
    assert_eq!(server.state().requests.len(), before + 1, "never retried");
    assert_eq!(
        server.key_of(1).as_deref(),
        Some(new.expose()),
        "a failed check undoes nothing"
    );

    // A blocked user: on Standalone its key still logs in (rest/122), and the check says
    // what really happens; a CMS that checks blocks refuses it.
    server.state().user_of_mut(1).unwrap().active = false;
    let blocked = check(&site, &new, 1);
    assert!(
        blocked.ok,
        "Standalone does not check blocked users: {blocked:?}"
    );
    assert_eq!(blocked.detail, "logs in as contact 1");
    server.state().standalone = false;
    let blocked = check(&site, &new, 1);
    assert!(
        !blocked.ok && blocked.detail.contains("User is blocked"),
        "{blocked:?}"
    );
    server.state().standalone = true;
    server.state().user_of_mut(1).unwrap().active = true;

    // Another contact with a lower id holds the same key (letter case aside): it wins.
    let shared = key("SharedSharedSharedSharedShared01");
    {
        let mut state = server.state();
        state
            .contacts
            .iter_mut()
            .find(|c| c.id == 2)
            .unwrap()
            .api_key = Some(shared.expose().to_lowercase());
        state
            .contacts
            .iter_mut()
            .find(|c| c.id == 5)
            .unwrap()
            .api_key = Some(shared.expose().to_string());
    }
    let collision = check(&site, &shared, 5);
    assert!(!collision.ok);
    assert_eq!(collision.contact_id, Some(2));
    assert!(
        collision.detail.starts_with("logs in, but as contact 2"),
        "{collision:?}"
    );

    // A contact with no user account: with the site key it logs in with no permissions.
    let nouser = key("NoUserNoUserNoUserNoUserNoUser01");
    server
        .state()
        .contacts
        .iter_mut()
        .find(|c| c.id == 4)
        .unwrap()
        .api_key = Some(nouser.expose().to_string());
    let empty = check(&site, &nouser, 4);
    assert!(!empty.ok && empty.contact_id.is_none(), "{empty:?}");
    let without = check(&no_site_key, &nouser, 4);
    assert!(without.detail.contains("Must satisfy guard"), "{without:?}");

    for c in [&ok, &refused, &blocked, &collision, &empty, &without] {
        for k in [&new, &shared, &nouser] {
            assert!(!c.detail.contains(k.expose()), "{c:?}");
        }
        assert_no_secret(&c.detail);
    }
}

/// A site whose error quotes the request (both keys, upper-cased): through the rotation
/// workflow, neither key reaches the error shown or the journal.
#[test]
fn a_rotation_journals_and_shows_site_errors_without_keys() {
    let server = FakeCivi::start(contract::contacts());
    server.set_mode_for(Mode::EchoParams, Some("update"));
    let mut store = connect(&server);
    let (_dir, mut journal) = contract::journal(&store);
    let new = key("EchoedEchoedEchoedEchoedEchoed03");
    let err = rotation::assign(
        &mut store,
        &mut journal,
        &mut SeededKeySource::new(1),
        1,
        &Expectation::Current,
        NewKey::Given(new.clone()),
    )
    .err()
    .expect("the site failed");
    let shown = err.to_string();
    assert!(
        shown.contains("DB ERROR") || shown.contains("DB Error"),
        "{shown}"
    );
    let record = &journal.entries(Some(1), true, 1).unwrap()[0];
    let journaled = record.error.clone().unwrap_or_default();
    let file = String::from_utf8_lossy(&std::fs::read(journal.path()).unwrap()).to_lowercase();
    for text in [shown.to_lowercase(), journaled.to_lowercase(), file] {
        for k in [contract::KEY_A, new.expose()] {
            assert!(!text.contains(&k.to_lowercase()), "{text}");
        }
    }
}

#[test]
fn an_ids_file_is_validated_in_a_few_requests() {
    let f = fixture();
    let mut s = contract::Fixture::open(&f);
    let before = f.server.state().requests.len();
    let ids: Vec<u64> = (1..=30).collect();
    let found = s.contacts(&ids).unwrap();
    assert_eq!(found.len(), 30);
    let requests = f.server.state().requests.len() - before;
    assert_eq!(requests, 2, "one page of ids, then its CMS links");
}

/// A first-name prefix of two letters or more is read sort name ascending, id descending
/// (MariaDB then reads the branch's own index range), and the last sort name's contacts
/// are read again with the page: paged by 4 and 5, every contact comes once, in (sort
/// name, id) order, even when many share one sort name and some of them are spelt in
/// another case.
#[test]
fn a_sorted_first_name_branch_pages_through_a_shared_sort_name() {
    let server = FakeCivi::start(contract::shared_sort_name_contacts());
    let mut s = connect(&server);
    let mut requests = Vec::new();
    let mut before = server.state().requests.len();
    contract::a_sorted_branch_pages_through_a_shared_sort_name(&mut s, &mut || {
        let now = server.state().requests.len();
        requests.push(now - before);
        before = now;
    });
    // The branches with their rows and links, in one request; where the page reaches a
    // sorted branch's last sort name, the page ordered by the site (a second). The links
    // of contacts that came from that sort name alone are in the branch's links call.
    assert!(requests.iter().all(|&n| n == 1 || n == 2), "{requests:?}");
    assert!(
        requests.contains(&1) && requests.contains(&2),
        "{requests:?}"
    );
    // Users for some of the contacts that share the last sort name: paged by 4, each
    // comes with its own link.
    {
        let mut state = server.state();
        for (uf_id, contact_id) in [(900, 20), (901, 24), (902, 31)] {
            state.users.push(fake_civicrm::FakeUser {
                id: uf_id,
                domain_id: 1,
                contact_id,
                username: format!("u{uf_id}"),
                active: true,
                roles: Vec::new(),
            });
        }
    }
    let (seen, requests) = pages(&mut s, &server, "carla", 4);
    let linked: Vec<(u64, CmsLink)> = seen
        .iter()
        .copied()
        .filter(|(_, link)| *link != CmsLink::None)
        .collect();
    assert_eq!(
        linked,
        vec![
            (20, CmsLink::Linked { uf_id: 900 }),
            (24, CmsLink::Linked { uf_id: 901 }),
            (31, CmsLink::Linked { uf_id: 902 })
        ],
        "{seen:?}"
    );
    assert!(requests.contains(&2), "{requests:?}");
    // A one-letter keystroke (no sorted branch): one request.
    let before = server.state().requests.len();
    let page = s.search(&Query::new("z", 50)).unwrap();
    assert_eq!(page.contacts.len(), 13);
    assert_eq!(server.state().requests.len() - before, 1);
}

/// Contacts whose sort name is NULL (the site answers `"sort_name": null` and sorts them
/// first): a keystroke that finds them pages through every one, by 1, 2, 4 and 50.
#[test]
fn null_sort_names_page_first_and_completely() {
    let server = FakeCivi::start(contract::null_sort_name_contacts());
    server.null_sort_names(&contract::NULL_SORT_NAME_IDS);
    contract::null_sort_names_page_first_and_completely(&mut connect(&server));
}

/// [`contract::individual`] with an email and, if given, a CMS user.
fn person(id: i64, sort_name: &str, first: &str, uf_id: Option<i64>) -> SeedContact {
    SeedContact {
        email: Some(format!("p{id}@example.org")),
        uf_id,
        ..contract::individual(id, sort_name, first)
    }
}

/// Ids and CMS links of every page of a name search, paged by `by`, and the requests each
/// page took.
fn pages(
    s: &mut RestStore,
    server: &FakeCivi,
    text: &str,
    by: usize,
) -> (Vec<(u64, CmsLink)>, Vec<usize>) {
    let (mut seen, mut requests) = (Vec::new(), Vec::new());
    let mut query = Query::new(text, by);
    loop {
        let before = server.state().requests.len();
        let page = s.search(&query).unwrap();
        requests.push(server.state().requests.len() - before);
        seen.extend(page.contacts.iter().map(|c| (c.id, c.cms)));
        match page.next {
            Some(next) => query.after = Some(next),
            None => return (seen, requests),
        }
    }
}

/// Where two names first differ in punctuation, or outside ASCII, only the site's
/// collation knows their order: the page is then ordered by the site (a second request),
/// and paging still gives every contact once in the site's order. Names that differ in
/// ASCII letters, digits or a space against a letter are ordered here, in one request.
#[test]
fn a_page_whose_order_only_the_collation_knows_is_ordered_by_the_site() {
    let server = FakeCivi::start(vec![
        person(1, "Ann-Marie, Zoe", "Zoe", None),
        person(2, "Ann.Marie, Yves", "Yves", Some(7)),
        person(3, "Annéa, Xavier", "Xavier", None),
        person(4, "Annea, Will", "Will", None),
        person(5, "Ann Lee, Vera", "Vera", None),
        person(6, "Zed, Anna", "Anna", Some(8)),
        person(7, "Ann2, Tom", "Tom", None),
        person(8, "ANN, Sue", "Sue", None),
    ]);
    let mut s = connect(&server);
    let all: Vec<u64> = {
        let page = s.search(&Query::new("ann", 50)).unwrap();
        page.contacts.iter().map(|c| c.id).collect()
    };
    // The fake's collation: space, punctuation, digits, letters; accents and case folded.
    assert_eq!(all, vec![5, 8, 1, 2, 7, 4, 3, 6]);
    for by in [1, 2, 3, 8] {
        let (seen, requests) = pages(&mut s, &server, "ann", by);
        let ids: Vec<u64> = seen.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, all, "paged by {by}");
        let links: Vec<CmsLink> = seen.iter().map(|(_, l)| *l).collect();
        assert_eq!(links[3], CmsLink::Linked { uf_id: 7 }, "paged by {by}");
        assert_eq!(links[7], CmsLink::Linked { uf_id: 8 }, "paged by {by}");
        assert!(
            links.iter().filter(|l| **l == CmsLink::None).count() == 6,
            "{links:?}"
        );
        // "Ann-Marie" against "Ann.Marie", "Annea" against "Annéa": the site orders them.
        assert!(requests.contains(&2), "paged by {by}: {requests:?}");
        assert!(
            requests.iter().all(|&n| n == 1 || n == 2),
            "paged by {by}: {requests:?}"
        );
    }
    // Letters, digits and spaces only: one request a page.
    let (seen, requests) = pages(&mut s, &server, "zed", 1);
    assert_eq!(seen, vec![(6, CmsLink::Linked { uf_id: 8 })]);
    assert_eq!(requests, vec![1]);
}

/// More CMS users match a keystroke than one UFMatch call returns: the page's links then
/// come from a call on its own ids, and are still right.
#[test]
fn a_keystroke_matching_more_users_than_one_links_call_still_gets_each_link() {
    let seeds: Vec<SeedContact> = (1..=520)
        .map(|id| person(id, &format!("Berg, Bo{id:04}"), "Bo", Some(10_000 + id)))
        .chain([person(600, "Berg, Zu", "Zu", None)])
        .collect();
    let server = FakeCivi::start(seeds);
    let mut s = connect(&server);
    let before = server.state().requests.len();
    let page = s.search(&Query::new("berg", 50)).unwrap();
    assert_eq!(server.state().requests.len() - before, 2);
    assert_eq!(page.contacts.len(), 50);
    for c in &page.contacts {
        assert_eq!(
            c.cms,
            CmsLink::Linked {
                uf_id: 10_000 + c.id
            },
            "{}",
            c.id
        );
    }
    // The last page: one contact with a user, one without. The store has learnt that
    // this site has many users: two requests, the first without links calls.
    let mut query = Query::new("berg", 50);
    query.after = Some(Cursor::After {
        sort_name: Some("Berg, Bo0519".into()),
        id: 519,
    });
    let before = server.state().requests.len();
    let page = s.search(&query).unwrap();
    let sent: Vec<String> = server.state().requests[before..]
        .iter()
        .map(|r| r.body.clone())
        .collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        sent[0].contains("Contact") && !sent[0].contains("UFMatch"),
        "{}",
        sent[0]
    );
    assert!(sent[1].contains("UFMatch"), "{}", sent[1]);
    let got: Vec<(u64, CmsLink)> = page.contacts.iter().map(|c| (c.id, c.cms)).collect();
    assert_eq!(
        got,
        vec![
            (520, CmsLink::Linked { uf_id: 10_520 }),
            (600, CmsLink::None)
        ]
    );
}

/// A site whose UFMatch.get refuses the contact's fields (`contact_id.sort_name`): the
/// links come from the site's ordering request, by ids, and are right.
#[test]
fn a_site_refusing_the_links_join_still_gives_each_link() {
    let server = FakeCivi::start(vec![
        person(1, "Berg, Al", "Al", Some(70)),
        person(2, "Berg, Bo", "Bo", None),
    ]);
    server.state().uf_contact_join = false;
    let mut s = connect(&server);
    let before = server.state().requests.len();
    let page = s.search(&Query::new("berg", 50)).unwrap();
    assert_eq!(server.state().requests.len() - before, 2);
    let got: Vec<(u64, CmsLink)> = page.contacts.iter().map(|c| (c.id, c.cms)).collect();
    assert_eq!(
        got,
        vec![(1, CmsLink::Linked { uf_id: 70 }), (2, CmsLink::None)]
    );
    server.state().uf_contact_join = true;
    let before = server.state().requests.len();
    let again = s.search(&Query::new("berg", 50)).unwrap();
    assert_eq!(server.state().requests.len() - before, 1);
    let same: Vec<(u64, CmsLink)> = again.contacts.iter().map(|c| (c.id, c.cms)).collect();
    assert_eq!(same, got);
}
