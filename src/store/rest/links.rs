//! CMS links (UFMatch) of the current domain: one row per contact, however many domains
//! the site has (a UFMatch join would give one row per domain).

use std::collections::HashMap;

use serde_json::{json, Value};

use super::errors::Call;
use super::reply::Reply;
use super::RestStore;
use crate::store::api4::clause::Clause;
use crate::store::api4::rows::LinkRow;
use crate::store::api4::IDS_PER_CALL;
use crate::store::{CmsLink, ContactId, StoreError};

impl RestStore {
    /// The CMS links of `ids` on the site's current domain: one row per contact, however
    /// many domains the site has (a UFMatch join would give one row per domain). A site
    /// that does not let the admin read UFMatch answers `Unknown` for each.
    pub(super) fn cms_links(
        &self,
        ids: &[ContactId],
    ) -> Result<HashMap<ContactId, CmsLink>, StoreError> {
        let mut links = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_CALL) {
            let reply = match self.call("UFMatch", "get", &links_params(chunk), Call::Read, &[]) {
                Ok(reply) => reply,
                Err(StoreError::PermissionDenied(_) | StoreError::BadData(_)) => {
                    return Ok(ids.iter().map(|&id| (id, CmsLink::Unknown)).collect())
                }
                Err(e) => return Err(e),
            };
            links.extend(links_of(chunk, &reply)?);
        }
        Ok(links)
    }
}

/// UFMatch.get params for the CMS links of `ids` on the site's current domain.
pub(super) fn links_params(ids: &[ContactId]) -> Value {
    json!({
        "select": ["contact_id", "uf_id"],
        "where": [["contact_id", "IN", ids], ["domain_id", "=", "current_domain"]],
    })
}

/// UFMatch.get params for the CMS links of a keystroke branch's contacts: the branch's own
/// conditions on the linked contact (`contact_id.sort_name LIKE ...`, an implicit join of
/// the user table to the contacts), on the current domain, at most `limit` (a page and
/// one): MariaDB stops there, so the call stays cheap however many users match; an
/// answer that full may have left links out, and the page's links then come from the
/// site's ordering request.
pub(super) fn branch_links_params(
    where_: &[Clause<'_>],
    limit: usize,
) -> Result<Value, StoreError> {
    let mut on_contact = Vec::with_capacity(where_.len() + 1);
    for clause in where_ {
        let clause = serde_json::to_value(clause)
            .map_err(|e| StoreError::invalid(format!("params: {e}")))?;
        on_contact.push(of_linked_contact(&clause));
    }
    on_contact.push(json!(["domain_id", "=", "current_domain"]));
    Ok(json!({
        "select": ["contact_id", "uf_id"],
        "where": on_contact,
        "limit": limit,
    }))
}

/// A Contact where clause as one on UFMatch's linked contact: each field `f` becomes
/// `contact_id.f`.
fn of_linked_contact(clause: &Value) -> Value {
    match clause.as_array().map(Vec::as_slice) {
        Some([Value::String(op), Value::Array(parts)]) if op == "OR" || op == "AND" => {
            json!([op, parts.iter().map(of_linked_contact).collect::<Vec<_>>()])
        }
        Some([Value::String(field), rest @ ..]) => {
            let mut out = vec![json!(format!("contact_id.{field}"))];
            out.extend(rest.iter().cloned());
            Value::Array(out)
        }
        _ => clause.clone(),
    }
}

/// The links a UFMatch.get answered for `ids`: linked, or none.
pub(super) fn links_of(
    ids: &[ContactId],
    reply: &Reply,
) -> Result<HashMap<ContactId, CmsLink>, StoreError> {
    let mut links: HashMap<ContactId, CmsLink> =
        ids.iter().map(|&id| (id, CmsLink::None)).collect();
    for row in reply.rows::<LinkRow>()? {
        if let (Some(contact), Some(uf_id)) = (row.contact_id, row.uf_id) {
            links.insert(contact, CmsLink::Linked { uf_id });
        }
    }
    Ok(links)
}
