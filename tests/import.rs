//! `civikey import`: a messy CiviCRM export into the SQLite store, through the library and
//! through the binary as a script sees it.

mod binary;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use civikey::import::{import_csv, ImportError, ImportReport};
use civikey::seed::sample_contacts;
use civikey::store::mysql::MysqlOptions;
use civikey::store::mysql::MysqlTls;
use civikey::store::sqlite::SqliteStore;
use civikey::store::StoreSpec;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/csv")
        .join(name)
}

fn new_store(dir: &tempfile::TempDir) -> (PathBuf, SqliteStore) {
    let path = dir.path().join("data/contacts.sqlite");
    let store = SqliteStore::create(&path, std::iter::empty(), &mut |_| {}).unwrap();
    (path, store)
}

fn import_file(store: &mut SqliteStore, name: &str) -> Result<ImportReport, ImportError> {
    import_csv(store, fs::File::open(fixture(name)).unwrap(), &mut |_| {
        panic!("no progress under 10,000 rows")
    })
}

/// (id, contact_type, display_name, sort_name, first_name, last_name, is_deleted, api_key, primary email)
type Row = (
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    bool,
    Option<String>,
    Option<String>,
);

fn rows(path: &Path) -> Vec<Row> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT c.id, c.contact_type, c.display_name, c.sort_name, c.first_name, c.last_name,
                    c.is_deleted, c.api_key,
                    (SELECT group_concat(e.email, '|') FROM civicrm_email e
                      WHERE e.contact_id = c.id AND e.is_primary = 1)
               FROM civicrm_contact c ORDER BY c.id",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
            r.get(8)?,
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn s(text: &str) -> String {
    text.to_string()
}

fn some(text: &str) -> Option<String> {
    Some(text.to_string())
}

fn after_messy() -> Vec<Row> {
    vec![
        (
            101,
            s("Individual"),
            s("Ada Lovelace"),
            s("Lovelace, Ada"),
            some("Ada"),
            some("Lovelace"),
            false,
            None,
            some("ada@example.org"),
        ),
        (
            103,
            s("Individual"),
            s("Grace \"Amazing\"\r\nHopper"),
            s("Hopper, Grace"),
            some("Grace"),
            some("Hopper"),
            false,
            None,
            some("grace@example.org"),
        ),
        (
            104,
            s("Organization"),
            s("\x1b[2JEvil\x1b]52;c;aGk=\x07 Corp"),
            s("\x1b[2JEvil\x1b]52;c;aGk=\x07 Corp"),
            None,
            None,
            false,
            None,
            some("evil@example.org"),
        ),
        (
            107,
            s("Household"),
            s("Smith Family"),
            s("Smith Family"),
            None,
            None,
            true,
            None,
            None,
        ),
        (
            108,
            s("Individual"),
            s("Fred"),
            s("Fred"),
            some("Fred"),
            None,
            true,
            None,
            some("fred@example.org"),
        ),
        (
            109,
            s("Individual"),
            s("Short Row"),
            s("Short Row"),
            None,
            None,
            false,
            None,
            None,
        ),
        (
            202,
            s("Organization"),
            s("Acme, Inc."),
            s("Acme, Inc."),
            None,
            None,
            false,
            None,
            some("info@acme.example"),
        ),
    ]
}

const MESSY_REPORT: &str = "\
14 rows: 7 added, 0 updated, 0 unchanged, 7 skipped
the API key column was ignored: civikey never imports keys
columns not read: \"Nickname\", \"Phone\"
line 7: skipped: bad Contact ID \"abc\": it must be a whole number from 1 to 4294967295
line 8: skipped: Contact ID 101 already appeared on line 2; the first row with an id wins
line 10: skipped: unknown Contact Type \"\u{241B}[31mAlien\": it must be Individual, Organization or Household
line 11: skipped: no name: Display Name, Sort Name and the name columns are all empty
line 16: skipped: bad Contact ID \"0\": it must be a whole number from 1 to 4294967295
line 17: skipped: bad Contact ID \"4294967296\": it must be a whole number from 1 to 4294967295
line 18: skipped: bad Is Deleted \"maybe\": it must be 1/0, yes/no or true/false
";

#[test]
fn messy_export_is_imported_raw_and_reported_inert() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut store) = new_store(&dir);
    let report = import_file(&mut store, "messy.csv").unwrap();
    drop(store);
    assert_eq!(report.to_string(), MESSY_REPORT);
    assert_eq!(
        (
            report.rows,
            report.added,
            report.updated,
            report.unchanged,
            report.skipped
        ),
        (14, 7, 0, 0, 7)
    );
    assert!(report.api_key_column_ignored);
    assert!(!report.to_string().contains('\x1b'));
    assert_eq!(rows(&path), after_messy());
    let bytes = fs::read(&path).unwrap();
    assert!(
        !bytes.windows(21).any(|w| w == b"SHOULDNEVERBEIMPORTED"),
        "a key from the CSV reached the store file"
    );
}

#[test]
fn report_json_shape() {
    let dir = tempfile::tempdir().unwrap();
    let (_path, mut store) = new_store(&dir);
    let doc = import_file(&mut store, "messy.csv").unwrap().to_json();
    assert_eq!(doc["rows"], 14);
    assert_eq!(doc["added"], 7);
    assert_eq!(doc["updated"], 0);
    assert_eq!(doc["unchanged"], 0);
    assert_eq!(doc["skipped"], 7);
    assert_eq!(doc["skipped_rows_not_listed"], 0);
    assert_eq!(doc["api_key_column_ignored"], true);
    assert_eq!(
        doc["ignored_columns"],
        serde_json::json!(["Nickname", "Phone"])
    );
    assert_eq!(doc["skipped_rows"][2]["line"], 10);
    assert_eq!(
        doc["skipped_rows"][2]["reason"],
        "unknown Contact Type \"\u{241B}[31mAlien\": it must be Individual, Organization or Household"
    );
    assert!(!doc.to_string().contains("\\u001b"));
}

#[test]
fn second_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut store) = new_store(&dir);
    import_file(&mut store, "messy.csv").unwrap();
    let again = import_file(&mut store, "messy.csv").unwrap();
    drop(store);
    assert_eq!(
        (
            again.rows,
            again.added,
            again.updated,
            again.unchanged,
            again.skipped
        ),
        (14, 0, 0, 7, 7)
    );
    assert_eq!(again.skipped_rows.len(), 7);
    assert_eq!(rows(&path), after_messy());
    let emails: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM civicrm_email", [], |r| r.get(0))
        .unwrap();
    assert_eq!(emails, 5, "a re-run must not add email rows");
}

#[test]
fn update_changes_what_the_file_says_and_erases_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut store) = new_store(&dir);
    import_file(&mut store, "messy.csv").unwrap();
    let report = import_file(&mut store, "update.csv").unwrap();
    assert_eq!(
        report.to_string(),
        "5 rows: 1 added, 3 updated, 1 unchanged, 0 skipped\n"
    );
    let again = import_file(&mut store, "update.csv").unwrap();
    assert_eq!((again.unchanged, again.updated, again.added), (5, 0, 0));
    drop(store);
    let mut expected = after_messy();
    // 101: new names; first/last (no such columns) and email (same) kept.
    expected[0].2 = s("Ada King");
    expected[0].3 = s("King, Ada");
    // 103: only the email changed; the empty Display Name cell kept the stored name.
    expected[1].8 = some("grace@navy.example");
    // 108: restored from the trash.
    expected[4].6 = false;
    expected.insert(
        6,
        (
            111,
            s("Individual"),
            s("New Person"),
            s("Person, New"),
            None,
            None,
            false,
            None,
            some("new@example.org"),
        ),
    );
    assert_eq!(rows(&path), expected);
}

#[test]
fn update_never_touches_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/contacts.sqlite");
    let mut store = SqliteStore::create(&path, sample_contacts().unwrap(), &mut |_| {}).unwrap();
    let key_of_101 = |path: &Path| -> Option<String> {
        rusqlite::Connection::open(path)
            .unwrap()
            .query_row(
                "SELECT api_key FROM civicrm_contact WHERE id = 101",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    let before = key_of_101(&path);
    assert!(before.is_some());
    let csv = "Contact ID,Display Name,API Key\n101,Ada King,ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ\n";
    let report = import_csv(&mut store, csv.as_bytes(), &mut |_| {}).unwrap();
    assert_eq!((report.updated, report.api_key_column_ignored), (1, true));
    drop(store);
    assert_eq!(key_of_101(&path), before);
}

#[test]
fn a_failure_midway_leaves_the_store_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut store) = new_store(&dir);
    import_file(&mut store, "messy.csv").unwrap();
    let huge = "x".repeat(70 * 1024);
    let csv =
        format!("Contact ID,Display Name,Notes\n301,Fine Person,\n101,Changed,\n302,Big,{huge}\n");
    let err = import_csv(&mut store, csv.as_bytes(), &mut |_| {}).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 4: column 3 (\"Notes\") holds more than 64 KiB; civikey refuses data this large (is this a contact export?)"
    );
    drop(store);
    assert_eq!(rows(&path), after_messy());
}

#[test]
fn a_row_over_the_limit_stops_before_it_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut store) = new_store(&dir);
    // One quoted field that never ends: the parser would buffer it all. The 64 MiB cap
    // turns a failure to stop into a failed test, not an exhausted machine.
    let endless = "Contact ID,Display Name\n1,\""
        .as_bytes()
        .chain(std::io::repeat(b'a').take(64 << 20));
    let err = import_csv(&mut store, endless, &mut |_| {}).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("line 2: a row longer than 1024 KiB"),
        "{err}"
    );
    drop(store);
    assert!(rows(&path).is_empty());
}

#[test]
fn files_that_are_not_exports_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut store) = new_store(&dir);
    let cases: [(&[u8], &str); 5] = [
        (&fs::read(fixture("not-csv.json")).unwrap(), "no \"Contact ID\" column (the first line starts \"[{\"id\": 1\", \" \"display_name\": \"Ada\"}]\")"),
        (b"", "the file is empty or its first line is blank; the first line must name the columns"),
        (b"\x89PNG\0\0\0\x0dIHDR\0\0\x01\0", "its first line holds NUL bytes, so it is a binary file, not CSV"),
        (b"Contact ID,Nickname\n1,x\n", "no name column (\"Display Name\", \"Sort Name\", \"First Name\", \"Last Name\", \"Organization Name\" or \"Household Name\")"),
        (b"Contact ID,Display Name,ID\n1,x,1\n", "columns 1 and 3 both mean \"Contact ID\"; remove one"),
    ];
    for (bytes, why) in cases {
        let err = import_csv(&mut store, bytes, &mut |_| {}).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("this is not a CiviCRM contact export: {why}")
        );
    }
    let hostile = import_csv(&mut store, &b"\x1b]52;c;aGk=\x07,Name\n"[..], &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        !hostile.contains('\x1b') && hostile.contains("\u{241B}]52"),
        "{hostile}"
    );
    drop(store);
    assert!(rows(&path).is_empty());
}

#[test]
fn progress_every_ten_thousand_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut store) = new_store(&dir);
    let mut csv = String::from("Contact ID,First Name,Last Name\n");
    for id in 1..=25_000 {
        csv.push_str(&format!("{id},First{id},Last{id}\n"));
    }
    let mut heard = Vec::new();
    let report = import_csv(&mut store, csv.as_bytes(), &mut |n| heard.push(n)).unwrap();
    assert_eq!(heard, [10_000, 20_000]);
    assert_eq!(report.added, 25_000);
    drop(store);
    assert_eq!(rows(&path)[24_999].2, "First25000 Last25000");
}

#[test]
fn read_only_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, store) = new_store(&dir);
    drop(store);
    let mut store = SqliteStore::open_with(&path, true).unwrap();
    let err = import_file(&mut store, "messy.csv").unwrap_err();
    assert!(
        err.to_string().starts_with("the store is read-only"),
        "{err}"
    );
}

#[test]
fn only_sqlite_stores_take_an_import() {
    let spec = StoreSpec::Mysql(MysqlOptions {
        address: "mysql://civikey@db.example.org/civicrm".into(),
        password: None,
        table_prefix: String::new(),
        tls: MysqlTls::Auto,
        tls_ca_file: None,
        timeout: Duration::from_secs(1),
    });
    let Err(failure) = civikey::import::command(&spec, &fixture("messy.csv"), false) else {
        panic!("import into MySQL was accepted");
    };
    assert_eq!(failure.code, 2);
    assert!(
        failure
            .message
            .starts_with("import writes only to a local SQLite store"),
        "{}",
        failure.message
    );
}

// --- the binary ---

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("data/imported.sqlite")
    }

    fn address(&self) -> String {
        format!("sqlite:{}", self.store().display())
    }

    fn run(&self, args: &[&str]) -> Output {
        binary::civikey(self.dir.path())
            .args(args)
            .output()
            .unwrap()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn assert_clean(out: &Output) {
    for stream in [&out.stdout, &out.stderr] {
        assert!(!stream.contains(&0x1b), "raw ESC printed");
        assert!(
            !stream.windows(21).any(|w| w == b"SHOULDNEVERBEIMPORTED"),
            "a key from the CSV was printed"
        );
    }
}

#[test]
fn binary_imports_twice_and_reports() {
    let env = Env::new();
    let file = fixture("messy.csv");
    let file = file.to_str().unwrap();
    let address = env.address();

    let out = env.run(&["import", file, "--store", &address]);
    assert_clean(&out);
    // Rows were skipped: exit 1, though the others were imported.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let mut expected = format!(
        "civikey: imported {file} into {address}\ncivikey: (a new, empty store was created first)\n"
    );
    for line in MESSY_REPORT.lines() {
        expected.push_str(&format!("civikey: {line}\n"));
    }
    expected.push_str("civikey: 7 rows skipped (the others were imported)\n");
    assert_eq!(text(&out.stderr), expected);
    assert_eq!(rows(&env.store()), after_messy());

    let out = env.run(&["import", file, "--store", &address, "--json"]);
    assert_clean(&out);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "civikey: 7 rows skipped (the others were imported)\n"
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            &doc["added"],
            &doc["updated"],
            &doc["unchanged"],
            &doc["skipped"]
        ),
        (&0.into(), &0.into(), &7.into(), &7.into())
    );
    assert_eq!(doc["store_created"], false);
    assert_eq!(rows(&env.store()), after_messy());

    // The imported contacts are what `list` shows: inert bytes, the exact text once parsed.
    let out = env.run(&["list", "--store", &address, "--search", "104", "--json"]);
    assert_clean(&out);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        list[0]["display_name"],
        "\u{1B}[2JEvil\u{1B}]52;c;aGk=\u{7} Corp"
    );
}

#[test]
fn binary_errors_and_exit_codes() {
    let env = Env::new();
    let address = env.address();

    // Not an export: exit 1, and the store made for the import is not left behind.
    let not_csv = fixture("not-csv.json");
    let out = env.run(&["import", not_csv.to_str().unwrap(), "--store", &address]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr)
            .contains("failed, nothing was written: this is not a CiviCRM contact export"),
        "{}",
        text(&out.stderr)
    );
    assert!(!env.store().exists());

    let missing = env.dir.path().join("missing.csv");
    let out = env.run(&["import", missing.to_str().unwrap(), "--store", &address]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("civikey: cannot read "));
    assert!(!env.store().exists());

    // Read-only: refused (5), like every other write.
    let messy = fixture("messy.csv");
    let messy = messy.to_str().unwrap();
    assert_eq!(
        env.run(&["import", messy, "--store", &address])
            .status
            .code(),
        Some(1),
        "imported, with rows skipped"
    );
    let out = env.run(&["import", messy, "--store", &address, "--read-only"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("read-only"));

    // Not a SQLite store: a usage error (2).
    let out = env.run(&[
        "import",
        messy,
        "--store",
        "mysql://civikey@db.example.org/civicrm",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());

    // No --store: the default store is started empty, not from the sample.
    let out = env.run(&["import", messy]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(
        rows(&env.dir.path().join("data/contacts.sqlite")),
        after_messy()
    );
}

#[test]
fn line_numbers_match_an_editor() {
    // LF with blank lines and a quoted line break; lone CR (old Mac); CRLF with both.
    let files = [
        "Contact ID,Display Name\n\n1,\"two\nlines\"\n\n\nx,Bad\n2,\"a\n\nb\"\ny,Bad\n",
        "Contact ID,Display Name\r\r1,\"two\rlines\"\r\r\rx,Bad\r2,\"a\r\rb\"\ry,Bad",
        "Contact ID,Display Name\r\n\r\n1,\"two\r\nlines\"\r\n\r\n\r\nx,Bad\r\n2,\"a\r\n\r\nb\"\r\ny,Bad\r\n",
    ];
    for csv in files {
        let dir = tempfile::tempdir().unwrap();
        let (_path, mut store) = new_store(&dir);
        let report = import_csv(&mut store, csv.as_bytes(), &mut |_| {}).unwrap();
        let lines: Vec<u64> = report.skipped_rows.iter().map(|s| s.line).collect();
        assert_eq!(lines, [7, 11], "{csv:?}");
        assert_eq!(report.added, 2);
    }
}

#[test]
fn shifted_rows_are_skipped_and_semicolons_or_tabs_are_read_as_separators() {
    let env = Env::new();
    let address = env.address();
    let write = |name: &str, body: &str| {
        let path = env.dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        path.to_str().unwrap().to_string()
    };
    // "Smith, John" unquoted: three cells under two headers, every cell shifted.
    let shifted = write(
        "shifted.csv",
        "Contact ID,Display Name\n6,Smith, John\n7,Ada Lovelace\n",
    );
    let out = env.run(&["import", &shifted, "--store", &address]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("line 2: skipped: 3 cells but the header names 2 columns"),
        "{err}"
    );
    let names: Vec<String> = rows(&env.store())
        .iter()
        .map(|r| format!("{r:?}"))
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].contains("Ada Lovelace"), "{names:?}");
    // A semicolon (many locales' spreadsheets) and a tab export: read, and said so.
    for (name, body, says) in [
        (
            "semi.csv",
            "Contact ID;Display Name;Email\n8;Grace Hopper;g@example.org\n",
            "cells separated by semicolons",
        ),
        (
            "tabs.tsv",
            "Contact ID\tDisplay Name\n9\tAlan Turing\n",
            "cells separated by tabs",
        ),
    ] {
        let file = write(name, body);
        let out = env.run(&["import", &file, "--store", &address]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains(says), "{}", text(&out.stderr));
    }
    let all = format!("{:?}", rows(&env.store()));
    assert!(
        all.contains("Grace Hopper") && all.contains("Alan Turing"),
        "{all}"
    );
}
