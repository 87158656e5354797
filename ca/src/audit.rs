//! The audit trail: every issuance, revocation and resident event appends a record to a
//! hash chain, in the same transaction as the change it records. Each record carries the
//! SHA-256 of its predecessor and its own hash over `prev || canonical JSON of the record`;
//! the chain's head (sequence, hash) is kept in the meta table, so a changed, inserted or
//! removed record — including one cut off the end — breaks `jpki audit verify`.
//!
//! Records name certificates by serial and residents by their opaque id; they never hold the
//! four attributes (those live only in the register).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::records::{from_json, json};
use crate::store::{AuditIntent, Store, Table, TxResult, Txn};

const HEAD: &[u8] = b"audit_head";

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

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Head {
    seq: u64,
    hash: String,
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn digest(r: &Unsigned<'_>) -> Result<String> {
    let body = json(r)?;
    let mut h = Sha256::new();
    h.update(r.prev.as_bytes());
    h.update(&body);
    Ok(hex::encode(h.finalize()))
}

/// Appends a record inside `txn` (the caller's transaction); the store links it into the
/// chain when the transaction commits.
pub fn append(
    txn: &dyn Txn,
    at: OffsetDateTime,
    action: &str,
    subject: &str,
    detail: &str,
) -> TxResult<()> {
    txn.audit(AuditIntent {
        at,
        action: action.to_owned(),
        subject: subject.to_owned(),
        detail: detail.to_owned(),
    })
}

/// Links one record into the chain: reads the head, writes the record and the new head.
/// Called by the store while committing.
pub(crate) fn chain(txn: &dyn Txn, a: &AuditIntent) -> TxResult<()> {
    let (at, action, subject, detail) = (
        a.at,
        a.action.as_str(),
        a.subject.as_str(),
        a.detail.as_str(),
    );
    let head: Option<Head> = txn
        .get(Table::Meta, HEAD)?
        .map(|b| from_json(&b))
        .transpose()?;
    let (seq, prev) = match head {
        Some(h) => (h.seq + 1, h.hash),
        None => (0, GENESIS.to_owned()),
    };
    let unsigned = Unsigned {
        seq,
        at,
        action,
        subject,
        detail,
        prev: &prev,
    };
    let hash = digest(&unsigned)?;
    let record = Record {
        seq,
        at,
        action: action.into(),
        subject: subject.into(),
        detail: detail.into(),
        prev,
        hash: hash.clone(),
    };
    txn.insert(Table::Audit, &seq.to_be_bytes(), &json(&record)?)?;
    txn.insert(Table::Meta, HEAD, &json(&Head { seq, hash })?)?;
    Ok(())
}

/// Walks the chain; returns the number of records, or where it breaks.
pub fn verify(store: &dyn Store) -> Result<u64> {
    let mut expect_seq = 0u64;
    let mut prev = GENESIS.to_owned();
    for item in store.scan(Table::Audit, b"") {
        let (k, v) = item?;
        let key_seq =
            u64::from_be_bytes(k.as_slice().try_into().map_err(|_| Error::AuditBroken {
                seq: expect_seq,
                problem: "malformed key".into(),
            })?);
        let r: Record = from_json(&v).map_err(|_| Error::AuditBroken {
            seq: key_seq,
            problem: "record does not decode".into(),
        })?;
        if key_seq != expect_seq || r.seq != key_seq {
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
    let head: Option<Head> = store
        .get(Table::Meta, HEAD)?
        .map(|b| from_json(&b))
        .transpose()?;
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

/// All records, in order.
pub fn records(store: &dyn Store) -> Result<Vec<Record>> {
    store
        .scan(Table::Audit, b"")
        .map(|r| r.and_then(|(_, v)| from_json(&v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;
    use time::macros::datetime;

    fn chain(n: u64) -> (tempfile::TempDir, SledStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        for i in 0..n {
            s.transact(&|t| {
                append(
                    t,
                    datetime!(2026-11-27 00:00 UTC),
                    "issue",
                    &format!("serial-{i}"),
                    "signing",
                )
            })
            .unwrap();
        }
        (dir, s)
    }

    #[test]
    fn an_intact_chain_verifies() {
        let (_d, s) = chain(5);
        assert_eq!(verify(&s).unwrap(), 5);
    }

    #[test]
    fn a_changed_record_is_detected() {
        let (_d, s) = chain(5);
        let k = 2u64.to_be_bytes();
        let mut r: Record = from_json(&s.get(Table::Audit, &k).unwrap().unwrap()).unwrap();
        r.detail = "auth".into();
        s.transact(&|t| t.insert(Table::Audit, &k, &json(&r)?))
            .unwrap();
        let e = verify(&s).unwrap_err().to_string();
        assert!(e.contains("record 2") && e.contains("changed"), "{e}");
    }

    #[test]
    fn a_removed_record_is_detected() {
        let (_d, s) = chain(5);
        s.transact(&|t| t.remove(Table::Audit, &1u64.to_be_bytes()))
            .unwrap();
        assert!(verify(&s).is_err());
        let (_d, s) = chain(5);
        s.transact(&|t| t.remove(Table::Audit, &4u64.to_be_bytes()))
            .unwrap();
        let e = verify(&s).unwrap_err().to_string();
        assert!(e.contains("cut off"), "{e}");
    }

    #[test]
    fn an_inserted_record_is_detected() {
        let (_d, s) = chain(3);
        // Re-number: move record 2 to 3 and insert a forged record 2 that links to record 1.
        let r1: Record =
            from_json(&s.get(Table::Audit, &1u64.to_be_bytes()).unwrap().unwrap()).unwrap();
        let unsigned = Unsigned {
            seq: 2,
            at: r1.at,
            action: "revoke",
            subject: "x",
            detail: "forged",
            prev: &r1.hash,
        };
        let forged = Record {
            seq: 2,
            at: r1.at,
            action: "revoke".into(),
            subject: "x".into(),
            detail: "forged".into(),
            prev: r1.hash.clone(),
            hash: digest(&unsigned).unwrap(),
        };
        let mut r2: Record =
            from_json(&s.get(Table::Audit, &2u64.to_be_bytes()).unwrap().unwrap()).unwrap();
        r2.seq = 3;
        s.transact(&|t| {
            t.insert(Table::Audit, &2u64.to_be_bytes(), &json(&forged)?)?;
            t.insert(Table::Audit, &3u64.to_be_bytes(), &json(&r2)?)
        })
        .unwrap();
        assert!(verify(&s).is_err());
    }
}
