//! The OCSP response check on arbitrary bytes (as if from a hostile responder).
#![no_main]

use libfuzzer_sys::fuzz_target;

const ROOT: &[u8] = include_bytes!("../root.pem");
const LEAF: &[u8] = include_bytes!("../leaf.pem");

fuzz_target!(|data: &[u8]| {
    let (root_der, leaf_der) = (relying_party::cert::der_from_pem_or_der(ROOT), relying_party::cert::der_from_pem_or_der(LEAF));
    let (Ok(root), Ok(leaf)) = (relying_party::cert::parse(&root_der, "root"), relying_party::cert::parse(&leaf_der, "leaf")) else {
        return;
    };
    let Ok(q) = relying_party::ocsp::Query::with_nonce(&leaf, &root, &[7; 16]) else { return };
    let now = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let _ = q.check(data, &root, now);
});
