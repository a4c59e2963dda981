//! Snapshots of the screen at fixed sizes (TestBackend + insta), with a seeded key
//! generator so the keys in them are stable.

use ratatui::backend::TestBackend;
use ratatui::style::Color;
use ratatui::Terminal;

use crate::app::{Action, App, AppOptions, Msg, Popup};
use crate::key::{KeyHint, SeededKeySource};
use crate::sanitize::SafeText;
use crate::store::{CmsLink, Contact, Page, StoreInfo, StoreKind};

fn contact(id: u64, name: &str, kind: &str, key: Option<&str>, cms: CmsLink) -> Contact {
    Contact {
        id,
        contact_type: SafeText::new(kind),
        display_name: SafeText::new(name),
        sort_name: SafeText::new(name),
        email: Some(SafeText::new(&format!("c{id}@example.org"))),
        is_deleted: false,
        key: key.map(KeyHint::from_tail),
        cms,
    }
}

fn sample() -> Vec<Contact> {
    let mut deleted = contact(
        5,
        "Deleted Person",
        "Individual",
        Some("xxxxDEL1"),
        CmsLink::None,
    );
    deleted.is_deleted = true;
    vec![
        contact(
            1,
            "Ada Lovelace",
            "Individual",
            Some("AaaaBbbbCcccDdddEeeeFfffGggg0001"),
            CmsLink::Linked { uf_id: 7 },
        ),
        contact(
            2,
            "山田 太郎",
            "Individual",
            None,
            CmsLink::Linked { uf_id: 8 },
        ),
        contact(
            3,
            "Rust Foundation 🦀",
            "Organization",
            Some("ZzzzYyyyXxxxWwwwVvvvUuuuTttt0002"),
            CmsLink::None,
        ),
        contact(
            4,
            "Mallory \x1b[2J\x1b]52;c;aGk=\x07Evil",
            "Individual",
            None,
            CmsLink::None,
        ),
        deleted,
        contact(6, "Smith Household", "Household", None, CmsLink::None),
    ]
}

fn app(color: bool) -> App {
    let options = AppOptions {
        location: "sqlite:/data/contacts.sqlite".into(),
        color,
        clipboard_warning: None,
        data_dir: "/data".into(),
    };
    let (mut app, _) = App::new(options, Box::new(SeededKeySource::new(7)));
    app.update(Msg::StoreOpened(Ok(StoreInfo {
        kind: StoreKind::Sqlite,
        location: SafeText::new("sqlite:/data/contacts.sqlite"),
        key_capacity: 32,
        keys_case_insensitive: true,
        writable: true,
    })));
    let seq = app.search_seq;
    app.update(Msg::Searched {
        seq,
        append: false,
        result: Ok(Page {
            contacts: sample(),
            next: None,
        }),
        history: Vec::new(),
    });
    app
}

fn render(app: &mut App, width: u16, height: u16) -> Terminal<TestBackend> {
    app.update(Msg::Resize { width, height });
    let mut term = Terminal::new(TestBackend::new(width, height)).unwrap();
    term.draw(|f| super::draw(app, f)).unwrap();
    term
}

fn act(app: &mut App, action: Action) {
    app.update(Msg::Action(action));
}

#[test]
fn list_80x24() {
    let mut app = app(true);
    insta::assert_snapshot!(render(&mut app, 80, 24).backend());
}

#[test]
fn list_120x30() {
    let mut app = app(true);
    act(&mut app, Action::Down);
    insta::assert_snapshot!(render(&mut app, 120, 30).backend());
}

#[test]
fn too_small_40x12() {
    let mut app = app(true);
    insta::assert_snapshot!(render(&mut app, 40, 12).backend());
}

#[test]
fn new_key_popup_80x24() {
    let mut app = app(true);
    act(&mut app, Action::Rotate);
    insta::assert_snapshot!(render(&mut app, 80, 24).backend());
}

#[test]
fn confirm_popup_80x24() {
    let mut app = app(true);
    act(&mut app, Action::Down);
    act(&mut app, Action::Down);
    act(&mut app, Action::Rotate);
    app.update(Msg::Roles {
        id: 3,
        roles: Some(vec![SafeText::new("api client"), SafeText::new("staff")]),
    });
    act(&mut app, Action::Proceed);
    insta::assert_snapshot!(render(&mut app, 80, 24).backend());
}

#[test]
fn shown_once_popup_80x24() {
    let mut app = app(true);
    act(&mut app, Action::Rotate);
    let Some(Popup::NewKey { contact, key }) = app.popup.take() else {
        panic!()
    };
    app.popup = Some(Popup::Shown {
        contact,
        key,
        copied: true,
        regenerated: false,
        warning: None,
    });
    insta::assert_snapshot!(render(&mut app, 80, 24).backend());
}

#[test]
fn help_80x24() {
    let mut app = app(true);
    act(&mut app, Action::Help);
    insta::assert_snapshot!(render(&mut app, 80, 24).backend());
}

#[test]
fn search_in_progress_80x24() {
    let mut app = app(true);
    act(&mut app, Action::StartSearch);
    act(&mut app, Action::SearchChar('a'));
    insta::assert_snapshot!(render(&mut app, 80, 24).backend());
}

#[test]
fn a_deep_search_shows_searching_all_names_with_its_time() {
    let mut app = app(true);
    act(&mut app, Action::StartSearch);
    act(&mut app, Action::SearchChar('l'));
    act(&mut app, Action::SearchAccept);
    let seq = app.deep_search.as_ref().map(|d| d.seq).unwrap();
    app.update(Msg::DeepSearchRunning {
        seq,
        elapsed: std::time::Duration::from_millis(2345),
    });
    let term = render(&mut app, 80, 24);
    let buffer = term.backend().buffer();
    let footer: String = (0..80)
        .map(|x| buffer[(x, 23)].symbol().to_string())
        .collect();
    assert!(
        footer.contains("searching all names... 2.3 s  Esc cancels"),
        "{footer:?}"
    );
}

#[test]
fn no_size_panics() {
    for (w, h) in [
        (1, 1),
        (2, 1),
        (1, 5),
        (10, 3),
        (79, 23),
        (80, 24),
        (20, 5),
        (300, 100),
    ] {
        for popup in [false, true] {
            let mut app = app(true);
            if popup {
                act(&mut app, Action::Rotate);
                act(&mut app, Action::Proceed);
            }
            render(&mut app, w, h);
        }
    }
}

#[test]
fn hostile_names_render_inert() {
    let mut app = app(true);
    let term = render(&mut app, 120, 30);
    let screen: String = term
        .backend()
        .buffer()
        .content()
        .iter()
        .map(|c| c.symbol())
        .collect();
    assert!(!screen.contains('\x1b'));
    assert!(!screen.contains('\x07'));
    assert!(screen.contains("Mallory ␛[2J␛]52;c;aGk=␇Evil"));
}

#[test]
fn no_color_uses_no_colours_and_keeps_the_selection_visible() {
    let mut app = app(false);
    act(&mut app, Action::Down);
    let term = render(&mut app, 80, 24);
    let buffer = term.backend().buffer();
    for cell in buffer.content() {
        assert!(
            matches!(cell.fg, Color::Reset),
            "a colour under NO_COLOR: {cell:?}"
        );
        assert!(
            matches!(cell.bg, Color::Reset),
            "a colour under NO_COLOR: {cell:?}"
        );
    }
    // Row 3 is the second contact (header line, table header, first contact).
    let marker = &buffer[(0, 3)];
    assert_eq!(marker.symbol(), "▶");
    assert!(marker.modifier.contains(ratatui::style::Modifier::REVERSED));
    assert!(!buffer[(0, 2)]
        .modifier
        .contains(ratatui::style::Modifier::REVERSED));
}

#[test]
fn key_history_and_undo_in_the_list_80x24() {
    let mut app = app(true);
    app.now = 1_795_000_000;
    app.key_sets.insert(
        1,
        crate::app::KeySet {
            time: 1_795_000_000 - 3 * 86_400,
            by: "alice".into(),
        },
    );
    app.undo = Some(crate::app::UndoInfo {
        contact_id: 1,
        until_unix: 1_795_000_600,
    });
    insta::assert_snapshot!(render(&mut app, 80, 24).backend());
}

#[test]
fn audit_view_80x24() {
    let mut app = app(true);
    let entry = |id: i64,
                 contact_id: u64,
                 action: &str,
                 outcome: Option<&str>,
                 reconciled: Option<&str>| {
        crate::audit::Entry {
            id,
            time: 1_795_000_000 + id * 60,
            operator: "alice".into(),
            ssh_client: Some("192.0.2.7".into()),
            store: "sqlite:/data/contacts.sqlite".into(),
            profile: None,
            contact_id,
            contact_name: "Mallory \x1b[2J Evil".into(),
            action: action.into(),
            old_fingerprint: Some("1a2b3c4d".into()),
            new_fingerprint: Some("5e6f7a8b".into()),
            outcome: outcome.map(str::to_string),
            error: None,
            reconciled: reconciled.map(str::to_string),
        }
    };
    app.update(Msg::AuditLoaded {
        contact: None,
        result: Ok(vec![
            entry(3, 4, "undo", Some("done"), None),
            entry(2, 4, "assign", Some("unknown"), Some("applied")),
            entry(1, 1, "assign", Some("conflict"), None),
        ]),
    });
    let term = render(&mut app, 80, 24);
    let screen: String = term
        .backend()
        .buffer()
        .content()
        .iter()
        .map(|c| c.symbol())
        .collect();
    assert!(!screen.contains('\x1b'));
    insta::assert_snapshot!(term.backend());
}

#[test]
fn bulk_confirm_80x24() {
    let mut app = app(true);
    app.now = 1_795_000_000;
    act(&mut app, Action::ToggleMark);
    act(&mut app, Action::ToggleMark);
    act(&mut app, Action::ToggleMark);
    act(&mut app, Action::BulkRotate);
    insta::assert_snapshot!(render(&mut app, 80, 24).backend());
}

#[test]
fn bulk_results_80x24() {
    let mut app = app(true);
    use crate::bulk::{BulkOutcome, BulkResult};
    app.update(Msg::BulkFinished {
        results: vec![
            BulkResult {
                id: 1,
                name: SafeText::new("Ada Lovelace"),
                outcome: BulkOutcome::Done,
            },
            BulkResult {
                id: 2,
                name: SafeText::new("山田 太郎"),
                outcome: BulkOutcome::Conflict,
            },
            BulkResult {
                id: 3,
                name: SafeText::new("Rust Foundation 🦀"),
                outcome: BulkOutcome::Failed("the store did not answer in time".into()),
            },
        ],
        out: "/data/rotated-20261118-110640.csv".into(),
        error: None,
    });
    insta::assert_snapshot!(render(&mut app, 80, 24).backend());
}
