//! draw(&App, &mut Frame): pure rendering, no IO. One file per view or popup.

mod area;
mod audit;
mod bulk;
mod cells;
mod health;
mod list;
mod popup;
mod profiles;
mod theme;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use crate::app::layout::{DETAIL_HEIGHT, FOOTER_HEIGHT, HEADER_HEIGHT, MIN_HEIGHT, MIN_WIDTH};
use crate::app::{App, Mode, StoreState};
use crate::timefmt::format_time;
use theme::Theme;

pub fn draw(app: &App, frame: &mut Frame) {
    let theme = Theme { color: app.color };
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        draw_too_small(frame, area, &theme);
        return;
    }
    let [header, body, detail, footer] = Layout::vertical([
        Constraint::Length(HEADER_HEIGHT),
        Constraint::Min(2),
        Constraint::Length(DETAIL_HEIGHT),
        Constraint::Length(FOOTER_HEIGHT),
    ])
    .areas(area);
    draw_header(app, frame, header, &theme);
    list::draw_table(app, frame, body, &theme);
    list::draw_detail(app, frame, detail, &theme);
    draw_footer(app, frame, footer, &theme);
    popup::draw(app, frame, area, &theme);
    cells::place_as_the_terminal_does(frame.buffer_mut());
}

fn draw_too_small(frame: &mut Frame, area: Rect, theme: &Theme) {
    let text = format!(
        "Terminal too small ({}x{}): civikey needs {MIN_WIDTH}x{MIN_HEIGHT}. Resize it, or press q to quit.",
        area.width, area.height
    );
    frame.render_widget(
        Paragraph::new(text)
            .style(theme.warning())
            .wrap(Wrap { trim: true }),
        area,
    );
}

fn draw_header(app: &App, frame: &mut Frame, area: Rect, theme: &Theme) {
    let store = match &app.store {
        StoreState::Opening => format!("opening {}…", app.location),
        StoreState::Failed(_) => format!("{} (failed)", app.location),
        StoreState::Ready(info) => {
            let ro = if info.writable { "" } else { " [read-only]" };
            format!("{}{ro}", info.location)
        }
    };
    if let Some(e) = &app.search_error {
        // At once, even while the operator types: the rows below are an older search's.
        let right = format!("{} stale ", app.contacts.len());
        let room = usize::from(area.width).saturating_sub(right.chars().count() + 1);
        let left = crate::sanitize::truncate_to_width(
            &format!(
                " civikey │ search failed: {}",
                crate::sanitize::SafeText::new(e)
            ),
            room,
        );
        let pad = usize::from(area.width).saturating_sub(
            unicode_width::UnicodeWidthStr::width(left.as_str()) + right.chars().count(),
        );
        let line = Line::from(vec![
            Span::styled(left, theme.error()),
            Span::raw(" ".repeat(pad)),
            Span::raw(right),
        ]);
        frame.render_widget(Paragraph::new(line).style(theme.header()), area);
        return;
    }
    // A kept search, so the operator knows the list is filtered.
    let kept = if app.search_input.is_none() && !app.filter.is_empty() {
        format!(
            "/{} · ",
            crate::sanitize::SafeText::new(&app.filter).truncated(20)
        )
    } else {
        String::new()
    };
    let count = if app.searching() && !app.contacts.is_empty() {
        format!("{kept}searching…")
    } else if app.seeking() {
        format!("{kept}{} loaded, more coming…", app.contacts.len())
    } else if app.loading {
        "loading…".to_string()
    } else {
        let more = if app.next.is_some() { "+" } else { "" };
        let marked = if app.marked.is_empty() {
            String::new()
        } else {
            format!(" · {} marked", app.marked.len())
        };
        let age = app
            .age_filter
            .map(|d| format!(" · keys older than {d}d"))
            .unwrap_or_default();
        format!("{kept}{}{more} shown{age}{marked}", app.contacts.len())
    };
    let left = match &app.profile {
        Some(profile) => format!(
            " civikey │ {} │ {store}",
            crate::sanitize::SafeText::new(profile).truncated(20)
        ),
        None => format!(" civikey │ {store}"),
    };
    let right = format!("{count} ");
    let room = usize::from(area.width).saturating_sub(right.chars().count() + 1);
    let left = crate::sanitize::truncate_to_width(&left, room);
    let pad = usize::from(area.width).saturating_sub(
        unicode_width::UnicodeWidthStr::width(left.as_str()) + right.chars().count(),
    );
    let line = Line::from(vec![
        Span::raw(left),
        Span::raw(" ".repeat(pad)),
        Span::raw(right),
    ]);
    frame.render_widget(Paragraph::new(line).style(theme.header()), area);
}

/// The keys that work in `mode`; every line fits 80 columns with its leading space.
fn footer_keys(mode: Mode, writable: bool) -> &'static str {
    if mode == Mode::Health && !writable {
        return "j/k move  Enter detail  ? help  q close";
    }
    match mode {
        // The keys an operator needs first; `?` lists the rest (a audit, q quit, ...).
        Mode::List if writable => {
            "/ search  r new key  x revoke  space mark  R rotate  h health  A age  ? help"
        }
        // A read-only store: only what works.
        Mode::List => "/ search  A key age  h health  a audit  ? help  q quit",
        Mode::Search => "Enter keep  Tab search inside names  Esc clear  ↑/↓ move",
        Mode::Help | Mode::Message => "Esc/Enter/q close",
        Mode::NewKey => "r regenerate  Enter continue  Esc/q cancel",
        Mode::Confirm | Mode::ConfirmRevoke | Mode::ConfirmUndo | Mode::ConfirmBulk => {
            "y yes  n/Esc/q no"
        }
        Mode::Working => "working…  q/Ctrl-C quit once the change is done",
        Mode::Shown => "c copy to clipboard  Enter/Esc/q close",
        Mode::Audit => "j/k scroll  f this store/contact/all stores  Esc/q close",
        Mode::Input => "type  Enter go on  Esc cancel",
        Mode::BulkRunning => "rotating…  q/Ctrl-C stop after the contact in flight",
        Mode::BulkResults => "j/k scroll  Enter/q close",
        Mode::TooSmall => "q quit",
        Mode::Health => "j/k move  Enter detail  space mark  * group  R rotate  x revoke  q close",
        Mode::ConfirmBulkRevoke => "y revoke all  n/Esc no",
        Mode::Profiles => "j/k move  Enter switch to it  Esc/q close",
    }
}

/// The list's footer while an undo is possible.
fn undo_footer(undo: &crate::app::UndoInfo, writable: bool) -> (String, &'static str) {
    let until = format_time(undo.until_unix);
    let hhmm = until.get(11..).unwrap_or(&until);
    (
        format!(" u undo id {} until {hhmm}", undo.contact_id),
        if writable {
            "  / search  r new key  a audit  ? help"
        } else {
            "  / search  a audit  ? help"
        },
    )
}

fn draw_footer(app: &App, frame: &mut Frame, area: Rect, theme: &Theme) {
    let writable = app.store_info().is_none_or(|i| i.writable);
    let line = if let Some(deep) = &app.deep_search {
        Line::from(vec![
            Span::styled(" / ", theme.accent()),
            Span::raw(crate::sanitize::SafeText::new(&deep.text).truncated(30)),
            Span::raw("  "),
            Span::styled(
                format!("searching all names... {:.1} s", deep.elapsed.as_secs_f64()),
                theme.accent(),
            ),
            Span::styled("  Esc cancels", theme.dim()),
        ])
    } else if let Some(input) = &app.search_input {
        let hint = footer_keys(Mode::Search, writable);
        // The text gets what the hint leaves, so the line fits the terminal.
        let room = usize::from(area.width)
            .saturating_sub(6 + unicode_width::UnicodeWidthStr::width(hint))
            .max(10);
        // The text before the cursor, the bar, the text after it.
        let at = input
            .text()
            .char_indices()
            .nth(input.cursor())
            .map_or(input.text().len(), |(i, _)| i);
        let (before, after) = input.text().split_at(at);
        let before = crate::sanitize::SafeText::new(before).truncated(room);
        let after = crate::sanitize::SafeText::new(after)
            .truncated(room.saturating_sub(unicode_width::UnicodeWidthStr::width(before.as_str())));
        Line::from(vec![
            Span::styled(" / ", theme.accent()),
            Span::raw(before),
            Span::styled("▏", theme.accent()),
            Span::raw(after),
            Span::raw("  "),
            Span::styled(hint, theme.dim()),
        ])
    } else if let Some((text, is_error)) = &app.notice {
        let style = if *is_error {
            theme.error()
        } else {
            theme.accent()
        };
        Line::from(Span::styled(format!(" {text}"), style))
    } else if let StoreState::Failed(e) = &app.store {
        Line::from(Span::styled(format!(" {e}"), theme.error()))
    } else if let (Mode::List, Some(undo)) = (app.mode(), &app.undo) {
        let (undo, keys) = undo_footer(undo, writable);
        Line::from(vec![
            Span::styled(undo, theme.warning()),
            Span::styled(keys, theme.dim()),
        ])
    } else {
        // The help over a popup: the keys of that popup, where they always are.
        let mode = match &app.popup {
            Some(crate::app::Popup::Help { under: Some(popup) }) => popup.mode(),
            _ => app.mode(),
        };
        Line::from(Span::styled(
            format!(" {}", footer_keys(mode, writable)),
            theme.dim(),
        ))
    };
    frame.render_widget(Paragraph::new(line), area);
}

#[cfg(test)]
mod tests;
