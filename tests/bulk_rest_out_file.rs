//! Bulk rotation over REST when the out file cannot be written: every contact of the
//! batch already written gets its old key back, later batches are not attempted. Its own
//! test binary: the debug-build hook that fails the out file's lines is process-wide.

mod fake_civicrm;

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use civikey::audit::{Actor, Journal};
use civikey::bulk::{self, BulkOutcome, OutFile};
use civikey::key::{ApiKey, OsKeySource};
use civikey::rotation::Expectation;
use civikey::secret::Secret;
use civikey::seed::SeedContact;
use civikey::store::rest::RestOptions;
use civikey::store::rest::RestStore;
use civikey::store::ContactId;

use fake_civicrm::{FakeCivi, ADMIN_KEY, SITE_KEY};

#[test]
fn a_failed_out_file_line_puts_back_the_whole_batch_and_stops() {
    let seeds: Vec<SeedContact> = (1..=60u64)
        .map(|id| SeedContact {
            id: Some(id as i64),
            contact_type: "Individual".into(),
            display_name: format!("Person {id}"),
            sort_name: format!("{id:05}, Person"),
            first_name: None,
            last_name: None,
            email: None,
            is_deleted: false,
            api_key: (id % 3 != 0).then(|| ApiKey::generate().unwrap()),
            uf_id: None,
            roles: vec![],
        })
        .collect();
    let server = FakeCivi::start(seeds);
    let before: Vec<Option<String>> = (1..=60).map(|id| server.key_of(id)).collect();
    let mut store = RestStore::connect(&RestOptions {
        base_url: server.url(),
        api_key: ApiKey::from_store(ADMIN_KEY.into()),
        site_key: Some(Secret::new(SITE_KEY.into())),
        timeout: Duration::from_secs(10),
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let actor = Actor {
        operator: "alice".into(),
        store: "civicrm-rest:fake".into(),
        ..Actor::default()
    };
    let mut journal = Journal::open(&dir.path().join("data"), actor).unwrap();
    let path = dir.path().join("keys.csv");
    let mut out = OutFile::create(&path).unwrap();
    let items: Vec<(ContactId, Expectation)> =
        (1..=60).map(|id| (id, Expectation::Current)).collect();
    // This test binary has one test: nothing else sees the hook.
    std::env::set_var("CIVIKEY_DEBUG_FAIL_OUT_LINE", "1");
    let results = bulk::rotate_many(
        &mut store,
        &mut journal,
        &mut OsKeySource,
        &items,
        &mut out,
        &AtomicBool::new(false),
        &mut |_, _, _| {},
    );
    std::env::remove_var("CIVIKEY_DEBUG_FAIL_OUT_LINE");
    let after: Vec<Option<String>> = (1..=60).map(|id| server.key_of(id)).collect();
    assert_eq!(after, before, "a key nobody holds was left in place");
    let mut entries = journal.entries(None, true, 1000).unwrap();
    entries.sort_by_key(|e| e.id);
    for r in &results {
        let actions: Vec<(String, Option<String>)> = entries
            .iter()
            .filter(|e| e.contact_id == r.id)
            .map(|e| (e.action.clone(), e.outcome.clone()))
            .collect();
        if r.id <= 50 {
            match &r.outcome {
                BulkOutcome::Failed(why) => {
                    assert!(why.contains("the old key was put back"), "{}: {why}", r.id)
                }
                other => panic!("contact {}: {other:?}", r.id),
            }
            let done = Some("done".to_string());
            assert_eq!(
                actions,
                vec![("assign".into(), done.clone()), ("undo".into(), done)],
                "contact {}",
                r.id
            );
        } else {
            assert_eq!(r.outcome, BulkOutcome::Skipped, "contact {}", r.id);
            assert!(actions.is_empty(), "contact {} was touched", r.id);
        }
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text, "contact_id,display_name,email,api_key\n",
        "only the header"
    );
}
