#!/usr/bin/env python3
"""Sends one ARP request or IPv6 neighbour solicitation, shaped as asked, out of an interface
with an AF_PACKET raw socket, and lists who answered within a time limit: the test of "only
the dataplane answers for a VIP" (a host's kernel would answer with its own MAC). Run it in
the namespace of the interface; it needs CAP_NET_RAW.

arp --ifname IF --sender IP --target IP [--htype N] [--wait T]
    a broadcast request for TARGET, hardware type N (1 Ethernet, 6 IEEE 802, ...).
ns  --ifname IF --sender IP6 --target IP6 [--hop-by-hop] [--wait T]
    a solicitation to TARGET's solicited-node address with a source link-layer option,
    optionally behind an (empty) hop-by-hop options header.
Prints {"answers": [{"eth_src": MAC, "lladdr": MAC advertised for TARGET}, ...]}.
"""
import argparse
import ipaddress
import json
import socket
import struct
import time

ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD


def mac_text(raw):
    return ":".join(f"{b:02x}" for b in raw)


def own_mac(ifname):
    with open(f"/sys/class/net/{ifname}/address") as f:
        return bytes(int(x, 16) for x in f.read().strip().split(":"))


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def arp_request(mac, sender, target, htype):
    body = struct.pack("!HHBBH", htype, 0x0800, 6, 4, 1) + mac + sender.packed + b"\0" * 6 + target.packed
    frame = b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP) + body
    return frame.ljust(60, b"\0")


def solicitation(mac, sender, target, hop_by_hop):
    dst = ipaddress.IPv6Address(b"\xff\x02" + b"\0" * 9 + b"\x01\xff" + target.packed[13:])
    icmp = bytearray(struct.pack("!BBHI", 135, 0, 0, 0) + target.packed + b"\x01\x01" + mac)
    pseudo = sender.packed + dst.packed + struct.pack("!I3xB", len(icmp), 58)
    struct.pack_into("!H", icmp, 2, checksum(pseudo + bytes(icmp)))
    ext = b""
    nexthdr = 58
    if hop_by_hop:
        ext = bytes([58, 0, 1, 4, 0, 0, 0, 0])
        nexthdr = 0
    ip6 = struct.pack("!IHBB", 0x60000000, len(ext) + len(icmp), nexthdr, 255) + sender.packed + dst.packed
    eth = b"\x33\x33" + dst.packed[12:] + mac + struct.pack("!H", ETH_P_IPV6)
    return eth + ip6 + ext + bytes(icmp)


def arp_answer(frame, target):
    if len(frame) < 42 or struct.unpack("!H", frame[12:14])[0] != ETH_P_ARP:
        return None
    op = struct.unpack("!H", frame[20:22])[0]
    if op != 2 or frame[28:32] != target.packed:
        return None
    return frame[22:28]


def na_answer(frame, target):
    if len(frame) < 14 + 40 + 32 or struct.unpack("!H", frame[12:14])[0] != ETH_P_IPV6:
        return None
    if frame[20] != 58 or frame[54] != 136 or frame[62:78] != target.packed:
        return None
    opts = frame[78:]
    while len(opts) >= 8 and opts[1]:
        if opts[0] == 2:
            return opts[2:8]
        opts = opts[opts[1] * 8:]
    return b""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["arp", "ns"])
    ap.add_argument("--ifname", required=True)
    ap.add_argument("--sender", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--htype", type=int, default=1)
    ap.add_argument("--hop-by-hop", action="store_true")
    ap.add_argument("--wait", type=float, default=1.0)
    args = ap.parse_args()

    mac = own_mac(args.ifname)
    sender = ipaddress.ip_address(args.sender)
    target = ipaddress.ip_address(args.target)
    proto = ETH_P_ARP if args.kind == "arp" else ETH_P_IPV6
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(proto))
    sock.bind((args.ifname, proto))
    if args.kind == "arp":
        sock.send(arp_request(mac, sender, target, args.htype))
    else:
        sock.send(solicitation(mac, sender, target, args.hop_by_hop))
    answers = []
    end = time.time() + args.wait
    while (left := end - time.time()) > 0:
        sock.settimeout(left)
        try:
            frame, addr = sock.recvfrom(2048)
        except socket.timeout:
            break
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        lladdr = arp_answer(frame, target) if args.kind == "arp" else na_answer(frame, target)
        if lladdr is not None:
            answers.append({"eth_src": mac_text(frame[6:12]), "lladdr": mac_text(lladdr)})
    print(json.dumps({"answers": answers}))


if __name__ == "__main__":
    main()
