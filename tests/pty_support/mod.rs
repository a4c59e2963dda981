//! Runs the real civikey binary in a pseudo-terminal: write keys, read every raw byte it
//! writes, see the screen through a vt100 parser, wait for it with its CPU time.
//!
//! The master side is used through our own duplicated file descriptors, not portable-pty's
//! reader and writer: its writer sends "\n^D" when dropped (a key press for the app), and a
//! reader thread blocked in read() would keep the master open when a test closes it.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use portable_pty::{native_pty_system, CommandBuilder, MasterPty, PtySize};

pub const ESC: &str = "\x1b";
pub const ENTER: &str = "\r";
pub const PAGE_DOWN: &str = "\x1b[6~";

/// The tests share the machine's two cores and measure CPU time: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Output {
    raw: Vec<u8>,
    screen: vt100::Parser,
}

/// How the process ended, from wait4().
#[derive(Debug)]
pub struct Exited {
    /// Some(code) for a normal exit.
    pub code: Option<i32>,
    /// Some(signal) when a signal killed it.
    pub signal: Option<i32>,
    /// user + system CPU time over its whole life.
    pub cpu: Duration,
    /// How long after wait_exit() was called it was seen gone.
    pub after: Duration,
}

pub struct Tui {
    pub dir: tempfile::TempDir,
    /// civikey's process.
    pid: libc::pid_t,
    /// The setsid process it runs under, if any.
    wrapper: Option<libc::pid_t>,
    master: Option<Box<dyn MasterPty + Send>>,
    input: Option<File>,
    output: Arc<Mutex<Output>>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    exited: Option<Exited>,
}

impl Tui {
    /// Starts civikey on the default store in a new tempdir (created from the sample).
    pub fn start(cols: u16, rows: u16) -> Tui {
        Tui::start_with(cols, rows, &[])
    }

    pub fn start_with(cols: u16, rows: u16, env: &[(&str, &str)]) -> Tui {
        Tui::spawn(cols, rows, env, false)
    }

    /// Starts civikey in a session of its own (`setsid -w civikey`): the pty is its
    /// terminal but not its controlling terminal, so when the link drops no SIGHUP reaches
    /// it (the kernel sends that to the pty's session only) and it has to notice the
    /// hang-up on the terminal itself.
    pub fn start_without_controlling_terminal(cols: u16, rows: u16) -> Tui {
        Tui::spawn(cols, rows, &[], true)
    }

    fn spawn(cols: u16, rows: u16, env: &[(&str, &str)], detached: bool) -> Tui {
        let dir = tempfile::tempdir().unwrap();
        let pair = native_pty_system()
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let bin = env!("CARGO_BIN_EXE_civikey");
        let mut cmd = if detached {
            // civikey outlives setsid when the link drops (SIGHUP ends setsid): adopt it,
            // to reap it and read its CPU time like a direct child's.
            let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
            assert_eq!(r, 0, "PR_SET_CHILD_SUBREAPER");
            // setsid forks (its process leads a group already) and waits for civikey.
            let mut cmd = CommandBuilder::new("setsid");
            cmd.args(["-w", bin]);
            cmd
        } else {
            CommandBuilder::new(bin)
        };
        // Only what the test chooses: no TMUX, NO_COLOR or CIVIKEY_* from the caller.
        cmd.env_clear();
        cmd.env("PATH", std::env::var_os("PATH").unwrap_or_default());
        cmd.env("HOME", dir.path());
        cmd.env("LANG", "C.UTF-8");
        cmd.env("TERM", "xterm-256color");
        cmd.env("CIVIKEY_DATA_DIR", dir.path().join("data"));
        // No config file: its default location is inside the empty tempdir.
        cmd.env("XDG_CONFIG_HOME", dir.path().join("config"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.cwd(dir.path());
        let child = pair.slave.spawn_command(cmd).unwrap();
        let first = child.process_id().unwrap() as libc::pid_t;
        // The child is reaped by wait4() below; dropping the handle neither waits nor kills.
        drop(child);
        let (pid, wrapper) = if detached {
            (child_of(first), Some(first))
        } else {
            (first, None)
        };
        // Only the child may hold the slave: closing the master must hang it up.
        drop(pair.slave);
        let master = pair.master;
        let fd = master.as_raw_fd().unwrap();
        let input = File::from(dup(fd));
        let output = Arc::new(Mutex::new(Output {
            raw: Vec::new(),
            screen: vt100::Parser::new(nonzero(rows), nonzero(cols), 0),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = spawn_reader(dup(fd), output.clone(), stop.clone());
        Tui {
            dir,
            pid,
            wrapper,
            master: Some(master),
            input: Some(input),
            output,
            stop,
            reader: Some(reader),
            exited: None,
        }
    }

    pub fn store_path(&self) -> PathBuf {
        self.dir.path().join("data").join("contacts.sqlite")
    }

    pub fn send(&mut self, keys: &str) {
        let input = self.input.as_mut().expect("the master is closed");
        input.write_all(keys.as_bytes()).unwrap();
        input.flush().unwrap();
    }

    /// Everything the process wrote so far.
    pub fn raw(&self) -> Vec<u8> {
        self.output.lock().unwrap().raw.clone()
    }

    /// The screen as a terminal would show it now.
    pub fn screen(&self) -> String {
        self.output.lock().unwrap().screen.screen().contents()
    }

    pub fn with_screen<T>(&self, f: impl FnOnce(&vt100::Screen) -> T) -> T {
        f(self.output.lock().unwrap().screen.screen())
    }

    /// Polls the screen until `ready` holds; fails with the screen shown.
    pub fn wait_for(&self, what: &str, timeout: Duration, ready: impl Fn(&str) -> bool) {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return;
            }
            if start.elapsed() > timeout {
                let raw = self.raw();
                panic!(
                    "timed out after {timeout:?} waiting for {what}; the screen is:\n{screen}\n\
                     ({}; the last output: {})",
                    self.state(),
                    escaped(&raw[raw.len().saturating_sub(400)..])
                );
            }
            std::thread::sleep(Duration::from_millis(15));
        }
    }

    pub fn wait_text(&self, text: &str) {
        self.wait_for(&format!("{text:?} on the screen"), secs(10), |s| {
            s.contains(text)
        });
    }

    /// Waits for the list to be loaded: the header says "N shown", not "loading…".
    pub fn wait_list(&self) {
        self.wait_for("the contact list", secs(15), |s| {
            let header = s.lines().next().unwrap_or("");
            header.contains(" shown") && !header.contains("loading")
        });
    }

    /// Waits until the process has written nothing for `quiet`.
    pub fn settle(&self, quiet: Duration) {
        let start = Instant::now();
        let mut len = self.raw().len();
        let mut since = Instant::now();
        while since.elapsed() < quiet {
            assert!(start.elapsed() < secs(10), "the output never settled");
            std::thread::sleep(Duration::from_millis(10));
            let now = self.raw().len();
            if now != len {
                len = now;
                since = Instant::now();
            }
        }
    }

    pub fn resize(&mut self, cols: u16, rows: u16) {
        // The parser first, so every frame drawn for the new size lands at that size.
        self.output
            .lock()
            .unwrap()
            .screen
            .screen_mut()
            .set_size(nonzero(rows), nonzero(cols));
        self.master
            .as_ref()
            .expect("the master is closed")
            .resize(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
    }

    /// The terminal's termios (the master reports the slave's settings on Linux).
    pub fn termios(&self) -> libc::termios {
        let fd = self.master.as_ref().unwrap().as_raw_fd().unwrap();
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::tcgetattr(fd, &mut t) }, 0, "tcgetattr");
        t
    }

    /// Closes every descriptor of the master, as sshd does when the link drops.
    pub fn close_master(&mut self) {
        self.stop_reader();
        self.input = None;
        self.master = None;
    }

    pub fn signal(&self, signal: libc::c_int) {
        assert!(self.alive(), "the process is already gone");
        assert_eq!(unsafe { libc::kill(self.pid, signal) }, 0, "kill");
    }

    /// Whether it runs, or how it ended, without reaping it (for failure messages).
    fn state(&self) -> String {
        if let Some(exited) = &self.exited {
            return format!("ended: {exited:?}");
        }
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        let r = unsafe { libc::waitid(libc::P_PID, self.pid as libc::id_t, &mut info, flags) };
        if r != 0 {
            return format!("state unknown: {}", std::io::Error::last_os_error());
        }
        match unsafe { info.si_pid() } {
            0 => "still running".to_string(),
            _ => format!("ended: si_code {} status {}", info.si_code, unsafe {
                info.si_status()
            }),
        }
    }

    pub fn alive(&self) -> bool {
        self.exited.is_none() && unsafe { libc::kill(self.pid, 0) } == 0 && !self.is_zombie()
    }

    fn is_zombie(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .map(|s| stat_fields(&s).first().copied() == Some("Z"))
            .unwrap_or(true)
    }

    /// user + system CPU time so far, from /proc/PID/stat.
    pub fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap();
        let fields = stat_fields(&stat);
        // Fields 14 and 15 of stat(5); `fields` starts at field 3.
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        Duration::from_millis(ticks * 1000 / hz)
    }

    /// Waits for the process to end and reaps it; None if it is still running at `timeout`.
    pub fn try_wait_exit(&mut self, timeout: Duration) -> Option<&Exited> {
        if self.exited.is_none() {
            let start = Instant::now();
            loop {
                let mut status = 0;
                let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
                if let Some(wrapper) = self.wrapper {
                    // Reaped as soon as it dies, so civikey is handed over to this process.
                    let mut wrapper_status = 0;
                    if unsafe { libc::waitpid(wrapper, &mut wrapper_status, libc::WNOHANG) }
                        == wrapper
                    {
                        self.wrapper = None;
                    }
                }
                let r = unsafe { libc::wait4(self.pid, &mut status, libc::WNOHANG, &mut usage) };
                let not_ours_yet = r < 0
                    && self.wrapper.is_some()
                    && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD);
                assert!(
                    r >= 0 || not_ours_yet,
                    "wait4: {}",
                    std::io::Error::last_os_error()
                );
                if r == self.pid {
                    let tv = |t: libc::timeval| {
                        Duration::from_secs(t.tv_sec as u64)
                            + Duration::from_micros(t.tv_usec as u64)
                    };
                    self.exited = Some(Exited {
                        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
                        signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
                        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
                        after: start.elapsed(),
                    });
                    break;
                }
                if start.elapsed() > timeout {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            // The slave is closed now: the reader sees the end of the output and stops.
            self.join_reader();
        }
        self.exited.as_ref()
    }

    /// Waits for the process to end; fails with the screen if it does not within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> &Exited {
        if self.try_wait_exit(timeout).is_none() {
            panic!(
                "civikey did not exit within {timeout:?}; the screen is:\n{}",
                self.screen()
            );
        }
        self.exited.as_ref().unwrap()
    }

    fn stop_reader(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.join_reader();
    }

    fn join_reader(&mut self) {
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        // A failed test must not leave a civikey behind.
        if self.exited.is_none() {
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let mut status = 0;
            unsafe { libc::waitpid(self.pid, &mut status, 0) };
        }
        if let Some(wrapper) = self.wrapper {
            let mut status = 0;
            unsafe { libc::kill(wrapper, libc::SIGKILL) };
            unsafe { libc::waitpid(wrapper, &mut status, 0) };
        }
        self.stop.store(true, Ordering::SeqCst);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

fn nonzero(n: u16) -> std::num::NonZeroU16 {
    std::num::NonZeroU16::new(n).expect("a terminal size is at least 1x1")
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The fields of /proc/PID/stat after "pid (comm)", so field 3 (state) is index 0.
fn stat_fields(stat: &str) -> Vec<&str> {
    let after = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    after.split_whitespace().collect()
}

/// The one child of `parent`, waited for (setsid forks it right after it starts).
fn child_of(parent: libc::pid_t) -> libc::pid_t {
    let start = Instant::now();
    let path = format!("/proc/{parent}/task/{parent}/children");
    loop {
        let children = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(pid) = children.split_whitespace().next() {
            return pid.parse().unwrap();
        }
        assert!(start.elapsed() < secs(10), "setsid started no civikey");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn dup(fd: std::os::fd::RawFd) -> OwnedFd {
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    assert!(new >= 0, "dup: {}", std::io::Error::last_os_error());
    unsafe { OwnedFd::from_raw_fd(new) }
}

/// Reads the master until the slave is gone (EIO) or the test stops it, polling so a stop
/// request is seen even when the process writes nothing.
fn spawn_reader(fd: OwnedFd, output: Arc<Mutex<Output>>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut file = File::from(fd);
        let mut buf = [0u8; 8192];
        loop {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let mut pfd = libc::pollfd {
                fd: file.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let r = unsafe { libc::poll(&mut pfd, 1, 20) };
            if r <= 0 {
                continue; // timeout or EINTR
            }
            match file.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    let mut out = output.lock().unwrap();
                    out.raw.extend_from_slice(&buf[..n]);
                    out.screen.process(&buf[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // EIO: every slave descriptor is closed, the output is complete.
                Err(_) => return,
            }
        }
    })
}

/// Maximal runs of ASCII letters and digits at least `min` long.
pub fn alnum_runs(text: &str, min: usize) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|run| run.len() >= min)
        .map(str::to_string)
        .collect()
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

pub fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

/// Every contact's api_key, by id.
pub fn all_keys(store: &Path) -> std::collections::BTreeMap<i64, Option<String>> {
    let conn = rusqlite::Connection::open(store).unwrap();
    let mut stmt = conn
        .prepare("SELECT id, api_key FROM civicrm_contact ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Shows raw bytes readably in a failure message.
pub fn escaped(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}
