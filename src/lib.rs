//! civikey: a terminal key manager for CiviCRM API keys.
//!
//! The binary is a thin shell over this library; the tests use it directly.

pub mod config;
pub mod key;
pub mod sanitize;
pub mod store;
pub mod fsperm;
pub mod rotation;
pub mod seed;
