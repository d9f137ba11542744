"""End to end: the AWS layer (ssmgate aws-call) against tests/fake/fake_aws.py.

Every call goes over loopback HTTPS with the fake's own CA (AWS_CA_BUNDLE),
endpoints via the per-service AWS_ENDPOINT_URL_* variables, and the fake
verifies each SigV4 signature against the key it expects."""

import hashlib
import http.server
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from harness import SANITIZER_MARKERS, SOURCE_DIR, SSMGATE_BIN

sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "fake"))
from child import free_port  # noqa: E402
from fakeaws import DEFAULT_AKID, DEFAULT_SECRET, FakeAws  # noqa: E402

IID = "i-0123456789abcdef0"
TEMP_AKID = "ASIAFAKETEMPORARY001"
TEMP_SECRET = "fakeTempSecret/0123456789+abcdefghijklmno"
TEMP_TOKEN = "FwoGZXIvYXdzEFAKE//////////+SESSIONTOKEN/" + "A" * 300 + "=="
PUBKEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGQx7m5f3Vd8wq7JQe0bJjv3Fh0"
          "X2Q6fQqYVbQm0pTjD test@ssmgate")


def binary():
    b = SSMGATE_BIN or os.path.join(SOURCE_DIR, "build", "ssmgate")
    assert os.path.exists(b), b
    return b


@pytest.fixture
def fake():
    with FakeAws(instances={IID: {"name": "web"},
                            "i-0fedcba9876543210": {"name": "db"}},
                 pace_ms=0) as f:
        yield f


def no_keys_env(fake, home):
    """The fake's environment without static keys, HOME in a temp dir."""
    e = dict(os.environ)
    e.update(fake.env())
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
              "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        e.pop(k, None)
    e["HOME"] = home
    e["AWS_CONFIG_FILE"] = os.path.join(home, "config")
    e["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(home, "credentials")
    return e


def run(args, env, timeout=60):
    p = subprocess.run([binary(), "aws-call"] + args, env=env, capture_output=True,
                       text=True, timeout=timeout)
    for m in SANITIZER_MARKERS:
        assert m not in p.stderr, p.stderr
    return p


def base_env(fake):
    e = dict(os.environ)
    e.update(fake.env())
    e.pop("AWS_PROFILE", None)
    return e


def assert_no_secrets(text, *secrets):
    for s in secrets:
        if s:
            assert s not in text, "secret leaked"


def test_every_call_succeeds(fake):
    env = base_env(fake)
    p = run(["ssm", "DescribeInstanceInformation",
             json.dumps({"Filters": [{"Key": "tag:Name", "Values": ["web"]}]})], env)
    assert p.returncode == 0, p.stderr
    ids = [i["InstanceId"] for i in json.loads(p.stdout)["InstanceInformationList"]]
    assert ids == [IID]

    p = run(["ssm", "StartSession", json.dumps({
        "Target": IID, "DocumentName": "AWS-StartSSHSession",
        "Parameters": {"portNumber": ["22"]}})], env)
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert s["SessionId"] and s["TokenValue"] and s["StreamUrl"].startswith("wss://")

    p = run(["ssm", "ResumeSession", json.dumps({"SessionId": s["SessionId"]})], env)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["SessionId"] == s["SessionId"]

    p = run(["ssm", "TerminateSession", json.dumps({"SessionId": s["SessionId"]})], env)
    assert p.returncode == 0, p.stderr

    p = run(["ec2-instance-connect", "SendSSHPublicKey", json.dumps({
        "InstanceId": IID, "InstanceOSUser": "ec2-user", "SSHPublicKey": PUBKEY})], env)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["Success"] is True

    p = run(["sts", "GetCallerIdentity"], env)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["Arn"].endswith(":user/alice")

    for c in fake.calls():
        assert c["status"] == 200, c
        assert c["access_key"] == DEFAULT_AKID


def test_aws_error_is_code_and_message(fake):
    p = run(["ssm", "StartSession", json.dumps({
        "Target": IID, "DocumentName": "No-Such-Document"})], base_env(fake))
    assert p.returncode == 1
    assert re.match(r"^[A-Za-z]+(Exception|Document|Error)?: ", p.stderr), p.stderr
    assert len(fake.calls("StartSession")) == 1


def test_throttling_is_retried(fake):
    fake.set_faults({"api": [{"action": "DescribeInstanceInformation",
                              "kind": "throttle", "count": 2}]})
    t0 = time.time()
    p = run(["ssm", "DescribeInstanceInformation"], base_env(fake))
    assert p.returncode == 0, p.stderr
    calls = fake.calls("DescribeInstanceInformation")
    assert len(calls) == 3, calls
    assert [c["status"] for c in calls] == [400, 400, 200]
    # Full jitter, base 1 s: at most 1 s + 2 s of waiting.
    assert time.time() - t0 < 8


def test_access_denied_is_not_retried(fake):
    fake.set_faults({"api": [{"action": "StartSession", "kind": "deny", "count": -1}]})
    p = run(["ssm", "StartSession", json.dumps({"Target": IID})], base_env(fake))
    assert p.returncode == 1
    assert p.stderr.startswith("AccessDeniedException: User: "), p.stderr
    assert len(fake.calls("StartSession")) == 1


def test_server_errors_give_up_after_three_attempts(fake):
    fake.set_faults({"api": [{"action": "SendSSHPublicKey", "kind": "error500",
                              "count": -1}]})
    p = run(["ec2-instance-connect", "SendSSHPublicKey", json.dumps({
        "InstanceId": IID, "InstanceOSUser": "ec2-user", "SSHPublicKey": PUBKEY})],
        base_env(fake))
    assert p.returncode == 1
    assert p.stderr.startswith("ServiceException: "), p.stderr
    assert len(fake.calls("SendSSHPublicKey")) == 3


def test_sts_throttling_retried(fake):
    fake.set_faults({"api": [{"action": "GetCallerIdentity", "kind": "throttle",
                              "count": 1}]})
    p = run(["sts", "GetCallerIdentity"], base_env(fake))
    assert p.returncode == 0, p.stderr
    assert [c["status"] for c in fake.calls("GetCallerIdentity")] == [400, 200]


def test_500_concurrent_calls(fake):
    p = run(["ssm", "DescribeInstanceInformation", "{}", "--repeat", "500",
             "--concurrency", "500"], base_env(fake), timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    m = re.search(r"500 calls, 500 concurrent, 0 failed: p50 ([\d.]+) ms "
                  r"p95 ([\d.]+) ms", p.stderr)
    assert m, p.stderr
    assert len(fake.calls("DescribeInstanceInformation")) == 500
    # One signed call, sequentially (connection reused):
    p = run(["ssm", "DescribeInstanceInformation", "{}", "--repeat", "50",
             "--concurrency", "1"], base_env(fake), timeout=120)
    assert p.returncode == 0
    m1 = re.search(r"p50 ([\d.]+) ms p95 ([\d.]+) ms", p.stderr)
    print("500 concurrent: p50 %s ms p95 %s ms; sequential: p50 %s ms p95 %s ms"
          % (m.group(1), m.group(2), m1.group(1), m1.group(2)))


def write(path, text, mode=0o600):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def test_credential_process_chain(fake, tmp_path):
    home = str(tmp_path)
    script = os.path.join(home, "dir with space", "creds.py")
    write(script, "import json, sys\nassert sys.argv[1] == 'a b'\n"
          "print(json.dumps({'Version': 1, 'AccessKeyId': %r, 'SecretAccessKey': %r,"
          " 'SessionToken': %r, 'Expiration': '2099-01-01T00:00:00+00:00'}))\n"
          % (TEMP_AKID, TEMP_SECRET, TEMP_TOKEN), 0o700)
    write(os.path.join(home, "config"),
          "[profile proc]\nregion = us-east-1\ncredential_process = /usr/bin/python3 "
          "\"%s\" 'a b'\n" % script)
    env = no_keys_env(fake, home)
    p = run(["ssm", "DescribeInstanceInformation", "--profile", "proc", "--debug"], env)
    assert p.returncode == 0, p.stderr
    assert fake.calls("DescribeInstanceInformation")[-1]["access_key"] == TEMP_AKID
    assert_no_secrets(p.stderr + p.stdout, TEMP_SECRET, TEMP_TOKEN)


def test_credential_process_failure_message(fake, tmp_path):
    home = str(tmp_path)
    write(os.path.join(home, "config"),
          "[profile bad]\nregion = us-east-1\ncredential_process = /bin/sh -c "
          "'echo nope-from-process >&2; exit 3'\n")
    p = run(["ssm", "DescribeInstanceInformation", "--profile", "bad"],
            no_keys_env(fake, home))
    assert p.returncode == 1
    assert "exited with 3" in p.stderr and "nope-from-process" in p.stderr
    assert fake.calls() == []


def sso_setup(home, expires):
    write(os.path.join(home, "config"),
          "[profile sso]\nregion = us-east-1\nsso_session = corp\n"
          "sso_account_id = 123456789012\nsso_role_name = Admin\n\n"
          "[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\n"
          "sso_region = us-east-1\n")
    key = hashlib.sha1(b"corp").hexdigest()
    write(os.path.join(home, ".aws", "sso", "cache", key + ".json"), json.dumps({
        "startUrl": "https://corp.awsapps.com/start", "region": "us-east-1",
        "accessToken": "fake-sso-bearer-token", "expiresAt": expires}))


def test_sso_cache_chain(fake, tmp_path):
    home = str(tmp_path)
    sso_setup(home, "2099-01-01T00:00:00Z")
    p = run(["ssm", "DescribeInstanceInformation", "--profile", "sso"],
            no_keys_env(fake, home))
    assert p.returncode == 0, p.stderr
    sso = fake.calls("GetRoleCredentials")
    assert len(sso) == 1 and sso[0]["status"] == 200 and not sso[0]["signed"]
    ssm = fake.calls("DescribeInstanceInformation")[-1]
    assert ssm["status"] == 200 and ssm["access_key"].startswith("ASIA")
    assert "fake-sso-bearer-token" not in p.stderr + p.stdout


def test_sso_expired_token_says_sso_login(fake, tmp_path):
    home = str(tmp_path)
    sso_setup(home, "2020-01-01T00:00:00Z")
    p = run(["ssm", "DescribeInstanceInformation", "--profile", "sso"],
            no_keys_env(fake, home))
    assert p.returncode == 1
    assert "aws sso login --profile sso" in p.stderr, p.stderr
    assert fake.calls() == []


def test_assume_role_chain(fake, tmp_path):
    home = str(tmp_path)
    write(os.path.join(home, "credentials"),
          "[base]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
          % (DEFAULT_AKID, DEFAULT_SECRET))
    write(os.path.join(home, "config"),
          "[profile r1]\nregion = us-east-1\nrole_arn = arn:aws:iam::123456789012:role/one\n"
          "source_profile = base\nrole_session_name = s1\n\n"
          "[profile r2]\nregion = us-east-1\nrole_arn = arn:aws:iam::123456789012:role/two\n"
          "source_profile = r1\nrole_session_name = s2\nexternal_id = ext-123\n"
          "duration_seconds = 1800\n")
    p = run(["ssm", "DescribeInstanceInformation", "--profile", "r2"],
            no_keys_env(fake, home))
    assert p.returncode == 0, p.stderr
    ar = fake.calls("AssumeRole")
    assert [c["status"] for c in ar] == [200, 200]
    assert ar[0]["access_key"] == DEFAULT_AKID
    assert ar[0]["params"]["RoleArn"].endswith("role/one")
    assert ar[1]["params"]["RoleArn"].endswith("role/two")
    assert ar[1]["params"]["ExternalId"] == "ext-123"
    assert ar[1]["params"]["DurationSeconds"] == "1800"
    k1 = ar[1]["access_key"]
    assert k1.startswith("ASIA") and k1 != DEFAULT_AKID
    ssm = fake.calls("DescribeInstanceInformation")[-1]
    assert ssm["access_key"].startswith("ASIA") and ssm["access_key"] != k1
    assert DEFAULT_SECRET not in p.stderr


def test_assume_role_loop_and_mfa_are_errors(fake, tmp_path):
    home = str(tmp_path)
    write(os.path.join(home, "config"),
          "[profile a]\nregion = us-east-1\nrole_arn = arn:aws:iam::123456789012:role/a\n"
          "source_profile = b\n\n[profile b]\nrole_arn = arn:aws:iam::123456789012:role/b\n"
          "source_profile = a\n\n[profile m]\nregion = us-east-1\n"
          "role_arn = arn:aws:iam::123456789012:role/m\nsource_profile = a\n"
          "mfa_serial = arn:aws:iam::123456789012:mfa/me\n")
    env = no_keys_env(fake, home)
    p = run(["ssm", "DescribeInstanceInformation", "--profile", "a"], env)
    assert p.returncode == 1 and "loop" in p.stderr, p.stderr
    p = run(["ssm", "DescribeInstanceInformation", "--profile", "m"], env)
    assert p.returncode == 1 and "credential_process" in p.stderr, p.stderr
    assert fake.calls() == []


def test_web_identity(fake, tmp_path):
    home = str(tmp_path)
    tok = os.path.join(home, "token")
    write(tok, "fake-web-identity-token\n")
    env = no_keys_env(fake, home)
    env["AWS_WEB_IDENTITY_TOKEN_FILE"] = tok
    env["AWS_ROLE_ARN"] = "arn:aws:iam::123456789012:role/web"
    env["AWS_ROLE_SESSION_NAME"] = "wi"
    p = run(["sts", "GetCallerIdentity"], env)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["Arn"].endswith("assumed-role/web/wi")
    assert "fake-web-identity-token" not in p.stderr


class _Meta(http.server.BaseHTTPRequestHandler):
    seen = []
    valid = set()   # tokens issued and not revoked
    # Answer 401 to the next credentials GET and revoke its token (as
    # IMDS does for a token that expired or was revoked meanwhile).
    revoke_on_creds = False

    def log_message(self, *a):
        pass

    def _send(self, code, body, ctype="text/plain"):
        b = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)

    def creds(self):
        return json.dumps({"Code": "Success", "Type": "AWS-HMAC",
                           "AccessKeyId": TEMP_AKID, "SecretAccessKey": TEMP_SECRET,
                           "Token": TEMP_TOKEN, "Expiration": "2099-01-01T00:00:00Z"})

    def do_PUT(self):
        _Meta.seen.append(("PUT", self.path, dict(self.headers)))
        if self.path == "/latest/api/token":
            tok = "imds-token-%d" % (123 + sum(1 for s in _Meta.seen if s[0] == "PUT") - 1)
            _Meta.valid.add(tok)
            return self._send(200, tok)
        self._send(404, "")

    def do_GET(self):
        _Meta.seen.append(("GET", self.path, dict(self.headers)))
        if self.path.startswith("/latest/"):
            tok = self.headers.get("X-aws-ec2-metadata-token")
            if tok not in _Meta.valid:
                return self._send(401, "")
            if self.path == "/latest/meta-data/iam/security-credentials/":
                return self._send(200, "my-role")
            if self.path == "/latest/meta-data/iam/security-credentials/my-role":
                if _Meta.revoke_on_creds:
                    _Meta.revoke_on_creds = False
                    _Meta.valid.discard(tok)
                    return self._send(401, "")
                return self._send(200, self.creds(), "application/json")
        if self.path == "/ecs-creds":
            if self.headers.get("Authorization") != "ecs-auth-xyz":
                return self._send(403, "")
            return self._send(200, self.creds(), "application/json")
        self._send(404, "")


@pytest.fixture
def meta():
    _Meta.seen = []
    _Meta.valid = set()
    _Meta.revoke_on_creds = False
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Meta)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield "http://127.0.0.1:%d" % srv.server_address[1]
    srv.shutdown()


def test_container_credentials(fake, tmp_path, meta):
    env = no_keys_env(fake, str(tmp_path))
    env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = meta + "/ecs-creds"
    env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "ecs-auth-xyz"
    p = run(["ssm", "DescribeInstanceInformation"], env)
    assert p.returncode == 0, p.stderr
    assert fake.calls("DescribeInstanceInformation")[-1]["access_key"] == TEMP_AKID


def test_imds_credentials(fake, tmp_path, meta):
    env = no_keys_env(fake, str(tmp_path))
    env.pop("AWS_EC2_METADATA_DISABLED", None)
    env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = meta
    env["PATH"] = "/usr/bin:/bin"  # the aws CLI fallback comes after IMDS
    p = run(["ssm", "DescribeInstanceInformation"], env)
    assert p.returncode == 0, p.stderr
    assert fake.calls("DescribeInstanceInformation")[-1]["access_key"] == TEMP_AKID
    put = [s for s in _Meta.seen if s[0] == "PUT"]
    assert put and put[0][2].get("X-aws-ec2-metadata-token-ttl-seconds") == "21600"
    assert_no_secrets(p.stderr, TEMP_SECRET, TEMP_TOKEN, "imds-token-123")


def test_imds_never_goes_through_the_proxy(fake, tmp_path):
    """With every proxy variable naming a dead proxy, instance metadata (on
    its own loopback address, which NO_PROXY does not name) is still asked
    directly: a proxy would fetch its own instance's credentials, if any.
    NO_PROXY sends the fake's API (127.0.0.1) direct."""
    _Meta.seen = []
    _Meta.valid = set()
    _Meta.revoke_on_creds = False
    srv = http.server.ThreadingHTTPServer(("127.0.0.3", 0), _Meta)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        env = no_keys_env(fake, str(tmp_path))
        env.pop("AWS_EC2_METADATA_DISABLED", None)
        env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = "http://127.0.0.3:%d" % (
            srv.server_address[1])
        env["PATH"] = "/usr/bin:/bin"
        dead = "http://127.0.0.1:%d" % free_port()
        for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "all_proxy",
                    "ALL_PROXY"):
            env[var] = dead
        env["NO_PROXY"] = "127.0.0.1"
        p = run(["ssm", "DescribeInstanceInformation"], env)
        assert p.returncode == 0, p.stderr
        assert fake.calls("DescribeInstanceInformation")[-1]["access_key"] == TEMP_AKID
        assert [s for s in _Meta.seen if s[0] == "PUT"]
    finally:
        srv.shutdown()


def test_imds_401_fetches_a_new_token_once(fake, tmp_path, meta):
    env = no_keys_env(fake, str(tmp_path))
    env.pop("AWS_EC2_METADATA_DISABLED", None)
    env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = meta
    env["PATH"] = "/usr/bin:/bin"
    _Meta.revoke_on_creds = True
    p = run(["ssm", "DescribeInstanceInformation"], env)
    assert p.returncode == 0, p.stderr
    assert fake.calls("DescribeInstanceInformation")[-1]["access_key"] == TEMP_AKID
    puts = [s for s in _Meta.seen if s[0] == "PUT"]
    creds = [s for s in _Meta.seen if s[0] == "GET" and s[1].endswith("/my-role")]
    assert len(puts) == 2 and len(creds) == 2
    assert creds[0][2].get("X-aws-ec2-metadata-token") == "imds-token-123"
    assert creds[1][2].get("X-aws-ec2-metadata-token") == "imds-token-124"
    assert_no_secrets(p.stderr, TEMP_SECRET, TEMP_TOKEN, "imds-token-123",
                      "imds-token-124")
    # Only once: a token that is refused again ends the IMDS step.
    _Meta.seen = []
    _Meta.valid = set()
    orig = _Meta.do_PUT

    def put_unusable(self):
        _Meta.seen.append(("PUT", self.path, dict(self.headers)))
        self._send(200, "imds-token-never-valid")
    _Meta.do_PUT = put_unusable
    try:
        p = run(["ssm", "DescribeInstanceInformation"], env)
    finally:
        _Meta.do_PUT = orig
    assert p.returncode == 1, p.stderr
    assert len([s for s in _Meta.seen if s[0] == "PUT"]) == 2


def test_no_credentials_and_no_region(fake, tmp_path):
    env = no_keys_env(fake, str(tmp_path))
    env["PATH"] = "/nonexistent"
    p = run(["ssm", "DescribeInstanceInformation"], env)
    assert p.returncode == 1 and "no credentials" in p.stderr, p.stderr
    env = base_env(fake)
    env.pop("AWS_REGION")
    env.pop("AWS_DEFAULT_REGION")
    p = run(["ssm", "DescribeInstanceInformation"], env)
    assert p.returncode == 1 and "region" in p.stderr, p.stderr


def test_env_keys_with_session_token_and_expired_token_refresh(fake):
    env = base_env(fake)
    env["AWS_ACCESS_KEY_ID"] = TEMP_AKID
    env["AWS_SECRET_ACCESS_KEY"] = TEMP_SECRET
    env["AWS_SESSION_TOKEN"] = TEMP_TOKEN
    p = run(["ssm", "DescribeInstanceInformation", "--debug"], env)
    assert p.returncode == 0, p.stderr
    assert fake.calls()[-1]["access_key"] == TEMP_AKID
    assert_no_secrets(p.stderr, TEMP_SECRET, TEMP_TOKEN)
    # An explicit --profile skips the environment keys (CLI v2 rule).
    p = run(["ssm", "DescribeInstanceInformation", "--profile", "nope"], env)
    assert p.returncode == 1


def test_aws_profile_does_not_beat_env_keys(fake, tmp_path):
    """CLI v2 rule: AWS_PROFILE does not skip environment keys; --profile does."""
    home = str(tmp_path)
    script = os.path.join(home, "creds.py")
    write(script, "import json\nprint(json.dumps({'Version': 1, 'AccessKeyId': %r, "
          "'SecretAccessKey': %r, 'SessionToken': %r}))\n"
          % (TEMP_AKID, TEMP_SECRET, TEMP_TOKEN), 0o700)
    write(os.path.join(home, "config"), "[profile proc]\nregion = us-east-1\n"
          "credential_process = /usr/bin/python3 %s\n" % script)
    env = no_keys_env(fake, home)
    env["AWS_ACCESS_KEY_ID"] = DEFAULT_AKID
    env["AWS_SECRET_ACCESS_KEY"] = DEFAULT_SECRET
    env["AWS_PROFILE"] = "proc"
    p = run(["ssm", "DescribeInstanceInformation"], env)
    assert p.returncode == 0, p.stderr
    assert fake.calls()[-1]["access_key"] == DEFAULT_AKID
    p = run(["ssm", "DescribeInstanceInformation", "--profile", "proc"], env)
    assert p.returncode == 0, p.stderr
    assert fake.calls()[-1]["access_key"] == TEMP_AKID
