//! What a compare-and-set write's count means, for every store: the write names the
//! contact's id and the key it must still hold, so the count of contacts it matched says
//! whether it applied.

use super::{ContactId, StoreError};

/// The outcome of a compare-and-set of contact `id` that matched `matched` contacts: one,
/// done; none, the key was no longer the one expected ([`StoreError::Conflict`]) or the
/// contact is gone ([`StoreError::NotFound`]), as `exists` (asked only then) tells; more,
/// the id was not unique and the store cannot be trusted ([`StoreError::BadData`]).
pub fn swap_outcome(
    id: ContactId,
    matched: u64,
    exists: impl FnOnce() -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    match matched {
        1 => Ok(()),
        0 if exists()? => Err(StoreError::Conflict),
        0 => Err(StoreError::NotFound(id)),
        n => Err(StoreError::bad_data(format!(
            "{n} contacts matched the one contact id {id}; check their keys"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_none_or_many_matched() {
        let asked = std::cell::Cell::new(false);
        let exists = |answer: bool| {
            let asked = &asked;
            move || {
                asked.set(true);
                Ok(answer)
            }
        };
        assert!(swap_outcome(7, 1, exists(true)).is_ok());
        assert!(!asked.get(), "a write that applied needs no second look");
        assert!(matches!(
            swap_outcome(7, 0, exists(true)),
            Err(StoreError::Conflict)
        ));
        assert!(matches!(
            swap_outcome(7, 0, exists(false)),
            Err(StoreError::NotFound(7))
        ));
        assert!(matches!(
            swap_outcome(7, 2, exists(true)),
            Err(StoreError::BadData(_))
        ));
        assert!(matches!(
            swap_outcome(7, 0, || Err(StoreError::unreachable("gone"))),
            Err(StoreError::Unreachable(_))
        ));
    }
}
