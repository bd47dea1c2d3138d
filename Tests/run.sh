#!/usr/bin/env bash
# The test command: installs the system libraries Alexandria builds on when they are missing, then runs every test
# (unit, store, and the CLI tests that start real `alexandria` processes).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for package in libsqlite3-dev libzstd-dev libssl-dev; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
command -v python3 >/dev/null 2>&1 || missing+=(python3)
# The adversarial wire client (Tests/adversary) signs its handshake with Ed25519 from `cryptography`.
python3 -c 'import cryptography' >/dev/null 2>&1 || missing+=(python3-cryptography)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]}" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# Serially: Swift Testing runs even synchronous tests on the cooperative thread pool, and on a 2-core machine two
# blocking tests (waiting on processes, store I/O) can starve the in-process nodes of the peer tests for seconds,
# which their stall detection then rightly treats as a stalled peer. The whole run takes about two minutes.
swift test --no-parallel
