//! The health view: the key health check's findings, grouped by code, most severe first.

use ratatui::layout::{Constraint, Layout, Margin, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::theme::Theme;
use crate::app::{App, Popup};
use crate::sanitize::{fit_to_width, truncate_to_width};

pub fn draw(app: &App, frame: &mut Frame, area: Rect, theme: &Theme) {
    match &app.popup {
        Some(Popup::Checking { read }) => {
            let rect = super::area::centered(area, 50, 4);
            frame.render_widget(Clear, rect);
            let block = Block::bordered()
                .border_type(BorderType::Rounded)
                .title(Span::styled(" Key health ", theme.bold()));
            frame.render_widget(
                Paragraph::new(vec![
                    Line::from("Checking every key the store holds…"),
                    Line::from(format!("{read} key holders read")),
                ])
                .block(block),
                rect,
            );
        }
        Some(Popup::Health {
            report,
            summary,
            selected,
            scroll,
            reading,
            detail,
        }) => {
            let rect = area.inner(Margin::new(1, 1));
            frame.render_widget(Clear, rect);
            let title = format!(
                " Key health: {}{} ",
                crate::wording::plural(report.findings.len(), "finding", "findings"),
                if reading.is_some() { " so far" } else { "" }
            );
            let block = Block::bordered()
                .border_type(BorderType::Rounded)
                .title(Span::styled(title, theme.bold()));
            let inner = block.inner(rect);
            frame.render_widget(block, rect);
            let [list, info] =
                Layout::vertical([Constraint::Min(1), Constraint::Length(2)]).areas(inner);
            let width = usize::from(list.width);
            // Only the visible lines are made: a big site has tens of thousands of findings.
            let (first, height) = (*scroll, usize::from(list.height));
            let mut visible = Vec::with_capacity(height);
            let mut line = 0;
            for (i, f) in report.findings.iter().enumerate() {
                if line >= first + height {
                    break;
                }
                if report.starts_group(i) {
                    if line >= first {
                        let header = format!(
                            "{} · {} · {}: {}",
                            f.code.as_str(),
                            f.severity.as_str(),
                            report.count(f.code),
                            f.advice
                        );
                        visible.push(Line::from(Span::styled(
                            truncate_to_width(&header, width),
                            theme.table_header(),
                        )));
                    }
                    line += 1;
                    if line >= first + height {
                        break;
                    }
                }
                if line >= first {
                    let name = if f.contact.is_deleted {
                        format!("[deleted] {}", f.contact.display_name)
                    } else {
                        f.contact.display_name.to_string()
                    };
                    let row = format!(
                        "{}{} {:>7}  {}  {:<8}  {}",
                        if i == *selected { "▶" } else { " " },
                        if app.marked.contains_key(&f.contact.id) {
                            "*"
                        } else {
                            " "
                        },
                        f.contact.id,
                        fit_to_width(&name, 22),
                        f.key.masked(),
                        f.detail
                    );
                    let row = truncate_to_width(&row, width);
                    visible.push(if i == *selected {
                        Line::from(Span::styled(row, theme.selected()))
                    } else {
                        Line::from(row)
                    });
                }
                line += 1;
            }
            if report.findings.is_empty() && reading.is_none() {
                visible.push(Line::from("No findings: every key passed."));
            }
            frame.render_widget(Paragraph::new(visible), list);
            let marked = if app.marked.is_empty() {
                String::new()
            } else {
                format!("{} marked · ", app.marked.len())
            };
            // A read-only store: only what works (reading the findings).
            let keys = if reading.is_some() {
                "space mark · * mark its group · rotate and revoke once the read is done"
            } else if app.store_info().is_some_and(|i| i.writable) {
                "space mark · * mark its group · R rotate marked · x revoke marked"
            } else {
                "read-only store: findings to read; rotate and revoke need a writable one"
            };
            frame.render_widget(
                Paragraph::new(vec![
                    Line::from(Span::styled(truncate_to_width(summary, width), theme.dim())),
                    Line::from(truncate_to_width(&format!("{marked}{keys}"), width)),
                ]),
                info,
            );
            if let Some(f) = report.findings.get(*selected).filter(|_| *detail) {
                draw_finding(f, frame, rect, theme);
            }
        }
        _ => {}
    }
}

/// One finding in full, wrapped, over the view: what a row cuts short.
fn draw_finding(f: &crate::health::Finding, frame: &mut Frame, area: Rect, theme: &Theme) {
    let deleted = if f.contact.is_deleted {
        " [deleted]"
    } else {
        ""
    };
    let mut lines = vec![
        Line::from(Span::styled(
            format!("{} (id {}){deleted}", f.contact.display_name, f.contact.id),
            theme.bold(),
        )),
        Line::from(format!(
            "{} · {} · key {}",
            f.code.as_str(),
            f.severity.as_str(),
            f.key.masked()
        )),
        Line::from(""),
        Line::from(f.detail.clone()),
    ];
    if f.holders.len() > 1 {
        let ids: Vec<String> = f.holders.iter().map(|id| id.to_string()).collect();
        lines.push(Line::from(format!(
            "Contacts holding this key: {}",
            ids.join(", ")
        )));
    }
    lines.extend([
        Line::from(""),
        Line::from(format!("What to do: {}", f.advice)),
        Line::from(format!("From a shell: {}", f.command())),
        Line::from(""),
        Line::from(Span::styled(
            "Enter/Esc: back · j/k: the next finding · ? help",
            theme.dim(),
        )),
    ]);
    let width = 72.min(area.width);
    let inner = usize::from(width.saturating_sub(2)).max(1);
    let wrapped: usize = lines.iter().map(|l| l.width().div_ceil(inner).max(1)).sum();
    let rect = super::area::centered(area, width, (wrapped as u16 + 2).min(area.height));
    frame.render_widget(Clear, rect);
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(Span::styled(" Finding ", theme.bold()));
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block),
        rect,
    );
}
