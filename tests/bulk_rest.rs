//! Bulk rotation over REST against the fake CiviCRM site (tests/fake_civicrm): batched
//! reads, one uniqueness check per batch, the compare-and-set updates as one multi-call
//! request, one read-back; each contact rotated, in the out file and journaled, or not.

mod fake_civicrm;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use civikey::audit::{Actor, Journal};
use civikey::bulk::{self, BulkOutcome, BulkResult, OutFile};
use civikey::key::{ApiKey, OsKeySource};
use civikey::rotation::Expectation;
use civikey::secret::Secret;
use civikey::seed::SeedContact;
use civikey::store::rest::RestOptions;
use civikey::store::rest::RestStore;
use civikey::store::{
    Contact, ContactId, ContactStore, HolderCursor, HolderPage, KeySwap, Page, Query, StoreError,
    StoreInfo,
};

use fake_civicrm::{FakeCivi, Mode, ADMIN_KEY, SITE_KEY};

fn contacts(n: u64) -> Vec<SeedContact> {
    (1..=n)
        .map(|id| SeedContact {
            id: Some(id as i64),
            contact_type: "Individual".into(),
            display_name: format!("Person {id}"),
            sort_name: format!("{id:05}, Person"),
            first_name: None,
            last_name: None,
            email: None,
            is_deleted: false,
            api_key: (id % 2 == 0).then(|| ApiKey::generate().unwrap()),
            uf_id: None,
            roles: vec![],
        })
        .collect()
}

fn connect(server: &FakeCivi, timeout: Duration) -> RestStore {
    RestStore::connect(&RestOptions {
        base_url: server.url(),
        api_key: ApiKey::from_store(ADMIN_KEY.into()),
        site_key: Some(Secret::new(SITE_KEY.into())),
        timeout,
    })
    .unwrap()
}

fn journal(dir: &Path) -> Journal {
    let actor = Actor {
        operator: "alice".into(),
        store: "civicrm-rest:fake".into(),
        ..Actor::default()
    };
    Journal::open(&dir.join("data"), actor).unwrap()
}

/// The out file's rows: contact id to key.
fn out_keys(path: &Path) -> HashMap<ContactId, String> {
    let text = std::fs::read_to_string(path).unwrap();
    // The header line, then contact_id,display_name,email,api_key (the key last).
    text.lines()
        .skip(1)
        .map(|line| {
            let id = line.split(',').next().unwrap().parse().unwrap();
            let key = line.rsplit(',').next().unwrap().to_string();
            (id, key)
        })
        .collect()
}

/// The outcome journaled last for each contact's assignment.
fn journaled(journal: &Journal) -> HashMap<ContactId, String> {
    let mut entries = journal.entries(None, true, 10_000).unwrap();
    entries.sort_by_key(|e| e.id);
    entries
        .into_iter()
        .filter(|e| e.action == "assign")
        .map(|e| (e.contact_id, e.outcome.unwrap_or_default()))
        .collect()
}

fn run(
    store: &mut dyn ContactStore,
    journal: &mut Journal,
    ids: &[ContactId],
    out: &Path,
) -> Vec<BulkResult> {
    let items: Vec<(ContactId, Expectation)> =
        ids.iter().map(|&id| (id, Expectation::Current)).collect();
    let mut out = OutFile::create(out).unwrap();
    bulk::rotate_many(
        store,
        journal,
        &mut OsKeySource,
        &items,
        &mut out,
        &AtomicBool::new(false),
        &mut |_, _, _| {},
    )
}

#[test]
fn five_hundred_contacts_take_far_fewer_than_three_requests_each() {
    let seeds = contacts(500);
    let before: HashMap<u64, Option<String>> = seeds
        .iter()
        .map(|c| {
            (
                c.id.unwrap() as u64,
                c.api_key.as_ref().map(|k| k.expose().to_string()),
            )
        })
        .collect();
    let server = FakeCivi::start(seeds);
    let dir = tempfile::tempdir().unwrap();
    let mut store = connect(&server, Duration::from_secs(10));
    let mut journal = journal(dir.path());
    let ids: Vec<ContactId> = (1..=500).collect();
    let out = dir.path().join("keys.csv");
    // A site that answers every request in 100 ms (the figure).
    server.set_mode(Mode::Slow(Duration::from_millis(100)));
    let sent_before = server.state().requests.len();
    // As the CLI does: the ids file validated first, then the run.
    assert_eq!(store.contacts(&ids).unwrap().len(), 500);
    let results = run(&mut store, &mut journal, &ids, &out);
    let requests = server.state().requests.len() - sent_before;

    assert!(
        results.iter().all(|r| r.outcome == BulkOutcome::Done),
        "{:?}",
        results.iter().find(|r| r.outcome != BulkOutcome::Done)
    );
    let delivered = out_keys(&out);
    let outcomes = journaled(&journal);
    for id in ids {
        let now = server.key_of(id).expect("every contact holds a key");
        assert_ne!(Some(&now), before[&id].as_ref(), "contact {id} not rotated");
        assert_eq!(delivered.get(&id), Some(&now), "contact {id} not delivered");
        assert_eq!(outcomes.get(&id).map(String::as_str), Some("done"), "{id}");
    }
    // The figure of docs/PERFORMANCE.md: 10 batches of 50, about 7 requests each, and the
    // validation's pages.
    assert!(requests < 500 * 3, "{requests} requests for 500 contacts");
    assert!(requests <= 76, "{requests} requests for 500 contacts");
    let state = server.state();
    assert_eq!(state.updates_received, 500);
    let multi = state
        .requests
        .iter()
        .filter(|r| r.target == "/civicrm/ajax/api4")
        .count();
    assert_eq!(multi, 10, "one multi-call request per batch of 50");
}

/// The REST store, with another writer changing one contact's key right before the
/// batch's updates are sent.
struct Racing<'a> {
    inner: RestStore,
    server: &'a FakeCivi,
    victim: ContactId,
    theirs: String,
}

impl ContactStore for Racing<'_> {
    fn info(&self) -> StoreInfo {
        self.inner.info()
    }
    fn rotation_batch(&self) -> usize {
        self.inner.rotation_batch()
    }
    fn search(&mut self, query: &Query) -> Result<Page, StoreError> {
        self.inner.search(query)
    }
    fn contact(&mut self, id: ContactId) -> Result<Contact, StoreError> {
        self.inner.contact(id)
    }
    fn contacts(&mut self, ids: &[ContactId]) -> Result<Vec<Contact>, StoreError> {
        self.inner.contacts(ids)
    }
    fn holders_of(&mut self, key: &ApiKey) -> Result<Vec<ContactId>, StoreError> {
        self.inner.holders_of(key)
    }
    fn holders_of_keys(&mut self, keys: &[&ApiKey]) -> Result<Vec<Vec<ContactId>>, StoreError> {
        self.inner.holders_of_keys(keys)
    }
    fn read_key(&mut self, id: ContactId) -> Result<Option<ApiKey>, StoreError> {
        self.inner.read_key(id)
    }
    fn read_keys(
        &mut self,
        ids: &[ContactId],
    ) -> Result<HashMap<ContactId, Option<ApiKey>>, StoreError> {
        self.inner.read_keys(ids)
    }
    fn key_holders(
        &mut self,
        after: Option<&HolderCursor>,
        limit: usize,
    ) -> Result<HolderPage, StoreError> {
        self.inner.key_holders(after, limit)
    }
    fn swap_key(
        &mut self,
        id: ContactId,
        expected: Option<&ApiKey>,
        new: Option<&ApiKey>,
    ) -> Result<(), StoreError> {
        self.inner.swap_key(id, expected, new)
    }
    fn swap_keys(&mut self, swaps: &[KeySwap<'_>]) -> Vec<Result<(), StoreError>> {
        let mut state = self.server.state();
        let victim = state.contacts.iter_mut().find(|c| c.id == self.victim);
        victim.unwrap().api_key = Some(self.theirs.clone());
        drop(state);
        self.inner.swap_keys(swaps)
    }
}

#[test]
fn a_conflict_on_one_contact_of_a_batch_leaves_the_others_rotated() {
    let server = FakeCivi::start(contacts(20));
    let dir = tempfile::tempdir().unwrap();
    let theirs = ApiKey::generate().unwrap().expose().to_string();
    let mut store = Racing {
        inner: connect(&server, Duration::from_secs(10)),
        server: &server,
        victim: 7,
        theirs: theirs.clone(),
    };
    let mut journal = journal(dir.path());
    let ids: Vec<ContactId> = (1..=20).collect();
    let out = dir.path().join("keys.csv");
    let results = run(&mut store, &mut journal, &ids, &out);
    let delivered = out_keys(&out);
    let outcomes = journaled(&journal);
    for r in &results {
        if r.id == 7 {
            assert_eq!(r.outcome, BulkOutcome::Conflict);
            assert_eq!(server.key_of(7).as_ref(), Some(&theirs), "their key stays");
            assert!(!delivered.contains_key(&7));
            assert_eq!(outcomes[&7], "conflict");
        } else {
            assert_eq!(r.outcome, BulkOutcome::Done, "{r:?}");
            assert_eq!(delivered.get(&r.id), server.key_of(r.id).as_ref());
            assert_eq!(outcomes[&r.id], "done");
        }
    }
}

#[test]
fn a_lost_update_answer_leaves_its_whole_batch_unknown_and_nothing_is_retried() {
    let seeds = contacts(5);
    let server = FakeCivi::start(seeds);
    let dir = tempfile::tempdir().unwrap();
    let mut store = connect(&server, Duration::from_millis(700));
    let mut journal = journal(dir.path());
    // Only the multi-call request (its route has no entity/action) is slow: the updates
    // are applied, their answer comes too late.
    server.set_mode_for(Mode::Slow(Duration::from_secs(2)), Some(""));
    let ids: Vec<ContactId> = (1..=5).collect();
    let out = dir.path().join("keys.csv");
    let results = run(&mut store, &mut journal, &ids, &out);
    server.set_mode(Mode::Normal);
    let delivered = out_keys(&out);
    assert!(
        delivered.is_empty(),
        "no key of an unknown outcome is delivered"
    );
    let outcomes = journaled(&journal);
    for r in &results {
        match &r.outcome {
            BulkOutcome::Failed(why) => assert!(why.contains("outcome is unknown"), "{why}"),
            other => panic!("contact {}: {other:?}", r.id),
        }
        assert_eq!(outcomes[&r.id], "unknown", "contact {}", r.id);
    }
    let state = server.state();
    assert_eq!(
        state.updates_received, 5,
        "each update sent once, none retried"
    );
    let multi = state
        .requests
        .iter()
        .filter(|r| r.target == "/civicrm/ajax/api4")
        .count();
    assert_eq!(multi, 1);
}

#[test]
fn swap_keys_judges_each_compare_and_set_of_one_multi_call_on_its_own() {
    let server = FakeCivi::start(contacts(4));
    let mut store = connect(&server, Duration::from_secs(10));
    let old2 = ApiKey::from_store(server.key_of(2).unwrap());
    let old4 = ApiKey::from_store(server.key_of(4).unwrap());
    let stale = ApiKey::generate().unwrap();
    let new: Vec<ApiKey> = (0..4).map(|_| ApiKey::generate().unwrap()).collect();
    let swaps = [
        KeySwap {
            id: 1,
            expected: None,
            new: Some(&new[0]),
        },
        KeySwap {
            id: 2,
            expected: Some(&old2),
            new: Some(&new[1]),
        },
        // Not what contact 4 holds: refused before anything is sent.
        KeySwap {
            id: 4,
            expected: Some(&stale),
            new: Some(&new[2]),
        },
        KeySwap {
            id: 99,
            expected: None,
            new: Some(&new[3]),
        },
    ];
    let sent_before = server.state().requests.len();
    let results = store.swap_keys(&swaps);
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(results[1].is_ok(), "{:?}", results[1]);
    assert!(
        matches!(results[2], Err(StoreError::Conflict)),
        "{:?}",
        results[2]
    );
    assert!(
        matches!(results[3], Err(StoreError::NotFound(99))),
        "{:?}",
        results[3]
    );
    assert_eq!(server.key_of(1).as_deref(), Some(new[0].expose()));
    assert_eq!(server.key_of(2).as_deref(), Some(new[1].expose()));
    assert_eq!(server.key_of(4).as_deref(), Some(old4.expose()));
    let state = server.state();
    assert_eq!(
        state.requests.len() - sent_before,
        2,
        "the exact read, one multi-call"
    );
    assert_eq!(state.updates_received, 2);
    drop(state);

    // The whole multi-call refused (403): every swap refused, nothing changed, no key in
    // the messages.
    server.set_mode_for(Mode::Forbidden, Some(""));
    let next: Vec<ApiKey> = (0..2).map(|_| ApiKey::generate().unwrap()).collect();
    let swaps = [
        KeySwap {
            id: 1,
            expected: Some(&new[0]),
            new: Some(&next[0]),
        },
        KeySwap {
            id: 2,
            expected: Some(&new[1]),
            new: Some(&next[1]),
        },
    ];
    for r in store.swap_keys(&swaps) {
        match r {
            Err(e @ StoreError::PermissionDenied(_)) => {
                let shown = e.to_string();
                for key in new.iter().chain(&next) {
                    assert!(!shown.contains(key.expose()), "{shown}");
                }
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(server.key_of(1).as_deref(), Some(new[0].expose()));
    assert_eq!(server.key_of(2).as_deref(), Some(new[1].expose()));
}

#[test]
fn a_stop_during_a_batch_takes_effect_before_the_next_batch() {
    let seeds = contacts(60);
    let before: HashMap<u64, Option<String>> = seeds
        .iter()
        .map(|c| {
            (
                c.id.unwrap() as u64,
                c.api_key.as_ref().map(|k| k.expose().to_string()),
            )
        })
        .collect();
    let server = FakeCivi::start(seeds);
    let dir = tempfile::tempdir().unwrap();
    let mut store = connect(&server, Duration::from_secs(10));
    let mut journal = journal(dir.path());
    let path = dir.path().join("keys.csv");
    let mut out = OutFile::create(&path).unwrap();
    let items: Vec<(ContactId, Expectation)> =
        (1..=60).map(|id| (id, Expectation::Current)).collect();
    let stop = AtomicBool::new(false);
    // Ctrl-C while the first contact's line is being reported.
    let results = bulk::rotate_many(
        &mut store,
        &mut journal,
        &mut OsKeySource,
        &items,
        &mut out,
        &stop,
        &mut |_, _, _| stop.store(true, std::sync::atomic::Ordering::SeqCst),
    );
    let delivered = out_keys(&path);
    let outcomes = journaled(&journal);
    for r in &results {
        if r.id <= 50 {
            assert_eq!(r.outcome, BulkOutcome::Done, "{r:?}");
            assert_eq!(delivered.get(&r.id), server.key_of(r.id).as_ref());
            assert_eq!(outcomes[&r.id], "done");
        } else {
            assert_eq!(r.outcome, BulkOutcome::Skipped, "{r:?}");
            assert_eq!(
                server.key_of(r.id),
                before[&r.id],
                "contact {} touched",
                r.id
            );
            assert!(!outcomes.contains_key(&r.id));
        }
    }
}

#[test]
fn a_contact_gone_from_a_batch_fails_alone() {
    let server = FakeCivi::start(contacts(4));
    let dir = tempfile::tempdir().unwrap();
    let mut store = connect(&server, Duration::from_secs(10));
    let mut journal = journal(dir.path());
    let out = dir.path().join("keys.csv");
    let results = run(&mut store, &mut journal, &[1, 2, 99, 3], &out);
    let delivered = out_keys(&out);
    for r in &results {
        if r.id == 99 {
            match &r.outcome {
                BulkOutcome::Failed(why) => assert!(why.contains("not found"), "{why}"),
                other => panic!("{other:?}"),
            }
        } else {
            assert_eq!(r.outcome, BulkOutcome::Done, "{r:?}");
            assert_eq!(delivered.get(&r.id), server.key_of(r.id).as_ref());
        }
    }
}
