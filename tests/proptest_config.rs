//! Property tests of the config parser: arbitrary text and mutations of the valid fixtures
//! (tests/configs/valid) never panic; text that is not TOML fails with a line number; every
//! error message is inert.

mod proptest_support;

use std::fs;
use std::path::{Path, PathBuf};

use civikey::config::{Config, ConfigError};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use proptest_support::{dangerous, hostile_text, mutated, run};

fn fixtures() -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/valid");
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            let bytes = fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    files
}

fn check(text: &str) -> Result<(), TestCaseError> {
    // Parsing only checks: secret files and environment variables are read at resolve time.
    let path = Path::new("/nonexistent/civikey-fuzz/config.toml");
    let result = Config::parse(text, path);
    let is_toml = toml::from_str::<toml::Table>(text).is_ok();
    match result {
        Ok(_) => prop_assert!(is_toml, "accepted text that is not TOML: {text:?}"),
        Err(e) => check_error(&e, is_toml, text)?,
    }
    Ok(())
}

fn check_error(e: &ConfigError, is_toml: bool, text: &str) -> Result<(), TestCaseError> {
    let shown = e.to_string();
    prop_assert!(!shown.chars().any(dangerous), "error not inert: {shown:?}");
    prop_assert!(shown.contains("config.toml"), "names the file: {shown:?}");
    if !is_toml {
        let line = e.line();
        prop_assert!(line.is_some(), "a syntax error without a line: {shown:?}");
        let lines = text.split('\n').count();
        prop_assert!(
            line.is_some_and(|l| l >= 1 && l <= lines),
            "line {line:?} outside the {lines} lines of {text:?}: {shown}"
        );
    }
    Ok(())
}

#[test]
fn arbitrary_text_never_panics() {
    run("config_text", 512, hostile_text(60), |text| check(&text));
}

/// Text made of TOML's own pieces, so the parser gets past the first character.
#[test]
fn toml_like_text_never_panics() {
    let piece = prop::sample::select(vec![
        "[profiles.a]\n",
        "[profiles.\"b c\"]\n",
        "kind = ",
        "\"sqlite\"",
        "\"mysql\"",
        "\"civicrm-rest\"",
        "\"cv\"",
        "address = ",
        "\"sqlite:/x\"",
        "\"https://crm.example.org\"",
        "\"mysql://u@h/db\"",
        "\"cv:/srv/site\"",
        "timeout_seconds = ",
        "10",
        "-1",
        "1e99",
        "tls = ",
        "true",
        "api_key_file = ",
        "api_key_env = ",
        "\"K\"",
        "default_profile = ",
        "\"a\"",
        "\n",
        "[[profiles]]\n",
        "{ x = 1 }",
        "[1, 2",
        "'''",
        "\"\"\"",
        "\\u0000",
        "# comment\n",
        "=",
        ".",
        "\"\u{1b}[2J\"",
        "password_file = ",
        "read_only = ",
    ]);
    run(
        "config_toml_like",
        512,
        prop::collection::vec(piece, 0..24),
        |pieces| check(&pieces.concat()),
    );
}

#[test]
fn mutated_valid_configs_never_panic() {
    let files = fixtures();
    let strategy = prop::sample::select(files).prop_flat_map(|(_, bytes)| mutated(bytes));
    run("config_mutated", 512, strategy, |bytes| {
        check(&String::from_utf8_lossy(&bytes))
    });
}

/// The valid fixtures themselves load (the baseline the mutations start from).
#[test]
fn the_fixtures_are_valid() {
    for (path, bytes) in fixtures() {
        let text = String::from_utf8(bytes).unwrap();
        Config::parse(&text, &path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}
