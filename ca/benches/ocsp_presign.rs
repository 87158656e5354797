//! OCSP pre-signing rate with the delegated OCSP signer's key in a file vs in a PKCS#11
//! token (SoftHSM2), in the same run: two authorities made by `Authority::init` (file keys)
//! and `Authority::init_keys` with a token (keys generated inside it), each answer pre-signed
//! by `ocsp_responder::Responder::warm` — the path that fills the responder's cache (a SHA-1
//! and a SHA-256 CertID answer per certificate, each one signature) — with the authority's
//! own OCSP signer. Statuses come from an in-memory source so that the figure is the signing
//! path (DER, signature, cache), not the store. Rounds alternate between the backends; the
//! median round is reported, for one thread and for one thread per core.
//!
//! `cargo bench -p ca --bench ocsp_presign` (needs `softhsm2`; says so and stops without it).

use std::sync::Arc;
use std::time::Instant;

use ca::hsm::{softhsm, HsmConfig};
use ca::Authority;
use ocsp_responder::{Issuer, MemorySource, Responder, Settings, Status};
use policies::clock::SystemClock;
use policies::Hierarchy;

const ROUNDS: usize = 5;
const CERTS: u32 = 150;

fn responder(a: &Authority) -> Responder {
    let source = Arc::new(MemorySource::new());
    for n in 1..=CERTS {
        source.set(Hierarchy::Auth, &serial(n), Status::Good);
    }
    Responder::new(
        Settings::from_policy(a.policy()),
        vec![Issuer {
            hierarchy: Hierarchy::Auth,
            root: a.root(Hierarchy::Auth).der.clone(),
            signer: a.ocsp_signer(Hierarchy::Auth).expect("OCSP signer"),
        }],
        source,
        Arc::new(SystemClock),
    )
    .expect("responder")
}

fn serial(n: u32) -> Vec<u8> {
    let mut v = vec![0x10];
    v.extend_from_slice(&n.to_be_bytes());
    v
}

/// Answers pre-signed per second by `threads` threads, each warming its share.
fn rate(r: &Responder, threads: u32) -> f64 {
    let now = time::OffsetDateTime::now_utc();
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                for n in (1..=CERTS).filter(|n| n % threads == t) {
                    assert!(r.warm(Hierarchy::Auth, &serial(n), now).expect("warm"));
                }
            });
        }
    });
    f64::from(CERTS * 2) / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let Some(hsm) = softhsm::token("jpki-presign", "1234") else {
        return;
    };
    let pin = hsm.dir.path().join("pin");
    std::fs::write(&pin, "1234\n").expect("PIN file");
    let tmp = tempfile::tempdir().expect("temporary directory");
    let file = Authority::init(
        &tmp.path().join("file"),
        policies::policy::DEFAULT_POLICY,
        b"bench passphrase",
        Arc::new(SystemClock),
    )
    .expect("init with file keys");
    let token = Authority::init_keys(
        &tmp.path().join("token"),
        None,
        policies::policy::DEFAULT_POLICY,
        b"",
        Arc::new(SystemClock),
        Some(&HsmConfig {
            module: hsm.module.clone(),
            token: hsm.label.clone(),
            pin_file: Some(pin),
        }),
    )
    .expect("init with the token");
    let (rf, rt) = (responder(&file), responder(&token));
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
    println!(
        "OCSP answers pre-signed/s (Responder::warm, RSA-2048 delegated signer), median of \
         {ROUNDS} rounds × {} answers:",
        CERTS * 2
    );
    for threads in [1, cores] {
        rate(&rf, threads);
        rate(&rt, threads);
        let (mut f, mut t) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            f.push(rate(&rf, threads));
            t.push(rate(&rt, threads));
        }
        let (f, t) = (median(f), median(t));
        println!(
            "  {threads} thread(s): file key {f:>7.0}/s   SoftHSM2 token {t:>7.0}/s   token/file {:.2}",
            t / f
        );
    }
}
