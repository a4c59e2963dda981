//! The CiviCRM REST API v4 store: `POST {site}/civicrm/ajax/api4/Contact/{get|update}`
//! (or the profile's address template, for CMSs that route API v4 through a query string).
//!
//! Everything here follows CiviCRM's documented behaviour (shared/CIVICRM.md, "REST API
//! v4"): credentials travel only in headers (never in the URL, where web server logs would
//! keep them), deleted contacts are asked for explicitly (API v4 hides them unless
//! `is_deleted` is in the where clause), and the permission trap is detected: without
//! `edit api keys`, CiviCRM silently drops `api_key` from select AND where, so a filter on
//! a key would match every contact. Any answer missing `api_key` is therefore refused.

mod options;

pub use options::RestOptions;

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering as Atomic};
use std::time::Duration;

use serde_json::{json, Map, Value};
use zeroize::{Zeroize, Zeroizing};

use crate::key::{ApiKey, KEY_LEN};
use crate::sanitize::SafeText;
use crate::secret::Secret;
use crate::store::error::hide_secrets;
use crate::store::SiteLogin;
use crate::store::{
    AccountState, CmsLink, Contact, ContactId, ContactStore, Cursor, Holder, HolderCursor,
    HolderPage, KeySwap, Matcher, Page, Query, Role, Standing, StoreError, StoreInfo, StoreKind,
    UserAccount,
};

/// API v4's route under the site address (Standalone, Drupal, Backdrop, WordPress with
/// clean URLs).
const API_ROUTE: &str = "/civicrm/ajax/api4/{entity}/{action}";
/// The largest answer read. A page of contacts is a few kilobytes; anything near this is a
/// misbehaving server, and reading it unbounded would let it exhaust memory.
const MAX_BODY: u64 = 8 * 1024 * 1024;
/// Error bodies are only shown in part; no need to read more of them.
const MAX_ERROR_BODY: u64 = 64 * 1024;
/// Columns of server text quoted in one error message.
const MAX_SHOWN: usize = 300;
/// More holders than this for one key cannot be legitimate: the filter was ignored.
const MAX_HOLDERS: usize = 1000;
/// Largest page a search asks for.
const MAX_PAGE: usize = 1000;

const CONTACT_FIELDS: [&str; 7] = [
    "id",
    "display_name",
    "sort_name",
    "contact_type",
    "is_deleted",
    "email_primary.email",
    "api_key",
];
/// Ids per request when reading CMS links, users and roles.
const IDS_PER_CALL: usize = 200;
/// Keys per uniqueness check, and updates per multi-call request (bulk rotation).
const KEYS_PER_CALL: usize = 100;
/// Contacts bulk rotation writes together: about 7 requests per batch instead of 7 per
/// contact, and at most this many keys undelivered if civikey is killed mid-batch.
const ROTATION_BATCH: usize = 50;

const NO_EDIT_API_KEYS: &str = "the admin API key's user lacks the CiviCRM permission \
'edit api keys' (or 'administer CiviCRM'). CiviCRM then silently hides api_key from answers \
and ignores it in filters, so key states, uniqueness checks and compare-and-set cannot be \
trusted; civikey refuses to read or change keys through this key. Grant that permission to \
the admin user's role, or use another admin key";

/// Whether a request may have changed the site: decides how a lost answer is reported.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Call {
    Read,
    Write,
}

pub struct RestStore {
    agent: ureq::Agent,
    /// The API v4 address with `{entity}` and `{action}` in it; holds no credentials.
    template: String,
    /// Where the site is, for messages: the site address, or the template.
    base: String,
    api_key: ApiKey,
    site_key: Option<Secret>,
    timeout: Duration,
    /// A keystroke's links calls came back full (a site where many contacts have CMS
    /// users): its keystrokes then take two requests anyway, and from then on skip the
    /// links calls and the page's fields in the first (`search_by_prefixes`).
    many_users: AtomicBool,
}

impl fmt::Debug for RestStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestStore")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl RestStore {
    /// Checks the address and credentials and prepares the HTTP client. Sends nothing:
    /// every call reports its own failure (401, maintenance, the permission trap) clearly,
    /// so opening stays instant and the first screen is not held up by the network.
    pub fn connect(opts: &RestOptions) -> Result<Self, StoreError> {
        let (base, template, plain_http) = check_api_address(&opts.base_url)?;
        check_header_secret(opts.api_key.expose(), "the admin API key")?;
        if let Some(site_key) = &opts.site_key {
            check_header_secret(site_key.expose(), "the site key")?;
        }
        if opts.timeout.is_zero() {
            return Err(StoreError::invalid(
                "the REST store's timeout must be more than 0 seconds",
            ));
        }
        let mut config = ureq::Agent::config_builder()
            // Error statuses carry CiviCRM's error_message: read them rather than fail early.
            .http_status_as_error(false)
            // A redirect would resend the credential headers to wherever it points, and turn
            // the POST into a GET: stop and tell the operator the right address instead.
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_connect(Some(opts.timeout))
            .timeout_global(Some(opts.timeout))
            .user_agent(concat!("civikey/", env!("CARGO_PKG_VERSION")))
            .accept("application/json");
        if plain_http {
            // Plain http is allowed only to this machine; a proxy would carry the key off it
            // in clear text.
            config = config.proxy(None);
        } else {
            config = config.https_only(true);
        }
        Ok(RestStore {
            agent: config.build().into(),
            template,
            base,
            api_key: opts.api_key.clone(),
            site_key: opts.site_key.clone(),
            timeout: opts.timeout,
            many_users: AtomicBool::new(false),
        })
    }

    /// The address of `entity`.`action`.
    fn url(&self, entity: &str, action: &str) -> String {
        self.template
            .replace("{entity}", entity)
            .replace("{action}", action)
    }

    /// The address of several API v4 calls in one request (form field `calls`): the
    /// route without its entity and action.
    fn multi_url(&self) -> String {
        self.template.replace("/{entity}/{action}", "")
    }

    /// What to log in with to check a new key on this site (the login check).
    pub fn site_login(&self) -> SiteLogin {
        SiteLogin {
            api_address: self.template.clone(),
            site_key: self.site_key.clone(),
            timeout: self.timeout,
        }
    }

    /// One Contact call.
    fn call(
        &self,
        action: &str,
        params: Params,
        order_by: Option<&str>,
        kind: Call,
        secrets: &[&str],
    ) -> Result<Reply, StoreError> {
        self.call_entity("Contact", action, params, order_by, kind, secrets)
    }

    /// One API v4 call. `secrets` are values in `params` that must not come back in an error
    /// message (CiviCRM error texts may quote the request).
    fn call_entity(
        &self,
        entity: &str,
        action: &str,
        params: Params,
        order_by: Option<&str>,
        kind: Call,
        secrets: &[&str],
    ) -> Result<Reply, StoreError> {
        let url = self.url(entity, action);
        let body = form_body(&params.0, order_by)?;
        drop(params);
        self.post(&url, &body, kind, secrets)
    }

    /// One POST of a form `body` to `url`, its answer judged.
    fn post(
        &self,
        url: &str,
        body: &str,
        kind: Call,
        secrets: &[&str],
    ) -> Result<Reply, StoreError> {
        let answer = self.send(url, body, kind)?;
        let site_key = self.site_key.as_ref().map(Secret::expose);
        let exchange = Exchange {
            url,
            kind,
            secrets: secrets
                .iter()
                .copied()
                .chain([self.api_key.expose()])
                .chain(site_key)
                .collect(),
            site_key_sent: self.site_key.is_some(),
        };
        judge_answer(
            &exchange,
            answer.status,
            &answer.content_type,
            answer.location.as_deref(),
            &answer.bytes,
            answer.too_big,
        )
    }

    /// Sends one request; the answer as it came, read up to the size cap.
    fn send(&self, url: &str, body: &str, kind: Call) -> Result<RawAnswer, StoreError> {
        let auth = Zeroizing::new(format!("Bearer {}", self.api_key.expose()));
        let mut request = self
            .agent
            .post(url)
            .header("X-Civi-Auth", auth.as_str())
            .header("X-Requested-With", "XMLHttpRequest")
            .header("Content-Type", "application/x-www-form-urlencoded");
        if let Some(site_key) = &self.site_key {
            request = request.header("X-Civi-Key", site_key.expose());
        }
        let mut response = request
            .send(body.as_bytes())
            .map_err(|e| self.transport_error(e, kind))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let location = response
            .headers()
            .get("location")
            .map(|v| SafeText::from_bytes(v.as_bytes()).truncated(MAX_SHOWN));
        let limit = if status == 200 {
            MAX_BODY
        } else {
            MAX_ERROR_BODY
        };
        // Read one byte past the limit to tell "exactly at the cap" from "over it".
        let mut bytes = Zeroizing::new(Vec::new());
        response
            .body_mut()
            .with_config()
            .reader()
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.transport_error(ureq::Error::from(e), kind))?;
        let too_big = bytes.len() as u64 > limit;
        Ok(RawAnswer {
            status,
            content_type,
            location,
            bytes,
            too_big,
        })
    }

    fn transport_error(&self, e: ureq::Error, kind: Call) -> StoreError {
        use std::io::ErrorKind as K;
        use ureq::Error as E;
        use ureq::Timeout as T;
        let base = &self.base;
        let secs = self.timeout.as_secs_f64();
        // Failures that can only happen before the request left this machine: nothing was
        // applied, whatever the call.
        let before_send = match &e {
            E::HostNotFound | E::ConnectionFailed | E::Tls(_) | E::Rustls(_) => true,
            E::Timeout(T::Resolve | T::Connect) => true,
            E::Io(io) => matches!(
                io.kind(),
                K::ConnectionRefused
                    | K::AddrNotAvailable
                    | K::NetworkUnreachable
                    | K::HostUnreachable
            ),
            _ => false,
        };
        if before_send {
            return StoreError::unreachable(format!("cannot connect to {base}: {e}"));
        }
        if let E::BodyExceedsLimit(_) | E::LargeResponseHeader(..) = e {
            let why = format!("{base} sent an oversized answer ({e})");
            return match kind {
                Call::Read => StoreError::bad_data(why),
                Call::Write => unknown_after_ok(&why),
            };
        }
        match (kind, &e) {
            // A timeout of the whole request (global) may also fire while connecting; for an
            // update that case cannot be told apart, so it is reported as unknown too.
            (Call::Write, _) => StoreError::OutcomeUnknown(SafeText::new(&format!(
                "the update was sent to {base} but no complete answer came back ({e}); it may \
                 or may not have been applied: look at the contact again before retrying"
            ))),
            (Call::Read, E::Timeout(_)) => StoreError::Timeout(SafeText::new(&format!(
                "{base} did not answer within {secs} s"
            ))),
            (Call::Read, _) => StoreError::unreachable(format!("{base}: {e}")),
        }
    }

    /// Contact.get with the contact fields; records are checked for the permission trap.
    fn get_contacts(
        &self,
        where_: Vec<Value>,
        limit: usize,
        offset: u64,
    ) -> Result<Vec<Contact>, StoreError> {
        let params = Params(json!({
            "select": CONTACT_FIELDS,
            "where": where_,
            "limit": limit,
            "offset": offset,
        }));
        let reply = self.call("get", params, Some(ORDER_CONTACTS), Call::Read, &[])?;
        reply.refuse_trap()?;
        let mut contacts: Vec<Contact> = reply
            .records()?
            .iter()
            .map(record_to_contact)
            .collect::<Result<_, _>>()?;
        let ids: Vec<ContactId> = contacts.iter().map(|c| c.id).collect();
        let links = self.cms_links(&ids)?;
        for c in &mut contacts {
            c.cms = links.get(&c.id).copied().unwrap_or(CmsLink::Unknown);
        }
        Ok(contacts)
    }

    /// A keystroke name search, one index range per call: each prefix of
    /// [`name_branches`] as its own Contact.get (the page's fields, one page past the
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
        let mut common = vec![if query.include_deleted {
            json!(["is_deleted", "IN", [0, 1]])
        } else {
            json!(["is_deleted", "=", 0])
        }];
        match &query.after {
            None => {}
            Some(Cursor::After { sort_name, id }) => common.push(json!([
                "OR",
                [
                    ["sort_name", ">", sort_name],
                    ["AND", [["sort_name", "=", sort_name], ["id", ">", id]]]
                ]
            ])),
            Some(Cursor::Offset(_)) => {
                return Err(StoreError::invalid(
                    "a name search over REST pages by key, not by offset",
                ))
            }
        }
        let branches = name_branches(text);
        // The first-name branch (the second of `name_branches`) of a text of two letters
        // or more is read sorted on its own index range (see [`ORDER_SORTED`]).
        let sorted = (text.chars().count() >= crate::store::SORTED_FIRST_NAME_CHARS).then_some(1);
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
                (ORDER_SORTED, sorted_fetch)
            } else {
                (ORDER_CONTACTS, fetch)
            };
            let select = match (lean, sorted == Some(i)) {
                (false, _) => json!(CONTACT_FIELDS),
                (true, true) => json!(["id", "sort_name"]),
                (true, false) => json!(["id"]),
            };
            let params = json!({"select": select, "where": where_, "limit": rows});
            let params = params_json(&params, Some(order))?;
            // The links call without is_deleted, unordered: MariaDB then reads the
            // branch's index range alone, or the user table when it is the smaller, and
            // stops at the limit (1M contacts, 108,000 users: 3 to 30 ms; with is_deleted
            // read from each row 27 to 66 ms; ordered by sort name, up to 350 ms, as the
            // user table is read whole and sorted). Links of trashed contacts are more
            // than the page needs, never fewer. (`common` is is_deleted, then the cursor.)
            let mut on_links = vec![branch.clone()];
            on_links.extend(common.iter().skip(1).cloned());
            let links = branch_links_params(&on_links, fetch);
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
            let mut ids = std::collections::BTreeSet::new();
            let mut boundaries = Vec::new();
            for (i, branch) in branches.iter().enumerate() {
                let part = Reply(search_part(&reply, &format!("b{i}"))?.clone());
                let mut rows = part
                    .records()?
                    .iter()
                    .map(|record| {
                        let (record, id) = record_id(record)?;
                        let name = record.get("sort_name").and_then(Value::as_str);
                        Ok((id, name.map(str::to_string)))
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?;
                if sorted == Some(i) && rows.len() == sorted_fetch {
                    boundaries.push(boundary_clause(branch, drop_last_sort_name(&mut rows)));
                }
                ids.extend(rows.into_iter().map(|(id, _)| id));
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
            let mut rows = part
                .records()?
                .iter()
                .map(|record| {
                    let contact = record_to_contact(record)?;
                    let sort_name = record
                        .get("sort_name")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    Ok((contact, sort_name))
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            if sorted == Some(i) && rows.len() == sorted_fetch {
                // Sorted by sort name, then id DESCENDING: every contact of the branch
                // before the last row's sort name is here, but of that sort name maybe not
                // the lowest ids. Rows spelt as the last are dropped; the page must end
                // before that name, or the site reads the branch AND that sort name (an
                // equality on the sort-name index) with the page.
                let last = drop_last_sort_name(&mut rows);
                boundaries.push(boundary_clause(branch, last.clone()));
                boundary_names.push(last);
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
        mut boundaries: Vec<Value>,
        common: Vec<Value>,
        limit: usize,
        boundary_links: Option<HashMap<ContactId, CmsLink>>,
    ) -> Result<Page, StoreError> {
        let fetch = limit + 1;
        let mut ids = ids;
        ids.sort_unstable();
        let by_id = json!(["id", "IN", ids]);
        let mut where_ = if boundaries.is_empty() {
            vec![by_id]
        } else {
            boundaries.insert(0, by_id);
            vec![json!(["OR", boundaries])]
        };
        where_.extend(common);
        // The page (at most a few hundred ids, and a sort name's contacts) in the site's
        // order, and the CMS links of those ids (one row per contact whatever the number
        // of domains), in one multi-call request.
        let page_params = json!({
            "select": CONTACT_FIELDS,
            "where": where_,
            "limit": fetch,
        });
        let mut calls = Zeroizing::new(format!(
            "{{\"page\":[\"Contact\",\"get\",{}]",
            params_json(&page_params, Some(ORDER_CONTACTS))?.as_str()
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
        let mut page: Vec<(Contact, String)> = Vec::with_capacity(fetch);
        for record in page_reply.records()?.iter().take(fetch) {
            let contact = record_to_contact(record)?;
            // The cursor holds the name as the site compares it, not as shown.
            let sort_name = record
                .get("sort_name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            page.push((contact, sort_name));
        }
        let more = page.len() > limit;
        page.truncate(limit);
        let next = match page.last() {
            Some((last, sort_name)) if more => Some(Cursor::After {
                sort_name: sort_name.clone(),
                id: last.id,
            }),
            _ => None,
        };
        let mut contacts: Vec<Contact> = page.into_iter().map(|(c, _)| c).collect();
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

    /// The CMS links of `ids` on the site's current domain: one row per contact, however
    /// many domains the site has (a UFMatch join would give one row per domain). A site
    /// that does not let the admin read UFMatch answers `Unknown` for each.
    fn cms_links(&self, ids: &[ContactId]) -> Result<HashMap<ContactId, CmsLink>, StoreError> {
        let mut links = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_CALL) {
            let params = Params(links_params(chunk));
            let reply = match self.call_entity("UFMatch", "get", params, None, Call::Read, &[]) {
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

    /// Users (Standalone's User entity, the current domain's) and their active roles.
    /// `None`: the site has no User entity (not Standalone) or the admin may not read it.
    fn users(&self, ids: &[ContactId]) -> Result<Option<HashMap<ContactId, Standing>>, StoreError> {
        let mut found: HashMap<ContactId, (UserAccount, Vec<u64>)> = HashMap::new();
        for chunk in ids.chunks(IDS_PER_CALL) {
            let params = Params(json!({
                "select": ["id", "username", "contact_id", "is_active", "roles"],
                "where": [["contact_id", "IN", chunk]],
            }));
            let reply = match self.call_entity("User", "get", params, None, Call::Read, &[]) {
                Ok(reply) => reply,
                Err(StoreError::PermissionDenied(_) | StoreError::BadData(_)) => return Ok(None),
                Err(e) => return Err(e),
            };
            for record in reply.records()? {
                let (Some(id), Some(contact)) = (
                    record.get("id").and_then(as_id),
                    record.get("contact_id").and_then(as_id),
                ) else {
                    continue;
                };
                let name = record
                    .get("username")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let active = match record.get("is_active") {
                    Some(Value::Bool(b)) => *b,
                    Some(other) => as_id(other).is_none_or(|n| n != 0),
                    None => true,
                };
                let roles = record
                    .get("roles")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(as_id).collect())
                    .unwrap_or_default();
                found.insert(
                    contact,
                    (
                        UserAccount {
                            id,
                            name: SafeText::new(name),
                            active,
                        },
                        roles,
                    ),
                );
            }
        }
        let mut role_ids: Vec<u64> = found.values().flat_map(|(_, r)| r.clone()).collect();
        role_ids.sort_unstable();
        role_ids.dedup();
        let roles = self.roles_by_id(&role_ids)?;
        Ok(Some(
            ids.iter()
                .map(|&id| {
                    let standing = match found.remove(&id) {
                        None => Standing::no_account(),
                        Some((user, user_roles)) => Standing {
                            account: AccountState::Account(user),
                            roles: roles.as_ref().map(|all| {
                                user_roles
                                    .iter()
                                    .filter_map(|r| all.get(r).cloned())
                                    .collect()
                            }),
                        },
                    };
                    (id, standing)
                })
                .collect(),
        ))
    }

    /// Active roles by id (Role.get); `None` when the site does not say.
    fn roles_by_id(&self, ids: &[u64]) -> Result<Option<HashMap<u64, Role>>, StoreError> {
        let mut roles = HashMap::new();
        for chunk in ids.chunks(IDS_PER_CALL) {
            let params = Params(json!({
                "select": ["id", "name", "label", "permissions", "is_active"],
                "where": [["id", "IN", chunk], ["is_active", "=", true]],
            }));
            let reply = match self.call_entity("Role", "get", params, None, Call::Read, &[]) {
                Ok(reply) => reply,
                Err(StoreError::PermissionDenied(_) | StoreError::BadData(_)) => return Ok(None),
                Err(e) => return Err(e),
            };
            for record in reply.records()? {
                let Some(id) = record.get("id").and_then(as_id) else {
                    continue;
                };
                let name = ["label", "name"]
                    .iter()
                    .find_map(|f| {
                        record
                            .get(*f)
                            .and_then(Value::as_str)
                            .filter(|n| !n.is_empty())
                    })
                    .unwrap_or_default();
                let permissions: Vec<&str> = record
                    .get("permissions")
                    .and_then(Value::as_array)
                    .map(|p| p.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                roles.insert(id, Role::from_permissions(name, permissions));
            }
        }
        Ok(Some(roles))
    }

    /// The login check: Contact.get where id = 'user_contact_id', logged in with this
    /// store's key. Ok(Some(id)): logged in as contact id; Ok(None): logged in, but the
    /// contact cannot read its own record; Err(text): refused (authx's own words on 401).
    pub(crate) fn whoami(&self) -> Result<Option<ContactId>, String> {
        let url = self.url("Contact", "get");
        let params = Params(json!({
            "select": ["id"],
            "where": [["id", "=", "user_contact_id"]],
            "limit": 1,
        }));
        let body = form_body(&params.0, None).map_err(|e| e.to_string())?;
        drop(params);
        let answer = self
            .send(&url, &body, Call::Read)
            .map_err(|e| e.to_string())?;
        let site_key = self.site_key.as_ref().map(Secret::expose);
        let secrets: Vec<&str> = [self.api_key.expose()]
            .into_iter()
            .chain(site_key)
            .collect();
        if answer.status == 401 {
            let text = hide_secrets(&String::from_utf8_lossy(&answer.bytes), &secrets);
            return Err(SafeText::new(text.trim()).truncated(MAX_SHOWN));
        }
        let exchange = Exchange {
            url: &url,
            kind: Call::Read,
            secrets,
            site_key_sent: self.site_key.is_some(),
        };
        let reply = judge_answer(
            &exchange,
            answer.status,
            &answer.content_type,
            answer.location.as_deref(),
            &answer.bytes,
            answer.too_big,
        )
        .map_err(|e| e.to_string())?;
        let records = reply.records().map_err(|e| e.to_string())?;
        Ok(records.first().and_then(|r| r.get("id")).and_then(as_id))
    }

    /// The updates `swaps[i]` for each `i` of `which`, as one multi-call request: for each,
    /// how many contacts it changed (1 done, 0 nothing matched) or why not. A request whose
    /// answer is lost makes every one of them unknown.
    fn update_calls(
        &self,
        swaps: &[KeySwap<'_>],
        which: &[usize],
    ) -> Vec<(usize, Result<u64, StoreError>)> {
        let mut secrets: Vec<&str> = Vec::with_capacity(which.len() * 2);
        let mut calls = Zeroizing::new(String::from("{"));
        for (n, &i) in which.iter().enumerate() {
            let s = &swaps[i];
            secrets.extend(s.expected.map(ApiKey::expose));
            secrets.extend(s.new.map(ApiKey::expose));
            let params = Params(json!({
                "where": [["id", "=", s.id], ["is_deleted", "IN", [0, 1]], key_clause(s.expected)],
                "values": {"api_key": s.new.map(ApiKey::expose)},
            }));
            let params = match params_json(&params.0, None) {
                Ok(p) => p,
                Err(e) => return which.iter().map(|&i| (i, Err(e.again()))).collect(),
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
            Err(e) => return which.iter().map(|&i| (i, Err(e.again()))).collect(),
        };
        let mut all_secrets = secrets.clone();
        all_secrets.push(self.api_key.expose());
        let redact =
            |text: &str| SafeText::new(&hide_secrets(text, &all_secrets)).truncated(MAX_SHOWN);
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
                if let Some(message) = part.error_message() {
                    // A call that failed inside the request did not apply (its own
                    // transaction was rolled back); each carries its own status.
                    let status = part.0.get("status").and_then(Value::as_u64);
                    let message = redact(&message);
                    return (
                        i,
                        Err(if status == Some(403) {
                            StoreError::PermissionDenied(SafeText::new(&format!(
                                "permission denied: the site refused to change contact {id}'s key (HTTP 403: {message}). The admin user's role needs the CiviCRM permission 'edit api keys' (or 'administer CiviCRM') and may edit this contact; nothing was changed"
                            )))
                        } else {
                            StoreError::bad_data(format!(
                                "the site reported an error for contact {id}: {message}"
                            ))
                        }),
                    );
                }
                if part.refuse_trap().is_err() {
                    return (
                        i,
                        Err(StoreError::OutcomeUnknown(SafeText::new(&format!(
                            "the site ignored api_key in the update, so it may or may not have changed \
                             contact {id}'s key: {NO_EDIT_API_KEYS}"
                        )))),
                    );
                }
                match part.count() {
                    Some(n @ (0 | 1)) => (i, Ok(n)),
                    Some(n) => (
                        i,
                        Err(StoreError::bad_data(format!(
                            "the site changed {n} contacts for contact id {id}; check the contacts' keys"
                        ))),
                    ),
                    None => (
                        i,
                        Err(StoreError::OutcomeUnknown(SafeText::new(
                            "the site's answer to the update does not say how many contacts changed; look at \
                             the contact again before retrying",
                        ))),
                    ),
                }
            })
            .collect()
    }

    /// Whether contact `id` exists (deleted or not).
    fn exists(&self, id: ContactId) -> Result<bool, StoreError> {
        let params = Params(json!({
            "select": ["id"],
            "where": [["id", "=", id], ["is_deleted", "IN", [0, 1]]],
            "limit": 1,
        }));
        let reply = self.call("get", params, None, Call::Read, &[])?;
        Ok(!reply.records()?.is_empty())
    }
}

/// An HTTP answer as it came: lowercased content type, redirect target, body up to the cap.
struct RawAnswer {
    status: u16,
    content_type: String,
    location: Option<String>,
    bytes: Zeroizing<Vec<u8>>,
    too_big: bool,
}

/// One call's particulars, for judging its answer.
struct Exchange<'a> {
    url: &'a str,
    kind: Call,
    /// Values that must not come back in an error message (CiviCRM error texts may quote
    /// the request): the admin key, the site key, keys in the request.
    secrets: Vec<&'a str>,
    site_key_sent: bool,
}

/// An HTTP answer (status, lowercased content type, redirect target, body read up to the
/// cap) into the API v4 result or the StoreError that says what went wrong.
fn judge_answer(
    x: &Exchange<'_>,
    status: u16,
    content_type: &str,
    location: Option<&str>,
    bytes: &[u8],
    too_big: bool,
) -> Result<Reply, StoreError> {
    let url = x.url;
    let redact = |text: &str| SafeText::new(&hide_secrets(text, &x.secrets)).truncated(MAX_SHOWN);

    if status == 200 {
        if too_big {
            let why = format!(
                "{url} sent an answer larger than {} MiB; civikey stopped reading it",
                MAX_BODY / (1024 * 1024)
            );
            return Err(match x.kind {
                Call::Read => StoreError::bad_data(why),
                Call::Write => unknown_after_ok(&why),
            });
        }
        return match parse_reply(bytes, content_type) {
            Ok(reply) => match reply.error_message() {
                // API v4 reports errors by status, but a proxy or an old version may not.
                Some(message) => Err(StoreError::bad_data(format!(
                    "the site reported an error: {}",
                    redact(&message)
                ))),
                None => Ok(reply),
            },
            Err(why) => Err(match x.kind {
                Call::Read => StoreError::bad_data(format!("{url}: {why}")),
                Call::Write => unknown_after_ok(&why),
            }),
        };
    }

    let json_message = serde_json::from_slice::<Value>(bytes)
        .ok()
        .map(Reply)
        .and_then(|r| r.error_message());
    let message = match &json_message {
        Some(m) => redact(m),
        None if content_type.starts_with("text/plain") => redact(&String::from_utf8_lossy(bytes)),
        None => String::new(),
    };
    let detail = if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    };
    // Without 'view debug output' CiviCRM answers a generic text; the real message is in
    // its log under this id.
    let error_id = serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| {
            v.get("error_id")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .or_else(|| {
            let at = message.find("(Error ID: ")? + "(Error ID: ".len();
            message[at..].split(')').next().map(str::to_string)
        })
        .map(|id| {
            format!(
                "; the site admin finds the details in CiviCRM's log under Error ID {}",
                SafeText::new(&id)
            )
        })
        .unwrap_or_default();
    Err(match status {
        400 => StoreError::invalid(format!(
            "{url} did not recognise the request as an API call (HTTP 400){detail}. CiviCRM \
             answers so when a request carries neither credentials nor X-Requested-With: \
             check that nothing between civikey and the site strips headers"
        )),
        401 => {
            let hint = if message.contains("Must satisfy guard") {
                format!(
                    "the admin key logs in only with the site key or when its user's role \
                     grants 'authenticate with api key': {}",
                    if x.site_key_sent {
                        "the site key sent is wrong (check site_key_file), or grant that permission"
                    } else {
                        "add the site key to the profile (site_key_file) or grant that permission"
                    }
                )
            } else if message.contains("User is blocked") {
                "the admin key's user account is blocked; unblock it in CiviCRM (Users)".to_string()
            } else {
                format!(
                    "check the admin API key{}, and that its contact's user may \
                     'authenticate with api key'",
                    if x.site_key_sent {
                        " and the site key"
                    } else {
                        ""
                    }
                )
            };
            StoreError::PermissionDenied(SafeText::new(&format!(
                "authentication failed (HTTP 401){detail}. {hint}"
            )))
        }
        403 if x.kind == Call::Write => StoreError::PermissionDenied(SafeText::new(&format!(
            "permission denied: the site refused to change the key (HTTP 403){detail}{error_id}. \
             The admin user's role needs the CiviCRM permission 'edit api keys' (or \
             'administer CiviCRM') and may edit this contact; nothing was changed"
        ))),
        403 => StoreError::PermissionDenied(SafeText::new(&format!(
            "the site refused the request (HTTP 403){detail}{error_id}. The admin user's role \
             lacks a permission civikey needs (see docs/SECURITY.md: 'edit api keys', 'view all \
             contacts', 'access deleted contacts', 'access AJAX API')"
        ))),
        404 => StoreError::invalid(format!(
            "{url} answered 404: no CiviCRM API v4 there; check the site address \
             (the CiviCRM base URL, without /civicrm)"
        )),
        405 => StoreError::invalid(format!(
            "{url} refused the request method (HTTP 405){detail}"
        )),
        503 => StoreError::unreachable(format!(
            "site in maintenance mode or overloaded (HTTP 503){detail}; nothing was done, try \
             again later"
        )),
        300..=399 => StoreError::invalid(format!(
            "{url} redirected (HTTP {status}) to {}; civikey does not resend credentials \
             to another address: set the profile's address to the site's final https URL",
            location.unwrap_or("an unnamed location")
        )),
        // CiviCRM's own exception handler answered: the API call failed and its
        // transaction was rolled back, so even an update did not apply.
        500 if json_message.is_some() => StoreError::bad_data(format!(
            "the site reported an error (HTTP 500){detail}{error_id}"
        )),
        // A success other than 200 is not API v4's answer: the update may have applied.
        201..=299 if x.kind == Call::Write => unknown_after_ok(&format!("HTTP {status}")),
        500..=599 if x.kind == Call::Write => StoreError::OutcomeUnknown(SafeText::new(&format!(
            "the update reached {url} but it answered HTTP {status} without an API error \
             (a crash or a gateway){detail}; it may or may not have been applied: look at \
             the contact again before retrying"
        ))),
        502 | 504 => StoreError::unreachable(format!(
            "a gateway in front of the site failed (HTTP {status}){detail}"
        )),
        _ => StoreError::bad_data(format!("{url} answered HTTP {status}{detail}")),
    })
}

/// The answer to a Contact.get, judged exactly as a live call judges it but with no network:
/// an HTTP status, a content type and a body in; the contacts, or the StoreError the
/// operator would see, out. An entry point for the property tests (tests/proptest_rest.rs).
pub fn parse_contacts_answer(
    status: u16,
    content_type: &str,
    body: &[u8],
) -> Result<Vec<Contact>, StoreError> {
    let limit = if status == 200 {
        MAX_BODY
    } else {
        MAX_ERROR_BODY
    };
    let exchange = Exchange {
        url: "https://civicrm.invalid/civicrm/ajax/api4/Contact/get",
        kind: Call::Read,
        secrets: Vec::new(),
        site_key_sent: false,
    };
    let body = &body[..body.len().min(limit as usize + 1)];
    let reply = judge_answer(
        &exchange,
        status,
        &content_type.to_ascii_lowercase(),
        None,
        body,
        body.len() as u64 > limit,
    )?;
    reply.refuse_trap()?;
    reply.records()?.iter().map(record_to_contact).collect()
}

/// The site address or an API v4 address template (with `{entity}` and `{action}`), checked:
/// the address for messages, the template, and whether it is plain http.
pub(crate) fn check_api_address(address: &str) -> Result<(String, String, bool), StoreError> {
    if !(address.contains("{entity}") || address.contains("{action}")) {
        let (base, plain_http) = check_base_url(address)?;
        let template = format!("{base}{API_ROUTE}");
        return Ok((base, template, plain_http));
    }
    let template = address.trim();
    let shown = SafeText::new(template);
    if !(template.contains("{entity}") && template.contains("{action}")) {
        return Err(StoreError::invalid(format!(
            "{shown}: an api_url template needs both {{entity}} and {{action}}"
        )));
    }
    if template.contains('#') {
        return Err(StoreError::invalid(format!(
            "{shown}: the api_url must not have a fragment"
        )));
    }
    // The template's query is allowed as written (WordPress's page=CiviCRM&q=..., Joomla's
    // option=com_civicrm&task=...), but never one that carries a credential.
    let example = template
        .replace("{entity}", "Contact")
        .replace("{action}", "get");
    let (before_query, query) = match example.split_once('?') {
        Some((path, query)) => (path.to_string(), Some(query.to_string())),
        None => (example.clone(), None),
    };
    if before_query.contains("{") || before_query.contains("}") {
        return Err(StoreError::invalid(format!(
            "{shown}: unknown placeholder in the api_url; only {{entity}} and {{action}} are replaced"
        )));
    }
    if let Some(query) = &query {
        for pair in query.split('&') {
            let name = pair.split('=').next().unwrap_or("").to_ascii_lowercase();
            if matches!(name.as_str(), "_authx" | "api_key" | "key" | "_civi_key") {
                return Err(StoreError::invalid(format!(
                    "{shown}: the api_url carries a credential ({name}=); credentials go in the \
                     profile's key files, never in the address"
                )));
            }
        }
    }
    let (_, plain_http) = check_base_url(&before_query)?;
    Ok((template.to_string(), template.to_string(), plain_http))
}

/// Validates the site address; returns it without a trailing slash, and whether it is
/// plain http (allowed for loopback hosts only).
fn check_base_url(address: &str) -> Result<(String, bool), StoreError> {
    let trimmed = address.trim().trim_end_matches('/');
    let shown = SafeText::new(trimmed);
    let uri: ureq::http::Uri = trimmed
        .parse()
        .map_err(|e| StoreError::invalid(format!("{shown} is not a valid site address: {e}")))?;
    let plain_http = match uri.scheme_str() {
        Some("https") => false,
        Some("http") => true,
        _ => {
            return Err(StoreError::invalid(format!(
                "{shown}: the site address must start with https://"
            )))
        }
    };
    let Some(authority) = uri.authority() else {
        return Err(StoreError::invalid(format!(
            "{shown}: the site address names no host"
        )));
    };
    if authority.as_str().contains('@') {
        return Err(StoreError::invalid(
            "the site address holds a user name or password; credentials go in the profile's \
             key files, never in the address",
        ));
    }
    if uri.query().is_some() || trimmed.contains('#') {
        return Err(StoreError::invalid(format!(
            "{shown}: the site address must not have a query or fragment; give the CiviCRM base URL"
        )));
    }
    if plain_http && !crate::store::address::is_loopback(authority.host()) {
        return Err(StoreError::invalid(format!(
            "{shown}: plain http would send the admin API key in clear text; use https:// \
             (http is allowed only for this machine: localhost, 127.0.0.0/8, ::1)"
        )));
    }
    Ok((trimmed.to_string(), plain_http))
}

/// A credential goes into an HTTP header: it must be visible ASCII without spaces (a space
/// splits a CiviCRM credential; a newline would end the header).
fn check_header_secret(value: &str, what: &str) -> Result<(), StoreError> {
    if value.is_empty() {
        return Err(StoreError::invalid(format!("{what} is empty")));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(StoreError::invalid(format!(
            "{what} holds a space, a control or a non-ASCII character; check the file or variable it was read from"
        )));
    }
    Ok(())
}

/// The form body `params=<JSON>`, kept in zeroized memory since it may carry keys.
/// `order_by` (JSON object text) becomes the params' `orderBy`, its key order kept.
fn form_body(params: &Value, order_by: Option<&str>) -> Result<Zeroizing<String>, StoreError> {
    Ok(form_field("params", &params_json(params, order_by)?))
}

/// `params` as JSON, with `order_by` (JSON text) as its first key when given.
fn params_json(params: &Value, order_by: Option<&str>) -> Result<Zeroizing<String>, StoreError> {
    let mut json = Zeroizing::new(
        serde_json::to_string(params).map_err(|e| StoreError::invalid(format!("params: {e}")))?,
    );
    if let Some(order) = order_by {
        let rest = json.strip_prefix('{').unwrap_or_default();
        let sep = if rest.trim_start().starts_with('}') {
            ""
        } else {
            ","
        };
        json = Zeroizing::new(format!("{{\"orderBy\":{order}{sep}{rest}"));
    }
    Ok(json)
}

/// `name=JSON`, form-encoded.
fn form_field(name: &str, json: &str) -> Zeroizing<String> {
    let mut body = Zeroizing::new(String::with_capacity(json.len() * 3 / 2 + name.len() + 1));
    body.push_str(name);
    body.push('=');
    for b in json.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                body.push(b as char)
            }
            b' ' => body.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                body.push('%');
                body.push(HEX[usize::from(b >> 4)] as char);
                body.push(HEX[usize::from(b & 15)] as char);
            }
        }
    }
    body
}

/// Overwrites every string in `value`: request parameters and answers may hold keys, and
/// serde_json's strings are not zeroized on their own.
fn wipe(value: &mut Value) {
    match value {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(wipe),
        Value::Object(map) => map.values_mut().for_each(wipe),
        _ => {}
    }
}

/// Request parameters, wiped on drop.
struct Params(Value);

/// Contacts' order: sort name, then id for the ties (Smith, Sam twice) so offset pages are
/// stable. Kept as text because an orderBy's keys are ordered and serde_json's maps sort
/// their keys; `form_body` puts it first in the params.
const ORDER_CONTACTS: &str = r#"{"sort_name":"ASC","id":"ASC"}"#;

/// Call `name` of a search's multi-call answer; a call the site refused fails the search
/// with its message.
fn search_part<'a>(reply: &'a Reply, name: &str) -> Result<&'a Value, StoreError> {
    let part = reply.0.get(name).ok_or_else(|| {
        StoreError::bad_data(format!("the site's multi-call answer has no call {name}"))
    })?;
    if let Some(message) = part.get("error_message").and_then(Value::as_str) {
        return Err(StoreError::bad_data(format!(
            "the site refused a search call: {}",
            SafeText::new(message).truncated(MAX_SHOWN)
        )));
    }
    Ok(part)
}

/// UFMatch.get params for the CMS links of `ids` on the site's current domain.
fn links_params(ids: &[ContactId]) -> Value {
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
fn branch_links_params(where_: &[Value], limit: usize) -> Value {
    let mut on_contact: Vec<Value> = where_.iter().map(of_linked_contact).collect();
    on_contact.push(json!(["domain_id", "=", "current_domain"]));
    json!({
        "select": ["contact_id", "uf_id"],
        "where": on_contact,
        "limit": limit,
    })
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

/// Drops a sorted branch's rows of its last sort name (sorted by sort name, then id
/// descending, the lowest ids of that name may not have come) and returns that name.
fn drop_last_sort_name<T>(rows: &mut Vec<(T, Option<String>)>) -> Option<String> {
    let last = rows.last().and_then(|r| r.1.clone());
    while rows.last().is_some_and(|r| r.1 == last) {
        rows.pop();
    }
    last
}

/// The branch AND its last sort name: an equality on the sort-name index.
fn boundary_clause(branch: &Value, last: Option<String>) -> Value {
    let name = match last {
        Some(name) => json!(["sort_name", "=", name]),
        None => json!(["sort_name", "IS NULL"]),
    };
    json!(["AND", [branch, name]])
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
    found.truncate(shown);
    let next = match found.last() {
        Some(last) if more => Some(Cursor::After {
            sort_name: last.sort_name.clone().unwrap_or_default(),
            id: last.contact.id,
        }),
        _ => None,
    };
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

/// How MariaDB's `utf8mb4_unicode_ci` (CiviCRM's usual collation: case and accents
/// ignored, trailing spaces ignored) orders two sort names, where that is certain without
/// its weight tables: the same characters, ASCII letters in any case, then at the first
/// difference two ASCII characters of different kinds (space, then punctuation, then
/// digits, then letters) or two digits or two letters. None where only the collation can
/// tell (punctuation against punctuation, anything outside ASCII, control characters).
pub fn site_order(a: &str, b: &str) -> Option<Ordering> {
    let (mut x, mut y) = (a.chars(), b.chars());
    loop {
        match (x.next(), y.next()) {
            (None, None) => return Some(Ordering::Equal),
            // The shorter is padded with spaces: before a digit or a letter.
            (Some(c), None) => return (ascii_kind(c)? >= 2).then_some(Ordering::Greater),
            (None, Some(d)) => return (ascii_kind(d)? >= 2).then_some(Ordering::Less),
            (Some(c), Some(d)) if c == d || (c.is_ascii() && c.eq_ignore_ascii_case(&d)) => {}
            (Some(c), Some(d)) => {
                let (k, l) = (ascii_kind(c)?, ascii_kind(d)?);
                return match k.cmp(&l) {
                    Ordering::Equal if k == 1 => None,
                    Ordering::Equal => Some(c.to_ascii_lowercase().cmp(&d.to_ascii_lowercase())),
                    other => Some(other),
                };
            }
        }
    }
}

/// Space, punctuation and symbols, digits, letters: the collation's order of the kinds of
/// ASCII characters (None: not ASCII, or a control character).
fn ascii_kind(c: char) -> Option<u8> {
    match c {
        ' ' => Some(0),
        '!'..='/' | ':'..='@' | '['..='`' | '{'..='~' => Some(1),
        '0'..='9' => Some(2),
        'a'..='z' | 'A'..='Z' => Some(3),
        _ => None,
    }
}

/// A sort key whose order agrees with [`site_order`] wherever that is sure: each character
/// as its kind and its lower case, other characters after every ASCII kind.
fn site_order_key(name: &str) -> Vec<(u8, char)> {
    name.chars()
        .map(|c| (ascii_kind(c).unwrap_or(4), c.to_ascii_lowercase()))
        .collect()
}

/// The links a UFMatch.get answered for `ids`: linked, or none.
fn links_of(ids: &[ContactId], reply: &Reply) -> Result<HashMap<ContactId, CmsLink>, StoreError> {
    let mut links: HashMap<ContactId, CmsLink> =
        ids.iter().map(|&id| (id, CmsLink::None)).collect();
    for record in reply.records()? {
        let contact = record.get("contact_id").and_then(as_id);
        let uf_id = record.get("uf_id").and_then(as_id);
        if let (Some(contact), Some(uf_id)) = (contact, uf_id) {
            links.insert(contact, CmsLink::Linked { uf_id });
        }
    }
    Ok(links)
}

/// A sorted first-name branch's order: no index of civicrm_contact gives it (sort_name
/// ascending, id descending), so MariaDB reads the branch's own index range and sorts it,
/// instead of walking the sort-name index from the start reading every row until a page
/// of first names is found (`car` at 1M: 96,000 rows walked before the first; 210-400 ms
/// against 30-60 ms). The ids within the last sort name are read again with the page.
const ORDER_SORTED: &str = r#"{"sort_name":"ASC","id":"DESC"}"#;

/// Key holders' order: by id, so offset pages are stable.
const ORDER_BY_ID: &str = r#"{"id":"ASC"}"#;

impl Drop for Params {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

/// A parsed answer, wiped on drop.
struct Reply(Value);

impl Drop for Reply {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

impl Reply {
    fn error_message(&self) -> Option<String> {
        let map = self.0.as_object()?;
        if let Some(Value::String(m)) = map.get("status_message") {
            return Some(m.clone());
        }
        match map.get("error_message") {
            Some(Value::String(m)) => Some(m.clone()),
            Some(Value::Null) | None if map.contains_key("error_code") => {
                Some("an unnamed error".to_string())
            }
            Some(other) if !other.is_null() => Some(other.to_string()),
            _ => None,
        }
    }

    fn records(&self) -> Result<&Vec<Value>, StoreError> {
        match self.0.get("values") {
            Some(Value::Array(values)) => Ok(values),
            _ => Err(StoreError::bad_data(
                "the site's answer has no list of values",
            )),
        }
    }

    /// The permission trap, as CiviCRM reports it (`debug.unauthorized_fields`).
    fn refuse_trap(&self) -> Result<(), StoreError> {
        let named = self
            .0
            .pointer("/debug/unauthorized_fields")
            .and_then(Value::as_array)
            .is_some_and(|fields| fields.iter().any(|f| f.as_str() == Some("api_key")));
        if named {
            Err(no_edit_api_keys())
        } else {
            Ok(())
        }
    }

    /// How many rows an update changed.
    fn count(&self) -> Option<u64> {
        self.0.get("count").and_then(Value::as_u64).or_else(|| {
            self.0
                .get("values")
                .and_then(Value::as_array)
                .map(|v| v.len() as u64)
        })
    }
}

fn no_edit_api_keys() -> StoreError {
    StoreError::PermissionDenied(SafeText::new(NO_EDIT_API_KEYS))
}

fn unknown_after_ok(why: &str) -> StoreError {
    StoreError::OutcomeUnknown(SafeText::new(&format!(
        "the site accepted the update but its answer could not be read ({why}); it may or may \
         not have been applied: look at the contact again before retrying"
    )))
}

fn parse_reply(bytes: &[u8], content_type: &str) -> Result<Reply, String> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(value) if value.is_object() => Ok(Reply(value)),
        Ok(mut value) => {
            wipe(&mut value);
            Err("the answer is JSON but not an API v4 result object".to_string())
        }
        Err(_) if content_type.contains("html") || bytes.trim_ascii_start().starts_with(b"<") => {
            Err(
                "the site answered with a web page instead of API data (usually a login page: \
                 the admin key or site key was not accepted, or the site does not allow API keys)"
                    .to_string(),
            )
        }
        Err(e) if e.is_eof() => Err(
            "the answer was cut short (truncated JSON); the connection or a proxy dropped the rest"
                .to_string(),
        ),
        Err(e) => Err(format!("the answer is not valid JSON ({e})")),
    }
}

fn field<'a>(record: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    record.get(name).filter(|v| !v.is_null())
}

fn text(record: &Map<String, Value>, name: &str) -> SafeText {
    match field(record, name) {
        Some(Value::String(s)) => SafeText::new(s),
        Some(other) => SafeText::new(&other.to_string()),
        None => SafeText::default(),
    }
}

/// An id or uf_id: API v4 sends numbers, some versions and proxies strings of digits.
fn as_id(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn record_id(record: &Value) -> Result<(&Map<String, Value>, ContactId), StoreError> {
    let map = record
        .as_object()
        .ok_or_else(|| StoreError::bad_data("a record in the site's answer is not an object"))?;
    let id = field(map, "id")
        .and_then(as_id)
        .ok_or_else(|| StoreError::bad_data("a contact in the site's answer has no valid id"))?;
    Ok((map, id))
}

/// The stored key of a record. A record without the field is the permission trap.
fn record_key(map: &Map<String, Value>) -> Result<Option<ApiKey>, StoreError> {
    match map.get("api_key") {
        None => Err(no_edit_api_keys()),
        Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(ApiKey::from_store(s.clone()))),
        Some(_) => Err(StoreError::bad_data(
            "a contact's api_key in the site's answer is not text",
        )),
    }
}

fn record_to_contact(record: &Value) -> Result<Contact, StoreError> {
    let (map, id) = record_id(record)?;
    // Turned into a hint at once: the key itself never reaches a Contact.
    let key = record_key(map)?.map(|k| k.hint());
    let is_deleted = match field(map, "is_deleted") {
        Some(Value::Bool(b)) => *b,
        Some(other) => as_id(other).is_some_and(|n| n != 0),
        None => false,
    };
    let cms = match map.get("uf.uf_id") {
        // Absent: the admin key may not see uf_match, so the link is unknown, not missing.
        None => CmsLink::Unknown,
        Some(Value::Null) => CmsLink::None,
        Some(v) => match as_id(v) {
            Some(uf_id) => CmsLink::Linked { uf_id },
            None => CmsLink::Unknown,
        },
    };
    Ok(Contact {
        id,
        contact_type: text(map, "contact_type"),
        display_name: text(map, "display_name"),
        sort_name: text(map, "sort_name"),
        email: field(map, "email_primary.email").map(|_| text(map, "email_primary.email")),
        is_deleted,
        key,
        cms,
    })
}

/// The keystroke name search as separate where clauses, each one index range: the sort
/// name and first name prefixes, and the first/last pairs of each split in both orders.
/// The last, organisation and household name prefixes are not sent on their own: CiviCRM's
/// sort names start with them ("Last, First", the organisation's or household's name), so
/// the sort-name range holds those contacts, and MariaDB answers such a branch, ordered by
/// sort name, by walking the whole sort-name index when its matches sort late (`last_name
/// LIKE 'z%'`: 3.5 s at 1M). A site with another sort name format misses those.
fn name_branches(text: &str) -> Vec<Value> {
    let like = |t: &str| crate::store::like_prefix(t, '\\');
    let prefix = like(text);
    let mut out: Vec<Value> = ["sort_name", "first_name"]
        .iter()
        .map(|field| json!([field, "LIKE", prefix]))
        .collect();
    out.extend(split_pairs(text));
    out
}

/// For each split of a text of several words: a first and a last name prefix, in either
/// order (each pair one index range on CiviCRM's name indexes).
fn split_pairs(text: &str) -> Vec<Value> {
    let like = |t: &str| crate::store::like_prefix(t, '\\');
    let mut out = Vec::new();
    for (a, b) in crate::store::name_splits(text) {
        for (first, last) in [(a, b), (b, a)] {
            out.push(json!([
                "AND",
                [
                    ["first_name", "LIKE", like(first)],
                    ["last_name", "LIKE", like(last)]
                ]
            ]));
        }
    }
    out
}

/// The name search ([`crate::store::name_matches`]) as an API v4 where clause, on the columns
/// CiviCRM indexes: sort, first, last, organisation, household name prefixes, a first and
/// a last name prefix in either order for each split of a text of several words, and with
/// `deep` a word inside the display name (no index: never sent per keystroke).
pub(crate) fn name_where(text: &str, deep: bool) -> Value {
    let like = |t: &str| crate::store::like_prefix(t, '\\');
    let prefix = like(text);
    let mut any: Vec<Value> = [
        "sort_name",
        "first_name",
        "last_name",
        "organization_name",
        "household_name",
    ]
    .iter()
    .map(|field| json!([field, "LIKE", prefix]))
    .collect();
    any.extend(split_pairs(text));
    if deep {
        any.push(json!(["display_name", "LIKE", format!("% {prefix}")]));
    }
    json!(["OR", any])
}

/// The where clause that selects "the contact's key is `expected`" (exactness is checked by
/// the caller: MySQL compares case-insensitively). No key may be NULL or an empty string.
fn key_clause(expected: Option<&ApiKey>) -> Value {
    match expected {
        Some(k) => json!(["api_key", "=", k.expose()]),
        None => json!(["OR", [["api_key", "IS NULL"], ["api_key", "=", ""]]]),
    }
}

impl ContactStore for RestStore {
    fn info(&self) -> StoreInfo {
        StoreInfo {
            kind: StoreKind::Rest,
            location: SafeText::new(&self.base),
            key_capacity: KEY_LEN,
            keys_case_insensitive: true,
            writable: true,
        }
    }

    fn login_site(&self) -> Option<SiteLogin> {
        Some(self.site_login())
    }

    /// Through User.get and Role.get on a Standalone site; elsewhere (or when the admin may
    /// not read users) only whether a CMS user exists, roles unknown.
    fn standings(&mut self, ids: &[ContactId]) -> Result<HashMap<ContactId, Standing>, StoreError> {
        if let Some(found) = self.users(ids)? {
            return Ok(found);
        }
        let links = self.cms_links(ids)?;
        Ok(ids
            .iter()
            .map(|&id| {
                let standing = match links.get(&id) {
                    Some(CmsLink::None) => Standing::no_account(),
                    _ => Standing::UNKNOWN,
                };
                (id, standing)
            })
            .collect())
    }

    fn search(&mut self, query: &Query) -> Result<Page, StoreError> {
        let limit = query.limit.clamp(1, MAX_PAGE);
        if let (Matcher::Name(text), false) = (query.matcher(), query.deep) {
            return self.search_by_prefixes(text, query, limit);
        }
        let offset = match &query.after {
            None => 0,
            Some(Cursor::Offset(n)) => *n,
            Some(Cursor::After { .. }) => {
                return Err(StoreError::invalid(
                    "the REST store pages by offset, not by key",
                ))
            }
        };
        let mut where_ = match query.matcher() {
            Matcher::All => vec![],
            Matcher::Id(id) => vec![json!(["id", "=", id])],
            Matcher::EmailPrefix(text) => {
                vec![json!([
                    "email_primary.email",
                    "LIKE",
                    crate::store::like_prefix(text, '\\')
                ])]
            }
            Matcher::Name(text) => vec![name_where(text, query.deep)],
        };
        // Always named: API v4 hides deleted contacts unless is_deleted is in the where.
        where_.push(if query.include_deleted {
            json!(["is_deleted", "IN", [0, 1]])
        } else {
            json!(["is_deleted", "=", 0])
        });
        // One more than asked tells whether there is a next page. No UFMatch join (it turns
        // CiviCRM's plan into an index merge and a filesort: 0.5 s at 1M contacts):
        // get_contacts reads the page's CMS links in one more call on its ids.
        let mut contacts = self.get_contacts(where_, limit + 1, offset)?;
        let next = if contacts.len() > limit {
            contacts.truncate(limit);
            Some(Cursor::Offset(offset + limit as u64))
        } else {
            None
        };
        Ok(Page { contacts, next })
    }

    fn contact(&mut self, id: ContactId) -> Result<Contact, StoreError> {
        let where_ = vec![json!(["id", "=", id]), json!(["is_deleted", "IN", [0, 1]])];
        let mut found = self.get_contacts(where_, 1, 0)?;
        match found.pop() {
            Some(c) if c.id == id => Ok(c),
            Some(c) => Err(StoreError::bad_data(format!(
                "asked for contact {id}, the site answered with contact {}",
                c.id
            ))),
            None => Err(StoreError::NotFound(id)),
        }
    }

    /// A page of ids per call, then their CMS links in one more call.
    fn contacts(&mut self, ids: &[ContactId]) -> Result<Vec<Contact>, StoreError> {
        let mut found: HashMap<ContactId, Contact> = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_CALL) {
            let where_ = vec![
                json!(["id", "IN", chunk]),
                json!(["is_deleted", "IN", [0, 1]]),
            ];
            let page = self.get_contacts(where_, chunk.len(), 0)?;
            found.extend(page.into_iter().map(|c| (c.id, c)));
        }
        ids.iter()
            .map(|id| found.get(id).cloned().ok_or(StoreError::NotFound(*id)))
            .collect()
    }

    fn holders_of(&mut self, key: &ApiKey) -> Result<Vec<ContactId>, StoreError> {
        let params = Params(json!({
            // api_key is selected to detect the permission trap and to check the filter.
            "select": ["id", "api_key"],
            "where": [["api_key", "=", key.expose()], ["is_deleted", "IN", [0, 1]]],
            "orderBy": {"id": "ASC"},
            "limit": MAX_HOLDERS + 1,
        }));
        let reply = self.call("get", params, None, Call::Read, &[key.expose()])?;
        reply.refuse_trap()?;
        let records = reply.records()?;
        if records.len() > MAX_HOLDERS {
            return Err(StoreError::bad_data(format!(
                "more than {MAX_HOLDERS} contacts matched one key: the site ignored the key filter"
            )));
        }
        let mut ids = Vec::with_capacity(records.len());
        for record in records {
            let (map, id) = record_id(record)?;
            // Never trust the filter alone: each holder must really hold the key.
            match record_key(map)? {
                Some(held) if held.eq_ignore_case(key) => ids.push(id),
                _ => {
                    return Err(StoreError::bad_data(
                        "the site returned contacts that do not hold the key it was asked about; \
                         it ignored the key filter, so no uniqueness check is possible",
                    ))
                }
            }
        }
        Ok(ids)
    }

    fn read_key(&mut self, id: ContactId) -> Result<Option<ApiKey>, StoreError> {
        let params = Params(json!({
            "select": ["id", "api_key"],
            "where": [["id", "=", id], ["is_deleted", "IN", [0, 1]]],
            "limit": 1,
        }));
        let reply = self.call("get", params, None, Call::Read, &[])?;
        reply.refuse_trap()?;
        match reply.records()?.first() {
            None => Err(StoreError::NotFound(id)),
            Some(record) => {
                let (map, got) = record_id(record)?;
                if got != id {
                    return Err(StoreError::bad_data(format!(
                        "asked for contact {id}, the site answered with contact {got}"
                    )));
                }
                record_key(map)
            }
        }
    }

    /// `api_key IS NOT NULL` pages, by id. Each record must carry its key (the permission
    /// trap drops the filter, which would list every contact: refused).
    fn key_holders(
        &mut self,
        after: Option<&HolderCursor>,
        limit: usize,
    ) -> Result<HolderPage, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let offset = match after {
            None => 0,
            Some(HolderCursor::Offset(n)) => *n,
            Some(HolderCursor::AfterKey { .. }) => {
                return Err(StoreError::invalid(
                    "the REST store pages key holders by offset, not by key",
                ))
            }
        };
        let params = Params(json!({
            "select": CONTACT_FIELDS,
            "where": [["api_key", "IS NOT NULL"], ["api_key", "!=", ""], ["is_deleted", "IN", [0, 1]]],
            "limit": limit + 1,
            "offset": offset,
        }));
        let reply = self.call("get", params, Some(ORDER_BY_ID), Call::Read, &[])?;
        reply.refuse_trap()?;
        let mut holders = Vec::new();
        for record in reply.records()? {
            let contact = record_to_contact(record)?;
            let (map, _) = record_id(record)?;
            match record_key(map)? {
                Some(key) => holders.push(Holder { contact, key }),
                None => {
                    return Err(StoreError::bad_data(
                        "the site returned contacts without a key when asked for key holders; \
                         it ignored the filter",
                    ))
                }
            }
        }
        let next = if holders.len() > limit {
            holders.truncate(limit);
            Some(HolderCursor::Offset(offset + limit as u64))
        } else {
            None
        };
        let ids: Vec<ContactId> = holders.iter().map(|h| h.contact.id).collect();
        let links = self.cms_links(&ids)?;
        for h in &mut holders {
            h.contact.cms = links
                .get(&h.contact.id)
                .copied()
                .unwrap_or(CmsLink::Unknown);
        }
        Ok(HolderPage { holders, next })
    }

    fn rotation_batch(&self) -> usize {
        ROTATION_BATCH
    }

    /// A page of ids per Contact.get.
    fn read_keys(
        &mut self,
        ids: &[ContactId],
    ) -> Result<HashMap<ContactId, Option<ApiKey>>, StoreError> {
        let mut keys = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_CALL) {
            let params = Params(json!({
                "select": ["id", "api_key"],
                "where": [["id", "IN", chunk], ["is_deleted", "IN", [0, 1]]],
                "limit": chunk.len(),
            }));
            let reply = self.call("get", params, None, Call::Read, &[])?;
            reply.refuse_trap()?;
            for record in reply.records()? {
                let (map, id) = record_id(record)?;
                if !chunk.contains(&id) {
                    return Err(StoreError::bad_data(format!(
                        "asked for the keys of {} contacts, the site answered with contact {id}",
                        chunk.len()
                    )));
                }
                keys.insert(id, record_key(map)?);
            }
        }
        Ok(keys)
    }

    /// One Contact.get `api_key IN [...]` per [`KEYS_PER_CALL`] keys; each holder must
    /// really hold one of the keys asked about (a dropped filter lists everyone: refused).
    fn holders_of_keys(&mut self, keys: &[&ApiKey]) -> Result<Vec<Vec<ContactId>>, StoreError> {
        let mut holders = vec![Vec::new(); keys.len()];
        for (n, chunk) in keys.chunks(KEYS_PER_CALL).enumerate() {
            let texts: Vec<&str> = chunk.iter().map(|k| k.expose()).collect();
            let params = Params(json!({
                "select": ["id", "api_key"],
                "where": [["api_key", "IN", texts], ["is_deleted", "IN", [0, 1]]],
                "orderBy": {"id": "ASC"},
                "limit": MAX_HOLDERS + 1,
            }));
            let reply = self.call("get", params, None, Call::Read, &texts)?;
            reply.refuse_trap()?;
            let records = reply.records()?;
            if records.len() > MAX_HOLDERS {
                return Err(StoreError::bad_data(format!(
                    "more than {MAX_HOLDERS} contacts matched new keys: the site ignored the key filter"
                )));
            }
            for record in records {
                let (map, id) = record_id(record)?;
                let held = record_key(map)?;
                let mut matched = false;
                for (i, key) in chunk.iter().enumerate() {
                    if held.as_ref().is_some_and(|h| h.eq_ignore_case(key)) {
                        holders[n * KEYS_PER_CALL + i].push(id);
                        matched = true;
                    }
                }
                if !matched {
                    return Err(StoreError::bad_data(
                        "the site returned contacts that do not hold the keys it was asked about; \
                         it ignored the key filter, so no uniqueness check is possible",
                    ));
                }
            }
        }
        Ok(holders)
    }

    /// The exact keys read first (one call: the update's own filter compares as MySQL does),
    /// then every update in one multi-call request per [`KEYS_PER_CALL`] swaps, each call
    /// judged on its own (recorded in rest/091-093, 096).
    fn swap_keys(&mut self, swaps: &[KeySwap<'_>]) -> Vec<Result<(), StoreError>> {
        let mut results: Vec<Option<Result<(), StoreError>>> = swaps
            .iter()
            .map(|s| match s.new {
                Some(k) if k.len() > KEY_LEN => Some(Err(StoreError::invalid(format!(
                    "the new key has {} characters; CiviCRM's api_key holds {KEY_LEN} and would \
                     silently cut it. Nothing was written",
                    k.len()
                )))),
                _ => None,
            })
            .collect();
        let ids: Vec<ContactId> = swaps.iter().map(|s| s.id).collect();
        match self.read_keys(&ids) {
            Err(e) => {
                for r in results.iter_mut().filter(|r| r.is_none()) {
                    *r = Some(Err(e.again()));
                }
            }
            Ok(current) => {
                for (s, r) in swaps.iter().zip(results.iter_mut()) {
                    if r.is_some() {
                        continue;
                    }
                    match current.get(&s.id) {
                        None => *r = Some(Err(StoreError::NotFound(s.id))),
                        Some(key)
                            if key.as_ref().map(ApiKey::expose)
                                != s.expected.map(ApiKey::expose) =>
                        {
                            *r = Some(Err(StoreError::Conflict))
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        let pending: Vec<usize> = (0..swaps.len()).filter(|&i| results[i].is_none()).collect();
        let mut unmatched = Vec::new();
        for chunk in pending.chunks(KEYS_PER_CALL) {
            for (i, outcome) in self.update_calls(swaps, chunk) {
                match outcome {
                    Ok(0) => unmatched.push(i),
                    Ok(_) => results[i] = Some(Ok(())),
                    Err(e) => results[i] = Some(Err(e)),
                }
            }
        }
        if !unmatched.is_empty() {
            // Nothing matched the compare-and-set: a conflict, unless the contact is gone.
            let ids: Vec<ContactId> = unmatched.iter().map(|&i| swaps[i].id).collect();
            let found = self.read_keys(&ids);
            for i in unmatched {
                results[i] = Some(Err(match &found {
                    Ok(found) if found.contains_key(&swaps[i].id) => StoreError::Conflict,
                    Ok(_) => StoreError::NotFound(swaps[i].id),
                    Err(e) => e.again(),
                }));
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(unknown_after_ok("no answer for this update"))))
            .collect()
    }

    fn swap_key(
        &mut self,
        id: ContactId,
        expected: Option<&ApiKey>,
        new: Option<&ApiKey>,
    ) -> Result<(), StoreError> {
        if let Some(k) = new {
            if k.len() > KEY_LEN {
                return Err(StoreError::invalid(format!(
                    "the new key has {} characters; CiviCRM's api_key holds {KEY_LEN} and would \
                     silently cut it. Nothing was written",
                    k.len()
                )));
            }
        }
        // The update's own filter compares as MySQL does (case-insensitively); the contract
        // is byte for byte, so the exact value is checked first. This read also detects the
        // permission trap before anything is sent that could write.
        let current = self.read_key(id)?;
        if current.as_ref().map(ApiKey::expose) != expected.map(ApiKey::expose) {
            return Err(StoreError::Conflict);
        }
        let mut secrets: Vec<&str> = Vec::with_capacity(2);
        secrets.extend(expected.map(ApiKey::expose));
        secrets.extend(new.map(ApiKey::expose));
        let params = Params(json!({
            "where": [["id", "=", id], ["is_deleted", "IN", [0, 1]], key_clause(expected)],
            "values": {"api_key": new.map(ApiKey::expose)},
        }));
        let reply = self.call("update", params, None, Call::Write, &secrets)?;
        if reply.refuse_trap().is_err() {
            // The key filter was dropped: the write matched on id alone, or was ignored.
            return Err(StoreError::OutcomeUnknown(SafeText::new(&format!(
                "the site ignored api_key in the update, so it may or may not have changed \
                 contact {id}'s key: {NO_EDIT_API_KEYS}"
            ))));
        }
        match reply.count() {
            Some(1) => Ok(()),
            Some(0) => {
                if self.exists(id)? {
                    Err(StoreError::Conflict)
                } else {
                    Err(StoreError::NotFound(id))
                }
            }
            Some(n) => Err(StoreError::bad_data(format!(
                "the site changed {n} contacts for one contact id; check the contacts' keys"
            ))),
            None => Err(StoreError::OutcomeUnknown(SafeText::new(
                "the site's answer to the update does not say how many contacts changed; look at \
                 the contact again before retrying",
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{site_order, site_order_key};

    /// The page is sorted by `site_order_key` (a total order) and then checked with
    /// `site_order`: the key must agree with every order `site_order` is sure of.
    #[test]
    fn the_sort_key_agrees_with_every_sure_order() {
        let names = [
            "Smith, John",
            "SMITH, JOHN",
            "Smith",
            "Smith ",
            "Smith-Jones",
            "Smith Jones",
            "Smith.Jones",
            "Smith2",
            "Smith10",
            "Smith~",
            "Smith:",
            "Smith[",
            "Smíth",
            "Smith\t",
            "O'Brien",
            "Obrien",
            "O Brien",
            "",
            "123",
            "Acme Inc.",
            "Acme, Inc",
            "Zoë",
            "zoe",
        ];
        let mut sure = 0;
        for a in names {
            for b in names {
                if let Some(order) = site_order(a, b) {
                    sure += 1;
                    assert_eq!(
                        site_order_key(a).cmp(&site_order_key(b)),
                        order,
                        "{a:?} / {b:?}"
                    );
                }
            }
        }
        assert!(
            sure > names.len() * names.len() / 2,
            "sure of only {sure} pairs"
        );
    }
}
