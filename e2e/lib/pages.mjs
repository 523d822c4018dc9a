// Page helpers that speak the words on the pages (labels, button names, texts),
// never CSS classes. Every wait that times out says what the page showed instead.

import assert from 'node:assert/strict';
import * as OTPAuth from 'otpauth';

const BODY_EXCERPT = 1_500;

export async function describePage(page) {
  let text = '';
  try {
    text = (await page.locator('body').innerText({ timeout: 2_000 })).replace(/\n{2,}/g, '\n').trim();
  } catch {
    text = '(no readable body)';
  }
  if (text.length > BODY_EXCERPT) text = `${text.slice(0, BODY_EXCERPT)}…`;
  return `at ${page.url()}\n--- page text ---\n${text}\n---`;
}

/** Waits until `locator` is visible; on timeout fails with `what` and what the page showed. */
export async function waitVisible(page, locator, what, timeout) {
  try {
    await locator.first().waitFor({ state: 'visible', timeout });
  } catch (err) {
    if (err?.name !== 'TimeoutError') throw err;
    assert.fail(`expected ${what}, ${await describePage(page)}`);
  }
  return locator;
}

/** The form control whose label contains `label` (case-insensitive). */
export function field(page, label) {
  return page.getByLabel(label);
}

/** The button whose accessible name is exactly `name`. */
export function button(page, name) {
  return page.getByRole('button', { name, exact: true });
}

export async function fill(page, label, value) {
  const input = field(page, label);
  await waitVisible(page, input, `a field labelled "${label}"`);
  await input.fill(value);
}

export async function click(page, name) {
  const b = button(page, name);
  await waitVisible(page, b, `a button named "${name}"`);
  await b.click();
}

export async function expectText(page, text, timeout) {
  await waitVisible(page, page.getByText(text), `the text "${text}"`, timeout);
}

export async function expectHeading(page, text) {
  await waitVisible(page, page.getByRole('heading', { level: 1, name: text }), `an <h1> containing "${text}"`);
}

/** Waits until the page's URL path is exactly `path` (query string ignored). */
export async function expectPath(page, path, timeout = 10_000) {
  try {
    await page.waitForURL((url) => url.pathname === path, { timeout });
  } catch (err) {
    if (err?.name !== 'TimeoutError') throw err;
    assert.fail(`expected to land on ${path}, ${await describePage(page)}`);
  }
}

/** Opens `url` and fails if the server answered with a 5xx or the link points elsewhere. */
export async function open(page, url, server) {
  if (server) {
    assert.equal(
      new URL(url).origin,
      server.baseUrl,
      `link ${url} does not point at the server under test (${server.baseUrl})`,
    );
  }
  const res = await page.goto(url);
  assert.ok(res, `no response for ${url}`);
  assert.ok(res.status() < 500, `GET ${url} answered ${res.status()}, ${await describePage(page)}`);
  return res;
}

/** The identifier-first sign-in on the current login page: Email → Continue → Password → Continue. */
export async function signIn(page, email, password) {
  await fill(page, 'Email', email);
  await click(page, 'Continue');
  await fill(page, 'Password', password);
  await click(page, 'Continue');
}

/** Fills "New password" and "Confirm password" and presses `buttonName`. */
export async function setNewPassword(page, password, buttonName) {
  await fill(page, 'New password', password);
  await fill(page, 'Confirm password', password);
  await click(page, buttonName);
}

/** Presses "Sign out", which may be a button (a POST form) or a link. */
export async function signOut(page) {
  const control = page
    .getByRole('button', { name: 'Sign out', exact: true })
    .or(page.getByRole('link', { name: 'Sign out', exact: true }));
  await waitVisible(page, control, 'a "Sign out" button or link');
  await control.first().click();
}

/** Asserts the autocomplete attribute of the field labelled `label` has the token `token`. */
export async function expectAutocomplete(page, label, token) {
  const input = field(page, label);
  await waitVisible(page, input, `a field labelled "${label}"`);
  const value = await input.getAttribute('autocomplete');
  const tokens = (value ?? '').trim().toLowerCase().split(/\s+/);
  assert.ok(
    tokens.includes(token),
    `field "${label}" at ${page.url()} has autocomplete=${JSON.stringify(value)}, expected "${token}"`,
  );
}

/**
 * Asserts every visible form control on the page (not hidden, not a button) has a
 * visible, non-empty <label>. Returns how many controls were checked.
 */
export async function expectVisibleLabels(page) {
  const { checked, unlabelled } = await page.evaluate(() => {
    const shown = (el) => {
      const r = el.getBoundingClientRect();
      const s = getComputedStyle(el);
      return r.width > 1 && r.height > 1 && s.visibility !== 'hidden' && s.display !== 'none' && s.opacity !== '0';
    };
    const skip = new Set(['hidden', 'submit', 'button', 'reset', 'image']);
    const controls = [...document.querySelectorAll('input, select, textarea')].filter(
      (el) => !skip.has((el.getAttribute('type') || '').toLowerCase()) && shown(el),
    );
    const unlabelled = controls
      .filter((el) => ![...(el.labels ?? [])].some((l) => shown(l) && l.innerText.trim() !== ''))
      .map((el) => el.outerHTML.slice(0, 200));
    return { checked: controls.length, unlabelled };
  });
  assert.deepEqual(unlabelled, [], `form controls without a visible label at ${page.url()}`);
  return checked;
}

/**
 * A sign-in that may open at the email step or, for someone the server already knows
 * (signing in again), at the password step: fills what is asked, up to the password.
 */
export async function reauthenticate(page, email, password) {
  const emailField = field(page, 'Email');
  const passwordField = field(page, 'Password');
  await waitVisible(page, emailField.or(passwordField), 'a sign-in page asking for the email or the password');
  if (await emailField.first().isVisible()) {
    await signIn(page, email, password);
  } else {
    await fill(page, 'Password', password);
    await click(page, 'Continue');
  }
}

/** In the clinic console: Users → search → View, for `email`; ends on the member's page. */
export async function openMember(page, server, email) {
  await open(page, `${server.baseUrl}/admin/users`, server);
  await expectHeading(page, 'Users');
  await fill(page, 'Search', email.split('@')[0]);
  await click(page, 'Search');
  const view = page.getByRole('link', { name: `View ${email}`, exact: true });
  await waitVisible(page, view, `a "View" link for ${email}`);
  assert.equal(await page.getByRole('link', { name: /^View / }).count(), 1, 'the search narrows the list to one member');
  await view.click();
  await expectHeading(page, email);
}

/**
 * On the setup page (`path`: the one during sign-in, or `/account/2fa/setup` from the
 * account page), as someone whose phone cannot scan: opens "Trouble scanning?",
 * types the key into an authenticator (the independent `otpauth` package), enters
 * its code and presses "Enable 2FA". Returns the authenticator, for later codes.
 */
export async function setUpAuthenticatorByKey(page, { path = '/login/setup' } = {}) {
  await expectPath(page, path);
  await page.locator('details summary', { hasText: 'Trouble scanning?' }).click();
  const key = (await page.locator('#setup-key').innerText()).trim().replace(/ /g, '');
  const totp = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(key), digits: 6, period: 30, algorithm: 'SHA1' });
  await fill(page, 'Verification code', totp.generate());
  await click(page, 'Enable 2FA');
  await expectHeading(page, 'Save your recovery code');
  return totp;
}

/** Fails when the page scrolls sideways or `selector` sticks out of its container: a
 *  table that fits the window (1280 px wide in these tests) wraps its cells instead. */
export async function expectFitsWidth(page, selector, what) {
  const m = await page.evaluate((sel) => {
    const el = document.querySelector(sel);
    const box = el.getBoundingClientRect();
    const parent = el.parentElement.getBoundingClientRect();
    return {
      window: window.innerWidth,
      page: document.documentElement.scrollWidth,
      right: Math.round(box.right),
      parentRight: Math.round(parent.right),
    };
  }, selector);
  assert.ok(m.page <= m.window, `${what}: the page scrolls sideways (${m.page} px wide in a ${m.window} px window)`);
  assert.ok(m.right <= m.parentRight + 1, `${what}: ends at ${m.right} px, outside its box (${m.parentRight} px)`);
}
