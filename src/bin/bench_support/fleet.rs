//! `civikey-bench fleet`: `check --all-profiles` over many REST sites that answer every
//! request after a fixed delay (the in-memory stand-in), against the slowest of the same
//! sites checked alone. The claim it measures (docs/PERFORMANCE.md): the fleet check takes
//! at most twice the slowest single profile.

use std::time::{Duration, Instant};

use civikey::cli::fleet::ProfileTarget;
use civikey::cli::fleet_check::{check_profiles, ProfileCheck};
use civikey::key::ApiKey;
use civikey::store::rest::RestOptions;
use civikey::store::StoreSpec;

use super::rest_in_memory;

pub fn run(args: &[String]) -> Result<(), String> {
    let (mut profiles, mut delay_ms, mut contacts) = (50usize, 100u64, 200u64);
    let mut jobs = civikey::cli::fleet::CONCURRENT_PROFILES;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || -> Result<u64, String> {
            it.next()
                .ok_or(format!("{arg} needs a value"))?
                .parse()
                .map_err(|e| format!("{arg}: {e}"))
        };
        match arg.as_str() {
            "--profiles" => profiles = value()? as usize,
            "--delay-ms" => delay_ms = value()?,
            "--contacts" => contacts = value()?,
            "--jobs" => jobs = value()? as usize,
            other => {
                return Err(format!(
                    "unknown argument {other:?} (fleet [--profiles 50] [--delay-ms 100] [--contacts 200] [--jobs N])"
                ))
            }
        }
    }
    let delay = Duration::from_millis(delay_ms);
    let sites: Vec<_> = (0..profiles)
        .map(|_| rest_in_memory::start(contacts, delay))
        .collect::<Result<_, _>>()?;
    let targets: Vec<ProfileTarget> = sites
        .iter()
        .enumerate()
        .map(|(i, site)| ProfileTarget {
            label: format!("site-{i:02}"),
            selector: String::new(),
            spec: Ok(StoreSpec::Rest(RestOptions {
                base_url: site.url.clone(),
                api_key: ApiKey::from_store("BenchAdminKey0000000000000000000".into()),
                site_key: None,
                timeout: Duration::from_secs(60),
            })
            .into_read_only()),
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("civikey-bench-fleet-{}", std::process::id()));
    let timeout = Duration::from_secs(300);
    let checked = |checks: &[ProfileCheck]| -> Result<(), String> {
        match checks.iter().find(|c| !c.was_checked()) {
            Some(c) => Err(format!("a profile was not checked: {c:?}")),
            None => Ok(()),
        }
    };
    // Each site alone, one after the other: the slowest is the yardstick.
    let mut slowest = Duration::ZERO;
    let mut requests_alone = 0;
    for (target, site) in targets.iter().zip(&sites) {
        let before = site.requests.load(std::sync::atomic::Ordering::SeqCst);
        let start = Instant::now();
        let checks = check_profiles(
            std::slice::from_ref(target),
            &dir,
            None,
            1,
            timeout,
            &mut |_, _| {},
        );
        slowest = slowest.max(start.elapsed());
        checked(&checks)?;
        requests_alone =
            requests_alone.max(site.requests.load(std::sync::atomic::Ordering::SeqCst) - before);
    }
    let start = Instant::now();
    let checks = check_profiles(&targets, &dir, None, jobs, timeout, &mut |_, _| {});
    let fleet = start.elapsed();
    checked(&checks)?;
    let _ = std::fs::remove_dir_all(&dir);
    let ratio = fleet.as_secs_f64() / slowest.as_secs_f64().max(f64::EPSILON);
    println!(
        "profiles={profiles} jobs={jobs} delay_ms={delay_ms} contacts_per_site={contacts} requests_per_site={requests_alone} slowest_single_s={:.2} fleet_s={:.2} ratio={ratio:.2}",
        slowest.as_secs_f64(),
        fleet.as_secs_f64()
    );
    if ratio > 2.0 {
        return Err(format!(
            "the fleet took {ratio:.2} times the slowest single profile (at most 2 claimed)"
        ));
    }
    Ok(())
}
