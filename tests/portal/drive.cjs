// Drives the holder portal in Chromium for tests/portal_e2e.rs (which prepares the data,
// starts `jpki serve --portal`, and checks both what this script saw and the server side).
//
//   node drive.cjs CONFIG.json
//
// CONFIG names the portal, the Chromium binary, the holders' client certificates and keys,
// and where to write what was seen (`out`) and the screenshots (`shots`, optional). Every
// observation goes into `out` as text or status codes; the Rust test makes the assertions,
// so a failure there names what the browser actually showed.
'use strict';

const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const { chromium } = require('playwright-core');

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const seen = {};
const base = cfg.portal;

async function context(browser, holder) {
  const opts = {
    // The portal's certificate is from the operator CA, which this Chromium does not trust;
    // the Rust test checks the server certificate's chain with openssl instead.
    ignoreHTTPSErrors: true,
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 1,
  };
  if (holder) {
    opts.clientCertificates = [{ origin: base, certPath: holder.cert, keyPath: holder.key }];
  }
  return browser.newContext(opts);
}

async function shot(page, name) {
  if (cfg.shots) {
    await page.screenshot({ path: path.join(cfg.shots, name + '.png'), fullPage: true });
  }
}

async function mainText(page) {
  return page.locator('main').innerText();
}

async function loginTls(page) {
  await page.goto(base + '/login');
  await page.click('#login-tls');
  await page.waitForLoadState('load');
}

async function csrfOf(page) {
  return page.locator('input[name=csrf]').first().inputValue();
}

(async () => {
  const browser = await chromium.launch({ executablePath: cfg.chromium, args: ['--no-sandbox'] });
  try {
    // The login page, with the security headers.
    {
      const ctx = await context(browser, null);
      const page = await ctx.newPage();
      const resp = await page.goto(base + '/');
      seen.login_url = page.url();
      seen.login_headers = await resp.allHeaders();
      seen.login_text = await mainText(page);
      await shot(page, 'login');
      await ctx.close();
    }

    // Another holder (B) logs in and tries to reach A's consent.
    {
      const ctx = await context(browser, cfg.b);
      const page = await ctx.newPage();
      await loginTls(page);
      seen.b_url = page.url();
      seen.b_certs = await mainText(page);
      await page.goto(base + '/access');
      seen.b_access = await mainText(page);
      await page.goto(base + '/consents');
      seen.b_consents = await mainText(page);
      const r = await page.goto(base + '/consents/withdraw?id=' + encodeURIComponent(cfg.consent_a));
      seen.b_withdraw_get = r.status();
      const csrf = await csrfOf(page);
      const post = await ctx.request.post(base + '/consents/withdraw', {
        form: { csrf, id: cfg.consent_a, cms: fs.readFileSync(cfg.withdraw_a).toString('base64') },
        headers: { Origin: base },
        maxRedirects: 0,
      });
      seen.b_withdraw_post = post.status();
      // A form without the session's CSRF token changes nothing.
      const forged = await ctx.request.post(base + '/lost', {
        form: { csrf: 'forged', confirm: 'yes' },
        headers: { Origin: base },
        maxRedirects: 0,
      });
      seen.b_forged_lost = forged.status();
      const foreign = await ctx.request.post(base + '/lost', {
        form: { csrf, confirm: 'yes' },
        headers: { Origin: 'https://evil.example' },
        maxRedirects: 0,
      });
      seen.b_foreign_origin_lost = foreign.status();
      const exp = await ctx.request.get(base + '/export.json');
      seen.b_export_status = exp.status();
      seen.b_export = exp.status() === 200 ? await exp.json() : (await exp.text()).slice(0, 2000);
      await ctx.close();
    }

    // A signing certificate is refused for login; so is a revoked authentication certificate.
    for (const [key, holder] of [['signing_login', cfg.a_signing], ['revoked_login', cfg.c]]) {
      const ctx = await context(browser, holder);
      const page = await ctx.newPage();
      await loginTls(page);
      seen[key + '_url'] = page.url();
      seen[key + '_text'] = await mainText(page);
      await ctx.close();
    }

    // Challenge–response: the page's challenge signed by `jpki token login --pem`.
    {
      const ctx = await context(browser, null);
      const page = await ctx.newPage();
      await page.goto(base + '/login');
      const challenge = (await page.locator('#challenge').innerText()).trim();
      const chFile = path.join(cfg.work, 'challenge.txt');
      const outFile = path.join(cfg.work, 'login.txt');
      fs.writeFileSync(chFile, challenge);
      execFileSync(cfg.jpki, ['token', 'login', '--token', cfg.d.token, '--pin', cfg.d.pin,
        '--challenge', chFile, '--out', outFile, '--pem']);
      await page.fill('#response', fs.readFileSync(outFile, 'utf8'));
      await page.click('form[action="/login/challenge"] button[type=submit]');
      await page.waitForLoadState('load');
      seen.d_url = page.url();
      seen.d_certs = await mainText(page);
      await shot(page, 'certificates-revoked');
      await ctx.close();
    }

    // Holder A: certificates, access log, consents; withdraws a consent; reports the loss.
    {
      const ctx = await context(browser, cfg.a);
      const page = await ctx.newPage();
      await loginTls(page);
      seen.a_url = page.url();
      seen.a_certs = await mainText(page);
      await shot(page, 'certificates');
      await page.click('nav a[href="/access"]');
      await page.waitForURL('**/access');
      seen.a_access = await mainText(page);
      await shot(page, 'access-log');
      await page.click('nav a[href="/consents"]');
      await page.waitForURL('**/consents');
      seen.a_consents = await mainText(page);
      await shot(page, 'consents');
      // The English switch keeps the page.
      await Promise.all([page.waitForEvent('load'), page.click('a.lang')]);
      seen.a_consents_en = await mainText(page);
      seen.a_lang_url = page.url();
      await page.click('a.button[href^="/consents/withdraw"]');
      await page.waitForURL('**/consents/withdraw?id=*');
      seen.a_withdraw_page = await mainText(page);
      // The signature is "uploaded": the file input's script fills the text box.
      await page.setInputFiles('#cms-file', cfg.withdraw_a);
      for (let i = 0; i < 100 && !(await page.inputValue('#cms')); i++) {
        await page.waitForTimeout(50);
      }
      await shot(page, 'withdraw');
      await page.click('form[action="/consents/withdraw"] button[type=submit]');
      await page.waitForLoadState('load');
      seen.a_withdrawn = await mainText(page);
      await page.goto(base + '/consents');
      seen.a_consents_after = await mainText(page);
      const exp = await ctx.request.get(base + '/export.json');
      seen.a_export_disposition = exp.headers()['content-disposition'];
      seen.a_export = await exp.json();
      await page.goto(base + '/lost');
      await shot(page, 'lost');
      // Without the confirmation box ticked the browser does not send the form.
      await page.click('button.danger');
      seen.a_lost_unconfirmed_url = page.url();
      await page.check('#confirm');
      await page.click('button.danger');
      await page.waitForLoadState('load');
      seen.a_lost = await mainText(page);
      await page.goto(base + '/certificates');
      seen.a_after_lost_url = page.url();
      await ctx.close();
    }
  } catch (e) {
    seen.error = String(e && e.stack || e);
  } finally {
    await browser.close();
    fs.writeFileSync(cfg.out, JSON.stringify(seen, null, 2));
  }
})();
