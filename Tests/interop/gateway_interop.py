"""Interop checks of the HTTP gateway against real clients: huggingface_hub 2.4.0, the `hf` CLI, safetensors, skopeo,
oras and modelpack-client.

Run by Tests/interop.sh (which installs what it needs). Starts real `alexandria` nodes on loopback, publishes a small
release, and checks every file the clients write by sha256. Ends with a line `N passed, M failed`.
"""

import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN = os.environ["ALEXANDRIA"]
WORK = os.environ["WORK"]
PY = sys.executable
HF = os.path.join(os.path.dirname(PY), "hf")
passed, failed = 0, 0
procs = []


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cli(home, *args):
    r = subprocess.run([BIN, *args, "--home", home], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"alexandria {' '.join(args)} failed: {r.stderr}")
    return r.stdout


def start_node(home, extra):
    port, http = free_port(), free_port()
    log = open(os.path.join(WORK, f"node-{http}.log"), "w")
    p = subprocess.Popen(
        [BIN, "node", "run", "--home", home, "--listen", f"127.0.0.1:{port}", "--http", f"127.0.0.1:{http}", *extra],
        stdout=subprocess.DEVNULL, stderr=log)
    procs.append(p)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", http), timeout=1).close()
            return port, http
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("node did not start")


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def client(http, code, cache, extra_env=None, timeout=120):
    env = dict(os.environ, HF_ENDPOINT=f"http://127.0.0.1:{http}", HF_HUB_DISABLE_XET="1", HF_HUB_CACHE=cache,
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    env.update(extra_env or {})
    r = subprocess.run([PY, "-c", code], capture_output=True, text=True, env=env, timeout=timeout)
    return r


def main():
    import numpy as np
    from safetensors.numpy import save_file

    home = os.path.join(WORK, "publisher")
    cli(home, "init")
    cli(home, "keys", "generate", "acme")
    rel = os.path.join(WORK, "release")
    os.makedirs(os.path.join(rel, "tokenizer"))
    rng = np.random.default_rng(20240601)
    tensors = {"embed.weight": rng.standard_normal((64, 32)).astype(np.float32),
               "head.bias": rng.standard_normal((32,)).astype(np.float16)}
    save_file(tensors, os.path.join(rel, "model.safetensors"))
    with open(os.path.join(rel, "config.json"), "w") as f:
        json.dump({"hidden_size": 32, "vocab_size": 64}, f)
    with open(os.path.join(rel, "tokenizer", "vocab.txt"), "w") as f:
        f.write("a\nb\nc\n")
    with open(os.path.join(rel, "big.bin"), "wb") as f:
        f.write(random.Random(7).randbytes(96 << 20))
    want = {}
    for root, _, names in os.walk(rel):
        for n in names:
            p = os.path.join(root, n)
            want[os.path.relpath(p, rel)] = sha(p)
    out = json.loads(cli(home, "publish", rel, "--name", "tiny", "--version", "1.0", "--json"))
    publisher = out["release"].split("/")[0]
    commit10 = out["manifestID"].split(":")[1][:40]
    repo = f"{publisher}/tiny"
    _, http = start_node(home, [])
    cache = os.path.join(WORK, "cache")

    # snapshot_download by version and by main, then hf_hub_download, all checked by sha256.
    for rev in ["1.0", "main"]:
        r = client(http, f"from huggingface_hub import snapshot_download; print(snapshot_download({repo!r}, "
                         f"revision={rev!r}))", cache)
        path = r.stdout.strip().splitlines()[-1] if r.returncode == 0 else ""
        got = {k: sha(os.path.join(path, k)) if os.path.exists(os.path.join(path, k)) else None for k in want}
        check(f"snapshot_download revision={rev} sha256 of every file", r.returncode == 0 and got == want, r.stderr[-500:])
        check(f"snapshot_download revision={rev} commit is the manifest id's first 40 hex", path.endswith(commit10), path)
    for rev in ["1.0", "main"]:
        r = client(http, f"from huggingface_hub import hf_hub_download; print(hf_hub_download({repo!r}, "
                         f"'tokenizer/vocab.txt', revision={rev!r}))", cache)
        p = r.stdout.strip().splitlines()[-1] if r.returncode == 0 else ""
        check(f"hf_hub_download revision={rev}", r.returncode == 0 and sha(p) == want["tokenizer/vocab.txt"], r.stderr[-500:])

    # The same again offline, from the client's cache.
    r = client(http, f"from huggingface_hub import snapshot_download, hf_hub_download\n"
                     f"print(snapshot_download({repo!r}, revision='1.0'))\n"
                     f"print(hf_hub_download({repo!r}, 'config.json'))", cache, {"HF_HUB_OFFLINE": "1"})
    lines = r.stdout.strip().splitlines()
    check("offline snapshot_download and hf_hub_download from cache",
          r.returncode == 0 and len(lines) >= 2 and sha(lines[-1]) == want["config.json"]
          and all(sha(os.path.join(lines[-2], k)) == v for k, v in want.items()), r.stderr[-500:])

    # safetensors loads the downloaded weights into numpy, equal to what was published.
    r = client(http, f"from huggingface_hub import hf_hub_download; from safetensors.numpy import load_file\n"
                     f"import numpy as np, json\n"
                     f"t = load_file(hf_hub_download({repo!r}, 'model.safetensors', revision='1.0'))\n"
                     f"print(json.dumps({{k: [list(v.shape), str(v.dtype), float(np.asarray(v, dtype=np.float64).sum())] "
                     f"for k, v in t.items()}}))", cache)
    try:
        loaded = json.loads(r.stdout.strip().splitlines()[-1])
        expected = {k: [list(v.shape), str(v.dtype), float(np.asarray(v, dtype=np.float64).sum())] for k, v in tensors.items()}
        check("safetensors loads the downloaded weights into numpy", loaded == expected, f"{loaded} {expected}")
    except Exception as e:
        check("safetensors loads the downloaded weights into numpy", False, f"{e} {r.stderr[-500:]}")

    # model_info, list_repo_files, list_repo_refs, and the error classes the client maps the codes to.
    r = client(http, f"from huggingface_hub import HfApi; import json\napi = HfApi()\n"
                     f"i = api.model_info({repo!r}); refs = api.list_repo_refs({repo!r})\n"
                     f"print(json.dumps([i.sha, sorted(api.list_repo_files({repo!r})), "
                     f"[(b.name, b.target_commit) for b in refs.branches], [t.name for t in refs.tags]]))", cache)
    try:
        sha_main, files, branches, tags = json.loads(r.stdout.strip().splitlines()[-1])
        check("model_info / list_repo_files / list_repo_refs",
              sha_main == commit10 and files == sorted(want) and branches == [["main", commit10]] and tags == ["1.0"],
              r.stdout)
    except Exception as e:
        check("model_info / list_repo_files / list_repo_refs", False, f"{e} {r.stderr[-500:]}")
    for args, error in [((f"'{publisher}/nope'", "'config.json'"), "RepositoryNotFoundError"),
                        ((repr(repo), "'config.json'", "revision='9.9'"), "RevisionNotFoundError"),
                        ((repr(repo), "'nope.json'"), "EntryNotFoundError")]:
        r = client(http, f"from huggingface_hub import hf_hub_download\ntry:\n hf_hub_download({', '.join(args)})\n"
                         f"except Exception as e: print(type(e).__name__)", os.path.join(WORK, "cache-errors"))
        check(f"error maps to {error}", error in r.stdout, r.stdout + r.stderr[-300:])

    # The hf CLI.
    r = subprocess.run([HF, "download", repo, "config.json", "--revision", "1.0", "--cache-dir",
                        os.path.join(WORK, "cache-cli")], capture_output=True, text=True,
                       env=dict(os.environ, HF_ENDPOINT=f"http://127.0.0.1:{http}", HF_HUB_DISABLE_XET="1"))
    # It prints "path: <file>" (recent versions) or the bare path.
    lines = [line.strip() for line in r.stdout.splitlines() if line.strip()]
    p = lines[-1].split("path:", 1)[-1].strip() if r.returncode == 0 and lines else ""
    check("hf download", bool(p) and os.path.exists(p) and sha(p) == want["config.json"], r.stdout + r.stderr[-300:])

    # main moves only when the log says so: a new version moves it, a yank moves it back (with a warning).
    with open(os.path.join(rel, "config.json"), "w") as f:
        json.dump({"hidden_size": 32, "vocab_size": 65}, f)
    out11 = json.loads(cli(home, "publish", rel, "--name", "tiny", "--version", "1.1", "--json"))
    commit11 = out11["manifestID"].split(":")[1][:40]
    info = "from huggingface_hub import HfApi; print(HfApi().model_info(%r).sha)" % repo
    r = client(http, info, cache)
    check("main moves to a new version", r.stdout.strip() == commit11, r.stdout + r.stderr[-300:])
    cli(home, "yank", f"{publisher}/tiny@1.1", "--reason", "regressed on evals")
    r = client(http, info, cache)
    check("main moves back when the new version is yanked", r.stdout.strip() == commit10, r.stdout + r.stderr[-300:])
    r = client(http, f"from huggingface_hub import hf_hub_download; print(hf_hub_download({repo!r}, 'config.json', "
                     f"revision='1.1'))", cache)
    check("a yanked version still downloads exactly, and the client prints the notice",
          r.returncode == 0 and "yanked" in r.stderr and "regressed on evals" in r.stderr, r.stderr[-500:])

    # A resumed download after the client is killed.
    rcache = os.path.join(WORK, "cache-resume")
    env = dict(os.environ, HF_ENDPOINT=f"http://127.0.0.1:{http}", HF_HUB_DISABLE_XET="1", HF_HUB_CACHE=rcache,
               HF_HUB_DISABLE_PROGRESS_BARS="1")
    code = f"from huggingface_hub import hf_hub_download; print(hf_hub_download({repo!r}, 'big.bin', revision='1.0'))"
    partial = 0
    for _ in range(5):
        p = subprocess.Popen([PY, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline and p.poll() is None:
            incompletes = [os.path.join(dp, n) for dp, _, ns in os.walk(rcache) for n in ns if n.endswith(".incomplete")]
            sizes = [os.path.getsize(f) for f in incompletes]
            if sizes and 0 < max(sizes) < (96 << 20):
                p.send_signal(signal.SIGKILL)
                partial = max(sizes)
                break
            time.sleep(0.002)
        p.wait()
        if partial:
            break
        subprocess.run(["rm", "-rf", rcache])
    r = subprocess.run([PY, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    path = r.stdout.strip().splitlines()[-1] if r.returncode == 0 else ""
    check("a download killed part-way resumes and completes by sha256",
          partial > 0 and path and sha(path) == want["big.bin"], f"partial={partial} {r.stderr[-300:]}")

    # Pull-through: a node that held nothing serves the release from its peer.
    empty = os.path.join(WORK, "mirror")
    cli(empty, "init")
    _, http2 = start_node(empty, ["--peer", f"127.0.0.1:{_port_of(home)}", "--no-mirror"])
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{http2}/api/models/{repo}/revision/1.0", timeout=2).read()
            break
        except Exception:
            time.sleep(0.2)
    r = client(http2, f"from huggingface_hub import snapshot_download; print(snapshot_download({repo!r}, "
                      f"revision='1.0'))", os.path.join(WORK, "cache-pull"))
    path = r.stdout.strip().splitlines()[-1] if r.returncode == 0 else ""
    check("pull-through: snapshot_download from a node that held nothing",
          bool(path) and all(sha(os.path.join(path, k)) == v for k, v in want.items()), r.stderr[-500:])

    # OCI: the same manifest bytes from both nodes; skopeo copies the ModelPack artifact; every layer by sha256.
    m1 = urllib.request.urlopen(f"http://127.0.0.1:{http}/v2/{repo}/manifests/1.0").read()
    m2 = urllib.request.urlopen(f"http://127.0.0.1:{http2}/v2/{repo}/manifests/1.0").read()
    check("OCI manifest is byte-identical on two nodes", m1 == m2 and len(m1) > 0)
    oci = os.path.join(WORK, "oci")
    r = subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://127.0.0.1:{http}/{repo}:1.0",
                        f"oci:{oci}:1.0"], capture_output=True, text=True, timeout=300)
    ok = r.returncode == 0
    got = {}
    if ok:
        index = json.load(open(os.path.join(oci, "index.json")))
        digest = index["manifests"][0]["digest"].split(":")[1]
        manifest = json.load(open(os.path.join(oci, "blobs", "sha256", digest)))
        ok = manifest.get("artifactType") == "application/vnd.cncf.model.manifest.v1+json"
        for layer in manifest["layers"]:
            blob = os.path.join(oci, "blobs", "sha256", layer["digest"].split(":")[1])
            got[layer["annotations"]["org.cncf.model.filepath"]] = sha(blob)
    check("skopeo copy of the ModelPack artifact, every layer by sha256", ok and got == want, r.stderr[-500:])

    # oras (oras-py) and modelpack-client (which validates the ModelPack manifest and config against the spec's
    # schemas and checks every blob's digest) pull the release; every file compared by sha256.
    for name, code in [
        ("oras pull", f"import oras.client\nc = oras.client.OrasClient(hostname='127.0.0.1:{http}', insecure=True)\n"
                      f"c.pull(target='127.0.0.1:{http}/{repo}:1.0', outdir=OUT)\n"
                      f"print(c.get_tags('127.0.0.1:{http}/{repo}'))"),
        ("modelpack-client pull", f"from modelpack_client import ModelPackClient\n"
                                  f"ModelPackClient(insecure=True).pull('127.0.0.1:{http}/{repo}:latest', OUT)"),
    ]:
        out_dir = os.path.join(WORK, name.split()[0])
        r = subprocess.run([PY, "-c", f"OUT = {out_dir!r}\n" + code], capture_output=True, text=True, timeout=300)
        got = {}
        for root, _, names in os.walk(out_dir):
            for n in names:
                got[os.path.relpath(os.path.join(root, n), out_dir)] = sha(os.path.join(root, n))
        check(f"{name} of the ModelPack artifact, every file by sha256", r.returncode == 0 and got == want,
              r.stderr[-500:])
        if name == "oras pull":
            check("oras lists the tags", "'1.0', '1.1', 'latest'" in r.stdout, r.stdout[-200:])

    # A release with more files than one tree page (1000 entries): the client follows the `Link: rel="next"`
    # pages, and every file is listed once.
    many = os.path.join(WORK, "many")
    for i in range(1020):  # a release holds at most 1024 files; with 11 folders, 1031 tree entries
        os.makedirs(os.path.join(many, f"d{i // 100}"), exist_ok=True)
        with open(os.path.join(many, f"d{i // 100}", f"f{i}.txt"), "w") as f:
            f.write(f"{i}\n")
    cli(home, "publish", many, "--name", "many", "--version", "1.0", "--json")
    r = client(http, f"from huggingface_hub import HfApi; import json\napi = HfApi()\n"
                     f"files = api.list_repo_files('{publisher}/many')\n"
                     f"tree = list(api.list_repo_tree('{publisher}/many', recursive=True))\n"
                     f"print(json.dumps([len(files), len(set(files)), len(tree)]))", cache)
    check("list_repo_files / list_repo_tree over paged tree listings (1020 files, 1031 entries)",
          r.returncode == 0 and r.stdout.strip().splitlines()[-1] == "[1020, 1020, 1031]", r.stdout + r.stderr[-300:])


def _port_of(home):
    for p in procs:
        args = p.args
        if args[args.index("--home") + 1] == home:
            return int(args[args.index("--listen") + 1].split(":")[1])
    raise RuntimeError("no node for " + home)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        check("interop run", False, repr(e))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
