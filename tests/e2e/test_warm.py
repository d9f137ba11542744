"""Warm sessions and spreading (issue 14): ssh rides a port-forward session
to the ssh port that stays warm for the next ssh; ssh_document = auto falls
back to AWS-StartSSHSession where the port-forward document is denied (and
remembers it); ssh_document = ssh keeps one session per connection; busy
connections to one target spread over sessions_per_target sessions, and one
session's end closes only its own connections; idle sessions end after
session_linger_ms and every warm one is terminated on SIGTERM; `ssmgate
status` lists the sessions. Real ssh/sshd on loopback, the fake AWS."""

import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from harness import Gateway, FAKE_DIR, SSMGATE_BIN, ThreadedServer, send_forever

sys.path.insert(0, FAKE_DIR)
from fakeaws import FakeAws  # noqa: E402
from sshd import Sshd  # noqa: E402

SSH_HOST = "i-0123456789abcdef0"
FALLBACK_HOST = "i-0123456789abcdef1"
DATA_HOST = "i-0123456789abcdef2"
PF = "AWS-StartPortForwardingSession"
SSHDOC = "AWS-StartSSHSession"
DATA_PORT = 9000


def source(c):
    """A destination that talks: 16 KiB every 20 ms (~800 KB/s) until the
    client goes; quiet ones (first byte b'q') only read."""
    try:
        if c.recv(1) == b"q":
            while c.recv(4096):
                pass
            c.close()
            return
    except OSError:
        c.close()
        return
    send_forever(c, b"x" * 16384, 0.02)


@pytest.fixture(scope="module")
def world():
    with FakeAws(pace_ms=0) as fake, Sshd(fake.state_dir, instance_id="*") as sd, \
            ThreadedServer(source) as src:
        fake.set_instances({
            SSH_HOST: {"ports": {"22": sd.port}},
            FALLBACK_HOST: {"ports": {"22": sd.port}},
            DATA_HOST: {"ports": {str(DATA_PORT): src.port}},
        })
        yield {"fake": fake, "sshd": sd}


def gateway(w, lines=""):
    return Gateway("[gateway]\nmessage_rate = 0\n" + lines, env=w["fake"].env())


def ssh(w, gw, host):
    r = subprocess.run(["ssh"] + gw.ssh_opts("-o", "IdentitiesOnly=no") + [
        "%s@%s" % (w["sshd"].user, host), "echo", "hi"],
        capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout == "hi\n", r.stderr + gw.stderr_text()[-3000:]


def starts(fake, target):
    return [c for c in fake.calls("StartSession")
            if c.get("params", {}).get("Target") == target]


def socks_open(gw, host, port):
    s = socket.create_connection(gw.socks, timeout=10)
    s.sendall(b"\x05\x01\x00")
    assert s.recv(2) == b"\x05\x00"
    h = host.encode()
    s.sendall(b"\x05\x01\x00\x03" + bytes([len(h)]) + h + struct.pack(">H", port))
    rep = s.recv(10)
    assert rep[:2] == b"\x05\x00", rep
    return s


def test_second_ssh_is_warm_and_status_lists_it(world):
    fake = world["fake"]
    with gateway(world) as gw:
        ws0 = len(fake.ws_log())
        ssh(world, gw, SSH_HOST)
        first = starts(fake, SSH_HOST)
        assert [c["params"]["DocumentName"] for c in first] == [PF]
        assert first[0]["params"]["Parameters"]["portNumber"] == ["22"]
        ws1 = len(fake.ws_log())
        assert ws1 == ws0 + 1
        pushes = len(fake.calls("SendSSHPublicKey"))
        ssh(world, gw, SSH_HOST)
        # No StartSession, no WebSocket, and the 60 s key is reused.
        assert len(starts(fake, SSH_HOST)) == 1
        assert len(fake.ws_log()) == ws1
        assert len(fake.calls("SendSSHPublicKey")) == pushes
        sid = first[0]["response"]["SessionId"]
        # Both connections' ends reach it at once: ssh's EOF is not held
        # for a quiet sshd (half_close_linger_ms, 2 s), which waits for it.
        deadline = time.time() + 1.5
        while True:
            doc = gw.status()
            warm = [s for s in doc["sessions"] if s["session_id"] == sid]
            if time.time() > deadline or (warm and warm[0]["streams"] == 0):
                break
            time.sleep(0.1)
        assert len(warm) == 1, doc["sessions"]
        w = warm[0]
        assert (w["target"], w["document"], w["streams"]) == (SSH_HOST, PF, 0)
        assert w["idle_s"] >= 0 and w["idle_since"] <= time.time()
        assert doc["gateway"]["warm_hits"] >= 1
        text = subprocess.run([SSMGATE_BIN, "status", "--runtime-dir", gw.runtime_dir],
                              capture_output=True, text=True, timeout=10).stdout
        assert sid in text and PF in text


def test_denied_port_forward_falls_back_once(world):
    fake = world["fake"]
    fake._ctl("POST", "/_fake/config", {"document_deny": [{"document": PF, "caller": "*"}]})
    try:
        with gateway(world) as gw:
            ssh(world, gw, FALLBACK_HOST)
            docs = [(c["params"]["DocumentName"], c.get("error"))
                    for c in starts(fake, FALLBACK_HOST)]
            assert docs == [(PF, "AccessDeniedException"), (SSHDOC, None)], docs
            ssh(world, gw, FALLBACK_HOST)
            docs = [c["params"]["DocumentName"] for c in starts(fake, FALLBACK_HOST)]
            assert docs == [PF, SSHDOC, SSHDOC], docs
            assert gw.stderr_text().count("ssh uses AWS-StartSSHSession") == 1
    finally:
        fake._ctl("POST", "/_fake/config", {"document_deny": []})
        fake.clear_calls()


def test_ssh_document_ssh_is_one_session_per_connection(world):
    fake = world["fake"]
    fake.clear_calls()
    with gateway(world, "ssh_document = ssh\n") as gw:
        ssh(world, gw, SSH_HOST)
        ssh(world, gw, SSH_HOST)
        docs = [c["params"]["DocumentName"] for c in starts(fake, SSH_HOST)]
        assert docs == [SSHDOC, SSHDOC]
        fake.wait_for(lambda: len(fake.calls("TerminateSession")) >= 2, 5,
                      "both sessions terminated")
        assert gw.status()["sessions"] == []


def session_of(gw, s):
    port = s.getsockname()[1]
    for t in gw.status()["tunnels"]:
        if t["client"].endswith(":%d" % port):
            return t["session_id"]
    raise AssertionError("no tunnel for port %d" % port)


def reader(s, got, stop):
    try:
        while not stop.is_set():
            d = s.recv(65536)
            if not d:
                break
            got[0] += len(d)
    except OSError:
        pass
    got[1] = True  # ended


def test_busy_connections_spread_and_one_loss_stays_local(world):
    fake = world["fake"]
    fake.clear_calls()
    with gateway(world, "sessions_per_target = 3\n") as gw:
        # Idle connections share one session: they spawn none.
        quiet = []
        for _ in range(3):
            quiet.append(socks_open(gw, DATA_HOST, DATA_PORT))
            quiet[-1].sendall(b"q")
            time.sleep(0.4)
        assert len({session_of(gw, s) for s in quiet}) == 1
        assert len(starts(fake, DATA_HOST)) == 1
        # Busy ones: a new session each while there is room, then the
        # least busy.
        conns, stop, state = [], threading.Event(), []
        for _ in range(4):
            s = socks_open(gw, DATA_HOST, DATA_PORT)
            s.sendall(b"g")
            got = [0, False]
            threading.Thread(target=reader, args=(s, got, stop), daemon=True).start()
            conns.append(s)
            state.append(got)
            time.sleep(0.5)
        sids = [session_of(gw, s) for s in conns]
        assert len(set(sids)) == 3, sids
        assert len(starts(fake, DATA_HOST)) == 3
        fake_sids = set(fake.sessions())
        assert set(sids) <= fake_sids
        # The service ends one session: its connections close, the rest flow.
        victim = sids[1]
        fake.session_action(victim, "channel_closed", {"output": "terminated"})
        deadline = time.time() + 5
        while time.time() < deadline and not all(
                state[i][1] for i, sid in enumerate(sids) if sid == victim):
            time.sleep(0.05)
        before = [g[0] for g in state]
        time.sleep(0.6)
        for i, sid in enumerate(sids):
            if sid == victim:
                assert state[i][1], "connection %d on the ended session still open" % i
            else:
                assert not state[i][1] and state[i][0] > before[i], \
                    "connection %d on another session stopped" % i
        for s in quiet:
            s.sendall(b"still here")  # the idle ones live on too
        assert all(session_of(gw, s) for s in quiet)
        stop.set()
        for s in conns + quiet:
            s.close()


def test_idle_session_ends_after_linger_and_sigterm_terminates_warm(world):
    fake = world["fake"]
    fake.clear_calls()
    gw = gateway(world, "session_linger_ms = 2500\n")
    try:
        s = socks_open(gw, DATA_HOST, DATA_PORT)
        s.sendall(b"q")
        time.sleep(0.3)
        s.close()
        sid = starts(fake, DATA_HOST)[0]["response"]["SessionId"]
        time.sleep(0.3)
        assert [x["session_id"] for x in gw.status()["sessions"]] == [sid]
        assert not fake.calls("TerminateSession")
        fake.wait_for(lambda: [c for c in fake.calls("TerminateSession")
                               if c["params"]["SessionId"] == sid], 5, "linger end")
        assert gw.status()["sessions"] == []
        # Two warm sessions (two targets' ports): SIGTERM ends both.
        ssh(world, gw, SSH_HOST)
        s = socks_open(gw, DATA_HOST, DATA_PORT)
        s.sendall(b"q")
        time.sleep(0.3)
        s.close()
        time.sleep(0.2)
        warm = {x["session_id"] for x in gw.status()["sessions"]}
        assert len(warm) == 2
    finally:
        assert gw.close() == 0
    done = {c["params"]["SessionId"] for c in fake.calls("TerminateSession")}
    assert warm <= done
