//! Bulk rotation from the CLI: keys to a private file, and an interruption midway leaves
//! every contact either rotated (in the out file and the journal) or untouched.

mod binary;

use std::collections::HashMap;
use std::fs;
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

fn out_rows(path: &Path) -> Vec<(i64, String, String)> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].parse().unwrap(), r[1].to_string(), r[2].to_string())
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
