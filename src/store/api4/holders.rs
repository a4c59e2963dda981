//! Key holders as both API v4 stores read them: `api_key IS NOT NULL` pages in id order,
//! each contact with its CMS link joined (no UFMatch call per page), the next page after
//! the last id. An id never changes, so keys changed while the pages are read never make
//! a holder read twice or skipped (an offset would skip one when a key before it is
//! revoked; a key order would when a key moves behind the cursor).

use super::clause::{self, Clause, GetParams, Val, ID_ORDER, UF_JOIN};
use super::rows::{merge_rows, ContactRow, LINKED_FIELDS};
use super::Api4;
use crate::store::paging::holder_limit;
use crate::store::{HolderCursor, HolderPage, StoreError};

/// One page of at most `limit` key holders (at most [`crate::store::paging::HOLDER_PAGE`]) after `after`, in
/// one call. A contact linked on several domains comes as several rows: the rows are read
/// with a limit of one more than the page, and the last contact read is left to the next
/// page (its rows may go on past this one).
pub(crate) fn holders_page(
    api: &impl Api4,
    after: Option<&HolderCursor>,
    limit: usize,
) -> Result<HolderPage, StoreError> {
    let limit = holder_limit(limit);
    let mut where_ = clause::key_holders();
    if let Some(cursor) = after {
        where_.push(Clause::Cmp("id", ">", Val::Int(cursor.after_id)));
    }
    let params = GetParams {
        join: vec![UF_JOIN],
        ..GetParams::new(LINKED_FIELDS, where_)
            .order(ID_ORDER)
            .limit(limit + 1)
    };
    let rows: Vec<ContactRow> = api.get("Contact", &params, &[])?;
    let more = rows.len() > limit;
    let mut merged = merge_rows(rows, || api.keys_hidden())?;
    if more {
        merged.pop();
        if merged.is_empty() {
            return Err(StoreError::bad_data(format!(
                "{} answered a page of key holders with one contact's rows alone",
                api.who()
            )));
        }
    }
    let next = more.then(|| HolderCursor {
        after_id: merged.last().map_or(0, |m| m.contact.id),
    });
    let holders = merged
        .into_iter()
        .map(|m| m.into_holder(api.who()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HolderPage { holders, next })
}
