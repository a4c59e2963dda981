//! Runs Cmds that touch the store on a plain thread and sends the answers back as Msgs.
//!
//! The worker owns the store, so the UI thread can never block on it. A newer search
//! replaces any search still queued, so typing fast costs one query, not one per key.

use std::sync::mpsc::{Receiver, Sender};
use std::thread::JoinHandle;

use super::{Cmd, Msg};
use crate::key::{KeySource, OsKeySource};
use crate::rotation::{self, NewKey};
use crate::store::spec::StoreSpec;
use crate::store::ContactStore;

pub fn spawn(
    spec: StoreSpec,
    jobs: Receiver<Cmd>,
    results: Sender<Msg>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("civikey-store".into())
        .spawn(move || run(spec, jobs, results))
}

fn run(spec: StoreSpec, jobs: Receiver<Cmd>, results: Sender<Msg>) {
    let mut store: Option<Box<dyn ContactStore>> = None;
    let mut keys = OsKeySource;
    while let Ok(mut job) = jobs.recv() {
        // Skip searches that a newer one has made pointless.
        while is_new_search(&job) {
            match jobs.try_recv() {
                Ok(newer) if is_new_search(&newer) => job = newer,
                Ok(other) => {
                    // Not a search: run the pending search first, then this one, in order.
                    if let Some(msg) = execute(&spec, &mut store, &mut keys, job) {
                        if results.send(msg).is_err() {
                            return;
                        }
                    }
                    job = other;
                    break;
                }
                Err(_) => break,
            }
        }
        if let Some(msg) = execute(&spec, &mut store, &mut keys, job) {
            if results.send(msg).is_err() {
                return;
            }
        }
    }
}

fn is_new_search(cmd: &Cmd) -> bool {
    matches!(cmd, Cmd::Search { append: false, .. })
}

fn execute(
    spec: &StoreSpec,
    store: &mut Option<Box<dyn ContactStore>>,
    keys: &mut dyn KeySource,
    cmd: Cmd,
) -> Option<Msg> {
    if let Cmd::OpenStore = cmd {
        return Some(Msg::StoreOpened(match spec.open() {
            Ok(opened) => {
                let info = opened.info();
                *store = Some(opened);
                Ok(info)
            }
            Err(e) => Err(e.to_string()),
        }));
    }
    let store = store.as_mut()?;
    let store: &mut dyn ContactStore = store.as_mut();
    Some(match cmd {
        Cmd::Search { seq, append, query } => Msg::Searched {
            seq,
            append,
            result: store.search(&query).map_err(|e| e.to_string()),
        },
        Cmd::Assign {
            id,
            expectation,
            key,
        } => Msg::Assigned {
            result: rotation::assign(store, keys, id, &expectation, NewKey::Generated(key))
                .map_err(|e| e.to_string()),
        },
        Cmd::Revoke { id, expectation } => Msg::Revoked {
            result: rotation::revoke(store, id, &expectation).map_err(|e| e.to_string()),
        },
        Cmd::Refresh { id } => Msg::Refreshed {
            result: store.contact(id).map_err(|e| e.to_string()),
        },
        Cmd::OpenStore | Cmd::CopyToClipboard(_) => return None,
    })
}
