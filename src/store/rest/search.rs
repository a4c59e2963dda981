//! The REST store's searches: by id, email or name text in pages by offset, and the
//! keystroke name search in one request (its branches and their CMS links in one
//! multi-call), ordered here when that is sure, by the site otherwise.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering as Atomic;

use serde_json::Value;
use zeroize::Zeroizing;

use super::errors::{shown, Call};
use super::links::{branch_links_params, links_of, links_params};
use super::order::{site_order, site_order_key};
use super::reply::{no_edit_api_keys, Reply};
use super::wire::{form_field, params_text};
use super::RestStore;
use crate::store::api4::clause::{self, Clause, GetParams, Reading, LIST_ORDER, SORTED_ORDER};
use crate::store::api4::paging::{drop_last_sort_name, keyset_page, offset_of, offset_page};
use crate::store::api4::rows::{merge_rows, ContactRow, SortRow, CONTACT_FIELDS};
use crate::store::api4::{IDS_PER_CALL, MAX_PAGE};
use crate::store::{CmsLink, Contact, ContactId, Cursor, Matcher, Page, Query, StoreError};

impl RestStore {
    /// A search: a keystroke name search by keyset ([`Self::search_by_prefixes`]); by id,
    /// email, or a deep name search in pages by offset, one page and one more row, then
    /// the page's CMS links.
    pub(super) fn search_page(&self, query: &Query) -> Result<Page, StoreError> {
        let limit = query.limit.clamp(1, MAX_PAGE);
        if let (Matcher::Name(text), false) = (query.matcher(), query.deep) {
            return self.search_by_prefixes(text, query, limit);
        }
        let offset = offset_of(query.after.as_ref(), "the REST store")?;
        let mut where_ = match query.matcher() {
            Matcher::All => vec![],
            Matcher::Id(id) => vec![clause::by_id(id)],
            Matcher::EmailPrefix(text) => vec![clause::starts("email_primary.email", text)],
            Matcher::Email(text) => vec![clause::equals("email_primary.email", text)],
            Matcher::Name(text) => vec![clause::name_where(text, query.deep)],
        };
        where_.push(clause::deleted(query.include_deleted));
        let params = GetParams::new(CONTACT_FIELDS, where_)
            .order(LIST_ORDER)
            .limit(limit + 1)
            .offset(offset);
        let (contacts, next) = offset_page(self.contacts_where(params)?, limit, offset);
        Ok(Page {
            contacts,
            next: next.map(Cursor::Offset),
        })
    }

    /// A keystroke name search, one index range per call: each prefix of
    /// [`clause::name_branches`] as its own Contact.get (the page's fields, one page past the
    /// cursor in list order) and the CMS links of that branch's contacts (UFMatch.get on
    /// the same conditions), all in **one** multi-call request. One OR of all the prefixes
    /// would make MariaDB walk the sort-name index from the start testing every row (2-3 s
    /// at 1M for `smith`). Keyset paging on (sort_name, id): a page is the first rows
    /// after the cursor of the union of the branches' first rows, so none is lost.
    ///
    /// The union is ordered here ([`site_order`]) when the site's order of the rows that
    /// decide the page is certain without its collation, which is the usual case; when it
    /// is not (punctuation or letters outside ASCII where two names first differ, a
    /// sorted branch's last sort name reached, more CMS links than one call returns), a
    /// second request lets the site order the page ([`Self::page_by_site`]).
    fn search_by_prefixes(
        &self,
        text: &str,
        query: &Query,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let fetch = limit + 1;
        let common =
            clause::keystroke_common(query.include_deleted, query.after.as_ref(), "over REST")?;
        let (branches, readings): (Vec<Clause<'static>>, Vec<Reading>) =
            clause::name_branches(text).into_iter().unzip();
        // The first-name branch of a text of two letters or more is read sorted on its own
        // index range (see [`SORTED_ORDER`]).
        let sorted = readings.iter().position(|r| *r == Reading::Sort);
        // Twice a page of it: the page then seldom reaches its last sort name, whose
        // contacts need the site's own ordering of the page.
        let sorted_fetch = 2 * fetch;
        // On a site of many users: ids (and the sorted branch's sort names) only, no
        // links calls; the site orders the page ([`Self::page_by_site`]).
        let lean = self.many_users.load(Atomic::Relaxed);
        let mut calls = Zeroizing::new(String::from("{"));
        for (i, branch) in branches.iter().enumerate() {
            let mut where_ = vec![branch.clone()];
            where_.extend(common.iter().cloned());
            let (order, rows) = if sorted == Some(i) {
                (SORTED_ORDER, sorted_fetch)
            } else {
                (LIST_ORDER, fetch)
            };
            let select: &'static [&'static str] = match (lean, sorted == Some(i)) {
                (false, _) => CONTACT_FIELDS,
                (true, true) => &["id", "sort_name"],
                (true, false) => &["id"],
            };
            let params = params_text(&GetParams::new(select, where_).order(order).limit(rows))?;
            // The links call without is_deleted, unordered: MariaDB then reads the
            // branch's index range alone, or the user table when it is the smaller, and
            // stops at the limit (1M contacts, 108,000 users: 3 to 30 ms; with is_deleted
            // read from each row 27 to 66 ms; ordered by sort name, up to 350 ms, as the
            // user table is read whole and sorted). Links of trashed contacts are more
            // than the page needs, never fewer. (`common` is is_deleted, then the cursor.)
            let mut on_links = vec![branch.clone()];
            on_links.extend(common.iter().skip(1).cloned());
            let links = branch_links_params(&on_links, fetch)?;
            if i > 0 {
                calls.push(',');
            }
            calls.push_str(&format!(
                "\"b{i}\":[\"Contact\",\"get\",{}]",
                params.as_str()
            ));
            if !lean {
                calls.push_str(&format!(",\"u{i}\":[\"UFMatch\",\"get\",{links}]"));
            }
        }
        calls.push('}');
        let url = self.multi_url();
        let reply = self.post(&url, &form_field("calls", &calls), Call::Read, &[])?;
        if lean {
            let mut ids = BTreeSet::new();
            let mut boundaries = Vec::new();
            for (i, branch) in branches.iter().enumerate() {
                let part = Reply(search_part(&reply, &format!("b{i}"))?.clone());
                let mut rows: Vec<SortRow> = part.rows()?;
                if sorted == Some(i) && rows.len() == sorted_fetch {
                    if let Some(last) = drop_last_sort_name(&mut rows, |r| r.sort_name.as_deref()) {
                        boundaries.push(clause::boundary(branch, last.as_deref()));
                    }
                }
                ids.extend(rows.into_iter().map(|r| r.id));
            }
            if ids.is_empty() && boundaries.is_empty() {
                return Ok(Page::default());
            }
            return self.page_by_site(ids.into_iter().collect(), boundaries, common, limit, None);
        }
        let mut found: Vec<Found> = Vec::new();
        let mut by_id: HashMap<ContactId, usize> = HashMap::new();
        // Where clauses of contacts the union may lack: the last sort name of a sorted
        // branch, whose lowest ids may not have come.
        let mut boundaries = Vec::new();
        let mut boundary_names: Vec<Option<String>> = Vec::new();
        // Per branch: its CMS links, when they are all there.
        let mut branch_links: Vec<Option<HashMap<ContactId, CmsLink>>> = Vec::new();
        // The sorted branch's links when they all came (the contacts of its last sort name
        // included): the site's ordering request then needs no third for them.
        let mut boundary_links: Option<HashMap<ContactId, CmsLink>> = None;
        for (i, branch) in branches.iter().enumerate() {
            let part = Reply(search_part(&reply, &format!("b{i}"))?.clone());
            part.refuse_trap()?;
            let mut rows: Vec<(Contact, Option<String>)> =
                merge_rows(part.rows::<ContactRow>()?, no_edit_api_keys)?
                    .into_iter()
                    .map(|m| (m.contact, m.sort_name))
                    .collect();
            if sorted == Some(i) && rows.len() == sorted_fetch {
                // Sorted by sort name, then id DESCENDING: every contact of the branch
                // before the last row's sort name is here, but of that sort name maybe not
                // the lowest ids. Rows spelt as the last are dropped; the page must end
                // before that name, or the site reads the branch AND that sort name (an
                // equality on the sort-name index) with the page.
                if let Some(last) = drop_last_sort_name(&mut rows, |r| r.1.as_deref()) {
                    boundaries.push(clause::boundary(branch, last.as_deref()));
                    boundary_names.push(last);
                }
            }
            branch_links.push(
                match reply.0.get(format!("u{i}")) {
                    Some(part) if part.get("status").and_then(Value::as_u64) == Some(403) => {
                        // A site that does not let the admin read UFMatch: unknown for each.
                        let unknown = rows.iter().map(|(c, _)| (c.id, CmsLink::Unknown));
                        Some(Ok(unknown.collect()))
                    }
                    // Any other refusal (a site whose UFMatch.get takes no `contact_id.*`
                    // field, say): the links come from the site's ordering request, which
                    // asks by ids.
                    Some(part) if part.get("error_message").is_some() => None,
                    Some(part) => {
                        let part = Reply(part.clone());
                        let records = part.records()?;
                        // A full answer may have left links out.
                        if records.len() >= fetch {
                            self.many_users.store(true, Atomic::Relaxed);
                        }
                        let complete = (records.len() < fetch).then(|| {
                            let ids: Vec<ContactId> = rows.iter().map(|(c, _)| c.id).collect();
                            links_of(&ids, &part)
                        });
                        if let (Some(Ok(links)), false) = (&complete, boundaries.is_empty()) {
                            if sorted == Some(i) {
                                // Every link of the branch: its last sort name's too.
                                boundary_links = Some(links.clone());
                            }
                        }
                        complete
                    }
                    None => {
                        return Err(StoreError::bad_data(format!(
                            "the site's multi-call answer has no call u{i}"
                        )))
                    }
                }
                .transpose()?,
            );
            for (contact, sort_name) in rows {
                match by_id.get(&contact.id) {
                    Some(&at) => found[at].branches.push(i),
                    None => {
                        by_id.insert(contact.id, found.len());
                        found.push(Found {
                            contact,
                            sort_name,
                            branches: vec![i],
                        });
                    }
                }
            }
        }
        if found.is_empty() && boundaries.is_empty() {
            return Ok(Page::default());
        }
        let ids: Vec<ContactId> = found.iter().map(|f| f.contact.id).collect();
        if let Some(page) = page_here(found, &boundary_names, &branch_links, limit) {
            return Ok(page);
        }
        self.page_by_site(ids, boundaries, common, limit, boundary_links)
    }

    /// The page of a keystroke search ordered by the site: one Contact.get of the
    /// branches' ids (and of `boundaries`, the sorted branches' last sort names) in the
    /// site's order, and the CMS links of those ids, in one multi-call request; a third
    /// only for the links of contacts that came from a boundary alone, unless
    /// `boundary_links` (the sorted branch's, all of them) has them.
    fn page_by_site(
        &self,
        ids: Vec<ContactId>,
        mut boundaries: Vec<Clause<'static>>,
        common: Vec<Clause<'static>>,
        limit: usize,
        boundary_links: Option<HashMap<ContactId, CmsLink>>,
    ) -> Result<Page, StoreError> {
        let fetch = limit + 1;
        let mut ids = ids;
        ids.sort_unstable();
        let by_id = clause::by_ids(&ids);
        let mut where_ = if boundaries.is_empty() {
            vec![by_id]
        } else {
            boundaries.insert(0, by_id);
            vec![Clause::Or(boundaries)]
        };
        where_.extend(common);
        // The page (at most a few hundred ids, and a sort name's contacts) in the site's
        // order, and the CMS links of those ids (one row per contact whatever the number
        // of domains), in one multi-call request.
        let page_params = GetParams::new(CONTACT_FIELDS, where_)
            .order(LIST_ORDER)
            .limit(fetch);
        let mut calls = Zeroizing::new(format!(
            "{{\"page\":[\"Contact\",\"get\",{}]",
            params_text(&page_params)?.as_str()
        ));
        let chunks: Vec<&[ContactId]> = ids.chunks(IDS_PER_CALL).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            calls.push_str(&format!(
                ",\"l{i}\":[\"UFMatch\",\"get\",{}]",
                links_params(chunk)
            ));
        }
        calls.push('}');
        let url = self.multi_url();
        let reply = self.post(&url, &form_field("calls", &calls), Call::Read, &[])?;
        let page_reply = Reply(search_part(&reply, "page")?.clone());
        page_reply.refuse_trap()?;
        let mut rows: Vec<ContactRow> = page_reply.rows()?;
        rows.truncate(fetch);
        let (page, next) = keyset_page(merge_rows(rows, no_edit_api_keys)?, limit, |m| {
            (m.sort_name.clone(), m.contact.id)
        });
        let mut contacts: Vec<Contact> = page.into_iter().map(|m| m.contact).collect();
        let mut links = HashMap::with_capacity(ids.len());
        for (i, chunk) in chunks.iter().enumerate() {
            let reply = match reply.0.get(format!("l{i}")) {
                Some(part) => Reply(part.clone()),
                None => {
                    return Err(StoreError::bad_data(format!(
                        "the site's multi-call answer has no call l{i}"
                    )))
                }
            };
            if reply.0.get("error_message").is_some() {
                // A site that does not let the admin read UFMatch: unknown for each.
                links.extend(chunk.iter().map(|&id| (id, CmsLink::Unknown)));
            } else {
                links.extend(links_of(chunk, &reply)?);
            }
        }
        // Contacts that came from a sorted branch's last sort name only: their links now.
        let missing: Vec<ContactId> = contacts
            .iter()
            .map(|c| c.id)
            .filter(|id| !links.contains_key(id))
            .collect();
        match boundary_links {
            Some(known) => links.extend(
                missing
                    .iter()
                    .map(|id| (*id, known.get(id).copied().unwrap_or(CmsLink::None))),
            ),
            None if !missing.is_empty() => links.extend(self.cms_links(&missing)?),
            None => {}
        }
        for c in &mut contacts {
            c.cms = links.get(&c.id).copied().unwrap_or(CmsLink::Unknown);
        }
        Ok(Page { contacts, next })
    }
}

/// Call `name` of a search's multi-call answer; a call the site refused fails the search
/// with its message.
fn search_part<'a>(reply: &'a Reply, name: &str) -> Result<&'a Value, StoreError> {
    let part = reply.0.get(name).ok_or_else(|| {
        StoreError::bad_data(format!("the site's multi-call answer has no call {name}"))
    })?;
    if let Some(message) = part.get("error_message").and_then(Value::as_str) {
        return Err(StoreError::bad_data(format!(
            "the site refused a search call: {}",
            shown(message, &[])
        )));
    }
    Ok(part)
}

/// A contact a keystroke search's branches found, with its sort name as the site compares
/// it and the branches it came from.
struct Found {
    contact: Contact,
    sort_name: Option<String>,
    branches: Vec<usize>,
}

/// The page from the branches' rows, ordered here, when that is certainly the site's page:
/// the rows that decide it ordered by [`site_order`] without doubt, the page ending before
/// every sorted branch's last sort name (`boundaries`: its contacts may not all have
/// come), and each contact's CMS link known from a complete UFMatch answer of one of its
/// branches (`links`). None when the site must order the page.
fn page_here(
    mut found: Vec<Found>,
    boundaries: &[Option<String>],
    links: &[Option<HashMap<ContactId, CmsLink>>],
    limit: usize,
) -> Option<Page> {
    let order = |a: &Found, b: &Found| -> Option<Ordering> {
        let by_name = match (&a.sort_name, &b.sort_name) {
            (None, None) => Some(Ordering::Equal),
            (None, Some(_)) => Some(Ordering::Less),
            (Some(_), None) => Some(Ordering::Greater),
            (Some(x), Some(y)) => site_order(x, y),
        };
        by_name.map(|o| o.then(a.contact.id.cmp(&b.contact.id)))
    };
    // A total order that agrees with every pair `order` is sure of (a sort by `order`
    // itself, doubtful pairs decided some other way, need not be total, and Rust's sort
    // may panic then); the checks below say whether the rows that matter were ordered
    // without doubt.
    found.sort_by_cached_key(|f| (f.sort_name.as_deref().map(site_order_key), f.contact.id));
    let more = found.len() > limit;
    let shown = found.len().min(limit);
    // Each shown row before the next, and the last shown before every row not shown.
    for pair in found[..(shown + 1).min(found.len())].windows(2) {
        if order(&pair[0], &pair[1]) != Some(Ordering::Less) {
            return None;
        }
    }
    if let Some(last) = shown.checked_sub(1).map(|i| &found[i]) {
        for later in &found[shown..] {
            if order(last, later) != Some(Ordering::Less) {
                return None;
            }
        }
        for boundary in boundaries {
            let before = match (&last.sort_name, boundary) {
                (_, None) => None,
                (None, Some(_)) => Some(Ordering::Less),
                (Some(x), Some(y)) => site_order(x, y),
            };
            if before != Some(Ordering::Less) {
                return None;
            }
        }
    } else if !boundaries.is_empty() {
        return None;
    }
    // Without a next page the branches must have ended: a sorted branch that reached its
    // last sort name has more after it.
    if !more && !boundaries.is_empty() {
        return None;
    }
    let (found, next) = keyset_page(found, limit, |f| (f.sort_name.clone(), f.contact.id));
    let mut contacts = Vec::with_capacity(found.len());
    for f in found {
        let link = f
            .branches
            .iter()
            .find_map(|&b| links.get(b).and_then(Option::as_ref))
            .map(|known| known.get(&f.contact.id).copied().unwrap_or(CmsLink::None))?;
        contacts.push(Contact {
            cms: link,
            ..f.contact
        });
    }
    Some(Page { contacts, next })
}
