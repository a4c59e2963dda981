//! A persistent `cv pipe` session: one CiviCRM bootstrap for all of a store's calls.
//!
//! `cv pipe --cwd SITE` keeps one CiviCRM session open and answers JSON-RPC 2.0, one JSON
//! object per line (shared/civicrm-recorded/cv/29-31): a greeting line
//! `{"Civi::pipe":{"v":..,"t":"trusted",..}}`, then `options`, `login` and `api4`
//! (`["Contact","get",PARAMS]`) requests, each answered by a line with its `id`: `result`
//! (the values array only) or `error` (`-32099` with the API's message). An api4 call takes
//! about 5-10 ms after the session is open, where `cv api4` boots CiviCRM every time
//! (about 0.3 s).
//!
//! The session is started by the store's first call. Without a `cv_user` it logs in as no
//! one and sets `options {"apiCheckPermissions": false}` (the documented default: the
//! same trust as `cv api4`, which runs without permission checks; a trusted session
//! accepts it, an untrusted one (`cv pipe u`) keeps the checks, and is not used). With a
//! `cv_user` it sends `login {"user": NAME}` instead and leaves the checks on (the
//! session's default, recorded in 29 and 30): that user's own CiviCRM permissions apply.
//! authx's principal takes `user`, `userId` or `contactId` (its error in cv/23 names the
//! three); the recordings show `{"contactId": N}` through the pipe, the `user` form comes
//! from that principal, not from a recording. A login CiviCRM refuses is
//! [`PipeError::LoginRefused`], never a quiet fall-back to an anonymous session or to
//! `cv api4`. Keys travel on stdin only, never in argv. cv runs in a process group of its
//! own: a call past its deadline kills the whole group, and the next call starts a new
//! session; dropping the session (the store, the app) closes stdin and ends it. A cv
//! without `pipe` (older versions) or an untrusted session makes
//! [`PipeError::Unavailable`]: the store then runs one `cv api4` per call.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use zeroize::{Zeroize, Zeroizing};

use super::process::{kill_group, spawn};
use crate::store::api4::wipe;

/// The longest answer line read: a page of contacts is a few KiB.
const MAX_LINE: usize = 16 * 1024 * 1024;
/// The most of cv's stderr kept (the latest), for the message when the session dies.
const MAX_STDERR: usize = 64 * 1024;
/// How long a closing session may take to exit after its stdin closes.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// Why a pipe call gave no answer.
#[derive(Debug)]
pub(crate) enum PipeError {
    /// This cv has no usable pipe (no such command, an untrusted session, a greeting it
    /// does not understand): nothing was sent; use `cv api4` instead.
    Unavailable(String),
    /// No answer before the deadline: the session was killed (the request may have run).
    Timeout(String),
    /// The session ended or broke the protocol after the request was written.
    Died(String),
    /// The API refused the call (JSON-RPC error), with its message.
    Api(String),
    /// CiviCRM refused to log the session in as the `cv_user` (JSON-RPC error), with its
    /// message: no call may run, neither anonymously nor through `cv api4`.
    LoginRefused(String),
}

/// What an untrusted session (`cv pipe u`) answers a login (recorded in cv/31).
const NOT_TRUSTED: &str = "Session is not trusted.";

/// One line from cv's stdout, or the end of it.
enum Line {
    Text(Zeroizing<Vec<u8>>),
    TooLong,
    End,
}

pub(crate) struct PipeSession {
    child: Child,
    /// None once closed (the session is ending).
    stdin: Option<ChildStdin>,
    lines: Receiver<Line>,
    stderr: Arc<Mutex<VecDeque<u8>>>,
    next_id: u64,
}

impl PipeSession {
    /// Starts `binary pipe --cwd SITE`, reads its greeting, then logs in as `user` (checks
    /// stay on) or, without one, turns permission checks off; all before `deadline`.
    pub(crate) fn start(
        binary: &Path,
        site: &Path,
        user: Option<&str>,
        deadline: Instant,
    ) -> Result<Self, PipeError> {
        let mut command = Command::new(binary);
        command.args(["pipe", "--cwd"]).arg(site);
        let mut child = spawn(command)
            .map_err(|e| PipeError::Unavailable(format!("cannot start cv pipe: {e}")))?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            kill_group(&mut child);
            return Err(PipeError::Unavailable("cv pipe's streams".into()));
        };
        let mut session = PipeSession {
            child,
            stdin: Some(stdin),
            lines: spawn_line_reader(stdout),
            stderr: spawn_stderr_keeper(stderr),
            next_id: 1,
        };
        let greeting = match session.read_line(deadline) {
            Ok(line) => line,
            Err(PipeError::Died(why)) => return Err(PipeError::Unavailable(why)),
            Err(other) => return Err(other),
        };
        let trusted = serde_json::from_slice::<Value>(&greeting)
            .ok()
            .and_then(|v| v.get("Civi::pipe").cloned())
            .is_some_and(|g| g.get("t").and_then(Value::as_str) == Some("trusted"));
        if !trusted {
            return Err(PipeError::Unavailable(
                "cv pipe did not open a trusted session".into(),
            ));
        }
        if let Some(user) = user {
            session.login(user, deadline)?;
            return Ok(session);
        }
        let options = session.request("options", br#"{"apiCheckPermissions":false}"#, deadline);
        match options {
            Ok(reply) => {
                let value: Value = serde_json::from_slice(&reply).unwrap_or(Value::Null);
                if value.get("apiCheckPermissions") != Some(&Value::Bool(false)) {
                    return Err(PipeError::Unavailable(
                        "cv pipe kept permission checks on".into(),
                    ));
                }
            }
            Err(PipeError::Api(why)) => return Err(PipeError::Unavailable(why)),
            Err(other) => return Err(other),
        }
        Ok(session)
    }

    /// `login {"user": NAME}`; the session's permission checks stay on (its default), so
    /// the user's own CiviCRM permissions apply to every call.
    fn login(&mut self, user: &str, deadline: Instant) -> Result<(), PipeError> {
        let params = serde_json::to_vec(&serde_json::json!({ "user": user }))
            .map_err(|e| PipeError::Unavailable(e.to_string()))?;
        match self.request("login", &params, deadline) {
            Ok(reply) => {
                let value: Value = serde_json::from_slice(&reply).unwrap_or(Value::Null);
                if value.get("contactId").is_some_and(|id| !id.is_null()) {
                    Ok(())
                } else {
                    Err(PipeError::LoginRefused(
                        "cv pipe answered the login without the contact it logged in as".into(),
                    ))
                }
            }
            // An untrusted session may not log in at all: cv api4 --user instead.
            Err(PipeError::Api(why)) if why == NOT_TRUSTED => Err(PipeError::Unavailable(why)),
            Err(PipeError::Api(why)) => Err(PipeError::LoginRefused(why)),
            Err(other) => Err(other),
        }
    }

    /// Whether cv is still running.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// One `api4` call (`["Contact", ACTION, PARAMS]`, `params` already JSON): the
    /// `result` as JSON bytes (the values array), zeroized when dropped.
    pub(crate) fn api4(
        &mut self,
        entity: &str,
        action: &str,
        params: &[u8],
        deadline: Instant,
    ) -> Result<Zeroizing<Vec<u8>>, PipeError> {
        let mut call = Zeroizing::new(Vec::with_capacity(params.len() + 64));
        call.extend_from_slice(b"[");
        serde_json::to_writer(&mut *call, entity).map_err(|e| PipeError::Died(e.to_string()))?;
        call.extend_from_slice(b",");
        serde_json::to_writer(&mut *call, action).map_err(|e| PipeError::Died(e.to_string()))?;
        call.extend_from_slice(b",");
        call.extend_from_slice(params);
        call.extend_from_slice(b"]");
        self.request("api4", &call, deadline)
    }

    /// Sends one request and reads lines until its answer; past `deadline` the session is
    /// killed.
    fn request(
        &mut self,
        method: &str,
        params: &[u8],
        deadline: Instant,
    ) -> Result<Zeroizing<Vec<u8>>, PipeError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = Zeroizing::new(Vec::with_capacity(params.len() + 64));
        line.extend_from_slice(br#"{"jsonrpc":"2.0","method":""#);
        line.extend_from_slice(method.as_bytes());
        line.extend_from_slice(br#"","params":"#);
        line.extend_from_slice(params);
        line.extend_from_slice(format!(r#","id":{id}}}"#).as_bytes());
        line.push(b'\n');
        let written = match self.stdin.as_mut() {
            Some(stdin) => stdin.write_all(&line).and_then(|()| stdin.flush()),
            None => Err(std::io::Error::from(ErrorKind::BrokenPipe)),
        };
        if let Err(e) = written {
            return Err(PipeError::Died(
                self.died(&format!("cv pipe stopped reading its requests ({e})")),
            ));
        }
        loop {
            let answer = self.read_line(deadline)?;
            let mut value: Value = serde_json::from_slice(&answer).map_err(|_| {
                PipeError::Died(self.died("cv pipe answered with something that is not JSON"))
            })?;
            let answer_id = value.get("id").and_then(Value::as_u64);
            if answer_id.is_some() && answer_id != Some(id) {
                // An answer to an earlier request: not ours.
                wipe(&mut value);
                continue;
            }
            if let Some(error) = value.get("error") {
                let message = error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("cv pipe reported an error without a message")
                    .to_string();
                wipe(&mut value);
                return Err(PipeError::Api(message));
            }
            let Some(result) = value.get("result") else {
                wipe(&mut value);
                return Err(PipeError::Died(
                    self.died("cv pipe answered without a result or an error"),
                ));
            };
            let mut out = Zeroizing::new(Vec::with_capacity(answer.len()));
            let written = serde_json::to_writer(&mut *out, result);
            wipe(&mut value);
            written.map_err(|e| PipeError::Died(e.to_string()))?;
            return Ok(out);
        }
    }

    /// The next line, or the reason there is none; kills the session at the deadline.
    fn read_line(&mut self, deadline: Instant) -> Result<Zeroizing<Vec<u8>>, PipeError> {
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(wait) {
            Ok(Line::Text(line)) => Ok(line),
            Ok(Line::TooLong) => Err(PipeError::Died(self.died(&format!(
                "cv pipe sent a line of more than {} MiB; refused",
                MAX_LINE / (1024 * 1024)
            )))),
            Ok(Line::End) | Err(RecvTimeoutError::Disconnected) => {
                Err(PipeError::Died(self.died("cv pipe ended")))
            }
            Err(RecvTimeoutError::Timeout) => {
                kill_group(&mut self.child);
                Err(PipeError::Timeout(
                    "cv pipe did not answer in time and was stopped".into(),
                ))
            }
        }
    }

    /// Ends the session (killing its group) and says why, with cv's latest stderr.
    fn died(&mut self, why: &str) -> String {
        kill_group(&mut self.child);
        // The stderr keeper may still be reading cv's last words.
        thread::sleep(Duration::from_millis(20));
        let said = self
            .stderr
            .lock()
            .map(|kept| {
                let bytes: Vec<u8> = kept.iter().copied().collect();
                String::from_utf8_lossy(&bytes).trim().to_string()
            })
            .unwrap_or_default();
        if said.is_empty() {
            why.to_string()
        } else {
            format!("{why}: {said}")
        }
    }
}

impl Drop for PipeSession {
    /// Closes stdin (cv ends its session), then waits a moment and kills what is left.
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + CLOSE_GRACE;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        kill_group(&mut self.child);
    }
}

/// Reads stdout line by line on a thread (each line capped at [`MAX_LINE`]).
fn spawn_line_reader(stdout: impl Read + Send + 'static) -> Receiver<Line> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::with_capacity(64 * 1024, stdout);
        loop {
            let mut line = Zeroizing::new(Vec::new());
            let mut too_long = false;
            loop {
                let (used, ended) = match reader.fill_buf() {
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => (0, false),
                    Ok(buf) => {
                        let (chunk, used, ended) = match buf.iter().position(|b| *b == b'\n') {
                            Some(at) => (&buf[..at], at + 1, true),
                            None => (buf, buf.len(), false),
                        };
                        if line.len() + chunk.len() > MAX_LINE {
                            too_long = true;
                        } else {
                            crate::secret::extend_wiped(&mut line, chunk);
                        }
                        (used, ended)
                    }
                };
                if used == 0 {
                    let _ = tx.send(Line::End);
                    return;
                }
                reader.consume(used);
                if ended {
                    break;
                }
            }
            let sent = if too_long {
                line.zeroize();
                tx.send(Line::TooLong)
            } else {
                tx.send(Line::Text(line))
            };
            if sent.is_err() {
                return;
            }
        }
    });
    rx
}

/// Drains stderr on a thread, keeping the latest [`MAX_STDERR`] bytes.
fn spawn_stderr_keeper(mut stderr: impl Read + Send + 'static) -> Arc<Mutex<VecDeque<u8>>> {
    let kept = Arc::new(Mutex::new(VecDeque::new()));
    let keeper = Arc::clone(&kept);
    thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match stderr.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    if let Ok(mut kept) = keeper.lock() {
                        kept.extend(&chunk[..n]);
                        let over = kept.len().saturating_sub(MAX_STDERR);
                        kept.drain(..over);
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        chunk.zeroize();
    });
    kept
}
