//! CRL loading (parse, issuer, signature, extensions, index) on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

const ROOT: &[u8] = include_bytes!("../root.pem");

fuzz_target!(|data: &[u8]| {
    let der = relying_party::cert::der_from_pem_or_der(ROOT);
    let Ok(root) = relying_party::cert::parse(&der, "root") else { return };
    let _ = relying_party::crl::RevocationList::load(data, &root);
});
