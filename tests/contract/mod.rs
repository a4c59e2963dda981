//! The store contract: one suite, generic over the trait, that every store must pass.
//!
//! A test file provides a `Fixture` for its store (a way to make a store holding
//! `contract::contacts()` and to open a second, independent handle onto the same data)
//! and expands `contract_tests!(make_fixture)`, which writes one `#[test]` per check.

#![allow(dead_code)]

use civikey::audit::{Actor, Journal};
use civikey::key::{ApiKey, SeededKeySource};
use civikey::rotation::{self, Expectation, NewKey, RotationError};
use civikey::seed::SeedContact;
use std::collections::HashMap;
use std::time::Duration;

use civikey::store::wrap::Wrapped;
use civikey::store::{CmsLink, ContactStore, KeySwap, Query, SiteLogin, StoreError};

/// Makes stores over one data set.
pub trait Fixture {
    /// A new handle onto the fixture's data (a second connection, a second client...).
    fn open(&self) -> Box<dyn ContactStore>;

    /// Whether the store may read the site's users and CMS links: false for a
    /// least-privilege REST admin (no 'cms:administer users'), whose contacts' users and
    /// links are all unknown.
    fn sees_users(&self) -> bool {
        true
    }
}

impl<F: Fixture + ?Sized> Fixture for &F {
    fn open(&self) -> Box<dyn ContactStore> {
        (**self).open()
    }

    fn sees_users(&self) -> bool {
        (**self).sees_users()
    }
}

/// Ada's CMS link as the fixture's store can tell it.
fn ada_link(f: &dyn Fixture) -> CmsLink {
    if f.sees_users() {
        CmsLink::Linked { uf_id: 11 }
    } else {
        CmsLink::Unknown
    }
}

pub const KEY_A: &str = "AaaaBbbbCcccDdddEeeeFfffGggg0001";
pub const KEY_B: &str = "ZzzzYyyyXxxxWwwwVvvvUuuuTttt0002";
pub const KEY_DELETED: &str = "QqqqRrrrSsssTtttUuuuVvvvWwww0003";

fn person(
    id: i64,
    first: &str,
    last: &str,
    email: &str,
    key: Option<&str>,
    uf: Option<i64>,
) -> SeedContact {
    SeedContact {
        id: Some(id),
        contact_type: "Individual".into(),
        display_name: format!("{first} {last}"),
        sort_name: format!("{last}, {first}"),
        first_name: Some(first.into()),
        last_name: Some(last.into()),
        email: Some(email.into()),
        is_deleted: false,
        api_key: key.map(|k| ApiKey::from_store(k.into())),
        uf_id: uf,
        roles: if uf.is_some() {
            vec!["authenticated".into()]
        } else {
            Vec::new()
        },
    }
}

/// An individual with that sort name and first name (the last name is the sort name's
/// part before the comma), as the search tests seed them.
pub fn individual(id: i64, sort_name: &str, first: &str) -> SeedContact {
    SeedContact {
        id: Some(id),
        contact_type: "Individual".into(),
        display_name: format!("{first} {id}"),
        sort_name: sort_name.into(),
        first_name: Some(first.into()),
        last_name: sort_name.split(',').next().map(String::from),
        ..SeedContact::default()
    }
}

/// Contacts for the sorted first-name branch of the REST and cv stores (a first-name
/// prefix of two letters or more, read sort name ascending and id descending, its last sort
/// name's contacts read again): 14 `car` first names, 12 of them under one sort name spelt
/// in two cases, and one `Dora` under that sort name that `car` must not find.
pub fn shared_sort_name_contacts() -> Vec<SeedContact> {
    let mut seeds = vec![
        individual(40, "Abe, Carl", "Carl"),
        individual(41, "Abe, Carl", "Carl"),
    ];
    seeds.extend((20..32).map(|id| {
        let spelt = if id % 3 == 0 {
            "ZED, CARLA"
        } else {
            "Zed, Carla"
        };
        individual(id, spelt, "Carla")
    }));
    seeds.push(individual(50, "Zed, Carla", "Dora"));
    seeds
}

/// On [`shared_sort_name_contacts`], `car` paged by 4, 5 and 50: every contact comes once,
/// in (sort name, id) order. `after_page` runs after each page (to count requests).
pub fn a_sorted_branch_pages_through_a_shared_sort_name(
    s: &mut dyn ContactStore,
    after_page: &mut dyn FnMut(),
) {
    let mut expected = vec![40, 41];
    expected.extend(20..32);
    for limit in [4, 5, 50] {
        let mut q = Query::new("car", limit);
        let mut ids = Vec::new();
        for _ in 0..20 {
            let page = s.search(&q).unwrap();
            after_page();
            assert!(page.contacts.len() <= limit);
            ids.extend(page.contacts.iter().map(|c| c.id));
            match page.next {
                Some(next) => q.after = Some(next),
                None => break,
            }
        }
        assert_eq!(ids, expected, "limit {limit}");
    }
}

/// Contacts whose sort name is NULL (CiviCRM leaves it so for a contact written by SQL or
/// an import without names; MariaDB sorts NULL before every name), with first names a
/// keystroke finds, and two named contacts after them. [`SeedContact::sort_name`] is text,
/// so a fixture seeds these and then sets the sort name of [`NULL_SORT_NAME_IDS`] to NULL
/// as its store can (an SQL `UPDATE`, the fake site's state, the fake cv's data file).
pub fn null_sort_name_contacts() -> Vec<SeedContact> {
    let mut seeds: Vec<SeedContact> = NULL_SORT_NAME_IDS
        .iter()
        .map(|&id| SeedContact {
            last_name: None,
            ..individual(id, "", if id % 2 == 0 { "Carl" } else { "Carla" })
        })
        .collect();
    seeds.push(individual(70, "Abe, Carl", "Carl"));
    seeds.push(individual(71, "Zed, Carla", "Carla"));
    seeds
}

/// The contacts of [`null_sort_name_contacts`] whose sort name is NULL.
pub const NULL_SORT_NAME_IDS: [i64; 6] = [60, 61, 62, 63, 64, 65];

/// On [`null_sort_name_contacts`] (the NULL sort names set): `car` and `c` paged by 1, 2, 4
/// and 50 give every contact once, the NULL sort names first by id, as MariaDB orders
/// them. A cursor that took a NULL sort name for "" (`sort_name > ''` on the next page)
/// lost the NULL sort names after the first page.
pub fn null_sort_names_page_first_and_completely(s: &mut dyn ContactStore) {
    let mut expected: Vec<u64> = NULL_SORT_NAME_IDS.iter().map(|&id| id as u64).collect();
    expected.extend([70, 71]);
    for text in ["car", "c"] {
        for limit in [1, 2, 4, 50] {
            assert_eq!(all_ids(s, text, limit), expected, "{text:?} by {limit}");
        }
    }
}

/// The contract's data set: 30 contacts, duplicate sort names, one deleted, one hostile.
pub fn contacts() -> Vec<SeedContact> {
    let mut out = vec![
        person(
            1,
            "Ada",
            "Lovelace",
            "ada@example.org",
            Some(KEY_A),
            Some(11),
        ),
        person(
            2,
            "Alan",
            "Turing",
            "alan.turing@example.org",
            None,
            Some(12),
        ),
        person(
            3,
            "Grace",
            "Hopper",
            "grace@navy.example",
            Some(KEY_B),
            None,
        ),
        person(4, "Sam", "Smith", "sam@example.org", None, None),
        person(5, "Sam", "Smith", "sam2@example.org", None, Some(15)),
        person(6, "Jordan", "Smithers", "jordan@example.org", None, None),
        person(7, "Mary", "Ann Lee", "mary@example.org", None, None),
        person(8, "Percent", "100%Sure", "pct@example.org", None, None),
        person(9, "Zoë", "Müller", "zoe@example.de", None, None),
        person(10, "太郎", "山田", "taro@example.jp", None, None),
    ];
    let mut deleted = person(
        11,
        "Del",
        "Eted",
        "deleted@example.org",
        Some(KEY_DELETED),
        None,
    );
    deleted.is_deleted = true;
    out.push(deleted);
    let mut hostile = person(12, "Mallory", "Evil", "mallory@example.org", None, None);
    hostile.display_name = "Mallory \x1b[2J\x1b]52;c;aGk=\x07\u{202e}Evil".into();
    out.push(hostile);
    out.push(SeedContact {
        id: Some(13),
        contact_type: "Organization".into(),
        display_name: "Acme Widgets".into(),
        sort_name: "Acme Widgets".into(),
        email: Some("info@acme.example".into()),
        ..SeedContact::default()
    });
    for i in 14..=30 {
        out.push(person(
            i,
            &format!("Filler{i:02}"),
            "Zed",
            &format!("f{i}@example.org"),
            None,
            None,
        ));
    }
    out
}

/// A journal in its own folder (kept alive by the returned TempDir).
pub fn journal(store: &dyn ContactStore) -> (tempfile::TempDir, Journal) {
    let dir = tempfile::tempdir().unwrap();
    let actor = Actor {
        operator: "contract".into(),
        store: store.info().location.to_string(),
        ..Actor::default()
    };
    let journal = Journal::open(dir.path(), actor).unwrap();
    (dir, journal)
}

/// Assigns a freshly generated key (seeded) to contact `id` as an operator who saw "no key"
/// would, journaled in a fresh journal, which is returned for inspection.
pub fn assign_generated(
    store: &mut dyn ContactStore,
    seed: u64,
    id: u64,
) -> (
    tempfile::TempDir,
    Journal,
    Result<rotation::Assigned, RotationError>,
) {
    let (dir, mut journal) = journal(&*store);
    let mut keys = SeededKeySource::new(seed);
    let new = ApiKey::generate_from(&mut keys).unwrap();
    let result = rotation::assign(
        store,
        &mut journal,
        &mut keys,
        id,
        &Expectation::Seen(None),
        NewKey::Generated(new),
    );
    (dir, journal, result)
}

fn key(text: &str) -> ApiKey {
    ApiKey::from_store(text.into())
}

fn all_ids(store: &mut dyn ContactStore, text: &str, limit: usize) -> Vec<u64> {
    let mut q = Query::new(text, limit);
    let mut ids = Vec::new();
    for _ in 0..100 {
        let page = store.search(&q).expect("search");
        assert!(page.contacts.len() <= limit, "page larger than its limit");
        ids.extend(page.contacts.iter().map(|c| c.id));
        match page.next {
            Some(next) => q.after = Some(next),
            None => return ids,
        }
    }
    panic!("paging never ended");
}

pub fn pages_cover_everything_once_in_order(f: &dyn Fixture) {
    let mut s = f.open();
    let ids = all_ids(&mut *s, "", 7);
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "a contact appeared twice: {ids:?}");
    assert_eq!(ids.len(), 30, "{ids:?}");
    // sort_name order, ties by id: Smith, Sam (4) before Smith, Sam (5).
    let p4 = ids.iter().position(|&i| i == 4).unwrap();
    let p5 = ids.iter().position(|&i| i == 5).unwrap();
    assert_eq!(p5, p4 + 1, "{ids:?}");
    let first = s.search(&Query::new("", 3)).unwrap();
    assert_eq!(first.contacts[0].id, 8, "'100%Sure, Percent' sorts first");
    assert_eq!(first.contacts[1].id, 13, "then Acme Widgets");
}

pub fn search_by_id(f: &dyn Fixture) {
    let mut s = f.open();
    assert_eq!(all_ids(&mut *s, "3", 50), vec![3]);
    assert_eq!(all_ids(&mut *s, "9999", 50), Vec::<u64>::new());
}

pub fn search_by_email_prefix(f: &dyn Fixture) {
    let mut s = f.open();
    assert_eq!(all_ids(&mut *s, "alan.tu@", 50), Vec::<u64>::new());
    assert_eq!(all_ids(&mut *s, "grace@", 50), vec![3]);
    assert_eq!(
        all_ids(&mut *s, "GRACE@NAVY", 50),
        vec![3],
        "email match ignores case"
    );
}

/// A person across sites (`list --email`): the contacts whose primary email is the whole
/// address, case ignored as CiviCRM compares; never a prefix; trashed ones too unless
/// asked otherwise.
pub fn search_by_exact_primary_email(f: &dyn Fixture) {
    let mut s = f.open();
    let mut ids = |address: &str, include_deleted: bool| -> Vec<u64> {
        let mut q = Query::email(address, 50);
        q.include_deleted = include_deleted;
        let page = s.search(&q).expect("email search");
        assert!(page.next.is_none());
        page.contacts.iter().map(|c| c.id).collect()
    };
    assert_eq!(ids("grace@navy.example", true), vec![3]);
    assert_eq!(ids("GRACE@Navy.Example", true), vec![3], "case ignored");
    assert_eq!(ids("grace@navy", true), Vec::<u64>::new(), "not a prefix");
    assert_eq!(ids("race@navy.example", true), Vec::<u64>::new());
    assert_eq!(ids("sam@example.org", true), vec![4], "not sam2@");
    assert_eq!(
        ids("f1%@example.org", true),
        Vec::<u64>::new(),
        "no wildcards"
    );
    assert_eq!(ids("deleted@example.org", true), vec![11]);
    assert_eq!(ids("deleted@example.org", false), Vec::<u64>::new());
}

pub fn search_by_name(f: &dyn Fixture) {
    let mut s = f.open();
    assert_eq!(
        all_ids(&mut *s, "smith", 50),
        vec![4, 5, 6],
        "surname prefix, any case"
    );
    assert_eq!(all_ids(&mut *s, "Smithe", 50), vec![6]);
    assert_eq!(all_ids(&mut *s, "grace", 50), vec![3], "first name");
    assert_eq!(all_ids(&mut *s, "山田", 50), vec![10], "non-Latin");
    assert_eq!(
        all_ids(&mut *s, "Lee", 50),
        Vec::<u64>::new(),
        "a word inside a name is for the deep search only"
    );
    assert_eq!(
        all_ids(&mut *s, "Filler2", 3).len(),
        10,
        "paged name search"
    );
}

/// What each search text finds, by keystroke (`deep` false) or deep search, in list
/// order: the same on every store (see `Query::matcher` and `store::name_matches`).
pub const SEARCH_TABLE: &[(&str, bool, &[u64])] = &[
    ("3", false, &[3]),
    ("ada", false, &[1]),
    ("lovelace", false, &[1]),
    ("LOVELACE, A", false, &[1]),
    ("Ada Love", false, &[1]),
    ("love ada", false, &[1]),
    ("ada lovelace x", false, &[]),
    ("sam smith", false, &[4, 5]),
    ("s", false, &[4, 5, 6]),
    ("l", false, &[1]),
    ("l", true, &[7, 1]),
    ("mary ann", false, &[7]),
    ("ann", false, &[7]),
    ("ann lee", false, &[7]),
    ("lee", false, &[]),
    ("lee", true, &[7]),
    ("widgets", false, &[]),
    ("widgets", true, &[13]),
    ("acme", false, &[13]),
    ("zoe", false, &[9]),
    ("MULLER", false, &[9]),
    ("müller, z", false, &[9]),
    ("zoë mü", false, &[9]),
    ("山田", false, &[10]),
    ("太郎 山", false, &[10]),
    ("eted", false, &[11]),
    ("mallory evil", false, &[12]),
    ("filler2", false, &[20, 21, 22, 23, 24, 25, 26, 27, 28, 29]),
    (
        "zed f",
        false,
        &[
            14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30,
        ],
    ),
    ("100%", false, &[8]),
    ("%", false, &[]),
    ("%", true, &[]),
    ("grace@", false, &[3]),
    ("GRACE@NAVY", false, &[3]),
    ("alan.tu@", false, &[]),
];

pub fn search_table_finds_the_same_contacts_on_every_store(f: &dyn Fixture) {
    let mut s = f.open();
    for &(text, deep, expected) in SEARCH_TABLE {
        for limit in [50, 4] {
            let mut q = Query::new(text, limit);
            q.deep = deep;
            let mut ids = Vec::new();
            for _ in 0..100 {
                let page = s.search(&q).expect("search");
                ids.extend(page.contacts.iter().map(|c| c.id));
                match page.next {
                    Some(next) => q.after = Some(next),
                    None => break,
                }
            }
            assert_eq!(ids, expected, "{text:?} deep={deep} limit={limit}");
        }
    }
}

pub fn search_treats_wildcards_literally(f: &dyn Fixture) {
    let mut s = f.open();
    assert_eq!(all_ids(&mut *s, "100%", 50), vec![8]);
    assert_eq!(all_ids(&mut *s, "%", 50), Vec::<u64>::new());
    assert_eq!(all_ids(&mut *s, "_da", 50), Vec::<u64>::new());
}

pub fn deleted_contacts_are_flagged_and_filterable(f: &dyn Fixture) {
    let mut s = f.open();
    let c = s.contact(11).unwrap();
    assert!(c.is_deleted);
    assert!(all_ids(&mut *s, "Eted", 50).contains(&11));
    let mut q = Query::new("Eted", 50);
    q.include_deleted = false;
    assert!(s.search(&q).unwrap().contacts.is_empty());
}

pub fn contact_fields(f: &dyn Fixture) {
    let mut s = f.open();
    let ada = s.contact(1).unwrap();
    assert_eq!(ada.display_name.as_str(), "Ada Lovelace");
    assert_eq!(ada.sort_name.as_str(), "Lovelace, Ada");
    assert_eq!(ada.contact_type.as_str(), "Individual");
    assert_eq!(
        ada.email.as_ref().map(|e| e.as_str()),
        Some("ada@example.org")
    );
    assert_eq!(
        ada.key.as_ref().map(|k| k.masked()),
        Some("••••0001".to_string())
    );
    assert!(!ada.is_deleted);
    assert_eq!(ada.cms, ada_link(f));
    let grace = s.contact(3).unwrap();
    assert!(matches!(grace.cms, CmsLink::None | CmsLink::Unknown));
    let alan = s.contact(2).unwrap();
    assert_eq!(alan.key, None);
    let acme = s.contact(13).unwrap();
    assert_eq!(acme.contact_type.as_str(), "Organization");
}

pub fn contacts_are_read_many_at_once_in_order(f: &dyn Fixture) {
    let mut s = f.open();
    let found = s.contacts(&[3, 1, 11, 13]).unwrap();
    let ids: Vec<u64> = found.iter().map(|c| c.id).collect();
    assert_eq!(ids, vec![3, 1, 11, 13]);
    assert!(found[2].is_deleted, "deleted contacts are read too");
    assert_eq!(found[1].cms, ada_link(f));
    assert_eq!(
        found[1].key.as_ref().map(|k| k.masked()),
        Some("••••0001".to_string())
    );
    assert!(matches!(
        s.contacts(&[1, 424242, 2]),
        Err(StoreError::NotFound(424242))
    ));
}

pub fn missing_contact_is_not_found(f: &dyn Fixture) {
    let mut s = f.open();
    assert!(matches!(
        s.contact(424242),
        Err(StoreError::NotFound(424242))
    ));
    assert!(matches!(s.read_key(424242), Err(StoreError::NotFound(_))));
    let k = key("NewNewNewNewNewNewNewNewNewNew01");
    assert!(matches!(
        s.swap_key(424242, None, Some(&k)),
        Err(StoreError::NotFound(_))
    ));
}

pub fn hostile_text_comes_back_inert(f: &dyn Fixture) {
    let mut s = f.open();
    let m = s.contact(12).unwrap();
    let shown = m.display_name.as_str();
    assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
    assert!(!shown.contains('\u{202e}'));
    assert!(shown.contains("Mallory"));
}

pub fn read_swap_and_revoke(f: &dyn Fixture) {
    let mut s = f.open();
    assert_eq!(s.read_key(1).unwrap(), Some(key(KEY_A)));
    assert_eq!(s.read_key(2).unwrap(), None);
    let k = key("NewKeyNewKeyNewKeyNewKeyNewKey01");
    s.swap_key(2, None, Some(&k)).unwrap();
    assert_eq!(s.read_key(2).unwrap(), Some(k.clone()));
    assert_eq!(
        s.contact(2).unwrap().key.map(|h| h.masked()),
        Some("••••ey01".into())
    );
    s.swap_key(2, Some(&k), None).unwrap();
    assert_eq!(s.read_key(2).unwrap(), None);
    assert_eq!(s.contact(2).unwrap().key, None);
}

pub fn swap_with_wrong_expectation_conflicts(f: &dyn Fixture) {
    let mut s = f.open();
    let k = key("NewKeyNewKeyNewKeyNewKeyNewKey02");
    assert!(matches!(
        s.swap_key(1, None, Some(&k)),
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        s.swap_key(1, Some(&key(KEY_B)), Some(&k)),
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        s.swap_key(2, Some(&key(KEY_A)), Some(&k)),
        Err(StoreError::Conflict)
    ));
    // Compare-and-set is exact: another case of the same key is a different value.
    let lower = key(&KEY_A.to_lowercase());
    assert!(matches!(
        s.swap_key(1, Some(&lower), Some(&k)),
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        s.read_key(1).unwrap(),
        Some(key(KEY_A)),
        "nothing was written"
    );
}

pub fn second_writer_wins_and_first_gets_conflict(f: &dyn Fixture) {
    let mut first = f.open();
    let mut second = f.open();
    let seen = first.read_key(1).unwrap();
    let theirs = key("SecondWriterSecondWriterSecond01");
    second.swap_key(1, seen.as_ref(), Some(&theirs)).unwrap();
    let mine = key("FirstWriterFirstWriterFirstWri01");
    assert!(matches!(
        first.swap_key(1, seen.as_ref(), Some(&mine)),
        Err(StoreError::Conflict)
    ));
    assert_eq!(first.read_key(1).unwrap(), Some(theirs));
}

pub fn holders_of_finds_keys_as_the_store_compares(f: &dyn Fixture) {
    let mut s = f.open();
    assert_eq!(s.holders_of(&key(KEY_A)).unwrap(), vec![1]);
    assert_eq!(
        s.holders_of(&key(KEY_DELETED)).unwrap(),
        vec![11],
        "deleted contacts count"
    );
    assert!(s
        .holders_of(&key("NobodyHasThisKeyNobodyHasThis01"))
        .unwrap()
        .is_empty());
    let upper = key(&KEY_A.to_uppercase());
    if s.info().keys_case_insensitive {
        assert_eq!(s.holders_of(&upper).unwrap(), vec![1]);
    } else {
        assert!(s.holders_of(&upper).unwrap().is_empty());
    }
}

pub fn rotation_assigns_a_unique_key(f: &dyn Fixture) {
    let mut s = f.open();
    let (_dir, mut j) = journal(&*s);
    let mut keys = SeededKeySource::new(99);
    let new = ApiKey::generate_from(&mut keys).unwrap();
    let done = rotation::assign(
        &mut *s,
        &mut j,
        &mut keys,
        2,
        &Expectation::Seen(None),
        NewKey::Generated(new),
    )
    .unwrap();
    assert_eq!(done.key.len(), 32);
    assert_eq!(s.read_key(2).unwrap(), Some(done.key.clone()));
    assert_eq!(done.previous, None);
    // A given key that another contact holds is refused; nothing is written.
    let err = rotation::assign(
        &mut *s,
        &mut j,
        &mut keys,
        4,
        &Expectation::Current,
        NewKey::Given(key(KEY_A)),
    )
    .err()
    .expect("clash refused");
    assert!(matches!(err, RotationError::KeyInUse(1)), "{err}");
    assert_eq!(s.read_key(4).unwrap(), None);
    // A generated key that clashes is replaced by another one.
    let done = rotation::assign(
        &mut *s,
        &mut j,
        &mut keys,
        4,
        &Expectation::Current,
        NewKey::Generated(key(KEY_B)),
    )
    .unwrap();
    assert!(done.regenerated);
    assert_ne!(done.key, key(KEY_B));
    assert_eq!(s.read_key(4).unwrap(), Some(done.key.clone()));
    // The journal holds one record per write, each done, with fingerprints only.
    let entries = j.entries(None, true, 10).unwrap();
    assert_eq!(
        entries.len(),
        2,
        "a refused key leaves no record: {entries:?}"
    );
    assert_eq!(entries[0].contact_id, 4);
    assert_eq!(entries[0].outcome.as_deref(), Some("done"));
    assert_eq!(
        entries[0].new_fingerprint.as_deref(),
        Some(&j.short_fingerprint(&done.key)[..])
    );
    assert_eq!(entries[1].contact_id, 2);
}

pub fn undo_restores_the_previous_key_and_is_audited(f: &dyn Fixture) {
    let mut s = f.open();
    let (_dir, mut j) = journal(&*s);
    let mut keys = SeededKeySource::new(11);
    let new = ApiKey::generate_from(&mut keys).unwrap();
    let done = rotation::assign(
        &mut *s,
        &mut j,
        &mut keys,
        1,
        &Expectation::Current,
        NewKey::Generated(new),
    )
    .unwrap();
    assert_eq!(done.previous, Some(key(KEY_A)));
    let back = rotation::undo(
        &mut *s,
        &mut j,
        &mut keys,
        1,
        Some(&done.key),
        done.previous.clone(),
    )
    .unwrap();
    assert_eq!(back.id, 1);
    assert_eq!(s.read_key(1).unwrap(), Some(key(KEY_A)));
    let entries = j.entries(Some(1), true, 10).unwrap();
    assert_eq!(entries[0].action, "undo");
    assert_eq!(entries[0].outcome.as_deref(), Some("done"));
    // Undo after someone else changed the key: refused, their key kept.
    let new = ApiKey::generate_from(&mut keys).unwrap();
    let done = rotation::assign(
        &mut *s,
        &mut j,
        &mut keys,
        2,
        &Expectation::Current,
        NewKey::Generated(new),
    )
    .unwrap();
    let theirs = key("SomeoneElseSomeoneElseSomeone001");
    s.swap_key(2, Some(&done.key), Some(&theirs)).unwrap();
    let err =
        rotation::undo(&mut *s, &mut j, &mut keys, 2, Some(&done.key), None).expect_err("refused");
    assert!(matches!(err, RotationError::ChangedSinceSeen), "{err}");
    assert_eq!(s.read_key(2).unwrap(), Some(theirs));
}

/// Every contact holding a key (deleted ones too), once, with its exact key; none other.
pub fn key_holders_pages_every_keyed_contact_once(f: &dyn Fixture) {
    let mut s = f.open();
    let mut expected = Vec::new();
    let mut q = Query::new("", 7);
    loop {
        let page = s.search(&q).unwrap();
        expected.extend(
            page.contacts
                .iter()
                .filter(|c| c.key.is_some())
                .map(|c| c.id),
        );
        match page.next {
            Some(next) => q.after = Some(next),
            None => break,
        }
    }
    expected.sort_unstable();
    assert!(expected.len() >= 3, "the data set has keys");
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s.key_holders(after.as_ref(), 2).unwrap();
        assert!(page.holders.len() <= 2);
        for h in &page.holders {
            assert_eq!(
                s.read_key(h.contact.id).unwrap().as_ref(),
                Some(&h.key),
                "contact {}",
                h.contact.id
            );
            assert_eq!(h.contact.key, Some(h.key.hint()));
            // The same fields as a lookup gives (the primary email above all: `check
            // --json` shows the same holder alike on every store).
            assert_eq!(h.contact, s.contact(h.contact.id).unwrap());
            seen.push(h.contact.id);
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen, expected);
    assert!(
        seen.contains(&11),
        "the deleted contact's key is listed too"
    );
    // The whole read (`read_key_holders`, the health check's): the same holders, once.
    let mut all = Vec::new();
    s.read_key_holders(&mut |batch| {
        all.extend(batch.into_iter().map(|h| h.contact));
        Ok(())
    })
    .unwrap();
    let mut ids: Vec<u64> = all.iter().map(|c| c.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, expected);
    for c in &all {
        assert_eq!(c, &s.contact(c.id).unwrap());
    }
}

/// Keys change while the pages are read: a key revoked behind the cursor (an offset would
/// then skip a holder), an unread holder's key changed to one that sorts first (a key
/// order would skip it), a new holder behind the cursor. Every contact holding a key all
/// along is read exactly once.
pub fn key_holders_are_read_once_while_keys_change(f: &dyn Fixture) {
    let mut s = f.open();
    // Two more holders, so that pages of two come three times.
    let keyless: Vec<u64> = s
        .search(&Query::new("", 50))
        .unwrap()
        .contacts
        .iter()
        .filter(|c| c.key.is_none())
        .map(|c| c.id)
        .take(2)
        .collect();
    for (i, id) in keyless.iter().enumerate() {
        let new = key(&format!("ExtraHolderKeyExtraHolderKey000{i}"));
        s.swap_key(*id, None, Some(&new)).unwrap();
    }
    let mut before = Vec::new();
    let mut after = None;
    loop {
        let page = s.key_holders(after.as_ref(), 1000).unwrap();
        before.extend(page.holders.iter().map(|h| h.contact.id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    before.sort_unstable();
    assert!(before.len() >= 5, "the data set has keys: {before:?}");
    let first = s.key_holders(None, 2).unwrap();
    let mut seen: Vec<u64> = first.holders.iter().map(|h| h.contact.id).collect();
    let read = first.holders[0].contact.id;
    s.swap_key(read, Some(&first.holders[0].key), None).unwrap();
    let last = *before.last().unwrap();
    let old = s.read_key(last).unwrap();
    s.swap_key(
        last,
        old.as_ref(),
        Some(&key("000000AAAAzzzzMovedFirst00000001")),
    )
    .unwrap();
    let mut cursor = first.next;
    while let Some(next) = cursor {
        let page = s.key_holders(Some(&next), 2).unwrap();
        seen.extend(page.holders.iter().map(|h| h.contact.id));
        cursor = page.next;
    }
    let mut once = seen.clone();
    once.sort_unstable();
    once.dedup();
    assert_eq!(once.len(), seen.len(), "a holder read twice: {seen:?}");
    assert_eq!(once, before, "every holder read once");
}

pub fn conflict_is_audited_and_keeps_the_other_writers_key(f: &dyn Fixture) {
    // A second writer changes the key between our read and our write: the store's
    // compare-and-set refuses, the journal says "conflict", the other key stays.
    struct Interloper {
        inner: Box<dyn ContactStore>,
        second: Box<dyn ContactStore>,
        theirs: ApiKey,
    }
    impl ContactStore for Interloper {
        fn info(&self) -> civikey::store::StoreInfo {
            self.inner.info()
        }
        fn search(&mut self, q: &Query) -> Result<civikey::store::Page, StoreError> {
            self.inner.search(q)
        }
        fn contact(&mut self, id: u64) -> Result<civikey::store::Contact, StoreError> {
            self.inner.contact(id)
        }
        fn holders_of(&mut self, k: &ApiKey) -> Result<Vec<u64>, StoreError> {
            self.inner.holders_of(k)
        }
        fn read_key(&mut self, id: u64) -> Result<Option<ApiKey>, StoreError> {
            self.inner.read_key(id)
        }
        fn key_holders(
            &mut self,
            after: Option<&civikey::store::HolderCursor>,
            limit: usize,
        ) -> Result<civikey::store::HolderPage, StoreError> {
            self.inner.key_holders(after, limit)
        }
        fn swap_key(
            &mut self,
            id: u64,
            expected: Option<&ApiKey>,
            new: Option<&ApiKey>,
        ) -> Result<(), StoreError> {
            self.second
                .swap_key(id, expected, Some(&self.theirs))
                .expect("second writer");
            self.inner.swap_key(id, expected, new)
        }
    }
    let theirs = key("InterloperInterloperInterlope01");
    let mut s = Interloper {
        inner: f.open(),
        second: f.open(),
        theirs: theirs.clone(),
    };
    let (_dir, mut j) = journal(&s);
    let mut keys = SeededKeySource::new(3);
    let new = ApiKey::generate_from(&mut keys).unwrap();
    let err = rotation::assign(
        &mut s,
        &mut j,
        &mut keys,
        1,
        &Expectation::Current,
        NewKey::Generated(new),
    )
    .err()
    .expect("conflict");
    assert!(
        matches!(err, RotationError::Store(StoreError::Conflict)),
        "{err}"
    );
    assert_eq!(s.read_key(1).unwrap(), Some(theirs));
    assert_eq!(
        j.entries(Some(1), true, 1).unwrap()[0].outcome.as_deref(),
        Some("conflict")
    );
}

pub fn rotation_refuses_when_the_key_changed_since_seen(f: &dyn Fixture) {
    let mut s = f.open();
    let (_dir, mut j) = journal(&*s);
    let mut keys = SeededKeySource::new(5);
    let new = ApiKey::generate_from(&mut keys).unwrap();
    // The operator saw "no key" for contact 1, which holds KEY_A.
    let err = rotation::assign(
        &mut *s,
        &mut j,
        &mut keys,
        1,
        &Expectation::Seen(None),
        NewKey::Generated(new),
    )
    .err()
    .expect("refused");
    assert!(matches!(err, RotationError::ChangedSinceSeen), "{err}");
    assert_eq!(s.read_key(1).unwrap(), Some(key(KEY_A)));
    let done = rotation::revoke(
        &mut *s,
        &mut j,
        3,
        &Expectation::Seen(Some(key(KEY_B).hint())),
    )
    .unwrap();
    assert_eq!(done.previous, Some(key(KEY_B)));
    assert_eq!(s.read_key(3).unwrap(), None);
}

/// The information a store gives about itself names the store and never a secret, and a
/// fresh store is writable (the fixtures make writable stores).
pub fn info_describes_the_store(f: &dyn Fixture) {
    let s = f.open();
    let info = s.info();
    assert!(info.writable, "{info:?}");
    assert!(!info.location.as_str().is_empty(), "{info:?}");
    for secret in ["password", "Bearer", KEY_A, KEY_B] {
        assert!(!info.location.as_str().contains(secret), "{info:?}");
    }
    assert!(s.rotation_batch() >= 1);
    let mut s = s;
    assert_eq!(s.contact(1).unwrap().id, 1, "the store answers");
}

/// `standings` of many contacts is `standing` of each.
pub fn standings_of_many_are_the_standing_of_each(f: &dyn Fixture) {
    let mut s = f.open();
    let ids = [1, 2, 3, 11, 12];
    let many = s.standings(&ids).unwrap();
    for id in ids {
        assert_eq!(
            many.get(&id),
            Some(&s.standing(id).unwrap()),
            "contact {id}"
        );
    }
    // A contact that does not exist: the SQL stores say NotFound; the API v4 stores
    // answer from the users' side alone (telling would cost a Contact.get, and every caller
    // has read the contact first). Either way, no other error.
    let missing = s.standing(424242);
    assert!(
        matches!(missing, Ok(_) | Err(StoreError::NotFound(424242))),
        "{missing:?}"
    );
}

/// A contact with a user account is never said to have none, whatever the store may read
/// (a least-privilege admin's User.get answers only its own row: rest/119); where the store
/// may not read users, every contact's user is unknown, in `show --json`'s terms null.
pub fn no_user_account_only_where_the_store_sees_users(f: &dyn Fixture) {
    use civikey::store::AccountState;
    let mut s = f.open();
    let ids = [1, 2, 3, 11, 12];
    let standings = s.standings(&ids).unwrap();
    let ada = s.contact(1).unwrap();
    let codes: Vec<&str> = civikey::assess::assess(&ada, &standings[&1])
        .iter()
        .map(|w| w.code.as_str())
        .collect();
    assert!(
        !codes.contains(&"no_user_account"),
        "Ada has a user: {codes:?}"
    );
    for id in ids {
        let standing = &standings[&id];
        if f.sees_users() {
            assert_ne!(standing.account, AccountState::Hidden, "contact {id}");
        } else {
            assert_eq!(standing.account, AccountState::Hidden, "contact {id}");
            assert!(!standing.account.is_known());
            let c = s.contact(id).unwrap();
            assert_eq!(c.cms, CmsLink::Unknown, "contact {id}: the list says cms?");
            assert_eq!(civikey::assess::needs_site_key(&c, standing), None);
        }
    }
}

/// The batched reads answer as the single ones do: `read_keys` leaves a missing contact
/// out, `holders_of_keys` keeps the keys' order.
pub fn batched_reads_answer_as_single_reads(f: &dyn Fixture) {
    let mut s = f.open();
    let ids = [1, 2, 11, 424242, 3];
    let many = s.read_keys(&ids).unwrap();
    let mut expected = HashMap::new();
    for id in ids {
        match s.read_key(id) {
            Ok(k) => {
                expected.insert(id, k);
            }
            Err(StoreError::NotFound(_)) => {}
            Err(e) => panic!("read_key({id}): {e}"),
        }
    }
    assert_eq!(many, expected);
    assert!(!many.contains_key(&424242));
    let (a, d, none) = (
        key(KEY_A),
        key(KEY_DELETED),
        key("NobodyHasThisKeyNobodyHasThis02"),
    );
    let holders = s.holders_of_keys(&[&d, &none, &a]).unwrap();
    assert_eq!(holders, vec![vec![11], Vec::new(), vec![1]]);
}

/// `swap_keys` gives each swap its own outcome, in order, and writes only those that held.
pub fn batched_swaps_each_have_their_own_outcome(f: &dyn Fixture) {
    let mut s = f.open();
    let (new1, new2, new3) = (
        key("BatchBatchBatchBatchBatchBatch01"),
        key("BatchBatchBatchBatchBatchBatch02"),
        key("BatchBatchBatchBatchBatchBatch03"),
    );
    let a = key(KEY_A);
    let swaps = [
        KeySwap {
            id: 2,
            expected: None,
            new: Some(&new1),
        },
        // Contact 3 holds KEY_B: expecting KEY_A there conflicts.
        KeySwap {
            id: 3,
            expected: Some(&a),
            new: Some(&new2),
        },
        KeySwap {
            id: 1,
            expected: Some(&a),
            new: Some(&new3),
        },
    ];
    let results = s.swap_keys(&swaps);
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(
        matches!(results[1], Err(StoreError::Conflict)),
        "{:?}",
        results[1]
    );
    assert!(results[2].is_ok(), "{:?}", results[2]);
    assert_eq!(s.read_key(2).unwrap(), Some(new1));
    assert_eq!(
        s.read_key(3).unwrap(),
        Some(key(KEY_B)),
        "the conflicting swap wrote nothing"
    );
    assert_eq!(s.read_key(1).unwrap(), Some(new3));
}

/// The fixture's stores inside the one wrapper every opened store sits in, with a login
/// site: the whole contract runs through it too, so a wrapper that loses a method (its
/// batching, its reads) fails here.
pub struct Wrapping<F>(pub F);

/// The login site the wrapped fixtures name (never contacted by the contract).
pub fn login_site() -> SiteLogin {
    SiteLogin {
        api_address: "https://login.example.invalid".into(),
        site_key: None,
        timeout: Duration::from_secs(1),
    }
}

impl<F: Fixture> Fixture for Wrapping<F> {
    fn open(&self) -> Box<dyn ContactStore> {
        Box::new(Wrapped::new(self.0.open(), Vec::new()).login(Some(login_site())))
    }

    fn sees_users(&self) -> bool {
        self.0.sees_users()
    }
}

/// The wrapper keeps what the store says of itself and adds only its own: the batch size
/// (a cv store with `site_url` once rotated one contact per batch instead of 50), the
/// login site, and `--read-only`, which refuses every write before it reaches the store.
pub fn wrapping_keeps_the_stores_answers<F: Fixture>(f: &F) {
    let plain = f.open();
    let wrapped = Wrapping(f).open();
    assert_eq!(wrapped.rotation_batch(), plain.rotation_batch());
    assert_eq!(wrapped.info(), plain.info());
    assert_eq!(
        wrapped.login_site().map(|l| l.api_address),
        Some(login_site().api_address)
    );
    let mut read_only = Wrapped::new(f.open(), Vec::new()).read_only(true);
    assert!(!read_only.info().writable);
    assert_eq!(read_only.rotation_batch(), plain.rotation_batch());
    let k = key("ReadOnlyReadOnlyReadOnlyReadOn01");
    assert!(matches!(
        read_only.swap_key(2, None, Some(&k)),
        Err(StoreError::ReadOnly(_))
    ));
    let results = read_only.swap_keys(&[KeySwap {
        id: 2,
        expected: None,
        new: Some(&k),
    }]);
    assert!(matches!(results[..], [Err(StoreError::ReadOnly(_))]));
    assert_eq!(read_only.read_key(2).unwrap(), None, "nothing was written");
    assert_eq!(read_only.contact(1).unwrap().id, 1);
}

/// Issue 21, finding 6: "changed since seen" compares the whole key, not the last four
/// characters the list shows. The operator saw contact 1 (holding KEY_A) in a list and in
/// its detail; another writer then gave it a key that ends the same: assigning and
/// revoking against what was seen are refused, and the other writer's key stays.
pub fn rotation_refuses_a_key_changed_to_one_ending_the_same(f: &dyn Fixture) {
    const SAME_TAIL: &str = "MmmmNnnnOoooPpppQqqqRrrrSsss0001";
    let mut s = f.open();
    let (_dir, mut j) = journal(&*s);
    let listed = s.search(&Query::new("1", 50)).unwrap().contacts[0]
        .key
        .clone();
    let detail = s.contact(1).unwrap().key;
    assert!(listed.is_some() && detail.is_some());
    let mut other = f.open();
    other
        .swap_key(1, Some(&key(KEY_A)), Some(&key(SAME_TAIL)))
        .unwrap();
    assert_eq!(
        s.contact(1).unwrap().key.map(|h| h.masked()),
        listed.as_ref().map(|h| h.masked()),
        "the list looks the same"
    );
    let mut keys = SeededKeySource::new(21);
    for seen in [listed, detail] {
        let new = ApiKey::generate_from(&mut keys).unwrap();
        let err = rotation::assign(
            &mut *s,
            &mut j,
            &mut keys,
            1,
            &Expectation::Seen(seen.clone()),
            NewKey::Generated(new),
        )
        .err()
        .expect("refused");
        assert!(matches!(err, RotationError::ChangedSinceSeen), "{err}");
        let err = rotation::revoke(&mut *s, &mut j, 1, &Expectation::Seen(seen))
            .err()
            .expect("refused");
        assert!(matches!(err, RotationError::ChangedSinceSeen), "{err}");
        assert_eq!(s.read_key(1).unwrap(), Some(key(SAME_TAIL)));
    }
    // What the list shows now is what the store holds: that goes through.
    let now = s.search(&Query::new("1", 50)).unwrap().contacts[0]
        .key
        .clone();
    rotation::revoke(&mut *s, &mut j, 1, &Expectation::Seen(now)).unwrap();
    assert_eq!(s.read_key(1).unwrap(), None);
}

/// Writes one `#[test]` per contract check for the fixture made by `$make()`; with
/// `; wrapped`, each again in a module `wrapped`, through the one store wrapper (once per
/// store kind: the wrapper is the same code whichever store is inside).
#[macro_export]
macro_rules! contract_tests {
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let fixture = $make;
                contract::$name(&fixture);
            }
        )*
    };
    (@all $make:expr) => {
        $crate::contract_tests!(@each $make;
            pages_cover_everything_once_in_order, search_by_id, search_by_email_prefix,
            search_by_exact_primary_email,
            search_by_name, search_table_finds_the_same_contacts_on_every_store,
            search_treats_wildcards_literally,
            deleted_contacts_are_flagged_and_filterable, contact_fields,
            missing_contact_is_not_found, contacts_are_read_many_at_once_in_order,
            hostile_text_comes_back_inert, read_swap_and_revoke,
            swap_with_wrong_expectation_conflicts, second_writer_wins_and_first_gets_conflict,
            holders_of_finds_keys_as_the_store_compares, rotation_assigns_a_unique_key,
            rotation_refuses_when_the_key_changed_since_seen,
            rotation_refuses_a_key_changed_to_one_ending_the_same,
            undo_restores_the_previous_key_and_is_audited,
            conflict_is_audited_and_keeps_the_other_writers_key,
            key_holders_pages_every_keyed_contact_once,
            key_holders_are_read_once_while_keys_change, info_describes_the_store,
            standings_of_many_are_the_standing_of_each,
            no_user_account_only_where_the_store_sees_users, batched_reads_answer_as_single_reads,
            batched_swaps_each_have_their_own_outcome);
    };
    ($make:expr; wrapped) => {
        $crate::contract_tests!($make);
        mod wrapped {
            #[allow(unused_imports)]
            use super::*;
            $crate::contract_tests!(@all contract::Wrapping($make));
        }
    };
    ($make:expr) => {
        $crate::contract_tests!(@all $make);
        #[test]
        fn wrapping_keeps_the_stores_answers() {
            let fixture = $make;
            contract::wrapping_keeps_the_stores_answers(&fixture);
        }
    };
}
