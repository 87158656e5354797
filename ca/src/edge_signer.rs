//! Edges' OCSP signers, renewed through the store (docs/deployment.md, "OCSP signer renewal
//! on edges"). The edge makes its next signer key itself and never hands it over; the CA
//! node never hands over a root key. What travels is a PKCS#10 request (RFC 2986) one way and
//! a certificate the other, through [`SignerRequest`] rows of the store:
//!
//! 1. the edge, once its signer is within the policy's `validity.ocsp_signer_renew_days`,
//!    makes a new RSA-2048 key (encrypted under its own passphrase, 0600), a CSR signed by it
//!    ([`make_csr`]), and files the request ([`file_request`]): checked here first — the
//!    CSR's self-signature (proof of possession), the key neither a root's nor on the
//!    blocklist — and stored with the audit record `edge-signer-request`; bad input stores
//!    nothing;
//! 2. a CA node ([`crate::Authority::certify_signer_requests`]) judges every pending request
//!    again with the same rules ([`judge`], the row may have been written by anyone with
//!    database access), plus: the generation is the hierarchy's newest, and the edge's signer
//!    in force is an OCSP signer of that hierarchy within its margin; then issues the
//!    certificate with the one function `jpki init` and every renewal use, and stores it in
//!    the request in the same unit of work as the certificate record (`edge-signer-issue`), or
//!    stores the refusal (`edge-signer-refuse`);
//! 3. the edge reads the answer, checks that the certificate is for its pending key and
//!    chains to the root of that generation, and swaps it into its responder.

use std::str::FromStr;

use der::{Decode, Encode};
use policies::Hierarchy;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::storage::{self, SignerRequest, Storage};

/// sha256WithRSAEncryption (RFC 4055 §5).
const SHA256_RSA: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");

/// Smallest RSA key an edge's signer may have.
pub const MIN_BITS: usize = 2048;

/// Refuses a node name that is empty, longer than 64 bytes, or holds anything but ASCII
/// letters, digits, `.`, `_` and `-` (it is a key in every engine and appears in logs).
pub fn check_node(node: &str) -> Result<()> {
    if node.is_empty()
        || node.len() > 64
        || !node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(Error::Invalid(format!(
            "edge node name `{}` must be 1–64 ASCII letters, digits, `.`, `_` or `-`",
            node.escape_debug()
        )));
    }
    Ok(())
}

/// Signs a message with the key a CSR is for.
pub type SignWith<'a> = dyn Fn(&[u8]) -> std::result::Result<Vec<u8>, policies::SignError> + 'a;

/// A PKCS#10 request (DER) for the key whose SubjectPublicKeyInfo is `spki`, subject
/// `CN=<node>` (the CA ignores it: the profile decides the signer's names), signed with
/// sha256WithRSAEncryption by `sign` — the new key itself.
pub fn make_csr(node: &str, spki: &[u8], sign: &SignWith<'_>) -> Result<Vec<u8>> {
    use x509_cert::request::{CertReq, CertReqInfo, Version};
    check_node(node)?;
    let bad = |e: der::Error| Error::Invalid(format!("CSR encoding: {e}"));
    let info = CertReqInfo {
        version: Version::V1,
        subject: x509_cert::name::Name::from_str(&format!("CN={node}"))
            .map_err(|e| Error::Invalid(format!("CSR subject: {e}")))?,
        public_key: spki::SubjectPublicKeyInfoOwned::from_der(spki).map_err(bad)?,
        attributes: Default::default(),
    };
    let tbs = info.to_der().map_err(bad)?;
    let sig = sign(&tbs)?;
    CertReq {
        info,
        algorithm: spki::AlgorithmIdentifierOwned {
            oid: SHA256_RSA,
            parameters: Some(der::asn1::Null.into()),
        },
        signature: der::asn1::BitString::from_bytes(&sig).map_err(bad)?,
    }
    .to_der()
    .map_err(bad)
}

/// The rules every signer request meets, on the edge before it is stored and on the CA node
/// before it is certified: a well-formed CSR whose self-signature verifies (proof of
/// possession), RSA ≥ [`MIN_BITS`] with e = 65537; its key is none of `root_spkis` (a root's
/// key never signs OCSP answers) and not on the blocklist. Returns the key's SPKI.
pub fn judge(store: &dyn Storage, csr: &[u8], root_spkis: &[Vec<u8>]) -> Result<Vec<u8>> {
    let v = crate::csr::verify(csr, MIN_BITS)?;
    if root_spkis.contains(&v.spki) {
        return Err(Error::Refused(
            "the request's key is a root's key: a root key never serves as an OCSP signer".into(),
        ));
    }
    let fp = storage::fingerprint(&v.spki);
    if store.key_blocked(&fp)? {
        return Err(Error::KeyBlocked(hex::encode(fp)));
    }
    Ok(v.spki)
}

/// Files an edge node's signer request (see the module docs): judged first ([`judge`]), then
/// stored — replacing an earlier request of the same node, hierarchy and generation — with
/// the audit record `edge-signer-request` by the actor of the current scope, in one unit of
/// work. Bad input returns the error and stores nothing.
#[allow(clippy::too_many_arguments)]
pub fn file_request(
    store: &dyn Storage,
    node: &str,
    h: Hierarchy,
    generation: u32,
    csr: &[u8],
    in_force: &[u8],
    root_spkis: &[Vec<u8>],
    now: OffsetDateTime,
) -> Result<()> {
    check_node(node)?;
    if generation == 0 {
        return Err(Error::Invalid("root generations start at 1".into()));
    }
    let spki = judge(store, csr, root_spkis)?;
    let request = SignerRequest {
        node: node.to_owned(),
        hierarchy: h,
        generation,
        csr: csr.to_vec(),
        in_force: in_force.to_vec(),
        requested_at: now,
        answer: None,
    };
    let detail = format!(
        "generation {generation}; key {}; replaces signer {}",
        hex::encode(storage::fingerprint(&spki)),
        hex::encode_upper(in_force)
    );
    store.transact(&|t| {
        t.put_signer_request(&request)?;
        storage::audit(
            t,
            now,
            "edge-signer-request",
            &format!("{node} {h}"),
            &detail,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryStorage;

    fn key() -> crate::keys::NewKey {
        crate::keys::generate().unwrap()
    }

    fn csr_of(k: &crate::keys::NewKey) -> Vec<u8> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        make_csr("edge-1", &k.spki, &|m| {
            crate::keys::sign_with(&k.pair, &rng, m)
        })
        .unwrap()
    }

    #[test]
    fn a_request_is_filed_and_bad_ones_store_nothing() {
        let s = MemoryStorage::new();
        let now = crate::storage::conformance::at(1000);
        let (root, blocked, good) = (key(), key(), key());
        let roots = vec![root.spki.clone()];
        s.transact(&|t| t.block_key(&storage::fingerprint(&blocked.spki)))
            .unwrap();
        let h = Hierarchy::Signing;
        let head = s.audit_head().unwrap();

        // A CSR whose signature was tampered with: no proof of possession.
        let mut tampered = csr_of(&good);
        let n = tampered.len();
        tampered[n - 5] ^= 0x55;
        let e = file_request(&s, "edge-1", h, 1, &tampered, b"\x01", &roots, now).unwrap_err();
        assert!(e.to_string().contains("does not verify"), "{e}");
        // A root's key, and a blocked key.
        let e = file_request(&s, "edge-1", h, 1, &csr_of(&root), b"\x01", &roots, now).unwrap_err();
        assert!(e.to_string().contains("a root's key"), "{e}");
        let e =
            file_request(&s, "edge-1", h, 1, &csr_of(&blocked), b"\x01", &roots, now).unwrap_err();
        assert!(matches!(e, Error::KeyBlocked(_)), "{e}");
        // Garbage, a bad node name, generation 0.
        let e = file_request(&s, "edge-1", h, 1, b"garbage", b"\x01", &roots, now).unwrap_err();
        assert!(matches!(e, Error::Csr(_)), "{e}");
        let e = file_request(&s, "edge 1", h, 1, &csr_of(&good), b"\x01", &roots, now).unwrap_err();
        assert!(e.to_string().contains("edge node name"), "{e}");
        let e = file_request(&s, "edge-1", h, 0, &csr_of(&good), b"\x01", &roots, now).unwrap_err();
        assert!(e.to_string().contains("generation"), "{e}");
        // Nothing stored, nothing audited.
        assert_eq!(s.signer_request("edge-1", h, 1).unwrap(), None);
        assert!(s.pending_signer_requests().unwrap().is_empty());
        assert_eq!(s.audit_head().unwrap(), head);

        // A good one is stored and audited.
        let csr = csr_of(&good);
        file_request(&s, "edge-1", h, 1, &csr, b"\x01", &roots, now).unwrap();
        let r = s.signer_request("edge-1", h, 1).unwrap().unwrap();
        assert_eq!((r.csr, r.in_force, r.answer), (csr, vec![1], None));
        let last = s.audit_records(0, 100).unwrap().pop().unwrap();
        assert_eq!(last.action, "edge-signer-request");
        assert_eq!(last.subject, "edge-1 signing");
        // The CSR is one OpenSSL-style PKCS#10 request the CSR intake accepts as is.
        assert_eq!(
            crate::csr::verify(&csr_of(&good), MIN_BITS).unwrap().spki,
            good.spki
        );
    }
}
