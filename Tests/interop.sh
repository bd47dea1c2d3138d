#!/usr/bin/env bash
# Interop checks of the HTTP gateway with real clients (huggingface_hub, the hf CLI, safetensors, skopeo, oras,
# modelpack-client).
# Installs what it needs itself: skopeo from apt only if missing (never upgraded), and a virtualenv with pinned
# packages. Expects a built binary (ALEXANDRIA, default .build/debug/alexandria). Ends with `N passed, M failed`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export ALEXANDRIA=${ALEXANDRIA:-$ROOT/.build/debug/alexandria}
VENV=${INTEROP_VENV:-/tmp/alexandria-interop-venv}
PINS=(huggingface_hub==2.4.0 safetensors==0.8.0 numpy==2.4.6 oras==0.2.43 modelpack-client==0.1.0)

if ! command -v skopeo >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends skopeo >/dev/null
fi
if ! "$VENV/bin/python" -c 'import huggingface_hub, safetensors, numpy, oras, modelpack_client
assert huggingface_hub.__version__ == "2.4.0"' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "${PINS[@]}"
fi

WORK=$(mktemp -d /tmp/alexandria-interop.XXXXXX)
export WORK
trap 'rm -rf "$WORK"' EXIT
"$VENV/bin/python" "$ROOT/Tests/interop/gateway_interop.py"
