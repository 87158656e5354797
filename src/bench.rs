//! `jpki bench issue`: issuance throughput end to end — CSR in, certificate durable in the
//! store — beside the raw RSA-2048 signing rate of the same root key, measured in the same
//! run with the same number of threads. Figures go to BENCHMARKS.md.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use policies::{Hierarchy, Sex, Signer};
use time::macros::date;

use ca::authority::{Authority, NewResident};
use ca::clock::SystemClock;
use ca::error::{Error, Result};

/// Raw signatures per second with `threads` threads over a TBS-sized message.
fn raw_rate(signer: &dyn Signer, threads: usize, n: usize) -> Result<f64> {
    let msg = vec![0x5au8; 1200];
    let next = AtomicUsize::new(0);
    let t0 = Instant::now();
    std::thread::scope(|sc| {
        for _ in 0..threads {
            sc.spawn(|| {
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    let _ = signer.sign(&msg);
                }
            });
        }
    });
    Ok(n as f64 / t0.elapsed().as_secs_f64())
}

pub fn issue(count: usize, threads: usize) -> Result<()> {
    let threads = threads.max(1);
    // The signing ceiling is that of the cores: one signing thread per core.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let tmp = tempfile::tempdir().map_err(Error::io("create a temporary directory"))?;
    let a = Arc::new(Authority::init(
        &tmp.path().join("data"),
        policies::policy::DEFAULT_POLICY,
        b"benchmark-passphrase",
        Arc::new(SystemClock),
    )?);
    let holders = 50usize.min(count.div_ceil(2)).max(1);
    eprintln!(
        "preparing {holders} residents and {} holder keys ...",
        holders * 2
    );
    let mut tasks = Vec::new();
    for i in 0..holders {
        let id = a.resident_add(&NewResident {
            name: format!("試験　太郎{i}"),
            birth: date!(1980 - 01 - 01),
            sex: Sex::Male,
            address: "東京都千代田区".into(),
            prefecture: "Tokyo".into(),
            municipality: "Chiyoda-ku".into(),
            card_expiry: date!(2040 - 01 - 01),
        })?;
        for h in [Hierarchy::Auth, Hierarchy::Signing] {
            tasks.push((id.clone(), h, holder_csr()?));
        }
    }
    // Holder-interleaved order: concurrent threads issue to different residents, as a CA
    // serving many municipalities does (issuances for one resident serialise on its record).
    tasks.sort_by_key(|(_, h, _)| *h);
    let signer = a.signer(Hierarchy::Signing)?;
    let raw_before = raw_rate(signer.as_ref(), cores, 4000)?;
    let next = AtomicUsize::new(0);
    let failures = AtomicUsize::new(0);
    let t0 = Instant::now();
    std::thread::scope(|sc| {
        for _ in 0..threads {
            sc.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let (id, h, csr) = &tasks[i % tasks.len()];
                if a.issue(id, *h, csr).is_err() {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let elapsed = t0.elapsed().as_secs_f64();
    let raw_after = raw_rate(signer.as_ref(), cores, 4000)?;
    let failed = failures.load(Ordering::Relaxed);
    if failed > 0 {
        return Err(Error::Invalid(format!(
            "{failed} issuances failed during the benchmark"
        )));
    }
    let rate = count as f64 / elapsed;
    let raw = (raw_before + raw_after) / 2.0;
    println!("issuance: {count} certificates, {threads} concurrent clients on {cores} cores, in {elapsed:.2} s = {rate:.0}/s (CSR in, durable certificate out; each renews the holder's previous one)");
    println!("raw RSA-2048 signing ceiling, same key, {cores} threads: {raw:.0}/s (before {raw_before:.0}, after {raw_after:.0})");
    println!("ratio: {:.0}% of the signing ceiling", 100.0 * rate / raw);
    Ok(())
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
