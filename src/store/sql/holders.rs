//! A page of key holders as both SQL stores read them: in `index_api_key` order (key,
//! then id), the next page after the last key and id kept.

use crate::store::{paging, Holder, HolderCursor, HolderPage};

/// The page of `holders` (read with a limit of `limit + 1`, in key then id order).
pub fn holder_page(holders: Vec<Holder>, limit: usize) -> HolderPage {
    let (holders, next) = paging::cut(holders, limit, |last| HolderCursor::AfterKey {
        key: last.key.clone(),
        id: last.contact.id,
    });
    HolderPage { holders, next }
}
