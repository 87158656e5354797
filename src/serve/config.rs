//! The `jpki serve` configuration file's types: only serde and plain data, so that the fuzz
//! target `config` (`fuzz/`) and its seed replay (`tests/fuzz_seeds.rs`) read a file exactly
//! as `jpki serve` does. Checking the values is [`super::Config::validate`]'s.

use std::path::PathBuf;

use serde::Deserialize;

/// The `jpki serve` configuration file (TOML). Every field is optional; command-line flags
/// override the file. See `docs/serve.md`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub listen: Listen,
    #[serde(default)]
    pub crl: CrlConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub ocsp: OcspConfig,
}

/// Signed checkpoints of the audit chain (`ca::checkpoint`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Sign a checkpoint of the chain's head this often, in seconds (and always when the
    /// server stops); 0: only when it stops.
    pub checkpoint_interval_seconds: u64,
}

impl Default for AuditConfig {
    fn default() -> AuditConfig {
        AuditConfig {
            checkpoint_interval_seconds: 3600,
        }
    }
}

/// The remote admin API's per-officer rate limit (a token bucket per client key).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Requests an officer may make per minute, on average.
    pub requests_per_minute: u32,
    /// Requests an officer may make at once before the rate applies.
    pub burst: u32,
}

impl Default for AdminConfig {
    fn default() -> AdminConfig {
        AdminConfig {
            requests_per_minute: 600,
            burst: 60,
        }
    }
}

/// The OCSP responder's pre-signing (issue #14).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OcspConfig {
    /// Signatures per second the pre-signer may make to keep every certificate's answer
    /// signed ahead (the bound on the CPU it takes; size it to certificates ÷ the answer's
    /// life).
    pub presign_per_second: u32,
    /// Answers kept in the memory front at most (the hot ones).
    pub memory_answers: usize,
}

impl Default for OcspConfig {
    fn default() -> OcspConfig {
        OcspConfig {
            presign_per_second: 200,
            memory_answers: 64 << 10,
        }
    }
}

/// Connection discipline for every listener (`conn-guard`): caps and the idle timeout.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Open connections per listener at most (lowered to fit the descriptor limit).
    pub max_connections: usize,
    /// Open connections per client address and listener at most.
    pub max_per_client: usize,
    /// A connection that sends nothing for this many seconds is closed.
    pub idle_seconds: u64,
}

impl Default for LimitsConfig {
    fn default() -> LimitsConfig {
        let d = conn_guard::Limits::default();
        LimitsConfig {
            max_connections: d.max_connections,
            max_per_client: d.max_per_client,
            idle_seconds: d.idle.as_secs(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Compact the store (snapshot + shortened journal, docs/store.md) when its journal passes
    /// this many KiB; 0 never (run `jpki store compact` from cron instead).
    pub compact_journal_kib: u64,
    /// MiB of page cache for the CA store's sled engine (decoded tree pages kept in memory):
    /// the bound on what of the store the server keeps resident, whatever its size.
    pub cache_mib: u64,
}

/// `[store] cache_mib` when not given.
pub const DEFAULT_STORE_CACHE_MIB: u64 = 256;

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            compact_journal_kib: 256 * 1024,
            cache_mib: DEFAULT_STORE_CACHE_MIB,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// CRLs (`/crl/...`) and OCSP (`/ocsp`) over plain HTTP **to anyone**, e.g.
    /// `127.0.0.1:8080`: the older name of `public_http`.
    pub http: Option<String>,
    /// CRLs and OCSP over plain HTTP to anyone: an explicit choice (JPKI gives revocation
    /// data to registered parties only; docs/serve.md).
    pub public_http: Option<String>,
    /// CRLs and OCSP over mutual TLS for registered verifiers and platform operators only,
    /// e.g. `127.0.0.1:8444`.
    pub verifiers_https: Option<String>,
    /// Host names (or IPs) verifiers use to reach it, for its server certificate.
    #[serde(default)]
    pub verifiers_names: Vec<String>,
    /// The platform-operator API over mutual TLS, e.g. `127.0.0.1:9443`.
    pub pf_https: Option<String>,
    /// The RFC 3161 time-stamping authority over plain HTTP, e.g. `127.0.0.1:3180`
    /// (its own listener: docs/tsa.md says why).
    pub tsa: Option<String>,
    /// Host names (or IPs) platform operators use to reach the API; they go into its server
    /// certificate beside the listening IP.
    #[serde(default)]
    pub pf_names: Vec<String>,
    /// The holder portal over HTTPS, e.g. `127.0.0.1:8443` (docs/portal.md).
    pub portal: Option<String>,
    /// Host names (or IPs) holders use to reach the portal; they go into its server
    /// certificate beside the listening IP.
    #[serde(default)]
    pub portal_names: Vec<String>,
    /// The remote admin API over mutual TLS (officers' client certificates from the operator
    /// CA), e.g. `127.0.0.1:9444` (docs/officers.md).
    pub admin_https: Option<String>,
    /// Host names (or IPs) officers use to reach the admin API; they go into its server
    /// certificate beside the listening IP.
    #[serde(default)]
    pub admin_names: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrlConfig {
    /// Where the served CRL files live; relative paths are inside the data directory.
    pub dir: PathBuf,
    /// A partition marked dirty by a revocation is re-published within this many seconds.
    pub dirty_bound_seconds: u64,
    /// Revocations arriving within this many seconds of the first are built into one CRL.
    pub batch_delay_seconds: u64,
    /// Every CRL is re-signed this many hours before its nextUpdate.
    pub resign_margin_hours: u32,
}

impl Default for CrlConfig {
    fn default() -> CrlConfig {
        CrlConfig {
            dir: PathBuf::from("crl"),
            dirty_bound_seconds: 60,
            batch_delay_seconds: 2,
            resign_margin_hours: 6,
        }
    }
}
