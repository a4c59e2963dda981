//! civikey-bench: search latency through the app, time to the first frame, peak memory and
//! bytes written to the terminal, at several store sizes. See docs/PERFORMANCE.md.
//!
//!   cargo run --release --bin civikey-bench -- --sizes 1000,100000,1000000 --dir DIR
//!   cargo run --bin civikey-bench -- --ci          # 20,000 contacts in a temporary folder
//!   cargo run --release --bin civikey-bench -- check --size 1000000 --dir DIR
//!                                                  # `civikey check` over every key holder
//!                                                  # (with CIVIKEY_TEST_MYSQL_URL: MariaDB,
//!                                                  # and REST and cv through the stand-ins
//!                                                  # beside the one-request floor)
//!   civikey-bench --profile NAME [--texts "car,Jing Ch,zzzq"] [--rounds N]
//!   civikey-bench --store ADDRESS [--texts ...]     # as civikey's --store
//!   civikey-bench rest-on-mysql MYSQL_ADDRESS PORT  # REST API v4 answered from MariaDB
//!   civikey-bench cv-on-mysql MYSQL_ADDRESS CV_ARGS # `cv pipe` / `cv api4` from MariaDB
//!   civikey-bench cv-wrapper MYSQL_ADDRESS SCRIPT   # writes SCRIPT, a `cv_binary` for it
//!   civikey-bench bulk [--contacts 500] [--delay-ms 100]
//!                                                  # bulk rotation over REST: requests, time
//!   civikey-bench fleet [--profiles 50] [--delay-ms 100] [--contacts 200] [--jobs N]
//!                                                  # check --all-profiles against the slowest
//!                                                  # single profile
//!
//! With `--profile` (or `--store`) the texts are typed key by key through the app against
//! that configured store, opened read-only, waiting for each answer; one line per text,
//! then `keystrokes=N p50_ms=X p99_ms=Y max_ms=Z`. With `--peer` on a MySQL store, each
//! keystroke's text is also sent as CiviCRM's own Contact.autocomplete SQL (from
//! shared/civicrm-recorded/timings.md, query h) on a connection of its own, in the same
//! run, and a `peer ...` line gives its figures.
//!
//! Each size runs in a child process of its own, so its peak RSS (getrusage ru_maxrss) is
//! that size's alone. Stores are made once in DIR (`bench-N.sqlite`) and reused. With
//! CIVIKEY_TEST_MYSQL_URL set, the largest size also runs on MariaDB (database
//! `civikey_bench_N_s2`, made once and reused), through CiviCRM's own indexes only.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use civikey::app::{Action, App, AppOptions, Cmd, Msg};
use civikey::key::SeededKeySource;
use civikey::secret::Secret;
use civikey::seed::synthetic_contacts;
use civikey::store::mysql::{MysqlAddress, MysqlOptions, MysqlTls};
use civikey::store::sqlite::SqliteStore;
use civikey::store::ContactStore;
use civikey::store::StoreSpec;
use civikey::terminal::Screen;

#[path = "bench_support/cv_on_mysql.rs"]
mod cv_on_mysql;
#[path = "bench_support/fleet.rs"]
mod fleet;
#[path = "bench_support/rest_in_memory.rs"]
mod rest_in_memory;
#[path = "bench_support/rest_on_mysql.rs"]
mod rest_on_mysql;

const WIDTH: u16 = 80;
const HEIGHT: u16 = 24;
const SEED: u64 = 1;
const URL_VAR: &str = "CIVIKEY_TEST_MYSQL_URL";
const PASSWORD_VAR: &str = "CIVIKEY_TEST_MYSQL_PASSWORD";

/// What an operator types: surnames, given names, a later word, non-Latin names, a prefix
/// shared by many surnames, a typo; then an email and an id taken from the store. Each is
/// typed key by key, then cleared.
const TYPED: &[&str] = &[
    "smith",
    "wei wang",
    "müller",
    "van der",
    "garcía, j",
    "山田",
    "Смирнова",
    "schm",
    "zqx",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("child") => child(&args[1..]),
        Some("seed") => seed_child(&args[1..]),
        Some("check") => check_bench(&args[1..]),
        Some("rest-on-mysql") => rest_on_mysql(&args[1..]),
        Some("cv-on-mysql") => return cv_on_mysql(&args[1..]),
        Some("cv-wrapper") => cv_wrapper(&args[1..]),
        Some("bulk") => bulk_bench(&args[1..]),
        Some("fleet") => fleet::run(&args[1..]),
        _ => parent(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("civikey-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Options {
    sizes: Vec<usize>,
    dir: Option<PathBuf>,
    rounds: usize,
    ci: bool,
    /// A configured profile (or a `--store` address) to type the texts against.
    profile: Option<String>,
    store: Option<String>,
    texts: Vec<String>,
    peer: bool,
}

/// What `--profile` types when no `--texts` are given: the timings' texts (a letter, a
/// common prefix, a surname, a no-match), a first and last name, a sort name.
const PROFILE_TEXTS: &[&str] = &["c", "car", "carter", "zzzq", "Jing Ch", "Chen, Jing"];

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        sizes: vec![1_000, 100_000, 1_000_000],
        dir: None,
        rounds: 5,
        ci: false,
        profile: None,
        store: None,
        texts: PROFILE_TEXTS.iter().map(|t| t.to_string()).collect(),
        peer: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--sizes" => {
                options.sizes = value()?
                    .split(',')
                    .map(|s| s.trim().replace('_', "").parse::<usize>())
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("--sizes: {e}"))?
            }
            "--dir" => options.dir = Some(PathBuf::from(value()?)),
            "--rounds" => {
                options.rounds = value()?.parse().map_err(|e| format!("--rounds: {e}"))?
            }
            "--profile" => options.profile = Some(value()?.clone()),
            "--store" => options.store = Some(value()?.clone()),
            "--peer" => options.peer = true,
            "--texts" => {
                options.texts = value()?
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(String::from)
                    .collect()
            }
            "--ci" => {
                options.ci = true;
                options.sizes = vec![20_000];
                options.rounds = 2;
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?} (use --sizes N,N,.. --dir DIR --rounds N, --ci, or --profile NAME [--texts A,B])"
                ))
            }
        }
    }
    Ok(options)
}

/// One child's measurements, one `key=value` per line on its stdout.
#[derive(Default)]
struct Report {
    store: String,
    contacts: usize,
    first_frame: Duration,
    first_page: Duration,
    rss_kib: i64,
    latencies: Vec<Duration>,
    /// CPU time of the same keystrokes: what they cost without other processes' load.
    cpu: Vec<Duration>,
    search_bytes: Vec<usize>,
    nav_bytes: Vec<usize>,
    idle_bytes: usize,
}

fn parent(args: &[String]) -> Result<(), String> {
    let options = parse(args)?;
    if options.profile.is_some() || options.store.is_some() {
        return against_profile(&options);
    }
    // Without --dir, a folder of our own that is removed afterwards.
    let (dir, remove) = match &options.dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("civikey-bench-{}", std::process::id())),
            true,
        ),
    };
    civikey::fsperm::create_private_dir(&dir)?;
    let result = measure(&options, &dir);
    if remove {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn measure(options: &Options, dir: &std::path::Path) -> Result<(), String> {
    let mut reports = Vec::new();
    for &size in &options.sizes {
        let path = dir.join(format!("bench-{size}.sqlite"));
        if !path.exists() {
            // In a process of its own: Linux carries a process's peak RSS across exec, so
            // a parent that had seeded would lend its peak to every measuring child.
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let status = Command::new(exe)
                .arg("seed")
                .arg(&path)
                .arg(size.to_string())
                .status()
                .map_err(|e| format!("cannot run the seeding process: {e}"))?;
            if !status.success() {
                return Err(format!("seeding {} failed", path.display()));
            }
        }
        reports.push(run_child(
            &format!("sqlite:{}", path.display()),
            size,
            options.rounds,
        )?);
    }
    if let Some(url) = std::env::var(URL_VAR).ok().filter(|u| !u.is_empty()) {
        let size = options.sizes.iter().copied().max().unwrap_or(1_000);
        let address = mysql_database(&url, size)?;
        reports.push(run_child(&address, size, options.rounds)?);
    } else {
        eprintln!("civikey-bench: {URL_VAR} is not set: no MariaDB run (start one with: eval \"$(bash scripts/mariadb-test-server.sh)\")");
    }
    print_table(&reports);
    if options.ci {
        check_ci(&reports)?;
    }
    Ok(())
}

/// What CI checks: every search answered and drew, and the byte counts (which do not
/// depend on the machine's speed) stay small. Wall times are printed, never asserted.
fn check_ci(reports: &[Report]) -> Result<(), String> {
    for r in reports {
        if r.latencies.is_empty() || r.nav_bytes.is_empty() {
            return Err(format!("{}: no measurements", r.store));
        }
        let nav = mean(&r.nav_bytes);
        if nav >= 800.0 {
            return Err(format!(
                "{}: moving the selection wrote {nav:.0} bytes (limit 800)",
                r.store
            ));
        }
        if r.idle_bytes != 0 {
            return Err(format!(
                "{}: an unchanged frame wrote {} bytes",
                r.store, r.idle_bytes
            ));
        }
    }
    Ok(())
}

/// `check --size N --dir DIR [--rounds R]`: the key health check (`civikey check`, and
/// `civikey check --max-age 90d` with an empty journal) over the same stores `measure`
/// makes, SQLite and (with CIVIKEY_TEST_MYSQL_URL) MariaDB. Prints one table row per run.
fn check_bench(args: &[String]) -> Result<(), String> {
    let (mut size, mut dir, mut rounds) = (1_000_000usize, None, 3usize);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--size" => size = value()?.parse().map_err(|e| format!("--size: {e}"))?,
            "--dir" => dir = Some(PathBuf::from(value()?)),
            "--rounds" => rounds = value()?.parse().map_err(|e| format!("--rounds: {e}"))?,
            other => {
                return Err(format!(
                    "unknown argument {other:?} (check --size N --dir DIR --rounds N)"
                ))
            }
        }
    }
    let dir = dir.ok_or("check needs --dir DIR (the stores are made there once and reused)")?;
    civikey::fsperm::create_private_dir(&dir)?;
    let path = dir.join(format!("bench-{size}.sqlite"));
    if !path.exists() {
        seed_child(&[path.display().to_string(), size.to_string()])?;
    }
    let mut addresses = vec![format!("sqlite:{}", path.display())];
    match std::env::var(URL_VAR).ok().filter(|u| !u.is_empty()) {
        Some(url) => addresses.push(mysql_database(&url, size)?),
        None => eprintln!("civikey-bench: {URL_VAR} is not set: no MariaDB run"),
    }
    // A journal of its own, empty of these stores: every age is unknown.
    let journal_dir = dir.join(format!("check-journal-{}", std::process::id()));
    println!("| store | contacts | key holders | --max-age | findings | first run | median of {rounds} | floor: median | check / floor |");
    println!("|---|---:|---:|---|---:|---:|---:|---:|---:|");
    for address in &addresses {
        let journal = civikey::audit::Journal::open(
            &journal_dir,
            civikey::audit::Actor {
                store: address.clone(),
                ..Default::default()
            },
        )
        .map_err(|e| e.to_string())?;
        for max_age_days in [None, Some(90)] {
            let mut times = Vec::new();
            let mut floors = Vec::new();
            let mut last = None;
            for _ in 0..rounds.max(1) {
                // MariaDB's floor, alternating with the check: the count of holders, the
                // issue's one-query yardstick (index only), on a new connection.
                if !address.starts_with("sqlite:") {
                    floors.push(mysql_floor(address)?);
                }
                // A new connection each round: nothing cached in the client.
                let mut store = spec_of(address)?.open().map_err(|e| e.to_string())?;
                let started = Instant::now();
                let report = civikey::health::check(
                    store.as_mut(),
                    Some(&journal),
                    civikey::health::Options {
                        max_age_days,
                        now: 0,
                    },
                    &mut |read, _| eprint!("\rcivikey-bench: {address}: {read} key holders"),
                )
                .map_err(|e| e.to_string())?;
                times.push(started.elapsed());
                last = Some(report);
            }
            eprintln!();
            let report = last.ok_or("no run")?;
            let first = times[0];
            times.sort();
            let kind = if address.starts_with("sqlite:") {
                "SQLite"
            } else {
                "MariaDB"
            };
            floors.sort();
            let median = percentile(&times, 50.0);
            let (floor, ratio) = match floors.is_empty() {
                true => ("-".to_string(), "-".to_string()),
                false => {
                    let floor = percentile(&floors, 50.0);
                    let ratio = median.as_secs_f64() / floor.as_secs_f64().max(1e-9);
                    (ms(floor), format!("{ratio:.1}"))
                }
            };
            println!(
                "| {kind} | {size} | {} | {} | {} | {} | {} | {floor} | {ratio} |",
                report.holders,
                max_age_days.map_or("no".to_string(), |d| format!("{d}d")),
                report.findings.len(),
                ms(first),
                ms(median),
            );
        }
    }
    let _ = std::fs::remove_dir_all(&journal_dir);
    if let Some(mysql) = addresses.get(1) {
        check_api4_bench(mysql, &dir, size, rounds)?;
    }
    Ok(())
}

/// The check over REST and cv against the stand-ins on the MariaDB database `mysql`, side
/// by side in one run with the floor: one Contact.get of every holder (`api_key IS NOT
/// NULL`, limit 0, as recorded in rest/130-131) sent to the same stand-in. Rounds
/// alternate floor and check. CiviCRM's own cost per request is the stand-ins' (the
/// environment's `CIVIKEY_BENCH_REST_REQUEST_MS`, `CIVIKEY_BENCH_CV_CALL_MS`).
fn check_api4_bench(
    mysql: &str,
    dir: &std::path::Path,
    size: usize,
    rounds: usize,
) -> Result<(), String> {
    use std::io::BufRead;
    let bench = std::env::current_exe().map_err(|e| e.to_string())?;
    let requests = dir.join(format!("check-requests-{}.log", std::process::id()));
    let mut server = Command::new(&bench)
        .args(["rest-on-mysql", mysql, "0"])
        .env(rest_on_mysql::REQUESTS_VAR, &requests)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("rest-on-mysql: {e}"))?;
    let mut line = String::new();
    if let Some(err) = server.stderr.take() {
        io::BufReader::new(err)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
    }
    let url = line
        .trim()
        .rsplit_once(" on ")
        .map(|(_, url)| url.to_string())
        .ok_or_else(|| format!("rest-on-mysql did not start: {line}"));
    let script = dir.join(format!("check-cv-{}", std::process::id()));
    let result = url.and_then(|url| {
        cv_wrapper(&[mysql.to_string(), script.display().to_string()])?;
        let rest = StoreSpec::Rest(civikey::store::rest::RestOptions {
            base_url: url.clone(),
            api_key: civikey::key::ApiKey::from_store("standinkeystandinkeystandinkey12".into()),
            site_key: None,
            timeout: Duration::from_secs(120),
        });
        let cv = StoreSpec::Cv(civikey::store::cv::CvOptions {
            site_path: dir.to_path_buf(),
            cv_binary: script.clone(),
            cv_user: None,
            timeout: Duration::from_secs(120),
        });
        let request_ms = std::env::var(rest_on_mysql::REQUEST_MS_VAR).unwrap_or("0".into());
        let call_ms = std::env::var(cv_on_mysql::CALL_MS_VAR).unwrap_or("0".into());
        let start_ms = std::env::var(cv_on_mysql::START_MS_VAR).unwrap_or("0".into());
        println!();
        println!("| store | CiviCRM's cost | contacts | key holders | findings | requests | check: first / median of {rounds} ms | floor: median ms | check / floor |");
        println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
        let floor_rest = |_: &mut ()| floor_rest(&url);
        let floor_cv = |_: &mut ()| floor_cv(&script, dir, mysql);
        for (name, cost, spec, floor) in [
            (
                "REST stand-in",
                format!("{request_ms} ms a request"),
                &rest,
                &floor_rest as &dyn Fn(&mut ()) -> Result<Duration, String>,
            ),
            (
                "cv pipe stand-in",
                format!("{call_ms} ms a call, {start_ms} ms a session"),
                &cv,
                &floor_cv as &dyn Fn(&mut ()) -> Result<Duration, String>,
            ),
        ] {
            let (mut checks, mut floors, mut last, mut sent) = (Vec::new(), Vec::new(), None, 0);
            for _ in 0..rounds.max(1) {
                floors.push(floor(&mut ())?);
                let _ = std::fs::remove_file(&requests);
                // The whole command's work: open, read, judge (not the process start).
                let started = Instant::now();
                let mut store = spec.open().map_err(|e| e.to_string())?;
                let report = civikey::health::check(
                    store.as_mut(),
                    None,
                    civikey::health::Options::default(),
                    &mut |read, _| eprint!("\rcivikey-bench: {name}: {read} key holders"),
                )
                .map_err(|e| e.to_string())?;
                drop(store);
                checks.push(started.elapsed());
                sent = std::fs::read_to_string(&requests)
                    .map(|t| t.lines().count())
                    .unwrap_or(0);
                last = Some(report);
            }
            eprintln!();
            let report = last.ok_or("no run")?;
            let first = checks[0];
            checks.sort();
            floors.sort();
            let (check, floor) = (percentile(&checks, 50.0), percentile(&floors, 50.0));
            let requests = if name.starts_with("REST") {
                sent.to_string()
            } else {
                "-".to_string()
            };
            println!(
                "| {name} | {cost} | {size} | {} | {} | {requests} | {} / {} | {} | {:.2} |",
                report.holders,
                report.findings.len(),
                ms(first),
                ms(check),
                ms(floor),
                check.as_secs_f64() / floor.as_secs_f64().max(1e-9),
            );
        }
        Ok(())
    });
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_file(&requests);
    let _ = std::fs::remove_file(&script);
    result
}

/// The floor's params: every holder, live and trashed, in one call (rest/130-131).
fn floor_params() -> serde_json::Value {
    serde_json::json!({
        "select": ["id", "api_key", "is_deleted"],
        "where": [["api_key", "IS NOT NULL"], ["is_deleted", "IN", [0, 1]]],
        "limit": 0,
    })
}

/// One REST request of every holder, its answer read and parsed: the REST floor.
fn floor_rest(url: &str) -> Result<Duration, String> {
    let started = Instant::now();
    let body = civikey::store::rest::form_field("params", &floor_params().to_string());
    let mut answer = ureq::post(&format!("{url}/civicrm/ajax/api4/Contact/get"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-Requested-With", "XMLHttpRequest")
        .send(body.as_bytes())
        .map_err(|e| e.to_string())?;
    let text = answer
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .map_err(|e| e.to_string())?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let rows = value["values"].as_array().map_or(0, Vec::len);
    if rows == 0 {
        return Err("the floor read no holders".into());
    }
    Ok(started.elapsed())
}

/// The same call through a new `cv pipe` session of the stand-in (started, then one
/// `api4` call): the cv floor.
fn floor_cv(
    script: &std::path::Path,
    site: &std::path::Path,
    _mysql: &str,
) -> Result<Duration, String> {
    use std::io::BufRead;
    let started = Instant::now();
    let mut child = Command::new(script)
        .args(["pipe", "--cwd", &site.display().to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cv pipe: {e}"))?;
    let mut input = child.stdin.take().ok_or("no stdin")?;
    let mut output = io::BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut line = String::new();
    output.read_line(&mut line).map_err(|e| e.to_string())?;
    // As the store does without a cv_user: permission checks off, then the one call.
    writeln!(
        input,
        r#"{{"jsonrpc":"2.0","method":"options","params":{{"apiCheckPermissions":false}},"id":1}}"#
    )
    .map_err(|e| e.to_string())?;
    line.clear();
    output.read_line(&mut line).map_err(|e| e.to_string())?;
    let call = serde_json::json!({
        "jsonrpc": "2.0", "method": "api4", "id": 2,
        "params": ["Contact", "get", floor_params()],
    });
    writeln!(input, "{call}").map_err(|e| e.to_string())?;
    line.clear();
    output.read_line(&mut line).map_err(|e| e.to_string())?;
    let value: serde_json::Value = serde_json::from_str(&line).map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    drop(input);
    let _ = child.wait();
    if value["result"].as_array().map_or(0, Vec::len) == 0 {
        return Err(format!(
            "the cv floor read no holders: {}",
            &line[..line.len().min(200)]
        ));
    }
    Ok(elapsed)
}

/// `rest-on-mysql MYSQL_ADDRESS PORT`: see `bench_support/rest_on_mysql.rs`.
fn rest_on_mysql(args: &[String]) -> Result<(), String> {
    let [address, port] = args else {
        return Err("rest-on-mysql MYSQL_ADDRESS PORT".into());
    };
    let port: u16 = port.parse().map_err(|e| format!("port: {e}"))?;
    rest_on_mysql::serve(&mysql_options(address), port)
}

/// `cv-on-mysql MYSQL_ADDRESS CV_ARGS...`: see `bench_support/cv_on_mysql.rs`; exits as
/// cv would.
fn cv_on_mysql(args: &[String]) -> ExitCode {
    let Some((address, cv_args)) = args.split_first() else {
        eprintln!("civikey-bench: cv-on-mysql MYSQL_ADDRESS CV_ARGS...");
        return ExitCode::from(2);
    };
    match cv_on_mysql::run(&mysql_options(address), cv_args) {
        Ok(status) => ExitCode::from(u8::try_from(status).unwrap_or(1)),
        Err(e) => {
            eprintln!("civikey-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `cv-wrapper MYSQL_ADDRESS SCRIPT`: writes SCRIPT, an executable that runs this bench's
/// `cv-on-mysql MYSQL_ADDRESS` with cv's arguments, for a `kind = "cv"` profile's
/// `cv_binary`. The address must hold no password: the stand-in reads it from the
/// environment variable the bench names. civikey starts cv with a minimal environment
/// (src/child_env.rs), so the script itself exports that variable, the call log and the
/// call delay, as they are set when it is written (0700: it may hold the test password).
fn cv_wrapper(args: &[String]) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let [address, script] = args else {
        return Err("cv-wrapper MYSQL_ADDRESS SCRIPT".into());
    };
    // The store's own parser: a password in the address is refused before it is written.
    MysqlAddress::parse(address)
        .map_err(|e| format!("{e} (the bench reads the password from ${PASSWORD_VAR})"))?;
    let bench = std::env::current_exe().map_err(|e| e.to_string())?;
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut text =
        String::from("#!/bin/sh\n# civikey-bench's cv stand-in on MariaDB (civikey gives cv a minimal environment).\n");
    for name in [
        PASSWORD_VAR,
        cv_on_mysql::LOG_VAR,
        cv_on_mysql::CALL_MS_VAR,
        cv_on_mysql::START_MS_VAR,
    ] {
        if let Ok(value) = std::env::var(name) {
            text.push_str(&format!("export {name}={}\n", quote(&value)));
        }
    }
    text.push_str(&format!(
        "exec {} cv-on-mysql {} \"$@\"\n",
        quote(&bench.to_string_lossy()),
        quote(address)
    ));
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o700)
        .open(script)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
        .map_err(|e| format!("{script}: {e}"))?;
    std::fs::set_permissions(script, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("{script}: {e}"))?;
    eprintln!("civikey-bench: wrote {script}");
    Ok(())
}

/// `bulk [--contacts N] [--delay-ms D]`: validates N ids and rotates them through the REST
/// store against the in-memory stand-in (`bench_support/rest_in_memory.rs`), which answers
/// each request after D ms; prints the requests per contact and the wall time, and checks
/// every contact's new key is the one in the out file.
fn bulk_bench(args: &[String]) -> Result<(), String> {
    use civikey::audit::{Actor, Journal};
    use civikey::bulk::{rotate_many, BulkOutcome, OutFile};
    use civikey::key::{ApiKey, OsKeySource};
    use civikey::rotation::Expectation;
    use civikey::store::rest::RestOptions;
    use civikey::store::rest::RestStore;
    let mut contacts: u64 = 500;
    let mut delay_ms: u64 = 100;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || -> Result<u64, String> {
            it.next()
                .ok_or(format!("{arg} needs a value"))?
                .parse()
                .map_err(|e| format!("{arg}: {e}"))
        };
        match arg.as_str() {
            "--contacts" => contacts = value()?,
            "--delay-ms" => delay_ms = value()?,
            other => {
                return Err(format!(
                    "unknown argument {other:?} (bulk [--contacts N] [--delay-ms D])"
                ))
            }
        }
    }
    let site = rest_in_memory::start(contacts, Duration::from_millis(delay_ms))?;
    let dir = std::env::temp_dir().join(format!("civikey-bench-bulk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = (|| -> Result<(), String> {
        let mut store = RestStore::connect(&RestOptions {
            base_url: site.url.clone(),
            api_key: ApiKey::from_store("BenchAdminKey0000000000000000000".into()),
            site_key: None,
            timeout: Duration::from_secs(60),
        })
        .map_err(|e| e.to_string())?;
        let actor = Actor {
            operator: "bench".into(),
            store: "civicrm-rest:bench".into(),
            ..Actor::default()
        };
        let mut journal = Journal::open(&dir.join("data"), actor).map_err(|e| e.to_string())?;
        let out_path = dir.join("keys.csv");
        let mut out = OutFile::create(&out_path)?;
        let ids: Vec<u64> = (1..=contacts).collect();
        let items: Vec<(u64, Expectation)> =
            ids.iter().map(|&id| (id, Expectation::Current)).collect();
        let start = Instant::now();
        // As `civikey rotate --ids-from` does: the ids validated, then rotated.
        store.contacts(&ids).map_err(|e| e.to_string())?;
        let results = rotate_many(
            &mut store,
            &mut journal,
            &mut OsKeySource,
            &items,
            &mut out,
            &std::sync::atomic::AtomicBool::new(false),
            &mut |_, _, _| {},
        );
        let wall = start.elapsed();
        let requests = site.requests.load(Ordering::SeqCst);
        let done = results
            .iter()
            .filter(|r| r.outcome == BulkOutcome::Done)
            .count();
        // The out file as a CSV reader sees it, its columns by the header's names.
        let mut file = csv::Reader::from_path(&out_path).map_err(|e| e.to_string())?;
        let headers = file.headers().map_err(|e| e.to_string())?.clone();
        let column = |name: &str| headers.iter().position(|h| h == name);
        let (id_at, key_at) = column("contact_id").zip(column("api_key")).ok_or(format!(
            "the out file's header lacks contact_id or api_key: {headers:?}"
        ))?;
        let mut delivered = 0;
        for record in file.records() {
            let record = record.map_err(|e| e.to_string())?;
            let id = record.get(id_at).and_then(|c| c.parse::<u64>().ok());
            if id.is_some_and(|id| site.key_of(id).as_deref() == record.get(key_at)) {
                delivered += 1;
            }
        }
        println!(
            "contacts={contacts} delay_ms={delay_ms} done={done} delivered={delivered} requests={requests} requests_per_contact={:.2} wall_s={:.1}",
            requests as f64 / contacts.max(1) as f64,
            wall.as_secs_f64()
        );
        if done as u64 != contacts || delivered as u64 != contacts {
            return Err(format!(
                "{done} of {contacts} rotated, {delivered} delivered with the key the site holds"
            ));
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn seed_child(args: &[String]) -> Result<(), String> {
    let [path, size] = args else {
        return Err("seed PATH SIZE".into());
    };
    let size: usize = size.parse().map_err(|e| format!("size: {e}"))?;
    let path = PathBuf::from(path);
    let started = Instant::now();
    SqliteStore::create(&path, synthetic_contacts(size, SEED), &mut |done| {
        eprint!("\rcivikey-bench: seeding {done}/{size}");
    })
    .map_err(|e| e.to_string())?;
    eprintln!(
        "\rcivikey-bench: seeded {} with {size} contacts in {:.1} s",
        path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn run_child(address: &str, size: usize, rounds: usize) -> Result<Report, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    eprintln!("civikey-bench: measuring {address} ({size} contacts)");
    let out = Command::new(exe)
        .args(["child", address, &size.to_string(), &rounds.to_string()])
        .output()
        .map_err(|e| format!("cannot run the measuring process: {e}"))?;
    io::stderr().write_all(&out.stderr).ok();
    if !out.status.success() {
        return Err(format!("the measuring process for {address} failed"));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut report = Report {
        store: address.to_string(),
        contacts: size,
        ..Report::default()
    };
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let micros = |v: &str| Duration::from_micros(v.parse().unwrap_or(0));
        let list =
            |v: &str| -> Vec<usize> { v.split(',').filter_map(|x| x.parse().ok()).collect() };
        match key {
            "first_frame_us" => report.first_frame = micros(value),
            "first_page_us" => report.first_page = micros(value),
            "rss_kib" => report.rss_kib = value.parse().unwrap_or(0),
            "latency_us" => {
                report.latencies = list(value)
                    .into_iter()
                    .map(|us| Duration::from_micros(us as u64))
                    .collect()
            }
            "cpu_us" => {
                report.cpu = list(value)
                    .into_iter()
                    .map(|us| Duration::from_micros(us as u64))
                    .collect()
            }
            "search_bytes" => report.search_bytes = list(value),
            "nav_bytes" => report.nav_bytes = list(value),
            "idle_bytes" => report.idle_bytes = value.parse().unwrap_or(0),
            _ => {}
        }
    }
    Ok(report)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn mean(values: &[usize]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.iter().sum::<usize>() as f64 / values.len() as f64
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn print_table(reports: &[Report]) {
    println!("| store | contacts | keystrokes | key p50 ms | key p99 ms | key max ms | CPU p50 ms | CPU p99 ms | first frame ms | first page ms | peak RSS MiB | bytes/search key | bytes/nav key | bytes/no-op key |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in reports {
        let mut sorted = r.latencies.clone();
        sorted.sort();
        let mut cpu = r.cpu.clone();
        cpu.sort();
        let kind = r.store.split(':').next().unwrap_or("?");
        println!(
            "| {kind} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.0} | {:.0} | {} |",
            r.contacts,
            sorted.len(),
            ms(percentile(&sorted, 50.0)),
            ms(percentile(&sorted, 99.0)),
            ms(sorted.last().copied().unwrap_or_default()),
            ms(percentile(&cpu, 50.0)),
            ms(percentile(&cpu, 99.0)),
            ms(r.first_frame),
            ms(r.first_page),
            r.rss_kib as f64 / 1024.0,
            mean(&r.search_bytes),
            mean(&r.nav_bytes),
            r.idle_bytes,
        );
    }
}

/// `mysql://USER@HOST:PORT/civikey_bench_N_s2`, made and filled unless it already exists.
fn mysql_database(url: &str, size: usize) -> Result<String, String> {
    use mysql::prelude::Queryable;
    let url = url.trim_end_matches('/');
    // The suffix names the schema version: a database made by an older install_schema
    // (without CiviCRM's name indexes) is never reused by mistake.
    let db = format!("civikey_bench_{size}_s2");
    let admin_options = mysql_options(&format!("{url}/information_schema"));
    let mut admin =
        civikey::store::mysql::open_connection(&admin_options).map_err(|e| e.to_string())?;
    let exists: Option<String> = admin
        .exec_first(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (db.as_str(),),
        )
        .map_err(|e| e.to_string())?;
    let address = format!("{url}/{db}");
    if exists.is_some() {
        // Made by an earlier run; refuse one that a killed run left half-filled.
        let mut conn = civikey::store::mysql::open_connection(&mysql_options(&address))
            .map_err(|e| e.to_string())?;
        let count: Option<u64> = conn
            .query_first("SELECT COUNT(*) FROM civicrm_contact")
            .map_err(|e| e.to_string())?;
        if count != Some(size as u64) {
            return Err(format!(
                "database {db} holds {count:?} contacts, not {size}: drop it (DROP DATABASE {db}) and run again"
            ));
        }
    } else {
        admin
            .query_drop(format!(
                "CREATE DATABASE `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            ))
            .map_err(|e| e.to_string())?;
        let mut conn = civikey::store::mysql::open_connection(&mysql_options(&address))
            .map_err(|e| e.to_string())?;
        civikey::store::mysql::install_schema(&mut conn, "").map_err(|e| e.to_string())?;
        let started = Instant::now();
        civikey::store::mysql::insert_contacts(
            &mut conn,
            "",
            synthetic_contacts(size, SEED),
            &mut |done| eprint!("\rcivikey-bench: seeding MariaDB {done}/{size}"),
        )
        .map_err(|e| e.to_string())?;
        eprintln!(
            "\rcivikey-bench: seeded {db} with {size} contacts in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(address)
}

/// `SELECT count(*)` of the key holders on a new connection, the connection included.
fn mysql_floor(address: &str) -> Result<Duration, String> {
    use mysql::prelude::Queryable;
    let started = Instant::now();
    let mut conn = civikey::store::mysql::open_connection(&mysql_options(address))
        .map_err(|e| e.to_string())?;
    let count: Option<u64> = conn
        .query_first("SELECT count(*) FROM civicrm_contact WHERE api_key IS NOT NULL")
        .map_err(|e| e.to_string())?;
    count.ok_or("no count")?;
    Ok(started.elapsed())
}

fn mysql_options(address: &str) -> MysqlOptions {
    MysqlOptions {
        address: address.to_string(),
        password: std::env::var(PASSWORD_VAR).ok().map(Secret::new),
        table_prefix: String::new(),
        tls: MysqlTls::Auto,
        tls_ca_file: None,
        timeout: Duration::from_secs(60),
    }
}

/// Counts the bytes a terminal would receive.
#[derive(Clone, Default)]
struct Counter(Arc<AtomicUsize>);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.fetch_add(buf.len(), Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Counter {
    fn take(&self) -> usize {
        self.0.swap(0, Ordering::Relaxed)
    }
}

/// The app, its store and its screen, driven the way the event loop and the worker drive
/// them, minus the threads: update -> the Cmd's query on the store -> Msg back -> draw.
struct Harness {
    app: App,
    store: Box<dyn ContactStore>,
    screen: Screen<Counter>,
    bytes: Counter,
}

impl Harness {
    /// Runs the commands `cmds` (searches only: the bench makes no other), feeding each
    /// answer back into the app.
    fn run(&mut self, cmds: Vec<Cmd>) -> Result<(), String> {
        for cmd in cmds {
            if let Cmd::Search { seq, append, query } = cmd {
                let result = self.store.search(&query).map_err(|e| e.to_string());
                if let Err(e) = &result {
                    return Err(format!("search {:?} failed: {e}", query.text));
                }
                let more = self.app.update(Msg::Searched {
                    seq,
                    append,
                    result,
                    history: Vec::new(),
                });
                self.run(more)?;
            }
        }
        Ok(())
    }

    fn act(&mut self, action: Action) -> Result<(), String> {
        let cmds = self.app.update(Msg::Action(action));
        self.run(cmds)?;
        self.screen.draw(&self.app).map_err(|e| e.to_string())?;
        Ok(())
    }
}

fn spec_of(address: &str) -> Result<StoreSpec, String> {
    match address.strip_prefix("sqlite:") {
        Some(path) => Ok(StoreSpec::Sqlite {
            path: PathBuf::from(path),
            read_only: true,
        }),
        None => Ok(StoreSpec::Mysql(mysql_options(address))),
    }
}

fn child(args: &[String]) -> Result<(), String> {
    let started = Instant::now();
    let [address, _size, rounds] = args else {
        return Err("child ADDRESS SIZE ROUNDS".into());
    };
    let rounds: usize = rounds.parse().map_err(|e| format!("rounds: {e}"))?;
    let bytes = Counter::default();
    let mut screen = Screen::fixed(bytes.clone(), WIDTH, HEIGHT).map_err(|e| e.to_string())?;
    let mut app = bench_app(address);
    // As in the real loop: the first frame goes out before the store is opened.
    screen.draw(&app).map_err(|e| e.to_string())?;
    let first_frame = started.elapsed();

    let store = spec_of(address)?.open().map_err(|e| e.to_string())?;
    let info = store.info();
    let cmds = app.update(Msg::StoreOpened(Ok(info)));
    let mut h = Harness {
        app,
        store,
        screen,
        bytes,
    };
    h.run(cmds)?;
    h.screen.draw(&h.app).map_err(|e| e.to_string())?;
    let first_page = started.elapsed();
    if h.app.contacts.is_empty() {
        return Err(format!("{address}: the first page is empty"));
    }
    h.bytes.take();

    // An email and an id that exist: the store's own answer to a name search.
    let mut typed: Vec<String> = TYPED.iter().map(|w| w.to_string()).collect();
    h.act(Action::StartSearch)?;
    for c in "garcía".chars() {
        h.act(Action::SearchChar(c))?;
    }
    if let Some(c) = h.app.contacts.iter().rev().find(|c| c.email.is_some()) {
        let email = c.email.as_ref().map(|e| e.to_string()).unwrap_or_default();
        let cut = email
            .find('@')
            .map_or(email.len(), |at| at + 3)
            .min(email.len());
        typed.push(email[..cut].to_string());
        typed.push(c.id.to_string());
    }
    h.act(Action::SearchClear)?;

    let mut latencies = Vec::new();
    let mut cpu = Vec::new();
    let mut search_bytes = Vec::new();
    // The slowest keystrokes, with what had been typed, to tell which searches cost most.
    let mut slowest: Vec<(Duration, String)> = Vec::new();
    for round in 0..rounds {
        for word in &typed {
            h.act(Action::StartSearch)?;
            h.bytes.take();
            for c in word.chars() {
                let t = Instant::now();
                let c0 = thread_cpu();
                h.act(Action::SearchChar(c))?;
                cpu.push(thread_cpu().saturating_sub(c0));
                latencies.push(t.elapsed());
                slowest.push((t.elapsed(), h.app.filter.clone()));
                search_bytes.push(h.bytes.take());
            }
            if round == 0 && h.app.contacts.is_empty() {
                eprintln!("civikey-bench: note: {word:?} matched nothing in {address}");
            }
            h.act(Action::SearchClear)?;
            h.bytes.take();
        }
    }

    // The slowest time of each text typed, slowest first.
    slowest.sort_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)));
    slowest.dedup_by(|a, b| a.1 == b.1);
    slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
    for (time, text) in slowest.iter().take(5) {
        eprintln!(
            "civikey-bench: slow keystroke: {:>8} ms after {text:?}",
            ms(*time)
        );
    }

    // Navigation: one row down, 20 times, on the unfiltered list.
    let mut nav_bytes = Vec::new();
    for _ in 0..20 {
        h.act(Action::Down)?;
        nav_bytes.push(h.bytes.take());
    }
    // A key that changes nothing (Up at the top of the list) must write nothing.
    h.act(Action::Top)?;
    h.bytes.take();
    h.act(Action::Up)?;
    let idle_bytes = h.bytes.take();

    let mut out = String::new();
    out.push_str(&format!(
        "first_frame_us={}\nfirst_page_us={}\nrss_kib={}\nidle_bytes={idle_bytes}\n",
        first_frame.as_micros(),
        first_page.as_micros(),
        peak_rss_kib()
    ));
    let join = |v: Vec<String>| v.join(",");
    out.push_str(&format!(
        "latency_us={}\n",
        join(
            latencies
                .iter()
                .map(|d| d.as_micros().to_string())
                .collect()
        )
    ));
    out.push_str(&format!(
        "cpu_us={}\n",
        join(cpu.iter().map(|d| d.as_micros().to_string()).collect())
    ));
    out.push_str(&format!(
        "search_bytes={}\n",
        join(search_bytes.iter().map(ToString::to_string).collect())
    ));
    out.push_str(&format!(
        "nav_bytes={}\n",
        join(nav_bytes.iter().map(ToString::to_string).collect())
    ));
    io::stdout()
        .write_all(out.as_bytes())
        .map_err(|e| e.to_string())
}

/// CPU time this thread has used (user and system).
fn thread_cpu() -> Duration {
    // SAFETY: clock_gettime writes into the zeroed timespec it is given.
    let mut t: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: CLOCK_THREAD_CPUTIME_ID is a valid clock; `t` is a valid, writable timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// This process's peak resident set (ru_maxrss is in KiB on Linux).
fn peak_rss_kib() -> i64 {
    // SAFETY: getrusage writes into the zeroed struct it is given and keeps no pointer.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF is a valid `who`; `usage` is a valid, writable rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0 {
        usage.ru_maxrss
    } else {
        -1
    }
}

/// The store a profile (or a `--store` address) names, as civikey resolves it, read-only.
fn profile_spec(options: &Options) -> Result<StoreSpec, String> {
    use civikey::config::{self, Config};
    let data_dir = config::data_dir().map_err(|e| e.to_string())?;
    let config = Config::load_default().map_err(|e| e.to_string())?;
    let resolved = match &config {
        Some(c) => c.resolve(
            options.store.as_deref(),
            options.profile.as_deref(),
            &data_dir,
            true,
        ),
        None => config::resolve_without_config(
            options.store.as_deref(),
            options.profile.as_deref(),
            &data_dir,
            true,
        ),
    }
    .map_err(|e| e.to_string())?;
    Ok(match resolved.spec {
        spec @ StoreSpec::Sqlite { .. } => spec,
        spec => StoreSpec::ReadOnly(Box::new(spec)),
    })
}

/// `--profile`: types each text key by key through the app against that store, waiting
/// for each answer (update -> the store's search -> Searched -> draw), `rounds` times.
/// The app as the terminal loop makes it, at the bench's screen size, with seeded keys.
fn bench_app(location: &str) -> App {
    let options = AppOptions {
        location: location.to_string(),
        color: true,
        clipboard_warning: None,
        data_dir: std::env::temp_dir(),
        profiles: Vec::new(),
    };
    let (mut app, _open) = App::new(options, Box::new(SeededKeySource::new(SEED)));
    app.update(Msg::Resize {
        width: WIDTH,
        height: HEIGHT,
    });
    app
}

fn against_profile(options: &Options) -> Result<(), String> {
    let spec = profile_spec(options)?;
    let location = spec.location();
    let bytes = Counter::default();
    let screen = Screen::fixed(bytes.clone(), WIDTH, HEIGHT).map_err(|e| e.to_string())?;
    let mut app = bench_app(&location);
    let opened = Instant::now();
    let store = spec.open().map_err(|e| format!("{location}: {e}"))?;
    let cmds = app.update(Msg::StoreOpened(Ok(store.info())));
    let mut h = Harness {
        app,
        store,
        screen,
        bytes,
    };
    h.run(cmds)?;
    h.screen.draw(&h.app).map_err(|e| e.to_string())?;
    eprintln!(
        "civikey-bench: {location}: opened and first page in {} ms",
        ms(opened.elapsed())
    );
    let mut peer = match (&spec, options.peer) {
        (StoreSpec::ReadOnly(inner), true) => match inner.as_ref() {
            StoreSpec::Mysql(o) => Some(Autocomplete::connect(o)?),
            _ => return Err("--peer needs a MySQL store".into()),
        },
        (_, true) => return Err("--peer needs a MySQL store".into()),
        _ => None,
    };
    let mut peer_times = Vec::new();
    let mut all = Vec::new();
    for round in 0..options.rounds.max(1) {
        for text in &options.texts {
            h.act(Action::StartSearch)?;
            let mut times = Vec::new();
            let mut typed = String::new();
            for c in text.chars() {
                typed.push(c);
                let t = Instant::now();
                h.act(Action::SearchChar(c))?;
                times.push(t.elapsed());
                if let Some(peer) = peer.as_mut() {
                    peer_times.push(peer.time(&typed)?);
                }
            }
            let shown = h.app.contacts.len();
            let more = if h.app.next.is_some() { "+" } else { "" };
            h.act(Action::SearchClear)?;
            let max = times.iter().max().copied().unwrap_or_default();
            let total: Duration = times.iter().sum();
            println!(
                "round={} text={text:?} keystrokes={} total_ms={} max_ms={} shown={shown}{more}",
                round + 1,
                times.len(),
                ms(total),
                ms(max)
            );
            all.extend(times);
        }
    }
    if peer.is_some() {
        peer_times.sort();
        println!(
            "peer=Contact.autocomplete-sql keystrokes={} p50_ms={} p99_ms={} max_ms={}",
            peer_times.len(),
            ms(percentile(&peer_times, 50.0)),
            ms(percentile(&peer_times, 99.0)),
            ms(peer_times.last().copied().unwrap_or_default())
        );
    }
    all.sort();
    println!(
        "keystrokes={} p50_ms={} p99_ms={} max_ms={}",
        all.len(),
        ms(percentile(&all, 50.0)),
        ms(percentile(&all, 99.0)),
        ms(all.last().copied().unwrap_or_default())
    );
    Ok(())
}

/// CiviCRM's Contact.autocomplete, as the SQL it generates (timings.md, query h): sort
/// name containing the text, 16 rows, on a connection of its own.
struct Autocomplete {
    conn: mysql::Conn,
}

impl Autocomplete {
    fn connect(options: &MysqlOptions) -> Result<Self, String> {
        Ok(Autocomplete {
            conn: civikey::store::mysql::open_connection(options).map_err(|e| e.to_string())?,
        })
    }

    fn time(&mut self, text: &str) -> Result<Duration, String> {
        use mysql::prelude::Queryable;
        let pattern = format!(
            "%{}%",
            civikey::store::like_prefix(text, '!').trim_end_matches('%')
        );
        let started = Instant::now();
        let rows: Vec<mysql::Row> = self
            .conn
            .exec(
                // civikey's test schema has no contact_sub_type; the rest is CiviCRM's SQL.
                "SELECT a.id, a.sort_name, a.contact_type, a.contact_type
                   FROM civicrm_contact a
                  WHERE a.sort_name LIKE ? ESCAPE '!' AND a.is_deleted = 0
                  ORDER BY a.sort_name ASC LIMIT 16 OFFSET 0",
                (pattern,),
            )
            .map_err(|e| e.to_string())?;
        drop(rows);
        Ok(started.elapsed())
    }
}
