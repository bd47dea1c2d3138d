#!/usr/bin/env bash
# The main job on a fresh machine: builds alexandria, creates a home, generates a small sample model folder
# (safetensors-like weights, config, tokenizer), adds it, reads every file back verified, scrubs the store; then
# publishes it as a signed release, serves it from a node, fetches it by name into a second home over loopback,
# audits it there, and shows an overwrite being refused. Everything lives in a temporary directory that is removed
# at the end (KEEP=1 keeps it), and the node is stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for package in libsqlite3-dev libzstd-dev libssl-dev; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

swift build -c release --product alexandria 2>&1 | tail -1
bin="$(swift build -c release --show-bin-path)/alexandria"
work=$(mktemp -d /tmp/alexandria-demo.XXXXXX)
node_pid=""
cleanup() {
    [ -z "$node_pid" ] || kill -TERM "$node_pid" 2>/dev/null || true
    [ -z "$node_pid" ] || wait "$node_pid" 2>/dev/null || true
    [ "${KEEP:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
export ALEXANDRIA_HOME="$work/home"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "alexandria init"
"$bin" init

step "generating a sample model folder"
model="$work/tiny-llama"
mkdir -p "$model"
python3 - "$model" <<'PY'
import json, os, random, struct, sys
model = sys.argv[1]
rng = random.Random(20261123)
def bf16(n):
    out = bytearray()
    for _ in range(n):
        f = rng.gauss(0.0, 0.02)
        out += struct.pack('<I', struct.unpack('<I', struct.pack('<f', f))[0])[2:4]
    return bytes(out)
tensors, data = {}, b""
for name, n in [("embed.weight", 1 << 20), ("layer0.weight", 1 << 20), ("layer1.weight", 1 << 20)]:
    blob = bf16(n)
    tensors[name] = {"dtype": "BF16", "shape": [n], "data_offsets": [len(data), len(data) + len(blob)]}
    data += blob
header = json.dumps(tensors).encode()
with open(os.path.join(model, "model.safetensors"), "wb") as f:
    f.write(struct.pack('<Q', len(header)) + header + data)
json.dump({"model_type": "llama", "hidden_size": 64}, open(os.path.join(model, "config.json"), "w"))
json.dump({"version": "1.0", "model": {"vocab": {"a": 0, "b": 1}}}, open(os.path.join(model, "tokenizer.json"), "w"))
open(os.path.join(model, "README.md"), "w").write("# tiny-llama\nA generated sample model.\n")
PY
ls -l "$model"

step "alexandria add $model"
"$bin" add "$model"

step "reading every file back, verified, and comparing with sha256sum"
for f in "$model"/*; do
    want=$(sha256sum "$f" | cut -d' ' -f1)
    got=$("$bin" cat "sha256:$want" | sha256sum | cut -d' ' -f1)
    [ "$want" = "$got" ] || { echo "MISMATCH for $f"; exit 1; }
    echo "ok  sha256:$want  $(basename "$f")"
done

step "a byte range: the safetensors header length (first 8 bytes)"
"$bin" cat --range 0-7 "sha256:$(sha256sum "$model/model.safetensors" | cut -d' ' -f1)" | od -An -tu8

step "alexandria gc (compresses the weights in the background of a node; here by hand)"
"$bin" gc

step "alexandria verify"
"$bin" verify

step "alexandria status"
"$bin" status

step "alexandria keys generate demo && alexandria publish"
"$bin" keys generate demo
"$bin" publish "$model" --name tiny-llama --version 1.0 --license apache-2.0
release=$("$bin" publish "$model" --name tiny-llama --version 1.0 --license apache-2.0 --json \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["release"])')

step "publishing other bytes under the same release is refused"
echo '{"model_type": "llama", "hidden_size": 128}' > "$model/config.json"
"$bin" publish "$model" --name tiny-llama --version 1.0 --license apache-2.0 || echo "(refused, exit $?)"

step "alexandria node run (serving this home on loopback)"
port=$((20000 + RANDOM % 20000))
"$bin" node run --listen "127.0.0.1:$port" --log-level warning &
node_pid=$!
for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
echo "node $node_pid listening on 127.0.0.1:$port"

step "a second home fetches $release from the node"
export ALEXANDRIA_HOME="$work/mirror"
"$bin" init > /dev/null
"$bin" fetch "$release" -o "$work/fetched" --peer "127.0.0.1:$port"
ls -l "$work/fetched"

step "alexandria audit on the second home"
"$bin" audit "$release"
