//! `civikey-bench bulk` and `fleet`: a stand-in for CiviCRM's REST API v4 held in memory, answering
//! every request after a fixed delay (a far site), and counting the requests. It answers
//! what bulk rotation and the health check send: `Contact/get` (where `id =`, `id IN`,
//! `api_key =`, `api_key IN` compared case-insensitively as MySQL does, the key holders'
//! `api_key IS NOT NULL` and `!= ''`, `is_deleted` named; limit and offset),
//! `UFMatch/get` (no CMS users) and the multi-call `POST /civicrm/ajax/api4` (`calls`) of
//! Contact.update compare-and-sets (recorded in shared/civicrm-recorded/rest/091, 096).
//! Anything else is refused, so a request the bench did not expect shows. It checks no
//! credential: it listens on 127.0.0.1, for measurements only.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::rest_on_mysql::{read_request, url_decode};

pub struct StandIn {
    pub url: String,
    pub requests: Arc<AtomicUsize>,
    keys: Arc<Mutex<BTreeMap<u64, Option<String>>>>,
}

impl StandIn {
    /// The key contact `id` holds now.
    pub fn key_of(&self, id: u64) -> Option<String> {
        self.keys.lock().ok()?.get(&id).cloned().flatten()
    }
}

/// Contacts 1..=`contacts` (every other one with a key), served on a port of its own.
pub fn start(contacts: u64, delay: Duration) -> Result<StandIn, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let keys: BTreeMap<u64, Option<String>> = (1..=contacts)
        .map(|id| (id, (id % 2 == 0).then(|| format!("BenchOldKey{id:021}"))))
        .collect();
    let keys = Arc::new(Mutex::new(keys));
    let requests = Arc::new(AtomicUsize::new(0));
    {
        let keys = Arc::clone(&keys);
        let requests = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let keys = Arc::clone(&keys);
                let requests = Arc::clone(&requests);
                std::thread::spawn(move || {
                    use std::io::Write;
                    let mut stream = stream;
                    let Some((path, body)) = read_request(&stream) else {
                        return;
                    };
                    requests.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(delay);
                    let (status, answer) = match keys.lock() {
                        Ok(mut keys) => match answer(&mut keys, &path, &body) {
                            Ok(value) => (200, value),
                            Err(message) => (500, json!({"error_message": message})),
                        },
                        Err(_) => (500, json!({"error_message": "stand-in state lost"})),
                    };
                    let body = answer.to_string();
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
    }
    Ok(StandIn {
        url: format!("http://127.0.0.1:{port}"),
        requests,
        keys,
    })
}

fn form_field(body: &str, name: &str) -> Option<String> {
    body.split('&')
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
        .map(url_decode)
}

fn answer(
    keys: &mut BTreeMap<u64, Option<String>>,
    path: &str,
    body: &str,
) -> Result<Value, String> {
    let parse = |text: String| serde_json::from_str::<Value>(&text).map_err(|e| e.to_string());
    match path {
        "/civicrm/ajax/api4/Contact/get" => {
            let params = parse(form_field(body, "params").unwrap_or_else(|| "{}".into()))?;
            get(keys, &params)
        }
        "/civicrm/ajax/api4/UFMatch/get" => Ok(json!({"values": [], "count": 0})),
        "/civicrm/ajax/api4" => {
            let calls = parse(form_field(body, "calls").ok_or("no calls")?)?;
            let calls = calls.as_object().ok_or("calls is not an object")?;
            // serde_json's map sorts the names: civikey names its calls in sending order.
            let mut out = serde_json::Map::new();
            for (name, call) in calls {
                if call[0] != "Contact" || call[1] != "update" {
                    return Err(format!("{name}: only Contact.update is answered here"));
                }
                out.insert(name.clone(), update(keys, &call[2])?);
            }
            Ok(Value::Object(out))
        }
        other => Err(format!("{other} is not answered by this stand-in")),
    }
}

/// Whether contact `id` holding `key` passes clause `c`.
fn passes(id: u64, key: Option<&str>, c: &Value) -> Result<bool, String> {
    let same = |a: &str, b: &Value| b.as_str().is_some_and(|b| a.eq_ignore_ascii_case(b));
    let field = c[0].as_str().unwrap_or("");
    let op = c[1].as_str().unwrap_or("");
    Ok(match (field, op) {
        ("id", "=") => c[2].as_u64() == Some(id),
        ("id", "IN") => c[2]
            .as_array()
            .is_some_and(|l| l.iter().any(|v| v.as_u64() == Some(id))),
        ("is_deleted", _) => true,
        ("api_key", "=") => match key {
            Some(k) => same(k, &c[2]),
            None => c[2] == "",
        },
        ("api_key", "IN") => key.is_some_and(|k| {
            c[2].as_array()
                .is_some_and(|l| l.iter().any(|v| same(k, v)))
        }),
        ("api_key", "IS NULL") => key.is_none(),
        // The key holders (the health check): a key, never an empty one.
        ("api_key", "IS NOT NULL") => key.is_some(),
        ("api_key", "!=") => key.is_some_and(|k| c[2].as_str() != Some(k)),
        ("OR", _) => {
            let mut any = false;
            for sub in c[1].as_array().into_iter().flatten() {
                any |= passes(id, key, sub)?;
            }
            any
        }
        _ => return Err(format!("clause {c} is not answered by this stand-in")),
    })
}

fn get(keys: &BTreeMap<u64, Option<String>>, params: &Value) -> Result<Value, String> {
    let limit = params["limit"].as_u64().map_or(usize::MAX, |l| l as usize);
    let mut skip = params["offset"].as_u64().unwrap_or(0);
    let mut values = Vec::new();
    for (&id, key) in keys {
        let mut all = true;
        for c in params["where"].as_array().into_iter().flatten() {
            all &= passes(id, key.as_deref(), c)?;
        }
        if all && skip > 0 {
            skip -= 1;
        } else if all && values.len() < limit {
            values.push(json!({
                "id": id,
                "display_name": format!("Person {id}"),
                "sort_name": format!("{id:07}, Person"),
                "contact_type": "Individual",
                "is_deleted": false,
                "email_primary.email": null,
                "api_key": key,
            }));
        }
    }
    let count = values.len();
    Ok(json!({"values": values, "count": count}))
}

fn update(keys: &mut BTreeMap<u64, Option<String>>, params: &Value) -> Result<Value, String> {
    let mut changed = Vec::new();
    for (&id, key) in keys.iter_mut() {
        let mut all = true;
        for c in params["where"].as_array().into_iter().flatten() {
            all &= passes(id, key.as_deref(), c)?;
        }
        if all {
            *key = params["values"]["api_key"].as_str().map(String::from);
            changed.push(json!({"id": id, "api_key": key}));
        }
    }
    let count = changed.len();
    Ok(json!({"values": changed, "count": count}))
}
