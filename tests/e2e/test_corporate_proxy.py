"""AWS through a corporate HTTPS proxy (issue 15, item 4): the API calls
and the data channel's WebSocket go through a real proxy (Debian's
tinyproxy on loopback), set by `https_proxy` in [gateway] or by the
environment, with Basic auth too; NO_PROXY sends a host direct.

The proof that every AWS byte went through the proxy: tinyproxy connects
out from 127.0.0.2 (its Bind), and the fake refuses AWS requests and
WebSocket upgrades from every other address (`only_from`), as a network
that lets only its proxy out would. Anything that bypassed the proxy
fails, and the fake counts it."""

import os
import re
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from harness import FAKE_DIR, Gateway, Process

sys.path.insert(0, FAKE_DIR)
from child import free_port  # noqa: E402
from fakeaws import FakeAws  # noqa: E402
from sshd import Sshd  # noqa: E402

INST = "i-0123456789abcdef0"
PROXY_OUT = "127.0.0.2"  # tinyproxy's outgoing address
USER, PASSWORD = "corpuser", "Pr0xy.pass_word"
TINYPROXY = "/usr/bin/tinyproxy"

pytestmark = pytest.mark.skipif(not os.path.exists(TINYPROXY),
                                reason="tinyproxy not installed "
                                "(scripts/install-deps adds it)")


class Tinyproxy(Process):
    """tinyproxy in the foreground on a loopback port, connecting out from
    PROXY_OUT, CONNECT allowed only to the given ports, optional Basic
    auth, every request in its log."""

    def __init__(self, connect_ports, auth=None):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="tinyproxy-")
        self.log = os.path.join(self.dir, "tinyproxy.log")
        lines = ["Port %d" % self.port, "Listen 127.0.0.1", "Bind %s" % PROXY_OUT,
                 "Timeout 600", 'LogFile "%s"' % self.log, "LogLevel Connect",
                 "MaxClients 200", "Allow 127.0.0.1", "DisableViaHeader Yes"]
        lines += ["ConnectPort %d" % p for p in connect_ports]
        if auth:
            lines.append("BasicAuth %s %s" % auth)
        conf = os.path.join(self.dir, "tinyproxy.conf")
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        super().__init__([TINYPROXY, "-d", "-c", conf], name="tinyproxy")
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("tinyproxy did not start:\n" +
                                       self.stderr_text())
                time.sleep(0.05)

    def connects(self):
        """The CONNECT targets it was asked for, in order."""
        try:
            with open(self.log) as f:
                text = f.read()
        except OSError:
            return []
        return re.findall(r"Request \(file descriptor \d+\): CONNECT (\S+)", text)

    def url(self, auth=None):
        return "http://%s127.0.0.1:%d" % ("%s:%s@" % auth if auth else "", self.port)


def aws_ports(fake):
    return (int(fake.api_url.rsplit(":", 1)[1]), int(fake.ws_url.rsplit(":", 1)[1]))


@pytest.fixture(scope="module")
def world():
    with FakeAws(pace_ms=0) as fake, Sshd(fake.state_dir, instance_id="*") as sd:
        fake.set_instances({INST: {"name": "behind-proxy", "ports": {"22": sd.port}}})
        yield {"fake": fake, "sshd": sd, "ports": aws_ports(fake)}


@pytest.fixture
def fake(world):
    """The fake for one test: only the proxy may reach it, counts clear."""
    f = world["fake"]
    f.set_only_from(PROXY_OUT)
    f.clear_peers()
    yield f
    f.set_only_from(None)


def env_without_proxies(extra=None):
    """The test's own proxy variables must not leak into the gateway."""
    e = {k: "" for k in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                         "no_proxy", "NO_PROXY", "http_proxy", "HTTP_PROXY")}
    e.update(extra or {})
    return e


def gateway(world, gateway_lines="", env=None):
    cfg = "[gateway]\nmessage_rate = 0\nconnect_timeout_ms = 15000\n" + gateway_lines
    e = dict(world["fake"].env())
    e.update(env_without_proxies(env))
    return Gateway(cfg, env=e)


def ssh(world, gw, *cmd, stdin=None):
    sd = world["sshd"]
    return subprocess.run(["ssh"] + gw.ssh_opts("-o", "IdentitiesOnly=no") +
                          ["%s@%s" % (sd.user, INST)] + list(cmd),
                          capture_output=True, timeout=90, input=stdin)


def check_all_through_proxy(fake, tp, world):
    peers = fake.peers()
    api_port, ws_port = world["ports"]
    assert peers["refused_api"] == 0 and peers["refused_ws"] == 0, peers
    assert set(peers["api"]) == {PROXY_OUT} and set(peers["ws"]) == {PROXY_OUT}, peers
    targets = tp.connects()
    assert "127.0.0.1:%d" % api_port in targets, targets
    assert "127.0.0.1:%d" % ws_port in targets, targets


def test_ssh_and_scp_through_proxy_from_config_key(world, fake, tmp_path):
    api_port, ws_port = world["ports"]
    with Tinyproxy([api_port, ws_port]) as tp:
        # The environment names a dead proxy: the config key beats it.
        dead = "http://127.0.0.1:%d" % free_port()
        with gateway(world, "https_proxy = %s\n" % tp.url(),
                     env={"HTTPS_PROXY": dead}) as gw:
            r = ssh(world, gw, "echo", "via-proxy")
            assert r.returncode == 0, r.stderr.decode() + gw.stderr_text()[-3000:]
            assert r.stdout == b"via-proxy\n"
            data = os.urandom(2 * 1024 * 1024)
            src = tmp_path / "up.bin"
            src.write_bytes(data)
            r = subprocess.run(["scp"] + gw.ssh_opts("-o", "IdentitiesOnly=no") +
                               [str(src), "%s@%s:%s" % (world["sshd"].user, INST,
                                                        tmp_path / "copy.bin")],
                               capture_output=True, timeout=120)
            assert r.returncode == 0, r.stderr
            assert (tmp_path / "copy.bin").read_bytes() == data
            gw.wait_for(r"go through the HTTPS proxy http://127\.0\.0\.1:%d "
                        r"\(https_proxy in \[gateway\]\)" % tp.port)
        check_all_through_proxy(fake, tp, world)
        assert fake.calls("StartSession") and fake.calls("SendSSHPublicKey")


def test_env_var_with_basic_auth(world, fake):
    api_port, ws_port = world["ports"]
    with Tinyproxy([api_port, ws_port], auth=(USER, PASSWORD)) as tp:
        with gateway(world, env={"HTTPS_PROXY": tp.url((USER, PASSWORD))}) as gw:
            r = ssh(world, gw, "echo", "authenticated")
            assert r.returncode == 0, r.stderr.decode() + gw.stderr_text()[-3000:]
            assert r.stdout == b"authenticated\n"
            text = gw.stderr_text()
            assert "with Basic auth (HTTPS_PROXY)" in text
        assert PASSWORD not in text
        check_all_through_proxy(fake, tp, world)


def test_wrong_proxy_password_is_a_clear_error(world, fake):
    api_port, ws_port = world["ports"]
    with Tinyproxy([api_port, ws_port], auth=(USER, PASSWORD)) as tp:
        with gateway(world, "https_proxy = %s\n" % tp.url((USER, "wrong")),
                     env={}) as gw:
            r = ssh(world, gw, "true")
            assert r.returncode != 0
            text = gw.stderr_text()
            assert re.search(r"407|[Pp]roxy", text), text[-3000:]
        assert "wrong" not in text.replace("wrong password", "")


def test_data_channel_needs_the_proxy_too(world, fake):
    """The API through the proxy but the proxy refuses the WebSocket's port:
    the tunnel fails with the proxy named, proving the data channel does
    not slip out directly."""
    api_port, _ = world["ports"]
    with Tinyproxy([api_port]) as tp:
        with gateway(world, "https_proxy = %s\n" % tp.url()) as gw:
            r = ssh(world, gw, "true")
            assert r.returncode != 0
            gw.wait_for(r"WebSocket connect through the HTTPS proxy "
                        r"http://127\.0\.0\.1:%d failed" % tp.port)
        peers = fake.peers()
        assert peers["refused_ws"] == 0 and peers["ws"] == {}, peers


def test_no_proxy_goes_direct(world, fake):
    """NO_PROXY names the endpoints' host: API and WebSocket go direct (the
    fake now refuses the proxy's address), and the proxy sees nothing."""
    fake.set_only_from("127.0.0.1")
    api_port, ws_port = world["ports"]
    with Tinyproxy([api_port, ws_port]) as tp:
        with gateway(world, env={"HTTPS_PROXY": tp.url(),
                                 "NO_PROXY": "localhost,127.0.0.1"}) as gw:
            r = ssh(world, gw, "echo", "direct")
            assert r.returncode == 0, r.stderr.decode() + gw.stderr_text()[-3000:]
        assert tp.connects() == []
    peers = fake.peers()
    assert set(peers["api"]) == {"127.0.0.1"} and set(peers["ws"]) == {"127.0.0.1"}


def test_none_beats_the_environment(world, fake):
    fake.set_only_from("127.0.0.1")
    dead = "http://127.0.0.1:%d" % free_port()
    with gateway(world, "https_proxy = none\n", env={"HTTPS_PROXY": dead}) as gw:
        r = ssh(world, gw, "true")
        assert r.returncode == 0, r.stderr.decode() + gw.stderr_text()[-3000:]


def test_without_the_proxy_nothing_gets_out(world, fake):
    """The peer rule bites: no proxy configured, and the gateway cannot
    reach the fake at all (what makes the tests above able to fail)."""
    with gateway(world, "connect_timeout_ms = 4000\n") as gw:
        r = ssh(world, gw, "true")
        assert r.returncode != 0
    assert fake.peers()["refused_api"] > 0


def test_bad_proxy_setting_stops_start_up(world):
    e = dict(world["fake"].env())
    e.update(env_without_proxies({"HTTPS_PROXY": "socks5://127.0.0.1:1080"}))
    gw = Gateway("[gateway]\n", env=e, ready=False)
    assert gw.proc.wait(20) != 0
    assert "HTTPS_PROXY: only http:// proxies" in gw.stderr_text()
    gw.stop()
