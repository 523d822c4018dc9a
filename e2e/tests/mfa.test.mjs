// Second factor, part 1, as a new member experiences it: the clinic makes 2FA
// mandatory, the member accepts the invitation, is sent to set up an authenticator
// app (QR code read from the screenshot, codes computed with an independent TOTP
// implementation), saves a recovery code, signs in again with a code, and finally
// uses the recovery code through "Try another method".

import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import jsQR from 'jsqr';
import * as OTPAuth from 'otpauth';
import pngjs from 'pngjs';
import { api } from '../lib/api.mjs';
import { RESULTS_DIR, withServerAndBrowser } from '../lib/server.mjs';
import {
  click,
  expectAutocomplete,
  expectHeading,
  expectPath,
  expectText,
  expectVisibleLabels,
  field,
  fill,
  open,
  setNewPassword,
  signIn,
  signOut,
  waitVisible,
} from '../lib/pages.mjs';

const { PNG } = pngjs;

const TIMEOUT = { timeout: 180_000 };
const ORG = 'riverside-clinic';
const ADMIN_EMAIL = 'admin@riverside.test';
const ADMIN_PASSWORD = 'correct horse battery staple';
const MEMBER_EMAIL = 'dr.lee@riverside.test';
const MEMBER_PASSWORD = 'correct horse battery staple 42';

const STEP_MS = 30_000;
// otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30, exactly.
const OTPAUTH_URI_RE =
  /^otpauth:\/\/totp\/Riverside%20Clinic:dr\.lee%40riverside\.test\?secret=([A-Z2-7]+)&issuer=Riverside%20Clinic&algorithm=SHA1&digits=6&period=30$/;
// Base32 in groups of four separated by single spaces (the last group may be shorter).
const SETUP_KEY_RE = /^[A-Z2-7]{4}(?: [A-Z2-7]{4})*(?: [A-Z2-7]{1,3})?$/;
// Five groups of four Crockford base32 symbols (no I, L, O, U).
const RECOVERY_CODE_RE = /^[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){5}$/;

const step = (ms = Date.now()) => Math.floor(ms / STEP_MS);

async function screenshot(page, name) {
  await mkdir(RESULTS_DIR, { recursive: true });
  await page.screenshot({ path: join(RESULTS_DIR, `${name}.png`), fullPage: true });
}

/** Org, MFA enabled by platform support, an admin with a password, and an invited member. */
function setUpClinic(server) {
  const org = server.cli(['org', 'create', '--name', 'Riverside Clinic', '--kind', 'clinic']);
  assert.ok(org && org.id, `org create printed no id: ${JSON.stringify(org)}`);

  const mfa = server.cli(['org', 'mfa', '--org', ORG, '--enable']);
  assert.ok(mfa && mfa.id !== undefined, `org mfa printed no id: ${JSON.stringify(mfa)}`);
  assert.deepEqual(
    mfa.mfa,
        { enabled: true, mode: 'off', methods: ['authenticator', 'passkey'], grace_days: 0 },
    `org mfa --enable printed ${JSON.stringify(mfa)}`,
  );

  const admin = server.cli(
    ['member', 'add', '--org', ORG, '--email', ADMIN_EMAIL, '--role', 'admin', '--password-stdin'],
    { stdin: `${ADMIN_PASSWORD}\n` },
  );
  assert.ok(admin, 'member add --password-stdin printed nothing');

  const member = server.cli(['member', 'add', '--org', ORG, '--email', MEMBER_EMAIL, '--role', 'provider']);
  assert.ok(
    member && typeof member.invitation_url === 'string',
    `member add printed no invitation_url: ${JSON.stringify(member)}`,
  );
  return member.invitation_url;
}

/** The clinic admin makes 2FA mandatory through the JSON API. */
async function adminRequiresMfa(server) {
  const start = await api(server, 'POST', '/api/v1/login', { email: ADMIN_EMAIL });
  // The contract names no status here; creating a login flow may answer 201 Created.
  assert.ok([200, 201].includes(start.status), `POST /api/v1/login answered ${start.status}: ${JSON.stringify(start.body)}`);
  assert.equal(start.body.next, 'password', `POST /api/v1/login: ${JSON.stringify(start.body)}`);
  assert.ok(start.body.flow_id, `POST /api/v1/login gave no flow_id: ${JSON.stringify(start.body)}`);

  const pw = await api(server, 'POST', `/api/v1/login/${encodeURIComponent(start.body.flow_id)}/password`, {
    password: ADMIN_PASSWORD,
  });
  assert.equal(pw.status, 200, `password step answered ${pw.status}: ${JSON.stringify(pw.body)}`);
  assert.equal(pw.body.next, 'done', `password step: ${JSON.stringify(pw.body)}`);
  assert.ok(pw.body.session_token, `password step gave no session_token: ${JSON.stringify(pw.body)}`);

  const put = await api(server, 'PUT', `/api/v1/orgs/${ORG}/mfa`, { mode: 'required' }, pw.body.session_token);
  assert.equal(put.status, 200, `PUT /api/v1/orgs/${ORG}/mfa answered ${put.status}: ${JSON.stringify(put.body)}`);
  assert.equal(put.body?.mfa?.mode, 'required', `PUT /api/v1/orgs/${ORG}/mfa: ${JSON.stringify(put.body)}`);
}

/** Screenshots the QR code element and decodes it from the pixels. */
async function decodeQr(page) {
  const svg = page.locator('#qr svg');
  await waitVisible(page, svg, 'a QR code (#qr svg)');
  const box = await svg.boundingBox();
  assert.ok(box && box.width >= 128 && box.height >= 128, `the QR code is too small to scan: ${JSON.stringify(box)}`);
  const bytes = await svg.screenshot();
  await mkdir(RESULTS_DIR, { recursive: true });
  await svg.screenshot({ path: join(RESULTS_DIR, 'mfa-qr.png') });
  const png = PNG.sync.read(bytes);
  const rgba = new Uint8ClampedArray(png.data.buffer, png.data.byteOffset, png.data.length);
  const qr = jsQR(rgba, png.width, png.height);
  assert.ok(qr, `no QR code could be decoded from the ${png.width}x${png.height} screenshot of #qr svg`);
  return qr.data;
}

/** The codes the server would accept right now (previous, current and next time step). */
function acceptableCodes(totp) {
  const now = Date.now();
  return new Set([-2, -1, 0, 1, 2].map((d) => totp.generate({ timestamp: now + d * STEP_MS })));
}

/** A 6-digit code that is none of the codes valid around now. */
function wrongCode(totp) {
  const valid = acceptableCodes(totp);
  for (const candidate of ['000000', '111111', '222222', '333333', '444444']) {
    if (!valid.has(candidate)) return candidate;
  }
  throw new Error('unreachable: five distinct candidates cannot all be valid');
}

async function submitCode(page, label, code) {
  await fill(page, label, code);
  await click(page, 'Continue');
}

/** Email → Continue → Password → Continue, from a fresh /login. */
async function signInAgain(page, server) {
  await open(page, `${server.baseUrl}/login`, server);
  await signIn(page, MEMBER_EMAIL, MEMBER_PASSWORD);
}

/** On /login/verify: "Try another method" → "Recovery code" → the recovery-code field. */
async function chooseRecoveryCode(page) {
  const other = page.getByRole('link', { name: 'Try another method', exact: true });
  await waitVisible(page, other, 'a link "Try another method"');
  await other.click();
  await expectPath(page, '/login/methods');
  await expectHeading(page, 'Try another method');
  await click(page, 'Recovery code');
  await expectPath(page, '/login/verify');
  await waitVisible(page, field(page, 'Recovery code'), 'a field labelled "Recovery code"');
}

async function readRecoveryCode(page) {
  await expectHeading(page, 'Save your recovery code');
  const el = page.locator('#recovery-code');
  await waitVisible(page, el, 'the recovery code (#recovery-code)');
  const code = (await el.innerText()).trim();
  assert.match(code, RECOVERY_CODE_RE, `recovery code ${JSON.stringify(code)} is not XXXX-XXXX-XXXX-XXXX-XXXX-XXXX`);
  return code;
}

async function continueToAccount(page) {
  const cont = page.getByRole('link', { name: 'Continue', exact: true });
  await waitVisible(page, cont, 'a link "Continue"');
  await cont.click();
  await expectPath(page, '/account');
  await expectText(page, 'Two-factor authentication is on.');
}

test('new member sets up mandatory 2FA, signs in with a code, then with the recovery code', TIMEOUT, (t) =>
  withServerAndBrowser(t, async ({ server, context, page }) => {
    // 1. Setup through the command line.
    const invitationUrl = setUpClinic(server);

    // 2. The clinic admin makes 2FA mandatory.
    await adminRequiresMfa(server);

    // 3. The member accepts the invitation and signs in: sent to set up 2FA.
    await open(page, invitationUrl, server);
    await setNewPassword(page, MEMBER_PASSWORD, 'Set password');
    await expectPath(page, '/login');
    await signIn(page, MEMBER_EMAIL, MEMBER_PASSWORD);
    await expectPath(page, '/login/setup');
    await expectHeading(page, 'Set up two-factor authentication');
    await expectAutocomplete(page, 'Verification code', 'one-time-code');
    assert.equal(
      await field(page, 'Verification code').getAttribute('inputmode'),
      'numeric',
      'the "Verification code" field should have inputmode="numeric"',
    );
    assert.ok((await expectVisibleLabels(page)) >= 1, 'the setup page has no labelled input');
    await screenshot(page, 'mfa-setup');

    const trouble = page.locator('details summary', { hasText: 'Trouble scanning?' });
    await waitVisible(page, trouble, 'a <details> summary "Trouble scanning?"');
    assert.equal(await page.locator('#setup-key').isVisible(), false, 'the setup key shows before "Trouble scanning?" is opened');
    await trouble.click();
    const keyEl = page.locator('#setup-key');
    await waitVisible(page, keyEl, 'the setup key (#setup-key) after opening "Trouble scanning?"');
    const setupKey = (await keyEl.innerText()).trim();
    assert.match(setupKey, SETUP_KEY_RE, `setup key ${JSON.stringify(setupKey)} is not base32 in groups of four`);
    await screenshot(page, 'mfa-setup-key');

    // No session before setup completes.
    const other = await context.newPage();
    try {
      await other.goto(`${server.baseUrl}/account`);
      await expectPath(other, '/login');
    } finally {
      await other.close();
    }
    await page.bringToFront();
    await expectPath(page, '/login/setup');

    // 4. Decode the QR code from its pixels and enable 2FA with a computed code.
    const uri = await decodeQr(page);
    const m = OTPAUTH_URI_RE.exec(uri);
    assert.ok(m, `the QR code holds ${JSON.stringify(uri)}, not the expected otpauth URI`);
    const secret = m[1];
    assert.equal(secret, setupKey.replace(/ /g, ''), 'the QR secret differs from the "Trouble scanning?" key');
    assert.ok(secret.length >= 26, `the secret has ${secret.length * 5} bits, fewer than 128`);
    const totp = OTPAuth.URI.parse(uri);
    assert.ok(totp instanceof OTPAuth.TOTP, 'the URI did not parse as TOTP');
    assert.equal(totp.issuer, 'Riverside Clinic');
    assert.equal(totp.label, MEMBER_EMAIL);

    const setupAt = Date.now();
    const setupStep = step(setupAt);
    const setupCode = totp.generate({ timestamp: setupAt });
    await fill(page, 'Verification code', setupCode);
    await click(page, 'Enable 2FA');

    // 5. The recovery code, then the account page.
    const recovery = await readRecoveryCode(page);
    await screenshot(page, 'mfa-recovery-code');
    await continueToAccount(page);
    await signOut(page);
    await expectPath(page, '/login');

    // 6. Sign in again: verify with the authenticator app.
    await signInAgain(page, server);
    await expectPath(page, '/login/verify');
    await expectHeading(page, "Verify it's you");
    await expectText(page, 'Enter the 6-digit code from your authenticator app.');
    await expectAutocomplete(page, 'Verification code', 'one-time-code');
    await screenshot(page, 'mfa-verify');

    await submitCode(page, 'Verification code', wrongCode(totp));
    await expectText(page, "That code didn't work");
    assert.equal(new URL(page.url()).pathname, '/login/verify', 'a wrong code left /login/verify');
    await screenshot(page, 'mfa-verify-wrong-code');

    if (step() === setupStep) {
      await submitCode(page, 'Verification code', setupCode);
      await expectText(page, 'already used');
      assert.equal(new URL(page.url()).pathname, '/login/verify', 'a reused code left /login/verify');
      if (step() !== setupStep) t.diagnostic('the time step changed while checking the reused code');
    } else {
      t.diagnostic('skipped the reused-code check: the 30 s time step changed since setup');
    }

    await submitCode(page, 'Verification code', totp.generate({ timestamp: Date.now() + STEP_MS }));
    await expectPath(page, '/account');
    await expectText(page, 'Two-factor authentication is on.');
    await signOut(page);
    await expectPath(page, '/login');

    // 7. Sign in again with the recovery code, typed loosely.
    await signInAgain(page, server);
    await expectPath(page, '/login/verify');
    await chooseRecoveryCode(page);
    await screenshot(page, 'mfa-verify-recovery');
    await submitCode(page, 'Recovery code', recovery.toLowerCase().replace(/-/g, ' '));
    const fresh = await readRecoveryCode(page);
    assert.notEqual(fresh, recovery, 'the recovery code was not replaced after use');
    await screenshot(page, 'mfa-recovery-code-new');
    await continueToAccount(page);
    await signOut(page);
    await expectPath(page, '/login');

    // The old recovery code no longer works.
    await signInAgain(page, server);
    await expectPath(page, '/login/verify');
    await chooseRecoveryCode(page);
    await submitCode(page, 'Recovery code', recovery);
    await expectText(page, "didn't work");
    assert.equal(new URL(page.url()).pathname, '/login/verify', 'the used recovery code left /login/verify');
    assert.notEqual(new URL(page.url()).pathname, '/account');

    await writeFile(join(RESULTS_DIR, 'mfa.server.log'), server.output());
  }),
);
