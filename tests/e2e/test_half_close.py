"""A client's half-close must not lose the reply (issue 13, item 1).

nc -N, ncat, socat and HTTP/1.0 clients send their request and shut down
their sending side. smux v1 has no half-close and the agent (the fake like
amazon-ssm-agent) closes the destination both ways when a stream's FIN
arrives; basic mode likewise on DisconnectToPort. So ssmgate holds the
client's EOF while the destination talks and sends it when the
destination ended or was quiet for half_close_linger_ms. The destination
here answers only after a pause, in two parts, so a FIN sent at once loses
the reply."""

import socket
import subprocess
import sys
import time

import pytest

from harness import (FAKE_DIR, Gateway, ThreadedServer, forwards_config,
                     recv_until_eof)

sys.path.insert(0, FAKE_DIR)
from fakeaws import FakeAws  # noqa: E402

INST = "i-0123456789abcdef0"
OLD = "i-0fedcba9876543210"
OLD_AGENT = "3.0.196.0"  # the last version without smux: basic mode
RUNS = 10
BODY = b"hello from a slow server\n" * 40
REQUEST = b"GET / HTTP/1.0\r\nHost: web.internal\r\n\r\n"


def read_request(c, end, timeout):
    """Reads until end (or EOF) with a timeout."""
    c.settimeout(timeout)
    req = b""
    while end not in req:
        d = c.recv(4096)
        if not d:
            break
        req += d
    return req


def slow_http(c):
    """Reads the request, thinks, answers in two parts, closes."""
    try:
        read_request(c, b"\r\n\r\n", 10)
        time.sleep(0.2)
        head = b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY)
        c.sendall(head + BODY[:100])
        time.sleep(0.1)
        c.sendall(BODY[100:])
    except OSError:
        pass
    finally:
        c.close()


BIG = 32 << 20


def big_reply(c):
    """Answers a request at once with BIG bytes, then closes."""
    try:
        read_request(c, b"\n", 60)
        chunk = bytes(range(256)) * 256
        for _ in range(BIG // len(chunk)):
            c.sendall(chunk)
    except OSError:
        pass
    finally:
        c.close()


def silent(c):
    """Reads and never answers, never closes first."""
    try:
        c.settimeout(30)
        while c.recv(4096):
            pass
    except OSError:
        pass


@pytest.fixture(scope="module")
def servers():
    with ThreadedServer(slow_http) as web, ThreadedServer(silent) as mute, \
            ThreadedServer(big_reply) as big:
        yield web, mute, big


@pytest.fixture
def fake(servers):
    web, mute, big = servers
    with FakeAws(pace_ms=0) as f:
        f.set_instances({
            INST: {"ports": {"80": web.port, "81": mute.port, "82": big.port},
                   "hosts": {"web.internal": "127.0.0.1:%d" % web.port}},
            OLD: {"ports": {"80": web.port}, "agent_version": OLD_AGENT}})
        yield f


def gateway(fake, linger_ms=1000, extra=""):
    cfg = forwards_config(
        ("web", INST, "port = 80\n"), ("mute", INST, "port = 81\n"),
        ("big", INST, "port = 82\n"),
        ("old", OLD, "port = 80\n"),
        gateway="half_close_linger_ms = %d\n%s" % (linger_ms, extra))
    cfg += "[route r]\nmatch = *.internal\nvia = %s\n" % INST
    return Gateway(cfg, env=fake.env())


def clients(gw):
    """name -> (argv through the [route], argv through the [forward])."""
    sh, sp = gw.socks
    fh, fp = gw.listeners["web"]
    return {
        "nc -N": (["nc", "-N", "-X", "5", "-x", "%s:%d" % (sh, sp),
                   "web.internal", "80"],
                  ["nc", "-N", fh, str(fp)]),
        "ncat": (["ncat", "--proxy", "%s:%d" % (sh, sp), "--proxy-type",
                  "socks5", "web.internal", "80"],
                 ["ncat", fh, str(fp)]),
        "socat": (["socat", "-t", "10", "-",
                   "SOCKS4A:%s:web.internal:80,socksport=%d" % (sh, sp)],
                  ["socat", "-t", "10", "-", "TCP:%s:%d" % (fh, fp)]),
        "curl": (["curl", "-sS", "--http1.0", "-x",
                  "socks5h://%s:%d" % (sh, sp), "http://web.internal/"],
                 ["curl", "-sS", "--http1.0",
                  "http://%s:%d/" % (fh, fp)]),
    }


def replies(argv, runs=RUNS):
    """How many of runs one-shot requests got the whole reply."""
    ok = 0
    for _ in range(runs):
        r = subprocess.run(argv, input=REQUEST, capture_output=True,
                           timeout=30)
        ok += r.stdout.endswith(BODY)
    return ok


def tunnels(gw):
    return gw.status()["tunnels"]


def wait_no_tunnels(gw, timeout=10):
    deadline = time.monotonic() + timeout
    while tunnels(gw) and time.monotonic() < deadline:
        time.sleep(0.1)
    return tunnels(gw)


def test_one_shot_clients_get_the_whole_reply(fake):
    gw = gateway(fake)
    try:
        score = {}
        for name, (via_route, via_forward) in clients(gw).items():
            score[name + " [route]"] = replies(via_route)
            score[name + " [forward]"] = replies(via_forward)
        print("replies out of %d: %s" % (RUNS, score))
        assert all(v == RUNS for v in score.values()), score
        assert wait_no_tunnels(gw) == []
    finally:
        assert gw.close() == 0
    for x in fake.sessions().values():
        assert not x["violations"], x["violations"]


def test_basic_mode_holds_disconnect_to_port(fake):
    gw = gateway(fake, linger_ms=500)
    try:
        fh, fp = gw.listeners["old"]
        got = replies(["nc", "-N", fh, str(fp)])
        print("basic mode, nc -N: %d/%d" % (got, RUNS))
        assert got == RUNS
        assert wait_no_tunnels(gw) == []
    finally:
        assert gw.close() == 0
    sessions = [x for x in fake.sessions().values() if x["mode"] == "basic"]
    assert len(sessions) == RUNS
    assert all(x["stats"].get("flag_1", 0) == 1 for x in sessions)


def test_a_client_that_half_closed_and_left_ends_after_the_linger(fake):
    """The destination never answers: the FIN goes after the linger, the
    agent closes the destination and the client hears the end."""
    gw = gateway(fake, linger_ms=1000)
    try:
        s = socket.create_connection(gw.listeners["mute"], timeout=15)
        s.sendall(b"anyone there?\n")
        t0 = time.monotonic()
        s.shutdown(socket.SHUT_WR)
        assert recv_until_eof(s) == b""
        took = time.monotonic() - t0
        s.close()
        print("half-closed client ended after %.2f s" % took)
        assert 0.9 <= took < 5, took
        assert wait_no_tunnels(gw) == []
    finally:
        assert gw.close() == 0


def test_a_slow_reader_after_half_close_gets_everything(fake):
    """The client half-closes and then reads nothing for longer than the
    linger while a big reply waits: the destination is not quiet, it waits
    for us (reads paused by backpressure), so the FIN must wait too, or the
    agent closes the destination and the rest of the reply is lost."""
    gw = gateway(fake, linger_ms=500)
    try:
        s = socket.create_connection(gw.listeners["big"], timeout=30)
        s.sendall(b"send it all\n")
        s.shutdown(socket.SHUT_WR)
        time.sleep(3)  # six lingers without reading
        got = 0
        while True:
            d = s.recv(1 << 20)
            if not d:
                break
            got += len(d)
        s.close()
        print("slow reader got %d of %d bytes" % (got, BIG))
        assert got == BIG
        assert wait_no_tunnels(gw) == []
    finally:
        assert gw.close() == 0


def test_a_half_close_during_a_resume_waits_for_the_agent(fake):
    """The data channel drops and ResumeSession takes 3 s; meanwhile a
    client sends its request and half-closes. Nothing reached the agent
    yet, so the destination cannot have answered: the linger must count
    from when the agent has the request, or the FIN arrives with it and
    the agent closes the destination before it answers."""
    # One session per target: a connection this young would otherwise
    # count as busy and the next one would start a session of its own.
    gw = gateway(fake, linger_ms=1000, extra="sessions_per_target = 1\n")
    try:
        # An open connection (silent, the server waits for its request)
        # keeps the session; the next one joins it as a new stream.
        keep = socket.create_connection(gw.listeners["web"], timeout=15)
        sid = fake.wait_for(
            lambda: next((k for k, x in fake.sessions().items()
                          if not x["terminated"] and x["handshake_done"]), None),
            what="the session")
        gw.wait_for(r"conn \d+: open .*:80")
        fake.set_faults({"api": [{"action": "ResumeSession", "kind": "delay",
                                  "delay_ms": 3000, "count": 1}]})
        fake.session_action(sid, "cut")
        gw.wait_for(r"resuming session %s" % sid)
        s = socket.create_connection(gw.listeners["web"], timeout=20)
        s.sendall(REQUEST)
        s.shutdown(socket.SHUT_WR)
        got = recv_until_eof(s)
        s.close()
        keep.close()
        print("reply through a resume: %d of %d body bytes" % (
            len(got.partition(b"\r\n\r\n")[2]), len(BODY)))
        assert got.endswith(BODY), got[:200]
        assert fake.session(sid)["stats"].get("resume_calls", 0) >= 1
        assert fake.session(sid)["stats"].get("smux_streams", 0) >= 2
    finally:
        fake.set_faults({"api": []})
        assert gw.close() == 0
