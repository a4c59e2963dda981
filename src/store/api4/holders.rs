//! Key holders as both API v4 stores read them: `api_key IS NOT NULL` pages in id order,
//! each contact with its CMS link joined (no UFMatch call per page), the next page after
//! the last id. An id never changes, so keys changed while the pages are read never make
//! a holder read twice or skipped (an offset would skip one when a key before it is
//! revoked; a key order would when a key moves behind the cursor).
//!
//! A whole-site read ([`read_all`]) reads the contacts in id windows of about
//! [`HOLDER_PAGE`] holders each. Without the windows each page's `ORDER BY id LIMIT n`
//! makes MariaDB read and sort every holder after the cursor (a range of `index_api_key`,
//! then a filesort): five pages of 10,000 read 150,000 rows for 50,000 holders. With them
//! each page sorts its own window's holders only, so each holder's row is read once. The
//! windows are sized from the holders the last one held (no call to count or list them
//! first, which would read every holder's row once more on the site).

use std::sync::{Condvar, Mutex};

use super::clause::{self, Clause, GetParams, SortOrder, Val, ID_ORDER, UF_JOIN};
use super::paging::shrinking;
use super::rows::{merge_rows, ContactRow, IdRow, LINKED_FIELDS};
use super::Api4;
use crate::store::paging::{holder_limit, HOLDER_PAGE};
use crate::store::read_ahead::{read_ahead_all, users_beside, Emit};
use crate::store::{ContactId, HolderCursor, HolderPage, SiteReader, StoreError};

/// The first window spans this share of the ids (an eighth), before any holder is seen,
/// or a page's worth of ids if that is more.
const FIRST_WINDOW_SHARE: u64 = 8;

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

/// Every key holder, handed to `each` a page at a time: the site's highest id (one call),
/// then the holders in id windows, each read by [`holders_up_to`] (more than one page when
/// it holds more than a page). The windows tile every id, the last one open, so a holder
/// is read once whatever changes meanwhile: the sizes only decide how many calls it takes.
pub(crate) fn read_all(api: &(impl Api4 + Sync), each: &mut Emit<'_>) -> Result<(), StoreError> {
    read_windows(api, HOLDER_PAGE, each)
}

/// [`read_all`], with the site's users read beside the windows (their calls while the
/// windows' answers come): what the health check reads
/// ([`crate::store::ContactStore::read_users_and_holders`]).
pub(crate) fn read_with_users(
    api: &(impl Api4 + Sync),
    each: &mut SiteReader<'_>,
) -> Result<(), StoreError> {
    users_beside(
        || super::users::site_users(api).map(Some),
        |emit| read_windows(api, HOLDER_PAGE, emit),
        each,
    )
}

/// [`read_all`] with windows aimed at nine tenths of `per_window` holders (so that nearly
/// all take one call) and pages of `per_window`, read ahead of the judging
/// ([`read_ahead_all`]: the site's time and civikey's overlap). [`Api4::side_by_side`]
/// readers take the next window in turn ([`Tiling`]): with two, a window's answer is on
/// its way while the last one's is read.
fn read_windows(
    api: &(impl Api4 + Sync),
    per_window: usize,
    emit: &mut Emit<'_>,
) -> Result<(), StoreError> {
    let highest = highest_id(api)?;
    let tiling = Tiling {
        state: Mutex::new(Tiles {
            low: 0,
            // A small site (ids up to a page) in one window.
            width: (highest / FIRST_WINDOW_SHARE).max(per_window as u64),
            highest,
            done: false,
            first_out: false,
        }),
        counted: Condvar::new(),
    };
    let reader = |emit: &mut Emit<'_>| {
        // Halved while a page's answer is too large (`shrinking`), for the rest of the read.
        let mut page_limit = per_window;
        let read = (|| loop {
            let Some((low, width, until)) = tiling.take()? else {
                return Ok(());
            };
            let mut after = (low > 0).then_some(HolderCursor { after_id: low });
            let mut held = 0usize;
            loop {
                let page = shrinking(&mut page_limit, |limit| {
                    holders_up_to(api, after.as_ref(), until, limit)
                })?;
                held += page.holders.len();
                emit(page.holders)?;
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            tiling.counted(next_width(width, held, page_limit))?;
        })();
        if read.is_err() {
            // The other readers stop at their next window, none waits for this one's count.
            tiling.stop();
        }
        read
    };
    read_ahead_all(vec![reader; api.side_by_side().max(1)], emit)
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::bad_data("a reader of the key holders failed")
}

/// The windows of a whole read, shared by the readers side by side: each takes the next
/// window in turn ([`Tiles::take`]). Until the first window's holders are counted the
/// others wait (they would be sized blind, and take more calls in all).
struct Tiling {
    state: Mutex<Tiles>,
    /// The first window's holders were counted (or the read stopped).
    counted: Condvar,
}

impl Tiling {
    /// The next window ([`Tiles::take`]), once the first one's holders are counted.
    fn take(&self) -> Result<Option<(ContactId, u64, Option<ContactId>)>, StoreError> {
        let mut tiles = self.state.lock().map_err(poisoned)?;
        while tiles.first_out {
            tiles = self.counted.wait(tiles).map_err(poisoned)?;
        }
        Ok(tiles.take())
    }

    /// A window was read: the next one's width.
    fn counted(&self, width: u64) -> Result<(), StoreError> {
        let mut tiles = self.state.lock().map_err(poisoned)?;
        tiles.width = width;
        tiles.first_out = false;
        self.counted.notify_all();
        Ok(())
    }

    /// A reader failed: no more windows.
    fn stop(&self) {
        if let Ok(mut tiles) = self.state.lock() {
            tiles.done = true;
            tiles.first_out = false;
        }
        self.counted.notify_all();
    }
}

/// The ids not yet given to a window: windows `(low, low + width]` tile them from 0, the
/// last one, `(low, ∞)`, taken once it reaches the highest id (a contact added after the
/// read began falls in it). Each id is in one window, so a holder is read once whatever
/// changes meanwhile; the widths only decide how many calls it takes.
struct Tiles {
    low: ContactId,
    /// The next window's width, from the holders the last one read held ([`next_width`]).
    width: u64,
    highest: ContactId,
    /// The open window was taken.
    done: bool,
    /// The first window was taken and its holders are not counted yet.
    first_out: bool,
}

impl Tiles {
    /// The next window: its low end (excluded), its width, and its high end (included;
    /// None: open). None once the open window was taken.
    fn take(&mut self) -> Option<(ContactId, u64, Option<ContactId>)> {
        if self.done {
            return None;
        }
        let low = self.low;
        self.first_out = low == 0;
        let until = low
            .checked_add(self.width)
            .filter(|until| *until < self.highest);
        match until {
            Some(until) => self.low = until,
            None => self.done = true,
        }
        Some((low, self.width, until))
    }
}

/// The next window's width from this one's: scaled to hold nine tenths of `per_window`
/// holders at the density this one had, at most four times wider or narrower; twice as
/// wide after an empty one.
fn next_width(width: u64, held: usize, per_window: usize) -> u64 {
    let aim = (per_window as u64 * 9 / 10).max(1);
    let scaled = match held as u64 {
        0 => width.saturating_mul(2),
        held => width.saturating_mul(aim) / held,
    };
    scaled
        .clamp((width / 4).max(1), width.saturating_mul(4))
        .max(1)
}

/// The highest contact id, trashed contacts included: where the windows end (a contact
/// added after it falls in the last, open, window). By id, descending, one row: MariaDB
/// reads the primary key from its end.
fn highest_id(api: &impl Api4) -> Result<ContactId, StoreError> {
    const DESCENDING: SortOrder = SortOrder {
        sort_name: None,
        id: "DESC",
    };
    let params = GetParams::new(&["id"], vec![clause::any_deleted()])
        .order(DESCENDING)
        .limit(1);
    let rows: Vec<IdRow> = api.get("Contact", &params, &[])?;
    Ok(rows.first().map_or(0, |row| row.id))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use serde::de::DeserializeOwned;
    use serde_json::{json, Value};

    use super::*;
    use crate::key::ApiKey;
    use crate::store::api4::clause::GetParams;
    use crate::store::api4::{users, IfThere};
    use crate::store::KeySwap;

    type Keys = BTreeMap<ContactId, String>;
    /// What changes the site's keys before a call, given the call's number.
    type Between = Box<dyn FnMut(usize, &mut Keys) + Send>;

    /// A site of contacts 1 to `contacts` and the keys some hold, answering Contact.get as
    /// API v4 does for the calls the holders' read sends; `between` changes keys before
    /// each call (by call number).
    struct Site {
        contacts: ContactId,
        /// A page answer of more rows than this is too large (REST's cap).
        rows_cap: usize,
        keys: Mutex<Keys>,
        calls: Mutex<Vec<Value>>,
        between: Mutex<Between>,
        seen: std::sync::OnceLock<users::Seen>,
        /// Readers side by side ([`Api4::side_by_side`]).
        readers: usize,
        /// Held through each call: calls from readers side by side come one at a time, in
        /// whatever order the readers reach them.
        one_at_a_time: Mutex<()>,
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
            let _turn = self.one_at_a_time.lock().unwrap();
            let params = serde_json::to_value(params).unwrap();
            let n = self.calls.lock().unwrap().len();
            (self.between.lock().unwrap())(n, &mut self.keys.lock().unwrap());
            self.calls.lock().unwrap().push(params.clone());
            let keys = self.keys.lock().unwrap();
            if params["orderBy"] == json!({"id": "DESC"}) {
                assert_eq!(params["where"], json!([["is_deleted", "IN", [0, 1]]]));
                let top = keys.keys().copied().chain([self.contacts]).max().unwrap();
                return Ok(vec![serde_json::from_value(json!({"id": top})).unwrap()]);
            }
            assert_eq!(params["orderBy"], json!({"id": "ASC"}));
            let bound = |c: &Value| c[2].as_u64().unwrap();
            let mut rows: Vec<Value> = Vec::new();
            for (id, key) in keys.iter() {
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
            rows.truncate(params["limit"].as_u64().unwrap() as usize);
            if rows.len() > self.rows_cap {
                return Err(StoreError::TooLarge(crate::sanitize::SafeText::new(
                    "over 8 MiB",
                )));
            }
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

        fn side_by_side(&self) -> usize {
            self.readers
        }
    }

    fn site(
        contacts: ContactId,
        holders: impl IntoIterator<Item = ContactId>,
        between: impl FnMut(usize, &mut Keys) + Send + 'static,
    ) -> Site {
        Site {
            contacts,
            rows_cap: usize::MAX,
            keys: Mutex::new(
                holders
                    .into_iter()
                    .map(|id| (id, format!("Key{id:0>29}")))
                    .collect(),
            ),
            calls: Mutex::new(Vec::new()),
            between: Mutex::new(Box::new(between)),
            seen: std::sync::OnceLock::new(),
            readers: 1,
            one_at_a_time: Mutex::new(()),
        }
    }

    fn read(site: &Site, per_window: usize) -> Vec<ContactId> {
        let mut read = Vec::new();
        read_windows(site, per_window, &mut |batch| {
            assert!(batch.len() <= per_window);
            read.extend(batch.iter().map(|h| h.contact.id));
            Ok(())
        })
        .unwrap();
        read
    }

    fn last_clause(call: &Value) -> Value {
        call["where"].as_array().unwrap().last().unwrap().clone()
    }

    #[test]
    fn windows_read_each_holder_once_in_few_calls() {
        // One contact in twenty holds a key, 500 of 10,000; windows aimed at 45 holders.
        let s = site(10_000, (1..=500).map(|i| 20 * i - 7), |_, _| {});
        let got = read(&s, 50);
        assert_eq!(got, (1..=500).map(|i| 20 * i - 7).collect::<Vec<_>>());
        let calls = s.calls.lock().unwrap();
        // The highest id, a first window of an eighth (62 holders: two pages), then
        // windows of about 45: about 10 more, never one per holder.
        assert_eq!(calls[0]["select"], json!(["id"]));
        assert!((12..=18).contains(&calls.len()), "{} calls", calls.len());
        assert_eq!(last_clause(&calls[1]), json!(["id", "<=", 1250]));
        // Each window starts where the last ended; the last is open.
        let last = calls.last().unwrap();
        assert_eq!(last["where"].as_array().unwrap().len(), 4, "{last}");
        assert_eq!(last_clause(last)[1], ">");
    }

    #[test]
    fn holders_all_at_one_end_take_a_few_calls_more() {
        // Every holder among the last 200 of 100,000 contacts: the early windows come
        // back empty and widen, the last holds them all (pages of 50).
        let s = site(100_000, 99_801..=100_000, |_, _| {});
        assert_eq!(read(&s, 50), (99_801..=100_000).collect::<Vec<_>>());
        let calls = s.calls.lock().unwrap().len();
        assert!(calls <= 1 + 4 + 5, "{calls} calls");
    }

    #[test]
    fn keys_changed_between_calls_never_make_a_holder_read_twice_or_missed() {
        keys_changed_between_calls(1);
    }

    #[test]
    fn two_readers_side_by_side_read_each_holder_once_while_keys_change() {
        for _ in 0..20 {
            keys_changed_between_calls(2);
        }
    }

    #[test]
    fn two_readers_side_by_side_take_no_more_calls() {
        let mut s = site(10_000, (1..=500).map(|i| 20 * i - 7), |_, _| {});
        s.readers = 2;
        let mut got = read(&s, 50);
        got.sort_unstable();
        assert_eq!(got, (1..=500).map(|i| 20 * i - 7).collect::<Vec<_>>());
        let calls = s.calls.lock().unwrap();
        assert!((12..=19).contains(&calls.len()), "{} calls", calls.len());
        // The windows tile the ids: each starts where one ended, the last one open.
        let mut bounds: Vec<(u64, Option<u64>)> = calls[1..]
            .iter()
            .map(|call| {
                let clauses = call["where"].as_array().unwrap();
                let bound = |op: &str| {
                    clauses
                        .iter()
                        .find(|c| c[0] == "id" && c[1] == op)
                        .map(|c| c[2].as_u64().unwrap())
                };
                (bound(">").unwrap_or(0), bound("<="))
            })
            .collect();
        bounds.sort_unstable();
        let windows: Vec<(u64, Option<u64>)> = bounds
            .iter()
            .filter(|(low, _)| *low == 0 || bounds.iter().any(|(_, high)| *high == Some(*low)))
            .copied()
            .collect();
        assert_eq!(windows.last().unwrap().1, None, "the last window is open");
        for pair in windows.windows(2) {
            assert_eq!(pair[0].1, Some(pair[1].0), "{windows:?}");
        }
    }

    /// Keys changed before given calls, read by `readers` side by side.
    fn keys_changed_between_calls(readers: usize) {
        // Holders 1, 3, ..., 79 of 80 contacts; windows aimed at 3 (first: ids 1 to 10).
        let all_along: Vec<ContactId> = (0..40)
            .map(|i| 2 * i + 1)
            .filter(|id| ![9, 35, 55].contains(id))
            .collect();
        let s = site(80, (0..40).map(|i| 2 * i + 1), |call, keys| match call {
            // After the highest id: new holders in the first window (it now needs two
            // pages) and past the highest id; a holder ahead revoked; one ahead given a
            // key that sorts first.
            1 => {
                keys.insert(2, "NewKeyInTheFirstWindow0000000002".into());
                keys.insert(4, "NewKeyInTheFirstWindow0000000004".into());
                keys.insert(95, "NewKeyAfterTheHighestId000000095".into());
                keys.remove(&35);
                keys.insert(61, "000000AAAAMovedFirst000000000061".into());
            }
            // Later: a holder already read revoked, one ahead revoked and given a key
            // again, a new holder behind the windows read, one ahead revoked.
            5 => {
                keys.remove(&9);
                keys.remove(&71);
                keys.insert(71, "BackAgain00000000000000000000071".into());
                keys.insert(6, "TooLateBehindTheWindows000000006".into());
                keys.remove(&55);
            }
            _ => {}
        });
        let mut s = s;
        s.readers = readers;
        let got = read(&s, 4);
        let mut once = got.clone();
        once.sort_unstable();
        once.dedup();
        assert_eq!(once.len(), got.len(), "a holder read twice: {got:?}");
        for id in all_along.iter().chain(&[2, 4, 95, 9]) {
            assert!(got.contains(id), "{id} missed: {got:?}");
        }
        assert!(
            !got.contains(&35) && !got.contains(&55),
            "revoked before read: {got:?}"
        );
    }

    #[test]
    fn a_stop_by_the_reader_ends_the_read_within_a_page() {
        let s = site(1000, 1..=1000, |_, _| {});
        let mut pages = 0;
        let result = read_windows(&s, 10, &mut |_| {
            pages += 1;
            match pages {
                2 => Err(StoreError::bad_data("stop")),
                _ => Ok(()),
            }
        });
        assert!(matches!(result, Err(e) if e.to_string().contains("stop")));
        // The highest id, the two pages read, and at most the page asked for meanwhile
        // and the one waiting: never the hundred pages.
        let calls = s.calls.lock().unwrap().len();
        assert!((3..=5).contains(&calls), "{calls} calls");
    }

    #[test]
    fn widths_follow_the_density_within_bounds() {
        assert_eq!(next_width(1000, 9000, 10_000), 1000);
        assert_eq!(next_width(1000, 4500, 10_000), 2000);
        assert_eq!(next_width(1000, 0, 10_000), 2000);
        assert_eq!(
            next_width(1000, 1, 10_000),
            4000,
            "at most four times wider"
        );
        assert_eq!(next_width(1000, 10_001, 10_000), 899);
        assert_eq!(
            next_width(1000, 1_000_000, 10_000),
            250,
            "at most four times narrower"
        );
        assert_eq!(next_width(1, 1_000_000, 10_000), 1);
        assert_eq!(next_width(u64::MAX, 1, 10_000), u64::MAX);
    }

    #[test]
    fn pages_too_large_for_the_store_are_asked_again_smaller() {
        // Answers of more than 300 rows are refused as too large: pages of 10,000 holders
        // become 5,000, ..., 156, and every holder is still read once.
        let mut s = site(20_000, (1..=4_000).map(|i| 5 * i), |_, _| {});
        s.rows_cap = 300;
        let got = read(&s, 10_000);
        assert_eq!(got, (1..=4_000).map(|i| 5 * i).collect::<Vec<_>>());
        let calls = s.calls.lock().unwrap();
        let limits: Vec<u64> = calls[1..6]
            .iter()
            .map(|c| c["limit"].as_u64().unwrap())
            .collect();
        assert_eq!(limits, [10_001, 5_001, 2_501, 1_251, 626]);
        assert!(calls.len() < 60, "{} calls", calls.len());
    }
}
