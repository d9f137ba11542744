"""See what happened: the audit log, the metrics endpoint and `ssmgate status
--watch`, end to end. Real ssh, nc and curl go through the gateway to the fake
AWS; the audit lines and the metrics are then checked against what was sent
(bytes), what the fake saw (its SessionIds, its call log) and what the fake
was told to fail (an injected AccessDenied and throttles). The metrics page
is read by curl and parsed by the Prometheus client library's own parser;
the live view runs on a real pseudo-terminal."""

import json
import os
import pty
import pwd
import re
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness import (EchoServer, FAKE_DIR, Gateway, SSMGATE_BIN,
                     recv_exact)

sys.path.insert(0, FAKE_DIR)
from fakeaws import FakeAws  # noqa: E402
from sshd import Sshd  # noqa: E402

WEB = ["i-0123456789abcdef0", "i-0123456789abcdef1", "i-0123456789abcdef2",
       "i-0123456789abcdef3"]
METRICS_RE = re.compile(r"ssmgate: metrics on http://(\S+)/metrics")


def config(audit, extra=""):
    return ("[gateway]\nmessage_rate = 0\naudit_log = %s\n"
            "metrics_listen = 127.0.0.1:0\n%s"
            "[forward echo]\nlisten = 127.0.0.1:0\ntarget = %s\nport = 7\n"
            "[forward mecho]\nlisten = 127.0.0.1:0\ntarget = %s\nport = 7\n"
            "[route local]\nmatch = 127.0.0.1\nvia = direct\n"
            % (audit, extra, WEB[0], WEB[1]))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("observe")
    audit = str(tmp / "audit.log")
    with EchoServer() as echo, FakeAws(pace_ms=0) as fake, \
            Sshd(fake.state_dir, instance_id="*") as sd:
        fake.set_instances({iid: {"name": "web-%d" % i,
                                  "ports": {"22": sd.port, "7": echo.port}}
                            for i, iid in enumerate(WEB)})
        with Gateway(config(audit), env=fake.env()) as gw:
            url = "http://%s/metrics" % METRICS_RE.search(
                gw.stderr_text()).group(1)
            yield {"fake": fake, "sshd": sd, "gw": gw, "audit": audit,
                   "url": url, "tmp": tmp, "echo": echo}


# ---- helpers ----

def audit_lines(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data == b"" or data.endswith(b"\n")
    return [json.loads(line) for line in data.decode().splitlines()]


def wait_audit(path, pred, timeout=20):
    """The first audit line pred accepts, waiting for it to be written."""
    deadline = time.time() + timeout
    while True:
        lines = audit_lines(path) if os.path.exists(path) else []
        hit = [x for x in lines if pred(x)]
        if hit:
            return hit[0]
        assert time.time() < deadline, "no such audit line in:\n%s" % \
            "\n".join(json.dumps(x) for x in lines[-10:])
        time.sleep(0.05)


def scrape(url):
    """The metrics page through curl: status line checked, body parsed by
    the Prometheus client library into {(name, labels): value}."""
    r = subprocess.run(["curl", "-sS", "-i", "--max-time", "10", url],
                       capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert b"Content-Type: text/plain; version=0.0.4; charset=utf-8" in head
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def val(snap, name, **labels):
    return snap.get((name, tuple(sorted(labels.items()))), 0)


def delta(before, after, name, **labels):
    return val(after, name, **labels) - val(before, name, **labels)


def echo_through(addr, data, sock=None):
    """Sends data through a forward to the echo server and reads it back;
    returns the (still open) socket."""
    s = sock or socket.create_connection(addr, timeout=30)
    s.sendall(data)
    assert recv_exact(s, len(data)) == data
    return s


def fake_sessions(fake, target, document):
    return {sid for sid, x in fake.sessions().items()
            if x["target"] == target and x["document"] == document}


def ssh(world, target, *cmd):
    gw, sd = world["gw"], world["sshd"]
    return subprocess.run(
        ["ssh"] + gw.ssh_opts("-o", "IdentitiesOnly=no") +
        ["%s@%s" % (sd.user, target)] + list(cmd),
        capture_output=True, text=True, timeout=60)


# ---- the audit log ----

def test_audit_line_for_ssh_names_the_session(world):
    """ssh through SOCKS to a Name: one line with who (the local user the
    kernel says owns the client socket), what (Name and the instance it
    resolved to, document, OS user) and the SessionId the fake gave."""
    r = ssh(world, "web-0", "echo", "audited")
    assert r.returncode == 0 and r.stdout == "audited\n", r.stderr
    line = wait_audit(world["audit"], lambda x: x["target"] == "web-0")
    assert line["outcome"] == "ok"
    assert line["event"] == "tunnel"
    assert line["kind"] == "ssh"
    # ssh rides a warm port forward to port 22 (ssh_document = auto)
    assert line["document"] == "AWS-StartPortForwardingSession"
    assert line["instance"] == WEB[0]
    assert line["os_user"] == world["sshd"].user
    assert line["port"] == 22
    assert line["protocol"] == "socks5"
    assert line["listener"] == "socks"
    assert line["request"] == "%s@web-0:22" % world["sshd"].user
    assert line["region"] == "us-east-1"
    # nc -X 5 runs as this user: the kernel's socket table says so.
    assert line["local_uid"] == os.getuid()
    assert line["local_user"] == pwd.getpwuid(os.getuid()).pw_name
    assert line["gateway_user"] == pwd.getpwuid(os.geteuid()).pw_name
    assert re.match(r"127\.0\.0\.1:\d+$", line["client"])
    assert line["session_id"] in fake_sessions(world["fake"], WEB[0],
                                               "AWS-StartPortForwardingSession")
    assert line["joined_session"] is False
    assert line["resumes"] == 0
    assert line["bytes_up"] > 1000 and line["bytes_down"] > 1000
    assert line["open_ms"] > 0 and line["duration_ms"] >= line["open_ms"]
    for key in ("time", "start"):
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", line[key])
    st = os.stat(world["audit"])
    assert st.st_mode & 0o777 == 0o600


def test_audit_line_for_forward_counts_every_byte(world):
    """A [forward] port: the bytes each way are exactly what went through;
    a second connection joins the open smux session (same SessionId, no
    StartSession) and says so."""
    gw, fake = world["gw"], world["fake"]
    n_up = 123457
    s = echo_through(gw.listeners["echo"], os.urandom(n_up))
    s.close()
    first = wait_audit(world["audit"],
                       lambda x: x["listener"] == "echo" and
                       x["bytes_up"] == n_up)
    assert first["outcome"] == "ok"
    assert first["bytes_down"] == n_up
    assert first["protocol"] == "forward"
    assert first["route"] == "forward echo"
    assert first["document"] == "AWS-StartPortForwardingSession"
    assert first["target"] == WEB[0] and first["port"] == 7
    assert first["session_id"] in fake_sessions(
        fake, WEB[0], "AWS-StartPortForwardingSession")
    starts = len(fake.calls("StartSession"))
    s = echo_through(gw.listeners["echo"], b"again")
    s.close()
    second = wait_audit(world["audit"],
                        lambda x: x["listener"] == "echo" and
                        x["conn"] > first["conn"])
    assert second["joined_session"] is True
    assert second["session_id"] == first["session_id"]
    assert second["bytes_up"] == 5 and second["bytes_down"] == 5
    assert len(fake.calls("StartSession")) == starts


def test_audit_line_counts_a_resume(world):
    """The fake cuts the data channel under a live tunnel: the gateway
    resumes, and the tunnel's line says how many times."""
    gw, fake = world["gw"], world["fake"]
    before = scrape(world["url"])
    s = echo_through(gw.listeners["mecho"], b"x" * 5000)
    t = [x for x in gw.status()["tunnels"] if x["listener"] == "mecho"]
    assert len(t) == 1 and t[0]["session_id"], t
    sid = t[0]["session_id"]
    assert sid in fake_sessions(fake, WEB[1], "AWS-StartPortForwardingSession")
    fake.session_action(sid, "cut")
    fake.wait_for(lambda: fake.session(sid)["stats"].get("resumes", 0) >= 1, 30,
                  "resume")
    echo_through(None, b"y" * 7000, sock=s)
    s.close()
    line = wait_audit(world["audit"], lambda x: x["session_id"] == sid and
                      x["listener"] == "mecho")
    assert line["resumes"] == 1
    assert line["bytes_up"] == 12000 and line["bytes_down"] == 12000
    after = scrape(world["url"])
    assert delta(before, after, "ssmgate_resumes_total", result="ok") == 1


def test_audit_line_for_a_session_the_service_ends(world):
    """The service ends a shared port-forward session under a live tunnel
    (channel_closed): that tunnel broke, and its line says so with the
    service's words."""
    gw, fake = world["gw"], world["fake"]
    s = echo_through(gw.listeners["echo"], b"z" * 100)
    sid = [x for x in gw.status()["tunnels"]
           if x["listener"] == "echo"][0]["session_id"]
    fake.session_action(sid, "channel_closed",
                        {"output": "Session terminated by the admin"})
    line = wait_audit(world["audit"], lambda x: x["session_id"] == sid and
                      x["outcome"] != "ok")
    assert line["outcome"] == "broken"
    assert "Session terminated by the admin" in line["reason"]
    assert line["bytes_up"] == 100 and line["bytes_down"] == 100
    s.close()


def test_audit_reopens_after_rotation(world):
    """logrotate without copytruncate: rename, SIGHUP, and the next line is
    in a fresh 0600 file; even a broken configuration does not stop the
    reopen."""
    gw, audit = world["gw"], world["audit"]
    rotated = audit + ".1"
    os.rename(audit, rotated)
    with open(gw.config_path) as f:
        good = f.read()
    with open(gw.config_path, "w") as f:
        f.write(good + "\n[gateway]\nbogus_key = 1\n")
    gw.proc.send_signal(signal.SIGHUP)
    gw.wait_for("SIGHUP: keeping the old configuration")
    with open(gw.config_path, "w") as f:
        f.write(good)
    s = echo_through(gw.listeners["echo"], b"after rotation")
    s.close()
    line = wait_audit(audit, lambda x: x["bytes_up"] == 14)
    assert line["listener"] == "echo"
    assert os.stat(audit).st_mode & 0o777 == 0o600
    assert all(x["bytes_up"] != 14 for x in audit_lines(rotated))
    assert len(audit_lines(rotated)) >= 3


# ---- the metrics ----

def test_metrics_after_known_traffic(world):
    """Counts after traffic whose outcome is known: one forward tunnel of
    exact size, a refused name, an AccessDenied the fake injects, two
    throttles the fake injects (each answer is counted), a warm join."""
    gw, fake, url = world["gw"], world["fake"], world["url"]
    host, port = gw.socks
    before = scrape(url)
    # An ok tunnel on a new session: StartSession ok, exact bytes.
    fake.set_faults({"api": [{"action": "StartSession", "kind": "throttle",
                              "count": 2}]})
    s = socket.create_connection((host, port), timeout=30)
    s.sendall(b"\x05\x01\x00")
    assert s.recv(2) == b"\x05\x00"
    name = WEB[3].encode()
    s.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + b"\x00\x07")
    assert recv_exact(s, 10)[1] == 0
    # A second connection to the same target and port joins the session
    # (the first is open and idle: no reason to spread).
    s2 = socket.create_connection((host, port), timeout=30)
    s2.sendall(b"\x05\x01\x00")
    assert s2.recv(2) == b"\x05\x00"
    s2.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + b"\x00\x07")
    assert recv_exact(s2, 10)[1] == 0
    echo_through(None, b"m" * 40000, sock=s)
    mid = scrape(url)
    assert val(mid, "ssmgate_tunnels_open") == 2
    # Live tunnels' bytes count while they run, not only when they end.
    assert delta(before, mid, "ssmgate_bytes_total", direction="up") == 40000
    assert delta(before, mid, "ssmgate_bytes_total",
                 direction="down") == 40000
    s.close()
    s2.close()
    # Refused: not an instance, a Name or a route.
    r = subprocess.run(["nc", "-X", "5", "-x", "%s:%d" % (host, port),
                        "nowhere.example", "80"], input=b"x",
                       capture_output=True, timeout=30)
    assert r.returncode != 0
    # Refused by AWS: AccessDeniedException from StartSession.
    fake.set_faults({"api": [{"action": "StartSession", "kind": "deny",
                              "count": 1}]})
    r = subprocess.run(["nc", "-X", "5", "-x", "%s:%d" % (host, port), WEB[2],
                        "8"], input=b"x", capture_output=True, timeout=30)
    assert r.returncode != 0
    wait_audit(world["audit"], lambda x: x["request"] == WEB[2] + ":8")
    wait_audit(world["audit"], lambda x: x["request"] == WEB[3] + ":7" and
               x["joined_session"])
    after = scrape(url)
    assert delta(before, after, "ssmgate_tunnels_total", outcome="ok") == 2
    assert delta(before, after, "ssmgate_tunnels_total",
                 outcome="refused") == 2
    assert delta(before, after, "ssmgate_bytes_total",
                 direction="up") == 40000
    assert delta(before, after, "ssmgate_api_calls_total",
                 action="StartSession", code="AccessDeniedException") == 1
    assert delta(before, after, "ssmgate_api_calls_total",
                 action="StartSession", code="ThrottlingException") == 2
    assert delta(before, after, "ssmgate_api_calls_total",
                 action="StartSession", code="ok") == 1
    assert delta(before, after, "ssmgate_warm_hits_total") == 1
    assert delta(before, after, "ssmgate_tunnel_open_seconds_count") == 2
    assert val(after, "ssmgate_tunnel_open_seconds_bucket", le="+Inf") == \
        val(after, "ssmgate_tunnel_open_seconds_count")
    # The call log of the fake and the counters agree on StartSession.
    calls = fake.calls("StartSession")
    by_code = {}
    for c in calls:
        code = c.get("error") or "ok"
        by_code[code] = by_code.get(code, 0) + 1
    for code, n in by_code.items():
        assert val(after, "ssmgate_api_calls_total", action="StartSession",
                   code=code) == n, (code, by_code)


def test_metrics_exact_deltas_for_one_tunnel(world):
    """With nothing else going on, one tunnel moves the counters by exactly
    its own numbers."""
    gw, url = world["gw"], world["url"]
    before = scrape(url)
    s = echo_through(gw.listeners["echo"], b"q" * 4321)
    s.close()
    wait_audit(world["audit"], lambda x: x["bytes_up"] == 4321)
    after = scrape(url)
    assert delta(before, after, "ssmgate_tunnels_total", outcome="ok") == 1
    for o in ("broken", "refused", "timeout", "auth_failed", "bad_request",
              "aborted"):
        assert delta(before, after, "ssmgate_tunnels_total", outcome=o) == 0
    assert delta(before, after, "ssmgate_bytes_total", direction="up") == 4321
    assert delta(before, after, "ssmgate_bytes_total",
                 direction="down") == 4321
    assert val(after, "ssmgate_tunnels_open") == 0


def test_metrics_key_pushes(world):
    """Two ssh logins to one instance within 40 s: one SendSSHPublicKey,
    then the fresh push reused."""
    before = scrape(world["url"])
    for _ in range(2):
        r = ssh(world, WEB[3], "true")
        assert r.returncode == 0, r.stderr
    after = scrape(world["url"])
    assert delta(before, after, "ssmgate_key_pushes_total", result="ok") == 1
    assert delta(before, after, "ssmgate_key_pushes_total",
                 result="reused") == 1
    assert delta(before, after, "ssmgate_api_calls_total",
                 action="SendSSHPublicKey", code="ok") == 1


def test_metrics_http_edges(world):
    """Only GET /metrics: 404 elsewhere, 405 for other methods, 431 for a
    head that never ends; twenty silent clients do not lock a scrape out."""
    url = world["url"]
    hostport = url.split("/")[2]
    host, port = hostport.rsplit(":", 1)

    def curl(*args):
        r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w",
                            "%{http_code}", "--max-time", "10"] + list(args),
                           capture_output=True, text=True, timeout=20)
        return r.stdout

    assert curl(url.replace("/metrics", "/")) == "404"
    assert curl(url.replace("/metrics", "/metricsx")) == "404"
    assert curl(url + "?name[]=x") == "200"
    assert curl("-X", "POST", url) == "405"
    assert curl("-I", url) == "405"
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 5000)
    reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 431 "), reply
    s.close()
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(b"GET /metrics HTTP/3\r\n\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 505 ")
    s.close()
    idle = [socket.create_connection((host, int(port)), timeout=10)
            for _ in range(20)]
    t0 = time.time()
    scrape(url)
    assert time.time() - t0 < 5
    for c in idle:
        c.close()


def test_metrics_listener_moves_on_sighup(world):
    """A new metrics_listen on SIGHUP: the new port answers, the old one is
    closed."""
    gw = world["gw"]
    with open(gw.config_path) as f:
        good = f.read()
    old = world["url"]
    with open(gw.config_path, "w") as f:
        f.write(good.replace("metrics_listen = 127.0.0.1:0",
                             "metrics_listen = [::1]:0"))
    gw.proc.send_signal(signal.SIGHUP)
    m = gw.wait_for(r"ssmgate: metrics on http://(\[::1\]:\d+)/metrics")[0]
    new = "http://%s/metrics" % m.group(1)
    scrape(new)
    r = subprocess.run(["curl", "-sS", "--max-time", "5", old],
                       capture_output=True, timeout=10)
    assert r.returncode != 0
    with open(gw.config_path, "w") as f:
        f.write(good)
    gw.proc.send_signal(signal.SIGHUP)
    m = gw.wait_for(r"ssmgate: metrics on http://(127\.0\.0\.1:\d+)/metrics",
                    count=2)[-1]
    world["url"] = "http://%s/metrics" % m.group(1)
    scrape(world["url"])


# ---- outcomes the front end decides, on a direct-only gateway ----

def test_outcomes_auth_and_bad_requests(tmp_path):
    audit = str(tmp_path / "audit.log")
    with EchoServer() as echo:
        gw = Gateway("[gateway]\naudit_log = %s\nsocks_user = bob\n"
                     "socks_password = s3cret-pw\n"
                     "[route local]\nmatch = 127.0.0.1\nvia = direct\n"
                     % audit)
        try:
            host, port = gw.socks
            proxy = "http://%s:%d" % (host, port)
            r = subprocess.run(["curl", "-sS", "-p", "-x", proxy,
                                "--proxy-user", "bob:wrong",
                                "http://127.0.0.1:%d/" % echo.port],
                               capture_output=True, timeout=20)
            assert b"407" in r.stderr
            s = socket.create_connection((host, port), timeout=10)
            s.sendall(b"\x16\x03\x01garbage\r\n\r\n")
            s.recv(100)
            s.close()
            s = socket.create_connection((host, port), timeout=10)
            s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n"
                      b"Proxy-Authorization: Basic Ym9iOnMzY3JldC1wdw==\r\n"
                      b"\r\n" % echo.port)
            assert s.recv(100).startswith(b"HTTP/1.1 200")
            s.sendall(b"ping")
            assert recv_exact(s, 4) == b"ping"
            s.close()
            s = socket.create_connection((host, port), timeout=10)
            s.close()  # leaves before its request
            lines = {}
            for want in ("auth_failed", "bad_request", "ok", "aborted"):
                lines[want] = wait_audit(audit,
                                         lambda x, w=want: x["outcome"] == w)
            assert lines["auth_failed"]["protocol"] == "http"
            assert lines["auth_failed"]["proxy_user"] is None
            assert lines["ok"]["proxy_user"] == "bob"
            assert lines["ok"]["kind"] == "direct"
            assert lines["ok"]["bytes_up"] == 4
            assert lines["ok"]["session_id"] is None
            assert lines["bad_request"]["reason"]
            with open(audit, "rb") as f:
                text = f.read()
            assert b"s3cret-pw" not in text and b"Ym9i" not in text
        finally:
            assert gw.close() == 0


def test_audit_log_that_cannot_open_stops_the_start(tmp_path):
    gw = Gateway("[gateway]\naudit_log = %s/no/such/dir/audit.log\n"
                 % tmp_path, ready=False)
    assert gw.proc.wait(20) == 1
    assert "audit log %s/no/such/dir/audit.log: No such file or directory" \
        % tmp_path in gw.stderr_text()
    gw.stop()
    gw.assert_clean()  # the early exit closes what it opened
    r = subprocess.run([SSMGATE_BIN, "-t", "--config", "/dev/stdin"],
                       input="[gateway]\naudit_log = relative.log\n",
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1
    assert "/dev/stdin:2: [gateway] audit_log: expected an absolute path" in \
        r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as nobody")
def test_local_user_is_the_client_not_the_daemon(tmp_path):
    """A client run as another user (nobody) is named as that user: the
    owner of the client's socket, not the daemon's user."""
    audit = str(tmp_path / "audit.log")
    with EchoServer() as echo:
        gw = Gateway("[gateway]\naudit_log = %s\n"
                     "[route local]\nmatch = 127.0.0.1\nvia = direct\n" % audit)
        try:
            host, port = gw.socks
            r = subprocess.run(
                ["setpriv", "--reuid=nobody", "--regid=nogroup",
                 "--clear-groups", "nc", "-N", "-X", "5", "-x",
                 "%s:%d" % (host, port), "127.0.0.1", str(echo.port)],
                input=b"who am i\n", capture_output=True, timeout=30)
            assert r.stdout == b"who am i\n", r.stderr
            line = wait_audit(audit, lambda x: x["outcome"] == "ok")
            nobody = pwd.getpwnam("nobody")
            assert line["local_uid"] == nobody.pw_uid
            assert line["local_user"] == "nobody"
            assert line["gateway_user"] == pwd.getpwuid(os.geteuid()).pw_name
            assert line["bytes_up"] == 9 and line["bytes_down"] == 9
        finally:
            assert gw.close() == 0


def test_metrics_port_in_use_stops_the_start():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    gw = Gateway("[gateway]\nmetrics_listen = 127.0.0.1:%d\n" % port,
                 ready=False)
    try:
        assert gw.proc.wait(20) == 1
        assert "metrics: cannot listen on 127.0.0.1:%d: address already in " \
            "use" % port in gw.stderr_text()
    finally:
        gw.stop()
        taken.close()
    gw.assert_clean()


# ---- status --watch ----

class Pty:
    """A child on a pseudo-terminal; everything it writes is collected."""

    def __init__(self, argv, rows=40, cols=160):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execv(argv[0], argv)
        import fcntl
        import struct
        import termios
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ,
                    struct.pack("HHHH", rows, cols, 0, 0))
        self.out = b""

    def read_until(self, pred, timeout=15):
        deadline = time.time() + timeout
        while not pred(self.out):
            assert time.time() < deadline, self.out[-3000:]
            r, _, _ = select.select([self.fd], [], [], 0.1)
            if r:
                try:
                    d = os.read(self.fd, 65536)
                except OSError:
                    d = b""
                if not d:
                    break
                self.out += d
        return self.out

    def wait(self, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.read_until(lambda o: True, 1)
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                try:
                    while True:
                        d = os.read(self.fd, 65536)
                        if not d:
                            break
                        self.out += d
                except OSError:
                    pass
                return os.waitstatus_to_exitcode(st)
            time.sleep(0.05)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError("did not exit: %r" % self.out[-2000:])


def test_status_watch_redraws_in_place(world):
    """On a terminal: the alternate screen, a redraw from the home position
    every interval with the live tunnel and its rate, and SIGINT restores
    the screen and exits 0."""
    gw = world["gw"]
    s = echo_through(gw.listeners["echo"], b"w" * 3000)
    try:
        p = Pty([SSMGATE_BIN, "status", "--watch", "--interval", "0.3",
                 "--runtime-dir", gw.runtime_dir])
        out = p.read_until(lambda o: o.count(b"\x1b[H") >= 3 and
                           b"%s:7" % WEB[0].encode() in o)
        assert out.startswith(b"\x1b[?1049h\x1b[?25l\x1b[H")
        frame = out.split(b"\x1b[H")[2]
        assert b"tunnels 1 open" in frame
        assert b"(q quits)" in frame
        sid = [x for x in gw.status()["tunnels"]][0]["session_id"]
        assert sid in fake_sessions(world["fake"], WEB[0],
                                    "AWS-StartPortForwardingSession")
        assert sid.encode() in frame
        assert frame.endswith(b"\x1b[J")
        # Each line is cleared to its end: nothing of a longer old frame
        # stays behind.
        assert frame.count(b"\x1b[K\r\n") >= 7
        os.kill(p.pid, signal.SIGINT)
        assert p.wait() == 0
        assert p.out.endswith(b"\x1b[?25h\x1b[?1049l")
    finally:
        s.close()


def test_status_watch_follows_a_restart_and_quits_on_q(tmp_path):
    """The view keeps asking: a stopped daemon is said so, a new one is
    shown again; q quits and gives the terminal back."""
    rd = str(tmp_path / "run")
    gw = Gateway("", args=["--runtime-dir", rd])
    pid1 = gw.proc.pid
    p = Pty([SSMGATE_BIN, "status", "--watch", "--interval", "0.2",
             "--runtime-dir", rd])
    try:
        p.read_until(lambda o: b"pid %d " % pid1 in o)
        assert gw.close() == 0
        p.read_until(lambda o: b"cannot reach the daemon" in
                     o.split(b"pid %d " % pid1)[-1])
        gw2 = Gateway("", args=["--runtime-dir", rd])
        try:
            p.read_until(lambda o: b"pid %d " % gw2.proc.pid in o)
            os.write(p.fd, b"q")
            assert p.wait() == 0
            assert p.out.endswith(b"\x1b[?25h\x1b[?1049l")
        finally:
            assert gw2.close() == 0
    finally:
        try:
            os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_status_watch_into_a_pipe(world):
    """Not a terminal: frames one after another, no escape sequences;
    --json: one document per line."""
    gw = world["gw"]
    r = subprocess.run([SSMGATE_BIN, "status", "--watch", "--count", "3",
                        "--interval", "0.2", "--runtime-dir", gw.runtime_dir],
                       capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr
    assert b"\x1b" not in r.stdout
    frames = r.stdout.decode().split("\n\nssmgate ")
    assert len(frames) == 3, r.stdout
    assert all("ID     TARGET" in f for f in frames)
    r = subprocess.run([SSMGATE_BIN, "status", "--watch", "--count", "2",
                        "--interval", "0.2", "--json", "--runtime-dir",
                        gw.runtime_dir], capture_output=True, timeout=20)
    docs = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert len(docs) == 2 and all("gateway" in d for d in docs)
    assert docs[0]["gateway"]["audit_log"] == world["audit"]
    r = subprocess.run([SSMGATE_BIN, "status", "--watch", "--count", "1",
                        "--runtime-dir", str(world["tmp"] / "nothing")],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 1
    assert "cannot reach the daemon" in r.stdout
