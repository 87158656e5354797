//! What each API call does, over the store, without HTTP: the handlers in [`crate::http`]
//! decode the request, run one of these on a blocking thread, and record [`Call::accesses`].

use base64::Engine;
use ca::records::{CertKind, CertRecord, ResidentState, State, StatusRecord};
use ca::Authority;
use policies::{Hierarchy, Reason};
use serde::Deserialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;

use crate::error::{Error, Result};
use crate::registry::{self, Access, Consent, Operator, Scope, ServiceProvider, SpState, Usage};

/// Most certificates in one validity request.
pub const MAX_BATCH: usize = 1000;
/// Longest consent accepted.
pub const MAX_CONSENT: Duration = Duration::days(3653);

/// The two hierarchies' root DNs (every generation of a hierarchy shares its DN: a
/// certificate's hierarchy is known by its issuer name, its issuing generation only by key —
/// [`ca::Authority::issuer_of`]).
pub(crate) struct Anchors {
    subjects: [(Hierarchy, Vec<u8>); 2],
}

impl Anchors {
    pub(crate) fn new(a: &Authority) -> Result<Anchors> {
        let subject = |h: Hierarchy| -> Result<Vec<u8>> {
            let root = a.root(h);
            let (_, c) = x509_parser::parse_x509_certificate(&root.der)
                .map_err(|e| Error::Internal(format!("root does not parse: {e}")))?;
            Ok(c.subject().as_raw().to_vec())
        };
        Ok(Anchors {
            subjects: [
                (Hierarchy::Signing, subject(Hierarchy::Signing)?),
                (Hierarchy::Auth, subject(Hierarchy::Auth)?),
            ],
        })
    }

    fn hierarchy_of(&self, c: &X509Certificate<'_>) -> Option<Hierarchy> {
        let issuer = c.issuer().as_raw();
        self.subjects
            .iter()
            .find(|(_, s)| s.as_slice() == issuer)
            .map(|(h, _)| *h)
    }
}

/// One API call in progress: who calls, for which SP, which holders it touched.
pub(crate) struct Call<'a> {
    pub a: &'a Authority,
    pub anchors: &'a Anchors,
    pub pf: &'a Operator,
    pub now: OffsetDateTime,
    pub operation: &'static str,
    sp: Option<ServiceProvider>,
    /// The SP id the request named, kept even when it was refused (unknown, not delegated),
    /// so that the refusal's audit record names what was asked for.
    requested_sp: Option<String>,
    holders: Vec<String>,
    /// Checks made, by certificate type (`signing`, `auth`, `none`): the usage counters.
    metered: std::collections::BTreeMap<&'static str, u64>,
}

impl<'a> Call<'a> {
    pub(crate) fn new(
        a: &'a Authority,
        anchors: &'a Anchors,
        pf: &'a Operator,
        operation: &'static str,
    ) -> Call<'a> {
        Call {
            a,
            anchors,
            pf,
            now: a.clock().now(),
            operation,
            sp: None,
            requested_sp: None,
            holders: Vec::new(),
            metered: Default::default(),
        }
    }

    /// Counts one check of a certificate of `cert_type` (`signing`, `auth`, or `none`).
    fn meter(&mut self, cert_type: &'static str) {
        *self.metered.entry(cert_type).or_default() += 1;
    }

    /// The usage counters of this call: only for an answered call (`ok`) made for an accepted
    /// SP; a call that checked no certificate counts once as `none`.
    pub(crate) fn usage(&self, outcome: &str) -> Vec<Usage> {
        let Some(sp) = self.sp.as_ref().filter(|_| outcome == "ok") else {
            return Vec::new();
        };
        let month = format!("{:04}-{:02}", self.now.year(), u8::from(self.now.month()));
        let usage = |cert_type: &str, count: u64| Usage {
            month: month.clone(),
            pf: self.pf.id.clone(),
            sp: sp.id.clone(),
            endpoint: self.operation.to_owned(),
            cert_type: cert_type.to_owned(),
            count,
        };
        if self.metered.is_empty() {
            return vec![usage("none", 1)];
        }
        self.metered.iter().map(|(t, n)| usage(t, *n)).collect()
    }

    /// The access-log entries of this call: one per holder touched (or one without a holder,
    /// which goes to the audit chain only).
    pub(crate) fn accesses(&self, outcome: &str) -> Vec<Access> {
        let (sp, sp_name) = match (&self.sp, &self.requested_sp) {
            (Some(s), _) => (s.id.clone(), s.name.clone()),
            // Refused before the SP was accepted: its id as asked, no name.
            (None, Some(id)) => (id.clone(), String::new()),
            (None, None) => Default::default(),
        };
        let entry = |holder: &str| Access {
            at: self.now,
            holder: holder.to_owned(),
            pf: self.pf.id.clone(),
            pf_name: self.pf.name.clone(),
            sp: sp.clone(),
            sp_name: sp_name.clone(),
            operation: self.operation.to_owned(),
            outcome: outcome.to_owned(),
        };
        if self.holders.is_empty() {
            vec![entry("")]
        } else {
            self.holders.iter().map(|h| entry(h)).collect()
        }
    }

    fn touch(&mut self, holder: &Option<String>) {
        if let Some(h) = holder {
            if !self.holders.contains(h) {
                self.holders.push(h.clone());
            }
        }
    }

    /// The SP named in the request: it must exist, be delegated to this PF, and both must
    /// have `scope`.
    fn sp(&mut self, id: &str, scope: Scope) -> Result<ServiceProvider> {
        self.requested_sp = Some(id.to_owned());
        let sp = registry::service_provider(self.a, id)?
            .ok_or_else(|| Error::UnknownSp(id.to_owned()))?;
        if sp.pf != self.pf.id {
            return Err(Error::SpNotDelegated(id.to_owned()));
        }
        if sp.state != SpState::Active {
            return Err(Error::SpNotActive {
                sp: sp.id,
                state: sp.state.as_str(),
            });
        }
        self.sp = Some(sp.clone());
        if !self.pf.scopes.contains(&scope) {
            return Err(Error::OperatorScopeMissing(scope.as_str()));
        }
        if !sp.scopes.contains(&scope) {
            return Err(Error::ScopeMissing {
                sp: sp.id,
                scope: scope.as_str(),
            });
        }
        Ok(sp)
    }

    /// A certificate this authority issued, found from its DER; `None` for the hierarchy
    /// when the issuer is neither root.
    fn our_cert(&self, der: &[u8]) -> Result<CertRecord> {
        let (_, c) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| Error::BadCertificate(format!("not an X.509 certificate: {e}")))?;
        let serial = ca::authority::serial_hex(c.raw_serial());
        let h = self
            .anchors
            .hierarchy_of(&c)
            .ok_or_else(|| Error::UnknownCertificate(serial.clone()))?;
        let rec = self
            .a
            .find(&ca::authority::parse_serial(&serial)?, Some(h))
            .map_err(|_| Error::UnknownCertificate(serial.clone()))?;
        if rec.der != der {
            return Err(Error::UnknownCertificate(serial));
        }
        Ok(rec)
    }

    fn status(&self, c: &CertRecord) -> Result<StatusRecord> {
        self.a
            .storage()
            .status(c.hierarchy, &c.serial)?
            .ok_or_else(|| Error::Internal("certificate without status".into()))
    }
}

/// Decodes a certificate given as PEM or base64 DER.
pub(crate) fn cert_der(text: &str) -> Result<Vec<u8>> {
    let t = text.trim();
    if t.starts_with("-----BEGIN") {
        crate::operator_ca::der_of_pem(t.as_bytes())
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(t)
            .map_err(|_| Error::BadCertificate("neither PEM nor base64 DER".into()))
    }
}

pub(crate) fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| Error::BadRequest(e.to_string()))
}

/// The fuzz targets' entry point (`fuzz/`, and the seed replay in `tests/fuzz_seeds.rs`):
/// decodes `body` as the `/v1` call `route` (0 validity, 1 consent grant and withdrawal,
/// 2 withdrawal by the SP, 3 four attributes, 4 successor; other values: the platform
/// requests of the admin socket) as far as it goes without a store: the JSON, the
/// certificates, serials and CMS it carries, the statement a holder signs. Returns whether
/// the body decoded.
#[doc(hidden)]
pub fn fuzz_decode(route: u8, body: &[u8]) -> bool {
    let cert =
        |text: &str| cert_der(text).map(|der| x509_parser::parse_x509_certificate(&der).is_ok());
    let cms = |b64: &str| {
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
            return;
        };
        if let Ok(env) = signed_data::cms::parse(&bytes) {
            let _ = x509_parser::parse_x509_certificate(&env.signer_der);
            if let Some(content) = env.attached.as_deref() {
                let _ = serde_json::from_slice::<Statement>(content);
                let _ = serde_json::from_slice::<Withdrawal>(content);
            }
        }
    };
    match route {
        0 => parse::<ValidityRequest>(body).is_ok_and(|r| {
            for item in &r.certificates {
                match item {
                    Item::Text(t) => {
                        let _ = cert(t);
                    }
                    Item::Ref { serial, .. } => {
                        let _ = ca::authority::parse_serial(serial);
                    }
                }
            }
            true
        }),
        1 => parse::<ConsentRequest>(body).is_ok_and(|r| {
            cms(&r.cms);
            true
        }),
        2 => sp_of_body(body).is_ok(),
        3 => parse::<FourRequest>(body).is_ok_and(|r| {
            let _ = cert(&r.certificate);
            true
        }),
        4 => parse::<SuccessorRequest>(body)
            .is_ok_and(|r| ca::authority::parse_serial(&r.serial).is_ok()),
        _ => std::str::from_utf8(body)
            .ok()
            .and_then(|l| serde_json::from_str::<crate::Request>(l.trim()).ok())
            .is_some(),
    }
}

fn rfc3339(t: OffsetDateTime) -> Value {
    t.format(&Rfc3339).map(Value::String).unwrap_or(Value::Null)
}

// ----- validity -------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(untagged)]
enum Item {
    Text(String),
    Ref { issuer: Hierarchy, serial: String },
}

#[derive(Deserialize)]
struct ValidityRequest {
    sp: String,
    certificates: Vec<Item>,
    /// Judge as of this past moment (RFC 3339) instead of now (issue #18).
    #[serde(default, with = "time::serde::rfc3339::option")]
    at: Option<OffsetDateTime>,
}

/// `POST /v1/validity`.
pub(crate) fn validity(call: &mut Call<'_>, body: &[u8]) -> Result<Value> {
    let req: ValidityRequest = parse(body)?;
    call.sp(&req.sp, Scope::Validity)?;
    let at = req.at.unwrap_or(call.now);
    if at > call.now {
        return Err(Error::BadRequest(format!(
            "at: {} is in the future (now {})",
            rfc3339(at),
            rfc3339(call.now)
        )));
    }
    if req.certificates.is_empty() || req.certificates.len() > MAX_BATCH {
        return Err(Error::BadRequest(format!(
            "certificates: 1 to {MAX_BATCH} items"
        )));
    }
    let mut results = Vec::with_capacity(req.certificates.len());
    for item in &req.certificates {
        let found = match item {
            Item::Text(t) => cert_der(t).and_then(|der| call.our_cert(&der)),
            Item::Ref { issuer, serial } => {
                let s = ca::authority::parse_serial(serial)?;
                call.a
                    .find(&s, Some(*issuer))
                    .map_err(|_| Error::UnknownCertificate(serial.clone()))
            }
        };
        let rec = match found {
            Ok(r) => r,
            Err(e @ (Error::UnknownCertificate(_) | Error::BadCertificate(_))) => {
                call.meter("none");
                results.push(json!({"status": "unknown", "error": {"code": e.code(), "message": e.to_string()}}));
                continue;
            }
            Err(e) => return Err(e),
        };
        if !matches!(
            rec.kind,
            CertKind::Signing | CertKind::Auth | CertKind::PhoneSigning | CertKind::PhoneAuth
        ) {
            call.meter("none");
            results.push(
                json!({"serial": ca::authority::serial_hex(&rec.serial), "status": "unknown",
                "error": {"code": "not_end_entity", "message": "not a holder certificate"}}),
            );
            continue;
        }
        call.touch(&rec.holder);
        call.meter(rec.hierarchy.as_str());
        let now_st = call.status(&rec)?;
        let st = if at == call.now {
            now_st
        } else {
            call.a.status_at(&rec, at)?
        };
        let expired = rec.not_after < at;
        results.push(json!({
            "serial": ca::authority::serial_hex(&rec.serial),
            "issuer": rec.hierarchy.as_str(),
            // `signing`, `auth`, `phone-signing` or `phone-auth`: a smartphone certificate is
            // told apart here (and by its policy OID, the card's plus `.1`).
            "kind": rec.kind.as_str(),
            "smartphone": matches!(rec.kind, CertKind::PhoneSigning | CertKind::PhoneAuth),
            "status": st.state.as_str(),
            "reason": st.reason.map(Reason::as_str),
            "revoked_at": st.since.map(rfc3339),
            "not_after": rfc3339(rec.not_after),
            "expired": expired,
            "valid": st.state == State::Good && !expired && rec.not_before <= at,
            "attributes_changed": rec.hierarchy == Hierarchy::Signing
                && now_st.state == State::Revoked
                && now_st.reason == Some(Reason::AffiliationChanged),
            "status_now": now_st.state.as_str(),
        }));
    }
    Ok(json!({ "checked_at": rfc3339(at), "results": results }))
}

// ----- consents ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct ConsentRequest {
    sp: String,
    cms: String,
}

/// The statement the holder signs.
#[derive(Deserialize)]
struct Statement {
    sp: String,
    scope: String,
    #[serde(with = "time::serde::rfc3339")]
    expires: OffsetDateTime,
    nonce: String,
}

#[derive(Deserialize)]
struct Withdrawal {
    withdraw: String,
}

/// A verified holder signature: the signed content and the signing certificate's record.
struct Signed {
    content: Vec<u8>,
    cert: CertRecord,
}

/// Verifies CMS SignedData (base64 DER) made with a holder's currently valid signing
/// certificate issued by our signing root.
fn holder_signature(call: &mut Call<'_>, cms_b64: &str) -> Result<Signed> {
    let refused = |m: String| Error::ConsentRefused(m);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(cms_b64.trim())
        .map_err(|_| Error::BadRequest("cms: not base64".into()))?;
    let env = signed_data::cms::parse(&bytes).map_err(|e| refused(e.to_string()))?;
    let (_, leaf) = x509_parser::parse_x509_certificate(&env.signer_der)
        .map_err(|e| refused(format!("signer certificate: {e}")))?;
    // The generation that issued it, by key (AKI key id and issuer serial), never by name.
    let generation = call
        .a
        .issuer_of(Hierarchy::Signing, &env.signer_der)
        .ok_or_else(|| {
            refused("the signing certificate names no generation of the signing root".into())
        })?;
    let (_, root) = x509_parser::parse_x509_certificate(&generation.der)
        .map_err(|e| Error::Internal(format!("signing root: {e}")))?;
    signed_data::path::validate(&leaf, &root, call.now).map_err(|e| {
        refused(format!(
            "the signer is not a valid signing certificate: {e}"
        ))
    })?;
    let rec = call
        .a
        .find(leaf.raw_serial(), Some(Hierarchy::Signing))
        .ok()
        .filter(|r| {
            r.der == env.signer_der && matches!(r.kind, CertKind::Signing | CertKind::PhoneSigning)
        })
        .ok_or_else(|| {
            refused("the signing certificate was not issued by this authority".into())
        })?;
    call.touch(&rec.holder);
    call.meter("signing");
    let st = call.status(&rec)?;
    if st.state != State::Good {
        return Err(refused(format!(
            "the signing certificate is {} ({})",
            st.state.as_str(),
            st.reason.map(Reason::as_str).unwrap_or("unspecified")
        )));
    }
    env.verify(None, &leaf.public_key().subject_public_key.data)
        .map_err(|e| refused(e.to_string()))?;
    let content = env
        .content(None)
        .map_err(|e| refused(e.to_string()))?
        .to_vec();
    Ok(Signed { content, cert: rec })
}

/// `POST /v1/consents`.
pub(crate) fn consent_grant(call: &mut Call<'_>, body: &[u8]) -> Result<Value> {
    let req: ConsentRequest = parse(body)?;
    let sp = call.sp(&req.sp, Scope::FourAttributes)?;
    let signed = holder_signature(call, &req.cms)?;
    let st: Statement = serde_json::from_slice(&signed.content).map_err(|e| {
        Error::ConsentRefused(format!("the signed statement is not valid JSON: {e}"))
    })?;
    if st.sp != sp.id {
        return Err(Error::ConsentRefused(format!(
            "the statement names service provider {}, not {}",
            st.sp, sp.id
        )));
    }
    if st.scope != Scope::FourAttributes.as_str() {
        return Err(Error::ConsentRefused(format!(
            "scope `{}` (only four-attributes is consented to)",
            st.scope
        )));
    }
    if st.expires <= call.now {
        return Err(Error::ConsentRefused(
            "the statement has already expired".into(),
        ));
    }
    if st.expires > call.now + MAX_CONSENT {
        return Err(Error::ConsentRefused(
            "expiry more than 10 years ahead".into(),
        ));
    }
    if st.nonce.is_empty() || st.nonce.len() > 128 || st.nonce.chars().any(char::is_control) {
        return Err(Error::ConsentRefused(
            "nonce: 1 to 128 printable bytes".into(),
        ));
    }
    let holder = signed
        .cert
        .holder
        .clone()
        .ok_or_else(|| Error::Internal("signing certificate without holder".into()))?;
    let c = Consent {
        id: registry::new_consent_id(call.a)?,
        holder,
        sp: sp.id.clone(),
        scope: Scope::FourAttributes,
        expires: st.expires,
        nonce: st.nonce,
        granted_at: call.now,
        withdrawn_at: None,
        withdrawn_by: None,
        signer_serial: ca::authority::serial_hex(&signed.cert.serial),
        statement_sha256: hex::encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            &signed.content,
        )),
    };
    registry::consent_add(call.a, &c)?;
    Ok(json!({
        "id": c.id, "sp": c.sp, "scope": c.scope, "expires": rfc3339(c.expires),
        "granted_at": rfc3339(c.granted_at), "signer_serial": c.signer_serial,
    }))
}

#[derive(Deserialize)]
struct SpOnly {
    sp: String,
}

fn consent_of_sp(call: &mut Call<'_>, id: &str, sp: &str) -> Result<Consent> {
    let sp = call.sp(sp, Scope::FourAttributes)?;
    let c = registry::consent(call.a, id)?;
    if c.sp != sp.id {
        // Do not reveal other SPs' consents.
        return Err(Error::UnknownConsent(id.to_owned()));
    }
    call.touch(&Some(c.holder.clone()));
    Ok(c)
}

/// `DELETE /v1/consents/{id}` by the SP (`sp` in the body or the query).
pub(crate) fn consent_withdraw_by_sp(call: &mut Call<'_>, id: &str, sp: &str) -> Result<Value> {
    consent_of_sp(call, id, sp)?;
    let c = registry::consent_withdraw(call.a, id, "sp", call.now)?;
    Ok(json!({"id": c.id, "withdrawn_at": c.withdrawn_at.map(rfc3339), "withdrawn_by": "sp"}))
}

/// `DELETE /v1/consents/{id}` with the SP from the JSON body.
pub(crate) fn sp_of_body(body: &[u8]) -> Result<String> {
    Ok(parse::<SpOnly>(body)?.sp)
}

/// `POST /v1/consents/{id}/withdraw`: CMS over `{"withdraw": ID}` by the holder.
pub(crate) fn consent_withdraw_by_holder(
    call: &mut Call<'_>,
    id: &str,
    body: &[u8],
) -> Result<Value> {
    let req: ConsentRequest = parse(body)?;
    let c = consent_of_sp(call, id, &req.sp)?;
    let signed = holder_signature(call, &req.cms)?;
    let w: Withdrawal = serde_json::from_slice(&signed.content).map_err(|e| {
        Error::ConsentRefused(format!("the signed withdrawal is not valid JSON: {e}"))
    })?;
    if w.withdraw != id {
        return Err(Error::ConsentRefused(format!(
            "the signed withdrawal names consent {}, not {id}",
            w.withdraw
        )));
    }
    if signed.cert.holder.as_deref() != Some(c.holder.as_str()) {
        return Err(Error::ConsentRefused(
            "signed by someone other than the consenting holder".into(),
        ));
    }
    let c = registry::consent_withdraw(call.a, id, "holder", call.now)?;
    Ok(json!({"id": c.id, "withdrawn_at": c.withdrawn_at.map(rfc3339), "withdrawn_by": "holder"}))
}

// ----- four attributes ----------------------------------------------------------------------

#[derive(Deserialize)]
struct FourRequest {
    sp: String,
    certificate: String,
}

/// `POST /v1/four-attributes`: the holder's latest attributes from the register.
pub(crate) fn four_attributes(call: &mut Call<'_>, body: &[u8]) -> Result<Value> {
    let req: FourRequest = parse(body)?;
    let sp = call.sp(&req.sp, Scope::FourAttributes)?;
    let rec = call.our_cert(&cert_der(&req.certificate)?)?;
    if !matches!(rec.kind, CertKind::Signing | CertKind::PhoneSigning) {
        return Err(Error::BadCertificate(
            "the four attributes are looked up from a signing certificate (card or smartphone)"
                .into(),
        ));
    }
    call.touch(&rec.holder);
    call.meter("signing");
    let holder = rec
        .holder
        .clone()
        .ok_or_else(|| Error::Internal("signing certificate without holder".into()))?;
    let consent = registry::live_consent(call.a, &holder, &sp.id, call.now)?;
    let r = call.a.resident(&holder)?;
    let st = call.status(&rec)?;
    let status = match r.state {
        ResidentState::Active | ResidentState::Emigrating => "active",
        ResidentState::Emigrated => "emigrated",
        ResidentState::Deceased => "deceased",
    };
    Ok(json!({
        "name": r.attributes.name(),
        "birth": r.attributes.birth().to_string(),
        "sex": r.attributes.sex(),
        "address": r.register_address(),
        "status": status,
        "departure": r.departure.map(|d| d.to_string()),
        "certificate": {
            "serial": ca::authority::serial_hex(&rec.serial),
            "status": st.state.as_str(),
            "reason": st.reason.map(Reason::as_str),
            "attributes_changed": st.state == State::Revoked
                && st.reason == Some(Reason::AffiliationChanged),
        },
        "consent": consent.id,
        "as_of": rfc3339(call.now),
    }))
}

// ----- successor ----------------------------------------------------------------------------

#[derive(Deserialize)]
struct SuccessorRequest {
    sp: String,
    serial: String,
}

/// `POST /v1/successor`: for an authentication-certificate serial, the holder's current one
/// (good and within its validity; the newest if several). Our design: the real service's
/// form is unconfirmed.
pub(crate) fn successor(call: &mut Call<'_>, body: &[u8]) -> Result<Value> {
    let req: SuccessorRequest = parse(body)?;
    call.sp(&req.sp, Scope::Successor)?;
    let serial = ca::authority::parse_serial(&req.serial)?;
    let old = call
        .a
        .find(&serial, Some(Hierarchy::Auth))
        .map_err(|_| Error::UnknownCertificate(req.serial.clone()))?;
    call.touch(&old.holder);
    call.meter("auth");
    let holder = old
        .holder
        .clone()
        .ok_or_else(|| Error::UnknownCertificate(req.serial.clone()))?;
    let current = call
        .a
        .holder_certs(&holder)?
        .into_iter()
        .filter(|(c, s)| {
            c.hierarchy == Hierarchy::Auth
                && s.state == State::Good
                && c.not_before <= call.now
                && call.now <= c.not_after
        })
        .max_by_key(|(c, _)| c.not_before);
    let st = call.status(&old)?;
    Ok(json!({
        "serial": ca::authority::serial_hex(&old.serial),
        "status": st.state.as_str(),
        "reason": st.reason.map(Reason::as_str),
        "current": current.map(|(c, _)| json!({
            "serial": ca::authority::serial_hex(&c.serial),
            "not_before": rfc3339(c.not_before),
            "not_after": rfc3339(c.not_after),
            "same": c.serial == old.serial,
        })),
    }))
}

// ----- paging --------------------------------------------------------------------------------

/// Items in a page when the request does not say.
pub const DEFAULT_PAGE: usize = 100;
/// Most items in one page.
pub const MAX_PAGE: usize = 1000;

/// The `limit` query parameter: 1 to [`MAX_PAGE`], [`DEFAULT_PAGE`] when absent.
fn page_limit(limit: Option<&str>) -> Result<usize> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(Error::BadRequest(format!(
                "limit `{l}`: a whole number from 1 to {MAX_PAGE}"
            ))),
        },
    }
}

/// The query parameters of a `GET`: `sp`, and the page's position and size.
pub(crate) struct PageQuery<'q> {
    pub sp: Option<&'q str>,
    pub cursor: Option<&'q str>,
    pub limit: Option<&'q str>,
}

fn required_sp<'q>(q: &PageQuery<'q>) -> Result<&'q str> {
    q.sp.ok_or_else(|| Error::BadRequest("the query needs `sp=SP…`".into()))
}

// ----- consents of an SP ----------------------------------------------------------------------

/// A consent's state now: `live`, `expired` or `withdrawn`.
fn consent_state(c: &Consent, now: OffsetDateTime) -> &'static str {
    if c.withdrawn_at.is_some() {
        "withdrawn"
    } else if c.expires <= now {
        "expired"
    } else {
        "live"
    }
}

/// `GET /v1/consents?sp=SP&cursor=C&limit=N`: the consents given to the calling SP, a page at
/// a time. The cursor is the position after the page's last consent (base64url of its nonce,
/// an order every engine keeps: [`ca::storage::Storage::sp_consents`]). Holders' ids are not
/// shown: the SP knows a consent by its id.
pub(crate) fn consents_list(call: &mut Call<'_>, q: &PageQuery<'_>) -> Result<Value> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let sp = call.sp(required_sp(q)?, Scope::FourAttributes)?;
    let limit = page_limit(q.limit)?;
    let after = match q.cursor {
        None => None,
        Some(c) => Some(
            URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .filter(|n| !n.is_empty())
                .ok_or_else(|| Error::BadCursor(c.to_owned()))?,
        ),
    };
    // One more than asked tells whether a next page exists.
    let mut page = call
        .a
        .storage()
        .sp_consents(&sp.id, after.as_deref(), limit + 1)?;
    let more = page.len() > limit;
    page.truncate(limit);
    let next = match (more, page.last()) {
        (true, Some(last)) => Value::String(URL_SAFE_NO_PAD.encode(last.nonce.as_bytes())),
        _ => Value::Null,
    };
    let consents: Vec<Value> = page
        .iter()
        .map(|c| {
            json!({
                "id": c.id, "scope": c.scope, "state": consent_state(c, call.now),
                "granted_at": rfc3339(c.granted_at), "expires": rfc3339(c.expires),
                "withdrawn_at": c.withdrawn_at.map(rfc3339), "withdrawn_by": c.withdrawn_by,
                "signer_serial": c.signer_serial,
            })
        })
        .collect();
    Ok(json!({ "consents": consents, "next": next }))
}

// ----- the change feed -------------------------------------------------------------------------

/// Audit records read for one page of the change feed at most, whatever their kind: a page
/// ends after this many even if it found fewer changes than asked (its `next` then moves on
/// by that much), so a page's cost is bounded in a chain of mostly other records.
pub const FEED_SCAN: usize = 4096;

/// What an audit record says changed for a holder, if it is a change the feed reports: a
/// certificate revoked or put on hold (`revoke`, `hold`: subject `hierarchy:SERIAL`, detail
/// the reason), or the register's attributes changed (`event:move`, `event:rename`,
/// `event:correct`: subject the resident id). Everything else (issuance, access records,
/// other events) is not a change of this feed.
enum Change {
    Certificate {
        kind: &'static str,
        hierarchy: Hierarchy,
        serial: Vec<u8>,
        reason: String,
    },
    Attributes {
        holder: String,
    },
}

fn change_of(r: &ca::audit::Record) -> Option<Change> {
    let kind = match r.action.as_str() {
        "revoke" => "revoked",
        "hold" => "held",
        "event:move" | "event:rename" | "event:correct" => {
            return Some(Change::Attributes {
                holder: r.subject.clone(),
            })
        }
        _ => return None,
    };
    let (h, serial) = r.subject.split_once(':')?;
    Some(Change::Certificate {
        kind,
        hierarchy: h.parse().ok()?,
        serial: hex::decode(serial).ok()?,
        reason: r.detail.clone(),
    })
}

/// `GET /v1/changes?sp=SP&since=CURSOR&limit=N`: for the holders who have a live consent for
/// the calling SP, the certificates revoked or held and the attribute changes recorded since
/// `since`, oldest first.
///
/// The sequence is the audit chain's (`ca::storage::Storage::audit_records`): every
/// revocation, hold and register event is written there by the storage authority in the
/// unit of work that makes it, numbered at commit, durable and never renumbered — so the
/// cursor (the position after the last record a page read) is monotonic and survives
/// restarts, on every engine. A cursor ahead of the chain, or one that is not a number, was
/// not given out by this API and is refused.
pub(crate) fn changes(call: &mut Call<'_>, q: &PageQuery<'_>) -> Result<Value> {
    let sp = call.sp(required_sp(q)?, Scope::Validity)?;
    let limit = page_limit(q.limit)?;
    let storage = call.a.storage();
    let end = storage.audit_head()?.map_or(0, |h| h.seq + 1);
    let since = match q.cursor {
        None => 0,
        Some(c) => {
            let n: u64 = c
                .parse()
                .ok()
                .filter(|_| c.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| Error::BadCursor(c.to_owned()))?;
            if n > end {
                return Err(Error::UnknownCursor {
                    cursor: c.to_owned(),
                    head: end,
                });
            }
            n
        }
    };
    // The SP's holders: those with a live consent now, by holder (the consent the SP knows).
    let mut holders: std::collections::BTreeMap<String, String> = Default::default();
    let mut after: Option<String> = None;
    loop {
        let page = storage.sp_consents(&sp.id, after.as_deref(), MAX_PAGE)?;
        let Some(last) = page.last() else { break };
        after = Some(last.nonce.clone());
        for c in &page {
            if consent_state(c, call.now) == "live" {
                holders.insert(c.holder.clone(), c.id.clone());
            }
        }
    }
    let mut out = Vec::new();
    let mut next = since;
    let records = if holders.is_empty() {
        // Nobody to report on: the page moves to the end at once.
        next = end;
        Vec::new()
    } else {
        storage.audit_records(since, FEED_SCAN)?
    };
    for r in &records {
        if out.len() == limit {
            break;
        }
        next = r.seq + 1;
        let Some(change) = change_of(r) else { continue };
        match change {
            Change::Attributes { holder } => {
                if let Some(consent) = holders.get(&holder) {
                    call.touch(&Some(holder.clone()));
                    out.push(
                        json!({"seq": r.seq, "at": rfc3339(r.at), "change": "attributes_changed",
                        "consent": consent}),
                    );
                }
            }
            Change::Certificate {
                kind,
                hierarchy,
                serial,
                reason,
            } => {
                let Some(c) = storage.certificate(hierarchy, &serial)? else {
                    continue;
                };
                let Some(consent) = c.holder.as_ref().and_then(|h| holders.get(h)) else {
                    continue;
                };
                call.touch(&c.holder);
                out.push(json!({"seq": r.seq, "at": rfc3339(r.at), "change": kind,
                    "consent": consent, "issuer": hierarchy.as_str(),
                    "serial": ca::authority::serial_hex(&serial), "reason": reason,
                    "attributes_changed": hierarchy == Hierarchy::Signing && kind == "revoked"
                        && reason == Reason::AffiliationChanged.as_str()}));
            }
        }
    }
    Ok(json!({
        "changes": out,
        "next": next.to_string(),
        "more": next < end,
        "as_of": rfc3339(call.now),
    }))
}
