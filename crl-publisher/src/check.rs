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
        let region = r.read_slice(header.length())?;
        entries = entries_in(region)?;
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

/// Below this many bytes of entries (~25,000 entries) the walk stays on the calling thread.
const PARALLEL_MIN: usize = 1 << 20;

/// Decodes every entry of the revokedCertificates content; large lists are cut at entry
/// boundaries (found by reading only the TLV headers) and decoded on several threads.
fn entries_in(region: &[u8]) -> Result<u64, Problem> {
    // available_parallelism reads the cgroup files: asked only for a list worth splitting
    // (a pass checks thousands of small CRLs)
    let threads = if region.len() < PARALLEL_MIN {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
    };
    entries_parallel(region, threads)
}

fn entries_parallel(region: &[u8], threads: usize) -> Result<u64, Problem> {
    let mut chunks = Vec::with_capacity(threads);
    let target = region.len() / threads.max(1) + 1;
    let mut r = SliceReader::new(region)?;
    let mut start = 0;
    while !r.is_finished() {
        let header = Header::decode(&mut r)?;
        if header.tag() != Tag::Sequence {
            return fail("revokedCertificates element is not a SEQUENCE");
        }
        r.read_slice(header.length())?;
        let end = usize::try_from(r.position()).map_err(|e| Problem(der(e)))?;
        if end - start >= target {
            chunks.push(&region[start..end]);
            start = end;
        }
    }
    if start < region.len() {
        chunks.push(&region[start..]);
    }
    let walk = |chunk: &[u8]| -> Result<u64, Problem> {
        let mut r = SliceReader::new(chunk)?;
        let mut n = 0;
        while !r.is_finished() {
            r.sequence(entry)?;
            n += 1;
        }
        Ok(n)
    };
    if chunks.len() <= 1 {
        return chunks.first().map_or(Ok(0), |c| walk(c));
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|c| scope.spawn(move || walk(c)))
            .collect();
        let mut total = 0;
        for h in handles {
            total += h
                .join()
                .map_err(|_| Problem("entry check thread panicked".into()))??;
        }
        Ok(total)
    })
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
    entry_time(r)?;
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

/// revocationDate: `UTCTime` `YYMMDDHHMMSSZ` or `GeneralizedTime` `YYYYMMDDHHMMSSZ` (RFC 5280
/// §4.1.2.5.1–2: seconds, `Z`, no fractions), checked field by field. Equivalent to
/// `Time::decode` for these forms (a unit test compares them) at a fraction of its cost, which
/// matters once per entry of a million-entry CRL.
fn entry_time(r: &mut SliceReader<'_>) -> Result<(), Problem> {
    let header = Header::decode(r)?;
    let digits = match (header.tag(), u32::from(header.length())) {
        (Tag::UtcTime, 13) => 12,
        (Tag::GeneralizedTime, 15) => 14,
        _ => {
            return fail(
                "revocationDate is neither a 13-octet UTCTime nor a 15-octet GeneralizedTime",
            )
        }
    };
    let v = r.read_slice(header.length())?;
    if v[digits] != b'Z' || !v[..digits].iter().all(u8::is_ascii_digit) {
        return fail("revocationDate is not digits followed by Z");
    }
    let two = |i: usize| u32::from(v[i] - b'0') * 10 + u32::from(v[i + 1] - b'0');
    let year = if digits == 12 {
        // RFC 5280 §4.1.2.5.1: YY >= 50 is 19YY, otherwise 20YY
        let yy = two(0);
        if yy >= 50 {
            1900 + yy
        } else {
            2000 + yy
        }
    } else {
        two(0) * 100 + two(2)
    };
    let f = digits - 10; // where the month starts
    let (month, day, hour, minute, second) =
        (two(f), two(f + 2), two(f + 4), two(f + 6), two(f + 8));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => 0,
    };
    if year < 1970 || day == 0 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return fail("revocationDate is not a valid date and time from 1970 on");
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::CrlEncoder;
    use crate::Entry;
    use der::asn1::Uint;
    use der::Encode;
    use policies::Reason;
    use rcgen::{KeyPair, PublicKeyData, SigningKey};
    use time::macros::datetime;
    use x509_cert::ext::ToExtension;

    const ISSUER: &str = "CN=Check Root,O=JPKI-TEST,C=JP";
    const SKI: &[u8] = &[7; 20];
    const IDP: &[u8] = &[0x30, 0x03, 0x81, 0x01, 0xff];

    struct Made {
        der: Vec<u8>,
        spki: Vec<u8>,
        issuer: Vec<u8>,
    }

    fn make(key: &KeyPair, number: u8, entries: &[Entry], raw: &[&[u8]], extra: &[u8]) -> Made {
        let issuer: Name = ISSUER.parse().unwrap();
        let issuer_der = issuer.to_der().unwrap();
        let mut enc = CrlEncoder::new(
            &issuer_der,
            datetime!(2026-11-27 0:00 UTC),
            datetime!(2026-11-28 0:00 UTC),
            0,
        )
        .unwrap();
        for e in entries {
            enc.push(e).unwrap();
        }
        for r in raw {
            enc.push_raw(r);
        }
        let aki = AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(SKI).unwrap()),
            ..Default::default()
        };
        let exts = vec![
            aki.to_extension(&issuer, &[]).unwrap(),
            CrlNumber(Uint::new(&[number]).unwrap())
                .to_extension(&issuer, &[])
                .unwrap(),
            Extension {
                extn_id: OID_IDP,
                critical: true,
                extn_value: OctetString::new(IDP).unwrap(),
            },
        ];
        let der = enc
            .finish(&exts.to_der().unwrap(), |tbs| Ok(key.sign(tbs).unwrap()))
            .unwrap();
        let mut der = der.to_vec();
        der.extend_from_slice(extra);
        Made {
            der,
            spki: key.subject_public_key_info(),
            issuer: issuer_der,
        }
    }

    fn expect<'a>(m: &'a Made, entries: u64) -> Expect<'a> {
        Expect {
            spki: &m.spki,
            issuer: &m.issuer,
            ski: SKI,
            number: &[5],
            idp: IDP,
            this_update: datetime!(2026-11-27 0:00 UTC).unix_timestamp(),
            next_update: datetime!(2026-11-28 0:00 UTC).unix_timestamp(),
            entries,
        }
    }

    /// The content of revokedCertificates inside a CRL made by `make`.
    fn entries_region(crl: &[u8]) -> &[u8] {
        let mut r = SliceReader::new(crl).unwrap();
        Header::decode(&mut r).unwrap(); // CertificateList
        let tbs = r.tlv_bytes().unwrap();
        let mut r = SliceReader::new(tbs).unwrap();
        let header = Header::decode(&mut r).unwrap();
        assert_eq!(header.tag(), Tag::Sequence);
        for _ in 0..5 {
            r.tlv_bytes().unwrap(); // version, signature, issuer, thisUpdate, nextUpdate
        }
        let header = Header::decode(&mut r).unwrap();
        r.read_slice(header.length()).unwrap()
    }

    fn entry(serial: u8, reason: Reason) -> Entry {
        Entry {
            serial: vec![serial],
            revoked_at: datetime!(2026-11-26 0:00 UTC),
            reason,
            invalidity: Some(datetime!(2026-11-25 0:00 UTC)),
            not_after: datetime!(2030-01-01 0:00 UTC),
        }
    }

    #[test]
    fn entry_time_agrees_with_time_decode() {
        let mut cases: Vec<String> = Vec::new();
        for (y, m, d) in [
            ("70", "01", "01"),
            ("99", "12", "31"),
            ("00", "02", "29"),
            ("49", "12", "31"),
            ("24", "02", "29"),
            ("23", "02", "29"),
            ("26", "02", "30"),
            ("26", "04", "31"),
            ("26", "13", "01"),
            ("26", "00", "10"),
            ("26", "11", "00"),
            ("69", "12", "31"),
            ("50", "06", "15"),
        ] {
            for hms in ["000000", "235959", "240000", "126000", "120060"] {
                cases.push(format!("{y}{m}{d}{hms}Z"));
                cases.push(format!("20{y}{m}{d}{hms}Z"));
                cases.push(format!("19{y}{m}{d}{hms}Z"));
                cases.push(format!("21{y}{m}{d}{hms}Z"));
            }
        }
        cases.extend([
            "2611270000Z".into(),
            "261127000000".into(),
            "26112700000aZ".into(),
            "261127000000+0900".into(),
        ]);
        let mut checked = 0;
        for text in &cases {
            for tag in [0x17u8, 0x18] {
                let mut tlv = vec![tag, text.len() as u8];
                tlv.extend_from_slice(text.as_bytes());
                let reference = Time::from_der(&tlv).is_ok();
                let mut r = SliceReader::new(&tlv).unwrap();
                let ours = entry_time(&mut r).is_ok() && r.is_finished();
                assert_eq!(ours, reference, "{tag:#x} {text}");
                checked += usize::from(reference);
            }
        }
        assert!(
            checked >= 30 && checked < cases.len(),
            "the reference accepted {checked} cases"
        );
    }

    #[test]
    fn accepts_what_the_encoder_writes_and_rejects_every_deviation() {
        let key =
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
        let entries = [
            entry(1, Reason::KeyCompromise),
            entry(2, Reason::Unspecified),
            entry(3, Reason::CertificateHold),
        ];
        let good = make(&key, 5, &entries, &[], &[]);
        check(&good.der, &expect(&good, 3)).unwrap();
        let empty = make(&key, 5, &[], &[], &[]);
        check(&empty.der, &expect(&empty, 0)).unwrap();

        let err = |m: &Made, want: Expect<'_>| check(&m.der, &want).unwrap_err();
        assert!(err(&good, expect(&good, 2)).contains("3 entries listed"));
        assert!(err(
            &good,
            Expect {
                number: &[6],
                ..expect(&good, 3)
            }
        )
        .contains("cRLNumber"));
        assert!(err(
            &good,
            Expect {
                idp: &[0x30, 0x00],
                ..expect(&good, 3)
            }
        )
        .contains("issuingDistributionPoint"));
        assert!(err(
            &good,
            Expect {
                ski: &[8; 20],
                ..expect(&good, 3)
            }
        )
        .contains("authorityKeyIdentifier"));
        assert!(err(
            &good,
            Expect {
                this_update: 0,
                ..expect(&good, 3)
            }
        )
        .contains("thisUpdate"));
        assert!(err(
            &good,
            Expect {
                issuer: &[0x30, 0x00],
                ..expect(&good, 3)
            }
        )
        .contains("issuer"));
        let other =
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
        let spki = other.subject_public_key_info();
        assert!(err(
            &good,
            Expect {
                spki: &spki,
                ..expect(&good, 3)
            }
        )
        .contains("signature"));

        let mut flipped = make(&key, 5, &entries, &[], &[]);
        let last = flipped.der.len() - 1;
        flipped.der[last] ^= 1;
        assert!(err(&flipped, expect(&flipped, 3)).contains("signature"));
        let trailing = make(&key, 5, &entries, &[], &[0]);
        assert!(err(&trailing, expect(&trailing, 3)).contains("trailing"));

        // entries the encoder never writes, signed all the same
        let unspecified: &[u8] = &[
            0x30, 0x20, 0x02, 0x01, 0x09, 0x17, 0x0d, b'2', b'6', b'1', b'1', b'2', b'6', b'0',
            b'0', b'0', b'0', b'0', b'0', b'Z', 0x30, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x1d,
            0x15, 0x04, 0x03, 0x0a, 0x01, 0x00,
        ];
        let m = make(&key, 5, &[], &[unspecified], &[]);
        assert!(
            err(&m, expect(&m, 1)).contains("unspecified"),
            "{}",
            err(&m, expect(&m, 1))
        );
        let critical: &[u8] = &[
            0x30, 0x23, 0x02, 0x01, 0x09, 0x17, 0x0d, b'2', b'6', b'1', b'1', b'2', b'6', b'0',
            b'0', b'0', b'0', b'0', b'0', b'Z', 0x30, 0x0f, 0x30, 0x0d, 0x06, 0x03, 0x55, 0x1d,
            0x15, 0x01, 0x01, 0xff, 0x04, 0x03, 0x0a, 0x01, 0x01,
        ];
        let m = make(&key, 5, &[], &[critical], &[]);
        assert!(
            err(&m, expect(&m, 1)).contains("critical"),
            "{}",
            err(&m, expect(&m, 1))
        );
        // the multi-threaded walk agrees with the single-threaded one, and finds bad entries
        let many: Vec<Entry> = (0..1000u32)
            .map(|i| Entry {
                serial: i.to_be_bytes().to_vec(),
                ..entry(1, Reason::Superseded)
            })
            .collect();
        let m = make(&key, 5, &many, &[], &[]);
        let region = entries_region(&m.der);
        for threads in [1, 2, 3, 7] {
            assert_eq!(
                entries_parallel(region, threads).ok(),
                Some(1000),
                "{threads} threads"
            );
        }
        let m = make(&key, 5, &many, &[unspecified], &[]);
        let region = entries_region(&m.der);
        for threads in [1, 2, 3] {
            let e = entries_parallel(region, threads)
                .err()
                .map(|p| p.0)
                .unwrap_or_default();
            assert!(e.contains("unspecified"), "{threads} threads: {e}");
        }
        let negative: &[u8] = &[
            0x30, 0x12, 0x02, 0x01, 0x89, 0x17, 0x0d, b'2', b'6', b'1', b'1', b'2', b'6', b'0',
            b'0', b'0', b'0', b'0', b'0', b'Z',
        ];
        let m = make(&key, 5, &[], &[negative], &[]);
        assert!(
            err(&m, expect(&m, 1)).contains("negative"),
            "{}",
            err(&m, expect(&m, 1))
        );
    }
}
