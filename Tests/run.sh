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
# The gateway's pages are checked in a real browser (StatusPageTests): Debian's headless-capable chromium.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]}" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
# MetricsTests scrape nodes with a real Prometheus server and lint /metrics with promtool (Debian's prometheus; its
# recommended node exporter is not needed).
if ! command -v prometheus >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends --no-upgrade prometheus
fi

# In parallel: Swift Testing runs even synchronous tests on the cooperative thread pool (one thread per core), and
# tests that wait on processes block it; the nodes the peer tests run in-process do not care, because every node task
# runs on the node's own threads (AlexandriaPeer's NodeExecutor), never on that pool. Suites that must not overlap
# with each other are marked `.serialized`. Tests that measure a rate against the machine's speed run alone afterwards
# (`alone`): the flood test needs the node to process requests faster than its 2000/s limit, which a loaded machine
# running other tests beside it does not always manage.
alone='aFloodingClientIsCutOff'
#
# Built by whoever runs this (root in CI), run as an unprivileged user (Tests/unprivileged.sh): a node deployed by
# the systemd unit or a container is not root, and root hides what breaks it. The test bundle is what `swift test`
# runs; `--testing-library swift-testing` is how it asks for the Swift Testing tests (there are no XCTest tests).
# Extra arguments (e.g. `--filter NodeTests`) go to the test run.
if [ "$(id -u)" -eq 0 ]; then
    source Tests/unprivileged.sh
    swift build --build-tests
    bundle="$(swift build --show-bin-path)/AlexandriaPackageTests.xctest"
    # The systemd unit's user, paths and sandbox, as far as a machine without systemd allows.
    bash Tests/unit-sandbox.sh
    as_unprivileged "$bundle" --testing-library swift-testing --skip "$alone" "$@"
    [ "$#" -gt 0 ] || as_unprivileged "$bundle" --testing-library swift-testing --no-parallel --filter "$alone"
else
    swift test --skip "$alone" "$@"
    [ "$#" -gt 0 ] || swift test --skip-build --no-parallel --filter "$alone"
fi

# Faults on disk and kill -9 loops against the real binary (issue 11; fixed seeds, bounded counts): the fault matrix
# prints file x fault x command with the outcome in each cell. Unprivileged too, like every test that starts nodes.
bin="$(swift build --show-bin-path)/alexandria"
if [ "$(id -u)" -eq 0 ]; then
    as_unprivileged python3 Tests/faults/kills.py "$bin" 6
    as_unprivileged python3 Tests/faults/matrix.py "$bin"
else
    python3 Tests/faults/kills.py "$bin" 6
    python3 Tests/faults/matrix.py "$bin"
fi

# The HTTP gateway against the real clients (issue 12): huggingface_hub, the hf CLI, safetensors, skopeo, oras and modelpack-client. What it
# needs is installed here first, as root (skopeo from apt if missing, a pinned virtualenv); the nodes it starts then
# run unprivileged like the rest.
interop_venv=${INTEROP_VENV:-/tmp/alexandria-interop-venv}
if [ "$(id -u)" -eq 0 ]; then
    command -v skopeo >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-upgrade skopeo
    dpkg -s python3-venv >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-upgrade \
        python3-venv
    # Debian's python: a venv links to its interpreter, and one under /root (pyenv) is out of the user's reach.
    system_python=/usr/bin/python3
    [ -x "$system_python" ] || system_python=python3
    if ! setpriv --reuid="$(id -u "$(unprivileged_user)")" --regid="$(id -g "$(unprivileged_user)")" --clear-groups \
        "$interop_venv/bin/python" -c 'import huggingface_hub, safetensors, numpy, oras, modelpack_client
assert huggingface_hub.__version__ == "2.4.0"' 2>/dev/null; then
        rm -rf "$interop_venv"
        "$system_python" -m venv "$interop_venv"
        "$interop_venv/bin/pip" install -q huggingface_hub==2.4.0 safetensors==0.8.0 numpy==2.4.6 oras==0.2.43 \
            modelpack-client==0.1.0
    fi
    chmod -R a+rX "$interop_venv"
    as_unprivileged env INTEROP_VENV="$interop_venv" ALEXANDRIA="$bin" bash Tests/interop.sh
else
    INTEROP_VENV="$interop_venv" ALEXANDRIA="$bin" bash Tests/interop.sh
fi

# What needs root, and so runs as root (each script starts its nodes as unprivileged users where it can):
# - Tests/s3.sh: installs and starts a real OpenStack Swift (apt, daemons, a tmpfs for the full-device case);
# - Deploy/systemd-check.sh: installs the binary where the unit says and runs it under the unit's user and limits;
# - Deploy/netns-cluster.sh: network namespaces and veth links;
# - Deploy/container.sh: builds the image (mmdebstrap, buildah) and runs it in podman.
# ALEXANDRIA_CI_ROOT_PARTS=0 skips them (a developer without root runs everything above).
if [ "$(id -u)" -eq 0 ] && [ "${ALEXANDRIA_CI_ROOT_PARTS:-1}" != 0 ]; then
    bash Tests/s3.sh
    bash Deploy/systemd-check.sh "$bin"
    bash Deploy/netns-cluster.sh "$bin"
    bash Deploy/container.sh "$bin"
fi
