//! The real binary in a pseudo-terminal: what reaches the terminal byte for byte, a whole
//! rotation through the screen, and how it ends (quit, lost link, signals, panic, resize).
//!
//! The tests run one at a time (`serial()`): they measure CPU time and share two cores.

mod pty_support;

use std::time::Duration;

use pty_support::{
    all_keys, alnum_runs, count, escaped, find, rfind, secs, serial, Tui, ENTER, ESC, PAGE_DOWN,
};

const LEAVE_ALT_SCREEN: &[u8] = b"\x1b[?1049l";
const SHOW_CURSOR: &[u8] = b"\x1b[?25h";
const PASTE_ON: &[u8] = b"\x1b[?2004h";
const PASTE_OFF: &[u8] = b"\x1b[?2004l";
const CTRL_C: &str = "\x03";

/// How much CPU a process that only waits may use while it is being ended.
const IDLE_CPU: Duration = Duration::from_millis(300);

/// Each escape sequence in `raw`, as its introducer, private marker and final byte
/// (`CSI ? h`, `OSC`, ...), with its full text for failure messages.
fn escape_sequences(raw: &[u8]) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != 0x1b {
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        let kind = match raw.get(i) {
            Some(b'[') => {
                i += 1;
                let params = i;
                while i < raw.len() && (0x20..=0x3f).contains(&raw[i]) {
                    i += 1;
                }
                let private = raw[params..i]
                    .first()
                    .filter(|b| b"?<=>".contains(b))
                    .map(|b| *b as char);
                let fin = raw.get(i).map_or('∅', |b| *b as char);
                i += 1;
                match private {
                    Some(p) => format!("CSI {p} {fin}"),
                    None => format!("CSI {fin}"),
                }
            }
            Some(b']') => "OSC".to_string(),
            Some(b'P') => "DCS".to_string(),
            Some(b'_') => "APC".to_string(),
            Some(b'^') => "PM".to_string(),
            Some(b'X') => "SOS".to_string(),
            Some(other) => {
                i += 1;
                format!("ESC {}", *other as char)
            }
            None => "lone ESC".to_string(),
        };
        let text = escaped(&raw[start..i.min(raw.len()).max(start + 1)]);
        found.push((kind, text));
    }
    found
}

/// Only what a ratatui/crossterm frame is made of may reach the terminal: cursor moves,
/// colours, erase-line, and the modes the guard sets and restores.
fn assert_only_frame_sequences(raw: &[u8]) {
    const ALLOWED_MODES: [&str; 4] = ["1049", "25", "2026", "2004"];
    for (kind, text) in escape_sequences(raw) {
        let ok = match kind.as_str() {
            "CSI H" | "CSI m" | "CSI K" => true,
            "CSI ? h" | "CSI ? l" => ALLOWED_MODES
                .iter()
                .any(|m| text == format!("\\x1b[?{m}h") || text == format!("\\x1b[?{m}l")),
            _ => false,
        };
        assert!(ok, "unexpected escape sequence {kind}: {text}");
    }
}

/// Control bytes other than ESC, CR and LF would act on the terminal (BEL, BS, SO/SI
/// charset switches, ...); C1 controls (0x80-0x9F) act on terminals that honour 8-bit
/// controls when they arrive as raw bytes, and on some as UTF-8-encoded code points.
fn assert_no_stray_controls(raw: &[u8]) {
    for (i, b) in raw.iter().enumerate() {
        let ok = *b >= 0x20 || matches!(b, 0x1b | b'\r' | b'\n');
        assert!(
            ok && *b != 0x7f,
            "control byte {b:#04x} at {i}: …{}…",
            escaped(&raw[i.saturating_sub(40)..(i + 40).min(raw.len())])
        );
    }
    let mut rest = raw;
    let mut offset = 0;
    loop {
        let (valid, invalid) = match std::str::from_utf8(rest) {
            Ok(text) => (text, None),
            Err(e) => {
                let valid = std::str::from_utf8(&rest[..e.valid_up_to()]).unwrap();
                let len = e.error_len().unwrap_or(rest.len() - e.valid_up_to());
                (valid, Some((e.valid_up_to(), len)))
            }
        };
        for c in valid.chars() {
            assert!(
                !('\u{80}'..='\u{9f}').contains(&c),
                "C1 control U+{:04X} (UTF-8 encoded) in the output",
                c as u32
            );
            assert!(
                !matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'),
                "bidi control U+{:04X} in the output",
                c as u32
            );
        }
        let Some((at, len)) = invalid else { break };
        for b in &rest[at..at + len] {
            assert!(
                !(0x80..=0x9f).contains(b),
                "raw C1 byte {b:#04x} outside UTF-8 at {}",
                offset + at
            );
        }
        offset += at + len;
        rest = &rest[at + len..];
    }
}

/// The last thing written is the restore: the alternate screen is left and the cursor shown
/// after the last frame, and the vt100 screen agrees.
fn assert_restored_at_end(tui: &Tui, raw: &[u8]) -> usize {
    let left = rfind(raw, LEAVE_ALT_SCREEN).unwrap_or_else(|| {
        panic!(
            "the alternate screen was never left; output ends with {}",
            escaped(&raw[raw.len().saturating_sub(300)..])
        )
    });
    let shown = rfind(raw, SHOW_CURSOR).expect("the cursor was never shown again");
    assert!(
        left > rfind(raw, b"\x1b[?1049h").unwrap(),
        "the alternate screen was entered again after it was left"
    );
    assert!(
        shown > rfind(raw, b"\x1b[?25l").unwrap(),
        "the cursor was hidden again after it was shown"
    );
    // Bracketed paste was on, and is off again before the alternate screen is left.
    let paste_on = rfind(raw, PASTE_ON).expect("bracketed paste was never enabled");
    let paste_off = rfind(raw, PASTE_OFF).expect("bracketed paste was never disabled");
    assert!(
        paste_on < paste_off && paste_off < left,
        "bracketed paste is still on after exit"
    );
    // Nothing is drawn after the restore: only the restore itself and plain text may follow.
    let tail = &raw[left..];
    for (kind, text) in escape_sequences(tail) {
        assert!(
            text == "\\x1b[?1049l" || text == "\\x1b[?25h",
            "{kind} ({text}) written after the terminal was restored: {}",
            escaped(tail)
        );
    }
    tui.with_screen(|s| {
        assert!(!s.alternate_screen(), "vt100 still in the alternate screen");
        assert!(!s.hide_cursor(), "vt100 cursor still hidden");
    });
    left
}

fn assert_cooked(tui: &Tui) {
    let t = tui.termios();
    assert!(
        t.c_lflag & libc::ICANON != 0 && t.c_lflag & libc::ECHO != 0,
        "raw mode is still on after exit (c_lflag {:#o})",
        t.c_lflag
    );
}

/// Types a search and keeps it, waiting for exactly one match.
fn search_one(tui: &mut Tui, text: &str) {
    tui.send("/");
    tui.wait_text("Enter keep");
    tui.send(text);
    tui.wait_for(&format!("one match for {text:?}"), secs(10), |s| {
        let header = s.lines().next().unwrap_or("");
        header.contains(" 1 shown") && s.contains(&format!("/ {text}"))
    });
    // Enter keeps the filter and goes back to the list.
    tui.send(ENTER);
    tui.wait_text("/ search");
}

#[test]
fn hostile_names_reach_the_terminal_inert() {
    let _serial = serial();
    let mut tui = Tui::start(120, 40);
    tui.wait_list();
    let everyone = tui.screen().lines().next().unwrap().to_string();

    // 142 Mallory (ESC[2J, OSC 52), 143 Trudy (bidi, CSI 6n, C1 CSI), 144 (OSC 8 link).
    for (term, has_key) in [
        ("Mallory", false),
        ("Trudy", true),
        ("Click", false),
        ("142", false),
        ("143", true),
        ("144", false),
    ] {
        search_one(&mut tui, term);
        // The name in the detail pane, then in the new-key popup.
        tui.send("r");
        tui.wait_text("Not saved yet");
        tui.send(ESC);
        tui.wait_text("Cancelled: nothing was written.");
        if has_key {
            // And in the revoke popup.
            tui.send("x");
            tui.wait_text("Revoke the key of");
            tui.send(ESC);
            tui.wait_text("Cancelled: the key was kept.");
        }
        // Esc in the list clears the filter.
        tui.send(ESC);
        tui.wait_for("the whole list again", secs(10), |s| {
            s.lines().next() == Some(everyone.as_str())
        });
    }
    // Every row of the list, page by page, to the end and back.
    for _ in 0..3 {
        tui.send(PAGE_DOWN);
        tui.settle(Duration::from_millis(100));
    }
    tui.send("G");
    tui.settle(Duration::from_millis(100));
    tui.send("g");
    tui.settle(Duration::from_millis(100));
    tui.send("q");
    let exited = tui.wait_exit(secs(5));
    assert_eq!(exited.code, Some(0), "{exited:?}");

    let raw = tui.raw();
    assert!(
        find(&raw, "Mallory".as_bytes()).is_some() && find(&raw, "Trudy".as_bytes()).is_some(),
        "the hostile contacts were never drawn"
    );
    for (payload, what) in [
        (&b"\x1b]52"[..], "OSC 52 (clipboard write)"),
        (
            b"\x1b[6n",
            "CSI 6n (cursor position report: input injection)",
        ),
        (b"\x1b]8", "OSC 8 (hyperlink)"),
        // ratatui clears the screen only when the size changes, and this test never
        // resizes: any clear would be the payload's.
        (b"\x1b[2J", "ESC[2J (clear screen)"),
        // crossterm writes colours as 38;5;N, never as the payload's 31m.
        (b"\x1b[31m", "the payload's own SGR"),
    ] {
        assert_eq!(count(&raw, payload), 0, "{what} reached the terminal");
    }
    assert_only_frame_sequences(&raw);
    assert_no_stray_controls(&raw);
    assert_restored_at_end(&tui, &raw);
    assert_cooked(&tui);
}

/// The 32-character runs on the screen from the line holding `title` down.
fn keys_below(screen: &str, title: &str) -> Vec<String> {
    let lines: Vec<&str> = screen.lines().collect();
    let Some(top) = lines.iter().position(|l| l.contains(title)) else {
        return Vec::new();
    };
    lines[top..]
        .iter()
        .flat_map(|l| alnum_runs(l, 32))
        .collect()
}

/// The key shown in the popup titled `title`, once the screen is quiet (a frame can
/// arrive in several writes).
fn key_on_screen(tui: &Tui, title: &str) -> String {
    tui.settle(Duration::from_millis(100));
    let screen = tui.screen();
    let keys = keys_below(&screen, title);
    assert!(
        keys.len() == 1 && keys[0].len() == 32,
        "one 32-character key in the {title:?} popup, got {keys:?}:\n{screen}"
    );
    keys[0].clone()
}

#[test]
fn rotation_through_the_screen_writes_exactly_the_key_shown() {
    let _serial = serial();
    let mut tui = Tui::start(80, 24);
    tui.wait_list();
    let store = tui.store_path();
    let before = all_keys(&store);
    let hopper = 103;
    assert!(
        before[&hopper].is_some(),
        "the sample's Grace Hopper has a key"
    );

    search_one(&mut tui, "Hopper");
    tui.wait_text("Grace Hopper");
    // Esc at each popup writes nothing.
    tui.send("r");
    tui.wait_text("Not saved yet");
    tui.send(ESC);
    tui.wait_text("Cancelled: nothing was written.");
    tui.send("r");
    tui.wait_text("Not saved yet");
    tui.send(ENTER);
    tui.wait_text("y: assign");
    tui.send(ESC);
    tui.wait_text("Cancelled: nothing was written.");
    assert_eq!(
        all_keys(&store),
        before,
        "a cancelled popup wrote to the store"
    );

    tui.send("r");
    tui.wait_text("Not saved yet");
    let first = key_on_screen(&tui, "New key");
    tui.send("r"); // another key: the one assigned must be the last one shown
    tui.wait_for("another proposed key", secs(10), |s| {
        !keys_below(s, "New key").contains(&first)
    });
    let proposed = key_on_screen(&tui, "New key");
    assert_ne!(proposed, first);
    tui.send(ENTER);
    tui.wait_text("y: assign");
    assert!(
        tui.screen().contains(&format!("••••{}", &proposed[28..])),
        "the confirm popup names the proposed key's last 4"
    );
    tui.send("y");
    tui.wait_text("Key assigned");
    let shown = key_on_screen(&tui, "Key assigned");
    assert_eq!(shown, proposed, "the key assigned is the key proposed");

    let after = all_keys(&store);
    assert_eq!(after[&hopper].as_deref(), Some(shown.as_str()));
    for (id, key) in &after {
        if *id != hopper {
            assert_eq!(key, &before[id], "contact {id} changed");
            assert!(
                !key.as_deref()
                    .is_some_and(|k| k.eq_ignore_ascii_case(&shown)),
                "contact {id} holds the new key too"
            );
        }
    }

    tui.send(ENTER);
    tui.wait_text("/ search");
    assert!(
        !tui.screen().contains(&shown),
        "the key stays on screen after its popup closed"
    );
    tui.send("q");
    let exited = tui.wait_exit(secs(5));
    assert_eq!(exited.code, Some(0), "{exited:?}");
    let raw = tui.raw();
    let restored = assert_restored_at_end(&tui, &raw);
    assert!(
        find(&raw[restored..], shown.as_bytes()).is_none(),
        "the key was written outside the alternate screen"
    );
    assert_cooked(&tui);
}

#[test]
fn slash_name_enter_r_enter_y_rotates_the_contact_picked_and_esc_keeps_it() {
    let _serial = serial();
    let mut tui = Tui::start(80, 24);
    tui.wait_list();
    let store = tui.store_path();
    let before = all_keys(&store);
    let hopper = 103;
    tui.send("/");
    tui.wait_text("Enter keep");
    tui.send("hopper");
    tui.wait_for("Grace Hopper alone", secs(10), |s| {
        s.lines().next().is_some_and(|h| h.contains(" 1 shown"))
    });
    // The operator's keys, from here: Enter r Enter y.
    tui.send(ENTER);
    tui.wait_text("/ search");
    tui.send("r");
    tui.wait_text("Not saved yet");
    tui.send(ENTER);
    tui.wait_text("y: assign");
    tui.send("y");
    tui.wait_text("Key assigned");
    let shown = key_on_screen(&tui, "Key assigned");
    let after = all_keys(&store);
    assert_eq!(after[&hopper].as_deref(), Some(shown.as_str()));
    for (id, key) in &after {
        if *id != hopper {
            assert_eq!(key, &before[id], "contact {id} changed");
        }
    }
    tui.send(ENTER);
    tui.wait_text("/ search");
    // Esc clears the filter: the whole list, Grace Hopper still the one selected.
    tui.send(ESC);
    tui.wait_for("the whole list", secs(10), |s| {
        s.lines().next().is_some_and(|h| h.contains("47 shown"))
    });
    tui.settle(Duration::from_millis(100));
    assert_eq!(
        selected_id(&tui.screen()),
        Some(hopper as u64),
        "{}",
        tui.screen()
    );
    tui.send("q");
    let exited = tui.wait_exit(secs(5));
    assert_eq!(exited.code, Some(0), "{exited:?}");
}

/// Closes the master and checks the process ends soon without burning CPU meanwhile.
fn close_and_expect_quick_quiet_exit(tui: &mut Tui) {
    let cpu_before = tui.cpu();
    tui.close_master();
    if tui.try_wait_exit(secs(2)).is_none() {
        panic!(
            "still running 2 s after the link dropped, having used {:?} of CPU since",
            tui.cpu().saturating_sub(cpu_before)
        );
    }
    let exited = tui.wait_exit(Duration::ZERO);
    let used = exited.cpu.saturating_sub(cpu_before);
    assert!(
        used < IDLE_CPU,
        "used {used:?} of CPU in the {:?} after the link dropped (spinning?)",
        exited.after
    );
    // A lost link is not an error; but a crash (signal or panic) would be.
    assert_eq!(exited.signal, None, "{exited:?}");
}

#[test]
fn dropped_link_while_idle_exits_quickly_and_quietly() {
    let _serial = serial();
    let mut tui = Tui::start(80, 24);
    tui.wait_list();
    tui.settle(Duration::from_millis(200));
    close_and_expect_quick_quiet_exit(&mut tui);
}

#[test]
fn dropped_link_without_sighup_exits_quickly_and_quietly() {
    let _serial = serial();
    let mut tui = Tui::start_without_controlling_terminal(80, 24);
    tui.wait_list();
    tui.settle(Duration::from_millis(200));
    close_and_expect_quick_quiet_exit(&mut tui);
}

#[test]
fn dropped_link_during_a_slow_assign_exits_quickly_and_leaves_a_consistent_store() {
    let _serial = serial();
    let mut tui = Tui::start(80, 24);
    tui.wait_list();
    let store = tui.store_path();
    let before = all_keys(&store);
    let hopper = 103;
    search_one(&mut tui, "Hopper");
    tui.send("r");
    tui.wait_text("Not saved yet");
    tui.send(ENTER);
    tui.wait_text("y: assign");

    // Another writer holds the write lock: the assign waits on the store's busy timeout.
    let blocker = rusqlite::Connection::open(&store).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    tui.send("y");
    tui.wait_text("Assigning the key");
    std::thread::sleep(Duration::from_millis(300));
    close_and_expect_quick_quiet_exit(&mut tui);
    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);

    let after = all_keys(&store);
    for (id, key) in &after {
        if *id != hopper {
            assert_eq!(key, &before[id], "contact {id} changed");
        }
    }
    match &after[&hopper] {
        k if k == &before[&hopper] => eprintln!("dropped link during assign: key unchanged"),
        Some(k) if k.len() == 32 && k.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            eprintln!("dropped link during assign: the new key was written")
        }
        other => panic!("the store holds neither the old key nor a valid key: {other:?}"),
    }
}

#[test]
fn sigterm_restores_the_terminal() {
    let _serial = serial();
    let mut tui = Tui::start(80, 24);
    tui.wait_list();
    tui.signal(libc::SIGTERM);
    let exited = tui.wait_exit(secs(2));
    assert_eq!(exited.code, Some(1), "{exited:?}");
    let raw = tui.raw();
    let restored = assert_restored_at_end(&tui, &raw);
    let tail = String::from_utf8_lossy(&raw[restored..]).into_owned();
    assert!(tail.contains("terminated by a signal"), "{tail:?}");
    assert_cooked(&tui);
}

#[test]
fn panic_restores_the_terminal_before_its_message() {
    let _serial = serial();
    if !cfg!(debug_assertions) {
        eprintln!("SKIP panic_restores_the_terminal_before_its_message: release builds have no panic trigger");
        return;
    }
    let mut tui = Tui::start_with(80, 24, &[("CIVIKEY_DEBUG_PANIC_AFTER_MS", "1500")]);
    tui.wait_list();
    let exited = tui.wait_exit(secs(5));
    assert_eq!(exited.code, Some(101), "a panic exits with 101: {exited:?}");
    let raw = tui.raw();
    let restored = assert_restored_at_end(&tui, &raw);
    let message = find(&raw, b"panicked").expect("the panic message is printed");
    assert!(
        restored < message,
        "the panic message was printed before the terminal was restored"
    );
    let tail = String::from_utf8_lossy(&raw[restored..]).into_owned();
    assert!(tail.contains("CIVIKEY_DEBUG_PANIC_AFTER_MS"), "{tail:?}");
    assert_eq!(
        alnum_runs(&tail, 32),
        Vec::<String>::new(),
        "a key-like run in {tail:?}"
    );
    assert_cooked(&tui);
}

#[test]
fn resizing_to_tiny_and_back_keeps_working() {
    let _serial = serial();
    let mut tui = Tui::start(80, 24);
    tui.wait_list();
    tui.resize(20, 5);
    tui.wait_text("Terminal too small");
    tui.resize(1, 1);
    tui.settle(Duration::from_millis(200));
    assert!(tui.alive(), "civikey died at 1x1");
    tui.resize(120, 40);
    tui.wait_for("the full screen at 120x40", secs(10), |s| {
        // The footer: its keys, or the first run's note on the sample data.
        s.lines().next().is_some_and(|l| l.contains(" civikey │"))
            && (s.contains("/ search") || s.contains("Sample store: made-up contacts"))
            && !s.contains("too small")
    });
    assert!(tui.alive());
    tui.send("q");
    let exited = tui.wait_exit(secs(5));
    assert_eq!(exited.code, Some(0), "{exited:?}");
    let raw = tui.raw();
    assert!(find(&raw, b"panicked").is_none(), "a panic message");
    assert_restored_at_end(&tui, &raw);
}

#[test]
fn sighup_while_idle_exits_quickly() {
    let _serial = serial();
    let mut tui = Tui::start(80, 24);
    tui.wait_list();
    tui.signal(libc::SIGHUP);
    let exited = tui.wait_exit(secs(2));
    assert_eq!(
        exited.code,
        Some(0),
        "a hang-up is not an error: {exited:?}"
    );
}

/// The id on the selected row (the one marked ▶), if any.
fn selected_id(screen: &str) -> Option<u64> {
    let line = screen.lines().find(|l| l.starts_with('▶'))?;
    line.trim_start_matches('▶')
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[test]
fn a_key_right_after_a_resize_is_never_held_back() {
    let _serial = serial();
    let mut tui = Tui::start(100, 30);
    tui.wait_list();
    let mut selected = selected_id(&tui.screen()).expect("a selected row");
    for round in 0..20u16 {
        let (cols, rows) = if round % 2 == 0 { (120, 40) } else { (100, 30) };
        tui.resize(cols, rows);
        // Sometimes at once, sometimes once the resize has been taken in.
        std::thread::sleep(Duration::from_millis(u64::from(round % 4) * 15));
        let key = if round % 5 == 4 { "k" } else { "j" };
        tui.send(key);
        let before = selected;
        tui.wait_for(
            &format!("round {round}: {key} moving the selection within 200 ms"),
            Duration::from_millis(200),
            |s| selected_id(s).is_some_and(|id| id != before),
        );
        selected = selected_id(&tui.screen()).unwrap();
    }
    // And q right after a resize quits at once.
    tui.resize(80, 24);
    tui.send("q");
    let exited = tui.wait_exit(Duration::from_millis(500));
    assert_eq!(exited.code, Some(0), "{exited:?}");
}

#[test]
fn a_paste_is_text_for_the_search_and_never_commands() {
    let _serial = serial();
    let mut tui = Tui::start(80, 24);
    tui.wait_list();
    let store = tui.store_path();
    let before = all_keys(&store);
    // o (mark old keys), r (new key), Enter (new key), y (confirm) in one paste.
    tui.send("\x1b[200~lovelace or\ry\x1b[201~");
    tui.wait_text("Paste ignored");
    tui.settle(Duration::from_millis(200));
    let screen = tui.screen();
    for popup in ["Mark old keys", "New key", "Confirm", "Not saved yet"] {
        assert!(
            !screen.contains(popup),
            "the paste opened {popup:?}:\n{screen}"
        );
    }
    // Into the search box: text, the Enter inside it is not "keep".
    tui.send("/");
    tui.wait_text("Enter keep");
    tui.send("\x1b[200~Hop\rper y\x1b[201~");
    tui.wait_text("/ Hop per y");
    tui.settle(Duration::from_millis(200));
    let screen = tui.screen();
    assert!(
        screen.contains("Enter keep"),
        "still typing a search:\n{screen}"
    );
    assert!(!screen.contains("New key") && !screen.contains("Confirm"));
    tui.send(ESC);
    tui.wait_text("/ search");
    tui.send("q");
    let exited = tui.wait_exit(secs(5));
    assert_eq!(exited.code, Some(0), "{exited:?}");
    assert_eq!(all_keys(&store), before, "a paste wrote to the store");
    let raw = tui.raw();
    assert_restored_at_end(&tui, &raw);
    assert_cooked(&tui);
}

/// Keeps a search running: an exclusive lock makes the store's reads wait (5 s busy timeout).
fn start_a_slow_search(tui: &mut Tui) -> rusqlite::Connection {
    let blocker = rusqlite::Connection::open(tui.store_path()).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    tui.send("/");
    tui.wait_text("Enter keep");
    tui.send("Hop");
    // Enter keeps the filter: back in the list, the search still waiting on the lock.
    tui.send(ENTER);
    tui.wait_for("the pending search shown", secs(5), |s| {
        s.lines().next().is_some_and(|h| h.contains("searching…"))
    });
    blocker
}

#[test]
fn q_and_ctrl_c_quit_at_once_while_only_a_read_is_in_flight() {
    let _serial = serial();
    for key in ["q", CTRL_C] {
        let mut tui = Tui::start(80, 24);
        tui.wait_list();
        let before = all_keys(&tui.store_path());
        let blocker = start_a_slow_search(&mut tui);
        let asked = std::time::Instant::now();
        tui.send(key);
        let exited = tui.wait_exit(secs(5));
        let took = asked.elapsed();
        eprintln!("{key:?} with a read in flight: exited after {took:?}");
        assert_eq!(exited.code, Some(0), "{key:?}: {exited:?}");
        assert!(
            took < Duration::from_millis(200),
            "{key:?} took {took:?} with a read in flight"
        );
        blocker.execute_batch("ROLLBACK").unwrap();
        assert_eq!(
            all_keys(&tui.store_path()),
            before,
            "{key:?}: something was written"
        );
        let raw = tui.raw();
        assert_restored_at_end(&tui, &raw);
        assert_cooked(&tui);
    }
}

/// Opens the assign confirm for Grace Hopper and presses y while another writer holds the
/// store's write lock: the assign stays in flight until the returned connection lets go.
fn start_a_slow_assign(tui: &mut Tui) -> rusqlite::Connection {
    search_one(tui, "Hopper");
    tui.send("r");
    tui.wait_text("Not saved yet");
    tui.send(ENTER);
    tui.wait_text("y: assign");
    let blocker = rusqlite::Connection::open(tui.store_path()).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    tui.send("y");
    tui.wait_text("Assigning the key");
    blocker
}

/// The journal's records for contact `id`: (action, outcome).
fn journal_records(tui: &Tui, id: i64) -> Vec<(String, Option<String>)> {
    let path = tui.dir.path().join("data").join("audit.sqlite");
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT action, outcome FROM audit WHERE contact_id = ?1 ORDER BY id")
        .unwrap();
    stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn ctrl_c_during_a_write_finishes_it_then_quits() {
    let _serial = serial();
    let mut tui = Tui::start(80, 24);
    tui.wait_list();
    let store = tui.store_path();
    let before = all_keys(&store);
    let blocker = start_a_slow_assign(&mut tui);
    tui.send(CTRL_C);
    tui.wait_text("Finishing the change to Grace Hopper (id 103)");
    std::thread::sleep(Duration::from_millis(300));
    assert!(tui.alive(), "quit before the write settled");
    blocker.execute_batch("ROLLBACK").unwrap();
    // The new key is shown once before the quit ends: nobody else will ever have it.
    tui.wait_text("closing this popup quits");
    assert!(tui.alive(), "quit before the new key was shown");
    tui.send("q");
    let exited = tui.wait_exit(secs(3));
    assert_eq!(exited.code, Some(0), "{exited:?}");
    let after = all_keys(&store);
    assert_ne!(after[&103], before[&103], "the assign went through");
    assert_eq!(
        journal_records(&tui, 103),
        vec![("assign".to_string(), Some("done".to_string()))],
        "the journal and the store agree"
    );
    let raw = tui.raw();
    assert_restored_at_end(&tui, &raw);
}

#[test]
fn a_second_ctrl_c_during_a_write_quits_at_once_leaving_the_intent() {
    let _serial = serial();
    let mut tui = Tui::start(80, 24);
    tui.wait_list();
    let store = tui.store_path();
    let before = all_keys(&store);
    let blocker = start_a_slow_assign(&mut tui);
    // The intent is journaled before the store write, which now waits on the lock.
    let start = std::time::Instant::now();
    while journal_records(&tui, 103) != vec![("assign".to_string(), None)] {
        assert!(start.elapsed() < secs(5), "the intent was never journaled");
        std::thread::sleep(Duration::from_millis(20));
    }
    tui.send(CTRL_C);
    tui.wait_text("Ctrl-C again quits now");
    let asked = std::time::Instant::now();
    tui.send(CTRL_C);
    let exited = tui.wait_exit(secs(3));
    let took = asked.elapsed();
    eprintln!("second Ctrl-C with a write in flight: exited after {took:?}");
    assert_eq!(exited.code, Some(0), "{exited:?}");
    assert!(took < Duration::from_millis(200), "took {took:?}");
    blocker.execute_batch("ROLLBACK").unwrap();
    assert_eq!(all_keys(&store), before, "nothing was written");
    assert_eq!(
        journal_records(&tui, 103),
        vec![("assign".to_string(), None)],
        "the intent stays for the next run to settle"
    );
    let raw = tui.raw();
    assert_restored_at_end(&tui, &raw);
}

/// The health view on the sample store: `*` and `R` rotate the shared key of two contacts
/// through the bulk flow, space and `x` then `y` revoke the rest; `civikey check` then
/// finds nothing (exit 0) where it found six things (exit 6).
#[test]
fn health_view_fixes_every_finding_of_the_sample() {
    let _serial = serial();
    let mut tui = Tui::start(80, 24);
    tui.wait_list();
    let store = tui.store_path();
    let before = all_keys(&store);
    let check = |tui: &Tui| {
        std::process::Command::new(env!("CARGO_BIN_EXE_civikey"))
            .arg("check")
            .env("HOME", tui.dir.path())
            .env("CIVIKEY_DATA_DIR", tui.dir.path().join("data"))
            .env("XDG_CONFIG_HOME", tui.dir.path().join("config"))
            .env_remove("CIVIKEY_CONFIG")
            .output()
            .unwrap()
    };
    assert_eq!(
        check(&tui).status.code(),
        Some(6),
        "the sample has findings"
    );

    tui.send("h");
    tui.wait_text("Key health:");
    tui.wait_text("duplicate · critical · 2");
    tui.send("*");
    tui.wait_text("Marked the 2 contacts of duplicate");
    tui.send("R");
    tui.wait_text("Enter: this file");
    tui.send(ENTER);
    tui.wait_text("y: rotate all");
    tui.send("y");
    tui.wait_text("2 done");
    tui.send(ENTER);
    let after = all_keys(&store);
    for id in [145, 146] {
        assert_ne!(after[&id], before[&id], "contact {id} was rotated");
    }
    assert!(!after[&145]
        .as_deref()
        .unwrap()
        .eq_ignore_ascii_case(after[&146].as_deref().unwrap()));

    // Again: now the short key, the trashed holder, the holder without an account and the
    // one without the API permission lead, in that order. Mark the four, revoke them.
    tui.send("h");
    tui.wait_text("weak · critical · 1");
    tui.send("    ");
    tui.send("x");
    tui.wait_text("Revoke the keys of 4 marked contacts?");
    tui.send("y");
    tui.wait_text("4 done");
    tui.send(ENTER);
    let after = all_keys(&store);
    for id in [147, 141, 103, 104] {
        assert_eq!(after[&id], None, "contact {id}'s key was revoked");
    }
    tui.send("q");
    tui.wait_exit(secs(10));
    let out = check(&tui);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// After a frame is drawn by changes only, the screen must be the one a full redraw
/// (Ctrl-L) gives: nothing left over from an earlier frame.
fn assert_screen_is_a_full_redraw(tui: &mut Tui, after: &str) {
    // A blank written and a blank never written look the same.
    let screen = |tui: &Tui| {
        tui.screen()
            .lines()
            .map(str::trim_end)
            .collect::<Vec<_>>()
            .join("\n")
    };
    tui.settle(Duration::from_millis(300));
    let drawn = screen(tui);
    tui.send("\x0c");
    tui.settle(Duration::from_millis(300));
    let redrawn = screen(tui);
    assert_eq!(
        drawn, redrawn,
        "after {after}, the screen drawn by changes differs from a full redraw:\n{drawn}\n---\n{redrawn}"
    );
}

/// Names whose characters are not one cell each (wide CJK and emoji, combining marks,
/// Devanagari conjuncts that a terminal spreads over two cells) through scrolling in the
/// list and the health view: the screen never keeps a stray piece of an earlier frame, and
/// the list's columns stay in place.
#[test]
fn scrolling_through_wide_and_combining_names_leaves_no_stray_marks() {
    let _serial = serial();
    let mut tui = Tui::start(80, 24);
    tui.wait_list();
    let names = [
        "Mei Chen 陈 山田太郎",
        "Café Étoile 🥐🥐",
        "नमस्ते दुनिया क्षत्रिय",
        "Zoe\u{0308} Mu\u{0308}ller",
        "山田太郎山田太郎山田太郎山田太郎山",
    ];
    let db = rusqlite::Connection::open(tui.store_path()).unwrap();
    let ids: Vec<i64> = db
        .prepare("SELECT id FROM civicrm_contact ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let name = format!("{} {id}", names[i % names.len()]);
        db.execute(
            "UPDATE civicrm_contact SET display_name = ?1, sort_name = ?1 WHERE id = ?2",
            rusqlite::params![name, id],
        )
        .unwrap();
    }
    drop(db);
    // A search and Esc load the list again, with the new names.
    tui.send("/x");
    tui.wait_text("/ x");
    tui.send(ESC);
    tui.wait_text("Étoile");
    tui.wait_list();

    for _ in 0..ids.len() {
        tui.send("j");
    }
    assert_screen_is_a_full_redraw(&mut tui, "j to the end");
    tui.send("g");
    assert_screen_is_a_full_redraw(&mut tui, "g");
    tui.send(PAGE_DOWN);
    tui.send(PAGE_DOWN);
    assert_screen_is_a_full_redraw(&mut tui, "two pages down");
    // The list's columns: every row's type where the header's is.
    tui.with_screen(|screen| {
        let header = (0..80u16)
            .find(|&x| screen.cell(1, x).is_some_and(|c| c.contents() == "T"))
            .expect("the Type header");
        for row in 2..16u16 {
            let cell = screen.cell(row, header).map(|c| c.contents());
            assert!(
                matches!(cell, Some("I" | "O" | "H")),
                "row {row}: {:?} under Type\n{}",
                cell,
                screen.contents()
            );
        }
    });

    tui.send("h");
    tui.wait_text("Key health:");
    for _ in 0..20 {
        tui.send("j");
    }
    for _ in 0..7 {
        tui.send("k");
    }
    assert_screen_is_a_full_redraw(&mut tui, "scrolling the health view");
    tui.send("q");
    assert_screen_is_a_full_redraw(&mut tui, "closing the health view");
    tui.send("q");
    tui.wait_exit(secs(10));
}

/// `P` switches sites in place: the picker names each profile and whether it answers, an
/// unreachable one leaves the operator where they were, and after a switch the main flow
/// rotates the contact picked in the store switched to, and only there.
#[test]
fn the_profile_picker_switches_sites_and_the_main_flow_follows() {
    let _serial = serial();
    let sites = tempfile::tempdir().unwrap();
    let north = sites.path().join("north.sqlite");
    let south = sites.path().join("south.sqlite");
    let seeded = std::process::Command::new(env!("CARGO_BIN_EXE_civikey"))
        .arg("--store")
        .arg(format!("sqlite:{}", north.display()))
        .args(["seed", "--sample"])
        .env("CIVIKEY_DATA_DIR", sites.path().join("data"))
        .env_remove("CIVIKEY_CONFIG")
        .output()
        .unwrap();
    assert!(seeded.status.success(), "{seeded:?}");
    std::fs::copy(&north, &south).unwrap();
    let key_file = sites.path().join("gone.key");
    std::fs::write(&key_file, "k".repeat(32)).unwrap();
    let config = sites.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "default_profile = \"north\"\n\n\
             [profiles.north]\nkind = \"sqlite\"\naddress = \"sqlite:{}\"\n\n\
             [profiles.south]\nkind = \"sqlite\"\naddress = \"sqlite:{}\"\n\n\
             [profiles.gone]\nkind = \"civicrm-rest\"\naddress = \"http://127.0.0.1:9\"\n\
             api_key_file = \"{}\"\ntimeout_seconds = 3\n",
            north.display(),
            south.display(),
            key_file.display()
        ),
    )
    .unwrap();
    for file in [&config, &key_file] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut tui = Tui::start_with(80, 24, &[("CIVIKEY_CONFIG", config.to_str().unwrap())]);
    tui.wait_list();
    assert!(tui.screen().lines().next().unwrap().contains("│ north │"));
    let north_before = all_keys(&north);
    let south_before = all_keys(&south);

    tui.send("P");
    tui.wait_text("Enter switch to it");
    // Profiles in name order: gone, north (in use), south.
    tui.wait_for("gone judged unreachable", secs(15), |s| {
        s.lines()
            .any(|l| l.contains("gone") && l.contains("unreachable"))
    });
    // The unreachable one: the operator stays on north.
    tui.send("g");
    tui.send(ENTER);
    tui.wait_text("cannot be used");
    assert!(tui.screen().lines().next().unwrap().contains("│ north │"));

    tui.send("P");
    tui.wait_text("Enter switch to it");
    tui.send("G");
    tui.send(ENTER);
    tui.wait_for("the header names south", secs(10), |s| {
        s.lines()
            .next()
            .is_some_and(|h| h.contains("│ south │") && h.contains("47 shown"))
    });
    let hopper = 103;
    tui.send("/");
    tui.wait_text("Enter keep");
    tui.send("hopper");
    tui.wait_for("Grace Hopper alone", secs(10), |s| {
        s.lines().next().is_some_and(|h| h.contains(" 1 shown"))
    });
    tui.send(ENTER);
    tui.wait_text("/ search");
    tui.send("r");
    tui.wait_text("Not saved yet");
    tui.send(ENTER);
    tui.wait_text("y: assign");
    tui.send("y");
    tui.wait_text("Key assigned");
    let shown = key_on_screen(&tui, "Key assigned");
    let south_after = all_keys(&south);
    assert_eq!(south_after[&hopper].as_deref(), Some(shown.as_str()));
    for (id, key) in &south_after {
        if *id != hopper {
            assert_eq!(key, &south_before[id], "contact {id} changed in south");
        }
    }
    assert_eq!(all_keys(&north), north_before, "north must be untouched");
    tui.send(ENTER);
    tui.wait_text("/ search");
    tui.send("q");
    let exited = tui.wait_exit(secs(5));
    assert_eq!(exited.code, Some(0));
}
