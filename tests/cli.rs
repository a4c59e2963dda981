//! The binary as a script sees it: stdout, stderr, exit codes, files.

mod binary;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn store(&self) -> PathBuf {
        self.data_dir().join("contacts.sqlite")
    }

    fn run(&self, args: &[&str]) -> Output {
        binary::civikey(self.dir.path())
            .args(args)
            .output()
            .unwrap()
    }

    /// Creates the sample store and returns its address.
    fn sample_store(&self) -> String {
        let out = self.run(&["list", "--limit", "1"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!("sqlite:{}", self.store().display())
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stored_key(path: &Path, id: i64) -> Option<String> {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT api_key FROM civicrm_contact WHERE id = ?",
            [id],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn generate_prints_one_key() {
    let env = Env::new();
    let out = env.run(&["generate"]);
    assert!(out.status.success());
    let text = stdout(&out);
    let key = text.strip_suffix('\n').unwrap();
    assert_eq!(key.len(), 32);
    assert!(key.chars().all(|c| c.is_ascii_alphanumeric()));
    assert!(out.stderr.is_empty());
    let out = env.run(&["generate", "--length", "20"]);
    assert_eq!(stdout(&out).trim().len(), 20);
    let out = env.run(&["generate", "--length", "40"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn default_store_is_created_private_from_the_sample() {
    let env = Env::new();
    let out = env.run(&["list", "--limit", "100"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("sample contacts"),
        "progress goes to stderr"
    );
    assert!(stdout(&out).lines().count() >= 40);
    assert_eq!(
        fs::metadata(env.store()).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        fs::metadata(env.data_dir()).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

#[test]
fn list_is_masked_and_inert() {
    let env = Env::new();
    let store = env.sample_store();
    let out = env.run(&["list", "--limit", "200", "--store", &store]);
    let text = stdout(&out);
    assert!(
        !text.contains('\x1b'),
        "raw escape from data reached stdout"
    );
    assert!(!text.bytes().any(|b| b == 0x07));
    assert!(text.contains("Mallory ␛[2J"));
    assert!(text.contains("••••"));
    // No stored key appears in the listing.
    let conn = rusqlite::Connection::open(env.store()).unwrap();
    let mut stmt = conn
        .prepare("SELECT api_key FROM civicrm_contact WHERE api_key IS NOT NULL")
        .unwrap();
    let keys: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!keys.is_empty());
    for key in keys {
        assert!(!text.contains(&key));
    }
}

#[test]
fn list_json_and_search() {
    let env = Env::new();
    let store = env.sample_store();
    let out = env.run(&["--store", &store, "list", "--search", "smith", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let items: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let names: Vec<&str> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["display_name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Sam Smith"), "{names:?}");
    assert!(names.iter().all(|n| n.to_lowercase().contains("smith")));
}

#[test]
fn json_holds_the_stores_real_text_escaped_one_cms_type_and_rfc3339_times() {
    let env = Env::new();
    let store = env.sample_store();
    let raw_name = |id: i64| -> String {
        rusqlite::Connection::open(env.store())
            .unwrap()
            .query_row(
                "SELECT display_name FROM civicrm_contact WHERE id = ?",
                [id],
                |r| r.get(0),
            )
            .unwrap()
    };
    let out = env.run(&["list", "--limit", "200", "--json", "--store", &store]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Inert bytes: no ESC, no C1, no bidi or invisible character, raw or UTF-8.
    let text = stdout(&out);
    for c in text.chars() {
        let bidi_or_zero_width = matches!(
            c,
            '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        );
        assert!(
            (c == '\n' || !c.is_control()) && !bidi_or_zero_width,
            "U+{:04X} in the JSON",
            c as u32
        );
    }
    let items: serde_json::Value = serde_json::from_str(&text).unwrap();
    let items = items.as_array().unwrap();
    // 142 (ESC sequences) and 143 (bidi, CSI): the store's own text once parsed.
    for id in [142, 143] {
        let item = items.iter().find(|c| c["id"] == id).unwrap();
        assert_eq!(item["display_name"], raw_name(id), "contact {id}");
        assert!(raw_name(id)
            .chars()
            .any(|c| c.is_control() || c > '\u{2000}'));
    }
    for item in items {
        assert!(
            item["cms_user"].is_boolean() || item["cms_user"].is_null(),
            "{item}"
        );
    }
    let linked = items.iter().find(|c| c["id"] == 121).unwrap();
    assert_eq!(
        (&linked["cms_user"], &linked["cms_user_id"]),
        (&true.into(), &1210.into())
    );
    // Times: the number and RFC 3339.
    let out = env.run(&["rotate", "102", "--yes", "--store", &store]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.run(&["audit", "--json"]);
    let records: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let record = &records[0];
    let unix = record["time"].as_i64().unwrap();
    let expected = time::OffsetDateTime::from_unix_timestamp(unix)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert_eq!(record["time_rfc3339"], expected);
    assert!(expected.ends_with('Z'), "{expected}");
    let out = env.run(&["show", "102", "--json", "--store", &store]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(shown["key"]["set_at_rfc3339"].is_string(), "{shown}");
}

#[test]
fn list_deep_finds_a_word_inside_a_name_as_the_screen_does() {
    let env = Env::new();
    let store = env.sample_store();
    let ids = |args: &[&str]| -> Vec<u64> {
        let out = env.run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let items: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        items
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_u64().unwrap())
            .collect()
    };
    // "Étoile" is the second word of "Café Étoile" (id 135): no name starts with it.
    let base = ["--store", &store, "list", "--search", "etoile", "--json"];
    assert_eq!(ids(&base), Vec::<u64>::new());
    let mut deep = base.to_vec();
    deep.push("--deep");
    assert_eq!(ids(&deep), vec![135]);
    // --deep needs a search.
    let out = env.run(&["--store", &store, "list", "--deep"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--search"), "{}", stderr(&out));
}

#[test]
fn rotate_prints_only_the_key_the_store_then_holds() {
    let env = Env::new();
    let store = env.sample_store();
    let out = env.run(&["rotate", "101", "--yes", "--store", &store]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let key = text.strip_suffix('\n').unwrap();
    assert_eq!(key.len(), 32);
    assert!(key.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(stored_key(&env.store(), 101).as_deref(), Some(key));
    assert!(!stderr(&out).contains(key), "the key must not reach stderr");
    // Unique: no other contact holds it.
    let n: i64 = rusqlite::Connection::open(env.store())
        .unwrap()
        .query_row(
            "SELECT count(*) FROM civicrm_contact WHERE api_key = ? COLLATE NOCASE",
            [key],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn rotate_json_shape() {
    let env = Env::new();
    let store = env.sample_store();
    let out = env.run(&["rotate", "102", "--yes", "--json", "--store", &store]);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["contact_id"], 102);
    assert_eq!(
        stored_key(&env.store(), 102).as_deref(),
        doc["key"].as_str()
    );
    // The hand-over: no site is known for a SQLite store; whether the app must send the
    // site key agrees with the warnings `show` gives.
    assert_eq!(
        doc["handover"]["api_endpoint"],
        serde_json::Value::Null,
        "{doc}"
    );
    assert!(
        stderr(&out).contains("App endpoint (API v4): not known"),
        "{}",
        stderr(&out)
    );
    for id in ["102", "103", "104", "105"] {
        let out = env.run(&["rotate", id, "--yes", "--json", "--store", &store]);
        let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        let shown = env.run(&["show", id, "--json", "--store", &store]);
        let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
        let codes: Vec<&str> = shown["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|w| w["code"].as_str())
            .collect();
        let expected =
            if codes.contains(&"no_user_account") || codes.contains(&"no_api_login_permission") {
                serde_json::json!(true)
            } else if codes.contains(&"roles_unknown") {
                serde_json::Value::Null
            } else {
                serde_json::json!(false)
            };
        assert_eq!(
            doc["handover"]["needs_site_key"], expected,
            "{id}: {codes:?}"
        );
    }
}

#[test]
fn rotate_without_a_terminal_needs_yes() {
    let env = Env::new();
    let store = env.sample_store();
    let before = stored_key(&env.store(), 101);
    let out = env.run(&["rotate", "101", "--store", &store]);
    assert_eq!(out.status.code(), Some(5));
    assert!(stderr(&out).contains("--yes"));
    assert!(out.stdout.is_empty());
    assert_eq!(stored_key(&env.store(), 101), before);
}

#[test]
fn exit_codes_for_not_found_and_bad_store() {
    let env = Env::new();
    let store = env.sample_store();
    let out = env.run(&["rotate", "999999", "--yes", "--store", &store]);
    assert_eq!(out.status.code(), Some(4));
    assert!(stderr(&out).contains("999999"));

    let bad = env.dir.path().join("notes.txt");
    fs::write(&bad, "not a database\n").unwrap();
    fs::set_permissions(&bad, fs::Permissions::from_mode(0o600)).unwrap();
    let out = env.run(&["list", "--store", &format!("sqlite:{}", bad.display())]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a SQLite database"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read_to_string(&bad).unwrap(), "not a database\n");

    let out = env.run(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_file_that_is_no_store_is_named_so_before_any_permission_advice() {
    let env = Env::new();
    env.sample_store();
    // A text file readable by all (as /etc/passwd), another program's SQLite database, and
    // a real store: only the store gets the chmod advice.
    let text = env.dir.path().join("passwd");
    fs::write(&text, "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    let foreign = env.dir.path().join("other.sqlite");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        .unwrap();
    let exposed = env.dir.path().join("exposed.sqlite");
    fs::copy(env.store(), &exposed).unwrap();
    for (file, says) in [
        (&text, "not a civikey or CiviCRM store"),
        (&foreign, "not a civikey or CiviCRM store"),
        (&exposed, "chmod 600"),
    ] {
        fs::set_permissions(file, fs::Permissions::from_mode(0o644)).unwrap();
        let out = env.run(&["list", "--store", &format!("sqlite:{}", file.display())]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains(says), "{file:?}: {}", stderr(&out));
        if says != "chmod 600" {
            assert!(!stderr(&out).contains("chmod"), "{}", stderr(&out));
        }
    }
}

#[test]
fn revoke_removes_the_key() {
    let env = Env::new();
    let store = env.sample_store();
    assert!(stored_key(&env.store(), 101).is_some());
    let out = env.run(&["revoke", "101", "--yes", "--store", &store]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stored_key(&env.store(), 101), None);
}

#[test]
fn read_only_flag_refuses_rotation() {
    let env = Env::new();
    let store = env.sample_store();
    let before = stored_key(&env.store(), 101);
    let out = env.run(&["rotate", "101", "--yes", "--read-only", "--store", &store]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert_eq!(stored_key(&env.store(), 101), before);
}

#[test]
fn tui_needs_a_terminal() {
    let env = Env::new();
    env.sample_store();
    let out = env.run(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("terminal"));
}

#[test]
fn profiles_lists_names_never_secrets() {
    let env = Env::new();
    let dir = env.dir.path();
    let key_file = dir.join("api.key");
    fs::write(&key_file, "AdminKeyAdminKeyAdminKey0123456\n").unwrap();
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.join("config/civikey/config.toml");
    fs::create_dir_all(config.parent().unwrap()).unwrap();
    fs::write(
        &config,
        format!(
            "default_profile = \"api\"\n[profiles.api]\nkind = \"civicrm-rest\"\naddress = \"https://crm.example.org\"\napi_key_file = \"{}\"\n",
            key_file.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&config, fs::Permissions::from_mode(0o600)).unwrap();
    let out = env.run(&["profiles"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("* api") && text.contains("civicrm-rest") && text.contains("api.key"),
        "{text}"
    );
    assert!(!text.contains("AdminKey"), "a secret was printed");
    let out = env.run(&["profiles", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc[0]["name"], "api");
    assert!(!stdout(&out).contains("AdminKey"));
    fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
    let out = env.run(&["profiles"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
}

/// Writes a 0600 config with the given profiles (SQLite ones) where civikey looks for it.
fn write_config(env: &Env, profiles: &[&str]) -> PathBuf {
    let config = env.dir.path().join("config/civikey/config.toml");
    fs::create_dir_all(config.parent().unwrap()).unwrap();
    let mut text = String::new();
    for name in profiles {
        text.push_str(&format!(
            "[profiles.{name}]\nkind = \"sqlite\"\naddress = \"sqlite:{}\"\n",
            env.store().display()
        ));
    }
    fs::write(&config, text).unwrap();
    fs::set_permissions(&config, fs::Permissions::from_mode(0o600)).unwrap();
    config
}

/// What bash's completion offers for `words` (the last one is the word being completed),
/// through the script `civikey completions bash` prints, with civikey found in PATH as
/// the installed script expects.
fn bash_completion(env: &Env, words: &[&str]) -> Vec<String> {
    let script = stdout(&env.run(&["completions", "bash"]));
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_civikey")).parent().unwrap();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "{script}\nCOMP_WORDS=({words})\nCOMP_CWORD={cword}\nCOMP_TYPE=9\n_clap_complete_civikey civikey '{current}' '{previous}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        words = quoted.join(" "),
        cword = words.len() - 1,
        current = words[words.len() - 1],
        previous = words[words.len() - 2],
    );
    // The environment binary::civikey gives civikey, for bash and the civikey it runs.
    let base = binary::civikey(env.dir.path());
    let mut bash = std::process::Command::new("bash");
    for (key, value) in base.get_envs() {
        match value {
            Some(value) => bash.env(key, value),
            None => bash.env_remove(key),
        };
    }
    let out = bash
        .arg("-c")
        .arg(&program)
        .env(
            "PATH",
            format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()),
        )
        .env_remove("CIVIKEY_COMPLETE")
        .output()
        .unwrap();
    assert!(out.status.success(), "bash: {}", stderr(&out));
    stdout(&out)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completion_offers_profile_names_commands_and_their_own_flags() {
    let env = Env::new();
    write_config(&env, &["alpha", "beta-db"]);
    let profiles = bash_completion(&env, &["civikey", "--profile", ""]);
    assert_eq!(profiles, ["alpha", "beta-db"], "{profiles:?}");
    let profiles = bash_completion(&env, &["civikey", "list", "--profile", "b"]);
    assert_eq!(profiles, ["beta-db"]);
    let commands = bash_completion(&env, &["civikey", ""]);
    for command in ["list", "rotate", "audit", "config", "profiles"] {
        assert!(
            commands.iter().any(|c| c == command),
            "{command}: {commands:?}"
        );
    }
    let flags = bash_completion(&env, &["civikey", "list", "--"]);
    for flag in ["--no-header", "--limit", "--json", "--store", "--profile"] {
        assert!(flags.iter().any(|f| f == flag), "{flag}: {flags:?}");
    }
    assert!(
        !flags.iter().any(|f| f == "--ids-from"),
        "rotate's flag offered for list: {flags:?}"
    );
    let kinds = bash_completion(&env, &["civikey", "config", "init", "--kind", ""]);
    assert_eq!(kinds, ["sqlite", "mysql", "civicrm-rest", "cv"]);
}

#[test]
fn completion_scripts_call_civikey_for_every_shell() {
    let env = Env::new();
    for (shell, marker) in [
        (
            "bash",
            "complete -o nospace -o bashdefault -o nosort -F _clap_complete_civikey civikey",
        ),
        ("zsh", "#compdef civikey"),
        (
            "fish",
            "complete --keep-order --exclusive --command civikey",
        ),
    ] {
        let out = env.run(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let text = stdout(&out);
        assert!(text.contains(marker), "{shell}: {text}");
        assert!(
            text.contains("CIVIKEY_COMPLETE=") || text.contains("CIVIKEY_COMPLETE\""),
            "{shell}: {text}"
        );
    }
    // Autoloaded from $fpath as _civikey, the zsh file completes its first Tab too.
    let zsh = stdout(&env.run(&["completions", "zsh"]));
    assert!(
        zsh.contains("if [ \"$funcstack[1]\" = \"_civikey\" ]; then\n    _clap_dynamic_completer_civikey \"$@\""),
        "{zsh}"
    );
    // Asked the way fish asks: the candidates come from the config of the moment.
    write_config(&env, &["gamma"]);
    let out = binary::civikey(env.dir.path())
        .env("CIVIKEY_COMPLETE", "fish")
        .args(["--", "civikey", "--profile", ""])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "gamma");
}

#[test]
fn man_page_has_every_section_command_key_and_exit_code() {
    let env = Env::new();
    let out = env.run(&["man"]);
    assert!(out.status.success());
    let page = stdout(&out);
    assert!(page.contains(".TH civikey 1"), "{page}");
    for section in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "COMMANDS",
        "\"INTERACTIVE SCREEN\"",
        "FILES",
        "ENVIRONMENT",
        "\"EXIT STATUS\"",
        "SECURITY",
        "EXAMPLES",
    ] {
        assert!(
            page.lines().any(|l| l == format!(".SH {section}")),
            "no {section} section"
        );
    }
    // The synopsis gives the global options with their values.
    let synopsis = page
        .split(".SH SYNOPSIS")
        .nth(1)
        .and_then(|rest| rest.split(".SH ").next())
        .expect("a synopsis");
    for usage in [
        "\\-\\-store\\fR \\fIADDRESS",
        "\\-\\-profile\\fR \\fINAME",
        "\\-\\-read\\-only",
    ] {
        assert!(synopsis.contains(usage), "{usage} in {synopsis}");
    }
    let cmd = <civikey::cli::Cli as clap::CommandFactory>::command();
    for sub in cmd.get_subcommands() {
        let leaves: Vec<String> = if sub.has_subcommands() {
            sub.get_subcommands()
                .map(|s| format!("civikey {} {}", sub.get_name(), s.get_name()))
                .collect()
        } else {
            vec![format!("civikey {}", sub.get_name())]
        };
        for leaf in leaves {
            assert!(
                page.contains(&format!(".SS \"{leaf}\"")),
                "{leaf} not in the man page"
            );
        }
        for arg in sub.get_arguments() {
            if let Some(long) = arg.get_long() {
                assert!(
                    page.contains(&format!("\\-\\-{}", long.replace('-', "\\-"))),
                    "--{long} of {} not in the man page",
                    sub.get_name()
                );
            }
        }
    }
    for (keys, _) in civikey::cli::reference::TUI_KEYS {
        assert!(
            page.contains(&keys.replace('-', "\\-")),
            "key {keys} not in the man page"
        );
    }
    for var in [
        "CIVIKEY_CONFIG",
        "CIVIKEY_DATA_DIR",
        "NO_COLOR",
        "api_key_env",
    ] {
        assert!(page.contains(var), "{var}");
    }
    for code in 0..=6 {
        assert!(
            page.contains(&format!(".TP\n\\fB{code}\\fR")),
            "exit code {code}"
        );
    }
    // One page: no reference to civikey-rotate(1) and the like, which do not exist.
    assert!(
        !page.contains("civikey\\-"),
        "a reference to another civikey page"
    );
}

#[test]
fn man_renders_without_warnings() {
    let env = Env::new();
    let page = env.dir.path().join("civikey.1");
    fs::write(&page, env.run(&["man"]).stdout).unwrap();
    let man = std::process::Command::new("man")
        .args(["--warnings", "-l"])
        .arg(&page)
        .env("MANWIDTH", "80")
        .env("MANPAGER", "cat")
        .output();
    let man = match man {
        Ok(out) => out,
        Err(e) if std::env::var_os("CI").is_none() => {
            println!("SKIP man_renders_without_warnings: man not runnable: {e}");
            return;
        }
        Err(e) => panic!("man is needed under CI (apt-get install man-db): {e}"),
    };
    assert!(man.status.success(), "{}", stderr(&man));
    assert_eq!(stderr(&man), "", "roff warnings");
    let text = stdout(&man);
    assert!(text.contains("EXIT STATUS") && text.contains("civikey config init"));
}

#[test]
fn readme_keys_table_is_the_one_the_help_popup_shows() {
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = civikey::cli::reference::tui_keys_markdown();
    assert!(
        readme.contains(&table),
        "README's keys table differs from civikey::cli::reference::TUI_KEYS; it should read:\n{table}"
    );
}

#[test]
fn every_command_and_option_has_a_help_line() {
    fn walk(cmd: &clap::Command, path: &str) {
        for arg in cmd.get_arguments() {
            if matches!(
                arg.get_action(),
                clap::ArgAction::Help | clap::ArgAction::HelpShort | clap::ArgAction::Version
            ) {
                continue;
            }
            assert!(
                arg.get_help().is_some(),
                "{path} {} has no help line",
                arg.get_id()
            );
        }
        for sub in cmd.get_subcommands() {
            let path = format!("{path} {}", sub.get_name());
            assert!(sub.get_about().is_some(), "{path} has no help line");
            walk(sub, &path);
        }
    }
    walk(
        &<civikey::cli::Cli as clap::CommandFactory>::command(),
        "civikey",
    );
}

#[test]
fn help_ends_with_exit_codes_config_path_and_environment() {
    let env = Env::new();
    let out = env.run(&["--help"]);
    assert!(out.status.success());
    let text = stdout(&out);
    let tail = &text[text.find("Exit status:").expect("no exit codes")..];
    for part in [
        "0 success",
        "2 usage",
        "4 not found",
        "CIVIKEY_DATA_DIR",
        "NO_COLOR",
    ] {
        assert!(tail.contains(part), "{part}: {tail}");
    }
    let config = env.dir.path().join("config/civikey/config.toml");
    assert!(
        tail.contains(&format!("Config file: {} (not there", config.display())),
        "{tail}"
    );
}

#[test]
fn usage_errors_exit_2_everywhere() {
    let env = Env::new();
    let store = env.sample_store();
    for (args, says) in [
        (
            vec!["list", "--store", "postgres://db/x"],
            "not a store address",
        ),
        (
            vec!["list", "--store", "mysql://civi:pw@db/civicrm"],
            "password",
        ),
        (
            vec!["list", "--store", "https://crm.example.org"],
            "needs a profile",
        ),
        (
            vec!["list", "--profile", "nope"],
            "no profile named \"nope\"",
        ),
        (vec!["--profile", "nope"], "no profile named"),
        (
            vec!["list", "--profile", "work", "--store", &store],
            "--profile work and --store both name a store",
        ),
        (vec!["list", "--limit", "many"], "invalid value"),
        (vec!["list", "--limit", "0", "--store", &store], "1..=1000"),
        (
            vec!["list", "--limit", "1001", "--store", &store],
            "1..=1000",
        ),
        (vec!["audit", "--limit", "0"], "1..=100000"),
        (vec!["show", "abc", "--store", &store], "invalid value"),
        (
            vec!["config", "init", "--kind", "postgres"],
            "invalid value",
        ),
        (vec!["completions", "tcsh"], "invalid value"),
        (vec!["generate", "--length", "99"], "--length"),
        (vec!["rotate", "--store", &store], "required"),
        (vec!["frobnicate"], "unrecognized subcommand"),
    ] {
        let out = env.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("pw@"), "{args:?} echoed a password");
    }
    // With a config, an unknown profile is a usage error too; a broken config is not.
    let config = write_config(&env, &["alpha"]);
    let out = env.run(&["list", "--profile", "beta"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the profiles are: alpha"),
        "{}",
        stderr(&out)
    );
    fs::write(&config, "[profiles.alpha]\nkind = \"nosuch\"\n").unwrap();
    let out = env.run(&["list"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn a_closed_pipe_ends_read_only_commands_quietly_but_not_rotate() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let env = Env::new();
    let store = env.sample_store();
    let run_into_closed_pipe = |args: &[&str]| {
        // The reader is gone before civikey writes, as `| head` is after its lines.
        binary::civikey(env.dir.path())
            .args(args)
            .stdout(closed_pipe())
            .stderr(Stdio::piped())
            .output()
            .unwrap()
    };
    // A journal record, so that audit has a line to write.
    let out = env.run(&["rotate", "102", "--yes", "--store", &store]);
    assert!(out.status.success(), "{}", stderr(&out));
    for args in [
        vec!["list", "--limit", "1000"],
        // Every store's records: the rotation above went to the sample store by address.
        vec!["audit", "--all-stores"],
        vec!["show", "101"],
        vec!["man"],
        vec!["config", "path"],
    ] {
        let out = run_into_closed_pipe(&args);
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGPIPE),
            "{args:?}: {:?} {}",
            out.status,
            stderr(&out)
        );
        assert!(
            !stderr(&out).contains("Broken pipe") && !stderr(&out).contains("cannot write"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // A new key that could not be delivered is never a silent death.
    let out = run_into_closed_pipe(&["rotate", "101", "--yes", "--store", &store]);
    assert_eq!(out.status.signal(), None, "{:?}", out.status);
    assert_ne!(out.status.code(), Some(0));
    assert!(!stderr(&out).is_empty());
}

/// The write end of a pipe whose read end is already closed. Closing the read end after
/// spawning would race a fast command, which can finish its write into the pipe's buffer
/// first and exit 0.
fn closed_pipe() -> std::process::Stdio {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer.into()
}

/// Runs civikey with its stdout on a pseudo-terminal and returns what it printed there.
fn run_on_terminal(env: &Env, args: &[&str]) -> String {
    let (code, text) = terminal_output(env, args);
    assert_eq!(code, 0, "{args:?}: {text}");
    text
}

/// Runs civikey on a pseudo-terminal: its exit code and what the terminal showed.
fn terminal_output(env: &Env, args: &[&str]) -> (u32, String) {
    use portable_pty::{CommandBuilder, PtySize};
    let pty = portable_pty::native_pty_system()
        .openpty(PtySize {
            rows: 50,
            cols: 200,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_civikey"));
    cmd.args(args);
    cmd.env("CIVIKEY_DATA_DIR", env.data_dir());
    cmd.env("HOME", env.dir.path());
    cmd.env("XDG_CONFIG_HOME", env.dir.path().join("config"));
    cmd.env_remove("CIVIKEY_CONFIG");
    let mut child = pty.slave.spawn_command(cmd).unwrap();
    drop(pty.slave);
    let mut reader = pty.master.try_clone_reader().unwrap();
    let status = child.wait().unwrap();
    let mut text = Vec::new();
    // After the child exits, reading drains the output, then ends (EIO) once it is read.
    let mut buf = [0u8; 4096];
    while let Ok(n) = std::io::Read::read(&mut reader, &mut buf) {
        if n == 0 {
            break;
        }
        text.extend_from_slice(&buf[..n]);
    }
    (
        status.exit_code(),
        String::from_utf8_lossy(&text).into_owned(),
    )
}

#[test]
fn check_follows_the_pipe_conventions_of_list_and_audit() {
    let env = Env::new();
    let store = env.sample_store();
    // On a terminal: header, findings, advice, the summary once.
    let (code, screen) = terminal_output(&env, &["check", "--store", &store]);
    assert_eq!(code, 6, "{screen}");
    let first = screen.lines().find(|l| !l.contains("key holders")).unwrap();
    assert!(first.starts_with("SEVERITY"), "{screen}");
    assert!(screen.contains("duplicate: "), "advice: {screen}");
    assert_eq!(screen.matches("civikey check:").count(), 1, "{screen}");
    assert_eq!(screen.matches("findings on").count(), 1, "{screen}");
    let (_, plain) = terminal_output(&env, &["check", "--no-header", "--store", &store]);
    assert!(!plain.contains("SEVERITY"), "{plain}");
    // Into a pipe: findings only; the summary once on stderr.
    let out = env.run(&["check", "--store", &store]);
    assert_eq!(out.status.code(), Some(6));
    let text = stdout(&out);
    assert!(
        text.lines().all(|l| l.starts_with("critical")
            || l.starts_with("high")
            || l.starts_with("medium")
            || l.starts_with("low")),
        "{text}"
    );
    assert_eq!(stderr(&out).matches("civikey check:").count(), 1);
    // --max-age 0d is an age, as in the screen's A.
    let out = env.run(&["check", "--max-age", "0d", "--json", "--store", &store]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
}

/// Runs civikey on a pseudo-terminal, typing `input` once it asks (its stderr shows
/// `asks`); returns the exit code and everything the terminal showed.
fn answer_on_terminal(env: &Env, args: &[&str], asks: &str, input: &str) -> (u32, String) {
    use portable_pty::{CommandBuilder, PtySize};
    use std::io::{Read, Write};
    let pty = portable_pty::native_pty_system()
        .openpty(PtySize {
            rows: 50,
            cols: 200,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_civikey"));
    cmd.args(args);
    cmd.env("CIVIKEY_DATA_DIR", env.data_dir());
    cmd.env("HOME", env.dir.path());
    cmd.env("XDG_CONFIG_HOME", env.dir.path().join("config"));
    cmd.env_remove("CIVIKEY_CONFIG");
    let mut child = pty.slave.spawn_command(cmd).unwrap();
    drop(pty.slave);
    let mut reader = pty.master.try_clone_reader().unwrap();
    let mut writer = pty.master.take_writer().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !String::from_utf8_lossy(&seen).contains(asks) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(bytes) => seen.extend(bytes),
            Err(_) => panic!(
                "{args:?} never asked {asks:?}: {}",
                String::from_utf8_lossy(&seen)
            ),
        }
    }
    writer.write_all(input.as_bytes()).unwrap();
    writer.flush().unwrap();
    let status = child.wait().unwrap();
    while let Ok(bytes) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
        seen.extend(bytes);
    }
    (
        status.exit_code(),
        String::from_utf8_lossy(&seen).into_owned(),
    )
}

#[test]
fn assign_refuses_a_key_check_calls_weak_and_asks_before_replacing_one() {
    let env = Env::new();
    let store = env.sample_store();
    let feed = |args: &[&str], key: &str| {
        use std::io::Write;
        let mut child = binary::civikey(env.dir.path())
            .args(args)
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
        child.wait_with_output().unwrap()
    };
    // 102 has no key: nothing to confirm, only the key to judge.
    let a32 = "a".repeat(32);
    for (key, rule) in [
        (a32.as_str(), "run"),
        ("abcdefghijklmnopqrstuvwxyz123456", "sequence"),
    ] {
        let out = feed(&["assign", "102", "--key-stdin", "--store", &store], key);
        assert_eq!(out.status.code(), Some(5), "{key}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("weak ({rule}:")),
            "{key}: {}",
            stderr(&out)
        );
        assert!(!stderr(&out).contains(key), "the key was echoed");
        assert_eq!(stored_key(&env.store(), 102), None);
        // `check` calls the same key weak, by the same rule.
        let conn = rusqlite::Connection::open(env.store()).unwrap();
        conn.execute(
            "UPDATE civicrm_contact SET api_key = ? WHERE id = 102",
            [key],
        )
        .unwrap();
        let out = env.run(&["check", "--json", "--store", &store]);
        let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert!(
            report["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| { f["contact"]["id"] == 102 && f["code"] == "weak" && f["rule"] == rule }),
            "{report}"
        );
        conn.execute(
            "UPDATE civicrm_contact SET api_key = NULL WHERE id = 102",
            [],
        )
        .unwrap();
    }
    // 103 holds a key: from a pipe, replacing it needs --yes, as rotate does.
    let before = stored_key(&env.store(), 103);
    let given = "Q7wKx9m2Pz4RtY8vLnB3cD5fG6hJ";
    let out = feed(&["assign", "103", "--key-stdin", "--store", &store], given);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert_eq!(stored_key(&env.store(), 103), before);
    // On a terminal it asks, naming the contact and the key that stops working; n keeps it.
    let (code, screen) = answer_on_terminal(
        &env,
        &["assign", "103", "--key-stdin", "--store", &store],
        "[y/N]",
        "n\r",
    );
    assert_eq!(code, 5, "{screen}");
    assert!(
        screen.contains("Replace the key ••••8NvY of Grace Hopper (id 103"),
        "{screen}"
    );
    assert_eq!(stored_key(&env.store(), 103), before);
    let out = feed(
        &["assign", "103", "--key-stdin", "--yes", "--store", &store],
        given,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stored_key(&env.store(), 103).as_deref(), Some(given));
}

#[test]
fn the_confirm_question_keeps_its_line_breaks_and_the_names_inert() {
    let env = Env::new();
    let store = env.sample_store();
    let before = stored_key(&env.store(), 103);
    // Grace Hopper has no user account: a warning line under the question.
    let (code, screen) =
        answer_on_terminal(&env, &["rotate", "103", "--store", &store], "[y/N]", "n\r");
    assert_eq!(code, 5, "{screen}");
    assert!(
        !screen.contains('␊'),
        "a line break shown as a symbol: {screen}"
    );
    let lines: Vec<&str> = screen.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Assign a new key to Grace Hopper (id 103")),
        "{screen}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("  warning [no_user_account]")),
        "{screen}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Their current key ••••8NvY will stop working.")),
        "{screen}"
    );
    assert_eq!(stored_key(&env.store(), 103), before);
    // A hostile name stays inert in the question: 142 is "Mallory ESC[2J ...".
    let (_, screen) =
        answer_on_terminal(&env, &["rotate", "142", "--store", &store], "[y/N]", "n\r");
    assert!(screen.contains("Mallory ␛[2J"), "{screen}");
    assert!(!screen.contains("\x1b[2J"), "{screen}");
}

#[test]
fn list_and_audit_print_a_header_row_on_a_terminal_only() {
    let env = Env::new();
    let store = env.sample_store();
    let out = env.run(&["rotate", "101", "--yes", "--store", &store]);
    assert!(out.status.success(), "{}", stderr(&out));
    let on_tty = run_on_terminal(&env, &["list", "--limit", "3"]);
    let first = on_tty.lines().next().unwrap_or_default();
    assert!(
        first.contains("ID") && first.contains("NAME") && first.contains("EMAIL"),
        "{on_tty}"
    );
    let plain = run_on_terminal(&env, &["list", "--limit", "3", "--no-header"]);
    assert!(!plain.contains("NAME"), "{plain}");
    let piped = stdout(&env.run(&["list", "--limit", "3"]));
    assert!(!piped.contains("NAME"), "a pipe got a header: {piped}");
    assert_eq!(piped.lines().count(), 3);

    let audit = run_on_terminal(&env, &["audit"]);
    let first = audit.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("TIME") && first.contains("OPERATOR"),
        "{audit}"
    );
    let piped = stdout(&env.run(&["audit"]));
    assert!(
        !piped.contains("OPERATOR") && piped.contains("101"),
        "{piped}"
    );
}

#[test]
fn counts_take_the_right_plural() {
    let env = Env::new();
    let store = env.sample_store();
    let out = env.run(&["list", "--limit", "1", "--store", &store]);
    assert!(
        stderr(&out).contains("more than 1 contact matches;"),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["list", "--limit", "2", "--store", &store]);
    assert!(
        stderr(&out).contains("more than 2 contacts match;"),
        "{}",
        stderr(&out)
    );
}

/// The journal's records for a contact: (action, outcome, error), oldest first.
fn journal_records(env: &Env, id: i64) -> Vec<(String, String, Option<String>)> {
    rusqlite::Connection::open(env.data_dir().join("audit.sqlite"))
        .unwrap()
        .prepare("SELECT action, outcome, error FROM audit WHERE contact_id = ? ORDER BY id")
        .unwrap()
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Finding 3 of the security review: `rotate --yes > /dev/full` and into a closed pipe
/// replaced the key and printed it nowhere. Now the old key is put back (journaled as
/// undo), the command says so and exits 1.
#[test]
fn a_key_that_cannot_be_delivered_is_taken_back() {
    use std::process::Stdio;
    let env = Env::new();
    env.sample_store();
    let cases: [(&str, &[&str]); 3] = [
        ("/dev/full", &["rotate", "101", "--yes"]),
        ("closed pipe", &["rotate", "102", "--yes"]),
        ("closed pipe", &["rotate", "103", "--yes", "--json"]),
    ];
    for (into, args) in cases {
        let id: i64 = args[1].parse().unwrap();
        let before = stored_key(&env.store(), id);
        let mut cmd = binary::civikey(env.dir.path());
        cmd.args(args).stderr(Stdio::piped());
        let out = if into == "/dev/full" {
            cmd.stdout(fs::File::create("/dev/full").unwrap())
                .output()
                .unwrap()
        } else {
            // The reader is gone before civikey writes: like `| true`.
            cmd.stdout(closed_pipe()).output().unwrap()
        };
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{into} {args:?}: {err}");
        assert!(
            err.contains("the old key was put back"),
            "{into} {args:?}: {err}"
        );
        assert_eq!(
            stored_key(&env.store(), id),
            before,
            "{into} {args:?}: the store kept a key nobody received"
        );
        let records = journal_records(&env, id);
        assert_eq!(records.len(), 2, "{records:?}");
        assert_eq!((&records[0].0[..], &records[0].1[..]), ("assign", "done"));
        assert!(
            records[0]
                .2
                .as_deref()
                .is_some_and(|e| e.contains("not delivered") && e.contains("put back")),
            "{records:?}"
        );
        assert_eq!((&records[1].0[..], &records[1].1[..]), ("undo", "done"));
    }
}

/// When the old key cannot be put back either, civikey says plainly that the contact holds
/// a key nobody has.
#[test]
fn a_failed_put_back_says_nobody_holds_the_key() {
    let env = Env::new();
    env.sample_store();
    let old = stored_key(&env.store(), 104).expect("contact 104 has a key in the sample");
    // A trigger (as a site might have) refuses to set this key again: the put-back fails.
    rusqlite::Connection::open(env.store())
        .unwrap()
        .execute_batch(&format!(
            "CREATE TRIGGER no_reuse BEFORE UPDATE OF api_key ON civicrm_contact
               WHEN NEW.api_key = '{old}' BEGIN SELECT RAISE(ABORT, 'no reuse'); END;"
        ))
        .unwrap();
    let out = binary::civikey(env.dir.path())
        .args(["rotate", "104", "--yes"])
        .stdout(fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("now holds a key nobody has") && err.contains("rotated again"),
        "{err}"
    );
    assert!(!err.contains(&old));
    let records = journal_records(&env, 104);
    assert!(
        records[0]
            .2
            .as_deref()
            .is_some_and(|e| e.contains("nobody holds this key")),
        "{records:?}"
    );
}

/// Runs `script` in `shell` (zsh or fish) with civikey on PATH and the environment
/// binary::civikey gives it; None after a visible SKIP when the shell is not installed
/// (a failure under CI, whose test.sh installs it).
fn in_shell(env: &Env, shell: &str, args: &[&str], script: &str) -> Option<String> {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_civikey")).parent().unwrap();
    let base = binary::civikey(env.dir.path());
    let mut cmd = std::process::Command::new(shell);
    for (key, value) in base.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    let out = cmd
        .args(args)
        .arg(script)
        .env(
            "PATH",
            format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()),
        )
        .env_remove("CIVIKEY_COMPLETE")
        .output();
    match out {
        Ok(out) => {
            assert!(out.status.success(), "{shell}: {}", stderr(&out));
            Some(stdout(&out))
        }
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            println!("SKIP {shell} completion: {shell} not runnable: {e}");
            None
        }
        Err(e) => panic!("{shell} is needed under CI (apt-get install {shell}): {e}"),
    }
}

/// fish's own `complete -C` asks the loaded completion what it offers for a command line.
#[test]
fn fish_completes_profile_names_commands_and_flags() {
    let env = Env::new();
    write_config(&env, &["alpha", "beta-db"]);
    let script = "civikey completions fish | source
complete -C 'civikey --profile '; echo ---
complete -C 'civikey li'; echo ---
complete -C 'civikey list --li'";
    let Some(out) = in_shell(&env, "fish", &["--no-config", "-c"], script) else {
        return;
    };
    let parts: Vec<&str> = out.split("---\n").collect();
    assert_eq!(parts.len(), 3, "{out}");
    assert_eq!(parts[0].lines().collect::<Vec<_>>(), ["alpha", "beta-db"]);
    assert!(parts[1].starts_with("list\t"), "{out}");
    assert!(parts[2].starts_with("--limit\t"), "{out}");
}

/// An interactive zsh (on a pseudo-terminal, zsh's own zpty) with compinit and the loaded
/// script: Tab after `--profile ` lists the config's profiles.
#[test]
fn zsh_completes_profile_names_on_tab() {
    let env = Env::new();
    write_config(&env, &["alpha", "beta-db"]);
    let dump = env.dir.path().join("zcompdump");
    let script = format!(
        r#"zmodload zsh/zpty
zpty z 'zsh -f -i'
zpty -w z 'PS1="> "; autoload -U compinit; compinit -u -d {dump}; source <(civikey completions zsh)'
zpty -w -n z $'civikey --profile \t'
out=""
for i in {{1..150}}; do
  while zpty -r -t z line; do out+="$line"; done
  [[ $out == *beta-db* ]] && break
  sleep 0.2
done
zpty -d z
print -r -- "$out""#,
        dump = dump.display()
    );
    let Some(out) = in_shell(&env, "zsh", &["-f", "-c"], &script) else {
        return;
    };
    // What zsh wrote after echoing the typed line: the listing, then the line redrawn.
    let after = out
        .split_once("civikey --profile")
        .map(|(_, after)| after.to_string())
        .unwrap_or_default();
    assert!(
        after.contains("alpha") && after.contains("beta-db"),
        "no profile names offered: {out:?}"
    );
}

/// The text of `line` from display column `column` on (columns as a terminal counts them:
/// CJK and emoji two, combining marks none).
fn from_column(line: &str, column: usize) -> &str {
    let mut used = 0;
    for (at, c) in line.char_indices() {
        if used >= column {
            return &line[at..];
        }
        used += unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
    }
    ""
}

#[test]
fn list_check_and_audit_keep_their_columns_whatever_the_script() {
    let env = Env::new();
    let store = env.sample_store();
    // Contacts the sample's check flags, renamed into scripts whose characters are not one
    // column each; one name longer than every name column, cut between wide characters.
    let names = [
        (145, "Mei Chen 陈 山田太郎"),
        (146, "Café Étoile 🥐🥐"),
        (147, "नमस्ते दुनिया"),
        (141, "Zoe\u{0308} Mu\u{0308}ller"),
        (103, "山田太郎山田太郎山田太郎山田太郎山"),
    ];
    let db = rusqlite::Connection::open(env.store()).unwrap();
    for (id, name) in names {
        db.execute(
            "UPDATE civicrm_contact SET display_name = ? WHERE id = ?",
            rusqlite::params![name, id],
        )
        .unwrap();
    }
    drop(db);

    let list = stdout(&env.run(&["list", "--limit", "1000", "--store", &store]));
    let mut seen = 0;
    for line in list.lines() {
        // ID 8, NAME 32, then TYPE.
        let rest = from_column(line, 8 + 2 + 32 + 2);
        assert!(
            ["Individual ", "Organization", "Household "]
                .iter()
                .any(|t| rest.starts_with(t)),
            "the type column moved: {line:?}"
        );
        seen += usize::from(
            names
                .iter()
                .any(|(id, _)| line.starts_with(&format!("{id:>8}"))),
        );
    }
    assert_eq!(seen, names.len(), "{list}");

    let out = env.run(&["check", "--store", &store]);
    let check = stdout(&out);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    for line in check.lines() {
        // SEVERITY 8, CODE 23, ID 8, NAME 24, then KEY.
        let rest = from_column(line, 8 + 2 + 23 + 2 + 8 + 2 + 24 + 2);
        assert!(rest.starts_with("••••"), "the key column moved: {line:?}");
    }
    assert!(check.contains("नमस्ते दुनिया"), "{check}");

    for (id, _) in names {
        let out = env.run(&["rotate", &id.to_string(), "--yes", "--store", &store]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    // TIME 20, OPERATOR 10, FROM 15, CONTACT 8, NAME 24, ACTION 6, OLD->NEW 18, OUTCOME.
    let action_at = 20 + 2 + 10 + 1 + 15 + 1 + 8 + 2 + 24 + 1;
    let outcome_at = action_at + 6 + 1 + 18 + 2;
    let audit = stdout(&env.run(&["audit", "--store", &store]));
    assert_eq!(audit.lines().count(), names.len(), "{audit}");
    for line in audit.lines() {
        assert!(
            from_column(line, action_at).starts_with("assign "),
            "{line:?}"
        );
        assert!(
            from_column(line, outcome_at).starts_with("done"),
            "{line:?}"
        );
    }
    // The header names the columns where they are.
    let on_tty = run_on_terminal(&env, &["audit", "--store", &store]);
    let header = on_tty.lines().next().unwrap_or_default();
    assert!(
        from_column(header, action_at).starts_with("ACTION "),
        "{header:?}"
    );
    assert!(
        from_column(header, action_at + 7).starts_with("OLD->NEW "),
        "{header:?}"
    );
    assert!(
        from_column(header, outcome_at).starts_with("OUTCOME"),
        "{header:?}"
    );
}

/// Bulk `--json` puts every new key on stdout: never on a terminal (a usage error before
/// anything rotates).
#[test]
fn bulk_json_refuses_a_terminal() {
    let env = Env::new();
    let store = env.sample_store();
    let ids = env.dir.path().join("ids.txt");
    fs::write(&ids, "101\n").unwrap();
    let before = stored_key(&env.store(), 101);
    let (code, screen) = terminal_output(
        &env,
        &[
            "rotate",
            "--ids-from",
            ids.to_str().unwrap(),
            "--json",
            "--yes",
            "--store",
            &store,
        ],
    );
    assert_eq!(code, 2, "{screen}");
    assert!(screen.contains("stdout is a terminal"), "{screen}");
    assert_eq!(stored_key(&env.store(), 101), before);
}
