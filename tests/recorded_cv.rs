//! The recorded `cv` runs of a real CiviCRM 6.14 site (tests/recorded/cv/) that the cv
//! store's failure handling depends on, replayed against the fake cv (tests/fake-cv/cv):
//! the same exit code, stdout (empty, or the same JSON), and on stderr the same message in
//! the Symfony console box (unwrapped, the site path substituted) with or without the
//! usage line, as recorded.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Recorded run, the entity.action it called, and the site folder it ran in.
const REPLAYED: &[(&str, &str, &str)] = &[
    (
        "13-invalid-where-field.txt",
        "Contact.get",
        "/var/www/civicrm",
    ),
    (
        "14-invalid-select-field.txt",
        "Contact.get",
        "/var/www/civicrm",
    ),
    ("15-wrong-cwd.txt", "Contact.get", "/var/www/no-such-site"),
    (
        "17-malformed-json-stdin.txt",
        "Contact.get",
        "/var/www/civicrm",
    ),
    (
        "18-unknown-entity.txt",
        "Nonexistent.get",
        "/var/www/civicrm",
    ),
];

fn section(text: &str, name: &str) -> String {
    let start = text
        .find(&format!("--- {name} ---\n"))
        .unwrap_or_else(|| panic!("no {name} section"))
        + name.len()
        + 9;
    let rest = &text[start..];
    let end = rest.find("\n--- ").unwrap_or(rest.len());
    rest[..end].to_string()
}

/// The boxed message, unwrapped as the cv store reads it, and whether the usage follows.
fn boxed(stderr: &str) -> (String, bool) {
    let mut message = String::new();
    let mut usage = false;
    let mut inside = false;
    for line in stderr.lines() {
        if line.starts_with("In ") && line.ends_with(':') {
            inside = true;
            continue;
        }
        if line.starts_with("api4 [") {
            usage = true;
            break;
        }
        if inside {
            message.push_str(line.strip_prefix("  ").unwrap_or(line).trim_end());
        }
    }
    (message.trim().to_string(), usage)
}

fn fake_cv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake-cv/cv")
}

#[test]
fn the_fake_cv_fails_as_the_recorded_cv_did() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("civicrm");
    fs::create_dir(&site).unwrap();
    let data = dir.path().join("data.json");
    fs::write(
        &data,
        r#"{"contacts": [{"id": 203, "contact_type": "Individual", "display_name": "Standalone Admin",
            "sort_name": "Admin, Standalone", "is_deleted": false, "api_key": null, "emails": [],
            "uf_matches": []}], "seen_keys": []}"#,
    )
    .unwrap();
    let recorded_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/recorded/cv");
    let mut failures = Vec::new();
    for (file, call, recorded_site) in REPLAYED {
        let text = fs::read_to_string(recorded_dir.join(file)).unwrap();
        let stdin = section(&text, "stdin");
        let want_out = section(&text, "stdout");
        let want_err = section(&text, "stderr");
        let want_code: i32 = section(&text, "exit code").trim().parse().unwrap();
        let here = if recorded_site.ends_with("civicrm") {
            site.clone()
        } else {
            dir.path().join("no-such-site")
        };
        let mut child = Command::new(fake_cv())
            .args(["api4", call, "--in=json", "--out=json", "--cwd"])
            .arg(&here)
            .env("FAKE_CV_DATA", &data)
            .env("FAKE_CV_SITE", &site)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{stdin}\n").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let got_out = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let got_err = String::from_utf8_lossy(&out.stderr).to_string();
        let mut diff = Vec::new();
        if out.status.code() != Some(want_code) {
            diff.push(format!(
                "exit {:?} instead of {want_code}",
                out.status.code()
            ));
        }
        match want_out.trim() {
            "(empty)" if !got_out.is_empty() => diff.push(format!("stdout {got_out:?}")),
            "(empty)" => {}
            want => {
                let w: serde_json::Value = serde_json::from_str(want).unwrap();
                let g: serde_json::Value = serde_json::from_str(&got_out).unwrap_or_default();
                if w != g {
                    diff.push(format!("stdout {g} instead of {w}"));
                }
            }
        }
        if want_err.trim() != "(empty)" {
            let (want_message, want_usage) = boxed(&want_err);
            let want_message = want_message.replace(recorded_site, here.to_str().unwrap());
            let (got_message, got_usage) = boxed(&got_err);
            if got_message != want_message || got_usage != want_usage {
                diff.push(format!(
                    "stderr {got_message:?} (usage {got_usage}) instead of {want_message:?} (usage {want_usage})"
                ));
            }
        }
        if !diff.is_empty() {
            failures.push(format!("{file}: {}", diff.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
