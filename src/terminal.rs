//! The terminal: a guard that restores every mode it enabled (on exit, on panic, on
//! SIGTERM), and the event loop that waits on input, worker answers and signals at once.
//!
//! The loop blocks on one channel: no polling, so an idle civikey uses no CPU, and a
//! dropped SSH link (SIGHUP, or the terminal hanging up) ends it instead of spinning.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event as TermEvent};
use ratatui::crossterm::terminal::{
    self, BeginSynchronizedUpdate, EndSynchronizedUpdate, EnterAlternateScreen,
    LeaveAlternateScreen,
};
use ratatui::crossterm::{cursor, execute};
use ratatui::Terminal;

use crate::app::worker::{self, JournalSetup};
use crate::app::{keymap, App, Cmd, Msg};
use crate::store::spec::StoreSpec;

/// Set once the terminal is gone (SIGHUP, read error): nothing may be written to it.
static TERMINAL_GONE: AtomicBool = AtomicBool::new(false);
/// Set while the alternate screen and raw mode are on, for the panic hook.
static TERMINAL_ACTIVE: AtomicBool = AtomicBool::new(false);

/// How long a dropped link waits for a store call in flight to finish before exiting.
const HANGUP_GRACE: Duration = Duration::from_millis(1500);
/// How long a normal quit waits for a store call in flight.
const QUIT_GRACE: Duration = Duration::from_secs(15);

/// The TUI's only way to the terminal: ratatui frames (drawn from SafeText; ratatui also drops
/// control characters), mode switches, and the OSC 52 copy the operator asked for. Everything
/// else civikey prints goes through `cli::out`.
#[allow(clippy::disallowed_methods)]
fn tty() -> io::Stdout {
    io::stdout()
}

fn restore() {
    if !TERMINAL_ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    let _ = terminal::disable_raw_mode();
    if !TERMINAL_GONE.load(Ordering::SeqCst) {
        let _ = execute!(tty(), LeaveAlternateScreen, cursor::Show);
    }
}

/// Restores the terminal when dropped, however the TUI ends.
pub struct TerminalGuard(());

impl TerminalGuard {
    pub fn enter() -> io::Result<Self> {
        terminal::enable_raw_mode()?;
        TERMINAL_ACTIVE.store(true, Ordering::SeqCst);
        let guard = TerminalGuard(());
        execute!(tty(), EnterAlternateScreen, cursor::Hide)?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Restores the terminal before the panic message is printed, so it is readable.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let was_active = TERMINAL_ACTIVE.load(Ordering::SeqCst);
        restore();
        previous(info);
        // A panic on any thread ends the screen: the terminal was just restored under it,
        // and a dead worker or input thread would leave a screen that no longer answers
        // (tests/pty.rs saw the process live on after a worker-side panic). Exit with the
        // code a panicking main thread gives.
        if was_active {
            std::process::exit(101);
        }
    }));
}

enum Event {
    Term(TermEvent),
    Msg(Box<Msg>),
    /// SIGTERM, SIGINT, SIGQUIT: quit cleanly.
    Terminate,
    /// SIGHUP or the terminal failed: the operator is gone.
    Hangup,
}

/// How the TUI ended.
pub enum Exit {
    Quit,
    Terminated,
    HungUp,
    /// The store could not be opened: main prints this after the terminal is restored.
    StoreFailed(String),
}

pub fn run(
    spec: StoreSpec,
    journal: JournalSetup,
    undo_window: Duration,
    mut app: App,
    first_cmds: Vec<Cmd>,
) -> io::Result<Exit> {
    let (events_tx, events) = mpsc::channel::<Event>();
    spawn_signal_thread(events_tx.clone())?;

    let guard = TerminalGuard::enter()?;
    let mut term = Terminal::new(CrosstermBackend::new(tty()))?;
    let size = term.size()?;
    app.update(Msg::Resize {
        width: size.width,
        height: size.height,
    });
    app.now = unix_now();
    // The first frame goes out before any store call, so nothing ever looks frozen.
    draw(&mut term, &app)?;

    let (jobs_tx, jobs) = mpsc::channel::<Cmd>();
    let (results_tx, results) = mpsc::channel::<Msg>();
    let stop = Arc::new(AtomicBool::new(false));
    let worker = worker::spawn(
        spec,
        journal,
        undo_window,
        jobs,
        results_tx,
        Arc::clone(&stop),
    )?;
    forward(results, events_tx.clone())?;
    spawn_input_thread(events_tx)?;

    dispatch(first_cmds, &jobs_tx);
    let mut exit = Exit::Quit;
    'outer: while let Ok(first) = events.recv() {
        let mut pending = Some(first);
        // Apply everything queued before drawing once: fast typing costs one frame.
        while let Some(event) = pending.take().or_else(|| events.try_recv().ok()) {
            let cmds = match event {
                Event::Term(TermEvent::Key(key)) => match keymap::map(key, app.mode()) {
                    Some(action) => app.update(Msg::Action(action)),
                    None => Vec::new(),
                },
                Event::Term(TermEvent::Resize(width, height)) => {
                    app.update(Msg::Resize { width, height })
                }
                Event::Term(_) => Vec::new(),
                Event::Msg(msg) => match *msg {
                    Msg::StoreOpened(Err(e)) => {
                        exit = Exit::StoreFailed(e);
                        break 'outer;
                    }
                    msg => app.update(msg),
                },
                Event::Terminate => {
                    exit = Exit::Terminated;
                    break 'outer;
                }
                Event::Hangup => {
                    TERMINAL_GONE.store(true, Ordering::SeqCst);
                    exit = Exit::HungUp;
                    break 'outer;
                }
            };
            for cmd in cmds {
                match cmd {
                    Cmd::CopyToClipboard(key) => {
                        let seq = crate::clipboard::osc52(&key);
                        let mut out = tty();
                        out.write_all(seq.as_bytes())?;
                        out.flush()?;
                    }
                    other => dispatch(vec![other], &jobs_tx),
                }
            }
            if app.should_quit {
                break 'outer;
            }
        }
        app.now = unix_now();
        draw(&mut term, &app)?;
    }
    // Let a store call in flight finish (its outcome is then known), then leave; a bulk
    // run stops after the contact in flight.
    stop.store(true, Ordering::SeqCst);
    drop(jobs_tx);
    let grace = if matches!(exit, Exit::HungUp) {
        HANGUP_GRACE
    } else {
        QUIT_GRACE
    };
    join_with_timeout(worker, grace);
    drop(guard);
    Ok(exit)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn dispatch(cmds: Vec<Cmd>, jobs: &Sender<Cmd>) {
    for cmd in cmds {
        // A send fails only if the worker is gone, which the loop notices on its own.
        let _ = jobs.send(cmd);
    }
}

fn draw(term: &mut Terminal<CrosstermBackend<io::Stdout>>, app: &App) -> io::Result<()> {
    // Gone, or restored by the panic hook while another thread panicked: draw nothing.
    if TERMINAL_GONE.load(Ordering::SeqCst) || !TERMINAL_ACTIVE.load(Ordering::SeqCst) {
        return Ok(());
    }
    // Synchronized updates: terminals that know them show the frame at once, no tearing.
    execute!(tty(), BeginSynchronizedUpdate)?;
    term.draw(|frame| crate::ui::draw(app, frame))?;
    execute!(tty(), EndSynchronizedUpdate)
}

fn forward(results: Receiver<Msg>, events: Sender<Event>) -> io::Result<()> {
    std::thread::Builder::new()
        .name("civikey-results".into())
        .spawn(move || {
            for msg in results {
                if events.send(Event::Msg(Box::new(msg))).is_err() {
                    return;
                }
            }
        })?;
    Ok(())
}

fn spawn_input_thread(events: Sender<Event>) -> io::Result<()> {
    std::thread::Builder::new()
        .name("civikey-input".into())
        .spawn(move || loop {
            if !wait_for_input() {
                let _ = events.send(Event::Hangup);
                return;
            }
            // What arrived, then whatever crossterm parsed along with it (a paste is many
            // keys in one read); poll(ZERO) answers from crossterm's buffer first.
            loop {
                let event = match event::read() {
                    Ok(ev) => Event::Term(ev),
                    // The terminal failed: the operator is gone. Never retry in a loop.
                    Err(_) => Event::Hangup,
                };
                let gone = matches!(event, Event::Hangup);
                if events.send(event).is_err() || gone {
                    return;
                }
                match event::poll(Duration::ZERO) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(_) => {
                        let _ = events.send(Event::Hangup);
                        return;
                    }
                }
            }
        })?;
    Ok(())
}

/// Blocks until the terminal has bytes to read; false once it is hung up or failed.
///
/// Why not just crossterm's `event::read()`: crossterm 0.29 retries a read that returns 0
/// forever, and 0 is what a hung-up terminal returns, so after the SSH link dropped the
/// input thread spun a core: until SIGHUP ended the process (1.5 s of CPU while an assign
/// was finishing), or for ever when the terminal is not civikey's controlling terminal and
/// no SIGHUP comes (both seen in tests/pty.rs). Waiting here first, crossterm is entered
/// only when there are bytes, which leaves a window of microseconds per key press for the
/// hang-up to land inside crossterm.
///
/// crossterm reads stdin when it is a terminal, which `run` requires of its callers.
fn wait_for_input() -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDIN_FILENO,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd, for the length of the call.
        let ready = unsafe { libc::poll(&mut fd, 1, -1) };
        if ready < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return false;
        }
        let failed = fd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0;
        return !failed && fd.revents & libc::POLLIN != 0;
    }
}

fn spawn_signal_thread(events: Sender<Event>) -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGWINCH};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGWINCH])?;
    std::thread::Builder::new()
        .name("civikey-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let event = match signal {
                    SIGHUP => Event::Hangup,
                    // crossterm notices a resize only while the input thread is inside it,
                    // and that thread now waits on its own (see `wait_for_input`).
                    SIGWINCH => match terminal::size() {
                        Ok((width, height)) => Event::Term(TermEvent::Resize(width, height)),
                        Err(_) => continue,
                    },
                    _ => Event::Terminate,
                };
                if events.send(event).is_err() {
                    return;
                }
            }
        })?;
    Ok(())
}

fn join_with_timeout(handle: JoinHandle<()>, timeout: Duration) {
    let (tx, rx) = mpsc::channel::<()>();
    let waiter = std::thread::spawn(move || {
        let _ = handle.join();
        let _ = tx.send(());
    });
    // On timeout the process exits anyway; the worker thread dies with it.
    if rx.recv_timeout(timeout).is_ok() {
        let _ = waiter.join();
    }
}
