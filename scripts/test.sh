#!/usr/bin/env bash
# Runs the whole test suite (unit, behaviour, property, doc and UI tests) on a fresh machine,
# installing what it needs first: redis-server, which the Redis tests start on free loopback
# ports of their own. Set REDIS_URL to run the Redis tests against a server you manage instead.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  echo "scripts/test.sh: redis-server not found; installing it with apt-get" >&2
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
  # The package starts a system-wide server on port 6379; the tests never use it, so stop it.
  $sudo service redis-server stop >/dev/null 2>&1 || true
fi

cargo test --workspace --all-features "$@"
