#!/usr/bin/env python3
"""kill -9 loops (issue 11), fixed seed, bounded count: add, publish, fetch, gc and the catalog's v1 -> v2 migration,
each killed at random points. After every kill: `verify` passes, or fails naming `verify --repair` and passes after
it; every committed file reads back exactly; a killed migration leaves the catalog at version 1 or at version 2 with
every item. Usage: kills.py ALEXANDRIA_BINARY [ROUNDS]"""
import hashlib, os, random, shutil, signal, sqlite3, subprocess, sys, tempfile, time

BIN = sys.argv[1]
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 6
rng = random.Random(1111)
WORK = tempfile.mkdtemp(prefix="alexandria-kills-")
HOME = os.path.join(WORK, "home")
failures, outcomes = [], {}


def run(*args, home=HOME):
    p = subprocess.run([BIN, *args, "--home", home], capture_output=True)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def killed(args, delay, home=HOME):
    p = subprocess.Popen([BIN, *args, "--home", home], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    p.wait()
    return p.returncode


committed = {}


def check(what):
    rc, out, _ = run("verify")
    text = out.decode(errors="replace")
    if rc != 0:
        if "verify --repair" not in text:
            failures.append(f"{what}: verify failed without naming the fix: {text[-300:]}")
        rc, out, _ = run("verify", "--repair")
        if rc != 0:
            failures.append(f"{what}: verify --repair did not make the store whole: {out[-300:]}")
    for address, b in committed.items():
        rc, out, _ = run("cat", address)
        if rc != 0 or out != b:
            failures.append(f"{what}: {address} {'wrong bytes' if rc == 0 else 'lost'}")


def add(path, b):
    open(path, "wb").write(b)
    rc, _, err = run("add", path)
    assert rc == 0, err
    committed["sha256:" + hashlib.sha256(b).hexdigest()] = b


os.makedirs(WORK, exist_ok=True)
assert run("init")[0] == 0
assert run("keys", "generate", "acme")[0] == 0
model = os.path.join(WORK, "model")
os.makedirs(model)
for i in range(3):
    add(os.path.join(WORK, f"base{i}.bin"), rng.randbytes(2_000_000))
big = rng.randbytes(48 << 20)
open(os.path.join(WORK, "big.bin"), "wb").write(big)
for step in range(ROUNDS):
    # add
    rc = killed(["add", os.path.join(WORK, "big.bin")], rng.uniform(0.02, 0.6))
    outcomes.setdefault("add", []).append(rc)
    check(f"add round {step}")
    # publish
    open(os.path.join(model, "w.bin"), "wb").write(rng.randbytes(6_000_000))
    rc = killed(["publish", model, "--name", "m", "--version", f"1.{step}"], rng.uniform(0.02, 0.5))
    outcomes.setdefault("publish", []).append(rc)
    check(f"publish round {step}")
    # fetch from the local store into a file (links, rename, registration)
    first = next(iter(committed))
    out = os.path.join(WORK, f"out{step}.bin")
    rc = killed(["fetch", first, "-o", out], rng.uniform(0.005, 0.08))
    outcomes.setdefault("fetch", []).append(rc)
    check(f"fetch round {step}")
    if os.path.exists(out) and open(out, "rb").read() != committed[first]:
        failures.append(f"fetch round {step}: the output has wrong bytes")
    # gc after removing one file
    rc = killed(["gc"], rng.uniform(0.01, 0.4))
    outcomes.setdefault("gc", []).append(rc)
    check(f"gc round {step}")

# The catalog migration v1 -> v2, killed at random points.
catalog = os.path.join(HOME, "catalog.sqlite")
db = sqlite3.connect(catalog)
expected = db.execute("SELECT count(*) FROM items").fetchone()[0]
db.close()
for step in range(ROUNDS * 2):
    db = sqlite3.connect(catalog)
    # Back to version 1: the v2 tables, and what later steps (v3 witness state, v4 an index on items) added.
    for t in ["items", "cosignatures", "availability", "demand", "local_demand", "pins", "witness_state"]:
        db.execute(f"DROP TABLE IF EXISTS {t}")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    # A version-1 catalog comes from a build before catalog marks: its home has none (the mark would call the
    # catalog older, rightly, since dropping `items` lost facts).
    if os.path.exists(os.path.join(HOME, "catalog.mark")):
        os.unlink(os.path.join(HOME, "catalog.mark"))
    rc = killed(["status"], rng.uniform(0.0, 0.15))
    outcomes.setdefault("catalog migration (status killed)", []).append(rc)
    db = sqlite3.connect(catalog)
    version = db.execute("PRAGMA user_version").fetchone()[0]
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if version == 1 and "items" in tables:
        failures.append(f"migration round {step}: version 1 with the v2 tables")
    if version >= 2:
        n = db.execute("SELECT count(*) FROM items").fetchone()[0]
        if n < expected:
            failures.append(f"migration round {step}: version {version} with {n} of {expected} items")
    db.close()
    rc, _, err = run("status")
    if rc != 0:
        failures.append(f"migration round {step}: status after the kill failed: {err}")

for what, codes in outcomes.items():
    died = sum(1 for c in codes if c == -9)
    print(f"{what}: {len(codes)} kill(s) sent, {died} landed mid-run, {len(codes) - died} after the command finished")
print("failures:", len(failures))
for f in failures:
    print("FAIL", f)
shutil.rmtree(WORK, ignore_errors=True)
sys.exit(1 if failures else 0)
