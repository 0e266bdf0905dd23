#!/usr/bin/env python3
"""Queries and bounded polls of the agents of a fault test, in one process each (a poll that
started python per query would be slower than the periods it watches). Host I's agent is
`$NLBADM --socket $TOPO_DIR/hI.sock`. Every wait is bounded by its TIMEOUT and polls every
0.1 s; exit status 0 when the condition held, 1 when the time ran out.

  q I EXPR [COMMAND]                  EXPR over `nlbadm --json COMMAND` (query); "none" if
                                      the agent does not answer
  wait-converged MEMBERS TIMEOUT I..  every host I converged with exactly MEMBERS ("1,2,3")
  wait-stable MEMBERS S TIMEOUT I..   converged as MEMBERS, no convergence completed for S s
  wait-state I STATE TIMEOUT          host I in STATE
  wait-answering I TIMEOUT            host I's agent answers on its socket
  states I DURATION [PID]             host I's states over DURATION s (or while PID lives,
                                      then 2 s more), consecutive repeats collapsed: a,b,c
  convergences I..                    the hosts' "convergences" counters, space-separated
  values EXPR COMMAND I..             EXPR over each host's `nlbadm --json COMMAND`,
                                      space-separated ("none" where an agent does not answer)
  summary I..                         {"I": "state [members]", ...} as one JSON object
  cpu SECONDS PID..                   "USER SYSTEM": CPU time of each PID over the next
                                      SECONDS, mean % of one core, over the time that really
                                      passed between the two reads (on a loaded bed a read
                                      of many processes by one shell tool each took seconds)
"""
import json
import os
import subprocess
import sys
import time


def nlbadm(i, command="query"):
    """The agent's JSON answer, or None. nlbadm exits non-zero for a refused host: its JSON
    still counts."""
    try:
        r = subprocess.run([os.environ["NLBADM"], "--socket",
                            os.path.join(os.environ["TOPO_DIR"], f"h{i}.sock"), "--json",
                            command], capture_output=True, timeout=2, text=True)
        return json.loads(r.stdout)
    except (subprocess.TimeoutExpired, ValueError):
        return None


def field(i, expr, command="query"):
    """EXPR over host I's answer to COMMAND, as text; "none" if it does not answer or lacks
    what EXPR reads."""
    d = nlbadm(i, command)
    try:
        return str(eval(expr, {"json": json}, {"d": d})) if d is not None else "none"
    except (KeyError, TypeError, IndexError):
        return "none"


def state(i):
    d = nlbadm(i)
    return d["host"]["state"] if d else "none"


def converged_as(members, hosts):
    for i in hosts:
        d = nlbadm(i)
        if not d or d["host"]["state"] != "converged" or sorted(d["cluster"]["members"]) != members:
            return False
        # Settled: every member holds its share (older agents lack the key).
        if not d["cluster"].get("converged", True):
            return False
    return True


def poll(timeout, condition):
    end = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(0.1)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A child that exited but was not reaped yet still answers kill(0): look at its state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def cpu_ticks(pids):
    """Summed utime and stime of PIDS, in clock ticks (a process gone counts nothing)."""
    user = system = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user, system = user + int(fields[11]), system + int(fields[12])
    return user, system


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "q":
        print(field(args[0], args[1], *args[2:3]))
    elif cmd == "wait-converged":
        members = sorted(int(m) for m in args[0].split(","))
        sys.exit(0 if poll(float(args[1]), lambda: converged_as(members, args[2:])) else 1)
    elif cmd == "wait-stable":
        members = sorted(int(m) for m in args[0].split(","))
        quiet, hosts = float(args[1]), args[3:]
        last = {"counts": None, "since": time.monotonic()}

        def stable():
            counts = []
            for i in hosts:
                d = nlbadm(i)
                st = nlbadm(i, "stats")
                if not d or not st or d["host"]["state"] != "converged" or \
                        sorted(d["cluster"]["members"]) != members:
                    last["counts"] = None
                    return False
                counts.append(st["convergences"])
            if counts != last["counts"]:
                last["counts"], last["since"] = counts, time.monotonic()
            return time.monotonic() - last["since"] >= quiet

        sys.exit(0 if poll(float(args[2]), stable) else 1)
    elif cmd == "wait-state":
        sys.exit(0 if poll(float(args[2]), lambda: state(args[0]) == args[1]) else 1)
    elif cmd == "wait-answering":
        sys.exit(0 if poll(float(args[1]), lambda: nlbadm(args[0]) is not None) else 1)
    elif cmd == "states":
        end = time.monotonic() + float(args[1])
        pid = int(args[2]) if len(args) > 2 else None
        seen = []
        tail_end = None
        while time.monotonic() < end and (tail_end is None or time.monotonic() < tail_end):
            s = state(args[0])
            if not seen or seen[-1] != s:
                seen.append(s)
            if pid is not None and tail_end is None and not alive(pid):
                tail_end = time.monotonic() + 2.0
            time.sleep(0.1)
        print(",".join(seen))
    elif cmd == "convergences":
        out = []
        for i in args:
            d = nlbadm(i, "stats")
            out.append(str(d["convergences"]) if d else "-1")
        print(" ".join(out))
    elif cmd == "values":
        print(" ".join(field(i, args[0], args[1]) for i in args[2:]))
    elif cmd == "summary":
        out = {}
        for i in args:
            d = nlbadm(i)
            out[i] = f'{d["host"]["state"]} {sorted(d["cluster"]["members"])}' if d else "none"
        print(json.dumps(out))
    elif cmd == "cpu":
        pids = [int(p) for p in args[1:]]
        t0, (u0, s0) = time.monotonic(), cpu_ticks(pids)
        time.sleep(float(args[0]))
        t1, (u1, s1) = time.monotonic(), cpu_ticks(pids)
        per = 100 / os.sysconf("SC_CLK_TCK") / (t1 - t0) / len(pids)
        print(f"{(u1 - u0) * per:.4f} {(s1 - s0) * per:.4f}")
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
