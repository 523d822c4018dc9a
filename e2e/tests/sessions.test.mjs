// "My sessions", as a member uses it: signed in from two browsers, the account page
// lists both with "This device" on the one in hand; signing the other out from the
// list leaves that browser signed out and this one signed in.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { launchBrowser, withServerAndBrowser } from '../lib/server.mjs';
import { expectPath, expectText, open, signIn, waitVisible } from '../lib/pages.mjs';

const TIMEOUT = { timeout: 120_000 };
const ORG = 'riverside-clinic';
const EMAIL = 'dr.lee@riverside.test';
const PASSWORD = 'correct horse battery staple 42';

/** The "Your sessions" section of the account page. */
function sessionsSection(page) {
  return page.getByRole('region', { name: 'Your sessions' });
}

async function signedInAtAccount(page, server) {
  await open(page, `${server.baseUrl}/login`, server);
  await signIn(page, EMAIL, PASSWORD);
  await expectPath(page, '/account');
}

test('a member signs out their other browser from the list of sessions', TIMEOUT, (t) =>
  withServerAndBrowser(t, async ({ server, page }) => {
    server.cli(['org', 'create', '--name', 'Riverside Clinic', '--kind', 'clinic']);
    server.cli(['member', 'add', '--org', ORG, '--email', EMAIL, '--role', 'provider', '--password-stdin'], {
      stdin: `${PASSWORD}\n`,
    });

    // Two browsers, each with its own cookies: two sessions of one member.
    const other = await launchBrowser();
    try {
      await signedInAtAccount(page, server);
      await signedInAtAccount(other.page, server);

      await open(page, `${server.baseUrl}/account`, server);
      const list = sessionsSection(page);
      await waitVisible(page, list, 'a "Your sessions" section');
      const rows = list.getByRole('listitem');
      await waitVisible(page, rows.nth(1), 'two sessions listed');
      assert.equal(await rows.count(), 2, 'both sessions are listed');
      const mine = rows.filter({ hasText: 'This device' });
      assert.equal(await mine.count(), 1, 'one session is "This device"');
      assert.match(await mine.innerText(), /Chrom(e|ium) on Linux/, 'named from the browser');
      assert.match(await mine.innerText(), /from 127\.0\.0\.1/);
      assert.equal(await mine.getByRole('button').count(), 0, 'this device is not signed out from the list');

      // The other browser's row: "Sign out".
      const theirs = rows.filter({ hasNotText: 'This device' });
      await theirs.getByRole('button', { name: /^Sign out/ }).click();
      await expectPath(page, '/account');
      await expectText(page, 'That session was signed out.');
      await waitVisible(page, sessionsSection(page).getByText('This device'), 'this device still listed');
      assert.equal(await sessionsSection(page).getByRole('listitem').count(), 1, 'one session left');

      // The other browser is signed out: its next page is the sign-in page.
      await open(other.page, `${server.baseUrl}/account`, server);
      await expectPath(other.page, '/login');

      // This one is still signed in.
      await open(page, `${server.baseUrl}/account`, server);
      await expectPath(page, '/account');
      await expectText(page, EMAIL);
    } finally {
      await other.close();
    }
  }),
);
