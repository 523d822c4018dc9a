// The JSON API as tests use it to set accounts up without the pages, and an
// authenticator app (the independent `otpauth` package) that never offers a code the
// server would refuse as already used.

import assert from 'node:assert/strict';
import * as OTPAuth from 'otpauth';

const STEP_MS = 30_000;
// A code of the previous time step is offered only while this much of the current
// step is left, so the server still sees that step as "previous" when the code arrives.
const PREVIOUS_STEP_MARGIN_MS = 5_000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Sends JSON to the API and returns { status, body }; fails on a non-JSON answer. */
export async function api(server, method, path, body, token) {
  const headers = { 'content-type': 'application/json', accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${server.baseUrl}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    redirect: 'manual',
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    assert.fail(`${method} ${path} answered ${res.status} with non-JSON: ${text.slice(0, 500)}`);
  }
  return { status: res.status, body: json };
}

/**
 * An authenticator app holding one TOTP secret. Each code() is for a later time step
 * than every code it gave before (the server refuses a step at or before the last one
 * it accepted), and one the server's window (previous, current, next step) accepts
 * when it arrives; it waits for the clock when it must.
 */
export class Authenticator {
  /** `usedStep`: the last time step whose code was already used, if any. */
  constructor(totp, usedStep = -Infinity) {
    this.totp = totp;
    this.usedStep = usedStep;
  }

  /** The next usable code. */
  async code() {
    let now = Date.now();
    const current = Math.floor(now / STEP_MS);
    const leftInStep = (current + 1) * STEP_MS - now;
    const earliest = leftInStep >= PREVIOUS_STEP_MARGIN_MS ? current - 1 : current;
    const step = Math.max(earliest, this.usedStep + 1);
    if (step > current + 1) {
      // Only the next step's code is accepted early: wait until `step` is next.
      await sleep((step - 1) * STEP_MS - now + 250);
      now = Date.now();
    }
    this.usedStep = step;
    return this.totp.generate({ timestamp: step * STEP_MS });
  }

  /** Notes that a code for the step current now was used elsewhere (a page set it up). */
  usedNow() {
    this.usedStep = Math.max(this.usedStep, Math.floor(Date.now() / STEP_MS));
  }
}

/**
 * A member whose sign-in requires setting up a second factor (Mandatory 2FA, no factor
 * yet) sets up an authenticator app through `/api/v1/login`. Returns its Authenticator.
 */
export async function enrollAuthenticatorThroughApi(server, email, password) {
  const start = await api(server, 'POST', '/api/v1/login', { email });
  assert.ok([200, 201].includes(start.status), `POST /api/v1/login answered ${start.status}: ${JSON.stringify(start.body)}`);
  const flow = encodeURIComponent(start.body.flow_id);
  const pw = await api(server, 'POST', `/api/v1/login/${flow}/password`, { password });
  assert.equal(pw.body.next, 'enroll', `${email}: ${JSON.stringify(pw.body)}`);
  const setup = await api(server, 'POST', `/api/v1/login/${flow}/enroll/authenticator`, {});
  assert.equal(setup.status, 200, JSON.stringify(setup.body));
  const totp = OTPAuth.URI.parse(setup.body.otpauth_uri);
  const authenticator = new Authenticator(totp);
  const done = await api(server, 'POST', `/api/v1/login/${flow}/enroll/authenticator/confirm`, {
    code: await authenticator.code(),
  });
  assert.equal(done.status, 200, JSON.stringify(done.body));
  assert.equal(done.body.next, 'done');
  return authenticator;
}
