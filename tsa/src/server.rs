//! The time-stamping authority (RFC 3161): its own two-certificate hierarchy in the data
//! directory, and the answer to one request.
//!
//! ## The hierarchy
//! A dedicated TSA root (`certs/tsa-root.pem`, key `keys/tsa-root.key`) certifies one TSA
//! unit (`certs/tsa.pem`, key `keys/tsa.key`). Both keys are encrypted under the authority's
//! passphrase like every other key (`ca::signers::Signers::create`). Not the operator CA:
//! that root is what the platform-operator API trusts for TLS client certificates, and a
//! relying party that trusts timestamps must not thereby trust operator credentials (or the
//! other way round); nor a JPKI root, whose profile and policies are for holders. The TSA
//! root is the one anchor a relying party configures for timestamps (`jpki verify
//! --tsa-root`).
//!
//! TSA unit certificate (RFC 3161 §2.3): keyUsage digitalSignature (critical), extKeyUsage
//! id-kp-timeStamping only and **critical**, AKI, SKI; the policy's `tsa.unit_validity_years`
//! (five by default).
//!
//! ## Unit generations and renewal
//! The first unit is `tsa` (`keys/tsa.key`, `certs/tsa.pem`, CN "… TSA 1"); each renewal makes
//! generation N+1 (`keys/tsa-N.key`, `certs/tsa-N.pem`, CN "… TSA N"): a **new key** and a
//! certificate from the TSA root, written key first, certificate last — the certificate's
//! atomic write is the commit point, so an interrupted renewal leaves the old unit in use and
//! the next attempt reuses the key. The unit in use is always the newest generation whose
//! certificate exists. Then the retired unit's **private key file is deleted**: tokens it
//! made stay verifiable (they carry or name its certificate, kept in `certs/`), but nobody can
//! make new tokens with an old genTime from it. `jpki serve` renews within the policy's
//! `tsa.renew_days_before` of the certificate's end and swaps the new unit in without a
//! restart ([`Tsa::renew_if_due`]); `jpki tsa renew [--if-due]` does it by hand. Audited
//! `tsa-renew`. The TSA root (twenty years) is not renewed here.
//!
//! ## A token
//! TSTInfo with the policy's `tsa.policy_oid` (default [`POLICY`]), the request's messageImprint, a random 128-bit serial, genTime
//! from the authority's injectable clock (whole seconds), accuracy ±1 s, the request's
//! nonce echoed, ordering false. It is signed as CMS SignedData (eContentType
//! id-ct-TSTInfo) with signed attributes contentType, messageDigest and
//! signingCertificateV2 (RFC 5816) naming the TSA certificate by its SHA-256; the TSA
//! certificate is included when the request sets certReq.
//!
//! ## Serial numbers
//! 128 random bits from the OS generator (never 0, high bit clear): unique without a counter
//! to keep consistent across restarts or replicas. Each token's serial and messageImprint are
//! appended to the audit chain, on disk before the answer leaves: an issued token can always
//! be found again.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use ::time::{Duration, OffsetDateTime};
use ca::keys::CaSigner;
use ca::Authority;
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::ObjectIdentifier as Oid;
use der::asn1::{BitString, GeneralizedTime, Int, OctetString, SetOfVec};
use der::{Any, Decode, Encode};
use policies::oid::{AT_C, AT_CN, AT_O, AT_OU, EXT_BASIC_CONSTRAINTS, EXT_EKU};
use policies::profile::{self, aki, key_identifier, key_usage, ski, Draft};
use policies::Signer;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsages};
use x509_cert::name::Name;
use x509_cert::Certificate;

use crate::asn1::{
    Accuracy, EssCertIdV2, PkiStatusInfo, SigningCertificateV2, TimeStampReq, TimeStampResp,
    TstInfo,
};
use crate::error::{der_err, Error, Result};
use crate::oid;

/// The default TSA policy (`tsa.policy_oid` of the policy file; RFC 3161 §2.4.2 `policy`):
/// id-TEST-certPolicyEight of RFC 7229, an OID registered for test policies. The project
/// has no arc of its own (no enterprise number; a `2.25` UUID arc does not fit `const-oid`'s
/// 32-bit arcs), and J-LIS's arc is not ours to extend; an operator going live replaces it
/// with an OID from its own arc. `docs/tsa.md` states what the policy promises: genTime from
/// the server's clock, accuracy ±1 s, SHA-256 imprints only, RSA-2048 SHA-256 signatures.
pub const POLICY: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.13.8");
/// The accuracy written into every token.
pub const ACCURACY_SECONDS: u32 = 1;

/// TimeStampResp { status { rejection(2), failInfo systemFailure(25) } }, DER: the answer
/// when even a rejection cannot be encoded.
const SYSTEM_FAILURE_RESPONSE: [u8; 14] = [
    0x30, 0x0c, 0x30, 0x0a, 0x02, 0x01, 0x02, 0x03, 0x05, 0x06, 0x00, 0x00, 0x00, 0x40,
];

const ROOT_KEY: &str = "tsa-root";
const UNIT_KEY: &str = "tsa";
const ROOT_YEARS: i64 = 20;

/// The key and certificate name of unit generation `n` (1: `tsa`, then `tsa-2`, `tsa-3`, …).
fn unit_name(n: u32) -> String {
    if n <= 1 {
        UNIT_KEY.to_owned()
    } else {
        format!("{UNIT_KEY}-{n}")
    }
}

/// The newest unit generation whose certificate exists (1 if none beyond the first).
fn current_generation(authority: &Authority) -> Result<u32> {
    let mut n = 1;
    while cert_path(authority, &unit_name(n + 1)).exists() {
        n += 1;
    }
    Ok(n)
}

fn cert_path(authority: &Authority, name: &str) -> PathBuf {
    authority
        .data_dir()
        .dir
        .join("certs")
        .join(format!("{name}.pem"))
}

fn ext<T: Encode>(
    id: Oid,
    critical: bool,
    value: &T,
    what: &'static str,
) -> Result<x509_cert::ext::Extension> {
    Ok(profile::ext(id, critical, value, what)?)
}

fn sign_cert(draft: Draft<'_>, signer: &dyn Signer) -> Result<Vec<u8>> {
    let tbs = draft.tbs()?;
    let sig = signer
        .sign(&tbs)
        .map_err(|e| Error::Internal(format!("signing: {e}")))?;
    Ok(profile::assemble(&tbs, &sig)?)
}

fn write_cert(authority: &Authority, name: &str, der: &[u8]) -> Result<()> {
    let p = cert_path(authority, name);
    let tmp = p.with_extension("pem.tmp");
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(ca::records::pem(der).as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, &p)
    };
    write().map_err(|e| Error::Internal(format!("write {}: {e}", p.display())))
}

fn read_cert(authority: &Authority, name: &str) -> Result<Option<Vec<u8>>> {
    let p = cert_path(authority, name);
    match fs::read(&p) {
        Ok(pem) => {
            let (label, der) = der::pem::decode_vec(&pem)
                .map_err(|e| Error::Internal(format!("{}: not PEM: {e}", p.display())))?;
            if label != "CERTIFICATE" {
                return Err(Error::Internal(format!(
                    "{}: not a CERTIFICATE",
                    p.display()
                )));
            }
            Ok(Some(der))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Internal(format!("read {}: {e}", p.display()))),
    }
}

fn names(authority: &Authority, generation: u32) -> Result<(Name, Name)> {
    let org = &authority.policy().ca.organization;
    let root = profile::name(&[
        (AT_C, "JP"),
        (AT_O, org),
        (AT_OU, "JPKI Time-Stamping"),
        (AT_CN, &format!("{org} TSA Root")),
    ])?;
    let unit = profile::name(&[
        (AT_C, "JP"),
        (AT_O, org),
        (AT_OU, "JPKI Time-Stamping"),
        (AT_CN, &format!("{org} TSA {generation}")),
    ])?;
    Ok((root, unit))
}

/// The TSA root certificate (DER), making the hierarchy if it is missing.
pub fn root(authority: &Authority) -> Result<Vec<u8>> {
    Ok(ensure(authority)?.0)
}

/// `(root, unit)` certificates (DER), made on first use: the keys first (reused if an
/// interrupted attempt left them), then the certificates, each written atomically.
pub fn ensure(authority: &Authority) -> Result<(Vec<u8>, Vec<u8>)> {
    if let (Some(r), Some(u)) = (
        read_cert(authority, ROOT_KEY)?,
        read_cert(authority, UNIT_KEY)?,
    ) {
        return Ok((r, u));
    }
    for k in [ROOT_KEY, UNIT_KEY] {
        if !authority.signers().has(k)? {
            authority.signers().create(k)?;
        }
    }
    let now = authority.clock().now();
    let (root_name, _) = names(authority, 1)?;
    let root_signer = authority.signers().named(ROOT_KEY, Vec::new())?;
    let root_spki = root_signer.spki()?;
    let root_der = match read_cert(authority, ROOT_KEY)? {
        Some(d) => d,
        None => {
            let serial = authority.random_serial()?;
            let der = sign_cert(
                Draft {
                    serial: &serial,
                    issuer: root_name.clone(),
                    subject: root_name.clone(),
                    spki: &root_spki,
                    not_before: now,
                    not_after: now + Duration::days(365 * ROOT_YEARS),
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
                        ski(&root_spki)?,
                    ],
                },
                &root_signer,
            )?;
            write_cert(authority, ROOT_KEY, &der)?;
            der
        }
    };
    let unit_der = unit_certificate(authority, 1, &root_signer, now)?;
    write_cert(authority, UNIT_KEY, &unit_der)?;
    authority.storage().transact(&|t| {
        ca::storage::audit(
            t,
            now,
            "tsa-create",
            &serial_of(&unit_der)?,
            "TSA root and unit certificates",
        )
    })?;
    tracing::info!("TSA hierarchy created");
    Ok((root_der, unit_der))
}

fn serial_of(der: &[u8]) -> ca::Result<String> {
    let c = Certificate::from_der(der)
        .map_err(|e| ca::Error::Store(format!("TSA certificate: {e}")))?;
    Ok(ca::authority::serial_hex(
        c.tbs_certificate().serial_number().as_bytes(),
    ))
}

/// The certificate of unit generation `generation` (its key must exist), signed by the root.
fn unit_certificate(
    authority: &Authority,
    generation: u32,
    root_signer: &CaSigner,
    now: OffsetDateTime,
) -> Result<Vec<u8>> {
    let (root_name, unit_name_dn) = names(authority, generation)?;
    let root_spki = root_signer.spki()?;
    let unit_spki = authority
        .signers()
        .named(&unit_name(generation), Vec::new())?
        .spki()?;
    let serial = authority.random_serial()?;
    let years = i64::from(authority.policy().tsa.unit_validity_years);
    sign_cert(
        Draft {
            serial: &serial,
            issuer: root_name,
            subject: unit_name_dn,
            spki: &unit_spki,
            not_before: now,
            not_after: now + Duration::days(365 * years),
            extensions: vec![
                key_usage(KeyUsages::DigitalSignature)?,
                ext(
                    EXT_EKU,
                    true,
                    &ExtendedKeyUsage(vec![oid::KP_TIME_STAMPING]),
                    "extKeyUsage",
                )?,
                aki(&key_identifier(&root_spki)?)?,
                ski(&unit_spki)?,
            ],
        },
        root_signer,
    )
}

/// A renewal of the TSA unit: the certificates (DER) before and after.
#[derive(Debug, Clone)]
pub struct Renewed {
    pub generation: u32,
    pub old_serial: String,
    pub new_serial: String,
    pub new_cert: Vec<u8>,
}

/// Whether the unit certificate `der` is within the policy's `tsa.renew_days_before` of its
/// end at `now`.
pub fn due(authority: &Authority, der: &[u8], now: OffsetDateTime) -> Result<bool> {
    let c = Certificate::from_der(der).map_err(der_err("TSA certificate"))?;
    let end = c
        .tbs_certificate()
        .validity()
        .not_after
        .to_unix_duration()
        .as_secs();
    let margin = u64::from(authority.policy().tsa.renew_days_before) * 86_400;
    let now = u64::try_from(now.unix_timestamp())
        .map_err(|_| Error::Internal("clock before 1970".into()))?;
    Ok(now.saturating_add(margin) >= end)
}

/// Replaces the TSA unit with a new generation (new key, new certificate from the TSA root)
/// when `force` or when the current certificate is due ([`due`]); `None` when nothing was
/// due. Needs the passphrase (the root signs). See the module docs for the order of writes.
pub fn renew(authority: &Authority, force: bool) -> Result<Option<Renewed>> {
    let (_, old_der) = ensure(authority)?;
    let n = current_generation(authority)?;
    let old_der = match n {
        1 => old_der,
        _ => read_cert(authority, &unit_name(n))?
            .ok_or_else(|| Error::Internal(format!("certs/{}.pem vanished", unit_name(n))))?,
    };
    let now = authority.clock().now();
    if !force && !due(authority, &old_der, now)? {
        return Ok(None);
    }
    let root_signer = authority.signers().named(ROOT_KEY, Vec::new())?;
    let next = n + 1;
    let name = unit_name(next);
    if !authority.signers().has(&name)? {
        authority.signers().create(&name)?;
    }
    let new_der = unit_certificate(authority, next, &root_signer, now)?;
    let (old_serial, new_serial) = (serial_of(&old_der)?, serial_of(&new_der)?);
    // The audit record first: a renewal that is recorded but not written is retried (and
    // recorded again); one written but unrecorded would be a change without an actor.
    authority.storage().transact(&|t| {
        ca::storage::audit(
            t,
            now,
            "tsa-renew",
            &new_serial,
            &format!("TSA unit generation {next} replaces {old_serial}"),
        )
    })?;
    write_cert(authority, &name, &new_der)?;
    // The retired key: its file, or the token's keys so labelled.
    let retired = authority.data_dir().named_key(&unit_name(n));
    match fs::remove_file(&retired) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::error!(key = %retired.display(), error = %e, "could not delete the retired TSA unit key");
        }
    }
    if let Err(e) = authority.signers().destroy_labelled(&unit_name(n)) {
        tracing::error!(label = %unit_name(n), error = %e, "could not destroy the retired TSA unit key in the token");
    }
    tracing::warn!(generation = next, serial = %new_serial, replaced = %old_serial, "renewed the TSA unit");
    Ok(Some(Renewed {
        generation: next,
        old_serial,
        new_serial,
        new_cert: new_der,
    }))
}

/// The unit that signs: its key and certificate, replaced whole on renewal.
struct Unit {
    signer: CaSigner,
    cert: Certificate,
    cert_der: Vec<u8>,
}

impl Unit {
    fn load(authority: &Authority) -> Result<Unit> {
        let n = current_generation(authority)?;
        let name = unit_name(n);
        let cert_der = read_cert(authority, &name)?
            .ok_or_else(|| Error::Internal(format!("certs/{name}.pem is missing")))?;
        let signer = authority.signers().named(&name, cert_der.clone())?;
        if signer.spki()? != ca::authority::spki_of(&cert_der)? {
            return Err(Error::Internal(format!(
                "keys/{name}.key does not match certs/{name}.pem"
            )));
        }
        let cert = Certificate::from_der(&cert_der).map_err(der_err("TSA certificate"))?;
        Ok(Unit {
            signer,
            cert,
            cert_der,
        })
    }
}

/// A loaded TSA, ready to answer requests.
pub struct Tsa {
    authority: std::sync::Arc<Authority>,
    unit: std::sync::RwLock<std::sync::Arc<Unit>>,
    root_der: Vec<u8>,
    policy: Oid,
}

impl Tsa {
    /// Loads (making it if needed) the TSA; needs the passphrase.
    pub fn load(authority: std::sync::Arc<Authority>) -> Result<Tsa> {
        let (root_der, _) = ensure(&authority)?;
        let unit = Unit::load(&authority)?;
        let policy = authority.policy().tsa_policy_oid();
        Ok(Tsa {
            authority,
            unit: std::sync::RwLock::new(std::sync::Arc::new(unit)),
            root_der,
            policy,
        })
    }

    fn unit(&self) -> std::sync::Arc<Unit> {
        std::sync::Arc::clone(&self.unit.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The TSA unit certificate in use (DER).
    pub fn certificate(&self) -> Vec<u8> {
        self.unit().cert_der.clone()
    }

    /// Whether the unit certificate `der` is within the policy's renewal margin now.
    pub fn renewal_due(&self, der: &[u8]) -> Result<bool> {
        due(&self.authority, der, self.authority.clock().now())
    }

    /// The TSA policy of every token.
    pub fn policy(&self) -> Oid {
        self.policy
    }

    /// Renews the unit when its certificate is within the policy's margin ([`renew`]) and
    /// swaps the new one in: requests already signing finish with the old unit, the next
    /// ones get the new. `None` when nothing was due.
    pub fn renew_if_due(&self) -> Result<Option<Renewed>> {
        let done = renew(&self.authority, false)?;
        if done.is_some() {
            let unit = Unit::load(&self.authority)?;
            *self.unit.write().unwrap_or_else(|p| p.into_inner()) = std::sync::Arc::new(unit);
        }
        Ok(done)
    }

    /// The TSA root certificate (DER).
    pub fn root(&self) -> &[u8] {
        &self.root_der
    }

    /// The DER TimeStampResp for a DER TimeStampReq: a token, or a rejection naming the
    /// problem (RFC 3161 §2.4.2). Never fails: a failure of our own becomes systemFailure.
    pub fn respond(&self, request: &[u8]) -> Vec<u8> {
        let answer = match self.token(request) {
            Ok(token) => TimeStampResp {
                status: PkiStatusInfo {
                    status: 0,
                    status_string: None,
                    fail_info: None,
                },
                time_stamp_token: Some(token),
            },
            Err((bit, e)) => {
                tracing::warn!(error = %e, "time-stamp request refused");
                TimeStampResp {
                    status: PkiStatusInfo {
                        status: 2,
                        status_string: Some(vec![e.to_string()]),
                        fail_info: fail_bit(bit),
                    },
                    time_stamp_token: None,
                }
            }
        };
        answer.to_der().unwrap_or_else(|e| {
            tracing::error!(error = %e, "TimeStampResp encoding failed");
            SYSTEM_FAILURE_RESPONSE.to_vec()
        })
    }

    /// A token for `request`; on failure the PKIFailureInfo bit and the reason.
    fn token(&self, request: &[u8]) -> std::result::Result<ContentInfo, (u8, Error)> {
        const BAD_ALG: u8 = 0;
        const BAD_DATA_FORMAT: u8 = 5;
        const TIME_NOT_AVAILABLE: u8 = 14;
        const UNACCEPTED_POLICY: u8 = 15;
        const UNACCEPTED_EXTENSION: u8 = 16;
        const SYSTEM_FAILURE: u8 = 25;
        let req = TimeStampReq::from_der(request).map_err(|e| {
            (
                BAD_DATA_FORMAT,
                Error::BadRequest(format!("not a DER TimeStampReq: {e}")),
            )
        })?;
        if req.version != 1 {
            return Err((
                BAD_DATA_FORMAT,
                Error::BadRequest(format!("version {} (only v1)", req.version)),
            ));
        }
        if req.message_imprint.hash_algorithm.oid != oid::SHA256
            || req.message_imprint.hashed_message.as_bytes().len() != 32
        {
            return Err((
                BAD_ALG,
                Error::BadRequest(format!(
                    "messageImprint with {} of {} bytes; only a SHA-256 hash is accepted",
                    req.message_imprint.hash_algorithm.oid,
                    req.message_imprint.hashed_message.as_bytes().len()
                )),
            ));
        }
        if let Some(p) = req.req_policy {
            if p != self.policy {
                return Err((
                    UNACCEPTED_POLICY,
                    Error::BadRequest(format!(
                        "policy {p} (this TSA issues under {})",
                        self.policy
                    )),
                ));
            }
        }
        if req.extensions.as_ref().is_some_and(|e| !e.is_empty()) {
            return Err((
                UNACCEPTED_EXTENSION,
                Error::BadRequest("request extensions are not supported".into()),
            ));
        }
        let now = self.authority.clock().now();
        let unit = self.unit();
        let validity = unit.cert.tbs_certificate().validity();
        let inside = |t: &x509_cert::time::Time| t.to_unix_duration().as_secs() as i64;
        let unix = now.unix_timestamp();
        if unix < inside(&validity.not_before) || unix > inside(&validity.not_after) {
            return Err((
                TIME_NOT_AVAILABLE,
                Error::Internal("the TSA certificate is not valid now".into()),
            ));
        }
        self.sign(&unit, &req, now).map_err(|e| (SYSTEM_FAILURE, e))
    }

    fn sign(&self, unit: &Unit, req: &TimeStampReq, now: OffsetDateTime) -> Result<ContentInfo> {
        let serial = self.serial()?;
        let gen_time = GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(
            u64::try_from(now.unix_timestamp())
                .map_err(|_| Error::Internal("clock before 1970".into()))?,
        ))
        .map_err(der_err("genTime"))?;
        let info = TstInfo {
            version: 1,
            policy: self.policy,
            message_imprint: req.message_imprint.clone(),
            serial_number: Int::new(&serial).map_err(der_err("serialNumber"))?,
            gen_time,
            accuracy: Some(Accuracy {
                seconds: Some(ACCURACY_SECONDS),
                millis: None,
                micros: None,
            }),
            ordering: false,
            nonce: req.nonce.clone(),
            tsa: None,
            extensions: None,
        };
        let info_der = info.to_der().map_err(der_err("TSTInfo"))?;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &info_der);
        let cert_hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &unit.cert_der);
        let signing_cert = SigningCertificateV2 {
            certs: vec![EssCertIdV2 {
                hash_algorithm: None,
                cert_hash: OctetString::new(cert_hash.as_ref()).map_err(der_err("certHash"))?,
                issuer_serial: None,
            }],
            policies: None,
        };
        let signed_attrs = SetOfVec::try_from(vec![
            attribute(oid::CONTENT_TYPE, Any::encode_from(&oid::CT_TST_INFO))?,
            attribute(
                oid::MESSAGE_DIGEST,
                Any::encode_from(&OctetString::new(digest.as_ref()).map_err(der_err("digest"))?),
            )?,
            attribute(oid::SIGNING_CERTIFICATE_V2, Any::encode_from(&signing_cert))?,
        ])
        .map_err(der_err("signedAttrs"))?;
        let signature = unit
            .signer
            .sign(&signed_attrs.to_der().map_err(der_err("signedAttrs"))?)
            .map_err(|e| Error::Internal(format!("signing: {e}")))?;
        let tbs = unit.cert.tbs_certificate();
        let signer = SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: tbs.issuer().clone(),
                serial_number: tbs.serial_number().clone(),
            }),
            digest_alg: sha256_alg(),
            signed_attrs: Some(signed_attrs),
            signature_algorithm: profile::sha256_with_rsa(),
            signature: OctetString::new(signature).map_err(der_err("signature"))?,
            unsigned_attrs: None,
        };
        let certificates = if req.cert_req {
            Some(CertificateSet(
                SetOfVec::try_from(vec![CertificateChoices::Certificate(unit.cert.clone())])
                    .map_err(der_err("certificates"))?,
            ))
        } else {
            None
        };
        let sd = SignedData {
            // RFC 5652 §5.1: v3 when eContentType is not id-data.
            version: CmsVersion::V3,
            digest_algorithms: SetOfVec::try_from(vec![sha256_alg()])
                .map_err(der_err("digestAlgorithms"))?,
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: oid::CT_TST_INFO,
                econtent: Some(
                    Any::encode_from(&OctetString::new(info_der).map_err(der_err("eContent"))?)
                        .map_err(der_err("eContent"))?,
                ),
            },
            certificates,
            crls: None,
            signer_infos: SignerInfos(
                SetOfVec::try_from(vec![signer]).map_err(der_err("signerInfos"))?,
            ),
        };
        let token = ContentInfo {
            content_type: oid::SIGNED_DATA,
            content: Any::encode_from(&sd).map_err(der_err("SignedData"))?,
        };
        let serial_hex = hex::encode_upper(&serial);
        let imprint = hex::encode(req.message_imprint.hashed_message.as_bytes());
        self.authority.storage().transact(&|t| {
            ca::storage::audit(
                t,
                now,
                "timestamp",
                &serial_hex,
                &format!("sha256:{imprint}"),
            )
        })?;
        tracing::info!(serial = %serial_hex, "time-stamp token issued");
        Ok(token)
    }

    /// 16 random bytes, high bit clear (a positive INTEGER), never zero.
    fn serial(&self) -> Result<Vec<u8>> {
        use aws_lc_rs::rand::SecureRandom;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        loop {
            let mut s = vec![0u8; 16];
            rng.fill(&mut s)
                .map_err(|_| Error::Internal("OS random generator failed".into()))?;
            s[0] &= 0x7f;
            if s[0] != 0 {
                return Ok(s);
            }
        }
    }
}

fn attribute(oid: Oid, value: std::result::Result<Any, der::Error>) -> Result<Attribute> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value.map_err(der_err("attribute"))?])
            .map_err(der_err("attribute"))?,
    })
}

fn sha256_alg() -> x509_cert::spki::AlgorithmIdentifierOwned {
    x509_cert::spki::AlgorithmIdentifierOwned {
        oid: oid::SHA256,
        parameters: None,
    }
}

/// PKIFailureInfo with bit `n` set, DER (no trailing zero bits).
fn fail_bit(n: u8) -> Option<BitString> {
    let mut bytes = vec![0u8; usize::from(n / 8) + 1];
    bytes[usize::from(n / 8)] = 0x80 >> (n % 8);
    BitString::new(7 - n % 8, bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_bits_are_minimal_der() {
        assert_eq!(
            fail_bit(0).unwrap().to_der().unwrap(),
            [0x03, 0x02, 0x07, 0x80]
        );
        assert_eq!(
            fail_bit(5).unwrap().to_der().unwrap(),
            [0x03, 0x02, 0x02, 0x04]
        );
        assert_eq!(
            fail_bit(25).unwrap().to_der().unwrap(),
            [0x03, 0x05, 0x06, 0, 0, 0, 0x40]
        );
        let r = TimeStampResp::from_der(&SYSTEM_FAILURE_RESPONSE).unwrap();
        assert_eq!(r.status.status, 2);
        assert_eq!(r.status.fail_info, fail_bit(25));
    }
}
