//! The write-ahead audit journal: nothing changes in a store unless the journal recorded
//! the intent first, and every outcome (even "unknown") is recorded after.
//!
//! The journal is a SQLite file (`$CIVIKEY_DATA_DIR/audit.sqlite`, 0600) written with
//! `synchronous = FULL`, so a recorded intent survives a crash or a power cut. Keys never
//! enter it: only HMAC-SHA256 fingerprints under a local secret (`audit.key`, 0600, made
//! on first use), so a fingerprint cannot be reversed or matched without that secret.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use rusqlite::{params, Connection, OptionalExtension};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::fsperm;

mod history;
use crate::key::{ApiKey, KeySource, OsKeySource};
use crate::sanitize::SafeText;
use crate::store::ContactId;
pub use history::{Ended, KeySpell};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    time         INTEGER NOT NULL,          -- unix seconds, UTC
    operator     TEXT NOT NULL,
    ssh_client   TEXT,
    store        TEXT NOT NULL,
    profile      TEXT,
    contact_id   INTEGER NOT NULL,
    contact_name TEXT NOT NULL,
    action       TEXT NOT NULL,             -- assign | revoke | undo | lookup (old_fp = new_fp = the key asked about)
    old_fp       TEXT,                      -- HMAC-SHA256 hex of the old key, NULL = none
    new_fp       TEXT,                      -- HMAC-SHA256 hex of the new key, NULL = none
    outcome      TEXT,                      -- NULL while in flight; done | conflict | failed | unknown
    error        TEXT,
    outcome_time INTEGER,
    reconciled   TEXT,                      -- for unknown: applied | not-applied | superseded
    writer       TEXT,                      -- lease token of the process that wrote it
    out_file     TEXT                       -- bulk: the out file the new key went to
);
CREATE INDEX IF NOT EXISTS audit_contact ON audit (store, contact_id, id);
";

/// Columns added after the first release, for journals made before them.
const ADDED_COLUMNS: [(&str, &str); 2] = [("writer", "TEXT"), ("out_file", "TEXT")];

#[derive(Debug, thiserror::Error)]
#[error("the audit journal cannot be written ({0}); nothing was changed")]
pub struct AuditError(pub String);

impl AuditError {
    fn from_sql(e: rusqlite::Error) -> Self {
        AuditError(SafeText::new(&e.to_string()).to_string())
    }
}

/// What a record says happened, once the store call returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Conflict,
    Failed,
    Unknown,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Conflict => "conflict",
            Outcome::Failed => "failed",
            Outcome::Unknown => "unknown",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Assign,
    Revoke,
    Undo,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Assign => "assign",
            Action::Revoke => "revoke",
            Action::Undo => "undo",
        }
    }
}

/// Who is acting and where: recorded with every intent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actor {
    pub operator: String,
    pub ssh_client: Option<String>,
    pub store: String,
    pub profile: Option<String>,
}

impl Actor {
    /// The operator is SUDO_USER (the human behind sudo) or USER; the SSH client address is
    /// the first field of SSH_CONNECTION.
    pub fn from_env(store: &str, profile: Option<&str>) -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let operator = var("SUDO_USER")
            .or_else(|| var("USER"))
            .or_else(login_name)
            .unwrap_or_else(|| {
                // SAFETY: getuid has no preconditions.
                format!("uid {}", unsafe { libc::getuid() })
            });
        let ssh_client =
            var("SSH_CONNECTION").and_then(|v| v.split_whitespace().next().map(str::to_string));
        Actor {
            operator: SafeText::new(&operator).to_string(),
            ssh_client: ssh_client.map(|c| SafeText::new(&c).to_string()),
            store: SafeText::new(store).to_string(),
            profile: profile.map(|p| SafeText::new(p).to_string()),
        }
    }
}

/// The name of this process's user from the password database (USER is not always set,
/// e.g. under cron or `env -i`).
fn login_name() -> Option<String> {
    let mut buf = vec![0u8; 4096];
    let mut pwd = std::mem::MaybeUninit::<libc::passwd>::uninit();
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes into `pwd` and `buf`, which outlive the call, and sets
    // `result` to `pwd` or null; pw_name points into `buf` and is read before `buf` is freed.
    unsafe {
        let rc = libc::getpwuid_r(
            libc::getuid(),
            pwd.as_mut_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        );
        if rc != 0 || result.is_null() {
            return None;
        }
        let name = std::ffi::CStr::from_ptr((*result).pw_name);
        Some(name.to_string_lossy().into_owned())
    }
}

/// One journal record, as the audit view and `civikey audit` show it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    pub id: i64,
    pub time: i64,
    pub operator: String,
    pub ssh_client: Option<String>,
    pub store: String,
    pub profile: Option<String>,
    pub contact_id: ContactId,
    pub contact_name: String,
    pub action: String,
    /// First 8 hex digits of the fingerprints.
    pub old_fingerprint: Option<String>,
    pub new_fingerprint: Option<String>,
    pub outcome: Option<String>,
    pub error: Option<String>,
    pub reconciled: Option<String>,
}

/// A bulk rotation journaled done: the out file its key went to, to check it is there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BulkDelivery {
    pub record: i64,
    pub contact: ContactId,
    pub out_file: String,
    pub profile: Option<String>,
}

/// An unsettled record: its id and the old and new key fingerprints it names.
pub type Unsettled = (RecordId, Option<String>, Option<String>);

/// A record in flight: returned by [`Journal::intent`], closed by [`Journal::outcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordId(i64);

pub struct Journal {
    conn: Connection,
    secret: Zeroizing<Vec<u8>>,
    actor: Actor,
    path: PathBuf,
    lease: Lease,
    /// Set during a bulk run: recorded with each intent.
    out_file: Option<String>,
    last_intent: Option<RecordId>,
}

/// This process's claim to the records it writes: `leases/TOKEN` in the data folder, held
/// with an exclusive flock(2) from before the first record until the journal is dropped.
/// The kernel drops the lock when the process ends in any way (SIGKILL, a crash), so a
/// record whose writer's lease can be locked by someone else was left by a process that
/// is gone, while one whose lease is held belongs to a civikey still at work.
struct Lease {
    token: String,
    path: PathBuf,
    _file: fs::File,
}

impl Lease {
    fn take(dir: &Path) -> Result<Self, AuditError> {
        let leases = dir.join("leases");
        drop(fsperm::open_private_dir(&leases).map_err(AuditError)?);
        let mut raw = [0u8; 16];
        OsKeySource
            .fill(&mut raw)
            .map_err(|e| AuditError(e.to_string()))?;
        let token = hex(&raw);
        let path = leases.join(&token);
        // Locked under a temporary name, then renamed: a lease is never seen unlocked
        // while its writer lives.
        let fresh = leases.join(format!("{token}.new"));
        use std::os::unix::fs::OpenOptionsExt;
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&fresh)
            .map_err(|e| AuditError(format!("cannot create {}: {e}", fresh.display())))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(std::io::Error::from)
            .and_then(|()| fs::rename(&fresh, &path))
            .map_err(|e| {
                let _ = fs::remove_file(&fresh);
                AuditError(format!("cannot take the lease {}: {e}", path.display()))
            })?;
        // Clear the leases of civikeys that were killed (a normal exit removes its own).
        if let Ok(entries) = fs::read_dir(&leases) {
            for entry in entries.flatten() {
                if let Some(name) = entry.file_name().to_str().filter(|n| *n != token) {
                    if is_token(name) {
                        Lease::writer_is_gone(dir, name);
                    }
                }
            }
        }
        Ok(Lease {
            token,
            path,
            _file: file,
        })
    }

    /// Whether the process that wrote records under `token` has ended. A token that is
    /// not one civikey makes (the file is read as untrusted) names no live writer.
    fn writer_is_gone(dir: &Path, token: &str) -> bool {
        if !is_token(token) {
            return true;
        }
        let path = dir.join("leases").join(token);
        match fs::File::open(&path) {
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
            Ok(file) => {
                let gone =
                    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockShared)
                        .is_ok();
                if gone {
                    // Its writer is gone for good: the lease is litter now.
                    let _ = fs::remove_file(&path);
                }
                gone
            }
        }
    }
}

/// Whether `name` is a lease token as civikey makes them (32 lowercase hex digits).
fn is_token(name: &str) -> bool {
    name.len() == 32 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Journal {
    /// Opens (creating on first use) the journal and its HMAC secret in `dir`.
    pub fn open(dir: &Path, actor: Actor) -> Result<Self, AuditError> {
        // Before anything is made in it: another user's folder could hold a planted key.
        // Each missing folder is made here, and the folder is checked through its
        // descriptor: one another user slipped in is refused.
        let folder = fsperm::open_private_dir(dir).map_err(AuditError)?;
        let secret = load_or_make_secret(&dir.join("audit.key"))?;
        let path = dir.join("audit.sqlite");
        if let Ok(meta) = fs::metadata(&path) {
            fsperm::refuse_if_exposed(&path, &meta).map_err(AuditError)?;
        } else {
            match fsperm::create_new_private_file_at(&folder, &path) {
                // Another civikey starting at the same moment made it first.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let meta = fs::metadata(&path)
                        .map_err(|e| AuditError(format!("cannot read {}: {e}", path.display())))?;
                    fsperm::refuse_if_exposed(&path, &meta).map_err(AuditError)?;
                }
                Err(e) => return Err(AuditError(format!("cannot create {}: {e}", path.display()))),
                Ok(_) => {}
            }
        }
        let conn = Connection::open(&path).map_err(AuditError::from_sql)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(AuditError::from_sql)?;
        // FULL: the intent is on disk before the store is touched. secure_delete: freed
        // pages are zeroed, so nothing deleted from the journal lingers in the file.
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA secure_delete = ON;")
            .map_err(AuditError::from_sql)?;
        conn.execute_batch(SCHEMA).map_err(AuditError::from_sql)?;
        add_missing_columns(&conn)?;
        let lease = Lease::take(dir)?;
        Ok(Journal {
            conn,
            secret,
            actor,
            path,
            lease,
            out_file: None,
            last_intent: None,
        })
    }

    /// During a bulk run, the out file each new key goes to (recorded with every intent, so
    /// `civikey audit` can tell a key that never reached it); None after.
    pub fn set_out_file(&mut self, path: Option<&Path>) {
        self.out_file = path.map(|p| p.to_string_lossy().into_owned());
    }

    /// The last record this journal wrote an intent for.
    pub fn last_intent(&self) -> Option<RecordId> {
        self.last_intent
    }

    /// Adds a note to a record (in its error field), e.g. that its new key was not delivered.
    /// `note` is already-safe text (never a key).
    pub fn annotate(&mut self, record: RecordId, note: &str) -> Result<(), AuditError> {
        self.conn
            .execute(
                "UPDATE audit SET error = ?1 WHERE id = ?2",
                params![note, record.0],
            )
            .map_err(AuditError::from_sql)?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// HMAC-SHA256 of the key under the local secret, hex.
    pub fn fingerprint(&self, key: &ApiKey) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret)
            .expect("HMAC accepts keys of any length");
        mac.update(key.expose().as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    /// The 8-hex-digit form shown to people.
    pub fn short_fingerprint(&self, key: &ApiKey) -> String {
        self.fingerprint(key)[..8].to_string()
    }

    /// Records the intent, durably, before the store write.
    pub fn intent(
        &mut self,
        contact_id: ContactId,
        contact_name: &SafeText,
        action: Action,
        old: Option<&ApiKey>,
        new: Option<&ApiKey>,
    ) -> Result<RecordId, AuditError> {
        let old_fp = old.map(|k| self.fingerprint(k));
        let new_fp = new.map(|k| self.fingerprint(k));
        self.conn
            .execute(
                "INSERT INTO audit (time, operator, ssh_client, store, profile, contact_id,
                                    contact_name, action, old_fp, new_fp, writer, out_file)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    now(),
                    self.actor.operator,
                    self.actor.ssh_client,
                    self.actor.store,
                    self.actor.profile,
                    contact_id as i64,
                    contact_name.as_str(),
                    action.as_str(),
                    old_fp,
                    new_fp,
                    self.lease.token,
                    self.out_file,
                ],
            )
            .map_err(AuditError::from_sql)?;
        let record = RecordId(self.conn.last_insert_rowid());
        self.last_intent = Some(record);
        self.to_syslog(record.0, "intent");
        Ok(record)
    }

    /// Records how the store write ended. `error` is already-safe text (never a key).
    pub fn outcome(
        &mut self,
        record: RecordId,
        outcome: Outcome,
        error: Option<&str>,
    ) -> Result<(), AuditError> {
        self.conn
            .execute(
                "UPDATE audit SET outcome = ?1, error = ?2, outcome_time = ?3 WHERE id = ?4",
                params![outcome.as_str(), error, now(), record.0],
            )
            .map_err(AuditError::from_sql)?;
        self.to_syslog(record.0, "outcome");
        Ok(())
    }

    /// Records in this store whose outcome is unknown (or never written: a crash) and not
    /// yet reconciled, for `contact_id`.
    pub fn unsettled(&self, contact_id: ContactId) -> Result<Vec<Unsettled>, AuditError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, old_fp, new_fp FROM audit
                  WHERE store = ?1 AND contact_id = ?2 AND reconciled IS NULL
                    AND (outcome IS NULL OR outcome = 'unknown')
                  ORDER BY id",
            )
            .map_err(AuditError::from_sql)?;
        let rows = stmt
            .query_map(params![self.actor.store, contact_id as i64], |r| {
                Ok((RecordId(r.get(0)?), r.get(1)?, r.get(2)?))
            })
            .map_err(AuditError::from_sql)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(AuditError::from_sql)?;
        Ok(rows)
    }

    /// Contacts of this store with unsettled records (few: normally none).
    pub fn unsettled_contacts(&self) -> Result<Vec<ContactId>, AuditError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT DISTINCT contact_id FROM audit
                  WHERE store = ?1 AND reconciled IS NULL AND (outcome IS NULL OR outcome = 'unknown')",
            )
            .map_err(AuditError::from_sql)?;
        let ids = stmt
            .query_map([&self.actor.store], |r| r.get::<_, i64>(0))
            .map_err(AuditError::from_sql)?
            .map(|r| r.map(|id| id as ContactId))
            .collect::<Result<Vec<_>, _>>()
            .map_err(AuditError::from_sql)?;
        Ok(ids)
    }

    /// The unsettled records of `contact_id` that may be settled now: those with an
    /// "unknown" outcome, and those without any outcome whose writer is gone (killed or
    /// crashed; see [`Lease`]) or is this journal. A record another running civikey is
    /// still writing is left alone. Read the store's key after this, then [`Self::settle`].
    pub fn settleable(&self, contact_id: ContactId) -> Result<Vec<Unsettled>, AuditError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, old_fp, new_fp, outcome, writer FROM audit
                  WHERE store = ?1 AND contact_id = ?2 AND reconciled IS NULL
                    AND (outcome IS NULL OR outcome = 'unknown')
                  ORDER BY id",
            )
            .map_err(AuditError::from_sql)?;
        let rows = stmt
            .query_map(params![self.actor.store, contact_id as i64], |r| {
                Ok((
                    (RecordId(r.get(0)?), r.get(1)?, r.get(2)?),
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })
            .map_err(AuditError::from_sql)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(AuditError::from_sql)?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        Ok(rows
            .into_iter()
            .filter(|(_, outcome, writer)| {
                outcome.is_some()
                    || match writer {
                        None => true,
                        Some(w) if *w == self.lease.token => true,
                        Some(w) => Lease::writer_is_gone(dir, w),
                    }
            })
            .map(|(record, _, _)| record)
            .collect())
    }

    /// Settles `records` (from [`Self::settleable`]) against `current`, the key the store
    /// holds, read after they were found settleable: `applied` if it is the intended new
    /// key, `not-applied` if it is still the old one, `superseded` if it is neither (someone
    /// changed it since). Returns how many settled.
    pub fn settle(
        &mut self,
        records: &[Unsettled],
        current: Option<&ApiKey>,
    ) -> Result<usize, AuditError> {
        let current_fp = current.map(|k| self.fingerprint(k));
        let mut settled = 0;
        for (record, old_fp, new_fp) in records {
            let verdict = if current_fp == *new_fp {
                "applied"
            } else if current_fp == *old_fp {
                "not-applied"
            } else {
                "superseded"
            };
            let changed = self
                .conn
                .execute(
                    "UPDATE audit SET reconciled = ?1,
                            outcome = coalesce(outcome, 'unknown'),
                            outcome_time = coalesce(outcome_time, ?2)
                      WHERE id = ?3 AND reconciled IS NULL
                        AND (outcome IS NULL OR outcome = 'unknown')",
                    params![verdict, now(), record.0],
                )
                .map_err(AuditError::from_sql)?;
            if changed > 0 {
                self.to_syslog(record.0, "reconciled");
            }
            settled += changed;
        }
        Ok(settled)
    }

    /// Whether another writer recorded, after `record`, an intent for `contact_id` that
    /// replaces `key` (None: no key): it read that key from the store, so `record`'s write
    /// had landed.
    pub fn replaced_after(
        &self,
        record: RecordId,
        contact_id: ContactId,
        key: Option<&ApiKey>,
    ) -> Result<bool, AuditError> {
        let fp = key.map(|k| self.fingerprint(k));
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM audit
                  WHERE store = ?1 AND contact_id = ?2 AND id > ?3 AND old_fp IS ?4
                    AND writer IS NOT ?5)",
                params![
                    self.actor.store,
                    contact_id as i64,
                    record.0,
                    fp,
                    self.lease.token
                ],
                |r| r.get(0),
            )
            .map_err(AuditError::from_sql)
    }

    /// Bulk records from `from_id` on that say "done".
    pub fn bulk_deliveries(&self, from_id: i64) -> Result<Vec<BulkDelivery>, AuditError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, contact_id, out_file, profile FROM audit
                  WHERE id >= ?1 AND out_file IS NOT NULL AND action = 'assign'
                    AND outcome = 'done' AND error IS NULL",
            )
            .map_err(AuditError::from_sql)?;
        let rows = stmt
            .query_map([from_id], |r| {
                Ok(BulkDelivery {
                    record: r.get(0)?,
                    contact: r.get::<_, i64>(1)? as ContactId,
                    out_file: r.get(2)?,
                    profile: r.get(3)?,
                })
            })
            .map_err(AuditError::from_sql)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(AuditError::from_sql)?;
        Ok(rows)
    }

    /// Newest first, of this store (of every store with `all_stores`: contact ids of two
    /// stores are different people); `contact` narrows to one contact.
    pub fn entries(
        &self,
        contact: Option<ContactId>,
        all_stores: bool,
        limit: usize,
    ) -> Result<Vec<Entry>, AuditError> {
        self.entries_since(contact, all_stores, None, limit)
    }

    /// [`Self::entries`] written at or after `since` (unix seconds), when given.
    pub fn entries_since(
        &self,
        contact: Option<ContactId>,
        all_stores: bool,
        since: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Entry>, AuditError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, time, operator, ssh_client, store, profile, contact_id, contact_name,
                        action, old_fp, new_fp, outcome, error, reconciled
                   FROM audit WHERE (?1 IS NULL OR contact_id = ?1) AND (?3 OR store = ?4)
                    AND (?5 IS NULL OR time >= ?5)
                  ORDER BY id DESC LIMIT ?2",
            )
            .map_err(AuditError::from_sql)?;
        // civikey writes only safe text, but the file is read back as untrusted: anyone who
        // can write it (the owner's other programs, a restored backup) could plant escape
        // sequences, and every field here reaches the screen, stdout and --json.
        let safe = |text: String| SafeText::new(&text).to_string();
        let safe_opt = |text: Option<String>| text.map(safe);
        let short = |fp: Option<String>| fp.map(|f| safe(f.chars().take(8).collect::<String>()));
        let rows = stmt
            .query_map(
                params![
                    contact.map(|c| c as i64),
                    limit as i64,
                    all_stores,
                    self.actor.store,
                    since
                ],
                |r| {
                    Ok(Entry {
                        id: r.get(0)?,
                        time: r.get(1)?,
                        operator: safe(r.get(2)?),
                        ssh_client: safe_opt(r.get(3)?),
                        store: safe(r.get(4)?),
                        profile: safe_opt(r.get(5)?),
                        contact_id: r.get::<_, i64>(6)? as ContactId,
                        contact_name: safe(r.get(7)?),
                        action: safe(r.get(8)?),
                        old_fingerprint: short(r.get(9)?),
                        new_fingerprint: short(r.get(10)?),
                        outcome: safe_opt(r.get(11)?),
                        error: safe_opt(r.get(12)?),
                        reconciled: safe_opt(r.get(13)?),
                    })
                },
            )
            .map_err(AuditError::from_sql)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(AuditError::from_sql)?;
        Ok(rows)
    }

    /// Records that someone asked whose key this is (`civikey whose`): the key's fingerprint
    /// and the holders found in `store`, never the key. Settled at once (nothing changed).
    pub fn lookup(
        &mut self,
        key: &ApiKey,
        holders: &[ContactId],
        store: &str,
        profile: Option<&str>,
    ) -> Result<(), AuditError> {
        let fp = self.fingerprint(key);
        let found = if holders.is_empty() {
            "lookup: no holder".to_string()
        } else {
            let ids: Vec<String> = holders.iter().map(ToString::to_string).collect();
            format!("lookup: held by {}", ids.join(", "))
        };
        self.conn
            .execute(
                "INSERT INTO audit (time, operator, ssh_client, store, profile, contact_id,
                                    contact_name, action, old_fp, new_fp, outcome, outcome_time)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'lookup', ?8, ?8, 'done', ?1)",
                params![
                    now(),
                    self.actor.operator,
                    self.actor.ssh_client,
                    SafeText::new(store).as_str(),
                    profile.map(|p| SafeText::new(p).to_string()),
                    holders.first().copied().unwrap_or(0) as i64,
                    found,
                    fp,
                ],
            )
            .map_err(AuditError::from_sql)?;
        self.to_syslog(self.conn.last_insert_rowid(), "lookup");
        Ok(())
    }

    /// Sends record `id` to the system log when `syslog = true` (see [`crate::syslog`]):
    /// read back from the journal, so the line says what the record says. Never fails.
    fn to_syslog(&self, id: i64, phase: &str) {
        if !crate::syslog::enabled() {
            return;
        }
        let row = self.conn.query_row(
            "SELECT time, operator, ssh_client, profile, store, contact_id, action, outcome,
                    reconciled, old_fp, new_fp
               FROM audit WHERE id = ?1",
            [id],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, Option<String>>(8)?,
                    r.get::<_, Option<String>>(9)?,
                    r.get::<_, Option<String>>(10)?,
                ))
            },
        );
        let Ok((
            time,
            operator,
            ssh,
            profile,
            store,
            contact,
            action,
            outcome,
            reconciled,
            old,
            new,
        )) = row
        else {
            return;
        };
        crate::syslog::send(&crate::syslog::Record {
            time,
            phase,
            record: id,
            operator: &operator,
            ssh_client: ssh.as_deref(),
            profile: profile.as_deref(),
            store: &store,
            contact_id: contact as ContactId,
            action: &action,
            outcome: reconciled.as_deref().or(outcome.as_deref()),
            old_fp: old.as_deref(),
            new_fp: new.as_deref(),
        });
    }

    /// The last change civikey made to each contact's key in this store that took effect:
    /// when, and the full fingerprint of the key it left (None after a revoke). One query
    /// for the key health check, however many contacts there are.
    pub fn last_changes(
        &self,
    ) -> Result<std::collections::HashMap<ContactId, (i64, Option<String>)>, AuditError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT contact_id, time, new_fp, action FROM audit
                  WHERE store = ?1 AND action IN ('assign', 'undo', 'revoke')
                    AND (outcome = 'done' OR reconciled = 'applied')
                  ORDER BY id",
            )
            .map_err(AuditError::from_sql)?;
        let mut changes = std::collections::HashMap::new();
        let rows = stmt
            .query_map([&self.actor.store], |r| {
                Ok((
                    r.get::<_, i64>(0)? as ContactId,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(AuditError::from_sql)?;
        // When each (contact, key) was assigned: an undo puts back an older key, whose
        // age is that of its assign (as `last_set` says), never the time of the undo.
        let mut assigned: std::collections::HashMap<(ContactId, String), i64> =
            std::collections::HashMap::new();
        for row in rows {
            let (id, time, fp, action) = row.map_err(AuditError::from_sql)?;
            // Later records replace earlier ones: the last word on each contact wins.
            match (action.as_str(), fp) {
                ("undo", Some(fp)) => match assigned.get(&(id, fp.clone())) {
                    Some(&set) => {
                        changes.insert(id, (set, Some(fp)));
                    }
                    // civikey never assigned the restored key: its age is unknown.
                    None => {
                        changes.remove(&id);
                    }
                },
                ("assign", Some(fp)) => {
                    assigned.insert((id, fp.clone()), time);
                    changes.insert(id, (time, Some(fp)));
                }
                (_, fp) => {
                    changes.insert(id, (time, fp));
                }
            }
        }
        Ok(changes)
    }

    /// When civikey set the key `contact_id` holds in this store, and who did it. After an
    /// undo that is when the restored key was first assigned (None when civikey never
    /// assigned it: its age is unknown), never the time of the undo.
    pub fn last_set(&self, contact_id: ContactId) -> Result<Option<(i64, String)>, AuditError> {
        let applied = "(outcome = 'done' OR reconciled = 'applied')";
        let last: Option<(i64, String, String, Option<String>, i64)> = self
            .conn
            .query_row(
                &format!(
                    "SELECT time, operator, action, new_fp, id FROM audit
                      WHERE store = ?1 AND contact_id = ?2 AND action IN ('assign', 'undo')
                        AND {applied}
                      ORDER BY id DESC LIMIT 1"
                ),
                params![self.actor.store, contact_id as i64],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()
            .map_err(AuditError::from_sql)?;
        let found = match last {
            None => None,
            Some((time, operator, action, _, _)) if action == "assign" => Some((time, operator)),
            // An undo put back an older key: its age is that of the assign that set it.
            Some((_, _, _, None, _)) => None,
            Some((_, _, _, Some(fp), id)) => self
                .conn
                .query_row(
                    &format!(
                        "SELECT time, operator FROM audit
                          WHERE store = ?1 AND contact_id = ?2 AND action = 'assign'
                            AND new_fp = ?3 AND id < ?4 AND {applied}
                          ORDER BY id DESC LIMIT 1"
                    ),
                    params![self.actor.store, contact_id as i64, fp, id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(AuditError::from_sql)?,
        };
        // Read back as untrusted, like `entries`: the operator name reaches the screen.
        Ok(found.map(|(time, operator)| (time, SafeText::new(&operator).to_string())))
    }
}

/// Adds the columns of [`ADDED_COLUMNS`] a journal made by an earlier civikey lacks.
fn add_missing_columns(conn: &Connection) -> Result<(), AuditError> {
    let missing = |conn: &Connection| -> Result<Vec<(&str, &str)>, AuditError> {
        let mut stmt = conn
            .prepare("SELECT name FROM pragma_table_info('audit')")
            .map_err(AuditError::from_sql)?;
        let have = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(AuditError::from_sql)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(AuditError::from_sql)?;
        Ok(ADDED_COLUMNS
            .into_iter()
            .filter(|(name, _)| !have.iter().any(|h| h == name))
            .collect())
    };
    if missing(conn)?.is_empty() {
        return Ok(());
    }
    // One process at a time: two civikeys opening an old journal together must not both
    // add a column.
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)
        .map_err(AuditError::from_sql)?;
    for (name, kind) in missing(&tx)? {
        tx.execute_batch(&format!("ALTER TABLE audit ADD COLUMN {name} {kind}"))
            .map_err(AuditError::from_sql)?;
    }
    tx.commit().map_err(AuditError::from_sql)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn load_or_make_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>, AuditError> {
    if fs::metadata(path).is_ok() {
        return read_secret(path);
    }
    let mut secret = Zeroizing::new(vec![0u8; 32]);
    let mut tag = [0u8; 8];
    OsKeySource
        .fill(&mut secret)
        .and_then(|()| OsKeySource.fill(&mut tag))
        .map_err(|e| AuditError(e.to_string()))?;
    // Written whole under a name of its own, then linked into place (which never replaces
    // a file): civikeys starting together all end up with one secret, and none reads it
    // half-written.
    let mut fresh = path.as_os_str().to_owned();
    fresh.push(format!(".{}.new", hex(&tag)));
    let fresh = PathBuf::from(fresh);
    fsperm::write_new_private_file(&fresh, &secret).map_err(AuditError)?;
    let linked = fs::hard_link(&fresh, path);
    let _ = fs::remove_file(&fresh);
    match linked {
        Ok(()) => Ok(secret),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_secret(path),
        Err(e) => Err(AuditError(format!("cannot create {}: {e}", path.display()))),
    }
}

fn read_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>, AuditError> {
    let meta = fs::metadata(path)
        .map_err(|e| AuditError(format!("cannot read {}: {e}", path.display())))?;
    fsperm::refuse_if_exposed(path, &meta).map_err(AuditError)?;
    let bytes = Zeroizing::new(
        fs::read(path).map_err(|e| AuditError(format!("cannot read {}: {e}", path.display())))?,
    );
    if bytes.len() < 32 {
        return Err(AuditError(format!(
            "{} is shorter than 32 bytes; it is not a civikey audit secret",
            path.display()
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(dir: &Path) -> Journal {
        Journal::open(
            dir,
            Actor {
                operator: "alice".into(),
                store: "sqlite:/x".into(),
                ..Actor::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn files_are_private_and_secret_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let key = ApiKey::generate().unwrap();
        let fp1 = journal(dir.path()).fingerprint(&key);
        let fp2 = journal(dir.path()).fingerprint(&key);
        assert_eq!(fp1, fp2, "the secret is kept between runs");
        use std::os::unix::fs::MetadataExt;
        for f in ["audit.key", "audit.sqlite"] {
            assert_eq!(
                fs::metadata(dir.path().join(f)).unwrap().mode() & 0o777,
                0o600,
                "{f}"
            );
        }
        let other = tempfile::tempdir().unwrap();
        assert_ne!(
            journal(other.path()).fingerprint(&key),
            fp1,
            "fingerprints depend on the secret"
        );
    }

    #[test]
    fn the_journal_zeroes_what_it_frees() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal(dir.path());
        let on: i64 = j
            .conn
            .query_row("PRAGMA secure_delete", [], |r| r.get(0))
            .unwrap();
        assert_eq!(on, 1);
    }

    #[test]
    fn intent_then_outcome_and_history() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = journal(dir.path());
        let old = ApiKey::generate().unwrap();
        let new = ApiKey::generate().unwrap();
        let rec = j
            .intent(
                7,
                &SafeText::new("Ada"),
                Action::Assign,
                Some(&old),
                Some(&new),
            )
            .unwrap();
        assert_eq!(
            j.unsettled(7).unwrap().len(),
            1,
            "in flight counts as unsettled"
        );
        j.outcome(rec, Outcome::Done, None).unwrap();
        assert!(j.unsettled(7).unwrap().is_empty());
        let e = &j.entries(Some(7), false, 10).unwrap()[0];
        assert_eq!(e.outcome.as_deref(), Some("done"));
        assert_eq!(
            e.new_fingerprint.as_deref(),
            Some(&j.short_fingerprint(&new)[..])
        );
        assert_eq!(e.operator, "alice");
        assert!(j.last_set(7).unwrap().is_some());
        assert!(j.last_set(8).unwrap().is_none());
    }

    #[test]
    fn reconcile_settles_unknown_outcomes() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = journal(dir.path());
        let old = ApiKey::generate().unwrap();
        let new = ApiKey::generate().unwrap();
        let a = j
            .intent(
                1,
                &SafeText::new("A"),
                Action::Assign,
                Some(&old),
                Some(&new),
            )
            .unwrap();
        j.outcome(a, Outcome::Unknown, Some("timeout")).unwrap();
        j.intent(
            2,
            &SafeText::new("B"),
            Action::Assign,
            Some(&old),
            Some(&new),
        )
        .unwrap(); // crash: no outcome
        assert_eq!(j.unsettled_contacts().unwrap().len(), 2);
        let pending = j.settleable(1).unwrap();
        assert_eq!(j.settle(&pending, Some(&new)).unwrap(), 1);
        let pending = j.settleable(2).unwrap();
        assert_eq!(j.settle(&pending, Some(&old)).unwrap(), 1);
        let e1 = &j.entries(Some(1), false, 1).unwrap()[0];
        assert_eq!(e1.reconciled.as_deref(), Some("applied"));
        let e2 = &j.entries(Some(2), false, 1).unwrap()[0];
        assert_eq!(e2.reconciled.as_deref(), Some("not-applied"));
        assert_eq!(e2.outcome.as_deref(), Some("unknown"));
        assert!(j.unsettled_contacts().unwrap().is_empty());
        assert!(
            j.last_set(1).unwrap().is_some(),
            "an applied unknown counts as set"
        );
    }

    #[test]
    fn a_journal_from_before_the_new_columns_gets_them() {
        let dir = tempfile::tempdir().unwrap();
        let old_schema = SCHEMA
            .replace(
                "reconciled   TEXT,                      -- for unknown: applied | not-applied | superseded",
                "reconciled   TEXT",
            )
            .replace("    writer       TEXT,                      -- lease token of the process that wrote it\n", "")
            .replace("    out_file     TEXT                       -- bulk: the out file the new key went to\n", "");
        assert!(!old_schema.contains("writer"), "{old_schema}");
        {
            use std::os::unix::fs::OpenOptionsExt;
            let path = dir.path().join("audit.sqlite");
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .unwrap();
            Connection::open(&path)
                .unwrap()
                .execute_batch(&old_schema)
                .unwrap();
        }
        let mut j = journal(dir.path());
        let key = ApiKey::generate().unwrap();
        let rec = j
            .intent(5, &SafeText::new("E"), Action::Assign, None, Some(&key))
            .unwrap();
        j.outcome(rec, Outcome::Done, None).unwrap();
        assert_eq!(
            j.entries(Some(5), true, 1).unwrap()[0].outcome.as_deref(),
            Some("done")
        );
    }

    #[test]
    fn a_live_writers_record_is_not_settleable_until_it_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = journal(dir.path());
        let other = journal(dir.path());
        let new = ApiKey::generate().unwrap();
        writer
            .intent(4, &SafeText::new("D"), Action::Assign, None, Some(&new))
            .unwrap();
        assert!(
            other.settleable(4).unwrap().is_empty(),
            "writer still alive"
        );
        assert_eq!(writer.settleable(4).unwrap().len(), 1, "its own record");
        drop(writer);
        assert_eq!(other.settleable(4).unwrap().len(), 1, "writer gone");
    }

    #[test]
    fn no_key_material_in_the_journal_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = journal(dir.path());
        let key = ApiKey::generate().unwrap();
        let rec = j
            .intent(3, &SafeText::new("C"), Action::Assign, None, Some(&key))
            .unwrap();
        j.outcome(rec, Outcome::Done, None).unwrap();
        drop(j);
        let bytes = fs::read(dir.path().join("audit.sqlite")).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(key.expose());
        assert!(!text.contains(key.expose()));
        assert!(!text.contains(&b64[..20]));
    }

    #[test]
    fn exposed_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        journal(dir.path());
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(
            dir.path().join("audit.key"),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let err = Journal::open(dir.path(), Actor::default()).err().unwrap();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    fn done(
        j: &mut Journal,
        id: ContactId,
        action: Action,
        old: Option<&ApiKey>,
        new: Option<&ApiKey>,
    ) {
        let rec = j
            .intent(id, &SafeText::new("Ada"), action, old, new)
            .unwrap();
        j.outcome(rec, Outcome::Done, None).unwrap();
    }

    fn set_time(j: &Journal, time: i64) {
        j.conn
            .execute(
                "UPDATE audit SET time = ?1 WHERE id = (SELECT max(id) FROM audit)",
                [time],
            )
            .unwrap();
    }

    #[test]
    fn an_undone_key_keeps_the_age_of_its_assign_or_has_none() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = journal(dir.path());
        let (k0, k1, k2) = (
            ApiKey::generate().unwrap(),
            ApiKey::generate().unwrap(),
            ApiKey::generate().unwrap(),
        );
        done(&mut j, 7, Action::Assign, Some(&k0), Some(&k1));
        set_time(&j, 1_000);
        done(&mut j, 7, Action::Assign, Some(&k1), Some(&k2));
        set_time(&j, 2_000);
        done(&mut j, 7, Action::Undo, Some(&k2), Some(&k1));
        set_time(&j, 3_000);
        assert_eq!(j.last_set(7).unwrap().map(|s| s.0), Some(1_000), "k1's age");
        // Undoing the first assign brings back k0, which civikey never set: unknown.
        done(&mut j, 7, Action::Assign, Some(&k1), Some(&k2));
        done(&mut j, 8, Action::Assign, Some(&k0), Some(&k1));
        done(&mut j, 8, Action::Undo, Some(&k1), Some(&k0));
        assert_eq!(j.last_set(8).unwrap(), None, "k0's age is unknown");
        // A revoke undone: the key that comes back keeps the age of its assign.
        done(&mut j, 9, Action::Assign, None, Some(&k1));
        set_time(&j, 5_000);
        done(&mut j, 9, Action::Revoke, Some(&k1), None);
        done(&mut j, 9, Action::Undo, None, Some(&k1));
        assert_eq!(j.last_set(9).unwrap().map(|s| s.0), Some(5_000));
    }

    #[test]
    fn entries_are_of_this_store_unless_all_are_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let key = ApiKey::generate().unwrap();
        let mut here = journal(dir.path());
        done(&mut here, 1, Action::Assign, None, Some(&key));
        drop(here);
        let mut other = Journal::open(
            dir.path(),
            Actor {
                operator: "bob".into(),
                store: "https://other.example.org".into(),
                ..Actor::default()
            },
        )
        .unwrap();
        // Contact 1 of another store: another person.
        done(&mut other, 1, Action::Revoke, Some(&key), None);
        let here = journal(dir.path());
        let mine = here.entries(None, false, 10).unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].store, "sqlite:/x");
        assert_eq!(here.entries(Some(1), false, 10).unwrap().len(), 1);
        let all = here.entries(None, true, 10).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].store, "https://other.example.org");
        assert_eq!(
            other.entries(Some(1), false, 10).unwrap()[0].action,
            "revoke"
        );
    }
}
