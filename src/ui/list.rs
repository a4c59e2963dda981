//! The contact table and the detail pane of the selected contact.

use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};
use ratatui::Frame;

use super::theme::Theme;
use crate::app::{App, StoreState};
use crate::store::{CmsLink, Contact};

const ID_W: u16 = 7;
const TYPE_W: u16 = 5;
/// `••••3xQz 12d`: the masked key and, when civikey set it, its age.
const KEY_W: u16 = 13;
const CMS_W: u16 = 3;
const MARK_W: u16 = 2;

pub fn short_type(contact_type: &str) -> &'static str {
    match contact_type {
        "Individual" => "Ind",
        "Organization" => "Org",
        "Household" => "Hh",
        _ => "?",
    }
}

pub fn key_status(contact: &Contact) -> String {
    contact
        .key
        .as_ref()
        .map_or_else(|| "none".to_string(), |k| k.masked())
}

pub fn cms_status(cms: CmsLink) -> &'static str {
    match cms {
        CmsLink::Linked { .. } => "yes",
        CmsLink::None => "no",
        CmsLink::Unknown => "?",
    }
}

pub fn draw_table(app: &App, frame: &mut Frame, area: Rect, theme: &Theme) {
    // Name and email share what the fixed columns leave, name a little wider.
    // Seven columns, six one-cell gaps between them.
    let fixed = MARK_W + ID_W + TYPE_W + KEY_W + CMS_W + 6;
    let flexible = area.width.saturating_sub(fixed);
    let name_w = flexible * 11 / 20;
    let email_w = flexible - name_w;
    let widths = [
        Constraint::Length(MARK_W),
        Constraint::Length(ID_W),
        Constraint::Length(name_w),
        Constraint::Length(TYPE_W),
        Constraint::Length(email_w),
        Constraint::Length(KEY_W),
        Constraint::Length(CMS_W),
    ];
    // Rows of an older search: dimmed while the new one runs, marked stale if it failed.
    let stale = app.search_error.is_some() || app.searching();
    let name_head = if app.search_error.is_some() {
        "Name (stale: the search failed)"
    } else if app.searching() {
        "Name (searching…)"
    } else {
        "Name"
    };
    let header =
        Row::new(["", "ID", name_head, "Type", "Email", "Key", "CMS"]).style(theme.table_header());
    let visible = usize::from(area.height.saturating_sub(1));
    let rows: Vec<Row> = app
        .contacts
        .iter()
        .enumerate()
        .skip(app.scroll)
        .take(visible)
        .map(|(i, c)| {
            let selected = i == app.selected;
            let name = if c.is_deleted {
                format!("[deleted] {}", c.display_name)
            } else {
                c.display_name.to_string()
            };
            let row = Row::new([
                Cell::from(format!(
                    "{}{}",
                    if selected { "▶" } else { " " },
                    if app.marked.contains_key(&c.id) {
                        "*"
                    } else {
                        " "
                    }
                )),
                Cell::from(c.id.to_string()),
                Cell::from(crate::sanitize::truncate_to_width(
                    &name,
                    usize::from(name_w),
                )),
                Cell::from(short_type(c.contact_type.as_str())),
                Cell::from(
                    c.email
                        .as_ref()
                        .map(|e| e.truncated(usize::from(email_w)))
                        .unwrap_or_default(),
                ),
                Cell::from(match (&c.key, app.key_sets.get(&c.id)) {
                    (Some(k), Some(set)) => {
                        format!(
                            "{} {}",
                            k.masked(),
                            crate::timefmt::format_age(app.now, set.time)
                        )
                    }
                    _ => key_status(c),
                }),
                Cell::from(cms_status(c.cms)),
            ]);
            if stale {
                row.style(theme.dim())
            } else if selected {
                row.style(theme.selected())
            } else if c.is_deleted {
                row.style(theme.deleted())
            } else {
                row
            }
        })
        .collect();
    if rows.is_empty() {
        let text = match &app.store {
            StoreState::Opening => "Opening the store…".to_string(),
            StoreState::Failed(e) => format!("The store could not be opened: {e}"),
            StoreState::Ready(_) if app.loading => "Searching…".to_string(),
            StoreState::Ready(_) if app.filter.is_empty() => {
                "No contacts in this store.".to_string()
            }
            StoreState::Ready(_) => "No contact matches the search.".to_string(),
        };
        let [head, rest] =
            ratatui::layout::Layout::vertical([Constraint::Length(1), Constraint::Min(0)])
                .areas(area);
        frame.render_widget(Table::new(Vec::<Row>::new(), widths).header(header), head);
        frame.render_widget(
            Paragraph::new(text).wrap(ratatui::widgets::Wrap { trim: true }),
            rest,
        );
        return;
    }
    frame.render_widget(
        Table::new(rows, widths).header(header).column_spacing(1),
        area,
    );
}

pub fn draw_detail(app: &App, frame: &mut Frame, area: Rect, theme: &Theme) {
    let block = Block::default().borders(Borders::TOP).title(" Contact ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(c) = app.selected_contact() else {
        return;
    };
    let width = usize::from(inner.width.saturating_sub(12));
    let label = |text: &'static str| Span::styled(text, theme.accent());
    let cms = match c.cms {
        CmsLink::Linked { uf_id } => format!("yes (CMS user id {uf_id})"),
        CmsLink::None => format!(
            "none: {}",
            crate::assess::WarningCode::NoUserAccount
                .text()
                .trim_start_matches("no user account: ")
        ),
        CmsLink::Unknown => "unknown (the store cannot tell)".into(),
    };
    let mut status = format!("{} · {}", c.contact_type, key_status(c));
    if c.is_deleted {
        status.push_str(" · DELETED (in the trash)");
    }
    let lines = vec![
        Line::from(vec![
            label("Name      "),
            Span::styled(c.display_name.truncated(width), theme.bold()),
            Span::raw(format!("  (id {})", c.id)),
        ]),
        Line::from(vec![
            label("Sort name "),
            Span::raw(c.sort_name.truncated(width)),
        ]),
        Line::from(vec![
            label("Email     "),
            Span::raw(
                c.email
                    .as_ref()
                    .map_or_else(|| "none".into(), |e| e.truncated(width)),
            ),
        ]),
        Line::from(vec![
            label("Status    "),
            Span::raw(crate::sanitize::truncate_to_width(&status, width)),
        ]),
        Line::from(vec![
            label("CMS user  "),
            Span::raw(crate::sanitize::truncate_to_width(&cms, width)),
        ]),
        Line::from(vec![
            label("Key set   "),
            Span::raw(match app.key_sets.get(&c.id).filter(|_| c.key.is_some()) {
                Some(set) => crate::sanitize::truncate_to_width(
                    &format!(
                        "by civikey {} by {} ({} ago)",
                        crate::timefmt::format_time(set.time),
                        set.by,
                        crate::timefmt::format_age(app.now, set.time)
                    ),
                    width,
                ),
                None if c.key.is_none() => "no key".into(),
                None => "not set by civikey".into(),
            }),
        ]),
    ];
    frame.render_widget(Paragraph::new(lines), inner);
}
