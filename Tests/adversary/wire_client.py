#!/usr/bin/env python3
"""An adversarial wire-v1 / gossip-v1 client, written from Protocol/wire-v1.md and Protocol/gossip-v1.md alone.

It shares no code with the Swift node. Each subcommand stages one attack against a running `alexandria node run`
and prints one JSON object with what it observed, so a test (or a person) can check the node against the spec:

    wire_client.py silent      --port P [--wait S]              handshake, then send nothing
    wire_client.py trickle     --port P [--wait S]              handshake, then a frame that never finishes
    wire_client.py outstanding --port P --address HEX [--ids N]  request N chunk ids without reading any answer
    wire_client.py flood       --port P --count N [--source IP]  N authenticated idle plain clients
    wire_client.py malformed   --port P --case NAME              one malformed frame; reports the ERROR code
    wire_client.py peers       --port P [--messages N]           PEERS answers, solicited and not, hostile addresses
    wire_client.py listen      --victim-host IP                 a victim: counts the dials PEERS steered at it
    wire_client.py ping        --port P [--source IP]            one honest PING / PONG

Needs Python 3 and the `cryptography` package (Ed25519).
"""

import argparse
import json
import os
import socket
import struct
import sys
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

# Message types (wire-v1.md "Messages", gossip-v1.md "Messages").
HELLO, AUTH, PING, PONG = 0x01, 0x02, 0x03, 0x04
HAVE_QUERY, HAVE, GET_RECIPE, RECIPE = 0x10, 0x11, 0x12, 0x13
GET_CHUNKS, CHUNK, CHUNK_MISSING = 0x20, 0x21, 0x22
GET_MANIFEST, MANIFEST = 0x30, 0x31
PEERS_QUERY, PEERS, ITEMS, RECONCILE, WANT = 0x40, 0x41, 0x50, 0x51, 0x52
ERROR = 0x7F

ERROR_NAMES = {1: "protocolViolation", 2: "frameTooLarge", 3: "unsupportedVersion", 4: "unauthenticated",
               5: "notFound", 6: "overloaded", 7: "internal", 8: "unknownMessage"}
MAX_FRAME_BYTES = 2 * 1024 * 1024 + 4096
AUTH_CONTEXT = b"alexandria/wire/v1/auth"


def frame(kind, payload=b""):
    return struct.pack(">IB", 1 + len(payload), kind) + payload


class Closed(Exception):
    pass


class Conn:
    """One TCP connection with frame reading; `handshake` authenticates as the initiator."""

    def __init__(self, host, port, source=None, timeout=10.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if source:
            self.sock.bind((source, 0))
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = b""
        self.key = Ed25519PrivateKey.generate()
        self.public = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, n):
        while len(self.buf) < n:
            data = self.sock.recv(1 << 20)
            if not data:
                raise Closed()
            self.buf += data

    def read_frame(self):
        self._fill(4)
        (length,) = struct.unpack(">I", self.buf[:4])
        if length == 0 or length > MAX_FRAME_BYTES:
            raise ValueError(f"peer sent a frame of length {length}")
        self._fill(4 + length)
        kind, payload = self.buf[4], self.buf[5:4 + length]
        self.buf = self.buf[4 + length:]
        return kind, payload

    def hello_payload(self, listen_port, version=(1, 1), magic=b"ALXW"):
        return magic + struct.pack(">HH", *version) + self.public + os.urandom(32) + struct.pack(">H", listen_port)

    def handshake(self, listen_port=0):
        mine = self.hello_payload(listen_port)
        self.send(frame(HELLO, mine))
        kind, theirs = self.read_frame()
        if kind != HELLO or len(theirs) != 74:
            raise ValueError(f"expected HELLO, got type {kind:#x}")
        signature = self.key.sign(AUTH_CONTEXT + b"\x00" + mine + theirs)
        self.send(frame(AUTH, signature))
        kind, payload = self.read_frame()
        if kind != AUTH:
            raise ValueError(f"expected AUTH, got type {kind:#x} {error_text(kind, payload)}")
        self.peer_key = theirs[8:40]
        return theirs

    def wait_closed(self, wait):
        """Reads until the peer closes or `wait` seconds pass; returns (seconds until close or None, error code)."""
        start = time.monotonic()
        code = None
        while time.monotonic() - start < wait:
            self.sock.settimeout(max(0.05, wait - (time.monotonic() - start)))
            try:
                kind, payload = self.read_frame()
                if kind == ERROR:
                    code = struct.unpack(">H", payload[:2])[0]
                elif kind == PING:
                    pass  # an idle peer may PING; this client never answers, on purpose
            except Closed:
                return time.monotonic() - start, code
            except (ConnectionResetError, BrokenPipeError):
                return time.monotonic() - start, code
            except socket.timeout:
                break
        return None, code

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def error_text(kind, payload):
    if kind != ERROR or len(payload) < 4:
        return ""
    code, length = struct.unpack(">HH", payload[:4])
    return f"ERROR({ERROR_NAMES.get(code, code)}): {payload[4:4 + length].decode('utf-8', 'replace')}"


def out(**fields):
    print(json.dumps(fields, sort_keys=True))
    sys.stdout.flush()


def attack_silent(args):
    c = Conn(args.host, args.port)
    c.handshake()
    closed, code = c.wait_closed(args.wait)
    out(attack="silent", closed_after=closed, error=code)


def attack_trickle(args):
    c = Conn(args.host, args.port)
    c.handshake()
    # A PING frame declared 9 bytes long: its header and then one byte every `interval`, never the last one.
    partial = struct.pack(">IB", 9, PING) + b"\x00" * 7
    start = time.monotonic()
    closed = None
    sent = 0
    c.sock.settimeout(args.interval)
    for byte in partial:
        if time.monotonic() - start > args.wait:
            break
        try:
            c.send(bytes([byte]))
            sent += 1
        except (BrokenPipeError, ConnectionResetError):
            closed = time.monotonic() - start
            break
        try:
            data = c.sock.recv(65536)
            if not data:
                closed = time.monotonic() - start
                break
        except socket.timeout:
            pass
        except ConnectionResetError:
            closed = time.monotonic() - start
            break
    if closed is None:
        remaining = args.wait - (time.monotonic() - start)
        more, _ = c.wait_closed(max(0.1, remaining))
        closed = None if more is None else time.monotonic() - start
    out(attack="trickle", closed_after=closed, bytes_sent=sent)


def attack_outstanding(args):
    c = Conn(args.host, args.port)
    c.handshake()
    address = bytes.fromhex(args.address)
    c.send(frame(GET_RECIPE, address + struct.pack(">II", 0, 16384)))
    kind, payload = c.read_frame()
    if kind != RECIPE:
        raise ValueError(f"expected RECIPE, got {kind:#x} {error_text(kind, payload)}")
    n = struct.unpack(">I", payload[49:53])[0]
    ids = [payload[53 + 36 * k:53 + 36 * k + 32] for k in range(n)]
    # Ask for the file's chunks over and over (ids need not be distinct), 64 at a time, reading nothing.
    requests = (args.ids + 63) // 64
    c.sock.settimeout(5.0)
    sent_ids = 0
    send_blocked = False
    for r in range(requests):
        count = min(64, args.ids - sent_ids)
        body = b"".join(ids[(sent_ids + k) % len(ids)] for k in range(count))
        try:
            c.send(frame(GET_CHUNKS, struct.pack(">IH", r + 1, count) + body))
        except socket.timeout:
            send_blocked = True
            break
        except (BrokenPipeError, ConnectionResetError):
            break
        sent_ids += count
    time.sleep(args.pause)
    answers, code, closed = 0, None, False
    c.sock.settimeout(10.0)
    try:
        while True:
            kind, payload = c.read_frame()
            if kind in (CHUNK, CHUNK_MISSING):
                answers += 1
            elif kind == ERROR:
                code = struct.unpack(">H", payload[:2])[0]
            if answers >= sent_ids:
                break
    except (Closed, ConnectionResetError):
        closed = True
    except socket.timeout:
        pass
    out(attack="outstanding", ids_sent=sent_ids, answers=answers, error=code, closed=closed,
        send_blocked=send_blocked)


def attack_flood(args):
    conns, refused, errors = [], 0, {}
    for _ in range(args.count):
        try:
            c = Conn(args.host, args.port, source=args.source, timeout=5.0)
            c.handshake()
            conns.append(c)
        except ValueError as e:
            refused += 1
            errors[str(e)[:80]] = errors.get(str(e)[:80], 0) + 1
        except (Closed, ConnectionResetError, BrokenPipeError, socket.timeout, OSError):
            refused += 1
    # Which of the accepted ones does the node keep? Check each with a PING.
    time.sleep(args.settle)
    alive, overloaded = 0, 0
    for i, c in enumerate(conns):
        try:
            c.sock.settimeout(5.0)
            c.send(frame(PING, struct.pack(">Q", i)))
            while True:
                kind, payload = c.read_frame()
                if kind == PONG:
                    alive += 1
                    break
                if kind == ERROR:
                    overloaded += struct.unpack(">H", payload[:2])[0] == 6
                    break
        except (Closed, ConnectionResetError, BrokenPipeError, socket.timeout, OSError, ValueError):
            pass
    out(attack="flood", attempted=args.count, handshakes=len(conns), refused=refused, alive=alive,
        overloaded=overloaded, errors=errors)
    if args.hold > 0:
        # Keep the survivors alive with PINGs (so the idle timeout does not excuse the node), then exit.
        end = time.monotonic() + args.hold
        while time.monotonic() < end:
            time.sleep(min(5.0, max(0.0, end - time.monotonic())))
            for i, c in enumerate(conns):
                try:
                    c.send(frame(PING, struct.pack(">Q", i)))
                    c.sock.settimeout(0.01)
                    c.sock.recv(65536)
                except (OSError, socket.timeout):
                    pass


def attack_ping(args):
    c = Conn(args.host, args.port, source=args.source)
    c.handshake()
    c.send(frame(PING, struct.pack(">Q", 42)))
    kind, payload = c.read_frame()
    out(attack="ping", pong=(kind == PONG and payload == struct.pack(">Q", 42)))


MALFORMED = {
    # name: (handshake first?, bytes to send, the ERROR code wire-v1 names)
    "zero-length": (True, struct.pack(">I", 0), 1),
    "too-large": (True, struct.pack(">IB", MAX_FRAME_BYTES + 1, PING), 2),
    "unknown-type": (True, frame(0x6E, b""), 8),
    "short-ping": (True, frame(PING, b"\x00" * 7), 1),
    "long-ping": (True, frame(PING, b"\x00" * 9), 1),
    "have-count-over-limit": (True, frame(HAVE_QUERY, struct.pack(">H", 1025)), 1),
    "get-chunks-zero": (True, frame(GET_CHUNKS, struct.pack(">IH", 1, 0)), 1),
    "manifest-kind": (True, frame(GET_MANIFEST, b"\x02" + b"\x00" * 32), 1),
    "unsolicited-pong": (True, frame(PONG, b"\x00" * 8), 1),
    "gossip-from-client": (True, frame(PEERS_QUERY), 1),
    "first-frame-not-hello": (False, frame(PING, b"\x00" * 8), 1),
    "bad-magic": (False, None, 1),
    "no-common-version": (False, None, 3),
    "bad-auth": (False, None, 4),
}


def attack_malformed(args):
    if args.case == "all":
        for case in sorted(MALFORMED):
            args.case = case
            attack_malformed(args)
        return
    handshake_first, data, expected = MALFORMED[args.case]
    c = Conn(args.host, args.port)
    if handshake_first:
        c.handshake()
        c.send(data)
    elif args.case == "first-frame-not-hello":
        c.send(data)
    elif args.case == "bad-magic":
        c.send(frame(HELLO, c.hello_payload(0, magic=b"XXXX")))
    elif args.case == "no-common-version":
        c.send(frame(HELLO, c.hello_payload(0, version=(7, 9))))
    elif args.case == "bad-auth":
        mine = c.hello_payload(0)
        c.send(frame(HELLO, mine))
        c.read_frame()
        c.send(frame(AUTH, b"\x01" * 64))
    code = None
    closed = False
    c.sock.settimeout(args.wait)
    try:
        while True:
            kind, payload = c.read_frame()
            if kind == ERROR:
                code = struct.unpack(">H", payload[:2])[0]
    except (Closed, ConnectionResetError):
        closed = True
    except socket.timeout:
        pass
    out(attack="malformed", case=args.case, error=code, expected=expected, closed=closed)


def peers_record(key, host, port, last_seen):
    h = host.encode()
    return key + struct.pack(">B", len(h)) + h + struct.pack(">HQ", port, last_seen)


def attack_peers(args):
    """Authenticates as a node, answers the node's PEERS_QUERY with hostile addresses and addresses that steer dials
    at a victim (`--victim-host`, ports from `--victim-port` up), then sends more PEERS nobody asked for."""
    c = Conn(args.host, args.port)
    c.handshake(listen_port=args.listen_port)
    now = int(time.time())
    hostile = [("0.0.0.0", 7420), ("224.0.0.1", 7420), ("255.255.255.255", 7420), ("127.0.0.1", 0),
               ("::", 7420), ("ff02::1", 7420), ("0", 7420), ("240.1.2.3", 7420)]

    def message(m):
        records = []
        for i in range(64):
            if args.hostile and m == 0 and i < len(hostile):
                host, port = hostile[i]
            else:
                host, port = args.victim_host, args.victim_port + (m * 64 + i) % args.victim_ports
            records.append(peers_record(os.urandom(32), host, port, now))
        return frame(PEERS, struct.pack(">H", len(records)) + b"".join(records))

    # Wait for the node's PEERS_QUERY (a node asks a new link while its table is small) and answer it.
    queries = 0
    c.sock.settimeout(0.2)
    end = time.monotonic() + args.query_wait
    while time.monotonic() < end and queries == 0:
        try:
            kind, _ = c.read_frame()
            if kind == PEERS_QUERY:
                queries += 1
        except socket.timeout:
            pass
        except (Closed, ConnectionResetError):
            break
    sent, m = 0, 0
    if queries:
        c.send(message(0))
        sent, m = 64, 1
    for m in range(m, args.messages):
        try:
            c.send(message(m))
            sent += 64
        except (BrokenPipeError, ConnectionResetError):
            break
    closed, code = c.wait_closed(args.wait)
    out(attack="peers", key=c.public.hex(), queries=queries, records_sent=sent, closed_after=closed, error=code)


def attack_listen(args):
    """A victim: counts the TCP connections that arrive on `--victim-ports` ports from `--victim-port` up."""
    socks = []
    for p in range(args.victim_port, args.victim_port + args.victim_ports):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((args.victim_host, p))
            s.listen(64)
            s.setblocking(False)
            socks.append(s)
        except OSError:
            s.close()
    print(json.dumps({"listening": len(socks)}), flush=True)
    accepted = 0
    end = time.monotonic() + args.wait
    while time.monotonic() < end:
        for s in socks:
            try:
                conn, _ = s.accept()
                accepted += 1
                conn.close()
            except BlockingIOError:
                pass
        time.sleep(0.02)
    out(attack="listen", accepted=accepted, ports=len(socks))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("attack", choices=["silent", "trickle", "outstanding", "flood", "malformed", "peers", "ping",
                                      "listen"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7420)
    p.add_argument("--wait", type=float, default=75.0)
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--address", default="")
    p.add_argument("--ids", type=int, default=384)
    p.add_argument("--pause", type=float, default=1.0)
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--source", default=None)
    p.add_argument("--settle", type=float, default=0.5)
    p.add_argument("--hold", type=float, default=0.0)
    p.add_argument("--case", default="zero-length", choices=sorted(MALFORMED) + ["all"])
    p.add_argument("--messages", type=int, default=4)
    p.add_argument("--hostile", action="store_true")
    p.add_argument("--listen-port", type=int, default=9)
    p.add_argument("--query-wait", type=float, default=3.0)
    p.add_argument("--victim-host", default="127.0.0.1")
    p.add_argument("--victim-port", type=int, default=40000)
    p.add_argument("--victim-ports", type=int, default=16)
    args = p.parse_args()
    globals()["attack_" + args.attack](args)


if __name__ == "__main__":
    main()
