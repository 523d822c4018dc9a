#!/usr/bin/env bash
# Runs the browser tests against a built clinic-auth binary.
#
#   e2e/run.sh                      # tests <repo>/target/debug/clinic-auth
#   CLINIC_AUTH_BIN=/path/to/clinic-auth e2e/run.sh
#
# On a fresh Debian machine it installs what is missing first: Debian's Chromium
# (as root, via apt-get) and the npm packages from package-lock.json. It never
# downloads a browser build of its own (playwright-core only drives /usr/bin/chromium).
set -euo pipefail

e2e_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_dir="$(cd "$e2e_dir/.." && pwd)"

export CLINIC_AUTH_BIN="${CLINIC_AUTH_BIN:-${CARGO_TARGET_DIR:-$repo_dir/target}/debug/clinic-auth}"
if [[ ! -x "$CLINIC_AUTH_BIN" ]]; then
  echo "e2e: clinic-auth binary not found or not executable at $CLINIC_AUTH_BIN" >&2
  echo "e2e: build it first (cargo build) or set CLINIC_AUTH_BIN" >&2
  exit 1
fi

if [[ ! -x /usr/bin/chromium ]]; then
  echo "e2e: installing Debian's chromium" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y chromium
fi

if ! command -v npm >/dev/null 2>&1; then
  echo "e2e: node and npm are required (Node 20 or newer)" >&2
  exit 1
fi

cd "$e2e_dir"
if [[ ! -d node_modules || package-lock.json -nt node_modules ]]; then
  npm ci --no-audit --no-fund
  touch node_modules
fi

npm test
