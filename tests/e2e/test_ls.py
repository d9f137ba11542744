"""ssmgate ls (issue 15 item 1): every profile and region of the config, SSM
DescribeInstanceInformation joined with EC2 DescribeInstances. Three accounts
in the fake with keys of their own: prod (us-east-1, 120 instances: three SSM
pages and two EC2 pages), staging (eu-west-1), and one whose every SSM call
is denied, which must not hide the other two."""

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest

from harness import FAKE_DIR, SSMGATE_BIN

sys.path.insert(0, FAKE_DIR)
from fakeaws import DEFAULT_AKID, DEFAULT_SECRET, FakeAws  # noqa: E402

STG_ACCOUNT, STG_KEY = "210987654321", "AKIDFAKESTAGING00001"
STG_SECRET = "stagingSecret/0123456789abcdefghijklmn"
DENY_ACCOUNT, DENY_KEY = "333333333333", "AKIDFAKEDENIED000001"
DENY_SECRET = "deniedSecret/0123456789abcdefghijklmnop"
N_PROD = 120


def prod_id(i):
    return "i-0a%015x" % i


STG = {"i-0b0000000000000001": ("db-1", {"team": "data"}),
       "i-0b0000000000000002": ("db-2", {"team": "data"}),
       "i-0b0000000000000003": ("app-1", {"team": "web"}),
       "i-0b0000000000000004": ("café-ü", {"team": "web"})}
HYBRID = "mi-0123456789abcdef0"  # a managed node: SSM only, no EC2 call


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ls")
    (tmp / "aws-config").write_text(
        "[profile prod]\nregion = us-east-1\n[profile staging]\nregion = eu-west-1\n"
        "[profile denied]\nregion = us-east-1\n")
    (tmp / "aws-credentials").write_text(
        "[prod]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
        "[staging]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
        "[denied]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
        % (DEFAULT_AKID, DEFAULT_SECRET, STG_KEY, STG_SECRET, DENY_KEY, DENY_SECRET))
    creds = {STG_KEY: {"secret": STG_SECRET, "caller": "carol",
                       "arn": "arn:aws:iam::%s:user/carol" % STG_ACCOUNT},
             DENY_KEY: {"secret": DENY_SECRET, "caller": "dave",
                        "arn": "arn:aws:iam::%s:user/dave" % DENY_ACCOUNT}}
    inst = {prod_id(i): {"name": "web-%03d" % i, "ip": "10.1.%d.%d" % (i // 250, i % 250 + 1),
                         "tags": {"env": "prod" if i % 2 else "qa"}}
            for i in range(N_PROD)}
    inst["i-0a0000000000fffff"] = {"name": "off-1", "state": "stopped"}
    # Its IP (and the ComputerName made of it) carries an escape sequence.
    inst[HYBRID] = {"name": "hybrid", "ip": "10.9.0.1\x1b[31m"}
    for iid, (name, tags) in STG.items():
        inst[iid] = {"name": name, "tags": tags, "account": STG_ACCOUNT,
                     "region": "eu-west-1", "ip": "10.2.0.%s" % iid[-1],
                     "platform": "Windows", "agent_version": "3.2.1.0"}
    faults = {"api": [{"action": "DescribeInstanceInformation", "kind": "deny",
                       "account": DENY_ACCOUNT, "count": -1}]}
    with FakeAws(pace_ms=0, region="us-east-1,eu-west-1", instances=inst, faults=faults,
                 config={"credentials": creds}) as fake:
        env = dict(os.environ)
        for k in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            env.pop(k, None)
        env.update(fake.env())
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            env.pop(k)
        env.update({"AWS_CONFIG_FILE": str(tmp / "aws-config"),
                    "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "aws-credentials"),
                    "HOME": str(tmp), "XDG_CONFIG_HOME": str(tmp)})
        cfg = tmp / "config.ini"
        cfg.write_text("[gateway]\nprofile = prod\nregion = us-east-1\n"
                       "[account staging]\nprofile = staging\nregion = eu-west-1\n"
                       "[account denied]\nprofile = denied\n"
                       "[account prod2]\nprofile = prod\n"
                       "[route r]\nmatch = *.x\nvia = web-001\nprofile = prod\n")
        only_denied = tmp / "denied.ini"
        only_denied.write_text("[gateway]\nprofile = denied\nregion = us-east-1\n")
        yield {"fake": fake, "env": env, "cfg": str(cfg), "denied": str(only_denied)}


def ls(w, *args, config=None):
    return subprocess.run([SSMGATE_BIN, "ls", "--config", config or w["cfg"]] + list(args),
                          capture_output=True, text=True, timeout=60, env=w["env"])


def test_ls_json_joins_every_source(world):
    w = world
    w["fake"].clear_calls()
    r = ls(w, "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    by_id = {x["instance_id"]: x for x in rows}
    assert len(rows) == len(by_id) == N_PROD + len(STG) + 1
    # The stopped one is not SSM's: not listed.
    assert "i-0a0000000000fffff" not in by_id
    for i in range(N_PROD):
        x = by_id[prod_id(i)]
        assert x["name"] == "web-%03d" % i  # the Name tag, from EC2
        assert x["state"] == "running" and x["ping_status"] == "Online"
        assert x["profile"] == "prod" and x["region"] == "us-east-1"
        assert x["ip_address"] == "10.1.%d.%d" % (i // 250, i % 250 + 1)
        assert x["tags"]["env"] == ("prod" if i % 2 else "qa")
    for iid, (name, tags) in STG.items():
        x = by_id[iid]
        assert (x["name"], x["profile"], x["region"]) == (name, "staging", "eu-west-1")
        assert x["platform"] == "Windows" and x["agent_version"] == "3.2.1.0"
        assert x["tags"]["team"] == tags["team"]
    hy = by_id[HYBRID]
    assert hy["ip_address"] == "10.9.0.1?[31m" and hy["state"] == ""
    assert hy["name"].startswith("ip-10-9-0-1?[31m")  # its ComputerName
    assert "\x1b" not in r.stdout
    # The denied profile's error is on stderr, code and message, once.
    assert r.stderr.count("AccessDeniedException") == 1, r.stderr
    assert "profile denied" in r.stderr and "not authorized" in r.stderr
    # Pages: SSM and EC2 both followed NextToken for prod, and each key
    # signed for its own region.
    calls = w["fake"].calls()
    dii = [c for c in calls if c["action"] == "DescribeInstanceInformation"
           and c["access_key"] == DEFAULT_AKID]
    assert len(dii) == 3 and sum(1 for c in dii if c["params"].get("NextToken")) == 2
    ec2 = [c for c in calls if c["action"] == "DescribeInstances"]
    assert not any(v == HYBRID for c in ec2 for v in c["params"].values())
    assert any(c["params"].get("NextToken") for c in ec2)
    assert {(c["access_key"], c["region"]) for c in ec2} == {
        (DEFAULT_AKID, "us-east-1"), (STG_KEY, "eu-west-1")}
    assert "info" not in r.stderr  # only the errors, unless --log-level
    # [gateway], [account prod2] (region: the default) and the route name
    # the same profile and region: asked once.
    assert len([c for c in dii if not c["params"].get("NextToken")]) == 1


def test_ls_filters_and_plain_pipe(world):
    w = world
    r = ls(w, "db-*")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2  # no header into a pipe
    for line in lines:
        f = line.split("\t")
        assert len(f) == 9 and "\x1b" not in line and "  " not in line
        assert f[1] in ("db-1", "db-2") and f[7:] == ["staging", "eu-west-1"]
        assert f[6] == "running" and f[2] == "Online"
    # An id glob, options after the filter and before the command.
    r = subprocess.run([SSMGATE_BIN, "--json", "ls", "i-0a00000000000000[5-7]",
                        "--config", w["cfg"]], capture_output=True, text=True,
                       timeout=60, env=w["env"])
    assert r.returncode == 0, r.stderr
    assert sorted(json.loads(x)["instance_id"] for x in r.stdout.splitlines()) == \
        [prod_id(5), prod_id(6), prod_id(7)]
    # tag:Key=Value
    r = ls(w, "tag:team=data", "--json")
    assert sorted(json.loads(x)["name"] for x in r.stdout.splitlines()) == ["db-1", "db-2"]
    r = ls(w, "tag:env=qa", "--json")
    assert len(r.stdout.splitlines()) == N_PROD // 2
    r = ls(w, "tag:env")
    assert r.returncode == 2 and "tag:Key=Value" in r.stderr


def test_ls_all_sources_failed(world):
    r = ls(world, config=world["denied"])
    assert r.returncode == 1
    assert "AccessDeniedException" in r.stderr and r.stdout == ""


def on_pty(w, cols, *args):
    """ls on a terminal cols wide: its lines."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, cols, 0, 0))
    p = subprocess.Popen([SSMGATE_BIN, "ls", "--config", w["cfg"]] + list(args),
                         stdout=slave, stderr=subprocess.PIPE, env=w["env"])
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    p.wait(timeout=60)
    os.close(master)
    assert p.returncode == 0
    return out.decode().replace("\r", "").splitlines()


def test_ls_terminal_table(world):
    """On a terminal: a header, columns aligned, every line cut at its width."""
    lines = on_pty(world, 70, "db-*")
    assert lines[0].startswith("INSTANCE") and "NAME" in lines[0]
    assert len(lines) == 3 and all(len(x) <= 70 for x in lines)
    assert max(len(x) for x in lines) == 70  # the table is wider: cut
    # Columns aligned: NAME starts at the same place on every line.
    col = lines[0].index("NAME")
    assert lines[1][col:col + 4] == "db-1" and lines[2][col:col + 4] == "db-2"
    # UTF-8 names: aligned by characters, never cut inside one.
    lines = on_pty(world, 200, "tag:team=web")
    assert len(lines) == 3 and "café-ü" in lines[2]
    ping = lines[0].index("PING")
    assert lines[1][ping:ping + 6] == lines[2][ping:ping + 6] == "Online"
    for cols in range(20, 60, 3):
        for line in on_pty(world, cols, "café*")[1:]:
            assert len(line) <= cols


def test_help_lists_ls():
    r = subprocess.run([SSMGATE_BIN, "--help"], capture_output=True, text=True)
    assert "ls [FILTER] [--json]" in r.stdout
