// The README's first command, as someone trying clinic-auth out meets it: the server
// starts with no configuration at all (no public URL, no passkey settings; only a
// temporary data directory and a loopback listen address), prints where to open the
// browser and a setup link on http://localhost, and every flow of the help articles
// works there, "Trust this device?" included: the first platform admin creates their
// account, sets up an authenticator app and trusts the browser with a passkey made on
// Chromium's virtual platform authenticator.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { withServerAndBrowser } from '../lib/server.mjs';
import {
  click,
  expectFitsWidth,
  expectHeading,
  expectPath,
  expectText,
  fill,
  open,
  setUpAuthenticatorByKey,
  signIn,
  waitVisible,
} from '../lib/pages.mjs';
import { addVirtualAuthenticator } from '../lib/webauthn.mjs';

const TIMEOUT = { timeout: 180_000 };
const ADMIN_EMAIL = 'admin@example.test';
const ADMIN_PASSWORD = 'correct horse battery staple 42';

test('an unconfigured server on loopback offers the first admin "Trust this device?" and makes a passkey', TIMEOUT, (t) =>
  withServerAndBrowser(
    t,
    async ({ server, page }) => {
      const out = server.output();
      const origin = `http://localhost:${server.port}`;
      assert.ok(
        server.setupUrl?.startsWith(`${origin}/setup/`),
        `the setup link is on ${origin}: ${server.setupUrl}\n--- server output ---\n${out}`,
      );
      assert.ok(
        out.includes(`Open ${origin}/ in a browser; passkeys ("Trust this device") work there.`),
        `the server says where to open the browser and that passkeys work there\n--- server output ---\n${out}`,
      );
      assert.doesNotMatch(out, /passkeys are off/, 'no "passkeys are off" warning');

      const authenticator = await addVirtualAuthenticator(page);

      // 1. The printed setup link: create the first platform admin.
      await open(page, server.setupUrl, server);
      await expectHeading(page, 'Create the first platform admin');
      await fill(page, 'Email', ADMIN_EMAIL);
      await fill(page, 'New password', ADMIN_PASSWORD);
      await fill(page, 'Confirm password', ADMIN_PASSWORD);
      await click(page, 'Create account');
      await expectPath(page, '/login');
      await expectText(page, 'Your password is set');

      // 2. Platform admins always use an authenticator app: the first sign-in sets one up.
      await signIn(page, ADMIN_EMAIL, ADMIN_PASSWORD);
      await setUpAuthenticatorByKey(page);

      // 3. After the recovery code: "Trust this device?" → Continue creates the passkey.
      const cont = page.getByRole('link', { name: 'Continue', exact: true });
      await waitVisible(page, cont, 'a link "Continue" under the recovery code');
      await cont.click();
      await expectPath(page, '/account/trust-device');
      await expectHeading(page, 'Trust this device?');
      await click(page, 'Continue');
      await expectPath(page, '/account');
      await expectText(page, 'This device is trusted.');

      // 4. The passkey exists on the authenticator and the account lists the device.
      const created = await authenticator.credentials();
      assert.equal(created.length, 1, 'the virtual authenticator holds one passkey');
      assert.equal(created[0].rpId, 'localhost', 'the passkey belongs to localhost');
      await waitVisible(page, page.locator('li', { hasText: 'this device' }), 'the trusted device listed as "this device"');

      // 5. The platform's audit view (with its Organization column) fits the window too.
      await open(page, `${server.baseUrl}/admin/audit`, server);
      await waitVisible(page, page.locator('#audit tbody tr').first(), 'an event in the platform audit view');
      await expectFitsWidth(page, '#audit', 'the platform audit table at 1280 px');
    },
    { unconfigured: true },
  ),
);
