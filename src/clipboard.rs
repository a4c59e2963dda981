//! Copy to the clipboard by OSC 52: the terminal emulator on the operator's own machine
//! does the copy, so it works over SSH with no X11 or clipboard tool on the server.

use base64::Engine as _;
use zeroize::Zeroizing;

use crate::key::ApiKey;

/// The OSC 52 sequence that puts `key` on the clipboard (`c`), terminated by BEL, which
/// tmux and every common terminal accept.
pub fn osc52(key: &ApiKey) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::from("\x1b]52;c;"));
    base64::engine::general_purpose::STANDARD.encode_string(key.expose(), &mut out);
    out.push('\x07');
    out
}

/// Inside tmux, OSC 52 reaches the outer terminal only with `set-clipboard on`.
/// `value` is what `tmux show-options -gv set-clipboard` printed.
pub fn tmux_warning(value: Option<&str>) -> Option<String> {
    match value.map(str::trim) {
        Some("on") => None,
        Some(other) => Some(format!(
            "tmux set-clipboard is '{}': the copy may not reach your clipboard. Fix: tmux set -g set-clipboard on",
            crate::sanitize::SafeText::new(other)
        )),
        None => Some("tmux set-clipboard could not be read: the copy may not reach your clipboard.".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osc52_bytes_are_exact() {
        let key = ApiKey::from_store("AbC123xyzAbC123xyzAbC123xyz12345".into());
        let seq = osc52(&key);
        assert_eq!(
            seq.as_bytes(),
            b"\x1b]52;c;QWJDMTIzeHl6QWJDMTIzeHl6QWJDMTIzeHl6MTIzNDU=\x07"
        );
    }

    #[test]
    fn tmux_warning_only_when_not_on() {
        assert_eq!(tmux_warning(Some("on\n")), None);
        assert!(tmux_warning(Some("external"))
            .unwrap()
            .contains("set-clipboard on"));
        assert!(tmux_warning(Some("off\x1b[2J"))
            .unwrap()
            .contains('\u{241B}'));
        assert!(tmux_warning(None).is_some());
    }
}
