// Test harness: starts a real clinic-auth server on a free loopback port with a
// fresh data directory, runs the admin CLI against the same data directory, and
// launches Debian's Chromium through playwright-core.
//
// The binary under test comes from $CLINIC_AUTH_BIN (default: <repo>/target/debug/clinic-auth).

import { spawn, execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const E2E_DIR = resolve(here, '..');
export const REPO_DIR = resolve(E2E_DIR, '..');
export const RESULTS_DIR = join(E2E_DIR, 'test-results');

export const BIN = process.env.CLINIC_AUTH_BIN || join(process.env.CARGO_TARGET_DIR || join(REPO_DIR, 'target'), 'debug', 'clinic-auth');
export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const SETUP_URL_RE = /https?:\/\/[^\s]+\/setup\/[A-Za-z0-9_-]+/;
const HEALTH_TIMEOUT_MS = 30_000;
// After /healthz answers, how long to keep waiting for the setup link to be printed.
const SETUP_LINK_GRACE_MS = 5_000;

// Servers still running, killed if the test process exits without stopping them.
const running = new Set();
process.on('exit', () => {
  for (const child of running) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Asks the kernel for a free loopback port (listen on port 0, read it, close). */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

async function healthy(baseUrl) {
  try {
    const res = await fetch(`${baseUrl}/healthz`, { redirect: 'manual', signal: AbortSignal.timeout(2_000) });
    await res.arrayBuffer().catch(() => {});
    return res.status === 200;
  } catch {
    return false;
  }
}

/** The environment without any CLINIC_AUTH_* setting. */
function withoutClinicAuthVariables(environment) {
  return Object.fromEntries(Object.entries(environment).filter(([name]) => !name.startsWith('CLINIC_AUTH_')));
}

function assertBinary() {
  if (!existsSync(BIN)) {
    throw new Error(
      `clinic-auth binary not found at ${BIN}. Build it with \`cargo build\` or point CLINIC_AUTH_BIN at it.`,
    );
  }
}

/**
 * Starts `clinic-auth serve` on a free loopback port with a fresh temp data dir.
 *
 * Resolves to { baseUrl, port, dataDir, setupUrl, output(), cli(args), cliAsync(args), stop() }.
 * setupUrl is the first-start link the server prints (null if none was printed).
  * `env`, if given, is merged over the environment of the server AND of every cli()
 * call (e.g. CLINIC_AUTH_SMTP_PORT for a capture server the test started).
 * `host` is the name people use in links and the browser: `localhost` for passkeys,
 * which WebAuthn allows on a hostname with HTTPS or on localhost, never on an IP.
 * `unconfigured: true` starts the server as the README's first command does: no
 * CLINIC_AUTH_* variable at all, only the data directory and a loopback listen address;
 * baseUrl is then the server's own default (http://localhost:PORT).
 */
export async function startServer({ env = {}, host = '127.0.0.1', unconfigured = false } = {}) {
  assertBinary();
  const port = await freePort();
  const baseUrl = unconfigured ? `http://localhost:${port}` : `http://${host}:${port}`;
  const healthUrl = `http://127.0.0.1:${port}`;
  const dataDir = await mkdtemp(join(tmpdir(), 'clinic-auth-e2e-data-'));

  // The admin CLI runs in its own process and cannot know which port the server got;
  // CLINIC_AUTH_PUBLIC_URL (the binary's --public-url, "used in links") tells both
  // where people reach the server, so invitation links point at this one.
  const childEnv = unconfigured
    ? { ...withoutClinicAuthVariables(process.env), ...env }
    : { ...process.env, CLINIC_AUTH_LOG_FORMAT: 'text', CLINIC_AUTH_PUBLIC_URL: baseUrl, ...env };

  let out = '';
  const child = spawn(BIN, ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir], {
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  let exited = null;
  let spawnError = null;
  const exitPromise = new Promise((r) => {
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      running.delete(child);
      r();
    });
    child.on('error', (err) => {
      spawnError = err;
      running.delete(child);
      r();
    });
  });

  let stopped = false;
  async function stop() {
    if (!stopped) {
      stopped = true;
      if (exited === null && spawnError === null) {
        child.kill('SIGTERM');
        const timedOut = await Promise.race([exitPromise.then(() => false), sleep(5_000).then(() => true)]);
        if (timedOut) {
          child.kill('SIGKILL');
          await exitPromise;
        }
      }
    }
    await rm(dataDir, { recursive: true, force: true });
  }

  const deadline = Date.now() + HEALTH_TIMEOUT_MS;
  for (;;) {
    if (spawnError || exited) {
      await stop();
      const why = spawnError ? `could not be started: ${spawnError.message}` : `exited early (${JSON.stringify(exited)})`;
      throw new Error(`clinic-auth serve ${why}\n--- server output ---\n${out}`);
    }
        if (await healthy(healthUrl)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(
        `clinic-auth serve did not answer 200 on ${baseUrl}/healthz within ${HEALTH_TIMEOUT_MS / 1000} s\n` +
          `--- server output ---\n${out}`,
      );
    }
    await sleep(100);
  }

  // The setup link may be printed just before or after the listener is up.
  const linkDeadline = Date.now() + SETUP_LINK_GRACE_MS;
  while (!SETUP_URL_RE.test(out) && Date.now() < linkDeadline && !exited) await sleep(50);
  const match = out.match(SETUP_URL_RE);
  const setupUrl = match ? match[0] : null;

  /**
   * Runs `clinic-auth <args...> --data-dir DIR --json` and returns the parsed JSON stdout.
   * `stdin`, if given, is written to the command's standard input (e.g. for --password-stdin).
   */
  function cli(args, { stdin } = {}) {
    const argv = [...args, '--data-dir', dataDir, '--json'];
    let stdout;
    try {
      stdout = execFileSync(BIN, argv, {
        encoding: 'utf8',
        env: childEnv,
        ...(stdin === undefined ? { stdio: ['ignore', 'pipe', 'pipe'] } : { input: stdin, stdio: ['pipe', 'pipe', 'pipe'] }),
        timeout: 30_000,
      });
    } catch (err) {
      throw new Error(
        `clinic-auth ${argv.join(' ')} failed (status ${err.status}, signal ${err.signal})\n` +
          `--- stdout ---\n${err.stdout ?? ''}\n--- stderr ---\n${err.stderr ?? ''}`,
      );
    }
    try {
      return JSON.parse(stdout);
    } catch {
      throw new Error(`clinic-auth ${argv.join(' ')} did not print JSON on stdout:\n${stdout}`);
    }
  }

  /**
   * The same as cli(), without blocking this process: for commands that talk to a
   * capture server running in this test (the invitation `member add` emails).
   */
  function cliAsync(args) {
    const argv = [...args, '--data-dir', dataDir, '--json'];
    return new Promise((resolvePromise, reject) => {
      execFile(BIN, argv, { encoding: 'utf8', env: childEnv, timeout: 30_000 }, (err, stdout, stderr) => {
        if (err) {
          reject(
            new Error(
              `clinic-auth ${argv.join(' ')} failed (status ${err.code}, signal ${err.signal})\n` +
                `--- stdout ---\n${stdout ?? ''}\n--- stderr ---\n${stderr ?? ''}`,
            ),
          );
          return;
        }
        try {
          resolvePromise(JSON.parse(stdout));
        } catch {
          reject(new Error(`clinic-auth ${argv.join(' ')} did not print JSON on stdout:\n${stdout}`));
        }
      });
    });
  }

  return {
    baseUrl,
    port,
    dataDir,
    setupUrl,
    output: () => out,
    cli,
    cliAsync,
    stop,
  };
}

/**
 * Launches Debian's Chromium with a fresh temp profile.
 * Resolves to { context, page, close() }; close() also removes the profile.
 */
export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}; install it with: apt-get install -y chromium`);
  }
  const userDataDir = await mkdtemp(join(tmpdir(), 'clinic-auth-e2e-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 900 },
    });
  } catch (err) {
    await rm(userDataDir, { recursive: true, force: true });
    throw err;
  }
  context.setDefaultTimeout(10_000);
  context.setDefaultNavigationTimeout(15_000);
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    async close() {
      await context.close().catch(() => {});
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}

function slug(name) {
  return name.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 80) || 'test';
}

/**
 * Saves what a failed test saw into e2e/test-results/: a full-page screenshot, the
 * page's HTML and URL, and the server's output. Never throws. Returns the files written.
 */
export async function saveFailureArtifacts(name, { page, server } = {}) {
  const base = join(RESULTS_DIR, slug(name));
  const written = [];
  try {
    await mkdir(RESULTS_DIR, { recursive: true });
    if (page && !page.isClosed()) {
      await page.screenshot({ path: `${base}.png`, fullPage: true, timeout: 5_000 }).then(
        () => written.push(`${base}.png`),
        () => {},
      );
      const html = await page.content().catch(() => null);
      if (html !== null) {
        await writeFile(`${base}.html`, `<!-- ${page.url()} -->\n${html}`);
        written.push(`${base}.html`);
      }
    }
    if (server) {
      await writeFile(`${base}.server.log`, server.output());
      written.push(`${base}.server.log`);
    }
  } catch {
    // artifacts are best effort
  }
  return written;
}

/**
 * The usual frame of a browser test: a fresh server and a fresh browser, torn down
 * afterwards; on failure, artifacts go to e2e/test-results/ and their paths are
 * added to the error message.
 *
 *   test('…', (t) => withServerAndBrowser(t, async ({ server, page }) => { … }));
 */
export async function withServerAndBrowser(t, body, options = {}) {
  const server = await startServer(options);
  let browser;
  try {
    browser = await launchBrowser();
    await body({ server, browser, context: browser.context, page: browser.page });
  } catch (err) {
    const files = await saveFailureArtifacts(t.name, { page: browser?.page, server });
    if (files.length && err && typeof err === 'object') {
      try {
        err.message += `\n(artifacts: ${files.join(', ')})`;
      } catch {
        // read-only message
      }
    }
    throw err;
  } finally {
    if (browser) await browser.close();
    await server.stop();
  }
}
