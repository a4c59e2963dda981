//! What the two SQL stores (SQLite and MySQL) share, written once: the standings queries
//! and their rule for missing columns, the contact columns a list reads, and the page of
//! key holders in key order.

pub mod contact;
pub mod holders;
pub mod standings;
