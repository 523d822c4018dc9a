// The grace period for Mandatory 2FA, as a clinic rolls it out: the admin turns on
// Mandatory 2FA with 7 days to set it up; a member signs in, reads how many days are
// left, chooses "Remind me later" and lands signed in; the admin sees the member as
// "Not set up" on the Users list and emails them a reminder (captured over SMTP).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { emailTo, smtpSettings, startSmtpCapture } from '../lib/capture.mjs';
import { withServerAndBrowser } from '../lib/server.mjs';
import { click, expectHeading, expectPath, expectText, fill, open, signIn, signOut } from '../lib/pages.mjs';

const TIMEOUT = { timeout: 180_000 };
const ORG = 'riverside-clinic';
const PASSWORD = 'correct horse battery staple';
const ADMIN = 'admin@riverside.test';
const NURSE = 'nurse@riverside.test';
const REMINDER_SUBJECT = 'Set up two-factor authentication for Riverside Clinic';


test('a clinic gives members 7 days to set up 2FA, a member chooses Remind me later, the admin reminds them', TIMEOUT, async (t) => {
  const smtp = await startSmtpCapture();
  const env = {
    ...smtpSettings(smtp),
  };
  try {
    await withServerAndBrowser(
      t,
      async ({ server, page }) => {
        server.cli(['org', 'create', '--name', 'Riverside Clinic', '--kind', 'clinic']);
        server.cli(['org', 'mfa', '--org', ORG, '--enable', '--mode', 'optional']);
        for (const [email, role] of [
          [ADMIN, 'admin'],
          [NURSE, 'staff'],
        ]) {
          server.cli(['member', 'add', '--org', ORG, '--email', email, '--role', role, '--password-stdin'], {
            stdin: `${PASSWORD}\n`,
          });
        }

        // The admin: Edit Clinic → Mandatory 2FA, grace period 7 days → Save.
        await open(page, `${server.baseUrl}/login`, server);
        await signIn(page, ADMIN, PASSWORD);
        await expectPath(page, '/account');
        await open(page, `${server.baseUrl}/admin/edit`, server);
        await page.getByLabel('Mandatory 2FA').check();
        await fill(page, 'Grace period (days)', '7');
        await click(page, 'Save');
        await expectPath(page, '/admin');
        await expectText(page, 'Saved.');
        assert.match(await page.locator('#grace-period').innerText(), /^7 days \(counted from /);
        await expectText(page, 'Mandatory 2FA with a grace period of 7 days');
        await open(page, `${server.baseUrl}/account`, server);
        await signOut(page);

        // The member: setup is offered with the days left, and "Remind me later".
        await open(page, `${server.baseUrl}/login`, server);
        await signIn(page, NURSE, PASSWORD);
        await expectPath(page, '/login/setup');
        await expectHeading(page, 'Set up two-factor authentication');
        await expectText(page, 'Your clinic requires two-factor authentication. You have 7 days left to set it up.');
        const later = page.getByRole('button', { name: 'Remind me later', exact: true });
        assert.match((await later.getAttribute('class')) ?? '', /\bsecondary\b/, '"Remind me later" is a secondary button');
        assert.equal(await page.getByRole('button', { name: 'Enable 2FA', exact: true }).count(), 1, 'setup is offered');
        await later.click();
        await expectPath(page, '/account');
        await expectText(page, NURSE);
        await signOut(page);

        // The admin is in the grace period too; then the Users list.
        await open(page, `${server.baseUrl}/login`, server);
        await signIn(page, ADMIN, PASSWORD);
        await expectPath(page, '/login/setup');
        await click(page, 'Remind me later');
        await expectPath(page, '/account');
        await open(page, `${server.baseUrl}/admin/users`, server);
        await expectText(page, '2 members have not set up two-factor authentication.');
        const row = page.locator('tr', { hasText: NURSE });
        assert.match(await row.innerText(), /Not set up — 7 days left/);
        await page.getByRole('button', { name: `Send reminder to ${NURSE}`, exact: true }).click();
        await expectPath(page, '/admin/users');
        await expectText(page, 'We emailed the member a reminder to set up two-factor authentication.');
        const mail = await emailTo(smtp, NURSE, REMINDER_SUBJECT);
        assert.match(mail.text, /Riverside Clinic requires two-factor authentication/);
        assert.match(mail.text, /you have 7 days left/);
        assert.match(mail.text, /next time you sign in/);
        assert.ok(mail.text.includes(`Sign in at: ${server.baseUrl}/login`), mail.text);

        // Once a day: "Remind everyone not set up" now emails only the admin and says
        // the nurse was skipped.
        await click(page, 'Remind everyone not set up');
        await expectText(page, `Skipped, already reminded in the last 24 hours: ${NURSE}.`);
        await expectText(page, `We emailed a reminder to set up two-factor authentication to: ${ADMIN}.`);
        await emailTo(smtp, ADMIN, REMINDER_SUBJECT);
        assert.equal(smtp.messages().filter((m) => m.to.includes(NURSE)).length, 1, 'the nurse got one reminder');
      },
      { env },
    );
  } finally {
    await smtp.close();
  }
});
