// Foundation flows: first platform admin, member invitation, sign-in and sign-out,
// the same answer for unknown email and wrong password, the patient portal, and the
// security headers. Each test starts its own server with a fresh data directory.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { withServerAndBrowser } from '../lib/server.mjs';
import {
  click,
  expectAutocomplete,
  expectHeading,
  expectPath,
  expectText,
  expectVisibleLabels,
  fill,
  open,
  setNewPassword,
  setUpAuthenticatorByKey,
  signIn,
  signOut,
} from '../lib/pages.mjs';

const PASSPHRASE = 'correct horse battery staple 42';
const TIMEOUT = { timeout: 120_000 };

/** Creates the Riverside Clinic organization through the admin CLI. */
function createClinic(server) {
  const org = server.cli(['org', 'create', '--name', 'Riverside Clinic', '--kind', 'clinic']);
  assert.ok(org && org.id, `org create printed no id: ${JSON.stringify(org)}`);
  assert.equal(org.name, 'Riverside Clinic');
  assert.equal(org.kind, 'clinic');
  return org;
}

function invitationUrl(result, what) {
  assert.ok(
    result && typeof result.invitation_url === 'string',
    `${what} printed no invitation_url: ${JSON.stringify(result)}`,
  );
  return result.invitation_url;
}

/** Adds a member and sets their password through the invitation link; ends on /login. */
async function memberWithPassword(server, page, org, email, password, role = 'provider') {
  const added = server.cli(['member', 'add', '--org', String(org.id), '--email', email, '--role', role]);
  await open(page, invitationUrl(added, 'member add'), server);
  await setNewPassword(page, password, 'Set password');
  await expectPath(page, '/login');
  await expectText(page, 'Your password is set');
}

/** Absolute URLs of the assets (scripts, styles, icons, images, frames…) the page refers to. */
function assetUrls(page) {
  return page.evaluate(() => {
    const assetRels = new Set(['stylesheet', 'icon', 'apple-touch-icon', 'preload', 'modulepreload', 'prefetch', 'manifest', 'mask-icon']);
    const urls = [];
    for (const el of document.querySelectorAll('[src], object[data], link[href]')) {
      if (el.tagName === 'LINK') {
        const rels = (el.getAttribute('rel') || '').toLowerCase().split(/\s+/);
        if (rels.some((r) => assetRels.has(r))) urls.push(el.href);
      } else if (el.tagName === 'OBJECT') {
        urls.push(el.data);
      } else {
        urls.push(el.src);
      }
    }
    return urls.filter(Boolean);
  });
}

/** The text of the first element showing `text`, whitespace-normalized. */
async function messageText(page, text) {
  await expectText(page, text);
  const t = await page.getByText(text).first().innerText();
  return t.replace(/\s+/g, ' ').trim();
}

test('first platform admin sets their password from the setup link', TIMEOUT, (t) =>
  withServerAndBrowser(t, async ({ server, page }) => {
    assert.ok(
      server.setupUrl,
      `the server printed no setup link matching /https?:\\/\\/…\\/setup\\/TOKEN/\n--- server output ---\n${server.output()}`,
    );

    await open(page, server.setupUrl, server);
    await expectHeading(page, 'Create the first platform admin');
    await fill(page, 'Email', 'admin@example.test');
    await fill(page, 'New password', PASSPHRASE);
    await fill(page, 'Confirm password', PASSPHRASE);
    await click(page, 'Create account');

    await expectPath(page, '/login');
    await expectText(page, 'Your password is set');

    // Platform admins can reset anyone's second factor, so they always use one: the
    // first sign-in sets up the authenticator app before any session exists.
    await signIn(page, 'admin@example.test', PASSPHRASE);
    await setUpAuthenticatorByKey(page);
    await open(page, `${server.baseUrl}/account`, server);
    await expectText(page, 'admin@example.test');
    await expectText(page, 'Platform admin');

    await signOut(page);
    await expectPath(page, '/login');
    await expectText(page, 'You have been signed out');

    await open(page, server.setupUrl, server);
    await expectText(page, 'This link has already been used or has expired');
  }),
);

test('new member signs in from invitation link to account page and signs out', TIMEOUT, (t) =>
  withServerAndBrowser(t, async ({ server, page }) => {
    const org = createClinic(server);
    const added = server.cli(['member', 'add', '--org', String(org.id), '--email', 'dr.lee@riverside.test', '--role', 'provider']);

    await open(page, invitationUrl(added, 'member add'), server);
    await expectText(page, 'Riverside Clinic');
    await expectHeading(page, 'Set your password');
    await expectAutocomplete(page, 'New password', 'new-password');
    await expectAutocomplete(page, 'Confirm password', 'new-password');
    assert.ok((await expectVisibleLabels(page)) >= 2, 'the invitation page has fewer than two labelled inputs');
    await setNewPassword(page, PASSPHRASE, 'Set password');

    await expectPath(page, '/login');
    await expectText(page, 'Your password is set');
    await expectAutocomplete(page, 'Email', 'username');
    assert.ok((await expectVisibleLabels(page)) >= 1, 'the sign-in page has no labelled input');
    await fill(page, 'Email', 'dr.lee@riverside.test');
    await click(page, 'Continue');
    await expectAutocomplete(page, 'Password', 'current-password');
    assert.ok((await expectVisibleLabels(page)) >= 1, 'the password step has no labelled input');
    await fill(page, 'Password', PASSPHRASE);
    await click(page, 'Continue');

    await expectPath(page, '/account');
    await expectText(page, 'dr.lee@riverside.test');
    await expectText(page, 'Riverside Clinic');
    await expectText(page, 'provider');

    await signOut(page);
    await expectPath(page, '/login');
    await expectText(page, 'You have been signed out');

    await page.goto(`${server.baseUrl}/account`);
    await expectPath(page, '/login');
  }),
);

test('wrong password and unknown email get the same message', TIMEOUT, (t) =>
  withServerAndBrowser(t, async ({ server, page }) => {
    const org = createClinic(server);
    await memberWithPassword(server, page, org, 'dr.lee@riverside.test', PASSPHRASE);

    await signIn(page, 'dr.lee@riverside.test', 'not the right password 99');
    const wrongPassword = await messageText(page, 'Email or password is incorrect');
    assert.notEqual(new URL(page.url()).pathname, '/account', 'a wrong password reached /account');

    await open(page, `${server.baseUrl}/login`, server);
    await signIn(page, 'unknown@riverside.test', 'not the right password 99');
    const unknownEmail = await messageText(page, 'Email or password is incorrect');
    assert.notEqual(new URL(page.url()).pathname, '/account', 'an unknown email reached /account');

    assert.equal(unknownEmail, wrongPassword, 'unknown email and wrong password show different messages');
  }),
);

test('patient signs in at the patient portal', TIMEOUT, (t) =>
  withServerAndBrowser(t, async ({ server, page }) => {
    const org = createClinic(server);
    const added = server.cli(['patient', 'add', '--org', String(org.id), '--email', 'pat@example.test']);

    await open(page, invitationUrl(added, 'patient add'), server);
    await setNewPassword(page, PASSPHRASE, 'Set password');
    await expectPath(page, '/portal/login');
    await expectText(page, 'Your password is set');

    await expectHeading(page, 'Patient portal');
    await signIn(page, 'pat@example.test', PASSPHRASE);
    await expectPath(page, '/account');
    await expectText(page, 'Patient portal');
    await expectText(page, 'pat@example.test');

    await signOut(page);
    await expectPath(page, '/portal/login');

    await open(page, `${server.baseUrl}/login`, server);
    await signIn(page, 'pat@example.test', PASSPHRASE);
    await expectText(page, 'Email or password is incorrect');
    assert.notEqual(new URL(page.url()).pathname, '/account', 'a patient signed in on the staff sign-in page');
  }),
);

test('security headers and no third-party assets', TIMEOUT, (t) =>
  withServerAndBrowser(t, async ({ server, page }) => {
    const requests = [];
    page.on('request', (req) => requests.push(req.url()));

    const res = await open(page, `${server.baseUrl}/login`, server);
    assert.equal(res.status(), 200, 'GET /login did not answer 200');
    const headers = await res.allHeaders();

    const csp = headers['content-security-policy'];
    assert.ok(csp, `GET /login has no Content-Security-Policy header (headers: ${JSON.stringify(headers)})`);
    const directives = new Map(
      csp
        .split(';')
        .map((d) => d.trim().split(/\s+/))
        .filter((parts) => parts[0])
        .map(([name, ...values]) => [name.toLowerCase(), values]),
    );
    assert.deepEqual(directives.get('frame-ancestors'), ["'none'"], `CSP lacks frame-ancestors 'none': ${csp}`);
    // Without script-src, default-src is what governs scripts.
    const scriptSrc = directives.get('script-src') ?? directives.get('default-src');
    assert.ok(scriptSrc, `CSP has neither script-src nor default-src, so scripts are unrestricted: ${csp}`);
    assert.ok(!scriptSrc.includes("'unsafe-inline'"), `CSP allows inline scripts: ${csp}`);

    assert.equal(headers['x-content-type-options']?.trim().toLowerCase(), 'nosniff', 'X-Content-Type-Options');
    assert.equal(headers['referrer-policy']?.trim().toLowerCase(), 'no-referrer', 'Referrer-Policy');

    // A request that the CSP blocks never shows up as a request, so also list the
    // assets each page refers to.
    const referenced = [];
    const recordAssets = async () => referenced.push(...(await assetUrls(page)));
    await page.waitForLoadState('networkidle');
    await recordAssets();

    // Walk the other public pages too.
    await fill(page, 'Email', 'someone@example.test');
    await click(page, 'Continue');
    await fill(page, 'Password', 'some password 1234');
    await recordAssets();
    await click(page, 'Continue');
    await expectText(page, 'Email or password is incorrect');
    await recordAssets();
    await open(page, `${server.baseUrl}/portal/login`, server);
    await recordAssets();
    if (server.setupUrl) {
      await open(page, server.setupUrl, server);
      await recordAssets();
    }
    await page.waitForLoadState('networkidle');

    assert.ok(requests.length >= 3, `expected the pages' requests to be recorded, got ${JSON.stringify(requests)}`);
    const foreign = (urls) =>
      [...new Set(urls)].filter((u) => {
        const { protocol, origin } = new URL(u);
        return protocol !== 'data:' && protocol !== 'blob:' && origin !== server.baseUrl;
      });
    assert.deepEqual(foreign(requests), [], `requests to other origins than ${server.baseUrl}`);
    assert.deepEqual(foreign(referenced), [], `assets referenced from other origins than ${server.baseUrl}`);
  }),
);
