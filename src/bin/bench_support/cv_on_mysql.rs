//! `civikey-bench cv-on-mysql MYSQL_ADDRESS CV_ARGS...`: a stand-in for CiviCRM's `cv`
//! program that answers API v4 Contact.get as SQL on a CiviCRM-shaped MariaDB database, so
//! the cv store can be measured at 1,000,000 contacts without a CiviCRM site.
//!
//! It takes the two command lines civikey runs (`src/store/cv.rs`, `src/store/cv_pipe.rs`):
//!
//! * `pipe [u] --cwd SITE` (or `--cwd=SITE pipe`): a `cv pipe` session, JSON-RPC 2.0 one
//!   object per line exactly as recorded in shared/civicrm-recorded/cv/29-31: the greeting
//!   (`{"Civi::pipe":{"v":..,"t":"trusted","l":["login"]}}`, or `{"u":"untrusted"}` with
//!   `u`), `options` (`{}` reads them all; a trusted session sets `apiCheckPermissions`
//!   and `apiError` and answers only what was set; an untrusted one ignores them), `login`
//!   (once; refused in an untrusted session), `api4` (`[ENTITY, ACTION, PARAMS]`, answered
//!   with the values array only). Before login with permission checks on, every get
//!   answers `[]` (no user, as on the real site). Errors: `-32099` with the API's message
//!   (or, with `apiError: "array"`, a result object with `is_error: 1`), `-32700 Parse
//!   error` without an id for a line that is not JSON, `-32601 Method not found`; the
//!   session survives all of them and ends when stdin closes.
//! * `api4 ENTITY.ACTION --in=json --out=json --cwd SITE`: the params on stdin, the values
//!   as one JSON list on stdout; an error is a Symfony-style box on stderr, exit status 1.
//!
//! Contact.get goes through [`crate::rest_on_mysql::contact_get`], the same translation of
//! API v4 params to CiviCRM's SQL the REST stand-in uses; there is no CiviCRM bootstrap,
//! so a call costs its SQL (the real pipe adds a few ms per call, timings.md). It is
//! read-only: Contact.update is refused. User.get and Role.get answer as a site that is
//! not Standalone does ("does not exist"), so the store reports standings as unknown;
//! nothing else is served. After a login it grants everything (no ACLs). The database
//! password comes from the environment variable the bench names; no key is ever logged:
//! with `CIVIKEY_BENCH_CV_LOG=FILE` each api4 call appends one line with its time, row
//! count and the shape of its where clause (LIKE patterns shown, every other value `?`);
//! with `CIVIKEY_BENCH_CV_CALL_MS=N` each api4 call first waits N ms (CiviCRM's own cost
//! per call, which the stand-in does not have); with `CIVIKEY_BENCH_CV_START_MS=N` a pipe
//! session waits N ms before its greeting (a real session's start and login).
//! The site folder must exist; nothing in it is read.

use std::fs::OpenOptions;
use std::io::{self, BufRead, Read, Write};
use std::time::Instant;

use serde_json::{json, Value};

use civikey::store::mysql::MysqlOptions;

/// Where the per-call timings go (optional).
pub const LOG_VAR: &str = "CIVIKEY_BENCH_CV_LOG";
/// Milliseconds each api4 call waits before it runs (optional): CiviCRM's own cost per
/// call through a real pipe, about 7 ms for a simple get (timings.md).
pub const CALL_MS_VAR: &str = "CIVIKEY_BENCH_CV_CALL_MS";
/// Milliseconds a `cv pipe` session waits before its greeting (optional): a real one's
/// start and login, 195 + 66 ms (timings.md).
pub const START_MS_VAR: &str = "CIVIKEY_BENCH_CV_START_MS";

const USAGE: &str = "api4 [--in IN] [--out OUT] [--flat [FLAT]] [-T|--out=table] [-I|--out=list] [-J|--out=json-pretty] [-M|--enable-meta] [-m|--select-meta SELECT-META] [-N|--dry-run] [--] <Entity.action> [<key=value>...]";

/// What answers the API calls: MariaDB in the bench, canned rows in the tests.
pub trait Api {
    fn call(&mut self, entity: &str, action: &str, params: &Value) -> Result<Value, String>;
}

/// Contact.get on MariaDB.
pub struct MysqlApi {
    conn: mysql::Conn,
    log: Option<std::fs::File>,
    call_delay: std::time::Duration,
}

impl MysqlApi {
    pub fn connect(options: &MysqlOptions) -> Result<Self, String> {
        let conn = civikey::store::mysql::open_connection(options).map_err(|e| e.to_string())?;
        let log = match std::env::var_os(LOG_VAR).filter(|p| !p.is_empty()) {
            Some(path) => Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| format!("{LOG_VAR}: {e}"))?,
            ),
            None => None,
        };
        let call_delay = match std::env::var(CALL_MS_VAR) {
            Ok(ms) if !ms.is_empty() => std::time::Duration::from_millis(
                ms.parse().map_err(|e| format!("{CALL_MS_VAR}: {e}"))?,
            ),
            _ => std::time::Duration::ZERO,
        };
        Ok(MysqlApi {
            conn,
            log,
            call_delay,
        })
    }
}

impl Api for MysqlApi {
    fn call(&mut self, entity: &str, action: &str, params: &Value) -> Result<Value, String> {
        std::thread::sleep(self.call_delay);
        let started = Instant::now();
        let answer = match (entity, action) {
            ("Contact", "get") => {
                crate::rest_on_mysql::contact_get(&mut self.conn, params).map(Value::Array)
            }
            ("Contact", _) => Err(format!(
                "the bench's cv stand-in is read-only: Contact.{action} is refused"
            )),
            _ => Err(format!(
                "API ({entity}, {action}) does not exist (or the extension it belongs to is not enabled)."
            )),
        };
        if let Some(log) = self.log.as_mut() {
            let rows = match &answer {
                Ok(Value::Array(rows)) => rows.len().to_string(),
                _ => "error".into(),
            };
            let _ = writeln!(
                log,
                "ms={:.2} rows={rows} call={entity}.{action} where={} order={} limit={}",
                started.elapsed().as_secs_f64() * 1000.0,
                shape(params.get("where").unwrap_or(&Value::Null)),
                params.get("orderBy").map_or("-".into(), Value::to_string),
                params.get("limit").map_or("-".into(), Value::to_string),
            );
        }
        answer
    }
}

/// A where clause with its values hidden but LIKE patterns (search text, never a key):
/// enough to tell the branches apart in the timings.
fn shape(where_: &Value) -> String {
    match where_ {
        Value::Array(items) => match items.first().and_then(Value::as_str) {
            Some(head @ ("OR" | "AND")) => {
                format!("{head}({})", shape(items.get(1).unwrap_or(&Value::Null)))
            }
            Some(field) => {
                let op = items.get(1).and_then(Value::as_str).unwrap_or("");
                match (op, items.get(2)) {
                    ("LIKE", Some(v)) if field != "api_key" => format!("{field} LIKE {v}"),
                    (_, Some(Value::Array(list))) => {
                        format!("{field} {op} [{} values]", list.len())
                    }
                    (_, Some(_)) => format!("{field} {op} ?"),
                    (_, None) => format!("{field} {op}"),
                }
            }
            None => items.iter().map(shape).collect::<Vec<_>>().join(", "),
        },
        _ => String::new(),
    }
}

/// `cv-on-mysql MYSQL_ADDRESS CV_ARGS...`: the exit status cv would have.
pub fn run(options: &MysqlOptions, args: &[String]) -> Result<i32, String> {
    let mut site = None;
    let mut words = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if let Some(path) = arg.strip_prefix("--cwd=") {
            site = Some(path.to_string());
        } else if arg == "--cwd" {
            site = it.next().cloned();
        } else {
            words.push(arg.as_str());
        }
    }
    let Some(site) = site else {
        return Err("cv-on-mysql: --cwd SITE is required".into());
    };
    if !std::path::Path::new(&site).is_dir() {
        let _ = box_error(
            &mut io::stderr(),
            &format!("Invalid working directory: {site}"),
        );
        return Ok(1);
    }
    match words.as_slice() {
        ["pipe"] | ["pipe", "u"] => {
            // CiviCRM's bootstrap and the login, which the stand-in does not have.
            if let Ok(ms) = std::env::var(START_MS_VAR) {
                let ms: u64 = ms.parse().map_err(|e| format!("{START_MS_VAR}: {e}"))?;
                std::thread::sleep(std::time::Duration::from_millis(ms));
            }
            let mut api = MysqlApi::connect(options)?;
            let trusted = words.len() == 1;
            let stdin = io::stdin().lock();
            let stdout = io::stdout().lock();
            pipe(&mut api, trusted, stdin, stdout).map_err(|e| e.to_string())?;
            Ok(0)
        }
        ["api4", call, flags @ ..]
            if flags
                .iter()
                .all(|f| f.starts_with("--in=") || f.starts_with("--out=")) =>
        {
            let Some((entity, action)) = call.split_once('.') else {
                let _ = box_error(&mut io::stderr(), &format!("Malformed API call {call}"));
                return Ok(1);
            };
            let mut input = String::new();
            io::stdin()
                .read_to_string(&mut input)
                .map_err(|e| e.to_string())?;
            let params: Value = if input.trim().is_empty() {
                json!({})
            } else {
                match serde_json::from_str(&input) {
                    Ok(params) => params,
                    Err(e) => {
                        let _ = box_error(&mut io::stderr(), &format!("Failed to parse JSON: {e}"));
                        return Ok(255);
                    }
                }
            };
            let mut api = MysqlApi::connect(options)?;
            match api.call(entity, action, &params) {
                Ok(values) => {
                    let mut out = io::stdout().lock();
                    writeln!(out, "{values}").map_err(|e| e.to_string())?;
                    Ok(0)
                }
                Err(message) => {
                    let _ = box_error(&mut io::stderr(), &message);
                    Ok(1)
                }
            }
        }
        other => Err(format!(
            "cv-on-mysql: not a cv command served here: {other:?}"
        )),
    }
}

/// An exception as cv prints it: the message in a padded box, then the usage line.
fn box_error(out: &mut impl Write, message: &str) -> io::Result<()> {
    let pad = " ".repeat(message.chars().count() + 4);
    write!(
        out,
        "\nIn StandIn.php line 1:\n{pad}\n  {message}  \n{pad}\n\n{USAGE}\n"
    )
}

/// One JSON-RPC answer line, its keys in the recorded order.
fn answer_line(result: Result<Value, (i64, String)>, id: &Value) -> String {
    match result {
        Ok(result) => format!(r#"{{"jsonrpc":"2.0","result":{result},"id":{id}}}"#),
        Err((code, message)) => format!(
            r#"{{"jsonrpc":"2.0","error":{{"code":{code},"message":{},"data":null}},"id":{id}}}"#,
            Value::String(message)
        ),
    }
}

/// A `cv pipe` session over `input` and `output` until `input` ends.
pub fn pipe(
    api: &mut dyn Api,
    trusted: bool,
    input: impl BufRead,
    mut output: impl Write,
) -> io::Result<()> {
    let greeting = if trusted {
        r#"{"Civi::pipe":{"v":"6.14.alpha1","t":"trusted","l":["login"]}}"#
    } else {
        r#"{"Civi::pipe":{"u":"untrusted"}}"#
    };
    writeln!(output, "{greeting}")?;
    output.flush()?;
    let mut check_permissions = true;
    let mut error_array = false;
    let mut logged_in: Option<Value> = None;
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let Ok(request) = serde_json::from_str::<Value>(&line) else {
            writeln!(
                output,
                r#"{{"jsonrpc":"2.0","error":{{"code":-32700,"message":"Parse error","data":null}}}}"#
            )?;
            output.flush()?;
            continue;
        };
        let id = request.get("id").cloned().unwrap_or(Value::Null);
        let params = request.get("params").cloned().unwrap_or(Value::Null);
        let result = match request.get("method").and_then(Value::as_str) {
            Some("options") => {
                let all = json!({
                    "apiCheckPermissions": check_permissions,
                    "apiError": if error_array { "array" } else { "exception" },
                    "bufferSize": 524288,
                    "responsePrefix": null,
                });
                match params.as_object() {
                    Some(set) if trusted && !set.is_empty() => {
                        for (name, value) in set {
                            match (name.as_str(), value) {
                                ("apiCheckPermissions", Value::Bool(b)) => check_permissions = *b,
                                ("apiError", Value::String(s)) => error_array = s == "array",
                                _ => {}
                            }
                        }
                        Ok(Value::Object(set.clone()))
                    }
                    _ => Ok(all),
                }
            }
            Some("login") if !trusted => Err((-32099, "Session is not trusted.".into())),
            Some("login") if logged_in.is_some() => Err((
                -32099,
                "Cannot login. A mismatched session is already active.".into(),
            )),
            Some("login") => match params.get("contactId") {
                Some(contact @ Value::Number(_)) => {
                    logged_in = Some(contact.clone());
                    Ok(json!({"contactId": contact, "userId": null}))
                }
                _ => Err((-32099, "Cannot login: no contactId".into())),
            },
            Some("api4") => {
                let entity = params.get(0).and_then(Value::as_str).unwrap_or("");
                let action = params.get(1).and_then(Value::as_str).unwrap_or("");
                let call_params = params.get(2).cloned().unwrap_or_else(|| json!({}));
                let anonymous = check_permissions && logged_in.is_none();
                let answer = if anonymous && (entity, action) == ("Contact", "get") {
                    // No user and checks on: the real session sees nothing (29).
                    Ok(json!([]))
                } else {
                    api.call(entity, action, &call_params)
                };
                match answer {
                    Ok(values) => Ok(values),
                    Err(message) if error_array => Ok(json!({
                        "error_code": 0,
                        "entity": entity,
                        "action": action,
                        "is_error": 1,
                        "error_message": message,
                    })),
                    Err(message) => Err((-32099, message)),
                }
            }
            _ => Err((-32601, "Method not found".into())),
        };
        writeln!(output, "{}", answer_line(result, &id))?;
        output.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Canned answers: every Contact.get returns one row, naming the params it got.
    struct Canned(Vec<Value>);

    impl Api for Canned {
        fn call(&mut self, entity: &str, action: &str, params: &Value) -> Result<Value, String> {
            self.0.push(params.clone());
            match (entity, action) {
                ("Contact", "get") => Ok(json!([{"id": 203, "display_name": "Standalone Admin"}])),
                _ => Err(format!(
                    "API ({entity}, {action}) does not exist (or the extension it belongs to is not enabled)."
                )),
            }
        }
    }

    fn session(trusted: bool, requests: &[&str]) -> (Vec<String>, Vec<Value>) {
        let mut api = Canned(Vec::new());
        let mut out = Vec::new();
        let input = requests.join("\n") + "\n";
        pipe(&mut api, trusted, input.as_bytes(), &mut out).unwrap();
        let lines = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        (lines, api.0)
    }

    /// The requests of civicrm-recorded/cv/29-pipe-session-admin.txt that need no data, and
    /// the answers recorded for them, line for line.
    #[test]
    fn the_pipe_answers_as_recorded_in_29() {
        let (lines, calls) = session(
            true,
            &[
                r#"{"jsonrpc": "2.0", "method": "options", "params": {}, "id": 1}"#,
                r#"{"jsonrpc": "2.0", "method": "api4", "params": ["Contact", "get", {"select": ["id", "display_name", "api_key"], "where": [["id", "=", 203]]}], "id": 2}"#,
                r#"{"jsonrpc":"2.0","method":"api4","params":["Contact","get",{"select":["id"]}],"id":99"#,
                r#"{"jsonrpc": "2.0", "method": "frobnicate", "params": {}, "id": 14}"#,
                r#"{"jsonrpc": "2.0", "method": "api4", "params": ["Nonexistent", "get", {}], "id": 13}"#,
                r#"{"jsonrpc": "2.0", "method": "options", "params": {"apiError": "array"}, "id": 17}"#,
            ],
        );
        assert_eq!(
            lines,
            [
                r#"{"Civi::pipe":{"v":"6.14.alpha1","t":"trusted","l":["login"]}}"#,
                r#"{"jsonrpc":"2.0","result":{"apiCheckPermissions":true,"apiError":"exception","bufferSize":524288,"responsePrefix":null},"id":1}"#,
                // Anonymous, checks on: nothing, and the database is not asked.
                r#"{"jsonrpc":"2.0","result":[],"id":2}"#,
                r#"{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error","data":null}}"#,
                r#"{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found","data":null},"id":14}"#,
                r#"{"jsonrpc":"2.0","error":{"code":-32099,"message":"API (Nonexistent, get) does not exist (or the extension it belongs to is not enabled).","data":null},"id":13}"#,
                r#"{"jsonrpc":"2.0","result":{"apiError":"array"},"id":17}"#,
            ]
        );
        assert_eq!(
            calls,
            [json!({})],
            "only the unknown entity reached the API"
        );
    }

    /// What civikey's session does (cv_pipe.rs): options apiCheckPermissions=false, then
    /// api4 calls answered with the values array, the params passed through unchanged.
    #[test]
    fn a_trusted_session_without_checks_reaches_the_database() {
        let get = r#"{"select":["id"],"where":[["sort_name","LIKE","car%"],["is_deleted","=",0]],"orderBy":{"sort_name":"ASC","id":"ASC"},"limit":51}"#;
        let (lines, calls) = session(
            true,
            &[
                r#"{"jsonrpc":"2.0","method":"options","params":{"apiCheckPermissions":false},"id":1}"#,
                &format!(
                    r#"{{"jsonrpc":"2.0","method":"api4","params":["Contact","get",{get}],"id":2}}"#
                ),
                r#"{"jsonrpc":"2.0","method":"api4","params":["User","get",{}],"id":3}"#,
                r#"{"jsonrpc":"2.0","method":"login","params":{"contactId":203},"id":4}"#,
                r#"{"jsonrpc":"2.0","method":"login","params":{"contactId":204},"id":5}"#,
            ],
        );
        assert_eq!(
            lines[1],
            r#"{"jsonrpc":"2.0","result":{"apiCheckPermissions":false},"id":1}"#
        );
        let answer: Value = serde_json::from_str(&lines[2]).unwrap();
        assert_eq!(
            answer,
            json!({"jsonrpc": "2.0", "result": [{"id": 203, "display_name": "Standalone Admin"}], "id": 2})
        );
        assert!(lines[3].contains(r#""code":-32099,"message":"API (User, get) does not exist"#));
        assert_eq!(
            lines[4],
            r#"{"jsonrpc":"2.0","result":{"contactId":203,"userId":null},"id":4}"#
        );
        assert_eq!(
            lines[5],
            r#"{"jsonrpc":"2.0","error":{"code":-32099,"message":"Cannot login. A mismatched session is already active.","data":null},"id":5}"#
        );
        assert_eq!(calls[0], serde_json::from_str::<Value>(get).unwrap());
    }

    /// civicrm-recorded/cv/31: `cv pipe u` greets as untrusted, refuses login and keeps the
    /// checks on whatever options say.
    #[test]
    fn an_untrusted_session_keeps_its_checks() {
        let (lines, calls) = session(
            false,
            &[
                r#"{"jsonrpc": "2.0", "method": "login", "params": {"contactId": 203}, "id": 2}"#,
                r#"{"jsonrpc": "2.0", "method": "options", "params": {"apiCheckPermissions": false}, "id": 3}"#,
                r#"{"jsonrpc": "2.0", "method": "api4", "params": ["Contact", "get", {"select": ["id", "api_key"], "where": [["id", "=", 203]]}], "id": 4}"#,
            ],
        );
        assert_eq!(
            lines,
            [
                r#"{"Civi::pipe":{"u":"untrusted"}}"#,
                r#"{"jsonrpc":"2.0","error":{"code":-32099,"message":"Session is not trusted.","data":null},"id":2}"#,
                r#"{"jsonrpc":"2.0","result":{"apiCheckPermissions":true,"apiError":"exception","bufferSize":524288,"responsePrefix":null},"id":3}"#,
                r#"{"jsonrpc":"2.0","result":[],"id":4}"#,
            ]
        );
        assert!(calls.is_empty());
    }

    #[test]
    fn the_timing_log_shows_no_key() {
        let where_ = json!([
            ["api_key", "=", "SECRETSECRETSECRETSECRET"],
            ["OR", [["sort_name", "LIKE", "car%"], ["id", "IN", [1, 2]]]]
        ]);
        let shown = shape(&where_);
        assert!(!shown.contains("SECRET"), "{shown}");
        assert_eq!(
            shown,
            r#"api_key = ?, OR(sort_name LIKE "car%", id IN [2 values])"#
        );
    }
}
