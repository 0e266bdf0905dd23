#!/usr/bin/env python3
"""Test client for end-to-end tests and the demo. Every mode prints one JSON object.

burst  N requests per source address (TCP: connect, send a line, read the answer; UDP: one
       datagram of --size bytes, then a short wait to catch a second answer), sources in
       parallel batches.
       {"answers": {prio: n}, "per_source": {src: [prio, ...]}, "failures": [...],
        "duplicates": n}
hold   one long-lived TCP connection per source (repeats allowed), each sending a line every
       --interval s for --duration s and expecting an answer each time; stops early when
       --stop-file appears.  {"connections": n, "hosts": {prio: n}, "failures": [...]}
probe  UDP requests from every source in turn for --duration s. With --mark-file (its content:
       a CLOCK_REALTIME time), a source is "affected" when, after that time, --outage or more
       of its requests in a row failed (it lost its host); "recovery_s" is how long after the
       mark the last affected source was answered again. Shorter runs of failures (a 30 ms
       timeout missed on a loaded machine) are counted apart as "isolated_failures".
churn  new TCP connections at --rate per second (sources taking turns) until --duration s or
       --stop-file; each sends a line every --interval s for --lifetime s, expects every answer
       from the same host, and closes.  {"opened": n, "completed": n, "hosts": {prio: n},
        "failures": [...], "failure_count": n}
stream UDP requests "id <N>\\n" with ids 0, 1, 2 ... at --rate per second in total, the sources
       taking turns (each source one socket, so a second answer is seen), for at most
       --duration s or --count requests, stopping early when --stop-file appears (and
       creating --ready-file once the first request is out); then
       answers are awaited --drain s. With --log FILE, every request [id, source, send time]
       and every answer [id, priority, receive time] (CLOCK_REALTIME) go to FILE as one JSON
       document, for nlb_faultreport.py.  {"sent": n, "answered": n, "duplicates": n,
        "send_errors": n, "max_send_lag_s": s}
"""
import argparse
import asyncio
import ipaddress
import json
import errno
import os
import selectors
import socket
import time


def sources(spec):
    """'10.10.1.1+200' → 200 consecutive addresses; 'a,b,c' → the list."""
    if "+" in spec:
        first, count = spec.split("+")
        start = ipaddress.ip_address(first)
        return [str(start + i) for i in range(int(count))]
    return spec.split(",")


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


async def tcp_request(src, vip, port, timeout, sport=0):
    sock = socket.socket(family(vip), socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.bind((src, sport))
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (vip, port)), timeout)
        await loop.sock_sendall(sock, b"hello\n")
        data = await asyncio.wait_for(loop.sock_recv(sock, 64), timeout)
        if not data:
            raise ConnectionError("closed without an answer")
        return int(data.split()[0])
    finally:
        sock.close()


async def udp_request(src, vip, port, timeout, dup_wait, sport=0, size=6):
    sock = socket.socket(family(vip), socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind((src, sport))
    sock.connect((vip, port))
    loop = asyncio.get_running_loop()
    try:
        # Past the path MTU the kernel fragments it (UDP leaves DF clear by default).
        await loop.sock_sendall(sock, b"hello\n".ljust(size, b"x"))
        data = await asyncio.wait_for(loop.sock_recv(sock, 64), timeout)
        extra = 0
        if dup_wait:
            try:
                await asyncio.wait_for(loop.sock_recv(sock, 64), dup_wait)
                extra = 1
            except asyncio.TimeoutError:
                pass
        return int(data.split()[0]), extra
    finally:
        sock.close()


async def burst(args):
    out = {"answers": {}, "per_source": {}, "failures": [], "duplicates": 0}
    jobs = [(s, i) for i in range(args.per_source) for s in sources(args.sources)]
    sem = asyncio.Semaphore(args.parallel)

    async def one(src, i):
        # --first-port: source ports first-port + i, so that a run is reproducible
        sport = args.first_port + i if args.first_port else 0
        async with sem:
            try:
                if args.proto == "tcp":
                    prio, dup = await tcp_request(src, args.vip, args.port, args.timeout,
                                                  sport), 0
                else:
                    prio, dup = await udp_request(src, args.vip, args.port, args.timeout,
                                                  args.dup_wait, sport, args.size)
            except (OSError, asyncio.TimeoutError, ValueError) as e:
                out["failures"].append({"source": src, "error": type(e).__name__ + ": " + str(e)})
                return
            out["answers"][str(prio)] = out["answers"].get(str(prio), 0) + 1
            out["per_source"].setdefault(src, []).append(prio)
            out["duplicates"] += dup

    await asyncio.gather(*(one(s, i) for s, i in jobs))
    return out


async def conversation(src, args, more):
    """One TCP connection from src: a line, an answer, again while more() says so (at least
    once). Returns the host that answered; raises if the connection failed, closed, or was
    answered by a second host."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(family(args.vip), socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        sock.bind((src, 0))
        await asyncio.wait_for(loop.sock_connect(sock, (args.vip, args.port)), args.timeout)
        prio = None
        while True:
            await loop.sock_sendall(sock, b"ping\n")
            data = await asyncio.wait_for(loop.sock_recv(sock, 64), args.timeout)
            if not data:
                raise ConnectionError("closed by the server")
            got = int(data.split()[0])
            if prio is not None and got != prio:
                raise ConnectionError(f"answered by {prio}, then by {got}")
            prio = got
            if not more():
                return prio
            await asyncio.sleep(args.interval)
    finally:
        sock.close()


async def hold(args):
    out = {"connections": 0, "hosts": {}, "failures": []}
    deadline = time.monotonic() + args.duration

    def more():
        return time.monotonic() < deadline and not os.path.exists(args.stop_file or "/-")

    async def one(src):
        try:
            prio = await conversation(src, args, more)
            out["connections"] += 1
            out["hosts"][str(prio)] = out["hosts"].get(str(prio), 0) + 1
        except (OSError, asyncio.TimeoutError, ValueError) as e:
            out["failures"].append({"source": src, "at": round(time.time(), 3),
                                    "error": type(e).__name__ + ": " + str(e)})

    srcs = sources(args.sources)
    count = 100 if args.count is None else args.count
    await asyncio.gather(*(one(srcs[i % len(srcs)]) for i in range(count)))
    return out


async def churn(args):
    out = {"opened": 0, "completed": 0, "hosts": {}, "failures": [], "failure_count": 0}

    async def one(src):
        end = time.monotonic() + args.lifetime
        try:
            prio = await conversation(src, args, lambda: time.monotonic() < end)
            out["completed"] += 1
            out["hosts"][str(prio)] = out["hosts"].get(str(prio), 0) + 1
        except (OSError, asyncio.TimeoutError, ValueError) as e:
            out["failure_count"] += 1
            if len(out["failures"]) < 20:
                out["failures"].append({"source": src, "at": time.time(),
                                        "error": type(e).__name__ + ": " + str(e)})

    srcs = sources(args.sources)
    tasks = []
    start = time.monotonic()
    while time.monotonic() - start < args.duration and \
            not (args.stop_file and os.path.exists(args.stop_file)):
        tasks.append(asyncio.ensure_future(one(srcs[out["opened"] % len(srcs)])))
        out["opened"] += 1
        # paced by the clock: a late loop catches up instead of lowering the rate
        await asyncio.sleep(max(0.0, start + out["opened"] / args.rate - time.monotonic()))
    await asyncio.gather(*tasks)
    out["seconds"] = round(time.monotonic() - start, 3)
    return out


async def probe(args):
    """Every source probes on its own (one UDP request at a time, every --interval s), so the
    time resolution is --interval + --timeout whatever the number of sources."""
    srcs = sources(args.sources)
    results = {s: [] for s in srcs}  # per source: (send time, answered) in order
    end = time.time() + args.duration
    state = {"mark": None}

    def stopped():
        if state["mark"] is None and args.mark_file and os.path.exists(args.mark_file):
            with open(args.mark_file) as f:
                text = f.read().strip()
            if text:  # empty while the writer is still at it
                state["mark"] = float(text)
        return time.time() >= end or (args.stop_file and os.path.exists(args.stop_file))

    async def one(src):
        while not stopped():
            t = time.time()
            try:
                await udp_request(src, args.vip, args.port, args.timeout, 0)
                results[src].append((t, True))
            except (OSError, asyncio.TimeoutError, ValueError):
                results[src].append((t, False))
            await asyncio.sleep(args.interval)

    await asyncio.gather(*(one(s) for s in srcs))
    out = {"sources": len(srcs),
           "failed_requests": sum(1 for v in results.values() for _, ok in v if not ok)}
    mark = state["mark"]
    if mark is None:
        return out
    recovered = {}  # affected source -> send time of its first answer after its first outage
    unrecovered = []
    isolated = 0
    for src, seq in results.items():
        run = []  # consecutive failures after the mark
        for t, ok in seq + [(None, True)]:  # the sentinel closes a run at the end
            if t is not None and t < mark:
                continue
            if not ok:
                run.append(t)
                continue
            if len(run) >= args.outage:
                if t is None:
                    unrecovered.append(src)
                else:
                    recovered[src] = t
                break
            isolated += len(run)
            run = []
    out["affected_sources"] = len(recovered) + len(unrecovered)
    out["unrecovered_sources"] = len(unrecovered)
    out["isolated_failures"] = isolated
    out["recovery_s"] = (None if unrecovered else
                         max(recovered.values()) - mark if recovered else 0.0)
    return out


def stream(args):
    """Not asyncio: one loop, sends paced by the clock (the lag behind the planned send time
    is measured and reported), answers read whenever a socket is readable."""
    srcs = sources(args.sources)
    sel = selectors.DefaultSelector()
    socks = []
    for k, src in enumerate(srcs):
        sock = socket.socket(family(args.vip), socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind((src, 0))
        sock.connect((args.vip, args.port))
        sel.register(sock, selectors.EVENT_READ, k)
        socks.append(sock)
    limit = int(args.rate * args.duration)
    if args.count is not None:
        limit = min(limit, args.count)
    interval = 1.0 / args.rate
    requests, answers = [], []
    out = {"sent": 0, "answered": 0, "duplicates": 0, "send_errors": 0, "max_send_lag_s": 0.0}
    start = time.time()
    next_stop_check = start

    def read(timeout):
        for key, _ in sel.select(max(timeout, 0)):
            while True:
                try:
                    data = key.fileobj.recv(64)
                except BlockingIOError:
                    break
                except OSError:  # e.g. ECONNREFUSED from an ICMP error: no answer
                    continue
                t = time.time()
                parts = data.split()
                if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
                    answers.append([int(parts[1]), int(parts[0]), round(t, 6)])

    n = 0
    while n < limit:
        now = time.time()
        if now >= next_stop_check:
            if args.stop_file and os.path.exists(args.stop_file):
                break
            next_stop_check = now + 0.05
        planned = start + n * interval
        if planned > now:
            read(min(planned - now, 0.05))
            continue
        k = n % len(srcs)
        try:
            socks[k].send(b"id %d\n" % n)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ENOBUFS, errno.ECONNREFUSED):
                raise
            out["send_errors"] += 1
        t = time.time()
        out["max_send_lag_s"] = max(out["max_send_lag_s"], t - planned)
        requests.append([n, k, round(t, 6)])
        n += 1
        if n == 1 and args.ready_file:
            open(args.ready_file, "w").close()
        if n % 16 == 0:  # do not let answers queue up behind a burst of sends
            read(0)
    drain_end = time.time() + args.drain
    while time.time() < drain_end:
        read(drain_end - time.time())
    for sock in socks:
        sock.close()
    out["sent"] = n
    per_id = {}
    for rid, _, _ in answers:
        per_id[rid] = per_id.get(rid, 0) + 1
    out["answered"] = len(per_id)
    out["duplicates"] = sum(1 for v in per_id.values() if v > 1)
    out["max_send_lag_s"] = round(out["max_send_lag_s"], 6)
    if args.log:
        with open(args.log + ".tmp", "w") as f:
            json.dump({"vip": args.vip, "port": args.port, "rate": args.rate, "start": start,
                       "sources": srcs, "requests": requests, "answers": answers}, f)
        os.replace(args.log + ".tmp", args.log)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["burst", "hold", "probe", "stream", "churn"])
    p.add_argument("--vip", required=True)
    p.add_argument("--port", type=int, default=7000)
    p.add_argument("--sources", required=True, help="a.b.c.d+COUNT or a comma list")
    p.add_argument("--proto", choices=["tcp", "udp"], default="tcp")
    p.add_argument("--size", type=int, default=6, help="burst, UDP: each datagram's bytes")
    p.add_argument("--per-source", type=int, default=1)
    p.add_argument("--first-port", type=int, default=0)
    p.add_argument("--parallel", type=int, default=64)
    p.add_argument("--timeout", type=float, default=2.0)
    p.add_argument("--dup-wait", type=float, default=0.05)
    p.add_argument("--count", type=int, default=None, help="hold: connections (100); "
                   "stream: at most this many requests")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--interval", type=float, default=0.2)
    p.add_argument("--stop-file")
    p.add_argument("--mark-file")
    p.add_argument("--outage", type=int, default=3,
                   help="probe: failures in a row that mean a source lost its host")
    p.add_argument("--rate", type=float, default=1000.0, help="stream: requests per second; churn: connections per second")
    p.add_argument("--lifetime", type=float, default=1.0, help="churn: each connection's life")
    p.add_argument("--drain", type=float, default=1.0, help="stream: wait for answers after")
    p.add_argument("--log", help="stream: every request and answer, as JSON")
    p.add_argument("--ready-file", help="stream: created once the first request is sent")
    args = p.parse_args()
    if args.mode == "stream":
        print(json.dumps(stream(args)))
        return
    result = asyncio.run({"burst": burst, "hold": hold, "probe": probe, "churn": churn}[args.mode](args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
