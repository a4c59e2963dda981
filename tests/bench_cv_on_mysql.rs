//! The cv and REST stores against the bench's stand-ins (`civikey-bench cv-on-mysql`, a `cv
//! pipe`, and `civikey-bench rest-on-mysql`, CiviCRM's REST API v4, both answered from
//! MariaDB through the same API v4 translation): the stores' read-only contract finds the
//! same contacts there as on every other store, so the figures in docs/PERFORMANCE.md
//! measure the searches civikey really runs; and on MariaDB's own collation, the REST
//! store's keystroke pages (ordered by civikey where it is sure of the site's order) page
//! as the site orders them.
//!
//! Needs the MariaDB test server (`eval "$(bash scripts/mariadb-test-server.sh)"`); without
//! one these tests fail under CI=true and are skipped (visibly) otherwise.

mod contract;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use civikey::key::ApiKey;
use civikey::secret::Secret;
use civikey::seed::SeedContact;
use civikey::store::cv::CvOptions;
use civikey::store::cv::CvStore;
use civikey::store::mysql::MysqlOptions;
use civikey::store::mysql::MysqlTls;
use civikey::store::mysql::{insert_contacts, install_schema, open_connection};
use civikey::store::rest::RestOptions;
use civikey::store::rest::RestStore;
use civikey::store::ContactStore;
use mysql::prelude::Queryable;

const URL_VAR: &str = "CIVIKEY_TEST_MYSQL_URL";
const PASSWORD_VAR: &str = "CIVIKEY_TEST_MYSQL_PASSWORD";

fn server() -> Option<(String, String)> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => Some((
            url.trim_end_matches('/').to_string(),
            std::env::var(PASSWORD_VAR).unwrap_or_default(),
        )),
        _ => {
            let reason = format!("{URL_VAR} is not set; start a server with: eval \"$(bash scripts/mariadb-test-server.sh)\"");
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{reason}");
            }
            let name = std::thread::current().name().unwrap_or("").to_string();
            let _ = writeln!(std::io::stderr(), "SKIP {name}: {reason}");
            None
        }
    }
}

fn options(url: &str, db: &str, password: &str) -> MysqlOptions {
    MysqlOptions {
        address: format!("{url}/{db}"),
        password: Some(Secret::new(password.to_string())),
        table_prefix: String::new(),
        tls: MysqlTls::Auto,
        tls_ca_file: None,
        timeout: Duration::from_secs(10),
    }
}

/// A database of its own and a `cv_binary` that runs the stand-in on it.
struct StandIn {
    dir: tempfile::TempDir,
    url: String,
    password: String,
    db: String,
}

impl StandIn {
    fn new(contacts: Vec<SeedContact>) -> Option<Self> {
        let (url, password) = server()?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let db = format!("civikey_cvbench_{}_{nanos}", std::process::id());
        let mut admin =
            open_connection(&options(&url, "information_schema", &password)).expect("connect");
        admin
            .query_drop(format!(
                "CREATE DATABASE `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            ))
            .unwrap();
        let stand_in = StandIn {
            dir: tempfile::tempdir().unwrap(),
            url,
            password,
            db,
        };
        let mut conn = open_connection(&options(&stand_in.url, &stand_in.db, &stand_in.password))
            .expect("connect");
        install_schema(&mut conn, "").expect("schema");
        insert_contacts(&mut conn, "", contacts, &mut |_| {}).expect("contacts");
        fs::create_dir(stand_in.dir.path().join("site")).unwrap();
        let address = format!("{}/{}", stand_in.url, stand_in.db);
        assert!(!address.contains('\''));
        // The password reaches the stand-in as the bench reads it: from the environment,
        // which the script sets (civikey gives cv a minimal environment of its own).
        assert!(!stand_in.password.contains('\''));
        let script = format!(
            "#!/bin/sh\nexport {PASSWORD_VAR}='{}'\nexec '{}' cv-on-mysql '{address}' \"$@\"\n",
            stand_in.password,
            env!("CARGO_BIN_EXE_civikey-bench")
        );
        let binary = stand_in.dir.path().join("cv");
        fs::write(&binary, script).unwrap();
        fs::set_permissions(&binary, fs::Permissions::from_mode(0o700)).unwrap();
        Some(stand_in)
    }

    fn store(&self) -> CvStore {
        CvStore::new(&CvOptions {
            site_path: self.dir.path().join("site"),
            cv_binary: self.dir.path().join("cv"),
            cv_user: None,
            timeout: Duration::from_secs(30),
        })
        .expect("cv store")
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if let Ok(mut conn) =
            open_connection(&options(&self.url, "information_schema", &self.password))
        {
            let _ = conn.query_drop(format!("DROP DATABASE IF EXISTS `{}`", self.db));
        }
    }
}

impl contract::Fixture for StandIn {
    fn open(&self) -> Box<dyn ContactStore> {
        Box::new(self.store())
    }
}

/// The read-only checks of the contract (the stand-in refuses writes).
#[test]
fn the_read_only_contract_holds_through_the_stand_in() {
    let Some(f) = StandIn::new(contract::contacts()) else {
        return;
    };
    contract::pages_cover_everything_once_in_order(&f);
    contract::search_by_id(&f);
    contract::search_by_email_prefix(&f);
    contract::search_by_name(&f);
    contract::search_table_finds_the_same_contacts_on_every_store(&f);
    contract::search_treats_wildcards_literally(&f);
    contract::deleted_contacts_are_flagged_and_filterable(&f);
    contract::contact_fields(&f);
    contract::missing_contact_is_not_found(&f);
    contract::contacts_are_read_many_at_once_in_order(&f);
}

/// The sorted first-name branch on MariaDB's own collation: `ZED, CARLA` and `Zed, Carla`
/// are one sort name there, so the last sort name's call finds both spellings.
#[test]
fn a_sorted_first_name_branch_pages_through_a_shared_sort_name_on_mariadb() {
    let Some(f) = StandIn::new(contract::shared_sort_name_contacts()) else {
        return;
    };
    contract::a_sorted_branch_pages_through_a_shared_sort_name(&mut f.store(), &mut || {});
}

/// The REST stand-in on a stand-in's database, on a free port; stopped when dropped.
struct RestStandIn {
    child: std::process::Child,
    url: String,
}

impl RestStandIn {
    fn start(f: &StandIn) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_civikey-bench"))
            .args(["rest-on-mysql", &format!("{}/{}", f.url, f.db), "0"])
            .env(PASSWORD_VAR, &f.password)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("civikey-bench rest-on-mysql");
        let mut line = String::new();
        std::io::BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .rsplit_once(" on ")
            .map(|(_, url)| url.to_string())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        RestStandIn { child, url }
    }

    fn store(&self) -> RestStore {
        RestStore::connect(&RestOptions {
            base_url: self.url.clone(),
            api_key: ApiKey::from_store("standinkeystandinkeystandinkey12".into()),
            site_key: None,
            timeout: Duration::from_secs(30),
        })
        .expect("rest store")
    }
}

impl Drop for RestStandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server first, so it stops before its database goes.
struct RestFixture {
    rest: RestStandIn,
    _db: StandIn,
}

impl contract::Fixture for RestFixture {
    fn open(&self) -> Box<dyn ContactStore> {
        Box::new(self.rest.store())
    }
}

/// The REST store's read-only contract on MariaDB, through the REST stand-in.
#[test]
fn the_rest_stores_read_only_contract_holds_on_mariadb() {
    let Some(db) = StandIn::new(contract::contacts()) else {
        return;
    };
    let rest = RestStandIn::start(&db);
    let f = RestFixture { rest, _db: db };
    contract::search_by_name(&f);
    contract::search_table_finds_the_same_contacts_on_every_store(&f);
    contract::search_treats_wildcards_literally(&f);
    contract::deleted_contacts_are_flagged_and_filterable(&f);
}

/// The REST store's sorted first-name branch on MariaDB's collation, as the cv one above.
#[test]
fn a_rest_sorted_first_name_branch_pages_through_a_shared_sort_name_on_mariadb() {
    let Some(db) = StandIn::new(contract::shared_sort_name_contacts()) else {
        return;
    };
    let rest = RestStandIn::start(&db);
    contract::a_sorted_branch_pages_through_a_shared_sort_name(&mut rest.store(), &mut || {});
}

/// Sort names that differ in punctuation, case, accents, digits and spaces, all found by
/// one keystroke: paged by 1 to 7 through REST they come exactly in MariaDB's
/// `ORDER BY sort_name, id`, each once.
#[test]
fn rest_keystroke_pages_follow_the_collations_order() {
    let names = [
        "Ann-Marie, Zoe",
        "Ann.Marie, Yves",
        "Annéa, Xavier",
        "Annea, Will",
        "Ann Lee, Vera",
        "ANN, Sue",
        "Ann2, Tom",
        "Ann10, Rik",
        "Ann's, Pia",
        "Ann_x, Ola",
        "Ann~x, Nia",
        "Ann:x, Max",
        "Ann, sue",
        "Anne, Lou",
        "ANNE, LOU",
        "Annё, Kim",
        "Anna, Jo",
    ];
    let seeds: Vec<SeedContact> = names
        .iter()
        .enumerate()
        .map(|(i, name)| SeedContact {
            id: Some(i as i64 + 1),
            contact_type: "Individual".into(),
            display_name: format!("Contact {i}"),
            sort_name: (*name).into(),
            first_name: Some(format!("F{i}")),
            last_name: name.split(',').next().map(String::from),
            ..SeedContact::default()
        })
        .collect();
    let Some(db) = StandIn::new(seeds) else {
        return;
    };
    let mut conn = open_connection(&options(&db.url, &db.db, &db.password)).expect("connect");
    let site: Vec<u64> = conn
        .query("SELECT id FROM civicrm_contact WHERE sort_name LIKE 'ann%' ORDER BY sort_name, id")
        .unwrap();
    assert_eq!(site.len(), names.len());
    let rest = RestStandIn::start(&db);
    let mut store = rest.store();
    for by in 1..=7 {
        let mut seen = Vec::new();
        let mut query = civikey::store::Query::new("ann", by);
        loop {
            let page = store.search(&query).unwrap();
            seen.extend(page.contacts.iter().map(|c| c.id));
            match page.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, site, "paged by {by}");
    }
}
