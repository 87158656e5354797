//! `jpki demo`: the whole story in a temporary directory, step by step — cards, a signed tax
//! return verified by a relying party, a move that revokes the signing certificate (OCSP at
//! once, then the CRL), a lost card — with the CRL and OCSP services running in this process.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use ca::authority::{Authority, Event, NewResident};
use ca::clock::SystemClock;
use holder_token::{Encapsulation, Token, TokenKind};
use platform::registry::Scope;
use policies::{Hierarchy, Sex};
use time::macros::date;

use crate::{Error, Result};

struct Story {
    step: usize,
    started: Instant,
    rows: Vec<(String, String)>,
}

impl Story {
    fn step(&mut self, title: &str) {
        self.step += 1;
        println!("\n[{}] {title}", self.step);
    }
    fn line(&self, text: impl AsRef<str>) {
        println!("    {}", text.as_ref());
    }
    fn result(&mut self, what: &str, outcome: impl Into<String>) {
        self.rows.push((what.to_owned(), outcome.into()));
    }
}

fn demo_err(what: &str) -> impl FnOnce(String) -> Error + '_ {
    move |e| Error::Serve(format!("demo: {what}: {e}"))
}

/// A card: a holder token with both keys, certificates issued from its CSRs and imported back.
fn card(
    a: &Authority,
    dir: &Path,
    id: &str,
    sign_pin: &str,
    auth_pin: &str,
) -> Result<(Token, Vec<ca::authority::Issued>)> {
    let mut token = Token::create(&dir.join(format!("{id}.token")), sign_pin, auth_pin)?;
    let mut issued = Vec::new();
    for (h, pin) in [(Hierarchy::Auth, auth_pin), (Hierarchy::Signing, sign_pin)] {
        let csr = token.csr(h, pin)?;
        let i = a.issue(id, h, &csr)?;
        token.import_cert(&i.der)?;
        issued.push(i);
    }
    Ok((token, issued))
}

pub fn run(keep: Option<&Path>) -> Result<()> {
    let tmp = tempfile::tempdir().map_err(|e| demo_err("temporary directory")(e.to_string()))?;
    let base = match keep {
        Some(d) => d.to_path_buf(),
        None => tmp.path().to_path_buf(),
    };
    let dir = base.join("data");
    let cards = base.join("cards");
    std::fs::create_dir_all(&cards).map_err(|e| demo_err("cards directory")(e.to_string()))?;
    let mut s = Story {
        step: 0,
        started: Instant::now(),
        rows: Vec::new(),
    };
    println!("jpki demo — a JPKI-style CA from card issuance to revocation");
    println!("data directory: {}", dir.display());

    s.step("Initialise both hierarchies (signing, user authentication) and their OCSP signers");
    let mut pass = [0u8; 24];
    aws_lc_rs::rand::fill(&mut pass)
        .map_err(|_| demo_err("random")("OS random generator failed".into()))?;
    let pass = hex::encode(pass);
    let a = Arc::new(Authority::init(
        &dir,
        policies::policy::DEFAULT_POLICY,
        pass.as_bytes(),
        Arc::new(SystemClock),
    )?);
    platform::operator_ca::create(&a)?;
    for h in Hierarchy::ALL {
        let root = a.root(h);
        let (_, c) = x509_parser::parse_x509_certificate(&root.der)
            .map_err(|e| demo_err("root")(e.to_string()))?;
        s.line(format!("{h:<8} root  {}", c.subject()));
    }
    if keep.is_some() {
        s.line(format!("CA key passphrase (kept for you): {pass}"));
    }

    s.step("Start the CRL and OCSP services (in this process, on 127.0.0.1)");
    let services = Services::start(Arc::clone(&a), &dir)?;
    s.line(format!(
        "OCSP {}   CRLs {}/crl/   platform-operator API https://{}/v1/",
        services.ocsp_url(),
        services.base,
        services.pf
    ));

    s.step("A platform operator (PF) is certified; a bank (SP) delegates its checks to it");
    let scopes = vec![Scope::Validity, Scope::FourAttributes];
    let pf = platform::handle(
        &a,
        platform::Request::OperatorAdd {
            name: "Example PF".into(),
            scopes: scopes.clone(),
            csr_base64: None,
        },
    )?;
    let sp = platform::handle(
        &a,
        platform::Request::SpAdd {
            pf: "Example PF".into(),
            name: "Example Bank".into(),
            scopes,
        },
    )?;
    let sp_id = sp["id"].as_str().unwrap_or_default().to_owned();
    let pf_tls = platform::client::tls_config(
        pf["root_pem"].as_str().unwrap_or_default(),
        pf["cert_pem"].as_str().unwrap_or_default(),
        pf["key_pem"].as_str().unwrap_or_default(),
    )?;
    s.line(format!(
        "PF client certificate {} from the operator CA; SP {sp_id} under it",
        pf["serial"].as_str().unwrap_or_default()
    ));

    s.step("Register two residents at their municipalities");
    let hanako = a.resident_add(&NewResident {
        name: "山田　花子".into(),
        birth: date!(1985 - 04 - 12),
        sex: Sex::Female,
        address: "東京都千代田区霞が関二丁目１番２号".into(),
        prefecture: "Tokyo".into(),
        municipality: "Chiyoda-ku".into(),
        card_expiry: date!(2035 - 04 - 12),
    })?;
    let ichiro = a.resident_add(&NewResident {
        name: "髙橋　一郎".into(),
        birth: date!(1990 - 02 - 28),
        sex: Sex::Male,
        address: "大阪府大阪市北区中之島一丁目３番２０号".into(),
        prefecture: "Osaka".into(),
        municipality: "Osaka-shi".into(),
        card_expiry: date!(2033 - 02 - 28),
    })?;
    s.line(format!("山田 花子 → {hanako}"));
    s.line(format!("髙橋 一郎 → {ichiro} (髙 is outside JIS X 0208: the card writes 〓 and sets its substitute flag)"));

    s.step("Each card makes its key pairs under its PINs; the CA issues from the CSRs");
    let bar = indicatif::ProgressBar::new(2).with_message("cards");
    let (mut hanako_card, hanako_certs) = card(&a, &cards, &hanako, HANAKO_PINS.0, HANAKO_PINS.1)?;
    bar.inc(1);
    let (_ichiro_card, ichiro_certs) = card(&a, &cards, &ichiro, ICHIRO_PINS.0, ICHIRO_PINS.1)?;
    bar.finish_and_clear();
    for i in hanako_certs.iter().chain(&ichiro_certs) {
        s.line(format!(
            "{:<8} {}  {}  notAfter {} ({:?})",
            i.hierarchy,
            i.serial,
            i.resident,
            i.not_after.date(),
            i.bound
        ));
    }
    let old_sign = hanako_certs
        .iter()
        .find(|i| i.hierarchy == Hierarchy::Signing)
        .ok_or_else(|| demo_err("issue")("no signing certificate".into()))?
        .clone();
    let (_, cert) = x509_parser::parse_x509_certificate(&old_sign.der)
        .map_err(|e| demo_err("parse")(e.to_string()))?;
    s.line(format!("signing certificate subject: {} — no name in it; the four attributes are otherNames in its SAN", cert.subject()));
    s.result("certificates issued from card CSRs", "4");

    s.step("山田 花子 signs her tax return with her card; the tax office verifies it");
    let ret = "<申告書><年分>令和8年</年分><所得金額>5,000,000</所得金額></申告書>".as_bytes();
    let sig = hanako_card.sign_cms("TAXRETURN1", ret, Encapsulation::Detached, a.clock().now())?;
    let sig = crate::timestamp::stamp(&sig, &services.tsa.0).map_err(demo_err("time-stamp"))?;
    s.line(format!(
        "signature time-stamped by the TSA at {} (RFC 3161, CAdES-T)",
        services.tsa.0
    ));
    let sroot = ca::records::pem(&a.root(Hierarchy::Signing).der);
    let verifier = relying_party::Verifier::new(
        sroot.as_bytes(),
        Some(a.policy()),
        relying_party::StatusSource::Ocsp(services.ocsp_url()),
    )?;
    let report = verifier.verify_document(&sig, Some(ret), None, a.clock().now());
    s.line(format!(
        "verdict: {:?} — {}",
        report.verdict,
        checks(&report)
    ));
    if let Some(at) = &report.attributes {
        s.line(format!(
            "signer: {}, born {} ({}), {}",
            at.name, at.birth.date, at.birth.era, at.address
        ));
    }
    s.result(
        "tax return verified (OCSP)",
        format!("{:?}", report.verdict),
    );

    s.step("She consents, with her signing key, to the bank reading her latest four attributes");
    let statement = serde_json::json!({"sp": sp_id, "scope": "four-attributes", "expires": "2030-01-01T00:00:00Z", "nonce": "demo-consent-1"});
    let consent = hanako_card.sign_cms(
        "TAXRETURN1",
        statement.to_string().as_bytes(),
        Encapsulation::Attached,
        a.clock().now(),
    )?;
    let (code, v) = services.pf_post(
        &pf_tls,
        "/v1/consents",
        &serde_json::json!({"sp": sp_id, "cms": base64_std(&consent)}),
    )?;
    s.line(format!(
        "POST /v1/consents over mutual TLS → {code}, consent {} until {}",
        v["id"].as_str().unwrap_or("?"),
        v["expires"].as_str().unwrap_or("?")
    ));

    s.step("山田 花子 moves to Yokohama: the register revokes her signing certificate by rule");
    // Times are whole seconds: the move falls in a later second than the filing's time-stamp.
    let filed = a.clock().now();
    while a.clock().now() <= filed {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = a.event(
        &hanako,
        &Event::Move {
            address: "神奈川県横浜市中区日本大通１番地".into(),
            prefecture: Some("Kanagawa".into()),
            municipality: Some("Yokohama-shi".into()),
        },
    )?;
    for r in &out.revocations {
        s.line(format!(
            "{} {}:{} ({})",
            r.status.as_str(),
            r.hierarchy,
            r.serial,
            r.reason
        ));
    }
    s.line("her authentication certificate stays valid (it carries no personal data)");
    let ocsp = ocsp_status(&a, &services, Hierarchy::Signing, &old_sign.der)?;
    s.line(format!("OCSP, on the very next query: {ocsp}"));
    s.result("OCSP right after the move", ocsp);
    let listed =
        services.wait_for_crl(Hierarchy::Signing, &old_sign.partition, &old_sign.serial)?;
    s.line(format!(
        "partition CRL {}/crl/signing/{}.crl lists it: {listed}",
        services.base,
        old_sign.partition.path()
    ));
    s.result("next CRL lists the revoked certificate", listed.to_string());

    s.step("The bank, through its PF and holding her consent, learns the new address");
    let ask = serde_json::json!({"sp": sp_id, "certificate": old_sign.pem});
    let (code, v) = services.pf_post(
        &pf_tls,
        "/v1/validity",
        &serde_json::json!({"sp": sp_id, "certificates": [old_sign.pem]}),
    )?;
    s.line(format!(
        "POST /v1/validity → {code}: {} ({}), attributes changed: {}",
        v["results"][0]["status"].as_str().unwrap_or("?"),
        v["results"][0]["reason"].as_str().unwrap_or("-"),
        v["results"][0]["attributes_changed"]
    ));
    let (code, v) = services.pf_post(&pf_tls, "/v1/four-attributes", &ask)?;
    let address = v["address"].as_str().unwrap_or("(refused)").to_owned();
    s.line(format!(
        "POST /v1/four-attributes with the revoked certificate → {code}: {address}"
    ));
    s.result("PF learns the new address after the move", address);

    s.step("She signs again with the old certificate: the relying party refuses it");
    let sig2 = hanako_card.sign_cms("TAXRETURN1", ret, Encapsulation::Detached, a.clock().now())?;
    let report = verifier.verify_document(&sig2, Some(ret), None, a.clock().now());
    s.line(format!(
        "verdict: {:?} — {}",
        report.verdict,
        checks(&report)
    ));
    s.result(
        "new signature with the old certificate",
        format!("{:?}", report.verdict),
    );

    s.step(
        "The tax office judges the filed return as of its time-stamp (jpki verify --at timestamp)",
    );
    let tsa_roots = [services.tsa.1.clone()];
    let filed = verifier.verify_document_as_of(
        &sig,
        relying_party::Content::Bytes(Some(ret)),
        relying_party::When::Timestamp,
        &tsa_roots,
        a.clock().now(),
    );
    s.line(format!(
        "filed return: {:?} as of {} — {}",
        filed.report.verdict,
        filed.report.checked_at,
        checks(&filed.report)
    ));
    s.result(
        "filed return as of its time-stamp, after the move",
        format!("{:?}", filed.report.verdict),
    );
    let sig4 = hanako_card.sign_cms("TAXRETURN1", ret, Encapsulation::Detached, a.clock().now())?;
    let sig4 = crate::timestamp::stamp(&sig4, &services.tsa.0).map_err(demo_err("time-stamp"))?;
    let fresh = verifier.verify_document_as_of(
        &sig4,
        relying_party::Content::Bytes(Some(ret)),
        relying_party::When::Timestamp,
        &tsa_roots,
        a.clock().now(),
    );
    s.line(format!(
        "fresh signature with the old certificate: {:?} — {}",
        fresh.report.verdict,
        fresh
            .report
            .check("status")
            .map_or_else(String::new, |c| c.reason.clone())
    ));
    s.result(
        "fresh signature with the old certificate, as of its time-stamp",
        format!("{:?}", fresh.report.verdict),
    );

    s.step("Her card gets a new signing certificate with the new address");
    let csr = hanako_card.csr(Hierarchy::Signing, "TAXRETURN1")?;
    let new_sign = a.issue(&hanako, Hierarchy::Signing, &csr)?;
    hanako_card.import_cert(&new_sign.der)?;
    let sig3 = hanako_card.sign_cms("TAXRETURN1", ret, Encapsulation::Detached, a.clock().now())?;
    let report = verifier.verify_document(&sig3, Some(ret), None, a.clock().now());
    if let Some(at) = &report.attributes {
        s.line(format!(
            "verdict: {:?}; address now {}",
            report.verdict, at.address
        ));
    }

    s.step("髙橋 一郎 reports his card lost: both certificates go on hold (never released)");
    let out = a.event(&ichiro, &Event::CardLost)?;
    for r in &out.revocations {
        s.line(format!(
            "{} {}:{} ({})",
            r.status.as_str(),
            r.hierarchy,
            r.serial,
            r.reason
        ));
    }
    let ichiro_auth = ichiro_certs
        .iter()
        .find(|i| i.hierarchy == Hierarchy::Auth)
        .ok_or_else(|| demo_err("issue")("no auth certificate".into()))?;
    let held = ocsp_status(&a, &services, Hierarchy::Auth, &ichiro_auth.der)?;
    s.line(format!("OCSP for his authentication certificate: {held}"));
    s.result("lost card: OCSP", held);

    s.step("山田 花子 moves abroad after the continued-use procedure and signs from abroad");
    let out = a.event(
        &hanako,
        &Event::Emigrate {
            departure: None,
            continued_use: true,
        },
    )?;
    for r in &out.revocations {
        s.line(format!(
            "{} {}:{} ({}) — the departure revokes the domestic signing certificate",
            r.status.as_str(),
            r.hierarchy,
            r.serial,
            r.reason
        ));
    }
    let csr = hanako_card.csr(Hierarchy::Signing, "TAXRETURN1")?;
    let abroad = a.issue(&hanako, Hierarchy::Signing, &csr)?;
    hanako_card.import_cert(&abroad.der)?;
    s.line(format!(
        "signing certificate for emigrants {} from the family-register annex",
        abroad.serial
    ));
    let sig4 = hanako_card.sign_cms("TAXRETURN1", ret, Encapsulation::Detached, a.clock().now())?;
    let report = verifier.verify_document(&sig4, Some(ret), None, a.clock().now());
    let address = report
        .attributes
        .as_ref()
        .map(|at| at.address.clone())
        .unwrap_or_default();
    s.line(format!(
        "verdict: {:?}; address attribute: {address} (no address, the emigrant marker and departure date)",
        report.verdict
    ));
    s.result(
        "signature from abroad (emigrant certificate)",
        format!("{:?} {address}", report.verdict),
    );

    s.step("From abroad, 山田 花子 gets smartphone certificates on her card's authority; her phone logs in");
    let phone_path = cards.join(format!("{hanako}-phone.token"));
    let mut phone = Token::create_kind(&phone_path, "PHONESIGN1", "2468", TokenKind::Phone)?;
    let phone_csr = phone.csr(Hierarchy::Auth, "2468")?;
    let challenge = a.phone_challenge(&hanako)?;
    let raw =
        hex::decode(&challenge.challenge).map_err(|e| demo_err("challenge")(e.to_string()))?;
    let message = ca::authority::phone::authorisation_message(&raw, Some(&phone_csr), None)?;
    // The card (not the phone) signs the application with its authentication key.
    let authorisation = hanako_card.login("4321", &message)?;
    let issued = a.phone_issue(
        &hanako,
        &ca::authority::phone::PhoneApplication {
            auth_csr: Some(&phone_csr),
            signing_csr: None,
            challenge: &challenge.challenge,
            authorisation: &authorisation,
        },
    )?;
    let phone_auth = issued
        .certificates
        .first()
        .ok_or_else(|| demo_err("phone")("no phone certificate".into()))?;
    phone.import_cert(&phone_auth.der)?;
    s.line(format!(
        "{} certificate {} for her phone (token {}), authorised by her card's signature over the challenge",
        phone_auth.kind.as_str(),
        phone_auth.serial,
        TokenKind::Phone.token_name()
    ));
    let aroot = ca::records::pem(&a.root(Hierarchy::Auth).der);
    let site = relying_party::Verifier::new(
        aroot.as_bytes(),
        Some(a.policy()),
        relying_party::StatusSource::Ocsp(services.ocsp_url()),
    )?
    .accept_phone(true);
    let mut nonce = [0u8; 32];
    aws_lc_rs::rand::fill(&mut nonce)
        .map_err(|_| demo_err("random")("OS random generator failed".into()))?;
    let answer = phone.login("2468", &nonce)?;
    let login = site.verify_login(&phone_auth.der, &nonce, &answer, None, a.clock().now());
    let kind = login
        .check("kind")
        .map_or_else(String::new, |c| c.reason.clone());
    s.line(format!(
        "phone login: {:?}, account key {} — {kind}",
        login.verdict,
        login.account_key.clone().unwrap_or_default()
    ));
    s.result(
        "phone login (smartphone auth certificate)",
        format!("{:?}", login.verdict),
    );
    let (code, v) = services.pf_post(
        &pf_tls,
        "/v1/validity",
        &serde_json::json!({"sp": sp_id, "certificates": [phone_auth.pem]}),
    )?;
    let r = &v["results"][0];
    let seen = format!(
        "{} {} smartphone={}",
        r["status"].as_str().unwrap_or("?"),
        r["kind"].as_str().unwrap_or("?"),
        r["smartphone"]
    );
    s.line(format!(
        "POST /v1/validity with the phone's certificate → {code}: {seen}"
    ));
    s.result("PF validity check of the phone certificate", seen);

    s.step("Audit trail");
    let n = a.audit_verify()?;
    let certs = a.check_indexes()?;
    s.line(format!(
        "hash chain intact: {n} records; indexes consistent for {certs} certificates"
    ));
    services.stop();

    println!("\nSummary");
    println!("    {:<44} result", "what");
    for (what, outcome) in &s.rows {
        println!("    {what:<44} {outcome}");
    }
    println!();
    println!(
        "    {:<18} {:<8} {:<34} {:<8} reason",
        "resident", "kind", "serial", "status"
    );
    for id in [&hanako, &ichiro] {
        for v in a.cert_list(Some(id))? {
            println!(
                "    {:<18} {:<8} {:<34} {:<8} {}",
                id,
                v.hierarchy,
                v.serial,
                v.status.as_str(),
                v.reason
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "-".into())
            );
        }
    }
    println!(
        "\ndemo finished in {:.1} s",
        s.started.elapsed().as_secs_f64()
    );
    if let Some(k) = keep {
        println!(
            "data kept in {} (cards in {})",
            dir.display(),
            k.join("cards").display()
        );
        // The kept cards are only usable with their PINs: the demo's own, printed here.
        println!("the cards' PINs (signing password / authentication PIN):");
        for (who, id, (sign, auth)) in [
            ("山田 花子", &hanako, HANAKO_PINS),
            ("髙橋 一郎", &ichiro, ICHIRO_PINS),
        ] {
            println!(
                "    {who}: {} — signing {sign}, auth {auth}",
                k.join("cards").join(format!("{id}.token")).display()
            );
        }
        portal_hint(k, &dir, &pass, &hanako)?;
    }
    Ok(())
}

/// The demo cards' PINs (signing password, authentication PIN); `--keep` prints them.
const HANAKO_PINS: (&str, &str) = ("TAXRETURN1", "4321");
const ICHIRO_PINS: (&str, &str) = ("OSAKA2026", "9876");

/// The last lines of `jpki demo --keep DIR`: how to serve the holder portal on the kept data
/// and log in as 山田 花子 (her authentication certificate is still good; her card's PINs are
/// the demo's). The CA passphrase goes to `DIR/passphrase` (0600) for `--passphrase-file`.
fn portal_hint(keep: &Path, data: &Path, pass: &str, hanako: &str) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let pass_file = keep.join("passphrase");
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&pass_file)
        .and_then(|mut f| f.write_all(pass.as_bytes()))
        .map_err(|e| demo_err("passphrase file")(e.to_string()))?;
    let token = keep.join("cards").join(format!("{hanako}.token"));
    println!("\nThe holder portal on this data (docs/portal.md):");
    println!(
        "    jpki --data {} --passphrase-file {} serve --portal 127.0.0.1:8443",
        data.display(),
        pass_file.display()
    );
    println!(
        "    then open https://127.0.0.1:8443/ (its certificate is from the operator CA, {})",
        data.join("certs").join("operator-root.pem").display()
    );
    println!(
        "    and log in as 山田 花子 ({hanako}): save the page's challenge as challenge.txt, run"
    );
    println!(
        "    jpki token login --token {} --pin 4321 --challenge challenge.txt --out login.txt --pem",
        token.display()
    );
    println!("    and paste login.txt (or choose the file). Her signing password, to withdraw her");
    println!("    consent to Example Bank with `jpki token sign`, is TAXRETURN1.");
    Ok(())
}

fn base64_std(b: &[u8]) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b)
}

fn checks(r: &relying_party::Report) -> String {
    r.checks
        .iter()
        .map(|c| format!("{} {:?}", c.name, c.outcome).to_lowercase())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The OCSP answer for a certificate, asked over HTTP like any client.
fn ocsp_status(a: &Authority, services: &Services, h: Hierarchy, cert: &[u8]) -> Result<String> {
    let root = ca::records::pem(&a.root(h).der);
    let v = relying_party::Verifier::new(
        root.as_bytes(),
        Some(a.policy()),
        relying_party::StatusSource::Ocsp(services.ocsp_url()),
    )?;
    let report = v.verify_login(cert, b"probe", b"", None, a.clock().now());
    let status = report
        .checks
        .iter()
        .find(|c| c.name == "status")
        .map(|c| c.reason.clone())
        .unwrap_or_else(|| "no answer".into());
    let status = status
        .split(" (OCSP ")
        .next()
        .unwrap_or_default()
        .to_owned();
    Ok(status)
}

/// The CRL and OCSP services of `jpki serve`, run in this process for the demo.
struct Services {
    rt: tokio::runtime::Runtime,
    base: String,
    /// Address of the platform-operator API.
    pf: std::net::SocketAddr,
    publisher: Arc<crl_publisher::Publisher>,
    stop: tokio::sync::watch::Sender<bool>,
    /// The time-stamping authority's URL, and its root (DER).
    tsa: (String, Vec<u8>),
}

impl Services {
    fn start(a: Arc<Authority>, dir: &Path) -> Result<Services> {
        let settings = crate::serve::Settings {
            http: None,
            pf_https: None,
            tsa: None,
            pf_names: Vec::new(),
            portal: None,
            portal_names: Vec::new(),
            crl_dir: dir.join("crl"),
            crl: crl_publisher::Settings {
                batch_delay: std::time::Duration::from_millis(200),
                progress: false,
                ..crl_publisher::Settings::default()
            },
            compact_journal_bytes: None,
            limits: conn_guard::Limits::default(),
            admin: None,
            checkpoint_every: None,
            verifiers: None,
            presign_rate: 200,
            memory_answers: 64 << 10,
            store_cache_bytes: crate::serve::DEFAULT_STORE_CACHE_MIB << 20,
        };
        let parts = crate::serve::assemble(a, &settings)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| demo_err("runtime")(e.to_string()))?;
        let (stop, rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let publisher = Arc::clone(&parts.publisher);
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .map_err(|e| demo_err("listen")(e.to_string()))?;
        let base = format!(
            "http://{}",
            listener
                .local_addr()
                .map_err(|e| demo_err("listen")(e.to_string()))?
        );
        let now = parts.authority.clock().now();
        publisher.tick(now);
        rt.spawn(Arc::clone(&parts.publisher).run(stopped(rx.clone())));
        rt.spawn(crate::serve::http_public(
            listener,
            conn_guard::Gate::new(conn_guard::Limits::default()),
            Arc::clone(&parts.publisher),
            parts.responder.clone(),
            stopped(rx.clone()),
        ));
        let pf_listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .map_err(|e| demo_err("listen")(e.to_string()))?;
        let pf = pf_listener
            .local_addr()
            .map_err(|e| demo_err("listen")(e.to_string()))?;
        let api = parts.pf_api(pf, &[])?;
        let tsa = Arc::new(
            tsa::server::Tsa::load(Arc::clone(&parts.authority))
                .map_err(|e| demo_err("TSA")(e.to_string()))?,
        );
        let tsa_root = tsa.root().to_vec();
        let tsa_listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .map_err(|e| demo_err("listen")(e.to_string()))?;
        let tsa_url = format!(
            "http://{}/tsa",
            tsa_listener
                .local_addr()
                .map_err(|e| demo_err("listen")(e.to_string()))?
        );
        rt.spawn(crate::serve::tsa_http::serve(
            tsa_listener,
            conn_guard::Gate::new(conn_guard::Limits::default()),
            tsa,
            stopped(rx.clone()),
        ));
        rt.spawn(async move {
            let _ = api.serve(pf_listener, stopped(rx)).await;
        });
        Ok(Services {
            rt,
            base,
            pf,
            publisher,
            stop,
            tsa: (tsa_url, tsa_root),
        })
    }

    /// POSTs JSON to the platform-operator API as the PF, over mutual TLS.
    fn pf_post(
        &self,
        tls: &Arc<rustls::ClientConfig>,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<(u16, serde_json::Value)> {
        let (status, v) = self.rt.block_on(async {
            let mut c =
                platform::client::Client::connect(self.pf, "127.0.0.1", Arc::clone(tls)).await?;
            c.post(path, body).await
        })?;
        Ok((status.as_u16(), v))
    }

    fn ocsp_url(&self) -> String {
        format!("{}/ocsp", self.base)
    }

    /// Waits (at most 10 s) until the partition's CRL, fetched over HTTP, lists `serial`.
    fn wait_for_crl(
        &self,
        h: Hierarchy,
        partition: &policies::profile::Scope,
        serial: &str,
    ) -> Result<bool> {
        let url = format!("{}/crl/{}/{}.crl", self.base, h.as_str(), partition.path());
        let want = ca::authority::parse_serial(serial)?;
        let t0 = Instant::now();
        while t0.elapsed() < std::time::Duration::from_secs(10) {
            if let Ok(der) = relying_party::http::fetch(&url, None) {
                if let Ok((_, crl)) = x509_parser::parse_x509_crl(&der) {
                    if crl.iter_revoked_certificates().any(|r| {
                        r.raw_serial()
                            .iter()
                            .skip_while(|b| **b == 0)
                            .copied()
                            .eq(want.iter().copied())
                    }) {
                        return Ok(true);
                    }
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = &self.publisher;
        Ok(false)
    }

    fn stop(self) {
        let _ = self.stop.send(true);
        self.rt.shutdown_timeout(std::time::Duration::from_secs(2));
    }
}
