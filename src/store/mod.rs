//! The store contract: one trait over the four places contacts and keys live.
//!
//! Implementations turn every string they read into [`SafeText`] where it enters, never
//! return a key in a list (only a [`KeyHint`]), and map their failures onto [`StoreError`]
//! so the rotation workflow can tell "nothing happened" from "it may have happened".

pub mod cv;
mod cv_pipe;
pub mod fold;
pub mod mysql;
pub mod rest;
pub mod spec;
pub mod sqlite;

use std::collections::HashMap;
use std::fmt;

use crate::key::{ApiKey, KeyHint};
use crate::sanitize::SafeText;

pub type ContactId = u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Mysql,
    Rest,
    Cv,
}

impl StoreKind {
    pub fn label(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Mysql => "mysql",
            StoreKind::Rest => "civicrm-rest",
            StoreKind::Cv => "cv",
        }
    }
}

/// What the operator and the audit trail need to know about a store, without secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreInfo {
    pub kind: StoreKind,
    /// Where it is, for the header and the audit trail: never a password or a key.
    pub location: SafeText,
    /// The most characters the key column holds (32 on CiviCRM).
    pub key_capacity: usize,
    /// Whether the store compares keys case-insensitively (MySQL `_ci` collations do).
    pub keys_case_insensitive: bool,
    /// False when the store was opened read-only: views work, writes are refused.
    pub writable: bool,
}

/// Whether a contact is linked to a CMS user (`civicrm_uf_match`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmsLink {
    Linked {
        uf_id: u64,
    },
    None,
    /// The store cannot tell (e.g. an API key without permission to read uf_match).
    Unknown,
}

/// A contact's user account (on Standalone: its civicrm_uf_match row).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserAccount {
    pub id: u64,
    pub name: SafeText,
    /// False when the account is blocked: CiviCRM then refuses its key.
    pub active: bool,
}

/// What the store knows of a contact's user account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountState {
    Unknown,
    NoAccount,
    Account(UserAccount),
}

/// One active role of a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    pub name: SafeText,
    /// The role grants `authenticate with api key` (or every permission).
    pub grants_api_login: bool,
}

/// The permission that lets a key log in without the site key (authx's `perm` guard).
pub const API_LOGIN_PERMISSION: &str = "authenticate with api key";
/// Standalone's super-permission: every other permission with it.
pub const ALL_PERMISSIONS: &str = "all CiviCRM permissions and ACLs";

impl Role {
    /// A role from its name and its permissions as a list.
    pub fn from_permissions<'a>(
        name: &str,
        permissions: impl IntoIterator<Item = &'a str>,
    ) -> Role {
        Role {
            name: SafeText::new(name),
            grants_api_login: permissions
                .into_iter()
                .any(|p| matches!(p.trim(), API_LOGIN_PERMISSION | ALL_PERMISSIONS)),
        }
    }
}

/// Permissions as civicrm_role.permissions stores them: separator-bookended
/// (`\x01a\x01b\x01`), a JSON list, or one per line or comma.
pub fn split_permissions(text: &str) -> Vec<String> {
    if let Ok(list) = serde_json::from_str::<Vec<String>>(text) {
        return list;
    }
    text.split(['\u{1}', ',', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// What the store can tell about a contact's login: user account and roles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Standing {
    pub account: AccountState,
    /// The user's active roles; `None`: the store cannot tell.
    pub roles: Option<Vec<Role>>,
}

impl Standing {
    pub const UNKNOWN: Standing = Standing {
        account: AccountState::Unknown,
        roles: None,
    };
    /// No user account: no roles either.
    pub fn no_account() -> Standing {
        Standing {
            account: AccountState::NoAccount,
            roles: Some(Vec::new()),
        }
    }
}

/// One contact, as lists and the detail pane show it. Never holds a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    pub id: ContactId,
    pub contact_type: SafeText,
    pub display_name: SafeText,
    pub sort_name: SafeText,
    pub email: Option<SafeText>,
    pub is_deleted: bool,
    /// The visible tail of the current key, or None when the contact has no key.
    pub key: Option<KeyHint>,
    pub cms: CmsLink,
}

/// A search. Text is matched as CiviCRM's indexes can answer it (see [`Matcher`]): digits
/// match the id, text with `@` the start of the primary email, other text the start of the
/// sort, first, last, organisation or household name, or (two or more words) a first-name
/// prefix and a last-name prefix in either order. With `deep`, a name text also finds a
/// word inside the display name: no index answers that, so it is never sent per keystroke.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Query {
    pub text: String,
    pub include_deleted: bool,
    pub limit: usize,
    /// Where the previous page stopped; None for the first page.
    pub after: Option<Cursor>,
    /// Also match a word inside the display name (`display_name LIKE '% text%'`): reads
    /// every contact on a big site, so only an explicit request (Enter in the search box)
    /// sets it.
    pub deep: bool,
}

impl Query {
    pub fn new(text: &str, limit: usize) -> Self {
        Query {
            text: text.trim().to_string(),
            include_deleted: true,
            limit,
            after: None,
            deep: false,
        }
    }

    /// How the text should be matched.
    pub fn matcher(&self) -> Matcher<'_> {
        let text = self.text.trim();
        if text.is_empty() {
            Matcher::All
        } else if let Ok(id) = text.parse::<ContactId>() {
            Matcher::Id(id)
        } else if text.contains('@') {
            Matcher::EmailPrefix(text)
        } else {
            Matcher::Name(text)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Matcher<'a> {
    All,
    Id(ContactId),
    EmailPrefix(&'a str),
    Name(&'a str),
}

/// The ways a name text of two or more words splits into a first-name prefix and a
/// last-name prefix: `mary ann lee` gives (`mary`, `ann lee`) and (`mary ann`, `lee`).
/// Each pair is tried in both orders (first AND last, last AND first).
pub fn name_splits(text: &str) -> Vec<(&str, &str)> {
    let text = text.trim();
    text.char_indices()
        .filter(|(_, c)| c.is_whitespace())
        .map(|(i, _)| (text[..i].trim_end(), text[i..].trim_start()))
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .fold(Vec::new(), |mut out, pair| {
            if !out.contains(&pair) {
                out.push(pair);
            }
            out
        })
}

/// A contact's names as a name search reads them (CiviCRM's columns).
#[derive(Clone, Copy, Debug, Default)]
pub struct Names<'a> {
    pub sort_name: Option<&'a str>,
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    pub organization_name: Option<&'a str>,
    pub household_name: Option<&'a str>,
    pub display_name: Option<&'a str>,
}

/// Whether a name search for `text` finds a contact with `names`, every comparison made
/// on [`fold::fold`]ed text (case and accents ignored, as MySQL's utf8mb4 `_ci`
/// collations compare). The one definition of a name match: the SQLite store tests its
/// candidates with it, and the contract test holds every store to the same answers.
pub fn name_matches(text: &str, names: &Names<'_>, deep: bool) -> bool {
    NameQuery::new(text).matches(names, deep)
}

/// A name search's text, folded and split once, for testing many contacts.
pub struct NameQuery {
    text: String,
    splits: Vec<(String, String)>,
    /// ` text`: a word inside the display name starts so.
    inner_word: String,
}

impl NameQuery {
    pub fn new(text: &str) -> Self {
        let text = fold::fold(text.trim());
        let splits = name_splits(&text)
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        NameQuery {
            inner_word: format!(" {text}"),
            text,
            splits,
        }
    }

    /// [`name_matches`] for this text.
    pub fn matches(&self, names: &Names<'_>, deep: bool) -> bool {
        if self.text.is_empty() {
            return true;
        }
        let starts = |name: Option<&str>, prefix: &str| {
            name.is_some_and(|n| fold::starts_with_folded(n, prefix))
        };
        let one_name = [
            names.sort_name,
            names.first_name,
            names.last_name,
            names.organization_name,
            names.household_name,
        ]
        .into_iter()
        .any(|n| starts(n, &self.text));
        if one_name {
            return true;
        }
        if !self.splits.is_empty() {
            let first = names.first_name.map(fold::fold);
            let last = names.last_name.map(fold::fold);
            let begins = |name: &Option<String>, prefix: &str| {
                name.as_deref().is_some_and(|n| n.starts_with(prefix))
            };
            let split = self.splits.iter().any(|(a, b)| {
                (begins(&first, a) && begins(&last, b)) || (begins(&last, a) && begins(&first, b))
            });
            if split {
                return true;
            }
        }
        deep && names
            .display_name
            .is_some_and(|d| fold::fold(d).contains(&self.inner_word))
    }
}

/// Where a page ended. Each store picks the form its backend pages best with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cursor {
    /// Keyset paging on (sort_name, id).
    After { sort_name: String, id: ContactId },
    /// Offset paging, for APIs that only offer limit/offset.
    Offset(u64),
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Page {
    pub contacts: Vec<Contact>,
    /// Present when there may be more results.
    pub next: Option<Cursor>,
}

/// A contact that holds a key, with the key itself: what the key health check reads.
/// The key is a secret like any other ([`ApiKey`]: redacted Debug, zeroized on drop).
#[derive(Clone, Debug)]
pub struct Holder {
    pub contact: Contact,
    pub key: ApiKey,
}

/// Where a page of key holders ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HolderCursor {
    /// After this key and contact id, in the order of the api_key index (SQL stores).
    AfterKey { key: ApiKey, id: ContactId },
    /// After this many holders (APIs that page by offset).
    Offset(u64),
}

#[derive(Clone, Debug, Default)]
pub struct HolderPage {
    pub holders: Vec<Holder>,
    /// Present when there may be more holders.
    pub next: Option<HolderCursor>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("contact {0} was not found")]
    NotFound(ContactId),
    #[error(
        "the key changed since it was read (another writer got there first); nothing was written"
    )]
    Conflict,
    #[error("permission denied: {0}")]
    PermissionDenied(SafeText),
    #[error("the store is read-only: {0}")]
    ReadOnly(SafeText),
    #[error("the store cannot be reached: {0}")]
    Unreachable(SafeText),
    #[error("the store did not answer in time: {0}")]
    Timeout(SafeText),
    #[error("the store answered with something civikey cannot use: {0}")]
    BadData(SafeText),
    #[error("the outcome is unknown (the request may or may not have been applied): {0}")]
    OutcomeUnknown(SafeText),
    #[error("{0}")]
    Invalid(SafeText),
}

impl StoreError {
    pub fn bad_data(message: impl fmt::Display) -> Self {
        StoreError::BadData(SafeText::new(&message.to_string()))
    }
    pub fn unreachable(message: impl fmt::Display) -> Self {
        StoreError::Unreachable(SafeText::new(&message.to_string()))
    }
    pub fn invalid(message: impl fmt::Display) -> Self {
        StoreError::Invalid(SafeText::new(&message.to_string()))
    }
}

/// A keystroke's first-name prefix at least this long is read by the REST and cv stores
/// sorted on its own index range (sort name ascending, id descending, which no index
/// serves), its last sort name's contacts read again with the page: such a prefix has as
/// many contacts as some thousands, which may all sort late, where walking the list in
/// order reads every row until a page is found. A one-letter prefix's contacts are
/// everywhere in the list: walked.
pub(crate) const SORTED_FIRST_NAME_CHARS: usize = 2;

/// `text` as a SQL LIKE prefix: its own wildcards (`%`, `_`) and the escape character
/// escaped by `escape`, then `%`. Every store's name and email search uses it.
pub fn like_prefix(text: &str, escape: char) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if matches!(c, '%' | '_') || c == escape {
            out.push(escape);
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// The one trait every store implements, and the one shared contract test suite checks.
pub trait ContactStore: Send {
    fn info(&self) -> StoreInfo;

    /// One page of contacts matching `query`, ordered by sort name then id. Never loads
    /// every contact.
    fn search(&mut self, query: &Query) -> Result<Page, StoreError>;

    fn contact(&mut self, id: ContactId) -> Result<Contact, StoreError>;

    /// The contacts `ids` names, in that order ([`StoreError::NotFound`] for the first one
    /// missing): what bulk rotation validates its ids file with. Stores that can read many
    /// contacts in one request do so (REST, cv: a page of ids per call).
    fn contacts(&mut self, ids: &[ContactId]) -> Result<Vec<Contact>, StoreError> {
        ids.iter().map(|id| self.contact(*id)).collect()
    }

    /// Contacts holding `key`, compared as the store compares (case-insensitively on MySQL).
    fn holders_of(&mut self, key: &ApiKey) -> Result<Vec<ContactId>, StoreError>;

    fn read_key(&mut self, id: ContactId) -> Result<Option<ApiKey>, StoreError>;

    /// One page of the contacts that hold a key (deleted ones too), with their keys: only
    /// those rows, through the api_key index (or the API's `api_key IS NOT NULL`), never
    /// every contact. An empty string counts as no key. Pages hold at most `limit` holders.
    /// A store may leave `email` out (None) where reading it would slow the page down.
    fn key_holders(
        &mut self,
        after: Option<&HolderCursor>,
        limit: usize,
    ) -> Result<HolderPage, StoreError>;

    /// The contact's user account and roles, what the operator must double-check before
    /// handing out a key. Stores that cannot tell answer [`Standing::UNKNOWN`].
    fn standing(&mut self, id: ContactId) -> Result<Standing, StoreError> {
        self.standings(&[id])?
            .remove(&id)
            .ok_or(StoreError::NotFound(id))
    }

    /// [`ContactStore::standing`] of many contacts (SQL stores: one query per chunk of ids;
    /// contacts that do not exist are left out). Stores that cannot tell answer
    /// [`Standing::UNKNOWN`] for each.
    fn standings(&mut self, ids: &[ContactId]) -> Result<HashMap<ContactId, Standing>, StoreError> {
        Ok(ids.iter().map(|&id| (id, Standing::UNKNOWN)).collect())
    }

    /// The site to log in to with a new key, to check it works (the REST store's own site,
    /// or the profile's `site_url`). None: no site is known.
    fn login_site(&self) -> Option<spec::SiteLogin> {
        None
    }

    /// Compare-and-set: writes `new` only if the contact's key is still `expected`
    /// (byte for byte); otherwise [`StoreError::Conflict`] and nothing is written.
    fn swap_key(
        &mut self,
        id: ContactId,
        expected: Option<&ApiKey>,
        new: Option<&ApiKey>,
    ) -> Result<(), StoreError>;

    /// How many contacts bulk rotation writes together ([`crate::rotation::assign_batch`]).
    /// 1 where a request is cheap (local SQL): a kill mid-run then leaves at most one
    /// contact holding a key that reached nobody. Stores far away batch (REST: 50).
    fn rotation_batch(&self) -> usize {
        1
    }

    /// The keys of `ids` (bulk rotation's reads and read-backs): a contact that does not
    /// exist is absent from the answer. Stores that can read many keys in one request do
    /// so (REST: a page of ids per call).
    fn read_keys(
        &mut self,
        ids: &[ContactId],
    ) -> Result<HashMap<ContactId, Option<ApiKey>>, StoreError> {
        let mut keys = HashMap::with_capacity(ids.len());
        for &id in ids {
            match self.read_key(id) {
                Ok(key) => {
                    keys.insert(id, key);
                }
                Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(keys)
    }

    /// [`ContactStore::holders_of`] of each key, in order (REST: one call for them all).
    fn holders_of_keys(&mut self, keys: &[&ApiKey]) -> Result<Vec<Vec<ContactId>>, StoreError> {
        keys.iter().map(|key| self.holders_of(key)).collect()
    }

    /// [`ContactStore::swap_key`] of each swap, each with its own outcome, in order. REST
    /// sends them as one multi-call request: an answer lost on the way makes every swap's
    /// outcome unknown.
    fn swap_keys(&mut self, swaps: &[KeySwap<'_>]) -> Vec<Result<(), StoreError>> {
        swaps
            .iter()
            .map(|s| self.swap_key(s.id, s.expected, s.new))
            .collect()
    }
}

/// One compare-and-set of [`ContactStore::swap_keys`].
#[derive(Clone, Copy, Debug)]
pub struct KeySwap<'a> {
    pub id: ContactId,
    pub expected: Option<&'a ApiKey>,
    pub new: Option<&'a ApiKey>,
}

impl StoreError {
    /// The same error again, for each of the swaps one failed request was for.
    pub fn again(&self) -> StoreError {
        match self {
            StoreError::NotFound(id) => StoreError::NotFound(*id),
            StoreError::Conflict => StoreError::Conflict,
            StoreError::PermissionDenied(t) => StoreError::PermissionDenied(t.clone()),
            StoreError::ReadOnly(t) => StoreError::ReadOnly(t.clone()),
            StoreError::Unreachable(t) => StoreError::Unreachable(t.clone()),
            StoreError::Timeout(t) => StoreError::Timeout(t.clone()),
            StoreError::BadData(t) => StoreError::BadData(t.clone()),
            StoreError::OutcomeUnknown(t) => StoreError::OutcomeUnknown(t.clone()),
            StoreError::Invalid(t) => StoreError::Invalid(t.clone()),
        }
    }
}
