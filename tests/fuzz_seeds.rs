//! The fuzz targets' seed corpora replayed on stable, so that `cargo test` exercises every
//! target's entry point (the campaigns themselves need nightly and libFuzzer: RELIABILITY.md).
//!
//! * `fuzz/` (CSR, admin requests, platform JSON, configuration file, journal and snapshot
//!   records): the very functions the targets call (`fuzz/src/lib.rs`, included below); a
//!   seed named `ok-*` must be accepted and one named `bad-*` refused, so the seeds keep
//!   reaching past the first check as the parsers change.
//! * `ocsp-responder/fuzz` (`parse_request`) and `relying-party/fuzz` (`cms`, `crl`, `ocsp`):
//!   the same calls as their targets, over their committed seeds.

use std::path::{Path, PathBuf};
use std::sync::Arc;

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod harness;

fn seeds(dir: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p: PathBuf = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

/// Every seed of `fuzz/seeds/<target>` through `entry`: `ok-*` accepted, `bad-*` refused.
fn replay(target: &str, entry: fn(&[u8]) -> bool) {
    let mut named = 0;
    for (name, bytes) in seeds(&format!("fuzz/seeds/{target}")) {
        let accepted = entry(&bytes);
        if name.starts_with("ok-") {
            assert!(accepted, "{target}: seed {name} is refused");
            named += 1;
        } else if name.starts_with("bad-") {
            assert!(!accepted, "{target}: seed {name} is accepted");
            named += 1;
        }
    }
    assert!(named > 0, "{target}: no ok-/bad- seeds");
}

#[test]
fn csr_seeds() {
    replay("csr", harness::csr);
}

#[test]
fn admin_request_seeds() {
    replay("admin_request", harness::admin_request);
}

#[test]
fn platform_json_seeds() {
    replay("platform_json", harness::platform_json);
}

#[test]
fn config_seeds() {
    replay("config", harness::config);
}

#[test]
fn journal_seeds() {
    replay("journal", harness::journal);
}

#[test]
fn ocsp_request_seeds() {
    use ocsp_responder::request::parse;
    let mut parsed = 0;
    for (name, bytes) in seeds("ocsp-responder/fuzz/seeds/parse_request") {
        if let Ok(p) = parse(&bytes, 64) {
            assert!(!p.cert_ids.is_empty() && p.cert_ids.len() <= 64, "{name}");
            parsed += 1;
        }
        if let Ok(text) = std::str::from_utf8(&bytes) {
            if let Some(der) = ocsp_responder::http::decode_get(text) {
                let _ = parse(&der, 64);
            }
        }
    }
    assert!(parsed > 0, "no OCSP request seed parses");
}

/// The relying party's targets over their seeds, with their fixtures.
#[test]
fn relying_party_seeds() {
    use relying_party::cert;
    let fixture = |f: &str| {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("relying-party/fuzz")
                .join(f),
        )
        .unwrap()
    };
    let (root_pem, leaf_pem, content) =
        (fixture("root.pem"), fixture("leaf.pem"), fixture("doc.txt"));
    let (root_der, leaf_der) = (
        cert::der_from_pem_or_der(&root_pem),
        cert::der_from_pem_or_der(&leaf_pem),
    );
    let root = cert::parse(&root_der, "root").unwrap();
    let leaf = cert::parse(&leaf_der, "leaf").unwrap();
    let now = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();

    let v = relying_party::Verifier::new(
        &root_pem,
        None,
        relying_party::StatusSource::CrlBytes(Arc::new(Vec::new())),
    )
    .unwrap();
    for (_, bytes) in seeds("relying-party/fuzz/seeds/cms") {
        let _ = v
            .verify_document(&bytes, Some(&content), None, now)
            .render(true);
        let _ = v.verify_document(&bytes, None, None, now);
    }
    for (name, bytes) in seeds("relying-party/fuzz/seeds/crl") {
        assert!(
            relying_party::crl::RevocationList::load(&bytes, &root).is_ok(),
            "crl seed {name}"
        );
    }
    let q = relying_party::ocsp::Query::with_nonce(&leaf, &root, &[7; 16]).unwrap();
    for (_, bytes) in seeds("relying-party/fuzz/seeds/ocsp") {
        let _ = q.check(&bytes, &root, now);
    }
}
