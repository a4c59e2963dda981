//! The profile picker (`P`): the config's profiles, whether each answers, and the switch
//! of the list, search, health and audit views to another one without restarting.
//!
//! The app only asks: the worker resolves the profile (its secrets read as a run would),
//! opens its store and answers [`Msg::ProfileSwitched`]. Until that answer the old store
//! stays in use; a failed switch leaves it in place and says why.

use super::{App, Cmd, Popup, StoreState};
use crate::sanitize::SafeText;
use crate::store::StoreInfo;

/// One profile of the config, as the picker shows it: never a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileChoice {
    /// The name as the config spells it (what the worker resolves).
    pub name: String,
    /// sqlite | mysql | civicrm-rest | cv
    pub kind: &'static str,
    /// Where the store is, without secrets.
    pub address: SafeText,
    pub reach: Reach,
}

/// Whether a profile's store answered a one-row read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Not asked yet, or the answer has not come.
    Asking,
    Reachable,
    /// Why it cannot be used (secrets unreadable, connection refused, ...): safe text.
    Unreachable(String),
}

/// What a switch answered: the opened store's info, its address for the header, and the
/// warning every run of it gets (clear-text MySQL).
pub struct Switched {
    pub info: StoreInfo,
    pub location: String,
    pub warning: Option<String>,
}

impl App {
    /// `P`: the picker, on the profile in use; each profile is asked whether it answers.
    pub(super) fn open_profiles(&mut self) -> Vec<Cmd> {
        if self.profiles.is_empty() {
            self.popup = Some(Popup::Message {
                title: "Profiles",
                text: "The config defines no profiles. `civikey config init` writes a \
                       commented config; each [profiles.NAME] there is a site to switch to."
                    .into(),
                is_error: false,
            });
            return Vec::new();
        }
        let current = self.profile.as_deref();
        let selected = self
            .profiles
            .iter()
            .position(|p| Some(p.name.as_str()) == current)
            .unwrap_or(0);
        for choice in &mut self.profiles {
            choice.reach = if Some(choice.name.as_str()) == current
                && matches!(self.store, StoreState::Ready(_))
            {
                Reach::Reachable
            } else {
                Reach::Asking
            };
        }
        self.popup = Some(Popup::Profiles { selected });
        let names = self
            .profiles
            .iter()
            .filter(|p| p.reach == Reach::Asking)
            .map(|p| p.name.clone())
            .collect::<Vec<_>>();
        if names.is_empty() {
            Vec::new()
        } else {
            vec![Cmd::ProbeProfiles { names }]
        }
    }

    pub(super) fn on_profiles_action(&mut self, action: super::Action) -> Vec<Cmd> {
        use super::Action;
        let Some(Popup::Profiles { selected }) = self.popup.as_mut() else {
            return Vec::new();
        };
        let last = self.profiles.len().saturating_sub(1);
        match action {
            Action::Down => *selected = (*selected + 1).min(last),
            Action::Up => *selected = selected.saturating_sub(1),
            Action::Top => *selected = 0,
            Action::Bottom => *selected = last,
            Action::Back | Action::Quit | Action::Profiles => self.popup = None,
            Action::Proceed => {
                let chosen = *selected;
                self.popup = None;
                return self.choose_profile(chosen);
            }
            _ => {}
        }
        Vec::new()
    }

    fn choose_profile(&mut self, index: usize) -> Vec<Cmd> {
        let Some(choice) = self.profiles.get(index) else {
            return Vec::new();
        };
        let name = choice.name.clone();
        if self.profile.as_deref() == Some(name.as_str())
            && matches!(self.store, StoreState::Ready(_))
        {
            return Vec::new();
        }
        if let Some(who) = &self.writing {
            // As quitting does: the change in flight settles on the store it was sent to.
            self.notice = Some((
                format!(
                    "Switching to {} once the change to {who} is done",
                    SafeText::new(&name).truncated(20)
                ),
                false,
            ));
            self.pending_switch = Some(name);
            return Vec::new();
        }
        self.switch_to(name)
    }

    /// Asks the worker for the switch; the list shows the old store until it answers.
    pub(super) fn switch_to(&mut self, name: String) -> Vec<Cmd> {
        self.pending_switch = None;
        // Modal until the answer: a command on a contact of the old list must never reach
        // the new store (the worker runs commands in order).
        self.popup = Some(Popup::Switching { name: name.clone() });
        vec![Cmd::SwitchProfile { name }]
    }

    pub(super) fn on_profile_probed(&mut self, name: &str, reach: Reach) {
        if let Some(choice) = self.profiles.iter_mut().find(|p| p.name == name) {
            choice.reach = reach;
        }
    }

    pub(super) fn on_profile_switched(
        &mut self,
        name: String,
        result: Result<Switched, String>,
    ) -> Vec<Cmd> {
        if matches!(self.popup, Some(Popup::Switching { .. })) {
            self.popup = None;
        }
        let shown = SafeText::new(&name).truncated(20);
        match result {
            Err(e) => {
                self.on_profile_probed(&name, Reach::Unreachable(e.clone()));
                let still = match &self.profile {
                    Some(p) => format!("still on {}", SafeText::new(p).truncated(20)),
                    None => "still on the store in use".to_string(),
                };
                self.notice = Some((
                    format!(
                        "Profile {shown} cannot be used ({still}): {}",
                        SafeText::new(&e)
                    ),
                    true,
                ));
                Vec::new()
            }
            Ok(switched) => {
                let dropped_undo = self.undo.take().map(|u| u.contact_id);
                self.forget_store();
                self.on_profile_probed(&name, Reach::Reachable);
                self.profile = Some(name);
                self.location = SafeText::new(&switched.location).to_string();
                self.store = StoreState::Ready(switched.info);
                let mut notice = format!("Switched to profile {shown}");
                if let Some(id) = dropped_undo {
                    notice.push_str(&format!(" (the undo of id {id} is no longer offered)"));
                }
                if let Some(warning) = switched.warning {
                    notice = format!("{notice}. {}", SafeText::new(&warning));
                }
                self.notice = Some((notice, false));
                self.search(false)
            }
        }
    }

    /// Everything the app knew of the old store's contacts: a new store starts as a
    /// fresh launch would, with no filter, mark or answer of the old one left.
    fn forget_store(&mut self) {
        self.contacts.clear();
        self.next = None;
        self.selected = 0;
        self.scroll = 0;
        self.filter.clear();
        self.search_input = None;
        self.deep_search = None;
        self.deep_shown = false;
        self.deep_if_empty = false;
        self.keep_selected = None;
        self.to_bottom = false;
        self.loading = true;
        self.loading_more = false;
        self.key_sets.clear();
        self.age_filter = None;
        self.standings.clear();
        self.marked.clear();
        self.search_error = None;
        self.deferred = None;
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{app_with, three};
    use super::*;
    use crate::app::{Action, Mode, Msg};
    use crate::store::{StoreInfo, StoreKind};

    fn choice(name: &str) -> ProfileChoice {
        ProfileChoice {
            name: name.into(),
            kind: "civicrm-rest",
            address: SafeText::new(&format!("https://{name}.example.org")),
            reach: Reach::Asking,
        }
    }

    /// The list of three contacts, on profile "b" of "a", "b", "c".
    fn on_b() -> App {
        let mut app = app_with(three(), true);
        app.profiles = vec![choice("a"), choice("b"), choice("c")];
        app.profile = Some("b".into());
        app
    }

    fn act(app: &mut App, action: Action) -> Vec<Cmd> {
        app.update(Msg::Action(action))
    }

    fn opened(location: &str) -> Switched {
        Switched {
            info: StoreInfo {
                kind: StoreKind::Rest,
                location: SafeText::new(location),
                key_capacity: 32,
                keys_case_insensitive: true,
                writable: true,
            },
            location: location.into(),
            warning: None,
        }
    }

    #[test]
    fn p_opens_the_picker_on_the_profile_in_use_and_asks_the_others() {
        let mut app = on_b();
        let cmds = act(&mut app, Action::Profiles);
        assert!(matches!(app.popup, Some(Popup::Profiles { selected: 1 })));
        assert_eq!(app.mode(), Mode::Profiles);
        let [Cmd::ProbeProfiles { names }] = cmds.as_slice() else {
            panic!("the picker asks the other profiles whether they answer");
        };
        assert_eq!(names, &["a".to_string(), "c".to_string()]);
        assert_eq!(app.profiles[1].reach, Reach::Reachable);
        app.update(Msg::ProfileProbed {
            name: "c".into(),
            reach: Reach::Unreachable("connection refused".into()),
        });
        assert_eq!(
            app.profiles[2].reach,
            Reach::Unreachable("connection refused".into())
        );
        act(&mut app, Action::Back);
        assert!(app.popup.is_none());
    }

    #[test]
    fn choosing_a_profile_switches_modally_and_starts_afresh() {
        let mut app = on_b();
        act(&mut app, Action::Down);
        act(&mut app, Action::ToggleMark);
        assert_eq!(app.marked.len(), 1);
        act(&mut app, Action::Profiles);
        act(&mut app, Action::Down);
        let cmds = act(&mut app, Action::Proceed);
        let [Cmd::SwitchProfile { name }] = cmds.as_slice() else {
            panic!("Enter on another profile asks the worker to switch");
        };
        assert_eq!(name, "c");
        // Until the answer nothing may act on a contact of the old list: the worker runs
        // commands in order, so a rotation sent now would reach the new store.
        assert_eq!(app.mode(), Mode::Working);
        assert!(act(&mut app, Action::Rotate).is_empty());
        assert!(act(&mut app, Action::Revoke).is_empty());
        assert_eq!(app.profile.as_deref(), Some("b"));

        let cmds = app.update(Msg::ProfileSwitched {
            name: "c".into(),
            result: Ok(opened("https://c.example.org")),
        });
        assert!(app.popup.is_none());
        assert_eq!(app.profile.as_deref(), Some("c"));
        assert_eq!(app.location, "https://c.example.org");
        assert!(app.contacts.is_empty() && app.marked.is_empty() && app.filter.is_empty());
        let [Cmd::Search { seq, query, .. }] = cmds.as_slice() else {
            panic!("the new store's list is read at once");
        };
        assert_eq!(query.text, "");
        assert_eq!(*seq, app.search_seq);
        assert_eq!(app.profiles[2].reach, Reach::Reachable);
    }

    #[test]
    fn a_failed_switch_keeps_the_store_in_use_and_says_why() {
        let mut app = on_b();
        act(&mut app, Action::Profiles);
        act(&mut app, Action::Top);
        act(&mut app, Action::Proceed);
        let cmds = app.update(Msg::ProfileSwitched {
            name: "a".into(),
            result: Err("the api key file /etc/a.key cannot be read".into()),
        });
        assert!(cmds.is_empty());
        assert!(app.popup.is_none());
        assert_eq!(app.profile.as_deref(), Some("b"));
        assert_eq!(app.contacts.len(), 3);
        let (text, is_error) = app.notice.clone().expect("the failure is said");
        assert!(is_error);
        assert!(
            text.contains("still on b") && text.contains("cannot be read"),
            "{text}"
        );
        assert!(matches!(app.profiles[0].reach, Reach::Unreachable(_)));
    }

    #[test]
    fn a_switch_waits_for_the_write_in_flight() {
        let mut app = on_b();
        act(&mut app, Action::Profiles);
        act(&mut app, Action::Bottom);
        app.writing = Some("Grace Hopper (id 3)".into());
        assert!(act(&mut app, Action::Proceed).is_empty());
        assert!(app
            .notice
            .as_ref()
            .is_some_and(|(t, _)| t.contains("once the change")));
        // The write settles: the switch goes out then.
        app.writing = None;
        let cmds = app.update(Msg::Resize {
            width: 80,
            height: 24,
        });
        assert!(
            matches!(cmds.as_slice(), [Cmd::SwitchProfile { name }] if name == "c"),
            "the switch follows the settled write"
        );
    }

    #[test]
    fn choosing_the_profile_in_use_changes_nothing() {
        let mut app = on_b();
        act(&mut app, Action::Profiles);
        assert!(act(&mut app, Action::Proceed).is_empty());
        assert!(app.popup.is_none());
        assert_eq!(app.contacts.len(), 3);
    }

    #[test]
    fn without_profiles_p_says_how_to_make_them() {
        let mut app = app_with(three(), true);
        assert!(act(&mut app, Action::Profiles).is_empty());
        let Some(Popup::Message { text, .. }) = &app.popup else {
            panic!("a message says there are no profiles");
        };
        assert!(text.contains("civikey config init"));
    }
}
