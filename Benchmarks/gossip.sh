#!/usr/bin/env bash
# Benchmarks/gossip.sh — gossip and replication figures on a cluster of N node processes on loopback (default 50).
#   delivery      an announcement (a publish) reaching every node: p50 and p99 over ANNOUNCEMENTS publishes   (p99 < 1 s)
#   messages      ITEMS messages that carried one announcement, summed over all nodes, per node                (<= 3n)
#   replication   publish to the third holder (replication factor 3, mode "factor")
#   catch-up      a partition into two halves heals; time until every node of the cut-off half has the release  (< 30 s)
#   idle          bytes sent per node per minute with nothing to announce
# Default intervals (anti-entropy 1 s, peer exchange 30 s, rotation 10 s). Talks to 127.0.0.1 only; stops what it
# starts. env: NODES (50), ANNOUNCEMENTS (10), IDLE_SECONDS (60), BASE_PORT (18400)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
echo "loadavg_1m_start: $(cut -d' ' -f1 /proc/loadavg) load"
if [ -z "${BIN:-}" ]; then  # compare.sh builds once and passes BIN
    (cd "$ROOT" && swift build -c release --product alexandria 2>&1 | tail -1 | sed 's/^/# /')
    BIN="$(cd "$ROOT" && swift build -c release --show-bin-path)/alexandria"
fi
WORK=$(mktemp -d /tmp/alexandria-gossipbench.XXXXXX)
export BIN WORK
trap 'pkill -TERM -f "$WORK/n" 2>/dev/null || true; sleep 1; pkill -KILL -f "$WORK/n" 2>/dev/null || true; rm -rf "$WORK"' EXIT
python3 - <<'PY'
import json, os, random, sqlite3, statistics, subprocess, time

BIN, WORK = os.environ["BIN"], os.environ["WORK"]
N = int(os.environ.get("NODES", "50"))
K = int(os.environ.get("ANNOUNCEMENTS", "10"))
IDLE = int(os.environ.get("IDLE_SECONDS", "60"))
BASE = int(os.environ.get("BASE_PORT", "18400"))
random.seed(7)
home = lambda i: f"{WORK}/n{i}"
procs = {}

def run(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, check=True).stdout

def start(i):
    boot = [] if i == 0 else ["--peer", f"127.0.0.1:{BASE + random.randrange(0, min(i, 3))}"]
    log = open(f"{home(i)}.log", "w")
    procs[i] = subprocess.Popen([BIN, "node", "run", "--home", home(i), "--listen", f"127.0.0.1:{BASE + i}",
                                 "--log-level", "warning", *boot], stdout=subprocess.DEVNULL, stderr=log)

def state(i):
    try:
        with open(f"{home(i)}/node-state.json") as f:
            return json.load(f)
    except Exception:
        return None

def arrival(i, item):
    db = sqlite3.connect(f"file:{home(i)}/catalog.sqlite?mode=ro", uri=True, timeout=5)
    try:
        row = db.execute("SELECT added_ms FROM items WHERE id = ?", (bytes.fromhex(item),)).fetchone()
        return row[0] if row else None
    finally:
        db.close()

def holders(i, manifest):
    db = sqlite3.connect(f"file:{home(i)}/catalog.sqlite?mode=ro", uri=True, timeout=5)
    try:
        return sorted(r[0] for r in db.execute(
            "SELECT ts_ms FROM availability WHERE manifest = ? AND holds = 1", (manifest,)))
    finally:
        db.close()

def manifest_item(i, manifest_id):
    db = sqlite3.connect(f"file:{home(i)}/catalog.sqlite?mode=ro", uri=True, timeout=5)
    try:
        env = db.execute("SELECT envelope FROM manifests WHERE id = ?", (manifest_id,)).fetchone()[0]
    finally:
        db.close()
    import hashlib
    return hashlib.sha256(bytes([3]) + env).hexdigest()

def publish(i, name, size=1 << 20):
    d = f"{home(i)}-model-{name}"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/model.safetensors", "wb") as f:
        f.write(os.urandom(size))
    out = json.loads(run("publish", d, "--name", name, "--version", "1", "--key", "pub", "--json", "--home", home(i),
                         "--assume-log-current"))
    return out["manifestID"]

def wait(cond, limit):
    t = time.time()
    while time.time() - t < limit:
        if cond():
            return True
        time.sleep(0.1)
    return cond()

for i in range(N):
    run("init", "--home", home(i))
    with open(f"{home(i)}/drop-peers", "w"):
        pass
    with open(f"{home(i)}/config.toml", "w") as f:
        f.write(f'[mirror]\nmode = "factor"\nreplication_factor = 3\n\n[test]\ndrop_peers_file = "{home(i)}/drop-peers"\n')
for i in range(N):
    start(i)
    time.sleep(0.05)
keys = {}
assert wait(lambda: all(state(i) for i in range(N)), 60), "nodes did not start"
for i in range(N):
    keys[i] = state(i)["node"]
time.sleep(15)  # peer exchange fills the tables; outbound slots fill
conn = [len(state(i)["peers"]) for i in range(N)]
print(f"# nodes {N}; connections per node min {min(conn)} median {statistics.median(conn)} max {max(conn)}")

# --- Delivery, messages, replication -------------------------------------------------------------------------
delays, messages, replication = [], [], []
publishers = random.sample(range(N), K)
for k, p in enumerate(publishers):
    run("keys", "generate", "pub", "--home", home(p))
for k, p in enumerate(publishers):
    m = publish(p, f"announce{k}")
    item = manifest_item(p, m)
    origin = arrival(p, item)
    wait(lambda: all(arrival(i, item) is not None for i in range(N)), 30)
    got = [arrival(i, item) for i in range(N) if i != p]
    missing = sum(1 for g in got if g is None)
    delays += [(g - origin) / 1000 for g in got if g is not None]
    if missing:
        print(f"# announcement {k}: {missing} nodes did not get it within 30 s")
    wait(lambda: len(holders(p, m)) >= 3, 60)
    h = holders(p, m)
    if len(h) >= 3:
        replication.append((h[2] - origin) / 1000)
    time.sleep(2.5)  # state files refresh every 2 s
    prefix = item[:16]
    messages.append(sum((state(i) or {}).get("counters", {}).get("itemSends", {}).get(prefix, 0) for i in range(N)))
delays.sort()
q = lambda p: delays[min(len(delays) - 1, int(round(p * (len(delays) - 1))))]
print(f"delivery_p50: {q(0.50) * 1000:.0f} ms")
print(f"delivery_p99: {q(0.99) * 1000:.0f} ms")
print(f"delivery_max: {delays[-1] * 1000:.0f} ms")
print(f"messages_per_announcement: {statistics.median(messages):.0f} messages ({statistics.median(messages) / N:.2f} n; max {max(messages)})")
print(f"replication_to_3_holders_median: {statistics.median(replication):.2f} s (max {max(replication):.2f} s, {len(replication)} of {K})")

# --- Idle gossip ---------------------------------------------------------------------------------------------
time.sleep(10)
before = {i: state(i)["counters"]["bytesSent"] for i in range(N)}
time.sleep(IDLE)
after = {i: state(i)["counters"]["bytesSent"] for i in range(N)}
idle = statistics.mean(after[i] - before[i] for i in range(N)) * 60 / IDLE
print(f"idle_gossip_per_node: {idle / 1024:.1f} KiB/min")

# --- Partition and catch-up -----------------------------------------------------------------------------------
half_a, half_b = list(range(0, N, 2)), list(range(1, N, 2))
for side, other in ((half_a, half_b), (half_b, half_a)):
    for i in side:
        with open(f"{home(i)}/drop-peers", "w") as f:
            f.write("\n".join(keys[j] for j in other))
time.sleep(4)
p = half_a[1]
run("keys", "generate", "late", "--home", home(p))
d = f"{home(p)}-model-late"
os.makedirs(d, exist_ok=True)
with open(f"{d}/w.bin", "wb") as f:
    f.write(os.urandom(1 << 18))
m = json.loads(run("publish", d, "--name", "late", "--version", "1", "--key", "late", "--json", "--home", home(p),
                   "--assume-log-current"))["manifestID"]
item = manifest_item(p, m)
wait(lambda: all(arrival(i, item) is not None for i in half_a), 30)
time.sleep(3)
leaked = sum(1 for i in half_b if arrival(i, item) is not None)
print(f"# partition: {leaked} of {len(half_b)} cut-off nodes had the release before healing (expected 0)")
for i in range(N):
    open(f"{home(i)}/drop-peers", "w").close()
healed = time.time()
ok = wait(lambda: all(arrival(i, item) is not None for i in half_b), 120)
print(f"catch_up_after_partition: {time.time() - healed:.1f} s{'' if ok else ' (NOT all nodes caught up in 120 s)'}")
rss = []
for i in range(N):
    with open(f"/proc/{procs[i].pid}/status") as f:
        rss += [int(l.split()[1]) for l in f if l.startswith("VmHWM")]
print(f"# node peak RSS: median {statistics.median(rss) // 1024} MiB, max {max(rss) // 1024} MiB")
for pr in procs.values():
    pr.terminate()
for pr in procs.values():
    pr.wait(timeout=20)
PY
echo "loadavg_1m_end: $(cut -d' ' -f1 /proc/loadavg) load"
