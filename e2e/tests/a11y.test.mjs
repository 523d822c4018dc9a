// Accessibility: the pages a clinic's staff meet every day, checked with axe-core in
// Chromium. A serious or critical violation fails; lesser ones are printed.

import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { smtpSettings, startSmtpCapture } from '../lib/capture.mjs';
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
    // Mandatory 2FA with a grace period: setup offers "Remind me later", and the Users
    // list shows who has not set up yet with "Send reminder".
    server.cli(['org', 'mfa', '--org', ORG, '--enable', '--mode', 'required', '--grace-days', '7']);
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
    await expectText(page, 'You have 7 days left to set it up.');
    await check(page, 'setup (grace period, Remind me later)', found);
    await setUpAuthenticatorByKey(page);
    await open(page, `${server.baseUrl}/account`, server);
    await check(page, 'account', found);
    await open(page, `${server.baseUrl}/admin`, server);
    await check(page, 'clinic settings', found);
    await open(page, `${server.baseUrl}/admin/edit`, server);
    await check(page, 'edit clinic', found);
    await open(page, `${server.baseUrl}/admin/users`, server);
    await expectText(page, 'Not set up — 7 days left');
    await check(page, 'users (2FA not set up, Send reminder)', found);
    await click(page, 'Remind everyone not set up');
    await expectText(page, 'We emailed a reminder');
    await check(page, 'users (reminders sent)', found);
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

test('the change-email pages have no serious accessibility violation', TIMEOUT, async (t) => {
  const smtp = await startSmtpCapture();
  const env = {
    ...smtpSettings(smtp),
  };
  try {
    await withServerAndBrowser(
      t,
      async ({ server, page }) => {
        server.cli(['org', 'create', '--name', 'Riverside Clinic', '--kind', 'clinic']);
        server.cli(['member', 'add', '--org', ORG, '--email', NURSE, '--role', 'staff', '--password-stdin'], {
          stdin: `${PASSWORD}\n`,
        });
        const found = [];
        await open(page, `${server.baseUrl}/login`, server);
        await signIn(page, NURSE, PASSWORD);
        await expectPath(page, '/account');
        await open(page, `${server.baseUrl}/account/email`, server);
        await check(page, 'change email', found);
        await page.getByLabel('New email').fill('nurse@hillside.test');
        await page.getByLabel('Current password').fill('not the password');
        await click(page, 'Send confirmation link');
        await expectText(page, 'Your current password is not correct.');
        await check(page, 'change email (error)', found);
        await page.getByLabel('New email').fill('nurse@hillside.test');
        await page.getByLabel('Current password').fill(PASSWORD);
        await click(page, 'Send confirmation link');
        await expectPath(page, '/account');
        await expectText(page, 'Waiting for you to confirm');
        await check(page, 'account (email change waiting)', found);
        let link;
        for (let i = 0; i < 100 && !link; i++) {
          const mail = smtp.messages().find((m) => m.to.includes('nurse@hillside.test'));
          link = mail?.text.split(/\s+/).find((w) => w.includes('/account/email/confirm?token='));
          if (!link) await new Promise((r) => setTimeout(r, 100));
        }
        assert.ok(link, 'a confirm link reached the new address');
        await open(page, link, server);
        await check(page, 'confirm new email', found);
        await click(page, 'Confirm new email');
        await expectText(page, 'Your sign-in email is changed');
        await check(page, 'email changed', found);
        await open(page, link, server);
        await check(page, 'confirm link used', found);
        assert.deepEqual(found, [], `serious or critical accessibility violations:\n${found.join('\n')}`);
      },
      { env },
    );
  } finally {
    await smtp.close();
  }
});
