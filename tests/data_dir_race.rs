//! Issue 21, finding 5: a missing data folder (or a missing folder above it) is made by
//! civikey itself, so another user racing `mkdir; chmod 777; rmdir` on that name in a
//! sticky folder (as /tmp) never gets civikey's store or journal into a folder of theirs.
//!
//! Through the binary, as root, with uid 65534 (nobody) as the other user, for a bounded
//! time: elsewhere this prints SKIP, and fails under CI=true.

mod binary;

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const OTHER_UID: u32 = 65534;
/// How long civikey is run against the attacker, and at most how many times.
const RACE_FOR: Duration = Duration::from_secs(20);
const MAX_RUNS: usize = 400;

fn as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let reason = "needs root, to race as another user (uid 65534)";
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{reason}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIP a_missing_data_folder_is_never_one_another_user_slipped_in: {reason}"
    );
    false
}

/// Another user (uid 65534) in a loop: `mkdir NAME; chmod 777 NAME; rmdir NAME` on each
/// name, as fast as the kernel lets it. Killed when dropped (and when the test dies).
struct Attacker {
    pid: libc::pid_t,
}

impl Attacker {
    /// `link_to`: instead of making folders, plant symlinks to that folder (theirs) under
    /// each name and remove them, in a loop.
    fn start(names: &[PathBuf], link_to: Option<&Path>) -> Attacker {
        let names: Vec<CString> = names
            .iter()
            .map(|n| CString::new(n.as_os_str().as_bytes()).unwrap())
            .collect();
        let target = link_to.map(|t| CString::new(t.as_os_str().as_bytes()).unwrap());
        // SAFETY: the child only makes async-signal-safe system calls on memory prepared
        // before the fork, and leaves by _exit or a signal.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(OTHER_UID) != 0
                    || libc::setuid(OTHER_UID) != 0
                {
                    libc::_exit(2);
                }
                loop {
                    for name in &names {
                        match &target {
                            Some(target) => {
                                libc::symlink(target.as_ptr(), name.as_ptr());
                                libc::unlink(name.as_ptr());
                            }
                            None => {
                                libc::mkdir(name.as_ptr(), 0o777);
                                libc::chmod(name.as_ptr(), 0o777);
                                libc::rmdir(name.as_ptr());
                            }
                        }
                    }
                }
            }
        }
        Attacker { pid }
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        // SAFETY: pid is our own child.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}

/// Everything under `dir`, depth first.
fn entries(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(list) = fs::read_dir(dir) {
        for entry in list.flatten() {
            let path = entry.path();
            out.push(path.clone());
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                entries(&path, out);
            }
        }
    }
}

#[test]
fn a_missing_data_folder_is_never_one_another_user_slipped_in() {
    if !as_root() {
        return;
    }
    // A sticky folder everyone may write, as /tmp: the other user can make names there,
    // and civikey accepts it as the place of its data folder.
    let shared = tempfile::tempdir().unwrap();
    fs::set_permissions(shared.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    let home = tempfile::tempdir().unwrap();
    // The data folder missing, or a folder two levels above it missing.
    let contested = [shared.path().join("data"), shared.path().join("a")];
    let data_dirs = [
        shared.path().join("data"),
        shared.path().join("a").join("b").join("data"),
    ];
    // A folder of theirs, open to all, that their symlinks point to.
    let theirs = shared.path().join("theirs");
    fs::create_dir(&theirs).unwrap();
    fs::set_permissions(&theirs, fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::chown(&theirs, Some(OTHER_UID), Some(OTHER_UID)).unwrap();
    // Two making folders, so a name reappears soon after it is removed; one planting
    // symlinks to their folder.
    let attackers = [
        Attacker::start(&contested, None),
        Attacker::start(&contested, None),
        Attacker::start(&contested, Some(&theirs)),
    ];
    let start = Instant::now();
    let (mut runs, mut refused, mut made) = (0, 0, 0);
    while start.elapsed() < RACE_FOR && runs < MAX_RUNS {
        let data = &data_dirs[runs % data_dirs.len()];
        runs += 1;
        // `audit` makes the default store (from the sample), then the journal.
        let out = binary::civikey(home.path())
            .env("CIVIKEY_DATA_DIR", data)
            .args(["audit", "--limit", "1"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        // Whatever the outcome: no folder of the other user holds anything (they only
        // ever make empty ones), and no folder civikey used belongs to them.
        for folder in contested.iter().chain([&theirs]) {
            let Ok(meta) = fs::symlink_metadata(folder) else {
                continue;
            };
            if meta.uid() != OTHER_UID {
                continue;
            }
            let mut inside = Vec::new();
            entries(folder, &mut inside);
            assert!(
                inside.is_empty(),
                "run {runs}: civikey made {inside:?} inside {} (uid {}, mode {:o}), a folder of the other user; civikey said: {stderr}",
                folder.display(),
                meta.uid(),
                meta.mode() & 0o7777
            );
        }
        if out.status.success() {
            made += 1;
            // Every folder from the sticky one down to the data folder is civikey's: root's,
            // 0700.
            let mut step = data.clone();
            while step != shared.path() {
                let meta = fs::symlink_metadata(&step).unwrap();
                assert!(
                    meta.is_dir() && meta.uid() == 0 && meta.mode() & 0o7777 == 0o700,
                    "run {runs}: {} is uid {} mode {:o}",
                    step.display(),
                    meta.uid(),
                    meta.mode() & 0o7777
                );
                step.pop();
            }
            for name in ["contacts.sqlite", "audit.sqlite", "audit.key"] {
                assert!(data.join(name).is_file(), "run {runs}: no {name}");
            }
        } else {
            refused += 1;
            assert!(
                stderr.contains(&OTHER_UID.to_string())
                    || stderr.contains("other users")
                    || stderr.contains("another user"),
                "run {runs}: civikey failed without naming the other user's folder: {stderr}"
            );
        }
        // Start the next run from a missing folder again (what civikey made is root's:
        // the other user cannot remove it).
        for folder in &contested {
            if fs::symlink_metadata(folder).is_ok_and(|m| m.uid() == 0) {
                let _ = fs::remove_dir_all(folder);
            }
        }
    }
    drop(attackers);
    let _ = writeln!(
        std::io::stderr(),
        "data folder race: {runs} runs in {:?}: {made} made the folder, {refused} refused a folder of the other user",
        start.elapsed()
    );
    assert!(runs >= 10, "too few runs to have raced: {runs}");
}
