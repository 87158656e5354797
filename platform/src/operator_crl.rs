//! The operator CA's CRL (RFC 5280 §5): the client certificates of revoked officers and
//! verifiers, so that revoking an officer (`jpki officer revoke`, `jpki verifier remove`) also
//! revokes its operator-CA certificate for anyone who trusts the operator CA — not only for
//! this server, which refuses the key on every request anyway (`ca::officers::authenticate`).
//!
//! Written to `certs/operator-ca.crl` (DER) each time an officer is revoked, with a CRL
//! number that only grows (the issue time in seconds) and a nextUpdate [`VALID_DAYS`] later;
//! `jpki root --hierarchy operator --crl FILE` copies it out. Built with rcgen's CRL writer
//! (CRL number, authority key identifier = the operator root's subject key identifier) over
//! the operator CA's own signer.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use ca::keys::CaSigner;
use ca::officers::OfficerState;
use ca::Authority;
use policies::Signer;
use rcgen::{
    CertificateRevocationListParams, Issuer, KeyIdMethod, PublicKeyData, RevocationReason,
    RevokedCertParams, SerialNumber, SignatureAlgorithm, SigningKey, PKCS_RSA_SHA256,
};
use rustls::pki_types::CertificateDer;

use crate::error::{Error, Result};
use crate::operator_ca::{self, KEY_NAME};

/// How long a published CRL stays current (it is re-published at every officer revocation).
pub const VALID_DAYS: i64 = 30;

/// Where the CRL is kept.
pub fn path(authority: &Authority) -> PathBuf {
    authority
        .data_dir()
        .dir
        .join("certs")
        .join("operator-ca.crl")
}

/// The operator CA's signer as rcgen's signing key.
struct RcgenKey {
    signer: CaSigner,
    /// The RSA public key (the SubjectPublicKeyInfo's bit string).
    public_key: Vec<u8>,
}

impl PublicKeyData for RcgenKey {
    fn der_bytes(&self) -> &[u8] {
        &self.public_key
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_RSA_SHA256
    }
}

impl SigningKey for RcgenKey {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        self.signer
            .sign(msg)
            .map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

/// Builds and writes the CRL of every revoked officer's certificate; returns its DER.
pub fn publish(authority: &Authority) -> Result<Vec<u8>> {
    let root = operator_ca::ensure(authority)?;
    let signer = authority.signers().named(KEY_NAME, root.clone())?;
    let spki = signer.spki()?;
    use x509_parser::prelude::FromDer;
    let public_key = x509_parser::x509::SubjectPublicKeyInfo::from_der(&spki)
        .map(|(_, k)| k.subject_public_key.data.to_vec())
        .map_err(|e| Error::Internal(format!("operator key: {e}")))?;
    let key_id =
        policies::profile::key_identifier(&spki).map_err(|e| Error::Internal(e.to_string()))?;
    let now = authority.clock().now();
    // When each was revoked: its `officer-revoke` audit record.
    let revoked_at: std::collections::HashMap<String, time::OffsetDateTime> = authority
        .audit_records()?
        .into_iter()
        .filter(|r| r.action == "officer-revoke")
        .map(|r| (r.subject, r.at))
        .collect();
    let mut revoked = Vec::new();
    for o in authority.storage().officers()? {
        let (OfficerState::Revoked, Some(serial)) = (o.state, o.certificate.as_deref()) else {
            continue;
        };
        let bytes = hex::decode(serial)
            .map_err(|_| Error::Internal(format!("officer {}: serial {serial}", o.id)))?;
        revoked.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&bytes),
            revocation_time: revoked_at.get(&o.id).copied().unwrap_or(now),
            reason_code: Some(RevocationReason::CessationOfOperation),
            invalidity_date: None,
        });
    }
    let params = CertificateRevocationListParams {
        this_update: now,
        next_update: now + time::Duration::days(VALID_DAYS),
        crl_number: SerialNumber::from(u64::try_from(now.unix_timestamp()).unwrap_or(0)),
        issuing_distribution_point: None,
        revoked_certs: revoked,
        key_identifier_method: KeyIdMethod::PreSpecified(key_id),
    };
    let issuer = Issuer::from_ca_cert_der(
        &CertificateDer::from(root.as_slice()),
        RcgenKey { signer, public_key },
    )
    .map_err(|e| Error::Internal(format!("operator CA as CRL issuer: {e}")))?;
    let der = params
        .signed_by(&issuer)
        .map_err(|e| Error::Internal(format!("sign the operator CA's CRL: {e}")))?
        .der()
        .to_vec();
    let p = path(authority);
    let tmp = p.with_extension("crl.tmp");
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(&der)?;
        f.sync_all()?;
        fs::rename(&tmp, &p)
    };
    write().map_err(Error::io(format!("write {}", p.display())))?;
    Ok(der)
}

/// Re-publishes the CRL when one was published and its nextUpdate is within `margin_days`
/// (`jpki serve` checks every minute); `true` when it did.
pub fn republish_if_due(authority: &Authority, margin_days: i64) -> Result<bool> {
    let der = match fs::read(path(authority)) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(format!("read {}", path(authority).display()))(e)),
    };
    let next = x509_parser::parse_x509_crl(&der)
        .ok()
        .and_then(|(_, c)| c.next_update())
        .map(|t| t.timestamp());
    let now = authority.clock().now();
    let due = next.is_none_or(|n| n - now.unix_timestamp() < margin_days * 86_400);
    if due {
        publish(authority)?;
    }
    Ok(due)
}
