"""Assume-role credentials shared with the AWS CLI through its cache
(issue 13 item 5): ~/.aws/cli/cache/<key>.json with botocore's own cache
key and file format. ssmgate writes the entry the CLI would, botocore
reads it back without calling STS, a second daemon uses it without an
AssumeRole call, and an entry the CLI wrote is used by ssmgate."""

import json
import os
import socket
import stat
import subprocess
import sys

from botocore.credentials import AssumeRoleCredentialFetcher
from botocore.utils import JSONFileCache

from harness import (FAKE_DIR, SANITIZER_MARKERS, SSMGATE_BIN, EchoServer,
                     Gateway, forwards_config)

sys.path.insert(0, FAKE_DIR)
from fakeaws import DEFAULT_AKID, DEFAULT_SECRET, FakeAws  # noqa: E402

IID = "i-0123456789abcdef0"
OPS_ARN = "arn:aws:iam::123456789012:role/ops"
PLAIN_ARN = "arn:aws:iam::123456789012:role/plain"


def home_env(fake, home):
    e = dict(fake.env())
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        e.pop(k, None)
    e["HOME"] = home
    e["AWS_CONFIG_FILE"] = os.path.join(home, ".aws", "config")
    e["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(home, ".aws", "credentials")
    return e


def write_profiles(home):
    os.makedirs(os.path.join(home, ".aws"), mode=0o700, exist_ok=True)
    with open(os.path.join(home, ".aws", "credentials"), "w") as f:
        f.write("[base]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                % (DEFAULT_AKID, DEFAULT_SECRET))
    with open(os.path.join(home, ".aws", "config"), "w") as f:
        f.write("[profile ops]\nregion = us-east-1\nrole_arn = %s\n"
                "source_profile = base\nexternal_id = ext-1\n"
                "duration_seconds = 1800\n\n"
                "[profile plain]\nregion = us-east-1\nrole_arn = %s\n"
                "source_profile = base\n" % (OPS_ARN, PLAIN_ARN))


def fetcher(cache_dir, arn, extra):
    """botocore's own fetcher for the profile, as the CLI builds it; it
    cannot call STS (no client), so a fetch proves a cache hit."""
    return AssumeRoleCredentialFetcher(None, None, arn, extra_args=extra,
                                       cache=JSONFileCache(cache_dir))


def echo_through(gw, data=b"hello through the role\n"):
    host, port = gw.listeners["echo"]
    with socket.create_connection((host, port), timeout=20) as s:
        s.sendall(data)
        got = b""
        while len(got) < len(data):
            d = s.recv(4096)
            if not d:
                break
            got += d
    assert got == data


def test_assume_role_shares_the_cli_cache(tmp_path):
    home = str(tmp_path)
    write_profiles(home)
    cache_dir = os.path.join(home, ".aws", "cli", "cache")
    ops = fetcher(cache_dir, OPS_ARN, {"ExternalId": "ext-1", "DurationSeconds": 1800})
    path = os.path.join(cache_dir, ops._cache_key + ".json")
    with EchoServer() as echo, FakeAws(pace_ms=0) as fake:
        fake.set_instances({IID: {"ports": {"7": echo.port}}})
        cfg = forwards_config(("echo", IID, "port = 7\nprofile = ops\n"))
        env = home_env(fake, home)
        with Gateway(cfg, env=env) as gw:
            echo_through(gw)
        ar = fake.calls("AssumeRole")
        assert len(ar) == 1 and ar[0]["status"] == 200
        # The entry botocore would compute, private, in the CLI's format.
        assert os.path.exists(path), os.listdir(cache_dir)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with open(path) as f:
            doc = json.load(f)
        akid = doc["Credentials"]["AccessKeyId"]
        assert akid.startswith("ASIA")
        assert fake.calls("StartSession")[-1]["access_key"] == akid
        # botocore (the CLI) reads it back without calling STS.
        got = ops.fetch_credentials()
        assert got["access_key"] == akid
        # A second daemon uses the cached answer: no AssumeRole at all.
        fake.clear_calls()
        with Gateway(cfg, env=env) as gw:
            echo_through(gw)
            assert "AWS CLI cache" in gw.stderr_text()
        assert fake.calls("AssumeRole") == []
        assert fake.calls("StartSession")[-1]["access_key"] == akid

        # The other way: an entry the CLI wrote (botocore's fetcher and
        # JSONFileCache, with a real AssumeRole answer) serves ssmgate.
        resp = fake.boto_client("sts").assume_role(RoleArn=PLAIN_ARN,
                                                   RoleSessionName="cli")
        plain = fetcher(cache_dir, PLAIN_ARN, None)
        plain._write_to_cache(resp)
        fake.clear_calls()
        p = subprocess.run([SSMGATE_BIN, "aws-call", "ssm", "DescribeInstanceInformation",
                            "--profile", "plain"], env=dict(os.environ, **env),
                           capture_output=True, text=True, timeout=60)
        for m in SANITIZER_MARKERS:
            assert m not in p.stderr, p.stderr
        assert p.returncode == 0, p.stderr
        assert fake.calls("AssumeRole") == []
        assert fake.calls("DescribeInstanceInformation")[-1]["access_key"] == \
            resp["Credentials"]["AccessKeyId"]
        assert resp["Credentials"]["SecretAccessKey"] not in p.stderr


def test_web_identity_shares_the_cli_cache(tmp_path):
    """The AWS CLI caches AssumeRoleWithWebIdentity answers too (its
    assumerole customization gives both providers the JSONFileCache), under
    botocore's key of RoleArn and a configured RoleSessionName."""
    from botocore.credentials import AssumeRoleWithWebIdentityCredentialFetcher
    home = str(tmp_path)
    os.makedirs(os.path.join(home, ".aws"), mode=0o700)
    tok = os.path.join(home, "token")
    with open(tok, "w") as f:
        f.write("fake-web-identity-token\n")
    arn = "arn:aws:iam::123456789012:role/web"
    cache_dir = os.path.join(home, ".aws", "cli", "cache")

    def cli_fetcher():
        return AssumeRoleWithWebIdentityCredentialFetcher(
            None, lambda: "fake-web-identity-token", arn,
            extra_args={"RoleSessionName": "wi"}, cache=JSONFileCache(cache_dir))
    path = os.path.join(cache_dir, cli_fetcher()._cache_key + ".json")
    with FakeAws(pace_ms=0) as fake:
        env = home_env(fake, home)
        env.update({"AWS_WEB_IDENTITY_TOKEN_FILE": tok, "AWS_ROLE_ARN": arn,
                    "AWS_ROLE_SESSION_NAME": "wi"})

        def call():
            p = subprocess.run([SSMGATE_BIN, "aws-call", "sts", "GetCallerIdentity"],
                               env=dict(os.environ, **env), capture_output=True,
                               text=True, timeout=60)
            assert p.returncode == 0, p.stderr
            return p
        call()
        assert len(fake.calls("AssumeRoleWithWebIdentity")) == 1
        assert os.path.exists(path), os.listdir(cache_dir) if os.path.isdir(cache_dir) else None
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with open(path) as f:
            akid = json.load(f)["Credentials"]["AccessKeyId"]
        # The CLI reads it back without calling STS ...
        assert cli_fetcher().fetch_credentials()["access_key"] == akid
        # ... and so does the next ssmgate.
        fake.clear_calls()
        p = call()
        assert fake.calls("AssumeRoleWithWebIdentity") == []
        assert fake.calls("GetCallerIdentity")[-1]["access_key"] == akid
        assert "fake-web-identity-token" not in p.stderr
