//! Bad files and bad answers through the real binary: each gives exit code 1 (5 for a
//! refused write), a clear message on stderr, no panic, and leaves the file byte for byte as
//! it was. The same cases are tested on the library in tests/store_sqlite.rs,
//! tests/config.rs, tests/store_rest.rs and tests/store_cv.rs.

mod binary;

// Shared with tests/store_rest.rs, which uses every failure mode; this file uses a few.
mod fake_civicrm;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use civikey::key::ApiKey;
use civikey::seed::SeedContact;
use civikey::store::sqlite::SqliteStore;
use fake_civicrm::{FakeCivi, Mode, ADMIN_KEY, SITE_KEY};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&str], config: Option<&Path>) -> Output {
        let mut cmd = binary::civikey(self.dir.path());
        cmd.args(args);
        match config {
            Some(c) => cmd.env("CIVIKEY_CONFIG", c),
            None => cmd.env_remove("CIVIKEY_CONFIG"),
        };
        cmd.output().unwrap()
    }

    /// A private file with these bytes.
    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, bytes).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    fn good_store(&self, name: &str) -> PathBuf {
        let path = self.path(name);
        SqliteStore::create(&path, sample(), &mut |_| {}).unwrap();
        path
    }
}

fn sample() -> Vec<SeedContact> {
    (1..=3)
        .map(|i| SeedContact {
            id: Some(i),
            contact_type: "Individual".into(),
            display_name: format!("Person {i}"),
            sort_name: format!("{i}, Person"),
            email: Some(format!("p{i}@example.org")),
            api_key: (i == 2)
                .then(|| ApiKey::from_store("OldKeyOldKeyOldKeyOldKeyOldKey02".into())),
            ..Default::default()
        })
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit code, a civikey message naming `words` (any of them) on stderr, nothing on stdout,
/// no panic.
fn assert_fails(out: &Output, code: i32, words: &[&str], what: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{what}: {err}");
    assert!(err.starts_with("civikey: "), "{what}: {err}");
    assert!(words.iter().any(|w| err.contains(w)), "{what}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert!(out.stdout.is_empty(), "{what}: stdout {:?}", out.stdout);
}

fn sqlite(path: &Path) -> String {
    format!("sqlite:{}", path.display())
}

#[test]
fn bad_store_files_exit_1_and_stay_untouched() {
    let env = Env::new();
    let good = fs::read(env.good_store("good.sqlite")).unwrap();
    let random: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut header_then_noise = b"SQLite format 3\0".to_vec();
    header_then_noise.extend(&random);
    let cases: Vec<(PathBuf, &[&str])> = vec![
        (env.file("empty.sqlite", b""), &["empty"]),
        (
            env.file("random.sqlite", &random),
            &["not a SQLite database"],
        ),
        (
            env.file("notes.txt", b"name,email\nAda,ada@example.org\n"),
            &["not a SQLite database"],
        ),
        (
            env.file("truncated.sqlite", &good[..good.len() / 2]),
            &["integrity", "damaged", "malformed"],
        ),
        (
            env.file("noise.sqlite", &header_then_noise),
            &["integrity", "damaged", "malformed", "not a database"],
        ),
    ];
    for (path, words) in &cases {
        let before = fs::read(path).unwrap();
        for args in [
            vec!["list"],
            vec!["show", "1"],
            vec!["rotate", "1", "--yes"],
            vec!["revoke", "1", "--yes"],
        ] {
            let out = env.run(&[&args[..], &["--store", &sqlite(path)]].concat(), None);
            assert_fails(&out, 1, words, &format!("{args:?} on {}", path.display()));
            assert_eq!(
                fs::read(path).unwrap(),
                before,
                "{} changed",
                path.display()
            );
        }
    }
    // A directory, and a directory where the default store should be.
    let out = env.run(&["list", "--store", &sqlite(env.dir.path())], None);
    assert_fails(&out, 1, &["is a directory"], "directory as store");
    fs::create_dir_all(env.path("data/contacts.sqlite")).unwrap();
    let out = env.run(&["list"], None);
    assert_fails(&out, 1, &["is a directory"], "directory as default store");
    // Nothing left behind next to the bad files (no -journal, no -wal).
    let mut names: Vec<String> = fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "data",
            "empty.sqlite",
            "good.sqlite",
            "noise.sqlite",
            "notes.txt",
            "random.sqlite",
            "truncated.sqlite"
        ]
    );
}

/// chmod 400: viewing works, every write is refused with exit 5 and the file is unchanged,
/// even for root (who may write any file: civikey honours the mode itself).
#[test]
fn read_only_store_file_views_but_refuses_writes() {
    let env = Env::new();
    let path = env.good_store("ro.sqlite");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
    let before = fs::read(&path).unwrap();
    let store = sqlite(&path);

    let out = env.run(&["list", "--store", &store], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Person 2"));
    let out = env.run(&["show", "2", "--store", &store], None);
    assert!(out.status.success(), "{}", stderr(&out));

    for args in [
        vec!["rotate", "2", "--yes"],
        vec!["revoke", "2", "--yes"],
        vec!["import", "tests/csv/messy.csv"],
    ] {
        let out = env.run(&[&args[..], &["--store", &store]].concat(), None);
        assert_fails(&out, 5, &["read-only"], &format!("{args:?}"));
        assert_eq!(
            fs::read(&path).unwrap(),
            before,
            "{args:?} changed the file"
        );
    }
    // Assign reads the key from stdin; the refusal comes before anything is written.
    let mut child = Command::new(env!("CARGO_BIN_EXE_civikey"))
        .args(["assign", "2", "--key-stdin", "--store", &store])
        .env("CIVIKEY_DATA_DIR", env.path("data"))
        .env_remove("CIVIKEY_CONFIG")
        .env("HOME", env.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(b"GivenKeyGivenKeyGivenKeyGiven001\n");
    }
    let out = child.wait_with_output().unwrap();
    assert_fails(&out, 5, &["read-only"], "assign");
    assert_eq!(fs::read(&path).unwrap(), before, "assign changed the file");
}

#[test]
fn config_with_wrong_types_exits_1_with_its_line() {
    let env = Env::new();
    for (text, line, words) in [
        (
            "[profiles.api]\nkind = \"civicrm-rest\"\naddress = \"https://crm.example.org\"\napi_key_env = \"K\"\ntimeout_seconds = \"ten\"\n",
            5,
            "invalid type: string \"ten\"",
        ),
        ("[profiles.db]\nkind = \"mysql\"\naddress = \"mysql://u@h/db\"\ntls = \"yes\"\n", 4, "expected true, false or \"off\""),
        ("profiles = 3\n", 1, "invalid type: integer"),
        ("default_profile = [1, 2]\n", 1, "invalid type: sequence"),
        ("[profiles.a]\nkind = 7\n", 2, "invalid type: integer"),
        ("[profiles.a\nkind = \"sqlite\"\n", 1, "line 1"),
        ("\u{0}\u{1}binary\u{ff}", 1, "line 1"),
    ] {
        let config = env.file("config.toml", text.as_bytes());
        for args in [vec!["list"], vec!["profiles"]] {
            let out = env.run(&args, Some(&config));
            assert_fails(&out, 1, &[words], &format!("{args:?} with {text:?}"));
            assert!(
                stderr(&out).contains(&format!("line {line}")),
                "{text:?}: {}",
                stderr(&out)
            );
            assert!(stderr(&out).contains("config.toml"), "{}", stderr(&out));
            assert_eq!(fs::read(&config).unwrap(), text.as_bytes());
        }
    }
    // Not text at all: invalid UTF-8.
    let config = env.file("config.toml", b"kind = \"\xff\xfe\"\n");
    let out = env.run(&["list"], Some(&config));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("config.toml"), "{}", stderr(&out));
}

/// A REST profile against the fake site: the answers a broken site or proxy gives.
#[test]
fn bad_rest_answers_exit_1_with_a_clear_message() {
    let env = Env::new();
    let server = FakeCivi::start(sample());
    env.file("admin.key", format!("{ADMIN_KEY}\n").as_bytes());
    env.file("site.key", format!("{SITE_KEY}\n").as_bytes());
    let config = env.file(
        "config.toml",
        format!(
            "default_profile = \"site\"\n[profiles.site]\nkind = \"civicrm-rest\"\naddress = \"{}\"\n\
             api_key_file = \"admin.key\"\nsite_key_file = \"site.key\"\ntimeout_seconds = 20\n",
            server.url()
        )
        .as_bytes(),
    );
    let out = env.run(&["show", "2"], Some(&config));
    assert!(out.status.success(), "the profile works: {}", stderr(&out));
    let key_before = server.key_of(2);
    assert!(key_before.is_some());

    for (mode, words) in [
        (Mode::Html, "web page instead of API data"),
        (Mode::TruncatedJson, "truncated JSON"),
        (Mode::Huge, "larger than 8 MiB"),
    ] {
        server.set_mode(mode.clone());
        for args in [
            vec!["list"],
            vec!["show", "2"],
            vec!["rotate", "2", "--yes"],
        ] {
            let out = env.run(&args, Some(&config));
            assert_fails(&out, 1, &[words], &format!("{mode:?} {args:?}"));
            assert!(!stderr(&out).contains(ADMIN_KEY) && !stderr(&out).contains(SITE_KEY));
        }
    }
    server.set_mode(Mode::Normal);
    assert_eq!(
        server.key_of(2),
        key_before,
        "no failed call changed the key"
    );
}

/// A cv that prints an HTML fatal error instead of JSON.
#[test]
fn cv_printing_garbage_exits_1() {
    let env = Env::new();
    let site = env.path("site");
    fs::create_dir(&site).unwrap();
    let data = env.file(
        "data.json",
        br#"{"contacts": [{"id": 1, "contact_type": "Individual", "display_name": "A", "sort_name": "A", "is_deleted": false, "emails": [], "api_key": null, "uf_matches": []}], "seen_keys": []}"#,
    );
    let fake = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake-cv/cv");
    let wrapper = env.path("cv");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexport FAKE_CV_DATA='{}' FAKE_CV_SITE='{}' FAKE_CV_MODE=garbage\nexec '{}' \"$@\"\n",
            data.display(),
            site.display(),
            fake.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o700)).unwrap();
    let config = env.file(
        "config.toml",
        format!(
            "[profiles.cv]\nkind = \"cv\"\naddress = \"cv:{}\"\ncv_binary = \"{}\"\n",
            site.display(),
            wrapper.display()
        )
        .as_bytes(),
    );
    let before = fs::read(&data).unwrap();
    for args in [
        vec!["list"],
        vec!["show", "1"],
        vec!["rotate", "1", "--yes"],
    ] {
        let out = env.run(&[&args[..], &["--profile", "cv"]].concat(), Some(&config));
        assert_fails(&out, 1, &["did not print JSON"], &format!("{args:?}"));
        assert!(!stderr(&out).contains("<html>"), "{}", stderr(&out));
    }
    assert_eq!(fs::read(&data).unwrap(), before);
}

/// A site that redirects (a moved site, or a hostile one) gets no second request: the
/// credentials are never resent to the address it names, and the operator is told the fix.
#[test]
fn a_redirect_is_not_followed_and_credentials_stay_home() {
    use civikey::secret::Secret;
    use civikey::store::rest::RestOptions;
    use civikey::store::rest::RestStore;
    use civikey::store::{ContactStore, StoreError};
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    let elsewhere = TcpListener::bind("127.0.0.1:0").unwrap();
    let elsewhere_url = format!("http://{}/steal", elsewhere.local_addr().unwrap());
    elsewhere.set_nonblocking(true).unwrap();
    let site = TcpListener::bind("127.0.0.1:0").unwrap();
    let site_url = format!("http://{}", site.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&requests);
    std::thread::spawn(move || {
        for stream in site.incoming() {
            let Ok(mut stream) = stream else { return };
            seen.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = write!(
                stream,
                "HTTP/1.1 302 Found\r\nLocation: {elsewhere_url}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    let mut store = RestStore::connect(&RestOptions {
        base_url: site_url,
        api_key: ApiKey::from_store(ADMIN_KEY.into()),
        site_key: Some(Secret::new(SITE_KEY.into())),
        timeout: Duration::from_secs(10),
    })
    .unwrap();
    let err = store.contact(1).unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("redirected (HTTP 302)"), "{text}");
    assert!(text.contains("/steal"), "names where it pointed: {text}");
    assert!(
        !text.contains(ADMIN_KEY) && !text.contains(SITE_KEY),
        "{text}"
    );
    assert!(requests.load(Ordering::SeqCst) >= 1);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        elsewhere.accept().is_err(),
        "the redirect target was contacted"
    );
}

/// A MySQL host that is not this machine, with no `tls` in the profile (or a bare
/// `--store`): refused at once, before any connection. 0.0.0.0 is not loopback by its
/// text, yet a connection to it stays on this machine (Linux routes it to the local
/// host), so no test here ever sends a packet elsewhere.
/// With `tls = "off"` it is tried, and every run says that TLS is off.
#[test]
fn remote_mysql_without_tls_is_refused_before_connecting() {
    let env = Env::new();
    for host in ["db.example.invalid", "0.0.0.0"] {
        let config = env.file(
            "config.toml",
            format!("[profiles.db]\nkind = \"mysql\"\naddress = \"mysql://civikey@{host}/civicrm\"\ntimeout_seconds = 30\n").as_bytes(),
        );
        for args in [
            vec!["list", "--profile", "db"],
            vec![
                "list",
                "--store",
                &format!("mysql://civikey@{host}/civicrm"),
            ],
        ] {
            let started = std::time::Instant::now();
            let out = env.run(&args, Some(&config));
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "{args:?}: it tried to connect"
            );
            assert_fails(&out, 1, &["only over verified TLS"], &format!("{args:?}"));
            let err = stderr(&out);
            assert!(
                err.contains("nothing was sent") && err.contains("tls = \"off\""),
                "{err}"
            );
        }
    }
    let config = env.file(
        "config.toml",
        b"[profiles.db]\nkind = \"mysql\"\naddress = \"mysql://civikey@0.0.0.0:1/civicrm\"\ntls = \"off\"\ntimeout_seconds = 1\n",
    );
    for _ in 0..2 {
        let out = env.run(&["list", "--profile", "db"], Some(&config));
        let err = stderr(&out);
        assert_ne!(out.status.code(), Some(0), "{err}");
        assert!(
            err.starts_with("warning: TLS is off for mysql://civikey@0.0.0.0:1/civicrm"),
            "{err}"
        );
    }
}

/// A database that is not civikey's and is not CiviCRM-shaped (the columns civikey reads
/// are missing): refused by every command, and not one byte of it changes (civikey's
/// search tables and triggers are never added to it).
#[test]
fn foreign_sqlite_file_is_never_modified() {
    let env = Env::new();
    let path = env.path("foreign.sqlite");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE civicrm_contact (id INTEGER PRIMARY KEY, display_name TEXT, sort_name TEXT, note TEXT);
             INSERT INTO civicrm_contact VALUES (1, 'Ada', 'Lovelace, Ada', 'keep me');",
        )
        .unwrap();
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let before = fs::read(&path).unwrap();
    for args in [
        vec!["list"],
        vec!["show", "1"],
        vec!["rotate", "1", "--yes"],
    ] {
        let out = env.run(&[&args[..], &["--store", &sqlite(&path)]].concat(), None);
        assert_fails(
            &out,
            1,
            &["not a civikey or CiviCRM store"],
            &format!("{args:?}"),
        );
        assert!(stderr(&out).contains("contact_type"), "{}", stderr(&out));
        assert_eq!(
            fs::read(&path).unwrap(),
            before,
            "{args:?} changed the file"
        );
        assert!(!env.path("foreign.sqlite-journal").exists());
    }
}

/// `--store sqlite:FIFO` is refused at once instead of waiting for a writer.
#[test]
fn a_fifo_as_store_is_refused_without_hanging() {
    let env = Env::new();
    let fifo = env.path("fifo.sqlite");
    assert!(Command::new("mkfifo")
        .args(["-m", "600"])
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let mut child = binary::civikey(env.dir.path())
        .args(["list", "--store", &sqlite(&fifo)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("civikey hung on a FIFO store");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert_fails(&out, 1, &["not a regular file"], "FIFO store");
}

/// A rotated-away or revoked key leaves no trace in the store file's free space
/// (secure_delete, also while the store is made): grepped in the file's raw bytes.
#[test]
fn a_rotated_away_key_is_gone_from_the_store_file() {
    let env = Env::new();
    let path = env.path("keys.sqlite");
    let key_of = |i: i64| format!("OldKeyOldKeyOldKeyOldKey{i:08}");
    let contacts = (1..=300).map(|i| SeedContact {
        id: Some(i),
        contact_type: "Individual".into(),
        display_name: format!("Person {i}"),
        sort_name: format!("{i}, Person"),
        api_key: Some(ApiKey::from_store(key_of(i))),
        ..Default::default()
    });
    SqliteStore::create(&path, contacts, &mut |_| {}).unwrap();
    let contains = |key: &[u8]| {
        fs::read(&path)
            .unwrap()
            .windows(key.len())
            .any(|w| w == key)
    };
    assert!(contains(key_of(2).as_bytes()), "the fixture holds the key");
    let out = env.run(&["rotate", "2", "--yes", "--store", &sqlite(&path)], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let new = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(new.len(), 32, "{new}");
    assert!(contains(new.as_bytes()), "the new key is stored");
    // Revoked mid-list: its index entry's page gets nothing in its place (the NULL entry
    // goes to the first page), so only zeroing removes the key from there.
    let out = env.run(&["revoke", "150", "--yes", "--store", &sqlite(&path)], None);
    assert!(out.status.success(), "{}", stderr(&out));
    for gone in [2, 150] {
        assert!(
            !contains(key_of(gone).as_bytes()),
            "contact {gone}'s old key is still in the file's bytes"
        );
    }
    assert!(contains(key_of(4).as_bytes()));
}
