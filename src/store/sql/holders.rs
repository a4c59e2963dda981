//! A page of key holders as both SQL stores read them: in id order, the next page after
//! the last id (so keys changed between pages never make a holder read twice or skipped).

use crate::store::{paging, Holder, HolderCursor, HolderPage};

/// The page of `holders` (read with a limit of `limit + 1`, in id order).
pub fn holder_page(holders: Vec<Holder>, limit: usize) -> HolderPage {
    let (holders, next) = paging::cut(holders, limit, |last| HolderCursor {
        after_id: last.contact.id,
    });
    HolderPage { holders, next }
}
