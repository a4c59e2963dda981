//! The one place that judges a contact before a key is assigned: what the key will and
//! will not be able to do on a CiviCRM site with authx at its defaults.
//!
//! The TUI confirm popup, the CLI prompt, `show` and the checks all show these warnings;
//! none composes its own. Each code is stable (scripts read it from `show --json`); each
//! text is true of real CiviCRM at its defaults (see docs/SECURITY.md).

use crate::store::{AccountState, CmsLink, Contact, Standing};

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
                "the user account is blocked: CiviCRM refuses its key (\"User is blocked\")"
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
    let mut codes = Vec::new();
    if contact.is_deleted {
        codes.push(WarningCode::Trashed);
    }
    let no_account = match &standing.account {
        AccountState::NoAccount => true,
        AccountState::Unknown => contact.cms == CmsLink::None,
        AccountState::Account(user) => {
            if !user.active {
                codes.push(WarningCode::UserBlocked);
            }
            false
        }
    };
    if no_account {
        codes.push(WarningCode::NoUserAccount);
    } else {
        match &standing.roles {
            Some(roles) if !roles.iter().any(|r| r.grants_api_login) => {
                codes.push(WarningCode::NoApiLoginPermission)
            }
            Some(_) => {}
            None => codes.push(WarningCode::RolesUnknown),
        }
    }
    codes.sort();
    codes.into_iter().map(Warning::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sanitize::SafeText;
    use crate::store::{Role, UserAccount};

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
        Standing {
            account: AccountState::Account(UserAccount {
                id: 3,
                name: SafeText::new("ada"),
                active,
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
