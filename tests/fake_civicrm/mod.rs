//! A fake CiviCRM site speaking REST API v4 the way shared/CIVICRM.md documents it, on
//! 127.0.0.1 with a random port, in a thread, over in-memory contacts.
//!
//! It checks the auth headers (401 text/plain when missing or wrong), answers 405 to a GET
//! on a write action, hides deleted contacts unless `is_deleted` is in the where clause,
//! evaluates the where clauses (=, !=, IN, LIKE, IS NULL, IS NOT NULL, OR/AND/NOT),
//! orderBy, limit/offset and the UFMatch join, and compares text case-insensitively as
//! MySQL's `_ci` collations do. Modes reproduce the failures a client must survive.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use serde_json::{json, Map, Value};

use civikey::seed::SeedContact;

pub const ADMIN_KEY: &str = "AdminAdminAdminAdminAdminKey0001";
pub const SITE_KEY: &str = "SiteKeySiteKeySiteKeySiteKey0001";

/// How the site misbehaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// The admin's user lacks `edit api keys`: api_key dropped from select, where and values,
    /// and named in `debug.unauthorized_fields` when `debug` (a site may not send debug).
    NoEditApiKeys {
        debug: bool,
    },
    /// Answers after `delay`. The request is still applied.
    Slow(Duration),
    /// 503, as a site in maintenance mode answers.
    Maintenance,
    /// 200 text/html: a login page.
    Html,
    /// 200 application/json, the JSON cut in half (the HTTP message itself is complete).
    TruncatedJson,
    /// 200 with 10 MB of values.
    Huge,
    /// 500 with an API error_message.
    ServerError,
    /// 403 with an API error_message.
    Forbidden,
}

#[derive(Clone, Debug)]
pub struct FakeContact {
    pub id: u64,
    pub contact_type: String,
    pub display_name: String,
    pub sort_name: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub is_deleted: bool,
    pub api_key: Option<String>,
    pub uf_id: Option<u64>,
}

/// One request as the site saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub target: String,
}

pub struct State {
    pub contacts: Vec<FakeContact>,
    pub mode: Mode,
    /// When set, the mode applies to this action only ("get" or "update").
    pub mode_action: Option<&'static str>,
    /// Whether X-Civi-Key is required (the authx site_key guard).
    pub require_site_key: bool,
    pub requests: Vec<Seen>,
    /// Update requests the site received (whatever their outcome).
    pub updates_received: usize,
    /// A credential seen in a request line: the server's assertion that keys stay out of URLs.
    pub key_in_url: bool,
}

pub struct FakeCivi {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl FakeCivi {
    pub fn start(contacts: Vec<SeedContact>) -> FakeCivi {
        let contacts = contacts
            .into_iter()
            .map(|c| FakeContact {
                id: c.id.unwrap() as u64,
                contact_type: c.contact_type,
                display_name: c.display_name,
                sort_name: c.sort_name,
                first_name: c.first_name,
                last_name: c.last_name,
                email: c.email,
                is_deleted: c.is_deleted,
                api_key: c.api_key.map(|k| k.expose().to_string()),
                uf_id: c.uf_id.map(|u| u as u64),
            })
            .collect();
        let state = Arc::new(Mutex::new(State {
            contacts,
            mode: Mode::Normal,
            mode_action: None,
            require_site_key: true,
            requests: Vec::new(),
            updates_received: 0,
            key_in_url: false,
        }));
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
}

impl Drop for FakeCivi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
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

fn respond(stream: &mut TcpStream, status: u16, content_type: &str, body: &[u8]) {
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Other",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // The client may have given up (timeouts, size caps): a failed write is expected then.
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
}

fn respond_json(stream: &mut TcpStream, status: u16, value: &Value) {
    respond(
        stream,
        status,
        "application/json",
        value.to_string().as_bytes(),
    );
}

fn api_error(stream: &mut TcpStream, status: u16, message: &str) {
    respond_json(
        stream,
        status,
        &json!({"error_code": 0, "error_message": message, "status": status}),
    );
}

fn url_decode(text: &str) -> String {
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

fn serve(mut stream: TcpStream, state: &Mutex<State>) {
    let Some(request) = read_request(&stream) else {
        return;
    };
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    let (path, query) = match request.target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (request.target.clone(), None),
    };
    let action = path.rsplit('/').next().unwrap_or("").to_string();
    let mode = {
        let mut s = lock();
        let decoded = url_decode(&request.target);
        if decoded.contains(ADMIN_KEY) || decoded.contains(SITE_KEY) {
            s.key_in_url = true;
        }
        s.requests.push(Seen {
            method: request.method.clone(),
            target: request.target.clone(),
        });
        if action == "update" {
            s.updates_received += 1;
        }
        match s.mode_action {
            Some(only) if only != action => Mode::Normal,
            _ => s.mode.clone(),
        }
    };
    match &mode {
        Mode::Maintenance => {
            return respond(
                &mut stream,
                503,
                "text/html",
                b"<html><body><h1>Site under maintenance</h1></body></html>",
            )
        }
        Mode::Html => {
            return respond(
                &mut stream,
                200,
                "text/html; charset=utf-8",
                b"<!DOCTYPE html><html><head><title>Log in</title></head><body><form>user, password</form></body></html>",
            )
        }
        _ => {}
    }
    let auth_ok = request.headers.get("x-civi-auth").map(String::as_str)
        == Some(&format!("Bearer {ADMIN_KEY}"))
        && (!lock().require_site_key
            || request.headers.get("x-civi-key").map(String::as_str) == Some(SITE_KEY));
    if !auth_ok {
        return respond(
            &mut stream,
            401,
            "text/plain",
            b"Invalid credential\x1b[31m",
        );
    }
    if request.headers.get("x-requested-with").map(String::as_str) != Some("XMLHttpRequest") {
        return api_error(&mut stream, 403, "missing X-Requested-With");
    }
    if path == "/civicrm/ajax/api4" && request.method == "POST" {
        return multi_call(&mut stream, state, &request.body, &mode);
    }
    let Some(entity_path) = path.strip_prefix("/civicrm/ajax/api4/") else {
        return respond(
            &mut stream,
            404,
            "text/html",
            b"<html>Page not found</html>",
        );
    };
    if entity_path != format!("Contact/{action}") || !matches!(action.as_str(), "get" | "update") {
        return api_error(&mut stream, 404, "API (Contact, ...) does not exist");
    }
    let raw_params = match request.method.as_str() {
        "POST" => form_field(&String::from_utf8_lossy(&request.body), "params"),
        "GET" if action == "get" => query.as_deref().and_then(|q| form_field(q, "params")),
        "GET" => return api_error(&mut stream, 405, "Method not allowed"),
        _ => return api_error(&mut stream, 405, "Method not allowed"),
    };
    let params: Value = match raw_params.as_deref().map(serde_json::from_str) {
        None => json!({}),
        Some(Ok(v)) => v,
        Some(Err(_)) => return api_error(&mut stream, 400, "params is not valid JSON"),
    };
    if let Mode::Slow(delay) = &mode {
        thread::sleep(*delay);
    }
    match &mode {
        Mode::ServerError => return api_error(&mut stream, 500, "DB Error: unknown error"),
        Mode::Forbidden => return api_error(&mut stream, 403, "Authorization failed"),
        Mode::Huge => return huge(&mut stream),
        _ => {}
    }
    let (trap, debug) = match mode {
        Mode::NoEditApiKeys { debug } => (true, debug),
        _ => (false, false),
    };
    let result = {
        let mut s = lock();
        if action == "get" {
            get(
                &s.contacts,
                &params,
                raw_params.as_deref().unwrap_or("{}"),
                trap,
                debug,
            )
        } else {
            update(&mut s.contacts, &params, trap, debug)
        }
    };
    match result {
        Ok(value) if mode == Mode::TruncatedJson => {
            let text = value.to_string();
            respond(
                &mut stream,
                200,
                "application/json",
                &text.as_bytes()[..text.len() / 2],
            );
        }
        Ok(value) => respond_json(&mut stream, 200, &value),
        Err(message) => api_error(&mut stream, 500, &message),
    }
}

/// POST /civicrm/ajax/api4 with `calls={"name":[Entity, action, params], ...}`: each call
/// answered under its name (recorded in civicrm-recorded/rest/091-096); Contact.get only.
fn multi_call(stream: &mut TcpStream, state: &Mutex<State>, body: &[u8], mode: &Mode) {
    let Some(raw) = form_field(&String::from_utf8_lossy(body), "calls") else {
        return api_error(stream, 400, "no calls");
    };
    let Ok(Value::Object(calls)) = serde_json::from_str::<Value>(&raw) else {
        return api_error(stream, 400, "calls is not a JSON object");
    };
    if let Mode::Slow(delay) = mode {
        thread::sleep(*delay);
    }
    match mode {
        Mode::ServerError => return api_error(stream, 500, "DB Error: unknown error"),
        Mode::Forbidden => return api_error(stream, 403, "Authorization failed"),
        _ => {}
    }
    let trap = matches!(mode, Mode::NoEditApiKeys { .. });
    let mut answer = Map::new();
    for (name, call) in calls {
        let entity = call.get(0).and_then(Value::as_str).unwrap_or("");
        let action = call.get(1).and_then(Value::as_str).unwrap_or("");
        let params = call.get(2).cloned().unwrap_or_else(|| json!({}));
        // The raw text of this call's params, for the orderBy key order.
        let raw_params = raw_call_params(&raw, &name).unwrap_or_else(|| params.to_string());
        let result = if entity == "Contact" && action == "get" {
            let s = state.lock().unwrap_or_else(|e| e.into_inner());
            get(&s.contacts, &params, &raw_params, trap, false)
        } else {
            Err(format!(
                "API ({entity}, {action}) is not in this fake's multi-call"
            ))
        };
        answer.insert(
            name,
            match result {
                Ok(value) => value,
                Err(message) => json!({"error_code": 0, "error_message": message, "status": 500}),
            },
        );
    }
    respond_json(stream, 200, &Value::Object(answer));
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

/// Fields as API v4 names them; `alias` is the UFMatch join's alias, if joined.
fn value_of(c: &FakeContact, field: &str, alias: Option<&str>) -> Result<Value, String> {
    Ok(match field {
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
            (Some((a, "uf_id")), Some(alias)) if a == alias => json!(c.uf_id),
            (Some((a, "contact_id")), Some(alias)) if a == alias => {
                if c.uf_id.is_some() {
                    json!(c.id)
                } else {
                    Value::Null
                }
            }
            _ => return Err(format!("Invalid field '{other}'")),
        },
    })
}

fn lower(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(s.to_lowercase()),
        Value::Bool(b) => json!(u8::from(*b)),
        other => other.clone(),
    }
}

/// MySQL-ish equality: `_ci` for text, booleans as 0/1.
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

/// LIKE with `%`, `_` and `\` escapes, case- and accent-insensitive (as utf8mb4 `_ci`).
fn like(text: &str, pattern: &str) -> bool {
    use civikey::store::fold::fold;
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

fn matches(c: &FakeContact, clause: &Value, alias: Option<&str>) -> Result<bool, String> {
    let items = clause.as_array().ok_or("a where clause must be an array")?;
    let head = items
        .first()
        .and_then(Value::as_str)
        .ok_or("a where clause needs a field")?;
    let subs = || -> Result<Vec<Value>, String> {
        items
            .get(1)
            .and_then(Value::as_array)
            .cloned()
            .ok_or_else(|| format!("{head} needs a list"))
    };
    match head {
        "OR" => {
            for sub in subs()? {
                if matches(c, &sub, alias)? {
                    return Ok(true);
                }
            }
            return Ok(false);
        }
        "AND" => {
            for sub in subs()? {
                if !matches(c, &sub, alias)? {
                    return Ok(false);
                }
            }
            return Ok(true);
        }
        "NOT" => {
            for sub in subs()? {
                if !matches(c, &sub, alias)? {
                    return Ok(true);
                }
            }
            return Ok(false);
        }
        _ => {}
    }
    let value = value_of(c, head, alias)?;
    let op = items
        .get(1)
        .and_then(Value::as_str)
        .ok_or("a where clause needs an operator")?;
    let arg = items.get(2).cloned().unwrap_or(Value::Null);
    Ok(match op {
        "=" => equal(&value, &arg),
        // Ordered as `get` sorts (text without case, numbers as numbers); NULL is never greater.
        ">" => match (&value, &arg) {
            (Value::String(a), Value::String(b)) => a.to_lowercase() > b.to_lowercase(),
            (Value::Number(a), Value::Number(b)) => a.as_f64() > b.as_f64(),
            _ => false,
        },
        "!=" | "<>" => !value.is_null() && !equal(&value, &arg),
        "IN" => arg
            .as_array()
            .ok_or("IN needs a list")?
            .iter()
            .any(|a| equal(&value, a)),
        "IS NULL" => value.is_null(),
        "IS NOT NULL" => !value.is_null(),
        "LIKE" => match (&value, arg.as_str()) {
            (Value::String(s), Some(p)) => like(s, p),
            _ => false,
        },
        other => return Err(format!("Illegal operator '{other}'")),
    })
}

/// The UFMatch join alias, if the params join it the way the client must.
fn uf_alias(params: &Value) -> Result<Option<String>, String> {
    let Some(joins) = params.get("join").and_then(Value::as_array) else {
        return Ok(None);
    };
    let mut alias = None;
    for join in joins {
        let entity = join.get(0).and_then(Value::as_str).unwrap_or("");
        let Some(("UFMatch", a)) = entity.split_once(" AS ") else {
            return Err(format!("Unsupported join '{entity}'"));
        };
        let on = join.get(2).cloned().unwrap_or(Value::Null);
        if on != json!([format!("{a}.contact_id"), "=", "id"]) {
            return Err(format!("Unsupported join condition {on}"));
        }
        alias = Some(a.to_string());
    }
    Ok(alias)
}

/// The contacts a where clause selects, with CiviCRM's hiding of deleted contacts.
fn select_rows<'a>(
    contacts: &'a [FakeContact],
    where_: &[Value],
    alias: Option<&str>,
) -> Result<Vec<&'a FakeContact>, String> {
    let mut named = Vec::new();
    for clause in where_ {
        clause_fields(clause, &mut named);
    }
    let hide_deleted = !named.iter().any(|f| f == "is_deleted");
    let mut out = Vec::new();
    for c in contacts {
        if hide_deleted && c.is_deleted {
            continue;
        }
        let mut all = true;
        for clause in where_ {
            if !matches(c, clause, alias)? {
                all = false;
                break;
            }
        }
        if all {
            out.push(c);
        }
    }
    Ok(out)
}

fn where_of(params: &Value, trap: bool) -> Vec<Value> {
    let where_ = params
        .get("where")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if trap {
        drop_field(&where_, "api_key")
    } else {
        where_
    }
}

fn with_debug(mut result: Map<String, Value>, debug: bool) -> Value {
    if debug {
        result.insert("debug".into(), json!({"unauthorized_fields": ["api_key"]}));
    }
    Value::Object(result)
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

fn get(
    contacts: &[FakeContact],
    params: &Value,
    raw: &str,
    trap: bool,
    debug: bool,
) -> Result<Value, String> {
    let alias = uf_alias(params)?;
    let alias = alias.as_deref();
    let mut rows = select_rows(contacts, &where_of(params, trap), alias)?;
    let order: Vec<(String, bool)> = match order_by(raw) {
        Some(pairs) => pairs
            .into_iter()
            .map(|(k, v)| (k, v.eq_ignore_ascii_case("DESC")))
            .collect(),
        None => vec![("id".to_string(), false)],
    };
    if let Some(first) = contacts.first() {
        for (field, _) in &order {
            value_of(first, field, alias)?;
        }
    }
    let key = |c: &FakeContact, field: &str| -> (u8, String, u64) {
        match value_of(c, field, alias).unwrap_or(Value::Null) {
            Value::Null => (0, String::new(), 0),
            Value::Number(n) => (1, String::new(), n.as_u64().unwrap_or(0)),
            Value::Bool(b) => (1, String::new(), u64::from(b)),
            Value::String(s) => (1, s.to_lowercase(), 0),
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
    let offset = params.get("offset").and_then(Value::as_u64).unwrap_or(0) as usize;
    let limit = params.get("limit").and_then(Value::as_u64).unwrap_or(0) as usize;
    let rows: Vec<_> = rows
        .into_iter()
        .skip(offset)
        .take(if limit == 0 { usize::MAX } else { limit })
        .collect();
    let mut select: Vec<String> = params
        .get("select")
        .and_then(Value::as_array)
        .map(|s| {
            s.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if select.is_empty() {
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
    if trap {
        select.retain(|f| f != "api_key");
    }
    let mut values = Vec::new();
    for c in &rows {
        let mut record = Map::new();
        for field in &select {
            record.insert(field.clone(), value_of(c, field, alias)?);
        }
        values.push(Value::Object(record));
    }
    let mut result = Map::new();
    result.insert("entity".into(), json!("Contact"));
    result.insert("action".into(), json!("get"));
    result.insert("version".into(), json!(4));
    result.insert("count".into(), json!(values.len()));
    result.insert("countFetched".into(), json!(values.len()));
    result.insert("values".into(), Value::Array(values));
    Ok(with_debug(result, debug))
}

fn update(
    contacts: &mut [FakeContact],
    params: &Value,
    trap: bool,
    debug: bool,
) -> Result<Value, String> {
    let where_ = where_of(params, trap);
    if where_.is_empty() {
        return Err("Parameter \"where\" is required.".into());
    }
    let values = params
        .get("values")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for field in values.keys() {
        if field != "api_key" {
            return Err(format!("the fake site only updates api_key, not '{field}'"));
        }
    }
    let ids: Vec<u64> = select_rows(contacts, &where_, None)?
        .iter()
        .map(|c| c.id)
        .collect();
    if !trap {
        if let Some(new) = values.get("api_key") {
            let new = match new {
                Value::Null => None,
                Value::String(s) if s.is_empty() => None,
                // CiviCRM's DAO cuts a value longer than the column to 29 characters + "...".
                Value::String(s) if s.chars().count() > 32 => {
                    Some(format!("{}...", s.chars().take(29).collect::<String>()))
                }
                Value::String(s) => Some(s.clone()),
                _ => return Err("api_key must be text".into()),
            };
            for c in contacts.iter_mut().filter(|c| ids.contains(&c.id)) {
                c.api_key = new.clone();
            }
        }
    }
    let mut result = Map::new();
    result.insert("entity".into(), json!("Contact"));
    result.insert("action".into(), json!("update"));
    result.insert("version".into(), json!(4));
    result.insert("count".into(), json!(ids.len()));
    result.insert(
        "values".into(),
        ids.iter().map(|id| json!({"id": id})).collect(),
    );
    Ok(with_debug(result, debug))
}
