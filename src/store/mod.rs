//! The store contract: one trait over the four places contacts and keys live.
//!
//! Implementations turn every string they read into [`SafeText`] where it enters, never
//! return a key in a list (only a [`KeyHint`]), and map their failures onto [`StoreError`]
//! so the rotation workflow can tell "nothing happened" from "it may have happened".

pub mod cv;
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

/// A search. Text is matched as CiviCRM's quick search does: digits match the id, text
/// with `@` matches the start of the primary email, other text the start of the sort name,
/// the display name, or any word of the name.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Query {
    pub text: String,
    pub include_deleted: bool,
    pub limit: usize,
    /// Where the previous page stopped; None for the first page.
    pub after: Option<Cursor>,
}

impl Query {
    pub fn new(text: &str, limit: usize) -> Self {
        Query {
            text: text.trim().to_string(),
            include_deleted: true,
            limit,
            after: None,
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

/// `text` as a SQL LIKE prefix: its own wildcards (`%`, `_`) and the escape character
/// escaped by `escape`, then `%`. Every store's name and email search uses it.
pub(crate) fn like_prefix(text: &str, escape: char) -> String {
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

    /// Contacts holding `key`, compared as the store compares (case-insensitively on MySQL).
    fn holders_of(&mut self, key: &ApiKey) -> Result<Vec<ContactId>, StoreError>;

    fn read_key(&mut self, id: ContactId) -> Result<Option<ApiKey>, StoreError>;

    /// The contact's user account and roles, what the operator must double-check before
    /// handing out a key. Stores that cannot tell answer [`Standing::UNKNOWN`].
    fn standing(&mut self, _id: ContactId) -> Result<Standing, StoreError> {
        Ok(Standing::UNKNOWN)
    }

    /// [`ContactStore::standing`] of many contacts (SQL stores: one query per chunk of ids).
    fn standings(&mut self, ids: &[ContactId]) -> Result<HashMap<ContactId, Standing>, StoreError> {
        ids.iter()
            .map(|&id| self.standing(id).map(|s| (id, s)))
            .collect()
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
}
