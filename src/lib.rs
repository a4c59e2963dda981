//! civikey: a terminal key manager for CiviCRM API keys.
//!
//! The binary is a thin shell over this library; the tests use it directly.

// Raw printing is forbidden here (clippy.toml lists the macros and methods): every byte for
// stdout or stderr goes through `cli::out`, which sanitizes, or through the TUI in
// `terminal.rs`. Cargo.toml turns these lints off for test programs, which print their own
// diagnostics.
#![warn(clippy::disallowed_macros, clippy::disallowed_methods)]

pub mod app;
pub mod assess;
pub mod audit;
pub mod bulk;
pub mod child_env;
pub mod cli;
pub mod clipboard;
pub mod config;
pub mod fsperm;
pub mod handover;
pub mod health;
pub mod hygiene;
pub mod import;
pub mod key;
pub mod login_check;
pub mod rotation;
pub mod sanitize;
pub mod secret;
pub mod seed;
pub mod store;
pub mod syslog;
pub mod terminal;
pub mod timefmt;
pub mod ui;
pub mod wording;
