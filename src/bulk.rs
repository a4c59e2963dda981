//! Bulk rotation: many contacts, one pass, each through the full rotation workflow, the
//! new keys written to a private CSV file the operator named (never all shown on screen).
//!
//! Contacts are rotated in batches of the store's [`ContactStore::rotation_batch`]
//! ([`rotation::assign_batch`]: one request per workflow step, so REST needs about seven
//! requests per 50 contacts, not seven per contact; local SQL stores go one by one).
//! Interruption safety: the stop flag (Ctrl-C, SIGTERM, SIGHUP) is checked between
//! batches, never inside one, and each contact's line is written and synced to the out
//! file right after its batch is read back and its outcome journaled. So each contact is
//! either rotated, in the out file and in the journal, or untouched. A line that cannot be
//! written puts the old key back (see [`rotation::put_back`]), and so does every later
//! contact of that batch (their keys could not reach the file either); later batches are
//! not attempted. A SIGKILL or power loss between a batch's store writes and its lines is
//! the one gap: those contacts (at most one batch) then hold keys nobody has. Each intent
//! of a bulk run records its out file, so `civikey audit` flags a "done" record whose
//! contact is missing from that file ([`undelivered`]); rotate those contacts again.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::audit::{Entry, Journal};
use crate::key::{ApiKey, KeySource};
use crate::rotation::{self, Expectation, RotationError};
use crate::sanitize::SafeText;
use crate::store::{ContactId, ContactStore, StoreError};

/// How one contact's rotation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BulkOutcome {
    Done,
    Conflict,
    Failed(String),
    /// Not attempted: the run was interrupted first.
    Skipped,
}

impl BulkOutcome {
    pub fn label(&self) -> &'static str {
        match self {
            BulkOutcome::Done => "done",
            BulkOutcome::Conflict => "conflict",
            BulkOutcome::Failed(_) => "failed",
            BulkOutcome::Skipped => "skipped",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BulkResult {
    pub id: ContactId,
    pub name: SafeText,
    pub outcome: BulkOutcome,
}

/// What an out file holds and how its cells were made safe: said where it is created
/// (stderr, the TUI's results), never inside it, so its first line stays the header that
/// spreadsheets and CSV readers parse.
pub const OUT_FILE_NOTE: &str = "new API keys: keep this file private; cells that began with = + - @ tab or CR are prefixed with ' so spreadsheets show them as text, never run them as formulas";
/// The first line of every out file: the columns the hand-over needs.
const OUT_FILE_HEADER: &[u8] = b"contact_id,display_name,email,api_key\n";
/// The first line of an out file of several profiles (`rotate --email --all-profiles`):
/// the same columns, then the profile each key belongs to.
const PROFILES_OUT_FILE_HEADER: &[u8] = b"contact_id,display_name,email,api_key,profile\n";

/// The out file: created new (never overwritten), 0600, one synced line per rotated contact.
///
/// It is created with O_CREAT|O_EXCL|O_NOFOLLOW inside a folder opened first and checked
/// through its descriptor, and every line is written through the descriptor of that one
/// open: the path is never opened again, so swapping it for a symlink after it was made
/// redirects nothing.
pub struct OutFile {
    file: File,
    /// Absolute path, as recorded in the journal (for the check that a key reached it).
    path: PathBuf,
    /// In a file of several profiles: the profile the next lines belong to.
    profile: Option<String>,
}

impl OutFile {
    pub fn create(path: &Path) -> Result<Self, String> {
        Self::create_with_header(path, OUT_FILE_HEADER)
    }

    /// An out file for keys of several profiles: each line ends with its profile (set by
    /// [`Self::set_profile`] before each profile's rotations).
    pub fn create_for_profiles(path: &Path) -> Result<Self, String> {
        let mut out = Self::create_with_header(path, PROFILES_OUT_FILE_HEADER)?;
        out.profile = Some(String::new());
        Ok(out)
    }

    /// The profile the next lines of a file of several profiles belong to.
    pub fn set_profile(&mut self, profile: &str) {
        if self.profile.is_some() {
            self.profile = Some(profile.to_string());
        }
    }

    fn create_with_header(path: &Path, header: &[u8]) -> Result<Self, String> {
        use rustix::fs::{Mode, OFlags};
        let name = match path.file_name() {
            Some(name) if !path.as_os_str().as_encoded_bytes().ends_with(b"/") => name,
            _ => return Err(format!("{} does not name a file", path.display())),
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.exists() {
            // A mistyped folder is not made: the keys would land somewhere unexpected.
            return Err(format!(
                "the folder {} does not exist; create it first (mkdir -m 700 FOLDER), nothing was rotated",
                dir.display()
            ));
        }
        let dir_fd = rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| format!("cannot open folder {}: {e}", dir.display()))?;
        let stat = rustix::fs::fstat(&dir_fd)
            .map_err(|e| format!("cannot inspect folder {}: {e}", dir.display()))?;
        check_out_dir(dir, stat.st_uid, stat.st_mode)?;
        check_out_path(dir, (stat.st_dev, stat.st_ino))?;
        let fd = rustix::fs::openat(
            &dir_fd,
            name,
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let mut file = File::from(fd);
        #[cfg(debug_assertions)]
        debug_hooks::after_out_file_created(path);
        file.write_all(header)
            .and_then(|()| file.sync_all())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let absolute = std::fs::canonicalize(dir)
            .map(|d| d.join(name))
            .unwrap_or_else(|_| path.to_path_buf());
        Ok(OutFile {
            file,
            path: absolute,
            profile: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The contact ids the file holds for the profile written last (every line of a file
    /// of one store), read back through the descriptor it was written with.
    fn ids_in_file(&self) -> std::io::Result<HashSet<ContactId>> {
        use std::os::unix::fs::FileExt;
        let len = self.file.metadata()?.len();
        let mut bytes = zeroize::Zeroizing::new(vec![0u8; usize::try_from(len).unwrap_or(0)]);
        self.file.read_exact_at(&mut bytes, 0)?;
        let profile = self.profile.clone().unwrap_or_default();
        Ok(ids_in_csv(&bytes)
            .into_iter()
            .filter(|(_, p)| *p == profile)
            .map(|(id, _)| id)
            .collect())
    }
}

/// One rotated contact's line: what the out file (or stdout, for `--json`) gets for it.
pub struct KeyLine<'a> {
    /// The contact as the rotation read it back.
    pub contact: &'a crate::store::Contact,
    pub key: &'a ApiKey,
    /// The journal's short fingerprint of the new key (as `civikey audit` shows it).
    pub fingerprint: String,
}

/// Where a bulk run's new keys go, one entry per rotated contact: the out file, or, for
/// `rotate --ids-from FILE --json`, one JSON line each on stdout (the CLI's sink).
pub trait KeySink {
    /// Writes one contact's hand-over, durably (synced, or flushed to the pipe), before it
    /// returns: an error means the key reached nobody (its old key is put back).
    fn deliver(&mut self, line: &KeyLine<'_>) -> std::io::Result<()>;
    /// The out file the journal records for each intent, for `civikey audit`'s check that
    /// the key reached it; None when there is no file to check.
    fn out_file(&self) -> Option<&Path>;
    /// The contact ids delivered as read back after the run, where they can be (a file);
    /// None where nothing can be read back (a pipe).
    fn delivered_ids(&self) -> Option<std::io::Result<HashSet<ContactId>>>;
}

impl KeySink for OutFile {
    fn deliver(&mut self, line: &KeyLine<'_>) -> std::io::Result<()> {
        #[cfg(debug_assertions)]
        debug_hooks::out_line_write()?;
        let mut bytes = zeroize::Zeroizing::new(Vec::new());
        {
            let mut writer = csv::Writer::from_writer(&mut *bytes);
            let id = line.contact.id.to_string();
            let mut cells = vec![
                csv_cell(&id),
                csv_cell(line.contact.display_name.as_str()),
                csv_cell(line.contact.email.as_ref().map_or("", SafeText::as_str)),
                csv_cell(line.key.expose()),
            ];
            // A file of several profiles: each line names the profile its key belongs to.
            if let Some(profile) = &self.profile {
                cells.push(csv_cell(profile));
            }
            writer.write_record(cells.iter().map(|c| c.as_ref()))?;
            writer.flush()?;
        }
        self.file.write_all(&bytes)?;
        self.file.sync_data()
    }

    fn out_file(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn delivered_ids(&self) -> Option<std::io::Result<HashSet<ContactId>>> {
        Some(self.ids_in_file())
    }
}

/// Refuses a folder for the out file that another user could write into: one owned by
/// someone other than this user or root, or open to group or others for writing without
/// the sticky bit (with it, others cannot rename or delete this user's files there).
fn check_out_dir(dir: &Path, owner: u32, mode: u32) -> Result<(), String> {
    let me = rustix::process::geteuid().as_raw();
    let fix = "choose a folder only you can write (e.g. mkdir -m 700 ~/civikey-keys)";
    if owner != me && owner != 0 {
        return Err(format!(
            "{} belongs to another user (uid {owner}), who could swap the out file; refused, nothing was rotated: {fix}",
            dir.display()
        ));
    }
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(format!(
            "{} can be written by other users (mode {:04o}, no sticky bit), who could swap the out file; refused, nothing was rotated: {fix}",
            dir.display(),
            mode & 0o7777
        ));
    }
    Ok(())
}

/// Refuses an out folder reached through a path another user could change: every folder
/// above it must pass [`check_out_dir`] too, and a symlink on the way must belong to this
/// user or root. Checked after the folder was opened, and the folder the path leads to now
/// must be the one opened (`opened`: device and inode), so a path swapped in between is
/// caught: an attacker can change only entries the checks refuse.
fn check_out_path(dir: &Path, opened: (u64, u64)) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let cannot = |p: &Path, e: std::io::Error| format!("cannot inspect {}: {e}", p.display());
    let absolute = std::path::absolute(dir).map_err(|e| cannot(dir, e))?;
    let me = rustix::process::geteuid().as_raw();
    for step in absolute.ancestors() {
        let meta = std::fs::symlink_metadata(step).map_err(|e| cannot(step, e))?;
        if meta.file_type().is_symlink() && meta.uid() != me && meta.uid() != 0 {
            return Err(format!(
                "{} is a symlink of another user (uid {}), who could point it elsewhere; refused, nothing was rotated",
                step.display(),
                meta.uid()
            ));
        }
    }
    let real = std::fs::canonicalize(&absolute).map_err(|e| cannot(dir, e))?;
    for step in real.ancestors() {
        let meta = std::fs::symlink_metadata(step).map_err(|e| cannot(step, e))?;
        check_out_dir(step, meta.uid(), meta.mode())?;
    }
    let now = std::fs::metadata(&real).map_err(|e| cannot(dir, e))?;
    if (now.dev(), now.ino()) != opened {
        return Err(format!(
            "{} changed while civikey opened it; refused, nothing was rotated",
            dir.display()
        ));
    }
    Ok(())
}

/// One CSV cell as civikey writes it: text a spreadsheet would take as a formula (starting
/// with = + - @ tab or CR, OWASP's rule) gets a leading `'`, so it is shown, never run.
pub fn csv_cell(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{text}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// The contacts in an out file's text: the id (first column) and the profile (fifth, in a
/// file of several profiles; else empty). The note line is skipped.
fn ids_in_csv(bytes: &[u8]) -> HashSet<(ContactId, String)> {
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .flexible(true)
        .from_reader(bytes);
    let mut record = csv::ByteRecord::new();
    let mut ids = HashSet::new();
    while let Ok(true) = reader.read_byte_record(&mut record) {
        if let Some(id) = record
            .get(0)
            .and_then(|f| std::str::from_utf8(f).ok())
            .and_then(|f| f.parse::<ContactId>().ok())
        {
            let profile = record
                .get(4)
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default();
            ids.insert((id, profile));
        }
    }
    ids
}

/// Journal records of bulk rotations that say "done" although the out file they were
/// written for exists and lacks the contact's line (civikey was killed in between): each
/// such contact holds a key nobody has. Out files that can no longer be read are not judged.
pub fn undelivered(journal: &Journal, entries: &[Entry]) -> HashSet<i64> {
    let Some(oldest) = entries.iter().map(|e| e.id).min() else {
        return HashSet::new();
    };
    let shown: HashSet<i64> = entries.iter().map(|e| e.id).collect();
    let Ok(records) = journal.bulk_deliveries(oldest) else {
        return HashSet::new();
    };
    type Written = Option<HashSet<(ContactId, String)>>;
    let mut files: std::collections::HashMap<String, Written> = std::collections::HashMap::new();
    records
        .into_iter()
        .filter(|d| shown.contains(&d.record))
        .filter(|d| {
            let ids = files.entry(d.out_file.clone()).or_insert_with(|| {
                read_regular_file(Path::new(&d.out_file), MAX_OUT_FILE_BYTES)
                    .ok()
                    .map(|bytes| ids_in_csv(&zeroize::Zeroizing::new(bytes)))
            });
            // A file of several profiles names each line's profile; a plain one none.
            ids.as_ref().is_some_and(|ids| {
                !ids.contains(&(d.contact, d.profile.clone().unwrap_or_default()))
                    && !ids.contains(&(d.contact, String::new()))
            })
        })
        .map(|d| d.record)
        .collect()
}

/// Rotates each contact in `items` (id and the key state the operator confirmed against).
/// `progress` is called after each contact with (index, total, result). At the end the out
/// file is read back through its descriptor: a contact reported done whose line is not
/// there is reported failed (its key reached nobody).
pub fn rotate_many(
    store: &mut dyn ContactStore,
    journal: &mut Journal,
    keys: &mut dyn KeySource,
    items: &[(ContactId, Expectation)],
    out: &mut dyn KeySink,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(usize, usize, &BulkResult),
) -> Vec<BulkResult> {
    let total = items.len();
    let mut results = Vec::with_capacity(total);
    journal.set_out_file(out.out_file());
    // An out file that cannot be written stops the run: the next keys would not reach it
    // either.
    let mut out_failed: Option<String> = None;
    for chunk in items.chunks(store.rotation_batch().max(1)) {
        if stop.load(Ordering::SeqCst) || out_failed.is_some() {
            for (id, _) in chunk {
                let result = BulkResult {
                    id: *id,
                    name: SafeText::default(),
                    outcome: BulkOutcome::Skipped,
                };
                progress(results.len() + 1, total, &result);
                results.push(result);
            }
            continue;
        }
        let batch: Vec<(ContactId, &Expectation)> = chunk.iter().map(|(id, e)| (*id, e)).collect();
        let done = rotation::assign_batch(store, journal, keys, &batch);
        for ((id, _), (record, assigned)) in chunk.iter().zip(done) {
            let result = deliver(
                store,
                journal,
                keys,
                *id,
                record,
                assigned,
                out,
                &mut out_failed,
            );
            progress(results.len() + 1, total, &result);
            results.push(result);
        }
    }
    journal.set_out_file(None);
    let Some(written) = out.delivered_ids() else {
        return results;
    };
    for result in results
        .iter_mut()
        .filter(|r| r.outcome == BulkOutcome::Done)
    {
        let missing = match &written {
            Ok(ids) => (!ids.contains(&result.id)).then(|| "its line is missing".to_string()),
            Err(e) => Some(format!("it cannot be read back ({e})")),
        };
        if let Some(why) = missing {
            result.outcome = BulkOutcome::Failed(format!(
                "rotated, but the out file does not hold its key ({why}): nobody holds this contact's key, rotate it again"
            ));
        }
    }
    results
}

/// A contact's rotation into its line of the out file. A line that cannot be written (or
/// an out file that already failed, `out_failed`) puts the old key back.
#[allow(clippy::too_many_arguments)]
fn deliver(
    store: &mut dyn ContactStore,
    journal: &mut Journal,
    keys: &mut dyn KeySource,
    id: ContactId,
    record: Option<crate::audit::RecordId>,
    assigned: Result<rotation::Assigned, RotationError>,
    out: &mut dyn KeySink,
    out_failed: &mut Option<String>,
) -> BulkResult {
    let failed = |name: SafeText, e: String| BulkResult {
        id,
        name,
        outcome: BulkOutcome::Failed(e),
    };
    match assigned {
        Ok(done) => {
            let name = done.contact.display_name.clone();
            #[cfg(debug_assertions)]
            debug_hooks::before_out_line();
            let written = match out_failed {
                Some(reason) => Err(reason.clone()),
                None => out
                    .deliver(&KeyLine {
                        contact: &done.contact,
                        key: &done.key,
                        fingerprint: journal.short_fingerprint(&done.key),
                    })
                    .map_err(|e| match out.out_file() {
                        Some(_) => format!("the out file could not be written ({e})"),
                        None => format!("stdout could not be written ({e})"),
                    }),
            };
            match written {
                Ok(()) => BulkResult {
                    id,
                    name,
                    outcome: BulkOutcome::Done,
                },
                Err(reason) => {
                    let message = match rotation::put_back_record(
                        store, journal, keys, done, record, &reason,
                    ) {
                        Ok(message) | Err(message) => message,
                    };
                    *out_failed = Some(reason);
                    failed(name, message)
                }
            }
        }
        Err(
            RotationError::Store(StoreError::Conflict)
            | RotationError::ChangedSinceSeen
            | RotationError::ReplacedMeanwhile,
        ) => BulkResult {
            id,
            name: SafeText::default(),
            outcome: BulkOutcome::Conflict,
        },
        Err(e) => failed(SafeText::default(), e.to_string()),
    }
}

/// What the audit view shows as the outcome of a record [`undelivered`] flags (fits its
/// 15-column outcome cell).
pub const UNDELIVERED_OUTCOME: &str = "undelivered";

/// Marks the records [`undelivered`] finds, for the audit view: their outcome becomes
/// [`UNDELIVERED_OUTCOME`] and their error says what it means.
pub fn mark_undelivered(journal: &Journal, entries: &mut [Entry]) {
    let flagged = undelivered(journal, entries);
    for e in entries.iter_mut().filter(|e| flagged.contains(&e.id)) {
        e.outcome = Some(UNDELIVERED_OUTCOME.into());
        e.error = Some(
            "the key is not in its out file: nobody holds this contact's key, rotate it again"
                .into(),
        );
    }
}

/// The largest `--ids-from` file read (some 2 million ids), and the longest line in it.
pub const MAX_IDS_FILE_BYTES: u64 = 16 << 20;
pub const MAX_ID_LINE_BYTES: usize = 1024;
/// The largest out file `undelivered` reads back.
const MAX_OUT_FILE_BYTES: u64 = 256 << 20;

/// Reads a regular file of at most `cap` bytes. It is opened non-blocking and checked
/// through its descriptor before anything is read, so a FIFO, a device (`/dev/zero`), a
/// socket or a folder is refused at once instead of hanging or filling memory.
pub fn read_regular_file(path: &Path, cap: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!(
            "{} is not a regular file (a FIFO, device, socket or folder); refused",
            path.display()
        ));
    }
    let too_big = || {
        format!(
            "{} is larger than {} MiB; refused",
            path.display(),
            cap >> 20
        )
    };
    if meta.len() > cap {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > cap {
        return Err(too_big());
    }
    Ok(bytes)
}

/// Reads the `--ids-from` file: a regular file of at most [`MAX_IDS_FILE_BYTES`], UTF-8,
/// parsed by [`parse_ids`].
pub fn read_ids_file(path: &Path) -> Result<Vec<ContactId>, String> {
    let bytes = if path == Path::new("-") {
        // `--ids-from -`: the ids come on stdin (a pipe from another command).
        use std::io::Read;
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .take(MAX_IDS_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read the ids from stdin: {e}"))?;
        if bytes.len() as u64 > MAX_IDS_FILE_BYTES {
            return Err(format!(
                "stdin holds more than {} MiB of ids; refused",
                MAX_IDS_FILE_BYTES >> 20
            ));
        }
        bytes
    } else {
        read_regular_file(path, MAX_IDS_FILE_BYTES)?
    };
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("{} is not UTF-8 text; refused", path.display()))?;
    parse_ids(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads contact ids, one per line; blank lines and `#` comments are ignored, repeats
/// dropped (the first stays). Linear in the size of the text.
pub fn parse_ids(text: &str) -> Result<Vec<ContactId>, String> {
    let mut ids = Vec::new();
    let mut seen = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        if line.len() > MAX_ID_LINE_BYTES {
            return Err(format!(
                "line {} is longer than {MAX_ID_LINE_BYTES} bytes; it is not a contact id",
                n + 1
            ));
        }
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let id = line.parse::<ContactId>().map_err(|_| {
            format!(
                "line {}: {:?} is not a contact id",
                n + 1,
                SafeText::new(line).truncated(40)
            )
        })?;
        if seen.insert(id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Debug builds only (release builds do not contain them): the attacks of the security
/// tests, done from inside at the exact moment they need. Each acts only when its
/// variable is set.
#[cfg(debug_assertions)]
mod debug_hooks {
    use std::path::Path;

    /// `CIVIKEY_DEBUG_SWAP_OUT_FILE=TARGET`: right after the out file is created, another
    /// user moves it aside (to `PATH.moved`) and puts a symlink to TARGET in its place.
    pub fn after_out_file_created(path: &Path) {
        let Some(target) = std::env::var_os("CIVIKEY_DEBUG_SWAP_OUT_FILE") else {
            return;
        };
        let mut moved = path.as_os_str().to_owned();
        moved.push(".moved");
        std::fs::rename(path, &moved).expect("debug hook: move the out file aside");
        std::os::unix::fs::symlink(target, path).expect("debug hook: plant the symlink");
    }

    /// `CIVIKEY_DEBUG_FAIL_OUT_LINE=1`: every line written to the out file fails, as on a
    /// full disk.
    pub fn out_line_write() -> std::io::Result<()> {
        match std::env::var_os("CIVIKEY_DEBUG_FAIL_OUT_LINE") {
            Some(_) => Err(std::io::Error::from_raw_os_error(libc::ENOSPC)),
            None => Ok(()),
        }
    }

    /// `CIVIKEY_DEBUG_KILL_BEFORE_OUT_LINE=N`: SIGKILL after the N-th contact's rotation
    /// is journaled done and before its line reaches the out file.
    pub fn before_out_line() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static DONE: AtomicU64 = AtomicU64::new(0);
        let Some(n) = std::env::var("CIVIKEY_DEBUG_KILL_BEFORE_OUT_LINE")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        else {
            return;
        };
        if DONE.fetch_add(1, Ordering::SeqCst) + 1 == n {
            // SAFETY: raise has no preconditions; SIGKILL ends the process here.
            unsafe { libc::raise(libc::SIGKILL) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_file_parsing() {
        assert_eq!(
            parse_ids("1\n# comment\n\n2 # two\n1\n").unwrap(),
            vec![1, 2]
        );
        let err = parse_ids("1\nabc\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        let long = format!("1\n{}\n", "0".repeat(MAX_ID_LINE_BYTES + 1));
        let err = parse_ids(&long).unwrap_err();
        assert!(err.contains("line 2 is longer"), "{err}");
    }

    #[test]
    fn a_hundred_thousand_ids_parse_in_order_without_repeats() {
        // Each id twice (the second time later in the file), then a comment per line.
        let text: String = (1..=100_000u64)
            .chain((1..=100_000u64).rev())
            .map(|id| format!("{id} # contact {id}\n"))
            .collect();
        let ids = parse_ids(&text).unwrap();
        assert_eq!(ids, (1..=100_000u64).collect::<Vec<_>>());
    }

    #[test]
    fn done_records_missing_from_their_out_file_are_marked_undelivered() {
        use crate::audit::{Action, Actor, Outcome};
        let dir = tempfile::tempdir().unwrap();
        let actor = Actor {
            operator: "alice".into(),
            store: "sqlite:/x".into(),
            ..Actor::default()
        };
        let mut journal = Journal::open(&dir.path().join("data"), actor).unwrap();
        let out = dir.path().join("keys.csv");
        let gone = dir.path().join("deleted.csv");
        let key = ApiKey::generate().unwrap();
        for (file, contact) in [(&out, 1), (&out, 2), (&gone, 3)] {
            journal.set_out_file(Some(file));
            let record = journal
                .intent(
                    contact,
                    &SafeText::new("C"),
                    Action::Assign,
                    None,
                    Some(&key),
                )
                .unwrap();
            journal.outcome(record, Outcome::Done, None).unwrap();
        }
        journal.set_out_file(None);
        let mut text = OUT_FILE_HEADER.to_vec();
        text.extend_from_slice(b"1,C,c@example.org,key\n");
        std::fs::write(&out, text).unwrap();
        let mut entries = journal.entries(None, true, 10).unwrap();
        mark_undelivered(&journal, &mut entries);
        let outcome = |id: ContactId| {
            entries
                .iter()
                .find(|e| e.contact_id == id)
                .and_then(|e| e.outcome.clone())
        };
        assert_eq!(outcome(1).as_deref(), Some("done"));
        assert_eq!(outcome(2).as_deref(), Some(UNDELIVERED_OUTCOME));
        assert_eq!(
            outcome(3).as_deref(),
            Some("done"),
            "a deleted file is not judged"
        );
    }

    #[test]
    fn formula_cells_are_neutralised() {
        for bad in ["=HYPERLINK(\"x\")", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(csv_cell(bad), format!("'{bad}"), "{bad:?}");
        }
        for fine in ["Ada Lovelace", "101", "abcXYZ019", "", "a=b"] {
            assert_eq!(csv_cell(fine), fine);
        }
    }

    #[test]
    fn out_folders_others_can_write_are_refused() {
        let dir = Path::new("/x");
        let me = rustix::process::geteuid().as_raw();
        assert!(check_out_dir(dir, me, 0o40700).is_ok());
        assert!(check_out_dir(dir, 0, 0o41777).is_ok(), "/tmp-like");
        assert!(check_out_dir(dir, me, 0o41777).is_ok());
        for mode in [0o40777, 0o40770, 0o40702, 0o40720] {
            let err = check_out_dir(dir, me, mode).unwrap_err();
            assert!(err.contains("other users"), "{mode:o}: {err}");
        }
        if me != 65534 {
            let err = check_out_dir(dir, 65534, 0o41777).unwrap_err();
            assert!(err.contains("another user"), "{err}");
            assert!(check_out_dir(dir, 65534, 0o40700).is_err());
        }
    }
}
