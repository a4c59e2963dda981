//! Cutting a page: every store reads one row more than the page holds, so that row tells
//! whether there is a next page without a count, and the next page starts after the last
//! row kept.

/// The most rows one page holds, whatever the caller asks for.
pub const MAX_PAGE: usize = 1000;

/// The most key holders one page holds (the health check's pages): about 2.5 MB of API v4
/// answer at 250 bytes a holder with its contact fields, well under the REST store's 8 MiB
/// answer cap even with long names, so 50,000 holders take 5 to 6 requests, and a site with
/// ten times as many still holds one page at a time in the request.
pub const HOLDER_PAGE: usize = 10_000;

/// The page of key holders a store reads for `asked`: at least 1, at most [`HOLDER_PAGE`].
pub fn holder_limit(asked: usize) -> usize {
    asked.clamp(1, HOLDER_PAGE)
}

/// The page size a store uses for `asked`: at least 1, at most [`MAX_PAGE`]. Read one
/// more row than this ([`cut`]).
pub fn page_limit(asked: usize) -> usize {
    asked.clamp(1, MAX_PAGE)
}

/// The first `limit` of `rows` (read with a limit of `limit + 1`), and the cursor
/// `after_last` makes from the last row kept when more rows were read than kept; None when
/// this is the last page.
pub fn cut<T, C>(
    mut rows: Vec<T>,
    limit: usize,
    after_last: impl FnOnce(&T) -> C,
) -> (Vec<T>, Option<C>) {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = rows.last().filter(|_| more).map(after_last);
    (rows, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_past_the_page_gives_a_cursor_from_the_last_row_kept() {
        assert_eq!(cut(vec![1, 2, 3], 2, |last| *last), (vec![1, 2], Some(2)));
        assert_eq!(cut(vec![1, 2], 2, |last| *last), (vec![1, 2], None));
        assert_eq!(cut(Vec::<u8>::new(), 2, |last| *last), (vec![], None));
        assert_eq!(
            (page_limit(0), page_limit(50), page_limit(5000)),
            (1, 50, MAX_PAGE)
        );
    }
}
