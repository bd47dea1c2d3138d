#!/usr/bin/env bash
# The object-storage tests against a REAL S3 engine: installs OpenStack Swift (Debian's, with its s3api) when it is
# missing, starts it on loopback with three replicas, runs the suites that need S3_ENDPOINT, and stops it again.
# Expects a build with tests already made (`swift build --build-tests`); runs `swift test --skip-build`.
# With S3_ENDPOINT already set in the environment it uses that engine and starts nothing.
#   Tests/s3.sh [extra swift test arguments]
# Env: S3_TESTS_FILTER (default: the object-store tests and the s3 store's process and fault tests), SWIFT_S3_REPLICAS (default 3), SWIFT_S3_SH (the script).
set -euo pipefail
cd "$(dirname "$0")/.."

filter=${S3_TESTS_FILTER:-AlexandriaObjectStoreTests|S3StoreTests|S3FaultTests}
if [ -z "${S3_ENDPOINT:-}" ]; then
    swift_s3=${SWIFT_S3_SH:-$(cd .. && pwd)/shared/peers/swift_s3.sh}
    [ -x "$swift_s3" ] || swift_s3=/work/shared/peers/swift_s3.sh  # a clone outside the workplace's layout
    [ -x "$swift_s3" ] || { echo "s3.sh: $swift_s3 not found (set SWIFT_S3_SH)" >&2; exit 1; }
    "$swift_s3" install >&2
    dir=$(mktemp -d /tmp/alexandria-s3.XXXXXX)
    trap '"$swift_s3" stop "$dir/swift" >&2 || true; rm -rf "$dir"' EXIT
    # A free block of five ports (PORT..PORT+4) in the high range; retry a few times if one is taken.
    for _ in 1 2 3 4 5; do
        port=$(( 20000 + (RANDOM % 2000) * 5 ))
        if env_lines=$(SWIFT_S3_REPLICAS=${SWIFT_S3_REPLICAS:-3} "$swift_s3" start "$dir/swift" "$port"); then
            eval "$env_lines"
            # Lets the restart tests kill this engine's S3 proxy and start it again (in seconds: Tests/s3-proxy.sh).
            export S3_PROXY_CONTROL="$(pwd)/Tests/s3-proxy.sh $dir/swift"
            break
        fi
    done
    [ -n "${S3_ENDPOINT:-}" ] || { echo "s3.sh: could not start Swift" >&2; exit 1; }
    # A second engine on a 40 MiB tmpfs for the full-device test (S3FaultTests; needs root to mount, skipped
    # otherwise). The test fills the tmpfs with a file of its own and frees the space by removing it.
    if [ "$(id -u)" = 0 ] && [ "${S3_FULL_TEST:-1}" = 1 ] && mkdir -p "$dir/full" &&
        mount -t tmpfs -o size=40m tmpfs "$dir/full" 2>/dev/null; then
        export S3_FULL_MOUNT="$dir/full"
        trap '"$swift_s3" stop "$dir/full/swift" >&2 || true; umount "$dir/full" || true
              "$swift_s3" stop "$dir/swift" >&2 || true; rm -rf "$dir"' EXIT
        for _ in 1 2 3 4 5; do
            fport=$(( 30000 + (RANDOM % 2000) * 5 ))
            if full_lines=$(SWIFT_S3_REPLICAS=1 "$swift_s3" start "$dir/full/swift" "$fport"); then
                S3_FULL_ENDPOINT=$(printf '%s\n' "$full_lines" | sed -n 's/^export S3_ENDPOINT=//p')
                export S3_FULL_ENDPOINT
                break
            fi
        done
    fi
fi
export S3_ENDPOINT AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY S3_REGION
echo "s3.sh: testing against $S3_ENDPOINT" >&2
swift test --skip-build --no-parallel --filter "$filter" "$@"
