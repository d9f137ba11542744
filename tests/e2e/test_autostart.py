"""A connect to a stopped instance (issue 15 item 3). With start_stopped = yes
(here through an [account] whose suffix is .auto) three concurrent real ssh
sessions wait for one StartInstances, the boot and the agent, shown in
`ssmgate status`; with start_stopped = no the client hears the instance is
stopped (HTTP CONNECT's 502 body, a SOCKS failure for nc and ssh) and the log
says so; a start that outlasts start_timeout_ms ends in a clear 504."""

import re
import socket
import subprocess
import sys
import threading
import time

import pytest

from harness import FAKE_DIR, SSMGATE_BIN, Gateway, recv_until_eof

sys.path.insert(0, FAKE_DIR)
from fakeaws import DEFAULT_AKID, DEFAULT_SECRET, FakeAws  # noqa: E402
from sshd import Sshd  # noqa: E402

SLEEPY = "i-0d0d0d0d0d0d0d0d1"  # boots in 2 s, agent 1 s later
COLD = "i-0d0d0d0d0d0d0d0d2"    # stays stopped: start_stopped = no
SLOW = "i-0d0d0d0d0d0d0d0d3"    # boots in 60 s: past start_timeout_ms
HALTING = "i-0d0d0d0d0d0d0d0d4"  # stopping: stopped 1 s later, then started


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("autostart")
    (tmp / "aws-config").write_text("[profile main]\nregion = us-east-1\n")
    (tmp / "aws-credentials").write_text(
        "[main]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
        % (DEFAULT_AKID, DEFAULT_SECRET))
    with FakeAws(pace_ms=0) as fake, Sshd(fake.state_dir, instance_id="*") as sd:
        fake.set_instances({
            SLEEPY: {"name": "sleepy", "state": "stopped", "boot_delay_s": 2,
                     "agent_delay_s": 1, "ports": {"22": sd.port}},
            COLD: {"name": "cold", "state": "stopped", "ports": {"22": sd.port}},
            SLOW: {"name": "slow", "state": "stopped", "boot_delay_s": 60,
                   "ports": {"22": sd.port}}})
        env = fake.env()
        env.update({"AWS_CONFIG_FILE": str(tmp / "aws-config"),
                    "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "aws-credentials")})
        cfg = ("[gateway]\nmessage_rate = 0\nconnect_timeout_ms = 1500\n"
               "start_timeout_ms = 30000\n"
               "[account auto]\nprofile = main\nstart_stopped = yes\n")
        quick = ("[gateway]\nmessage_rate = 0\nstart_stopped = yes\n"
                 "start_timeout_ms = 2000\n")
        with Gateway(cfg, env=env) as gw, Gateway(quick, env=env) as gq:
            yield {"fake": fake, "sshd": sd, "gw": gw, "gq": gq}


def ssh(w, gw, host, *cmd):
    return subprocess.run(["ssh"] + gw.ssh_opts("-o", "IdentitiesOnly=no") +
                          ["%s@%s" % (w["sshd"].user, host)] + list(cmd),
                          capture_output=True, text=True, timeout=60)


def http_connect(gw, host, port):
    """A raw HTTP CONNECT: (status line, body)."""
    s = socket.create_connection(gw.socks, timeout=30)
    s.sendall(b"CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n"
              % (host.encode(), port, host.encode(), port))
    data = recv_until_eof(s)
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0].decode(), body.decode()


def test_concurrent_connects_share_one_start(world):
    """connect_timeout_ms is 1.5 s, the boot 3 s: the wait is bounded by
    start_timeout_ms, not connect_timeout_ms."""
    w, gw = world, world["gw"]
    w["fake"].clear_calls()
    out = [None] * 3

    def one(i):
        out[i] = ssh(w, gw, SLEEPY + ".auto", "echo", "up-%d" % i)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    t0 = time.time()
    for t in threads:
        t.start()
    seen = None
    while time.time() - t0 < 20 and any(t.is_alive() for t in threads):
        st = gw.status()
        mine = [s for s in st["starts"] if s["instance"] == SLEEPY]
        if mine and mine[0]["connections"] == 3:
            seen = mine[0]
            plain = subprocess.run(
                [SSMGATE_BIN, "status", "--config", gw.config_path,
                 "--runtime-dir", gw.runtime_dir],
                capture_output=True, text=True, timeout=10).stdout
            break
        time.sleep(0.2)
    for t in threads:
        t.join(60)
    for i, r in enumerate(out):
        assert r.returncode == 0, r.stderr + gw.stderr_text()[-3000:]
        assert r.stdout.strip() == "up-%d" % i
    assert time.time() - t0 >= 3.0  # it did wait for the boot
    assert seen is not None and seen["state"] in ("stopped", "pending", "running")
    assert seen["elapsed_ms"] >= 0
    assert "starting %s: " % SLEEPY in plain and "3 connections waiting" in plain
    assert gw.status()["starts"] == []  # done: gone from the list
    starts = w["fake"].calls("StartInstances")
    assert len(starts) == 1 and starts[0]["params"]["InstanceId.1"] == SLEEPY
    log = gw.stderr_text()
    for a, b in (("checking", "starting"), ("starting", "booting"),
                 ("booting", "agent"), ("agent", "done")):
        assert len(re.findall(r"start %s: state %s -> %s" % (SLEEPY, a, b), log)) == 1, log


def test_stopped_without_start_stopped(world):
    w, gw = world, world["gw"]
    w["fake"].clear_calls()
    want = "instance %s is stopped; set start_stopped = yes to start it" % COLD
    line, body = http_connect(gw, COLD, 22)
    assert " 502 " in line and want in body, (line, body)
    # curl through HTTP CONNECT: the gateway's 502.
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "-p", "-x",
                        "http://%s:%d" % gw.socks, "http://%s:22/" % COLD],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "502" in r.stderr, r.stderr
    # nc and ssh through SOCKS5: a failure reply, not a hang.
    r = subprocess.run(["nc", "-X", "5", "-x", "%s:%d" % gw.socks, COLD, "22"],
                       input="", capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    r = ssh(w, gw, COLD, "true")
    assert r.returncode == 255
    assert want in gw.stderr_text()
    # ssmgate proxy (HTTP CONNECT to the daemon) prints the whole reason.
    r = subprocess.run([SSMGATE_BIN, "proxy", COLD, "22", "--config", gw.config_path,
                        "--runtime-dir", gw.runtime_dir], input="",
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and want in r.stderr, r.stderr
    assert w["fake"].calls("StartInstances") == []
    assert w["fake"].calls("DescribeInstances")  # how it knew


def test_stopping_instance_is_started_once_stopped(world):
    """EC2 refuses to start a stopping instance: wait for stopped first."""
    w, gw = world, world["gw"]
    w["fake"].clear_calls()
    # Stopping from now (the clock of the stop starts with the state).
    w["fake"].set_instances({HALTING: {
        "name": "halting", "state": "stopping", "stop_delay_s": 1.5,
        "boot_delay_s": 1, "ports": {"22": w["sshd"].port}}})
    r = ssh(w, gw, HALTING + ".auto", "echo", "back")
    assert r.returncode == 0, r.stderr + gw.stderr_text()[-3000:]
    assert r.stdout.strip() == "back"
    starts = w["fake"].calls("StartInstances")
    assert len(starts) == 1 and starts[0]["status"] == 200
    log = gw.stderr_text()
    assert "start %s: state checking -> stopping" % HALTING in log
    assert "start %s: state stopping -> starting" % HALTING in log


def test_start_timeout(world):
    w, gq = world, world["gq"]
    t0 = time.time()
    line, body = http_connect(gq, SLOW, 22)
    took = time.time() - t0
    assert " 504 " in line, (line, body)
    assert "did not come up within start_timeout_ms = 2000" in body
    assert 2.0 <= took < 10, took
    assert "start %s: state booting -> done" % SLOW in gq.stderr_text()
