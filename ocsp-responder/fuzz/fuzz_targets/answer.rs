//! The whole answer path on arbitrary bytes: parse, issuer match, status lookup, signing,
//! cache. The fixture root is deterministic (a fixed throwaway test key, `fixture-key.pem`), so
//! seeds made for it stay valid: run once with `OCSP_FUZZ_ROOT=root.pem` to write the root, then
//! `openssl ocsp -issuer root.pem -serial 1 -reqout seed.der` (and variants) into the corpus.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use ocsp_responder::{Issuer, MemorySource, Responder, ResponseStatus, Settings, SystemClock};
use policies::{Hierarchy, Policy, SignError, Signer};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, PKCS_RSA_SHA256};

struct KeySigner(KeyPair, Vec<u8>);

impl Signer for KeySigner {
    fn sign(&self, m: &[u8]) -> Result<Vec<u8>, SignError> {
        rcgen::SigningKey::sign(&self.0, m).map_err(|e| SignError(e.to_string()))
    }
    fn certificate(&self) -> &[u8] {
        &self.1
    }
}

fn responder() -> &'static Responder {
    static R: OnceLock<Responder> = OnceLock::new();
    R.get_or_init(|| {
        let key =
            KeyPair::from_pem_and_sign_algo(include_str!("../fixture-key.pem"), &PKCS_RSA_SHA256)
                .unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.serial_number = Some(rcgen::SerialNumber::from_slice(&[1]));
        let root_cert = p.self_signed(&key).unwrap();
        if let Ok(path) = std::env::var("OCSP_FUZZ_ROOT") {
            std::fs::write(path, root_cert.pem()).unwrap();
        }
        let root = root_cert.der().to_vec();
        let source = Arc::new(MemorySource::new());
        for s in 1u8..=8 {
            source.issue(Hierarchy::Signing, &[s]);
        }
        source.revoke(
            Hierarchy::Signing,
            &[2],
            time::OffsetDateTime::now_utc(),
            policies::Reason::KeyCompromise,
        );
        // the root signs its own answers here: enough to exercise the path
        let signer = Arc::new(KeySigner(key, root.clone()));
        let issuers = vec![Issuer {
            hierarchy: Hierarchy::Signing,
            root,
            signer,
        }];
        let settings = Settings::from_policy(&Policy::default_policy());
        Responder::new(settings, issuers, source, Arc::new(SystemClock)).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let a = responder().answer_blocking(data);
    // an answer is always a DER OCSPResponse; success only with a signature
    assert!(a.der.len() >= 5 && a.der[0] == 0x30);
    assert_eq!(a.status == ResponseStatus::Successful, a.der.len() > 5);
});
