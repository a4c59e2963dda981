//! `civikey check --all-profiles`: every profile's key health check at once (through
//! `crate::health::check`, the one check), one line per profile and one summary, for cron
//! and monitoring. Exit 6 when any site has findings, 1 when a site could not be checked
//! and none has findings.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::fleet::{self, ProfileTarget, Ran};
use super::{exit, out, plural, Failure};
use crate::audit::{Actor, Journal};
use crate::health::{Code, Report, Severity};

/// How one profile's check ended.
#[derive(Debug)]
pub enum ProfileCheck {
    Checked {
        location: String,
        report: Report,
    },
    /// Could not be checked: the store did not open or answer, or its secrets could not
    /// be read (the reason, made safe by the store's error policy).
    Failed(String),
    /// It took longer than the profile's own timeout.
    TimedOut(Duration),
}

impl ProfileCheck {
    pub fn has_findings(&self) -> bool {
        matches!(self, ProfileCheck::Checked { report, .. } if !report.findings.is_empty())
    }

    pub fn was_checked(&self) -> bool {
        matches!(self, ProfileCheck::Checked { .. })
    }
}

/// Checks every target, `jobs` at a time, each within `timeout`;
/// with `max_age_days`, ages come from the journal in `data_dir` (each profile reads its
/// own store's records). `progress` hears (finished, count).
pub fn check_profiles(
    targets: &[ProfileTarget],
    data_dir: &Path,
    max_age_days: Option<u32>,
    jobs: usize,
    timeout: Duration,
    progress: &mut dyn FnMut(usize, usize),
) -> Vec<ProfileCheck> {
    let profiles: Vec<(String, Result<crate::store::StoreSpec, String>)> = targets
        .iter()
        .map(|t| (t.label.clone(), t.spec.clone()))
        .collect();
    let data_dir: PathBuf = data_dir.to_path_buf();
    let options = crate::health::Options {
        max_age_days,
        now: super::unix_now(),
    };
    let job = move |i: usize| -> Result<(String, Report), String> {
        let (label, spec) = &profiles[i];
        let spec = spec.clone()?;
        let location = spec.location();
        let mut store = spec.open().map_err(|e| e.to_string())?;
        let journal = match max_age_days {
            Some(_) => Some(
                Journal::open(&data_dir, Actor::from_env(&location, Some(label)))
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        let report =
            crate::health::check(store.as_mut(), journal.as_ref(), options, &mut |_, _| {})
                .map_err(|e| e.to_string())?;
        Ok((location, report))
    };
    fleet::run_each(targets.len(), jobs, timeout, job, progress)
        .into_iter()
        .map(|ran| match ran {
            Ran::Done(Ok((location, report))) => ProfileCheck::Checked { location, report },
            Ran::Done(Err(reason)) => ProfileCheck::Failed(reason),
            Ran::TimedOut => ProfileCheck::TimedOut(timeout),
            Ran::Panicked => ProfileCheck::Failed("the check stopped on an internal error".into()),
        })
        .collect()
}

/// Findings by severity, most urgent first: `2 critical, 1 medium`.
fn by_severity(report: &Report) -> String {
    let mut counts: Vec<(Severity, usize)> = Vec::new();
    for f in &report.findings {
        let severity = f.code.severity();
        match counts.iter_mut().find(|(s, _)| *s == severity) {
            Some((_, n)) => *n += 1,
            None => counts.push((severity, 1)),
        }
    }
    counts.sort();
    counts
        .iter()
        .map(|(s, n)| format!("{n} {}", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One profile's line: its name, what happened, and the check's own summary.
pub fn profile_line(label: &str, width: usize, check: &ProfileCheck) -> String {
    match check {
        ProfileCheck::Checked { location, report } if report.findings.is_empty() => {
            format!(
                "{label:<width$}  ok         {location}  {}",
                report.summary()
            )
        }
        ProfileCheck::Checked { location, report } => format!(
            "{label:<width$}  FINDINGS   {location}  {}: {}",
            by_severity(report),
            report.summary()
        ),
        ProfileCheck::Failed(reason) => {
            format!("{label:<width$}  UNCHECKED  could not be checked: {reason}")
        }
        ProfileCheck::TimedOut(after) => format!(
            "{label:<width$}  UNCHECKED  no answer within {} s (--timeout)",
            after.as_secs()
        ),
    }
}

/// One profile's JSON object: `check --json`'s document with the profile and its status,
/// or the reason it could not be checked.
pub fn profile_json(label: &str, check: &ProfileCheck) -> serde_json::Value {
    match check {
        ProfileCheck::Checked { location, report } => {
            let mut doc = super::check_json(report, location);
            doc["profile"] = serde_json::json!(label);
            doc["status"] = serde_json::json!(if report.findings.is_empty() {
                "ok"
            } else {
                "findings"
            });
            doc["by_severity"] = serde_json::json!([
                Severity::Critical,
                Severity::High,
                Severity::Medium,
                Severity::Low
            ]
            .iter()
            .map(|s| (
                s.as_str().to_string(),
                serde_json::json!(report
                    .findings
                    .iter()
                    .filter(|f| f.code.severity() == *s)
                    .count())
            ))
            .collect::<serde_json::Map<_, _>>());
            doc
        }
        ProfileCheck::Failed(reason) => serde_json::json!({
            "profile": label,
            "status": "unchecked",
            "error": reason,
        }),
        ProfileCheck::TimedOut(after) => serde_json::json!({
            "profile": label,
            "status": "timeout",
            "error": format!("no answer within {} s", after.as_secs()),
        }),
    }
}

/// The line under the table: how many profiles had findings, could not be checked, were clean.
pub fn summary(checks: &[ProfileCheck]) -> String {
    let findings = checks.iter().filter(|c| c.has_findings()).count();
    let unchecked = checks.iter().filter(|c| !c.was_checked()).count();
    let clean = checks.len() - findings - unchecked;
    let total_findings: usize = checks
        .iter()
        .map(|c| match c {
            ProfileCheck::Checked { report, .. } => report.findings.len(),
            _ => 0,
        })
        .sum();
    format!(
        "{}: {findings} with findings ({}), {unchecked} could not be checked, {clean} clean",
        plural(checks.len(), "profile", "profiles"),
        plural(total_findings, "finding", "findings"),
    )
}

/// The exit code scripts see: 6 when any site has findings, else 1 when any could not be
/// checked, else 0.
pub fn outcome(checks: &[ProfileCheck]) -> Result<(), Failure> {
    if checks.iter().any(ProfileCheck::has_findings) {
        Err(Failure::quiet(exit::FINDINGS))
    } else if checks.iter().any(|c| !c.was_checked()) {
        Err(Failure::quiet(exit::ERROR))
    } else {
        Ok(())
    }
}

/// How `check --all-profiles` runs.
#[derive(Clone, Copy, Debug)]
pub struct FleetOptions {
    pub max_age_days: Option<u32>,
    pub json: bool,
    /// How many profiles at once.
    pub jobs: usize,
    /// Each profile's own time limit.
    pub timeout: Duration,
}

/// `civikey check --all-profiles`.
pub fn check_all(
    targets: Vec<ProfileTarget>,
    data_dir: &Path,
    options: FleetOptions,
) -> Result<(), Failure> {
    let FleetOptions {
        max_age_days,
        json,
        jobs,
        timeout,
    } = options;
    if targets.is_empty() {
        return Err(Failure::new(exit::USAGE, fleet::NO_PROFILES));
    }
    let checks = check_profiles(
        &targets,
        data_dir,
        max_age_days,
        jobs,
        timeout,
        &mut |done, count| {
            out::progress(
                format_args!("civikey: checked {done} of {count} profiles…"),
                done == count,
            )
        },
    );
    let width = targets.iter().map(|t| t.label.len()).max().unwrap_or(0);
    for (target, check) in targets.iter().zip(&checks) {
        if json {
            out::json(&profile_json(&target.label, check))?;
        } else {
            out::line(profile_line(&target.label, width, check))?;
        }
    }
    if !json {
        // What each code found means, once per code, for the operator reading.
        if out::stdout_is_terminal() {
            for code in Code::ALL {
                let found = checks.iter().any(
                    |c| matches!(c, ProfileCheck::Checked { report, .. } if report.count(code) > 0),
                );
                if found {
                    out::line(format_args!("{}: {}", code.as_str(), code.advice()))?;
                }
            }
        }
    }
    let text = format!("civikey check: {}", summary(&checks));
    if out::stdout_is_terminal() && !json {
        out::line(text)?;
    } else {
        out::note(text);
    }
    outcome(&checks)
}
