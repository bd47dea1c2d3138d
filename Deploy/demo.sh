#!/usr/bin/env bash
# The main job on a fresh machine: a local demo network on loopback, on the embedded default (SQLite and the local
# disk). It builds alexandria, generates a small sample model (safetensors-like weights, config, tokenizer), checks
# the store by hand (add, verified reads against sha256sum, gc, verify), then starts five nodes as separate processes
# that find each other from one bootstrap address, publishes the model on one of them, shows the release gossiping
# and replicating to the mirrors (with their witness cosignatures), takes the publisher offline, fetches the release
# by hash from the mirrors into a fresh client with no --peer, makes the publisher attempt an overwrite from a
# restored backup of its key, shows every node catching it and (by the mirrors' trusted cosignatures) resolving the
# name to the original, and prints an audit. Everything lives in a temporary
# directory that is removed at the end (KEEP=1 keeps it), and every node is stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

# The system libraries it builds on: only what is missing is installed, and nothing is upgraded. A -dev package is
# pinned to the version of its runtime library already on the machine, so installing it cannot pull a newer one in.
declare -A runtime=([libsqlite3-dev]=libsqlite3-0 [libzstd-dev]=libzstd1 [libssl-dev]=libssl3)
missing=()
for package in libsqlite3-dev libzstd-dev libssl-dev; do
    dpkg -s "$package" >/dev/null 2>&1 && continue
    installed=$(dpkg-query -W -f='${Status} ${Version}' "${runtime[$package]}" 2>/dev/null \
        | sed -n 's/^install ok installed //p')
    missing+=("$package${installed:+=$installed}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "installing the missing build libraries: ${missing[*]} (no upgrades)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends --no-upgrade "${missing[@]}"
fi

# CONFIG=debug builds faster (a warm debug build is seconds); the default is the release build.
config=${CONFIG:-release}
printf '\033[1m== building alexandria (%s)\033[0m\n' "$config"
echo "A cold $config build compiles the dependencies too: several minutes on 2 cores. Progress:"
started=$SECONDS
set +o pipefail
swift build -c "$config" --product alexandria 2>&1 | while IFS= read -r line; do
    if [ "${line:0:1}" = "[" ]; then  # "[123/456] Compiling X": one updating line on a terminal
        if [ -t 1 ]; then printf '\r\033[K  %s' "${line:0:$((${COLUMNS:-80} - 3))}"; else echo "  $line"; fi
    elif [ -n "$line" ]; then  # errors, warnings, "Build complete!"
        if [ -t 1 ]; then printf '\r\033[K'; fi
        echo "  $line"
    fi
done
status=${PIPESTATUS[0]}
set -o pipefail
[ "$status" -eq 0 ] || { echo "swift build failed (exit $status)"; exit 1; }
echo "built in $((SECONDS - started)) s"
bin="$(swift build -c "$config" --show-bin-path)/alexandria"
work=$(mktemp -d /tmp/alexandria-demo.XXXXXX)
declare -A pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
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

base=$((20000 + RANDOM % 20000))
names=(publisher mirror1 mirror2 mirror3 mirror4)
start_node() {  # name index [bootstrap index]
    local name=$1 i=$2 boot=()
    [ $# -lt 3 ] || boot=(--peer "127.0.0.1:$((base + $3))")
    "$bin" node run --home "$work/$name" --listen "127.0.0.1:$((base + i))" --log-level warning "${boot[@]}" \
        2>>"$work/$name.log" &
    pids[$name]=$!
    for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$((base + i))) 2>/dev/null && return 0; sleep 0.1; done
    echo "node $name did not start"; exit 1
}
wait_for() {  # seconds description command...
    local limit=$1 what=$2; shift 2
    for _ in $(seq $((limit * 4))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
    echo "timed out waiting for: $what"; exit 1
}
table() {  # a line per node: catalog items, holds the release, witnesses seen
    printf '  %-10s %-8s %-14s %s\n' node items "holds release" witnesses
    for name in "$@"; do
        local items held wit
        items=$("$bin" status --json --home "$work/$name" | python3 -c 'import json,sys; print(json.load(sys.stdin)["catalogItems"])')
        held=$("$bin" audit "$manifest" --offline --json --home "$work/$name" 2>/dev/null \
            | python3 -c 'import json,sys; r=json.load(sys.stdin); print("yes" if all(f["present"] for f in r["files"]) else "no")' 2>/dev/null || echo "-")
        wit=$("$bin" audit "$manifest" --offline --json --home "$work/$name" 2>/dev/null \
            | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["witnesses"]))' 2>/dev/null || echo "-")
        printf '  %-10s %-8s %-14s %s\n' "$name" "$items" "$held" "$wit"
    done
}

step "five nodes on loopback: each knows one bootstrap address; peer exchange finds the rest"
for i in "${!names[@]}"; do "$bin" init --home "$work/${names[$i]}" > /dev/null; done
# Every node trusts the four mirrors as witnesses (the keys `alexandria status` prints), a quorum of three: what a
# quorum of them cosigned stands on every node, whatever other keys or clocks claim (Protocol/gossip-v1.md).
witness_keys=$(for name in "${names[@]:1}"; do
    "$bin" status --json --home "$work/$name" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["witnessKey"]))'
done | paste -sd, -)
trust="[trust]\nwitnesses = [$witness_keys]\nquorum = 3\n"
echo "[trust] witnesses = the mirrors' keys, quorum = 3"
for i in "${!names[@]}"; do
    printf "[mirror]\ninterval = \"1s\"\n$trust" > "$work/${names[$i]}/config.toml"
    if [ "$i" = 0 ]; then start_node "${names[$i]}" "$i"; else start_node "${names[$i]}" "$i" $((i - 1)); fi
done
echo "nodes on 127.0.0.1:$base..$((base + 4))"
wait_for 20 "a full mesh" bash -c "\"$bin\" peers --json --home \"$work/mirror4\" | python3 -c 'import json,sys; sys.exit(len(json.load(sys.stdin)[\"connected\"]) < 4)'"
"$bin" peers --home "$work/mirror4"

step "the publisher signs tiny-llama@1.0 (alexandria keys generate demo && alexandria publish)"
export ALEXANDRIA_HOME="$work/publisher"
"$bin" keys generate demo
"$bin" add "$model" > /dev/null
out=$("$bin" publish "$model" --name tiny-llama --version 1.0 --license apache-2.0 --json)
echo "$out"
release=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["release"])')
manifest=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["manifestID"])')
unset ALEXANDRIA_HOME

step "gossip: every node learns the release; mirrors pull its chunks, cosign its checkpoint and say they hold it"
for name in "${names[@]:1}"; do
    wait_for 30 "$name to hold the release" "$bin" audit "$manifest" --home "$work/$name"
done
sleep 2
table "${names[@]}"

step "the publisher goes offline"
kill -TERM "${pids[publisher]}"; wait "${pids[publisher]}" 2>/dev/null || true; unset 'pids[publisher]'
echo "stopped the publisher's node"

step "a fresh client fetches the weights by their sha256 (the value sha256sum prints), with no --peer"
weights=$(sha256sum "$model/model.safetensors" | cut -d' ' -f1)
"$bin" init --home "$work/client" > /dev/null
printf "[mirror]\nmode = \"pinned\"\n$trust" > "$work/client/config.toml"
start_node client 9 2
wait_for 20 "the client to learn the catalog and its peers" bash -c \
    "\"$bin\" audit $manifest --offline --home \"$work/client\" && test -s \"$work/client/peers.json\" && grep -q 127 \"$work/client/peers.json\""
"$bin" fetch "sha256:$weights" -o "$work/fetched.safetensors" --home "$work/client"
echo "sha256sum: $(sha256sum "$work/fetched.safetensors" | cut -d' ' -f1)  (wanted $weights)"
"$bin" fetch "$manifest" -o "$work/fetched-release" --home "$work/client"
ls -l "$work/fetched-release"

# --- gateway block (self-contained): Hugging Face tools against a node that held nothing, publisher gone ---
step "huggingface_hub's snapshot_download pulls the release through a fresh node's HTTP gateway"
hfvenv=${HF_VENV:-/tmp/alexandria-interop-venv}
if ! "$hfvenv/bin/python" -c 'import huggingface_hub' 2>/dev/null; then
    python3 -m venv "$hfvenv" && "$hfvenv/bin/pip" install -q huggingface_hub==2.4.0
fi
"$bin" init --home "$work/gateway" > /dev/null
gateway_http=$((base + 16))
"$bin" node run --home "$work/gateway" --listen "127.0.0.1:$((base + 6))" --peer "127.0.0.1:$((base + 2))" \
    --no-mirror --http "127.0.0.1:$gateway_http" --log-level warning 2>>"$work/gateway.log" &
pids[gateway]=$!
hf_repo=${release%@*}
hf_version=${release##*@}
wait_for 30 "the gateway node to learn $release" \
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$gateway_http/api/models/$hf_repo/revision/$hf_version')"
HF_ENDPOINT="http://127.0.0.1:$gateway_http" HF_HUB_DISABLE_XET=1 HF_HUB_CACHE="$work/hf-cache" \
    HF_HUB_DISABLE_PROGRESS_BARS=1 "$hfvenv/bin/python" - "$hf_repo" "$hf_version" <<'PY'
import hashlib, os, sys
from huggingface_hub import snapshot_download
path = snapshot_download(sys.argv[1], revision=sys.argv[2])
print(f"snapshot_download({sys.argv[1][:16]}…/{sys.argv[1].split('/')[1]}, revision={sys.argv[2]!r}) -> commit {os.path.basename(path)}")
for name in sorted(os.listdir(path)):
    print(f"  {name}: sha256 {hashlib.sha256(open(os.path.join(path, name), 'rb').read()).hexdigest()}")
PY
echo "(the commit is the first 40 hex of the manifest id ${manifest:7:40}; the node pulled every file from the mirrors)"
# --- end of gateway block ---

step "the publisher, restored from a backup of its key with no log, signs other weights as tiny-llama@1.0"
"$bin" init --home "$work/rogue" > /dev/null
printf "$trust" > "$work/rogue/config.toml"
echo "demo-passphrase" > "$work/pass"
"$bin" keys export demo -o "$work/demo.pem" --passphrase-file "$work/pass" --home "$work/publisher"
"$bin" keys import "$work/demo.pem" --name demo --passphrase-file "$work/pass" --home "$work/rogue"
forged="$work/forged"; cp -r "$model" "$forged"
python3 -c "import sys; b=bytearray(open(sys.argv[1],'rb').read()); b[-1]^=1; open(sys.argv[1],'wb').write(b)" "$forged/model.safetensors"
forged_out=$("$bin" publish "$forged" --name tiny-llama --version 1.0 --license apache-2.0 --assume-log-current \
    --json --home "$work/rogue")
forged_manifest=$(echo "$forged_out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["manifestID"])')
cat <<EXPLAIN
The hashes from here on, explained:
  $manifest
      the ORIGINAL manifest id: the sha256 of the signed release statement published first for $release
      (it lists every file's sha256; the weights' is $weights)
  $forged_manifest
      the FORGED manifest id: a second statement, signed with the same key for the same name and version, over
      weights with one bit flipped (sha256 $(sha256sum "$forged/model.safetensors" | cut -d' ' -f1))
Two different statements signed for one release are an equivocation: every node that sees both keeps the first
as the release and the pair as a proof, and gossips the proof. Below, each node resolves $release and
prints the manifest id it gets (it must be the original), then an audit shows both manifests side by side.
EXPLAIN
start_node rogue 8 3
for name in mirror1 mirror2 mirror3 mirror4 client rogue; do
    wait_for 30 "$name to see the overwrite attempt" bash -c "\"$bin\" audit $release --offline --home \"$work/$name\"; test \$? -eq 6"
    resolved=$("$bin" audit "$release" --offline --json --home "$work/$name" | python3 -c 'import json,sys; print(json.load(sys.stdin)["manifestID"])' || true)
    echo "  $name: overwrite attempt caught (audit exit 6); $release -> ${resolved:0:23}… $([ "$resolved" = "$manifest" ] && echo "(the original)" || echo "(NOT the original)")"
done

step "alexandria audit $release on mirror2"
echo "(the release still stands for the original ${manifest:7:16}…; the overwrite attempt lists the forged ${forged_manifest:7:16}…)"
"$bin" audit "$release" --home "$work/mirror2" || echo "(audit exit $?: 6 means an overwrite attempt was seen, as shown above)"

step "alexandria status on mirror2"
"$bin" status --home "$work/mirror2"

step "tearing down: every node stops gracefully"
