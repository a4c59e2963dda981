//! The health view of the App: every finding of the key health check, grouped by code;
//! findings are marked (their contacts join the bulk marks), then `R` rotates them through
//! the bulk flow or `x` revokes them after one confirm. Still pure: no IO here.

use super::{Action, App, Cmd, Popup};
use crate::health::{sort_findings, Code, Finding, Report};
use crate::rotation::Expectation;
use crate::store::ContactId;

/// The TUI checks ages too, against the same default as `o` and `A`.
pub const HEALTH_MAX_AGE_DAYS: u32 = 90;

impl App {
    pub(super) fn open_health(&mut self) -> Vec<Cmd> {
        if self.store_info().is_none() {
            self.notice = Some(("The store is not open yet.".into(), true));
            return Vec::new();
        }
        self.popup = Some(Popup::Checking { read: 0 });
        vec![Cmd::CheckHealth {
            max_age_days: Some(HEALTH_MAX_AGE_DAYS),
        }]
    }

    /// A batch judged: the health view opens with the first findings and grows as the
    /// read goes on, saying how far it has come; the selected finding stays selected.
    pub(super) fn on_health_progress(&mut self, read: usize, new: Vec<Finding>) -> Vec<Cmd> {
        match self.popup.as_mut() {
            Some(Popup::Checking { read: shown }) if new.is_empty() => *shown = read,
            Some(Popup::Checking { .. }) => {
                let mut report = Report {
                    findings: new,
                    holders: read,
                    ..Report::default()
                };
                sort_findings(&mut report.findings);
                self.popup = Some(Popup::Health {
                    summary: reading_summary(&report),
                    report,
                    selected: 0,
                    scroll: 0,
                    reading: Some(read),
                    detail: false,
                });
            }
            Some(Popup::Health {
                report,
                summary,
                selected,
                reading: Some(shown),
                ..
            }) => {
                let kept = moved(report, *selected);
                report.findings.extend(new);
                sort_findings(&mut report.findings);
                report.holders = read;
                *shown = read;
                *selected = reselect(report, kept, *selected);
                *summary = reading_summary(report);
            }
            // The view was closed while reading: the rest is not shown.
            _ => return Vec::new(),
        }
        self.keep_health_selection_visible();
        Vec::new()
    }

    pub(super) fn on_health_checked(&mut self, result: Result<Report, String>) -> Vec<Cmd> {
        let kept = match &self.popup {
            Some(Popup::Checking { .. }) => None,
            Some(Popup::Health {
                report,
                selected,
                reading: Some(_),
                ..
            }) => moved(report, *selected),
            // Closed while reading: the answer is dropped (`h` checks again).
            _ => return Vec::new(),
        };
        self.popup = Some(match result {
            Ok(report) => Popup::Health {
                summary: report.summary(),
                selected: reselect(&report, kept, 0),
                report,
                scroll: 0,
                reading: None,
                detail: false,
            },
            Err(e) => super::error_popup("The key health check failed", e),
        });
        self.keep_health_selection_visible();
        Vec::new()
    }

    pub(super) fn on_health_action(&mut self, action: Action) -> Vec<Cmd> {
        let rows = self.table_rows();
        let Some(Popup::Health {
            report,
            selected,
            reading,
            detail,
            ..
        }) = self.popup.as_mut()
        else {
            return Vec::new();
        };
        let last = report.findings.len().saturating_sub(1);
        match action {
            // The finding in full: Enter opens it; Enter, Esc or q closes it (back to the view).
            Action::Proceed => *detail = !*detail && !report.findings.is_empty(),
            Action::Back | Action::Quit | Action::Health if *detail => *detail = false,
            Action::Down => *selected = (*selected + 1).min(last),
            Action::Up => *selected = selected.saturating_sub(1),
            Action::PageDown => *selected = (*selected + rows).min(last),
            Action::PageUp => *selected = selected.saturating_sub(rows),
            Action::Top => *selected = 0,
            Action::Bottom => *selected = last,
            Action::ToggleMark => {
                if let Some(f) = report.findings.get(*selected) {
                    let contact = f.contact.clone();
                    *selected = (*selected + 1).min(last);
                    if self.marked.remove(&contact.id).is_none() {
                        self.marked.insert(contact.id, contact);
                    }
                }
            }
            Action::MarkMatching => {
                // Every contact of the selected finding's group.
                if let Some(code) = report.findings.get(*selected).map(|f| f.code) {
                    let group: Vec<_> = report
                        .findings
                        .iter()
                        .filter(|f| f.code == code)
                        .map(|f| f.contact.clone())
                        .collect();
                    let n = group.len();
                    for c in group {
                        self.marked.insert(c.id, c);
                    }
                    self.notice = Some((
                        format!(
                            "Marked the {} of {}.",
                            crate::wording::plural(n, "contact", "contacts"),
                            code.as_str()
                        ),
                        false,
                    ));
                }
            }
            Action::BulkRotate | Action::Revoke if reading.is_some() => {
                self.notice = Some((
                    "The check is still reading key holders: rotate or revoke when it is done."
                        .into(),
                    true,
                ));
            }
            Action::BulkRotate => return self.open_bulk_confirm(),
            Action::Revoke => self.open_bulk_revoke(),
            Action::Back | Action::Quit | Action::Health => self.popup = None,
            _ => {}
        }
        self.keep_health_selection_visible();
        Vec::new()
    }

    fn keep_health_selection_visible(&mut self) {
        let rows = health_rows_for(self.size.1);
        if let Some(Popup::Health {
            report,
            selected,
            scroll,
            ..
        }) = self.popup.as_mut()
        {
            // Group headers take lines too: count the lines up to the selection.
            let line = health_line_of(report, *selected);
            // A group's first finding brings its header line into view with it.
            let starts_group = report.starts_group(*selected);
            let top = if starts_group { line - 1 } else { line };
            if top < *scroll {
                *scroll = top;
            } else if line >= *scroll + rows {
                *scroll = line + 1 - rows;
            }
        }
    }

    /// The marked contacts that hold a key, for a bulk revoke.
    fn revocable(&self) -> Vec<(crate::store::ContactId, Expectation)> {
        self.marked
            .values()
            .filter(|c| c.key.is_some())
            .map(|c| (c.id, Expectation::Seen(c.key.clone())))
            .collect()
    }

    fn open_bulk_revoke(&mut self) {
        if !self.store_info().is_some_and(|i| i.writable) {
            self.notice = Some((
                "The store is read-only: keys cannot be changed.".into(),
                true,
            ));
            return;
        }
        let count = self.revocable().len();
        if count == 0 {
            self.notice = Some((
                "Mark findings first: space marks one, * its whole group.".into(),
                false,
            ));
            return;
        }
        self.popup = Some(Popup::ConfirmBulkRevoke { count });
    }

    pub(super) fn on_confirm_bulk_revoke_action(&mut self, action: Action) -> Vec<Cmd> {
        match action {
            Action::Yes => {
                let items = self.revocable();
                // A write in flight: quitting waits for the contact being revoked.
                self.writing = Some("the contact in flight (the run stops after it)".into());
                self.popup = Some(Popup::BulkRunning {
                    done: 0,
                    total: items.len(),
                    last: String::new(),
                });
                vec![Cmd::BulkRevoke { items }]
            }
            Action::No | Action::Back => {
                self.cancel("Cancelled: every key was kept.");
                Vec::new()
            }
            _ => Vec::new(),
        }
    }
}

/// Lines of findings the health view shows at this terminal height.
pub fn health_rows_for(height: u16) -> usize {
    // margins (2), borders (2), the summary and the keys lines (2).
    usize::from(height.saturating_sub(6)).max(1)
}

/// The line (counting one header line per group) that shows finding `index`.
pub fn health_line_of(report: &Report, index: usize) -> usize {
    let groups = report
        .findings
        .iter()
        .take(index + 1)
        .enumerate()
        .filter(|(i, _)| report.starts_group(*i))
        .count();
    index + groups
}

/// The selected finding, by what identifies it across reports (its code and contact),
/// when the operator moved off the top: a selection left at the top stays at the top as
/// findings come (duplicates, judged last, sort first).
fn moved(report: &Report, selected: usize) -> Option<(Code, ContactId)> {
    report
        .findings
        .get(selected)
        .filter(|_| selected > 0)
        .map(|f| (f.code, f.contact.id))
}

/// Where the finding `kept` is in `report` now (`otherwise` when it is gone or none was).
fn reselect(report: &Report, kept: Option<(Code, ContactId)>, otherwise: usize) -> usize {
    kept.and_then(|(code, id)| {
        report
            .findings
            .iter()
            .position(|f| f.code == code && f.contact.id == id)
    })
    .unwrap_or(otherwise)
    .min(report.findings.len().saturating_sub(1))
}

/// The summary line while the check still reads: how far it has come.
fn reading_summary(report: &Report) -> String {
    format!(
        "reading… {} read so far, {} until now; duplicate keys are judged at the end",
        crate::wording::plural(report.holders, "key holder", "key holders"),
        crate::wording::plural(report.findings.len(), "finding", "findings"),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::app::{AppOptions, Mode, Msg};
    use crate::health::{Code, Finding};
    use crate::key::{KeyHint, SeededKeySource};
    use crate::sanitize::SafeText;
    use crate::store::{CmsLink, Contact, StoreInfo, StoreKind};

    fn contact(id: u64, key: &str, deleted: bool) -> Contact {
        Contact {
            id,
            contact_type: SafeText::new("Individual"),
            display_name: SafeText::new(&format!("Person {id}")),
            sort_name: SafeText::new(&format!("Person {id}")),
            email: None,
            is_deleted: deleted,
            key: Some(KeyHint::from_tail(key)),
            cms: CmsLink::Linked { uf_id: id },
        }
    }

    fn finding(code: Code, c: &Contact) -> Finding {
        Finding {
            code,
            severity: code.severity(),
            advice: code.advice(),
            contact: c.clone(),
            key: c.key.clone().unwrap_or_else(|| KeyHint::from_tail("")),
            detail: format!("{} detail", code.as_str()),
            rule: None,
            holders: Vec::new(),
        }
    }

    pub(crate) fn report() -> Report {
        let (a, b, c, d) = (
            contact(11, "AAAA", false),
            contact(12, "aaaa", false),
            contact(13, "shrt", false),
            contact(14, "TRSH", true),
        );
        Report {
            findings: vec![
                finding(Code::Duplicate, &a),
                finding(Code::Duplicate, &b),
                finding(Code::Weak, &c),
                finding(Code::Trashed, &d),
            ],
            holders: 9,
            standing_unknown: 0,
            users_hidden: false,
            max_age_days: Some(90),
        }
    }

    fn app(writable: bool) -> App {
        let options = AppOptions {
            location: "sqlite:/tmp/t.sqlite".into(),
            color: false,
            clipboard_warning: None,
            data_dir: "/data".into(),
            profiles: Vec::new(),
        };
        let (mut app, _) = App::new(options, Box::new(SeededKeySource::new(1)));
        app.update(Msg::StoreOpened(Ok(StoreInfo {
            kind: StoreKind::Sqlite,
            location: SafeText::new("sqlite:/tmp/t.sqlite"),
            key_capacity: 32,
            keys_case_insensitive: true,
            writable,
        })));
        app
    }

    /// `h`, then the check's answer: the health view.
    pub(crate) fn opened(writable: bool) -> App {
        let mut app = app(writable);
        let cmds = app.update(Msg::Action(Action::Health));
        assert!(matches!(
            cmds.as_slice(),
            [Cmd::CheckHealth {
                max_age_days: Some(HEALTH_MAX_AGE_DAYS)
            }]
        ));
        assert_eq!(app.mode(), Mode::Working, "a checking popup while it runs");
        app.update(Msg::HealthProgress {
            read: 7,
            findings: Vec::new(),
        });
        assert!(matches!(app.popup, Some(Popup::Checking { read: 7 })));
        app.update(Msg::HealthChecked {
            result: Ok(report()),
        });
        assert_eq!(app.mode(), Mode::Health);
        app
    }

    fn act(app: &mut App, action: Action) -> Vec<Cmd> {
        app.update(Msg::Action(action))
    }

    /// The view opens with the first batch's findings, says how far the read has come,
    /// grows batch by batch keeping the selected finding, refuses R and x until the report
    /// is whole, and then takes the whole report (duplicates included).
    #[test]
    fn the_health_view_opens_with_the_first_findings_and_says_how_far_the_read_has_come() {
        let mut app = app(true);
        act(&mut app, Action::Health);
        let whole = report();
        let (weak, trashed) = (whole.findings[2].clone(), whole.findings[3].clone());
        app.update(Msg::HealthProgress {
            read: 25_000,
            findings: vec![trashed.clone()],
        });
        assert_eq!(app.mode(), Mode::Health, "shown before the read is done");
        let Some(Popup::Health {
            summary, reading, ..
        }) = &app.popup
        else {
            panic!("{:?}", app.popup.is_some())
        };
        assert_eq!(*reading, Some(25_000));
        assert!(
            summary.contains("25000 key holders read so far"),
            "{summary}"
        );
        app.update(Msg::HealthProgress {
            read: 50_000,
            findings: vec![weak],
        });
        let Some(Popup::Health {
            report, selected, ..
        }) = &app.popup
        else {
            panic!("no view")
        };
        assert_eq!(report.findings.len(), 2);
        assert_eq!(
            report.findings[*selected].contact.id, 13,
            "not moved: the top stays selected (the weak key sorts first)"
        );
        act(&mut app, Action::Down);
        act(&mut app, Action::ToggleMark);
        assert!(app.marked.contains_key(&14));
        assert!(act(&mut app, Action::Revoke).is_empty());
        assert!(
            matches!(app.popup, Some(Popup::Health { .. })),
            "no revoke of a partial report"
        );
        assert!(app
            .notice
            .as_ref()
            .is_some_and(|n| n.0.contains("still reading")));
        app.update(Msg::HealthChecked { result: Ok(whole) });
        let Some(Popup::Health {
            report,
            selected,
            reading: None,
            ..
        }) = &app.popup
        else {
            panic!("not whole")
        };
        assert_eq!(report.findings.len(), 4, "duplicates come with the report");
        assert_eq!(
            report.findings[*selected].contact.id, 14,
            "moved: the trashed contact stays selected"
        );
        // A view left at the top shows the top of the whole report.
        let whole = self::report();
        let mut app = self::app(true);
        act(&mut app, Action::Health);
        app.update(Msg::HealthProgress {
            read: 1,
            findings: vec![trashed],
        });
        app.update(Msg::HealthChecked { result: Ok(whole) });
        assert!(
            matches!(&app.popup, Some(Popup::Health { report, selected: 0, .. }) if report.findings[0].code == Code::Duplicate)
        );
    }

    #[test]
    fn marking_findings_marks_their_contacts_and_r_rotates_them_in_bulk() {
        let mut app = opened(true);
        act(&mut app, Action::ToggleMark);
        assert_eq!(app.marked.keys().copied().collect::<Vec<_>>(), [11]);
        act(&mut app, Action::Down);
        act(&mut app, Action::ToggleMark);
        assert_eq!(app.marked.keys().copied().collect::<Vec<_>>(), [11, 13]);
        act(&mut app, Action::Up);
        act(&mut app, Action::ToggleMark);
        assert_eq!(
            app.marked.keys().copied().collect::<Vec<_>>(),
            [11],
            "space again unmarks"
        );
        act(&mut app, Action::Top);
        act(&mut app, Action::MarkMatching);
        assert_eq!(
            app.marked.keys().copied().collect::<Vec<_>>(),
            [11, 12],
            "* marks the selected finding's whole group"
        );
        act(&mut app, Action::BulkRotate);
        assert!(
            matches!(app.popup, Some(Popup::BulkConfirm { .. })),
            "R goes on to the bulk flow's one confirm screen"
        );
    }

    #[test]
    fn x_revokes_the_marked_set_after_one_yes() {
        let mut app = opened(true);
        assert!(act(&mut app, Action::Revoke).is_empty());
        assert_eq!(
            app.mode(),
            Mode::Health,
            "nothing marked: nothing to confirm"
        );
        assert!(app.notice.is_some());
        act(&mut app, Action::Bottom);
        act(&mut app, Action::ToggleMark);
        assert!(act(&mut app, Action::Revoke).is_empty());
        assert!(matches!(
            app.popup,
            Some(Popup::ConfirmBulkRevoke { count: 1 })
        ));
        let cmds = act(&mut app, Action::Yes);
        let [Cmd::BulkRevoke { items }] = cmds.as_slice() else {
            panic!("y revokes");
        };
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].0, 14);
        assert_eq!(
            items[0].1,
            Expectation::Seen(Some(KeyHint::from_tail("TRSH"))),
            "compare-and-set against the key the check saw"
        );
        assert_eq!(app.mode(), Mode::BulkRunning);
    }

    #[test]
    fn no_cancels_and_a_read_only_store_refuses() {
        let mut app = opened(true);
        act(&mut app, Action::ToggleMark);
        act(&mut app, Action::Revoke);
        assert!(act(&mut app, Action::No).is_empty());
        assert!(app.popup.is_none(), "n cancels, nothing written");
        let mut app = opened(false);
        act(&mut app, Action::ToggleMark);
        act(&mut app, Action::Revoke);
        assert_eq!(app.mode(), Mode::Health);
        assert!(app
            .notice
            .as_ref()
            .is_some_and(|(t, _)| t.contains("read-only")));
        act(&mut app, Action::Back);
        assert!(app.popup.is_none(), "Esc closes the view");
    }

    #[test]
    fn a_failed_check_says_so() {
        let mut app = app(true);
        act(&mut app, Action::Health);
        app.update(Msg::HealthChecked {
            result: Err("the store cannot be reached".into()),
        });
        assert!(matches!(
            app.popup,
            Some(Popup::Message { is_error: true, .. })
        ));
    }

    #[test]
    fn the_selection_stays_in_view_with_many_findings() {
        let mut app = app(true);
        app.update(Msg::Resize {
            width: 80,
            height: 24,
        });
        act(&mut app, Action::Health);
        let mut many = report();
        let weak = many.findings[2].clone();
        for id in 100..160 {
            let mut f = weak.clone();
            f.contact.id = id;
            many.findings.insert(3, f);
        }
        app.update(Msg::HealthChecked { result: Ok(many) });
        act(&mut app, Action::Bottom);
        let Some(Popup::Health {
            report,
            selected,
            scroll,
            ..
        }) = &app.popup
        else {
            panic!("the health view");
        };
        let line = health_line_of(report, *selected);
        assert!(
            *scroll > 0 && line < scroll + health_rows_for(24),
            "{scroll} {line}"
        );
        act(&mut app, Action::Top);
        assert!(matches!(app.popup, Some(Popup::Health { scroll: 0, .. })));
    }

    fn detail_open(app: &App) -> Option<(bool, usize)> {
        match &app.popup {
            Some(Popup::Health {
                detail, selected, ..
            }) => Some((*detail, *selected)),
            _ => None,
        }
    }

    #[test]
    fn enter_reads_a_finding_in_full_and_esc_goes_back_to_the_view() {
        let mut app = opened(true);
        act(&mut app, Action::Down);
        act(&mut app, Action::Proceed);
        assert_eq!(detail_open(&app), Some((true, 1)), "Enter opens the detail");
        act(&mut app, Action::Down);
        assert_eq!(detail_open(&app), Some((true, 2)), "j moves on, open");
        act(&mut app, Action::Back);
        assert_eq!(detail_open(&app), Some((false, 2)), "Esc: back to the view");
        act(&mut app, Action::Proceed);
        act(&mut app, Action::Proceed);
        assert_eq!(detail_open(&app), Some((false, 2)), "Enter closes it too");
        act(&mut app, Action::Proceed);
        act(&mut app, Action::Quit);
        assert_eq!(
            detail_open(&app),
            Some((false, 2)),
            "q closes the detail first"
        );
        act(&mut app, Action::Back);
        assert!(app.popup.is_none(), "then the view");
    }

    #[test]
    fn help_over_the_health_view_comes_back_to_it() {
        let mut app = opened(true);
        act(&mut app, Action::Down);
        act(&mut app, Action::Proceed);
        act(&mut app, Action::Help);
        assert_eq!(app.mode(), Mode::Help);
        act(&mut app, Action::Back);
        assert_eq!(
            detail_open(&app),
            Some((true, 1)),
            "the same view, as it was"
        );
    }

    #[test]
    fn group_headers_count_as_lines() {
        let r = report();
        assert_eq!(health_line_of(&r, 0), 1);
        assert_eq!(health_line_of(&r, 1), 2);
        assert_eq!(health_line_of(&r, 2), 4, "weak starts a new group");
        assert_eq!(health_line_of(&r, 3), 6);
    }
}
