#!/usr/bin/env python3
"""Remote-control datagrams for end-to-end tests, built independently of nlbadm (Python's hmac
and hashlib, the wire format of docs/remote.md). Every mode prints one JSON object.

request  one signed request, sent --copies times (the same datagram), then the answers that
         echo its nonce, name its reply address and carry a valid MAC are collected for
         --wait s. --age-ms shifts the timestamp into the past (stale), --pad grows the
         payload (oversize), --payload replaces the request object, --reply names another
         reply address than the socket's own (IP:PORT; hosts drop it: dropped_wrong_source),
         --version sends another protocol version (dropped_version).
         {"sent": n, "answers": {prio: n}, "payloads": {prio: answer}, "ignored": n}
flood    --count junk datagrams to the cluster IP at full speed, for at most --seconds: random
         bytes, and well-formed headers with the right cluster IP, the socket's own reply
         address and a random MAC (so that each costs the host an HMAC). {"sent": n,
         "seconds": t}
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
VERSION = 2
REQUEST, ANSWER = 1, 2
# magic, version, type, priority, reserved, cluster ip, timestamp, nonce, reply ip, reply
# port, reserved
HEADER = struct.Struct("!4sBBBB4sQ16s4sHH")
MAC_SIZE = 32
LABEL = b"nlb remote control v1"


def remote_key(path):
    text = "".join(open(path).read().split())
    return hmac.new(bytes.fromhex(text), LABEL, hashlib.sha256).digest()


def sign(key, body):
    return body + hmac.new(key, body, hashlib.sha256).digest()


def header(kind, priority, cluster, timestamp_ms, nonce, reply, version=VERSION):
    return HEADER.pack(MAGIC, version, kind, priority, 0,
                       ipaddress.IPv4Address(cluster).packed, timestamp_ms, nonce,
                       ipaddress.IPv4Address(reply[0]).packed, reply[1], 0)


def bound_socket(cluster):
    """A UDP socket bound to the address the hosts will see as its source (routing's pick
    for the cluster IP) and a port of its own: the reply address a request names."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.connect((cluster, PORT))
    source = probe.getsockname()[0]
    probe.close()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    return sock


def request(args):
    key = remote_key(args.key_file)
    payload = json.loads(args.payload) if args.payload else {"command": args.command}
    if args.pad:
        payload["pad"] = "x" * args.pad
    nonce = os.urandom(16)
    ts = int(time.time() * 1000) - args.age_ms
    sock = bound_socket(args.cluster)
    reply = sock.getsockname()
    if args.reply:
        host, port = args.reply.rsplit(":", 1)
        reply = (host, int(port))
    datagram = sign(key, header(REQUEST, args.host, args.cluster, ts, nonce, reply,
                                args.version) +
                    json.dumps(payload, separators=(",", ":")).encode())
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
        magic, _, kind, prio, _, _, _, echoed, reply_ip, reply_port, _ = HEADER.unpack_from(body)
        good = hmac.compare_digest(hmac.new(key, body, hashlib.sha256).digest(), mac)
        to_us = (str(ipaddress.IPv4Address(reply_ip)), reply_port) == reply
        if not good or magic != MAGIC or kind != ANSWER or echoed != nonce or not to_us:
            out["ignored"] += 1
            continue
        out["answers"][prio] = out["answers"].get(prio, 0) + 1
        out["payloads"][prio] = json.loads(body[HEADER.size:])
    print(json.dumps(out))


def flood(args):
    rnd = os.urandom
    sock = bound_socket(args.cluster)
    reply = sock.getsockname()
    junk = []
    for i in range(256):
        if i % 2:
            junk.append(rnd(1 + i % 200))
        else:
            body = header(REQUEST, 0, args.cluster, int(time.time() * 1000), rnd(16), reply)
            junk.append(body + b'{"command":"stop"}' + rnd(MAC_SIZE))
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
    r.add_argument("--reply", help="IP:PORT named as the reply address instead of the socket's")
    r.add_argument("--version", type=int, default=VERSION, help="the header's version byte")
    f = sub.add_parser("flood")
    f.add_argument("--cluster", required=True)
    f.add_argument("--count", type=int, default=200000)
    f.add_argument("--seconds", type=float, default=15.0)
    args = p.parse_args()
    request(args) if args.mode == "request" else flood(args)


if __name__ == "__main__":
    main()
