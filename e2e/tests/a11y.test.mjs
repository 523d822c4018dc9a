// Accessibility: the pages a clinic's staff meet every day, checked with axe-core in
// Chromium. A serious or critical violation fails; lesser ones are printed.

import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { withServerAndBrowser } from '../lib/server.mjs';
import { click, expectPath, expectText, fill, open, openMember, setUpAuthenticatorByKey, signIn, signOut } from '../lib/pages.mjs';
import { png } from '../lib/png.mjs';

const TIMEOUT = { timeout: 180_000 };
const ORG = 'riverside-clinic';
const PASSWORD = 'correct horse battery staple';
const ADMIN = 'admin@riverside.test';
const NURSE = 'nurse@riverside.test';

const AXE = await readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/** Runs axe on the page (evaluated over the DevTools protocol, so the page's CSP,
 *  which allows no inline script, does not stop it). */
async function check(page, what, found) {
  await page.evaluate(AXE);
  const result = await page.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document, { resultTypes: ['violations'], runOnly: ['wcag2a', 'wcag2aa', 'best-practice'] }),
  );
  for (const v of result.violations) {
    const line = `${what}: ${v.impact} ${v.id} (${v.nodes.length}) ${v.help}`;
    if (v.impact === 'serious' || v.impact === 'critical') {
      found.push(`${line}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
    } else {
      console.log(`  note: ${line}`);
    }
  }
}

test('the sign-in, setup, account and admin pages have no serious accessibility violation', TIMEOUT, (t) =>
  withServerAndBrowser(t, async ({ server, page }) => {
    server.cli(['org', 'create', '--name', 'Riverside Clinic', '--kind', 'clinic']);
    server.cli(['org', 'mfa', '--org', ORG, '--enable', '--mode', 'required']);
    for (const [email, role] of [
      [ADMIN, 'admin'],
      [NURSE, 'staff'],
    ]) {
      server.cli(['member', 'add', '--org', ORG, '--email', email, '--role', role, '--password-stdin'], {
        stdin: `${PASSWORD}\n`,
      });
    }
    const found = [];

    await open(page, `${server.baseUrl}/login`, server);
    await check(page, 'sign-in (email)', found);
    await page.getByLabel('Email').fill(ADMIN);
    await click(page, 'Continue');
    await expectPath(page, '/login/password');
    await check(page, 'sign-in (password)', found);
    await page.getByLabel('Password').fill(PASSWORD);
    await click(page, 'Continue');
    // Mandatory 2FA and no factor yet: setup.
    await expectPath(page, '/login/setup');
    await check(page, 'setup', found);
    await setUpAuthenticatorByKey(page);
    await open(page, `${server.baseUrl}/account`, server);
    await check(page, 'account', found);
    await open(page, `${server.baseUrl}/admin`, server);
    await check(page, 'clinic settings', found);
    await open(page, `${server.baseUrl}/admin/edit`, server);
    await check(page, 'edit clinic', found);
    await open(page, `${server.baseUrl}/admin/users`, server);
    await check(page, 'users', found);
    await openMember(page, server, NURSE);
    await check(page, 'member', found);
    await click(page, 'Sign out everywhere');
    await expectText(page, 'out everywhere?');
    await check(page, 'are you sure?', found);
    await open(page, `${server.baseUrl}/admin/audit`, server);
    await check(page, 'audit log', found);
    await open(page, `${server.baseUrl}/admin/users/nobody`, server);
    await check(page, 'not found', found);
    // Branding: the page, then a clinic's name, colour and logo on its pages.
    await open(page, `${server.baseUrl}/admin/branding`, server);
    await check(page, 'branding', found);
    await fill(page, 'Display name', 'Riverside Family Clinic');
    await fill(page, 'Accent colour', '#0b5d3b');
    await click(page, 'Save');
    await expectText(page, 'The branding is saved.');
    const logoDir = await mkdtemp(join(tmpdir(), 'clinic-auth-a11y-logo-'));
    await writeFile(join(logoDir, 'logo.png'), png(120, 40, [11, 93, 59]));
    await page.getByLabel('Logo image').setInputFiles(join(logoDir, 'logo.png'));
    await click(page, 'Upload logo');
    await expectText(page, 'The logo is saved.');
    await check(page, 'branding (branded)', found);
    await open(page, `${server.baseUrl}/account`, server);
    await signOut(page);
    await open(page, `${server.baseUrl}/portal/login`, server);
    await check(page, 'patient portal sign-in', found);
    await open(page, `${server.baseUrl}/login?org=${ORG}`, server);
    await expectText(page, 'Riverside Family Clinic');
    await check(page, 'branded sign-in', found);

    assert.deepEqual(found, [], `serious or critical accessibility violations:\n${found.join('\n')}`);
  }),
);
