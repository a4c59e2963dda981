//! The API v4 calls the shared steps ([`crate::store::api4`]) make, over HTTP: a `get`,
//! one compare-and-set update, and many updates in one multi-call request, each call of
//! it judged on its own. Also the contact reads and key holders' pages, whose CMS links
//! come from one more call on their ids.

use serde::de::DeserializeOwned;
use serde_json::Value;
use zeroize::Zeroizing;

use super::errors::{shown, unknown_after_ok, Call};
use super::reply::{no_edit_api_keys, Reply, NO_EDIT_API_KEYS};
use super::wire::{form_field, params_text};
use super::RestStore;
use crate::key::ApiKey;
use crate::sanitize::SafeText;
use crate::store::api4::clause::{any_deleted, by_ids, GetParams, UpdateParams, LIST_ORDER};
use crate::store::api4::rows::{merge_rows, ContactRow, Merged, CONTACT_FIELDS};
use crate::store::api4::{users, Api4, IfThere};
use crate::store::{CmsLink, Contact, ContactId, KeySwap, StoreError};

impl Api4 for RestStore {
    fn who(&self) -> &'static str {
        "the site"
    }

    fn get<T: DeserializeOwned>(
        &self,
        entity: &'static str,
        params: &GetParams<'_>,
        secrets: &[&ApiKey],
    ) -> Result<Vec<T>, StoreError> {
        let secrets: Vec<&str> = secrets.iter().map(|k| k.expose()).collect();
        let reply = self.call(entity, "get", params, Call::Read, &secrets)?;
        reply.refuse_trap()?;
        reply.rows()
    }

    /// A site that refuses the entity (403) or has none (not Standalone: HTTP 500, "does
    /// not exist").
    fn get_if_there<T: DeserializeOwned>(
        &self,
        entity: &'static str,
        params: &GetParams<'_>,
    ) -> Result<IfThere<T>, StoreError> {
        match self.get(entity, params, &[]) {
            Ok(rows) => Ok(IfThere::Rows(rows)),
            Err(StoreError::PermissionDenied(_)) => Ok(IfThere::Refused),
            Err(StoreError::BadData(_)) => Ok(IfThere::Absent),
            Err(e) => Err(e),
        }
    }

    fn users_seen(&self) -> &std::sync::OnceLock<users::Seen> {
        &self.users_seen
    }

    fn keys_hidden(&self) -> StoreError {
        no_edit_api_keys()
    }

    /// Two windows at once: a site answers each in its own PHP worker, so one is on its way
    /// while civikey reads the other (no more requests in all, and never more than two).
    fn side_by_side(&self) -> usize {
        2
    }

    fn update(&self, swap: &KeySwap<'_>) -> Result<u64, StoreError> {
        let secrets: Vec<&str> = [swap.expected, swap.new]
            .into_iter()
            .flatten()
            .map(ApiKey::expose)
            .collect();
        let params = UpdateParams::swap(swap.id, swap.expected, swap.new);
        let reply = self.call("Contact", "update", &params, Call::Write, &secrets)?;
        update_count(&reply, swap.id)
    }

    /// One multi-call request: a call that failed inside it did not apply (its own
    /// transaction was rolled back) and carries its own status; a request whose answer is
    /// lost makes every one of them unknown.
    fn updates(
        &self,
        swaps: &[KeySwap<'_>],
        which: &[usize],
    ) -> Vec<(usize, Result<u64, StoreError>)> {
        let all_unknown = |e: StoreError| which.iter().map(|&i| (i, Err(e.again()))).collect();
        let mut secrets: Vec<&str> = Vec::with_capacity(which.len() * 2 + 1);
        let mut calls = Zeroizing::new(String::from("{"));
        for (n, &i) in which.iter().enumerate() {
            let s = &swaps[i];
            secrets.extend(
                [s.expected, s.new]
                    .into_iter()
                    .flatten()
                    .map(ApiKey::expose),
            );
            let params = match params_text(&UpdateParams::swap(s.id, s.expected, s.new)) {
                Ok(p) => p,
                Err(e) => return all_unknown(e),
            };
            if n > 0 {
                calls.push(',');
            }
            // Names sort in sending order: the calls run in the order of the object.
            calls.push_str(&format!(
                "\"u{n:04}\":[\"Contact\",\"update\",{}]",
                params.as_str()
            ));
        }
        calls.push('}');
        let url = self.multi_url();
        let mut reply = match self.post(&url, &form_field("calls", &calls), Call::Write, &secrets) {
            Ok(reply) => reply,
            Err(e) => return all_unknown(e),
        };
        secrets.push(self.api_key.expose());
        let redact = |text: &str| shown(text, &secrets);
        which
            .iter()
            .enumerate()
            .map(|(n, &i)| {
                let id = swaps[i].id;
                let part = Reply(
                    reply
                        .0
                        .get_mut(format!("u{n:04}"))
                        .map(Value::take)
                        .unwrap_or(Value::Null),
                );
                if part.0.is_null() {
                    return (i, Err(unknown_after_ok(&format!("the multi-call answer has no call for contact {id}"))));
                }
                let Some(message) = part.error_message() else {
                    return (i, update_count(&part, id));
                };
                let status = part.0.get("status").and_then(Value::as_u64);
                let message = redact(&message);
                let refused = if status == Some(403) {
                    StoreError::PermissionDenied(SafeText::new(&format!(
                        "permission denied: the site refused to change contact {id}'s key (HTTP 403: {message}). The admin user's role needs the CiviCRM permission 'edit api keys' (or 'administer CiviCRM') and may edit this contact; nothing was changed"
                    )))
                } else {
                    StoreError::bad_data(format!(
                        "the site reported an error for contact {id}: {message}"
                    ))
                };
                (i, Err(refused))
            })
            .collect()
    }
}

/// How many contacts an update changed, as its answer says.
fn update_count(reply: &Reply, id: ContactId) -> Result<u64, StoreError> {
    if reply.refuse_trap().is_err() {
        // The key filter was dropped: the write matched on id alone, or was ignored.
        return Err(StoreError::OutcomeUnknown(SafeText::new(&format!(
            "the site ignored api_key in the update, so it may or may not have changed \
             contact {id}'s key: {NO_EDIT_API_KEYS}"
        ))));
    }
    reply.count().ok_or_else(|| {
        StoreError::OutcomeUnknown(SafeText::new(
            "the site's answer to the update does not say how many contacts changed; look at \
             the contact again before retrying",
        ))
    })
}

impl RestStore {
    /// Contact.get with the contact fields, then the CMS links of the contacts in one more
    /// call on their ids (no UFMatch join: it turns CiviCRM's plan into an index merge and
    /// a filesort, 0.5 s at 1M contacts). With the rows' keys, for key holders.
    fn merged_with_links(&self, params: &GetParams<'_>) -> Result<Vec<Merged>, StoreError> {
        let rows: Vec<ContactRow> = self.get("Contact", params, &[])?;
        let mut merged = merge_rows(rows, no_edit_api_keys)?;
        let ids: Vec<ContactId> = merged.iter().map(|m| m.contact.id).collect();
        let links = self.cms_links(&ids)?;
        for m in &mut merged {
            m.contact.cms = links
                .get(&m.contact.id)
                .copied()
                .unwrap_or(CmsLink::Unknown);
        }
        Ok(merged)
    }

    /// The contacts of `params` with their CMS links, in list order unless it names one.
    pub(super) fn contacts_where(&self, params: GetParams<'_>) -> Result<Vec<Contact>, StoreError> {
        let params = GetParams {
            order_by: Some(params.order_by.unwrap_or(LIST_ORDER)),
            ..params
        };
        Ok(self
            .merged_with_links(&params)?
            .into_iter()
            .map(|m| m.contact)
            .collect())
    }

    /// The contacts of `ids` (at most a page of them).
    pub(super) fn contacts_by_ids(&self, ids: &[ContactId]) -> Result<Vec<Contact>, StoreError> {
        self.contacts_where(
            GetParams::new(CONTACT_FIELDS, vec![by_ids(ids), any_deleted()]).limit(ids.len()),
        )
    }
}
