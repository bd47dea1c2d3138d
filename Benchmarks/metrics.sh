#!/usr/bin/env bash
# Benchmarks/metrics.sh [RELEASES] — the scrape cost: one `/metrics` answer from a node with RELEASES (10000) signed
# releases in its catalog, against a trivial request (`404` for an unknown path) alternated with it on the same node,
# client-side (connect to close) and server-side (the node's own latency histogram). Runs ScrapeCostTests, which
# fills the catalog, starts the node and waits for the mirror's first round; prints its `scrape_cost:` line.
# Talks to 127.0.0.1 only. The debug build is what `swift test` builds: compare the ratio, not the milliseconds.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "loadavg_1m_start: $(cut -d' ' -f1 /proc/loadavg) load"
swift build --build-tests 2>&1 | tail -1 | sed 's/^/# /'
ALEXANDRIA_SCRAPE_RELEASES=${1:-10000} swift test --skip-build --filter ScrapeCostTests 2>&1 |
    grep -E '^scrape_cost:|✘|passed after' | sed 's/^✔ /# /'
