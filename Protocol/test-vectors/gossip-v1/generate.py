#!/usr/bin/env python3
"""Reference implementation of the value formats and the set reconciliation of Protocol/gossip-v1.md, and
generator of its test vectors. Independent of the Swift sources: it follows the spec text.

    python3 Protocol/test-vectors/gossip-v1/generate.py

writes vectors.json next to this file. Needs Python 3 and the `cryptography` package (Ed25519). Output is
deterministic: Ed25519 signatures are deterministic and every key comes from a fixed seed.
"""

import base64
import hashlib
import json
import os
import struct

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization


def sha256(b):
    return hashlib.sha256(b).digest()


def key_from_seed(label):
    return Ed25519PrivateKey.from_private_bytes(sha256(b"alexandria gossip vectors " + label.encode()))


def raw_public(k):
    return k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


# --- Items ---------------------------------------------------------------------------------------------------
def item_id(kind, body):
    return sha256(bytes([kind]) + body)


# --- Cosignature (C2SP cosignature/v1) -------------------------------------------------------------------------
def witness_name(pub):
    return "alexandria.dev/node/" + pub.hex()


def cosignature_body(key, checkpoint_text, timestamp):
    pub = raw_public(key)
    name = witness_name(pub)
    key_id = sha256(name.encode() + b"\x0a\x04" + pub)[:4]
    message = ("cosignature/v1\ntime %d\n" % timestamp).encode() + checkpoint_text.encode()
    sig = key.sign(message)
    line = "\u2014 %s %s\n" % (name, base64.b64encode(key_id + struct.pack(">Q", timestamp) + sig).decode())
    return (checkpoint_text + "\n" + line).encode()


# --- Availability and demand -----------------------------------------------------------------------------------
def availability_body(key, manifest, ts_ms, holds):
    signed = b"ALXA" + b"\x01" + raw_public(key) + manifest + struct.pack(">Q", ts_ms) + bytes([1 if holds else 0])
    return signed + key.sign(signed)


def demand_body(key, ts_ms, counts):
    signed = b"ALXD" + b"\x01" + raw_public(key) + struct.pack(">QH", ts_ms, len(counts))
    for manifest, fetches in counts:
        signed += manifest + struct.pack(">I", fetches)
    return signed + key.sign(signed)


# --- Reconciliation --------------------------------------------------------------------------------------------
BRANCHING = 16
ID_LIST_THRESHOLD = 32
PULL_THRESHOLD = 0
MAX_IDS_PER_RANGE = 64
INF = None  # the bound after every id


def fingerprint(ids):
    total = sum(int.from_bytes(i, "big") for i in ids) % (1 << 256)
    return sha256(b"alexandria/reconcile/v2" + struct.pack(">Q", len(ids)) + total.to_bytes(32, "big"))[:16]


def below(bound, i):
    return bound is INF or i < bound


def step(mine, message):
    """mine: sorted list of 32-byte ids. message: list of (upper, mode, value). Returns (reply or None, they_lack,
    we_lack)."""
    out, they_lack, we_lack = [], [], []
    lo = 0
    for upper, mode, value in message:
        hi = lo
        while hi < len(mine) and below(upper, mine[hi]):
            hi += 1
        part = mine[lo:hi]
        if mode == "skip":
            out.append((upper, "skip", None))
        elif mode == "fingerprint":
            count, fp = value
            if count == len(part) and fp == fingerprint(part):
                out.append((upper, "skip", None))
            elif len(part) <= ID_LIST_THRESHOLD:
                out.append((upper, "ids", list(part)))
            else:
                per = (len(part) + BRANCHING - 1) // BRANCHING
                s = 0
                while s < len(part):
                    e = min(s + per, len(part))
                    bound = upper if e == len(part) else part[e]
                    out.append((bound, "fingerprint", (e - s, fingerprint(part[s:e]))))
                    s = e
        else:  # ids
            theirs = set(value)
            ours = set(part)
            lacking = [i for i in value if i not in ours]
            extra = [i for i in part if i not in theirs]
            if not lacking and len(extra) > PULL_THRESHOLD:
                # They are behind and we lack nothing: our ids in parts of at most MAX_IDS_PER_RANGE, to pull.
                s = 0
                while s < len(part):
                    e = min(s + MAX_IDS_PER_RANGE, len(part))
                    out.append((upper if e == len(part) else part[e], "ids", list(part[s:e])))
                    s = e
            else:
                we_lack += lacking
                they_lack += extra
                out.append((upper, "skip", None))
        lo = hi
    merged = []
    for r in out:
        if r[1] == "skip" and merged and merged[-1][1] == "skip":
            merged[-1] = (r[0], "skip", None)
        else:
            merged.append(r)
    done = all(r[1] == "skip" for r in merged)
    return (None if done else merged), they_lack, we_lack


def open_message(mine):
    if len(mine) <= ID_LIST_THRESHOLD:
        return [(INF, "ids", list(mine))]
    return [(INF, "fingerprint", (len(mine), fingerprint(mine)))]


def encode_ranges(round_, ranges):
    """RECONCILE payload (type 0x51)."""
    out = bytes([round_]) + struct.pack(">H", len(ranges))
    for upper, mode, value in ranges:
        out += b"\x01" if upper is INF else b"\x00" + upper
        if mode == "skip":
            out += b"\x00"
        elif mode == "fingerprint":
            out += b"\x01" + struct.pack(">I", value[0]) + value[1]
        else:
            out += b"\x02" + struct.pack(">H", len(value)) + b"".join(value)
    return out


def frame(type_, payload):
    return struct.pack(">I", len(payload) + 1) + bytes([type_]) + payload


def ids(label, n):
    return [sha256(("%s-%d" % (label, i)).encode()) for i in range(n)]


def expand(spec):
    out = []
    for label, n in spec:
        out += ids(label, n)
    return out


def reconcile_case(name, spec_a, spec_b):
    a, b = sorted(set(expand(spec_a))), sorted(set(expand(spec_b)))
    messages = []
    msg = open_message(a)
    sides = [a, b]
    lack = {0: set(), 1: set()}  # ids side k learned it lacks
    sender, round_ = 0, 0
    while msg is not None and round_ < 40:
        messages.append(encode_ranges(round_, msg).hex())
        receiver = 1 - sender
        reply, they_lack, we_lack = step(sides[receiver], msg)
        lack[receiver] |= set(we_lack)
        lack[sender] |= set(they_lack)
        msg, sender, round_ = reply, receiver, round_ + 1
    assert lack[0] == set(b) - set(a), name
    assert lack[1] == set(a) - set(b), name
    return {
        "name": name,
        "a": spec_a,
        "b": spec_b,
        "messages": messages,
        "aLacks": sorted(i.hex() for i in lack[0]),
        "bLacks": sorted(i.hex() for i in lack[1]),
    }


def main():
    witness = key_from_seed("witness")
    node = key_from_seed("node")
    checkpoint = "alexandria.dev/publisher/" + "ab" * 32 + "\n3\n" + base64.b64encode(sha256(b"root")).decode() + "\n"
    manifest = sha256(b"manifest")
    cos = cosignature_body(witness, checkpoint, 1795000000)
    av = availability_body(node, manifest, 1795000000123, True)
    de = demand_body(node, 1795000000456, [(manifest, 42), (sha256(b"other"), 7)])
    items = [
        {"kind": 6, "body": cos.hex(), "id": item_id(6, cos).hex()},
        {"kind": 7, "body": av.hex(), "id": item_id(7, av).hex()},
        {"kind": 8, "body": de.hex(), "id": item_id(8, de).hex()},
    ]
    # Sets are given as [label, n] parts: part i of [label, n] is SHA-256 of the ASCII text "label-i".
    shared = ["shared", 500]
    cases = [
        reconcile_case("equal", [shared], [shared]),
        reconcile_case("both empty", [], []),
        reconcile_case("small sets", [["x", 5]], [["x", 3], ["y", 2]]),
        reconcile_case("one new item", [shared, ["new", 1]], [shared]),
        reconcile_case("a few each side", [shared, ["a", 7]], [shared, ["b", 5]]),
        reconcile_case("empty against 500", [], [shared]),
        reconcile_case("disjoint 100 and 200", [["p", 100]], [["q", 200]]),
    ]
    fps = [{"ids": [i.hex() for i in ids("fp", n)], "fingerprint": fingerprint(ids("fp", n)).hex()} for n in (0, 1, 3, 40)]
    # Ids whose sum wraps past 2^256 (the sum is taken modulo 2^256).
    high = [bytes([0xFF] * 31 + [n]) for n in (1, 2, 3)]
    fps.append({"ids": [i.hex() for i in high], "fingerprint": fingerprint(high).hex()})
    out = {
        "witnessSeedLabel": "witness",
        "witnessPublicKey": raw_public(witness).hex(),
        "nodePublicKey": raw_public(node).hex(),
        "checkpoint": checkpoint,
        "cosignature": {"timestamp": 1795000000, "body": cos.decode()},
        "availability": {"manifest": manifest.hex(), "timestampMillis": 1795000000123, "holds": True, "body": av.hex()},
        "demand": {"timestampMillis": 1795000000456, "body": de.hex()},
        "items": items,
        "fingerprints": fps,
        "reconcile": cases,
        "frames": {
            "peersQuery": frame(0x40, b"").hex(),
            "want": frame(0x52, struct.pack(">H", 2) + manifest + sha256(b"other")).hex(),
            "items": frame(
                0x50, bytes([1]) + raw_public(node)[:8] + struct.pack(">H", 1) + bytes([7]) + struct.pack(">I", len(av)) + av
            ).hex(),
            "peers": frame(
                0x41, struct.pack(">H", 1) + raw_public(node) + bytes([9]) + b"127.0.0.1" + struct.pack(">HQ", 7420, 1795000000)
            ).hex(),
        },
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=2, sort_keys=True)
        f.write("\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
