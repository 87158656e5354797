//! The publisher: builds, checks, writes and schedules the CRLs of both hierarchies.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use bytes::Bytes;
use der::asn1::{OctetString, Uint};
use der::{Decode, Encode};
use indicatif::{ProgressBar, ProgressStyle};
use policies::clock::Clock;
use policies::policy::PartitionScheme;
use policies::profile::{crl_dir, crl_dp_names_of, Scope};
use policies::{Hierarchy, Policy, Signer};
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::sync::Notify;
use x509_cert::ext::pkix::crl::dp::IssuingDistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlNumber};
use x509_cert::ext::{Extension, ToExtension};
use x509_cert::name::Name;
use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};

use crate::encode::CrlEncoder;
use crate::store::{CrlId, Generation, Published, Source, State, StateStore};
use crate::{scope_name, BoxError, Error};

/// Tunables of the publisher that the policy file does not (yet) carry.
#[derive(Debug, Clone)]
pub struct Settings {
    /// An entry is dropped once its certificate's notAfter plus this margin has passed. Must be
    /// at least the CRL validity (`crl.next_update_hours`), so that every entry appears on at
    /// least one CRL issued after its certificate expired (RFC 5280 §3.3). Default: 1 day.
    pub expired_margin: time::Duration,
    /// A partition marked dirty is re-published within this bound. Default: 60 s.
    pub dirty_bound: std::time::Duration,
    /// After a mark, wait this long to collect further revocations into the same build
    /// (at most `dirty_bound`). Default: 2 s.
    pub batch_delay: std::time::Duration,
    /// Every CRL is re-signed this long before its nextUpdate. Default: 6 h.
    pub resign_margin: time::Duration,
    /// Show progress bars (only ever drawn when stderr is a terminal). Default: true.
    pub progress: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            expired_margin: time::Duration::days(1),
            dirty_bound: std::time::Duration::from_secs(60),
            batch_delay: std::time::Duration::from_secs(2),
            resign_margin: time::Duration::hours(6),
            progress: true,
        }
    }
}

impl Settings {
    fn validate(&self, policy: &Policy) -> Result<(), Error> {
        let bad = |field, problem: String| Err(Error::Settings { field, problem });
        let validity = time::Duration::hours(i64::from(policy.crl.next_update_hours));
        if self.expired_margin < validity {
            return bad(
                "expired_margin",
                format!(
                    "must be at least the CRL validity ({validity}), got {}",
                    self.expired_margin
                ),
            );
        }
        if self.dirty_bound.is_zero() {
            return bad("dirty_bound", "must be positive".into());
        }
        if self.batch_delay > self.dirty_bound {
            return bad(
                "batch_delay",
                format!("must not exceed dirty_bound ({:?})", self.dirty_bound),
            );
        }
        if self.resign_margin <= time::Duration::ZERO || self.resign_margin >= validity {
            return bad(
                "resign_margin",
                format!("must be positive and below the CRL validity ({validity})"),
            );
        }
        Ok(())
    }
}

/// The signing roots of both hierarchies: their first generation (the roots `jpki init`
/// made). Later generations join with [`Publisher::add_generation`].
pub struct Roots {
    pub signing: Arc<dyn Signer>,
    pub auth: Arc<dyn Signer>,
}

/// What the publisher takes from a root certificate.
struct Root {
    signer: Arc<dyn Signer>,
    /// The subject Name, DER, byte for byte as in the certificate: the CRL's issuer.
    subject: Vec<u8>,
    name: Name,
    /// The subjectKeyIdentifier: the CRL's authorityKeyIdentifier (RFC 5280 §5.2.1).
    ski: Vec<u8>,
    /// The SubjectPublicKeyInfo, DER: checks each CRL's signature.
    spki: Vec<u8>,
    /// When the generation's CRLs stop being published ([`Publisher::retire_generation`]):
    /// `None` while it may have certificates that have not expired.
    until: Option<OffsetDateTime>,
}

impl Root {
    fn new(h: Hierarchy, signer: Arc<dyn Signer>) -> Result<Root, Error> {
        let bad = |problem: String| Error::Root {
            hierarchy: h,
            problem,
        };
        let (_, cert) = X509Certificate::from_der(signer.certificate())
            .map_err(|e| bad(format!("cannot parse: {e}")))?;
        let mut ski = None;
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => ski = Some(k.0.to_vec()),
                ParsedExtension::KeyUsage(ku) if !ku.crl_sign() => {
                    return Err(bad("keyUsage lacks cRLSign".into()));
                }
                _ => {}
            }
        }
        let ski = ski.ok_or_else(|| {
            bad("has no subjectKeyIdentifier, which the CRL's AKI must repeat".into())
        })?;
        let subject = cert.tbs_certificate.subject.as_raw().to_vec();
        let name = Name::from_der(&subject).map_err(|e| bad(format!("subject: {e}")))?;
        let spki = cert.tbs_certificate.subject_pki.raw.to_vec();
        Ok(Root {
            signer,
            subject,
            name,
            ski,
            spki,
            until: None,
        })
    }
}

/// One signed CRL, as built and checked.
#[derive(Debug, Clone)]
pub struct Crl {
    pub hierarchy: Hierarchy,
    /// The root generation that signed it.
    pub generation: Generation,
    pub scope: Scope,
    pub number: u64,
    pub this_update: OffsetDateTime,
    pub next_update: OffsetDateTime,
    pub entries: u64,
    /// The DER CertificateList.
    pub der: Bytes,
    pub sha256: [u8; 32],
    /// DER of the issuingDistributionPoint extension value.
    pub idp: Vec<u8>,
    /// Time spent reading the source, encoding and signing (for metrics and benchmarks).
    pub build_time: std::time::Duration,
    /// Time spent on the self-check.
    pub check_time: std::time::Duration,
}

impl Crl {
    fn published(&self) -> Published {
        Published {
            number: self.number,
            this_update: self.this_update,
            next_update: self.next_update,
            entries: self.entries,
            size: self.der.len() as u64,
            sha256: hex::encode(self.sha256),
            idp: hex::encode(&self.idp),
        }
    }
}

/// The outcome of one pass of the pipeline ([`Publisher::tick`]).
#[derive(Debug, Default)]
pub struct TickReport {
    /// `(hierarchy, generation, scope, number)` of every CRL published.
    pub published: Vec<(Hierarchy, Generation, Scope, u64)>,
    /// Scopes whose build or write failed; their previous file is still served.
    pub failed: Vec<(Hierarchy, Generation, Scope, Error)>,
    /// The scopes could not be listed (the state store failed): nothing was published.
    pub listing: Option<Error>,
}

/// One line of `index.json` (see [`Publisher::publish_all`]).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IndexEntry {
    /// Relative to the output directory, e.g. `auth/Ibaraki-ken/Tsukuba-shi.crl`.
    pub file: String,
    pub hierarchy: Hierarchy,
    /// The root generation that signs the CRL (and issued the certificates it lists).
    pub generation: Generation,
    /// The signing root's subjectKeyIdentifier, upper-case hex: the CRL's
    /// authorityKeyIdentifier and the keyIdentifier of the certificates' AKI. Every
    /// generation has the same issuer name, so a relying party picks the CRL by this key.
    pub issuer_key_id: String,
    /// The scope's path ([`Scope::path`]): a serial partition's number,
    /// `<prefecture>/<municipality>`, or `ca`.
    pub partition: String,
    /// The directoryName certificates on this CRL name in their cRLDistributionPoints (and
    /// the CRL in its issuingDistributionPoint), as text (`C=JP, O=JPKI, …, CN=Tsukuba-shi
    /// CRLDP`); absent when the policy writes no directoryName.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory_name: Option<String>,
    /// The same name as hex DER: what a relying party compares with the certificate's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory_name_der: Option<String>,
    /// The CRL's URL, when the policy writes URLs into distribution points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub number: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub this_update: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub next_update: OffsetDateTime,
    pub entries: u64,
    pub size: u64,
    pub sha256: String,
}

/// One row of [`Publisher::status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub hierarchy: Hierarchy,
    pub generation: Generation,
    pub scope: Scope,
    /// `None` until the scope's first CRL is written.
    pub published: Option<Published>,
    /// `now - thisUpdate` of the last CRL.
    pub age: Option<time::Duration>,
}

/// A served file and what HTTP says about it.
#[derive(Debug)]
pub(crate) struct Served {
    pub(crate) der: Bytes,
    pub(crate) etag: String,
    pub(crate) last_modified: OffsetDateTime,
    pub(crate) next_update: OffsetDateTime,
}

impl Served {
    pub(crate) fn new(
        der: Bytes,
        sha256: &[u8],
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Served {
        Served {
            der,
            etag: format!("\"{}\"", hex::encode(&sha256[..16])),
            last_modified: this_update,
            next_update,
        }
    }
}

/// Builds, self-checks, writes and serves the CRLs of both hierarchies.
///
/// All CRLs live under one directory that maps to the URL path `/crl/`:
/// `<dir>/<hierarchy>/<partition>.crl` and `<dir>/<hierarchy>/ca.crl`.
pub struct Publisher {
    pub(crate) policy: Policy,
    settings: Settings,
    /// Every root generation the publisher signs with, by (hierarchy, generation).
    roots: RwLock<BTreeMap<(Hierarchy, Generation), Arc<Root>>>,
    source: Arc<dyn Source>,
    pub(crate) state: Arc<dyn StateStore>,
    pub(crate) dir: PathBuf,
    pub(crate) clock: Arc<dyn Clock>,
    /// Wakes [`Publisher::run`] when a scope is marked dirty.
    wake: Notify,
    /// One build at a time: numbers and files of a scope must not interleave.
    build: Mutex<()>,
    pub(crate) cache: RwLock<HashMap<CrlId, Arc<Served>>>,
    /// The earliest re-signing (or retry) any CRL is due at, as the last full pass found it:
    /// until then a pass publishes only the dirty CRLs, found by one indexed read, instead of
    /// reading every CRL's state. `None` until a full pass ran (and after a new generation).
    resign_due: Mutex<Option<OffsetDateTime>>,
    /// The CRLs marked through [`Publisher::mark_dirty`] since the last pass, and when the
    /// store's dirty list was last read. A pass woken by this process's own marks publishes
    /// those CRLs without reading the store's list (which costs a scan of every CRL's state);
    /// the list is still read at least every `dirty_bound`, for flags set behind the
    /// publisher's back (another CA node, a municipal partition flagged by its first
    /// certificate), and on every full pass.
    marked: Mutex<Marked>,
}

/// See [`Publisher::marked`].
#[derive(Default)]
struct Marked {
    scopes: BTreeSet<CrlId>,
    listed: Option<std::time::Instant>,
}

impl Publisher {
    pub fn new(
        policy: Policy,
        settings: Settings,
        roots: Roots,
        source: Arc<dyn Source>,
        state: Arc<dyn StateStore>,
        dir: impl Into<PathBuf>,
        clock: Arc<dyn Clock>,
    ) -> Result<Publisher, Error> {
        settings.validate(&policy)?;
        let mut first = BTreeMap::new();
        first.insert(
            (Hierarchy::Signing, 1),
            Arc::new(Root::new(Hierarchy::Signing, roots.signing)?),
        );
        first.insert(
            (Hierarchy::Auth, 1),
            Arc::new(Root::new(Hierarchy::Auth, roots.auth)?),
        );
        Ok(Publisher {
            roots: RwLock::new(first),
            policy,
            settings,
            source,
            state,
            dir: dir.into(),
            clock,
            wake: Notify::new(),
            build: Mutex::new(()),
            cache: RwLock::new(HashMap::new()),
            resign_due: Mutex::new(None),
            marked: Mutex::new(Marked::default()),
        })
    }

    /// Adds (or replaces) generation `generation` of a hierarchy's root: from now on the
    /// publisher publishes that generation's CRLs — the CRLs of the certificates it issued,
    /// signed with its key — beside the others'. What `jpki serve` calls for every
    /// generation after the first, at start and when a rollover reaches a running server.
    pub fn add_generation(
        &self,
        h: Hierarchy,
        generation: Generation,
        signer: Arc<dyn Signer>,
    ) -> Result<(), Error> {
        let root = Root::new(h, signer)?;
        let mut roots = self.roots.write().unwrap_or_else(PoisonError::into_inner);
        let until = roots.get(&(h, generation)).and_then(|r| r.until);
        roots.insert((h, generation), Arc::new(Root { until, ..root }));
        drop(roots);
        // its CRLs were never published: the next pass is a full one
        *self
            .resign_due
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        self.wake.notify_one();
        Ok(())
    }

    /// The generations the publisher signs with, as `(hierarchy, generation)`.
    pub fn generations(&self) -> Vec<(Hierarchy, Generation)> {
        self.roots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .copied()
            .collect()
    }

    /// Says that generation `generation` of a hierarchy issues nothing any more and that the
    /// last certificate it issued expires at `last_expiry`: its CRLs are published until
    /// `last_expiry` plus [`Settings::expired_margin`] (so that every entry appears on one
    /// CRL issued after its certificate expired, RFC 5280 §3.3), then no more.
    pub fn retire_generation(
        &self,
        h: Hierarchy,
        generation: Generation,
        last_expiry: OffsetDateTime,
    ) {
        let until = last_expiry
            .checked_add(self.settings.expired_margin)
            .unwrap_or(last_expiry);
        let mut roots = self.roots.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(r) = roots.get(&(h, generation)) {
            let r = Root {
                signer: Arc::clone(&r.signer),
                subject: r.subject.clone(),
                name: r.name.clone(),
                ski: r.ski.clone(),
                spki: r.spki.clone(),
                until: Some(until),
            };
            roots.insert((h, generation), Arc::new(r));
        }
    }

    /// If generation `g` of a hierarchy has stopped publishing by `now`
    /// ([`Publisher::retire_generation`]): when its last certificate expired, and until when
    /// its CRLs were published. Its CRLs are then neither published, listed in `index.json`,
    /// nor served.
    pub fn retired_since(
        &self,
        h: Hierarchy,
        g: Generation,
        now: OffsetDateTime,
    ) -> Option<(OffsetDateTime, OffsetDateTime)> {
        let until = self
            .roots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(h, g))
            .and_then(|r| r.until)
            .filter(|u| now > *u)?;
        let last = until
            .checked_sub(self.settings.expired_margin)
            .unwrap_or(until);
        Some((last, until))
    }

    fn root(&self, h: Hierarchy, g: Generation) -> Result<Arc<Root>, Error> {
        self.roots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(h, g))
            .cloned()
            .ok_or_else(|| Error::Root {
                hierarchy: h,
                problem: format!("generation {g} of the root is not known to the publisher"),
            })
    }

    /// Every CRL scope, in order: for each root generation still publishing, its CA-level
    /// CRL, its serial partitions when the policy issues into them (`crl.partition_by =
    /// "serial"`), and every scope of it the state store knows — municipal partitions
    /// (flagged by their first certificate) and the serial partitions of a store made before
    /// municipal partitions, published until the store forgets them. A generation's CRLs
    /// stop once its last certificate has expired ([`Publisher::retire_generation`]), and
    /// the store's scopes of a generation the publisher has no root for are left out.
    pub fn scopes(&self) -> Result<Vec<CrlId>, Error> {
        let live = self.live(self.clock.now());
        let mut all = BTreeSet::new();
        for &(h, g) in &live {
            all.insert((h, g, Scope::Ca));
            if self.policy.crl.partition_by == PartitionScheme::Serial {
                all.extend((0..self.policy.crl.partitions).map(|p| (h, g, Scope::Partition(p))));
            }
        }
        let known = self.state.scopes().map_err(|source| Error::State {
            hierarchy: Hierarchy::Signing,
            scope: "(listing every CRL)".into(),
            source,
        })?;
        all.extend(
            known
                .into_iter()
                .filter(|(h, g, _)| live.contains(&(*h, *g))),
        );
        Ok(all.into_iter().collect())
    }

    /// The generations whose CRLs are published at `now` (not retired).
    fn live(&self, now: OffsetDateTime) -> BTreeSet<(Hierarchy, Generation)> {
        self.roots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, r)| r.until.is_none_or(|u| now <= u))
            .map(|(k, _)| *k)
            .collect()
    }

    /// The file of a scope relative to the CRL directory, as in its URL: `signing/7.crl`,
    /// `auth/Ibaraki-ken/Tsukuba-shi.crl`, `auth/ca.crl` for generation 1, `auth-g2/ca.crl`
    /// for generation 2 ([`crl_dir`]).
    pub fn file_name(h: Hierarchy, g: Generation, scope: &Scope) -> String {
        format!("{}/{}.crl", crl_dir(h, g), scope_name(scope))
    }

    /// Records that a revocation changed `(h, g, scope)`: durably (the state store's flag)
    /// and for the running pipeline. Call it after the revocation itself is stored.
    pub fn mark_dirty(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<(), Error> {
        self.state
            .set_dirty(h, g, scope.clone())
            .map_err(Error::state(h, &scope))?;
        // after the flag is durable: a pass that takes this mark finds the flag set
        self.marked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .scopes
            .insert((h, g, scope));
        self.wake.notify_one();
        Ok(())
    }

    fn load(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<State, Error> {
        Ok(self
            .state
            .load(h, g, scope.clone())
            .map_err(Error::state(h, &scope))?
            .unwrap_or_default())
    }

    /// Builds, signs and self-checks the next CRL of `(h, g, scope)` as of `now`, without
    /// writing it. Its number is reserved durably first, so it is never handed out again.
    pub fn build(
        &self,
        h: Hierarchy,
        g: Generation,
        scope: Scope,
        now: OffsetDateTime,
    ) -> Result<Crl, Error> {
        let _guard = self.build.lock().unwrap_or_else(PoisonError::into_inner);
        self.build_with(h, g, scope.clone(), now, &ProgressBar::hidden())
    }

    fn build_with(
        &self,
        h: Hierarchy,
        g: Generation,
        scope: Scope,
        now: OffsetDateTime,
        bar: &ProgressBar,
    ) -> Result<Crl, Error> {
        self.root(h, g)?; // no number is taken for a generation the publisher cannot sign
        let mut state = self.load(h, g, scope.clone())?;
        state.last_number = next_number(h, &scope, &state)?;
        self.state
            .save(h, g, scope.clone(), &state)
            .map_err(Error::state(h, &scope))?;
        self.sign_reserved(h, g, scope, &state, now, bar)
    }

    /// Builds, signs and self-checks the CRL numbered `state.last_number` (already reserved
    /// durably) of `(h, g, scope)`; `state.published` is the last CRL published.
    fn sign_reserved(
        &self,
        h: Hierarchy,
        g: Generation,
        scope: Scope,
        state: &State,
        now: OffsetDateTime,
        bar: &ProgressBar,
    ) -> Result<Crl, Error> {
        let sname = || scope_name(&scope);
        let root = self.root(h, g)?;
        let number = state.last_number;

        let idp = IssuingDistributionPoint {
            distribution_point: Some(DistributionPointName::FullName(crl_dp_names_of(
                &self.policy,
                h,
                g,
                scope.clone(),
            )?)),
            only_contains_user_certs: scope.is_end_entity(),
            only_contains_ca_certs: false,
            only_some_reasons: None,
            indirect_crl: false,
            only_contains_attribute_certs: false,
        }
        .to_der()
        .map_err(Error::der("issuingDistributionPoint"))?;
        let check = |problem: String| Error::SelfCheck {
            hierarchy: h,
            scope: sname(),
            number,
            problem,
        };
        if let Some(prev) = &state.published {
            if prev.idp != hex::encode(&idp) {
                return Err(check(
                    "issuingDistributionPoint differs from the partition's last CRL".into(),
                ));
            }
        }

        let aki = AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(root.ski.clone()).map_err(Error::der("AKI"))?),
            ..Default::default()
        };
        let der_err = Error::der("CRL extensions");
        let extensions = vec![
            aki.to_extension(&root.name, &[])
                .map_err(Error::der("AKI"))?,
            CrlNumber(Uint::new(&number.to_be_bytes()).map_err(Error::der("cRLNumber"))?)
                .to_extension(&root.name, &[])
                .map_err(Error::der("cRLNumber"))?,
            Extension {
                extn_id: crate::check::OID_IDP,
                critical: true,
                extn_value: OctetString::new(idp.clone())
                    .map_err(Error::der("issuingDistributionPoint"))?,
            },
        ]
        .to_der()
        .map_err(der_err)?;

        let this_update = now.replace_nanosecond(0).unwrap_or(now);
        let next_update =
            this_update + time::Duration::hours(i64::from(self.policy.crl.next_update_hours));
        let started = std::time::Instant::now();
        let hint = self.source.count_hint(h, g, scope.clone()).unwrap_or(0);
        let mut enc = CrlEncoder::new(&root.subject, this_update, next_update, hint)?;
        let cutoff = this_update.checked_sub(self.settings.expired_margin);
        let mut failure = None;
        let mut dropped = 0u64;
        let mut seen = 0u64;
        self.source
            .for_each(h, g, scope.clone(), &mut |e| {
                seen += 1;
                if seen & 0xffff == 0 {
                    bar.set_message(format!("{h}/{}: {seen} entries", scope_name(&scope)));
                }
                if failure.is_some() {
                    return;
                }
                // not_after + margin < thisUpdate, with the subtraction done once
                if cutoff.is_some_and(|c| e.not_after < c) {
                    dropped += 1;
                } else if let Err(err) = enc.push(e) {
                    failure = Some(err);
                }
            })
            .map_err(|source| Error::Source {
                hierarchy: h,
                scope: sname(),
                source,
            })?;
        if let Some(err) = failure {
            return Err(err);
        }
        let entries = enc.entries();
        let der = enc.finish(&extensions, |tbs| {
            root.signer.sign(tbs).map_err(|source| Error::Sign {
                hierarchy: h,
                source,
            })
        })?;
        let build_time = started.elapsed();
        let started = std::time::Instant::now();
        self.self_check(
            &root,
            &der,
            number,
            &idp,
            entries,
            this_update,
            next_update,
            state.published.as_ref(),
        )
        .map_err(check)?;
        let check_time = started.elapsed();
        tracing::debug!(hierarchy = %h, scope = %sname(), number, entries, dropped, size = der.len(), "CRL built");
        let sha256 = Sha256::digest(&der).into();
        Ok(Crl {
            hierarchy: h,
            generation: g,
            scope,
            number,
            this_update,
            next_update,
            entries,
            der,
            sha256,
            idp,
            build_time,
            check_time,
        })
    }

    /// The self-check (module `check`): a streaming strict-DER decode, the signature verified
    /// with the root's key, every promised field compared; plus continuity with the last CRL.
    #[allow(clippy::too_many_arguments)]
    fn self_check(
        &self,
        root: &Root,
        der: &[u8],
        number: u64,
        idp: &[u8],
        entries: u64,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
        prev: Option<&Published>,
    ) -> Result<(), String> {
        let want_number = Uint::new(&number.to_be_bytes()).map_err(|e| e.to_string())?;
        crate::check::check(
            der,
            &crate::check::Expect {
                spki: &root.spki,
                issuer: &root.subject,
                ski: &root.ski,
                number: want_number.as_bytes(),
                idp,
                this_update: this_update.unix_timestamp(),
                next_update: next_update.unix_timestamp(),
                entries,
            },
        )?;
        if next_update <= this_update {
            return Err("nextUpdate is not after thisUpdate".into());
        }
        if let Some(prev) = prev {
            if number <= prev.number {
                return Err(format!(
                    "number {number} is not above the last published {}",
                    prev.number
                ));
            }
            if prev.idp != hex::encode(idp) {
                return Err("issuingDistributionPoint differs from the last published CRL".into());
            }
        }
        Ok(())
    }

    /// Publishes `(h, scope.clone())` into `dir` if `force`, if it is dirty, or if it is due for
    /// re-signing; returns the CRL written, or `None` when nothing was due.
    #[allow(clippy::too_many_arguments)]
    fn publish_due(
        &self,
        h: Hierarchy,
        g: Generation,
        scope: Scope,
        now: OffsetDateTime,
        dir: &Path,
        force: bool,
        bar: &ProgressBar,
    ) -> Result<Option<Crl>, Error> {
        let _guard = self.build.lock().unwrap_or_else(PoisonError::into_inner);
        // Cleared before the source is read: a revocation stored after this point sets the
        // flag again and lands in the next CRL; one stored before is read by this build.
        // Only the publisher's own directory (the served one) consumes dirty flags and
        // records what it published; a copy elsewhere (`publish_all` to a CDN folder) must not
        // make the served CRLs look fresher than they are.
        let own = dir == self.dir;
        // A CRL leased by another node is its to publish: checked before the dirty flag is
        // taken, so the flag is never cleared here only to be set again (which would delay
        // the lease holder's publication). A forced publication goes on and is refused at
        // `save`, saying who holds the lease.
        if own
            && !force
            && !self
                .state
                .may_publish(h, g, scope.clone())
                .map_err(Error::state(h, &scope))?
        {
            return Ok(None);
        }
        let dirty = own
            && self
                .state
                .take_dirty(h, g, scope.clone())
                .map_err(Error::state(h, &scope))?;
        let result = (|| {
            let state = self.load(h, g, scope.clone())?;
            let stale = state
                .published
                .as_ref()
                .is_none_or(|p| now >= resign_at(p, self.settings.resign_margin));
            if !(force || dirty || stale) {
                return Ok(None);
            }
            let crl = self.build_with(h, g, scope.clone(), now, bar)?;
            let path = dir.join(Publisher::file_name(h, g, &scope));
            write_atomic(&path, &crl.der).map_err(|source| Error::Write { path, source })?;
            if own {
                let served = Served::new(
                    crl.der.clone(),
                    &crl.sha256,
                    crl.this_update,
                    crl.next_update,
                );
                self.cache
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert((h, g, scope.clone()), Arc::new(served));
                let state = State {
                    last_number: crl.number,
                    published: Some(crl.published()),
                };
                self.state
                    .save(h, g, scope.clone(), &state)
                    .map_err(Error::state(h, &scope))?;
            }
            tracing::info!(hierarchy = %h, generation = g, scope = %scope_name(&scope), number = crl.number, entries = crl.entries,
                size = crl.der.len(), dirty, "CRL published");
            Ok(Some(crl))
        })();
        if result.is_err() && dirty {
            // not published: keep the revocation pending
            if let Err(e) = self.state.set_dirty(h, g, scope.clone()) {
                tracing::error!(hierarchy = %h, scope = %scope_name(&scope), error = %e, "cannot re-mark CRL dirty");
            }
        }
        result
    }

    /// Publishes the CRLs `due` (each with its state as loaded) into `dir` as one batch, so that
    /// a pass costs a few durable units of work and one fsync round rather than five fsyncs
    /// per CRL. The caller holds `self.build`.
    ///
    /// 1. One unit of work reserves every number and (into the publisher's own directory) takes
    ///    the dirty flags ([`StateStore::reserve_many`]): a number is never handed out twice,
    ///    and a revocation stored after it sets its flag again and lands in the next CRL. A
    ///    crash after it leaves numbers reserved but not published, which the next pass
    ///    publishes ([`tick`](Publisher::tick)): no revocation is left unpublished.
    /// 2. The CRLs are built, signed and self-checked from one thread per core.
    /// 3. Meanwhile ([`pipeline`]), as each CRL is built, I/O threads write it beside its place,
    ///    fsync and rename it ([`write_renamed`]); at the end each directory is fsynced once
    ///    ([`sync_dirs`]): a file is complete or absent, and durable once its directory is.
    /// 4. One unit of work records what was published ([`StateStore::save_many`]).
    ///
    /// A CRL that fails at any step keeps its previous file, and its dirty flag is set again.
    #[allow(clippy::type_complexity)]
    fn publish_batch(
        &self,
        due: Vec<(CrlId, State)>,
        now: OffsetDateTime,
        dir: &Path,
        bar: &ProgressBar,
    ) -> Vec<(CrlId, Result<Crl, Error>)> {
        if due.is_empty() {
            return Vec::new(); // not even an empty unit of work
        }
        let own = dir == self.dir;
        let fail = |id: &CrlId, e: BoxError| Error::state(id.0, &id.2)(e);
        let mut out = Vec::with_capacity(due.len());
        let mut phases = Phases::start(due.len());
        // 1. reserve the numbers (and take the dirty flags)
        let mut batch = Vec::with_capacity(due.len());
        for (id, mut state) in due {
            match next_number(id.0, &id.2, &state) {
                Ok(n) => {
                    state.last_number = n;
                    batch.push((id, state));
                }
                Err(e) => out.push((id, Err(e))),
            }
        }
        let reserved = if own {
            self.state.reserve_many(&batch)
        } else {
            // a copy takes numbers but leaves the dirty flags to the served CRLs
            self.state
                .save_many(&batch)
                .map(|r| r.into_iter().map(|r| r.map(|()| false)).collect())
        };
        let reserved = match reserved {
            Ok(r) => r,
            Err(e) => {
                let e = e.to_string();
                out.extend(
                    batch
                        .into_iter()
                        .map(|(id, _)| (id.clone(), Err(fail(&id, e.clone().into())))),
                );
                return out;
            }
        };
        phases.reserved();
        let mut jobs = Vec::with_capacity(batch.len());
        for ((id, state), r) in batch.into_iter().zip(reserved) {
            match r {
                Ok(dirty) => jobs.push((id, state, dirty)),
                Err(e) => out.push((id.clone(), Err(fail(&id, e)))),
            }
        }
        // 2. build, sign and check on the cores; 3. meanwhile the I/O threads write each CRL
        // built beside its place, fsync and rename it, then each directory is fsynced once
        let paths: Vec<PathBuf> = jobs
            .iter()
            .map(|((h, g, scope), _, _)| dir.join(Publisher::file_name(*h, *g, scope)))
            .collect();
        let (built, written): (Vec<_>, Vec<_>) = pipeline(
            &jobs,
            cpu_threads(),
            SYNC_THREADS,
            |((h, g, scope), state, _)| {
                bar.set_message(format!("{}/{}", crl_dir(*h, *g), scope_name(scope)));
                let crl = self.sign_reserved(*h, *g, scope.clone(), state, now, bar);
                bar.inc(1);
                crl
            },
            |i, crl: &Result<Crl, Error>| {
                let started = std::time::Instant::now();
                let w = crl
                    .as_ref()
                    .ok()
                    .map(|crl| write_renamed(&paths[i], &crl.der));
                (w, started.elapsed())
            },
        )
        .into_iter()
        .unzip();
        let written: Vec<_> = written
            .into_iter()
            .map(|(w, took)| {
                phases.wrote(took);
                w
            })
            .collect();
        phases.built(&built);
        let written = sync_dirs(written);
        phases.synced();
        let mut done = Vec::with_capacity(jobs.len());
        let mut failed = Vec::new();
        for ((((id, _, dirty), crl), w), path) in
            jobs.into_iter().zip(built).zip(written).zip(paths)
        {
            let crl = crl.and_then(|crl| {
                w.unwrap_or_else(|| Err(std::io::Error::other("not written")))
                    .map_err(|source| Error::Write { path, source })?;
                Ok(crl)
            });
            match crl {
                Ok(crl) => done.push((id, dirty, crl)),
                Err(e) => failed.push((id, dirty, e)),
            }
        }
        // 4. record what was published
        if own && !done.is_empty() {
            let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
            for (id, _, crl) in &done {
                let served = Served::new(
                    crl.der.clone(),
                    &crl.sha256,
                    crl.this_update,
                    crl.next_update,
                );
                cache.insert(id.clone(), Arc::new(served));
            }
            drop(cache);
            let states: Vec<(CrlId, State)> = done
                .iter()
                .map(|(id, _, crl)| {
                    let state = State {
                        last_number: crl.number,
                        published: Some(crl.published()),
                    };
                    (id.clone(), state)
                })
                .collect();
            let saved: Vec<Result<(), BoxError>> = match self.state.save_many(&states) {
                Ok(r) => r,
                Err(e) => {
                    let e = e.to_string();
                    states.iter().map(|_| Err(e.clone().into())).collect()
                }
            };
            let mut kept = Vec::with_capacity(done.len());
            for ((id, dirty, crl), r) in done.into_iter().zip(saved) {
                match r {
                    Ok(()) => kept.push((id, dirty, crl)),
                    Err(e) => failed.push((id.clone(), dirty, fail(&id, e))),
                }
            }
            done = kept;
        }
        phases.saved(done.len());
        for ((h, g, scope), dirty, crl) in done {
            tracing::info!(hierarchy = %h, generation = g, scope = %scope_name(&scope), number = crl.number, entries = crl.entries,
                size = crl.der.len(), dirty, "CRL published");
            out.push(((h, g, scope), Ok(crl)));
        }
        for ((h, g, scope), dirty, e) in failed {
            if dirty {
                // not published: keep the revocation pending
                if let Err(e) = self.state.set_dirty(h, g, scope.clone()) {
                    tracing::error!(hierarchy = %h, scope = %scope_name(&scope), error = %e, "cannot re-mark CRL dirty");
                }
            }
            out.push(((h, g, scope), Err(e)));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Builds and writes the next CRL of `(h, g, scope)` into the publisher's directory now,
    /// whether or not it is due. A failure leaves the previous file in place.
    pub fn publish(
        &self,
        h: Hierarchy,
        g: Generation,
        scope: Scope,
        now: OffsetDateTime,
    ) -> Result<Crl, Error> {
        let crl = self.publish_due(
            h,
            g,
            scope.clone(),
            now,
            &self.dir,
            true,
            &ProgressBar::hidden(),
        )?;
        // force = true always builds
        crl.ok_or_else(|| Error::Task("forced publication built nothing".into()))
    }

    /// One pass of the pipeline: publishes every scope that is dirty, was never published, is
    /// within `resign_margin` of its nextUpdate, or whose last reserved number was never
    /// published (a pass cut short by a crash). Other scopes are not touched.
    ///
    /// With a store that lists its dirty CRLs ([`StateStore::dirty`]) the due CRLs are
    /// published as one batch (`Publisher::publish_batch`), and until the earliest
    /// re-signing the last full pass found, a pass reads only the dirty list — or, when woken
    /// by this process's own marks within `dirty_bound` of the last listing, only those
    /// CRLs (`Publisher::dirty_now`).
    pub fn tick(&self, now: OffsetDateTime) -> TickReport {
        let started = std::time::Instant::now();
        let dirty = match self.dirty_now(now) {
            Ok(Some(dirty)) => dirty,
            Ok(None) => return self.tick_each(now),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the dirty CRLs; reading every CRL's state");
                return self.tick_each(now);
            }
        };
        let mut report = TickReport::default();
        let _guard = self.build.lock().unwrap_or_else(PoisonError::into_inner);
        let known = *self
            .resign_due
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let full = known.is_none_or(|t| now >= t);
        let scopes = if full {
            match self.scopes() {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot list the CRLs; nothing published this pass");
                    report.listing = Some(e);
                    return report;
                }
            }
        } else {
            let live = self.live(now);
            dirty
                .iter()
                .filter(|(h, g, _)| live.contains(&(*h, *g)))
                .cloned()
                .collect()
        };
        let dirty: BTreeSet<CrlId> = dirty.into_iter().collect();
        // the earliest re-signing among the CRLs not published now
        let mut earliest: Option<OffsetDateTime> = None;
        let mut soonest = |t: OffsetDateTime| earliest = Some(earliest.map_or(t, |e| e.min(t)));
        let mut due = Vec::new();
        for id in scopes {
            let (h, g, scope) = id.clone();
            let state = self
                .state
                .may_publish(h, g, scope.clone())
                .map_err(Error::state(h, &scope))
                .and_then(|mine| mine.then(|| self.load(h, g, scope.clone())).transpose());
            match state {
                // another node's: look again within the dirty bound (its lease may run out)
                Ok(None) => soonest(now + self.settings.dirty_bound),
                Ok(Some(state)) => {
                    let resign = state
                        .published
                        .as_ref()
                        .filter(|p| p.number == state.last_number)
                        .map(|p| resign_at(p, self.settings.resign_margin));
                    match resign {
                        Some(t) if now < t && !dirty.contains(&id) => soonest(t),
                        _ => due.push((id, state)),
                    }
                }
                Err(e) => {
                    tracing::error!(hierarchy = %h, generation = g, scope = %scope_name(&scope), error = %e, "CRL not published");
                    report.failed.push((h, g, scope, e));
                }
            }
        }
        if !due.is_empty() {
            // what a pass costs before its batch: the dirty list, and every state on a full pass
            tracing::debug!(
                full,
                due = due.len(),
                listing_ms = started.elapsed().as_secs_f64() * 1e3,
                "CRL pass"
            );
        }
        for ((h, g, scope), result) in
            self.publish_batch(due, now, &self.dir, &ProgressBar::hidden())
        {
            match result {
                Ok(crl) => {
                    soonest(
                        crl.next_update
                            .checked_sub(self.settings.resign_margin)
                            .unwrap_or(crl.next_update),
                    );
                    report.published.push((h, g, scope, crl.number));
                }
                Err(e) => {
                    tracing::error!(hierarchy = %h, generation = g, scope = %scope_name(&scope), error = %e, "CRL not published");
                    report.failed.push((h, g, scope, e));
                }
            }
        }
        if !report.failed.is_empty() {
            soonest(now); // the next pass reads every state again
        }
        let mut known = self
            .resign_due
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *known = if full {
            Some(earliest.unwrap_or(now + self.settings.dirty_bound))
        } else {
            known.zip(earliest).map(|(k, e)| k.min(e)).or(*known)
        };
        report
    }

    /// The dirty CRLs a pass at `now` publishes: the ones this process marked
    /// ([`Publisher::marked`]) when that is enough — not a full pass, marks waiting, and the
    /// store's list read within `dirty_bound` — otherwise the store's list
    /// ([`StateStore::dirty`]), which includes the marks taken here (each flag is set before
    /// its mark is recorded). `None`: the store cannot list them.
    fn dirty_now(&self, now: OffsetDateTime) -> Result<Option<Vec<CrlId>>, BoxError> {
        let full = self
            .resign_due
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none_or(|t| now >= t);
        let mut marked = self.marked.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = marked
            .listed
            .is_some_and(|t| t.elapsed() < self.settings.dirty_bound);
        let scopes = std::mem::take(&mut marked.scopes);
        if !full && fresh && !scopes.is_empty() {
            return Ok(Some(scopes.into_iter().collect()));
        }
        let listing = std::time::Instant::now();
        drop(marked);
        let dirty = self.state.dirty()?;
        if dirty.is_some() {
            self.marked
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .listed = Some(listing);
        }
        Ok(dirty)
    }

    /// [`tick`](Publisher::tick) for a store that cannot list its dirty CRLs: every CRL's
    /// state is read and each due CRL published on its own.
    fn tick_each(&self, now: OffsetDateTime) -> TickReport {
        let mut report = TickReport::default();
        let scopes = match self.scopes() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot list the CRLs; nothing published this pass");
                report.listing = Some(e);
                return report;
            }
        };
        for (h, g, scope) in scopes {
            match self.publish_due(
                h,
                g,
                scope.clone(),
                now,
                &self.dir,
                false,
                &ProgressBar::hidden(),
            ) {
                Ok(Some(crl)) => report.published.push((h, g, scope.clone(), crl.number)),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(hierarchy = %h, generation = g, scope = %scope_name(&scope), error = %e, "CRL not published");
                    report.failed.push((h, g, scope.clone(), e));
                }
            }
        }
        report
    }

    /// How long the pipeline may sleep after `now`: until the earliest re-signing is due,
    /// at most `dirty_bound` (to pick up dirty flags set behind its back).
    fn next_wait(&self, now: OffsetDateTime) -> std::time::Duration {
        let mut wait = self.settings.dirty_bound;
        let known = *self
            .resign_due
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // A store that cannot list its CRLs is retried after the batch delay.
        let scopes = match known {
            Some(due) => {
                wait = wait.min(std::time::Duration::try_from(due - now).unwrap_or_default());
                Vec::new()
            }
            None => self.scopes().unwrap_or_default(),
        };
        for (h, g, scope) in scopes {
            let due = match self.state.load(h, g, scope.clone()) {
                Ok(Some(State {
                    published: Some(p), ..
                })) => resign_at(&p, self.settings.resign_margin) - now,
                _ => time::Duration::ZERO,
            };
            let due = std::time::Duration::try_from(due).unwrap_or_default();
            wait = wait.min(due);
        }
        // after a failure (due in the past) retry no faster than the batch delay
        wait.max(self.settings.batch_delay)
            .max(std::time::Duration::from_millis(50))
    }

    /// The pipeline: publishes what is due, then sleeps until the next re-signing, a
    /// [`mark_dirty`](Publisher::mark_dirty) (plus `batch_delay`) or `dirty_bound`, whichever
    /// comes first; returns when `shutdown` completes. Builds run on tokio's blocking pool.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let this = Arc::clone(&self);
            let pass = tokio::task::spawn_blocking(move || {
                let now = this.clock.now();
                let report = this.tick(now);
                (report, this.next_wait(this.clock.now()))
            });
            let wait = match pass.await {
                Ok((report, wait)) => {
                    if !report.published.is_empty() || !report.failed.is_empty() {
                        tracing::debug!(
                            published = report.published.len(),
                            failed = report.failed.len(),
                            "CRL pass"
                        );
                    }
                    wait
                }
                Err(e) => {
                    tracing::error!(error = %e, "CRL pass panicked");
                    self.settings.batch_delay
                }
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(wait) => {}
                () = self.wake.notified() => {
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(self.settings.batch_delay) => {}
                    }
                }
            }
        }
    }

    /// Writes every CRL of both hierarchies into `out` (a directory for a static web server or
    /// a CDN: `<out>/<hierarchy>/<partition>.crl`) plus `<out>/index.json`, each with new
    /// numbers, as one batch (`Publisher::publish_batch`). On a failure the CRLs that could be
    /// published stay published, no index is written and the first failure is returned.
    /// When `out` is not the publisher's own directory the set is a copy: it takes numbers
    /// (never reused) but neither clears dirty flags nor counts as the served CRL in
    /// [`status`](Publisher::status) and the re-signing schedule.
    pub fn publish_all(&self, out: &Path, now: OffsetDateTime) -> Result<Vec<IndexEntry>, Error> {
        let scopes = self.scopes()?;
        let bar = if self.settings.progress && std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(scopes.len() as u64);
            if let Ok(style) =
                ProgressStyle::with_template("{bar:40} {pos}/{len} CRLs {elapsed} {msg}")
            {
                bar.set_style(style);
            }
            bar
        } else {
            ProgressBar::hidden()
        };
        let guard = self.build.lock().unwrap_or_else(PoisonError::into_inner);
        let mut due = Vec::with_capacity(scopes.len());
        for (h, g, scope) in scopes {
            due.push(((h, g, scope.clone()), self.load(h, g, scope)?));
        }
        let published = self.publish_batch(due, now, out, &bar);
        drop(guard);
        let mut index = Vec::with_capacity(published.len());
        for ((h, g, scope), crl) in published {
            let crl = crl?;
            let (directory_name, directory_name_der, url) = self.dp_names(h, g, &scope)?;
            index.push(IndexEntry {
                file: Publisher::file_name(h, g, &scope),
                hierarchy: h,
                generation: g,
                issuer_key_id: hex::encode_upper(&self.root(h, g)?.ski),
                partition: scope_name(&scope),
                directory_name,
                directory_name_der,
                url,
                number: crl.number,
                this_update: crl.this_update,
                next_update: crl.next_update,
                entries: crl.entries,
                size: crl.der.len() as u64,
                sha256: hex::encode(crl.sha256),
            });
        }
        bar.finish_and_clear();
        let path = out.join("index.json");
        let json = serde_json::to_vec_pretty(&index).map_err(|e| Error::Write {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomic(&path, &json).map_err(|source| Error::Write { path, source })?;
        Ok(index)
    }

    /// The names of a scope's distribution point, for `index.json`: the directoryName as text
    /// and as hex DER, and the URL.
    #[allow(clippy::type_complexity)]
    fn dp_names(
        &self,
        h: Hierarchy,
        g: Generation,
        scope: &Scope,
    ) -> Result<(Option<String>, Option<String>, Option<String>), Error> {
        let (mut text, mut der, mut url) = (None, None, None);
        for name in crl_dp_names_of(&self.policy, h, g, scope.clone())? {
            match name {
                GeneralName::DirectoryName(n) => {
                    text = Some(dn_text(&n));
                    der = Some(hex::encode(
                        n.to_der().map_err(Error::der("directoryName"))?,
                    ));
                }
                GeneralName::UniformResourceIdentifier(u) => url = Some(u.to_string()),
                _ => {}
            }
        }
        Ok((text, der, url))
    }

    /// What `index.json` says of the CRLs last published into the publisher's own directory:
    /// one entry per published scope, with its file and distribution point names.
    pub fn index(&self) -> Result<Vec<IndexEntry>, Error> {
        let mut index = Vec::new();
        for (h, g, scope) in self.scopes()? {
            let Some(p) = self.load(h, g, scope.clone())?.published else {
                continue;
            };
            let (directory_name, directory_name_der, url) = self.dp_names(h, g, &scope)?;
            index.push(IndexEntry {
                file: Publisher::file_name(h, g, &scope),
                hierarchy: h,
                generation: g,
                issuer_key_id: hex::encode_upper(&self.root(h, g)?.ski),
                partition: scope_name(&scope),
                directory_name,
                directory_name_der,
                url,
                number: p.number,
                this_update: p.this_update,
                next_update: p.next_update,
                entries: p.entries,
                size: p.size,
                sha256: p.sha256,
            });
        }
        Ok(index)
    }

    /// Number, age, entry count and size of every scope's last CRL (`jpki crl status`).
    pub fn status(&self, now: OffsetDateTime) -> Result<Vec<Status>, Error> {
        self.scopes()?
            .into_iter()
            .map(|(h, g, scope)| {
                let published = self.load(h, g, scope.clone())?.published;
                let age = published.as_ref().map(|p| now - p.this_update);
                Ok(Status {
                    hierarchy: h,
                    generation: g,
                    scope,
                    published,
                    age,
                })
            })
            .collect()
    }
}

/// The number after the last one `state` reserved.
fn next_number(h: Hierarchy, scope: &Scope, state: &State) -> Result<u64, Error> {
    state
        .last_number
        .checked_add(1)
        .ok_or_else(|| Error::SelfCheck {
            hierarchy: h,
            scope: scope_name(scope),
            number: state.last_number,
            problem: "CRL numbers exhausted".into(),
        })
}

/// The threads that build CRLs: the machine's parallelism (signing and encoding use the CPU).
fn cpu_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The threads that fsync files: waiting on the disk, not the CPU, so more than the cores;
/// the file system commits concurrent fsyncs together.
const SYNC_THREADS: usize = 16;

/// Runs `f` on every item from `threads` threads, keeping the order.
fn parallel<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = threads.min(items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut out: Vec<(usize, R)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        done.push((i, f(item)));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| match w.join() {
                Ok(done) => done,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

/// Runs `build` on every item from `cpu` threads and hands each result, as soon as it is
/// built, to one of `io` threads that runs `write` on it: waiting on the disk overlaps the
/// CPU work of the CRLs still being built. Keeps the order.
fn pipeline<T: Sync, B: Send, W: Send>(
    items: &[T],
    cpu: usize,
    io: usize,
    build: impl Fn(&T) -> B + Sync,
    write: impl Fn(usize, &B) -> W + Sync,
) -> Vec<(B, W)> {
    if items.len() <= 1 {
        // one CRL (a revocation's): no threads to start
        return items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let b = build(item);
                let w = write(i, &b);
                (b, w)
            })
            .collect();
    }
    let (cpu, io) = (cpu.clamp(1, items.len()), io.clamp(1, items.len()));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel::<(usize, B)>();
    let rx = Mutex::new(rx);
    let (build, write, next, rx) = (&build, &write, &next, &rx);
    let mut out: Vec<(usize, B, W)> = std::thread::scope(|s| {
        let builders: Vec<_> = (0..cpu)
            .map(|_| {
                let tx = tx.clone();
                s.spawn(move || loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    if tx.send((i, build(item))).is_err() {
                        break; // every writer is gone (one panicked): the join says why
                    }
                })
            })
            .collect();
        drop(tx); // the writers stop once every builder has finished
        let writers: Vec<_> = (0..io)
            .map(|_| {
                s.spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        let got = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        let Ok((i, b)) = got else { break };
                        let w = write(i, &b);
                        done.push((i, b, w));
                    }
                    done
                })
            })
            .collect();
        for b in builders {
            if let Err(panic) = b.join() {
                std::panic::resume_unwind(panic);
            }
        }
        writers
            .into_iter()
            .flat_map(|w| match w.join() {
                Ok(done) => done,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    out.sort_by_key(|(i, _, _)| *i);
    out.into_iter().map(|(_, b, w)| (b, w)).collect()
}

/// Puts `data` at `path` so that the file is complete or absent: a temporary file beside it
/// is written, fsynced and renamed into place. The directory is not fsynced here: the caller
/// fsyncs each directory once for the whole batch ([`sync_dirs`]), after which the file is
/// durable. Returns the directory.
fn write_renamed(path: &Path, data: &[u8]) -> std::io::Result<PathBuf> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("path has no directory"))?;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("path has no file name"))?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    let result = (|| {
        fs::create_dir_all(dir)?;
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        // best effort: the temporary file may not even exist
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| dir.to_path_buf())
}

/// Fsyncs once each directory that [`write_renamed`] put a file into (`written` holds its
/// results, `None` for a file not written), from a few threads; a file whose directory
/// cannot be fsynced is not durable and turns into an error. Says per file whether it is in
/// place and durable.
fn sync_dirs(written: Vec<Option<std::io::Result<PathBuf>>>) -> Vec<Option<std::io::Result<()>>> {
    let dirs: BTreeSet<&PathBuf> = written.iter().flatten().flatten().collect();
    let dirs: Vec<&PathBuf> = dirs.into_iter().collect();
    let synced = parallel(&dirs, SYNC_THREADS, |d| {
        File::open(d).and_then(|f| f.sync_all())
    });
    let failed: HashMap<PathBuf, String> = dirs
        .iter()
        .zip(&synced)
        .filter_map(|(d, r)| r.as_ref().err().map(|e| ((*d).clone(), e.to_string())))
        .collect();
    written
        .into_iter()
        .map(|w| {
            w.map(|r| {
                let dir = r?;
                match failed.get(&dir) {
                    Some(e) => Err(std::io::Error::other(format!(
                        "fsync of the directory: {e}"
                    ))),
                    None => Ok(()),
                }
            })
        })
        .collect()
}

/// Where the time of one batch went ([`Publisher::publish_batch`]), logged at the end (info):
/// wall time of each step, and the threads' summed time spent reading + encoding + signing,
/// self-checking and writing. What `jpki crl publish` and `JPKI_LOG=info` show to see which
/// part of a pass grows with the revoked entries or the number of CRLs.
struct Phases {
    crls: usize,
    started: std::time::Instant,
    at: std::time::Instant,
    reserve: std::time::Duration,
    /// Building and writing, which overlap.
    build: std::time::Duration,
    sync_dirs: std::time::Duration,
    /// Summed over the CRLs (time of the build and I/O threads, not wall time).
    encode_sign: std::time::Duration,
    check: std::time::Duration,
    write: std::time::Duration,
    entries: u64,
}

impl Phases {
    fn start(crls: usize) -> Phases {
        let now = std::time::Instant::now();
        Phases {
            crls,
            started: now,
            at: now,
            reserve: std::time::Duration::ZERO,
            build: std::time::Duration::ZERO,
            sync_dirs: std::time::Duration::ZERO,
            encode_sign: std::time::Duration::ZERO,
            check: std::time::Duration::ZERO,
            write: std::time::Duration::ZERO,
            entries: 0,
        }
    }

    /// The time since the last step ended.
    fn lap(&mut self) -> std::time::Duration {
        let now = std::time::Instant::now();
        let lap = now - self.at;
        self.at = now;
        lap
    }

    fn reserved(&mut self) {
        self.reserve = self.lap();
    }

    fn built(&mut self, built: &[Result<Crl, Error>]) {
        self.build = self.lap();
        for crl in built.iter().flatten() {
            self.encode_sign += crl.build_time;
            self.check += crl.check_time;
            self.entries += crl.entries;
        }
    }

    fn wrote(&mut self, took: std::time::Duration) {
        self.write += took;
    }

    fn synced(&mut self) {
        self.sync_dirs = self.lap();
    }

    fn saved(&mut self, published: usize) {
        let save = self.lap();
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        tracing::info!(
            crls = self.crls,
            published,
            entries = self.entries,
            total_ms = ms(self.started.elapsed()),
            reserve_ms = ms(self.reserve),
            build_and_write_ms = ms(self.build),
            sync_dirs_ms = ms(self.sync_dirs),
            save_ms = ms(save),
            encode_sign_ms_summed = ms(self.encode_sign),
            check_ms_summed = ms(self.check),
            write_ms_summed = ms(self.write),
            "CRL batch"
        );
    }
}

/// When a published CRL is due for re-signing: `margin` before its nextUpdate.
fn resign_at(p: &Published, margin: time::Duration) -> OffsetDateTime {
    p.next_update.checked_sub(margin).unwrap_or(p.next_update)
}

/// Replaces `path` with `data` so that readers see the old or the new file, never a part:
/// a temporary file in the same directory, fsync, rename, fsync of the directory.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = write_renamed(path, data)?;
    File::open(dir)?.sync_all()
}

/// A Name as `C=JP, O=JPKI, OU=…, CN=…`: in DER order (as OpenSSL prints it), short names for
/// the attribute types jpki writes, values as their strings.
fn dn_text(n: &x509_cert::name::Name) -> String {
    use policies::oid::{AT_C, AT_CN, AT_L, AT_O, AT_OU};
    n.iter_rdn()
        .flat_map(|rdn| rdn.iter())
        .map(|a| {
            let key = match a.oid {
                o if o == AT_C => "C".to_owned(),
                o if o == AT_O => "O".to_owned(),
                o if o == AT_OU => "OU".to_owned(),
                o if o == AT_CN => "CN".to_owned(),
                o if o == AT_L => "L".to_owned(),
                other => other.to_string(),
            };
            let value = std::str::from_utf8(a.value.value()).unwrap_or("?");
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn the_pipeline_writes_every_item_once_and_keeps_the_order() {
        for n in [0usize, 1, 2, 3, 17, 200] {
            let items: Vec<usize> = (0..n).collect();
            let writes = AtomicUsize::new(0);
            let out = pipeline(
                &items,
                2,
                16,
                |i| i * 10,
                |i, b| {
                    writes.fetch_add(1, Ordering::SeqCst);
                    assert_eq!(*b, i * 10, "the write gets its own item's build");
                    i + 1
                },
            );
            assert_eq!(writes.load(Ordering::SeqCst), n);
            let want: Vec<(usize, usize)> = (0..n).map(|i| (i * 10, i + 1)).collect();
            assert_eq!(out, want, "{n} items");
        }
    }

    #[test]
    #[should_panic(expected = "build 5 broke")]
    fn a_panicking_build_is_not_swallowed() {
        let items: Vec<usize> = (0..20).collect();
        pipeline(
            &items,
            2,
            4,
            |i| {
                assert_ne!(*i, 5, "build 5 broke");
                *i
            },
            |_, b| *b,
        );
    }

    #[test]
    fn files_are_renamed_into_place_and_a_failure_stays_with_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("a/one.crl");
        std::fs::create_dir_all(good.parent().unwrap()).unwrap();
        std::fs::write(&good, b"old").unwrap();
        // a regular file where a directory should be: the second file cannot be written
        std::fs::write(dir.path().join("b"), b"not a directory").unwrap();
        let bad = dir.path().join("b/two.crl");
        let written = vec![
            Some(write_renamed(&good, b"new")),
            Some(write_renamed(&bad, b"x")),
            None,
        ];
        let synced = sync_dirs(written);
        assert!(matches!(synced[0], Some(Ok(()))), "{:?}", synced[0]);
        assert!(matches!(synced[1], Some(Err(_))), "{:?}", synced[1]);
        assert!(synced[2].is_none());
        assert_eq!(std::fs::read(&good).unwrap(), b"new");
        let left: Vec<_> = std::fs::read_dir(good.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from("one.crl")],
            "no temporary file"
        );
    }
}
