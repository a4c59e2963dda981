//! Users and their active roles through Standalone's User and Role entities: what a
//! contact's standing is made of on an API v4 store, and whether the store may see every
//! user at all ([`Seen`], decided once per store).

use std::collections::HashMap;

use serde::de::IgnoredAny;

use super::clause::{Clause, GetParams, Val};
use super::rows::{id_of, RoleRow, UserRow};
use super::{Api4, IfThere, IDS_PER_CALL};
use crate::sanitize::SafeText;
use crate::store::StoreError;
use crate::store::{AccountState, Cms, ContactId, Role, Standing, UserAccount};

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
            &["id", "username", "contact_id", "is_active", "roles"],
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
    for u in users {
        let user_roles = roles.as_ref().map(|all| {
            u.roles
                .iter()
                .filter_map(id_of)
                .filter_map(|r| all.get(&r).cloned())
                .collect()
        });
        out.insert(
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
        );
    }
    Ok(Some(out))
}

/// Active roles by id (Role.get); None when the site does not say.
fn roles_by_id(api: &impl Api4, ids: &[u64]) -> Result<Option<HashMap<u64, Role>>, StoreError> {
    let mut roles = HashMap::new();
    for chunk in ids.chunks(IDS_PER_CALL) {
        let params = GetParams::new(
            &["id", "name", "label", "permissions", "is_active"],
            vec![
                Clause::Cmp("id", "IN", Val::IntList(chunk.to_vec())),
                Clause::Cmp("is_active", "=", Val::Bool(true)),
            ],
        )
        .limit(chunk.len());
        let IfThere::Rows(rows) = api.get_if_there::<RoleRow>("Role", &params)? else {
            return Ok(None);
        };
        for r in rows {
            let name = [r.label, r.name]
                .into_iter()
                .flatten()
                .find(|n| !n.is_empty())
                .unwrap_or_default();
            let permissions = r.permissions.iter().filter_map(|p| p.as_str());
            roles.insert(r.id, Role::from_permissions(&name, permissions));
        }
    }
    Ok(Some(roles))
}
