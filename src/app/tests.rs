//! App update tests: every flow without a terminal or a store.

use super::*;
use crate::key::{KeyHint, SeededKeySource};
use crate::rotation::{Assigned, Revoked};
use crate::sanitize::SafeText;
use crate::store::{CmsLink, StoreKind};

fn info(writable: bool) -> StoreInfo {
    StoreInfo {
        kind: StoreKind::Sqlite,
        location: SafeText::new("sqlite:/tmp/test.sqlite"),
        key_capacity: 32,
        keys_case_insensitive: true,
        writable,
    }
}

pub(crate) fn contact(id: u64, name: &str, key: Option<&str>) -> Contact {
    Contact {
        id,
        contact_type: SafeText::new("Individual"),
        display_name: SafeText::new(name),
        sort_name: SafeText::new(name),
        email: Some(SafeText::new(&format!("c{id}@example.org"))),
        is_deleted: false,
        key: key.map(KeyHint::from_tail),
        cms: CmsLink::Linked { uf_id: id * 10 },
    }
}

pub(super) fn app_with(contacts: Vec<Contact>, writable: bool) -> App {
    let options = AppOptions {
        location: "sqlite:/tmp/test.sqlite".into(),
        color: true,
        clipboard_warning: None,
        data_dir: "/data".into(),
        profiles: Vec::new(),
    };
    let (mut app, cmds) = App::new(options, Box::new(SeededKeySource::new(42)));
    assert!(matches!(cmds.as_slice(), [Cmd::OpenStore]));
    let cmds = app.update(Msg::StoreOpened(Ok(info(writable))));
    let [Cmd::Search {
        seq,
        append: false,
        query,
    }] = cmds.as_slice()
    else {
        panic!("opening the store must start the first search");
    };
    assert_eq!(query.text, "");
    let seq = *seq;
    app.update(Msg::Searched {
        seq,
        append: false,
        result: Ok(Page {
            contacts,
            next: None,
        }),
        history: Vec::new(),
    });
    app
}

fn act(app: &mut App, action: Action) -> Vec<Cmd> {
    app.update(Msg::Action(action))
}

pub(super) fn three() -> Vec<Contact> {
    vec![
        contact(1, "Ada Lovelace", Some("AaaaBbbbCcccDdddEeeeFfffGggg0001")),
        contact(2, "Alan Turing", None),
        contact(3, "Grace Hopper", Some("ZzzzYyyyXxxxWwwwVvvvUuuuTttt0002")),
    ]
}

#[test]
fn starts_loading_then_lists() {
    let options = AppOptions {
        location: "x".into(),
        color: false,
        clipboard_warning: None,
        data_dir: "/data".into(),
        profiles: Vec::new(),
    };
    let (app, _) = App::new(options, Box::new(SeededKeySource::new(1)));
    assert!(app.loading);
    assert_eq!(app.store, StoreState::Opening);
    let app = app_with(three(), true);
    assert!(!app.loading);
    assert_eq!(app.contacts.len(), 3);
    assert_eq!(app.selected_contact().unwrap().id, 1);
}

#[test]
fn navigation_stays_in_bounds() {
    let mut app = app_with(three(), true);
    act(&mut app, Action::Up);
    assert_eq!(app.selected, 0);
    act(&mut app, Action::Down);
    act(&mut app, Action::Down);
    act(&mut app, Action::Down);
    assert_eq!(app.selected, 2);
    act(&mut app, Action::Top);
    assert_eq!(app.selected, 0);
    act(&mut app, Action::Bottom);
    assert_eq!(app.selected, 2);
    act(&mut app, Action::PageUp);
    assert_eq!(app.selected, 0);
}

#[test]
fn paging_scrolls_and_fetches_more_near_the_end() {
    let many: Vec<Contact> = (1..=PAGE_SIZE as u64)
        .map(|i| contact(i, &format!("C{i:03}"), None))
        .collect();
    let mut app = app_with(Vec::new(), true);
    let seq = app.search_seq;
    let next = Some(Cursor::After {
        sort_name: Some("C100".into()),
        id: 100,
    });
    app.update(Msg::Searched {
        seq,
        append: false,
        result: Ok(Page {
            contacts: many,
            next,
        }),
        history: Vec::new(),
    });
    app.update(Msg::Resize {
        width: 80,
        height: 24,
    });
    let rows = table_rows_for(24);
    act(&mut app, Action::PageDown);
    assert_eq!(app.selected, rows);
    assert!(app.scroll > 0 && app.scroll <= app.selected);
    let cmds = act(&mut app, Action::Bottom);
    let [Cmd::Search {
        append: true,
        query,
        seq: s,
    }] = cmds.as_slice()
    else {
        panic!("reaching the end must fetch the next page");
    };
    assert_eq!(*s, seq);
    assert!(query.after.is_some());
    app.update(Msg::Searched {
        seq,
        append: true,
        result: Ok(Page {
            contacts: vec![contact(101, "C101", None)],
            next: None,
        }),
        history: Vec::new(),
    });
    assert_eq!(app.contacts.len(), PAGE_SIZE + 1);
}

#[test]
fn incremental_search_sends_each_keystroke_and_drops_stale_answers() {
    let mut app = app_with(three(), true);
    act(&mut app, Action::StartSearch);
    assert_eq!(app.mode(), Mode::Search);
    let first = act(&mut app, Action::SearchChar('g'));
    let second = act(&mut app, Action::SearchChar('r'));
    let (
        Cmd::Search {
            seq: s1, query: q1, ..
        },
        Cmd::Search {
            seq: s2, query: q2, ..
        },
    ) = (&first[0], &second[0])
    else {
        panic!("each keystroke searches");
    };
    assert_eq!(q1.text, "g");
    assert_eq!(q2.text, "gr");
    assert!(s2 > s1);
    // The answer to the older search arrives late: dropped.
    app.update(Msg::Searched {
        seq: *s1,
        append: false,
        result: Ok(Page::default()),
        history: Vec::new(),
    });
    assert_eq!(app.contacts.len(), 3);
    let grace = vec![contact(3, "Grace Hopper", None)];
    app.update(Msg::Searched {
        seq: *s2,
        append: false,
        result: Ok(Page {
            contacts: grace,
            next: None,
        }),
        history: Vec::new(),
    });
    assert_eq!(app.contacts.len(), 1);
    assert!(!q2.deep, "a keystroke never runs the deep search");
    // Tab runs the deep search once; Enter on its answer keeps the filter.
    let deep = act(&mut app, Action::SearchDeep);
    let [Cmd::Search { seq: s3, query, .. }] = deep.as_slice() else {
        panic!("Tab on a name runs the deep search");
    };
    assert!(query.deep);
    app.update(Msg::Searched {
        seq: *s3,
        append: false,
        result: Ok(Page {
            contacts: vec![contact(3, "Grace Hopper", None)],
            next: None,
        }),
        history: Vec::new(),
    });
    assert!(act(&mut app, Action::SearchAccept).is_empty());
    assert_eq!(app.mode(), Mode::List);
    assert_eq!(app.filter, "gr");
    // Esc in the list clears the kept filter and searches everything again.
    let cmds = act(&mut app, Action::Back);
    assert!(matches!(&cmds[..], [Cmd::Search { query, .. }] if query.text.is_empty()));
    assert_eq!(app.filter, "");
}

#[test]
fn esc_while_searching_clears_the_filter() {
    let mut app = app_with(three(), true);
    act(&mut app, Action::StartSearch);
    act(&mut app, Action::SearchChar('x'));
    let cmds = act(&mut app, Action::SearchClear);
    assert!(matches!(&cmds[..], [Cmd::Search { query, .. }] if query.text.is_empty()));
    assert_eq!(app.mode(), Mode::List);
}

fn new_key_of(app: &App) -> String {
    match &app.popup {
        Some(Popup::NewKey { key, .. }) => key.expose().to_string(),
        _ => panic!("no new-key popup"),
    }
}

#[test]
fn generate_regenerate_confirm_assign() {
    let mut app = app_with(three(), true);
    act(&mut app, Action::Down); // Alan Turing, no key
    let cmds = act(&mut app, Action::Rotate);
    assert!(
        matches!(&cmds[..], [Cmd::LoadRoles { id: 2 }]),
        "showing a key writes nothing; it only loads the roles"
    );
    app.update(Msg::Roles {
        id: 2,
        standing: crate::store::Standing::no_account(),
    });
    assert!(app.standings.contains_key(&2));
    let first = new_key_of(&app);
    assert_eq!(first.len(), 32);
    act(&mut app, Action::Regenerate);
    let second = new_key_of(&app);
    assert_ne!(first, second);
    assert!(act(&mut app, Action::Proceed).is_empty());
    assert_eq!(app.mode(), Mode::Confirm);
    let cmds = act(&mut app, Action::Yes);
    let [Cmd::Assign {
        id,
        expectation,
        key,
    }] = cmds.as_slice()
    else {
        panic!("y must assign");
    };
    assert_eq!(*id, 2);
    assert_eq!(*expectation, Expectation::Seen(None));
    assert_eq!(key.expose(), second);
    assert_eq!(app.mode(), Mode::Working);
    assert!(
        act(&mut app, Action::Quit).is_empty(),
        "q does nothing while a write runs"
    );

    let mut updated = contact(2, "Alan Turing", Some(&second));
    updated.key = Some(KeyHint::from_tail(&second));
    app.update(Msg::Assigned {
        result: Ok(AssignDone {
            assigned: Assigned {
                contact: updated,
                key: ApiKey::from_store(second.clone()),
                previous: None,
                regenerated: false,
                audit_warning: None,
            },
            undo: UndoInfo {
                contact_id: 2,
                until_unix: 600,
            },
            history: Some(KeySet {
                time: 0,
                by: "alice".into(),
            }),
            login_check: Some(crate::login_check::LoginCheck {
                ok: true,
                contact_id: Some(2),
                detail: "logs in as contact 2".into(),
            }),
            handover: crate::handover::Handover {
                endpoint: None,
                needs_site_key: None,
            },
        }),
    });
    assert!(
        matches!(&app.popup, Some(Popup::Shown { login_check: Some(c), .. }) if c.ok),
        "the shown-once popup carries the login check"
    );
    assert_eq!(app.undo.as_ref().map(|u| u.contact_id), Some(2));
    assert_eq!(app.key_sets.get(&2).map(|k| k.by.as_str()), Some("alice"));
    assert_eq!(app.mode(), Mode::Shown);
    let cmds = act(&mut app, Action::Copy);
    assert!(matches!(&cmds[..], [Cmd::CopyToClipboard(k)] if k.expose() == second));
    act(&mut app, Action::Proceed);
    assert!(app.popup.is_none());
    assert_eq!(
        app.contacts[1].key,
        Some(KeyHint::from_tail(&second)),
        "the list shows the new status"
    );
}

#[test]
fn enter_on_a_contact_opens_the_new_key_popup() {
    let mut app = app_with(three(), true);
    act(&mut app, Action::Proceed);
    assert_eq!(app.mode(), Mode::NewKey);
}

#[test]
fn esc_or_n_at_each_popup_writes_nothing() {
    let mut app = app_with(three(), true);
    act(&mut app, Action::Rotate);
    assert!(act(&mut app, Action::Back).is_empty());
    assert!(app.popup.is_none());
    act(&mut app, Action::Rotate);
    act(&mut app, Action::Proceed);
    assert!(act(&mut app, Action::No).is_empty());
    assert!(app.popup.is_none());
    act(&mut app, Action::Rotate);
    act(&mut app, Action::Proceed);
    assert!(act(&mut app, Action::Back).is_empty());
    assert!(app.popup.is_none());
    act(&mut app, Action::Revoke);
    assert_eq!(app.mode(), Mode::ConfirmRevoke);
    assert!(act(&mut app, Action::Back).is_empty());
    assert!(app.popup.is_none());
}

#[test]
fn confirm_carries_what_the_operator_saw() {
    let mut app = app_with(three(), true);
    act(&mut app, Action::Rotate);
    act(&mut app, Action::Proceed);
    let cmds = act(&mut app, Action::Yes);
    let [Cmd::Assign { expectation, .. }] = cmds.as_slice() else {
        panic!()
    };
    assert_eq!(
        *expectation,
        Expectation::Seen(Some(KeyHint::from_tail("AaaaBbbbCcccDdddEeeeFfffGggg0001")))
    );
}

#[test]
fn failed_assign_shows_the_error_and_refreshes_the_contact() {
    let mut app = app_with(three(), true);
    act(&mut app, Action::Rotate);
    act(&mut app, Action::Proceed);
    act(&mut app, Action::Yes);
    let cmds = app.update(Msg::Assigned {
        result: Err("the key changed since it was read".into()),
    });
    assert!(matches!(&cmds[..], [Cmd::Refresh { id: 1 }]));
    assert!(matches!(
        &app.popup,
        Some(Popup::Message { is_error: true, .. })
    ));
    act(&mut app, Action::Back);
    assert!(app.popup.is_none());
}

#[test]
fn revoke_flow() {
    let mut app = app_with(three(), true);
    act(&mut app, Action::Down); // Alan, no key
    assert!(act(&mut app, Action::Revoke).is_empty());
    assert!(app.popup.is_none(), "nothing to revoke");
    assert!(app.notice.is_some());
    act(&mut app, Action::Down); // Grace, has a key
    act(&mut app, Action::Revoke);
    let cmds = act(&mut app, Action::Yes);
    assert!(matches!(&cmds[..], [Cmd::Revoke { id: 3, .. }]));
    app.update(Msg::Revoked {
        result: Ok(RevokeDone {
            revoked: Revoked {
                contact: contact(3, "Grace Hopper", None),
                previous: None,
                audit_warning: None,
            },
            undo: Some(UndoInfo {
                contact_id: 3,
                until_unix: 600,
            }),
        }),
    });
    assert!(app.undo.is_some());
    assert!(app.popup.is_none());
    assert_eq!(app.contacts[2].key, None);
}

#[test]
fn read_only_store_refuses_to_start_a_rotation() {
    let mut app = app_with(three(), false);
    act(&mut app, Action::Rotate);
    assert!(app.popup.is_none());
    assert!(app
        .notice
        .as_ref()
        .is_some_and(|(t, err)| *err && t.contains("read-only")));
}

#[test]
fn quit_keys() {
    let mut app = app_with(three(), true);
    act(&mut app, Action::Help);
    act(&mut app, Action::Quit);
    assert!(!app.should_quit, "q closes the popup first");
    act(&mut app, Action::Quit);
    assert!(app.should_quit);
    let mut app = app_with(three(), true);
    act(&mut app, Action::Rotate);
    act(&mut app, Action::ForceQuit);
    assert!(app.should_quit, "Ctrl-C always quits");
}

#[test]
fn store_failure_is_kept_for_display() {
    let options = AppOptions {
        location: "x".into(),
        color: false,
        clipboard_warning: None,
        data_dir: "/data".into(),
        profiles: Vec::new(),
    };
    let (mut app, _) = App::new(options, Box::new(SeededKeySource::new(1)));
    app.update(Msg::StoreOpened(Err("not a SQLite database".into())));
    assert_eq!(
        app.store,
        StoreState::Failed("not a SQLite database".into())
    );
    assert!(act(&mut app, Action::Rotate).is_empty());
}

#[test]
fn undo_goes_to_the_worker_once() {
    let mut app = app_with(three(), true);
    assert!(
        act(&mut app, Action::Undo).is_empty(),
        "nothing to undo yet"
    );
    app.undo = Some(UndoInfo {
        contact_id: 1,
        until_unix: 600,
    });
    assert!(act(&mut app, Action::Undo).is_empty(), "undo asks first");
    assert_eq!(app.mode(), Mode::ConfirmUndo);
    let cmds = act(&mut app, Action::Yes);
    assert!(matches!(&cmds[..], [Cmd::Undo]));
    assert_eq!(app.mode(), Mode::Working);
    assert!(app.undo.is_none());
    let cmds = app.update(Msg::Undone {
        result: Ok(contact(1, "Ada Lovelace", None)),
    });
    assert!(matches!(&cmds[..], [Cmd::Refresh { id: 1 }]));
    assert!(app.popup.is_none());
    assert_eq!(app.contacts[0].key, None);
}

#[test]
fn audit_view_opens_filters_and_closes() {
    let mut app = app_with(three(), true);
    let cmds = act(&mut app, Action::Audit);
    assert!(matches!(
        &cmds[..],
        [Cmd::LoadAudit {
            contact: None,
            all_stores: false
        }]
    ));
    let load = |app: &mut App, contact, all_stores| {
        app.update(Msg::AuditLoaded {
            contact,
            all_stores,
            result: Ok(Vec::new()),
        });
        assert_eq!(app.mode(), Mode::Audit);
    };
    load(&mut app, None, false);
    // f: this store -> the selected contact -> every store -> this store.
    let cmds = act(&mut app, Action::AuditFilter);
    assert!(matches!(
        &cmds[..],
        [Cmd::LoadAudit {
            contact: Some(1),
            all_stores: false
        }]
    ));
    load(&mut app, Some(1), false);
    let cmds = act(&mut app, Action::AuditFilter);
    assert!(matches!(
        &cmds[..],
        [Cmd::LoadAudit {
            contact: None,
            all_stores: true
        }]
    ));
    load(&mut app, None, true);
    let cmds = act(&mut app, Action::AuditFilter);
    assert!(matches!(
        &cmds[..],
        [Cmd::LoadAudit {
            contact: None,
            all_stores: false
        }]
    ));
    act(&mut app, Action::Back);
    assert!(app.popup.is_none());
}

#[test]
fn marking_and_bulk_rotation_flow() {
    let mut app = app_with(three(), true);
    assert!(act(&mut app, Action::BulkRotate).is_empty());
    assert!(app.popup.is_none(), "nothing marked: no confirm screen");
    act(&mut app, Action::ToggleMark);
    assert_eq!(app.selected, 1, "marking moves down");
    act(&mut app, Action::ToggleMark);
    assert_eq!(app.marked.len(), 2);
    act(&mut app, Action::Up);
    act(&mut app, Action::ToggleMark);
    assert_eq!(app.marked.len(), 1, "space again unmarks");

    let cmds = act(&mut app, Action::MarkMatching);
    assert!(matches!(
        &cmds[..],
        [Cmd::MarkMatching {
            older_than_days: None,
            ..
        }]
    ));
    app.update(Msg::Marked {
        result: Ok(three()),
    });
    assert_eq!(app.marked.len(), 3);

    app.now = 1_795_000_000;
    act(&mut app, Action::BulkRotate);
    assert_eq!(app.mode(), Mode::Input);
    let Some(Popup::BulkConfirm { path, .. }) = &app.popup else {
        panic!()
    };
    assert!(path.text().starts_with("/data/rotated-"), "{path:?}");
    // Edit the path: typed letters are text here, not commands.
    for _ in 0..40 {
        act(&mut app, Action::InputBackspace);
    }
    for c in "/tmp/k.csv".chars() {
        act(&mut app, Action::InputChar(c));
    }
    assert!(
        act(&mut app, Action::Proceed).is_empty(),
        "Enter ends the path"
    );
    assert_eq!(app.mode(), Mode::ConfirmBulk);
    assert!(act(&mut app, Action::No).is_empty());
    assert_eq!(app.mode(), Mode::Input, "n goes back to the path");
    act(&mut app, Action::Proceed);
    let cmds = act(&mut app, Action::Yes);
    let [Cmd::BulkRotate { items, out }] = cmds.as_slice() else {
        panic!("y must start the run")
    };
    assert_eq!(out.to_str(), Some("/tmp/k.csv"));
    assert_eq!(items.len(), 3);
    assert_eq!(
        items[0].1,
        Expectation::Seen(Some(KeyHint::from_tail("AaaaBbbbCcccDdddEeeeFfffGggg0001")))
    );
    assert_eq!(app.mode(), Mode::BulkRunning);
    assert!(
        act(&mut app, Action::Back).is_empty(),
        "Esc does not abandon a running bulk rotation"
    );

    app.update(Msg::BulkProgress {
        done: 1,
        total: 3,
        last: "contact 1".into(),
    });
    let results = vec![
        crate::bulk::BulkResult {
            id: 1,
            name: SafeText::new("Ada"),
            outcome: crate::bulk::BulkOutcome::Done,
        },
        crate::bulk::BulkResult {
            id: 2,
            name: SafeText::new("Alan"),
            outcome: crate::bulk::BulkOutcome::Conflict,
        },
        crate::bulk::BulkResult {
            id: 3,
            name: SafeText::new("Grace"),
            outcome: crate::bulk::BulkOutcome::Failed("x".into()),
        },
    ];
    let cmds = app.update(Msg::BulkFinished {
        kind: crate::app::BulkKind::Rotation,
        results,
        out: "/tmp/k.csv".into(),
        error: None,
    });
    assert!(
        matches!(&cmds[..], [Cmd::Search { .. }]),
        "the list reloads"
    );
    assert_eq!(app.mode(), Mode::BulkResults);
    assert_eq!(
        app.marked.keys().copied().collect::<Vec<_>>(),
        vec![2, 3],
        "the rest stay marked for a retry"
    );
    act(&mut app, Action::Proceed);
    assert!(app.popup.is_none());
}

#[test]
fn mark_old_keys_asks_for_days() {
    let mut app = app_with(three(), true);
    act(&mut app, Action::MarkOld);
    assert_eq!(app.mode(), Mode::Input);
    act(&mut app, Action::InputBackspace);
    act(&mut app, Action::InputBackspace);
    act(&mut app, Action::InputChar('x'));
    act(&mut app, Action::InputChar('3'));
    act(&mut app, Action::InputChar('0'));
    let cmds = act(&mut app, Action::Proceed);
    assert!(matches!(
        &cmds[..],
        [Cmd::MarkMatching {
            older_than_days: Some(30),
            ..
        }]
    ));
}

#[test]
fn key_age_view_lists_old_keys_and_esc_leaves_it() {
    let mut app = app_with(three(), true);
    act(&mut app, Action::AgeFilter);
    assert_eq!(app.mode(), Mode::Input);
    let cmds = act(&mut app, Action::Proceed);
    let [Cmd::AgeFilter { seq, days: 90, .. }] = cmds.as_slice() else {
        panic!("Enter lists old keys")
    };
    assert_eq!(app.age_filter, Some(90));
    let seq = *seq;
    app.update(Msg::Searched {
        seq,
        append: false,
        result: Ok(Page {
            contacts: vec![contact(
                3,
                "Grace Hopper",
                Some("ZzzzYyyyXxxxWwwwVvvvUuuuTttt0002"),
            )],
            next: None,
        }),
        history: Vec::new(),
    });
    assert_eq!(app.contacts.len(), 1);
    let cmds = act(&mut app, Action::Back);
    assert!(matches!(&cmds[..], [Cmd::Search { .. }]));
    assert_eq!(app.age_filter, None);
}

fn searched(app: &mut App, contacts: Vec<Contact>) {
    let seq = app.search_seq;
    app.update(Msg::Searched {
        seq,
        append: false,
        result: Ok(Page {
            contacts,
            next: None,
        }),
        history: Vec::new(),
    });
}

#[test]
fn too_small_keeps_popups_and_takes_only_quit() {
    let mut app = app_with(three(), true);
    act(&mut app, Action::Rotate);
    act(&mut app, Action::Proceed);
    assert_eq!(app.mode(), Mode::Confirm);
    app.update(Msg::Resize {
        width: 60,
        height: 20,
    });
    assert_eq!(app.mode(), Mode::TooSmall);
    for action in [Action::Yes, Action::Back, Action::Proceed, Action::No] {
        assert!(act(&mut app, action).is_empty(), "{action:?}");
    }
    assert!(
        matches!(app.popup, Some(Popup::Confirm { .. })),
        "the popup survives"
    );
    app.update(Msg::Resize {
        width: 80,
        height: 24,
    });
    assert_eq!(app.mode(), Mode::Confirm);
    app.update(Msg::Resize {
        width: 79,
        height: 24,
    });
    act(&mut app, Action::Quit);
    assert!(app.should_quit, "q quits from the notice");
}

#[test]
fn a_pending_search_refuses_contact_commands_and_shows() {
    let mut app = app_with(three(), true);
    act(&mut app, Action::StartSearch);
    let cmds = act(&mut app, Action::SearchChar('g'));
    assert!(matches!(&cmds[..], [Cmd::Search { .. }]));
    // Enter keeps the filter before its answer came: the search is still pending.
    assert!(act(&mut app, Action::SearchAccept).is_empty());
    assert_eq!(app.mode(), Mode::List);
    assert!(app.searching());
    for action in [
        Action::Rotate,
        Action::Proceed,
        Action::Revoke,
        Action::ToggleMark,
        Action::MarkMatching,
        Action::MarkOld,
    ] {
        assert!(act(&mut app, action).is_empty(), "{action:?}");
        assert!(app.popup.is_none(), "{action:?} opened a popup");
        assert!(app.marked.is_empty(), "{action:?} marked");
        let notice = app.notice.clone().unwrap().0;
        assert!(notice.contains("Searching"), "{notice}");
    }
    searched(&mut app, vec![three().remove(2)]);
    assert!(!app.searching());
    act(&mut app, Action::Rotate);
    let Some(Popup::NewKey { contact, .. }) = &app.popup else {
        panic!("r works once the answer is in")
    };
    assert_eq!(contact.id, 3);
}

#[test]
fn the_list_never_changes_under_a_popup() {
    let mut app = app_with(three(), true);
    act(&mut app, Action::Help);
    // A search answer (e.g. the reload after a bulk run) lands while a popup is open.
    app.search_seq += 1;
    app.loading = true;
    searched(&mut app, vec![contact(9, "Someone Else", None)]);
    assert_eq!(app.contacts.len(), 3, "the list behind the popup stays");
    assert_eq!(app.selected_contact().unwrap().id, 1);
    act(&mut app, Action::Back);
    assert_eq!(app.contacts.len(), 1, "it lands once the popup is closed");
    assert_eq!(app.contacts[0].id, 9);
    assert!(!app.searching());
}

#[test]
fn quit_waits_for_a_write_in_flight_and_a_second_ctrl_c_does_not() {
    let mut app = app_with(three(), true);
    act(&mut app, Action::Quit);
    assert!(app.should_quit, "nothing in flight: at once");

    for second in [false, true] {
        let mut app = app_with(three(), true);
        act(&mut app, Action::Rotate);
        act(&mut app, Action::Proceed);
        assert!(matches!(
            &act(&mut app, Action::Yes)[..],
            [Cmd::Assign { .. }]
        ));
        act(&mut app, Action::ForceQuit);
        assert!(!app.should_quit, "a write is in flight");
        let notice = app.notice.clone().unwrap().0;
        assert!(
            notice.contains("Finishing the change to Ada Lovelace (id 1)"),
            "{notice}"
        );
        if second {
            act(&mut app, Action::ForceQuit);
            assert!(app.should_quit, "a second Ctrl-C quits at once");
        } else {
            act(&mut app, Action::Quit);
            assert!(!app.should_quit, "q waits too");
            app.update(Msg::Assigned {
                result: Err("conflict".into()),
            });
            assert!(app.should_quit, "quits once the write settled");
        }
    }
}

/// A quit asked for while a key is being assigned waits for it, then shows the new key
/// once (nobody else will ever have it) and quits when that popup is closed.
#[test]
fn quit_during_an_assign_shows_the_new_key_before_quitting() {
    let mut app = app_with(three(), true);
    act(&mut app, Action::Rotate);
    act(&mut app, Action::Proceed);
    let Some(Popup::Confirm { contact, key }) = &app.popup else {
        panic!("no confirm popup");
    };
    let (contact, key) = (
        contact.clone(),
        ApiKey::from_store(key.expose().to_string()),
    );
    act(&mut app, Action::Yes);
    act(&mut app, Action::ForceQuit);
    app.update(Msg::Assigned {
        result: Ok(AssignDone {
            assigned: Assigned {
                contact: contact.clone(),
                key,
                previous: None,
                regenerated: false,
                audit_warning: None,
            },
            undo: UndoInfo {
                contact_id: contact.id,
                until_unix: 600,
            },
            history: None,
            login_check: None,
            handover: crate::handover::Handover {
                endpoint: None,
                needs_site_key: None,
            },
        }),
    });
    assert!(!app.should_quit, "the key has not been seen yet");
    assert!(matches!(app.popup, Some(Popup::Shown { .. })));
    assert!(app
        .notice
        .clone()
        .unwrap()
        .0
        .contains("closing this popup quits"));
    act(&mut app, Action::Back);
    assert!(app.should_quit, "closing the shown key ends the quit");
}

#[test]
fn quit_during_a_bulk_run_stops_it_then_quits() {
    let mut app = app_with(three(), true);
    act(&mut app, Action::ToggleMark);
    act(&mut app, Action::BulkRotate);
    act(&mut app, Action::Proceed);
    assert!(matches!(
        &act(&mut app, Action::Yes)[..],
        [Cmd::BulkRotate { .. }]
    ));
    let cmds = act(&mut app, Action::ForceQuit);
    assert!(matches!(&cmds[..], [Cmd::StopBulk]));
    assert!(!app.should_quit);
    app.update(Msg::BulkFinished {
        kind: crate::app::BulkKind::Rotation,
        results: Vec::new(),
        out: "/tmp/x.csv".into(),
        error: Some("interrupted".into()),
    });
    assert!(app.should_quit);
}

#[test]
fn a_paste_is_text_in_the_search_and_ignored_elsewhere() {
    let mut app = app_with(three(), true);
    assert!(app.update(Msg::Paste("or\ry\n".into())).is_empty());
    assert!(app.popup.is_none(), "a paste never runs commands");
    assert!(app.notice.clone().unwrap().0.contains("Paste ignored"));
    act(&mut app, Action::StartSearch);
    let cmds = app.update(Msg::Paste("Hop\r\nper\x1b".into()));
    let [Cmd::Search { query, .. }] = cmds.as_slice() else {
        panic!("a paste into the search searches")
    };
    assert_eq!(query.text, "Hop  per");
    assert_eq!(
        app.search_input.as_ref().map(|f| f.text()),
        Some("Hop  per")
    );
    assert_eq!(
        app.mode(),
        Mode::Search,
        "Enter in a paste does not keep it"
    );
    // In a text field, as typed text.
    let mut app = app_with(three(), true);
    act(&mut app, Action::MarkOld);
    app.update(Msg::Paste("3y0".into()));
    let Some(Popup::MarkOld { days, .. }) = &app.popup else {
        panic!()
    };
    // The pre-filled 90 is selected on opening: the paste replaces it.
    assert_eq!(days.text(), "30");
    act(&mut app, Action::InputChar('q'));
    assert!(app.popup.is_none(), "q closes the days popup");
    // A confirm popup ignores it.
    let mut app = app_with(three(), true);
    act(&mut app, Action::Rotate);
    act(&mut app, Action::Proceed);
    app.update(Msg::Paste("y".into()));
    assert_eq!(app.mode(), Mode::Confirm);
}

#[test]
fn undo_asks_and_cancel_keeps_it() {
    let mut app = app_with(three(), true);
    app.undo = Some(UndoInfo {
        contact_id: 3,
        until_unix: 600,
    });
    act(&mut app, Action::Undo);
    let Some(Popup::ConfirmUndo {
        contact_id: 3,
        name,
    }) = &app.popup
    else {
        panic!("undo asks for y")
    };
    assert_eq!(name.as_ref().map(|n| n.as_str()), Some("Grace Hopper"));
    act(&mut app, Action::No);
    assert!(app.popup.is_none());
    assert!(app.undo.is_some(), "a cancelled undo can still be done");
}

#[test]
fn unmark_all_and_mark_matching_skips_deleted() {
    let mut app = app_with(three(), true);
    let mut found = three();
    found[1].is_deleted = true;
    app.update(Msg::Marked { result: Ok(found) });
    assert_eq!(app.marked.keys().copied().collect::<Vec<_>>(), vec![1, 3]);
    let notice = app.notice.clone().unwrap().0;
    assert!(notice.contains("skipped 1 deleted"), "{notice}");
    act(&mut app, Action::UnmarkAll);
    assert!(app.marked.is_empty());
}

#[test]
fn a_failed_search_is_kept_until_one_succeeds() {
    let mut app = app_with(three(), true);
    act(&mut app, Action::StartSearch);
    act(&mut app, Action::SearchChar('x'));
    let seq = app.search_seq;
    app.update(Msg::Searched {
        seq,
        append: false,
        result: Err("connection refused".into()),
        history: Vec::new(),
    });
    assert_eq!(app.search_error.as_deref(), Some("connection refused"));
    assert_eq!(app.contacts.len(), 3, "the old rows stay, marked stale");
    act(&mut app, Action::SearchBackspace);
    searched(&mut app, three());
    assert_eq!(app.search_error, None);
}

#[test]
fn the_finishing_notice_fits_80_columns() {
    let long = contact(
        99_999_999,
        "Maximiliane Alexandra von Hohenzollern-Sigmaringen",
        Some("AaaaBbbbCcccDdddEeeeFfffGggg0001"),
    );
    let mut app = app_with(vec![long], true);
    act(&mut app, Action::Revoke);
    act(&mut app, Action::Yes);
    act(&mut app, Action::ForceQuit);
    let notice = app.notice.clone().unwrap().0;
    assert!(
        notice.starts_with("Finishing the change to Maximiliane"),
        "{notice}"
    );
    assert!(
        unicode_width::UnicodeWidthStr::width(format!(" {notice}").as_str()) <= 80,
        "{notice}"
    );
}

#[test]
fn a_deep_search_shows_its_time_and_esc_cancels_it() {
    let mut app = app_with(three(), true);
    act(&mut app, Action::StartSearch);
    for c in "hop".chars() {
        act(&mut app, Action::SearchChar(c));
    }
    let cmds = act(&mut app, Action::SearchDeep);
    let [Cmd::Search { seq, query, .. }] = cmds.as_slice() else {
        panic!("Tab runs the deep search");
    };
    assert!(query.deep);
    assert_eq!(query.text, "hop");
    let seq = *seq;
    app.update(Msg::DeepSearchRunning {
        seq,
        elapsed: std::time::Duration::from_millis(1400),
    });
    assert_eq!(
        app.deep_search.as_ref().map(|d| d.elapsed),
        Some(std::time::Duration::from_millis(1400))
    );
    // Esc cancels: the keystroke search for the same text comes back, the deep answer is
    // dropped, and the search box stays open.
    let cmds = act(&mut app, Action::SearchClear);
    let [Cmd::Search { query, .. }] = cmds.as_slice() else {
        panic!("Esc during a deep search searches the text again, by keystroke");
    };
    assert!(!query.deep);
    assert_eq!(query.text, "hop");
    assert!(app.deep_search.is_none());
    assert_eq!(app.mode(), Mode::Search);
    app.update(Msg::Searched {
        seq,
        append: false,
        result: Ok(Page::default()),
        history: Vec::new(),
    });
    assert_eq!(app.contacts.len(), 3, "the cancelled answer is dropped");
    // Tab, Enter: the deep search runs and the filter is kept; its answer lands.
    let mut app = app_with(three(), true);
    act(&mut app, Action::StartSearch);
    act(&mut app, Action::SearchChar('w'));
    searched(&mut app, vec![contact(2, "Walter White", None)]);
    let cmds = act(&mut app, Action::SearchDeep);
    let [Cmd::Search { seq, query, .. }] = cmds.as_slice() else {
        panic!("Tab runs the deep search");
    };
    assert!(query.deep);
    let seq = *seq;
    assert!(
        act(&mut app, Action::SearchAccept).is_empty(),
        "no second search"
    );
    assert_eq!(app.mode(), Mode::List);
    assert!(app.deep_search.is_some(), "still running");
    app.update(Msg::Searched {
        seq,
        append: false,
        result: Ok(Page {
            contacts: vec![contact(9, "Ada Widgets", None)],
            next: None,
        }),
        history: Vec::new(),
    });
    assert!(app.deep_search.is_none());
    assert!(app.deep_shown);
    assert_eq!(app.contacts.len(), 1);
    // An id or an email has nothing deeper to find: Tab does nothing, Enter keeps it.
    let mut app = app_with(three(), true);
    act(&mut app, Action::StartSearch);
    act(&mut app, Action::SearchChar('7'));
    searched(&mut app, Vec::new());
    assert!(act(&mut app, Action::SearchDeep).is_empty());
    assert!(act(&mut app, Action::SearchAccept).is_empty());
    assert_eq!(app.mode(), Mode::List);
}

/// Types `text` into the search box and lands its keystroke answer.
fn type_search(app: &mut App, text: &str, found: Vec<Contact>) {
    act(app, Action::StartSearch);
    for c in text.chars() {
        act(app, Action::SearchChar(c));
    }
    searched(app, found);
}

#[test]
fn slash_name_enter_r_enter_y_rotates_the_contact_picked() {
    let mut app = app_with(three(), true);
    type_search(&mut app, "hop", vec![contact(3, "Grace Hopper", None)]);
    // Enter keeps the filter and goes back to the list: no other search starts.
    assert!(act(&mut app, Action::SearchAccept).is_empty());
    assert_eq!(app.mode(), Mode::List);
    assert_eq!(app.selected_contact().map(|c| c.id), Some(3));
    act(&mut app, Action::Rotate);
    assert_eq!(app.mode(), Mode::NewKey);
    act(&mut app, Action::Proceed);
    assert_eq!(app.mode(), Mode::Confirm);
    let cmds = act(&mut app, Action::Yes);
    assert!(
        matches!(&cmds[..], [Cmd::Assign { id: 3, .. }]),
        "y assigns to the contact picked"
    );

    // A contact picked with ↓ in the search box stays picked after Enter.
    let mut app = app_with(three(), true);
    type_search(&mut app, "a", three());
    act(&mut app, Action::Down);
    act(&mut app, Action::Down);
    assert!(act(&mut app, Action::SearchAccept).is_empty());
    act(&mut app, Action::Rotate);
    let Some(Popup::NewKey { contact, .. }) = &app.popup else {
        panic!("r opens the new-key popup");
    };
    assert_eq!(contact.id, 3);
}

#[test]
fn enter_on_a_search_that_matched_nothing_searches_inside_names() {
    // The answer is in and empty: Enter runs the deep search and goes back to the list.
    let mut app = app_with(three(), true);
    type_search(&mut app, "opper", Vec::new());
    let cmds = act(&mut app, Action::SearchAccept);
    let [Cmd::Search { query, .. }] = cmds.as_slice() else {
        panic!("Enter on nothing found runs the deep search");
    };
    assert!(query.deep);
    assert_eq!(app.mode(), Mode::List);
    assert!(app.deep_search.is_some());
    // Enter before the answer came: the deep search starts when an empty answer lands...
    let mut app = app_with(three(), true);
    act(&mut app, Action::StartSearch);
    for c in "opper".chars() {
        act(&mut app, Action::SearchChar(c));
    }
    assert!(act(&mut app, Action::SearchAccept).is_empty());
    let seq = app.search_seq;
    let cmds = app.update(Msg::Searched {
        seq,
        append: false,
        result: Ok(Page::default()),
        history: Vec::new(),
    });
    assert!(matches!(&cmds[..], [Cmd::Search { query, .. }] if query.deep));
    // ...and not when it found someone.
    let mut app = app_with(three(), true);
    act(&mut app, Action::StartSearch);
    act(&mut app, Action::SearchChar('g'));
    assert!(act(&mut app, Action::SearchAccept).is_empty());
    let seq = app.search_seq;
    let cmds = app.update(Msg::Searched {
        seq,
        append: false,
        result: Ok(Page {
            contacts: vec![contact(3, "Grace Hopper", None)],
            next: None,
        }),
        history: Vec::new(),
    });
    assert!(cmds.is_empty());
    assert_eq!(app.selected_contact().map(|c| c.id), Some(3));
}

fn page_of(ids: std::ops::RangeInclusive<u64>, more: bool) -> Page {
    let contacts: Vec<Contact> = ids.map(|i| contact(i, &format!("C{i:04}"), None)).collect();
    let next = more.then(|| Cursor::After {
        sort_name: Some(contacts.last().unwrap().sort_name.to_string()),
        id: contacts.last().unwrap().id,
    });
    Page { contacts, next }
}

/// Answers the one search `cmds` holds with `page`, returning what the app asks next.
fn answer(app: &mut App, cmds: Vec<Cmd>, page: Page) -> Vec<Cmd> {
    let [Cmd::Search { seq, append, .. }] = cmds.as_slice() else {
        panic!("expected one search, got {} commands", cmds.len());
    };
    app.update(Msg::Searched {
        seq: *seq,
        append: *append,
        result: Ok(page),
        history: Vec::new(),
    })
}

#[test]
fn clearing_a_filter_keeps_the_selected_contact_selected_and_in_view() {
    // Esc in the list: the whole list comes back, Grace still selected.
    let mut app = app_with(three(), true);
    type_search(&mut app, "gr", vec![contact(3, "Grace Hopper", None)]);
    act(&mut app, Action::SearchAccept);
    let cmds = act(&mut app, Action::Back);
    answer(
        &mut app,
        cmds,
        Page {
            contacts: three(),
            next: None,
        },
    );
    assert_eq!(app.filter, "");
    assert_eq!(app.selected_contact().map(|c| c.id), Some(3));
    // Esc in the search box (the "Hopperr" case): the same.
    let mut app = app_with(three(), true);
    type_search(&mut app, "gr", vec![contact(3, "Grace Hopper", None)]);
    let cmds = act(&mut app, Action::SearchClear);
    answer(
        &mut app,
        cmds,
        Page {
            contacts: three(),
            next: None,
        },
    );
    assert_eq!(app.selected_contact().map(|c| c.id), Some(3));

    // On a big list, pages load until it is there; contact commands wait meanwhile.
    let mut app = app_with(three(), true);
    type_search(&mut app, "c0", vec![contact(170, "C0170", None)]);
    act(&mut app, Action::SearchAccept);
    let cmds = act(&mut app, Action::Back);
    let cmds = answer(&mut app, cmds, page_of(1..=100, true));
    assert!(
        matches!(&cmds[..], [Cmd::Search { append: true, .. }]),
        "the next page is asked for"
    );
    assert!(act(&mut app, Action::Rotate).is_empty());
    assert!(
        app.popup.is_none(),
        "no new key while the selection is moving"
    );
    let cmds = answer(&mut app, cmds, page_of(101..=200, true));
    assert!(cmds.is_empty(), "found: no more pages");
    assert_eq!(app.selected_contact().map(|c| c.id), Some(170));
    assert!(app.scroll <= app.selected && app.selected < app.scroll + app.table_rows());
    act(&mut app, Action::Rotate);
    assert!(matches!(&app.popup, Some(Popup::NewKey { contact, .. }) if contact.id == 170));
}

#[test]
fn a_contact_gone_after_a_reload_is_said_not_silent() {
    let mut app = app_with(three(), true);
    type_search(&mut app, "gr", vec![contact(3, "Grace Hopper", None)]);
    act(&mut app, Action::SearchAccept);
    let cmds = act(&mut app, Action::Back);
    answer(&mut app, cmds, page_of(1..=2, false));
    assert_eq!(app.selected, 0);
    let notice = app.notice.clone().map(|n| n.0).unwrap_or_default();
    assert!(notice.contains("Contact 3 is not in this list"), "{notice}");
}

#[test]
fn g_reaches_the_last_contact_whatever_the_length() {
    let mut app = app_with(Vec::new(), true);
    let cmds = act(&mut app, Action::StartSearch);
    assert!(cmds.is_empty());
    act(&mut app, Action::SearchClear);
    let seq = app.search_seq;
    app.update(Msg::Searched {
        seq,
        append: false,
        result: Ok(page_of(1..=50, true)),
        history: Vec::new(),
    });
    let mut cmds = act(&mut app, Action::Bottom);
    let mut start = 51;
    for _ in 0..5 {
        cmds = answer(&mut app, cmds, page_of(start..=start + 49, true));
        start += 50;
    }
    assert!(
        act(&mut app, Action::Revoke).is_empty(),
        "not while it walks"
    );
    let cmds = answer(&mut app, cmds, page_of(start..=start + 9, false));
    assert!(cmds.is_empty(), "the last page is in");
    assert_eq!(app.contacts.len(), 310);
    assert_eq!(app.selected_contact().map(|c| c.id), Some(310));
    // A move of the operator's own stops the walk.
    let mut app = app_with(Vec::new(), true);
    let seq = app.search_seq;
    app.update(Msg::Searched {
        seq,
        append: false,
        result: Ok(page_of(1..=50, true)),
        history: Vec::new(),
    });
    let cmds = act(&mut app, Action::Bottom);
    act(&mut app, Action::Up);
    let selected = app.selected;
    let cmds = answer(&mut app, cmds, page_of(51..=100, true));
    assert!(cmds.is_empty());
    assert_eq!(app.selected, selected);
}

#[test]
fn a_search_asks_for_three_screens_of_rows() {
    let mut app = app_with(Vec::new(), true);
    for ((width, height), expected) in [
        ((80, 24), PAGE_SIZE),
        ((120, 40), table_rows_for(40) * 3),
        ((200, 120), crate::app::MAX_PAGE_SIZE),
    ] {
        app.update(Msg::Resize { width, height });
        act(&mut app, Action::StartSearch);
        let cmds = act(&mut app, Action::SearchChar('g'));
        let [Cmd::Search { query, .. }] = cmds.as_slice() else {
            panic!("a keystroke searches ({} commands)", cmds.len());
        };
        assert_eq!(query.limit, expected, "{width}x{height}");
        act(&mut app, Action::SearchClear);
    }
    assert!(table_rows_for(40) * 3 > PAGE_SIZE);
}

#[test]
fn a_notice_about_a_popup_goes_with_it_and_one_about_the_list_stays() {
    let mut app = crate::app::health::tests::opened(true);
    // x with nothing marked: a notice about the health view.
    act(&mut app, Action::Revoke);
    let notice = app.notice.clone().unwrap().0;
    assert!(notice.contains("Mark findings first"), "{notice}");
    act(&mut app, Action::Back);
    assert_eq!(app.mode(), Mode::List);
    assert_eq!(app.notice, None, "the notice outlived its popup");
    // A cancel says what happened to the list: it stays.
    let mut app = app_with(three(), true);
    act(&mut app, Action::Rotate);
    act(&mut app, Action::Back);
    assert_eq!(
        app.notice.clone().map(|n| n.0).as_deref(),
        Some("Cancelled: nothing was written.")
    );
}

#[test]
fn nothing_searches_while_an_answer_waits_under_a_popup() {
    let mut app = app_with(three(), true);
    act(&mut app, Action::StartSearch);
    act(&mut app, Action::SearchChar('g'));
    act(&mut app, Action::SearchAccept);
    assert!(app.searching());
    act(&mut app, Action::Help);
    searched(&mut app, vec![contact(3, "Grace Hopper", None)]);
    assert!(
        !app.searching(),
        "the answer is in, held back under the popup"
    );
    act(&mut app, Action::Back);
    assert!(!app.searching());
    assert_eq!(app.contacts.len(), 1);
}

#[test]
fn plurals_in_notices() {
    let mut app = app_with(three(), true);
    act(&mut app, Action::ToggleMark);
    act(&mut app, Action::UnmarkAll);
    assert_eq!(
        app.notice.clone().map(|n| n.0).as_deref(),
        Some("Unmarked 1 contact.")
    );
}

#[test]
fn text_fields_edit_at_the_cursor() {
    use crate::app::text::Edit;
    let mut app = app_with(three(), true);
    type_search(&mut app, "grce", Vec::new());
    act(&mut app, Action::Edit(Edit::Left));
    act(&mut app, Action::Edit(Edit::Left));
    let cmds = act(&mut app, Action::SearchChar('a'));
    assert!(matches!(&cmds[..], [Cmd::Search { query, .. }] if query.text == "grace"));
    let cmds = act(&mut app, Action::Edit(Edit::DeleteToStart));
    assert!(matches!(&cmds[..], [Cmd::Search { query, .. }] if query.text == "ce"));
    act(&mut app, Action::Edit(Edit::End));
    app.update(Msg::Paste(" hop".into()));
    assert_eq!(app.filter, "ce hop");
    let cmds = act(&mut app, Action::Edit(Edit::DeleteWord));
    assert!(matches!(&cmds[..], [Cmd::Search { .. }]));
    assert_eq!(app.filter, "ce ");
    assert!(
        act(&mut app, Action::Edit(Edit::Home)).is_empty(),
        "a cursor move searches nothing"
    );
    // The days field: typed over while selected, edited at the cursor after an arrow.
    let mut app = app_with(three(), true);
    act(&mut app, Action::MarkOld);
    act(&mut app, Action::Edit(Edit::Home));
    act(&mut app, Action::InputChar('1'));
    let Some(Popup::MarkOld { days, .. }) = &app.popup else {
        panic!()
    };
    assert_eq!(days.text(), "190");
}

#[test]
fn ctrl_l_redraws_and_changes_nothing() {
    let mut app = app_with(three(), true);
    act(&mut app, Action::Rotate);
    let cmds = act(&mut app, Action::Redraw);
    assert!(matches!(&cmds[..], [Cmd::Redraw]));
    assert_eq!(app.mode(), Mode::NewKey, "the popup stays");
}

/// `?` in every popup that waits for a key opens the help over it; closing the help gives
/// the same popup back, not the list.
#[test]
fn question_mark_works_in_every_popup_and_comes_back() {
    let mut app = app_with(three(), true);
    let mut seen = Vec::new();
    for open in [
        vec![Action::Rotate],
        vec![Action::Rotate, Action::Proceed],
        vec![Action::Revoke],
        vec![Action::Audit],
    ] {
        app.popup = None;
        for action in open {
            act(&mut app, action);
        }
        let before = app.mode();
        if !mode_takes_help(before) {
            continue;
        }
        act(&mut app, Action::Help);
        assert_eq!(app.mode(), Mode::Help, "? over {before:?}");
        act(&mut app, Action::Back);
        assert_eq!(app.mode(), before, "back to {before:?}");
        seen.push(before);
    }
    assert!(
        seen.contains(&Mode::NewKey)
            && seen.contains(&Mode::Confirm)
            && seen.contains(&Mode::ConfirmRevoke),
        "{seen:?}"
    );
    // From the list, ? is the help alone; closing it is the list.
    app.popup = None;
    act(&mut app, Action::Help);
    act(&mut app, Action::Back);
    assert_eq!(app.mode(), Mode::List);
}
