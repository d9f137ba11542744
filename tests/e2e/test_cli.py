"""The command line's rough edges (issue 15 item 6), with real ssh, curl and ncat:
a daemon on `listen = 127.0.0.1:0` (ssh-config and proxy ask it for its port),
options before and after the command, `proxy` and `ssh-config` with socks_user
credentials, `ssh-config --named` Host blocks, and the README's client recipes
that can be run here (ncat with SOCKS5 auth, curl socks5h://, ssh ControlMaster)."""

import json
import os
import re
import subprocess
import sys
import tempfile

import pytest

from harness import FAKE_DIR, SSMGATE_BIN, Gateway

sys.path.insert(0, FAKE_DIR)
from fakeaws import FakeAws  # noqa: E402
from sshd import Sshd  # noqa: E402

WEB = "i-0123456789abcdef0"
SSH_BASE = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with FakeAws(pace_ms=0) as fake, Sshd(fake.state_dir, instance_id=WEB) as sd:
        fake.set_instances({WEB: {"name": "web-1", "ports": {"22": sd.port}}})
        yield {"fake": fake, "sshd": sd, "tmp": tmp_path_factory.mktemp("cli")}


def gateway(w, extra="", forwards=""):
    """A daemon whose config says listen = 127.0.0.1:0 and nothing on its
    command line says otherwise (no --listen)."""
    cfg = ("[gateway]\nlisten = 127.0.0.1:0\nmessage_rate = 0\ndefault_user = %s\n%s"
           % (w["sshd"].user, extra)) + forwards
    return Gateway(cfg, args=["--log-level", "info"], env=w["fake"].env())


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=90, **kw)


def ssh(config_file, host, *cmd, opts=()):
    return run(["ssh", "-F", config_file] + SSH_BASE + list(opts) + [host] + list(cmd))


def write(w, name, text):
    path = w["tmp"] / name
    path.write_text(text)
    return str(path)


def test_port_0_ssh_config_and_proxy_with_real_ssh(world):
    fwd = "[forward ide]\nlisten = 127.0.0.1:0\ntarget = web-1\nport = 22\n"
    with gateway(world, forwards=fwd) as gw:
        assert gw.socks[1] != 0
        cfg, rdir = gw.config_path, gw.runtime_dir
        r = run([SSMGATE_BIN, "ssh-config", "--named", "--config", cfg,
                 "--runtime-dir", rdir])
        assert r.returncode == 0, r.stderr
        text = r.stdout
        # No port 0 anywhere; the proxy asks the daemon at each connect.
        assert ":0 " not in text and "Port 0" not in text
        assert "ProxyCommand %s --config %s --runtime-dir %s proxy %%r@%%h %%p" % (
            os.path.realpath(SSMGATE_BIN), cfg, rdir) in text
        assert "# The daemon's SOCKS/HTTP port: 127.0.0.1:%d (asked of the running " \
            "daemon)" % gw.socks[1] in text
        # --named: a real Host block for the forward, on its bound port.
        block = text[text.index("Host ide\n"):]
        assert "    HostName 127.0.0.1\n    Port %d\n" % gw.listeners["ide"][1] in block
        assert "    IdentityAgent %s/agent.sock\n" % rdir in block
        assert "    User %s\n" % world["sshd"].user in block
        assert "Host web-1 db-1" not in text
        path = write(world, "port0_ssh_config", text)
        r = ssh(path, WEB, "echo", "via-proxy")
        assert r.returncode == 0, r.stderr + gw.stderr_text()[-2000:]
        assert r.stdout.strip() == "via-proxy"
        r = ssh(path, "ide", "echo", "via-forward")
        assert r.returncode == 0, r.stderr + gw.stderr_text()[-2000:]
        assert r.stdout.strip() == "via-forward"
        # The control socket's answer, as documented.
        r = run([SSMGATE_BIN, "status", "--json", "--config", cfg, "--runtime-dir", rdir])
        assert r.returncode == 0, r.stderr
    # No daemon: a port 0 cannot be dialled, and the error says why.
    r = run([SSMGATE_BIN, "proxy", WEB, "22", "--config", cfg, "--runtime-dir", rdir],
            input="")
    assert r.returncode == 1
    assert "127.0.0.1:0, a port the OS chooses, and no daemon answers at " \
        "%s/control.sock" % rdir in r.stderr, r.stderr
    r = run([SSMGATE_BIN, "ssh-config", "--named", "--config", cfg, "--runtime-dir", rdir])
    assert r.returncode == 1 and "[forward ide] listens on 127.0.0.1:0" in r.stderr


@pytest.mark.parametrize("order", ["before", "after", "mixed"])
def test_options_before_and_after_the_command(world, order):
    with gateway(world) as gw:
        cfg, rdir = gw.config_path, gw.runtime_dir
        opts = ["--config", cfg, "--runtime-dir", rdir]
        words = {"before": opts + ["proxy", "%r@%h", "%p"],
                 "after": ["proxy", "%r@%h", "%p"] + opts,
                 "mixed": ["--config", cfg, "proxy", "%r@%h", "--runtime-dir", rdir,
                           "%p"]}[order]
        proxy = " ".join([SSMGATE_BIN] + words)
        r = run(["ssh", "-F", "/dev/null"] + SSH_BASE +
                ["-o", "IdentityAgent=%s/agent.sock" % rdir, "-o", "ProxyCommand=" + proxy,
                 "%s@%s" % (world["sshd"].user, WEB), "echo", order])
        assert r.returncode == 0, r.stderr + gw.stderr_text()[-2000:]
        assert r.stdout.strip() == order
        # status --json, with the options on either side.
        for argv in (["status", "--json"] + opts, ["--json"] + opts + ["status"],
                     opts + ["status", "--json"]):
            r = run([SSMGATE_BIN] + argv)
            assert r.returncode == 0, (argv, r.stderr)
            assert "tunnels" in json.loads(r.stdout)
    for argv in (["--config", cfg, "-t"], ["-t", "--config", cfg],
                 ["run", "-t", "--config", cfg]):
        r = run([SSMGATE_BIN] + argv)
        assert r.returncode == 0 and "is valid" in r.stdout, (argv, r.stderr)
    # An option the command does not take is an error, never ignored.
    r = run([SSMGATE_BIN, "--named", "status", "--config", cfg])
    assert r.returncode == 2 and "--named is not an option of status" in r.stderr
    r = run([SSMGATE_BIN, "proxy", WEB, "22", "extra", "--config", cfg])
    assert r.returncode == 2 and "wrong number of arguments" in r.stderr
    r = run([SSMGATE_BIN, "--config", cfg, "frobnicate"])
    assert r.returncode == 2 and "unknown command 'frobnicate'" in r.stderr


AUTH = "socks_user = alice\nsocks_password = s3cret pass%1\n"


def test_proxy_and_ssh_config_with_socks_user(world):
    with gateway(world, extra=AUTH) as gw:
        cfg, rdir = gw.config_path, gw.runtime_dir
        r = run([SSMGATE_BIN, "--config", cfg, "--runtime-dir", rdir, "ssh-config"])
        assert r.returncode == 0, r.stderr
        # nc cannot send SOCKS5 credentials: every ProxyCommand is ssmgate proxy.
        assert "nc -X" not in r.stdout
        path = write(world, "auth_ssh_config", r.stdout)
        r = ssh(path, WEB, "echo", "authed")
        assert r.returncode == 0, r.stderr + gw.stderr_text()[-2000:]
        assert r.stdout.strip() == "authed"
        # A fixed port (given here with --listen): still no nc, for the password.
        listen = "%s:%d" % gw.socks
        r = run([SSMGATE_BIN, "ssh-config", "--listen", listen, "--config", cfg,
                 "--runtime-dir", rdir])
        assert r.returncode == 0, r.stderr
        assert "nc -X" not in r.stdout and "--listen %s proxy" % listen in r.stdout
        r = ssh(write(world, "auth_listen_ssh_config", r.stdout), WEB, "echo", "fixed")
        assert r.returncode == 0 and r.stdout.strip() == "fixed", r.stderr
        # The credentials are the config's: a wrong password is the daemon's 407.
        bad = write(world, "bad.ini", open(cfg).read().replace("s3cret", "wrong"))
        r = run([SSMGATE_BIN, "proxy", WEB, "22", "--config", bad, "--runtime-dir", rdir],
                input="")
        assert r.returncode == 1 and "407" in r.stderr, r.stderr
        gw.wait_for(r"HTTP proxy authentication failed")
        # The README's recipes for other clients, with the same credentials.
        host, port = gw.socks
        ncat = ("ncat --proxy %s:%d --proxy-type socks5 --proxy-auth 'alice:s3cret pass%%%%1'"
                " %%h %%p" % (host, port))
        r = run(["ssh", "-F", "/dev/null"] + SSH_BASE +
                ["-o", "IdentityAgent=%s/agent.sock" % rdir, "-o", "ProxyCommand=" + ncat,
                 "%s@%s" % (world["sshd"].user, WEB), "echo", "ncat"])
        assert r.returncode == 0, r.stderr + gw.stderr_text()[-2000:]
        assert r.stdout.strip() == "ncat"
        # Without credentials the daemon refuses (nc -X 5 has no way to send any).
        r = run(["ssh", "-F", "/dev/null"] + SSH_BASE +
                ["-o", "ProxyCommand=nc -X 5 -x %s:%d %%h %%p" % (host, port), WEB, "true"])
        assert r.returncode == 255


def test_curl_socks5h_with_credentials_and_control_master(world):
    """curl's socks5h:// (remote DNS: the gateway sees the name) with
    user:password, and ssh ControlMaster: later commands share one tunnel."""
    with gateway(world, extra=AUTH) as gw:
        host, port = gw.socks
        # socks5:// resolves the name locally: an instance id is no DNS name.
        r = run(["curl", "-sS", "--max-time", "20", "-x",
                 "socks5://alice:s3cret%%20pass%%251@%s:%d" % (host, port),
                 "http://%s:22/" % WEB])
        assert r.returncode != 0 and "resolve" in r.stderr.lower(), r.stderr
        # socks5h:// sends it: the daemon opens the tunnel (sshd's banner).
        r = run(["curl", "-sS", "--max-time", "20", "-x",
                 "socks5h://alice:s3cret%%20pass%%251@%s:%d" % (host, port),
                 "--http0.9", "http://%s:22/" % WEB])
        assert "SSH-2.0-" in r.stdout, r.stderr
        # ControlMaster: the second ssh reuses the first's connection.
        ctl = os.path.join(tempfile.mkdtemp(prefix="cm", dir="/tmp"), "%C")
        opts = ["-o", "ControlMaster=auto", "-o", "ControlPath=" + ctl,
                "-o", "ControlPersist=30",
                "-o", "IdentityAgent=%s/agent.sock" % gw.runtime_dir,
                "-o", "ProxyCommand=%s proxy --config %s --runtime-dir %s %%r@%%h %%p" % (
                    SSMGATE_BIN, gw.config_path, gw.runtime_dir)]
        target = "%s@%s" % (world["sshd"].user, WEB)
        world["fake"].clear_calls()
        for i in range(3):
            r = run(["ssh", "-F", "/dev/null"] + SSH_BASE + opts + [target, "echo", str(i)])
            assert r.returncode == 0 and r.stdout.strip() == str(i), r.stderr
        # The master joined the warm port-forward session to port 22 that
        # curl's connection left (ssh_document = auto): no StartSession.
        assert len(world["fake"].calls("StartSession")) == 0
        run(["ssh", "-F", "/dev/null"] + SSH_BASE + opts + ["-O", "exit", target])
        opened = re.findall(r"conn \d+: open ", gw.stderr_text())
        assert len(opened) == 2  # curl, then the one master


def test_paramiko_recipe(world):
    """The README's paramiko lines: ssmgate proxy as its ProxyCommand and the
    daemon's agent through SSH_AUTH_SOCK, in a fresh interpreter."""
    with gateway(world) as gw:
        code = (
            "import os, paramiko\n"
            "os.environ['SSH_AUTH_SOCK'] = %r\n"
            "sock = paramiko.ProxyCommand(%r)\n"
            "c = paramiko.SSHClient()\n"
            "c.set_missing_host_key_policy(paramiko.AutoAddPolicy())\n"
            "c.connect('web-1', username=%r, sock=sock, allow_agent=True,\n"
            "          look_for_keys=False)\n"
            "print(c.exec_command('echo paramiko')[1].read().decode().strip())\n"
            "c.close()\n" % (
                os.path.join(gw.runtime_dir, "agent.sock"),
                "%s proxy --config %s --runtime-dir %s %s@web-1 22" % (
                    SSMGATE_BIN, gw.config_path, gw.runtime_dir, world["sshd"].user),
                world["sshd"].user))
        r = run(["/usr/bin/python3", "-c", code])
        assert r.returncode == 0, r.stderr + gw.stderr_text()[-2000:]
        assert r.stdout.strip() == "paramiko"
