//! File modes: civikey's files are 0600 in 0700 folders, and files holding contacts or
//! secrets that others can read are refused with the command that fixes them.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Refuses a file civikey is about to trust (a config, a secret, a store, the journal, its
/// key) unless, as OpenSSH checks its own files: it is a regular file, owned by the
/// operator (this process's effective user) or root, not readable or writable by group
/// or others, and every folder above it is owned by the operator or root and not writable
/// by others (sticky folders such as /tmp excepted: others cannot replace what is in
/// them). Each refusal names the command that fixes it, for the file a symlink points to.
pub fn refuse_if_exposed(path: &Path, meta: &fs::Metadata) -> Result<(), String> {
    let target = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let named = if target == path {
        format!("{}", path.display())
    } else {
        format!("{} (a symlink to {})", path.display(), target.display())
    };
    if !meta.is_file() {
        return Err(format!(
            "{named} is not a regular file (a FIFO, a device or a socket?); civikey refuses to use it"
        ));
    }
    refuse_foreign_owner(&named, &target, meta)?;
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{named} is open to other users (mode {mode:04o}); civikey refuses to use it. Fix with: chmod 600 {}",
            quoted(&target)
        ));
    }
    refuse_if_folders_exposed(path)?;
    refuse_if_folders_exposed(&target)
}

/// Refuses `path` if a folder above it (itself excluded) is another user's or open to
/// writes by others; see [`refuse_if_exposed`].
fn refuse_if_folders_exposed(path: &Path) -> Result<(), String> {
    path.ancestors()
        .skip(1)
        .filter(|f| !f.as_os_str().is_empty())
        .try_for_each(refuse_exposed_folder)
}

/// Refuses a folder civikey keeps files in (the data folder), and the folders above it,
/// under the rules of [`refuse_if_exposed`], before anything is created in it. A folder
/// that does not exist yet passes (civikey makes it, 0700).
pub fn refuse_if_folder_exposed(folder: &Path) -> Result<(), String> {
    refuse_exposed_folder(folder)?;
    refuse_if_folders_exposed(folder)
}

/// Refuses a file or folder owned by someone other than the operator or root.
fn refuse_foreign_owner(named: &str, target: &Path, meta: &fs::Metadata) -> Result<(), String> {
    let me = operator_uid();
    let owner = meta.uid();
    if owner == me || owner == 0 {
        return Ok(());
    }
    Err(format!(
        "{named} belongs to user {owner}, not to you (user {me}) or root; another user could have planted or changed it, so civikey refuses to use it \
         (check what it holds before you take it over). Fix with: chown {me} {}",
        quoted(target)
    ))
}

/// Refuses a folder owned by another user, or that others may write (unless sticky).
fn refuse_exposed_folder(folder: &Path) -> Result<(), String> {
    let Ok(meta) = fs::metadata(folder) else {
        // A folder civikey cannot look at cannot be judged; opening the file there fails
        // with its own error.
        return Ok(());
    };
    let named = format!("the folder {}", folder.display());
    refuse_foreign_owner(&named, folder, &meta)?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(format!(
            "{named} is writable by other users (mode {mode:04o}): they could replace civikey's files in it, so civikey refuses to use it. Fix with: chmod go-w {}",
            quoted(folder)
        ));
    }
    Ok(())
}

fn operator_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// `path` quoted for a POSIX shell, so a "Fix with:" command can be pasted as it is.
pub fn quoted(path: &Path) -> String {
    match shlex::bytes::try_quote(path.as_os_str().as_bytes()) {
        Ok(q) => String::from_utf8_lossy(&q).into_owned(),
        // Only a NUL byte cannot be quoted, and no path holds one.
        Err(_) => format!("{:?}", path.display().to_string()),
    }
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
    fn fix_hints_are_shell_quoted_and_name_the_symlink_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("it's $(id) `x`.sqlite");
        fs::write(&target, b"x").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();
        let link = dir.path().join("link.sqlite");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = refuse_if_exposed(&link, &fs::metadata(&link).unwrap()).unwrap_err();
        let canonical = fs::canonicalize(&target).unwrap();
        let hint = err.split("Fix with: chmod 600 ").nth(1).unwrap();
        assert_eq!(hint, quoted(&canonical), "{err}");
        assert!(err.contains("a symlink to"), "{err}");
        // The quoted path, run through a shell, is the target's path again.
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("printf %s {hint}")])
            .output()
            .unwrap();
        assert_eq!(out.stdout, canonical.as_os_str().as_bytes());
    }

    #[test]
    fn fifos_and_writable_folders_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: c is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = refuse_if_exposed(&fifo, &fs::metadata(&fifo).unwrap()).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");

        let open = dir.path().join("open");
        fs::create_dir(&open).unwrap();
        let file = open.join("f");
        fs::write(&file, b"x").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        for (mode, refused) in [
            (0o777, true),
            (0o770, true),
            (0o755, false),
            (0o1777, false),
        ] {
            fs::set_permissions(&open, fs::Permissions::from_mode(mode)).unwrap();
            let result = refuse_if_exposed(&file, &fs::metadata(&file).unwrap());
            assert_eq!(result.is_err(), refused, "{mode:o}: {result:?}");
            if let Err(e) = result {
                assert!(e.contains("Fix with: chmod go-w"), "{e}");
            }
        }
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
