#!/usr/bin/env bash
# Runs the whole test suite (unit, behaviour, property, doc and UI tests) on a fresh machine,
# installing what it needs first. Set REDIS_URL to run the Redis behaviour tests against a server
# you manage instead (the fault tests always start their own).
set -euo pipefail
cd "$(dirname "$0")/.."

# What the tests need from the system: redis-server (the Redis tests start their own servers on
# free loopback ports: single servers, a 3-master / 3-replica cluster, and a master with two
# replicas and three sentinels, `redis-server --sentinel`), redis-cli (it creates the cluster)
# and openssl (the TLS test makes its own certificates).
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "scripts/test.sh: ${missing[*]} missing and no apt-get to install it: install it yourself, then run this again" >&2
    exit 1
  fi
  echo "scripts/test.sh: installing ${missing[*]} with apt-get" >&2
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  # The redis-server package starts a system-wide server on port 6379; the tests never use it.
  $sudo service redis-server stop >/dev/null 2>&1 || true
fi

cargo test --workspace --all-features "$@"

# What only a build without some feature does: the Redis layer without `tls` names the feature.
cargo test -p cache-tower --no-default-features --features redis --lib -- settings::

# The model checks (docs/adr/0008-model-checking.md): the breaker, the change log and single
# flight under loom, which tries their interleavings. `--cfg loom` swaps their sync primitives,
# so they get a build of their own, in a target directory of its own (the normal build is not
# rebuilt each time), without the default features (tokio does not build under that cfg). Loom
# and the code it checks are built at opt-level 1: the checks then run four times faster.
optimised=()
for package in loom generator event-listener parking cache-tower; do
  optimised+=(--config "profile.dev.package.$package.opt-level=1")
done
RUSTFLAGS="${RUSTFLAGS:-} --cfg loom" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/loom" \
  cargo test "${optimised[@]}" -p cache-tower --lib --no-default-features -- ::model::
