//! The SIGKILL campaign against `jpki serve` (issue #19). One data directory lives through many
//! rounds. In each round a server runs on it while concurrent clients work through its admin
//! socket — `jpki revoke --batch` (keyCompromise), a client issuing certificates (`jpki issue
//! --early-renewal`: each one supersedes its holder's previous certificate of the kind), a
//! client recording register events (a `jpki resident death`, then `move` and a new signing
//! certificate in turn: revocations by rule) and a loop of `jpki store compact` — and the server
//! is killed with SIGKILL after a random number of acknowledgements (counted, not timed) or
//! while it writes a compaction's snapshot, then started again on what the crash left (in some
//! rounds after deleting `db/sled`, so that the store is rebuilt from its snapshot and journal).
//!
//! At the end every acknowledged operation is checked in the store (`jpki cert list` through the
//! restarted server; then the store reopened in-process: indexes, audit chain), in OCSP
//! (`openssl ocsp` against the restarted server, response signature verified) and in the
//! published CRLs (`openssl crl` on the partition files in `DIR/crl/`, signature verified):
//!
//! * an acknowledged revocation — a batch line, an event's revocation, the predecessor an
//!   issuance superseded — is revoked, with its reason, in the store and in OCSP, and listed on
//!   its hierarchy's CRL;
//! * an acknowledged issuance is good, unless an operation attempted later on its holder could
//!   revoke it by rule (a later issuance of the kind: superseded; a move, for a signing
//!   certificate: affiliationChanged; death: cessationOfOperation). If one of those was
//!   acknowledged it is revoked, with the reason of one of them; if none was (each was cut by a
//!   kill), it is good or revoked with such a reason. OCSP says what the store says, and a
//!   revoked one is on the CRL.
//!
//! Rounds: `JPKI_CHAOS_ROUNDS` (default 4 in `cargo test`). The long campaign:
//! `JPKI_CHAOS_ROUNDS=100 cargo test --release --test crash_campaign -- --nocapture`.
//! `JPKI_CRASH_SEED=N` replays a seed's choices (the interleaving itself is not reproducible).

mod common;
mod crash_common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ca::clock::SystemClock;
use ca::Authority;
use policies::{Hierarchy, Sex};

use crash_common::{compact_loop, jpki, Compactions, Serve};

/// Certificates the batch revokes per round.
const REVOKE_PER_ROUND: usize = 4;
/// Holders the issuing client re-issues to, in turn, both kinds.
const ISSUED_HOLDERS: usize = 3;
/// Holders the event client moves and re-issues a signing certificate to, in turn.
const MOVING_HOLDERS: usize = 3;
/// Residents without certificates: bulk, so that a compaction takes a while to be killed in.
const BULK: usize = 200;
/// A round's server is killed after up to this many acknowledgements (all clients together).
const MAX_ACKS_BEFORE_KILL: u64 = 14;
const EARLY: &str = "chaos campaign: re-issue";

/// A certificate: hierarchy and serial (upper-case hex without leading zeros, as compared with
/// what openssl prints).
type CertId = (String, String);

fn cert_id(h: &str, serial: &str) -> CertId {
    let s = serial
        .trim()
        .trim_start_matches("0x")
        .trim_start_matches('0');
    let s = if s.is_empty() { "0" } else { s };
    (h.to_owned(), s.to_ascii_uppercase())
}

/// What the clients and the server share in a round.
#[derive(Default)]
struct Ctl {
    /// Cleared just before the server is killed: a failure seen while set happened while it ran.
    alive: AtomicBool,
    /// Set after the kill: the clients stop (the one running is killed).
    stop: AtomicBool,
    /// Acknowledgements so far (every client).
    acks: AtomicU64,
}

enum Ran {
    /// Exited successfully: durable, with its stdout.
    Acked(String),
    /// Killed, or failed after the server was killed: may or may not have happened.
    Cut,
    /// Failed while the server ran (there must be none).
    Failed(String),
}

/// Runs one `jpki` client to its end, or kills it when the round stops.
fn run_op(mut cmd: Command, ctl: &Ctl) -> Ran {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if ctl.stop.load(Ordering::SeqCst) {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    if status.success() {
        ctl.acks.fetch_add(1, Ordering::SeqCst);
        Ran::Acked(out)
    } else if ctl.alive.load(Ordering::SeqCst) {
        Ran::Failed(err)
    } else {
        Ran::Cut
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum What {
    Issue(Hierarchy),
    Move,
    Death,
}

impl What {
    /// The reason with which this operation revokes a holder's live certificate of `h`, if it
    /// does.
    fn revokes(self, h: Hierarchy) -> Option<&'static str> {
        match self {
            What::Issue(k) if k == h => Some("superseded"),
            What::Move if h == Hierarchy::Signing => Some("affiliationChanged"),
            What::Death => Some("cessationOfOperation"),
            _ => None,
        }
    }
}

/// An operation a client attempted on a holder.
#[derive(Debug)]
struct Op {
    resident: String,
    what: What,
    acked: bool,
    /// An acknowledged issuance's certificate.
    issued: Option<CertId>,
}

/// What one client saw in a round.
#[derive(Default)]
struct Seen {
    ops: Vec<Op>,
    /// Acknowledged revocations, with their reasons.
    revoked: Vec<(CertId, String)>,
    failed_alive: Vec<String>,
    cut: usize,
}

impl Seen {
    /// An event's or an issuance's answer: the revocations it reports.
    fn revocations(&mut self, v: &serde_json::Value) {
        for r in v["revocations"].as_array().into_iter().flatten() {
            let (h, s) = (
                r["hierarchy"].as_str().unwrap(),
                r["serial"].as_str().unwrap(),
            );
            assert_eq!(r["status"], "revoked", "{v}");
            let reason = r["reason"].as_str().unwrap().to_owned();
            self.revoked.push((cert_id(h, s), reason));
        }
    }
}

/// A holder with a CSR file per hierarchy (the same key is re-certified to the same holder).
#[derive(Clone)]
struct Holder {
    id: String,
    csr: [PathBuf; 2],
}

fn hierarchy_index(h: Hierarchy) -> usize {
    Hierarchy::ALL.iter().position(|x| *x == h).unwrap()
}

/// The issuing client: issue after issue, holder after holder, kind after kind, from `n`.
fn issuer(data: PathBuf, holders: Vec<Holder>, mut n: usize, ctl: Arc<Ctl>) -> (Seen, usize) {
    let mut seen = Seen::default();
    while !ctl.stop.load(Ordering::SeqCst) {
        let holder = &holders[n % holders.len()];
        let h = Hierarchy::ALL[(n / holders.len()) % 2];
        n += 1;
        let mut cmd = jpki(&data);
        cmd.args(["issue", "--resident", &holder.id, "--kind", &h.to_string()])
            .arg("--csr")
            .arg(&holder.csr[hierarchy_index(h)])
            .args(["--early-renewal", EARLY, "--json"]);
        let mut op = Op {
            resident: holder.id.clone(),
            what: What::Issue(h),
            acked: false,
            issued: None,
        };
        match run_op(cmd, &ctl) {
            Ran::Acked(out) => {
                let v: serde_json::Value = serde_json::from_str(&out).unwrap();
                op.acked = true;
                op.issued = Some(cert_id(&h.to_string(), v["serial"].as_str().unwrap()));
                if let Some(old) = v["superseded"].as_str() {
                    seen.revoked
                        .push((cert_id(&h.to_string(), old), "superseded".into()));
                }
            }
            Ran::Cut => seen.cut += 1,
            Ran::Failed(e) => seen.failed_alive.push(format!("issue: {e}")),
        }
        seen.ops.push(op);
    }
    (seen, n)
}

/// The event client: the death of `dying` (if any), then a move and a new signing
/// certificate in turn for each of `movers`, from `n`.
fn eventer(
    data: PathBuf,
    dying: Option<String>,
    movers: Vec<Holder>,
    mut n: usize,
    ctl: Arc<Ctl>,
) -> (Seen, usize) {
    let mut seen = Seen::default();
    let record = |seen: &mut Seen, resident: &str, what: What, ran: Ran| {
        let mut op = Op {
            resident: resident.to_owned(),
            what,
            acked: false,
            issued: None,
        };
        match ran {
            Ran::Acked(out) => {
                let v: serde_json::Value = serde_json::from_str(&out).unwrap();
                op.acked = true;
                seen.revocations(&v);
                if let What::Issue(h) = what {
                    op.issued = Some(cert_id(&h.to_string(), v["serial"].as_str().unwrap()));
                    if let Some(old) = v["superseded"].as_str() {
                        seen.revoked
                            .push((cert_id(&h.to_string(), old), "superseded".into()));
                    }
                }
            }
            Ran::Cut => seen.cut += 1,
            Ran::Failed(e) => seen.failed_alive.push(format!("{what:?}: {e}")),
        }
        seen.ops.push(op);
    };
    if let Some(id) = dying {
        let mut cmd = jpki(&data);
        cmd.args(["resident", "death", "--id", &id, "--json"]);
        let ran = run_op(cmd, &ctl);
        record(&mut seen, &id, What::Death, ran);
    }
    while !ctl.stop.load(Ordering::SeqCst) {
        let holder = &movers[n % movers.len()];
        let step = n / movers.len();
        n += 1;
        let mut cmd = jpki(&data);
        let what = if step.is_multiple_of(2) {
            // Two addresses in turn: every move changes the address.
            let address = if (step / 2).is_multiple_of(2) {
                "東京都千代田区永田町１－７－１"
            } else {
                "東京都千代田区霞が関２－１－２"
            };
            cmd.args(["resident", "move", "--id", &holder.id, "--address", address]);
            cmd.arg("--json");
            What::Move
        } else {
            cmd.args([
                "issue",
                "--resident",
                &holder.id,
                "--kind",
                "signing",
                "--csr",
            ])
            .arg(&holder.csr[hierarchy_index(Hierarchy::Signing)])
            .args(["--early-renewal", EARLY, "--json"]);
            What::Issue(Hierarchy::Signing)
        };
        let ran = run_op(cmd, &ctl);
        record(&mut seen, &holder.id, what, ran);
    }
    (seen, n)
}

/// The revoking client: `jpki revoke --batch` over this round's serials, each acknowledgement
/// read as it is printed.
fn revoker(data: PathBuf, list: PathBuf, ctl: Arc<Ctl>) -> Seen {
    let mut child = jpki(&data)
        .args(["revoke", "--reason", "keyCompromise", "--batch"])
        .arg(&list)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let (acked, ctl) = (Arc::clone(&acked), Arc::clone(&ctl));
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some((h, s)) = line
                    .strip_prefix("revoked ")
                    .and_then(|l| l.split_once(':'))
                {
                    ctl.acks.fetch_add(1, Ordering::SeqCst);
                    acked.lock().unwrap().push(cert_id(h, s));
                }
            }
        })
    };
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if ctl.stop.load(Ordering::SeqCst) {
            let _ = child.kill();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    reader.join().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let mut seen = Seen::default();
    match status {
        Some(st) if !st.success() && ctl.alive.load(Ordering::SeqCst) => {
            seen.failed_alive.push(format!("revoke --batch: {err}"))
        }
        Some(st) if st.success() => {}
        _ => seen.cut += 1,
    }
    seen.revoked = std::mem::take(&mut *acked.lock().unwrap())
        .into_iter()
        .map(|c| (c, "keyCompromise".to_owned()))
        .collect();
    seen
}

/// The base store: CA (random serials), the certificates the batches revoke, the dying
/// residents, the issuing client's and the event client's holders, bulk residents; compacted
/// once, so that the first round starts with a snapshot.
struct Prepared {
    /// `hierarchy:serial` lines, `REVOKE_PER_ROUND` per round.
    to_revoke: Vec<String>,
    dying: Vec<String>,
    issued: Vec<Holder>,
    movers: Vec<Holder>,
}

fn prepare(data: &Path, dir: &Path, rounds: usize) -> Prepared {
    let policy = common::random_serials_policy();
    let a = Authority::init(
        data,
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
    let revoke_holders = (rounds * REVOKE_PER_ROUND).div_ceil(2);
    let holders = revoke_holders + rounds + ISSUED_HOLDERS + MOVING_HOLDERS;
    // Holder keys (two each) on both cores.
    let csrs: Vec<Vec<u8>> = std::thread::scope(|s| {
        let half =
            |n: usize| s.spawn(move || (0..n).map(|_| common::rsa_csr()).collect::<Vec<_>>());
        let total = holders * 2;
        let (x, y) = (half(total / 2), half(total - total / 2));
        let mut v = x.join().unwrap();
        v.extend(y.join().unwrap());
        v
    });
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
    let mut csrs = csrs.into_iter();
    let mut holder = |i: usize| -> (String, [Vec<u8>; 2], Vec<String>) {
        let id = a.resident_add(&resident(format!("試験　{i}"))).unwrap();
        let pair = [csrs.next().unwrap(), csrs.next().unwrap()];
        let mut lines = Vec::new();
        for h in Hierarchy::ALL {
            let issued = a.issue(&id, h, &pair[hierarchy_index(h)]).unwrap();
            lines.push(format!("{h}:{}", issued.serial));
        }
        (id, pair, lines)
    };
    let mut to_revoke = Vec::new();
    for i in 0..revoke_holders {
        to_revoke.extend(holder(i).2);
    }
    let dying = (0..rounds).map(|i| holder(1000 + i).0).collect();
    let mut with_files = |i: usize| {
        let (id, pair, _) = holder(i);
        let csr = [0, 1].map(|k| {
            let p = dir.join(format!("{id}-{k}.csr"));
            std::fs::write(&p, &pair[k]).unwrap();
            p
        });
        Holder { id, csr }
    };
    let issued = (0..ISSUED_HOLDERS).map(|i| with_files(2000 + i)).collect();
    let movers = (0..MOVING_HOLDERS).map(|i| with_files(3000 + i)).collect();
    a.handle(ca::api::Request::StoreCompact).unwrap();
    Prepared {
        to_revoke,
        dying,
        issued,
        movers,
    }
}

/// Every certificate of the store, through the server: status and reason.
fn cert_list(data: &Path) -> BTreeMap<CertId, (String, Option<String>)> {
    let mut all = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let mut cmd = jpki(data);
        cmd.args(["cert", "list", "--json", "--limit", "10000"]);
        if let Some(a) = &after {
            cmd.args(["--after", a]);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "cert list: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for c in v["certificates"].as_array().unwrap() {
            all.insert(
                cert_id(
                    c["hierarchy"].as_str().unwrap(),
                    c["serial"].as_str().unwrap(),
                ),
                (
                    c["status"].as_str().unwrap().to_owned(),
                    c["reason"].as_str().map(str::to_owned),
                ),
            );
        }
        match v["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => return all,
        }
    }
}

/// `openssl ocsp` for these certificates of one hierarchy (32 per request): status and reason.
fn ocsp(
    base: &str,
    root: &Path,
    h: &str,
    certs: &[&CertId],
) -> Result<HashMap<CertId, (String, Option<String>)>, String> {
    let mut got = HashMap::new();
    for chunk in certs.chunks(32) {
        let root = root.to_str().unwrap();
        let url = format!("{base}/ocsp");
        let mut args = vec!["ocsp", "-issuer", root, "-CAfile", root, "-url", &url];
        args.extend(["-timeout", "30"]);
        let serials: Vec<String> = chunk.iter().map(|c| format!("0x{}", c.1)).collect();
        for s in &serials {
            args.extend(["-serial", s.as_str()]);
        }
        let (ok, out) = common::openssl_result(&args);
        if !ok || !out.contains("Response verify OK") {
            return Err(format!("openssl ocsp failed: {out}"));
        }
        let mut current: Option<CertId> = None;
        for line in out.lines() {
            if let Some((s, status)) = line.split_once(": ").filter(|_| line.starts_with("0x")) {
                let id = cert_id(h, s);
                got.insert(id.clone(), (status.trim().to_owned(), None));
                current = Some(id);
            } else if let Some(reason) = line.trim().strip_prefix("Reason: ") {
                if let Some(id) = &current {
                    got.get_mut(id).unwrap().1 = Some(reason.to_owned());
                }
            }
        }
    }
    Ok(got)
}

/// The serials on every CRL of a hierarchy in `DIR/crl/<h>/`, each CRL's signature verified
/// against the root by openssl.
fn crl_serials(crl_dir: &Path, root: &Path) -> Result<BTreeSet<String>, String> {
    let mut files = Vec::new();
    let mut dirs = vec![crl_dir.to_owned()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))? {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "crl") {
                files.push(p);
            }
        }
    }
    let mut serials = BTreeSet::new();
    for f in files {
        let (ok, out) = common::openssl_result(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            f.to_str().unwrap(),
            "-CAfile",
            root.to_str().unwrap(),
            "-noout",
            "-text",
        ]);
        if !ok || !out.contains("verify OK") {
            return Err(format!("{}: {out}", f.display()));
        }
        for line in out.lines() {
            if let Some(s) = line.trim().strip_prefix("Serial Number: ") {
                serials.insert(cert_id("", s).1);
            }
        }
    }
    Ok(serials)
}

#[test]
fn acknowledged_operations_survive_sigkills_of_serve_in_store_ocsp_and_crl() {
    let rounds: usize = std::env::var("JPKI_CHAOS_ROUNDS")
        .ok()
        .map(|s| s.parse().expect("JPKI_CHAOS_ROUNDS: a number of rounds"))
        .unwrap_or(4);
    assert!(rounds >= 1);
    let test_start = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let prep = prepare(&data, tmp.path(), rounds);
    let config = tmp.path().join("serve.toml");
    // CRLs rebuilt within a second of a revocation (and at every start, when dirty).
    std::fs::write(
        &config,
        "[crl]\ndirty_bound_seconds = 1\nbatch_delay_seconds = 1\n",
    )
    .unwrap();
    let config_arg = ["--config", config.to_str().unwrap()];
    println!(
        "prepared {} certificates to revoke, {} dying residents, {} + {} holders in {} ms",
        prep.to_revoke.len(),
        prep.dying.len(),
        prep.issued.len(),
        prep.movers.len(),
        test_start.elapsed().as_millis()
    );

    let mut rng = common::Rng::seeded();
    let seed = rng.0;
    let mut ops: Vec<Op> = Vec::new();
    let mut revoked: Vec<(CertId, String)> = Vec::new();
    let (mut issue_n, mut event_n) = (0, 0);
    let (mut cut, mut compactions, mut aimed, mut mid_compaction, mut rebuilt) = (0, 0, 0, 0, 0);
    for round in 1..=rounds {
        let mut serve = Serve::start_with(&data, &config_arg);
        let ctl = Arc::new(Ctl {
            alive: AtomicBool::new(true),
            ..Ctl::default()
        });
        let list = tmp.path().join(format!("revoke-{round}.txt"));
        let slice = &prep.to_revoke[(round - 1) * REVOKE_PER_ROUND..round * REVOKE_PER_ROUND];
        std::fs::write(&list, slice.join("\n")).unwrap();
        let r = {
            let (d, c) = (data.clone(), Arc::clone(&ctl));
            std::thread::spawn(move || revoker(d, list, c))
        };
        let i = {
            let (d, c, hs) = (data.clone(), Arc::clone(&ctl), prep.issued.clone());
            std::thread::spawn(move || issuer(d, hs, issue_n, c))
        };
        let e = {
            let (d, c, ms) = (data.clone(), Arc::clone(&ctl), prep.movers.clone());
            let dying = prep.dying.get(round - 1).cloned();
            std::thread::spawn(move || eventer(d, dying, ms, event_n, c))
        };
        // The compaction loop has its own flags, set with the others'.
        let k = {
            let d = data.clone();
            let alive = Arc::new(AtomicBool::new(true));
            let stop = Arc::new(AtomicBool::new(false));
            let (a2, s2) = (Arc::clone(&alive), Arc::clone(&stop));
            let h = std::thread::spawn(move || compact_loop(d, a2, s2));
            (h, alive, stop)
        };

        // When to kill: after a random number of acknowledgements (however slow the machine),
        // or once the server has begun writing a compaction's snapshot.
        let db = data.join("db");
        let t0 = Instant::now();
        let waited = |cond: &dyn Fn() -> bool| {
            let mut last = (ctl.acks.load(Ordering::SeqCst), Instant::now());
            while !cond() {
                let now = ctl.acks.load(Ordering::SeqCst);
                if now != last.0 {
                    last = (now, Instant::now());
                }
                // A hang guard, not a speed bar: no acknowledgement at all for two minutes.
                assert!(
                    last.1.elapsed() < Duration::from_secs(120),
                    "seed {seed}, round {round}: no acknowledgement for 120 s: {}",
                    serve.log()
                );
                std::thread::sleep(Duration::from_micros(500));
            }
        };
        let how = if rng.next() % 3 < 2 {
            let target = 1 + rng.next() % MAX_ACKS_BEFORE_KILL;
            waited(&|| ctl.acks.load(Ordering::SeqCst) >= target);
            std::thread::sleep(Duration::from_micros(rng.next() % 20_000));
            format!("after {target} acknowledgements")
        } else {
            let cap = 3 * MAX_ACKS_BEFORE_KILL;
            waited(&|| db.join("snapshot.tmp").exists() || ctl.acks.load(Ordering::SeqCst) >= cap);
            if db.join("snapshot.tmp").exists() {
                aimed += 1;
            }
            std::thread::sleep(Duration::from_micros(rng.next() % 12_000));
            "aimed at a compaction".to_owned()
        };
        ctl.alive.store(false, Ordering::SeqCst);
        k.1.store(false, Ordering::SeqCst);
        serve.sigkill();
        ctl.stop.store(true, Ordering::SeqCst);
        k.2.store(true, Ordering::SeqCst);
        let context = format!(
            "seed {seed}, round {round}: serve killed {how}, {} ms after the clients started",
            t0.elapsed().as_millis()
        );
        let server_log = serve.log();
        drop(serve);
        let mut seens = vec![r.join().unwrap()];
        let (s, n) = i.join().unwrap();
        seens.push(s);
        issue_n = n;
        let (s, n) = e.join().unwrap();
        seens.push(s);
        event_n = n;
        let c: Compactions = k.0.join().unwrap();
        assert!(
            c.failed_alive.is_empty(),
            "{context}: store compact failed while serve ran: {:?}\nserve: {server_log}",
            c.failed_alive
        );
        compactions += c.done;
        for s in seens {
            assert!(
                s.failed_alive.is_empty(),
                "{context}: a client failed while serve ran: {:?}\nserve: {server_log}",
                s.failed_alive
            );
            cut += s.cut;
            ops.extend(s.ops);
            revoked.extend(s.revoked);
        }
        if db.join("snapshot.tmp").exists() || db.join("journal.tmp").exists() {
            mid_compaction += 1;
        }
        // A quarter of the restarts rebuild the store from its snapshot and journal alone.
        if rng.next().is_multiple_of(4) {
            rebuilt += 1;
            std::fs::remove_dir_all(db.join("sled")).unwrap();
        }
        println!(
            "{context}; {} operations and {} revocations acknowledged so far",
            ops.iter().filter(|o| o.acked).count(),
            revoked.len()
        );
    }

    // The restarted server: store, OCSP, CRLs.
    let serve = Serve::start_with(&data, &config_arg);
    let store = cert_list(&data);
    let mut problems = Vec::new();
    let mut expect: BTreeMap<CertId, BTreeSet<String>> = BTreeMap::new();
    for (c, reason) in &revoked {
        expect.entry(c.clone()).or_default().insert(reason.clone());
        match store.get(c) {
            Some((s, r)) if s == "revoked" && r.as_deref() == Some(reason.as_str()) => {}
            other => problems.push(format!(
                "acknowledged revocation of {c:?} ({reason}) lost: the store says {other:?}"
            )),
        }
    }
    let mut issued_acked = 0;
    for (n, op) in ops.iter().enumerate() {
        let Some(c) = &op.issued else { continue };
        issued_acked += 1;
        let What::Issue(h) = op.what else {
            unreachable!()
        };
        let later: Vec<(&str, bool)> = ops[n + 1..]
            .iter()
            .filter(|o| o.resident == op.resident)
            .filter_map(|o| o.what.revokes(h).map(|r| (r, o.acked)))
            .collect();
        let allowed: BTreeSet<&str> = later.iter().map(|l| l.0).collect();
        let must_be_revoked = later.iter().any(|l| l.1);
        match store.get(c) {
            None => problems.push(format!("acknowledged issuance {c:?} lost")),
            Some((s, _)) if s == "good" && !must_be_revoked => {}
            Some((s, Some(r))) if s == "revoked" && allowed.contains(r.as_str()) => {}
            Some(other) => problems.push(format!(
                "acknowledged issuance {c:?} is {other:?}; later operations on its holder: {later:?}"
            )),
        }
        expect.entry(c.clone()).or_default();
    }

    // OCSP says what the store says, for every certificate an acknowledgement named.
    let roots: HashMap<String, PathBuf> = Hierarchy::ALL
        .iter()
        .map(|h| {
            let out = jpki(&data)
                .args(["root", "--hierarchy", &h.to_string()])
                .output()
                .unwrap();
            assert!(out.status.success());
            let p = tmp.path().join(format!("{h}-root.pem"));
            std::fs::write(&p, out.stdout).unwrap();
            (h.to_string(), p)
        })
        .collect();
    let mut ocsp_asked = 0;
    for h in Hierarchy::ALL {
        let h = h.to_string();
        let certs: Vec<&CertId> = expect.keys().filter(|c| c.0 == h).collect();
        ocsp_asked += certs.len();
        let answers = ocsp(&serve.base, &roots[&h], &h, &certs).unwrap();
        for c in certs {
            let want = store.get(c).map(|(s, r)| (s.clone(), r.clone()));
            let got = answers.get(c).cloned();
            if got != want {
                problems.push(format!("OCSP says {got:?} for {c:?}, the store {want:?}"));
            }
        }
    }

    // Every revoked certificate an acknowledgement named is on its hierarchy's CRL. The server
    // publishes dirty partitions at start and within a second of a change: wait for them
    // (bounded), then judge.
    let want_listed: Vec<&CertId> = expect
        .keys()
        .filter(|c| store.get(*c).is_some_and(|(s, _)| s == "revoked"))
        .collect();
    let crl_started = Instant::now();
    let missing = loop {
        let mut missing = Vec::new();
        for h in Hierarchy::ALL {
            let h = h.to_string();
            let listed = crl_serials(&data.join("crl").join(&h), &roots[&h]).unwrap();
            missing.extend(
                want_listed
                    .iter()
                    .filter(|c| c.0 == h && !listed.contains(&c.1))
                    .map(|c| (*c).clone()),
            );
        }
        if missing.is_empty() || crl_started.elapsed() > Duration::from_secs(60) {
            break missing;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    for c in missing {
        problems.push(format!("revoked {c:?} is not on its CRL"));
    }

    let st = serve.stop();
    assert!(st.success(), "serve did not stop cleanly: {st}");
    // Reopened in-process: indexes, audit chain, every acknowledged revocation.
    let acked_lines: Vec<String> = revoked
        .iter()
        .map(|((h, s), _)| format!("{h}:{s}"))
        .collect();
    if let Err(e) = common::check_store(&data, &acked_lines, store.len()) {
        problems.push(e);
    }
    let events = ops
        .iter()
        .filter(|o| o.acked && matches!(o.what, What::Move | What::Death))
        .count();
    println!(
        "CAMPAIGN {rounds} rounds in {} s: {rounds} SIGKILLs of serve ({aimed} aimed at a \
         compaction, {mid_compaction} left a compaction's files unfinished), {rebuilt} restarts \
         rebuilt from snapshot + journal; acknowledged: {} revocations ({} by the batch, {} by \
         events, {} superseded), {issued_acked} issuances, {events} register events, \
         {compactions} compactions; {cut} operations cut by a kill; checked {} certificates in \
         the store, {ocsp_asked} in OCSP, {} on the CRLs; {} problems",
        test_start.elapsed().as_secs(),
        revoked.len(),
        revoked.iter().filter(|r| r.1 == "keyCompromise").count(),
        revoked
            .iter()
            .filter(|r| r.1 == "affiliationChanged" || r.1 == "cessationOfOperation")
            .count(),
        revoked.iter().filter(|r| r.1 == "superseded").count(),
        expect.len(),
        want_listed.len(),
        problems.len()
    );
    assert!(
        problems.is_empty(),
        "seed {seed}: {} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    // The campaign did something worth checking (counted, not timed). A short run whose
    // random kills all came early may leave one kind unacknowledged (every kind is in the
    // long campaign's figures, RELIABILITY.md); nothing at all would mean a broken campaign.
    assert!(
        issued_acked + events + revoked.len() > 0,
        "seed {seed}: nothing was acknowledged"
    );
}
