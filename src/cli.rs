//! Command-line definitions (clap) and the non-interactive commands.
//!
//! Data goes to stdout, everything else (prompts, progress, errors) to stderr. A new key
//! reaches stdout only from a command whose job is to print it. No command takes a key
//! or a password as an argument.

use std::io::{self, BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::audit::Journal;
use crate::key::{ApiKey, OsKeySource, KEY_LEN, MIN_MANUAL_LEN};
use crate::rotation::{self, Expectation, NewKey, RotationError};
use crate::sanitize::SafeText;
use crate::store::{CmsLink, Contact, ContactId, ContactStore, Query, StoreError};

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
    Rotate {
        id: ContactId,
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        json: bool,
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
            eprintln!("civikey: {}", f.message);
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
    let mut out = io::stdout().lock();
    writeln!(out, "{}", &key.expose()[..length])?;
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
    let mut out = io::stdout().lock();
    if json {
        let items: Vec<_> = page.contacts.iter().map(contact_json).collect();
        writeln!(out, "{}", serde_json::Value::Array(items))?;
    } else {
        for c in &page.contacts {
            writeln!(out, "{}", contact_line(c))?;
        }
        if page.next.is_some() {
            eprintln!(
                "(more than {} contacts match; use --limit or a narrower --search)",
                page.contacts.len()
            );
        }
    }
    Ok(())
}

pub fn show(store: &mut dyn ContactStore, id: ContactId, json: bool) -> Result<(), Failure> {
    let c = store.contact(id)?;
    let mut out = io::stdout().lock();
    if json {
        writeln!(out, "{}", contact_json(&c))?;
    } else {
        writeln!(out, "{}", contact_line(&c))?;
    }
    Ok(())
}

/// Asks on the terminal; refuses when there is no terminal to ask on.
fn confirm(question: &str) -> Result<(), Failure> {
    if !io::stdin().is_terminal() || !io::stderr().is_terminal() {
        return Err(Failure::new(
            exit::REFUSED,
            "not on a terminal, so no one can confirm: add --yes to proceed",
        ));
    }
    eprint!("{question} [y/N] ");
    io::stderr().flush()?;
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
        confirm(&format!(
            "Assign a new key to {}? {stops}",
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
    let mut out = io::stdout().lock();
    if json {
        let doc = zeroize::Zeroizing::new(
            serde_json::json!({
                "contact_id": id,
                "key": done.key.expose(),
                "fingerprint": journal.short_fingerprint(&done.key),
            })
            .to_string(),
        );
        writeln!(out, "{}", doc.as_str())?;
    } else {
        writeln!(out, "{}", done.key.expose())?;
    }
    eprintln!("civikey: assigned a new key to {}", describe(&done.contact));
    if let Some(w) = done.audit_warning {
        eprintln!("civikey: warning: {w}");
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
    eprintln!(
        "civikey: assigned the given key (fingerprint {}) to {}",
        journal.short_fingerprint(&done.key),
        describe(&done.contact)
    );
    if let Some(w) = done.audit_warning {
        eprintln!("civikey: warning: {w}");
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
    let mut out = io::stdout().lock();
    if json {
        let doc = serde_json::to_string(&entries)
            .map_err(|e| Failure::new(exit::ERROR, e.to_string()))?;
        writeln!(out, "{doc}")?;
        return Ok(());
    }
    for e in &entries {
        let outcome = match (&e.outcome, &e.reconciled) {
            (_, Some(r)) => format!("unknown->{r}"),
            (Some(o), None) => o.clone(),
            (None, None) => "in-flight".into(),
        };
        writeln!(
            out,
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
        )?;
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
        eprintln!(
            "civikey: {} has no key; nothing to revoke",
            describe(&contact)
        );
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
    eprintln!("civikey: revoked the key of {}", describe(&contact));
    Ok(())
}
