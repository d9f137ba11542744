"""End-to-end tests of the listener core with real clients (nc, curl)
through the `direct` backend to loopback servers started here."""

import hashlib
import os
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from harness import (EchoServer, Gateway, recv_exact, recv_until_eof, rss_kb,
                     run_parallel)

DIRECT_ROUTES = """
[route local]
match = 127.0.0.1
via = direct

[route localhost]
match = localhost
via = direct
"""


class SinkSource:
    """Accepts one connection; hashes what it reads and/or sends `send`
    bytes of a deterministic pattern, then closes."""

    def __init__(self, send=0):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.send = send
        self.received = hashlib.sha256()
        self.nreceived = 0
        self.sent_hash = None
        self.done = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        try:
            self._serve()
        except OSError:
            pass  # the client went away (the slow-reader test closes early)
        finally:
            self.done.set()

    def _serve(self):
        c, _ = self.sock.accept()
        if self.send:
            h = hashlib.sha256()
            chunk = pattern(1 << 20)
            left = self.send
            while left:
                n = min(left, len(chunk))
                c.sendall(chunk[:n])
                h.update(chunk[:n])
                left -= n
            self.sent_hash = h.hexdigest()
            c.shutdown(socket.SHUT_WR)
        while True:
            d = c.recv(1 << 20)
            if not d:
                break
            self.received.update(d)
            self.nreceived += len(d)
        c.close()
        self.sock.close()


def pattern(n):
    block = hashlib.sha256(b"ssmgate").digest() * 32  # 1 KiB
    return (block * (n // len(block) + 1))[:n]


def socks5_connect(port, host, dport, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(b"\x05\x01\x00")
    assert s.recv(2) == b"\x05\x00"
    name = host.encode()
    s.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name +
              struct.pack(">H", dport))
    rep = recv_exact(s, 10)
    return s, rep


@pytest.fixture
def echo():
    with EchoServer() as e:
        yield e


@pytest.fixture
def gw():
    g = Gateway(DIRECT_ROUTES)
    yield g
    assert g.close() == 0


def run(cmd, data=b"", timeout=30):
    return subprocess.run(cmd, input=data, capture_output=True,
                          timeout=timeout)


@pytest.mark.parametrize("proto", ["5", "4", "connect"])
def test_nc_through_each_protocol(gw, echo, proto):
    """nc -X 5 (SOCKS5), -X 4 (SOCKS4, resolved locally), -X connect."""
    host, port = gw.socks
    line = b"hello via %s\n" % proto.encode()
    r = run(["nc", "-N", "-X", proto, "-x", "%s:%d" % (host, port),
             "127.0.0.1", str(echo.port)], line)
    assert r.returncode == 0, r.stderr
    assert r.stdout == line


def test_curl_socks5_hostname_and_http_proxy(gw, tmp_path):
    (tmp_path / "index.html").write_text("ssmgate works\n")
    web = subprocess.Popen(["/usr/bin/python3", "-m", "http.server", "0",
                            "--bind", "127.0.0.1"], cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        line = web.stdout.readline().decode()
        wport = int(line.split("port ")[1].split()[0])
        host, port = gw.socks
        r = run(["curl", "-sS", "--socks5-hostname", "%s:%d" % (host, port),
                 "http://localhost:%d/index.html" % wport])
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"ssmgate works\n"
        r = run(["curl", "-sS", "-p", "-x", "http://%s:%d" % (host, port),
                 "http://127.0.0.1:%d/index.html" % wport])
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"ssmgate works\n"
    finally:
        web.kill()
        web.wait()


def test_unrouted_host_is_refused_with_ruleset_code(gw, echo):
    host, port = gw.socks
    s, rep = socks5_connect(port, "example.com", 80)
    assert rep[:2] == b"\x05\x02"  # not allowed by ruleset
    s.close()
    r = run(["nc", "-X", "5", "-x", "%s:%d" % (host, port), "example.com",
             "80"])
    assert r.returncode != 0
    assert b"not allowed by ruleset" in r.stderr
    gw.wait_for("route: example.com:80")


def test_refused_port_maps_to_refused(gw):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()
    s, rep = socks5_connect(gw.socks[1], "127.0.0.1", dead_port)
    assert rep[:2] == b"\x05\x05"
    s.close()


@pytest.mark.parametrize("payload,expect", [
    (b"\x05\x00", b""),                            # zero methods: closed
    (b"\x05\x01\x02", b"\x05\xff"),                # no acceptable method
    (b"\x05\x01\x00\x05\x02\x00\x01\x7f\x00\x00\x01\x00\x50",
     b"\x05\x00\x05\x07"),                         # BIND unsupported
    (b"\x05\x01\x00\x05\x01\x00\x09", b"\x05\x00\x05\x08"),  # bad ATYP
    (b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 400"),  # origin-form: no proxy request
    (b"CONNECT nohost HTTP/1.1\r\n\r\n", b"HTTP/1.1 400"),
    (b"\x04\x02\x00\x50\x7f\x00\x00\x01\x00", b"\x00\x5b"),  # SOCKS4 BIND
])
def test_malformed_requests_answered_and_daemon_survives(gw, echo, payload,
                                                         expect):
    s = socket.create_connection(gw.socks, timeout=10)
    s.sendall(payload)
    got = b""
    try:
        while True:
            d = s.recv(4096)
            if not d:
                break
            got += d
    except ConnectionResetError:
        pass
    s.close()
    assert got.startswith(expect), got
    # Still serving.
    r = run(["nc", "-N", "-X", "5", "-x", "%s:%d" % gw.socks, "127.0.0.1",
             str(echo.port)], b"still alive\n")
    assert r.stdout == b"still alive\n"


def test_truncated_request_times_out(echo):
    g = Gateway("[gateway]\nrequest_timeout_ms = 500\n" + DIRECT_ROUTES)
    try:
        s = socket.create_connection(g.socks, timeout=10)
        s.sendall(b"\x05\x01\x00\x05\x01\x00\x03\x10i-01")  # cut short
        t0 = time.time()
        got = recv_until_eof(s)
        assert time.time() - t0 < 5
        assert got.startswith(b"\x05\x00")
        s.close()
    finally:
        assert g.close() == 0


def test_connection_limit(echo):
    g = Gateway("[gateway]\nmax_connections = 5\n" + DIRECT_ROUTES)
    try:
        held = [socks5_connect(g.socks[1], "127.0.0.1", echo.port)[0]
                for _ in range(5)]
        s = socket.create_connection(g.socks, timeout=10)
        try:
            s.sendall(b"\x05\x01\x00")
            got = s.recv(16)
        except ConnectionResetError:
            got = b""  # closed before our greeting was read
        assert got == b""  # closed at once, no reply
        g.wait_for("connection limit|max_connections")
        for h in held:
            h.close()
        time.sleep(0.3)
        r = run(["nc", "-N", "-X", "5", "-x", "%s:%d" % g.socks, "127.0.0.1",
                 str(echo.port)], b"ok\n")
        assert r.stdout == b"ok\n"
    finally:
        assert g.close() == 0


def transfer_size():
    # 200 MB as the issue asks; the sanitizer build moves the same bytes.
    return 200 * 1024 * 1024


def test_200mb_each_way_sha256(gw):
    size = transfer_size()
    # Upload: client -> ssmgate -> sink.
    sink = SinkSource()
    s, rep = socks5_connect(gw.socks[1], "127.0.0.1", sink.port)
    assert rep[1] == 0
    h = hashlib.sha256()
    chunk = pattern(1 << 20)
    left = size
    while left:
        n = min(left, len(chunk))
        s.sendall(chunk[:n])
        h.update(chunk[:n])
        left -= n
    s.shutdown(socket.SHUT_WR)
    assert recv_exact(s, 1) == b""
    s.close()
    assert sink.done.wait(120)
    assert sink.nreceived == size
    assert sink.received.hexdigest() == h.hexdigest()
    # Download: source -> ssmgate -> client.
    src = SinkSource(send=size)
    s, rep = socks5_connect(gw.socks[1], "127.0.0.1", src.port)
    assert rep[1] == 0
    s.shutdown(socket.SHUT_WR)
    h = hashlib.sha256()
    got = 0
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        h.update(d)
        got += len(d)
    s.close()
    assert got == size
    assert src.done.wait(60)
    assert h.hexdigest() == src.sent_hash


def test_200_concurrent_connections(gw, echo):
    results = []

    def one(i):
        data = pattern(64 * 1024 + i)
        s, rep = socks5_connect(gw.socks[1], "127.0.0.1", echo.port, 60)
        assert rep[1] == 0
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = recv_exact(s, len(data) + 1)
        s.close()
        results.append(got == data)

    run_parallel(one, 200, 120)
    assert len(results) == 200 and all(results)


def test_slow_reader_does_not_grow_memory(gw):
    src = SinkSource(send=300 * 1024 * 1024)
    s, rep = socks5_connect(gw.socks[1], "127.0.0.1", src.port)
    assert rep[1] == 0
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    time.sleep(0.5)
    base = rss_kb(gw.proc.pid)
    time.sleep(3)  # the source keeps pushing; the client reads nothing
    grown = rss_kb(gw.proc.pid) - base
    assert grown < 64 * 1024, "RSS grew %d KiB" % grown
    assert not src.done.is_set()  # backpressure reached the source
    # The sanitizer build's allocator makes RSS noisier; the bound holds.
    s.close()


def test_sighup_reload_keeps_tunnel_and_adds_forward(gw, echo):
    s, rep = socks5_connect(gw.socks[1], "127.0.0.1", echo.port)
    assert rep[1] == 0
    s.sendall(b"before\n")
    assert recv_exact(s, 7) == b"before\n"
    with open(gw.config_path, "a") as f:
        f.write("\n[forward echo]\nlisten = 127.0.0.1:0\ntarget = direct\n"
                "remote_host = 127.0.0.1\nport = %d\n" % echo.port)
    gw.proc.send_signal(signal.SIGHUP)
    gw.wait_for("configuration reloaded")
    gw.wait_for(r"listening on 127\.0\.0\.1:\d+ \(echo\)")
    gw.wait_ready()
    s.sendall(b"after\n")
    assert recv_exact(s, 6) == b"after\n"
    s.close()
    f = socket.create_connection(gw.listeners["echo"], timeout=10)
    f.sendall(b"forwarded\n")
    assert recv_exact(f, 10) == b"forwarded\n"
    f.close()


def test_sighup_applies_ssm_options_and_names_restart_ones(gw, echo):
    """SIGHUP applies what can change live (here message_rate and
    payload_size, handed to the SSM backend) without touching an open
    tunnel, and warns once per key that only a restart applies (region:
    the AWS client's default)."""
    s, rep = socks5_connect(gw.socks[1], "127.0.0.1", echo.port)
    assert rep[1] == 0

    def round_trip(msg):
        s.sendall(msg)
        return recv_exact(s, len(msg)) == msg

    assert round_trip(b"before\n")
    with open(gw.config_path, "a") as f:
        f.write("\n[gateway]\nmessage_rate = 500\npayload_size = 2048\n"
                "region = eu-central-1\n")
    gw.proc.send_signal(signal.SIGHUP)
    gw.wait_for("SIGHUP: configuration reloaded")
    assert round_trip(b"after the reload\n")
    s.close()
    log = gw.stderr_text()
    assert "info  SIGHUP: message_rate changed" in log
    assert "info  SIGHUP: payload_size changed" in log
    assert "SIGHUP: new SSM sessions use message_rate 500, payload_size 2048" \
        in log
    assert ("warn  SIGHUP: region changed; restart ssmgate to apply"
            in log)
    # One line per changed key, nothing about the keys that kept their
    # value, and no restart warning for a key that was applied.
    assert log.count("SIGHUP: region changed") == 1
    assert "SIGHUP: listen changed" not in log
    assert "message_rate changed; restart" not in log
    # New tunnels work under the new configuration.
    r = run(["nc", "-N", "-X", "5", "-x", "%s:%d" % gw.socks, "127.0.0.1",
             str(echo.port)], b"new\n")
    assert r.stdout == b"new\n"


def test_bad_reload_keeps_old_config(gw, echo):
    with open(gw.config_path, "a") as f:
        f.write("\n[gateway]\nno_such_key = 1\n")
    gw.proc.send_signal(signal.SIGHUP)
    gw.wait_for("keeping the old configuration")
    r = run(["nc", "-N", "-X", "5", "-x", "%s:%d" % gw.socks, "127.0.0.1",
             str(echo.port)], b"ok\n")
    assert r.stdout == b"ok\n"


def test_sigterm_drains_live_tunnel(echo):
    g = Gateway(DIRECT_ROUTES)
    s, rep = socks5_connect(g.socks[1], "127.0.0.1", echo.port)
    assert rep[1] == 0
    g.proc.send_signal(signal.SIGTERM)
    g.wait_for("draining")
    s.sendall(b"during drain\n")
    assert recv_exact(s, 13) == b"during drain\n"
    s.close()
    assert g.proc.wait(15) == 0
    g.errfile.close()
    g.assert_clean()


def test_config_check_and_version(tmp_path):
    from harness import SSMGATE_BIN
    good = tmp_path / "good.ini"
    good.write_text("[gateway]\nlisten = 127.0.0.1:1080\n")
    r = run([SSMGATE_BIN, "-t", "--config", str(good)])
    assert r.returncode == 0, r.stderr
    bad = tmp_path / "bad.ini"
    bad.write_text("[gateway]\nlisten = 127.0.0.1:1080\nbogus = 1\n")
    r = run([SSMGATE_BIN, "-t", "--config", str(bad)])
    assert r.returncode == 1
    assert str(bad).encode() + b":3" in r.stderr
    r = run([SSMGATE_BIN, "--version"])
    assert r.returncode == 0 and r.stdout.startswith(b"ssmgate ")
    r = run([SSMGATE_BIN, "--no-such-flag"])
    assert r.returncode == 2


def test_status_lists_live_tunnel(gw, echo):
    from harness import SSMGATE_BIN
    s, rep = socks5_connect(gw.socks[1], "127.0.0.1", echo.port)
    assert rep[1] == 0
    r = run([SSMGATE_BIN, "status", "--json", "--config", gw.config_path,
             "--runtime-dir", gw.runtime_dir])
    assert r.returncode == 0, r.stderr
    import json
    tunnels = json.loads(r.stdout)["tunnels"]
    assert len(tunnels) == 1 and tunnels[0]["document"] == "direct"
    s.close()
