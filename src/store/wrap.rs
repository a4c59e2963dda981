//! The one wrapper every opened store sits in: the operator's `--read-only`, the site new
//! keys log in to (`site_url`), and the one redaction policy for errors.
//!
//! It forwards EVERY method of [`ContactStore`] (clippy's `missing_trait_methods` is
//! denied on the impl, so a method added to the trait later cannot fall back to its
//! default here and lose the inner store's batching, as a hand-written forwarder once
//! did: a cv profile with `site_url` rotated one contact per batch instead of 50).

use std::collections::HashMap;

use zeroize::Zeroizing;

use super::{
    Contact, ContactId, ContactStore, Holder, HolderCursor, HolderPage, KeySwap, Page, Query,
    SiteLogin, SiteReader, SiteUsers, Standing, StoreError, StoreInfo,
};
use crate::key::ApiKey;
use crate::sanitize::SafeText;

/// A store, with what the profile adds around it.
pub struct Wrapped {
    inner: Box<dyn ContactStore>,
    /// Writes refused before they reach the store (`--read-only`).
    read_only: bool,
    /// Where a new key is checked by logging in with it, when the store itself has no
    /// site (MySQL, cv with the profile's `site_url`).
    login: Option<SiteLogin>,
    /// The store's own secrets (admin key, site key, database password): hidden from every
    /// error with the keys of the call.
    secrets: Vec<Zeroizing<String>>,
}

impl Wrapped {
    pub fn new(inner: Box<dyn ContactStore>, secrets: Vec<Zeroizing<String>>) -> Self {
        Wrapped {
            inner,
            read_only: false,
            login: None,
            secrets,
        }
    }

    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only |= read_only;
        self
    }

    pub fn login(mut self, login: Option<SiteLogin>) -> Self {
        if login.is_some() {
            self.login = login;
        }
        self
    }

    /// `e` with the store's secrets and `keys` hidden.
    fn safe(&self, e: StoreError, keys: &[Option<&ApiKey>]) -> StoreError {
        let secrets: Vec<&str> = self
            .secrets
            .iter()
            .map(|s| s.as_str())
            .chain(keys.iter().flatten().map(|k| k.expose()))
            .collect();
        e.hiding(&secrets)
    }

    fn refuse_write(&self) -> Result<(), StoreError> {
        if self.read_only {
            Err(StoreError::ReadOnly(SafeText::new(
                "civikey was started with --read-only",
            )))
        } else {
            Ok(())
        }
    }
}

#[deny(clippy::missing_trait_methods)]
impl ContactStore for Wrapped {
    fn info(&self) -> StoreInfo {
        let info = self.inner.info();
        StoreInfo {
            writable: info.writable && !self.read_only,
            ..info
        }
    }

    fn search(&mut self, query: &Query) -> Result<Page, StoreError> {
        self.inner.search(query).map_err(|e| self.safe(e, &[]))
    }

    fn contact(&mut self, id: ContactId) -> Result<Contact, StoreError> {
        self.inner.contact(id).map_err(|e| self.safe(e, &[]))
    }

    fn contacts(&mut self, ids: &[ContactId]) -> Result<Vec<Contact>, StoreError> {
        self.inner.contacts(ids).map_err(|e| self.safe(e, &[]))
    }

    fn holders_of(&mut self, key: &ApiKey) -> Result<Vec<ContactId>, StoreError> {
        self.inner
            .holders_of(key)
            .map_err(|e| self.safe(e, &[Some(key)]))
    }

    fn read_key(&mut self, id: ContactId) -> Result<Option<ApiKey>, StoreError> {
        self.inner.read_key(id).map_err(|e| self.safe(e, &[]))
    }

    fn key_holders(
        &mut self,
        after: Option<&HolderCursor>,
        limit: usize,
    ) -> Result<HolderPage, StoreError> {
        self.inner
            .key_holders(after, limit)
            .map_err(|e| self.safe(e, &[]))
    }

    fn read_key_holders(
        &mut self,
        each: &mut dyn FnMut(Vec<Holder>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let result = self.inner.read_key_holders(each);
        result.map_err(|e| self.safe(e, &[]))
    }

    fn read_users_and_holders(&mut self, each: &mut SiteReader<'_>) -> Result<(), StoreError> {
        let result = self.inner.read_users_and_holders(each);
        result.map_err(|e| self.safe(e, &[]))
    }

    fn site_users(&mut self) -> Result<Option<SiteUsers>, StoreError> {
        self.inner.site_users().map_err(|e| self.safe(e, &[]))
    }

    fn standing(&mut self, id: ContactId) -> Result<Standing, StoreError> {
        self.inner.standing(id).map_err(|e| self.safe(e, &[]))
    }

    fn standings(&mut self, ids: &[ContactId]) -> Result<HashMap<ContactId, Standing>, StoreError> {
        self.inner.standings(ids).map_err(|e| self.safe(e, &[]))
    }

    fn login_site(&self) -> Option<SiteLogin> {
        self.login.clone().or_else(|| self.inner.login_site())
    }

    fn swap_key(
        &mut self,
        id: ContactId,
        expected: Option<&ApiKey>,
        new: Option<&ApiKey>,
    ) -> Result<(), StoreError> {
        self.refuse_write()?;
        self.inner
            .swap_key(id, expected, new)
            .map_err(|e| self.safe(e, &[expected, new]))
    }

    fn rotation_batch(&self) -> usize {
        self.inner.rotation_batch()
    }

    fn read_keys(
        &mut self,
        ids: &[ContactId],
    ) -> Result<HashMap<ContactId, Option<ApiKey>>, StoreError> {
        self.inner.read_keys(ids).map_err(|e| self.safe(e, &[]))
    }

    fn holders_of_keys(&mut self, keys: &[&ApiKey]) -> Result<Vec<Vec<ContactId>>, StoreError> {
        let held: Vec<Option<&ApiKey>> = keys.iter().map(|&k| Some(k)).collect();
        self.inner
            .holders_of_keys(keys)
            .map_err(|e| self.safe(e, &held))
    }

    fn swap_keys(&mut self, swaps: &[KeySwap<'_>]) -> Vec<Result<(), StoreError>> {
        if let Err(e) = self.refuse_write() {
            return swaps.iter().map(|_| Err(e.again())).collect();
        }
        let held: Vec<Option<&ApiKey>> = swaps.iter().flat_map(|s| [s.expected, s.new]).collect();
        self.inner
            .swap_keys(swaps)
            .into_iter()
            .map(|r| r.map_err(|e| self.safe(e, &held)))
            .collect()
    }
}
