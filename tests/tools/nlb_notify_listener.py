#!/usr/bin/env python3
"""Stands in for systemd's notification socket: binds a Unix datagram socket at PATH and
appends each message (newlines as '|') as one line to OUT, followed by a tab and the time it
arrived (CLOCK_REALTIME, seconds: the clock of the agent's JSON log's "ts"), until --duration s
have passed."""
import argparse
import os
import socket
import time

p = argparse.ArgumentParser()
p.add_argument("path")
p.add_argument("out")
p.add_argument("--duration", type=float, default=120)
a = p.parse_args()
if os.path.exists(a.path):
    os.unlink(a.path)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(a.path)
deadline = time.monotonic() + a.duration
with open(a.out, "a", buffering=1) as out:
    while time.monotonic() < deadline:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            msg = s.recv(4096)
        except socket.timeout:
            break
        at = time.time()
        text = msg.decode(errors="replace").replace("\n", "|").replace("\t", " ")
        out.write(f"{text}\t{at:.6f}\n")
