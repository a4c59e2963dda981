//! Command-line definitions (clap) and the non-interactive commands.
//!
//! Data goes to stdout, everything else (prompts, progress, errors) to stderr. A new key
//! reaches stdout only from a command whose job is to print it. No command takes a key
//! or a password as an argument.

use std::io::{self, BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::audit::Journal;
use crate::key::{ApiKey, OsKeySource, KEY_LEN, MIN_MANUAL_LEN};
use crate::rotation::{self, Expectation, NewKey, RotationError};
use crate::sanitize::SafeText;
use crate::store::{CmsLink, Contact, ContactId, ContactStore, Query, StoreError};

/// The only code that writes to stdout and stderr outside the TUI (which has its own, in
/// `terminal.rs`). clippy.toml forbids `print!`, `println!`, `eprint!`, `eprintln!`, `dbg!`,
/// `io::stdout` and `io::stderr` everywhere else in the library and the binary, so no text can
/// reach the operator's terminal around the sanitizer.
pub mod out {
    #![allow(clippy::disallowed_methods)]

    use std::fmt::Display;
    use std::io::{self, IsTerminal, Write};

    use crate::sanitize::SafeText;

    /// One line of data on stdout. The whole line passes the sanitizer, so nothing that went
    /// into it (a name from a store, a journal field, a path) can act on the terminal; text
    /// that is already SafeText comes out unchanged.
    pub fn line(text: impl Display) -> io::Result<()> {
        let text = SafeText::new(&text.to_string());
        writeln!(io::stdout().lock(), "{text}")
    }

    /// A message for the operator on stderr, sanitized like [`line`]. A failure to write to
    /// stderr is ignored: there is nowhere left to report it.
    pub fn note(text: impl Display) {
        let text = SafeText::new(&text.to_string());
        let _ = writeln!(io::stderr().lock(), "{text}");
    }

    /// Progress that overwrites itself on stderr: a carriage return, then the sanitized text;
    /// the `last` one ends the line.
    pub fn progress(text: impl Display, last: bool) {
        let text = SafeText::new(&text.to_string());
        let mut err = io::stderr().lock();
        if err.is_terminal() {
            // Overwrite the line in place; clear what a longer earlier line left.
            let _ = write!(err, "\r{text}\x1b[K{}", if last { "\n" } else { "" });
        } else {
            // A log file or a pipe: one line each, no carriage returns.
            let _ = writeln!(err, "{text}");
        }
        let _ = err.flush();
    }

    /// A clap message (usage error, --help, --version): to stderr or stdout as clap says,
    /// each line sanitized, because a usage error quotes the arguments it was given.
    pub fn clap_message(e: &clap::Error) {
        let text = e.render().to_string();
        for text in text.lines() {
            if e.use_stderr() {
                note(text);
            } else if line(text).is_err() {
                return;
            }
        }
    }

    /// A question on stderr, sanitized, without a newline, flushed before the answer is read.
    pub fn ask(text: impl Display) -> io::Result<()> {
        let text = SafeText::new(&text.to_string());
        let mut err = io::stderr().lock();
        write!(err, "{text} ")?;
        err.flush()
    }

    /// A line holding a key on stdout (the key alone, or a JSON document with it). It is not
    /// copied into a SafeText, whose copy of the key would not be wiped; keys are
    /// `[A-Za-z0-9]` (generated, or validated on entry), so the line is checked instead and
    /// refused if anything but printable ASCII slipped in.
    pub fn secret_line(text: &str) -> io::Result<()> {
        if !text.chars().all(|c| c == ' ' || c.is_ascii_graphic()) {
            return Err(io::Error::other(
                "refused to print a key line holding characters other than printable ASCII",
            ));
        }
        writeln!(io::stdout().lock(), "{text}")
    }

    /// Documents civikey generates from its own definitions (shell completions, the man page):
    /// trusted text, written as is.
    pub fn generated(bytes: &[u8]) -> io::Result<()> {
        io::stdout().lock().write_all(bytes)
    }

    /// Whether a question on stderr reaches a person.
    pub fn stderr_is_terminal() -> bool {
        io::stderr().is_terminal()
    }

    /// Whether stdout is a terminal (the TUI needs one).
    pub fn stdout_is_terminal() -> bool {
        io::stdout().is_terminal()
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "civikey",
    version,
    about = "Manage CiviCRM API keys from a terminal"
)]
pub struct Cli {
    /// Store address: sqlite:PATH, mysql://USER@HOST[:PORT]/DB, https://SITE, cv:PATH
    #[arg(long, global = true, value_name = "ADDRESS")]
    pub store: Option<String>,
    /// Profile from the config file ($CIVIKEY_CONFIG)
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// Open the store read-only: look, never change a key
    #[arg(long, global = true)]
    pub read_only: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print one new key (32 characters of [A-Za-z0-9] from the OS CSPRNG)
    Generate {
        /// Length, 20 to 32
        #[arg(long, default_value_t = KEY_LEN)]
        length: usize,
    },
    /// List contacts (keys masked)
    List {
        /// Id, email prefix, or name prefix
        #[arg(long)]
        search: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Hide deleted contacts
        #[arg(long)]
        no_deleted: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show one contact (key masked)
    Show {
        id: ContactId,
        #[arg(long)]
        json: bool,
    },
    /// Generate a key and assign it to a contact; prints only the new key on stdout
    ///
    /// With --ids-from FILE --out FILE: rotates every contact listed (one id per line) and
    /// writes the new keys to a new 0600 CSV file, never to the screen.
    Rotate {
        #[arg(required_unless_present = "ids_from")]
        id: Option<ContactId>,
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
        #[arg(long, conflicts_with = "ids_from")]
        json: bool,
        /// Bulk: a file of contact ids, one per line (# comments allowed)
        #[arg(long, value_name = "FILE", requires = "out", conflicts_with = "id")]
        ids_from: Option<PathBuf>,
        /// Bulk: the new CSV file for the keys (contact_id,display_name,api_key), created 0600
        #[arg(long, value_name = "FILE", requires = "ids_from")]
        out: Option<PathBuf>,
    },
    /// Assign a key given on stdin (for a key that must be kept, e.g. during a migration)
    Assign {
        id: ContactId,
        /// Read the key from stdin (hidden prompt on a terminal); required: keys never go in argv
        #[arg(long, required = true)]
        key_stdin: bool,
    },
    /// Print the audit journal, newest first
    Audit {
        /// Only this contact's records
        #[arg(long)]
        contact: Option<ContactId>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Remove a contact's key
    Revoke {
        id: ContactId,
        #[arg(long)]
        yes: bool,
    },
    /// List the store profiles of the config file (never their secrets)
    Profiles {
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff) on stdout
    Man,
    /// Import contacts from a CiviCRM contact export (CSV) into the local SQLite store
    ///
    /// Columns are matched by header name ("Contact ID" required; "Display Name", "Sort
    /// Name", "First Name", "Last Name", "Contact Type", "Email", "Is Deleted",
    /// "Organization Name", "Household Name" read; others ignored). Known ids are updated,
    /// new ones added; a re-run changes nothing. Empty cells never erase stored data; of
    /// rows sharing an id the first wins. API keys are never imported. One transaction:
    /// on error nothing is written. The report goes to stderr (stdout with --json).
    Import {
        /// The CSV file
        file: std::path::PathBuf,
        /// Print the report as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Create a new store: a SQLite file, or CiviCRM-shaped tables in an empty MySQL/MariaDB
    /// database (--store mysql://USER@HOST[:PORT]/DB)
    Seed {
        /// Fill with the bundled sample contacts (SQLite only)
        #[arg(long, conflicts_with = "synthetic")]
        sample: bool,
        /// Fill with N made-up contacts (names from many cultures, emails, some keys)
        #[arg(long, value_name = "N")]
        synthetic: Option<usize>,
        /// The same seed makes the same synthetic contacts
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// For mysql:// stores: the environment variable holding the password (else ~/.my.cnf)
        #[arg(long, value_name = "VAR")]
        password_env: Option<String>,
    },
}

/// Exit codes, stable for scripts.
pub mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const CONFLICT: u8 = 3;
    pub const NOT_FOUND: u8 = 4;
    pub const REFUSED: u8 = 5;
}

/// A failed command: what to tell the operator and which exit code scripts see.
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        let code = match e {
            StoreError::NotFound(_) => exit::NOT_FOUND,
            StoreError::Conflict => exit::CONFLICT,
            StoreError::ReadOnly(_) | StoreError::PermissionDenied(_) => exit::REFUSED,
            _ => exit::ERROR,
        };
        Failure::new(code, e.to_string())
    }
}

impl From<RotationError> for Failure {
    fn from(e: RotationError) -> Self {
        match e {
            RotationError::Store(s) => s.into(),
            RotationError::KeyInUse(_)
            | RotationError::Audit(_)
            | RotationError::TooLong { .. }
            | RotationError::ReadOnly
            | RotationError::Key(_) => Failure::new(exit::REFUSED, e.to_string()),
            RotationError::ChangedSinceSeen => Failure::new(exit::CONFLICT, e.to_string()),
            RotationError::ReadBackMismatch { .. } | RotationError::NoUniqueKey => {
                Failure::new(exit::ERROR, e.to_string())
            }
        }
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::new(exit::ERROR, format!("cannot write output: {e}"))
    }
}

pub fn report(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(f) => {
            out::note(format_args!("civikey: {}", f.message));
            ExitCode::from(f.code)
        }
    }
}

pub fn generate(length: usize) -> Result<(), Failure> {
    if !(MIN_MANUAL_LEN..=KEY_LEN).contains(&length) {
        return Err(Failure::new(
            exit::USAGE,
            format!(
                "--length must be {MIN_MANUAL_LEN} to {KEY_LEN} (civicrm_contact.api_key holds 32)"
            ),
        ));
    }
    let key = ApiKey::generate().map_err(|e| Failure::new(exit::ERROR, e.to_string()))?;
    out::secret_line(&key.expose()[..length])?;
    Ok(())
}

fn contact_json(c: &Contact) -> serde_json::Value {
    serde_json::json!({
        "id": c.id,
        "contact_type": c.contact_type.as_str(),
        "display_name": c.display_name.as_str(),
        "sort_name": c.sort_name.as_str(),
        "email": c.email.as_ref().map(SafeText::as_str),
        "is_deleted": c.is_deleted,
        "key": c.key.as_ref().map(|k| k.masked()),
        "cms_user": match c.cms {
            CmsLink::Linked { uf_id } => serde_json::json!(uf_id),
            CmsLink::None => serde_json::json!(false),
            CmsLink::Unknown => serde_json::Value::Null,
        },
    })
}

fn contact_line(c: &Contact) -> String {
    let name = if c.is_deleted {
        format!("[deleted] {}", c.display_name)
    } else {
        c.display_name.to_string()
    };
    format!(
        "{:>8}  {:<32}  {:<12}  {:<32}  {:<9}  {}",
        c.id,
        crate::sanitize::truncate_to_width(&name, 32),
        c.contact_type.truncated(12),
        c.email
            .as_ref()
            .map(|e| e.truncated(32))
            .unwrap_or_default(),
        c.key.as_ref().map_or_else(|| "none".into(), |k| k.masked()),
        match c.cms {
            CmsLink::Linked { .. } => "cms",
            CmsLink::None => "no-cms",
            CmsLink::Unknown => "cms?",
        }
    )
}

pub fn list(
    store: &mut dyn ContactStore,
    search: Option<&str>,
    limit: usize,
    no_deleted: bool,
    json: bool,
) -> Result<(), Failure> {
    let mut query = Query::new(search.unwrap_or(""), limit.clamp(1, 1000));
    query.include_deleted = !no_deleted;
    let page = store.search(&query)?;
    if json {
        let items: Vec<_> = page.contacts.iter().map(contact_json).collect();
        out::line(serde_json::Value::Array(items))?;
    } else {
        for c in &page.contacts {
            out::line(contact_line(c))?;
        }
        if page.next.is_some() {
            out::note(format_args!(
                "(more than {} contacts match; use --limit or a narrower --search)",
                page.contacts.len()
            ));
        }
    }
    Ok(())
}

pub fn show(store: &mut dyn ContactStore, id: ContactId, json: bool) -> Result<(), Failure> {
    let c = store.contact(id)?;
    if json {
        out::line(contact_json(&c))?;
    } else {
        out::line(contact_line(&c))?;
    }
    Ok(())
}

/// Asks on the terminal; refuses when there is no terminal to ask on.
fn confirm(question: &str) -> Result<(), Failure> {
    if !io::stdin().is_terminal() || !out::stderr_is_terminal() {
        return Err(Failure::new(
            exit::REFUSED,
            "not on a terminal, so no one can confirm: add --yes to proceed",
        ));
    }
    out::ask(format_args!("{question} [y/N]"))?;
    let mut answer = String::new();
    io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Failure::new(
            exit::REFUSED,
            "cancelled: nothing was written",
        ))
    }
}

fn describe(c: &Contact) -> String {
    let mut text = format!(
        "{} (id {}, {})",
        c.display_name.truncated(60),
        c.id,
        c.contact_type
    );
    if c.is_deleted {
        text.push_str(", DELETED");
    }
    if c.cms == CmsLink::None {
        text.push_str(", no CMS user");
    }
    text
}

pub fn rotate(
    store: &mut dyn ContactStore,
    journal: &mut Journal,
    id: ContactId,
    yes: bool,
    json: bool,
) -> Result<(), Failure> {
    let contact = store.contact(id)?;
    if !yes {
        let stops = match &contact.key {
            Some(k) => format!("Their current key {} will stop working.", k.masked()),
            None => "They have no key now.".into(),
        };
        let roles = match store.roles(id) {
            Ok(Some(roles)) if !roles.is_empty() => {
                let names: Vec<&str> = roles.iter().map(SafeText::as_str).collect();
                format!(" Roles: {}.", names.join(", "))
            }
            Ok(Some(_)) => " Roles: none.".into(),
            _ => String::new(),
        };
        confirm(&format!(
            "Assign a new key to {}?{roles} {stops}",
            describe(&contact)
        ))?;
    }
    let expectation = Expectation::Seen(contact.key.clone());
    let mut keys = OsKeySource;
    let new =
        ApiKey::generate_from(&mut keys).map_err(|e| Failure::new(exit::ERROR, e.to_string()))?;
    let done = rotation::assign(
        store,
        journal,
        &mut keys,
        id,
        &expectation,
        NewKey::Generated(new),
    )?;
    if json {
        let doc = zeroize::Zeroizing::new(
            serde_json::json!({
                "contact_id": id,
                "key": done.key.expose(),
                "fingerprint": journal.short_fingerprint(&done.key),
            })
            .to_string(),
        );
        out::secret_line(doc.as_str())?;
    } else {
        out::secret_line(done.key.expose())?;
    }
    out::note(format_args!(
        "civikey: assigned a new key to {}",
        describe(&done.contact)
    ));
    if let Some(w) = done.audit_warning {
        out::note(format_args!("civikey: warning: {w}"));
    }
    Ok(())
}

/// Reads a key from stdin: a hidden prompt on a terminal, else the first line, at most 4 KiB.
fn read_key_from_stdin(capacity: usize) -> Result<ApiKey, Failure> {
    let text = if io::stdin().is_terminal() {
        zeroize::Zeroizing::new(
            rpassword::prompt_password("Key (input hidden): ")
                .map_err(|e| Failure::new(exit::ERROR, format!("cannot read the key: {e}")))?,
        )
    } else {
        let mut line = zeroize::Zeroizing::new(String::new());
        io::Read::take(io::stdin().lock(), 4096)
            .read_line(&mut line)
            .map_err(|e| {
                Failure::new(exit::ERROR, format!("cannot read the key from stdin: {e}"))
            })?;
        line
    };
    ApiKey::parse_manual(&text, capacity).map_err(|e| {
        Failure::new(
            exit::REFUSED,
            format!("key refused: {e}; nothing was written"),
        )
    })
}

pub fn assign(
    store: &mut dyn ContactStore,
    journal: &mut Journal,
    id: ContactId,
) -> Result<(), Failure> {
    let contact = store.contact(id)?;
    let key = read_key_from_stdin(store.info().key_capacity)?;
    let mut keys = OsKeySource;
    let done = rotation::assign(
        store,
        journal,
        &mut keys,
        id,
        &Expectation::Seen(contact.key.clone()),
        NewKey::Given(key),
    )?;
    out::note(format_args!(
        "civikey: assigned the given key (fingerprint {}) to {}",
        journal.short_fingerprint(&done.key),
        describe(&done.contact)
    ));
    if let Some(w) = done.audit_warning {
        out::note(format_args!("civikey: warning: {w}"));
    }
    Ok(())
}

pub fn audit(
    journal: &Journal,
    contact: Option<ContactId>,
    limit: usize,
    json: bool,
) -> Result<(), Failure> {
    let entries = journal
        .entries(contact, limit.clamp(1, 100_000))
        .map_err(|e| Failure::new(exit::ERROR, e.to_string()))?;
    if json {
        let doc = serde_json::to_string(&entries)
            .map_err(|e| Failure::new(exit::ERROR, e.to_string()))?;
        out::line(doc)?;
        return Ok(());
    }
    for e in &entries {
        let outcome = match (&e.outcome, &e.reconciled) {
            (_, Some(r)) => format!("unknown->{r}"),
            (Some(o), None) => o.clone(),
            (None, None) => "in-flight".into(),
        };
        out::line(format_args!(
            "{}  {:<10} {:<15} {:>8}  {:<24} {:<6} {}->{}  {}{}",
            crate::ui::format_time(e.time),
            SafeText::new(&e.operator).truncated(10),
            SafeText::new(e.ssh_client.as_deref().unwrap_or("local")).truncated(15),
            e.contact_id,
            SafeText::new(&e.contact_name).truncated(24),
            e.action,
            e.old_fingerprint.as_deref().unwrap_or("none"),
            e.new_fingerprint.as_deref().unwrap_or("none"),
            outcome,
            e.error
                .as_deref()
                .map(|err| format!("  ({})", SafeText::new(err)))
                .unwrap_or_default(),
        ))?;
    }
    Ok(())
}

pub fn revoke(
    store: &mut dyn ContactStore,
    journal: &mut Journal,
    id: ContactId,
    yes: bool,
) -> Result<(), Failure> {
    let contact = store.contact(id)?;
    let Some(current) = &contact.key else {
        out::note(format_args!(
            "civikey: {} has no key; nothing to revoke",
            describe(&contact)
        ));
        return Ok(());
    };
    if !yes {
        confirm(&format!(
            "Revoke the key {} of {}?",
            current.masked(),
            describe(&contact)
        ))?;
    }
    rotation::revoke(store, journal, id, &Expectation::Seen(contact.key.clone()))?;
    out::note(format_args!(
        "civikey: revoked the key of {}",
        describe(&contact)
    ));
    Ok(())
}

pub fn profiles(config: Option<&crate::config::Config>, json: bool) -> Result<(), Failure> {
    let summaries = config.map(|c| c.summaries()).unwrap_or_default();
    if json {
        let items: Vec<_> = summaries
            .iter()
            .map(|p| {
                let secrets: serde_json::Map<String, serde_json::Value> = p
                    .secrets
                    .iter()
                    .map(|(what, from)| ((*what).to_string(), serde_json::json!(from.as_str())))
                    .collect();
                serde_json::json!({
                    "name": p.name.as_str(),
                    "kind": p.kind,
                    "address": p.address.as_str(),
                    "secrets": secrets,
                    "default": p.is_default,
                })
            })
            .collect();
        out::line(serde_json::Value::Array(items))?;
        return Ok(());
    }
    if summaries.is_empty() {
        out::note("civikey: no profiles (no config file, or it defines none); see assets/config.example.toml");
    }
    for p in &summaries {
        let secrets: Vec<String> = p
            .secrets
            .iter()
            .map(|(what, from)| format!("{what} from {from}"))
            .collect();
        out::line(format_args!(
            "{}{:<16} {:<13} {}{}",
            if p.is_default { "* " } else { "  " },
            p.name.as_str(),
            p.kind,
            p.address.as_str(),
            if secrets.is_empty() {
                String::new()
            } else {
                format!("  ({})", secrets.join(", "))
            }
        ))?;
    }
    Ok(())
}

/// `rotate --ids-from FILE --out FILE`: every listed contact through the full workflow.
pub fn rotate_bulk(
    store: &mut dyn ContactStore,
    journal: &mut Journal,
    ids_from: &Path,
    out_path: &Path,
    yes: bool,
) -> Result<(), Failure> {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    let text = std::fs::read_to_string(ids_from).map_err(|e| {
        Failure::new(
            exit::ERROR,
            format!("cannot read {}: {e}", ids_from.display()),
        )
    })?;
    let ids = crate::bulk::parse_ids(&text)
        .map_err(|e| Failure::new(exit::USAGE, format!("{}: {e}", ids_from.display())))?;
    if ids.is_empty() {
        return Err(Failure::new(
            exit::USAGE,
            format!("{} lists no contact ids", ids_from.display()),
        ));
    }
    // Validated in one call per page of ids where the store can (REST, cv).
    let items: Vec<_> = store
        .contacts(&ids)?
        .into_iter()
        .map(|contact| (contact.id, Expectation::Seen(contact.key)))
        .collect();
    if !yes {
        confirm(&format!(
            "Rotate the keys of {} contacts? Their current keys will stop working; the new keys go to {}",
            items.len(),
            out_path.display()
        ))?;
    }
    let mut out =
        crate::bulk::OutFile::create(out_path).map_err(|e| Failure::new(exit::REFUSED, e))?;
    // Ctrl-C, SIGTERM and SIGHUP stop the run between two contacts, never inside one.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| Failure::new(exit::ERROR, format!("cannot watch signals: {e}")))?;
    }
    let mut keys = OsKeySource;
    let results = crate::bulk::rotate_many(
        store,
        journal,
        &mut keys,
        &items,
        &mut out,
        &stop,
        &mut |i, n, r| {
            let detail = match &r.outcome {
                crate::bulk::BulkOutcome::Failed(e) => format!(": {e}"),
                _ => String::new(),
            };
            out::note(format_args!(
                "[{i}/{n}] contact {} {}: {}{detail}",
                r.id,
                r.name.truncated(40),
                r.outcome.label()
            ));
        },
    );
    let count = |label: &str| {
        results
            .iter()
            .filter(|r| r.outcome.label() == label)
            .count()
    };
    let (done, conflict, failed, skipped) = (
        count("done"),
        count("conflict"),
        count("failed"),
        count("skipped"),
    );
    out::note(format_args!(
        "civikey: {done} rotated (keys in {}), {conflict} conflict, {failed} failed, {skipped} not attempted",
        out_path.display()
    ));
    if skipped > 0 {
        Err(Failure::new(
            exit::ERROR,
            "interrupted: the contacts not attempted were left untouched",
        ))
    } else if failed > 0 {
        Err(Failure::new(
            exit::ERROR,
            format!("{failed} contacts failed; see above"),
        ))
    } else if conflict > 0 {
        Err(Failure::new(
            exit::CONFLICT,
            format!("{conflict} contacts changed meanwhile and were not rotated"),
        ))
    } else {
        Ok(())
    }
}

pub fn completions(shell: clap_complete::Shell) -> Result<(), Failure> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    // Into a buffer first: clap_complete panics on a write error (e.g. `| head`).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "civikey", &mut script);
    out::generated(&script)?;
    Ok(())
}

pub fn man() -> Result<(), Failure> {
    let cmd = <Cli as clap::CommandFactory>::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut page)?;
    out::generated(&page)?;
    Ok(())
}
