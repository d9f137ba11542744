#!/usr/bin/python3
"""ssmgate soak: hours of tunnel life compressed into minutes (issue 13,
item 6). Run through scripts/soak; see tests/soak/README.md for the
compression, the checks and their thresholds.

One gateway (assume-role profile), the fake AWS (API + data channel agent),
a real sshd, and a destination server of our own. N lanes (lanes.py) keep
tunnels busy with verifiable byte patterns (ledger.py) while a schedule
injects faults through the fake's control API. At the end every byte is
reconciled on both ends, the gateway's RSS and fd count are judged, and its
log is scanned."""

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.abspath(os.path.join(HERE, "..", ".."))
os.environ.setdefault("SSMGATE_SOURCE_DIR", SOURCE_DIR)
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "e2e"))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "fake"))
sys.path.insert(0, HERE)

import harness  # noqa: E402
from fakeaws import FakeAws, DEFAULT_AKID, DEFAULT_SECRET  # noqa: E402
from sshd import Sshd  # noqa: E402
import lanes  # noqa: E402
import report  # noqa: E402
import faults as faultmod  # noqa: E402

INSTANCES = ["i-05a0c0000000000%02x" % k for k in range(4)]
DOOM = "i-05a0c00000000dead"
ROLE = "arn:aws:iam::123456789012:role/soak"
LINGER_S = 5  # session_linger_ms of the soak's gateway, in seconds


def params(args):
    """Run parameters. The default compresses two hours of a busy user's
    tunnels into 25 minutes by raising every fault's frequency (see
    README.md): a recycle of every data channel socket every 30 s instead
    of 60 min, credentials that expire every 60 s instead of 1 h, and an
    injected fault every 5 s somewhere in the fleet."""
    quick = args.quick
    d = args.duration or (100 if quick else 1500)
    p = {
        "duration_s": d,
        "tunnels": args.tunnels or (20 if quick else 50),
        "seed": args.seed,
        "recycle_s": args.recycle_s or max(8, min(60, d // 50)),
        "creds_ttl_s": max(20, min(120, d // 25)),
        "fault_every_s": 3.0 if quick else max(3.0, min(10.0, d / 300.0)),
        "warmup_s": max(30, int(d * 0.2)),
        "ramp_s": 5 if quick else 15,
        "gap_s": 1.0 if quick else 3.0,
        "stall_s": 150,
        "bulk_bytes": (16 << 10, 1 << 20) if quick else (64 << 10, 4 << 20),
        "ssh_bytes": (16 << 10, 512 << 10) if quick else (64 << 10, 4 << 20),
        "life_s": (10, 40) if quick else (30, 300),
        "idle_s": (2, 8) if quick else (5, 40),
        # doom (channel_closed) at these fractions of the run
        "doom_at": [0.45] if quick else [0.25, 0.5, 0.75],
        # RSS slope limit after warm-up, KB per minute (README.md)
        "rss_slope_max_kb_min": args.rss_slope_max or (8192 if quick else 256),
        "fd_slack": 8,
        # The clients' bytes/s each way, all lanes together (README: Load).
        "client_rate": int((args.rate_mb if args.rate_mb is not None else 2.5) * 1e6),
        "quick": quick,
        "faults": not args.no_faults,
    }
    return p


class World:
    def __init__(self, p, logdir):
        self.p = p
        self.logdir = logdir
        self.stop = threading.Event()
        self.instances = INSTANCES
        self.doom = DOOM
        self._cid = 0
        self._stall_dumped = False
        self._lock = threading.Lock()
        self.gw = self.fake = self.sshd = self.dest = None
        import ledger
        self.up_budget = ledger.Budget(p["client_rate"])
        self.down_budget = ledger.Budget(p["client_rate"])

    def on_stall(self, conn):
        """The first stalled connection: the fake's and the gateway's view
        of every session at that moment, for the report."""
        with self._lock:
            if self._stall_dumped:
                return
            self._stall_dumped = True
        out = {"conn": conn.as_dict(), "t": time.time()}
        try:
            out["fake_sessions"] = {sid: {k: x.get(k) for k in (
                "target", "document", "mode", "connected", "terminated", "unacked",
                "out_seq", "expected_in", "streams", "rto", "faults", "oldest_unacked",
                "resends_of_oldest", "paused", "agent_view")} | {
                "events": x.get("events", [])[-30:],
                "stats": x.get("stats")} for sid, x in self.fake.sessions().items()
                if not x.get("terminated")}
        except Exception as e:  # noqa: BLE001
            out["fake_error"] = str(e)
        out["gateway_status"] = self.gw.status_run().stdout
        with open(os.path.join(self.logdir, "first-stall.json"), "w") as f:
            json.dump(out, f, indent=1, default=str)

    def next_conn_id(self):
        with self._lock:
            self._cid += 1
            return self._cid


def write(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def gateway_config(dest_port):
    # SSMGATE_SOAK_LOG=debug to look into a failure (a big log)
    # Idle sessions linger LINGER_S (not 30 s): the fd count is judged
    # after that, and the quick soak must stay under 3 minutes.
    cfg = "[gateway]\nprofile = soak\nlog_level = %s\nsession_linger_ms = %d\n" % (
        os.environ.get("SSMGATE_SOAK_LOG", "info"), LINGER_S * 1000)
    for k, iid in enumerate(INSTANCES):
        cfg += "[forward f%d]\nlisten = 127.0.0.1:0\ntarget = %s\nport = %d\n" % (
            k, iid, lanes.PORT)
    cfg += "[forward doom]\nlisten = 127.0.0.1:0\ntarget = %s\nport = %d\n" % (
        DOOM, lanes.PORT)
    for k, iid in enumerate(INSTANCES):
        cfg += "[route r%d]\nmatch = *.r%d.soak\nvia = %s\n" % (k, k, iid)
    return cfg


def gateway_env(fake, home):
    """The fake's environment without static keys: the gateway gets its
    credentials from an assume-role profile (AssumeRole with the static
    source keys), so credential expiry in the fake matters."""
    env = fake.env()
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        env.pop(k, None)
    os.makedirs(home, exist_ok=True)
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(home, "credentials")
    env["AWS_CONFIG_FILE"] = os.path.join(home, "config")
    write(env["AWS_SHARED_CREDENTIALS_FILE"],
          "[base]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % (
              DEFAULT_AKID, DEFAULT_SECRET))
    write(env["AWS_CONFIG_FILE"],
          "[profile soak]\nregion = us-east-1\nrole_arn = %s\nsource_profile = base\n"
          "role_session_name = soak\n" % ROLE)
    return env


class Monitor:
    """Samples the gateway's RSS and fd count every interval seconds."""

    def __init__(self, pid, t0, interval=2.0, fake=None, agent_log=None):
        self.pid, self.t0, self.interval = pid, t0, interval
        self.fake, self.agent_log = fake, agent_log
        self.samples = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def sample(self):
        try:
            rss = harness.rss_kb(self.pid)
            fds = len(os.listdir("/proc/%d/fd" % self.pid))
        except OSError:
            return None
        s = {"t": round(time.time() - self.t0, 2), "rss_kb": rss, "fds": fds}
        self.samples.append(s)
        return s

    def _run(self):
        n = 0
        while not self.stop.wait(self.interval):
            self.sample()
            n += 1
            if self.agent_log is not None and n % 5 == 0:
                self.agent_view()

    AGENT_KEYS = ("target", "connected", "unacked", "expected_in", "oldest_unacked",
                  "resends_of_oldest", "paused", "agent_view", "out_seq")

    def agent_view(self):
        """Every 10 s, the fake agent's side of each live session (where
        its processor waits, its queue, its smux pipe) into agent.jsonl:
        a stalled tunnel's timeline on the far side."""
        try:
            snap = {sid: {k: x.get(k) for k in self.AGENT_KEYS}
                    for sid, x in self.fake.sessions().items() if not x.get("terminated")}
        except Exception:  # noqa: BLE001 -- the fake may be busy; skip a beat
            return
        with open(self.agent_log, "a") as f:
            f.write(json.dumps({"t": round(time.time() - self.t0, 1), "sessions": snap}) + "\n")


def run(args):
    p = params(args)
    logdir = tempfile.mkdtemp(prefix="ssmgate-soak-")
    w = World(p, logdir)
    t_start = time.time()
    result = {"params": p, "logdir": logdir}
    import ledger
    w.dest = ledger.DestServer(p["stall_s"])
    fake_state = os.path.join(logdir, "fake")
    os.makedirs(fake_state)
    spec = {}
    w.fake = FakeAws(pace_ms=0, state_dir=fake_state)
    w.fake.start()
    try:
        w.sshd = Sshd(w.fake.state_dir, instance_id="*").start()
        try:
            for k, iid in enumerate(INSTANCES + [DOOM]):
                spec[iid] = {"name": "soak-%d" % k,
                             "ports": {str(lanes.PORT): w.dest.port, "22": w.sshd.port},
                             "hosts": {"h%d.r%d.soak" % (h, k): "127.0.0.1:%d" % w.dest.port
                                       for h in range(3)}}
            w.fake.set_instances(spec)
            if p["faults"]:
                faultmod.setup(w)
            env = gateway_env(w.fake, os.path.join(logdir, "aws"))
            w.gw = harness.Gateway(gateway_config(w.dest.port), env=env)
            result.update(soak(w, t_start))
        finally:
            if w.gw:
                w.gw.stop()
            w.sshd.stop()
    finally:
        w.fake.stop()
        w.dest.close()
    return w, result


def soak(w, t_start):
    p = w.p
    gw = w.gw
    t0 = time.time()
    mon = Monitor(gw.proc.pid, t0, fake=w.fake,
                  agent_log=os.path.join(w.logdir, "agent.jsonl"))
    base = mon.sample()
    fds_at_start = harness.fd_kinds(mon.pid)
    mon.thread.start()
    all_lanes = lanes.make_lanes(p["tunnels"], w, p["seed"])
    sched = faultmod.Schedule(w, t0)
    for lane in all_lanes:
        lane.start()
    if p["faults"]:
        sched.start()
    t_stop = t0 + p["duration_s"]
    while time.time() < t_stop:
        time.sleep(min(5, max(0.1, t_stop - time.time())))
        if gw.proc.poll() is not None:
            break
    sched.stop()
    w.stop.set()
    t_traffic_end = time.time()
    stuck = []
    for lane in all_lanes:
        lane.thread.join(max(1, t_traffic_end + p["stall_s"] + 30 - time.time()))
        if lane.thread.is_alive():
            stuck.append(lane.name())
    # The destination closes its side once the gateway passed the client's
    # end on; wait for every destination connection to finish.
    deadline = time.time() + 60
    while w.dest.open and time.time() < deadline:
        time.sleep(0.2)
    # Idle sessions linger LINGER_S for the next connection, then end:
    # after that the fd count must be back to where it started.
    deadline = time.time() + LINGER_S + 15
    end = mon.sample()
    while end and end["fds"] > base["fds"] + p["fd_slack"] and time.time() < deadline:
        time.sleep(1)
        end = mon.sample()
    mon.stop.set()
    fds_at_end = harness.fd_kinds(mon.pid) if end else {}
    fake_sessions = {}
    try:
        fake_sessions = w.fake.sessions()
        calls = w.fake.calls()
    except OSError as e:
        calls = []
        fake_sessions = {"error": str(e)}
    alive = gw.proc.poll() is None
    status_json = ""
    if alive:
        status_json = gw.status_run().stdout
    rc = gw.stop() if alive else gw.proc.returncode
    log = gw.stderr_text()
    shutil.copy(gw.errpath, os.path.join(w.logdir, "ssmgate.log"))
    with open(os.path.join(w.logdir, "sshd.log"), "w") as f:
        f.write(w.sshd.log() if hasattr(w.sshd, "log") else "")
    r = report.judge(w, all_lanes, sched, mon, base, end, fake_sessions, calls,
                     log, rc, alive, stuck, t_start, t0, t_traffic_end, status_json)
    r.update(fds_at_start=fds_at_start, fds_at_end=fds_at_end)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, help="seconds of traffic (default 1500; "
                    "--quick 100)")
    ap.add_argument("--quick", action="store_true", help="CI size: <= 3 min wall")
    ap.add_argument("--tunnels", type=int, help="lanes (default 50; --quick 20)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rate-mb", type=float,
                    help="the clients' MB/s each way, all lanes together (default 2.5; "
                    "0 = unbounded)")
    ap.add_argument("--json", help="write the result here")
    ap.add_argument("--keep", action="store_true", help="keep the logs dir")
    ap.add_argument("--no-faults", action="store_true",
                    help="traffic only (no always-on or scheduled fault): tells load "
                    "from faults apart")
    ap.add_argument("--recycle-s", type=int,
                    help="normal close of every data channel socket this long after "
                    "each attach (default: duration / 50, 8..60)")
    ap.add_argument("--rss-slope-max", type=float,
                    help="KB/min limit of the RSS slope after warm-up")
    args = ap.parse_args()
    # SIGTERM (ctest's timeout, a user's kill) unwinds like ^C, so that the
    # fake, sshd and the gateway are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
    if not os.path.exists(harness.SSMGATE_BIN or "/nonexistent"):
        sys.stderr.write("soak: SSMGATE_BIN=%r is not a binary\n" % harness.SSMGATE_BIN)
        return 2
    try:
        w, result = run(args)
    except Exception as e:  # noqa: BLE001 - the set-up failed: say why
        import traceback
        traceback.print_exc()
        sys.stderr.write("soak: set-up failed: %s\n" % e)
        return 2
    text = report.summary(result)
    print(text)
    with open(os.path.join(w.logdir, "result.json"), "w") as f:
        json.dump(result, f, indent=1)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    failed = bool(result["failures"])
    if args.keep or failed:
        print("soak: logs in %s" % w.logdir)
    else:
        shutil.rmtree(w.logdir, ignore_errors=True)
    print("soak: %s" % ("FAIL" if failed else "PASS"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
