//! The source tree's shape: no import cycles between files of src/ (read from `crate::`
//! and `super::` paths in code, comments and test modules left out). A module and the files
//! it declares may use each other; anything else that goes both ways is one concern split
//! badly, or two concerns that need a third home both import.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Every .rs file under src/ (the bench binary's own tree left out), as module paths.
fn modules(root: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if rel.starts_with("bin") {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let mut parts: Vec<String> = rel
                    .with_extension("")
                    .iter()
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect();
                if matches!(
                    parts.last().map(String::as_str),
                    Some("mod" | "lib" | "main")
                ) {
                    parts.pop();
                }
                out.insert(parts, rel);
            }
        }
    }
    out
}

/// The code of a file without its test module and without comment lines.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path `text` names after `prefix` (`crate::a::b`, `crate::a::{b, c::d}`).
fn paths_after(text: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (at, _) in text.match_indices(prefix) {
        if text[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        let rest = &text[at + prefix.len()..];
        let mut base: Vec<String> = Vec::new();
        let mut word = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            if c.is_alphanumeric() || c == '_' {
                word.push(c);
            } else if c == ':' && chars.peek() == Some(&':') {
                chars.next();
                base.push(std::mem::take(&mut word));
                if chars.peek() == Some(&'{') {
                    let group: String = chars.by_ref().skip(1).take_while(|&c| c != '}').collect();
                    for item in group.split(',') {
                        let first = item.trim().split("::").next().unwrap_or("").trim();
                        let mut p = base.clone();
                        if !first.is_empty() && first != "self" {
                            p.push(first.split_whitespace().next().unwrap().to_string());
                        }
                        out.push(p);
                    }
                    base.clear();
                    break;
                }
            } else {
                break;
            }
        }
        if !word.is_empty() {
            base.push(word);
        }
        if !base.is_empty() {
            out.push(base);
        }
    }
    out
}

#[test]
fn no_import_cycles_between_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&root);
    let resolve = |path: &[String]| -> Option<Vec<String>> {
        (0..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|p| mods.contains_key(p))
    };
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, rel) in &mods {
        let text = code(&fs::read_to_string(root.join(rel)).unwrap());
        // `super` of a file is its folder's module; of a folder's mod.rs, the folder's parent.
        let parent: Vec<String> = module[..module.len().saturating_sub(1)].to_vec();
        let mut named = paths_after(&text, "crate::");
        for p in paths_after(&text, "super::") {
            let mut full = parent.clone();
            full.extend(p);
            named.push(full);
        }
        for p in named {
            if let Some(target) = resolve(&p) {
                // A module and the files it declares may use each other; lib.rs declares all.
                let related = target.is_empty()
                    || module.is_empty()
                    || target.starts_with(module)
                    || module.starts_with(&target);
                if target != *module && !related {
                    edges.entry(module.clone()).or_default().insert(target);
                }
            }
        }
    }
    // A cycle: a file that reaches itself.
    let mut cycles = Vec::new();
    for start in edges.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<(Vec<String>, Vec<Vec<String>>)> = vec![(start.clone(), vec![])];
        while let Some((at, trail)) = stack.pop() {
            for next in edges.get(&at).into_iter().flatten() {
                let mut trail = trail.clone();
                trail.push(next.clone());
                if next == start {
                    cycles.push(
                        std::iter::once(start)
                            .chain(&trail)
                            .map(|m| m.join("::"))
                            .collect::<Vec<_>>()
                            .join(" -> "),
                    );
                } else if seen.insert(next.clone()) {
                    stack.push((next.clone(), trail));
                }
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "import cycles between files:\n{}",
        cycles.join("\n")
    );
}
