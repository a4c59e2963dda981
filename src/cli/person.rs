//! A person across sites: `list --email ADDRESS` (or `--search TEXT`) `--all-profiles`
//! with a PROFILE column, and `revoke` / `rotate --email ADDRESS [--all-profiles]` on
//! every key of theirs after one confirm that lists each profile, contact and key mask.
//! Each profile's changes are journaled under its own store and profile; new keys go to
//! one 0600 out file with the profile in each row. A site that fails leaves the others
//! done, and the end says exactly which profiles and contacts were not.

use std::path::Path;
use std::time::Duration;

use super::fleet::{self, ProfileTarget, Ran};
use super::{contact_json, contact_line, exit, list_header, out, plural, Failure};
use crate::audit::{Actor, Journal};
use crate::bulk::{BulkOutcome, OutFile};
use crate::key::OsKeySource;
use crate::rotation::{self, Expectation, RotationError};
use crate::store::{Contact, ContactStore, Query, StoreError};

/// How long one profile's search may take before it is named as not searched.
pub const SEARCH_TIMEOUT: Duration = Duration::from_secs(120);

/// One profile searched: where it is, the contacts found, the store still open for the
/// changes that follow.
pub struct Found {
    pub location: String,
    pub contacts: Vec<Contact>,
    /// Whether the profile has more matches than `--limit`.
    pub more: bool,
    pub store: Box<dyn ContactStore>,
}

/// Searches every target with `query` ([`fleet::CONCURRENT_PROFILES`] at a time); each
/// answer, or why that profile could not be searched, in target order.
pub fn search_profiles(targets: &[ProfileTarget], query: &Query) -> Vec<Result<Found, String>> {
    let specs: Vec<_> = targets.iter().map(|t| t.spec.clone()).collect();
    let query = query.clone();
    let job = move |i: usize| -> Result<Found, String> {
        let spec = specs[i].clone()?;
        let mut store = spec.open().map_err(|e| e.to_string())?;
        let page = store.search(&query).map_err(|e| e.to_string())?;
        Ok(Found {
            location: spec.location(),
            contacts: page.contacts,
            more: page.next.is_some(),
            store,
        })
    };
    let count = targets.len();
    let progress = &mut |done: usize, count: usize| {
        if count > 1 {
            out::progress(
                format_args!("civikey: searched {done} of {count} profiles…"),
                done == count,
            );
        }
    };
    fleet::run_each(
        count,
        fleet::CONCURRENT_PROFILES,
        SEARCH_TIMEOUT,
        job,
        progress,
    )
    .into_iter()
    .map(|ran| match ran {
        Ran::Done(found) => found,
        Ran::TimedOut => Err(format!("no answer within {} s", SEARCH_TIMEOUT.as_secs())),
        Ran::Panicked => Err("the search stopped on an internal error".into()),
    })
    .collect()
}

/// The query of `list --email` / `--search`.
pub fn person_query(email: Option<&str>, search: Option<&str>, limit: usize) -> Query {
    match email {
        Some(address) => Query::email(address, limit),
        None => Query::new(search.unwrap_or(""), limit),
    }
}

/// `civikey list ... --all-profiles` (and `list --email` on one profile, with the same
/// PROFILE column).
pub fn list_across(
    targets: &[ProfileTarget],
    query: &Query,
    json: bool,
    header: bool,
) -> Result<(), Failure> {
    if targets.is_empty() {
        return Err(Failure::new(exit::USAGE, fleet::NO_PROFILES));
    }
    let found = search_profiles(targets, query);
    let width = targets
        .iter()
        .map(|t| t.label.len())
        .max()
        .unwrap_or(0)
        .max("PROFILE".len());
    let mut items = Vec::new();
    if header && !json {
        out::line(format_args!("{:<width$}  {}", "PROFILE", list_header()))?;
    }
    let mut failed = Vec::new();
    for (target, found) in targets.iter().zip(&found) {
        match found {
            Ok(found) => {
                for c in &found.contacts {
                    if json {
                        let mut doc = contact_json(c);
                        doc["profile"] = serde_json::json!(target.label);
                        doc["store"] = serde_json::json!(found.location);
                        items.push(doc);
                    } else {
                        out::line(format_args!(
                            "{:<width$}  {}",
                            target.label,
                            contact_line(c)
                        ))?;
                    }
                }
                if found.more {
                    out::note(format_args!(
                        "civikey: {}: more than {}; use --limit or a narrower search",
                        target.label,
                        plural(found.contacts.len(), "contact matches", "contacts match")
                    ));
                }
            }
            Err(reason) => {
                out::note(format_args!(
                    "civikey: {}: could not be searched: {reason}",
                    target.label
                ));
                failed.push(target.label.as_str());
            }
        }
    }
    if json {
        out::json(&serde_json::Value::Array(items))?;
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(
            exit::ERROR,
            format!(
                "{} of {} could not be searched: {}",
                failed.len(),
                plural(targets.len(), "profile", "profiles"),
                failed.join(", ")
            ),
        ))
    }
}

/// What `revoke` / `rotate --email` act on: each profile's contacts that hold a key.
struct Plan {
    /// Per target: the open store and its key holders, or why it could not be searched.
    profiles: Vec<Result<Found, String>>,
    holders: usize,
}

fn plan(targets: &[ProfileTarget], address: &str) -> Result<Plan, Failure> {
    if targets.is_empty() {
        return Err(Failure::new(exit::USAGE, fleet::NO_PROFILES));
    }
    // A person has few contacts per site; more than a page is not one person.
    let mut profiles = search_profiles(targets, &Query::email(address, 100));
    for found in profiles.iter_mut().flatten() {
        found.contacts.retain(|c| c.key.is_some());
    }
    let holders = profiles
        .iter()
        .flatten()
        .map(|f| f.contacts.len())
        .sum::<usize>();
    Ok(Plan { profiles, holders })
}

/// The one confirm: a line per profile and contact with its key mask, and the profiles
/// that could not be searched (left as they are).
fn plan_lines(targets: &[ProfileTarget], plan: &Plan, verb: &str, address: &str) -> Vec<String> {
    let width = targets.iter().map(|t| t.label.len()).max().unwrap_or(0);
    let mut lines = Vec::new();
    for (target, found) in targets.iter().zip(&plan.profiles) {
        match found {
            Ok(found) => {
                for c in &found.contacts {
                    lines.push(format!(
                        "  {:<width$}  {}",
                        target.label,
                        format_args!(
                            "{} {}",
                            c.key.as_ref().map_or_else(String::new, |k| k.masked()),
                            super::describe(c)
                        )
                    ));
                }
            }
            Err(reason) => lines.push(format!(
                "  {:<width$}  could not be searched, left as it is: {reason}",
                target.label
            )),
        }
    }
    let sites = plan
        .profiles
        .iter()
        .flatten()
        .filter(|f| !f.contacts.is_empty())
        .count();
    lines.push(format!(
        "{verb} {} of {address} on {}?",
        plural(plan.holders, "key", "keys"),
        plural(sites, "profile", "profiles")
    ));
    lines
}

/// The journal for one profile's changes (its records name that profile and its store).
/// When it cannot be opened, each of the profile's contacts is tallied as not done and
/// None tells the caller to leave the profile alone.
fn profile_journal(
    data_dir: &Path,
    label: &str,
    found: &Found,
    tally: &mut Tally,
) -> Option<Journal> {
    match Journal::open(data_dir, Actor::from_env(&found.location, Some(label))) {
        Ok(journal) => Some(journal),
        Err(e) => {
            for c in &found.contacts {
                tally
                    .not_done
                    .push(format!("{label}: contact {} ({e})", c.id));
            }
            None
        }
    }
}

/// What was not done, by profile, for the last line and the exit code.
#[derive(Default)]
struct Tally {
    done: usize,
    /// "PROFILE: contact N (reason)" or "PROFILE: not searched (reason)".
    not_done: Vec<String>,
    conflicts: usize,
}

impl Tally {
    fn end(self, what: &str) -> Result<(), Failure> {
        if self.not_done.is_empty() {
            return Ok(());
        }
        let code = if self.conflicts == self.not_done.len() {
            exit::CONFLICT
        } else {
            exit::ERROR
        };
        Err(Failure::new(
            code,
            format!(
                "{} {what}; not done: {}",
                self.done,
                self.not_done.join("; ")
            ),
        ))
    }
}

/// `civikey revoke --email ADDRESS [--all-profiles] [--yes]`.
pub fn revoke_across(
    targets: &[ProfileTarget],
    data_dir: &Path,
    address: &str,
    yes: bool,
) -> Result<(), Failure> {
    out::ignore_sigpipe();
    let mut plan = plan(targets, address)?;
    if plan.holders == 0 {
        out::note(format_args!(
            "civikey: no contact with the primary email {address} holds a key"
        ));
        return not_searched(targets, &plan).end("revoked");
    }
    if !yes {
        super::confirm_lines(plan_lines(targets, &plan, "Revoke", address))?;
    }
    let mut tally = not_searched(targets, &plan);
    for (target, found) in targets.iter().zip(plan.profiles.iter_mut()) {
        let Ok(found) = found else { continue };
        if found.contacts.is_empty() {
            continue;
        }
        let Some(mut journal) = profile_journal(data_dir, &target.label, found, &mut tally) else {
            continue;
        };
        for c in &found.contacts {
            let result = rotation::revoke(
                found.store.as_mut(),
                &mut journal,
                c.id,
                &Expectation::Seen(c.key.clone()),
            );
            match result {
                Ok(_) => {
                    tally.done += 1;
                    out::note(format_args!(
                        "civikey: {}: revoked the key of {}",
                        target.label,
                        super::describe(c)
                    ));
                }
                Err(e) => {
                    if is_conflict(&e) {
                        tally.conflicts += 1;
                    }
                    out::note(format_args!(
                        "civikey: {}: NOT revoked: {}: {e}",
                        target.label,
                        super::describe(c)
                    ));
                    tally
                        .not_done
                        .push(format!("{}: contact {} ({e})", target.label, c.id));
                }
            }
        }
    }
    out::note(format_args!(
        "civikey: revoked {} of {address}",
        plural(tally.done, "key", "keys")
    ));
    tally.end("revoked")
}

/// `civikey rotate --email ADDRESS [--all-profiles] --out FILE [--yes]`: every key of the
/// person through bulk rotation, profile by profile, into one out file.
pub fn rotate_across(
    targets: &[ProfileTarget],
    data_dir: &Path,
    address: &str,
    out_path: &Path,
    yes: bool,
) -> Result<(), Failure> {
    out::ignore_sigpipe();
    let mut plan = plan(targets, address)?;
    if plan.holders == 0 {
        out::note(format_args!(
            "civikey: no contact with the primary email {address} holds a key"
        ));
        return not_searched(targets, &plan).end("rotated");
    }
    if !yes {
        let mut lines = plan_lines(targets, &plan, "Rotate", address);
        if let Some(last) = lines.last_mut() {
            last.push_str(&format!(
                " Their current keys stop working; the new keys go to {}",
                out_path.display()
            ));
        }
        super::confirm_lines(lines)?;
    }
    let mut file =
        OutFile::create_for_profiles(out_path).map_err(|e| Failure::new(exit::REFUSED, e))?;
    out::note(format_args!(
        "civikey: {}: {}",
        out_path.display(),
        crate::bulk::OUT_FILE_NOTE
    ));
    let stop = super::stop_on_signals()?;
    let mut tally = not_searched(targets, &plan);
    let mut keys = OsKeySource;
    for (target, found) in targets.iter().zip(plan.profiles.iter_mut()) {
        let Ok(found) = found else { continue };
        if found.contacts.is_empty() {
            continue;
        }
        let Some(mut journal) = profile_journal(data_dir, &target.label, found, &mut tally) else {
            continue;
        };
        file.set_profile(&target.label);
        let items: Vec<_> = found
            .contacts
            .iter()
            .map(|c| (c.id, Expectation::Seen(c.key.clone())))
            .collect();
        let results = crate::bulk::rotate_many(
            found.store.as_mut(),
            &mut journal,
            &mut keys,
            &items,
            &mut file,
            &stop,
            &mut |_, _, r| {
                let detail = match &r.outcome {
                    BulkOutcome::Failed(e) => format!(": {e}"),
                    _ => String::new(),
                };
                out::note(format_args!(
                    "civikey: {}: contact {} {}: {}{detail}",
                    target.label,
                    r.id,
                    r.name.truncated(40),
                    r.outcome.label()
                ));
            },
        );
        for r in results {
            match &r.outcome {
                BulkOutcome::Done => tally.done += 1,
                BulkOutcome::Conflict => {
                    tally.conflicts += 1;
                    tally.not_done.push(format!(
                        "{}: contact {} (changed meanwhile)",
                        target.label, r.id
                    ));
                }
                BulkOutcome::Failed(e) => tally
                    .not_done
                    .push(format!("{}: contact {} ({e})", target.label, r.id)),
                BulkOutcome::Skipped => tally.not_done.push(format!(
                    "{}: contact {} (interrupted, untouched)",
                    target.label, r.id
                )),
            }
        }
    }
    out::note(format_args!(
        "civikey: rotated {} of {address} (new keys in {})",
        plural(tally.done, "key", "keys"),
        out_path.display()
    ));
    tally.end("rotated")
}

/// The profiles that could not be searched, as not done.
fn not_searched(targets: &[ProfileTarget], plan: &Plan) -> Tally {
    let mut tally = Tally::default();
    for (target, found) in targets.iter().zip(&plan.profiles) {
        if let Err(reason) = found {
            tally
                .not_done
                .push(format!("{}: not searched ({reason})", target.label));
        }
    }
    tally
}

fn is_conflict(e: &RotationError) -> bool {
    matches!(
        e,
        RotationError::Store(StoreError::Conflict)
            | RotationError::ChangedSinceSeen
            | RotationError::ReplacedMeanwhile
    )
}
