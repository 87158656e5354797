//! The portal's pages, server-rendered with maud (escaped by default): Japanese by default,
//! English when the holder switches. Each page is a function from the data it shows (the
//! plain structs below, filled by the handlers) to HTML; nothing here reads the store.
//!
//! Accessibility: one `<main>` with a skip link, a `<nav>` with the current page marked
//! `aria-current`, every form control with a `<label>`, tables with `<caption>` and `scope`d
//! headers, status shown in words (never colour alone), focus outlines kept, text contrast
//! above 7:1 in the style sheet, and a single column that fits a 360-pixel phone.

use maud::{html, Markup, DOCTYPE};
use policies::{Hierarchy, Reason};
use time::{OffsetDateTime, UtcOffset};

/// The page language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Ja,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ja => "ja",
            Lang::En => "en",
        }
    }

    /// `ja` or `en`; anything else is Japanese (the default).
    pub fn of(code: Option<&str>) -> Lang {
        match code {
            Some("en") => Lang::En,
            _ => Lang::Ja,
        }
    }

    fn t(self, ja: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Ja => ja,
            Lang::En => en,
        }
    }
}

/// Japan Standard Time: the holder's clock.
const JST: UtcOffset = match UtcOffset::from_hms(9, 0, 0) {
    Ok(o) => o,
    Err(_) => UtcOffset::UTC,
};

/// `2026-12-05 12:00` in JST.
pub fn when(t: OffsetDateTime) -> String {
    let t = t.to_offset(JST);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// `2026-12-05` in JST.
pub fn day(t: OffsetDateTime) -> String {
    let t = t.to_offset(JST);
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

/// One certificate as the holder sees it.
pub struct CertRow {
    pub kind: Hierarchy,
    /// A smartphone certificate (kind `phone-signing`/`phone-auth`; docs/phone.md).
    pub phone: bool,
    pub serial: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// `good`, `held` or `revoked`; `expired` when past notAfter and good.
    pub status: &'static str,
    pub reason: Option<Reason>,
    pub since: Option<OffsetDateTime>,
    /// The register event that revoked or held it (`move`, `card-lost` …), when known.
    pub event: Option<String>,
}

/// One access-log line.
pub struct AccessRow {
    pub at: OffsetDateTime,
    pub pf: String,
    pub sp: String,
    pub operation: String,
    pub outcome: String,
}

/// One consent.
pub struct ConsentRow {
    pub id: String,
    pub sp: String,
    pub scope: String,
    pub granted: OffsetDateTime,
    pub expires: OffsetDateTime,
    pub withdrawn: Option<OffsetDateTime>,
    pub live: bool,
}

/// Where a list page is: 1-based page of `pages`.
pub struct Paging {
    pub page: usize,
    pub pages: usize,
    pub total: usize,
}

/// Why a certificate is revoked or held, in plain words ("revoked because your address
/// changed on 2026-12-05").
pub fn why(lang: Lang, c: &CertRow) -> Option<String> {
    if !matches!(c.status, "held" | "revoked") {
        return None;
    }
    let since = c.since.map(day).unwrap_or_default();
    let held = c.status == "held";
    let cause = match c.event.as_deref() {
        Some("move") => Some(lang.t("住所が変わった", "your address changed")),
        Some("rename") => Some(lang.t("氏名が変わった", "your name changed")),
        Some("correct") => Some(lang.t(
            "登録内容が訂正された",
            "your registered details were corrected",
        )),
        Some("death") => Some(lang.t("死亡の届出があった", "a death was registered")),
        Some("emigrate") => Some(lang.t("国外に転出した", "you moved abroad")),
        Some("card-lost") => Some(lang.t("カードの紛失を届け出た", "you reported the card lost")),
        Some("card-renew") => Some(lang.t("カードが更新された", "the card was renewed")),
        Some("withdraw") => Some(lang.t("失効を申請した", "you asked for it to be revoked")),
        _ => None,
    };
    let cause = cause.unwrap_or(match c.reason.unwrap_or(Reason::Unspecified) {
        Reason::KeyCompromise => lang.t(
            "鍵が漏えいしたおそれがある",
            "the key may have been exposed",
        ),
        Reason::AffiliationChanged => {
            lang.t("登録内容が変わった", "your registered details changed")
        }
        Reason::Superseded => lang.t(
            "新しい証明書に置き換えられた",
            "a new certificate replaced it",
        ),
        Reason::CessationOfOperation => lang.t("不要になった", "it is no longer needed"),
        Reason::CertificateHold => lang.t("一時停止の申出があった", "a hold was requested"),
        _ => lang.t("発行者が失効させた", "the authority revoked it"),
    });
    Some(match (lang, held) {
        (Lang::Ja, true) => format!("{since}に{cause}ため、一時停止されています。"),
        (Lang::Ja, false) => format!("{since}に{cause}ため、失効しました。"),
        (Lang::En, true) => format!("On hold because {cause} on {since}."),
        (Lang::En, false) => format!("Revoked because {cause} on {since}."),
    })
}

fn kind_name(lang: Lang, h: Hierarchy) -> &'static str {
    match h {
        Hierarchy::Signing => lang.t("署名用電子証明書", "Signing certificate"),
        Hierarchy::Auth => lang.t("利用者証明用電子証明書", "Authentication certificate"),
    }
}

fn status_name(lang: Lang, s: &str) -> &'static str {
    match s {
        "good" => lang.t("有効", "Valid"),
        "held" => lang.t("一時停止中", "On hold"),
        "revoked" => lang.t("失効", "Revoked"),
        "expired" => lang.t("期限切れ", "Expired"),
        _ => lang.t("不明", "Unknown"),
    }
}

fn operation_name(lang: Lang, op: &str) -> String {
    match op {
        "four-attributes" => lang
            .t(
                "基本4情報（氏名・住所・生年月日・性別）",
                "The four attributes (name, address, birth date, sex)",
            )
            .into(),
        "validity" => lang.t("証明書の有効性", "Certificate validity").into(),
        "consent" => lang.t("同意の登録", "Consent registered").into(),
        "consent-withdraw" => lang.t("同意の撤回", "Consent withdrawn").into(),
        "successor" => lang
            .t("新しい証明書の照会", "Successor certificate lookup")
            .into(),
        other => other.to_owned(),
    }
}

/// The menu: (path, Japanese, English).
const NAV: [(&str, &str, &str); 4] = [
    ("/certificates", "証明書", "Certificates"),
    ("/access", "情報提供の記録", "Access log"),
    ("/consents", "同意", "Consents"),
    ("/lost", "紛失の届出", "Report lost card"),
];

/// The frame of every page. `csrf` is the session's token when logged in (the menu and the
/// logout form are shown then); `here` is the current path (marked in the menu, and where the
/// language switch returns to).
pub fn layout(lang: Lang, title: &str, csrf: Option<&str>, here: &str, body: Markup) -> String {
    let other = match lang {
        Lang::Ja => ("en", "English"),
        Lang::En => ("ja", "日本語"),
    };
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — " (lang.t("JPKI 利用者ポータル", "JPKI holder portal")) }
                link rel="stylesheet" href="/static/portal.css";
                script src="/static/portal.js" defer {}
            }
            body {
                a.skip href="#main" { (lang.t("本文へ移動", "Skip to content")) }
                header {
                    p.brand { (lang.t("JPKI 利用者ポータル", "JPKI holder portal")) }
                    a.lang href={ "/lang?to=" (other.0) "&back=" (here) } lang=(other.0) hreflang=(other.0) { (other.1) }
                    @if let Some(token) = csrf {
                        nav aria-label=(lang.t("メニュー", "Menu")) {
                            ul {
                                @for (path, ja, en) in NAV {
                                    li {
                                        @if here.starts_with(path) {
                                            a href=(path) aria-current="page" { (lang.t(ja, en)) }
                                        } @else {
                                            a href=(path) { (lang.t(ja, en)) }
                                        }
                                    }
                                }
                                li { a href="/export.json" download="jpki-my-data.json" { (lang.t("データのダウンロード", "Download my data")) } }
                            }
                        }
                        form.logout method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(token);
                            button type="submit" { (lang.t("ログアウト", "Log out")) }
                        }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
    .into_string()
}

/// A message page (errors, refusals, confirmations).
pub fn message(lang: Lang, title: &str, text: &str, csrf: Option<&str>, back: &str) -> String {
    layout(
        lang,
        title,
        csrf,
        back,
        html! {
            p role="alert" { (text) }
            p { a href=(back) { (lang.t("戻る", "Back")) } }
        },
    )
}

/// The login page: the card in the browser (mutual TLS), or the challenge to sign.
pub fn login(lang: Lang, csrf: &str, challenge: &str, error: Option<&str>) -> String {
    let cmd = "jpki token login --token card.token --challenge challenge.txt --out login.txt --pem";
    layout(
        lang,
        lang.t("ログイン", "Log in"),
        None,
        "/login",
        html! {
            @if let Some(e) = error {
                p.error role="alert" { (e) }
            }
            section aria-labelledby="tls-h" {
                h2 #tls-h { (lang.t("カードでログイン", "Log in with your card")) }
                p { (lang.t(
                    "ブラウザーに利用者証明用電子証明書がある場合は、このボタンでログインします。署名用電子証明書ではログインできません。",
                    "If your browser holds your authentication certificate, log in with this button. A signing certificate cannot be used to log in.")) }
                form method="post" action="/login/tls" {
                    input type="hidden" name="csrf" value=(csrf);
                    button type="submit" #login-tls { (lang.t("証明書でログイン", "Log in with the certificate")) }
                }
            }
            section aria-labelledby="ch-h" {
                h2 #ch-h { (lang.t("チャレンジに署名してログイン", "Log in by signing a challenge")) }
                p { (lang.t("次の文字列をファイル challenge.txt に保存し（改行なし）、", "Save this text to a file challenge.txt (no newline), ")) a href="/login/challenge.txt" download="challenge.txt" { (lang.t("またはダウンロードし", "or download it")) } (lang.t("、次のコマンドで署名してください。", ", and sign it with this command:")) }
                pre #challenge tabindex="0" aria-label=(lang.t("チャレンジ", "Challenge")) { (challenge) }
                pre tabindex="0" { code { (cmd) } }
                form method="post" action="/login/challenge" {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="response" { (lang.t("login.txt の内容（証明書と署名）", "The contents of login.txt (certificate and signature)")) }
                    textarea #response name="response" rows="8" required {}
                    label for="response-file" { (lang.t("または login.txt を選択", "or choose login.txt")) }
                    input #response-file type="file" data-fills="response" accept=".txt,.pem";
                    button type="submit" { (lang.t("署名でログイン", "Log in with the signature")) }
                }
            }
        },
    )
}

fn pager(lang: Lang, path: &str, p: &Paging) -> Markup {
    html! {
        @if p.pages > 1 {
            nav.pager aria-label=(lang.t("ページ", "Pages")) {
                @if p.page > 1 {
                    a href={ (path) "?page=" (p.page - 1) } rel="prev" { (lang.t("前へ", "Previous")) }
                }
                span { (p.page) " / " (p.pages) }
                @if p.page < p.pages {
                    a href={ (path) "?page=" (p.page + 1) } rel="next" { (lang.t("次へ", "Next")) }
                }
            }
        }
    }
}

pub fn certificates(lang: Lang, csrf: &str, rows: &[CertRow], paging: &Paging) -> String {
    layout(
        lang,
        lang.t("あなたの電子証明書", "Your certificates"),
        Some(csrf),
        "/certificates",
        html! {
            @if rows.is_empty() {
                p { (lang.t("証明書はありません。", "You have no certificates.")) }
            }
            @for c in rows {
                section.card data-device=(if c.phone { "smartphone" } else { "card" })
                    aria-label=(kind_name(lang, c.kind)) {
                    h2 {
                        (kind_name(lang, c.kind))
                        @if c.phone {
                            " " span.device { (lang.t("（スマートフォン）", "(smartphone)")) }
                        }
                    }
                    dl {
                        dt { (lang.t("状態", "Status")) }
                        dd.status data-status=(c.status) { (status_name(lang, c.status)) }
                        @if let Some(w) = why(lang, c) {
                            dt { (lang.t("理由", "Why")) }
                            dd.why { (w) }
                        }
                        dt { (lang.t("シリアル番号", "Serial number")) }
                        dd { code.serial { (c.serial) } }
                        dt { (lang.t("有効期間", "Valid")) }
                        dd { (day(c.not_before)) " – " (day(c.not_after)) }
                    }
                }
            }
            (pager(lang, "/certificates", paging))
        },
    )
}

pub fn access(lang: Lang, csrf: &str, rows: &[AccessRow], paging: &Paging) -> String {
    layout(
        lang,
        lang.t("情報提供の記録", "Who obtained your information"),
        Some(csrf),
        "/access",
        html! {
            @if rows.is_empty() {
                p { (lang.t("記録はありません。", "Nothing has been obtained.")) }
            } @else {
                div.scroll tabindex="0" role="region" aria-labelledby="access-caption" {
                    table {
                        caption #access-caption { (lang.t("新しい順", "Newest first")) " (" (paging.total) ")" }
                        thead { tr {
                            th scope="col" { (lang.t("日時", "When")) }
                            th scope="col" { (lang.t("プラットフォーム事業者", "Platform operator")) }
                            th scope="col" { (lang.t("サービス提供者", "Service provider")) }
                            th scope="col" { (lang.t("内容", "What")) }
                            th scope="col" { (lang.t("結果", "Outcome")) }
                        } }
                        tbody {
                            @for a in rows {
                                tr {
                                    td { (when(a.at)) }
                                    td { (a.pf) }
                                    td { (a.sp) }
                                    td { (operation_name(lang, &a.operation)) }
                                    td { @if a.outcome == "ok" { (lang.t("提供", "Provided")) } @else { (lang.t("拒否", "Refused")) " (" (a.outcome) ")" } }
                                }
                            }
                        }
                    }
                }
            }
            (pager(lang, "/access", paging))
        },
    )
}

pub fn consents(lang: Lang, csrf: &str, rows: &[ConsentRow], paging: &Paging) -> String {
    layout(
        lang,
        lang.t("情報提供への同意", "Your consents"),
        Some(csrf),
        "/consents",
        html! {
            @if rows.is_empty() {
                p { (lang.t("同意はありません。", "You have given no consent.")) }
            }
            @for c in rows {
                section.card aria-label=(c.sp) {
                    h2 { (c.sp) }
                    dl {
                        dt { (lang.t("範囲", "Scope")) }
                        dd { (operation_name(lang, &c.scope)) }
                        dt { (lang.t("同意した日", "Granted")) }
                        dd { (day(c.granted)) }
                        dt { (lang.t("有効期限", "Expires")) }
                        dd { (day(c.expires)) }
                        dt { (lang.t("状態", "Status")) }
                        dd.status {
                            @if let Some(w) = c.withdrawn {
                                (lang.t("撤回済み", "Withdrawn")) " (" (day(w)) ")"
                            } @else if c.live {
                                (lang.t("有効", "In force"))
                            } @else {
                                (lang.t("期限切れ", "Expired"))
                            }
                        }
                    }
                    @if c.live {
                        a.button href={ "/consents/withdraw?id=" (c.id) } { (lang.t("この同意を撤回する", "Withdraw this consent")) }
                    }
                }
            }
            (pager(lang, "/consents", paging))
        },
    )
}

/// The withdrawal: the statement to sign, the command, and where the signature goes.
pub fn withdraw(
    lang: Lang,
    csrf: &str,
    c: &ConsentRow,
    statement: &str,
    error: Option<&str>,
) -> String {
    let cmd = "jpki token sign --token card.token --in withdraw.json --out withdraw.p7s --attached
base64 -w0 withdraw.p7s";
    layout(
        lang,
        lang.t("同意の撤回", "Withdraw a consent"),
        Some(csrf),
        "/consents",
        html! {
            @if let Some(e) = error {
                p.error role="alert" { (e) }
            }
            p { (lang.t("撤回する同意：", "The consent to withdraw: ")) strong { (c.sp) } " (" (day(c.granted)) ")" }
            p { (lang.t("次の文をファイル withdraw.json に保存し（改行なし）、署名用電子証明書の鍵で署名してください。撤回はすぐに反映されます。",
                "Save this statement to a file withdraw.json (no newline) and sign it with your signing key. The withdrawal takes effect at once.")) }
            pre #statement tabindex="0" { (statement) }
            pre tabindex="0" { code { (cmd) } }
            form method="post" action="/consents/withdraw" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="id" value=(c.id);
                label for="cms" { (lang.t("署名（withdraw.p7s の内容）", "The signature (contents of withdraw.p7s)")) }
                textarea #cms name="cms" rows="8" required {}
                label for="cms-file" { (lang.t("または withdraw.p7s を選択", "or choose withdraw.p7s")) }
                input #cms-file type="file" data-fills="cms" accept=".p7s,.pem,.der";
                button type="submit" { (lang.t("撤回する", "Withdraw")) }
            }
        },
    )
}

/// Card loss: the confirmation step.
pub fn lost(lang: Lang, csrf: &str) -> String {
    layout(
        lang,
        lang.t("カードの紛失を届け出る", "Report your card lost"),
        Some(csrf),
        "/lost",
        html! {
            p { (lang.t("届け出ると、署名用と利用者証明用の両方の電子証明書がすぐに一時停止されます。カードが見つかっても再開はできず、市区町村の窓口で再発行の手続きが必要です。このあとログアウトされます。",
                "Both your signing and your authentication certificates will be put on hold at once. They cannot be released if the card turns up: a new card is issued at your municipality's office. You will be logged out.")) }
            form method="post" action="/lost" {
                input type="hidden" name="csrf" value=(csrf);
                p.check {
                    input #confirm type="checkbox" name="confirm" value="yes" required;
                    " "
                    label for="confirm" { (lang.t("カードを紛失したことを確認します", "I confirm that my card is lost")) }
                }
                button.danger type="submit" { (lang.t("紛失を届け出て証明書を停止する", "Report the loss and hold my certificates")) }
            }
        },
    )
}

/// The style sheet (served from `/static/portal.css`; the CSP admits no inline style).
pub const CSS: &str = r#"
:root { color-scheme: light; --ink: #1a1a1a; --accent: #0b4f9c; --bad: #9b1c1c; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.6 system-ui, "Hiragino Sans", "Noto Sans JP", sans-serif; color: var(--ink); background: #fff; }
.skip { position: absolute; left: -999px; } .skip:focus { left: 8px; top: 8px; background: #fff; padding: 4px; }
header { background: #eef3f9; border-bottom: 1px solid #c6d3e3; padding: 8px 16px; display: flex; flex-wrap: wrap; gap: 8px; align-items: center; }
.brand { font-weight: bold; margin: 0; flex: 1 1 auto; }
nav ul { list-style: none; margin: 0; padding: 0; display: flex; flex-wrap: wrap; gap: 4px 16px; }
nav a[aria-current] { font-weight: bold; text-decoration-thickness: 3px; }
main { max-width: 48rem; margin: 0 auto; padding: 16px; }
a { color: var(--accent); } :focus-visible { outline: 3px solid #e8a200; outline-offset: 2px; }
.card { border: 1px solid #c6d3e3; border-radius: 6px; padding: 8px 16px; margin: 16px 0; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; } dd { margin: 0; overflow-wrap: anywhere; }
.status[data-status=held], .status[data-status=revoked], .error { color: var(--bad); font-weight: bold; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f4f4f4; padding: 8px; border: 1px solid #ccc; }
label { display: block; margin-top: 12px; font-weight: bold; }
.check { display: flex; gap: 8px; align-items: center; } .check label { margin: 0; } .check input { width: 24px; height: 24px; } textarea { width: 100%; font-family: monospace; }
button, .button { display: inline-block; margin-top: 12px; padding: 10px 16px; min-height: 44px; background: var(--accent); color: #fff; border: 0; border-radius: 4px; font-size: 1rem; text-decoration: none; cursor: pointer; }
button.danger { background: var(--bad); } .logout button { margin: 0; padding: 6px 12px; min-height: 36px; }
.scroll { overflow-x: auto; } table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: 6px; border-bottom: 1px solid #ddd; vertical-align: top; }
caption { text-align: left; font-weight: bold; } .pager { display: flex; gap: 16px; margin: 16px 0; }
@media (max-width: 480px) { dl { grid-template-columns: 1fr; } dt { font-weight: bold; } }
"#;

/// The one script (served from `/static/portal.js`): a chosen file is read into the text box
/// it names, as PEM text or as base64 for binary (DER) files. Everything works without it by
/// pasting.
pub const JS: &str = r#"
document.querySelectorAll('input[type=file][data-fills]').forEach(function (input) {
  input.addEventListener('change', function () {
    var f = input.files && input.files[0]; if (!f) return;
    var r = new FileReader();
    r.onload = function () {
      var bytes = new Uint8Array(r.result), text = '';
      var ascii = bytes.every(function (b) { return b === 10 || b === 13 || (b >= 32 && b < 127); });
      if (ascii) { text = new TextDecoder().decode(bytes); }
      else { var s = ''; bytes.forEach(function (b) { s += String.fromCharCode(b); }); text = btoa(s); }
      document.getElementById(input.dataset.fills).value = text;
    };
    r.readAsArrayBuffer(f);
  });
});
"#;
