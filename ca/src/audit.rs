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
//!
//! ## Record formats
//! * **1** — stores made before officers existed: `{seq, at, action, subject, detail, prev}`
//!   is hashed; no actor.
//! * **2** — every record made now: `{v: 2, seq, at, actor, action, subject, detail, prev}` is
//!   hashed, so the actor ([`crate::officers::Actor::label`]) is as tamper-evident as the rest.
//!
//! A format-1 record hashes exactly as it did, so old chains still verify; once a chain holds
//! a format-2 record, a format-1 record after it is refused (an actor cannot be stripped by
//! "downgrading" a record).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::error::{Error, Result};

/// The record format [`link`] writes.
pub const FORMAT: u32 = 2;

/// An audit record to append: who did what, when, to what. Linked into the chain at commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditIntent {
    pub at: OffsetDateTime,
    /// Who acted ([`crate::officers::Actor::label`]).
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
}

fn format_1() -> u32 {
    1
}

fn is_format_1(v: &u32) -> bool {
    *v == 1
}

/// One audit record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    /// The record format (see the module docs); absent in format 1.
    #[serde(default = "format_1", skip_serializing_if = "is_format_1")]
    pub v: u32,
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who acted (format 2 on); `None` in format 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// `init`, `issue`, `revoke`, `hold`, `resident-add`, `event:<kind>`, `refused`, ...
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

/// What is hashed: in format 1 `v` and `actor` are absent (skipped), so the bytes are those
/// earlier versions hashed.
#[derive(Serialize)]
struct Unsigned<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    v: Option<u32>,
    seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: Option<&'a str>,
    action: &'a str,
    subject: &'a str,
    detail: &'a str,
    prev: &'a str,
}

impl<'a> Unsigned<'a> {
    fn of(r: &'a Record) -> Result<Unsigned<'a>> {
        let (v, actor) = match (r.v, r.actor.as_deref()) {
            (1, None) => (None, None),
            (2, Some(actor)) => (Some(2), Some(actor)),
            (v, _) => {
                return Err(Error::AuditBroken {
                    seq: r.seq,
                    problem: format!("record format {v} is unknown or lacks its actor"),
                })
            }
        };
        Ok(Unsigned {
            v,
            seq: r.seq,
            at: r.at,
            actor,
            action: &r.action,
            subject: &r.subject,
            detail: &r.detail,
            prev: &r.prev,
        })
    }
}

/// A signed checkpoint of the chain's head ([`crate::checkpoint`]): the CA's statement that
/// the record `seq` had hash `hash` at `at`, signed with the checkpoint key (RSA PKCS#1 v1.5
/// SHA-256 over [`Checkpoint::statement`]), with the signer's certificate. Kept apart from the
/// chain (its own table in every engine): a checkpoint is evidence about the chain, not an
/// event in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: u64,
    pub hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The signature over [`Checkpoint::statement`] (base64).
    pub signature: String,
    /// The signer's certificate (PEM).
    pub cert_pem: String,
}

impl Checkpoint {
    /// The exact bytes signed: three lines of ASCII, each `name=value\n`, after a first line
    /// naming the format (docs/officers.md shows how to check one with `openssl dgst`).
    pub fn statement(seq: u64, hash: &str, at: OffsetDateTime) -> Result<String> {
        let at = at
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| Error::Invalid(format!("checkpoint time: {e}")))?;
        Ok(format!(
            "jpki-audit-checkpoint-v1\nseq={seq}\nhash={hash}\ntime={at}\n"
        ))
    }
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
    let mut record = Record {
        v: FORMAT,
        seq,
        at: a.at,
        actor: Some(a.actor.clone()),
        action: a.action.clone(),
        subject: a.subject.clone(),
        detail: a.detail.clone(),
        prev,
        hash: String::new(),
    };
    record.hash = digest(&Unsigned::of(&record)?)?;
    let hash = record.hash.clone();
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
    let mut format = 1u32;
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
        if r.v < format {
            return Err(Error::AuditBroken {
                seq: r.seq,
                problem: format!(
                    "a format-{} record after a format-{format} one (an actor was stripped?)",
                    r.v
                ),
            });
        }
        format = r.v;
        if digest(&Unsigned::of(&r)?)? != r.hash {
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
                    actor: "root-on-host(uid=0)".into(),
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
                actor: "officer:OF01(ca-officer)".into(),
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

    /// Two records as the audit trail stored them before officers existed (format 1, no
    /// actor), hashes as those versions computed them.
    const FORMAT_1: [&str; 2] = [
        r#"{"seq":0,"at":"2026-11-27T00:00:00Z","action":"issue","subject":"serial-0","detail":"signing","prev":"0000000000000000000000000000000000000000000000000000000000000000","hash":"81eba728052e0d5125a932c3b5a8b758b9a2ead028c8c6858597c80ead1c19a4"}"#,
        r#"{"seq":1,"at":"2026-11-27T00:00:00Z","action":"issue","subject":"serial-1","detail":"signing","prev":"81eba728052e0d5125a932c3b5a8b758b9a2ead028c8c6858597c80ead1c19a4","hash":"d51b89dc0ff5f1ca2c0178329f70b3b162f85145bb17fbe03b171f99ad625e7a"}"#,
    ];

    fn old_chain() -> Vec<Record> {
        FORMAT_1
            .iter()
            .map(|t| serde_json::from_str(t).unwrap())
            .collect()
    }

    #[test]
    fn a_chain_made_before_officers_still_verifies_and_grows_with_actors() {
        let mut r = old_chain();
        assert!(r.iter().all(|r| r.v == 1 && r.actor.is_none()));
        // Stored again unchanged: format 1 has no `v` or `actor` field.
        assert_eq!(serde_json::to_string(&r[0]).unwrap(), FORMAT_1[0]);
        let head = Head {
            seq: 1,
            hash: r[1].hash.clone(),
        };
        assert_eq!(check(&r, Some(head.clone())).unwrap(), 2);
        let (next, head) = link(
            Some(&head),
            &AuditIntent {
                at: datetime!(2026-12-01 00:00 UTC),
                actor: "root-on-host(uid=0)".into(),
                action: "revoke".into(),
                subject: "serial-0".into(),
                detail: "keyCompromise".into(),
            },
        )
        .unwrap();
        assert_eq!(next.v, 2);
        r.push(next);
        assert_eq!(check(&r, Some(head)).unwrap(), 3);
    }

    #[test]
    fn the_actor_is_covered_by_the_hash_and_cannot_be_stripped() {
        let (mut r, h) = chain(3);
        r[1].actor = Some("officer:OF02(auditor)".into());
        let e = check(&r, h.clone()).unwrap_err().to_string();
        assert!(e.contains("record 1") && e.contains("changed"), "{e}");
        // Downgraded to format 1 (actor removed, hash recomputed the old way): refused.
        let (mut r, h) = chain(3);
        r[2].v = 1;
        r[2].actor = None;
        r[2].hash = digest(&Unsigned::of(&r[2]).unwrap()).unwrap();
        let h = h.map(|h| Head {
            hash: r[2].hash.clone(),
            ..h
        });
        let e = check(&r, h).unwrap_err().to_string();
        assert!(e.contains("format-1 record after a format-2"), "{e}");
        // A format-2 record without its actor does not verify.
        let (mut r, h) = chain(1);
        r[0].actor = None;
        assert!(check(&r, h).is_err());
    }
}
