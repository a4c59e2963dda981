//! The profile picker (`P`) and the "opening profile" box of a switch.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Cell, Clear, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

use super::theme::Theme;
use crate::app::{App, Popup, Reach};
use crate::sanitize::SafeText;

pub fn draw(app: &App, frame: &mut Frame, area: Rect, theme: &Theme) {
    match &app.popup {
        Some(Popup::Switching { name }) => {
            let rect = super::area::centered(area, 50.min(area.width), 4);
            frame.render_widget(Clear, rect);
            let block = Block::bordered()
                .border_type(BorderType::Rounded)
                .title(Span::styled(" Profiles ", theme.bold()));
            frame.render_widget(
                Paragraph::new(vec![
                    Line::from(format!(
                        "Opening profile {}…",
                        SafeText::new(name).truncated(24)
                    )),
                    Line::from("Please wait."),
                ])
                .block(block),
                rect,
            );
        }
        Some(Popup::Profiles { selected }) => draw_picker(app, *selected, frame, area, theme),
        _ => {}
    }
}

fn draw_picker(app: &App, selected: usize, frame: &mut Frame, area: Rect, theme: &Theme) {
    let rows_wanted = app.profiles.len() as u16;
    // Border, header row, the rows, a blank line and two lines about the selected one.
    let height = (rows_wanted + 6).min(area.height.saturating_sub(2)).max(8);
    let width = 76.min(area.width);
    let rect = super::area::centered(area, width, height);
    frame.render_widget(Clear, rect);
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(Span::styled(
            " Profiles: Enter switch · Esc close ",
            theme.bold(),
        ));
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    let [table_area, about] =
        Layout::vertical([Constraint::Min(2), Constraint::Length(3)]).areas(inner);
    // Rows that fit below the header; the selected one is kept in view.
    let visible = usize::from(table_area.height.saturating_sub(1)).max(1);
    let first = selected.saturating_sub(visible - 1);
    let current = app.profile.as_deref();
    let rows = app
        .profiles
        .iter()
        .enumerate()
        .skip(first)
        .take(visible)
        .map(|(i, p)| {
            let (reach, reach_style) = match &p.reach {
                Reach::Asking => ("asking…", theme.dim()),
                Reach::Reachable => ("ok", theme.accent()),
                Reach::Unreachable(_) => ("unreachable", theme.error()),
            };
            let mark = if Some(p.name.as_str()) == current {
                "*"
            } else {
                " "
            };
            let row = Row::new(vec![
                Cell::from(format!(
                    "{}{mark}{}",
                    if i == selected { "▶" } else { " " },
                    SafeText::new(&p.name)
                )),
                Cell::from(p.kind),
                Cell::from(p.address.as_str().to_string()),
                Cell::from(Span::styled(reach, reach_style)),
            ]);
            if i == selected {
                row.style(theme.selected())
            } else {
                row
            }
        });
    let table = Table::new(
        rows,
        [
            Constraint::Length(17),
            Constraint::Length(12),
            Constraint::Min(10),
            Constraint::Length(11),
        ],
    )
    .header(Row::new(vec!["  PROFILE", "KIND", "ADDRESS", "STATE"]).style(theme.table_header()));
    frame.render_widget(table, table_area);
    let about_lines = match app.profiles.get(selected) {
        Some(p) => match &p.reach {
            Reach::Unreachable(why) => vec![Line::from(Span::styled(
                format!("Cannot be used: {}", SafeText::new(why)),
                theme.error(),
            ))],
            _ if Some(p.name.as_str()) == current => {
                vec![Line::from("* the profile in use")]
            }
            _ => vec![Line::from(
                "Enter: list, search, health and audit switch to this site.",
            )],
        },
        None => Vec::new(),
    };
    frame.render_widget(Paragraph::new(about_lines).wrap(Wrap { trim: true }), about);
}
