//! SQLite's errors as the store's: a locked file is a timeout, a read-only one read-only,
//! a damaged one bad data.

use crate::sanitize::SafeText;
use crate::store::StoreError;

pub(crate) fn sql_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::ReadOnly) => StoreError::ReadOnly(SafeText::new(&e.to_string())),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Timeout(SafeText::new(&format!("the store file is locked: {e}")))
        }
        Some(ErrorCode::PermissionDenied) => {
            StoreError::PermissionDenied(SafeText::new(&e.to_string()))
        }
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::bad_data(e),
        Some(ErrorCode::DiskFull) => StoreError::invalid(format!("the disk is full: {e}")),
        _ => StoreError::bad_data(e),
    }
}
