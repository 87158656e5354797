//! [`Token`]: the operations of the card, each one a locked read-modify-write of the file.

use std::path::{Path, PathBuf};

use aws_lc_rs::signature::RsaKeyPair;
use der::{Decode, DecodePem, Encode};
use policies::Hierarchy;
use time::OffsetDateTime;
use x509_cert::Certificate;

use crate::crypto::{self, SecretKey};
use crate::file::{self, aad_data_key, aad_private_key, Body, DirLock, PinSlot, Slot, TokenKind};
use crate::pin::{max_tries, normalize, other};
use crate::{pkcs, Encapsulation, Error};

/// A holder token file, opened.
///
/// Every operation takes the directory lock, re-reads the file (another process may have
/// spent a try since [`Token::open`]) and writes it back durably before it returns.
#[derive(Debug)]
pub struct Token {
    path: PathBuf,
    body: Body,
}

/// The state of one key, as [`Token::status`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    pub kind: Hierarchy,
    pub tries_left: u8,
    pub max_tries: u8,
    /// No try left: every operation is refused until [`Token::reset`].
    pub locked: bool,
    /// SHA-256 of the SubjectPublicKeyInfo DER.
    pub key_fingerprint: [u8; 32],
    /// Subject of the imported certificate, RFC 4514 string.
    pub certificate_subject: Option<String>,
    /// Serial number of the imported certificate, hex.
    pub certificate_serial: Option<String>,
}

/// Both keys' state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub signing: KeyStatus,
    pub auth: KeyStatus,
}

impl Token {
    /// Creates a token at `path` (which must not exist) with fresh RSA-2048 signing and
    /// authentication keys under the two PINs. Both PINs are shape-checked first.
    pub fn create(path: &Path, sign_pin: &str, auth_pin: &str) -> Result<Token, Error> {
        Self::create_kind(path, sign_pin, auth_pin, TokenKind::Card)
    }

    /// [`Token::create`] for a token of `kind`: [`TokenKind::Phone`] stands for a smartphone's
    /// secure element, whose keys get the phone certificates (same keys, PINs and operations
    /// as the card; only the token name differs).
    pub fn create_kind(
        path: &Path,
        sign_pin: &str,
        auth_pin: &str,
        kind: TokenKind,
    ) -> Result<Token, Error> {
        Self::create_with(path, sign_pin, auth_pin, kind, None)
    }

    /// [`Token::create_kind`], enrolled with a municipal counter key when `counter` is given:
    /// both data keys are encrypted to it, so that the counter can reset either PIN
    /// ([`Token::counter_reset`], [`crate::counter`]).
    pub fn create_with(
        path: &Path,
        sign_pin: &str,
        auth_pin: &str,
        kind: TokenKind,
        counter: Option<&crate::counter::CounterPublic>,
    ) -> Result<Token, Error> {
        let token_kind = kind;
        let pins = [
            normalize(Hierarchy::Signing, sign_pin)?,
            normalize(Hierarchy::Auth, auth_pin)?,
        ];
        let mut material = Vec::with_capacity(2);
        for kind in Hierarchy::ALL {
            let (pkcs8, spki) = crypto::generate_rsa()?;
            let data_key = crypto::new_key()?;
            let sealed = crypto::seal(&data_key, &aad_private_key(kind, &spki), &pkcs8)?;
            material.push((spki, sealed, data_key));
        }
        let mut slots = Vec::with_capacity(2);
        for (i, kind) in Hierarchy::ALL.into_iter().enumerate() {
            let own = &material[i].2;
            let theirs = &material[1 - i].2;
            slots.push(Slot {
                public_key: material[i].0.clone(),
                private_key: material[i].1.clone(),
                certificate: None,
                pin: pin_slot(kind, &pins[i], own, theirs)?,
            });
        }
        let auth = slots.pop();
        let signing = slots.pop();
        let (Some(signing), Some(auth)) = (signing, auth) else {
            return Err(Error::Crypto("internal: slot construction"));
        };
        let counter = match counter {
            Some(c) => Some(file::CounterSlot {
                municipality: c.municipality.clone(),
                key_id: crate::counter::key_id(&c.public_key),
                data_keys: c.seal_data_keys(&material[0].2, &material[1].2)?,
            }),
            None => None,
        };
        let body = Body {
            signing,
            auth,
            kind: token_kind,
            counter,
        };
        let lock = DirLock::acquire(path)?;
        lock.write(path, &body, true)?;
        tracing::info!(path = %path.display(), "holder token created");
        Ok(Token {
            path: path.to_owned(),
            body,
        })
    }

    /// Opens and validates an existing token. A damaged, truncated or foreign file is an
    /// error ([`Error::Corrupt`], [`Error::Version`]); it is never repaired or reset.
    pub fn open(path: &Path) -> Result<Token, Error> {
        let body = file::read(path)?;
        Ok(Token {
            path: path.to_owned(),
            body,
        })
    }

    /// What the token stands for (card or smartphone).
    pub fn kind(&self) -> TokenKind {
        self.body.kind
    }

    /// Where the token lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The counters and certificates, as last read (no PIN needed, no try spent).
    pub fn status(&self) -> Status {
        let key = |kind| {
            let slot = self.body.slot(kind);
            let cert = slot
                .certificate
                .as_ref()
                .and_then(|der| Certificate::from_der(der).ok());
            KeyStatus {
                kind,
                tries_left: slot.pin.tries_left,
                max_tries: max_tries(kind),
                locked: slot.pin.tries_left == 0,
                key_fingerprint: crypto::sha256(&slot.public_key),
                certificate_subject: cert
                    .as_ref()
                    .map(|c| c.tbs_certificate().subject().to_string()),
                certificate_serial: cert
                    .as_ref()
                    .map(|c| hex_string(c.tbs_certificate().serial_number().as_bytes())),
            }
        };
        Status {
            signing: key(Hierarchy::Signing),
            auth: key(Hierarchy::Auth),
        }
    }

    /// The SubjectPublicKeyInfo DER of a key.
    pub fn public_key(&self, kind: Hierarchy) -> &[u8] {
        &self.body.slot(kind).public_key
    }

    /// The imported certificate (DER) of a key, if any.
    pub fn certificate(&self, kind: Hierarchy) -> Option<&[u8]> {
        self.body.slot(kind).certificate.as_deref()
    }

    /// Re-reads the file under the lock.
    fn reload(&mut self) -> Result<DirLock, Error> {
        let lock = DirLock::acquire(&self.path)?;
        self.body = file::read(&self.path)?;
        Ok(lock)
    }

    /// The PIN check. Spends a try durably before the PIN is tried and gives it back on
    /// success, so killing the process mid-check cannot buy a free try. Returns the KEK of
    /// the PIN and the key's own data key.
    fn verify(
        &mut self,
        lock: &DirLock,
        kind: Hierarchy,
        pin: &str,
    ) -> Result<(SecretKey, SecretKey), Error> {
        let slot = self.body.slot_mut(kind);
        if slot.pin.tries_left == 0 {
            return Err(Error::Locked { kind });
        }
        slot.pin.tries_left -= 1;
        let remaining = slot.pin.tries_left;
        lock.write(&self.path, &self.body, false)?;
        #[cfg(test)]
        if tests::CRASH_BEFORE_CHECK.with(|c| c.get()) {
            return Err(Error::Crypto("simulated crash before the PIN check"));
        }

        let slot = self.body.slot(kind);
        let kek = crypto::derive(pin, &slot.pin.kdf)?;
        let Some(data_key) = crypto::open_key(&kek, &aad_data_key(kind, kind), &slot.pin.own_key)?
        else {
            // The caller reports the error; a warning here would print a second line.
            tracing::debug!(kind = kind.as_str(), remaining, "wrong PIN");
            return Err(Error::WrongPin { kind, remaining });
        };
        self.body.slot_mut(kind).pin.tries_left = max_tries(kind);
        lock.write(&self.path, &self.body, false)?;
        Ok((kek, data_key))
    }

    /// Checks the PIN and decrypts the private key of `kind`. Refuses before spending a try
    /// when the PIN has the wrong shape.
    fn unlock(&mut self, kind: Hierarchy, pin: &str) -> Result<RsaKeyPair, Error> {
        let pin = normalize(kind, pin)?;
        let lock = self.reload()?;
        let (_kek, data_key) = self.verify(&lock, kind, &pin)?;
        let slot = self.body.slot(kind);
        let pkcs8 = crypto::open(
            &data_key,
            &aad_private_key(kind, &slot.public_key),
            &slot.private_key,
        )?
        .ok_or_else(|| {
            self.corrupt(format!(
                "the {} private key fails authentication",
                kind.as_str()
            ))
        })?;
        crypto::load_rsa(&pkcs8, &slot.public_key)
    }

    fn corrupt(&self, reason: String) -> Error {
        Error::Corrupt {
            path: self.path.clone(),
            reason,
        }
    }

    /// A PKCS#10 request (RFC 2986) for the key of `kind`, DER, self-signed with that key.
    /// The subject is a placeholder: the CA takes names only from the resident register.
    pub fn csr(&mut self, kind: Hierarchy, pin: &str) -> Result<Vec<u8>, Error> {
        let pair = self.unlock(kind, pin)?;
        let spki = self.body.slot(kind).public_key.clone();
        let der = pkcs::csr(&spki, |msg| crypto::sign(&pair, msg))?;
        tracing::info!(kind = kind.as_str(), "certificate request made");
        Ok(der)
    }

    /// Stores a certificate (PEM or DER) beside the key whose public key it carries, and
    /// returns that key's kind. A certificate for neither key is refused. No PIN needed: a
    /// certificate is public.
    pub fn import_cert(&mut self, cert: &[u8]) -> Result<Hierarchy, Error> {
        let parsed = match Certificate::from_der(cert) {
            Ok(c) => c,
            Err(der_err) => Certificate::from_pem(cert).map_err(|pem_err| {
                Error::Certificate(format!("neither DER ({der_err}) nor PEM ({pem_err})"))
            })?,
        };
        let der = parsed.to_der()?;
        let spki = parsed
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()?;
        let lock = self.reload()?;
        let kind = Hierarchy::ALL
            .into_iter()
            .find(|k| self.body.slot(*k).public_key == spki)
            .ok_or(Error::CertMismatch)?;
        self.body.slot_mut(kind).certificate = Some(der);
        lock.write(&self.path, &self.body, false)?;
        tracing::info!(kind = kind.as_str(), "certificate imported");
        Ok(kind)
    }

    /// CMS SignedData (RFC 5652 §5) over `content` with the signing key and its imported
    /// certificate; `signing_time` goes into the signingTime attribute. Returns the DER
    /// ContentInfo. The certificate is checked before the PIN, so a missing one costs no try.
    pub fn sign_cms(
        &mut self,
        pin: &str,
        content: &[u8],
        encapsulation: Encapsulation,
        signing_time: OffsetDateTime,
    ) -> Result<Vec<u8>, Error> {
        normalize(Hierarchy::Signing, pin)?;
        let lock = self.reload()?;
        let cert_der = self
            .body
            .signing
            .certificate
            .clone()
            .ok_or(Error::NoCertificate {
                kind: Hierarchy::Signing,
            })?;
        drop(lock);
        let pair = self.unlock(Hierarchy::Signing, pin)?;
        let cert = Certificate::from_der(&cert_der)?;
        let der = pkcs::signed_data(&cert, content, encapsulation, signing_time, |msg| {
            crypto::sign(&pair, msg)
        })?;
        tracing::info!(bytes = content.len(), "CMS signature made");
        Ok(der)
    }

    /// Signs `challenge` with the authentication key: raw sha256WithRSAEncryption
    /// (PKCS#1 v1.5), as the card answers a login challenge.
    pub fn login(&mut self, pin: &str, challenge: &[u8]) -> Result<Vec<u8>, Error> {
        let pair = self.unlock(Hierarchy::Auth, pin)?;
        let sig = crypto::sign(&pair, challenge)?;
        tracing::info!("login challenge signed");
        Ok(sig)
    }

    /// The counter flow (reference §7): verifies the OTHER key's PIN (spending one of its
    /// tries if wrong), sets `new_pin` for `kind` and restores its counter. Works whether or
    /// not `kind` is locked; refuses if the other key is locked.
    pub fn reset(&mut self, kind: Hierarchy, other_pin: &str, new_pin: &str) -> Result<(), Error> {
        let other_kind = other(kind);
        let other_pin = normalize(other_kind, other_pin)?;
        let new_pin = normalize(kind, new_pin)?;
        let lock = self.reload()?;
        let (other_kek, other_data_key) = self.verify(&lock, other_kind, &other_pin)?;
        let data_key = crypto::open_key(
            &other_kek,
            &aad_data_key(kind, other_kind),
            &self.body.slot(other_kind).pin.other_key,
        )?
        .ok_or_else(|| {
            self.corrupt(format!(
                "the {} key's recovery copy fails authentication",
                kind.as_str()
            ))
        })?;
        let slot = self.body.slot_mut(kind);
        slot.pin = pin_slot(kind, &new_pin, &data_key, &other_data_key)?;
        lock.write(&self.path, &self.body, false)?;
        tracing::info!(kind = kind.as_str(), "PIN reset");
        Ok(())
    }
}

impl Token {
    /// The municipality whose counter can reset this token's PINs, if it was enrolled.
    pub fn counter_municipality(&self) -> Option<&str> {
        self.body.counter.as_ref().map(|c| c.municipality.as_str())
    }

    /// Enrols a token made without a counter key with one (at the counter, the holder enters
    /// one PIN of `kind`): both data keys are encrypted to the counter's public key, replacing
    /// any earlier enrolment. A wrong PIN spends a try, as always.
    pub fn enrol_counter(
        &mut self,
        kind: Hierarchy,
        pin: &str,
        counter: &crate::counter::CounterPublic,
    ) -> Result<(), Error> {
        let pin = normalize(kind, pin)?;
        let lock = self.reload()?;
        let (kek, own) = self.verify(&lock, kind, &pin)?;
        let other_kind = other(kind);
        let theirs = crypto::open_key(
            &kek,
            &aad_data_key(other_kind, kind),
            &self.body.slot(kind).pin.other_key,
        )?
        .ok_or_else(|| self.corrupt("the other key's recovery copy fails authentication".into()))?;
        let (signing, auth) = match kind {
            Hierarchy::Signing => (&own, &theirs),
            Hierarchy::Auth => (&theirs, &own),
        };
        self.body.counter = Some(file::CounterSlot {
            municipality: counter.municipality.clone(),
            key_id: crate::counter::key_id(&counter.public_key),
            data_keys: counter.seal_data_keys(signing, auth)?,
        });
        lock.write(&self.path, &self.body, false)?;
        tracing::info!(municipality = %counter.municipality, "token enrolled with a counter key");
        Ok(())
    }

    /// The municipal counter's reset (the holder's identity checked at the counter, see
    /// [`crate::counter`]): a new PIN for `kind` and a full counter, without the other PIN,
    /// with the counter key the token was enrolled with. Another counter's key is refused
    /// ([`Error::CounterMismatch`]) and changes nothing; a token never enrolled is
    /// [`Error::NoCounter`].
    pub fn counter_reset(
        &mut self,
        kind: Hierarchy,
        counter: &crate::counter::CounterKey,
        new_pin: &str,
    ) -> Result<(), Error> {
        let new_pin = normalize(kind, new_pin)?;
        let lock = self.reload()?;
        let Some(slot) = self.body.counter.clone() else {
            return Err(Error::NoCounter);
        };
        if slot.key_id != counter.key_id() || slot.municipality != counter.municipality {
            return Err(Error::CounterMismatch {
                token: slot.municipality,
                key: counter.municipality.clone(),
            });
        }
        let (signing_key, auth_key) =
            counter.open_data_keys(&slot.data_keys)?.ok_or_else(|| {
                self.corrupt("the counter's copy of the data keys does not decrypt".into())
            })?;
        let (own, theirs) = match kind {
            Hierarchy::Signing => (signing_key, auth_key),
            Hierarchy::Auth => (auth_key, signing_key),
        };
        // The data key must open the private key it guards: a wrong blob changes nothing.
        let s = self.body.slot(kind);
        crypto::open(&own, &aad_private_key(kind, &s.public_key), &s.private_key)?
            .ok_or_else(|| self.corrupt("the counter's copy of the data key is wrong".into()))?;
        self.body.slot_mut(kind).pin = pin_slot(kind, &new_pin, &own, &theirs)?;
        lock.write(&self.path, &self.body, false)?;
        tracing::info!(kind = kind.as_str(), "PIN reset at the counter");
        Ok(())
    }
}

/// A PIN slot for `kind` under `pin` (canonical), wrapping this slot's data key and the
/// other slot's, with a fresh salt and a full counter.
fn pin_slot(
    kind: Hierarchy,
    pin: &str,
    own: &SecretKey,
    theirs: &SecretKey,
) -> Result<PinSlot, Error> {
    let kdf = crypto::new_kdf()?;
    let kek = crypto::derive(pin, &kdf)?;
    Ok(PinSlot {
        own_key: crypto::seal(&kek, &aad_data_key(kind, kind), own.as_ref())?,
        other_key: crypto::seal(&kek, &aad_data_key(other(kind), kind), theirs.as_ref())?,
        kdf,
        tries_left: max_tries(kind),
    })
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::Cell;

    use super::*;

    thread_local! {
        /// Makes [`Token::verify`] stop right after the durable decrement, as a kill would.
        pub(crate) static CRASH_BEFORE_CHECK: Cell<bool> = const { Cell::new(false) };
    }

    fn token(dir: &Path) -> Token {
        Token::create(&dir.join("t.json"), "ABC123", "1234").unwrap()
    }

    #[test]
    fn a_phone_token_says_so_and_a_card_file_keeps_its_shape() {
        let dir = tempfile::tempdir().unwrap();
        let card = token(dir.path());
        assert_eq!(card.kind(), TokenKind::Card);
        let text = std::fs::read_to_string(dir.path().join("t.json")).unwrap();
        assert!(!text.contains("\"kind\""), "card files are unchanged");
        let p = dir.path().join("phone.json");
        let mut phone = Token::create_kind(&p, "ABC123", "1234", TokenKind::Phone).unwrap();
        assert_eq!(phone.kind().token_name(), "JPKIAPGPSETOKEN");
        let reopened = Token::open(&p).unwrap();
        assert_eq!(reopened.kind(), TokenKind::Phone);
        // A phone answers the same operations with its own keys.
        assert!(!phone.csr(Hierarchy::Auth, "1234").unwrap().is_empty());
        assert_ne!(
            reopened.public_key(Hierarchy::Auth),
            card.public_key(Hierarchy::Auth)
        );
    }

    #[test]
    fn the_try_is_spent_on_disk_before_the_pin_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = token(dir.path());
        CRASH_BEFORE_CHECK.with(|c| c.set(true));
        // even the right PIN: the process "dies" after the decrement, before the check
        assert!(t.login("1234", b"c").is_err());
        CRASH_BEFORE_CHECK.with(|c| c.set(false));
        assert_eq!(Token::open(t.path()).unwrap().status().auth.tries_left, 2);
        // the next good PIN restores the counter
        t.login("1234", b"c").unwrap();
        assert_eq!(Token::open(t.path()).unwrap().status().auth.tries_left, 3);
    }

    #[test]
    fn blobs_moved_between_slots_fail_authentication() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = token(dir.path());
        let path = t.path().to_owned();
        // an attacker who rewrites the file (checksum recomputed) swaps the sealed keys
        let mut body = file::read(&path).unwrap();
        std::mem::swap(&mut body.signing.private_key, &mut body.auth.private_key);
        DirLock::acquire(&path)
            .unwrap()
            .write(&path, &body, false)
            .unwrap();
        let err = t.login("1234", b"c").unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
        // swapping the wrapped data keys instead looks like a wrong PIN: it cannot unlock
        let mut body = file::read(&path).unwrap();
        std::mem::swap(&mut body.signing.private_key, &mut body.auth.private_key);
        std::mem::swap(&mut body.auth.pin.own_key, &mut body.auth.pin.other_key);
        body.auth.pin.tries_left = 3;
        DirLock::acquire(&path)
            .unwrap()
            .write(&path, &body, false)
            .unwrap();
        assert!(matches!(t.login("1234", b"c"), Err(Error::WrongPin { .. })));
        // a public key replaced by another valid one breaks the private key's binding
        let mut body = file::read(&path).unwrap();
        std::mem::swap(&mut body.auth.pin.own_key, &mut body.auth.pin.other_key);
        body.auth.pin.tries_left = 3;
        body.auth.public_key = body.signing.public_key.clone();
        DirLock::acquire(&path)
            .unwrap()
            .write(&path, &body, false)
            .unwrap();
        assert!(matches!(t.login("1234", b"c"), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn status_reports_counters_without_a_pin() {
        let dir = tempfile::tempdir().unwrap();
        let t = token(dir.path());
        let s = t.status();
        assert_eq!((s.signing.tries_left, s.signing.max_tries), (5, 5));
        assert_eq!((s.auth.tries_left, s.auth.max_tries), (3, 3));
        assert!(!s.signing.locked && !s.auth.locked);
        assert_ne!(s.signing.key_fingerprint, s.auth.key_fingerprint);
        assert!(s.signing.certificate_subject.is_none());
    }
}
