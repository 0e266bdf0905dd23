#!/usr/bin/env python3
"""Forges one TCP SYN per given 4-tuple, as an off-path sender who knows a connection's
addresses and ports (not its sequence numbers) would: a well-formed SYN with a random sequence
number and a valid checksum, so that a host's stack that receives it answers with a SYN-ACK.
With --flags rst or fin, a reset or a FIN (with ACK) instead, as blind: the stack that holds
the connection discards it (its sequence number is outside the window), and only a dataplane
that ended its tracking on the flag alone would forget the connection.
Run it in a namespace that routes to DST (the client's own namespace will do: the source
addresses are the client's, the frames leave by a raw socket and its stack never sees them).

  nlb_spoof_syn.py --dst A.B.C.D --port P [--seed N] [--flags syn|rst|fin] SRC:SPORT...

Prints {"sent": n, "errors": n}. Needs CAP_NET_RAW.
"""
import argparse
import json
import random
import socket
import struct
import sys

from nlb_neigh_probe import checksum  # the Internet checksum, beside it in tests/tools


FLAGS = {"syn": 0x02, "rst": 0x04, "fin": 0x11}  # FIN with ACK, as stacks send it


def syn(src, sport, dst, dport, seq, flags=FLAGS["syn"]):
    """IPv4 header and a 20-byte TCP segment (SYN by default; window 64240, no options)."""
    ack = random.getrandbits(32) if flags & 0x10 else 0
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 64240, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    # total length and header checksum are the kernel's (IP_HDRINCL fills them in)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 0, random.getrandbits(16), 0x4000, 64, 6, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return ip + tcp


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dst", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--flags", choices=sorted(FLAGS), default="syn")
    p.add_argument("tuples", nargs="*", metavar="SRC:SPORT")
    args = p.parse_args()
    if args.seed is not None:
        random.seed(args.seed)
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sent = errors = 0
    for t in args.tuples:
        src, _, sport = t.rpartition(":")
        try:
            sock.sendto(syn(src, int(sport), args.dst, args.port, random.getrandbits(32),
                            FLAGS[args.flags]), (args.dst, 0))
            sent += 1
        except (OSError, ValueError) as e:
            errors += 1
            print(f"nlb_spoof_syn: {t}: {e}", file=sys.stderr)
    print(json.dumps({"sent": sent, "errors": errors}))
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
