// clinic-auth as an OpenID Connect provider, proved with an independent, certified
// relying-party library: small clinic apps (lib/rp.mjs) built on `openid-client` and
// `jose` sign members in through the real sign-in pages in Chromium — code flow with
// PKCE, SSO between two apps, step-up to a second factor, max_age, prompt=none,
// RP-initiated logout and back-channel logout after "Sign out everywhere".
//
// Each test starts its own server (fresh data directory) and its own apps; the apps
// are on http://localhost:PORT, another site than the server's http://127.0.0.1:PORT.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Authenticator, enrollAuthenticatorThroughApi } from '../lib/api.mjs';
import { launchBrowser, withServerAndBrowser } from '../lib/server.mjs';
import {
  click,
  expectPath,
  expectText,
  fill,
  open,
  openMember,
  reauthenticate,
  setUpAuthenticatorByKey,
  signIn,
  waitVisible,
} from '../lib/pages.mjs';
import { ACR, BACKCHANNEL_LOGOUT_EVENT, startApp, trackNavigations } from '../lib/rp.mjs';

const TIMEOUT = { timeout: 180_000 };
const ORG_NAME = 'Riverside Clinic';
const PASSWORD = 'correct horse battery staple 42';
const LEE = 'dr.lee@riverside.test';
const ADMIN = 'admin@riverside.test';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The clinic, through the CLI; `mfa`: the MFA mode to enable ('optional', 'required'), if any. */
function createClinic(server, { mfa } = {}) {
  const org = server.cli(['org', 'create', '--name', ORG_NAME, '--kind', 'clinic']);
  assert.ok(org?.id, `org create printed no id: ${JSON.stringify(org)}`);
  if (mfa) {
    const set = server.cli(['org', 'mfa', '--org', org.id, '--enable', '--mode', mfa]);
    assert.equal(set?.mfa?.mode, mfa, `org mfa: ${JSON.stringify(set)}`);
  }
  return org;
}

/** A member with a password, through the CLI. */
function addMember(server, org, email, role = 'provider') {
  const member = server.cli(['member', 'add', '--org', org.id, '--email', email, '--role', role, '--password-stdin'], {
    stdin: `${PASSWORD}\n`,
  });
  assert.ok(member, `member add printed nothing for ${email}`);
  return member;
}

/** Waits for one of the server's pages (not an app's page of the same path). */
async function expectServerPage(page, server, path) {
  await expectPath(page, path);
  assert.equal(new URL(page.url()).origin, server.baseUrl, `expected ${path} on the server, got ${page.url()}`);
}

/** Starts a sign-in at the app (with `params` for the authorization request) that ends on the server's sign-in page. */
async function startSignIn(page, server, app, params = {}) {
  await open(page, app.loginUrl(params));
  await expectServerPage(page, server, '/login');
}

/** The member signs in with the password alone, starting at the app; returns the app's validated sign-in. */
async function signInThroughApp(page, server, app, email) {
  const before = app.resultCount();
  await startSignIn(page, server, app);
  await signIn(page, email, PASSWORD);
  return app.expectSignedIn(page, { after: before });
}

/** What every ID token from this server says, whoever signed in how. */
function assertIdToken(server, app, result, email) {
  const c = result.claims;
  const why = JSON.stringify(c, null, 2);
  assert.equal(c.iss, server.baseUrl, `iss: ${why}`);
  const aud = Array.isArray(c.aud) ? c.aud : [c.aud];
  assert.ok(aud.includes(app.clientId), `aud holds the client_id ${app.clientId}: ${why}`);
  assert.equal(typeof c.sub, 'string', `sub: ${why}`);
  assert.ok(c.sub.length > 0, `sub is empty: ${why}`);
  assert.ok(!c.sub.toLowerCase().includes(email.toLowerCase()) && !c.sub.includes('@'), `sub is not the email: ${why}`);
  for (const name of ['exp', 'iat', 'auth_time']) assert.equal(typeof c[name], 'number', `${name}: ${why}`);
  assert.ok(c.exp > c.iat, `exp after iat: ${why}`);
  assert.ok(c.auth_time <= c.iat + 1, `auth_time no later than iat: ${why}`);
  assert.equal(c.nonce, result.requested.nonce, `nonce: ${why}`);
  assert.equal(typeof c.sid, 'string', `sid: ${why}`);
  assert.ok(c.sid.length > 0, `sid is empty: ${why}`);
  assert.ok(Array.isArray(c.amr) && c.amr.length > 0, `amr: ${why}`);
  assert.ok(Object.values(ACR).includes(c.acr), `acr is one of clinic-auth's: ${why}`);
  assert.equal(c.account_kind, 'member', `account_kind: ${why}`);
  assert.equal(c.realm, 'staff', `realm: ${why}`);
  // Signed with RS256 and a key the JWKS names (jose checked the signature with it).
  assert.equal(result.idTokenHeader.alg, 'RS256', `alg of the ID token: ${JSON.stringify(result.idTokenHeader)}`);
  assert.equal(typeof result.idTokenHeader.kid, 'string', `kid of the ID token: ${JSON.stringify(result.idTokenHeader)}`);
  // The authorization response came back with the state and the issuer (RFC 9207).
  assert.equal(result.params.state, result.requested.state, `state: ${JSON.stringify(result.params)}`);
  assert.equal(result.params.iss, server.baseUrl, `iss of the authorization response: ${JSON.stringify(result.params)}`);
}

function assertAmrIncludes(claims, methods) {
  for (const m of methods) assert.ok(claims.amr.includes(m), `amr ${JSON.stringify(claims.amr)} includes "${m}"`);
}

test('an app signs a member in with code + PKCE through the sign-in pages and the authenticator app', TIMEOUT, (t) =>
  withServerAndBrowser(t, async ({ server, page }) => {
    const org = createClinic(server, { mfa: 'required' });
    addMember(server, org, LEE);
    const authenticator = await enrollAuthenticatorThroughApi(server, LEE, PASSWORD);
    const app = await startApp(server, { name: 'Riverside Charts', org: org.id });
    t.after(() => app.close());

    // Discovery announces the endpoints where the contract puts them.
    const m = app.metadata;
    assert.equal(m.issuer, server.baseUrl);
    for (const [key, path] of [
      ['authorization_endpoint', '/oauth2/authorize'],
      ['token_endpoint', '/oauth2/token'],
      ['userinfo_endpoint', '/oauth2/userinfo'],
      ['jwks_uri', '/oauth2/jwks'],
      ['revocation_endpoint', '/oauth2/revoke'],
      ['introspection_endpoint', '/oauth2/introspect'],
      ['end_session_endpoint', '/oauth2/logout'],
    ]) {
      assert.equal(m[key], `${server.baseUrl}${path}`, `discovery's ${key}: ${JSON.stringify(m, null, 2)}`);
    }
    assert.ok(m.code_challenge_methods_supported?.includes('S256'), `S256 is announced: ${JSON.stringify(m)}`);

    // The app sends the browser to the provider, which asks for the sign-in.
    const nav = trackNavigations(page);
    const before = app.resultCount();
    await startSignIn(page, server, app);
    const authorize = nav.urls().map((u) => new URL(u)).find((u) => u.origin === server.baseUrl && u.pathname === '/oauth2/authorize');
    assert.ok(authorize, `the browser went through ${server.baseUrl}/oauth2/authorize: ${JSON.stringify(nav.urls())}`);
    assert.equal(authorize.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(authorize.searchParams.get('response_type'), 'code');

    // Password, then the authenticator app's code, on the server's own pages.
    await signIn(page, LEE, PASSWORD);
    await expectServerPage(page, server, '/login/verify');
    await fill(page, 'Verification code', await authenticator.code());
    await click(page, 'Continue');

    // Back at the app with a validated ID token.
    const result = await app.expectSignedIn(page, { after: before });
    assertIdToken(server, app, result, LEE);
    const c = result.claims;
    assertAmrIncludes(c, ['pwd', 'otp', 'mfa']);
    assert.equal(c.acr, ACR.mfa, `acr: ${JSON.stringify(c)}`);
    assert.equal(c.org_id, org.id, `org_id: ${JSON.stringify(c)}`);
    assert.equal(c.org_name, ORG_NAME, `org_name: ${JSON.stringify(c)}`);
    assert.equal(c.role, 'provider', `role: ${JSON.stringify(c)}`);
    assert.equal(c.email, LEE, `email (scope email): ${JSON.stringify(c)}`);
    assert.equal(typeof c.email_verified, 'boolean', `email_verified (scope email): ${JSON.stringify(c)}`);
    assert.equal(new URL(page.url()).origin, app.baseUrl, 'the browser ends at the app');

    // UserInfo, with the access token, is about the same account.
    const info = await app.userinfo(result);
    assert.equal(info.sub, c.sub, `userinfo: ${JSON.stringify(info)}`);
  }),
);

test('a second app signs the same browser in without a sign-in page (SSO)', TIMEOUT, (t) =>
  withServerAndBrowser(t, async ({ server, page }) => {
    const org = createClinic(server);
    addMember(server, org, LEE);
    const charts = await startApp(server, { name: 'Riverside Charts' });
    t.after(() => charts.close());
    const billing = await startApp(server, { name: 'Riverside Billing', auth: 'none' });
    t.after(() => billing.close());

    const first = await signInThroughApp(page, server, charts, LEE);
    assertIdToken(server, charts, first, LEE);

    // The second app (a public client) gets its sign-in from the session alone.
    const nav = trackNavigations(page);
    const before = billing.resultCount();
    await open(page, billing.loginUrl());
    const second = await billing.expectSignedIn(page, { after: before });
    const atServer = nav.pathsAt(server.baseUrl);
    assert.ok(atServer.includes('/oauth2/authorize'), `the browser went through /oauth2/authorize: ${JSON.stringify(nav.urls())}`);
    assert.deepEqual(
      atServer.filter((p) => p.startsWith('/login') || p.startsWith('/portal') || p.startsWith('/account')),
      [],
      `the browser saw no sign-in page: ${JSON.stringify(nav.urls())}`,
    );

    assertIdToken(server, billing, second, LEE);
    const [a, b] = [first.claims, second.claims];
    assert.equal(b.sub, a.sub, 'the same account for both apps');
    assert.equal(b.sid, a.sid, 'the same session for both apps');
    assert.equal(b.auth_time, a.auth_time, 'the same sign-in for both apps');
    assert.equal(b.acr, ACR.password);
    assert.deepEqual(b.amr, ['pwd']);
    assert.ok(!(Array.isArray(b.aud) ? b.aud : [b.aud]).includes(charts.clientId), 'the second token is not for the first app');
    assert.equal((await billing.userinfo(second)).sub, a.sub);
  }),
);

test('an app asks for a second factor (step-up), which leads to its setup, and then for a fresh sign-in (max_age)', TIMEOUT, (t) =>
  withServerAndBrowser(t, async ({ server, page }) => {
    // 2FA is optional at this clinic (setting it up is allowed): a member without any
    // factor signs in with a password alone.
    const org = createClinic(server, { mfa: 'optional' });
    addMember(server, org, LEE);
    const app = await startApp(server, { name: 'Riverside Charts' });
    t.after(() => app.close());

    const first = await signInThroughApp(page, server, app, LEE);
    assertIdToken(server, app, first, LEE);
    assert.equal(first.claims.acr, ACR.password, JSON.stringify(first.claims));
    assert.deepEqual(first.claims.amr, ['pwd']);

    // The app asks for MFA. The member has no factor yet: the browser is led to set
    // up an authenticator app, and a code typed from it proves it in this session.
    const nav = trackNavigations(page);
    let before = app.resultCount();
    await open(page, app.loginUrl({ acr_values: ACR.mfa }));
    assert.notEqual(
      new URL(page.url()).origin,
      app.baseUrl,
      `acr_values=mfa went straight back to the app with a password-only session (${JSON.stringify(app.lastResult())})`,
    );
    const authenticator = new Authenticator(await setUpAuthenticatorByKey(page, { path: '/account/2fa/setup' }));
    assert.equal(new URL(page.url()).origin, server.baseUrl, `the setup page is the server's: ${page.url()}`);
    authenticator.usedNow();
    // The recovery code page's Continue (a link) goes on with the app's authorization request.
    const next = page.getByRole('link', { name: 'Continue', exact: true });
    await waitVisible(page, next, 'a "Continue" link on the recovery code page');
    const nextHref = new URL(await next.first().getAttribute('href'), page.url());
    assert.equal(nextHref.origin, server.baseUrl, `Continue stays on the server: ${nextHref.href}`);
    assert.equal(nextHref.pathname, '/oauth2/authorize/resume', `Continue returns to the authorization request: ${nextHref.href}`);
    await next.first().click();
    const stepped = await app.expectSignedIn(page, { after: before });
    assert.ok(
      nav.pathsAt(server.baseUrl).includes('/oauth2/authorize/resume'),
      `the browser went back through /oauth2/authorize/resume: ${JSON.stringify(nav.urls())}`,
    );
    nav.stop();
    assertIdToken(server, app, stepped, LEE);
    assert.equal(stepped.claims.acr, ACR.mfa, JSON.stringify(stepped.claims));
    assertAmrIncludes(stepped.claims, ['otp', 'mfa']);
    assert.equal(stepped.claims.sub, first.claims.sub);
    assert.equal(stepped.claims.sid, first.claims.sid, 'the same session, stepped up');

    // max_age=1, two seconds later: the password again, then (now that the member has
    // a factor) the code; a newer auth_time.
    await sleep(2_000);
    before = app.resultCount();
    await open(page, app.loginUrl({ max_age: 1 }));
    assert.equal(new URL(page.url()).origin, server.baseUrl, `max_age=1 asks for a sign-in, not ${page.url()}`);
    assert.ok(new URL(page.url()).pathname.startsWith('/login'), `max_age=1 leads to a sign-in page, not ${page.url()}`);
    await reauthenticate(page, LEE, PASSWORD);
    await expectServerPage(page, server, '/login/verify');
    await fill(page, 'Verification code', await authenticator.code());
    await click(page, 'Continue');
    const fresh = await app.expectSignedIn(page, { after: before });
    assertIdToken(server, app, fresh, LEE);
    assert.ok(
      fresh.claims.auth_time > first.claims.auth_time,
      `auth_time ${fresh.claims.auth_time} is later than ${first.claims.auth_time}`,
    );
    assert.ok(
      fresh.claims.auth_time > stepped.claims.auth_time,
      `auth_time ${fresh.claims.auth_time} is later than the step-up's ${stepped.claims.auth_time}`,
    );
    assert.equal(fresh.claims.acr, ACR.mfa, JSON.stringify(fresh.claims));
    assertAmrIncludes(fresh.claims, ['pwd', 'otp', 'mfa']);
    assert.equal(fresh.claims.sub, first.claims.sub);
  }),
);

test('prompt=none without a session answers login_required to the app', TIMEOUT, (t) =>
  withServerAndBrowser(t, async ({ server, page }) => {
    const app = await startApp(server, { name: 'Riverside Charts' });
    t.after(() => app.close());

    const nav = trackNavigations(page);
    const before = app.resultCount();
    await open(page, app.loginUrl({ prompt: 'none' }));
    const result = await app.waitForResult(page, { after: before });
    // openid-client checked state and iss before it read the error.
    assert.equal(result.ok, false, JSON.stringify(result));
    assert.equal(result.error, 'login_required', JSON.stringify(result, null, 2));
    assert.equal(result.params.state, result.requested.state);
    assert.equal(result.params.code, undefined, 'no code with an error');
    assert.deepEqual(
      nav.pathsAt(server.baseUrl).filter((p) => p !== '/oauth2/authorize'),
      [],
      `the browser saw no page of the server: ${JSON.stringify(nav.urls())}`,
    );
  }),
);

test('RP-initiated logout ends the session and returns to the app with its state', TIMEOUT, (t) =>
  withServerAndBrowser(t, async ({ server, page }) => {
    const org = createClinic(server);
    addMember(server, org, LEE);
    const app = await startApp(server, { name: 'Riverside Charts', auth: 'client_secret_post' });
    t.after(() => app.close());

    const signedIn = await signInThroughApp(page, server, app, LEE);
    assertIdToken(server, app, signedIn, LEE);

    const nav = trackNavigations(page);
    const after = app.postLogouts().length;
    await open(page, app.logoutUrl());
    const landed = await app.waitForPostLogout(page, { after });
    assert.ok(landed.ok, `the post-logout redirect came back with the app's state: ${JSON.stringify(landed)}`);
    const endSession = nav
      .urls()
      .map((u) => new URL(u))
      .find((u) => u.origin === server.baseUrl && u.pathname === '/oauth2/logout');
    assert.ok(endSession, `the browser went through /oauth2/logout: ${JSON.stringify(nav.urls())}`);
    assert.equal(endSession.searchParams.get('id_token_hint'), signedIn.tokens.id_token);
    assert.equal(endSession.searchParams.get('post_logout_redirect_uri'), app.postLogoutRedirectUri);

    // The session is over: the app's next sign-in asks for the password,
    await startSignIn(page, server, app);
    // and prompt=none says so.
    const before = app.resultCount();
    await open(page, app.loginUrl({ prompt: 'none' }));
    const silent = await app.waitForResult(page, { after: before });
    assert.equal(silent.error, 'login_required', JSON.stringify(silent, null, 2));
  }),
);

test('"Sign out everywhere" sends a verified back-channel logout to the app the member used', TIMEOUT, (t) =>
  withServerAndBrowser(t, async ({ server, page }) => {
    const org = createClinic(server);
    addMember(server, org, ADMIN, 'admin');
    addMember(server, org, LEE);
    const charts = await startApp(server, { name: 'Riverside Charts', backchannel: true });
    t.after(() => charts.close());
    // Registered for back-channel logouts too, but never used by the member.
    const billing = await startApp(server, { name: 'Riverside Billing', backchannel: true });
    t.after(() => billing.close());
    assert.equal(charts.metadata.backchannel_logout_supported, true, JSON.stringify(charts.metadata));

    const signedIn = await signInThroughApp(page, server, charts, LEE);
    assertIdToken(server, charts, signedIn, LEE);

    // The clinic admin, in their own browser: Users → Dr. Lee → Sign out everywhere.
    const admin = await launchBrowser();
    try {
      await open(admin.page, `${server.baseUrl}/login`, server);
      await signIn(admin.page, ADMIN, PASSWORD);
      await expectPath(admin.page, '/account');
      await openMember(admin.page, server, LEE);
      await click(admin.page, 'Sign out everywhere');
      await expectText(admin.page, 'out everywhere?');
      await click(admin.page, 'Sign out everywhere');
      await expectText(admin.page, 'The member was signed out everywhere, clinic apps included.');
    } finally {
      await admin.close();
    }

    const logout = await charts.waitForLogout({ after: 0 });
    assert.ok(logout.ok, `the logout token was refused: ${charts.describe()}`);
    assert.match(logout.contentType, /^application\/x-www-form-urlencoded/i);
    const c = logout.claims;
    const why = JSON.stringify({ header: logout.header, claims: c }, null, 2);
    assert.equal(c.iss, server.baseUrl, why);
    assert.ok((Array.isArray(c.aud) ? c.aud : [c.aud]).includes(charts.clientId), `aud: ${why}`);
    assert.equal(c.sub, signedIn.claims.sub, `sub is the ID token's: ${why}`);
    assert.equal(c.sid, signedIn.claims.sid, `sid is the ID token's: ${why}`);
    assert.deepEqual(c.events, { [BACKCHANNEL_LOGOUT_EVENT]: {} }, `events: ${why}`);
    assert.equal(c.nonce, undefined, `no nonce: ${why}`);
    assert.equal(typeof c.jti, 'string', `jti: ${why}`);
    assert.ok(c.exp > c.iat, `exp after iat: ${why}`);

    // One delivery, and none to the app the member never signed in to.
    await sleep(1_500);
    assert.equal(charts.logouts().length, 1, `one logout for one session: ${charts.describe()}`);
    assert.deepEqual(billing.logouts(), [], `the unused app was told nothing: ${billing.describe()}`);

    // The member's browser is signed out: the app's next sign-in asks for the password.
    await startSignIn(page, server, charts);
  }),
);
