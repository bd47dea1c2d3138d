#!/usr/bin/env bash
# Three alexandria hosts on one machine, each in its own network namespace with its own IP stack, joined by veth
# links to a switch (a bridge in a fourth namespace) on the private test subnet 10.213.0.0/24, run as a test:
#   1. host a publishes a release; hosts b and c replicate it (each knows only a's address; gossip does the rest);
#   2. c's link is cut (ip link set down): a publishes a second release, b replicates it, c cannot reach anyone;
#   3. the link is restored (ip link set up): c catches up on its own (anti-entropy) and holds the second release;
#   4. on host c, a fresh client fetches the second release's weights from the network and checks their sha256;
#   5. c runs the HTTP gateway too (`node run --http` on c's address); clients on a and b download the weights
#      from it over the links, by hash and by name (the Hugging Face resolve path), and check their sha256.
# Needs root (ip netns, veth, bridge). Every address it uses exists only inside the namespaces it creates, so no
# packet can leave the machine; the namespaces, the nodes and the temporary directory are removed on exit.
#
#   bash Deploy/netns-cluster.sh [BINARY]     default BINARY: .build/release/alexandria, else .build/debug/alexandria
#   env: KEEP=1 keeps the temporary directory (homes and node logs)
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "netns-cluster.sh: error: $*" >&2; exit 1; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
wait_for() {  # wait_for SECONDS WHAT CMD...: poll every 0.25 s, bounded
    local limit=$1 what=$2 t0
    shift 2
    t0=$(now)
    for _ in $(seq $((limit * 4))); do
        "$@" >/dev/null 2>&1 && { echo "# $what: $(secs "$t0") s"; return 0; }
        sleep 0.25
    done
    die "timed out after $limit s waiting for: $what"
}
[ "$(id -u)" = 0 ] || die "needs root (network namespaces); CI runs it as root"
command -v ip >/dev/null || die "needs iproute2 (ip)"
command -v curl >/dev/null || die "needs curl (the HTTP clients of step 5)"

bin=${1:-}
if [ -z "$bin" ]; then
    for candidate in .build/release/alexandria .build/debug/alexandria; do
        [ -x "$candidate" ] && { bin=$candidate; break; }
    done
fi
[ -n "$bin" ] && [ -x "$bin" ] || die "no alexandria binary (build one, or pass its path)"
bin=$(readlink -f "$bin")

hosts=(a b c)
declare -A addr=([a]=10.213.0.1 [b]=10.213.0.2 [c]=10.213.0.3)
port=7420
tag=ax$$
switch=$tag-sw
work=$(mktemp -d /tmp/alexandria-netns.XXXXXX)
declare -A pids=()
made=()
cleanup() {
    local rc=$?
    for h in "${!pids[@]}"; do kill -TERM "${pids[$h]}" 2>/dev/null || true; done
    for h in "${!pids[@]}"; do
        for _ in $(seq 40); do kill -0 "${pids[$h]}" 2>/dev/null || break; sleep 0.25; done
        kill -KILL "${pids[$h]}" 2>/dev/null || true
    done
    for ns in "${made[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    if [ "$rc" != 0 ]; then
        for h in "${hosts[@]}"; do [ -f "$work/$h.log" ] && { echo "--- $h.log"; tail -5 "$work/$h.log"; }; done
    fi
    [ "${KEEP:-0}" = 1 ] && echo "# kept $work" || rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
echo "loadavg_1m_start: $(cut -d' ' -f1 /proc/loadavg) load"

# ---------- the network: a switch namespace with a bridge, one veth link per host ----------
ip netns add "$switch"
made+=("$switch")
ip -n "$switch" link add br0 type bridge
ip -n "$switch" link set br0 up
ip -n "$switch" link set lo up
for h in "${hosts[@]}"; do
    ns=$tag-$h
    ip netns add "$ns"
    made+=("$ns")
    ip -n "$ns" link set lo up
    # The pair is created inside the host's namespace, so it never exists in the caller's.
    ip -n "$ns" link add eth0 type veth peer name "port-$h" netns "$switch"
    ip -n "$ns" addr add "${addr[$h]}/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$switch" link set "port-$h" master br0
    ip -n "$switch" link set "port-$h" up
done
in_ns() { local h=$1; shift; ip netns exec "$tag-$h" "$@"; }
reach() { in_ns "$1" timeout 2 bash -c "exec 3<>/dev/tcp/$2/$port"; }
echo "# hosts: a ${addr[a]}, b ${addr[b]}, c ${addr[c]} (each its own namespace; veth links to a bridge)"

# ---------- the nodes ----------
for h in "${hosts[@]}"; do
    "$bin" init --home "$work/$h" >/dev/null
    cat >"$work/$h/config.toml" <<EOF
[node]
listen = "${addr[$h]}:$port"
$([ "$h" = a ] || echo "peers = [\"${addr[a]}:$port\"]")

[gossip]
anti_entropy = "500ms"
peer_exchange = "2s"

[mirror]
mode = "all"
interval = "500ms"
holder_ttl = "4s"
demand_report = "2s"
EOF
done
for h in "${hosts[@]}"; do
    # Not through a shell function: $! must be the node itself (ip netns exec execs it).
    # Host c also runs the HTTP gateway, on its own address (step 5).
    http=()
    [ "$h" = c ] && http=(--http "${addr[c]}:$((port + 1))")
    ip netns exec "$tag-$h" "$bin" node run --home "$work/$h" "${http[@]}" --log-level notice 2>"$work/$h.log" &
    pids[$h]=$!
done
for h in "${hosts[@]}"; do wait_for 30 "node $h listening on ${addr[$h]}:$port" reach a "${addr[$h]}"; done

peers_of() { "$bin" peers --json --home "$work/$1" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["connected"]))'; }
meshed() { for h in "${hosts[@]}"; do [ "$(peers_of "$h")" -ge 2 ] || return 1; done; }
wait_for 30 "a full mesh (b and c found each other through a)" meshed
# The connections run between the hosts' own addresses, not over a loopback.
table=$("$bin" peers --home "$work/b")
for h in a c; do grep -qF "${addr[$h]}:" <<<"$table" || die "b's peer table lacks ${addr[$h]}: $table"; done
echo "# b's peers: ${addr[a]} and ${addr[c]}"

# ---------- 1. publish on a, replicate to b and c ----------
make_model() {  # make_model DIR SEED
    mkdir -p "$1"
    python3 - "$1" "$2" <<'PY'
import os, random, sys
d, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
open(os.path.join(d, "model.safetensors"), "wb").write(bytes(rng.getrandbits(8) for _ in range(3 << 20)))
open(os.path.join(d, "config.json"), "w").write('{"model_type": "netns", "seed": %d}\n' % seed)
PY
}
holds() {  # holds HOST SHA256: the host's store reads the file back, verified
    [ "$("$bin" cat "sha256:$2" --home "$work/$1" 2>/dev/null | sha256sum | cut -d' ' -f1)" = "$2" ]
}
publish() {  # publish DIR VERSION -> prints the weights' sha256
    "$bin" publish "$1" --name netns --version "$2" --license apache-2.0 --home "$work/a" >/dev/null
    sha256sum "$1/model.safetensors" | cut -d' ' -f1
}
"$bin" keys generate netns --home "$work/a" >/dev/null
make_model "$work/m1" 1
w1=$(publish "$work/m1" 1.0)
echo "# a published netns@1.0 (weights sha256:${w1:0:16}…)"
for h in b c; do wait_for 60 "$h replicates netns@1.0 from the network" holds "$h" "$w1"; done

# ---------- 2. cut c's link ----------
ip -n "$switch" link set port-c down
! reach c "${addr[a]}" || die "c still reaches a with its link down"
echo "# c's link is down: c reaches no host"
make_model "$work/m2" 2
w2=$(publish "$work/m2" 2.0)
echo "# a published netns@2.0 (weights sha256:${w2:0:16}…) while c is cut off"
wait_for 60 "b replicates netns@2.0" holds b "$w2"
sleep 2
! holds c "$w2" || die "c holds netns@2.0 although its link is down"
echo "# c does not have netns@2.0 (as expected: no route)"

# ---------- 3. restore it ----------
ip -n "$switch" link set port-c up
wait_for 15 "c reaches a again" reach c "${addr[a]}"
wait_for 90 "c catches up on its own and holds netns@2.0" holds c "$w2"

# ---------- 4. a fetch on host c ----------
"$bin" init --home "$work/client" >/dev/null
t0=$(now)
in_ns c "$bin" fetch "sha256:$w2" -o "$work/fetched" --peer "${addr[a]}:$port" --peer "${addr[b]}:$port" \
    --home "$work/client" >/dev/null
[ "$(sha256sum "$work/fetched" | cut -d' ' -f1)" = "$w2" ] || die "the fetched weights differ"
echo "fetch_on_c_seconds: $(secs "$t0") s"
echo "# a fresh client on host c fetched netns@2.0's weights from a and b over the veth links; sha256sum agrees"

# ---------- 5. through host c's HTTP gateway ----------
# c has run `node run --http` on its own address since it started; clients on hosts a and b download from it over
# the veth links, by hash and by name through the Hugging Face resolve path (the name resolves through c's log).
gw="${addr[c]}:$((port + 1))"
http_up() { in_ns a curl -fsS -o /dev/null "http://$gw/sha256/$w1/recipe"; }
wait_for 30 "c's gateway answers on $gw (from host a)" http_up
publisher=$("$bin" keys list --json --home "$work/a" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
t0=$(now)
in_ns a curl -fsS "http://$gw/sha256/$w2" -o "$work/via-gateway-hash"
echo "gateway_fetch_by_hash_seconds: $(secs "$t0") s"
[ "$(sha256sum "$work/via-gateway-hash" | cut -d' ' -f1)" = "$w2" ] || die "the gateway's bytes (by hash) differ"
in_ns b curl -fsS "http://$gw/$publisher/netns/resolve/2.0/model.safetensors" -o "$work/via-gateway-name"
[ "$(sha256sum "$work/via-gateway-name" | cut -d' ' -f1)" = "$w2" ] || die "the gateway's bytes (by name) differ"
echo "# host c's gateway served netns@2.0's weights to hosts a (by hash) and b (by name, resolved on c); sha256 agrees"

for h in "${hosts[@]}"; do kill -0 "${pids[$h]}" 2>/dev/null || die "node $h died"; done
echo "# netns cluster ok"
