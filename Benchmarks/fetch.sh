#!/usr/bin/env bash
# Benchmarks/fetch.sh [DATA_DIR] — the peer node's figures, each beside a baseline from the same run.
#   single     fetch of a 2 GiB file from one node over loopback, verified, into a file
#              vs curl from nginx (sendfile) on loopback into a file                         (goal >= 0.8)
#   4 peers    each node limited to R (--upload-rate); aggregate vs 4R                       (goal >= 0.75)
#   rss        peak RSS of a serving node with 8 concurrent fetchers, and of one fetch        (goal < 150 MB)
#   kubo       IPFS kubo fetch (bitswap) of the same file, via ../shared/peers/ipfs_kubo.sh   (goal: ours >= 10x)
#   libtorrent seeder -> leecher of the same file, via ../shared/peers/bt_libtorrent.sh     (goal: ours >= 2x)
# Needs nginx and curl (../shared/peers/install.sh installs them, and the venv with kubo and libtorrent; PEERS=0
# skips those two, which need root for their network namespace). Talks to 127.0.0.1 only; stops what it starts.
# env: SIZE_MIB (2048), RATE_MIB (50), RSS_FILE_MIB (512), PEERS (1), RUNS (3)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=${1:-/tmp/alexandria-bench-data}
RATE_MIB=${RATE_MIB:-50}
RSS_FILE_MIB=${RSS_FILE_MIB:-512}
PEERS=${PEERS:-1}
RUNS=${RUNS:-3}
PEERS_DIR="$ROOT/../shared/peers"
[ -d "$PEERS_DIR" ] || PEERS_DIR=/work/shared/peers
WORK=$(mktemp -d /tmp/alexandria-fetchbench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
echo "loadavg_1m_start: $(cut -d' ' -f1 /proc/loadavg) load"
if [ -z "${BIN:-}" ]; then  # compare.sh builds once and passes BIN
    (cd "$ROOT" && swift build -c release --product alexandria 2>&1 | tail -1 | sed 's/^/# /')
    BIN="$(cd "$ROOT" && swift build -c release --show-bin-path)/alexandria"
fi
[ -f "$DATA/random.bin" ] || bash "$PEERS_DIR/make_data.sh" "$DATA" "${SIZE_MIB:-2048}" | sed 's/^/# /'
FILE="$DATA/random.bin"
SIZE=$(stat -c %s "$FILE")
ADDR="sha256:$(openssl dgst -sha256 -r "$FILE" | cut -c1-64)"
now() { date +%s.%N; }
mibs() { echo "scale=1; $1 / 1048576 / $2" | bc -l; }
ratio() { echo "scale=3; $1 / $2" | bc -l; }

start_node() {  # home port [extra args]
    local home=$1 port=$2; shift 2
    "$BIN" node run --home "$home" --listen "127.0.0.1:$port" --log-level warning "$@" 2>"$home.log" &
    PIDS+=($!)
    for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/"$port") 2>/dev/null && return 0; sleep 0.1; done
    echo "node on $port did not start" >&2; return 1
}

# --- Single peer vs nginx + curl -------------------------------------------------------------------------------
"$BIN" init --home "$WORK/a" > /dev/null
"$BIN" add --home "$WORK/a" "$FILE" > /dev/null
start_node "$WORK/a" 17601
mkdir -p "$WORK/nginx/logs" "$WORK/nginx/www"
chmod 755 "$WORK" "$WORK/nginx" "$WORK/nginx/www"   # nginx's worker runs as an unprivileged user
ln -s "$FILE" "$WORK/nginx/www/file.bin"
cat > "$WORK/nginx/nginx.conf" <<NGINX
worker_processes 1; pid $WORK/nginx/nginx.pid; error_log $WORK/nginx/logs/error.log;
events { worker_connections 64; }
http { access_log off; sendfile on; tcp_nopush on;
  server { listen 127.0.0.1:18091; root $WORK/nginx/www; location / { disable_symlinks off; } } }
NGINX
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" 2>/dev/null
sleep 0.3
PIDS+=("$(cat "$WORK/nginx/nginx.pid")")
cat "$FILE" > /dev/null
t_curl=()
t_fetch=()
for i in $(seq "$RUNS"); do
    # Alternate which goes first, and start each from no dirty pages, so neither inherits the other's writeback.
    rm -f "$WORK/curl.out" "$WORK/fetch.out"; rm -rf "$WORK/c"; "$BIN" init --home "$WORK/c" > /dev/null; sync
    for which in $( [ $((i % 2)) = 1 ] && echo "curl fetch" || echo "fetch curl"); do
        if [ "$which" = curl ]; then
            t0=$(now); curl -sf -o "$WORK/curl.out" http://127.0.0.1:18091/file.bin
            t_curl+=("$(echo "$(now) - $t0" | bc -l)")
        else
            t0=$(now); "$BIN" fetch "$ADDR" -o "$WORK/fetch.out" --peer 127.0.0.1:17601 --home "$WORK/c" > /dev/null
            t_fetch+=("$(echo "$(now) - $t0" | bc -l)")
        fi
        sync
    done
    echo "# run $i: curl $(mibs "$SIZE" "${t_curl[-1]}") MiB/s, fetch $(mibs "$SIZE" "${t_fetch[-1]}") MiB/s"
done
med() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }
tc=$(med "${t_curl[@]}"); tf=$(med "${t_fetch[@]}")
[ "$(stat -c %s "$WORK/curl.out")" = "$SIZE" ] || { echo "curl did not get the whole file" >&2; exit 1; }
echo "curl_from_nginx_to_file: $(mibs "$SIZE" "$tc") MiB/s"
echo "fetch_one_peer_to_file: $(mibs "$SIZE" "$tf") MiB/s"
echo "fetch_one_peer_vs_curl: $(ratio "$tc" "$tf") x"
cmp -s "$FILE" "$WORK/fetch.out" && echo "fetch_output_identical: 1 bool"
/usr/bin/time -f "%M" -o "$WORK/rss" "$BIN" fetch "$ADDR" -o "$WORK/fetch2.out" --peer 127.0.0.1:17601 --home "$WORK/c2" > /dev/null 2>&1 || {
    "$BIN" init --home "$WORK/c2" > /dev/null
    /usr/bin/time -f "%M" -o "$WORK/rss" "$BIN" fetch "$ADDR" -o "$WORK/fetch2.out" --peer 127.0.0.1:17601 --home "$WORK/c2" > /dev/null
}
echo "fetch_process_peak_rss: $(( $(tail -1 "$WORK/rss") / 1024 )) MiB"
rm -rf "$WORK/c" "$WORK/c2" "$WORK"/*.out

# --- The same file through IPFS kubo and libtorrent, beside our single-peer fetch -----------------------------------
if [ "$PEERS" = 1 ]; then
    ours=$(mibs "$SIZE" "$tf")
    kubo=$(FILES=random HASH_RUNS=0 VERIFY=0 bash "$PEERS_DIR/ipfs_kubo.sh" "$DATA" 2>&1 \
        | sed -n 's/^kubo_fetch_random_tput: \([0-9.]*\) MiB\/s$/\1/p' || true)
    lt=$(FILES=random MODES=hybrid bash "$PEERS_DIR/bt_libtorrent.sh" "$DATA" 2>&1 \
        | sed -n 's/^lt_leech_random_tput: \([0-9.]*\) MiB\/s$/\1/p' || true)
    if [ -n "$kubo" ]; then
        echo "kubo_fetch_to_file: $kubo MiB/s"
        echo "fetch_one_peer_vs_kubo: $(ratio "$ours" "$kubo") x"
    else
        echo "# kubo did not run (bash $PEERS_DIR/install.sh; it needs root for unshare -n)"
    fi
    if [ -n "$lt" ]; then
        echo "libtorrent_seeder_to_leecher: $lt MiB/s"
        echo "fetch_one_peer_vs_libtorrent: $(ratio "$ours" "$lt") x"
    else
        echo "# libtorrent did not run (bash $PEERS_DIR/install.sh; it needs root for unshare -n)"
    fi
fi

# --- Four rate-limited peers -------------------------------------------------------------------------------------
for n in 1 2 3 4; do
    "$BIN" init --home "$WORK/p$n" > /dev/null
    "$BIN" add --home "$WORK/p$n" "$FILE" > /dev/null
    start_node "$WORK/p$n" $((17610 + n)) --upload-rate "${RATE_MIB}MiB"
done
"$BIN" init --home "$WORK/c4" > /dev/null; sync
t0=$(now)
"$BIN" fetch "$ADDR" -o "$WORK/four.out" --home "$WORK/c4" --peer 127.0.0.1:17611 --peer 127.0.0.1:17612 \
    --peer 127.0.0.1:17613 --peer 127.0.0.1:17614 > /dev/null
t4=$(echo "$(now) - $t0" | bc -l)
echo "four_peers_each_limited_to: $RATE_MIB MiB/s"
echo "four_peers_aggregate: $(mibs "$SIZE" "$t4") MiB/s"
echo "four_peers_vs_4R: $(echo "scale=3; $SIZE / 1048576 / $t4 / (4 * $RATE_MIB)" | bc -l) x"
rm -rf "$WORK"/p? "$WORK/c4" "$WORK/four.out"

# --- Serving node RSS with 8 concurrent fetchers -------------------------------------------------------------------
head -c $((RSS_FILE_MIB << 20)) "$FILE" > "$WORK/rss.bin"
RADDR="sha256:$(openssl dgst -sha256 -r "$WORK/rss.bin" | cut -c1-64)"
"$BIN" init --home "$WORK/s" > /dev/null
"$BIN" add --home "$WORK/s" "$WORK/rss.bin" > /dev/null
start_node "$WORK/s" 17620
SPID=${PIDS[-1]}
fpids=()
for n in $(seq 8); do
    "$BIN" init --home "$WORK/f$n" > /dev/null
    "$BIN" fetch "$RADDR" -o "$WORK/f$n.out" --home "$WORK/f$n" --peer 127.0.0.1:17620 > /dev/null &
    fpids+=($!)
done
for p in "${fpids[@]}"; do wait "$p"; done
echo "serving_node_8_fetchers_file: $RSS_FILE_MIB MiB"
echo "serving_node_peak_rss: $(( $(grep VmHWM /proc/$SPID/status | awk '{print $2}') / 1024 )) MiB"
echo "loadavg_1m_end: $(cut -d' ' -f1 /proc/loadavg) load"
