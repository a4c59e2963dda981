//! `civikey import FILE.csv`: contacts from a CiviCRM contact export into the local SQLite
//! store.
//!
//! The rules, which the report and `civikey import --help` repeat:
//! - Columns are found by their header, ignoring case, spaces, `_` and `-`, in any order;
//!   other columns are ignored (and listed in the report). "Contact ID" is required.
//! - A row is keyed by its Contact ID: an id the store lacks is added, a known one is
//!   updated (type, names, deleted flag, primary email) or counted unchanged, so
//!   importing the same file twice changes nothing the second time.
//! - An empty cell never erases what the store holds: import adds and updates, it does
//!   not delete.
//! - A Contact ID seen twice in one file: the first row decides; later rows with that id
//!   are skipped and listed with their line numbers.
//! - API keys are never imported: an "API Key" column is ignored and the report says so.
//! - The whole file is one transaction: any error leaves the store as it was.
//! - Text is stored as the file holds it (trimmed of surrounding spaces); the store holds
//!   data and display sanitizes. Everything the report quotes from the file is SafeText.
//! - Memory stays bounded: a field over 64 KiB, a row over 1 MiB or a file over 1 GiB
//!   stops the import with an error, before it is read whole.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::rc::Rc;

use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};

use crate::cli::{exit, out, Failure};
use crate::sanitize::SafeText;
use crate::store::sqlite::{sql_err, SqliteStore};
use crate::store::StoreError;
use crate::store::StoreSpec;

pub const MAX_FIELD_BYTES: usize = 64 * 1024;
pub const MAX_ROW_BYTES: u64 = 1024 * 1024;
pub const MAX_FILE_BYTES: u64 = 1024 * 1024 * 1024;
/// The report lists at most this many skipped rows (all are counted), so a file of
/// nothing but bad rows cannot grow the report without bound.
pub const MAX_LISTED_SKIPS: usize = 1000;
const PROGRESS_EVERY: usize = 10_000;
/// civicrm_contact.id is an `int unsigned`: an id above this cannot come from CiviCRM.
const MAX_CONTACT_ID: u64 = u32::MAX as u64;
/// How much of a quoted value a skip reason shows.
const QUOTE_WIDTH: usize = 40;

/// The columns civikey reads. Everything else in the export is ignored.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Field {
    Id,
    DisplayName,
    SortName,
    FirstName,
    LastName,
    ContactType,
    Email,
    IsDeleted,
    OrganizationName,
    HouseholdName,
}

const FIELDS: [Field; 10] = [
    Field::Id,
    Field::DisplayName,
    Field::SortName,
    Field::FirstName,
    Field::LastName,
    Field::ContactType,
    Field::Email,
    Field::IsDeleted,
    Field::OrganizationName,
    Field::HouseholdName,
];

/// Headers naming the API key (normalized): recognised only to be ignored and reported.
const API_KEY_HEADERS: [&str; 2] = ["apikey", "contactapikey"];

impl Field {
    fn label(self) -> &'static str {
        match self {
            Field::Id => "Contact ID",
            Field::DisplayName => "Display Name",
            Field::SortName => "Sort Name",
            Field::FirstName => "First Name",
            Field::LastName => "Last Name",
            Field::ContactType => "Contact Type",
            Field::Email => "Email",
            Field::IsDeleted => "Is Deleted",
            Field::OrganizationName => "Organization Name",
            Field::HouseholdName => "Household Name",
        }
    }

    /// Normalized header spellings: CiviCRM's export titles, then its API field names.
    fn aliases(self) -> &'static [&'static str] {
        match self {
            Field::Id => &["contactid", "internalcontactid", "id"],
            Field::DisplayName => &["displayname"],
            Field::SortName => &["sortname"],
            Field::FirstName => &["firstname"],
            Field::LastName => &["lastname"],
            Field::ContactType => &["contacttype"],
            Field::Email => &["email", "primaryemail", "emailprimary.email"],
            Field::IsDeleted => &["isdeleted", "deleted", "contactisintrash"],
            Field::OrganizationName => &["organizationname"],
            Field::HouseholdName => &["householdname"],
        }
    }
}

/// Case, spaces, `_`, `-` and a stray BOM do not count: "Contact ID", "contact_id" and
/// "ContactID" are one column.
fn normalize(header: &str) -> String {
    header
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '_' | '-' | '\u{feff}'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// `"text"`, inert and cut short, for a skip reason or an error message.
fn quote(text: &str) -> String {
    format!("\"{}\"", SafeText::new(text).truncated(QUOTE_WIDTH))
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("this is not a CiviCRM contact export: {0}")]
    NotAnExport(SafeText),
    #[error("line {line}: {what}; civikey refuses data this large (is this a contact export?)")]
    TooLarge { line: u64, what: SafeText },
    #[error("cannot read the file: {0}")]
    Read(SafeText),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for ImportError {
    fn from(e: rusqlite::Error) -> Self {
        ImportError::Store(sql_err(e))
    }
}

/// A row the import left out, and why (in words that quote the file only as SafeText).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedRow {
    /// The line the row starts on (1 = the header).
    pub line: u64,
    pub reason: SafeText,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Data rows read (blank rows are not counted).
    pub rows: usize,
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub skipped: usize,
    /// The first [`MAX_LISTED_SKIPS`] skipped rows.
    pub skipped_rows: Vec<SkippedRow>,
    /// Headers civikey does not read, as they appear in the file (inert).
    pub ignored_columns: Vec<SafeText>,
    /// The file had an API key column; its values were not read into the store.
    pub api_key_column_ignored: bool,
    /// The cells were separated by this instead of a comma (found on the first line).
    pub separator: Option<char>,
}

impl ImportReport {
    fn skip(&mut self, line: u64, reason: &str) {
        self.skipped += 1;
        if self.skipped_rows.len() < MAX_LISTED_SKIPS {
            self.skipped_rows.push(SkippedRow {
                line,
                reason: SafeText::new(reason),
            });
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "rows": self.rows,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "skipped_rows": self.skipped_rows.iter().map(|s| serde_json::json!({
                "line": s.line,
                "reason": s.reason.as_str(),
            })).collect::<Vec<_>>(),
            "skipped_rows_not_listed": self.skipped - self.skipped_rows.len(),
            "ignored_columns": self.ignored_columns.iter().map(SafeText::as_str).collect::<Vec<_>>(),
            "api_key_column_ignored": self.api_key_column_ignored,
            "separator": self.separator.map_or(",".to_string(), String::from),
        })
    }
}

/// The text report, one fact a line; only numbers, constants and SafeText.
impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} rows: {} added, {} updated, {} unchanged, {} skipped",
            self.rows, self.added, self.updated, self.unchanged, self.skipped
        )?;
        if let Some(separator) = self.separator {
            writeln!(f, "cells separated by {}", separator_name(separator))?;
        }
        if self.api_key_column_ignored {
            writeln!(
                f,
                "the API key column was ignored: civikey never imports keys"
            )?;
        }
        if !self.ignored_columns.is_empty() {
            let names: Vec<String> = self
                .ignored_columns
                .iter()
                .map(|c| quote(c.as_str()))
                .collect();
            writeln!(f, "columns not read: {}", names.join(", "))?;
        }
        for s in &self.skipped_rows {
            writeln!(f, "line {}: skipped: {}", s.line, s.reason)?;
        }
        let unlisted = self.skipped - self.skipped_rows.len();
        if unlisted > 0 {
            writeln!(f, "({unlisted} more skipped rows not listed)")?;
        }
        Ok(())
    }
}

/// Where each field is in a row, found from the header.
struct Columns {
    at: [Option<usize>; FIELDS.len()],
}

impl Columns {
    fn from_headers(
        headers: &csv::ByteRecord,
        report: &mut ImportReport,
    ) -> Result<Self, ImportError> {
        if headers.iter().all(|h| h.trim_ascii().is_empty()) {
            return Err(ImportError::NotAnExport(SafeText::new(
                "the file is empty or its first line is blank; the first line must name the columns",
            )));
        }
        if headers.as_slice().contains(&0) {
            return Err(ImportError::NotAnExport(SafeText::new(
                "its first line holds NUL bytes, so it is a binary file, not CSV",
            )));
        }
        let mut at = [None; FIELDS.len()];
        for (i, raw) in headers.iter().enumerate() {
            let text = String::from_utf8_lossy(raw);
            let key = normalize(&text);
            if API_KEY_HEADERS.contains(&key.as_str()) {
                report.api_key_column_ignored = true;
                continue;
            }
            match FIELDS
                .iter()
                .position(|f| f.aliases().contains(&key.as_str()))
            {
                Some(f) => {
                    if let Some(first) = at[f] {
                        return Err(ImportError::NotAnExport(SafeText::new(&format!(
                            "columns {} and {} both mean {}; remove one",
                            first + 1,
                            i + 1,
                            quote(FIELDS[f].label())
                        ))));
                    }
                    at[f] = Some(i);
                }
                None if key.is_empty() => {}
                None => report.ignored_columns.push(SafeText::new(text.trim())),
            }
        }
        let columns = Columns { at };
        if columns.index(Field::Id).is_none() {
            let found: Vec<String> = headers
                .iter()
                .take(8)
                .map(|h| quote(&String::from_utf8_lossy(h)))
                .collect();
            return Err(ImportError::NotAnExport(SafeText::new(&format!(
                "no \"Contact ID\" column (the first line starts {}{})",
                found.join(", "),
                if headers.len() > 8 { ", ..." } else { "" }
            ))));
        }
        let names = [
            Field::DisplayName,
            Field::SortName,
            Field::FirstName,
            Field::LastName,
            Field::OrganizationName,
            Field::HouseholdName,
        ];
        if names.iter().all(|f| columns.index(*f).is_none()) {
            return Err(ImportError::NotAnExport(SafeText::new(
                "no name column (\"Display Name\", \"Sort Name\", \"First Name\", \"Last Name\", \"Organization Name\" or \"Household Name\")",
            )));
        }
        Ok(columns)
    }

    fn index(&self, field: Field) -> Option<usize> {
        FIELDS
            .iter()
            .position(|f| *f == field)
            .and_then(|i| self.at[i])
    }

    /// The trimmed text of `field` in `row`; None when the column is absent or the cell empty.
    fn cell<'r>(
        &self,
        row: &'r csv::ByteRecord,
        field: Field,
    ) -> Result<Option<&'r str>, RowError> {
        let Some(bytes) = self.index(field).and_then(|i| row.get(i)) else {
            return Ok(None);
        };
        let text = std::str::from_utf8(bytes).map_err(|_| {
            RowError::Skip(format!(
                "the {} cell is not UTF-8 text (export the file as UTF-8)",
                quote(field.label())
            ))
        })?;
        let text = text.trim();
        Ok((!text.is_empty()).then_some(text))
    }
}

enum RowError {
    Skip(String),
    Store(StoreError),
}

impl From<rusqlite::Error> for RowError {
    fn from(e: rusqlite::Error) -> Self {
        RowError::Store(sql_err(e))
    }
}

enum Outcome {
    Added,
    Updated,
    Unchanged,
}

/// A contact as the store holds it, for comparing with what a row asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stored {
    contact_type: String,
    display_name: String,
    sort_name: String,
    first_name: Option<String>,
    last_name: Option<String>,
    is_deleted: bool,
    email: Option<String>,
}

fn parse_id(text: &str) -> Result<i64, RowError> {
    match text.parse::<u64>() {
        Ok(id) if (1..=MAX_CONTACT_ID).contains(&id) => Ok(id as i64),
        _ => Err(RowError::Skip(format!(
            "bad Contact ID {}: it must be a whole number from 1 to {MAX_CONTACT_ID}",
            quote(text)
        ))),
    }
}

fn parse_type(text: &str) -> Result<&'static str, RowError> {
    ["Individual", "Organization", "Household"]
        .into_iter()
        .find(|t| t.eq_ignore_ascii_case(text))
        .ok_or_else(|| {
            RowError::Skip(format!(
                "unknown Contact Type {}: it must be Individual, Organization or Household",
                quote(text)
            ))
        })
}

fn parse_deleted(text: &str) -> Result<bool, RowError> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" => Ok(true),
        "0" | "no" | "n" | "false" => Ok(false),
        _ => Err(RowError::Skip(format!(
            "bad Is Deleted {}: it must be 1/0, yes/no or true/false",
            quote(text)
        ))),
    }
}

/// The names CiviCRM would have built when the export leaves Display/Sort Name out.
fn built_names(
    columns: &Columns,
    row: &csv::ByteRecord,
    contact_type: &str,
) -> Result<(Option<String>, Option<String>), RowError> {
    let own_name = match contact_type {
        "Organization" => Some(Field::OrganizationName),
        "Household" => Some(Field::HouseholdName),
        _ => None,
    };
    if let Some(field) = own_name {
        let name = columns.cell(row, field)?.map(str::to_string);
        return Ok((name.clone(), name));
    }
    let first = columns.cell(row, Field::FirstName)?;
    let last = columns.cell(row, Field::LastName)?;
    Ok(match (first, last) {
        (Some(f), Some(l)) => (Some(format!("{f} {l}")), Some(format!("{l}, {f}"))),
        (Some(one), None) | (None, Some(one)) => (Some(one.to_string()), Some(one.to_string())),
        (None, None) => (None, None),
    })
}

fn load(tx: &Transaction<'_>, id: i64) -> Result<Option<(Stored, Option<i64>)>, RowError> {
    let contact = tx
        .prepare_cached(
            "SELECT contact_type, display_name, sort_name, first_name, last_name, is_deleted
               FROM civicrm_contact WHERE id = ?",
        )?
        .query_row([id], |r| {
            Ok(Stored {
                contact_type: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                display_name: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                sort_name: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                first_name: r.get(3)?,
                last_name: r.get(4)?,
                is_deleted: r.get::<_, Option<i64>>(5)?.unwrap_or(0) != 0,
                email: None,
            })
        })
        .optional()?;
    let Some(mut contact) = contact else {
        return Ok(None);
    };
    let email: Option<(i64, Option<String>)> = tx
        .prepare_cached(
            "SELECT id, email FROM civicrm_email
              WHERE contact_id = ? AND is_primary = 1 ORDER BY id LIMIT 1",
        )?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    contact.email = email.as_ref().and_then(|(_, e)| e.clone());
    Ok(Some((contact, email.map(|(email_id, _)| email_id))))
}

/// CiviCRM's column widths (characters): a longer value would not fit a real CiviCRM.
fn check_widths(c: &Stored) -> Result<(), RowError> {
    let checks = [
        ("Display Name", Some(&c.display_name), 128),
        ("Sort Name", Some(&c.sort_name), 128),
        ("First Name", c.first_name.as_ref(), 64),
        ("Last Name", c.last_name.as_ref(), 64),
        ("Email", c.email.as_ref(), 254),
    ];
    for (label, value, max) in checks {
        let chars = value.map_or(0, |v| v.chars().count());
        if chars > max {
            return Err(RowError::Skip(format!(
                "{label} is {chars} characters; CiviCRM holds at most {max}"
            )));
        }
    }
    Ok(())
}

fn import_row(
    tx: &Transaction<'_>,
    columns: &Columns,
    row: &csv::ByteRecord,
    line: u64,
) -> Result<Outcome, RowError> {
    let Some(id_text) = columns.cell(row, Field::Id)? else {
        return Err(RowError::Skip("no Contact ID".into()));
    };
    let id = parse_id(id_text)?;
    let first_line: Option<i64> = tx
        .prepare_cached("SELECT line FROM temp.civikey_import_seen WHERE id = ?")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    if let Some(first) = first_line {
        return Err(RowError::Skip(format!(
            "Contact ID {id} already appeared on line {first}; the first row with an id wins"
        )));
    }
    tx.prepare_cached("INSERT INTO temp.civikey_import_seen (id, line) VALUES (?, ?)")?
        .execute(params![id, line as i64])?;

    let existing = load(tx, id)?;
    let old = existing.as_ref().map(|(c, _)| c);
    let contact_type = match columns.cell(row, Field::ContactType)? {
        Some(text) => parse_type(text)?.to_string(),
        None => old
            .map(|c| c.contact_type.clone())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "Individual".into()),
    };
    let is_deleted = match columns.cell(row, Field::IsDeleted)? {
        Some(text) => parse_deleted(text)?,
        None => old.is_some_and(|c| c.is_deleted),
    };
    let (built_display, built_sort) = built_names(columns, row, &contact_type)?;
    let display = columns
        .cell(row, Field::DisplayName)?
        .map(str::to_string)
        .or(built_display);
    let sort = columns
        .cell(row, Field::SortName)?
        .map(str::to_string)
        .or(built_sort);
    let keep = |value: Option<String>, stored: Option<&String>| {
        value.or_else(|| stored.filter(|s| !s.is_empty()).cloned())
    };
    let display = keep(display, old.map(|c| &c.display_name));
    let sort = keep(sort, old.map(|c| &c.sort_name));
    let (display_name, sort_name) = match (display, sort) {
        (Some(d), Some(s)) => (d, s),
        (Some(one), None) | (None, Some(one)) => (one.clone(), one),
        (None, None) => {
            return Err(RowError::Skip(
                "no name: Display Name, Sort Name and the name columns are all empty".into(),
            ))
        }
    };
    let text = |field| -> Result<Option<String>, RowError> {
        Ok(columns.cell(row, field)?.map(str::to_string))
    };
    let wanted = Stored {
        contact_type,
        display_name,
        sort_name,
        first_name: text(Field::FirstName)?.or_else(|| old.and_then(|c| c.first_name.clone())),
        last_name: text(Field::LastName)?.or_else(|| old.and_then(|c| c.last_name.clone())),
        is_deleted,
        email: text(Field::Email)?.or_else(|| old.and_then(|c| c.email.clone())),
    };
    check_widths(&wanted)?;

    let Some((old, email_id)) = existing else {
        tx.prepare_cached(
            "INSERT INTO civicrm_contact (id, contact_type, display_name, sort_name,
                 first_name, last_name, is_deleted)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            id,
            wanted.contact_type,
            wanted.display_name,
            wanted.sort_name,
            wanted.first_name,
            wanted.last_name,
            wanted.is_deleted,
        ])?;
        if let Some(email) = &wanted.email {
            insert_email(tx, id, email)?;
        }
        return Ok(Outcome::Added);
    };
    if wanted == old {
        return Ok(Outcome::Unchanged);
    }
    let contact_changed = Stored {
        email: old.email.clone(),
        ..wanted.clone()
    } != old;
    if contact_changed {
        // api_key is not in this statement: an import never touches a key.
        tx.prepare_cached(
            "UPDATE civicrm_contact
                SET contact_type = ?2, display_name = ?3, sort_name = ?4, first_name = ?5,
                    last_name = ?6, is_deleted = ?7, modified_date = CURRENT_TIMESTAMP
              WHERE id = ?1",
        )?
        .execute(params![
            id,
            wanted.contact_type,
            wanted.display_name,
            wanted.sort_name,
            wanted.first_name,
            wanted.last_name,
            wanted.is_deleted,
        ])?;
    }
    // `wanted.email` falls back to the stored one, so it differs only when the file
    // gave a new address; an import never removes one.
    if let Some(email) = wanted
        .email
        .as_ref()
        .filter(|e| Some(*e) != old.email.as_ref())
    {
        match email_id {
            Some(email_id) => {
                tx.prepare_cached("UPDATE civicrm_email SET email = ? WHERE id = ?")?
                    .execute(params![email, email_id])?;
            }
            None => insert_email(tx, id, email)?,
        }
    }
    Ok(Outcome::Updated)
}

fn insert_email(tx: &Transaction<'_>, contact_id: i64, email: &str) -> Result<(), RowError> {
    tx.prepare_cached(
        "INSERT INTO civicrm_email (contact_id, email, is_primary, location_type_id)
         VALUES (?1, ?2, 1, 1)",
    )?
    .execute(params![contact_id, email])?;
    Ok(())
}

/// Why [`Bounded`] stopped handing out bytes.
#[derive(Debug)]
enum Limit {
    Row,
    File,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Row => write!(f, "a row longer than {} KiB", MAX_ROW_BYTES >> 10),
            Limit::File => write!(f, "the file is larger than {} MiB", MAX_FILE_BYTES >> 20),
        }
    }
}

impl std::error::Error for Limit {}

/// Line numbers as an editor shows them, counted from the bytes: the csv crate's record
/// positions count a CRLF's LF and skipped blank lines into the next row.
#[derive(Default)]
struct Lines {
    /// Byte offset where the last complete row ended; everything before it is settled.
    settled_at: u64,
    /// Line breaks before `settled_at`.
    settled_breaks: u64,
    /// Offsets of the line breaks read past `settled_at`. A break is counted at its first
    /// byte, and CRLF is one break. Bounded by the row limit, as the bytes are.
    pending: VecDeque<u64>,
    after_cr: bool,
}

impl Lines {
    fn scan(&mut self, offset: u64, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'\r' || (*b == b'\n' && !self.after_cr) {
                self.pending.push_back(offset + i as u64);
            }
            self.after_cr = *b == b'\r';
        }
    }

    /// Marks a row as ending at byte `end`; returns the line the row starts on, given
    /// the line breaks inside its fields.
    fn row_ended(&mut self, end: u64, breaks_inside: u64) -> u64 {
        let mut last_break = None;
        while self.pending.front().is_some_and(|b| *b < end) {
            last_break = self.pending.pop_front();
            self.settled_breaks += 1;
        }
        self.settled_at = end;
        // The row's own terminator, when it has one, is the break just before `end`.
        let terminated = last_break.is_some_and(|b| b + 1 == end);
        (self.settled_breaks + 1)
            .saturating_sub(u64::from(terminated) + breaks_inside)
            .max(1)
    }

    /// The line after the last complete row, for errors that stop the reading.
    fn next_line(&self) -> u64 {
        self.settled_breaks + 1
    }
}

fn breaks_in(field: &[u8]) -> u64 {
    let mut lines = Lines::default();
    lines.scan(0, field);
    lines.pending.len() as u64
}

/// A reader that refuses to hand the CSV parser more than [`MAX_ROW_BYTES`] past the end
/// of the last complete row, or more than [`MAX_FILE_BYTES`] in all: the parser buffers
/// a whole row, so this is what keeps a hostile file from exhausting memory. It also
/// counts the lines.
struct Bounded<R> {
    inner: R,
    read: u64,
    lines: Rc<RefCell<Lines>>,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut lines = self.lines.borrow_mut();
        if self.read.saturating_sub(lines.settled_at) > MAX_ROW_BYTES {
            return Err(io::Error::other(Limit::Row));
        }
        let n = self.inner.read(buf)?;
        lines.scan(self.read, &buf[..n]);
        self.read += n as u64;
        if self.read > MAX_FILE_BYTES {
            return Err(io::Error::other(Limit::File));
        }
        Ok(n)
    }
}

fn read_error(e: csv::Error, line: u64) -> ImportError {
    if let csv::ErrorKind::Io(io) = e.kind() {
        if let Some(limit) = io.get_ref().and_then(|i| i.downcast_ref::<Limit>()) {
            return ImportError::TooLarge {
                line,
                what: SafeText::new(&limit.to_string()),
            };
        }
    }
    ImportError::Read(SafeText::new(&format!("line {line}: {e}")))
}

fn separator_name(separator: char) -> &'static str {
    match separator {
        ';' => "semicolons",
        '\t' => "tabs",
        _ => "commas",
    }
}

/// The separator of a CSV whose first line is `head`: a comma, or a semicolon or a tab when
/// the line holds more of those (spreadsheets in many locales write `;`, some exports tabs).
fn sniff_separator(head: &[u8]) -> u8 {
    let first = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let count = |sep: u8| first.iter().filter(|b| **b == sep).count();
    [b';', b'\t']
        .into_iter()
        .filter(|sep| count(*sep) > count(b','))
        .max_by_key(|sep| count(*sep))
        .unwrap_or(b',')
}

/// Imports a CiviCRM contact export into `store` in one transaction (see the module
/// documentation for the rules). `progress` hears the number of rows read every 10,000.
pub fn import_csv(
    store: &mut SqliteStore,
    mut reader: impl Read,
    progress: &mut dyn FnMut(usize),
) -> Result<ImportReport, ImportError> {
    let conn = store.connection_for_import()?;
    let lines = Rc::new(RefCell::new(Lines::default()));
    // The first line (up to 64 KiB) tells the separator; it is read again by the parser.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while head.len() < 64 << 10
        && reader
            .read(&mut byte)
            .map_err(|e| read_error(e.into(), 1))?
            == 1
    {
        head.push(byte[0]);
        if byte[0] == b'\n' {
            break;
        }
    }
    let separator = sniff_separator(&head);
    let mut csv = csv::ReaderBuilder::new()
        .flexible(true)
        .delimiter(separator)
        .from_reader(Bounded {
            inner: std::io::Cursor::new(head).chain(reader),
            read: 0,
            lines: Rc::clone(&lines),
        });
    let mut report = ImportReport {
        separator: (separator != b',').then_some(char::from(separator)),
        ..ImportReport::default()
    };
    let headers = csv.byte_headers().map_err(|e| read_error(e, 1))?.clone();
    let columns = Columns::from_headers(&headers, &mut report)?;
    lines.borrow_mut().row_ended(csv.position().byte(), 0);

    // IMMEDIATE takes the write lock now, so a busy store fails before any row is read.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TEMP TABLE civikey_import_seen (id INTEGER PRIMARY KEY, line INTEGER NOT NULL)",
    )?;
    let mut row = csv::ByteRecord::new();
    loop {
        let next_line = lines.borrow().next_line();
        if !csv
            .read_byte_record(&mut row)
            .map_err(|e| read_error(e, next_line))?
        {
            break;
        }
        let inside = row.iter().map(breaks_in).sum();
        let line = lines.borrow_mut().row_ended(csv.position().byte(), inside);
        for (i, field) in row.iter().enumerate() {
            if field.len() > MAX_FIELD_BYTES {
                let column = headers.get(i).map_or_else(String::new, |h| {
                    format!(" ({})", quote(&String::from_utf8_lossy(h)))
                });
                return Err(ImportError::TooLarge {
                    line,
                    what: SafeText::new(&format!(
                        "column {}{column} holds more than {} KiB",
                        i + 1,
                        MAX_FIELD_BYTES >> 10
                    )),
                });
            }
        }
        // A spreadsheet's empty row (",,,") is a blank line, not a bad contact.
        if row.iter().all(|f| f.trim_ascii().is_empty()) {
            continue;
        }
        report.rows += 1;
        // More cells than the header names: the row is shifted (an unquoted separator in
        // a name?), so no cell of it can be trusted.
        if row
            .iter()
            .skip(headers.len())
            .any(|f| !f.trim_ascii().is_empty())
        {
            report.skip(
                line,
                &format!(
                    "{} cells but the header names {} columns (an unquoted {} in a cell?)",
                    row.len(),
                    headers.len(),
                    char::from(separator)
                ),
            );
            continue;
        }
        match import_row(&tx, &columns, &row, line) {
            Ok(Outcome::Added) => report.added += 1,
            Ok(Outcome::Updated) => report.updated += 1,
            Ok(Outcome::Unchanged) => report.unchanged += 1,
            Err(RowError::Skip(reason)) => report.skip(line, &reason),
            Err(RowError::Store(e)) => return Err(e.into()),
        }
        if report.rows.is_multiple_of(PROGRESS_EVERY) {
            progress(report.rows);
        }
    }
    tx.execute_batch("DROP TABLE temp.civikey_import_seen")?;
    tx.commit()?;
    Ok(report)
}

/// `civikey import FILE [--json]`: into a SQLite store only, created empty when missing.
pub fn command(spec: &StoreSpec, file: &Path, json: bool) -> Result<(), Failure> {
    let StoreSpec::Sqlite { path, read_only } = spec else {
        return Err(Failure::new(
            exit::USAGE,
            format!(
                "import writes only to a local SQLite store (--store sqlite:PATH), not to {}; \
                 civikey never writes contacts into CiviCRM",
                SafeText::new(&spec.location())
            ),
        ));
    };
    let shown = SafeText::new(&file.display().to_string());
    let input = File::open(file)
        .and_then(|f| {
            if f.metadata()?.is_dir() {
                Err(io::Error::other("it is a directory"))
            } else {
                Ok(f)
            }
        })
        .map_err(|e| {
            Failure::new(
                exit::ERROR,
                format!("cannot read {shown}: {}", SafeText::new(&e.to_string())),
            )
        })?;
    let created = !*read_only && !path.exists();
    let mut store = if created {
        SqliteStore::create(path, std::iter::empty(), &mut |_| {})?
    } else {
        SqliteStore::open_with(path, *read_only)?
    };
    let result = import_csv(&mut store, input, &mut |rows| {
        out::note(format_args!("civikey: import: {rows} rows read"));
    });
    drop(store);
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            if created {
                // The empty store exists only for this import; do not leave it behind.
                let _ = std::fs::remove_file(path);
            }
            let code = match &e {
                ImportError::Store(StoreError::ReadOnly(_) | StoreError::PermissionDenied(_)) => {
                    exit::REFUSED
                }
                _ => exit::ERROR,
            };
            return Err(Failure::new(
                code,
                format!("import of {shown} failed, nothing was written: {e}"),
            ));
        }
    };
    if json {
        let mut doc = report.to_json();
        doc["store_created"] = created.into();
        out::json(&doc)?;
    } else {
        let location = SafeText::new(&format!("sqlite:{}", path.display()));
        out::note(format_args!("civikey: imported {shown} into {location}"));
        if created {
            out::note("civikey: (a new, empty store was created first)");
        }
        for line in report.to_string().lines() {
            out::note(format_args!("civikey: {line}"));
        }
    }
    if report.skipped > 0 {
        // The rest was imported; a script must still see that some rows were not.
        return Err(Failure::new(
            exit::ERROR,
            format!(
                "{} skipped (the others were imported)",
                crate::wording::plural(report.skipped, "row", "rows")
            ),
        ));
    }
    Ok(())
}
