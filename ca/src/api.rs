//! One request type for every CA operation, and one way to carry it out
//! ([`Authority::handle`]). The CLI builds a [`Request`] and runs it in-process when it can
//! open the store; while `jpki serve` holds the store, the CLI sends the same request over the
//! server's local admin socket (`DIR/admin.sock`, mode 0600) and the server runs the same
//! `handle`. One code path, two transports.
//!
//! Admin protocol: one JSON [`Request`] per line in, one JSON line out:
//! `{"ok": <result>}` or `{"error": "<one-line message>"}`.

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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    Root {
        hierarchy: Hierarchy,
    },
    ResidentAdd(NewResident),
    ResidentShow {
        id: String,
    },
    Event {
        id: String,
        event: Event,
    },
    Issue {
        resident: String,
        kind: Hierarchy,
        csr_base64: String,
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
    CertList {
        resident: Option<String>,
    },
    AuditVerify,
    AuditLog,
    /// Snapshot the store and drop the journal records the snapshot holds.
    StoreCompact,
    /// Carry out the scheduled register events that have fallen due.
    ApplyDue,
}

fn to_value<T: Serialize>(v: T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::Invalid(format!("encode result: {e}")))
}

impl Authority {
    /// Carries out one request; the result is the operation's answer as JSON.
    pub fn handle(&self, req: Request) -> Result<Value> {
        match req {
            Request::Root { hierarchy } => {
                Ok(json!({ "pem": crate::records::pem(&self.root(hierarchy).der) }))
            }
            Request::ResidentAdd(r) => Ok(json!({ "id": self.resident_add(&r)? })),
            Request::ResidentShow { id } => to_value(self.resident_view(&id)?),
            Request::Event { id, event } => to_value(self.event(&id, &event)?),
            Request::Issue {
                resident,
                kind,
                csr_base64,
            } => {
                let csr = base64::engine::general_purpose::STANDARD
                    .decode(csr_base64)
                    .map_err(|_| Error::Csr("not base64".into()))?;
                to_value(self.issue(&resident, kind, &csr)?)
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
            Request::ApplyDue => Ok(json!({ "applied": self.apply_due()? })),
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
    let mut stream = UnixStream::connect(&path).map_err(|e| {
        Error::Locked(format!(
            "the store is held by another process and its admin socket {} does not answer ({e})",
            path.display()
        ))
    })?;
    let mut line = serde_json::to_vec(req).map_err(|e| Error::Invalid(e.to_string()))?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .map_err(Error::io("send to the admin socket"))?;
    let mut reply = String::new();
    BufReader::new(&stream)
        .read_line(&mut reply)
        .map_err(Error::io("read from the admin socket"))?;
    decode_reply(&reply)
}

/// Encodes any component's answer as one admin-protocol line.
pub fn reply_line<E: std::fmt::Display>(result: std::result::Result<Value, E>) -> String {
    let v = match result {
        Ok(v) => json!({ "ok": v }),
        Err(e) => json!({ "error": e.to_string() }),
    };
    let mut s = v.to_string();
    s.push('\n');
    s
}

fn decode_reply(line: &str) -> Result<Value> {
    let mut v: Value = serde_json::from_str(line)
        .map_err(|_| Error::Invalid("the admin socket answered garbage".into()))?;
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        return Err(Error::Remote(e.to_owned()));
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
                event: Event::Emigrate { departure: Some(_) },
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
        assert_eq!(
            decode_reply(&reply_line::<Error>(Ok(json!({"id": "x"})))).unwrap()["id"],
            "x"
        );
    }
}
