//! What a failed cv call means: whether it ran (a failed write that ran may have been
//! applied), CiviCRM's refusals named for the `cv_user`, and cv's stderr made into one line
//! with every key hidden ([`crate::store::error::hide_secrets`]) before it is cut.

use super::Action;
use super::CvStore;
use crate::key::ApiKey;
use crate::sanitize::SafeText;
use crate::store::StoreError;

/// How much of cv's stderr goes into an error message.
pub(super) const SHOWN_STDERR: usize = 1500;

/// What authx says when `--user` names no user of the site (recorded cv/23).
pub(super) const UNKNOWN_PRINCIPAL: &str =
    "Must specify principal with valid user, userId, or contactId";

impl CvStore {
    /// Rows without `api_key`: CiviCRM hid it. Acting as a `cv_user`, that user lacks the
    /// permission to read keys; otherwise an extension hides it.
    pub(super) fn missing_api_key(&self) -> StoreError {
        match &self.user {
            Some(user) => StoreError::PermissionDenied(SafeText::new(&format!(
                "cv_user \"{user}\" may not read API keys: its role needs the CiviCRM permission 'edit api keys' (or 'administer CiviCRM')"
            ))),
            None => StoreError::bad_data(
                "cv did not return api_key (a permission or extension hides it); civikey cannot tell who holds which key",
            ),
        }
    }

    /// The error of a login CiviCRM refused: the `cv_user` and CiviCRM's message.
    pub(super) fn login_refused(&self, why: &str) -> StoreError {
        StoreError::PermissionDenied(SafeText::new(&format!(
            "cv could not log in as cv_user \"{}\": {}; the profile's cv_user must be a CMS user of this site",
            self.user.as_deref().unwrap_or_default(),
            redact(why, &[])
        )))
    }

    /// A call CiviCRM's permission checks refused (the API's own message, from cv's stderr
    /// or the pipe's error): refused before anything was written (recorded cv/22 and 30:
    /// the contact unchanged), so a refused write is "permission denied", not "outcome
    /// unknown". None for any other error.
    pub(super) fn refusal(
        &self,
        action: Action,
        message: &str,
        secrets: &[&ApiKey],
    ) -> Option<StoreError> {
        let message = redact(message.trim(), secrets);
        if self.user.is_some() && message.contains(UNKNOWN_PRINCIPAL) {
            return Some(self.login_refused(&message));
        }
        let refused = message == "ACL check failed"
            || message == "Authorization failed"
            || message.starts_with("Permission denied");
        if !refused {
            return None;
        }
        let who = match &self.user {
            Some(user) => format!(" for cv_user \"{user}\""),
            None => String::new(),
        };
        let text = if matches!(action, Action::Update) {
            format!(
                "CiviCRM refused the key change{who}: {message}; nothing was written (changing keys takes 'edit all contacts' (or an ACL that lets it edit the contact) and 'edit api keys', or 'administer CiviCRM')"
            )
        } else {
            format!("CiviCRM refused the {}{who}: {message}", action.name())
        };
        Some(StoreError::PermissionDenied(SafeText::new(&text)))
    }
}

/// How a cv call went wrong; whether it ran decides what a failed write means.
pub(super) enum Failure {
    /// Nothing happened: cv was never started, or never ran the call (it could not log in
    /// as the `cv_user`), or CiviCRM's permission checks refused it before writing.
    Untouched(StoreError),
    /// cv ran (or may have) without a usable answer.
    Ran { kind: FailKind, message: String },
}

pub(super) enum FailKind {
    Timeout,
    Exit,
    Output,
}

impl Failure {
    pub(super) fn ran(kind: FailKind, message: impl Into<String>) -> Self {
        Failure::Ran {
            kind,
            message: message.into(),
        }
    }

    pub(super) fn for_read(self) -> StoreError {
        match self {
            Failure::Untouched(e) => e,
            Failure::Ran {
                kind: FailKind::Timeout,
                message,
            } => StoreError::Timeout(SafeText::new(&message)),
            Failure::Ran {
                kind: FailKind::Exit,
                message,
            } => StoreError::unreachable(message),
            Failure::Ran {
                kind: FailKind::Output,
                message,
            } => StoreError::bad_data(message),
        }
    }

    /// A write that ran without a clean answer may or may not have been applied.
    pub(super) fn for_write(self) -> StoreError {
        match self {
            Failure::Untouched(e) => e,
            Failure::Ran { message, .. } => StoreError::OutcomeUnknown(SafeText::new(&format!(
                "{message}; look at the contact's key before trying again"
            ))),
        }
    }
}

/// The message inside the Symfony console box cv prints for an exception ("In FILE line
/// N:", the message wrapped in a padded box, then cv's usage line), unwrapped; None when
/// stderr has no box.
pub(super) fn boxed_message(text: &str) -> Option<String> {
    let mut lines = text
        .lines()
        .skip_while(|l| !(l.starts_with("In ") && l.ends_with(':')));
    lines.next()?;
    let mut message = String::new();
    for line in lines {
        if line.starts_with("api4 [") {
            break;
        }
        // Box rows are "  text  ", wrapped mid-word at a fixed width: two columns of
        // margin off, the padding off, and the pieces joined as they are.
        let row = line.strip_prefix("  ").unwrap_or(line).trim_end();
        message.push_str(row);
    }
    let message = message.trim().to_string();
    (!message.is_empty()).then_some(message)
}

/// cv's stderr as one line for an error message: keys hidden, cut to a readable size.
/// SafeText neutralises what is left where the message becomes a StoreError.
pub(super) fn shown_stderr(bytes: &[u8], secrets: &[&ApiKey]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let one_line = boxed_message(&text).unwrap_or_else(|| {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" / ")
    });
    let redacted = redact(&one_line, secrets);
    if redacted.chars().count() > SHOWN_STDERR {
        let cut: String = redacted.chars().take(SHOWN_STDERR).collect();
        format!("{cut}…")
    } else {
        redacted
    }
}

/// Hides the call's keys (any case) and anything else that looks like a key, by the one
/// policy ([`crate::store::error::hide_secrets`]), before the text is cut to length: PHP
/// errors may quote the parameters or the SQL they failed on.
pub(super) fn redact(text: &str, secrets: &[&ApiKey]) -> String {
    let secrets: Vec<&str> = secrets.iter().map(|k| k.expose()).collect();
    crate::store::error::hide_secrets(text, &secrets)
}
