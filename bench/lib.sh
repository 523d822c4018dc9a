# Shared set-up of the load benchmarks (bench/mfa, bench/scale): a release build,
# a scratch data directory with its own keyring, an optional PostgreSQL database made
# and dropped, and helpers to seed through the store, start the server and count
# audit events. Sourced, not run.

backend=sqlite
[[ "${1:-}" == "--postgres" ]] && backend=postgres
target="${CARGO_TARGET_DIR:-target}"

cargo build --release --locked -p clinic-auth -p clinic-auth-bench >&2
# SERVER_BIN: another build of the server to measure with the same tools (say, the
# commit before a change), for a before/after in one sitting.
bin="${SERVER_BIN:-$target/release/clinic-auth}"
seed="$target/release/seed"
load="$target/release/load"
floors="$target/release/floors"

work=$(mktemp -d)
pg_db=""
server_pid=""
cleanup() {
  [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  if [[ -n "$pg_db" ]]; then
    psql "$base_url" -qc "DROP DATABASE IF EXISTS $pg_db" >/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/data"
export CLINIC_AUTH_DATA_DIR="$work/data"
export CLINIC_AUTH_PUBLIC_URL="http://127.0.0.1:$port"
export CLINIC_AUTH_LOG_LEVEL=warn
printf '1:%s\n' "$(head -c 32 /dev/urandom | base64)" >"$work/encryption.key"
export CLINIC_AUTH_ENCRYPTION_KEY_FILE="$work/encryption.key"
base_url="${CLINIC_AUTH_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
if [[ "$backend" == postgres ]]; then
  pg_db="clinic_auth_bench_$$"
  psql "$base_url" -qc "CREATE DATABASE $pg_db" >/dev/null
  export CLINIC_AUTH_DATABASE_URL="${base_url%/*}/$pg_db"
  database_url="$CLINIC_AUTH_DATABASE_URL"
else
  database_url="sqlite:$work/data/clinic-auth.db"
fi
cores=$(nproc)
password="correct horse battery staple bench"

# A clinic (ORG_NAME) and its template member, whose password hash seeded members share.
make_clinic() {
  "$bin" org create --name "$1" --kind clinic --json >/dev/null
}
make_template() { # ORG_ID EMAIL [ROLE]
  printf '%s\n' "$password" | "$bin" member add --org "$1" --email "$2" --role "${3:-provider}" --password-stdin --json >/dev/null
}

# seed_members ORG TEMPLATE PREFIX MEMBERS FLOWS_EACH: writes $work/PREFIX.flows
seed_members() {
  "$seed" --database-url "$database_url" --keyring-file "$work/encryption.key" --org "$1" \
    --template "$2" --prefix "$3" --members "$4" --flows "$5" --out "$work/$3.flows"
}

start_server() {
  "$bin" serve --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "the server did not start:" >&2
  cat "$work/server.log" >&2
  return 1
}

stop_server() {
  [[ -n "$server_pid" ]] && kill "$server_pid" && wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

audit_count() {
  if [[ "$backend" == postgres ]]; then
    psql "$database_url" -tAc "SELECT count(*) FROM audit_events"
  else
    python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM audit_events").fetchone()[0])' "$work/data/clinic-auth.db"
  fi
}

# `audit verify` over the whole trail (the server stopped, so everything is written):
# events per second against the target of 100,000.
verify_trail() {
  local verify events
  verify=$( { /usr/bin/time -f "%e %M" "$bin" audit verify --json >"$work/verify.json"; } 2>&1 | tail -1)
  events=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["events"])' "$work/verify.json")
  python3 - "$events" $verify <<'PY'
import sys
events, secs, kib = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
rate = events / max(secs, 0.001)
print(f"audit verify: {events} events in {secs:.2f}s = {rate:,.0f} events/s (target >= 100,000/s), peak memory {kib / 1024:.0f} MiB")
if rate < 100_000:
    print("  MISSED: audit verify under 100,000 events/s")
    sys.exit(1)
PY
}

# `audit export` (CSV) of a small slice and of the whole trail: peak memory must not
# grow with the events exported (within 20%, and a few MiB of page buffers).
export_memory() {
  local small whole
  small=$( { /usr/bin/time -f "%e %M" "$bin" audit export --org large-clinic >"$work/small.csv"; } 2>&1 | tail -1)
  whole=$( { /usr/bin/time -f "%e %M" "$bin" audit export >"$work/whole.csv"; } 2>&1 | tail -1)
  python3 - "$(($(wc -l <"$work/small.csv") - 1))" $small "$(($(wc -l <"$work/whole.csv") - 1))" $whole <<'PY'
import sys
n1, s1, k1, n2, s2, k2 = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
print(f"audit export: {n1} events in {s1:.2f}s, peak {k1 / 1024:.0f} MiB; {n2} events in {s2:.2f}s "
      f"({n2 / max(s2, 0.001):,.0f} events/s), peak {k2 / 1024:.0f} MiB = {k2 / k1:.2f} x")
if k2 > k1 * 1.2 + 4096:
    print("  MISSED: export memory grows with the events exported")
    sys.exit(1)
PY
}
