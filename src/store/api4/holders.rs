//! Key holders as both API v4 stores read them: `api_key IS NOT NULL` pages in id order,
//! each contact with its CMS link joined (no UFMatch call per page), the next page after
//! the last id. An id never changes, so keys changed while the pages are read never make
//! a holder read twice or skipped (an offset would skip one when a key before it is
//! revoked; a key order would when a key moves behind the cursor).
//!
//! A whole-site read ([`read_all`]) first asks for the holders' ids alone, then reads the
//! contacts in id windows of at most [`HOLDER_PAGE`] holders each. Without the windows each
//! page's `ORDER BY id LIMIT n` makes MariaDB read and sort every holder after the cursor
//! (a range of `index_api_key`, then a filesort): five pages of 10,000 read 150,000 rows
//! for 50,000 holders. With them each page sorts its own window's holders only, so each
//! holder's row is read once for its contact fields.

use super::clause::{self, Clause, GetParams, Val, ID_ORDER, UF_JOIN};
use super::rows::{merge_rows, ContactRow, IdRow, LINKED_FIELDS};
use super::Api4;
use crate::store::paging::{holder_limit, HOLDER_PAGE};
use crate::store::{ContactId, Holder, HolderCursor, HolderPage, StoreError};

/// Ids asked for in one call of the ids pass: an id is about 15 bytes of answer, so a
/// page is under 2 MB, and a site with ten times the recorded site's 50,000 holders takes
/// five such calls.
const ID_PAGE: usize = 100_000;

/// One page of at most `limit` key holders (at most [`HOLDER_PAGE`]) after `after`, in
/// one call. A contact linked on several domains comes as several rows: the rows are read
/// with a limit of one more than the page, and the last contact read is left to the next
/// page (its rows may go on past this one).
pub(crate) fn holders_page(
    api: &impl Api4,
    after: Option<&HolderCursor>,
    limit: usize,
) -> Result<HolderPage, StoreError> {
    holders_up_to(api, after, None, limit)
}

/// [`holders_page`] within ids up to `until` (inclusive) when given: the page of a window.
fn holders_up_to(
    api: &impl Api4,
    after: Option<&HolderCursor>,
    until: Option<ContactId>,
    limit: usize,
) -> Result<HolderPage, StoreError> {
    let limit = holder_limit(limit);
    let mut where_ = clause::key_holders();
    if let Some(cursor) = after {
        where_.push(Clause::Cmp("id", ">", Val::Int(cursor.after_id)));
    }
    if let Some(until) = until {
        where_.push(Clause::Cmp("id", "<=", Val::Int(until)));
    }
    let params = GetParams {
        join: vec![UF_JOIN],
        ..GetParams::new(LINKED_FIELDS, where_)
            .order(ID_ORDER)
            .limit(limit + 1)
    };
    let rows: Vec<ContactRow> = api.get("Contact", &params, &[])?;
    let more = rows.len() > limit;
    let mut merged = merge_rows(rows, || api.keys_hidden())?;
    if more {
        merged.pop();
        if merged.is_empty() {
            return Err(StoreError::bad_data(format!(
                "{} answered a page of key holders with one contact's rows alone",
                api.who()
            )));
        }
    }
    let next = more.then(|| HolderCursor {
        after_id: merged.last().map_or(0, |m| m.contact.id),
    });
    let holders = merged
        .into_iter()
        .map(|m| m.into_holder(api.who()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HolderPage { holders, next })
}

/// Every key holder, handed to `each` a page at a time: the windows' upper ids from the
/// ids pass ([`window_ends`]), then each window read by [`holders_up_to`] (more than one
/// page when holders came into it since). The windows tile every id, the last one open, so
/// a holder is read once whatever changed since the ids were read: the ids only choose
/// where the windows end.
pub(crate) fn read_all(
    api: &impl Api4,
    each: &mut dyn FnMut(Vec<Holder>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    read_windows(api, HOLDER_PAGE, ID_PAGE, each)
}

/// [`read_all`] with windows of `per_window` holders and ids read `id_page` at a time.
fn read_windows(
    api: &impl Api4,
    per_window: usize,
    id_page: usize,
    each: &mut dyn FnMut(Vec<Holder>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let ends = window_ends(api, per_window, id_page)?;
    let mut after: Option<HolderCursor> = None;
    for until in ends.into_iter().map(Some).chain([None]) {
        loop {
            let page = holders_up_to(api, after.as_ref(), until, per_window)?;
            each(page.holders)?;
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        if let Some(until) = until {
            after = Some(HolderCursor { after_id: until });
        }
    }
    Ok(())
}

/// The ids that end windows of `per_window` holders each, ascending: every
/// `per_window`-th holder's id, from the holders' ids alone read `id_page` at a time
/// (keyset on id). The holders after the last end make the last, open, window.
fn window_ends(
    api: &impl Api4,
    per_window: usize,
    id_page: usize,
) -> Result<Vec<ContactId>, StoreError> {
    let mut ends = Vec::new();
    let mut counted = 0usize;
    let mut after: ContactId = 0;
    loop {
        let mut where_ = clause::key_holders();
        where_.push(Clause::Cmp("id", ">", Val::Int(after)));
        let params = GetParams::new(&["id"], where_)
            .order(ID_ORDER)
            .limit(id_page);
        let ids: Vec<IdRow> = api.get("Contact", &params, &[])?;
        for row in &ids {
            if row.id <= after {
                return Err(StoreError::bad_data(format!(
                    "{} answered the key holders' ids out of order ({} after {after})",
                    api.who(),
                    row.id
                )));
            }
            after = row.id;
            counted += 1;
            if counted % per_window == 0 {
                ends.push(row.id);
            }
        }
        if ids.len() < id_page {
            return Ok(ends);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use serde::de::DeserializeOwned;
    use serde_json::{json, Value};

    use super::*;
    use crate::key::ApiKey;
    use crate::store::api4::clause::GetParams;
    use crate::store::api4::{users, IfThere};
    use crate::store::KeySwap;

    type Keys = BTreeMap<ContactId, String>;

    /// A site of contacts and keys, answering Contact.get as API v4 does for the clauses
    /// the holders' read sends; `between` changes keys before each call (by call number).
    struct Site {
        keys: RefCell<Keys>,
        calls: RefCell<Vec<Value>>,
        between: RefCell<Box<dyn FnMut(usize, &mut Keys)>>,
        seen: std::sync::OnceLock<users::Seen>,
    }

    impl Api4 for Site {
        fn who(&self) -> &'static str {
            "the site"
        }

        fn get<T: DeserializeOwned>(
            &self,
            entity: &'static str,
            params: &GetParams<'_>,
            _: &[&ApiKey],
        ) -> Result<Vec<T>, StoreError> {
            assert_eq!(entity, "Contact");
            let params = serde_json::to_value(params).unwrap();
            let n = self.calls.borrow().len();
            (self.between.borrow_mut())(n, &mut self.keys.borrow_mut());
            self.calls.borrow_mut().push(params.clone());
            let bound = |c: &Value| c[2].as_u64().unwrap();
            let mut rows: Vec<Value> = Vec::new();
            for (id, key) in self.keys.borrow().iter() {
                let holds = params["where"].as_array().unwrap().iter().all(|c| {
                    match (c[0].as_str().unwrap(), c[1].as_str().unwrap()) {
                        ("api_key", "IS NOT NULL") | ("is_deleted", "IN") => true,
                        ("api_key", "!=") => !key.is_empty(),
                        ("id", ">") => *id > bound(c),
                        ("id", "<=") => *id <= bound(c),
                        other => panic!("not a holders' clause: {other:?}"),
                    }
                });
                if holds {
                    rows.push(json!({
                        "id": id, "display_name": format!("Contact {id}"),
                        "sort_name": format!("Contact {id}"), "contact_type": "Individual",
                        "is_deleted": false, "email_primary.email": null,
                        "api_key": key, "uf_match.uf_id": null,
                    }));
                }
            }
            assert_eq!(params["orderBy"], json!({"id": "ASC"}));
            rows.truncate(params["limit"].as_u64().unwrap() as usize);
            Ok(rows
                .into_iter()
                .map(|r| serde_json::from_value(r).unwrap())
                .collect())
        }

        fn get_if_there<T: DeserializeOwned>(
            &self,
            _: &'static str,
            _: &GetParams<'_>,
        ) -> Result<IfThere<T>, StoreError> {
            unreachable!("the holders' read asks no other entity")
        }

        fn users_seen(&self) -> &std::sync::OnceLock<users::Seen> {
            &self.seen
        }

        fn keys_hidden(&self) -> StoreError {
            StoreError::bad_data("hidden")
        }

        fn update(&self, _: &KeySwap<'_>) -> Result<u64, StoreError> {
            unreachable!("the holders' read writes nothing")
        }
    }

    fn site(
        holders: impl IntoIterator<Item = ContactId>,
        between: impl FnMut(usize, &mut Keys) + 'static,
    ) -> Site {
        Site {
            keys: RefCell::new(
                holders
                    .into_iter()
                    .map(|id| (id, format!("Key{id:0>29}")))
                    .collect(),
            ),
            calls: RefCell::new(Vec::new()),
            between: RefCell::new(Box::new(between)),
            seen: std::sync::OnceLock::new(),
        }
    }

    fn read(site: &Site, per_window: usize, id_page: usize) -> Vec<ContactId> {
        let mut read = Vec::new();
        read_windows(site, per_window, id_page, &mut |batch| {
            assert!(batch.len() <= per_window);
            read.extend(batch.iter().map(|h| h.contact.id));
            Ok(())
        })
        .unwrap();
        read
    }

    #[test]
    fn windows_read_each_holder_once_in_few_calls() {
        // 25 holders (odd ids), windows of 4, ids 10 a call: 3 id calls, 7 windows.
        let s = site((0..25).map(|i| 2 * i + 1), |_, _| {});
        let got = read(&s, 4, 10);
        assert_eq!(got, (0..25).map(|i| 2 * i + 1).collect::<Vec<_>>());
        let calls = s.calls.borrow();
        assert_eq!(calls.len(), 3 + 7, "{calls:#?}");
        assert!(calls[..3].iter().all(|c| c["select"] == json!(["id"])));
        // Every window but the last is closed above; each starts where the last ended.
        assert_eq!(
            calls[3]["where"].as_array().unwrap().last().unwrap(),
            &json!(["id", "<=", 7])
        );
        assert_eq!(
            calls[9]["where"].as_array().unwrap().last().unwrap(),
            &json!(["id", ">", 47])
        );
    }

    #[test]
    fn keys_changed_between_calls_never_make_a_holder_read_twice_or_missed() {
        // Holders 1, 3, ..., 39 (20); windows of 4 end at ids 7, 15, 23, 31, 39.
        let all_along: Vec<ContactId> = (0..20)
            .map(|i| 2 * i + 1)
            .filter(|id| ![9, 17, 33].contains(id))
            .collect();
        let s = site((0..20).map(|i| 2 * i + 1), |call, keys| match call {
            // After the ids: new holders in the first window (it now needs two pages)
            // and past the last id; a holder of the third window revoked; a holder of
            // the fifth window given a key that sorts first.
            1 => {
                keys.insert(2, "NewKeyInTheFirstWindow0000000002".into());
                keys.insert(4, "NewKeyInTheFirstWindow0000000004".into());
                keys.insert(90, "NewKeyAfterTheLastId0000000000090".into());
                keys.remove(&17);
                keys.insert(33, "000000AAAAMovedFirst000000000033".into());
            }
            // Between windows: a holder already read revoked, one ahead revoked and
            // given a key again, a new holder behind the windows read.
            4 => {
                keys.remove(&9);
                keys.remove(&25);
                keys.insert(25, "BackAgain00000000000000000000025".into());
                keys.insert(6, "TooLateBehindTheWindows000000006".into());
            }
            _ => {}
        });
        let got = read(&s, 4, 100);
        let mut once = got.clone();
        once.sort_unstable();
        once.dedup();
        assert_eq!(once.len(), got.len(), "a holder read twice: {got:?}");
        for id in all_along.iter().chain(&[2, 4, 90, 33, 9]) {
            assert!(got.contains(id), "{id} missed: {got:?}");
        }
        assert!(!got.contains(&17), "revoked before its window: {got:?}");
    }
}
