//! Thin: parse args, resolve the store, run the TUI or a command.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use civikey::app::{App, AppOptions};
use civikey::cli::{self, exit, Cli, Command, Failure};
use civikey::key::OsKeySource;
use civikey::store::spec::StoreSpec;
use civikey::store::sqlite::SqliteStore;
use civikey::terminal::{self, Exit};

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
    let (spec, is_default) = resolve_store(&cli)?;
    if let Some(Command::Seed { sample }) = &cli.command {
        return seed(&spec, *sample);
    }
    if is_default {
        create_default_store(&spec)?;
    }
    let Some(command) = cli.command else {
        return run_tui(spec);
    };
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
        Command::Rotate { id, yes, json } => cli::rotate(store, id, yes, json),
        Command::Revoke { id, yes } => cli::revoke(store, id, yes),
        Command::Generate { .. } | Command::Seed { .. } => Ok(()),
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
    let contacts = civikey::seed::sample_contacts().map_err(|e| Failure::new(exit::ERROR, e))?;
    let total = contacts.len();
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

fn seed(spec: &StoreSpec, sample: bool) -> Result<(), Failure> {
    let StoreSpec::Sqlite { path, .. } = spec else {
        return Err(Failure::new(
            exit::USAGE,
            "seed writes SQLite stores only (--store sqlite:PATH)",
        ));
    };
    if !sample {
        return Err(Failure::new(exit::USAGE, "say what to seed with: --sample"));
    }
    if path.exists() {
        return Err(Failure::new(
            exit::REFUSED,
            format!("{} exists; seed only creates new stores", path.display()),
        ));
    }
    create_sample_store(path)
}

fn run_tui(spec: StoreSpec) -> Result<(), Failure> {
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
    #[cfg(debug_assertions)]
    debug_panic_trigger();
    match terminal::run(spec, app, cmds) {
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
