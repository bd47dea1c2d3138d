#!/usr/bin/env bash
# Benchmarks/sim-figures.sh — the figures of Protocol/scale.md from the simulator (release build), one run per line
# of output. env: SIZES ("1000 10000"), RELEASES ("10000 100000"), SEEDS ("1 2 3")
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${SIM:-}" ]; then
    (cd "$ROOT" && swift build -c release --product alexandria-sim 2>&1 | tail -1 | sed 's/^/# /')
    SIM="$(cd "$ROOT" && swift build -c release --show-bin-path)/alexandria-sim"
fi
echo "# loadavg_1m_start: $(cut -d' ' -f1 /proc/loadavg) (2 cores)"
for seed in ${SEEDS:-1 2 3}; do
    echo "## fidelity seed $seed (Benchmarks/gossip.sh's scenario)"
    "$SIM" --scenario fidelity --seed "$seed"
done
for n in ${SIZES:-1000 10000}; do
    echo "## scale nodes $n"
    /usr/bin/time -f "# peak RSS %M KiB" "$SIM" --scenario scale --nodes "$n" --seed 1
done
for r in ${RELEASES:-10000 100000}; do
    echo "## catch-up after a day offline, catalog of $r releases"
    /usr/bin/time -f "# peak RSS %M KiB" "$SIM" --scenario catchup --base-releases "$r" --seed 1
done
echo "# loadavg_1m_end: $(cut -d' ' -f1 /proc/loadavg)"
