//! Popups, drawn over `Clear` in a centred area.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::list::{cms_status, key_status};
use super::theme::Theme;
use crate::app::{App, Popup};
use crate::store::{AccountState, Contact, Standing};

fn who(contact: &Contact) -> String {
    format!("{} (id {})", contact.display_name.truncated(40), contact.id)
}

/// The user account line of the confirm popup.
fn account_line(standing: &Standing) -> String {
    match &standing.account {
        AccountState::Account(user) => format!(
            "User: {} (id {}){}",
            user.name.truncated(30),
            user.id,
            if user.active { "" } else { ", BLOCKED" }
        ),
        AccountState::NoAccount => "User: none".to_string(),
        AccountState::Unknown => "User: the store cannot tell".to_string(),
        AccountState::Hidden => format!("User: {}", crate::wording::users_hidden()),
    }
}

pub fn draw(app: &App, frame: &mut Frame, area: Rect, theme: &Theme) {
    let Some(popup) = &app.popup else { return };
    let (title, lines, height): (String, Vec<Line>, u16) = match popup {
        Popup::Help { under } => {
            let mut lines = help_lines(theme);
            // Over a popup: the bottom line keeps that popup's keys (ui/mod.rs), so the
            // table leaves it free at 80x24 (without the closing remark).
            let title = if under.is_some() {
                lines.truncate(lines.len().saturating_sub(2));
                "Help (Esc: back; the keys here are on the bottom line)"
            } else {
                "Help"
            };
            let h = lines.len() as u16 + 2;
            (title.into(), lines, h)
        }
        Popup::NewKey { contact, key } => (
            "New key".into(),
            vec![
                Line::from(format!("For {}", who(contact))),
                Line::from(""),
                Line::from(Span::styled(key.expose().to_string(), theme.key())),
                Line::from(""),
                Line::from("Not saved yet. r: another key · Enter: continue · Esc: cancel"),
            ],
            9,
        ),
        Popup::Confirm { contact, key } => {
            let mut lines = vec![
                Line::from(format!("Assign the new key {} to", key.hint().masked())),
                Line::from(Span::styled(who(contact), theme.bold())),
                Line::from(format!(
                    "{} · CMS user: {} · email {}",
                    contact.contact_type,
                    cms_status(contact.cms),
                    contact
                        .email
                        .as_ref()
                        .map_or_else(|| "none".into(), |e| e.truncated(30))
                )),
                Line::from(""),
                match &contact.key {
                    Some(old) => Line::from(Span::styled(
                        format!("Their current key {} will STOP WORKING.", old.masked()),
                        theme.warning(),
                    )),
                    None => Line::from("They have no key now."),
                },
            ];
            // What CiviCRM's docs tell the operator to double-check, judged in one place.
            let standing = app
                .standings
                .get(&contact.id)
                .cloned()
                .unwrap_or(Standing::UNKNOWN);
            lines.push(Line::from(account_line(&standing)));
            lines.push(Line::from(match &standing.roles {
                Some(roles) if roles.is_empty() => "Roles: none".to_string(),
                Some(roles) => format!(
                    "Roles: {}",
                    crate::sanitize::truncate_to_width(
                        &roles
                            .iter()
                            .map(|r| r.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        60
                    )
                ),
                None => "Roles: the store cannot tell".to_string(),
            }));
            lines.extend(
                crate::assess::assess(contact, &standing)
                    .into_iter()
                    .map(|w| Line::from(Span::styled(format!("⚠ {}", w.text), theme.warning()))),
            );
            lines.push(Line::from(""));
            lines.push(Line::from("y: assign · n/Esc: cancel"));
            let h = lines.len() as u16 + 2;
            ("Confirm".into(), lines, h)
        }
        Popup::Working { contact, what } => (
            "Working".into(),
            vec![
                Line::from(format!("{what} for {}…", who(contact))),
                Line::from("Please wait."),
            ],
            4,
        ),
        Popup::Audit { .. } => {
            super::audit::draw(app, frame, area, theme);
            return;
        }
        Popup::Profiles { .. } | Popup::Switching { .. } => {
            super::profiles::draw(app, frame, area, theme);
            return;
        }
        Popup::Checking { .. } | Popup::Health { .. } => {
            super::health::draw(app, frame, area, theme);
            return;
        }
        Popup::ConfirmBulkRevoke { count } => (
            "Revoke".into(),
            vec![
                Line::from(format!(
                    "Revoke the keys of {}?",
                    crate::wording::plural(*count, "marked contact", "marked contacts")
                )),
                Line::from(Span::styled(
                    "Their keys will STOP WORKING (u cannot undo a bulk revoke).",
                    theme.warning(),
                )),
                Line::from(""),
                Line::from("y: revoke them all · n/Esc: cancel"),
            ],
            6,
        ),
        Popup::MarkOld { .. }
        | Popup::BulkConfirm { .. }
        | Popup::BulkRunning { .. }
        | Popup::BulkResults { .. } => {
            super::bulk::draw(app, frame, area, theme);
            return;
        }
        Popup::Shown {
            contact,
            key,
            copied,
            regenerated,
            warning,
            login_check,
            handover,
        } => {
            let mut lines = vec![
                Line::from(format!("Assigned to {}.", who(contact))),
                Line::from(""),
                Line::from(Span::styled(key.expose().to_string(), theme.key())),
                Line::from(""),
                Line::from(Span::styled(
                    "Shown once: copy it now, civikey will not show it again.",
                    theme.warning(),
                )),
            ];
            if *regenerated {
                lines.push(Line::from(
                    "(The proposed key clashed with another contact's; a new one was made.)",
                ));
            }
            if let Some(w) = warning {
                lines.push(Line::from(Span::styled(w.clone(), theme.warning())));
            }
            if let Some(check) = login_check {
                let text = format!("Login check: {}", check.detail);
                lines.push(Line::from(if check.ok {
                    Span::raw(text)
                } else {
                    Span::styled(format!("⚠ {text}"), theme.warning())
                }));
            }
            lines.extend(handover.lines().into_iter().map(Line::from));
            if *copied {
                lines.push(Line::from("Copied to the clipboard (OSC 52)."));
                if let Some(w) = &app.clipboard_warning {
                    lines.push(Line::from(Span::styled(w.clone(), theme.warning())));
                }
            }
            lines.push(Line::from("c: copy to clipboard · Enter: close"));
            let h = lines.len() as u16 + 2;
            ("Key assigned".into(), lines, h)
        }
        Popup::ConfirmRevoke { contact } => (
            "Revoke".into(),
            vec![
                Line::from(format!("Revoke the key of {}?", who(contact))),
                Line::from(Span::styled(
                    format!("Their key {} will STOP WORKING.", key_status(contact)),
                    theme.warning(),
                )),
                Line::from(""),
                Line::from("y: revoke · n/Esc: cancel"),
            ],
            6,
        ),
        Popup::ConfirmUndo { contact_id, name } => (
            "Undo".into(),
            vec![
                Line::from(match name {
                    Some(name) => format!(
                        "Undo the last change to {} (id {contact_id})?",
                        name.truncated(40)
                    ),
                    None => format!("Undo the last change to contact {contact_id}?"),
                }),
                Line::from(Span::styled(
                    "Their previous key comes back and works again: if it was replaced",
                    theme.warning(),
                )),
                Line::from(Span::styled(
                    "because it may have leaked, it is exposed again.",
                    theme.warning(),
                )),
                Line::from("The key set since then stops working."),
                Line::from(""),
                Line::from("y: undo · n/Esc: cancel"),
            ],
            8,
        ),
        Popup::Message {
            title,
            text,
            is_error,
        } => {
            let style = if *is_error {
                theme.error()
            } else {
                theme.bold()
            };
            (
                (*title).to_string(),
                vec![
                    Line::from(Span::styled(text.clone(), style)),
                    Line::from(""),
                    Line::from("Enter/Esc/q: close"),
                ],
                8,
            )
        }
    };
    let width = 72.min(area.width);
    // Long lines (warnings, the login check) wrap: make room for every row.
    let inner = usize::from(width.saturating_sub(2)).max(1);
    let wrapped: usize = lines.iter().map(|l| l.width().div_ceil(inner).max(1)).sum();
    let height = height.max(wrapped as u16 + 2);
    let rect = super::area::centered(area, width, height);
    frame.render_widget(Clear, rect);
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(Span::styled(format!(" {title} "), theme.bold()));
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block),
        rect,
    );
}

pub(super) fn help_lines(theme: &Theme) -> Vec<Line<'static>> {
    // The same table as the man page and the README.
    let mut lines: Vec<Line> = crate::cli::reference::TUI_KEYS
        .iter()
        .map(|(k, v)| {
            Line::from(vec![
                Span::styled(format!("{k:<20}"), theme.accent()),
                Span::raw(*v),
            ])
        })
        .collect();
    lines.push(Line::from(""));
    lines.push(Line::from(
        "Lists show key status only (••••last4), never a key.",
    ));
    lines
}
