//! Stored-answer fixtures shared by the answer store's crash test and its microbenchmark
//! (`#[path]`-included; the store's own unit tests keep theirs beside the code).
#![allow(dead_code)]

use bytes::Bytes;
use ocsp_responder::stored::{StoredAnswer, ETAG, KEY_HASH};
use ocsp_responder::{Status, Times};

/// A DER TLV with a definite length of up to two octets (the fixtures stay under 64 KiB).
pub fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    match body.len() {
        n if n < 128 => v.push(n as u8),
        n if n < 256 => v.extend_from_slice(&[0x81, n as u8]),
        n => v.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
    }
    v.extend_from_slice(body);
    v
}

/// A `good` answer around `der`, produced at a fixed time and valid for a day.
pub fn good(der: Vec<u8>) -> StoredAnswer {
    let t = time::OffsetDateTime::from_unix_timestamp(1_780_000_000).expect("a valid time");
    StoredAnswer {
        status: Status::Good,
        times: Times {
            produced_at: t,
            this_update: t,
            next_update: t + time::Duration::days(1),
        },
        issuer_key: [7; KEY_HASH],
        etag: [b'e'; ETAG],
        der: Bytes::from(der),
    }
}
