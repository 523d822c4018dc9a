// Stand-ins for the outside services that deliver sign-in codes, spoken to through
// their real protocols on 127.0.0.1:
//
//   startSmtpCapture()  an SMTP server (nodemailer's smtp-server) that keeps every
//                       message it is given, parsed with mailparser.
//   startTwilioFake()   an HTTP server shaped like Twilio's Messages API
//                       (POST /2010-04-01/Accounts/{sid}/Messages.json, HTTP basic auth,
//                       form-encoded To/From/Body).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

const DEFAULT_WAIT_MS = 10_000;

/**
 * A list that can be waited on: `waitFor(n, timeoutMs)` resolves with a copy of the
 * items once there are at least `n`, or rejects saying how many arrived.
 */
function waitableList(what) {
  const items = [];
  const waiters = new Set();

  function wake() {
    for (const w of [...waiters]) {
      if (items.length >= w.n) {
        waiters.delete(w);
        clearTimeout(w.timer);
        w.resolve([...items]);
      }
    }
  }

  return {
    items,
    push(item) {
      items.push(item);
      wake();
    },
    list: () => [...items],
    waitFor(n, timeoutMs = DEFAULT_WAIT_MS) {
      if (items.length >= n) return Promise.resolve([...items]);
      return new Promise((resolve, reject) => {
        const w = { n, resolve, reject };
        w.timer = setTimeout(() => {
          waiters.delete(w);
          reject(
            new Error(
              `expected ${n} ${what} within ${timeoutMs} ms, got ${items.length}: ${JSON.stringify(items, null, 2)}`,
            ),
          );
        }, timeoutMs);
        waiters.add(w);
      });
    },
    /** Fails every pending waitFor (used on close). */
    rejectAll() {
      for (const w of [...waiters]) {
        waiters.delete(w);
        clearTimeout(w.timer);
        w.reject(new Error(`closed while waiting for ${w.n} ${what} (got ${items.length})`));
      }
    },
  };
}

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve(server.address().port);
    });
  });
}

/** Lower-cased addresses of a mailparser AddressObject (or an array of them). */
function addresses(field) {
  if (!field) return [];
  const objs = Array.isArray(field) ? field : [field];
  const out = [];
  const walk = (v) => {
    for (const a of v ?? []) {
      if (a.group) walk(a.group);
      else if (a.address) out.push(a.address.toLowerCase());
    }
  };
  for (const o of objs) walk(o.value);
  return out;
}

/**
 * Starts an SMTP server on 127.0.0.1 (no TLS, AUTH optional) that keeps every message.
 *
 * Resolves to { port, messages(), waitFor(n, timeoutMs), errors(), close() }.
 * Each message is { to: [addresses], toText, from, subject, text, html, envelope:
 * { mailFrom, rcptTo }, receivedAt (ms since epoch), raw }.
 */
export async function startSmtpCapture() {
  const list = waitableList('emails at the SMTP capture');
  const errors = [];

  const server = new SMTPServer({
    secure: false,
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    // Do not keep the test waiting 30 s for a pooled client connection on close.
    closeTimeout: 1_000,
    banner: 'clinic-auth e2e SMTP capture',
    // Accept any login the server might try; the capture only records.
    onAuth(auth, session, callback) {
      callback(null, { user: auth.username ?? 'anonymous' });
    },
    onData(stream, session, callback) {
      const chunks = [];
      stream.on('data', (c) => chunks.push(c));
      stream.on('error', (err) => {
        errors.push(String(err));
        callback(err);
      });
      stream.on('end', async () => {
        const raw = Buffer.concat(chunks);
        const receivedAt = Date.now();
        try {
          const parsed = await simpleParser(raw);
          list.push({
            to: addresses(parsed.to),
            toText: parsed.to ? [parsed.to].flat().map((t) => t.text).join(', ') : '',
            from: parsed.from?.text ?? '',
            subject: parsed.subject ?? '',
            text: parsed.text ?? '',
            html: typeof parsed.html === 'string' ? parsed.html : '',
            envelope: {
              mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : null,
              rcptTo: session.envelope.rcptTo.map((r) => r.address.toLowerCase()),
            },
            receivedAt,
            raw: raw.toString('utf8'),
          });
          callback(null, 'Message captured');
        } catch (err) {
          errors.push(`could not parse a message: ${err}`);
          callback(err);
        }
      });
    },
  });
  server.on('error', (err) => errors.push(String(err)));

  const port = await listen(server.server);

  return {
    port,
    messages: () => list.list(),
    waitFor: (n, timeoutMs) => list.waitFor(n, timeoutMs),
    errors: () => [...errors],
    close: () =>
      new Promise((resolve) => {
        list.rejectAll();
        server.close(() => resolve());
      }),
  };
}

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * Starts a Twilio-shaped Messages API on 127.0.0.1.
 *
 * Resolves to { baseUrl, requests(), waitFor(n, timeoutMs), close() }. Each request to
 * the Messages endpoint is recorded (also those refused for bad credentials) as
 * { accountSid, authOk, form, contentType, receivedAt, status }.
 */
export async function startTwilioFake({ accountSid, authToken }) {
  const list = waitableList('requests at the Twilio fake');
  const others = [];
  const path = /^\/2010-04-01\/Accounts\/([^/]+)\/Messages\.json$/;

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url, 'http://127.0.0.1');
      const m = path.exec(url.pathname);
      if (!m || req.method !== 'POST') {
        others.push({ method: req.method, url: req.url });
        sendJson(res, 404, { code: 20404, message: 'The requested resource was not found', status: 404 });
        return;
      }
      const sid = decodeURIComponent(m[1]);
      let authOk = false;
      const header = req.headers.authorization ?? '';
      const basic = /^Basic\s+(\S+)$/i.exec(header);
      if (basic) {
        const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        const user = colon < 0 ? decoded : decoded.slice(0, colon);
        const pass = colon < 0 ? '' : decoded.slice(colon + 1);
        authOk = user === accountSid && pass === authToken && sid === accountSid;
      }
      const contentType = req.headers['content-type'] ?? '';
      const body = Buffer.concat(chunks).toString('utf8');
      const form = Object.fromEntries(new URLSearchParams(body));
      const record = { accountSid: sid, authOk, form, contentType, receivedAt: Date.now() };
      if (!authOk) {
        record.status = 401;
        list.push(record);
        sendJson(res, 401, { code: 20003, message: 'Authenticate', status: 401 });
        return;
      }
      record.status = 201;
      list.push(record);
      const messageSid = `SM${randomBytes(16).toString('hex')}`;
      sendJson(res, 201, {
        sid: messageSid,
        account_sid: sid,
        to: form.To ?? null,
        from: form.From ?? null,
        body: form.Body ?? null,
        status: 'queued',
      });
    });
  });

  const port = await listen(server);

  return {
    baseUrl: `http://127.0.0.1:${port}`,
    requests: () => list.list(),
    /** Requests to other paths or methods (answered 404). */
    strayRequests: () => [...others],
    waitFor: (n, timeoutMs) => list.waitFor(n, timeoutMs),
    close: () =>
      new Promise((resolve) => {
        list.rejectAll();
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

/** The server settings that send every email to `smtp` (plain SMTP on loopback). */
export function smtpSettings(smtp) {
  return {
    CLINIC_AUTH_EMAIL_TRANSPORT: 'smtp',
    CLINIC_AUTH_SMTP_HOST: '127.0.0.1',
    CLINIC_AUTH_SMTP_PORT: String(smtp.port),
    CLINIC_AUTH_SMTP_TLS: 'none',
  };
}

/** The one email to `to` with `subject`, once it arrives. */
export async function emailTo(smtp, to, subject) {
  for (let i = 0; i < 100; i++) {
    const found = smtp.messages().filter((m) => m.subject === subject && m.to.includes(to));
    if (found.length) {
      assert.equal(found.length, 1, `one "${subject}" email to ${to}`);
      return found[0];
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`no "${subject}" email to ${to}: ${JSON.stringify(smtp.messages().map((m) => [m.to, m.subject]))}`);
}
