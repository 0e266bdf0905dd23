#!/usr/bin/env python3
"""nlb_faultreport.py on made-up runs: a request lost after an event's window fails the run,
unless no host explains it (same server before and after, that host's agent quiet within 1 s,
no other server logging it, the test bed having dropped at least as many frames); then it is
put down to the bed, and said so."""
import json
import os
import subprocess
import sys
import tempfile

REPORT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nlb_faultreport.py")
T0 = 1000.0


def run(lost_at, before, after, owner_events=(), testbed_drops=5, logged_by=None,
        window_losses=5):
    """A stream of 2,000 requests 10 ms apart from two sources taking turns, source 0 served by
    `before` until `lost_at` and by `after` from then on, source 1 by host 3; the request of
    source 0 sent at `lost_at` (s after T0) lost, and source 1's first five after the one
    event, at T0 + 1 s (so that the event's losses are not one in a thousand). `logged_by`: the
    host whose server logs the lost request (it got it; the answer went missing);
    `testbed_drops`: the frames the harness's extra line says the bed dropped (None: no line);
    `window_losses`: how many of source 1's the event loses (5 by default)."""
    with tempfile.TemporaryDirectory() as d:
        requests, answers, served = [], [], {1: [], 2: [], 3: []}
        lost_rid = None
        for rid in range(2000):
            src, t = rid % 2, T0 + rid * 0.01
            requests.append([rid, src, t])
            host = 3 if src else (before if t < T0 + lost_at else after)
            if src == 1 and T0 + 1.0 <= t < T0 + 1.0 + window_losses * 0.02:
                continue  # the event's own losses, inside its window: more than one in 1,000
            if src == 0 and lost_rid is None and t >= T0 + lost_at - 1e-9:
                lost_rid = rid
                if logged_by is not None:
                    served[logged_by].append(f"{rid} {logged_by} {t}")
                continue
            answers.append([rid, host, t + 0.001])
            served[host].append(f"{rid} {host} {t}")
        with open(os.path.join(d, "stream.json"), "w") as f:
            json.dump({"sources": ["10.0.0.1", "10.0.0.2"], "requests": requests,
                       "answers": answers}, f)
        args = [sys.executable, REPORT, "--fault", "t", "--client", os.path.join(d, "stream.json"),
                "--event", f"e={T0 + 1.0}", "--bound", "0.7", "--slack", "0.3",
                "--agent-log-dir", d,
                "--out", os.path.join(d, "out"), "--extra", os.path.join(d, "extra")]
        with open(os.path.join(d, "extra"), "w") as f:
            if testbed_drops is not None:
                f.write(f'testbed_drops\t{{"backlog": {testbed_drops}, "links": {{}}, '
                        f'"total": {testbed_drops}}}\n')
        for h, lines in served.items():
            path = os.path.join(d, f"served{h}.log")
            with open(path, "w") as f:
                f.write("\n".join(lines) + "\n")
            args += ["--server-log", path]
        with open(os.path.join(d, f"h{before}.log"), "w") as f:
            f.write(json.dumps({"event": "started", "ts": T0}) + "\n")
            for name, at in owner_events:
                f.write(json.dumps({"event": name, "ts": T0 + at, "host": before}) + "\n")
        out = subprocess.run(args, capture_output=True, text=True)
        return json.loads(out.stdout.strip().splitlines()[-1])


def check(what, cond):
    if not cond:
        print(f"FAIL: {what}")
        sys.exit(1)
    print(f"ok: {what}")


r = run(8.0, 1, 1)
check("a late loss no host explains is put down to the test bed",
      r["pass"] and r["events"][0]["late_lost_to_testbed"] == 1 and
      r["events"][0]["late_lost"][0]["served_before"] == 1)
r = run(8.0, 1, 1, owner_events=[("stalled", 7.5)])
check("one whose owner stalled within a second fails",
      not r["pass"] and r["events"][0]["late_lost"][0]["owner_events_near"] == 1)
r = run(8.0, 1, 1, owner_events=[("stalled", 5.0)])
check("a stall seconds away does not explain it", r["pass"])
r = run(8.0, 1, 2)
check("one whose source moved to another host fails", not r["pass"])
r = run(8.0, 1, 1, testbed_drops=0)
check("with no frame the test bed dropped, it fails", not r["pass"])
r = run(8.0, 1, 1, logged_by=1)
check("one its owner's server logged is the bed's (the answer went missing on its way back)",
      r["pass"] and r["events"][0]["late_lost_to_testbed"] == 1 and
      r["events"][0]["late_lost"][0]["logged_by"] == ["1"])
r = run(8.0, 1, 1, logged_by=2)
check("one another host's server logged fails", not r["pass"])
r = run(8.0, 1, 1, owner_events=[("stalled", 7.5)], logged_by=1)
check("one its owner logged fails if the owner stalled within a second", not r["pass"])
r = run(8.0, 1, 1, testbed_drops=None)
check("with no count of the bed's drops, it fails", not r["pass"])
r = run(8.0, 1, 1, testbed_drops=1)
check("the judge goes by the bed's count the harness reported (one drop, one loss)",
      r["pass"] and r["events"][0]["late_lost_to_testbed"] == 1 and
      r["testbed_drops"]["total"] == 1)
r = run(1.5, 1, 2)
check("losses inside the window stay allowed", r["pass"] and "late_lost" not in r["events"][0])
r = run(1.5, 1, 2, window_losses=1)
check("a lenient event's losses inside its window are its own, not put down to the bed",
      r["pass"] and r["events"][0]["lost"] == 2 and "lost_to_testbed" not in r["events"][0])
