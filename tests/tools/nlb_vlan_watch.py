#!/usr/bin/env python3
"""Counts the 0x886F frames (heartbeats) an interface receives during --duration seconds, by
the VLAN they carry, for the VLAN end-to-end test. The tag is read where the kernel leaves
it: in the frame, or beside it (PACKET_AUXDATA) once the receive path took it out.
Prints {"vlans": {"100": n, "untagged": n}}. Run it in the namespace of the interface.
"""
import argparse
import json
import socket
import struct
import time

SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 1 << 4
ETH_P_ALL = 3
AUXDATA = struct.Struct("IIIHHHH")  # struct tpacket_auxdata


def vlan_of(data, ancillary):
    """(VLAN id or None, EtherType) of a received frame."""
    vid = None
    for level, kind, value in ancillary:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(value) >= AUXDATA.size:
            status, _, _, _, _, tci, _ = AUXDATA.unpack(value[:AUXDATA.size])
            if status & TP_STATUS_VLAN_VALID:
                vid = tci & 0xFFF
    ethertype = struct.unpack("!H", data[12:14])[0]
    if ethertype in (0x8100, 0x88A8) and len(data) >= 18:
        vid = struct.unpack("!H", data[14:16])[0] & 0xFFF
        ethertype = struct.unpack("!H", data[16:18])[0]
    return vid, ethertype


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ifname", required=True)
    p.add_argument("--duration", type=float, default=2.0)
    a = p.parse_args()
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((a.ifname, 0))
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    s.settimeout(0.1)
    counts = {}
    end = time.monotonic() + a.duration
    while time.monotonic() < end:
        try:
            data, ancillary, _, addr = s.recvmsg(4096, socket.CMSG_SPACE(AUXDATA.size))
        except socket.timeout:
            continue
        if addr[2] == PACKET_OUTGOING or len(data) < 14:
            continue
        vid, ethertype = vlan_of(data, ancillary)
        if ethertype == 0x886F:
            key = "untagged" if vid is None else str(vid)
            counts[key] = counts.get(key, 0) + 1
    print(json.dumps({"vlans": counts}))


if __name__ == "__main__":
    main()
