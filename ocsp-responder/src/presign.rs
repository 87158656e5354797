//! The pre-signer's bookkeeping: the bounded queue of answers coming due, the bound on the
//! signing rate, and the durable cursor of the issuance feed. The flow that uses them
//! ([`crate::Responder::run_presigner`]) is in [`crate::responder`]; this module knows
//! nothing of the responder (it is imported by it, never the other way).
//!
//! **Why a queue filled by a periodic scan.** A pass that asks the answer store for each
//! certificate's answer (two random reads, a decode and a splice each) every minute costs
//! O(N) in the background whatever there is to sign. Instead the stored answers' headers are
//! read sequentially once per window ([`crate::stored::AnswerStore::for_each_meta`]), and the
//! ones that come due within the window are kept here, ordered by nextUpdate, and signed when
//! due. The queue holds at most `bound` = presign rate × window entries (what the pre-signer
//! can sign in one window anyway): memory does not grow with the number of certificates. A
//! scan that finds more keeps the earliest and says so ([`DueQueue::overflowed`]); the next
//! scan comes as soon as the queue is drained.
//!
//! **Why the cursor is a file beside the answers.** The answers are derived data kept in
//! their own directory (`ocsp-answers/`); the cursor says up to where the issuance feed's
//! certificates have answers there, so it lives and dies with them: a directory set aside or
//! emptied loses both, and the pre-signer walks every certificate once more.

use std::collections::{BinaryHeap, VecDeque};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The longest single sleep: how soon a stop is noticed.
const NAP: Duration = Duration::from_millis(100);

/// Sleeps `d`, in naps, until `stop` is set. Returns false if it was.
pub(crate) fn sleep(d: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + d;
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(NAP));
    }
}

/// At most `rate` signatures a second, evenly spaced (a burst after an idle spell is not
/// allowed: the bound is on the CPU the pre-signer may take at any moment).
pub(crate) struct Pacer {
    interval: Duration,
    next: Instant,
}

impl Pacer {
    pub(crate) fn new(rate: u32) -> Pacer {
        Pacer {
            interval: Duration::from_secs_f64(1.0 / f64::from(rate.max(1))),
            next: Instant::now(),
        }
    }

    /// Waits for the next signature's turn. Returns false if `stop` was set meanwhile.
    pub(crate) fn wait(&mut self, stop: &AtomicBool) -> bool {
        let now = Instant::now();
        if self.next > now && !sleep(self.next - now, stop) {
            return false;
        }
        self.next = self.next.max(now) + self.interval;
        true
    }
}

/// One stored answer coming due: re-signed when `next_update − resign_margin` is reached.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Due {
    /// nextUpdate, Unix seconds (first: the order of the queue).
    pub(crate) next_update: i64,
    pub(crate) hierarchy: u8,
    pub(crate) alg: u8,
    pub(crate) serial: Box<[u8]>,
}

/// The answers coming due within the window, earliest first, at most `bound` of them.
pub(crate) struct DueQueue {
    bound: usize,
    /// During a scan: the earliest `bound` offered, as a max-heap (the latest on top, to drop).
    scanning: BinaryHeap<Due>,
    queue: VecDeque<Due>,
    overflowed: bool,
}

impl DueQueue {
    pub(crate) fn new(bound: usize) -> DueQueue {
        DueQueue {
            bound: bound.max(1),
            scanning: BinaryHeap::new(),
            queue: VecDeque::new(),
            overflowed: false,
        }
    }

    /// Starts a scan: what it offers replaces the queue at [`DueQueue::end_scan`].
    pub(crate) fn begin_scan(&mut self) {
        self.scanning.clear();
        self.overflowed = false;
    }

    pub(crate) fn offer(&mut self, d: Due) {
        if self.scanning.len() == self.bound {
            self.overflowed = true;
            match self.scanning.peek() {
                Some(top) if *top > d => {
                    self.scanning.pop();
                }
                _ => return,
            }
        }
        self.scanning.push(d);
    }

    pub(crate) fn end_scan(&mut self) {
        let scanned = std::mem::take(&mut self.scanning);
        self.queue = scanned.into_sorted_vec().into();
    }

    /// The earliest entry if its nextUpdate is at or before `until` (Unix seconds).
    pub(crate) fn pop_due(&mut self, until: i64) -> Option<Due> {
        if self.queue.front()?.next_update <= until {
            self.queue.pop_front()
        } else {
            None
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether the last scan found more than `bound` answers coming due (some were left for
    /// the next scan).
    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed
    }
}

/// The first line of a cursor file; the sequence number follows it.
const CURSOR_TAG: &str = "jpki ocsp pre-signer issuance-feed cursor ";

/// The issuance feed's cursor kept in `path` (`None`: no file, or one that does not read as
/// a cursor — then the pre-signer walks every certificate once, as on a first start).
pub(crate) fn read_cursor(path: &Path) -> Option<u64> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(error = %e, path = %path.display(), "the pre-signer's cursor is unreadable; every certificate is walked once");
            return None;
        }
    };
    let n = text
        .strip_prefix(CURSOR_TAG)
        .and_then(|rest| rest.trim_end().parse().ok());
    if n.is_none() {
        tracing::warn!(path = %path.display(), "the pre-signer's cursor file is not a cursor; every certificate is walked once");
    }
    n
}

/// Writes the cursor atomically: a 0600 temporary file beside it, fsynced, renamed over it,
/// and the directory fsynced (so that a crash leaves the old cursor or the new one).
pub(crate) fn write_cursor(path: &Path, n: u64) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        writeln!(f, "{CURSOR_TAG}{n}")?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(t: i64, serial: u8) -> Due {
        Due {
            next_update: t,
            hierarchy: 1,
            alg: 0,
            serial: Box::new([serial]),
        }
    }

    #[test]
    fn the_queue_keeps_the_earliest_within_its_bound_and_pops_them_in_order_when_due() {
        let mut q = DueQueue::new(3);
        q.begin_scan();
        for (t, s) in [(50, 1), (10, 2), (40, 3), (30, 4), (20, 5)] {
            q.offer(due(t, s));
        }
        q.end_scan();
        assert!(q.overflowed());
        assert_eq!(q.len(), 3);
        assert_eq!(q.pop_due(5), None, "nothing due before 10");
        assert_eq!(q.pop_due(25), Some(due(10, 2)));
        assert_eq!(q.pop_due(25), Some(due(20, 5)));
        assert_eq!(q.pop_due(25), None);
        assert_eq!(q.pop_due(100), Some(due(30, 4)));
        assert_eq!(q.pop_due(100), None, "40 and 50 were beyond the bound");
        // A scan within the bound replaces the queue and does not overflow.
        q.begin_scan();
        q.offer(due(7, 9));
        q.end_scan();
        assert!(!q.overflowed());
        assert_eq!(q.pop_due(7), Some(due(7, 9)));
    }

    #[test]
    fn the_cursor_survives_a_rewrite_is_private_and_garbage_is_no_cursor() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("presign-cursor");
        assert_eq!(read_cursor(&path), None);
        write_cursor(&path, 41).unwrap();
        write_cursor(&path, 42).unwrap();
        assert_eq!(read_cursor(&path), Some(42));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!path.with_extension("tmp").exists());
        std::fs::write(&path, "42\n").unwrap();
        assert_eq!(read_cursor(&path), None);
    }

    #[test]
    fn the_pacer_spaces_signatures_and_stops_when_told() {
        let stop = AtomicBool::new(false);
        let mut p = Pacer::new(1_000_000);
        assert!(p.wait(&stop));
        let mut slow = Pacer::new(1);
        assert!(slow.wait(&stop));
        stop.store(true, Ordering::Relaxed);
        assert!(
            !slow.wait(&stop),
            "the second turn is a second away: the stop ends it"
        );
    }
}
