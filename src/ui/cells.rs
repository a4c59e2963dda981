//! The frame's cells as a terminal places them, so that what ratatui believes is on the
//! screen is what is on it.
//!
//! ratatui keeps a grapheme cluster in one cell as wide as the whole cluster, and sends
//! only the cells that changed. A terminal (tmux, xterm, the vt100 model) places each
//! character by its own width, combining marks on the character before. The two agree on a
//! single wide character (山, 🥐) but not on a cluster of several spacing characters: a
//! Devanagari conjunct (स्ते), a flag. The terminal spreads it over two cells while
//! ratatui holds the second one as blank; when a later frame writes a narrow character over
//! the first cell, ratatui sends nothing for the "unchanged" blank one and the second half
//! stays on the screen as a stray mark. Likewise a wide character whose second cell was
//! drawn over (a popup's border) is sent whole, and hides what was drawn there.

use ratatui::buffer::Buffer;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Rewrites the frame's buffer, after everything is drawn, to the terminal's placement: a
/// cluster of several spacing characters spread over its cells, one part each, and a wide
/// character whose other cells hold something else blanked (as a terminal blanks it when
/// half of it is overwritten).
pub fn place_as_the_terminal_does(buffer: &mut Buffer) {
    let area = buffer.area;
    for y in area.top()..area.bottom() {
        let mut x = area.left();
        while x < area.right() {
            let width = buffer[(x, y)].symbol().width();
            if width <= 1 {
                x += 1;
                continue;
            }
            let symbol = buffer[(x, y)].symbol().to_string();
            let end = x.saturating_add(width as u16).min(area.right());
            let parts = parts(&symbol);
            if parts.len() > 1 && parts.iter().map(|(_, w)| w).sum::<usize>() == width {
                // Spread: each part in the cell the terminal puts it in, as long as the
                // cells are the cluster's own (blank).
                let style = buffer[(x, y)].style();
                let mut at = x;
                for (part, part_width) in &parts {
                    let part_end = at.saturating_add(*part_width as u16);
                    if part_end > end || (at > x && !free(buffer, at, part_end, y)) {
                        break;
                    }
                    buffer[(at, y)].set_symbol(part).set_style(style);
                    at = part_end;
                }
                x = at.max(x + 1);
            } else if free(buffer, x + 1, end, y) {
                x = end;
            } else {
                buffer[(x, y)].set_symbol(" ");
                x += 1;
            }
        }
    }
}

/// Whether the cells `from..to` of row `y` are blank (a wide symbol's own cells).
fn free(buffer: &Buffer, from: u16, to: u16, y: u16) -> bool {
    (from..to).all(|x| buffer[(x, y)].symbol() == " ")
}

/// A cluster cut where a terminal moves to the next cell: each spacing character with the
/// zero-width characters after it, and its width.
fn parts(symbol: &str) -> Vec<(String, usize)> {
    let mut parts: Vec<(String, usize)> = Vec::new();
    for c in symbol.chars() {
        let width = c.width().unwrap_or(0);
        match parts.last_mut() {
            Some((part, _)) if width == 0 => part.push(c),
            _ => parts.push((c.to_string(), width)),
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::layout::Rect;

    fn cells(buffer: &Buffer) -> Vec<String> {
        buffer
            .content()
            .iter()
            .map(|c| c.symbol().to_string())
            .collect()
    }

    #[test]
    fn a_conjunct_is_spread_over_the_cells_the_terminal_puts_it_in() {
        let mut buffer = Buffer::empty(Rect::new(0, 0, 6, 1));
        buffer.set_string(0, 0, "स्ते a", ratatui::style::Style::default());
        assert_eq!(cells(&buffer)[..2], ["स्ते", " "], "ratatui's own placement");
        place_as_the_terminal_does(&mut buffer);
        assert_eq!(cells(&buffer), ["स्", "ते", " ", "a", " ", " "]);
    }

    #[test]
    fn a_wide_character_stays_whole_unless_its_second_cell_is_drawn_over() {
        let mut buffer = Buffer::empty(Rect::new(0, 0, 4, 1));
        buffer.set_string(0, 0, "山田", ratatui::style::Style::default());
        place_as_the_terminal_does(&mut buffer);
        assert_eq!(cells(&buffer), ["山", " ", "田", " "]);
        buffer[(1, 0)].set_symbol("│");
        place_as_the_terminal_does(&mut buffer);
        assert_eq!(cells(&buffer), [" ", "│", "田", " "]);
    }

    #[test]
    fn combining_marks_stay_on_their_character() {
        let mut buffer = Buffer::empty(Rect::new(0, 0, 4, 1));
        buffer.set_string(0, 0, "Zoe\u{0308}", ratatui::style::Style::default());
        place_as_the_terminal_does(&mut buffer);
        assert_eq!(cells(&buffer), ["Z", "o", "e\u{0308}", " "]);
    }
}
