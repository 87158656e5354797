//! Verifications per second: `cargo bench -p relying-party --bench verify [-- N]`.
//!
//! Builds (with the OpenSSL CLI) a JPKI-shaped signing root, one signing leaf and a partition
//! CRL with 10^5 revoked entries, signs a document with `openssl cms -sign`, then measures in
//! the same run:
//! * `Verifier::verify_document` with the CRL parsed once and cached (`StatusSource::Crl`);
//! * the same, re-reading and re-verifying the CRL on every verification;
//! * the same with OCSP against the workspace's `ocsp-responder` serving on 127.0.0.1 (HTTP,
//!   fresh nonce, so every answer is signed live by a delegated OCSP signer);
//! * `openssl cms -verify` on the same inputs, with and without `-crl_check` on the same CRL,
//!   and `openssl cms -verify` + `openssl ocsp` client (same responder) per document.
//!
//! Results go to stdout; record them in `BENCHMARKS.md`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use relying_party::crl::RevocationList;
use relying_party::{StatusSource, Verifier};

const REVOKED: usize = 100_000;

fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn config(dir: &Path) -> String {
    format!(
        "[ca_sign]\ndir = {}\ndatabase = $dir/index.txt\nnew_certs_dir = $dir\ncertificate = $dir/root.pem\nprivate_key = $dir/root.key\n\
serial = $dir/serial\ncrlnumber = $dir/crlnumber\ndefault_md = sha256\ndefault_days = 365\ndefault_crl_hours = 24\n\
policy = policy_any\nunique_subject = no\ncopy_extensions = none\n\
[policy_any]\ncountryName = optional\nlocalityName = optional\ncommonName = supplied\n\
[req]\ndistinguished_name = dn\nstring_mask = utf8only\n[dn]\n\
[root_ext]\nbasicConstraints = critical, CA:true\nkeyUsage = critical, keyCertSign, cRLSign\nsubjectKeyIdentifier = hash\n\
[sign_ext]\nkeyUsage = critical, digitalSignature, nonRepudiation\ncertificatePolicies = critical, 1.2.392.200149.8.5.1.1.20\n\
subjectAltName = otherName:1.2.392.200149.8.5.5.1;UTF8:YAMADA TARO, otherName:1.2.392.200149.8.5.5.4;UTF8:319800217, otherName:1.2.392.200149.8.5.5.3;UTF8:1, otherName:1.2.392.200149.8.5.5.5;UTF8:TOKYO\n\
crlDistributionPoints = URI:http://127.0.0.1:9/crl/signing/0.crl\nauthorityKeyIdentifier = keyid\n\
[ocsp_ext]\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = OCSPSigning\nnoCheck = ignored\nauthorityKeyIdentifier = keyid\n\
[crl_ext]\nauthorityKeyIdentifier = keyid\nissuingDistributionPoint = critical, @idp\n[idp]\nfullname = URI:http://127.0.0.1:9/crl/signing/0.crl\n",
        dir.display()
    )
}

/// A fresh key `NAME.key` and a certificate `NAME.pem` for it, issued by the root (section
/// `ca_sign`) with the extensions of section `ext`.
fn issue(dir: &Path, name: &str, subj: &str, ext: &str) {
    let (key, csr, pem) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    openssl(dir, &["genrsa", "-out", &key, "2048"]);
    openssl(
        dir,
        &[
            "req",
            "-config",
            "openssl.cnf",
            "-new",
            "-key",
            &key,
            "-subj",
            subj,
            "-out",
            &csr,
        ],
    );
    ca(
        dir,
        &[
            "-preserveDN",
            "-notext",
            "-extensions",
            ext,
            "-in",
            &csr,
            "-out",
            &pem,
        ],
    );
}

/// `openssl ca` as the root (section `ca_sign`).
fn ca(dir: &Path, args: &[&str]) {
    let mut all = vec!["ca", "-batch", "-config", "openssl.cnf", "-name", "ca_sign"];
    all.extend_from_slice(args);
    openssl(dir, &all);
}

/// The delegated OCSP signer's key, for the ocsp-responder crate.
struct KeySigner {
    key: aws_lc_rs::signature::RsaKeyPair,
    cert: Vec<u8>,
}

impl policies::Signer for KeySigner {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, policies::SignError> {
        let mut sig = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                msg,
                &mut sig,
            )
            .map_err(|_| policies::SignError("RSA signing failed".into()))?;
        Ok(sig)
    }

    fn certificate(&self) -> &[u8] {
        &self.cert
    }
}

fn rate(label: &str, n: usize, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    let secs = start.elapsed().as_secs_f64();
    let per = n as f64 / secs;
    println!(
        "{label:<62} {n:>6} in {secs:>7.2} s = {per:>9.1} /s ({:>8.3} ms each)",
        1000.0 * secs / n as f64
    );
    per
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2000);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    std::fs::write(dir.join("openssl.cnf"), config(dir)).expect("config");
    std::fs::write(dir.join("serial"), "1000\n").expect("serial");
    std::fs::write(dir.join("crlnumber"), "01\n").expect("crlnumber");
    // 10^5 revoked serials, written straight into the openssl ca database.
    let mut index = String::with_capacity(REVOKED * 60);
    for i in 0..REVOKED {
        index.push_str(&format!(
            "R\t351231235959Z\t260101000000Z,keyCompromise\t{:08X}\tunknown\t/CN=r{i}\n",
            0x1000_0000 + i
        ));
    }
    std::fs::write(dir.join("index.txt"), index).expect("index");
    openssl(dir, &["genrsa", "-out", "root.key", "2048"]);
    let subj = "/C=JP/O=JPKI-TEST/OU=JPKI for digital signature/OU=Japan Agency for Local Authority Information Systems";
    openssl(
        dir,
        &[
            "req",
            "-config",
            "openssl.cnf",
            "-new",
            "-x509",
            "-key",
            "root.key",
            "-subj",
            subj,
            "-days",
            "3650",
            "-extensions",
            "root_ext",
            "-out",
            "root.pem",
        ],
    );
    issue(dir, "leaf", "/C=JP/L=Tokyo-to/CN=bench", "sign_ext");
    let t = Instant::now();
    ca(dir, &["-gencrl", "-crlexts", "crl_ext", "-out", "crl.pem"]);
    println!(
        "openssl ca -gencrl, {REVOKED} entries: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    openssl(
        dir,
        &[
            "crl", "-in", "crl.pem", "-outform", "DER", "-out", "crl.der",
        ],
    );
    std::fs::write(dir.join("doc.txt"), vec![b'x'; 4096]).expect("doc");
    openssl(
        dir,
        &[
            "cms", "-sign", "-binary", "-md", "sha256", "-in", "doc.txt", "-signer", "leaf.pem",
            "-inkey", "leaf.key", "-outform", "DER", "-out", "doc.p7s",
        ],
    );

    let read = |f: &str| std::fs::read(dir.join(f)).expect("read");
    let (root, sig, doc, crl) = (
        read("root.pem"),
        read("doc.p7s"),
        read("doc.txt"),
        read("crl.der"),
    );
    println!(
        "CRL: {} bytes; signature: {} bytes; content: {} bytes",
        crl.len(),
        sig.len(),
        doc.len()
    );
    let root_der = relying_party::cert::certificate_der(&root, "root").expect("root");
    let root_x = relying_party::cert::parse(&root_der, "root").expect("root");
    let t = Instant::now();
    let list = RevocationList::load(&crl, &root_x).expect("CRL loads");
    println!(
        "RevocationList::load (parse + signature + index), {} entries: {:.1} ms",
        list.len(),
        t.elapsed().as_secs_f64() * 1000.0
    );
    let now = time::OffsetDateTime::now_utc();

    let cached = Verifier::new(&root, None, StatusSource::Crl(Arc::new(list))).expect("verifier");
    let r = cached.verify_document(&sig, Some(&doc), None, now);
    assert!(r.is_valid(), "{}", r.render(false));
    rate("relying-party, cached 10^5-entry CRL", n, || {
        assert!(cached
            .verify_document(&sig, Some(&doc), None, now)
            .is_valid());
    });
    let uncached = Verifier::new(&root, None, StatusSource::CrlBytes(Arc::new(crl.clone())))
        .expect("verifier");
    rate(
        "relying-party, 10^5-entry CRL re-parsed per verification",
        (n / 100).max(5),
        || {
            assert!(uncached
                .verify_document(&sig, Some(&doc), None, now)
                .is_valid());
        },
    );

    // A local OCSP responder: the ocsp-responder crate on 127.0.0.1, port 0.
    issue(dir, "ocsp", "/C=JP/CN=OCSP signer", "ocsp_ext");
    openssl(
        dir,
        &[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            "ocsp.key",
            "-outform",
            "DER",
            "-out",
            "ocsp.key.der",
        ],
    );
    let leaf_der = relying_party::cert::certificate_der(&read("leaf.pem"), "leaf").expect("leaf");
    let serial = relying_party::cert::parse(&leaf_der, "leaf")
        .expect("leaf")
        .raw_serial()
        .to_vec();
    let signer = KeySigner {
        key: aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&read("ocsp.key.der")).expect("ocsp key"),
        cert: relying_party::cert::certificate_der(&read("ocsp.pem"), "ocsp").expect("ocsp cert"),
    };
    let source = Arc::new(ocsp_responder::MemorySource::new());
    source.issue(policies::Hierarchy::Signing, &serial);
    let responder = ocsp_responder::Responder::new(
        ocsp_responder::Settings::from_policy(&policies::Policy::default_policy()),
        vec![ocsp_responder::Issuer {
            hierarchy: policies::Hierarchy::Signing,
            root: root_der.clone(),
            signer: Arc::new(signer),
        }],
        source,
        Arc::new(ocsp_responder::SystemClock),
    )
    .expect("responder");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr")).expect("send");
            let _ = responder
                .serve(listener, None, std::future::pending())
                .await;
        });
    });
    let url = format!("http://{}/ocsp", rx.recv().expect("responder address"));
    let ocsp = Verifier::new(&root, None, StatusSource::Ocsp(url.clone())).expect("verifier");
    let r = ocsp.verify_document(&sig, Some(&doc), None, time::OffsetDateTime::now_utc());
    assert!(r.is_valid(), "{}", r.render(false));
    println!(
        "OCSP status check: {}",
        r.check("status").map_or("", |c| c.reason.as_str())
    );
    rate(
        "relying-party, OCSP (ocsp-responder, HTTP, nonce, live-signed)",
        (n / 10).max(5),
        || {
            let r = ocsp.verify_document(&sig, Some(&doc), None, time::OffsetDateTime::now_utc());
            assert!(r.is_valid(), "{}", r.render(false));
        },
    );

    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let cms = [
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        "doc.p7s",
        "-content",
        "doc.txt",
        "-CAfile",
        "root.pem",
        "-out",
        "/dev/null",
    ];
    let m = (n / 20).max(5);
    rate(
        "openssl cms -verify (process per document), no revocation",
        m,
        || run(&cms),
    );
    // openssl cms has no -CRLfile: the CRL goes into the CAfile beside the root.
    std::fs::write(
        dir.join("root+crl.pem"),
        [read("root.pem"), read("crl.pem")].concat(),
    )
    .expect("write");
    let with_crl: Vec<&str> = cms
        .iter()
        .map(|a| if *a == "root.pem" { "root+crl.pem" } else { *a })
        .chain(["-crl_check"])
        .collect();
    rate(
        "openssl cms -verify -crl_check, same 10^5-entry CRL",
        m,
        || run(&with_crl),
    );
    let client = [
        "ocsp", "-issuer", "root.pem", "-cert", "leaf.pem", "-url", &url, "-CAfile", "root.pem",
    ];
    rate(
        "openssl cms -verify + openssl ocsp client, same responder",
        m,
        || {
            run(&cms);
            run(&client);
        },
    );
}
