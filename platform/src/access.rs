//! The access recorder: every API call is written to the access log and the audit chain
//! before its answer leaves the server. Calls arriving together share one store transaction
//! (group commit): a single writer thread takes everything queued, writes it in one durable
//! transaction, then releases all the waiting calls. No call is answered before its record
//! is on disk, and there is no loss window; concurrency only makes the batches larger.

use std::sync::mpsc;
use std::sync::Arc;

use ca::store::Table;
use ca::Authority;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::registry::{access_key, write_access, Access};

/// Most entries in one transaction.
const MAX_BATCH: usize = 512;

struct Job {
    entries: Vec<Access>,
    done: oneshot::Sender<std::result::Result<(), String>>,
}

/// Handle to the writer thread; cheap to clone. The thread ends when every handle is dropped.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Job>,
}

impl Recorder {
    /// Starts the writer thread.
    pub fn start(authority: Arc<Authority>) -> Result<Recorder> {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("pf-access-log".into())
            .spawn(move || run(&authority, rx))
            .map_err(Error::io("start the access-log writer"))?;
        Ok(Recorder { tx })
    }

    /// Records the entries; returns once they are durable.
    pub async fn record(&self, entries: Vec<Access>) -> Result<()> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job { entries, done })
            .map_err(|_| Error::Internal("the access-log writer stopped".into()))?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Internal(format!("access log: {e}"))),
            Err(_) => Err(Error::Internal("the access-log writer stopped".into())),
        }
    }
}

fn run(authority: &Authority, rx: mpsc::Receiver<Job>) {
    // Orders entries of the same instant in the order they were written; starting from the
    // table's size keeps it increasing across restarts (only stored entries count).
    let mut counter = authority.store().count(Table::Access) as u64;
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let mut n = jobs[0].entries.len();
        while n < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => {
                    n += j.entries.len();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        let result = write(authority, &mut counter, &jobs);
        if let Err(e) = &result {
            tracing::error!(error = %e, "access log write failed");
        }
        for j in jobs {
            // A caller that went away (connection closed) no longer waits.
            let _ = j.done.send(result.clone());
        }
    }
}

fn write(
    authority: &Authority,
    counter: &mut u64,
    jobs: &[Job],
) -> std::result::Result<(), String> {
    let mut keyed = Vec::new();
    let mut next = *counter;
    for j in jobs {
        for a in &j.entries {
            if !a.holder.is_empty() {
                next += 1;
            }
            keyed.push((access_key(&a.holder, a.at, next), a.clone()));
        }
    }
    authority
        .store()
        .transact(&|t| write_access(t, &keyed))
        .map_err(|e| e.to_string())?;
    *counter = next;
    Ok(())
}
