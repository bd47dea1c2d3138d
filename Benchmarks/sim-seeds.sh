#!/usr/bin/env bash
# Benchmarks/sim-seeds.sh — runs the simulator's faults scenario (or SCENARIO=mirror: the mirror scenario) on random
# seeds for as long as it is given, and prints every failing seed with the command that replays it.
#   [SCENARIO=faults|mirror] Benchmarks/sim-seeds.sh [SECONDS (600)] [NODES (40; 12 for mirror)]
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LIMIT=${1:-600}
SCENARIO=${SCENARIO:-faults}
if [ "$SCENARIO" = mirror ]; then NODES=${2:-12}; else NODES=${2:-40}; fi
if [ -z "${SIM:-}" ]; then
    (cd "$ROOT" && swift build -c release --product alexandria-sim 2>&1 | tail -1 | sed 's/^/# /')
    SIM="$(cd "$ROOT" && swift build -c release --show-bin-path)/alexandria-sim"
fi
echo "loadavg_1m_start: $(cut -d' ' -f1 /proc/loadavg)"
start=$(date +%s)
runs=0
failed=0
while [ $(( $(date +%s) - start )) -lt "$LIMIT" ]; do
    seed=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
    if ! out=$("$SIM" --scenario "$SCENARIO" --seed "$seed" --nodes "$NODES" 2>&1); then
        failed=$((failed + 1))
        echo "FAILED seed $seed: replay with: alexandria-sim --scenario $SCENARIO --seed $seed --nodes $NODES"
        echo "$out" | sed 's/^/    /'
    fi
    runs=$((runs + 1))
done
echo "seeds_run: $runs failed: $failed in $(( $(date +%s) - start )) s"
echo "loadavg_1m_end: $(cut -d' ' -f1 /proc/loadavg)"
[ "$failed" -eq 0 ]
