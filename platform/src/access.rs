//! The access recorder: every API call is written to the access log and the audit chain
//! before its answer leaves the server. Calls arriving together share one store transaction
//! (group commit): a writer thread takes everything queued, writes it in one durable
//! transaction, then releases all the waiting calls. No call is answered before its record
//! is on disk, and there is no loss window; concurrency only makes the batches larger.
//!
//! One writer thread: measured on 2 cores, a second writer (overlapping one batch's
//! transaction with the other's fsync) made batches smaller and cost more CPU per record than
//! it saved in latency (`BENCHMARKS.md`). `WRITERS` can be raised on larger machines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use ca::Authority;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::registry::{write_access, Access, Usage};

/// Most entries in one transaction.
const MAX_BATCH: usize = 512;
/// Writer threads.
const WRITERS: usize = 1;

struct Job {
    entries: Vec<Access>,
    usage: Vec<Usage>,
    done: oneshot::Sender<std::result::Result<(), String>>,
}

/// Handle to the writer thread(s); cheap to clone. The threads end when every handle is dropped.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Job>,
}

struct Shared {
    authority: Arc<Authority>,
    rx: Mutex<mpsc::Receiver<Job>>,
    /// Orders entries of the same instant in the order they were queued; starting from the
    /// table's size keeps it increasing across restarts.
    counter: AtomicU64,
}

impl Recorder {
    /// Starts the writer threads.
    pub fn start(authority: Arc<Authority>) -> Result<Recorder> {
        let (tx, rx) = mpsc::channel::<Job>();
        let shared = Arc::new(Shared {
            counter: AtomicU64::new(authority.storage().access_count()?),
            authority,
            rx: Mutex::new(rx),
        });
        for i in 0..WRITERS {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("pf-access-log-{i}"))
                .spawn(move || run(&shared))
                .map_err(Error::io("start the access-log writer"))?;
        }
        Ok(Recorder { tx })
    }

    /// Records one API call: its entries (one per holder touched, or one with an empty holder)
    /// go to the access log, one audit record names the call, and its usage is added to the
    /// counters; returns once durable.
    pub async fn record(&self, entries: Vec<Access>, usage: Vec<Usage>) -> Result<()> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job {
                entries,
                usage,
                done,
            })
            .map_err(|_| Error::Internal("the access-log writer stopped".into()))?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Internal(format!("access log: {e}"))),
            Err(_) => Err(Error::Internal("the access-log writer stopped".into())),
        }
    }
}

/// Takes a batch: blocks for the first job, then whatever else is queued.
fn take(shared: &Shared) -> Option<Vec<Job>> {
    let rx = shared.rx.lock().unwrap_or_else(|p| p.into_inner());
    let first = rx.recv().ok()?;
    let mut n = first.entries.len();
    let mut jobs = vec![first];
    while n < MAX_BATCH {
        match rx.try_recv() {
            Ok(j) => {
                n += j.entries.len();
                jobs.push(j);
            }
            Err(_) => break,
        }
    }
    Some(jobs)
}

fn run(shared: &Shared) {
    while let Some(jobs) = take(shared) {
        let calls: Vec<Vec<(u64, Access)>> = jobs
            .iter()
            .map(|j| {
                j.entries
                    .iter()
                    .map(|a| {
                        let seq = shared.counter.fetch_add(1, Ordering::SeqCst) + 1;
                        (seq, a.clone())
                    })
                    .collect()
            })
            .collect();
        let usage = merge_usage(jobs.iter().flat_map(|j| j.usage.iter()));
        let result = shared
            .authority
            .storage()
            .transact(&|t| {
                write_access(t, &calls)?;
                usage.iter().try_for_each(|u| t.add_usage(u))
            })
            .map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::error!(error = %e, "access log write failed");
        }
        for j in jobs {
            // A caller that went away (connection closed) no longer waits.
            let _ = j.done.send(result.clone());
        }
    }
}

/// The usage of a batch of calls, one counter update per key (a batch of many calls of one
/// SP adds to one counter once).
fn merge_usage<'a>(all: impl Iterator<Item = &'a Usage>) -> Vec<Usage> {
    let mut merged: std::collections::BTreeMap<Usage, u64> = Default::default();
    for u in all {
        let key = Usage {
            count: 0,
            ..u.clone()
        };
        *merged.entry(key).or_default() += u.count;
    }
    merged
        .into_iter()
        .map(|(k, count)| Usage { count, ..k })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_of_a_batch_is_merged_per_key() {
        let u = |sp: &str, t: &str, n| Usage {
            month: "2026-11".into(),
            pf: "PF1".into(),
            sp: sp.into(),
            endpoint: "validity".into(),
            cert_type: t.into(),
            count: n,
        };
        let all = [
            u("SP1", "signing", 3),
            u("SP2", "auth", 1),
            u("SP1", "signing", 4),
        ];
        assert_eq!(
            merge_usage(all.iter()),
            vec![u("SP1", "signing", 7), u("SP2", "auth", 1)]
        );
    }
}
