#!/usr/bin/env bash
# The figures in Protocol/store-s3.md: a SIZE_MIB file (default 2048) uploaded and downloaded by `aws s3 cp` (the
# baseline) and by AlexandriaObjectStore's PackObjects (BenchTests), against the engine in S3_ENDPOINT, in the same
# run. Run from the repository root after `swift build --build-tests`, with the engine's environment exported
# (eval "$(swift_s3.sh start DIR PORT)"). Prints the load average before and after: the machine is shared.
set -euo pipefail
cd "$(dirname "$0")/../.."
size=${SIZE_MIB:-2048}
work=$(mktemp -d /tmp/alexandria-s3-figures.XXXXXX)
trap 'rm -rf "$work"' EXIT
cat > "$work/aws-config" <<CFG
[default]
region = ${S3_REGION:-us-east-1}
request_checksum_calculation = when_required
response_checksum_validation = when_required
s3 =
    addressing_style = path
CFG
export AWS_CONFIG_FILE="$work/aws-config"
echo "loadavg before: $(cut -d' ' -f1-3 /proc/loadavg)"
head -c $((size << 20)) /dev/urandom > "$work/file.bin"
aws --endpoint-url "$S3_ENDPOINT" s3 mb s3://alx-bench >/dev/null 2>&1 || true
t0=$(date +%s.%N)
aws --endpoint-url "$S3_ENDPOINT" s3 cp --only-show-errors "$work/file.bin" s3://alx-bench/baseline.bin
t1=$(date +%s.%N)
aws --endpoint-url "$S3_ENDPOINT" s3 cp --only-show-errors s3://alx-bench/baseline.bin "$work/baseline.down"
t2=$(date +%s.%N)
cmp "$work/file.bin" "$work/baseline.down"
rm -f "$work/baseline.down"
python3 - "$t0" "$t1" "$t2" "$size" <<'PY'
import sys
t0, t1, t2, size = map(float, sys.argv[1:])
print('baseline aws s3 cp: upload %.2f s %.1f MiB/s, download %.2f s %.1f MiB/s' % (t1 - t0, size / (t1 - t0), t2 - t1, size / (t2 - t1)))
PY
aws --endpoint-url "$S3_ENDPOINT" s3 rm --only-show-errors s3://alx-bench/baseline.bin
S3_BENCH_FILE="$work/file.bin" S3_BENCH_BUCKET=alx-bench \
    swift test --skip-build --filter 'BenchTests' 2>&1 | grep -E '^bench:|✘|passed after|failed after'
cmp "$work/file.bin" "$work/file.bin.down" && echo "download matches the file"
echo "loadavg after: $(cut -d' ' -f1-3 /proc/loadavg)"
