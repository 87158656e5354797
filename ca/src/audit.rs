//! The audit trail: every issuance, revocation and resident event appends a record to a
//! hash chain, in the same transaction as the change it records. Each record carries the
//! SHA-256 of its predecessor and its own hash over `prev || canonical JSON of the record`;
//! the chain's head (sequence, hash) is stored beside the records, so a changed, inserted or
//! removed record — including one cut off the end — breaks `jpki audit verify`.
//!
//! Pure code: [`link`] makes the next record from the head and what to record (every storage
//! engine calls it when it commits), [`verify`] walks records and checks them against the
//! head. Nothing here touches storage.
//!
//! Records name certificates by serial and residents by their opaque id; they never hold the
//! four attributes (those live only in the register).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::error::{Error, Result};

/// An audit record to append: what happened, when, to what. Linked into the chain at commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditIntent {
    pub at: OffsetDateTime,
    pub action: String,
    pub subject: String,
    pub detail: String,
}

/// One audit record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// `init`, `issue`, `revoke`, `hold`, `resident-add`, `event:<kind>`, ...
    pub action: String,
    /// The serials or resident id concerned.
    pub subject: String,
    /// Non-personal detail: kind, reason, outcome.
    pub detail: String,
    /// Hex SHA-256 of the previous record (64 zeros for the first).
    pub prev: String,
    /// Hex SHA-256 of `prev` and this record without `hash`.
    pub hash: String,
}

#[derive(Serialize)]
struct Unsigned<'a> {
    seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
    action: &'a str,
    subject: &'a str,
    detail: &'a str,
    prev: &'a str,
}

/// The chain's head: the last record's sequence number and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn digest(r: &Unsigned<'_>) -> Result<String> {
    let body =
        serde_json::to_vec(r).map_err(|e| Error::Store(format!("encode an audit record: {e}")))?;
    let mut h = Sha256::new();
    h.update(r.prev.as_bytes());
    h.update(&body);
    Ok(hex::encode(h.finalize()))
}

/// The record that follows `head` (the first one when there is no head) for `a`, and the
/// chain's new head. Every storage engine links records with this when it commits.
pub fn link(head: Option<&Head>, a: &AuditIntent) -> Result<(Record, Head)> {
    let (seq, prev) = match head {
        Some(h) => (h.seq + 1, h.hash.clone()),
        None => (0, GENESIS.to_owned()),
    };
    let hash = digest(&Unsigned {
        seq,
        at: a.at,
        action: &a.action,
        subject: &a.subject,
        detail: &a.detail,
        prev: &prev,
    })?;
    let record = Record {
        seq,
        at: a.at,
        action: a.action.clone(),
        subject: a.subject.clone(),
        detail: a.detail.clone(),
        prev,
        hash: hash.clone(),
    };
    Ok((record, Head { seq, hash }))
}

/// The head after appending `record` verbatim (as copied from another store): it must follow
/// `head` (the next sequence number, `prev` the head's hash). Its hash is not recomputed, so a
/// copied chain is byte for byte the original and [`verify`] judges it as it judged the source.
/// Every storage engine calls this for [`crate::storage::Tx::import_audit`] at commit.
pub fn follow(head: Option<&Head>, record: &Record) -> Result<Head> {
    let (seq, prev) = match head {
        Some(h) => (h.seq + 1, h.hash.as_str()),
        None => (0, GENESIS),
    };
    if record.seq != seq || record.prev != prev {
        return Err(Error::Store(format!(
            "imported audit record {} does not follow the chain's head (expected record {seq})",
            record.seq
        )));
    }
    Ok(Head {
        seq,
        hash: record.hash.clone(),
    })
}

/// Walks the chain: `records` in storage order, `head` as stored. Returns the number of
/// records, or where the chain breaks.
pub fn verify(
    records: impl IntoIterator<Item = Result<Record>>,
    head: Option<Head>,
) -> Result<u64> {
    let mut expect_seq = 0u64;
    let mut prev = GENESIS.to_owned();
    for r in records {
        let r = r.map_err(|e| Error::AuditBroken {
            seq: expect_seq,
            problem: format!("record does not decode ({e})"),
        })?;
        if r.seq != expect_seq {
            return Err(Error::AuditBroken {
                seq: expect_seq,
                problem: format!(
                    "expected record {expect_seq}, found {} (a record was removed or inserted)",
                    r.seq
                ),
            });
        }
        if r.prev != prev {
            return Err(Error::AuditBroken {
                seq: r.seq,
                problem:
                    "previous-hash link does not match (a record was changed, inserted or removed)"
                        .into(),
            });
        }
        let unsigned = Unsigned {
            seq: r.seq,
            at: r.at,
            action: &r.action,
            subject: &r.subject,
            detail: &r.detail,
            prev: &r.prev,
        };
        if digest(&unsigned)? != r.hash {
            return Err(Error::AuditBroken {
                seq: r.seq,
                problem: "record hash does not match its content (the record was changed)".into(),
            });
        }
        prev = r.hash;
        expect_seq += 1;
    }
    match head {
        None if expect_seq == 0 => Ok(0),
        Some(h) if h.seq + 1 == expect_seq && h.hash == prev => Ok(expect_seq),
        Some(h) => Err(Error::AuditBroken {
            seq: h.seq,
            problem: format!(
                "the chain ends at record {} but its head says {} (records were cut off the end)",
                expect_seq.saturating_sub(1),
                h.seq
            ),
        }),
        None => Err(Error::AuditBroken {
            seq: 0,
            problem: "records exist but the chain head is missing".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn chain(n: u64) -> (Vec<Record>, Option<Head>) {
        let mut head = None;
        let mut out = Vec::new();
        for i in 0..n {
            let (r, h) = link(
                head.as_ref(),
                &AuditIntent {
                    at: datetime!(2026-11-27 00:00 UTC),
                    action: "issue".into(),
                    subject: format!("serial-{i}"),
                    detail: "signing".into(),
                },
            )
            .unwrap();
            out.push(r);
            head = Some(h);
        }
        (out, head)
    }

    fn check(records: &[Record], head: Option<Head>) -> Result<u64> {
        verify(records.iter().cloned().map(Ok), head)
    }

    #[test]
    fn an_intact_chain_verifies() {
        let (r, h) = chain(5);
        assert_eq!(check(&r, h).unwrap(), 5);
        assert_eq!(check(&[], None).unwrap(), 0);
    }

    #[test]
    fn a_changed_record_is_detected() {
        let (mut r, h) = chain(5);
        r[2].detail = "auth".into();
        let e = check(&r, h).unwrap_err().to_string();
        assert!(e.contains("record 2") && e.contains("changed"), "{e}");
    }

    #[test]
    fn a_removed_record_is_detected() {
        let (mut r, h) = chain(5);
        r.remove(1);
        assert!(check(&r, h).is_err());
        let (mut r, h) = chain(5);
        r.pop();
        let e = check(&r, h).unwrap_err().to_string();
        assert!(e.contains("cut off"), "{e}");
        let (r, _) = chain(2);
        assert!(check(&r, None)
            .unwrap_err()
            .to_string()
            .contains("head is missing"));
    }

    #[test]
    fn an_inserted_record_is_detected() {
        let (mut r, h) = chain(3);
        // A forged record 2 that links to record 1, the real record 2 renumbered to 3.
        let (forged, _) = link(
            Some(&Head {
                seq: 1,
                hash: r[1].hash.clone(),
            }),
            &AuditIntent {
                at: r[1].at,
                action: "revoke".into(),
                subject: "x".into(),
                detail: "forged".into(),
            },
        )
        .unwrap();
        r[2].seq = 3;
        r.insert(2, forged);
        assert!(check(&r, h).is_err());
    }
}
