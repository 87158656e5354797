//! `jpki bench populate`: builds a benchmark store of N certificates through the real write
//! path — residents registered over M municipalities, each issued an authentication and a
//! signing certificate (real TBS, lint, signature by the CA key, durable unit of work, audit
//! record), a fraction F of them then reported dead, so that the register event's rule revokes
//! both certificates (CRL partitions marked dirty, as in service).
//!
//! **What is not real: holder keys.** Generating one RSA-2048 key per certificate would take
//! longer than issuing it many times over, so the holders' keys are drawn from a pool of a
//! few pre-generated keys, shared by many holders. The one-key-one-holder rule is set aside
//! for that ([`ca::authority::Authority::issue_from_bench_pool`], said in every issuance's
//! audit record), which the authority allows only on a store carrying the bench marker
//! ([`BENCH_STORE_MARKER`]). This tool writes the marker when it creates the store and
//! refuses to add to a store that lacks it.
//!
//! **Resumable.** What is done is read back from the store: resident `i` is named
//! `試験　人{i}`, and its current certificates and state tell which of its steps remain. An
//! interrupted run is finished by running the same command again (parameters are checked
//! against the marker).
//!
//! **Batched.** Residents are taken in chunks (`--batch`, default 256): a chunk's new residents
//! are registered in one unit of work (with the register's duplicate-person check, an index
//! lookup), each kind of certificate is issued in one unit of work
//! ([`ca::authority::Authority::issue_batch_from_bench_pool`]: every certificate linted,
//! signed — in parallel over the cores — and audited), and the deaths are reported
//! concurrently so that the store's committer makes them one group commit. `--threads`
//! chunks run at once.
//!
//! Works on every engine: sled (default) or `--store postgres://…` when creating.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ca::authority::{
    Authority, Event, IssueOverrides, IssueRequest, NewResident, BENCH_STORE_MARKER,
};
use ca::error::{Error, Result};
use ca::records::ResidentState;
use policies::{Hierarchy, Sex};
use serde::{Deserialize, Serialize};
use time::macros::date;

/// The name prefix of the benchmark's residents; the index follows.
const NAME_PREFIX: &str = "試験　人";

/// What `jpki bench populate` was asked for (kept in the marker to check a resume).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub certificates: u64,
    pub revoked_fraction: f64,
    pub municipalities: u32,
}

/// The marker's content.
#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    made_by: String,
    plan: Plan,
    /// Pre-generated holder keys shared by all holders.
    key_pool: usize,
}

impl Plan {
    fn residents(&self) -> u64 {
        self.certificates.div_ceil(2)
    }

    /// Whether resident `i` is reported dead (both certificates revoked): a fixed hash of the
    /// index under the fraction, so a resumed run decides the same.
    fn dies(&self, i: u64) -> bool {
        let mut x = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        (x as f64 / u64::MAX as f64) < self.revoked_fraction
    }

    /// The kinds resident `i` holds: auth for certificate 2i, signing for 2i + 1.
    fn kinds(&self, i: u64) -> &'static [Hierarchy] {
        if 2 * i + 1 < self.certificates {
            &[Hierarchy::Auth, Hierarchy::Signing]
        } else {
            &[Hierarchy::Auth]
        }
    }

    /// Resident `i`'s registration: distinct residents (name by index), as the duplicate
    /// check requires.
    fn resident(&self, i: u64) -> NewResident {
        let (prefecture, municipality) = self.place(i);
        NewResident {
            name: format!("{NAME_PREFIX}{i}"),
            birth: date!(1980 - 01 - 01),
            sex: if i.is_multiple_of(2) {
                Sex::Male
            } else {
                Sex::Female
            },
            address: format!("{municipality}一丁目{}番", i % 1000 + 1),
            prefecture,
            municipality,
            card_expiry: date!(2036 - 01 - 01),
        }
    }

    fn place(&self, i: u64) -> (String, String) {
        let m = i % u64::from(self.municipalities.max(1));
        (
            format!("Bench-ken{:02}", m % 47),
            format!("Bench{m:05}-shi"),
        )
    }
}

/// How far one resident got (read back from the store).
#[derive(Debug, Clone, Default)]
struct Progress {
    id: String,
    issued: Vec<Hierarchy>,
    dead: bool,
}

/// Options beyond the plan.
pub struct Options<'a> {
    pub data: &'a Path,
    /// `postgres://…` to create the store there (sled otherwise). Ignored on resume.
    pub store: Option<&'a str>,
    pub passphrase: Option<Vec<u8>>,
    pub threads: usize,
    /// Residents per chunk: each chunk is a few durable units of work (registration, one per
    /// kind of certificate, the deaths).
    pub batch: u64,
    pub key_pool: usize,
    /// Stop once about this many certificates were issued in this run, as an interruption
    /// would (tests of resuming).
    pub stop_after: Option<u64>,
}

/// Runs `jpki bench populate`.
pub fn run(plan: &Plan, o: Options<'_>) -> Result<()> {
    if plan.certificates == 0 {
        return Err(Error::Invalid("--certificates must be at least 1".into()));
    }
    if !(0.0..=1.0).contains(&plan.revoked_fraction) {
        return Err(Error::Invalid(format!(
            "--revoked-fraction must be 0 to 1, got {}",
            plan.revoked_fraction
        )));
    }
    if plan.municipalities == 0 || plan.municipalities > 100_000 {
        return Err(Error::Invalid(format!(
            "--municipalities must be 1 to 100000, got {}",
            plan.municipalities
        )));
    }
    let pass = o.passphrase.clone().ok_or(Error::NoPassphrase)?;
    let marker_path = o.data.join(BENCH_STORE_MARKER);
    let fresh = !o.data.join("policy.toml").exists();
    let authority = if fresh {
        if o.data.exists() && std::fs::read_dir(o.data).is_ok_and(|mut d| d.next().is_some()) {
            return Err(Error::Invalid(format!(
                "{} exists and is not a jpki data directory; give a new directory",
                o.data.display()
            )));
        }
        eprintln!("creating a benchmark store in {}", o.data.display());
        let a = crate::store::init(
            o.data,
            o.store,
            policies::policy::DEFAULT_POLICY,
            &pass,
            clock()?,
            None,
        )?;
        let marker = Marker {
            made_by: "jpki bench populate".into(),
            plan: plan.clone(),
            key_pool: o.key_pool,
        };
        let text = serde_json::to_vec_pretty(&marker)
            .map_err(|e| Error::Invalid(format!("marker: {e}")))?;
        write_durably(&marker_path, &text)?;
        a
    } else {
        let text = std::fs::read(&marker_path).map_err(|_| {
            Error::Refused(format!(
                "{} is not a benchmark store made by `jpki bench populate` (no {BENCH_STORE_MARKER}); refusing to add certificates with pooled keys to it",
                o.data.display()
            ))
        })?;
        let marker: Marker = serde_json::from_slice(&text)
            .map_err(|e| Error::Invalid(format!("{}: {e}", marker_path.display())))?;
        if marker.plan != *plan {
            return Err(Error::Invalid(format!(
                "this benchmark store was begun with --certificates {} --revoked-fraction {} --municipalities {}; resume it with the same",
                marker.plan.certificates, marker.plan.revoked_fraction, marker.plan.municipalities
            )));
        }
        eprintln!("resuming the benchmark store in {}", o.data.display());
        crate::store::open(o.data, Some(pass), clock()?)?
    };
    let a = Arc::new(authority);
    println!(
        "bench store: holder keys are drawn from a pool of {} pre-generated RSA-2048 keys shared by all holders (one-key-one-holder set aside); for benchmarks only",
        o.key_pool
    );
    populate(
        &a,
        plan,
        o.threads.max(1),
        o.batch.max(1),
        o.key_pool.max(1),
        o.stop_after,
    )
}

fn clock() -> Result<Arc<dyn ca::clock::Clock>> {
    crate::clock::clock().map_err(|e| Error::Invalid(e.to_string()))
}

/// Writes a small file and its directory entry durably.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let io = |what: &str| Error::io(format!("{what} {}", path.display()));
    let mut f = std::fs::File::create(path).map_err(io("create"))?;
    f.write_all(bytes).map_err(io("write"))?;
    f.sync_all().map_err(io("sync"))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("sync the directory of"))?;
    }
    Ok(())
}

/// Reads back what earlier runs did: resident index → progress.
fn progress(a: &Authority) -> Result<HashMap<u64, Progress>> {
    let mut done = HashMap::new();
    a.storage().for_each_resident(&mut |r| {
        let Some(i) = r
            .attributes
            .name()
            .strip_prefix(NAME_PREFIX)
            .and_then(|n| n.parse::<u64>().ok())
        else {
            return Ok(());
        };
        let issued = Hierarchy::ALL
            .iter()
            .copied()
            .filter(|h| r.current.contains_key(h))
            .collect();
        done.insert(
            i,
            Progress {
                id: r.id.clone(),
                issued,
                dead: r.state == ResidentState::Deceased,
            },
        );
        Ok(())
    })?;
    Ok(done)
}

fn populate(
    a: &Arc<Authority>,
    plan: &Plan,
    threads: usize,
    batch: u64,
    pool: usize,
    stop_after: Option<u64>,
) -> Result<()> {
    let t0 = Instant::now();
    let done = progress(a)?;
    let already: u64 = done.values().map(|p| p.issued.len() as u64).sum();
    eprintln!(
        "{} of {} residents found, {already} certificates already issued; generating {pool} pool keys ...",
        done.len(),
        plan.residents()
    );
    let csrs = pool_csrs(pool)?;
    // Decrypt the root keys before counting (scrypt is slow on purpose).
    a.signer(Hierarchy::Auth)?;
    a.signer(Hierarchy::Signing)?;
    let bar = indicatif::ProgressBar::new(plan.certificates).with_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} certificates, {per_sec}, eta {eta}",
        )
        .map_err(|e| Error::Invalid(format!("progress bar: {e}")))?,
    );
    bar.set_position(already.min(plan.certificates));
    let next = AtomicU64::new(0);
    let issued = AtomicU64::new(0);
    let revoked = AtomicU64::new(0);
    let der_bytes = AtomicU64::new(0);
    let failures = AtomicUsize::new(0);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let overrides = IssueOverrides {
        early_renewal: Some("benchmark population".into()),
        ..Default::default()
    };
    let t1 = Instant::now();
    std::thread::scope(|sc| {
        for _ in 0..threads {
            sc.spawn(|| {
                ca::actor::acting_as(&ca::actor::Actor::System("bench-populate"), || loop {
                    let lo = next.fetch_add(batch, Ordering::Relaxed);
                    if lo >= plan.residents()
                        || failures.load(Ordering::Relaxed) > 0
                        || stop_after.is_some_and(|s| issued.load(Ordering::Relaxed) >= s)
                    {
                        break;
                    }
                    let hi = (lo + batch).min(plan.residents());
                    match chunk(a, plan, lo..hi, &done, &csrs, &overrides) {
                        Ok(c) => {
                            der_bytes.fetch_add(c.der_bytes, Ordering::Relaxed);
                            issued.fetch_add(c.issued, Ordering::Relaxed);
                            revoked.fetch_add(c.revoked, Ordering::Relaxed);
                            bar.inc(c.issued);
                        }
                        Err(e) => {
                            failures.fetch_add(1, Ordering::Relaxed);
                            let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                            slot.get_or_insert(e);
                        }
                    }
                })
            });
        }
    });
    bar.finish();
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(Error::Invalid(format!(
            "population stopped (run the same command again to resume): {e}"
        )));
    }
    let secs = t1.elapsed().as_secs_f64();
    let n = issued.load(Ordering::Relaxed);
    if stop_after.is_some_and(|s| n >= s) && next.load(Ordering::Relaxed) < plan.residents() {
        println!(
            "stopped after {n} certificates (--stop-after); run the same command again to resume"
        );
        return Ok(());
    }
    println!(
        "populated: {n} certificates issued and {} revoked by register events in {secs:.1} s ({:.0} certificates/s, {threads} threads); store now holds {} certificates of {} residents over {} municipalities; total {:.1} s",
        revoked.load(Ordering::Relaxed),
        n as f64 / secs.max(1e-9),
        plan.certificates,
        plan.residents(),
        plan.municipalities,
        t0.elapsed().as_secs_f64()
    );
    if n > 0 {
        let disk = dir_bytes(a.dir());
        // Compacted at the end, so that the next open does not replay the whole run's
        // journal (at 10^6: a 3.3 GB journal, 5 minutes and 4 GiB to open once).
        let t2 = Instant::now();
        let c = a.storage().compact()?;
        let compacted = dir_bytes(a.dir());
        println!(
            "disk: data directory {disk} bytes = {:.0} bytes per certificate before compaction, {compacted} bytes = {:.0} after ({:.1} s; snapshot {} bytes) (sled engine; a PostgreSQL store is not in it); mean certificate DER {:.0} bytes",
            disk as f64 / plan.certificates as f64,
            compacted as f64 / plan.certificates as f64,
            t2.elapsed().as_secs_f64(),
            c.snapshot_bytes,
            der_bytes.load(Ordering::Relaxed) as f64 / n as f64
        );
    }
    Ok(())
}

/// Bytes of the files under `dir` (what `du -b` counts), 0 where unreadable.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// What one chunk of residents added.
#[derive(Default)]
struct Added {
    issued: u64,
    revoked: u64,
    der_bytes: u64,
}

/// Carries out what remains for residents `range`, in a few durable units of work: the new
/// residents registered together ([`Authority::resident_import`], duplicate check included),
/// then each kind's certificates issued together ([`Authority::issue_batch_from_bench_pool`]:
/// each linted, signed and audited, the signatures in parallel), then the deaths, reported
/// concurrently so that the store commits them as a group. Every step is read back by
/// [`progress`] on a resumed run.
fn chunk(
    a: &Authority,
    plan: &Plan,
    range: std::ops::Range<u64>,
    done: &HashMap<u64, Progress>,
    csrs: &[Vec<u8>],
    overrides: &IssueOverrides,
) -> Result<Added> {
    let mut p: Vec<(u64, Progress)> = range
        .map(|i| (i, done.get(&i).cloned().unwrap_or_default()))
        .collect();
    let new: Vec<usize> = (0..p.len()).filter(|k| p[*k].1.id.is_empty()).collect();
    if !new.is_empty() {
        let rows: Vec<NewResident> = new.iter().map(|k| plan.resident(p[*k].0)).collect();
        let ids = a.resident_import(&rows, false).map_err(|mut refused| {
            let (row, e) = refused.swap_remove(0);
            Error::Invalid(format!("registering resident {}: {e}", p[new[row]].0))
        })?;
        for (k, id) in new.iter().zip(ids) {
            p[*k].1.id = id;
        }
    }
    let mut added = Added::default();
    for (k, h) in [Hierarchy::Auth, Hierarchy::Signing]
        .into_iter()
        .enumerate()
    {
        let requests: Vec<IssueRequest<'_>> = p
            .iter()
            .filter(|(i, q)| !q.dead && !q.issued.contains(&h) && plan.kinds(*i).contains(&h))
            .map(|(i, q)| IssueRequest {
                resident: &q.id,
                hierarchy: h,
                csr: &csrs[(2 * *i as usize + k) % csrs.len()],
            })
            .collect();
        if requests.is_empty() {
            continue;
        }
        for c in a.issue_batch_from_bench_pool(&requests, overrides)? {
            added.issued += 1;
            added.der_bytes += c.der.len() as u64;
        }
    }
    let dying: Vec<&str> = p
        .iter()
        .filter(|(i, q)| !q.dead && plan.dies(*i))
        .map(|(_, q)| q.id.as_str())
        .collect();
    let actor = ca::actor::Actor::System("bench-populate");
    let deaths: Vec<Result<u64>> = std::thread::scope(|sc| {
        let handles: Vec<_> = dying
            .iter()
            .map(|id| {
                let actor = &actor;
                sc.spawn(move || {
                    ca::actor::acting_as(actor, || {
                        a.event(id, &Event::Death)
                            .map(|out| out.revocations.len() as u64)
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Invalid("a death report panicked".into())))
            })
            .collect()
    });
    for r in deaths {
        added.revoked += r?;
    }
    Ok(added)
}

/// `n` RSA-2048 holder keys' CSRs, made in parallel (the private keys are dropped: the
/// store needs only the public keys).
fn pool_csrs(n: usize) -> Result<Vec<Vec<u8>>> {
    let cores = std::thread::available_parallelism().map_or(2, |c| c.get());
    let made = AtomicUsize::new(0);
    let out: Vec<Result<Vec<u8>>> = std::thread::scope(|sc| {
        let workers: Vec<_> = (0..cores)
            .map(|_| {
                sc.spawn(|| {
                    let mut mine = Vec::new();
                    while made.fetch_add(1, Ordering::Relaxed) < n {
                        mine.push(crate::bench::holder_csr());
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
    let out: Vec<Vec<u8>> = out.into_iter().collect::<Result<_>>()?;
    if out.len() != n {
        return Err(Error::Invalid("a key generator thread failed".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(n: u64, f: f64) -> Plan {
        Plan {
            certificates: n,
            revoked_fraction: f,
            municipalities: 7,
        }
    }

    #[test]
    fn the_revoked_share_follows_the_fraction_and_is_stable() {
        let p = plan(200_000, 0.1);
        let dead = (0..p.residents()).filter(|i| p.dies(*i)).count() as f64;
        let share = dead / p.residents() as f64;
        assert!((0.09..0.11).contains(&share), "{share}");
        assert!((0..1000).all(|i| p.dies(i) == p.dies(i)));
        assert_eq!((0..1000).filter(|i| plan(10, 0.0).dies(*i)).count(), 0);
        assert_eq!((0..1000).filter(|i| plan(10, 1.0).dies(*i)).count(), 1000);
    }

    #[test]
    fn an_odd_count_gives_the_last_resident_one_certificate() {
        let p = plan(5, 0.0);
        assert_eq!(p.residents(), 3);
        let total: usize = (0..p.residents()).map(|i| p.kinds(i).len()).sum();
        assert_eq!(total, 5);
        assert_eq!(p.place(8), p.place(1));
        assert_ne!(p.place(1), p.place(2));
    }
}
