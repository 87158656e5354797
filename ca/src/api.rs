//! One request type for every CA operation, and one way to carry it out
//! ([`Authority::handle`]). The CLI builds a [`Request`] and runs it in-process when it can
//! open the store; while `jpki serve` holds the store, the CLI sends the same request over the
//! server's local admin socket (`DIR/admin.sock`, mode 0600) and the server runs the same
//! `handle`. One code path, two transports.
//!
//! Admin protocol: one JSON [`Request`] per line in, one JSON line out:
//! `{"ok": <result>}` or `{"error": {"code": "<stable code>", "message": "<one line>",
//! "subject": …, "fields": {…}}}` ([`WireError`]). The client turns the error back into the
//! same typed [`Error`] the server had ([`Error::from`]), so the CLI prints the same message,
//! and a program can tell `unknown_serial` from `store`, in-process or through a server.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use base64::Engine;
use policies::{Hierarchy, Reason};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::authority::{parse_serial, Authority, Event, NewResident};
use crate::error::{Error, Result};
use crate::officers::{self, Action, Actor, OfficerState};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    Root {
        hierarchy: Hierarchy,
    },
    ResidentAdd(NewResident),
    /// A registration with options: a duplicate allowed with its reason.
    ResidentAddWith {
        resident: NewResident,
        #[serde(default)]
        allow_duplicate: Option<String>,
    },
    /// Many registrations, all or none (`jpki resident import`).
    ResidentImport {
        rows: Vec<NewResident>,
        #[serde(default)]
        dry_run: bool,
    },
    ResidentShow {
        id: String,
    },
    ResidentSearch(crate::authority::ResidentQuery),
    /// Issuance, revocations and holds per municipality in a period, or the certificates
    /// expiring in one (`jpki report`). Answer: [`crate::authority::report::Report`].
    Report(crate::authority::report::ReportQuery),
    Event {
        id: String,
        event: Event,
    },
    /// A PIN reset at the municipal counter, checked against the register and audited
    /// before the token is changed (`jpki resident pin-reset`; `crate::authority::counter`).
    CounterPinReset(crate::authority::counter::CounterReset),
    /// What [`Request::Event`] would do — the resident's new state and the revocations and
    /// holds its rule demands — changing nothing (`--dry-run`, and the confirmation prompt).
    EventPreview {
        id: String,
        event: Event,
    },
    Issue {
        resident: String,
        kind: Hierarchy,
        csr_base64: String,
        #[serde(default)]
        overrides: crate::authority::IssueOverrides,
    },
    Revoke {
        serial: String,
        hierarchy: Option<Hierarchy>,
        reason: Reason,
        #[serde(with = "time::serde::rfc3339::option", default)]
        invalidity: Option<OffsetDateTime>,
    },
    CertShow {
        serial: String,
        hierarchy: Option<Hierarchy>,
    },
    /// Checks a list of serials for revocation without changing anything: for each, the
    /// certificate it names (hierarchy, serial, status) or why it cannot be revoked. One
    /// request for a whole `revoke --batch` file.
    RevocationCheck {
        serials: Vec<String>,
        hierarchy: Option<Hierarchy>,
    },
    CertList {
        resident: Option<String>,
    },
    /// `cert list` with filters, a page at a time.
    CertPage(crate::authority::CertQuery),
    AuditVerify,
    AuditLog,
    /// Snapshot the store and drop the journal records the snapshot holds.
    StoreCompact,
    /// Write a consistent copy of the store into the new directory `to` (an absolute path on
    /// the server's host; `jpki store backup`). Only for the person at the host (the admin
    /// socket or the local CLI): it writes files where it is told. Answer: [`crate::storage::Backup`].
    StoreBackup {
        to: std::path::PathBuf,
    },
    /// Carry out the scheduled register events that have fallen due.
    ApplyDue,
    /// Renew the delegated OCSP signer of one hierarchy, or of both; with `if_due`, only
    /// those within the policy's `validity.ocsp_signer_renew_days` of their notAfter.
    /// Answer: `{renewed: [Renewed], expiries: [Expiry]}`.
    OcspSignerRenew {
        #[serde(default)]
        hierarchy: Option<Hierarchy>,
        #[serde(default)]
        if_due: bool,
    },
    /// The roots' and OCSP signers' expiries. Answer: `{expiries: [Expiry]}`.
    Expiries,
    /// A hierarchy's OCSP signer key is compromised: revoke it (keyCompromise), block its key
    /// and put a new signer in force at once. Answer: `{replaced: Renewed}`.
    OcspSignerCompromise {
        hierarchy: Hierarchy,
        /// Two distinct ca-officers' approvals of `ocsp-signer-compromise` on the
        /// hierarchy (dual control, [`crate::ceremony`]).
        #[serde(default)]
        approvals: Vec<crate::ceremony::Approval>,
    },
    /// A one-use challenge for a smartphone application (`jpki phone challenge`). Answer:
    /// `ChallengeIssued`.
    PhoneChallenge {
        resident: String,
    },
    /// Smartphone certificates on the card's authority (`jpki phone issue`): the CSRs and the
    /// card's signature, base64. Answer: `PhoneIssued`.
    PhoneIssue {
        resident: String,
        challenge: String,
        authorisation_base64: String,
        #[serde(default)]
        auth_csr_base64: Option<String>,
        #[serde(default)]
        signing_csr_base64: Option<String>,
    },
    /// The holder's phone is lost: its certificates are held. Answer: `PhoneOutcome`.
    PhoneLost {
        resident: String,
    },
    /// The lost phone is found: auth released, signing revoked. Answer: `PhoneOutcome`.
    PhoneFound {
        resident: String,
    },
    /// Every generation of both roots (or of one). Answer: `{generations: [Generation]}`.
    RootGenerations {
        #[serde(default)]
        hierarchy: Option<Hierarchy>,
    },
    /// A new root generation for a hierarchy (`jpki root rollover`). Answer:
    /// `{rolled_over: RolledOver, generations: [Generation]}`.
    RootRollover {
        hierarchy: Hierarchy,
        /// Two distinct ca-officers' approvals of `root-rollover` on the hierarchy.
        approvals: Vec<crate::ceremony::Approval>,
    },
    /// Every officer. Answer: `{officers: [Officer]}`.
    OfficerList,
    /// Suspends an officer (reactivate undoes it). Answer: the officer.
    OfficerSuspend {
        name: String,
    },
    OfficerReactivate {
        name: String,
    },
    /// Revokes an officer for good. Answer: the officer.
    OfficerRevoke {
        name: String,
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

    /// What the request does, for [`officers::authorize`]: the municipality of the resident
    /// (or the certificate's holder) it concerns is read from the register.
    pub fn action(&self, authority: &Authority) -> Result<Action> {
        let municipality_of =
            |id: &str| -> Result<String> { Ok(authority.resident(id)?.municipality) };
        Ok(match self {
            Request::Root { .. }
            | Request::RootGenerations { .. }
            | Request::CertShow { .. }
            | Request::CertList { .. }
            | Request::CertPage(_)
            | Request::RevocationCheck { .. }
            | Request::Expiries => Action::ReadCertificates,
            Request::AuditVerify | Request::AuditLog => Action::ReadAudit,
            Request::ResidentShow { id } => Action::ReadRegister {
                municipality: Some(municipality_of(id)?),
            },
            Request::ResidentSearch(q) => Action::ReadRegister {
                municipality: q.municipality.clone(),
            },
            Request::Report(q) => Action::ReadRegister {
                municipality: q.municipality.clone(),
            },
            Request::ResidentAdd(r) => Action::Register {
                municipality: r.municipality.clone(),
            },
            Request::ResidentAddWith { resident, .. } => Action::Register {
                municipality: resident.municipality.clone(),
            },
            // A clerk imports rows of its own municipality only: a file that mixes
            // municipalities is for an officer of each (or root on the host).
            Request::ResidentImport { rows, .. } => {
                let mut places = rows.iter().map(|r| r.municipality.as_str());
                let first = places.next().unwrap_or_default().to_owned();
                Action::Register {
                    municipality: if places.all(|m| m == first) {
                        first
                    } else {
                        "several municipalities".into()
                    },
                }
            }
            Request::CounterPinReset(r) => Action::Register {
                municipality: municipality_of(&r.resident)?,
            },
            Request::Event { id, .. } | Request::EventPreview { id, .. } => Action::Register {
                municipality: municipality_of(id)?,
            },
            Request::Issue { .. } | Request::PhoneChallenge { .. } | Request::PhoneIssue { .. } => {
                Action::Issue
            }
            // A phone reported lost is a hold of the holder's phone certificates; found
            // releases one and revokes the other.
            Request::PhoneLost { resident } => Action::Hold {
                municipality: municipality_of(resident)?,
            },
            Request::PhoneFound { .. } => Action::Revoke,
            Request::Revoke {
                serial,
                hierarchy,
                reason: Reason::CertificateHold,
                ..
            } => {
                let c = authority.find(&parse_serial(serial)?, *hierarchy)?;
                match &c.holder {
                    Some(holder) => Action::Hold {
                        municipality: municipality_of(holder)?,
                    },
                    // Infrastructure certificates: refused by `hold` itself, for anyone.
                    None => Action::Revoke,
                }
            }
            Request::Revoke { .. } => Action::Revoke,
            Request::StoreCompact
            | Request::StoreBackup { .. }
            | Request::ApplyDue
            | Request::OcspSignerRenew { .. }
            | Request::OcspSignerCompromise { .. }
            | Request::RootRollover { .. } => Action::Maintain,
            Request::OfficerList
            | Request::OfficerSuspend { .. }
            | Request::OfficerReactivate { .. }
            | Request::OfficerRevoke { .. } => Action::ManageOfficers,
        })
    }
}

fn to_value<T: Serialize>(v: T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::Invalid(format!("encode result: {e}")))
}

impl Authority {
    /// Carries out one request as `actor`: authorised first ([`officers::authorize`], the one
    /// place roles are enforced), a refusal recorded in the audit trail and returned as a
    /// typed error ([`Error::Forbidden`] …) with nothing else changed; what is allowed runs
    /// with `actor` stamped on every audit record it makes.
    pub fn handle_as(&self, actor: &Actor, req: Request) -> Result<Value> {
        let allowed = req
            .action(self)
            .and_then(|action| officers::authorize(actor, &action))
            .and_then(|()| match (&req, actor) {
                // It writes files on this host where it is told: the host's owner only.
                (Request::StoreBackup { .. }, Actor::RootOnHost { .. }) => Ok(()),
                (Request::StoreBackup { .. }, _) => Err(Error::Forbidden {
                    actor: actor.label(),
                    action: "back up the store (only at the CA host)".into(),
                }),
                _ => Ok(()),
            });
        if let Err(e) = allowed {
            if matches!(e, Error::Forbidden { .. } | Error::OfficerNotActive { .. }) {
                officers::audit_refusal(self, actor, &req.op(), &e)?;
            }
            return Err(e);
        }
        let op = req.op();
        let out = officers::acting_as(actor, || self.handle(req));
        // A key the HSM would not use (wrong PIN, module, token or key) is a refusal too:
        // nothing was signed or changed, and the audit trail says who tried.
        if let Err(e) = &out {
            if matches!(
                e,
                Error::HsmModule(_) | Error::HsmPin(_) | Error::HsmNoKey(_) | Error::Hsm(_)
            ) {
                officers::audit_refusal(self, actor, &op, e)?;
            }
        }
        out
    }

    /// Carries out one request with no authorisation, as whatever actor the calling scope
    /// set ([`officers::acting_as`]); the transports call [`Authority::handle_as`].
    pub fn handle(&self, req: Request) -> Result<Value> {
        match req {
            Request::Root { hierarchy } => {
                Ok(json!({ "pem": crate::records::pem(&self.root(hierarchy).der) }))
            }
            Request::ResidentAdd(r) => Ok(json!({ "id": self.resident_add(&r)? })),
            Request::ResidentAddWith {
                resident,
                allow_duplicate,
            } => Ok(json!({
                "id": self.resident_add_with(&resident, allow_duplicate.as_deref())?
            })),
            Request::ResidentImport { rows, dry_run } => {
                Ok(match self.resident_import(&rows, dry_run) {
                    Ok(ids) => json!({ "accepted": ids, "refused": [], "dry_run": dry_run }),
                    Err(refused) => json!({
                        "accepted": [],
                        "refused": refused
                            .iter()
                            .map(|(row, e)| json!({ "row": row + 1, "code": e.code(), "error": e.to_string() }))
                            .collect::<Vec<_>>(),
                        "dry_run": dry_run,
                    }),
                })
            }
            Request::ResidentShow { id } => to_value(self.resident_view(&id)?),
            Request::ResidentSearch(q) => to_value(self.resident_search(&q)?),
            Request::Report(q) => to_value(self.report(&q)?),
            Request::Event { id, event } => to_value(self.event(&id, &event)?),
            Request::EventPreview { id, event } => to_value(self.event_preview(&id, &event)?),
            Request::CounterPinReset(r) => to_value(self.counter_pin_reset(&r)?),
            Request::Issue {
                resident,
                kind,
                csr_base64,
                overrides,
            } => {
                let csr = base64::engine::general_purpose::STANDARD
                    .decode(csr_base64)
                    .map_err(|_| Error::Csr("not base64".into()))?;
                to_value(self.issue_with(&resident, kind, &csr, &overrides)?)
            }
            Request::Revoke {
                serial,
                hierarchy,
                reason,
                invalidity,
            } => to_value(self.revoke(&parse_serial(&serial)?, hierarchy, reason, invalidity)?),
            Request::CertShow { serial, hierarchy } => {
                to_value(self.cert_show(&parse_serial(&serial)?, hierarchy)?)
            }
            Request::RevocationCheck { serials, hierarchy } => {
                let checked: Vec<Value> = serials
                    .iter()
                    .map(|text| {
                        let found = parse_serial(text).and_then(|s| self.find(&s, hierarchy));
                        match found.and_then(|c| Ok((self.status_of(&c)?, c))) {
                            Ok((st, _)) if st.state == crate::records::State::Revoked => {
                                json!({ "error": format!("serial {} is already revoked", text.trim()) })
                            }
                            Ok((st, c)) => json!({
                                "hierarchy": c.hierarchy,
                                "serial": crate::authority::serial_hex(&c.serial),
                                "status": st.state,
                            }),
                            Err(e) => json!({ "error": e.to_string() }),
                        }
                    })
                    .collect();
                Ok(json!({ "checked": checked }))
            }
            Request::CertPage(q) => to_value(self.cert_page(&q)?),
            Request::CertList { resident } => {
                Ok(json!({ "certificates": self.cert_list(resident.as_deref())? }))
            }
            Request::AuditVerify => {
                let records = self.audit_verify()?;
                let certs = self.check_indexes()?;
                Ok(json!({ "records": records, "intact": true, "certificates_checked": certs }))
            }
            Request::AuditLog => Ok(json!({ "records": self.audit_records()? })),
            Request::StoreCompact => to_value(self.storage().compact()?),
            Request::StoreBackup { to } => {
                if !to.is_absolute() {
                    return Err(Error::Invalid(format!(
                        "backup directory {}: give an absolute path",
                        to.display()
                    )));
                }
                to_value(self.storage().backup(&to)?)
            }
            Request::ApplyDue => Ok(json!({ "applied": self.apply_due()? })),
            Request::OcspSignerRenew { hierarchy, if_due } => {
                let now = self.clock().now();
                let mut renewed = Vec::new();
                for h in hierarchy.map_or(Hierarchy::ALL.to_vec(), |h| vec![h]) {
                    let e = self
                        .expiries()?
                        .into_iter()
                        .find(|e| e.what == "ocsp-signer" && e.hierarchy == Some(h))
                        .ok_or_else(|| Error::Store(format!("no OCSP signer for {h}")))?;
                    if !if_due || e.due(now) {
                        renewed.push(self.renew_ocsp_signer(h)?);
                    }
                    // Older root generations keep signers of their own (renewed when due).
                    if if_due {
                        renewed.extend(self.renew_older_ocsp_signers_due(h)?);
                    }
                }
                Ok(json!({ "renewed": renewed, "expiries": self.expiries()? }))
            }
            Request::Expiries => Ok(json!({ "expiries": self.expiries()? })),
            Request::OcspSignerCompromise {
                hierarchy,
                approvals,
            } => Ok(json!({
                "replaced": self.compromise_ocsp_signer(hierarchy, &approvals)?
            })),
            Request::PhoneChallenge { resident } => to_value(self.phone_challenge(&resident)?),
            Request::PhoneIssue {
                resident,
                challenge,
                authorisation_base64,
                auth_csr_base64,
                signing_csr_base64,
            } => {
                let b64 = |what: &str, text: &str| {
                    base64::engine::general_purpose::STANDARD
                        .decode(text)
                        .map_err(|_| Error::Invalid(format!("{what}: not base64")))
                };
                let auth = auth_csr_base64
                    .as_deref()
                    .map(|t| b64("auth CSR", t))
                    .transpose()?;
                let signing = signing_csr_base64
                    .as_deref()
                    .map(|t| b64("signing CSR", t))
                    .transpose()?;
                let sig = b64("authorisation", &authorisation_base64)?;
                to_value(self.phone_issue(
                    &resident,
                    &crate::authority::phone::PhoneApplication {
                        auth_csr: auth.as_deref(),
                        signing_csr: signing.as_deref(),
                        challenge: &challenge,
                        authorisation: &sig,
                    },
                )?)
            }
            Request::PhoneLost { resident } => to_value(self.phone_lost(&resident)?),
            Request::PhoneFound { resident } => to_value(self.phone_found(&resident)?),
            Request::RootGenerations { hierarchy } => {
                let all: Vec<_> = hierarchy
                    .map_or(Hierarchy::ALL.to_vec(), |h| vec![h])
                    .into_iter()
                    .flat_map(|h| self.generations(h))
                    .collect();
                Ok(json!({ "generations": all }))
            }
            Request::RootRollover {
                hierarchy,
                approvals,
            } => {
                let r = self.rollover_root(hierarchy, &approvals)?;
                Ok(json!({ "rolled_over": r, "generations": self.generations(hierarchy) }))
            }
            Request::OfficerList => {
                Ok(json!({ "officers": officers::list(self.storage().as_ref())? }))
            }
            Request::OfficerSuspend { name } => {
                to_value(officers::set_state(self, &name, OfficerState::Suspended)?)
            }
            Request::OfficerReactivate { name } => {
                to_value(officers::set_state(self, &name, OfficerState::Active)?)
            }
            Request::OfficerRevoke { name } => {
                to_value(officers::set_state(self, &name, OfficerState::Revoked)?)
            }
        }
    }
}

/// The admin socket of a data directory.
pub fn socket_path(data: &Path) -> std::path::PathBuf {
    data.join("admin.sock")
}

/// Sends a request to a running `jpki serve` over its admin socket.
pub fn call_remote(data: &Path, req: &Request) -> Result<Value> {
    call_json(data, req)
}

/// The admin-socket transport for any request type (the platform crate's too): one JSON line
/// out, one `{"ok"}`/`{"error"}` line back.
pub fn call_json<T: Serialize>(data: &Path, req: &T) -> Result<Value> {
    let path = socket_path(data);
    let mut stream = connect(&path)?;
    let mut line = serde_json::to_vec(req).map_err(|e| Error::Invalid(e.to_string()))?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .map_err(Error::io("send to the admin socket"))?;
    let mut reply = String::new();
    BufReader::new(&stream)
        .read_line(&mut reply)
        .map_err(Error::io("read from the admin socket"))?;
    if reply.is_empty() {
        return Err(Error::Store(
            "the server closed the admin connection without answering (did it stop or crash?): \
             the request may or may not have been carried out; check before repeating it"
                .into(),
        ));
    }
    decode_reply(&reply)
}

/// How long a command waits for the admin socket of a server that holds the store but is
/// still starting (it takes the store's lock before it binds the socket).
const STARTING: std::time::Duration = std::time::Duration::from_secs(5);

/// Connects to the admin socket, waiting up to [`STARTING`] for a server that is starting.
fn connect(path: &Path) -> Result<UnixStream> {
    let started = std::time::Instant::now();
    loop {
        match UnixStream::connect(path) {
            Ok(s) => return Ok(s),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) && started.elapsed() < STARTING =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => {
                return Err(Error::Locked(format!(
                    "the store is held by another process and its admin socket {} does not answer ({e})",
                    path.display()
                )))
            }
        }
    }
}

/// An error as the admin socket carries it: its stable code ([`Error::code`]), its one-line
/// message, and what a typed variant needs to be rebuilt (the serial, id or text it names, in
/// `subject`; structured fields in `fields`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireError {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Value>,
}

/// An error that can cross the admin socket.
pub trait Coded: std::fmt::Display {
    fn wire(&self) -> WireError;
}

impl Coded for Error {
    fn wire(&self) -> WireError {
        let subject = match self {
            Error::DataDirExists(s)
            | Error::NoDataDir(s)
            | Error::Locked(s)
            | Error::WrongPassphrase(s)
            | Error::Csr(s)
            | Error::Refused(s)
            | Error::UnknownResident(s)
            | Error::UnknownSerial(s)
            | Error::AmbiguousSerial(s)
            | Error::Held(s)
            | Error::Invalid(s)
            | Error::Store(s)
            | Error::KeyBlocked(s)
            | Error::NotHolderCertificate(s)
            | Error::UnknownOfficer(s)
            | Error::OfficerCertificate(s)
            | Error::OfficerExists(s)
            | Error::HsmModule(s)
            | Error::HsmPin(s)
            | Error::HsmNoKey(s)
            | Error::Hsm(s)
            | Error::DualControl(s) => Some(s.clone()),
            _ => None,
        };
        let fields = match self {
            Error::KeyFile { path, detail } => Some(json!({ "path": path, "detail": detail })),
            Error::AlreadyRevoked {
                serial,
                hierarchy,
                reason,
            } => Some(json!({ "serial": serial, "hierarchy": hierarchy, "reason": reason })),
            Error::AuditBroken { seq, problem } => Some(json!({ "seq": seq, "problem": problem })),
            Error::Forbidden { actor, action } => Some(json!({ "actor": actor, "action": action })),
            Error::OfficerNotActive { name, state } => {
                Some(json!({ "name": name, "state": state }))
            }
            _ => None,
        };
        WireError {
            code: self.code().to_owned(),
            message: self.to_string(),
            subject,
            fields,
        }
    }
}

impl From<WireError> for Error {
    /// The typed error a [`WireError`] stands for; [`Error::Remote`] (code and message kept)
    /// where it has no typed variant here or does not carry what the variant needs.
    fn from(w: WireError) -> Error {
        let field = |name: &str| w.fields.as_ref().and_then(|f| f.get(name)).cloned();
        let typed = |w: &WireError| -> Option<Error> {
            let s = w.subject.clone();
            Some(match w.code.as_str() {
                "data_dir_exists" => Error::DataDirExists(s?),
                "no_data_dir" => Error::NoDataDir(s?),
                "locked" => Error::Locked(s?),
                "no_passphrase" => Error::NoPassphrase,
                "wrong_passphrase" => Error::WrongPassphrase(s?),
                "key_file" => Error::KeyFile {
                    path: serde_json::from_value(field("path")?).ok()?,
                    detail: serde_json::from_value(field("detail")?).ok()?,
                },
                "csr" => Error::Csr(s?),
                "refused" => Error::Refused(s?),
                "unknown_resident" => Error::UnknownResident(s?),
                "unknown_serial" => Error::UnknownSerial(s?),
                "ambiguous_serial" => Error::AmbiguousSerial(s?),
                "already_revoked" => Error::AlreadyRevoked {
                    serial: serde_json::from_value(field("serial")?).ok()?,
                    hierarchy: serde_json::from_value(field("hierarchy")?).ok()?,
                    reason: serde_json::from_value(field("reason")?).ok()?,
                },
                "held" => Error::Held(s?),
                "invalid" => Error::Invalid(s?),
                "store" => Error::Store(s?),
                "key_blocked" => Error::KeyBlocked(s?),
                "not_holder_certificate" => Error::NotHolderCertificate(s?),
                "unknown_officer" => Error::UnknownOfficer(s?),
                "officer_certificate" => Error::OfficerCertificate(s?),
                "officer_exists" => Error::OfficerExists(s?),
                "hsm_module" => Error::HsmModule(s?),
                "hsm_pin" => Error::HsmPin(s?),
                "hsm_no_key" => Error::HsmNoKey(s?),
                "hsm" => Error::Hsm(s?),
                "dual_control" => Error::DualControl(s?),
                "forbidden" => Error::Forbidden {
                    actor: serde_json::from_value(field("actor")?).ok()?,
                    action: serde_json::from_value(field("action")?).ok()?,
                },
                "officer_not_active" => Error::OfficerNotActive {
                    name: serde_json::from_value(field("name")?).ok()?,
                    state: match field("state")?.as_str()? {
                        "suspended" => "suspended",
                        "revoked" => "revoked",
                        "active" => "active",
                        _ => return None,
                    },
                },
                "retry" => Error::Retry,
                "conflict" => Error::Conflict,
                "audit_broken" => Error::AuditBroken {
                    seq: serde_json::from_value(field("seq")?).ok()?,
                    problem: serde_json::from_value(field("problem")?).ok()?,
                },
                _ => return None,
            })
        };
        match typed(&w) {
            // Only when it says exactly what the server said.
            Some(e) if e.to_string() == w.message => e,
            _ => Error::Remote {
                code: w.code,
                message: w.message,
            },
        }
    }
}

/// Encodes any component's answer as one admin-protocol line.
pub fn reply_line<E: Coded>(result: std::result::Result<Value, E>) -> String {
    let v = match result {
        Ok(v) => json!({ "ok": v }),
        Err(e) => json!({ "error": e.wire() }),
    };
    let mut s = v.to_string();
    s.push('\n');
    s
}

fn decode_reply(line: &str) -> Result<Value> {
    let mut v: Value = serde_json::from_str(line)
        .map_err(|_| Error::Invalid("the admin socket answered garbage".into()))?;
    if let Some(e) = v.get_mut("error").map(Value::take) {
        let wire: WireError = serde_json::from_value(e).map_err(|_| {
            Error::Invalid("the admin socket answered an error without a code".into())
        })?;
        return Err(wire.into());
    }
    v.get_mut("ok")
        .map(Value::take)
        .ok_or_else(|| Error::Invalid("the admin socket answered without a result".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_as_json() {
        let r = Request::Event {
            id: "R1".into(),
            event: Event::Emigrate {
                departure: Some(time::macros::date!(2026 - 12 - 20)),
                continued_use: true,
            },
        };
        let text = serde_json::to_string(&r).unwrap();
        assert!(
            text.contains("\"op\":\"event\"") && text.contains("2026-12-20"),
            "{text}"
        );
        let back: Request = serde_json::from_str(&text).unwrap();
        assert!(matches!(
            back,
            Request::Event {
                event: Event::Emigrate {
                    departure: Some(_),
                    continued_use: true
                },
                ..
            }
        ));
    }

    #[test]
    fn replies_carry_errors_as_one_line() {
        let line = reply_line(Err(Error::UnknownSerial("0A".into())));
        assert_eq!(line.lines().count(), 1);
        let e = decode_reply(&line).unwrap_err();
        assert_eq!(e.to_string(), "unknown serial 0A");
        assert!(matches!(&e, Error::UnknownSerial(s) if s == "0A"), "{e:?}");
        assert_eq!(
            decode_reply(&reply_line::<Error>(Ok(json!({"id": "x"})))).unwrap()["id"],
            "x"
        );
    }

    #[test]
    fn every_error_crosses_the_socket_with_its_code_and_message() {
        use policies::{Hierarchy, Reason};
        let typed = [
            Error::DataDirExists("d".into()),
            Error::NoDataDir("d".into()),
            Error::Locked("d".into()),
            Error::NoPassphrase,
            Error::WrongPassphrase("k".into()),
            Error::KeyFile {
                path: "p".into(),
                detail: "bad".into(),
            },
            Error::Csr("not base64".into()),
            Error::Refused("deceased".into()),
            Error::UnknownResident("R1".into()),
            Error::UnknownSerial("0A".into()),
            Error::AmbiguousSerial("0B".into()),
            Error::AlreadyRevoked {
                serial: "0C".into(),
                hierarchy: Hierarchy::Auth,
                reason: Reason::KeyCompromise,
            },
            Error::Held("0D".into()),
            Error::Invalid("no".into()),
            Error::Store("disk full".into()),
            Error::Retry,
            Error::Conflict,
            Error::AuditBroken {
                seq: 3,
                problem: "changed".into(),
            },
            Error::KeyBlocked("ab".into()),
            Error::NotHolderCertificate("01".into()),
            Error::Forbidden {
                actor: "officer:OF01(auditor)".into(),
                action: "issue certificates".into(),
            },
            Error::UnknownOfficer("key ab".into()),
            Error::OfficerNotActive {
                name: "Sato".into(),
                state: "suspended",
            },
            Error::OfficerCertificate("expired".into()),
            Error::OfficerExists("Sato".into()),
            Error::HsmModule("m".into()),
            Error::HsmPin("wrong".into()),
            Error::HsmNoKey("k".into()),
            Error::Hsm("h".into()),
            Error::DualControl("d".into()),
        ];
        for e in typed {
            let (code, message) = (e.code().to_owned(), e.to_string());
            let back = decode_reply(&reply_line::<Error>(Err(e))).unwrap_err();
            assert_eq!(back.code(), code);
            assert_eq!(back.to_string(), message);
            assert!(
                !matches!(back, Error::Remote { .. }),
                "{code} came back untyped"
            );
        }
        // What has no typed variant on this side keeps its code and message.
        let io = Error::io("read the journal")(std::io::Error::other("gone"));
        let back = decode_reply(&reply_line::<Error>(Err(io))).unwrap_err();
        assert!(
            matches!(&back, Error::Remote { code, message } if code == "io" && message == "read the journal: gone"),
            "{back:?}"
        );
        // A line without a code is refused, not guessed.
        let e = decode_reply(r#"{"error": "plain text"}"#).unwrap_err();
        assert!(e.to_string().contains("without a code"), "{e}");
    }

    #[test]
    fn a_starting_server_is_waited_for_and_a_dead_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = socket_path(dir.path());
        // The server binds its socket a moment after the command starts, then dies before
        // answering.
        let server = {
            let path = path.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(300));
                let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
                let (conn, _) = l.accept().unwrap();
                let mut line = String::new();
                BufReader::new(&conn).read_line(&mut line).unwrap();
                assert!(line.contains("audit-verify"), "{line}");
                drop(conn);
            })
        };
        let e = call_remote(dir.path(), &Request::AuditVerify).unwrap_err();
        server.join().unwrap();
        assert!(
            e.to_string()
                .contains("closed the admin connection without answering"),
            "{e}"
        );
        // Nothing listening at all: after the wait, the store is said to be held.
        std::fs::remove_file(&path).unwrap();
        let t0 = std::time::Instant::now();
        let e = call_remote(dir.path(), &Request::AuditVerify).unwrap_err();
        assert!(matches!(e, Error::Locked(_)), "{e:?}");
        assert!(t0.elapsed() >= STARTING);
    }
}
