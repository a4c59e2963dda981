//! The cv store against the bench's cv stand-in (`civikey-bench cv-on-mysql`, a `cv pipe`
//! answered from MariaDB through the REST stand-in's API v4 translation): the store's
//! read-only contract finds the same contacts there as on every other store, so the
//! figures in docs/PERFORMANCE.md measure the searches civikey really runs.
//!
//! Needs the MariaDB test server (`eval "$(bash scripts/mariadb-test-server.sh)"`); without
//! one these tests fail under CI=true and are skipped (visibly) otherwise.

mod contract;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use civikey::seed::SeedContact;
use civikey::store::cv::CvStore;
use civikey::store::mysql::{insert_contacts, install_schema, open_connection};
use civikey::store::spec::{CvOptions, MysqlOptions, MysqlTls, Secret};
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
        // The password reaches the stand-in as the bench reads it: from the environment.
        let script = format!(
            "#!/bin/sh\nexec '{}' cv-on-mysql '{address}' \"$@\"\n",
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
