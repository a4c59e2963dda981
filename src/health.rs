//! Key health: every key a store holds, judged at once.
//!
//! Reads the site's users once and only the contacts that hold a key, side by side where
//! the store can ([`ContactStore::read_users_and_holders`]: through the api_key index or
//! the API's `api_key IS NOT NULL`, in big pages or one query), judging each batch as it
//! comes, then finds what CiviCRM's own advice warns about: keys shared by several
//! contacts (compared as the store compares), keys that are easy to guess, keys on contacts that should not hold one (the warning
//! codes of [`crate::assess`]), and keys older than a limit (from the journal). Each
//! finding has a stable code for scripts. No key leaves this module: findings carry the
//! [`KeyHint`] only.

use std::collections::{HashMap, HashSet};

use sha2::{Digest, Sha256};

use crate::assess::{self, WarningCode};
use crate::audit::Journal;
use crate::key::{ApiKey, KeyHint, MIN_MANUAL_LEN};
use crate::store::{
    AccountState, Contact, ContactId, ContactStore, Holder, SiteRead, SiteUsers, StoreError,
};

/// How many holders one standings call asks about.
pub const STANDINGS_CHUNK: usize = 500;

/// A run of this many identical characters is "visibly low entropy". In a random key of
/// 32 characters out of 62 a run of 6 happens about once in 30 million keys.
const LONG_RUN: usize = 6;
/// A keyboard or counting sequence this long (forwards or backwards, any case): in random
/// keys about once in 6 million.
const SEQUENCE: usize = 7;
/// Fewer distinct characters than this (a random 20-character key has about 17).
const FEW_DISTINCT: usize = 8;

/// The example key of CiviCRM's sysadmin docs ("API Keys", the cv recipe): pasted as is it
/// is cut to 32 characters by the column, or to 29 and "..." by API v4.
const DOCS_EXAMPLE_KEY: &str = "T0PS3CR3T6ateeUXgTOJ9e3PpXvDZF9Al55WAmBsNQI";

/// Keyboard rows and counting sequences (matched in either direction, any case).
const SEQUENCES: &[&str] = &[
    "0123456789",
    "abcdefghijklmnopqrstuvwxyz",
    "qwertyuiop",
    "asdfghjkl",
    "zxcvbnm",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
    "qwertzuiop",
    "azertyuiop",
];

/// The finding codes, stable for scripts (`check --json`, monitoring).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    Duplicate,
    Weak,
    Trashed,
    UserBlocked,
    NoUserAccount,
    NoApiLoginPermission,
    Old,
    AgeUnknown,
}

/// How urgent a finding is; the table is sorted by it, most urgent first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// Someone else can log in with the key now.
    Critical,
    /// The key logs in where it should not.
    High,
    /// The key is on a contact that cannot use it as intended: revoke or fix the account.
    Medium,
    /// Due for rotation.
    Low,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
}

/// What the operator should do about a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remedy {
    Rotate,
    Revoke,
}

impl Remedy {
    pub fn as_str(self) -> &'static str {
        match self {
            Remedy::Rotate => "rotate",
            Remedy::Revoke => "revoke",
        }
    }
}

impl Code {
    pub const ALL: [Code; 8] = [
        Code::Duplicate,
        Code::Weak,
        Code::Trashed,
        Code::UserBlocked,
        Code::NoUserAccount,
        Code::NoApiLoginPermission,
        Code::Old,
        Code::AgeUnknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::Duplicate => "duplicate",
            Code::Weak => "weak",
            Code::Trashed => "trashed",
            Code::UserBlocked => "user_blocked",
            Code::NoUserAccount => "no_user_account",
            Code::NoApiLoginPermission => "no_api_login_permission",
            Code::Old => "old",
            Code::AgeUnknown => "age_unknown",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            Code::Duplicate | Code::Weak => Severity::Critical,
            Code::Trashed => Severity::High,
            Code::UserBlocked | Code::NoUserAccount | Code::NoApiLoginPermission => {
                Severity::Medium
            }
            Code::Old | Code::AgeUnknown => Severity::Low,
        }
    }

    pub fn remedy(self) -> Remedy {
        match self {
            Code::Duplicate | Code::Weak | Code::Old | Code::AgeUnknown => Remedy::Rotate,
            Code::Trashed
            | Code::UserBlocked
            | Code::NoUserAccount
            | Code::NoApiLoginPermission => Remedy::Revoke,
        }
    }

    /// What to do, in plain words.
    pub fn advice(self) -> &'static str {
        match self {
            Code::Duplicate => {
                "rotate the keys of all holders but the intended one: CiviCRM logs the lowest id in"
            }
            Code::Weak => "rotate: CiviCRM advises 20+ random letters and digits",
            Code::Trashed => "revoke: a trashed contact's key still logs in",
            Code::UserBlocked => {
                "revoke: the key is refused while the user is blocked, and works again if unblocked (on Standalone it still logs in)"
            }
            Code::NoUserAccount => "revoke, or link the contact to a user account",
            Code::NoApiLoginPermission => {
                "revoke, or give the user a role granting 'authenticate with api key'"
            }
            Code::Old => "rotate",
            Code::AgeUnknown => "rotate with civikey, so the journal knows the key's age",
        }
    }

    fn from_warning(code: WarningCode) -> Option<Code> {
        match code {
            WarningCode::Trashed => Some(Code::Trashed),
            WarningCode::UserBlocked => Some(Code::UserBlocked),
            WarningCode::NoUserAccount => Some(Code::NoUserAccount),
            WarningCode::NoApiLoginPermission => Some(Code::NoApiLoginPermission),
            // Not a finding about the key: the store cannot say (counted in the summary).
            WarningCode::RolesUnknown => None,
        }
    }
}

/// Which weak-key rule fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeakRule {
    Short,
    Alphabet,
    Run,
    Sequence,
    FewCharacters,
    KnownSample,
}

impl WeakRule {
    pub fn as_str(self) -> &'static str {
        match self {
            WeakRule::Short => "short",
            WeakRule::Alphabet => "alphabet",
            WeakRule::Run => "run",
            WeakRule::Sequence => "sequence",
            WeakRule::FewCharacters => "few_characters",
            WeakRule::KnownSample => "known_sample",
        }
    }
}

/// Why `key` is easy to guess, or None. The reason never quotes the key, and no copy of
/// it is made: the rules read its bytes in place (a whole-site `check` judges every key).
pub fn weakness(key: &ApiKey) -> Option<(WeakRule, String)> {
    let text = key.expose();
    let len = text.chars().count();
    if len < MIN_MANUAL_LEN {
        return Some((
            WeakRule::Short,
            format!("short: {len} characters (CiviCRM advises {MIN_MANUAL_LEN}+)"),
        ));
    }
    if is_docs_example(text.as_bytes()) {
        return Some((
            WeakRule::KnownSample,
            "the example key of CiviCRM's sysadmin docs (public)".into(),
        ));
    }
    if let Some(pos) = text.chars().position(|c| !c.is_ascii_alphanumeric()) {
        return Some((
            WeakRule::Alphabet,
            format!(
                "holds a character outside A-Z, a-z, 0-9 (at position {})",
                pos + 1
            ),
        ));
    }
    // Only [A-Za-z0-9] gets here (the alphabet rule came first), so bytes are characters.
    let bytes = text.as_bytes();
    let mut run = 1;
    for pair in bytes.windows(2) {
        run = if pair[0] == pair[1] { run + 1 } else { 1 };
        if run >= LONG_RUN {
            return Some((
                WeakRule::Run,
                format!("a run of {LONG_RUN} or more identical characters"),
            ));
        }
    }
    let mut piece = zeroize::Zeroizing::new([0u8; SEQUENCE]);
    let sequence = bytes.windows(SEQUENCE).any(|window| {
        for (to, from) in piece.iter_mut().zip(window) {
            *to = from.to_ascii_lowercase();
        }
        sequence_pieces().contains(&piece[..])
    });
    if sequence {
        return Some((
            WeakRule::Sequence,
            format!("a keyboard or counting sequence of {SEQUENCE} or more characters"),
        ));
    }
    let mut present = [false; 128];
    for b in bytes {
        present[usize::from(*b)] = true;
    }
    let distinct = present.iter().filter(|p| **p).count();
    if distinct < FEW_DISTINCT {
        return Some((
            WeakRule::FewCharacters,
            format!(
                "only {distinct} different characters (a random key has about {})",
                expected_distinct(len)
            ),
        ));
    }
    None
}

/// The docs' example key, any case: the key is its beginning, or its first 29 characters
/// and `...` (as API v4 shows a key to a caller who may not read it).
fn is_docs_example(key: &[u8]) -> bool {
    let docs = DOCS_EXAMPLE_KEY.as_bytes();
    let prefix = key.len() <= docs.len() && key.eq_ignore_ascii_case(&docs[..key.len()]);
    let cut =
        key.len() == 32 && key[..29].eq_ignore_ascii_case(&docs[..29]) && &key[29..] == b"...";
    prefix || cut
}

/// Every [`SEQUENCE`]-long piece of [`SEQUENCES`], forwards and backwards, made once.
fn sequence_pieces() -> &'static HashSet<Vec<u8>> {
    static PIECES: std::sync::OnceLock<HashSet<Vec<u8>>> = std::sync::OnceLock::new();
    PIECES.get_or_init(|| {
        let mut pieces = HashSet::new();
        for sequence in SEQUENCES {
            let forwards = sequence.as_bytes().to_vec();
            let backwards: Vec<u8> = forwards.iter().rev().copied().collect();
            for line in [forwards, backwards] {
                pieces.extend(line.windows(SEQUENCE).map(<[u8]>::to_vec));
            }
        }
        pieces
    })
}

/// About how many distinct characters a random key of `len` characters of 62 holds.
fn expected_distinct(len: usize) -> usize {
    let miss = (61.0f64 / 62.0).powi(i32::try_from(len).unwrap_or(i32::MAX));
    (62.0 * (1.0 - miss)).round() as usize
}

/// What to do about a blocked Standalone user's key, which still logs in.
const BLOCKED_STILL_LOGS_IN_ADVICE: &str =
    "revoke: the key still logs in (CiviCRM does not check blocked users on Standalone)";

/// One thing wrong with one contact's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub code: Code,
    /// The code's own severity and advice, except where the contact's standing changes
    /// them (a blocked Standalone user's key still logs in: high).
    pub severity: Severity,
    pub advice: &'static str,
    pub contact: Contact,
    pub key: KeyHint,
    /// What exactly is wrong (which rule fired, who else holds the key, how old it is).
    pub detail: String,
    /// For `weak`: the rule that fired.
    pub rule: Option<WeakRule>,
    /// For `duplicate`: every contact holding the key, this one included, by id.
    pub holders: Vec<ContactId>,
}

impl Finding {
    /// The command that fixes it.
    pub fn command(&self) -> String {
        format!(
            "civikey {} {}",
            self.code.remedy().as_str(),
            self.contact.id
        )
    }
}

/// What the check was asked to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Report keys set longer ago than this many days (and keys of unknown age); None, or
    /// no journal: ages are not checked.
    pub max_age_days: Option<u32>,
    /// Unix time to measure ages against.
    pub now: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Most severe first, then by code, contact id.
    pub findings: Vec<Finding>,
    /// Contacts holding a key.
    pub holders: usize,
    /// Holders whose user account and roles the store could not tell.
    pub standing_unknown: usize,
    /// The store may not read the site's users (its profile's user lacks
    /// `cms:administer users`): said once in the summary.
    pub users_hidden: bool,
    pub max_age_days: Option<u32>,
}

impl Report {
    /// Contacts with at least one finding.
    pub fn contacts_flagged(&self) -> usize {
        self.findings
            .iter()
            .map(|f| f.contact.id)
            .collect::<HashSet<_>>()
            .len()
    }

    /// Whether finding `i` starts a group of the view (a code at one severity: a blocked
    /// Standalone user's key stands apart from other blocked users'), under its header.
    pub fn starts_group(&self, i: usize) -> bool {
        match (
            i.checked_sub(1).map(|p| &self.findings[p]),
            self.findings.get(i),
        ) {
            (Some(p), Some(f)) => (p.code, p.severity) != (f.code, f.severity),
            _ => true,
        }
    }

    pub fn count(&self, code: Code) -> usize {
        self.findings.iter().filter(|f| f.code == code).count()
    }

    /// The one-line summary under the table.
    pub fn summary(&self) -> String {
        let mut text = if self.findings.is_empty() {
            format!(
                "no findings on {}",
                crate::wording::plural(self.holders, "key holder", "key holders")
            )
        } else {
            let parts: Vec<String> = Code::ALL
                .iter()
                .filter(|c| self.count(**c) > 0)
                .map(|c| format!("{} {}", self.count(*c), c.as_str()))
                .collect();
            format!(
                "{} on {} of {} ({})",
                crate::wording::plural(self.findings.len(), "finding", "findings"),
                self.contacts_flagged(),
                crate::wording::plural(self.holders, "key holder", "key holders"),
                parts.join(", ")
            )
        };
        match self.max_age_days {
            Some(days) => text.push_str(&format!("; max age {days} days")),
            None => text.push_str("; ages not checked (--max-age)"),
        }
        if self.standing_unknown > 0 {
            text.push_str(&format!(
                "; user accounts and roles unknown for {}",
                crate::wording::plural(self.standing_unknown, "holder", "holders")
            ));
        }
        // First, so a narrow screen (the TUI's `h`) still shows it.
        match self.users_unreadable() {
            Some(why) => format!("{why}; {text}"),
            None => text,
        }
    }

    /// Why user accounts could not be read, when the store may not read them.
    pub fn users_unreadable(&self) -> Option<String> {
        self.users_hidden.then(|| {
            format!(
                "user accounts could not be read: no '{}' for the profile's user (CiviCRM shows it only its own), so no holder is said to lack one",
                crate::store::USERS_PERMISSION
            )
        })
    }
}

/// A key as the store compares it, hashed so the grouping holds no copy of any key:
/// `_ci` collations ignore case and (PAD SPACE) trailing spaces.
fn comparison_digest(key: &ApiKey, case_insensitive: bool) -> [u8; 32] {
    let mut hash = Sha256::new();
    if case_insensitive {
        let folded = zeroize::Zeroizing::new(key.expose().trim_end_matches(' ').to_lowercase());
        hash.update(folded.as_bytes());
    } else {
        hash.update(key.expose().as_bytes());
    }
    hash.finalize().into()
}

/// Reads every key holder of `store` and judges each key. The site's users are read once
/// and the holders a batch at a time, side by side where the store can
/// ([`ContactStore::read_users_and_holders`]), each batch judged as it comes: `progress` hears
/// the running count of holders read and the findings of that batch (all but duplicate
/// keys, which need every holder and come with the report).
pub fn check(
    store: &mut dyn ContactStore,
    journal: Option<&Journal>,
    options: Options,
    progress: &mut dyn FnMut(usize, &[Finding]),
) -> Result<Report, StoreError> {
    let case_insensitive = store.info().keys_case_insensitive;
    // The site's users: heard before the first batch (read beside the holders where the
    // store can).
    let mut site: Option<SiteUsers> = None;
    // Ages need the journal: without one they are not judged (never guessed as unknown).
    let max_age_days = options.max_age_days.filter(|_| journal.is_some());
    let ages = match (max_age_days, journal) {
        (Some(days), Some(journal)) => Some(Ages {
            journal,
            changes: journal
                .last_changes()
                .map_err(|e| StoreError::invalid(e.0))?,
            days,
            now: options.now,
        }),
        _ => None,
    };
    // What duplicates need of each holder: its key as the store compares it (hashed),
    // the contact and the key's hint. The key itself is dropped once its batch is judged.
    let mut kept: Vec<(Contact, KeyHint)> = Vec::new();
    let mut groups: HashMap<[u8; 32], Vec<usize>> = HashMap::new();
    let mut seen = HashSet::new();
    let mut findings = Vec::new();
    let mut standing_unknown = 0;
    let mut users_hidden = false;
    // Without the site's users: standings by ids after the read, a chunk at a time.
    let mut pending: Vec<Holder> = Vec::new();
    store.read_users_and_holders(&mut |read| {
        let batch = match read {
            SiteRead::Users(users) => {
                site = users;
                return Ok(());
            }
            SiteRead::Holders(batch) => batch,
        };
        let mut judged = Vec::new();
        // A store may repeat a contact (rows of several domains): count it once.
        for h in batch.into_iter().filter(|h| seen.insert(h.contact.id)) {
            groups
                .entry(comparison_digest(&h.key, case_insensitive))
                .or_default()
                .push(kept.len());
            kept.push((h.contact.clone(), h.key.hint()));
            judged.extend(key_findings(&h, ages.as_ref()));
            match &site {
                Some(site) => {
                    let standing = site.standing_of(&h.contact);
                    users_hidden |= standing.account == AccountState::Hidden;
                    standing_unknown += standing_findings(&h, &standing, &mut judged);
                }
                None => pending.push(h),
            }
        }
        progress(kept.len(), &judged);
        findings.append(&mut judged);
        Ok(())
    })?;
    for chunk in pending.chunks(STANDINGS_CHUNK) {
        let ids: Vec<ContactId> = chunk.iter().map(|h| h.contact.id).collect();
        let standings = store.standings(&ids)?;
        for h in chunk {
            let standing = standings
                .get(&h.contact.id)
                .cloned()
                .unwrap_or(crate::store::Standing::UNKNOWN);
            users_hidden |= standing.account == AccountState::Hidden;
            standing_unknown += standing_findings(h, &standing, &mut findings);
        }
    }
    drop(pending);

    for members in groups.values().filter(|m| m.len() > 1) {
        let mut ids: Vec<ContactId> = members.iter().map(|i| kept[*i].0.id).collect();
        ids.sort_unstable();
        let how = if case_insensitive {
            "compared as the store compares: without case"
        } else {
            "byte for byte"
        };
        for i in members {
            let (contact, hint) = &kept[*i];
            let others: Vec<String> = ids
                .iter()
                .filter(|id| **id != contact.id)
                .map(ToString::to_string)
                .collect();
            let first = if ids.first() == Some(&contact.id) {
                " (the lowest id: this contact logs in with it)"
            } else {
                ""
            };
            findings.push(Finding {
                code: Code::Duplicate,
                severity: Code::Duplicate.severity(),
                advice: Code::Duplicate.advice(),
                contact: contact.clone(),
                key: hint.clone(),
                detail: format!(
                    "the same key as contact {} ({how}){first}",
                    others.join(", ")
                ),
                rule: None,
                holders: ids.clone(),
            });
        }
    }

    sort_findings(&mut findings);
    Ok(Report {
        findings,
        holders: kept.len(),
        standing_unknown,
        users_hidden,
        max_age_days,
    })
}

/// Most severe first, then by code, contact id: the report's order.
pub fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by_key(|f| (f.severity, f.code, f.contact.id));
}

/// What judging ages needs: the journal's last change of each contact, and the limit.
struct Ages<'a> {
    journal: &'a Journal,
    changes: HashMap<ContactId, (i64, Option<String>)>,
    days: u32,
    now: i64,
}

/// The findings about the key itself: easy to guess, too old or of unknown age.
fn key_findings(h: &Holder, ages: Option<&Ages<'_>>) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some((rule, why)) = weakness(&h.key) {
        out.push(finding(h, Code::Weak, why, Some(rule)));
    }
    let Some(ages) = ages else {
        return out;
    };
    let days = ages.days;
    let limit = i64::from(days) * 86_400;
    match ages.changes.get(&h.contact.id) {
        Some((time, Some(fp))) if ages.journal.fingerprint(&h.key) == *fp => {
            if ages.now - time > limit {
                out.push(finding(
                    h,
                    Code::Old,
                    format!(
                        "set {} days ago by civikey (on {}); the limit is {days}",
                        (ages.now - time) / 86_400,
                        crate::timefmt::format_time(*time)
                    ),
                    None,
                ));
            }
        }
        Some(_) => out.push(finding(
            h,
            Code::AgeUnknown,
            "changed outside civikey since civikey last set it: its age is unknown".into(),
            None,
        )),
        None => out.push(finding(
            h,
            Code::AgeUnknown,
            "never set by civikey: its age is unknown".into(),
            None,
        )),
    }
    out
}

/// The assess warnings of a holder's standing, as findings into `out`; 1 when the store
/// could not tell its user account or roles (counted in the summary), else 0.
fn standing_findings(
    h: &Holder,
    standing: &crate::store::Standing,
    out: &mut Vec<Finding>,
) -> usize {
    let mut unknown = 0;
    for warning in assess::assess(&h.contact, standing) {
        let Some(code) = Code::from_warning(warning.code) else {
            unknown += 1;
            continue;
        };
        let mut found = finding(h, code, warning.text, None);
        let still_logs_in = matches!(&standing.account,
            AccountState::Account(u) if u.blocked_but_key_logs_in());
        if code == Code::UserBlocked && still_logs_in {
            found.severity = Severity::High;
            found.advice = BLOCKED_STILL_LOGS_IN_ADVICE;
        }
        out.push(found);
    }
    unknown
}

fn finding(h: &Holder, code: Code, detail: String, rule: Option<WeakRule>) -> Finding {
    Finding {
        code,
        severity: code.severity(),
        advice: code.advice(),
        contact: h.contact.clone(),
        key: h.key.hint(),
        detail,
        rule,
        holders: Vec::new(),
    }
}

/// `90d`, `12w`, `90`: a number of days (weeks with `w`).
pub fn parse_max_age(text: &str) -> Result<u32, String> {
    let text = text.trim();
    let (number, factor) = match text.strip_suffix(['d', 'D']) {
        Some(n) => (n, 1),
        None => match text.strip_suffix(['w', 'W']) {
            Some(n) => (n, 7),
            None => (text, 1),
        },
    };
    number
        .parse::<u32>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| format!("{text:?} is not an age: give days like 90d, or weeks like 12w"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weak(text: &str) -> Option<&'static str> {
        weakness(&ApiKey::from_store(text.into())).map(|(rule, _)| rule.as_str())
    }

    #[test]
    fn each_weak_rule_fires_and_says_which() {
        assert_eq!(weak("abc123"), Some("short"));
        assert_eq!(weak("Abcdef ghij0123456789xyz"), Some("alphabet"));
        assert_eq!(weak("Q7wKx9AAAAAAm2Pz4RtY8vLn"), Some("run"));
        assert_eq!(weak("Q7wKx9m2Pz4Rt1234567Y8vLnZ"), Some("sequence"));
        assert_eq!(weak("Q7wKx9m2PzQWERTYURtY8vLnZ"), Some("sequence"));
        assert_eq!(
            weak("Q7wKx9m2PzLKJHGFDRtY8vLnZ"),
            Some("sequence"),
            "backwards"
        );
        assert_eq!(weak("abababcdcdcdabababcdcd"), Some("few_characters"));
        assert_eq!(
            weak("T0PS3CR3T6ateeUXgTOJ9e3PpXvDZF9A"),
            Some("known_sample")
        );
        assert_eq!(
            weak("t0ps3cr3t6ateeuxgtoj9e3ppxvdz..."),
            Some("known_sample"),
            "as API v4 cuts it"
        );
        assert_eq!(weak("Abcdef.ghij0123456789xyz"), Some("alphabet"));
        assert_eq!(weak("T0PS3CR3T6ateeUXgTOJ9e3P"), Some("known_sample"));
        assert_eq!(weak("xM4qT9vB2nL7kP3wZ8rY5cF1hJ6dG0sA"), None);
    }

    #[test]
    fn generated_keys_are_not_weak() {
        // The rules must not flag good keys: 20,000 random ones, none flagged.
        for _ in 0..20_000 {
            let key = ApiKey::generate().unwrap();
            assert_eq!(weakness(&key).map(|(r, _)| r), None);
        }
    }

    #[test]
    fn digests_compare_as_the_store_compares() {
        let a = ApiKey::from_store("AbcdEfghIjklMnopQrstUvwx".into());
        let b = ApiKey::from_store("abcdefghijklmnopqrstuvwx ".into());
        assert_eq!(comparison_digest(&a, true), comparison_digest(&b, true));
        assert_ne!(comparison_digest(&a, false), comparison_digest(&b, false));
    }

    #[test]
    fn max_age_parses_days_and_weeks() {
        assert_eq!(parse_max_age("90d"), Ok(90));
        assert_eq!(parse_max_age("12w"), Ok(84));
        assert_eq!(parse_max_age("30"), Ok(30));
        assert_eq!(
            parse_max_age("0d"),
            Ok(0),
            "every key older than today, as the TUI's A takes 0"
        );
        assert!(parse_max_age("soon").is_err());
    }
}
