//! Runs Cmds that touch the store or the journal on a plain thread and sends the answers
//! back as Msgs.
//!
//! The worker owns the store, the audit journal and the undo memory (the replaced key,
//! zeroized when it is dropped), so the UI thread never blocks on IO and never holds an
//! old key. A newer search replaces any search still queued, so typing fast costs one
//! query, not one per key.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{Cmd, KeySet, Msg, UndoInfo};
use crate::audit::{Actor, Journal};
use crate::key::{ApiKey, OsKeySource};
use crate::rotation::{self, NewKey};
use crate::store::StoreSpec;
use crate::store::{Contact, ContactId, ContactStore, Page};

/// Resolves a config profile's name to its store (its secrets read as a run would, the
/// run's `--read-only` applied): the profile picker's switch and probe.
pub type ResolveProfile = Arc<dyn Fn(&str) -> Result<StoreSpec, String> + Send + Sync>;

/// How many profiles the picker asks at once.
const PROBES_AT_ONCE: usize = 8;

/// How long the picker waits for a profile's one-row read before calling it unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Where the journal lives and who is acting.
pub struct JournalSetup {
    pub dir: PathBuf,
    pub actor: Actor,
}

/// The last change, kept in memory only for the undo window.
struct UndoSlot {
    id: ContactId,
    /// What the change set: None after a revoke.
    set_key: Option<ApiKey>,
    previous: Option<ApiKey>,
    until: Instant,
}

struct Worker {
    spec: StoreSpec,
    journal_setup: JournalSetup,
    store: Option<Box<dyn ContactStore>>,
    journal: Result<Journal, String>,
    keys: OsKeySource,
    undo: Option<UndoSlot>,
    undo_window: Duration,
    results: Sender<Msg>,
    /// Set by the terminal loop when the operator quits or the link drops: a bulk run
    /// stops between two contacts.
    stop: Arc<AtomicBool>,
    /// None when civikey runs without a config (no profile to switch to).
    resolve_profile: Option<ResolveProfile>,
}

/// The most contacts the key-age list shows.
const MARK_LIMIT_FOR_AGE: usize = 1000;

/// The most contacts "mark old keys" reads before it gives up (it filters as it reads).
const MARK_SCAN_LIMIT: usize = 200_000;

pub fn spawn(
    spec: StoreSpec,
    journal_setup: JournalSetup,
    undo_window: Duration,
    jobs: Receiver<Cmd>,
    results: Sender<Msg>,
    stop: Arc<AtomicBool>,
    resolve_profile: Option<ResolveProfile>,
) -> std::io::Result<JoinHandle<()>> {
    let worker = Worker {
        spec,
        journal_setup,
        store: None,
        journal: Err("the journal is not open yet".into()),
        keys: OsKeySource,
        undo: None,
        undo_window,
        results: results.clone(),
        stop,
        resolve_profile,
    };
    std::thread::Builder::new()
        .name("civikey-store".into())
        .spawn(move || worker.run(jobs, results))
}

fn is_new_search(cmd: &Cmd) -> bool {
    matches!(cmd, Cmd::Search { append: false, .. })
}

/// How often a running deep search reports its elapsed time.
const DEEP_TICK: Duration = Duration::from_millis(200);

/// Runs a deep search while a second thread sends [`Msg::DeepSearchRunning`] every
/// [`DEEP_TICK`], so the screen can show how long it has been going.
fn search_with_ticks(
    store: &mut dyn ContactStore,
    query: &crate::store::Query,
    seq: u64,
    results: &Sender<Msg>,
) -> Result<Page, crate::store::StoreError> {
    let started = Instant::now();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let results = results.clone();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                finished.recv_timeout(DEEP_TICK)
            {
                let elapsed = started.elapsed();
                if results
                    .send(Msg::DeepSearchRunning { seq, elapsed })
                    .is_err()
                {
                    return;
                }
            }
        });
        let page = store.search(query);
        drop(done);
        page
    })
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Worker {
    fn run(mut self, jobs: Receiver<Cmd>, results: Sender<Msg>) {
        while let Ok(mut job) = jobs.recv() {
            // Skip searches that a newer one has made pointless.
            while is_new_search(&job) {
                match jobs.try_recv() {
                    Ok(newer) if is_new_search(&newer) => job = newer,
                    Ok(other) => {
                        // Not a search: run the pending search first, then this one, in order.
                        if let Some(msg) = self.execute(job) {
                            if results.send(msg).is_err() {
                                return;
                            }
                        }
                        job = other;
                        break;
                    }
                    Err(_) => break,
                }
            }
            if let Some(msg) = self.execute(job) {
                if results.send(msg).is_err() {
                    return;
                }
            }
        }
        // The channel closed: the app is quitting. The undo memory is dropped (zeroized) here.
    }

    fn execute(&mut self, cmd: Cmd) -> Option<Msg> {
        if let Cmd::OpenStore = cmd {
            return Some(self.open());
        }
        // Drop the undo memory once its window has passed, whatever the next command is.
        if self
            .undo
            .as_ref()
            .is_some_and(|u| Instant::now() >= u.until)
        {
            self.undo = None;
        }
        Some(match cmd {
            Cmd::Search { seq, append, query } => {
                let store = self.store.as_mut()?;
                let result = if query.deep {
                    search_with_ticks(store.as_mut(), &query, seq, &self.results)
                } else {
                    store.search(&query)
                }
                .map_err(|e| e.to_string());
                let history = match &result {
                    Ok(page) => self.history_for(page),
                    Err(_) => Vec::new(),
                };
                Msg::Searched {
                    seq,
                    append,
                    result,
                    history,
                }
            }
            Cmd::Assign {
                id,
                expectation,
                key,
            } => {
                let result = self.assign(id, &expectation, key);
                Msg::Assigned { result }
            }
            Cmd::Revoke { id, expectation } => Msg::Revoked {
                result: self.revoke(id, &expectation),
            },
            Cmd::Undo => Msg::Undone {
                result: self.undo(),
            },
            Cmd::Refresh { id } => {
                let store = self.store.as_mut()?;
                let result = store.contact(id).map_err(|e| e.to_string());
                if let Ok(journal) = self.journal.as_mut() {
                    // The next look at a contact settles an earlier unknown outcome.
                    let _ = rotation::reconcile(store.as_mut(), journal, id);
                }
                Msg::Refreshed {
                    result,
                    history: self.key_set(id),
                }
            }
            Cmd::LoadAudit {
                contact,
                all_stores,
            } => Msg::AuditLoaded {
                contact,
                all_stores,
                result: self.journal.as_ref().map_err(|e| e.clone()).and_then(|j| {
                    let mut entries = j
                        .entries(contact, all_stores, 500)
                        .map_err(|e| e.to_string())?;
                    crate::bulk::mark_undelivered(j, &mut entries);
                    Ok(entries)
                }),
            },
            Cmd::LoadRoles { id } => Msg::Roles {
                id,
                // A failure to read them is shown as "cannot tell", never as "none".
                standing: self
                    .store
                    .as_mut()?
                    .standing(id)
                    .unwrap_or(crate::store::Standing::UNKNOWN),
            },
            Cmd::AgeFilter { seq, query, days } => {
                let result = self
                    .old_keys(query, days, MARK_LIMIT_FOR_AGE)
                    .map(|contacts| Page {
                        contacts,
                        next: None,
                    });
                let history = match &result {
                    Ok(page) => self.history_for(page),
                    Err(_) => Vec::new(),
                };
                Msg::Searched {
                    seq,
                    append: false,
                    result,
                    history,
                }
            }
            Cmd::MarkMatching {
                query,
                older_than_days,
                limit,
            } => Msg::Marked {
                result: self.mark_matching(query, older_than_days, limit),
            },
            Cmd::BulkRotate { items, out } => self.bulk_rotate(&items, &out),
            Cmd::CheckHealth { max_age_days } => {
                let store = self.store.as_mut()?;
                let sender = self.results.clone();
                let result = crate::health::check(
                    store.as_mut(),
                    self.journal.as_ref().ok(),
                    crate::health::Options {
                        max_age_days,
                        now: unix_now(),
                    },
                    &mut |read, findings| {
                        let _ = sender.send(Msg::HealthProgress {
                            read,
                            findings: findings.to_vec(),
                        });
                    },
                )
                .map_err(|e| e.to_string());
                Msg::HealthChecked { result }
            }
            Cmd::BulkRevoke { items } => self.bulk_revoke(&items),
            Cmd::ProbeProfiles { names } => {
                if let Some(resolve) = &self.resolve_profile {
                    probe_profiles(Arc::clone(resolve), names, self.results.clone());
                }
                return None;
            }
            Cmd::SwitchProfile { name } => self.switch_profile(name),
            Cmd::OpenStore | Cmd::CopyToClipboard(_) | Cmd::StopBulk | Cmd::Redraw => return None,
        })
    }

    fn open(&mut self) -> Msg {
        self.journal = Journal::open(&self.journal_setup.dir, self.journal_setup.actor.clone())
            .map_err(|e| e.to_string());
        Msg::StoreOpened(match self.spec.open() {
            Ok(opened) => {
                let info = opened.info();
                self.store = Some(opened);
                Ok(info)
            }
            Err(e) => Err(e.to_string()),
        })
    }

    /// Opens profile `name`'s store in place of this one. On failure the store in use
    /// stays. The undo memory belongs to the old store and is dropped (zeroized); the
    /// journal records the new profile as the store acted on.
    fn switch_profile(&mut self, name: String) -> Msg {
        let opened = match &self.resolve_profile {
            None => Err("civikey runs without a config: there is no profile to switch to".into()),
            // The store must answer before it replaces the one in use: a site that
            // cannot be reached leaves the operator where they were.
            Some(resolve) => open_answering(resolve, &name),
        };
        let result = opened.map(|(spec, store)| {
            let info = store.info();
            self.store = Some(store);
            self.undo = None;
            self.journal_setup.actor = Actor::from_env(&spec.location(), Some(&name));
            self.journal = Journal::open(&self.journal_setup.dir, self.journal_setup.actor.clone())
                .map_err(|e| e.to_string());
            self.spec = spec;
            crate::app::Switched {
                info,
                location: self.spec.location(),
                warning: self.spec.warning(),
            }
        });
        Msg::ProfileSwitched { name, result }
    }

    fn key_set(&self, id: ContactId) -> Option<KeySet> {
        let journal = self.journal.as_ref().ok()?;
        journal
            .last_set(id)
            .ok()
            .flatten()
            .map(|(time, by)| KeySet { time, by })
    }

    /// When civikey last set each listed contact's key, and settles unknown outcomes of
    /// listed contacts (normally there are none, so this costs one indexed query).
    fn history_for(&mut self, page: &Page) -> Vec<(ContactId, KeySet)> {
        let (Some(store), Ok(journal)) = (self.store.as_mut(), self.journal.as_mut()) else {
            return Vec::new();
        };
        let unsettled = journal.unsettled_contacts().unwrap_or_default();
        for id in unsettled
            .iter()
            .filter(|id| page.contacts.iter().any(|c| c.id == **id))
        {
            let _ = rotation::reconcile(store.as_mut(), journal, *id);
        }
        page.contacts
            .iter()
            .filter_map(|c| {
                let (time, by) = journal.last_set(c.id).ok().flatten()?;
                Some((c.id, KeySet { time, by }))
            })
            .collect()
    }

    fn mark_matching(
        &mut self,
        mut query: crate::store::Query,
        older_than_days: Option<u32>,
        limit: usize,
    ) -> Result<Vec<Contact>, String> {
        let store = self.store.as_mut().ok_or("the store is not open")?;
        let cutoff = older_than_days.map(|d| unix_now() - i64::from(d) * 86_400);
        let mut found = Vec::new();
        let mut scanned = 0;
        loop {
            let page = store.search(&query).map_err(|e| e.to_string())?;
            scanned += page.contacts.len();
            for contact in page.contacts {
                let keep = match cutoff {
                    None => true,
                    Some(cutoff) => {
                        contact.key.is_some()
                            && self.journal.as_ref().ok().is_none_or(|j| {
                                // Unknown age (never set by civikey) counts as old.
                                j.last_set(contact.id)
                                    .ok()
                                    .flatten()
                                    .is_none_or(|(t, _)| t < cutoff)
                            })
                    }
                };
                if keep && found.len() < limit {
                    found.push(contact);
                }
            }
            match page.next {
                Some(next) if found.len() < limit && scanned < MARK_SCAN_LIMIT => {
                    query.after = Some(next)
                }
                _ => return Ok(found),
            }
        }
    }

    /// Contacts with a key older than `days` (unknown age counts as oldest), oldest first.
    fn old_keys(
        &mut self,
        query: crate::store::Query,
        days: u32,
        limit: usize,
    ) -> Result<Vec<Contact>, String> {
        let mut found = self.mark_matching(query, Some(days), limit)?;
        let age = |c: &Contact| {
            self.journal
                .as_ref()
                .ok()
                .and_then(|j| j.last_set(c.id).ok().flatten())
                .map(|(t, _)| t)
        };
        // None (never set by civikey) sorts before every time: the oldest.
        found.sort_by_cached_key(|c| age(c));
        Ok(found)
    }

    fn bulk_rotate(
        &mut self,
        items: &[(ContactId, rotation::Expectation)],
        out: &std::path::Path,
    ) -> Msg {
        let shown = out.display().to_string();
        let finished = |results, error| Msg::BulkFinished {
            kind: super::BulkKind::Rotation,
            results,
            out: shown.clone(),
            error,
        };
        let mut out_file = match crate::bulk::OutFile::create(out) {
            Ok(f) => f,
            Err(e) => return finished(Vec::new(), Some(format!("nothing was rotated: {e}"))),
        };
        let Some(store) = self.store.as_mut() else {
            return finished(Vec::new(), Some("the store is not open".into()));
        };
        let journal = match self.journal.as_mut() {
            Ok(j) => j,
            Err(e) => {
                return finished(
                    Vec::new(),
                    Some(format!(
                        "the audit journal is unavailable ({e}); nothing was rotated"
                    )),
                )
            }
        };
        let sender = self.results.clone();
        let results = crate::bulk::rotate_many(
            store.as_mut(),
            journal,
            &mut self.keys,
            items,
            &mut out_file,
            &self.stop,
            &mut |done, total, r| {
                let last = format!(
                    "contact {} {}: {}",
                    r.id,
                    r.name.truncated(30),
                    r.outcome.label()
                );
                let _ = sender.send(Msg::BulkProgress { done, total, last });
            },
        );
        let interrupted = results
            .iter()
            .any(|r| r.outcome == crate::bulk::BulkOutcome::Skipped);
        finished(
            results,
            interrupted
                .then(|| "interrupted: the contacts not attempted were left untouched".into()),
        )
    }

    /// Revokes each contact's key through the full workflow (journaled, compare-and-set),
    /// stopping between contacts when told to.
    fn bulk_revoke(&mut self, items: &[(ContactId, rotation::Expectation)]) -> Msg {
        use crate::bulk::{BulkOutcome, BulkResult};
        let finished = |results, error| Msg::BulkFinished {
            kind: super::BulkKind::Revocation,
            results,
            out: "none: the keys were revoked".into(),
            error,
        };
        let Some(store) = self.store.as_mut() else {
            return finished(Vec::new(), Some("the store is not open".into()));
        };
        let journal = match self.journal.as_mut() {
            Ok(j) => j,
            Err(e) => {
                return finished(
                    Vec::new(),
                    Some(format!(
                        "the audit journal is unavailable ({e}); nothing was revoked"
                    )),
                )
            }
        };
        let total = items.len();
        let mut results = Vec::with_capacity(total);
        for (index, (id, expectation)) in items.iter().enumerate() {
            let outcome = if self.stop.load(std::sync::atomic::Ordering::SeqCst) {
                (crate::sanitize::SafeText::default(), BulkOutcome::Skipped)
            } else {
                match rotation::revoke(store.as_mut(), journal, *id, expectation) {
                    Ok(done) => (done.contact.display_name, BulkOutcome::Done),
                    Err(
                        rotation::RotationError::ChangedSinceSeen
                        | rotation::RotationError::Store(crate::store::StoreError::Conflict),
                    ) => (crate::sanitize::SafeText::default(), BulkOutcome::Conflict),
                    Err(e) => (
                        crate::sanitize::SafeText::default(),
                        BulkOutcome::Failed(e.to_string()),
                    ),
                }
            };
            let result = BulkResult {
                id: *id,
                name: outcome.0,
                outcome: outcome.1,
            };
            let _ = self.results.send(Msg::BulkProgress {
                done: index + 1,
                total,
                last: format!(
                    "contact {} {}: {}",
                    result.id,
                    result.name.truncated(30),
                    result.outcome.label()
                ),
            });
            results.push(result);
        }
        let interrupted = results.iter().any(|r| r.outcome == BulkOutcome::Skipped);
        finished(
            results,
            interrupted
                .then(|| "interrupted: the contacts not attempted were left untouched".into()),
        )
    }

    fn remember(
        &mut self,
        id: ContactId,
        set_key: Option<ApiKey>,
        previous: Option<ApiKey>,
    ) -> UndoInfo {
        self.undo = Some(UndoSlot {
            id,
            set_key,
            previous,
            until: Instant::now() + self.undo_window,
        });
        UndoInfo {
            contact_id: id,
            until_unix: unix_now() + self.undo_window.as_secs() as i64,
        }
    }

    fn assign(
        &mut self,
        id: ContactId,
        expectation: &rotation::Expectation,
        key: ApiKey,
    ) -> Result<super::AssignDone, String> {
        let store = self.store.as_mut().ok_or("the store is not open")?.as_mut();
        let journal = self
            .journal
            .as_mut()
            .map_err(|e| format!("the audit journal is unavailable ({e}); nothing was written"))?;
        let done = rotation::assign(
            store,
            journal,
            &mut self.keys,
            id,
            expectation,
            NewKey::Generated(key),
        )
        .map_err(|e| e.to_string())?;
        // Once, never retried; a failed check says what to fix and undoes nothing.
        let site = store.login_site();
        let login_check = site
            .as_ref()
            .map(|site| crate::login_check::check(site, &done.key, id));
        // What the receiving app needs; a standing that cannot be read is "unknown".
        let standing = store
            .standing(id)
            .unwrap_or(crate::store::Standing::UNKNOWN);
        let handover = crate::handover::Handover::new(site.as_ref(), &done.contact, &standing);
        let undo = self.remember(id, Some(done.key.clone()), done.previous.clone());
        let history = self.key_set(id);
        Ok(super::AssignDone {
            assigned: done,
            undo,
            history,
            login_check,
            handover,
        })
    }

    fn revoke(
        &mut self,
        id: ContactId,
        expectation: &rotation::Expectation,
    ) -> Result<super::RevokeDone, String> {
        let store = self.store.as_mut().ok_or("the store is not open")?.as_mut();
        let journal = self
            .journal
            .as_mut()
            .map_err(|e| format!("the audit journal is unavailable ({e}); nothing was written"))?;
        let done = rotation::revoke(store, journal, id, expectation).map_err(|e| e.to_string())?;
        let undo = done
            .previous
            .clone()
            .map(|previous| self.remember(id, None, Some(previous)));
        Ok(super::RevokeDone {
            revoked: done,
            undo,
        })
    }

    fn undo(&mut self) -> Result<Contact, String> {
        let Some(slot) = self.undo.take() else {
            return Err("nothing to undo: the undo window has passed (the old key is gone)".into());
        };
        let store = self.store.as_mut().ok_or("the store is not open")?.as_mut();
        let Ok(journal) = self.journal.as_mut() else {
            return Err("the audit journal is unavailable; nothing was written".into());
        };
        rotation::undo(
            store,
            journal,
            &mut self.keys,
            slot.id,
            slot.set_key.as_ref(),
            slot.previous,
        )
        .map_err(|e| e.to_string())
    }
}

/// Asks each profile's store for one row, [`PROBES_AT_ONCE`] at a time (the fleet's one
/// bounded runner, `cli::fleet::run_each`), each answer sent as it comes; a profile that
/// has not answered within [`PROBE_TIMEOUT`] is called unreachable. Runs on a thread of
/// its own: it holds neither the worker nor, through a hung site, the other profiles.
fn probe_profiles(resolve: ResolveProfile, names: Vec<String>, results: Sender<Msg>) {
    use crate::app::Reach;
    use crate::cli::fleet::{run_each, Ran};
    let runner = std::thread::Builder::new()
        .name("civikey-probes".into())
        .spawn(move || {
            let names = Arc::new(names);
            let (job_names, job_results) = (Arc::clone(&names), results.clone());
            // Each answer goes to the screen as it comes; the runner gives up on a
            // profile at its deadline and on the rest the same way.
            let ran = run_each(
                names.len(),
                PROBES_AT_ONCE,
                PROBE_TIMEOUT,
                move |i| {
                    let name = job_names[i].clone();
                    let reach = match open_answering(&resolve, &name) {
                        Ok(_) => Reach::Reachable,
                        Err(why) => Reach::Unreachable(why),
                    };
                    let _ = job_results.send(Msg::ProfileProbed { name, reach });
                },
                &mut |_, _| {},
            );
            for (name, ran) in names.iter().zip(ran) {
                let why = match ran {
                    Ran::Done(()) => continue,
                    Ran::TimedOut => format!("no answer within {} s", PROBE_TIMEOUT.as_secs()),
                    Ran::Panicked => "the check of this profile failed (a bug)".to_string(),
                };
                let reach = Reach::Unreachable(why);
                if results
                    .send(Msg::ProfileProbed {
                        name: name.clone(),
                        reach,
                    })
                    .is_err()
                {
                    return;
                }
            }
        });
    // Without a thread the picker keeps saying "asking…": nothing else depends on it.
    drop(runner);
}

/// One profile's store: resolved, opened and asked for one contact (a store that opens
/// without a connection, REST's, has not answered until it is asked something).
fn open_answering(
    resolve: &ResolveProfile,
    name: &str,
) -> Result<(StoreSpec, Box<dyn ContactStore>), String> {
    let spec = resolve(name)?;
    let mut store = spec.open().map_err(|e| e.to_string())?;
    store
        .search(&crate::store::Query::new("", 1))
        .map_err(|e| e.to_string())?;
    Ok((spec, store))
}
