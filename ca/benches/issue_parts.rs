//! Micro-benchmark of the parts of an issuance outside the store, each beside the RSA-2048
//! signature it accompanies (the peer, measured in the same run with the same key size and
//! message): `csr::verify` (PKCS#10 parse, key rules, self-signature), `profile::leaf_tbs` and
//! `lint::check` for a signing and an authentication certificate with the default policy.
//! Run with `cargo bench -p ca --bench issue_parts`; it prints the median over several runs of
//! the mean µs per call. The whole path, store included, is `jpki bench issue`.

use std::hint::black_box;
use std::time::Instant;

use aws_lc_rs::rand::SystemRandom;
use policies::lint::{self, Expect, Shape};
use policies::profile::{self, Holder, Window};
use policies::{Attributes, Hierarchy, Policy, Sex};
use time::macros::{date, datetime};

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
    let policy = Policy::default_policy();
    // A holder's key and CSR, as a card would send them.
    let holder =
        rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            .expect("RSA key");
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .and_then(|p| p.serialize_request(&holder))
        .expect("CSR");
    let csr_der = csr.der().to_vec();
    let csr_pem = csr.pem().expect("PEM");
    let spki = ca::csr::verify(&csr_der, 2048).expect("valid CSR").spki;
    // The root's key: the signature is the peer every other figure is set against.
    let root = ca::keys::generate().expect("root key");
    let root_kid = profile::key_identifier(&root.spki).expect("valid SPKI");
    let rng = SystemRandom::new();

    let attrs = Attributes::new(
        "山田　太郎",
        date!(1980 - 02 - 17),
        Sex::Male,
        "東京都清瀬市中里一丁目1番地",
        &policy.limits,
        date!(2026 - 01 - 01),
    )
    .expect("valid attributes");
    let serial = [
        0x41, 0x0f, 0x3c, 0x77, 0x19, 0xa2, 0x5e, 0x60, 0x0d, 0x8b, 0x21, 0x93, 0x4e, 0x7a, 0x33,
        0x05,
    ];
    let w = Window {
        serial: &serial,
        not_before: datetime!(2026-01-05 01:02:03 UTC),
        not_after: datetime!(2030-02-16 14:59:59 UTC),
    };
    let cn = "2601ABCDEFGHIJ05100203A";
    let signing = Holder::Signing {
        prefecture: "東京都",
        municipality: "清瀬市",
        attributes: &attrs,
    };

    bench("csr::verify (DER)", 10_000, || {
        black_box(ca::csr::verify(black_box(&csr_der), 2048).expect("valid CSR"));
    });
    bench("csr::verify (PEM)", 10_000, || {
        black_box(ca::csr::verify(black_box(csr_pem.as_bytes()), 2048).expect("valid CSR"));
    });
    let cases = [
        (
            "signing",
            signing,
            Hierarchy::Signing,
            Shape::Signing { attributes: &attrs },
        ),
        ("auth", Holder::Auth, Hierarchy::Auth, Shape::Auth),
    ];
    let mut signing_tbs = Vec::new();
    for (label, holder, h, shape) in cases {
        let issuer = profile::Issuer {
            key_id: &root_kid,
            serial: &[0x01],
            generation: 1,
        };
        let crl = policy.new_partition(
            &serial,
            &policies::Municipality::new("Tokyo-to", "Kiyose-shi").expect("a place"),
        );
        let tbs = profile::leaf_tbs(&policy, &holder, cn, w, &crl, &spki, issuer).expect("TBS");
        let expect = Expect {
            hierarchy: h,
            shape,
            issuer: Some(issuer),
            crl: Some(&crl),
        };
        lint::check(&policy, &tbs, &expect).expect("lint passes");
        bench(&format!("leaf_tbs ({label})"), 20_000, || {
            black_box(
                profile::leaf_tbs(
                    black_box(&policy),
                    black_box(&holder),
                    black_box(cn),
                    w,
                    black_box(&crl),
                    black_box(&spki),
                    issuer,
                )
                .expect("TBS"),
            );
        });
        bench(&format!("lint::check ({label})"), 20_000, || {
            lint::check(black_box(&policy), black_box(&tbs), &expect).expect("lint passes");
        });
        if h == Hierarchy::Signing {
            signing_tbs = tbs;
        }
    }
    bench("peer: RSA-2048 signature", 2_000, || {
        black_box(ca::keys::sign_with(&root.pair, &rng, black_box(&signing_tbs)).expect("sign"));
    });
}
