//! `openssl ocsp` as the outside oracle against a live responder on 127.0.0.1.

mod support;

use std::process::Command;
use std::sync::Arc;

use ocsp_responder::{Cause, Responder, Settings, SystemClock};
use policies::{Hierarchy, Policy, Reason};
use time::OffsetDateTime;

struct Server {
    responder: Responder,
    url: String,
    pki: support::Pki,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let pki = support::pki(dir.path());
    let settings = Settings::from_policy(&Policy::default_policy());
    let responder = Responder::new(
        settings,
        pki.issuers.clone(),
        pki.source.clone(),
        Arc::new(SystemClock),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ocsp", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let r = responder.clone();
    tokio::spawn(async move {
        r.serve(listener, None, async {
            let _ = rx.await;
        })
        .await
    });
    Server {
        responder,
        url,
        pki,
        _dir: dir,
        _stop: tx,
    }
}

/// Runs `openssl ocsp` for `certs` under the root of `issuer`; returns stdout+stderr.
async fn ocsp(s: &Server, issuer: &str, certs: &[&str], extra: &[&str]) -> String {
    let mut args: Vec<String> = vec!["ocsp".into()];
    args.extend(extra.iter().map(|a| a.to_string()));
    let root = s.pki.root_pem(issuer).display().to_string();
    args.extend(["-issuer".into(), root.clone()]);
    for c in certs {
        args.extend(["-cert".into(), s.pki.leaf(c).path.display().to_string()]);
    }
    args.extend([
        "-url".into(),
        s.url.clone(),
        "-CAfile".into(),
        root,
        "-timeout".into(),
        "10".into(),
    ]);
    let out =
        tokio::task::spawn_blocking(move || Command::new("openssl").args(&args).output().unwrap())
            .await
            .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn line_for<'a>(out: &'a str, leaf: &str) -> &'a str {
    out.lines()
        .find(|l| l.contains(&format!("{leaf}.pem:")))
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_with_nonce_then_revoked_after_refresh() {
    let s = start().await;
    let out = ocsp(&s, "signing", &["good"], &[]).await;
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(line_for(&out, "good").ends_with(": good"), "{out}");
    // openssl sends a nonce by default and complains when it is missing or different
    assert!(!out.contains("nonce"), "{out}");

    // nonce-less: the first answer fills the cache, the second is a hit
    let out = ocsp(&s, "signing", &["good"], &["-no_nonce"]).await;
    assert!(line_for(&out, "good").ends_with(": good"), "{out}");
    let hits = s.responder.metrics().count_cause(Cause::CacheHit);
    let out = ocsp(&s, "signing", &["good"], &["-no_nonce"]).await;
    assert!(out.contains("Response verify OK"), "{out}");
    assert_eq!(s.responder.metrics().count_cause(Cause::CacheHit), hits + 1);

    // revoke in the store, refresh, and the very next (cached) query says revoked
    let serial = s.pki.leaf("good").serial.clone();
    s.pki.source.revoke(
        Hierarchy::Signing,
        &serial,
        OffsetDateTime::now_utc(),
        Reason::KeyCompromise,
    );
    assert_eq!(
        s.responder
            .refresh(Hierarchy::Signing, &serial, OffsetDateTime::now_utc())
            .unwrap(),
        1
    );
    let hits = s.responder.metrics().count_cause(Cause::CacheHit);
    let out = ocsp(&s, "signing", &["good"], &["-no_nonce"]).await;
    assert!(line_for(&out, "good").ends_with(": revoked"), "{out}");
    assert!(out.contains("Reason: keyCompromise"), "{out}");
    assert!(out.contains("Response verify OK"), "{out}");
    assert_eq!(
        s.responder.metrics().count_cause(Cause::CacheHit),
        hits + 1,
        "served from the refreshed cache"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_cache_without_refresh_shows_why_refresh_exists() {
    let s = start().await;
    let out = ocsp(&s, "signing", &["revoked"], &["-no_nonce"]).await;
    assert!(line_for(&out, "revoked").ends_with(": good"), "{out}");
    let serial = s.pki.leaf("revoked").serial.clone();
    s.pki.source.revoke(
        Hierarchy::Signing,
        &serial,
        OffsetDateTime::now_utc(),
        Reason::Superseded,
    );
    // cached answer is still good: the store change alone does not reach the cache...
    let out = ocsp(&s, "signing", &["revoked"], &["-no_nonce"]).await;
    assert!(line_for(&out, "revoked").ends_with(": good"), "{out}");
    // ...but a nonce request is signed live and sees the store
    let out = ocsp(&s, "signing", &["revoked"], &[]).await;
    assert!(line_for(&out, "revoked").ends_with(": revoked"), "{out}");
    assert!(out.contains("Reason: superseded"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_unknown_foreign_auth_multi_and_sha256() {
    let s = start().await;
    let out = ocsp(&s, "signing", &["held"], &[]).await;
    assert!(line_for(&out, "held").ends_with(": revoked"), "{out}");
    assert!(out.contains("Reason: certificateHold"), "{out}");

    let out = ocsp(&s, "signing", &["unissued"], &[]).await;
    assert!(line_for(&out, "unissued").ends_with(": unknown"), "{out}");
    assert!(out.contains("Response verify OK"), "{out}");

    let out = ocsp(&s, "foreign", &["foreign"], &[]).await;
    assert!(out.contains("Responder Error: unauthorized (6)"), "{out}");

    let out = ocsp(&s, "auth", &["auth-good"], &[]).await;
    assert!(line_for(&out, "auth-good").ends_with(": good"), "{out}");
    assert!(out.contains("Response verify OK"), "{out}");

    let out = ocsp(&s, "signing", &["good", "held", "unissued"], &[]).await;
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(line_for(&out, "good").ends_with(": good"), "{out}");
    assert!(line_for(&out, "held").ends_with(": revoked"), "{out}");
    assert!(line_for(&out, "unissued").ends_with(": unknown"), "{out}");

    let out = ocsp(&s, "signing", &["good"], &["-sha256"]).await;
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(line_for(&out, "good").ends_with(": good"), "{out}");
    let out = ocsp(&s, "signing", &["good"], &["-sha256", "-no_nonce"]).await;
    assert!(line_for(&out, "good").ends_with(": good"), "{out}");
}

/// A renewal: the signing hierarchy's delegated signer is replaced while the responder runs;
/// answers from then on carry (and are signed by) the new signer and verify against the root;
/// a signer issued by another root is refused and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_signer_signs_from_then_on_and_a_foreign_one_is_refused() {
    let s = start().await;
    let before = s.responder.signer_certificate(Hierarchy::Signing).unwrap();
    let foreign = s.pki.next_signers["auth"].clone();
    assert!(s
        .responder
        .replace_signer(Hierarchy::Signing, foreign)
        .is_err());
    assert_eq!(
        s.responder.signer_certificate(Hierarchy::Signing).unwrap(),
        before
    );
    let next = s.pki.next_signers["signing"].clone();
    s.responder
        .replace_signer(Hierarchy::Signing, next.clone())
        .unwrap();
    assert_eq!(
        s.responder.signer_certificate(Hierarchy::Signing).unwrap(),
        next.certificate()
    );
    let out = ocsp(&s, "signing", &["good"], &["-resp_text"]).await;
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(line_for(&out, "good").ends_with(": good"), "{out}");
    // The new signer's serial (10:EF) is the one in the answer's certificate.
    assert!(out.contains("4335 (0x10ef)"), "{out}");
    assert!(s
        .responder
        .render_metrics()
        .contains("ocsp_signer_replacements_total 1"));
}

/// A compromised signer: a plain replacement leaves the cached answers of the old signer in
/// place (they stay verifiable), a compromised one removes them, so the next answer for the
/// same request is signed by the new signer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compromised_signer_leaves_no_cached_answer_behind() {
    let s = start().await;
    let out = ocsp(&s, "signing", &["good"], &["-no_nonce", "-resp_text"]).await;
    assert!(line_for(&out, "good").ends_with(": good"), "{out}");
    assert!(!out.contains("4335 (0x10ef)"), "{out}");
    let next = s.pki.next_signers["signing"].clone();
    s.responder
        .replace_signer(Hierarchy::Signing, next.clone())
        .unwrap();
    // Renewal: the cached answer (old signer) is still served.
    let out = ocsp(&s, "signing", &["good"], &["-no_nonce", "-resp_text"]).await;
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(!out.contains("4335 (0x10ef)"), "{out}");
    let removed = s
        .responder
        .replace_compromised_signer(Hierarchy::Signing, next)
        .unwrap();
    assert!(removed >= 1, "{removed}");
    let out = ocsp(&s, "signing", &["good"], &["-no_nonce", "-resp_text"]).await;
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(line_for(&out, "good").ends_with(": good"), "{out}");
    assert!(out.contains("4335 (0x10ef)"), "{out}");
    // The other hierarchy's cache is untouched by the purge.
    let out = ocsp(&s, "auth", &["auth-good"], &["-no_nonce"]).await;
    assert!(line_for(&out, "auth-good").ends_with(": good"), "{out}");
}
