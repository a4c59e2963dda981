//! Thin: parse args, resolve the store, run the TUI or a command.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use civikey::app::worker::JournalSetup;
use civikey::app::{App, AppOptions};
use civikey::audit::{Actor, Journal};
use civikey::cli::{self, exit, Cli, Command, Failure};
use civikey::key::OsKeySource;
use civikey::store::spec::StoreSpec;
use civikey::store::sqlite::SqliteStore;
use civikey::terminal::{self, Exit};

/// How long `u` can restore the key a change replaced (the old key lives only in memory).
const UNDO_WINDOW: std::time::Duration = std::time::Duration::from_secs(10 * 60);

fn main() -> ExitCode {
    civikey::hygiene::harden_process();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    cli::report(run(cli))
}

fn run(cli: Cli) -> Result<(), Failure> {
    if let Some(Command::Generate { length }) = &cli.command {
        return cli::generate(*length);
    }
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
        if let Some(address) = cli.store.as_deref().filter(|a| a.starts_with("mysql://")) {
            return seed_mysql(address, password_env.as_deref(), what);
        }
        let (spec, _) = resolve_store(&cli)?;
        return seed_sqlite(&spec, what);
    }
    let (spec, is_default) = resolve_store(&cli)?;
    if is_default {
        create_default_store(&spec)?;
    }
    let data_dir = data_dir()?;
    let actor = Actor::from_env(&spec.location(), cli.profile.as_deref());
    let journal = || {
        Journal::open(&data_dir, actor.clone())
            .map_err(|e| Failure::new(exit::REFUSED, e.to_string()))
    };
    let Some(command) = cli.command else {
        return run_tui(
            spec,
            JournalSetup {
                dir: data_dir.clone(),
                actor: actor.clone(),
            },
        );
    };
    if let Command::Audit {
        contact,
        limit,
        json,
    } = command
    {
        return cli::audit(&journal()?, contact, limit, json);
    }
    let mut store = spec.open()?;
    let store = store.as_mut();
    match command {
        Command::List {
            search,
            limit,
            no_deleted,
            json,
        } => cli::list(store, search.as_deref(), limit, no_deleted, json),
        Command::Show { id, json } => cli::show(store, id, json),
        Command::Rotate { id, yes, json } => cli::rotate(store, &mut journal()?, id, yes, json),
        Command::Assign { id, .. } => cli::assign(store, &mut journal()?, id),
        Command::Revoke { id, yes } => cli::revoke(store, &mut journal()?, id, yes),
        Command::Generate { .. } | Command::Seed { .. } | Command::Audit { .. } => Ok(()),
    }
}

fn data_dir() -> Result<PathBuf, Failure> {
    if let Some(dir) = std::env::var_os("CIVIKEY_DATA_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("org", "civikey", "civikey")
        .map(|d| d.data_dir().to_path_buf())
        .ok_or_else(|| Failure::new(exit::ERROR, "no home folder: set CIVIKEY_DATA_DIR"))
}

fn resolve_store(cli: &Cli) -> Result<(StoreSpec, bool), Failure> {
    match cli.store.as_deref() {
        Some(address) => match address.strip_prefix("sqlite:") {
            Some(path) => Ok((
                StoreSpec::Sqlite {
                    path: PathBuf::from(path),
                    read_only: cli.read_only,
                },
                false,
            )),
            None => Err(Failure::new(
                exit::USAGE,
                format!("unsupported store address {address:?}"),
            )),
        },
        None => {
            let path = data_dir()?.join("contacts.sqlite");
            Ok((
                StoreSpec::Sqlite {
                    path,
                    read_only: cli.read_only,
                },
                true,
            ))
        }
    }
}

fn create_sample_store(path: &Path) -> Result<(), Failure> {
    let (total, contacts) = Filling::Sample.contacts()?;
    SqliteStore::create(path, contacts, &mut |done| {
        eprint!("\rcivikey: writing sample contacts {done}/{total}");
    })?;
    eprintln!(
        "\rcivikey: created {} with {total} sample contacts",
        path.display()
    );
    Ok(())
}

/// The default store is made from the bundled sample the first time, so civikey works
/// with no set-up.
fn create_default_store(spec: &StoreSpec) -> Result<(), Failure> {
    if let StoreSpec::Sqlite { path, .. } = spec {
        if !path.exists() {
            create_sample_store(path)?;
        }
    }
    Ok(())
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
        eprint!("\rcivikey: writing contacts {done}/{total}");
        if done == total && indexing_follows {
            eprint!(", building the indexes…");
        }
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
    eprintln!(
        "\rcivikey: created {} with {total} contacts in {:.1} s",
        path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// CiviCRM-shaped tables in an existing, empty database: refused if any table exists.
fn seed_mysql(address: &str, password_env: Option<&str>, what: Filling) -> Result<(), Failure> {
    use civikey::store::mysql;
    use civikey::store::spec::{MysqlOptions, Secret};
    if matches!(what, Filling::Sample) {
        return Err(Failure::new(
            exit::USAGE,
            "--sample makes SQLite stores; use --synthetic N for a MySQL/MariaDB database",
        ));
    }
    let password = match password_env {
        Some(var) => Some(Secret::new(std::env::var(var).map_err(|_| {
            Failure::new(
                exit::USAGE,
                format!("--password-env {var}: that environment variable is not set"),
            )
        })?)),
        None => None,
    };
    let options = MysqlOptions {
        address: address.to_string(),
        password,
        table_prefix: String::new(),
        tls: false,
        tls_ca_file: None,
        timeout: std::time::Duration::from_secs(60),
    };
    let mut conn = mysql::open_connection(&options)?;
    mysql::install_schema(&mut conn, "")?;
    let (total, contacts) = what.contacts()?;
    let started = std::time::Instant::now();
    mysql::insert_contacts(&mut conn, "", contacts, &mut progress(total, false))?;
    eprintln!(
        "\rcivikey: wrote {total} contacts to {address} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn run_tui(spec: StoreSpec, journal: JournalSetup) -> Result<(), Failure> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(Failure::new(
            exit::USAGE,
            "the interactive screen needs a terminal; for scripts use a command (civikey --help)",
        ));
    }
    let clipboard_warning = std::env::var_os("TMUX").map(|_| {
        let value = std::process::Command::new("tmux")
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
    };
    let (app, cmds) = App::new(options, Box::new(OsKeySource));
    terminal::install_panic_hook();
    match terminal::run(spec, journal, UNDO_WINDOW, app, cmds) {
        Ok(Exit::Quit) | Ok(Exit::HungUp) => Ok(()),
        Ok(Exit::Terminated) => Err(Failure::new(exit::ERROR, "terminated by a signal")),
        Ok(Exit::StoreFailed(e)) => Err(Failure::new(exit::ERROR, e)),
        Err(e) => Err(Failure::new(exit::ERROR, format!("terminal error: {e}"))),
    }
}
