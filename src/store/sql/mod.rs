//! What the two SQL stores (SQLite and MySQL) share, written once: the standings queries
//! and their rule for missing columns, and the contact columns a list reads.

pub mod contact;
pub mod standings;
