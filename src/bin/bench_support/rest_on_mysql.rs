//! `civikey-bench rest-on-mysql MYSQL_ADDRESS PORT`: a stand-in for CiviCRM's REST API v4
//! that runs each Contact.get as SQL on a CiviCRM-shaped MariaDB database, so the REST
//! store can be measured at 1,000,000 contacts without a CiviCRM site.
//!
//! It answers `POST /civicrm/ajax/api4/Contact/get` (select, joins of UFMatch and Email by
//! alias, the primary email joined only when a field of it is named, where with OR/AND,
//! =, !=, >, <=, IN, LIKE, IS NULL, IS NOT NULL, orderBy sort_name and id in either direction,
//! limit, offset; deleted contacts hidden unless the where names `is_deleted`, as API v4
//! does: [`contact_get`], which the cv stand-in shares), the multi-call
//! `POST /civicrm/ajax/api4` (`calls`: Contact.get, and UFMatch.get of `contact_id IN
//! [...]` for the CMS links) and
//! `POST /civicrm/ajax/api4/Contact/autocomplete` (`{"input": X}`: CiviCRM's SQL, query h
//! of shared/civicrm-recorded/timings.md). One request per connection, like the real site
//! behind civikey's client; no CiviCRM bootstrap, so each request costs the SQL alone
//! (the real site adds about 60 ms, timings.md), unless [`REQUEST_MS_VAR`] adds it. Read-only: anything else is refused. It
//! checks no credential: run it on 127.0.0.1 for measurements only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use mysql::prelude::Queryable;
use mysql::{Params, Value as Sql};
use serde_json::{json, Map, Value};

use civikey::store::mysql::MysqlOptions;

/// `CIVIKEY_BENCH_REST_REQUEST_MS=N`: each request first waits N ms, CiviCRM's own cost
/// per request (its bootstrap: about 60 ms on the recorded site, timings.md).
pub const REQUEST_MS_VAR: &str = "CIVIKEY_BENCH_REST_REQUEST_MS";
/// A file that gets one line per call of a multi-call: its name, its SQL time, its where.
pub const LOG_VAR: &str = "CIVIKEY_BENCH_REST_LOG";
/// A file that gets one line per request served (its path, the time to answer it and the
/// answer's size): the site's request log, to count a command's requests.
pub const REQUESTS_VAR: &str = "CIVIKEY_BENCH_REST_REQUESTS";

fn log_call(path: &std::ffi::OsStr, name: &str, params: &Value, took: Duration) {
    use std::io::Write as _;
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let where_ = params
            .get("where")
            .map(Value::to_string)
            .unwrap_or_default();
        let _ = writeln!(
            file,
            "{name} {:.1} ms {where_}",
            took.as_secs_f64() * 1000.0
        );
    }
}

/// Requests served at once, each by a worker with a connection of its own, as a site's
/// PHP workers do (PHP-FPM's default `pm.max_children` is 5).
const WORKERS: usize = 4;

/// Serves until the process is stopped, a connection per request, [`WORKERS`] at once.
pub fn serve(options: &MysqlOptions, port: u16) -> Result<(), String> {
    let listener =
        TcpListener::bind(("127.0.0.1", port)).map_err(|e| format!("port {port}: {e}"))?;
    // Port 0 takes a free one; the line names the port taken (tests read it).
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let request_ms: u64 = std::env::var(REQUEST_MS_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let conn = civikey::store::mysql::open_connection(options).map_err(|e| e.to_string())?;
        let listener = listener.try_clone().map_err(|e| e.to_string())?;
        workers.push((conn, listener));
    }
    eprintln!("civikey-bench: REST on MySQL listening on http://127.0.0.1:{port}");
    std::thread::scope(|scope| {
        for (conn, listener) in workers {
            scope.spawn(move || work(conn, &listener, request_ms));
        }
    });
    Ok(())
}

/// One worker: answers the connections it accepts, one at a time.
fn work(mut conn: mysql::Conn, listener: &TcpListener, request_ms: u64) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let request = read_request(&stream);
        // CiviCRM's own cost per request (bootstrap), which this stand-in does not have.
        std::thread::sleep(Duration::from_millis(request_ms));
        let started = std::time::Instant::now();
        let path = request.as_ref().map(|(path, _)| path.clone());
        let answer = match request {
            Some((path, body)) => answer(&mut conn, &path, &body),
            None => Err("unreadable request".into()),
        };
        let (status, body) = match answer {
            Ok(value) => (200, value.to_string()),
            Err(message) => (500, json!({"error_message": message}).to_string()),
        };
        // The path, then the time to answer it (SQL and JSON) and the answer's size.
        if let (Some(path), Some(log)) = (path, std::env::var_os(REQUESTS_VAR)) {
            if let Ok(mut file) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
            {
                let took = started.elapsed().as_secs_f64() * 1000.0;
                let _ = writeln!(file, "{path} {took:.1} ms {} bytes", body.len());
            }
        }
        let _ = write!(
            stream,
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}

pub fn read_request(stream: &TcpStream) -> Option<(String, String)> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((path, String::from_utf8(body).ok()?))
}

pub fn url_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn answer(conn: &mut mysql::Conn, path: &str, body: &str) -> Result<Value, String> {
    if path == "/civicrm/ajax/api4" {
        // Several calls in one request, each answered under its name.
        let calls = body
            .split('&')
            .find_map(|kv| kv.strip_prefix("calls="))
            .map(url_decode)
            .ok_or("no calls")?;
        let calls: Map<String, Value> = serde_json::from_str(&calls).map_err(|e| e.to_string())?;
        let mut out = Map::new();
        let log = std::env::var_os(LOG_VAR);
        for (name, call) in calls {
            let params = call.get(2).cloned().unwrap_or_else(|| json!({}));
            let started = std::time::Instant::now();
            let result = match (
                call.get(0).and_then(Value::as_str),
                call.get(1).and_then(Value::as_str),
            ) {
                (Some("Contact"), Some("get")) => get(conn, &params),
                (Some("UFMatch"), Some("get")) => uf_match_get(conn, &params),
                _ => Err("only Contact.get and UFMatch.get are served in a multi-call".into()),
            };
            if let Some(log) = &log {
                log_call(log, &name, &params, started.elapsed());
            }
            out.insert(
                name,
                result.unwrap_or_else(
                    |message| json!({"error_code": 0, "error_message": message, "status": 500}),
                ),
            );
        }
        return Ok(Value::Object(out));
    }
    let params = body
        .split('&')
        .find_map(|kv| kv.strip_prefix("params="))
        .map(url_decode)
        .unwrap_or_else(|| "{}".into());
    let params: Value = serde_json::from_str(&params).map_err(|e| e.to_string())?;
    match path {
        "/civicrm/ajax/api4/Contact/get" => get(conn, &params),
        "/civicrm/ajax/api4/Contact/autocomplete" => autocomplete(conn, &params),
        "/civicrm/ajax/api4/UFMatch/get" => uf_match_get(conn, &params),
        other => Err(format!("not served here: {other}")),
    }
}

/// The tables a Contact.get reads: `a` (civicrm_contact), the primary email `e` (joined only
/// when a field of it is named, as API v4 adds its implicit joins on demand) and the
/// explicit joins by their aliases (`["UFMatch AS uf", "LEFT", ...]`, `["Email AS email",
/// "INNER", ...]`, each on the contact's id).
struct Tables {
    joins: Vec<(String, &'static str, &'static str)>,
    primary_email: bool,
}

impl Tables {
    fn new(params: &Value) -> Result<Self, String> {
        let mut joins = Vec::new();
        for join in params
            .get("join")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let spec = join.get(0).and_then(Value::as_str).unwrap_or("");
            let (entity, alias) = spec.split_once(" AS ").unwrap_or((spec, spec));
            let table = match entity {
                "UFMatch" => "civicrm_uf_match",
                "Email" => "civicrm_email",
                other => return Err(format!("join on {other} is not served here")),
            };
            let kind = match join.get(1).and_then(Value::as_str) {
                Some("INNER") => "INNER",
                _ => "LEFT",
            };
            if !alias.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("bad join alias {alias:?}"));
            }
            joins.push((alias.to_string(), table, kind));
        }
        Ok(Tables {
            joins,
            primary_email: false,
        })
    }

    /// API v4's field names as columns.
    fn column(&mut self, field: &str) -> Result<String, String> {
        let contact = match field {
            "id" | "display_name" | "sort_name" | "contact_type" | "is_deleted" | "first_name"
            | "last_name" | "organization_name" | "household_name" | "api_key" => true,
            "email_primary.email" => {
                self.primary_email = true;
                return Ok("e.email".into());
            }
            _ => false,
        };
        if contact {
            return Ok(format!("a.{field}"));
        }
        if let Some((alias, name)) = field.split_once('.') {
            let known = self.joins.iter().find(|(a, _, _)| a == alias);
            match (known.map(|(_, table, _)| *table), name) {
                (Some("civicrm_uf_match"), "uf_id" | "contact_id" | "domain_id")
                | (Some("civicrm_email"), "email" | "is_primary" | "contact_id") => {
                    return Ok(format!("{alias}.{name}"))
                }
                _ => {}
            }
        }
        Err(format!("Invalid field '{field}'"))
    }

    fn from(&self) -> String {
        let mut sql = String::from("civicrm_contact a");
        if self.primary_email {
            sql.push_str(" LEFT JOIN civicrm_email e ON e.contact_id = a.id AND e.is_primary = 1");
        }
        for (alias, table, kind) in &self.joins {
            sql.push_str(&format!(
                " {kind} JOIN {table} {alias} ON {alias}.contact_id = a.id"
            ));
        }
        sql
    }
}

fn sql_value(value: &Value) -> Sql {
    match value {
        Value::String(s) => Sql::from(s.as_str()),
        Value::Number(n) => n
            .as_u64()
            .map(Sql::from)
            .or_else(|| n.as_i64().map(Sql::from))
            .unwrap_or(Sql::NULL),
        Value::Bool(b) => Sql::from(u8::from(*b)),
        _ => Sql::NULL,
    }
}

/// One where clause as SQL, its values pushed onto `args`; notes whether is_deleted is named.
fn clause(
    c: &Value,
    tables: &mut Tables,
    args: &mut Vec<Sql>,
    deleted_named: &mut bool,
) -> Result<String, String> {
    let items = c.as_array().ok_or("a where clause is not a list")?;
    let head = items.first().and_then(Value::as_str).unwrap_or("");
    if head == "OR" || head == "AND" {
        let parts = items
            .get(1)
            .and_then(Value::as_array)
            .ok_or("OR/AND takes a list")?
            .iter()
            .map(|p| clause(p, tables, args, deleted_named))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(format!("({})", parts.join(&format!(" {head} "))));
    }
    if head == "is_deleted" {
        *deleted_named = true;
    }
    let col = tables.column(head)?;
    let op = items.get(1).and_then(Value::as_str).unwrap_or("");
    let value = items.get(2).cloned().unwrap_or(Value::Null);
    Ok(match op {
        "=" | "!=" | "LIKE" | ">" | "<=" => {
            args.push(sql_value(&value));
            format!("{col} {op} ?")
        }
        "IN" => {
            let list = value.as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                return Ok("0".into());
            }
            args.extend(list.iter().map(sql_value));
            format!("{col} IN ({})", vec!["?"; list.len()].join(", "))
        }
        "IS NULL" | "IS NOT NULL" => format!("{col} {op}"),
        other => return Err(format!("Illegal operator '{other}'")),
    })
}

/// UFMatch.get of `contact_id IN [...]` on the current domain (what civikey asks for a
/// page's CMS links): `SELECT contact_id, uf_id FROM civicrm_uf_match`, on its
/// (contact_id, domain_id) index.
fn uf_match_get(conn: &mut mysql::Conn, params: &Value) -> Result<Value, String> {
    let where_ = params
        .get("where")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let on_contact = |c: &Value| {
        c.get(0)
            .and_then(Value::as_str)
            .is_some_and(|f| f.starts_with("contact_id.") || f == "OR" || f == "AND")
    };
    if where_.iter().any(on_contact) {
        return uf_match_of_contacts(conn, params, &where_);
    }
    let ids: Vec<u64> = where_
        .iter()
        .find(|c| c.get(0).and_then(Value::as_str) == Some("contact_id"))
        .and_then(|c| c.get(2))
        .and_then(Value::as_array)
        .ok_or("UFMatch.get is served for contact_id IN [...] or contact_id.FIELD only")?
        .iter()
        .map(|v| v.as_u64().ok_or("contact ids are numbers"))
        .collect::<Result<_, _>>()?;
    let mut values = Vec::new();
    if !ids.is_empty() {
        let sql = format!(
            "SELECT contact_id, uf_id FROM civicrm_uf_match WHERE domain_id = 1 AND contact_id IN ({})",
            vec!["?"; ids.len()].join(", ")
        );
        let rows: Vec<(u64, u64)> = conn
            .exec(
                sql,
                Params::Positional(ids.into_iter().map(Sql::from).collect()),
            )
            .map_err(|e| e.to_string())?;
        values = rows
            .into_iter()
            .map(|(contact_id, uf_id)| json!({"contact_id": contact_id, "uf_id": uf_id}))
            .collect();
    }
    Ok(
        json!({"entity": "UFMatch", "action": "get", "version": 4, "count": values.len(), "values": values}),
    )
}

/// UFMatch.get on conditions of the linked contact (`contact_id.sort_name LIKE ...`, a
/// keystroke branch's CMS links) on the current domain, as API v4's implicit join runs it:
/// the user table joined to the contacts.
fn uf_match_of_contacts(
    conn: &mut mysql::Conn,
    params: &Value,
    where_: &[Value],
) -> Result<Value, String> {
    fn unprefixed(c: &Value) -> Value {
        match c.as_array().map(Vec::as_slice) {
            Some([Value::String(op), Value::Array(parts)]) if op == "OR" || op == "AND" => {
                json!([op, parts.iter().map(unprefixed).collect::<Vec<_>>()])
            }
            Some([Value::String(field), rest @ ..]) => {
                let mut out = vec![json!(field.strip_prefix("contact_id.").unwrap_or(field))];
                out.extend(rest.iter().cloned());
                Value::Array(out)
            }
            _ => c.clone(),
        }
    }
    let mut tables = Tables::new(&json!({}))?;
    let mut args = Vec::new();
    let mut deleted_named = false;
    let mut conditions = vec!["uf.domain_id = 1".to_string()];
    for c in where_ {
        if c.get(0).and_then(Value::as_str) == Some("domain_id") {
            continue;
        }
        conditions.push(clause(
            &unprefixed(c),
            &mut tables,
            &mut args,
            &mut deleted_named,
        )?);
    }
    let limit = params.get("limit").and_then(Value::as_u64).unwrap_or(0);
    let mut sql = format!(
        "SELECT uf.contact_id, uf.uf_id FROM civicrm_uf_match uf JOIN civicrm_contact a ON a.id = uf.contact_id WHERE {}",
        conditions.join(" AND ")
    );
    if limit > 0 {
        sql.push_str(&format!(" LIMIT {limit}"));
    }
    let rows: Vec<(u64, u64)> = conn
        .exec(sql, Params::Positional(args))
        .map_err(|e| e.to_string())?;
    let values: Vec<Value> = rows
        .into_iter()
        .map(|(contact_id, uf_id)| json!({"contact_id": contact_id, "uf_id": uf_id}))
        .collect();
    Ok(
        json!({"entity": "UFMatch", "action": "get", "version": 4, "count": values.len(), "values": values}),
    )
}

fn get(conn: &mut mysql::Conn, params: &Value) -> Result<Value, String> {
    let values = contact_get(conn, params)?;
    Ok(
        json!({"entity": "Contact", "action": "get", "version": 4, "count": values.len(), "values": values}),
    )
}

/// API v4 `Contact.get` with `params` run as the SQL CiviCRM generates for it: the records
/// (what `cv pipe` answers; REST wraps them in its envelope). Shared by the REST and the cv
/// stand-ins.
pub fn contact_get(conn: &mut mysql::Conn, params: &Value) -> Result<Vec<Value>, String> {
    let select: Vec<String> = params
        .get("select")
        .and_then(Value::as_array)
        .map(|s| {
            s.iter()
                .filter_map(|f| f.as_str().map(String::from))
                // A pseudo-field: CiviCRM counts, the rows stay the same.
                .filter(|f| f != "row_count")
                .collect()
        })
        .unwrap_or_else(|| vec!["id".into()]);
    let mut tables = Tables::new(params)?;
    let columns = select
        .iter()
        .map(|f| tables.column(f))
        .collect::<Result<Vec<_>, _>>()?;
    let mut args = Vec::new();
    let mut deleted_named = false;
    let mut conditions = Vec::new();
    for c in params
        .get("where")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        conditions.push(clause(c, &mut tables, &mut args, &mut deleted_named)?);
    }
    if !deleted_named {
        conditions.push("a.is_deleted = 0".into());
    }
    // The stores order by sort_name then id, or by id alone (serde_json's map has lost the
    // keys' order); each in its own direction.
    let mut order = String::new();
    if let Some(keys) = params.get("orderBy").and_then(Value::as_object) {
        if let Some(other) = keys
            .keys()
            .find(|k| !matches!(k.as_str(), "sort_name" | "id"))
        {
            return Err(format!("orderBy {other} is not served here"));
        }
        let parts: Vec<String> = ["sort_name", "id"]
            .into_iter()
            .filter_map(|field| {
                let direction = keys.get(field)?;
                let direction = if direction == "DESC" { "DESC" } else { "ASC" };
                Some(format!("a.{field} {direction}"))
            })
            .collect();
        if !parts.is_empty() {
            order = format!(" ORDER BY {}", parts.join(", "));
        }
    }
    let limit = params.get("limit").and_then(Value::as_u64).unwrap_or(0);
    let offset = params.get("offset").and_then(Value::as_u64).unwrap_or(0);
    let mut sql = format!(
        "SELECT {} FROM {} WHERE {}{order}",
        columns.join(", "),
        tables.from(),
        conditions.join(" AND ")
    );
    if limit > 0 {
        sql.push_str(&format!(" LIMIT {limit} OFFSET {offset}"));
    }
    let rows: Vec<mysql::Row> = conn
        .exec(sql, Params::Positional(args))
        .map_err(|e| e.to_string())?;
    let mut values = Vec::with_capacity(rows.len());
    for row in rows {
        let mut record = Map::new();
        for (i, field) in select.iter().enumerate() {
            let value = match row.as_ref(i) {
                Some(Sql::Bytes(b)) => json!(String::from_utf8_lossy(b)),
                Some(Sql::Int(n)) if field == "is_deleted" => json!(*n != 0),
                Some(Sql::Int(n)) => json!(n),
                Some(Sql::UInt(n)) => json!(n),
                _ => Value::Null,
            };
            record.insert(field.clone(), value);
        }
        values.push(Value::Object(record));
    }
    Ok(values)
}

/// Contact.autocomplete: CiviCRM's SQL (timings.md, query h).
fn autocomplete(conn: &mut mysql::Conn, params: &Value) -> Result<Value, String> {
    let input = params.get("input").and_then(Value::as_str).unwrap_or("");
    let pattern = format!(
        "%{}%",
        civikey::store::like_prefix(input, '\\').trim_end_matches('%')
    );
    let rows: Vec<(u64, Option<String>, Option<String>)> = conn
        .exec(
            "SELECT a.id, a.sort_name, a.contact_type FROM civicrm_contact a
              WHERE a.sort_name LIKE ? AND a.is_deleted = 0
              ORDER BY a.sort_name ASC LIMIT 16 OFFSET 0",
            (pattern,),
        )
        .map_err(|e| e.to_string())?;
    let values: Vec<Value> = rows
        .into_iter()
        .take(15)
        .map(|(id, label, kind)| json!({"id": id, "label": label, "icon": kind}))
        .collect();
    Ok(
        json!({"entity": "Contact", "action": "autocomplete", "count": values.len(), "values": values}),
    )
}
