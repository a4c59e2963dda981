//! `civikey check`: the key health report as lines (the findings through one buffer) or
//! one JSON document, and its exit code (6 when there are findings). The check itself is
//! `health.rs`; `check --all-profiles` is `fleet_check.rs`, which reuses `check_json`.

use super::{contact_json, exit, out, wants_header, Failure};
use crate::audit::Journal;
use crate::sanitize::fit_to_width;
use crate::store::ContactStore;
use crate::timefmt::unix_now;

fn finding_json(f: &crate::health::Finding) -> serde_json::Value {
    serde_json::json!({
        "code": f.code.as_str(),
        "severity": f.severity.as_str(),
        "contact": contact_json(&f.contact),
        "key": f.key.masked(),
        "detail": f.detail.as_str(),
        "rule": f.rule.map(|r| r.as_str()),
        "holders": f.holders,
        "remedy": f.code.remedy().as_str(),
        "advice": f.advice,
        "command": f.command(),
    })
}

fn finding_line(f: &crate::health::Finding) -> String {
    let name = if f.contact.is_deleted {
        format!("[deleted] {}", f.contact.display_name)
    } else {
        f.contact.display_name.to_string()
    };
    format!(
        "{:<8}  {:<23}  {:>8}  {}  {:<8}  {:<24}  {}",
        f.severity.as_str(),
        f.code.as_str(),
        f.contact.id,
        fit_to_width(&name, 24),
        f.key.masked(),
        f.command(),
        f.detail,
    )
}

/// `check --json`'s document: `{"findings": [...], "summary": {...}}`.
pub fn check_json(report: &crate::health::Report, location: &str) -> serde_json::Value {
    let by_code: serde_json::Map<String, serde_json::Value> = crate::health::Code::ALL
        .iter()
        .map(|c| (c.as_str().to_string(), serde_json::json!(report.count(*c))))
        .collect();
    serde_json::json!({
        "findings": report.findings.iter().map(finding_json).collect::<Vec<_>>(),
        "summary": {
            "store": location,
            "holders": report.holders,
            "findings": report.findings.len(),
            "contacts_flagged": report.contacts_flagged(),
            "by_code": by_code,
            "max_age_days": report.max_age_days,
            "standing_unknown": report.standing_unknown,
            "users_unreadable": report.users_unreadable(),
            "text": report.summary(),
        },
    })
}

/// `civikey check`: the key health report. Findings are data (stdout); exit code 6 says
/// there are some. As `list` and `audit`: the header row and the advice only on a terminal
/// (unless `no_header`), the summary once, on stderr when stdout is not a terminal.
pub fn check(
    store: &mut dyn ContactStore,
    journal: Option<&Journal>,
    max_age_days: Option<u32>,
    json: bool,
    no_header: bool,
) -> Result<(), Failure> {
    let options = crate::health::Options {
        max_age_days,
        now: unix_now(),
    };
    let terminal = out::stderr_is_terminal();
    let mut last_noted = 0;
    let report = crate::health::check(store, journal, options, &mut |read, _| {
        // Every page on a terminal; in a log, every 10,000 holders.
        if terminal || read >= last_noted + 10_000 {
            out::progress(format_args!("civikey: read {read} key holders…"), false);
            last_noted = read;
        }
    })?;
    if terminal {
        out::progress(
            format_args!("civikey: read {} key holders", report.holders),
            true,
        );
    }
    if json {
        out::json(&check_json(&report, store.info().location.as_str()))?;
    } else {
        let terminal = out::stdout_is_terminal();
        if wants_header(no_header) && !report.findings.is_empty() {
            out::line(format_args!(
                "{:<8}  {:<23}  {:>8}  {:<24}  {:<8}  {:<24}  DETAIL",
                "SEVERITY", "CODE", "ID", "NAME", "KEY", "TO FIX"
            ))?;
        }
        out::lines(report.findings.iter().map(finding_line))?;
        if terminal {
            // What each code found means to do, once per code and advice: for the operator
            // reading (a blocked Standalone user's key has its own).
            let mut told = std::collections::HashSet::new();
            for f in &report.findings {
                if told.insert((f.code, f.advice)) {
                    out::line(format_args!("{}: {}", f.code.as_str(), f.advice))?;
                }
            }
            out::line(format_args!("civikey check: {}", report.summary()))?;
        } else {
            out::note(format_args!("civikey check: {}", report.summary()));
        }
    }
    if report.findings.is_empty() {
        Ok(())
    } else {
        // The summary said it (or the JSON holds it).
        Err(Failure::quiet(exit::FINDINGS))
    }
}
