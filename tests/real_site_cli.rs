//! `show --json` and `rotate --json` through the real binary against the fake CiviCRM
//! site (tests/fake_civicrm): the warnings with their codes, the user and roles, and the
//! login check made with the new key.

mod binary;
mod fake_civicrm;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use civikey::seed::SeedContact;
use fake_civicrm::{FakeCivi, ADMIN_KEY, SITE_KEY};
use serde_json::Value;

fn contacts() -> Vec<SeedContact> {
    let person =
        |id: i64, name: &str, uf: Option<i64>, roles: &[&str], deleted: bool| SeedContact {
            id: Some(id),
            contact_type: "Individual".into(),
            display_name: name.into(),
            sort_name: name.into(),
            email: Some(format!("{}@example.org", name.to_lowercase())),
            is_deleted: deleted,
            uf_id: uf,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..Default::default()
        };
    vec![
        person(1, "Apiuser", Some(11), &["api client"], false),
        person(2, "Trashed", None, &[], true),
        person(3, "Blocked", Some(13), &["api client"], false),
        person(4, "Plain", Some(14), &["authenticated"], false),
    ]
}

struct Site {
    dir: tempfile::TempDir,
    server: FakeCivi,
}

impl Site {
    fn new() -> Site {
        let server = FakeCivi::start(contacts());
        server.state().user_of_mut(3).unwrap().active = false;
        Site {
            dir: tempfile::tempdir().unwrap(),
            server,
        }
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    /// A civicrm-rest profile; `site_key`: whether it sends the site key.
    fn config(&self, site_key: bool) -> PathBuf {
        self.file("admin.key", &format!("{ADMIN_KEY}\n"));
        self.file("site.key", &format!("{SITE_KEY}\n"));
        self.file(
            "config.toml",
            &format!(
                "default_profile = \"site\"\n[profiles.site]\nkind = \"civicrm-rest\"\naddress = \"{}\"\napi_key_file = \"admin.key\"\n{}",
                self.server.url(),
                if site_key { "site_key_file = \"site.key\"\n" } else { "" }
            ),
        )
    }

    fn run(&self, args: &[&str], config: &Path) -> Output {
        binary::civikey(self.dir.path())
            .args(args)
            .env("CIVIKEY_CONFIG", config)
            .output()
            .unwrap()
    }
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn codes(doc: &Value) -> Vec<String> {
    doc["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            assert!(w["text"].as_str().is_some_and(|t| !t.is_empty()));
            w["code"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn show_json_carries_warnings_user_roles_and_key() {
    let site = Site::new();
    let config = site.config(true);
    let apiuser = json(&site.run(&["show", "1", "--json"], &config));
    assert_eq!(codes(&apiuser), Vec::<String>::new());
    assert_eq!(apiuser["user"]["name"], "apiuser");
    assert_eq!(apiuser["user"]["active"], true);
    assert_eq!(apiuser["roles"][0]["name"], "api client");
    assert_eq!(apiuser["key"], Value::Null, "no key yet");
    let trashed = json(&site.run(&["show", "2", "--json"], &config));
    assert_eq!(codes(&trashed), ["trashed", "no_user_account"]);
    assert_eq!(trashed["user"], false);
    let blocked = json(&site.run(&["show", "3", "--json"], &config));
    assert_eq!(codes(&blocked), ["user_blocked"]);
    assert_eq!(blocked["user"]["active"], false);
    let plain = json(&site.run(&["show", "4", "--json"], &config));
    assert_eq!(codes(&plain), ["no_api_login_permission"]);

    // The detail view says the same in words.
    let out = site.run(&["show", "2"], &config);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("in the trash"), "{text}");
    assert!(
        text.contains("[trashed]") && text.contains("still logs in"),
        "{text}"
    );
    assert!(!text.contains("legacy REST"), "{text}");
}

#[test]
fn rotate_json_reports_the_login_check_both_ways() {
    let site = Site::new();
    let config = site.config(true);
    let out = site.run(&["rotate", "1", "--yes", "--json"], &config);
    let doc = json(&out);
    let key = doc["key"].as_str().unwrap().to_string();
    assert_eq!(
        doc["login_check"],
        serde_json::json!({"ok": true, "contact_id": 1, "detail": "logs in as contact 1"})
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("login check: logs in as contact 1"),
        "{stderr}"
    );
    assert!(!stderr.contains(&key));
    let with_key: Vec<_> = site
        .server
        .state()
        .requests
        .iter()
        .filter(|r| r.credential.as_deref() == Some(key.as_str()))
        .cloned()
        .collect();
    assert_eq!(with_key.len(), 1, "one login, never retried: {with_key:?}");

    // Without the site key, a user whose role lacks 'authenticate with api key' is refused;
    // the key stays assigned.
    site.server.state().require_site_key = false;
    let config = site.config(false);
    let out = site.run(&["rotate", "4", "--yes", "--json"], &config);
    let doc = json(&out);
    let check = &doc["login_check"];
    assert_eq!(check["ok"], false);
    assert_eq!(check["contact_id"], Value::Null);
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("Must satisfy guard (site_key, perm)"),
        "{check}"
    );
    assert_eq!(site.server.key_of(4).as_deref(), doc["key"].as_str());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the key stays assigned"), "{stderr}");
}

#[test]
fn stores_without_a_site_leave_the_login_check_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("data/contacts.sqlite");
    civikey::store::sqlite::SqliteStore::create(&store, contacts(), &mut |_| {}).unwrap();
    let out = binary::civikey(dir.path())
        .args(["--store", &format!("sqlite:{}", store.display())])
        .args(["rotate", "1", "--yes", "--json"])
        .output()
        .unwrap();
    let doc = json(&out);
    assert!(doc.get("login_check").is_none(), "{doc}");
    let out = binary::civikey(dir.path())
        .args(["--store", &format!("sqlite:{}", store.display())])
        .args(["show", "2", "--json"])
        .output()
        .unwrap();
    assert_eq!(codes(&json(&out)), ["trashed", "no_user_account"]);
}

#[test]
fn assign_from_stdin_checks_the_login_too() {
    use std::io::Write;
    let site = Site::new();
    let config = site.config(true);
    // A key `check` would not call weak (assign refuses those), replacing contact 1's.
    let key = "Q7wKx9m2Pz4RtY8vLnB3cD5fG6hJa1Zs";
    let mut child = binary::civikey(site.dir.path())
        .args(["assign", "1", "--key-stdin", "--yes"])
        .env("CIVIKEY_CONFIG", &config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{key}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("login check: logs in as contact 1"),
        "{stderr}"
    );
    assert!(!stderr.contains(key) && out.stdout.is_empty(), "{stderr}");
}

/// A cv profile with `site_url` checks the new key on that site: here the site is another
/// one (the fake REST site does not share cv's data), so authx does not know the key, and
/// the check says so while the key stays assigned.
#[test]
fn a_cv_profile_with_site_url_checks_the_login_on_that_site() {
    let site = Site::new();
    let folder = site.dir.path().join("civicrm");
    fs::create_dir(&folder).unwrap();
    let data = site.file(
        "cv-data.json",
        r#"{"contacts": [{"id": 1, "contact_type": "Individual", "display_name": "Apiuser",
            "sort_name": "Apiuser", "is_deleted": false, "api_key": null, "emails": [],
            "uf_matches": []}], "seen_keys": []}"#,
    );
    let fake = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake-cv/cv");
    let wrapper = site.file(
        "cv",
        &format!(
            "#!/bin/sh\nFAKE_CV_DATA='{}' exec '{}' \"$@\"\n",
            data.display(),
            fake.display()
        ),
    );
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o700)).unwrap();
    site.file("site.key", &format!("{SITE_KEY}\n"));
    let config = site.file(
        "cv.toml",
        &format!(
            "default_profile = \"cv\"\n[profiles.cv]\nkind = \"cv\"\naddress = \"cv:{}\"\ncv_binary = \"{}\"\nsite_url = \"{}\"\nsite_key_file = \"site.key\"\n",
            folder.display(),
            wrapper.display(),
            site.server.url()
        ),
    );
    let out = site.run(&["rotate", "1", "--yes", "--json"], &config);
    let doc = json(&out);
    let check = &doc["login_check"];
    assert_eq!(check["ok"], false, "{doc}");
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("HTTP 401 Invalid credential"),
        "{check}"
    );
    let key = doc["key"].as_str().unwrap();
    let state = site.server.state();
    let login = state.requests.last().unwrap();
    assert_eq!(login.credential.as_deref(), Some(key));
    assert!(login.site_key_sent);
    assert!(
        fs::read_to_string(&data).unwrap().contains(key),
        "the key stays assigned"
    );
}
