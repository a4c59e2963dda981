//! Property tests of the CSV import reader: arbitrary bytes and mutations of
//! tests/csv/messy.csv, imported into one scratch store, never panic, report inert text,
//! and leave a store that opens, passes its integrity check and still searches.

mod proptest_support;

use std::fs;
use std::path::Path;

use civikey::import::{import_csv, ImportError};
use civikey::store::sqlite::SqliteStore;
use civikey::store::{ContactStore, Query};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use proptest_support::{dangerous, hostile_text, mutated, run, scratch_dir};

fn messy() -> Vec<u8> {
    fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/csv/messy.csv")).unwrap()
}

/// One import into the store at `path`, then the store checked as a fresh open sees it.
fn check(path: &Path, bytes: &[u8]) -> Result<(), TestCaseError> {
    let mut store = SqliteStore::open(path).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let before = store.search(&Query::new("", 1000)).unwrap().contacts.len();
    match import_csv(&mut store, bytes, &mut |_| {}) {
        Ok(report) => {
            let shown = report.to_string() + &report.to_json().to_string();
            prop_assert!(
                !shown.chars().any(|c| dangerous(c) && c != '\n'),
                "{shown:?}"
            );
            prop_assert_eq!(
                report.rows,
                report.added + report.updated + report.unchanged + report.skipped
            );
        }
        Err(e) => {
            let shown = e.to_string();
            prop_assert!(!shown.chars().any(dangerous), "{shown:?}");
            // One transaction: a failed import added nothing.
            let after = store.search(&Query::new("", 1000)).unwrap().contacts.len();
            prop_assert_eq!(
                before,
                after,
                "a failed import changed the store: {}",
                shown
            );
            prop_assert!(
                !matches!(e, ImportError::Store(_)),
                "store error: {}",
                shown
            );
        }
    }
    drop(store);
    // The store is still a healthy civikey store: open runs PRAGMA quick_check and looks for
    // the CiviCRM tables.
    let mut store = SqliteStore::open(path).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let page = store
        .search(&Query::new("a", 50))
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    for c in &page.contacts {
        prop_assert!(!c.display_name.as_str().chars().any(dangerous));
        store
            .contact(c.id)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
    Ok(())
}

fn scratch_store() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = scratch_dir();
    let path = dir.path().join("store.sqlite");
    SqliteStore::create(&path, std::iter::empty(), &mut |_| {}).unwrap();
    (dir, path)
}

#[test]
fn arbitrary_bytes_never_panic_and_leave_a_valid_store() {
    let (_dir, path) = scratch_store();
    run(
        "import_bytes",
        128,
        prop::collection::vec(any::<u8>(), 0..600),
        |bytes| check(&path, &bytes),
    );
}

#[test]
fn mutated_exports_never_panic_and_leave_a_valid_store() {
    let (_dir, path) = scratch_store();
    run("import_mutated", 128, mutated(messy()), |bytes| {
        check(&path, &bytes)
    });
}

/// Well-formed exports whose cells are hostile text: imported or skipped, never a panic.
#[test]
fn hostile_cells_never_panic_and_leave_a_valid_store() {
    let (_dir, path) = scratch_store();
    let header = "Contact ID,Display Name,Sort Name,First Name,Last Name,Contact Type,Email,Is Deleted,Organization Name,Household Name,API Key\n";
    let cell = prop_oneof![
        3 => hostile_text(12),
        2 => (0u64..50).prop_map(|n| n.to_string()),
        1 => prop::sample::select(vec!["Individual", "Organization", "Household", "1", "0", "yes", ""]).prop_map(String::from),
    ];
    let row = prop::collection::vec(cell, 0..12);
    run(
        "import_cells",
        128,
        prop::collection::vec(row, 0..8),
        |rows| {
            let mut csv = csv::WriterBuilder::new()
                .flexible(true)
                .from_writer(Vec::new());
            for row in rows {
                csv.write_record(&row).unwrap();
            }
            let body = csv.into_inner().unwrap();
            let mut bytes = header.as_bytes().to_vec();
            bytes.extend(body);
            check(&path, &bytes)
        },
    );
}
