"""The HTTP port as a plain HTTP proxy (issue 15, item 4): absolute-form
requests ("GET http://host/path", what curl -x, wget, python requests and
browsers send for http:// URLs) are forwarded through the same routing as
CONNECT, each on its own tunnel stream, with keep-alive on the client's
connection; and a real browser (headless Chromium) loads a page from a
routed host through the SOCKS and the HTTP proxy.

Every origin here sits behind the fake agent: a [route] sends *.internal
through an instance, so every byte crosses the SSM data channel."""

import base64
import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness import FAKE_DIR, Gateway, recv_until_eof

sys.path.insert(0, FAKE_DIR)
from child import free_port  # noqa: E402
from fakeaws import FakeAws  # noqa: E402

INST = "i-0123456789abcdef0"
USER, PASSWORD = "proxyuser", "s3cret:pa55"
PAGE = "<html><head><title>routed</title></head><body><p id='x'>%s</p></body></html>"


class Origin(BaseHTTPRequestHandler):
    """An HTTP/1.1 origin that keeps connections, records what it saw, and
    answers: GET a page naming the server and path (/close: no length, the
    body ends with the connection; /chunked: a chunked body); POST the
    SHA-256 and length of the body it read (Content-Length or chunked)."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def record(self):
        self.server.seen.append((self.command, self.path,
                                 {k.lower(): v for k, v in self.headers.items()}))

    def send_body(self, body, ctype="text/html"):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Keep-Alive", "timeout=5")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self.record()
        text = "%s %s" % (self.server.name, self.path)
        if self.path == "/close":
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"until the end " * 1000)
            return
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"first ", b"second ", b"third"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        if self.path.startswith("/big"):
            self.send_body(b"0123456789abcdef" * 65536, "application/octet-stream")
            return
        self.send_body((PAGE % text).encode())

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def do_POST(self):
        self.record()
        body = self.read_body()
        self.send_body(("%s %d %s" % (self.server.name, len(body),
                                       hashlib.sha256(body).hexdigest())).encode(),
                       "text/plain")


def origin(name, tls=None):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    srv.daemon_threads = True
    srv.name = name
    srv.seen = []
    if tls is not None:
        srv.socket = tls.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def tls_for(name, where):
    """A self-signed certificate for name: (server context, the base64
    SHA-256 of its public key, for Chromium's SPKI allow list)."""
    key, crt = os.path.join(where, "key.pem"), os.path.join(where, "crt.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                    "-out", crt, "-days", "1", "-subj", "/CN=" + name,
                    "-addext", "subjectAltName=DNS:" + name],
                   check=True, capture_output=True)
    der = subprocess.run("openssl x509 -in %s -pubkey -noout | openssl pkey "
                         "-pubin -outform der" % crt, shell=True, check=True,
                         capture_output=True).stdout
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    return ctx, base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    web, other = origin("web"), origin("other")
    tls, spki = tls_for("secure.internal", str(tmp_path_factory.mktemp("tls")))
    secure = origin("secure", tls)
    closed = free_port()
    with FakeAws(pace_ms=0) as fake:
        fake.set_instances({INST: {"name": "proxyhost", "hosts": {
            "web.internal": "127.0.0.1:%d" % web.server_port,
            "other.internal": "127.0.0.1:%d" % other.server_port,
            "secure.internal": "127.0.0.1:%d" % secure.server_port,
            "closed.internal": "127.0.0.1:%d" % closed}}})
        yield {"fake": fake, "web": web, "other": other, "secure": secure,
               "spki": spki}
    for srv in (web, other, secure):
        srv.shutdown()


ROUTE = "[route r]\nmatch = *.internal\nvia = %s\n" % INST


@pytest.fixture(scope="module")
def gw(world):
    with Gateway("[gateway]\nmessage_rate = 0\nlog_level = debug\n" + ROUTE,
                 env=world["fake"].env()) as g:
        yield g


def proxy_url(gw):
    return "http://%s:%d" % gw.socks


def curl(gw, *args, timeout=60):
    return subprocess.run(["curl", "-sS", "--max-time", "30", "-x", proxy_url(gw)]
                          + list(args), capture_output=True, timeout=timeout)


def raw(gw, data, timeout=20):
    """Sends data on one connection to the proxy port; every byte back."""
    s = socket.create_connection(gw.socks, timeout=timeout)
    s.sendall(data)
    try:
        return recv_until_eof(s)
    finally:
        s.close()


def test_curl_get_rewritten_for_the_origin(gw, world):
    before = len(world["web"].seen)
    r = curl(gw, "-H", "X-Custom: kept", "-H", "Connection: X-Drop",
             "-H", "X-Drop: secret", "http://web.internal/a/b?q=1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == PAGE % "web /a/b?q=1"
    method, path, headers = world["web"].seen[before]
    assert (method, path) == ("GET", "/a/b?q=1")
    assert headers["host"] == "web.internal"
    assert headers["x-custom"] == "kept"
    assert headers["connection"] == "close"
    assert headers["via"] == "1.1 ssmgate"
    for hop in ("proxy-connection", "x-drop", "keep-alive",
                "proxy-authorization"):
        assert hop not in headers


def test_curl_keep_alive_reroutes_each_request(gw, world):
    """One client connection, three requests to two hosts: each goes to its
    own host (re-routed per request), and curl reuses the connection."""
    r = curl(gw, "-v", "http://web.internal/one", "http://other.internal/two",
             "http://web.internal/three")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == "".join(PAGE % t for t in (
        "web /one", "other /two", "web /three"))
    err = r.stderr.decode()
    assert err.count("Re-using existing connection") == 2, err
    assert "Connection: close" not in err


def test_pipelined_requests_to_two_hosts(gw, world):
    """A client that pipelines: both requests in one write, to different
    hosts; answers come in order, each from its own host, and the second
    (Connection: close) ends the connection."""
    got = raw(gw, b"GET http://web.internal/p1 HTTP/1.1\r\nHost: web.internal\r\n\r\n"
                  b"GET http://other.internal/p2 HTTP/1.1\r\nHost: other.internal\r\n"
                  b"Connection: close\r\n\r\n")
    first = (PAGE % "web /p1").encode()
    second = (PAGE % "other /p2").encode()
    assert got.count(b"HTTP/1.1 200 OK") == 2, got
    assert got.index(first) < got.index(second), got
    assert got.endswith(second)
    assert b"Connection: close\r\n" in got.split(first)[1]


def test_uploads_content_length_and_chunked(gw, world, tmp_path):
    data = os.urandom(1536 * 1024)  # over 1 MiB: curl sends Expect: 100-continue
    f = tmp_path / "up.bin"
    f.write_bytes(data)
    want = "web %d %s" % (len(data), hashlib.sha256(data).hexdigest())
    r = curl(gw, "-v", "--data-binary", "@%s" % f, "http://web.internal/upload")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == want
    # The origin's interim 100 Continue reached curl before the body went.
    assert "HTTP/1.1 100 Continue" in r.stderr.decode(), r.stderr
    # curl posts to both URLs, on one connection, chunked.
    r = curl(gw, "-H", "Transfer-Encoding: chunked", "--data-binary",
             "@%s" % f, "http://web.internal/upload", "http://other.internal/up2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == want + want.replace("web", "other", 1)


def test_response_framings(gw, world):
    """A close-delimited body ends the client's connection with it; a
    chunked one is passed through whole; a 1 MiB body arrives whole."""
    r = curl(gw, "-v", "http://web.internal/close", "http://web.internal/chunked")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"until the end " * 1000 + b"first second third"
    assert "Closing connection" in r.stderr.decode() or \
        r.stderr.decode().count("Connected to") == 2
    r = curl(gw, "http://web.internal/big")
    assert r.stdout == b"0123456789abcdef" * 65536
    r = curl(gw, "-I", "http://web.internal/head")
    assert r.returncode == 0 and b"200 OK" in r.stdout


def test_wget_with_http_proxy_env(gw, world, tmp_path):
    out = tmp_path / "page.html"
    env = dict(os.environ, http_proxy=proxy_url(gw))
    r = subprocess.run(["wget", "-q", "-O", str(out), "http://web.internal/wget"],
                       env=env, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert out.read_text() == PAGE % "web /wget"


def test_python_requests_session(gw, world):
    """requests (urllib3) keeps its proxy connection across a session."""
    import requests
    s = requests.Session()
    s.proxies = {"http": proxy_url(gw)}
    for i in range(5):
        host = "web" if i % 2 == 0 else "other"
        r = s.get("http://%s.internal/req%d" % (host, i), timeout=30)
        assert r.status_code == 200
        assert r.text == PAGE % ("%s /req%d" % (host, i))
    r = s.post("http://other.internal/form", data=b"abc" * 1000, timeout=30)
    assert r.text == "other 3000 %s" % hashlib.sha256(b"abc" * 1000).hexdigest()
    s.close()


@pytest.mark.parametrize("request_bytes,status", [
    (b"GET https://web.internal/ HTTP/1.1\r\n\r\n", b"501"),
    (b"GET / HTTP/1.1\r\nHost: web.internal\r\n\r\n", b"400"),
    (b"GET http://web.internal/ HTTP/1.1\r\nBad Header: x\r\n\r\n", b"400"),
    (b"POST http://web.internal/ HTTP/1.1\r\nContent-Length: 5\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n", b"400"),
    (b"GET http://web.internal/ HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n", b"431"),
    (b"GET http://nowhere.example/ HTTP/1.1\r\n\r\n", b"403"),
    (b"GET http://closed.internal/ HTTP/1.1\r\n\r\n", b"502"),
], ids=["https", "origin-form", "bad-field", "cl-and-te", "huge-head",
        "unrouted", "refused"])
def test_hostile_and_failing_requests_get_a_clear_reply(gw, world, request_bytes,
                                                        status):
    got = raw(gw, request_bytes)
    assert got.startswith(b"HTTP/1.1 " + status), got
    assert b"Connection: close" in got
    body = got.split(b"\r\n\r\n", 1)[1]
    assert len(body) > 5, got  # the reason, in words


def test_refused_destination_names_the_reason(gw, world):
    got = raw(gw, b"GET http://closed.internal/ HTTP/1.1\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 502"), got
    assert b"refused" in got, got


def audit_lines(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data == b"" or data.endswith(b"\n")
    return [json.loads(x) for x in data.decode().splitlines()]


def scrape(url):
    """The metrics page, parsed by the Prometheus client library."""
    from prometheus_client.parser import text_string_to_metric_families
    r = subprocess.run(["curl", "-sS", "--max-time", "10", url],
                       capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr
    return {(x.name, tuple(sorted(x.labels.items()))): x.value
            for fam in text_string_to_metric_families(r.stdout.decode())
            for x in fam.samples}


def delta(before, after, name, **labels):
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0) - before.get(key, 0)


def test_plain_requests_are_audited_and_counted(world, tmp_path):
    """A connection of plain proxy requests is one audit line and one
    outcome, whatever number of requests it carried: the last request's
    destination and session, every byte of all of them; a request refused
    after others were served makes the connection's outcome refused."""
    audit = str(tmp_path / "audit.log")
    cfg = ("[gateway]\nmessage_rate = 0\naudit_log = %s\n"
           "metrics_listen = 127.0.0.1:0\n" % audit) + ROUTE
    with Gateway(cfg, env=world["fake"].env()) as g:
        url = re.search(r"ssmgate: metrics on (http://\S+)",
                        g.stderr_text()).group(1)
        before = scrape(url)
        # Two pipelined requests to two hosts; the second closes.
        served = raw(g, b"GET http://web.internal/a1 HTTP/1.1\r\n"
                        b"Host: web.internal\r\n\r\n"
                        b"GET http://other.internal/a2 HTTP/1.1\r\n"
                        b"Host: other.internal\r\nConnection: close\r\n\r\n")
        assert served.count(b"HTTP/1.1 200 OK") == 2, served
        # One served, then one to a port nobody listens on: a 502.
        cut = raw(g, b"GET http://web.internal/b1 HTTP/1.1\r\n\r\n"
                     b"GET http://closed.internal/b2 HTTP/1.1\r\n\r\n")
        assert cut.count(b"HTTP/1.1 200 OK") == 1, cut
        assert b"HTTP/1.1 502" in cut, cut
        # A lone refused one, and a bad one.
        refused = raw(g, b"GET http://closed.internal/c HTTP/1.1\r\n\r\n")
        assert refused.startswith(b"HTTP/1.1 502"), refused
        bad = raw(g, b"GET http://web.internal/ HTTP/1.1\r\nBad Header: x"
                     b"\r\n\r\n")
        assert bad.startswith(b"HTTP/1.1 400"), bad
        after = scrape(url)
    lines = audit_lines(audit)
    assert len(lines) == 4, lines
    assert all(x["protocol"] == "http-forward" for x in lines[:3]), lines
    ok, later, alone, malformed = lines
    sessions = {sid for sid, x in world["fake"].sessions().items()
                if x["target"] == INST}
    assert ok["outcome"] == "ok", ok
    assert ok["reason"] == "2 HTTP requests served"
    assert ok["request"] == "other.internal:80"
    assert (ok["target"], ok["host"], ok["port"]) == (INST, "other.internal", 80)
    assert ok["document"] == "AWS-StartPortForwardingSessionToRemoteHost"
    assert ok["route"] == "route r"
    assert ok["session_id"] in sessions
    assert ok["bytes_down"] == len(served)
    assert ok["bytes_up"] > 0 and ok["open_ms"] > 0
    assert later["outcome"] == "refused", later
    assert later["request"] == "closed.internal:80"
    # The origin's bytes; the 502 is the gateway's own, as a refusal's is.
    assert later["bytes_down"] == cut.index(b"HTTP/1.1 502")
    assert alone["outcome"] == "refused", alone
    assert "refused" in alone["reason"]
    assert malformed["outcome"] == "bad_request"
    assert malformed["protocol"] == "http"  # nothing was forwarded
    assert delta(before, after, "ssmgate_tunnels_total", outcome="ok") == 1
    assert delta(before, after, "ssmgate_tunnels_total", outcome="refused") == 2
    assert delta(before, after, "ssmgate_tunnels_total",
                 outcome="bad_request") == 1
    # A connection opened once, with its first request's stream.
    assert delta(before, after, "ssmgate_tunnel_open_seconds_count") == 3
    for d in ("up", "down"):
        assert delta(before, after, "ssmgate_bytes_total", direction=d) == \
            sum(x["bytes_" + d] for x in lines)


def test_proxy_auth_required_and_not_forwarded(world):
    cfg = ("[gateway]\nmessage_rate = 0\nsocks_user = %s\nsocks_password = %s\n"
           % (USER, PASSWORD)) + ROUTE
    with Gateway(cfg, env=world["fake"].env()) as g:
        r = curl(g, "-i", "http://web.internal/noauth")
        assert b"407" in r.stdout.split(b"\r\n")[0], r.stdout
        assert b"Proxy-Authenticate: Basic" in r.stdout
        before = len(world["web"].seen)
        r = curl(g, "-U", "%s:%s" % (USER, PASSWORD), "http://web.internal/auth",
                 "http://web.internal/auth2")
        assert r.stdout.decode() == PAGE % "web /auth" + PAGE % "web /auth2"
        for _, _, headers in world["web"].seen[before:]:
            assert "proxy-authorization" not in headers
        r = curl(g, "-i", "-U", "%s:wrong" % USER, "http://web.internal/bad")
        assert b"407" in r.stdout.split(b"\r\n")[0]


def test_idle_keep_alive_connection_closes_quietly(world):
    cfg = "[gateway]\nmessage_rate = 0\nrequest_timeout_ms = 500\n" + ROUTE
    with Gateway(cfg, env=world["fake"].env()) as g:
        s = socket.create_connection(g.socks, timeout=20)
        s.sendall(b"GET http://web.internal/idle HTTP/1.1\r\n\r\n")
        got = recv_until_eof(s)  # the origin's answer, then a quiet close
        s.close()
        assert got.count(b"HTTP/1.1") == 1 and got.endswith(
            (PAGE % "web /idle").encode()), got
        g.wait_for(r"idle keep-alive connection")


# ---- a real browser ----

CHROMIUM = shutil.which("chromium")


def chromium_dump(proxy, url, timeout=60, extra=()):
    """Headless Chromium through proxy: the page's DOM as it rendered it."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--user-data-dir=" + profile,
                "--proxy-server=" + proxy, "--proxy-bypass-list=<-loopback>"]
        argv += list(extra) + ["--dump-dom", url]
        r = subprocess.run(argv, capture_output=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout.decode("utf-8", "replace")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed "
                    "(scripts/install-deps adds it)")
@pytest.mark.parametrize("scheme", ["socks5", "http"])
def test_chromium_loads_routed_page(gw, world, scheme):
    host, port = gw.socks
    before = len(world["web"].seen)
    rc, dom = chromium_dump("%s://%s:%d" % (scheme, host, port),
                            "http://web.internal/browser-%s.html" % scheme)
    assert rc == 0, dom
    assert "<title>routed</title>" in dom, dom
    assert re.search(r"<p id=\"x\">web /browser-%s.html</p>" % scheme, dom), dom
    paths = [p for _, p, _ in world["web"].seen[before:]]
    assert "/browser-%s.html" % scheme in paths


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
def test_chromium_https_page_through_connect(gw, world):
    """An https:// page through the HTTP proxy port: Chromium tunnels it
    with CONNECT secure.internal:443 and checks the server's certificate
    itself (trusted here by its key's hash, the test's own CA stand-in)."""
    host, port = gw.socks
    rc, dom = chromium_dump("http://%s:%d" % (host, port),
                            "https://secure.internal/tls.html",
                            extra=["--ignore-certificate-errors-spki-list=" +
                                   world["spki"]])
    assert rc == 0, dom
    assert "<p id=\"x\">secure /tls.html</p>" in dom, dom
    assert ("GET", "/tls.html") in [(m, p) for m, p, _ in world["secure"].seen]
