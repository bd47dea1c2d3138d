#!/usr/bin/env python3
"""Reference implementation of Protocol/manifest-v1.md and generator of its test vectors.

Python 3 standard library plus `cryptography` (ECDSA P-256). Independent of the Swift sources: it follows the
spec text. File chunk lists come from ../generate.py (chunking-and-hashing.md), imported as a module.

    python3 -m pip install cryptography      # once, if missing
    python3 Protocol/test-vectors/manifest-v1/generate.py

writes, next to this file:
    keys.json      the three fixed test keys (public SPKI DER, publisher ids, note key IDs, private PEM)
    valid.json     canonical-JSON examples, two manifests, a 3-entry log with its checkpoints, a log with a key
                   rotation, and equivocation proofs, each with the values a verifier must derive
    invalid.json   inputs every verifier must reject, each with the ManifestError code it must report

Signatures are RFC 6979 deterministic ECDSA, so the output is byte-for-byte reproducible (any valid ECDSA
signature verifies the same; determinism only keeps the files stable). Before writing, the script verifies every
valid vector and checks that every invalid one is rejected with its expected code by the verifier below; it exits
non-zero on any mismatch.

THE PRIVATE KEYS BELOW ARE PUBLIC TEST KEYS. Never use them for anything else.
"""

import base64
import copy
import hashlib
import importlib.util
import json
import os
import re
import sys
import unicodedata
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # importing ../generate.py must not leave __pycache__ in the repository

_spec = importlib.util.spec_from_file_location("hashing", os.path.join(HERE, "..", "generate.py"))
hashing = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hashing)

# ---------------------------------------------------------------------------------------------------------------
# Fixed test keys (ECDSA P-256, PKCS#8 PEM). Public test material: the vectors' publisher ids derive from them.

PUBLISHER_PEM = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgS4KzlJ5jWwcR14Kn
wkVnFrJNFTZ62Ai3ervnrqclgqahRANCAAT/HBLhjEdrOTIz/0+e8gPqbtaauGkN
M+pay1LYGrJRiCLYI0t7LApAS+gr3QKz3RQUDCEN3aPourYs4O6wqdF2
-----END PRIVATE KEY-----
"""

OTHER_PEM = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgT2K4kLn5/vY+/gAc
nVJIgVL8X6oFPqk9AJmS5dRmVL2hRANCAAQlXf0rw46jqw29XwlKjylRBUon6lNl
22pUgkohxl/bzd0Fdf5ZbCa8JOAxayW5ZhV8+dOyTJDr8XfR3IEVwbVm
-----END PRIVATE KEY-----
"""

ROTATED_PEM = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQggrjDaiejVAbDCB2W
JPgUShLtYVW+8JHdGFzJenZKLFChRANCAATPGyIhyfu2k58xhIR1KuwRYOM7vv3i
DBkSHMCkuq4EqAzniSo1d64rKFb/qKNX3k2yTEL8Nqba2wz5UXB7dAhk
-----END PRIVATE KEY-----
"""


class Key:
    def __init__(self, pem):
        self.pem = pem
        self.private = serialization.load_pem_private_key(pem.encode(), password=None)
        assert isinstance(self.private.curve, ec.SECP256R1)
        self.public = self.private.public_key()
        self.spki = spki(self.public)
        self.id = publisher_id(self.spki)

    def sign(self, message):
        """ECDSA P-256 with SHA-256 over `message`, DER-encoded (RFC 6979 deterministic nonce)."""
        try:
            algorithm = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
        except TypeError:  # cryptography < 43: randomised signatures, still valid, output then not reproducible
            algorithm = ec.ECDSA(hashes.SHA256())
        return self.private.sign(message, algorithm)


def spki(public_key):
    """SubjectPublicKeyInfo, DER (uncompressed point, 91 bytes for P-256)."""
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def publisher_id(spki_der):
    """Lowercase hex SHA-256 of the SPKI DER."""
    return hashlib.sha256(spki_der).hexdigest()


def load_public(spki_der):
    """A P-256 public key from SPKI DER, or None."""
    try:
        k = serialization.load_der_public_key(spki_der)
    except Exception:
        return None
    if not isinstance(k, ec.EllipticCurvePublicKey) or not isinstance(k.curve, ec.SECP256R1):
        return None
    if spki(k) != spki_der:  # refuse compressed points and other non-canonical encodings
        return None
    return k


def ecdsa_valid(public_key, der_signature, message):
    try:
        public_key.verify(der_signature, message, ec.ECDSA(hashes.SHA256()))
        return True
    except (InvalidSignature, ValueError):
        return False


def sha256(data):
    return hashlib.sha256(data).digest()


def sha256_text(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def b64(data):
    return base64.b64encode(data).decode("ascii")


def b64decode_strict(text):
    """Standard base64 (RFC 4648 section 4) with padding; None for anything else."""
    if not isinstance(text, str) or len(text) % 4 != 0 or not re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", text):
        return None
    try:
        return base64.b64decode(text, validate=True)
    except Exception:
        return None


# ---------------------------------------------------------------------------------------------------------------
# Errors: the ManifestError codes of the spec.


class Reject(Exception):
    def __init__(self, code, message):
        super().__init__("%s: %s" % (code, message))
        self.code = code


CODES = {"malformed", "badSignature", "unknownKey", "badKey", "hostilePath", "limitExceeded", "logInconsistent",
         "equivocation"}

# ---------------------------------------------------------------------------------------------------------------
# Strict JSON (spec: "JSON"). An independent recursive-descent parser, not Python's json module.

MAX_JSON_BYTES = 16 << 20
MAX_DEPTH = 16
MAX_STRING_BYTES = 1 << 20
MAX_CONTAINER = 1 << 20
MAX_INT = (1 << 53) - 1


class JSONReject(Exception):
    def __init__(self, message, limit=False):
        super().__init__(message)
        self.limit = limit  # a size limit (document bytes, items per container) rather than a syntax error


def parse_json(data):
    """Parses bytes strictly. Raises JSONReject."""
    if len(data) > MAX_JSON_BYTES:
        raise JSONReject("document larger than 16 MiB", limit=True)
    p = _Parser(data)
    p.ws()
    v = p.value(0)
    p.ws()
    if p.i != len(data):
        raise JSONReject("bytes after the value")
    return v


class _Parser:
    def __init__(self, data):
        self.d = data
        self.i = 0

    def ws(self):
        while self.i < len(self.d) and self.d[self.i] in b" \t\n\r":
            self.i += 1

    def peek(self):
        if self.i >= len(self.d):
            raise JSONReject("unexpected end")
        return self.d[self.i]

    def value(self, depth):
        c = self.peek()
        if c in b"{[":
            if depth >= MAX_DEPTH:
                raise JSONReject("nesting deeper than 16")
            return self.obj(depth) if c == ord("{") else self.arr(depth)
        if c == ord('"'):
            return self.string()
        for word, val in ((b"true", True), (b"false", False), (b"null", None)):
            if self.d.startswith(word, self.i):
                self.i += len(word)
                return val
        if c == ord("-") or 0x30 <= c <= 0x39:
            return self.number()
        raise JSONReject("unexpected character")

    def obj(self, depth):
        self.i += 1
        out = {}
        self.ws()
        if self.peek() == ord("}"):
            self.i += 1
            return out
        while True:
            self.ws()
            if self.peek() != ord('"'):
                raise JSONReject("expected a member name")
            k = self.string()
            if k in out:
                raise JSONReject("duplicate member name %r" % k)
            self.ws()
            if self.peek() != ord(":"):
                raise JSONReject("expected ':'")
            self.i += 1
            self.ws()
            out[k] = self.value(depth + 1)
            if len(out) > MAX_CONTAINER:
                raise JSONReject("too many members", limit=True)
            self.ws()
            c = self.peek()
            self.i += 1
            if c == ord("}"):
                return out
            if c != ord(","):
                raise JSONReject("expected ',' or '}'")

    def arr(self, depth):
        self.i += 1
        out = []
        self.ws()
        if self.peek() == ord("]"):
            self.i += 1
            return out
        while True:
            self.ws()
            out.append(self.value(depth + 1))
            if len(out) > MAX_CONTAINER:
                raise JSONReject("too many items", limit=True)
            self.ws()
            c = self.peek()
            self.i += 1
            if c == ord("]"):
                return out
            if c != ord(","):
                raise JSONReject("expected ',' or ']'")

    def number(self):
        m = re.compile(rb"-?(0|[1-9][0-9]*)").match(self.d, self.i)
        if not m:
            raise JSONReject("bad number")
        end = m.end()
        if end < len(self.d) and self.d[end] in b".eE0123456789":
            raise JSONReject("only integers without leading zeros are allowed")
        text = m.group(0)
        if text == b"-0":
            raise JSONReject("-0 is not allowed")
        v = int(text)
        if abs(v) > MAX_INT:
            raise JSONReject("integer outside +-(2^53 - 1)")
        self.i = end
        return v

    def string(self):
        self.i += 1
        out = bytearray()
        while True:
            if self.i >= len(self.d):
                raise JSONReject("unterminated string")
            c = self.d[self.i]
            self.i += 1
            if c == ord('"'):
                try:
                    return out.decode("utf-8")  # strict: rejects invalid UTF-8, overlongs and encoded surrogates
                except UnicodeDecodeError:
                    raise JSONReject("invalid UTF-8")
            if c < 0x20:
                raise JSONReject("control character in a string")
            if c == ord("\\"):
                e = self.peek()
                self.i += 1
                simple = {ord('"'): 0x22, ord("\\"): 0x5C, ord("/"): 0x2F, ord("b"): 8, ord("f"): 12, ord("n"): 10,
                          ord("r"): 13, ord("t"): 9}
                if e in simple:
                    out.append(simple[e])
                elif e == ord("u"):
                    u = self.hex4()
                    if 0xD800 <= u < 0xDC00:
                        if not self.d.startswith(b"\\u", self.i):
                            raise JSONReject("unpaired surrogate")
                        self.i += 2
                        lo = self.hex4()
                        if not 0xDC00 <= lo < 0xE000:
                            raise JSONReject("unpaired surrogate")
                        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
                    elif 0xDC00 <= u < 0xE000:
                        raise JSONReject("unpaired surrogate")
                    out += chr(u).encode("utf-8")
                else:
                    raise JSONReject("invalid escape")
            else:
                out.append(c)
            if len(out) > MAX_STRING_BYTES:
                raise JSONReject("string longer than 1 MiB")

    def hex4(self):
        h = self.d[self.i:self.i + 4]
        if len(h) != 4 or not re.fullmatch(rb"[0-9a-fA-F]{4}", h):
            raise JSONReject("bad \\u escape")
        self.i += 4
        return int(h, 16)


def canonical(value):
    """RFC 8785 (JCS) for the values Alexandria allows: null, booleans, integers within +-(2^53 - 1), strings,
    arrays, objects.

    Why this equals RFC 8785 here:
    - Integers: JCS writes a number with the ECMAScript Number-to-String algorithm. For an integer of magnitude at
      most 2^53 - 1 that is its plain decimal digits with a leading '-' if negative, which is what str(int) gives.
      Floats never occur (the parser rejects them, and this function refuses them).
    - Strings: JCS escapes exactly '"', '\\' and U+0000..U+001F, using \\b \\t \\n \\f \\r where they exist and
      \\u00xx (lowercase hex) otherwise, and writes every other code point as literal UTF-8. json.dumps with
      ensure_ascii=False does exactly that (its escape table is the same and its hex is lowercase); it does not
      escape '/', U+007F or U+2028/U+2029, and neither does JCS.
    - Objects: JCS sorts members by the UTF-16 code units of their names. Sorting by the UTF-16BE encoding of the
      name is the same order. (For ASCII names this is also the order of json.dumps(sort_keys=True), which sorts by
      code point; the two differ only for names mixing U+E000..U+FFFF with characters above U+FFFF, which
      attestation objects may contain, so this function sorts by UTF-16 explicitly.)
    - No whitespace anywhere: separators "," and ":".
    """
    return _canon(value).encode("utf-8")


def _canon(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        if abs(v) > MAX_INT:
            raise ValueError("integer out of range")
        return str(v)
    if isinstance(v, str):
        v.encode("utf-8")  # raises on lone surrogates
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ",".join(_canon(x) for x in v) + "]"
    if isinstance(v, dict):
        items = sorted(v.items(), key=lambda kv: kv[0].encode("utf-16-be"))
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + _canon(x) for k, x in items) + "}"
    raise TypeError("not an Alexandria JSON value: %r" % (v,))


def parse_canonical_payload(payload, what, limits_exceed=False):
    """Strict parse plus the canonical check. With `limits_exceed` (manifest payloads), the document-size and
    container-size limits are reported as limitExceeded rather than malformed."""
    try:
        v = parse_json(payload)
    except JSONReject as e:
        raise Reject("limitExceeded" if limits_exceed and e.limit else "malformed",
                     "%s is not valid JSON: %s" % (what, e))
    if canonical(v) != payload:
        raise Reject("malformed", "%s is not in RFC 8785 canonical form" % what)
    return v


# ---------------------------------------------------------------------------------------------------------------
# DSSE


MAX_SIGNATURES = 16
MAX_SIG_BYTES = 256


def pae(payload_type, payload):
    t = payload_type.encode("utf-8")
    return b"DSSEv1 " + str(len(t)).encode() + b" " + t + b" " + str(len(payload)).encode() + b" " + payload


def sign_envelope(payload_type, payload, keys, pae_override=None):
    message = pae_override if pae_override is not None else pae(payload_type, payload)
    return {"payload": b64(payload), "payloadType": payload_type,
            "signatures": [{"keyid": k.id, "sig": b64(k.sign(message))} for k in keys]}


def envelope_text(env):
    return canonical(env).decode("utf-8")


def parse_envelope(data):
    """-> (payloadType, payload bytes, [(keyid, sig bytes)]). Raises Reject."""
    try:
        v = parse_json(data)
    except JSONReject as e:
        raise Reject("malformed", "the envelope is not valid JSON: %s" % e)
    if not isinstance(v, dict) or set(v) != {"payload", "payloadType", "signatures"}:
        raise Reject("malformed", "the envelope must have exactly payload, payloadType, signatures")
    t, p, sigs = v["payloadType"], v["payload"], v["signatures"]
    payload = b64decode_strict(p)
    if not isinstance(t, str) or payload is None or not isinstance(sigs, list):
        raise Reject("malformed", "wrong types or bad base64")
    if not 1 <= len(sigs) <= MAX_SIGNATURES:
        raise Reject("limitExceeded", "1 to 16 signatures")
    out = []
    for s in sigs:
        if not isinstance(s, dict) or set(s) != {"keyid", "sig"} or not isinstance(s["keyid"], str):
            raise Reject("malformed", "a signature entry is malformed")
        sig = b64decode_strict(s["sig"])
        if sig is None or len(sig) > MAX_SIG_BYTES:
            raise Reject("malformed", "a signature entry is malformed")
        out.append((s["keyid"], sig))
    return t, payload, out


def is_signed_by(envelope, public_key):
    t, payload, sigs = envelope
    kid = publisher_id(spki(public_key))
    message = pae(t, payload)
    return any(k == kid and ecdsa_valid(public_key, s, message) for k, s in sigs)


# ---------------------------------------------------------------------------------------------------------------
# Names, times, paths


def valid_name(s):
    return 1 <= len(s.encode()) <= 128 and re.fullmatch(r"[a-z0-9][a-z0-9._-]*", s) is not None


def valid_version(s):
    return (1 <= len(s.encode()) <= 64 and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", s) is not None
            and s != "latest")


def check_release_name(name, version):
    if not valid_name(name):
        raise Reject("malformed", "bad name %r" % name)
    if not valid_version(version):
        raise Reject("malformed", "bad version %r" % version)


def valid_time(s):
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z", s):
        return False
    try:
        datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ")
        return True
    except ValueError:
        return False


def valid_date(s):
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", s):
        return False
    try:
        datetime.strptime(s, "%Y-%m-%d")
        return True
    except ValueError:
        return False


MAX_PATH_BYTES = 1024
MAX_COMPONENT_BYTES = 255


def validate_path(path):
    def hostile(why):
        return Reject("hostilePath", "the path %r %s" % (path, why))

    if path == "":
        raise hostile("is empty")
    if len(path.encode("utf-8")) > MAX_PATH_BYTES:
        raise hostile("is too long")
    if path.startswith("/"):
        raise hostile("is absolute")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        raise hostile("has a control character")
    if "\\" in path:
        raise hostile("has a backslash")
    if not unicodedata.is_normalized("NFC", path):
        raise hostile("is not NFC")
    # Components are split at the byte 0x2F and nothing else (not at grapheme-cluster boundaries).
    for comp in path.split("/"):
        if comp == "":
            raise hostile("has an empty component")
        if comp in (".", ".."):
            raise hostile("has a dot component")
        if len(comp.encode("utf-8")) > MAX_COMPONENT_BYTES:
            raise hostile("has a long component")


def validate_paths(paths):
    seen, folded = set(), set()
    for p in paths:
        validate_path(p)
        if p in seen:
            raise Reject("hostilePath", "%r appears twice" % p)
        seen.add(p)
        if p.lower() in folded:
            raise Reject("hostilePath", "%r differs from another only in case" % p)
        folded.add(p.lower())
    for p in paths:
        parts = p.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in seen:
                raise Reject("hostilePath", "%r is both a file and a folder" % "/".join(parts[:i]))


# ---------------------------------------------------------------------------------------------------------------
# Manifests


MANIFEST_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://alexandria.dev/release/v1"
MAX_FILES = 65536
MAX_LINEAGE = 64
MAX_TEXT_BYTES = 4096
MAX_FILE_BYTES = 1 << 44
MAX_CHUNKS_PER_FILE = 1 << 24
MAX_LOG_INDEX = (1 << 40) - 1
RELATIONS = {"finetune", "quantization", "adapter", "merge", "distillation", "repackage"}
HEX64 = re.compile(r"[0-9a-f]{64}")


def statement(m):
    """The in-toto Statement of a manifest given as a dict of its predicate fields (files sorted here)."""
    m = copy.deepcopy(m)
    files = sorted(m["files"], key=lambda f: f["path"])  # code point order = UTF-8 byte order
    predicate = {
        "publisher": m["publisher"], "name": m["name"], "version": m["version"], "logIndex": m["logIndex"],
        "created": m["created"], "files": files, "lineage": m["lineage"],
    }
    for k in ("license", "modelCard"):
        if m.get(k) is not None:
            predicate[k] = m[k]
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": f["path"], "digest": {"sha256": f["sha256"]}} for f in files],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }


def _nonneg_int(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def parse_manifest(payload):
    """Checks a manifest payload. Returns the predicate. Raises Reject."""
    s = parse_canonical_payload(payload, "the manifest payload", limits_exceed=True)
    if not isinstance(s, dict) or s.get("_type") != STATEMENT_TYPE or s.get("predicateType") != PREDICATE_TYPE:
        raise Reject("malformed", "not an Alexandria release statement")
    if set(s) != {"_type", "subject", "predicateType", "predicate"}:
        raise Reject("malformed", "unexpected statement fields")
    p = s["predicate"]
    allowed = {"publisher", "name", "version", "logIndex", "created", "files", "lineage", "license", "modelCard"}
    required = allowed - {"license", "modelCard"}
    if not isinstance(p, dict) or not set(p) <= allowed or not required <= set(p):
        raise Reject("malformed", "predicate fields")
    files, lineage = p["files"], p["lineage"]
    if not isinstance(files, list) or not isinstance(lineage, list):
        raise Reject("malformed", "files and lineage are arrays")
    # Counts before entries.
    if len(files) > MAX_FILES:
        raise Reject("limitExceeded", "more than 65536 files")
    if len(lineage) > MAX_LINEAGE:
        raise Reject("limitExceeded", "more than 64 lineage entries")
    if not isinstance(p["publisher"], str) or not HEX64.fullmatch(p["publisher"]):
        raise Reject("malformed", "publisher")
    for k in ("name", "version", "created"):
        if not isinstance(p[k], str):
            raise Reject("malformed", k)
    for k in ("license", "modelCard"):
        if k in p and not isinstance(p[k], str):
            raise Reject("malformed", "%s is not a string" % k)
    if not _nonneg_int(p["logIndex"]) or p["logIndex"] > MAX_LOG_INDEX:
        raise Reject("malformed", "logIndex")
    for f in files:
        if not isinstance(f, dict) or set(f) != {"path", "size", "sha256", "merkleRoot", "chunks", "chunker"}:
            raise Reject("malformed", "file entry fields")
        if not isinstance(f["path"], str) or not _nonneg_int(f["size"]) or not _nonneg_int(f["chunks"]):
            raise Reject("malformed", "file entry types")
        for k in ("sha256", "merkleRoot"):
            if not isinstance(f[k], str) or not HEX64.fullmatch(f[k]):
                raise Reject("malformed", "%s is not 64 lowercase hex digits" % k)
        if not isinstance(f["chunker"], str) or hashing.parse_chunker(f["chunker"]) is None:
            raise Reject("malformed", "unknown chunker")
    for entry in lineage:
        if (not isinstance(entry, dict) or set(entry) != {"manifest", "relation"}
                or not isinstance(entry["manifest"], str) or not re.fullmatch(r"sha256:[0-9a-f]{64}", entry["manifest"])
                or entry["relation"] not in RELATIONS):
            raise Reject("malformed", "lineage entry")
    check_release_name(p["name"], p["version"])
    validate_paths([f["path"] for f in files])
    for f in files:
        if f["size"] > MAX_FILE_BYTES:
            raise Reject("limitExceeded", "file size over 2^44")
        mx = hashing.parse_chunker(f["chunker"]).max
        min_chunks = (f["size"] + mx - 1) // mx
        if not (min_chunks <= f["chunks"] <= MAX_CHUNKS_PER_FILE) or (f["size"] == 0 and f["chunks"] != 0):
            raise Reject("malformed", "impossible chunk count")
    if "modelCard" in p and p["modelCard"] not in [f["path"] for f in files]:
        raise Reject("malformed", "modelCard is not a file")
    for k in ("license", "created"):
        if k in p and len(p[k].encode("utf-8")) > MAX_TEXT_BYTES:
            raise Reject("limitExceeded", "%s longer than 4096 bytes" % k)
    if not valid_time(p["created"]):
        raise Reject("malformed", "created")
    if [f["path"] for f in files] != sorted(f["path"] for f in files):
        raise Reject("malformed", "files are not sorted by path")
    subjects = s["subject"]
    if not isinstance(subjects, list) or len(subjects) != len(files):
        raise Reject("malformed", "subjects")
    for sub, f in zip(subjects, files):
        if sub != {"name": f["path"], "digest": {"sha256": f["sha256"]}}:
            raise Reject("malformed", "subject does not match its file")
    return p


def verify_manifest(data, public_key):
    """Verifies a manifest envelope (JSON bytes) against the key expected to have signed it. -> (predicate, id)."""
    return verify_manifest_envelope(parse_envelope(data), public_key)


def verify_manifest_envelope(env, public_key):
    """The same from step 2 on, for an envelope already parsed or built in memory: (type, payload, signatures)."""
    if env[0] != MANIFEST_PAYLOAD_TYPE:
        raise Reject("malformed", "payload type")
    if not is_signed_by(env, public_key):
        raise Reject("badSignature", "no valid signature by the key")
    p = parse_manifest(env[1])
    if p["publisher"] != publisher_id(spki(public_key)):
        raise Reject("unknownKey", "the statement names another publisher than the signer")
    return p, sha256_text(env[1])


# ---------------------------------------------------------------------------------------------------------------
# Log entries and the publisher log


ENTRY_PAYLOAD_TYPE = "application/vnd.alexandria.log-entry+json"
ENTRY_TYPE = "https://alexandria.dev/log-entry/v1"
MAX_ATTESTATION_BYTES = 64 << 10
KINDS = {
    # kind: (required fields beyond the common five, optional fields)
    "publish": ({"release", "manifest"}, set()),
    "yank": ({"release", "manifest", "reason"}, set()),
    "unyank": ({"release", "manifest"}, {"reason"}),
    "deprecate": ({"release", "manifest", "reason"}, {"sunset", "successor"}),
    "advisory": ({"release", "manifest", "reason", "severity"}, set()),
    "attest": ({"release", "manifest"}, {"reason", "attestation"}),
    "rotate-key": ({"newKey"}, {"reason"}),
}
COMMON = {"_type", "publisher", "index", "kind", "time"}
SEVERITIES = {"low", "medium", "high", "critical"}


def entry(**fields):
    e = {"_type": ENTRY_TYPE}
    e.update({k: v for k, v in fields.items() if v is not None})
    return e


def parse_entry(payload):
    e = parse_canonical_payload(payload, "the log entry")
    if not isinstance(e, dict) or e.get("_type") != ENTRY_TYPE or e.get("kind") not in KINDS:
        raise Reject("malformed", "not an Alexandria log entry")
    required, optional = KINDS[e["kind"]]
    if not (COMMON | required) <= set(e) or not set(e) <= COMMON | required | optional:
        raise Reject("malformed", "fields for kind %s" % e["kind"])
    if not isinstance(e["publisher"], str) or not HEX64.fullmatch(e["publisher"]):
        raise Reject("malformed", "publisher")
    if not _nonneg_int(e["index"]) or e["index"] > MAX_LOG_INDEX:
        raise Reject("malformed", "index")
    if not isinstance(e["time"], str) or not valid_time(e["time"]):
        raise Reject("malformed", "time")
    for k in ("release", "manifest", "reason", "sunset", "successor", "severity", "newKey"):
        if k in e and not isinstance(e[k], str):
            raise Reject("malformed", "%s is not a string" % k)
    if "release" in e:
        name, at, version = e["release"].partition("@")
        if not at:
            raise Reject("malformed", "release is name@version")
        check_release_name(name, version)
    if "manifest" in e and not re.fullmatch(r"sha256:[0-9a-f]{64}", e["manifest"]):
        raise Reject("malformed", "manifest id")
    if "reason" in e and len(e["reason"].encode("utf-8")) > MAX_TEXT_BYTES:
        raise Reject("limitExceeded", "reason longer than 4096 bytes")
    if "successor" in e and len(e["successor"].encode("utf-8")) > MAX_TEXT_BYTES:
        raise Reject("limitExceeded", "successor longer than 4096 bytes")
    if "reason" in required and e["reason"] == "":
        raise Reject("malformed", "empty reason")
    if "severity" in e and e["severity"] not in SEVERITIES:
        raise Reject("malformed", "severity")
    if "sunset" in e and not valid_date(e["sunset"]):
        raise Reject("malformed", "sunset")
    if "newKey" in e:
        der = b64decode_strict(e["newKey"])
        if der is None or load_public(der) is None:
            raise Reject("malformed", "newKey is not a P-256 SPKI")
    if "attestation" in e:
        if not isinstance(e["attestation"], dict) or len(canonical(e["attestation"])) > MAX_ATTESTATION_BYTES:
            raise Reject("malformed", "attestation")
    return e


class Log:
    """A publisher log replayed from index 0."""

    def __init__(self, original_public_key):
        self.publisher = publisher_id(spki(original_public_key))
        self.keys = [(0, original_public_key)]  # (first index it signs, key)
        self.entries = []  # payload bytes
        self.releases = {}  # name@version -> dict(manifest, publishIndex, yanked)
        self.publish_order = []

    def current_key(self):
        return self.keys[-1][1]

    def key_for_size(self, size):
        """The key in force after the first `size` entries (signs entry `size` and checkpoints of that size)."""
        return [k for start, k in self.keys if start <= size][-1]

    def append(self, data):
        env = parse_envelope(data)
        if env[0] != ENTRY_PAYLOAD_TYPE:
            raise Reject("malformed", "payload type")
        if not is_signed_by(env, self.current_key()):
            raise Reject("badSignature", "not signed by the key in force")
        e = parse_entry(env[1])
        if e["kind"] == "rotate-key" and not is_signed_by(env, load_public(b64decode_strict(e["newKey"]))):
            raise Reject("badSignature", "a rotation must be signed by the new key too")
        if e["publisher"] != self.publisher:
            raise Reject("logInconsistent", "another publisher's entry")
        if e["index"] != len(self.entries):
            raise Reject("logInconsistent", "index %d, expected %d" % (e["index"], len(self.entries)))
        kind = e["kind"]
        if kind == "publish":
            if e["release"] in self.releases:
                raise Reject("equivocation", "%s is already bound" % e["release"])
            self.releases[e["release"]] = {"manifest": e["manifest"], "publishIndex": e["index"], "yanked": None}
            self.publish_order.append(e["release"])
        elif kind == "rotate-key":
            self.keys.append((e["index"] + 1, load_public(b64decode_strict(e["newKey"]))))
        else:
            st = self.releases.get(e["release"])
            if st is None:
                raise Reject("logInconsistent", "about a release the log never published")
            if st["manifest"] != e["manifest"]:
                raise Reject("logInconsistent", "names another manifest")
            if kind == "yank":
                st["yanked"] = {"index": e["index"], "reason": e["reason"]}
            elif kind == "unyank":
                st["yanked"] = None
        self.entries.append(env[1])

    def leaves(self):
        return [hashing.leaf_hash(p) for p in self.entries]

    def root(self, size=None):
        return hashing.mth(self.leaves()[: len(self.entries) if size is None else size])

    def latest(self, name):
        skipped = []
        for r in reversed(self.publish_order):
            if r.split("@", 1)[0] == name:
                if self.releases[r]["yanked"] is None:
                    return r, skipped
                skipped.append(r)
        return None, skipped


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints (C2SP tlog-checkpoint in a C2SP signed note, signature type 0x02)

ORIGIN_PREFIX = "alexandria.dev/publisher/"
MAX_NOTE_BYTES = 16 << 10
MAX_NOTE_SIGNATURES = 64
EM_DASH = "\u2014"


def note_key_id(public_key):
    return sha256(spki(public_key))[:4]


def checkpoint_text(publisher, size, root):
    return "%s%s\n%d\n%s\n" % (ORIGIN_PREFIX, publisher, size, b64(root))


def sign_note(text, key, name=None, corrupt=False):
    sig = key.sign(text.encode("utf-8"))
    if corrupt:
        sig = bytearray(sig)
        sig[-1] ^= 0x01
        sig = bytes(sig)
    origin = name if name is not None else text.split("\n", 1)[0]
    return text + "\n" + "%s %s %s\n" % (EM_DASH, origin, b64(note_key_id(key.public) + sig))


def parse_note(note):
    """-> (text, [(name, keyID bytes, signature bytes)])."""
    data = note.encode("utf-8")
    if len(data) > MAX_NOTE_BYTES:
        raise Reject("limitExceeded", "note larger than 16 KiB")
    if any(b < 0x20 and b != 0x0A for b in data):
        raise Reject("malformed", "control character in a note")
    split = note.rfind("\n\n")
    if split < 0:
        raise Reject("malformed", "no blank line")
    text, block = note[: split + 1], note[split + 2:]
    if not block.endswith("\n"):
        raise Reject("malformed", "a note ends in a newline")
    lines = []
    for raw in block[:-1].split("\n"):
        parts = raw.split(" ")
        if len(parts) != 3 or parts[0] != EM_DASH or parts[1] == "" or "+" in parts[1]:
            raise Reject("malformed", "signature line")
        blob = b64decode_strict(parts[2])
        if blob is None or len(blob) <= 4:
            raise Reject("malformed", "signature line")
        lines.append((parts[1], blob[:4], blob[4:]))
    if not 1 <= len(lines) <= MAX_NOTE_SIGNATURES:
        raise Reject("limitExceeded", "1 to 64 signatures")
    return text, lines


def parse_checkpoint_text(text):
    lines = text.split("\n")
    if len(lines) != 4 or lines[3] != "" or lines[0] == "":
        raise Reject("malformed", "a checkpoint is exactly origin, size, root")
    if not re.fullmatch(r"0|[1-9][0-9]*", lines[1]) or int(lines[1]) > MAX_LOG_INDEX + 1:
        raise Reject("malformed", "size")
    root = b64decode_strict(lines[2])
    if root is None or len(root) != 32:
        raise Reject("malformed", "root")
    return lines[0], int(lines[1]), root


def verify_checkpoint_signature(note, public_key, publisher):
    """Signature-level checks of a checkpoint note: -> (size, root)."""
    text, lines = parse_note(note)
    origin, size, root = parse_checkpoint_text(text)
    if origin != ORIGIN_PREFIX + publisher:
        raise Reject("unknownKey", "the origin is not this publisher's")
    mine = [ln for ln in lines if ln[0] == origin and ln[1] == note_key_id(public_key)]
    if not mine:
        raise Reject("unknownKey", "no signature line of the expected key")
    for ln in mine:
        if not ecdsa_valid(public_key, ln[2], text.encode("utf-8")):
            raise Reject("badSignature", "checkpoint signature")
    return size, root


class CheckpointVerifier:
    """Holds a replayed log and the checkpoints accepted so far (size -> root)."""

    def __init__(self, log):
        self.log = log
        self.accepted = {}

    def offer(self, note):
        """-> (size, root) when accepted, None when pending (beyond the entries held). Raises Reject."""
        text, _ = parse_note(note)
        _, size, _ = parse_checkpoint_text(text)
        # The origin names the publisher; the checkpoint is signed by the key in force after `size` entries.
        key = self.log.key_for_size(min(size, len(self.log.entries)))
        size, root = verify_checkpoint_signature(note, key, self.log.publisher)
        if size in self.accepted:
            if self.accepted[size] == root:
                return size, root  # a duplicate
            raise Reject("equivocation", "two checkpoints of size %d with different roots" % size)
        if self.accepted and size < max(self.accepted):
            raise Reject("logInconsistent", "rollback from %d to %d" % (max(self.accepted), size))
        if size > len(self.log.entries):
            return None  # signature verified only; the verifier must catch up before trusting it
        if self.log.root(size) != root:
            raise Reject("logInconsistent", "root does not match the log")
        self.accepted[size] = root
        return size, root


# ---------------------------------------------------------------------------------------------------------------
# Equivocation proofs


def make_proof(kind, public_key, first, second):
    return canonical({"kind": kind, "publisherKey": b64(spki(public_key)), "first": b64(first),
                      "second": b64(second)}).decode()


def proof_id(kind, first, second):
    a, b = sorted([first, second])
    return sha256_text(canonical({"kind": kind, "a": b64(a), "b": b64(b)}))


def verify_proof(data):
    """-> finding dict. Raises Reject."""
    try:
        v = parse_json(data)
    except JSONReject as e:
        raise Reject("malformed", "proof JSON: %s" % e)
    if not isinstance(v, dict) or set(v) != {"kind", "publisherKey", "first", "second"}:
        raise Reject("malformed", "proof fields")
    kind = v["kind"]
    der, first, second = (b64decode_strict(v[k]) for k in ("publisherKey", "first", "second"))
    if kind not in ("manifests", "entries", "checkpoints") or None in (der, first, second):
        raise Reject("malformed", "proof fields")
    key = load_public(der)
    if key is None:
        raise Reject("malformed", "not a P-256 key")
    pid = publisher_id(der)
    if kind == "manifests":
        a, ida = verify_manifest(first, key)
        b, idb = verify_manifest(second, key)
        if (a["name"], a["version"]) != (b["name"], b["version"]) or ida == idb:
            raise Reject("malformed", "no conflict")
        return {"publisher": pid, "subject": "%s/%s@%s" % (pid, a["name"], a["version"]), "firstID": ida,
                "secondID": idb}
    if kind == "entries":
        ea, eb = parse_envelope(first), parse_envelope(second)
        out = []
        for env in (ea, eb):
            if env[0] != ENTRY_PAYLOAD_TYPE:
                raise Reject("malformed", "payload type")
            if not is_signed_by(env, key):
                raise Reject("badSignature", "entry signature")
            e = parse_entry(env[1])
            if e["publisher"] != pid:
                raise Reject("unknownKey", "the entry names another publisher than the key's")
            out.append(e)
        if out[0]["index"] != out[1]["index"] or ea[1] == eb[1]:
            raise Reject("malformed", "no conflict")
        return {"publisher": pid, "subject": "log entry %d" % out[0]["index"], "firstID": sha256_text(ea[1]),
                "secondID": sha256_text(eb[1])}
    try:
        na, nb = first.decode("utf-8"), second.decode("utf-8")
    except UnicodeDecodeError:
        raise Reject("malformed", "note is not UTF-8")
    sa, ra = verify_checkpoint_signature(na, key, pid)
    sb, rb = verify_checkpoint_signature(nb, key, pid)
    if sa != sb or ra == rb:
        raise Reject("malformed", "no conflict")
    return {"publisher": pid, "subject": "checkpoint of size %d" % sa, "firstID": "sha256:" + ra.hex(),
            "secondID": "sha256:" + rb.hex()}


# ---------------------------------------------------------------------------------------------------------------
# Building the vectors


def check(condition, message):
    if not condition:
        sys.stderr.write("self-check failed: %s\n" % message)
        sys.exit(1)


def file_entry(path, data, average_bits):
    p = hashing.Params(average_bits)
    chunks = hashing.chunk_file(data, p)
    return {"path": path, "size": len(data), "sha256": sha256(data).hex(),
            "merkleRoot": hashing.mth(hashing.file_leaves(chunks)).hex(), "chunks": len(chunks),
            "chunker": p.text()}


def expect_reject(code, fn, *args):
    try:
        fn(*args)
    except Reject as e:
        return e.code == code, e
    return False, None


class Builder:
    def __init__(self):
        self.pub = Key(PUBLISHER_PEM)
        self.other = Key(OTHER_PEM)
        self.rotated = Key(ROTATED_PEM)
        self.keys = {"publisher": self.pub, "other": self.other, "rotated": self.rotated}
        self.invalid = []

    # -- helpers

    def manifest_env(self, m, key=None, payload=None, payload_type=MANIFEST_PAYLOAD_TYPE, keys=None):
        payload = canonical(statement(m)) if payload is None else payload
        return envelope_text(sign_envelope(payload_type, payload, keys or [key or self.pub]))

    def entry_env(self, e, key=None, keys=None, payload=None, payload_type=ENTRY_PAYLOAD_TYPE):
        payload = canonical(e) if payload is None else payload
        return envelope_text(sign_envelope(payload_type, payload, keys or [key or self.pub]))

    def add(self, case):
        check(case["expectedCode"] in CODES, "code %s" % case["expectedCode"])
        check(case["name"] not in [c["name"] for c in self.invalid], "duplicate case name %s" % case["name"])
        self.invalid.append(case)

    def bad_manifest(self, name, m=None, expected="malformed", payload=None, key=None, verify_with="publisher",
                     payload_type=MANIFEST_PAYLOAD_TYPE, note=None):
        """A manifest signed validly (unless `key` says otherwise) that must be rejected."""
        env = self.manifest_env(m, key=key, payload=payload, payload_type=payload_type)
        case = {"name": name, "kind": "manifest", "input": env, "verifyWith": verify_with, "expectedCode": expected}
        if note:
            case["note"] = note
        self.add(case)

    # -- valid material

    def build_valid(self):
        P = self.pub.id
        files_10 = [
            file_entry("README.md", b"# demo-model 1.0\n", 18),
            file_entry("model.safetensors", hashing.test_data("sha256-counter", 300000, 100), 14),
        ]
        m10 = {"publisher": P, "name": "demo-model", "version": "1.0", "logIndex": 0,
               "created": "2026-01-15T12:00:00Z", "files": files_10, "lineage": []}
        self.m10 = m10
        self.env10 = self.manifest_env(m10)
        self.id10 = sha256_text(canonical(statement(m10)))

        readme = b"# demo-model 1.1\n\nA test release for Alexandria's manifest-v1 vectors.\n"
        files_11 = [
            file_entry("tokenizer/vocab.txt", b"hello\nworld\n", 18),
            file_entry("README.md", readme, 18),
            file_entry("\u00e9.txt", "caf\u00e9\n".encode(), 18),
            file_entry("config.json", b'{"hidden_size": 64}\n', 18),
            file_entry("empty.txt", b"", 18),
            file_entry("model.safetensors", hashing.test_data("sha256-counter", 1000000, 101), 18),
            file_entry("tokenizer.json", b'{"version": "1.0"}\n', 18),
        ]
        m11 = {"publisher": P, "name": "demo-model", "version": "1.1", "logIndex": 1,
               "created": "2026-02-01T09:30:00Z", "files": files_11,
               "lineage": [{"manifest": self.id10, "relation": "finetune"}],
               "license": "Apache-2.0", "modelCard": "README.md"}
        self.m11 = m11
        st11 = statement(m11)
        self.payload11 = canonical(st11)
        self.env11 = self.manifest_env(m11)
        self.id11 = sha256_text(self.payload11)

        # The 3-entry log.
        e0 = entry(publisher=P, index=0, kind="publish", time="2026-01-15T12:00:00Z", release="demo-model@1.0",
                   manifest=self.id10)
        e1 = entry(publisher=P, index=1, kind="publish", time="2026-02-01T09:30:00Z", release="demo-model@1.1",
                   manifest=self.id11)
        e2 = entry(publisher=P, index=2, kind="yank", time="2026-02-03T18:45:10Z", release="demo-model@1.1",
                   manifest=self.id11, reason="tokenizer regression; use 1.0")
        self.entries = [e0, e1, e2]
        self.log_envs = [self.entry_env(e) for e in self.entries]
        log = Log(self.pub.public)
        for env in self.log_envs:
            log.append(env.encode())
        self.log = log
        leaves = log.leaves()
        check(hashing.mth(leaves) == hashing.mth_by_levels(leaves), "log root by two constructions")
        cp3_text = checkpoint_text(P, 3, log.root(3))
        cp2_text = checkpoint_text(P, 2, log.root(2))
        self.cp3 = sign_note(cp3_text, self.pub)
        self.cp2 = sign_note(cp2_text, self.pub)
        latest, skipped = log.latest("demo-model")

        # Verify everything as a verifier would.
        p, mid = verify_manifest(self.env11.encode(), self.pub.public)
        check(mid == self.id11 and p["files"] == st11["predicate"]["files"], "valid manifest 1.1")
        p, mid = verify_manifest(self.env10.encode(), self.pub.public)
        check(mid == self.id10, "valid manifest 1.0")
        v = CheckpointVerifier(log)
        check(v.offer(self.cp3) == (3, log.root(3)), "checkpoint 3")
        check(latest == "demo-model@1.0" and skipped == ["demo-model@1.1"], "latest")

        # Extra signature by an unrelated key: still valid.
        two_sigs = envelope_text(sign_envelope(MANIFEST_PAYLOAD_TYPE, self.payload11, [self.other, self.pub]))
        check(verify_manifest(two_sigs.encode(), self.pub.public)[1] == self.id11, "two signatures")
        # A non-canonical envelope (whitespace, other member order) around the same payload: still valid.
        env = json.loads(self.env11)
        loose = json.dumps({"signatures": env["signatures"], "payloadType": env["payloadType"],
                            "payload": env["payload"]}, indent=1)
        check(verify_manifest(loose.encode(), self.pub.public)[1] == self.id11, "loose envelope")
        self.extra_envelopes = [
            {"name": "additional signature by another key", "input": two_sigs, "verifyWith": "publisher",
             "expectedID": self.id11},
            {"name": "envelope JSON not canonical (whitespace, member order)", "input": loose,
             "verifyWith": "publisher", "expectedID": self.id11},
        ]

        # A log with a key rotation: publish 1.0 (original key), rotate-key (both keys), publish 2.0 (new key).
        files_20 = [file_entry("model.safetensors", hashing.test_data("sha256-counter", 4096, 102), 18)]
        m20 = {"publisher": P, "name": "demo-model", "version": "2.0", "logIndex": 2,
               "created": "2026-03-01T00:00:00Z", "files": files_20,
               "lineage": [{"manifest": self.id10, "relation": "quantization"}], "license": "MIT"}
        env20 = self.manifest_env(m20, key=self.rotated)
        self.env20 = env20
        id20 = sha256_text(canonical(statement(m20)))
        r1 = entry(publisher=P, index=1, kind="rotate-key", time="2026-02-20T00:00:00Z",
                   newKey=b64(self.rotated.spki), reason="moving the key to a hardware token")
        r2 = entry(publisher=P, index=2, kind="publish", time="2026-03-01T00:00:00Z", release="demo-model@2.0",
                   manifest=id20)
        rot_envs = [self.log_envs[0], self.entry_env(r1, keys=[self.pub, self.rotated]),
                    self.entry_env(r2, key=self.rotated)]
        rlog = Log(self.pub.public)
        for env in rot_envs:
            rlog.append(env.encode())
        check(rlog.current_key() is not None and spki(rlog.current_key()) == self.rotated.spki, "rotation")
        # The manifest published after the rotation verifies with the key in force at its logIndex.
        p, mid = verify_manifest_in_log(env20.encode(), rlog)
        check(mid == id20, "rotated manifest")
        rcp = sign_note(checkpoint_text(P, 3, rlog.root(3)), self.rotated)
        check(CheckpointVerifier(rlog).offer(rcp)[0] == 3, "rotated checkpoint")
        self.rlog, self.rot_envs, self.rcp = rlog, rot_envs, rcp

        # Equivocation proofs, one of each kind.
        m11b = dict(m11, created="2026-02-01T09:31:00Z")  # another 1.1: same name@version, other bytes
        env11b = self.manifest_env(m11b)
        self.env11b, self.id11b = env11b, sha256_text(canonical(statement(m11b)))
        e2b = entry(publisher=P, index=2, kind="yank", time="2026-02-03T18:45:10Z", release="demo-model@1.1",
                    manifest=self.id11, reason="a different reason")
        self.env_e2b = self.entry_env(e2b)
        cp3b = sign_note(checkpoint_text(P, 3, sha256(b"a forked log")), self.pub)
        self.cp3b = cp3b
        proofs = [
            ("manifests", self.env11.encode(), env11b.encode()),
            ("entries", self.log_envs[2].encode(), self.env_e2b.encode()),
            ("checkpoints", self.cp3.encode(), cp3b.encode()),
        ]
        self.proofs = []
        for kind, a, b in proofs:
            text = make_proof(kind, self.pub.public, a, b)
            finding = verify_proof(text.encode())
            self.proofs.append({"kind": kind, "proof": text, "id": proof_id(kind, a, b), "finding": finding})

        canonical_examples = [
            # (input JSON text, note)
            ('{ "b" : 1, "a" : [ true, false, null ], "A": "x" }', "members sorted, whitespace dropped"),
            ('{"s":"\\u0041\\u00e9\\/\\b\\f\\n\\r\\t\\u0001\\u001f\\u007f\\"\\\\"}',
             "escapes: only \\\" \\\\ \\b \\f \\n \\r \\t and \\u00xx (lowercase) for other controls remain"),
            ('{"\\ud83d\\ude00":1,"\\uffff":2,"z":3,"\\u00e9":4}', "keys sorted by UTF-16 code units"),
            ('[9007199254740991,-9007199254740991,0,-1]', "largest integers allowed"),
            ('"\u00e9\u2028\U0001F600"', "non-ASCII written as UTF-8, U+2028 not escaped"),
            ('[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]', "depth 16 is allowed"),
            ('{"\u00e9":1,"e\u0301":2}', "canonically equivalent but different names are different members"),
        ]
        self.canonical_examples = []
        for text, note in canonical_examples:
            value = parse_json(text.encode())
            self.canonical_examples.append({"input": text, "canonical": canonical(value).decode(), "note": note})
        # Spot checks of the canonical encoder against hand-written RFC 8785 output.
        check(self.canonical_examples[0]["canonical"] == '{"A":"x","a":[true,false,null],"b":1}', "jcs order")
        check(self.canonical_examples[1]["canonical"] ==
              '{"s":"A\u00e9/\\b\\f\\n\\r\\t\\u0001\\u001f\u007f\\"\\\\"}', "jcs escapes")
        check(self.canonical_examples[2]["canonical"] == '{"z":3,"\u00e9":4,"\U0001F600":1,"\uffff":2}',
              "jcs utf-16 order")
        check(self.canonical_examples[6]["canonical"] == '{"e\u0301":2,"\u00e9":1}', "distinct names")

    # -- invalid material

    def build_invalid(self):
        P, m11 = self.pub.id, self.m11
        env = json.loads(self.env11)

        # JSON parser: raw documents (the test parses them with the strict JSON reader).
        for name, text in [
            ("json: truncated", '{"a":[1,2'),
            ("json: duplicate member name", '{"a":1,"a":1}'),
            ("json: 2^53", "[9007199254740992]"),
            ("json: -(2^53)", "[-9007199254740992]"),
            ("json: float 1.5", "[1.5]"),
            ("json: exponent 1e3", "[1e3]"),
            ("json: 1.0", "[1.0]"),
            ("json: -0", "[-0]"),
            ("json: leading zero", "[01]"),
            ("json: depth 17", "[" * 17 + "]" * 17),
            ("json: NaN", "[NaN]"),
            ("json: trailing comma", "[1,]"),
            ("json: bytes after the value", "{} {}"),
            ("json: raw control character in a string", '["a\tb"]'),
            ("json: unpaired high surrogate", '["\\ud800"]'),
            ("json: unpaired low surrogate", '["\\udc00"]'),
            ("json: single quotes", "['a']"),
            ("json: empty document", ""),
        ]:
            self.add({"name": name, "kind": "json", "input": text, "expectedCode": "malformed"})
        for name, raw in [
            ("json: invalid UTF-8 in a string", b'["\xff"]'),
            ("json: overlong UTF-8 encoding of '/'", b'["\xc0\xaf"]'),
            ("json: UTF-8-encoded surrogate", b'["\xed\xa0\x80"]'),
        ]:
            self.add({"name": name, "kind": "json", "inputBase64": b64(raw), "expectedCode": "malformed"})

        # Envelopes (the test parses them as DSSE envelopes only).
        def env_case(name, value, code="malformed"):
            text = value if isinstance(value, str) else json.dumps(value)
            self.add({"name": name, "kind": "envelope", "input": text, "expectedCode": code})

        env_case("envelope: truncated JSON", self.env11[: len(self.env11) // 2])
        env_case("envelope: not an object", "[]")
        env_case("envelope: extra member", dict(env, extra="x"))
        env_case("envelope: missing signatures", {"payload": env["payload"], "payloadType": env["payloadType"]})
        env_case("envelope: duplicate member name",
                 '{"payload":"%s","payload":"%s","payloadType":"%s","signatures":%s}'
                 % (env["payload"], env["payload"], env["payloadType"], json.dumps(env["signatures"])))
        env_case("envelope: payload not base64", dict(env, payload="not base64!"))
        check(env["payload"].endswith("="), "the payload's base64 ends in padding")
        env_case("envelope: payload base64 without padding", dict(env, payload=env["payload"].rstrip("=")))
        env_case("envelope: payload URL-safe base64", dict(env, payload=b64(b"\xfb\xff\xbf").replace("+", "-")
                                                          .replace("/", "_")))
        env_case("envelope: no signatures", dict(env, signatures=[]), "limitExceeded")
        env_case("envelope: 17 signatures", dict(env, signatures=env["signatures"] * 17), "limitExceeded")
        env_case("envelope: signature entry with an extra member",
                 dict(env, signatures=[dict(env["signatures"][0], extra="x")]))
        env_case("envelope: signature not base64", dict(env, signatures=[{"keyid": P, "sig": "%%%%"}]))
        env_case("envelope: signature longer than 256 bytes", dict(env, signatures=[{"keyid": P,
                                                                                   "sig": b64(bytes(257))}]))
        env_case("envelope: keyid not a string", dict(env, signatures=[{"keyid": 1, "sig": env["signatures"][0]
                                                                       ["sig"]}]))
        check(b64decode_strict(env["payload"].rstrip("=")) is None, "unpadded payload differs")

        # Manifests: signatures.
        payload = bytearray(self.payload11)
        i = payload.index(b'"version":"1.1"') + len(b'"version":"1.')
        payload[i] = ord("2")  # 1.1 -> 1.2: still a valid canonical statement, only the signature fails
        tampered = dict(env, payload=b64(bytes(payload)))
        self.add({"name": "manifest: tampered payload byte", "kind": "manifest", "input": envelope_text(tampered),
                  "verifyWith": "publisher", "expectedCode": "badSignature"})
        self.bad_manifest("manifest: signed by another key, statement names the publisher", m11,
                          "badSignature", key=self.other)
        self.bad_manifest("manifest: signed by another key, checked against that key", m11, "unknownKey",
                          key=self.other, verify_with="other")
        self.bad_manifest("manifest: statement names another publisher, signed by the publisher's key",
                          dict(m11, publisher=self.other.id), "unknownKey")
        sig = env["signatures"][0]
        self.add({"name": "manifest: keyid names another key", "kind": "manifest",
                  "input": envelope_text(dict(env, signatures=[dict(sig, keyid=self.other.id)])),
                  "verifyWith": "publisher", "expectedCode": "badSignature"})
        self.add({"name": "manifest: keyid in upper-case hex", "kind": "manifest",
                  "input": envelope_text(dict(env, signatures=[dict(sig, keyid=P.upper())])),
                  "verifyWith": "publisher", "expectedCode": "badSignature"})
        over_payload = sign_envelope(MANIFEST_PAYLOAD_TYPE, self.payload11, [self.pub], pae_override=self.payload11)
        self.add({"name": "manifest: signature over the payload instead of PAE", "kind": "manifest",
                  "input": envelope_text(over_payload), "verifyWith": "publisher", "expectedCode": "badSignature"})
        r, s = decode_der_signature(b64decode_strict(sig["sig"]))
        raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        self.add({"name": "manifest: signature as raw r||s instead of DER", "kind": "manifest",
                  "input": envelope_text(dict(env, signatures=[dict(sig, sig=b64(raw))])),
                  "verifyWith": "publisher", "expectedCode": "badSignature"})
        self.bad_manifest("manifest: wrong payload type", m11, payload_type="application/json")

        # Manifests: payload JSON (validly signed).
        canon = self.payload11.decode()

        def bad_payload(name, text, code="malformed"):
            self.bad_manifest(name, payload=text.encode() if isinstance(text, str) else text, expected=code)

        bad_payload("manifest: non-canonical payload (whitespace)", json.dumps(statement(m11), sort_keys=True,
                                                                                 ensure_ascii=False, indent=1))
        bad_payload("manifest: non-canonical payload (member order)",
                    canon.replace('{"_type":"%s",' % STATEMENT_TYPE, "{", 1)[:-1] + ',"_type":"%s"}' % STATEMENT_TYPE)
        bad_payload("manifest: non-canonical payload (escaped '/')", canon.replace("tokenizer/", "tokenizer\\/"))
        bad_payload("manifest: non-canonical payload (trailing newline)", canon + "\n")
        bad_payload("manifest: duplicate member name", canon.replace('"name":"demo-model"',
                                                                     '"name":"demo-model","name":"demo-model"'))
        bad_payload("manifest: logIndex 2^53", canon.replace('"logIndex":1', '"logIndex":9007199254740992'))
        bad_payload("manifest: logIndex 1.5", canon.replace('"logIndex":1', '"logIndex":1.5'))
        bad_payload("manifest: nesting depth 17", canon.replace('"license":"Apache-2.0"',
                                                                '"license":' + "[" * 15 + "]" * 15))
        check(canon.count('"logIndex":1,') == 1, "one logIndex")

        # Manifests: statement shape, names, fields (validly signed, canonical).
        def bad_statement(name, mutate, code="malformed", note=None):
            st = statement(m11)
            mutate(st)
            self.bad_manifest(name, payload=canonical(st), expected=code, note=note)

        bad_statement("manifest: wrong statement _type",
                      lambda st: st.update(_type="https://in-toto.io/Statement/v0.1"))
        bad_statement("manifest: wrong predicateType", lambda st: st.update(predicateType="https://example.com/x"))
        bad_statement("manifest: extra statement member", lambda st: st.update(extra=1))
        bad_statement("manifest: extra predicate member", lambda st: st["predicate"].update(extra=1))
        bad_statement("manifest: missing lineage", lambda st: st["predicate"].pop("lineage"))
        bad_statement("manifest: lineage not an array", lambda st: st["predicate"].update(lineage={}))
        bad_statement("manifest: files not an array", lambda st: st["predicate"].update(files={}))
        bad_statement("manifest: license not a string", lambda st: st["predicate"].update(license=5),
                      note="a present optional field of the wrong type is malformed, never ignored")
        bad_statement("manifest: files not sorted by path", lambda st: (
            st["predicate"]["files"].reverse(), st["subject"].reverse()))
        bad_statement("manifest: files sorted case-insensitively", lambda st: (
            st["predicate"].update(files=sorted(st["predicate"]["files"], key=lambda f: f["path"].lower())),
            st.update(subject=[{"name": f["path"], "digest": {"sha256": f["sha256"]}}
                               for f in st["predicate"]["files"]])))
        bad_statement("manifest: subject digest differs from its file",
                      lambda st: st["subject"][0]["digest"].update(sha256="00" * 32))
        bad_statement("manifest: subject missing", lambda st: st["subject"].pop())
        bad_statement("manifest: subject with an extra digest",
                      lambda st: st["subject"][0]["digest"].update(sha512="00" * 64))
        bad_statement("manifest: file sha256 in upper case", lambda st: (
            st["predicate"]["files"][0].update(sha256=st["predicate"]["files"][0]["sha256"].upper()),
            st["subject"][0]["digest"].update(sha256=st["predicate"]["files"][0]["sha256"])))
        bad_statement("manifest: file sha256 with the sha256: prefix", lambda st: (
            st["predicate"]["files"][0].update(sha256="sha256:" + st["predicate"]["files"][0]["sha256"]),
            st["subject"][0]["digest"].update(sha256=st["predicate"]["files"][0]["sha256"])))
        bad_statement("manifest: unknown chunker", lambda st: st["predicate"]["files"][0].update(
            chunker="fastcdc-gear-v1/1000/4000/16000"))
        bad_statement("manifest: chunk count too small for the size", lambda st: st["predicate"]["files"][0].update(
            size=5 << 20, chunks=1))
        bad_statement("manifest: empty file with a chunk", lambda st: [
            f.update(chunks=1) for f in st["predicate"]["files"] if f["size"] == 0])
        bad_statement("manifest: negative size", lambda st: st["predicate"]["files"][0].update(size=-1))
        bad_statement("manifest: file entry missing merkleRoot",
                      lambda st: st["predicate"]["files"][0].pop("merkleRoot"))
        bad_statement("manifest: lineage id without sha256: prefix", lambda st: st["predicate"]["lineage"][0].update(
            manifest=self.id10[len("sha256:"):]))
        bad_statement("manifest: unknown lineage relation",
                      lambda st: st["predicate"]["lineage"][0].update(relation="fork"))
        bad_statement("manifest: modelCard is not a file", lambda st: st["predicate"].update(modelCard="CARD.md"))
        bad_statement("manifest: publisher id in upper case",
                      lambda st: st["predicate"].update(publisher=P.upper()))
        bad_statement("manifest: logIndex 2^40", lambda st: st["predicate"].update(logIndex=1 << 40))
        bad_statement("manifest: created with an offset",
                      lambda st: st["predicate"].update(created="2026-02-01T09:30:00+00:00"))
        bad_statement("manifest: created with fractional seconds",
                      lambda st: st["predicate"].update(created="2026-02-01T09:30:00.5Z"))
        bad_statement("manifest: created not a date", lambda st: st["predicate"].update(created="yesterday"))
        for label, name, version in [("name with upper case", "Demo-model", "1.1"),
                                     ("name starting with '-'", "-demo", "1.1"),
                                     ("name with '/'", "demo/model", "1.1"),
                                     ("name of 129 bytes", "a" * 129, "1.1"),
                                     ("version 'latest'", "demo-model", "latest"),
                                     ("version with a space", "demo-model", "1 1"),
                                     ("version starting with '.'", "demo-model", ".1"),
                                     ("version of 65 bytes", "demo-model", "1" * 65),
                                     ("empty version", "demo-model", "")]:
            bad_statement("manifest: " + label, lambda st, n=name, v=version: st["predicate"].update(
                name=n, version=v))

        # Manifests: limits.
        bad_statement("manifest: 65 lineage entries", lambda st: st["predicate"].update(
            lineage=[{"manifest": "sha256:%064x" % i, "relation": "merge"} for i in range(65)]), "limitExceeded")
        bad_statement("manifest: license of 4097 bytes", lambda st: st["predicate"].update(license="x" * 4097),
                      "limitExceeded")
        bad_statement("manifest: file size over 2^44", lambda st: st["predicate"]["files"][0].update(
            size=(1 << 44) + 1, chunks=1 << 24), "limitExceeded")
        for count in (65537, (1 << 20) + 1):
            many = many_files_payload(m11, count)
            self.add({"name": "manifest: %d files" % count, "kind": "manifest", "verifyWith": "publisher",
                      "generate": {"recipe": "many-files", "count": count},
                      "payloadSHA256": sha256(many).hex(), "payloadLength": len(many),
                      "expectedCode": "limitExceeded"})
            env = sign_envelope(MANIFEST_PAYLOAD_TYPE, many, [self.pub])
            in_memory = (env["payloadType"], many, [(s["keyid"], b64decode_strict(s["sig"]))
                                                    for s in env["signatures"]])
            ok, err = expect_reject("limitExceeded", verify_manifest_envelope, in_memory, self.pub.public)
            check(ok, "many files (%d): %s" % (count, err))

        # Manifests: paths (each validly signed, files sorted, subjects matching; only the path rules fail).
        def with_paths(paths):
            base = m11["files"][1]  # README.md
            files = [f for f in m11["files"] if f["path"] == "README.md"]
            for p in paths:
                files.append(dict(base, path=p))
            return dict(m11, files=files)

        hostile = [
            ("'../x'", ["../x"]),
            ("'..'", [".."]),
            ("'/etc/passwd' (absolute)", ["/etc/passwd"]),
            ("'a/../b'", ["a/../b"]),
            ("'a//b' (empty component)", ["a//b"]),
            ("'a/' (trailing slash)", ["a/"]),
            ("'./a'", ["./a"]),
            ("NUL in a path", ["a\u0000b"]),
            ("backslash", ["a\\b"]),
            ("empty path", [""]),
            ("BEL control character", ["a\u0007b"]),
            ("DEL character", ["a\u007fb"]),
            ("duplicate paths", ["x.bin", "x.bin"]),
            ("paths differing only in case", ["A.bin", "a.bin"]),
            ("non-NFC path (e + U+0301)", ["e\u0301.bin"]),
            ("a path that is also a folder", ["a", "a/b"]),
            ("component of 256 bytes", ["d/" + "c" * 256]),
            ("path of 1025 bytes", ["/".join(["c" * 200] * 5) + "/" + "c" * 20]),
            ("'../' followed by a combining mark", ["../\u0301x"]),
            ("'/' followed by a combining mark at the start", ["/\u0301etc/passwd"]),
            ("'//' where the second '/' carries a combining mark", ["a//\u0301b"]),
            ("backslash followed by a combining mark", ["a\\\u0301b"]),
        ]
        check(len("/".join(["c" * 200] * 5) + "/" + "c" * 20) == 1025, "1025-byte path")
        for label, paths in hostile:
            note = None
            if "combining mark" in label:
                note = ("paths are split at the byte 0x2F, not at grapheme-cluster boundaries: a '/' followed by "
                        "a combining mark still separates components")
            self.bad_manifest("manifest: hostile path: " + label, with_paths(paths), "hostilePath", note=note)
        # Unicode path that is fine, for contrast, is in valid.json ("\u00e9.txt").

        # Logs.
        e0, e1, e2 = self.entries

        def log_case(name, envs, code, note=None):
            case = {"name": name, "kind": "log", "inputs": envs, "expectedCode": code}
            if note:
                case["note"] = note
            self.add(case)

        E = self.log_envs
        log_case("log: skips an index (0 then 2)", [E[0], E[2]], "logInconsistent")
        log_case("log: starts at index 1", [E[1]], "logInconsistent")
        log_case("log: index repeated", [E[0], E[1], self.entry_env(dict(e2, index=1))], "logInconsistent")
        pub10b = entry(publisher=P, index=1, kind="publish", time="2026-01-16T12:00:00Z", release="demo-model@1.0",
                       manifest=self.id11)
        log_case("log: second publish of the same release", [E[0], self.entry_env(pub10b)], "equivocation")
        log_case("log: yank of a release never published", [E[0], self.entry_env(
            dict(e2, index=1, release="demo-model@9.9"))], "logInconsistent")
        log_case("log: yank naming another manifest than the published one", [E[0], E[1], self.entry_env(
            dict(e2, manifest=self.id10))], "logInconsistent")
        log_case("log: entry signed by another key", [self.entry_env(e0, key=self.other)], "badSignature")
        log_case("log: entry names another publisher", [self.entry_env(dict(e0, publisher=self.other.id))],
                 "logInconsistent")
        log_case("log: yank without a reason", [E[0], E[1], self.entry_env(
            {k: v for k, v in e2.items() if k != "reason"})], "malformed")
        log_case("log: yank with an empty reason", [E[0], E[1], self.entry_env(dict(e2, reason=""))], "malformed")
        log_case("log: advisory without severity", [E[0], self.entry_env(dict(e2, index=1, kind="advisory",
                                                                               release="demo-model@1.0",
                                                                               manifest=self.id10))], "malformed")
        log_case("log: unknown kind", [self.entry_env(dict(e0, kind="delete"))], "malformed")
        log_case("log: field not allowed for the kind (severity on a yank)", [E[0], E[1], self.entry_env(
            dict(e2, severity="high"))], "malformed")
        log_case("log: reason of 4097 bytes", [E[0], E[1], self.entry_env(dict(e2, reason="x" * 4097))],
                 "limitExceeded")
        log_case("log: non-canonical entry payload", [self.entry_env(None, payload=json.dumps(e0).encode())],
                 "malformed")
        log_case("log: manifest payload type on an entry", [self.entry_env(e0, payload_type=MANIFEST_PAYLOAD_TYPE)],
                 "malformed")
        log_case("log: time not RFC 3339 UTC", [self.entry_env(dict(e0, time="2026-01-15T12:00:00"))], "malformed")
        r1 = entry(publisher=P, index=1, kind="rotate-key", time="2026-02-20T00:00:00Z",
                   newKey=b64(self.rotated.spki))
        log_case("log: rotate-key signed by the old key only", [E[0], self.entry_env(r1)], "badSignature")
        log_case("log: rotate-key signed by the new key only", [E[0], self.entry_env(r1, key=self.rotated)],
                 "badSignature")
        log_case("log: entry after a rotation signed by the old key", [
            E[0], self.entry_env(r1, keys=[self.pub, self.rotated]),
            self.entry_env(entry(publisher=P, index=2, kind="publish", time="2026-03-01T00:00:00Z",
                                 release="demo-model@2.0", manifest=self.id11))], "badSignature")
        log_case("log: rotate-key with a key that is not P-256 SPKI", [E[0], self.entry_env(
            dict(r1, newKey=b64(b"not a key")), keys=[self.pub])], "malformed")

        # Checkpoints: offered in order to a verifier holding the valid 3-entry log.
        def cp_case(name, notes, code):
            self.add({"name": name, "kind": "checkpoint", "log": "valid", "inputs": notes, "expectedCode": code})

        root3, root2 = self.log.root(3), self.log.root(2)
        cp_case("checkpoint: rolls back (size 3, then size 2)", [self.cp3, self.cp2], "logInconsistent")
        cp_case("checkpoint: same size as an accepted one, another root", [self.cp3, self.cp3b], "equivocation")
        cp_case("checkpoint: signed by an unknown key", [sign_note(checkpoint_text(P, 3, root3), self.other)],
                "unknownKey")
        cp_case("checkpoint: origin of another publisher", [sign_note(checkpoint_text(self.other.id, 3, root3),
                                                                      self.other)], "unknownKey")
        cp_case("checkpoint: signature does not verify", [sign_note(checkpoint_text(P, 3, root3), self.pub,
                                                                    corrupt=True)], "badSignature")
        cp_case("checkpoint: root does not match the log", [sign_note(checkpoint_text(P, 3, root2), self.pub)],
                "logInconsistent")
        cp_case("checkpoint: extension line", [sign_note(checkpoint_text(P, 3, root3) + "extra\n", self.pub)],
                "malformed")
        cp_case("checkpoint: size with a leading zero", [sign_note(checkpoint_text(P, 3, root3).replace(
            "\n3\n", "\n03\n"), self.pub)], "malformed")
        cp_case("checkpoint: root of 31 bytes", [sign_note(checkpoint_text(P, 3, root3[:31]), self.pub)],
                "malformed")
        cp_case("checkpoint: no signature line", [checkpoint_text(P, 3, root3) + "\n"], "malformed")
        cp_case("checkpoint: carriage return", [sign_note(checkpoint_text(P, 3, root3), self.pub).replace(
            "\n", "\r\n", 1)], "malformed")
        cp_case("checkpoint: signature name with '+'", [sign_note(checkpoint_text(P, 3, root3), self.pub,
                                                                  name="a+b")], "malformed")
        big = self.cp3 + ("%s w %s\n" % (EM_DASH, b64(bytes(100)))) * 120
        check(len(big.encode()) > MAX_NOTE_BYTES, "big note")
        cp_case("checkpoint: note larger than 16 KiB", [big], "limitExceeded")

        # Equivocation proofs.
        def proof_case(name, text, code, note=None):
            case = {"name": name, "kind": "equivocationProof", "input": text, "expectedCode": code}
            if note:
                case["note"] = note
            self.add(case)

        pk = self.pub.public
        proof_case("proof: the same manifest twice", make_proof("manifests", pk, self.env11.encode(),
                                                                self.env11.encode()), "malformed")
        proof_case("proof: manifests of different releases", make_proof("manifests", pk, self.env10.encode(),
                                                                        self.env11.encode()), "malformed")
        proof_case("proof: entries at different indexes", make_proof("entries", pk, self.log_envs[1].encode(),
                                                                     self.env_e2b.encode()), "malformed")
        proof_case("proof: checkpoints of different sizes", make_proof("checkpoints", pk, self.cp2.encode(),
                                                                       self.cp3.encode()), "malformed")
        # Framing: someone signs two conflicting objects with their own key, naming the victim publisher.
        fa = self.entry_env(dict(e2), key=self.other).encode()
        fb = self.entry_env(dict(e2, reason="another reason"), key=self.other).encode()
        proof_case("proof: entries signed by a key that is not the publisher's", make_proof(
            "entries", self.other.public, fa, fb), "unknownKey",
            note="the proof's key must be the key the publisher id names, or anyone could frame any publisher")
        ma = self.manifest_env(m11, key=self.other).encode()
        mb = self.manifest_env(dict(m11, created="2026-02-01T09:31:00Z"), key=self.other).encode()
        proof_case("proof: manifests signed by a key that is not the publisher's", make_proof(
            "manifests", self.other.public, ma, mb), "unknownKey")
        proof_case("proof: checkpoints signed by a key that is not the publisher's", make_proof(
            "checkpoints", self.other.public, sign_note(checkpoint_text(P, 3, root3), self.other).encode(),
            sign_note(checkpoint_text(P, 3, root2), self.other).encode()), "unknownKey")
        bad = json.loads(self.env11b)
        bad["signatures"][0]["sig"] = json.loads(self.env11)["signatures"][0]["sig"]
        proof_case("proof: second manifest's signature does not verify", make_proof(
            "manifests", pk, self.env11.encode(), envelope_text(bad).encode()), "badSignature")
        proof_case("proof: unknown kind", make_proof("releases", pk, self.env11.encode(), self.env11b.encode()),
                   "malformed")
        proof_case("proof: key is not P-256 SPKI", canonical({
            "kind": "manifests", "publisherKey": b64(b"not a key"), "first": b64(self.env11.encode()),
            "second": b64(self.env11b.encode())}).decode(), "malformed")

    def self_check_invalid(self):
        """Every invalid case is rejected by this verifier with its expected code (and earlier inputs accepted)."""
        for case in self.invalid:
            kind = case["kind"]
            try:
                if kind == "json":
                    data = case["input"].encode() if "input" in case else b64decode_strict(case["inputBase64"])
                    try:
                        parse_json(data)
                    except JSONReject as e:
                        raise Reject("malformed", str(e))
                elif kind == "envelope":
                    parse_envelope(case["input"].encode())
                elif kind == "manifest":
                    key = self.keys[case["verifyWith"]].public
                    if "generate" in case:
                        continue  # checked where it is built
                    verify_manifest(case["input"].encode(), key)
                elif kind == "log":
                    log = Log(self.pub.public)
                    for n, env in enumerate(case["inputs"]):
                        if n < len(case["inputs"]) - 1:
                            try:
                                log.append(env.encode())
                            except Reject as e:
                                check(False, "%s: input %d rejected early: %s" % (case["name"], n, e))
                        else:
                            log.append(env.encode())
                elif kind == "checkpoint":
                    v = CheckpointVerifier(self.log)
                    for n, note in enumerate(case["inputs"]):
                        if n < len(case["inputs"]) - 1:
                            try:
                                check(v.offer(note) is not None, "%s: input %d pending" % (case["name"], n))
                            except Reject as e:
                                check(False, "%s: input %d rejected early: %s" % (case["name"], n, e))
                        else:
                            v.offer(note)
                elif kind == "equivocationProof":
                    verify_proof(case["input"].encode())
                else:
                    check(False, "kind %s" % kind)
            except Reject as e:
                check(e.code == case["expectedCode"], "%s: got %s (%s), expected %s" % (
                    case["name"], e.code, e, case["expectedCode"]))
                continue
            check(False, "%s: accepted, expected %s" % (case["name"], case["expectedCode"]))

    # -- output

    def keys_json(self):
        out = {"version": 1, "warning": "public test keys: never use them for anything but tests", "keys": {}}
        for role, k in self.keys.items():
            out["keys"][role] = {
                "spkiDER": b64(k.spki),
                "publicKeyPEM": k.public.public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
                "publisherID": k.id,
                "noteKeyID": note_key_id(k.public).hex(),
                "privateKeyPEM": k.pem,
            }
        return out

    def valid_json(self):
        st11 = statement(self.m11)
        log = self.log
        env11 = json.loads(self.env11)
        return {
            "version": 1,
            "canonicalJSON": self.canonical_examples,
            "manifests": [
                {"name": "demo-model@1.1", "envelope": self.env11, "payload": self.payload11.decode(),
                 "pae": b64(pae(MANIFEST_PAYLOAD_TYPE, self.payload11)),
                 "signatureKeyID": env11["signatures"][0]["keyid"],
                 "id": self.id11, "statement": st11, "signedBy": "publisher"},
                {"name": "demo-model@1.0", "envelope": self.env10, "payload": canonical(statement(self.m10)).decode(),
                 "id": self.id10, "statement": statement(self.m10), "signedBy": "publisher"},
            ],
            "envelopes": self.extra_envelopes,
            "log": {
                "entries": [
                    {"envelope": env, "payload": canonical(e).decode(), "fields": e,
                     "leafHash": hashing.leaf_hash(canonical(e)).hex()}
                    for env, e in zip(self.log_envs, self.entries)
                ],
                "root": log.root(3).hex(),
                "rootBase64": b64(log.root(3)),
                "checkpoints": [
                    {"size": 3, "text": checkpoint_text(log.publisher, 3, log.root(3)), "note": self.cp3,
                     "rootBase64": b64(log.root(3))},
                    {"size": 2, "text": checkpoint_text(log.publisher, 2, log.root(2)), "note": self.cp2,
                     "rootBase64": b64(log.root(2))},
                ],
                "state": {
                    "releases": {r: log.releases[r] for r in log.publish_order},
                    "latest": {"demo-model": {"release": "demo-model@1.0", "skipped": ["demo-model@1.1"]}},
                },
            },
            "rotationLog": {
                "entries": self.rot_envs,
                "newKey": b64(self.rotated.spki),
                "keysAfter": [{"from": start, "publisherID": publisher_id(spki(k))} for start, k in self.rlog.keys],
                "root": self.rlog.root().hex(),
                "manifest": {"envelope": self.env20, "id": self.rlog.releases["demo-model@2.0"]["manifest"],
                             "signedBy": "rotated"},
                "checkpoint": {"size": 3, "note": self.rcp, "signedBy": "rotated"},
            },
            "equivocationProofs": self.proofs,
        }


def verify_manifest_in_log(data, log):
    """A manifest whose signer is the key in force at its logIndex (the original key or a rotated one)."""
    env = parse_envelope(data)
    if env[0] != MANIFEST_PAYLOAD_TYPE:
        raise Reject("malformed", "payload type")
    p = parse_manifest(env[1])
    if p["publisher"] != log.publisher:
        raise Reject("unknownKey", "another publisher")
    if not is_signed_by(env, log.key_for_size(p["logIndex"])):
        raise Reject("badSignature", "not signed by the key in force at logIndex")
    return p, sha256_text(env[1])


def decode_der_signature(der):
    """(r, s) from an ECDSA-Sig-Value."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    return decode_dss_signature(der)


def many_files_payload(m, count):
    """The 'many-files' recipe: the canonical statement of demo-model@1.1 with predicate.files replaced by `count`
    empty objects (subjects unchanged). A verifier must stop at the count, before looking at any entry."""
    st = statement(m)
    st["predicate"]["files"] = [{} for _ in range(count)]
    return canonical(st)


def write_json(path, obj):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(obj, f, sort_keys=True, indent=2, ensure_ascii=True)
        f.write("\n")


def main():
    b = Builder()
    b.build_valid()
    b.build_invalid()
    b.self_check_invalid()
    write_json(os.path.join(HERE, "keys.json"), b.keys_json())
    write_json(os.path.join(HERE, "valid.json"), b.valid_json())
    write_json(os.path.join(HERE, "invalid.json"), {"version": 1, "cases": b.invalid})
    counts = {}
    for c in b.invalid:
        counts[c["kind"]] = counts.get(c["kind"], 0) + 1
    print("keys.json: %d keys; publisher id %s" % (len(b.keys), b.pub.id))
    print("valid.json: 2 manifests, 3-entry log (root %s), rotation log, %d equivocation proofs"
          % (b.log.root().hex()[:16], len(b.proofs)))
    print("invalid.json: %d cases (%s)" % (len(b.invalid), ", ".join("%s %d" % kv for kv in sorted(counts.items()))))


if __name__ == "__main__":
    main()
