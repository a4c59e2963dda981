//! The civikey binary as the integration tests start it.

use std::path::Path;
use std::process::{Command, Stdio};

/// civikey in a private home: its data in `home/data`, no config file (the default
/// location is inside the empty `home`), no profile from the caller, stdin closed.
pub fn civikey(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_civikey"));
    cmd.env("CIVIKEY_DATA_DIR", home.join("data"))
        .env_remove("CIVIKEY_CONFIG")
        .env_remove("CIVIKEY_PROFILE")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .stdin(Stdio::null());
    cmd
}
