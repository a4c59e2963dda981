//! Key event -> Action, depending on what has the focus.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::{Action, Mode};

pub fn map(key: KeyEvent, mode: Mode) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('C')) {
        return Some(Action::ForceQuit);
    }
    if mode == Mode::Input {
        return match key.code {
            KeyCode::Enter => Some(Action::Proceed),
            KeyCode::Esc => Some(Action::Back),
            KeyCode::Backspace => Some(Action::InputBackspace),
            KeyCode::Up => Some(Action::Up),
            KeyCode::Down => Some(Action::Down),
            KeyCode::Char(c) if !ctrl => Some(Action::InputChar(c)),
            _ => None,
        };
    }
    if mode == Mode::Search {
        return match key.code {
            KeyCode::Enter => Some(Action::SearchAccept),
            KeyCode::Esc => Some(Action::SearchClear),
            KeyCode::Backspace => Some(Action::SearchBackspace),
            KeyCode::Up => Some(Action::Up),
            KeyCode::Down => Some(Action::Down),
            KeyCode::Char(c) if !ctrl => Some(Action::SearchChar(c)),
            _ => None,
        };
    }
    let common = match key.code {
        KeyCode::Esc => Some(Action::Back),
        KeyCode::Enter => Some(Action::Proceed),
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
            KeyCode::Char('b') if ctrl => Some(Action::PageUp),
            KeyCode::Char('f') if ctrl => Some(Action::PageDown),
            KeyCode::Home | KeyCode::Char('g') => Some(Action::Top),
            KeyCode::End | KeyCode::Char('G') => Some(Action::Bottom),
            KeyCode::Char('/') => Some(Action::StartSearch),
            KeyCode::Char('r') => Some(Action::Rotate),
            KeyCode::Char('x') => Some(Action::Revoke),
            KeyCode::Char('u') => Some(Action::Undo),
            KeyCode::Char(' ') => Some(Action::ToggleMark),
            KeyCode::Char('*') => Some(Action::MarkMatching),
            KeyCode::Char('o') => Some(Action::MarkOld),
            KeyCode::Char('A') => Some(Action::AgeFilter),
            KeyCode::Char('R') => Some(Action::BulkRotate),
            KeyCode::Char('a') => Some(Action::Audit),
            KeyCode::Char('h') => Some(Action::Health),
            KeyCode::Char('?') => Some(Action::Help),
            KeyCode::Char('q') => Some(Action::Quit),
            _ => None,
        },
        Mode::NewKey => match key.code {
            KeyCode::Char('r') => Some(Action::Regenerate),
            KeyCode::Char('n') => Some(Action::No),
            _ => None,
        },
        Mode::Confirm | Mode::ConfirmRevoke | Mode::ConfirmBulkRevoke => match key.code {
            KeyCode::Char('y') | KeyCode::Char('Y') => Some(Action::Yes),
            KeyCode::Char('n') | KeyCode::Char('N') => Some(Action::No),
            _ => None,
        },
        Mode::Shown => match key.code {
            KeyCode::Char('c') => Some(Action::Copy),
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
        Mode::BulkResults => match key.code {
            KeyCode::Up | KeyCode::Char('k') => Some(Action::Up),
            KeyCode::Down | KeyCode::Char('j') => Some(Action::Down),
            KeyCode::Char('q') => Some(Action::Back),
            _ => None,
        },
        Mode::Working | Mode::Search | Mode::Input | Mode::BulkRunning => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            (KeyCode::Char('q'), Action::Quit),
            (KeyCode::Esc, Action::Back),
        ];
        for (code, action) in cases {
            assert_eq!(map(key(code), Mode::List), Some(action), "{code:?}");
        }
        assert_eq!(map(key(KeyCode::Char('y')), Mode::List), None);
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
        assert_eq!(map(key(KeyCode::Char('q')), Mode::BulkRunning), None);
    }

    #[test]
    fn key_releases_are_ignored() {
        let mut release = key(KeyCode::Char('q'));
        release.kind = KeyEventKind::Release;
        assert_eq!(map(release, Mode::List), None);
    }
}
