"""ssmgate benchmarks (run by scripts/bench). Every figure is measured in
the same run as its reference and reported as value, reference and ratio,
the median of several runs; bench-results.json gets the lot.

The agent side is tests/fastagent (C) unless a figure needs the Python
fake's behaviour (none does today); both agents' CPU is reported so the
table says which side saturated. Everything is on loopback."""

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SOURCE, "tests", "e2e"))
sys.path.insert(0, os.path.join(SOURCE, "tests", "fake"))

import harness  # noqa: E402
from harness import EchoServer, FastAgent, Gateway  # noqa: E402
from fakeaws import FakeAws  # noqa: E402
from sshd import Sshd  # noqa: E402
import bench_rtt  # noqa: E402

INST = "i-0be0000000000000b"
# Port 22 of this one is an echo server: every connection to it is its own
# stream-mode session (AWS-StartSSHSession, ssh_document = ssh in the
# World's config), never a shared smux session.
STREAM_INST = "i-0be0000000000000c"
MB = 1 << 20
TICK = os.sysconf("SC_CLK_TCK")


# ---- measuring ----------------------------------------------------------

def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


class Cpu:
    """CPU seconds of some processes over a block (with wall time)."""

    def __init__(self, **pids):
        self.pids = pids

    def __enter__(self):
        self.t0 = time.time()
        self.c0 = {k: cpu_s(p) for k, p in self.pids.items()}
        return self

    def __exit__(self, *exc):
        self.wall = time.time() - self.t0
        self.used = {k: cpu_s(p) - self.c0[k] for k, p in self.pids.items()}

    def saturated(self):
        """The process that used the most of one core, if >= 90 %."""
        k = max(self.used, key=self.used.get)
        share = self.used[k] / self.wall if self.wall else 0
        return "%s (%.0f%% of a core)" % (k, share * 100) if share >= 0.9 \
            else "none (max %s %.0f%%)" % (k, share * 100)


class Results:
    def __init__(self):
        self.rows = []

    def add(self, name, value, unit, reference=None, target=None, met=None,
            notes="", runs=1):
        ratio = (value / reference) if reference else None
        self.rows.append({"name": name, "value": round(value, 4),
                          "unit": unit,
                          "reference": None if reference is None
                          else round(reference, 4),
                          "ratio": None if ratio is None else round(ratio, 4),
                          "target": target, "met": met, "notes": notes,
                          "runs": runs})
        r = self.rows[-1]
        print("  %-44s %10.3f %-8s ref %-10s ratio %-7s %s" % (
            name, r["value"], unit,
            "-" if reference is None else "%.3f" % reference,
            "-" if ratio is None else "%.3f" % ratio,
            "" if met is None else ("MET" if met else "NOT MET")),
            flush=True)

    def table(self):
        lines = ["| figure | value | unit | reference | ratio | target | met |",
                 "|---|---|---|---|---|---|---|"]
        for r in self.rows:
            lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                r["name"], r["value"], r["unit"],
                "" if r["reference"] is None else r["reference"],
                "" if r["ratio"] is None else r["ratio"],
                r["target"] or "", "" if r["met"] is None else
                ("yes" if r["met"] else "no")))
        return "\n".join(lines)


def cpu_ticks():
    """(steal, total) jiffies of all CPUs: on a VM the hypervisor's steal
    slows everything, references included, and makes runs disagree."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[7], sum(v[:8])


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "ram_mb": mem, "python": platform.python_version()}


# ---- traffic helpers ----------------------------------------------------

class Sink(harness.ThreadedServer):
    """Counts bytes of each connection; a connection whose first byte is
    'S' gets `size` bytes sent instead (a source)."""

    def __init__(self, size):
        self.size = size
        super().__init__(self._one, backlog=256)

    def _one(self, c):
        first = c.recv(1)
        if first == b"S":
            buf = b"\0" * MB
            left = self.size
            try:
                while left > 0:
                    left -= c.send(buf[:min(left, MB)])
            except (ConnectionResetError, BrokenPipeError):
                pass  # a reader that had all it wanted (the spread window)
            c.close()
            return
        got = len(first)
        while got < self.size:
            d = c.recv(4 * MB)
            if not d:
                break
            got += len(d)
        c.sendall(b"k")  # tells the sender everything arrived
        c.close()


def push(addr, size):
    """Sends size bytes; returns when the sink confirmed them all."""
    s = socket.create_connection(addr)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b"\0" * MB
    left = size
    while left > 0:
        left -= s.send(buf[:min(left, MB)])
    ok = s.recv(1) == b"k"
    s.close()
    assert ok, "the sink did not confirm"


def pull(addr, size):
    s = socket.create_connection(addr)
    s.sendall(b"S")
    got = 0
    while got < size:
        d = s.recv(4 * MB)
        if not d:
            break
        got += len(d)
    s.close()
    assert got == size, "short read %d of %d" % (got, size)


def socks_connect(gw, host, port, timeout=60):
    s = socket.create_connection(gw.socks, timeout=timeout)
    s.sendall(b"\x05\x01\x00")
    assert s.recv(2) == b"\x05\x00"
    h = host.encode()
    s.sendall(b"\x05\x01\x00\x03" + bytes([len(h)]) + h +
              struct.pack(">H", port))
    rep = b""
    while len(rep) < 10:
        d = s.recv(10 - len(rep))
        if not d:
            raise OSError("SOCKS closed")
        rep += d
    if rep[1] != 0:
        raise OSError("SOCKS reply %d" % rep[1])
    return s


def median(xs):
    return statistics.median(xs)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


# ---- the world ----------------------------------------------------------

class World:
    """Fake API + fast agent + sshd + sink + echo + the gateway."""

    def __init__(self, tmp, size, pace_ms=0, message_rate=0, payload=1024):
        self.tmp = tmp
        self.sink = Sink(size)
        self.echo = EchoServer()
        self.fake = FakeAws(pace_ms=0).start()
        self.sshd = Sshd(self.fake.state_dir, instance_id="*")
        self.sshd.start()
        self.agent = FastAgent(self.fake.state_dir, pace_ms=pace_ms,
                               payload_size=payload)
        self.fake.set_external_agent(self.agent.url)
        self.fake.set_instances({
            INST: {"ports": {"22": self.sshd.port, "7": self.echo.port,
                             "9": self.sink.port}},
            STREAM_INST: {"ports": {"22": self.echo.port}}})
        self.gw = Gateway(
            "[gateway]\nmessage_rate = %d\nmax_connections = 5000\n"
            "payload_size = %d\nssh_document = ssh\n"
            "[forward sink]\nlisten = 127.0.0.1:0\ntarget = %s\nport = 9\n"
            "[forward echo]\nlisten = 127.0.0.1:0\ntarget = %s\nport = 7\n"
            % (message_rate, payload, INST, INST), env=self.fake.env())
        self.agent_sock = os.path.join(self.gw.runtime_dir, "agent.sock")

    def cpu(self):
        return Cpu(gateway=self.gw.proc.pid, agent=self.agent.proc.pid)

    def ssh_opts(self, via_gateway=True):
        o = ["-F", "/dev/null", "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
             "-o", "BatchMode=yes", "-o", "IdentityAgent=" + self.agent_sock,
             "-o", "Ciphers=aes128-gcm@openssh.com"]
        if via_gateway:
            host, port = self.gw.socks
            o += ["-o", "ProxyCommand=nc -X 5 -x %s:%d %%r@%%h %%p"
                  % (host, port)]
        else:
            o += ["-o", "Port=%d" % self.sshd.port]
        return o

    def target(self, via_gateway=True):
        return "%s@%s" % (self.sshd.user,
                          INST if via_gateway else "127.0.0.1")

    def close(self):
        self.gw.stop()
        self.agent.stop()
        self.sshd.stop()
        self.fake.stop()
        self.echo.close()


# ---- figures ------------------------------------------------------------

def bench_scp(w, res, size, runs, label="", judged=True):
    src = os.path.join(w.tmp, "src.bin")
    with open(src, "wb") as f:
        for _ in range(size // MB):
            f.write(os.urandom(MB))
    remote = os.path.join(w.tmp, "remote.bin")
    back = os.path.join(w.tmp, "back.bin")
    for direction in ("upload", "download"):
        rates, refs, cpus, acpus, sat = [], [], [], [], ""
        for _ in range(runs):
            for via in (True, False):
                if direction == "upload":
                    a, b = src, "%s:%s" % (w.target(via), remote)
                else:
                    a, b = "%s:%s" % (w.target(via), src), back
                # a fresh key push for the direct run too (60 s validity)
                if not via:
                    subprocess.run(["ssh"] + w.ssh_opts(True) +
                                   [w.target(True), "true"], check=True,
                                   capture_output=True, timeout=60)
                with w.cpu() as c:
                    r = subprocess.run(["scp", "-q"] + w.ssh_opts(via) +
                                       [a, b], capture_output=True,
                                       text=True, timeout=900)
                assert r.returncode == 0, r.stderr
                rate = size / c.wall / 1e6
                if via:
                    rates.append(rate)
                    cpus.append(c.used["gateway"] / (size / 2**30))
                    acpus.append(c.used["agent"])
                    sat = c.saturated()
                else:
                    refs.append(rate)
        res.add("scp %s %d MiB%s" % (direction, size // MB, label),
                median(rates), "MB/s", median(refs),
                ">= 50% of direct" if judged else None,
                median(rates) >= 0.5 * median(refs) if judged else None,
                "direct loopback scp is the reference; saturated: %s; "
                "agent cpu %.2f s" % (sat, median(acpus)), runs)
        res.add("gateway CPU per GiB, scp %s%s" % (direction, label),
                median(cpus), "s/GiB", None, "<= 1.5" if judged else None,
                median(cpus) <= 1.5 if judged else None,
                "user+sys of the gateway process", runs)


def bench_forward(w, res, size, runs, label="", judged=True):
    fwd = w.gw.listeners["sink"]
    direct = ("127.0.0.1", w.sink.port)
    w.sink.size = size
    for direction, fn in (("upload", push), ("download", pull)):
        rates, refs, cpus, acpus, sat = [], [], [], [], ""
        for _ in range(runs):
            with w.cpu() as c:
                fn(fwd, size)
            rates.append(size / c.wall / 1e6)
            cpus.append(c.used["gateway"] / (size / 2**30))
            acpus.append(c.used["agent"] / (size / 2**30))
            sat = c.saturated()
            t0 = time.time()
            fn(direct, size)
            refs.append(size / (time.time() - t0) / 1e6)
        res.add("raw forward %s %d MiB%s" % (direction, size // MB, label),
                median(rates), "MB/s", median(refs), None, None,
                "smux forward vs a direct loopback socket; saturated: %s"
                % sat, runs)
        res.add("gateway CPU per GiB, forward %s%s" % (direction, label),
                median(cpus), "s/GiB", None, "<= 1.5" if judged else None,
                median(cpus) <= 1.5 if judged else None,
                "agent: %.2f s/GiB" % median(acpus), runs)


def bench_message_size(res, tmp, size, runs, payloads):
    """The same transfers with larger messages on both sides (gateway
    payload_size and the agent's reads): what is per message and what is
    per byte. The service is only known to take 1024-byte payloads, so
    these rows are not judged against the targets."""
    for payload in payloads:
        w = World(tmp, size, payload=payload)
        try:
            label = ", %d KiB messages" % (payload // 1024)
            bench_forward(w, res, size, runs, label, judged=False)
            if payload == 65536:
                bench_scp(w, res, size, runs, label, judged=False)
        finally:
            w.close()


def bench_connect(w, res, n):
    times = {True: [], False: []}
    for i in range(n):
        for via in (True, False):
            t0 = time.time()
            r = subprocess.run(["ssh"] + w.ssh_opts(via) +
                               [w.target(via), "true"],
                               capture_output=True, text=True, timeout=60)
            times[via].append(time.time() - t0)
            assert r.returncode == 0, r.stderr
    g50, d50 = median(times[True]), median(times[False])
    res.add("ssh connect to remote true p50", g50 * 1000, "ms", d50 * 1000,
            "overhead <= 50 ms", (g50 - d50) * 1000 <= 50,
            "%d connects; reference: direct loopback ssh; overhead %.1f ms"
            % (n, (g50 - d50) * 1000), n)
    g95, d95 = pct(times[True], 95), pct(times[False], 95)
    res.add("ssh connect to remote true p95", g95 * 1000, "ms", d95 * 1000,
            None, None, "", n)
    # A new connection on an open smux forward: connect to first echo byte.
    keep = socket.create_connection(w.gw.listeners["echo"])
    keep.sendall(b"x")
    keep.recv(1)
    lat, ref = [], []
    for _ in range(n):
        for addr, out in ((w.gw.listeners["echo"], lat),
                          (("127.0.0.1", w.echo.port), ref)):
            t0 = time.time()
            s = socket.create_connection(addr)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(b"x")
            s.recv(1)
            out.append(time.time() - t0)
            s.close()
    keep.close()
    res.add("new connection on an open smux forward p50",
            median(lat) * 1000, "ms", median(ref) * 1000, "<= 5 ms",
            median(lat) * 1000 <= 5,
            "connect to first echoed byte; reference: the echo server "
            "directly; p95 %.2f ms" % (pct(lat, 95) * 1000), n)


def bench_api_calls(w, res):
    fake = w.fake
    cold = "i-0be00000000000c01"
    fake.set_instances({cold: {"ports": {"22": w.sshd.port}}})
    fake.clear_calls()
    r = subprocess.run(["ssh"] + w.ssh_opts(True) +
                       ["%s@%s" % (w.sshd.user, cold), "true"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    time.sleep(0.5)  # TerminateSession goes out after the tunnel ends
    first = fake.calls()
    fake.clear_calls()
    r = subprocess.run(["ssh"] + w.ssh_opts(True) +
                       ["%s@%s" % (w.sshd.user, cold), "true"],
                       capture_output=True, text=True, timeout=60)
    time.sleep(0.5)
    second = fake.calls()

    def names(calls):
        return " ".join(sorted(str(c.get("action", "?")) for c in calls))
    res.add("API calls per ssh connect, first", len(first), "calls", None,
            None, None, names(first))
    res.add("API calls per ssh connect, key push reused", len(second),
            "calls", None, None, None, names(second))


async def _open_idle(gw, n, conc=50):
    sem = asyncio.Semaphore(conc)
    socks, errors = [], []

    async def one():
        async with sem:
            r, wr = await asyncio.open_connection(*gw.socks)
            socks.append((r, wr))
            wr.write(b"\x05\x01\x00")
            assert await r.readexactly(2) == b"\x05\x00"
            h = STREAM_INST.encode()
            wr.write(b"\x05\x01\x00\x03" + bytes([len(h)]) + h +
                     struct.pack(">H", 22))
            rep = await r.readexactly(10)
            if rep[1] != 0:
                errors.append("SOCKS reply %d" % rep[1])
    results = await asyncio.gather(*[one() for _ in range(n)],
                                   return_exceptions=True)
    errors += [repr(x) for x in results if isinstance(x, BaseException)]
    return socks, errors


def bench_idle(w, res, n):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    pid = w.gw.proc.pid
    base = rss_mb(pid)
    loop = asyncio.new_event_loop()
    t0 = time.time()
    socks, errors = loop.run_until_complete(_open_idle(w.gw, n))
    opened = time.time() - t0
    time.sleep(2)
    total = rss_mb(pid)
    with w.cpu() as c:
        time.sleep(10)
    idle_pct = c.used["gateway"] / c.wall * 100
    per_kb = (total - base) * 1024 / n
    at_1000 = base + per_kb * 1000 / 1024
    res.add("idle tunnels: gateway RSS with %d" % n, total, "MB", base,
            "<= 80 MB for 1000", at_1000 <= 80 and not errors,
            "reference: RSS before; each its own stream session; %.1f KB "
            "per tunnel (%.0f MB at 1000); opened in %.1f s; %d failed%s"
            % (per_kb, at_1000, opened, len(errors),
               (" (%s)" % errors[0]) if errors else ""))
    res.add("idle tunnels: gateway CPU while %d idle" % n, idle_pct, "%",
            None, "< 1%", idle_pct < 1.0, "10 s sample")
    for r, wr in socks:
        wr.close()
    loop.run_until_complete(asyncio.sleep(0.5))
    loop.close()
    time.sleep(2)


def _active_run(n, per, connect):
    """n concurrent echo connections moving per bytes each way; returns
    (aggregate MB/s each way, slowest/fastest, per-tunnel rates, wall)."""
    rates, errors = [], []
    lock = threading.Lock()

    def one():
        try:
            s = connect()
            data = b"\0" * MB
            got = [0]

            def rd():
                while got[0] < per:
                    d = s.recv(MB)
                    if not d:
                        break
                    got[0] += len(d)
            t = threading.Thread(target=rd)
            t0 = time.time()
            t.start()
            left = per
            while left > 0:
                left -= s.send(data[:min(left, MB)])
            t.join()
            dt = time.time() - t0
            s.close()
            with lock:
                rates.append(per / dt / 1e6)
        except OSError as e:
            errors.append(str(e))

    threads = [threading.Thread(target=one) for _ in range(n)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - t0
    assert not errors, errors[:3]
    return n * per / wall / 1e6, min(rates) / max(rates), rates, wall


def bench_active(w, res, n, per):
    with w.cpu() as c:
        agg, fair, rates, _ = _active_run(
            n, per, lambda: socks_connect(w.gw, STREAM_INST, 22))
    ref_agg, ref_fair, _, _ = _active_run(
        n, per, lambda: socket.create_connection(("127.0.0.1",
                                                  w.echo.port)))
    res.add("%d active tunnels: aggregate (echo, each way)" % n, agg, "MB/s",
            ref_agg, None, None, "separate stream sessions; reference: the "
            "same connections straight to the echo server; saturated: %s"
            % c.saturated())
    res.add("%d active tunnels: fairness slowest/fastest" % n, fair, "ratio",
            ref_fair, None, None,
            "per-tunnel %.2f..%.2f MB/s; the reference is the Python "
            "client's own fairness (threads under the GIL)"
            % (min(rates), max(rates)))


def bench_paced(res, tmp, size):
    """Like the real service: the agent sleeps 1 ms per 1 KiB message and
    the gateway paces uploads under 1000 messages/s."""
    w = World(tmp, size, pace_ms=1, message_rate=990)
    try:
        fwd = w.gw.listeners["sink"]
        w.sink.size = 1024
        push(fwd, 1024)  # opens the session: not part of the rate
        w.sink.size = size
        with w.cpu() as c:
            push(fwd, size)
        up = size / c.wall / 1e6
        res.add("paced upload (990 msg/s pacing)", up, "MB/s", 1.0,
                ">= 0.95 MB/s", up >= 0.95, "1024-byte payloads")
        with w.cpu() as c:
            pull(fwd, size)
        down = size / c.wall / 1e6
        # The agent's own allowance: one 1 KiB message per ms at most.
        allow = 1016 * 1000 / 1e6
        res.add("paced download (agent 1 ms per message)", down, "MB/s",
                allow, ">= 98% of the agent's pacing", down >= 0.98 * allow,
                "allowance: 1016 smux payload bytes per ms")
    finally:
        w.close()


def _timed_proxy(cmd, out):
    """A ProxyCommand whose own CPU proxy_cpu.py writes to out."""
    return "/usr/bin/python3 %s %s %s" % (
        os.path.join(HERE, "proxy_cpu.py"), out, cmd)


def _proxy_cpu(path):
    deadline = time.time() + 10  # it writes once the tunnel closed
    while not os.path.exists(path) and time.time() < deadline:
        time.sleep(0.05)
    with open(path) as f:
        u, s = f.read().strip().split(",")
    return float(u) + float(s)


def bench_paced_cpu(res, tmp, size):
    """CPU per GiB at the real service's pace (the agent sends one 1 KiB
    message per ms, the gateway paces under 1000/s): scp each way through
    ssh, with nc and with `ssmgate proxy` as the ProxyCommand. nc, which
    relays the very same bytes, is the reference of both the gateway's
    figure and the proxy's."""
    w = World(tmp, size, pace_ms=1, message_rate=990)
    try:
        src = os.path.join(tmp, "paced-src.bin")
        with open(src, "wb") as f:
            for _ in range(size // MB):
                f.write(os.urandom(MB))
        remote = os.path.join(tmp, "paced-remote.bin")
        back = os.path.join(tmp, "paced-back.bin")
        host, port = w.gw.socks
        nc = "nc -X 5 -x %s:%d %%r@%%h %%p" % (host, port)
        own = "%s --config %s --runtime-dir %s proxy %%r@%%h %%p" % (
            harness.SSMGATE_BIN, w.gw.config_path, w.gw.runtime_dir)
        gib = size / 2**30
        fig = {}
        for direction in ("upload", "download"):
            for name, cmd in (("nc", nc), ("proxy", own)):
                tfile = os.path.join(tmp, "proxy-cpu-%s-%s" % (direction, name))
                opts = w.ssh_opts(False)[:-2] + [
                    "-o", "ProxyCommand=" + _timed_proxy(cmd, tfile)]
                if direction == "upload":
                    a, b = src, "%s:%s" % (w.target(True), remote)
                else:
                    a, b = "%s:%s" % (w.target(True), src), back
                with w.cpu() as c:
                    r = subprocess.run(["scp", "-q"] + opts + [a, b],
                                       capture_output=True, text=True,
                                       timeout=900)
                assert r.returncode == 0, r.stderr
                fig[direction, name] = (c.used["gateway"] / gib,
                                        _proxy_cpu(tfile) / gib,
                                        size / c.wall / 1e6)
            gw, ncpu, rate = fig[direction, "nc"]
            res.add("paced scp %s: gateway CPU" % direction, gw, "s/GiB",
                    ncpu, "<= 10 s/GiB", gw <= 10,
                    "reference: nc as the ProxyCommand relaying the same "
                    "bytes; %d MiB at %.2f MB/s (agent 1 ms per message, "
                    "gateway 990/s)" % (size // MB, rate))
            gwp, pcpu, _ = fig[direction, "proxy"]
            res.add("paced scp %s: ssmgate proxy CPU" % direction, pcpu,
                    "s/GiB", ncpu, "< nc's", pcpu < ncpu,
                    "reference: nc in the same run; gateway %.1f s/GiB with "
                    "the proxy" % gwp)
    finally:
        w.close()


def jain(xs):
    """Jain's fairness index: 1 when every share is equal, 1/n when one
    takes everything."""
    return sum(xs) ** 2 / (len(xs) * sum(x * x for x in xs)) if any(xs) else 0.0


def _pull_window(addr, n, warm_s, window_s):
    """n parallel downloads from addr: bytes each got during window_s after
    warm_s (every connection open and flowing first)."""
    socks, got, stop = [], [0] * n, threading.Event()
    for _ in range(n):
        s = socket.create_connection(addr)
        s.sendall(b"S")
        socks.append(s)

    def rd(i):
        try:
            while not stop.is_set():
                d = socks[i].recv(1 << 20)
                if not d:
                    return
                got[i] += len(d)
        except OSError:
            pass
    ts = [threading.Thread(target=rd, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    time.sleep(warm_s)
    before = list(got)
    time.sleep(window_s)
    during = [g - b for g, b in zip(got, before)]
    stop.set()
    for s in socks:
        s.close()
    for t in ts:
        t.join(5)
    return during


def bench_spread(res, tmp, window_s, counts=(1, 2, 4, 8), spt=4):
    """N parallel downloads from one target at the service's pace (the
    fast agent sleeps 1 ms per 1 KiB message of a session): they spread
    over up to sessions_per_target sessions, ~1 MB/s each."""
    w = World(tmp, 1 << 40, pace_ms=1, message_rate=990)
    try:
        fwd = w.gw.listeners["sink"]
        for n in counts:
            k = min(n, spt)
            starts0 = len(w.fake.calls("StartSession"))
            during = _pull_window(fwd, n, 1.5, window_s)
            agg = sum(during) / window_s / 1e6
            fair = jain(during)
            opened = len(w.fake.calls("StartSession")) - starts0
            if n == 1:
                res.add("spread: 1 download", agg, "MB/s", 1.0, ">= 0.97 MB/s",
                        agg >= 0.97, "sessions started %d" % opened)
                continue
            res.add("spread: %d downloads, aggregate" % n, agg, "MB/s", float(k),
                    ">= %.2f MB/s" % (0.9 * k), agg >= 0.9 * k,
                    "sessions_per_target %d; new sessions %d; per connection %s"
                    % (spt, opened, " ".join("%.2f" % (d / window_s / 1e6)
                                             for d in during)))
            res.add("spread: %d downloads, fairness (Jain)" % n, fair, "", 1.0,
                    ">= 0.9", fair >= 0.9, "")
            time.sleep(0.5)
    finally:
        w.close()


GROUPS = ("forward", "scp", "connect", "scale", "size", "paced", "spread",
          "rtt")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="bench-results.json")
    ap.add_argument("--only", action="append", choices=GROUPS,
                    help="run only this group (repeatable)")
    args = ap.parse_args()
    only = set(args.only or GROUPS)
    q = args.quick
    size = (64 if q else 1024) * MB
    runs = 1 if q else 3
    res = Results()
    info = machine()
    print("machine: %s, %d cores, kernel %s, %d MB RAM" % (
        info["cpu"], info["cores"], info["kernel"], info["ram_mb"]))
    tmp = tempfile.mkdtemp(prefix="ssmgate-bench-")
    started = time.time()
    steal0 = cpu_ticks()
    w = World(tmp, size) if only & {"forward", "scp", "connect",
                                     "scale"} else None
    try:
        if only & {"forward", "scp"}:
            print("throughput and CPU (unpaced, fast agent):")
        if "forward" in only:
            bench_forward(w, res, size, runs)
        if "scp" in only:
            bench_scp(w, res, size, runs)
        if "connect" in only:
            print("connect latency:")
            bench_connect(w, res, 10 if q else 50)
            bench_api_calls(w, res)
        if "scale" in only:
            print("scale:")
            bench_idle(w, res, 100 if q else 1000)
            bench_active(w, res, 20 if q else 100, (2 if q else 10) * MB)
    finally:
        if w is not None:
            w.close()
    if "size" in only:
        print("larger messages (not judged: the service takes 1 KiB):")
        bench_message_size(res, tmp, size // 4, runs,
                           (65536,) if q else (16384, 65536))
    if "paced" in only:
        print("paced like the real service:")
        bench_paced(res, tmp, (4 if q else 8) * MB)
        bench_paced_cpu(res, tmp, (4 if q else 32) * MB)
    if "rtt" in only:
        print("connect latency at 40 ms of round trip:")
        bench_rtt.bench_rtt(res, tmp, quick=q)
    if "spread" in only:
        print("spread over sessions (paced like the real service):")
        bench_spread(res, tmp, 4.0 if q else 8.0)
    steal1 = cpu_ticks()
    info["steal_pct"] = round(100.0 * (steal1[0] - steal0[0]) /
                              max(1, steal1[1] - steal0[1]), 1)
    out = {"machine": info, "quick": q, "seconds": round(time.time() -
                                                           started, 1),
           "figures": res.rows}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    print()
    print(res.table())
    print("\nCPU steal (taken by the hypervisor) during the run: %.1f%%"
          % info["steal_pct"])
    print("\nwrote %s (%.0f s)" % (args.out, time.time() - started))


if __name__ == "__main__":
    main()
