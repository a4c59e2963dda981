//! What a file must be before the store opens it: a regular file with SQLite's header, as
//! long as its header says, and (small files on every open, big ones before their first
//! write) passing SQLite's `quick_check`. A file that fails is refused, never modified.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rusqlite::Connection;

use crate::sanitize::SafeText;
use crate::store::StoreError;

/// Stores up to this size get SQLite's full `quick_check` on every open.
pub(super) const FULL_CHECK_MAX_BYTES: u64 = 16 << 20;

pub(super) fn check_header(path: &Path) -> Result<(), StoreError> {
    let shown = path.display();
    let mut header = [0u8; 100];
    // O_NONBLOCK: a FIFO put in the file's place cannot hang civikey at open.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| StoreError::invalid(format!("cannot read {shown}: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| StoreError::invalid(format!("cannot read {shown}: {e}")))?;
    if !meta.is_file() {
        return Err(StoreError::invalid(format!(
            "{shown} is not a regular file (a FIFO, a device or a socket?); civikey refuses to use it"
        )));
    }
    let len = meta.len();
    let n = file
        .take(100)
        .read(&mut header)
        .map_err(|e| StoreError::invalid(format!("cannot read {shown}: {e}")))?;
    if n == 0 {
        return Err(StoreError::invalid(format!(
            "{shown} is empty, not a SQLite store; it was not modified"
        )));
    }
    if n < 16 || &header[..16] != b"SQLite format 3\0" {
        return Err(StoreError::invalid(format!(
            "{shown} is not a SQLite database, so not a civikey or CiviCRM store; it was not modified"
        )));
    }
    // The header's page count is trustworthy when its "valid for" counter matches the
    // change counter (file format, section 1.3.7); a file shorter than that lost its end.
    let be32 = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    if n == 100 && be32(24) == be32(92) {
        let page_size = match u16::from_be_bytes([header[16], header[17]]) {
            1 => 65_536,
            size => u64::from(size),
        };
        let expected = page_size * u64::from(be32(28));
        if len < expected {
            return Err(StoreError::invalid(format!(
                "{shown} is damaged: it is {len} bytes long but its header says {expected} (was it cut off in a copy?); it was not modified"
            )));
        }
    }
    Ok(())
}

/// SQLite's `quick_check`; a damaged file is refused, and was not modified.
pub(super) fn quick_check(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let shown = path.display();
    let verdict: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| StoreError::invalid(format!("{shown} is damaged: {e}")))?;
    if verdict == "ok" {
        Ok(())
    } else {
        Err(StoreError::invalid(format!(
            "{shown} failed its integrity check ({}); it was not modified",
            SafeText::new(&verdict)
        )))
    }
}
