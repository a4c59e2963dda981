//! Issue 21, findings 1-3: a hostile REST site that echoes the request (its headers: the
//! admin's key, the site key, a new key being checked; its body: old, new and looked-up
//! keys) upper-, lower- or mixed-cased in its 4xx/5xx answers, JSON or a 401 text/plain,
//! never gets a secret printed or journaled. Through the binary: `list`, `rotate` (the
//! journal included: `audit --json` and the raw bytes of the data folder), bulk `rotate
//! --ids-from`, `whose --key-stdin` and the login check after a rotation. Every secret is
//! searched for in any case.

mod binary;
mod fake_civicrm;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use civikey::key::ApiKey;
use civikey::seed::SeedContact;
use fake_civicrm::{Case, EchoOn, FakeCivi, Mode, ADMIN_KEY, SITE_KEY};

const OLD: [&str; 3] = [
    "OldKeyOfContactOneAbcdefgh012345",
    "OldKeyOfContactTwoAbcdefgh012345",
    "OldKeyOfContactSixAbcdefgh012345",
];
const CASES: [Case; 3] = [Case::Upper, Case::Lower, Case::Mixed];
/// (status, plain text): a JSON 400 and 500, and an authx-like 401 text/plain.
const FORMS: [(u16, bool); 3] = [(400, false), (500, false), (401, true)];

fn contacts() -> Vec<SeedContact> {
    let person = |id: i64, name: &str, key: Option<&str>| SeedContact {
        id: Some(id),
        contact_type: "Individual".into(),
        display_name: name.into(),
        sort_name: name.into(),
        email: Some(format!("{}@example.org", name.to_lowercase())),
        api_key: key.map(|k| ApiKey::from_store(k.into())),
        uf_id: Some(10 + id),
        roles: vec!["api client".into()],
        ..Default::default()
    };
    vec![
        person(1, "One", Some(OLD[0])),
        person(2, "Two", Some(OLD[1])),
        person(3, "Three", None),
        person(6, "Six", Some(OLD[2])),
    ]
}

struct Site {
    dir: tempfile::TempDir,
    server: FakeCivi,
    config: PathBuf,
}

impl Site {
    fn new() -> Site {
        let server = FakeCivi::start(contacts());
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            fs::write(&path, text).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            path
        };
        file("admin.key", &format!("{ADMIN_KEY}\n"));
        file("site.key", &format!("{SITE_KEY}\n"));
        let config = file(
            "config.toml",
            &format!(
                "default_profile = \"site\"\n[profiles.site]\nkind = \"civicrm-rest\"\naddress = \"{}\"\napi_key_file = \"admin.key\"\nsite_key_file = \"site.key\"\n",
                server.url()
            ),
        );
        Site {
            dir,
            server,
            config,
        }
    }

    fn echo(&self, case: Case, (status, plain): (u16, bool), on: EchoOn) {
        self.server.set_mode(Mode::Echo {
            case,
            status,
            plain,
            on,
        });
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = binary::civikey(self.dir.path());
        cmd.args(args)
            .env("CIVIKEY_CONFIG", &self.config)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// Every secret the site ever saw or held: the admin and site keys, every key a
    /// contact holds or held, and every key-like run (20+ letters and digits) in any
    /// request's credential, target or body (old, new and looked-up keys).
    fn secrets(&self) -> Vec<String> {
        let mut all: Vec<String> = [ADMIN_KEY, SITE_KEY]
            .iter()
            .chain(OLD.iter())
            .map(|s| s.to_string())
            .collect();
        let state = self.server.state();
        all.extend(state.contacts.iter().filter_map(|c| c.api_key.clone()));
        for r in &state.requests {
            let text = format!(
                "{} {} {}",
                r.credential.as_deref().unwrap_or(""),
                fake_civicrm::url_decode(&r.target),
                fake_civicrm::url_decode(&r.body)
            );
            all.extend(key_like_runs(&text));
        }
        all.sort();
        all.dedup();
        all
    }

    /// The journal as `audit --json` shows it, and the raw bytes of every file of the data
    /// folder (audit.sqlite, its secret, the store-less leases).
    fn journal(&self) -> Vec<(String, String)> {
        let out = self.run(&["audit", "--json", "--limit", "1000"], None);
        assert!(
            out.status.success(),
            "audit: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut texts = vec![(
            "audit --json".to_string(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )];
        let mut files = Vec::new();
        every_file(&self.dir.path().join("data"), &mut files);
        for file in files {
            let bytes = fs::read(&file).unwrap_or_default();
            texts.push((
                file.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
        texts
    }
}

fn every_file(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            every_file(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn key_like_runs(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|run| run.len() >= 20)
        .map(str::to_string)
        .collect()
}

/// Fails naming every secret found in `text`, whatever its case.
fn assert_no_secret(what: &str, text: &str, secrets: &[String]) {
    let lower = text.to_ascii_lowercase();
    let found: Vec<&String> = secrets
        .iter()
        .filter(|s| lower.contains(&s.to_ascii_lowercase()))
        .collect();
    assert!(
        found.is_empty(),
        "{what} holds {found:?} (in some case):\n{text}"
    );
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The site actually echoed something with a secret in it: the test is not vacuous.
fn assert_echoed(site: &Site, what: &str) {
    let state = site.server.state();
    assert!(
        !state.requests.is_empty(),
        "{what}: civikey never reached the site"
    );
}

#[test]
fn list_hides_the_admin_and_site_keys_a_site_echoes_in_any_case() {
    let site = Site::new();
    for case in CASES {
        for form in FORMS {
            let what = format!("list, {case:?} {form:?}");
            site.echo(case, form, EchoOn::Every);
            let out = site.run(&["list"], None);
            assert!(!out.status.success(), "{what}: {}", text(&out.stderr));
            assert_echoed(&site, &what);
            let secrets = site.secrets();
            assert_no_secret(&format!("{what}: stderr"), &text(&out.stderr), &secrets);
            assert_no_secret(&format!("{what}: stdout"), &text(&out.stdout), &secrets);
            // The other commands that only read, and the config check, say the same.
            for args in [
                &["show", "1"][..],
                &["show", "1", "--json"],
                &["check"],
                &["check", "--json"],
                &["config", "check", "--connect"],
            ] {
                let other = site.run(args, None);
                let secrets = site.secrets();
                for (stream, bytes) in [("stderr", &other.stderr), ("stdout", &other.stdout)] {
                    assert_no_secret(
                        &format!("{what} {args:?}: {stream}"),
                        &text(bytes),
                        &secrets,
                    );
                }
            }
            // What the site said still shows (civikey hides the secrets, not the error).
            assert!(
                text(&out.stderr).contains(&form.0.to_string()),
                "{what}: {}",
                text(&out.stderr)
            );
        }
    }
}

#[test]
fn a_failed_rotation_shows_and_journals_no_secret_of_the_echo() {
    let site = Site::new();
    for case in CASES {
        for form in FORMS {
            let what = format!("rotate, {case:?} {form:?}");
            site.echo(case, form, EchoOn::Action("update"));
            for args in [
                &["rotate", "1", "--yes"][..],
                &["rotate", "2", "--yes", "--json"],
            ] {
                let out = site.run(args, None);
                assert!(
                    !out.status.success(),
                    "{what} {args:?}: the write was refused"
                );
                let secrets = site.secrets();
                assert_no_secret(
                    &format!("{what} {args:?}: stderr"),
                    &text(&out.stderr),
                    &secrets,
                );
                assert_no_secret(
                    &format!("{what} {args:?}: stdout"),
                    &text(&out.stdout),
                    &secrets,
                );
            }
        }
    }
    site.server.set_mode(Mode::Normal);
    let secrets = site.secrets();
    let journal = site.journal();
    assert!(
        journal[0].1.contains("\"failed\"") || journal[0].1.contains("\"unknown\""),
        "the failed writes are journaled: {}",
        journal[0].1
    );
    for (what, text) in journal {
        assert_no_secret(&what, &text, &secrets);
    }
}

#[test]
fn a_bulk_batch_shows_and_journals_no_secret_of_the_echo() {
    let site = Site::new();
    let ids = site.dir.path().join("ids.txt");
    fs::write(&ids, "1\n2\n3\n6\n").unwrap();
    for (n, case) in CASES.into_iter().enumerate() {
        let form = FORMS[n];
        let what = format!("bulk, {case:?} {form:?}");
        site.echo(case, form, EchoOn::MultiCall);
        let out_file = site.dir.path().join(format!("keys-{n}.csv"));
        let out = site.run(
            &[
                "rotate",
                "--ids-from",
                ids.to_str().unwrap(),
                "--out",
                out_file.to_str().unwrap(),
                "--yes",
            ],
            None,
        );
        let secrets = site.secrets();
        assert!(
            site.server
                .state()
                .requests
                .iter()
                .any(|r| r.body.contains("calls=")),
            "{what}: no batch was sent: {}",
            text(&out.stderr)
        );
        assert_no_secret(&format!("{what}: stderr"), &text(&out.stderr), &secrets);
        assert_no_secret(&format!("{what}: stdout"), &text(&out.stdout), &secrets);
        // The out file holds only keys that were delivered: none of the site's secrets.
        let file = fs::read_to_string(&out_file).unwrap_or_default();
        let fixed: Vec<String> = [ADMIN_KEY, SITE_KEY]
            .iter()
            .chain(OLD.iter())
            .map(|s| s.to_string())
            .collect();
        assert_no_secret(&format!("{what}: the out file"), &file, &fixed);
    }
    site.server.set_mode(Mode::Normal);
    let secrets = site.secrets();
    for (what, text) in site.journal() {
        assert_no_secret(&what, &text, &secrets);
    }
}

#[test]
fn whose_never_prints_the_key_it_looks_up_when_the_site_echoes_it() {
    let site = Site::new();
    for case in CASES {
        for form in FORMS {
            let what = format!("whose, {case:?} {form:?}");
            site.echo(case, form, EchoOn::Every);
            // A key contact 2 holds, typed in another case, and a key nobody holds.
            for key in [
                OLD[1].to_ascii_lowercase(),
                "NobodyHoldsThisKeyXyz0123456789a".to_string(),
            ] {
                let out = site.run(&["whose", "--key-stdin"], Some(&format!("{key}\n")));
                let mut secrets = site.secrets();
                secrets.push(key.clone());
                assert!(
                    site.server
                        .state()
                        .requests
                        .iter()
                        .any(|r| fake_civicrm::url_decode(&r.body)
                            .to_ascii_lowercase()
                            .contains(&key.to_ascii_lowercase())),
                    "{what}: the lookup never reached the site"
                );
                assert_no_secret(&format!("{what}: stderr"), &text(&out.stderr), &secrets);
                assert_no_secret(&format!("{what}: stdout"), &text(&out.stdout), &secrets);
            }
        }
    }
    site.server.set_mode(Mode::Normal);
    let mut secrets = site.secrets();
    secrets.push("NobodyHoldsThisKeyXyz0123456789a".into());
    for (what, text) in site.journal() {
        assert_no_secret(&what, &text, &secrets);
    }
}

#[test]
fn the_login_check_never_shows_the_new_key_a_site_echoes() {
    let site = Site::new();
    for case in CASES {
        for form in [(401, true), (400, false), (500, false)] {
            let what = format!("login check, {case:?} {form:?}");
            // Only the login with the new key is answered with the echo: the rotation
            // itself goes through.
            site.echo(case, form, EchoOn::NotAdmin);
            let out = site.run(&["rotate", "1", "--yes"], None);
            assert!(out.status.success(), "{what}: {}", text(&out.stderr));
            let stdout = text(&out.stdout);
            let key = stdout.trim().to_string();
            assert_eq!(
                site.server.key_of(1).as_deref(),
                Some(key.as_str()),
                "{what}"
            );
            assert!(
                site.server
                    .state()
                    .requests
                    .iter()
                    .any(|r| r.credential.as_deref() == Some(key.as_str())),
                "{what}: no login check was made"
            );
            let mut secrets = site.secrets();
            let stderr = text(&out.stderr);
            assert!(stderr.contains("login check"), "{what}: {stderr}");
            assert_no_secret(&format!("{what}: stderr"), &stderr, &secrets);
            // stdout holds the key line, and nothing else.
            assert_eq!(stdout.lines().count(), 1, "{what}: {stdout}");

            let out = site.run(&["rotate", "1", "--yes", "--json"], None);
            assert!(out.status.success(), "{what}: {}", text(&out.stderr));
            let mut doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let key = doc["key"].as_str().unwrap().to_string();
            assert_eq!(doc["login_check"]["ok"], false, "{what}: {doc}");
            doc.as_object_mut().unwrap().remove("key");
            secrets = site.secrets();
            assert!(secrets.contains(&key), "{what}");
            assert_no_secret(&format!("{what}: --json"), &doc.to_string(), &secrets);
            assert_no_secret(&format!("{what}: stderr"), &text(&out.stderr), &secrets);
        }
    }
}
