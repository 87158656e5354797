//! Administrative requests for the PF registry, in the shape of `ca::api::Request`: the CLI
//! builds a [`Request`], and runs [`handle`] in-process or sends it over the admin socket of
//! a running `jpki serve`, which tries `ca::api::Request` first and then this type. Every
//! `op` starts with `pf-` so the two never collide.

use base64::Engine;
use ca::Authority;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::operator_ca::{self, OperatorCa};
use crate::registry::{self, PfState, Scope, SpState};

fn default_scopes() -> Vec<Scope> {
    vec![Scope::Validity]
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op")]
pub enum Request {
    /// Registers a PF and issues its TLS client certificate, for the key of `csr_base64`
    /// (PKCS#10, DER or PEM, base64) or for a fresh key returned as `key_pem`.
    /// Answer: `{id, name, serial, not_after, cert_pem, key_pem?, root_pem}`.
    #[serde(rename = "pf-operator-add")]
    OperatorAdd {
        name: String,
        #[serde(default = "default_scopes")]
        scopes: Vec<Scope>,
        #[serde(default)]
        csr_base64: Option<String>,
    },
    /// Registers a certificate the PF brings, by its key (SHA-256 of the SPKI): adds the key
    /// to the PF `name`, or creates that PF with `scopes`.
    #[serde(rename = "pf-operator-register-cert")]
    OperatorRegisterCert {
        name: String,
        cert_pem: String,
        #[serde(default = "default_scopes")]
        scopes: Vec<Scope>,
    },
    #[serde(rename = "pf-operator-list")]
    OperatorList,
    #[serde(rename = "pf-operator-suspend")]
    OperatorSuspend { name: String },
    #[serde(rename = "pf-operator-reactivate")]
    OperatorReactivate { name: String },
    #[serde(rename = "pf-operator-revoke")]
    OperatorRevoke { name: String },
    /// Registers an SP under the PF `pf` (by name). Answer: `{id, ...}`.
    #[serde(rename = "pf-sp-add")]
    SpAdd {
        pf: String,
        name: String,
        scopes: Vec<Scope>,
    },
    #[serde(rename = "pf-sp-list")]
    SpList,
    /// Suspends an SP (by id): its API calls are refused with `sp_suspended` until resumed.
    /// `actor` is who asks (named in the audit record). Answer: the SP.
    #[serde(rename = "pf-sp-suspend")]
    SpSuspend { sp: String, actor: String },
    /// Resumes a suspended SP. Answer: the SP.
    #[serde(rename = "pf-sp-resume")]
    SpResume { sp: String, actor: String },
    /// Removes an SP for good: its calls are refused with `sp_removed`; its consents and
    /// access log are kept. Answer: the SP.
    #[serde(rename = "pf-sp-remove")]
    SpRemove { sp: String, actor: String },
    /// Replaces an SP's scopes (each must be among its PF's). Answer: the SP.
    #[serde(rename = "pf-sp-rescope")]
    SpRescope {
        sp: String,
        scopes: Vec<Scope>,
        actor: String,
    },
    /// The usage counters of a month (`YYYY-MM`, UTC). Answer: `{month, usage: [...]}`.
    #[serde(rename = "pf-usage")]
    Usage { month: String },
    /// Who read a holder's data. Answer: `{resident, accesses: [...]}`.
    #[serde(rename = "pf-access-log")]
    AccessLog { resident: String },
    /// The operator CA certificate. Answer: `{pem}`.
    #[serde(rename = "pf-operator-root")]
    OperatorRoot,
    /// Issues an existing PF a new TLS client certificate (one year), for the key of
    /// `csr_base64` or a fresh key returned as `key_pem`; earlier certificates keep working
    /// until their own notAfter. Answer: as for `pf-operator-add`.
    #[serde(rename = "pf-operator-renew")]
    OperatorRenew {
        name: String,
        #[serde(default)]
        csr_base64: Option<String>,
    },
    /// Signs a checkpoint of the audit chain's head now (`ca::checkpoint`).
    /// Answer: `{checkpoint: Checkpoint | null}` (null: nothing new since the last).
    #[serde(rename = "audit-checkpoint")]
    AuditCheckpoint,
    /// Every signed checkpoint, and the operator CA root that vouches for their certificate.
    /// Answer: `{checkpoints: [Checkpoint], operator_root_pem}`.
    #[serde(rename = "audit-checkpoints")]
    AuditCheckpoints,
    /// Verifies the chain and every checkpoint. Answer: `ca::checkpoint::Verified` with
    /// `intact: true`, or the `audit_broken` error naming the record.
    #[serde(rename = "audit-verify-checkpoints")]
    AuditVerifyCheckpoints,
    /// Registers a CA officer (`ca::officers`) and issues its TLS client certificate from the
    /// operator CA, for the key of `csr_base64` or a fresh key returned as `key_pem`.
    /// Answer: `{id, name, role, municipality, serial, not_after, cert_pem, key_pem?, root_pem}`.
    #[serde(rename = "officer-add")]
    OfficerAdd {
        name: String,
        role: ca::officers::Role,
        #[serde(default)]
        municipality: Option<String>,
        #[serde(default)]
        csr_base64: Option<String>,
    },
    /// Issues an officer a new TLS client certificate from the operator CA, for the key of
    /// `csr_base64` or a fresh key returned as `key_pem`; the officer's previous key is
    /// refused from then on. Answer: as for `officer-add`.
    /// Revokes an officer (or a verifier) for good, as `officer-revoke` does, and re-publishes
    /// the operator CA's CRL with its certificate (`operator_crl`). Answer: the officer.
    #[serde(rename = "pf-officer-revoke")]
    OfficerRevoke { name: String },
    #[serde(rename = "officer-renew")]
    OfficerRenew {
        name: String,
        #[serde(default)]
        csr_base64: Option<String>,
    },
}

impl Request {
    /// The request's `op` (what audit records of a refusal name).
    pub fn op(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("op").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| "unknown".into())
    }

    /// What the request does, for `ca::officers::authorize` (the remote admin API checks
    /// every platform request with it): officers are the ca-officer's; the usage report is
    /// the auditor's too; a holder's access log is its municipality's register; the rest
    /// manages platform operators and service providers.
    pub fn action(&self, authority: &Authority) -> ca::Result<ca::officers::Action> {
        use ca::officers::Action;
        Ok(match self {
            Request::OfficerAdd { .. }
            | Request::OfficerRenew { .. }
            | Request::OfficerRevoke { .. } => Action::ManageOfficers,
            Request::AuditCheckpoint => Action::Maintain,
            Request::AuditCheckpoints | Request::AuditVerifyCheckpoints => Action::ReadAudit,
            Request::Usage { .. } => Action::ReadAudit,
            Request::AccessLog { resident } => Action::ReadRegister {
                municipality: Some(authority.resident(resident)?.municipality),
            },
            Request::OperatorRoot => Action::ReadCertificates,
            Request::OperatorAdd { .. }
            | Request::OperatorRegisterCert { .. }
            | Request::OperatorList
            | Request::OperatorSuspend { .. }
            | Request::OperatorReactivate { .. }
            | Request::OperatorRevoke { .. }
            | Request::OperatorRenew { .. }
            | Request::SpAdd { .. }
            | Request::SpList
            | Request::SpSuspend { .. }
            | Request::SpResume { .. }
            | Request::SpRemove { .. }
            | Request::SpRescope { .. } => Action::ManagePlatform,
        })
    }
}

/// Registers a CA officer with a client certificate from the operator CA (see
/// [`Request::OfficerAdd`]). Checks the officer's fields before anything is issued.
pub fn officer_add(
    authority: &Authority,
    name: &str,
    role: ca::officers::Role,
    municipality: Option<String>,
    csr_base64: Option<String>,
) -> Result<Value> {
    use ca::officers::{self, NewOfficer};
    let mut new = NewOfficer {
        name: name.to_owned(),
        role,
        municipality,
        spki: Vec::new(),
        certificate: None,
        not_before: None,
        not_after: None,
    };
    officers::check(&new)?;
    if authority
        .storage()
        .officers()?
        .iter()
        .any(|o| o.name == name)
    {
        return Err(ca::Error::OfficerExists(name.to_owned()).into());
    }
    let (spki, key_pem) = client_key(csr_base64)?;
    let ca = OperatorCa::load(authority)?;
    let der = ca.issue_client(authority, name, &spki, authority.clock().now())?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| Error::Internal(format!("issued certificate: {e}")))?;
    let time = |t: x509_parser::time::ASN1Time| {
        time::OffsetDateTime::from_unix_timestamp(t.timestamp())
            .map_err(|e| Error::Internal(format!("certificate time: {e}")))
    };
    new.spki = spki;
    new.certificate = Some(ca::authority::serial_hex(cert.raw_serial()));
    new.not_before = Some(time(cert.validity().not_before)?);
    new.not_after = Some(time(cert.validity().not_after)?);
    let o = officers::add(authority, &new)?;
    Ok(json!({
        "id": o.id,
        "name": o.name,
        "role": o.role,
        "municipality": o.municipality,
        "serial": o.certificate,
        "not_after": rfc3339(cert.validity().not_after),
        "key_fingerprint": o.key,
        "cert_pem": ca::records::pem(&der),
        "key_pem": key_pem,
        "root_pem": ca::records::pem(ca.der()),
    }))
}

/// A certificate time as RFC 3339 UTC, as every jpki JSON time.
fn rfc3339(t: x509_parser::time::ASN1Time) -> String {
    time::OffsetDateTime::from_unix_timestamp(t.timestamp())
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

/// Issues an officer a new client certificate (see [`Request::OfficerRenew`]).
pub fn officer_renew(
    authority: &Authority,
    name: &str,
    csr_base64: Option<String>,
) -> Result<Value> {
    use ca::officers::{self, OfficerState};
    let current = authority
        .storage()
        .officers()?
        .into_iter()
        .find(|o| o.name == name)
        .ok_or_else(|| ca::Error::UnknownOfficer(name.to_owned()))?;
    if current.state == OfficerState::Revoked {
        return Err(ca::Error::OfficerNotActive {
            name: current.name,
            state: current.state.as_str(),
        }
        .into());
    }
    let (spki, key_pem) = client_key(csr_base64)?;
    let ca = OperatorCa::load(authority)?;
    let der = ca.issue_client(authority, name, &spki, authority.clock().now())?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| Error::Internal(format!("issued certificate: {e}")))?;
    let time = |t: x509_parser::time::ASN1Time| {
        time::OffsetDateTime::from_unix_timestamp(t.timestamp())
            .map_err(|e| Error::Internal(format!("certificate time: {e}")))
    };
    let o = officers::renew(
        authority,
        name,
        &spki,
        &ca::authority::serial_hex(cert.raw_serial()),
        time(cert.validity().not_before)?,
        time(cert.validity().not_after)?,
    )?;
    Ok(json!({
        "id": o.id,
        "name": o.name,
        "role": o.role,
        "municipality": o.municipality,
        "serial": o.certificate,
        "not_after": cert.validity().not_after.to_string(),
        "key_fingerprint": o.key,
        "cert_pem": ca::records::pem(&der),
        "key_pem": key_pem,
        "root_pem": ca::records::pem(ca.der()),
    }))
}

fn to_value<T: Serialize>(v: T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::Internal(format!("encode result: {e}")))
}

/// Whether `cert` names the operator root as issuer and carries its signature.
fn chains_to(root_der: &[u8], cert_der: &[u8]) -> bool {
    let (Ok((_, root)), Ok((_, cert))) = (
        x509_parser::parse_x509_certificate(root_der),
        x509_parser::parse_x509_certificate(cert_der),
    ) else {
        return false;
    };
    cert.issuer().as_raw() == root.subject().as_raw()
        && cert.verify_signature(Some(root.public_key())).is_ok()
}

/// Carries out one request.
pub fn handle(authority: &Authority, req: Request) -> Result<Value> {
    let now = authority.clock().now();
    match req {
        Request::OfficerAdd {
            name,
            role,
            municipality,
            csr_base64,
        } => officer_add(authority, &name, role, municipality, csr_base64),
        Request::OfficerRenew { name, csr_base64 } => officer_renew(authority, &name, csr_base64),
        Request::OfficerRevoke { name } => {
            let o = ca::officers::set_state(authority, &name, ca::officers::OfficerState::Revoked)?;
            crate::operator_crl::publish(authority)?;
            to_value(o)
        }
        Request::OperatorAdd {
            name,
            scopes,
            csr_base64,
        } => {
            registry::check_name("operator name", &name)?;
            match registry::operator_named(authority, &name) {
                Ok(_) => return Err(Error::OperatorExists(name)),
                Err(Error::UnknownOperator(_)) => {}
                Err(e) => return Err(e),
            }
            let (spki, key_pem) = client_key(csr_base64)?;
            let ca = OperatorCa::load(authority)?;
            let der = ca.issue_client(authority, &name, &spki, now)?;
            let (_, cert) = x509_parser::parse_x509_certificate(&der)
                .map_err(|e| Error::Internal(format!("issued certificate: {e}")))?;
            let serial = ca::authority::serial_hex(cert.raw_serial());
            let not_after = rfc3339(cert.validity().not_after);
            let end =
                time::OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp())
                    .map_err(|e| Error::Internal(format!("certificate notAfter: {e}")))?;
            let op = registry::operator_add(
                authority,
                &name,
                scopes,
                &spki,
                Some((serial.clone(), end)),
                now,
            )?;
            Ok(json!({
                "id": op.id,
                "name": op.name,
                "scopes": op.scopes,
                "serial": serial,
                "not_after": not_after,
                "key_fingerprint": registry::fingerprint(&spki),
                "cert_pem": ca::records::pem(&der),
                "key_pem": key_pem,
                "root_pem": ca::records::pem(ca.der()),
            }))
        }
        Request::OperatorRegisterCert {
            name,
            cert_pem,
            scopes,
        } => {
            let der = crate::service::cert_der(&cert_pem)?;
            let spki =
                ca::authority::spki_of(&der).map_err(|e| Error::BadCertificate(e.to_string()))?;
            let op = match registry::operator_named(authority, &name) {
                Ok(_) => registry::operator_add_key(authority, &name, &spki, None, now)?,
                Err(Error::UnknownOperator(_)) => {
                    registry::operator_add(authority, &name, scopes, &spki, None, now)?
                }
                Err(e) => return Err(e),
            };
            let chains = chains_to(&operator_ca::ensure(authority)?, &der);
            Ok(json!({
                "id": op.id,
                "name": op.name,
                "key_fingerprint": registry::fingerprint(&spki),
                "chains_to_operator_ca": chains,
                "note": if chains { Value::Null } else { json!(
                    "the key is registered, but the API's TLS handshake accepts only certificates \
                     issued by the operator CA: use this key with a certificate from `jpki operator add --csr`") },
            }))
        }
        Request::OperatorList => Ok(json!({ "operators": registry::operators(authority)? })),
        Request::OperatorSuspend { name } => to_value(registry::operator_set_state(
            authority,
            &name,
            PfState::Suspended,
            now,
        )?),
        Request::OperatorReactivate { name } => to_value(registry::operator_set_state(
            authority,
            &name,
            PfState::Active,
            now,
        )?),
        Request::OperatorRevoke { name } => to_value(registry::operator_set_state(
            authority,
            &name,
            PfState::Revoked,
            now,
        )?),
        Request::SpAdd { pf, name, scopes } => {
            to_value(registry::sp_add(authority, &pf, &name, scopes, now)?)
        }
        Request::SpList => Ok(json!({
            "service_providers": registry::service_providers(authority)?
        })),
        Request::SpSuspend { sp, actor } => to_value(registry::sp_set_state(
            authority,
            &sp,
            SpState::Suspended,
            &actor,
            now,
        )?),
        Request::SpResume { sp, actor } => to_value(registry::sp_set_state(
            authority,
            &sp,
            SpState::Active,
            &actor,
            now,
        )?),
        Request::SpRemove { sp, actor } => to_value(registry::sp_set_state(
            authority,
            &sp,
            SpState::Removed,
            &actor,
            now,
        )?),
        Request::SpRescope { sp, scopes, actor } => {
            to_value(registry::sp_rescope(authority, &sp, scopes, &actor, now)?)
        }
        Request::Usage { month } => {
            check_month(&month)?;
            Ok(json!({
                "month": month,
                "usage": authority.storage().usage(&month)?,
            }))
        }
        Request::AccessLog { resident } => Ok(json!({
            "resident": resident,
            "accesses": registry::access_log(authority, &resident)?,
        })),
        Request::AuditCheckpoint => Ok(json!({
            "checkpoint": crate::audit_checkpoint::checkpoint(authority)?
        })),
        Request::AuditCheckpoints => Ok(json!({
            "checkpoints": authority.storage().checkpoints()?,
            "operator_root_pem": ca::records::pem(&operator_ca::ensure(authority)?),
        })),
        Request::AuditVerifyCheckpoints => {
            let v = crate::audit_checkpoint::verify(authority)?;
            let mut out = to_value(v)?;
            out["intact"] = json!(true);
            Ok(out)
        }
        Request::OperatorRoot => Ok(json!({
            "pem": ca::records::pem(&operator_ca::ensure(authority)?)
        })),
        Request::OperatorRenew { name, csr_base64 } => {
            let op = registry::operator_named(authority, &name)?;
            if op.state == PfState::Revoked {
                return Err(Error::OperatorNotActive {
                    name: op.name,
                    state: op.state.as_str(),
                });
            }
            // Checked before anything is signed (and again in the unit of work).
            registry::check_renewal_window(&op, now)?;
            let (spki, key_pem) = client_key(csr_base64)?;
            if let Some(other) = registry::operator_by_key(authority, &spki)? {
                if other.id != op.id {
                    return Err(Error::KeyTaken(other.id));
                }
            }
            let ca = OperatorCa::load(authority)?;
            let der = ca.issue_client(authority, &op.name, &spki, now)?;
            let (_, cert) = x509_parser::parse_x509_certificate(&der)
                .map_err(|e| Error::Internal(format!("issued certificate: {e}")))?;
            let serial = ca::authority::serial_hex(cert.raw_serial());
            let not_after = rfc3339(cert.validity().not_after);
            let end =
                time::OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp())
                    .map_err(|e| Error::Internal(format!("certificate notAfter: {e}")))?;
            let op =
                registry::operator_renew(authority, &op.name, &spki, (serial.clone(), end), now)?;
            Ok(json!({
                "id": op.id,
                "name": op.name,
                "scopes": op.scopes,
                "serial": serial,
                "not_after": not_after,
                "key_fingerprint": registry::fingerprint(&spki),
                "cert_pem": ca::records::pem(&der),
                "key_pem": key_pem,
                "root_pem": ca::records::pem(ca.der()),
            }))
        }
    }
}

/// Checks a month as `YYYY-MM` (a real month, year 2000 to 9999).
pub fn check_month(month: &str) -> Result<()> {
    let ok = month.len() == 7
        && month.as_bytes()[4] == b'-'
        && month[..4]
            .parse::<u16>()
            .is_ok_and(|y| (2000..=9999).contains(&y))
        && month[..4].bytes().all(|b| b.is_ascii_digit())
        && month[5..].bytes().all(|b| b.is_ascii_digit())
        && month[5..]
            .parse::<u8>()
            .is_ok_and(|m| (1..=12).contains(&m));
    if ok {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "month `{month}`: expected YYYY-MM, e.g. 2026-11"
        )))
    }
}

/// The key of a new client certificate: the CSR's (signature checked, RSA ≥ 2048), or a fresh
/// one whose PKCS#8 PEM is returned to the caller.
fn client_key(csr_base64: Option<String>) -> Result<(Vec<u8>, Option<String>)> {
    Ok(match csr_base64 {
        Some(b) => {
            let csr = base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .map_err(|_| Error::BadRequest("csr_base64: not base64".into()))?;
            (ca::csr::verify(&csr, 2048)?.spki, None)
        }
        None => {
            let k = operator_ca::generate_client_key()?;
            (k.spki, Some(k.pkcs8_pem))
        }
    })
}

/// Server side of the admin socket: if `line` is a platform [`Request`], carries it out and
/// returns the reply line (`{"ok": …}` or `{"error": "…"}`, newline-terminated, the
/// protocol of `ca::api`); `None` if the line is not a platform request (then it is the CA's).
pub fn handle_line(authority: &Authority, line: &str) -> Option<String> {
    let req: Request = serde_json::from_str(line.trim()).ok()?;
    Some(ca::api::reply_line(handle(authority, req)))
}

/// Client side: sends a platform request to a running `jpki serve` over its admin socket
/// (`ca::api::socket_path(data)`) and returns the result.
pub fn call_remote(data: &std::path::Path, req: &Request) -> Result<Value> {
    Ok(ca::api::call_json(data, req)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_socket_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let a = Authority::init(
            &data,
            policies::policy::DEFAULT_POLICY,
            b"test passphrase",
            std::sync::Arc::new(ca::clock::SystemClock),
        )
        .unwrap();
        // A CA request is not ours.
        assert!(handle_line(&a, r#"{"op":"audit-verify"}"#).is_none());
        let listener = std::os::unix::net::UnixListener::bind(ca::api::socket_path(&data)).unwrap();
        let server = std::thread::spawn(move || {
            use std::io::{BufRead, BufReader, Write};
            for _ in 0..2 {
                let (mut s, _) = listener.accept().unwrap();
                let mut line = String::new();
                BufReader::new(&s).read_line(&mut line).unwrap();
                let reply = handle_line(&a, &line).unwrap();
                s.write_all(reply.as_bytes()).unwrap();
            }
        });
        let v = call_remote(&data, &Request::OperatorRoot).unwrap();
        assert!(v["pem"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----"));
        let e = call_remote(
            &data,
            &Request::OperatorSuspend {
                name: "nobody".into(),
            },
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "unknown platform operator `nobody`");
        server.join().unwrap();
    }

    #[test]
    fn ops_do_not_collide_with_the_ca_requests() {
        let ca_ops = [
            "root",
            "resident-add",
            "resident-show",
            "event",
            "issue",
            "revoke",
            "cert-show",
            "cert-list",
            "audit-verify",
            "audit-log",
        ];
        for r in [
            Request::OperatorList,
            Request::SpList,
            Request::OperatorRoot,
            Request::AccessLog {
                resident: "R1".into(),
            },
        ] {
            let v = serde_json::to_value(&r).unwrap();
            let op = v["op"].as_str().unwrap();
            assert!(op.starts_with("pf-") && !ca_ops.contains(&op), "{op}");
            // A platform request is not a CA request.
            assert!(serde_json::from_value::<ca::api::Request>(v).is_err());
        }
        let back: Request = serde_json::from_str(
            r#"{"op":"pf-sp-add","pf":"P","name":"Bank","scopes":["validity","four-attributes"]}"#,
        )
        .unwrap();
        assert!(matches!(back, Request::SpAdd { scopes, .. } if scopes.len() == 2));
    }
}
