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

use ratatui::backend::{Backend, CrosstermBackend};
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{
    self, DisableBracketedPaste, EnableBracketedPaste, Event as TermEvent,
};
use ratatui::crossterm::terminal::{
    self, BeginSynchronizedUpdate, EndSynchronizedUpdate, EnterAlternateScreen,
    LeaveAlternateScreen,
};
use ratatui::crossterm::{cursor, execute, queue};
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};

use crate::app::worker::{self, JournalSetup};
use crate::app::{keymap, App, Cmd, Msg};
use crate::store::StoreSpec;

/// Set once the terminal is gone (SIGHUP, read error): nothing may be written to it.
static TERMINAL_GONE: AtomicBool = AtomicBool::new(false);
/// Set while the alternate screen and raw mode are on, for the panic hook.
static TERMINAL_ACTIVE: AtomicBool = AtomicBool::new(false);

/// How long a dropped link waits for a store call in flight to finish before exiting.
const HANGUP_GRACE: Duration = Duration::from_millis(1500);
/// How long SIGTERM waits for a store call in flight.
const TERMINATE_GRACE: Duration = Duration::from_secs(15);
/// How long the input thread lets crossterm look for more of what arrived (see
/// `spawn_input_thread`).
const INPUT_DRAIN: Duration = Duration::from_millis(1);

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
        let _ = execute!(
            tty(),
            DisableBracketedPaste,
            LeaveAlternateScreen,
            cursor::Show
        );
    }
}

/// Restores the terminal when dropped, however the TUI ends.
pub struct TerminalGuard(());

impl TerminalGuard {
    pub fn enter() -> io::Result<Self> {
        terminal::enable_raw_mode()?;
        TERMINAL_ACTIVE.store(true, Ordering::SeqCst);
        let guard = TerminalGuard(());
        // Bracketed paste: a paste arrives as one Event::Paste, never as key presses.
        execute!(
            tty(),
            EnterAlternateScreen,
            EnableBracketedPaste,
            cursor::Hide
        )?;
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
    resolve_profile: Option<worker::ResolveProfile>,
) -> io::Result<Exit> {
    let (events_tx, events) = mpsc::channel::<Event>();
    spawn_signal_thread(events_tx.clone())?;

    let guard = TerminalGuard::enter()?;
    let mut screen = Screen::fullscreen(tty())?;
    let size = screen.term.size()?;
    app.update(Msg::Resize {
        width: size.width,
        height: size.height,
    });
    app.now = unix_now();
    // The first frame goes out before any store call, so nothing ever looks frozen.
    draw(&mut screen, &app)?;

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
        resolve_profile,
    )?;
    forward(results, events_tx.clone())?;
    spawn_input_thread(events_tx)?;

    dispatch(first_cmds, &jobs_tx);
    let mut exit = Exit::Quit;
    'outer: while let Ok(first) = events.recv() {
        let mut pending = Some(first);
        // Whether anything in this batch can change the screen: keys without a meaning
        // here, mouse and focus events do not, so they cost no frame at all.
        let mut touched = false;
        // Apply everything queued before drawing once: fast typing costs one frame.
        while let Some(event) = pending.take().or_else(|| events.try_recv().ok()) {
            let cmds = match event {
                Event::Term(TermEvent::Key(key)) => match keymap::map(key, app.mode()) {
                    Some(action) => {
                        touched = true;
                        app.update(Msg::Action(action))
                    }
                    None => Vec::new(),
                },
                Event::Term(TermEvent::Paste(text)) => {
                    touched = true;
                    app.update(Msg::Paste(text))
                }
                Event::Term(TermEvent::Resize(width, height)) => {
                    touched = true;
                    app.update(Msg::Resize { width, height })
                }
                Event::Term(_) => Vec::new(),
                Event::Msg(msg) => match *msg {
                    Msg::StoreOpened(Err(e)) => {
                        exit = Exit::StoreFailed(e);
                        break 'outer;
                    }
                    msg => {
                        touched = true;
                        app.update(msg)
                    }
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
                    // A bulk run stops after the contact in flight; its answer ends the TUI.
                    Cmd::StopBulk => stop.store(true, Ordering::SeqCst),
                    Cmd::Redraw => {
                        if !TERMINAL_GONE.load(Ordering::SeqCst) {
                            screen.forget_shown()?;
                        }
                    }
                    other => dispatch(vec![other], &jobs_tx),
                }
            }
            if app.should_quit {
                break 'outer;
            }
        }
        if touched {
            app.now = unix_now();
            draw(&mut screen, &app)?;
        }
    }
    stop.store(true, Ordering::SeqCst);
    drop(jobs_tx);
    // q and Ctrl-C end the TUI only when no write is in flight (the app waited for it to
    // settle), or when the operator pressed Ctrl-C again (the journal's intent is settled
    // by the next run): the worker is abandoned, whatever read it is doing. A signal or a
    // dropped link lets a store call in flight finish first, so its outcome is known.
    match exit {
        Exit::Quit | Exit::StoreFailed(_) => drop(worker),
        Exit::HungUp => join_with_timeout(worker, HANGUP_GRACE),
        Exit::Terminated => join_with_timeout(worker, TERMINATE_GRACE),
    }
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

fn draw(screen: &mut Screen<io::Stdout>, app: &App) -> io::Result<()> {
    // Gone, or restored by the panic hook while another thread panicked: draw nothing.
    if TERMINAL_GONE.load(Ordering::SeqCst) || !TERMINAL_ACTIVE.load(Ordering::SeqCst) {
        return Ok(());
    }
    screen.draw(app).map(|_| ())
}

/// The screen as civikey writes it: ratatui's cell diff, wrapped in one synchronized
/// update, and nothing at all when a new frame is the same as the one shown. The only
/// full clear is ratatui's own when the terminal changes size. Generic over the writer so
/// the benchmark counts exactly the bytes a real terminal receives.
pub struct Screen<W: Write> {
    term: Terminal<CrosstermBackend<W>>,
    /// What the terminal shows now.
    shown: Option<Buffer>,
}

impl<W: Write> Screen<W> {
    /// The whole terminal, following its size.
    pub fn fullscreen(writer: W) -> io::Result<Self> {
        Ok(Screen {
            term: Terminal::new(CrosstermBackend::new(writer))?,
            shown: None,
        })
    }

    /// A fixed `width` x `height` area (tests and the benchmark: no terminal to ask).
    pub fn fixed(writer: W, width: u16, height: u16) -> io::Result<Self> {
        let options = TerminalOptions {
            viewport: Viewport::Fixed(Rect::new(0, 0, width, height)),
        };
        Ok(Screen {
            term: Terminal::with_options(CrosstermBackend::new(writer), options)?,
            shown: None,
        })
    }

    /// Ctrl-L: the terminal is cleared and the next frame is written whole (something
    /// else wrote on it: a `wall` message, a noisy background job).
    pub fn forget_shown(&mut self) -> io::Result<()> {
        self.shown = None;
        // Not `Terminal::clear`: it first asks the terminal where the cursor is, and a
        // terminal (or link) that does not answer in time ended civikey with an error.
        queue!(
            self.term.backend_mut(),
            terminal::Clear(terminal::ClearType::All)
        )?;
        // Both of ratatui's buffers blank, as the cleared screen: the next frame is written whole.
        self.term.current_buffer_mut().reset();
        self.term.swap_buffers();
        Ok(())
    }

    /// Renders `app`; writes the changed cells, or nothing when no cell changed. Returns
    /// whether anything was written.
    pub fn draw(&mut self, app: &App) -> io::Result<bool> {
        self.term.autoresize()?;
        let mut frame = self.term.get_frame();
        crate::ui::draw(app, &mut frame);
        if self.shown.as_ref() == Some(self.term.current_buffer_mut()) {
            // The next frame must start from a blank buffer, as after a swap.
            self.term.current_buffer_mut().reset();
            return Ok(false);
        }
        self.shown = Some(self.term.current_buffer_mut().clone());
        // Synchronized updates: terminals that know them show the frame at once, no tearing.
        queue!(self.term.backend_mut(), BeginSynchronizedUpdate)?;
        self.term.flush()?;
        self.term.swap_buffers();
        queue!(self.term.backend_mut(), EndSynchronizedUpdate)?;
        Backend::flush(self.term.backend_mut())?;
        Ok(true)
    }
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
            // What arrived, then whatever crossterm parsed along with it (several keys in
            // one read). Only poll() with a short timeout, never a blocking read(): should
            // the terminal hang up right now, crossterm returns within INPUT_DRAIN and
            // `wait_for_input` sees the hang-up.
            loop {
                match event::poll(INPUT_DRAIN) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(_) => {
                        let _ = events.send(Event::Hangup);
                        return;
                    }
                }
                let event = match event::read() {
                    Ok(ev) => Event::Term(ev),
                    // The terminal failed: the operator is gone. Never retry in a loop.
                    Err(_) => Event::Hangup,
                };
                let gone = matches!(event, Event::Hangup);
                if events.send(event).is_err() || gone {
                    return;
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
///
/// crossterm's event source is its poll(2) one (feature `use-dev-tty`, Cargo.toml), which
/// is level-triggered like this wait. Its default mio source is edge-triggered and, when a
/// SIGWINCH and a key press were both pending, returned the resize and dropped the
/// terminal's readiness: the key then waited inside crossterm for the next one (a key held
/// back after every resize, tests/pty.rs).
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::app::{Action, AppOptions};
    use crate::key::SeededKeySource;
    use crate::sanitize::SafeText;
    use crate::store::{CmsLink, Contact, Page, StoreInfo, StoreKind};

    /// Keeps what the "terminal" received.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn take(&self) -> Vec<u8> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    fn app_with_contacts() -> App {
        let options = AppOptions {
            location: "sqlite:/tmp/t.sqlite".into(),
            color: true,
            clipboard_warning: None,
            data_dir: "/tmp".into(),
            profiles: Vec::new(),
        };
        let (mut app, _) = App::new(options, Box::new(SeededKeySource::new(1)));
        app.update(Msg::Resize {
            width: 80,
            height: 24,
        });
        app.update(Msg::StoreOpened(Ok(StoreInfo {
            kind: StoreKind::Sqlite,
            location: SafeText::new("sqlite:/tmp/t.sqlite"),
            key_capacity: 32,
            keys_case_insensitive: true,
            writable: true,
        })));
        let contacts = (1..=40)
            .map(|id| Contact {
                id,
                contact_type: SafeText::new("Individual"),
                display_name: SafeText::new(&format!("Person Number{id:02}")),
                sort_name: SafeText::new(&format!("Number{id:02}, Person")),
                email: Some(SafeText::new(&format!("p{id}@example.org"))),
                is_deleted: false,
                key: None,
                cms: CmsLink::None,
            })
            .collect();
        let seq = app.search_seq;
        app.update(Msg::Searched {
            seq,
            append: false,
            result: Ok(Page {
                contacts,
                next: None,
            }),
            history: Vec::new(),
        });
        app
    }

    #[test]
    fn only_changes_reach_the_terminal() {
        let sink = Sink::default();
        let mut screen = Screen::fixed(sink.clone(), 80, 24).unwrap();
        let mut app = app_with_contacts();
        assert!(screen.draw(&app).unwrap());
        let first = sink.take();
        assert!(first.len() > 1000, "the first frame draws the screen");
        let clear = b"\x1b[2J";
        assert!(
            !first.windows(clear.len()).any(|w| w == clear),
            "no full clear"
        );

        assert!(!screen.draw(&app).unwrap(), "nothing changed");
        assert!(sink.take().is_empty(), "an unchanged frame writes nothing");

        app.update(Msg::Action(Action::Down));
        assert!(screen.draw(&app).unwrap());
        let moved = sink.take();
        assert!(
            moved.len() < 800,
            "one row down wrote {} bytes",
            moved.len()
        );
        assert!(!moved.windows(clear.len()).any(|w| w == clear));
        let sync_begin = b"\x1b[?2026h";
        let sync_end = b"\x1b[?2026l";
        assert!(moved.starts_with(sync_begin) && moved.ends_with(sync_end));
    }
}
