"""Connect latency a user feels (issue 14, item 3): the fake AWS API and
the data channel each 40 ms of round trip away (latency.LatencyRelay), as
from a laptop to a region, and the reference -- ssh straight to the same
sshd -- over the same 40 ms. Figures: a cold ssh (no session, no key
pushed), a warm one (the next ssh to the same instance within the warm
window, the pushed key still fresh), and 20 cold connects to one instance
at once."""

import os
import subprocess
import threading
import time

from fakeaws import FakeAws
from harness import FastAgent, Gateway
from latency import LatencyRelay
from sshd import Sshd

RTT = 0.040
COLD_N = 12
PAR_N = 20


def _median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else 0.0


class RttWorld:
    def __init__(self, tmp):
        self.fake = FakeAws(pace_ms=0).start()
        self.sshd = Sshd(self.fake.state_dir, instance_id="*")
        self.sshd.start()
        self.agent = FastAgent(self.fake.state_dir, pace_ms=1)
        api_host, api_port = self.fake.api_url.split("//")[1].split(":")
        self.api = LatencyRelay(api_host, int(api_port.rstrip("/")), RTT)
        agent_port = int(self.agent.url.rsplit(":", 1)[1].split("/")[0])
        self.dc = LatencyRelay("127.0.0.1", agent_port, RTT)
        self.direct = LatencyRelay("127.0.0.1", self.sshd.port, RTT)
        self.fake.set_external_agent("wss://127.0.0.1:%d" % self.dc.port)
        self.instances = ["i-0aa%014x" % k for k in range(COLD_N * 2 + 2)]
        self.fake.set_instances({i: {"ports": {"22": self.sshd.port}}
                                 for i in self.instances})
        env = self.fake.env()
        url = "https://%s:%d" % (api_host, self.api.port)
        for k in list(env):
            if k.startswith("AWS_ENDPOINT_URL_"):
                env[k] = url
        self.gw = Gateway("[gateway]\nmessage_rate = 990\n", env=env)
        self.agent_sock = os.path.join(self.gw.runtime_dir, "agent.sock")

    def ssh(self, target, via=True, timeout=60):
        o = ["-F", "/dev/null", "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
             "-o", "BatchMode=yes", "-o", "IdentityAgent=" + self.agent_sock]
        if via:
            h, p = self.gw.socks
            o += ["-o", "ProxyCommand=nc -X 5 -x %s:%d %%r@%%h %%p" % (h, p)]
            dest = "%s@%s" % (self.sshd.user, target)
        else:
            o += ["-o", "Port=%d" % self.direct.port]
            dest = "%s@127.0.0.1" % self.sshd.user
        t0 = time.time()
        r = subprocess.run(["ssh"] + o + [dest, "true"], capture_output=True,
                           text=True, timeout=timeout)
        assert r.returncode == 0, r.stderr + self.gw.stderr_text()[-2000:]
        return time.time() - t0

    def api_calls(self):
        return len(self.fake.calls())

    def close(self):
        self.gw.stop()
        for r in (self.api, self.dc, self.direct):
            r.close()
        self.agent.stop()
        self.sshd.stop()
        self.fake.stop()


def bench_rtt(res, tmp, quick=False):
    n = 4 if quick else COLD_N
    w = RttWorld(tmp)
    try:
        # sshd's and the agent's first-connect costs; and the direct ssh
        # logs in with the key the gateway pushed (sshd takes any push of
        # the last 60 s).
        w.ssh(w.instances[-1])
        w.ssh(None, via=False)
        cold, warm, direct, calls_warm = [], [], [], []
        for k in range(n):
            inst = w.instances[k]
            cold.append(w.ssh(inst))
            c0 = w.api_calls()
            warm.append(w.ssh(inst))
            calls_warm.append(w.api_calls() - c0)
            direct.append(w.ssh(None, via=False))
        d = _median(direct)
        c, m = _median(cold), _median(warm)
        res.add("ssh true, 40 ms RTT: cold through the gateway p50", c * 1000,
                "ms", d * 1000, None, None,
                "reference: ssh straight to sshd over the same 40 ms; a new "
                "instance each time (StartSession, key push, WebSocket, "
                "handshake); overhead %.0f ms" % ((c - d) * 1000), n)
        res.add("ssh true, 40 ms RTT: warm overhead over direct p50",
                (m - d) * 1000, "ms", d * 1000, "<= 5 ms, 0 API calls",
                (m - d) * 1000 <= 5 and max(calls_warm) == 0,
                "the next ssh to the same instance: warm session, key push "
                "still fresh; API calls per warm ssh: %s; warm p50 %.0f ms"
                % (sorted(set(calls_warm)), m * 1000), n)
        # 20 cold connects to one instance at once.
        inst = w.instances[n]
        s0 = len(w.fake.calls("StartSession"))
        times, errs = [], []

        def one():
            try:
                times.append(w.ssh(inst, timeout=120))
            except AssertionError as e:  # a failed ssh is a figure too
                errs.append(str(e)[:200])
        t0 = time.time()
        th = [threading.Thread(target=one) for _ in range(PAR_N)]
        for t in th:
            t.start()
        for t in th:
            t.join(180)
        total = time.time() - t0
        starts = len(w.fake.calls("StartSession")) - s0
        res.add("20 parallel cold ssh to one instance, 40 ms RTT: total",
                total * 1000, "ms", c * 1000, "<= 2x one cold connect",
                total <= 2 * c and not errs,
                "reference: one cold connect; %d StartSession calls; %d "
                "failed%s" % (starts, len(errs),
                             (" (%s)" % errs[0]) if errs else ""), PAR_N)
    finally:
        w.close()
