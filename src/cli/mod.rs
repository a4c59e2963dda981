//! Command-line definitions (clap) and the non-interactive commands.
//!
//! Data goes to stdout, everything else (prompts, progress, errors) to stderr. A new key
//! reaches stdout only from a command whose job is to print it. No command takes a key
//! or a password as an argument.

pub mod check;
pub mod config_cmd;
pub mod fleet;
pub mod fleet_check;
pub mod manpage;
pub mod person;
pub mod reference;
pub mod whose;

use std::io::{self, BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::audit::Journal;
use crate::key::{ApiKey, OsKeySource, KEY_LEN, MIN_MANUAL_LEN};
use crate::rotation::{self, Expectation, NewKey, RotationError};
use crate::sanitize::{fit_to_width, SafeText};
use crate::store::{AccountState, CmsLink, Contact, ContactId, ContactStore, Standing, StoreError};

pub use check::{check, check_json};
pub use whose::whose;

/// The only code that writes to stdout and stderr outside the TUI (which has its own, in
/// `terminal.rs`). clippy.toml forbids `print!`, `println!`, `eprint!`, `eprintln!`, `dbg!`,
/// `io::stdout` and `io::stderr` everywhere else in the library and the binary, so no text can
/// reach the operator's terminal around the sanitizer.
pub mod out {
    #![allow(clippy::disallowed_methods)]

    use std::fmt::Display;
    use std::io::{self, IsTerminal, Write};
    use std::sync::atomic::{AtomicBool, Ordering};

    use crate::sanitize::SafeText;

    static QUIET_BROKEN_PIPE: AtomicBool = AtomicBool::new(false);

    /// For commands that only read (list, show, audit, ...): when the reader of stdout goes
    /// away (`civikey list | head`), end at once and quietly, killed by SIGPIPE as coreutils
    /// are. Commands that print a newly assigned key never call this: [`secret_line`]
    /// always reports the failure, so they can act on an undelivered key.
    pub fn end_quietly_on_broken_pipe() {
        QUIET_BROKEN_PIPE.store(true, Ordering::Relaxed);
    }

    fn on_stdout(result: io::Result<()>) -> io::Result<()> {
        if let Err(e) = &result {
            if e.kind() == io::ErrorKind::BrokenPipe && QUIET_BROKEN_PIPE.load(Ordering::Relaxed) {
                // SAFETY: restoring the default action of SIGPIPE and raising it on this
                // process; nothing is left to clean up for a command that only reads.
                unsafe {
                    libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                    libc::raise(libc::SIGPIPE);
                }
                // Only reached if SIGPIPE is blocked: the shell's status for it.
                std::process::exit(128 + libc::SIGPIPE);
            }
        }
        result
    }

    /// One line of data on stdout. The whole line passes the sanitizer, so nothing that went
    /// into it (a name from a store, a journal field, a path) can act on the terminal; text
    /// that is already SafeText comes out unchanged.
    pub fn line(text: impl Display) -> io::Result<()> {
        let text = SafeText::new(&text.to_string());
        on_stdout(writeln!(io::stdout().lock(), "{text}"))
    }

    /// Many lines of data on stdout, each sanitized as [`line`] does, through one buffer:
    /// a `check` of 50,000 findings into a pipe makes a write per 64 KiB, not per line.
    pub fn lines(texts: impl IntoIterator<Item = String>) -> io::Result<()> {
        let mut out = io::BufWriter::with_capacity(64 * 1024, io::stdout().lock());
        for text in texts {
            // Most lines need no change: written as they are, not copied into a SafeText.
            if crate::sanitize::is_inert(&text) {
                on_stdout(writeln!(out, "{text}"))?;
            } else {
                on_stdout(writeln!(out, "{}", SafeText::new(&text)))?;
            }
        }
        on_stdout(out.flush())
    }

    /// One JSON document on stdout, on one line: the text in it as it came (lossless, see
    /// [`SafeText::lossless_json`]), every control, bidi and invisible character escaped
    /// (`\uXXXX`), so the line is inert on a terminal and exact for a script.
    pub fn json(doc: &serde_json::Value) -> io::Result<()> {
        line(crate::sanitize::inert_json(&doc.to_string()))
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

    /// A question on stderr, flushed before the answer is read: each of `lines` sanitized
    /// on its own (the data in them made inert, the line breaks between them kept), the
    /// last one without a newline.
    pub fn ask(lines: &[String]) -> io::Result<()> {
        let text: Vec<String> = lines.iter().map(|l| SafeText::new(l).to_string()).collect();
        let mut err = io::stderr().lock();
        write!(err, "{} ", text.join("\n"))?;
        err.flush()
    }

    /// A line holding a key on stdout (the key alone, or a JSON document with it). It is not
    /// copied into a SafeText, whose copy of the key would not be wiped; keys are
    /// `[A-Za-z0-9]` (generated, or validated on entry), so the line is checked instead and
    /// refused if anything but printable ASCII slipped in.
    ///
    /// The line is flushed before this returns, and SIGPIPE is ignored first, so a full disk
    /// or a closed pipe comes back as an error (for the caller to put the old key back)
    /// rather than ending the process with the key delivered nowhere.
    pub fn secret_line(text: &str) -> io::Result<()> {
        if !text.chars().all(|c| c == ' ' || c.is_ascii_graphic()) {
            return Err(io::Error::other(
                "refused to print a key line holding characters other than printable ASCII",
            ));
        }
        ignore_sigpipe();
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "{text}")?;
        stdout.flush()
    }

    /// From here on a closed pipe is a write error, never a SIGPIPE death: commands that
    /// change keys call this so that a key is never lost to a signal between a store write
    /// and its delivery.
    pub fn ignore_sigpipe() {
        // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    }

    /// Documents civikey generates from its own definitions (shell completions, the man page):
    /// trusted text, written as is.
    pub fn generated(bytes: &[u8]) -> io::Result<()> {
        on_stdout(io::stdout().lock().write_all(bytes))
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
    about = "Manage CiviCRM API keys from a terminal",
    long_about = "Manage CiviCRM API keys from a terminal. With no command, civikey opens its \
interactive screen (press ? there for the keys); the commands below are for scripts.",
    after_help = crate::cli::reference::after_help()
)]
pub struct Cli {
    /// Store address: sqlite:PATH, mysql://USER@HOST[:PORT]/DB, https://SITE, cv:PATH
    #[arg(long, global = true, value_name = "ADDRESS")]
    pub store: Option<String>,
    /// Profile from the config file ($CIVIKEY_CONFIG; `civikey profiles` lists them)
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        add = clap_complete::ArgValueCandidates::new(crate::cli::config_cmd::profile_candidates)
    )]
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
    ///
    /// With --all-profiles: every profile of the config file, with a PROFILE column (a
    /// person across sites: --email ADDRESS --all-profiles).
    List {
        /// Id, email prefix, or name prefix
        #[arg(long)]
        search: Option<String>,
        /// The contacts whose primary email is this address (whole, case ignored)
        #[arg(long, value_name = "ADDRESS", conflicts_with = "search")]
        email: Option<String>,
        /// Search every profile of the config file (with --email or --search)
        #[arg(long)]
        all_profiles: bool,
        /// Also a word inside a name, as the screen's Tab does (slower on a big site)
        #[arg(long, requires = "search")]
        deep: bool,
        /// At most this many contacts (1 to 1000)
        #[arg(long, default_value_t = 50, value_parser = limit_parser(1000))]
        limit: usize,
        /// Hide deleted contacts
        #[arg(long)]
        no_deleted: bool,
        /// Print a JSON array instead of a table
        #[arg(long)]
        json: bool,
        /// No header row, even on a terminal (pipes never get one)
        #[arg(long)]
        no_header: bool,
    },
    /// Show one contact (key masked)
    Show {
        /// The contact id
        id: ContactId,
        /// Print a JSON object instead of the detail view
        #[arg(long)]
        json: bool,
    },
    /// Generate a key and assign it to a contact; prints only the new key on stdout
    ///
    /// With --ids-from FILE --out FILE: rotates every contact listed (one id per line) and
    /// writes the new keys to a new 0600 CSV file, never to the screen. With --email
    /// ADDRESS --out FILE [--all-profiles]: every key of the contacts whose primary email
    /// is ADDRESS, on every profile, after one confirm; the file gets a profile column.
    Rotate {
        /// The contact id
        #[arg(required_unless_present_any = ["ids_from", "email"])]
        id: Option<ContactId>,
        /// Every key of the contacts whose primary email is this address
        #[arg(long, value_name = "ADDRESS", requires = "out", conflicts_with_all = ["id", "ids_from", "json"])]
        email: Option<String>,
        /// With --email: on every profile of the config file
        #[arg(long, requires = "email")]
        all_profiles: bool,
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
        /// Print a JSON object (contact_id, key, fingerprint, handover {api_endpoint,
        /// needs_site_key}, login_check when the profile has a site) instead of the key alone.
        /// Bulk (with --ids-from, instead of --out): one JSON line per rotated contact
        /// (contact_id, display_name, email, key, fingerprint, handover) on stdout, which must
        /// not be a terminal (a pipe to a vault)
        #[arg(long, conflicts_with = "out")]
        json: bool,
        /// Bulk: a file of contact ids, one per line (# comments allowed); - reads stdin. The
        /// keys go to --out FILE, or with --json to stdout
        #[arg(long, value_name = "FILE", conflicts_with = "id")]
        ids_from: Option<PathBuf>,
        /// Bulk: the new CSV file for the keys (contact_id,display_name,email,api_key, and
        /// profile with --email), created 0600 in a folder that exists
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Assign a key given on stdin (for a key that must be kept, e.g. during a migration)
    Assign {
        /// The contact id
        id: ContactId,
        /// Read the key from stdin (hidden prompt on a terminal); required: keys never go in argv
        #[arg(long, required = true)]
        key_stdin: bool,
        /// Replace the contact's current key without asking (needed without a terminal)
        #[arg(long)]
        yes: bool,
    },
    /// Print the audit journal, newest first
    Audit {
        /// Only this contact's records
        #[arg(long)]
        contact: Option<ContactId>,
        /// Records of every store in the journal, not only this one's (adds a store column)
        #[arg(long)]
        all_stores: bool,
        /// At most this many records (1 to 100000)
        #[arg(long, default_value_t = 100, value_parser = limit_parser(100_000))]
        limit: usize,
        /// Only records written since then: RFC 3339 (2026-12-07T14:02:00Z), a UTC date
        /// (2026-12-07) or an age (90m, 12h, 7d, 2w)
        #[arg(long, value_name = "WHEN", value_parser = |text: &str| crate::timefmt::parse_since(text, crate::timefmt::unix_now()))]
        since: Option<i64>,
        /// Print a JSON array instead of a table (--format json)
        #[arg(long, conflicts_with = "format")]
        json: bool,
        /// table, json (one array) or jsonl (one object a line, for log shippers); times
        /// in JSON as unix seconds and RFC 3339
        #[arg(long, value_enum, default_value_t = AuditFormat::Table)]
        format: AuditFormat,
        /// No header row, even on a terminal (pipes never get one)
        #[arg(long)]
        no_header: bool,
    },
    /// Remove a contact's key
    ///
    /// With --email ADDRESS [--all-profiles]: every key of the contacts whose primary email
    /// is ADDRESS (on every profile), after one confirm listing each.
    Revoke {
        /// The contact id
        #[arg(required_unless_present = "email")]
        id: Option<ContactId>,
        /// Every key of the contacts whose primary email is this address
        #[arg(long, value_name = "ADDRESS", conflicts_with = "id")]
        email: Option<String>,
        /// With --email: on every profile of the config file
        #[arg(long, requires = "email")]
        all_profiles: bool,
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
    },
    /// Audit every key the store holds: duplicates, weak keys, keys on contacts that should
    /// not hold one, old keys. Exit code 6 when there are findings (for cron and monitoring)
    ///
    /// Reads only the contacts that hold a key. Codes: duplicate, weak, trashed,
    /// user_blocked, no_user_account, no_api_login_permission, old, age_unknown (the last
    /// two with --max-age). Keys are never printed, only masks.
    Check {
        /// Also report keys set longer ago than this (90d, 12w; from the journal) and keys
        /// whose age is unknown (never set by civikey)
        #[arg(long, value_name = "AGE", value_parser = crate::health::parse_max_age)]
        max_age: Option<u32>,
        /// One JSON object on stdout: {"findings": [...], "summary": {...}}
        #[arg(long)]
        json: bool,
        /// No header row, even on a terminal (pipes never get one)
        #[arg(long, conflicts_with = "json")]
        no_header: bool,
        /// Check every profile of the config file, 64 at a time: one line per profile (with
        /// --json one object per line) and a summary; exit 6 when any has findings, 1 when
        /// one could not be checked and none has findings
        #[arg(long, conflicts_with = "no_header")]
        all_profiles: bool,
        /// With --all-profiles: give up on a profile not checked within this long (90, 90s,
        /// 5m); the others go on
        #[arg(long, value_name = "SECONDS", default_value = "300", requires = "all_profiles", value_parser = crate::cli::fleet::parse_timeout)]
        timeout: std::time::Duration,
        /// With --all-profiles: how many profiles are checked at once (1 to 256)
        #[arg(long, value_name = "N", default_value_t = crate::cli::fleet::CONCURRENT_PROFILES, requires = "all_profiles", value_parser = limit_parser(256))]
        jobs: usize,
    },
    /// Whose key is this? Reads one key from stdin (hidden prompt on a terminal) and names
    /// its holders, read-only; the lookup is journaled with the key's fingerprint only
    Whose {
        /// Read the key from stdin; required: keys never go in argv
        #[arg(long, required = true)]
        key_stdin: bool,
        /// Look on every profile of the config file (one line per profile)
        #[arg(long)]
        all_profiles: bool,
    },
    /// List the store profiles of the config file (never their secrets)
    Profiles {
        /// Print a JSON array instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Where the config file is, write a commented one, or check it
    #[command(subcommand)]
    Config(crate::cli::config_cmd::ConfigCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    ///
    /// The script asks civikey at each Tab, so it completes commands, their own flags, flag
    /// values and the profile names of the config as it is then.
    Completions {
        /// The shell the script is for
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout
    Man,
    /// Import contacts from a CiviCRM contact export (CSV) into the local SQLite store
    ///
    /// Columns are matched by header name ("Contact ID" required; "Display Name", "Sort
    /// Name", "First Name", "Last Name", "Contact Type", "Email", "Is Deleted",
    /// "Organization Name", "Household Name" read; others ignored). Known ids are updated,
    /// new ones added; a re-run changes nothing. Empty cells never erase stored data; of
    /// rows sharing an id the first wins. API keys are never imported. One transaction:
    /// on error nothing is written. A row with more cells than the header is skipped; a
    /// file separated by semicolons or tabs is read as such. Exit 1 when rows were
    /// skipped. The report goes to stderr (stdout with --json).
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

/// How `civikey audit` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditFormat {
    Table,
    Json,
    Jsonl,
}

/// A `--limit` from 1 to `max`: anything else is a usage error, as the help says.
fn limit_parser(max: u64) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..=max)
}

/// Exit codes, stable for scripts.
pub mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const CONFLICT: u8 = 3;
    pub const NOT_FOUND: u8 = 4;
    pub const REFUSED: u8 = 5;
    /// `check` found something (the findings are on stdout).
    pub const FINDINGS: u8 = 6;
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

    /// An exit code whose reason was already told (`check`'s summary): nothing more.
    pub fn quiet(code: u8) -> Self {
        Failure::new(code, String::new())
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
            RotationError::ChangedSinceSeen | RotationError::ReplacedMeanwhile => {
                Failure::new(exit::CONFLICT, e.to_string())
            }
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
            if !f.message.is_empty() {
                out::note(format_args!("civikey: {}", f.message));
            }
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
    // Text as the store holds it (`out::json` escapes what could act on a terminal);
    // `cms_user` is one type: a bool, or null when the store cannot tell.
    serde_json::json!({
        "id": c.id,
        "contact_type": c.contact_type.lossless_json(),
        "display_name": c.display_name.lossless_json(),
        "sort_name": c.sort_name.lossless_json(),
        "email": c.email.as_ref().map(SafeText::lossless_json),
        "is_deleted": c.is_deleted,
        "key": c.key.as_ref().map(|k| k.masked()),
        "cms_user": match c.cms {
            CmsLink::Linked { .. } => serde_json::json!(true),
            CmsLink::None => serde_json::json!(false),
            CmsLink::Unknown => serde_json::Value::Null,
        },
        "cms_user_id": match c.cms {
            CmsLink::Linked { uf_id } => serde_json::json!(uf_id),
            _ => serde_json::Value::Null,
        },
    })
}

pub use crate::timefmt::rfc3339;

pub use crate::wording::plural;

pub use crate::timefmt::unix_now;

/// Whether a table gets a header row: on a terminal, unless `--no-header`.
pub fn wants_header(no_header: bool) -> bool {
    !no_header && out::stdout_is_terminal()
}

fn list_header() -> String {
    format!(
        "{:>8}  {:<32}  {:<12}  {:<32}  {:<9}  {}",
        "ID", "NAME", "TYPE", "EMAIL", "KEY", "CMS"
    )
}

fn contact_line(c: &Contact) -> String {
    let name = if c.is_deleted {
        format!("[deleted] {}", c.display_name)
    } else {
        c.display_name.to_string()
    };
    format!(
        "{:>8}  {}  {}  {}  {:<9}  {}",
        c.id,
        fit_to_width(&name, 32),
        c.contact_type.fitted(12),
        fit_to_width(c.email.as_ref().map_or("", |e| e.as_str()), 32),
        c.key.as_ref().map_or_else(|| "none".into(), |k| k.masked()),
        match c.cms {
            CmsLink::Linked { .. } => "cms",
            CmsLink::None => "no-cms",
            CmsLink::Unknown => "cms?",
        }
    )
}

/// What `civikey list` asks for.
pub struct ListOptions<'a> {
    pub search: Option<&'a str>,
    /// The contacts whose primary email is this address (`Query::email`).
    pub email: Option<&'a str>,
    /// A word inside a name too (`Query::deep`).
    pub deep: bool,
    pub limit: usize,
    pub no_deleted: bool,
    pub json: bool,
    pub header: bool,
}

pub fn list(store: &mut dyn ContactStore, options: &ListOptions) -> Result<(), Failure> {
    let ListOptions {
        search,
        email,
        deep,
        limit,
        no_deleted,
        json,
        header,
    } = *options;
    let mut query = person::person_query(email, search, limit.clamp(1, 1000));
    query.include_deleted = !no_deleted;
    query.deep = deep;
    let page = store.search(&query)?;
    if json {
        let items: Vec<_> = page.contacts.iter().map(contact_json).collect();
        out::json(&serde_json::Value::Array(items))?;
    } else {
        if header {
            out::line(list_header())?;
        }
        for c in &page.contacts {
            out::line(contact_line(c))?;
        }
        if page.next.is_some() {
            out::note(format_args!(
                "(more than {}; use --limit or a narrower --search)",
                plural(page.contacts.len(), "contact matches", "contacts match")
            ));
        }
    }
    Ok(())
}

/// The detail view: the contact, its key and who set it (from the journal, when it can be
/// read), its user account and roles, and what the operator must know (crate::assess).
pub fn show(
    store: &mut dyn ContactStore,
    journal: Option<&Journal>,
    id: ContactId,
    json: bool,
) -> Result<(), Failure> {
    let c = store.contact(id)?;
    // A store that cannot tell says so (roles_unknown); it never stops the view.
    let standing = store.standing(id).unwrap_or(Standing::UNKNOWN);
    let warnings = crate::assess::assess(&c, &standing);
    let set = c
        .key
        .as_ref()
        .and_then(|_| journal?.last_set(id).ok().flatten());
    let user = match &standing.account {
        AccountState::Account(u) => Some(u),
        _ => None,
    };
    if json {
        let mut doc = contact_json(&c);
        doc["key"] = match &c.key {
            None => serde_json::Value::Null,
            Some(k) => serde_json::json!({
                "masked": k.masked(),
                "set_at": set.as_ref().map(|(time, _)| *time),
                "set_at_rfc3339": set.as_ref().map(|(time, _)| rfc3339(*time)),
                "set_by": set.as_ref().map(|(_, by)| by.as_str()),
            }),
        };
        doc["user"] = match (&standing.account, user) {
            (_, Some(u)) => {
                serde_json::json!({"id": u.id, "name": u.name.lossless_json(), "active": u.active})
            }
            (AccountState::NoAccount, None) => serde_json::json!(false),
            _ => serde_json::Value::Null,
        };
        doc["roles"] = match &standing.roles {
            Some(roles) => serde_json::json!(roles
                .iter()
                .map(|r| serde_json::json!({"name": r.name.as_str(), "grants_api_login": r.grants_api_login}))
                .collect::<Vec<_>>()),
            None => serde_json::Value::Null,
        };
        doc["warnings"] = serde_json::json!(warnings
            .iter()
            .map(|w| serde_json::json!({"code": w.code.as_str(), "text": w.text}))
            .collect::<Vec<_>>());
        out::json(&doc)?;
        return Ok(());
    }
    let row = |label: &str, value: &str| out::line(format_args!("{label:<9} {value}"));
    row("Contact", &format!("{} (id {})", c.display_name, c.id))?;
    row("Type", c.contact_type.as_str())?;
    row("Email", c.email.as_ref().map_or("none", SafeText::as_str))?;
    row("State", if c.is_deleted { "in the trash" } else { "live" })?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    row(
        "Key",
        &match (&c.key, &set) {
            (None, _) => "none".to_string(),
            (Some(k), Some((time, by))) => format!(
                "{}, set by civikey {} by {} ({} ago)",
                k.masked(),
                crate::timefmt::format_time(*time),
                SafeText::new(by),
                crate::timefmt::format_age(now, *time)
            ),
            (Some(k), None) => format!("{}, not set by civikey", k.masked()),
        },
    )?;
    row("User", &account_text(&standing))?;
    row("Roles", &roles_text(&standing))?;
    for w in &warnings {
        row("Warning", &format!("[{}] {}", w.code.as_str(), w.text))?;
    }
    Ok(())
}

fn account_text(standing: &Standing) -> String {
    match &standing.account {
        AccountState::Account(u) => format!(
            "{} (id {}), {}",
            u.name,
            u.id,
            if u.active { "active" } else { "BLOCKED" }
        ),
        AccountState::NoAccount => "none".to_string(),
        AccountState::Unknown => "the store cannot tell".to_string(),
        AccountState::Hidden => crate::wording::users_hidden(),
    }
}

fn roles_text(standing: &Standing) -> String {
    match &standing.roles {
        Some(roles) if roles.is_empty() => "none".to_string(),
        Some(roles) => roles
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        None => "the store cannot tell".to_string(),
    }
}

/// Asks on the terminal; refuses when there is no terminal to ask on. `question` is one
/// line, or several (`lines`): each is sanitized on its own, so a name's control characters
/// stay inert while the question keeps its line breaks.
fn confirm(question: &str) -> Result<(), Failure> {
    confirm_lines(vec![question.to_string()])
}

fn confirm_lines(mut lines: Vec<String>) -> Result<(), Failure> {
    if !io::stdin().is_terminal() || !out::stderr_is_terminal() {
        return Err(Failure::new(
            exit::REFUSED,
            "not on a terminal, so no one can confirm: add --yes to proceed",
        ));
    }
    if let Some(last) = lines.last_mut() {
        last.push_str(" [y/N]");
    }
    out::ask(&lines)?;
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
    // A store that cannot tell says so (roles_unknown, needs_site_key null).
    let standing = store.standing(id).unwrap_or(Standing::UNKNOWN);
    if !yes {
        let stops = match &contact.key {
            Some(k) => format!("Their current key {} will stop working.", k.masked()),
            None => "They have no key now.".into(),
        };
        let mut question = vec![format!(
            "Assign a new key to {}? User: {}. Roles: {}.",
            describe(&contact),
            account_text(&standing),
            roles_text(&standing)
        )];
        for w in crate::assess::assess(&contact, &standing) {
            question.push(format!("  warning [{}]: {}", w.code.as_str(), w.text));
        }
        question.push(stops);
        confirm_lines(question)?;
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
    // Once, never retried; a failure says what to fix and undoes nothing.
    let site = store.login_site();
    let login_check = site
        .as_ref()
        .map(|site| crate::login_check::check(site, &done.key, id));
    let handover = crate::handover::Handover::new(site.as_ref(), &done.contact, &standing);
    let delivered = if json {
        let mut doc = serde_json::json!({
            "contact_id": id,
            "key": done.key.expose(),
            "fingerprint": journal.short_fingerprint(&done.key),
            "handover": handover.to_json(),
        });
        if let Some(check) = &login_check {
            doc["login_check"] = check.to_json();
        }
        out::secret_line(ascii_json(&doc).as_str())
    } else {
        out::secret_line(done.key.expose())
    };
    if let Err(e) = delivered {
        // Nobody got the new key: the old one goes back rather than leaving the contact
        // with a key no one holds.
        let reason = format!("stdout could not be written ({e})");
        let message = match rotation::put_back(store, journal, &mut keys, done, &reason) {
            Ok(message) | Err(message) => message,
        };
        return Err(Failure::new(exit::ERROR, message));
    }
    out::note(format_args!(
        "civikey: assigned a new key to {}",
        describe(&done.contact)
    ));
    if let Some(w) = done.audit_warning {
        out::note(format_args!("civikey: warning: {w}"));
    }
    note_login_check(login_check.as_ref());
    for line in handover.lines() {
        out::note(format_args!("civikey: {line}"));
    }
    Ok(())
}

/// `doc` as one line of printable ASCII, as [`out::secret_line`] requires: every character
/// outside ASCII (a site's words, a `…` where a long reason was cut) written as a JSON
/// `\uXXXX` escape, which every JSON reader turns back into the character. Without it a
/// login check's detail made the key line unprintable, and the new key was taken back.
fn ascii_json(doc: &serde_json::Value) -> zeroize::Zeroizing<String> {
    let text = zeroize::Zeroizing::new(doc.to_string());
    let mut out = zeroize::Zeroizing::new(String::with_capacity(text.len()));
    for c in text.chars() {
        // DEL too: it is ASCII, but no printable line may hold it.
        if c.is_ascii() && !c.is_ascii_control() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// The login check on stderr; a failure is a warning: the key stays assigned.
fn note_login_check(check: Option<&crate::login_check::LoginCheck>) {
    match check {
        Some(check) if check.ok => {
            out::note(format_args!("civikey: login check: {}", check.detail))
        }
        Some(check) => out::note(format_args!(
            "civikey: warning: login check: {} (the key stays assigned)",
            check.detail
        )),
        None => {}
    }
}

/// One secret line: a hidden `prompt` on a terminal, else the first line of stdin (at most
/// 4 KiB), zeroized when dropped.
fn read_secret_line(prompt: &str) -> Result<zeroize::Zeroizing<String>, Failure> {
    if io::stdin().is_terminal() {
        return Ok(zeroize::Zeroizing::new(
            rpassword::prompt_password(prompt)
                .map_err(|e| Failure::new(exit::ERROR, format!("cannot read the key: {e}")))?,
        ));
    }
    let mut line = zeroize::Zeroizing::new(String::new());
    io::Read::take(io::stdin().lock(), 4096)
        .read_line(&mut line)
        .map_err(|e| Failure::new(exit::ERROR, format!("cannot read the key from stdin: {e}")))?;
    Ok(line)
}

/// Reads a key from stdin: a hidden prompt on a terminal, else the first line, at most 4 KiB.
/// Refused as `check` would flag it: a key that is valid in form but easy to guess (the
/// weak-key rules of `crate::health`, the one definition `check` uses too).
fn read_key_from_stdin(capacity: usize) -> Result<ApiKey, Failure> {
    let text = read_secret_line("Key (input hidden): ")?;
    let key = ApiKey::parse_manual(&text, capacity).map_err(|e| {
        Failure::new(
            exit::REFUSED,
            format!("key refused: {e}; nothing was written"),
        )
    })?;
    if let Some((rule, why)) = crate::health::weakness(&key) {
        return Err(Failure::new(
            exit::REFUSED,
            format!(
                "key refused: weak ({}: {why}), as `civikey check` would report it; nothing was written. `civikey rotate` makes a strong one",
                rule.as_str()
            ),
        ));
    }
    Ok(key)
}

pub fn assign(
    store: &mut dyn ContactStore,
    journal: &mut Journal,
    id: ContactId,
    yes: bool,
) -> Result<(), Failure> {
    let contact = store.contact(id)?;
    if !store.info().writable {
        // Before the key is asked for: it could not be written anyway.
        return Err(RotationError::ReadOnly.into());
    }
    let question = contact.key.as_ref().filter(|_| !yes).map(|current| {
        format!(
            "Replace the key {} of {} with the given key? The current key will stop working.",
            current.masked(),
            describe(&contact)
        )
    });
    // On a terminal the question comes first, as in `rotate`; from a pipe the key is read
    // and checked first (its faults are named), then the missing --yes is.
    let typed = io::stdin().is_terminal();
    if let (true, Some(question)) = (typed, &question) {
        confirm(question)?;
    }
    let key = read_key_from_stdin(store.info().key_capacity)?;
    if let (false, Some(question)) = (typed, &question) {
        confirm(question)?;
    }
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
    if let Some(w) = &done.audit_warning {
        out::note(format_args!("civikey: warning: {w}"));
    }
    let login_check = store
        .login_site()
        .map(|site| crate::login_check::check(&site, &done.key, id));
    note_login_check(login_check.as_ref());
    Ok(())
}

/// What `civikey audit` asks for.
pub struct AuditOptions {
    pub contact: Option<ContactId>,
    pub all_stores: bool,
    /// Unix seconds: only records written since.
    pub since: Option<i64>,
    pub limit: usize,
    pub format: AuditFormat,
    pub header: bool,
}

pub fn audit(journal: &Journal, options: &AuditOptions) -> Result<(), Failure> {
    let AuditOptions {
        contact,
        all_stores,
        since,
        limit,
        format,
        header,
    } = *options;
    let entries = journal
        .entries_since(contact, all_stores, since, limit.clamp(1, 100_000))
        .map_err(|e| Failure::new(exit::ERROR, e.to_string()))?;
    // Bulk rotations journaled done whose key is missing from their out file.
    let undelivered = crate::bulk::undelivered(journal, &entries);
    if format != AuditFormat::Table {
        let mut items = Vec::with_capacity(entries.len());
        for e in &entries {
            let mut item =
                serde_json::to_value(e).map_err(|e| Failure::new(exit::ERROR, e.to_string()))?;
            item["key_not_delivered"] = serde_json::json!(undelivered.contains(&e.id));
            item["time_rfc3339"] = serde_json::json!(rfc3339(e.time));
            items.push(item);
        }
        if format == AuditFormat::Jsonl {
            for item in &items {
                out::json(item)?;
            }
        } else {
            out::json(&serde_json::Value::Array(items))?;
        }
        return Ok(());
    }
    // In full: two stores' locations often share a long beginning; the widest sets the column.
    let store_width = if all_stores {
        entries
            .iter()
            .map(|e| SafeText::new(&e.store).width())
            .max()
            .unwrap_or(0)
            .max("STORE".len())
    } else {
        0
    };
    if header {
        out::line(audit_header(store_width))?;
    }
    for e in &entries {
        let mut outcome = match (&e.outcome, &e.reconciled) {
            (_, Some(r)) => format!("unknown->{r}"),
            (Some(o), None) => o.clone(),
            (None, None) => "in-flight".into(),
        };
        let store = if all_stores {
            format!("{}  ", SafeText::new(&e.store).fitted(store_width))
        } else {
            String::new()
        };
        if undelivered.contains(&e.id) {
            outcome.push_str(
                " KEY-NOT-DELIVERED (not in its out file: nobody holds this key, rotate again)",
            );
        }
        out::line(format_args!(
            "{}  {store}{} {} {:>8}  {} {} {}  {}{}",
            crate::timefmt::format_time(e.time),
            SafeText::new(&e.operator).fitted(10),
            SafeText::new(e.ssh_client.as_deref().unwrap_or("local")).fitted(15),
            e.contact_id,
            SafeText::new(&e.contact_name).fitted(24),
            SafeText::new(&e.action).fitted(6),
            fit_to_width(
                &format!(
                    "{}->{}",
                    e.old_fingerprint.as_deref().unwrap_or("none"),
                    e.new_fingerprint.as_deref().unwrap_or("none")
                ),
                AUDIT_FINGERPRINTS_WIDTH
            ),
            outcome,
            e.error
                .as_deref()
                .map(|err| format!("  ({})", SafeText::new(err)))
                .unwrap_or_default(),
        ))?;
    }
    Ok(())
}

/// `OLD->NEW`: two short fingerprints (8 hex digits, or `none`) and the arrow.
const AUDIT_FINGERPRINTS_WIDTH: usize = 18;

/// The header of `civikey audit`'s table; `store_width` 0 when it has no store column.
fn audit_header(store_width: usize) -> String {
    let store = if store_width > 0 {
        format!("{}  ", fit_to_width("STORE", store_width))
    } else {
        String::new()
    };
    format!(
        "{:<20}  {store}{:<10} {:<15} {:>8}  {:<24} {:<6} {}  {}",
        "TIME",
        "OPERATOR",
        "FROM",
        "CONTACT",
        "NAME",
        "ACTION",
        fit_to_width("OLD->NEW", AUDIT_FINGERPRINTS_WIDTH),
        "OUTCOME"
    )
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
        out::json(&serde_json::Value::Array(items))?;
        return Ok(());
    }
    if summaries.is_empty() {
        let place = crate::config::config_path()
            .map(|p| format!(" in {}", p.display()))
            .unwrap_or_default();
        out::note(format_args!("civikey: no profiles (no config file{place}, or it defines none); `civikey config init` writes a commented one"));
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

/// Ctrl-C, SIGTERM and SIGHUP set the flag: bulk runs stop between two contacts (or
/// batches), never inside one.
fn stop_on_signals() -> Result<std::sync::Arc<std::sync::atomic::AtomicBool>, Failure> {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| Failure::new(exit::ERROR, format!("cannot watch signals: {e}")))?;
    }
    Ok(stop)
}

/// `rotate --ids-from FILE --out FILE`: every listed contact through the full workflow.
/// Where `rotate --ids-from` hands the new keys over.
pub enum BulkTo<'a> {
    /// `--out FILE`: the 0600 CSV file.
    File(&'a Path),
    /// `--json`: one JSON line per rotated contact on stdout, never a terminal.
    JsonLines,
}

/// `--json`'s sink: each rotated contact as one line of JSON on stdout (printable ASCII,
/// as `rotate --json`, with the same hand-over), flushed before the next contact.
struct JsonLines {
    site: Option<crate::store::SiteLogin>,
    /// The contacts' users and roles, read before the run (unknown where they could not be).
    standings: std::collections::HashMap<ContactId, Standing>,
}

impl crate::bulk::KeySink for JsonLines {
    fn deliver(&mut self, line: &crate::bulk::KeyLine<'_>) -> io::Result<()> {
        let contact = line.contact;
        let standing = self
            .standings
            .get(&contact.id)
            .unwrap_or(&Standing::UNKNOWN);
        let handover = crate::handover::Handover::new(self.site.as_ref(), contact, standing);
        let doc = serde_json::json!({
            "contact_id": contact.id,
            "display_name": contact.display_name.lossless_json(),
            "email": contact.email.as_ref().map(SafeText::lossless_json),
            "key": line.key.expose(),
            "fingerprint": line.fingerprint,
            "handover": handover.to_json(),
        });
        out::secret_line(ascii_json(&doc).as_str())
    }

    fn out_file(&self) -> Option<&Path> {
        None
    }

    fn delivered_ids(&self) -> Option<io::Result<std::collections::HashSet<ContactId>>> {
        None
    }
}

pub fn rotate_bulk(
    store: &mut dyn ContactStore,
    journal: &mut Journal,
    ids_from: &Path,
    to: BulkTo<'_>,
    yes: bool,
) -> Result<(), Failure> {
    // Progress goes to stderr between store writes: a closed stderr must not end the run.
    out::ignore_sigpipe();

    if matches!(to, BulkTo::JsonLines) && out::stdout_is_terminal() {
        return Err(Failure::new(
            exit::USAGE,
            "--json writes every new key to stdout, for a program (a vault): stdout is a terminal. Pipe it, or give --out FILE",
        ));
    }
    let ids = crate::bulk::read_ids_file(ids_from).map_err(|e| Failure::new(exit::USAGE, e))?;
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
    let destination = match to {
        BulkTo::File(path) => path.display().to_string(),
        BulkTo::JsonLines => "stdout, one JSON line each".to_string(),
    };
    if !yes {
        confirm(&format!(
            "Rotate the keys of {}? Their current keys will stop working; the new keys go to {destination}",
            plural(items.len(), "contact", "contacts"),
        ))?;
    }
    let mut sink: Box<dyn crate::bulk::KeySink> = match to {
        BulkTo::File(path) => {
            let file =
                crate::bulk::OutFile::create(path).map_err(|e| Failure::new(exit::REFUSED, e))?;
            out::note(format_args!(
                "civikey: {}: {}",
                path.display(),
                crate::bulk::OUT_FILE_NOTE
            ));
            Box::new(file)
        }
        BulkTo::JsonLines => {
            // Users and roles for the hand-over, in the health check's chunks;
            // a chunk the store cannot read leaves its contacts' hand-over unknown.
            let ids: Vec<ContactId> = items.iter().map(|(id, _)| *id).collect();
            let standings = ids
                .chunks(crate::health::STANDINGS_CHUNK)
                .filter_map(|chunk| store.standings(chunk).ok())
                .flatten()
                .collect();
            Box::new(JsonLines {
                site: store.login_site(),
                standings,
            })
        }
    };
    let stop = stop_on_signals()?;
    let mut keys = OsKeySource;
    let results = crate::bulk::rotate_many(
        store,
        journal,
        &mut keys,
        &items,
        sink.as_mut(),
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
        "civikey: {done} rotated (keys to {destination}), {conflict} conflict, {failed} failed, {skipped} not attempted"
    ));
    if skipped > 0 {
        Err(Failure::new(
            exit::ERROR,
            "interrupted: the contacts not attempted were left untouched",
        ))
    } else if failed > 0 {
        Err(Failure::new(
            exit::ERROR,
            format!(
                "{} failed; see above",
                plural(failed, "contact", "contacts")
            ),
        ))
    } else if conflict > 0 {
        Err(Failure::new(
            exit::CONFLICT,
            format!(
                "{} changed meanwhile and not rotated",
                plural(conflict, "contact", "contacts")
            ),
        ))
    } else {
        Ok(())
    }
}

/// The variable the completion scripts set when they run civikey for candidates.
pub const COMPLETE_ENV: &str = "CIVIKEY_COMPLETE";

/// A script that asks civikey itself for candidates at each Tab (clap_complete's
/// environment-driven completion): subcommands, their own flags, flag values, and profile
/// names read from the config, so it never goes stale as profiles change.
pub fn completions(shell: clap_complete::Shell) -> Result<(), Failure> {
    let name = shell.to_string();
    let shells = clap_complete::env::Shells::builtins();
    let completer = shells
        .completer(&name)
        .ok_or_else(|| Failure::new(exit::USAGE, format!("no completion for {name}")))?;
    let mut script = Vec::new();
    completer.write_registration(COMPLETE_ENV, "civikey", "civikey", "civikey", &mut script)?;
    if shell == clap_complete::Shell::Zsh {
        // Installed as `_civikey` in $fpath, the file is autoloaded as that function on the
        // first Tab: complete that Tab too, not only the ones after it.
        script.extend_from_slice(
            b"if [ \"$funcstack[1]\" = \"_civikey\" ]; then\n    _clap_dynamic_completer_civikey \"$@\"\nfi\n",
        );
    }
    out::generated(&script)?;
    Ok(())
}

pub fn man() -> Result<(), Failure> {
    let page = crate::cli::manpage::render(<Cli as clap::CommandFactory>::command())?;
    out::generated(&page)?;
    Ok(())
}
