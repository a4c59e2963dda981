//! One source for the reference texts several places show: the keys of the interactive
//! screen (its `?` popup, the man page, and the README, which a test holds to this table),
//! the exit codes and the environment variables (`--help` and the man page).

use crate::cli::exit;

/// The keys of the interactive screen: (keys, what they do).
pub const TUI_KEYS: &[(&str, &str)] = &[
    ("j / ↓, k / ↑", "move the selection"),
    ("PgDn / PgUp", "move a page"),
    ("g / G", "first / last contact"),
    ("/", "search as you type: id, email or name prefix"),
    (
        "Enter/Tab (search)",
        "keep the filter / search inside names too",
    ),
    (
        "Esc (search, list)",
        "clear the filter (the selection stays)",
    ),
    ("r or Enter", "new key for the selected contact"),
    ("x", "revoke the selected contact's key"),
    ("u", "undo the last change (10 minutes, asks y)"),
    (
        "space / * / o / U",
        "mark one / all matching / old keys / none",
    ),
    ("R", "rotate the marked contacts (keys to a file)"),
    ("A", "list keys older than N days, oldest first"),
    ("a", "audit (f: this store / contact / all stores)"),
    ("h", "key health: findings; Enter reads one, mark, R, x"),
    ("P", "switch to another profile (site) of the config"),
    ("c (new key shown)", "copy the key by OSC 52"),
    ("y / n", "confirm / cancel, in every confirm"),
    ("? / Ctrl-L", "this help, in any popup too / redraw"),
    ("Esc or q", "close a popup; q in the list: quit"),
    (
        "Ctrl-C (twice)",
        "quit once a change in flight is done; twice: now",
    ),
];

/// Every exit code and what it means, stable for scripts.
pub const EXIT_CODES: &[(u8, &str)] = &[
    (exit::OK, "success"),
    (
        exit::ERROR,
        "error: a store, file or network failure, or a config with a problem",
    ),
    (
        exit::USAGE,
        "usage: an unknown command or flag, a bad value, a bad --store address, an unknown --profile, or no terminal for the interactive screen",
    ),
    (
        exit::CONFLICT,
        "conflict: the key changed meanwhile; nothing was written",
    ),
    (
        exit::NOT_FOUND,
        "not found: no contact with that id; `whose`: no contact holds the key now (the journal's past of it is printed)",
    ),
    (
        exit::REFUSED,
        "refused by a safety check: no confirmation, a key invalid or already in use, the journal unwritable, a read-only store, permission denied, a file that would be overwritten",
    ),
    (exit::FINDINGS, "`check` found findings"),
];

/// The environment variables civikey reads: (name, meaning).
pub const ENVIRONMENT: &[(&str, &str)] = &[
    (
        crate::config::CONFIG_ENV,
        "the config file, instead of ~/.config/civikey/config.toml ($XDG_CONFIG_HOME is honoured)",
    ),
    (
        crate::config::DATA_DIR_ENV,
        "the data folder (default store, audit journal, audit key), instead of ~/.local/share/civikey",
    ),
    (
        "NO_COLOR",
        "set and not empty: no colours on the interactive screen (the selection stays visible)",
    ),
    (
        "SUDO_USER, USER, SSH_CONNECTION",
        "who the operator is and where they came from, for the audit journal",
    ),
    (
        "CIVIKEY_COMPLETE",
        "set by the shell completion scripts when they ask civikey for candidates",
    ),
];

/// What the profile fields `password_env`, `api_key_env` and `site_key_env` are for.
pub const SECRET_VARIABLES: &str = "A profile may name environment variables holding its secrets (password_env, api_key_env, site_key_env); civikey reads them only when that profile is used, and never prints them.";

/// The end of `civikey --help`: exit codes, the config path, the environment.
pub fn after_help() -> String {
    let codes: Vec<String> = EXIT_CODES
        .iter()
        .map(|(code, what)| {
            let short = what.split(':').next().unwrap_or(what);
            format!("{code} {short}")
        })
        .collect();
    let config = match crate::config::config_path() {
        Ok(path) if path.exists() => format!("{} (exists)", path.display()),
        Ok(path) => format!(
            "{} (not there; `civikey config init` writes one)",
            path.display()
        ),
        Err(e) => e.to_string(),
    };
    let env: Vec<&str> = ENVIRONMENT
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| name.starts_with("CIVIKEY_") || *name == "NO_COLOR")
        .collect();
    format!(
        "Exit status: {}.\nConfig file: {config}\nEnvironment: {}; and the variables a profile names for its secrets.\nMore: man civikey",
        codes.join(", "),
        env.join(", ")
    )
}

/// The keys table as the README shows it (Markdown).
pub fn tui_keys_markdown() -> String {
    let mut text = String::from("| key | does |\n|---|---|\n");
    for (keys, does) in TUI_KEYS {
        text.push_str(&format!("| {keys} | {does} |\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_exit_code_once_in_order() {
        let codes: Vec<u8> = EXIT_CODES.iter().map(|(code, _)| *code).collect();
        assert_eq!(codes, (0..=6).collect::<Vec<u8>>());
    }

    #[test]
    fn help_ends_with_codes_config_and_environment() {
        let text = after_help();
        for part in [
            "2 usage",
            "5 refused by a safety check",
            "6 `check` found findings",
            "Config file: ",
            "CIVIKEY_CONFIG",
            "CIVIKEY_DATA_DIR",
            "NO_COLOR",
        ] {
            assert!(text.contains(part), "{part} missing from: {text}");
        }
    }
}
