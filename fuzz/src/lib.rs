//! The bodies of the fuzz targets in `fuzz_targets/`, kept here so that the stable test
//! `tests/fuzz_seeds.rs` replays the committed seeds (`seeds/<target>/`) through exactly what
//! libFuzzer runs. Each takes arbitrary bytes, must not panic, and says whether the input
//! was accepted (the seed replay checks `ok-*` seeds are and `bad-*` seeds are not); where a parser's answer can
//! be checked cheaply (an accepted request encodes and decodes again), it is.

use base64::Engine;

/// The minimum RSA size of the default policy: what `jpki issue` asks of a CSR.
const MIN_BITS: usize = 2048;

/// A PKCS#10 request as `jpki issue --csr FILE` and the admin socket read it (PEM or DER).
pub fn csr(data: &[u8]) -> bool {
    match ca::csr::verify(data, MIN_BITS) {
        Ok(v) => {
            assert!(v.bits >= MIN_BITS);
            true
        }
        Err(_) => false,
    }
}

/// One line of the admin socket as `jpki serve` reads it: a CA request, else a platform
/// request; a CA request carried back out to JSON must read in again, and the CSR of an
/// `issue` request goes through the CSR check.
pub fn admin_request(data: &[u8]) -> bool {
    let Ok(line) = std::str::from_utf8(data) else {
        return false;
    };
    match serde_json::from_str::<ca::api::Request>(line) {
        Ok(req) => {
            let again = serde_json::to_string(&req).expect("a request encodes");
            if let Err(e) = serde_json::from_str::<ca::api::Request>(&again) {
                panic!("request {again} does not read back: {e}");
            }
            match req {
                ca::api::Request::Issue { csr_base64, .. } => {
                    if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(csr_base64) {
                        return csr(&der);
                    }
                    false
                }
                ca::api::Request::Revoke { serial, .. }
                | ca::api::Request::CertShow { serial, .. } => {
                    ca::authority::parse_serial(&serial).is_ok()
                }
                ca::api::Request::RevocationCheck { serials, .. } => serials
                    .iter()
                    .all(|s| ca::authority::parse_serial(s).is_ok()),
                _ => true,
            }
        }
        Err(_) => platform::fuzz_decode(u8::MAX, data),
    }
}

/// A `/v1` request body of the platform-operator API; the first byte picks the call.
pub fn platform_json(data: &[u8]) -> bool {
    data.split_first()
        .is_some_and(|(route, body)| platform::fuzz_decode(*route, body))
}

/// The `jpki serve --config` file, read and checked as `jpki serve` does
/// ([`jpki::serve::Config::validate`], under the default policy): as given, and with `--http`
/// set as the command line sets it (a file need not name a listener). Accepted: read, and valid
/// with `--http`. A refusal must name its field; what is accepted must hold together.
pub fn config(data: &[u8]) -> bool {
    static POLICY: std::sync::OnceLock<policies::Policy> = std::sync::OnceLock::new();
    let policy = POLICY.get_or_init(policies::Policy::default_policy);
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(mut cfg) = toml::from_str::<jpki::serve::Config>(text) else {
        return false;
    };
    let dir = std::path::Path::new("/var/lib/jpki");
    let named_field = |r: &jpki::Result<jpki::serve::Settings>| match r {
        Err(jpki::Error::Config(m)) => {
            assert!(m.starts_with("serve configuration field `"), "{m}");
        }
        Err(e) => panic!("validate answered {e:?}, not a configuration error"),
        Ok(_) => {}
    };
    let as_given = cfg.validate(dir, policy);
    named_field(&as_given);
    let l = &cfg.listen;
    if l.http.is_none() && l.pf_https.is_none() && l.portal.is_none() && l.tsa.is_none() {
        assert!(
            as_given.is_err(),
            "a configuration without a listener was accepted"
        );
    }
    cfg.listen.http = Some("127.0.0.1:8080".into());
    let with_flag = cfg.validate(dir, policy);
    named_field(&with_flag);
    match with_flag {
        Ok(s) => {
            assert!(s.http.is_some());
            assert!(s.crl.batch_delay <= s.crl.dirty_bound);
            assert!(!s.crl.dirty_bound.is_zero() && !s.limits.idle.is_zero());
            assert!((1..=s.limits.max_connections).contains(&s.limits.max_per_client));
            assert!(s.crl_dir.is_absolute(), "{}", s.crl_dir.display());
            assert!(s.compact_journal_bytes.is_none_or(|b| b >= 64 * 1024));
            true
        }
        Err(_) => {
            // A file valid as given stays valid with another HTTP address.
            assert!(as_given.is_err(), "valid as given, refused with --http");
            false
        }
    }
}

/// The store's journal or snapshot file as it is read on open (and a record payload).
/// Accepted: at least one whole record.
pub fn journal(data: &[u8]) -> bool {
    ca::storage::sled::fuzz_read_records(data) > 0
}
