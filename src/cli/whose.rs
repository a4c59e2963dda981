//! `civikey whose`: which contact holds a key, on one profile or every one, read-only; and
//! where the journal saw the key before (a retired key names whose it was and when it
//! was replaced). The lookup is journaled with the key's fingerprint only.

use super::{contact_line, exit, fleet, out, read_secret_line, Failure};
use crate::audit::Journal;
use crate::key::ApiKey;
use crate::store::ContactId;
use crate::timefmt::rfc3339;

/// The key to look up: a hidden prompt on a terminal, else the first line of stdin (at
/// most 4 KiB). Any text is looked up (a leaked value need not be a valid key); only
/// surrounding whitespace is dropped.
fn read_lookup_key() -> Result<ApiKey, Failure> {
    let text = read_secret_line("Key to look up (input hidden): ")?;
    let key = text.trim();
    if key.is_empty() {
        return Err(Failure::new(exit::USAGE, "no key was given on stdin"));
    }
    Ok(ApiKey::from_store(key.to_string()))
}

/// `civikey whose --key-stdin`: who holds this key, on each target, read-only. The key is
/// compared as each store compares (`holders_of`), never printed, logged or journaled:
/// the journal gets a `lookup` record with its fingerprint.
pub fn whose(targets: Vec<fleet::ProfileTarget>, journal: &mut Journal) -> Result<(), Failure> {
    if targets.is_empty() {
        return Err(Failure::new(exit::USAGE, fleet::NO_PROFILES));
    }
    let key = read_lookup_key()?;
    out::note(format_args!(
        "civikey: looking up the key with fingerprint {}",
        journal.short_fingerprint(&key)
    ));
    let width = targets.iter().map(|t| t.label.len()).max().unwrap_or(0);
    let (mut found, mut unreachable) = (0, 0);
    for target in &targets {
        let label = format!("{:<width$}", target.label);
        let result = target.spec.clone().and_then(|spec| {
            let location = spec.location();
            let mut store = spec.open().map_err(|e| e.to_string())?;
            let ids = store.holders_of(&key).map_err(|e| e.to_string())?;
            let mut holders = Vec::with_capacity(ids.len());
            for id in &ids {
                holders.push(store.contact(*id).map_err(|e| e.to_string())?);
            }
            Ok((location, holders))
        });
        match result {
            Ok((location, holders)) => {
                let ids: Vec<ContactId> = holders.iter().map(|c| c.id).collect();
                journal
                    .lookup(&key, &ids, &location, Some(&target.label))
                    .map_err(|e| Failure::new(exit::REFUSED, e.to_string()))?;
                match holders.len() {
                    0 => out::line(format_args!("{label}  {location}  no holder"))?,
                    n => {
                        out::line(format_args!(
                            "{label}  {location}  {n} holder{}{}",
                            if n == 1 { "" } else { "s" },
                            if n > 1 {
                                " (the same key on several contacts: the lowest id logs in)"
                            } else {
                                ""
                            }
                        ))?;
                        for c in &holders {
                            out::line(format_args!("  {}", contact_line(c)))?;
                            out::line(format_args!(
                                "    to rotate: civikey {}rotate {}",
                                target.selector, c.id
                            ))?;
                        }
                    }
                }
                found += holders.len();
            }
            Err(e) => {
                unreachable += 1;
                out::line(format_args!("{label}  unreachable: {e}"))?;
            }
        }
    }
    // The key's past, by its fingerprint: a leaked key no store holds may still be ours.
    let history = journal
        .key_history(&key)
        .map_err(|e| Failure::new(exit::ERROR, e.to_string()))?;
    if found == 0 && !history.is_empty() {
        out::line("not held now; the journal knows this key:")?;
    }
    for spell in &history {
        out::line(format_args!("  {}", spell_line(spell)))?;
    }
    if found > 0 {
        Ok(())
    } else if unreachable > 0 {
        Err(Failure::new(
            exit::ERROR,
            format!(
                "no holder found, but {unreachable} of {} could not be searched",
                targets.len()
            ),
        ))
    } else {
        Err(Failure::new(
            exit::NOT_FOUND,
            if history.is_empty() {
                "no contact holds this key"
            } else {
                "no contact holds this key now (its past in the journal is above)"
            },
        ))
    }
}

/// One stretch of a key in the journal, for `whose`: "set on contact 112 (Ann, profile
/// crm-a) on 2026-12-07T14:02:00Z by alice, replaced on 2026-12-07T14:07:00Z by bob".
fn spell_line(spell: &crate::audit::KeySpell) -> String {
    let place = match &spell.profile {
        Some(profile) => format!("{}, profile {profile}", spell.contact_name),
        None => format!("{}, {}", spell.contact_name, spell.store),
    };
    let set = match &spell.set {
        Some((time, by)) => format!(
            "set on contact {} ({place}) on {} by {by}",
            spell.contact_id,
            rfc3339(*time)
        ),
        None => format!(
            "held by contact {} ({place}), set outside civikey",
            spell.contact_id
        ),
    };
    match &spell.ended {
        Some((time, how, by)) => format!("{set}, {} on {} by {by}", how.as_str(), rfc3339(*time)),
        None => format!("{set}, not replaced since (as far as the journal knows)"),
    }
}
