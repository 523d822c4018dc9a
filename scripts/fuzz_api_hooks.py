"""Schemathesis hooks for scripts/fuzz-api: real bearer sessions for the seeded
accounts, and a log of every response's status.

Run as a program (`python fuzz_api_hooks.py sign-in BASE_URL STATE_FILE`) it signs in
the seeded clinic owner (password only: MFA is off for the clinic) and the platform
admin (password, then the authenticator setup every platform admin goes through on
first sign-in; the code comes from pyotp), and writes both sessions to STATE_FILE.
Loaded by schemathesis (SCHEMATHESIS_HOOKS=fuzz_api_hooks, FUZZ_STATE=STATE_FILE,
FUZZ_STATUS_LOG=FILE) it:

- puts `Authorization: Bearer …` on every operation that declares bearer security,
  the owner's or the admin's session at random;
- gives `POST /api/v1/logout` a session of its own, signed in just for it, because a
  successful logout ends the session it was called with and every later request
  would only see 401. That session belongs to a member of a third clinic, which the
  fuzzer is unlikely to learn about: the owner's email is soon known to it (from
  `GET /api/v1/me`), and its wrong passwords lock that email for a while, which is
  the throttle working. When no session can be had, the request goes out with one
  that has already ended (and gets the documented 401);
- signs an account in again when one of its sessions gets a 401 (the fuzzer may end
  it, e.g. by revoking the member's sessions), at most every 5 seconds;
- appends `STATUS METHOD PATH` for every response to FUZZ_STATUS_LOG, which the
  script reads to fail the run on any 5xx, and notes what it did to FUZZ_HOOK_LOG.
"""

import json
import os
import random
import sys
import threading
import time
import urllib.parse

import pyotp
import requests

TIMEOUT = 30


class SignInError(Exception):
    pass


def _post(session, url, body=None):
    r = session.post(url, json=body, timeout=TIMEOUT) if body is not None else session.post(url, timeout=TIMEOUT)
    try:
        data = r.json()
    except ValueError:
        data = None
    return r.status_code, data


def _fresh_code(secret, last_step):
    """A TOTP code for a step newer than `last_step`: the server takes each code once."""
    step = int(time.time() // 30)
    if last_step is not None and step <= last_step:
        time.sleep((last_step + 1) * 30 - time.time() + 0.5)
        step = int(time.time() // 30)
    return pyotp.TOTP(secret).at(step * 30), step


def sign_in(base, email, password, secret=None, last_step=None):
    """Signs in through the JSON API. Returns (session_token, totp_secret, last_step)."""
    s = requests.Session()
    status, data = _post(s, f"{base}/api/v1/login", {"email": email})
    if status != 201:
        raise SignInError(f"POST /api/v1/login for {email}: {status} {data}")
    flow = urllib.parse.quote(data["flow_id"], safe="")
    status, data = _post(s, f"{base}/api/v1/login/{flow}/password", {"password": password})
    if status != 200:
        raise SignInError(f"password step for {email}: {status} {data}")
    if data["next"] == "enroll":
        status, setup = _post(s, f"{base}/api/v1/login/{flow}/enroll/authenticator")
        if status != 200:
            raise SignInError(f"authenticator setup for {email}: {status} {setup}")
        secret = pyotp.parse_uri(setup["otpauth_uri"]).secret
        code, last_step = _fresh_code(secret, last_step)
        status, data = _post(s, f"{base}/api/v1/login/{flow}/enroll/authenticator/confirm", {"code": code})
    elif data["next"] == "second_factor":
        if secret is None or data.get("method") != "authenticator":
            raise SignInError(f"{email} is asked for {data.get('method')}, which this script cannot answer")
        code, last_step = _fresh_code(secret, last_step)
        status, data = _post(s, f"{base}/api/v1/login/{flow}/code", {"code": code})
    if status != 200 or data.get("next") != "done":
        raise SignInError(f"signing in {email} did not finish: {status} {data}")
    return data["session_token"], secret, last_step


class Sessions:
    """The seeded accounts' sessions, shared by schemathesis's worker threads."""

    def __init__(self, state, log):
        self.base = state["base"]
        self.accounts = state["accounts"]
        self.log = log
        self.lock = threading.Lock()
        self.last_attempt = {}
        self.ended = None

    def token(self, who):
        with self.lock:
            return self.accounts[who]["token"]

    def fresh(self, who):
        """A new session of its own (no second factor to wait for), or an ended one."""
        a = self.accounts[who]
        try:
            token, _, _ = sign_in(self.base, a["email"], a["password"])
        except (SignInError, requests.RequestException) as e:
            self.log(f"no fresh session for {who}, sending an ended one: {e}")
            return self.ended or "0" * 43
        self.ended = token
        return token

    def forget(self, token):
        """A session answered 401: sign its account in again (throttled)."""
        with self.lock:
            for who, a in self.accounts.items():
                if a["token"] != token or time.monotonic() - self.last_attempt.get(who, -1e9) < 5:
                    continue
                self.last_attempt[who] = time.monotonic()
                try:
                    a["token"], a["secret"], a["last_step"] = sign_in(
                        self.base, a["email"], a["password"], a.get("secret"), a.get("last_step")
                    )
                    self.log(f"{who} signed in again after a 401")
                except (SignInError, requests.RequestException) as e:
                    self.log(f"could not sign {who} in again: {e}")


def _install_hooks():
    import schemathesis

    status_log = open(os.environ["FUZZ_STATUS_LOG"], "a", buffering=1)
    hook_log = open(os.environ["FUZZ_HOOK_LOG"], "a", buffering=1)
    log_lock = threading.Lock()

    def log(message):
        with log_lock:
            hook_log.write(f"{time.strftime('%H:%M:%S')} {message}\n")

    with open(os.environ["FUZZ_STATE"]) as f:
        sessions = Sessions(json.load(f), log)

    @schemathesis.auth(refresh_interval=None)
    class SeededSessions:
        def get(self, case, ctx):
            op = ctx.operation
            if not op.definition.raw.get("security"):
                return None
            if op.method.upper() == "POST" and op.path == "/api/v1/logout":
                return sessions.fresh("spare")
            return sessions.token(random.choice(("owner", "admin")))

        def set(self, case, data, ctx):
            case.headers = case.headers or {}
            case.headers["Authorization"] = f"Bearer {data}"

    @schemathesis.hook
    def after_call(context, case, response):
        with log_lock:
            status_log.write(f"{response.status_code} {case.method.upper()} {case.operation.path}\n")
        if response.status_code == 401:
            sent = response.request.headers.get("Authorization", "")
            if sent.startswith("Bearer "):
                sessions.forget(sent[len("Bearer ") :])


def _main(argv):
    if len(argv) != 4 or argv[1] != "sign-in":
        print("usage: fuzz_api_hooks.py sign-in BASE_URL STATE_FILE", file=sys.stderr)
        return 2
    base, out = argv[2], argv[3]
    accounts = {
        who: {"email": os.environ[f"FUZZ_{who.upper()}_EMAIL"], "password": os.environ["FUZZ_PASSWORD"]}
        for who in ("owner", "admin", "spare")
    }
    for who, a in accounts.items():
        a["token"], a["secret"], a["last_step"] = sign_in(base, a["email"], a["password"])
        print(f"signed in the {who} ({a['email']})")
    me = requests.get(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {accounts['admin']['token']}"}, timeout=TIMEOUT)
    if me.status_code != 200 or me.json().get("kind") != "platform_admin":
        raise SignInError(f"GET /api/v1/me with the admin's session: {me.status_code} {me.text}")
    with open(out, "w") as f:
        json.dump({"base": base, "accounts": accounts}, f)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
elif os.environ.get("FUZZ_STATE"):
    _install_hooks()
