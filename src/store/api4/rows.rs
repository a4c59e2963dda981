//! API v4 rows as both API v4 stores read them (REST from the answer's `values`, cv from
//! its output): typed, each key taken into an [`ApiKey`] (zeroized) as it is read, ids and
//! flags in every form CiviCRM versions and proxies send them. Rows of one contact
//! (several CMS domains, several matching emails) fold into one [`Contact`].

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::key::ApiKey;
use crate::sanitize::SafeText;
use crate::store::{CmsLink, Contact, ContactId, Holder, StoreError};

/// The fields a contact list needs (`api_key` becomes a [`crate::key::KeyHint`]).
pub(crate) const CONTACT_FIELDS: &[&str] = &[
    "id",
    "display_name",
    "sort_name",
    "contact_type",
    "is_deleted",
    "email_primary.email",
    "api_key",
];
/// The contact fields and the joined CMS user ([`super::clause::UF_JOIN`]).
pub(crate) const LINKED_FIELDS: &[&str] = &[
    "id",
    "display_name",
    "sort_name",
    "contact_type",
    "is_deleted",
    "email_primary.email",
    "api_key",
    "uf_match.uf_id",
];
pub(crate) const KEY_FIELDS: &[&str] = &["id", "api_key"];

/// One row of a contact list.
#[derive(Deserialize)]
pub(crate) struct ContactRow {
    #[serde(deserialize_with = "de_id")]
    pub id: ContactId,
    #[serde(default, deserialize_with = "de_text")]
    contact_type: Option<String>,
    #[serde(default, deserialize_with = "de_text")]
    display_name: Option<String>,
    /// As the site compares it (the keyset cursor's), not as shown.
    #[serde(default, deserialize_with = "de_text")]
    pub sort_name: Option<String>,
    #[serde(default, deserialize_with = "de_flag")]
    is_deleted: bool,
    #[serde(rename = "email_primary.email", default, deserialize_with = "de_text")]
    email: Option<String>,
    /// Absent = CiviCRM hid it (the permission trap); `Some(None)` = no key.
    #[serde(default, deserialize_with = "de_key")]
    api_key: Option<Option<ApiKey>>,
    /// The joined CMS user (cv's `uf_match` join). Absent = not joined, or this CiviCRM
    /// cannot join uf_match; `Some(None)` = no CMS user.
    #[serde(rename = "uf_match.uf_id", default, deserialize_with = "de_some_id")]
    uf_id: Option<Option<u64>>,
}

/// A contact read from one or more rows, with what the list does not show.
pub(crate) struct Merged {
    pub contact: Contact,
    /// The sort name as the site compares it: the keyset cursor's.
    pub sort_name: Option<String>,
    /// The stored key (key holders need it; lists only its hint).
    pub key: Option<ApiKey>,
    /// How many rows it took.
    pub rows: usize,
}

impl Merged {
    /// The contact as a key holder: it came from an `api_key IS NOT NULL` page, so a
    /// contact without a key means `who` ignored the filter (and would list everyone).
    pub fn into_holder(self, who: &str) -> Result<Holder, StoreError> {
        match self.key {
            Some(key) => Ok(Holder {
                contact: self.contact,
                key,
            }),
            None => Err(StoreError::bad_data(format!(
                "{who} returned contacts without a key when asked for key holders: it \
                 ignored the filter; refused"
            ))),
        }
    }
}

/// Folds consecutive rows of one contact (rows come ordered, so a contact's rows are
/// adjacent) into one contact. The CMS link is the lowest CMS user id: one per domain,
/// any of them proves a CMS user exists. A row without `api_key` is refused with
/// `keys_hidden`: such a list would show every contact as keyless.
pub(crate) fn merge_rows(
    rows: Vec<ContactRow>,
    keys_hidden: impl Fn() -> StoreError,
) -> Result<Vec<Merged>, StoreError> {
    let mut out: Vec<Merged> = Vec::with_capacity(rows.len());
    for row in rows {
        let cms = match row.uf_id {
            None => CmsLink::Unknown,
            Some(None) => CmsLink::None,
            Some(Some(uf_id)) => CmsLink::Linked { uf_id },
        };
        let Some(key) = row.api_key else {
            return Err(keys_hidden());
        };
        if let Some(last) = out.last_mut().filter(|m| m.contact.id == row.id) {
            last.rows += 1;
            last.contact.cms = match (last.contact.cms, cms) {
                (CmsLink::Linked { uf_id: a }, CmsLink::Linked { uf_id: b }) => {
                    CmsLink::Linked { uf_id: a.min(b) }
                }
                (CmsLink::Linked { uf_id }, _) | (_, CmsLink::Linked { uf_id }) => {
                    CmsLink::Linked { uf_id }
                }
                (kept, _) => kept,
            };
            continue;
        }
        let key = key.filter(|k| !k.is_empty());
        let text = |value: &Option<String>| SafeText::new(value.as_deref().unwrap_or_default());
        out.push(Merged {
            contact: Contact {
                id: row.id,
                contact_type: text(&row.contact_type),
                display_name: text(&row.display_name),
                sort_name: text(&row.sort_name),
                email: row
                    .email
                    .filter(|e| !e.is_empty())
                    .map(|e| SafeText::new(&e)),
                is_deleted: row.is_deleted,
                // A hint at once: the key itself never reaches a Contact.
                key: key.as_ref().map(ApiKey::hint),
                cms,
            },
            sort_name: row.sort_name,
            key,
            rows: 1,
        });
    }
    Ok(out)
}

/// The contacts of `rows`, folded.
pub(crate) fn contacts_of(
    rows: Vec<ContactRow>,
    keys_hidden: impl Fn() -> StoreError,
) -> Result<Vec<Contact>, StoreError> {
    Ok(merge_rows(rows, keys_hidden)?
        .into_iter()
        .map(|m| m.contact)
        .collect())
}

/// An id and its key.
#[derive(Deserialize)]
pub(crate) struct KeyRow {
    #[serde(deserialize_with = "de_id")]
    pub id: ContactId,
    /// Absent = CiviCRM hid it; `Some(None)` = no key.
    #[serde(default, deserialize_with = "de_key")]
    api_key: Option<Option<ApiKey>>,
}

impl KeyRow {
    /// The stored key (an empty string is no key); `keys_hidden` when CiviCRM hid it.
    pub fn key(self, keys_hidden: impl Fn() -> StoreError) -> Result<Option<ApiKey>, StoreError> {
        match self.api_key {
            None => Err(keys_hidden()),
            Some(key) => Ok(key.filter(|k| !k.is_empty())),
        }
    }
}

/// An id and its sort name (a sorted branch's rows).
#[derive(Deserialize)]
pub(crate) struct SortRow {
    #[serde(deserialize_with = "de_id")]
    pub id: ContactId,
    #[serde(default, deserialize_with = "de_text")]
    pub sort_name: Option<String>,
}

/// An id alone.
#[derive(Deserialize)]
pub(crate) struct IdRow {
    #[serde(deserialize_with = "de_id")]
    pub id: ContactId,
}

/// A UFMatch row: a contact's CMS user on a domain.
#[derive(Deserialize)]
pub(crate) struct LinkRow {
    #[serde(default, deserialize_with = "de_opt_id")]
    pub contact_id: Option<ContactId>,
    #[serde(default, deserialize_with = "de_opt_id")]
    pub uf_id: Option<u64>,
}

/// A User.get row (Standalone's users).
#[derive(Deserialize)]
pub(crate) struct UserRow {
    #[serde(deserialize_with = "de_id")]
    pub id: u64,
    #[serde(deserialize_with = "de_id")]
    pub contact_id: ContactId,
    #[serde(default, deserialize_with = "de_text")]
    pub username: Option<String>,
    #[serde(default = "active_by_default", deserialize_with = "de_flag")]
    pub is_active: bool,
    #[serde(default)]
    pub roles: Vec<Value>,
}

fn active_by_default() -> bool {
    true
}

/// A Role.get row.
#[derive(Deserialize)]
pub(crate) struct RoleRow {
    #[serde(deserialize_with = "de_id")]
    pub id: u64,
    #[serde(default, deserialize_with = "de_text")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "de_text")]
    pub label: Option<String>,
    #[serde(default)]
    pub permissions: Vec<Value>,
}

/// An id as API v4 sends it: a number, or (some versions, proxies) a string of digits.
pub(crate) fn id_of(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn de_id<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    id_of(&Value::deserialize(d)?)
        .ok_or_else(|| serde::de::Error::custom("an id that is not a number"))
}

fn de_opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(id_of(&Value::deserialize(d)?))
}

fn de_some_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Some(None)),
        v => id_of(&v)
            .map(|id| Some(Some(id)))
            .ok_or_else(|| serde::de::Error::custom("a CMS user id that is not a number")),
    }
}

/// Text as CiviCRM sends it; a number or a flag where text was expected is shown as
/// written, NULL is None.
fn de_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    })
}

/// A boolean as API v4 returns it (true/false), or as 0/1 and "0"/"1".
fn de_flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => b,
        Value::Null => false,
        Value::String(s) => !matches!(s.trim(), "" | "0"),
        other => id_of(&other).is_none_or(|n| n != 0),
    })
}

/// The key, straight into an [`ApiKey`] (zeroized when dropped).
fn de_key<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<ApiKey>>, D::Error> {
    Ok(Some(
        Option::<String>::deserialize(d)?.map(ApiKey::from_store),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: u64, uf: Option<Option<u64>>) -> ContactRow {
        ContactRow {
            id,
            contact_type: Some("Individual".into()),
            display_name: Some(format!("C{id}")),
            sort_name: Some(format!("C{id}")),
            is_deleted: false,
            email: None,
            api_key: Some(None),
            uf_id: uf,
        }
    }

    #[test]
    fn repeated_rows_fold_into_one_contact() {
        let merged = merge_rows(
            vec![
                row(1, Some(Some(9))),
                row(1, Some(Some(4))),
                row(2, Some(None)),
                row(3, None),
            ],
            || StoreError::Conflict,
        )
        .unwrap();
        let summary: Vec<(u64, CmsLink, usize)> = merged
            .iter()
            .map(|m| (m.contact.id, m.contact.cms, m.rows))
            .collect();
        assert_eq!(
            summary,
            vec![
                (1, CmsLink::Linked { uf_id: 4 }, 2),
                (2, CmsLink::None, 1),
                (3, CmsLink::Unknown, 1)
            ]
        );
    }

    #[test]
    fn ids_flags_and_null_sort_names_in_every_form() {
        let rows: Vec<ContactRow> = serde_json::from_str(
            r#"[{"id":"7","sort_name":null,"is_deleted":"1","api_key":""},
                {"id":8,"sort_name":"A","is_deleted":false,"api_key":null,"uf_match.uf_id":"3"}]"#,
        )
        .unwrap();
        let merged = merge_rows(rows, || StoreError::Conflict).unwrap();
        assert_eq!(merged[0].contact.id, 7);
        assert_eq!(merged[0].sort_name, None);
        assert!(merged[0].contact.is_deleted && merged[0].key.is_none());
        assert_eq!(merged[1].contact.cms, CmsLink::Linked { uf_id: 3 });
        let hidden: Vec<ContactRow> = serde_json::from_str(r#"[{"id":1}]"#).unwrap();
        assert!(matches!(
            merge_rows(hidden, || StoreError::Conflict),
            Err(StoreError::Conflict)
        ));
    }
}
