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

mod options;
mod pipe;

pub use options::CvOptions;

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::{Zeroize, Zeroizing};

use crate::key::{ApiKey, KeyHint, KEY_LEN};
use crate::sanitize::SafeText;
use crate::store::{
    AccountState, CmsLink, Contact, ContactId, ContactStore, Cursor, Holder, HolderCursor,
    HolderPage, KeySwap, Matcher, Page, Query, Role, Standing, StoreError, StoreInfo, StoreKind,
    UserAccount,
};
use pipe::{PipeError, PipeSession};

/// The most stdout civikey reads from one cv call: a page of contacts is a few KiB, so
/// anything near this is a runaway program, not an answer.
const MAX_STDOUT: usize = 16 * 1024 * 1024;
/// The most stderr kept: enough for any PHP error, bounded against a chatty cv.
const MAX_STDERR: usize = 1024 * 1024;
/// How much of cv's stderr goes into an error message.
const SHOWN_STDERR: usize = 1500;
/// How many lines that look like the start of JSON are tried when cv printed warnings
/// first: bounds the work on hostile output.
const MAX_JSON_CANDIDATES: usize = 50;
/// The most rows one page fetches while looking for the end of one contact's rows.
const MAX_FETCH: usize = 4096;
/// The fields a contact list needs; `api_key` is turned into a [`KeyHint`] as it is read.
const CONTACT_FIELDS: &[&str] = &[
    "id",
    "display_name",
    "sort_name",
    "contact_type",
    "is_deleted",
    "email_primary.email",
    "api_key",
    "uf_match.uf_id",
];
const KEY_FIELDS: &[&str] = &["id", "api_key"];

/// The CMS user link. A contact has at most one per domain, so this may repeat a contact
/// on multi-domain sites; [`merge_rows`] folds the repeats.
const UF_JOIN: Join = (
    "UFMatch AS uf_match",
    "LEFT",
    ["uf_match.contact_id", "=", "id"],
);
/// Every email of the contact (not only the primary one), for email searches. A contact
/// with several matching emails comes back once per email; [`merge_rows`] folds them.
const EMAIL_JOIN: Join = ("Email AS email", "INNER", ["email.contact_id", "=", "id"]);

/// API v4 hides trashed contacts unless the where clause names `is_deleted`; this
/// matches both, for the calls that must see every contact.
const ANY_DELETED: &[u64] = &[0, 1];

/// An API v4 explicit join: `[entity AS alias, type, [on-condition]]`.
type Join = (&'static str, &'static str, [&'static str; 3]);

/// What authx says when `--user` names no user of the site (recorded cv/23).
const UNKNOWN_PRINCIPAL: &str = "Must specify principal with valid user, userId, or contactId";

/// A call's params with `"checkPermissions": true` added when the store acts as a
/// `cv_user` (serialized in place: no copy of a key is made).
#[derive(Serialize)]
struct Checked<'a, T: Serialize> {
    #[serde(flatten)]
    params: &'a T,
    #[serde(rename = "checkPermissions", skip_serializing_if = "Option::is_none")]
    check_permissions: Option<bool>,
}

pub struct CvStore {
    site: PathBuf,
    binary: PathBuf,
    /// The profile's `cv_user`; None: no login, no permission checks.
    user: Option<String>,
    timeout: Duration,
    /// The `cv pipe` session every call goes through when this cv has one.
    pipe: Mutex<Pipe>,
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
            pipe: Mutex::new(Pipe::Closed),
        })
    }

    /// Runs one `Contact.get` and reads its rows.
    fn get<T: DeserializeOwned>(
        &self,
        params: &GetParams<'_>,
        secrets: &[&ApiKey],
    ) -> Result<Vec<T>, StoreError> {
        self.call(Action::Get, params, secrets)
            .and_then(|out| parse_rows(&out, secrets))
            .map_err(Failure::for_read)
    }

    /// Contact rows (`api_key` selected): rows without it would list every contact as
    /// keyless, so they are refused.
    fn contact_rows(
        &self,
        params: &GetParams<'_>,
        secrets: &[&ApiKey],
    ) -> Result<Vec<ContactRow>, StoreError> {
        let rows: Vec<ContactRow> = self.get(params, secrets)?;
        if rows.iter().any(|row| row.api_key.is_none()) {
            return Err(self.missing_api_key());
        }
        Ok(rows)
    }

    /// Runs one `Contact.update` and returns how many contacts it changed.
    fn update(&self, params: &UpdateParams<'_>, secrets: &[&ApiKey]) -> Result<usize, StoreError> {
        self.call(Action::Update, params, secrets)
            .and_then(|out| parse_rows::<IgnoredAny>(&out, secrets))
            .map(|rows| rows.len())
            .map_err(Failure::for_write)
    }

    /// Runs the call through the store's `cv pipe` session (starting it when none runs);
    /// None when this cv has no usable pipe, for the caller to run `cv api4` instead.
    fn call_pipe(
        &self,
        action: Action,
        payload: &[u8],
        secrets: &[&ApiKey],
    ) -> Option<Result<Zeroizing<Vec<u8>>, Failure>> {
        let mut pipe = self.pipe.lock().ok()?;
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

    /// Rows without `api_key`: CiviCRM hid it. Acting as a `cv_user`, that user lacks the
    /// permission to read keys; otherwise an extension hides it.
    fn missing_api_key(&self) -> StoreError {
        match &self.user {
            Some(user) => StoreError::PermissionDenied(SafeText::new(&format!(
                "cv_user \"{user}\" may not read API keys: its role needs the CiviCRM permission 'edit api keys' (or 'administer CiviCRM')"
            ))),
            None => StoreError::bad_data(
                "cv did not return api_key (a permission or extension hides it); civikey cannot tell who holds which key",
            ),
        }
    }

    /// The error of a login CiviCRM refused: the `cv_user` and CiviCRM's message.
    fn login_refused(&self, why: &str) -> StoreError {
        StoreError::PermissionDenied(SafeText::new(&format!(
            "cv could not log in as cv_user \"{}\": {}; the profile's cv_user must be a CMS user of this site",
            self.user.as_deref().unwrap_or_default(),
            redact(why, &[])
        )))
    }

    /// A call CiviCRM's permission checks refused (the API's own message, from cv's stderr
    /// or the pipe's error): refused before anything was written (recorded cv/22 and 30:
    /// the contact unchanged), so a refused write is "permission denied", not "outcome
    /// unknown". None for any other error.
    fn refusal(&self, action: Action, message: &str, secrets: &[&ApiKey]) -> Option<StoreError> {
        let message = redact(message.trim(), secrets);
        if self.user.is_some() && message.contains(UNKNOWN_PRINCIPAL) {
            return Some(self.login_refused(&message));
        }
        let refused = message == "ACL check failed"
            || message == "Authorization failed"
            || message.starts_with("Permission denied");
        if !refused {
            return None;
        }
        let who = match &self.user {
            Some(user) => format!(" for cv_user \"{user}\""),
            None => String::new(),
        };
        let text = if matches!(action, Action::Update) {
            format!(
                "CiviCRM refused the key change{who}: {message}; nothing was written (changing keys takes 'edit all contacts' (or an ACL that lets it edit the contact) and 'edit api keys', or 'administer CiviCRM')"
            )
        } else {
            format!("CiviCRM refused the {}{who}: {message}", action.name())
        };
        Some(StoreError::PermissionDenied(SafeText::new(&text)))
    }

    /// Runs cv once: params on stdin, stdout and stderr read concurrently and capped, the
    /// whole process group killed and reaped at the deadline.
    fn call(
        &self,
        action: Action,
        params: &impl Serialize,
        secrets: &[&ApiKey],
    ) -> Result<Zeroizing<Vec<u8>>, Failure> {
        // Sized up front so serializing never reallocates (and leaves key copies behind).
        let mut payload = Zeroizing::new(Vec::with_capacity(8192));
        let checked = Checked {
            params,
            check_permissions: self.user.is_some().then_some(true),
        };
        serde_json::to_writer(&mut *payload, &checked).map_err(|e| {
            Failure::Untouched(StoreError::invalid(format!(
                "cannot encode the cv request: {e}"
            )))
        })?;
        if let Some(answer) = self.call_pipe(action, &payload, secrets) {
            return answer;
        }

        let mut command = Command::new(&self.binary);
        crate::child_env::minimal(&mut command, crate::child_env::CV);
        if let Some(user) = &self.user {
            // One argument: a name cv cannot take for another option, whatever it holds.
            command.arg(format!("--user={user}"));
        }
        // All three streams piped: nothing cv prints reaches the terminal unsanitized.
        #[allow(clippy::disallowed_methods)]
        let mut child = command
            .args(["api4", action.name(), "--in=json", "--out=json", "--cwd"])
            .arg(&self.site)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a timeout kills cv and whatever it started, and the
            // operator's Ctrl-C does not cut a write in half behind civikey's back.
            .process_group(0)
            .spawn()
            .map_err(|e| Failure::Untouched(self.spawn_error(&e)))?;

        let deadline = Instant::now() + self.timeout;
        let stdout = child.stdout.take().map(|s| spawn_reader(s, MAX_STDOUT));
        let stderr = child.stderr.take().map(|s| spawn_reader(s, MAX_STDERR));
        if let Some(mut stdin) = child.stdin.take() {
            // A thread, so a cv that never reads stdin cannot block civikey; a write error
            // (cv exited without reading) is explained by cv's exit status instead.
            thread::spawn(move || {
                let _ = stdin.write_all(&payload);
            });
        }

        let status = wait_until(&mut child, deadline).inspect_err(|_| kill_group(&mut child))?;
        let (Some(stdout), Some(stderr)) = (stdout, stderr) else {
            return Err(Failure::ran(
                FailKind::Exit,
                "cv's output could not be read",
            ));
        };
        let (out, err) = match (collect(&stdout, deadline), collect(&stderr, deadline)) {
            (Some(out), Some(err)) => (out, err),
            _ => {
                // cv exited but something it started still holds its output open. cv is
                // reaped, so its group id may already name someone else's processes: they
                // are left alone, and the readers end when the pipes close.
                return Err(Failure::ran(
                    FailKind::Timeout,
                    format!(
                        "cv exited but its output stayed open past {} s",
                        self.timeout.as_secs_f32()
                    ),
                ));
            }
        };
        if !status.success() {
            let said = shown_stderr(&err.bytes, secrets);
            if let Some(refused) = self.refusal(action, &said, secrets) {
                return Err(Failure::Untouched(refused));
            }
            return Err(Failure::ran(FailKind::Exit, exit_message(status, &said)));
        }
        if out.overflowed {
            return Err(Failure::ran(
                FailKind::Output,
                format!(
                    "cv printed more than {} MiB; refused",
                    MAX_STDOUT / (1024 * 1024)
                ),
            ));
        }
        Ok(out.bytes)
    }

    fn spawn_error(&self, e: &std::io::Error) -> StoreError {
        let shown = self.binary.display();
        match e.kind() {
            ErrorKind::NotFound => StoreError::invalid(format!(
                "cv not found: install cv or set cv_binary in the profile (looked for `{shown}`; a script's interpreter must exist too)"
            )),
            ErrorKind::PermissionDenied => StoreError::invalid(format!(
                "cannot run `{shown}`: permission denied; make it executable or set cv_binary in the profile"
            )),
            _ => StoreError::invalid(format!("cannot run `{shown}`: {e}")),
        }
    }

    /// The contact rows for `where_`, with the CMS link, folded one per contact.
    fn contacts_where(
        &self,
        where_: Vec<Clause<'_>>,
        secrets: &[&ApiKey],
    ) -> Result<Vec<Contact>, StoreError> {
        let params = GetParams {
            select: CONTACT_FIELDS,
            join: vec![UF_JOIN],
            where_,
            order_by: None,
            limit: None,
            offset: None,
        };
        let rows = self.contact_rows(&params, secrets)?;
        Ok(merge_rows(rows)
            .into_iter()
            .map(|(contact, _)| contact)
            .collect())
    }

    /// Whether calls go through a `cv pipe` session (starting one if none runs yet).
    fn pipe_open(&self) -> bool {
        let Ok(mut pipe) = self.pipe.lock() else {
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

    /// A keystroke name search as the REST store runs it (`RestStore::search_by_prefixes`):
    /// one Contact.get per prefix (ids, one page past the cursor in list order), then the
    /// page from the union of their ids, in the site's order, with the CMS link. Keyset
    /// paging on (sort_name, id).
    fn search_by_prefixes(
        &self,
        text: &str,
        query: &Query,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let fetch = limit + 1;
        let mut common = vec![if query.include_deleted {
            Clause::Cmp("is_deleted", "IN", Val::Ints(ANY_DELETED))
        } else {
            Clause::Cmp("is_deleted", "=", Val::Int(0))
        }];
        match &query.after {
            None => {}
            Some(Cursor::After { sort_name, id }) => common.push(Clause::Or(vec![
                Clause::Cmp("sort_name", ">", Val::Text(sort_name.clone())),
                Clause::And(vec![
                    Clause::Cmp("sort_name", "=", Val::Text(sort_name.clone())),
                    Clause::Cmp("id", ">", Val::Int(*id)),
                ]),
            ])),
            Some(Cursor::Offset(_)) => {
                return Err(StoreError::invalid(
                    "a name search through cv pipe pages by key, not by offset",
                ))
            }
        }
        let mut ids = std::collections::BTreeSet::new();
        for (branch, reading) in name_branches(text) {
            let mut where_ = vec![branch.clone()];
            where_.extend(common.iter().cloned());
            if reading == Reading::Walk {
                let params = GetParams {
                    select: &["id"],
                    join: Vec::new(),
                    where_,
                    order_by: Some(SortOrder {
                        sort_name: Some("ASC"),
                        id: "ASC",
                    }),
                    limit: Some(fetch as u64),
                    offset: None,
                };
                let rows: Vec<KeyRow> = self.get(&params, &[])?;
                ids.extend(rows.into_iter().map(|r| r.id));
                continue;
            }
            // Reading::Sort: sort name ascending, id descending, which no index of
            // civicrm_contact serves, so MariaDB reads the branch's own index range and
            // sorts it instead of walking the sort-name index from the start (`car`: 40 ms
            // instead of 240-400 ms at 1M, where first names that start so sort late).
            // Every contact before the last row's sort name is here; of that sort name's
            // contacts maybe not the lowest ids, so they come from one more call (an
            // equality on the sort-name index). Together: a superset of the branch's first
            // `fetch` rows in (sort_name, id) order, which is all the page needs.
            let params = GetParams {
                select: &["id", "sort_name"],
                join: Vec::new(),
                where_,
                order_by: Some(SortOrder {
                    sort_name: Some("ASC"),
                    id: "DESC",
                }),
                limit: Some(fetch as u64),
                offset: None,
            };
            let mut rows: Vec<SortRow> = self.get(&params, &[])?;
            let boundary = match rows.last() {
                Some(last) if rows.len() == fetch => Some(last.sort_name.clone()),
                _ => None,
            };
            if let Some(name) = &boundary {
                // The rows of the last sort name (those spelt the same: the others are
                // kept, which is harmless) come from the boundary call instead.
                while rows.last().is_some_and(|r| &r.sort_name == name) {
                    rows.pop();
                }
            }
            ids.extend(rows.into_iter().map(|r| r.id));
            let boundary = boundary.map(|name| match name {
                Some(name) => Clause::Cmp("sort_name", "=", Val::Text(name)),
                None => Clause::IsNull("sort_name"),
            });
            if let Some(boundary) = boundary {
                let mut where_ = vec![branch, boundary];
                where_.extend(common.iter().cloned());
                let params = GetParams {
                    select: &["id"],
                    join: Vec::new(),
                    where_,
                    order_by: Some(SortOrder {
                        sort_name: None,
                        id: "ASC",
                    }),
                    limit: Some(fetch as u64),
                    offset: None,
                };
                let rows: Vec<KeyRow> = self.get(&params, &[])?;
                ids.extend(rows.into_iter().map(|r| r.id));
            }
        }
        if ids.is_empty() {
            return Ok(Page::default());
        }
        let mut where_ = vec![Clause::Cmp(
            "id",
            "IN",
            Val::IntList(ids.into_iter().collect()),
        )];
        where_.extend(common);
        let params = GetParams {
            select: CONTACT_FIELDS,
            join: vec![UF_JOIN],
            where_,
            order_by: Some(SortOrder {
                sort_name: Some("ASC"),
                id: "ASC",
            }),
            limit: None,
            offset: None,
        };
        let rows = self.contact_rows(&params, &[])?;
        let sort_names: std::collections::HashMap<ContactId, String> = rows
            .iter()
            .map(|r| (r.id, r.sort_name.clone().unwrap_or_default()))
            .collect();
        let mut contacts: Vec<Contact> = merge_rows(rows).into_iter().map(|(c, _)| c).collect();
        let more = contacts.len() > limit;
        contacts.truncate(limit);
        let next = match contacts.last() {
            Some(last) if more => Some(Cursor::After {
                sort_name: sort_names.get(&last.id).cloned().unwrap_or_default(),
                id: last.id,
            }),
            _ => None,
        };
        Ok(Page { contacts, next })
    }

    /// The CMS links of a search page's contacts, in one call on their ids.
    fn add_cms_links(&self, contacts: &mut [Contact]) -> Result<(), StoreError> {
        if contacts.is_empty() {
            return Ok(());
        }
        let ids = contacts.iter().map(|c| c.id).collect();
        let linked = self.contacts_where(
            vec![
                Clause::Cmp("id", "IN", Val::IntList(ids)),
                Clause::Cmp("is_deleted", "IN", Val::Ints(ANY_DELETED)),
            ],
            &[],
        )?;
        for contact in contacts {
            contact.cms = linked
                .iter()
                .find(|l| l.id == contact.id)
                .map_or(CmsLink::None, |l| l.cms);
        }
        Ok(())
    }

    /// The exact key stored for `id` (byte for byte, as cv returns it).
    fn current_key(&self, id: ContactId) -> Result<Option<ApiKey>, StoreError> {
        let params = GetParams {
            select: KEY_FIELDS,
            join: Vec::new(),
            where_: vec![
                Clause::Cmp("id", "=", Val::Int(id)),
                Clause::Cmp("is_deleted", "IN", Val::Ints(ANY_DELETED)),
            ],
            order_by: None,
            limit: Some(2),
            offset: None,
        };
        let rows: Vec<KeyRow> = self.get(&params, &[])?;
        let mut rows = rows.into_iter();
        let row = rows.next().ok_or(StoreError::NotFound(id))?;
        if row.id != id || rows.next().is_some() {
            return Err(StoreError::bad_data(format!(
                "cv answered a lookup of contact {id} with other or several contacts"
            )));
        }
        match row.api_key {
            None => Err(self.missing_api_key()),
            Some(key) => Ok(key.filter(|k| !k.is_empty())),
        }
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
        let limit = query.limit.clamp(1, 1000);
        if let (Matcher::Name(text), false) = (query.matcher(), query.deep) {
            // Through the pipe each call costs milliseconds: one call per prefix (each an
            // index range) beats the one OR. A page that started that way goes on so.
            if matches!(query.after, Some(Cursor::After { .. })) || self.pipe_open() {
                return self.search_by_prefixes(text, query, limit);
            }
        }
        let offset = match &query.after {
            None => 0,
            Some(Cursor::Offset(n)) => *n,
            Some(Cursor::After { .. }) => {
                return Err(StoreError::invalid(
                    "the cv store pages by offset, not by key",
                ))
            }
        };
        // No UFMatch join in a search (it turns CiviCRM's plan into an index merge and a
        // filesort: 0.5 s at 1M contacts); the page's CMS links come from one more call.
        let mut join = Vec::new();
        let mut where_ = Vec::new();
        match query.matcher() {
            Matcher::All => {}
            Matcher::Id(id) => where_.push(Clause::Cmp("id", "=", Val::Int(id))),
            Matcher::EmailPrefix(text) => {
                join.push(EMAIL_JOIN);
                where_.push(Clause::Cmp(
                    "email.email",
                    "LIKE",
                    Val::Text(crate::store::like_prefix(text, '\\')),
                ));
            }
            Matcher::Name(text) => where_.push(name_where(text, query.deep)),
        }
        where_.push(if query.include_deleted {
            Clause::Cmp("is_deleted", "IN", Val::Ints(ANY_DELETED))
        } else {
            Clause::Cmp("is_deleted", "=", Val::Int(0))
        });
        // One more row than the page, to know whether there is more.
        let mut fetch = limit + 1;
        loop {
            let params = GetParams {
                select: &CONTACT_FIELDS[..CONTACT_FIELDS.len() - 1],
                join: join.clone(),
                where_: where_.clone(),
                order_by: Some(SortOrder {
                    sort_name: Some("ASC"),
                    id: "ASC",
                }),
                limit: Some(fetch as u64),
                offset: Some(offset),
            };
            let rows = self.contact_rows(&params, &[])?;
            // Fewer rows than asked for: everything from `offset` on is here.
            let complete = rows.len() < fetch;
            let mut groups = merge_rows(rows);
            if !complete && groups.len() == 1 && fetch < MAX_FETCH {
                // One contact's rows (emails x domains) filled the whole fetch: its end is
                // not in sight, so fetch more rather than show it twice.
                fetch = (fetch * 4).min(MAX_FETCH);
                continue;
            }
            if groups.len() > limit {
                groups.truncate(limit);
            } else if complete {
                let mut contacts: Vec<Contact> = groups.into_iter().map(|(c, _)| c).collect();
                self.add_cms_links(&mut contacts)?;
                return Ok(Page {
                    contacts,
                    next: None,
                });
            } else if groups.len() > 1 {
                // The last contact may continue past the fetch: the page ends at the last
                // contact known to be complete.
                groups.pop();
            }
            let consumed: usize = groups.iter().map(|(_, rows)| rows).sum();
            let mut contacts: Vec<Contact> = groups.into_iter().map(|(c, _)| c).collect();
            self.add_cms_links(&mut contacts)?;
            return Ok(Page {
                contacts,
                next: Some(Cursor::Offset(offset + consumed as u64)),
            });
        }
    }

    fn contact(&mut self, id: ContactId) -> Result<Contact, StoreError> {
        let mut found = self.contacts_where(
            vec![
                Clause::Cmp("id", "=", Val::Int(id)),
                Clause::Cmp("is_deleted", "IN", Val::Ints(ANY_DELETED)),
            ],
            &[],
        )?;
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
    fn standings(
        &mut self,
        ids: &[ContactId],
    ) -> Result<std::collections::HashMap<ContactId, Standing>, StoreError> {
        Ok(self
            .users(ids)?
            .unwrap_or_else(|| ids.iter().map(|&id| (id, Standing::UNKNOWN)).collect()))
    }

    /// A page of ids per call, CMS links joined.
    fn contacts(&mut self, ids: &[ContactId]) -> Result<Vec<Contact>, StoreError> {
        let mut found: std::collections::HashMap<ContactId, Contact> =
            std::collections::HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(200) {
            let page = self.contacts_where(
                vec![
                    Clause::Cmp("id", "IN", Val::IntList(chunk.to_vec())),
                    Clause::Cmp("is_deleted", "IN", Val::Ints(ANY_DELETED)),
                ],
                &[],
            )?;
            found.extend(page.into_iter().map(|c| (c.id, c)));
        }
        ids.iter()
            .map(|id| found.get(id).cloned().ok_or(StoreError::NotFound(*id)))
            .collect()
    }

    fn holders_of(&mut self, key: &ApiKey) -> Result<Vec<ContactId>, StoreError> {
        let params = GetParams {
            select: KEY_FIELDS,
            join: Vec::new(),
            where_: vec![
                Clause::Cmp("api_key", "=", Val::Secret(key.expose())),
                Clause::Cmp("is_deleted", "IN", Val::Ints(ANY_DELETED)),
            ],
            order_by: None,
            // Keys are meant to be unique; this only bounds a damaged table.
            limit: Some(1000),
            offset: None,
        };
        let rows: Vec<KeyRow> = self.get(&params, &[key])?;
        let mut ids = Vec::with_capacity(rows.len());
        for row in rows {
            // A filter the API dropped would match everyone: only trust rows that hold
            // the key (compared as the store compares).
            match &row.api_key {
                Some(Some(held)) if held.eq_ignore_case(key) => ids.push(row.id),
                Some(_) => {
                    return Err(StoreError::bad_data(
                        "cv ignored the api_key filter (it returned contacts without that key); refused",
                    ))
                }
                None => return Err(self.missing_api_key()),
            }
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    fn read_key(&mut self, id: ContactId) -> Result<Option<ApiKey>, StoreError> {
        self.current_key(id)
    }

    /// `api_key IS NOT NULL` pages of rows, by id. A contact whose rows (one per domain)
    /// straddle two pages comes back on both; the health check counts each contact once.
    fn key_holders(
        &mut self,
        after: Option<&HolderCursor>,
        limit: usize,
    ) -> Result<HolderPage, StoreError> {
        let limit = limit.clamp(1, 1000);
        let offset = match after {
            None => 0,
            Some(HolderCursor::Offset(n)) => *n,
            Some(HolderCursor::AfterKey { .. }) => {
                return Err(StoreError::invalid(
                    "the cv store pages key holders by offset, not by key",
                ))
            }
        };
        let params = GetParams {
            select: CONTACT_FIELDS,
            join: vec![UF_JOIN],
            where_: vec![
                Clause::IsNotNull("api_key"),
                Clause::Cmp("api_key", "!=", Val::Text(String::new())),
                Clause::Cmp("is_deleted", "IN", Val::Ints(ANY_DELETED)),
            ],
            order_by: Some(SortOrder {
                sort_name: None,
                id: "ASC",
            }),
            limit: Some(limit as u64),
            offset: Some(offset),
        };
        // The same answer read twice: once as contacts (the key becomes a hint at once),
        // once as keys.
        let out = self
            .call(Action::Get, &params, &[])
            .map_err(Failure::for_read)?;
        let rows: Vec<ContactRow> = parse_rows(&out, &[]).map_err(Failure::for_read)?;
        let keys: Vec<KeyRow> = parse_rows(&out, &[]).map_err(Failure::for_read)?;
        let fetched = rows.len();
        let mut keys = keys.into_iter();
        let mut holders = Vec::new();
        for (contact, count) in merge_rows(rows) {
            let row = keys.next();
            // The other rows of the contact (other domains) carry the same key.
            keys.by_ref().take(count - 1).for_each(drop);
            match row {
                Some(KeyRow {
                    id,
                    api_key: Some(Some(key)),
                }) if id == contact.id && !key.is_empty() => holders.push(Holder { contact, key }),
                Some(KeyRow { api_key: None, .. }) => return Err(self.missing_api_key()),
                _ => {
                    return Err(StoreError::bad_data(
                        "cv returned contacts without a key when asked for key holders; refused",
                    ))
                }
            }
        }
        let next = (fetched == limit).then(|| HolderCursor::Offset(offset + fetched as u64));
        Ok(HolderPage { holders, next })
    }

    fn swap_key(
        &mut self,
        id: ContactId,
        expected: Option<&ApiKey>,
        new: Option<&ApiKey>,
    ) -> Result<(), StoreError> {
        // `api_key = OLD` compares case-insensitively in MySQL, and compare-and-set must be
        // exact: check the exact value first. The update's own condition still refuses
        // any other key written meanwhile; only another case of the very same key could
        // slip between the two, which random keys make vanishingly unlikely.
        let current = self.current_key(id)?;
        if current.as_ref().map(ApiKey::expose) != expected.map(ApiKey::expose) {
            return Err(StoreError::Conflict);
        }
        self.update_key(id, expected, new)
    }

    fn rotation_batch(&self) -> usize {
        ROTATION_BATCH
    }

    /// A page of ids per Contact.get.
    fn read_keys(
        &mut self,
        ids: &[ContactId],
    ) -> Result<std::collections::HashMap<ContactId, Option<ApiKey>>, StoreError> {
        let mut keys = std::collections::HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_CALL) {
            let params = GetParams {
                select: KEY_FIELDS,
                join: Vec::new(),
                where_: vec![
                    Clause::Cmp("id", "IN", Val::IntList(chunk.to_vec())),
                    Clause::Cmp("is_deleted", "IN", Val::Ints(ANY_DELETED)),
                ],
                order_by: None,
                limit: Some(chunk.len() as u64),
                offset: None,
            };
            let rows: Vec<KeyRow> = self.get(&params, &[])?;
            for row in rows {
                if !chunk.contains(&row.id) {
                    return Err(StoreError::bad_data(format!(
                        "cv answered a lookup of {} contacts' keys with contact {}",
                        chunk.len(),
                        row.id
                    )));
                }
                match row.api_key {
                    None => return Err(self.missing_api_key()),
                    Some(key) => keys.insert(row.id, key.filter(|k| !k.is_empty())),
                };
            }
        }
        Ok(keys)
    }

    /// One Contact.get `api_key IN [...]` per [`KEYS_PER_CALL`] keys; only rows holding
    /// one of those keys are trusted.
    fn holders_of_keys(&mut self, keys: &[&ApiKey]) -> Result<Vec<Vec<ContactId>>, StoreError> {
        let mut holders = vec![Vec::new(); keys.len()];
        for (n, chunk) in keys.chunks(KEYS_PER_CALL).enumerate() {
            let params = GetParams {
                select: KEY_FIELDS,
                join: Vec::new(),
                where_: vec![
                    Clause::Cmp(
                        "api_key",
                        "IN",
                        Val::Secrets(chunk.iter().map(|k| k.expose()).collect()),
                    ),
                    Clause::Cmp("is_deleted", "IN", Val::Ints(ANY_DELETED)),
                ],
                order_by: None,
                limit: Some(1000),
                offset: None,
            };
            let rows: Vec<KeyRow> = self.get(&params, chunk)?;
            for row in rows {
                let held = match &row.api_key {
                    None => return Err(self.missing_api_key()),
                    Some(held) => held,
                };
                let mut matched = false;
                for (i, key) in chunk.iter().enumerate() {
                    if held.as_ref().is_some_and(|h| h.eq_ignore_case(key)) {
                        let list = &mut holders[n * KEYS_PER_CALL + i];
                        if !list.contains(&row.id) {
                            list.push(row.id);
                        }
                        matched = true;
                    }
                }
                if !matched {
                    return Err(StoreError::bad_data(
                        "cv ignored the api_key filter (it returned contacts without those keys); refused",
                    ));
                }
            }
        }
        Ok(holders)
    }

    /// The exact keys read in one call, then each update (cv has no multi-call; through
    /// the pipe an update costs milliseconds).
    fn swap_keys(&mut self, swaps: &[KeySwap<'_>]) -> Vec<Result<(), StoreError>> {
        let ids: Vec<ContactId> = swaps.iter().map(|s| s.id).collect();
        let current = match self.read_keys(&ids) {
            Ok(current) => current,
            Err(e) => return swaps.iter().map(|_| Err(e.again())).collect(),
        };
        swaps
            .iter()
            .map(|s| match current.get(&s.id) {
                None => Err(StoreError::NotFound(s.id)),
                Some(key) if key.as_ref().map(ApiKey::expose) != s.expected.map(ApiKey::expose) => {
                    Err(StoreError::Conflict)
                }
                Some(_) => self.update_key(s.id, s.expected, s.new),
            })
            .collect()
    }
}

impl CvStore {
    /// The compare-and-set update of [`ContactStore::swap_key`], once the exact key was
    /// checked: the update's own condition still refuses any other key written meanwhile;
    /// only another case of the very same key could slip between the two.
    fn update_key(
        &mut self,
        id: ContactId,
        expected: Option<&ApiKey>,
        new: Option<&ApiKey>,
    ) -> Result<(), StoreError> {
        let key_condition = match expected {
            Some(old) => Clause::Cmp("api_key", "=", Val::Secret(old.expose())),
            // An empty string counts as "no key", as CiviCRM treats it.
            None => Clause::Or(vec![
                Clause::IsNull("api_key"),
                Clause::Cmp("api_key", "=", Val::Text(String::new())),
            ]),
        };
        let params = UpdateParams {
            where_: vec![
                Clause::Cmp("id", "=", Val::Int(id)),
                Clause::Cmp("is_deleted", "IN", Val::Ints(ANY_DELETED)),
                key_condition,
            ],
            values: KeyValue {
                api_key: new.map(ApiKey::expose),
            },
        };
        let secrets: Vec<&ApiKey> = expected.into_iter().chain(new).collect();
        match self.update(&params, &secrets)? {
            1 => Ok(()),
            0 => match self.current_key(id) {
                Ok(_) => Err(StoreError::Conflict),
                Err(StoreError::NotFound(_)) => Err(StoreError::NotFound(id)),
                Err(e) => Err(e),
            },
            n => Err(StoreError::bad_data(format!(
                "cv changed {n} contacts for one contact id {id}; check their keys"
            ))),
        }
    }
}

#[derive(Clone, Copy)]
enum Action {
    Get,
    Update,
    /// Standalone's users and roles, for [`ContactStore::standing`].
    UserGet,
    RoleGet,
}

impl Action {
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

/// Ids per User.get / Role.get, and per read of many keys.
const IDS_PER_CALL: usize = 200;
/// Keys per uniqueness check of many keys (bulk rotation).
const KEYS_PER_CALL: usize = 100;
/// Contacts bulk rotation writes together: its reads, uniqueness check and read-back are
/// one call per batch, and at most this many keys undelivered if civikey is killed mid-batch.
const ROTATION_BATCH: usize = 50;

/// A User.get row.
#[derive(Deserialize)]
struct UserRow {
    #[serde(deserialize_with = "de_id")]
    id: u64,
    #[serde(deserialize_with = "de_id")]
    contact_id: u64,
    #[serde(default)]
    username: Option<String>,
    #[serde(default = "active_by_default", deserialize_with = "de_flag")]
    is_active: bool,
    #[serde(default)]
    roles: Vec<serde_json::Value>,
}

fn active_by_default() -> bool {
    true
}

/// A Role.get row.
#[derive(Deserialize)]
struct RoleRow {
    #[serde(deserialize_with = "de_id")]
    id: u64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    permissions: Vec<String>,
}

fn json_id(value: &serde_json::Value) -> Option<u64> {
    match value {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl CvStore {
    /// Users and their active roles (User.get, Role.get); None when the site has no User
    /// entity (not Standalone): cv then exits 1 with "API (User, get) does not exist".
    fn users(
        &self,
        ids: &[ContactId],
    ) -> Result<Option<std::collections::HashMap<ContactId, Standing>>, StoreError> {
        let mut users: Vec<UserRow> = Vec::new();
        for chunk in ids.chunks(IDS_PER_CALL) {
            let params = serde_json::json!({
                "select": ["id", "username", "contact_id", "is_active", "roles"],
                "where": [["contact_id", "IN", chunk]],
                "limit": chunk.len() * 2,
            });
            match self
                .call(Action::UserGet, &params, &[])
                .and_then(|out| parse_rows::<UserRow>(&out, &[]))
            {
                Ok(rows) => users.extend(rows),
                Err(Failure::Ran {
                    kind: FailKind::Exit,
                    message,
                }) if message.contains("does not exist") => return Ok(None),
                Err(e) => return Err(e.for_read()),
            }
        }
        let mut role_ids: Vec<u64> = users
            .iter()
            .flat_map(|u| u.roles.iter().filter_map(json_id))
            .collect();
        role_ids.sort_unstable();
        role_ids.dedup();
        let mut roles = std::collections::HashMap::new();
        for chunk in role_ids.chunks(IDS_PER_CALL) {
            let params = serde_json::json!({
                "select": ["id", "name", "label", "permissions"],
                "where": [["id", "IN", chunk], ["is_active", "=", true]],
                "limit": chunk.len(),
            });
            let rows = self
                .call(Action::RoleGet, &params, &[])
                .and_then(|out| parse_rows::<RoleRow>(&out, &[]))
                .map_err(Failure::for_read)?;
            for r in rows {
                let name = r
                    .label
                    .filter(|l| !l.is_empty())
                    .or(r.name)
                    .unwrap_or_default();
                roles.insert(
                    r.id,
                    Role::from_permissions(&name, r.permissions.iter().map(String::as_str)),
                );
            }
        }
        let mut out: std::collections::HashMap<ContactId, Standing> =
            ids.iter().map(|&id| (id, Standing::no_account())).collect();
        for u in users {
            let user_roles = u
                .roles
                .iter()
                .filter_map(json_id)
                .filter_map(|r| roles.get(&r).cloned())
                .collect();
            out.insert(
                u.contact_id,
                Standing {
                    account: AccountState::Account(UserAccount {
                        id: u.id,
                        name: SafeText::new(u.username.as_deref().unwrap_or_default()),
                        active: u.is_active,
                    }),
                    roles: Some(user_roles),
                },
            );
        }
        Ok(Some(out))
    }
}

/// How a cv call went wrong; whether it ran decides what a failed write means.
enum Failure {
    /// Nothing happened: cv was never started, or never ran the call (it could not log in
    /// as the `cv_user`), or CiviCRM's permission checks refused it before writing.
    Untouched(StoreError),
    /// cv ran (or may have) without a usable answer.
    Ran { kind: FailKind, message: String },
}

enum FailKind {
    Timeout,
    Exit,
    Output,
}

impl Failure {
    fn ran(kind: FailKind, message: impl Into<String>) -> Self {
        Failure::Ran {
            kind,
            message: message.into(),
        }
    }

    fn for_read(self) -> StoreError {
        match self {
            Failure::Untouched(e) => e,
            Failure::Ran {
                kind: FailKind::Timeout,
                message,
            } => StoreError::Timeout(SafeText::new(&message)),
            Failure::Ran {
                kind: FailKind::Exit,
                message,
            } => StoreError::unreachable(message),
            Failure::Ran {
                kind: FailKind::Output,
                message,
            } => StoreError::bad_data(message),
        }
    }

    /// A write that ran without a clean answer may or may not have been applied.
    fn for_write(self) -> StoreError {
        match self {
            Failure::Untouched(e) => e,
            Failure::Ran { message, .. } => StoreError::OutcomeUnknown(SafeText::new(&format!(
                "{message}; look at the contact's key before trying again"
            ))),
        }
    }
}

/// Waits for cv until `deadline`, polling (std has no wait with a timeout).
fn wait_until(child: &mut Child, deadline: Instant) -> Result<ExitStatus, Failure> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() >= deadline => {
                return Err(Failure::ran(
                    FailKind::Timeout,
                    "cv did not finish in time and was stopped",
                ))
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => {
                return Err(Failure::ran(
                    FailKind::Exit,
                    format!("lost track of cv: {e}"),
                ))
            }
        }
    }
}

/// Kills cv's whole process group and reaps cv, so no process or zombie is left behind.
fn kill_group(child: &mut Child) {
    if let Ok(pgid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals that process group; cv was started
        // with process_group(0), so the group is cv's own and holds only what it started.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

struct Captured {
    bytes: Zeroizing<Vec<u8>>,
    overflowed: bool,
}

/// Reads `source` to its end on a thread, keeping at most `cap` bytes and draining the
/// rest so cv never blocks on a full pipe.
fn spawn_reader(mut source: impl Read + Send + 'static, cap: usize) -> mpsc::Receiver<Captured> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut kept = Captured {
            bytes: Zeroizing::new(Vec::with_capacity(64 * 1024)),
            overflowed: false,
        };
        let mut chunk = [0u8; 8192];
        loop {
            match source.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    let room = cap.saturating_sub(kept.bytes.len());
                    if n > room {
                        kept.overflowed = true;
                    }
                    kept.bytes.extend_from_slice(&chunk[..n.min(room)]);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        chunk.zeroize();
        let _ = tx.send(kept);
    });
    rx
}

/// The reader's result, or None when the stream is still open at the deadline.
fn collect(rx: &mpsc::Receiver<Captured>, deadline: Instant) -> Option<Captured> {
    // A moment past the deadline: cv has exited, its pipes close as the readers finish.
    let wait = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(200));
    rx.recv_timeout(wait).ok()
}

/// `said`: cv's stderr as [`shown_stderr`] made it.
fn exit_message(status: ExitStatus, said: &str) -> String {
    let how = match status.code() {
        Some(code) => format!("cv failed (exit status {code})"),
        None => "cv was killed by a signal".to_string(),
    };
    // What the recorded failures mean for the operator (tests/recorded/cv/).
    let hint =
        if said.contains("civicrm.settings.php") || said.contains("Invalid working directory") {
            "; no CiviCRM site there: the profile's address must be cv:PATH of the site folder"
        } else if said.contains("does not exist (or the extension") {
            "; this site has no such API (a Standalone-only entity on another CMS?)"
        } else {
            ""
        };
    if said.is_empty() {
        format!("{how} without an error message")
    } else {
        format!("{how}: {said}{hint}")
    }
}

/// The message inside the Symfony console box cv prints for an exception ("In FILE line
/// N:", the message wrapped in a padded box, then cv's usage line), unwrapped; None when
/// stderr has no box.
fn boxed_message(text: &str) -> Option<String> {
    let mut lines = text
        .lines()
        .skip_while(|l| !(l.starts_with("In ") && l.ends_with(':')));
    lines.next()?;
    let mut message = String::new();
    for line in lines {
        if line.starts_with("api4 [") {
            break;
        }
        // Box rows are "  text  ", wrapped mid-word at a fixed width: two columns of
        // margin off, the padding off, and the pieces joined as they are.
        let row = line.strip_prefix("  ").unwrap_or(line).trim_end();
        message.push_str(row);
    }
    let message = message.trim().to_string();
    (!message.is_empty()).then_some(message)
}

/// cv's stderr as one line for an error message: keys hidden, cut to a readable size.
/// SafeText neutralises what is left where the message becomes a StoreError.
fn shown_stderr(bytes: &[u8], secrets: &[&ApiKey]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let one_line = boxed_message(&text).unwrap_or_else(|| {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" / ")
    });
    let redacted = redact(&one_line, secrets);
    if redacted.chars().count() > SHOWN_STDERR {
        let cut: String = redacted.chars().take(SHOWN_STDERR).collect();
        format!("{cut}…")
    } else {
        redacted
    }
}

/// Hides the call's keys (any case) and anything else that looks like a key, by the one
/// policy ([`crate::store::error::hide_secrets`]), before the text is cut to length: PHP
/// errors may quote the parameters or the SQL they failed on.
fn redact(text: &str, secrets: &[&ApiKey]) -> String {
    let secrets: Vec<&str> = secrets.iter().map(|k| k.expose()).collect();
    crate::store::error::hide_secrets(text, &secrets)
}

#[derive(Deserialize)]
struct Envelope<T> {
    values: Vec<T>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error_message: String,
}

/// cv's rows: a JSON list (or an API result object with `values`), possibly after lines
/// PHP printed first. Only a parse that consumes the whole rest of the output counts, so a
/// warning cannot pass for the answer; the output itself never goes into a message.
fn parse_rows<T: DeserializeOwned>(out: &[u8], secrets: &[&ApiKey]) -> Result<Vec<T>, Failure> {
    for start in json_candidates(out).take(MAX_JSON_CANDIDATES) {
        let rest = &out[start..];
        let as_list = match serde_json::from_slice::<Vec<T>>(rest) {
            Ok(rows) => return Ok(rows),
            Err(e) => e,
        };
        if let Ok(envelope) = serde_json::from_slice::<Envelope<T>>(rest) {
            return Ok(envelope.values);
        }
        if let Ok(body) = serde_json::from_slice::<ErrorBody>(rest) {
            return Err(Failure::ran(
                FailKind::Exit,
                format!(
                    "cv answered with an error: {}",
                    redact(&body.error_message, secrets)
                ),
            ));
        }
        if serde_json::from_slice::<IgnoredAny>(rest).is_ok() {
            return Err(Failure::ran(
                FailKind::Output,
                format!(
                    "cv's JSON is not the contact list civikey asked for ({})",
                    redact(&as_list.to_string(), secrets)
                ),
            ));
        }
    }
    let what = if out.iter().all(u8::is_ascii_whitespace) {
        "cv printed nothing".to_string()
    } else {
        format!(
            "cv did not print JSON ({} bytes of other output)",
            out.len()
        )
    };
    Err(Failure::ran(
        FailKind::Output,
        format!("{what}; run `cv api4 Contact.get +l 1` in the site folder to see what it prints"),
    ))
}

/// Offsets of the lines that start (after blanks) with `[` or `{`.
fn json_candidates(out: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let line_starts = std::iter::once(0).chain(
        out.iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i + 1),
    );
    line_starts.filter_map(move |start| {
        let skip = out[start..]
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t' | b'\r'))
            .count();
        let at = start + skip;
        matches!(out.get(at), Some(b'[' | b'{')).then_some(at)
    })
}

/// One row of a contact list. A contact may come in several rows (one per matching email,
/// one per CMS domain).
#[derive(Deserialize)]
struct ContactRow {
    #[serde(deserialize_with = "de_id")]
    id: ContactId,
    #[serde(default)]
    contact_type: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    sort_name: Option<String>,
    #[serde(deserialize_with = "de_flag")]
    is_deleted: bool,
    #[serde(rename = "email_primary.email", default)]
    email: Option<String>,
    /// Absent = not returned; `Some(None)` = no key.
    #[serde(default, deserialize_with = "de_hint")]
    api_key: Option<Option<KeyHint>>,
    /// Absent = this CiviCRM cannot join uf_match; `Some(None)` = no CMS user.
    #[serde(rename = "uf_match.uf_id", default, deserialize_with = "de_some_id")]
    uf_id: Option<Option<u64>>,
}

/// An id and its sort name (a branch read by [`Reading::Sort`]).
#[derive(Deserialize)]
struct SortRow {
    #[serde(deserialize_with = "de_id")]
    id: ContactId,
    #[serde(default)]
    sort_name: Option<String>,
}

#[derive(Deserialize)]
struct KeyRow {
    #[serde(deserialize_with = "de_id")]
    id: ContactId,
    #[serde(default, deserialize_with = "de_key")]
    api_key: Option<Option<ApiKey>>,
}

/// Folds consecutive rows of one contact (rows come ordered by sort name then id, so a
/// contact's rows are adjacent) into one contact, with how many rows it took. The CMS link
/// is the lowest CMS user id: one per domain, any of them proves a CMS user exists.
fn merge_rows(rows: Vec<ContactRow>) -> Vec<(Contact, usize)> {
    let mut out: Vec<(Contact, usize)> = Vec::new();
    for row in rows {
        let cms = match row.uf_id {
            None => CmsLink::Unknown,
            Some(None) => CmsLink::None,
            Some(Some(uf_id)) => CmsLink::Linked { uf_id },
        };
        if let Some((last, count)) = out.last_mut().filter(|(c, _)| c.id == row.id) {
            *count += 1;
            last.cms = match (last.cms, cms) {
                (CmsLink::Linked { uf_id: a }, CmsLink::Linked { uf_id: b }) => {
                    CmsLink::Linked { uf_id: a.min(b) }
                }
                (CmsLink::Linked { uf_id }, _) | (_, CmsLink::Linked { uf_id }) => {
                    CmsLink::Linked { uf_id }
                }
                (kept, _) => kept,
            };
            continue;
        }
        let text = |value: Option<String>| SafeText::new(value.as_deref().unwrap_or_default());
        out.push((
            Contact {
                id: row.id,
                contact_type: text(row.contact_type),
                display_name: text(row.display_name),
                sort_name: text(row.sort_name),
                email: row
                    .email
                    .filter(|e| !e.is_empty())
                    .map(|e| SafeText::new(&e)),
                is_deleted: row.is_deleted,
                key: row.api_key.flatten(),
                cms,
            },
            1,
        ));
    }
    out
}

/// An id as API v4 returns it: a number, or a numeric string from older versions.
fn de_id<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Number(u64),
        Text(String),
    }
    match Id::deserialize(d)? {
        Id::Number(n) => Ok(n),
        Id::Text(s) => s
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom("an id that is not a number")),
    }
}

fn de_some_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "de_id")] u64);
    Ok(Some(Option::<Wrapped>::deserialize(d)?.map(|w| w.0)))
}

/// A boolean as API v4 returns it (true/false), or as 0/1 and "0"/"1".
fn de_flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Number(i64),
        Text(String),
    }
    match Flag::deserialize(d)? {
        Flag::Bool(b) => Ok(b),
        Flag::Number(n) => Ok(n != 0),
        Flag::Text(s) => Ok(!matches!(s.trim(), "" | "0")),
    }
}

/// The key's tail, made at once; the key itself is zeroized as soon as the hint exists.
fn de_hint<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<KeyHint>>, D::Error> {
    let value = Option::<String>::deserialize(d)?.map(Zeroizing::new);
    Ok(Some(
        value
            .filter(|v| !v.is_empty())
            .map(|v| KeyHint::of_whole(&v)),
    ))
}

fn de_key<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<ApiKey>>, D::Error> {
    Ok(Some(
        Option::<String>::deserialize(d)?.map(ApiKey::from_store),
    ))
}

/// `Contact.get` parameters, in API v4's JSON shape.
#[derive(Serialize)]
struct GetParams<'a> {
    select: &'static [&'static str],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    join: Vec<Join>,
    #[serde(rename = "where")]
    where_: Vec<Clause<'a>>,
    #[serde(rename = "orderBy", skip_serializing_if = "Option::is_none")]
    order_by: Option<SortOrder>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
}

/// `{"sort_name":"ASC","id":"ASC"}`: a struct, so the order of the keys is fixed.
#[derive(Serialize)]
struct SortOrder {
    #[serde(skip_serializing_if = "Option::is_none")]
    sort_name: Option<&'static str>,
    id: &'static str,
}

#[derive(Serialize)]
struct UpdateParams<'a> {
    #[serde(rename = "where")]
    where_: Vec<Clause<'a>>,
    values: KeyValue<'a>,
}

/// `{"api_key": "NEW"}`, or `null` to revoke.
#[derive(Serialize)]
struct KeyValue<'a> {
    api_key: Option<&'a str>,
}

/// An API v4 where clause: `[field, op, value]`, `[field, "IS NULL"]`, `["OR", [...]]`,
/// `["AND", [...]]`.
#[derive(Clone)]
enum Clause<'a> {
    Cmp(&'static str, &'static str, Val<'a>),
    IsNull(&'static str),
    IsNotNull(&'static str),
    Or(Vec<Clause<'a>>),
    And(Vec<Clause<'a>>),
}

/// How [`CvStore::search_by_prefixes`] reads one branch.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Reading {
    /// In list order (sort name, id), one page: MariaDB walks the sort-name index and stops
    /// at the page's end. Right for the sort-name prefix (a range of that index), the split
    /// pairs (narrow: MariaDB reads their own index) and a one-letter first name (its
    /// contacts are everywhere in the list: at most 90 ms for any letter at 1M).
    Walk,
    /// A first-name prefix of two letters or more: as many contacts as some thousands,
    /// which may all sort late (`car`, `ji`: 96,000 rows walked before the first), so its
    /// own index range is read and sorted (40 ms for `car`'s 12,000; 130 ms for `jo`'s
    /// 34,000, the most any two letters have at 1M).
    Sort,
}

use crate::store::SORTED_FIRST_NAME_CHARS;

/// The keystroke name search as separate where clauses, each one index range: the same
/// branches the REST store sends (`rest::name_branches`, which says why the last,
/// organisation and household prefixes are left to the sort-name range).
fn name_branches(text: &str) -> Vec<(Clause<'static>, Reading)> {
    let like = |t: &str| Val::Text(crate::store::like_prefix(t, '\\'));
    let first_name = if text.chars().count() >= SORTED_FIRST_NAME_CHARS {
        Reading::Sort
    } else {
        Reading::Walk
    };
    let mut out = vec![
        (Clause::Cmp("sort_name", "LIKE", like(text)), Reading::Walk),
        (Clause::Cmp("first_name", "LIKE", like(text)), first_name),
    ];
    for (a, b) in crate::store::name_splits(text) {
        out.push((
            Clause::And(vec![
                Clause::Cmp("first_name", "LIKE", like(a)),
                Clause::Cmp("last_name", "LIKE", like(b)),
            ]),
            Reading::Walk,
        ));
        out.push((
            Clause::And(vec![
                Clause::Cmp("last_name", "LIKE", like(a)),
                Clause::Cmp("first_name", "LIKE", like(b)),
            ]),
            Reading::Walk,
        ));
    }
    out
}

/// The name search ([`crate::store::name_matches`]) as API v4 where clause: the same one the
/// REST store sends (`rest::name_where`).
fn name_where(text: &str, deep: bool) -> Clause<'static> {
    let like = |t: &str| Val::Text(crate::store::like_prefix(t, '\\'));
    let mut any: Vec<Clause<'static>> = [
        "sort_name",
        "first_name",
        "last_name",
        "organization_name",
        "household_name",
    ]
    .into_iter()
    .map(|field| Clause::Cmp(field, "LIKE", like(text)))
    .collect();
    for (a, b) in crate::store::name_splits(text) {
        any.push(Clause::And(vec![
            Clause::Cmp("first_name", "LIKE", like(a)),
            Clause::Cmp("last_name", "LIKE", like(b)),
        ]));
        any.push(Clause::And(vec![
            Clause::Cmp("last_name", "LIKE", like(a)),
            Clause::Cmp("first_name", "LIKE", like(b)),
        ]));
    }
    if deep {
        any.push(Clause::Cmp(
            "display_name",
            "LIKE",
            Val::Text(format!("% {}", crate::store::like_prefix(text, '\\'))),
        ));
    }
    Clause::Or(any)
}

#[derive(Clone)]
enum Val<'a> {
    Int(u64),
    Ints(&'static [u64]),
    IntList(Vec<u64>),
    Text(String),
    /// A key, borrowed so the request holds no extra copy of it.
    Secret(&'a str),
    /// Keys, borrowed likewise.
    Secrets(Vec<&'a str>),
}

impl Serialize for Clause<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Clause::Cmp(field, op, value) => {
                let mut seq = s.serialize_seq(Some(3))?;
                seq.serialize_element(field)?;
                seq.serialize_element(op)?;
                seq.serialize_element(value)?;
                seq.end()
            }
            Clause::IsNull(field) | Clause::IsNotNull(field) => {
                let mut seq = s.serialize_seq(Some(2))?;
                seq.serialize_element(field)?;
                seq.serialize_element(if matches!(self, Clause::IsNull(_)) {
                    "IS NULL"
                } else {
                    "IS NOT NULL"
                })?;
                seq.end()
            }
            Clause::Or(clauses) => {
                let mut seq = s.serialize_seq(Some(2))?;
                seq.serialize_element("OR")?;
                seq.serialize_element(clauses)?;
                seq.end()
            }
            Clause::And(clauses) => {
                let mut seq = s.serialize_seq(Some(2))?;
                seq.serialize_element("AND")?;
                seq.serialize_element(clauses)?;
                seq.end()
            }
        }
    }
}

impl Serialize for Val<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Val::Int(n) => s.serialize_u64(*n),
            Val::Ints(list) => list.serialize(s),
            Val::IntList(list) => list.serialize(s),
            Val::Text(text) => s.serialize_str(text),
            Val::Secret(key) => s.serialize_str(key),
            Val::Secrets(keys) => keys.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_api_v4_shape() {
        let key = ApiKey::from_store("OldOldOldOldOldOldOld1".into());
        let params = UpdateParams {
            where_: vec![
                Clause::Cmp("id", "=", Val::Int(7)),
                Clause::Cmp("is_deleted", "IN", Val::Ints(ANY_DELETED)),
                Clause::Or(vec![
                    Clause::IsNull("api_key"),
                    Clause::Cmp("api_key", "=", Val::Secret(key.expose())),
                ]),
            ],
            values: KeyValue { api_key: None },
        };
        assert_eq!(
            serde_json::to_string(&params).unwrap(),
            r#"{"where":[["id","=",7],["is_deleted","IN",[0,1]],["OR",[["api_key","IS NULL"],["api_key","=","OldOldOldOldOldOldOld1"]]]],"values":{"api_key":null}}"#
        );
        let get = GetParams {
            select: KEY_FIELDS,
            join: vec![UF_JOIN],
            where_: vec![Clause::Cmp(
                "sort_name",
                "LIKE",
                Val::Text(crate::store::like_prefix("100%_a\\", '\\')),
            )],
            order_by: Some(SortOrder {
                sort_name: Some("ASC"),
                id: "ASC",
            }),
            limit: Some(8),
            offset: Some(14),
        };
        assert_eq!(
            serde_json::to_string(&get).unwrap(),
            r#"{"select":["id","api_key"],"join":[["UFMatch AS uf_match","LEFT",["uf_match.contact_id","=","id"]]],"where":[["sort_name","LIKE","100\\%\\_a\\\\%"]],"orderBy":{"sort_name":"ASC","id":"ASC"},"limit":8,"offset":14}"#
        );
        // Acting as a cv_user: the same params, checks asked for at the end.
        let plain = serde_json::to_string(&get).unwrap();
        let checked = Checked {
            params: &get,
            check_permissions: Some(true),
        };
        assert_eq!(
            serde_json::to_string(&checked).unwrap(),
            format!("{},\"checkPermissions\":true}}", &plain[..plain.len() - 1])
        );
        let unchecked = Checked {
            params: &get,
            check_permissions: None,
        };
        assert_eq!(serde_json::to_string(&unchecked).unwrap(), plain);
    }

    #[test]
    fn json_after_php_warnings_is_found_and_junk_is_not_taken() {
        let out = b"PHP Warning:  Undefined array key \"x\" in /var/www/a.php on line 3\n[warn] {not json\n  [{\"id\":1,\"api_key\":null}]\n";
        let rows: Vec<KeyRow> = parse_rows(out, &[]).ok().unwrap();
        assert_eq!(rows.len(), 1);
        assert!(matches!(rows[0].api_key, Some(None)));
        // JSON followed by junk is not an answer.
        assert!(parse_rows::<KeyRow>(b"[]\nDeprecated: x\n", &[]).is_err());
        let envelope: Vec<KeyRow> =
            parse_rows(br#"{"values":[{"id":"3","api_key":"k"}],"count":1}"#, &[])
                .ok()
                .unwrap();
        assert_eq!(envelope[0].id, 3);
    }

    fn row(id: u64, uf: Option<Option<u64>>) -> ContactRow {
        ContactRow {
            id,
            contact_type: Some("Individual".into()),
            display_name: Some(format!("C{id}")),
            sort_name: Some(format!("C{id}")),
            is_deleted: false,
            email: None,
            api_key: Some(None),
            uf_id: uf,
        }
    }

    #[test]
    fn repeated_rows_fold_into_one_contact() {
        let merged = merge_rows(vec![
            row(1, Some(Some(9))),
            row(1, Some(Some(4))),
            row(2, Some(None)),
            row(3, None),
        ]);
        let summary: Vec<(u64, CmsLink, usize)> =
            merged.iter().map(|(c, n)| (c.id, c.cms, *n)).collect();
        assert_eq!(
            summary,
            vec![
                (1, CmsLink::Linked { uf_id: 4 }, 2),
                (2, CmsLink::None, 1),
                (3, CmsLink::Unknown, 1)
            ]
        );
    }
}
