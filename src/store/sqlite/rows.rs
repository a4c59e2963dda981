//! The columns a SQLite list reads (the SQL stores' contact columns and the sort key the
//! next page starts after), and a row of them as a contact.

use std::sync::LazyLock;

use crate::key::KeyHint;
use crate::store::sql::contact::{contact_columns, ContactRow};
use crate::store::{Contact, ContactId};

/// The columns a list reads ([`contact_columns`]), then the sort key the next page
/// starts after.
pub(super) static CONTACT_COLUMNS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{}, coalesce(c.sort_name, '')",
        contact_columns("civicrm_email", "civicrm_uf_match", "c.api_key")
    )
});

/// A row of [`CONTACT_COLUMNS`] as a contact.
pub(super) fn row_to_contact(row: &rusqlite::Row<'_>) -> rusqlite::Result<Contact> {
    Ok(ContactRow {
        id: row.get::<_, i64>(0)? as ContactId,
        contact_type: row.get(1)?,
        display_name: row.get(2)?,
        sort_name: row.get(3)?,
        email: row.get(4)?,
        is_deleted: row.get::<_, Option<i64>>(5)?.unwrap_or(0) != 0,
        key: row
            .get::<_, Option<String>>(6)?
            .map(|k| KeyHint::of_whole(&zeroize::Zeroizing::new(k))),
        uf_id: row.get::<_, Option<i64>>(7)?.map(|uf_id| uf_id as u64),
    }
    .into_contact())
}
