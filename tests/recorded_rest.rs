//! Every exchange recorded from a real CiviCRM 6.14 Standalone site (tests/recorded/rest/,
//! see tests/recorded/README.md) replayed, in order, against the fake site of
//! tests/fake_civicrm, set up as the recorded site was. The fake must answer with the same
//! status, the same content type, the same body shape (top-level fields, the fields of
//! the records, whether any came back, update counts) and the same texts (401 bodies, error
//! messages with the Error ID masked). A fake that drifts from the recording fails here.

mod fake_civicrm;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use serde_json::Value;

use fake_civicrm::{FakeCivi, FakeContact, FakeRole, FakeUser, State, ALL_PERMISSIONS};

const ADMIN: &str = "AdminRecordedKey0000000000000203";
const USER: &str = "LimitedRecordedKey00000000000204";
const NOUSER: &str = "NouserRecordedKey000000000000205";
const OWN: &str = "OwnkeyRecordedKeyOld000000000001";
const OWN_NEW: &str = "OwnkeyRecordedKeyNew000000000001";
const OWN_NEW2: &str = "OwnkeyRecordedKeyNewer0000000001";
const STAFF: &str = "StaffRecordedKey0000000001001002";
const SITE: &str = "SiteKeyRecordedSiteKeyRecordedSiteKey040";

/// Exchanges civikey does not make and the fake does not model, with the reason.
const NOT_MODELLED: &[(&str, &str)] = &[
    (
        "072",
        "Contact.autocomplete: civikey searches with Contact.get",
    ),
    ("073", "Contact.autocomplete"),
    ("074", "Contact.autocomplete"),
    ("075", "Contact.autocomplete"),
    (
        "080",
        "Permission.get: civikey reads roles through Role.get",
    ),
    ("081", "Permission.get"),
    (
        "082",
        "Contact.checkAccess: not a reliable sign (see the recording's notes)",
    ),
    ("083", "Contact.checkAccess"),
    ("084", "Contact.checkAccess"),
    ("085", "Contact.checkAccess"),
    (
        "086",
        "Contact.getFields: civikey detects the permission trap by the absent api_key",
    ),
    ("087", "Contact.getFields"),
    ("088", "Contact.getFields"),
    ("089", "Contact.getFields"),
    ("090", "Contact.getFields"),
    (
        "094",
        "multi-call with an index form: civikey sends [entity, action, params] only",
    ),
    (
        "095",
        "multi-call as a JSON list: civikey names its calls in an object",
    ),
    ("112", "legacy REST (APIv3): civikey uses API v4 only"),
    ("113", "legacy REST (APIv3)"),
];

fn recorded_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/recorded/rest")
}

fn substitute(text: &str) -> String {
    let split = format!("{} {}", &ADMIN[..8], &ADMIN[8..]);
    let mut out = text
        .replace("<ADMIN_KEY with a space after its 8th character>", &split)
        .replace("<ADMIN_KEY upper-cased>", &ADMIN.to_uppercase())
        .replace(
            "<OWNKEY_USER_KEY_NEW2 upper-cased>",
            &OWN_NEW2.to_uppercase(),
        )
        .replace(
            "<OWNKEY_USER_KEY_NEW2 lower-cased>",
            &OWN_NEW2.to_lowercase(),
        )
        .replace("<base64 of admin:password>", "YWRtaW46cGFzc3dvcmQ=");
    for (placeholder, value) in [
        ("<ADMIN_KEY>", ADMIN),
        ("<USER_KEY>", USER),
        ("<NOUSER_KEY>", NOUSER),
        ("<OWNKEY_USER_KEY_NEW2>", OWN_NEW2),
        ("<OWNKEY_USER_KEY_NEW>", OWN_NEW),
        ("<OWNKEY_USER_KEY>", OWN),
        ("<STAFF_USER_KEY>", STAFF),
        ("<SITE_KEY>", SITE),
    ] {
        out = out.replace(placeholder, value);
    }
    out
}

fn form_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The recorded site before the first exchange: its contacts (as the recorded answers
/// show them), users and roles.
fn recorded_site(files: &[(String, Value)]) -> State {
    let mut s = State::empty();
    s.site_key = SITE.to_string();
    let mut contacts: Vec<FakeContact> = Vec::new();
    for (_, x) in files {
        let Some(values) = x.pointer("/response/body/values").and_then(Value::as_array) else {
            continue;
        };
        if x.pointer("/request/path")
            .and_then(Value::as_str)
            .is_some_and(|p| !p.contains("Contact/"))
        {
            continue;
        }
        for v in values {
            let Some(id) = v.get("id").and_then(Value::as_u64) else {
                continue;
            };
            let text = |f: &str| v.get(f).and_then(Value::as_str).map(str::to_string);
            match contacts.iter_mut().find(|c| c.id == id) {
                Some(c) => {
                    if c.sort_name.is_none() {
                        c.sort_name = text("sort_name");
                    }
                    if c.email.is_none() {
                        c.email = text("email_primary.email");
                    }
                }
                None => contacts.push(FakeContact {
                    id,
                    contact_type: text("contact_type").unwrap_or("Individual".into()),
                    display_name: text("display_name").unwrap_or_default(),
                    sort_name: text("sort_name"),
                    first_name: text("first_name"),
                    last_name: text("last_name"),
                    email: text("email_primary.email"),
                    is_deleted: id == 1012,
                    api_key: None,
                }),
            }
        }
    }
    for (id, key) in [
        (203, ADMIN),
        (204, USER),
        (205, NOUSER),
        (1001001, OWN),
        (1001002, STAFF),
        // Set by SQL before 027 was recorded (its note).
        (1002, "casOldKey1002AAAAAAAAAAAAAAAAAAA"),
    ] {
        match contacts.iter_mut().find(|c| c.id == id) {
            Some(c) => c.api_key = Some(key.to_string()),
            None => contacts.push(FakeContact {
                id,
                contact_type: "Individual".into(),
                display_name: format!("Contact {id}"),
                sort_name: Some(format!("Contact {id}")),
                first_name: None,
                last_name: None,
                email: None,
                is_deleted: false,
                api_key: Some(key.to_string()),
            }),
        }
    }
    // rest/115's note: contact 204's first name (no recorded answer selects it).
    if let Some(c) = contacts.iter_mut().find(|c| c.id == 204) {
        c.first_name.get_or_insert_with(|| "Limited".into());
    }
    contacts.sort_by_key(|c| c.id);
    s.contacts = contacts;
    let role = |id: u64, name: &str, permissions: &[&str]| FakeRole {
        id,
        name: name.into(),
        label: name.into(),
        permissions: permissions.iter().map(|p| p.to_string()).collect(),
        active: true,
    };
    s.roles = vec![
        role(2, "admin", &[ALL_PERMISSIONS]),
        role(
            3,
            "staff",
            &[
                "access CiviCRM",
                "access AJAX API",
                "view all contacts",
                "edit all contacts",
            ],
        ),
        role(
            4,
            "apiuser",
            &[
                "access CiviCRM",
                "view all contacts",
                "authenticate with api key",
                "access AJAX API",
            ],
        ),
        role(
            5,
            "ownkeys",
            &[
                "access CiviCRM",
                "view all contacts",
                "authenticate with api key",
                "access AJAX API",
                "edit own api keys",
            ],
        ),
    ];
    let user = |id: u64, contact_id: u64, username: &str, role: u64| FakeUser {
        id,
        domain_id: 1,
        contact_id,
        username: username.into(),
        active: true,
        roles: vec![role],
    };
    s.users = vec![
        user(1, 203, "admin", 2),
        user(2, 204, "limited", 4),
        user(3, 1001001, "ownkey", 5),
        user(4, 1001002, "staffer", 3),
    ];
    s
}

/// What the second recording changed on the site before an exchange (its notes):
/// the limited user blocked for 122 and back for 123, maintenance mode on for 124-128 and
/// off for 129, and the site's 49,486 live and 528 trashed key holders for 130-133.
fn recorded_state_change(s: &mut State, number: &str) {
    let blocked = |s: &mut State, active: bool| {
        s.users.iter_mut().find(|u| u.id == 2).unwrap().active = active;
    };
    match number {
        "122" => blocked(s, false),
        "123" => blocked(s, true),
        "124" => s.mode = fake_civicrm::Mode::Maintenance,
        "129" => s.mode = fake_civicrm::Mode::Normal,
        "130" => holders_as_recorded(s, 49_486, 528),
        _ => {}
    }
}

/// Synthetic key holders (ids from 2,000,001, no user) until the site holds `live` keys
/// on live contacts and `trashed` on trashed ones, as when rest/130-133 were recorded.
fn holders_as_recorded(s: &mut State, live: usize, trashed: usize) {
    let held = |s: &State, deleted: bool| {
        s.contacts
            .iter()
            .filter(|c| c.is_deleted == deleted && c.api_key.is_some())
            .count()
    };
    let mut id = 2_000_000;
    for (deleted, want) in [(false, live), (true, trashed)] {
        for _ in held(s, deleted)..want {
            id += 1;
            s.contacts.push(FakeContact {
                id,
                contact_type: "Individual".into(),
                display_name: format!("Holder {id}"),
                sort_name: Some(format!("Holder, {id}")),
                first_name: Some("Holder".into()),
                last_name: Some(id.to_string()),
                email: None,
                is_deleted: deleted,
                api_key: Some(format!("HolderKey{id:023}")),
            });
        }
    }
}

struct Reply {
    status: u16,
    content_type: String,
    body: String,
}

/// The text of a recorded multi-call's `calls` object, as recorded (its calls in order;
/// serde_json's maps would sort them), without the pretty-printing whitespace.
fn raw_calls(file_text: &str) -> Option<String> {
    let start = file_text.find("\"calls\": {")? + "\"calls\": ".len();
    let mut depth = 0;
    let mut in_string = false;
    let mut escaped = false;
    let mut out = String::new();
    for c in file_text[start..].chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            c if c.is_whitespace() && !in_string => continue,
            '{' | '[' if !in_string => depth += 1,
            '}' | ']' if !in_string => depth -= 1,
            _ => {}
        }
        out.push(c);
        if depth == 0 {
            return Some(out);
        }
    }
    None
}

fn send(url: &str, request: &Value, calls: Option<&str>) -> Reply {
    let method = request["method"].as_str().unwrap();
    let path = substitute(request["path"].as_str().unwrap());
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    if let Some(headers) = request["headers"].as_object() {
        for (name, value) in headers {
            head.push_str(&format!(
                "{name}: {}\r\n",
                substitute(value.as_str().unwrap())
            ));
        }
    }
    let mut body = String::new();
    if method == "POST" {
        let params = match (request.get("params"), request.get("params_raw")) {
            (_, Some(Value::String(raw))) => Some(raw.clone()),
            (Some(p), _) => Some(p.to_string()),
            _ => None,
        };
        if let Some(p) = params {
            body = format!("params={}", form_encode(&substitute(&p)));
        }
        if let Some(calls) = calls {
            body = format!("calls={}", form_encode(&substitute(calls)));
        }
        if let Some(other) = request.get("other_form_fields").and_then(Value::as_object) {
            for (name, value) in other {
                body.push_str(&format!(
                    "&{name}={}",
                    form_encode(&substitute(value.as_str().unwrap()))
                ));
            }
        }
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let addr = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .unwrap_or("")
        .to_string();
    Reply {
        status,
        content_type,
        body: body.to_string(),
    }
}

fn mask_error_id(text: &str) -> String {
    match text.find("(Error ID: ") {
        Some(at) => format!("{}(Error ID: <id>)", &text[..at]),
        None => text.to_string(),
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// What differs between the recorded answer and the fake's.
fn differences(recorded: &Value, got: &Reply, update: bool) -> Vec<String> {
    let mut out = Vec::new();
    let status = recorded["status"].as_u64().unwrap() as u16;
    if got.status != status {
        out.push(format!("status {} instead of {status}", got.status));
    }
    let content_type = recorded["content_type"].as_str().unwrap();
    if got.content_type != content_type {
        out.push(format!(
            "content type {:?} instead of {content_type:?}",
            got.content_type
        ));
    }
    let want = &recorded["body"];
    match (want, serde_json::from_str::<Value>(&got.body)) {
        (Value::String(text), _) if content_type.starts_with("text/html") => {
            let error_page = |body: &str| {
                body.starts_with("<!DOCTYPE html") && body.contains("<title>Error</title>")
            };
            if !(error_page(&got.body) && error_page(text)) {
                out.push("not CiviCRM's HTML error page".into());
            }
        }
        (Value::String(text), _) => {
            if got.body != *text {
                out.push(format!("body {:?} instead of {text:?}", got.body));
            }
        }
        (want, Ok(got)) => {
            if keys(want) != keys(&got) {
                out.push(format!(
                    "fields {:?} instead of {:?}",
                    keys(&got),
                    keys(want)
                ));
            }
            for field in ["error_code", "status", "status_code"] {
                if want.get(field) != got.get(field) {
                    out.push(format!(
                        "{field} {:?} instead of {:?}",
                        got.get(field),
                        want.get(field)
                    ));
                }
            }
            if let (Some(Value::String(w)), Some(Value::String(g))) =
                (want.get("error_message"), got.get("error_message"))
            {
                if mask_error_id(w) != mask_error_id(g) {
                    out.push(format!("error_message {g:?} instead of {w:?}"));
                }
            }
            if let (Some(Value::Array(w)), Some(Value::Array(g))) =
                (want.get("values"), got.get("values"))
            {
                if w.is_empty() != g.is_empty() {
                    out.push(format!("{} values instead of {}", g.len(), w.len()));
                }
                if !update {
                    if let (Some(w), Some(g)) = (w.first(), g.first()) {
                        if keys(w) != keys(g) {
                            out.push(format!(
                                "record fields {:?} instead of {:?}",
                                keys(g),
                                keys(w)
                            ));
                        }
                    }
                }
            }
            // Values cut in the recording (130-133) still name the real counts: the fake,
            // holding as many, must give the same count and countFetched (a short last
            // page's count is offset + rows).
            if want
                .get("countFetched")
                .and_then(Value::as_u64)
                .is_some_and(|n| n > 1000)
            {
                for field in ["count", "countFetched"] {
                    if want.get(field) != got.get(field) {
                        out.push(format!(
                            "{field} {:?} instead of {:?}",
                            got.get(field),
                            want.get(field)
                        ));
                    }
                }
            }
            if update && want.get("count") != got.get("count") {
                out.push(format!(
                    "count {:?} instead of {:?}",
                    got.get("count"),
                    want.get("count")
                ));
            }
        }
        (_, Err(e)) => out.push(format!("body is not JSON ({e}): {}", got.body)),
    }
    out
}

/// [`differences`] of a multi-call: the request's, then each call's answer (under its name)
/// judged as the answer of that call alone.
fn multi_call_differences(calls: &Value, recorded: &Value, got: &Reply) -> Vec<String> {
    let mut out = differences(
        &serde_json::json!({
            "status": recorded["status"],
            "content_type": recorded["content_type"],
            "body": {},
        }),
        &Reply {
            status: got.status,
            content_type: got.content_type.clone(),
            body: "{}".into(),
        },
        false,
    );
    let got_body: Value = serde_json::from_str(&got.body).unwrap_or(Value::Null);
    if keys(&recorded["body"]) != keys(&got_body) {
        out.push(format!(
            "calls {:?} instead of {:?}",
            keys(&got_body),
            keys(&recorded["body"])
        ));
    }
    for (name, call) in calls.as_object().into_iter().flatten() {
        let want = &recorded["body"][name];
        let part = Reply {
            status: got_body[name]["status"].as_u64().unwrap_or(200) as u16,
            content_type: "application/json".into(),
            body: got_body[name].to_string(),
        };
        let part_recorded = serde_json::json!({
            "status": want["status"].as_u64().unwrap_or(200),
            "content_type": "application/json",
            "body": want,
        });
        let update = call[1] == "update";
        out.extend(
            differences(&part_recorded, &part, update)
                .into_iter()
                .map(|d| format!("call {name}: {d}")),
        );
    }
    out
}

#[test]
fn the_fake_site_answers_every_recorded_exchange_as_civicrm_did() {
    let mut texts: Vec<(String, String)> = std::fs::read_dir(recorded_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    texts.sort_by(|a, b| a.0.cmp(&b.0));
    let mut files: Vec<(String, Value)> = texts
        .iter()
        .map(|(name, text)| (name.clone(), serde_json::from_str(text).unwrap()))
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        files.len() >= 113,
        "the recordings are there: {}",
        files.len()
    );
    let server = FakeCivi::start_with(recorded_site(&files));
    let mut replayed = 0;
    let mut failures = Vec::new();
    for (name, exchange) in &files {
        let number = &name[..3];
        if NOT_MODELLED.iter().any(|(n, _)| n == &number) {
            continue;
        }
        recorded_state_change(&mut server.state(), number);
        if number == "032" {
            // As recorded: 'edit my contact' was added to the role ownkeys from here on.
            let mut s = server.state();
            let role = s.roles.iter_mut().find(|r| r.name == "ownkeys").unwrap();
            role.permissions.push("edit my contact".into());
        }
        let calls = exchange["request"]
            .get("calls")
            .and_then(|_| texts.iter().find(|(n, _)| n == name))
            .and_then(|(_, text)| raw_calls(text));
        let got = send(&server.url(), &exchange["request"], calls.as_deref());
        let update = exchange["request"]["path"]
            .as_str()
            .unwrap()
            .ends_with("/update");
        let diff = match exchange["request"].get("calls") {
            Some(calls) => multi_call_differences(calls, &exchange["response"], &got),
            None => differences(&exchange["response"], &got, update),
        };
        if !diff.is_empty() {
            failures.push(format!("{name}: {}", diff.join("; ")));
        }
        replayed += 1;
    }
    assert!(
        failures.is_empty(),
        "{} of {replayed} exchanges differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(replayed + NOT_MODELLED.len(), files.len());
}
