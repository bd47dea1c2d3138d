#!/usr/bin/env bash
# Figures for `[store] backend = "s3"` (Protocol/store-s3.md): a SIZE_MIB file (default 2048) through the real
# `alexandria` binary against the engine in S3_ENDPOINT, each beside `aws s3 cp` of the same bytes in the same run:
#   upload:   `alexandria add` to an s3 home (ingest + upload of the sealed packs) vs `aws s3 cp` up, and the
#             same add to a local home (ingest alone);
#   download: `alexandria fetch` from a node serving out of the bucket vs `aws s3 cp` down;
#   rebuild:  `verify --repair` with the local index deleted (the bucket alone);
#   memory:   peak RSS of the add (GNU time).
# Run from the repository root after a build, with the engine's environment exported. ALEXANDRIA (default
# .build/debug/alexandria) picks the binary; say which one with the figures.
set -euo pipefail
cd "$(dirname "$0")/../.."
size=${SIZE_MIB:-2048}
bin=$(realpath "${ALEXANDRIA:-.build/debug/alexandria}")
work=$(mktemp -d /tmp/alexandria-s3-store-figures.XXXXXX)
node_pid=
trap '[ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null; rm -rf "$work"' EXIT
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
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); binary $bin; $size MiB"
bucket=alx-store-fig-$RANDOM
aws s3 mb "s3://$bucket" >/dev/null
head -c $((size << 20)) /dev/urandom > "$work/file.bin"

t0=$(now); aws s3 cp --only-show-errors "$work/file.bin" "s3://$bucket/baseline.bin"; t1=$(now)
echo "upload   aws s3 cp:        $(rate "$t0" "$t1" "$size")"
t0=$(now); aws s3 cp --only-show-errors "s3://$bucket/baseline.bin" "$work/baseline.down"; t1=$(now)
echo "download aws s3 cp:        $(rate "$t0" "$t1" "$size")"
rm -f "$work/baseline.down"; aws s3 rm --only-show-errors "s3://$bucket/baseline.bin"

# The same add to a local home: what ingest alone costs (the s3 add is this plus the upload).
"$bin" init --home "$work/local" >/dev/null
t0=$(now); "$bin" add --home "$work/local" "$work/file.bin" >/dev/null; t1=$(now)
echo "ingest   alexandria add, local home: $(rate "$t0" "$t1" "$size")"
rm -rf "$work/local"

home=$work/home
"$bin" init --home "$home" >/dev/null
sed -i "s|^\[store\]|[store]\nbackend = \"s3\"\nendpoint = \"$S3_ENDPOINT\"\nbucket = \"$bucket\"\nprefix = \"fig/\"|" \
    "$home/config.toml"
t0=$(now); /usr/bin/time -f '%M' -o "$work/rss" "$bin" add --home "$home" "$work/file.bin" >/dev/null; t1=$(now)
echo "upload   alexandria add:   $(rate "$t0" "$t1" "$size"); peak RSS $(( $(cat "$work/rss") / 1024 )) MiB"
echo "requests: $(aws s3 ls --recursive "s3://$bucket/fig/packs/" | wc -l) pack object(s)"

rm -f "$home"/store/index.sqlite*
t0=$(now); "$bin" verify --home "$home" --repair >/dev/null; t1=$(now)
echo "rebuild  verify --repair:  $(rate "$t0" "$t1" "$size") (download, hash and scan of every pack)"

port=$(( 20000 + RANDOM % 20000 ))
"$bin" node run --home "$home" --listen "127.0.0.1:$port" --no-mirror 2>"$work/node.log" &
node_pid=$!
for _ in $(seq 100); do grep -q listening "$work/node.log" && break; sleep 0.1; done
peer=$work/peer
"$bin" init --home "$peer" >/dev/null
address=$(sha256sum "$work/file.bin" | cut -d' ' -f1)
t0=$(now); "$bin" fetch --home "$peer" "sha256:$address" -o "$work/fetched.bin" --peer "127.0.0.1:$port" >/dev/null; t1=$(now)
cmp "$work/file.bin" "$work/fetched.bin"
echo "download alexandria fetch: $(rate "$t0" "$t1" "$size") (served from the bucket by ranged GETs)"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
