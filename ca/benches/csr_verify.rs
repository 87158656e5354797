//! Micro-benchmark of `ca::csr::verify` (PKCS#10 parse, key rules, self-signature) on an
//! rcgen RSA-2048 request, DER and PEM. Run with `cargo bench -p ca --bench csr_verify`; it
//! prints the median over several runs of the mean µs per call.

use std::hint::black_box;
use std::time::Instant;

const RUNS: usize = 9;

/// Median over `RUNS` runs of the mean time per call, in µs.
fn bench(label: &str, iters: u32, mut f: impl FnMut()) {
    for _ in 0..iters / 10 {
        f();
    }
    let mut runs: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            start.elapsed().as_secs_f64() * 1e6 / f64::from(iters)
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    println!(
        "{label:<28} median {:>8.2} µs/call  (min {:.2}, max {:.2}, {RUNS} runs × {iters})",
        runs[RUNS / 2],
        runs[0],
        runs[RUNS - 1]
    );
}

fn main() {
    let key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .expect("RSA key");
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .and_then(|p| p.serialize_request(&key))
        .expect("CSR");
    let der = csr.der().to_vec();
    let pem = csr.pem().expect("PEM");
    ca::csr::verify(&der, 2048).expect("valid CSR");
    bench("csr::verify (DER)", 10_000, || {
        black_box(ca::csr::verify(black_box(&der), 2048).expect("valid CSR"));
    });
    bench("csr::verify (PEM)", 10_000, || {
        black_box(ca::csr::verify(black_box(pem.as_bytes()), 2048).expect("valid CSR"));
    });
}
