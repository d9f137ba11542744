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
                     ThreadedServer, forwards_config, run_parallel,
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


def _source(c):
    """Answers each line "N" with N bytes, then waits for the next line:
    a one-way burst after which nothing else moves."""
    try:
        f = c.makefile("rb")
        for line in f:
            c.sendall(os.urandom(int(line)))
    except (OSError, ValueError):
        pass
    finally:
        c.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fa")
    with EchoServer() as echo, ThreadedServer(_source) as source, \
            FakeAws(pace_ms=0) as fake, \
            Sshd(fake.state_dir, instance_id="*") as sd, \
            FastAgent(fake.state_dir) as agent:
        fake.set_external_agent(agent.url)
        fake.set_instances({INST: {"ports": {"22": sd.port,
                                             "7": echo.port,
                                             "8": source.port}}})
        with Gateway(forwards_config(("echo", INST, "port = 7\n"),
                                     ("source", INST, "port = 8\n"),
                                     ("echo1", INST,
                                      "port = 7\nsessions_per_target = 1\n")),
                     env=fake.env()) as gw:
            yield {"fake": fake, "sshd": sd, "gw": gw, "agent": agent,
                   "tmp": tmp}
    assert "segfault" not in agent.stderr_text()


def scp(w, src, dst):
    return subprocess.run(["scp", "-q"] + w["gw"].ssh_opts() + [src, dst],
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


def _echo_round(sock, data, pause_s=0.0):
    """Sends data, optionally stops reading for pause_s (the gateway pauses
    the session's input meanwhile), then expects all of it back with no
    gap longer than the socket timeout."""
    got = bytearray()
    err = []

    def rd():
        if pause_s:
            time.sleep(pause_s)
        try:
            while len(got) < len(data):
                d = sock.recv(65536)
                if not d:
                    break
                got.extend(d)
        except OSError as e:
            err.append(e)

    t = threading.Thread(target=rd)
    t.start()
    sock.sendall(data)
    t.join(60)
    return bytes(got) == data, err


def test_20_connections_over_one_smux_session(world):
    gw = world["gw"]
    results = []

    def one(i):
        # echo1: one session for all (echo would spread them over four)
        s = socket.create_connection(gw.listeners["echo1"], timeout=60)
        ok, err = _echo_round(s, os.urandom(256 * 1024 + i))
        s.close()
        results.append(ok and not err)

    world["fake"].clear_calls()
    run_parallel(one, 20, 120)
    assert len(results) == 20 and all(results), \
        world["agent"].stderr_text()[-2000:] + gw.stderr_text()[-3000:]
    # The forward had no session yet: one StartSession for all twenty.
    assert len(world["fake"].calls("StartSession")) == 1


def test_bursts_read_ahead_arrive_without_more_input(world):
    """The agent sends each burst of records in one write; the gateway
    reads them ahead in 16 KiB chunks that poll() no longer announces.
    Every size around the chunk and record boundaries must come back
    whole while nothing else arrives, also after a reader that stalled
    long enough for the gateway to pause the session's input."""
    s = socket.create_connection(world["gw"].listeners["echo"], timeout=5)
    try:
        for n in (1, 100, 1016, 1017, 5000, 16000, 16384, 17000, 40000,
                  100000, 1 << 20):
            ok, err = _echo_round(s, os.urandom(n))
            assert ok and not err, (n, err)
        for _ in range(20):  # interactive-sized round trips
            ok, err = _echo_round(s, b"x")
            assert ok and not err, err
        ok, err = _echo_round(s, os.urandom(8 << 20), pause_s=1.5)
        assert ok and not err, err
    finally:
        s.close()


def test_one_way_bursts_end_without_more_input(world):
    """A download burst and then silence: the gateway sends its acks and
    nothing else will wake it. Records it read ahead beyond one loop
    pass's share must still come out (the loop must not block in poll
    while it holds them); a stall shows as a recv timeout."""
    s = socket.create_connection(world["gw"].listeners["source"], timeout=5)
    try:
        for n in (1, 5000, 17000, 40000, 100000, 1 << 20, 3000):
            s.sendall(b"%d\n" % n)
            got = 0
            while got < n:
                d = s.recv(1 << 16)
                assert d, "closed after %d of %d" % (got, n)
                got += len(d)
            assert got == n
    finally:
        s.close()
