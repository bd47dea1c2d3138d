#!/usr/bin/env python3
"""Reference implementation of Protocol/chunking-and-hashing.md and generator of its test vectors.

Python 3 standard library only. Independent of the Swift sources: it follows the spec text.

    python3 Protocol/test-vectors/generate.py

writes, next to this file:
    gear-table.txt   256 lines, line i = gear[i] as 16 lowercase hex digits
    chunking.json    files -> chunk lists, addresses, Merkle roots, byte-range examples
    merkle.json      RFC 6962 / RFC 9162 roots, inclusion and consistency proofs

Output is deterministic (sorted keys, 2-space indent, trailing newline). Before writing, the script checks
itself against published RFC 6962 values and verifies every proof it emits; it exits non-zero on any mismatch.
"""

import hashlib
import json
import os
import struct
import sys

MASK64 = (1 << 64) - 1

# ---------------------------------------------------------------------------------------------------------------
# Content hashes


def sha256(data):
    return hashlib.sha256(data).digest()


def text_form(digest):
    """The canonical text form: "sha256:" + 64 lowercase hex digits."""
    assert len(digest) == 32
    return "sha256:" + digest.hex()


def parse_canonical(text):
    """Strict parse (wire, manifests): exactly "sha256:" + 64 lowercase hex digits, else None."""
    if not text.startswith("sha256:"):
        return None
    body = text[len("sha256:"):]
    if len(body) != 64 or any(c not in "0123456789abcdef" for c in body):
        return None
    return bytes.fromhex(body)


def parse_user_input(text):
    """Lenient parse (what a user types): optional "sha256:" prefix (any case), 64 hex digits (any case)."""
    body = text
    if body.lower().startswith("sha256:"):
        body = body[len("sha256:"):]
    if len(body) != 64 or any(c not in "0123456789abcdefABCDEF" for c in body):
        return None
    return bytes.fromhex(body)


# ---------------------------------------------------------------------------------------------------------------
# Gear table and chunker parameters

GEAR_SEED = b"alexandria/gear/v1"
GEAR = [struct.unpack(">Q", sha256(GEAR_SEED + bytes([i]))[:8])[0] for i in range(256)]


def top_bits(n):
    """A uint64 with its n most significant bits set."""
    return ((1 << n) - 1) << (64 - n) if n > 0 else 0


class Params:
    def __init__(self, average_bits):
        if not 12 <= average_bits <= 22:
            raise ValueError("averageBits must be in 12..22")
        b = average_bits
        self.bits = b
        self.min = 1 << (b - 2)
        self.avg = 1 << b
        self.max = 1 << (b + 2)
        self.mask_small = top_bits(b + 2)
        self.mask_large = top_bits(b - 2)

    def text(self):
        return "fastcdc-gear-v1/%d/%d/%d" % (self.min, self.avg, self.max)


def parse_chunker(text):
    """Parses "fastcdc-gear-v1/<min>/<avg>/<max>"; only the exact sizes derived from an allowed b are valid."""
    parts = text.split("/")
    if len(parts) != 4 or parts[0] != "fastcdc-gear-v1":
        return None
    for b in range(12, 23):
        p = Params(b)
        if parts[1:] == [str(p.min), str(p.avg), str(p.max)]:
            return p
    return None


def cut(d, start, n, p, stats=None):
    """Length of the next chunk of d[start:n] (the spec's cut rule, verbatim)."""
    remaining = n - start
    if remaining <= p.min:
        return remaining
    end = min(remaining, p.max)
    normal = min(end, p.avg)
    gear = GEAR
    ms = p.mask_small
    ml = p.mask_large
    h = 0
    i = p.min
    while i < normal:
        h = ((h << 1) + gear[d[start + i]]) & MASK64
        if h & ms == 0:
            if stats is not None:
                stats["small"] += 1
            return i + 1
        i += 1
    while i < end:
        h = ((h << 1) + gear[d[start + i]]) & MASK64
        if h & ml == 0:
            if stats is not None:
                stats["large"] += 1
            return i + 1
        i += 1
    if stats is not None:
        stats["max" if end == p.max else "end"] += 1
    return end


def chunk_lengths(d, p, stats=None):
    out = []
    offset = 0
    n = len(d)
    while offset < n:
        length = cut(d, offset, n, p, stats)
        out.append(length)
        offset += length
    return out


# ---------------------------------------------------------------------------------------------------------------
# Merkle tree (RFC 6962 / RFC 9162 section 2.1)


def leaf_hash(data):
    return sha256(b"\x00" + data)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


def split_point(n):
    """The largest power of two strictly smaller than n (n >= 2)."""
    assert n >= 2
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def mth(leaves):
    """MTH over a list of leaf hashes (already leaf-hashed)."""
    n = len(leaves)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return leaves[0]
    k = split_point(n)
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def mth_by_levels(leaves):
    """Second, independent construction: pair left to right, promote an odd last node. Must equal mth()."""
    if not leaves:
        return sha256(b"")
    level = list(leaves)
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def inclusion_proof(m, leaves):
    """RFC 9162 2.1.3.1 PATH(m, D[n]); bottom-up order."""
    n = len(leaves)
    assert 0 <= m < n
    if n == 1:
        return []
    k = split_point(n)
    if m < k:
        return inclusion_proof(m, leaves[:k]) + [mth(leaves[k:])]
    return inclusion_proof(m - k, leaves[k:]) + [mth(leaves[:k])]


def verify_inclusion(leaf, index, size, proof, root):
    """RFC 9162 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def consistency_proof(m, leaves):
    """RFC 9162 2.1.4.1 PROOF(m, D[n]) for 0 < m <= n; empty when m == n."""
    n = len(leaves)
    assert 0 < m <= n

    def subproof(m, d, b):
        n = len(d)
        if m == n:
            return [] if b else [mth(d)]
        k = split_point(n)
        if m <= k:
            return subproof(m, d[:k], b) + [mth(d[k:])]
        return subproof(m - k, d[k:], False) + [mth(d[:k])]

    return subproof(m, leaves, True)


def verify_consistency(first, second, first_hash, second_hash, proof):
    """RFC 9162 2.1.4.2 (with first == second accepted when the proof is empty and the roots agree)."""
    if first > second:
        return False
    if first == second:
        return not proof and first_hash == second_hash
    if first == 0:
        return not proof
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_hash)
    if not path:
        return False
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_hash and sr == second_hash


# ---------------------------------------------------------------------------------------------------------------
# Files: chunk leaves, roots, byte ranges


def chunk_leaf_data(chunk_id, offset, length):
    """48 bytes: id (32) || offset (u64 BE) || length (u64 BE)."""
    return chunk_id + struct.pack(">QQ", offset, length)


def chunk_file(d, p, stats=None):
    chunks = []
    offset = 0
    for length in chunk_lengths(d, p, stats):
        chunks.append((sha256(d[offset:offset + length]), offset, length))
        offset += length
    return chunks


def file_leaves(chunks):
    return [leaf_hash(chunk_leaf_data(cid, off, ln)) for cid, off, ln in chunks]


def covering_indices(chunks, a, b):
    """[first, last+1) of the chunks overlapping the half-open byte range [a, b): offset < b and offset+length > a."""
    if a >= b:
        return [0, 0]  # an empty range is covered by no chunks
    idx = [i for i, (_, off, ln) in enumerate(chunks) if off < b and off + ln > a]
    if not idx:
        return [0, 0]
    assert idx == list(range(idx[0], idx[-1] + 1))
    return [idx[0], idx[-1] + 1]


# ---------------------------------------------------------------------------------------------------------------
# Test data

TEXT = b"The quick brown fox jumps over the lazy dog. "


def test_data(kind, length, seed=None):
    if kind == "zeros":
        return bytes(length)
    if kind == "text":
        return (TEXT * (length // len(TEXT) + 1))[:length]
    if kind == "sha256-counter":
        prefix = b"alexandria/test-data/v1" + seed.to_bytes(8, "big")
        blocks = (length + 31) // 32
        return b"".join(sha256(prefix + i.to_bytes(8, "big")) for i in range(blocks))[:length]
    raise ValueError(kind)


# ---------------------------------------------------------------------------------------------------------------
# Self-checks against published values (certificate-transparency merkle_tree_test.cc / RFC 6962)

CT_LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
CT_ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def check(condition, message):
    if not condition:
        sys.stderr.write("self-check failed: %s\n" % message)
        sys.exit(1)


# ---------------------------------------------------------------------------------------------------------------
# Vector cases

CASES = [
    # name, data spec, averageBits
    ("empty", {"kind": "zeros", "length": 0}, 18),
    ("one-byte", {"kind": "sha256-counter", "seed": 1, "length": 1}, 18),
    ("exactly-min-b12", {"kind": "sha256-counter", "seed": 2, "length": 1024}, 12),
    ("min-plus-one-b12", {"kind": "sha256-counter", "seed": 3, "length": 1025}, 12),
    ("exactly-min-b18", {"kind": "sha256-counter", "seed": 4, "length": 65536}, 18),
    ("min-plus-one-b18", {"kind": "sha256-counter", "seed": 5, "length": 65537}, 18),
    ("zeros-exactly-max-b12", {"kind": "zeros", "length": 16384}, 12),
    ("zeros-max-plus-one-b12", {"kind": "zeros", "length": 16385}, 12),
    ("counter-600KiB-b12", {"kind": "sha256-counter", "seed": 6, "length": 600 * 1024 + 1}, 12),
    ("zeros-5max-plus-123-b12", {"kind": "zeros", "length": 5 * 16384 + 123}, 12),
    ("text-200KiB-b12", {"kind": "text", "length": 200 * 1024}, 12),
    ("counter-1MiB-b14", {"kind": "sha256-counter", "seed": 7, "length": (1 << 20) + 7777}, 14),
    ("counter-3MiB-b18", {"kind": "sha256-counter", "seed": 8, "length": 3 * (1 << 20) + 12345}, 18),
]

# Byte ranges for the "counter-600KiB-b12" case, chosen relative to its chunk boundaries.
RANGE_CASE = "counter-600KiB-b12"


def range_examples(chunks, size):
    c = chunks
    starts = [off for _, off, _ in c]
    ends = [off + ln for _, off, ln in c]
    picks = [
        (0, 1),                          # first byte
        (size - 1, size),                # last byte
        (0, size),                       # whole file
        (starts[3], ends[3]),            # exactly one chunk
        (starts[3], ends[3] + 1),        # one chunk and the first byte of the next
        (starts[3] - 1, ends[3]),        # last byte of the previous chunk and one chunk
        (ends[5] - 1, starts[6] + 1),    # two bytes straddling a boundary
        (starts[10] + 100, starts[20] + 100),
        (starts[7] + 5, starts[7] + 5),  # empty range: no chunks
    ]
    out = []
    for a, b in picks:
        first, last = covering_indices(c, a, b)
        out.append({"range": [a, b], "chunkIndices": [first, last]})
    return out


def build_chunking():
    cases = []
    saw = {"small": 0, "large": 0, "max": 0, "end": 0}
    for name, spec, bits in CASES:
        p = Params(bits)
        d = test_data(spec["kind"], spec["length"], spec.get("seed"))
        stats = {"small": 0, "large": 0, "max": 0, "end": 0}
        chunks = chunk_file(d, p, stats)
        for key in saw:
            saw[key] += stats[key]
        # Layout invariants the spec requires of every chunk list.
        check(sum(ln for _, _, ln in chunks) == len(d), name + ": lengths sum to the size")
        check(all(1 <= ln <= p.max for _, _, ln in chunks), name + ": lengths in 1..max")
        check(all(ln >= p.min for _, _, ln in chunks[:-1]), name + ": only the last chunk is below min")
        leaves = file_leaves(chunks)
        root = mth(leaves)
        check(root == mth_by_levels(leaves), name + ": root constructions agree")
        case = {
            "name": name,
            "data": dict(spec),
            "averageBits": bits,
            "chunker": p.text(),
            "address": text_form(sha256(d)),
            "chunks": [{"offset": off, "length": ln, "id": text_form(cid)} for cid, off, ln in chunks],
            "merkleRoot": text_form(root),
        }
        if name == RANGE_CASE:
            examples = range_examples(chunks, len(d))
            # Prove each chunk of one range against the root alone.
            ex = examples[7]
            first, last = ex["chunkIndices"]
            ex["leafHashes"] = [leaves[i].hex() for i in range(first, last)]
            ex["inclusionProofs"] = [[h.hex() for h in inclusion_proof(i, leaves)] for i in range(first, last)]
            for i in range(first, last):
                check(verify_inclusion(leaves[i], i, len(leaves), inclusion_proof(i, leaves), root),
                      "range proof verifies")
            case["rangeExamples"] = examples
        cases.append(case)
        if name.startswith("zeros-"):
            check(all(ln == p.max for _, _, ln in chunks[:-1]), name + ": zeros cut at max")
    check(saw["small"] > 0 and saw["large"] > 0 and saw["max"] > 0, "vectors exercise both masks and max cuts")
    return {"version": 1, "cases": cases}, saw


def build_merkle():
    leaf_data = [bytes.fromhex(x) for x in CT_LEAVES]
    leaves = [leaf_hash(x) for x in leaf_data]
    roots = []
    for n in range(1, 9):
        r = mth(leaves[:n])
        check(r == mth_by_levels(leaves[:n]), "root constructions agree at size %d" % n)
        roots.append({"size": n, "root": r.hex()})
    for n, want in CT_ROOTS.items():
        check(roots[n - 1]["root"] == want, "RFC 6962 root for size %d" % n)

    inclusion = []
    for n in range(1, 9):
        root = mth(leaves[:n])
        for m in range(n):
            proof = inclusion_proof(m, leaves[:n])
            check(verify_inclusion(leaves[m], m, n, proof, root), "inclusion %d/%d verifies" % (m, n))
            if proof:
                bad = [bytes([proof[0][0] ^ 1]) + proof[0][1:]] + proof[1:]
                check(not verify_inclusion(leaves[m], m, n, bad, root), "tampered inclusion fails")
            inclusion.append({"index": m, "size": n, "proof": [h.hex() for h in proof]})

    consistency = []
    for n in range(1, 9):
        for m in range(1, n + 1):
            proof = consistency_proof(m, leaves[:n])
            check(verify_consistency(m, n, mth(leaves[:m]), mth(leaves[:n]), proof),
                  "consistency %d->%d verifies" % (m, n))
            if proof:
                bad = proof[:-1] + [bytes([proof[-1][0] ^ 1]) + proof[-1][1:]]
                check(not verify_consistency(m, n, mth(leaves[:m]), mth(leaves[:n]), bad),
                      "tampered consistency fails")
            consistency.append({"oldSize": m, "newSize": n, "proof": [h.hex() for h in proof]})

    # Published proofs (certificate-transparency merkle_tree_test.cc).
    p08 = next(x for x in inclusion if x["index"] == 0 and x["size"] == 8)["proof"]
    check(p08 == ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                  "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                  "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"], "CT inclusion proof 0/8")
    c68 = next(x for x in consistency if x["oldSize"] == 6 and x["newSize"] == 8)["proof"]
    check(c68 == ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                  "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                  "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"], "CT consistency proof 6->8")
    c25 = next(x for x in consistency if x["oldSize"] == 2 and x["newSize"] == 5)["proof"]
    check(c25 == ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                  "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"], "CT consistency proof 2->5")

    empty = mth([])
    check(empty.hex() == EMPTY_SHA256, "empty root")

    # One chunk leaf, spelled out, for implementations to debug their 48-byte layout against.
    cid = sha256(b"abc")
    ld = chunk_leaf_data(cid, 0x010203040506, 262144)
    chunk_leaf = {
        "id": text_form(cid),
        "offset": 0x010203040506,
        "length": 262144,
        "leafData": ld.hex(),
        "leafHash": leaf_hash(ld).hex(),
    }
    return {
        "version": 1,
        "emptyRoot": empty.hex(),
        "leafData": CT_LEAVES,
        "leafHashes": [h.hex() for h in leaves],
        "roots": roots,
        "inclusionProofs": inclusion,
        "consistencyProofs": consistency,
        "chunkLeafExample": chunk_leaf,
    }


def self_check_text_forms():
    h = sha256(b"")
    t = text_form(h)
    check(t == "sha256:" + EMPTY_SHA256, "text form")
    check(parse_canonical(t) == h, "canonical parse")
    check(parse_canonical(t.upper()) is None, "canonical rejects upper case")
    check(parse_canonical(EMPTY_SHA256) is None, "canonical rejects bare hex")
    check(parse_canonical(t + "0") is None, "canonical rejects 65 digits")
    check(parse_user_input(EMPTY_SHA256.upper()) == h, "user input: bare upper-case hex")
    check(parse_user_input(t) == h, "user input: canonical")
    check(parse_user_input(" " + t) is None, "user input: no whitespace")
    check(parse_chunker("fastcdc-gear-v1/65536/262144/1048576").bits == 18, "chunker text")
    check(parse_chunker("fastcdc-gear-v1/65536/262144/1048577") is None, "chunker text: bad max")
    check(Params(18).mask_small == 0xFFFFF00000000000 and Params(18).mask_large == 0xFFFF000000000000, "masks")


def write_json(path, obj):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(obj, f, sort_keys=True, indent=2, ensure_ascii=True)
        f.write("\n")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    self_check_text_forms()
    merkle = build_merkle()
    chunking, saw = build_chunking()
    with open(os.path.join(here, "gear-table.txt"), "w", encoding="ascii", newline="\n") as f:
        for v in GEAR:
            f.write("%016x\n" % v)
    write_json(os.path.join(here, "chunking.json"), chunking)
    write_json(os.path.join(here, "merkle.json"), merkle)
    print("gear-table.txt: 256 entries")
    print("chunking.json: %d cases, %d chunks (cuts: %d small-mask, %d large-mask, %d at max, %d at end of data)"
          % (len(chunking["cases"]), sum(len(c["chunks"]) for c in chunking["cases"]),
             saw["small"], saw["large"], saw["max"], saw["end"]))
    print("merkle.json: %d roots, %d inclusion proofs, %d consistency proofs"
          % (len(merkle["roots"]), len(merkle["inclusionProofs"]), len(merkle["consistencyProofs"])))


if __name__ == "__main__":
    main()
