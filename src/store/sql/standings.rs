//! Standings (a contact's user account and roles) as both SQL stores read them: the same
//! two queries on CiviCRM's tables (`civicrm_uf_match`, and on a Standalone site
//! `civicrm_role` and `civicrm_user_role`), and one rule for what the answer means when
//! a column is missing.
//!
//! The rule: a user account's state is told only where the database holds it
//! (`civicrm_uf_match.is_active`, Standalone's). Without that column (CiviCRM on a CMS,
//! which keeps its users itself, or a SQLite store made before civikey read users) a
//! contact linked to a user stands [`Standing::UNKNOWN`]: saying "active" there would
//! vouch for an account nobody looked at.

use std::collections::HashMap;

use crate::sanitize::SafeText;
use crate::store::{
    split_permissions, AccountState, Cms, ContactId, Role, Standing, StoreError, UserAccount,
};

/// Ids per `IN (...)` list: two queries per chunk.
pub const STANDING_CHUNK: usize = 500;

/// Standalone's user and role columns, as far as the database has them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StandaloneColumns {
    /// `civicrm_uf_match.username`: the account's name (else `uf_name`).
    pub username: bool,
    /// `civicrm_uf_match.is_active`: whether the account is blocked. Without it the
    /// account is unknown (see the module's rule).
    pub user_active: bool,
    /// `civicrm_user_role.user_id` and `civicrm_role.permissions`: roles can be read.
    pub roles: bool,
    /// `civicrm_role.is_active`: inactive roles are left out.
    pub role_active: bool,
}

impl StandaloneColumns {
    /// The columns `has(table, column)` says are there (table names without a prefix).
    pub fn from_present(has: impl Fn(&str, &str) -> bool) -> Self {
        StandaloneColumns {
            username: has("civicrm_uf_match", "username"),
            user_active: has("civicrm_uf_match", "is_active"),
            roles: has("civicrm_user_role", "user_id") && has("civicrm_role", "permissions"),
            role_active: has("civicrm_role", "is_active"),
        }
    }

    /// The tables and columns [`StandaloneColumns::from_present`] asks about.
    pub const ASKED: [(&'static str, &'static str); 5] = [
        ("civicrm_uf_match", "username"),
        ("civicrm_uf_match", "is_active"),
        ("civicrm_user_role", "user_id"),
        ("civicrm_role", "permissions"),
        ("civicrm_role", "is_active"),
    ];
}

/// The tables' names as the store pastes them into SQL (prefixed and quoted on MySQL).
pub struct StandingTables<'a> {
    pub contact: &'a str,
    pub uf: &'a str,
    pub role: &'a str,
    pub user_role: &'a str,
}

/// A row of the users query: the contact, its user (the current domain's uf_match row,
/// None: no user), the user's name, and whether it is active (None: not known).
pub struct UserRow {
    pub contact: ContactId,
    pub user: Option<u64>,
    pub name: String,
    pub active: Option<bool>,
}

/// A row of the roles query: the user (a uf_match id), the role's label or name, its
/// permissions as the table stores them.
pub struct RoleRow {
    pub user: u64,
    pub name: String,
    pub permissions: String,
}

/// How a store runs the two queries: `?` placeholders, one per id, in order.
pub trait StandingQueries {
    fn user_rows(&mut self, sql: &str, ids: &[u64]) -> Result<Vec<UserRow>, StoreError>;
    fn role_rows(&mut self, sql: &str, users: &[u64]) -> Result<Vec<RoleRow>, StoreError>;
}

/// The standings of `ids`, [`STANDING_CHUNK`] at a time; contacts that do not exist are
/// left out.
pub fn read_standings(
    store: &mut impl StandingQueries,
    tables: &StandingTables<'_>,
    columns: StandaloneColumns,
    ids: &[ContactId],
) -> Result<HashMap<ContactId, Standing>, StoreError> {
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(STANDING_CHUNK) {
        let users = store.user_rows(&users_sql(tables, columns, chunk.len()), chunk)?;
        let user_ids: Vec<u64> = users.iter().filter_map(|u| u.user).collect();
        let roles = if columns.user_active && columns.roles && !user_ids.is_empty() {
            store.role_rows(&roles_sql(tables, columns, user_ids.len()), &user_ids)?
        } else {
            Vec::new()
        };
        standings(columns, users, roles, &mut out);
    }
    Ok(out)
}

fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Each contact's user: the lowest domain's uf_match row (a Standalone site, and a SQLite
/// store, have one domain).
fn users_sql(t: &StandingTables<'_>, columns: StandaloneColumns, ids: usize) -> String {
    format!(
        "SELECT c.id, u.id, {name}, {active} FROM {contact} c
           LEFT JOIN {uf} u ON u.contact_id = c.id
            AND u.domain_id = (SELECT MIN(d.domain_id) FROM {uf} d WHERE d.contact_id = c.id)
          WHERE c.id IN ({marks})",
        name = if columns.username {
            "COALESCE(NULLIF(u.username, ''), u.uf_name, '')"
        } else {
            "COALESCE(u.uf_name, '')"
        },
        active = if columns.user_active {
            "u.is_active"
        } else {
            "NULL"
        },
        contact = t.contact,
        uf = t.uf,
        marks = marks(ids),
    )
}

/// The users' roles (user_role.user_id is the uf_match id), active ones only where roles
/// can be inactive, by their label or else their name.
fn roles_sql(t: &StandingTables<'_>, columns: StandaloneColumns, users: usize) -> String {
    format!(
        "SELECT ur.user_id, COALESCE(NULLIF(r.label, ''), r.name), COALESCE(r.permissions, '')
           FROM {user_role} ur JOIN {role} r ON r.id = ur.role_id
          WHERE ur.user_id IN ({marks}){active}
          ORDER BY ur.user_id, r.name",
        active = if columns.role_active {
            " AND r.is_active = 1"
        } else {
            ""
        },
        user_role = t.user_role,
        role = t.role,
        marks = marks(users),
    )
}

/// What the rows say, by the module's rule.
fn standings(
    columns: StandaloneColumns,
    users: Vec<UserRow>,
    roles: Vec<RoleRow>,
    out: &mut HashMap<ContactId, Standing>,
) {
    let mut by_user: HashMap<u64, Vec<Role>> = HashMap::new();
    for role in roles {
        let permissions = split_permissions(&role.permissions);
        by_user
            .entry(role.user)
            .or_default()
            .push(Role::from_permissions(
                &role.name,
                permissions.iter().map(String::as_str),
            ));
    }
    for row in users {
        let standing = match (row.user, row.active) {
            (None, _) => Standing::no_account(),
            (Some(_), None) => Standing::UNKNOWN,
            (Some(user), Some(active)) => Standing {
                account: AccountState::Account(UserAccount {
                    id: user,
                    name: SafeText::new(&row.name),
                    active,
                    // is_active on civicrm_uf_match is Standalone's column.
                    cms: Cms::Standalone,
                }),
                roles: columns
                    .roles
                    .then(|| by_user.remove(&user).unwrap_or_default()),
            },
        };
        out.insert(row.contact, standing);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: StandaloneColumns = StandaloneColumns {
        username: true,
        user_active: true,
        roles: true,
        role_active: true,
    };

    fn user(contact: ContactId, user: Option<u64>, active: Option<bool>) -> UserRow {
        UserRow {
            contact,
            user,
            name: "ada".into(),
            active,
        }
    }

    #[test]
    fn an_account_whose_state_the_database_does_not_hold_is_unknown() {
        let columns = StandaloneColumns {
            user_active: false,
            ..ALL
        };
        let mut out = HashMap::new();
        standings(
            columns,
            vec![user(1, Some(11), None), user(2, None, None)],
            Vec::new(),
            &mut out,
        );
        assert_eq!(out[&1], Standing::UNKNOWN, "never \"active\" unread");
        assert_eq!(out[&2], Standing::no_account());
        assert!(!users_sql(&TABLES, columns, 2).contains("is_active"));
    }

    #[test]
    fn accounts_and_roles_where_the_columns_are_there() {
        let mut out = HashMap::new();
        let role = |user, name: &str| RoleRow {
            user,
            name: name.into(),
            permissions: "\u{1}authenticate with api key\u{1}".into(),
        };
        standings(
            ALL,
            vec![
                user(1, Some(11), Some(true)),
                user(2, Some(12), Some(false)),
            ],
            vec![role(11, "API")],
            &mut out,
        );
        let AccountState::Account(ada) = &out[&1].account else {
            panic!("{:?}", out[&1])
        };
        assert!(ada.active && ada.id == 11);
        assert_eq!(
            out[&1].roles,
            Some(vec![Role::from_permissions(
                "API",
                ["authenticate with api key"]
            )])
        );
        assert!(matches!(&out[&2].account, AccountState::Account(u) if !u.active));
        assert_eq!(out[&2].roles, Some(Vec::new()));
        let without_roles = StandaloneColumns {
            roles: false,
            ..ALL
        };
        standings(
            without_roles,
            vec![user(1, Some(11), Some(true))],
            Vec::new(),
            &mut out,
        );
        assert_eq!(out[&1].roles, None, "roles not readable: not known");
    }

    #[test]
    fn the_columns_asked_about_decide_the_shape() {
        let present = |asked: &[(&str, &str)]| {
            let asked = asked.to_vec();
            StandaloneColumns::from_present(move |t, c| asked.contains(&(t, c)))
        };
        assert_eq!(present(&StandaloneColumns::ASKED), ALL);
        let no_permissions = present(&StandaloneColumns::ASKED[..3]);
        assert!(!no_permissions.roles && no_permissions.user_active);
    }

    const TABLES: StandingTables<'static> = StandingTables {
        contact: "civicrm_contact",
        uf: "civicrm_uf_match",
        role: "civicrm_role",
        user_role: "civicrm_user_role",
    };
}
