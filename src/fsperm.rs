//! File modes: civikey's files are 0600 in 0700 folders, and files holding contacts or
//! secrets that others can read are refused with the command that fixes them.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Refuses a file whose mode lets group or others read or write it.
pub fn refuse_if_exposed(path: &Path, meta: &fs::Metadata) -> Result<(), String> {
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} is open to other users (mode {mode:04o}); civikey refuses to use it. Fix with: chmod 600 '{}'",
            path.display(),
            path.display()
        ));
    }
    Ok(())
}

/// Whether this process may write `path`: access(2), which honours ACLs, and at least one
/// write bit in the mode, because access(2) lets root write anything: a file made read-only
/// (`chmod 400`) is meant to be only read, by root too.
pub fn is_writable(path: &Path) -> bool {
    if fs::metadata(path).map_or(true, |m| m.mode() & 0o222 == 0) {
        return false;
    }
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: c_path is a valid NUL-terminated string that outlives the call.
    unsafe { libc::access(c_path.as_ptr(), libc::W_OK) == 0 }
}

/// Creates `dir` and its missing parents with mode 0700.
pub fn create_private_dir(dir: &Path) -> Result<(), String> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create folder {}: {e}", dir.display()))
}

/// Writes a new file with mode 0600 (failing if it exists), synced to disk.
pub fn write_new_private_file(path: &Path, contents: &[u8]) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn exposed_files_are_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        fs::write(&path, b"x").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = refuse_if_exposed(&path, &fs::metadata(&path).unwrap()).unwrap_err();
        assert!(err.contains("chmod 600"), "{err}");
        assert!(err.contains("0644"), "{err}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(refuse_if_exposed(&path, &fs::metadata(&path).unwrap()).is_ok());
    }

    #[test]
    fn private_files_and_folders_have_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/secret");
        write_new_private_file(&path, b"s").unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            fs::metadata(dir.path().join("a/b")).unwrap().mode() & 0o777,
            0o700
        );
        assert!(
            write_new_private_file(&path, b"again").is_err(),
            "must not overwrite"
        );
    }
}
