//! THE assign/revoke workflow, shared by the TUI and the CLI.
//!
//! 1. read the contact and its current key (the compare-and-set expectation);
//! 2. uniqueness: no contact holds the new key (as the store compares keys);
//! 3. compare-and-set write: nothing is written if the key changed meanwhile;
//! 4. read back and compare: a truncating column, a trigger or a proxy is caught.
//!
//! Nothing here retries a write whose outcome is unknown.

use crate::key::{ApiKey, KeyError, KeyHint, KeySource};
use crate::store::{Contact, ContactId, ContactStore, StoreError};

/// How many fresh keys to try when a generated key is already in use (vanishingly rare:
/// 190 bits of randomness; a repeat clash means something else is wrong).
const MAX_REGENERATIONS: usize = 5;

/// The key to assign.
pub enum NewKey {
    /// Made by civikey: a clash means "make another".
    Generated(ApiKey),
    /// Given by the operator: a clash is refused.
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
}

pub struct Revoked {
    pub contact: Contact,
    pub previous: Option<ApiKey>,
}

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("the store was opened read-only; nothing was written")]
    ReadOnly,
    #[error("that key is already held by contact {0}; refused, nothing was written")]
    KeyInUse(ContactId),
    #[error("the key is longer than this store holds ({len} > {capacity}); refused")]
    TooLong { len: usize, capacity: usize },
    #[error("the contact's key changed since you looked at it; nothing was written. Look again and retry")]
    ChangedSinceSeen,
    #[error("the store kept a different value than was written (truncated or altered on the way: {stored_len} characters stored, {sent_len} sent); the contact's key is now unusable, rotate again or restore it")]
    ReadBackMismatch { stored_len: usize, sent_len: usize },
    #[error("generated keys kept clashing with existing keys; nothing was written")]
    NoUniqueKey,
}

impl RotationError {
    /// Whether the store may have been changed by the failed attempt.
    pub fn store_may_have_changed(&self) -> bool {
        matches!(
            self,
            RotationError::ReadBackMismatch { .. }
                | RotationError::Store(StoreError::OutcomeUnknown(_))
        )
    }
}

/// Assigns a key to contact `id` through the whole workflow.
pub fn assign(
    store: &mut dyn ContactStore,
    keys: &mut dyn KeySource,
    id: ContactId,
    expectation: &Expectation,
    new_key: NewKey,
) -> Result<Assigned, RotationError> {
    let info = store.info();
    if !info.writable {
        return Err(RotationError::ReadOnly);
    }
    // Step 1: the current state is the compare-and-set expectation.
    let contact = store.contact(id)?;
    let previous = store.read_key(id)?;
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
        let holders = store.holders_of(&key)?;
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

    // Step 3: compare-and-set.
    store.swap_key(id, previous.as_ref(), Some(&key))?;

    // Step 4: read back.
    let stored = store.read_key(id).map_err(|e| {
        StoreError::OutcomeUnknown(crate::sanitize::SafeText::new(&format!(
            "the key was written but could not be read back: {e}"
        )))
    })?;
    match stored {
        Some(s) if s == key => {}
        other => {
            return Err(RotationError::ReadBackMismatch {
                stored_len: other.map_or(0, |s| s.len()),
                sent_len: key.len(),
            })
        }
    }
    let contact = store.contact(id).unwrap_or(contact);
    Ok(Assigned {
        contact,
        key,
        previous,
        regenerated,
    })
}

/// Removes contact `id`'s key (compare-and-set against what was read), then checks it is gone.
pub fn revoke(
    store: &mut dyn ContactStore,
    id: ContactId,
    expectation: &Expectation,
) -> Result<Revoked, RotationError> {
    if !store.info().writable {
        return Err(RotationError::ReadOnly);
    }
    let contact = store.contact(id)?;
    let previous = store.read_key(id)?;
    check_expectation(expectation, previous.as_ref())?;
    if previous.is_some() {
        store.swap_key(id, previous.as_ref(), None)?;
        if let Some(left) = store.read_key(id)? {
            return Err(RotationError::ReadBackMismatch {
                stored_len: left.len(),
                sent_len: 0,
            });
        }
    }
    let contact = store.contact(id).unwrap_or(contact);
    Ok(Revoked { contact, previous })
}

fn check_expectation(
    expectation: &Expectation,
    current: Option<&ApiKey>,
) -> Result<(), RotationError> {
    match expectation {
        Expectation::Current => Ok(()),
        Expectation::Seen(seen) => {
            if seen.as_ref() == current.map(ApiKey::hint).as_ref() {
                Ok(())
            } else {
                Err(RotationError::ChangedSinceSeen)
            }
        }
    }
}
