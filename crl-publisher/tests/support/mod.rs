//! Test (and benchmark) fixtures: RSA roots made with rcgen, a switchable signer, leaves whose
//! CRL distribution point carries exactly the names the publisher puts in the IDP.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use der::Encode;
use policies::profile::{crl_dp_names, Scope};
use policies::{Hierarchy, Policy, SignError, Signer};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SerialNumber, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256,
};
use time::OffsetDateTime;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::DistributionPointName;
use x509_cert::ext::pkix::CrlDistributionPoints;

/// A root key and certificate; signing can be switched off to simulate a failing HSM.
pub struct TestRoot {
    pub key: KeyPair,
    pub params: CertificateParams,
    pub der: Vec<u8>,
    pub fail: AtomicBool,
}

impl Signer for TestRoot {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(SignError("test signer switched off".into()));
        }
        rcgen::SigningKey::sign(&self.key, message).map_err(|e| SignError(e.to_string()))
    }

    fn certificate(&self) -> &[u8] {
        &self.der
    }
}

impl TestRoot {
    pub fn new(h: Hierarchy) -> Arc<TestRoot> {
        let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CountryName,
            rcgen::DnValue::PrintableString("JP".try_into().unwrap()),
        );
        dn.push(DnType::OrganizationName, "JPKI-TEST");
        dn.push(DnType::OrganizationalUnitName, h.root_ou());
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(SerialNumber::from_slice(&[1]));
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(3650);
        let der = params.self_signed(&key).unwrap().der().to_vec();
        Arc::new(TestRoot {
            key,
            params,
            der,
            fail: AtomicBool::new(false),
        })
    }

    pub fn pem(&self) -> String {
        pem_of("CERTIFICATE", &self.der)
    }

    /// A leaf with this serial whose CRL distribution point names `(h, scope)`'s CRL.
    pub fn leaf(&self, policy: &Policy, h: Hierarchy, scope: Scope, serial: &[u8]) -> Vec<u8> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("leaf {}", hex::encode(serial)));
        params.distinguished_name = dn;
        params.serial_number = Some(SerialNumber::from_slice(serial));
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(365);
        let cdp = CrlDistributionPoints(vec![DistributionPoint {
            distribution_point: Some(DistributionPointName::FullName(
                crl_dp_names(policy, h, scope).unwrap(),
            )),
            reasons: None,
            crl_issuer: None,
        }]);
        params.custom_extensions = vec![CustomExtension::from_oid_content(
            &[2, 5, 29, 31],
            cdp.to_der().unwrap(),
        )];
        let issuer = Issuer::new(self.params.clone(), &self.key);
        params.signed_by(&key, &issuer).unwrap().der().to_vec()
    }
}

pub fn pem_of(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
