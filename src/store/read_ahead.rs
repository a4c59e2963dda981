//! A whole-site read of the key holders, as every store hands it to the health check: the
//! store reads on a thread of its own while the check judges the batch before, so the
//! store's waiting (a site's next page, a server's next rows) and civikey's judging
//! overlap; and the holders a store reads one row at a time go over in batches of
//! [`HOLDER_PAGE`].

use std::sync::mpsc::sync_channel;

use super::paging::HOLDER_PAGE;
use super::{Holder, SiteRead, SiteReader, SiteUsers, StoreError};

/// Where a reader hands its batches.
pub type Emit<'a> = dyn FnMut(Vec<Holder>) -> Result<(), StoreError> + 'a;

/// Runs `read` on a thread of its own, handing each batch it emits to `each` here, through
/// a channel that holds one batch: at most three batches are in memory (one judged, one
/// waiting, one being read). When `each` stops the read (an error), `read`'s next hand-over
/// fails and it stops; its error then goes nowhere, `each`'s is the answer.
pub fn read_ahead(
    read: impl FnOnce(&mut Emit<'_>) -> Result<(), StoreError> + Send,
    each: &mut Emit<'_>,
) -> Result<(), StoreError> {
    read_ahead_all(vec![read], each)
}

/// [`read_ahead`] with several readers side by side, each on a thread of its own (calls of
/// their own to the site), their batches handed to `each` as they come, in no set order:
/// at most two batches per reader and the one judged are in memory. The first error of
/// any is the answer, and stops the others at their next hand-over.
pub fn read_ahead_all<R>(readers: Vec<R>, each: &mut Emit<'_>) -> Result<(), StoreError>
where
    R: FnOnce(&mut Emit<'_>) -> Result<(), StoreError> + Send,
{
    let (batches, next_batch) = sync_channel::<Result<Vec<Holder>, StoreError>>(readers.len());
    std::thread::scope(|scope| {
        for read in readers {
            let batches = batches.clone();
            scope.spawn(move || {
                let handed = read(&mut |batch| {
                    batches
                        .send(Ok(batch))
                        .map_err(|_| StoreError::bad_data("the health check stopped the read"))
                });
                if let Err(e) = handed {
                    let _ = batches.send(Err(e));
                }
            });
        }
        // The channel ends when every reader has.
        drop(batches);
        for batch in next_batch {
            // On an error `next_batch` is dropped here: the other readers' next hand-over
            // fails, and the scope waits for them to stop.
            each(batch?)?;
        }
        Ok(())
    })
}

/// `users` on a thread of its own while `holders` reads (a read that reads ahead itself:
/// [`read_ahead`], [`read_ahead_all`]), for [`super::ContactStore::read_users_and_holders`]:
/// `each` hears the users first, once, when the first batch is there (or the read ended
/// without one), then every batch. An error of either read is the answer; a panic in the
/// users' read is this thread's.
pub fn users_beside(
    users: impl FnOnce() -> Result<Option<SiteUsers>, StoreError> + Send,
    holders: impl FnOnce(&mut Emit<'_>) -> Result<(), StoreError>,
    each: &mut SiteReader<'_>,
) -> Result<(), StoreError> {
    std::thread::scope(|scope| {
        let mut users = Some(scope.spawn(users));
        let mut users_first = |each: &mut SiteReader<'_>| match users.take() {
            Some(read) => match read.join() {
                Ok(read) => each(SiteRead::Users(read?)),
                Err(panic) => std::panic::resume_unwind(panic),
            },
            None => Ok(()),
        };
        holders(&mut |batch| {
            users_first(each)?;
            each(SiteRead::Holders(batch))
        })?;
        users_first(each)
    })
}

/// The holders `read` gives one at a time, emitted in batches of [`HOLDER_PAGE`] (the last
/// one possibly shorter or empty).
pub fn in_batches(
    read: impl FnOnce(&mut dyn FnMut(Holder) -> Result<(), StoreError>) -> Result<(), StoreError>,
    emit: &mut Emit<'_>,
) -> Result<(), StoreError> {
    let mut batch = Vec::new();
    read(&mut |holder| {
        batch.push(holder);
        if batch.len() >= HOLDER_PAGE {
            emit(std::mem::take(&mut batch))?;
        }
        Ok(())
    })?;
    emit(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::ApiKey;
    use crate::sanitize::SafeText;
    use crate::store::{CmsLink, Contact};

    fn holder(id: u64) -> Holder {
        Holder {
            contact: Contact {
                id,
                contact_type: SafeText::new("Individual"),
                display_name: SafeText::new("Ada"),
                sort_name: SafeText::new("Ada"),
                email: None,
                is_deleted: false,
                key: None,
                cms: CmsLink::None,
            },
            key: ApiKey::from_store(format!("Key{id:0>29}")),
        }
    }

    #[test]
    fn batches_arrive_whole_and_in_order() {
        let mut got = Vec::new();
        read_ahead(
            |emit| in_batches(|row| (1..=25_001).try_for_each(|id| row(holder(id))), emit),
            &mut |batch| {
                got.push(batch.iter().map(|h| h.contact.id).collect::<Vec<_>>());
                Ok(())
            },
        )
        .unwrap();
        let sizes: Vec<usize> = got.iter().map(Vec::len).collect();
        assert_eq!(sizes, [HOLDER_PAGE, HOLDER_PAGE, 5_001]);
        assert_eq!(got.concat(), (1..=25_001).collect::<Vec<_>>());
    }

    #[test]
    fn the_readers_error_is_the_answer() {
        let result = read_ahead(
            |emit| {
                emit(vec![holder(1)])?;
                Err(StoreError::bad_data("the site went away"))
            },
            &mut |_| Ok(()),
        );
        assert!(matches!(result, Err(e) if e.to_string().contains("went away")));
    }

    #[test]
    fn a_stop_by_the_judge_stops_the_reader() {
        let mut emitted = 0;
        let result = read_ahead(
            |emit| {
                for id in 1..=100 {
                    emitted += 1;
                    emit(vec![holder(id)])?;
                }
                Ok(())
            },
            &mut |batch| match batch[0].contact.id {
                2 => Err(StoreError::bad_data("enough")),
                _ => Ok(()),
            },
        );
        assert!(matches!(result, Err(e) if e.to_string().contains("enough")));
        // Two judged, one waiting in the channel, one refused: never the hundred.
        assert!(emitted <= 4, "{emitted} emitted");
    }

    /// What `users_beside` handed over, in order: "users" or a batch's first id.
    fn heard(
        users: impl FnOnce() -> Result<Option<SiteUsers>, StoreError> + Send,
        holders: impl FnOnce(&mut Emit<'_>) -> Result<(), StoreError> + Send,
    ) -> (Vec<String>, Result<(), StoreError>) {
        let mut heard = Vec::new();
        let result = users_beside(users, holders, &mut |read| {
            heard.push(match read {
                SiteRead::Users(_) => "users".to_string(),
                SiteRead::Holders(batch) => batch[0].contact.id.to_string(),
            });
            Ok(())
        });
        (heard, result)
    }

    #[test]
    fn the_users_come_first_however_slow() {
        let (heard, result) = heard(
            || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                Ok(Some(SiteUsers::default()))
            },
            |emit| (1..=3).try_for_each(|id| emit(vec![holder(id)])),
        );
        result.unwrap();
        assert_eq!(heard, ["users", "1", "2", "3"]);
    }

    #[test]
    fn the_users_come_once_when_no_holder_does() {
        let (heard, result) = heard(|| Ok(None), |_| Ok(()));
        result.unwrap();
        assert_eq!(heard, ["users"]);
    }

    #[test]
    fn the_users_error_stops_the_read() {
        let (heard, result) = heard(
            || Err(StoreError::bad_data("users refused")),
            |emit| (1..=100).try_for_each(|id| emit(vec![holder(id)])),
        );
        assert!(matches!(result, Err(e) if e.to_string().contains("users refused")));
        assert!(heard.is_empty(), "{heard:?}");
    }
}
