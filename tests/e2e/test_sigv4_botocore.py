"""Cross-checks ssmgate's SigV4 signer against botocore's (Debian
python3-botocore): hundreds of generated requests are signed by botocore
here, then by the C signer (the unit test binary in vectors mode), and the
Authorization headers must be identical.

Query strings are generated already SigV4-encoded (unreserved characters
and upper-case %XX), the only form on which botocore (which takes a URL's
query as already canonical) and the Go signer of the Session Manager plugin
(which form-decodes, then re-encodes) agree. Raw '+', '/', '=' in a query
are canonicalised the Go way, which MGS accepts for StreamUrls; the unit
test test_stream_url_canonical_query pins that separately."""

import datetime
import json
import os
import random
import subprocess
from unittest import mock
from urllib.parse import quote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

BUILD = os.environ.get("SSMGATE_BUILD_DIR", "")

PATH_SEGMENTS = ["a", "b-c", "d_e.f", "~x", "user@example.com-01dc4c3150f53f6d3",
                 "%2F", "%20sp", "x:y", "", ".", "..", "v1", "data-channel",
                 "caf%C3%A9", "a=b", "1,2"]
QUERY_CHARS = "abcXYZ019-_.~/:@,=+ \u00e9"
SERVICES = [("ssm", "https://ssm.%s.amazonaws.com"),
            ("ec2-instance-connect", "https://ec2-instance-connect.%s.amazonaws.com"),
            ("sts", "https://sts.%s.amazonaws.com"),
            ("ssmmessages", "https://ssmmessages.%s.amazonaws.com"),
            ("service", "https://example.amazonaws.com"),
            ("ssm", "http://localhost:4566"),
            ("ssm", "https://127.0.0.1:8443")]
REGIONS = ["us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1",
           "ap-southeast-2"]


def random_path(rng):
    segs = [rng.choice(PATH_SEGMENTS) for _ in range(rng.randint(0, 5))]
    path = "/" + "/".join(segs)
    if rng.random() < 0.2:
        path += "/"
    return path.replace("//", "/" if rng.random() < 0.5 else "//")


def random_query(rng):
    if rng.random() < 0.4:
        return ""
    pairs = []
    keys = ["role", "cell-number", "a", "Action", "x-y", "k~"]
    for _ in range(rng.randint(1, 4)):
        key = rng.choice(keys)
        value = quote("".join(rng.choice(QUERY_CHARS)
                              for _ in range(rng.randint(0, 12))), safe="-_.~")
        pairs.append("%s=%s" % (key, value) if rng.random() < 0.9 else key + "=")
    return "?" + "&".join(pairs)


def random_body(rng):
    kind = rng.randint(0, 3)
    if kind == 0:
        return ""
    if kind == 1:
        return json.dumps({"Target": "i-%017x" % rng.getrandbits(68),
                           "Parameters": {"portNumber": ["22"]}},
                          separators=(",", ":"))
    if kind == 2:
        return "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fx"
    return "".join(chr(rng.randint(32, 126)) for _ in range(rng.randint(1, 300)))


def make_case(rng, i):
    service, base = rng.choice(SERVICES)
    region = rng.choice(REGIONS)
    if "%s" in base:
        base = base % region
    method = rng.choice(["POST", "GET"])
    url = base + random_path(rng) + random_query(rng)
    body = random_body(rng) if method == "POST" else ""
    headers = []
    if method == "POST":
        headers.append(("Content-Type", rng.choice([
            "application/x-amz-json-1.1",
            "application/x-www-form-urlencoded; charset=utf-8"])))
        if rng.random() < 0.7:
            headers.append(("X-Amz-Target", "AmazonSSM.StartSession"))
    if rng.random() < 0.2:
        headers.append(("X-Custom-Spaces", "  a   b \t c  "))
    token = None
    r = rng.random()
    if r < 0.3:
        token = "IQoJb3JpZ2luX2VjE" + "".join(
            rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop0123456789+/=")
            for _ in range(2048))
    elif r < 0.5:
        token = "EXAMPLESESSIONTOKEN"
    when = datetime.datetime(2015, 8, 30, 12, 36, 0) + datetime.timedelta(
        seconds=rng.randint(0, 10 ** 8))
    creds = Credentials("AKID%06d" % i, "secret/%d+key" % rng.getrandbits(40),
                        token)
    req = AWSRequest(method=method, url=url, data=body.encode(),
                     headers=dict(headers))
    with mock.patch("botocore.auth.datetime") as dt:
        dt.datetime.utcnow.return_value = when
        dt.datetime.strftime = datetime.datetime.strftime
        SigV4Auth(creds, service, region).add_auth(req)
    epoch = int((when - datetime.datetime(1970, 1, 1)).total_seconds())
    assert req.headers["X-Amz-Date"] == when.strftime("%Y%m%dT%H%M%SZ")
    return {"method": method, "url": url, "headers": headers, "body": body,
            "access_key": creds.access_key, "secret_key": creds.secret_key,
            "token": token, "region": region, "service": service,
            "time": epoch, "authorization": req.headers["Authorization"]}


def test_signatures_match_botocore(tmp_path):
    rng = random.Random(20261122)
    cases = [make_case(rng, i) for i in range(400)]
    path = tmp_path / "vectors.json"
    path.write_text(json.dumps(cases))
    binary = os.path.join(BUILD, "tests", "test_aws_sigv4")
    r = subprocess.run([binary], env=dict(os.environ, SIGV4_VECTORS=str(path)),
                       capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    assert "400 botocore vectors, 0 mismatches" in out
