// A tiny clinic app that signs people in with clinic-auth over OpenID Connect, built
// on an independent, certified relying-party library: `openid-client` (v6) for the
// authorization code flow with PKCE, the ID token, userinfo and RP-initiated logout,
// and `jose` for back-channel logout tokens (and a second check of the ID token).
//
// Each app is a node:http server on 127.0.0.1 with a port of its own, registered as
// its own client with `clinic-auth oidc client create`; several run at once. The
// browser reaches it at http://localhost:PORT, a different site from the server under
// test (http://127.0.0.1:PORT), as an app on its own domain would be: cookies that
// only work same-site are caught. The server posts back-channel logouts to
// http://127.0.0.1:PORT, the address the app listens on.
//
//   const app = await startApp(server, { name: 'Riverside Charts', backchannel: true });
//   const before = app.resultCount();
//   await page.goto(app.loginUrl({ acr_values: ACR.mfa }));
//   …sign in on the server's pages…
//   const { claims } = await app.expectSignedIn(page, { after: before });
//
// What the app saw is kept for the test: every answer at /callback (validated claims
// and tokens, or the error), every back-channel logout (verified or refused), every
// landing after an RP-initiated logout.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import * as jose from 'jose';
import * as client from 'openid-client';
import { describePage, waitVisible } from './pages.mjs';

export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

/** clinic-auth's `acr` values, weakest first. */
export const ACR = Object.freeze({
  password: 'urn:clinic-auth:acr:password',
  mfa: 'urn:clinic-auth:acr:mfa',
  phishingResistant: 'urn:clinic-auth:acr:phishing-resistant',
});

/** How long a redirect back to the app, or a back-channel logout, may take. */
const ARRIVAL_MS = 15_000;
const MAX_BODY = 64 * 1024;
/** Query parameters of the app's /login passed on to the authorization request. */
const PASSED_ON = ['acr_values', 'max_age', 'prompt', 'login_hint', 'ui_locales'];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

function htmlPage(title, body) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body>${body}</body></html>`;
}

function cookies(req) {
  const out = {};
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

function readBody(req) {
  return new Promise((resolveBody, reject) => {
    let size = 0;
    const chunks = [];
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error(`request body over ${MAX_BODY} bytes`));
        req.destroy();
      } else {
        chunks.push(c);
      }
    });
    req.on('end', () => resolveBody(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** What an error thrown by openid-client or jose says, as plain JSON. */
function describeError(err) {
  if (err instanceof client.AuthorizationResponseError) {
    return { error: err.error, error_description: err.error_description };
  }
  const out = { error: 'rp_rejected', message: `${err?.name ?? 'Error'}: ${err?.message ?? err}` };
  if (err?.code) out.code = err.code;
  if (err?.error) out.oauth_error = err.error;
  if (err?.error_description) out.oauth_error_description = err.error_description;
  if (err?.status) out.status = err.status;
  if (err?.cause instanceof Error) {
    out.cause = describeError(err.cause);
  } else if (err?.cause !== undefined) {
    try {
      const cause = err.cause instanceof URLSearchParams ? Object.fromEntries(err.cause) : err.cause;
      const text = JSON.stringify(cause, (_, v) => (ArrayBuffer.isView(v) ? `<${v.byteLength} bytes>` : v));
      out.cause = text.length > 2_000 ? `${text.slice(0, 2_000)}…` : JSON.parse(text);
    } catch {
      out.cause = String(err.cause);
    }
  }
  return out;
}

/**
 * Registers an app with `clinic-auth oidc client create … --json` against the server's
 * data directory. Returns `{ client_id, client_secret? }` as the CLI printed it.
 */
export async function registerClient(
  server,
  {
    name,
    redirectUris,
    postLogoutRedirectUris = [],
    backchannelLogoutUri,
    confidential = true,
    org,
    patients = false,
    requireMfa = false,
  },
) {
  const args = ['oidc', 'client', 'create', '--name', name];
  for (const uri of redirectUris) args.push('--redirect-uri', uri);
  for (const uri of postLogoutRedirectUris) args.push('--post-logout-redirect-uri', uri);
  if (backchannelLogoutUri) args.push('--backchannel-logout-uri', backchannelLogoutUri);
  args.push(confidential ? '--confidential' : '--public');
  if (org) args.push('--org', String(org));
  if (patients) args.push('--patients');
  if (requireMfa) args.push('--require-mfa');
  const created = await server.cliAsync(args);
  assert.ok(
    created && typeof created.client_id === 'string' && created.client_id !== '',
    `oidc client create printed no client_id: ${JSON.stringify(created)}`,
  );
  if (confidential) {
    assert.ok(
      typeof created.client_secret === 'string' && created.client_secret !== '',
      `oidc client create --confidential printed no client_secret: ${JSON.stringify(created)}`,
    );
  } else {
    assert.equal(created.client_secret, undefined, `a public client was given a secret: ${JSON.stringify(created)}`);
  }
  return created;
}

/**
 * Starts an app, registers it as a client of `server` and discovers the provider.
 *
 * Options: `name`; `auth`: the token endpoint's client authentication,
 * 'client_secret_basic' (default), 'client_secret_post' or 'none' (a public client);
 * `backchannel`: register /backchannel as its back-channel logout URI; `org`,
 * `patients`, `requireMfa`: passed to the CLI; `scope` (default 'openid email');
 * `host`: the name the browser uses for the app (default: localhost, or 127.0.0.1 when
 * the server itself is on localhost), so that app and server are different sites.
 */
export async function startApp(server, options = {}) {
  const {
    name = 'Clinic App',
    auth = 'client_secret_basic',
    backchannel = false,
    org,
    patients = false,
    requireMfa = false,
    scope = 'openid email',
    host = new URL(server.baseUrl).hostname === 'localhost' ? '127.0.0.1' : 'localhost',
  } = options;
  assert.ok(['client_secret_basic', 'client_secret_post', 'none'].includes(auth), `unknown client authentication ${auth}`);
  const app = new ClinicApp({ name, scope, host });
  await app.listen();
  try {
    const registered = await registerClient(server, {
      name,
      redirectUris: [app.redirectUri],
      postLogoutRedirectUris: [app.postLogoutRedirectUri],
      backchannelLogoutUri: backchannel ? app.backchannelLogoutUri : undefined,
      confidential: auth !== 'none',
      org,
      patients,
      requireMfa,
    });
    await app.discover(server.baseUrl, registered, auth);
  } catch (err) {
    await app.close();
    throw err;
  }
  return app;
}

/**
 * Records every main-frame navigation of `page` (each redirect hop included), for
 * asserting where the browser went: `urls()`, `pathsAt(origin)`, `clear()`, `stop()`.
 */
export function trackNavigations(page) {
  const seen = [];
  const onRequest = (request) => {
    try {
      if (request.isNavigationRequest() && request.frame() === page.mainFrame()) seen.push(request.url());
    } catch {
      // a request without a frame (a service worker's) is no navigation of the page
    }
  };
  page.on('request', onRequest);
  return {
    urls: () => [...seen],
    pathsAt: (origin) => seen.filter((u) => new URL(u).origin === origin).map((u) => new URL(u).pathname),
    clear: () => {
      seen.length = 0;
    },
    stop: () => page.off('request', onRequest),
  };
}

export class ClinicApp {
  constructor({ name, scope, host }) {
    this.name = name;
    this.scope = scope;
    this.host = host;
    this.config = null;
    this.metadata = null;
    this.clientId = null;
    this.clientSecret = undefined;
    this.auth = null;
    // Browser (this app's cookie) → the authorization request waiting for its answer.
    this.pending = new Map();
    // Browser → what it is signed in with here ({ idToken, claims }).
    this.signedIn = new Map();
    // Browser → the state of its RP-initiated logout.
    this.logoutStates = new Map();
    this._requests = [];
    this._results = [];
    this._logouts = [];
    this._postLogouts = [];
    this._failures = [];
    this.http = http.createServer((req, res) => {
      this.handle(req, res).catch((err) => {
        this._failures.push({ at: Date.now(), url: req.url, ...describeError(err) });
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(`${this.name} failed: ${err?.stack ?? err}`);
      });
    });
  }

  async listen() {
    await new Promise((resolveListen, reject) => {
      this.http.once('error', reject);
      this.http.listen(0, '127.0.0.1', () => resolveListen());
    });
    this.port = this.http.address().port;
    this.baseUrl = `http://${this.host}:${this.port}`;
    this.redirectUri = `${this.baseUrl}/callback`;
    this.postLogoutRedirectUri = `${this.baseUrl}/logged-out`;
    this.backchannelLogoutUri = `http://127.0.0.1:${this.port}/backchannel`;
    this.cookieName = `clinic_app_${this.port}`;
  }

  /** Discovers the provider at `issuer` (openid-client also checks the metadata's issuer). */
  async discover(issuer, { client_id, client_secret }, auth) {
    this.clientId = client_id;
    this.clientSecret = client_secret;
    this.auth = auth;
    const clientAuth =
      auth === 'none'
        ? client.None()
        : auth === 'client_secret_post'
          ? client.ClientSecretPost(client_secret)
          : client.ClientSecretBasic(client_secret);
    const metadata = auth === 'none' ? { token_endpoint_auth_method: 'none' } : { client_secret, token_endpoint_auth_method: auth };
    this.config = await client.discovery(new URL(issuer), client_id, metadata, clientAuth, {
      // Plain http on loopback; and check the ID token's signature against the JWKS
      // (openid-client otherwise trusts the TLS connection to the token endpoint).
      execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks],
      timeout: 10,
    });
    this.metadata = this.config.serverMetadata();
    assert.ok(this.metadata.jwks_uri, `the discovery document names no jwks_uri: ${JSON.stringify(this.metadata)}`);
    this.jwks = jose.createRemoteJWKSet(new URL(this.metadata.jwks_uri), { timeoutDuration: 10_000 });
  }

  // ----- for tests -----

  /** The app's sign-in link; `params` (acr_values, max_age, prompt, login_hint) are passed on. */
  loginUrl(params = {}) {
    const query = new URLSearchParams(Object.entries(params).map(([k, v]) => [k, String(v)]));
    const q = query.toString();
    return `${this.baseUrl}/login${q ? `?${q}` : ''}`;
  }

  /** The app's sign-out link: RP-initiated logout at the provider. */
  logoutUrl() {
    return `${this.baseUrl}/logout`;
  }

  /** Every authorization request the app sent a browser to: { at, url, params }. */
  authorizationRequests() {
    return [...this._requests];
  }

  /**
   * Every answer that came back to /callback, in order. Each is { at, url, params (of
   * the redirect), requested (the authorization request's parameters), ok } and, when
   * ok, { claims (the validated ID token's), idTokenHeader, tokens }, else { error,
   * error_description?, message? } — `error` is the provider's (login_required, …) or
   * `rp_rejected` when openid-client refused the answer, with its message.
   */
  results() {
    return [...this._results];
  }

  resultCount() {
    return this._results.length;
  }

  lastResult() {
    return this._results.at(-1);
  }

  /** Back-channel logouts received: { at, contentType, ok, claims, header } or { ok: false, error }. */
  logouts() {
    return [...this._logouts];
  }

  /** Landings at the post-logout redirect URI: { at, url, params, state, expectedState, ok }. */
  postLogouts() {
    return [...this._postLogouts];
  }

  /** Requests the app itself failed on (answered 500). */
  failures() {
    return [...this._failures];
  }

  /** Everything the app saw, for failure messages. */
  describe() {
    const results = this._results.map(({ tokens, ...r }) => ({ ...r, tokens: tokens && Object.keys(tokens) }));
    return JSON.stringify(
      {
        app: this.name,
        client_id: this.clientId,
        baseUrl: this.baseUrl,
        results,
        logouts: this._logouts.map(({ token, ...l }) => l),
        postLogouts: this._postLogouts,
        failures: this._failures,
      },
      null,
      2,
    );
  }

  /** Waits until the browser is back at the app's /callback page; fails with what the page shows. */
  async waitForCallbackPage(page, timeout = ARRIVAL_MS) {
    try {
      await page.waitForURL((url) => url.href.startsWith(this.redirectUri), { timeout });
    } catch (err) {
      if (err?.name !== 'TimeoutError') throw err;
      assert.fail(`expected the browser back at ${this.redirectUri}, ${await describePage(page)}\n${this.describe()}`);
    }
    await waitVisible(page, page.locator('#claims, #error'), `${this.name}'s page after the sign-in (#claims or #error)`);
  }

  /**
   * Waits for the answer after the first `after` ones (take resultCount() before the
   * browser sets off) and for the browser to show it; returns it, ok or not.
   */
  async waitForResult(page, { after, timeout = ARRIVAL_MS } = {}) {
    assert.equal(typeof after, 'number', 'waitForResult needs { after: app.resultCount() } taken before the sign-in');
    await this.waitForCallbackPage(page, timeout);
    const deadline = Date.now() + timeout;
    while (this._results.length <= after) {
      if (Date.now() > deadline) assert.fail(`${this.name} got no new answer at /callback\n${this.describe()}`);
      await sleep(50);
    }
    return this._results[after];
  }

  /** waitForResult, and the answer must be a validated sign-in. */
  async expectSignedIn(page, { after, timeout } = {}) {
    const result = await this.waitForResult(page, { after, timeout });
    assert.ok(result.ok, `${this.name} did not get a valid sign-in: ${JSON.stringify(result, null, 2)}`);
    return result;
  }

  /** UserInfo with the access token of `result` (openid-client checks its sub is the ID token's). */
  async userinfo(result = this.lastResult()) {
    assert.ok(result?.ok, `no sign-in to call userinfo with: ${JSON.stringify(result)}`);
    return client.fetchUserInfo(this.config, result.tokens.access_token, result.claims.sub);
  }

  /** Waits (polling, up to ~15 s) for a back-channel logout after the first `after`; returns it. */
  async waitForLogout({ after = 0, timeout = ARRIVAL_MS } = {}) {
    const deadline = Date.now() + timeout;
    while (this._logouts.length <= after) {
      if (Date.now() > deadline) {
        assert.fail(`${this.name} received no back-channel logout within ${timeout / 1000} s\n${this.describe()}`);
      }
      await sleep(100);
    }
    return this._logouts[after];
  }

  /** Waits for the browser to land at the post-logout redirect URI; returns that landing. */
  async waitForPostLogout(page, { after, timeout = ARRIVAL_MS } = {}) {
    assert.equal(typeof after, 'number', 'waitForPostLogout needs { after: app.postLogouts().length }');
    try {
      await page.waitForURL((url) => url.href.startsWith(this.postLogoutRedirectUri), { timeout });
    } catch (err) {
      if (err?.name !== 'TimeoutError') throw err;
      assert.fail(`expected the browser back at ${this.postLogoutRedirectUri}, ${await describePage(page)}\n${this.describe()}`);
    }
    await waitVisible(page, page.locator('#logged-out'), `${this.name}'s signed-out page`);
    assert.ok(this._postLogouts.length > after, `${this.name} recorded no landing after logout\n${this.describe()}`);
    return this._postLogouts[after];
  }

  async close() {
    this.http.closeAllConnections?.();
    await new Promise((r) => this.http.close(() => r()));
  }

  // ----- the app -----

  async handle(req, res) {
    const url = new URL(req.url, this.baseUrl);
    const route = `${req.method} ${url.pathname}`;
    switch (route) {
      case 'GET /':
        return this.home(req, res);
      case 'GET /login':
        return this.login(req, res, url);
      case 'GET /callback':
        return this.callback(req, res, url);
      case 'GET /logout':
        return this.logout(req, res);
      case 'GET /logged-out':
        return this.loggedOut(req, res, url);
      case 'POST /backchannel':
        return this.backchannel(req, res);
      default:
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
        res.end('not found');
    }
  }

  /** This browser's id at the app (its cookie), made on first visit; and the Set-Cookie to send. */
  browser(req) {
    const existing = cookies(req)[this.cookieName];
    if (existing) return { id: existing, setCookie: undefined };
    const id = randomBytes(16).toString('hex');
    return { id, setCookie: `${this.cookieName}=${id}; Path=/; HttpOnly; SameSite=Lax` };
  }

  send(res, status, html, setCookie) {
    const headers = { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' };
    if (setCookie) headers['set-cookie'] = setCookie;
    res.writeHead(status, headers);
    res.end(html);
  }

  redirect(res, location, setCookie) {
    const headers = { location, 'cache-control': 'no-store' };
    if (setCookie) headers['set-cookie'] = setCookie;
    res.writeHead(302, headers);
    res.end();
  }

  home(req, res) {
    const { id, setCookie } = this.browser(req);
    const s = this.signedIn.get(id);
    const body = s
      ? `<h1>${escapeHtml(this.name)}</h1><p id="who">Signed in as ${escapeHtml(s.claims.sub)}</p><pre id="claims">${escapeHtml(JSON.stringify(s.claims, null, 2))}</pre><p><a href="/logout">Sign out</a></p>`
      : `<h1>${escapeHtml(this.name)}</h1><p id="who">Not signed in</p><p><a href="/login">Sign in with clinic-auth</a></p>`;
    this.send(res, 200, htmlPage(this.name, body), setCookie);
  }

  /** Sends the browser to the provider's authorization endpoint: code flow, PKCE S256, state, nonce. */
  async login(req, res, url) {
    const { id, setCookie } = this.browser(req);
    const codeVerifier = client.randomPKCECodeVerifier();
    const codeChallenge = await client.calculatePKCECodeChallenge(codeVerifier);
    const state = client.randomState();
    const nonce = client.randomNonce();
    const params = {
      redirect_uri: this.redirectUri,
      scope: this.scope,
      code_challenge: codeChallenge,
      code_challenge_method: 'S256',
      state,
      nonce,
    };
    for (const name of PASSED_ON) {
      const v = url.searchParams.get(name);
      if (v !== null) params[name] = v;
    }
    const maxAge = params.max_age === undefined ? undefined : Number(params.max_age);
    this.pending.set(id, { codeVerifier, state, nonce, maxAge, params });
    const authorizationUrl = client.buildAuthorizationUrl(this.config, params);
    this._requests.push({ at: Date.now(), url: authorizationUrl.href, params });
    this.redirect(res, authorizationUrl.href, setCookie);
  }

  /** The authorization response: openid-client checks it, redeems the code and validates the ID token. */
  async callback(req, res, url) {
    const { id, setCookie } = this.browser(req);
    const pending = this.pending.get(id);
    const entry = { at: Date.now(), url: url.href, params: Object.fromEntries(url.searchParams), requested: pending?.params };
    if (!pending) {
      Object.assign(entry, {
        ok: false,
        error: 'rp_no_request',
        message: 'this browser has no authorization request waiting at the app (no state, nonce or verifier to check against)',
      });
    } else {
      this.pending.delete(id);
      try {
        const tokens = await client.authorizationCodeGrant(this.config, url, {
          pkceCodeVerifier: pending.codeVerifier,
          expectedState: pending.state,
          expectedNonce: pending.nonce,
          ...(pending.maxAge === undefined ? {} : { maxAge: pending.maxAge }),
        });
        const claims = tokens.claims();
        if (!claims) throw new Error('the token response has no ID token');
        // A second, independent check of the signature with jose and the JWKS.
        const { protectedHeader } = await jose.jwtVerify(tokens.id_token, this.jwks, {
          issuer: this.metadata.issuer,
          audience: this.clientId,
        });
        Object.assign(entry, {
          ok: true,
          claims: { ...claims },
          idTokenHeader: protectedHeader,
          tokens: {
            access_token: tokens.access_token,
            token_type: tokens.token_type,
            expires_in: tokens.expires_in,
            scope: tokens.scope,
            id_token: tokens.id_token,
            refresh_token: tokens.refresh_token,
          },
        });
        this.signedIn.set(id, { idToken: tokens.id_token, claims: entry.claims });
      } catch (err) {
        Object.assign(entry, { ok: false, ...describeError(err) });
      }
    }
    this._results.push(entry);
    const body = entry.ok
      ? `<h1>Signed in to ${escapeHtml(this.name)}</h1><pre id="claims">${escapeHtml(JSON.stringify(entry.claims, null, 2))}</pre>`
      : `<h1>${escapeHtml(this.name)} could not sign you in</h1><pre id="error">${escapeHtml(
          JSON.stringify({ error: entry.error, error_description: entry.error_description, message: entry.message }, null, 2),
        )}</pre>`;
    this.send(res, 200, htmlPage(this.name, body), setCookie);
  }

  /** RP-initiated logout: to the provider's end_session_endpoint with the ID token as hint. */
  logout(req, res) {
    const { id, setCookie } = this.browser(req);
    const s = this.signedIn.get(id);
    const state = client.randomState();
    this.logoutStates.set(id, state);
    const params = { post_logout_redirect_uri: this.postLogoutRedirectUri, state };
    if (s) params.id_token_hint = s.idToken;
    this.signedIn.delete(id);
    this.redirect(res, client.buildEndSessionUrl(this.config, params).href, setCookie);
  }

  loggedOut(req, res, url) {
    const { id, setCookie } = this.browser(req);
    const expectedState = this.logoutStates.get(id);
    this.logoutStates.delete(id);
    const state = url.searchParams.get('state') ?? undefined;
    const entry = {
      at: Date.now(),
      url: url.href,
      params: Object.fromEntries(url.searchParams),
      state,
      expectedState,
      ok: expectedState !== undefined && state === expectedState,
    };
    this._postLogouts.push(entry);
    const body = `<h1>You are signed out of ${escapeHtml(this.name)}</h1><pre id="logged-out">${escapeHtml(
      JSON.stringify(entry, null, 2),
    )}</pre>`;
    this.send(res, 200, htmlPage(this.name, body), setCookie);
  }

  /**
   * OpenID Connect Back-Channel Logout 1.0: a form POST with logout_token, a JWT signed
   * with a key of the provider's JWKS, for this client, with the logout event, sub or
   * sid, and no nonce. A valid one ends the app's matching sessions and is answered 200.
   */
  async backchannel(req, res) {
    const contentType = req.headers['content-type'] ?? '';
    const entry = { at: Date.now(), contentType };
    try {
      const body = await readBody(req);
      if (!/^application\/x-www-form-urlencoded(\s*;|$)/i.test(contentType)) {
        throw new Error(`Content-Type is ${JSON.stringify(contentType)}, not application/x-www-form-urlencoded`);
      }
      const token = new URLSearchParams(body).get('logout_token');
      if (!token) throw new Error(`no logout_token in the body: ${JSON.stringify(body.slice(0, 200))}`);
      entry.token = token;
      const { payload, protectedHeader } = await jose.jwtVerify(token, this.jwks, {
        issuer: this.metadata.issuer,
        audience: this.clientId,
        requiredClaims: ['iat', 'exp', 'jti', 'events'],
      });
      const events = payload.events;
      const event = events && typeof events === 'object' ? events[BACKCHANNEL_LOGOUT_EVENT] : undefined;
      if (!event || typeof event !== 'object' || Array.isArray(event)) {
        throw new Error(`events has no ${BACKCHANNEL_LOGOUT_EVENT} object: ${JSON.stringify(events)}`);
      }
      if ('nonce' in payload) throw new Error('a logout token must not carry a nonce');
      if (payload.sub === undefined && payload.sid === undefined) throw new Error('a logout token needs sub or sid');
      Object.assign(entry, { ok: true, claims: payload, header: protectedHeader });
      for (const [browser, s] of this.signedIn) {
        const same = payload.sid !== undefined ? s.claims.sid === payload.sid : s.claims.sub === payload.sub;
        if (same) this.signedIn.delete(browser);
      }
      this._logouts.push(entry);
      res.writeHead(200, { 'cache-control': 'no-store' });
      res.end();
    } catch (err) {
      Object.assign(entry, { ok: false, error: `${err?.code ?? err?.name ?? 'Error'}: ${err?.message ?? err}` });
      this._logouts.push(entry);
      res.writeHead(400, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify({ error: 'invalid_request', error_description: entry.error }));
    }
  }
}
