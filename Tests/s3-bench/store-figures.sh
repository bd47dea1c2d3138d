#!/usr/bin/env bash
# Figures for `[store] backend = "s3"` (Protocol/store-s3.md): a SIZE_MIB file (default 2048) through the real
# `alexandria` binary against the engine in S3_ENDPOINT, each beside `aws s3 cp` of the same bytes in the same run,
# the two alternated REPEAT times (default 2):
#   upload:   `alexandria add` to a fresh s3 home (ingest + upload, overlapped pack by pack) vs `aws s3 cp` up,
#             once per pack target in PACK_TARGETS (default "64MiB"), and the same add to a local home once
#             (ingest alone);
#   download: `alexandria fetch` from a node serving out of the bucket vs `aws s3 cp` of the object to a file;
#   rebuild:  `verify --repair` with the local index deleted (the bucket alone);
#   memory:   peak RSS of the add (GNU time);
#   requests: S3 requests per GiB stored and served, counted from the engine's own access log (Swift's proxy
#             logs each request to syslog; with no /dev/log that is UDP 127.0.0.1:514, which this script listens
#             on when it is free and it runs as root; COUNT_REQUESTS=0 turns it off).
# Run from the repository root after a build, with the engine's environment exported. ALEXANDRIA (default
# .build/release/alexandria) picks the binary; say which one with the figures.
set -euo pipefail
cd "$(dirname "$0")/../.."
size=${SIZE_MIB:-2048}
repeat=${REPEAT:-2}
targets=${PACK_TARGETS:-64MiB}
bin=$(realpath "${ALEXANDRIA:-.build/release/alexandria}")
work=$(mktemp -d /tmp/alexandria-s3-store-figures.XXXXXX)
node_pid=
catcher=
trap '[ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null; [ -n "$catcher" ] && kill "$catcher" 2>/dev/null
      wait 2>/dev/null; rm -rf "$work"' EXIT
cat > "$work/aws-config" <<CFG
[default]
region = ${S3_REGION:-us-east-1}
request_checksum_calculation = when_required
response_checksum_validation = when_required
s3 =
    addressing_style = path
CFG
export AWS_CONFIG_FILE="$work/aws-config"
aws() { command aws --endpoint-url "$S3_ENDPOINT" "$@"; }
now() { date +%s.%N; }
rate() { python3 -c "import sys; a,b,s=map(float,sys.argv[1:]); print('%.2f s, %.1f MiB/s' % (b-a, s/(b-a)))" "$@"; }
secs() { python3 -c "import sys; a,b=map(float,sys.argv[1:]); print('%.2f' % (b-a))" "$@"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

# The engine's access log: one line per request the S3 API answered (the s3api's own subrequests to Swift, logged
# with /v1/ paths, are left out).
engine_log=$work/engine.log
: > "$engine_log"
if [ "${COUNT_REQUESTS:-1}" = 1 ] && [ "$(id -u)" = 0 ] && [ ! -e /dev/log ]; then
    python3 -u -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 514))
with open(sys.argv[1], "a") as out:
    while True:
        out.write(s.recv(65536).decode("utf-8", "replace").replace("\n", " ") + "\n"); out.flush()
' "$engine_log" 2>/dev/null &
    catcher=$!
    sleep 0.5
    kill -0 "$catcher" 2>/dev/null || { catcher=; echo "(UDP 514 is taken: no request counts)"; }
fi
mark() { wc -l < "$engine_log"; }
# Requests naming bucket $2 logged since mark $1 (S3 paths only).
requests_since() {
    tail -n +"$(( $1 + 1 ))" "$engine_log" | grep -aF "proxy-server" | grep -aF " /$2" | grep -avc " /v1/" || true
}

echo "load before: $(load); binary $bin; $size MiB; pack targets: $targets; $repeat round(s)"
bucket=alx-store-fig-$RANDOM
aws s3 mb "s3://$bucket" >/dev/null
head -c $((size << 20)) /dev/urandom > "$work/file.bin"
address=$(sha256sum "$work/file.bin" | cut -d' ' -f1)

# The same add to a local home: what ingest alone costs (the s3 add is this plus the upload). SKIP_INGEST=1 skips it.
if [ "${SKIP_INGEST:-0}" != 1 ]; then
    "$bin" init --home "$work/local" >/dev/null
    t0=$(now); "$bin" add --home "$work/local" "$work/file.bin" >/dev/null; t1=$(now)
    echo "ingest   alexandria add, local home: $(rate "$t0" "$t1" "$size")"
    rm -rf "$work/local"
fi

s3_home() {  # HOME PREFIX PACK_TARGET
    "$bin" init --home "$1" >/dev/null
    sed -i "s|^\[store\]|[store]\nbackend = \"s3\"\nendpoint = \"$S3_ENDPOINT\"\nbucket = \"$bucket\"\nprefix = \"$2\"\npack_target = \"$3\"|" \
        "$1/config.toml"
}

for round in $(seq "$repeat"); do
    for target in $targets; do
        echo "--- round $round, pack target $target (load $(load))"
        m=$(mark)
        t0=$(now); aws s3 cp --only-show-errors "$work/file.bin" "s3://$bucket/baseline.bin"; t1=$(now)
        up_aws=$(secs "$t0" "$t1")
        echo "upload   aws s3 cp:        $(rate "$t0" "$t1" "$size") ($(requests_since "$m" "$bucket") requests)"

        home=$work/home-$round-$target
        prefix=fig-$round-$target/
        s3_home "$home" "$prefix" "$target"
        m=$(mark)
        t0=$(now); /usr/bin/time -f '%M' -o "$work/rss" "$bin" add --home "$home" "$work/file.bin" >/dev/null; t1=$(now)
        up_alx=$(secs "$t0" "$t1")
        stored=$(requests_since "$m" "$bucket")
        echo "upload   alexandria add:   $(rate "$t0" "$t1" "$size"); peak RSS $(( $(cat "$work/rss") / 1024 )) MiB;" \
            "$stored requests ($(python3 -c "print('%.0f' % ($stored * 1024 / $size))") per GiB);" \
            "$(aws s3 ls --recursive "s3://$bucket/${prefix}packs/" | wc -l) pack objects;" \
            "ratio aws/alexandria $(python3 -c "print('%.2f' % ($up_aws / $up_alx))")"

        m=$(mark)
        t0=$(now); aws s3 cp --only-show-errors "s3://$bucket/baseline.bin" "$work/baseline.down"; t1=$(now)
        down_aws=$(secs "$t0" "$t1")
        echo "download aws s3 cp:        $(rate "$t0" "$t1" "$size") ($(requests_since "$m" "$bucket") requests)"
        rm -f "$work/baseline.down"; aws s3 rm --only-show-errors "s3://$bucket/baseline.bin"

        port=$(( 20000 + RANDOM % 20000 ))
        "$bin" node run --home "$home" --listen "127.0.0.1:$port" --no-mirror 2>"$work/node.log" &
        node_pid=$!
        for _ in $(seq 100); do grep -q listening "$work/node.log" && break; sleep 0.1; done
        peer=$work/peer
        rm -rf "$peer"; "$bin" init --home "$peer" >/dev/null
        m=$(mark)
        t0=$(now)
        "$bin" fetch --home "$peer" "sha256:$address" -o "$work/fetched.bin" --peer "127.0.0.1:$port" >/dev/null
        t1=$(now)
        served=$(requests_since "$m" "$bucket")
        down_alx=$(secs "$t0" "$t1")
        cmp "$work/file.bin" "$work/fetched.bin"
        echo "download alexandria fetch: $(rate "$t0" "$t1" "$size") (served from the bucket); $served requests" \
            "($(python3 -c "print('%.0f' % ($served * 1024 / $size))") per GiB, lease renewals included);" \
            "ratio aws/alexandria $(python3 -c "print('%.2f' % ($down_aws / $down_alx))")"
        kill "$node_pid"; wait "$node_pid" 2>/dev/null || true; node_pid=
        rm -rf "$peer" "$work/fetched.bin"

        if [ "$round" = 1 ]; then
            rm -f "$home"/store/index.sqlite*
            t0=$(now); "$bin" verify --home "$home" --repair >/dev/null; t1=$(now)
            echo "rebuild  verify --repair:  $(rate "$t0" "$t1" "$size") (download, hash and scan of every pack)"
        fi
        aws s3 rm --only-show-errors --recursive "s3://$bucket/$prefix"
        rm -rf "$home"
    done
done
echo "load after: $(load)"
