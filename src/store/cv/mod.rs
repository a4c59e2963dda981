//! The `cv` store: CiviCRM's own command line, run on the site's host.
//!
//! Every call is `cv api4 Contact.get|update --in=json --out=json --cwd SITE` with its
//! parameters as JSON on stdin, so no key and no search text ever reaches argv (visible in
//! `ps` and in shell history). `cv api4` runs without permission checks, so `api_key` is
//! readable and writable; the queries are the API v4 ones the REST store sends.
//!
//! A profile's `cv_user` makes cv act as that CMS user with CiviCRM's own permission checks
//! on: `--user=NAME` (one argument, so no name can pass for another option) before `api4`,
//! and `"checkPermissions": true` in the params on stdin (`--user` alone leaves the checks
//! off: recorded cv/20 and 21); through `cv pipe`, a login as that user. The user then
//! needs `edit api keys` (or `administer CiviCRM`) to read keys, and the right to edit the
//! contacts to write them; a refusal is a clear error naming the user, never an empty
//! answer taken for "no key".
//!
//! cv is a PHP program: it may print warnings before its JSON, hang on a dead database, or
//! print far too much. Its output is read concurrently and capped, every call has a
//! deadline after which cv (and anything it started) is killed and reaped, and a write
//! that did not answer cleanly is reported as "outcome unknown", never as "nothing
//! happened".

//!
//! What it shares with the REST store (clauses, rows, the key steps, users and roles) is in
//! `store/api4/`; here: running cv once (`process.rs`) or through its pipe
//! session (`pipe.rs`), the params and rows on the wire (`wire.rs`), what a failure
//! means (`errors.rs`) and the searches (`search.rs`).

mod errors;
mod options;
mod pipe;
mod process;
mod search;
mod wire;

pub use options::CvOptions;

use std::collections::HashMap;
use std::fs;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::de::{DeserializeOwned, IgnoredAny};
use zeroize::Zeroizing;

use crate::key::{ApiKey, KEY_LEN};
use crate::sanitize::SafeText;
use crate::store::api4::clause::{any_deleted, by_id, by_ids, GetParams, UpdateParams};
use crate::store::api4::{self, users, Api4, IfThere};
use crate::store::{
    Contact, ContactId, ContactStore, KeySwap, Page, Query, Standing, StoreError, StoreInfo,
    StoreKind,
};
use errors::{redact, FailKind, Failure};
use pipe::{PipeError, PipeSession};
use wire::parse_rows;

pub struct CvStore {
    site: PathBuf,
    binary: PathBuf,
    /// The profile's `cv_user`; None: no login, no permission checks.
    user: Option<String>,
    timeout: Duration,
    /// The `cv pipe` sessions calls go through when this cv has one: the first for every
    /// call, the second, started when two calls run at once (a whole read's windows side
    /// by side, [`Api4::side_by_side`]), for the call that finds the first busy.
    pipes: [Mutex<Pipe>; 2],
    /// Whether the `cv_user` may see every user (`users::seen`), once asked.
    users_seen: std::sync::OnceLock<users::Seen>,
}

/// The store's `cv pipe` session (see [`pipe`]).
enum Pipe {
    /// Not running: the next call starts one (first call, or after it died or timed out).
    Closed,
    Open(PipeSession),
    /// This cv has no usable pipe: every call is its own `cv api4`.
    Unavailable,
    /// CiviCRM refused to log the session in as the `cv_user` (its message): every call
    /// fails with it, none runs anonymously or through `cv api4`.
    LoginRefused(String),
}

impl CvStore {
    /// Checks the site folder exists; cv itself is first run by the first call.
    pub fn new(opts: &CvOptions) -> Result<Self, StoreError> {
        // Absolute, so a folder named like an option cannot be taken for one by cv.
        let site = std::path::absolute(&opts.site_path).map_err(|e| {
            StoreError::invalid(format!("cv site folder {}: {e}", opts.site_path.display()))
        })?;
        match fs::metadata(&site) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(StoreError::invalid(format!(
                    "cv site folder {} is not a folder; give the CiviCRM site's folder (cv:/var/www/site)",
                    site.display()
                )))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(StoreError::invalid(format!(
                    "cv site folder {} does not exist; give the CiviCRM site's folder (cv:/var/www/site)",
                    site.display()
                )))
            }
            Err(e) => {
                return Err(StoreError::invalid(format!(
                    "cannot read cv site folder {}: {e}",
                    site.display()
                )))
            }
        }
        if opts.cv_binary.as_os_str().is_empty() {
            return Err(StoreError::invalid(
                "cv_binary is empty; name the cv program or leave it out",
            ));
        }
        if opts.cv_user.as_deref().is_some_and(str::is_empty) {
            return Err(StoreError::invalid(
                "cv_user is empty; name the CMS user cv acts as or leave it out",
            ));
        }
        Ok(CvStore {
            site,
            binary: opts.cv_binary.clone(),
            user: opts.cv_user.clone(),
            timeout: opts.timeout,
            pipes: [Mutex::new(Pipe::Closed), Mutex::new(Pipe::Closed)],
            users_seen: std::sync::OnceLock::new(),
        })
    }

    /// Runs the call through the store's `cv pipe` session (starting it when none runs);
    /// None when this cv has no usable pipe, for the caller to run `cv api4` instead.
    fn call_pipe(
        &self,
        action: Action,
        payload: &[u8],
        secrets: &[&ApiKey],
    ) -> Option<Result<Zeroizing<Vec<u8>>, Failure>> {
        let mut pipe = self.free_pipe()?;
        let deadline = Instant::now() + self.timeout;
        if let Pipe::Open(session) = &mut *pipe {
            if !session.alive() {
                *pipe = Pipe::Closed;
            }
        }
        if matches!(*pipe, Pipe::Closed) {
            match PipeSession::start(&self.binary, &self.site, self.user.as_deref(), deadline) {
                Ok(session) => *pipe = Pipe::Open(session),
                Err(PipeError::Unavailable(_)) => {
                    *pipe = Pipe::Unavailable;
                    return None;
                }
                // The request was never sent: nothing happened, whatever the call.
                Err(PipeError::Timeout(why)) => {
                    return Some(Err(Failure::Untouched(StoreError::Timeout(SafeText::new(
                        &why,
                    )))))
                }
                Err(PipeError::Died(why) | PipeError::Api(why)) => {
                    return Some(Err(Failure::Untouched(StoreError::unreachable(redact(
                        &why, secrets,
                    )))))
                }
                Err(PipeError::LoginRefused(why)) => *pipe = Pipe::LoginRefused(why),
            }
        }
        if let Pipe::LoginRefused(why) = &*pipe {
            return Some(Err(Failure::Untouched(self.login_refused(why))));
        }
        let Pipe::Open(session) = &mut *pipe else {
            return None;
        };
        let mut answer = session.api4(action.entity(), action.verb(), payload, deadline);
        let is_read = !matches!(action, Action::Update);
        if let (true, Err(PipeError::Died(_))) = (is_read, &answer) {
            // A read may run again: once, on a new session (a write never is: it may have
            // been applied).
            answer = PipeSession::start(&self.binary, &self.site, self.user.as_deref(), deadline)
                .and_then(|mut s| {
                    let again = s.api4(action.entity(), action.verb(), payload, deadline);
                    *pipe = Pipe::Open(s);
                    again
                });
        }
        Some(answer.map_err(|e| {
            let (kind, why) = match e {
                // The API refused the call; the session goes on.
                PipeError::Api(why) => match self.refusal(action, &why, secrets) {
                    Some(refused) => return Failure::Untouched(refused),
                    None => (FailKind::Exit, format!("cv pipe: {why}")),
                },
                PipeError::Timeout(why) => {
                    *pipe = Pipe::Closed;
                    (FailKind::Timeout, why)
                }
                PipeError::Died(why) | PipeError::Unavailable(why) => {
                    // The next call starts a new session.
                    *pipe = Pipe::Closed;
                    (FailKind::Exit, why)
                }
                // Only the read's second session logs in here: the read never ran.
                PipeError::LoginRefused(why) => {
                    let refused = self.login_refused(&why);
                    *pipe = Pipe::LoginRefused(why);
                    return Failure::Untouched(refused);
                }
            };
            Failure::ran(kind, redact(&why, secrets))
        }))
    }

    /// The first session that no call is using, else the first once free (None: a call
    /// panicked while holding it).
    fn free_pipe(&self) -> Option<std::sync::MutexGuard<'_, Pipe>> {
        for pipe in &self.pipes {
            match pipe.try_lock() {
                Ok(free) => return Some(free),
                Err(std::sync::TryLockError::WouldBlock) => {}
                Err(std::sync::TryLockError::Poisoned(_)) => return None,
            }
        }
        self.pipes[0].lock().ok()
    }

    /// Whether calls go through a `cv pipe` session (starting one if none runs yet).
    pub(super) fn pipe_open(&self) -> bool {
        let Ok(mut pipe) = self.pipes[0].lock() else {
            return false;
        };
        if let Pipe::Open(session) = &mut *pipe {
            if session.alive() {
                return true;
            }
            *pipe = Pipe::Closed;
        }
        if matches!(*pipe, Pipe::Closed) {
            let deadline = Instant::now() + self.timeout;
            match PipeSession::start(&self.binary, &self.site, self.user.as_deref(), deadline) {
                Ok(session) => *pipe = Pipe::Open(session),
                Err(PipeError::Unavailable(_)) => *pipe = Pipe::Unavailable,
                // Every call reports it from now on.
                Err(PipeError::LoginRefused(why)) => *pipe = Pipe::LoginRefused(why),
                // Started later by the call itself, which reports the failure.
                Err(_) => return false,
            }
        }
        matches!(*pipe, Pipe::Open(_))
    }
}

impl ContactStore for CvStore {
    fn info(&self) -> StoreInfo {
        StoreInfo {
            kind: StoreKind::Cv,
            location: SafeText::new(&format!("cv:{}", self.site.display())),
            key_capacity: KEY_LEN,
            // MySQL's _ci collations: `api_key = X` matches any case of X.
            keys_case_insensitive: true,
            writable: true,
        }
    }

    fn search(&mut self, query: &Query) -> Result<Page, StoreError> {
        self.search_page(query)
    }

    fn contact(&mut self, id: ContactId) -> Result<Contact, StoreError> {
        let mut found = self.contacts_where(vec![by_id(id), any_deleted()])?;
        match (found.pop(), found.is_empty()) {
            (None, _) => Err(StoreError::NotFound(id)),
            (Some(c), true) if c.id == id => Ok(c),
            _ => Err(StoreError::bad_data(format!(
                "cv answered a lookup of contact {id} with other or several contacts"
            ))),
        }
    }

    /// Through User.get and Role.get on a Standalone site; elsewhere the CMS holds users
    /// and roles and this store cannot tell.
    fn standings(&mut self, ids: &[ContactId]) -> Result<HashMap<ContactId, Standing>, StoreError> {
        Ok(users::users(self, ids)?
            .unwrap_or_else(|| ids.iter().map(|&id| (id, Standing::UNKNOWN)).collect()))
    }

    /// A page of ids per call, CMS links joined.
    fn contacts(&mut self, ids: &[ContactId]) -> Result<Vec<Contact>, StoreError> {
        api4::contacts_in_order(ids, |chunk| {
            self.contacts_where(vec![by_ids(chunk), any_deleted()])
        })
    }

    api4::key_steps!();
}

impl Api4 for CvStore {
    fn who(&self) -> &'static str {
        "cv"
    }

    fn get<T: DeserializeOwned>(
        &self,
        entity: &'static str,
        params: &GetParams<'_>,
        secrets: &[&ApiKey],
    ) -> Result<Vec<T>, StoreError> {
        self.call(Action::get(entity), params, secrets)
            .and_then(|out| parse_rows(&out, secrets))
            .map_err(Failure::for_read)
    }

    /// A site without the entity (not Standalone): cv exits 1 with "API (User, get) does
    /// not exist".
    fn get_if_there<T: DeserializeOwned>(
        &self,
        entity: &'static str,
        params: &GetParams<'_>,
    ) -> Result<IfThere<T>, StoreError> {
        match self
            .call(Action::get(entity), params, &[])
            .and_then(|out| parse_rows(&out, &[]))
        {
            Ok(rows) => Ok(IfThere::Rows(rows)),
            Err(Failure::Ran {
                kind: FailKind::Exit,
                message,
            }) if message.contains("does not exist") => Ok(IfThere::Absent),
            // A cv_user without 'cms:administer users' ('Authorization failed').
            Err(Failure::Untouched(StoreError::PermissionDenied(_))) => Ok(IfThere::Refused),
            Err(e) => Err(e.for_read()),
        }
    }

    fn users_seen(&self) -> &std::sync::OnceLock<users::Seen> {
        &self.users_seen
    }

    fn keys_hidden(&self) -> StoreError {
        self.missing_api_key()
    }

    /// Two windows at once, each through a `cv pipe` session of its own (the second
    /// started by the first call that finds the first session busy).
    fn side_by_side(&self) -> usize {
        2
    }

    fn update(&self, swap: &KeySwap<'_>) -> Result<u64, StoreError> {
        let params = UpdateParams::swap(swap.id, swap.expected, swap.new);
        let secrets: Vec<&ApiKey> = swap.expected.into_iter().chain(swap.new).collect();
        self.call(Action::Update, &params, &secrets)
            .and_then(|out| parse_rows::<IgnoredAny>(&out, &secrets))
            .map(|rows| rows.len() as u64)
            .map_err(Failure::for_write)
    }
}

/// What a cv call does: the entity and action, in `cv api4`'s and `cv pipe`'s words.
#[derive(Clone, Copy)]
enum Action {
    Get,
    Update,
    /// Standalone's users and roles, for [`ContactStore::standing`].
    UserGet,
    RoleGet,
}

impl Action {
    /// The `get` of `entity` (Contact, User, Role).
    fn get(entity: &str) -> Action {
        match entity {
            "User" => Action::UserGet,
            "Role" => Action::RoleGet,
            _ => Action::Get,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Action::Get => "Contact.get",
            Action::Update => "Contact.update",
            Action::UserGet => "User.get",
            Action::RoleGet => "Role.get",
        }
    }

    /// The entity, as `cv pipe`'s api4 method takes it.
    fn entity(self) -> &'static str {
        match self {
            Action::Get | Action::Update => "Contact",
            Action::UserGet => "User",
            Action::RoleGet => "Role",
        }
    }

    /// The action alone, as `cv pipe`'s api4 method takes it.
    fn verb(self) -> &'static str {
        match self {
            Action::Get | Action::UserGet | Action::RoleGet => "get",
            Action::Update => "update",
        }
    }
}
