//! Request parsing must never panic: arbitrary bytes as a POST body and as a GET path segment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocsp_responder::http::decode_get;
use ocsp_responder::request::{parse, MAX_NONCE};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = parse(data, 64) {
        assert!(!p.cert_ids.is_empty() && p.cert_ids.len() <= 64);
        if let Some(n) = &p.nonce {
            assert!(n.extn_value.as_bytes().len() <= MAX_NONCE + 2);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(der) = decode_get(text) {
            let _ = parse(&der, 64);
        }
    }
});
