//! A fake CiviCRM 6.14 Standalone site speaking REST API v4 as the recordings in
//! tests/recorded/rest/ show it (tests/recorded_rest.rs replays every one of them against
//! this fake and compares), on 127.0.0.1 with a random port, in a thread, in memory.
//!
//! It models authx at its defaults (X-Civi-Auth / Authorization `Bearer KEY`, `_authx` as
//! a POST field or GET parameter, guards site_key OR `authenticate with api key`, keys
//! compared case-insensitively, the lowest holder winning, blocked users refused), users
//! and roles as Standalone keeps them (one uf_match row per domain), CiviCRM's permission
//! rules for contacts and api_key (hidden from select and where without `edit api keys`,
//! 403 on writing it), its error bodies (generic with an Error ID unless the caller may
//! `view debug output`), the trash (hidden unless is_deleted or an id is in the where),
//! and the routes of other CMSs (`?q=civicrm/ajax/api4/...` or `task=`). Modes reproduce
//! the failures a client must survive.

// Each test program uses part of the fake.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use serde_json::{json, Map, Value};

use civikey::seed::SeedContact;

/// The key of the site's admin (contact [`ADMIN_CONTACT`], not in the contact list).
pub const ADMIN_KEY: &str = "AdminAdminAdminAdminAdminKey0001";
pub const SITE_KEY: &str = "SiteKeySiteKeySiteKeySiteKey0001";
pub const ADMIN_CONTACT: u64 = 203;

pub const API_LOGIN: &str = "authenticate with api key";
pub const ALL_PERMISSIONS: &str = "all CiviCRM permissions and ACLs";
pub const GENERIC_ERROR: &str = "Sorry an error occurred and your request was not completed.";
pub const GUARD_401: &str = "HTTP 401 Login not permitted. Must satisfy guard (site_key, perm).";
pub const INVALID_401: &str = "HTTP 401 Invalid credential";
/// Maintenance mode's answer to a caller without the bypass (rest/125, 127).
pub const MAINTENANCE: &str = "Temporarily unavailable for maintenance.";
/// authx on a CMS that checks blocked users (Drupal, Backdrop, WordPress, Joomla).
pub const BLOCKED_401: &str = "HTTP 401 Cannot login. User is blocked.";

/// How the site misbehaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// The admin's role lacks `edit api keys`: api_key dropped from select and where, and
    /// writing it refused with 403. `debug`: the admin may `view debug output` (error
    /// bodies then carry the real message).
    NoEditApiKeys {
        debug: bool,
    },
    /// Answers after `delay`. The request is still applied.
    Slow(Duration),
    /// Maintenance mode: 503 JSON for callers without the bypass (the admin role's
    /// 'all CiviCRM permissions and ACLs'), User.get exempt (rest/124-129).
    Maintenance,
    /// 200 text/html: a login page.
    Html,
    /// 200 application/json, the JSON cut in half (the HTTP message itself is complete).
    TruncatedJson,
    /// 200 with 10 MB of values.
    Huge,
    /// 500 with an API error ("DB Error: unknown error" behind the generic text).
    ServerError,
    /// 403 with an API error ("Authorization failed" behind the generic text).
    Forbidden,
    /// 500 with an error_message that quotes the request's params, upper-cased (as an SQL
    /// error from a site's extension might), shown whatever the caller's permissions.
    EchoParams,
    /// A hostile site (issue 21): the requests `on` selects are answered with `status` and
    /// an error quoting every request header (the credential, the site key) and the body,
    /// raw and decoded, in `case`; as JSON (`error_message`) or, with `plain`, as text
    /// (`auth failed for bearer ...`, as an authx 401 might).
    Echo {
        case: Case,
        status: u16,
        plain: bool,
        on: EchoOn,
    },
}

/// How an echoing site writes what it quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    Upper,
    Lower,
    /// aLtErNaTiNg, so neither an upper- nor a lower-cased search finds it.
    Mixed,
}

impl Case {
    pub fn apply(self, text: &str) -> String {
        match self {
            Case::Upper => text.to_uppercase(),
            Case::Lower => text.to_lowercase(),
            Case::Mixed => text
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if i % 2 == 0 {
                        c.to_ascii_lowercase()
                    } else {
                        c.to_ascii_uppercase()
                    }
                })
                .collect(),
        }
    }
}

/// Which requests an echoing site answers with its echo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EchoOn {
    Every,
    /// Single calls of this action ("get", "update").
    Action(&'static str),
    /// Multi-calls (`calls=`): a bulk batch.
    MultiCall,
    /// Requests logging in with a key other than the admin's: the login check.
    NotAdmin,
}

#[derive(Clone, Debug)]
pub struct FakeContact {
    pub id: u64,
    pub contact_type: String,
    pub display_name: String,
    /// None: NULL, as CiviCRM answers it (`"sort_name": null`), sorted first.
    pub sort_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub is_deleted: bool,
    pub api_key: Option<String>,
}

/// A Standalone user: a civicrm_uf_match row (one per domain).
#[derive(Clone, Debug)]
pub struct FakeUser {
    pub id: u64,
    pub domain_id: u64,
    pub contact_id: u64,
    pub username: String,
    pub active: bool,
    pub roles: Vec<u64>,
}

#[derive(Clone, Debug)]
pub struct FakeRole {
    pub id: u64,
    pub name: String,
    pub label: String,
    pub permissions: Vec<String>,
    pub active: bool,
}

/// One request as the site saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub target: String,
    /// The entity and action it addressed ("Contact/get").
    pub call: String,
    /// The credential it logged in with (the Bearer value), if any.
    pub credential: Option<String>,
    pub site_key_sent: bool,
    /// The request's form body, as sent.
    pub body: String,
}

pub struct State {
    pub contacts: Vec<FakeContact>,
    pub users: Vec<FakeUser>,
    /// Whether UFMatch.get takes its contact's fields (`contact_id.sort_name`); false: an
    /// invalid field, as a site without that implicit join would say.
    pub uf_contact_join: bool,
    pub roles: Vec<FakeRole>,
    /// The admin login ([`ADMIN_KEY`] as contact [`ADMIN_CONTACT`]); None on a site
    /// where the admin is an ordinary contact of the list.
    pub admin: Option<(String, u64)>,
    /// The admin's permissions (when `admin` is set).
    pub admin_permissions: Vec<String>,
    pub site_key: String,
    pub current_domain: u64,
    /// False: a Drupal/WordPress/Joomla site, without the User and Role entities.
    pub standalone: bool,
    pub mode: Mode,
    /// When set, the mode applies to this action only ("get" or "update").
    pub mode_action: Option<&'static str>,
    /// The admin's role lacks `authenticate with api key`: its key needs the site key.
    pub require_site_key: bool,
    pub requests: Vec<Seen>,
    /// Update requests the site received (whatever their outcome).
    pub updates_received: usize,
    /// A credential seen in a request line: the server's assertion that keys stay out of URLs.
    pub key_in_url: bool,
    errors: u64,
}

pub struct FakeCivi {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

/// The permissions of civikey's admin user on the default fake site.
pub fn admin_permissions() -> Vec<String> {
    [
        "access CiviCRM",
        "access AJAX API",
        "view all contacts",
        "edit all contacts",
        "access deleted contacts",
        "delete contacts",
        "edit api keys",
        "cms:administer users",
    ]
    .map(String::from)
    .to_vec()
}

impl FakeCivi {
    /// Sets the sort name of each of `ids` to NULL.
    pub fn null_sort_names(&self, ids: &[i64]) {
        for c in &mut self.state().contacts {
            if ids.contains(&(c.id as i64)) {
                c.sort_name = None;
            }
        }
    }

    /// A Standalone site with `contacts` (their CMS users and roles as the seed gives
    /// them), administered through [`ADMIN_KEY`].
    pub fn start(contacts: Vec<SeedContact>) -> FakeCivi {
        let mut state = State::empty();
        state.admin = Some((ADMIN_KEY.to_string(), ADMIN_CONTACT));
        state.admin_permissions = admin_permissions();
        for c in contacts {
            let id = c.id.unwrap() as u64;
            if let Some(uf_id) = c.uf_id {
                let roles = c.roles.iter().map(|r| state.role_id(r)).collect();
                state.users.push(FakeUser {
                    id: uf_id as u64,
                    domain_id: 1,
                    contact_id: id,
                    username: c
                        .email
                        .as_deref()
                        .and_then(|e| e.split('@').next())
                        .unwrap_or("user")
                        .to_string(),
                    active: true,
                    roles,
                });
            }
            state.contacts.push(FakeContact {
                id,
                contact_type: c.contact_type,
                display_name: c.display_name,
                sort_name: Some(c.sort_name),
                first_name: c.first_name,
                last_name: c.last_name,
                email: c.email,
                is_deleted: c.is_deleted,
                api_key: c.api_key.map(|k| k.expose().to_string()),
            });
        }
        Self::serve_state(state)
    }

    /// A site built by the caller (the recorded site of tests/recorded_rest.rs).
    pub fn start_with(state: State) -> FakeCivi {
        Self::serve_state(state)
    }

    fn serve_state(state: State) -> FakeCivi {
        let state = Arc::new(Mutex::new(state));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        {
            let state = Arc::clone(&state);
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let state = Arc::clone(&state);
                    thread::spawn(move || serve(stream, &state));
                }
            });
        }
        FakeCivi { addr, state, stop }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_mode(&self, mode: Mode) {
        self.set_mode_for(mode, None);
    }

    pub fn set_mode_for(&self, mode: Mode, action: Option<&'static str>) {
        let mut s = self.state();
        s.mode = mode;
        s.mode_action = action;
    }

    pub fn key_of(&self, id: u64) -> Option<String> {
        self.state()
            .contacts
            .iter()
            .find(|c| c.id == id)
            .unwrap()
            .api_key
            .clone()
    }

    /// Gives every user a second uf_match row, for domain 2 (a multi-domain site).
    pub fn add_second_domain(&self) {
        let mut s = self.state();
        let next = s.users.iter().map(|u| u.id).max().unwrap_or(0);
        let copies: Vec<FakeUser> = s
            .users
            .iter()
            .map(|u| FakeUser {
                id: u.id + next,
                domain_id: 2,
                ..u.clone()
            })
            .collect();
        s.users.extend(copies);
    }
}

impl Drop for FakeCivi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

impl State {
    pub fn empty() -> State {
        State {
            contacts: Vec::new(),
            users: Vec::new(),
            roles: Vec::new(),
            admin: None,
            admin_permissions: Vec::new(),
            site_key: SITE_KEY.to_string(),
            current_domain: 1,
            standalone: true,
            mode: Mode::Normal,
            mode_action: None,
            require_site_key: true,
            requests: Vec::new(),
            updates_received: 0,
            uf_contact_join: true,
            key_in_url: false,
            errors: 0,
        }
    }

    /// The id of the role `name`, created with the seed's permissions if new.
    pub fn role_id(&mut self, name: &str) -> u64 {
        if let Some(r) = self.roles.iter().find(|r| r.name == name) {
            return r.id;
        }
        let id = self.roles.len() as u64 + 1;
        let permissions = civikey::seed::role_permissions(name)
            .split('\u{1}')
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect();
        self.roles.push(FakeRole {
            id,
            name: name.to_string(),
            label: name.to_string(),
            permissions,
            active: true,
        });
        id
    }

    pub fn user_of(&self, contact_id: u64) -> Option<&FakeUser> {
        self.users
            .iter()
            .find(|u| u.contact_id == contact_id && u.domain_id == self.current_domain)
    }

    pub fn user_of_mut(&mut self, contact_id: u64) -> Option<&mut FakeUser> {
        let domain = self.current_domain;
        self.users
            .iter_mut()
            .find(|u| u.contact_id == contact_id && u.domain_id == domain)
    }

    fn permissions_of_user(&self, user: &FakeUser) -> Vec<String> {
        self.roles
            .iter()
            .filter(|r| r.active && user.roles.contains(&r.id))
            .flat_map(|r| r.permissions.iter().cloned())
            .collect()
    }
}

/// Who a request runs as.
struct Caller {
    contact_id: Option<u64>,
    permissions: Vec<String>,
}

impl Caller {
    fn has(&self, permission: &str) -> bool {
        self.permissions
            .iter()
            .any(|p| p == permission || p == ALL_PERMISSIONS)
    }
    fn reads_keys(&self) -> bool {
        self.has("edit api keys") || self.has("administer CiviCRM")
    }
    fn sees_debug(&self) -> bool {
        self.has("view debug output")
    }
}

struct Request {
    method: String,
    target: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        target,
        headers,
        body,
    })
}

/// An answer: status, content type, body.
pub struct Answer(pub u16, pub &'static str, pub Vec<u8>);

const JSON: &str = "application/json";
const TEXT: &str = "text/plain;charset=UTF-8";
const HTML: &str = "text/html; charset=UTF-8";

fn json_answer(status: u16, value: &Value) -> Answer {
    Answer(status, JSON, value.to_string().into_bytes())
}

fn text_answer(status: u16, text: &str) -> Answer {
    Answer(status, TEXT, text.as_bytes().to_vec())
}

fn write_answer(stream: &mut TcpStream, answer: &Answer) {
    let Answer(status, content_type, body) = answer;
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Other",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nSet-Cookie: SESSCIVISO=fake; path=/; HttpOnly\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // The client may have given up (timeouts, size caps): a failed write is expected then.
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
}

pub fn url_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn form_field(body: &str, name: &str) -> Option<String> {
    body.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (url_decode(k) == name).then(|| url_decode(v))
    })
}

/// The API v4 route a request addresses: the path on Standalone/Drupal, the `q` or `task`
/// query parameter on WordPress and Joomla.
fn route(path: &str, query: Option<&str>) -> Option<String> {
    if let Some(rest) = path.strip_prefix("/civicrm/ajax/api4") {
        return Some(rest.trim_start_matches('/').to_string());
    }
    let query = query?;
    ["q", "task"].iter().find_map(|name| {
        form_field(query, name)?
            .strip_prefix("civicrm/ajax/api4")
            .map(|r| r.trim_start_matches('/').to_string())
    })
}

fn serve(mut stream: TcpStream, state: &Mutex<State>) {
    let Some(request) = read_request(&stream) else {
        return;
    };
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    let (answer, slow) = {
        let mut s = lock();
        handle(&mut s, &request)
    };
    if let Some(delay) = slow {
        thread::sleep(delay);
    }
    match answer {
        Some(answer) => write_answer(&mut stream, &answer),
        None => huge(&mut stream),
    }
}

/// One request against the site: the answer (None: the huge one), and how long to wait
/// before sending it.
fn handle(s: &mut State, request: &Request) -> (Option<Answer>, Option<Duration>) {
    let (path, query) = match request.target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (request.target.clone(), None),
    };
    let call = route(&path, query.as_deref()).unwrap_or_default();
    let action = call.rsplit('/').next().unwrap_or("").to_string();
    let decoded = url_decode(&request.target);
    let body_text = String::from_utf8_lossy(&request.body).into_owned();
    let credential = credential_of(request, query.as_deref(), &body_text);
    if decoded.contains(ADMIN_KEY) || decoded.contains(&s.site_key) {
        s.key_in_url = true;
    }
    let site_key_sent = request.headers.contains_key("x-civi-key");
    s.requests.push(Seen {
        method: request.method.clone(),
        target: request.target.clone(),
        call: call.clone(),
        credential: match &credential {
            Credential::Bearer(k) => Some(k.clone()),
            _ => None,
        },
        site_key_sent,
        body: body_text.clone(),
    });
    if action == "update" {
        s.updates_received += 1;
    }
    let mode = match s.mode_action {
        Some(only) if only != action => Mode::Normal,
        _ => s.mode.clone(),
    };
    let slow = match &mode {
        Mode::Slow(delay) => Some(*delay),
        _ => None,
    };
    if let Mode::Echo {
        case,
        status,
        plain,
        on,
    } = mode
    {
        let applies = match on {
            EchoOn::Every => true,
            EchoOn::Action(only) => only == action,
            EchoOn::MultiCall => call.is_empty() && form_field(&body_text, "calls").is_some(),
            EchoOn::NotAdmin => matches!(&credential,
                Credential::Bearer(k) if !k.eq_ignore_ascii_case(ADMIN_KEY)),
        };
        if applies {
            return (Some(echo(request, &body_text, case, status, plain)), None);
        }
    }
    let answer = match &mode {
        Mode::Html => Some(Answer(
            200,
            "text/html; charset=utf-8",
            b"<!DOCTYPE html><html><head><title>Log in</title></head><body><form>user, password</form></body></html>".to_vec(),
        )),
        Mode::Huge => None,
        _ => Some(answer(s, request, &mode, &call, query.as_deref(), &body_text, credential)),
    };
    let answer = match (answer, &mode) {
        (Some(Answer(200, ct, body)), Mode::TruncatedJson) => {
            let half = body.len() / 2;
            Some(Answer(200, ct, body[..half].to_vec()))
        }
        (answer, _) => answer,
    };
    (answer, slow)
}

/// The answer of [`Mode::Echo`]: every header and the body, raw and decoded, in `case`.
fn echo(request: &Request, body: &str, case: Case, status: u16, plain: bool) -> Answer {
    let mut headers: Vec<String> = request
        .headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}"))
        .collect();
    headers.sort();
    let quoted = format!(
        "headers: {}; body: {body}; decoded: {}",
        headers.join("; "),
        url_decode(body)
    );
    if plain {
        text_answer(status, &case.apply(&format!("auth failed for {quoted}")))
    } else {
        json_answer(
            status,
            &json!({
                "error_code": status,
                "error_message": case.apply(&format!("bad request, {quoted}")),
                "status": status,
            }),
        )
    }
}

enum Credential {
    None,
    Bearer(String),
    /// A credential authx refuses, with the 401 text.
    Refused(String),
}

fn credential_of(request: &Request, query: Option<&str>, body: &str) -> Credential {
    let header = request
        .headers
        .get("x-civi-auth")
        .or_else(|| request.headers.get("authorization"))
        .cloned();
    let value = header.or_else(|| match request.method.as_str() {
        // authx reads `_authx` from the form of a POST and from the query of a GET only.
        "POST" => form_field(body, "_authx"),
        _ => query.and_then(|q| form_field(q, "_authx")),
    });
    let Some(value) = value else {
        return Credential::None;
    };
    if value.starts_with("Basic ") {
        return Credential::Refused(
            "HTTP 401 Authentication type \"pass\" with flow \"xheader\" is not allowed for this principal."
                .to_string(),
        );
    }
    match value.strip_prefix("Bearer ") {
        Some(key) if !key.is_empty() && !key.contains(' ') => Credential::Bearer(key.to_string()),
        _ => Credential::Refused(INVALID_401.to_string()),
    }
}

/// authx: who the credential logs in as, or the 401 text.
fn login(s: &State, key: &str, site_key_ok: bool) -> Result<Caller, String> {
    let key = key.trim_end_matches(' ').to_lowercase();
    let holder = s
        .contacts
        .iter()
        .filter(|c| {
            c.api_key
                .as_deref()
                .is_some_and(|k| k.trim_end_matches(' ').to_lowercase() == key)
        })
        .map(|c| c.id)
        .min();
    let (contact_id, permissions) = match holder {
        Some(id) => match s.user_of(id) {
            // authx asks the CMS; Standalone's check is a stub (6.14): a blocked user's
            // key still logs in there (rest/122). Other CMSs refuse it.
            Some(user) if !user.active && !s.standalone => return Err(BLOCKED_401.to_string()),
            Some(user) => (id, s.permissions_of_user(user)),
            None => (id, Vec::new()),
        },
        None => match &s.admin {
            Some((admin_key, id)) if admin_key.to_lowercase() == key => {
                let mut permissions = s.admin_permissions.clone();
                if !s.require_site_key {
                    permissions.push(API_LOGIN.to_string());
                }
                (*id, permissions)
            }
            _ => return Err(INVALID_401.to_string()),
        },
    };
    let caller = Caller {
        contact_id: Some(contact_id),
        permissions,
    };
    if site_key_ok || caller.has(API_LOGIN) {
        Ok(caller)
    } else {
        Err(GUARD_401.to_string())
    }
}

/// An API error body: the real message for callers who may view debug output, else the
/// generic one with an Error ID (the message goes to CiviCRM's log).
fn api_error(s: &mut State, caller: &Caller, status: u16, message: &str) -> Answer {
    s.errors += 1;
    let id = format!("Fk{:02}-rr0r-{:04}", s.errors % 100, s.errors);
    if caller.sees_debug() {
        json_answer(
            status,
            &json!({"error_id": id, "error_code": 0, "error_message": message, "status": status}),
        )
    } else {
        json_answer(
            status,
            &json!({"error_code": "1", "error_message": format!("{GENERIC_ERROR} (Error ID: {id})"), "status": status}),
        )
    }
}

const ERROR_PAGE: &str = "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\" \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd\">\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\" xml:lang=\"en\">\n\n<head>\n  <title>Error</title>\n</head>\n<body><div class=\"crm-fatal\">Sorry, due to an error, we are unable to fulfill your request at the moment.</div></body>\n</html>\n";

const PARAMS: &[&str] = &[
    "select",
    "where",
    "orderBy",
    "limit",
    "offset",
    "join",
    "values",
    "debug",
    "checkPermissions",
    "groupBy",
    "having",
    "language",
    "chain",
    "useTrash",
    "input",
    "action",
];

fn answer(
    s: &mut State,
    request: &Request,
    mode: &Mode,
    call: &str,
    query: Option<&str>,
    body: &str,
    credential: Credential,
) -> Answer {
    let site_key_ok = request.headers.get("x-civi-key") == Some(&s.site_key);
    let mut caller = match credential {
        Credential::Refused(text) => return text_answer(401, &text),
        Credential::None => {
            if !request.headers.contains_key("x-requested-with") {
                return json_answer(
                    400,
                    &json!({"error_code": 400, "error_message": "SECURITY ALERT: Ajax requests can only be issued by javascript clients, eg. CRM.api4()."}),
                );
            }
            Caller {
                contact_id: None,
                permissions: Vec::new(),
            }
        }
        Credential::Bearer(key) => match login(s, &key, site_key_ok) {
            Ok(caller) => caller,
            Err(text) => return text_answer(401, &text),
        },
    };
    if caller.contact_id.is_some()
        && s.admin
            .as_ref()
            .is_some_and(|a| Some(a.1) == caller.contact_id)
    {
        if let Mode::NoEditApiKeys { debug } = mode {
            caller.permissions.retain(|p| p != "edit api keys");
            if *debug {
                caller.permissions.push("view debug output".into());
            }
        }
    }
    let (entity, action) = call.split_once('/').unwrap_or((call, ""));
    // Maintenance mode: the caller's login still counts (a refused key is a 401), then
    // everyone without the bypass gets 503, the multi-call route too; the admin role's
    // 'all CiviCRM permissions and ACLs' covers the bypass, and User.* stays open so users
    // can log in (rest/124-128).
    if *mode == Mode::Maintenance
        && !caller.permissions.iter().any(|p| p == ALL_PERMISSIONS)
        && entity != "User"
    {
        return json_answer(
            503,
            &json!({"status_code": 503, "status_message": MAINTENANCE}),
        );
    }
    if call.is_empty() && request.method == "POST" {
        if let Some(calls) = form_field(body, "calls") {
            return multi_call(s, &caller, mode, &calls);
        }
    }
    let raw = match request.method.as_str() {
        "POST" => form_field(body, "params"),
        _ if matches!(action, "get" | "getFields" | "autocomplete") => {
            query.and_then(|q| form_field(q, "params"))
        }
        _ => {
            return json_answer(
                405,
                &json!({"error_code": 405, "error_message": "SECURITY: All requests that modify the database must be http POST, not GET."}),
            )
        }
    };
    let params: Value = match raw.as_deref().map(serde_json::from_str::<Value>) {
        None => json!({}),
        Some(Ok(v)) => v,
        Some(Err(_)) => return Answer(500, HTML, ERROR_PAGE.as_bytes().to_vec()),
    };
    let Some(params_map) = params.as_object() else {
        return api_error(s, &caller, 500, "Unknown api parameter: set0");
    };
    for name in params_map.keys() {
        if !PARAMS.contains(&name.as_str()) {
            let mut chars = name.chars();
            let upper: String = chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default();
            return api_error(
                s,
                &caller,
                500,
                &format!("Unknown api parameter: set{upper}"),
            );
        }
    }
    match mode {
        Mode::EchoParams => {
            let quoted = format!("DB Error: bad params {}", params.to_string().to_uppercase());
            let mut debug = caller;
            debug.permissions.push("view debug output".into());
            return api_error(s, &debug, 500, &quoted);
        }
        Mode::ServerError => return api_error(s, &caller, 500, "DB Error: unknown error"),
        Mode::Forbidden => return api_error(s, &caller, 403, "Authorization failed"),
        _ => {}
    }
    let known = ["Contact", "UFMatch"]
        .into_iter()
        .chain(
            s.standalone
                .then_some(["User", "Role"])
                .into_iter()
                .flatten(),
        )
        .any(|e| e == entity);
    if !known {
        return api_error(
            s,
            &caller,
            500,
            &format!("API ({entity}, {action}) does not exist (or the extension it belongs to is not enabled)."),
        );
    }
    let result = match (entity, action) {
        ("Contact", "get") => contact_get(s, &caller, &params, raw.as_deref().unwrap_or("{}")),
        ("Contact", "update") => contact_update(s, &caller, &params),
        ("Contact", "delete") => contact_delete(s, &caller, &params),
        ("UFMatch" | "User" | "Role", "get") => users_get(s, &caller, entity, &params),
        _ => Err((
            500,
            format!("Api {entity} {action} version 4 does not exist."),
        )),
    };
    match result {
        Ok(value) => json_answer(200, &value),
        Err((status, message)) => api_error(s, &caller, status, &message),
    }
}

/// POST /civicrm/ajax/api4 with `calls={"name":[Entity, action, params], ...}`: each call
/// answered under its name, in the order sent (recorded in civicrm-recorded/rest/091-096);
/// Contact.get and Contact.update.
fn multi_call(s: &mut State, caller: &Caller, mode: &Mode, raw: &str) -> Answer {
    let Ok(Value::Object(calls)) = serde_json::from_str::<Value>(raw) else {
        return api_error(s, caller, 400, "calls is not a JSON object");
    };
    match mode {
        Mode::ServerError => return api_error(s, caller, 500, "DB Error: unknown error"),
        Mode::Forbidden => return api_error(s, caller, 403, "Authorization failed"),
        _ => {}
    }
    // Run in the order sent (serde_json's map sorts the names).
    let mut calls: Vec<(String, Value)> = calls.into_iter().collect();
    calls.sort_by_key(|(name, _)| raw.find(&format!("\"{name}\":[")).unwrap_or(usize::MAX));
    let mut out = Map::new();
    for (name, call) in calls {
        let entity = call.get(0).and_then(Value::as_str).unwrap_or("");
        let action = call.get(1).and_then(Value::as_str).unwrap_or("");
        let params = call.get(2).cloned().unwrap_or_else(|| json!({}));
        // The raw text of this call's params, for the orderBy key order.
        let raw_params = raw_call_params(raw, &name).unwrap_or_else(|| params.to_string());
        let result = match (entity, action) {
            ("Contact", "get") => contact_get(s, caller, &params, &raw_params),
            ("Contact", "update") => {
                s.updates_received += 1;
                contact_update(s, caller, &params)
            }
            ("UFMatch", "get") => users_get(s, caller, entity, &params),
            _ => Err((
                500,
                format!("API ({entity}, {action}) is not in this fake's multi-call"),
            )),
        };
        out.insert(
            name,
            match result {
                Ok(value) => value,
                // Each failed call carries its own status, with the message a caller
                // without 'view debug output' sees (rest/092, 093).
                Err((status, message)) => match api_error(s, caller, status, &message) {
                    Answer(_, _, body) => serde_json::from_slice(&body).unwrap_or(Value::Null),
                },
            },
        );
    }
    json_answer(200, &Value::Object(out))
}

/// The text of call `name`'s params object inside the raw `calls` JSON (serde_json's maps
/// do not keep key order, and orderBy's order matters).
fn raw_call_params(raw: &str, name: &str) -> Option<String> {
    let start = raw.find(&format!("\"{name}\":["))?;
    let open = start + raw[start..].find('{')?;
    let mut depth = 0;
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in raw[open..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '{' if !in_string => depth += 1,
            '}' if !in_string => {
                depth -= 1;
                if depth == 0 {
                    return Some(raw[open..=open + i].to_string());
                }
            }
            _ => {}
        }
    }
    None
}

fn huge(stream: &mut TcpStream) {
    let one = json!({"id": 1, "display_name": "x".repeat(1000)}).to_string();
    let count = 10 * 1024 * 1024 / one.len() + 1;
    let total = "{\"values\":[".len() + count * (one.len() + 1) - 1 + "]}".len();
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n{{\"values\":["
    );
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    for i in 0..count {
        let sep = if i + 1 == count { "]}" } else { "," };
        if stream.write_all(one.as_bytes()).is_err() || stream.write_all(sep.as_bytes()).is_err() {
            return;
        }
    }
}

/// A row of a Contact.get: the contact and, with the UFMatch join, one uf_match row.
struct Row<'a> {
    c: &'a FakeContact,
    uf: Option<&'a FakeUser>,
}

/// Contact fields as API v4 names them; `alias` is the UFMatch join's alias, if joined.
/// None: no such field.
fn value_of(row: &Row<'_>, field: &str, alias: Option<&str>) -> Option<Value> {
    let c = row.c;
    Some(match field {
        "id" => json!(c.id),
        "display_name" => json!(c.display_name),
        "sort_name" => json!(c.sort_name),
        "contact_type" => json!(c.contact_type),
        "first_name" => json!(c.first_name),
        "last_name" => json!(c.last_name),
        // CiviCRM keeps an organisation's or household's name in its own column and makes
        // the display name from it.
        "organization_name" => json!((c.contact_type == "Organization").then_some(&c.display_name)),
        "household_name" => json!((c.contact_type == "Household").then_some(&c.display_name)),
        "is_deleted" => json!(c.is_deleted),
        "email_primary.email" => json!(c.email),
        "api_key" => json!(c.api_key),
        other => match (other.split_once('.'), alias) {
            (Some((a, f)), Some(alias)) if a == alias => match (f, row.uf) {
                (_, None) => Value::Null,
                ("uf_id", Some(u)) => json!(u.id),
                ("contact_id", Some(u)) => json!(u.contact_id),
                ("domain_id", Some(u)) => json!(u.domain_id),
                ("id", Some(u)) => json!(u.id),
                _ => return None,
            },
            _ => return None,
        },
    })
}

fn lower(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(s.trim_end_matches(' ').to_lowercase()),
        Value::Bool(b) => json!(u8::from(*b)),
        other => other.clone(),
    }
}

/// MySQL-ish equality: `_ci` PAD SPACE for text, booleans as 0/1.
fn equal(a: &Value, b: &Value) -> bool {
    if a.is_null() || b.is_null() {
        return false;
    }
    let (a, b) = (lower(a), lower(b));
    match (&a, &b) {
        (Value::Number(x), Value::String(y)) | (Value::String(y), Value::Number(x)) => {
            x.to_string() == *y
        }
        _ => a == b,
    }
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(collation_key(x).cmp(&collation_key(y))),
        _ => None,
    }
}

/// A text's place in MariaDB's `utf8mb4_unicode_ci` order, near enough for the fake: case
/// and accents folded, trailing spaces ignored, then space before punctuation and symbols,
/// before digits, before letters, before the rest (each kind by code point).
fn collation_key(text: &str) -> String {
    civikey::store::collation::fold(text.trim_end_matches(' '))
        .chars()
        .map(|c| {
            let kind = match c {
                ' ' => 'a',
                '!'..='/' | ':'..='@' | '['..='`' | '{'..='~' => 'b',
                '0'..='9' => 'c',
                'a'..='z' => 'd',
                _ => 'e',
            };
            format!("{kind}{c}")
        })
        .collect()
}

/// LIKE with `%`, `_` and `\` escapes, case- and accent-insensitive (as utf8mb4 `_ci`).
fn like(text: &str, pattern: &str) -> bool {
    use civikey::store::collation::fold;
    let t: Vec<char> = fold(text).chars().collect();
    let mut p: Vec<(char, bool)> = Vec::new(); // (char, is_literal)
    let mut chars = fold(pattern).chars().collect::<Vec<_>>().into_iter();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                p.push((n, true));
            }
        } else {
            p.push((c, false));
        }
    }
    fn go(t: &[char], p: &[(char, bool)]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(('%', false)) => (0..=t.len()).any(|i| go(&t[i..], &p[1..])),
            Some(('_', false)) => !t.is_empty() && go(&t[1..], &p[1..]),
            Some((c, _)) => t.first() == Some(c) && go(&t[1..], &p[1..]),
        }
    }
    go(&t, &p)
}

fn clause_fields(clause: &Value, out: &mut Vec<String>) {
    let Some(items) = clause.as_array() else {
        return;
    };
    match items.first().and_then(Value::as_str) {
        Some("OR" | "AND" | "NOT") => {
            for sub in items.get(1).and_then(Value::as_array).into_iter().flatten() {
                clause_fields(sub, out);
            }
        }
        Some(field) => out.push(field.to_string()),
        None => {}
    }
}

/// Drops every clause on `field`, as CiviCRM does with a field the user may not see.
fn drop_field(clauses: &[Value], field: &str) -> Vec<Value> {
    clauses
        .iter()
        .filter_map(|clause| {
            let items = clause.as_array()?;
            match items.first().and_then(Value::as_str) {
                Some(op @ ("OR" | "AND" | "NOT")) => {
                    let subs = items
                        .get(1)
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let kept = drop_field(&subs, field);
                    (!kept.is_empty()).then(|| json!([op, kept]))
                }
                Some(f) if f == field => None,
                _ => Some(clause.clone()),
            }
        })
        .collect()
}

/// `user_contact_id` in a where value: the contact the caller logged in as.
fn resolve_user_contact(clauses: &mut [Value], me: Option<u64>) {
    for clause in clauses.iter_mut() {
        let Some(items) = clause.as_array_mut() else {
            continue;
        };
        if let Some(Value::Array(subs)) = items.get_mut(1) {
            resolve_user_contact(subs, me);
        }
        if let Some(v) = items.get_mut(2) {
            if v.as_str() == Some("user_contact_id") {
                *v = json!(me.unwrap_or(0));
            }
        }
    }
}

type Fields<'a> = &'a dyn Fn(&str) -> Option<Value>;

/// The `select`ed fields of a row whose every `where_` clause holds, else nothing.
fn selected_if_matching(
    where_: &[Value],
    select: &[String],
    get: Fields<'_>,
) -> Result<Option<Value>, Failed> {
    // Every clause is judged (a bad one fails the call even when another is false).
    let held = where_
        .iter()
        .map(|c| matches(get, c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| (500, e))?;
    if !held.iter().all(|b| *b) {
        return Ok(None);
    }
    Ok(Some(Value::Object(
        select
            .iter()
            .filter_map(|f| Some((f.clone(), get(f)?)))
            .collect(),
    )))
}

fn matches(get: Fields<'_>, clause: &Value) -> Result<bool, String> {
    let items = clause.as_array().ok_or("Illegal operator")?;
    let head = items
        .first()
        .and_then(Value::as_str)
        .ok_or("Illegal operator")?;
    let subs = || -> Result<Vec<Value>, String> {
        items
            .get(1)
            .and_then(Value::as_array)
            .cloned()
            .ok_or_else(|| "Illegal operator".to_string())
    };
    match head {
        "OR" => {
            for sub in subs()? {
                if matches(get, &sub)? {
                    return Ok(true);
                }
            }
            return Ok(false);
        }
        "AND" => {
            for sub in subs()? {
                if !matches(get, &sub)? {
                    return Ok(false);
                }
            }
            return Ok(true);
        }
        "NOT" => {
            for sub in subs()? {
                if !matches(get, &sub)? {
                    return Ok(true);
                }
            }
            return Ok(false);
        }
        _ => {}
    }
    let value = get(head).ok_or_else(|| format!("Invalid field '{head}'"))?;
    let op = items
        .get(1)
        .and_then(Value::as_str)
        .ok_or("Illegal operator")?;
    let arg = items.get(2).cloned().unwrap_or(Value::Null);
    let list = || arg.as_array().cloned().ok_or("Illegal operator");
    Ok(match op {
        "=" => equal(&value, &arg),
        "!=" | "<>" => !value.is_null() && !equal(&value, &arg),
        "<" | ">" | "<=" | ">=" => match compare(&value, &arg) {
            Some(o) => match op {
                "<" => o.is_lt(),
                ">" => o.is_gt(),
                "<=" => o.is_le(),
                _ => o.is_ge(),
            },
            None => false,
        },
        "IN" => list()?.iter().any(|a| equal(&value, a)),
        "NOT IN" => !value.is_null() && !list()?.iter().any(|a| equal(&value, a)),
        "IS NULL" => value.is_null(),
        "IS NOT NULL" => !value.is_null(),
        "IS EMPTY" => value.is_null() || value == json!(""),
        "LIKE" | "NOT LIKE" => match (&value, arg.as_str()) {
            (Value::String(s), Some(p)) => like(s, p) == (op == "LIKE"),
            _ => false,
        },
        _ => return Err("Illegal operator".into()),
    })
}

/// The UFMatch join: alias and its conditions on the uf row (beyond contact_id = id).
fn uf_join(params: &Value) -> Result<Option<(String, Vec<Value>)>, String> {
    let Some(joins) = params.get("join").and_then(Value::as_array) else {
        return Ok(None);
    };
    let mut found = None;
    for join in joins {
        let items = join.as_array().cloned().unwrap_or_default();
        let entity = items.first().and_then(Value::as_str).unwrap_or("");
        let Some(("UFMatch", a)) = entity.split_once(" AS ") else {
            return Err(format!("Unsupported join '{entity}'"));
        };
        let mut conditions = Vec::new();
        let mut linked = false;
        for on in items.iter().skip(2) {
            if *on == json!([format!("{a}.contact_id"), "=", "id"]) {
                linked = true;
            } else {
                conditions.push(on.clone());
            }
        }
        if !linked {
            return Err("Unsupported join condition".into());
        }
        found = Some((a.to_string(), conditions));
    }
    Ok(found)
}

fn domain_value(s: &State, v: &Value) -> Value {
    if v.as_str() == Some("current_domain") {
        json!(s.current_domain)
    } else {
        v.clone()
    }
}

/// `domain_id = 'current_domain'` and friends, on a uf_match/user row.
fn uf_fields(s: &State, u: &FakeUser, field: &str) -> Option<Value> {
    Some(match field {
        "id" | "uf_id" => json!(u.id),
        "domain_id" => json!(u.domain_id),
        "contact_id" => json!(u.contact_id),
        "uf_name" => {
            let email = s
                .contacts
                .iter()
                .find(|c| c.id == u.contact_id)
                .and_then(|c| c.email.clone());
            json!(email)
        }
        "username" => json!(u.username),
        "is_active" => json!(u.active),
        "language" | "when_last_accessed" => Value::Null,
        "roles" => json!(u.roles.iter().map(|r| r.to_string()).collect::<Vec<_>>()),
        // UFMatch's implicit join to its contact (`contact_id.sort_name`).
        other if other.starts_with("contact_id.") && s.uf_contact_join => {
            let c = s.contacts.iter().find(|c| c.id == u.contact_id)?;
            return value_of(&Row { c, uf: None }, &other["contact_id.".len()..], None);
        }
        "roles:name" | "roles:label" => {
            let label = field.ends_with("label");
            json!(u
                .roles
                .iter()
                .filter_map(|id| s.roles.iter().find(|r| r.id == *id))
                .map(|r| if label {
                    r.label.clone()
                } else {
                    r.name.clone()
                })
                .collect::<Vec<_>>())
        }
        _ => return None,
    })
}

fn with_domains(s: &State, clauses: &[Value]) -> Vec<Value> {
    clauses
        .iter()
        .map(|c| match c.as_array() {
            Some(items) if items.len() == 3 => {
                json!([items[0], items[1], domain_value(s, &items[2])])
            }
            _ => c.clone(),
        })
        .collect()
}

fn where_of(params: &Value) -> Vec<Value> {
    params
        .get("where")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Contacts the caller may see, with CiviCRM's trash rule: deleted contacts are left out
/// unless the where names is_deleted or selects by id (`id =` or `id IN` at the top).
fn visible_rows<'a>(
    s: &'a State,
    caller: &Caller,
    where_: &[Value],
    join: Option<&(String, Vec<Value>)>,
) -> Result<Vec<Row<'a>>, String> {
    let mut named = Vec::new();
    for clause in where_ {
        clause_fields(clause, &mut named);
    }
    let by_id = where_.iter().any(|c| {
        c.get(0).and_then(Value::as_str) == Some("id")
            && matches!(c.get(1).and_then(Value::as_str), Some("=" | "IN"))
    });
    let hide_deleted = !named.iter().any(|f| f == "is_deleted") && !by_id;
    let sees_all = caller.has("view all contacts") || caller.has("edit all contacts");
    let sees_own = caller.has("view my contact") || caller.has("edit my contact");
    let alias = join.map(|j| j.0.as_str());
    let mut out = Vec::new();
    for c in &s.contacts {
        if hide_deleted && c.is_deleted {
            continue;
        }
        if c.is_deleted && !caller.has("access deleted contacts") {
            continue;
        }
        let own = sees_own && caller.contact_id == Some(c.id);
        if !(sees_all || own) {
            continue;
        }
        let ufs: Vec<Option<&FakeUser>> = match join {
            None => vec![None],
            Some((alias, conditions)) => {
                let conditions = with_domains(s, conditions);
                let found: Vec<Option<&FakeUser>> = s
                    .users
                    .iter()
                    .filter(|u| u.contact_id == c.id)
                    .filter(|u| {
                        conditions.iter().all(|cond| {
                            let get = |f: &str| {
                                f.strip_prefix(alias)
                                    .and_then(|f| f.strip_prefix('.'))
                                    .and_then(|f| uf_fields(s, u, f))
                            };
                            matches(&get, cond).unwrap_or(false)
                        })
                    })
                    .map(Some)
                    .collect();
                if found.is_empty() {
                    vec![None]
                } else {
                    found
                }
            }
        };
        for uf in ufs {
            let row = Row { c, uf };
            let get = |f: &str| value_of(&row, f, alias);
            let mut all = true;
            for clause in where_ {
                if !matches(&get, clause)? {
                    all = false;
                    break;
                }
            }
            if all {
                out.push(row);
            }
        }
    }
    Ok(out)
}

/// The params' orderBy in the order written: PHP arrays keep key order, serde_json's maps
/// do not, so it is read from the raw text.
fn order_by(raw: &str) -> Option<Vec<(String, String)>> {
    struct Ordered(Vec<(String, String)>);
    impl<'de> serde::Deserialize<'de> for Ordered {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Visit;
            impl<'de> serde::de::Visitor<'de> for Visit {
                type Value = Ordered;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an orderBy object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Ordered, A::Error> {
                    let mut pairs = Vec::new();
                    while let Some(pair) = map.next_entry::<String, String>()? {
                        pairs.push(pair);
                    }
                    Ok(Ordered(pairs))
                }
            }
            d.deserialize_map(Visit)
        }
    }
    #[derive(serde::Deserialize)]
    struct OnlyOrder {
        #[serde(rename = "orderBy")]
        order_by: Option<Ordered>,
    }
    serde_json::from_str::<OnlyOrder>(raw)
        .ok()?
        .order_by
        .map(|o| o.0)
}

fn result(entity: &str, action: &str, values: Vec<Value>, matched: Option<usize>) -> Value {
    let mut r = Map::new();
    r.insert("values".into(), json!(values));
    r.insert("entity".into(), json!(entity));
    r.insert("action".into(), json!(action));
    r.insert("debug".into(), Value::Null);
    r.insert("version".into(), json!(4));
    r.insert("count".into(), json!(matched.unwrap_or(values.len())));
    r.insert("countFetched".into(), json!(values.len()));
    if let Some(m) = matched {
        r.insert("countMatched".into(), json!(m));
    }
    Value::Object(r)
}

type Failed = (u16, String);

fn contact_get(s: &State, caller: &Caller, params: &Value, raw: &str) -> Result<Value, Failed> {
    let join = uf_join(params).map_err(|e| (500, e))?;
    let alias = join.as_ref().map(|j| j.0.as_str());
    let mut where_ = where_of(params);
    resolve_user_contact(&mut where_, caller.contact_id);
    if !caller.reads_keys() {
        where_ = drop_field(&where_, "api_key");
    }
    let mut rows = visible_rows(s, caller, &where_, join.as_ref()).map_err(|e| (500, e))?;
    let order: Vec<(String, bool)> = match order_by(raw) {
        Some(pairs) => pairs
            .into_iter()
            .map(|(k, v)| (k, v.eq_ignore_ascii_case("DESC")))
            .collect(),
        None => vec![("id".to_string(), false)],
    };
    let key = |r: &Row<'_>, field: &str| -> (u8, String, u64) {
        match value_of(r, field, alias).unwrap_or(Value::Null) {
            Value::Null => (0, String::new(), 0),
            Value::Number(n) => (1, String::new(), n.as_u64().unwrap_or(0)),
            Value::Bool(b) => (1, String::new(), u64::from(b)),
            Value::String(s) => (1, collation_key(&s), 0),
            _ => (0, String::new(), 0),
        }
    };
    rows.sort_by(|a, b| {
        for (field, desc) in &order {
            let ord = key(a, field).cmp(&key(b, field));
            let ord = if *desc { ord.reverse() } else { ord };
            if ord.is_ne() {
                return ord;
            }
        }
        std::cmp::Ordering::Equal
    });
    let total = rows.len();
    let offset = params.get("offset").and_then(Value::as_u64).unwrap_or(0) as usize;
    let limit = params.get("limit").and_then(Value::as_u64).unwrap_or(0) as usize;
    let mut select: Vec<String> = params
        .get("select")
        .and_then(Value::as_array)
        .map(|s| {
            s.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let row_count = select.iter().any(|f| f == "row_count");
    select.retain(|f| f != "row_count");
    if select.is_empty() && !row_count {
        select = [
            "id",
            "display_name",
            "sort_name",
            "contact_type",
            "is_deleted",
        ]
        .map(String::from)
        .to_vec();
    }
    if !caller.reads_keys() {
        select.retain(|f| f != "api_key");
    }
    if let Some(alias) = alias {
        // Joined fields of an entity the caller may not read are left out.
        if !caller.has("cms:administer users") {
            select.retain(|f| !f.starts_with(&format!("{alias}.")));
        }
    }
    let mut values = Vec::new();
    if !(row_count && select.is_empty()) {
        for r in rows
            .iter()
            .skip(offset)
            .take(if limit == 0 { usize::MAX } else { limit })
        {
            let mut record = Map::new();
            for field in &select {
                // An unknown field in select is silently left out, as CiviCRM does.
                if let Some(v) = value_of(r, field, alias) {
                    record.insert(field.clone(), v);
                }
            }
            values.push(Value::Object(record));
        }
    }
    // CiviCRM's count on a short page after an offset is the total it infers (offset +
    // rows), while countFetched is the rows of this answer (rest/132).
    let count = match row_count {
        true => total,
        false if offset > 0 && limit > 0 && values.len() < limit => offset + values.len(),
        false => values.len(),
    };
    let mut answer = result("Contact", "get", values, row_count.then_some(total));
    answer["count"] = json!(count);
    Ok(answer)
}

/// The ids a write's where selects (the caller's view of the contacts).
fn write_targets(s: &State, caller: &Caller, params: &Value) -> Result<Vec<u64>, Failed> {
    let mut where_ = where_of(params);
    if where_.is_empty() {
        return Err((500, "Parameter \"where\" is required.".into()));
    }
    resolve_user_contact(&mut where_, caller.contact_id);
    if !caller.reads_keys() {
        // A user who may write its own key but not read it: the key condition is dropped.
        where_ = drop_field(&where_, "api_key");
    }
    let all = Caller {
        contact_id: caller.contact_id,
        permissions: vec![ALL_PERMISSIONS.to_string()],
    };
    Ok(visible_rows(s, &all, &where_, None)
        .map_err(|e| (500, e))?
        .iter()
        .map(|r| r.c.id)
        .collect())
}

fn may_edit(caller: &Caller, id: u64) -> bool {
    caller.has("edit all contacts")
        || (caller.has("edit my contact") && caller.contact_id == Some(id))
}

fn contact_update(s: &mut State, caller: &Caller, params: &Value) -> Result<Value, Failed> {
    let ids = write_targets(s, caller, params)?;
    let values = params
        .get("values")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for &id in &ids {
        if !may_edit(caller, id) {
            return Err((403, "ACL check failed".into()));
        }
        if values.contains_key("api_key")
            && !(caller.reads_keys()
                || (caller.has("edit own api keys") && caller.contact_id == Some(id)))
        {
            return Err((403, "Permission denied to modify api key".into()));
        }
    }
    let new_key = match values.get("api_key") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(k)) if k.is_empty() => Some(None),
        // CiviCRM's DAO cuts a value longer than the column to 29 characters + "...".
        Some(Value::String(k)) if k.chars().count() > 32 => Some(Some(format!(
            "{}...",
            k.chars().take(29).collect::<String>()
        ))),
        Some(Value::String(k)) => Some(Some(k.clone())),
        Some(_) => return Err((500, "api_key must be text".into())),
    };
    let mut out = Vec::new();
    for c in s.contacts.iter_mut().filter(|c| ids.contains(&c.id)) {
        if let Some(k) = &new_key {
            c.api_key = k.clone();
        }
        if let Some(d) = values.get("is_deleted").and_then(Value::as_bool) {
            c.is_deleted = d;
        }
        let mut record = Map::new();
        record.insert("id".into(), json!(c.id));
        record.insert("contact_type".into(), json!(c.contact_type));
        record.insert("display_name".into(), json!(c.display_name));
        record.insert("sort_name".into(), json!(c.sort_name));
        for (field, value) in &values {
            let shown = match field.as_str() {
                "api_key" => json!(c.api_key),
                _ => value.clone(),
            };
            record.insert(field.clone(), shown);
        }
        out.push(Value::Object(record));
    }
    Ok(result("Contact", "update", out, None))
}

fn contact_delete(s: &mut State, caller: &Caller, params: &Value) -> Result<Value, Failed> {
    let ids = write_targets(s, caller, params)?;
    if !caller.has("delete contacts") {
        return Err((403, "ACL check failed".into()));
    }
    for c in s.contacts.iter_mut().filter(|c| ids.contains(&c.id)) {
        c.is_deleted = true;
    }
    Ok(result(
        "Contact",
        "delete",
        ids.iter().map(|id| json!({"id": id})).collect(),
        None,
    ))
}

/// The permission to read every user and role (Standalone).
pub const ADMINISTER_USERS: &str = "cms:administer users";

/// UFMatch.get, User.get and Role.get as the caller may see them: everything with
/// 'cms:administer users'; without it User.get answers the caller's own user row only,
/// silently (rest/119, 126), and UFMatch.get and Role.get are refused (rest/117, 121).
fn users_get(s: &State, caller: &Caller, entity: &str, params: &Value) -> Result<Value, Failed> {
    if caller.has(ADMINISTER_USERS) {
        return account_get(s, entity, params, None);
    }
    if entity == "User" {
        return account_get(s, entity, params, Some(caller.contact_id));
    }
    Err((
        403,
        format!("Authorization failed: CiviCRM APIv4 ({entity}::get)"),
    ))
}

/// UFMatch.get, User.get (the current domain's rows) and Role.get; `only` keeps the user
/// rows of that contact (None: anonymous, no row).
fn account_get(
    s: &State,
    entity: &str,
    params: &Value,
    only: Option<Option<u64>>,
) -> Result<Value, Failed> {
    let where_ = with_domains(s, &where_of(params));
    let select: Vec<String> = params
        .get("select")
        .and_then(Value::as_array)
        .map(|s| {
            s.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    // API v4 adds the id to a select that leaves it out (rest/114).
    let select: Vec<String> = match select.iter().any(|f| f == "id") || select.is_empty() {
        true => select,
        false => std::iter::once("id".to_string()).chain(select).collect(),
    };
    let mut values = Vec::new();
    if entity == "Role" {
        let select = if select.is_empty() {
            ["id", "name", "label", "permissions", "is_active"]
                .map(String::from)
                .to_vec()
        } else {
            select
        };
        let limit = params.get("limit").and_then(Value::as_u64).unwrap_or(0) as usize;
        for r in &s.roles {
            if limit > 0 && values.len() >= limit {
                break;
            }
            let get = |f: &str| -> Option<Value> {
                Some(match f {
                    "id" => json!(r.id),
                    "name" => json!(r.name),
                    "label" => json!(r.label),
                    "permissions" => json!(r.permissions),
                    "is_active" => json!(r.active),
                    _ => return None,
                })
            };
            values.extend(selected_if_matching(&where_, &select, &get)?);
        }
        return Ok(result(entity, "get", values, None));
    }
    let default: &[&str] = if entity == "UFMatch" {
        &[
            "id",
            "domain_id",
            "uf_id",
            "uf_name",
            "contact_id",
            "language",
        ]
    } else {
        &[
            "id",
            "username",
            "uf_name",
            "contact_id",
            "is_active",
            "when_last_accessed",
        ]
    };
    let select = if select.is_empty() {
        default.iter().map(|f| f.to_string()).collect()
    } else {
        select
    };
    for u in &s.users {
        if entity == "User" && u.domain_id != s.current_domain {
            continue;
        }
        if only.is_some_and(|own| own != Some(u.contact_id)) {
            continue;
        }
        let get = |f: &str| uf_fields(s, u, f);
        values.extend(selected_if_matching(&where_, &select, &get)?);
    }
    let limit = params.get("limit").and_then(Value::as_u64).unwrap_or(0) as usize;
    if limit > 0 {
        values.truncate(limit);
    }
    Ok(result(entity, "get", values, None))
}
