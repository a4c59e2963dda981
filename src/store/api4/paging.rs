//! Cutting a page out of the rows read (one more than the page, to know whether more
//! follow) and building the cursor of the next page.

use crate::store::{paging, ContactId, Cursor, StoreError};

/// Where a page read by offset starts: after `cursor` (an offset), or at 0. `store` names
/// the store in the refusal of a keyset cursor ("the cv store").
pub(crate) fn offset_of(cursor: Option<&Cursor>, store: &str) -> Result<u64, StoreError> {
    match cursor {
        None => Ok(0),
        Some(Cursor::Offset(n)) => Ok(*n),
        Some(Cursor::After { .. }) => Err(StoreError::invalid(format!(
            "{store} pages by offset, not by key"
        ))),
    }
}

/// The first `limit` of `rows` and, when more came, the keyset cursor after the last one:
/// its sort name as the site compares it (None for a NULL sort name, which the next page's
/// condition keeps apart from an empty one: [`super::clause::after`]) and its id.
pub(crate) fn keyset_page<T>(
    rows: Vec<T>,
    limit: usize,
    key: impl Fn(&T) -> (Option<String>, ContactId),
) -> (Vec<T>, Option<Cursor>) {
    paging::cut(rows, limit, |last| {
        let (sort_name, id) = key(last);
        Cursor::After { sort_name, id }
    })
}

/// The first `limit` of `rows` read from `offset`, and the offset of the next page when
/// more came.
pub(crate) fn offset_page<T>(rows: Vec<T>, limit: usize, offset: u64) -> (Vec<T>, Option<u64>) {
    paging::cut(rows, limit, |_| offset + limit as u64)
}

/// Drops a sorted branch's rows of its last sort name (sorted by sort name, then id
/// descending, the lowest ids of that name may not have come) and returns that name
/// (None: NULL), or None when there are no rows.
pub(crate) fn drop_last_sort_name<T>(
    rows: &mut Vec<T>,
    sort_name: impl Fn(&T) -> Option<&str>,
) -> Option<Option<String>> {
    let last = rows.last().map(|r| sort_name(r).map(str::to_string))?;
    while rows.last().is_some_and(|r| sort_name(r) == last.as_deref()) {
        rows.pop();
    }
    Some(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_ending_on_a_null_sort_name_says_so() {
        let rows = vec![(None, 60), (None, 61), (Some("Abe"), 70)];
        let (page, next) = keyset_page(rows, 2, |r| (r.0.map(String::from), r.1));
        assert_eq!(page.len(), 2);
        assert_eq!(
            next,
            Some(Cursor::After {
                sort_name: None,
                id: 61
            })
        );
        let mut rows = vec![(Some("A"), 1), (None, 3), (None, 2)];
        assert_eq!(drop_last_sort_name(&mut rows, |r| r.0), Some(None));
        assert_eq!(rows, vec![(Some("A"), 1)]);
    }
}

/// The smallest page a whole-site read falls back to when answers are too large.
pub(crate) const SMALLEST_PAGE: usize = 100;

/// `read(limit)`, asked again with half the limit while the store says its answer was too
/// large ([`StoreError::TooLarge`]: REST's 8 MiB cap, reached by pages of long names
/// escaped as `\uXXXX`), down to [`SMALLEST_PAGE`]. `limit` keeps the size that worked, for
/// the pages after: the whole-site reads' big pages (key holders, users) shrink, never fail,
/// on such a site.
pub(crate) fn shrinking<T>(
    limit: &mut usize,
    mut read: impl FnMut(usize) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    loop {
        match read(*limit) {
            Err(StoreError::TooLarge(_)) if *limit > SMALLEST_PAGE => {
                *limit = (*limit / 2).max(SMALLEST_PAGE);
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod shrinking_tests {
    use super::*;
    use crate::sanitize::SafeText;

    fn too_large() -> StoreError {
        StoreError::TooLarge(SafeText::new("over the cap"))
    }

    #[test]
    fn a_page_too_large_is_asked_again_at_half_until_it_fits() {
        let mut asked = Vec::new();
        let mut limit = 10_000;
        let got = shrinking(&mut limit, |l| {
            asked.push(l);
            if l > 3_000 {
                Err(too_large())
            } else {
                Ok(l)
            }
        });
        assert_eq!(got.unwrap(), 2_500);
        assert_eq!(asked, [10_000, 5_000, 2_500]);
        assert_eq!(limit, 2_500, "kept for the pages after");
    }

    #[test]
    fn the_smallest_page_too_large_and_other_errors_are_the_answer() {
        let mut limit = 150;
        let got: Result<(), _> = shrinking(&mut limit, |_| Err(too_large()));
        assert!(matches!(got, Err(StoreError::TooLarge(_))));
        assert_eq!(limit, SMALLEST_PAGE);
        let mut calls = 0;
        let got: Result<(), _> = shrinking(&mut 10_000, |_| {
            calls += 1;
            Err(StoreError::bad_data("broken"))
        });
        assert!(matches!(got, Err(StoreError::BadData(_))));
        assert_eq!(calls, 1);
    }
}
