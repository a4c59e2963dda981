//! Users and their active roles through Standalone's User and Role entities: what a
//! contact's standing is made of on an API v4 store, and whether the store may see every
//! user at all ([`Seen`], decided once per store).

use std::collections::HashMap;

use serde::de::IgnoredAny;

use super::clause::{Clause, GetParams, Val, ID_ORDER};
use super::paging::shrinking;
use super::rows::{id_of, RoleRow, UserRow};
use super::{Api4, IfThere, IDS_PER_CALL};
use crate::sanitize::SafeText;
use crate::store::StoreError;
use crate::store::{AccountState, Cms, ContactId, Role, SiteUsers, Standing, UserAccount};

/// What a User.get reads of each user.
const USER_FIELDS: &[&str] = &["id", "username", "contact_id", "is_active", "roles"];
/// What a Role.get reads of each role.
const ROLE_FIELDS: &[&str] = &["id", "name", "label", "permissions", "is_active"];
/// The most users one call reads when the whole site's users are read (about 80 bytes
/// each): a site with ten times more users than this still holds one page at a time.
const SITE_USERS_PAGE: usize = 50_000;

/// What a store may see of the site's users.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Standalone, and the store may read every user and role.
    All,
    /// Standalone, but the profile's user lacks `cms:administer users`: User.get answers
    /// it with its own user row only, silently (recorded rest/119), so a missing row says
    /// nothing; every contact's user is unknown ([`Standing::HIDDEN`]).
    Hidden,
    /// No User entity: not Standalone; the CMS keeps the users.
    NotStandalone,
}

/// Whether `api` may see every user: asked once per store, by a Role.get of one row.
/// Role.get needs `cms:administer users`, the same permission that lets User.get show
/// other users than the caller's own; it answers 403 without it (rest/121), and "does not
/// exist" where the site is not Standalone. It does not depend on any contact having a
/// user, as comparing User.get's rows with the contacts asked about would.
pub(crate) fn seen(api: &impl Api4) -> Result<Seen, StoreError> {
    if let Some(seen) = api.users_seen().get() {
        return Ok(*seen);
    }
    let probe = GetParams::new(&["id"], Vec::new()).limit(1);
    let seen = match api.get_if_there::<IgnoredAny>("Role", &probe)? {
        IfThere::Rows(_) => Seen::All,
        IfThere::Refused => Seen::Hidden,
        IfThere::Absent => Seen::NotStandalone,
    };
    Ok(*api.users_seen().get_or_init(|| seen))
}

/// The standing of each of `ids`: its user (the current domain's) and the user's active
/// roles (None: the site does not say); [`Standing::HIDDEN`] for each when the store may
/// not see every user. None when the site has no User entity (not Standalone).
pub(crate) fn users(
    api: &impl Api4,
    ids: &[ContactId],
) -> Result<Option<HashMap<ContactId, Standing>>, StoreError> {
    let hidden = || Some(ids.iter().map(|&id| (id, Standing::HIDDEN)).collect());
    match seen(api)? {
        Seen::All => {}
        Seen::Hidden => return Ok(hidden()),
        Seen::NotStandalone => return Ok(None),
    }
    let mut users: Vec<UserRow> = Vec::new();
    for chunk in ids.chunks(IDS_PER_CALL) {
        let params = GetParams::new(
            USER_FIELDS,
            vec![Clause::Cmp(
                "contact_id",
                "IN",
                Val::IntList(chunk.to_vec()),
            )],
        );
        match api.get_if_there::<UserRow>("User", &params)? {
            IfThere::Rows(rows) => users.extend(rows),
            IfThere::Refused => return Ok(hidden()),
            IfThere::Absent => return Ok(None),
        }
    }
    let mut role_ids: Vec<u64> = users
        .iter()
        .flat_map(|u| u.roles.iter().filter_map(id_of))
        .collect();
    role_ids.sort_unstable();
    role_ids.dedup();
    let roles = roles_by_id(api, &role_ids)?;
    let mut out: HashMap<ContactId, Standing> =
        ids.iter().map(|&id| (id, Standing::no_account())).collect();
    out.extend(standings_of(users, roles.as_ref()));
    Ok(Some(out))
}

/// Every user of the site and its active roles, for the health check: User.get in pages
/// of [`SITE_USERS_PAGE`] by id, then every active role in one Role.get, joined here. A
/// store that may not see every user ([`Seen::Hidden`], or a refused User.get) has every
/// holder's account hidden; a site without the User entity gives no accounts (holders
/// stand by their CMS link); a refused Role.get leaves roles unknown. None fails the check.
pub(crate) fn site_users(api: &impl Api4) -> Result<SiteUsers, StoreError> {
    let hidden = SiteUsers {
        accounts: None,
        hidden: true,
    };
    let absent = SiteUsers {
        accounts: None,
        hidden: false,
    };
    match seen(api)? {
        Seen::All => {}
        Seen::Hidden => return Ok(hidden),
        Seen::NotStandalone => return Ok(absent),
    }
    let mut users: Vec<UserRow> = Vec::new();
    let mut after: Option<u64> = None;
    // Halved while a page's answer is too large (`shrinking`), for the rest of the read.
    let mut page_size = SITE_USERS_PAGE;
    loop {
        let page = shrinking(&mut page_size, |limit| {
            let mut where_ = Vec::new();
            if let Some(id) = after {
                where_.push(Clause::Cmp("id", ">", Val::Int(id)));
            }
            let params = GetParams::new(USER_FIELDS, where_)
                .order(ID_ORDER)
                .limit(limit);
            api.get_if_there::<UserRow>("User", &params)
        })?;
        let page = match page {
            IfThere::Rows(rows) => rows,
            IfThere::Refused => return Ok(hidden),
            IfThere::Absent => return Ok(absent),
        };
        let full = page.len() >= page_size;
        after = page.iter().map(|u| u.id).max().or(after);
        users.extend(page);
        if !full {
            break;
        }
    }
    let roles = if users.iter().any(|u| !u.roles.is_empty()) {
        let params = GetParams::new(
            ROLE_FIELDS,
            vec![Clause::Cmp("is_active", "=", Val::Bool(true))],
        );
        match api.get_if_there::<RoleRow>("Role", &params)? {
            IfThere::Rows(rows) => Some(rows.into_iter().map(role_of).collect::<HashMap<_, _>>()),
            IfThere::Refused | IfThere::Absent => None,
        }
    } else {
        Some(HashMap::new())
    };
    Ok(SiteUsers {
        accounts: Some(standings_of(users, roles.as_ref()).collect()),
        hidden: false,
    })
}

/// Each user's contact and standing: its account, and its roles found in `roles` (None:
/// the site does not say).
fn standings_of(
    users: Vec<UserRow>,
    roles: Option<&HashMap<u64, Role>>,
) -> impl Iterator<Item = (ContactId, Standing)> + '_ {
    users.into_iter().map(move |u| {
        let user_roles = roles.map(|all| {
            u.roles
                .iter()
                .filter_map(id_of)
                .filter_map(|r| all.get(&r).cloned())
                .collect()
        });
        (
            u.contact_id,
            Standing {
                account: AccountState::Account(UserAccount {
                    id: u.id,
                    name: SafeText::new(u.username.as_deref().unwrap_or_default()),
                    active: u.is_active,
                    cms: Cms::Standalone,
                }),
                roles: user_roles,
            },
        )
    })
}

/// A role row as a role (its label, else its name) and its id.
fn role_of(r: RoleRow) -> (u64, Role) {
    let name = [r.label, r.name]
        .into_iter()
        .flatten()
        .find(|n| !n.is_empty())
        .unwrap_or_default();
    let permissions = r.permissions.iter().filter_map(|p| p.as_str());
    (r.id, Role::from_permissions(&name, permissions))
}

/// Active roles by id (Role.get); None when the site does not say.
fn roles_by_id(api: &impl Api4, ids: &[u64]) -> Result<Option<HashMap<u64, Role>>, StoreError> {
    let mut roles = HashMap::new();
    for chunk in ids.chunks(IDS_PER_CALL) {
        let params = GetParams::new(
            ROLE_FIELDS,
            vec![
                Clause::Cmp("id", "IN", Val::IntList(chunk.to_vec())),
                Clause::Cmp("is_active", "=", Val::Bool(true)),
            ],
        )
        .limit(chunk.len());
        let IfThere::Rows(rows) = api.get_if_there::<RoleRow>("Role", &params)? else {
            return Ok(None);
        };
        roles.extend(rows.into_iter().map(role_of));
    }
    Ok(Some(roles))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::sync::OnceLock;

    use serde::de::DeserializeOwned;
    use serde_json::{json, Value};

    use super::*;
    use crate::key::ApiKey;
    use crate::store::{CmsLink, Contact, KeySwap};

    /// How the canned site answers a get of one entity.
    #[derive(Clone)]
    enum Answer {
        Rows(Value),
        Refused,
        Absent,
    }

    /// A site answering User.get and Role.get from canned rows.
    struct Site {
        users: Answer,
        roles: Answer,
        calls: RefCell<Vec<&'static str>>,
        seen: OnceLock<Seen>,
    }

    fn site(users: Answer, roles: Answer) -> Site {
        Site {
            users,
            roles,
            calls: RefCell::new(Vec::new()),
            seen: OnceLock::new(),
        }
    }

    impl Api4 for Site {
        fn who(&self) -> &'static str {
            "the site"
        }
        fn get<T: DeserializeOwned>(
            &self,
            _: &'static str,
            _: &GetParams<'_>,
            _: &[&ApiKey],
        ) -> Result<Vec<T>, StoreError> {
            unreachable!("users and roles are read with get_if_there")
        }
        fn get_if_there<T: DeserializeOwned>(
            &self,
            entity: &'static str,
            _: &GetParams<'_>,
        ) -> Result<IfThere<T>, StoreError> {
            self.calls.borrow_mut().push(entity);
            let answer = match entity {
                "User" => &self.users,
                _ => &self.roles,
            };
            Ok(match answer {
                Answer::Rows(rows) => IfThere::Rows(serde_json::from_value(rows.clone()).unwrap()),
                Answer::Refused => IfThere::Refused,
                Answer::Absent => IfThere::Absent,
            })
        }
        fn users_seen(&self) -> &OnceLock<Seen> {
            &self.seen
        }
        fn keys_hidden(&self) -> StoreError {
            StoreError::Conflict
        }
        fn update(&self, _: &KeySwap<'_>) -> Result<u64, StoreError> {
            unreachable!()
        }
    }

    fn contact(id: ContactId, cms: CmsLink) -> Contact {
        Contact {
            id,
            contact_type: SafeText::new("Individual"),
            display_name: SafeText::new("C"),
            sort_name: SafeText::new("C"),
            email: None,
            is_deleted: false,
            key: None,
            cms,
        }
    }

    fn users() -> Answer {
        Answer::Rows(
            json!([{"id": 5, "contact_id": 50, "username": "ada", "is_active": true, "roles": ["2"]}]),
        )
    }

    fn roles() -> Answer {
        Answer::Rows(
            json!([{"id": 2, "label": "API", "permissions": ["authenticate with api key"]}]),
        )
    }

    #[test]
    fn the_whole_sites_users_and_roles_in_two_calls_joined_here() {
        let site = site(users(), roles());
        let found = site_users(&site).unwrap();
        assert_eq!(
            *site.calls.borrow(),
            ["Role", "User", "Role"],
            "the probe, then one each"
        );
        let ada = found.standing_of(&contact(50, CmsLink::Linked { uf_id: 5 }));
        assert!(matches!(&ada.account, AccountState::Account(u) if u.id == 5 && u.active));
        assert_eq!(
            ada.roles,
            Some(vec![Role::from_permissions(
                "API",
                ["authenticate with api key"]
            )])
        );
        assert_eq!(
            found.standing_of(&contact(51, CmsLink::None)),
            Standing::no_account()
        );
        assert_eq!(
            found.standing_of(&contact(52, CmsLink::Linked { uf_id: 9 })),
            Standing::UNKNOWN,
            "a linked user the store did not see is unknown, never \"no account\""
        );
    }

    /// A least-privilege admin (Role.get refused: 403), a refused User.get, a site that is
    /// not Standalone: the check goes on; what cannot be seen is hidden or unknown, never
    /// "no account" for a contact with a user.
    #[test]
    fn refused_users_or_roles_are_hidden_not_a_failure() {
        let hidden = site_users(&site(users(), Answer::Refused)).unwrap();
        assert_eq!(
            hidden.standing_of(&contact(51, CmsLink::None)),
            Standing::HIDDEN
        );
        let refused = site(Answer::Refused, roles());
        let found = site_users(&refused).unwrap();
        assert_eq!(*refused.calls.borrow(), ["Role", "User"]);
        assert_eq!(
            found.standing_of(&contact(50, CmsLink::Linked { uf_id: 5 })),
            Standing::HIDDEN
        );
        let cms = site_users(&site(Answer::Absent, Answer::Absent)).unwrap();
        assert_eq!(cms.accounts, None);
        assert_eq!(
            cms.standing_of(&contact(50, CmsLink::Unknown)),
            Standing::UNKNOWN
        );
        assert_eq!(
            cms.standing_of(&contact(51, CmsLink::None)),
            Standing::no_account()
        );
    }
}
