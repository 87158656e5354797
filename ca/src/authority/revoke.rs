//! Revocation and holds: find the certificate, check its status in the unit of work, set
//! the new status (which puts it on its CRL and marks that CRL dirty) with the audit record,
//! then tell the listener (OCSP cache, CRL publisher) once it is durable. Only holders'
//! certificates are revoked here: a root or an OCSP signer is refused
//! ([`Error::NotHolderCertificate`]). A keyCompromise revocation also puts the key on the
//! store's blocklist in the same unit of work, so no holder can have it certified again.

use policies::{Hierarchy, Reason};
use serde::Serialize;
use time::OffsetDateTime;

use super::{serial_hex, Authority};
use crate::error::{Error, Result};
use crate::records::{CertKind, CertRecord, State, StatusRecord};
use crate::storage;

/// A revocation or hold that happened.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Revocation {
    pub serial: String,
    pub hierarchy: Hierarchy,
    pub status: State,
    pub reason: Reason,
    #[serde(with = "time::serde::rfc3339")]
    pub revoked_at: OffsetDateTime,
}

impl Authority {
    /// Finds a certificate by serial, in `h` or in whichever hierarchy has it.
    pub fn find(&self, serial: &[u8], h: Option<Hierarchy>) -> Result<CertRecord> {
        let hs: Vec<Hierarchy> = h
            .map(|h| vec![h])
            .unwrap_or_else(|| Hierarchy::ALL.to_vec());
        let mut found = Vec::new();
        for h in hs {
            found.extend(self.storage.certificate(h, serial)?);
        }
        match found.len() {
            0 => Err(Error::UnknownSerial(serial_hex(serial))),
            1 => Ok(found.remove(0)),
            _ => Err(Error::AmbiguousSerial(serial_hex(serial))),
        }
    }

    /// Revokes a certificate (`certificateHold` puts it on hold instead).
    pub fn revoke(
        &self,
        serial: &[u8],
        h: Option<Hierarchy>,
        reason: Reason,
        invalidity: Option<OffsetDateTime>,
    ) -> Result<Revocation> {
        if reason == Reason::RemoveFromCrl {
            return Err(Error::Invalid(
                "removeFromCRL is a delta-CRL reason; held card certificates are never released"
                    .into(),
            ));
        }
        let c = self.find(serial, h)?;
        if c.holder.is_none() || matches!(c.kind, CertKind::Root | CertKind::OcspSigner) {
            return Err(Error::NotHolderCertificate(serial_hex(&c.serial)));
        }
        // A key revoked for keyCompromise is blocked for every holder, for ever, in the same
        // unit of work as the revocation.
        let blocked = if reason == Reason::KeyCompromise {
            Some(storage::fingerprint(&super::spki_of(&c.der)?))
        } else {
            None
        };
        let now = self.clock.now();
        if let Some(inv) = invalidity {
            if inv > now {
                return Err(Error::Invalid(
                    "the invalidity date is in the future".into(),
                ));
            }
        }
        let target = if reason == Reason::CertificateHold {
            State::Held
        } else {
            State::Revoked
        };
        let hexs = serial_hex(&c.serial);
        self.storage.transact(&|t| {
            let st = t
                .status(c.hierarchy, &c.serial)?
                .ok_or_else(|| Error::Store("certificate without status".into()))?;
            match (st.state, target) {
                (State::Revoked, _) => {
                    return Err(Error::AlreadyRevoked {
                        serial: hexs.clone(),
                        hierarchy: c.hierarchy,
                        reason: st.reason.unwrap_or(Reason::Unspecified),
                    })
                }
                (State::Held, State::Held) => {
                    return Err(Error::Invalid(format!("serial {hexs} is already on hold")))
                }
                _ => {}
            }
            t.change_status(
                &c,
                &StatusRecord {
                    state: target,
                    reason: Some(reason),
                    since: Some(now),
                    invalidity,
                },
                now,
            )?;
            if let Some(fp) = &blocked {
                t.block_key(fp)?;
                storage::audit(
                    t,
                    now,
                    "key-block",
                    &hex::encode(fp),
                    &format!("{}:{hexs} revoked for keyCompromise", c.hierarchy),
                )?;
            }
            storage::audit(
                t,
                now,
                if target == State::Held {
                    "hold"
                } else {
                    "revoke"
                },
                &format!("{}:{hexs}", c.hierarchy),
                reason.as_str(),
            )
        })?;
        self.notify(&c);
        Ok(Revocation {
            serial: hexs,
            hierarchy: c.hierarchy,
            status: target,
            reason,
            revoked_at: now,
        })
    }

    /// Puts a certificate on hold (certificateHold). Card certificates are never released.
    pub fn hold(&self, serial: &[u8], h: Option<Hierarchy>) -> Result<Revocation> {
        self.revoke(serial, h, Reason::CertificateHold, None)
    }
}
