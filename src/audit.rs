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
use crate::key::{ApiKey, KeySource, OsKeySource};
use crate::sanitize::SafeText;
use crate::store::ContactId;

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
    action       TEXT NOT NULL,             -- assign | revoke | undo
    old_fp       TEXT,                      -- HMAC-SHA256 hex of the old key, NULL = none
    new_fp       TEXT,                      -- HMAC-SHA256 hex of the new key, NULL = none
    outcome      TEXT,                      -- NULL while in flight; done | conflict | failed | unknown
    error        TEXT,
    outcome_time INTEGER,
    reconciled   TEXT                       -- for unknown: applied | not-applied | superseded
);
CREATE INDEX IF NOT EXISTS audit_contact ON audit (store, contact_id, id);
";

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
        fsperm::refuse_if_folder_exposed(dir).map_err(AuditError)?;
        fsperm::create_private_dir(dir).map_err(AuditError)?;
        let secret = load_or_make_secret(&dir.join("audit.key"))?;
        let path = dir.join("audit.sqlite");
        if let Ok(meta) = fs::metadata(&path) {
            fsperm::refuse_if_exposed(&path, &meta).map_err(AuditError)?;
        } else {
            use std::os::unix::fs::OpenOptionsExt;
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| AuditError(format!("cannot create {}: {e}", path.display())))?;
        }
        let conn = Connection::open(&path).map_err(AuditError::from_sql)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(AuditError::from_sql)?;
        // FULL: the intent is on disk before the store is touched. secure_delete: freed
        // pages are zeroed, so nothing deleted from the journal lingers in the file.
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA secure_delete = ON;")
            .map_err(AuditError::from_sql)?;
        conn.execute_batch(SCHEMA).map_err(AuditError::from_sql)?;
        Ok(Journal {
            conn,
            secret,
            actor,
            path,
        })
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
                                    contact_name, action, old_fp, new_fp)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
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
                ],
            )
            .map_err(AuditError::from_sql)?;
        Ok(RecordId(self.conn.last_insert_rowid()))
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

    /// Settles unknown outcomes for a contact against the key the store holds now:
    /// `applied` if it is the intended new key, `not-applied` if it is still the old one,
    /// `superseded` if it is neither (someone changed it since). Returns how many settled.
    pub fn reconcile(
        &mut self,
        contact_id: ContactId,
        current: Option<&ApiKey>,
    ) -> Result<usize, AuditError> {
        let current_fp = current.map(|k| self.fingerprint(k));
        let records = self.unsettled(contact_id)?;
        for (record, old_fp, new_fp) in &records {
            let verdict = if current_fp == *new_fp {
                "applied"
            } else if current_fp == *old_fp {
                "not-applied"
            } else {
                "superseded"
            };
            self.conn
                .execute(
                    "UPDATE audit SET reconciled = ?1,
                            outcome = coalesce(outcome, 'unknown'),
                            outcome_time = coalesce(outcome_time, ?2)
                      WHERE id = ?3",
                    params![verdict, now(), record.0],
                )
                .map_err(AuditError::from_sql)?;
        }
        Ok(records.len())
    }

    /// Newest first, of this store (of every store with `all_stores`: contact ids of two
    /// stores are different people); `contact` narrows to one contact.
    pub fn entries(
        &self,
        contact: Option<ContactId>,
        all_stores: bool,
        limit: usize,
    ) -> Result<Vec<Entry>, AuditError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, time, operator, ssh_client, store, profile, contact_id, contact_name,
                        action, old_fp, new_fp, outcome, error, reconciled
                   FROM audit WHERE (?1 IS NULL OR contact_id = ?1) AND (?3 OR store = ?4)
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
                    self.actor.store
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn load_or_make_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>, AuditError> {
    match fs::metadata(path) {
        Ok(meta) => {
            fsperm::refuse_if_exposed(path, &meta).map_err(AuditError)?;
            let bytes = Zeroizing::new(
                fs::read(path)
                    .map_err(|e| AuditError(format!("cannot read {}: {e}", path.display())))?,
            );
            if bytes.len() < 32 {
                return Err(AuditError(format!(
                    "{} is shorter than 32 bytes; it is not a civikey audit secret",
                    path.display()
                )));
            }
            Ok(bytes)
        }
        Err(_) => {
            let mut secret = Zeroizing::new(vec![0u8; 32]);
            OsKeySource
                .fill(&mut secret)
                .map_err(|e| AuditError(e.to_string()))?;
            fsperm::write_new_private_file(path, &secret).map_err(AuditError)?;
            Ok(secret)
        }
    }
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
        assert_eq!(j.reconcile(1, Some(&new)).unwrap(), 1);
        assert_eq!(j.reconcile(2, Some(&old)).unwrap(), 1);
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
