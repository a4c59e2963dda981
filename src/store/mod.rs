//! The store contract: one trait over the four places contacts and keys live.
//!
//! Implementations turn every string they read into [`SafeText`](crate::sanitize::SafeText)
//! where it enters, never return a key in a list (only a [`KeyHint`](crate::key::KeyHint)),
//! and map their failures onto [`StoreError`] so the rotation workflow can tell "nothing
//! happened" from "it may have happened".
//!
//! The tree: the shared parts beside this file (types, error, names, collation, paging),
//! the factory (open.rs) and the wrapper every opened store sits in (wrap.rs), then one
//! folder per backend. Backends import the shared parts, never the factory or each other.

pub mod address;
pub(crate) mod api4;
pub mod collation;
pub mod cv;
pub mod error;
pub mod mysql;
pub mod names;
pub mod open;
pub mod paging;
pub mod read_ahead;
pub mod rest;
pub mod sql;
pub mod sqlite;
pub mod swap;
pub mod types;
pub mod wrap;

use std::collections::HashMap;

use crate::key::ApiKey;

pub use error::StoreError;
pub(crate) use names::SORTED_FIRST_NAME_CHARS;
pub use names::{email_is, like_prefix, name_matches, name_splits, NameQuery, Names};
pub use open::StoreSpec;
pub use types::*;

/// What [`ContactStore::read_users_and_holders`] hands over, in this order: the site's
/// users once, then the key holders a batch at a time.
pub enum SiteRead {
    Users(Option<SiteUsers>),
    Holders(Vec<Holder>),
}

/// Where [`ContactStore::read_users_and_holders`] hands what it reads.
pub type SiteReader<'a> = dyn FnMut(SiteRead) -> Result<(), StoreError> + 'a;

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
    /// every contact. An empty string counts as no key. Pages come in id order and hold
    /// at most `limit` holders (at most [`paging::HOLDER_PAGE`]); the next page starts
    /// after the last id, so keys changed between pages never make a holder read twice
    /// or skipped.
    fn key_holders(
        &mut self,
        after: Option<&HolderCursor>,
        limit: usize,
    ) -> Result<HolderPage, StoreError>;

    /// Every key holder, handed to `each` a batch at a time as the store reads them (the
    /// health check judges each batch as it comes). By default [`ContactStore::key_holders`]
    /// pages of [`paging::HOLDER_PAGE`]; a store that can read them all in one statement
    /// (MySQL: one query, streamed) does so. `each` may stop the read with an error.
    fn read_key_holders(
        &mut self,
        each: &mut dyn FnMut(Vec<Holder>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut after: Option<HolderCursor> = None;
        loop {
            let page = self.key_holders(after.as_ref(), paging::HOLDER_PAGE)?;
            each(page.holders)?;
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// What the health check reads: the site's users ([`ContactStore::site_users`]) handed
    /// to `each` once, before any holder, then every key holder a batch at a time
    /// ([`ContactStore::read_key_holders`]). A store that can read both at once does (MySQL
    /// on a second connection, the API v4 stores with a call of their own), so the users'
    /// time hides behind the holders'; by default one after the other.
    fn read_users_and_holders(&mut self, each: &mut SiteReader<'_>) -> Result<(), StoreError> {
        let users = self.site_users()?;
        each(SiteRead::Users(users))?;
        self.read_key_holders(&mut |batch| each(SiteRead::Holders(batch)))
    }

    /// The user accounts the health check joins to the key holders, read once: API v4
    /// stores read the whole site's users and roles (a site has far fewer users than
    /// contacts; a few requests), SQL stores the key holders' users and the roles (two
    /// queries). A holder left out stands by its CMS link ([`SiteUsers::standing_of`]).
    /// None: the store reads standings only by ids ([`ContactStore::standings`]).
    fn site_users(&mut self) -> Result<Option<SiteUsers>, StoreError> {
        Ok(None)
    }

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
    fn login_site(&self) -> Option<SiteLogin> {
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
