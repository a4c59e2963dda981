//! What the two API v4 stores share, written once: the REST store (HTTP, several calls in
//! one multi-call request) and the cv store (`cv api4` per call, or a `cv pipe` session)
//! send the same API v4 calls and read the same rows; they differ in how a call travels
//! and how its failures read ([`Api4`]).
//!
//! - `clause.rs`: where clauses (name, email, id, keyset, compare-and-set), params, orders
//! - `rows.rs`: rows into contacts, keys, users and roles
//! - `holders.rs`: key holders' pages (id order, CMS links joined)
//! - `keys.rs`: the key steps, single and batched, and the compare-and-set outcome
//! - `users.rs`: users and their roles (Standalone's User and Role entities)
//! - `paging.rs`: cut a page and build the next cursor (NULL sort names included)

pub(crate) mod clause;
pub(crate) mod holders;
pub(crate) mod keys;
pub(crate) mod paging;
pub(crate) mod rows;
pub(crate) mod users;

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde_json::Value;
use zeroize::Zeroize;

use self::clause::GetParams;
use crate::key::ApiKey;
use crate::store::{Contact, ContactId, KeySwap, StoreError};

/// Ids per call when reading many contacts, keys, CMS links, users or roles.
pub(crate) const IDS_PER_CALL: usize = 200;
/// Keys per uniqueness check of many keys, and updates per multi-call request.
pub(crate) const KEYS_PER_CALL: usize = 100;
/// Contacts bulk rotation writes together: its reads, uniqueness check and read-back are
/// one call per batch (REST: about 7 requests per batch instead of 7 per contact), and at
/// most this many keys undelivered if civikey is killed mid-batch.
pub(crate) const ROTATION_BATCH: usize = 50;
/// More holders than this for one key cannot be legitimate: the filter was ignored.
pub(crate) const MAX_HOLDERS: usize = 1000;
/// The largest page a search or a key holders' page asks for: every store's.
pub(crate) use crate::store::paging::MAX_PAGE;

/// The contacts `ids` names, in that order ([`StoreError::NotFound`] for the first one
/// missing), read [`IDS_PER_CALL`] ids at a time by `read`: REST's and cv's `contacts`.
pub(crate) fn contacts_in_order(
    ids: &[ContactId],
    mut read: impl FnMut(&[ContactId]) -> Result<Vec<Contact>, StoreError>,
) -> Result<Vec<Contact>, StoreError> {
    let mut found: HashMap<ContactId, Contact> = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(IDS_PER_CALL) {
        found.extend(read(chunk)?.into_iter().map(|c| (c.id, c)));
    }
    ids.iter()
        .map(|id| found.get(id).cloned().ok_or(StoreError::NotFound(*id)))
        .collect()
}

/// The answer to [`Api4::get_if_there`].
pub(crate) enum IfThere<T> {
    Rows(Vec<T>),
    /// The site has the entity but refused this store (HTTP 403, 'Authorization failed').
    Refused,
    /// The site has no such entity (not Standalone).
    Absent,
}

/// How one API v4 store sends a call and reads its answer: the only part REST and cv do
/// not share.
pub(crate) trait Api4 {
    /// Who answers, for messages ("the site", "cv").
    fn who(&self) -> &'static str;

    /// One `get` of `entity` (`Contact`, `UFMatch`, ...), its rows. `secrets` are values
    /// in `params` that must not come back in an error message.
    fn get<T: DeserializeOwned>(
        &self,
        entity: &'static str,
        params: &GetParams<'_>,
        secrets: &[&ApiKey],
    ) -> Result<Vec<T>, StoreError>;

    /// A `get` of an entity the site may not have (User and Role are Standalone's) or may
    /// not let this store read.
    fn get_if_there<T: DeserializeOwned>(
        &self,
        entity: &'static str,
        params: &GetParams<'_>,
    ) -> Result<IfThere<T>, StoreError>;

    /// Whether this store may read every user of the site: decided by the first standings
    /// call ([`users::users`]) and kept for the store's life.
    fn users_seen(&self) -> &std::sync::OnceLock<users::Seen>;

    /// Rows came without `api_key`: CiviCRM hid it (a permission the admin lacks).
    fn keys_hidden(&self) -> StoreError;

    /// How many calls a whole read sends at once ([`holders::read_all`]'s windows): 1
    /// where calls queue anyway (cv's one pipe).
    fn side_by_side(&self) -> usize {
        1
    }

    /// One compare-and-set update (`clause::UpdateParams::swap`): how many contacts it
    /// changed, or why it is not known.
    fn update(&self, swap: &KeySwap<'_>) -> Result<u64, StoreError>;

    /// The updates `swaps[i]` for each `i` of `which`, each with its own count. One by one
    /// unless the transport sends many in one request (REST's multi-call).
    fn updates(
        &self,
        swaps: &[KeySwap<'_>],
        which: &[usize],
    ) -> Vec<(usize, Result<u64, StoreError>)> {
        which.iter().map(|&i| (i, self.update(&swaps[i]))).collect()
    }
}

/// The [`crate::store::ContactStore`] methods that are the shared key steps ([`keys`]),
/// single and batched, and the batch size: expanded in each API v4 store's impl, so the
/// two cannot drift apart or fall back to the trait's one-by-one defaults.
macro_rules! key_steps {
    () => {
        fn holders_of(
            &mut self,
            key: &$crate::key::ApiKey,
        ) -> Result<Vec<$crate::store::ContactId>, $crate::store::StoreError> {
            $crate::store::api4::keys::holders_of(self, key)
        }

        fn read_key(
            &mut self,
            id: $crate::store::ContactId,
        ) -> Result<Option<$crate::key::ApiKey>, $crate::store::StoreError> {
            $crate::store::api4::keys::read_key(self, id)
        }

        fn key_holders(
            &mut self,
            after: Option<&$crate::store::HolderCursor>,
            limit: usize,
        ) -> Result<$crate::store::HolderPage, $crate::store::StoreError> {
            $crate::store::api4::holders::holders_page(self, after, limit)
        }

        /// The ids first, then the contacts in id windows (`api4::holders::read_all`).
        fn read_key_holders(
            &mut self,
            each: &mut dyn FnMut(
                Vec<$crate::store::Holder>,
            ) -> Result<(), $crate::store::StoreError>,
        ) -> Result<(), $crate::store::StoreError> {
            $crate::store::api4::holders::read_all(self, each)
        }

        /// The users' calls (`api4::users::site_users`) beside the holders' windows.
        fn read_users_and_holders(
            &mut self,
            each: &mut $crate::store::SiteReader<'_>,
        ) -> Result<(), $crate::store::StoreError> {
            $crate::store::api4::holders::read_with_users(self, each)
        }

        fn site_users(
            &mut self,
        ) -> Result<Option<$crate::store::SiteUsers>, $crate::store::StoreError> {
            $crate::store::api4::users::site_users(self).map(Some)
        }

        fn swap_key(
            &mut self,
            id: $crate::store::ContactId,
            expected: Option<&$crate::key::ApiKey>,
            new: Option<&$crate::key::ApiKey>,
        ) -> Result<(), $crate::store::StoreError> {
            $crate::store::api4::keys::swap_key(self, id, expected, new)
        }

        fn rotation_batch(&self) -> usize {
            $crate::store::api4::ROTATION_BATCH
        }

        fn read_keys(
            &mut self,
            ids: &[$crate::store::ContactId],
        ) -> Result<
            std::collections::HashMap<$crate::store::ContactId, Option<$crate::key::ApiKey>>,
            $crate::store::StoreError,
        > {
            $crate::store::api4::keys::read_keys(self, ids)
        }

        fn holders_of_keys(
            &mut self,
            keys: &[&$crate::key::ApiKey],
        ) -> Result<Vec<Vec<$crate::store::ContactId>>, $crate::store::StoreError> {
            $crate::store::api4::keys::holders_of_keys(self, keys)
        }

        /// The exact keys read in one call, then the updates (`Api4::updates`: REST in
        /// one multi-call request, cv one by one), each with its own outcome.
        fn swap_keys(
            &mut self,
            swaps: &[$crate::store::KeySwap<'_>],
        ) -> Vec<Result<(), $crate::store::StoreError>> {
            $crate::store::api4::keys::swap_keys(self, swaps)
        }
    };
}
pub(crate) use key_steps;

/// Overwrites every string in `value`: request parameters and answers may hold keys, and
/// serde_json's strings are not zeroized on their own.
pub(crate) fn wipe(value: &mut Value) {
    match value {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(wipe),
        Value::Object(map) => map.values_mut().for_each(wipe),
        _ => {}
    }
}
