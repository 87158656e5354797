//! Loading certificates (PEM or DER) and small helpers shared by the checks.

use ::time::OffsetDateTime;
use x509_parser::prelude::*;

use crate::Error;

/// PEM (any label) or DER → DER bytes of the first object.
pub fn der_from_pem_or_der(bytes: &[u8]) -> Vec<u8> {
    let trimmed = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(bytes, |i| &bytes[i..]);
    if trimmed.starts_with(b"-----BEGIN") {
        if let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(trimmed) {
            return pem.contents;
        }
    }
    bytes.to_vec()
}

/// A certificate as DER, checked to parse.
pub fn certificate_der(bytes: &[u8], what: &'static str) -> Result<Vec<u8>, Error> {
    let der = der_from_pem_or_der(bytes);
    parse(&der, what)?;
    Ok(der)
}

/// Parses a DER certificate, refusing trailing bytes.
pub fn parse<'a>(der: &'a [u8], what: &'static str) -> Result<X509Certificate<'a>, Error> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(Error::NotACertificate {
            what,
            detail: "trailing bytes after the certificate".into(),
        }),
        Err(e) => Err(Error::NotACertificate {
            what,
            detail: e.to_string(),
        }),
    }
}

pub fn to_datetime(t: ASN1Time) -> OffsetDateTime {
    t.to_datetime()
}

/// RFC 3339 for reports.
pub fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&::time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

pub fn parse_time(s: &str) -> Result<OffsetDateTime, Error> {
    OffsetDateTime::parse(s, &::time::format_description::well_known::Rfc3339)
        .map_err(|_| Error::BadTime(s.to_string()))
}

/// The serial as upper-case hex without leading zero bytes (the account key of a login).
pub fn serial_hex(cert: &X509Certificate<'_>) -> String {
    let raw = cert.raw_serial();
    let start = raw
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    hex::encode_upper(&raw[start..])
}

/// The subjectKeyIdentifier, if present.
pub fn ski<'a>(cert: &'a X509Certificate<'_>) -> Option<&'a [u8]> {
    cert.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0),
            _ => None,
        })
}
