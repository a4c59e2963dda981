//! The one place that judges a contact before a key is assigned: what the key will and
//! will not be able to do on a CiviCRM site with authx at its defaults.
//!
//! The TUI confirm popup, the CLI prompt, `show` and the checks all show these warnings;
//! none composes its own. Each code is stable (scripts read it from `show --json`); each
//! text is true of real CiviCRM at its defaults (see docs/SECURITY.md).

use crate::store::{AccountState, CmsLink, Contact, Standing, UserAccount, USERS_PERMISSION};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WarningCode {
    Trashed,
    UserBlocked,
    NoUserAccount,
    NoApiLoginPermission,
    RolesUnknown,
}

impl WarningCode {
    pub fn as_str(self) -> &'static str {
        match self {
            WarningCode::Trashed => "trashed",
            WarningCode::UserBlocked => "user_blocked",
            WarningCode::NoUserAccount => "no_user_account",
            WarningCode::NoApiLoginPermission => "no_api_login_permission",
            WarningCode::RolesUnknown => "roles_unknown",
        }
    }

    /// The plain words for the code.
    pub fn text(self) -> &'static str {
        match self {
            WarningCode::Trashed => {
                "the contact is in the trash, and its key still logs in (CiviCRM looks keys up by contact id, past the trash)"
            }
            WarningCode::UserBlocked => {
                "the user account is blocked: CiviCRM refuses its key (\"User is blocked\") until the user is unblocked"
            }
            WarningCode::NoUserAccount => {
                "no user account: the key logs in only where the app also sends the site key, and then with no permissions"
            }
            WarningCode::NoApiLoginPermission => {
                "no role grants 'authenticate with api key': the key works only where the app also sends the site key"
            }
            WarningCode::RolesUnknown => {
                "civikey cannot read this site's users and roles: check in CiviCRM or the CMS that the user is active and has a role granting 'authenticate with api key' (and no more than the app needs)"
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub code: WarningCode,
    /// Plain words, true of CiviCRM at its defaults.
    pub text: String,
}

/// The blocked user's warning on Standalone, where authx does not check blocks (6.14).
pub const BLOCKED_STILL_LOGS_IN: &str = "the user account is blocked, but its key STILL logs in (CiviCRM does not check blocked users on Standalone): revoke the key";

/// Why the store cannot tell the contact's user, when it may not read the site's users.
fn users_hidden_text() -> String {
    format!(
        "civikey may not read this site's users and roles: the profile's user lacks '{USERS_PERMISSION}' (CiviCRM then shows it only its own user account); check in CiviCRM that the user is active and has a role granting 'authenticate with api key' (and no more than the app needs)"
    )
}

impl Warning {
    fn blocked(user: &UserAccount) -> Warning {
        Warning {
            code: WarningCode::UserBlocked,
            text: if user.blocked_but_key_logs_in() {
                BLOCKED_STILL_LOGS_IN.to_string()
            } else {
                WarningCode::UserBlocked.text().to_string()
            },
        }
    }
}

impl From<WarningCode> for Warning {
    fn from(code: WarningCode) -> Self {
        Warning {
            code,
            text: code.text().to_string(),
        }
    }
}

/// What the operator must know about `contact`'s key, most serious first.
pub fn assess(contact: &Contact, standing: &Standing) -> Vec<Warning> {
    let mut warnings: Vec<Warning> = Vec::new();
    if contact.is_deleted {
        warnings.push(WarningCode::Trashed.into());
    }
    // "No user account" only where the store can see it: its users, or (when it cannot
    // read them) a CMS link it read.
    let no_account = match &standing.account {
        AccountState::NoAccount => true,
        AccountState::Unknown | AccountState::Hidden => contact.cms == CmsLink::None,
        AccountState::Account(user) => {
            if !user.active {
                warnings.push(Warning::blocked(user));
            }
            false
        }
    };
    if no_account {
        warnings.push(WarningCode::NoUserAccount.into());
    } else {
        match &standing.roles {
            Some(roles) if !roles.iter().any(|r| r.grants_api_login) => {
                warnings.push(WarningCode::NoApiLoginPermission.into())
            }
            Some(_) => {}
            None if standing.account == AccountState::Hidden => warnings.push(Warning {
                code: WarningCode::RolesUnknown,
                text: users_hidden_text(),
            }),
            None => warnings.push(WarningCode::RolesUnknown.into()),
        }
    }
    warnings.sort_by_key(|w| w.code);
    warnings
}

/// Whether an app using the contact's key must also send the site key (authx's
/// `site_key` guard): true without a user account or without a role granting
/// 'authenticate with api key'; None when the store cannot tell. Read from [`assess`],
/// so the hand-over and the warnings never disagree.
pub fn needs_site_key(contact: &Contact, standing: &Standing) -> Option<bool> {
    let codes: Vec<WarningCode> = assess(contact, standing).iter().map(|w| w.code).collect();
    if codes.iter().any(|c| {
        matches!(
            c,
            WarningCode::NoUserAccount | WarningCode::NoApiLoginPermission
        )
    }) {
        Some(true)
    } else if codes.contains(&WarningCode::RolesUnknown) {
        None
    } else {
        Some(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sanitize::SafeText;
    use crate::store::{Cms, Role, UserAccount};

    fn contact(is_deleted: bool, cms: CmsLink) -> Contact {
        Contact {
            id: 7,
            contact_type: SafeText::new("Individual"),
            display_name: SafeText::new("Ada"),
            sort_name: SafeText::new("Ada"),
            email: None,
            is_deleted,
            key: None,
            cms,
        }
    }

    fn user(active: bool, roles: Option<Vec<Role>>) -> Standing {
        user_on(Cms::Standalone, active, roles)
    }

    fn user_on(cms: Cms, active: bool, roles: Option<Vec<Role>>) -> Standing {
        Standing {
            account: AccountState::Account(UserAccount {
                id: 3,
                name: SafeText::new("ada"),
                active,
                cms,
            }),
            roles,
        }
    }

    fn codes(c: &Contact, s: &Standing) -> Vec<&'static str> {
        assess(c, s).iter().map(|w| w.code.as_str()).collect()
    }

    #[test]
    fn a_user_whose_role_grants_api_login_has_no_warning() {
        let roles = vec![
            Role::from_permissions("staff", ["access CiviCRM"]),
            Role::from_permissions("api", ["authenticate with api key"]),
        ];
        let linked = contact(false, CmsLink::Linked { uf_id: 3 });
        assert!(assess(&linked, &user(true, Some(roles))).is_empty());
        let all = vec![Role::from_permissions(
            "admin",
            ["all CiviCRM permissions and ACLs"],
        )];
        assert!(assess(&linked, &user(true, Some(all))).is_empty());
    }

    #[test]
    fn each_fact_gives_its_code() {
        let linked = contact(false, CmsLink::Linked { uf_id: 3 });
        assert_eq!(
            codes(&contact(true, CmsLink::None), &Standing::no_account()),
            ["trashed", "no_user_account"]
        );
        assert_eq!(
            codes(&linked, &user(false, Some(vec![]))),
            ["user_blocked", "no_api_login_permission"]
        );
        assert_eq!(
            codes(&linked, &user(true, None)),
            ["roles_unknown"],
            "roles the store cannot read are said to be unknown, never 'none'"
        );
        assert_eq!(codes(&linked, &Standing::UNKNOWN), ["roles_unknown"]);
        assert_eq!(
            codes(&contact(false, CmsLink::None), &Standing::UNKNOWN),
            ["no_user_account"],
            "the list's CMS link answers when the store cannot tell more"
        );
    }

    #[test]
    fn users_the_store_may_not_read_are_unknown_never_none() {
        // A least-privilege admin: no contact is said to lack a user, whatever its link.
        for cms in [CmsLink::Unknown, CmsLink::Linked { uf_id: 3 }] {
            let warnings = assess(&contact(false, cms), &Standing::HIDDEN);
            assert_eq!(warnings.len(), 1);
            assert_eq!(warnings[0].code, WarningCode::RolesUnknown);
            assert!(
                warnings[0].text.contains("'cms:administer users'"),
                "names the permission: {}",
                warnings[0].text
            );
        }
        assert_eq!(
            needs_site_key(&contact(false, CmsLink::Unknown), &Standing::HIDDEN),
            None
        );
    }

    #[test]
    fn a_blocked_standalone_user_s_key_still_logs_in() {
        let linked = contact(false, CmsLink::Linked { uf_id: 3 });
        let roles = || {
            Some(vec![Role::from_permissions(
                "api",
                ["authenticate with api key"],
            )])
        };
        let standalone = assess(&linked, &user_on(Cms::Standalone, false, roles()));
        assert_eq!(standalone[0].code, WarningCode::UserBlocked);
        assert_eq!(standalone[0].text, BLOCKED_STILL_LOGS_IN);
        let other = assess(&linked, &user_on(Cms::Other, false, roles()));
        assert_eq!(other[0].code, WarningCode::UserBlocked);
        assert!(
            other[0].text.contains("refuses its key"),
            "{}",
            other[0].text
        );
    }

    #[test]
    fn the_site_key_is_needed_exactly_where_the_warnings_say() {
        let linked = contact(false, CmsLink::Linked { uf_id: 3 });
        let api = || {
            Some(vec![Role::from_permissions(
                "api",
                ["authenticate with api key"],
            )])
        };
        assert_eq!(needs_site_key(&linked, &user(true, api())), Some(false));
        assert_eq!(
            needs_site_key(&linked, &user(true, Some(vec![]))),
            Some(true)
        );
        assert_eq!(
            needs_site_key(&contact(false, CmsLink::None), &Standing::no_account()),
            Some(true)
        );
        assert_eq!(needs_site_key(&linked, &Standing::UNKNOWN), None);
    }

    #[test]
    fn no_text_repeats_the_legacy_rest_myth() {
        for code in [
            WarningCode::Trashed,
            WarningCode::UserBlocked,
            WarningCode::NoUserAccount,
            WarningCode::NoApiLoginPermission,
            WarningCode::RolesUnknown,
        ] {
            assert!(!code.text().contains("v3"), "{}", code.as_str());
        }
    }
}
