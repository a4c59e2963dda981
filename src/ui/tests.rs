//! Snapshots of the screen at fixed sizes (TestBackend + insta), with a seeded key
//! generator so the keys in them are stable.

use ratatui::backend::TestBackend;
use ratatui::style::Color;
use ratatui::Terminal;

use crate::app::{Action, App, AppOptions, Msg, Popup, StoreState};
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
        profiles: Vec::new(),
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
        standing: crate::store::Standing {
            account: crate::store::AccountState::Account(crate::store::UserAccount {
                id: 8,
                name: SafeText::new("grace"),
                active: false,
                cms: crate::store::Cms::Standalone,
            }),
            roles: Some(vec![
                crate::store::Role::from_permissions("api client", ["authenticate with api key"]),
                crate::store::Role::from_permissions("staff", ["access CiviCRM"]),
            ]),
        },
    });
    act(&mut app, Action::Proceed);
    insta::assert_snapshot!(render(&mut app, 80, 24).backend());
}

/// A least-privilege store: the popup says the user is unknown and why, never "none".
#[test]
fn confirm_popup_when_users_are_hidden_80x24() {
    let mut app = app(true);
    act(&mut app, Action::Rotate);
    let id = app.selected_contact().map(|c| c.id).unwrap();
    app.update(Msg::Roles {
        id,
        standing: crate::store::Standing::HIDDEN,
    });
    act(&mut app, Action::Proceed);
    let term = render(&mut app, 80, 24);
    let text: String = term
        .backend()
        .buffer()
        .content()
        .iter()
        .map(|c| c.symbol())
        .collect();
    assert!(text.contains("cms:administer users"), "{text}");
    assert!(!text.contains("no user account"), "{text}");
    insta::assert_snapshot!(term.backend());
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
        login_check: Some(crate::login_check::LoginCheck {
            ok: false,
            contact_id: None,
            detail: "does not log in: HTTP 401 Login not permitted. Must satisfy guard (site_key, perm).".into(),
        }),
        handover: crate::handover::Handover {
            endpoint: Some(SafeText::new(
                "https://crm.example.org/civicrm/ajax/api4/{entity}/{action}",
            )),
            needs_site_key: Some(true),
        },
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
    act(&mut app, Action::SearchDeep);
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
        all_stores: false,
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
        kind: crate::app::BulkKind::Rotation,
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

#[test]
fn bulk_revocation_results_are_titled_so() {
    let mut app = app(true);
    use crate::bulk::{BulkOutcome, BulkResult};
    app.update(Msg::BulkFinished {
        kind: crate::app::BulkKind::Revocation,
        results: vec![BulkResult {
            id: 1,
            name: SafeText::new("Ada Lovelace"),
            outcome: BulkOutcome::Done,
        }],
        out: "none: the keys were revoked".into(),
        error: None,
    });
    let term = render(&mut app, 80, 24);
    let title = row(&term, 1);
    assert!(
        title.contains("Bulk revocation: 1 done, 0 conflict, 0 failed"),
        "{title}"
    );
    assert!(!title.contains("rotation"));
}

/// Row `y` of the rendered screen, trailing blanks trimmed.
fn row(term: &Terminal<TestBackend>, y: u16) -> String {
    let buffer = term.backend().buffer();
    (0..buffer.area.width)
        .map(|x| buffer[(x, y)].symbol().to_string())
        .collect::<String>()
        .trim_end()
        .to_string()
}

#[test]
fn every_footer_fits_80_columns() {
    use crate::app::{Mode, UndoInfo};
    for mode in [
        Mode::List,
        Mode::Search,
        Mode::Help,
        Mode::NewKey,
        Mode::Confirm,
        Mode::Working,
        Mode::Shown,
        Mode::ConfirmRevoke,
        Mode::ConfirmUndo,
        Mode::ConfirmBulk,
        Mode::Message,
        Mode::Audit,
        Mode::Input,
        Mode::BulkRunning,
        Mode::BulkResults,
        Mode::TooSmall,
        Mode::Health,
        Mode::ConfirmBulkRevoke,
    ] {
        for writable in [true, false] {
            let text = format!(" {}", super::footer_keys(mode, writable));
            assert!(
                unicode_width::UnicodeWidthStr::width(text.as_str()) <= 80,
                "{mode:?}: {text}"
            );
        }
    }
    // The undo footer, with the longest id a store hands out in practice.
    let undo = UndoInfo {
        contact_id: 99_999_999,
        until_unix: 1_795_000_600,
    };
    for writable in [true, false] {
        let (left, right) = super::undo_footer(&undo, writable);
        let all = format!("{left}{right}");
        assert!(all.chars().count() <= 80, "{all}");
    }
    // And as drawn: the last key hint is on the screen, not cut.
    let mut app = app(true);
    app.undo = Some(undo);
    let term = render(&mut app, 80, 24);
    assert!(row(&term, 23).ends_with("? help"), "{}", row(&term, 23));
    // A long search text leaves the hint whole.
    let mut app = self::app(true);
    act(&mut app, Action::StartSearch);
    for c in "a very long search text that goes on and on and on and on".chars() {
        act(&mut app, Action::SearchChar(c));
    }
    let term = render(&mut app, 80, 24);
    assert!(row(&term, 23).ends_with("↑/↓ move"), "{}", row(&term, 23));
}

#[test]
fn read_only_footer_lists_only_what_works() {
    let mut app = app(true);
    app.store = StoreState::Ready(StoreInfo {
        kind: StoreKind::Sqlite,
        location: SafeText::new("sqlite:/data/contacts.sqlite"),
        key_capacity: 32,
        keys_case_insensitive: true,
        writable: false,
    });
    let term = render(&mut app, 80, 24);
    let footer = row(&term, 23);
    for gone in ["r new key", "x revoke", "R rotate", "space mark"] {
        assert!(!footer.contains(gone), "{footer}");
    }
    assert!(
        footer.contains("/ search") && footer.contains("h health") && footer.contains("q quit"),
        "{footer}"
    );
}

#[test]
fn the_header_shows_a_kept_filter_a_pending_search_and_a_failed_one() {
    let mut app = app(true);
    act(&mut app, Action::StartSearch);
    act(&mut app, Action::SearchChar('A'));
    let term = render(&mut app, 80, 24);
    assert!(row(&term, 0).ends_with("searching…"), "{}", row(&term, 0));
    assert!(
        row(&term, 1).contains("Name (searching…)"),
        "{}",
        row(&term, 1)
    );
    let seq = app.search_seq;
    app.update(Msg::Searched {
        seq,
        append: false,
        result: Ok(Page {
            contacts: sample().into_iter().take(2).collect(),
            next: None,
        }),
        history: Vec::new(),
    });
    // Tab searches inside every name; its answer in, Enter keeps the filter.
    act(&mut app, Action::SearchDeep);
    let seq = app.search_seq;
    app.update(Msg::Searched {
        seq,
        append: false,
        result: Ok(Page {
            contacts: sample().into_iter().take(2).collect(),
            next: None,
        }),
        history: Vec::new(),
    });
    act(&mut app, Action::SearchAccept);
    let term = render(&mut app, 80, 24);
    assert!(row(&term, 0).ends_with("/A · 2 shown"), "{}", row(&term, 0));

    act(&mut app, Action::StartSearch);
    act(&mut app, Action::SearchChar('x'));
    let seq = app.search_seq;
    app.update(Msg::Searched {
        seq,
        append: false,
        result: Err("the store stopped answering".into()),
        history: Vec::new(),
    });
    let term = render(&mut app, 80, 24);
    let header = row(&term, 0);
    assert!(
        header.contains("search failed: the store stopped answering")
            && header.ends_with("2 stale"),
        "{header}"
    );
    assert!(row(&term, 1).contains("stale"), "{}", row(&term, 1));
}

#[test]
fn audit_view_of_every_store_has_a_store_column() {
    let mut app = app(true);
    let entry = |store: &str| crate::audit::Entry {
        id: 1,
        time: 1_795_000_000,
        operator: "alice".into(),
        ssh_client: None,
        store: store.into(),
        profile: None,
        contact_id: 4,
        contact_name: "Ada".into(),
        action: "assign".into(),
        old_fingerprint: None,
        new_fingerprint: Some("5e6f7a8b".into()),
        outcome: Some("done".into()),
        error: None,
        reconciled: None,
    };
    app.update(Msg::AuditLoaded {
        contact: None,
        all_stores: true,
        result: Ok(vec![entry("https://crm.example.org"), entry("sqlite:/x")]),
    });
    let term = render(&mut app, 120, 30);
    let screen = (0..30)
        .map(|y| row(&term, y))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(screen.contains("every store"), "{screen}");
    assert!(
        screen.contains("Store") && screen.contains("https://crm.exa"),
        "{screen}"
    );
    app.update(Msg::AuditLoaded {
        contact: None,
        all_stores: false,
        result: Ok(vec![entry("sqlite:/x")]),
    });
    let term = render(&mut app, 120, 30);
    let screen = (0..30)
        .map(|y| row(&term, y))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        screen.contains("this store") && !screen.contains("Store "),
        "{screen}"
    );
}

#[test]
fn undo_confirm_80x24() {
    let mut app = app(true);
    app.undo = Some(crate::app::UndoInfo {
        contact_id: 1,
        until_unix: 1_795_000_600,
    });
    act(&mut app, Action::Undo);
    insta::assert_snapshot!(render(&mut app, 80, 24).backend());
}

/// The single-character keys named in the `?` help are the keys the keymap knows. The help
/// is `crate::cli::reference::TUI_KEYS`, which is also the man page's table, and tests/cli.rs
/// holds the README's table to it.
#[test]
fn help_names_the_keys_the_keymap_has() {
    use crate::app::{keymap, Mode};
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    let theme = super::theme::Theme { color: false };
    let known = |c: char| {
        let key = KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
        [
            Mode::List,
            Mode::NewKey,
            Mode::Confirm,
            Mode::Shown,
            Mode::Audit,
        ]
        .iter()
        .any(|m| keymap::map(key, *m).is_some())
    };
    let mut checked = 0;
    for line in super::popup::help_lines(&theme) {
        let Some(keys) = line.spans.first().map(|s| s.content.to_string()) else {
            continue;
        };
        let keys = keys.split(" (").next().unwrap_or_default().to_string();
        for token in keys
            .split([' ', '/', ','])
            .filter(|t| t.len() == 1 && t.chars().all(|c| c.is_ascii_graphic()))
        {
            let c = token.chars().next().unwrap();
            assert!(known(c), "the help names {c:?}, which no mode maps");
            checked += 1;
        }
    }
    assert!(checked >= 12, "only {checked} keys checked");
}

#[test]
fn health_view_80x24() {
    let mut app = crate::app::health::tests::opened(true);
    act(&mut app, Action::ToggleMark);
    insta::assert_snapshot!(render(&mut app, 80, 24).backend());
}

#[test]
fn read_only_health_view_offers_only_what_works() {
    let mut app = crate::app::health::tests::opened(false);
    let term = render(&mut app, 80, 24);
    let screen: Vec<String> = (0..24).map(|y| row(&term, y)).collect();
    let all = screen.join("\n");
    for gone in ["R rotate", "x revoke", "space mark", "* mark"] {
        assert!(!all.contains(gone), "{gone}:\n{all}");
    }
    assert!(all.contains("read-only store"), "{all}");
    assert_eq!(screen[23].trim(), "j/k move  Enter detail  ? help  q close");
}

#[test]
fn counts_take_the_right_plural_on_screen() {
    let mut app = crate::app::health::tests::opened(true);
    if let Some(crate::app::Popup::Health { report, .. }) = app.popup.as_mut() {
        report.findings.truncate(1);
    }
    let term = render(&mut app, 80, 24);
    assert!(
        row(&term, 1).contains(" Key health: 1 finding "),
        "{}",
        row(&term, 1)
    );
    act(&mut app, Action::Back);
    act(&mut app, Action::ToggleMark);
    let term = render(&mut app, 80, 24);
    assert!(!row(&term, 0).contains("1 marked contacts"));
    app.popup = Some(crate::app::Popup::ConfirmBulkRevoke { count: 1 });
    let term = render(&mut app, 80, 24);
    let all: String = (0..24)
        .map(|y| row(&term, y))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        all.contains("Revoke the keys of 1 marked contact?"),
        "{all}"
    );
}

#[test]
fn the_header_names_the_profile_and_the_first_run_says_sample_data() {
    let mut app = app(true);
    app.profile = Some("crm-db".into());
    app.notice = Some((crate::app::SAMPLE_NOTICE.to_string(), false));
    let term = render(&mut app, 80, 24);
    assert!(
        row(&term, 0).starts_with(" civikey │ crm-db │ sqlite:"),
        "{}",
        row(&term, 0)
    );
    let footer = row(&term, 23);
    assert!(
        footer.contains("Sample store: made-up contacts") && footer.contains("civikey config init"),
        "{footer}"
    );
    // The list's footer names h and A.
    app.notice = None;
    let term = render(&mut app, 80, 24);
    let footer = row(&term, 23);
    assert!(
        footer.contains("h health") && footer.contains("A age"),
        "{footer}"
    );
}

/// Names in scripts whose characters are not one column each: CJK and emoji take two,
/// combining marks and Devanagari's vowel signs none.
const WIDE_NAMES: [&str; 4] = [
    "Mei Chen 陈 山田太郎",
    "Café Étoile 🥐🥐",
    "नमस्ते दुनिया",
    "Zoe\u{0308} Mu\u{0308}ller",
];

/// The screen column where `needle` starts on row `y` (cells, not characters: a wide
/// character is one symbol over two cells).
fn column_of(term: &Terminal<TestBackend>, y: u16, needle: &str) -> Option<u16> {
    let buffer = term.backend().buffer();
    (0..buffer.area.width).find(|&x| buffer[(x, y)].symbol() == needle)
}

#[test]
fn the_health_view_keeps_its_columns_whatever_the_script() {
    let mut app = crate::app::health::tests::opened(true);
    if let Some(crate::app::Popup::Health { report, .. }) = app.popup.as_mut() {
        for (f, name) in report.findings.iter_mut().zip(WIDE_NAMES) {
            f.contact.display_name = SafeText::new(name);
        }
    }
    let term = render(&mut app, 80, 24);
    let key_columns: Vec<u16> = (0..24).filter_map(|y| column_of(&term, y, "•")).collect();
    assert_eq!(key_columns.len(), WIDE_NAMES.len(), "one key per finding");
    assert!(
        key_columns.iter().all(|&x| x == key_columns[0]),
        "the key column moves with the name: {key_columns:?}\n{}",
        (0..24)
            .map(|y| row(&term, y))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_audit_view_keeps_its_columns_whatever_the_script() {
    let mut app = app(true);
    let entries = WIDE_NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| crate::audit::Entry {
            id: i as i64 + 1,
            time: 1_795_000_000,
            operator: "alice".into(),
            ssh_client: None,
            store: "sqlite:/data/contacts.sqlite".into(),
            profile: None,
            contact_id: 7,
            contact_name: (*name).into(),
            action: "assign".into(),
            old_fingerprint: None,
            new_fingerprint: Some("5e6f7a8b".into()),
            outcome: Some("done".into()),
            error: None,
            reconciled: None,
        })
        .collect();
    app.update(Msg::AuditLoaded {
        contact: None,
        all_stores: false,
        result: Ok(entries),
    });
    let term = render(&mut app, 80, 24);
    // The arrow between a record's fingerprints (the header's is in "Old→new").
    let fp_columns: Vec<u16> = (0..24)
        .filter(|&y| !row(&term, y).contains("Old→new"))
        .filter_map(|y| column_of(&term, y, "→"))
        .collect();
    assert_eq!(fp_columns.len(), WIDE_NAMES.len(), "one per record");
    assert!(
        fp_columns.iter().all(|&x| x == fp_columns[0]),
        "{fp_columns:?}\n{}",
        (0..24)
            .map(|y| row(&term, y))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Enter in the health view shows the selected finding whole: the detail a row cuts, the
/// advice and the command; `?` over it names the view's own keys.
#[test]
fn a_finding_is_read_in_full_and_help_names_the_views_keys() {
    let mut app = crate::app::health::tests::opened(true);
    let long = "the same key as contact 146 (compared as the store compares: without case) (the lowest id: this contact logs in with it), and this sentence runs on to its very last word";
    if let Some(Popup::Health { report, .. }) = app.popup.as_mut() {
        report.findings[0].detail = long.to_string();
    }
    act(&mut app, Action::Proceed);
    let term = render(&mut app, 80, 24);
    let screen: String = (0..24)
        .map(|y| row(&term, y))
        .collect::<Vec<_>>()
        .join("\n");
    let words: String = screen
        .split(['│', '\n'])
        .flat_map(str::split_whitespace)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(words.contains("very last word"), "{screen}");
    assert!(words.contains("civikey rotate 11"), "{screen}");
    act(&mut app, Action::Help);
    let term = render(&mut app, 80, 24);
    let screen: String = (0..24)
        .map(|y| row(&term, y))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(screen.contains("Esc: back"), "{screen}");
    assert!(
        row(&term, 23).contains("j/k move  Enter detail  space mark"),
        "the view's keys stay on the bottom line: {screen}"
    );
}

#[test]
fn profile_picker_80x24() {
    use crate::app::{ProfileChoice, Reach};
    let mut app = app(true);
    let choice = |name: &str, kind, address: &str, reach| ProfileChoice {
        name: name.into(),
        kind,
        address: SafeText::new(address),
        reach,
    };
    app.profiles = vec![
        choice(
            "branch-north",
            "civicrm-rest",
            "https://north.example.org/civicrm/ajax/api4",
            Reach::Asking,
        ),
        choice("crm-db", "mysql", "db.example.org:3306", Reach::Asking),
        // A hostile address is inert text.
        choice("evil", "cv", "cv:/srv/\u{1b}[2Jsite", Reach::Asking),
    ];
    app.profile = Some("crm-db".into());
    act(&mut app, Action::Profiles);
    app.update(Msg::ProfileProbed {
        name: "evil".into(),
        reach: Reach::Unreachable("cv site folder /srv does not exist".into()),
    });
    act(&mut app, Action::Down);
    insta::assert_snapshot!(render(&mut app, 80, 24).backend());
}
