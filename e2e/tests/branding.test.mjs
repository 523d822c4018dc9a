// Branding per clinic, as a clinic's owner and a provider meet it in Chromium: the
// owner opens Branding in the clinic console, sets the display name and accent colour
// and uploads a logo; the provider follows the clinic's sign-in link
// (/login?org=riverside-clinic) and sees the clinic's name, logo and colour on every
// page of the sign-in, and the emailed code names the clinic and shows its logo.

import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { smtpSettings, startSmtpCapture } from '../lib/capture.mjs';
import { png } from '../lib/png.mjs';
import { withServerAndBrowser } from '../lib/server.mjs';
import { click, expectPath, expectText, fill, open, signIn, signOut, waitVisible } from '../lib/pages.mjs';

const TIMEOUT = { timeout: 180_000 };
const ORG = 'riverside-clinic';
const PASSWORD = 'correct horse battery staple';
const OWNER = 'owner@riverside.test';
const PROVIDER = 'dr.lee@riverside.test';
const DISPLAY_NAME = 'Riverside Family Clinic';
const ACCENT = '#0b5d3b';
const ACCENT_RGB = 'rgb(11, 93, 59)';
const DELIVERY_MS = 15_000;

/** The page's clinic header: its name and whether its logo image loaded. */
async function clinicHeader(page) {
  const header = page.locator('header.brand.clinic');
  await waitVisible(page, header, 'the clinic header');
  const name = (await header.locator('.clinic-name').innerText()).trim();
  const logo = header.locator('img.logo');
  const logoLoaded = (await logo.count()) === 1 && (await logo.evaluate((img) => img.complete && img.naturalWidth > 0));
  return { name, logoLoaded };
}

async function buttonColour(page, name) {
  const b = page.getByRole('button', { name, exact: true }).first();
  await waitVisible(page, b, `a "${name}" button`);
  return b.evaluate((el) => getComputedStyle(el).backgroundColor);
}

async function expectClinicLook(page, where) {
  const { name, logoLoaded } = await clinicHeader(page);
  assert.equal(name, DISPLAY_NAME, `${where}: the header names the clinic`);
  assert.ok(logoLoaded, `${where}: the clinic's logo is shown`);
  assert.equal(await page.title().then((t) => t.endsWith(`· ${DISPLAY_NAME}`)), true, `${where}: title ${await page.title()}`);
}

test('an owner brands the clinic and its sign-in link shows the brand through the sign-in and the emailed code', TIMEOUT, async (t) => {
  const smtp = await startSmtpCapture();
  const env = {
    ...smtpSettings(smtp),
    CLINIC_AUTH_EMAIL_FROM: 'Riverside Clinic <no-reply@riverside.test>',
  };
  try {
    await withServerAndBrowser(
      t,
      async ({ server, page }) => {
        server.cli(['org', 'create', '--name', 'Riverside Clinic', '--kind', 'clinic']);
        server.cli(['org', 'mfa', '--org', ORG, '--enable', '--mode', 'optional', '--methods', 'email']);
        for (const [email, role] of [
          [OWNER, 'owner'],
          [PROVIDER, 'provider'],
        ]) {
          server.cli(['member', 'add', '--org', ORG, '--email', email, '--role', role, '--password-stdin'], {
            stdin: `${PASSWORD}\n`,
          });
        }
        server.cli(['member', 'mfa', '--org', ORG, '--email', PROVIDER, '--override', 'required']);

        // 1. The owner: Clinic console → Branding.
        await open(page, `${server.baseUrl}/login`, server);
        await signIn(page, OWNER, PASSWORD);
        await expectPath(page, '/account');
        await open(page, `${server.baseUrl}/admin`, server);
        await page.getByRole('navigation', { name: 'Administration' }).getByRole('link', { name: 'Branding' }).click();
        await expectPath(page, '/admin/branding');
        const platformButton = await buttonColour(page, 'Save');
        assert.equal(platformButton, 'rgb(31, 95, 191)', 'before: the platform colour');

        // A colour too light for white text is refused, saying why.
        await fill(page, 'Display name', DISPLAY_NAME);
        await fill(page, 'Accent colour', '#ffcc00');
        await click(page, 'Save');
        await expectText(page, 'at least 4.5:1');
        await fill(page, 'Display name', DISPLAY_NAME);
        await fill(page, 'Accent colour', ACCENT);
        await click(page, 'Save');
        await expectText(page, 'The branding is saved.');
        assert.equal(await buttonColour(page, 'Save'), ACCENT_RGB, 'the console takes the accent');

        const dir = await mkdtemp(join(tmpdir(), 'clinic-auth-logo-'));
        const logoFile = join(dir, 'riverside-logo.png');
        await writeFile(logoFile, png(120, 40, [11, 93, 59]));
        await page.getByLabel('Logo image').setInputFiles(logoFile);
        await click(page, 'Upload logo');
        await expectText(page, 'The logo is saved.');
        await expectClinicLook(page, 'the branding page');
        const preview = page.locator('#branding-preview img.logo');
        assert.ok(await preview.evaluate((img) => img.complete && img.naturalWidth === 120), 'the preview shows the logo');
        await open(page, `${server.baseUrl}/account`, server);
        await expectClinicLook(page, "the owner's account page");
        await signOut(page);

        // 2. The provider follows the clinic's sign-in link.
        await open(page, `${server.baseUrl}/login?org=${ORG}`, server);
        await expectClinicLook(page, 'the sign-in page');
        assert.equal(await buttonColour(page, 'Continue'), ACCENT_RGB, 'the sign-in button has the accent');
        await fill(page, 'Email', PROVIDER);
        await click(page, 'Continue');
        await expectPath(page, '/login/password');
        assert.equal(new URL(page.url()).search, '', 'no ?org= here: the sign-in carries the clinic');
        await expectClinicLook(page, 'the password page');
        await fill(page, 'Password', PASSWORD);
        await click(page, 'Continue');

        // Setup by email codes: the page and the email are the clinic's.
        await expectPath(page, '/login/setup');
        await expectClinicLook(page, 'the setup page');
        const before = smtp.messages().length;
        await click(page, 'Send code');
        const mails = await smtp.waitFor(before + 1, DELIVERY_MS);
        const mail = mails.at(-1);
        assert.equal(mail.subject, `Your ${DISPLAY_NAME} verification code`);
        assert.match(mail.text, new RegExp(DISPLAY_NAME));
        assert.match(mail.html, new RegExp(`<img src="${server.baseUrl}/branding/${ORG}/logo\\?v=[0-9a-f]+" alt="${DISPLAY_NAME}"`));
        const code = mail.text.match(/(?<!\d)\d{6}(?!\d)/)[0];
        // The logo in the email is the one the clinic uploaded, served to anyone.
        const logoUrl = mail.html.match(/<img src="([^"]+)"/)[1];
        const logo = await fetch(logoUrl);
        assert.equal(logo.status, 200);
        assert.equal(logo.headers.get('content-type'), 'image/png');
        assert.equal(logo.headers.get('x-content-type-options'), 'nosniff');

        await fill(page, 'Enter Code', code);
        await click(page, 'Submit');
        await expectText(page, 'Save your recovery code');
      },
      { env },
    );
  } finally {
    await smtp.close();
  }
});

test('an unknown clinic in the sign-in link shows the platform look', TIMEOUT, (t) =>
  withServerAndBrowser(t, async ({ server, page }) => {
    await open(page, `${server.baseUrl}/login?org=no-such-clinic`, server);
    await waitVisible(page, page.locator('header.brand'), 'the header');
    assert.equal(await page.locator('header.brand.clinic').count(), 0, 'no clinic header');
    assert.equal(await buttonColour(page, 'Continue'), 'rgb(31, 95, 191)', 'the platform colour');
  }),
);
