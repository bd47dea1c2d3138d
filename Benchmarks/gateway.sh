#!/usr/bin/env bash
# Gateway figures, each beside a baseline measured in the same run (use a release build):
#   local GET of a 1 GiB file (curl -o /dev/null and -o file) vs nginx serving the same file from disk;
#   snapshot_download of a 2 GiB release through the gateway vs the nginx-backed mock Hub endpoint;
#   pull-through TTFB and throughput from a node that held nothing vs a direct `alexandria fetch`;
#   peak RSS of the node with 50 concurrent downloads (and nginx's beside it).
#   Benchmarks/gateway.sh [DIR]    (ALEXANDRIA=path/to/alexandria, PY=python with huggingface_hub,
#                                   PARTS="get snapshot pull rss" to run only some, RUNS=3 tries per GET figure)
# Prints `name: value unit` lines. Talks to 127.0.0.1 only; stops what it starts by PID.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${ALEXANDRIA:-$ROOT/.build/release/alexandria}
DIR=${1:-/tmp/alexandria-gateway-bench}
PY=${PY:-/tmp/peers-venv/bin/python}
RUNS=${RUNS:-3}
PARTS=${PARTS:-get snapshot pull rss}
part() { [[ " $PARTS " == *" $1 "* ]]; }
PEERS=${PEERS:-$(cd "$(dirname "$0")/../.." && pwd)/shared/peers}
[ -d "$PEERS" ] || PEERS=/work/shared/peers  # a clone outside /work/main
mkdir -p "$DIR/data"
WORK=$(mktemp -d /tmp/gateway-bench.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
echo "loadavg_1m_start: $(cut -d' ' -f1 /proc/loadavg) load"
for f in r1 r2; do
    [ -s "$DIR/data/$f.bin" ] || openssl enc -aes-256-ctr -pass "pass:$f" -nosalt -pbkdf2 < /dev/zero 2>/dev/null \
        | head -c $((1 << 30)) > "$DIR/data/$f.bin"
done
printf '{"architectures":["BenchModel"],"hidden_size":4096}\n' > "$DIR/data/config.json"
H1=$(sha256sum "$DIR/data/r1.bin" | cut -c1-64)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
node() {  # home http-port extra...
    local home=$1 http=$2; shift 2
    local p; p=$(port)
    "$BIN" node run --home "$home" --listen "127.0.0.1:$p" --http "127.0.0.1:$http" --log-level warning "$@" \
        2>>"$WORK/node.log" &
    pids+=($!)
    LAST_PID=$!
    LAST_PEER=127.0.0.1:$p
    wait_port "$http"
}
mibs() { python3 -c "import sys; print(f'{$1/$2/1048576:.0f}')"; }
# A fresh home whose node does not compress packs while idle: a rewrite of a 1 GiB pack in the middle of the runs
# would take a core from whichever side happens to be measured then.
init_home() {
    "$BIN" init --home "$1" > /dev/null
    sed -i 's/^idle_compression = .*/idle_compression = 0/' "$1/config.toml"
}

# The publisher's node, holding the release.
A=$WORK/a
init_home "$A"
"$BIN" keys generate bench --home "$A" > /dev/null
t0=$(date +%s.%N)
out=$("$BIN" publish "$DIR/data" --name bench --version 1.0 --json --home "$A")
echo "publish_2GiB: $(echo "$(date +%s.%N) - $t0" | bc -l | cut -c1-6) s"
PUB=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["release"].split("/")[0])')
HA=$(port)
node "$A" "$HA"
NODE_A=$LAST_PID
PEER_A=$LAST_PEER

# nginx serving the same file from disk (as ../shared/peers/http_loopback.sh does).
NP=$(port)
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<NGX
worker_processes 1; daemon off; pid $WORK/nginx/nginx.pid; error_log $WORK/nginx/error.log warn;
events { worker_connections 256; }
http { access_log off; sendfile on; tcp_nopush on; tcp_nodelay on; default_type application/octet-stream;
  client_body_temp_path $WORK/nginx/cb; proxy_temp_path $WORK/nginx/px; fastcgi_temp_path $WORK/nginx/fc;
  uwsgi_temp_path $WORK/nginx/uw; scgi_temp_path $WORK/nginx/sc;
  server { listen 127.0.0.1:$NP; root $DIR/data; } }
NGX
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" &
pids+=($!)
NGINX=$!
wait_port "$NP"
cat "$DIR/data/r1.bin" > /dev/null

# 1. Local 1 GiB GET: nginx and the gateway alternate, run by run, so both see the same load.
SIZE=$((1 << 30))
if part get; then
for sink in devnull file; do
    declare -A best=([nginx]=0 [gateway]=0)
    for _ in $(seq "$RUNS"); do
        for target in nginx gateway; do
            url=$([ $target = nginx ] && echo "http://127.0.0.1:$NP/r1.bin" || echo "http://127.0.0.1:$HA/sha256/$H1")
            rm -f "$WORK/out.bin"
            dest=$([ $sink = devnull ] && echo /dev/null || echo "$WORK/out.bin")
            t=$(curl -sf -o "$dest" -w '%{time_total}' "$url")
            r=$(mibs $SIZE "$t")
            [ "$r" -gt "${best[$target]}" ] && best[$target]=$r
        done
    done
    for target in nginx gateway; do echo "get_1GiB_${sink}_${target}: ${best[$target]} MiB/s (best of $RUNS)"; done
    echo "get_1GiB_${sink}_ratio: $(python3 -c "print(f'{${best[gateway]}/${best[nginx]}:.2f}')") x nginx"
done
[ "$(sha256sum < "$WORK/out.bin" | cut -c1-64)" = "$H1" ] && echo "get_1GiB_gateway_verified: 1 bool"
rm -f "$WORK/out.bin"
fi

# 2. snapshot_download of the 2 GiB release: the nginx-backed mock endpoint, then the gateway, same client.
if part snapshot; then
FILES="r1 r2" PY="$PY" bash "$PEERS/hf_endpoint.sh" "$DIR/data" 2>&1 | grep -E "snapshot_download_cold|hf_hub_download_cold_r1_tput|huggingface_hub_version" \
    | sed 's/^/mock_/'
env HF_ENDPOINT="http://127.0.0.1:$HA" HF_HUB_DISABLE_XET=1 HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_PROGRESS_BARS=1 \
    HF_HOME="$WORK/hfhome" "$PY" "$PEERS/hf_client.py" "$PUB/bench" r1.bin "$WORK/hfcache" 2>/dev/null \
    | grep -E "snapshot_download_cold|hf_hub_download_cold_r1_tput" | sed 's/^/gateway_/'
rm -rf "$WORK/hfcache"
fi

# 3. Pull-through from a node that held nothing, vs a direct fetch from the same holder.
if part pull; then
B=$WORK/b
init_home "$B"
HB=$(port)
node "$B" "$HB" --peer "$PEER_A" --no-mirror
for _ in $(seq 200); do curl -sf -o /dev/null "http://127.0.0.1:$HB/api/models/$PUB/bench/revision/1.0" && break; sleep 0.1; done
read -r ttfb total < <(curl -sf -o /dev/null -w '%{time_starttransfer} %{time_total}\n' \
    "http://127.0.0.1:$HB/$PUB/bench/resolve/1.0/r1.bin")
echo "pullthrough_1GiB_ttfb: $(echo "$ttfb * 1000" | bc -l | cut -d. -f1) ms"
echo "pullthrough_1GiB_tput: $(mibs $SIZE "$total") MiB/s"
fi
part pull || part rss || exit 0
C=$WORK/c
init_home "$C"
t0=$(date +%s.%N)
"$BIN" fetch "sha256:$H1" -o "$WORK/fetched.bin" --peer "$PEER_A" --home "$C" > /dev/null
dt=$(echo "$(date +%s.%N) - $t0" | bc -l)
echo "fetch_direct_1GiB_tput: $(mibs $SIZE "$dt") MiB/s"

# 4. Peak RSS with 50 concurrent downloads of the 1 GiB file, from a fresh node on the home that just fetched it
#    (so VmHWM is this run's peak).
part rss || exit 0
HC=$(port)
node "$C" "$HC"
NODE_C=$LAST_PID
before=$(awk '/VmHWM/ {print $2}' "/proc/$NODE_C/status")
cpids=()
for i in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$HC/sha256/$H1" & cpids+=($!); done
t0=$(date +%s.%N)
for p in "${cpids[@]}"; do wait "$p"; done
dt=$(echo "$(date +%s.%N) - $t0" | bc -l)
echo "rss_50_concurrent_gateway_peak: $(($(awk '/VmHWM/ {print $2}' "/proc/$NODE_C/status") / 1024)) MiB (idle $((before / 1024)) MiB)"
echo "rss_50_concurrent_gateway_aggregate: $(mibs $((50 * SIZE)) "$dt") MiB/s"
cpids=()
t0=$(date +%s.%N)
for i in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$NP/r1.bin" & cpids+=($!); done
for p in "${cpids[@]}"; do wait "$p"; done
dt=$(echo "$(date +%s.%N) - $t0" | bc -l)
nginx_rss=0
for p in $(pgrep -P "$NGINX") "$NGINX"; do
    nginx_rss=$((nginx_rss + $(awk '/VmHWM/ {print $2}' "/proc/$p/status")))
done
echo "rss_50_concurrent_nginx_peak: $((nginx_rss / 1024)) MiB (master + worker)"
echo "rss_50_concurrent_nginx_aggregate: $(mibs $((50 * SIZE)) "$dt") MiB/s"
echo "loadavg_1m_end: $(cut -d' ' -f1 /proc/loadavg) load"
