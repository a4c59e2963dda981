//! Wording the CLI and the TUI share (both import it; it imports nothing of theirs).

/// `1 contact`, `2 contacts`: the count with the right form.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
