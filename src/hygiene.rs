//! Process hygiene at start: no core dumps (a dump would hold keys), private file modes.

/// Disables core dumps (RLIMIT_CORE 0 and PR_SET_DUMPABLE 0, which also keeps other
/// processes of the same user from ptrace-reading our memory) and sets umask 077.
pub fn harden_process() {
    // SAFETY: plain syscalls on this process with valid arguments; failures are harmless
    // (the limits simply stay as they were), so their results are not needed.
    unsafe {
        let zero = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &zero);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        libc::umask(0o077);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hardening_applies() {
        super::harden_process();
        let mut lim = libc::rlimit {
            rlim_cur: 1,
            rlim_max: 1,
        };
        // SAFETY: reading this process's own limits and flags.
        unsafe {
            libc::getrlimit(libc::RLIMIT_CORE, &mut lim);
            assert_eq!(lim.rlim_cur, 0);
            assert_eq!(libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0), 0);
            let old = libc::umask(0o077);
            assert_eq!(old, 0o077);
        }
    }
}
