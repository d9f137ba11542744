"""Keyless SSH and port forwards end to end: real ssh/scp/sftp/rsync/curl
through ssmgate, the fake AWS (API + data channel agent) and a real sshd
whose AuthorizedKeysCommand accepts only keys pushed in the last 60 s."""

import json
import os
import re
import socket
import subprocess
import sys
import time

import pytest

from harness import (Gateway, SANITIZED, FAKE_DIR, SSMGATE_BIN, forwards_config,
                     recv_until_eof, run_parallel, sha256_file as sha)

sys.path.insert(0, FAKE_DIR)
from fakeaws import FakeAws  # noqa: E402
from sshd import Sshd  # noqa: E402

WEB = ["i-0123456789abcdef0", "i-0123456789abcdef1", "i-0123456789abcdef2"]
OFFLINE = "i-0aaaaaaaaaaaaaaa0"
STOPPED = "i-0bbbbbbbbbbbbbbb0"
DENIED = "i-0ccccccccccccccc0"
# scp/sftp each way; the 500 MiB runs are SSMGATE_LONG=1 (test_recycle, test_flow)
BIG = (50 if SANITIZED else 64) * 1024 * 1024


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("world")
    web = subprocess.Popen(["/usr/bin/python3", "-m", "http.server", "0",
                            "--bind", "127.0.0.1"], cwd=FAKE_DIR,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    wport = int(web.stdout.readline().decode().split("port ")[1].split()[0])
    with FakeAws(pace_ms=0) as fake, Sshd(fake.state_dir,
                                          instance_id="*") as sd:
        inst = {}
        for i, iid in enumerate(WEB):
            inst[iid] = {"name": "web-%d" % (i + 1), "ports": {"22": sd.port},
                         "hosts": {"web.internal": "127.0.0.1:%d" % wport}}
        inst[OFFLINE] = {"name": "sleepy", "ping_status": "ConnectionLost",
                         "ports": {"22": sd.port}}
        inst[STOPPED] = {"name": "stopped", "state": "stopped"}
        inst[DENIED] = {"name": "locked", "ports": {"22": sd.port},
                        "eic_deny": [{"user": sd.user}]}
        fake.set_instances(inst)
        cfg = forwards_config(("ide", WEB[0], "port = 22\nuser = %s\n" % sd.user)) + \
            "[route web]\nmatch = *.internal\nvia = web-1\n"
        try:
            with Gateway(cfg, env=fake.env()) as gw:
                yield {"fake": fake, "sshd": sd, "gw": gw, "tmp": tmp,
                       "wport": wport}
        finally:
            web.kill()
            web.wait()


def ssh_opts(w):
    return w["gw"].ssh_opts("-o", "IdentitiesOnly=no")


def ssh(w, target, *cmd, timeout=60):
    return subprocess.run(["ssh"] + ssh_opts(w) + [
        "%s@%s" % (w["sshd"].user, target)] + list(cmd),
        capture_output=True, text=True, timeout=timeout)


def test_ssh_true_with_no_key_file(world):
    fake = world["fake"]
    fake.clear_calls()
    t0 = time.time()
    r = ssh(world, WEB[0], "true")
    elapsed = time.time() - t0
    assert r.returncode == 0, r.stderr + world["gw"].stderr_text()[-3000:]
    print("ssh start to remote true: %.3f s" % elapsed)
    pushes = fake.calls("SendSSHPublicKey")
    assert len(pushes) == 1
    # The pushed key is the daemon's own (the .pub it keeps for ssh).
    with open(os.path.join(world["gw"].runtime_dir, "id_ed25519.pub")) as f:
        daemon_key = f.read().split()[1]
    keys = fake.eic_keys()
    assert any(daemon_key in json.dumps(k) for k in keys)
    # No private key anywhere in the runtime dir (key_file = no).
    assert not os.path.exists(os.path.join(world["gw"].runtime_dir,
                                           "id_ed25519"))
    # A second connect within 60 s reuses the push, and the warm
    # port-forward session to port 22 (test_warm has the rest).
    r = ssh(world, WEB[0], "true")
    assert r.returncode == 0, r.stderr
    assert len(fake.calls("SendSSHPublicKey")) == 1
    starts = fake.calls("StartSession")
    assert len(starts) == 1
    assert starts[0]["params"]["DocumentName"] == "AWS-StartPortForwardingSession"
    assert "ssmgate" in json.dumps(starts[-1]["params"])  # the Reason


def end_warm(fake, target):
    """The service ends target's live sessions (channel_closed), so the
    next connection starts a session of its own."""
    for sid, s in fake.sessions().items():
        if s["target"] == target and not s["terminated"]:
            fake.session_action(sid, "channel_closed", {"output": "ended"})
    time.sleep(0.3)


def test_scp_big_each_way_and_sftp_rsync(world):
    tmp = world["tmp"]
    src = tmp / "src.bin"
    with open(src, "wb") as f:
        f.write(os.urandom(BIG))
    up = tmp / "up.bin"
    down = tmp / "down.bin"
    user, opts = world["sshd"].user, ssh_opts(world)
    t0 = time.time()
    r = subprocess.run(["scp", "-q"] + opts + [str(src), "%s@%s:%s" % (
        user, WEB[1], up)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    t_up = time.time() - t0
    t0 = time.time()
    r = subprocess.run(["scp", "-q"] + opts + ["%s@%s:%s" % (user, WEB[1], up),
                                               str(down)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    t_down = time.time() - t0
    assert sha(src) == sha(up) == sha(down)
    print("scp %d MB: up %.1f MB/s, down %.1f MB/s" % (
        BIG >> 20, BIG / t_up / 1e6, BIG / t_down / 1e6))
    # sftp
    batch = tmp / "batch"
    batch.write_text("put %s %s\nget %s %s\n" % (src, tmp / "sftp.bin",
                                                 tmp / "sftp.bin",
                                                 tmp / "sftp2.bin"))
    r = subprocess.run(["sftp", "-q", "-b", str(batch)] + opts + [
        "%s@%s" % (user, WEB[1])], capture_output=True, text=True,
        timeout=600)
    assert r.returncode == 0, r.stderr
    assert sha(tmp / "sftp2.bin") == sha(src)
    # rsync over ssh
    small = tmp / "tree"
    small.mkdir()
    for i in range(20):
        (small / ("f%d" % i)).write_bytes(os.urandom(1000 + i))
    rsh = "ssh " + " ".join("'%s'" % o for o in opts)
    r = subprocess.run(["rsync", "-a", "-e", rsh, str(small) + "/",
                        "%s@%s:%s/" % (user, WEB[2], tmp / "tree2")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    for i in range(20):
        assert (tmp / "tree2" / ("f%d" % i)).read_bytes() == \
            (small / ("f%d" % i)).read_bytes()


def test_20_parallel_sessions_to_3_instances(world):
    results, errors = [], []

    def one(i):
        r = ssh(world, WEB[i % 3], "echo", "n%d" % i, timeout=120)
        ok = r.returncode == 0 and r.stdout.strip() == "n%d" % i
        results.append(ok)
        if not ok:
            errors.append("ssh %d: rc %s: %s" % (i, r.returncode, r.stderr[-500:]))

    run_parallel(one, 20, 180)
    assert len(results) == 20 and all(results), \
        "\n".join(errors) + world["gw"].stderr_text()[-3000:]


def test_forward_port_as_an_ide_would(world):
    host, port = world["gw"].listeners["ide"]
    agent = os.path.join(world["gw"].runtime_dir, "agent.sock")
    r = subprocess.run(["ssh", "-F", "/dev/null", "-p", str(port),
                        "-o", "StrictHostKeyChecking=no",
                        "-o", "UserKnownHostsFile=/dev/null",
                        "-o", "BatchMode=yes", "-o", "IdentityAgent=" + agent,
                        "%s@%s" % (world["sshd"].user, host), "echo", "ide"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ide"


def test_curl_through_routed_hostname_over_smux(world):
    host, port = world["gw"].socks
    r = subprocess.run(["curl", "-sS", "--socks5-hostname",
                        "%s:%d" % (host, port),
                        "http://web.internal:80/README.md"],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    with open(os.path.join(FAKE_DIR, "README.md"), "rb") as f:
        assert r.stdout == f.read()
    sessions = world["fake"].sessions()
    assert any(s.get("mode") == "mux" for s in sessions.values())


def socks_reply(w, host, port):
    s = socket.create_connection(w["gw"].socks, timeout=60)
    s.sendall(b"\x05\x01\x00")
    assert s.recv(2) == b"\x05\x00"
    name = host.encode()
    s.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name +
              port.to_bytes(2, "big"))
    rep = s.recv(10)
    s.close()
    return rep[1] if len(rep) > 1 else None


@pytest.mark.parametrize("target,code,log", [
    ("i-0fffffffffffffff0", 4, "TargetNotConnected"),
    ("sleepy", 4, "ping status is ConnectionLost"),
    ("nosuchname", 4, "no managed instance is named nosuchname"),
    (DENIED, 2, "SendSSHPublicKey"),
    # StartSession's TargetNotConnected, then DescribeInstances: stopped.
    (STOPPED, 4, "is stopped; set start_stopped = yes to start it"),
])
def test_error_paths_get_socks_codes_and_log_lines(world, target, code, log):
    assert socks_reply(world, "%s@%s" % (world["sshd"].user, target),
                       22) == code
    world["gw"].wait_for(log, timeout=10)
    r = ssh(world, target, "true")
    assert r.returncode != 0


def test_resume_after_websocket_cut(world):
    fake = world["fake"]
    fake.set_faults({"dc": {"cut_after_bytes": 4 * 1024 * 1024}})
    end_warm(fake, WEB[0])  # a new session, with the fault
    try:
        tmp = world["tmp"]
        src = tmp / "cut.bin"
        src.write_bytes(os.urandom(16 * 1024 * 1024))
        r = subprocess.run(["scp", "-q"] + ssh_opts(world) + [
            str(src), "%s@%s:%s" % (world["sshd"].user, WEB[0],
                                    tmp / "cut-up.bin")],
            capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr + world["gw"].stderr_text()[-3000:]
        assert sha(src) == sha(tmp / "cut-up.bin")
        assert len(fake.calls("ResumeSession")) >= 1
        world["gw"].wait_for("resumed", timeout=5)
    finally:
        fake.set_faults({"dc": {}})


def test_status_lists_live_ssh_tunnel(world):
    p = subprocess.Popen(["ssh"] + ssh_opts(world) + [
        "%s@%s" % (world["sshd"].user, WEB[0]), "sleep", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 20
        tunnels = []
        while time.time() < deadline and not tunnels:
            r = subprocess.run([SSMGATE_BIN, "status", "--json",
                                "--config", world["gw"].config_path,
                                "--runtime-dir", world["gw"].runtime_dir],
                               capture_output=True, text=True, timeout=10)
            tunnels = json.loads(r.stdout)["tunnels"] if r.returncode == 0 \
                else []
            time.sleep(0.2)
        assert tunnels and \
            tunnels[0]["document"] == "AWS-StartPortForwardingSession"
    finally:
        p.wait(30)


def test_managed_node_uses_the_users_own_key(world, tmp_path):
    """mi- targets get no EC2 Instance Connect push: the user's own key
    works, the daemon's agent key alone is refused cleanly."""
    key = tmp_path / "id_user"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(key)], check=True)
    managed = "mi-0123456789abcdef0"
    fake = world["fake"]
    with Sshd(None, authorized_keys=(tmp_path / "id_user.pub").read_text()) \
            as own:
        fake.set_instances({managed: {"name": "hybrid",
                                      "ports": {"22": own.port}}})
        fake.clear_calls()
        base = ["ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
                "-o", "LogLevel=ERROR",
                "-o", "ProxyCommand=nc -X 5 -x %s:%d %%r@%%h %%p" %
                world["gw"].socks]
        r = subprocess.run(base + ["-o", "IdentityAgent=none", "-o",
                                   "IdentitiesOnly=yes", "-i", str(key),
                                   "%s@%s" % (own.user, managed), "echo", "ok"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "ok"
        agent = os.path.join(world["gw"].runtime_dir, "agent.sock")
        r = subprocess.run(base + ["-o", "IdentityAgent=" + agent, "-o",
                                   "IdentitiesOnly=no",
                                   "%s@%s" % (own.user, managed), "true"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 255 and "Permission denied" in r.stderr
        assert fake.calls("SendSSHPublicKey") == []


def test_builtin_proxy_command(world):
    host, port = world["gw"].socks
    agent = os.path.join(world["gw"].runtime_dir, "agent.sock")
    proxy = "%s proxy --listen %s:%d %%r@%%h %%p" % (SSMGATE_BIN, host, port)
    r = subprocess.run(["ssh", "-F", "/dev/null", "-o",
                        "StrictHostKeyChecking=no", "-o",
                        "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
                        "-o", "IdentityAgent=" + agent,
                        "-o", "ProxyCommand=" + proxy,
                        "%s@%s" % (world["sshd"].user, WEB[0]), "echo", "p"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "p"
    # A refused target is a clear message from the proxy, not a hang.
    r = subprocess.run([SSMGATE_BIN, "proxy", "--listen", "%s:%d" % (host, port),
                        "example.com", "22"], capture_output=True, text=True,
                       timeout=30, input="")
    assert r.returncode == 1
    # The daemon's own reason, not only a reply code.
    assert "example.com:22: 403 Forbidden: " in r.stderr, r.stderr
    assert "no [route] matches" in r.stderr, r.stderr


def test_builtin_proxy_moves_every_byte_both_ways(world, tmp_path):
    """ssmgate proxy splices between ssh's pipes and the daemon (no copy
    through the process), and copies where it cannot splice (a socketpair
    for stdio): a file each way must come back whole in both cases."""
    host, port = world["gw"].socks
    agent = os.path.join(world["gw"].runtime_dir, "agent.sock")
    src = tmp_path / "src.bin"
    with open(src, "wb") as f:
        f.write(os.urandom(3 << 20))
    proxy = "%s proxy --listen %s:%d %%r@%%h %%p" % (SSMGATE_BIN, host, port)
    opts = ["-F", "/dev/null", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
            "-o", "IdentityAgent=" + agent, "-o", "ProxyCommand=" + proxy]
    remote = "%s@%s:%s" % (world["sshd"].user, WEB[0], tmp_path / "up.bin")
    for a, b in ((str(src), remote), (remote, str(tmp_path / "down.bin"))):
        r = subprocess.run(["scp", "-q"] + opts + [a, b], capture_output=True,
                           text=True, timeout=180)
        assert r.returncode == 0, r.stderr
    assert sha(tmp_path / "up.bin") == sha(tmp_path / "down.bin") == sha(src)
    # stdio on a socketpair: splice refuses it, read and write carry it.
    # The SSH banner of sshd comes down; ours goes up and sshd answers.
    mine, theirs = socket.socketpair()
    p = subprocess.Popen([SSMGATE_BIN, "proxy", "--listen", "%s:%d" % (host, port),
                          "%s@%s" % (world["sshd"].user, WEB[0]), "22"],
                         stdin=theirs, stdout=theirs, stderr=subprocess.PIPE)
    theirs.close()
    try:
        mine.settimeout(30)
        banner = b""
        while not banner.endswith(b"\n"):
            d = mine.recv(256)
            assert d, p.stderr.read()
            banner += d
        assert banner.startswith(b"SSH-2.0-"), banner
        mine.sendall(b"SSH-2.0-probe\r\n")
        kex = mine.recv(4096)  # sshd's KEXINIT: the way up works too
        assert len(kex) > 5 and kex[5] == 20, kex[:16]
    finally:
        mine.close()
        p.wait(30)


def test_name_lookup_is_cached_and_push_renewed_after_expiry(world):
    """A Name tag resolves once for connects close together; a push older
    than the reuse window (40 s, inside EC2 Instance Connect's 60 s) is
    made again on the next connect."""
    fake = world["fake"]
    fake.clear_calls()
    for _ in range(2):
        r = ssh(world, "web-3", "true")
        assert r.returncode == 0, r.stderr
    assert len(fake.calls("DescribeInstanceInformation")) == 1
    # At most one push: an earlier test may have pushed for this instance
    # and user inside the reuse window already.
    pushes = len(fake.calls("SendSSHPublicKey"))
    assert pushes <= 1
    time.sleep(41)
    r = ssh(world, "web-3", "true")
    assert r.returncode == 0, r.stderr
    assert len(fake.calls("SendSSHPublicKey")) == pushes + 1


def test_key_file_option(world):
    """key_file = yes: the daemon's key also as a 0600 OpenSSH file, usable
    with ssh -i and no agent, removed at exit."""
    gw = Gateway("[gateway]\nkey_file = yes\nmessage_rate = 0\n",
                 env=world["fake"].env())
    try:
        key = os.path.join(gw.runtime_dir, "id_ed25519")
        assert os.stat(key).st_mode & 0o777 == 0o600
        assert os.stat(gw.runtime_dir).st_mode & 0o777 == 0o700
        r = subprocess.run(["ssh", "-F", "/dev/null", "-o",
                            "StrictHostKeyChecking=no", "-o",
                            "UserKnownHostsFile=/dev/null", "-o",
                            "BatchMode=yes", "-o", "IdentityAgent=none",
                            "-o", "IdentitiesOnly=yes", "-i", key,
                            "-o", "ProxyCommand=nc -X 5 -x %s:%d %%r@%%h %%p"
                            % gw.socks,
                            "%s@%s" % (world["sshd"].user, WEB[2]), "echo", "k"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "k"
    finally:
        assert gw.close() == 0
    assert not os.path.exists(os.path.join(gw.runtime_dir, "id_ed25519"))


def test_aws_reason_reaches_log_and_client_whole(world):
    """An AWS error message of 1400 bytes arrives uncut in the daemon's one
    log line, in the HTTP CONNECT reply body and on the stderr of ssmgate
    proxy (no buffer on the way is smaller than a reason)."""
    fake = world["fake"]
    words = " ".join("word%03d" % i for i in range(170))  # 1359 bytes
    msg = "User is not allowed: " + words + " END"
    fake.set_faults({"api": [{"action": "StartSession", "kind": "error",
                              "code": "AccessDeniedException", "message": msg,
                              "count": 1}]})
    try:
        host, port = world["gw"].socks
        with socket.create_connection((host, port), timeout=30) as s:
            s.sendall(b"CONNECT %s:8080 HTTP/1.1\r\nHost: x\r\n\r\n"
                      % WEB[1].encode())
            reply = recv_until_eof(s)
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 403"), reply[:200]
        assert msg.encode() in body, body
        world["gw"].wait_for(re.escape(msg), timeout=10)
        # ssmgate proxy (the ProxyCommand) prints the same reason for ssh.
        fake.set_faults({"api": [{"action": "StartSession", "kind": "error",
                                  "code": "AccessDeniedException",
                                  "message": msg, "count": 1}]})
        r = subprocess.run([SSMGATE_BIN, "proxy", "--listen",
                            "%s:%d" % (host, port), WEB[1], "8080"],
                           capture_output=True, text=True, timeout=30, input="")
        assert r.returncode == 1
        assert "403 Forbidden: StartSession: AccessDeniedException: " + msg \
            in r.stderr, r.stderr
    finally:
        fake.set_faults({"api": []})


def test_name_cache_forgets_an_unreachable_instance(world):
    """TargetNotConnected for a Name's instance drops the cached answer: the
    next connect asks DescribeInstanceInformation again instead of trying
    the same instance for the rest of the cache's life."""
    fake = world["fake"]
    r = ssh(world, "web-2", "true")  # resolved and cached
    assert r.returncode == 0, r.stderr
    end_warm(fake, WEB[1])  # the next ssh must call StartSession
    fake.set_faults({"api": [{"action": "StartSession", "kind": "error",
                              "code": "TargetNotConnected",
                              "message": "i-... is not connected.", "count": 1}]})
    try:
        r = ssh(world, "web-2", "true")
        assert r.returncode != 0
    finally:
        fake.set_faults({"api": []})
    fake.clear_calls()
    r = ssh(world, "web-2", "true")
    assert r.returncode == 0, r.stderr
    assert len(fake.calls("DescribeInstanceInformation")) == 1
