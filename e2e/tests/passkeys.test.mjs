// Second factor, part 3, as a new member experiences it: the clinic requires 2FA;
// the member sets up an authenticator app, answers "Trust this device?" with
// Continue (a passkey is created on Chromium's virtual platform authenticator, added
// through the DevTools protocol), signs out, signs in with the passkey as the
// default, removes the passkey, and sees the default fall back to the app.

import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { RESULTS_DIR, withServerAndBrowser } from '../lib/server.mjs';
import {
  click,
  expectHeading,
  expectPath,
  expectText,
  field,
  fill,
  open,
  setNewPassword,
  setUpAuthenticatorByKey,
  signIn,
  signOut,
  waitVisible,
} from '../lib/pages.mjs';
import { addVirtualAuthenticator } from '../lib/webauthn.mjs';

const TIMEOUT = { timeout: 180_000 };
const ORG = 'riverside-clinic';
const MEMBER_EMAIL = 'dr.lee@riverside.test';
const MEMBER_PASSWORD = 'correct horse battery staple 42';

async function screenshot(page, name) {
  await mkdir(RESULTS_DIR, { recursive: true });
  await page.screenshot({ path: join(RESULTS_DIR, `${name}.png`), fullPage: true });
}

function clinicWithInvitedMember(server) {
  server.cli(['org', 'create', '--name', 'Riverside Clinic', '--kind', 'clinic']);
  const mfa = server.cli(['org', 'mfa', '--org', ORG, '--enable', '--mode', 'required']);
  assert.deepEqual(mfa.mfa.methods, ['authenticator', 'passkey'], `passkeys are allowed by default: ${JSON.stringify(mfa)}`);
  const member = server.cli(['member', 'add', '--org', ORG, '--email', MEMBER_EMAIL, '--role', 'provider']);
  assert.ok(member?.invitation_url?.startsWith(server.baseUrl), `invitation link: ${JSON.stringify(member)}`);
  return member.invitation_url;
}

test('a member trusts this device, signs in with the passkey, removes it and falls back to the app', TIMEOUT, (t) =>
  withServerAndBrowser(
    t,
    async ({ server, page }) => {
      const authenticator = await addVirtualAuthenticator(page);
      const invitationUrl = clinicWithInvitedMember(server);

      // 1. Invitation, password, sign-in: Mandatory 2FA sends the member to setup.
      await open(page, invitationUrl, server);
      await setNewPassword(page, MEMBER_PASSWORD, 'Set password');
      await expectPath(page, '/login');
      await signIn(page, MEMBER_EMAIL, MEMBER_PASSWORD);
      const totp = await setUpAuthenticatorByKey(page);

      // 2. After the recovery code: "Trust this device?" → Continue creates the passkey.
      const cont = page.getByRole('link', { name: 'Continue', exact: true });
      await waitVisible(page, cont, 'a link "Continue" under the recovery code');
      await cont.click();
      await expectPath(page, '/account/trust-device');
      await expectHeading(page, 'Trust this device?');
      await waitVisible(page, page.getByRole('link', { name: 'Not now', exact: true }), 'a "Not now" link');
      assert.match(await field(page, 'Device name').inputValue(), /Chrom(e|ium) on Linux/);
      await screenshot(page, 'passkey-trust-device');
      await click(page, 'Continue');
      await expectPath(page, '/account');
      await expectText(page, 'This device is trusted.');
      const created = await authenticator.credentials();
      assert.equal(created.length, 1, 'the virtual authenticator holds one passkey');
      assert.equal(created[0].isResidentCredential, true, 'a discoverable (resident) credential was preferred');
      const row = page.locator('li', { hasText: 'this device' });
      await waitVisible(page, row, 'the trusted device listed as "this device"');
      await expectText(page, 'not used yet');
      await screenshot(page, 'passkey-account');
      await signOut(page);
      await expectPath(page, '/login');

      // 3. Next sign-in: after the password, the passkey is the default; no code typed.
      await open(page, `${server.baseUrl}/login`, server);
      await signIn(page, MEMBER_EMAIL, MEMBER_PASSWORD);
      await expectPath(page, '/account', 15_000);
      await expectText(page, 'Two-factor authentication is on.');
      const used = await authenticator.credentials();
      assert.ok(
        used[0].signCount > created[0].signCount,
        `the passkey signed the sign-in (signCount ${created[0].signCount} → ${used[0].signCount})`,
      );
      await waitVisible(page, page.getByText(/last used \d{4}-\d{2}-\d{2}/), 'the passkey\'s last-used date');

      // 4. Remove the passkey (the sign-in just proved a second factor, so no step-up).
      await page.locator('li', { hasText: 'this device' }).getByRole('link', { name: /^Remove / }).click();
      await expectText(page, 'This device will no longer be trusted');
      await click(page, 'Remove passkey');
      await expectPath(page, '/account');
      await expectText(page, 'The passkey was removed.');
      assert.equal(await page.getByText('this device', { exact: true }).count(), 0, 'no device is listed as trusted');
      await waitVisible(page, page.getByRole('link', { name: 'Trust this device', exact: true }), 'the offer to trust again');
      await signOut(page);

      // 5. The default falls back to the authenticator app.
      await open(page, `${server.baseUrl}/login`, server);
      await signIn(page, MEMBER_EMAIL, MEMBER_PASSWORD);
      await expectPath(page, '/login/verify');
      await expectText(page, 'Enter the 6-digit code from your authenticator app.');
      await screenshot(page, 'passkey-fallback');
      await fill(page, 'Verification code', totp.generate({ timestamp: Date.now() + 30_000 }));
      await click(page, 'Continue');
      await expectPath(page, '/account');
    },
    { host: 'localhost' },
  ),
);
