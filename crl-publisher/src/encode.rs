//! Streaming DER encoder for a signed CRL (RFC 5280 §5.1).
//!
//! ```text
//! CertificateList  ::=  SEQUENCE  {
//!      tbsCertList          TBSCertList,
//!      signatureAlgorithm   AlgorithmIdentifier,
//!      signatureValue       BIT STRING  }
//!
//! TBSCertList  ::=  SEQUENCE  {
//!      version                 Version OPTIONAL,   -- if present, MUST be v2
//!      signature               AlgorithmIdentifier,
//!      issuer                  Name,
//!      thisUpdate              Time,
//!      nextUpdate              Time OPTIONAL,
//!      revokedCertificates     SEQUENCE OF SEQUENCE  {
//!           userCertificate         CertificateSerialNumber,
//!           revocationDate          Time,
//!           crlEntryExtensions      Extensions OPTIONAL  -- if present, version MUST be v2
//!                                }  OPTIONAL,
//!      crlExtensions           [0]  EXPLICIT Extensions OPTIONAL }
//! ```
//!
//! The fixed parts (issuer, times, CRL extensions) are encoded with `x509-cert`/`der` types;
//! the revoked entries — up to millions — are appended as DER bytes straight into one buffer
//! as the [`Source`](crate::Source) streams them, behind a gap reserved for the headers whose
//! lengths are only known at the end. No per-entry structs are kept, so memory stays close to
//! the size of the CRL itself (crate-notes §3.4: rcgen's owned `Vec<RevokedCertParams>` costs
//! ~95 B per entry plus two copies of the DER). The unit tests prove the bytes equal
//! `x509_cert::crl::TbsCertList`'s own encoding.

use bytes::Bytes;
use policies::Reason;
use time::OffsetDateTime;

use crate::{Entry, Error};

/// AlgorithmIdentifier for sha256WithRSAEncryption with NULL parameters (RFC 4055 §5):
/// `SEQUENCE { OID 1.2.840.113549.1.1.11, NULL }`.
pub(crate) const SHA256_WITH_RSA: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00,
];

/// `Version ::= INTEGER { v1(0), v2(1) }` — v2, because the CRL carries extensions.
const VERSION_V2: [u8; 3] = [0x02, 0x01, 0x01];

/// Largest header of a TLV whose length fits 4 octets: tag, 0x84, 4 length octets.
const MAX_HEADER: usize = 6;

/// RFC 5280 §4.1.2.2: serial numbers are at most 20 octets.
const MAX_SERIAL: usize = 20;

/// Writes a DER tag and definite length; returns the header bytes and their count.
fn header(tag: u8, len: usize) -> Option<([u8; MAX_HEADER], usize)> {
    let mut h = [0u8; MAX_HEADER];
    h[0] = tag;
    if len < 0x80 {
        // fits one octet: the cast is exact
        h[1] = len as u8;
        return Some((h, 2));
    }
    let len = u32::try_from(len).ok()?;
    let octets = len.to_be_bytes();
    let skip = octets.iter().take_while(|b| **b == 0).count();
    let n = 4 - skip;
    // n is 1..=4
    h[1] = 0x80 | n as u8;
    h[2..2 + n].copy_from_slice(&octets[skip..]);
    Some((h, 2 + n))
}

fn push_tlv_header(out: &mut Vec<u8>, tag: u8, len: usize) -> Result<(), Error> {
    let (h, n) = header(tag, len).ok_or(Error::Der {
        what: "length",
        source: der::ErrorKind::Overflow.into(),
    })?;
    out.extend_from_slice(&h[..n]);
    Ok(())
}

fn two_digits(out: &mut Vec<u8>, v: u8) {
    out.push(b'0' + v / 10);
    out.push(b'0' + v % 10);
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01 (H. Hinnant's
/// `civil_from_days`): a few integer operations, against `time`'s offset conversion and
/// component accessors, for a function called once or twice per revoked entry.
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // d in 1..=31 and m in 1..=12 by construction
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `Time ::= CHOICE { utcTime UTCTime, generalTime GeneralizedTime }` as RFC 5280 §5.1.2.4
/// asks: UTCTime `YYMMDDHHMMSSZ` through 2049, GeneralizedTime `YYYYMMDDHHMMSSZ` from 2050;
/// whole seconds in UTC. `generalized` forces GeneralizedTime (invalidityDate, §5.3.2).
pub(crate) fn push_time(
    out: &mut Vec<u8>,
    t: OffsetDateTime,
    generalized: bool,
) -> Result<(), String> {
    let ts = t.unix_timestamp();
    let (year, month, day) = civil_from_days(ts.div_euclid(86_400));
    let sod = ts.rem_euclid(86_400);
    if !(1970..=9999).contains(&year) {
        return Err(format!("year {year} cannot be written as an RFC 5280 time"));
    }
    // 1970..=9999 and 0..86400: the casts below are exact
    let (century, yy) = ((year / 100) as u8, (year % 100) as u8);
    if generalized || year >= 2050 {
        out.extend_from_slice(&[0x18, 15]);
        two_digits(out, century);
    } else {
        out.extend_from_slice(&[0x17, 13]);
    }
    two_digits(out, yy);
    two_digits(out, month);
    two_digits(out, day);
    two_digits(out, (sod / 3600) as u8);
    two_digits(out, (sod / 60 % 60) as u8);
    two_digits(out, (sod % 60) as u8);
    out.push(b'Z');
    Ok(())
}

/// 2050-01-01T00:00:00Z: from here on RFC 5280 times are GeneralizedTime.
const Y2050: i64 = 2_524_608_000;

fn time_len(t: OffsetDateTime, generalized: bool) -> usize {
    if generalized || t.unix_timestamp() >= Y2050 {
        17
    } else {
        15
    }
}

/// The content octets of a positive INTEGER with this big-endian magnitude (minimal, with a
/// leading zero octet when the high bit is set): `(needs_zero_pad, magnitude)`.
fn integer(serial: &[u8]) -> (bool, &[u8]) {
    let skip = serial.iter().take_while(|b| **b == 0).count();
    let mag = &serial[skip..];
    match mag.first() {
        None => (true, mag),
        Some(b) => (*b >= 0x80, mag),
    }
}

/// `reasonCode` entry extension (RFC 5280 §5.3.1), non-critical:
/// `SEQUENCE { OID 2.5.29.21, OCTET STRING { ENUMERATED code } }`.
const REASON_EXT: [u8; 11] = [
    0x30, 0x0a, 0x06, 0x03, 0x55, 0x1d, 0x15, 0x04, 0x03, 0x0a, 0x01,
];
/// `invalidityDate` entry extension (RFC 5280 §5.3.2), non-critical:
/// `SEQUENCE { OID 2.5.29.24, OCTET STRING { GeneralizedTime } }`.
const INVALIDITY_EXT: [u8; 9] = [0x30, 0x18, 0x06, 0x03, 0x55, 0x1d, 0x18, 0x04, 0x11];

/// Appends one `revokedCertificates` element.
pub(crate) fn push_entry(out: &mut Vec<u8>, e: &Entry) -> Result<(), Error> {
    let bad = |problem: String| Error::Entry {
        serial: hex::encode(&e.serial),
        problem,
    };
    let (pad, mag) = integer(&e.serial);
    let int_len = mag.len() + usize::from(pad);
    if int_len > MAX_SERIAL {
        return Err(bad(format!(
            "serial number is {int_len} octets, RFC 5280 allows 20"
        )));
    }
    let reason = (e.reason != Reason::Unspecified).then(|| e.reason.code());
    let mut exts_len = 0;
    if reason.is_some() {
        exts_len += REASON_EXT.len() + 1;
    }
    if e.invalidity.is_some() {
        exts_len += INVALIDITY_EXT.len() + 17;
    }
    let mut len = 2 + int_len + time_len(e.revoked_at, false);
    if exts_len > 0 {
        len += 2 + exts_len;
    }
    // len <= 2+20+17+2+12+26 = 79 < 128: one-octet lengths throughout (checked in tests).
    out.extend_from_slice(&[0x30, len as u8, 0x02, int_len as u8]);
    if pad {
        out.push(0);
    }
    out.extend_from_slice(mag);
    push_time(out, e.revoked_at, false).map_err(bad)?;
    if exts_len > 0 {
        out.extend_from_slice(&[0x30, exts_len as u8]);
        if let Some(code) = reason {
            out.extend_from_slice(&REASON_EXT);
            out.push(code);
        }
        if let Some(t) = e.invalidity {
            out.extend_from_slice(&INVALIDITY_EXT);
            push_time(out, t, true).map_err(bad)?;
        }
    }
    Ok(())
}

/// Accumulates one CRL: the fixed prefix, then entries, then extensions and the signature.
pub(crate) struct CrlEncoder {
    buf: Vec<u8>,
    /// `version .. nextUpdate`, already DER.
    prefix: Vec<u8>,
    /// Where the entries start in `buf`.
    gap: usize,
    entries: u64,
}

impl CrlEncoder {
    /// `issuer` is the DER Name exactly as in the root certificate's subject.
    pub(crate) fn new(
        issuer: &[u8],
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
        expected_entries: usize,
    ) -> Result<CrlEncoder, Error> {
        let mut prefix = Vec::with_capacity(64 + issuer.len());
        prefix.extend_from_slice(&VERSION_V2);
        prefix.extend_from_slice(&SHA256_WITH_RSA);
        prefix.extend_from_slice(issuer);
        let time_err = |problem: String| Error::Policy(policies::Error::Date(problem));
        push_time(&mut prefix, this_update, false).map_err(time_err)?;
        push_time(&mut prefix, next_update, false).map_err(time_err)?;
        // outer CertificateList header, TBS header, prefix, revokedCertificates header
        let gap = MAX_HEADER * 3 + prefix.len();
        // ~40 bytes per entry (16-octet serials, a third with a reason) plus slack for the
        // extensions and signature; only a hint.
        let mut buf = Vec::with_capacity(gap + expected_entries.saturating_mul(44) + 2048);
        buf.resize(gap, 0);
        Ok(CrlEncoder {
            buf,
            prefix,
            gap,
            entries: 0,
        })
    }

    pub(crate) fn push(&mut self, e: &Entry) -> Result<(), Error> {
        push_entry(&mut self.buf, e)?;
        self.entries += 1;
        Ok(())
    }

    /// Appends an already encoded entry (tests craft malformed ones).
    #[cfg(test)]
    pub(crate) fn push_raw(&mut self, der: &[u8]) {
        self.buf.extend_from_slice(der);
        self.entries += 1;
    }

    pub(crate) fn entries(&self) -> u64 {
        self.entries
    }

    /// Closes the TBSCertList with `extensions` (the DER `SEQUENCE OF Extension`), signs it
    /// with `sign` and returns the DER CertificateList.
    pub(crate) fn finish(
        mut self,
        extensions: &[u8],
        sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, Error>,
    ) -> Result<Bytes, Error> {
        let overflow = || Error::Der {
            what: "CRL length",
            source: der::ErrorKind::Overflow.into(),
        };
        let entries_len = self.buf.len() - self.gap;
        push_tlv_header(&mut self.buf, 0xa0, extensions.len())?;
        self.buf.extend_from_slice(extensions);
        let tbs_end = self.buf.len();

        // Fill the gap backwards: revokedCertificates header (absent when empty, §5.1.2.6),
        // the prefix, the TBSCertList header.
        let mut pos = self.gap;
        if self.entries > 0 {
            let (h, n) = header(0x30, entries_len).ok_or_else(overflow)?;
            pos -= n;
            self.buf[pos..pos + n].copy_from_slice(&h[..n]);
        } else {
            debug_assert_eq!(entries_len, 0);
        }
        pos -= self.prefix.len();
        self.buf[pos..pos + self.prefix.len()].copy_from_slice(&self.prefix);
        let (h, n) = header(0x30, tbs_end - pos).ok_or_else(overflow)?;
        pos -= n;
        self.buf[pos..pos + n].copy_from_slice(&h[..n]);
        let tbs_start = pos;

        let signature = sign(&self.buf[tbs_start..tbs_end])?;
        self.buf.extend_from_slice(&SHA256_WITH_RSA);
        // BIT STRING: one octet of unused bits (0), then the signature.
        push_tlv_header(&mut self.buf, 0x03, signature.len() + 1)?;
        self.buf.push(0);
        self.buf.extend_from_slice(&signature);

        let (h, n) = header(0x30, self.buf.len() - tbs_start).ok_or_else(overflow)?;
        let start = tbs_start - n;
        self.buf[start..tbs_start].copy_from_slice(&h[..n]);
        Ok(Bytes::from(self.buf).slice(start..))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::asn1::{GeneralizedTime, OctetString, Uint};
    use der::{Decode, Encode};
    use time::macros::datetime;
    use time::Duration;
    use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
    use x509_cert::ext::pkix::{CrlNumber, CrlReason};
    use x509_cert::ext::{Extension, ToExtension};
    use x509_cert::name::Name;
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::spki::AlgorithmIdentifierOwned;

    fn entry(serial: &[u8], reason: Reason, invalidity: Option<OffsetDateTime>) -> Entry {
        Entry {
            serial: serial.to_vec(),
            revoked_at: datetime!(2026-11-27 10:11:12.345 +09:00),
            reason,
            invalidity,
            not_after: datetime!(2031-01-01 0:00 UTC),
        }
    }

    fn reason_of(r: Reason) -> CrlReason {
        match r {
            Reason::KeyCompromise => CrlReason::KeyCompromise,
            Reason::CertificateHold => CrlReason::CertificateHold,
            Reason::Superseded => CrlReason::Superseded,
            Reason::AaCompromise => CrlReason::AaCompromise,
            _ => CrlReason::Unspecified,
        }
    }

    /// The same CRL as `x509_cert`'s own types encode it.
    fn reference(issuer: &Name, entries: &[Entry], exts: Vec<Extension>) -> Vec<u8> {
        let alg = AlgorithmIdentifierOwned {
            oid: const_oid_sha256_rsa(),
            parameters: Some(der::asn1::Null.into()),
        };
        let t = |t| policies::profile::x509_time(t).unwrap();
        let revoked: Vec<RevokedCert> = entries
            .iter()
            .map(|e| {
                let mut x = Vec::new();
                if e.reason != Reason::Unspecified {
                    x.push(reason_of(e.reason).to_extension(issuer, &[]).unwrap());
                }
                if let Some(i) = e.invalidity {
                    let secs = core::time::Duration::from_secs(i.unix_timestamp() as u64);
                    let g = GeneralizedTime::from_unix_duration(secs).unwrap();
                    x.push(Extension {
                        extn_id: der::asn1::ObjectIdentifier::new_unwrap("2.5.29.24"),
                        critical: false,
                        extn_value: OctetString::new(g.to_der().unwrap()).unwrap(),
                    });
                }
                RevokedCert {
                    serial_number: SerialNumber::new(&e.serial).unwrap(),
                    revocation_date: t(e.revoked_at.replace_millisecond(0).unwrap()),
                    crl_entry_extensions: (!x.is_empty()).then_some(x),
                }
            })
            .collect();
        TbsCertList {
            version: x509_cert::Version::V2,
            signature: alg,
            issuer: issuer.clone(),
            this_update: t(datetime!(2026-11-27 01:00 UTC)),
            next_update: Some(t(datetime!(2050-11-28 01:00 UTC))),
            revoked_certificates: (!revoked.is_empty()).then_some(revoked),
            crl_extensions: Some(exts),
        }
        .to_der()
        .unwrap()
    }

    fn const_oid_sha256_rsa() -> der::asn1::ObjectIdentifier {
        der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11")
    }

    fn ours(issuer: &Name, entries: &[Entry], exts: &[Extension]) -> (Vec<u8>, Vec<u8>) {
        let mut enc = CrlEncoder::new(
            &issuer.to_der().unwrap(),
            datetime!(2026-11-27 01:00 UTC),
            datetime!(2050-11-28 01:00 UTC),
            0,
        )
        .unwrap();
        for e in entries {
            enc.push(e).unwrap();
        }
        let mut tbs = Vec::new();
        let der = enc
            .finish(&exts.to_vec().to_der().unwrap(), |m| {
                tbs = m.to_vec();
                Ok(vec![0x5a; 256])
            })
            .unwrap();
        (tbs, der.to_vec())
    }

    #[test]
    fn matches_x509_cert_encoding() {
        let issuer: Name = "CN=Test Root,O=JPKI-TEST,C=JP".parse().unwrap();
        let exts = vec![CrlNumber(Uint::new(&[1, 0]).unwrap())
            .to_extension(&issuer, &[])
            .unwrap()];
        let gt = datetime!(2026-11-20 00:00:01 UTC);
        let cases: Vec<Vec<Entry>> = vec![
            vec![],
            vec![entry(&[0x01], Reason::Unspecified, None)],
            vec![
                entry(&[0x00, 0x00, 0x7f], Reason::KeyCompromise, Some(gt)),
                entry(&[0x80; 19], Reason::CertificateHold, None),
                entry(&[0xff; 16], Reason::AaCompromise, Some(gt)),
                entry(&[0x00, 0x80], Reason::Superseded, None),
            ],
            (0u32..300)
                .map(|i| entry(&i.to_be_bytes(), Reason::KeyCompromise, None))
                .collect(),
        ];
        for entries in cases {
            let (tbs, der) = ours(&issuer, &entries, &exts);
            assert_eq!(
                tbs,
                reference(&issuer, &entries, exts.clone()),
                "{} entries",
                entries.len()
            );
            // and the whole signed structure is canonical DER for x509-cert
            let back: CertificateList = CertificateList::from_der(&der).unwrap();
            assert_eq!(back.to_der().unwrap(), der);
            assert_eq!(back.tbs_cert_list.to_der().unwrap(), tbs);
        }
    }

    #[test]
    fn times_match_the_time_crate() {
        let mut t = datetime!(1970-01-01 0:00 UTC);
        while t.year() < 2200 {
            let mut ours = Vec::new();
            push_time(&mut ours, t, false).unwrap();
            let reference = policies::profile::x509_time(t).unwrap().to_der().unwrap();
            assert_eq!(ours, reference, "{t}");
            assert_eq!(ours.len(), time_len(t, false), "{t}");
            t += Duration::seconds(7_777_777);
        }
        for t in [
            datetime!(2049-12-31 23:59:59 UTC),
            datetime!(2050-01-01 0:00 UTC),
            datetime!(2000-02-29 12:00 +09:00),
        ] {
            let mut ours = Vec::new();
            push_time(&mut ours, t, false).unwrap();
            assert_eq!(
                ours,
                policies::profile::x509_time(t).unwrap().to_der().unwrap(),
                "{t}"
            );
        }
    }

    #[test]
    fn random_entries_match_x509_cert_encoding() {
        // xorshift: deterministic, no extra dependency
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let reasons = [
            Reason::Unspecified,
            Reason::KeyCompromise,
            Reason::CertificateHold,
            Reason::Superseded,
            Reason::AaCompromise,
        ];
        let issuer: Name = "CN=Random Root,C=JP".parse().unwrap();
        let exts = vec![CrlNumber(Uint::new(&[9]).unwrap())
            .to_extension(&issuer, &[])
            .unwrap()];
        let entries: Vec<Entry> = (0..2000)
            .map(|_| {
                let len = 1 + (next() % 19) as usize;
                let mut serial: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                if next() % 4 == 0 {
                    serial[0] = 0; // leading zero octets are normalised away
                }
                let at = |n: u64| {
                    OffsetDateTime::from_unix_timestamp((n % 4_000_000_000) as i64).unwrap()
                };
                Entry {
                    serial,
                    revoked_at: at(next()),
                    reason: reasons[(next() % 5) as usize],
                    invalidity: (next() % 2 == 0).then(|| at(next())),
                    not_after: at(next()),
                }
            })
            .collect();
        let (tbs, _) = ours(&issuer, &entries, &exts);
        assert_eq!(tbs, reference(&issuer, &entries, exts));
    }

    #[test]
    fn long_lengths_and_limits() {
        let (h, n) = header(0x30, 0x1234_5678).unwrap();
        assert_eq!(&h[..n], &[0x30, 0x84, 0x12, 0x34, 0x56, 0x78]);
        let (h, n) = header(0x30, 200).unwrap();
        assert_eq!(&h[..n], &[0x30, 0x81, 200]);
        assert!(header(0x30, usize::MAX).is_none());

        // the largest entry still has a one-octet length
        let mut out = Vec::new();
        let big = Entry {
            invalidity: Some(datetime!(2099-01-01 0:00 UTC)),
            revoked_at: datetime!(2099-01-01 0:00 UTC),
            ..entry(&[0x80; 19], Reason::KeyCompromise, None)
        };
        push_entry(&mut out, &big).unwrap();
        assert!(out.len() < 130 && usize::from(out[1]) == out.len() - 2);

        let e = push_entry(&mut out, &entry(&[0x80; 20], Reason::KeyCompromise, None)).unwrap_err();
        assert!(e.to_string().contains("21 octets"), "{e}");
        let old = Entry {
            revoked_at: datetime!(1969-12-31 23:59:59 UTC),
            ..entry(&[1], Reason::Superseded, None)
        };
        assert!(push_entry(&mut out, &old).is_err());
    }
}
