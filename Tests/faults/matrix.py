#!/usr/bin/env python3
"""Fault-injection matrix for a home (issue 11): every file of a home x every fault x every command.

For each file (the index and its -wal/-shm, each pack, the catalog and its -wal, the keys, the config) and each fault
(deleted, truncated to 0, truncated to half, one byte flipped, replaced by an older copy of itself), on a fresh copy of
a reference home: run `verify` (it must fail and name the command that fixes the state, unless the fault is harmless),
then `cat` of every file, `add`, `publish`, `fetch`, `gc` and `node run`, in turn. Passes only if
- no committed byte is destroyed by a later command: every file that `verify --repair` could still read right after
  the fault is still readable after all the commands and a final `verify --repair`;
- wrong bytes are never served: every `cat` and `fetch` that succeeds gives the exact bytes.
Prints the matrix as a Markdown table. Usage: matrix.py ALEXANDRIA_BINARY [WORKDIR]
"""
import hashlib, os, random, shutil, signal, socket, sqlite3, subprocess, sys, tempfile, time

BIN = sys.argv[1]
WORK = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="alexandria-faults-")
os.makedirs(WORK, exist_ok=True)
rng = random.Random(11)


def run(home, *args, timeout=60):
    p = subprocess.run([BIN, *args, "--home", home], capture_output=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def data(n, seed):
    r = random.Random(seed)
    return bytes(r.getrandbits(8) for _ in range(n)) if n < 4096 else r.randbytes(n)


def build_reference():
    ref = os.path.join(WORK, "ref")
    assert run(ref, "init")[0] == 0
    files = {}
    for i, size in enumerate([1_500_000, 700_000]):
        b = data(size, 100 + i)
        p = os.path.join(WORK, f"f{i}.bin")
        open(p, "wb").write(b)
        assert run(ref, "add", p)[0] == 0
        files["sha256:" + hashlib.sha256(b).hexdigest()] = b
    assert run(ref, "keys", "generate", "acme")[0] == 0
    model = os.path.join(WORK, "model")
    os.makedirs(model, exist_ok=True)
    w = data(900_000, 200)
    open(os.path.join(model, "model.safetensors"), "wb").write(w)
    open(os.path.join(model, "config.json"), "w").write('{"a": 1}')
    rc, _, err = run(ref, "publish", model, "--name", "tiny", "--version", "1.0")
    assert rc == 0, err
    files["sha256:" + hashlib.sha256(w).hexdigest()] = w
    # The "older copy" of every file: the home as it was before one more add and publish.
    older = os.path.join(WORK, "older")
    shutil.copytree(ref, older)
    # The newest commits are made while a daemon holds the index and catalog open, and the daemon is then killed
    # (-9): the home keeps its -wal and -shm files, as a live home does.
    node = subprocess.Popen([BIN, "node", "run", "--home", ref, "--listen", f"127.0.0.1:{free_port()}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    b = data(400_000, 300)
    p = os.path.join(WORK, "f-late.bin")
    open(p, "wb").write(b)
    assert run(ref, "add", p)[0] == 0
    files["sha256:" + hashlib.sha256(b).hexdigest()] = b
    open(os.path.join(model, "extra.bin"), "wb").write(data(50_000, 301))
    rc, _, err = run(ref, "publish", model, "--name", "tiny", "--version", "1.1")
    assert rc == 0, err
    # The daemon writes what it learned (cosignatures, availability) a moment after the publish, and rewrites the
    # catalog mark every two seconds: a -wal lost within two seconds of a daemon commit can lose that commit unseen
    # (Protocol/store-v1.md). Wait past that window so every -wal cell below is a loss the mark can see.
    time.sleep(4.5)
    node.kill()
    node.wait()
    for rel in ["store/index.sqlite-wal", "catalog.sqlite-wal"]:
        print(f"{rel}: {os.path.getsize(os.path.join(ref, rel)) if os.path.exists(os.path.join(ref, rel)) else 'absent'} bytes in the reference home", file=sys.stderr)
    return ref, older, files


def home_files(ref):
    out = ["store/index.sqlite", "store/index.sqlite-wal", "store/index.sqlite-shm"]
    out += ["store/packs/" + p for p in sorted(os.listdir(os.path.join(ref, "store/packs")))]
    out += ["catalog.sqlite", "catalog.sqlite-wal", "catalog.mark", "keys/node.key", "keys/node.pub"]
    out += ["keys/publishers/" + k for k in sorted(os.listdir(os.path.join(ref, "keys/publishers")))]
    out += ["config.toml"]
    return out


def inject(home, older, rel, fault):
    path = os.path.join(home, rel)
    if not os.path.exists(path):
        return False
    if fault == "deleted":
        os.unlink(path)
    elif fault == "truncated-0":
        os.truncate(path, 0)
    elif fault == "truncated-half":
        os.truncate(path, os.path.getsize(path) // 2)
    elif fault == "byte-flipped":
        size = os.path.getsize(path)
        if size == 0:
            return False
        at = rng.randrange(size)
        with open(path, "r+b") as f:
            f.seek(at)
            b = f.read(1)
            f.seek(at)
            f.write(bytes([b[0] ^ 0xFF]))
    elif fault == "older-copy":
        src = os.path.join(older, rel)
        if os.path.exists(src):
            if open(src, "rb").read() == open(path, "rb").read():
                return False
            shutil.copy2(src, path)
        else:
            os.unlink(path)
    return True


def sqlite_rows(home, rel):
    """Every row of the database `rel` belongs to (with its -wal), read from a private copy; None if unreadable."""
    base = rel.split("-")[0] if rel.endswith(("-wal", "-shm")) else rel
    if not base.endswith(".sqlite"):
        return None
    tmp = tempfile.mkdtemp(prefix="rows-", dir=WORK)
    try:
        for suffix in ["", "-wal"]:
            src = os.path.join(home, base + suffix)
            if os.path.exists(src):
                shutil.copy2(src, os.path.join(tmp, "db" + suffix))
        if not os.path.exists(os.path.join(tmp, "db")):
            return None
        con = sqlite3.connect(os.path.join(tmp, "db"))
        try:
            return list(con.iterdump())
        finally:
            con.close()
    except sqlite3.DatabaseError:
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def harmless(home, ref, rel, fault):
    """Why the fault changes nothing the home knows (so verify may say ok), or None if it is damage verify must report.
    Checked, not assumed: a database counts as unchanged only if every row still reads the same."""
    if rel.endswith("-shm"):
        return "harmless: SQLite rebuilds the -shm from the WAL"
    if rel == "config.toml" and fault in ("deleted", "truncated-0"):
        return "harmless: no config means the defaults, which the reference uses"
    if rel == "config.toml" and fault == "truncated-half":
        cut, whole = open(os.path.join(home, rel), "rb").read(), open(os.path.join(ref, rel), "rb").read()
        if whole.startswith(cut) and run(home, "ls")[0] == 0:
            return "harmless: the reference config holds only defaults; a cut one that parses gives the same"
    if rel == "keys/node.pub" and fault == "deleted":
        return "harmless: the record of the node's public key is written again by `init`"
    if rel == "catalog.mark" and fault in ("deleted", "older-copy"):
        return "harmless: a missing or lagging mark loses nothing; it is written again from the catalog"
    if rel.endswith(".json") and rel.startswith("keys/publishers/") and fault == "deleted":
        return "harmless: a generated key's settings are the defaults"
    before, after = sqlite_rows(ref, rel), sqlite_rows(home, rel)
    if before is not None and before == after:
        return "harmless: every row reads the same (free space or unused bytes)"
    return None


def readable(home, files):
    """Addresses `cat` returns exactly; a wrong byte is a failure of the whole run."""
    ok, wrong = set(), []
    for address, b in files.items():
        rc, out, _ = run(home, "cat", address)
        if rc == 0:
            if out == b:
                ok.add(address)
            else:
                wrong.append(address)
    return ok, wrong


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def node_run(home):
    p = subprocess.Popen([BIN, "node", "run", "--home", home, "--listen", f"127.0.0.1:{free_port()}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 4
    while time.time() < deadline and p.poll() is None:
        time.sleep(0.1)
        if time.time() > deadline - 3:  # ran for a second
            break
    if p.poll() is not None:
        return f"exit {p.returncode}"
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        return "HUNG"
    return "ok" if p.returncode == 0 else f"exit {p.returncode} on TERM"


def names_fix(text):
    for cmd in ["verify --repair", "alexandria fetch", "alexandria add", "alexandria init", "fetch or add", "`alexandria",
                "restore"]:
        if cmd in text:
            return True
    return False


def main():
    ref, older, files = build_reference()
    faults = ["deleted", "truncated-0", "truncated-half", "byte-flipped", "older-copy"]
    commands = ["verify", "cat", "add", "publish", "fetch", "gc", "node run"]
    rows, failures = [], []
    extra = os.path.join(WORK, "extra.bin")
    open(extra, "wb").write(data(300_000, 400))
    first = next(iter(files))
    cell = 0
    only = os.environ.get("MATRIX_ONLY")  # a substring of the files to run (by hand); all of them by default
    for rel in [r for r in home_files(ref) if not only or only in r]:
        for fault in faults:
            cell += 1
            home = os.path.join(WORK, f"h{cell}")
            shutil.copytree(ref, home)
            if not inject(home, older, rel, fault):
                rows.append((rel, fault, ["n/a (absent or unchanged)"] + [""] * (len(commands) - 1), ""))
                shutil.rmtree(home)
                continue
            # The oracle: what a repair right after the fault can still read.
            oracle = home + "-oracle"
            shutil.copytree(home, oracle)
            run(oracle, "verify", "--repair")
            before, _ = readable(oracle, files)
            shutil.rmtree(oracle)
            why = harmless(home, ref, rel, fault)
            out = []
            rc, o, e = run(home, "verify")
            text = o.decode(errors="replace") + e
            out.append(f"exit {rc}" + (" +fix" if rc != 0 and names_fix(text) else (" NO-FIX" if rc != 0 else ""))
                       + (" (harmless)" if rc == 0 and why else ""))
            if why is None and (rc == 0 or not names_fix(text)):
                failures.append(f"{rel} {fault}: a fault verify did not report with its fix (exit {rc})")
            ok, wrong = readable(home, files)
            out.append("WRONG BYTES" if wrong else f"{len(ok)}/{len(files)}")
            if wrong:
                failures.append(f"{rel} {fault}: cat served wrong bytes for {wrong}")
            rc, _, e = run(home, "add", extra)
            out.append("ok" if rc == 0 else f"exit {rc}" + (" +fix" if names_fix(e) else ""))
            model = os.path.join(WORK, "model")
            rc, _, e = run(home, "publish", model, "--name", "tiny", "--version", f"2.{cell}")
            out.append("ok" if rc == 0 else f"exit {rc}" + (" +fix" if names_fix(e) else ""))
            target = os.path.join(WORK, f"fetched-{cell}.bin")
            rc, _, e = run(home, "fetch", first, "-o", target)
            if rc == 0 and open(target, "rb").read() != files[first]:
                failures.append(f"{rel} {fault}: fetch wrote wrong bytes")
                out.append("WRONG BYTES")
            else:
                out.append("ok" if rc == 0 else f"exit {rc}")
            rc, _, e = run(home, "gc")
            out.append("ok" if rc == 0 else f"exit {rc}" + (" +fix" if names_fix(e) else ""))
            out.append(node_run(home))
            run(home, "verify", "--repair")
            after, wrong = readable(home, files)
            if wrong:
                failures.append(f"{rel} {fault}: wrong bytes after repair")
            lost = before - after
            if lost:
                failures.append(f"{rel} {fault}: {len(lost)} file(s) readable after the fault were destroyed later")
            rows.append((rel, fault, out, f"{len(after)}/{len(files)}" + (f" LOST {len(lost)}" if lost else "")))
            shutil.rmtree(home)
            if os.path.exists(target):
                os.unlink(target)
    print("| file | fault | " + " | ".join(commands) + " | readable after repair |")
    print("|---|---|" + "---|" * (len(commands) + 1))
    for rel, fault, out, end in rows:
        print(f"| {rel} | {fault} | " + " | ".join(out) + f" | {end} |")
    print()
    print("cells:", len(rows), " failures:", len(failures))
    for f in failures:
        print("FAIL", f)
    shutil.rmtree(WORK, ignore_errors=True)
    sys.exit(1 if failures else 0)


main()
