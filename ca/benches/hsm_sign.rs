//! Signatures per second of a CA key in a PKCS#11 token (SoftHSM2) beside the same size of
//! key from a file (aws-lc-rs), in the same run: sha256WithRSAEncryption, RSA-2048, over a
//! 1 KiB message (a certificate's TBS is about that), one thread each, through
//! `keys::CaSigner` — the signer every certificate, CRL and OCSP answer goes through. Rounds
//! alternate between the two so the host's drift hits both; the median round is reported.
//!
//! `cargo bench -p ca --bench hsm_sign` (needs `softhsm2`; says so and stops without it).

use std::time::Instant;

use ca::hsm::{softhsm, Token};
use ca::keys::{self, CaSigner};
use policies::Signer;

const ROUNDS: usize = 7;
const SIGNATURES: u32 = 300;

fn rate(signer: &CaSigner, message: &[u8]) -> f64 {
    let start = Instant::now();
    for _ in 0..SIGNATURES {
        std::hint::black_box(signer.sign(message).expect("sign"));
    }
    f64::from(SIGNATURES) / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let Some(hsm) = softhsm::token("jpki-bench", "1234") else {
        return;
    };
    let token = Token::open(&hsm.module, &hsm.label, &hsm.pin).expect("open the token");
    let in_token = CaSigner::in_token(token.generate("bench-root").expect("generate"), vec![]);
    let file = CaSigner::new(keys::generate().expect("generate").pair, vec![]);
    let message = vec![0x5a_u8; 1024];
    // Warm up both.
    rate(&in_token, &message);
    rate(&file, &message);
    let (mut t, mut f) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        t.push(rate(&in_token, &message));
        f.push(rate(&file, &message));
    }
    let (t, f) = (median(t), median(f));
    println!(
        "RSA-2048 signatures/s, one thread, median of {ROUNDS} rounds × {SIGNATURES}:\n  \
         SoftHSM2 token (PKCS#11)  {t:>8.0}\n  \
         file key (aws-lc-rs)      {f:>8.0}\n  \
         token / file              {:>8.2}",
        t / f
    );
}
