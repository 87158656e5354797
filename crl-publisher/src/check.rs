//! The self-check every CRL passes before it may replace the previous file: a second,
//! streaming decode of the signed bytes with RustCrypto's strict DER decoder (`der` +
//! `x509-cert` types, independent of the hand encoder in `encode`), the signature verified
//! with the root's public key (aws-lc-rs), and every promised field compared.
//!
//! Streaming matters at scale: x509-parser builds a `Vec` of every entry (a million entries:
//! +130 MiB and up to a second, crate-notes §3.4 and §7), while this walk keeps one entry at a
//! time, so a check adds almost nothing to the CRL's own size in memory.

use aws_lc_rs::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use der::asn1::{BitStringRef, IntRef, ObjectIdentifier, OctetString, OctetStringRef};
use der::{Decode, Header, Reader, SliceReader, Tag, TagMode, TagNumber};
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlNumber, CrlReason};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::time::Time;

use crate::encode::SHA256_WITH_RSA;

/// What the CRL must say.
pub(crate) struct Expect<'a> {
    /// The root's SubjectPublicKeyInfo, DER.
    pub(crate) spki: &'a [u8],
    pub(crate) issuer: &'a [u8],
    pub(crate) ski: &'a [u8],
    pub(crate) number: &'a [u8],
    pub(crate) idp: &'a [u8],
    pub(crate) this_update: i64,
    pub(crate) next_update: i64,
    pub(crate) entries: u64,
}

const OID_REASON: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.21");
const OID_INVALIDITY: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.24");
const OID_CRL_NUMBER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.20");
const OID_AKI: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.35");
pub(crate) const OID_IDP: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.28");

fn der(e: der::Error) -> String {
    format!("DER: {e}")
}

fn secs(t: Time) -> i64 {
    // to_unix_duration is bounded by year 9999: fits i64
    t.to_unix_duration().as_secs() as i64
}

/// Decodes `crl` completely and checks it against `want`.
pub(crate) fn check(crl: &[u8], want: &Expect<'_>) -> Result<(), String> {
    let mut r = SliceReader::new(crl).map_err(der)?;
    let (tbs, alg, signature) = r
        .sequence(|r| {
            let tbs = r.tlv_bytes()?;
            let alg = r.tlv_bytes()?;
            let sig = BitStringRef::decode(r)?;
            Ok::<_, der::Error>((tbs, alg, sig))
        })
        .map_err(der)?;
    r.finish()
        .map_err(|e| format!("trailing bytes after the CRL: {e}"))?;
    if alg != SHA256_WITH_RSA {
        return Err("signatureAlgorithm is not sha256WithRSAEncryption".into());
    }
    let spki =
        spki::SubjectPublicKeyInfoRef::from_der(want.spki).map_err(|e| format!("root key: {e}"))?;
    let key = UnparsedPublicKey::new(
        &RSA_PKCS1_2048_8192_SHA256,
        spki.subject_public_key.raw_bytes(),
    );
    let sig = signature.as_bytes().ok_or("signature has unused bits")?;
    key.verify(tbs, sig)
        .map_err(|_| "signature does not verify with the root key")?;

    let mut r = SliceReader::new(tbs).map_err(der)?;
    r.sequence(|r| tbs_fields(r, want))
        .map_err(|e: Problem| e.0)?;
    r.finish().map_err(der)
}

/// A check failure inside `der`'s closure API.
struct Problem(String);

impl From<der::Error> for Problem {
    fn from(e: der::Error) -> Problem {
        Problem(der(e))
    }
}

fn fail<T>(text: impl Into<String>) -> Result<T, Problem> {
    Err(Problem(text.into()))
}

fn tbs_fields<'a>(r: &mut SliceReader<'a>, want: &Expect<'_>) -> Result<(), Problem> {
    if u8::decode(r)? != 1 {
        return fail("version is not v2");
    }
    if r.tlv_bytes()? != SHA256_WITH_RSA {
        return fail("TBS signature algorithm is not sha256WithRSAEncryption");
    }
    let issuer = r.tlv_bytes()?;
    Name::from_der(issuer)?;
    if issuer != want.issuer {
        return fail("issuer differs from the root's subject");
    }
    if secs(Time::decode(r)?) != want.this_update || secs(Time::decode(r)?) != want.next_update {
        return fail("thisUpdate/nextUpdate are not the intended times");
    }
    let mut entries = 0u64;
    if Tag::peek(r)? == Tag::Sequence {
        let header = Header::decode(r)?;
        r.read_nested(header.length(), |r| {
            while !r.is_finished() {
                r.sequence(entry)?;
                entries += 1;
            }
            Ok::<_, Problem>(())
        })?;
        if entries == 0 {
            return fail("empty revokedCertificates must be absent (RFC 5280 §5.1.2.6)");
        }
    }
    if entries != want.entries {
        return fail(format!(
            "{entries} entries listed, {} written",
            want.entries
        ));
    }
    let exts = r
        .context_specific::<Vec<Extension>>(TagNumber(0), TagMode::Explicit)?
        .ok_or(Problem("no crlExtensions".into()))?;
    let (mut aki, mut number, mut idp) = (false, false, false);
    for ext in &exts {
        let value = ext.extn_value.as_bytes();
        match ext.extn_id {
            OID_AKI => {
                let a = AuthorityKeyIdentifier::from_der(value)?;
                aki = !ext.critical
                    && a.key_identifier.as_ref().map(OctetString::as_bytes) == Some(want.ski);
            }
            OID_CRL_NUMBER => {
                number = !ext.critical && CrlNumber::from_der(value)?.0.as_bytes() == want.number
            }
            OID_IDP => idp = ext.critical && value == want.idp,
            other => return fail(format!("unexpected CRL extension {other}")),
        }
    }
    if !aki {
        return fail("authorityKeyIdentifier does not equal the root's subjectKeyIdentifier");
    }
    if !number {
        return fail("cRLNumber is not the reserved number");
    }
    if !idp {
        return fail("issuingDistributionPoint missing, not critical or not the partition's");
    }
    Ok(())
}

/// One revokedCertificates element: a positive serial of at most 20 octets, a time, and only
/// non-critical reasonCode (never unspecified) / invalidityDate extensions. Extensions are
/// decoded in place (no `Vec<Extension>` per entry).
fn entry<'a>(r: &mut SliceReader<'a>) -> Result<(), Problem> {
    let serial = IntRef::decode(r)?;
    let bytes = serial.as_bytes();
    if bytes.first().is_some_and(|b| *b >= 0x80) || bytes.len() > 20 {
        return fail(format!(
            "entry serial {} is negative or longer than 20 octets",
            hex::encode(bytes)
        ));
    }
    Time::decode(r)?;
    if r.is_finished() {
        return Ok(());
    }
    r.sequence(|r| {
        if r.is_finished() {
            return fail("empty crlEntryExtensions");
        }
        while !r.is_finished() {
            r.sequence(entry_extension)?;
        }
        Ok(())
    })
}

/// `Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }`
fn entry_extension<'a>(r: &mut SliceReader<'a>) -> Result<(), Problem> {
    let oid = ObjectIdentifier::decode(r)?;
    if Tag::peek(r)? == Tag::Boolean {
        // DER never encodes the default FALSE: any BOOLEAN here is TRUE
        bool::decode(r)?;
        return fail("critical entry extension");
    }
    let value = <&OctetStringRef>::decode(r)?.as_bytes();
    match oid {
        OID_REASON => {
            if CrlReason::from_der(value)? == CrlReason::Unspecified {
                return fail("reasonCode unspecified must be left out (RFC 5280 §5.3.1)");
            }
        }
        OID_INVALIDITY => {
            der::asn1::GeneralizedTime::from_der(value)?;
        }
        other => return fail(format!("unexpected entry extension {other}")),
    }
    Ok(())
}
