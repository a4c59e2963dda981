//! Thin: parse args, resolve the store, run the TUI or a command.

// Output goes through civikey::cli::out (sanitized) or the TUI; clippy.toml lists what is
// forbidden, Cargo.toml leaves test programs free to print their own diagnostics.
#![warn(clippy::disallowed_macros, clippy::disallowed_methods)]

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;

use civikey::app::worker::{JournalSetup, ResolveProfile};
use civikey::app::{App, AppOptions, ProfileChoice, Reach};
use civikey::audit::{Actor, Journal};
use civikey::cli::{self, exit, Cli, Command, Failure};
use civikey::config::{self, Config};
use civikey::key::OsKeySource;
use civikey::store::sqlite::SqliteStore;
use civikey::store::StoreSpec;
use civikey::terminal::{self, Exit};

/// How long `u` can restore the key a change replaced (the old key lives only in memory).
const UNDO_WINDOW: std::time::Duration = std::time::Duration::from_secs(10 * 60);

fn main() -> ExitCode {
    civikey::hygiene::harden_process();
    // A completion script asking for candidates: answer and exit before anything else runs.
    clap_complete::CompleteEnv::with_factory(<Cli as clap::CommandFactory>::command)
        .var(cli::COMPLETE_ENV)
        .complete();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            cli::out::clap_message(&e);
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let result = run(cli);
    if let Some(failure) = civikey::syslog::failure() {
        cli::out::note(format_args!("civikey: warning: {failure}"));
    }
    cli::report(result)
}

/// Commands that only read and print: a closed pipe on stdout ends them quietly. Not
/// rotate (its key must be delivered or restored), nor anything that writes.
fn only_reads(command: &Command) -> bool {
    matches!(
        command,
        Command::List { .. }
            | Command::Show { .. }
            | Command::Audit { .. }
            | Command::Check { .. }
            | Command::Profiles { .. }
            | Command::Completions { .. }
            | Command::Man
            | Command::Config(civikey::cli::config_cmd::ConfigCommand::Path)
    )
}

fn run(cli: Cli) -> Result<(), Failure> {
    if cli.command.as_ref().is_some_and(only_reads) {
        cli::out::end_quietly_on_broken_pipe();
    }
    match &cli.command {
        Some(Command::Generate { length }) => return cli::generate(*length),
        Some(Command::Completions { shell }) => return cli::completions(*shell),
        Some(Command::Man) => return cli::man(),
        Some(Command::Config(command)) => return civikey::cli::config_cmd::run(command),
        _ => {}
    }
    // A bad --store address or an unknown --profile is a usage error (2), a broken config
    // file an error (1).
    let config_failure = |e: civikey::config::ConfigError| {
        let code = if e.is_usage() {
            exit::USAGE
        } else {
            exit::ERROR
        };
        Failure::new(code, e.to_string())
    };
    let data_dir = config::data_dir().map_err(config_failure)?;
    let config = Config::load_default().map_err(config_failure)?;
    if let Some(socket) = config.as_ref().and_then(Config::syslog_socket) {
        civikey::syslog::enable(socket);
    }
    if let Some(Command::Profiles { json }) = &cli.command {
        return cli::profiles(config.as_ref(), *json);
    }
    if let Some(Command::Whose {
        all_profiles: true, ..
    }) = &cli.command
    {
        return whose_everywhere(config.as_ref(), &data_dir);
    }
    if let Some(result) = run_on_all_profiles(&cli, config.as_ref(), &data_dir) {
        return result;
    }
    let resolved = match &config {
        Some(c) => c.resolve(
            cli.store.as_deref(),
            cli.profile.as_deref(),
            &data_dir,
            cli.read_only,
        ),
        None => config::resolve_without_config(
            cli.store.as_deref(),
            cli.profile.as_deref(),
            &data_dir,
            cli.read_only,
        ),
    }
    .map_err(config_failure)?;
    if let Some(warning) = resolved.spec.warning() {
        cli::out::note(warning);
    }
    let spec = if cli.read_only {
        resolved.spec.into_read_only()
    } else {
        resolved.spec
    };
    if let Some(Command::Seed {
        sample,
        synthetic,
        seed,
        password_env,
    }) = &cli.command
    {
        let what = match (*sample, *synthetic) {
            (true, _) => Filling::Sample,
            (false, Some(count)) => Filling::Synthetic { count, seed: *seed },
            (false, None) => {
                return Err(Failure::new(
                    exit::USAGE,
                    "say what to seed with: --sample or --synthetic N",
                ))
            }
        };
        return match spec.without_login() {
            StoreSpec::Mysql(options) => seed_mysql(options, password_env.as_deref(), what),
            _ => seed_sqlite(&spec, what),
        };
    }
    // Before the default store is made from the sample: an import starts an empty store.
    if let Some(Command::Import { file, json }) = &cli.command {
        return civikey::import::command(&spec, file, *json);
    }
    let created_sample = resolved.is_default_store && create_default_store(&spec)?;
    let profile = resolved.profile.as_deref().or(cli.profile.as_deref());
    let actor = Actor::from_env(&spec.location(), profile);
    let journal = || {
        Journal::open(&data_dir, actor.clone())
            .map_err(|e| Failure::new(exit::REFUSED, e.to_string()))
    };
    let Some(command) = cli.command else {
        let picker = config
            .as_ref()
            .map(|c| profile_picker(c, &data_dir, cli.read_only));
        return run_tui(
            spec,
            JournalSetup {
                dir: data_dir.clone(),
                actor: actor.clone(),
            },
            resolved.profile.clone(),
            created_sample,
            picker,
        );
    };
    if let Command::Audit {
        contact,
        all_stores,
        since,
        limit,
        json,
        format,
        no_header,
    } = command
    {
        return cli::audit(
            &journal()?,
            &cli::AuditOptions {
                contact,
                all_stores,
                since,
                limit,
                format: if json { cli::AuditFormat::Json } else { format },
                header: cli::wants_header(no_header),
            },
        );
    }
    // This one store as the target of a command that also runs on every profile.
    let this_target = |spec: StoreSpec| cli::fleet::ProfileTarget {
        label: resolved
            .profile
            .clone()
            .unwrap_or_else(|| "store".to_string()),
        selector: match (&resolved.profile, &cli.store) {
            (Some(name), _) => format!("--profile {name} "),
            (None, Some(address)) => format!("--store {address} "),
            (None, None) => String::new(),
        },
        spec: Ok(spec),
    };
    match &command {
        Command::Whose { .. } => {
            return cli::whose(vec![this_target(spec.into_read_only())], &mut journal()?)
        }
        Command::Revoke {
            email: Some(address),
            yes,
            ..
        } => return cli::person::revoke_across(&[this_target(spec)], &data_dir, address, *yes),
        Command::Rotate {
            email: Some(address),
            out: Some(out),
            yes,
            ..
        } => {
            return cli::person::rotate_across(&[this_target(spec)], &data_dir, address, out, *yes)
        }
        _ => {}
    }
    let mut store = spec.open()?;
    let store = store.as_mut();
    match command {
        Command::List {
            search,
            email,
            deep,
            limit,
            no_deleted,
            json,
            no_header,
            ..
        } => cli::list(
            store,
            &cli::ListOptions {
                search: search.as_deref(),
                email: email.as_deref(),
                deep,
                limit,
                no_deleted,
                json,
                header: cli::wants_header(no_header),
            },
        ),
        Command::Show { id, json } => cli::show(store, journal().ok().as_ref(), id, json),
        Command::Rotate {
            ids_from: Some(ids),
            out: Some(out),
            yes,
            ..
        } => cli::rotate_bulk(store, &mut journal()?, &ids, cli::BulkTo::File(&out), yes),
        Command::Rotate {
            ids_from: Some(ids),
            json: true,
            yes,
            ..
        } => cli::rotate_bulk(store, &mut journal()?, &ids, cli::BulkTo::JsonLines, yes),
        Command::Rotate {
            ids_from: Some(_), ..
        } => Err(Failure::new(
            exit::USAGE,
            "rotate --ids-from needs where the keys go: --out FILE, or --json for stdout",
        )),
        Command::Rotate {
            id: Some(id),
            yes,
            json,
            ..
        } => cli::rotate(store, &mut journal()?, id, yes, json),
        Command::Rotate { .. } => Err(Failure::new(
            exit::USAGE,
            "rotate needs an ID, --ids-from FILE with --out FILE or --json, or --email ADDRESS --out FILE",
        )),
        Command::Assign { id, yes, .. } => cli::assign(store, &mut journal()?, id, yes),
        Command::Revoke {
            id: Some(id), yes, ..
        } => cli::revoke(store, &mut journal()?, id, yes),
        Command::Revoke { .. } => Err(Failure::new(
            exit::USAGE,
            "revoke needs an ID or --email ADDRESS",
        )),
        Command::Check {
            max_age,
            json,
            no_header,
            ..
        } => {
            // The journal is read only for key ages.
            let journal = max_age.map(|_| journal()).transpose()?;
            cli::check(store, journal.as_ref(), max_age, json, no_header)
        }
        Command::Generate { .. }
        | Command::Seed { .. }
        | Command::Audit { .. }
        | Command::Profiles { .. }
        | Command::Whose { .. }
        | Command::Completions { .. }
        | Command::Man
        | Command::Config(_)
        | Command::Import { .. } => Ok(()),
    }
}

/// The TUI's profile picker: each profile as `civikey profiles` shows it, and how a chosen
/// one resolves (secrets read then, as a run with `--profile NAME` would).
fn profile_picker(
    config: &Config,
    data_dir: &Path,
    read_only: bool,
) -> (Vec<ProfileChoice>, ResolveProfile) {
    let choices = config
        .profile_names()
        .zip(config.summaries())
        .map(|(name, summary)| ProfileChoice {
            name: name.to_string(),
            kind: summary.kind,
            address: summary.address,
            reach: Reach::Asking,
        })
        .collect();
    let (config, data_dir) = (config.clone(), data_dir.to_path_buf());
    let resolve: ResolveProfile = std::sync::Arc::new(move |name: &str| {
        cli::fleet::resolve_profile(&config, name, &data_dir, read_only)
    });
    (choices, resolve)
}

/// The commands given `--all-profiles` (other than `whose`): run on every profile of the
/// config; None for any other command.
fn run_on_all_profiles(
    cli: &Cli,
    config: Option<&Config>,
    data_dir: &Path,
) -> Option<Result<(), Failure>> {
    let all = match &cli.command {
        Some(Command::Check { all_profiles, .. })
        | Some(Command::List { all_profiles, .. })
        | Some(Command::Revoke { all_profiles, .. })
        | Some(Command::Rotate { all_profiles, .. }) => *all_profiles,
        _ => false,
    };
    if !all {
        return None;
    }
    if cli.store.is_some() || cli.profile.is_some() {
        return Some(Err(Failure::new(
            exit::USAGE,
            "--all-profiles runs on every profile of the config: leave out --store and --profile",
        )));
    }
    let targets = |read_only| cli::fleet::profile_targets(config, data_dir, read_only);
    Some(match cli.command.as_ref()? {
        Command::Check {
            max_age,
            json,
            timeout,
            jobs,
            ..
        } => cli::fleet_check::check_all(
            targets(true),
            data_dir,
            cli::fleet_check::FleetOptions {
                max_age_days: *max_age,
                json: *json,
                jobs: *jobs,
                timeout: *timeout,
            },
        ),
        Command::List {
            search,
            email,
            deep,
            limit,
            no_deleted,
            json,
            no_header,
            ..
        } => {
            if search.is_none() && email.is_none() {
                return Some(Err(Failure::new(
                    exit::USAGE,
                    "list --all-profiles needs --email ADDRESS or --search TEXT",
                )));
            }
            let mut query = cli::person::person_query(email.as_deref(), search.as_deref(), *limit);
            query.include_deleted = !no_deleted;
            query.deep = *deep;
            cli::person::list_across(&targets(true), &query, *json, cli::wants_header(*no_header))
        }
        Command::Revoke {
            email: Some(address),
            yes,
            ..
        } => cli::person::revoke_across(&targets(cli.read_only), data_dir, address, *yes),
        Command::Rotate {
            email: Some(address),
            out: Some(out),
            yes,
            ..
        } => cli::person::rotate_across(&targets(cli.read_only), data_dir, address, out, *yes),
        _ => Err(Failure::new(
            exit::USAGE,
            "--all-profiles needs --email ADDRESS here",
        )),
    })
}

/// `whose --all-profiles`: every profile of the config, read-only, one line each; a
/// profile whose secrets cannot be read is named as unreachable, not fatal.
fn whose_everywhere(config: Option<&Config>, data_dir: &Path) -> Result<(), Failure> {
    let targets = cli::fleet::profile_targets(config, data_dir, true);
    let actor = Actor::from_env("whose --all-profiles", None);
    let mut journal =
        Journal::open(data_dir, actor).map_err(|e| Failure::new(exit::REFUSED, e.to_string()))?;
    cli::whose(targets, &mut journal)
}

fn create_sample_store(path: &Path) -> Result<(), Failure> {
    let (total, contacts) = Filling::Sample.contacts()?;
    SqliteStore::create(path, contacts, &mut |done| {
        cli::out::progress(
            format_args!("civikey: writing sample contacts {done}/{total}"),
            false,
        );
    })?;
    cli::out::progress(
        format_args!(
            "civikey: created {} with {total} sample contacts",
            path.display()
        ),
        true,
    );
    Ok(())
}

/// The default store is made from the bundled sample the first time, so civikey works
/// with no set-up; true when it was made now.
fn create_default_store(spec: &StoreSpec) -> Result<bool, Failure> {
    if let StoreSpec::Sqlite { path, .. } = spec {
        if !path.exists() {
            create_sample_store(path)?;
            return Ok(true);
        }
    }
    Ok(false)
}

/// What `seed` fills a new store with.
#[derive(Clone, Copy)]
enum Filling {
    Sample,
    Synthetic { count: usize, seed: u64 },
}

impl Filling {
    fn contacts(
        self,
    ) -> Result<(usize, Box<dyn Iterator<Item = civikey::seed::SeedContact>>), Failure> {
        Ok(match self {
            Filling::Sample => {
                let all =
                    civikey::seed::sample_contacts().map_err(|e| Failure::new(exit::ERROR, e))?;
                (all.len(), Box::new(all.into_iter()))
            }
            Filling::Synthetic { count, seed } => (
                count,
                Box::new(civikey::seed::synthetic_contacts(count, seed)),
            ),
        })
    }
}

/// Progress on stderr: the running count, then a note while the indexes are built.
fn progress(total: usize, indexing_follows: bool) -> impl FnMut(usize) {
    move |done| {
        let indexing = if done == total && indexing_follows {
            ", building the indexes…"
        } else {
            ""
        };
        cli::out::progress(
            format_args!("civikey: writing contacts {done}/{total}{indexing}"),
            false,
        );
    }
}

fn seed_sqlite(spec: &StoreSpec, what: Filling) -> Result<(), Failure> {
    let StoreSpec::Sqlite { path, .. } = spec else {
        return Err(Failure::new(
            exit::USAGE,
            "seed writes SQLite stores (--store sqlite:PATH) and MySQL/MariaDB databases (--store mysql://USER@HOST/DB)",
        ));
    };
    if path.exists() {
        return Err(Failure::new(
            exit::REFUSED,
            format!("{} exists; seed only creates new stores", path.display()),
        ));
    }
    let (total, contacts) = what.contacts()?;
    let started = std::time::Instant::now();
    SqliteStore::create(path, contacts, &mut progress(total, true))?;
    cli::out::progress(
        format_args!(
            "civikey: created {} with {total} contacts in {:.1} s",
            path.display(),
            started.elapsed().as_secs_f64()
        ),
        true,
    );
    Ok(())
}

/// CiviCRM-shaped tables in an existing, empty database: refused if any table exists.
fn seed_mysql(
    options: &civikey::store::mysql::MysqlOptions,
    password_env: Option<&str>,
    what: Filling,
) -> Result<(), Failure> {
    use civikey::secret::Secret;
    use civikey::store::mysql;
    if matches!(what, Filling::Sample) {
        return Err(Failure::new(
            exit::USAGE,
            "--sample makes SQLite stores; use --synthetic N for a MySQL/MariaDB database",
        ));
    }
    let mut options = options.clone();
    if let Some(var) = password_env {
        let value = std::env::var(var).map_err(|_| {
            Failure::new(
                exit::USAGE,
                format!("--password-env {var}: that environment variable is not set"),
            )
        })?;
        options.password = Some(Secret::new(value));
    }
    // Bulk inserts take longer than a lookup.
    options.timeout = options.timeout.max(std::time::Duration::from_secs(60));
    let prefix = options.table_prefix.clone();
    let mut conn = mysql::open_connection(&options)?;
    mysql::install_schema(&mut conn, &prefix)?;
    let (total, contacts) = what.contacts()?;
    let started = std::time::Instant::now();
    mysql::insert_contacts(&mut conn, &prefix, contacts, &mut progress(total, false))?;
    cli::out::progress(
        format_args!(
            "civikey: wrote {total} contacts to {} in {:.1} s",
            options.address,
            started.elapsed().as_secs_f64()
        ),
        true,
    );
    Ok(())
}

fn run_tui(
    spec: StoreSpec,
    journal: JournalSetup,
    profile: Option<String>,
    created_sample: bool,
    picker: Option<(Vec<ProfileChoice>, ResolveProfile)>,
) -> Result<(), Failure> {
    if !cli::out::stdout_is_terminal() || !std::io::stdin().is_terminal() {
        return Err(Failure::new(
            exit::USAGE,
            "the interactive screen needs a terminal; for scripts use a command (civikey --help)",
        ));
    }
    let clipboard_warning = std::env::var_os("TMUX").map(|_| {
        let mut tmux = std::process::Command::new("tmux");
        let value = civikey::child_env::minimal(&mut tmux, civikey::child_env::TMUX)
            .args(["show-options", "-gv", "set-clipboard"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        civikey::clipboard::tmux_warning(value.as_deref())
    });
    let options = AppOptions {
        location: civikey::sanitize::SafeText::new(&spec.location()).to_string(),
        color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        clipboard_warning: clipboard_warning.flatten(),
        data_dir: journal.dir.clone(),
        profiles: picker.as_ref().map(|p| p.0.clone()).unwrap_or_default(),
    };
    let (mut app, cmds) = App::new(options, Box::new(OsKeySource));
    app.profile = profile;
    if created_sample {
        // The first run: say what these contacts are, and how to reach a real site.
        app.notice = Some((civikey::app::SAMPLE_NOTICE.to_string(), false));
    }
    terminal::install_panic_hook();
    #[cfg(debug_assertions)]
    debug_panic_trigger();
    let resolve = picker.map(|p| p.1);
    match terminal::run(spec, journal, UNDO_WINDOW, app, cmds, resolve) {
        Ok(Exit::Quit) | Ok(Exit::HungUp) => Ok(()),
        Ok(Exit::Terminated) => Err(Failure::new(exit::ERROR, "terminated by a signal")),
        Ok(Exit::StoreFailed(e)) => Err(Failure::new(exit::ERROR, e)),
        Err(e) => Err(Failure::new(exit::ERROR, format!("terminal error: {e}"))),
    }
}

/// Debug builds only: `CIVIKEY_DEBUG_PANIC_AFTER_MS=N` panics a thread N ms after the
/// screen starts, so the pty tests can prove that a panic restores the terminal and ends
/// the process. Release builds do not contain it.
#[cfg(debug_assertions)]
fn debug_panic_trigger() {
    let Some(ms) = std::env::var("CIVIKEY_DEBUG_PANIC_AFTER_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(ms));
        panic!("forced by CIVIKEY_DEBUG_PANIC_AFTER_MS");
    });
}
