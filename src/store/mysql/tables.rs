//! The tables a MySQL store reads, by their prefixed names: the prefix is pasted into
//! SQL, so it is checked first.

use crate::store::sql::contact::contact_columns;
use crate::store::sql::standings::StandingTables;
use crate::store::StoreError;

/// Only letters, digits and `_`: the prefix is pasted into SQL as part of table names.
fn check_prefix(prefix: &str) -> Result<(), StoreError> {
    if prefix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
        && prefix.len() <= 40
    {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "table_prefix may hold only the letters A-Z, a-z, the digits 0-9 and '_' (at most 40 of them)",
        ))
    }
}

/// What a list reads of a key: the last four characters, then the whole key's SHA-256
/// ([`crate::key::KeyHint::from_tail_and_sha256`]), so no key leaves the server for a list.
pub(super) const LISTED_KEY: &str =
    "CONCAT(RIGHT(c.api_key, 4), COALESCE(SHA2(c.api_key, 256), ''))";

/// The three table names, prefixed and quoted, ready to paste into SQL.
#[derive(Clone)]
pub(super) struct Tables {
    pub(super) contact: String,
    pub(super) email: String,
    pub(super) uf: String,
    /// A Standalone site's roles (absent elsewhere).
    pub(super) role: String,
    pub(super) user_role: String,
    /// The prefix, and the contact table's unquoted name, for information_schema.
    pub(super) prefix: String,
    pub(super) contact_name: String,
}

impl Tables {
    pub(super) fn new(prefix: &str) -> Result<Self, StoreError> {
        check_prefix(prefix)?;
        Ok(Tables {
            contact: format!("`{prefix}civicrm_contact`"),
            email: format!("`{prefix}civicrm_email`"),
            uf: format!("`{prefix}civicrm_uf_match`"),
            role: format!("`{prefix}civicrm_role`"),
            user_role: format!("`{prefix}civicrm_user_role`"),
            prefix: prefix.to_string(),
            contact_name: format!("{prefix}civicrm_contact"),
        })
    }

    /// The contact columns every list and detail view reads ([`contact_columns`]).
    pub(super) fn contact_columns(&self) -> String {
        contact_columns(&self.email, &self.uf, LISTED_KEY)
    }

    /// The table names the standings queries read.
    pub(super) fn standing_tables(&self) -> StandingTables<'_> {
        StandingTables {
            contact: &self.contact,
            uf: &self.uf,
            role: &self.role,
            user_role: &self.user_role,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_validated() {
        assert!(check_prefix("").is_ok());
        assert!(check_prefix("crm_2").is_ok());
        for bad in ["a-b", "x`; DROP", "é", "a b"] {
            assert!(check_prefix(bad).is_err(), "{bad}");
        }
    }
}
