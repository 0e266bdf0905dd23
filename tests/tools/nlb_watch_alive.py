#!/usr/bin/env python3
"""Watches a dataplane's watchdog from outside its agent: the `alive` word of the pinned
program state (nlb_state.config.alive, the .bss map, mapped read-only), sampled every
millisecond until STOP_FILE exists or DURATION seconds passed. Prints a line at start and at
every change: the CLOCK_REALTIME time and the value (1: the dataplane accepts). TIMEOUT_NS,
the agent's watchdog timeout, confirms that the layout is the one read here (the word before
`alive` but one is watchdog_timeout_ns).

    nlb_watch_alive.py PIN_DIR STOP_FILE DURATION TIMEOUT_NS
"""
import ctypes
import mmap
import os
import platform
import struct
import sys
import time

SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(platform.machine())
BPF_OBJ_GET = 7
ALIVE_OFFSET = 16  # struct nlb_config: watchdog_timeout_ns, watchdog_deadline_ns, alive


def pinned_fd(path):
    libc = ctypes.CDLL(None, use_errno=True)
    name = ctypes.create_string_buffer(path.encode())
    attr = ctypes.create_string_buffer(struct.pack("=QII", ctypes.addressof(name), 0, 0), 128)
    fd = libc.syscall(SYS_BPF, BPF_OBJ_GET, attr, 128)
    if fd < 0:
        sys.exit(f"nlb_watch_alive: open {path}: {os.strerror(ctypes.get_errno())}")
    return fd


def main():
    if len(sys.argv) != 5:
        sys.exit("usage: nlb_watch_alive.py PIN_DIR STOP_FILE DURATION TIMEOUT_NS")
    if SYS_BPF is None:
        sys.exit(f"nlb_watch_alive: no bpf syscall number for {platform.machine()}")
    state = mmap.mmap(pinned_fd(os.path.join(sys.argv[1], "nlb_state")), mmap.PAGESIZE,
                      mmap.MAP_SHARED, mmap.PROT_READ)
    timeout_ns = struct.unpack_from("=Q", state, 0)[0]
    if timeout_ns != int(sys.argv[4]):
        sys.exit(f"nlb_watch_alive: watchdog_timeout_ns reads {timeout_ns}, expected "
                 f"{sys.argv[4]}: not the layout this reads")
    stop_file = sys.argv[2]
    deadline = time.monotonic() + float(sys.argv[3])
    last = None
    n = 0
    while time.monotonic() < deadline:
        alive = struct.unpack_from("=I", state, ALIVE_OFFSET)[0]
        if alive != last:
            print(f"{time.time():.6f} {alive}", flush=True)
            last = alive
        n += 1
        if n % 100 == 0 and os.path.exists(stop_file):
            break
        time.sleep(0.001)


if __name__ == "__main__":
    main()
