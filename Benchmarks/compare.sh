#!/usr/bin/env bash
# Benchmarks/compare.sh [DATA_DIR] — one invocation: every performance goal of the project and the peer tools, on the
# same data, each as a ratio to a baseline measured in the same run. Prints `name: value unit` lines as it goes, then
# a table of ratios, and writes a PNG bar chart of them (with the date and the machine) to $OUT/compare.png.
# Not part of CI: a full run takes about 25 minutes on 2 cores.
#
#   ingest     alexandria add (bf16, random)      vs openssl dgst -sha256, the pairs alternated      (goal >= 0.9)
#   cat        alexandria cat (verified)          vs the SHA-256 kernel on both cores, same run       (goal >= 0.9)
#   compressor gc's compressor throughput (bf16)  vs ingest throughput of the same file               (goal >= 1)
#   fetch      one peer, verified, into a file    vs curl from nginx into a file (Benchmarks/fetch.sh) (goal >= 0.8)
#              and four rate-limited peers vs 4R (goal >= 0.75); kubo and libtorrent fetch of the same file
#   gossip     messages per announcement, 50 node processes (Benchmarks/gossip.sh)               (goal <= 3n)
#   rss        peak RSS of alexandria add of one RSS_MIB file (4 GiB; BIG=1: 20 GiB)            (goal < 200 MB)
#   peers      nginx -> curl / aria2c -x4 (http_loopback.sh), hf_hub_download via the mock endpoint (hf_endpoint.sh),
#              model_signing sign/verify (model_signing.sh) vs alexandria publish/audit of the same two files
#
# The peers' scripts are ../shared/peers relative to the repository (install them with its install.sh, as root).
# Stages, each 1 (run) or 0 (skip): STORE, FETCH, GOSSIP (or SKIP_GOSSIP=1), RSS, PEERS, CHART.
# env: SIZE_MIB (2048), RUNS (3 pairs), RSS_MIB (4096; BIG=1 makes it 20480), BIN (a built alexandria: skips the
#      build), OUT (results directory, default /tmp/alexandria-compare-DATE), GOSSIP_IDLE (10 s),
#      CHART_VENV (/tmp/alexandria-compare-venv; matplotlib is installed there from PyPI if missing)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=${1:-/tmp/alexandria-bench-data}
SIZE_MIB=${SIZE_MIB:-2048}
RUNS=${RUNS:-3}
STORE=${STORE:-1}
FETCH=${FETCH:-1}
GOSSIP=${GOSSIP:-1}
[ "${SKIP_GOSSIP:-0}" = 1 ] && GOSSIP=0
RSS=${RSS:-1}
PEERS=${PEERS:-1}
CHART=${CHART:-1}
RSS_MIB=${RSS_MIB:-4096}
[ "${BIG:-0}" = 1 ] && RSS_MIB=20480
PEERS_DIR="$ROOT/../shared/peers"
[ -d "$PEERS_DIR" ] || PEERS_DIR=/work/shared/peers
STAMP=$(date -u +%Y-%m-%dT%H%MZ)
OUT=${OUT:-/tmp/alexandria-compare-$STAMP}
CHART_VENV=${CHART_VENV:-/tmp/alexandria-compare-venv}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/alexandria-compare.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
RESULTS="$OUT/results.txt"   # every name: value unit line
RATIOS="$OUT/ratios.tsv"     # figure, median ratio, min, max, goal, direction, baseline
: > "$RESULTS"
printf 'figure\tratio\tmin\tmax\tgoal\tdir\tbaseline\n' > "$RATIOS"

say() { echo "$*" | tee -a "$RESULTS"; }
now() { date +%s.%N; }
calc() { echo "scale=6; $*" | bc -l; }
fmt() { printf '%.3f' "$1"; }
stats() {  # values... -> "median min max"
    printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)], a[1], a[NR]}'
}
ratio_row() {  # figure median min max goal dir baseline
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$RATIOS"
}
# pick NAME FILE: the value of `NAME: value unit` in FILE (empty if absent).
pick() { sed -n "s/^$1: \([0-9.]*\).*/\1/p" "$2" | head -1; }

say "loadavg_1m_start: $(cut -d' ' -f1 /proc/loadavg) load"
say "machine: $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
if [ -z "${BIN:-}" ]; then
    (cd "$ROOT" && swift build -c release --product alexandria 2>&1 | tail -1 | sed 's/^/# /')
    BIN="$(cd "$ROOT" && swift build -c release --show-bin-path)/alexandria"
fi
export BIN
mkdir -p "$DATA"
[ -f "$DATA/random.bin" ] && [ -f "$DATA/bf16.bin" ] && [ "$(stat -c %s "$DATA/random.bin")" = $((SIZE_MIB << 20)) ] ||
    bash "$PEERS_DIR/make_data.sh" "$DATA" "$SIZE_MIB" | sed 's/^/# /'

fresh_home() { rm -rf "$WORK/home"; "$BIN" init --home "$WORK/home" > /dev/null; sync; }
seconds() {  # CMD...: wall seconds of one run, output discarded
    local t0; t0=$(now); "$@" > /dev/null; calc "$(now) - $t0"
}

# --- Store: ingest vs openssl, verified cat vs the two-core kernel, compressor vs ingest ------------------------------
if [ "$STORE" = 1 ]; then
    # The kernel's ceiling on this machine: the two-way SHA-NI kernel on each core at once (two processes).
    KTEST="$WORK/sha256x2_test"
    cc -O2 -I"$ROOT/Sources/CSHA256x2/include" "$ROOT/Sources/CSHA256x2/sha256x2.c" \
        "$ROOT/Benchmarks/sha256x2/sha256x2_test.c" -lcrypto -o "$KTEST"
    kernel_two_cores() {  # -> bytes/s, the sum of both processes' two-stream rates
        "$KTEST" 256 3 > "$WORK/k1" & local p1=$!
        "$KTEST" 256 3 > "$WORK/k2" & local p2=$!
        wait "$p1" "$p2"
        calc "($(pick shani_x2_aggregate "$WORK/k1") + $(pick shani_x2_aggregate "$WORK/k2")) * 1000000000"
    }
    for name in bf16 random; do
        file="$DATA/$name.bin"; size=$(stat -c %s "$file")
        address="sha256:$(openssl dgst -sha256 -r "$file" | cut -c1-64)"
        r_add=(); t_adds=(); r_cat=(); k_all=(); c_all=()
        for i in $(seq "$RUNS"); do
            # A/B alternated: openssl then add on odd runs, add then openssl on even runs; each add into a fresh home.
            cat "$file" > /dev/null
            fresh_home
            if [ $((i % 2)) = 1 ]; then
                ts=$(seconds openssl dgst -sha256 "$file"); ta=$(seconds "$BIN" add --home "$WORK/home" "$file")
            else
                ta=$(seconds "$BIN" add --home "$WORK/home" "$file"); ts=$(seconds openssl dgst -sha256 "$file")
            fi
            r_add+=("$(calc "$ts / $ta")"); t_adds+=("$ta")
            k=$(kernel_two_cores); tc=$(seconds "$BIN" cat --home "$WORK/home" "$address")
            k_all+=("$k"); c_all+=("$(calc "$size / $tc")")
            r_cat+=("$(calc "$size / $tc / $k")")
            echo "# $name run $i: openssl $(fmt "$(calc "$size / 1048576 / $ts")") MiB/s, add $(fmt "$(calc "$size / 1048576 / $ta")") MiB/s, cat $(fmt "$(calc "$size / 1000000000 / $tc")") GB/s, kernel x2 on two cores $(fmt "$(calc "$k / 1000000000")") GB/s"
        done
        read -r m lo hi <<< "$(stats "${r_add[@]}")"
        say "add_${name}_vs_openssl: $(fmt "$m") x (min $(fmt "$lo"), max $(fmt "$hi"), $RUNS alternated pairs)"
        ratio_row "ingest $name vs openssl dgst" "$m" "$lo" "$hi" 0.9 ge "openssl dgst -sha256"
        read -r m lo hi <<< "$(stats "${r_cat[@]}")"
        say "cat_verified_${name}: $(fmt "$(calc "$(stats "${c_all[@]}" | cut -d' ' -f1) / 1000000000")") GB/s"
        say "sha256_kernel_two_cores: $(fmt "$(calc "$(stats "${k_all[@]}" | cut -d' ' -f1) / 1000000000")") GB/s"
        say "cat_verified_${name}_vs_kernel_limit: $(fmt "$m") x (min $(fmt "$lo"), max $(fmt "$hi"))"
        ratio_row "verified cat $name vs SHA-256 limit" "$m" "$lo" "$hi" 0.9 ge "two-way kernel on both cores"
        if [ "$name" = bf16 ]; then
            ta=$(stats "${t_adds[@]}" | cut -d' ' -f1)
            gc=$("$BIN" gc --home "$WORK/home" --json)
            read -r after offered secs < <(echo "$gc" | python3 -c \
                'import json,sys; g=json.load(sys.stdin); print(g["bytesAfter"], g["bytesOfferedToCompressor"], g["compressSeconds"])')
            m=$(calc "($offered / $secs) / ($size / $ta)")
            say "stored_bf16_after_gc: $(fmt "$(calc "$after / $size")") of original"
            say "compressor_bf16: $(fmt "$(calc "$offered / 1048576 / $secs")") MiB/s"
            say "compressor_vs_add_bf16: $(fmt "$m") x"
            ratio_row "compressor vs ingest (bf16)" "$m" "$m" "$m" 1 ge "alexandria add, same file"
        fi
    done
fi

# --- Fetch: one peer vs curl from nginx, four rate-limited peers, kubo and libtorrent (Benchmarks/fetch.sh) ----------
ours_fetch=""
if [ "$FETCH" = 1 ]; then
    RUNS=$RUNS bash "$ROOT/Benchmarks/fetch.sh" "$DATA" 2>&1 | tee "$OUT/fetch.txt" | sed 's/^/  /'
    grep -E '^[a-z_0-9]+: ' "$OUT/fetch.txt" >> "$RESULTS" || true
    ours_fetch=$(pick fetch_one_peer_to_file "$OUT/fetch.txt")
    runs=$(sed -n 's/^# run [0-9]*: curl \([0-9.]*\) MiB\/s, fetch \([0-9.]*\) MiB\/s$/\1 \2/p' "$OUT/fetch.txt" |
        awk '{print $2 / $1}')
    # shellcheck disable=SC2086
    read -r m lo hi <<< "$(stats $runs)"
    ratio_row "one-peer fetch vs curl from nginx" "$m" "$lo" "$hi" 0.8 ge "nginx + curl -o file"
    v=$(pick four_peers_vs_4R "$OUT/fetch.txt"); [ -n "$v" ] && ratio_row "four limited peers vs 4R" "$v" "$v" "$v" 0.75 ge "4 x --upload-rate"
    v=$(pick fetch_one_peer_vs_kubo "$OUT/fetch.txt"); [ -n "$v" ] && ratio_row "one-peer fetch vs IPFS kubo" "$v" "$v" "$v" 10 ge "kubo bitswap fetch"
    v=$(pick fetch_one_peer_vs_libtorrent "$OUT/fetch.txt"); [ -n "$v" ] && ratio_row "one-peer fetch vs libtorrent" "$v" "$v" "$v" 2 ge "libtorrent seeder -> leecher"
fi

# --- Gossip: messages per announcement at 50 nodes (Benchmarks/gossip.sh) -------------------------------------------
if [ "$GOSSIP" = 1 ]; then
    IDLE_SECONDS=${GOSSIP_IDLE:-10} bash "$ROOT/Benchmarks/gossip.sh" 2>&1 | tee "$OUT/gossip.txt" | sed 's/^/  /'
    grep -E '^[a-z_0-9]+: ' "$OUT/gossip.txt" >> "$RESULTS" || true
    n=$(sed -n 's/^messages_per_announcement: .*(\([0-9.]*\) n;.*/\1/p' "$OUT/gossip.txt")
    # Shown as goal / measured so that, like every other bar, above 1 means the goal is met.
    [ -n "$n" ] && ratio_row "gossip: 3n / messages per announcement" "$(calc "3 / $n")" "$(calc "3 / $n")" "$(calc "3 / $n")" 1 ge "3n messages, 50 nodes"
fi

# --- Peak RSS of one large add ----------------------------------------------------------------------------------------
if [ "$RSS" = 1 ]; then
    big="$DATA/rss-$RSS_MIB.bin"
    if [ ! -f "$big" ]; then  # random and bf16 halves alternated, so both kinds of data pass through
        for _ in $(seq $((RSS_MIB / (2 * SIZE_MIB)))); do cat "$DATA/random.bin" "$DATA/bf16.bin"; done > "$big"
    fi
    fresh_home
    /usr/bin/time -f "%M %e" -o "$WORK/time" "$BIN" add --home "$WORK/home" "$big" > /dev/null
    read -r kb secs < "$WORK/time"
    size=$(stat -c %s "$big")
    say "add_$((size >> 20))MiB_peak_rss: $((kb / 1024)) MiB"
    say "add_$((size >> 20))MiB: $(fmt "$(calc "$size / 1048576 / $secs")") MiB/s"
    m=$(calc "200000 / ($kb * 1.024)")   # 200 MB / peak RSS in MB
    ratio_row "200 MB / peak RSS, add of $((size >> 20)) MiB" "$m" "$m" "$m" 1 ge "200 MB"
    rm -rf "$WORK/home"
    [ "${KEEP_BIG:-0}" = 1 ] || rm -f "$big"
fi

# --- Peers: nginx with curl and aria2c, hf_hub_download, model_signing ------------------------------------------------
if [ "$PEERS" = 1 ]; then
    PORT=18180 FILES=random TOOLS="curl aria2c" RUNS=$RUNS bash "$PEERS_DIR/http_loopback.sh" "$DATA" 2>&1 |
        tee "$OUT/http.txt" | grep -E '^[a-z_0-9]+: ' | sed 's/^/  /' || true
    NPORT=18182 MPORT=18183 FILES=random bash "$PEERS_DIR/hf_endpoint.sh" "$DATA" 2>&1 | tee "$OUT/hf.txt" |
        grep -E '^[a-z_0-9]+: ' | sed 's/^/  /' || true
    RUNS=$RUNS bash "$PEERS_DIR/model_signing.sh" "$DATA" 2>&1 | tee "$OUT/oms.txt" | grep -E '^[a-z_0-9]+: ' |
        sed 's/^/  /' || true
    cat "$OUT/http.txt" "$OUT/hf.txt" "$OUT/oms.txt" | grep -E '^[a-z_0-9]+: ' >> "$RESULTS" || true
    if [ -n "$ours_fetch" ]; then
        for peer in "curl_file_random_median_tput|nginx + curl -o file (hyperfine)" \
            "aria2c_x4_random_median_tput|nginx + aria2c -x4" "aria2c_x1_random_median_tput|nginx + aria2c -x1" \
            "hf_hub_download_cold_random_tput|hf_hub_download, mock endpoint"; do
            key=${peer%%|*}; label=${peer#*|}
            v=$(pick "$key" "$OUT/http.txt"); [ -n "$v" ] || v=$(pick "$key" "$OUT/hf.txt")
            [ -n "$v" ] && ratio_row "one-peer fetch vs $label" "$(calc "$ours_fetch / $v")" \
                "$(calc "$ours_fetch / $v")" "$(calc "$ours_fetch / $v")" 1 ge "$label"
        done
    else
        echo "# FETCH=0: no fetch figure of ours to set beside curl / aria2c / hf_hub_download"
    fi
    # The audit: publish and audit (signature + re-hash of the content) the same two files model_signing signs.
    rm -rf "$WORK/model" && mkdir -p "$WORK/model"
    ln "$DATA/random.bin" "$WORK/model/random.bin" 2>/dev/null || cp "$DATA/random.bin" "$WORK/model/"
    ln "$DATA/bf16.bin" "$WORK/model/bf16.bin" 2>/dev/null || cp "$DATA/bf16.bin" "$WORK/model/"
    echo '{"model_type":"bench"}' > "$WORK/model/config.json"
    fresh_home
    "$BIN" keys generate bench --home "$WORK/home" > /dev/null
    cat "$WORK/model"/*.bin > /dev/null
    tp=$(seconds "$BIN" publish "$WORK/model" --name bench --version 1.0 --home "$WORK/home")
    ref="bench/bench@1.0"   # the key name stands for its publisher id on this node
    t_aud=()
    for _ in $(seq "$RUNS"); do t_aud+=("$(seconds "$BIN" audit "$ref" --home "$WORK/home")"); done
    ta=$(stats "${t_aud[@]}" | cut -d' ' -f1)
    bytes=$(( $(stat -c %s "$DATA/random.bin") + $(stat -c %s "$DATA/bf16.bin") ))
    say "alexandria_publish_2_files: $(fmt "$(calc "$bytes / 1048576 / $tp")") MiB/s"
    say "alexandria_audit_2_files: $(fmt "$(calc "$bytes / 1048576 / $ta")") MiB/s"
    for pair in "sign|$tp|publish vs model_signing sign" "verify|$ta|audit vs model_signing verify"; do
        op=${pair%%|*}; rest=${pair#*|}; t=${rest%%|*}; label=${rest#*|}
        v=$(pick "model_signing_${op}_key_median_tput" "$OUT/oms.txt")
        [ -n "$v" ] && ratio_row "$label" "$(calc "$bytes / 1048576 / $t / $v")" "$(calc "$bytes / 1048576 / $t / $v")" \
            "$(calc "$bytes / 1048576 / $t / $v")" 1 ge "model_signing $op (key)"
    done
    rm -rf "$WORK/model" "$WORK/home"
fi
say "loadavg_1m_end: $(cut -d' ' -f1 /proc/loadavg) load"

# --- The table and the chart --------------------------------------------------------------------------------------------
echo
echo "ratio table (above 1 means Alexandria is faster / within the goal; min-max over the alternated pairs):"
awk -F'\t' 'NR > 1 { ok = ($2 >= $5) ? "met" : "NOT met"
    printf "  %-46s %7.3f  (%5.3f-%5.3f)  goal >= %-5s %-7s vs %s\n", $1, $2, $3, $4, $5, ok, $7 }' "$RATIOS" |
    tee "$OUT/table.txt"
if [ "$CHART" = 1 ]; then
    [ -x "$CHART_VENV/bin/python" ] && "$CHART_VENV/bin/python" -c 'import matplotlib' 2>/dev/null || {
        python3 -m venv "$CHART_VENV" && "$CHART_VENV/bin/pip" install -q matplotlib
    }
    "$CHART_VENV/bin/python" "$ROOT/Benchmarks/compare_chart.py" "$RATIOS" "$OUT/compare.png" \
        "$(date -u +%Y-%m-%d) · $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//') · load $(cut -d' ' -f1 /proc/loadavg)"
    echo "chart: $OUT/compare.png"
fi
echo "results: $OUT"
