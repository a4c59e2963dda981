//! Wording the CLI and the TUI share (both import it; it imports nothing of theirs).

/// `1 contact`, `2 contacts`: the count with the right form.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A contact's user when the store may not read the site's users
/// ([`crate::store::AccountState::Hidden`]): the CLI's `User` row and the confirm popup.
pub fn users_hidden() -> String {
    format!(
        "unknown (the profile's user may not read users: it lacks '{}')",
        crate::store::USERS_PERMISSION
    )
}
