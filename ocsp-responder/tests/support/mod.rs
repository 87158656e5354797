//! A throwaway test PKI: two roots with delegated OCSP signers, leaves in every state, and a
//! foreign root, written as PEM for `openssl ocsp`. Shared by the integration tests and the
//! examples (`#[path]`-included).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ocsp_responder::{Issuer, MemorySource};
use policies::{Hierarchy, SignError, Signer};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, RsaKeySize, SerialNumber,
    PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256,
};
use time::{Duration, OffsetDateTime};

/// An rcgen key as a [`Signer`] (sha256WithRSAEncryption).
pub struct KeySigner {
    key: KeyPair,
    cert: Vec<u8>,
}

impl Signer for KeySigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        rcgen::SigningKey::sign(&self.key, message).map_err(|e| SignError(e.to_string()))
    }
    fn certificate(&self) -> &[u8] {
        &self.cert
    }
}

pub struct Leaf {
    pub hierarchy: Option<Hierarchy>,
    pub serial: Vec<u8>,
    pub path: PathBuf,
}

pub struct Pki {
    pub dir: PathBuf,
    pub issuers: Vec<Issuer>,
    pub source: Arc<MemorySource>,
    pub leaves: HashMap<&'static str, Leaf>,
    /// DER of the roots: signing, auth, foreign.
    pub roots: HashMap<&'static str, Vec<u8>>,
    /// PKCS#8 PEM of the OCSP signer keys: signing, auth (for `openssl ocsp -rkey`).
    pub signer_keys: HashMap<&'static str, String>,
    /// A second delegated signer per root (signing, auth): what a renewal installs.
    pub next_signers: HashMap<&'static str, Arc<dyn Signer>>,
}

impl Pki {
    pub fn root_pem(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}-root.pem"))
    }
    pub fn leaf(&self, name: &str) -> &Leaf {
        &self.leaves[name]
    }
}

fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(
        DnType::CountryName,
        rcgen::DnValue::PrintableString("JP".try_into().unwrap()),
    );
    d.push(DnType::OrganizationName, "jpki test");
    d.push(DnType::CommonName, cn);
    d
}

fn params(cn: &str, serial: &[u8]) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.serial_number = Some(SerialNumber::from_slice(serial));
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::days(1);
    p.not_after = now + Duration::days(365);
    p
}

fn root(cn: &str, serial: &[u8], key: KeyPair) -> (rcgen::Issuer<'static, KeyPair>, Vec<u8>) {
    let mut p = params(cn, serial);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = p.self_signed(&key).unwrap();
    (rcgen::Issuer::new(p, key), cert.der().to_vec())
}

fn write_pem(path: &Path, der: &[u8]) {
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der);
    let mut s = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap());
        s.push('\n');
    }
    s.push_str("-----END CERTIFICATE-----\n");
    std::fs::write(path, s).unwrap();
}

fn leaf(issuer: &rcgen::Issuer<'_, KeyPair>, cn: &str, serial: &[u8]) -> Vec<u8> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = params(cn, serial);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.signed_by(&key, issuer).unwrap().der().to_vec()
}

/// (hierarchy, file prefix, serial tag, leaves by name and serial)
type Spec = (Hierarchy, &'static str, u8, &'static [(&'static str, u16)]);

/// Builds the PKI in `dir`. Statuses in the source: signing `good` 0x1001, `revoked` 0x1002
/// (not yet revoked: tests revoke it), `held` 0x1003 (held), `unissued` 0x1004 (a certificate
/// exists but the CA never recorded it), `late` 0x1005 (good); auth `auth-good` 0x2001;
/// `foreign` 0x3001 under a root nobody serves.
pub fn pki(dir: &Path) -> Pki {
    let rsa = || KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048).unwrap();
    let source = Arc::new(MemorySource::new());
    let mut issuers = Vec::new();
    let mut leaves = HashMap::new();
    let mut roots = HashMap::new();
    let mut signer_keys = HashMap::new();
    let mut next_signers: HashMap<&'static str, Arc<dyn Signer>> = HashMap::new();
    let specs: [Spec; 2] = [
        (
            Hierarchy::Signing,
            "signing",
            0x10,
            &[
                ("good", 0x1001),
                ("revoked", 0x1002),
                ("held", 0x1003),
                ("unissued", 0x1004),
                ("late", 0x1005),
            ],
        ),
        (Hierarchy::Auth, "auth", 0x20, &[("auth-good", 0x2001)]),
    ];
    for (h, name, tag, names) in specs {
        let (issuer, root_der) = root(&format!("Test {name} root"), &[tag], rsa());
        write_pem(&dir.join(format!("{name}-root.pem")), &root_der);
        roots.insert(name, root_der.clone());
        // delegated OCSP signer: id-kp-OCSPSigning + id-pkix-ocsp-nocheck (NULL)
        let skey = rsa();
        signer_keys.insert(name, skey.serialize_pem());
        let signer_params = |serial: u8| {
            let mut p = params(&format!("Test {name} OCSP signer"), &[tag, serial]);
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::OcspSigning];
            p.custom_extensions = vec![CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 5, 5, 7, 48, 1, 5],
                vec![5, 0],
            )];
            p
        };
        let scert = signer_params(0xEE)
            .signed_by(&skey, &issuer)
            .unwrap()
            .der()
            .to_vec();
        let next_key = rsa();
        let next_cert = signer_params(0xEF)
            .signed_by(&next_key, &issuer)
            .unwrap()
            .der()
            .to_vec();
        next_signers.insert(
            name,
            Arc::new(KeySigner {
                key: next_key,
                cert: next_cert,
            }),
        );
        write_pem(&dir.join(format!("{name}-signer.pem")), &scert);
        for (leaf_name, serial) in names {
            let serial = serial.to_be_bytes().to_vec();
            let der = leaf(&issuer, leaf_name, &serial);
            let path = dir.join(format!("{leaf_name}.pem"));
            write_pem(&path, &der);
            if *leaf_name != "unissued" {
                source.issue(h, &serial);
            }
            leaves.insert(
                *leaf_name,
                Leaf {
                    hierarchy: Some(h),
                    serial,
                    path,
                },
            );
        }
        issuers.push(Issuer {
            hierarchy: h,
            root: root_der,
            signer: Arc::new(KeySigner {
                key: skey,
                cert: scert,
            }),
        });
    }
    let held = &leaves["held"];
    source.revoke(
        Hierarchy::Signing,
        &held.serial,
        OffsetDateTime::now_utc() - Duration::hours(1),
        policies::Reason::CertificateHold,
    );
    let (foreign, foreign_der) = root(
        "Test foreign root",
        &[0x30],
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap(),
    );
    write_pem(&dir.join("foreign-root.pem"), &foreign_der);
    roots.insert("foreign", foreign_der);
    let serial = 0x3001u16.to_be_bytes().to_vec();
    let der = leaf(&foreign, "foreign", &serial);
    let path = dir.join("foreign.pem");
    write_pem(&path, &der);
    leaves.insert(
        "foreign",
        Leaf {
            hierarchy: None,
            serial,
            path,
        },
    );
    Pki {
        dir: dir.to_path_buf(),
        issuers,
        source,
        leaves,
        roots,
        signer_keys,
        next_signers,
    }
}
