//! Node roles of `jpki serve` (issue #13, docs/deployment.md):
//!
//! * `all` (the default): everything in one process, as before.
//! * `ca`: a CA node — the admin socket, issuance, register events and their timer, CRL
//!   publishing (each CRL leased before its number is reserved, [`LeasedCrlStore`]), and the
//!   platform API, portal and TSA when configured. Its public HTTP listener serves CRLs,
//!   `/healthz` and `/metrics`, not OCSP: edges answer OCSP. Several CA nodes run on one
//!   PostgreSQL database, each with its own copy of the data directory.
//! * `edge`: OCSP and CRL serving only ([`run_edge`]), from an **edge directory** made by
//!   `jpki edge export` ([`export`]): the policy, both roots' certificates, and each
//!   hierarchy's delegated OCSP signer key (re-encrypted under the edge's own passphrase) and
//!   certificate — never a root key (an edge refuses to start beside one). It reads
//!   PostgreSQL only (the primary, or a read-only hot standby), follows the revocation log
//!   ([`super::follow`]) and serves the CRL files a CA node published, from a directory
//!   (shared, or synced from `jpki crl publish --out`).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ca::datadir::DataDir;
use ca::storage::Storage;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use policies::profile::Scope;
use policies::Hierarchy;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::adapters;
use super::follow::Follower;
use crate::{Error, Result};

/// What a `jpki serve` process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Role {
    /// Everything in one process (one machine).
    #[default]
    All,
    /// A CA node: admin socket, issuance, register events, CRL publishing (leased).
    Ca,
    /// An edge node: OCSP and CRL serving only, from an edge directory (`jpki edge export`).
    Edge,
}

/// How long a CA node's lease of a CRL lasts from its last reservation or publication: longer
/// than building any one CRL, short enough that another node takes over soon after a node
/// stops.
pub const CRL_LEASE: time::Duration = time::Duration::seconds(60);

/// A CA node's name in CRL leases: `--node`, else `<hostname>-<pid>`.
pub fn node_name(given: Option<&str>) -> String {
    if let Some(n) = given {
        return n.to_owned();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "node".into());
    format!("{host}-{}", std::process::id())
}

/// Another CA node publishes this CRL now (its lease runs), or already published the number
/// this node was about to: not a failure of this node.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PublishedElsewhere(pub String);

/// Whether a CRL publication failed only because another CA node has the CRL.
pub fn published_elsewhere(e: &crl_publisher::Error) -> bool {
    matches!(e, crl_publisher::Error::State { source, .. }
        if source.downcast_ref::<PublishedElsewhere>().is_some())
}

/// The CRL publisher's state store on a CA node that shares its database with other CA
/// nodes: every save of a CRL's state (the reservation of its next number, then the record of
/// its publication) takes or renews the CRL's lease for this node in the same unit of work,
/// and refuses a number that does not move the CRL forward — so two CA nodes never publish
/// the same CRL number (Boulder's `LeaseCRLShard`).
pub struct LeasedCrlStore {
    pub inner: adapters::CrlStore,
    pub node: String,
    pub clock: Arc<dyn ca::clock::Clock>,
}

fn boxed(e: ca::Error) -> crl_publisher::BoxError {
    match e {
        ca::Error::Refused(m) => Box::new(PublishedElsewhere(m)),
        e => Box::new(e),
    }
}

impl LeasedCrlStore {
    /// Within `t`: refuses a number that does not move the CRL forward, then takes or renews
    /// this node's lease of the CRL and saves its state.
    fn put_leased(
        &self,
        t: &dyn ca::storage::Tx,
        (h, g, scope): crl_publisher::CrlId,
        state: &crl_publisher::State,
        value: &[u8],
        now: time::OffsetDateTime,
    ) -> ca::Result<()> {
        // checked before the lease is written: a refused CRL of a batch is left unchanged
        if let Some(stored) = t.crl_state(h, g, scope.clone())? {
            let stored: crl_publisher::State = serde_json::from_slice(&stored)
                .map_err(|e| ca::Error::Store(format!("CRL state: {e}")))?;
            let published_now = state
                .published
                .as_ref()
                .is_some_and(|p| p.number == state.last_number);
            let forward = state.last_number > stored.last_number
                || (state.last_number == stored.last_number && published_now);
            if !forward {
                return Err(ca::Error::Refused(format!(
                    "CRL {} {} number {} was already taken (the store is at {}): \
                     another CA node published it",
                    policies::profile::crl_dir(h, g),
                    scope.path(),
                    state.last_number,
                    stored.last_number
                )));
            }
        }
        ca::storage::lease_crl(t, h, g, scope.clone(), &self.node, now, CRL_LEASE)?;
        t.put_crl_state(h, g, scope.clone(), value)
    }

    /// [`put_leased`](LeasedCrlStore::put_leased) for every CRL of `batch` in one unit of
    /// work, then (if `take`) its dirty flag taken; per CRL, whether its flag was set or why it
    /// was refused.
    #[allow(clippy::type_complexity)]
    fn batch(
        &self,
        batch: &[(crl_publisher::CrlId, crl_publisher::State)],
        take: bool,
    ) -> Result<Vec<Result<bool, crl_publisher::BoxError>>, crl_publisher::BoxError> {
        let values = batch
            .iter()
            .map(|(_, state)| serde_json::to_vec(state))
            .collect::<Result<Vec<_>, _>>()?;
        let now = self.clock.now();
        let outcome = std::sync::Mutex::new(Vec::new());
        self.inner
            .0
            .transact(&|t| {
                let mut done = Vec::with_capacity(batch.len());
                for ((id, state), value) in batch.iter().zip(&values) {
                    let (h, g, scope) = id.clone();
                    match self.put_leased(t, id.clone(), state, value, now) {
                        Ok(()) => {}
                        Err(ca::Error::Refused(m)) => {
                            done.push(Err(m));
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                    let set = take && t.crl_dirty(h, g, scope.clone())?;
                    if set {
                        t.clear_crl_dirty(h, g, scope)?;
                    }
                    done.push(Ok(set));
                }
                *outcome
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = done;
                Ok(())
            })
            .map_err(boxed)?;
        let outcome = outcome
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(outcome
            .into_iter()
            .map(|r| r.map_err(|m| boxed(ca::Error::Refused(m))))
            .collect())
    }
}

impl crl_publisher::StateStore for LeasedCrlStore {
    fn scopes(&self) -> Result<Vec<crl_publisher::CrlId>, crl_publisher::BoxError> {
        self.inner.scopes()
    }

    fn load(
        &self,
        h: Hierarchy,
        g: crl_publisher::Generation,
        scope: Scope,
    ) -> Result<Option<crl_publisher::State>, crl_publisher::BoxError> {
        self.inner.load(h, g, scope)
    }

    fn save(
        &self,
        h: Hierarchy,
        g: crl_publisher::Generation,
        scope: Scope,
        state: &crl_publisher::State,
    ) -> Result<(), crl_publisher::BoxError> {
        let value = serde_json::to_vec(state)?;
        let now = self.clock.now();
        self.inner
            .0
            .transact(&|t| self.put_leased(t, (h, g, scope.clone()), state, &value, now))
            .map_err(boxed)
    }

    /// In one unit of work: each CRL's lease taken or renewed, its number reserved and its
    /// dirty flag taken; a CRL another node has is refused alone and left unchanged.
    fn reserve_many(
        &self,
        batch: &[(crl_publisher::CrlId, crl_publisher::State)],
    ) -> Result<Vec<Result<bool, crl_publisher::BoxError>>, crl_publisher::BoxError> {
        self.batch(batch, true)
    }

    /// In one unit of work: each CRL's lease renewed and its state saved; a CRL another node
    /// has is refused alone.
    fn save_many(
        &self,
        batch: &[(crl_publisher::CrlId, crl_publisher::State)],
    ) -> Result<Vec<Result<(), crl_publisher::BoxError>>, crl_publisher::BoxError> {
        let done = self.batch(batch, false)?;
        Ok(done.into_iter().map(|r| r.map(|_| ())).collect())
    }

    fn set_dirty(
        &self,
        h: Hierarchy,
        g: crl_publisher::Generation,
        scope: Scope,
    ) -> Result<(), crl_publisher::BoxError> {
        self.inner.set_dirty(h, g, scope)
    }

    fn take_dirty(
        &self,
        h: Hierarchy,
        g: crl_publisher::Generation,
        scope: Scope,
    ) -> Result<bool, crl_publisher::BoxError> {
        self.inner.take_dirty(h, g, scope)
    }

    fn dirty(&self) -> Result<Option<Vec<crl_publisher::CrlId>>, crl_publisher::BoxError> {
        self.inner.dirty()
    }

    /// Not while another node's lease of the CRL runs: the publisher then leaves the CRL and
    /// its dirty flag to that node (it would otherwise take the flag, build, be refused at
    /// `save` and set the flag again).
    fn may_publish(
        &self,
        h: Hierarchy,
        g: crl_publisher::Generation,
        scope: Scope,
    ) -> Result<bool, crl_publisher::BoxError> {
        let now = self.clock.now();
        Ok(match self.inner.0.crl_lease(h, g, scope).map_err(boxed)? {
            Some(l) => l.holder == self.node || l.until <= now,
            None => true,
        })
    }
}

/// How often a CA node looks for edges' pending OCSP signer requests (one indexed read).
pub const SIGNER_REQUESTS: Duration = Duration::from_secs(1);

/// Certifies edges' due OCSP signer requests every [`SIGNER_REQUESTS`] until `stop`
/// ([`ca::Authority::certify_signer_requests`], audited as `system:edge-signer-renewal`).
/// Failures (the database, a wrong passphrase) are logged and tried again.
pub async fn certify_signer_requests(
    authority: Arc<ca::Authority>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut said: Option<String> = None;
    loop {
        let a = Arc::clone(&authority);
        let done = tokio::task::spawn_blocking(move || {
            let actor = ca::officers::Actor::System("edge-signer-renewal");
            ca::officers::acting_as(&actor, || a.certify_signer_requests())
        })
        .await;
        match done {
            Ok(Ok(_)) => said = None,
            Ok(Err(e)) => {
                let e = e.to_string();
                if said.as_ref() != Some(&e) {
                    tracing::error!(error = %e, "certifying edges' OCSP signer requests failed; retrying");
                    said = Some(e);
                }
            }
            Err(e) => tracing::error!(error = %e, "the signer request task failed"),
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(SIGNER_REQUESTS) => {}
        }
    }
}

// ----- the CA node's public listener ------------------------------------------------------

/// A CA node's public routes: CRLs, `/healthz`, `/metrics`; OCSP is the edges' job.
pub async fn ca_route<B>(
    publisher: &crl_publisher::Publisher,
    responder: &ocsp_responder::Responder,
    req: Request<B>,
) -> Response<Full<Bytes>>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match req.uri().path() {
        p if p.starts_with("/crl/") => publisher.handle(req).await,
        "/healthz" | "/readyz" | "/metrics" => responder.handle(req).await,
        _ => plain(
            StatusCode::NOT_FOUND,
            "not found (a CA node serves no OCSP: ask an edge node)\n".into(),
        ),
    }
}

/// Serves [`ca_route`] on `listener` until `shutdown`.
pub async fn serve_ca_public(
    listener: tokio::net::TcpListener,
    gate: Arc<conn_guard::Gate>,
    publisher: Arc<crl_publisher::Publisher>,
    responder: ocsp_responder::Responder,
    shutdown: impl Future<Output = ()>,
) {
    let handler = move |req: hyper::Request<hyper::body::Incoming>| {
        let (publisher, responder) = (Arc::clone(&publisher), responder.clone());
        async move { ca_route(&publisher, &responder, req).await }
    };
    ocsp_responder::http::serve_guarded(
        listener,
        None,
        Duration::from_secs(10),
        gate,
        shutdown,
        handler,
    )
    .await;
}

fn plain(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

// ----- the edge directory -------------------------------------------------------------------

/// `EDGE/edge.toml`: the database the edge reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeFile {
    pub edge: EdgeSection,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeSection {
    /// `postgres://…` — the primary, or a hot standby.
    pub store: String,
    /// The edge node's name: the key of its OCSP signer requests (stable across restarts).
    /// Absent in edge directories made before signer renewal: `--node`, else the host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Where an edge reading a read-only standby files its OCSP signer requests (the
    /// primary's URL); absent: the `store` itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
}

/// What `jpki edge export` wrote (the URL without its password).
#[derive(Debug, Serialize)]
pub struct Exported {
    pub dir: PathBuf,
    pub store: String,
    /// The edge node's name (the key of its OCSP signer requests).
    pub node: String,
    /// Files written, relative to `dir`.
    pub files: Vec<String>,
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::Serve(format!("{what}: {e}"))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    ca::keys::write_private(path, bytes).map_err(Error::from)
}

/// What `jpki edge export` writes into `edge.toml` besides the database URL.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// The database the edge reads (default: the CA's own, from `store.toml`).
    pub store: Option<String>,
    /// The edge node's name (default: the edge directory's file name).
    pub node: Option<String>,
    /// The primary's URL, for an edge reading a standby (where it files signer requests).
    pub primary: Option<String>,
}

/// `jpki edge export`: makes the edge directory `out` (new, mode 0700) from the CA data
/// directory `data`: the policy, both roots' certificates, and each hierarchy's OCSP signer
/// certificate and key — the key re-encrypted from the CA passphrase `ca_pass` to the edge's
/// `edge_pass` (which must differ: the CA passphrase also opens the root keys). `store` is the
/// database the edge reads (default: the CA's own, from `store.toml`). No root key is copied.
pub fn export(
    data: &Path,
    out: &Path,
    options: &ExportOptions,
    ca_pass: &[u8],
    edge_pass: &[u8],
) -> Result<Exported> {
    use std::os::unix::fs::DirBuilderExt;
    let store = options.store.as_deref();
    let node = match &options.node {
        Some(n) => n.clone(),
        None => out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    ca::edge_signer::check_node(&node)
        .map_err(|e| Error::Config(format!("{e} (give the edge a name with --node)")))?;
    if let Some(p) = &options.primary {
        if !crate::store::is_postgres(p) {
            return Err(Error::Config(format!(
                "--primary must be a postgres:// URL, got `{}`",
                p.split(':').next().unwrap_or("")
            )));
        }
    }
    if edge_pass.is_empty() || edge_pass == ca_pass {
        return Err(Error::Config(
            "the edge passphrase must be given and differ from the CA passphrase \
             (which also opens the root keys)"
                .into(),
        ));
    }
    let store = match store {
        Some(s) => s.to_owned(),
        None => crate::store::configured_url(data)?.ok_or_else(|| {
            Error::Config(format!(
                "{} is on sled, which only its own process can read: an edge needs the \
                 PostgreSQL engine (`jpki store migrate`), or give --store",
                data.display()
            ))
        })?,
    };
    if !crate::store::is_postgres(&store) {
        return Err(Error::Config(format!(
            "--store must be a postgres:// URL, got `{}`",
            store.split(':').next().unwrap_or("")
        )));
    }
    let src = DataDir::new(data);
    if !src.policy().exists() {
        return Err(ca::Error::NoDataDir(data.display().to_string()).into());
    }
    if out.exists() {
        return Err(Error::Config(format!(
            "{} exists: give a new directory for the edge",
            out.display()
        )));
    }
    let dst = DataDir::new(out);
    let result = (|| -> Result<Vec<String>> {
        let mut b = std::fs::DirBuilder::new();
        b.mode(0o700).recursive(true);
        for d in [out.to_path_buf(), out.join("certs"), out.join("keys")] {
            b.create(&d)
                .map_err(io(format!("create {}", d.display())))?;
        }
        let mut files = Vec::new();
        let mut copy = |from: PathBuf, to: PathBuf| -> Result<()> {
            let bytes = std::fs::read(&from).map_err(io(format!("read {}", from.display())))?;
            write_private(&to, &bytes)?;
            files.push(to.strip_prefix(out).unwrap_or(&to).display().to_string());
            Ok(())
        };
        copy(src.policy(), dst.policy())?;
        for h in Hierarchy::ALL {
            copy(src.cert(h, "root"), dst.cert(h, "root"))?;
            copy(src.cert(h, "ocsp"), dst.cert(h, "ocsp"))?;
        }
        for h in Hierarchy::ALL {
            let from = src.key(h, "ocsp");
            if !from.exists() {
                return Err(Error::Config(format!(
                    "{} is missing (an OCSP signer key in an HSM cannot be exported: give \
                     the edge its own token access)",
                    from.display()
                )));
            }
            ca::keys::reencrypt(&from, ca_pass, &dst.key(h, "ocsp"), edge_pass)?;
            files.push(format!("keys/{h}-ocsp.key"));
            // The key must sign for the certificate beside it.
            ca::signers::Signers::new(dst.clone(), Some(edge_pass.to_vec())).ocsp(h)?;
        }
        let toml = toml::to_string(&EdgeFile {
            edge: EdgeSection {
                store: store.clone(),
                node: Some(node.clone()),
                primary: options.primary.clone(),
            },
        })
        .map_err(|e| Error::Config(e.to_string()))?;
        write_private(&out.join("edge.toml"), toml.as_bytes())?;
        files.push("edge.toml".into());
        Ok(files)
    })();
    match result {
        Ok(files) => Ok(Exported {
            dir: out.to_path_buf(),
            store: redacted(&store),
            node,
            files,
        }),
        Err(e) => {
            let _ = std::fs::remove_dir_all(out);
            Err(e)
        }
    }
}

/// A database URL with its password (if any) replaced by `***`, to print.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some(x) => x,
        None => return url.to_owned(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// The edge directory's `edge.toml`; refuses a directory that holds a root key (an edge
/// never does) or is not an edge directory.
fn edge_store(dir: &Path) -> Result<EdgeSection> {
    let d = DataDir::new(dir);
    for h in Hierarchy::ALL {
        if d.key(h, "root").exists() {
            return Err(Error::Config(format!(
                "{} holds a root key: an edge node never does (make its directory with \
                 `jpki edge export`)",
                d.key(h, "root").display()
            )));
        }
    }
    let path = dir.join("edge.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::Config(format!(
            "{} is not an edge directory ({}: {e}); make one with `jpki edge export`",
            dir.display(),
            path.display()
        ))
    })?;
    let f: EdgeFile = toml::from_str(&text)
        .map_err(|e| Error::Config(format!("{}: {}", path.display(), e.message())))?;
    Ok(f.edge)
}

// ----- the edge node ----------------------------------------------------------------------

/// An edge node's parts: what its listener and the benchmark use.
pub struct Edge {
    pub responder: ocsp_responder::Responder,
    pub follower: Arc<Follower>,
    pub crl_dir: PathBuf,
    /// The edge's own OCSP signer renewal ([`super::edge_renew`]).
    pub renewal: Arc<super::edge_renew::EdgeRenewal>,
}

impl Edge {
    /// Loads the edge directory `dir` (its OCSP signers under `passphrase`) and connects to
    /// its database. `node`: the edge's name when `edge.toml` does not say (`--node`, else
    /// the host name). Blocking.
    pub fn open(
        dir: &Path,
        passphrase: Vec<u8>,
        crl_dir: PathBuf,
        node: Option<&str>,
    ) -> Result<Edge> {
        let section = edge_store(dir)?;
        let url = section.store.clone();
        let policy_path = dir.join("policy.toml");
        let text = std::fs::read_to_string(&policy_path)
            .map_err(io(format!("read {}", policy_path.display())))?;
        let policy = policies::Policy::from_toml(&text).map_err(ca::Error::from)?;
        let d = DataDir::new(dir);
        for h in Hierarchy::ALL {
            super::edge_renew::finish_install(&d, h)?;
        }
        let signers = ca::signers::Signers::new(d.clone(), Some(passphrase.clone()));
        // Every root generation with a signer here, oldest first (the newest is the one
        // renewals go on from): an older generation's under `<h>-ocsp-g<N>`, the newest's under
        // `<h>-ocsp`; a generation still waiting for its signer is not served yet.
        let mut issuers = Vec::new();
        for h in Hierarchy::ALL {
            let newest = signers.ocsp(h)?;
            for (g, root) in super::edge_renew::roots_of(&d, h)? {
                let signer: Arc<dyn policies::Signer> = if d.cert(h, &format!("ocsp-g{g}")).exists()
                {
                    signers.ocsp_named(h, &format!("ocsp-g{g}"))?
                } else if super::edge_renew::issued_by(
                    policies::Signer::certificate(newest.as_ref()),
                    &root,
                )? {
                    newest.clone()
                } else {
                    continue;
                };
                issuers.push(ocsp_responder::Issuer {
                    hierarchy: h,
                    root,
                    signer,
                });
            }
        }
        let pg =
            Arc::new(storage_postgres::PgStorage::open_follower(&url).map_err(ca::Error::from)?);
        let store: Arc<dyn Storage> = pg.clone();
        let clock = crate::clock::clock()?;
        let responder = ocsp_responder::Responder::new(
            ocsp_responder::Settings::from_policy(&policy),
            issuers,
            Arc::new(adapters::OcspStatus(Arc::clone(&store))),
            Arc::clone(&clock),
        )
        .map_err(|e| Error::Serve(format!("OCSP responder: {e}")))?;
        let node = match (section.node, node) {
            (Some(n), _) => n,
            (None, Some(n)) => n.to_owned(),
            (None, None) => std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "edge".into()),
        };
        let renewal = Arc::new(super::edge_renew::EdgeRenewal::new(
            d.clone(),
            node,
            passphrase,
            &policy,
            Arc::clone(&store),
            section.primary,
            responder.clone(),
            clock,
        )?);
        let follower = Arc::new(Follower::new(store, Some(pg), Arc::new(responder.clone()))?);
        {
            let (f, r) = (Arc::clone(&follower), Arc::clone(&renewal));
            responder
                .add_metrics(Arc::new(move || f.state().metrics() + &r.metrics()))
                .map_err(|e| Error::Serve(format!("OCSP responder: {e}")))?;
        }
        Ok(Edge {
            responder,
            follower,
            crl_dir,
            renewal,
        })
    }

    /// The edge's routes: `/healthz` and `/readyz` (503 with the reason while its database
    /// does not answer), `/crl/…` from its CRL directory, the rest to the OCSP responder
    /// (which also serves `/metrics`).
    pub async fn route<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let path = req.uri().path();
        if matches!(path, "/healthz" | "/readyz") && req.method() == http::Method::GET {
            return match self.follower.state().not_ready() {
                None => plain(StatusCode::OK, "ok\n".into()),
                Some(why) => plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {why}\n"),
                ),
            };
        }
        if let Some(rest) = path.strip_prefix("/crl/") {
            return serve_crl_file(&self.crl_dir, rest, req.method()).await;
        }
        self.responder.handle(req).await
    }
}

/// A CRL file (or `index.json`) from `dir`, by its path under `/crl/`: each segment letters,
/// digits, `%`, `-`, `_` or `.` (no `..`), ending in `.crl` or `index.json`; `max-age` up to
/// the CRL's nextUpdate.
async fn serve_crl_file(dir: &Path, rest: &str, method: &http::Method) -> Response<Full<Bytes>> {
    if !matches!(*method, http::Method::GET | http::Method::HEAD) {
        return plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
        );
    }
    let ok_segment = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"%-_.".contains(&b))
    };
    let index = rest == "index.json";
    if !(rest.split('/').all(ok_segment) && (index || rest.ends_with(".crl"))) {
        return plain(StatusCode::NOT_FOUND, "not found\n".into());
    }
    let path = dir.join(rest);
    let der = match tokio::fs::read(&path).await {
        Ok(b) => b,
        Err(_) => return plain(StatusCode::NOT_FOUND, "CRL not published yet\n".into()),
    };
    let mut max_age = 0i64;
    if !index {
        use x509_parser::prelude::FromDer;
        if let Ok((_, crl)) =
            x509_parser::revocation_list::CertificateRevocationList::from_der(&der)
        {
            if let Some(next) = crl.next_update() {
                max_age = (next.to_datetime() - time::OffsetDateTime::now_utc())
                    .whole_seconds()
                    .max(0);
            }
        }
    }
    let len = der.len();
    let body = if *method == http::Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from(der)
    };
    let mut r = Response::new(Full::new(body));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if index {
            "application/json"
        } else {
            "application/pkix-crl"
        }),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "max-age={max_age}, public, no-transform, must-revalidate"
    )) {
        h.insert(header::CACHE_CONTROL, v);
    }
    r
}

/// Runs an edge node until SIGINT or SIGTERM: `settings.http` is required; the platform API,
/// portal and TSA need the CA's keys and are refused.
pub fn run_edge(
    dir: &Path,
    passphrase: Vec<u8>,
    settings: super::Settings,
    node: Option<&str>,
) -> Result<()> {
    if settings.pf_https.is_some() || settings.portal.is_some() || settings.tsa.is_some() {
        return Err(Error::Config(
            "an edge node serves OCSP and CRLs only: listen.pf_https, listen.portal and \
             listen.tsa belong on a CA node"
                .into(),
        ));
    }
    let Some(addr) = settings.http else {
        return Err(Error::Config(
            "an edge node needs listen.http (--http)".into(),
        ));
    };
    let edge = Arc::new(Edge::open(dir, passphrase, settings.crl_dir.clone(), node)?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Serve(format!("start the runtime: {e}")))?;
    let result = rt.block_on(async move {
        let signals = super::StopSignals::install()?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(Arc::clone(&edge.follower).run(stopped(stop_rx.clone())));
        tasks.spawn(Arc::clone(&edge.renewal).run(stopped(stop_rx.clone())));
        {
            let r = edge.responder.clone();
            let rx = stop_rx.clone();
            tasks.spawn(async move { r.run_resigner(stopped(rx)).await });
        }
        let listener = super::bind("OCSP and CRLs (http)", addr).await?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::Serve(e.to_string()))?;
        eprintln!(
            "jpki serve: CRLs at http://{local}/crl/, OCSP at http://{local}/ocsp (edge node)"
        );
        tracing::info!(%local, "edge listener");
        let limits = settings.limits.fitted(super::descriptor_limit(), 1);
        let e = Arc::clone(&edge);
        let handler = move |req: hyper::Request<hyper::body::Incoming>| {
            let e = Arc::clone(&e);
            async move { e.route(req).await }
        };
        tasks.spawn(ocsp_responder::http::serve_guarded(
            listener,
            None,
            Duration::from_secs(10),
            conn_guard::Gate::new(limits),
            stopped(stop_rx.clone()),
            handler,
        ));
        eprintln!("jpki serve: running; SIGINT or SIGTERM stops it");
        signals.wait().await;
        eprintln!("jpki serve: stopping (finishing in-flight requests)");
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        Ok::<(), Error>(())
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crl_leased_by_another_node_is_left_to_it() {
        use crl_publisher::StateStore;
        let store: Arc<dyn Storage> = Arc::new(ca::storage::memory::MemoryStorage::new());
        let t0 = time::macros::datetime!(2026-03-01 00:00 UTC);
        let clock = Arc::new(ca::clock::FixedClock::new(t0));
        let node = |name: &str| LeasedCrlStore {
            inner: adapters::CrlStore(Arc::clone(&store)),
            node: name.into(),
            clock: clock.clone(),
        };
        let (ca1, ca2) = (node("ca-1"), node("ca-2"));
        let (h, scope) = (Hierarchy::Signing, Scope::Ca);
        assert!(
            ca1.may_publish(h, 1, scope.clone()).unwrap(),
            "no lease yet"
        );
        let state = crl_publisher::State {
            last_number: 1,
            published: None,
        };
        ca1.save(h, 1, scope.clone(), &state).unwrap();
        assert!(
            ca1.may_publish(h, 1, scope.clone()).unwrap(),
            "its own lease"
        );
        assert!(
            !ca2.may_publish(h, 1, scope.clone()).unwrap(),
            "ca-1's lease runs"
        );
        assert!(
            ca2.may_publish(h, 1, Scope::Partition(3)).unwrap(),
            "another CRL"
        );
        clock.advance(CRL_LEASE);
        assert!(ca2.may_publish(h, 1, scope).unwrap(), "the lease ran out");
    }

    #[test]
    fn a_url_is_printed_without_its_password() {
        assert_eq!(
            redacted("postgres://jpki:s3cret@db/jpki"),
            "postgres://jpki:***@db/jpki"
        );
        assert_eq!(
            redacted("postgres://jpki@db/jpki"),
            "postgres://jpki@db/jpki"
        );
        assert_eq!(
            redacted("postgresql:///jpki?host=/s"),
            "postgresql:///jpki?host=/s"
        );
    }

    #[test]
    fn an_edge_serves_only_crl_files_inside_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("signing")).unwrap();
        std::fs::write(dir.path().join("signing").join("ca.crl"), b"not a real CRL").unwrap();
        std::fs::write(dir.path().join("secret.txt"), b"no").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let get = |p: &str| {
            rt.block_on(serve_crl_file(dir.path(), p, &http::Method::GET))
                .status()
        };
        assert_eq!(get("signing/ca.crl"), StatusCode::OK);
        assert_eq!(get("signing/0.crl"), StatusCode::NOT_FOUND, "not published");
        for bad in [
            "../secret.txt",
            "signing/../../etc/passwd.crl",
            "secret.txt",
            "a//b.crl",
            "/etc/x.crl",
        ] {
            assert_eq!(get(bad), StatusCode::NOT_FOUND, "{bad}");
        }
        let post = rt.block_on(serve_crl_file(
            dir.path(),
            "signing/ca.crl",
            &http::Method::POST,
        ));
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
