//! The whole `jpki verify` pipeline on arbitrary signature bytes: CMS (DER/BER/PEM) parsing,
//! signed attributes, signer lookup, path, kind, attributes. Status comes from an empty CRL
//! (no network), so it fails fast. Must never panic.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use relying_party::{StatusSource, Verifier};

const ROOT: &[u8] = include_bytes!("../root.pem");
const CONTENT: &[u8] = include_bytes!("../doc.txt");

fuzz_target!(|data: &[u8]| {
    let Ok(v) = Verifier::new(ROOT, None, StatusSource::CrlBytes(Arc::new(Vec::new()))) else { return };
    let now = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let _ = v.verify_document(data, Some(CONTENT), None, now).render(true);
    let _ = v.verify_document(data, None, None, now);
});
