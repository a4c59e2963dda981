//! Marking contacts and the bulk-rotation flow of the App (still pure: no IO here).

use super::{Action, App, Cmd, Popup};
use crate::bulk::BulkResult;
use crate::rotation::Expectation;
use crate::store::{Contact, Query};

/// The most contacts "mark all matching" / "mark old keys" will mark in one go.
pub const MARK_LIMIT: usize = 1000;

impl App {
    pub(super) fn toggle_mark(&mut self) -> Vec<Cmd> {
        if let Some(contact) = self.selected_contact().cloned() {
            if self.marked.remove(&contact.id).is_none() {
                self.marked.insert(contact.id, contact);
            }
            // Marking moves down, so space space space marks a run of contacts.
            return self.on_action(Action::Down);
        }
        Vec::new()
    }

    pub(super) fn mark_matching(&mut self, older_than_days: Option<u32>) -> Vec<Cmd> {
        let mut query = Query::new(&self.filter, 200);
        query.deep = self.deep_shown;
        query.include_deleted = true;
        self.notice = Some(("Marking…".into(), false));
        vec![Cmd::MarkMatching {
            query,
            older_than_days,
            limit: MARK_LIMIT,
        }]
    }

    pub(super) fn on_marked(&mut self, result: Result<Vec<Contact>, String>) -> Vec<Cmd> {
        match result {
            Ok(found) => {
                // A deleted contact (in the trash) is never marked for a new key.
                let (deleted, found): (Vec<_>, Vec<_>) =
                    found.into_iter().partition(|c| c.is_deleted);
                let n = found.len();
                for c in found {
                    self.marked.insert(c.id, c);
                }
                let skipped = match deleted.len() {
                    0 => String::new(),
                    d => format!(", skipped {d} deleted"),
                };
                let cap = if n >= MARK_LIMIT {
                    format!(" (the limit is {MARK_LIMIT} at a time)")
                } else {
                    String::new()
                };
                self.notice = Some((
                    format!(
                        "Marked {}{cap}{skipped}; {} marked in all. R: rotate them",
                        crate::wording::plural(n, "contact", "contacts"),
                        self.marked.len()
                    ),
                    false,
                ));
            }
            Err(e) => self.notice = Some((format!("Marking failed: {e}"), true)),
        }
        Vec::new()
    }

    fn default_out_path(&self) -> String {
        let stamp = time::OffsetDateTime::from_unix_timestamp(self.now)
            .ok()
            .and_then(|t| {
                t.format(time::macros::format_description!(
                    "[year][month][day]-[hour][minute][second]"
                ))
                .ok()
            })
            .unwrap_or_else(|| self.now.to_string());
        self.data_dir
            .join(format!("rotated-{stamp}.csv"))
            .display()
            .to_string()
    }

    pub(super) fn open_bulk_confirm(&mut self) -> Vec<Cmd> {
        if self.marked.is_empty() {
            self.notice = Some((
                "Mark contacts first: space marks one, * all matching, o old keys.".into(),
                false,
            ));
            return Vec::new();
        }
        if !self.store_info().is_some_and(|i| i.writable) {
            self.notice = Some((
                "The store is read-only: keys cannot be changed.".into(),
                true,
            ));
            return Vec::new();
        }
        self.popup = Some(Popup::BulkConfirm {
            path: super::text::TextField::new(&self.default_out_path()),
            scroll: 0,
            confirming: false,
        });
        Vec::new()
    }

    pub(super) fn on_input_action(&mut self, action: Action) -> Vec<Cmd> {
        let marked = self.marked.len();
        match (self.popup.as_mut(), action) {
            (Some(Popup::MarkOld { days, .. }), Action::InputChar(c))
                if c.is_ascii_digit() && (days.is_selected() || days.text().len() < 5) =>
            {
                days.insert(c.encode_utf8(&mut [0; 4]))
            }
            // The days field takes digits only: q closes it, as in every popup.
            (Some(Popup::MarkOld { .. }), Action::InputChar('q')) => self.popup = None,
            (
                Some(Popup::BulkConfirm {
                    path,
                    confirming: false,
                    ..
                }),
                Action::InputChar(c),
            ) if !c.is_control() => path.insert(c.encode_utf8(&mut [0; 4])),
            (
                Some(
                    Popup::MarkOld { days: text, .. }
                    | Popup::BulkConfirm {
                        path: text,
                        confirming: false,
                        ..
                    },
                ),
                Action::InputBackspace | Action::Edit(_),
            ) => {
                text.edit(match action {
                    Action::Edit(edit) => edit,
                    _ => super::text::Edit::Backspace,
                });
            }
            (Some(Popup::BulkConfirm { scroll, .. }), Action::Down) => {
                *scroll = (*scroll + 1).min(marked.saturating_sub(1))
            }
            (Some(Popup::BulkConfirm { scroll, .. }), Action::Up) => {
                *scroll = scroll.saturating_sub(1)
            }
            (Some(Popup::MarkOld { days, show }), Action::Proceed) => {
                let days = days.text().parse::<u32>().unwrap_or(90);
                let show = *show;
                self.popup = None;
                if !show {
                    return self.mark_matching(Some(days));
                }
                let cmd = match self.search(false).pop() {
                    Some(Cmd::Search { seq, query, .. }) => Cmd::AgeFilter { seq, query, days },
                    _ => return Vec::new(),
                };
                self.age_filter = Some(days);
                return vec![cmd];
            }
            // Enter ends the path; `y` then starts the run, as every confirm does.
            (
                Some(Popup::BulkConfirm {
                    path,
                    confirming: confirming @ false,
                    ..
                }),
                Action::Proceed,
            ) if !path.text().trim().is_empty() => *confirming = true,
            (
                Some(Popup::BulkConfirm {
                    confirming: confirming @ true,
                    ..
                }),
                Action::No,
            ) => *confirming = false,
            (
                Some(Popup::BulkConfirm {
                    path,
                    confirming: true,
                    ..
                }),
                Action::Yes,
            ) => {
                let out = std::path::PathBuf::from(path.text().trim());
                let items = self
                    .marked
                    .values()
                    .map(|c| (c.id, Expectation::Seen(c.key.clone())))
                    .collect::<Vec<_>>();
                let total = items.len();
                self.writing = Some("the contact in flight (the run stops after it)".into());
                self.popup = Some(Popup::BulkRunning {
                    done: 0,
                    total,
                    last: String::new(),
                });
                return vec![Cmd::BulkRotate { items, out }];
            }
            (_, Action::Back) => self.popup = None,
            _ => {}
        }
        Vec::new()
    }

    pub(super) fn on_bulk_finished(
        &mut self,
        kind: super::BulkKind,
        results: Vec<BulkResult>,
        out: String,
        error: Option<String>,
    ) -> Vec<Cmd> {
        for r in &results {
            if r.outcome == crate::bulk::BulkOutcome::Done {
                self.marked.remove(&r.id);
            }
        }
        self.popup = Some(Popup::BulkResults {
            kind,
            results,
            out,
            error,
            scroll: 0,
        });
        // The list shows the new key states, on the contact selected before.
        self.reload_keeping_selection()
    }

    pub(super) fn on_bulk_results_action(&mut self, action: Action) -> Vec<Cmd> {
        if let Some(Popup::BulkResults {
            results, scroll, ..
        }) = self.popup.as_mut()
        {
            match action {
                Action::Down => *scroll = (*scroll + 1).min(results.len().saturating_sub(1)),
                Action::Up => *scroll = scroll.saturating_sub(1),
                Action::Back | Action::Proceed | Action::Quit => self.popup = None,
                _ => {}
            }
        }
        Vec::new()
    }
}
