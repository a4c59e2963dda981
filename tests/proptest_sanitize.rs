//! Property tests of the sanitizer (scripts/fuzz.sh runs them with many more cases): no
//! control, bidi or invisible character survives `SafeText`, truncation never exceeds its
//! width, and both are idempotent.

mod proptest_support;

use civikey::sanitize::{truncate_to_width, SafeText};
use icu_properties::props::{DefaultIgnorableCodePoint, GeneralCategory};
use icu_properties::{CodePointMapData, CodePointSetData};
use proptest::prelude::*;
use proptest_support::{dangerous, hostile_text, run};
use unicode_width::UnicodeWidthChar;

fn columns(text: &str) -> usize {
    text.chars().map(|c| c.width().unwrap_or(0)).sum()
}

#[test]
fn nothing_dangerous_survives_and_sanitizing_is_idempotent() {
    run("sanitize_text", 512, hostile_text(80), |text| {
        let safe = SafeText::new(&text);
        if let Some(c) = safe.as_str().chars().find(|&c| dangerous(c)) {
            return Err(TestCaseError::fail(format!(
                "U+{:04X} survived in {safe:?}",
                c as u32
            )));
        }
        prop_assert_eq!(&SafeText::new(safe.as_str()), &safe, "not idempotent");
        // Plain text passes unchanged.
        if !text.chars().any(dangerous) {
            prop_assert_eq!(safe.as_str(), text.as_str());
        }
        Ok(())
    });
}

#[test]
fn arbitrary_bytes_come_out_inert() {
    run(
        "sanitize_bytes",
        512,
        prop::collection::vec(any::<u8>(), 0..300),
        |bytes| {
            let safe = SafeText::from_bytes(&bytes);
            prop_assert!(!safe.as_str().chars().any(dangerous), "{safe:?}");
            Ok(())
        },
    );
}

#[test]
fn truncation_fits_its_width_and_is_idempotent() {
    run(
        "sanitize_truncate",
        512,
        (hostile_text(60), 0usize..50),
        |(text, max)| {
            let safe = SafeText::new(&text);
            let cut = safe.truncated(max);
            prop_assert!(
                columns(&cut) <= max,
                "{cut:?} is {} columns, more than {max}",
                columns(&cut)
            );
            if safe.width() <= max {
                prop_assert_eq!(cut.as_str(), safe.as_str(), "cut although it fitted");
            } else if max > 0 {
                prop_assert!(cut.ends_with('…'), "{cut:?} was cut without an ellipsis");
                let kept = cut.trim_end_matches('…');
                prop_assert!(safe.as_str().starts_with(kept), "{cut:?} is not a prefix");
            }
            prop_assert_eq!(truncate_to_width(&cut, max), cut.clone(), "not idempotent");
            prop_assert!(!cut.chars().any(dangerous));
            Ok(())
        },
    );
}

/// Every Default_Ignorable_Code_Point and every General_Category=Cf code point, as ranges,
/// straight from the Unicode data (not from the sanitizer).
fn invisible_ranges() -> Vec<std::ops::RangeInclusive<u32>> {
    let mut ranges: Vec<_> = CodePointSetData::new::<DefaultIgnorableCodePoint>()
        .iter_ranges()
        .collect();
    ranges.extend(
        CodePointMapData::<GeneralCategory>::new().iter_ranges_for_value(GeneralCategory::Format),
    );
    ranges
}

#[test]
fn every_default_ignorable_and_format_character_is_shown() {
    let ranges = invisible_ranges();
    assert!(ranges.len() > 20, "the Unicode data is missing: {ranges:?}");
    let picks = prop::sample::select(ranges)
        .prop_flat_map(|r| r.prop_filter_map("surrogate", char::from_u32));
    run(
        "sanitize_invisible",
        512,
        (hostile_text(20), picks, hostile_text(20)),
        |(before, c, after)| {
            let safe = SafeText::new(&format!("{before}{c}{after}"));
            let shown = format!("<U+{:04X}>", c as u32);
            prop_assert!(
                safe.as_str().contains(&shown),
                "U+{:04X} was not shown: {safe:?}",
                c as u32
            );
            prop_assert!(!safe.as_str().chars().any(dangerous), "{safe:?}");
            prop_assert!(
                !safe.as_str().contains(c),
                "U+{:04X} survived raw: {safe:?}",
                c as u32
            );
            Ok(())
        },
    );
}
