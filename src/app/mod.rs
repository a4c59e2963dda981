//! App state and `update(Msg) -> Vec<Cmd>`: pure, no IO, no terminal.
//!
//! Every store call leaves as a [`Cmd`] and comes back as a [`Msg`]; the renderer reads
//! `&App`. That keeps the screen responsive whatever the store does, and makes every flow
//! testable without a terminal or a store.

mod bulk;
pub mod health;
pub mod keymap;
pub mod layout;
mod profiles;
pub mod text;
pub mod worker;

use layout::table_rows_for;
pub use profiles::{ProfileChoice, Reach, Switched};
use std::collections::HashMap;

use crate::audit::Entry;
use crate::key::{ApiKey, KeySource};
use crate::rotation::{Assigned, Expectation, Revoked};

use crate::store::{Contact, ContactId, Cursor, Page, Query, StoreInfo};

/// The fewest contacts one search asks for: a page is three screens of rows
/// ([`App::page_size`]), at least this many and at most [`MAX_PAGE_SIZE`]; more are
/// fetched as the selection nears the end. A smaller page is a shorter walk of the list on
/// every store (each keystroke on a big site reads about a page's worth of index entries
/// or rows per branch), so the first page of a keystroke is no bigger than the screen needs.
pub const PAGE_SIZE: usize = 50;

/// The most contacts one search asks for (a terminal of some 65 rows or more).
pub const MAX_PAGE_SIZE: usize = 200;

/// How far a reload pages to find the contact that was selected before it (clearing a
/// filter on a big site): past this many rows the selection goes to the first row, and a
/// notice says so.
pub const KEEP_SELECTED_ROWS: usize = 5000;

/// The first launch's notice, on the sample store made for it.
pub const SAMPLE_NOTICE: &str =
    "Sample store: made-up contacts. For a real site run: civikey config init";

/// What a bulk run did to each contact: its results popup is titled after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BulkKind {
    Rotation,
    Revocation,
}

impl BulkKind {
    pub fn title(self) -> &'static str {
        match self {
            BulkKind::Rotation => "Bulk rotation",
            BulkKind::Revocation => "Bulk revocation",
        }
    }
}

/// What the operator asked for, from a key press. Small and comparable, so the keymap is
/// unit-tested on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    StartSearch,
    SearchChar(char),
    SearchBackspace,
    SearchAccept,
    /// From the search box: the deep search (a word inside any name), on its own key.
    SearchDeep,
    SearchClear,
    Rotate,
    Regenerate,
    Proceed,
    Yes,
    No,
    Copy,
    Revoke,
    Help,
    Undo,
    Audit,
    AuditFilter,
    ToggleMark,
    UnmarkAll,
    MarkMatching,
    MarkOld,
    AgeFilter,
    BulkRotate,
    Health,
    /// `P`: the profile picker.
    Profiles,
    InputChar(char),
    InputBackspace,
    /// Cursor moves and deletes in the text being edited (search box or field).
    Edit(text::Edit),
    Back,
    Quit,
    ForceQuit,
    /// Ctrl-L, in every mode.
    Redraw,
}

/// When civikey last set a contact's key, and who did (from the audit journal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySet {
    pub time: i64,
    pub by: String,
}

/// An undo the worker can still do (it holds the old key; the app never does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UndoInfo {
    pub contact_id: ContactId,
    pub until_unix: i64,
}

pub struct AssignDone {
    pub assigned: Assigned,
    pub undo: UndoInfo,
    pub history: Option<KeySet>,
    /// Logging in with the new key, where the site is known.
    pub login_check: Option<crate::login_check::LoginCheck>,
    /// What the app receiving the key needs (endpoint, whether to send the site key).
    pub handover: crate::handover::Handover,
}

pub struct RevokeDone {
    pub revoked: Revoked,
    pub undo: Option<UndoInfo>,
}

/// Everything that can change the app: an action, a terminal event, or a worker's answer.
pub enum Msg {
    Action(Action),
    /// Text the operator pasted (bracketed paste): text for a text field, never keys.
    Paste(String),
    Resize {
        width: u16,
        height: u16,
    },
    StoreOpened(Result<StoreInfo, String>),
    Searched {
        seq: u64,
        append: bool,
        result: Result<Page, String>,
        history: Vec<(ContactId, KeySet)>,
    },
    Assigned {
        result: Result<AssignDone, String>,
    },
    Revoked {
        result: Result<RevokeDone, String>,
    },
    Undone {
        result: Result<Contact, String>,
    },
    Refreshed {
        result: Result<Contact, String>,
        history: Option<KeySet>,
    },
    /// A contact's user account and roles, for the confirm popup.
    Roles {
        id: ContactId,
        standing: crate::store::Standing,
    },
    /// Contacts found by "mark all matching" / "mark old keys".
    Marked {
        result: Result<Vec<Contact>, String>,
    },
    BulkProgress {
        done: usize,
        total: usize,
        last: String,
    },
    BulkFinished {
        kind: BulkKind,
        results: Vec<crate::bulk::BulkResult>,
        out: String,
        error: Option<String>,
    },
    AuditLoaded {
        contact: Option<ContactId>,
        all_stores: bool,
        result: Result<Vec<Entry>, String>,
    },
    /// The key health check has read this many key holders so far, and judged these
    /// findings in its last batch (all but duplicate keys, which come with the report).
    HealthProgress {
        read: usize,
        findings: Vec<crate::health::Finding>,
    },
    HealthChecked {
        result: Result<crate::health::Report, String>,
    },
    /// Whether a profile's store answered (the picker's "reachable" column).
    ProfileProbed {
        name: String,
        reach: Reach,
    },
    /// The worker switched to profile `name` (or could not: the old store stays).
    ProfileSwitched {
        name: String,
        result: Result<Switched, String>,
    },
    /// A deep search (`seq`) is still running after `elapsed`: sent by the worker a few
    /// times a second, so the screen shows how long it has taken.
    DeepSearchRunning {
        seq: u64,
        elapsed: std::time::Duration,
    },
}

/// A deep search in flight (a word inside a name: every contact is read on a big site).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeepSearch {
    pub seq: u64,
    pub text: String,
    pub elapsed: std::time::Duration,
}

/// Work for the outside world: store calls (run by the worker) and the clipboard.
pub enum Cmd {
    OpenStore,
    Search {
        seq: u64,
        append: bool,
        query: Query,
    },
    Assign {
        id: ContactId,
        expectation: Expectation,
        key: ApiKey,
    },
    Revoke {
        id: ContactId,
        expectation: Expectation,
    },
    Refresh {
        id: ContactId,
    },
    Undo,
    LoadRoles {
        id: ContactId,
    },
    /// List contacts (matching `query`) whose key is older than `days`, oldest first;
    /// answered as a `Searched` with `seq`.
    AgeFilter {
        seq: u64,
        query: Query,
        days: u32,
    },
    /// Find up to `limit` contacts matching `query` (with a key older than `older_than_days`
    /// when set: unknown age counts as old) and mark them.
    MarkMatching {
        query: Query,
        older_than_days: Option<u32>,
        limit: usize,
    },
    BulkRotate {
        items: Vec<(ContactId, Expectation)>,
        out: std::path::PathBuf,
    },
    /// The journal's records of this store (of every store with `all_stores`).
    LoadAudit {
        contact: Option<ContactId>,
        all_stores: bool,
    },
    /// The key health check over every key holder (`civikey check`).
    CheckHealth {
        max_age_days: Option<u32>,
    },
    /// Revoke each contact's key (the health view's `x`); answered as a `BulkFinished`.
    BulkRevoke {
        items: Vec<(ContactId, Expectation)>,
    },
    /// Ask each named profile's store whether it answers (each on its own, so a hanging
    /// one holds no other); answered by one `ProfileProbed` per name.
    ProbeProfiles {
        names: Vec<String>,
    },
    /// Open profile `name`'s store in place of the one in use; answered by `ProfileSwitched`.
    SwitchProfile {
        name: String,
    },
    CopyToClipboard(ApiKey),
    /// Stop a bulk run after the contact in flight (the terminal loop sets the flag).
    StopBulk,
    /// Ctrl-L: clear the terminal and draw the whole screen again.
    Redraw,
}

/// Which keys mean what right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    List,
    Search,
    Help,
    NewKey,
    Confirm,
    Working,
    Shown,
    ConfirmRevoke,
    ConfirmUndo,
    ConfirmBulk,
    Message,
    Audit,
    Input,
    BulkRunning,
    BulkResults,
    /// The terminal is smaller than the UI: only the notice shows, only q and Ctrl-C act.
    TooSmall,
    Health,
    ConfirmBulkRevoke,
    /// The profile picker.
    Profiles,
}

pub enum Popup {
    /// The keys table; over another popup (`?` there), that popup comes back when it closes.
    Help {
        under: Option<Box<Popup>>,
    },
    NewKey {
        contact: Contact,
        key: ApiKey,
    },
    Confirm {
        contact: Contact,
        key: ApiKey,
    },
    Working {
        contact: Contact,
        what: &'static str,
    },
    Shown {
        contact: Contact,
        key: ApiKey,
        copied: bool,
        regenerated: bool,
        /// Set when the outcome could not be journaled.
        warning: Option<String>,
        login_check: Option<crate::login_check::LoginCheck>,
        handover: crate::handover::Handover,
    },
    ConfirmRevoke {
        contact: Contact,
    },
    /// Undo of the last change to this contact: its previous key comes back.
    ConfirmUndo {
        contact_id: ContactId,
        name: Option<crate::sanitize::SafeText>,
    },
    Message {
        title: &'static str,
        text: String,
        is_error: bool,
    },
    Audit {
        contact: Option<ContactId>,
        all_stores: bool,
        entries: Vec<Entry>,
        scroll: usize,
    },
    /// "Contacts whose key is older than N days": N being typed. `show` lists them (oldest
    /// first) instead of marking them.
    MarkOld {
        days: text::TextField,
        show: bool,
    },
    /// The one confirm screen of a bulk rotation: the marked contacts and the out file.
    BulkConfirm {
        path: text::TextField,
        scroll: usize,
        /// Enter was pressed in the path field: `y` now starts the run.
        confirming: bool,
    },
    BulkRunning {
        done: usize,
        total: usize,
        last: String,
    },
    BulkResults {
        kind: BulkKind,
        results: Vec<crate::bulk::BulkResult>,
        out: String,
        error: Option<String>,
        scroll: usize,
    },
    /// The key health check is running.
    Checking {
        read: usize,
    },
    /// The health view: the findings (most severe first), the selected one, the first line shown.
    Health {
        report: crate::health::Report,
        /// `report.summary()`, made once.
        summary: String,
        selected: usize,
        scroll: usize,
        /// Still reading: this many key holders read so far (the findings are those judged
        /// until now); None once the report is whole.
        reading: Option<usize>,
        /// Enter: the selected finding in full, over the view (j/k move on with it open).
        detail: bool,
    },
    /// "Revoke the keys of N marked contacts?"
    ConfirmBulkRevoke {
        count: usize,
    },
    /// The profile picker: the row selected in `App::profiles`.
    Profiles {
        selected: usize,
    },
    /// A switch to another profile is opening its store.
    Switching {
        name: String,
    },
}

impl Popup {
    /// Which keys mean what while this popup is up.
    pub fn mode(&self) -> Mode {
        match self {
            Popup::Help { .. } => Mode::Help,
            Popup::NewKey { .. } => Mode::NewKey,
            Popup::Confirm { .. } => Mode::Confirm,
            Popup::Working { .. } | Popup::Checking { .. } | Popup::Switching { .. } => {
                Mode::Working
            }
            Popup::Shown { .. } => Mode::Shown,
            Popup::ConfirmRevoke { .. } => Mode::ConfirmRevoke,
            Popup::ConfirmUndo { .. } => Mode::ConfirmUndo,
            Popup::Message { .. } => Mode::Message,
            Popup::Audit { .. } => Mode::Audit,
            Popup::BulkConfirm {
                confirming: true, ..
            } => Mode::ConfirmBulk,
            Popup::MarkOld { .. } | Popup::BulkConfirm { .. } => Mode::Input,
            Popup::BulkRunning { .. } => Mode::BulkRunning,
            Popup::BulkResults { .. } => Mode::BulkResults,
            Popup::Health { .. } => Mode::Health,
            Popup::ConfirmBulkRevoke { .. } => Mode::ConfirmBulkRevoke,
            Popup::Profiles { .. } => Mode::Profiles,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreState {
    Opening,
    Ready(StoreInfo),
    Failed(String),
}

/// Options the app starts with (none of them IO).
pub struct AppOptions {
    pub location: String,
    pub color: bool,
    /// Set when inside tmux with `set-clipboard` not `on`: copying may not reach the clipboard.
    pub clipboard_warning: Option<String>,
    /// Where bulk rotation proposes to write its out file.
    pub data_dir: std::path::PathBuf,
    /// The config's profiles, for the picker (`P`).
    pub profiles: Vec<ProfileChoice>,
}

pub struct App {
    pub store: StoreState,
    pub location: String,
    /// The config profile the store came from, named in the header.
    pub profile: Option<String>,
    pub contacts: Vec<Contact>,
    /// More results exist after `contacts`.
    pub next: Option<Cursor>,
    pub selected: usize,
    /// First visible row of the table.
    pub scroll: usize,
    /// The filter in force (results shown are for it).
    pub filter: String,
    /// Some while the operator is typing a search.
    pub search_input: Option<text::TextField>,
    /// Sequence number of the newest search; answers to older ones are dropped.
    pub search_seq: u64,
    /// Some while a deep search (Enter in the search box) runs; Esc drops it.
    pub deep_search: Option<DeepSearch>,
    /// The list shows a deep search's answer for `filter`.
    pub deep_shown: bool,
    /// Enter was pressed in the search box before its answer came: if the answer is
    /// empty, the deep search runs by itself.
    deep_if_empty: bool,
    /// The contact to keep selected when the list is reloaded (a filter cleared, a reload
    /// after a bulk run): pages load until it is found, or [`KEEP_SELECTED_ROWS`] are in.
    keep_selected: Option<ContactId>,
    /// `G` was pressed: pages load until the last one, the selection on the last row.
    to_bottom: bool,
    pub loading: bool,
    pub loading_more: bool,
    pub popup: Option<Popup>,
    pub notice: Option<(String, bool)>,
    pub color: bool,
    pub clipboard_warning: Option<String>,
    pub size: (u16, u16),
    pub should_quit: bool,
    /// When civikey last set each listed contact's key.
    pub key_sets: HashMap<ContactId, KeySet>,
    /// The change `u` can still undo.
    pub undo: Option<UndoInfo>,
    /// Unix time of the frame being drawn; set by the loop (fixed in tests).
    pub now: i64,
    /// Set while the list shows only keys older than this many days.
    pub age_filter: Option<u32>,
    /// User account and roles per contact, loaded when a new key is proposed for it.
    pub standings: HashMap<ContactId, crate::store::Standing>,
    /// Contacts marked for bulk rotation, with the key state seen when marked.
    pub marked: std::collections::BTreeMap<ContactId, Contact>,
    pub data_dir: std::path::PathBuf,
    /// Who the store write in flight is for ("Grace Hopper (id 103)", "12 contacts").
    pub writing: Option<String>,
    /// Quit was asked while a write was in flight: quit as soon as it settles.
    pub quitting: bool,
    /// The newest search failed: the rows shown are those of an older one.
    pub search_error: Option<String>,
    /// The config's profiles (`P` picks one).
    pub profiles: Vec<ProfileChoice>,
    /// A profile chosen while a write was in flight: switched to once it settles.
    pending_switch: Option<String>,
    /// A search answer that arrived under a popup: applied once the popup closes.
    deferred: Option<Deferred>,
    /// The notice was set while a popup was open (about it): it goes when the popup does.
    notice_of_popup: bool,
    keys: Box<dyn KeySource>,
}

/// A search answer held back while a popup is open: append, result, key history.
type Deferred = (bool, Result<Page, String>, Vec<(ContactId, KeySet)>);

impl App {
    pub fn new(options: AppOptions, keys: Box<dyn KeySource>) -> (Self, Vec<Cmd>) {
        let app = App {
            store: StoreState::Opening,
            location: options.location,
            profile: None,
            contacts: Vec::new(),
            next: None,
            selected: 0,
            scroll: 0,
            filter: String::new(),
            search_input: None,
            search_seq: 0,
            deep_search: None,
            deep_shown: false,
            deep_if_empty: false,
            keep_selected: None,
            to_bottom: false,
            loading: true,
            loading_more: false,
            popup: None,
            notice: None,
            color: options.color,
            clipboard_warning: options.clipboard_warning,
            size: (80, 24),
            should_quit: false,
            key_sets: HashMap::new(),
            undo: None,
            now: 0,
            marked: std::collections::BTreeMap::new(),
            standings: HashMap::new(),
            age_filter: None,
            data_dir: options.data_dir,
            writing: None,
            quitting: false,
            search_error: None,
            profiles: options.profiles,
            pending_switch: None,
            deferred: None,
            notice_of_popup: false,
            keys,
        };
        (app, vec![Cmd::OpenStore])
    }

    pub fn mode(&self) -> Mode {
        if self.too_small() {
            return Mode::TooSmall;
        }
        match &self.popup {
            Some(popup) => popup.mode(),
            None if self.search_input.is_some() => Mode::Search,
            None => Mode::List,
        }
    }

    /// Whether the terminal is smaller than the UI (the screen shows only a notice).
    pub fn too_small(&self) -> bool {
        self.size.0 < layout::MIN_WIDTH || self.size.1 < layout::MIN_HEIGHT
    }

    /// A search for the current text is running: the rows shown are an older one's. (Not
    /// when its answer is in, held back under a popup: nothing searches then.)
    pub fn searching(&self) -> bool {
        self.loading && self.deferred.is_none() && matches!(self.store, StoreState::Ready(_))
    }

    pub fn selected_contact(&self) -> Option<&Contact> {
        self.contacts.get(self.selected)
    }

    pub fn store_info(&self) -> Option<&StoreInfo> {
        match &self.store {
            StoreState::Ready(info) => Some(info),
            _ => None,
        }
    }

    fn table_rows(&self) -> usize {
        table_rows_for(self.size.1)
    }

    pub fn update(&mut self, msg: Msg) -> Vec<Cmd> {
        let had_popup = self.popup.is_some();
        let notice_before = self.notice.clone();
        let mut cmds = self.apply(msg);
        // A notice about a popup ("Mark findings first") never outlives it; one set as the
        // popup closes ("Cancelled: ...") is about the list and stays.
        if self.notice != notice_before {
            self.notice_of_popup = self.popup.is_some() && self.notice.is_some();
        } else if had_popup && self.popup.is_none() && self.notice_of_popup {
            self.notice = None;
            self.notice_of_popup = false;
        }
        // A profile chosen while a write was in flight: the write has settled.
        if self.writing.is_none() && !self.should_quit {
            if let Some(name) = self.pending_switch.take() {
                if self.popup.is_none() {
                    cmds.extend(self.switch_to(name));
                } else {
                    self.pending_switch = Some(name);
                }
            }
        }
        // The list never changes under a popup: an answer that came meanwhile lands now.
        if self.popup.is_none() {
            if let Some((append, result, history)) = self.deferred.take() {
                self.key_sets.extend(history);
                cmds.extend(self.on_searched(append, result));
            }
        }
        cmds
    }

    fn apply(&mut self, msg: Msg) -> Vec<Cmd> {
        match msg {
            Msg::Action(action) => self.on_action(action),
            Msg::Paste(text) => self.on_paste(&text),
            Msg::Resize { width, height } => {
                self.size = (width, height);
                self.keep_selection_visible();
                Vec::new()
            }
            Msg::StoreOpened(Ok(info)) => {
                self.store = StoreState::Ready(info);
                self.search(false)
            }
            Msg::StoreOpened(Err(e)) => {
                self.loading = false;
                self.store = StoreState::Failed(e);
                Vec::new()
            }
            Msg::Searched {
                seq,
                append,
                result,
                history,
            } => {
                if seq != self.search_seq {
                    return Vec::new(); // a newer search replaced this one
                }
                if self.popup.is_some() {
                    self.deferred = Some((append, result, history));
                    return Vec::new();
                }
                self.key_sets.extend(history);
                if self.deep_search.take().is_some() {
                    self.deep_shown = true;
                }
                self.on_searched(append, result)
            }
            Msg::DeepSearchRunning { seq, elapsed } => {
                if let Some(deep) = self.deep_search.as_mut().filter(|d| d.seq == seq) {
                    deep.elapsed = elapsed;
                }
                Vec::new()
            }
            Msg::Assigned { result } => {
                // A new key nobody has seen must not vanish with the quit: it is shown
                // once, and closing that popup finishes the quit.
                if result.is_ok() && self.quitting {
                    self.writing = None;
                    self.notice = Some((
                        "Quitting: note or copy the new key; closing this popup quits".into(),
                        false,
                    ));
                } else {
                    self.settled();
                }
                self.on_assigned(result)
            }
            Msg::Revoked { result } => {
                self.settled();
                self.on_revoked(result)
            }
            Msg::Undone { result } => {
                self.settled();
                self.on_undone(result)
            }
            Msg::Refreshed { result, history } => {
                if let Ok(contact) = result {
                    self.set_history(contact.id, history);
                    self.replace_contact(contact);
                }
                Vec::new()
            }
            Msg::Marked { result } => self.on_marked(result),
            Msg::Roles { id, standing } => {
                self.standings.insert(id, standing);
                Vec::new()
            }
            Msg::BulkProgress { done, total, last } => {
                self.popup = Some(Popup::BulkRunning { done, total, last });
                Vec::new()
            }
            Msg::BulkFinished {
                kind,
                results,
                out,
                error,
            } => {
                self.settled();
                self.on_bulk_finished(kind, results, out, error)
            }
            Msg::HealthProgress { read, findings } => self.on_health_progress(read, findings),
            Msg::HealthChecked { result } => self.on_health_checked(result),
            Msg::ProfileProbed { name, reach } => {
                self.on_profile_probed(&name, reach);
                Vec::new()
            }
            Msg::ProfileSwitched { name, result } => self.on_profile_switched(name, result),
            Msg::AuditLoaded {
                contact,
                all_stores,
                result,
            } => {
                self.popup = Some(match result {
                    Ok(entries) => Popup::Audit {
                        contact,
                        all_stores,
                        entries,
                        scroll: 0,
                    },
                    Err(e) => error_popup("The audit journal cannot be read", e),
                });
                Vec::new()
            }
        }
    }

    /// The write in flight has answered.
    fn settled(&mut self) {
        self.writing = None;
        if self.quitting {
            self.should_quit = true;
        }
    }

    /// q from the list (or a screen with nothing to close) and Ctrl-C: quit now, unless a
    /// write is in flight; then quit when it settles, or now on a second Ctrl-C (the
    /// journal's intent is settled by the next run).
    fn quit(&mut self, force: bool) -> Vec<Cmd> {
        let Some(who) = self.writing.clone() else {
            self.should_quit = true;
            return Vec::new();
        };
        if self.quitting && force {
            self.should_quit = true;
            return Vec::new();
        }
        self.quitting = true;
        self.notice = Some((
            format!("Finishing the change to {who}; Ctrl-C again quits now"),
            false,
        ));
        // A bulk run stops after the contact in flight; its answer then ends civikey.
        if matches!(self.popup, Some(Popup::BulkRunning { .. })) {
            return vec![Cmd::StopBulk];
        }
        Vec::new()
    }

    fn on_paste(&mut self, text: &str) -> Vec<Cmd> {
        // One line of text: line breaks become spaces, other controls are dropped.
        let clean = |text: &str| -> String {
            text.chars()
                .map(|c| {
                    if c == '\n' || c == '\r' || c == '\t' {
                        ' '
                    } else {
                        c
                    }
                })
                .filter(|c| !c.is_control())
                .collect()
        };
        match self.mode() {
            Mode::Search => {
                let Some(input) = self.search_input.as_mut() else {
                    return Vec::new();
                };
                input.insert(&clean(text));
                self.filter = input.text().to_string();
                self.search(false)
            }
            Mode::Input => {
                for c in clean(text).chars() {
                    self.on_input_action(Action::InputChar(c));
                }
                Vec::new()
            }
            Mode::TooSmall => Vec::new(),
            _ => {
                self.notice = Some((
                    "Paste ignored: paste into the search (/) or a text field.".into(),
                    false,
                ));
                Vec::new()
            }
        }
    }

    fn on_action(&mut self, action: Action) -> Vec<Cmd> {
        let mode = self.mode();
        match action {
            Action::ForceQuit => return self.quit(true),
            Action::Redraw => return vec![Cmd::Redraw],
            Action::Quit
                if matches!(
                    mode,
                    Mode::List | Mode::TooSmall | Mode::Working | Mode::BulkRunning
                ) =>
            {
                return self.quit(false)
            }
            _ => {}
        }
        match mode {
            Mode::TooSmall => Vec::new(),
            Mode::List => self.on_list_action(action),
            Mode::Search => self.on_search_action(action),
            Mode::Help | Mode::Message => {
                if matches!(
                    action,
                    Action::Back | Action::Proceed | Action::Help | Action::Quit
                ) {
                    // Help over a popup gives that popup back.
                    self.popup = match self.popup.take() {
                        Some(Popup::Help { under }) => under.map(|popup| *popup),
                        _ => None,
                    };
                }
                Vec::new()
            }
            // `?` in a popup: the keys, and back to the popup after.
            _ if action == Action::Help && mode_takes_help(mode) => {
                let under = self.popup.take().map(Box::new);
                self.popup = Some(Popup::Help { under });
                Vec::new()
            }
            Mode::NewKey => self.on_new_key_action(action),
            Mode::Confirm => self.on_confirm_action(action),
            Mode::Working => Vec::new(),
            Mode::Shown => self.on_shown_action(action),
            Mode::ConfirmRevoke => self.on_confirm_revoke_action(action),
            Mode::ConfirmUndo => self.on_confirm_undo_action(action),
            Mode::Audit => self.on_audit_action(action),
            Mode::Input | Mode::ConfirmBulk => self.on_input_action(action),
            Mode::BulkRunning => Vec::new(),
            Mode::BulkResults => self.on_bulk_results_action(action),
            Mode::Health => self.on_health_action(action),
            Mode::ConfirmBulkRevoke => self.on_confirm_bulk_revoke_action(action),
            Mode::Profiles => self.on_profiles_action(action),
        }
    }

    fn on_audit_action(&mut self, action: Action) -> Vec<Cmd> {
        let Some(Popup::Audit {
            contact,
            all_stores,
            entries,
            scroll,
        }) = self.popup.as_mut()
        else {
            return Vec::new();
        };
        match action {
            Action::Down => *scroll = (*scroll + 1).min(entries.len().saturating_sub(1)),
            Action::Up => *scroll = scroll.saturating_sub(1),
            Action::PageDown => *scroll = (*scroll + 10).min(entries.len().saturating_sub(1)),
            Action::PageUp => *scroll = scroll.saturating_sub(10),
            Action::AuditFilter => {
                // This store -> the selected contact (in this store) -> every store.
                let selected = self.contacts.get(self.selected).map(|c| c.id);
                let (contact, all_stores) = match (*contact, *all_stores) {
                    (None, false) if selected.is_some() => (selected, false),
                    (None, false) | (Some(_), _) => (None, true),
                    (None, true) => (None, false),
                };
                return vec![Cmd::LoadAudit {
                    contact,
                    all_stores,
                }];
            }
            Action::Back | Action::Quit | Action::Audit | Action::Proceed => self.popup = None,
            _ => {}
        }
        Vec::new()
    }

    fn set_history(&mut self, id: ContactId, history: Option<KeySet>) {
        match history {
            Some(set) => self.key_sets.insert(id, set),
            None => self.key_sets.remove(&id),
        };
    }

    fn on_list_action(&mut self, action: Action) -> Vec<Cmd> {
        self.notice = None;
        let on_a_contact = matches!(
            action,
            Action::Rotate
                | Action::Proceed
                | Action::Revoke
                | Action::ToggleMark
                | Action::MarkMatching
                | Action::MarkOld
                | Action::AgeFilter
        );
        if on_a_contact && self.searching() {
            self.notice = Some((
                "Searching: wait for the results before acting on a contact.".into(),
                false,
            ));
            return Vec::new();
        }
        if on_a_contact && self.seeking() {
            self.notice = Some((
                "Loading pages: wait until the selection stops, or move to stop it.".into(),
                false,
            ));
            return Vec::new();
        }
        match action {
            Action::Up => self.move_selection(-1),
            Action::Down => self.move_selection(1),
            Action::PageUp => self.move_selection(-(self.table_rows() as isize)),
            Action::PageDown => self.move_selection(self.table_rows() as isize),
            Action::Top => self.move_selection(isize::MIN / 2),
            Action::Bottom => {
                let cmds = self.move_selection(isize::MAX / 2);
                // The last contact, not the last loaded: pages load until the end.
                if self.next.is_some() {
                    self.to_bottom = true;
                    if cmds.is_empty() && !self.loading_more && !self.loading {
                        return self.search(true);
                    }
                }
                cmds
            }
            Action::StartSearch => {
                self.search_input = Some(text::TextField::new(&self.filter));
                Vec::new()
            }
            Action::Back if !self.filter.is_empty() || self.age_filter.is_some() => {
                self.filter.clear();
                self.reload_keeping_selection()
            }
            Action::Help => {
                self.popup = Some(Popup::Help { under: None });
                Vec::new()
            }
            Action::Quit => {
                self.should_quit = true;
                Vec::new()
            }
            Action::Rotate | Action::Proceed => self.open_new_key(),
            Action::Revoke => self.open_revoke(),
            Action::Audit => vec![Cmd::LoadAudit {
                contact: None,
                all_stores: false,
            }],
            Action::Health => self.open_health(),
            Action::Profiles => self.open_profiles(),
            Action::ToggleMark => self.toggle_mark(),
            Action::UnmarkAll => {
                let n = self.marked.len();
                self.marked.clear();
                self.notice = Some((
                    format!(
                        "Unmarked {}.",
                        crate::wording::plural(n, "contact", "contacts")
                    ),
                    false,
                ));
                Vec::new()
            }
            Action::MarkMatching => self.mark_matching(None),
            Action::MarkOld => {
                self.popup = Some(Popup::MarkOld {
                    days: text::TextField::selected("90"),
                    show: false,
                });
                Vec::new()
            }
            Action::BulkRotate => self.open_bulk_confirm(),
            Action::AgeFilter => {
                self.popup = Some(Popup::MarkOld {
                    days: text::TextField::selected("90"),
                    show: true,
                });
                Vec::new()
            }
            Action::Undo => match &self.undo {
                Some(undo) => {
                    let name = self
                        .contacts
                        .iter()
                        .find(|c| c.id == undo.contact_id)
                        .map(|c| c.display_name.clone());
                    self.popup = Some(Popup::ConfirmUndo {
                        contact_id: undo.contact_id,
                        name,
                    });
                    Vec::new()
                }
                None => {
                    self.notice = Some(("Nothing to undo.".into(), false));
                    Vec::new()
                }
            },
            _ => Vec::new(),
        }
    }

    fn on_search_action(&mut self, action: Action) -> Vec<Cmd> {
        let Some(input) = self.search_input.as_mut() else {
            return Vec::new();
        };
        match action {
            Action::SearchChar(c) => {
                input.insert(c.encode_utf8(&mut [0; 4]));
                self.filter = input.text().to_string();
                self.search(false)
            }
            Action::SearchBackspace | Action::Edit(_) => {
                let edit = match action {
                    Action::Edit(edit) => edit,
                    _ => text::Edit::Backspace,
                };
                if !input.edit(edit) {
                    return Vec::new();
                }
                self.filter = input.text().to_string();
                self.search(false)
            }
            Action::SearchDeep if self.deep_search.is_none() && self.wants_deep() => {
                // The deeper search, a word inside any name: on its own key, never per key.
                self.start_deep_search()
            }
            Action::SearchDeep => Vec::new(),
            Action::SearchAccept => {
                // Keep the filter and go back to the list, on the contact selected (a
                // running deep search goes on; its answer lands).
                self.search_input = None;
                if self.deep_search.is_some() || !self.wants_deep() {
                    return Vec::new();
                }
                if self.loading {
                    // The answer is not in yet: if it finds nothing, search deeper then.
                    self.deep_if_empty = true;
                    return Vec::new();
                }
                if self.contacts.is_empty() {
                    return self.start_deep_search();
                }
                Vec::new()
            }
            Action::SearchClear if self.deep_search.is_some() => {
                // Esc during a deep search cancels it: its answer will be dropped, and the
                // keystroke answer for the same text comes back.
                self.reload_keeping_selection()
            }
            Action::SearchClear => {
                self.search_input = None;
                if self.filter.is_empty() {
                    Vec::new()
                } else {
                    self.filter.clear();
                    self.reload_keeping_selection()
                }
            }
            Action::Up => self.move_selection(-1),
            Action::Down => self.move_selection(1),
            _ => Vec::new(),
        }
    }

    fn on_new_key_action(&mut self, action: Action) -> Vec<Cmd> {
        match action {
            Action::Regenerate => {
                if let Some(Popup::NewKey { contact, .. }) = self.popup.take() {
                    self.popup = match ApiKey::generate_from(self.keys.as_mut()) {
                        Ok(key) => Some(Popup::NewKey { contact, key }),
                        Err(e) => Some(error_popup("No key was made", e.to_string())),
                    };
                }
            }
            Action::Proceed => {
                if let Some(Popup::NewKey { contact, key }) = self.popup.take() {
                    self.popup = Some(Popup::Confirm { contact, key });
                }
            }
            Action::Back | Action::No => self.cancel("Cancelled: nothing was written."),
            _ => {}
        }
        Vec::new()
    }

    fn on_confirm_action(&mut self, action: Action) -> Vec<Cmd> {
        match action {
            Action::Yes => {
                if let Some(Popup::Confirm { contact, key }) = self.popup.take() {
                    let cmd = Cmd::Assign {
                        id: contact.id,
                        expectation: Expectation::Seen(contact.key.clone()),
                        key,
                    };
                    self.writing = Some(contact_label(&contact));
                    self.popup = Some(Popup::Working {
                        contact,
                        what: "Assigning the key",
                    });
                    return vec![cmd];
                }
                Vec::new()
            }
            Action::No | Action::Back => {
                self.cancel("Cancelled: nothing was written.");
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn on_shown_action(&mut self, action: Action) -> Vec<Cmd> {
        match action {
            Action::Copy => {
                if let Some(Popup::Shown { key, copied, .. }) = self.popup.as_mut() {
                    *copied = true;
                    return vec![Cmd::CopyToClipboard(key.clone())];
                }
                Vec::new()
            }
            Action::Proceed | Action::Back | Action::Quit => {
                self.popup = None;
                // A quit asked for while this key was being assigned ends here.
                if self.quitting {
                    self.should_quit = true;
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn on_confirm_revoke_action(&mut self, action: Action) -> Vec<Cmd> {
        match action {
            Action::Yes => {
                if let Some(Popup::ConfirmRevoke { contact }) = self.popup.take() {
                    let cmd = Cmd::Revoke {
                        id: contact.id,
                        expectation: Expectation::Seen(contact.key.clone()),
                    };
                    self.writing = Some(contact_label(&contact));
                    self.popup = Some(Popup::Working {
                        contact,
                        what: "Revoking the key",
                    });
                    return vec![cmd];
                }
                Vec::new()
            }
            Action::No | Action::Back => {
                self.cancel("Cancelled: the key was kept.");
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn on_confirm_undo_action(&mut self, action: Action) -> Vec<Cmd> {
        match action {
            Action::Yes => {
                let Some(Popup::ConfirmUndo { contact_id, name }) = self.popup.take() else {
                    return Vec::new();
                };
                self.undo = None;
                let who = match &name {
                    Some(name) => format!("{} (id {contact_id})", name.truncated(16)),
                    None => format!("contact {contact_id}"),
                };
                self.writing = Some(who);
                if let Some(contact) = self.contacts.iter().find(|c| c.id == contact_id) {
                    self.popup = Some(Popup::Working {
                        contact: contact.clone(),
                        what: "Undoing the last change",
                    });
                }
                vec![Cmd::Undo]
            }
            Action::No | Action::Back => {
                self.cancel("Cancelled: nothing was undone.");
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn cancel(&mut self, text: &str) {
        self.popup = None;
        self.notice = Some((text.to_string(), false));
    }

    fn writable_contact(&mut self) -> Option<Contact> {
        let Some(info) = self.store_info() else {
            self.notice = Some(("The store is not open yet.".into(), true));
            return None;
        };
        if !info.writable {
            self.notice = Some((
                "The store is read-only: keys cannot be changed.".into(),
                true,
            ));
            return None;
        }
        let contact = self.selected_contact().cloned();
        if contact.is_none() {
            self.notice = Some(("No contact selected.".into(), true));
        }
        contact
    }

    fn open_new_key(&mut self) -> Vec<Cmd> {
        let Some(contact) = self.writable_contact() else {
            return Vec::new();
        };
        let id = contact.id;
        self.popup = match ApiKey::generate_from(self.keys.as_mut()) {
            Ok(key) => Some(Popup::NewKey { contact, key }),
            Err(e) => Some(error_popup("No key was made", e.to_string())),
        };
        // The confirm popup names the contact's roles: what the key will be able to do.
        vec![Cmd::LoadRoles { id }]
    }

    fn open_revoke(&mut self) -> Vec<Cmd> {
        let Some(contact) = self.writable_contact() else {
            return Vec::new();
        };
        if contact.key.is_none() {
            self.notice = Some(("This contact has no key to revoke.".into(), false));
        } else {
            self.popup = Some(Popup::ConfirmRevoke { contact });
        }
        Vec::new()
    }

    fn on_assigned(&mut self, result: Result<AssignDone, String>) -> Vec<Cmd> {
        let working_id = self.working_contact_id();
        match result {
            Ok(AssignDone {
                assigned,
                undo,
                history,
                login_check,
                handover,
            }) => {
                self.set_history(assigned.contact.id, history);
                self.replace_contact(assigned.contact.clone());
                self.undo = Some(undo);
                self.popup = Some(Popup::Shown {
                    contact: assigned.contact,
                    key: assigned.key,
                    copied: false,
                    regenerated: assigned.regenerated,
                    warning: assigned.audit_warning,
                    login_check,
                    handover,
                });
                Vec::new()
            }
            Err(e) => {
                self.popup = Some(error_popup("The key was not assigned", e));
                working_id
                    .map(|id| vec![Cmd::Refresh { id }])
                    .unwrap_or_default()
            }
        }
    }

    fn on_revoked(&mut self, result: Result<RevokeDone, String>) -> Vec<Cmd> {
        let working_id = self.working_contact_id();
        match result {
            Ok(RevokeDone { revoked, undo }) => {
                let name = revoked.contact.display_name.truncated(40);
                let id = revoked.contact.id;
                self.replace_contact(revoked.contact);
                self.undo = undo;
                self.popup = None;
                let mut text = format!("Revoked the key of {name} (id {id}). u: undo");
                if let Some(w) = revoked.audit_warning {
                    text.push_str(&format!(" ({w})"));
                }
                self.notice = Some((text, false));
                Vec::new()
            }
            Err(e) => {
                self.popup = Some(error_popup("The key was not revoked", e));
                working_id
                    .map(|id| vec![Cmd::Refresh { id }])
                    .unwrap_or_default()
            }
        }
    }

    fn on_undone(&mut self, result: Result<Contact, String>) -> Vec<Cmd> {
        let working_id = self.working_contact_id();
        match result {
            Ok(contact) => {
                let text = format!(
                    "Undone: {} (id {}) has its previous key again ({}).",
                    contact.display_name.truncated(40),
                    contact.id,
                    contact
                        .key
                        .as_ref()
                        .map_or_else(|| "none".into(), |k| k.masked())
                );
                self.replace_contact(contact);
                self.popup = None;
                self.notice = Some((text, false));
                working_id
                    .map(|id| vec![Cmd::Refresh { id }])
                    .unwrap_or_default()
            }
            Err(e) => {
                self.popup = Some(error_popup("Nothing was undone", e));
                working_id
                    .map(|id| vec![Cmd::Refresh { id }])
                    .unwrap_or_default()
            }
        }
    }

    fn working_contact_id(&self) -> Option<ContactId> {
        match &self.popup {
            Some(Popup::Working { contact, .. }) => Some(contact.id),
            _ => None,
        }
    }

    fn replace_contact(&mut self, contact: Contact) {
        if let Some(slot) = self.contacts.iter_mut().find(|c| c.id == contact.id) {
            *slot = contact;
        }
    }

    /// Whether Enter in the search box should run a deep search: a name text whose
    /// keystroke answer is shown (ids and emails have nothing deeper to find).
    fn wants_deep(&self) -> bool {
        let query = Query::new(&self.filter, 1);
        matches!(query.matcher(), crate::store::Matcher::Name(_)) && !self.deep_shown
    }

    fn search(&mut self, append: bool) -> Vec<Cmd> {
        let deep = append && self.deep_shown;
        self.search_with(append, deep)
    }

    fn start_deep_search(&mut self) -> Vec<Cmd> {
        let cmds = self.search_with(false, true);
        self.deep_search = Some(DeepSearch {
            seq: self.search_seq,
            text: self.filter.clone(),
            elapsed: std::time::Duration::ZERO,
        });
        cmds
    }

    /// Searches `filter` again and keeps the selected contact selected when the answer
    /// lands (paging to it if need be): a reload never silently moves the selection.
    fn reload_keeping_selection(&mut self) -> Vec<Cmd> {
        let keep = self.selected_contact().map(|c| c.id);
        let cmds = self.search(false);
        if !cmds.is_empty() {
            self.keep_selected = keep;
        }
        cmds
    }

    /// Pages are loading to reach a contact (`G`, or the one kept selected by a reload):
    /// the selection is not yet where it will be.
    pub fn seeking(&self) -> bool {
        self.to_bottom || self.keep_selected.is_some()
    }

    /// Three screens of rows, within [`PAGE_SIZE`]..=[`MAX_PAGE_SIZE`].
    pub fn page_size(&self) -> usize {
        (table_rows_for(self.size.1) * 3).clamp(PAGE_SIZE, MAX_PAGE_SIZE)
    }

    fn search_with(&mut self, append: bool, deep: bool) -> Vec<Cmd> {
        if !matches!(self.store, StoreState::Ready(_)) {
            return Vec::new();
        }
        let mut query = Query::new(&self.filter, self.page_size());
        query.deep = deep;
        if !append {
            self.deep_shown = false;
            self.deep_search = None;
            self.deep_if_empty = false;
            self.keep_selected = None;
            self.to_bottom = false;
        }
        if append {
            let Some(next) = self.next.clone() else {
                return Vec::new();
            };
            query.after = Some(next);
            self.loading_more = true;
        } else {
            self.search_seq += 1;
            self.loading = true;
            self.loading_more = false;
            self.age_filter = None;
        }
        vec![Cmd::Search {
            seq: self.search_seq,
            append,
            query,
        }]
    }

    fn on_searched(&mut self, append: bool, result: Result<Page, String>) -> Vec<Cmd> {
        self.loading = false;
        self.loading_more = false;
        match result {
            Ok(page) => {
                self.search_error = None;
                if append {
                    self.contacts.extend(page.contacts);
                } else {
                    self.contacts = page.contacts;
                    self.selected = 0;
                    self.scroll = 0;
                }
                self.next = page.next;
                if std::mem::take(&mut self.deep_if_empty) && self.contacts.is_empty() {
                    // Enter on a name that matched nothing: a word inside a name, then.
                    return self.start_deep_search();
                }
                let cmds = self.seek();
                self.keep_selection_visible();
                cmds
            }
            Err(e) => {
                self.notice = Some((format!("Search failed: {e}"), true));
                self.search_error = Some(e);
                self.deep_if_empty = false;
                self.keep_selected = None;
                self.to_bottom = false;
                Vec::new()
            }
        }
    }

    /// After a page landed: moves toward the contact being sought (`G`, a kept selection),
    /// asking for the next page while it is not loaded yet.
    fn seek(&mut self) -> Vec<Cmd> {
        if let Some(id) = self.keep_selected {
            if let Some(i) = self.contacts.iter().position(|c| c.id == id) {
                self.selected = i;
                self.keep_selected = None;
            } else if self.next.is_some() && self.contacts.len() < KEEP_SELECTED_ROWS {
                return self.search(true);
            } else {
                self.keep_selected = None;
                if !self.contacts.is_empty() {
                    let why = if self.next.is_some() {
                        format!("not among the first {KEEP_SELECTED_ROWS}")
                    } else {
                        "not in this list".to_string()
                    };
                    self.notice = Some((
                        format!("Contact {id} is {why}: the selection is on the first row."),
                        false,
                    ));
                }
            }
        }
        if self.to_bottom {
            self.selected = self.contacts.len().saturating_sub(1);
            if self.next.is_some() {
                return self.search(true);
            }
            self.to_bottom = false;
        }
        Vec::new()
    }

    fn move_selection(&mut self, delta: isize) -> Vec<Cmd> {
        // A move of the operator's own ends a walk to a contact (`G`, a kept selection).
        self.to_bottom = false;
        self.keep_selected = None;
        if self.contacts.is_empty() {
            return Vec::new();
        }
        let last = self.contacts.len() - 1;
        self.selected = self.selected.saturating_add_signed(delta).min(last);
        self.keep_selection_visible();
        // Fetch the next page before the operator reaches the end of what is loaded.
        let near_end = self.selected + self.table_rows() >= self.contacts.len();
        if near_end && self.next.is_some() && !self.loading_more && !self.loading {
            return self.search(true);
        }
        Vec::new()
    }

    fn keep_selection_visible(&mut self) {
        let rows = self.table_rows();
        if self.selected < self.scroll {
            self.scroll = self.selected;
        } else if self.selected >= self.scroll + rows {
            self.scroll = self.selected + 1 - rows;
        }
    }
}

/// "Grace Hopper (id 103)": whom a change is for, in notices (short: they fit 80 columns).
fn contact_label(contact: &Contact) -> String {
    format!("{} (id {})", contact.display_name.truncated(16), contact.id)
}

fn error_popup(title: &'static str, text: String) -> Popup {
    Popup::Message {
        title,
        text,
        is_error: true,
    }
}

/// The popups where `?` opens the help over them: every one that waits for a key, not
/// those that only show progress (they close by themselves) nor text fields (`?` is text).
pub fn mode_takes_help(mode: Mode) -> bool {
    matches!(
        mode,
        Mode::NewKey
            | Mode::Confirm
            | Mode::Shown
            | Mode::ConfirmRevoke
            | Mode::ConfirmUndo
            | Mode::ConfirmBulk
            | Mode::Audit
            | Mode::BulkResults
            | Mode::Health
            | Mode::ConfirmBulkRevoke
            | Mode::Profiles
    )
}

#[cfg(test)]
mod tests;
