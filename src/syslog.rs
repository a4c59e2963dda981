//! The journal's records in the system log too (`syslog = true` at the top of the config),
//! so colleagues and a SIEM see every change: each intent, outcome, reconciliation and
//! lookup as one RFC 3164 line over the local syslog socket (`/dev/log`, which journald
//! and rsyslog read), facility `auth`. Never a key: fingerprint prefixes only, and every
//! value passes the sanitizer.
//!
//! Off by default. Enabled once per process ([`enable`]); every journal of the process
//! then sends (the CLI's, the screen's worker, one per profile in `--all-profiles`
//! commands). Sending never blocks and never fails a change: the socket is non-blocking
//! and a failure is kept, once, for the operator to be told ([`failure`]).

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::sanitize::SafeText;

/// Where the system's syslog daemon listens.
pub const DEFAULT_SOCKET: &str = "/dev/log";

/// `auth` (4): security messages; `notice` (5) for what went as asked, `warning` (4) for
/// a conflict, a failure or an unknown outcome.
const FACILITY_AUTH: u8 = 4;
const NOTICE: u8 = 5;
const WARNING: u8 = 4;

struct Sink {
    path: PathBuf,
    socket: Option<UnixDatagram>,
    /// The first failure, said once.
    failure: Option<String>,
    told: bool,
}

static SINK: OnceLock<Mutex<Sink>> = OnceLock::new();

/// Sends every journal record of this process to the syslog socket at `path` from now on.
pub fn enable(path: &Path) {
    let _ = SINK.set(Mutex::new(Sink {
        path: path.to_path_buf(),
        socket: None,
        failure: None,
        told: false,
    }));
}

/// Whether records go to syslog (so a journal reads what a line needs only then).
pub fn enabled() -> bool {
    SINK.get().is_some()
}

/// The first failure to send, the first time it is asked for (then None): said once.
pub fn failure() -> Option<String> {
    let mut sink = SINK.get()?.lock().ok()?;
    if sink.told {
        return None;
    }
    let failure = sink.failure.clone()?;
    sink.told = true;
    Some(format!(
        "the system log ({}) could not be written ({failure}); the journal keeps every record",
        sink.path.display()
    ))
}

/// One journal record, as a syslog line says it.
#[derive(Clone, Debug, Default)]
pub struct Record<'a> {
    pub time: i64,
    /// intent | outcome | reconciled | lookup
    pub phase: &'a str,
    /// The journal's record number.
    pub record: i64,
    pub operator: &'a str,
    pub ssh_client: Option<&'a str>,
    pub profile: Option<&'a str>,
    pub store: &'a str,
    pub contact_id: u64,
    pub action: &'a str,
    /// done | conflict | failed | unknown, or a reconciliation's verdict.
    pub outcome: Option<&'a str>,
    /// Full fingerprints; only their first 8 hex digits are sent.
    pub old_fp: Option<&'a str>,
    pub new_fp: Option<&'a str>,
}

/// `key=value` with the value made inert and quoted when it holds a space, a quote or `=`.
fn field(name: &str, value: &str) -> String {
    let safe = SafeText::new(value).to_string();
    if safe.is_empty() || safe.contains([' ', '"', '=', '\\']) {
        format!(
            "{name}=\"{}\"",
            safe.replace('\\', "\\\\").replace('"', "\\\"")
        )
    } else {
        format!("{name}={safe}")
    }
}

/// The message of a record: `key=value` fields, times in RFC 3339.
pub fn message(r: &Record<'_>) -> String {
    let short = |fp: Option<&str>| fp.map_or("none".to_string(), |f| f.chars().take(8).collect());
    [
        field("time", &crate::timefmt::rfc3339(r.time)),
        field("phase", r.phase),
        field("record", &r.record.to_string()),
        field("operator", r.operator),
        field("from", r.ssh_client.unwrap_or("local")),
        field("profile", r.profile.unwrap_or("-")),
        field("store", r.store),
        field("contact", &r.contact_id.to_string()),
        field("action", r.action),
        field("outcome", r.outcome.unwrap_or("in-flight")),
        field("old_fp", &short(r.old_fp)),
        field("new_fp", &short(r.new_fp)),
    ]
    .join(" ")
}

/// The whole datagram: `<PRI>Mmm dd hh:mm:ss civikey[PID]: MESSAGE` (RFC 3164, as
/// syslog(3) sends it; the time stamp in UTC, the record's own time in RFC 3339 inside).
pub fn datagram(r: &Record<'_>, now: i64) -> String {
    let severity = match r.outcome {
        Some("conflict" | "failed" | "unknown" | "superseded") => WARNING,
        _ => NOTICE,
    };
    let stamp = time::OffsetDateTime::from_unix_timestamp(now)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[month repr:short] [day padding:space] [hour]:[minute]:[second]"
            ))
            .ok()
        })
        .unwrap_or_default();
    format!(
        "<{}>{stamp} civikey[{}]: {}",
        FACILITY_AUTH * 8 + severity,
        std::process::id(),
        message(r)
    )
}

/// Sends `r` when syslog is on; a failure is kept for [`failure`], never returned.
pub fn send(r: &Record<'_>) {
    let Some(sink) = SINK.get() else { return };
    let Ok(mut sink) = sink.lock() else { return };
    let line = datagram(r, crate::timefmt::unix_now());
    let result = (|| -> std::io::Result<()> {
        if sink.socket.is_none() {
            let socket = UnixDatagram::unbound()?;
            socket.set_nonblocking(true)?;
            socket.connect(&sink.path)?;
            sink.socket = Some(socket);
        }
        let socket = sink
            .socket
            .as_ref()
            .ok_or(std::io::ErrorKind::NotConnected)?;
        socket.send(line.as_bytes()).map(|_| ())
    })();
    if let Err(e) = result {
        // A restarted daemon: connect again next time.
        sink.socket = None;
        if sink.failure.is_none() {
            sink.failure = Some(e.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_one_rfc3164_line_with_fingerprint_prefixes_and_inert_values() {
        let r = Record {
            time: 1_796_652_120,
            phase: "outcome",
            record: 42,
            operator: "alice",
            ssh_client: Some("10.0.0.5"),
            profile: Some("crm a"),
            store: "https://crm.example.org",
            contact_id: 112,
            action: "assign",
            outcome: Some("done"),
            old_fp: Some("0123456789abcdef0123"),
            new_fp: None,
        };
        let line = datagram(&r, 1_796_652_125);
        assert!(
            line.starts_with(&format!(
                "<37>Dec  7 14:02:05 civikey[{}]: ",
                std::process::id()
            )),
            "{line}"
        );
        assert!(
            line.ends_with(
                "time=2026-12-07T14:02:00Z phase=outcome record=42 operator=alice from=10.0.0.5 \
             profile=\"crm a\" store=https://crm.example.org contact=112 action=assign \
             outcome=done old_fp=01234567 new_fp=none"
            ),
            "{line}"
        );
        let hostile = Record {
            operator: "x\" injected=1\n\u{1b}[2J",
            outcome: Some("failed"),
            ..r
        };
        let line = datagram(&hostile, 0);
        assert!(line.starts_with("<36>"), "a failure is a warning: {line}");
        assert!(!line.contains('\n') && !line.contains('\u{1b}'), "{line}");
        assert!(line.contains("operator=\"x\\\" injected=1"), "{line}");
    }
}
