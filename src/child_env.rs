//! The environment of every program civikey starts (`cv`, per call and `cv pipe`; `tmux`
//! for the clipboard warning): an explicit allowlist, never civikey's own environment.
//!
//! civikey's environment may hold secrets: a profile's `api_key_env`, `site_key_env` or
//! `password_env` variables, and whatever else the operator exported. A child that
//! inherits them hands them on (cv is PHP: `$_SERVER` and `getenv()` see them, and error
//! pages, CiviCRM's logs and its debug output may print them). So each child starts from
//! an empty environment and gets back only the variables it needs to run, named here.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::Command;

/// What every child gets: where programs are (`#!/usr/bin/env php`), the home folder
/// (cv reads `~/.cv.json`), the language, the time zone and the temporary folder.
/// `LC_*` is matched as a prefix; every other name exactly.
pub const COMMON: &[&str] = &[
    "PATH", "HOME", "LANG", "LANGUAGE", "LC_*", "TZ", "TMPDIR", "USER", "LOGNAME",
];

/// What `cv` reads besides [`COMMON`]: how to find and boot the site (cv's documented
/// `CIVICRM_BOOT`, `CIVICRM_SETTINGS`, `CIVICRM_UF`) and PHP's own configuration.
pub const CV: &[&str] = &[
    "CIVICRM_BOOT",
    "CIVICRM_SETTINGS",
    "CIVICRM_UF",
    "PHPRC",
    "PHP_INI_SCAN_DIR",
];

/// What `tmux show-options` needs to reach the operator's tmux server.
pub const TMUX: &[&str] = &["TMUX", "TMUX_TMPDIR", "TERM"];

/// Clears `command`'s environment and copies back from civikey's own only the variables
/// [`COMMON`] and `extra` name. Call it right after `Command::new`, before any `.env()`.
pub fn minimal<'a>(command: &'a mut Command, extra: &[&str]) -> &'a mut Command {
    command.env_clear();
    for (name, value) in std::env::vars_os() {
        if allowed(&name, extra) {
            command.env(name, value);
        }
    }
    command
}

/// Whether the variable `name` may reach a child started with `extra`.
pub fn allowed(name: &OsStr, extra: &[&str]) -> bool {
    let name = name.as_bytes();
    COMMON
        .iter()
        .chain(extra)
        .any(|pattern| match pattern.as_bytes().strip_suffix(b"*") {
            Some(prefix) => name.starts_with(prefix) && name.len() > prefix.len(),
            None => name == pattern.as_bytes(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(command: &Command) -> Vec<(String, Option<String>)> {
        command
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect()
    }

    #[test]
    fn only_the_allowlist_passes() {
        for (name, ok) in [
            ("PATH", true),
            ("HOME", true),
            ("LC_ALL", true),
            ("LC_", false),
            ("LCX", false),
            ("path", false),
            ("PATH2", false),
            ("CIVIKEY_ADMIN_KEY", false),
            ("MYSQL_PWD", false),
            ("TMUX", false),
            ("CIVICRM_SETTINGS", false),
        ] {
            assert_eq!(allowed(OsStr::new(name), &[]), ok, "{name}");
        }
        assert!(allowed(OsStr::new("TMUX"), TMUX));
        assert!(allowed(OsStr::new("CIVICRM_SETTINGS"), CV));
        assert!(!allowed(OsStr::new("TMUX"), CV));
    }

    #[test]
    fn the_environment_is_cleared_then_refilled_from_the_allowlist() {
        let mut command = Command::new("true");
        command.env("PLANTED", "x");
        minimal(&mut command, CV);
        let env = env_of(&command);
        assert!(
            env.iter().all(|(k, _)| allowed(OsStr::new(k), CV)),
            "{env:?}"
        );
        // PATH is passed on as civikey has it (the test runner always sets one).
        let path = std::env::var("PATH").unwrap();
        assert!(env.contains(&("PATH".into(), Some(path))), "{env:?}");
    }
}
