"""End to end: the typed AWS wrappers (aws_ssm.c, aws_ec2ic.c) and the
refresh / retry edges of aws.c and aws_creds.c, driven through
`ssmgate aws-call ssmgate OP JSON` against tests/fake/fake_aws.py."""

import hashlib
import http.server
import json
import os
import subprocess
import threading
import time

import pytest

from test_aws_layer import (IID, PUBKEY, TEMP_AKID, TEMP_SECRET, TEMP_TOKEN,
                            base_env, no_keys_env, run, write)
from harness import SOURCE_DIR
import sys
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "fake"))
from fakeaws import FakeAws  # noqa: E402

FLEET = {"i-%017x" % (0xa000 + i): {"name": "fleet"} for i in range(60)}


@pytest.fixture
def fake():
    inst = dict(FLEET)
    inst[IID] = {"name": "web"}
    with FakeAws(instances=inst, pace_ms=0) as f:
        yield f


def w(op, args, env, extra=()):
    return run(["ssmgate", op, json.dumps(args)] + list(extra), env)


def test_session_wrappers(fake):
    env = base_env(fake)
    p = w("start-session", {"target": IID, "document": "AWS-StartSSHSession",
                            "port": "22", "reason": "e2e"}, env)
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert s["has_token"] and s["stream_url"].startswith("wss://")
    call = fake.calls("StartSession")[-1]
    assert call["params"]["Parameters"] == {"portNumber": ["22"]}
    assert call["params"]["Reason"] == "e2e"
    p = w("resume-session", {"session_id": s["session_id"]}, env)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["session_id"] == s["session_id"]
    p = w("terminate-session", {"session_id": s["session_id"]}, env)
    assert p.returncode == 0, p.stderr
    p = w("resume-session", {"session_id": s["session_id"]}, env)
    # Terminated: either an error or an empty token (session gone).
    assert p.returncode == 1 or json.loads(p.stdout)["has_token"] is False


def test_port_forward_to_remote_host_parameters(fake):
    p = w("start-session", {"target": IID,
                            "document": "AWS-StartPortForwardingSessionToRemoteHost",
                            "port": "5432", "host": "db.internal"}, base_env(fake))
    assert p.returncode == 0, p.stderr
    assert fake.calls("StartSession")[-1]["params"]["Parameters"] == {
        "portNumber": ["5432"], "host": ["db.internal"]}


def test_find_by_name_paginates(fake):
    p = w("find-by-name", {"name": "fleet"}, base_env(fake))
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert sorted(i["instance_id"] for i in got) == sorted(FLEET)
    calls = fake.calls("DescribeInstanceInformation")
    assert len(calls) == 2  # 50 + 10
    assert calls[0]["params"]["Filters"] == [{"Key": "tag:Name", "Values": ["fleet"]}]
    assert "NextToken" in calls[1]["params"]
    p = w("describe-instance", {"instance_id": IID}, base_env(fake))
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert [i["instance_id"] for i in got] == [IID]
    assert got[0]["ping_status"] == "Online"
    assert fake.calls("DescribeInstanceInformation")[-1]["params"]["Filters"] == [
        {"Key": "InstanceIds", "Values": [IID]}]


def test_send_ssh_public_key(fake):
    p = w("send-ssh-public-key", {"instance_id": IID, "os_user": "ec2-user",
                                  "public_key": PUBKEY}, base_env(fake))
    assert p.returncode == 0, p.stderr
    c = fake.calls("SendSSHPublicKey")[-1]
    assert "AvailabilityZone" not in c["params"]
    assert c["params"]["InstanceOSUser"] == "ec2-user"


def counting_process(home, expiration):
    """A credential_process that appends a line to runs.log on each run."""
    script = os.path.join(home, "creds.py")
    log = os.path.join(home, "runs.log")
    write(script, "import json, datetime\n"
          "open(%r, 'a').write('run\\n')\n"
          "exp = %s\n"
          "d = {'Version': 1, 'AccessKeyId': %r, 'SecretAccessKey': %r, "
          "'SessionToken': %r}\n"
          "if exp is not None:\n"
          "    d['Expiration'] = (datetime.datetime.now(datetime.timezone.utc) + "
          "datetime.timedelta(seconds=exp)).isoformat()\n"
          "print(json.dumps(d))\n"
          % (log, repr(expiration), TEMP_AKID, TEMP_SECRET, TEMP_TOKEN), 0o700)
    write(os.path.join(home, "config"),
          "[profile p]\nregion = us-east-1\ncredential_process = /usr/bin/python3 %s\n"
          % script)

    def runs():
        try:
            return len(open(log).read().splitlines())
        except FileNotFoundError:
            return 0
    return runs


def describe_repeated(fake, home, repeat, concurrency):
    """DescribeInstanceInformation repeat times, concurrency at once, with
    profile p's credentials from counting_process; it must succeed."""
    p = run(["ssm", "DescribeInstanceInformation", "{}", "--profile", "p",
             "--repeat", str(repeat), "--concurrency", str(concurrency)],
            no_keys_env(fake, home))
    assert p.returncode == 0, p.stderr


def test_one_refresh_shared_by_concurrent_callers(fake, tmp_path):
    runs = counting_process(str(tmp_path), 3600)
    describe_repeated(fake, str(tmp_path), 40, 40)
    assert runs() == 1
    assert len(fake.calls("DescribeInstanceInformation")) == 40


def test_mandatory_refresh_when_close_to_expiry(fake, tmp_path):
    # 5 minutes left (< 10): every call must wait for fresh keys.
    runs = counting_process(str(tmp_path), 300)
    describe_repeated(fake, str(tmp_path), 3, 1)
    assert runs() == 3


def test_advisory_refresh_keeps_serving(fake, tmp_path):
    # 12 minutes left (10..15): served from cache, one background refresh.
    runs = counting_process(str(tmp_path), 720)
    describe_repeated(fake, str(tmp_path), 5, 1)
    assert 2 <= runs() <= 5
    assert len(fake.calls("DescribeInstanceInformation")) == 5


def test_expired_token_refreshes_once(fake, tmp_path):
    runs = counting_process(str(tmp_path), None)
    fake.set_faults({"api": [{"action": "DescribeInstanceInformation",
                              "kind": "error", "code": "ExpiredTokenException",
                              "message": "The security token included in the "
                              "request is expired", "count": 1}]})
    p = run(["ssm", "DescribeInstanceInformation", "--profile", "p"],
            no_keys_env(fake, str(tmp_path)))
    assert p.returncode == 0, p.stderr
    assert runs() == 2
    assert [c["status"] for c in fake.calls("DescribeInstanceInformation")] == [400, 200]


def test_transport_errors_retried_then_reported(fake):
    env = base_env(fake)
    env["AWS_ENDPOINT_URL_SSM"] = "https://127.0.0.1:1"
    p = run(["ssm", "DescribeInstanceInformation"], env)
    assert p.returncode == 1
    assert "3 attempts" in p.stderr or "connection refused" in p.stderr, p.stderr


def test_tls_verification_is_on(fake):
    env = base_env(fake)
    env.pop("AWS_CA_BUNDLE")
    p = run(["ssm", "DescribeInstanceInformation"], env)
    assert p.returncode == 1
    assert fake.calls() == []


def test_aws_cli_export_credentials_fallback(fake, tmp_path):
    """A profile with nothing ssmgate understands: the last resort runs
    `aws configure export-credentials --profile P --format process`."""
    home = str(tmp_path)
    bindir = os.path.join(home, "bin")
    write(os.path.join(bindir, "aws"),
          "#!/bin/sh\n"
          "[ \"$*\" = 'configure export-credentials --profile cli --format process' ]"
          " || { echo \"unexpected: $*\" >&2; exit 9; }\n"
          "cat <<'X'\n{\n  \"Version\": 1,\n  \"AccessKeyId\": \"%s\",\n"
          "  \"SecretAccessKey\": \"%s\",\n  \"SessionToken\": \"%s\",\n"
          "  \"Expiration\": \"2099-01-01T00:00:00+00:00\"\n}\nX\n"
          % (TEMP_AKID, TEMP_SECRET, TEMP_TOKEN), 0o755)
    write(os.path.join(home, "config"), "[profile cli]\nregion = us-east-1\n"
          "login_session = arn:aws:iam::123456789012:user/alice\n")
    env = no_keys_env(fake, home)
    env["PATH"] = bindir + ":/usr/bin:/bin"
    p = run(["ssm", "DescribeInstanceInformation", "--profile", "cli"], env)
    assert p.returncode == 0, p.stderr
    assert fake.calls("DescribeInstanceInformation")[-1]["access_key"] == TEMP_AKID
    assert_no = [s for s in (TEMP_SECRET, TEMP_TOKEN) if s in p.stderr]
    assert assert_no == []


def test_container_full_uri_http_must_be_local(fake, tmp_path):
    env = no_keys_env(fake, str(tmp_path))
    env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = "http://example.com/creds"
    p = run(["ssm", "DescribeInstanceInformation"], env)
    assert p.returncode == 1
    assert "FULL_URI must be https" in p.stderr, p.stderr
    assert fake.calls() == []


class _Oidc(http.server.BaseHTTPRequestHandler):
    seen = []

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        _Oidc.seen.append((self.path, self.headers.get("Content-Type"),
                           json.loads(body)))
        out = json.dumps({"accessToken": "fresh-token", "tokenType": "Bearer",
                          "expiresIn": 3600, "refreshToken": "refresh-2"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def test_sso_token_refreshed_through_oidc(tmp_path):
    home = str(tmp_path)
    _Oidc.seen = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Oidc)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 300))
    write(os.path.join(home, "config"),
          "[profile sso]\nregion = us-east-1\nsso_session = corp\n"
          "sso_account_id = 123456789012\nsso_role_name = Admin\n\n"
          "[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\n"
          "sso_region = us-east-1\n")
    cache = os.path.join(home, ".aws", "sso", "cache",
                         hashlib.sha1(b"corp").hexdigest() + ".json")
    write(cache, json.dumps({
        "startUrl": "https://corp.awsapps.com/start", "region": "us-east-1",
        "accessToken": "old-token", "expiresAt": soon, "refreshToken": "refresh-1",
        "clientId": "cid", "clientSecret": "csecret",
        "registrationExpiresAt": "2099-01-01T00:00:00Z"}))
    try:
        with FakeAws(instances={IID: {"name": "web"}}, pace_ms=0,
                     config={"sso_tokens": {"fresh-token": {}}}) as fake:
            env = no_keys_env(fake, home)
            env["AWS_ENDPOINT_URL_SSO_OIDC"] = "http://127.0.0.1:%d" % srv.server_address[1]
            p = run(["ssm", "DescribeInstanceInformation", "--profile", "sso",
                     "--verbose"], env)
            assert p.returncode == 0, p.stderr
            assert fake.calls("GetRoleCredentials")[-1]["status"] == 200
            assert "credentials from SSO (key ASIA" in p.stderr
            assert "SSO token refreshed" in p.stderr
            for s in ("fresh-token", "old-token", "refresh-1", "refresh-2", "csecret"):
                assert s not in p.stderr
    finally:
        srv.shutdown()
    path, ctype, body = _Oidc.seen[0]
    assert path == "/token" and ctype == "application/json"
    assert body == {"clientId": "cid", "clientSecret": "csecret",
                    "grantType": "refresh_token", "refreshToken": "refresh-1"}
    new = json.load(open(cache))
    assert new["accessToken"] == "fresh-token" and new["refreshToken"] == "refresh-2"
    assert new["clientId"] == "cid"
    assert oct(os.stat(cache).st_mode & 0o777) == "0o600"


def test_credential_source_environment_and_profile_web_identity(fake, tmp_path):
    home = str(tmp_path)
    tok = os.path.join(home, "token")
    write(tok, "fake-web-identity-token")
    write(os.path.join(home, "config"),
          "[profile envrole]\nregion = us-east-1\n"
          "role_arn = arn:aws:iam::123456789012:role/fromenv\n"
          "credential_source = Environment\n\n"
          "[profile wi]\nregion = us-east-1\n"
          "role_arn = arn:aws:iam::123456789012:role/wi\n"
          "web_identity_token_file = %s\nrole_session_name = wis\n" % tok)
    env = no_keys_env(fake, home)
    env["AWS_ACCESS_KEY_ID"] = "AKIDFAKEEXAMPLE00002"
    env["AWS_SECRET_ACCESS_KEY"] = "fakeSecretKey/Example+second-user-secret00"
    p = run(["sts", "GetCallerIdentity", "--profile", "envrole"], env)
    assert p.returncode == 0, p.stderr
    ar = fake.calls("AssumeRole")[-1]
    assert ar["access_key"] == "AKIDFAKEEXAMPLE00002"
    assert json.loads(p.stdout)["Arn"].endswith(":assumed-role/fromenv/" +
                                                ar["params"]["RoleSessionName"])
    p = run(["sts", "GetCallerIdentity", "--profile", "wi"], env)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["Arn"].endswith(":assumed-role/wi/wis")
    assert fake.calls("AssumeRoleWithWebIdentity")[-1]["access_key"] is None


@pytest.mark.parametrize("cmd,expect", [
    ("/usr/bin/python3 -c \"print('x' * 200000)\"", "output too big"),
    ("/bin/echo not-json", "not a JSON object"),
    ("/bin/echo '{\"Version\":2}'", "unsupported Version"),
    ("/nonexistent/helper", "cannot run /nonexistent/helper"),
    ("'unbalanced", "cannot be split"),
])
def test_credential_process_hostile_output(fake, tmp_path, cmd, expect):
    home = str(tmp_path)
    write(os.path.join(home, "config"),
          "[profile p]\nregion = us-east-1\ncredential_process = %s\n" % cmd)
    p = run(["ssm", "DescribeInstanceInformation", "--profile", "p"],
            no_keys_env(fake, home))
    assert p.returncode == 1
    assert expect in p.stderr, p.stderr
    assert fake.calls() == []
