//! Every key layout and record encoding of the sled engine, and nothing else: what the
//! tables of [`super::kv`] hold.
//!
//! | table | key | value |
//! |---|---|---|
//! | certs | hierarchy · serial | [`CertRecord`]: format byte · JSON head · DER ([`cert_to_store`]) |
//! | by_holder | holder id · 0x00 · hierarchy · serial | empty |
//! | status | hierarchy · serial | [`StatusRecord`] (JSON) |
//! | revoked | CRL ([`scope_key`]: hierarchy (generation ≥ 2: hierarchy | 0x80 · generation u32 BE) · u16 BE partition, 0xFFFE · prefecture · 0 · municipality · 0, or 0xFFFF = CA-level) · serial | [`RevokedEntry`] (fixed 26 bytes) |
//! | keys | SHA-256 of the SubjectPublicKeyInfo | holder id · 0x00 · hierarchy |
//! | residents | holder id | [`Resident`] (JSON) |
//! | scheduled | due time (i64 BE, unix seconds) · holder id | event kind (`emigrate`) |
//! | meta | `serial/<h>` · `audit_head` · `journal_seq` | counter (u64 BE) · [`Head`] (JSON) · journal position |
//! | audit | sequence (u64 BE) | [`Record`] (JSON) |
//! | crl | CRL ([`scope_key`]) · (`/dirty`) | the publisher's state · `1` while the CRL is dirty |
//! | operators | `pf/` id · `pfname/` name · `key/` hex SHA-256 of a client SPKI · `sp/` id · `spname/` PF id `/` name · `u/` month `\0` PF `\0` SP `\0` endpoint `\0` certificate type | [`Operator`] (JSON) · PF id · PF id · [`ServiceProvider`] (JSON) · SP id · usage count (u64 BE) |
//! | consents | `c/` id · `h/` holder `\0` SP id `\0` consent id · `n/` SP id `\0` nonce | [`Consent`] (JSON) · empty · consent id |
//! | access | holder `\0` time (i128 BE ns) · sequence (u64 BE) | [`Access`] (JSON) |
//! | officers | `o/` id · `name/` name · `key/` hex SHA-256 of a client SPKI | [`Officer`] (JSON) · officer id · officer id |

use policies::profile::Scope;

use crate::storage::{CrlId, Generation};
use policies::{Hierarchy, Reason};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::kv::{Table, TxResult, Txn};
use crate::audit::{AuditIntent, Head, Record};
use crate::error::{Error, Result};
use crate::officers::Officer;
use crate::records::platform::{Access, Consent, Operator, ServiceProvider, Usage};
use crate::records::{CertKind, CertRecord, Resident, RevokedEntry, StatusChange, StatusRecord};
use crate::storage::{KeyFingerprint, KeyOwner, Scheduled, ScheduledKind};

pub fn json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::Store(format!("encode: {e}")))
}

pub fn from_json<'a, T: Deserialize<'a>>(b: &'a [u8]) -> Result<T> {
    serde_json::from_slice(b).map_err(|e| Error::Store(format!("corrupt record: {e}")))
}

// ----- certificates ----------------------------------------------------------------------

/// The record as the store keeps it: `1 · JSON length (u32 BE) · JSON of every field but
/// the certificate · the certificate's DER`. The DER stays binary (no base64 to encode
/// and decode on every issuance and lookup).
pub fn cert_to_store(c: &CertRecord) -> Result<Vec<u8>> {
    let head = serde_json::to_vec(&CertHead::from(c))
        .map_err(|e| Error::Store(format!("encode a certificate record: {e}")))?;
    let len = u32::try_from(head.len())
        .map_err(|_| Error::Store("certificate record too large".into()))?;
    let mut out = Vec::with_capacity(5 + head.len() + c.der.len());
    out.push(STORE_FORMAT);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(&c.der);
    Ok(out)
}

/// Reads a record written by [`cert_to_store`].
pub fn cert_from_store(b: &[u8]) -> Result<CertRecord> {
    let corrupt = |what: &str| Error::Store(format!("corrupt certificate record: {what}"));
    let (&format, rest) = b.split_first().ok_or_else(|| corrupt("empty"))?;
    if format != STORE_FORMAT {
        return Err(corrupt("unknown format"));
    }
    let (len, rest) = rest
        .split_at_checked(4)
        .ok_or_else(|| corrupt("truncated"))?;
    let len = u32::from_be_bytes(len.try_into().map_err(|_| corrupt("truncated"))?) as usize;
    let (head, der) = rest
        .split_at_checked(len)
        .ok_or_else(|| corrupt("truncated"))?;
    let head: CertHead = serde_json::from_slice(head).map_err(|e| corrupt(&e.to_string()))?;
    Ok(CertRecord {
        hierarchy: head.hierarchy,
        serial: head.serial,
        kind: head.kind,
        holder: head.holder,
        partition: head.partition,
        generation: head.generation,
        not_before: head.not_before,
        not_after: head.not_after,
        der: der.to_vec(),
    })
}

/// Format byte of [`cert_to_store`].
const STORE_FORMAT: u8 = 1;

/// A [`CertRecord`] without its DER, as stored.
#[derive(Serialize, Deserialize)]
struct CertHead {
    hierarchy: Hierarchy,
    #[serde(with = "hex::serde")]
    serial: Vec<u8>,
    kind: CertKind,
    holder: Option<String>,
    partition: Option<Scope>,
    /// Absent for generation 1 (records written before root generations read as it).
    #[serde(
        default = "crate::records::first_generation",
        skip_serializing_if = "is_first"
    )]
    generation: u32,
    #[serde(with = "time::serde::rfc3339")]
    not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    not_after: OffsetDateTime,
}

impl From<&CertRecord> for CertHead {
    fn from(c: &CertRecord) -> CertHead {
        CertHead {
            hierarchy: c.hierarchy,
            serial: c.serial.clone(),
            kind: c.kind,
            holder: c.holder.clone(),
            partition: c.partition.clone(),
            generation: c.generation,
            not_before: c.not_before,
            not_after: c.not_after,
        }
    }
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if takes a reference
fn is_first(g: &u32) -> bool {
    *g == 1
}

/// `hierarchy · serial`: the key of a certificate in `certs` and `status`.
pub fn cert_key(h: Hierarchy, serial: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + serial.len());
    k.push(h.tag());
    k.extend_from_slice(serial);
    k
}

/// Splits a `hierarchy · serial` key.
pub fn split_cert_key(k: &[u8]) -> Result<(Hierarchy, &[u8])> {
    k.split_first()
        .and_then(|(t, s)| Some((Hierarchy::from_tag(*t)?, s)))
        .ok_or_else(|| Error::Store("malformed certificate key".into()))
}

/// `holder · 0x00 · hierarchy · serial`.
pub fn holder_key(holder: &str, h: Hierarchy, serial: &[u8]) -> Vec<u8> {
    let mut k = holder_prefix(holder);
    k.extend_from_slice(&cert_key(h, serial));
    k
}

pub fn holder_prefix(holder: &str) -> Vec<u8> {
    let mut k = holder.as_bytes().to_vec();
    k.push(0);
    k
}

/// The certificate a `by_holder` key names.
pub fn split_holder_key(k: &[u8]) -> Result<(Hierarchy, &[u8])> {
    let zero = k
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| Error::Store("malformed holder index key".into()))?;
    split_cert_key(&k[zero + 1..])
}

/// The key of a status change: `hierarchy · serial · time of the change (i128 ns, BE)`. A
/// scan by [`cert_key`] also meets longer serials that start with the same octets: they are
/// told apart by the key's length ([`status_change_time`]).
pub fn status_change_key(h: Hierarchy, serial: &[u8], at: OffsetDateTime) -> Vec<u8> {
    let mut k = cert_key(h, serial);
    k.extend_from_slice(&at.unix_timestamp_nanos().to_be_bytes());
    k
}

/// Whether `k` (found by a scan over `cert_key(h, serial)`) is a change of that very
/// certificate, not of a longer serial with the same first octets.
pub fn is_status_change_of(k: &[u8], h: Hierarchy, serial: &[u8]) -> bool {
    k.len() == 1 + serial.len() + 16 && k[0] == h.tag() && &k[1..1 + serial.len()] == serial
}

pub fn status_change_to_store(c: &StatusChange) -> Result<Vec<u8>> {
    json(c)
}

pub fn status_change_from_store(b: &[u8]) -> Result<StatusChange> {
    from_json(b)
}

pub fn status_to_store(s: &StatusRecord) -> Result<Vec<u8>> {
    json(s)
}

pub fn status_from_store(b: &[u8]) -> Result<StatusRecord> {
    from_json(b)
}

/// The value of a key in `keys`: `holder · 0x00 · hierarchy`.
pub fn key_owner_to_store(o: &KeyOwner) -> Vec<u8> {
    let mut v = holder_prefix(&o.holder);
    v.push(o.hierarchy.tag());
    v
}

pub fn key_owner_from_store(b: &[u8]) -> Result<KeyOwner> {
    let bad = || Error::Store("corrupt key index entry".into());
    let (tag, rest) = b.split_last().ok_or_else(bad)?;
    let holder = rest.strip_suffix(&[0]).ok_or_else(bad)?;
    Ok(KeyOwner {
        holder: String::from_utf8(holder.to_vec()).map_err(|_| bad())?,
        hierarchy: Hierarchy::from_tag(*tag).ok_or_else(bad)?,
    })
}

pub fn key_key(fp: &KeyFingerprint) -> &[u8] {
    fp
}

/// The `blocked_keys` table: key the SPKI SHA-256, value this marker (one byte: version 1).
pub const BLOCKED: &[u8] = &[1];

/// The `meta` key of a hierarchy's serial counter.
pub fn counter_key(h: Hierarchy) -> Vec<u8> {
    format!("serial/{h}").into_bytes()
}

pub fn counter_from_store(b: &[u8]) -> Result<u64> {
    Ok(u64::from_be_bytes(b.try_into().map_err(|_| {
        Error::Store("corrupt serial counter".into())
    })?))
}

/// Raises a serial counter to `n` at commit (see [`crate::storage::Tx::note_serial`]).
pub(crate) fn raise_counter(t: &dyn Txn, h: Hierarchy, n: u64) -> TxResult<()> {
    let k = counter_key(h);
    let stored = t
        .get(Table::Meta, &k)?
        .map(|b| counter_from_store(&b))
        .transpose()?
        .unwrap_or(0);
    if n > stored {
        t.insert(Table::Meta, &k, &n.to_be_bytes())?;
    }
    Ok(())
}

// ----- CRLs ------------------------------------------------------------------------------

/// Scope code of the CA-level CRL.
pub const CA_SCOPE: u16 = 0xFFFF;
/// Scope code of a municipal partition, followed by its names.
pub const MUNICIPAL_SCOPE: u16 = 0xFFFE;

/// Marks the first byte of a CRL key of root generation 2 or later (hierarchy tag | this),
/// followed by the generation (u32 BE).
const LATER_GENERATION: u8 = 0x80;

/// `hierarchy · scope`: the prefix of a CRL's revoked entries, and its state's key in `crl`.
/// The scope is a u16 BE code: a serial partition's number (the policy allows up to 4096),
/// [`MUNICIPAL_SCOPE`] followed by `prefecture · 0x00 · municipality · 0x00` (names have no
/// control characters, so the terminator keeps byte order equal to [`Scope`]'s order and no
/// scope's key is a prefix of another's), or [`CA_SCOPE`]. Keys written before municipal
/// partitions (serial partitions and the CA-level CRL) are unchanged. A CRL of root
/// generation `g` ≥ 2 starts with `tag | 0x80 · g (u32 BE)` instead of the tag: generation 1
/// keeps the keys every store had before root generations (no rewrite), and no key of one
/// generation is a prefix of another's.
pub fn scope_key(h: Hierarchy, g: Generation, scope: &Scope) -> Vec<u8> {
    let mut k = if g <= 1 {
        vec![h.tag()]
    } else {
        let mut k = vec![h.tag() | LATER_GENERATION];
        k.extend_from_slice(&g.to_be_bytes());
        k
    };
    match scope {
        Scope::Partition(p) => {
            debug_assert!(*p < MUNICIPAL_SCOPE, "serial partition {p} out of range");
            k.extend_from_slice(&p.to_be_bytes());
        }
        Scope::Municipal(m) => {
            k.extend_from_slice(&MUNICIPAL_SCOPE.to_be_bytes());
            for name in [m.prefecture(), m.municipality()] {
                k.extend_from_slice(name.as_bytes());
                k.push(0);
            }
        }
        Scope::Ca => k.extend_from_slice(&CA_SCOPE.to_be_bytes()),
    }
    k
}

/// Reads a whole [`scope_key`] back; `None` if `k` is not exactly one.
pub fn split_scope_key(k: &[u8]) -> Option<CrlId> {
    let (&tag, rest) = k.split_first()?;
    let (h, g, rest) = if tag & LATER_GENERATION == 0 {
        (Hierarchy::from_tag(tag)?, 1, rest)
    } else {
        let (g, rest) = rest.split_at_checked(4)?;
        let g = u32::from_be_bytes(g.try_into().ok()?);
        if g <= 1 {
            return None;
        }
        (Hierarchy::from_tag(tag & !LATER_GENERATION)?, g, rest)
    };
    let (code, names) = rest.split_at_checked(2)?;
    let code = u16::from_be_bytes([code[0], code[1]]);
    let scope = match code {
        CA_SCOPE if names.is_empty() => Scope::Ca,
        MUNICIPAL_SCOPE => {
            let names = names.strip_suffix(&[0])?;
            let (p, m) = names.split_at(names.iter().position(|b| *b == 0)?);
            let (p, m) = (
                std::str::from_utf8(p).ok()?,
                std::str::from_utf8(&m[1..]).ok()?,
            );
            Scope::Municipal(policies::Municipality::new(p, m).ok()?)
        }
        p if p < MUNICIPAL_SCOPE && names.is_empty() => Scope::Partition(p),
        _ => return None,
    };
    Some((h, g, scope))
}

/// `CRL · serial`.
pub fn revoked_key(h: Hierarchy, g: Generation, scope: &Scope, serial: &[u8]) -> Vec<u8> {
    let mut k = scope_key(h, g, scope);
    k.extend_from_slice(serial);
    k
}

const DIRTY: &[u8] = b"/dirty";

/// The `crl` key set while a CRL is dirty.
pub fn dirty_key(h: Hierarchy, g: Generation, scope: &Scope) -> Vec<u8> {
    let mut k = scope_key(h, g, scope);
    k.extend_from_slice(DIRTY);
    k
}

/// The CRL a `crl` key marks dirty, if it is a dirty flag.
pub fn split_dirty_key(k: &[u8]) -> Option<CrlId> {
    split_scope_key(k.strip_suffix(DIRTY)?)
}

// ----- revoked entries --------------------------------------------------------------

/// `reason (u8) · revoked_at (i64 BE, unix seconds) · has_invalidity (u8) · invalidity (i64 BE)
/// · not_after (i64 BE)`: fixed, so that a partition of 10^6 entries is read without JSON.
/// Length of an encoded [`RevokedEntry`].
pub const REVOKED_LEN: usize = 26;

pub fn revoked_encode(e: &RevokedEntry) -> [u8; REVOKED_LEN] {
    let mut b = [0u8; REVOKED_LEN];
    b[0] = e.reason.code();
    b[1..9].copy_from_slice(&e.revoked_at.to_be_bytes());
    if let Some(t) = e.invalidity {
        b[9] = 1;
        b[10..18].copy_from_slice(&t.to_be_bytes());
    }
    b[18..26].copy_from_slice(&e.not_after.to_be_bytes());
    b
}

pub fn revoked_decode(b: &[u8]) -> Result<RevokedEntry> {
    let bad = || Error::Store("corrupt revoked entry".into());
    if b.len() != REVOKED_LEN {
        return Err(bad());
    }
    let i64_at = |o: usize| -> Result<i64> {
        Ok(i64::from_be_bytes(
            b[o..o + 8].try_into().map_err(|_| bad())?,
        ))
    };
    Ok(RevokedEntry {
        reason: Reason::from_code(b[0]).ok_or_else(bad)?,
        revoked_at: i64_at(1)?,
        invalidity: if b[9] == 1 { Some(i64_at(10)?) } else { None },
        not_after: i64_at(18)?,
    })
}

// ----- the register ----------------------------------------------------------------------

pub fn resident_to_store(r: &Resident) -> Result<Vec<u8>> {
    json(r)
}

pub fn resident_from_store(b: &[u8]) -> Result<Resident> {
    from_json(b)
}

/// `due time (i64 BE) · holder id`.
pub fn scheduled_key(s: &Scheduled) -> Vec<u8> {
    let mut k = s.at.unix_timestamp().to_be_bytes().to_vec();
    k.extend_from_slice(s.resident.as_bytes());
    k
}

/// The end of the `scheduled` keys due at or before `until`.
pub fn scheduled_end(until: OffsetDateTime) -> [u8; 8] {
    (until.unix_timestamp() + 1).to_be_bytes()
}

pub fn scheduled_from_store(k: &[u8], v: &[u8]) -> Result<Scheduled> {
    let bad = || Error::Store("corrupt scheduled event".into());
    let (at, id) = k.split_at_checked(8).ok_or_else(bad)?;
    let at = i64::from_be_bytes(at.try_into().map_err(|_| bad())?);
    let kind = match v {
        b"emigrate" => ScheduledKind::Emigrate,
        _ => return Err(bad()),
    };
    Ok(Scheduled {
        at: OffsetDateTime::from_unix_timestamp(at).map_err(|_| bad())?,
        resident: String::from_utf8(id.to_vec()).map_err(|_| bad())?,
        kind,
    })
}

pub fn scheduled_value(kind: ScheduledKind) -> &'static [u8] {
    kind.as_str().as_bytes()
}

// ----- the audit trail -------------------------------------------------------------------

/// The `meta` key of the audit chain's head.
pub const AUDIT_HEAD: &[u8] = b"audit_head";

/// Signed checkpoints of the chain's head live in `meta` under this prefix and the sequence
/// number (big-endian, so that they scan in order); the value is the checkpoint (JSON).
pub const CHECKPOINT_PREFIX: &[u8] = b"checkpoint/";

pub fn checkpoint_key(seq: u64) -> Vec<u8> {
    let mut k = CHECKPOINT_PREFIX.to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub fn checkpoint_from_store(b: &[u8]) -> Result<crate::audit::Checkpoint> {
    from_json(b)
}

pub fn audit_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

pub fn audit_head_from_store(b: &[u8]) -> Result<Head> {
    from_json(b)
}

/// Reads an audit record; its key must be its sequence number.
pub fn audit_from_store(k: &[u8], v: &[u8]) -> Result<Record> {
    let r: Record = from_json(v)?;
    if k != r.seq.to_be_bytes() {
        return Err(Error::AuditBroken {
            seq: r.seq,
            problem: "the record is stored under another sequence number".into(),
        });
    }
    Ok(r)
}

/// Links an audit record into the chain at commit: reads the head, writes the record and the
/// new head.
pub(crate) fn link_audit(t: &dyn Txn, a: &AuditIntent) -> TxResult<()> {
    let head = t
        .get(Table::Meta, AUDIT_HEAD)?
        .map(|b| audit_head_from_store(&b))
        .transpose()?;
    let (record, head) = crate::audit::link(head.as_ref(), a)?;
    t.insert(Table::Audit, &audit_key(record.seq), &json(&record)?)?;
    t.insert(Table::Meta, AUDIT_HEAD, &json(&head)?)
}

/// Appends a record copied verbatim: it must follow the head ([`crate::audit::follow`]).
pub(crate) fn import_audit(t: &dyn Txn, record: &crate::audit::Record) -> TxResult<()> {
    let head = t
        .get(Table::Meta, AUDIT_HEAD)?
        .map(|b| audit_head_from_store(&b))
        .transpose()?;
    let head = crate::audit::follow(head.as_ref(), record)?;
    t.insert(Table::Audit, &audit_key(record.seq), &json(record)?)?;
    t.insert(Table::Meta, AUDIT_HEAD, &json(&head)?)
}

// ----- platform --------------------------------------------------------------------------

pub fn pf_key(id: &str) -> Vec<u8> {
    format!("pf/{id}").into_bytes()
}
pub const PF_PREFIX: &[u8] = b"pf/";
pub fn pf_name_key(name: &str) -> Vec<u8> {
    format!("pfname/{name}").into_bytes()
}
pub fn pf_client_key(fp: &str) -> Vec<u8> {
    format!("key/{fp}").into_bytes()
}
pub fn sp_key(id: &str) -> Vec<u8> {
    format!("sp/{id}").into_bytes()
}
pub const SP_PREFIX: &[u8] = b"sp/";
pub fn sp_name_key(pf: &str, name: &str) -> Vec<u8> {
    format!("spname/{pf}/{name}").into_bytes()
}
pub fn consent_key(id: &str) -> Vec<u8> {
    format!("c/{id}").into_bytes()
}
pub fn holder_consent_prefix(holder: &str, sp: &str) -> Vec<u8> {
    let mut k = b"h/".to_vec();
    k.extend_from_slice(holder.as_bytes());
    k.push(0);
    k.extend_from_slice(sp.as_bytes());
    k.push(0);
    k
}
pub fn holder_consent_key(c: &Consent) -> Vec<u8> {
    let mut k = holder_consent_prefix(&c.holder, &c.sp);
    k.extend_from_slice(c.id.as_bytes());
    k
}
pub fn nonce_key(sp: &str, nonce: &str) -> Vec<u8> {
    let mut k = b"n/".to_vec();
    k.extend_from_slice(sp.as_bytes());
    k.push(0);
    k.extend_from_slice(nonce.as_bytes());
    k
}
/// `n/` SP id `\0`: the start of an SP's nonce index (its consents in nonce order).
pub fn sp_nonce_prefix(sp: &str) -> Vec<u8> {
    nonce_key(sp, "")
}
/// `u/` month `\0`: the start of one month's usage counters.
pub fn usage_prefix(month: &str) -> Vec<u8> {
    let mut k = b"u/".to_vec();
    k.extend_from_slice(month.as_bytes());
    k.push(0);
    k
}
/// `u/` month `\0` PF `\0` SP `\0` endpoint `\0` certificate type.
pub fn usage_key(u: &Usage) -> Vec<u8> {
    let mut k = usage_prefix(&u.month);
    for part in [&u.pf, &u.sp, &u.endpoint] {
        k.extend_from_slice(part.as_bytes());
        k.push(0);
    }
    k.extend_from_slice(u.cert_type.as_bytes());
    k
}
/// A usage counter from its key and value.
pub fn usage_from_store(k: &[u8], v: &[u8]) -> Result<Usage> {
    let corrupt = || Error::Store("corrupt usage counter".into());
    let parts: Vec<&[u8]> = k
        .strip_prefix(b"u/")
        .ok_or_else(corrupt)?
        .split(|b| *b == 0)
        .collect();
    let [month, pf, sp, endpoint, cert_type] = parts.as_slice() else {
        return Err(corrupt());
    };
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| corrupt());
    Ok(Usage {
        month: text(month)?,
        pf: text(pf)?,
        sp: text(sp)?,
        endpoint: text(endpoint)?,
        cert_type: text(cert_type)?,
        count: count_from_store(v)?,
    })
}
/// A usage count (u64 BE).
pub fn count_from_store(v: &[u8]) -> Result<u64> {
    Ok(u64::from_be_bytes(
        v.try_into()
            .map_err(|_| Error::Store("corrupt usage count".into()))?,
    ))
}
pub fn access_prefix(holder: &str) -> Vec<u8> {
    holder_prefix(holder)
}
/// `holder · 0x00 · time (i128 BE ns) · seq (u64 BE)`.
pub fn access_key(a: &Access, seq: u64) -> Vec<u8> {
    let mut k = access_prefix(&a.holder);
    k.extend_from_slice(&a.at.unix_timestamp_nanos().to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}
pub fn operator_from_store(b: &[u8]) -> Result<Operator> {
    from_json(b)
}
pub fn sp_from_store(b: &[u8]) -> Result<ServiceProvider> {
    from_json(b)
}
pub fn consent_from_store(b: &[u8]) -> Result<Consent> {
    from_json(b)
}
pub fn access_from_store(b: &[u8]) -> Result<Access> {
    from_json(b)
}
// ----- officers -----------------------------------------------------------------------------

pub fn officer_key(id: &str) -> Vec<u8> {
    format!("o/{id}").into_bytes()
}
pub const OFFICER_PREFIX: &[u8] = b"o/";
pub fn officer_name_key(name: &str) -> Vec<u8> {
    format!("name/{name}").into_bytes()
}
pub fn officer_client_key(fp: &str) -> Vec<u8> {
    format!("key/{fp}").into_bytes()
}
pub fn officer_from_store(b: &[u8]) -> Result<Officer> {
    from_json(b)
}

pub fn id_from_store(b: &[u8]) -> Result<String> {
    String::from_utf8(b.to_vec()).map_err(|_| Error::Store("corrupt index entry".into()))
}

// ----- the root index (in `meta`) -------------------------------------------------------------

/// `root/` · [`cert_key`] → empty: every root certificate, so that opening a store does not
/// walk every certificate to find them.
pub const ROOT_INDEX_PREFIX: &[u8] = b"root/";

pub fn root_index_key(h: Hierarchy, serial: &[u8]) -> Vec<u8> {
    let mut k = ROOT_INDEX_PREFIX.to_vec();
    k.extend_from_slice(&cert_key(h, serial));
    k
}

// ----- nodes: the revocation log and CRL leases (in `meta`) ---------------------------------

/// The revocation log's last sequence number (u64 BE).
pub const REVLOG_HEAD: &[u8] = b"revlog_head";
/// `revlog/` · seq (u64 BE) → hierarchy tag · serial.
pub const REVLOG_PREFIX: &[u8] = b"revlog/";
/// `lease/` · scope key → until (i128 BE ns since the epoch) · holder (UTF-8).
pub const LEASE_PREFIX: &[u8] = b"lease/";

/// The key of entry `seq` of a numbered log (`prefix` · seq as u64 BE: keys sort in log order).
pub fn numbered_key(prefix: &[u8], seq: u64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The sequence number of a numbered log's key ([`numbered_key`]'s inverse), `None` if `k`
/// is not one under `prefix`.
fn numbered_seq(prefix: &[u8], k: &[u8]) -> Option<u64> {
    k.strip_prefix(prefix)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map(u64::from_be_bytes)
}

/// Appends `value` to the numbered log under `prefix` whose last number is kept under `head`
/// (the next number, at commit: numbers in commit order).
fn append_numbered(t: &dyn Txn, head: &[u8], prefix: &[u8], value: &[u8]) -> TxResult<()> {
    let last = t
        .get(Table::Meta, head)?
        .map(|b| counter_from_store(&b))
        .transpose()?
        .unwrap_or(0);
    let seq = last + 1;
    t.insert(Table::Meta, &numbered_key(prefix, seq), value)?;
    t.insert(Table::Meta, head, &seq.to_be_bytes())
}

pub fn revlog_key(seq: u64) -> Vec<u8> {
    numbered_key(REVLOG_PREFIX, seq)
}

/// Appends a status change to the revocation log at commit (numbers in commit order).
pub(crate) fn append_revlog(t: &dyn Txn, h: Hierarchy, serial: &[u8]) -> TxResult<()> {
    let mut v = vec![h.tag()];
    v.extend_from_slice(serial);
    append_numbered(t, REVLOG_HEAD, REVLOG_PREFIX, &v)
}

/// A revocation log entry from its key and value.
pub fn revlog_from_store(k: &[u8], v: &[u8]) -> Result<crate::storage::RevocationLogEntry> {
    let corrupt = || Error::Store("corrupt revocation log entry".into());
    let seq = numbered_seq(REVLOG_PREFIX, k).ok_or_else(corrupt)?;
    let (&tag, serial) = v.split_first().ok_or_else(corrupt)?;
    Ok(crate::storage::RevocationLogEntry {
        seq,
        hierarchy: Hierarchy::from_tag(tag).ok_or_else(corrupt)?,
        serial: serial.to_vec(),
    })
}

// ----- the issuance log (in `meta`) ---------------------------------------------------------

/// The issuance log's last sequence number (u64 BE).
pub const ISSLOG_HEAD: &[u8] = b"isslog_head";
/// `isslog/` · seq (u64 BE) → hierarchy tag · notAfter (i64 BE, Unix seconds) · serial.
pub const ISSLOG_PREFIX: &[u8] = b"isslog/";

/// Appends an issuance to the issuance log at commit (numbers in commit order).
pub(crate) fn append_isslog(
    t: &dyn Txn,
    h: Hierarchy,
    serial: &[u8],
    not_after: OffsetDateTime,
) -> TxResult<()> {
    let mut v = vec![h.tag()];
    v.extend_from_slice(&not_after.unix_timestamp().to_be_bytes());
    v.extend_from_slice(serial);
    append_numbered(t, ISSLOG_HEAD, ISSLOG_PREFIX, &v)
}

/// An issuance log entry from its key and value.
pub fn isslog_from_store(k: &[u8], v: &[u8]) -> Result<crate::storage::IssuedEntry> {
    let corrupt = || Error::Store("corrupt issuance log entry".into());
    let seq = numbered_seq(ISSLOG_PREFIX, k).ok_or_else(corrupt)?;
    let (&tag, rest) = v.split_first().ok_or_else(corrupt)?;
    if rest.len() < 8 {
        return Err(corrupt());
    }
    let (at, serial) = rest.split_at(8);
    let at = <[u8; 8]>::try_from(at).map_err(|_| corrupt())?;
    Ok(crate::storage::IssuedEntry {
        seq,
        hierarchy: Hierarchy::from_tag(tag).ok_or_else(corrupt)?,
        serial: serial.to_vec(),
        not_after: OffsetDateTime::from_unix_timestamp(i64::from_be_bytes(at))
            .map_err(|_| corrupt())?,
    })
}

pub fn lease_key(h: Hierarchy, g: Generation, scope: &Scope) -> Vec<u8> {
    let mut k = LEASE_PREFIX.to_vec();
    k.extend_from_slice(&scope_key(h, g, scope));
    k
}

pub fn lease_to_store(l: &crate::storage::CrlLease) -> Vec<u8> {
    let mut v = l.until.unix_timestamp_nanos().to_be_bytes().to_vec();
    v.extend_from_slice(l.holder.as_bytes());
    v
}

pub fn lease_from_store(v: &[u8]) -> Result<crate::storage::CrlLease> {
    let corrupt = || Error::Store("corrupt CRL lease".into());
    if v.len() < 16 {
        return Err(corrupt());
    }
    let (t, holder) = v.split_at(16);
    let ns = i128::from_be_bytes(t.try_into().map_err(|_| corrupt())?);
    Ok(crate::storage::CrlLease {
        holder: String::from_utf8(holder.to_vec()).map_err(|_| corrupt())?,
        until: time::OffsetDateTime::from_unix_timestamp_nanos(ns).map_err(|_| corrupt())?,
    })
}

// ----- nodes: edges' OCSP signer requests (in `meta`) ---------------------------------------

/// `signer_req/` · node (UTF-8) · 0x00 · hierarchy tag · generation (u32 BE) → the request's
/// serde JSON. Node names never hold 0x00 (`ca::edge_signer` checks them), so the key orders
/// by (node, hierarchy, generation) as the other engines do.
pub const SIGNER_REQUEST_PREFIX: &[u8] = b"signer_req/";

pub fn signer_request_key(node: &str, h: Hierarchy, generation: u32) -> Vec<u8> {
    let mut k = SIGNER_REQUEST_PREFIX.to_vec();
    k.extend_from_slice(node.as_bytes());
    k.push(0);
    k.push(h.tag());
    k.extend_from_slice(&generation.to_be_bytes());
    k
}

pub fn signer_request_to_store(r: &crate::storage::SignerRequest) -> Result<Vec<u8>> {
    serde_json::to_vec(r).map_err(|e| Error::Store(format!("encode a signer request: {e}")))
}

pub fn signer_request_from_store(v: &[u8]) -> Result<crate::storage::SignerRequest> {
    serde_json::from_slice(v).map_err(|e| Error::Store(format!("corrupt signer request: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::CertKind;

    #[test]
    fn revoked_entries_round_trip() {
        for e in [
            RevokedEntry {
                reason: Reason::KeyCompromise,
                revoked_at: 1_700_000_000,
                invalidity: Some(1_690_000_000),
                not_after: 1_900_000_000,
            },
            RevokedEntry {
                reason: Reason::CertificateHold,
                revoked_at: -5,
                invalidity: None,
                not_after: 0,
            },
        ] {
            assert_eq!(revoked_decode(&revoked_encode(&e)).unwrap(), e);
        }
        assert!(revoked_decode(&[0u8; 3]).is_err());
        let mut bad = revoked_encode(&RevokedEntry {
            reason: Reason::Superseded,
            revoked_at: 0,
            invalidity: None,
            not_after: 0,
        });
        bad[0] = 7;
        assert!(revoked_decode(&bad).is_err());
    }

    #[test]
    fn certificate_records_round_trip_and_damage_is_named() {
        let c = CertRecord {
            hierarchy: Hierarchy::Signing,
            serial: vec![0x4c, 0x0c, 0x27],
            kind: CertKind::Signing,
            holder: Some("R0123".into()),
            partition: Some(Scope::Partition(7)),
            generation: 1,
            not_before: OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
            not_after: OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap(),
            der: vec![0x30, 0x82, 0x01, 0x00, 0xAA, 0xBB],
        };
        let b = cert_to_store(&c).unwrap();
        let back = cert_from_store(&b).unwrap();
        assert_eq!(
            (back.serial, back.holder, back.partition, back.der),
            (
                c.serial.clone(),
                c.holder.clone(),
                c.partition,
                c.der.clone()
            )
        );
        assert_eq!(
            (back.not_before, back.not_after),
            (c.not_before, c.not_after)
        );
        for (bytes, what) in [
            (Vec::new(), "empty"),
            (vec![9, 0, 0, 0, 0], "unknown format"),
            (b[..3].to_vec(), "truncated"),
            ([&b[..5], b"{}"].concat(), "truncated"),
        ] {
            let e = cert_from_store(&bytes).unwrap_err().to_string();
            assert!(
                e.contains("corrupt certificate record") && e.contains(what),
                "{e}"
            );
        }
        let mut bad_head = b.clone();
        bad_head[6] = b'!';
        assert!(cert_from_store(&bad_head)
            .unwrap_err()
            .to_string()
            .contains("corrupt certificate record"));
    }
}
