//! THE assign/revoke workflow, shared by the TUI and the CLI.
//!
//! 1. read the contact and its current key (the compare-and-set expectation), and settle
//!    any earlier "unknown" outcome for it against what the store holds;
//! 2. uniqueness: no contact holds the new key (as the store compares keys);
//! 3. write-ahead audit record (intent), flushed to disk: if it cannot be written, stop;
//! 4. compare-and-set write: nothing is written if the key changed meanwhile;
//! 5. read back and compare: a truncating column, a trigger or a proxy is caught;
//! 6. audit record of the outcome: done, conflict, failed or unknown.
//!
//! Nothing here retries a write whose outcome is unknown. The replaced key is returned to
//! the caller (for an undo window in memory) and never written anywhere.

use crate::audit::{self, AuditError, Journal, Outcome};
use crate::key::{ApiKey, KeyError, KeyHint, KeySource};
use crate::sanitize::SafeText;
use crate::store::{Contact, ContactId, ContactStore, KeySwap, StoreError};

/// How many fresh keys to try when a generated key is already in use (vanishingly rare:
/// 190 bits of randomness; a repeat clash means something else is wrong).
const MAX_REGENERATIONS: usize = 5;

/// The key to assign.
pub enum NewKey {
    /// Made by civikey: a clash means "make another".
    Generated(ApiKey),
    /// Given by the operator (or restored by undo): a clash is refused.
    Given(ApiKey),
}

/// What the operator saw before confirming, checked against the store before writing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expectation {
    /// The CLI with `--yes`: whatever is there now.
    Current,
    /// The key state the operator confirmed against: `None` = no key.
    Seen(Option<KeyHint>),
}

pub struct Assigned {
    pub contact: Contact,
    /// The key now stored: the one to show once.
    pub key: ApiKey,
    /// The key it replaced, kept in memory only (for undo).
    pub previous: Option<ApiKey>,
    /// True when the proposed key clashed and another was generated.
    pub regenerated: bool,
    /// Set when the key was written but its outcome could not be journaled.
    pub audit_warning: Option<String>,
}

pub struct Revoked {
    pub contact: Contact,
    pub previous: Option<ApiKey>,
    pub audit_warning: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("the store was opened read-only; nothing was written")]
    ReadOnly,
    #[error("that key is already held by contact {0}; refused, nothing was written")]
    KeyInUse(ContactId),
    #[error("the key is longer than this store holds ({len} > {capacity}); refused, nothing was written")]
    TooLong { len: usize, capacity: usize },
    #[error("the contact's key changed since you looked at it; nothing was written. Look again and retry")]
    ChangedSinceSeen,
    #[error("the store kept a different value than was written (truncated or altered on the way: {stored_len} characters stored, {sent_len} sent); the contact's key is now unusable: rotate again")]
    ReadBackMismatch { stored_len: usize, sent_len: usize },
    #[error("generated keys kept clashing with existing keys; nothing was written")]
    NoUniqueKey,
    #[error("the key was written, but another civikey replaced it before it could be read back; the contact holds that rotation's key (see civikey audit)")]
    ReplacedMeanwhile,
}

impl RotationError {
    /// Whether the store may have been changed by the failed attempt.
    pub fn store_may_have_changed(&self) -> bool {
        matches!(
            self,
            RotationError::ReadBackMismatch { .. }
                | RotationError::ReplacedMeanwhile
                | RotationError::Store(StoreError::OutcomeUnknown(_))
        )
    }
}

/// Assigns a key to contact `id` through the whole workflow.
pub fn assign(
    store: &mut dyn ContactStore,
    journal: &mut Journal,
    keys: &mut dyn KeySource,
    id: ContactId,
    expectation: &Expectation,
    new_key: NewKey,
) -> Result<Assigned, RotationError> {
    assign_as(
        store,
        journal,
        keys,
        id,
        expectation,
        new_key,
        audit::Action::Assign,
    )
}

/// Puts back the key a rotation or revoke replaced (or removes the key if there was none),
/// only if the contact still holds what that change set (`set_key`, None after a revoke).
/// Audited as `undo`. Returns the contact as it is now.
pub fn undo(
    store: &mut dyn ContactStore,
    journal: &mut Journal,
    keys: &mut dyn KeySource,
    id: ContactId,
    set_key: Option<&ApiKey>,
    previous: Option<ApiKey>,
) -> Result<Contact, RotationError> {
    let expectation = Expectation::Seen(set_key.map(ApiKey::hint));
    match previous {
        Some(previous) => {
            let new_key = NewKey::Given(previous);
            Ok(assign_as(
                store,
                journal,
                keys,
                id,
                &expectation,
                new_key,
                audit::Action::Undo,
            )?
            .contact)
        }
        None => Ok(revoke_as(store, journal, id, &expectation, audit::Action::Undo)?.contact),
    }
}

/// The new key of `done` could not be handed to anyone (stdout failed, the out file could
/// not be written): puts back the key it replaced, compare-and-set against the new key and
/// journaled as `undo`, so the contact is not left with a key nobody holds. Both records
/// note `reason`. Call it right after [`assign`], before anything else writes to the
/// journal: the assignment is the journal's last intent. Returns the message for the
/// operator: Ok when the old key is back, Err when it is not (someone changed the key
/// meanwhile, or the put-back failed and the contact must be rotated again).
pub fn put_back(
    store: &mut dyn ContactStore,
    journal: &mut Journal,
    keys: &mut dyn KeySource,
    done: Assigned,
    reason: &str,
) -> Result<String, String> {
    let assigned = journal.last_intent();
    put_back_record(store, journal, keys, done, assigned, reason)
}

/// [`put_back`] of an assignment journaled as `assigned` (one of [`assign_batch`]'s).
pub fn put_back_record(
    store: &mut dyn ContactStore,
    journal: &mut Journal,
    keys: &mut dyn KeySource,
    done: Assigned,
    assigned: Option<audit::RecordId>,
    reason: &str,
) -> Result<String, String> {
    let id = done.contact.id;
    let result = undo(store, journal, keys, id, Some(&done.key), done.previous);
    let (assign_note, message) = match &result {
        Ok(_) => (
            format!("the new key was not delivered ({reason}); the old key was put back"),
            Ok(format!(
                "{reason}, so the new key reached nobody; the old key was put back: contact {id} works as before"
            )),
        ),
        Err(RotationError::ChangedSinceSeen | RotationError::Store(StoreError::Conflict)) => (
            format!("the new key was not delivered ({reason}); someone else had changed the key meanwhile, so nothing was put back"),
            Err(format!(
                "{reason}, so the new key reached nobody; meanwhile someone else changed contact {id}'s key, so it was left as they set it (see civikey audit)"
            )),
        ),
        Err(e) => (
            format!("the new key was not delivered ({reason}) and the old key could not be put back ({e}): nobody holds this key"),
            Err(format!(
                "{reason}, so the new key reached nobody, and the old key could not be put back ({e}): contact {id} now holds a key nobody has; it must be rotated again"
            )),
        ),
    };
    let mut notes: Vec<Result<(), AuditError>> = assigned
        .map(|record| journal.annotate(record, &assign_note))
        .into_iter()
        .collect();
    if result.is_ok() {
        if let Some(record) = journal.last_intent().filter(|r| Some(*r) != assigned) {
            notes.push(journal.annotate(
                record,
                &format!("put back: the new key was not delivered ({reason})"),
            ));
        }
    }
    match (message, notes.into_iter().find_map(Result::err)) {
        (message, None) => message,
        (Ok(m), Some(e)) => Ok(format!("{m} (the journal could not note it: {e})")),
        (Err(m), Some(e)) => Err(format!("{m} (the journal could not note it: {e})")),
    }
}

/// Settles earlier unsettled journal records of contact `id` whose writers are gone, against
/// the key the store holds, read after that was known. Returns that key.
pub fn reconcile(
    store: &mut dyn ContactStore,
    journal: &mut Journal,
    id: ContactId,
) -> Result<Option<ApiKey>, RotationError> {
    let pending = journal.settleable(id)?;
    let current = store.read_key(id)?;
    if !pending.is_empty() {
        journal.settle(&pending, current.as_ref())?;
    }
    Ok(current)
}

fn assign_as(
    store: &mut dyn ContactStore,
    journal: &mut Journal,
    keys: &mut dyn KeySource,
    id: ContactId,
    expectation: &Expectation,
    new_key: NewKey,
    action: audit::Action,
) -> Result<Assigned, RotationError> {
    let info = store.info();
    if !info.writable {
        return Err(RotationError::ReadOnly);
    }
    // Step 1: the current state is the compare-and-set expectation.
    let (contact, previous) = read_current(store, journal, id)?;
    check_expectation(expectation, previous.as_ref())?;

    // Step 2: uniqueness.
    let (mut key, generated) = match new_key {
        NewKey::Generated(k) => (k, true),
        NewKey::Given(k) => (k, false),
    };
    let mut regenerated = false;
    let mut attempts = 0;
    loop {
        if key.len() > info.key_capacity {
            return Err(RotationError::TooLong {
                len: key.len(),
                capacity: info.key_capacity,
            });
        }
        let holders = store
            .holders_of(&key)
            .map_err(|e| hide_keys(e, &held(previous.as_ref(), Some(&key))))?;
        let clash = holders.first().copied().or_else(|| {
            // A store that compares case-sensitively still must not hold a key that a
            // case-insensitive CiviCRM would confuse with the current one.
            previous
                .as_ref()
                .filter(|p| p.eq_ignore_case(&key))
                .map(|_| id)
        });
        match clash {
            None => break,
            Some(holder) if !generated => return Err(RotationError::KeyInUse(holder)),
            Some(_) => {
                attempts += 1;
                if attempts > MAX_REGENERATIONS {
                    return Err(RotationError::NoUniqueKey);
                }
                key = ApiKey::generate_from(keys)?;
                regenerated = true;
            }
        }
    }

    // Step 3: the intent is on disk before the store is touched.
    let record = journal.intent(
        id,
        &contact.display_name,
        action,
        previous.as_ref(),
        Some(&key),
    )?;

    // Steps 4 and 5: compare-and-set, then read back.
    let result = write_and_verify(store, id, previous.as_ref(), Some(&key));
    let result = replaced_meanwhile(journal, record, id, Some(&key), result);

    // Step 6: the outcome.
    let audit_warning = close_record(journal, record, &result);
    result?;
    let contact = store.contact(id).unwrap_or(contact);
    Ok(Assigned {
        contact,
        key,
        previous,
        regenerated,
        audit_warning,
    })
}

/// One contact of [`assign_batch`] on its way: what was read, the key it gets.
struct Slot {
    contact: Contact,
    previous: Option<ApiKey>,
    key: ApiKey,
    regenerated: bool,
    record: Option<audit::RecordId>,
}

/// [`assign`] of a freshly generated key to each contact of `items`, the workflow's steps
/// done for all of them at once, each step one request on stores that batch (REST: read
/// the contacts, their keys, the new keys' holders, the compare-and-set updates as one
/// multi-call, the read-back). Each contact keeps its own outcome, journaled as [`assign`]
/// journals it: its intent is on disk before any update is sent. An update whose answer is
/// lost is unknown for every contact it carried, and never retried. Returns, in order,
/// each contact's journal intent (when one was written) and result.
pub fn assign_batch(
    store: &mut dyn ContactStore,
    journal: &mut Journal,
    keys: &mut dyn KeySource,
    items: &[(ContactId, &Expectation)],
) -> Vec<(Option<audit::RecordId>, Result<Assigned, RotationError>)> {
    let info = store.info();
    if !info.writable {
        return items
            .iter()
            .map(|_| (None, Err(RotationError::ReadOnly)))
            .collect();
    }
    let ids: Vec<ContactId> = items.iter().map(|(id, _)| *id).collect();
    // Step 1: the contacts and their keys. A contact gone since the ids were validated
    // sends this batch down the one-by-one path, which tells each contact's story.
    let contacts = match store.contacts(&ids) {
        Ok(c) => c,
        Err(StoreError::NotFound(_)) => {
            return items
                .iter()
                .map(|(id, expectation)| {
                    let result = ApiKey::generate_from(keys)
                        .map_err(RotationError::from)
                        .and_then(|key| {
                            assign(
                                store,
                                journal,
                                keys,
                                *id,
                                expectation,
                                NewKey::Generated(key),
                            )
                        });
                    let record = result.as_ref().ok().and(journal.last_intent());
                    (record, result)
                })
                .collect()
        }
        Err(e) => {
            return items
                .iter()
                .map(|_| (None, Err(e.again().into())))
                .collect()
        }
    };
    // Earlier records whose writers are gone, listed before the keys are read (as
    // [`reconcile`] does): settled against a key read after they were known.
    let mut pending: Vec<Result<Vec<audit::Unsettled>, AuditError>> =
        ids.iter().map(|&id| journal.settleable(id)).collect();
    let current = match store.read_keys(&ids) {
        Ok(c) => c,
        Err(e) => {
            return items
                .iter()
                .map(|_| (None, Err(e.again().into())))
                .collect()
        }
    };
    let mut results: Vec<Option<Result<Assigned, RotationError>>> =
        items.iter().map(|_| None).collect();
    let mut slots: Vec<Option<Slot>> = Vec::with_capacity(items.len());
    let mut records: Vec<Option<audit::RecordId>> = vec![None; items.len()];
    for ((((id, expectation), contact), result), pending) in items
        .iter()
        .zip(contacts)
        .zip(results.iter_mut())
        .zip(pending.iter_mut())
    {
        let slot = (|| -> Result<Slot, RotationError> {
            let Some(previous) = current.get(id).cloned() else {
                return Err(StoreError::NotFound(*id).into());
            };
            let pending = std::mem::replace(pending, Ok(Vec::new()))?;
            if !pending.is_empty() {
                journal.settle(&pending, previous.as_ref())?;
            }
            check_expectation(expectation, previous.as_ref())?;
            let key = ApiKey::generate_from(keys)?;
            if key.len() > info.key_capacity {
                return Err(RotationError::TooLong {
                    len: key.len(),
                    capacity: info.key_capacity,
                });
            }
            Ok(Slot {
                contact,
                previous,
                key,
                regenerated: false,
                record: None,
            })
        })();
        match slot {
            Ok(slot) => slots.push(Some(slot)),
            Err(e) => {
                *result = Some(Err(e));
                slots.push(None);
            }
        }
    }

    // Step 2: uniqueness of every new key, one check for all; a clash makes another key.
    let mut unsure: Vec<usize> = (0..slots.len()).filter(|&i| slots[i].is_some()).collect();
    for attempt in 0..=MAX_REGENERATIONS {
        if unsure.is_empty() {
            break;
        }
        let asked: Vec<&ApiKey> = unsure
            .iter()
            .filter_map(|&i| slots[i].as_ref().map(|s| &s.key))
            .collect();
        let answer = store.holders_of_keys(&asked);
        let answer = answer.map_err(|e| hide_keys(e, &batch_keys(&slots)));
        let holders = match answer {
            Ok(h) => h,
            Err(e) => {
                for &i in &unsure {
                    slots[i] = None;
                    results[i] = Some(Err(e.again().into()));
                }
                break;
            }
        };
        let mut clashing = Vec::new();
        for (&i, held) in unsure.iter().zip(holders) {
            let Some(slot) = &slots[i] else { continue };
            let same_as_old = slot
                .previous
                .as_ref()
                .is_some_and(|p| p.eq_ignore_case(&slot.key));
            let same_as_other = slots.iter().enumerate().any(|(j, other)| {
                j < i
                    && other
                        .as_ref()
                        .is_some_and(|o| o.key.eq_ignore_case(&slot.key))
            });
            if held.is_empty() && !same_as_old && !same_as_other {
                continue;
            }
            if attempt == MAX_REGENERATIONS {
                slots[i] = None;
                results[i] = Some(Err(RotationError::NoUniqueKey));
                continue;
            }
            match ApiKey::generate_from(keys) {
                Ok(key) => {
                    if let Some(slot) = slots[i].as_mut() {
                        slot.key = key;
                        slot.regenerated = true;
                    }
                    clashing.push(i);
                }
                Err(e) => {
                    slots[i] = None;
                    results[i] = Some(Err(e.into()));
                }
            }
        }
        unsure = clashing;
    }

    // Step 3: every intent on disk before any update is sent.
    for (slot, result) in slots.iter_mut().zip(results.iter_mut()) {
        let Some(s) = slot else { continue };
        match journal.intent(
            s.contact.id,
            &s.contact.display_name,
            audit::Action::Assign,
            s.previous.as_ref(),
            Some(&s.key),
        ) {
            Ok(record) => s.record = Some(record),
            Err(e) => {
                *result = Some(Err(e.into()));
                *slot = None;
            }
        }
    }

    // Steps 4 and 5: the compare-and-set updates together, then one read-back.
    let ready: Vec<usize> = (0..slots.len()).filter(|&i| slots[i].is_some()).collect();
    let swaps: Vec<KeySwap<'_>> = ready
        .iter()
        .filter_map(|&i| slots[i].as_ref())
        .map(|s| KeySwap {
            id: s.contact.id,
            expected: s.previous.as_ref(),
            new: Some(&s.key),
        })
        .collect();
    let written = store.swap_keys(&swaps);
    drop(swaps);
    let held = batch_keys(&slots);
    let mut outcomes: Vec<(usize, Result<(), RotationError>)> = ready
        .iter()
        .zip(written)
        .map(|(&i, r)| (i, r.map_err(|e| hide_keys(e, &held).into())))
        .collect();
    let sent: Vec<ContactId> = outcomes
        .iter()
        .filter(|(_, r)| r.is_ok())
        .filter_map(|(i, _)| slots[*i].as_ref().map(|s| s.contact.id))
        .collect();
    if !sent.is_empty() {
        let stored = store.read_keys(&sent);
        for (i, outcome) in outcomes.iter_mut().filter(|(_, r)| r.is_ok()) {
            let Some(slot) = &slots[*i] else { continue };
            *outcome = match &stored {
                Err(e) => Err(StoreError::OutcomeUnknown(SafeText::new(&format!(
                    "the write was sent but could not be read back: {}",
                    hide_keys(e.again(), &held)
                )))
                .into()),
                Ok(stored) => match stored.get(&slot.contact.id) {
                    None => Err(StoreError::OutcomeUnknown(SafeText::new(
                        "the write was sent but the contact could not be read back: it was not found",
                    ))
                    .into()),
                    Some(back) if back.as_ref() != Some(&slot.key) => {
                        Err(RotationError::ReadBackMismatch {
                            stored_len: back.as_ref().map_or(0, ApiKey::len),
                            sent_len: slot.key.len(),
                        })
                    }
                    Some(_) => Ok(()),
                },
            };
        }
    }
    drop(held);

    // Step 6: each outcome.
    for (i, outcome) in outcomes {
        let Some(slot) = slots[i].take() else {
            continue;
        };
        let Some(record) = slot.record else { continue };
        let outcome =
            replaced_meanwhile(journal, record, slot.contact.id, Some(&slot.key), outcome);
        let audit_warning = close_record(journal, record, &outcome);
        results[i] = Some(outcome.map(|()| {
            let mut contact = slot.contact;
            contact.key = Some(slot.key.hint());
            Assigned {
                contact,
                key: slot.key,
                previous: slot.previous,
                regenerated: slot.regenerated,
                audit_warning,
            }
        }));
        records[i] = Some(record);
    }
    // Every contact has its result by now: each step that drops a slot sets it.
    records
        .into_iter()
        .zip(results)
        .map(|(record, r)| {
            let missing = || {
                StoreError::OutcomeUnknown(SafeText::new(
                    "the store gave no outcome for this contact's write; look at it again before retrying",
                ))
            };
            (record, r.unwrap_or_else(|| Err(missing().into())))
        })
        .collect()
}

/// `e` with `keys` hidden, by the one policy ([`StoreError::hiding`]): stores opened by
/// the factory already hide their own secrets and the call's keys; the workflow hides every
/// key it holds again, whichever store (or test double) produced the error.
fn hide_keys(e: StoreError, keys: &[&ApiKey]) -> StoreError {
    let keys: Vec<&str> = keys.iter().map(|k| k.expose()).collect();
    e.hiding(&keys)
}

/// Every key a batch holds, old and new, for [`hide_keys`].
fn batch_keys(slots: &[Option<Slot>]) -> Vec<&ApiKey> {
    slots
        .iter()
        .flatten()
        .flat_map(|s| s.previous.iter().chain([&s.key]))
        .collect()
}

/// Removes contact `id`'s key (compare-and-set against what was read), then checks it is gone.
pub fn revoke(
    store: &mut dyn ContactStore,
    journal: &mut Journal,
    id: ContactId,
    expectation: &Expectation,
) -> Result<Revoked, RotationError> {
    revoke_as(store, journal, id, expectation, audit::Action::Revoke)
}

fn revoke_as(
    store: &mut dyn ContactStore,
    journal: &mut Journal,
    id: ContactId,
    expectation: &Expectation,
    action: audit::Action,
) -> Result<Revoked, RotationError> {
    if !store.info().writable {
        return Err(RotationError::ReadOnly);
    }
    let (contact, previous) = read_current(store, journal, id)?;
    check_expectation(expectation, previous.as_ref())?;
    let mut audit_warning = None;
    if previous.is_some() {
        let record = journal.intent(id, &contact.display_name, action, previous.as_ref(), None)?;
        let result = write_and_verify(store, id, previous.as_ref(), None);
        let result = replaced_meanwhile(journal, record, id, None, result);
        audit_warning = close_record(journal, record, &result);
        result?;
    }
    let contact = store.contact(id).unwrap_or(contact);
    Ok(Revoked {
        contact,
        previous,
        audit_warning,
    })
}

/// Step 1, with reconciliation of earlier unknown outcomes for this contact.
fn read_current(
    store: &mut dyn ContactStore,
    journal: &mut Journal,
    id: ContactId,
) -> Result<(Contact, Option<ApiKey>), RotationError> {
    let contact = store.contact(id)?;
    let previous = reconcile(store, journal, id)?;
    Ok((contact, previous))
}

/// The keys an operation holds, for [`hide_keys`].
fn held<'a>(old: Option<&'a ApiKey>, new: Option<&'a ApiKey>) -> Vec<&'a ApiKey> {
    old.into_iter().chain(new).collect()
}

/// Steps 4 and 5. Store errors come back with the old and the new key hidden, before they
/// are journaled or shown.
fn write_and_verify(
    store: &mut dyn ContactStore,
    id: ContactId,
    expected: Option<&ApiKey>,
    new: Option<&ApiKey>,
) -> Result<(), RotationError> {
    write_and_verify_raw(store, id, expected, new).map_err(|e| match e {
        RotationError::Store(e) => RotationError::Store(hide_keys(e, &held(expected, new))),
        other => other,
    })
}

fn write_and_verify_raw(
    store: &mut dyn ContactStore,
    id: ContactId,
    expected: Option<&ApiKey>,
    new: Option<&ApiKey>,
) -> Result<(), RotationError> {
    store.swap_key(id, expected, new)?;
    let stored = store.read_key(id).map_err(|e| {
        StoreError::OutcomeUnknown(SafeText::new(&format!(
            "the write was sent but could not be read back: {e}"
        )))
    })?;
    if stored.as_ref() != new {
        return Err(RotationError::ReadBackMismatch {
            stored_len: stored.map_or(0, |s| s.len()),
            sent_len: new.map_or(0, ApiKey::len),
        });
    }
    Ok(())
}

/// A read-back that differs because another civikey changed the key right after this
/// write (its journal intent names this write's key as the one it replaced, so it read it
/// from the store) is not a store that altered the value: the write was done.
fn replaced_meanwhile(
    journal: &Journal,
    record: audit::RecordId,
    id: ContactId,
    written: Option<&ApiKey>,
    result: Result<(), RotationError>,
) -> Result<(), RotationError> {
    match result {
        Err(RotationError::ReadBackMismatch { .. })
            if journal.replaced_after(record, id, written).unwrap_or(false) =>
        {
            Err(RotationError::ReplacedMeanwhile)
        }
        result => result,
    }
}

/// Writes the outcome record. A failure here cannot undo the store write, so it becomes a
/// warning for the operator; the record stays "in flight" and is settled on the next look.
fn close_record(
    journal: &mut Journal,
    record: audit::RecordId,
    result: &Result<(), RotationError>,
) -> Option<String> {
    let (outcome, error) = match result {
        Ok(()) => (Outcome::Done, None),
        Err(RotationError::Store(StoreError::Conflict)) => (Outcome::Conflict, None),
        Err(RotationError::ReplacedMeanwhile) => (
            Outcome::Done,
            Some("written, then replaced by a later rotation before it was read back".into()),
        ),
        Err(e @ RotationError::Store(StoreError::OutcomeUnknown(_))) => {
            (Outcome::Unknown, Some(e.to_string()))
        }
        Err(e) => (Outcome::Failed, Some(e.to_string())),
    };
    journal
        .outcome(record, outcome, error.as_deref())
        .err()
        .map(|e| {
            format!("the outcome could not be journaled ({e}); it will be settled on the next look")
        })
}

fn check_expectation(
    expectation: &Expectation,
    current: Option<&ApiKey>,
) -> Result<(), RotationError> {
    match expectation {
        Expectation::Current => Ok(()),
        // The whole key, by its fingerprint, not its last four characters: a key changed
        // meanwhile to one ending the same was changed all the same.
        Expectation::Seen(seen) => match (seen, current) {
            (None, None) => Ok(()),
            (Some(seen), Some(current)) if seen.matches(current) => Ok(()),
            _ => Err(RotationError::ChangedSinceSeen),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Actor;
    use crate::key::OsKeySource;
    use crate::seed::SeedContact;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{Page, Query, StoreInfo};

    /// A SQLite store whose writes (or uniqueness checks) fail with a message quoting
    /// every key they were handed, as a MySQL trigger, a REST site or `cv` can.
    struct Echoing {
        inner: SqliteStore,
        make: fn(SafeText) -> StoreError,
        on_holders: bool,
    }

    impl ContactStore for Echoing {
        fn info(&self) -> StoreInfo {
            self.inner.info()
        }
        fn search(&mut self, query: &Query) -> Result<Page, StoreError> {
            self.inner.search(query)
        }
        fn contact(&mut self, id: ContactId) -> Result<Contact, StoreError> {
            self.inner.contact(id)
        }
        fn holders_of(&mut self, key: &ApiKey) -> Result<Vec<ContactId>, StoreError> {
            if self.on_holders {
                return Err((self.make)(SafeText::new(&format!(
                    "cannot search for {} ({})",
                    key.expose(),
                    key.expose().to_ascii_uppercase()
                ))));
            }
            self.inner.holders_of(key)
        }
        fn read_key(&mut self, id: ContactId) -> Result<Option<ApiKey>, StoreError> {
            self.inner.read_key(id)
        }
        fn key_holders(
            &mut self,
            after: Option<&crate::store::HolderCursor>,
            limit: usize,
        ) -> Result<crate::store::HolderPage, StoreError> {
            self.inner.key_holders(after, limit)
        }
        fn swap_key(
            &mut self,
            _id: ContactId,
            expected: Option<&ApiKey>,
            new: Option<&ApiKey>,
        ) -> Result<(), StoreError> {
            let quote = |k: Option<&ApiKey>| k.map_or(String::new(), |k| k.expose().to_string());
            Err((self.make)(SafeText::new(&format!(
                "45000 trigger said: {}{} / old={} new={}",
                quote(expected),
                quote(new),
                quote(expected).to_ascii_lowercase(),
                quote(new)
            ))))
        }
    }

    #[test]
    fn store_errors_are_shown_and_journaled_without_the_keys() {
        let makers: [fn(SafeText) -> StoreError; 8] = [
            StoreError::PermissionDenied,
            StoreError::ReadOnly,
            StoreError::Unreachable,
            StoreError::Timeout,
            StoreError::BadData,
            StoreError::TooLarge,
            StoreError::OutcomeUnknown,
            StoreError::Invalid,
        ];
        for (i, make) in makers.into_iter().enumerate() {
            for on_holders in [false, true] {
                let dir = tempfile::tempdir().unwrap();
                let old = ApiKey::generate().unwrap();
                let contact = SeedContact {
                    id: Some(7),
                    contact_type: "Individual".into(),
                    display_name: "Ada".into(),
                    sort_name: "Ada".into(),
                    first_name: None,
                    last_name: None,
                    email: None,
                    is_deleted: false,
                    api_key: Some(old.clone()),
                    uf_id: None,
                    roles: vec![],
                };
                let path = dir.path().join("s.sqlite");
                let inner = SqliteStore::create(&path, [contact], &mut |_| {}).unwrap();
                let mut store = Echoing {
                    inner,
                    make,
                    on_holders,
                };
                let actor = Actor {
                    operator: "alice".into(),
                    ..Actor::default()
                };
                let mut journal = Journal::open(&dir.path().join("data"), actor).unwrap();
                let new = ApiKey::generate().unwrap();
                let given = ApiKey::from_store(new.expose().to_string());
                let err = assign(
                    &mut store,
                    &mut journal,
                    &mut OsKeySource,
                    7,
                    &Expectation::Current,
                    NewKey::Generated(given),
                )
                .err()
                .unwrap();
                let shown = err.to_string();
                let journal_bytes = std::fs::read(journal.path()).unwrap();
                let entries = format!("{:?}", journal.entries(Some(7), true, 10).unwrap());
                for key in [&old, &new] {
                    for text in [key.expose().to_string(), key.expose().to_ascii_lowercase()] {
                        assert!(!shown.contains(&text), "{i} {on_holders}: {shown}");
                        assert!(!entries.contains(&text), "{i}: {entries}");
                        assert!(
                            !journal_bytes
                                .windows(text.len())
                                .any(|w| w == text.as_bytes()),
                            "{i}: the journal file holds a key"
                        );
                    }
                }
                assert!(shown.contains(crate::store::error::HIDDEN), "{shown}");
                if !on_holders {
                    assert!(
                        entries.contains(crate::store::error::HIDDEN),
                        "{i}: {entries}"
                    );
                }
            }
        }
    }
}
