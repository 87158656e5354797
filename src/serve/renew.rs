//! The certificates `jpki serve` depends on, kept current while it runs.
//!
//! Every [`CHECK`] (and once at start, before the listeners open) the [`Watch`]:
//!
//! * renews each delegated OCSP signer within the policy's `validity.ocsp_signer_renew_days`
//!   of its notAfter ([`ca::Authority::renew_ocsp_signers_due`]: new key and certificate from
//!   the root, stored and audited in one unit of work); the authority's listener swaps the new
//!   signer into the running OCSP responder ([`ocsp_responder::Responder::replace_signer`]), so
//!   there is no restart and no gap: every answer is signed by the old signer or the new one,
//!   and answers cached from the old one expire before it does (docs/operations.md);
//! * renews the platform-operator API's server certificate within [`PF_SERVER_MARGIN_DAYS`]
//!   of its notAfter (a fresh key and a 30-day certificate from the operator CA, audited
//!   `pf-server-renew`) and installs it in the running TLS acceptor
//!   ([`platform::Api::replace_identity`]): new handshakes get it, open connections are left
//!   alone;
//! * renews the time-stamping authority's unit (a new key and certificate from the TSA root)
//!   within the policy's `tsa.renew_days_before` of its notAfter and swaps it into the running
//!   TSA ([`tsa::server::Tsa::renew_if_due`], audited `tsa-renew`; the retired unit's key is
//!   deleted);
//! * logs a warning for every certificate within its margin — the roots and the operator CA
//!   ([`ca::authority::renew::ROOT_WARN_DAYS`]: they are not renewed here), or a renewable
//!   one whose renewal failed — and keeps the expiries for `/metrics`:
//!   `jpki_certificate_expiry_seconds{certificate, hierarchy, serial}` (seconds to notAfter)
//!   and `jpki_certificate_within_margin{…}` (1 within the margin).
//!
//! A failed renewal is logged and tried again at the next check; the old certificate keeps
//! serving meanwhile (the margins are days, the checks a minute apart).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, RwLock};

use ca::authority::renew::ROOT_WARN_DAYS;
use ca::authority::Expiry;
use ca::Authority;

use crate::Result;

/// How often the watch looks at the certificates.
pub const CHECK: std::time::Duration = std::time::Duration::from_secs(60);

/// How often the store's audit trail is looked at for root generations another process added
/// ([`Watch::adopt_roots`]): reads only what was written since the last look.
pub const ROOTS_POLL: std::time::Duration = std::time::Duration::from_secs(5);
/// The platform API's server certificate (30 days) is renewed this many days before expiry.
pub const PF_SERVER_MARGIN_DAYS: i64 = 10;

/// The platform API being served, and the names its server certificate carries.
struct Pf {
    api: Arc<platform::Api>,
    names: Vec<String>,
}

/// A mutual-TLS listener whose server certificate the watch renews in place (the remote
/// admin API and the verifiers' listener implement it; a trait, so that this module does not
/// import the listeners' module, which depends on it through the health checks).
pub trait RenewableListener: Send + Sync {
    /// The server certificate in force (DER).
    fn server_certificate(&self) -> Vec<u8>;
    /// The names its server certificate carries.
    fn names(&self) -> &[String];
    /// Replaces the server certificate for every later handshake.
    fn replace_identity(
        &self,
        chain: Vec<rustls::pki_types::CertificateDer<'static>>,
        key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> Result<()>;
}

/// The renewals and expiry gauges of a running server (see the module docs).
pub struct Watch {
    authority: Arc<Authority>,
    /// The OCSP responder served: `/metrics` reads its signers live, so a renewal made through
    /// the admin socket shows at once.
    responder: std::sync::OnceLock<ocsp_responder::Responder>,
    pf: Mutex<Option<Pf>>,
    /// The holder portal being served and its server certificate's names.
    portal: Mutex<Option<(Arc<super::portal::Portal>, Vec<String>)>>,
    /// The time-stamping authority being served.
    tsa: Mutex<Option<Arc<tsa::server::Tsa>>>,
    /// The remote admin API's and the verifiers' listeners (`admin-server`,
    /// `verifiers-server`), renewed like the platform API's.
    listeners: Mutex<Vec<(&'static str, Arc<dyn RenewableListener>)>>,
    /// What the last check saw.
    seen: RwLock<Vec<Expiry>>,
    /// Where [`Watch::adopt_roots`] goes on reading the audit trail (`None` until read).
    roots_cursor: Mutex<Option<u64>>,
}

impl Watch {
    pub fn new(authority: Arc<Authority>) -> Arc<Watch> {
        Arc::new(Watch {
            authority,
            responder: std::sync::OnceLock::new(),
            pf: Mutex::new(None),
            portal: Mutex::new(None),
            tsa: Mutex::new(None),
            listeners: Mutex::new(Vec::new()),
            seen: RwLock::new(Vec::new()),
            // Read by the first check (blocking: a PostgreSQL store must not be read on the
            // runtime's worker), which runs at start right after the store was opened.
            roots_cursor: Mutex::new(None),
        })
    }

    /// Takes up root generations another process added to the store (a second CA node on one
    /// PostgreSQL store, a rollover made on the store by another path): the new generation
    /// reaches the CRL publisher and the OCSP responder as a rollover through the admin socket
    /// does ([`ca::Authority::adopt_rolled_roots`]). Blocking (reads the store).
    pub fn adopt_roots(&self) -> Vec<(policies::Hierarchy, u32)> {
        let a = &self.authority;
        let mut cursor = self.roots_cursor.lock().unwrap_or_else(|p| p.into_inner());
        let Some(at) = cursor.as_mut() else {
            match a.audit_cursor() {
                Ok(c) => *cursor = Some(c),
                Err(e) => {
                    tracing::error!(error = %e, "the audit trail could not be read; rollovers by other processes are looked for later")
                }
            }
            return Vec::new();
        };
        let actor = ca::officers::Actor::System("root-watch");
        match ca::officers::acting_as(&actor, || a.adopt_rolled_roots(at)) {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(error = %e, "a root rollover made by another process could not be taken up; retrying");
                Vec::new()
            }
        }
    }

    /// The responder whose signers `/metrics` reports (once).
    pub fn set_responder(&self, responder: ocsp_responder::Responder) {
        let _ = self.responder.set(responder);
    }

    /// Watches the platform API's server certificate too (issued for `names`).
    pub fn set_pf(&self, api: Arc<platform::Api>, names: Vec<String>) {
        *self.pf.lock().unwrap_or_else(|p| p.into_inner()) = Some(Pf { api, names });
    }

    /// Watches the holder portal's server certificate too (issued for `names`); it is
    /// renewed like the platform API's, [`PF_SERVER_MARGIN_DAYS`] before its notAfter.
    pub fn set_portal(&self, portal: Arc<super::portal::Portal>, names: Vec<String>) {
        *self.portal.lock().unwrap_or_else(|p| p.into_inner()) = Some((portal, names));
    }

    /// Watches the time-stamping authority's unit certificate too (renewed within the
    /// policy's `tsa.renew_days_before`).
    pub fn set_tsa(&self, tsa: Arc<tsa::server::Tsa>) {
        *self.tsa.lock().unwrap_or_else(|p| p.into_inner()) = Some(tsa);
    }

    /// Watches a mutual-TLS listener of `admin_https` (`what`: `admin-server` or
    /// `verifiers-server`): its server certificate is renewed like the platform API's (audit
    /// `<what>-renew`).
    pub fn add_listener(&self, what: &'static str, api: Arc<dyn RenewableListener>) {
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((what, api));
    }

    /// One look: renew what is due, note every expiry, warn about what is within its margin.
    /// Blocking (signs, writes). Errors of one renewal do not stop the others; the first is
    /// returned after all were tried.
    pub fn check(&self) -> Result<Vec<Expiry>> {
        let a = &self.authority;
        {
            let mut cursor = self.roots_cursor.lock().unwrap_or_else(|p| p.into_inner());
            if cursor.is_none() {
                *cursor = a.audit_cursor().ok();
            }
        }
        let mut first_error: Option<crate::Error> = None;
        let renewal = ca::officers::Actor::System("ocsp-renewal");
        match ca::officers::acting_as(&renewal, || a.renew_ocsp_signers_due()) {
            Ok(done) => {
                for r in done {
                    tracing::warn!(
                        hierarchy = %r.hierarchy,
                        serial = %r.serial,
                        replaced = %r.replaced,
                        "renewed the OCSP signer certificate"
                    );
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "OCSP signer renewal failed; retrying at the next check");
                first_error.get_or_insert(e.into());
            }
        }
        if let Err(e) = self.renew_pf_server() {
            tracing::error!(error = %e, "platform API server certificate renewal failed; retrying at the next check");
            first_error.get_or_insert(e);
        }
        if let Err(e) = self.renew_portal_server() {
            tracing::error!(error = %e, "holder portal server certificate renewal failed; retrying at the next check");
            first_error.get_or_insert(e);
        }
        let tsa = self.tsa.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(tsa) = tsa {
            let renewal = ca::officers::Actor::System("tsa-renewal");
            if let Err(e) = ca::officers::acting_as(&renewal, || tsa.renew_if_due()) {
                tracing::error!(error = %e, "TSA unit renewal failed; retrying at the next check");
                first_error.get_or_insert(crate::Error::Serve(format!("TSA renewal: {e}")));
            }
        }
        if let Err(e) = self.renew_listeners() {
            tracing::error!(error = %e, "admin or verifiers server certificate renewal failed; retrying at the next check");
            first_error.get_or_insert(e);
        }
        // The operator CA's CRL (officers' certificates) is re-published before it goes stale.
        match platform::operator_crl::republish_if_due(a, PF_SERVER_MARGIN_DAYS) {
            Ok(true) => tracing::warn!("re-published the operator CA's CRL"),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "operator CA CRL re-publication failed; retrying at the next check");
                first_error.get_or_insert(e.into());
            }
        }
        let all = self.expiries()?;
        let now = a.clock().now();
        for e in all.iter().filter(|e| e.due(now)) {
            tracing::warn!(
                certificate = %e.label(),
                serial = %e.serial,
                not_after = %e.not_after,
                margin_days = e.margin_days,
                "a certificate jpki serve depends on is within its margin of expiry"
            );
        }
        *self.seen.write().unwrap_or_else(|p| p.into_inner()) = all.clone();
        match first_error {
            Some(e) => Err(e),
            None => Ok(all),
        }
    }

    /// Renews one listener's server certificate in place when it is within
    /// [`PF_SERVER_MARGIN_DAYS`] of its notAfter: a fresh key and certificate from the operator
    /// CA for `names`, audited `<what>-renew`, then installed by `replace` (new handshakes get
    /// it, open connections are left alone).
    fn renew_in_place(
        &self,
        what: &str,
        current: &[u8],
        names: &[String],
        replace: impl FnOnce(
            Vec<rustls::pki_types::CertificateDer<'static>>,
            rustls::pki_types::PrivateKeyDer<'static>,
        ) -> Result<()>,
    ) -> Result<()> {
        let a = &self.authority;
        let old = Expiry::of(what, None, current, PF_SERVER_MARGIN_DAYS)?;
        let now = a.clock().now();
        if !old.due(now) {
            return Ok(());
        }
        let (chain, key) = platform::server_identity(a, names)?;
        let leaf = chain.first().map(|c| c.to_vec()).unwrap_or_default();
        let new = Expiry::of(what, None, &leaf, PF_SERVER_MARGIN_DAYS)?;
        a.storage().transact(&|t| {
            ca::storage::audit(
                t,
                now,
                &format!("{what}-renew"),
                &new.serial,
                &format!(
                    "replaces {}; notAfter {}",
                    old.serial,
                    new.not_after.unix_timestamp()
                ),
            )
        })?;
        replace(chain, key)?;
        tracing::warn!(serial = %new.serial, replaced = %old.serial, listener = what, "renewed a server certificate");
        Ok(())
    }

    fn renew_pf_server(&self) -> Result<()> {
        let pf = self.pf.lock().unwrap_or_else(|p| p.into_inner());
        let Some(pf) = pf.as_ref() else {
            return Ok(());
        };
        self.renew_in_place(
            "pf-server",
            &pf.api.server_certificate(),
            &pf.names,
            |c, k| Ok(pf.api.replace_identity(c, k)?),
        )
    }

    /// The admin API's and verifiers' server certificates, renewed like the platform API's.
    fn renew_listeners(&self) -> Result<()> {
        let listeners = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        for (what, api) in listeners.iter() {
            self.renew_in_place(what, &api.server_certificate(), api.names(), |c, k| {
                api.replace_identity(c, k)
            })?;
        }
        Ok(())
    }

    /// The portal's server certificate, renewed like the platform API's (audit
    /// `portal-server-renew`).
    fn renew_portal_server(&self) -> Result<()> {
        let portal = self.portal.lock().unwrap_or_else(|p| p.into_inner());
        let Some((portal, names)) = portal.as_ref() else {
            return Ok(());
        };
        self.renew_in_place(
            "portal-server",
            &portal.server_certificate(),
            names,
            |c, k| portal.replace_identity(c, k),
        )
    }

    /// The roots, OCSP signers, the operator CA (if the data directory has one) and the
    /// platform API's server certificate (if served).
    fn expiries(&self) -> Result<Vec<Expiry>> {
        let a = &self.authority;
        let mut all = a.expiries()?;
        let operator_root = a.dir().join("certs").join("operator-root.pem");
        if operator_root.exists() {
            let der = platform::operator_ca::root(a)?;
            all.push(Expiry::of("operator-ca", None, &der, ROOT_WARN_DAYS)?);
        }
        if let Some(pf) = self.pf.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            all.push(Expiry::of(
                "pf-server",
                None,
                &pf.api.server_certificate(),
                PF_SERVER_MARGIN_DAYS,
            )?);
        }
        if let Some((portal, _)) = self
            .portal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            all.push(Expiry::of(
                "portal-server",
                None,
                &portal.server_certificate(),
                PF_SERVER_MARGIN_DAYS,
            )?);
        }
        let tsa = self.tsa.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(tsa) = tsa {
            let margin = i64::from(a.policy().tsa.renew_days_before);
            all.push(Expiry::of("tsa", None, &tsa.certificate(), margin)?);
            all.push(Expiry::of("tsa-root", None, tsa.root(), ROOT_WARN_DAYS)?);
        }
        Ok(all)
    }

    /// The gauges, in the Prometheus text format, at the authority's time.
    pub fn render(&self) -> String {
        let now = self.authority.clock().now();
        let mut seen = self.seen.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(r) = self.responder.get() {
            for e in seen.iter_mut().filter(|e| e.what == "ocsp-signer") {
                let live = e
                    .hierarchy
                    .and_then(|h| r.signer_certificate(h))
                    .and_then(|der| Expiry::of(&e.what, e.hierarchy, &der, e.margin_days).ok());
                if let Some(live) = live {
                    *e = live;
                }
            }
        }
        let mut out = String::new();
        let label = |e: &Expiry| {
            format!(
                "certificate=\"{}\",hierarchy=\"{}\",serial=\"{}\"",
                e.what,
                e.hierarchy.map(|h| h.as_str()).unwrap_or(""),
                e.serial
            )
        };
        let _ = writeln!(
            out,
            "# HELP jpki_certificate_expiry_seconds Seconds until notAfter of each certificate jpki serve depends on."
        );
        let _ = writeln!(out, "# TYPE jpki_certificate_expiry_seconds gauge");
        for e in seen.iter() {
            let _ = writeln!(
                out,
                "jpki_certificate_expiry_seconds{{{}}} {}",
                label(e),
                e.seconds_left(now)
            );
        }
        let _ = writeln!(
            out,
            "# HELP jpki_certificate_within_margin 1 when the certificate is within its renewal (or warning) margin."
        );
        let _ = writeln!(out, "# TYPE jpki_certificate_within_margin gauge");
        for e in seen.iter() {
            let _ = writeln!(
                out,
                "jpki_certificate_within_margin{{{}}} {}",
                label(e),
                u8::from(e.due(now))
            );
        }
        out
    }

    /// Checks every [`CHECK`], and looks for root generations added by another process every
    /// [`ROOTS_POLL`], until `stop` resolves.
    pub async fn run(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut since_check = std::time::Duration::ZERO;
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(ROOTS_POLL) => {}
            }
            let me = Arc::clone(&self);
            if let Err(e) = tokio::task::spawn_blocking(move || me.adopt_roots()).await {
                tracing::error!(error = %e, "the root watch task failed");
            }
            since_check += ROOTS_POLL;
            if since_check < CHECK {
                continue;
            }
            since_check = std::time::Duration::ZERO;
            let me = Arc::clone(&self);
            if let Err(e) = tokio::task::spawn_blocking(move || me.check()).await {
                tracing::error!(error = %e, "the certificate watch task failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use policies::Hierarchy;
    use std::sync::atomic::{AtomicI64, Ordering};
    use time::OffsetDateTime;

    /// A clock the test turns.
    struct Dial(AtomicI64);

    impl policies::clock::Clock for Dial {
        fn now(&self) -> OffsetDateTime {
            OffsetDateTime::from_unix_timestamp(self.0.load(Ordering::SeqCst))
                .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        }
    }

    impl Dial {
        fn set(&self, t: OffsetDateTime) {
            self.0.store(t.unix_timestamp(), Ordering::SeqCst);
        }
    }

    #[test]
    fn a_running_server_renews_its_certificates_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let t0 = time::macros::datetime!(2027-01-05 01:00 UTC);
        let clock = Arc::new(Dial(AtomicI64::new(t0.unix_timestamp())));
        let a = Arc::new(
            Authority::init(
                &tmp.path().join("data"),
                policies::policy::DEFAULT_POLICY,
                b"watch passphrase",
                clock.clone(),
            )
            .unwrap(),
        );
        let settings = crate::serve::Settings {
            http: None,
            pf_https: None,
            tsa: None,
            pf_names: Vec::new(),
            portal: None,
            portal_names: Vec::new(),
            crl_dir: tmp.path().join("crl"),
            crl: crl_publisher::Settings::default(),
            compact_journal_bytes: None,
            limits: conn_guard::Limits::default(),
            admin: None,
            checkpoint_every: None,
            verifiers: None,
            presign_rate: 200,
            memory_answers: 64 << 10,
            store_cache_bytes: crate::serve::DEFAULT_STORE_CACHE_MIB << 20,
        };
        let parts = crate::serve::assemble(Arc::clone(&a), &settings).unwrap();
        let local: std::net::SocketAddr = "127.0.0.1:9443".parse().unwrap();
        let api = parts.pf_api(local, &[]).unwrap();
        let watch = Watch::new(Arc::clone(&a));
        watch.set_responder(parts.responder.clone());
        watch.set_pf(Arc::clone(&api), crate::serve::pf_server_names(local, &[]));
        let seen = watch.check().unwrap();
        assert!(seen.iter().all(|e| !e.due(t0)), "{seen:?}");
        assert!(seen.iter().any(|e| e.what == "operator-ca"));
        let gauges = watch.render();
        assert!(
            gauges.contains("jpki_certificate_expiry_seconds{certificate=\"pf-server\""),
            "{gauges}"
        );
        let (pf0, signer0) = (
            api.server_certificate(),
            parts
                .responder
                .signer_certificate(Hierarchy::Signing)
                .unwrap(),
        );

        // 21 days on: the 30-day server certificate is within its 10-day margin.
        clock.set(t0 + time::Duration::days(21));
        watch.check().unwrap();
        let pf1 = api.server_certificate();
        assert_ne!(pf1, pf0, "renewed in the running acceptor");
        assert_eq!(
            parts
                .responder
                .signer_certificate(Hierarchy::Signing)
                .unwrap(),
            signer0
        );

        // 340 days on: both OCSP signers are within their 30-day margin and are swapped into
        // the running responder; the server certificate has been renewed again meanwhile.
        clock.set(t0 + time::Duration::days(340));
        watch.check().unwrap();
        for h in Hierarchy::ALL {
            let live = parts.responder.signer_certificate(h).unwrap();
            assert_eq!(
                live,
                a.ocsp_signer_certificate(h).unwrap(),
                "the responder signs with the certificate on disk"
            );
        }
        assert_ne!(
            parts
                .responder
                .signer_certificate(Hierarchy::Signing)
                .unwrap(),
            signer0
        );
        assert_ne!(api.server_certificate(), pf1);
        let actions: Vec<String> = a
            .audit_records()
            .unwrap()
            .into_iter()
            .map(|r| r.action)
            .collect();
        assert_eq!(
            actions.iter().filter(|x| *x == "ocsp-signer-renew").count(),
            2
        );
        assert_eq!(
            actions.iter().filter(|x| *x == "pf-server-renew").count(),
            2
        );
        a.audit_verify().unwrap();
        // A renewal by hand (the admin socket's path) shows in the gauges at once.
        let r = a.renew_ocsp_signer(Hierarchy::Auth).unwrap();
        assert!(
            watch.render().contains(&format!("serial=\"{}\"", r.serial)),
            "{}",
            watch.render()
        );
        let seen = watch.check().unwrap();
        let now = t0 + time::Duration::days(340);
        assert!(
            seen.iter().all(|e| !e.due(now)),
            "nothing left within its margin: {seen:?}"
        );
    }

    #[test]
    fn the_portal_certificate_is_renewed_like_the_platform_apis() {
        let tmp = tempfile::tempdir().unwrap();
        let t0 = time::macros::datetime!(2027-01-05 01:00 UTC);
        let clock = Arc::new(Dial(AtomicI64::new(t0.unix_timestamp())));
        let a = Arc::new(
            Authority::init(
                &tmp.path().join("data"),
                policies::policy::DEFAULT_POLICY,
                b"watch passphrase",
                clock.clone(),
            )
            .unwrap(),
        );
        let names = vec!["127.0.0.1".to_owned()];
        let portal = crate::serve::portal::Portal::new(Arc::clone(&a), &names).unwrap();
        let watch = Watch::new(Arc::clone(&a));
        watch.set_portal(Arc::clone(&portal), names);
        watch.check().unwrap();
        let first = portal.server_certificate();
        assert!(watch
            .render()
            .contains("jpki_certificate_expiry_seconds{certificate=\"portal-server\""));
        clock.set(t0 + time::Duration::days(21));
        watch.check().unwrap();
        assert_ne!(portal.server_certificate(), first, "renewed in place");
        let renewals = a
            .audit_records()
            .unwrap()
            .into_iter()
            .filter(|r| r.action == "portal-server-renew")
            .count();
        assert_eq!(renewals, 1);
        a.audit_verify().unwrap();
    }

    #[test]
    fn the_admin_and_verifiers_certificates_and_the_operator_crl_are_kept_current() {
        let tmp = tempfile::tempdir().unwrap();
        let t0 = time::macros::datetime!(2027-01-05 01:00 UTC);
        let clock = Arc::new(Dial(AtomicI64::new(t0.unix_timestamp())));
        let a = Arc::new(
            Authority::init(
                &tmp.path().join("data"),
                policies::policy::DEFAULT_POLICY,
                b"watch passphrase",
                clock.clone(),
            )
            .unwrap(),
        );
        let local: std::net::SocketAddr = "127.0.0.1:9444".parse().unwrap();
        let api = Arc::new(
            crate::serve::admin_https::AdminApi::new(
                Arc::clone(&a),
                local,
                &[],
                crate::serve::admin_https::RateLimit::default(),
            )
            .unwrap(),
        );
        platform::operator_crl::publish(&a).unwrap();
        let crl = std::fs::read(platform::operator_crl::path(&a)).unwrap();
        let watch = Watch::new(Arc::clone(&a));
        watch.add_listener("admin-server", api.clone());
        watch.check().unwrap();
        let first = api.server_certificate();
        assert_eq!(
            std::fs::read(platform::operator_crl::path(&a)).unwrap(),
            crl
        );
        clock.set(t0 + time::Duration::days(21));
        watch.check().unwrap();
        assert_ne!(api.server_certificate(), first, "renewed in place");
        assert_ne!(
            std::fs::read(platform::operator_crl::path(&a)).unwrap(),
            crl,
            "the CRL within its margin was re-published"
        );
        let renewals = a
            .audit_records()
            .unwrap()
            .into_iter()
            .filter(|r| r.action == "admin-server-renew")
            .count();
        assert_eq!(renewals, 1);
        a.audit_verify().unwrap();
    }
}
