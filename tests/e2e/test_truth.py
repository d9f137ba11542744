"""Tell the truth to the client (issue 13, item 4).

A destination the agent cannot reach is a refusal the client sees (SOCKS5
reply 5, SOCKS4 91, HTTP 502 with the reason), not "succeeded" and an
empty close: ssmgate holds the open report until the destination spoke,
or the agent acknowledged the SYN and open_confirm_ms passed with no
ConnectToPortError/FIN (basic and stream mode: no end of the session).
And when the service or the agent ends a session (channel_closed, the
TerminateSession API, a resume that runs out of budget) every local
connection on it closes at once, with the reason in the log."""

import os
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

import pytest

from harness import (FAKE_DIR, SSMGATE_BIN, Gateway, ThreadedServer,
                     forwards_config, recv_until_eof, send_forever)

sys.path.insert(0, FAKE_DIR)
from child import free_port  # noqa: E402
from fakeaws import FakeAws  # noqa: E402
from sshd import Sshd  # noqa: E402

INST = "i-0123456789abcdef0"  # smux agent
OLD = "i-0fedcba9876543210"  # basic mode agent (one connection per session)
SSHI = "i-0abcdef0123456789"  # sshd behind port 22
OLD_AGENT = "3.0.196.0"
CONFIRM_MS = 100
PAGE = b"hello from a server that waits for its client\n"


def web(c):
    """Client speaks first: reads a request head, answers, closes."""
    try:
        c.settimeout(10)
        with c.makefile("rb") as f:
            for line in f:
                if line in (b"\r\n", b"\n"):
                    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n"
                              b"\r\n%s" % (len(PAGE), PAGE))
                    break
    except OSError:
        pass
    finally:
        c.close()


def banner(c):
    """Server speaks first (like sshd)."""
    try:
        c.settimeout(10)
        c.sendall(b"SSH-2.0-banner\r\n")
        while c.recv(4096):
            pass
    except OSError:
        pass
    finally:
        c.close()


def source(c):
    """Sends forever, a little at a time, until the client goes."""
    c.settimeout(30)
    send_forever(c, os.urandom(16384), 0.01)


@pytest.fixture(scope="module")
def world():
    closed = free_port()  # nothing listens here: a real refused dial
    with ThreadedServer(web) as w, ThreadedServer(banner) as b, \
            ThreadedServer(source) as src, FakeAws(pace_ms=0) as fake, \
            Sshd(fake.state_dir, instance_id="*") as sd:
        hosts = {"web.internal": "127.0.0.1:%d" % w.port,
                 "banner.internal": "127.0.0.1:%d" % b.port,
                 "source.internal": "127.0.0.1:%d" % src.port,
                 "closed.internal": "127.0.0.1:%d" % closed}
        fake.set_instances({
            INST: {"ports": {"81": closed, "22": closed}, "hosts": hosts},
            OLD: {"agent_version": OLD_AGENT, "ports": {"81": closed},
                  "hosts": {"closed.old": "127.0.0.1:%d" % closed,
                            "source.old": "127.0.0.1:%d" % src.port}},
            SSHI: {"ports": {"22": sd.port}}})
        yield {"fake": fake, "sshd": sd, "closed": closed}


def gateway(world, confirm_ms=CONFIRM_MS, extra=""):
    cfg = forwards_config(
        ("closed", INST, "port = 81\n"), ("oldclosed", OLD, "port = 81\n"),
        gateway="open_confirm_ms = %d\nresume_budget_ms = 1500\n%s" % (
            confirm_ms, extra))
    cfg += "[route r]\nmatch = *.internal\nvia = %s\n" % INST
    cfg += "[route o]\nmatch = *.old\nvia = %s\n" % OLD
    return Gateway(cfg, env=world["fake"].env())


def socks5(gw, host, port, timeout=30):
    """A SOCKS5 CONNECT by hand: (reply code, socket, seconds the reply
    took after the request)."""
    s = socket.create_connection(gw.socks, timeout=timeout)
    s.sendall(b"\x05\x01\x00")
    assert s.recv(2) == b"\x05\x00"
    h = host.encode()
    t0 = time.monotonic()
    s.sendall(b"\x05\x01\x00\x03" + bytes([len(h)]) + h +
              struct.pack(">H", port))
    rep = s.recv(10)
    took = time.monotonic() - t0
    return (rep[1] if len(rep) > 1 else None), s, took


# ---- (a) a refused destination is a refusal ----

def test_socks_clients_hear_connection_refused(world):
    with gateway(world) as gw:
        sh, sp = gw.socks
        t0 = time.monotonic()
        r = subprocess.run(["curl", "-sS", "--max-time", "20",
                            "--socks5-hostname", "%s:%d" % (sh, sp),
                            "http://closed.internal/"],
                           capture_output=True, text=True, timeout=30)
        took = time.monotonic() - t0
        print("curl socks5h: exit %d in %.2f s: %s" % (r.returncode, took,
                                                       r.stderr.strip()))
        assert r.returncode == 97, r.stderr
        assert "(5)" in r.stderr or "refused" in r.stderr.lower(), r.stderr
        r = subprocess.run(["curl", "-sS", "--max-time", "20", "--socks4a",
                            "%s:%d" % (sh, sp), "http://closed.internal/"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 97, r.stderr
        assert "91" in r.stderr or "rejected" in r.stderr.lower(), r.stderr
        r = subprocess.run(["nc", "-X", "5", "-x", "%s:%d" % (sh, sp),
                            "closed.internal", "80"], input=b"",
                           capture_output=True, timeout=30)
        print("nc -X 5: exit %d: %s" % (r.returncode, r.stderr.strip()))
        assert r.returncode != 0
        assert b"refused" in r.stderr.lower(), r.stderr
        # The same by hand, and the log names the agent's answer.
        code, s, _ = socks5(gw, "closed.internal", 80)
        s.close()
        assert code == 5
        gw.wait_for(r"destination closed\.internal:80 \(via %s\) refused the "
                    r"connection \(ConnectToPortError from the agent\)" % INST)


def test_http_connect_gets_502_with_the_reason(world):
    with gateway(world) as gw:
        sh, sp = gw.socks
        r = subprocess.run(["curl", "-sS", "--max-time", "20", "-p", "-x",
                            "http://%s:%d" % (sh, sp),
                            "http://closed.internal/"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 56 and "502" in r.stderr, r.stderr
        s = socket.create_connection(gw.socks, timeout=30)
        s.sendall(b"CONNECT closed.internal:80 HTTP/1.1\r\n"
                  b"Host: closed.internal:80\r\n\r\n")
        got = recv_until_eof(s)
        s.close()
        print(got.decode(errors="replace"))
        assert got.startswith(b"HTTP/1.1 502 "), got
        assert b"refused the connection (ConnectToPortError" in got, got


def test_forward_port_to_a_refused_destination_closes_at_once(world):
    with gateway(world) as gw:
        for name in ("closed", "oldclosed"):
            s = socket.create_connection(gw.listeners[name], timeout=30)
            t0 = time.monotonic()
            # A [forward] port has no reply to carry a refusal: the
            # connection ends, with a reset where it was already open.
            try:
                assert s.recv(16) == b""
            except ConnectionResetError:
                pass
            took = time.monotonic() - t0
            s.close()
            print("[forward %s] closed after %.2f s" % (name, took))
            assert took < 10
        gw.wait_for("destination port 81 on %s refused the connection" % INST)
        gw.wait_for("destination port 81 on %s refused the connection or "
                    "closed before sending anything" % OLD)


def test_basic_mode_refusal_is_refused(world):
    with gateway(world) as gw:
        code, s, took = socks5(gw, "closed.old", 80)
        s.close()
        print("basic mode refused: reply %s after %.2f s" % (code, took))
        assert code == 5
        gw.wait_for(r"closed\.old:80 \(via %s\) refused the connection or "
                    r"closed before sending anything \(.*Unable to start port"
                    % OLD)


def test_ssh_proxy_command_says_refused(world):
    with gateway(world) as gw:
        sh, sp = gw.socks
        proxy = "%s proxy --listen %s:%d %%r@%%h %%p" % (SSMGATE_BIN, sh, sp)
        agent = os.path.join(gw.runtime_dir, "agent.sock")
        t0 = time.monotonic()
        r = subprocess.run(["ssh", "-F", "/dev/null", "-o", "BatchMode=yes",
                            "-o", "StrictHostKeyChecking=no",
                            "-o", "UserKnownHostsFile=/dev/null",
                            "-o", "IdentityAgent=" + agent,
                            "-o", "ProxyCommand=" + proxy,
                            "%s@%s" % (world["sshd"].user, INST), "true"],
                           capture_output=True, text=True, timeout=60)
        took = time.monotonic() - t0
        print("ssh to a refused port 22: exit %d in %.2f s: %s" % (
            r.returncode, took, r.stderr.strip()))
        assert r.returncode == 255
        assert "502" in r.stderr and "refused the connection" in r.stderr, \
            r.stderr


def connect_times(gw, host, n):
    """Seconds from each CONNECT request to its (successful) reply, and
    the check that the tunnel then works."""
    times = []
    for _ in range(n):
        code, s, took = socks5(gw, host, 80)
        assert code == 0, code
        if host.startswith("web"):
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            got = b""
            while not got.endswith(PAGE):
                d = s.recv(4096)
                assert d, got
                got += d
        else:
            assert s.recv(64).startswith(b"SSH-2.0-")
        s.close()
        times.append(took)
    return times


def test_good_destinations_still_work_and_what_the_wait_costs(world):
    """A client-speaks-first server pays the SYN's round trip plus the
    grace; a server that speaks first pays nothing."""
    res = {}
    for confirm in (0, CONFIRM_MS):
        with gateway(world, confirm) as gw:
            connect_times(gw, "web.internal", 1)  # the session is up
            res[confirm] = {
                "web": statistics.median(connect_times(gw, "web.internal",
                                                       15)),
                "banner": statistics.median(
                    connect_times(gw, "banner.internal", 15))}
    added = res[CONFIRM_MS]["web"] - res[0]["web"]
    print("connect p50 (ms): open_confirm_ms=0: web %.1f banner %.1f; "
          "open_confirm_ms=%d: web %.1f banner %.1f; added for a "
          "client-speaks-first server: %.1f ms" % (
              res[0]["web"] * 1e3, res[0]["banner"] * 1e3, CONFIRM_MS,
              res[CONFIRM_MS]["web"] * 1e3, res[CONFIRM_MS]["banner"] * 1e3,
              added * 1e3))
    assert CONFIRM_MS / 1e3 <= res[CONFIRM_MS]["web"] < CONFIRM_MS / 1e3 + 0.3
    assert res[CONFIRM_MS]["banner"] < CONFIRM_MS / 1e3
    assert res[0]["web"] < CONFIRM_MS / 1e3


# ---- (b) a session the service ends closes its connections ----

def ends_soon(proc, how, gw):
    """Waits for the local client to end after the session did: within
    the resume budget (if any) plus 3 s; else it hangs, which fails."""
    try:
        proc.wait(BUDGET.get(how, 0) + 3)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("%s still running 3 s after the session ended (%s):\n%s"
                    % (proc.args[0], how, gw.stderr_text()[-3000:]))


def live_session(fake, target, timeout=20):
    def find():
        for sid, x in fake.sessions().items():
            if x["target"] == target and not x["terminated"] and \
                    x["handshake_done"]:
                return sid
        return None
    return fake.wait_for(find, timeout=timeout, what="a live session")


def end_session(world, sid, how):
    fake = world["fake"]
    if how == "channel_closed":
        fake.session_action(sid, "channel_closed",
                            {"output": "Session is terminated: idle timeout"})
    elif how == "terminate_api":
        fake.boto_client("ssm").terminate_session(SessionId=sid)
    else:  # the socket drops and ResumeSession never succeeds
        kind = {"resume_denied": "deny", "resume_hangs": "delay"}[how]
        fake.set_faults({"api": [{"action": "ResumeSession", "kind": kind,
                                  "delay_ms": 20000, "count": -1}]})
        fake.session_action(sid, "cut")


REASONS = {
    "channel_closed": "idle timeout",
    "terminate_api": "Session terminated by TerminateSession",
    "resume_denied": "could not resume the session within 1500 ms",
    "resume_hangs": "could not resume the session within 1500 ms",
}
BUDGET = {"resume_denied": 1.5, "resume_hangs": 1.5}


@pytest.mark.parametrize("how", sorted(REASONS))
def test_a_session_the_service_ends_closes_a_download(world, how):
    """nc reading a destination that sends forever (nc host port > file):
    it must end soon after the session does, not hang."""
    fake = world["fake"]
    fake.set_faults({"api": []})
    try:
        with gateway(world) as gw:
            sh, sp = gw.socks
            nc = subprocess.Popen(["nc", "-X", "5", "-x", "%s:%d" % (sh, sp),
                                   "source.internal", "80"],
                                  stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL)
            got = [0]

            def reader():
                while True:
                    d = nc.stdout.read1(65536)
                    if not d:
                        return
                    got[0] += len(d)
            t = threading.Thread(target=reader, daemon=True)
            t.start()
            sid = live_session(fake, INST)
            fake.wait_for(lambda: got[0] > 256 * 1024, what="bytes flowing")
            t0 = time.monotonic()
            end_session(world, sid, how)
            ends_soon(nc, how, gw)
            took = time.monotonic() - t0
            print("%s: nc ended %.2f s after the session did (%d bytes; "
                  "resume budget %.1f s)" % (how, took, got[0],
                                             BUDGET.get(how, 0)))
            gw.wait_for(r"ssm \d+: session %s ended, closing its 1 "
                        r"connection: .*%s" % (sid, REASONS[how]))
            gw.wait_for(r"conn \d+: closed .*tunnel failed: .*%s" %
                        REASONS[how])
    finally:
        fake.set_faults({"api": []})


@pytest.mark.parametrize("how", ["channel_closed", "terminate_api",
                                 "resume_denied"])
def test_a_session_the_service_ends_stops_a_running_scp(world, how,
                                                        tmp_path):
    fake = world["fake"]
    sd = world["sshd"]
    fake.set_faults({"api": []})
    src = tmp_path / "big.bin"
    with open(src, "wb") as f:
        f.write(os.urandom(1 << 20) * 400)
    try:
        with gateway(world) as gw:
            scp = subprocess.Popen(
                ["scp", "-q"] + gw.ssh_opts("-o", "IdentitiesOnly=no") +
                [str(src), "%s@%s:%s" % (sd.user, SSHI, tmp_path / "up.bin")],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            sid = live_session(fake, SSHI)
            fake.wait_for(lambda: fake.session(sid)["stats"].get(
                "bytes_from_client_ws", 0) > 4 << 20, timeout=30,
                what="scp bytes flowing")
            t0 = time.monotonic()
            end_session(world, sid, how)
            ends_soon(scp, how, gw)
            took = time.monotonic() - t0
            err = scp.stderr.read().decode(errors="replace")
            print("%s: scp exit %d %.2f s after the session ended (resume "
                  "budget %.1f s): %s" % (how, scp.returncode, took,
                                          BUDGET.get(how, 0), err.strip()))
            assert scp.returncode != 0
            gw.wait_for(r"ssm \d+: session %s ended, closing its 1 "
                        r"connection: .*%s" % (sid, REASONS[how]))
    finally:
        fake.set_faults({"api": []})


def test_an_idle_session_that_resumed_still_ends_after_its_linger(world):
    """A shared smux session lingers session_linger_ms for the next
    connection, then ends. Data channels that drop while it lingers are
    resumed, but the linger counts from the last close: a service that
    recycles more often than the linger must not keep it open for ever."""
    fake = world["fake"]
    fake.set_faults({"api": []})
    before = set(fake.sessions())
    with gateway(world, extra="session_linger_ms = 3000\n") as gw:
        code, s, _ = socks5(gw, "banner.internal", 22)
        assert code == 0
        assert s.recv(64).startswith(b"SSH-2.0-banner")
        s.close()
        sid = fake.wait_for(
            lambda: next((k for k, x in fake.sessions().items()
                          if k not in before and x["handshake_done"]), None),
            what="the new session")
        gw.wait_for(r"conn \d+: closed")
        t0 = time.monotonic()
        cuts = 0
        # A cut every 0.8 s, each resumed, for longer than the linger.
        while time.monotonic() - t0 < 6 and not fake.session(sid)["terminated"]:
            fake.session_action(sid, "cut")
            cuts += 1
            time.sleep(0.8)
        fake.wait_for(lambda: fake.session(sid)["terminated"], timeout=10,
                      what="the lingering session to end")
        took = time.monotonic() - t0
        print("idle session cut %d times ended %.1f s after its last close" %
              (cuts, took))
        assert cuts >= 2
        assert took < 5.5, took


def test_an_upload_cut_by_the_session_end_hears_a_reset(world):
    """A client that uploaded when the service ended the session cannot
    know its last bytes arrived, so its connection ends with a reset, not
    a clean EOF that would make the upload look complete."""
    fake = world["fake"]
    fake.set_faults({"api": []})
    with gateway(world) as gw:
        code, s, _ = socks5(gw, "banner.internal", 22)
        assert code == 0
        assert s.recv(64).startswith(b"SSH-2.0-banner")
        sid = live_session(fake, INST)
        s.sendall(os.urandom(256 << 10))
        time.sleep(1)  # the gateway read it all: its close is its choice
        end_session(world, sid, "channel_closed")
        t0 = time.monotonic()
        try:
            how = "EOF" if s.recv(16) == b"" else "data"
        except ConnectionResetError:
            how = "reset"
        took = time.monotonic() - t0
        s.close()
        print("after the session end the uploader heard: %s (%.2f s)" % (how, took))
        assert how == "reset"
        assert took < 5
