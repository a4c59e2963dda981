//! Bulk rotation: many contacts, one pass, each through the full rotation workflow, the
//! new keys written to a private CSV file the operator named (never all shown on screen).
//!
//! Interruption safety: the stop flag (Ctrl-C, SIGTERM, SIGHUP) is checked between
//! contacts, never inside one, and a contact's line is written and synced to the out
//! file right after its rotation is read back. So each contact is either rotated, in the
//! out file and in the journal, or untouched. (A SIGKILL or power loss between the store
//! write and the file write is the one gap: the journal then shows the rotation as done
//! and the key is lost; rotate that contact again.)

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::audit::Journal;
use crate::key::{ApiKey, KeySource};
use crate::rotation::{self, Expectation, NewKey, RotationError};
use crate::sanitize::SafeText;
use crate::store::{ContactId, ContactStore, StoreError};

/// How one contact's rotation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BulkOutcome {
    Done,
    Conflict,
    Failed(String),
    /// Not attempted: the run was interrupted first.
    Skipped,
}

impl BulkOutcome {
    pub fn label(&self) -> &'static str {
        match self {
            BulkOutcome::Done => "done",
            BulkOutcome::Conflict => "conflict",
            BulkOutcome::Failed(_) => "failed",
            BulkOutcome::Skipped => "skipped",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BulkResult {
    pub id: ContactId,
    pub name: SafeText,
    pub outcome: BulkOutcome,
}

/// The out file: created new (never overwritten), 0600, one synced line per rotated contact.
pub struct OutFile {
    file: File,
}

impl OutFile {
    pub fn create(path: &Path) -> Result<Self, String> {
        crate::fsperm::write_new_private_file(path, b"contact_id,display_name,api_key\n")?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        Ok(OutFile { file })
    }

    fn append(&mut self, id: ContactId, name: &SafeText, key: &ApiKey) -> std::io::Result<()> {
        let mut line = zeroize::Zeroizing::new(Vec::new());
        {
            let mut writer = csv::Writer::from_writer(&mut *line);
            writer.write_record([id.to_string().as_str(), name.as_str(), key.expose()])?;
            writer.flush()?;
        }
        self.file.write_all(&line)?;
        self.file.sync_data()
    }
}

/// Rotates each contact in `items` (id and the key state the operator confirmed against).
/// `progress` is called after each contact with (index, total, result).
pub fn rotate_many(
    store: &mut dyn ContactStore,
    journal: &mut Journal,
    keys: &mut dyn KeySource,
    items: &[(ContactId, Expectation)],
    out: &mut OutFile,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(usize, usize, &BulkResult),
) -> Vec<BulkResult> {
    let total = items.len();
    let mut results = Vec::with_capacity(total);
    for (index, (id, expectation)) in items.iter().enumerate() {
        let result = if stop.load(Ordering::SeqCst) {
            BulkResult {
                id: *id,
                name: SafeText::default(),
                outcome: BulkOutcome::Skipped,
            }
        } else {
            rotate_one(store, journal, keys, *id, expectation, out)
        };
        progress(index + 1, total, &result);
        results.push(result);
    }
    results
}

fn rotate_one(
    store: &mut dyn ContactStore,
    journal: &mut Journal,
    keys: &mut dyn KeySource,
    id: ContactId,
    expectation: &Expectation,
    out: &mut OutFile,
) -> BulkResult {
    let failed = |name: SafeText, e: String| BulkResult {
        id,
        name,
        outcome: BulkOutcome::Failed(e),
    };
    let key = match ApiKey::generate_from(keys) {
        Ok(k) => k,
        Err(e) => return failed(SafeText::default(), e.to_string()),
    };
    match rotation::assign(
        store,
        journal,
        keys,
        id,
        expectation,
        NewKey::Generated(key),
    ) {
        Ok(done) => {
            let name = done.contact.display_name.clone();
            match out.append(id, &name, &done.key) {
                Ok(()) => BulkResult { id, name, outcome: BulkOutcome::Done },
                Err(e) => failed(
                    name,
                    format!("rotated, but the out file could not be written ({e}): rotate this contact again"),
                ),
            }
        }
        Err(RotationError::Store(StoreError::Conflict) | RotationError::ChangedSinceSeen) => {
            BulkResult {
                id,
                name: SafeText::default(),
                outcome: BulkOutcome::Conflict,
            }
        }
        Err(e) => failed(SafeText::default(), e.to_string()),
    }
}

/// Reads contact ids, one per line; blank lines and `#` comments are ignored.
pub fn parse_ids(text: &str) -> Result<Vec<ContactId>, String> {
    let mut ids = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let id = line.parse::<ContactId>().map_err(|_| {
            format!(
                "line {}: {:?} is not a contact id",
                n + 1,
                SafeText::new(line).truncated(40)
            )
        })?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_file_parsing() {
        assert_eq!(
            parse_ids("1\n# comment\n\n2 # two\n1\n").unwrap(),
            vec![1, 2]
        );
        let err = parse_ids("1\nabc\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }
}
