//! Issue 21, finding 6: the screen's "changed since seen" compares the whole key (a
//! fingerprint kept in memory), not the four characters the list shows. Through the real
//! binary in a pseudo-terminal.

#[allow(dead_code)]
mod pty_support;

use pty_support::{all_keys, secs, serial, Tui, ENTER};

/// The operator opens the assign popup on Grace Hopper; before `y`, another writer gives
/// her a key that ends like the one shown. The assignment is refused and the other
/// writer's key stays.
#[test]
fn a_key_changed_to_one_ending_the_same_is_not_overwritten_from_the_screen() {
    let _serial = serial();
    let mut tui = Tui::start(100, 30);
    tui.wait_list();
    let store = tui.store_path();
    let hopper = 103;
    let before = all_keys(&store)[&hopper]
        .clone()
        .expect("Grace Hopper has a key");
    tui.send("/");
    tui.wait_text("Enter keep");
    tui.send("Hopper");
    tui.wait_for("one match", secs(10), |s| {
        s.lines().next().unwrap_or("").contains(" 1 shown")
    });
    // Enter keeps the filter and returns to the list, on Grace Hopper.
    tui.send(ENTER);
    tui.wait_text(&format!("••••{}", &before[before.len() - 4..]));
    tui.send("r");
    tui.wait_text("Not saved yet");
    tui.send(ENTER);
    tui.wait_text("y: assign");
    // Another writer: a different key with the same last four characters.
    let theirs = format!("OtherWriterKeyXyz{}", &before[before.len() - 4..]);
    assert_ne!(theirs, before);
    let conn = rusqlite::Connection::open(&store).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    conn.execute(
        "UPDATE civicrm_contact SET api_key = ?1 WHERE id = ?2",
        rusqlite::params![theirs, hopper],
    )
    .unwrap();
    drop(conn);
    tui.send("y");
    tui.wait_text("changed since you looked");
    assert_eq!(
        all_keys(&store)[&hopper].as_deref(),
        Some(theirs.as_str()),
        "the other writer's key was overwritten"
    );
    tui.send("q");
}
