"""The AWS layer end to end: `ssmgate aws-call` against the fake AWS API
(loopback HTTPS with its own CA; it verifies every SigV4 signature)."""

import json
import os
import re
import subprocess
import sys
import time

import pytest

from harness import SSMGATE_BIN, FAKE_DIR

sys.path.insert(0, FAKE_DIR)
from fakeaws import FakeAws, DEFAULT_AKID, DEFAULT_SECRET  # noqa: E402

INSTANCE = "i-0123456789abcdef0"


@pytest.fixture(scope="module")
def fake():
    with FakeAws(instances={INSTANCE: {"name": "web-1"}}, pace_ms=0) as f:
        yield f


def aws_call(fake, args, env_extra=None, env_drop=(), home=None):
    env = dict(os.environ)
    env.update(fake.env())
    for k in env_drop:
        env.pop(k, None)
    if env_extra:
        env.update(env_extra)
    if home:
        env["HOME"] = home
    return subprocess.run([SSMGATE_BIN, "aws-call"] + args, env=env,
                          capture_output=True, text=True, timeout=120)


def test_describe_and_start_terminate(fake):
    r = aws_call(fake, ["ssm", "DescribeInstanceInformation",
                        '{"Filters":[{"Key":"tag:Name","Values":["web-1"]}]}'])
    assert r.returncode == 0, r.stderr
    items = json.loads(r.stdout)["InstanceInformationList"]
    assert [i["InstanceId"] for i in items] == [INSTANCE]
    r = aws_call(fake, ["ssm", "StartSession", json.dumps({
        "Target": INSTANCE, "DocumentName": "AWS-StartSSHSession",
        "Parameters": {"portNumber": ["22"]}, "Reason": "test"})])
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["StreamUrl"].startswith("wss://127.0.0.1:")
    sid = out["SessionId"]
    r = aws_call(fake, ["ssm", "TerminateSession",
                        json.dumps({"SessionId": sid})])
    assert r.returncode == 0, r.stderr
    r = aws_call(fake, ["ec2-instance-connect", "SendSSHPublicKey", json.dumps({
        "InstanceId": INSTANCE, "InstanceOSUser": "ec2-user",
        "SSHPublicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINdamAGCsQq31Uv"
                        "+08lkBzoO4XLz2qYjJa8CGmj3B1Ea ssmgate"})])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Success"] is True


def test_aws_error_is_code_and_message(fake):
    r = aws_call(fake, ["ssm", "StartSession", json.dumps({
        "Target": "i-00000000000000000", "DocumentName": "AWS-StartSSHSession",
        "Parameters": {"portNumber": ["22"]}})])
    assert r.returncode == 1
    assert re.match(r"^TargetNotConnected: ", r.stderr), r.stderr


def test_wrong_secret_is_rejected_by_the_fake(fake):
    r = aws_call(fake, ["ssm", "DescribeInstanceInformation"],
                 env_extra={"AWS_SECRET_ACCESS_KEY": "wrong"})
    assert r.returncode == 1
    assert r.stderr.startswith(("InvalidSignatureException",
                                "SignatureDoesNotMatch")), r.stderr


def test_throttling_is_retried(fake):
    fake.clear_calls()
    fake.set_faults({"api": [{"action": "DescribeInstanceInformation",
                              "kind": "throttle", "count": 2}]})
    r = aws_call(fake, ["ssm", "DescribeInstanceInformation"])
    assert r.returncode == 0, r.stderr
    assert len(fake.calls("DescribeInstanceInformation")) == 3
    fake.set_faults({"api": []})


def test_access_denied_is_not_retried(fake):
    fake.clear_calls()
    fake.set_faults({"api": [{"action": "TerminateSession", "kind": "deny",
                              "count": 5}]})
    r = aws_call(fake, ["ssm", "TerminateSession", '{"SessionId":"x-1"}'])
    fake.set_faults({"api": []})
    assert r.returncode == 1
    assert r.stderr.startswith("AccessDenied"), r.stderr
    assert len(fake.calls("TerminateSession")) == 1


def test_credential_process_and_files(fake, tmp_path):
    secret_token = "IQoJb3JpZ2luX2Vj" + "T" * 1500
    fake.add_credentials({"AKIDPROCESS0000001": {
        "secret": "procSecret/0123456789", "token": secret_token}})
    script = tmp_path / "creds.sh"
    script.write_text("#!/bin/sh\ncat <<EOT\n" + json.dumps({
        "Version": 1, "AccessKeyId": "AKIDPROCESS0000001",
        "SecretAccessKey": "procSecret/0123456789",
        "SessionToken": secret_token,
        "Expiration": "2099-01-01T00:00:00Z"}) + "\nEOT\n")
    script.chmod(0o700)
    config = tmp_path / "config"
    config.write_text("[profile proc]\nregion = us-east-1\n"
                      "credential_process = %s\n" % script)
    creds = tmp_path / "credentials"
    creds.write_text("[filekeys]\naws_access_key_id = %s\n"
                     "aws_secret_access_key = %s\n" % (DEFAULT_AKID,
                                                      DEFAULT_SECRET))
    files = {"AWS_CONFIG_FILE": str(config),
             "AWS_SHARED_CREDENTIALS_FILE": str(creds)}
    drop = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    fake.clear_calls()
    r = aws_call(fake, ["--profile", "proc", "ssm",
                        "DescribeInstanceInformation"],
                 env_extra=files, env_drop=drop)
    assert r.returncode == 0, r.stderr
    assert fake.calls("DescribeInstanceInformation")[-1]["access_key"] == \
        "AKIDPROCESS0000001"
    assert secret_token not in r.stderr and "procSecret" not in r.stderr
    r = aws_call(fake, ["--profile", "filekeys", "--region", "us-east-1",
                        "ssm", "DescribeInstanceInformation"],
                 env_extra=files, env_drop=drop)
    assert r.returncode == 0, r.stderr
    # A failing process is a clear error, not a hang.
    script.write_text("#!/bin/sh\necho 'token expired, log in again' >&2\n"
                      "exit 3\n")
    r = aws_call(fake, ["--profile", "proc", "ssm",
                        "DescribeInstanceInformation"],
                 env_extra=files, env_drop=drop)
    assert r.returncode == 1
    assert "credential_process exited with 3: token expired" in r.stderr


def test_no_region_is_a_clear_error(fake):
    r = aws_call(fake, ["ssm", "DescribeInstanceInformation"],
                 env_drop=("AWS_REGION", "AWS_DEFAULT_REGION"))
    assert r.returncode == 1
    assert "no region" in r.stderr


def test_500_concurrent_calls_and_latency(fake):
    r = aws_call(fake, ["--repeat", "500", "--concurrency", "100", "ssm",
                        "DescribeInstanceInformation"])
    assert r.returncode == 0, r.stderr
    assert "calls 500 failed 0" in r.stdout, r.stdout
    print(r.stdout)
    r = aws_call(fake, ["--repeat", "50", "--concurrency", "1", "ssm",
                        "DescribeInstanceInformation"])
    assert r.returncode == 0, r.stderr
    print("sequential:", r.stdout)
