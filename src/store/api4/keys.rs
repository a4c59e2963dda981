//! The key steps of both API v4 stores, single and batched (bulk rotation's): reading
//! keys by ids, finding the holders of keys, and the compare-and-set of keys with its one
//! reading of an update's count (1 done, 0 a conflict or a contact gone, more: damage).
//!
//! An update's own filter compares as MySQL does (case-insensitively), and the contract is
//! byte for byte: the exact key is read first, and the update's filter still refuses any
//! other key written between the two (only another case of the very same key could slip
//! through, which random keys make vanishingly unlikely). Every filter on a key is checked
//! against the rows it returned: a site that dropped it (the permission trap) would
//! otherwise list every contact.

use std::collections::HashMap;

use super::clause::{any_deleted, by_id, by_ids, Clause, GetParams, Val, ID_ORDER};
use super::rows::{KeyRow, KEY_FIELDS};
use super::{Api4, IDS_PER_CALL, KEYS_PER_CALL, MAX_HOLDERS};
use crate::key::{ApiKey, KEY_LEN};
use crate::sanitize::SafeText;
use crate::store::{ContactId, KeySwap, StoreError};

/// The key of contact `id`, byte for byte as stored.
pub(crate) fn read_key(api: &impl Api4, id: ContactId) -> Result<Option<ApiKey>, StoreError> {
    let params = GetParams::new(KEY_FIELDS, vec![by_id(id), any_deleted()]).limit(2);
    let rows: Vec<KeyRow> = api.get("Contact", &params, &[])?;
    let mut rows = rows.into_iter();
    let row = rows.next().ok_or(StoreError::NotFound(id))?;
    if row.id != id || rows.next().is_some() {
        return Err(StoreError::bad_data(format!(
            "{} answered a lookup of contact {id} with other or several contacts",
            api.who()
        )));
    }
    row.key(|| api.keys_hidden())
}

/// The keys of `ids`, a page of ids per call; a contact that does not exist is absent.
pub(crate) fn read_keys(
    api: &impl Api4,
    ids: &[ContactId],
) -> Result<HashMap<ContactId, Option<ApiKey>>, StoreError> {
    let mut keys = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(IDS_PER_CALL) {
        let params =
            GetParams::new(KEY_FIELDS, vec![by_ids(chunk), any_deleted()]).limit(chunk.len());
        let rows: Vec<KeyRow> = api.get("Contact", &params, &[])?;
        for row in rows {
            if !chunk.contains(&row.id) {
                return Err(StoreError::bad_data(format!(
                    "asked for the keys of {} contacts, {} answered with contact {}",
                    chunk.len(),
                    api.who(),
                    row.id
                )));
            }
            let id = row.id;
            keys.insert(id, row.key(|| api.keys_hidden())?);
        }
    }
    Ok(keys)
}

/// The contacts holding `key`, compared as the site compares (case-insensitively).
pub(crate) fn holders_of(api: &impl Api4, key: &ApiKey) -> Result<Vec<ContactId>, StoreError> {
    Ok(holders_of_keys(api, &[key])?.pop().unwrap_or_default())
}

/// [`holders_of`] each key, in order: one `api_key IN [...]` call per [`KEYS_PER_CALL`]
/// keys. Each row must hold one of the keys asked about.
pub(crate) fn holders_of_keys(
    api: &impl Api4,
    keys: &[&ApiKey],
) -> Result<Vec<Vec<ContactId>>, StoreError> {
    let mut holders = vec![Vec::new(); keys.len()];
    for (n, chunk) in keys.chunks(KEYS_PER_CALL).enumerate() {
        let filter = match chunk {
            [key] => Clause::Cmp("api_key", "=", Val::Secret(key.expose())),
            _ => Clause::Cmp(
                "api_key",
                "IN",
                Val::Secrets(chunk.iter().map(|k| k.expose()).collect()),
            ),
        };
        let params = GetParams::new(KEY_FIELDS, vec![filter, any_deleted()])
            .order(ID_ORDER)
            .limit(MAX_HOLDERS + 1);
        let rows: Vec<KeyRow> = api.get("Contact", &params, chunk)?;
        if rows.len() > MAX_HOLDERS {
            return Err(StoreError::bad_data(format!(
                "more than {MAX_HOLDERS} contacts matched {}: {} ignored the key filter",
                if chunk.len() == 1 {
                    "one key"
                } else {
                    "new keys"
                },
                api.who()
            )));
        }
        for row in rows {
            let id = row.id;
            let held = row.key(|| api.keys_hidden())?;
            let mut matched = false;
            for (i, key) in chunk.iter().enumerate() {
                if held.as_ref().is_some_and(|h| h.eq_ignore_case(key)) {
                    let list = &mut holders[n * KEYS_PER_CALL + i];
                    if !list.contains(&id) {
                        list.push(id);
                    }
                    matched = true;
                }
            }
            if !matched {
                return Err(StoreError::bad_data(format!(
                    "{} returned contacts that do not hold the keys it was asked about; it \
                     ignored the key filter, so no uniqueness check is possible",
                    api.who()
                )));
            }
        }
    }
    Ok(holders)
}

/// A new key CiviCRM's column would silently cut is refused before anything is sent.
fn check_new_key(new: Option<&ApiKey>) -> Result<(), StoreError> {
    match new {
        Some(k) if k.len() > KEY_LEN => Err(StoreError::invalid(format!(
            "the new key has {} characters; CiviCRM's api_key holds {KEY_LEN} and would \
             silently cut it. Nothing was written",
            k.len()
        ))),
        _ => Ok(()),
    }
}

/// Whether the exact key read is the one expected.
fn is_expected(current: Option<&ApiKey>, expected: Option<&ApiKey>) -> bool {
    current.map(ApiKey::expose) == expected.map(ApiKey::expose)
}

/// The compare-and-set of one contact's key ([`crate::store::ContactStore::swap_key`]).
pub(crate) fn swap_key(
    api: &impl Api4,
    id: ContactId,
    expected: Option<&ApiKey>,
    new: Option<&ApiKey>,
) -> Result<(), StoreError> {
    check_new_key(new)?;
    // This read also meets the permission trap before anything is sent that could write.
    if !is_expected(read_key(api, id)?.as_ref(), expected) {
        return Err(StoreError::Conflict);
    }
    let swap = KeySwap { id, expected, new };
    match outcome(api, id, api.update(&swap))? {
        Some(done) => Ok(done),
        None => nothing_matched(api, &[id])
            .pop()
            .unwrap_or(Err(StoreError::Conflict)),
    }
}

/// [`swap_key`] of each swap, each with its own outcome: the exact keys read in one call,
/// then the updates ([`Api4::updates`], [`KEYS_PER_CALL`] at a time), then one read of
/// the contacts none of whose updates matched.
pub(crate) fn swap_keys(api: &impl Api4, swaps: &[KeySwap<'_>]) -> Vec<Result<(), StoreError>> {
    let mut results: Vec<Option<Result<(), StoreError>>> = swaps
        .iter()
        .map(|s| check_new_key(s.new).err().map(Err))
        .collect();
    let ids: Vec<ContactId> = swaps.iter().map(|s| s.id).collect();
    match read_keys(api, &ids) {
        Err(e) => {
            for r in results.iter_mut().filter(|r| r.is_none()) {
                *r = Some(Err(e.again()));
            }
        }
        Ok(current) => {
            for (s, r) in swaps.iter().zip(results.iter_mut()) {
                if r.is_some() {
                    continue;
                }
                match current.get(&s.id) {
                    None => *r = Some(Err(StoreError::NotFound(s.id))),
                    Some(key) if !is_expected(key.as_ref(), s.expected) => {
                        *r = Some(Err(StoreError::Conflict))
                    }
                    Some(_) => {}
                }
            }
        }
    }
    let pending: Vec<usize> = (0..swaps.len()).filter(|&i| results[i].is_none()).collect();
    let mut unmatched = Vec::new();
    for chunk in pending.chunks(KEYS_PER_CALL) {
        for (i, count) in api.updates(swaps, chunk) {
            match outcome(api, swaps[i].id, count) {
                Ok(Some(done)) => results[i] = Some(Ok(done)),
                Ok(None) => unmatched.push(i),
                Err(e) => results[i] = Some(Err(e)),
            }
        }
    }
    let ids: Vec<ContactId> = unmatched.iter().map(|&i| swaps[i].id).collect();
    for (i, result) in unmatched.into_iter().zip(nothing_matched(api, &ids)) {
        results[i] = Some(result);
    }
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(StoreError::OutcomeUnknown(SafeText::new(
                    "no answer came for this update; look at the contact again before retrying",
                )))
            })
        })
        .collect()
}

/// An update's count read: Some(()) done (one contact changed), None nothing matched,
/// an error for more than one (the filter on the id was not applied) or none known.
fn outcome(
    api: &impl Api4,
    id: ContactId,
    count: Result<u64, StoreError>,
) -> Result<Option<()>, StoreError> {
    match count? {
        1 => Ok(Some(())),
        0 => Ok(None),
        n => Err(StoreError::bad_data(format!(
            "{} changed {n} contacts for contact id {id}; check the contacts' keys",
            api.who()
        ))),
    }
}

/// Nothing matched the compare-and-set of `ids`: a conflict, unless the contact is gone.
fn nothing_matched(api: &impl Api4, ids: &[ContactId]) -> Vec<Result<(), StoreError>> {
    let found = read_keys(api, ids);
    ids.iter()
        .map(|id| match &found {
            Ok(found) if found.contains_key(id) => Err(StoreError::Conflict),
            Ok(_) => Err(StoreError::NotFound(*id)),
            Err(e) => Err(e.again()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use serde::de::DeserializeOwned;
    use serde_json::json;

    use super::*;

    /// A site of three contacts whose updates answer the counts given, in order.
    struct Site {
        keys: RefCell<HashMap<ContactId, Option<String>>>,
        counts: RefCell<Vec<u64>>,
        users_seen: std::sync::OnceLock<crate::store::api4::users::Seen>,
    }

    impl Site {
        fn new(counts: &[u64]) -> Site {
            let keys = [(1, Some("KeyOne")), (2, None), (3, Some("KeyThree"))]
                .into_iter()
                .map(|(id, k)| (id, k.map(String::from)))
                .collect();
            Site {
                keys: RefCell::new(keys),
                counts: RefCell::new(counts.to_vec()),
                users_seen: std::sync::OnceLock::new(),
            }
        }
    }

    impl Api4 for Site {
        fn who(&self) -> &'static str {
            "the stub"
        }

        /// The keys of the contacts the first clause names (`id =` or `id IN`).
        fn get<T: DeserializeOwned>(
            &self,
            _: &'static str,
            params: &GetParams<'_>,
            _: &[&ApiKey],
        ) -> Result<Vec<T>, StoreError> {
            let asked = serde_json::to_value(params).map_err(StoreError::bad_data)?;
            let ids: Vec<u64> = match &asked["where"][0][2] {
                serde_json::Value::Array(ids) => ids.iter().filter_map(|v| v.as_u64()).collect(),
                one => one.as_u64().into_iter().collect(),
            };
            let rows: Vec<_> = self
                .keys
                .borrow()
                .iter()
                .filter(|(id, _)| ids.contains(id))
                .map(|(id, key)| json!({"id": id, "api_key": key}))
                .collect();
            serde_json::from_value(json!(rows)).map_err(StoreError::bad_data)
        }

        fn get_if_there<T: DeserializeOwned>(
            &self,
            _: &'static str,
            _: &GetParams<'_>,
        ) -> Result<crate::store::api4::IfThere<T>, StoreError> {
            Ok(crate::store::api4::IfThere::Absent)
        }

        fn users_seen(&self) -> &std::sync::OnceLock<crate::store::api4::users::Seen> {
            &self.users_seen
        }

        fn keys_hidden(&self) -> StoreError {
            StoreError::bad_data("hidden")
        }

        fn update(&self, swap: &KeySwap<'_>) -> Result<u64, StoreError> {
            let count = self.counts.borrow_mut().remove(0);
            if count == 1 {
                let new = swap.new.map(|k| k.expose().to_string());
                self.keys.borrow_mut().insert(swap.id, new);
            }
            Ok(count)
        }
    }

    fn key(text: &str) -> ApiKey {
        ApiKey::from_store(text.into())
    }

    /// One row changed: done; none: a conflict (the contact is there) or not found (gone);
    /// more than one: refused as damage; a stale expectation or an over-long key: nothing
    /// sent.
    #[test]
    fn the_compare_and_set_outcome_is_read_once_for_every_swap() {
        let (one, three, new) = (key("KeyOne"), key("KeyThree"), key("NewKey"));
        let long = key(&"k".repeat(KEY_LEN + 1));
        let site = Site::new(&[1, 0, 2]);
        let swaps = [
            KeySwap {
                id: 1,
                expected: Some(&one),
                new: Some(&new),
            },
            KeySwap {
                id: 2,
                expected: None,
                new: Some(&new),
            },
            KeySwap {
                id: 3,
                expected: Some(&three),
                new: None,
            },
            KeySwap {
                id: 3,
                expected: Some(&one),
                new: None,
            },
            KeySwap {
                id: 9,
                expected: None,
                new: Some(&new),
            },
            KeySwap {
                id: 2,
                expected: None,
                new: Some(&long),
            },
        ];
        let got: Vec<String> = swap_keys(&site, &swaps)
            .into_iter()
            .map(|r| match r {
                Ok(()) => "done".into(),
                Err(StoreError::Conflict) => "conflict".into(),
                Err(StoreError::NotFound(id)) => format!("gone {id}"),
                Err(StoreError::BadData(_)) => "damage".into(),
                Err(StoreError::Invalid(_)) => "refused".into(),
                Err(e) => format!("{e}"),
            })
            .collect();
        assert_eq!(
            got,
            ["done", "conflict", "damage", "conflict", "gone 9", "refused"]
        );
        assert!(site.counts.borrow().is_empty(), "three updates were sent");
        assert_eq!(
            read_key(&site, 1).unwrap().map(|k| k.expose().to_string()),
            Some("NewKey".into())
        );
    }
}
