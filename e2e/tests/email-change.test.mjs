// "Change email" in the browser: a member with an authenticator app asks to change
// their sign-in email on the account page; the new address gets a link and the old
// one a notice; nothing changes until the link's page is confirmed (here from a
// browser that is not signed in); then the new address signs in and the old one
// does not, and both addresses are told. The link works once.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { enrollAuthenticatorThroughApi } from '../lib/api.mjs';
import { emailTo, smtpSettings, startSmtpCapture } from '../lib/capture.mjs';
import { launchBrowser, withServerAndBrowser } from '../lib/server.mjs';
import { click, expectHeading, expectPath, expectText, fill, open, signIn, signOut } from '../lib/pages.mjs';

const TIMEOUT = { timeout: 180_000 };
const ORG = 'riverside-clinic';
const PASSWORD = 'correct horse battery staple';
const LEE = 'dr.lee@riverside.test';
const NEW = 'lee@hillside.test';


test('a member changes the sign-in email through the link sent to the new address', TIMEOUT, async (t) => {
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
        server.cli(['member', 'add', '--org', ORG, '--email', LEE, '--role', 'provider', '--password-stdin'], {
          stdin: `${PASSWORD}\n`,
        });
        const authenticator = await enrollAuthenticatorThroughApi(server, LEE, PASSWORD);
        const signInWithCode = async (p, email) => {
          await open(p, `${server.baseUrl}/login`, server);
          await signIn(p, email, PASSWORD);
          await expectPath(p, '/login/verify');
          await fill(p, 'Verification code', await authenticator.code());
          await click(p, 'Continue');
          await expectPath(p, '/account');
        };
        await signInWithCode(page, LEE);

        // The code of this sign-in is fresh: no second proof before the form.
        await page.getByRole('link', { name: 'Change email', exact: true }).click();
        await expectPath(page, '/account/email');
        await expectHeading(page, 'Change email');
        await expectText(page, LEE);
        // A wrong current password is refused, and nothing is sent.
        await fill(page, 'New email', NEW);
        await fill(page, 'Current password', 'not my password at all');
        await click(page, 'Send confirmation link');
        await expectText(page, 'Your current password is not correct.');
        await fill(page, 'New email', NEW);
        await fill(page, 'Current password', PASSWORD);
        await click(page, 'Send confirmation link');
        await expectPath(page, '/account');
        await expectText(page, 'We sent a link to your new address.');
        await expectText(page, `Waiting for you to confirm ${NEW}`);

        // The link goes to the new address; the old one is told, with the new one masked.
        const mail = await emailTo(smtp, NEW, 'Confirm your new Riverside Clinic sign-in email');
        assert.deepEqual(mail.to, [NEW]);
        const link = mail.text.split(/\s+/).find((w) => w.includes('/account/email/confirm?token='));
        assert.ok(link, `a confirm link in: ${mail.text}`);
        assert.equal(new URL(link).origin, server.baseUrl);
        const notice = await emailTo(smtp, LEE, 'Change of your Riverside Clinic sign-in email requested');
        assert.ok(notice.text.includes('l•••@hillside.test') && !notice.text.includes(NEW), notice.text);
        assert.ok(!/https?:\/\//.test(notice.text), `no link in the notice: ${notice.text}`);

        // Until the link is confirmed the old address signs in, the new one does not.
        const other = await launchBrowser();
        try {
          await open(other.page, `${server.baseUrl}/login`, server);
          await signIn(other.page, NEW, PASSWORD);
          await expectPath(other.page, '/login/password');
          await expectText(other.page, 'Email or password is incorrect.');

          // Opening the link changes nothing; its button does, without a session.
          await open(other.page, link, server);
          await expectHeading(other.page, 'Confirm new email');
          await expectText(other.page, NEW);
          await open(page, `${server.baseUrl}/account`, server);
          await expectText(page, `Waiting for you to confirm ${NEW}`);
          await click(other.page, 'Confirm new email');
          await expectHeading(other.page, 'Your sign-in email is changed');
          await emailTo(smtp, LEE, 'Your Riverside Clinic sign-in email was changed');
          await emailTo(smtp, NEW, 'This is now your Riverside Clinic sign-in email');

          // The link worked once.
          await open(other.page, link, server);
          await expectText(other.page, 'This link was already used');
        } finally {
          await other.close();
        }

        // This session stayed, with the new address; the new address signs in, the old one no longer.
        await open(page, `${server.baseUrl}/account`, server);
        await expectText(page, NEW);
        await signOut(page);
        await expectPath(page, '/login');
        await signIn(page, LEE, PASSWORD);
        await expectPath(page, '/login/password');
        await expectText(page, 'Email or password is incorrect.');
        await signInWithCode(page, NEW);
      },
      { env },
    );
  } finally {
    await smtp.close();
  }
});
