//! Crash safety of store compaction under `jpki serve`: in each round a server holds a fresh
//! copy of a prepared store; a `jpki revoke --batch` client revokes certificates through the
//! admin socket and prints each durable acknowledgement, while `jpki store compact` clients
//! compact the store over and over. The *server* is killed with SIGKILL at a random moment
//! (then the clients). The store is reopened in-process — in some rounds after deleting
//! `db/sled`, so that it is rebuilt from the snapshot and the journal alone — and every
//! acknowledged revocation must be there, every certificate must have its index entries and the
//! audit chain must be intact. Rounds whose sled was kept are checked a second time with sled
//! deleted: whatever the crash left, snapshot + journal must hold the whole store.
//!
//! `JPKI_CRASH_SEED=N` replays a seed's kill times and choices (the interleaving itself is not
//! reproducible). A failing round's store, as the crash left it, is kept and its path printed.

mod common;
mod crash_common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crash_common::{compact_loop, jpki, Compactions, Serve};

use ca::clock::SystemClock;
use ca::Authority;
use policies::{Hierarchy, Sex};

/// Residents with a certificate in each hierarchy: the certificates the batch revokes.
const HOLDERS: usize = 24;
/// Residents without certificates: bulk, so that a compaction takes long enough to be killed in.
const BULK: usize = 400;
/// Rounds always run, however slow the machine: the test counts rounds, not speed.
const MIN_ROUNDS: usize = 8;
/// More rounds start while the test is younger than this, or until every kind of kill below
/// has happened at least once (up to `MAX_ROUNDS`).
const BUDGET: Duration = Duration::from_secs(30);
const MAX_ROUNDS: usize = 60;
/// Loops of `jpki store compact` clients per round. Two, so that compactions are requested
/// while another runs (the store runs them one at a time).
const COMPACTORS: usize = 2;

/// One round's clients and what they printed.
struct Round {
    revoker: Child,
    compactors: Vec<std::thread::JoinHandle<Compactions>>,
    alive: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

struct Outcome {
    acked: Vec<String>,
    /// The revoke client exited on its own (finished, or failed while the server was alive).
    revoker_exit: Option<(bool, String)>,
    compactions: Vec<Compactions>,
}

impl Round {
    fn start(data: &Path, list: &Path, compactors: usize) -> Round {
        let revoker = jpki(data)
            .args(["revoke", "--reason", "keyCompromise", "--batch"])
            .arg(list)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let alive = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let compactors = (0..compactors)
            .map(|_| {
                let (data, alive, stop) = (data.to_owned(), Arc::clone(&alive), Arc::clone(&stop));
                std::thread::spawn(move || compact_loop(data, alive, stop))
            })
            .collect();
        Round {
            revoker,
            compactors,
            alive,
            stop,
        }
    }

    /// Stops the clients after `kill` (SIGKILL of the server) has run.
    fn finish(mut self, kill: impl FnOnce()) -> Outcome {
        // Whether the batch had ended before the kill, judged before anything is killed.
        let before = self.revoker.try_wait().unwrap();
        self.alive.store(false, Ordering::SeqCst);
        self.stop.store(true, Ordering::SeqCst);
        kill();
        let _ = self.revoker.kill();
        self.revoker.wait().unwrap();
        let (mut out, mut err) = (String::new(), String::new());
        if let Some(mut stdout) = self.revoker.stdout.take() {
            stdout.read_to_string(&mut out).unwrap();
        }
        self.revoker
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let compactions = self
            .compactors
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        Outcome {
            acked: out
                .lines()
                .filter_map(|l| l.strip_prefix("revoked "))
                .map(str::to_owned)
                .collect(),
            revoker_exit: before.map(|st| (st.success(), err)),
            compactions,
        }
    }
}

/// The base store: CA, holders with a certificate in each hierarchy, bulk residents; compacted
/// once halfway, so that every round starts with a snapshot and a non-empty journal.
fn prepare(base: &Path) -> Vec<String> {
    // Random serials: the batch names serials without their hierarchy, and sequential
    // counters (the default) repeat the same serials in both hierarchies.
    let policy = common::random_serials_policy();
    let a = Authority::init(
        base,
        &policy,
        common::PASS.as_bytes(),
        Arc::new(SystemClock),
    )
    .unwrap();
    let resident = |name: String| ca::authority::NewResident {
        name,
        birth: time::macros::date!(1980 - 01 - 01),
        sex: Sex::Female,
        address: "東京都千代田区霞が関２－１－２".into(),
        prefecture: "Tokyo".into(),
        municipality: "Chiyoda-ku".into(),
        card_expiry: time::macros::date!(2036 - 01 - 01),
    };
    // Holder keys on both cores.
    let csrs: Vec<Vec<u8>> = std::thread::scope(|s| {
        let half =
            |n: usize| s.spawn(move || (0..n).map(|_| common::rsa_csr()).collect::<Vec<_>>());
        let total = HOLDERS * Hierarchy::ALL.len();
        let (x, y) = (half(total / 2), half(total - total / 2));
        let mut v = x.join().unwrap();
        v.extend(y.join().unwrap());
        v
    });
    // Bulk residents from a few threads: the store's group commit batches them.
    std::thread::scope(|s| {
        for t in 0..4 {
            let (a, resident) = (&a, &resident);
            s.spawn(move || {
                for i in 0..BULK / 4 {
                    a.resident_add(&resident(format!("住民　{t}-{i}"))).unwrap();
                }
            });
        }
    });
    a.handle(ca::api::Request::StoreCompact).unwrap();
    let mut csrs = csrs.into_iter();
    let mut serials = Vec::new();
    for i in 0..HOLDERS {
        let id = a.resident_add(&resident(format!("試験　{i}"))).unwrap();
        for h in Hierarchy::ALL {
            serials.push(a.issue(&id, h, &csrs.next().unwrap()).unwrap().serial);
        }
    }
    serials
}

#[test]
fn compaction_under_serve_never_loses_an_acknowledged_revocation() {
    let test_start = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let serials = prepare(&base);
    let certs = serials.len() + 4; // plus both roots and both OCSP signers
    let list = tmp.path().join("serials.txt");
    std::fs::write(&list, serials.join("\n")).unwrap();
    assert!(base.join("db/snapshot").is_file() && base.join("db/sled").is_dir());
    println!(
        "prepared {} certificates and {} residents in {} ms",
        serials.len(),
        HOLDERS + BULK,
        test_start.elapsed().as_millis()
    );

    let mut rng = common::Rng::seeded();
    let seed = rng.0;

    // One uninterrupted round, stopped cleanly: how long the batch takes under compaction, so
    // that kills land across its whole run, and a check that nothing fails without a crash.
    let (first_ack, full) = {
        let data = tmp.path().join("timing");
        common::copy_dir(&base, &data);
        let mut serve = Serve::start(&data);
        let t0 = Instant::now();
        let mut round = Round::start(&data, &list, COMPACTORS);
        let mut acked = Vec::new();
        let mut first_ack = None;
        for line in BufReader::new(round.revoker.stdout.take().unwrap()).lines() {
            first_ack.get_or_insert(t0.elapsed().as_millis() as u64);
            acked.extend(line.unwrap().strip_prefix("revoked ").map(str::to_owned));
        }
        let st = round.revoker.wait().unwrap();
        let full = t0.elapsed().as_millis() as u64 + 1;
        let out = round.finish(|| {
            common::unsafe_kill(serve.child.id(), "TERM");
            let st = serve.child.wait().unwrap();
            assert!(st.success(), "serve: {st}: {}", serve.log());
        });
        assert!(
            st.success(),
            "revoke --batch failed: {:?}",
            out.revoker_exit
        );
        assert_eq!(acked.len(), serials.len());
        for c in &out.compactions {
            assert!(c.failed_alive.is_empty(), "{:?}", c.failed_alive);
        }
        let first_ack = first_ack.unwrap();
        println!(
            "an uninterrupted batch through serve takes {full} ms (first acknowledgement after \
             {first_ack} ms); {} compactions ran meanwhile",
            out.compactions.iter().map(|c| c.done).sum::<usize>()
        );
        common::check_store(&data, &acked, certs).unwrap();
        std::fs::remove_dir_all(&data).unwrap();
        (first_ack, full)
    };

    let (mut rounds, mut partial, mut mid_compaction, mut in_flight) = (0, 0, 0, 0);
    let (mut rebuilt, mut rebuilt_from_snapshot, mut compactions, mut aimed) = (0, 0, 0, 0);
    while rounds < MAX_ROUNDS
        && (rounds < MIN_ROUNDS
            || partial == 0
            || rebuilt == 0
            || aimed == 0
            || test_start.elapsed() < BUDGET)
    {
        rounds += 1;
        let data = tmp.path().join(format!("round{rounds}"));
        common::copy_dir(&base, &data);
        let mut serve = Serve::start(&data);
        let db = data.join("db");
        let round = Round::start(&data, &list, COMPACTORS);
        let t0 = Instant::now();
        // A third of the rounds anywhere from the start to a little after the batch
        // (compactions alone), a third while acknowledgements are coming, a third aimed at a
        // compaction: once the server has begun writing a snapshot, up to 12 ms later (writing
        // it, renaming it, shortening the journal).
        let how = match rng.next() % 3 {
            0 => {
                std::thread::sleep(Duration::from_millis(rng.next() % (full + full / 4)));
                "at random"
            }
            1 => {
                let d = first_ack + rng.next() % (full - first_ack).max(1);
                std::thread::sleep(Duration::from_millis(d));
                "during the acknowledgements"
            }
            _ => {
                let extra = Duration::from_micros(rng.next() % 12_000);
                let deadline = Duration::from_millis(2 * full + 500);
                while !db.join("snapshot.tmp").exists() && t0.elapsed() < deadline {
                    std::thread::sleep(Duration::from_micros(200));
                }
                if t0.elapsed() < deadline {
                    aimed += 1;
                }
                std::thread::sleep(extra);
                "aimed at a compaction"
            }
        };
        let out = round.finish(|| serve.sigkill());
        let delay = t0.elapsed().as_millis();
        let server_log = serve.log();
        drop(serve);

        let context = format!(
            "seed {seed}, round {rounds}: serve killed {how}, {delay} ms after the clients started"
        );
        if let Some((ok, err)) = &out.revoker_exit {
            assert!(
                ok,
                "{context}: revoke --batch failed while serve ran: {err}"
            );
        }
        for c in &out.compactions {
            assert!(
                c.failed_alive.is_empty(),
                "{context}: store compact failed while serve ran: {:?}\nserve: {server_log}",
                c.failed_alive
            );
            compactions += c.done;
        }
        if !out.acked.is_empty() && out.acked.len() < serials.len() {
            partial += 1;
        }
        if out.compactions.iter().any(|c| c.in_flight) {
            in_flight += 1;
        }
        // A compaction's files, unfinished: the kill landed inside one.
        if db.join("snapshot.tmp").exists() || db.join("journal.tmp").exists() {
            mid_compaction += 1;
        }
        // Keep what the crash left, for the report of a failure.
        let evidence = tmp.path().join(format!("round{rounds}-as-killed"));
        common::copy_dir(&data, &evidence);

        let rebuild = rng.next().is_multiple_of(2);
        let result = if rebuild {
            rebuilt += 1;
            if db.join("snapshot").exists() {
                rebuilt_from_snapshot += 1;
            }
            std::fs::remove_dir_all(db.join("sled")).unwrap();
            common::check_store(&data, &out.acked, certs)
                .map_err(|e| format!("{e} (sled deleted after the kill)"))
        } else {
            common::check_store(&data, &out.acked, certs).and_then(|()| {
                // Snapshot + journal alone must hold the store too.
                std::fs::remove_dir_all(db.join("sled")).unwrap();
                common::check_store(&data, &out.acked, certs)
                    .map_err(|e| format!("{e} (second open, sled deleted after a clean reopen)"))
            })
        };
        if let Err(e) = result {
            let kept = tmp.keep();
            panic!(
                "{context}: {e}\n{} acknowledged; the store as killed is kept in {}\nserve: {server_log}",
                out.acked.len(),
                kept.join(format!("round{rounds}-as-killed")).display()
            );
        }
        std::fs::remove_dir_all(&data).unwrap();
        std::fs::remove_dir_all(&evidence).unwrap();
    }
    println!(
        "{rounds} rounds in {} ms: {partial} killed mid-batch, {aimed} aimed at a compaction, \
         {mid_compaction} left a compaction's files unfinished, {in_flight} with a compaction \
         client running; {compactions} compactions acknowledged; {rebuilt} rebuilt after the \
         kill ({rebuilt_from_snapshot} from a snapshot)",
        test_start.elapsed().as_millis()
    );
    assert!(rounds >= MIN_ROUNDS, "only {rounds} rounds");
    assert!(
        partial >= 1,
        "no round was killed in the middle of the batch"
    );
    assert!(rebuilt >= 1, "no round rebuilt the store after the kill");
    assert!(
        aimed >= 1,
        "no round was killed while a snapshot was being written"
    );
}
