//! The audit-checkpoint signer (`ca::checkpoint`) and its certificate from the operator CA.
//!
//! Here rather than in `ca` because the certificate comes from the operator CA, which lives in
//! this crate: the checkpoint key is a named CA key (`keys/audit-checkpoint.key`, encrypted
//! under the passphrase like every CA key, made on first use) and its certificate is
//! `certs/audit-checkpoint.pem`. A third party who trusts the operator CA's root checks a
//! checkpoint's certificate against it and the checkpoint's signature with the certificate.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use ca::checkpoint::{self, Checkpoint, KEY_NAME};
use ca::keys::CaSigner;
use ca::Authority;

use crate::error::{Error, Result};
use crate::operator_ca::{self, OperatorCa};

fn cert_path(authority: &Authority) -> PathBuf {
    authority
        .data_dir()
        .dir
        .join("certs")
        .join("audit-checkpoint.pem")
}

/// The checkpoint signer, making its key and certificate on first use (needs the
/// passphrase).
pub fn signer(authority: &Authority) -> Result<CaSigner> {
    let path = cert_path(authority);
    match fs::read(&path) {
        Ok(pem) => {
            let der = operator_ca::der_of_pem(&pem)?;
            let signer = authority.signers().named(KEY_NAME, der.clone())?;
            if signer.spki()? != ca::authority::spki_of(&der)? {
                return Err(Error::Ca(ca::Error::KeyFile {
                    path: authority
                        .data_dir()
                        .named_key(KEY_NAME)
                        .display()
                        .to_string(),
                    detail: "the key does not match certs/audit-checkpoint.pem".into(),
                }));
            }
            Ok(signer)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => make(authority),
        Err(e) => Err(Error::io(format!("read {}", path.display()))(e)),
    }
}

fn make(authority: &Authority) -> Result<CaSigner> {
    // A key left by an interrupted earlier attempt is reused: the certificate is written
    // only after the key is on disk.
    if !authority.data_dir().named_key(KEY_NAME).exists() {
        authority.signers().create(KEY_NAME)?;
    }
    let key = authority.signers().named(KEY_NAME, Vec::new())?;
    let ca = OperatorCa::load(authority)?;
    let now = authority.clock().now();
    let der = ca.issue_checkpoint_signer(authority, &key.spki()?, now)?;
    let path = cert_path(authority);
    let tmp = path.with_extension("pem.tmp");
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(ca::records::pem(&der).as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, &path)
    };
    write().map_err(Error::io(format!("write {}", path.display())))?;
    let serial = x509_parser::parse_x509_certificate(&der)
        .map(|(_, c)| ca::authority::serial_hex(c.raw_serial()))
        .unwrap_or_default();
    authority
        .storage()
        .transact(&|t| ca::storage::audit(t, now, "checkpoint-key-create", &serial, ""))?;
    Ok(authority.signers().named(KEY_NAME, der)?)
}

/// Accepts a checkpoint certificate that the operator CA signed.
pub fn trust(operator_root: &[u8], cert_der: &[u8]) -> ca::Result<()> {
    let (Ok((_, root)), Ok((_, cert))) = (
        x509_parser::parse_x509_certificate(operator_root),
        x509_parser::parse_x509_certificate(cert_der),
    ) else {
        return Err(ca::Error::Invalid("a certificate does not parse".into()));
    };
    if cert.issuer().as_raw() != root.subject().as_raw()
        || cert.verify_signature(Some(root.public_key())).is_err()
    {
        return Err(ca::Error::Invalid(
            "not issued by this data directory's operator CA".into(),
        ));
    }
    Ok(())
}

/// Signs a checkpoint of the chain's head now (`None`: nothing new since the last).
pub fn checkpoint(authority: &Authority) -> Result<Option<Checkpoint>> {
    let signer = signer(authority)?;
    Ok(checkpoint::make(authority, &signer)?)
}

/// Verifies the chain and every checkpoint against the operator CA.
pub fn verify(authority: &Authority) -> Result<checkpoint::Verified> {
    let root = operator_ca::root(authority)?;
    Ok(checkpoint::verify(
        authority.storage().as_ref(),
        &|der: &[u8]| trust(&root, der),
    )?)
}
