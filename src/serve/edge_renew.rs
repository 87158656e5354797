//! An edge node renews its own delegated OCSP signers, while it runs (docs/deployment.md,
//! "OCSP signer renewal on edges"; the flow is in [`ca::edge_signer`]). Every [`CHECK`], for
//! each hierarchy:
//!
//! 1. once the signer in force is within the policy's `validity.ocsp_signer_renew_days` of
//!    its notAfter, the edge makes its next key itself — RSA-2048, encrypted under the edge
//!    passphrase, `keys/<h>-ocsp.key.pending` (0600) — and files a signer request (a CSR the
//!    new key signed) through the store: its own database on a primary, or the `primary` URL
//!    of `edge.toml` when it reads a read-only standby. A request that cannot be filed (the
//!    database does not answer, a standby with no `primary`) is filed again at the next check;
//! 2. it waits for a CA node's answer on the database it reads (a standby replicates it);
//! 3. with the certificate: it checks that the certificate is for the pending key, is an OCSP
//!    signer issued (signature verified) by the root of the generation asked for, and valid
//!    now; stages it as `certs/<h>-ocsp.pem.new`, renames the pending key over the key in
//!    force and the certificate over the one in force (directories fsynced; a crash between
//!    them is finished at the next start, [`finish_install`]), and swaps the new signer into
//!    the running responder ([`ocsp_responder::Responder::replace_signer`]): atomic, so every
//!    answer is signed by the old signer or the new one, with no gap and no restart. Answers
//!    cached from the old signer stay valid: the margin is longer than an answer's life;
//! 4. a refusal is logged (once) with the CA node's reason and nothing changes; deleting the
//!    pending key file makes the edge start over with a new key.
//!
//! It also follows a root rollover by itself (the section "following a root rollover"
//! below): the new generation's root from the store, its signer asked for and installed the
//! same way, the older generation's signer kept for the older generation.
//!
//! The CA node never sees the edge's key; the edge never holds a root key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ca::datadir::DataDir;
use ca::storage::{SignerAnswer, Storage};
use policies::Hierarchy;

use crate::{Error, Result};

/// How often an edge looks at its signers and its pending requests.
pub const CHECK: Duration = Duration::from_secs(1);

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The edge's next signer key while its request is open.
pub fn pending_key(dir: &DataDir, h: Hierarchy) -> PathBuf {
    with_suffix(&dir.key(h, "ocsp"), ".pending")
}

/// The new signer certificate, staged before it is put in force.
fn staged_cert(dir: &DataDir, h: Hierarchy) -> PathBuf {
    with_suffix(&dir.cert(h, "ocsp"), ".new")
}

fn sync_dir(path: &Path) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::Serve(format!("sync {}: {e}", dir.display())))
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to)
        .map_err(|e| Error::Serve(format!("rename {}: {e}", from.display())))?;
    sync_dir(to)
}

/// Finishes an installation a crash interrupted: a staged certificate was checked before it
/// was staged, so the pending key (if not renamed yet) and the certificate are put in force.
pub fn finish_install(dir: &DataDir, h: Hierarchy) -> Result<()> {
    let staged = staged_cert(dir, h);
    if !staged.exists() {
        return Ok(());
    }
    put_in_force(dir, h)?;
    tracing::warn!(hierarchy = %h, "finished an interrupted installation of a renewed OCSP signer");
    Ok(())
}

/// Renames the pending key over the key in force, then the staged certificate over the
/// certificate in force (key first, as the CA's own renewal does).
fn put_in_force(dir: &DataDir, h: Hierarchy) -> Result<()> {
    let pending = pending_key(dir, h);
    if pending.exists() {
        rename(&pending, &dir.key(h, "ocsp"))?;
    }
    rename(&staged_cert(dir, h), &dir.cert(h, "ocsp"))
}

/// What one check did for one hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The signer in force is not within its margin.
    NotDue,
    /// A request was filed.
    Filed,
    /// A request is filed; no answer yet.
    Waiting,
    /// The new signer is in force.
    Installed { serial: String },
    /// A CA node refused the request.
    Refused(String),
}

/// An edge's signer renewal (see the module docs).
pub struct EdgeRenewal {
    dir: DataDir,
    node: String,
    passphrase: Vec<u8>,
    margin_days: i64,
    /// The database the edge reads (answers arrive here).
    read: Arc<dyn Storage>,
    /// Where requests are filed: `primary`, connected on first need, else `read`.
    primary: Option<String>,
    writer: Mutex<Option<Arc<dyn Storage>>>,
    responder: ocsp_responder::Responder,
    clock: Arc<dyn ca::clock::Clock>,
    /// SPKI of each pending key, by its file (decrypting costs a scrypt run).
    pending_spki: Mutex<BTreeMap<PathBuf, Vec<u8>>>,
    /// The last error or refusal logged per hierarchy (logged once, not every check).
    said: Mutex<BTreeMap<Hierarchy, String>>,
    /// Where the next look at the audit trail for root rollovers starts (0 at start: the
    /// whole trail is read once, then only what is new).
    audit_cursor: Mutex<u64>,
}

impl EdgeRenewal {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        dir: DataDir,
        node: String,
        passphrase: Vec<u8>,
        policy: &policies::Policy,
        read: Arc<dyn Storage>,
        primary: Option<String>,
        responder: ocsp_responder::Responder,
        clock: Arc<dyn ca::clock::Clock>,
    ) -> Result<EdgeRenewal> {
        ca::edge_signer::check_node(&node)?;
        Ok(EdgeRenewal {
            dir,
            node,
            passphrase,
            margin_days: i64::from(policy.validity.ocsp_signer_renew_days()),
            read,
            primary,
            writer: Mutex::new(None),
            responder,
            clock,
            pending_spki: Mutex::new(BTreeMap::new()),
            said: Mutex::new(BTreeMap::new()),
            audit_cursor: Mutex::new(0),
        })
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// The renewal's lines for `/metrics` (Prometheus text format), per hierarchy: seconds
    /// to the notAfter of the signer in force, whether a request is open (a pending key),
    /// and whether the last check failed or was refused (what the log said once).
    pub fn metrics(&self) -> String {
        use std::fmt::Write as _;
        let now = self.clock.now();
        let said = self.said.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut out = String::from(
            "# HELP jpki_edge_ocsp_signer_expiry_seconds Seconds to the notAfter of the edge's OCSP signer in force.\n\
             # TYPE jpki_edge_ocsp_signer_expiry_seconds gauge\n",
        );
        let mut pending = String::from(
            "# HELP jpki_edge_ocsp_signer_request_open Whether the edge has a request for its next OCSP signer open.\n\
             # TYPE jpki_edge_ocsp_signer_request_open gauge\n",
        );
        let mut stuck = String::from(
            "# HELP jpki_edge_ocsp_signer_renewal_stuck Whether the edge's last OCSP signer renewal check failed or was refused (see the log).\n\
             # TYPE jpki_edge_ocsp_signer_renewal_stuck gauge\n",
        );
        for h in Hierarchy::ALL {
            if let Some(e) = self
                .responder
                .signer_certificate(h)
                .and_then(|der| ca::authority::Expiry::of("ocsp-signer", Some(h), &der, 0).ok())
            {
                let _ = writeln!(
                    out,
                    "jpki_edge_ocsp_signer_expiry_seconds{{hierarchy=\"{h}\"}} {}",
                    e.seconds_left(now)
                );
            }
            let _ = writeln!(
                pending,
                "jpki_edge_ocsp_signer_request_open{{hierarchy=\"{h}\"}} {}",
                u8::from(pending_key(&self.dir, h).exists())
            );
            let _ = writeln!(
                stuck,
                "jpki_edge_ocsp_signer_renewal_stuck{{hierarchy=\"{h}\"}} {}",
                u8::from(said.contains_key(&h))
            );
        }
        out + &pending + &stuck
    }

    /// One check of every hierarchy; errors are logged (once per distinct error) and tried
    /// again at the next check. Blocking.
    pub fn check_once(&self) -> Vec<(Hierarchy, Result<Step>)> {
        let mut out = Vec::new();
        let found = self.find_new_roots();
        for h in Hierarchy::ALL {
            let step = match &found {
                Err(e) => Err(Error::Serve(format!("looking for root rollovers: {e}"))),
                Ok(()) => match self.follow_generation(h) {
                    Ok(None) => self.check(h),
                    Ok(Some(step)) => Ok(step),
                    Err(e) => Err(e),
                },
            };
            let say = match &step {
                Err(e) => Some(format!("error: {e}")),
                Ok(Step::Refused(r)) => Some(format!("refused: {r}")),
                Ok(_) => None,
            };
            let mut said = self.said.lock().unwrap_or_else(|p| p.into_inner());
            match say {
                Some(s) if said.get(&h) != Some(&s) => {
                    tracing::error!(hierarchy = %h, node = %self.node, problem = %s,
                        "OCSP signer renewal on this edge is stuck; the signer in force keeps serving");
                    said.insert(h, s);
                }
                Some(_) => {}
                None => {
                    said.remove(&h);
                }
            }
            out.push((h, step));
        }
        out
    }

    /// Checks every [`CHECK`] until `stop` resolves.
    pub async fn run(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            let me = Arc::clone(&self);
            if let Err(e) = tokio::task::spawn_blocking(move || me.check_once()).await {
                tracing::error!(error = %e, "the edge's OCSP signer renewal task failed");
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(CHECK) => {}
            }
        }
    }

    /// The root generation (and its certificate, DER) that issued `signer` (its AKI key id),
    /// among the root certificates of the edge directory.
    fn generation_of(&self, h: Hierarchy, signer: &[u8]) -> Result<(u32, Vec<u8>)> {
        for (g, der) in roots_of(&self.dir, h)? {
            if issued_by(signer, &der)? {
                return Ok((g, der));
            }
        }
        Err(Error::Serve(format!(
            "the {h} OCSP signer in force was issued by a root this edge directory does not \
             hold (make the edge directory again with `jpki edge export`)"
        )))
    }

    fn writer(&self) -> Result<Arc<dyn Storage>> {
        let Some(url) = &self.primary else {
            return Ok(Arc::clone(&self.read));
        };
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = w.as_ref() {
            return Ok(Arc::clone(s));
        }
        let s: Arc<dyn Storage> =
            Arc::new(storage_postgres::PgStorage::open_follower(url).map_err(ca::Error::from)?);
        *w = Some(Arc::clone(&s));
        Ok(s)
    }

    fn check(&self, h: Hierarchy) -> Result<Step> {
        let in_force = self
            .responder
            .signer_certificate(h)
            .ok_or_else(|| Error::Serve(format!("no {h} OCSP signer in force")))?;
        let pending = pending_key(&self.dir, h);
        let now = self.clock.now();
        let mut made = None;
        if !pending.exists() {
            let e = ca::authority::Expiry::of("ocsp-signer", Some(h), &in_force, self.margin_days)?;
            if !e.due(now) {
                return Ok(Step::NotDue);
            }
            let key = ca::keys::generate()?;
            ca::keys::write_encrypted(&pending, &key, &self.passphrase)?;
            tracing::warn!(hierarchy = %h, node = %self.node, not_after = %e.not_after,
                "the OCSP signer is within its renewal margin: made the next key");
            self.pending_spki
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(pending.clone(), key.spki.clone());
            made = Some(key.pair);
        }
        let spki = self.pending_spki(&pending)?;
        let (generation, root) = self.generation_of(h, &in_force)?;
        match self.request(h, generation, &pending, &spki, made, &in_force)? {
            Requested::Answer(SignerAnswer::Issued { der, .. }) => {
                self.install(h, &root, &der, &spki)
            }
            Requested::Answer(SignerAnswer::Refused { reason, .. }) => Ok(Step::Refused(reason)),
            Requested::Waiting => Ok(Step::Waiting),
            Requested::Filed => Ok(Step::Filed),
        }
    }

    /// The request of this node for a signer of `generation` made for the pending key
    /// (`spki`, its file `pending`; `made`: the key when it was just made): its answer,
    /// waiting for one, or filed now (signed by the key, naming the signer in force).
    fn request(
        &self,
        h: Hierarchy,
        generation: u32,
        pending: &Path,
        spki: &[u8],
        made: Option<aws_lc_rs::rsa::KeyPair>,
        in_force: &[u8],
    ) -> Result<Requested> {
        let now = self.clock.now();
        let for_key = |csr: &[u8]| {
            ca::csr::verify(csr, ca::edge_signer::MIN_BITS).is_ok_and(|v| v.spki == spki)
        };
        if let Some(r) = self.read.signer_request(&self.node, h, generation)? {
            if for_key(&r.csr) {
                return Ok(match r.answer {
                    None => Requested::Waiting,
                    Some(a) => Requested::Answer(a),
                });
            }
        }
        // Not filed yet (or not replicated yet: the writer is asked before filing again).
        let writer = self.writer()?;
        if let Some(r) = writer.signer_request(&self.node, h, generation)? {
            if for_key(&r.csr) {
                return Ok(Requested::Waiting);
            }
        }
        let pair = match made {
            Some(p) => p,
            None => ca::keys::read_encrypted(pending, &self.passphrase)?,
        };
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let csr =
            ca::edge_signer::make_csr(&self.node, spki, &|m| ca::keys::sign_with(&pair, &rng, m))?;
        let (_, c) = x509_parser::parse_x509_certificate(in_force)
            .map_err(|e| Error::Serve(format!("{h} OCSP signer certificate: {e}")))?;
        let roots = self.root_spkis()?;
        let actor = ca::officers::Actor::System("edge-node");
        ca::officers::acting_as(&actor, || {
            ca::edge_signer::file_request(
                writer.as_ref(),
                &self.node,
                h,
                generation,
                &csr,
                c.raw_serial(),
                &roots,
                now,
            )
        })
        .map_err(|e| match &self.primary {
            None => Error::Serve(format!(
                "cannot file the signer request in the database this edge reads ({e}); an \
                 edge on a read-only standby files through its primary: set `primary` in \
                 edge.toml (`jpki edge export --primary URL`)"
            )),
            Some(_) => Error::Serve(format!(
                "cannot file the signer request through the primary: {e}"
            )),
        })?;
        tracing::warn!(hierarchy = %h, node = %self.node, generation,
            "filed a request for an OCSP signer certificate");
        Ok(Requested::Filed)
    }

    fn pending_spki(&self, pending: &Path) -> Result<Vec<u8>> {
        let mut cache = self.pending_spki.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = cache.get(pending) {
            return Ok(s.clone());
        }
        let pair = ca::keys::read_encrypted(pending, &self.passphrase)?;
        let spki = ca::keys::CaSigner::new(pair, Vec::new()).spki()?;
        cache.insert(pending.to_path_buf(), spki.clone());
        Ok(spki)
    }

    /// Every root key of the edge directory (both hierarchies, every generation).
    fn root_spkis(&self) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for h in Hierarchy::ALL {
            for g in 1u32.. {
                let path = self.dir.root_cert(h, g);
                if !path.exists() {
                    break;
                }
                out.push(ca::records::spki_of(&pem_der(&path)?)?);
            }
        }
        Ok(out)
    }

    /// Checks the certificate a CA node issued and puts it in force (module docs, step 3).
    fn install(&self, h: Hierarchy, root: &[u8], der: &[u8], spki: &[u8]) -> Result<Step> {
        let Some(serial) = self.check_issued(h, root, der, spki)? else {
            return Ok(Step::Waiting);
        };
        self.stage_and_put_in_force(h, der)?;
        let signer =
            ca::signers::Signers::new(self.dir.clone(), Some(self.passphrase.clone())).ocsp(h)?;
        self.responder
            .replace_signer(h, signer)
            .map_err(|e| Error::Serve(format!("OCSP responder: {e}")))?;
        tracing::warn!(hierarchy = %h, node = %self.node, serial = %serial,
            "the renewed OCSP signer is in force (no restart)");
        Ok(Step::Installed { serial })
    }

    /// Writes the checked certificate `der` as the staged certificate and puts it (with the
    /// pending key) in force.
    fn stage_and_put_in_force(&self, h: Hierarchy, der: &[u8]) -> Result<()> {
        let staged = staged_cert(&self.dir, h);
        match std::fs::remove_file(&staged) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::Serve(format!("remove {}: {e}", staged.display())))
            }
            _ => {}
        }
        ca::keys::write_private(&staged, ca::records::pem(der).as_bytes())?;
        put_in_force(&self.dir, h)?;
        self.pending_spki
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&pending_key(&self.dir, h));
        Ok(())
    }

    /// Checks a certificate a CA node issued (module docs, step 3): its serial (hex) when it
    /// may be put in force, `None` while it is not valid yet (the CA node's clock is a little
    /// ahead of this edge's).
    fn check_issued(
        &self,
        h: Hierarchy,
        root: &[u8],
        der: &[u8],
        spki: &[u8],
    ) -> Result<Option<String>> {
        let bad = |what: &str| {
            Error::Serve(format!(
                "the {h} OCSP signer certificate in the answer {what}; not installed"
            ))
        };
        let (_, c) = x509_parser::parse_x509_certificate(der).map_err(|_| bad("does not parse"))?;
        let (_, r) = x509_parser::parse_x509_certificate(root)
            .map_err(|e| Error::Serve(format!("{h} root certificate: {e}")))?;
        if c.public_key().raw != spki {
            return Err(bad("is not for this edge's pending key"));
        }
        if c.issuer() != r.subject() || c.verify_signature(Some(r.public_key())).is_err() {
            return Err(bad("is not signed by the root of the generation asked for"));
        }
        let ocsp_signing = matches!(c.extended_key_usage(), Ok(Some(e)) if e.value.ocsp_signing);
        if !ocsp_signing {
            return Err(bad("is not for OCSP signing"));
        }
        let now = self.clock.now().unix_timestamp();
        if c.validity().not_after.timestamp() <= now {
            return Err(bad("has expired"));
        }
        if c.validity().not_before.timestamp() > now {
            // The CA node's clock is a little ahead of this edge's: installed once valid.
            return Ok(None);
        }
        Ok(Some(hex::encode_upper(c.raw_serial())))
    }
}

/// What [`EdgeRenewal::request`] found.
enum Requested {
    Answer(SignerAnswer),
    Waiting,
    Filed,
}

// ----- following a root rollover ----------------------------------------------------------
//
// A CA node's rollover adds a root generation to the store (its root certificate record and
// the audit record `root-rollover`, in one unit of work). The edge follows it by itself:
//
// 1. [`EdgeRenewal::find_new_roots`] reads the audit trail from its cursor (the whole trail
//    once at start, then only what is new; it reads, so a read-only standby serves) and for
//    each `root-rollover` whose root this edge directory lacks, reads the root's record,
//    checks it is a self-signed root of the hierarchy (same subject as generation 1) and
//    writes it as `certs/<h>-root-g<N>.pem`;
// 2. [`EdgeRenewal::follow_generation`]: while the newest root has no signer here, the edge
//    makes that generation's signer key (`keys/<h>-ocsp-g<N>.key.pending`, encrypted under
//    the edge passphrase, 0600) and files a request for generation N naming its signer in
//    force (of generation N−1: how a CA node knows the edge, ca::authority::edge_signers).
//    Until the certificate comes the responder does not serve generation N: a request for
//    its CertIDs alone is answered `unauthorized` (RFC 6960 §2.3), as for any issuer it
//    does not serve;
// 3. with the certificate (checked as a renewal's: the pending key, issued by generation
//    N's root, OCSP signing, valid now): the signer in force (of generation N−1) is copied
//    to `<h>-ocsp-g<N−1>` (it goes on answering generation N−1), the new one is put in force
//    as `<h>-ocsp` (staged and renamed as a renewal; renewals go on from it) and generation
//    N is added to the running responder. [`super::role::Edge::open`] serves every
//    generation that has a signer after a restart.

/// The pending key of a new generation's signer.
pub fn generation_pending_key(dir: &DataDir, h: Hierarchy, generation: u32) -> PathBuf {
    with_suffix(&dir.key(h, &format!("ocsp-g{generation}")), ".pending")
}

/// The root certificates (DER) of the edge directory, by generation, oldest first.
pub fn roots_of(dir: &DataDir, h: Hierarchy) -> Result<Vec<(u32, Vec<u8>)>> {
    let mut out = Vec::new();
    for g in 1u32.. {
        let path = dir.root_cert(h, g);
        if !path.exists() {
            break;
        }
        out.push((g, pem_der(&path)?));
    }
    Ok(out)
}

fn parse_cert<'a>(
    der: &'a [u8],
    what: &str,
) -> Result<x509_parser::certificate::X509Certificate<'a>> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, c)| c)
        .map_err(|e| Error::Serve(format!("{what}: {e}")))
}

/// Whether `cert`'s authority key identifier is `root`'s subject key identifier.
pub fn issued_by(cert: &[u8], root: &[u8]) -> Result<bool> {
    use x509_parser::extensions::ParsedExtension;
    let what = "a certificate of the edge directory";
    let (c, r) = (parse_cert(cert, what)?, parse_cert(root, what)?);
    let aki = c
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        });
    let ski = r
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        });
    Ok(ski.is_some() && ski == aki)
}

impl EdgeRenewal {
    /// Step 1 of following a rollover (see above). Blocking.
    fn find_new_roots(&self) -> Result<()> {
        const PAGE: usize = 1024;
        let mut cursor = self.audit_cursor.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let page = self.read.audit_records(*cursor, PAGE)?;
            let Some(next) = page.last().map(|r| r.seq + 1) else {
                return Ok(());
            };
            for r in page.iter().filter(|r| r.action == "root-rollover") {
                let Some((h, serial)) = r.subject.split_once(':') else {
                    continue;
                };
                let (Ok(h), Ok(serial)) =
                    (h.parse::<Hierarchy>(), ca::authority::parse_serial(serial))
                else {
                    continue;
                };
                self.take_root(h, &serial)?;
            }
            *cursor = next;
        }
    }

    /// Writes the root record `serial` of `h` as its generation's certificate, once checked.
    fn take_root(&self, h: Hierarchy, serial: &[u8]) -> Result<()> {
        let Some(record) = self.read.certificate(h, serial)? else {
            return Err(Error::Serve(format!(
                "the audit trail names {h} root {}, which the store does not hold",
                hex::encode_upper(serial)
            )));
        };
        if record.kind != ca::records::CertKind::Root {
            return Ok(());
        }
        let known = roots_of(&self.dir, h)?;
        if known.iter().any(|(_, der)| *der == record.der) {
            return Ok(());
        }
        let g = record.generation;
        if g as usize != known.len() + 1 {
            return Err(Error::Serve(format!(
                "{h} root generation {g} is in the store, but this edge holds {} generation(s): \
                 make the edge directory again with `jpki edge export`",
                known.len()
            )));
        }
        let what = format!("{h} root generation {g} in the store");
        let (new, first) = (
            parse_cert(&record.der, &what)?,
            parse_cert(
                &known
                    .first()
                    .ok_or_else(|| Error::Serve(format!("the edge holds no {h} root")))?
                    .1,
                "the edge's first root",
            )?,
        );
        if new.subject() != first.subject()
            || new.issuer() != new.subject()
            || new.verify_signature(None).is_err()
            || !new.is_ca()
        {
            return Err(Error::Serve(format!(
                "{h} root generation {g} in the store is not a self-signed root of this \
                 hierarchy; not taken up"
            )));
        }
        ca::keys::write_private(
            &self.dir.root_cert(h, g),
            ca::records::pem(&record.der).as_bytes(),
        )?;
        tracing::warn!(hierarchy = %h, generation = g, node = %self.node,
            "a new root generation: this edge asks for its OCSP signer");
        Ok(())
    }

    /// Steps 2 and 3 of following a rollover (see above): `None` when the newest root
    /// generation is served here (the renewal check goes on).
    fn follow_generation(&self, h: Hierarchy) -> Result<Option<Step>> {
        let Some((g, root)) = roots_of(&self.dir, h)?.pop() else {
            return Ok(None);
        };
        if self
            .responder
            .roots()
            .iter()
            .any(|(x, r)| *x == h && *r == root)
        {
            return Ok(None);
        }
        let in_force = self
            .responder
            .signer_certificate(h)
            .ok_or_else(|| Error::Serve(format!("no {h} OCSP signer in force")))?;
        let pending = generation_pending_key(&self.dir, h, g);
        let mut made = None;
        if !pending.exists() {
            let key = ca::keys::generate()?;
            ca::keys::write_encrypted(&pending, &key, &self.passphrase)?;
            tracing::warn!(hierarchy = %h, generation = g, node = %self.node,
                "made the key of the new root generation's OCSP signer");
            self.pending_spki
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(pending.clone(), key.spki.clone());
            made = Some(key.pair);
        }
        let spki = self.pending_spki(&pending)?;
        let der = match self.request(h, g, &pending, &spki, made, &in_force)? {
            Requested::Answer(SignerAnswer::Issued { der, .. }) => der,
            Requested::Answer(SignerAnswer::Refused { reason, .. }) => {
                return Ok(Some(Step::Refused(reason)))
            }
            Requested::Waiting => return Ok(Some(Step::Waiting)),
            Requested::Filed => return Ok(Some(Step::Filed)),
        };
        let Some(serial) = self.check_issued(h, &root, &der, &spki)? else {
            return Ok(Some(Step::Waiting));
        };
        // The signer in force keeps answering its own generation, under its own name.
        let (older, _) = self.generation_of(h, &in_force)?;
        let name = format!("ocsp-g{older}");
        for (from, to) in [
            (self.dir.key(h, "ocsp"), self.dir.key(h, &name)),
            (self.dir.cert(h, "ocsp"), self.dir.cert(h, &name)),
        ] {
            if !to.exists() {
                let bytes = std::fs::read(&from)
                    .map_err(|e| Error::Serve(format!("read {}: {e}", from.display())))?;
                ca::keys::write_private(&to, &bytes)?;
            }
        }
        // A renewal request of the older generation's signer can no longer be certified.
        let renewal = pending_key(&self.dir, h);
        rename(&pending, &renewal)?;
        {
            let mut cache = self.pending_spki.lock().unwrap_or_else(|p| p.into_inner());
            cache.remove(&pending);
            cache.insert(renewal, spki);
        }
        self.stage_and_put_in_force(h, &der)?;
        let signer =
            ca::signers::Signers::new(self.dir.clone(), Some(self.passphrase.clone())).ocsp(h)?;
        match self.responder.add_issuer(ocsp_responder::Issuer {
            hierarchy: h,
            root,
            signer,
        }) {
            Ok(()) | Err(ocsp_responder::Error::DuplicateIssuer(_)) => {}
            Err(e) => return Err(Error::Serve(format!("OCSP responder: {e}"))),
        }
        tracing::warn!(hierarchy = %h, generation = g, node = %self.node, serial = %serial,
            "this edge answers the new root generation (no restart)");
        Ok(Some(Step::Installed { serial }))
    }
}

/// The DER of the PEM certificate in `path`.
fn pem_der(path: &Path) -> Result<Vec<u8>> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::Serve(format!("read {}: {e}", path.display())))?;
    let (_, p) = x509_parser::pem::parse_x509_pem(&bytes)
        .map_err(|e| Error::Config(format!("{}: not a PEM certificate: {e}", path.display())))?;
    Ok(p.contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_installation_cut_short_is_finished_at_start() {
        let tmp = tempfile::tempdir().unwrap();
        let d = DataDir::new(tmp.path());
        std::fs::create_dir_all(tmp.path().join("keys")).unwrap();
        std::fs::create_dir_all(tmp.path().join("certs")).unwrap();
        let h = Hierarchy::Auth;
        let write = |p: PathBuf, b: &[u8]| std::fs::write(p, b).unwrap();
        write(d.key(h, "ocsp"), b"old key");
        write(d.cert(h, "ocsp"), b"old cert");
        // A pending key and no staged certificate: a request still open; left alone.
        write(pending_key(&d, h), b"new key");
        finish_install(&d, h).unwrap();
        assert_eq!(std::fs::read(d.key(h, "ocsp")).unwrap(), b"old key");
        assert!(pending_key(&d, h).exists());
        // Staged (checked) certificate: both put in force.
        write(staged_cert(&d, h), b"new cert");
        finish_install(&d, h).unwrap();
        assert_eq!(std::fs::read(d.key(h, "ocsp")).unwrap(), b"new key");
        assert_eq!(std::fs::read(d.cert(h, "ocsp")).unwrap(), b"new cert");
        assert!(!pending_key(&d, h).exists() && !staged_cert(&d, h).exists());
        // Cut between the two renames (key already in force): the certificate follows.
        write(staged_cert(&d, h), b"newer cert");
        finish_install(&d, h).unwrap();
        assert_eq!(std::fs::read(d.key(h, "ocsp")).unwrap(), b"new key");
        assert_eq!(std::fs::read(d.cert(h, "ocsp")).unwrap(), b"newer cert");
    }
}
