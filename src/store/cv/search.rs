//! The cv store's searches: by id, email or name text in pages by offset (a contact's
//! rows folded: several emails, several CMS domains), and, through a `cv pipe` session,
//! the keystroke name search one call per branch, paged by keyset. Also the key holders'
//! pages and the contact reads, with the CMS link joined.

use std::collections::BTreeSet;

use super::CvStore;
use crate::store::api4::clause::{
    self, any_deleted, by_ids, Clause, GetParams, Join, Reading, ID_ORDER, LIST_ORDER,
    SORTED_ORDER, UF_JOIN,
};
use crate::store::api4::paging::{drop_last_sort_name, keyset_page, offset_of};
use crate::store::api4::rows::{
    contacts_of, merge_rows, ContactRow, IdRow, Merged, SortRow, CONTACT_FIELDS, LINKED_FIELDS,
};
use crate::store::api4::{Api4, MAX_PAGE};
use crate::store::{CmsLink, Contact, Cursor, Matcher, Page, Query, StoreError};

/// The most rows one page fetches while looking for the end of one contact's rows.
const MAX_FETCH: usize = 4096;

/// Every email of the contact (not only the primary one), for email searches. A contact
/// with several matching emails comes back once per email; [`merge_rows`] folds them.
const EMAIL_JOIN: Join = ("Email AS email", "INNER", ["email.contact_id", "=", "id"]);

impl CvStore {
    /// Contact rows of `params` (with `api_key`: rows without it are refused), folded.
    fn merged(&self, params: &GetParams<'_>) -> Result<Vec<Merged>, StoreError> {
        let rows: Vec<ContactRow> = Api4::get(self, "Contact", params, &[])?;
        merge_rows(rows, || self.keys_hidden())
    }

    /// The contacts for `where_`, with the CMS link, folded one per contact.
    pub(super) fn contacts_where(
        &self,
        where_: Vec<Clause<'_>>,
    ) -> Result<Vec<Contact>, StoreError> {
        let params = GetParams {
            join: vec![UF_JOIN],
            ..GetParams::new(LINKED_FIELDS, where_)
        };
        let rows: Vec<ContactRow> = Api4::get(self, "Contact", &params, &[])?;
        contacts_of(rows, || self.keys_hidden())
    }

    /// A search: through the pipe, a keystroke name search by keyset
    /// ([`Self::search_by_prefixes`]); otherwise by offset, one call for the page and one
    /// for its CMS links.
    pub(super) fn search_page(&self, query: &Query) -> Result<Page, StoreError> {
        let limit = query.limit.clamp(1, MAX_PAGE);
        if let (Matcher::Name(text), false) = (query.matcher(), query.deep) {
            // Through the pipe each call costs milliseconds: one call per prefix (each an
            // index range) beats the one OR. A page that started that way goes on so.
            if matches!(query.after, Some(Cursor::After { .. })) || self.pipe_open() {
                return self.search_by_prefixes(text, query, limit);
            }
        }
        let offset = offset_of(query.after.as_ref(), "the cv store")?;
        // No UFMatch join in a search (it turns CiviCRM's plan into an index merge and a
        // filesort: 0.5 s at 1M contacts); the page's CMS links come from one more call.
        let mut join = Vec::new();
        let mut where_ = Vec::new();
        match query.matcher() {
            Matcher::All => {}
            Matcher::Id(id) => where_.push(clause::by_id(id)),
            Matcher::EmailPrefix(text) => {
                join.push(EMAIL_JOIN);
                where_.push(clause::starts("email.email", text));
            }
            Matcher::Email(text) => where_.push(clause::equals("email_primary.email", text)),
            Matcher::Name(text) => where_.push(clause::name_where(text, query.deep)),
        }
        where_.push(clause::deleted(query.include_deleted));
        // One more row than the page, to know whether there is more.
        let mut fetch = limit + 1;
        loop {
            let params = GetParams {
                join: join.clone(),
                ..GetParams::new(CONTACT_FIELDS, where_.clone())
                    .order(LIST_ORDER)
                    .limit(fetch)
                    .offset(offset)
            };
            let rows: Vec<ContactRow> = Api4::get(self, "Contact", &params, &[])?;
            // Fewer rows than asked for: everything from `offset` on is here.
            let complete = rows.len() < fetch;
            let mut groups = merge_rows(rows, || self.keys_hidden())?;
            if !complete && groups.len() == 1 && fetch < MAX_FETCH {
                // One contact's rows (emails x domains) filled the whole fetch: its end is
                // not in sight, so fetch more rather than show it twice.
                fetch = (fetch * 4).min(MAX_FETCH);
                continue;
            }
            if groups.len() > limit {
                groups.truncate(limit);
            } else if complete {
                let mut contacts: Vec<Contact> = groups.into_iter().map(|m| m.contact).collect();
                self.add_cms_links(&mut contacts)?;
                return Ok(Page {
                    contacts,
                    next: None,
                });
            } else if groups.len() > 1 {
                // The last contact may continue past the fetch: the page ends at the last
                // contact known to be complete.
                groups.pop();
            }
            let consumed: usize = groups.iter().map(|m| m.rows).sum();
            let mut contacts: Vec<Contact> = groups.into_iter().map(|m| m.contact).collect();
            self.add_cms_links(&mut contacts)?;
            return Ok(Page {
                contacts,
                next: Some(Cursor::Offset(offset + consumed as u64)),
            });
        }
    }

    /// A keystroke name search as the REST store runs it: one Contact.get per branch
    /// ([`clause::name_branches`]: ids, one page past the cursor in list order), then the
    /// page from the union of their ids, in the site's order, with the CMS link. Keyset
    /// paging on (sort_name, id).
    fn search_by_prefixes(
        &self,
        text: &str,
        query: &Query,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let fetch = limit + 1;
        let common = clause::keystroke_common(
            query.include_deleted,
            query.after.as_ref(),
            "through cv pipe",
        )?;
        let mut ids = BTreeSet::new();
        for (branch, reading) in clause::name_branches(text) {
            let mut where_ = vec![branch.clone()];
            where_.extend(common.iter().cloned());
            if reading == Reading::Walk {
                let params = GetParams::new(&["id"], where_)
                    .order(LIST_ORDER)
                    .limit(fetch);
                let rows: Vec<IdRow> = Api4::get(self, "Contact", &params, &[])?;
                ids.extend(rows.into_iter().map(|r| r.id));
                continue;
            }
            // Every contact before the last row's sort name is here; of that sort name's
            // contacts maybe not the lowest ids, so they come from one more call (an
            // equality on the sort-name index). Together: a superset of the branch's first
            // `fetch` rows in (sort_name, id) order, which is all the page needs.
            let params = GetParams::new(&["id", "sort_name"], where_)
                .order(SORTED_ORDER)
                .limit(fetch);
            let mut rows: Vec<SortRow> = Api4::get(self, "Contact", &params, &[])?;
            let last = if rows.len() == fetch {
                // The rows of the last sort name (those spelt the same: the others are
                // kept, which is harmless) come from the boundary call instead.
                drop_last_sort_name(&mut rows, |r| r.sort_name.as_deref())
            } else {
                None
            };
            ids.extend(rows.into_iter().map(|r| r.id));
            if let Some(last) = last {
                let mut where_ = vec![clause::boundary(&branch, last.as_deref())];
                where_.extend(common.iter().cloned());
                let params = GetParams::new(&["id"], where_).order(ID_ORDER).limit(fetch);
                let rows: Vec<IdRow> = Api4::get(self, "Contact", &params, &[])?;
                ids.extend(rows.into_iter().map(|r| r.id));
            }
        }
        if ids.is_empty() {
            return Ok(Page::default());
        }
        let ids: Vec<u64> = ids.into_iter().collect();
        let mut where_ = vec![by_ids(&ids)];
        where_.extend(common);
        let params = GetParams {
            join: vec![UF_JOIN],
            ..GetParams::new(LINKED_FIELDS, where_).order(LIST_ORDER)
        };
        let (page, next) = keyset_page(self.merged(&params)?, limit, |m| {
            (m.sort_name.clone(), m.contact.id)
        });
        Ok(Page {
            contacts: page.into_iter().map(|m| m.contact).collect(),
            next,
        })
    }

    /// The CMS links of a search page's contacts, in one call on their ids.
    fn add_cms_links(&self, contacts: &mut [Contact]) -> Result<(), StoreError> {
        if contacts.is_empty() {
            return Ok(());
        }
        let ids: Vec<u64> = contacts.iter().map(|c| c.id).collect();
        let linked = self.contacts_where(vec![by_ids(&ids), any_deleted()])?;
        for contact in contacts {
            contact.cms = linked
                .iter()
                .find(|l| l.id == contact.id)
                .map_or(CmsLink::None, |l| l.cms);
        }
        Ok(())
    }
}
