#!/usr/bin/env bash
# Benchmarks/registry.sh [DATA_DIR] — manifests and audit, each beside a baseline from the same run.
#   audit     full-content audit of a 10 GiB release (five 2 GiB files) vs openssl dgst -sha256 over the same files
#   publish   publish of a 4 GiB folder vs add of the same folder into a fresh home            (goal: under 2 % more)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=${1:-/tmp/alexandria-bench-data}
WORK=$(mktemp -d /tmp/alexandria-regbench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
echo "loadavg_1m_start: $(cut -d' ' -f1 /proc/loadavg) load"
(cd "$ROOT" && swift build -c release --product alexandria 2>&1 | tail -1 | sed 's/^/# /')
BIN="$(cd "$ROOT" && swift build -c release --show-bin-path)/alexandria"
[ -f "$DATA/random.bin" ] || bash "$ROOT/../shared/peers/make_data.sh" "$DATA" 2048 | sed 's/^/# /'
now() { date +%s.%N; }
median3() { sort -g | sed -n 2p; }

# A 10 GiB release: five 2 GiB files (hard links to two files' data; the store deduplicates, audit reads each).
mkdir -p "$WORK/ten"
ln "$DATA/bf16.bin" "$WORK/ten/a.bin"; ln "$DATA/random.bin" "$WORK/ten/b.bin"; ln "$DATA/bf16.bin" "$WORK/ten/c.bin"
ln "$DATA/random.bin" "$WORK/ten/d.bin"; ln "$DATA/bf16.bin" "$WORK/ten/e.bin"
"$BIN" init --home "$WORK/h" > /dev/null
"$BIN" keys generate bench --home "$WORK/h" > /dev/null
"$BIN" publish "$WORK/ten" --name ten --version 1 --home "$WORK/h" > /dev/null
cat "$DATA/bf16.bin" "$DATA/random.bin" > /dev/null
t_ssl=$(for _ in 1 2 3; do t0=$(now); openssl dgst -sha256 "$WORK"/ten/*.bin > /dev/null; echo "$(now) - $t0" | bc -l; done | median3)
t_audit=$(for _ in 1 2 3; do t0=$(now); "$BIN" audit bench/ten@1 --home "$WORK/h" > /dev/null; echo "$(now) - $t0" | bc -l; done | median3)
echo "openssl_dgst_10GiB: $(echo "scale=1; 10240 / $t_ssl" | bc -l) MiB/s"
echo "audit_full_10GiB: $(echo "scale=1; 10240 / $t_audit" | bc -l) MiB/s"
echo "audit_vs_openssl: $(echo "scale=3; $t_ssl / $t_audit" | bc -l) x"

# publish vs add of the same 4 GiB folder, each into a fresh home.
mkdir -p "$WORK/four"
ln "$DATA/bf16.bin" "$WORK/four/weights-1.bin"; ln "$DATA/random.bin" "$WORK/four/weights-2.bin"
echo '{"model_type": "bench"}' > "$WORK/four/config.json"
t_add=(); t_pub=()
for i in 1 2 3; do
    rm -rf "$WORK/a" "$WORK/p"
    "$BIN" init --home "$WORK/a" > /dev/null; sync
    t0=$(now); "$BIN" add --home "$WORK/a" "$WORK/four" > /dev/null; t_add+=("$(echo "$(now) - $t0" | bc -l)")
    "$BIN" init --home "$WORK/p" > /dev/null; "$BIN" keys generate k --home "$WORK/p" > /dev/null; rm -rf "$WORK/a"; sync
    t0=$(now); "$BIN" publish "$WORK/four" --name four --version "$i" --home "$WORK/p" > /dev/null
    t_pub+=("$(echo "$(now) - $t0" | bc -l)")
done
ta=$(printf '%s\n' "${t_add[@]}" | median3); tp=$(printf '%s\n' "${t_pub[@]}" | median3)
echo "add_4GiB_folder: $ta s"
echo "publish_4GiB_folder: $tp s"
echo "publish_over_add: $(echo "scale=2; ($tp - $ta) * 100 / $ta" | bc -l) %"
echo "loadavg_1m_end: $(cut -d' ' -f1 /proc/loadavg) load"
