#!/usr/bin/env python3
"""Records and replays nlb's 0x886F frames (heartbeats, map chunks) on one interface, with an
AF_PACKET raw socket, as DESIGN.md §7 describes for fault injection. The file is a classic
pcap (Ethernet link type), so `tcpdump -r FILE` reads it too. Run it in the namespace of the
interface (e.g. a bystander on the test bridge); it needs CAP_NET_RAW.

record  --ifname IF --out FILE [--count N] [--duration T] [--ethertype 0x886f]
        frames of that EtherType received on IF (promiscuous while recording, so frames to
        a unicast cluster MAC count too), at most N frames and T seconds.
        Prints {"frames": n, "seconds": s, "senders": {src MAC: n}}.
replay  --ifname IF --file FILE [--pace | --rate R] [--loop-for T] [--src-mac MAC|own]
        [--dst-mac MAC] [--max-duration T]
        sends every frame of FILE out of IF: with the recorded gaps (--pace, the default), or
        R per second; with --loop-for, the file again and again until T seconds passed;
        optionally with the source MAC rewritten (own: IF's, so the bridge does
        not learn the recorded hosts' MACs at this port) or the destination; the payload is
        sent byte for byte. At most --max-duration seconds.
        Prints {"frames": n, "sent": n, "errors": n, "seconds": s}.
"""
import argparse
import json
import socket
import struct
import sys
import time

SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PCAP_HEADER = struct.Struct("<IHHiIII")
PCAP_RECORD = struct.Struct("<IIII")


def mac_bytes(text):
    return bytes(int(x, 16) for x in text.split(":"))


def mac_text(raw):
    return ":".join(f"{b:02x}" for b in raw)


def own_mac(ifname):
    with open(f"/sys/class/net/{ifname}/address") as f:
        return mac_bytes(f.read().strip())


def record(args):
    ethertype = int(args.ethertype, 0)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
    sock.bind((args.ifname, ethertype))
    ifindex = socket.if_nametoindex(args.ifname)
    # struct packet_mreq { int ifindex; unsigned short type, alen; unsigned char address[8]; }
    sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP,
                    struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b""))
    start = time.time()
    end = start + args.duration
    frames = []
    while len(frames) < args.count:
        left = end - time.time()
        if left <= 0:
            break
        sock.settimeout(min(left, 0.2))
        try:
            data, addr = sock.recvfrom(65535)
        except socket.timeout:
            continue
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        frames.append((time.time(), data))
    sock.close()
    senders = {}
    with open(args.out, "wb") as f:
        f.write(PCAP_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for t, data in frames:
            sec = int(t)
            f.write(PCAP_RECORD.pack(sec, int((t - sec) * 1e6), len(data), len(data)))
            f.write(data)
            src = mac_text(data[6:12])
            senders[src] = senders.get(src, 0) + 1
    return {"frames": len(frames), "seconds": round(time.time() - start, 3), "senders": senders}


def read_pcap(path):
    with open(path, "rb") as f:
        raw = f.read()
    magic = struct.unpack_from("<I", raw)[0]
    if magic != 0xA1B2C3D4:
        raise SystemExit(f"{path}: not a microsecond pcap file")
    pos = PCAP_HEADER.size
    frames = []
    while pos + PCAP_RECORD.size <= len(raw):
        sec, usec, caplen, _ = PCAP_RECORD.unpack_from(raw, pos)
        pos += PCAP_RECORD.size
        frames.append((sec + usec / 1e6, raw[pos:pos + caplen]))
        pos += caplen
    return frames


def replay(args):
    frames = read_pcap(args.file)
    src = None
    if args.src_mac:
        src = own_mac(args.ifname) if args.src_mac == "own" else mac_bytes(args.src_mac)
    dst = mac_bytes(args.dst_mac) if args.dst_mac else None
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((args.ifname, 0))
    start = time.time()
    out = {"frames": len(frames), "sent": 0, "errors": 0, "loops": 0}
    first = frames[0][0] if frames else 0.0
    span = (frames[-1][0] - first + 0.2 if not args.rate else len(frames) / args.rate) \
        if frames else 0.0
    limit = min(args.max_duration, args.loop_for) if args.loop_for else args.max_duration
    sequence = ((n, k, t, data) for n in range(10**6 if args.loop_for else 1)
                for k, (t, data) in enumerate(frames))
    for n, k, t, data in sequence:
        due = start + n * span + (t - first if not args.rate else k / args.rate)
        now = time.time()
        if due - start >= limit or now - start >= limit:
            break
        if due > now:
            time.sleep(due - now)
        out["loops"] = n + 1
        frame = bytearray(data)
        if dst:
            frame[0:6] = dst
        if src:
            frame[6:12] = src
        try:
            sock.send(bytes(frame))
            out["sent"] += 1
        except OSError:
            out["errors"] += 1
    sock.close()
    out["seconds"] = round(time.time() - start, 3)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["record", "replay"])
    p.add_argument("--ifname", required=True)
    p.add_argument("--out", help="record: the pcap file to write")
    p.add_argument("--file", help="replay: the pcap file to send")
    p.add_argument("--count", type=int, default=100000)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--ethertype", default="0x886f")
    p.add_argument("--pace", action="store_true", help="replay with the recorded gaps (default)")
    p.add_argument("--rate", type=float, default=0.0, help="replay: frames per second instead")
    p.add_argument("--loop-for", type=float, default=0.0,
                   help="replay: repeat the file until this many seconds passed")
    p.add_argument("--src-mac")
    p.add_argument("--dst-mac")
    p.add_argument("--max-duration", type=float, default=30.0)
    args = p.parse_args()
    if args.mode == "record" and not args.out or args.mode == "replay" and not args.file:
        p.error("record needs --out, replay needs --file")
    print(json.dumps(record(args) if args.mode == "record" else replay(args)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
