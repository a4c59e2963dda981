//! What stores take and give: contacts, queries, pages and cursors, users and roles.

use std::time::Duration;

use crate::key::{ApiKey, KeyHint};
use crate::sanitize::SafeText;
use crate::secret::Secret;

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

/// Which CMS keeps a user account: it decides what blocking the user does to its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cms {
    /// CiviCRM Standalone (users are civicrm_uf_match rows): authx does NOT check blocked
    /// users there (6.14), so a blocked user's key still logs in.
    Standalone,
    /// Drupal, Backdrop, WordPress, Joomla: authx refuses a blocked user's key.
    Other,
}

/// A contact's user account (on Standalone: its civicrm_uf_match row).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserAccount {
    pub id: u64,
    pub name: SafeText,
    /// False when the account is blocked. What that does to its key depends on `cms`.
    pub active: bool,
    pub cms: Cms,
}

impl UserAccount {
    /// A blocked account whose key still logs in (Standalone does not check blocks).
    pub fn blocked_but_key_logs_in(&self) -> bool {
        !self.active && self.cms == Cms::Standalone
    }
}

/// What the store knows of a contact's user account: the one tri-state (`show --json`'s
/// `"user"`: an object, false, or null for both unknown states).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountState {
    /// The store does not read user accounts (another CMS keeps them, or the store has no
    /// user table).
    Unknown,
    /// The store may not read the site's users: the profile's user lacks
    /// [`USERS_PERMISSION`] (CiviCRM then shows it only its own user row, and refuses
    /// UFMatch.get and Role.get). Decided once per store, never per contact.
    Hidden,
    NoAccount,
    Account(UserAccount),
}

impl AccountState {
    /// Whether the store can tell at all (`"user": null` when not).
    pub fn is_known(&self) -> bool {
        matches!(self, AccountState::NoAccount | AccountState::Account(_))
    }
}

/// The permission that lets a profile's user read every user and role of a Standalone site.
pub const USERS_PERMISSION: &str = "cms:administer users";

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
    /// The store may not read users ([`AccountState::Hidden`]).
    pub const HIDDEN: Standing = Standing {
        account: AccountState::Hidden,
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
    /// The text is a whole email address: the contacts whose primary email is that
    /// address, compared as CiviCRM's collation compares ([`crate::store::email_is`]).
    pub exact_email: bool,
}

impl Query {
    pub fn new(text: &str, limit: usize) -> Self {
        Query {
            text: text.trim().to_string(),
            include_deleted: true,
            limit,
            after: None,
            deep: false,
            exact_email: false,
        }
    }

    /// The contacts whose primary email is `address` (a person across sites).
    pub fn email(address: &str, limit: usize) -> Self {
        Query {
            exact_email: true,
            ..Query::new(address, limit)
        }
    }

    /// How the text should be matched.
    pub fn matcher(&self) -> Matcher<'_> {
        let text = self.text.trim();
        if self.exact_email {
            Matcher::Email(text)
        } else if text.is_empty() {
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
    /// The whole primary email ([`Query::email`]).
    Email(&'a str),
    Name(&'a str),
}

/// Where a page ended. Each store picks the form its backend pages best with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cursor {
    /// Keyset paging on (sort_name, id). `sort_name` None: the page ended on a NULL sort
    /// name, which sorts before every name (MariaDB's order); the next page is the rest of
    /// the NULL sort names (by id), then every name.
    After {
        sort_name: Option<String>,
        id: ContactId,
    },
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

/// Where a page of key holders ended: after this contact id. Key holders are paged in id
/// order on every store: an id never changes, so a holder whose key changes while the
/// pages are read is neither read twice nor skipped (a key order or an offset would do
/// one or the other).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HolderCursor {
    pub after_id: ContactId,
}

#[derive(Clone, Debug, Default)]
pub struct HolderPage {
    pub holders: Vec<Holder>,
    /// Present when there may be more holders.
    pub next: Option<HolderCursor>,
}

/// The user accounts of a site (or of its key holders), read once per health check and
/// joined to the key holders in memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SiteUsers {
    /// The standing of every contact with a user account the store could read; None: the
    /// store cannot list users (not Standalone, or not allowed to).
    pub accounts: Option<std::collections::HashMap<ContactId, Standing>>,
    /// The store may not see every user (a least-privilege admin): every holder's account
    /// is hidden ([`Standing::HIDDEN`]), never "none".
    pub hidden: bool,
}

impl SiteUsers {
    /// The one rule joining a contact to the site's users: hidden when the store may not
    /// see every user; its account when one was read; else no account when the contact
    /// has no CMS link, and unknown when it has one (a user the store could not see) or
    /// the store cannot tell its link.
    pub fn standing_of(&self, contact: &Contact) -> Standing {
        if self.hidden {
            return Standing::HIDDEN;
        }
        if let Some(standing) = self.accounts.as_ref().and_then(|a| a.get(&contact.id)) {
            return standing.clone();
        }
        match contact.cms {
            CmsLink::None => Standing::no_account(),
            CmsLink::Linked { .. } | CmsLink::Unknown => Standing::UNKNOWN,
        }
    }
}

/// One compare-and-set of [`ContactStore::swap_keys`].
#[derive(Clone, Copy, Debug)]
pub struct KeySwap<'a> {
    pub id: ContactId,
    pub expected: Option<&'a ApiKey>,
    pub new: Option<&'a ApiKey>,
}

/// A site to log in to with a new key (the login check): an address as
/// [`crate::store::rest::RestOptions::base_url`] takes it, and the site key if the profile has one.
#[derive(Debug, Clone)]
pub struct SiteLogin {
    pub api_address: String,
    pub site_key: Option<Secret>,
    pub timeout: Duration,
}
