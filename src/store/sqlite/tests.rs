//! The SQLite store's plans against the reference answer, and its search structures
//! through migrations and other writers.

use super::index::*;
use super::plan::*;
use super::words::*;
use super::*;
use crate::seed::{synthetic_contacts, SeedContact};
use crate::store::{like_prefix, Matcher};

fn ids(store: &mut SqliteStore, text: &str, include_deleted: bool) -> Vec<ContactId> {
    let mut q = Query::new(text, 7);
    q.include_deleted = include_deleted;
    let mut out = Vec::new();
    loop {
        let page = store.search(&q).unwrap();
        out.extend(page.contacts.iter().map(|c| c.id));
        match page.next {
            Some(next) => q.after = Some(next),
            None => return out,
        }
    }
}

/// The answer by definition: every contact tested in Rust ([`crate::store::name_matches`]
/// for names, the email LIKE for emails), in list order.
fn reference(conn: &Connection, text: &str, include_deleted: bool) -> Vec<ContactId> {
    reference_with(conn, text, include_deleted, false)
}

fn reference_with(
    conn: &Connection,
    text: &str,
    include_deleted: bool,
    deep: bool,
) -> Vec<ContactId> {
    let deleted = if include_deleted {
        ""
    } else {
        " WHERE c.is_deleted = 0"
    };
    let q = Query::new(text, 1);
    let email = match q.matcher() {
        Matcher::EmailPrefix(t) => Some(like_prefix(t, '\\')),
        Matcher::Name(_) => None,
        other => panic!("not a text search: {other:?}"),
    };
    let sql = format!(
        "SELECT c.id, c.sort_name, c.first_name, c.last_name, c.display_name, c.contact_type,
                EXISTS (SELECT 1 FROM civicrm_email e WHERE e.contact_id = c.id AND e.email LIKE ?1 ESCAPE '\\')
           FROM civicrm_contact c NOT INDEXED{deleted} ORDER BY coalesce(c.sort_name, ''), c.id"
    );
    let mut stmt = conn.prepare(&sql).unwrap();
    let pattern = email.clone().unwrap_or_default();
    stmt.query_map([pattern], |r| {
        Ok((r.get::<_, i64>(0)?, row_names(r, 1)?, r.get::<_, bool>(6)?))
    })
    .unwrap()
    .map(Result::unwrap)
    .filter(|(_, names, email_match)| match &email {
        Some(_) => *email_match,
        None => crate::store::name_matches(&q.text, &names.names(), deep),
    })
    .map(|(id, _, _)| id as ContactId)
    .collect()
}

const QUERIES: &[&str] = &[
    "s",
    "Sm",
    "smith",
    "SMITH, J",
    "wang",
    "li",
    "van der",
    "der Berg",
    "de la",
    "ann lee",
    "wei w",
    "wei wang",
    "WANG WEI",
    "w wei",
    "wu w",
    "li na",
    "li na w",
    "na li",
    "garcía, j",
    "maria garcia",
    "garcia m",
    "m g",
    "van d",
    "jose maria",
    "müller",
    "MÜLLER",
    "Мария",
    "山",
    "山田",
    "o'b",
    "family",
    "acme",
    "%",
    "_",
    "a_",
    "zz",
    "ada.",
    "info1",
    "MARIA.GARCIA",
    "household12@",
    "x@",
    "@",
    "ü",
];

fn store_with(count: usize) -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let mut contacts: Vec<SeedContact> = synthetic_contacts(count, 3).collect();
    // Edge cases: spaces where words are looked for, case, wildcards, no names.
    for (i, (sort, display)) in [
        ("  lead, Space", "  Lead Space"),
        ("Tail ", "Tail  "),
        ("double  gap, X", "X  double  gap"),
        ("", ""),
        ("100%Sure", "a_b 100%Sure"),
    ]
    .into_iter()
    .enumerate()
    {
        contacts.push(SeedContact {
            id: Some((count + 1 + i) as i64),
            contact_type: "Individual".into(),
            sort_name: sort.into(),
            display_name: display.into(),
            ..SeedContact::default()
        });
    }
    let store = SqliteStore::create(&path, contacts, &mut |_| {}).unwrap();
    (dir, store)
}

#[test]
fn every_plan_answers_as_the_reference() {
    let (_dir, mut store) = store_with(3000);
    assert!(store.indexed);
    for text in QUERIES.iter().copied().chain([
        "  lead", "tail", "double", "gap", "a_b", "ann l", "l ann", "jose",
    ]) {
        for deleted in [true, false] {
            let expected = reference(&store.conn, text, deleted);
            for dense in [0, 20, DENSE_MATCHES] {
                store.dense_matches = dense;
                for paired in [true, false] {
                    store.paired = paired;
                    assert_eq!(
                        ids(&mut store, text, deleted),
                        expected,
                        "{text:?} dense={dense} deleted={deleted} paired={paired}"
                    );
                }
            }
            store.indexed = false;
            assert_eq!(
                ids(&mut store, text, deleted),
                expected,
                "{text:?} unindexed"
            );
            store.indexed = true;
        }
    }
}

#[test]
fn a_deep_search_also_finds_a_word_inside_the_display_name() {
    let (_dir, mut store) = store_with(2000);
    let deep = |store: &mut SqliteStore, text: &str| {
        let mut q = Query::new(text, 1000);
        q.deep = true;
        store
            .search(&q)
            .unwrap()
            .contacts
            .iter()
            .map(|c| c.id)
            .collect::<Vec<_>>()
    };
    for text in ["der Berg", "lee", "gap", "Widgets"] {
        let expected = reference_with(&store.conn, text, true, true);
        assert_eq!(deep(&mut store, text), expected, "{text:?}");
        let keystroke = reference(&store.conn, text, true);
        assert!(keystroke.iter().all(|id| expected.contains(id)), "{text:?}");
    }
    // "double  gap, X" / "X  double  gap": "gap" is inside the display name only.
    assert!(reference(&store.conn, "gap", true).is_empty());
    assert!(!deep(&mut store, "gap").is_empty());
}

#[test]
fn names_match_without_case_or_accents_in_every_script() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u.sqlite");
    let person = |id: i64, first: &str, last: &str| SeedContact {
        id: Some(id),
        contact_type: "Individual".into(),
        display_name: format!("{first} {last}"),
        sort_name: format!("{last}, {first}"),
        first_name: Some(first.into()),
        last_name: Some(last.into()),
        ..SeedContact::default()
    };
    let contacts = vec![
        person(1, "José", "García"),
        person(2, "Søren", "Kierkegaard"),
        person(3, "Иван", "Петров"),
        SeedContact {
            id: Some(4),
            contact_type: "Organization".into(),
            display_name: "Café Étoile".into(),
            sort_name: "Café Étoile".into(),
            ..SeedContact::default()
        },
        person(5, "Jürgen", "Straße"),
    ];
    let mut store = SqliteStore::create(&path, contacts, &mut |_| {}).unwrap();
    for (text, expected) in [
        ("jose", vec![1]),
        ("JOSÉ GARC", vec![1]),
        ("garcia, j", vec![1]),
        ("SØREN", vec![2]),
        ("søren k", vec![2]),
        ("иван", vec![3]),
        ("ПЕТР", vec![3]),
        ("cafe", vec![4]),
        ("CAFÉ ÉT", vec![4]),
        ("etoile", vec![]),
        ("straße", vec![5]),
        ("STRAẞE", vec![5]),
        ("strasse", vec![]),
        ("jurgen", vec![5]),
    ] {
        for indexed in [true, false] {
            store.indexed = indexed;
            assert_eq!(ids(&mut store, text, true), expected, "{text:?} {indexed}");
        }
    }
    let mut q = Query::new("etoile", 10);
    q.deep = true;
    let found: Vec<_> = store
        .search(&q)
        .unwrap()
        .contacts
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(
        found,
        vec![4],
        "a deep search finds the word inside the name"
    );
}

fn word_rows(conn: &Connection) -> Vec<(String, i64, String, String)> {
    let mut stmt = conn
        .prepare("SELECT word, contact_id, sort_key, head || '|' || head2 FROM civikey_word ORDER BY 1, 2")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn pair_rows(conn: &Connection) -> Vec<(String, String, i64, String)> {
    let mut stmt = conn
        .prepare("SELECT a, b, contact_id, sort_key FROM civikey_word_pair ORDER BY 1, 2, 3")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn words_built_while_seeding_equal_words_built_on_open() {
    let (_dir, mut store) = store_with(2000);
    let built = word_rows(&store.conn);
    let pairs = pair_rows(&store.conn);
    assert!(built.len() > 4000);
    assert!(pairs.len() > 2000);
    install_search_index(&mut store.conn, None).unwrap();
    assert_eq!(word_rows(&store.conn), built);
    assert_eq!(pair_rows(&store.conn), pairs);
    install_pair_index(&mut store.conn).unwrap();
    assert_eq!(pair_rows(&store.conn), pairs);
    assert!(has_pair_index(&store.conn).unwrap());
}

#[test]
fn a_store_from_before_the_pair_table_gets_it_once() {
    let (dir, store) = store_with(600);
    let path = dir.path().join("s.sqlite");
    let pairs = pair_rows(&store.conn);
    let words = word_rows(&store.conn);
    drop(store);
    // The previous version: the word table and triggers that note only its changes.
    let old_triggers = "
        CREATE TRIGGER civikey_word_insert AFTER INSERT ON civicrm_contact BEGIN
            INSERT OR IGNORE INTO civikey_word_stale (contact_id, indexed) VALUES (NEW.id, 0);
        END;
        CREATE TRIGGER civikey_word_update
        AFTER UPDATE OF id, sort_name, first_name, last_name, display_name, contact_type
        ON civicrm_contact BEGIN
            INSERT OR IGNORE INTO civikey_word_stale VALUES
                (OLD.id, 1, OLD.sort_name, OLD.first_name, OLD.last_name, OLD.display_name, OLD.contact_type);
            INSERT OR IGNORE INTO civikey_word_stale (contact_id, indexed) VALUES (NEW.id, 0);
        END;
        CREATE TRIGGER civikey_word_delete AFTER DELETE ON civicrm_contact BEGIN
            INSERT OR IGNORE INTO civikey_word_stale VALUES
                (OLD.id, 1, OLD.sort_name, OLD.first_name, OLD.last_name, OLD.display_name, OLD.contact_type);
        END;";
    let old = Connection::open(&path).unwrap();
    old.execute_batch(&format!(
        "DROP TRIGGER civikey_word_insert; DROP TRIGGER civikey_word_update;
         DROP TRIGGER civikey_word_delete; DROP TABLE civikey_word_pair;
         DROP TABLE civikey_pair_stale; {old_triggers}"
    ))
    .unwrap();
    // A read-only handle searches several words the older way, with the same answers.
    let mut read_only = SqliteStore::open_with(&path, true).unwrap();
    assert!(read_only.indexed && !read_only.paired);
    for text in ["wei w", "maria garcia", "smith"] {
        let expected = reference(&read_only.conn, text, true);
        assert_eq!(ids(&mut read_only, text, true), expected, "{text}");
    }
    drop(read_only);
    let store = SqliteStore::open(&path).unwrap();
    assert!(store.indexed && store.paired);
    assert_eq!(pair_rows(&store.conn), pairs);
    assert_eq!(word_rows(&store.conn), words, "the words were kept");
    // Once: a marker row survives the next open.
    store
        .conn
        .execute(
            "INSERT INTO civikey_word_pair VALUES ('marker', 'row', 1, '')",
            [],
        )
        .unwrap();
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    assert!(store.paired);
    assert_eq!(pair_rows(&store.conn).len(), pairs.len() + 1);
    // Triggers made again without the pair notes (an older civikey rebuilding its
    // index): the pairs are rebuilt too.
    drop(store);
    Connection::open(&path)
        .unwrap()
        .execute_batch(&format!(
            "DROP TRIGGER civikey_word_insert; DROP TRIGGER civikey_word_update;
             DROP TRIGGER civikey_word_delete; {old_triggers}"
        ))
        .unwrap();
    let store = SqliteStore::open(&path).unwrap();
    assert!(store.paired);
    assert_eq!(pair_rows(&store.conn), pairs);
}

#[test]
fn several_words_are_answered_by_the_pair_table() {
    let (dir, mut store) = store_with(3000);
    for text in ["wei w", "maria garcia", "garcía, j", "li na w"] {
        let plan = store.plan(&Query::new(text, 7)).unwrap();
        assert!(plan.from.contains("civikey_word_pair"), "{text}");
        assert!(!reference(&store.conn, text, true).is_empty(), "{text}");
    }
    // One word: the word table alone.
    let plan = store.plan(&Query::new("wei", 7)).unwrap();
    assert!(!plan.from.contains("civikey_word_pair"));
    // Many names starting with the whole text: walked in list order, merged with the
    // pairs; too many pairs: the older walk.
    store.dense_matches = 2;
    let plan = store.plan(&Query::new("van d", 7)).unwrap();
    assert!(plan.from.contains("civikey_word_pair"));
    assert!(plan.from.contains("INDEXED BY civikey_word_head2"));
    let plan = store.plan(&Query::new("m g", 7)).unwrap();
    assert!(!plan.from.contains("civikey_word_pair"));
    store.dense_matches = DENSE_MATCHES;
    // A pair no contact has (written around the triggers) never shows a contact.
    let other = Connection::open(dir.path().join("s.sqlite")).unwrap();
    other
        .execute(
            "INSERT INTO civikey_word_pair VALUES ('bogusfirst', 'boguslast', 3, 'B')",
            [],
        )
        .unwrap();
    assert!(reference(&store.conn, "bogusfirst bogusl", true).is_empty());
    assert!(ids(&mut store, "bogusfirst bogusl", true).is_empty());
    assert!(ids(&mut store, "boguslast b", true).is_empty());
}

#[test]
fn pairs_an_older_civikey_left_stale_are_refolded() {
    let (dir, mut store) = store_with(300);
    let path = dir.path().join("s.sqlite");
    let other = Connection::open(&path).unwrap();
    other
        .execute_batch(
            "UPDATE civicrm_contact SET first_name = 'Quentin', last_name = 'Zebrafish', sort_name = 'Zebrafish, Quentin' WHERE id = 1;
             INSERT INTO civicrm_contact (id, contact_type, display_name, sort_name, first_name, last_name) VALUES (9001, 'Individual', 'Xavier Quokka', 'Quokka, Xavier', 'Xavier', 'Quokka');",
        )
        .unwrap();
    // An older civikey refolds the words (here: this one, pairs left out) and clears
    // only the word notes.
    store.paired = false;
    assert_eq!(ids(&mut store, "zebrafish", true), vec![1]);
    store.paired = true;
    let noted: i64 = store
        .conn
        .query_row("SELECT count(*) FROM civikey_pair_stale", [], |r| r.get(0))
        .unwrap();
    assert!(noted >= 2, "the pair notes wait");
    let mut read_only = SqliteStore::open_with(&path, true).unwrap();
    assert!(read_only.paired);
    for text in ["quentin zeb", "zebrafish q", "xavier quokka", "q x"] {
        let expected = reference(&store.conn, text, true);
        assert!(!expected.is_empty(), "{text}");
        assert_eq!(
            ids(&mut read_only, text, true),
            expected,
            "{text} read-only"
        );
        assert_eq!(ids(&mut store, text, true), expected, "{text}");
    }
    assert_eq!(pair_rows(&store.conn), {
        let fresh = pair_rows(&store.conn);
        install_pair_index(&mut store.conn).unwrap();
        assert_eq!(
            pair_rows(&store.conn),
            fresh,
            "refolded as a rebuild makes them"
        );
        fresh
    });
}

#[test]
fn other_writers_keep_the_index_in_step() {
    let (dir, mut store) = store_with(500);
    let path = dir.path().join("s.sqlite");
    // Another program writes the file: the sqlite3 shell, a script (no civikey function
    // is needed to write).
    let other = Connection::open(&path).unwrap();
    other
        .execute_batch(
            "UPDATE civicrm_contact SET contact_type = 'Individual', display_name = 'Quentin Zebrafish', sort_name = 'Zebrafish, Quentin', first_name = 'Quentin', last_name = 'Zebrafish' WHERE id = 1;
             INSERT INTO civicrm_contact (id, contact_type, display_name, sort_name, first_name, last_name) VALUES (9001, 'Individual', 'Xavier Quokka', 'Quokka, Xavier', 'Xavier', 'Quokka');
             UPDATE civicrm_contact SET is_deleted = 1 WHERE id = 9001;
             DELETE FROM civicrm_contact WHERE id = 2;",
        )
        .unwrap();
    // A read-only handle cannot refold: it answers without the word table, correctly.
    let mut read_only = SqliteStore::open_with(&path, true).unwrap();
    for text in ["zebra", "quentin", "quokka", "xavier q", "QUOKKA X"] {
        let expected = reference(&store.conn, text, true);
        assert!(!expected.is_empty(), "{text}");
        assert_eq!(
            ids(&mut read_only, text, true),
            expected,
            "{text} read-only"
        );
        assert_eq!(ids(&mut store, text, true), expected, "{text}");
    }
    assert!(ids(&mut store, "quokka", false).is_empty());
    let stale: i64 = store
        .conn
        .query_row("SELECT count(*) FROM civikey_word_stale", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stale, 0, "the changed contacts were refolded");
    // A word no contact has (written around the triggers) never shows a contact.
    other
        .execute(
            "INSERT INTO civikey_word VALUES ('bogusname', 3, 'B', 'b', 'bo')",
            [],
        )
        .unwrap();
    assert!(reference(&store.conn, "bogus", true).is_empty());
    assert!(ids(&mut store, "bogus", true).is_empty());
    let words = |id: i64| -> Vec<String> {
        let mut stmt = store
            .conn
            .prepare("SELECT word FROM civikey_word WHERE contact_id = ? ORDER BY word")
            .unwrap();
        stmt.query_map([id], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert!(words(2).is_empty(), "a deleted contact leaves no words");
    assert_eq!(
        words(1),
        vec!["quentin", "zebrafish", "zebrafish, quentin"],
        "a renamed contact has only its new words"
    );
}

#[test]
fn stores_from_before_the_index_still_work() {
    let (dir, store) = store_with(300);
    let path = dir.path().join("s.sqlite");
    drop(store);
    let strip = || {
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "DROP TRIGGER civikey_word_insert; DROP TRIGGER civikey_word_update;
                 DROP TRIGGER civikey_word_delete; DROP TABLE civikey_word;
                 DROP TABLE civikey_word_stale; DROP INDEX civikey_sort_key;",
            )
            .unwrap();
    };
    strip();
    let mut read_only = SqliteStore::open_with(&path, true).unwrap();
    assert!(!read_only.indexed, "a read-only store is left as it is");
    let expected = reference(&read_only.conn, "smith", true);
    assert_eq!(ids(&mut read_only, "smith", true), expected);
    drop(read_only);
    let mut writable = SqliteStore::open(&path).unwrap();
    assert!(writable.indexed, "a writable one gets the index on open");
    assert_eq!(ids(&mut writable, "smith", true), expected);
}

#[test]
fn words_folded_by_an_older_version_are_refolded_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.sqlite");
    let person = SeedContact {
        id: Some(1),
        contact_type: "Individual".into(),
        display_name: "Jürgen Straße".into(),
        sort_name: "Straße, Jürgen".into(),
        first_name: Some("Jürgen".into()),
        last_name: Some("Straße".into()),
        ..SeedContact::default()
    };
    let store = SqliteStore::create(&path, vec![person], &mut |_| {}).unwrap();
    let expected = word_rows(&store.conn);
    drop(store);
    // As version 1 left it: ß folded to "ss", and no fold mark.
    Connection::open(&path)
        .unwrap()
        .execute_batch(&format!(
            "UPDATE civikey_word SET word = replace(word, 'ß', 'ss');
             DROP VIEW {FOLD_MARK};"
        ))
        .unwrap();
    let mut store = SqliteStore::open(&path).unwrap();
    assert!(store.indexed);
    assert_eq!(word_rows(&store.conn), expected, "refolded");
    assert_eq!(ids(&mut store, "straß", true), vec![1]);
    assert_a_second_open_keeps_the_words(store, &path);
}

#[test]
fn the_ascii_only_index_of_older_versions_is_replaced_once() {
    let (dir, store) = store_with(300);
    let path = dir.path().join("s.sqlite");
    let expected = word_rows(&store.conn);
    drop(store);
    // The first version's objects, as an older civikey left them.
    Connection::open(&path)
        .unwrap()
        .execute_batch(
            "DROP TRIGGER civikey_word_insert; DROP TRIGGER civikey_word_update;
             DROP TRIGGER civikey_word_delete; DROP TABLE civikey_word;
             DROP TABLE civikey_word_stale;
             CREATE TABLE civikey_position (i INTEGER PRIMARY KEY);
             CREATE TABLE civikey_name_word (word TEXT COLLATE NOCASE, contact_id INTEGER);
             CREATE TRIGGER civikey_name_word_delete AFTER DELETE ON civicrm_contact BEGIN
                 DELETE FROM civikey_name_word WHERE contact_id = OLD.id;
             END;",
        )
        .unwrap();
    let store = SqliteStore::open(&path).unwrap();
    assert!(store.indexed);
    assert_eq!(word_rows(&store.conn), expected);
    let old: i64 = store
        .conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name LIKE 'civikey_name_word%' OR name = 'civikey_position'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(old, 0, "the old objects are gone");
    assert_a_second_open_keeps_the_words(store, &path);
}

/// A migration happens once: a second open keeps the word table as it is (a marker row
/// put in by hand survives).
fn assert_a_second_open_keeps_the_words(store: SqliteStore, path: &Path) {
    store
        .conn
        .execute(
            "INSERT INTO civikey_word VALUES ('marker', 1, '', 'm', 'ma')",
            [],
        )
        .unwrap();
    drop(store);
    let store = SqliteStore::open(path).unwrap();
    let marker: i64 = store
        .conn
        .query_row(
            "SELECT count(*) FROM civikey_word WHERE word = 'marker'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(marker, 1, "the words were rebuilt a second time");
}

#[test]
fn upper_bounds_close_prefix_ranges() {
    assert_eq!(prefix_upper_bound("ab").as_deref(), Some("ac"));
    assert_eq!(
        prefix_upper_bound("a@").as_deref(),
        Some("a["),
        "A-Z fold to a-z"
    );
    assert_eq!(
        prefix_upper_bound("a\u{d7ff}").as_deref(),
        Some("a\u{e000}")
    );
    assert_eq!(prefix_upper_bound("b\u{10ffff}").as_deref(), Some("c"));
    assert_eq!(prefix_upper_bound("\u{10ffff}"), None);
}
