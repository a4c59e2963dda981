//! Every way untrusted text can reach stdout or stderr, driven through the real binary with
//! hostile payloads: names in the store, fields planted in the audit journal, a store path,
//! a profile name, a config file. Plus the guard that keeps raw printing out of the source.

mod binary;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use civikey::seed::SeedContact;
use civikey::store::sqlite::SqliteStore;

/// What attackers put in names: screen clear, clipboard write, hyperlink, cursor-position
/// request (the terminal answers on stdin), unterminated OSC, C1 CSI, bidi, zero-width.
const PAYLOADS: &[&str] = &[
    "Mallory \x1b[2J\x1b[H",
    "Eve \x1b]52;c;ZWNobyBwd25lZA==\x07",
    "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\",
    "Probe \x1b[6n",
    "Title \x1b]0;unterminated",
    "C1 \u{9b}31m red \u{9d}0;x\u{9c}",
    "Bidi \u{202e}gnp.exe\u{202c} \u{2066}x\u{2069}",
    "Zero\u{200b}width\u{feff}\u{2028}sep",
    "Bell\x07 back\x08space del\x7f nul\x00",
    // Default-ignorable and format characters an adversarial review found passing raw
    // (the first and last of each range; src/sanitize.rs tests every one).
    "Hidden\u{ad}\u{34f}\u{600}\u{605}\u{6dd}\u{70f}\u{115f}\u{1160}\u{3164}\u{ffa0}\u{180b}\u{180f}\u{206a}\u{206f}\u{2800}\u{fe00}\u{fe0f}\u{e0100}\u{e01ef}\u{1bca0}\u{1bca3}\u{1d173}\u{1d17a}end",
];

/// True when `bytes` could act on a terminal: any C0 control but newline (and carriage
/// return when `cr` is allowed, for progress lines), DEL, a C1 control, or an invisible or
/// reordering character.
fn live(bytes: &[u8], cr: bool) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    text.chars()
        .find(|&c| {
            let code = c as u32;
            (c.is_control() && c != '\n' && !(cr && c == '\r'))
                || matches!(
                    code,
                    0x061C
                        | 0x180E
                        | 0x200B..=0x200F
                        | 0x2028..=0x202E
                        | 0x2060..=0x2069
                        | 0xFEFF
                        | 0xFFF9..=0xFFFB
                        | 0x00AD
                        | 0x034F
                        | 0x0600..=0x0605
                        | 0x06DD
                        | 0x070F
                        | 0x115F
                        | 0x1160
                        | 0x3164
                        | 0xFFA0
                        | 0x180B..=0x180F
                        | 0x206A..=0x206F
                        | 0x2800
                        | 0xFE00..=0xFE0F
                        | 0xE0100..=0xE01EF
                        | 0x1BCA0..=0x1BCA3
                        | 0x1D173..=0x1D17A
                )
        })
        .map(|c| format!("U+{:04X} in {text:?}", c as u32))
}

fn assert_inert(out: &Output, what: &str) {
    if let Some(found) = live(&out.stdout, false) {
        panic!("{what}: stdout carries {found}");
    }
    if let Some(found) = live(&out.stderr, true) {
        panic!("{what}: stderr carries {found}");
    }
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("hostile.sqlite")
    }

    fn address(&self) -> String {
        format!("sqlite:{}", self.store().display())
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    fn run_with(&self, args: &[&str], env: &[(&str, &Path)]) -> Output {
        assert_eq!(self.data_dir(), self.dir.path().join("data"));
        let mut cmd = binary::civikey(self.dir.path());
        cmd.args(args);
        for (name, value) in env {
            cmd.env(name, value);
        }
        cmd.output().unwrap()
    }

    /// A store whose every text field holds a payload.
    fn hostile_store(&self) {
        let contacts = PAYLOADS.iter().enumerate().map(|(i, p)| SeedContact {
            id: Some(100 + i as i64),
            contact_type: if i % 2 == 0 {
                "Individual"
            } else {
                "Organization"
            }
            .into(),
            display_name: (*p).to_string(),
            sort_name: format!("{p}, sort"),
            first_name: Some((*p).to_string()),
            last_name: None,
            email: Some(format!("x{i}\x1b[2J@example.org")),
            is_deleted: i == 3,
            api_key: None,
            uf_id: Some(500 + i as i64),
            roles: vec![(*p).to_string()],
        });
        SqliteStore::create(&self.store(), contacts, &mut |_| {}).unwrap();
    }
}

#[test]
fn hostile_names_are_inert_in_every_command_output() {
    let env = Env::new();
    env.hostile_store();
    let store = env.address();
    let ids: Vec<String> = (0..PAYLOADS.len()).map(|i| (100 + i).to_string()).collect();

    for args in [
        vec!["list", "--limit", "100"],
        vec!["list", "--json"],
        vec!["list", "--limit", "2"], // "more than 2 match" note on stderr
        vec!["list", "--search", "\x1b[2J"],
    ] {
        let out = env.run(&[&args[..], &["--store", &store]].concat());
        assert!(out.status.success(), "{args:?}: {out:?}");
        assert_inert(&out, &format!("{args:?}"));
    }
    for id in &ids {
        for args in [vec!["show", id], vec!["show", id, "--json"]] {
            let out = env.run(&[&args[..], &["--store", &store]].concat());
            assert!(out.status.success(), "{args:?}: {out:?}");
            assert_inert(&out, &format!("{args:?}"));
        }
        // Rotation names the contact on stderr; revoke too.
        let out = env.run(&["rotate", id, "--yes", "--store", &store]);
        assert!(out.status.success(), "rotate {id}: {out:?}");
        assert_inert(&out, &format!("rotate {id}"));
        let out = env.run(&["revoke", id, "--yes", "--store", &store]);
        assert!(out.status.success(), "revoke {id}: {out:?}");
        assert_inert(&out, &format!("revoke {id}"));
        // Nothing left to revoke: the message names the contact again.
        let out = env.run(&["revoke", id, "--yes", "--store", &store]);
        assert_inert(&out, &format!("revoke {id} again"));
    }
    // Bulk rotation's per-contact progress lines name every contact.
    let ids_file = env.dir.path().join("ids.txt");
    fs::write(&ids_file, ids.join("\n")).unwrap();
    let keys_out = env.dir.path().join("keys.csv");
    let out = env.run(&[
        "rotate",
        "--ids-from",
        ids_file.to_str().unwrap(),
        "--out",
        keys_out.to_str().unwrap(),
        "--yes",
        "--store",
        &store,
    ]);
    assert!(out.status.success(), "bulk: {out:?}");
    assert_inert(&out, "bulk rotate");
    assert!(String::from_utf8_lossy(&out.stderr).contains("␛[2J"));
    // And the journal those rotations wrote.
    for args in [vec!["audit"], vec!["audit", "--json"]] {
        let out = env.run(&args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        assert_inert(&out, &format!("{args:?}"));
    }
}

/// civikey writes only safe text to its journal, but reads it back as untrusted: a field
/// planted in the file (by another program of the same user, a restored backup) stays inert.
#[test]
fn planted_journal_fields_are_inert() {
    let env = Env::new();
    env.hostile_store();
    let out = env.run(&["rotate", "100", "--yes", "--store", &env.address()]);
    assert!(out.status.success(), "{out:?}");
    let journal = env.data_dir().join("audit.sqlite");
    let conn = rusqlite::Connection::open(&journal).unwrap();
    let evil = "\x1b]52;c;ZXZpbA==\x07\u{202e}\u{9b}6n";
    let changed = conn
        .execute(
            "UPDATE audit SET operator = ?1, ssh_client = ?1, store = ?1, profile = ?1,
                    contact_name = ?1, action = ?1, old_fp = ?1, new_fp = ?1, outcome = ?1,
                    error = ?1, reconciled = ?1",
            [evil],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);
    // The planted store no longer names this store: --all-stores shows it, store column too.
    for args in [
        vec!["audit", "--all-stores"],
        vec!["audit", "--json", "--all-stores"],
        vec!["audit", "--contact", "100", "--all-stores"],
    ] {
        let out = env.run(&args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        assert_inert(&out, &format!("{args:?}"));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("]52;c;"),
            "{args:?}: the planted record is shown, neutralised"
        );
    }
    let entries = civikey::audit::Journal::open(&env.data_dir(), Default::default())
        .unwrap()
        .entries(None, true, 10)
        .unwrap();
    let e = &entries[0];
    for field in [
        Some(&e.operator),
        e.ssh_client.as_ref(),
        Some(&e.store),
        e.profile.as_ref(),
        Some(&e.contact_name),
        Some(&e.action),
        e.old_fingerprint.as_ref(),
        e.new_fingerprint.as_ref(),
        e.outcome.as_ref(),
        e.error.as_ref(),
        e.reconciled.as_ref(),
    ] {
        let field = field.unwrap();
        assert!(live(field.as_bytes(), false).is_none(), "{field:?}");
    }
}

/// Error messages quote what they were given: a store path, a profile name, a config value,
/// an unknown argument. Each quote is neutralised.
#[test]
fn error_messages_quote_their_input_inert() {
    let env = Env::new();
    let evil = "\x1b]52;c;ZXZpbA==\x07\u{202e}\u{9b}2J";
    let missing = format!("sqlite:{}/{evil}.sqlite", env.dir.path().display());
    let dir_store = env.dir.path().join(format!("dir{evil}"));
    fs::create_dir(&dir_store).unwrap();
    let dir_store = format!("sqlite:{}", dir_store.display());
    let cases: Vec<(Vec<&str>, u8)> = vec![
        // A path holding control characters is a bad address: a usage error.
        (vec!["list", "--store", &missing], 2),
        (vec!["list", "--store", &dir_store], 2),
        // Usage errors: not an address, no such profile.
        (vec!["list", "--store", evil], 2),
        (vec!["list", "--profile", evil], 2),
        (vec!["list", "--frobnicate", evil], 2),
        (vec![evil], 2),
        (vec!["show", evil], 2),
    ];
    for (args, code) in &cases {
        let out = env.run(args);
        assert_eq!(
            out.status.code(),
            Some(i32::from(*code)),
            "{args:?}: {out:?}"
        );
        assert!(!out.stderr.is_empty(), "{args:?}: says why");
        assert_inert(&out, &format!("{args:?}"));
    }

    // A config file whose values are hostile, and one whose error quotes a hostile line.
    let config_dir = env.dir.path().join("cfg");
    fs::create_dir(&config_dir).unwrap();
    let config = config_dir.join("config.toml");
    for text in [
        format!("[profiles.a]\nkind = \"sqlite\"\naddress = \"sqlite:/nowhere/{evil}\"\n"),
        format!("[profiles.\"{evil}\"]\nkind = \"sqlite\"\n"),
        format!("[profiles.a]\nkind = \"{evil}\"\n"),
        format!("[profiles.a]\nkind = 'sqlite'\naddress = 'sqlite:/x'\n{evil} = 1\n"),
        format!("default_profile = \"{evil}\"\n"),
        format!("garbage {evil}"),
    ] {
        fs::write(&config, &text).unwrap();
        fs::set_permissions(&config, fs::Permissions::from_mode(0o600)).unwrap();
        for args in [vec!["list"], vec!["profiles"], vec!["profiles", "--json"]] {
            let out = env.run_with(&args, &[("CIVIKEY_CONFIG", &config)]);
            assert_inert(&out, &format!("{args:?} with config {text:?}"));
        }
    }
}

/// Source text with comments and string literals blanked, so a forbidden name in a doc
/// comment or a message does not count.
fn code_only(source: &str) -> String {
    source
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The same rule as clippy.toml, as a test: it holds even when clippy is not run. Raw
/// printing appears only in the vetted helpers.
#[test]
fn source_prints_only_through_the_vetted_helpers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(files.len() > 20, "{files:?}");
    let forbidden = [
        "print!(",
        "println!(",
        "eprint!(",
        "eprintln!(",
        "dbg!(",
        "io::stdout()",
        "io::stderr()",
        ".print()",
    ];
    let mut offences = Vec::new();
    for file in &files {
        let code = code_only(&fs::read_to_string(file).unwrap());
        let relative = file
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        // The benchmark binary prints its own measurements of synthetic data, never store
        // text; it is not part of civikey's binary.
        if relative.starts_with("src/bin/") {
            continue;
        }
        // The vetted places: `cli::out` (sanitizes) and `terminal::tty` (the TUI).
        let allowed_region = match relative.as_str() {
            "src/cli/mod.rs" => code
                .find("pub mod out {")
                .map(|start| start..start + code[start..].find("\n}\n").unwrap()),
            "src/terminal.rs" => code
                .find("fn tty() -> io::Stdout {")
                .map(|start| start..start + code[start..].find("\n}\n").unwrap()),
            _ => None,
        };
        for word in forbidden {
            for (at, _) in code.match_indices(word) {
                // A preceding identifier character means another name: `eprint!(` holds
                // `print!(`, which its own entry reports.
                let before = code[..at].chars().last();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') && !word.starts_with('.')
                {
                    continue;
                }
                if allowed_region.as_ref().is_some_and(|r| r.contains(&at)) {
                    continue;
                }
                let line = code[..at].lines().count();
                offences.push(format!("{relative}:{line}: {word}"));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "raw printing outside cli::out / terminal::tty:\n{}",
        offences.join("\n")
    );

    // And the clippy rule is in place and switched on for the shipped code.
    let clippy = fs::read_to_string(root.join("clippy.toml")).unwrap();
    for path in [
        "std::print\"",
        "std::println\"",
        "std::eprint\"",
        "std::eprintln\"",
        "std::dbg\"",
        "std::io::stdout\"",
        "std::io::stderr\"",
    ] {
        assert!(clippy.contains(path), "clippy.toml lacks {path}");
    }
    for crate_root in ["src/lib.rs", "src/main.rs"] {
        let text = fs::read_to_string(root.join(crate_root)).unwrap();
        assert!(
            text.contains("#![warn(clippy::disallowed_macros, clippy::disallowed_methods)]"),
            "{crate_root} does not switch the rule on"
        );
    }
}
