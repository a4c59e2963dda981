//! Users and their active roles through Standalone's User and Role entities: what a
//! contact's standing is made of on an API v4 store.

use std::collections::HashMap;

use super::clause::{Clause, GetParams, Val};
use super::rows::{id_of, RoleRow, UserRow};
use super::{Api4, IDS_PER_CALL};
use crate::sanitize::SafeText;
use crate::store::StoreError;
use crate::store::{AccountState, ContactId, Role, Standing, UserAccount};

/// The standing of each of `ids`: its user (the current domain's) and the user's active
/// roles (None: the site does not say). None when the site has no User entity (not
/// Standalone) or does not let this store read it.
pub(crate) fn users(
    api: &impl Api4,
    ids: &[ContactId],
) -> Result<Option<HashMap<ContactId, Standing>>, StoreError> {
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
            Some(rows) => users.extend(rows),
            None => return Ok(None),
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
        let Some(rows) = api.get_if_there::<RoleRow>("Role", &params)? else {
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
