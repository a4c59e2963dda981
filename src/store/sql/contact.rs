//! The columns a list and the detail pane read from `civicrm_contact`, in the same SQL on
//! SQLite and MySQL, and the [`Contact`] a row of them makes.

use crate::key::KeyHint;
use crate::sanitize::SafeText;
use crate::store::{CmsLink, Contact, ContactId};

/// The contact columns, in [`ContactRow`]'s order; `email` and `uf` are the email and
/// uf_match tables as the store pastes them into SQL, `key` what the store reads of a
/// key for its [`KeyHint`] (MySQL: the last four characters and the SHA-256, so no key
/// leaves the server for a list; SQLite, a local file: the key, hashed in Rust). An empty
/// key counts as no key, as CiviCRM treats it.
pub fn contact_columns(email: &str, uf: &str, key: &str) -> String {
    format!(
        "c.id, c.contact_type, c.display_name, c.sort_name,
       (SELECT e.email FROM {email} e
         WHERE e.contact_id = c.id AND e.is_primary = 1 ORDER BY e.id LIMIT 1),
       c.is_deleted,
       CASE WHEN c.api_key IS NULL OR LENGTH(c.api_key) = 0 THEN NULL ELSE {key} END,
       (SELECT u.uf_id FROM {uf} u WHERE u.contact_id = c.id ORDER BY u.domain_id LIMIT 1)"
    )
}

/// One row of [`contact_columns`], as the store's driver decoded it.
pub struct ContactRow {
    pub id: ContactId,
    pub contact_type: Option<String>,
    pub display_name: Option<String>,
    pub sort_name: Option<String>,
    pub email: Option<String>,
    pub is_deleted: bool,
    /// The key as the list shows it (its tail, and its fingerprint where the store read
    /// one); None: no key.
    pub key: Option<KeyHint>,
    /// The first domain's CMS user id; None: not linked.
    pub uf_id: Option<u64>,
}

impl ContactRow {
    /// The contact, every text made safe where it enters.
    pub fn into_contact(self) -> Contact {
        let safe = |text: Option<String>| SafeText::new(&text.unwrap_or_default());
        Contact {
            id: self.id,
            contact_type: safe(self.contact_type),
            display_name: safe(self.display_name),
            sort_name: safe(self.sort_name),
            email: self.email.map(|e| SafeText::new(&e)),
            is_deleted: self.is_deleted,
            key: self.key,
            cms: match self.uf_id {
                Some(uf_id) => CmsLink::Linked { uf_id },
                None => CmsLink::None,
            },
        }
    }
}
