//! What the property tests (tests/proptest_*.rs) share: a runner bounded by case count and
//! time, and strategies for hostile text.
//!
//! `PROPTEST_CASES` sets how many cases each target runs (each file has a small default so
//! `cargo test` stays fast); `FUZZ_SECONDS` stops a target early once that much time has
//! passed. scripts/fuzz.sh sets both and collects the `FUZZ` lines printed here.

// Each test file uses only some of these.
#![allow(dead_code)]

use std::io::Write;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Cases run per fresh runner: between chunks the time limit is checked.
const CHUNK: u32 = 500;

/// Runs `test` on values of `strategy` until the case count (or the time limit) is reached.
/// A failure (an Err, or a panic inside `test`) is shrunk by proptest and fails the test
/// with the smallest input found.
pub fn run<S: Strategy>(
    name: &str,
    default_cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let total = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(default_cases);
    let limit = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs);
    let start = Instant::now();
    let mut done = 0u32;
    while done < total && limit.is_none_or(|l| start.elapsed() < l) {
        let chunk = (total - done).min(CHUNK);
        let mut runner = TestRunner::new(Config {
            cases: chunk,
            // Inputs found to fail become named regression tests in the file instead.
            failure_persistence: None,
            ..Config::default()
        });
        if let Err(e) = runner.run(&strategy, &test) {
            report(name, done, 1, start.elapsed());
            panic!("{name}: {e}");
        }
        done += chunk;
    }
    report(name, done, 0, start.elapsed());
}

fn report(name: &str, cases: u32, failures: u32, elapsed: Duration) {
    if std::env::var_os("PROPTEST_CASES").is_some() || std::env::var_os("FUZZ_SECONDS").is_some() {
        // Straight to the stderr handle: libtest would capture eprintln!.
        let _ = writeln!(
            std::io::stderr(),
            "FUZZ {name}: {cases} cases, {failures} failures, {:.1} s",
            elapsed.as_secs_f64()
        );
    }
}

/// Characters a terminal could act on or that hide or reorder text: controls (C0, DEL, C1)
/// and everything `sanitize::is_invisible` names (Default_Ignorable_Code_Point, format
/// characters, separators, U+2800). `tests/proptest_sanitize.rs` checks that set against
/// the Unicode ranges themselves.
pub fn dangerous(c: char) -> bool {
    c.is_control() || civikey::sanitize::is_invisible(c)
}

/// Pieces of the escape sequences attackers use.
const FRAGMENTS: &[&str] = &[
    "\x1b[2J",
    "\x1b[H",
    "\x1b]52;c;ZWNobyBwd25lZA==\x07",
    "\x1b]8;;https://evil.example/\x1b\\",
    "\x1b]0;title",
    "\x1b[6n",
    "\x1bP+q544e\x1b\\",
    "\u{9b}6n",
    "\u{9d}52;c;x\u{9c}",
    "\x1b[?1049h",
    "\r\n",
    "\u{202e}",
    "\u{200b}",
];

fn code(range: std::ops::Range<u32>) -> impl Strategy<Value = char> {
    range.prop_filter_map("not a char", char::from_u32)
}

/// One character, biased towards the ones that matter: controls, bidi and invisible
/// characters, wide CJK, emoji, combining marks, variation selectors.
pub fn hostile_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        4 => code(0x20..0x7F),
        2 => code(0x00..0x20),
        1 => Just('\x7f'),
        2 => code(0x80..0xA0),
        2 => code(0x2000..0x2070),
        1 => prop::sample::select(vec!['\u{061C}', '\u{180E}', '\u{FEFF}', '\u{FFF9}', '\u{FFFB}', '\u{E0001}', '\u{E007F}', '\u{FE0F}', '\u{FE0E}', '\u{00AD}', '\u{034F}']),
        2 => code(0x4E00..0x9FFF),
        2 => code(0x1F300..0x1FAFF),
        1 => code(0x0300..0x0370),
        1 => code(0xAC00..0xD7A4),
    ]
}

/// Text built from hostile characters and escape-sequence fragments.
pub fn hostile_text(max_pieces: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => hostile_char().prop_map(String::from),
            1 => prop::sample::select(FRAGMENTS).prop_map(String::from),
        ],
        0..max_pieces,
    )
    .prop_map(|pieces| pieces.concat())
}

/// `base` changed in a few places: bytes flipped, inserted, deleted, a range duplicated or
/// cut. Mutations of valid inputs reach deeper than random bytes.
pub fn mutated(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = base.len().max(1);
    prop::collection::vec((0..4u8, 0..len, 0..len, any::<u8>(), hostile_text(4)), 1..6).prop_map(
        move |edits| {
            let mut bytes = base.clone();
            for (kind, a, b, byte, text) in edits {
                let a = a.min(bytes.len());
                let b = b.min(bytes.len());
                let (lo, hi) = (a.min(b), a.max(b));
                match kind {
                    0 if a < bytes.len() => bytes[a] = byte,
                    1 => {
                        bytes.splice(a..a, text.into_bytes());
                    }
                    2 => {
                        bytes.drain(lo..hi);
                    }
                    _ => {
                        let copy = bytes[lo..hi].to_vec();
                        bytes.splice(hi..hi, copy);
                    }
                }
            }
            bytes
        },
    )
}

/// A folder for temporary stores, in memory when the machine has /dev/shm (a store file
/// is synced on every commit).
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().unwrap()
}
