"""The soak's judgement: reconcile the ledger of both ends, judge the
gateway's RSS and fd samples, scan its log and the fake's view of every
session, and write the human summary. Every check that fails adds a line
to result["failures"]; scripts/soak exits 1 when there is any."""

import json
import re
import time

import faults as faultmod
from harness import SANITIZER_MARKERS

# Session ends the fake may record that are not a failure: the gateway's
# TerminateSession or Flag TerminateSession, an ssh session whose sshd side
# ended, and the scheduled doom.
OK_END_REASONS = (r"^$", r"^Session terminated by TerminateSession\.$",
                  r"Exiting session with sessionId", re.escape(faultmod.DOOM_TEXT))
LOG_LINE = re.compile(r"^\S+Z (error|warn|info|debug)\s+(.*)$")
DOOM_GRACE_S = 5      # a connect this soon after a doom may still meet the old session
DOOM_END_MAX_S = 30   # "closed at once": every tunnel on it ends within this


def slope_per_min(points):
    """Least-squares slope of (t seconds, value) points, per minute."""
    n = len(points)
    if n < 2:
        return None
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    if den == 0:
        return None
    return 60.0 * sum((t - mt) * (v - mv) for t, v in points) / den


def normalize(line):
    line = re.sub(r"\b(i|mi)-[0-9a-f]+\b", "<inst>", line)
    line = re.sub(r"\b[\w.@-]+-[0-9a-f]{17}\b", "<sid>", line)
    return re.sub(r"\d+", "N", line)[:200]


def streams_of(c, srv):
    """(name, bytes sent, StreamCheck at the receiver or None)."""
    if c.path == "ssh":
        return [("echo", c.up_sent, c.down)]
    return [("up", c.up_sent, srv["up"] if srv else None),
            ("down", srv["down_sent"] if srv else 0, c.down)]


def reconcile(w, all_lanes, dooms, failures):
    conns = [c for lane in all_lanes for c in lane.conns]
    dest = dict(w.dest.conns)
    led = {"connections": len(conns), "lanes": len(all_lanes),
           "up_sent": 0, "up_received": 0, "down_sent": 0, "down_received": 0,
           "ssh_echo_bytes": 0, "lost_bytes": 0, "duplicated_bytes": 0,
           "mismatch": {"lost": 0, "duplicate": 0, "corrupt": 0},
           "tunnels_lost": 0, "expected_ends": 0, "expected_end_lost_bytes": 0,
           "doom_end_max_s": None, "by_path": {}, "by_traffic": {}}
    lost_list = []
    for c in conns:
        srv = dest.pop(c.id, None)
        bp = led["by_path"].setdefault(c.path, {"connections": 0, "bytes": 0})
        bt = led["by_traffic"].setdefault(c.traffic, {"connections": 0, "bytes": 0})
        bp["connections"] += 1
        bt["connections"] += 1
        problems = []
        tail_lost = 0
        for name, sent, chk in streams_of(c, srv):
            got = chk.offset if chk else 0
            if name == "echo":
                led["ssh_echo_bytes"] += got
            else:
                led[name + "_sent"] += sent
                led[name + "_received"] += got
            bp["bytes"] += got
            bt["bytes"] += got
            if chk and chk.error:
                kind, off, detail = chk.error
                led["mismatch"][kind] += 1
                problems.append("%s: %s at offset %d (%s)" % (name, kind, off, detail))
            elif got > sent:
                led["mismatch"]["duplicate"] += 1
                problems.append("%s: %d bytes received of %d sent" % (name, got, sent))
            elif got < sent:
                tail_lost += sent - got
        doom = None
        if c.path == "doom" and c.error:
            # The doom that ended it: the last one before its end (one it
            # lived through, on a new session, is not it).
            doom = max((t for t in dooms if c.t_open <= t + DOOM_GRACE_S
                        and c.t_end >= t - 1), default=None)
        elif c.path == "doom" and tail_lost and srv is not None and srv.get("t_end"):
            # The client had sent everything and closed, its upload still
            # queued in the gateway (paced), when the service ended the
            # session: nothing was left to tell the client; the tail died
            # with the session, as with any TCP relay.
            doom = next((t for t in dooms if c.t_open <= t + DOOM_GRACE_S and
                         abs(srv["t_end"] - t) <= 1), None)
        if doom is not None:
            led.setdefault("expected_end_list", []).append(
                {"conn": c.id, "lane": c.lane, "traffic": c.traffic, "error": c.error,
                 "after_s": round(c.t_end - doom, 2)})
            # An expected end: what arrived must be a clean prefix; the tail
            # in flight when the service ended the session may be gone.
            led["expected_ends"] += 1
            led["expected_end_lost_bytes"] += tail_lost
            took = max(0.0, c.t_end - doom)
            led["doom_end_max_s"] = max(led["doom_end_max_s"] or 0.0, round(took, 2))
            if took > DOOM_END_MAX_S:
                problems.append("ended %.1f s after its session was ended (limit %d s)"
                                % (took, DOOM_END_MAX_S))
        elif c.error:
            problems.append("broke: %s" % c.error)
        else:
            if tail_lost:
                led["lost_bytes"] += tail_lost
                problems.append("%d bytes lost" % tail_lost)
            if c.path != "ssh":
                if srv is None:
                    problems.append("the destination never saw it")
                elif srv.get("end") != "ok":
                    problems.append("destination: %s" % srv.get("end"))
                elif c.traffic in ("rounds", "burst", "churn") and \
                        srv.get("rounds") != c.rounds:
                    problems.append("rounds: client %d, destination %s" % (
                        c.rounds, srv.get("rounds")))
        for name, sent, chk in streams_of(c, srv):
            if chk and chk.offset > sent:
                led["duplicated_bytes"] += chk.offset - sent
        if problems:
            led["tunnels_lost"] += 1
            lost_list.append({"conn": c.id, "lane": c.lane, "path": c.path,
                              "traffic": c.traffic,
                              "t_open": round(c.t_open - w.t0, 1),
                              "t_end": round((c.t_end or time.time()) - w.t0, 1),
                              "problems": problems,
                              "dest": None if srv is None else {
                                  "end": srv.get("end"), "rounds": srv.get("rounds"),
                                  "up": srv["up"].offset,
                                  "down_sent": srv.get("down_sent")},
                              "client": {"up_sent": c.up_sent, "rounds": c.rounds,
                                         "down": c.down.offset}})
    for cid in sorted(dest):
        lost_list.append({"conn": cid, "problems": ["destination saw an unknown id"]})
        led["tunnels_lost"] += 1
    for h in w.dest.bad_headers:
        lost_list.append({"problems": ["destination: " + h]})
        led["mismatch"]["corrupt"] += 1
    if led["tunnels_lost"]:
        failures.append("%d tunnels lost or wrong (first: %s)" % (
            led["tunnels_lost"], lost_list[0]))
    for k, v in led["mismatch"].items():
        if v:
            failures.append("%d streams with %s data" % (v, k))
    if led["lost_bytes"] or led["duplicated_bytes"]:
        failures.append("%d bytes lost, %d duplicated" % (
            led["lost_bytes"], led["duplicated_bytes"]))
    if not dooms and w.p["doom_at"] and w.p["faults"]:
        failures.append("the doom fault never ran")
    led["broken"] = lost_list[:100]
    return led


def judge_memory(w, mon, base, end, t_traffic_end, failures):
    p = w.p
    pts = [(s["t"], s["rss_kb"]) for s in mon.samples
           if p["warmup_s"] <= s["t"] <= t_traffic_end - w.t0]
    slope = slope_per_min(pts)
    rss = [s["rss_kb"] for s in mon.samples]
    fds = [s["fds"] for s in mon.samples]
    m = {"rss_start_kb": base["rss_kb"], "rss_warm_kb": pts[0][1] if pts else None,
         "rss_end_kb": end["rss_kb"] if end else None, "rss_max_kb": max(rss or [0]),
         "rss_slope_kb_min": round(slope, 1) if slope is not None else None,
         "rss_slope_max_kb_min": p["rss_slope_max_kb_min"], "rss_slope_samples": len(pts),
         "fd_start": base["fds"], "fd_end": end["fds"] if end else None,
         "fd_max": max(fds or [0]), "fd_slack": p["fd_slack"],
         "samples": len(mon.samples)}
    if slope is None or len(pts) < 10:
        failures.append("RSS: only %d samples after the warm-up; run longer" % len(pts))
    elif slope > p["rss_slope_max_kb_min"]:
        failures.append("RSS grows %.1f KB/min after warm-up (limit %s)" % (
            slope, p["rss_slope_max_kb_min"]))
    if end is None:
        failures.append("no fd sample at the end (gateway gone?)")
    elif end["fds"] > base["fds"] + p["fd_slack"]:
        failures.append("fds: %d at the start, %d at the end after the linger" % (
            base["fds"], end["fds"]))
    return m


GAP_LINE = re.compile(r"dc \d+: (\d+) messages lost by the service came back one by "
                      r"one in ([\d.]+) s")


def scan_log(log, rc, alive, failures):
    levels = {"error": 0, "warn": 0, "info": 0, "debug": 0}
    kinds = {}
    for line in log.splitlines():
        m = LOG_LINE.match(line)
        if not m:
            continue
        levels[m.group(1)] += 1
        if m.group(1) in ("error", "warn"):
            k = m.group(1) + " " + normalize(m.group(2))
            e = kinds.setdefault(k, {"count": 0, "example": m.group(2)[:300]})
            e["count"] += 1
    if levels["error"]:
        failures.append("gateway log: %d error lines (%s)" % (levels["error"], "; ".join(
            k for k in kinds if k.startswith("error "))[:600]))
    for marker in SANITIZER_MARKERS:
        if marker in log:
            failures.append("gateway log has a sanitizer report (%s)" % marker)
    if not alive:
        failures.append("the gateway died during the soak (rc %s)" % rc)
    elif rc != 0:
        failures.append("the gateway exited %s at SIGTERM" % rc)
    top = sorted(kinds.items(), key=lambda kv: -kv[1]["count"])
    # Losses the agent's one-resend-per-100-ms recovery took >= 1 s to
    # fill (the gateway's own account; a stall inside one is the protocol's).
    gaps = [(int(k), float(t)) for k, t in GAP_LINE.findall(log)]
    return {"lines": levels, "error_kinds": dict(top[:40]),
            "slow_recoveries": {"count": len(gaps),
                                "messages": sum(k for k, _ in gaps),
                                "seconds": round(sum(t for _, t in gaps), 1),
                                "max_s": max((t for _, t in gaps), default=0.0),
                                "max_messages": max((k for k, _ in gaps), default=0)}}


def judge_fake(sessions, calls, failures):
    agg = {}
    ends = {}
    violations = []
    for sid, x in sessions.items():
        if not isinstance(x, dict):
            continue
        for k, v in x.get("stats", {}).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                agg[k] = max(agg.get(k, 0), v) if k.startswith("max_") else \
                    agg.get(k, 0) + v
        if x.get("terminated"):
            r = (x.get("end_reason") or "").strip()
            ends[r[:120]] = ends.get(r[:120], 0) + 1
            if not any(re.search(pat, r) for pat in OK_END_REASONS):
                failures.append("session %s ended: %r" % (sid, r[:200]))
        for v in x.get("violations", []):
            violations.append("%s: %s" % (sid, v))
    for k in ("bad_frames", "client_sends_while_paused"):
        if agg.get(k):
            failures.append("fake: %s = %d" % (k, agg[k]))
    # The gateway's own send times are the exact measure (gw_rate_check);
    # arrival at the fake is a cross-check for gross bursts that tolerates
    # what one busy Python loop and a loaded kernel add to arrival times.
    net = agg.get("max_client_msgs_per_s_net", 0)
    if net > RATE_LIMIT * ARRIVAL_SLACK:
        failures.append("fake: %d client messages arrived in one second, net of "
                        "the fake's own stalls (limit %d)" % (net, RATE_LIMIT))
    fast = sorted(((x.get("stats", {}).get("max_client_msgs_per_s", 0), sid)
                   for sid, x in sessions.items() if isinstance(x, dict)), reverse=True)
    over = [{"sid": sid, "target": sessions[sid].get("target"),
             "document": sessions[sid].get("document"),
             "max_client_msgs_per_s": n,
             "net_of_fake_stalls": sessions[sid]["stats"].get("max_client_msgs_per_s_net"),
             "fake_loop_stall_ms": sessions[sid]["stats"].get("max_window_loop_stall_ms"),
             "rate_violations": sessions[sid]["stats"].get("rate_violations", 0),
             "resumes": sessions[sid]["stats"].get("resumes", 0),
             "dup_from_client": sessions[sid]["stats"].get("dup_from_client", 0)}
            for n, sid in fast[:5] if n > 1000]
    api = {}
    for c in calls:
        a = api.setdefault(c.get("action") or "?", {"calls": 0, "errors": {}})
        a["calls"] += 1
        if c.get("error"):
            a["errors"][c["error"]] = a["errors"].get(c["error"], 0) + 1
    keep = ("resumes", "resume_calls", "cuts", "retransmits", "duplicated", "reordered",
            "dropped_out", "acks_dropped", "client_pauses", "client_sends_in_pause_grace",
            "client_sends_while_paused", "dup_from_client", "out_of_order_from_client",
            "bad_frames", "rate_violations", "max_client_msgs_per_s",
            "max_client_msgs_per_s_net", "smux_streams",
            "bytes_from_client", "bytes_to_client", "violations")
    return {"sessions": len(sessions), "stats": {k: agg.get(k, 0) for k in keep},
            "end_reasons": ends, "violations": violations[:50], "api": api,
            "over_1000_msgs_per_s": over}


RATE_LIMIT = 1000    # the service's messages per second per session
ARRIVAL_SLACK = 1.05  # arrival jitter the fake cannot net out (see README)


def gw_rate_check(status_json, failures):
    """The most messages one data channel sent in any one second, by the
    gateway's send times (status: gateway.max_messages_per_second)."""
    try:
        n = json.loads(status_json)["gateway"]["max_messages_per_second"]
    except (ValueError, KeyError, TypeError):
        failures.append("gateway status unreadable: no max_messages_per_second")
        return None
    if n > RATE_LIMIT:
        failures.append("gateway: %d messages sent in one second on one data "
                        "channel (limit %d)" % (n, RATE_LIMIT))
    return n


def judge(w, all_lanes, sched, mon, base, end, sessions, calls, log, rc, alive, stuck,
          t_start, t0, t_traffic_end, status_json):
    w.t0 = t0
    failures = []
    if stuck:
        failures.append("lanes still running %d s after the end: %s" % (
            w.p["stall_s"] + 30, ", ".join(stuck)))
    led = reconcile(w, all_lanes, sched.dooms, failures)
    mem = judge_memory(w, mon, base, end, t_traffic_end, failures)
    logscan = scan_log(log, rc, alive, failures)
    fk = judge_fake(sessions, calls, failures)
    fk["gateway_max_msgs_per_s"] = gw_rate_check(status_json, failures)
    return {"failures": failures, "ledger": led, "memory": mem, "log": logscan,
            "faults": {"injected": sched.counts(), "errors": sched.errors[:20],
                       "dooms": len(sched.dooms), "events": sched.events[:3000]},
            "fake": fk, "wall_s": round(time.time() - t_start, 1),
            "traffic_s": round(t_traffic_end - t0, 1),
            "rss_samples": mon.samples}


def mb(n):
    return "%.1f MB" % (n / 1e6)


def summary(r):
    p, led, mem, fk = r["params"], r["ledger"], r["memory"], r["fake"]
    inj = r["faults"]["injected"]
    out = ["ssmgate soak: %d lanes, %d s of traffic (%s), seed %d, wall %.0f s" % (
        p["tunnels"], p["duration_s"], "quick" if p["quick"] else "full", p["seed"],
        r["wall_s"]),
        "  recycle every %d s, credentials expire every %d s, a fault every %.0f s" % (
            p["recycle_s"], p["creds_ttl_s"], p["fault_every_s"]),
        "connections: %d (%s)" % (led["connections"], ", ".join(
            "%s %d" % (k, v["connections"]) for k, v in sorted(led["by_path"].items()))),
        "bytes: up %s sent / %s received, down %s sent / %s received, ssh echo %s" % (
            mb(led["up_sent"]), mb(led["up_received"]), mb(led["down_sent"]),
            mb(led["down_received"]), mb(led["ssh_echo_bytes"])),
        "ledger: lost %d B, duplicated %d B, mismatches %s, tunnels lost %d, "
        "expected ends %d (doom; %d B in flight, slowest end %s s)" % (
            led["lost_bytes"], led["duplicated_bytes"], led["mismatch"],
            led["tunnels_lost"], led["expected_ends"], led["expected_end_lost_bytes"],
            led["doom_end_max_s"]),
        "faults injected: %s" % ", ".join("%s %d" % kv for kv in sorted(inj.items())),
        "fake: %d sessions; resumes %d, cuts %d, dup %d, reordered %d, dropped %d, "
        "acks dropped %d, client pauses %d, retransmits %d, max msgs/s by arrival %d (%d net of the fake's own stalls), "
        "by the gateway's send times %s" % (
            fk["sessions"], fk["stats"]["resumes"], fk["stats"]["cuts"],
            fk["stats"]["duplicated"], fk["stats"]["reordered"], fk["stats"]["dropped_out"],
            fk["stats"]["acks_dropped"], fk["stats"]["client_pauses"],
            fk["stats"]["retransmits"], fk["stats"]["max_client_msgs_per_s"],
            fk["stats"]["max_client_msgs_per_s_net"], fk["gateway_max_msgs_per_s"]),
        "api: %s" % ", ".join("%s %d%s" % (k, v["calls"], (" (%s)" % ", ".join(
            "%s %d" % e for e in v["errors"].items())) if v["errors"] else "")
            for k, v in sorted(fk["api"].items())),
        "RSS: start %s KB, after warm-up %s KB, end %s KB, max %s KB; slope %s KB/min "
        "(limit %s, %d samples)" % (
            mem["rss_start_kb"], mem["rss_warm_kb"], mem["rss_end_kb"], mem["rss_max_kb"],
            mem["rss_slope_kb_min"], mem["rss_slope_max_kb_min"], mem["rss_slope_samples"]),
        "fds: start %s, max %s, end %s (slack %s)" % (
            mem["fd_start"], mem["fd_max"], mem["fd_end"], mem["fd_slack"]),
        "log: %s" % r["log"]["lines"],
        "losses recovered one by one (>= 1 s): %(count)d, %(messages)d messages, "
        "%(seconds)s s in all, longest %(max_s)s s (%(max_messages)d messages)"
        % r["log"]["slow_recoveries"]]
    for k, v in list(r["log"]["error_kinds"].items())[:12]:
        out.append("  %5d x %s" % (v["count"], k[:150]))
    for o in fk["over_1000_msgs_per_s"]:
        out.append("  over 1000 client msgs/s: %s" % o)
    fs, fe = r.get("fds_at_start", {}), r.get("fds_at_end", {})
    grew = {k: fe[k] - fs.get(k, 0) for k in fe if fe[k] > fs.get(k, 0)}
    if grew:
        out.append("  fds grown since the start: %s" % grew)
    if r["faults"]["errors"]:
        out.append("fault schedule errors: %s" % r["faults"]["errors"][:5])
    for f in r["failures"]:
        out.append("FAIL: " + f)
    for b in led["broken"][:10]:
        out.append("  broken: %s" % b)
    return "\n".join(out)
