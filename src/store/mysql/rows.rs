//! Reading the driver's rows: columns as text or numbers whatever the server sent them
//! as, and a row of the contact columns as a contact.

use mysql::{Row, Value};

use crate::key::KeyHint;
use crate::store::sql::contact::ContactRow;
use crate::store::Contact;

/// Column `i` as text (NULL = None). Non-UTF-8 bytes are decoded lossily: the caller
/// sanitizes the result.
pub(super) fn text(row: &Row, i: usize) -> Result<Option<String>, String> {
    match row.as_ref(i) {
        None => Err(format!("column {i} is missing from the result")),
        Some(Value::NULL) => Ok(None),
        Some(Value::Bytes(bytes)) => Ok(Some(String::from_utf8_lossy(bytes).into_owned())),
        Some(Value::Int(n)) => Ok(Some(n.to_string())),
        Some(Value::UInt(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(format!("column {i} holds a value of an unexpected type")),
    }
}

/// Column `i` as a non-negative integer (NULL = None).
pub(super) fn uint(row: &Row, i: usize) -> Result<Option<u64>, String> {
    match row.as_ref(i) {
        None => Err(format!("column {i} is missing from the result")),
        Some(Value::NULL) => Ok(None),
        Some(Value::UInt(n)) => Ok(Some(*n)),
        Some(Value::Int(n)) => u64::try_from(*n)
            .map(Some)
            .map_err(|_| format!("column {i} is negative")),
        Some(Value::Bytes(bytes)) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| format!("column {i} is not a number")),
        Some(_) => Err(format!("column {i} holds a value of an unexpected type")),
    }
}

/// One row of the contact columns ([`crate::store::sql::contact::contact_columns`]): the contact, and its raw
/// sort_name for the cursor.
pub(super) fn row_to_contact(row: &Row) -> Result<(Contact, Option<String>), String> {
    let sort_name = text(row, 3)?;
    let contact = ContactRow {
        id: uint(row, 0)?.ok_or("a contact without an id")?,
        contact_type: text(row, 1)?,
        display_name: text(row, 2)?,
        sort_name: sort_name.clone(),
        email: text(row, 4)?,
        is_deleted: uint(row, 5)?.unwrap_or(0) != 0,
        key: text(row, 6)?.map(|listed| KeyHint::from_tail_and_sha256(&listed)),
        uf_id: uint(row, 7)?,
    }
    .into_contact();
    Ok((contact, sort_name))
}
