"""Cross-check gateway/aws_sigv4.c against botocore's SigV4Auth.

Generates a few hundred varied requests (odd paths with '//', '.', '..',
spaces, '%2F' and unicode; queries with repeated keys, empty values, '+',
'=', '/' and unicode; empty and binary bodies; long and absent session
tokens; several regions and services, including the ssmmessages GET of a
data channel StreamUrl), signs each with botocore at a fixed time, writes
them as JSON and requires the C signer (build/tests/test_aws_sigv4 with
SIGV4_VECTORS set) to produce identical Authorization values.

Where botocore and the Go signer (session-manager-plugin) differ, the
expected value is still computed by botocore, with one piece swapped:
 - query strings: the C signer form-decodes the raw query and re-encodes
   it (Go). botocore signs a raw URL query as written, so the vectors hand
   botocore the decoded pairs as request.params, which it encodes by the
   SigV4 rule; for raw StreamUrl queries this is exactly the Go result.
 - paths: botocore removes dot segments and empty segments; the Go signer
   signs the path as written. Vectors in mode "as_is" (and "auto" for
   service ssmmessages) replace SigV4Auth._normalize_url_path by a plain
   UriEncode of the written path; the rest of the signature is botocore's.
"""

import base64
import datetime
import json
import os
import random
import types
from unittest import mock
from urllib.parse import parse_qsl, quote

import pytest

import botocore.auth
import botocore.awsrequest
import botocore.credentials

from harness import run_vectors

BUILD_DIR = os.environ.get(
    "SSMGATE_BUILD_DIR",
    os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SIGNER = os.path.join(BUILD_DIR, "tests", "test_aws_sigv4")

REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2", "cn-north-1",
           "us-gov-west-1", "eusc-de-east-1"]
SERVICES = ["ssm", "ec2-instance-connect", "sts", "ec2", "ssmmessages",
            "service"]
PATH_PIECES = ["", "a", "b c", "%2F", "%2f", ".", "..", "", "x.y", "~t",
               "ሴ", "é", "a+b", "a=b", "@", "!$&'()*,;:", "data-channel",
               "user-0abc@example.com", "%41", "%zz", "..."]
Q_NAMES = ["a", "A", "b", "role", "cell-number", "x y", "x+y", "k=", "é",
           "/", "", "~", "%2F", "a&"]
Q_VALUES = ["", "1", "2", "10", "a b", "a+b", "a=b", "/x/", "==", "é",
            "ሴ", "%3D", "~.-_", "a%20b", "%2B", "%41"]
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def fixed_clock(ts):
    class Fixed(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return datetime.datetime.utcfromtimestamp(ts)

        @classmethod
        def now(cls, tz=None):
            return datetime.datetime.fromtimestamp(ts, tz)
    return mock.patch.object(botocore.auth, "datetime",
                             types.SimpleNamespace(datetime=Fixed))


def rand_path(rng):
    n = rng.randint(0, 5)
    segs = [rng.choice(PATH_PIECES) for _ in range(n)]
    path = "/" + "/".join(segs)
    if rng.random() < 0.2:
        path += "/"
    if rng.random() < 0.1:
        path = "//" + path
    return path


def rand_query(rng):
    if rng.random() < 0.3:
        return ""
    parts = []
    for _ in range(rng.randint(1, 6)):
        name = quote(rng.choice(Q_NAMES), safe="+=%") \
            if rng.random() < 0.5 else rng.choice(Q_NAMES).replace(
                "&", "%26").replace("=", "%3D").replace(" ", "+")
        r = rng.random()
        if r < 0.1:
            parts.append(name)                     # bare name
        elif r < 0.15:
            parts.append("")                       # '&&'
        else:
            val = rng.choice(Q_VALUES)
            if rng.random() < 0.5:
                val = val.replace("&", "%26").replace(" ", "+")
            else:
                val = quote(val, safe="+=/%")
            parts.append(name + "=" + val.replace("&", "%26"))
    return "&".join(parts)


def stream_url(rng, region):
    cell = "".join(rng.choice(B64) for _ in range(rng.randint(20, 120)))
    cell += "=" * rng.randint(0, 2)
    sid = rng.choice(["user-0abc123def", "botocore-session-1700000000-x",
                      "a.b@c.example", "sess+ion"])
    return (f"wss://ssmmessages.{region}.amazonaws.com/v1/data-channel/"
            f"{sid}?role=publish_subscribe&cell-number={cell}")


def rand_headers(rng, service):
    hs = []
    if service in ("ssm", "ec2-instance-connect"):
        hs.append(("Content-Type", "application/x-amz-json-1.1"))
        hs.append(("X-Amz-Target", "AmazonSSM.StartSession"))
    elif service in ("sts", "ec2"):
        hs.append(("Content-Type",
                   "application/x-www-form-urlencoded; charset=utf-8"))
    for _ in range(rng.randint(0, 3)):
        name = rng.choice(["X-Custom", "x-custom", "X-Other", "Accept",
                           "My-Header1", "x-amz-meta-a"])
        val = rng.choice(["v", "  lead", "trail  ", " a   b\tc ", "", "x,y",
                          "UPPER lower", "\t", "a  \t  b"])
        hs.append((name, val))
    return hs


def rand_body(rng):
    r = rng.random()
    if r < 0.3:
        return b""
    if r < 0.6:
        return json.dumps({"Target": "i-0123456789abcdef0",
                           "n": rng.randint(0, 10**9)}).encode()
    return bytes(rng.randrange(256) for _ in range(rng.randint(1, 3000)))


def botocore_sign(v, body):
    creds = botocore.credentials.Credentials(
        v["access_key"], v["secret_key"], v["token"] or None)
    signer = botocore.auth.SigV4Auth(creds, v["service"], v["region"])
    mode = v["path_mode"]
    if mode == "as_is" or (mode == "auto" and v["service"] == "ssmmessages"):
        signer._normalize_url_path = lambda p: quote(p or "/", safe="/~")
    url = v["url"]
    base, _, query = url.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    req = botocore.awsrequest.AWSRequest(
        method=v["method"], url=base if not pairs else url, data=body)
    if pairs:
        req.params = pairs
    for name, value in v["headers"]:
        req.headers[name] = value
    with fixed_clock(v["time"]):
        signer.add_auth(req)
        # canonical_request is for diagnostics only.
        creq = signer.canonical_request(req)
    return req.headers["Authorization"], creq


def make_vectors(count=400, seed=20151130):
    rng = random.Random(seed)
    out = []
    for i in range(count):
        region = rng.choice(REGIONS)
        service = rng.choice(SERVICES)
        if service == "ssmmessages" or i % 7 == 0:
            service = "ssmmessages"
            url = stream_url(rng, region)
            if rng.random() < 0.3:              # odd paths on the same host
                base, _, q = url.partition("?")
                url = base + rand_path(rng) + "?" + q
            method = "GET"
            headers = []
            body = b""
        else:
            host = rng.choice([f"{service}.{region}.amazonaws.com",
                               "LocalHost", "127.0.0.1", "[::1]",
                               "Example.Amazonaws.COM"])
            scheme = rng.choice(["https", "http"])
            port = rng.choice(["", "", ":443", ":80", ":4566", ":8443"])
            q = rand_query(rng)
            url = f"{scheme}://{host}{port}{rand_path(rng)}"
            if q:
                url += "?" + q
            method = rng.choice(["GET", "POST", "PUT", "DELETE"])
            headers = rand_headers(rng, service)
            body = rand_body(rng)
        tok = rng.random()
        token = ("" if tok < 0.4 else "EXAMPLESESSIONTOKEN" if tok < 0.6 else
                 "".join(rng.choice(B64) for _ in range(2048)))
        v = {
            "method": method,
            "url": url,
            "headers": headers,
            "body_hex": body.hex(),
            "access_key": "AKID" + "".join(
                rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
                for _ in range(16)),
            "secret_key": "".join(rng.choice(B64) for _ in range(40)),
            "token": token,
            "region": region,
            "service": service,
            "time": rng.randint(946684800, 2082758399),
            "path_mode": rng.choice(["auto", "auto", "normalize", "as_is"]),
        }
        v["authorization"], v["canonical_request"] = botocore_sign(v, body)
        out.append(v)
    return out


def test_known_answer_get_vanilla_through_harness():
    """The harness itself reproduces the AWS suite anchor."""
    v = {"method": "GET", "url": "https://example.amazonaws.com/",
         "headers": [], "access_key": "AKIDEXAMPLE",
         "secret_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
         "token": "", "region": "us-east-1", "service": "service",
         "time": 1440938160, "path_mode": "auto"}
    auth, _ = botocore_sign(v, b"")
    assert auth.endswith("Signature=5fa00fa31553b73ebf1942676e86291e837"
                         "2ff2a2260956d9b8aae1d763fbf31")


def test_stream_url_go_rules():
    """For a raw StreamUrl the decoded-params route gives the Go canonical
    query: '+' as %20, '/' as %2F, '=' as %3D."""
    v = {"method": "GET",
         "url": "wss://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/"
                "s-1?role=publish_subscribe&cell-number=ab+c/d==",
         "headers": [], "access_key": "AKIDEXAMPLE", "secret_key": "x",
         "token": "", "region": "us-east-1", "service": "ssmmessages",
         "time": 1440938160, "path_mode": "auto"}
    _, creq = botocore_sign(v, b"")
    assert creq.split("\n")[2] == \
        "cell-number=ab%20c%2Fd%3D%3D&role=publish_subscribe"


def test_c_signer_matches_botocore(tmp_path):
    if not os.path.exists(SIGNER):
        pytest.fail(f"{SIGNER} not built")
    vectors = make_vectors()
    assert len(vectors) >= 300
    # Coverage of the interesting shapes, so the generator cannot drift.
    assert sum(v["service"] == "ssmmessages" for v in vectors) >= 40
    assert sum(len(v["token"]) == 2048 for v in vectors) >= 40
    assert sum(not v["token"] for v in vectors) >= 40
    assert any("//" in v["url"].split("://", 1)[1] for v in vectors)
    assert any("/../" in v["url"] or v["url"].endswith("/..")
               for v in vectors)
    assert any("%2F" in v["url"] for v in vectors)
    assert any(v["body_hex"] == "" for v in vectors)
    out = run_vectors(SIGNER, "SIGV4_VECTORS", vectors,
                      tmp_path / "vectors.json")
    assert f"checked {len(vectors)} botocore vectors, 0 mismatches" in out
