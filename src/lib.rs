//! civikey: a terminal key manager for CiviCRM API keys.
//!
//! The binary is a thin shell over this library; the tests use it directly.

pub mod app;
pub mod audit;
pub mod bulk;
pub mod cli;
pub mod clipboard;
pub mod config;
pub mod fsperm;
pub mod hygiene;
pub mod import;
pub mod key;
pub mod rotation;
pub mod sanitize;
pub mod seed;
pub mod store;
pub mod terminal;
pub mod ui;
