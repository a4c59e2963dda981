//! The screen's fixed sizes: one home for the app (how many rows a page holds) and the
//! renderer (where each part goes), so the two cannot disagree.

/// The smallest terminal the full UI fits in.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;
/// The header line above the list.
pub const HEADER_HEIGHT: u16 = 1;
/// The table's own header row.
pub const TABLE_HEADER_HEIGHT: u16 = 1;
/// The detail pane under the list: a border on each side and five lines.
pub const DETAIL_HEIGHT: u16 = 7;
/// The footer line of keys.
pub const FOOTER_HEIGHT: u16 = 1;

/// Rows the table shows at the current height (the layout in ui/ is made of the sizes
/// above, so it agrees).
pub fn table_rows_for(height: u16) -> usize {
    let chrome = HEADER_HEIGHT + TABLE_HEADER_HEIGHT + DETAIL_HEIGHT + FOOTER_HEIGHT;
    usize::from(height.saturating_sub(chrome)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_gets_what_the_chrome_leaves() {
        assert_eq!(table_rows_for(MIN_HEIGHT), 14);
        assert_eq!(table_rows_for(40), 30);
        assert_eq!(table_rows_for(3), 1, "always at least one row");
    }
}
