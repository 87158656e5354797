//! The operator CA: a third, separate root that issues platform operators their TLS client
//! certificates and the API listener its server certificate. It is not part of either JPKI
//! hierarchy: a PF credential must never verify as a holder certificate, and a holder
//! certificate must never open the PF API.
//!
//! Files in the data directory: `keys/operator-root.key` (encrypted under the authority's
//! passphrase, through [`ca::signers::Signers::create`]) and `certs/operator-root.pem`.
//!
//! The TBSCertificate is built here from RustCrypto types, as `policies::profile` does for
//! the JPKI hierarchies (RFC 5280 §4.1):
//! ```text
//! TBSCertificate  ::=  SEQUENCE  {
//!      version         [0]  EXPLICIT Version DEFAULT v1,
//!      serialNumber         CertificateSerialNumber,
//!      signature            AlgorithmIdentifier,
//!      issuer               Name,
//!      validity             Validity,
//!      subject              Name,
//!      subjectPublicKeyInfo SubjectPublicKeyInfo,
//!      extensions      [3]  EXPLICIT Extensions OPTIONAL }
//! ```

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use ca::keys::CaSigner;
use ca::Authority;
use const_oid::ObjectIdentifier as Oid;
use der::asn1::{Ia5String, OctetString};
use der::Encode;
use policies::oid::{AT_C, AT_CN, AT_O, AT_OU, EXT_BASIC_CONSTRAINTS, EXT_EKU, EXT_SAN};
use policies::profile::{self, aki, key_identifier, key_usage, ski, Draft};
use policies::validity::{add_months, end_of_day_jst, jst_date};
use policies::Signer;
use time::{Duration, OffsetDateTime};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsages, SubjectAltName};
use x509_cert::ext::Extension;
use x509_cert::name::Name;

use crate::error::{Error, Result};

/// Name of the key under `keys/`.
pub const KEY_NAME: &str = "operator-root";
/// Years of validity of the operator root.
const ROOT_YEARS: u32 = 20;
/// Days of validity of a server certificate made by [`OperatorCa::issue_server`].
const SERVER_DAYS: i64 = 30;

const KP_SERVER_AUTH: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.1");
const KP_CLIENT_AUTH: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.2");

fn der_err(what: &'static str) -> impl Fn(der::Error) -> Error {
    move |e| Error::Internal(format!("{what}: {e}"))
}

fn ext<T: Encode>(id: Oid, critical: bool, value: &T, what: &'static str) -> Result<Extension> {
    profile::ext(id, critical, value, what).map_err(|e| Error::Internal(e.to_string()))
}

fn path(authority: &Authority) -> PathBuf {
    authority
        .data_dir()
        .dir
        .join("certs")
        .join("operator-root.pem")
}

fn key_path(authority: &Authority) -> PathBuf {
    authority.data_dir().named_key(KEY_NAME)
}

/// `C=JP, O=<org>, OU=JPKI Platform Operators, CN=<org> Operator CA`.
pub fn root_name(authority: &Authority) -> Result<Name> {
    let org = &authority.policy().ca.organization;
    Ok(profile::name(&[
        (AT_C, "JP"),
        (AT_O, org),
        (AT_OU, "JPKI Platform Operators"),
        (AT_CN, &format!("{org} Operator CA")),
    ])?)
}

fn sign(draft: Draft<'_>, signer: &dyn Signer) -> Result<Vec<u8>> {
    let tbs = draft
        .tbs()
        .map_err(|e| Error::BadCertificate(e.to_string()))?;
    let sig = signer
        .sign(&tbs)
        .map_err(|e| Error::Internal(format!("signing: {e}")))?;
    Ok(profile::assemble(&tbs, &sig)?)
}

/// The operator root's certificate (DER), creating key and certificate if missing: data
/// directories made before the operator CA existed gain it on first use.
pub fn ensure(authority: &Authority) -> Result<Vec<u8>> {
    match fs::read(path(authority)) {
        Ok(pem) => return der_of_pem(&pem),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("read {}", path(authority).display()))(e)),
    }
    make(authority)
}

/// Creates the operator root (called by `jpki init`); refuses if it already exists.
pub fn create(authority: &Authority) -> Result<Vec<u8>> {
    if path(authority).exists() {
        return Err(Error::Ca(ca::Error::Invalid(format!(
            "{} already exists",
            path(authority).display()
        ))));
    }
    make(authority)
}

/// The operator root certificate (DER); see [`ensure`].
pub fn root(authority: &Authority) -> Result<Vec<u8>> {
    ensure(authority)
}

fn make(authority: &Authority) -> Result<Vec<u8>> {
    // A key left by an interrupted earlier attempt is reused: the certificate is only
    // written after the key is on disk.
    if !authority.signers().has(KEY_NAME)? {
        authority.signers().create(KEY_NAME)?;
    }
    let signer = authority.signers().named(KEY_NAME, Vec::new())?;
    let spki = signer.spki()?;
    let now = authority.clock().now();
    let serial = authority.random_serial()?;
    let end = add_months(jst_date(now), ROOT_YEARS * 12)?;
    let name = root_name(authority)?;
    let der = sign(
        Draft {
            serial: &serial,
            issuer: name.clone(),
            subject: name,
            spki: &spki,
            not_before: now,
            not_after: end_of_day_jst(end),
            extensions: vec![
                key_usage(KeyUsages::KeyCertSign | KeyUsages::CRLSign)?,
                ext(
                    EXT_BASIC_CONSTRAINTS,
                    true,
                    &BasicConstraints {
                        ca: true,
                        path_len_constraint: Some(0),
                    },
                    "basicConstraints",
                )?,
                ski(&spki)?,
            ],
        },
        &signer,
    )?;
    let p = path(authority);
    let tmp = p.with_extension("pem.tmp");
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(ca::records::pem(&der).as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, &p)
    };
    write().map_err(Error::io(format!("write {}", p.display())))?;
    authority.storage().transact(&|t| {
        ca::storage::audit(
            t,
            now,
            "operator-ca-create",
            &ca::authority::serial_hex(&serial),
            "",
        )
    })?;
    tracing::info!(serial = %ca::authority::serial_hex(&serial), "operator CA created");
    Ok(der)
}

/// The DER of the first CERTIFICATE in a PEM text.
pub fn der_of_pem(pem: &[u8]) -> Result<Vec<u8>> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem)
        .map_err(|e| Error::BadCertificate(format!("not a PEM certificate: {e}")))?;
    if p.label != "CERTIFICATE" {
        return Err(Error::BadCertificate(format!(
            "PEM label is `{}`, expected CERTIFICATE",
            p.label
        )));
    }
    Ok(p.contents)
}

/// The operator CA, loaded and ready to sign.
pub struct OperatorCa {
    signer: CaSigner,
    der: Vec<u8>,
    key_id: Vec<u8>,
    name: Name,
}

impl OperatorCa {
    /// Loads (creating if needed, see [`ensure`]) the operator CA; needs the passphrase.
    pub fn load(authority: &Authority) -> Result<OperatorCa> {
        let der = ensure(authority)?;
        let signer = authority.signers().named(KEY_NAME, der.clone())?;
        let spki = ca::authority::spki_of(&der)?;
        if signer.spki()? != spki {
            return Err(Error::Ca(ca::Error::KeyFile {
                path: key_path(authority).display().to_string(),
                detail: "the key does not match certs/operator-root.pem".into(),
            }));
        }
        Ok(OperatorCa {
            signer,
            key_id: key_identifier(&spki)?,
            name: root_name(authority)?,
            der,
        })
    }

    /// The root certificate (DER).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// A PF's TLS client certificate: `C=JP, O=<pf>, CN=<pf>`, keyUsage digitalSignature
    /// (critical), EKU clientAuth, AKI, SKI, one year to 23:59:59 JST, random serial.
    pub fn issue_client(
        &self,
        authority: &Authority,
        pf_name: &str,
        spki: &[u8],
        now: OffsetDateTime,
    ) -> Result<Vec<u8>> {
        let serial = authority.random_serial()?;
        let end = add_months(jst_date(now), 12)?;
        self.leaf(
            Draft {
                serial: &serial,
                issuer: self.name.clone(),
                subject: profile::name(&[(AT_C, "JP"), (AT_O, pf_name), (AT_CN, pf_name)])?,
                spki,
                not_before: now,
                not_after: end_of_day_jst(end),
                extensions: vec![],
            },
            KeyUsages::DigitalSignature.into(),
            KP_CLIENT_AUTH,
            None,
        )
    }

    /// A short-lived (30 days) TLS server certificate for the API listener, with the given
    /// DNS names / IP addresses as subjectAltName, keyUsage digitalSignature and
    /// keyEncipherment (critical), EKU serverAuth.
    pub fn issue_server(
        &self,
        authority: &Authority,
        hostnames: &[String],
        spki: &[u8],
        now: OffsetDateTime,
    ) -> Result<Vec<u8>> {
        if hostnames.is_empty() {
            return Err(Error::BadRequest(
                "a server certificate needs at least one host name".into(),
            ));
        }
        let mut san = Vec::new();
        for h in hostnames {
            san.push(match h.parse::<IpAddr>() {
                Ok(IpAddr::V4(v4)) => GeneralName::IpAddress(
                    OctetString::new(v4.octets().to_vec()).map_err(der_err("IP"))?,
                ),
                Ok(IpAddr::V6(v6)) => GeneralName::IpAddress(
                    OctetString::new(v6.octets().to_vec()).map_err(der_err("IP"))?,
                ),
                Err(_) => GeneralName::DnsName(
                    Ia5String::new(h)
                        .map_err(|_| Error::BadRequest(format!("host name `{h}` is not ASCII")))?,
                ),
            });
        }
        let serial = authority.random_serial()?;
        // Not empty: checked above.
        let cn = &hostnames[0];
        self.leaf(
            Draft {
                serial: &serial,
                issuer: self.name.clone(),
                subject: profile::name(&[
                    (AT_C, "JP"),
                    (AT_O, &authority.policy().ca.organization),
                    (AT_CN, cn),
                ])?,
                spki,
                not_before: now - Duration::minutes(5),
                not_after: now + Duration::days(SERVER_DAYS),
                extensions: vec![],
            },
            // keyEncipherment too: NSS refuses an RSA server certificate without it.
            KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment,
            KP_SERVER_AUTH,
            Some(SubjectAltName(san)),
        )
    }

    /// The audit-checkpoint signer's certificate (`ca::checkpoint`): `C=JP, O=<org>,
    /// CN=<org> Audit Checkpoints`, keyUsage digitalSignature and contentCommitment
    /// (critical), no EKU (it signs statements, not TLS), ten years to 23:59:59 JST — long
    /// enough that checkpoints stay checkable against it.
    pub fn issue_checkpoint_signer(
        &self,
        authority: &Authority,
        spki: &[u8],
        now: OffsetDateTime,
    ) -> Result<Vec<u8>> {
        let serial = authority.random_serial()?;
        let end = add_months(jst_date(now), 120)?;
        let org = &authority.policy().ca.organization;
        self.leaf_with(
            Draft {
                serial: &serial,
                issuer: self.name.clone(),
                subject: profile::name(&[
                    (AT_C, "JP"),
                    (AT_O, org),
                    (AT_CN, &format!("{org} Audit Checkpoints")),
                ])?,
                spki,
                not_before: now,
                not_after: end_of_day_jst(end),
                extensions: vec![],
            },
            KeyUsages::DigitalSignature | KeyUsages::NonRepudiation,
            None,
            None,
        )
    }

    fn leaf(
        &self,
        d: Draft<'_>,
        usage: flagset::FlagSet<KeyUsages>,
        eku: Oid,
        san: Option<SubjectAltName>,
    ) -> Result<Vec<u8>> {
        self.leaf_with(d, usage, Some(eku), san)
    }

    fn leaf_with(
        &self,
        mut d: Draft<'_>,
        usage: flagset::FlagSet<KeyUsages>,
        eku: Option<Oid>,
        san: Option<SubjectAltName>,
    ) -> Result<Vec<u8>> {
        let mut exts = vec![key_usage(usage)?];
        if let Some(eku) = eku {
            exts.push(ext(
                EXT_EKU,
                false,
                &ExtendedKeyUsage(vec![eku]),
                "extKeyUsage",
            )?);
        }
        if let Some(san) = san {
            exts.push(ext(EXT_SAN, false, &san, "subjectAltName")?);
        }
        exts.push(aki(&self.key_id)?);
        exts.push(ski(d.spki)?);
        d.extensions = exts;
        let der = sign(d, &self.signer)?;
        check_signature(&self.der, &der)?;
        Ok(der)
    }
}

/// Verifies a fresh certificate with the operator root before anyone sees it (a faulty RSA
/// signature can leak the key).
fn check_signature(root_der: &[u8], cert_der: &[u8]) -> Result<()> {
    let (_, root) = x509_parser::parse_x509_certificate(root_der)
        .map_err(|e| Error::Internal(format!("operator root does not parse: {e}")))?;
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| Error::Internal(format!("issued certificate does not parse: {e}")))?;
    cert.verify_signature(Some(root.public_key())).map_err(|_| {
        Error::Internal("the new signature does not verify; nothing was issued".into())
    })
}

/// A freshly generated RSA-2048 key for a PF: SubjectPublicKeyInfo DER and the unencrypted
/// PKCS#8 PEM the PF will load into its TLS client.
pub struct ClientKey {
    pub spki: Vec<u8>,
    pub pkcs8_der: Vec<u8>,
    pub pkcs8_pem: String,
}

/// Generates a PF key with aws-lc-rs.
pub fn generate_client_key() -> Result<ClientKey> {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
    use aws_lc_rs::rsa::{KeyPair, KeySize};
    use aws_lc_rs::signature::KeyPair as _;
    let pair = KeyPair::generate(KeySize::Rsa2048)
        .map_err(|e| Error::Internal(format!("RSA key generation: {e}")))?;
    let pkcs8: Pkcs8V1Der<'static> = pair
        .as_der()
        .map_err(|e| Error::Internal(format!("PKCS#8: {e}")))?;
    let spki: PublicKeyX509Der<'static> = pair
        .public_key()
        .as_der()
        .map_err(|e| Error::Internal(format!("public key: {e}")))?;
    let pkcs8_pem =
        der::pem::encode_string("PRIVATE KEY", der::pem::LineEnding::LF, pkcs8.as_ref())
            .map_err(|e| Error::Internal(format!("PEM: {e}")))?;
    Ok(ClientKey {
        spki: spki.as_ref().to_vec(),
        pkcs8_der: pkcs8.as_ref().to_vec(),
        pkcs8_pem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::sync::Arc;

    fn authority(dir: &std::path::Path) -> Authority {
        Authority::init(
            &dir.join("data"),
            policies::policy::DEFAULT_POLICY,
            b"test passphrase",
            Arc::new(ca::clock::SystemClock),
        )
        .unwrap()
    }

    fn openssl(args: &[&str]) -> String {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Issues a root, client and server certificates and checks them with `openssl verify`
    /// and `openssl x509 -text`. With `PLATFORM_KEEP_CERTS=DIR` the files are copied there
    /// (for the external judges).
    #[test]
    fn certificates_verify_with_openssl() {
        let tmp = tempfile::tempdir().unwrap();
        let a = authority(tmp.path());
        // Lazily created, then stable.
        let root_der = ensure(&a).unwrap();
        assert_eq!(root(&a).unwrap(), root_der);
        assert!(create(&a).is_err());
        let ca = OperatorCa::load(&a).unwrap();
        let now = a.clock().now();
        let key = generate_client_key().unwrap();
        let client = ca
            .issue_client(&a, "Example PF K.K.", &key.spki, now)
            .unwrap();
        let server = ca
            .issue_server(
                &a,
                &["127.0.0.1".into(), "pf.example".into()],
                &key.spki,
                now,
            )
            .unwrap();
        let d = tmp.path();
        let write = |name: &str, der: &[u8]| {
            let p = d.join(name);
            std::fs::write(&p, ca::records::pem(der)).unwrap();
            p.to_str().unwrap().to_owned()
        };
        let r = write("operator-root.pem", &root_der);
        let c = write("pf-client.pem", &client);
        let s = write("pf-server.pem", &server);
        assert!(openssl(&[
            "verify",
            "-x509_strict",
            "-purpose",
            "sslclient",
            "-CAfile",
            &r,
            &c
        ])
        .contains("OK"));
        assert!(openssl(&[
            "verify",
            "-x509_strict",
            "-purpose",
            "sslserver",
            "-CAfile",
            &r,
            &s
        ])
        .contains("OK"));
        let text = openssl(&["x509", "-noout", "-text", "-in", &c]);
        assert!(
            text.contains("Subject: C = JP, O = Example PF K.K., CN = Example PF K.K."),
            "{text}"
        );
        assert!(text.contains("TLS Web Client Authentication"), "{text}");
        assert!(text.contains("14:59:59 20"), "{text}");
        let text = openssl(&["x509", "-noout", "-text", "-in", &r]);
        assert!(
            text.contains("OU = JPKI Platform Operators, CN = JPKI-TEST Operator CA"),
            "{text}"
        );
        assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
        let text = openssl(&["x509", "-noout", "-text", "-in", &s]);
        assert!(
            text.contains("IP Address:127.0.0.1, DNS:pf.example"),
            "{text}"
        );
        // The client certificate is not accepted as a server certificate.
        let out = Command::new("openssl")
            .args(["verify", "-purpose", "sslserver", "-CAfile", &r, &c])
            .output()
            .unwrap();
        assert!(!out.status.success());
        if let Ok(keep) = std::env::var("PLATFORM_KEEP_CERTS") {
            for f in ["operator-root.pem", "pf-client.pem", "pf-server.pem"] {
                std::fs::copy(d.join(f), std::path::Path::new(&keep).join(f)).unwrap();
            }
        }
    }

    #[test]
    fn a_missing_certificate_is_remade_from_the_existing_key() {
        let tmp = tempfile::tempdir().unwrap();
        let a = authority(tmp.path());
        let first = ensure(&a).unwrap();
        fs::remove_file(path(&a)).unwrap();
        let second = ensure(&a).unwrap();
        assert_ne!(first, second);
        assert_eq!(
            ca::authority::spki_of(&first).unwrap(),
            ca::authority::spki_of(&second).unwrap()
        );
        OperatorCa::load(&a).unwrap();
    }
}
