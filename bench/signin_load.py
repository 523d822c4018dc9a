#!/usr/bin/env python3
"""Sign-in load against a running clinic-auth, from a second process on loopback.

Measures what a clinic's morning rush looks like to the server:
  * password sign-ins through the JSON API (email step + password step, Argon2id),
    with several clients at once: throughput and latency percentiles;
  * /healthz latency while that runs, to show that password hashing (bounded, off
    the async workers) does not starve other requests;
  * the server's resident memory before, during and after (from /proc).

Standard library only. Usage (bench/run does all of this for you):
  signin_load.py --base http://127.0.0.1:PORT --pid PID --accounts a@x,b@x --password PW
"""

import argparse
import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse


def rss_kib(pid):
    """(VmRSS, VmHWM) of the server in KiB."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


class Client:
    def __init__(self, base):
        u = urllib.parse.urlparse(base)
        self.host, self.port = u.hostname, u.port

    def _conn(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=60)

    def post(self, conn, path, body):
        conn.request("POST", path, body=json.dumps(body), headers={"content-type": "application/json"})
        res = conn.getresponse()
        data = res.read()
        return res.status, json.loads(data or b"null")

    def sign_in(self, conn, email, password):
        status, started = self.post(conn, "/api/v1/login", {"email": email})
        if status not in (200, 201):
            raise RuntimeError(f"login start: {status} {started}")
        flow = started["flow_id"]
        status, done = self.post(conn, f"/api/v1/login/{flow}/password", {"password": password})
        if status != 200 or done.get("next") != "done":
            raise RuntimeError(f"password step: {status} {done}")


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--accounts", required=True, help="comma-separated emails")
    ap.add_argument("--password", required=True)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--max-rss-mib", type=float, help="target: the server's peak resident memory")
    ap.add_argument("--max-healthz-p99-ms", type=float, help="target: /healthz p99 while sign-ins run")
    ap.add_argument("--min-sign-ins-per-second", type=float, help="target: throughput")
    args = ap.parse_args()

    client = Client(args.base)
    accounts = args.accounts.split(",")
    stop = threading.Event()
    lock = threading.Lock()
    latencies, errors = [], []
    health = []

    def worker(i):
        conn = client._conn()
        n = 0
        while not stop.is_set():
            email = accounts[(i + n * args.concurrency) % len(accounts)]
            n += 1
            t0 = time.perf_counter()
            try:
                client.sign_in(conn, email, args.password)
            except Exception as e:  # noqa: BLE001 - a benchmark reports errors, then stops
                with lock:
                    errors.append(str(e))
                stop.set()
                return
            with lock:
                latencies.append(time.perf_counter() - t0)

    def prober():
        conn = client._conn()
        while not stop.is_set():
            t0 = time.perf_counter()
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            health.append(time.perf_counter() - t0)
            time.sleep(0.05)

    # Health latency at rest.
    idle = []
    conn = client._conn()
    for _ in range(50):
        t0 = time.perf_counter()
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        idle.append(time.perf_counter() - t0)
    rss_before, _ = rss_kib(args.pid)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.concurrency)]
    threads.append(threading.Thread(target=prober))
    started = time.perf_counter()
    for t in threads:
        t.start()
    peak_rss = 0
    while time.perf_counter() - started < args.seconds:
        time.sleep(0.5)
        peak_rss = max(peak_rss, rss_kib(args.pid)[0])
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    time.sleep(1)
    rss_after, hwm = rss_kib(args.pid)

    ms = lambda s: s * 1000  # noqa: E731
    result = {
        "concurrency": args.concurrency,
        "seconds": round(elapsed, 1),
        "sign_ins": len(latencies),
        "errors": len(errors),
        "sign_ins_per_second": round(len(latencies) / elapsed, 1),
        "sign_in_ms": {p: round(ms(percentile(latencies, p)), 1) for p in (50, 95, 99)},
        "healthz_idle_ms": {p: round(ms(percentile(idle, p)), 2) for p in (50, 99)},
        "healthz_under_load_ms": {p: round(ms(percentile(health, p)), 2) for p in (50, 99)},
        "rss_mib": {
            "before": round(rss_before / 1024, 1),
            "peak_sampled": round(peak_rss / 1024, 1),
            "after": round(rss_after / 1024, 1),
            "high_water": round(hwm / 1024, 1),
        },
    }
    if errors:
        result["first_error"] = errors[0]
    missed = []
    if args.max_rss_mib is not None and result["rss_mib"]["high_water"] > args.max_rss_mib:
        missed.append(f"peak memory {result['rss_mib']['high_water']} MiB > {args.max_rss_mib}")
    if args.max_healthz_p99_ms is not None and result["healthz_under_load_ms"][99] > args.max_healthz_p99_ms:
        missed.append(f"/healthz p99 {result['healthz_under_load_ms'][99]} ms > {args.max_healthz_p99_ms}")
    if args.min_sign_ins_per_second is not None and result["sign_ins_per_second"] < args.min_sign_ins_per_second:
        missed.append(f"{result['sign_ins_per_second']} sign-ins/s < {args.min_sign_ins_per_second}")
    result["targets_missed"] = missed
    json.dump(result, sys.stdout, indent=2)
    print()
    return 1 if errors or missed else 0


if __name__ == "__main__":
    sys.exit(main())
