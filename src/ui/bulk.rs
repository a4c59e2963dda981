//! Bulk rotation screens: "older than N days", the one confirm screen, progress, results.

use ratatui::layout::{Constraint, Layout, Margin, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

use super::theme::Theme;
use crate::app::{App, Popup};
use crate::bulk::BulkOutcome;

pub fn draw(app: &App, frame: &mut Frame, area: Rect, theme: &Theme) {
    match &app.popup {
        Some(Popup::MarkOld { days, show }) => {
            let rect = super::area::centered(area, 64, 7);
            let (verb, title) = if *show {
                ("List", " Keys by age ")
            } else {
                ("Mark", " Mark old keys ")
            };
            let lines = vec![
                Line::from(format!(
                    "{verb} contacts (matching the search) whose key is older than"
                )),
                Line::from(vec![
                    Span::styled(format!("{days}▏"), theme.key()),
                    Span::raw(" days"),
                ]),
                Line::from("Keys civikey never set count as old: their age is unknown."),
                Line::from(if *show {
                    "Enter: list them, oldest first · Esc: cancel"
                } else {
                    "Enter: mark · Esc: cancel"
                }),
            ];
            boxed(frame, rect, title, lines, theme);
        }
        Some(Popup::BulkConfirm {
            path,
            scroll,
            confirming,
        }) => {
            let rect = area.inner(Margin::new(2, 1));
            frame.render_widget(Clear, rect);
            let title = format!(" Rotate {} marked contacts ", app.marked.len());
            let block = Block::bordered()
                .border_type(BorderType::Rounded)
                .title(Span::styled(title, theme.bold()));
            let inner = block.inner(rect);
            frame.render_widget(block, rect);
            let [list, info] =
                Layout::vertical([Constraint::Min(1), Constraint::Length(5)]).areas(inner);
            let name_w = usize::from(list.width.saturating_sub(30));
            let rows = app.marked.values().skip(*scroll).map(|c| {
                Row::new([
                    c.id.to_string(),
                    c.display_name.truncated(name_w),
                    c.key.as_ref().map_or_else(|| "none".into(), |k| k.masked()),
                    if c.is_deleted {
                        "DELETED".into()
                    } else {
                        String::new()
                    },
                ])
            });
            let widths = [
                Constraint::Length(8),
                Constraint::Min(10),
                Constraint::Length(9),
                Constraint::Length(8),
            ];
            frame.render_widget(
                Table::new(rows, widths)
                    .header(Row::new(["ID", "Name", "Key", ""]).style(theme.table_header())),
                list,
            );
            let lines = vec![
                Line::from(Span::styled(
                    "Every current key listed above will STOP WORKING.",
                    theme.warning(),
                )),
                Line::from("The new keys are written to this new file (0600), never shown here:"),
                Line::from(vec![Span::styled(
                    if *confirming {
                        path.clone()
                    } else {
                        format!("{path}▏")
                    },
                    theme.key(),
                )]),
                Line::from(if *confirming {
                    "y: rotate all · n: edit the file name · Esc: cancel"
                } else {
                    "Enter: this file · Esc: cancel · ↑/↓: scroll the list"
                }),
            ];
            frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), info);
        }
        Some(Popup::BulkRunning { done, total, last }) => {
            let rect = super::area::centered(area, 64, 6);
            let lines = vec![
                Line::from(format!("{done} of {total} contacts done")),
                Line::from(last.clone()),
                Line::from("Ctrl-C stops after the contact in flight; the others stay untouched."),
            ];
            boxed(frame, rect, " Rotating ", lines, theme);
        }
        Some(Popup::BulkResults {
            kind,
            results,
            out,
            error,
            scroll,
        }) => {
            let rect = area.inner(Margin::new(2, 1));
            frame.render_widget(Clear, rect);
            let count = |label: &str| {
                results
                    .iter()
                    .filter(|r| r.outcome.label() == label)
                    .count()
            };
            let title = format!(
                " {}: {} done, {} conflict, {} failed ",
                kind.title(),
                count("done"),
                count("conflict"),
                count("failed")
            );
            let block = Block::bordered()
                .border_type(BorderType::Rounded)
                .title(Span::styled(title, theme.bold()));
            let inner = block.inner(rect);
            frame.render_widget(block, rect);
            let [list, info] =
                Layout::vertical([Constraint::Min(1), Constraint::Length(3)]).areas(inner);
            let detail_w = usize::from(list.width.saturating_sub(8 + 24 + 9 + 3));
            let rows = results.iter().skip(*scroll).map(|r| {
                let detail = match &r.outcome {
                    BulkOutcome::Failed(e) => crate::sanitize::truncate_to_width(e, detail_w),
                    _ => String::new(),
                };
                let style = match r.outcome {
                    BulkOutcome::Done => theme.accent(),
                    _ => theme.warning(),
                };
                Row::new([
                    r.id.to_string(),
                    r.name.truncated(24),
                    r.outcome.label().to_string(),
                    detail,
                ])
                .style(style)
            });
            let widths = [
                Constraint::Length(8),
                Constraint::Length(24),
                Constraint::Length(9),
                Constraint::Min(5),
            ];
            frame.render_widget(Table::new(rows, widths), list);
            let mut lines = vec![Line::from(format!("New keys: {out}"))];
            if let Some(e) = error {
                lines.push(Line::from(Span::styled(e.clone(), theme.error())));
            }
            lines.push(Line::from("Enter: close"));
            frame.render_widget(Paragraph::new(lines), info);
        }
        _ => {}
    }
}

fn boxed(frame: &mut Frame, rect: Rect, title: &str, lines: Vec<Line>, theme: &Theme) {
    frame.render_widget(Clear, rect);
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(Span::styled(title.to_string(), theme.bold()));
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block),
        rect,
    );
}
