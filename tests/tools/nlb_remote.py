#!/usr/bin/env python3
"""Remote-control datagrams for end-to-end tests, built independently of nlbadm (Python's hmac
and hashlib, the wire format of docs/remote.md). Every mode prints one JSON object.

request  one signed request, sent --copies times (the same datagram), then the answers that
         echo its nonce and carry a valid MAC are collected for --wait s.
         --age-ms shifts the timestamp into the past (stale), --pad grows the payload (oversize),
         --payload replaces the request object.
         {"sent": n, "answers": {prio: n}, "payloads": {prio: answer}, "ignored": n}
flood    --count junk datagrams to the cluster IP at full speed, for at most --seconds: random
         bytes, and well-formed headers with the right cluster IP and a random MAC (so that
         each costs the host an HMAC). {"sent": n, "seconds": t}
"""
import argparse
import hashlib
import hmac
import ipaddress
import json
import os
import select
import socket
import struct
import time

PORT = 2504
MAGIC = b"NLBR"
VERSION = 1
REQUEST, ANSWER = 1, 2
HEADER = struct.Struct("!4sBBBB4sQ16s")  # magic, version, type, priority, reserved, ip, ts, nonce
MAC_SIZE = 32
LABEL = b"nlb remote control v1"


def remote_key(path):
    text = "".join(open(path).read().split())
    return hmac.new(bytes.fromhex(text), LABEL, hashlib.sha256).digest()


def sign(key, body):
    return body + hmac.new(key, body, hashlib.sha256).digest()


def header(kind, priority, cluster, timestamp_ms, nonce):
    return HEADER.pack(MAGIC, VERSION, kind, priority, 0,
                       ipaddress.IPv4Address(cluster).packed, timestamp_ms, nonce)


def request(args):
    key = remote_key(args.key_file)
    payload = json.loads(args.payload) if args.payload else {"command": args.command}
    if args.pad:
        payload["pad"] = "x" * args.pad
    nonce = os.urandom(16)
    ts = int(time.time() * 1000) - args.age_ms
    datagram = sign(key, header(REQUEST, args.host, args.cluster, ts, nonce) +
                    json.dumps(payload, separators=(",", ":")).encode())
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out = {"sent": 0, "size": len(datagram), "answers": {}, "payloads": {}, "ignored": 0}
    for i in range(args.copies):
        if i:
            time.sleep(args.gap)
        sock.sendto(datagram, (args.cluster, PORT))
        out["sent"] += 1
    deadline = time.monotonic() + args.wait
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            break
        data = sock.recv(65536)
        if len(data) < HEADER.size + MAC_SIZE:
            out["ignored"] += 1
            continue
        body, mac = data[:-MAC_SIZE], data[-MAC_SIZE:]
        magic, _, kind, prio, _, _, _, echoed = HEADER.unpack_from(body)
        good = hmac.compare_digest(hmac.new(key, body, hashlib.sha256).digest(), mac)
        if not good or magic != MAGIC or kind != ANSWER or echoed != nonce:
            out["ignored"] += 1
            continue
        out["answers"][prio] = out["answers"].get(prio, 0) + 1
        out["payloads"][prio] = json.loads(body[HEADER.size:])
    print(json.dumps(out))


def flood(args):
    rnd = os.urandom
    cluster = ipaddress.IPv4Address(args.cluster).packed
    junk = []
    for i in range(256):
        if i % 2:
            junk.append(rnd(1 + i % 200))
        else:
            body = HEADER.pack(MAGIC, VERSION, REQUEST, 0, 0, cluster,
                               int(time.time() * 1000), rnd(16)) + b'{"command":"stop"}'
            junk.append(body + rnd(MAC_SIZE))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    dest = (args.cluster, PORT)
    start = time.monotonic()
    deadline = start + args.seconds
    sent = 0
    while sent < args.count:
        if sent % 1024 == 0 and time.monotonic() > deadline:
            break
        try:
            sock.sendto(junk[sent & 255], dest)
        except BlockingIOError:
            select.select([], [sock], [], 0.01)
            continue
        sent += 1
    print(json.dumps({"sent": sent, "seconds": round(time.monotonic() - start, 3)}))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("request")
    r.add_argument("--cluster", required=True)
    r.add_argument("--key-file", required=True)
    r.add_argument("--host", type=int, default=0)
    r.add_argument("--command", default="query")
    r.add_argument("--payload", help="the request object as JSON (instead of --command)")
    r.add_argument("--copies", type=int, default=1)
    r.add_argument("--gap", type=float, default=0.05, help="seconds between copies")
    r.add_argument("--age-ms", type=int, default=0)
    r.add_argument("--pad", type=int, default=0)
    r.add_argument("--wait", type=float, default=1.0)
    f = sub.add_parser("flood")
    f.add_argument("--cluster", required=True)
    f.add_argument("--count", type=int, default=200000)
    f.add_argument("--seconds", type=float, default=15.0)
    args = p.parse_args()
    request(args) if args.mode == "request" else flood(args)


if __name__ == "__main__":
    main()
