//! civikey: a terminal key manager for CiviCRM API keys.
//!
//! The binary is a thin shell over this library; the tests use it directly.

pub mod key;
pub mod sanitize;
pub mod store;
pub mod fsperm;
pub mod rotation;
pub mod seed;
pub mod app;
pub mod cli;
pub mod clipboard;
pub mod hygiene;
pub mod terminal;
pub mod ui;
