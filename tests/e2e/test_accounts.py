"""Many accounts from one gateway (issue 15 item 2): [account NAME] sections whose
host-name suffixes pick the AWS profile. Two accounts with different static keys in
the fake, each with an instance named web-1 behind its own real sshd (an sshd takes
only keys pushed for its own instance), so the server port seen in SSH_CONNECTION
says which instance ssh reached. Real ssh reads the Host blocks that
`ssmgate ssh-config` printed; curl goes through SOCKS with remote DNS."""

import os
import re
import socket
import subprocess
import sys

import pytest

from harness import FAKE_DIR, SSMGATE_BIN, Gateway, ThreadedServer, recv_until_eof

sys.path.insert(0, FAKE_DIR)
from fakeaws import DEFAULT_AKID, DEFAULT_SECRET, FakeAws  # noqa: E402
from sshd import Sshd  # noqa: E402

STG_ACCOUNT = "210987654321"
STG_KEY = "AKIDFAKESTAGING00001"
STG_SECRET = "stagingSecret/0123456789abcdefghijklmn"
PROD_WEB = "i-0a0a0a0a0a0a0a0a1"
STG_WEB = "i-0b0b0b0b0b0b0b0b1"
STG_WEST = "i-0c0c0c0c0c0c0c0c1"  # staging, us-west-2


def http_server(body):
    """A loopback HTTP/1.0 server answering every request with body."""
    def handle(c):
        try:
            c.recv(4096)
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                      % (len(body), body))
        finally:
            c.close()
    return ThreadedServer(handle)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("accounts")
    (tmp / "aws-config").write_text(
        "[profile prod]\nregion = us-east-1\n[profile staging]\nregion = us-east-1\n")
    (tmp / "aws-credentials").write_text(
        "[prod]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
        "[staging]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
        % (DEFAULT_AKID, DEFAULT_SECRET, STG_KEY, STG_SECRET))
    creds = {STG_KEY: {"secret": STG_SECRET, "caller": "carol",
                       "arn": "arn:aws:iam::%s:user/carol" % STG_ACCOUNT,
                       "user_id": "AIDAFAKECAROL0000001"}}
    with FakeAws(pace_ms=0, region="us-east-1,us-west-2",
                 config={"credentials": creds}) as fake, \
            Sshd(fake.state_dir, instance_id=PROD_WEB) as sd_prod, \
            Sshd(fake.state_dir, instance_id=STG_WEB) as sd_stg, \
            Sshd(fake.state_dir, instance_id=STG_WEST) as sd_west, \
            http_server(b"prod\n") as h_prod, http_server(b"staging\n") as h_stg:
        fake.set_instances({
            PROD_WEB: {"name": "web-1", "ports": {"22": sd_prod.port, "80": h_prod.port},
                       "hosts": {"db.internal": "127.0.0.1:%d" % h_prod.port}},
            STG_WEB: {"name": "web-1", "account": STG_ACCOUNT, "region": "us-east-1",
                      "ports": {"22": sd_stg.port, "80": h_stg.port},
                      "hosts": {"db.internal": "127.0.0.1:%d" % h_stg.port,
                                "app.shared": "127.0.0.1:%d" % h_stg.port}},
            STG_WEST: {"name": "web-1", "account": STG_ACCOUNT, "region": "us-west-2",
                       "ports": {"22": sd_west.port}}})
        env = fake.env()
        env.update({"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
                    "AWS_CONFIG_FILE": str(tmp / "aws-config"),
                    "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "aws-credentials")})
        cfg = ("[gateway]\nmessage_rate = 0\ndefault_user = %s\n"
               "[account prod]\nprofile = prod\n"
               "[account staging]\nprofile = staging\n"
               "[route internal]\nmatch = *.internal\nvia = web-1\n"
               "[route shared]\nmatch = *.shared\nvia = web-1\naccount = staging\n"
               % sd_prod.user)
        with Gateway(cfg, env=env) as gw:
            r = subprocess.run([SSMGATE_BIN, "ssh-config", "--config", gw.config_path,
                                "--runtime-dir", gw.runtime_dir],
                               capture_output=True, text=True, timeout=30)
            assert r.returncode == 0, r.stderr
            (tmp / "ssh_config").write_text(r.stdout)
            yield {"fake": fake, "gw": gw, "tmp": tmp, "ssh_config": r.stdout,
                   "ports": {"prod": sd_prod.port, "staging": sd_stg.port,
                             "west": sd_west.port}}


def ssh(w, host, *cmd):
    """Real ssh with nothing but the Host blocks ssmgate ssh-config printed."""
    return subprocess.run(
        ["ssh", "-F", str(w["tmp"] / "ssh_config"), "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
         "-o", "LogLevel=ERROR", host] + list(cmd),
        capture_output=True, text=True, timeout=90)


def server_port(w, host):
    """The sshd port ssh reached for host (from SSH_CONNECTION)."""
    r = ssh(w, host, "echo $SSH_CONNECTION")
    assert r.returncode == 0, r.stderr + w["gw"].stderr_text()[-3000:]
    return int(r.stdout.split()[3])


def socks_connect(w, host, port):
    """A SOCKS5 request for host:port; (reply code, socket or None)."""
    s = socket.create_connection(w["gw"].socks, timeout=60)
    s.sendall(b"\x05\x01\x00")
    assert s.recv(2) == b"\x05\x00"
    name = host.encode()
    s.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + port.to_bytes(2, "big"))
    rep = s.recv(10)
    if rep[1] != 0:
        s.close()
        return rep[1], None
    return 0, s


def curl(w, url):
    host, port = w["gw"].socks
    r = subprocess.run(["curl", "-sS", "--max-time", "60", "--socks5-hostname",
                        "%s:%d" % (host, port), url], capture_output=True, timeout=90)
    assert r.returncode == 0, r.stderr.decode() + w["gw"].stderr_text()[-3000:]
    return r.stdout


def test_ssh_config_has_account_patterns(world):
    text = world["ssh_config"]
    # Each account: mi- first (own keys), then the rest with the daemon's key;
    # both before the i-* block so the account's values win.
    for suffix in (".prod", ".staging"):
        mi = text.index("Host mi-*%s\n" % suffix)
        rest = text.index("Host *%s !mi-*%s\n" % (suffix, suffix))
        assert mi < rest < text.index("Host i-*\n")
    # The daemon's real port, asked of it (the config says 1080).
    assert "nc -X 5 -x 127.0.0.1:%d " % world["gw"].socks[1] in text
    assert "asked of the running daemon" in text


def test_same_name_in_two_accounts_reaches_two_instances(world):
    fake = world["fake"]
    fake.clear_calls()
    assert server_port(world, "web-1.prod") == world["ports"]["prod"]
    assert server_port(world, "web-1.staging") == world["ports"]["staging"]
    # Again, with both names cached: each stays in its own account.
    assert server_port(world, "web-1.staging") == world["ports"]["staging"]
    assert server_port(world, "web-1.prod") == world["ports"]["prod"]
    starts = [(c["params"]["Target"], c["access_key"]) for c in fake.calls("StartSession")
              if c["status"] == 200]
    # One warm session per account; the second ssh of each joined its own.
    assert starts == [(PROD_WEB, DEFAULT_AKID), (STG_WEB, STG_KEY)]
    assert all(c["status"] == 200 for c in fake.calls("StartSession"))
    pushes = {(c["params"]["InstanceId"], c["access_key"])
              for c in fake.calls("SendSSHPublicKey")}
    assert pushes == {(PROD_WEB, DEFAULT_AKID), (STG_WEB, STG_KEY)}
    # One Name lookup per account: the cache is per profile.
    lookups = [c["access_key"] for c in fake.calls("DescribeInstanceInformation")]
    assert sorted(lookups) == sorted([DEFAULT_AKID, STG_KEY])


def test_instance_id_and_region_before_the_suffix(world):
    assert server_port(world, STG_WEB + ".staging") == world["ports"]["staging"]
    assert server_port(world, "web-1.us-west-2.staging") == world["ports"]["west"]
    assert server_port(world, STG_WEST + ".us-west-2.staging") == world["ports"]["west"]
    west = [c for c in world["fake"].calls("StartSession")
            if c["params"]["Target"] == STG_WEST]
    assert west and all(c["region"] == "us-west-2" and c["access_key"] == STG_KEY
                        for c in west)
    # In the wrong account the instance does not exist: AWS's answer, whole.
    r = ssh(world, STG_WEB + ".prod", "true")
    assert r.returncode != 0
    world["gw"].wait_for(re.escape(STG_WEB) + r".*TargetNotConnected", timeout=20)


def test_routes_apply_after_the_suffix(world):
    assert curl(world, "http://db.internal.prod/") == b"prod\n"
    assert curl(world, "http://db.internal.staging/") == b"staging\n"
    # The route names its account: no suffix needed.
    assert curl(world, "http://app.shared/") == b"staging\n"
    remote = [(c["params"]["Parameters"]["host"], c["access_key"])
              for c in world["fake"].calls("StartSession")
              if c["params"]["DocumentName"].endswith("ToRemoteHost")]
    assert ([["db.internal"], DEFAULT_AKID] in [list(x) for x in remote] and
            [["db.internal"], STG_KEY] in [list(x) for x in remote] and
            [["app.shared"], STG_KEY] in [list(x) for x in remote]), remote


def test_port_forward_sessions_are_kept_per_account(world):
    """Same Name and port in two accounts: two sessions, never one shared
    (an idle session lingers for the next connection to its target)."""
    for _ in range(2):
        assert curl(world, "http://web-1.prod/") == b"prod\n"
        assert curl(world, "http://web-1.staging/") == b"staging\n"


def test_unknown_or_empty_suffix(world):
    gw = world["gw"]
    # No suffix: today's rules with the default credentials (prod's keys).
    r = subprocess.run(["ssh"] + gw.ssh_opts() + ["web-1", "echo $SSH_CONNECTION"],
                       capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.split()[3]) == world["ports"]["prod"]
    # An unknown suffix falls through to today's rules: refused here.
    code, _ = socks_connect(world, "web-1.qa", 22)
    assert code == 2
    gw.wait_for(r"route: web-1\.qa:22: not an instance id or Name and no \[route\]")
    # A suffix with nothing (valid) before it: refused with the reason.
    code, _ = socks_connect(world, ".prod", 22)
    assert code == 2
    gw.wait_for(r"route: \.prod:22: nothing before the account suffix")
    code, _ = socks_connect(world, "web-1.prod.us-west-2", 22)
    assert code == 2
    gw.wait_for(r"web-1\.prod\.us-west-2:22: the account suffix goes last: "
                r"NAME\.REGION\.SUFFIX")
    code, _ = socks_connect(world, "a.b.staging", 80)
    assert code == 2
    gw.wait_for(r"a\.b\.staging:80: not an instance id, Name or \[route\] match "
                r"before the account suffix")
    # HTTP CONNECT carries the reason in its body.
    with socket.create_connection(gw.socks, timeout=30) as s:
        s.sendall(b"CONNECT .staging:22 HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = recv_until_eof(s)
    assert reply.startswith(b"HTTP/1.1 403") and \
        b"nothing before the account suffix" in reply, reply


def test_aws_call_with_an_account(world):
    gw = world["gw"]
    env = dict(os.environ)
    env.update({k: v for k, v in world["fake"].env().items()})
    env.update({"AWS_CONFIG_FILE": str(world["tmp"] / "aws-config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(world["tmp"] / "aws-credentials"),
                "AWS_REGION": "us-east-1"})
    r = subprocess.run([SSMGATE_BIN, "--config", gw.config_path, "aws-call", "sts",
                        "GetCallerIdentity", "--account", "staging"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    assert STG_ACCOUNT in r.stdout
    r = subprocess.run([SSMGATE_BIN, "aws-call", "--account", "nope", "sts",
                        "GetCallerIdentity", "--config", gw.config_path],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 2 and "no [account nope]" in r.stderr
