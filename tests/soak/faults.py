"""The soak's fault schedule, all through the fake's control API
(tests/fake/README.md).

Always on (set once before the gateway starts):
  - every data channel socket gets the service's normal close (1000)
    recycle_s after each attach (`close_after_s`, the "hourly" close);
  - assumed-role credentials expire after creds_ttl_s (`temp_creds_ttl_s`)
    and StartSession / SendSSHPublicKey are rate limited like the account
    limits (`api_rate`); older fakes ignore both keys;
  - MGS's pause grace is 1 s instead of 200 ms, so that a loaded machine's
    scheduling delay is not read as a send while paused.

Every fault_every_s one more fault, kinds in a seeded rotation (each kind
once per cycle), on a live session chosen at random:
  recycle (verb close 1000), cut (verb cut), cut_after_bytes, pause (verbs
  pause, start), pause_after_messages, pause_client (MGS flow control),
  dup / reorder / loss / ack_loss windows, and API faults (throttled
  StartSession, ResumeSession, SendSSHPublicKey, AssumeRole; a 500 on
  ResumeSession), each added only while none of its kind is pending.
At doom_at fractions of the run the doom instance's session is ended by
the service (`channel_closed`): the one expected end of tunnels."""

import random
import threading
import time

WINDOWS = {
    "dup": {"duplicate_every": 11},
    "reorder": {"reorder_every": 7},
    "loss": {"drop_out_every": 53},
    "ack_loss": {"drop_ack_every": 17},
    "pause_client": {"pause_client_every_bytes": 256 << 10, "pause_client_ms": 300},
}
OFF = {"duplicate_every": 0, "reorder_every": 0, "drop_out_every": 0,
       "drop_ack_every": 0, "pause_client_every_bytes": 0}
API = {
    "throttle_start": {"action": "StartSession", "kind": "throttle", "count": 2},
    "throttle_resume": {"action": "ResumeSession", "kind": "throttle", "count": 2},
    "throttle_push": {"action": "SendSSHPublicKey", "kind": "throttle", "count": 2},
    "throttle_sts": {"action": "AssumeRole", "kind": "throttle", "count": 2},
    "error500_resume": {"action": "ResumeSession", "kind": "error500", "count": 1},
}
SESSION_KINDS = ["recycle", "cut", "cut_after_bytes", "pause", "pause_after_messages"] + \
    sorted(WINDOWS)
KINDS = SESSION_KINDS + sorted(API)
DOOM_TEXT = "Soak: the service ended this session on schedule."


def setup(w):
    p = w.p
    w.fake.set_faults({"dc": {"close_after_s": p["recycle_s"], "close_count": 10 ** 6,
                              "pause_grace_ms": 1000}})
    w.fake._ctl("POST", "/_fake/config", {
        "temp_creds_ttl_s": p["creds_ttl_s"],
        "api_rate": {"StartSession": 3, "SendSSHPublicKey": 5}})


class Schedule:
    def __init__(self, w, t0):
        self.w = w
        self.t0 = t0
        self.rng = random.Random(w.p["seed"] * 7919 + 1)
        self.events = []        # every injection
        self.dooms = []         # times the doom session was ended
        self.errors = []
        self._stop = threading.Event()
        self._timers = []
        self._cache = ({}, 0.0)
        self._bytes = {}        # sid -> bytes both ways at the last refresh
        self._active = []       # sids that moved bytes between the last two refreshes
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self._stop.set()
        if self.thread.ident is not None:
            self.thread.join(30)
        for t in self._timers:
            t.cancel()

    def _record(self, kind, sid=None, **detail):
        e = {"t": round(time.time() - self.t0, 2), "kind": kind}
        if sid:
            e["sid"] = sid
        e.update(detail)
        self.events.append(e)

    def _sessions(self, fresh=False):
        """The fake's session list, refreshed at most every 15 s: it grows
        with every ssh session and costs the fake to describe."""
        sess, when = self._cache
        if fresh or time.time() - when > 15:
            sess = self.w.fake.sessions()
            self._cache = (sess, time.time())
            now = {sid: x["stats"].get("bytes_to_client", 0) +
                   x["stats"].get("bytes_from_client", 0) for sid, x in sess.items()}
            self._active = sorted(sid for sid, n in now.items()
                                  if n > self._bytes.get(sid, 0) and
                                  not sess[sid].get("terminated"))
            self._bytes = now
        return sess

    def _live(self, target=None):
        out = [sid for sid, x in self._sessions().items()
               if not x.get("terminated") and (target is None or x.get("target") == target)]
        return sorted(out)

    def _run(self):
        p = self.w.p
        every = p["fault_every_s"]
        dooms = sorted(self.t0 + f * p["duration_s"] for f in p["doom_at"])
        cycle = []
        nxt = self.t0 + every + p["ramp_s"]
        while not self._stop.is_set():
            now = time.time()
            if dooms and now >= dooms[0]:
                dooms.pop(0)
                self._guard(self._doom)
            if now >= nxt:
                nxt += every
                if not cycle:
                    cycle = list(KINDS)
                    self.rng.shuffle(cycle)
                self._guard(self._inject, cycle.pop())
            self._stop.wait(0.2)

    def _guard(self, fn, *a):
        try:
            fn(*a)
        except Exception as e:  # noqa: BLE001 - the fake said no: record, go on
            self.errors.append("%s: %s" % (getattr(fn, "__name__", fn), e))

    def _doom(self):
        for _ in range(20):
            live = self._live(self.w.doom) if self._sessions(fresh=True) is not None else []
            if live:
                for sid in live:
                    self.w.fake.session_action(sid, "channel_closed", {"output": DOOM_TEXT})
                    self._record("doom", sid)
                self.dooms.append(time.time())
                return
            if self._stop.wait(1.0):
                return
        self._record("doom_skipped")

    def _inject(self, kind):
        fake = self.w.fake
        if kind in API:
            pending = [r for r in fake._ctl("GET", "/_fake/faults")["api"]
                       if r.get("action") == API[kind]["action"] and r.get("count", 1) != 0]
            if pending:
                self._record(kind + "_skipped", reason="one still pending")
                return
            fake.set_faults({"api_add": [dict(API[kind])]})
            self._record(kind)
            return
        live = self._live()
        # Faults on a session that carries traffic show; an idle one would
        # only count them.
        active = [sid for sid in self._active if sid in live]
        live = active or live
        if not live:
            self._record(kind + "_skipped", reason="no live session")
            return
        sid = self.rng.choice(live)
        try:
            if kind == "recycle":
                fake.session_action(sid, "close", {"code": 1000})
            elif kind == "cut":
                fake.session_action(sid, "cut")
            elif kind == "cut_after_bytes":
                fake.session_action(sid, "faults", {
                    "cut_after_bytes": self.rng.randint(64 << 10, 2 << 20), "cut_count": 1})
            elif kind == "pause":
                fake.session_action(sid, "pause")
                self._later(self.rng.uniform(0.3, 2.0), fake.session_action, sid, "start")
            elif kind == "pause_after_messages":
                r = fake.session_action(sid, "faults", {})
                n = r["session"]["stats"].get("stream_msgs_to_client", 0)
                fake.session_action(sid, "faults", {
                    "pause_after_messages": n + self.rng.randint(20, 400),
                    "start_after_ms": self.rng.randint(100, 1500)})
            elif kind in WINDOWS:
                fake.session_action(sid, "faults", WINDOWS[kind])
                off = {k: OFF[k] for k in WINDOWS[kind] if k in OFF}
                self._later(2 * self.w.p["fault_every_s"], fake.session_action, sid,
                            "faults", off)
        except OSError as e:  # the session went away meanwhile (404)
            self._record(kind + "_skipped", sid, reason=str(e)[:100])
            return
        self._record(kind, sid)

    def _later(self, delay, fn, *a):
        def go():
            try:
                fn(*a)
            except OSError:
                pass
        t = threading.Timer(delay, go)
        t.daemon = True
        self._timers.append(t)
        t.start()

    def counts(self):
        out = {}
        for e in self.events:
            out[e["kind"]] = out.get(e["kind"], 0) + 1
        return out
