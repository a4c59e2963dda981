//! The audit view: the journal, newest first, optionally for one contact.

use ratatui::layout::{Constraint, Margin, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Block, BorderType, Clear, Paragraph, Row, Table};
use ratatui::Frame;

use super::theme::Theme;
use crate::app::{App, Popup};
use crate::sanitize::{truncate_to_width, SafeText};

pub fn draw(app: &App, frame: &mut Frame, area: Rect, theme: &Theme) {
    let Some(Popup::Audit {
        contact,
        all_stores,
        entries,
        scroll,
    }) = &app.popup
    else {
        return;
    };
    let rect = area.inner(Margin::new(1, 1));
    frame.render_widget(Clear, rect);
    let title = match (contact, all_stores) {
        (Some(id), _) => format!(
            " Audit journal: contact {id}, this store ({} records) ",
            entries.len()
        ),
        (None, false) => format!(
            " Audit journal: this store ({} shown, newest first) ",
            entries.len()
        ),
        (None, true) => format!(
            " Audit journal: every store ({} shown, newest first) ",
            entries.len()
        ),
    };
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(Span::styled(title, theme.bold()));
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    if entries.is_empty() {
        frame.render_widget(
            Paragraph::new("No records: civikey has changed no key here yet."),
            inner,
        );
        return;
    }
    // Every store: a store column, taken from the name's room.
    let store_w: u16 = if *all_stores { 16 } else { 0 };
    let name_w = usize::from(
        inner
            .width
            .saturating_sub(11 + 8 + 7 + 6 + 17 + 15 + 6 + store_w + u16::from(*all_stores)),
    )
    .max(6);
    let rows = entries.iter().skip(*scroll).map(|e| {
        let outcome = match (&e.outcome, &e.reconciled) {
            (_, Some(r)) => format!("unknown→{r}"),
            (Some(o), None) => o.clone(),
            (None, None) => "in flight".into(),
        };
        let fp = format!(
            "{}→{}",
            e.old_fingerprint.as_deref().unwrap_or("none"),
            e.new_fingerprint.as_deref().unwrap_or("none")
        );
        // Journal text was sanitized on the way in; sanitize again, it is a file others could edit.
        let mut cells = vec![
            crate::timefmt::format_time(e.time)
                .get(5..16)
                .unwrap_or_default()
                .to_string(),
            truncate_to_width(SafeText::new(&e.operator).as_str(), 8),
        ];
        if *all_stores {
            cells.push(truncate_to_width(
                SafeText::new(&e.store).as_str(),
                usize::from(store_w),
            ));
        }
        cells.extend([
            e.contact_id.to_string(),
            truncate_to_width(SafeText::new(&e.contact_name).as_str(), name_w),
            e.action.clone(),
            fp,
            outcome,
        ]);
        Row::new(cells)
    });
    let mut widths = vec![Constraint::Length(11), Constraint::Length(8)];
    let mut heads = vec!["UTC", "Operator"];
    if *all_stores {
        widths.push(Constraint::Length(store_w));
        heads.push("Store");
    }
    widths.extend([
        Constraint::Length(7),
        Constraint::Min(6),
        Constraint::Length(6),
        Constraint::Length(17),
        Constraint::Length(15),
    ]);
    heads.extend(["Contact", "Name", "Action", "Old→new key fp", "Outcome"]);
    let header = Row::new(heads).style(theme.table_header());
    frame.render_widget(Table::new(rows, widths).header(header), inner);
}
