//! Commands over every profile of the config (`--all-profiles`): the one list of profile
//! targets (each profile's store resolved once, a profile whose secrets cannot be read
//! kept as a reason, never fatal), and running one job per profile concurrently, a
//! bounded number at a time, each under its own deadline, so a site that hangs never
//! holds the others.

use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::store::StoreSpec;

/// One place a command runs: a profile name (or the store address) and how to open it.
#[derive(Clone, Debug)]
pub struct ProfileTarget {
    pub label: String,
    /// The `--profile NAME ` / `--store ADDRESS ` that names it in a command (with its
    /// trailing space), or empty for the default store.
    pub selector: String,
    /// The store, or why it cannot be opened (secrets that cannot be read).
    pub spec: Result<StoreSpec, String>,
}

/// Every profile of the config, in name order; `read_only` stores refuse every write
/// before it is sent. No config: no targets.
pub fn profile_targets(
    config: Option<&Config>,
    data_dir: &Path,
    read_only: bool,
) -> Vec<ProfileTarget> {
    let Some(config) = config else {
        return Vec::new();
    };
    config
        .profile_names()
        .map(|name| ProfileTarget {
            selector: format!("--profile {name} "),
            spec: resolve_profile(config, name, data_dir, read_only),
            label: name.to_string(),
        })
        .collect()
}

/// One profile's store as a run with `--profile NAME` would open it (its secrets read
/// now), `read_only` stores refusing every write before it is sent; or why it cannot be.
/// The TUI's profile picker resolves the profile chosen through this too.
pub fn resolve_profile(
    config: &Config,
    name: &str,
    data_dir: &Path,
    read_only: bool,
) -> Result<StoreSpec, String> {
    config
        .resolve(None, Some(name), data_dir, read_only)
        .map(|r| {
            if read_only {
                r.spec.into_read_only()
            } else {
                r.spec
            }
        })
        .map_err(|e| e.to_string())
}

/// The refusal when the config defines no profile to run on.
pub const NO_PROFILES: &str =
    "no profiles to run on (the config file defines none); `civikey config init` writes a commented one";

/// How many profiles are worked on at once (`check --all-profiles --jobs` changes it for
/// the check). Each waits on its site far more than it computes, so a fleet of up to 64
/// sites is checked in one wave (50 sites within twice the slowest one, where 32 at a
/// time took 2.05 times and 8 took 6.3: docs/PERFORMANCE.md); the bound still caps
/// threads, connections and `cv` processes (`--jobs 8` for many cv profiles on one host).
pub const CONCURRENT_PROFILES: usize = 64;

/// How one profile's job ended.
#[derive(Debug)]
pub enum Ran<T> {
    Done(T),
    /// Its deadline passed: its thread is left behind (it writes nothing the run reads).
    TimedOut,
    /// The job panicked (a bug): the others went on.
    Panicked,
}

/// Runs `job(i)` for `i` in `0..count`, at most `limit` at a time, each on its own thread
/// with its own `timeout` from when it started; the answers in index order. `progress`
/// hears (finished, count) after each one ends. A job past its deadline is abandoned (its
/// slot goes to the next job), so a site that never answers holds neither the others nor
/// the end of the run.
pub fn run_each<T, F>(
    count: usize,
    limit: usize,
    timeout: Duration,
    job: F,
    progress: &mut dyn FnMut(usize, usize),
) -> Vec<Ran<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> T + Send + Sync + 'static,
{
    let job = Arc::new(job);
    let (send, receive) = mpsc::channel::<(usize, Ran<T>)>();
    let mut results: Vec<Option<Ran<T>>> = (0..count).map(|_| None).collect();
    let mut running: Vec<(usize, Instant)> = Vec::new();
    let mut next = 0;
    let mut finished = 0;
    while finished < count {
        while running.len() < limit.max(1) && next < count {
            let (job, send, i) = (Arc::clone(&job), send.clone(), next);
            let started = std::thread::Builder::new()
                .name(format!("profile-{i}"))
                .spawn(move || {
                    let ran =
                        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(i))) {
                            Ok(answer) => Ran::Done(answer),
                            Err(_) => Ran::Panicked,
                        };
                    // The run may have given up on this job: nobody listens then.
                    let _ = send.send((i, ran));
                });
            if started.is_err() {
                results[i] = Some(Ran::Panicked);
                finished += 1;
                progress(finished, count);
            } else {
                running.push((i, Instant::now() + timeout));
            }
            next += 1;
        }
        let Some(&(_, nearest)) = running.iter().min_by_key(|(_, deadline)| *deadline) else {
            continue;
        };
        let wait = nearest.saturating_duration_since(Instant::now());
        match receive.recv_timeout(wait) {
            Ok((i, ran)) => {
                if let Some(at) = running.iter().position(|(j, _)| *j == i) {
                    running.swap_remove(at);
                    results[i] = Some(ran);
                    finished += 1;
                    progress(finished, count);
                }
            }
            Err(_) => {
                let now = Instant::now();
                running.retain(|&(i, deadline)| {
                    if deadline <= now {
                        results[i] = Some(Ran::TimedOut);
                        finished += 1;
                        progress(finished, count);
                        false
                    } else {
                        true
                    }
                });
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or(Ran::Panicked))
        .collect()
}

/// `--timeout`: seconds (`90`), or with a unit (`90s`, `5m`), 1 second to 1 day.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.strip_suffix('m') {
        Some(n) => (n, 60),
        None => (text.strip_suffix('s').unwrap_or(text), 1),
    };
    let secs = number
        .parse::<u64>()
        .ok()
        .map(|n| n * unit)
        .filter(|s| (1..=86_400).contains(s))
        .ok_or_else(|| format!("{text:?} is not a timeout: give seconds (90, 90s) or minutes (5m), 1 second to 1 day"))?;
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_hung_job_times_out_alone_and_the_others_finish() {
        let started = Instant::now();
        let results = run_each(
            6,
            2,
            Duration::from_millis(300),
            |i| {
                if i == 1 {
                    std::thread::sleep(Duration::from_secs(30));
                }
                i * 10
            },
            &mut |_, _| {},
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        for (i, r) in results.iter().enumerate() {
            match (i, r) {
                (1, Ran::TimedOut) => {}
                (i, Ran::Done(v)) if i != 1 => assert_eq!(*v, i * 10),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn no_more_than_the_limit_run_at_once() {
        let live = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (l, m) = (Arc::clone(&live), Arc::clone(&most));
        let results = run_each(
            12,
            3,
            Duration::from_secs(30),
            move |_| {
                let now = l.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(50));
                l.fetch_sub(1, Ordering::SeqCst);
            },
            &mut |_, _| {},
        );
        assert!(results.iter().all(|r| matches!(r, Ran::Done(()))));
        assert_eq!(most.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_panicking_job_is_reported_and_the_run_goes_on() {
        let results = run_each(
            3,
            3,
            Duration::from_secs(30),
            |i| {
                if i == 0 {
                    panic!("bug");
                }
                i
            },
            &mut |_, _| {},
        );
        assert!(matches!(results[0], Ran::Panicked));
        assert!(matches!(results[2], Ran::Done(2)));
    }

    #[test]
    fn timeouts_parse_with_or_without_a_unit() {
        assert_eq!(parse_timeout("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_timeout("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_timeout("5m").unwrap(), Duration::from_secs(300));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("soon").is_err());
    }
}
