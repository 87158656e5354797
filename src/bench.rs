//! `jpki bench issue`: issuance throughput end to end — CSR in, certificate durable in the
//! store — beside the raw RSA-2048 signing rate of the same root key, measured in the same
//! run with the same number of threads, then the revocation rate of the live certificates;
//! on each `--store` in turn (sled, PostgreSQL). Figures go to BENCHMARKS.md.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use policies::{Hierarchy, Sex, Signer};
use time::macros::date;

use ca::authority::{Authority, NewResident};
use ca::clock::SystemClock;
use ca::error::{Error, Result};
use ca::storage::CommitStats;

/// CPU time this process has used (user + system), in seconds, from `/proc/self/stat`
/// (fields 14 and 15, in clock ticks of 1/100 s on Linux); `None` elsewhere.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; count fields after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// CPU µs per operation for `n` operations since `cpu0` (a [`cpu_seconds`] reading).
fn cpu_per_op(cpu0: Option<f64>, n: usize) -> Option<f64> {
    cpu0.zip(cpu_seconds())
        .map(|(a, b)| (b - a) * 1e6 / n as f64)
}

/// Raw signatures per second with `threads` threads over a TBS-sized message, and the CPU
/// time per signature in µs.
fn raw_rate(signer: &dyn Signer, threads: usize, n: usize) -> Result<(f64, Option<f64>)> {
    let msg = vec![0x5au8; 1200];
    let next = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    std::thread::scope(|sc| {
        for _ in 0..threads {
            sc.spawn(|| {
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    if signer.sign(&msg).is_err() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    match failed.load(Ordering::Relaxed) {
        0 => Ok((rate, cpu_per_op(cpu0, n))),
        f => Err(Error::Invalid(format!(
            "{f} of the peer's raw signatures failed"
        ))),
    }
}

/// `jpki bench issue` on each of `stores` in turn, in one run: `sled` (a temporary data
/// directory), `postgres` (a throwaway local PostgreSQL cluster with `fsync=on`, as
/// `storage_postgres::testing` starts one), or a `postgres://…` URL (an empty database).
pub fn issue_on(
    stores: &[String],
    count: usize,
    threads: usize,
    residents: usize,
    rounds: usize,
) -> Result<()> {
    let default = ["sled".to_owned()];
    let stores = if stores.is_empty() {
        &default[..]
    } else {
        stores
    };
    for store in stores {
        println!("== store: {store}");
        let mut cluster = None;
        let url = match store.as_str() {
            "sled" => None,
            "postgres" => {
                let c =
                    storage_postgres::testing::Cluster::start(storage_postgres::testing::Fsync::On)
                        .map_err(Error::io("start a PostgreSQL cluster"))?
                        .ok_or_else(|| {
                            Error::Invalid("no PostgreSQL binaries on this machine".into())
                        })?;
                let url = c.database().map_err(Error::io("create a database"))?;
                cluster = Some(c);
                Some(url)
            }
            url if crate::store::is_postgres(url) => Some(url.to_owned()),
            other => {
                return Err(Error::Invalid(format!(
                    "unknown store `{other}` (sled, postgres, or postgres://…)"
                )))
            }
        };
        let tmp = tempfile::tempdir().map_err(Error::io("create a temporary directory"))?;
        let a = Arc::new(crate::store::init(
            &tmp.path().join("data"),
            url.as_deref(),
            policies::policy::DEFAULT_POLICY,
            b"benchmark-passphrase",
            Arc::new(SystemClock),
            None,
        )?);
        issue(a, count, threads, residents, rounds)?;
        drop(cluster);
    }
    Ok(())
}

fn issue(
    a: Arc<Authority>,
    count: usize,
    threads: usize,
    residents: usize,
    rounds: usize,
) -> Result<()> {
    let threads = threads.max(1);
    // The signing ceiling is that of the cores: one signing thread per core.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let holders = residents.min(count.div_ceil(2)).max(1);
    eprintln!(
        "preparing {holders} residents and {} holder keys ...",
        holders * 2
    );
    // Holder keys in parallel (RSA key generation is the slow part of the preparation).
    let made = AtomicUsize::new(0);
    let csrs: Vec<Result<Vec<u8>>> = std::thread::scope(|sc| {
        let workers: Vec<_> = (0..cores)
            .map(|_| {
                sc.spawn(|| {
                    let mut mine = Vec::new();
                    while made.fetch_add(1, Ordering::Relaxed) < holders * 2 {
                        mine.push(holder_csr());
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let mut csrs = csrs.into_iter();
    let mut tasks = Vec::new();
    for i in 0..holders {
        let id = a.resident_add(&NewResident {
            name: format!("試験　太郎{i}"),
            birth: date!(1980 - 01 - 01),
            sex: Sex::Male,
            address: "東京都千代田区".into(),
            prefecture: "Tokyo".into(),
            municipality: "Chiyoda-ku".into(),
            // Within a card's life for the holder's age (10th birthday after today).
            card_expiry: date!(2036 - 01 - 01),
        })?;
        for h in [Hierarchy::Auth, Hierarchy::Signing] {
            let csr = csrs
                .next()
                .ok_or_else(|| Error::Invalid("a key generator thread failed".into()))??;
            tasks.push((id.clone(), h, csr));
        }
    }
    // Holder-interleaved order: concurrent threads issue to different residents, as a CA
    // serving many municipalities does (issuances for one resident serialise on its record).
    tasks.sort_by_key(|(_, h, _)| *h);
    // Decrypt both root keys first, as `jpki serve` does at start-up (scrypt is slow on
    // purpose; it must not be counted as issuance).
    a.signer(Hierarchy::Auth)?;
    let signer = a.signer(Hierarchy::Signing)?;
    let rounds = rounds.clamp(1, count.max(1));
    let mut ceilings = vec![raw_rate(signer.as_ref(), cores, 4000)?];
    let mut results: Vec<Round> = Vec::with_capacity(rounds);
    let mut done = 0;
    for r in 0..rounds {
        let n = (count - done) / (rounds - r);
        let before = a.storage().commit_stats();
        let cpu0 = cpu_seconds();
        let t0 = Instant::now();
        let failed = issue_all(&a, &tasks, done, n, threads);
        let elapsed = t0.elapsed().as_secs_f64();
        let cpu = cpu_per_op(cpu0, n);
        let stats = a.storage().commit_stats().since(&before);
        if failed > 0 {
            return Err(Error::Invalid(format!(
                "{failed} issuances failed during the benchmark"
            )));
        }
        ceilings.push(raw_rate(signer.as_ref(), cores, 4000)?);
        let ceiling = (ceilings[r].0 + ceilings[r + 1].0) / 2.0;
        let round = Round {
            n,
            elapsed,
            ceiling,
            cpu,
            stats,
        };
        println!(
            "round {}: {n} issued in {elapsed:.2} s = {:.0}/s; ceiling {ceiling:.0}/s; ratio {:.1}%; {}",
            r + 1,
            round.rate(),
            100.0 * round.ratio(),
            round.detail(cores)
        );
        results.push(round);
        done += n;
    }
    let median = |f: &dyn Fn(&Round) -> f64| {
        let mut v: Vec<f64> = results.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let elapsed: f64 = results.iter().map(|r| r.elapsed).sum();
    println!("issuance: {count} certificates, {threads} concurrent clients on {cores} cores, {rounds} rounds, in {elapsed:.2} s = {:.0}/s (CSR in, durable certificate out; each renews the holder's previous one)", count as f64 / elapsed);
    println!(
        "raw RSA-2048 signing ceiling, same key, {cores} threads, measured around every round: {:.0}/s (median)",
        median(&|r| r.ceiling)
    );
    println!(
        "ratio: {:.0}% of the signing ceiling (median round; rounds {})",
        100.0 * median(&|r| r.ratio()),
        results
            .iter()
            .map(|r| format!("{:.0}%", 100.0 * r.ratio()))
            .collect::<Vec<_>>()
            .join(" ")
    );
    // CPU time per operation does not depend on what else the machine runs: it says what an
    // issuance costs beside its signature even when the wall-clock ratio is disturbed.
    let per_sig: Vec<f64> = ceilings.iter().filter_map(|c| c.1).collect();
    if results.iter().all(|r| r.cpu.is_some()) && !per_sig.is_empty() {
        let sig = per_sig.iter().sum::<f64>() / per_sig.len() as f64;
        let cpu = median(&|r| r.cpu.unwrap_or(0.0));
        println!(
            "CPU per issuance {cpu:.0} µs (median round), per raw signature {sig:.0} µs: the signature is {:.0}% of an issuance's CPU; the cores were {:.0}% busy (median round)",
            100.0 * sig / cpu,
            100.0 * median(&|r| r.busy(cores))
        );
    }
    revoke_all(&a, &tasks, threads, rounds)?;
    // What it takes to bound the journal that run left behind.
    let t1 = Instant::now();
    let c = a.storage().compact()?;
    println!(
        "compaction afterwards: {:.0} ms, journal {:.1} MB -> {:.1} MB, snapshot {:.1} MB",
        t1.elapsed().as_secs_f64() * 1e3,
        c.journal_bytes_before as f64 / 1e6,
        c.journal_bytes_after as f64 / 1e6,
        c.snapshot_bytes as f64 / 1e6
    );
    Ok(())
}

/// Revokes every holder's live certificates (the newest of each kind: the benchmark's
/// issuances superseded the others), in `rounds` rounds with `threads` clients; prints the
/// rate per round and the median.
fn revoke_all(
    a: &Authority,
    tasks: &[(String, Hierarchy, Vec<u8>)],
    threads: usize,
    rounds: usize,
) -> Result<()> {
    let mut live = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (id, _, _) in tasks {
        if !seen.insert(id.clone()) {
            continue;
        }
        for (c, s) in a.storage().holder_certificates(id)? {
            if s.state == ca::records::State::Good {
                live.push((c.hierarchy, c.serial));
            }
        }
    }
    let total = live.len();
    let rounds = rounds.clamp(1, total.max(1));
    let mut rates = Vec::new();
    let mut done = 0;
    let t_all = Instant::now();
    for r in 0..rounds {
        let n = (total - done) / (rounds - r);
        let batch = &live[done..done + n];
        let next = AtomicUsize::new(0);
        let failures = AtomicUsize::new(0);
        let t0 = Instant::now();
        std::thread::scope(|sc| {
            for _ in 0..threads {
                sc.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((h, serial)) = batch.get(i) else {
                        break;
                    };
                    if a.revoke(serial, Some(*h), policies::Reason::KeyCompromise, None)
                        .is_err()
                    {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        let elapsed = t0.elapsed().as_secs_f64();
        if failures.load(Ordering::Relaxed) > 0 {
            return Err(Error::Invalid(format!(
                "{} revocations failed during the benchmark",
                failures.load(Ordering::Relaxed)
            )));
        }
        let rate = n as f64 / elapsed;
        println!(
            "revocation round {}: {n} revoked in {elapsed:.2} s = {rate:.0}/s",
            r + 1
        );
        rates.push(rate);
        done += n;
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "revocation: {total} live certificates revoked, {threads} concurrent clients, {rounds} rounds, in {:.2} s; median round {:.0}/s (durable, audited, CRL partition marked dirty)",
        t_all.elapsed().as_secs_f64(),
        rates.get(rates.len() / 2).copied().unwrap_or(0.0)
    );
    Ok(())
}

/// Issues `n` certificates, tasks `from..from + n` (cycling), with `threads` clients; returns
/// how many failed.
fn issue_all(
    a: &Authority,
    tasks: &[(String, Hierarchy, Vec<u8>)],
    from: usize,
    n: usize,
    threads: usize,
) -> usize {
    let next = AtomicUsize::new(0);
    let failures = AtomicUsize::new(0);
    let early = ca::authority::IssueOverrides {
        early_renewal: Some("benchmark: the same holders are issued to repeatedly".into()),
        ..Default::default()
    };
    let early = &early;
    std::thread::scope(|sc| {
        for _ in 0..threads {
            sc.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let (id, h, csr) = &tasks[(from + i) % tasks.len()];
                // Each holder is issued to over and over: a renewal outside the window, which
                // the eligibility rules refuse unless overridden.
                if a.issue_with(id, *h, csr, early).is_err() {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    failures.load(Ordering::Relaxed)
}

/// One round of issuances and what was measured around it.
struct Round {
    n: usize,
    elapsed: f64,
    /// The raw signing rate, the mean of the measurements before and after the round.
    ceiling: f64,
    /// CPU µs per issuance.
    cpu: Option<f64>,
    stats: CommitStats,
}

impl Round {
    fn rate(&self) -> f64 {
        self.n as f64 / self.elapsed
    }

    fn ratio(&self) -> f64 {
        self.rate() / self.ceiling
    }

    /// Share of the cores' time the process used.
    fn busy(&self, cores: usize) -> f64 {
        self.cpu.unwrap_or(0.0) * self.n as f64 / 1e6 / self.elapsed / cores as f64
    }

    fn detail(&self, cores: usize) -> String {
        let s = &self.stats;
        let per = |us: u64| us as f64 / s.batches.max(1) as f64;
        format!(
            "CPU {:.0} µs per issuance, cores {:.0}% busy; commits: {} batches of {:.1}, per batch {:.0} µs staging, {:.0} µs fsync, {:.0} µs applying to sled",
            self.cpu.unwrap_or(f64::NAN),
            100.0 * self.busy(cores),
            s.batches,
            s.transactions as f64 / s.batches.max(1) as f64,
            per(s.stage_us),
            per(s.sync_us),
            per(s.apply_us)
        )
    }
}

/// A stand-in holder's key pair and CSR (RSA-2048 made by rcgen): the benchmark's holders.
pub(crate) fn holder_csr() -> ca::Result<Vec<u8>> {
    let key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .map_err(|e| ca::Error::Invalid(format!("holder key: {e}")))?;
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .and_then(|p| p.serialize_request(&key))
        .map_err(|e| ca::Error::Invalid(format!("holder CSR: {e}")))?;
    Ok(csr.der().to_vec())
}
