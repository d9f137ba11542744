"""The C fast agent (tests/fastagent) that scripts/bench uses, proven
against the gateway with real ssh/scp and sshd: if it mis-spoke the
protocol, the benchmark figures would mean nothing. Prints the rates and
which side used the CPU."""

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from harness import (EchoServer, FastAgent, Gateway, SANITIZED, FAKE_DIR,
                     sha256_file as sha)

sys.path.insert(0, FAKE_DIR)
from fakeaws import FakeAws  # noqa: E402
from sshd import Sshd  # noqa: E402

INST = "i-0fa0000000000000a"
SIZE = (20 if SANITIZED else 100) * 1024 * 1024


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fa")
    echo = EchoServer()
    with FakeAws(pace_ms=0) as fake, Sshd(fake.state_dir,
                                          instance_id="*") as sd:
        agent = FastAgent(fake.state_dir)
        fake.set_external_agent(agent.url)
        fake.set_instances({INST: {"ports": {"22": sd.port,
                                             "7": echo.port}}})
        gw = Gateway("[gateway]\nmessage_rate = 0\n"
                     "[forward echo]\nlisten = 127.0.0.1:0\ntarget = %s\n"
                     "port = 7\n" % INST, env=fake.env())
        try:
            yield {"fake": fake, "sshd": sd, "gw": gw, "agent": agent,
                   "tmp": tmp}
        finally:
            rc = gw.stop()
            agent.stop()
            echo.close()
            gw.assert_clean()
            assert rc == 0
            assert "segfault" not in agent.stderr_text()


def scp(w, src, dst):
    host, port = w["gw"].socks
    agent_sock = os.path.join(w["gw"].runtime_dir, "agent.sock")
    opts = ["-F", "/dev/null", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", "BatchMode=yes", "-o", "IdentityAgent=" + agent_sock,
            "-o", "ProxyCommand=nc -X 5 -x %s:%d %%r@%%h %%p" % (host, port)]
    return subprocess.run(["scp", "-q"] + opts + [src, dst],
                          capture_output=True, text=True, timeout=300)


def test_scp_both_ways_through_the_fast_agent(world):
    tmp, user = world["tmp"], world["sshd"].user
    src = tmp / "up.bin"
    with open(src, "wb") as f:
        f.write(os.urandom(SIZE))
    gw_pid, agent_pid = world["gw"].proc.pid, world["agent"].proc.pid
    for direction, a, b in (("up", str(src),
                             "%s@%s:%s" % (user, INST, tmp / "remote.bin")),
                            ("down", "%s@%s:%s" % (user, INST,
                                                   tmp / "remote.bin"),
                             str(tmp / "back.bin"))):
        g0, a0, t0 = cpu_s(gw_pid), cpu_s(agent_pid), time.time()
        r = scp(world, a, b)
        dt = time.time() - t0
        assert r.returncode == 0, r.stderr + world["gw"].stderr_text()[-2000:]
        print("scp %s %d MB: %.1f MB/s; gateway cpu %.2f s, agent cpu %.2f s"
              % (direction, SIZE >> 20, SIZE / dt / 1e6,
                 cpu_s(gw_pid) - g0, cpu_s(agent_pid) - a0))
    assert sha(tmp / "back.bin") == sha(src)


def test_20_connections_over_one_smux_session(world):
    gw = world["gw"]
    results = []

    def one(i):
        data = os.urandom(256 * 1024 + i)
        s = socket.create_connection(gw.listeners["echo"], timeout=60)
        got = bytearray()

        def rd():
            while len(got) < len(data):
                d = s.recv(65536)
                if not d:
                    break
                got.extend(d)

        t = threading.Thread(target=rd)
        t.start()
        s.sendall(data)
        t.join(60)
        s.close()
        results.append(bytes(got) == data)

    world["fake"].clear_calls()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 20 and all(results), \
        world["agent"].stderr_text()[-2000:] + gw.stderr_text()[-3000:]
    # The forward had no session yet: one StartSession for all twenty.
    assert len(world["fake"].calls("StartSession")) == 1
