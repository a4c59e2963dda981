//! One `cv api4` run: params on stdin, stdout and stderr read concurrently and capped,
//! a deadline after which cv's whole process group is killed and reaped. Also what
//! `cv pipe` uses to end its process ([`kill_group`]).

use std::io::{ErrorKind, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;
use zeroize::{Zeroize, Zeroizing};

use super::errors::{shown_stderr, FailKind, Failure};
use super::wire::Checked;
use super::{Action, CvStore};
use crate::key::ApiKey;
use crate::store::StoreError;

/// The most stdout civikey reads from one cv call: a page of contacts is a few KiB, so
/// anything near this is a runaway program, not an answer.
pub(super) const MAX_STDOUT: usize = 16 * 1024 * 1024;
/// The most stderr kept: enough for any PHP error, bounded against a chatty cv.
pub(super) const MAX_STDERR: usize = 1024 * 1024;

impl CvStore {
    /// Runs cv once: params on stdin, stdout and stderr read concurrently and capped, the
    /// whole process group killed and reaped at the deadline.
    pub(super) fn call(
        &self,
        action: Action,
        params: &impl Serialize,
        secrets: &[&ApiKey],
    ) -> Result<Zeroizing<Vec<u8>>, Failure> {
        // Sized up front so serializing never reallocates (and leaves key copies behind).
        let mut payload = Zeroizing::new(Vec::with_capacity(8192));
        let checked = Checked {
            params,
            check_permissions: self.user.is_some().then_some(true),
        };
        serde_json::to_writer(&mut *payload, &checked).map_err(|e| {
            Failure::Untouched(StoreError::invalid(format!(
                "cannot encode the cv request: {e}"
            )))
        })?;
        if let Some(answer) = self.call_pipe(action, &payload, secrets) {
            return answer;
        }

        let mut command = Command::new(&self.binary);
        if let Some(user) = &self.user {
            // One argument: a name cv cannot take for another option, whatever it holds.
            command.arg(format!("--user={user}"));
        }
        command
            .args(["api4", action.name(), "--in=json", "--out=json", "--cwd"])
            .arg(&self.site);
        let mut child = spawn(command).map_err(|e| Failure::Untouched(self.spawn_error(&e)))?;

        let deadline = Instant::now() + self.timeout;
        let stdout = child.stdout.take().map(|s| spawn_reader(s, MAX_STDOUT));
        let stderr = child.stderr.take().map(|s| spawn_reader(s, MAX_STDERR));
        if let Some(mut stdin) = child.stdin.take() {
            // A thread, so a cv that never reads stdin cannot block civikey; a write error
            // (cv exited without reading) is explained by cv's exit status instead.
            thread::spawn(move || {
                let _ = stdin.write_all(&payload);
            });
        }

        let status = wait_until(&mut child, deadline).inspect_err(|_| kill_group(&mut child))?;
        let (Some(stdout), Some(stderr)) = (stdout, stderr) else {
            return Err(Failure::ran(
                FailKind::Exit,
                "cv's output could not be read",
            ));
        };
        let (out, err) = match (collect(&stdout, deadline), collect(&stderr, deadline)) {
            (Some(out), Some(err)) => (out, err),
            _ => {
                // cv exited but something it started still holds its output open. cv is
                // reaped, so its group id may already name someone else's processes: they
                // are left alone, and the readers end when the pipes close.
                return Err(Failure::ran(
                    FailKind::Timeout,
                    format!(
                        "cv exited but its output stayed open past {} s",
                        self.timeout.as_secs_f32()
                    ),
                ));
            }
        };
        if !status.success() {
            let said = shown_stderr(&err.bytes, secrets);
            if let Some(refused) = self.refusal(action, &said, secrets) {
                return Err(Failure::Untouched(refused));
            }
            return Err(Failure::ran(FailKind::Exit, exit_message(status, &said)));
        }
        if out.overflowed {
            return Err(Failure::ran(
                FailKind::Output,
                format!(
                    "cv printed more than {} MiB; refused",
                    MAX_STDOUT / (1024 * 1024)
                ),
            ));
        }
        Ok(out.bytes)
    }

    pub(super) fn spawn_error(&self, e: &std::io::Error) -> StoreError {
        let shown = self.binary.display();
        match e.kind() {
            ErrorKind::NotFound => StoreError::invalid(format!(
                "cv not found: install cv or set cv_binary in the profile (looked for `{shown}`; a script's interpreter must exist too)"
            )),
            ErrorKind::PermissionDenied => StoreError::invalid(format!(
                "cannot run `{shown}`: permission denied; make it executable or set cv_binary in the profile"
            )),
            _ => StoreError::invalid(format!("cannot run `{shown}`: {e}")),
        }
    }
}

/// Waits for cv until `deadline`, polling (std has no wait with a timeout).
pub(super) fn wait_until(child: &mut Child, deadline: Instant) -> Result<ExitStatus, Failure> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() >= deadline => {
                return Err(Failure::ran(
                    FailKind::Timeout,
                    "cv did not finish in time and was stopped",
                ))
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => {
                return Err(Failure::ran(
                    FailKind::Exit,
                    format!("lost track of cv: {e}"),
                ))
            }
        }
    }
}

/// Starts cv with all three streams piped (nothing it prints reaches the terminal
/// unsanitized) in a process group of its own: a timeout kills cv and whatever it started
/// ([`kill_group`]), and the operator's Ctrl-C does not cut a write in half behind
/// civikey's back.
pub(super) fn spawn(mut command: Command) -> std::io::Result<Child> {
    crate::child_env::minimal(&mut command, crate::child_env::CV);
    #[allow(clippy::disallowed_methods)]
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
}

/// Kills cv's whole process group and reaps cv, so no process or zombie is left behind;
/// nothing if cv was already reaped (its group id may name someone else's processes now).
pub(super) fn kill_group(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    if let Ok(pgid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals that process group; cv was started
        // with process_group(0), so the group is cv's own and holds only what it started.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

pub(super) struct Captured {
    bytes: Zeroizing<Vec<u8>>,
    overflowed: bool,
}

/// Reads `source` to its end on a thread, keeping at most `cap` bytes and draining the
/// rest so cv never blocks on a full pipe.
pub(super) fn spawn_reader(
    mut source: impl Read + Send + 'static,
    cap: usize,
) -> mpsc::Receiver<Captured> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut kept = Captured {
            bytes: Zeroizing::new(Vec::with_capacity(64 * 1024)),
            overflowed: false,
        };
        let mut chunk = [0u8; 8192];
        loop {
            match source.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    let room = cap.saturating_sub(kept.bytes.len());
                    if n > room {
                        kept.overflowed = true;
                    }
                    crate::secret::extend_wiped(&mut kept.bytes, &chunk[..n.min(room)]);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        chunk.zeroize();
        let _ = tx.send(kept);
    });
    rx
}

/// The reader's result, or None when the stream is still open at the deadline.
pub(super) fn collect(rx: &mpsc::Receiver<Captured>, deadline: Instant) -> Option<Captured> {
    // A moment past the deadline: cv has exited, its pipes close as the readers finish.
    let wait = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(200));
    rx.recv_timeout(wait).ok()
}

/// `said`: cv's stderr as [`shown_stderr`] made it.
pub(super) fn exit_message(status: ExitStatus, said: &str) -> String {
    let how = match status.code() {
        Some(code) => format!("cv failed (exit status {code})"),
        None => "cv was killed by a signal".to_string(),
    };
    // What the recorded failures mean for the operator (tests/recorded/cv/).
    let hint =
        if said.contains("civicrm.settings.php") || said.contains("Invalid working directory") {
            "; no CiviCRM site there: the profile's address must be cv:PATH of the site folder"
        } else if said.contains("does not exist (or the extension") {
            "; this site has no such API (a Standalone-only entity on another CMS?)"
        } else {
            ""
        };
    if said.is_empty() {
        format!("{how} without an error message")
    } else {
        format!("{how}: {said}{hint}")
    }
}
