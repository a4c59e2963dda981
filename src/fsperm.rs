//! File modes: civikey's files are 0600 in 0700 folders, and files holding contacts or
//! secrets that others can read are refused with the command that fixes them.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::fd::OwnedFd;
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

/// Opens the folder civikey keeps files in (the data folder, a store's folder), making it
/// first when it is missing, so that no other user can slip a folder of theirs in:
///
/// - the folders that exist are judged as [`refuse_if_folder_exposed`] does, and a symlink
///   on the way must belong to the operator or root (another user could re-point it);
/// - each missing folder is made here, one at a time, 0700, inside the folder above it,
///   opened through that folder's descriptor; one that appears in the meantime ("already
///   exists" for a folder just found missing) is accepted only if it is a folder (not a
///   symlink) of the operator open to no one else (another civikey of the operator
///   starting at the same moment), and refused otherwise;
/// - the folder opened is checked through its descriptor (owner, mode), and the path must
///   still lead to it.
///
/// Files are then made through the returned descriptor ([`create_new_private_file_at`]).
pub fn open_private_dir(dir: &Path) -> Result<OwnedFd, String> {
    use rustix::fs::{Mode, OFlags};
    refuse_if_folder_exposed(dir)?;
    let cannot = |what: &str, p: &Path, e: &dyn std::fmt::Display| {
        format!("cannot {what} {}: {e}", p.display())
    };
    let absolute = std::path::absolute(dir).map_err(|e| cannot("find", dir, &e))?;
    // The deepest folder of the path that exists; the rest is made below.
    let mut base = absolute.as_path();
    while let Err(e) = fs::symlink_metadata(base) {
        if e.kind() != std::io::ErrorKind::NotFound {
            return Err(cannot("inspect", base, &e));
        }
        base = base
            .parent()
            .ok_or_else(|| cannot("find", dir, &"no folder exists"))?;
    }
    refuse_foreign_symlinks(base)?;
    let me = operator_uid();
    let mut folder = rustix::fs::open(
        base,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        let what = if e == rustix::io::Errno::NOENT {
            "open folder (it was there a moment before: another user may be racing civikey for it, so civikey refuses)"
        } else {
            "open folder"
        };
        cannot(what, base, &e)
    })?;
    let stat = rustix::fs::fstat(&folder).map_err(|e| cannot("inspect", base, &e))?;
    check_open_folder(base, stat.st_uid, stat.st_mode)?;
    let mut made = base.to_path_buf();
    for part in absolute
        .strip_prefix(base)
        .unwrap_or(Path::new(""))
        .components()
    {
        let std::path::Component::Normal(name) = part else {
            return Err(cannot(
                "make",
                &absolute,
                &"the missing part of the path holds `..`",
            ));
        };
        made.push(name);
        let appeared = match rustix::fs::mkdirat(&folder, name, Mode::from_raw_mode(0o700)) {
            Ok(()) => false,
            Err(rustix::io::Errno::EXIST) => true,
            Err(e) => return Err(cannot("create folder", &made, &e)),
        };
        // NOFOLLOW: a symlink put in its place is refused, never followed.
        let next = rustix::fs::openat(
            &folder,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            let what = if appeared {
                "use the folder that appeared (and changed) while civikey was making it: another user may be racing civikey for it, so civikey refuses"
            } else {
                "open the folder just made: another user may have put something in its place, so civikey refuses"
            };
            cannot(what, &made, &e)
        })?;
        let stat = rustix::fs::fstat(&next).map_err(|e| cannot("inspect", &made, &e))?;
        if stat.st_uid != me || stat.st_mode & 0o077 != 0 {
            return Err(format!(
                "the folder {} appeared while civikey was making it, and it belongs to user {} (mode {:04o}), not only to you (user {me}): another user may have made it to see or swap civikey's files, so civikey refuses to use it. \
                 Check it, remove it, and run civikey again (or create it yourself: mkdir -m 700 {})",
                made.display(),
                stat.st_uid,
                stat.st_mode & 0o7777,
                quoted(&made)
            ));
        }
        folder = next;
    }
    let stat = rustix::fs::fstat(&folder).map_err(|e| cannot("inspect", dir, &e))?;
    check_open_folder(dir, stat.st_uid, stat.st_mode)?;
    let now = fs::metadata(&absolute).map_err(|e| cannot("inspect", dir, &e))?;
    if (now.dev(), now.ino()) != (stat.st_dev, stat.st_ino) {
        return Err(format!(
            "the folder {} was replaced while civikey was opening it; civikey refuses to use it",
            dir.display()
        ));
    }
    Ok(folder)
}

/// The rules of [`refuse_exposed_folder`], for a folder opened (owner and mode from fstat).
fn check_open_folder(folder: &Path, owner: u32, mode: u32) -> Result<(), String> {
    let me = operator_uid();
    let named = format!("the folder {}", folder.display());
    if owner != me && owner != 0 {
        return Err(format!(
            "{named} belongs to user {owner}, not to you (user {me}) or root; another user could have planted or changed it, so civikey refuses to use it \
             (check what it holds before you take it over). Fix with: chown {me} {}",
            quoted(folder)
        ));
    }
    let mode = mode & 0o7777;
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(format!(
            "{named} is writable by other users (mode {mode:04o}): they could replace civikey's files in it, so civikey refuses to use it. Fix with: chmod go-w {}",
            quoted(folder)
        ));
    }
    Ok(())
}

/// Refuses a path that passes through a symlink of another user (they could point it
/// elsewhere at any time), `path` itself included.
fn refuse_foreign_symlinks(path: &Path) -> Result<(), String> {
    let me = operator_uid();
    for step in path.ancestors() {
        if let Ok(meta) = fs::symlink_metadata(step) {
            if meta.file_type().is_symlink() && meta.uid() != me && meta.uid() != 0 {
                return Err(format!(
                    "{} is a symlink of user {}, who could point it elsewhere; civikey refuses to use the folder behind it",
                    step.display(),
                    meta.uid()
                ));
            }
        }
    }
    Ok(())
}

/// Creates the new file `name` (0600, never an existing file or a symlink) inside the
/// folder opened by [`open_private_dir`].
pub fn create_new_private_file_at(folder: &OwnedFd, name: &Path) -> std::io::Result<fs::File> {
    use rustix::fs::{Mode, OFlags};
    let leaf = name.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "not the name of a file")
    })?;
    let fd = rustix::fs::openat(
        folder,
        leaf,
        OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    Ok(fs::File::from(fd))
}

/// Writes a new file with mode 0600 (failing if it exists), synced to disk.
/// Its folder goes through [`open_private_dir`] (made if missing, no folder of another
/// user slipped in), and the file is made through the folder's descriptor.
pub fn write_new_private_file(path: &Path, contents: &[u8]) -> Result<(), String> {
    let created = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => create_new_private_file_at(&open_private_dir(dir)?, path),
        None => OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path),
    };
    let mut file = created.map_err(|e| format!("cannot create {}: {e}", path.display()))?;
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
    fn open_private_dir_makes_each_missing_folder_and_refuses_what_it_did_not_make() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("a/b/data");
        let fd = open_private_dir(&data).unwrap();
        let stat = rustix::fs::fstat(&fd).unwrap();
        assert_eq!(stat.st_ino, fs::metadata(&data).unwrap().ino());
        for step in ["a", "a/b", "a/b/data"] {
            let mode = fs::metadata(dir.path().join(step)).unwrap().mode() & 0o7777;
            assert_eq!(mode, 0o700, "{step}");
        }
        // Once made, it opens again; a file made through it is 0600 and never replaces one.
        let fd = open_private_dir(&data).unwrap();
        create_new_private_file_at(&fd, &data.join("x")).unwrap();
        assert_eq!(fs::metadata(data.join("x")).unwrap().mode() & 0o777, 0o600);
        let again = create_new_private_file_at(&fd, &data.join("x")).unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
        // A dangling symlink where the folder is missing (planted in a sticky folder, say):
        // refused, nothing made where it points.
        std::os::unix::fs::symlink(dir.path().join("target"), dir.path().join("dangling")).unwrap();
        open_private_dir(&dir.path().join("dangling/data")).unwrap_err();
        open_private_dir(&dir.path().join("dangling")).unwrap_err();
        assert!(!dir.path().join("target").exists());
        // A folder open to others that appeared in the missing place is refused.
        let open = dir.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
        let err = open_private_dir(&open.join("data")).unwrap_err();
        assert!(err.contains("writable by other users"), "{err}");
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
