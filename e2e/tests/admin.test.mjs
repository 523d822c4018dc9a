// Clinic administration as a new clinic admin does it in the browser: turn on
// Mandatory 2FA under Clinic Settings → Edit Clinic, set one member to Not required,
// grant another the one-time bypass ("Disable two-factor authentication") and watch
// that member sign in once without 2FA and land in setup, reset a third member's
// MFA, and find all of it in the audit log and its CSV export.

import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { enrollAuthenticatorThroughApi } from '../lib/api.mjs';
import { RESULTS_DIR, launchBrowser, withServerAndBrowser } from '../lib/server.mjs';
import {
  click,
  expectFitsWidth,
  expectHeading,
  expectPath,
  expectText,
  field,
  fill,
  open,
  openMember,
  setUpAuthenticatorByKey,
  signIn,
  signOut,
  waitVisible,
} from '../lib/pages.mjs';

const TIMEOUT = { timeout: 180_000 };
const ORG = 'riverside-clinic';
const PASSWORD = 'correct horse battery staple';
const ADMIN = 'admin@riverside.test';
const LOCUM = 'locum@riverside.test';
const LEE = 'dr.lee@riverside.test';
const NURSE = 'nurse@riverside.test';
// A long address (and its long audit rows) must wrap, not widen the audit table.
const LOCUM_LONG = 'maria-alejandra.gonzalez-fitzgerald.visiting@riverside-family-medicine.test';

async function screenshot(page, name) {
  await mkdir(RESULTS_DIR, { recursive: true });
  await page.screenshot({ path: join(RESULTS_DIR, `${name}.png`), fullPage: true });
}

test('a new clinic admin turns on Mandatory 2FA, exempts, bypasses and resets members, and audits it', TIMEOUT, (t) =>
  withServerAndBrowser(t, async ({ server, page }) => {
    // Platform support set up the clinic and enabled MFA for it.
    server.cli(['org', 'create', '--name', 'Riverside Clinic', '--kind', 'clinic']);
    server.cli(['org', 'mfa', '--org', ORG, '--enable']);
    for (const [email, role] of [
      [ADMIN, 'admin'],
      [LOCUM, 'provider'],
      [LEE, 'provider'],
      [NURSE, 'staff'],
      [LOCUM_LONG, 'provider'],
    ]) {
      server.cli(['member', 'add', '--org', ORG, '--email', email, '--role', role, '--password-stdin'], {
        stdin: `${PASSWORD}\n`,
      });
    }

    // 1. The admin signs in and finds Clinic Settings from the account page.
    await open(page, `${server.baseUrl}/login`, server);
    await signIn(page, ADMIN, PASSWORD);
    await expectPath(page, '/account');
    await page.getByRole('link', { name: 'Clinic Settings', exact: true }).click();
    await expectPath(page, '/admin');
    await expectHeading(page, 'Clinic Settings');

    // 2. Edit Clinic → Mandatory 2FA → Save, with a summary of what members get.
    await page.getByRole('link', { name: 'Edit Clinic', exact: true }).click();
    await expectPath(page, '/admin/edit');
    await field(page, 'Mandatory 2FA').check();
    await click(page, 'Save');
    await expectPath(page, '/admin');
    await expectText(page, 'Saved.');
    assert.equal((await page.locator('#mfa-mode').innerText()).trim(), 'Mandatory 2FA');
    await expectText(page, 'Mandatory 2FA: every member without a second factor sets one up');
    await screenshot(page, 'admin-clinic-settings');

    // Two members set up their authenticator app (they are now required to).
    await enrollAuthenticatorThroughApi(server, LEE, PASSWORD);
    await enrollAuthenticatorThroughApi(server, NURSE, PASSWORD);

    // 3. The locum is set to Not required.
    await openMember(page, server, LOCUM);
    await page.getByLabel('Two-factor auth', { exact: true }).selectOption('not_required');
    await click(page, 'Save setting');
    await expectText(page, 'The two-factor setting is saved.');
    assert.equal(await page.getByLabel('Two-factor auth', { exact: true }).inputValue(), 'not_required');
    // The locum, in their own browser, signs in with the password alone: no setup.
    const locum = await launchBrowser();
    try {
      await open(locum.page, `${server.baseUrl}/login`, server);
      await signIn(locum.page, LOCUM, PASSWORD);
      await expectPath(locum.page, '/account');
    } finally {
      await locum.close();
    }

    // 4. Dr. Lee lost their phone: "Disable two-factor authentication" → Save user.
    await openMember(page, server, LEE);
    await expectText(page, 'Authenticator app — enrolled');
    await field(page, 'Disable two-factor authentication').check();
    await click(page, 'Save user');
    await expectText(page, 'disabled for one sign-in');
    assert.match(await page.locator('#member-bypass').innerText(), /granted, usable once until/);
    await screenshot(page, 'admin-member-bypass');

    // Dr. Lee, in their own browser: password only, then straight to setup with the
    // new phone; the bypass is good once, so the next sign-in asks for the new code.
    const lee = await launchBrowser();
    try {
      await open(lee.page, `${server.baseUrl}/login`, server);
      await signIn(lee.page, LEE, PASSWORD);
      await expectPath(lee.page, '/login/setup');
      await expectHeading(lee.page, 'Set up two-factor authentication');
      // The page says why setup is shown.
      await expectText(lee.page, 'Your administrator let you sign in once without two-factor authentication.');
      await screenshot(lee.page, 'admin-bypass-member-setup');
      await setUpAuthenticatorByKey(lee.page);
      await open(lee.page, `${server.baseUrl}/account`, server);
      await signOut(lee.page);
      await expectPath(lee.page, '/login');
      await signIn(lee.page, LEE, PASSWORD);
      await expectPath(lee.page, '/login/verify');
      await expectText(lee.page, 'Enter the 6-digit code from your authenticator app.');
    } finally {
      await lee.close();
    }
    await openMember(page, server, LEE);
    assert.equal((await page.locator('#member-bypass').innerText()).trim(), 'none', 'the bypass is used up');
    assert.match(
      await page.locator('#member-factors').innerText(),
      /Authenticator app — enrolled/,
      'the old factors are gone and the new app is set up',
    );

    // 5. The nurse's MFA is reset.
    await openMember(page, server, NURSE);
    await expectText(page, 'Authenticator app — enrolled');
    await click(page, 'Reset MFA');
    // "Are you sure?", saying what a reset does, before anything changes.
    await expectText(page, `Reset MFA for ${NURSE}?`);
    await expectText(page, 'signs them out everywhere');
    await click(page, 'Reset MFA');
    await expectText(page, 'MFA was reset');
    assert.equal((await page.locator('#member-factors').innerText()).trim(), 'none');

    // 6. All of it is in the audit log...
    await page.getByRole('link', { name: 'Audit log', exact: true }).click();
    await expectPath(page, '/admin/audit');
    const table = page.locator('#audit');
    // Events read as words, not codes.
    for (const kind of ['Clinic 2FA settings changed', "Member's 2FA rule changed", 'Bypass granted', 'Signed in once without 2FA (bypass)', 'MFA reset']) {
      await waitVisible(page, table.getByRole('cell', { name: kind, exact: true }), `an audit row "${kind}"`);
    }
    assert.doesNotMatch(await table.innerText(), /[{}]|bypass_used|mfa_reset/, 'no codes or JSON in the table');
    await screenshot(page, 'admin-audit');
    await expectFitsWidth(page, '#audit', 'the audit table at 1280 px');
    // Details wrap between labelled parts, not inside every word: the column keeps room.
    const detailWidths = await page.locator('#audit td.detail').evaluateAll((cells) => cells.map((c) => c.getBoundingClientRect().width));
    assert.ok(Math.min(...detailWidths) >= 180, `the details column is wide enough to read (${Math.min(...detailWidths)} px)`);
    assert.ok((await table.locator('td.detail .part').count()) > 0, 'details are shown as labelled parts');
    await fill(page, 'Member', LEE);
    await page.getByLabel('Event').selectOption('bypass_used');
    await click(page, 'Filter');
    await expectPath(page, '/admin/audit');
    const rows = table.locator('tbody tr');
    assert.equal(await rows.count(), 1, 'filtering by member and type leaves one event');
    assert.match(await rows.first().innerText(), /Signed in once without 2FA \(bypass\)/);

    // ...and in the CSV export.
    await fill(page, 'Member', '');
    await page.getByLabel('Event').selectOption('');
    await click(page, 'Filter');
    const href = await page.locator('#export-csv').getAttribute('href');
    const res = await page.context().request.get(`${server.baseUrl}${href}`);
    assert.equal(res.status(), 200);
    assert.match(res.headers()['content-type'], /^text\/csv/);
    const csv = await res.text();
    await writeFile(join(RESULTS_DIR, 'admin-audit.csv'), csv);
    assert.match(csv.split('\r\n')[0], /^id,time,organization,event,outcome,actor/);
    for (const needle of ['"org_mfa_changed"', '"member_mfa_override_changed"', '"bypass_granted"', '"bypass_used"', '"mfa_reset"', `"${NURSE}"`, `"${ADMIN}"`]) {
      assert.ok(csv.includes(needle), `the CSV export has ${needle}`);
    }
  }),
);
