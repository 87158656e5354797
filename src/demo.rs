//! `jpki demo`: the whole story in a temporary directory, step by step.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use policies::{Hierarchy, Sex};
use time::macros::date;

use ca::authority::{Authority, Event, NewResident};
use ca::clock::SystemClock;
use ca::error::{Error, Result};

struct Story {
    step: usize,
    started: Instant,
}

impl Story {
    fn step(&mut self, title: &str) {
        self.step += 1;
        println!("\n[{}] {title}", self.step);
    }
    fn line(&self, text: impl AsRef<str>) {
        println!("    {}", text.as_ref());
    }
}

/// A stand-in holder's key pair and CSR (RSA-2048 made by rcgen): the key never reaches the CA.
pub(crate) fn holder_csr() -> Result<Vec<u8>> {
    let key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .map_err(|e| Error::Invalid(format!("holder key: {e}")))?;
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .and_then(|p| p.serialize_request(&key))
        .map_err(|e| Error::Invalid(format!("holder CSR: {e}")))?;
    Ok(csr.der().to_vec())
}

pub fn run(keep: Option<&Path>) -> Result<()> {
    let tmp = tempfile::tempdir().map_err(Error::io("create a temporary directory"))?;
    let dir = match keep {
        Some(d) => d.to_path_buf(),
        None => tmp.path().join("data"),
    };
    let mut s = Story {
        step: 0,
        started: Instant::now(),
    };
    println!("jpki demo — a JPKI-style CA from card issuance to revocation");
    println!("data directory: {}", dir.display());

    s.step("Initialise both hierarchies (signing, user authentication) and their OCSP signers");
    let mut pass = [0u8; 24];
    aws_lc_rs::rand::fill(&mut pass)
        .map_err(|_| Error::Invalid("OS random generator failed".into()))?;
    let pass = hex::encode(pass);
    let a = Authority::init(
        &dir,
        policies::policy::DEFAULT_POLICY,
        pass.as_bytes(),
        Arc::new(SystemClock),
    )?;
    for h in Hierarchy::ALL {
        let (_, c) = x509_parser::parse_x509_certificate(&a.root(h).der)
            .map_err(|e| Error::Store(e.to_string()))?;
        s.line(format!("{h:<8} root  {}", c.subject()));
    }
    if keep.is_some() {
        s.line(format!("key passphrase (keep it): {pass}"));
    }

    s.step("Register two residents at their municipalities");
    let hanako = a.resident_add(&NewResident {
        name: "山田　花子".into(),
        birth: date!(1985 - 04 - 12),
        sex: Sex::Female,
        address: "東京都千代田区霞が関二丁目１番２号".into(),
        prefecture: "Tokyo".into(),
        municipality: "Chiyoda-ku".into(),
        card_expiry: date!(2035 - 04 - 12),
    })?;
    let ichiro = a.resident_add(&NewResident {
        name: "髙橋　一郎".into(),
        birth: date!(1990 - 02 - 28),
        sex: Sex::Male,
        address: "大阪府大阪市北区中之島一丁目３番２０号".into(),
        prefecture: "Osaka".into(),
        municipality: "Osaka-shi".into(),
        card_expiry: date!(2033 - 02 - 28),
    })?;
    s.line(format!("山田 花子 → {hanako}"));
    s.line(format!(
        "髙橋 一郎 → {ichiro} (髙 is outside JIS X 0208: written as 〓 with its substitute flag)"
    ));

    s.step("Each card makes its two key pairs and CSRs; the CA issues from the CSRs");
    let bar = indicatif::ProgressBar::new(4).with_message("issuing");
    let mut issued = Vec::new();
    for id in [&hanako, &ichiro] {
        for h in [Hierarchy::Auth, Hierarchy::Signing] {
            let csr = holder_csr()?;
            let i = a.issue(id, h, &csr)?;
            bar.inc(1);
            issued.push(i);
        }
    }
    bar.finish_and_clear();
    for i in &issued {
        s.line(format!(
            "{:<8} {} → {}  notAfter {} ({:?})",
            i.hierarchy, i.serial, i.resident, i.not_after, i.bound
        ));
    }
    let sign = issued
        .iter()
        .find(|i| i.resident == hanako && i.hierarchy == Hierarchy::Signing)
        .ok_or_else(|| Error::Invalid("demo: no signing certificate".into()))?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&sign.der).map_err(|e| Error::Store(e.to_string()))?;
    s.line(format!(
        "signing certificate subject: {} (no name in it)",
        cert.subject()
    ));
    s.line("its subjectAltName carries the four attributes as otherNames 1.2.392.200149.8.5.5.1/.4/.3/.5/.2/.6");

    s.step("山田 花子 moves to Yokohama: the register revokes her signing certificate by rule");
    let out = a.event(
        &hanako,
        &Event::Move {
            address: "神奈川県横浜市中区日本大通１番地".into(),
            prefecture: Some("Kanagawa".into()),
            municipality: Some("Yokohama-shi".into()),
        },
    )?;
    for r in &out.revocations {
        s.line(format!(
            "{} {}:{} ({})",
            r.status.as_str(),
            r.hierarchy,
            r.serial,
            r.reason
        ));
    }
    s.line("her authentication certificate stays valid (it carries no personal data)");

    s.step("髙橋 一郎 reports his card lost: both certificates go on hold");
    let out = a.event(&ichiro, &Event::CardLost)?;
    for r in &out.revocations {
        s.line(format!(
            "{} {}:{} ({})",
            r.status.as_str(),
            r.hierarchy,
            r.serial,
            r.reason
        ));
    }

    s.step("Audit trail");
    let n = a.audit_verify()?;
    s.line(format!("hash chain intact: {n} records"));

    println!("\nSummary");
    println!(
        "    {:<12} {:<8} {:<34} {:<8} {}",
        "resident", "kind", "serial", "status", "reason"
    );
    for id in [&hanako, &ichiro] {
        for v in a.cert_list(Some(id))? {
            println!(
                "    {:<12} {:<8} {:<34} {:<8} {}",
                &id[..id.len().min(12)],
                v.hierarchy,
                v.serial,
                v.status.as_str(),
                v.reason
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "-".into())
            );
        }
    }
    println!(
        "\ndemo finished in {:.1} s",
        s.started.elapsed().as_secs_f64()
    );
    Ok(())
}
