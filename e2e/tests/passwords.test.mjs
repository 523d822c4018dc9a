// Self-service passwords in the browser: a member with an authenticator app forgets
// the password, asks for a link under the sign-in form ("Forgot your password?"),
// chooses a new password through the emailed link and signs in with it, still asked
// for the authenticator; another member changes the password from the account page,
// which signs their other browser out and tells them by email.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { enrollAuthenticatorThroughApi } from '../lib/api.mjs';
import { emailTo, smtpSettings, startSmtpCapture } from '../lib/capture.mjs';
import { launchBrowser, withServerAndBrowser } from '../lib/server.mjs';
import {
  click,
  expectHeading,
  expectPath,
  expectText,
  field,
  fill,
  open,
  setNewPassword,
  signIn,
  signOut,
} from '../lib/pages.mjs';

const TIMEOUT = { timeout: 180_000 };
const ORG = 'riverside-clinic';
const PASSWORD = 'correct horse battery staple';
const NEW_PASSWORD = 'a brand new passphrase for lee';
const LEE = 'dr.lee@riverside.test';
const NURSE = 'nurse@riverside.test';
const SENT =
  "If an account uses that address, we've sent it a link to choose a new password. The link works once, for 1 hour.";
const RESET_SUBJECT = 'Reset your Riverside Clinic password';
const CHANGED_SUBJECT = 'Your Riverside Clinic password was changed';

/** A server that emails through the capture, with a clinic whose members must use 2FA. */
async function withClinic(t, body) {
  const smtp = await startSmtpCapture();
  const env = {
    ...smtpSettings(smtp),
  };
  try {
    await withServerAndBrowser(
      t,
      async ({ server, page }) => {
        server.cli(['org', 'create', '--name', 'Riverside Clinic', '--kind', 'clinic']);
        server.cli(['org', 'mfa', '--org', ORG, '--enable', '--mode', 'required', '--methods', 'authenticator']);
        for (const email of [LEE, NURSE]) {
          server.cli(['member', 'add', '--org', ORG, '--email', email, '--role', 'provider', '--password-stdin'], {
            stdin: `${PASSWORD}\n`,
          });
        }
        await body({ server, page, smtp });
      },
      { env },
    );
  } finally {
    await smtp.close();
  }
}


test('a member resets a forgotten password through the emailed link and still proves the second factor', TIMEOUT, (t) =>
  withClinic(t, async ({ server, page, smtp }) => {
    const authenticator = await enrollAuthenticatorThroughApi(server, LEE, PASSWORD);

    // Under the password step, "Forgot your password?" keeps the address typed.
    await open(page, `${server.baseUrl}/login`, server);
    await fill(page, 'Email', LEE);
    await click(page, 'Continue');
    await expectPath(page, '/login/password');
    await page.getByRole('link', { name: 'Forgot your password?', exact: true }).click();
    await expectPath(page, '/login/forgot-password');
    await expectHeading(page, 'Forgot your password?');
    assert.equal(await field(page, 'Email').inputValue(), LEE);
    await click(page, 'Send reset link');
    await expectHeading(page, 'Check your email');
    await expectText(page, SENT);

    // The email holds the link (on this server) and a plain explanation only.
    const mail = await emailTo(smtp, LEE, RESET_SUBJECT);
    assert.deepEqual(mail.to, [LEE]);
    const link = mail.text.split(/\s+/).find((w) => w.includes('/reset/'));
    assert.ok(link, `a reset link in: ${mail.text}`);
    assert.equal(new URL(link).origin, server.baseUrl);
    assert.equal((mail.text.match(/https?:\/\//g) ?? []).length, 1, `only the link: ${mail.text}`);

    // An address without an account gets the very same answer, and no email.
    await open(page, `${server.baseUrl}/login/forgot-password`, server);
    await fill(page, 'Email', 'nobody@riverside.test');
    await click(page, 'Send reset link');
    await expectHeading(page, 'Check your email');
    await expectText(page, SENT);

    // The link: a new password, then signing in with it asks for the authenticator.
    await open(page, link, server);
    await expectHeading(page, 'Choose a new password');
    await setNewPassword(page, NEW_PASSWORD, 'Set password');
    await expectPath(page, '/login');
    await expectText(page, 'Your password is set.');
    await signIn(page, LEE, NEW_PASSWORD);
    await expectPath(page, '/login/verify');
    await expectText(page, 'Enter the 6-digit code from your authenticator app.');
    await fill(page, 'Verification code', await authenticator.code());
    await click(page, 'Continue');
    await expectPath(page, '/account');
    await emailTo(smtp, LEE, CHANGED_SUBJECT);
    assert.ok(
      !smtp.messages().some((m) => m.to.includes('nobody@riverside.test')),
      'nothing went to the address without an account',
    );

    // The link worked once.
    await open(page, link, server);
    await expectText(page, 'This link has already been used or has expired.');
  }),
);

test('a member changes the password from the account page; the other browser is signed out', TIMEOUT, (t) =>
  withClinic(t, async ({ server, page, smtp }) => {
    const authenticator = await enrollAuthenticatorThroughApi(server, NURSE, PASSWORD);
    const signInWithCode = async (p, password) => {
      await open(p, `${server.baseUrl}/login`, server);
      await signIn(p, NURSE, password);
      await expectPath(p, '/login/verify');
      await fill(p, 'Verification code', await authenticator.code());
      await click(p, 'Continue');
      await expectPath(p, '/account');
    };
    const other = await launchBrowser();
    try {
      await signInWithCode(other.page, PASSWORD);
      await signInWithCode(page, PASSWORD);

      // The code of this sign-in is fresh: no second proof before the form.
      await page.getByRole('link', { name: 'Change password', exact: true }).click();
      await expectPath(page, '/account/password');
      await expectHeading(page, 'Change password');
      await expectText(page, 'Apps that use your account');
      // A wrong current password is refused, and nothing changes.
      await fill(page, 'Current password', 'not my password at all');
      await setNewPassword(page, NEW_PASSWORD, 'Change password');
      await expectText(page, 'Your current password is not correct.');
      await fill(page, 'Current password', PASSWORD);
      await setNewPassword(page, NEW_PASSWORD, 'Change password');
      await expectPath(page, '/account');
      await expectText(page, 'Your password is changed.');
      const notice = await emailTo(smtp, NURSE, CHANGED_SUBJECT);
      assert.ok(!/https?:\/\//.test(notice.text), `no link in the notice: ${notice.text}`);

      // The other browser is signed out; this one signs out and in with the new password.
      await open(other.page, `${server.baseUrl}/account`, server);
      await expectPath(other.page, '/login');
      await signOut(page);
      await expectPath(page, '/login');
      await signInWithCode(page, NEW_PASSWORD);
    } finally {
      await other.close();
    }
  }),
);
