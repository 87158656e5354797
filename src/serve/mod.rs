//! `jpki serve`: the CRL publisher, the OCSP responder and (when built in) the platform-operator
//! API in one process that owns the store, plus a local admin socket through which the `jpki`
//! CLI's commands reach the same [`ca::Authority`] while the server runs.
//!
//! Start-up: the configuration file ([`Config`], `docs/serve.md`) is read and validated (a bad
//! value names its field and stops the program); the store is opened (its lock keeps other
//! processes out); OCSP signers within their renewal margin are renewed ([`renew`]); the CRL
//! publisher and OCSP responder get the roots and delegated OCSP signers;
//! the authority's revocation listener is set so that every revocation replaces the cached OCSP
//! answer and marks its CRL partition dirty before the revoking call returns. Each listener is
//! logged with the address it actually bound. While running, [`renew::Watch`] renews the OCSP
//! signers and the platform API's server certificate in place and exports every dependency's
//! expiry in `/metrics` (docs/operations.md). SIGINT or SIGTERM stops accepting, lets in-flight
//! requests finish, and closes the store (a clean close flushes sled).

pub mod adapters;
pub mod admin_https;
pub mod crl_status;
pub mod edge_renew;
pub mod follow;
pub mod health;
mod http;
mod memory;
pub mod portal;
pub mod renew;
pub mod role;
pub(crate) mod tsa_http;

pub use http::serve_public as http_public;

mod config;
pub use config::{
    AdminConfig, AuditConfig, Config, CrlConfig, LimitsConfig, Listen, StoreConfig,
    DEFAULT_STORE_CACHE_MIB,
};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ca::Authority;
use policies::Hierarchy;
use tokio::sync::watch;

use crate::{Error, Result};

/// Listeners of one `jpki serve`: public HTTP, the platform-operator API, the admin socket,
/// the time-stamping authority (and the holder portal and the remote admin API when configured,
/// counted where the caps are fitted).
const LISTENERS: usize = 4;

/// Raises this process's soft limit on open descriptors to its hard limit and returns it:
/// the listeners' caps are fitted under it.
fn descriptor_limit() -> usize {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed by pointer, which
    // lives on this stack frame for both calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
            return 1024;
        }
        if l.rlim_cur < l.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: l.rlim_max,
                rlim_max: l.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                l.rlim_cur = l.rlim_max;
            }
        }
    }
    usize::try_from(l.rlim_cur).unwrap_or(usize::MAX)
}

/// How often `jpki serve` looks at the journal's size.
const COMPACT_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// A configuration value is wrong; `field` is its dotted path.
fn field(field: &str, problem: impl std::fmt::Display) -> Error {
    Error::Config(format!("serve configuration field `{field}`: {problem}"))
}

fn parse_addr(name: &str, v: &Option<String>) -> Result<Option<SocketAddr>> {
    v.as_deref()
        .map(|s| {
            s.parse::<SocketAddr>()
                .map_err(|_| field(name, format!("`{s}` is not an IP address and port")))
        })
        .transpose()
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub http: Option<SocketAddr>,
    pub pf_https: Option<SocketAddr>,
    /// The time-stamping authority's listener (docs/tsa.md).
    pub tsa: Option<SocketAddr>,
    /// Extra DNS names or IPs for the platform-operator API's server certificate.
    pub pf_names: Vec<String>,
    /// The holder portal's address, and extra names for its server certificate.
    pub portal: Option<SocketAddr>,
    pub portal_names: Vec<String>,
    pub crl_dir: PathBuf,
    pub crl: crl_publisher::Settings,
    /// Compact the store when its journal passes this many bytes; `None`: never.
    pub compact_journal_bytes: Option<u64>,
    /// What each listener admits (fitted to the descriptor limit).
    pub limits: conn_guard::Limits,
    /// The remote admin API (`--admin-https`), when configured.
    pub admin: Option<admin_https::AdminSettings>,
    /// Sign an audit checkpoint this often (and when stopping); `None`: only when stopping.
    pub checkpoint_every: Option<std::time::Duration>,
    /// CRLs and OCSP for registered verifiers over mutual TLS (`--verifiers-https`), and the
    /// extra names of its server certificate.
    pub verifiers: Option<(SocketAddr, Vec<String>)>,
    /// Signatures per second of the OCSP pre-signer (`[ocsp] presign_per_second`).
    pub presign_rate: u32,
    /// Answers in the OCSP memory front at most (`[ocsp] memory_answers`).
    pub memory_answers: usize,
    /// The CA store's sled page cache, bytes (`[store] cache_mib`).
    pub store_cache_bytes: u64,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("read {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| {
            // The message alone does not name the field when a value has the wrong type
            // (`invalid type: string "big", expected u64`): quote the line it is on.
            let at = e.span().and_then(|span| {
                let start = text.get(..span.start)?.rfind('\n').map_or(0, |i| i + 1);
                let line = text[start..].lines().next().unwrap_or_default().trim();
                let number = text[..start].matches('\n').count() + 1;
                Some(format!(" (line {number}: `{line}`)"))
            });
            Error::Config(format!(
                "{}{}: {}",
                path.display(),
                at.unwrap_or_default(),
                e.message()
            ))
        })
    }

    pub fn validate(&self, data: &Path, policy: &policies::Policy) -> Result<Settings> {
        if self.listen.http.is_some() && self.listen.public_http.is_some() {
            return Err(field(
                "listen.public_http",
                "give listen.public_http (--public-http) or its older name listen.http \
                 (--http), not both",
            ));
        }
        let http = match &self.listen.public_http {
            Some(_) => parse_addr("listen.public_http", &self.listen.public_http)?,
            None => parse_addr("listen.http", &self.listen.http)?,
        };
        let verifiers = parse_addr("listen.verifiers_https", &self.listen.verifiers_https)?
            .map(|a| (a, self.listen.verifiers_names.clone()));
        let pf_https = parse_addr("listen.pf_https", &self.listen.pf_https)?;
        let portal = parse_addr("listen.portal", &self.listen.portal)?;
        let tsa = parse_addr("listen.tsa", &self.listen.tsa)?;
        let admin_https = parse_addr("listen.admin_https", &self.listen.admin_https)?;
        if http.is_none()
            && pf_https.is_none()
            && portal.is_none()
            && tsa.is_none()
            && admin_https.is_none()
            && verifiers.is_none()
        {
            return Err(field(
                "listen",
                "give at least one of listen.public_http (--public-http), \
                 listen.verifiers_https (--verifiers-https), listen.pf_https (--pf-https), \
                 listen.portal (--portal), listen.tsa (--tsa) and listen.admin_https \
                 (--admin-https)",
            ));
        }
        let a = &self.admin;
        if !(1..=1_000_000).contains(&a.requests_per_minute) {
            return Err(field(
                "admin.requests_per_minute",
                format!("must be 1 to 1000000, got {}", a.requests_per_minute),
            ));
        }
        if !(1..=100_000).contains(&a.burst) {
            return Err(field(
                "admin.burst",
                format!("must be 1 to 100000, got {}", a.burst),
            ));
        }
        let every = self.audit.checkpoint_interval_seconds;
        if every != 0 && !(60..=7 * 86_400).contains(&every) {
            return Err(field(
                "audit.checkpoint_interval_seconds",
                format!("must be 0 (only at stop) or 60 to 604800, got {every}"),
            ));
        }
        let checkpoint_every = (every != 0).then(|| std::time::Duration::from_secs(every));
        let admin = admin_https.map(|addr| admin_https::AdminSettings {
            addr,
            names: self.listen.admin_names.clone(),
            rate: admin_https::RateLimit {
                per_minute: a.requests_per_minute,
                burst: a.burst,
            },
        });
        let c = &self.crl;
        if !(1..=3600).contains(&c.dirty_bound_seconds) {
            return Err(field(
                "crl.dirty_bound_seconds",
                format!("must be 1 to 3600, got {}", c.dirty_bound_seconds),
            ));
        }
        if c.batch_delay_seconds > c.dirty_bound_seconds {
            return Err(field(
                "crl.batch_delay_seconds",
                "must not exceed crl.dirty_bound_seconds",
            ));
        }
        if c.resign_margin_hours == 0 || c.resign_margin_hours >= policy.crl.next_update_hours {
            return Err(field(
                "crl.resign_margin_hours",
                format!(
                    "must be 1 to {} (below the policy's crl.next_update_hours)",
                    policy.crl.next_update_hours.saturating_sub(1)
                ),
            ));
        }
        let crl = crl_publisher::Settings {
            dirty_bound: std::time::Duration::from_secs(c.dirty_bound_seconds),
            batch_delay: std::time::Duration::from_secs(c.batch_delay_seconds),
            resign_margin: time::Duration::hours(i64::from(c.resign_margin_hours)),
            ..crl_publisher::Settings::default()
        };
        let kib = self.store.compact_journal_kib;
        if kib != 0 && !(64..=64 * 1024 * 1024).contains(&kib) {
            return Err(field(
                "store.compact_journal_kib",
                format!("must be 0 (never) or 64 to 67108864, got {kib}"),
            ));
        }
        if !(8..=1 << 20).contains(&self.store.cache_mib) {
            return Err(field(
                "store.cache_mib",
                format!("must be 8 to 1048576, got {}", self.store.cache_mib),
            ));
        }
        let l = &self.limits;
        if !(1..=1_000_000).contains(&l.max_connections) {
            return Err(field(
                "limits.max_connections",
                format!("must be 1 to 1000000, got {}", l.max_connections),
            ));
        }
        if l.max_per_client == 0 || l.max_per_client > l.max_connections {
            return Err(field(
                "limits.max_per_client",
                "must be 1 to limits.max_connections",
            ));
        }
        if !(1..=3600).contains(&l.idle_seconds) {
            return Err(field(
                "limits.idle_seconds",
                format!("must be 1 to 3600, got {}", l.idle_seconds),
            ));
        }
        let limits = conn_guard::Limits {
            max_connections: l.max_connections,
            max_per_client: l.max_per_client,
            idle: std::time::Duration::from_secs(l.idle_seconds),
        };
        if !(1..=1 << 26).contains(&self.ocsp.memory_answers) {
            return Err(field(
                "ocsp.memory_answers",
                format!("must be 1 to 67108864, got {}", self.ocsp.memory_answers),
            ));
        }
        if !(1..=1_000_000).contains(&self.ocsp.presign_per_second) {
            return Err(field(
                "ocsp.presign_per_second",
                format!("must be 1 to 1000000, got {}", self.ocsp.presign_per_second),
            ));
        }
        let crl_dir = if c.dir.is_absolute() {
            c.dir.clone()
        } else {
            data.join(&c.dir)
        };
        Ok(Settings {
            http,
            pf_https,
            tsa,
            pf_names: self.listen.pf_names.clone(),
            portal,
            portal_names: self.listen.portal_names.clone(),
            crl_dir,
            crl,
            compact_journal_bytes: (kib != 0).then_some(kib * 1024),
            limits,
            admin,
            checkpoint_every,
            verifiers,
            presign_rate: self.ocsp.presign_per_second,
            memory_answers: self.ocsp.memory_answers,
            store_cache_bytes: self.store.cache_mib << 20,
        })
    }
}

/// The parts of a running server.
pub struct Parts {
    pub authority: Arc<Authority>,
    pub publisher: Arc<crl_publisher::Publisher>,
    pub responder: ocsp_responder::Responder,
}

impl Parts {
    /// The platform-operator API for a listener at `local`: its server certificate from the
    /// operator CA names the listener's address (the loopback address for a wildcard one) and
    /// `names`; paths outside `/v1/` go to the CRLs and OCSP. No `localhost`: a single-label
    /// dNSName is refused by certificate linters (pkilint `pkix.invalid_domain_name_syntax`).
    pub fn pf_api(
        &self,
        local: std::net::SocketAddr,
        names: &[String],
    ) -> Result<Arc<platform::Api>> {
        let all = pf_server_names(local, names);
        let (chain, key) = platform::server_identity(&self.authority, &all)?;
        let (publisher, responder) = (Arc::clone(&self.publisher), self.responder.clone());
        let fallback: platform::Fallback = Arc::new(move |req: ::http::Request<bytes::Bytes>| {
            let (publisher, responder) = (Arc::clone(&publisher), responder.clone());
            let req = req.map(http_body_util::Full::new);
            Box::pin(async move { http::route(&publisher, &responder, req).await })
        });
        Ok(Arc::new(platform::Api::new(
            Arc::clone(&self.authority),
            chain,
            key,
            Some(fallback),
        )?))
    }
}

/// The names the platform API's server certificate carries for a listener at `local`: its
/// address (the loopback address for a wildcard one), then `names`.
pub fn pf_server_names(local: std::net::SocketAddr, names: &[String]) -> Vec<String> {
    let ip = match local.ip() {
        std::net::IpAddr::V4(a) if a.is_unspecified() => {
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        }
        std::net::IpAddr::V6(a) if a.is_unspecified() => {
            std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
        }
        ip => ip,
    };
    let mut all = vec![ip.to_string()];
    all.extend(names.iter().cloned());
    all
}

/// Builds the publishers over an open authority and installs the revocation listener.
pub fn assemble(authority: Arc<Authority>, settings: &Settings) -> Result<Parts> {
    assemble_node(authority, settings, None)
}

/// [`assemble`] for a CA node named `node` (`jpki serve --role ca`): its CRL publisher leases
/// each CRL before reserving its number ([`role::LeasedCrlStore`]).
pub fn assemble_node(
    authority: Arc<Authority>,
    settings: &Settings,
    node: Option<&str>,
) -> Result<Parts> {
    let store = Arc::clone(authority.storage());
    let clock = Arc::clone(authority.clock());
    // Every root generation signs the CRLs of the certificates it issued (docs/roots.md):
    // the first through `Roots`, later ones through `add_generation` below.
    let first = |h| -> Result<Arc<dyn policies::Signer>> {
        let roots = authority.roots(h);
        let root = roots
            .first()
            .ok_or_else(|| Error::Serve(format!("the {h} root has no generation")))?;
        Ok(authority.generation_signer(h, root)?)
    };
    let roots = crl_publisher::Roots {
        signing: first(Hierarchy::Signing)?,
        auth: first(Hierarchy::Auth)?,
    };
    let crl_store = Arc::new(adapters::CrlStore(Arc::clone(&store)));
    let state_store: Arc<dyn crl_publisher::StateStore> = match node {
        Some(node) => Arc::new(role::LeasedCrlStore {
            inner: adapters::CrlStore(Arc::clone(&store)),
            node: node.to_owned(),
            clock: Arc::clone(&clock),
        }),
        None => crl_store.clone(),
    };
    let publisher = Arc::new(
        crl_publisher::Publisher::new(
            authority.policy().clone(),
            settings.crl.clone(),
            roots,
            crl_store,
            state_store,
            settings.crl_dir.clone(),
            Arc::clone(&clock),
        )
        .map_err(|e| Error::Serve(format!("CRL publisher: {e}")))?,
    );
    add_root_generations(&authority, &publisher)?;
    // One OCSP issuer per unexpired root generation, oldest first, each answering through its
    // own delegated signer (issued by its own root) for the certificates it issued; an older
    // generation without one in force signs with its root key (docs/roots.md).
    let mut issuers = Vec::new();
    let now = clock.now();
    for h in Hierarchy::ALL {
        let delegated = authority.ocsp_signer(h)?;
        let delegated_by = ca::authority::rollover::signer_key_id(&delegated);
        for root in authority.roots(h) {
            if root.not_after < now {
                continue;
            }
            let own = if delegated_by.as_deref() == Some(&root.key_id) {
                Some(delegated.clone())
            } else {
                authority.generation_ocsp_signer(h, &root)?
            };
            let signer: Arc<dyn policies::Signer> = match own {
                Some(s) => s,
                None => authority.generation_signer(h, &root)?,
            };
            issuers.push(ocsp_responder::Issuer {
                hierarchy: h,
                root: root.der.clone(),
                signer,
            });
        }
    }
    let mut ocsp_settings = ocsp_responder::Settings::from_policy(authority.policy());
    ocsp_settings.presign_rate = settings.presign_rate;
    ocsp_settings.cache_capacity = settings.memory_answers;
    let responder = ocsp_responder::Responder::new(
        ocsp_settings,
        issuers,
        Arc::new(adapters::OcspStatus(store)),
        Arc::clone(&clock),
    )
    .map_err(|e| Error::Serve(format!("OCSP responder: {e}")))?;
    authority.set_listener(Arc::new(adapters::Notifier {
        publisher: Arc::clone(&publisher),
        responder: responder.clone(),
        clock,
    }))?;
    Ok(Parts {
        authority,
        publisher,
        responder,
    })
}

/// Gives the CRL publisher every root generation after the first, and tells it until when
/// each generation that no longer issues keeps publishing: until the last certificate it
/// issued has expired (plus the publisher's expired-entry margin).
pub fn add_root_generations(
    authority: &Authority,
    publisher: &crl_publisher::Publisher,
) -> Result<()> {
    let last = authority.last_expiries()?;
    for h in Hierarchy::ALL {
        let roots = authority.roots(h);
        let newest = roots.last().map(|r| r.generation);
        for root in &roots {
            if root.generation > 1 {
                publisher
                    .add_generation(h, root.generation, authority.generation_signer(h, root)?)
                    .map_err(|e| Error::Serve(format!("CRL publisher: {e}")))?;
            }
            if Some(root.generation) != newest {
                // No certificate: nothing to publish for (its CRLs end now).
                let until = last
                    .get(&(h, root.generation))
                    .copied()
                    .unwrap_or(root.not_before);
                publisher.retire_generation(h, root.generation, until);
                tracing::info!(hierarchy = %h, generation = root.generation, last_expiry = %until,
                    "an older root generation signs the CRLs of what it issued until its last certificate has expired");
            }
        }
    }
    Ok(())
}

async fn bind(what: &str, addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Serve(format!("cannot listen for {what} on {addr}: {e}")))
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(data: &Path, passphrase: Option<Vec<u8>>, settings: Settings) -> Result<()> {
    run_node(data, passphrase, settings, None)
}

/// [`run`] as the CA node `node` (`--role ca`: CRLs leased, no public OCSP), or all-in-one
/// (`None`).
pub fn run_node(
    data: &Path,
    passphrase: Option<Vec<u8>>,
    settings: Settings,
    node: Option<String>,
) -> Result<()> {
    memory::limit_arenas();
    let sled = ca::storage::sled::SledOptions {
        cache_bytes: settings.store_cache_bytes,
    };
    let authority = Arc::new(crate::store::open_with(
        data,
        passphrase,
        crate::clock::clock()?,
        &sled,
    )?);
    tracing::info!(
        cache_mib = settings.store_cache_bytes >> 20,
        "CA store open (sled page cache bound: [store] cache_mib)"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Serve(format!("start the runtime: {e}")))?;
    let result = rt.block_on(async move {
        let signals = StopSignals::install()?;
        // Renew what is due before anything signs with it (the OCSP responder is built from
        // the signers in force afterwards).
        let watch = renew::Watch::new(Arc::clone(&authority));
        {
            let a = Arc::clone(&authority);
            // A due root rollover is only warned about: it is a key ceremony under dual
            // control (two ca-officers, `jpki root rollover`).
            let due = {
                let a = Arc::clone(&authority);
                tokio::task::spawn_blocking(move || a.rollover_roots_due())
                    .await
                    .map_err(|e| Error::Serve(e.to_string()))?
            };
            if let Err(e) = due {
                tracing::error!(error = %e, "the root rollover schedule could not be read");
            }
        let renewed = tokio::task::spawn_blocking(move || {
                ca::officers::acting_as(&ca::officers::Actor::System("ocsp-renewal"), || {
                    a.renew_ocsp_signers_due()
                })
            })
                .await
                .map_err(|e| Error::Serve(e.to_string()))?;
            if let Err(e) = renewed {
                tracing::error!(error = %e, "OCSP signer renewal at start failed; retrying while running");
            }
        }
        // Assembling reads the store (the OCSP signers' status): a PostgreSQL store blocks
        // on its own runtime, which must not happen on this one's worker.
        let parts = tokio::task::block_in_place(|| {
            assemble_node(Arc::clone(&authority), &settings, node.as_deref())
        })?;
        // Every certificate's answer signed ahead and kept on disk beside the store (#14);
        // the server alone opens it (one process at a time: its slot file is flock-ed). A CA node
        // serves no OCSP (its edges do), so it keeps none.
        if node.is_none() {
        let answers = ocsp_responder::stored::AnswerStore::open(
            &data.join("ocsp-answers"),
            &ocsp_responder::stored::Settings::default(),
        )
        .map_err(|e| Error::Serve(format!("OCSP answer store: {e}")))?;
        // Attaching catches the answers up with the store's revocation log before anything
        // listens (reads the store: off the runtime's workers).
        tokio::task::block_in_place(|| parts.responder.attach_store(Arc::new(answers)))
            .map_err(|e| Error::Serve(format!("OCSP responder: {e}")))?;
        // The pre-signer's cursor of the store's issuance log lives beside the answers.
        parts
            .responder
            .keep_presign_cursor(data.join("ocsp-answers").join("presign-cursor"))
            .map_err(|e| Error::Serve(format!("OCSP responder: {e}")))?;
        }
        watch.set_responder(parts.responder.clone());
        let health = health::Health::new(
            Arc::clone(&parts.authority),
            Arc::clone(&parts.publisher),
            Arc::clone(&watch),
        );
        health.keep_tally_in(data.join("serve-metrics-tally.json"));
        {
            let h = Arc::clone(&health);
            tokio::task::spawn_blocking(move || h.warm_up());
        }
        {
            // Reads the store: off the runtime's workers.
            let h = Arc::clone(&health);
            parts
                .responder
                .add_metrics(Arc::new(move || tokio::task::block_in_place(|| h.render())))
                .map_err(|e| Error::Serve(format!("OCSP responder: {e}")))?;
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let mut tasks = tokio::task::JoinSet::new();
        let listeners = LISTENERS
            + usize::from(settings.portal.is_some())
            + usize::from(settings.admin.is_some())
            + usize::from(settings.verifiers.is_some());
        let limits = settings.limits.fitted(descriptor_limit(), listeners);
        if limits != settings.limits {
            tracing::warn!(
                max_connections = limits.max_connections,
                max_per_client = limits.max_per_client,
                "connection caps lowered to fit the descriptor limit"
            );
        }

        let admin = http::admin_listener(data)?;
        eprintln!(
            "jpki serve: admin socket {}",
            ca::api::socket_path(data).display()
        );
        tasks.spawn(http::serve_admin(
            admin,
            Arc::clone(&parts.authority),
            conn_guard::Gate::new(limits),
            Some((Arc::clone(&parts.publisher), settings.crl_dir.clone())),
            stopped(stop_rx.clone()),
        ));

        // Publish every CRL that is due, then keep them current — in the background: the
        // listeners open first (a large new store has thousands of partitions to publish;
        // OCSP answers meanwhile, CRL requests wait for this pass, `/readyz` says so).
        {
            let (p, h, authority) = (
                Arc::clone(&parts.publisher),
                Arc::clone(&health),
                Arc::clone(&parts.authority),
            );
            let crl_dir = settings.crl_dir.clone();
            let node = node.clone();
            let shutdown = stopped(stop_rx.clone());
            tasks.spawn(async move {
                let started = std::time::Instant::now();
                let now = authority.clock().now();
                let publisher = Arc::clone(&p);
                let report = tokio::task::spawn_blocking(move || {
                    let report = publisher.tick(now);
                    let partitions = publisher.scopes().map(|s| s.len()).unwrap_or(0);
                    (report, partitions)
                })
                .await;
                h.first_crls_published();
                match report {
                    Ok((report, partitions)) => {
                        // On a CA node, a CRL another node has leased is that node's.
                        let failed = report
                            .failed
                            .iter()
                            .filter(|(_, _, _, e)| node.is_none() || !role::published_elsewhere(e))
                            .count();
                        if failed > 0 {
                            eprintln!("jpki serve: {failed} CRL(s) could not be published at start; retrying");
                            tracing::error!(failed, "CRLs not published at start; retrying");
                        }
                        // One summary line, not one per partition.
                        eprintln!(
                            "jpki serve: {} CRL(s) published at start in {:.1} s, {partitions} partition(s) served from {}",
                            report.published.len(),
                            started.elapsed().as_secs_f64(),
                            crl_dir.display()
                        );
                    }
                    Err(e) => tracing::error!(error = %e, "the first CRL pass panicked"),
                }
                p.run(shutdown).await;
            });
        }
        tasks.spawn(apply_due_events(
            Arc::clone(&parts.authority),
            stopped(stop_rx.clone()),
        ));
        if let Some(limit) = settings.compact_journal_bytes {
            tasks.spawn(compact_when_due(
                Arc::clone(parts.authority.storage()),
                limit,
                stopped(stop_rx.clone()),
            ));
        }
        {
            let r = parts.responder.clone();
            let rx = stop_rx.clone();
            tasks.spawn(async move { r.run_resigner(stopped(rx)).await });
        }
        {
            let r = parts.responder.clone();
            let rx = stop_rx.clone();
            tasks.spawn(async move { r.run_presigner(stopped(rx)).await });
        }
        {
            let r = parts.responder.clone();
            let rx = stop_rx.clone();
            tasks.spawn(async move { r.run_store_follower(stopped(rx)).await });
        }
        if let Some(addr) = settings.http {
            let listener = bind("CRL and OCSP (http)", addr).await?;
            let local = listener
                .local_addr()
                .map_err(|e| Error::Serve(e.to_string()))?;
            eprintln!("jpki serve: CRLs at http://{local}/crl/, OCSP at http://{local}/ocsp");
            if let Some(why) = base_url_mismatch(&parts.authority.policy().ca.base_url, local) {
                eprintln!("jpki serve: warning: {why}");
                tracing::warn!(%local, "{why}");
            }
            tracing::info!(%local, "CRL and OCSP listener");
            if node.is_some() {
                eprintln!("jpki serve: CA node: OCSP is answered by the edge nodes, not here");
                tasks.spawn(role::serve_ca_public(
                    listener,
                    conn_guard::Gate::new(limits),
                    Arc::clone(&parts.publisher),
                    parts.responder.clone(),
                    stopped(stop_rx.clone()),
                ));
            } else {
                tasks.spawn(http::serve_public_with(
                    listener,
                    conn_guard::Gate::new(limits),
                    Arc::clone(&parts.publisher),
                    parts.responder.clone(),
                    Some(Arc::clone(&health)),
                    stopped(stop_rx.clone()),
                ));
            }
        }
        if let Some(addr) = settings.pf_https {
            let listener = bind("the platform-operator API (https)", addr).await?;
            let local = listener
                .local_addr()
                .map_err(|e| Error::Serve(e.to_string()))?;
            let api = parts.pf_api(local, &settings.pf_names)?;
            watch.set_pf(Arc::clone(&api), pf_server_names(local, &settings.pf_names));
            eprintln!(
                "jpki serve: platform-operator API at https://{local}/v1/ \
                 (client certificates from the operator CA)"
            );
            tracing::info!(%local, "platform-operator API listener");
            let rx = stop_rx.clone();
            tasks.spawn(async move {
                let gate = conn_guard::Gate::new(limits);
                if let Err(e) = api.serve_guarded(listener, gate, stopped(rx)).await {
                    tracing::error!(error = %e, "platform-operator API stopped");
                }
            });
        }
        if let Some(addr) = settings.portal {
            let listener = bind("the holder portal (https)", addr).await?;
            let local = listener
                .local_addr()
                .map_err(|e| Error::Serve(e.to_string()))?;
            let names = pf_server_names(local, &settings.portal_names);
            // Issuing its server certificate writes the store (see `assemble`).
            let portal = tokio::task::block_in_place(|| {
                portal::Portal::new(Arc::clone(&parts.authority), &names)
            })?;
            watch.set_portal(Arc::clone(&portal), names);
            eprintln!("jpki serve: holder portal at https://{local}/");
            tracing::info!(%local, "holder portal listener");
            let gate = conn_guard::Gate::new(limits);
            tasks.spawn(portal.serve(listener, gate, stopped(stop_rx.clone())));
        }
        if let Some((addr, names)) = &settings.verifiers {
            let revocation = admin_https::Revocation {
                publisher: Arc::clone(&parts.publisher),
                responder: parts.responder.clone(),
            };
            let (listener, api) =
                admin_https::start_verifiers(&parts.authority, *addr, names, revocation).await?;
            watch.add_listener("verifiers-server", api.clone());
            let gate = conn_guard::Gate::new(limits);
            tasks.spawn(api.serve(listener, gate, stopped(stop_rx.clone())));
        }
        if let Some(admin) = &settings.admin {
            let (listener, api) = admin_https::start(&parts.authority, admin).await?;
            watch.add_listener("admin-server", api.clone());
            let gate = conn_guard::Gate::new(limits);
            tasks.spawn(api.serve(listener, gate, stopped(stop_rx.clone())));
        }
        if let Some(addr) = settings.tsa {
            let tsa = Arc::new(
                tokio::task::block_in_place(|| tsa::server::Tsa::load(Arc::clone(&parts.authority)))
                    .map_err(|e| Error::Serve(format!("time-stamping authority: {e}")))?,
            );
            let listener = bind("the time-stamping authority (http)", addr).await?;
            let local = listener
                .local_addr()
                .map_err(|e| Error::Serve(e.to_string()))?;
            watch.set_tsa(Arc::clone(&tsa));
            eprintln!("jpki serve: time-stamping authority (RFC 3161) at http://{local}/tsa");
            tracing::info!(%local, "TSA listener");
            tasks.spawn(tsa_http::serve(
                listener,
                conn_guard::Gate::new(limits),
                tsa,
                stopped(stop_rx.clone()),
            ));
        }
        {
            let w = Arc::clone(&watch);
            let checked = tokio::task::spawn_blocking(move || w.check())
                .await
                .map_err(|e| Error::Serve(e.to_string()))?;
            if let Err(e) = checked {
                tracing::error!(error = %e, "certificate check at start failed; retrying while running");
            }
            tasks.spawn(Arc::clone(&watch).run(stopped(stop_rx.clone())));
            tasks.spawn(role::certify_signer_requests(
                Arc::clone(&parts.authority),
                stopped(stop_rx.clone()),
            ));
        }
        if let Some(every) = settings.checkpoint_every {
            tasks.spawn(checkpoint_periodically(
                Arc::clone(&parts.authority),
                every,
                stopped(stop_rx.clone()),
            ));
        }
        if let Some(period) = memory::period() {
            tasks.spawn(memory::trim_periodically(period, stopped(stop_rx.clone())));
        }
        // Every listener answers already; "running" once the first CRL pass is over too.
        let stop = signals.wait();
        tokio::pin!(stop);
        tokio::select! {
            () = health.first_crls() => {
                eprintln!("jpki serve: running; SIGINT or SIGTERM stops it");
                (&mut stop).await;
            }
            () = &mut stop => {}
        }
        eprintln!("jpki serve: stopping (finishing in-flight requests)");
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        // The last word: a signed checkpoint of the chain as the server leaves it.
        let a = Arc::clone(&parts.authority);
        match tokio::task::spawn_blocking(move || sign_checkpoint(&a)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("jpki serve: warning: no audit checkpoint at stop: {e}"),
            Err(e) => eprintln!("jpki serve: warning: no audit checkpoint at stop: {e}"),
        }
        let _ = std::fs::remove_file(ca::api::socket_path(data));
        Ok::<(), Error>(())
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    result
}

/// Why the policy's `ca.base_url`, which every certificate names for its CRLs and OCSP, does
/// not lead to the listener at `local` — its port differs, or it names another IP address —
/// or `None` when it may (a host name is taken on trust: a proxy or DNS may route it here).
fn base_url_mismatch(base_url: &str, local: SocketAddr) -> Option<String> {
    let (scheme, rest) = base_url.split_once("://")?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !p.contains(']') => (h, p.parse::<u16>().ok()?),
        _ => (authority, if scheme == "https" { 443 } else { 80 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let say = |what: String| {
        Some(format!(
            "the policy's ca.base_url {base_url} {what}, but this server listens on {local}: \
             certificates send relying parties to that URL for CRLs and OCSP"
        ))
    };
    if port != local.port() {
        return say(format!("names port {port}"));
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) if !local.ip().is_unspecified() && ip != local.ip() => say(format!("names {ip}")),
        _ => None,
    }
}

/// The longest `jpki serve` sleeps between looks at the register's schedule: an event
/// scheduled meanwhile (through the admin socket) is seen within this.
const SCHEDULE_CHECK: std::time::Duration = std::time::Duration::from_secs(60);

/// Carries out scheduled register events (an emigration at its departure) at the minute they
/// fall due, until `stop` resolves: applies what is due, then sleeps until the next event (by
/// the authority's clock) or [`SCHEDULE_CHECK`], whichever is sooner. Each event revokes as of
/// its due time, and the revocation reaches OCSP and the CRL partition like any other.
async fn apply_due_events(authority: Arc<Authority>, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        let a = Arc::clone(&authority);
        let next = tokio::task::spawn_blocking(move || -> ca::Result<_> {
            let scheduler = ca::officers::Actor::System("scheduler");
            for done in ca::officers::acting_as(&scheduler, || a.apply_due())? {
                tracing::info!(
                    event = %done.event,
                    revocations = done.revocations.len(),
                    "scheduled register event applied"
                );
            }
            a.storage().next_event()
        })
        .await;
        let wait = match next {
            Ok(Ok(Some(next))) => {
                let left = next.at - authority.clock().now();
                std::time::Duration::try_from(left)
                    .unwrap_or_default()
                    .clamp(std::time::Duration::from_secs(1), SCHEDULE_CHECK)
            }
            Ok(Ok(None)) => SCHEDULE_CHECK,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "applying due register events failed; trying again");
                SCHEDULE_CHECK
            }
            Err(e) => {
                tracing::error!(error = %e, "the due-events task failed; trying again");
                SCHEDULE_CHECK
            }
        };
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Compacts the store whenever its journal has passed `limit` bytes (checked every
/// [`COMPACT_CHECK`]), until `stop` resolves. A failed compaction is logged and tried again at
/// the next check; the store stays complete either way (docs/store.md).
async fn compact_when_due(
    store: Arc<dyn ca::storage::Storage>,
    limit: u64,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut every = tokio::time::interval(COMPACT_CHECK);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = every.tick() => {}
        }
        let store = Arc::clone(&store);
        let done =
            tokio::task::spawn_blocking(move || -> ca::Result<Option<ca::storage::Compaction>> {
                if store.journal_bytes()? < limit {
                    return Ok(None);
                }
                store.compact().map(Some)
            })
            .await;
        match done {
            Ok(Ok(Some(c))) => tracing::info!(
                position = c.position,
                journal_bytes_before = c.journal_bytes_before,
                snapshot_bytes = c.snapshot_bytes,
                "compacted the store"
            ),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "store compaction failed; retrying later"),
            Err(e) => tracing::error!(error = %e, "store compaction task failed"),
        }
    }
}

/// Signs a checkpoint of the audit chain's head (when it moved since the last), as
/// `system:audit-checkpoint`.
fn sign_checkpoint(authority: &Authority) -> Result<()> {
    let actor = ca::officers::Actor::System("audit-checkpoint");
    let made =
        ca::officers::acting_as(&actor, || platform::audit_checkpoint::checkpoint(authority))?;
    if let Some(c) = made {
        tracing::info!(seq = c.seq, "audit checkpoint signed");
    }
    Ok(())
}

/// Signs an audit checkpoint every `every` until `stop` resolves (a failure is logged and
/// tried again at the next tick).
async fn checkpoint_periodically(
    authority: Arc<Authority>,
    every: std::time::Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        let a = Arc::clone(&authority);
        match tokio::task::spawn_blocking(move || sign_checkpoint(&a)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "audit checkpoint failed; retrying later"),
            Err(e) => tracing::error!(error = %e, "audit checkpoint task failed"),
        }
    }
}

/// SIGTERM and SIGINT, caught from the moment the server starts: installed before anything
/// is announced, so that a stop requested as soon as "running" is printed is a clean stop,
/// not the default action (death by the signal).
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> Result<StopSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignals {
            term: signal(SignalKind::terminate())
                .map_err(|e| Error::Serve(format!("install the SIGTERM handler: {e}")))?,
            int: signal(SignalKind::interrupt())
                .map_err(|e| Error::Serve(format!("install the SIGINT handler: {e}")))?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_that_does_not_lead_here_is_named() {
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(base_url_mismatch("http://127.0.0.1:8080", local), None);
        assert_eq!(base_url_mismatch("http://127.0.0.1:8080/pki", local), None);
        assert_eq!(base_url_mismatch("http://ca.example:8080", local), None);
        let e = base_url_mismatch("http://127.0.0.1:9090", local).unwrap();
        assert!(
            e.contains("names port 9090") && e.contains("127.0.0.1:8080"),
            "{e}"
        );
        let e = base_url_mismatch("http://10.0.0.5:8080", local).unwrap();
        assert!(e.contains("names 10.0.0.5"), "{e}");
        assert!(
            base_url_mismatch("http://ca.example", local).is_some(),
            "port 80"
        );
        let any: SocketAddr = "0.0.0.0:80".parse().unwrap();
        assert_eq!(base_url_mismatch("http://192.0.2.7", any), None);
        let v6: SocketAddr = "[::1]:8080".parse().unwrap();
        assert_eq!(base_url_mismatch("http://[::1]:8080", v6), None);
    }

    #[test]
    fn config_tables_take_any_subset_of_their_fields() {
        let c: Config = toml::from_str(
            "[crl]\ndirty_bound_seconds = 5\n[store]\n[listen]\nhttp = \"127.0.0.1:0\"\n",
        )
        .unwrap();
        assert_eq!(c.crl.dirty_bound_seconds, 5);
        assert_eq!(
            c.crl.batch_delay_seconds,
            CrlConfig::default().batch_delay_seconds
        );
        assert_eq!(
            c.store.compact_journal_kib,
            StoreConfig::default().compact_journal_kib
        );
        let s = c
            .validate(Path::new("/data"), &policies::Policy::default_policy())
            .unwrap();
        assert_eq!(s.crl.dirty_bound, std::time::Duration::from_secs(5));
        assert_eq!(s.store_cache_bytes, DEFAULT_STORE_CACHE_MIB << 20);
        // A misspelt field is still refused, by name.
        let e = toml::from_str::<Config>("[crl]\ndirty_bound = 5\n").unwrap_err();
        assert!(e.to_string().contains("dirty_bound"), "{e}");
    }

    #[test]
    fn the_store_cache_is_taken_in_mib_and_refused_out_of_range() {
        let policy = policies::Policy::default_policy();
        let at = |text: &str| {
            toml::from_str::<Config>(&format!("[listen]\nhttp = \"127.0.0.1:0\"\n{text}"))
                .unwrap()
                .validate(Path::new("/data"), &policy)
        };
        let s = at("[store]\ncache_mib = 48\n").unwrap();
        assert_eq!(s.store_cache_bytes, 48 << 20);
        for bad in [0, 7, (1 << 20) + 1] {
            let e = at(&format!("[store]\ncache_mib = {bad}\n")).unwrap_err();
            assert!(
                e.to_string().contains("store.cache_mib") && e.to_string().contains("8 to"),
                "{e}"
            );
        }
    }
}
