//! Issue 21, finding 4: the programs civikey starts (`cv` per call and `cv pipe`, `tmux`
//! for the clipboard warning) get a minimal environment, never a profile's secret
//! variables or anything else the operator exported. Through the binary, with a `cv` and
//! a `tmux` that write down the environment they were given.

mod binary;
#[allow(dead_code)]
mod pty_support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Secrets the operator exported for the profiles of the config, and one exported for
/// something else entirely. None of them, nor their names, may reach a child.
const SECRETS: &[(&str, &str)] = &[
    ("CK_SITE_KEY", "SiteKeyOfTheCvProfile0123456789"),
    ("CK_ADMIN_KEY", "AdminKeyOfTheRestProfile01234567"),
    ("CK_DB_PASSWORD", "DbPasswordOfTheMysqlProfile0123"),
    ("OPERATOR_EXPORTED", "SomethingElseTheOperatorExported"),
    ("MYSQL_PWD", "MysqlClientPasswordFromTheShell"),
];

/// The variables a child may be given (see src/child_env.rs), checked independently.
const ALLOWED: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "USER",
    "LOGNAME",
    "CIVICRM_BOOT",
    "CIVICRM_SETTINGS",
    "CIVICRM_UF",
    "PHPRC",
    "PHP_INI_SCAN_DIR",
    "TMUX",
    "TMUX_TMPDIR",
    "TERM",
];

/// What /bin/sh, the logging script itself, sets before it writes the environment down.
const SET_BY_THE_SHELL: &[&str] = &["PWD", "OLDPWD", "SHLVL", "_"];

fn script(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o700)).unwrap();
}

/// A config with a cv profile whose site key comes from the environment, and a REST and
/// a MySQL profile whose secrets do too (only the cv one is used).
fn config(home: &Path, site: &Path, cv: &Path) -> PathBuf {
    let text = format!(
        "[profiles.crm-cv]\nkind = \"cv\"\naddress = \"cv:{}\"\ncv_binary = \"{}\"\n\
         site_url = \"http://127.0.0.1:9\"\nsite_key_env = \"CK_SITE_KEY\"\n\n\
         [profiles.crm-api]\nkind = \"civicrm-rest\"\naddress = \"https://crm.example.org\"\n\
         api_key_env = \"CK_ADMIN_KEY\"\n\n\
         [profiles.crm-db]\nkind = \"mysql\"\naddress = \"mysql://civikey@127.0.0.1:9/civicrm\"\n\
         password_env = \"CK_DB_PASSWORD\"\n",
        site.display(),
        cv.display()
    );
    let path = home.join("config.toml");
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// The environments the logging program wrote, one block per run, each with its argv.
fn runs(log: &Path) -> Vec<(String, Vec<(String, String)>)> {
    let text = fs::read_to_string(log).unwrap_or_default();
    text.split("\n--END--\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut lines = block.split('\0');
            let argv = lines.next().unwrap_or("").trim().to_string();
            let vars = lines
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap_or((l, ""));
                    (k.trim_start_matches('\n').to_string(), v.to_string())
                })
                .collect();
            (argv, vars)
        })
        .collect()
}

/// Every logged environment holds allowlisted names only, PATH among them, and no secret.
fn assert_minimal(runs: &[(String, Vec<(String, String)>)], raw: &str, what: &str) {
    assert!(!runs.is_empty(), "{what}: the program never ran");
    for (argv, vars) in runs {
        for (name, _) in vars {
            assert!(
                ALLOWED.contains(&name.as_str())
                    || name.starts_with("LC_")
                    || SET_BY_THE_SHELL.contains(&name.as_str()),
                "{what}: {name} reached `{argv}`: {vars:?}"
            );
        }
        assert!(
            vars.iter().any(|(k, _)| k == "PATH"),
            "{what}: `{argv}` got no PATH: {vars:?}"
        );
    }
    for (name, value) in SECRETS {
        assert!(
            !raw.contains(value),
            "{what}: the value of {name} reached a child"
        );
        assert!(!raw.contains(name), "{what}: {name} reached a child");
    }
}

fn cv_fixture(home: &Path, pipe: bool) -> (PathBuf, PathBuf) {
    let site = home.join("site");
    fs::create_dir(&site).unwrap();
    let data = home.join("cv-data.json");
    let contact = serde_json::json!({
        "id": 31, "contact_type": "Individual", "display_name": "Cv Person",
        "sort_name": "Person, Cv", "is_deleted": false,
        "api_key": "OldKeyOfCvPerson0123456789abcdef", "emails": [], "uf_matches": [],
    });
    fs::write(
        &data,
        serde_json::json!({"contacts": [contact], "seen_keys": []}).to_string(),
    )
    .unwrap();
    let log = home.join("env.log");
    let cv = home.join("cv");
    // The environment as given (NUL-separated, so values cannot fake a line), then the
    // fake cv's own settings.
    script(
        &cv,
        &format!(
            "#!/bin/sh\n{{ printf '%s\\0' \"$*\"; env -0; printf '\\n--END--\\n'; }} >> '{}'\n\
             export FAKE_CV_DATA='{}' FAKE_CV_SITE='{}'{}\nexec '{}/tests/fake-cv/cv' \"$@\"\n",
            log.display(),
            data.display(),
            site.display(),
            if pipe { " FAKE_CV_PIPE=on" } else { "" },
            env!("CARGO_MANIFEST_DIR")
        ),
    );
    (site, cv)
}

#[test]
fn cv_gets_only_the_allowlisted_environment_per_call_and_through_its_pipe() {
    for pipe in [false, true] {
        let what = if pipe { "cv pipe" } else { "cv per call" };
        let home = tempfile::tempdir().unwrap();
        let (site, cv) = cv_fixture(home.path(), pipe);
        let config = config(home.path(), &site, &cv);
        for args in [
            &["list"][..],
            &["show", "31"][..],
            &["rotate", "31", "--yes"][..],
        ] {
            let mut cmd = binary::civikey(home.path());
            cmd.env("CIVIKEY_CONFIG", &config)
                .env("LC_ALL", "C.UTF-8")
                .args(["--profile", "crm-cv"])
                .args(args);
            for (name, value) in SECRETS {
                cmd.env(name, value);
            }
            let out = cmd.output().unwrap();
            assert!(
                out.status.success(),
                "{what} {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let log = home.path().join("env.log");
        let raw = fs::read_to_string(&log).unwrap_or_default();
        let runs = runs(&log);
        assert_minimal(&runs, &raw, what);
        let pipes = runs.iter().filter(|(a, _)| a.starts_with("pipe")).count();
        let calls = runs.iter().filter(|(a, _)| a.starts_with("api4")).count();
        if pipe {
            assert!(pipes >= 1, "{what}: no pipe session started: {runs:?}");
        } else {
            assert!(calls >= 3, "{what}: {runs:?}");
        }
        // What the operator set for the language reaches cv.
        assert!(
            runs.iter()
                .all(|(_, vars)| vars.contains(&("LC_ALL".into(), "C.UTF-8".into()))),
            "{what}: LC_ALL was not passed on"
        );
    }
}

#[test]
fn tmux_gets_only_the_allowlisted_environment() {
    let _serial = pty_support::serial();
    let bin = tempfile::tempdir().unwrap();
    let log = bin.path().join("env.log");
    script(
        &bin.path().join("tmux"),
        &format!(
            "#!/bin/sh\n{{ printf '%s\\0' \"$*\"; env -0; printf '\\n--END--\\n'; }} >> '{}'\necho on\n",
            log.display()
        ),
    );
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut env = vec![
        ("PATH", path.as_str()),
        ("TMUX", "/tmp/tmux-0/default,1234,0"),
    ];
    env.extend_from_slice(SECRETS);
    let mut tui = pty_support::Tui::start_with(80, 24, &env);
    tui.wait_list();
    let start = Instant::now();
    while !log.exists() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    tui.send("q");
    tui.wait_exit(pty_support::secs(5));
    let raw = fs::read_to_string(&log).unwrap_or_default();
    let runs = runs(&log);
    assert_minimal(&runs, &raw, "tmux");
    assert!(runs[0].0.starts_with("show-options"), "{runs:?}");
    assert!(
        runs[0]
            .1
            .contains(&("TMUX".into(), "/tmp/tmux-0/default,1234,0".into())),
        "tmux needs TMUX to find its server: {runs:?}"
    );
}

/// Every `Command::new` in civikey's own code is handed to `child_env::minimal` at once
/// (the same statement or the next line), so a new child cannot forget it.
#[test]
fn every_child_civikey_starts_goes_through_child_env() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut found = 0;
    let mut offences = Vec::new();
    for file in &files {
        let relative = file
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        // The benchmark binary starts civikey itself to measure it; it is not shipped.
        if relative.starts_with("src/bin/") || relative == "src/child_env.rs" {
            continue;
        }
        let text = fs::read_to_string(file).unwrap();
        // Unit tests at the end of a file (after `#[cfg(test)]`) start what they like.
        let code = text.split("#[cfg(test)]").next().unwrap();
        let lines: Vec<&str> = code.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim_start().starts_with("//") || !line.contains("Command::new(") {
                continue;
            }
            found += 1;
            // cv's one `spawn` (a call and the pipe) applies it to the command it is given.
            let near = lines[i..(i + 12).min(lines.len())].join("\n");
            if !near.contains("child_env::minimal(") && !near.contains("spawn(command)") {
                offences.push(format!("{relative}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    assert!(found >= 3, "the scan found too few children: {found}");
    // The one `spawn` cv's calls and its pipe go through applies the allowlist first.
    let process = fs::read_to_string(root.join("src/store/cv/process.rs")).unwrap();
    let spawn = process
        .split("fn spawn(mut command: Command)")
        .nth(1)
        .expect("cv's one spawn");
    assert!(
        spawn[..spawn.find("\n}").unwrap()].contains("child_env::minimal(&mut command"),
        "cv's spawn must apply child_env::minimal"
    );
    assert!(
        offences.is_empty(),
        "children started without child_env::minimal:\n{}",
        offences.join("\n")
    );
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}
