//! Key event -> Action, depending on what has the focus.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::text::Edit;
use super::{Action, Mode};

pub fn map(key: KeyEvent, mode: Mode) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('C')) {
        return Some(Action::ForceQuit);
    }
    if key.modifiers == KeyModifiers::CONTROL && key.code == KeyCode::Char('l') {
        return Some(Action::Redraw);
    }
    // Readline's Ctrl-U and Ctrl-W in a text being edited.
    if matches!(mode, Mode::Search | Mode::Input) && key.modifiers == KeyModifiers::CONTROL {
        return match key.code {
            KeyCode::Char('u') => Some(Action::Edit(Edit::DeleteToStart)),
            KeyCode::Char('w') => Some(Action::Edit(Edit::DeleteWord)),
            _ => None,
        };
    }
    // Ctrl-B / Ctrl-F page the list, as in less and vim.
    if mode == Mode::List && key.modifiers == KeyModifiers::CONTROL {
        return match key.code {
            KeyCode::Char('b') => Some(Action::PageUp),
            KeyCode::Char('f') => Some(Action::PageDown),
            _ => None,
        };
    }
    // Every other key with Ctrl or Alt means nothing: Ctrl-U, Ctrl-R, Alt-x are reflexes
    // from readline and vim, never a command (nor text).
    if key
        .modifiers
        .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SUPER)
    {
        return None;
    }
    if mode == Mode::TooSmall {
        // The screen shows only the notice: nothing may act on what it hides.
        return match key.code {
            KeyCode::Char('q') => Some(Action::Quit),
            _ => None,
        };
    }
    if matches!(mode, Mode::Search | Mode::Input) {
        let edit = match key.code {
            KeyCode::Left => Some(Edit::Left),
            KeyCode::Right => Some(Edit::Right),
            KeyCode::Home => Some(Edit::Home),
            KeyCode::End => Some(Edit::End),
            KeyCode::Delete => Some(Edit::Delete),
            _ => None,
        };
        if let Some(edit) = edit {
            return Some(Action::Edit(edit));
        }
    }
    if mode == Mode::Input {
        return match key.code {
            KeyCode::Enter => Some(Action::Proceed),
            KeyCode::Esc => Some(Action::Back),
            KeyCode::Backspace => Some(Action::InputBackspace),
            KeyCode::Up => Some(Action::Up),
            KeyCode::Down => Some(Action::Down),
            KeyCode::Char(c) => Some(Action::InputChar(c)),
            _ => None,
        };
    }
    if mode == Mode::Search {
        return match key.code {
            KeyCode::Enter => Some(Action::SearchAccept),
            KeyCode::Tab => Some(Action::SearchDeep),
            KeyCode::Esc => Some(Action::SearchClear),
            KeyCode::Backspace => Some(Action::SearchBackspace),
            KeyCode::Up => Some(Action::Up),
            KeyCode::Down => Some(Action::Down),
            KeyCode::Char(c) => Some(Action::SearchChar(c)),
            _ => None,
        };
    }
    let common = match key.code {
        KeyCode::Esc => Some(Action::Back),
        KeyCode::Enter => Some(Action::Proceed),
        KeyCode::Char('?') if super::mode_takes_help(mode) => Some(Action::Help),
        _ => None,
    };
    if common.is_some() {
        return common;
    }
    match mode {
        Mode::List => match key.code {
            KeyCode::Up | KeyCode::Char('k') => Some(Action::Up),
            KeyCode::Down | KeyCode::Char('j') => Some(Action::Down),
            KeyCode::PageUp => Some(Action::PageUp),
            KeyCode::PageDown => Some(Action::PageDown),
            KeyCode::Home | KeyCode::Char('g') => Some(Action::Top),
            KeyCode::End | KeyCode::Char('G') => Some(Action::Bottom),
            KeyCode::Char('/') => Some(Action::StartSearch),
            KeyCode::Char('r') => Some(Action::Rotate),
            KeyCode::Char('x') => Some(Action::Revoke),
            KeyCode::Char('u') => Some(Action::Undo),
            KeyCode::Char(' ') => Some(Action::ToggleMark),
            KeyCode::Char('U') => Some(Action::UnmarkAll),
            KeyCode::Char('*') => Some(Action::MarkMatching),
            KeyCode::Char('o') => Some(Action::MarkOld),
            KeyCode::Char('A') => Some(Action::AgeFilter),
            KeyCode::Char('R') => Some(Action::BulkRotate),
            KeyCode::Char('a') => Some(Action::Audit),
            KeyCode::Char('h') => Some(Action::Health),
            KeyCode::Char('P') => Some(Action::Profiles),
            KeyCode::Char('?') => Some(Action::Help),
            KeyCode::Char('q') => Some(Action::Quit),
            _ => None,
        },
        Mode::NewKey => match key.code {
            KeyCode::Char('r') => Some(Action::Regenerate),
            KeyCode::Char('n') => Some(Action::No),
            KeyCode::Char('q') => Some(Action::Back),
            _ => None,
        },
        Mode::Confirm
        | Mode::ConfirmRevoke
        | Mode::ConfirmUndo
        | Mode::ConfirmBulk
        | Mode::ConfirmBulkRevoke => match key.code {
            KeyCode::Char('y') | KeyCode::Char('Y') => Some(Action::Yes),
            KeyCode::Char('n') | KeyCode::Char('N') => Some(Action::No),
            KeyCode::Char('q') => Some(Action::Back),
            _ => None,
        },
        Mode::Shown => match key.code {
            KeyCode::Char('c') => Some(Action::Copy),
            KeyCode::Char('q') => Some(Action::Back),
            _ => None,
        },
        // Nothing to close: q asks to quit, once the change in flight has settled.
        Mode::Working | Mode::BulkRunning => match key.code {
            KeyCode::Char('q') => Some(Action::Quit),
            _ => None,
        },
        Mode::Help | Mode::Message => match key.code {
            KeyCode::Char('q') | KeyCode::Char('?') => Some(Action::Back),
            _ => None,
        },
        Mode::Audit => match key.code {
            KeyCode::Up | KeyCode::Char('k') => Some(Action::Up),
            KeyCode::Down | KeyCode::Char('j') => Some(Action::Down),
            KeyCode::PageUp => Some(Action::PageUp),
            KeyCode::PageDown => Some(Action::PageDown),
            KeyCode::Char('f') => Some(Action::AuditFilter),
            KeyCode::Char('q') | KeyCode::Char('a') => Some(Action::Back),
            _ => None,
        },
        Mode::Health => match key.code {
            KeyCode::Up | KeyCode::Char('k') => Some(Action::Up),
            KeyCode::Down | KeyCode::Char('j') => Some(Action::Down),
            KeyCode::PageUp => Some(Action::PageUp),
            KeyCode::PageDown => Some(Action::PageDown),
            KeyCode::Home | KeyCode::Char('g') => Some(Action::Top),
            KeyCode::End | KeyCode::Char('G') => Some(Action::Bottom),
            KeyCode::Char(' ') => Some(Action::ToggleMark),
            KeyCode::Char('*') => Some(Action::MarkMatching),
            KeyCode::Char('R') => Some(Action::BulkRotate),
            KeyCode::Char('x') => Some(Action::Revoke),
            KeyCode::Char('q') | KeyCode::Char('h') => Some(Action::Back),
            _ => None,
        },
        Mode::Profiles => match key.code {
            KeyCode::Up | KeyCode::Char('k') => Some(Action::Up),
            KeyCode::Down | KeyCode::Char('j') => Some(Action::Down),
            KeyCode::Home | KeyCode::Char('g') => Some(Action::Top),
            KeyCode::End | KeyCode::Char('G') => Some(Action::Bottom),
            KeyCode::Char('q') | KeyCode::Char('P') => Some(Action::Back),
            _ => None,
        },
        Mode::BulkResults => match key.code {
            KeyCode::Up | KeyCode::Char('k') => Some(Action::Up),
            KeyCode::Down | KeyCode::Char('j') => Some(Action::Down),
            KeyCode::Char('q') => Some(Action::Back),
            _ => None,
        },
        Mode::Search | Mode::Input | Mode::TooSmall => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_mark_is_help_in_popups_and_text_in_fields() {
        let q = KeyEvent::new(KeyCode::Char('?'), KeyModifiers::NONE);
        for mode in [
            Mode::Health,
            Mode::Audit,
            Mode::NewKey,
            Mode::Confirm,
            Mode::Shown,
        ] {
            assert_eq!(map(q, mode), Some(Action::Help), "{mode:?}");
        }
        assert_eq!(map(q, Mode::Help), Some(Action::Back));
        assert_eq!(map(q, Mode::Input), Some(Action::InputChar('?')));
        assert_eq!(map(q, Mode::Search), Some(Action::SearchChar('?')));
        let enter = KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE);
        assert_eq!(map(enter, Mode::Health), Some(Action::Proceed));
    }

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn list_keys() {
        let cases = [
            (KeyCode::Char('j'), Action::Down),
            (KeyCode::Down, Action::Down),
            (KeyCode::Char('k'), Action::Up),
            (KeyCode::Up, Action::Up),
            (KeyCode::PageDown, Action::PageDown),
            (KeyCode::PageUp, Action::PageUp),
            (KeyCode::Char('g'), Action::Top),
            (KeyCode::Char('G'), Action::Bottom),
            (KeyCode::Char('/'), Action::StartSearch),
            (KeyCode::Char('r'), Action::Rotate),
            (KeyCode::Enter, Action::Proceed),
            (KeyCode::Char('x'), Action::Revoke),
            (KeyCode::Char('?'), Action::Help),
            (KeyCode::Char('P'), Action::Profiles),
            (KeyCode::Char('q'), Action::Quit),
            (KeyCode::Esc, Action::Back),
        ];
        for (code, action) in cases {
            assert_eq!(map(key(code), Mode::List), Some(action), "{code:?}");
        }
        assert_eq!(map(key(KeyCode::Char('y')), Mode::List), None);
    }

    #[test]
    fn profile_picker_keys() {
        let cases = [
            (KeyCode::Char('j'), Action::Down),
            (KeyCode::Char('k'), Action::Up),
            (KeyCode::Enter, Action::Proceed),
            (KeyCode::Esc, Action::Back),
            (KeyCode::Char('q'), Action::Back),
            (KeyCode::Char('P'), Action::Back),
        ];
        for (code, action) in cases {
            assert_eq!(map(key(code), Mode::Profiles), Some(action), "{code:?}");
        }
        // No command on a contact reaches the list under the picker.
        assert_eq!(map(key(KeyCode::Char('r')), Mode::Profiles), None);
    }

    #[test]
    fn ctrl_c_always_quits() {
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        for mode in [
            Mode::List,
            Mode::Search,
            Mode::NewKey,
            Mode::Confirm,
            Mode::Working,
            Mode::Shown,
        ] {
            assert_eq!(map(ctrl_c, mode), Some(Action::ForceQuit), "{mode:?}");
        }
    }

    #[test]
    fn search_takes_letters_as_text() {
        assert_eq!(
            map(key(KeyCode::Char('q')), Mode::Search),
            Some(Action::SearchChar('q'))
        );
        assert_eq!(
            map(key(KeyCode::Char('j')), Mode::Search),
            Some(Action::SearchChar('j'))
        );
        assert_eq!(
            map(key(KeyCode::Enter), Mode::Search),
            Some(Action::SearchAccept)
        );
        assert_eq!(
            map(key(KeyCode::Tab), Mode::Search),
            Some(Action::SearchDeep)
        );
        assert_eq!(
            map(key(KeyCode::Left), Mode::Search),
            Some(Action::Edit(Edit::Left))
        );
        assert_eq!(
            map(key(KeyCode::End), Mode::Input),
            Some(Action::Edit(Edit::End))
        );
        let ctrl = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL);
        assert_eq!(
            map(ctrl('u'), Mode::Search),
            Some(Action::Edit(Edit::DeleteToStart))
        );
        assert_eq!(
            map(ctrl('w'), Mode::Input),
            Some(Action::Edit(Edit::DeleteWord))
        );
        assert_eq!(map(ctrl('u'), Mode::List), None, "no command on Ctrl-U");
        for mode in [Mode::List, Mode::Search, Mode::Confirm, Mode::TooSmall] {
            assert_eq!(map(ctrl('l'), mode), Some(Action::Redraw), "{mode:?}");
        }
        assert_eq!(
            map(key(KeyCode::Esc), Mode::Search),
            Some(Action::SearchClear)
        );
        assert_eq!(
            map(key(KeyCode::Backspace), Mode::Search),
            Some(Action::SearchBackspace)
        );
    }

    #[test]
    fn popup_keys() {
        assert_eq!(
            map(key(KeyCode::Char('r')), Mode::NewKey),
            Some(Action::Regenerate)
        );
        assert_eq!(
            map(key(KeyCode::Enter), Mode::NewKey),
            Some(Action::Proceed)
        );
        assert_eq!(map(key(KeyCode::Esc), Mode::NewKey), Some(Action::Back));
        assert_eq!(
            map(key(KeyCode::Char('y')), Mode::Confirm),
            Some(Action::Yes)
        );
        assert_eq!(
            map(key(KeyCode::Char('n')), Mode::Confirm),
            Some(Action::No)
        );
        assert_eq!(
            map(key(KeyCode::Char('y')), Mode::NewKey),
            None,
            "y needs the confirm step"
        );
        assert_eq!(
            map(key(KeyCode::Char('c')), Mode::Shown),
            Some(Action::Copy)
        );
        assert_eq!(map(key(KeyCode::Enter), Mode::Shown), Some(Action::Proceed));
        assert_eq!(
            map(key(KeyCode::Char('y')), Mode::ConfirmRevoke),
            Some(Action::Yes)
        );
        assert_eq!(map(key(KeyCode::Char('y')), Mode::Working), None);
        assert_eq!(map(key(KeyCode::Char('q')), Mode::Help), Some(Action::Back));
    }

    #[test]
    fn bulk_keys() {
        assert_eq!(
            map(key(KeyCode::Char(' ')), Mode::List),
            Some(Action::ToggleMark)
        );
        assert_eq!(
            map(key(KeyCode::Char('*')), Mode::List),
            Some(Action::MarkMatching)
        );
        assert_eq!(
            map(key(KeyCode::Char('o')), Mode::List),
            Some(Action::MarkOld)
        );
        assert_eq!(
            map(key(KeyCode::Char('R')), Mode::List),
            Some(Action::BulkRotate)
        );
        assert_eq!(
            map(key(KeyCode::Char('y')), Mode::Input),
            Some(Action::InputChar('y'))
        );
        assert_eq!(map(key(KeyCode::Enter), Mode::Input), Some(Action::Proceed));
        assert_eq!(
            map(key(KeyCode::Char('q')), Mode::BulkRunning),
            Some(Action::Quit),
            "q asks to stop and quit"
        );
    }

    #[test]
    fn key_releases_are_ignored() {
        let mut release = key(KeyCode::Char('q'));
        release.kind = KeyEventKind::Release;
        assert_eq!(map(release, Mode::List), None);
    }

    /// Every mode and the keys that mean something there (plain).
    fn command_keys() -> Vec<(Mode, Vec<KeyCode>)> {
        let chars = |cs: &str| cs.chars().map(KeyCode::Char).collect::<Vec<_>>();
        let mut list = chars("kjgG/rxu *oAURa?q");
        list.extend([
            KeyCode::Up,
            KeyCode::Down,
            KeyCode::PageUp,
            KeyCode::PageDown,
            KeyCode::Home,
            KeyCode::End,
            KeyCode::Enter,
            KeyCode::Esc,
        ]);
        let confirm = [chars("yYnNq"), vec![KeyCode::Enter, KeyCode::Esc]].concat();
        vec![
            (Mode::List, list),
            (
                Mode::Search,
                [
                    chars("aq"),
                    vec![KeyCode::Enter, KeyCode::Esc, KeyCode::Backspace],
                ]
                .concat(),
            ),
            (
                Mode::Input,
                [
                    chars("9q"),
                    vec![KeyCode::Enter, KeyCode::Esc, KeyCode::Backspace],
                ]
                .concat(),
            ),
            (
                Mode::NewKey,
                [chars("rnq"), vec![KeyCode::Enter, KeyCode::Esc]].concat(),
            ),
            (Mode::Confirm, confirm.clone()),
            (Mode::ConfirmRevoke, confirm.clone()),
            (Mode::ConfirmUndo, confirm.clone()),
            (Mode::ConfirmBulk, confirm),
            (
                Mode::Shown,
                [chars("cq"), vec![KeyCode::Enter, KeyCode::Esc]].concat(),
            ),
            (
                Mode::Help,
                [chars("q?"), vec![KeyCode::Enter, KeyCode::Esc]].concat(),
            ),
            (
                Mode::Message,
                [chars("q?"), vec![KeyCode::Enter, KeyCode::Esc]].concat(),
            ),
            (
                Mode::Audit,
                [
                    chars("jkfqa"),
                    vec![KeyCode::Up, KeyCode::Down, KeyCode::Esc],
                ]
                .concat(),
            ),
            (
                Mode::BulkResults,
                [chars("jkq"), vec![KeyCode::Enter]].concat(),
            ),
            (Mode::Working, chars("q")),
            (Mode::BulkRunning, chars("q")),
            (Mode::TooSmall, chars("q")),
        ]
    }

    #[test]
    fn command_keys_fire_only_without_ctrl_or_alt() {
        for (mode, codes) in command_keys() {
            for code in codes {
                assert!(map(key(code), mode).is_some(), "{code:?} in {mode:?}");
                for modifiers in [
                    KeyModifiers::CONTROL,
                    KeyModifiers::ALT,
                    KeyModifiers::CONTROL | KeyModifiers::SHIFT,
                    KeyModifiers::ALT | KeyModifiers::SHIFT,
                ] {
                    if code == KeyCode::Char('c') && modifiers.contains(KeyModifiers::CONTROL) {
                        continue;
                    }
                    assert_eq!(
                        map(KeyEvent::new(code, modifiers), mode),
                        None,
                        "{modifiers:?}+{code:?} in {mode:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_reflex_ctrl_letters_do_nothing() {
        for c in ['u', 'r', 'x', 'a', 'o', 'y', 'q'] {
            let ctrl = KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL);
            for mode in [Mode::List, Mode::Confirm, Mode::Search, Mode::Input] {
                // In a text being edited Ctrl-U is readline's: it edits, never commands.
                let expected = (c == 'u' && matches!(mode, Mode::Search | Mode::Input))
                    .then_some(Action::Edit(Edit::DeleteToStart));
                assert_eq!(map(ctrl, mode), expected, "Ctrl-{c} in {mode:?}");
            }
        }
        let page = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL);
        assert_eq!(map(page('f'), Mode::List), Some(Action::PageDown));
        assert_eq!(map(page('b'), Mode::List), Some(Action::PageUp));
    }

    #[test]
    fn q_closes_every_popup_and_quits_only_from_the_list() {
        let q = key(KeyCode::Char('q'));
        assert_eq!(map(q, Mode::List), Some(Action::Quit));
        for mode in [
            Mode::NewKey,
            Mode::Confirm,
            Mode::ConfirmRevoke,
            Mode::ConfirmUndo,
            Mode::ConfirmBulk,
            Mode::Shown,
            Mode::Help,
            Mode::Message,
            Mode::Audit,
            Mode::BulkResults,
        ] {
            assert_eq!(map(q, mode), Some(Action::Back), "{mode:?}");
        }
    }

    #[test]
    fn too_small_takes_only_q_and_ctrl_c() {
        assert_eq!(
            map(key(KeyCode::Char('q')), Mode::TooSmall),
            Some(Action::Quit)
        );
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(map(ctrl_c, Mode::TooSmall), Some(Action::ForceQuit));
        for code in [
            KeyCode::Char('y'),
            KeyCode::Char('r'),
            KeyCode::Enter,
            KeyCode::Esc,
            KeyCode::Char('j'),
        ] {
            assert_eq!(map(key(code), Mode::TooSmall), None, "{code:?}");
        }
    }
}
