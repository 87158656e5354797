//! Our verifier on tokens OpenSSL made: a throwaway `openssl ts -reply` TSA (its own root and
//! a TSA certificate with critical extKeyUsage timeStamping), a request of ours, its answer
//! checked and the token verified; then the bad cases, each named.

use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const CONFIG: &str = "\
[ tsa ]
default_tsa = tsa_config1
[ tsa_config1 ]
dir = .
serial = ./tsaserial
crypto_device = builtin
signer_cert = ./tsa.pem
certs = ./tsa.pem
signer_key = ./tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256
accuracy = secs:1, millisecs:500
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
[ tsa_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = critical, timeStamping
[ ca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
";

/// A throwaway OpenSSL TSA in `dir` named `name` (root `name-root.pem`).
fn openssl_tsa(dir: &Path) {
    std::fs::write(dir.join("tsa.cnf"), CONFIG).unwrap();
    std::fs::write(dir.join("tsaserial"), "01\n").unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "root.key",
            "-out",
            "root.pem",
            "-subj",
            "/CN=Throwaway TSA Root",
            "-days",
            "30",
            "-config",
            "tsa.cnf",
            "-extensions",
            "ca_ext",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "tsa.key",
            "-out",
            "tsa.csr",
            "-subj",
            "/CN=Throwaway TSA",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "tsa.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-out",
            "tsa.pem",
            "-days",
            "30",
            "-extfile",
            "tsa.cnf",
            "-extensions",
            "tsa_ext",
        ],
    );
}

fn der_of_pem(path: &Path) -> Vec<u8> {
    let pem = std::fs::read(path).unwrap();
    let (label, der) = der::pem::decode_vec(&pem).unwrap();
    assert_eq!(label, "CERTIFICATE");
    der
}

#[test]
fn a_token_from_openssl_ts_reply_verifies_and_bad_ones_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl_tsa(d);
    let data = b"the holder's signature value stands in here";
    let digest: [u8; 32] = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .try_into()
        .unwrap();
    let nonce = tsa::token::nonce().unwrap();
    std::fs::write(
        d.join("q.tsq"),
        tsa::token::request(&digest, &nonce).unwrap(),
    )
    .unwrap();
    openssl(
        d,
        &[
            "ts",
            "-reply",
            "-config",
            "tsa.cnf",
            "-queryfile",
            "q.tsq",
            "-out",
            "r.tsr",
        ],
    );
    let resp = std::fs::read(d.join("r.tsr")).unwrap();

    let token = tsa::token::token_of_response(&resp, &digest, &nonce).unwrap();
    let root = der_of_pem(&d.join("root.pem"));
    let stamp = tsa::token::verify(&token, data, std::slice::from_ref(&root)).unwrap();
    assert_eq!(stamp.policy, "1.2.3.4.1");
    assert_eq!(stamp.accuracy_seconds, 2);
    assert!(stamp.tsa.contains("Throwaway TSA"));
    let age = time::OffsetDateTime::now_utc() - stamp.gen_time;
    assert!(age.whole_minutes().abs() < 10, "genTime {}", stamp.gen_time);

    // Our own check of the answer: another nonce, another imprint.
    let e = tsa::token::token_of_response(&resp, &digest, &[1, 2, 3]).unwrap_err();
    assert!(e.to_string().contains("nonce was not echoed"), "{e}");
    let e = tsa::token::token_of_response(&resp, &[0u8; 32], &nonce).unwrap_err();
    assert!(e.to_string().contains("messageImprint"), "{e}");
    // A time-stamp over other content.
    let e = tsa::token::verify(&token, b"other", std::slice::from_ref(&root)).unwrap_err();
    assert!(matches!(e, tsa::Error::OtherContent), "{e}");
    assert!(e.to_string().contains("over other content"), "{e}");
    // A TSA we do not trust: our anchor is another root.
    let other = tempfile::tempdir().unwrap();
    openssl_tsa(other.path());
    let e = tsa::token::verify(&token, data, &[der_of_pem(&other.path().join("root.pem"))])
        .unwrap_err();
    assert!(matches!(e, tsa::Error::UntrustedTsa(_)), "{e}");
    assert!(e.to_string().contains("untrusted TSA"), "{e}");
    // One byte of the token changed: it no longer verifies (or parses).
    let mut bad = token.clone();
    let n = bad.len() - 10;
    bad[n] ^= 1;
    assert!(tsa::token::verify(&bad, data, std::slice::from_ref(&root)).is_err());
    // A refusal is reported with its reason.
    std::fs::write(d.join("q1.tsq"), b"").unwrap();
    openssl(
        d,
        &[
            "ts",
            "-query",
            "-digest",
            &"00".repeat(20),
            "-sha1",
            "-out",
            "q1.tsq",
        ],
    );
    openssl(
        d,
        &[
            "ts",
            "-reply",
            "-config",
            "tsa.cnf",
            "-queryfile",
            "q1.tsq",
            "-out",
            "r1.tsr",
        ],
    );
    let e =
        tsa::token::token_of_response(&std::fs::read(d.join("r1.tsr")).unwrap(), &digest, &nonce)
            .unwrap_err();
    assert!(e.to_string().contains("refused (status 2)"), "{e}");
}
