//! # crl-publisher — partitioned, signed, self-checked CRLs for both jpki hierarchies
//!
//! Relying parties check JPKI certificates offline against CRLs. This crate turns the CA's
//! revocation records into those CRLs and keeps them fresh:
//!
//! * **Scopes.** Each hierarchy has end-entity partitions and one CA-level CRL covering the
//!   root and OCSP-signer certificates. A certificate's partition is fixed at issuance: by
//!   default its holder's municipality (`Scope::Municipal`, named
//!   `…, OU=CRL Distribution Points, OU=<prefecture>, CN=<municipality> CRLDP` as the real
//!   certificate names it), or under `crl.partition_by = "serial"` — and for every certificate
//!   issued before municipal partitions — its serial modulo `crl.partitions`
//!   (`Scope::Partition`, `CN=P00NN CRLDP`). Which scopes exist ([`Publisher::scopes`]): the
//!   CA-level CRLs, the serial partitions when the policy issues into them, and every scope
//!   the [`StateStore`] knows (a municipal partition is flagged dirty by its first
//!   certificate; a serial partition of an older store keeps its state), so a store made
//!   before municipal partitions keeps publishing its old partitions. Each CRL carries a
//!   critical issuingDistributionPoint whose fullName is exactly the certificates' CRL
//!   distribution point names (`policies::profile::crl_dp_names`), with
//!   onlyContainsUserCerts on partitions.
//! * **Root generations.** Each generation of a hierarchy's root (same DN, its own key: a
//!   rollover, docs/roots.md) signs the CRLs of the certificates it issued, so a CRL is
//!   `(hierarchy, generation, scope)` ([`CrlId`]) in the [`Source`], the [`StateStore`], files
//!   and URLs (`/crl/<h>/…` for generation 1, `/crl/<h>-g<N>/…` after,
//!   `policies::profile::crl_dir`). Generation 1 comes with [`Roots`]; later ones join with
//!   [`Publisher::add_generation`] (also while running), and a generation that issues no more
//!   stops publishing once its last certificate has expired ([`Publisher::retire_generation`]).
//! * **Content** ([`Publisher::build`]): v2, sha256WithRSA by the generation's root, AKI equal
//!   to that root's SKI, a CRL number that strictly increases and is durably reserved before the
//!   CRL exists, reasonCode (left out for unspecified), invalidityDate, certificateHold entries;
//!   entries of certificates expired for longer than [`Settings::expired_margin`] are dropped.
//!   Each CRL is decoded again, its signature verified against the root and its number and
//!   IDP compared with the scope's last CRL before it replaces the previous file (atomically:
//!   temp file, fsync, rename, fsync of the directory).
//! * **Pipeline** ([`Publisher::mark_dirty`], [`Publisher::run`], [`Publisher::tick`]): only
//!   dirty partitions are rebuilt, within [`Settings::dirty_bound`]; every CRL is re-signed
//!   [`Settings::resign_margin`] before its nextUpdate.
//! * **Serving** ([`Publisher::handle`]): hyper 1, `/crl/<hierarchy>/<partition>.crl` and
//!   `/crl/<hierarchy>/<prefecture>/<municipality>.crl`, with cache headers;
//!   [`Publisher::publish_all`] writes a static set plus `index.json`, which maps each CRL's
//!   distribution point names (directoryName as an RFC 4514 string and as DER, URL) to its
//!   file, so that a relying party holding a certificate without a URL finds its CRL.
//!
//! The crate knows nothing of the CA's database: it reads revoked entries through
//! [`Source`] and keeps each scope's number, times and dirty flag in a [`StateStore`], both
//! implemented by the CA over its store ([`MemoryStore`] implements both for tests). Time comes
//! from an injected [`Clock`].
//!
//! A pass publishes its due CRLs as one batch (`Publisher::publish_batch`): numbers reserved
//! and dirty flags taken in one unit of work ([`StateStore::reserve_many`]), builds on one
//! thread per core while I/O threads write, fsync and rename each CRL as soon as it is built
//! (the disk overlaps the signing), each directory fsynced once at the end, states saved in
//! one unit of work ([`StateStore::save_many`]) — a few fsync rounds per pass instead of five
//! fsyncs per CRL. Not `syncfs`: it would flush the whole file system, other programs' writes
//! included. A number reserved but never published (a crash mid-pass) makes its CRL due at
//! the next pass, so the dirty flag taken with it is never lost. A pass woken by the
//! process's own [`Publisher::mark_dirty`] publishes those CRLs without reading the store's
//! dirty list (a scan of every CRL's state), which is read on full and timer passes and at
//! least every [`Settings::dirty_bound`]. At 10^6 revoked entries over 3,484 CRLs the pass
//! is bound by the 3,484 RSA signatures and self-checks (BENCHMARKS.md, session 5).
//!
//! ## Dependencies
//! * `x509-cert`/`der`: the typed CRL extensions (IDP with a directoryName fullName, AKI, CRL
//!   number). rcgen's CRL writer cannot express a directoryName IDP, and
//!   `x509_cert::builder::CrlBuilder` takes the wrong AKI (crate-notes §3.4–3.5); the entries
//!   themselves are written as DER bytes straight into the output buffer (module `encode`),
//!   which keeps a million-entry CRL at about its own size in memory (`BENCHMARKS.md`). The
//!   self-check decodes the result again with `der`'s strict reader and x509-cert's types.
//! * `x509-parser`: reads the root certificates (subject, SKI, key usage, key) and CRL files
//!   written by another run; the tests use it as an independent decoder.
//! * `aws-lc-rs` + `spki`: the self-check verifies each CRL's signature with the root's key
//!   while streaming through the CRL with `der` (x509-parser's CRL parser keeps every entry
//!   in memory: +130 MiB for a million, crate-notes §7).
//! * `hyper`/`hyper-util`/`http-body-util`/`bytes`: the HTTP endpoint; `Bytes` lets the cache,
//!   the encoder and the response share one copy of each CRL.
//! * `indicatif`: progress of `publish_all` on a terminal.
//!
//! ## Wiring it in
//!
//! ```no_run
//! use std::sync::Arc;
//! use crl_publisher::{MemoryStore, Publisher, Roots, Settings, SystemClock};
//! use policies::profile::Scope;
//! use policies::{Hierarchy, Policy, Signer};
//!
//! async fn serve(signing: Arc<dyn Signer>, auth: Arc<dyn Signer>) -> Result<(), Box<dyn std::error::Error>> {
//!     // the CA passes its sled-backed Source and StateStore here
//!     let store = Arc::new(MemoryStore::new());
//!     let publisher = Arc::new(Publisher::new(
//!         Policy::default_policy(),
//!         Settings::default(),
//!         Roots { signing, auth },
//!         store.clone(),
//!         store,
//!         "/var/lib/jpki/crl",
//!         Arc::new(SystemClock),
//!     )?);
//!     // the pipeline: first pass publishes everything, then dirty partitions and re-signing
//!     tokio::spawn(publisher.clone().run(std::future::pending()));
//!     // after a revocation has been stored:
//!     publisher.mark_dirty(Hierarchy::Signing, 1, Scope::Partition(7))?;
//!     // HTTP: route `/crl/...` to `publisher.handle(req).await`, or let it serve alone
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//!     publisher.serve(listener, std::future::pending()).await;
//!     Ok(())
//! }
//! ```
//!
//! ## What the CA must do
//! Store the revocation first, then call [`Publisher::mark_dirty`] for its scope: a revocation
//! stored before a build reads the source is in that CRL; one stored after sets the flag again
//! and is in the next. The CA stores each certificate's partition with it at issuance and lists
//! its revocation there, so a certificate stays on the partition its distribution point names
//! for its whole life, whatever the policy says later.

mod check;
mod encode;
mod error;
mod http;
mod publisher;
mod store;

pub use error::{BoxError, Error};
/// The clock is jpki's one clock (`policies::clock`), re-exported for the publisher's callers.
pub use policies::clock::{Clock, FixedClock, SystemClock};
pub use publisher::{Crl, IndexEntry, Publisher, Roots, Settings, Status, TickReport};
pub use store::{CrlId, Entry, Generation, MemoryStore, Published, Source, State, StateStore};

use policies::profile::Scope;

/// The name of a scope in file names, URLs and `index.json` ([`Scope::path`]): the serial
/// partition's number, `<prefecture>/<municipality>` (percent-encoded) or `ca`.
pub fn scope_name(scope: &Scope) -> String {
    scope.path()
}
