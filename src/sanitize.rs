//! Untrusted text -> inert display text.
//!
//! Every string that comes from outside civikey (a store, an API error body, a config file,
//! a CSV) is turned into a [`SafeText`] once, where it enters. `SafeText` can only be built
//! through [`SafeText::new`], so the renderer and the CLI, which only print `SafeText`, cannot
//! hand a raw escape sequence to the operator's terminal.

use std::fmt;

use icu_properties::props::{DefaultIgnorableCodePoint, GeneralCategory};
use icu_properties::{
    CodePointMapData, CodePointMapDataBorrowed, CodePointSetData, CodePointSetDataBorrowed,
};
use unicode_width::UnicodeWidthChar;

/// Text that holds no control characters, no bidi overrides and no invisible characters.
/// It keeps the text it was made from when that differed, for JSON only
/// ([`SafeText::lossless_json`]), never for a terminal. Two texts are equal (and hash and
/// sort) as they are shown.
#[derive(Clone, Default)]
pub struct SafeText(String, Option<Box<str>>);

impl PartialEq for SafeText {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for SafeText {}

impl std::hash::Hash for SafeText {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PartialOrd for SafeText {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SafeText {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

impl SafeText {
    /// Neutralises untrusted text: each dangerous character becomes a visible placeholder.
    pub fn new(untrusted: &str) -> Self {
        if is_inert(untrusted) {
            return SafeText(untrusted.to_string(), None);
        }
        let mut out = String::with_capacity(untrusted.len());
        for c in untrusted.chars() {
            push_inert(&mut out, c);
        }
        let original = (out != untrusted).then(|| Box::from(untrusted));
        SafeText(out, original)
    }

    /// The text as it came, for scripts reading JSON: a JSON string in which every control,
    /// bidi and invisible character is a `\uXXXX` escape, so the store's real text survives
    /// and the JSON stays inert on a terminal.
    pub fn lossless_json(&self) -> serde_json::Value {
        serde_json::Value::String(self.1.as_deref().unwrap_or(&self.0).to_string())
    }

    /// Decodes bytes that may not be UTF-8 (a hostile file, a broken server) and neutralises them.
    pub fn from_bytes(untrusted: &[u8]) -> Self {
        Self::new(&String::from_utf8_lossy(untrusted))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Display width in terminal columns.
    pub fn width(&self) -> usize {
        unicode_width::UnicodeWidthStr::width(self.0.as_str())
    }

    /// The text cut to at most `max` columns, ending in an ellipsis when cut.
    pub fn truncated(&self, max: usize) -> String {
        truncate_to_width(&self.0, max)
    }

    /// The text as a table cell of exactly `width` columns ([`fit_to_width`]).
    pub fn fitted(&self, width: usize) -> String {
        fit_to_width(&self.0, width)
    }
}

impl fmt::Display for SafeText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SafeText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// A byte of printable ASCII (space to tilde): shown as it is.
/// Whether `text` is already what [`SafeText::new`] would make of it: nothing in it is a
/// control, bidi or invisible character. Printable ASCII is never one: most names, every
/// key hint and most table lines pass without a look-up per character (a `check` of
/// 50,000 holders spent a fifth of its time in those look-ups).
pub fn is_inert(text: &str) -> bool {
    text.bytes().all(is_printable_ascii)
        || text.chars().all(|c| !(c.is_control() || is_invisible(c)))
}

fn is_printable_ascii(b: u8) -> bool {
    (0x20..0x7F).contains(&b)
}

fn push_inert(out: &mut String, c: char) {
    let code = c as u32;
    match code {
        0x20..=0x7E => out.push(c),
        // C0 controls: the Unicode "control pictures" block mirrors them one to one.
        0x00..=0x1F => out.push(char::from_u32(0x2400 + code).unwrap_or('\u{FFFD}')),
        0x7F => out.push('\u{2421}'),
        // C1 controls have no pictures; 0x9B alone is a CSI on 8-bit terminals.
        0x80..=0x9F => out.push_str(&format!("\\x{code:02X}")),
        _ if is_invisible(c) => out.push_str(&format!("<U+{code:04X}>")),
        _ => out.push(c),
    }
}

/// A serialized JSON document with every control, bidi and invisible character written as a
/// `\uXXXX` escape (a UTF-16 pair above U+FFFF). Those characters can only stand inside
/// JSON strings (the structure is ASCII), where the escape means the same character.
pub fn inert_json(serialized: &str) -> String {
    if serialized.bytes().all(is_printable_ascii) {
        return serialized.to_string();
    }
    let mut out = String::with_capacity(serialized.len());
    for c in serialized.chars() {
        if c.is_control() || is_invisible(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Characters that show nothing, or reorder or hide the text around them, so an attacker
/// could hide or disguise text with them: every Default_Ignorable_Code_Point (zero-width
/// characters, bidi controls, variation selectors, Hangul fillers, tags, ...), every
/// format character (General_Category=Cf: bidi marks, the BOM, Arabic number signs,
/// interlinear annotations, ...), the line and paragraph separators, and U+2800 BRAILLE
/// PATTERN BLANK, a symbol that renders as an empty cell. From the Unicode data ICU4X
/// ships (`icu_properties`), so new Unicode versions come with the crate.
pub fn is_invisible(c: char) -> bool {
    // No ASCII character is ignorable or a format character (C0 controls are `Cc`).
    if c.is_ascii() {
        return false;
    }
    const DEFAULT_IGNORABLE: CodePointSetDataBorrowed<'static> =
        CodePointSetData::new::<DefaultIgnorableCodePoint>();
    const CATEGORY: CodePointMapDataBorrowed<'static, GeneralCategory> =
        CodePointMapData::<GeneralCategory>::new();
    DEFAULT_IGNORABLE.contains(c)
        || matches!(
            CATEGORY.get(c),
            GeneralCategory::Format
                | GeneralCategory::LineSeparator
                | GeneralCategory::ParagraphSeparator
        )
        || c == '\u{2800}'
}

/// Cuts already-safe text to `max` columns, ending in `…` when anything was cut.
pub fn truncate_to_width(text: &str, max: usize) -> String {
    // Whole-string width: it knows sequences (an emoji with VS16 takes two columns).
    let total = unicode_width::UnicodeWidthStr::width(text);
    if total <= max {
        return text.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > max - 1 {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

/// Already-safe text as a table cell of exactly `width` terminal columns: cut (ending in
/// `…`) and padded with spaces by display width, not by characters, so a wide (CJK, emoji),
/// combining or Devanagari character keeps every later column in place. Rust's `{:<N}`
/// pads by characters; every table the CLI and the TUI print by hand goes through here.
pub fn fit_to_width(text: &str, width: usize) -> String {
    let mut cell = truncate_to_width(text, width);
    let used = unicode_width::UnicodeWidthStr::width(cell.as_str());
    cell.extend(std::iter::repeat_n(' ', width.saturating_sub(used)));
    cell
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keeps_the_text_and_escapes_what_could_act() {
        let name = SafeText::new("Eve\u{1b}[2J\u{202e}x\u{9b}\u{e0001}");
        let doc = serde_json::json!({ "name": name.lossless_json() });
        let line = inert_json(&doc.to_string());
        assert_eq!(line, r#"{"name":"Eve\u001b[2J\u202ex\u009b\udb40\udc01"}"#);
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["name"], "Eve\u{1b}[2J\u{202e}x\u{9b}\u{e0001}");
        assert_eq!(
            SafeText::new(&line).as_str(),
            line,
            "nothing left to neutralise"
        );
    }

    fn has_control(s: &str) -> bool {
        s.chars().any(|c| c.is_control())
    }

    #[test]
    fn the_ascii_shortcut_changes_no_answer() {
        // Each ASCII character alone, as the text's only character and inside a longer
        // printable text: printable ones stay, the others become pictures either way.
        for b in 0u8..0x80 {
            let c = char::from(b);
            assert!(!is_invisible(c), "{b:#x}");
            let printable = (0x20..0x7F).contains(&b);
            for text in [c.to_string(), format!("Ada {c} Lovelace")] {
                let safe = SafeText::new(&text);
                assert_eq!(safe.as_str() == text, printable, "{b:#x}");
                assert_eq!(safe.1.is_none(), printable, "{b:#x}");
                assert!(!has_control(safe.as_str()), "{b:#x}");
                assert_eq!(inert_json(&text) == text, printable, "{b:#x}");
            }
        }
        assert!(is_invisible('\u{200b}') && is_invisible('\u{202e}'));
    }

    #[test]
    fn esc_becomes_a_control_picture() {
        let safe = SafeText::new("a\x1b[2Jb");
        assert_eq!(safe.as_str(), "a\u{241B}[2Jb");
    }

    #[test]
    fn every_c0_and_del_is_replaced() {
        let all: String = (0u8..0x20).map(char::from).chain(['\x7f']).collect();
        let safe = SafeText::new(&all);
        assert!(!has_control(safe.as_str()), "{safe:?}");
        assert_eq!(safe.as_str().chars().count(), 33);
    }

    #[test]
    fn c1_controls_are_escaped() {
        for code in 0x80u32..=0x9F {
            let c = char::from_u32(code).unwrap();
            let safe = SafeText::new(&format!("x{c}y"));
            assert!(!has_control(safe.as_str()), "{code:#x} survived");
            assert_eq!(safe.as_str(), format!("x\\x{code:02X}y"));
        }
    }

    #[test]
    fn osc52_clipboard_write_is_inert() {
        let safe = SafeText::new("Eve\x1b]52;c;ZWNobyBwd25lZA==\x07");
        assert!(!safe.as_str().contains('\x1b'));
        assert!(!safe.as_str().contains('\x07'));
        assert!(safe.as_str().contains("]52;c;"));
    }

    #[test]
    fn osc8_hyperlink_and_unterminated_osc_are_inert() {
        for payload in [
            "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\",
            "\x1b]0;title without terminator",
            "\u{9d}0;c1 osc\u{9c}",
        ] {
            let safe = SafeText::new(payload);
            assert!(!has_control(safe.as_str()), "{safe:?}");
        }
    }

    #[test]
    fn cursor_position_request_is_inert() {
        let safe = SafeText::new("\x1b[6n\u{9b}6n");
        assert_eq!(safe.as_str(), "\u{241B}[6n\\x9B6n");
    }

    #[test]
    fn bidi_overrides_and_isolates_are_shown() {
        for code in (0x202A..=0x202E).chain(0x2066..=0x2069) {
            let c = char::from_u32(code).unwrap();
            let safe = SafeText::new(&format!("a{c}b"));
            assert_eq!(safe.as_str(), format!("a<U+{code:04X}>b"));
        }
    }

    #[test]
    fn zero_width_and_separators_are_shown() {
        for code in (0x200B..=0x200F).chain([0x2028, 0x2029, 0xFEFF]) {
            let c = char::from_u32(code).unwrap();
            let safe = SafeText::new(&format!("a{c}b"));
            assert_eq!(safe.as_str(), format!("a<U+{code:04X}>b"));
        }
    }

    /// The code points an adversarial review found reaching `list`, `show` and `--json`
    /// raw, before the sanitizer took its set from the Unicode data.
    const REVIEW_FOUND: &[(u32, u32)] = &[
        (0x00AD, 0x00AD),
        (0x034F, 0x034F),
        (0x0600, 0x0605),
        (0x06DD, 0x06DD),
        (0x070F, 0x070F),
        (0x115F, 0x1160),
        (0x3164, 0x3164),
        (0xFFA0, 0xFFA0),
        (0x180B, 0x180F),
        (0x206A, 0x206F),
        (0x2800, 0x2800),
        (0xFE00, 0xFE0F),
        (0xE0100, 0xE01EF),
        (0x1BCA0, 0x1BCA3),
        (0x1D173, 0x1D17A),
    ];

    #[test]
    fn invisible_and_format_characters_the_review_found_are_shown() {
        for &(first, last) in REVIEW_FOUND {
            for code in first..=last {
                let c = char::from_u32(code).unwrap();
                let safe = SafeText::new(&format!("a{c}b"));
                assert_eq!(safe.as_str(), format!("a<U+{code:04X}>b"));
            }
        }
    }

    #[test]
    fn every_code_point_is_sanitized_idempotently() {
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let once = SafeText::new(c.encode_utf8(&mut [0; 4]));
            assert!(
                !once
                    .as_str()
                    .chars()
                    .any(|d| d.is_control() || is_invisible(d)),
                "U+{:04X} -> {once:?}",
                c as u32
            );
            assert_eq!(SafeText::new(once.as_str()), once, "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn inert_is_exactly_what_the_sanitizer_leaves_alone() {
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let text = format!("••••{c}");
            assert_eq!(
                is_inert(&text),
                SafeText::new(&text).as_str() == text,
                "U+{:04X}",
                c as u32
            );
        }
    }

    #[test]
    fn ordinary_scripts_and_emoji_pass_unchanged() {
        for name in [
            "Zoë Müller",
            "山田 太郎",
            "Ελένη Παπαδοπούλου",
            "محمد",
            "🦀 Crab Club",
        ] {
            assert_eq!(SafeText::new(name).as_str(), name);
        }
    }

    #[test]
    fn invalid_utf8_is_replaced_not_passed() {
        let safe = SafeText::from_bytes(b"ok\xff\x1b");
        assert_eq!(safe.as_str(), "ok\u{FFFD}\u{241B}");
    }

    #[test]
    fn truncation_respects_wide_characters() {
        let safe = SafeText::new("山田太郎山田太郎");
        let cut = safe.truncated(7);
        assert_eq!(cut, "山田太…");
        assert!(unicode_width::UnicodeWidthStr::width(cut.as_str()) <= 7);
        assert_eq!(SafeText::new("short").truncated(10), "short");
        assert_eq!(
            SafeText::new("x".repeat(5000).as_str())
                .truncated(20)
                .chars()
                .count(),
            20
        );
    }

    #[test]
    fn a_cell_takes_exactly_its_width_whatever_the_script() {
        use unicode_width::UnicodeWidthStr;
        for (text, width) in [
            ("Mei Chen 陈", 12),
            ("Café Étoile 🥐", 16),
            ("नमस्ते दुनिया", 10),
            ("Zoe\u{0308} Mu\u{0308}ller", 12),
            ("山田太郎山田太郎", 7),
            ("山田太郎山田太郎", 6),
            ("plain", 3),
            ("", 4),
        ] {
            let cell = fit_to_width(SafeText::new(text).as_str(), width);
            assert_eq!(cell.width(), width, "{text:?} in {width}: {cell:?}");
        }
        assert_eq!(fit_to_width("陈", 4), "陈  ");
        assert_eq!(SafeText::new("山田太郎").fitted(5), "山田…");
    }
}
