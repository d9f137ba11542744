#!/usr/bin/python3
"""fake_aws: an independent fake of the AWS pieces ssmgate talks to.

Written from the reference docs (ssm-data-channel.md, aws-and-local-protocols.md),
not from the gateway's C code, so a misunderstanding in the gateway cannot pass.

Run with Debian's interpreter (python3-websockets 10.4, python3-botocore 1.29,
python3-cryptography):

    /usr/bin/python3 tests/fake/fake_aws.py --state-dir DIR [--config FILE.json]
        [--region us-east-1[,eu-west-1]] [--agent-pace-ms 1] [--payload-size 1024]
        [--faults FILE.json]

Readiness lines on stderr (in this order, each flushed):

    fake_aws: ca /DIR/ca.pem
    fake_aws: api https://127.0.0.1:PORT
    fake_aws: ws wss://127.0.0.1:PORT2
    fake_aws: ready

and DIR/ready.json holds the same facts plus the default credentials.
See tests/fake/README.md for the config file, the control endpoints (/_fake/...)
and the fault knobs; tests/fake/fakeaws.py is the Python helper to drive it.
"""

import argparse
import asyncio
import base64
import collections
import dataclasses
import datetime
import hashlib
import hmac
import json
import os
import re
import secrets
import signal
import ssl
import sys
import time
import urllib.parse
import uuid
from xml.sax.saxutils import escape as xml_escape

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fake_agent  # noqa: E402  (data channel: MGS + amazon-ssm-agent Port plugin)

from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest, HTTPHeaders  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

ACCOUNT = "123456789012"

DEFAULT_CREDENTIALS = {
    # access key id -> entry. "caller" prefixes session ids.
    "AKIDFAKEEXAMPLE00001": {
        "secret": "fakeSecretKey/Example+0123456789abcdefghij",
        "caller": "alice",
        "arn": "arn:aws:iam::%s:user/alice" % ACCOUNT,
        "user_id": "AIDAFAKEALICE0000001",
    },
    "AKIDFAKEEXAMPLE00002": {
        "secret": "fakeSecretKey/Example+second-user-secret00",
        "caller": "user@example.com",
        "arn": "arn:aws:iam::%s:user/user@example.com" % ACCOUNT,
        "user_id": "AIDAFAKEUSEREXAMPLE2",
    },
    "ASIAFAKETEMPORARY001": {
        "secret": "fakeTempSecret/0123456789+abcdefghijklmno",
        "token": "FwoGZXIvYXdzEFAKE//////////+SESSIONTOKEN/" + "A" * 300 + "==",
        "caller": "bob",
        "arn": "arn:aws:sts::%s:assumed-role/ops/bob" % ACCOUNT,
        "user_id": "AROAFAKEOPSROLE00001:bob",
    },
}

DOCUMENTS = {
    # name -> (parameter defaults (None = required), handshake properties builder)
    "AWS-StartSSHSession": {"portNumber": "22"},
    "AWS-StartPortForwardingSession": {"portNumber": "80", "localPortNumber": "0"},
    "AWS-StartPortForwardingSessionToRemoteHost": {
        "host": None, "portNumber": "80", "localPortNumber": "0"},
}

SIG_MISMATCH = ("The request signature we calculated does not match the signature "
                "you provided. Check your AWS Secret Access Key and signing method. "
                "Consult the service documentation for details.")
TOKEN_INVALID = "The security token included in the request is invalid."
TOKEN_EXPIRED = "The security token included in the request is expired"

STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"


def account_of(entry):
    """The 12-digit account of a credential entry (its ARN's), as AWS knows
    who signed a call."""
    parts = (entry or {}).get("arn", "").split(":")
    return parts[4] if len(parts) >= 6 and parts[4] else ACCOUNT


def log(msg):
    sys.stderr.write("fake_aws: %s\n" % msg)
    sys.stderr.flush()


def now_amz():
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


@dataclasses.dataclass(eq=False)
class ApiError(Exception):
    """An AWS error answer. kind selects the body shape at render time."""

    code: str
    message: object
    status: int = 400
    namespace: object = None
    message_key: str = "message"
    sender: str = "Sender"

    def __post_init__(self):
        super().__init__(self.code)


# ---------------------------------------------------------------------------
# TLS material
# ---------------------------------------------------------------------------

def make_tls(state_dir):
    """CA + server cert (SAN 127.0.0.1, ::1, localhost) written to state_dir."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    import ipaddress

    start = datetime.datetime.utcnow() - datetime.timedelta(days=1)
    end = start + datetime.timedelta(days=30)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake_aws test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                       False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1")),
                x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, True, False, False, False, False,
                                         False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    ca_path = os.path.join(state_dir, "ca.pem")
    cert_path = os.path.join(state_dir, "server.pem")
    key_path = os.path.join(state_dir, "server.key")
    with open(ca_path, "wb") as f:
        f.write(ca.public_bytes(pem))
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(pem))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_path, key_path)
    return ctx, ca_path


# ---------------------------------------------------------------------------
# SigV4 verification (botocore recomputes; we feed it what was received)
# ---------------------------------------------------------------------------

class _VerifySigner(SigV4Auth):
    """SigV4Auth whose header set is exactly the signed headers received."""

    def __init__(self, creds, service, region, signed):
        super().__init__(creds, service, region)
        self._signed = signed

    def headers_to_sign(self, request):
        hm = HTTPHeaders()
        for name in self._signed:
            for v in request.headers.get_all(name) or []:
                hm[name] = v
        return hm


AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 +Credential=([^,\s]+), *SignedHeaders=([^,\s]+), *Signature=([0-9a-f]+)$")


class SigResult:
    def __init__(self):
        self.access_key = None
        self.region = None
        self.service = None
        self.entry = None
        self.signed_headers = []


def verify_sigv4(state, method, raw_path, headers, body, expect_services,
                 query_params=None):
    """Checks one request's signature. headers: list of (name, value) as received.
    Returns SigResult or raises ApiError with a generic code the caller maps:
    Missing, Incomplete, Unrecognized, Expired(token), Signature, SigExpired, Scope."""
    hdrs = collections.OrderedDict()
    for n, v in headers:
        hdrs.setdefault(n.lower(), []).append(v)
    auth = hdrs.get("authorization")
    if not auth:
        raise ApiError("Missing", "Missing Authentication Token")
    m = AUTH_RE.match(auth[0].strip())
    if not m:
        raise ApiError("Incomplete", "Authorization header requires 'Credential', "
                       "'Signature' and 'SignedHeaders' parameters in the form "
                       "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...")
    cred, signed, sig = m.groups()
    parts = cred.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise ApiError("Incomplete", "Credential should be scoped to a valid region. ")
    akid, sdate, region, service, _ = parts
    res = SigResult()
    res.access_key, res.region, res.service = akid, region, service
    entry = state.credential(akid)
    if entry is None:
        raise ApiError("Unrecognized", TOKEN_INVALID)
    res.entry = entry
    token_hdr = hdrs.get("x-amz-security-token")
    if entry.get("token"):
        if not token_hdr or token_hdr[0] != entry["token"]:
            raise ApiError("Unrecognized", TOKEN_INVALID)
    elif token_hdr:
        raise ApiError("Unrecognized", TOKEN_INVALID)
    if entry.get("expires") and entry["expires"] < time.time():
        raise ApiError("ExpiredToken", TOKEN_EXPIRED)
    signed_list = signed.split(";")
    res.signed_headers = signed_list
    for need in ("host", "x-amz-date"):
        if need not in signed_list:
            raise ApiError("Signature", SIG_MISMATCH if need == "x-amz-date" else
                           "'Host' or ':authority' must be a 'SignedHeader' in the "
                           "AWS Authorization.")
    if token_hdr and "x-amz-security-token" not in signed_list:
        raise ApiError("Signature", SIG_MISMATCH)
    for n in signed_list:
        if n not in hdrs:
            raise ApiError("Signature", SIG_MISMATCH)
    amz_date = hdrs["x-amz-date"][0].strip()
    try:
        ts = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        raise ApiError("Incomplete", "Date must be in ISO-8601 'basic format'. Got '%s'."
                       % amz_date)
    skew = state.clock_offset
    nowt = time.time() + skew
    if abs(nowt - ts) > 300:
        later = "earlier" if ts < nowt else "later"
        ref = nowt - 300 if ts < nowt else nowt + 300
        raise ApiError("SigExpired", "Signature expired: %s is now %s than %s (%s %s 5 min.)"
                       % (amz_date, later, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ref)),
                          time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(nowt)),
                          "-" if ts < nowt else "+"))
    if sdate != amz_date[:8]:
        raise ApiError("Signature", "Date in Credential scope does not match YYYYMMDD from "
                       "ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'."
                       % (sdate, amz_date[:8], amz_date))
    if service not in expect_services:
        raise ApiError("Scope", "Credential should be scoped to correct service: '%s'. "
                       % expect_services[0])
    if region not in state.regions:
        raise ApiError("Scope", "Credential should be scoped to a valid region. ")
    host = hdrs.get("host", ["127.0.0.1"])[0]
    split = urllib.parse.urlsplit(raw_path)
    url = "https://%s%s" % (host, split.path)
    req = AWSRequest(method=method, url=url, data=body)
    req.headers = HTTPHeaders()
    for n in signed_list:
        for v in hdrs[n]:
            req.headers[n] = v
    if query_params is not None:
        req.params = query_params
    elif split.query:
        req.params = urllib.parse.parse_qsl(split.query, keep_blank_values=True)
    req.context["timestamp"] = amz_date
    signer = _VerifySigner(Credentials(akid, entry["secret"], entry.get("token")),
                           service, region, signed_list)
    creq = signer.canonical_request(req)
    sts = signer.string_to_sign(req, creq)
    want = signer.signature(sts, req)
    if not hmac.compare_digest(want, sig):
        raise ApiError("Signature", SIG_MISMATCH + "\n\nThe Canonical String for this "
                       "request should have been\n'%s'\n\nThe String-to-Sign should have "
                       "been\n'%s'\n" % (creq, sts))
    return res


# ---------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------

class State:
    def __init__(self, args):
        self.args = args
        self.state_dir = args.state_dir
        self.regions = [r for r in args.region.split(",") if r]
        self.creds = dict(DEFAULT_CREDENTIALS)
        self.instances = {}
        self.roles = {}
        self.sso_tokens = {"fake-sso-bearer-token": {}}
        self.web_identity_tokens = ["fake-web-identity-token"]
        # SSO OIDC clients for CreateToken refresh: clientId -> secret, refresh tokens
        self.oidc_clients = {"fake-oidc-client": {"secret": "fake-oidc-secret",
                                                  "refresh_tokens": ["fake-refresh-token"]}}
        self.eic_deny = []   # list of {"instance": id or "*", "user": name or "*"}
        # IAM: StartSession with a document denied to a caller, as a policy
        # that allows only some documents does: {"document": name or "*",
        # "caller": caller name, access key or "*"}
        self.document_deny = []
        self.calls = []
        self.api_faults = []
        # api_rate: action -> calls allowed per sliding second per account;
        # rate_seen: (account, action) -> times of the calls it let through
        self.api_rate = {}
        self.rate_seen = {}
        self.dc_faults = {}
        self.clock_offset = 0.0
        self.ws_port = 0
        self.api_port = 0
        self.sessions = {}   # sid -> fake_agent.Session
        # wss://127.0.0.1:PORT of tests/fastagent: StreamUrls point there
        # instead of at our own agent (benchmarks)
        self.external_agent = getattr(args, "external_agent", None)
        # Peer rule: AWS requests and WebSocket upgrades from any address but
        # this one are refused (a network that reaches AWS only through its
        # proxy); None = any. Every such request is counted by peer address.
        self.only_from = getattr(args, "only_from", None)
        self.peers = {"api": {}, "ws": {}, "refused_api": 0, "refused_ws": 0}
        self.started = time.time()
        self.eic_path = os.path.join(self.state_dir, "eic_keys.jsonl")
        # config temp_creds_ttl_s: temporary credentials (AssumeRole*, SSO)
        # expire after this many seconds whatever DurationSeconds asked
        self.temp_creds_ttl_s = None

    def credential(self, akid):
        return self.creds.get(akid)

    def load_config(self, cfg):
        for k, v in cfg.get("credentials", {}).items():
            self.creds[k] = v
        for k, v in cfg.get("instances", {}).items():
            self.set_instance(k, v)
        self.roles.update(cfg.get("roles", {}))
        if "sso_tokens" in cfg:
            self.sso_tokens = dict(cfg["sso_tokens"])
        if "web_identity_tokens" in cfg:
            self.web_identity_tokens = list(cfg["web_identity_tokens"])
        if "oidc_clients" in cfg:
            self.oidc_clients = dict(cfg["oidc_clients"])
        if "eic_deny" in cfg:
            self.eic_deny = list(cfg["eic_deny"])
        if "document_deny" in cfg:
            self.document_deny = list(cfg["document_deny"])
        if "regions" in cfg:
            self.regions = list(cfg["regions"])
        if "faults" in cfg:
            self.set_faults(cfg["faults"])
        if "api_rate" in cfg:
            self.set_api_rate(cfg["api_rate"])
        if "external_agent" in cfg:
            self.external_agent = cfg["external_agent"] or None
        if "only_from" in cfg:
            self.only_from = cfg["only_from"] or None
        if "temp_creds_ttl_s" in cfg:
            self.temp_creds_ttl_s = float(cfg["temp_creds_ttl_s"] or 0) or None

    def tick(self):
        """Moves every instance along its timeline: a stopping instance is
        stopped stop_delay_s after it began stopping; a started one is
        running boot_delay_s after StartInstances, and its agent comes
        Online agent_delay_s after that (until then SSM sees it
        ConnectionLost, and StartSession answers TargetNotConnected)."""
        now = time.monotonic()
        for inst in self.instances.values():
            st = inst.get("state", "running")
            if st == "stopping" and now >= inst["_since"] + inst.get("stop_delay_s", 0):
                inst["state"], inst["_since"] = "stopped", now
                inst["ping_status"] = "ConnectionLost"
            elif st == "pending" and now >= inst["_since"] + inst.get("boot_delay_s", 0):
                inst["state"], inst["_since"] = "running", now
            if inst.get("state") == "running" and inst.get("_booting") and \
                    now >= inst["_since"] + inst.get("agent_delay_s", 0):
                inst["ping_status"] = "Online"
                inst["_booting"] = False

    def start_instance(self, inst):
        """StartInstances on one instance: (previous, current) state names."""
        prev = inst.get("state", "running")
        if prev == "stopped":
            inst["state"], inst["_since"] = "pending", time.monotonic()
            inst["ping_status"] = "ConnectionLost"
            inst["_booting"] = True
            inst["starts"] = inst.get("starts", 0) + 1
        return prev, inst["state"]

    def set_instance(self, iid, spec):
        base = {"name": None, "ping_status": "Online", "agent_version": "3.3.987.0",
                "platform": "Linux", "platform_name": "Amazon Linux",
                "state": "running", "ports": {}, "hosts": {}, "tags": {},
                "ip": "10.0.0.%d" % (len(self.instances) % 250 + 1)}
        old = self.instances.get(iid, base)
        new = dict(old)
        new.update(spec)
        if new.get("name") and "Name" not in new["tags"]:
            new["tags"] = dict(new["tags"], Name=new["name"])
        if "state" in spec or "_since" not in new:
            new["_since"] = time.monotonic()
        if spec.get("state") == "stopped" and "ping_status" not in spec:
            new["ping_status"] = "ConnectionLost"
        self.instances[iid] = new

    def set_faults(self, f):
        if "api" in f:
            self.api_faults = [dict(x) for x in f["api"]]
        if "api_add" in f:
            self.api_faults.extend(dict(x) for x in f["api_add"])
        if "dc" in f:
            self.dc_faults = dict(f["dc"])
        if "sessions" in f:
            for sid, df in f["sessions"].items():
                s = self.sessions.get(sid)
                if s:
                    s.update_faults(df)
        if "clock_offset" in f:
            self.clock_offset = float(f["clock_offset"])
        if "api_rate" in f:
            self.set_api_rate(f["api_rate"])

    def set_api_rate(self, rates):
        """{action: N}: more than N calls of action in any sliding second
        from one account are throttled (N <= 0 or null removes the limit)."""
        self.api_rate = {a: int(n) for a, n in (rates or {}).items()
                         if n is not None and int(n) > 0}
        self.rate_seen = {}

    def over_rate(self, account, action):
        """Whether this call goes over the action's per-account rate. Only
        the calls let through count, as a service's token bucket spends
        nothing on a throttled call."""
        limit = self.api_rate.get(action)
        if not limit:
            return False
        now = time.monotonic()
        seen = self.rate_seen.setdefault((account, action), collections.deque())
        while seen and now - seen[0] >= 1.0:
            seen.popleft()
        if len(seen) >= limit:
            return True
        seen.append(now)
        return False

    def take_api_fault(self, action, account=None):
        for rule in self.api_faults:
            if rule.get("action", "*") not in ("*", action):
                continue
            if rule.get("account") not in (None, account):
                continue
            cnt = rule.get("count", 1)
            if cnt == 0:
                continue
            if cnt > 0:
                rule["count"] = cnt - 1
            return rule
        return None

    def record(self, entry):
        entry.setdefault("time", time.time())
        self.calls.append(entry)


def redact(params):
    out = {}
    for k, v in params.items():
        if k in ("WebIdentityToken", "TokenValue", "SecretAccessKey", "SessionToken",
                 "x-amz-sso_bearer_token"):
            out[k] = "<redacted %d>" % len(str(v))
        else:
            out[k] = v
    return out


# ---------------------------------------------------------------------------
# Minimal HTTP/1.1 server on asyncio (keep-alive, Content-Length, 100-continue)
# ---------------------------------------------------------------------------

class HttpRequest:
    def __init__(self, method, target, headers, body, peer):
        self.method = method
        self.target = target
        self.headers = headers          # list of (name, value)
        self.body = body
        self.peer = peer

    def header(self, name):
        name = name.lower()
        for n, v in self.headers:
            if n.lower() == name:
                return v
        return None


class HttpResponse:
    def __init__(self, status, body=b"", ctype="application/x-amz-json-1.1", headers=None,
                 close=False):
        self.status = status
        self.body = body if isinstance(body, bytes) else body.encode()
        self.ctype = ctype
        self.headers = headers or []
        self.close = close


REASONS = {100: "Continue", 200: "OK", 400: "Bad Request", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 411: "Length Required",
           413: "Payload Too Large", 429: "Too Many Requests",
           500: "Internal Server Error", 503: "Service Unavailable"}

MAX_HEAD = 64 * 1024
MAX_BODY = 4 * 1024 * 1024


async def http_serve(reader, writer, handler):
    peer = writer.get_extra_info("peername")
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.LimitOverrunError:
                writer.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                             b"Content-Length: 0\r\nConnection: close\r\n\r\n")
                return
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            try:
                method, target, version = lines[0].split(" ", 2)
            except ValueError:
                writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
                return
            headers = []
            for ln in lines[1:]:
                if not ln:
                    continue
                if ":" not in ln:
                    continue
                n, v = ln.split(":", 1)
                headers.append((n.strip(), v.strip()))
            req = HttpRequest(method, target, headers, b"", peer)
            if (req.header("transfer-encoding") or "").lower() == "chunked":
                writer.write(b"HTTP/1.1 411 Length Required\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
                return
            clen = req.header("content-length")
            n = int(clen) if clen and clen.isdigit() else 0
            if n > MAX_BODY:
                writer.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
                return
            if n and (req.header("expect") or "").lower() == "100-continue":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            if n:
                try:
                    req.body = await reader.readexactly(n)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
            try:
                resp = await handler(req)
            except Exception as e:  # noqa: BLE001 - a fake bug: answer 500, keep serving
                import traceback
                log("http: handler error %r\n%s" % (e, traceback.format_exc()))
                resp = HttpResponse(500, json.dumps({"__type": "InternalFailure",
                                                     "message": "fake_aws bug: %r" % (e,)}))
            if resp is None:          # fault: drop the connection without answering
                writer.transport.abort()
                return
            close = resp.close or (req.header("connection") or "").lower() == "close" \
                or version == "HTTP/1.0"
            out = ["HTTP/1.1 %d %s" % (resp.status, REASONS.get(resp.status, "Status")),
                   "Content-Type: %s" % resp.ctype,
                   "Content-Length: %d" % len(resp.body),
                   "Date: %s" % time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())]
            for n_, v_ in resp.headers:
                out.append("%s: %s" % (n_, v_))
            if close:
                out.append("Connection: close")
            writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + resp.body)
            await writer.drain()
            if close:
                return
    except Exception as e:  # noqa: BLE001 - a bad peer must not kill the server
        log("http: connection error: %r" % (e,))
    finally:
        try:
            writer.close()
        except Exception:  # noqa: BLE001
            pass


# ---------------------------------------------------------------------------
# API dispatch
# ---------------------------------------------------------------------------

class Api:
    def __init__(self, state):
        self.state = state

    # -- rendering ----------------------------------------------------------

    def json_ok(self, obj, rid):
        return HttpResponse(200, json.dumps(obj), headers=[("x-amzn-RequestId", rid)])

    def json_err(self, e, rid):
        code = e.code if not e.namespace else "%s#%s" % (e.namespace, e.code)
        body = {"__type": code, e.message_key: e.message}
        return HttpResponse(e.status, json.dumps(body), headers=[("x-amzn-RequestId", rid)])

    def sts_err(self, e, rid):
        body = ('<ErrorResponse xmlns="%s">\n  <Error>\n    <Type>%s</Type>\n'
                '    <Code>%s</Code>\n    <Message>%s</Message>\n  </Error>\n'
                '  <RequestId>%s</RequestId>\n</ErrorResponse>\n'
                % (STS_NS, e.sender, xml_escape(e.code), xml_escape(e.message), rid))
        return HttpResponse(e.status, body, ctype="text/xml",
                            headers=[("x-amzn-RequestId", rid)])

    # -- entry --------------------------------------------------------------

    async def handle(self, req):
        rid = str(uuid.uuid4())
        path = urllib.parse.urlsplit(req.target).path
        if path.startswith("/_fake/"):
            return await self.control(req, path)
        st = self.state
        peer = req.peer[0] if req.peer else "?"
        st.peers["api"][peer] = st.peers["api"].get(peer, 0) + 1
        if st.only_from and peer != st.only_from:
            # As a firewall that lets only the proxy out would: no answer.
            st.peers["refused_api"] += 1
            log("api: refused a request from %s (only %s may connect)"
                % (peer, st.only_from))
            return None
        if req.method == "POST" and path == "/token":
            return await self.oidc(req, rid)
        if req.method == "GET" and path == "/federation/credentials":
            return await self.sso(req, rid)
        if req.method != "POST" or path != "/":
            return HttpResponse(404, json.dumps({"message": "Not Found"}),
                                headers=[("x-amzn-RequestId", rid)])
        target = req.header("x-amz-target")
        if target:
            return await self.json_call(req, target, rid)
        return await self.query_call(req, rid)

    async def raise_or_drop(self, entry, action, proto, rid, caller_arn):
        """Applies the API rate and the API fault for this call: raises its
        error, or, for "drop", logs the call as dropped and returns True
        (answer nothing)."""
        account = caller_arn.split(":")[4] if caller_arn.count(":") >= 5 else ACCOUNT
        if self.state.over_rate(account or ACCOUNT, action):
            entry["throttled"] = "api_rate"
            raise self.throttle_error(proto)
        f = await self.apply_fault(action, proto, rid, caller_arn)
        if f == "drop":
            entry["error"] = "dropped"
            self.state.record(entry)
            return True
        if f:
            raise f
        return False

    @staticmethod
    def throttle_error(proto):
        """The service's own answer to a call over its rate."""
        if proto == "query":
            return ApiError("Throttling", "Rate exceeded", 400)
        if proto == "sso":
            return ApiError("TooManyRequestsException", "Too many requests", 429)
        if proto == "eic":
            return ApiError("ThrottlingException",
                            "Server is busy! Please retry after a moment.", 400)
        return ApiError("ThrottlingException", "Rate exceeded", 400)

    async def apply_fault(self, action, proto, rid, caller_arn="", resource="*"):
        parts = caller_arn.split(":")
        rule = self.state.take_api_fault(
            action, parts[4] if len(parts) >= 6 and parts[4] else ACCOUNT)
        if not rule:
            return None
        kind = rule.get("kind", "throttle")
        if kind == "delay":
            await asyncio.sleep(rule.get("delay_ms", 1000) / 1000.0)
            return None
        if kind == "drop":
            return "drop"
        if kind == "throttle":
            return self.throttle_error(proto)
        if kind == "error500":
            if proto == "query":
                return ApiError("InternalFailure", "An internal error occurred.", 500,
                                sender="Receiver")
            if proto == "eic":
                return ApiError("ServiceException", "An internal error occurred.", 500)
            return ApiError("InternalServerError", "Internal Server Error", 500,
                            message_key="Message")
        if kind == "deny":
            svc = {"query": "sts", "eic": "ec2-instance-connect", "sso": "sso"}.get(proto, "ssm")
            msg = ("User: %s is not authorized to perform: %s:%s on resource: %s because no "
                   "identity-based policy allows the %s:%s action"
                   % (caller_arn, svc, action, resource, svc, action))
            if proto == "query":
                return ApiError("AccessDenied", msg, 403)
            if proto == "eic":
                return ApiError("AuthException", msg, 400)
            return ApiError("AccessDeniedException", msg, 400)
        if kind == "error":
            return ApiError(rule.get("code", "InternalServerError"),
                            rule.get("message", "fault"), rule.get("status", 400),
                            namespace=rule.get("namespace"),
                            message_key=rule.get("message_key", "message"))
        return None

    # -- JSON 1.1 -------------------------------------------------------------

    async def json_call(self, req, target, rid):
        st = self.state
        svc, _, action = target.partition(".")
        entry = {"protocol": "json", "target": target, "action": action, "request_id": rid,
                 "access_key": None, "params": None, "status": None, "error": None,
                 "signed_headers": None}
        services = {"AmazonSSM": ("ssm", "ssm"),
                    "AWSEC2InstanceConnectService": ("ec2-instance-connect", "eic")}
        if svc not in services:
            e = ApiError("UnknownOperationException", None, 400)
            e.message_key = "Message"
            e.message = None
            return self.finish_json(entry, e, rid)
        sign_name, proto = services[svc]
        entry["service"] = sign_name
        try:
            sres = verify_sigv4(st, req.method, req.target, req.headers, req.body, [sign_name])
        except ApiError as e:
            return self.finish_json(entry, self.map_auth_error(e), rid)
        entry["access_key"] = sres.access_key
        entry["region"] = sres.region
        entry["signed_headers"] = sres.signed_headers
        entry["session_token"] = bool(req.header("x-amz-security-token"))
        # The SDK headers that tie attempts to one call (retries share
        # the invocation id): a test counts attempts per call with them.
        entry["invocation_id"] = req.header("amz-sdk-invocation-id")
        entry["sdk_request"] = req.header("amz-sdk-request")
        ctype = (req.header("content-type") or "").split(";")[0].strip().lower()
        try:
            if ctype != "application/x-amz-json-1.1":
                raise ApiError("SerializationException",
                               "Unexpected Content-Type %r" % ctype, 400)
            try:
                params = json.loads(req.body.decode("utf-8") or "null")
            except (ValueError, UnicodeDecodeError):
                raise ApiError("SerializationException",
                               "Start of structure or map found where not expected.", 400)
            if not isinstance(params, dict):
                raise ApiError("SerializationException",
                               "Start of structure or map expected.", 400)
            entry["params"] = redact(params)
            handler = getattr(self, "op_%s_%s" % (proto, action), None)
            if handler is None:
                raise ApiError("UnknownOperationException", "Unknown operation %s" % target,
                               400)
            if await self.raise_or_drop(entry, action, proto, rid,
                                        sres.entry.get("arn", "")):
                return None
            out = await handler(params, sres, req)
        except ApiError as e:
            return self.finish_json(entry, e, rid)
        entry["status"] = 200
        entry["response"] = redact(out)
        st.record(entry)
        log("call %s %s -> 200" % (target, sres.access_key))
        return self.json_ok(out, rid)

    def finish_json(self, entry, e, rid):
        entry["status"] = e.status
        entry["error"] = e.code
        entry["error_message"] = e.message
        self.state.record(entry)
        log("call %s -> %d %s" % (entry.get("target"), e.status, e.code))
        return self.json_err(e, rid)

    # A failed SigV4 check (verify_sigv4's kind) as each protocol answers
    # it: (code, status) for the JSON services, query (STS) and EC2.
    AUTH_PROTOS = ("json", "query", "ec2")
    AUTH_ERRORS = {
        "Missing": (("MissingAuthenticationTokenException", 403),
                    ("MissingAuthenticationToken", 403),
                    ("MissingAuthenticationToken", 401)),
        "Incomplete": (("IncompleteSignatureException", 400),
                       ("IncompleteSignature", 400),
                       ("IncompleteSignature", 400)),
        "Unrecognized": (("UnrecognizedClientException", 400),
                         ("InvalidClientTokenId", 403),
                         ("AuthFailure", 401)),
        "ExpiredToken": (("ExpiredTokenException", 400),
                         ("ExpiredToken", 403),
                         ("RequestExpired", 400)),
        "Signature": (("InvalidSignatureException", 400),
                      ("SignatureDoesNotMatch", 403),
                      ("SignatureDoesNotMatch", 403)),
        "SigExpired": (("InvalidSignatureException", 400),
                       ("SignatureDoesNotMatch", 403),
                       ("RequestExpired", 400)),
        "Scope": (("InvalidSignatureException", 400),
                  ("SignatureDoesNotMatch", 403),
                  ("SignatureDoesNotMatch", 403)),
    }

    @classmethod
    def map_auth_error(cls, e, proto="json"):
        code, status = cls.AUTH_ERRORS[e.code][cls.AUTH_PROTOS.index(proto)]
        if code == "AuthFailure":  # EC2 does not repeat the reason
            return ApiError(code, "AWS was not able to validate the provided "
                            "access credentials", status)
        return ApiError(code, e.message, status)

    # -- SSM ----------------------------------------------------------------

    @staticmethod
    def _req_str(params, name, lo, hi, field=None):
        v = params.get(name)
        field = field or (name[0].lower() + name[1:])
        if v is None:
            raise ApiError("ValidationException", "1 validation error detected: Value null at "
                           "'%s' failed to satisfy constraint: Member must not be null" % field)
        if not isinstance(v, str):
            raise ApiError("SerializationException", "STRING_VALUE can not be converted to "
                           "a String for %s" % name)
        if not lo <= len(v) <= hi:
            raise ApiError("ValidationException", "1 validation error detected: Value '%s' at "
                           "'%s' failed to satisfy constraint: Member must have length "
                           "between %d and %d" % (v, field, lo, hi))
        return v

    def _caller(self, sres):
        return sres.entry.get("caller") or sres.access_key

    @staticmethod
    def _visible(inst, sres):
        """An instance is seen only by its own account (config "account",
        default 123456789012) and, when it names one, in its own "region":
        AWS answers a call signed by another account, or for another region,
        as if the instance did not exist."""
        return inst is not None and \
            inst.get("account", ACCOUNT) == account_of(sres.entry) and \
            inst.get("region") in (None, sres.region)

    def _own_session(self, sid, sres):
        """The session, when it exists and the caller's account started it."""
        sess = self.state.sessions.get(sid)
        if sess is None:
            return None
        starter = self.state.credential(sess.access_key) or {}
        return sess if account_of(starter) == account_of(sres.entry) else None

    def _session_answer(self, sess):
        """StartSession's and ResumeSession's answer: a new token and the
        StreamUrl."""
        token = sess.new_token()
        return {"SessionId": sess.sid, "TokenValue": token,
                "StreamUrl": self._stream_url(sess)}

    def _stream_url(self, sess):
        url = ("/v1/data-channel/%s?role=publish_subscribe&cell-number=%s"
               % (sess.sid, sess.cell))
        ext = self.state.external_agent
        if not ext:
            return "wss://127.0.0.1:%d%s" % (self.state.ws_port, url)
        # The fast agent learns the session from the query: what our own
        # agent would say in its handshake and where it would dial.
        props = sess.handshake_properties()
        dest = sess.dest_addr() or ("127.0.0.1", 9)
        q = {"fa-session-type": "Port", "fa-port-type": props.get("type", ""),
             "fa-dest": "%s:%d" % dest,
             "fa-agent-version": sess.inst.get("agent_version", "3.3.987.0")}
        return ext.rstrip("/") + url + "&" + urllib.parse.urlencode(q)

    async def op_ssm_StartSession(self, p, sres, req):
        st = self.state
        st.tick()
        target = self._req_str(p, "Target", 1, 400)
        doc = p.get("DocumentName")
        if doc is None:
            raise ApiError("InvalidDocument", "fake_aws supports only the port session "
                           "documents; DocumentName is required", message_key="Message")
        if not isinstance(doc, str):
            raise ApiError("SerializationException", "DocumentName must be a string")
        if not re.match(r"^[a-zA-Z0-9_\-.:/]{3,128}$", doc):
            raise ApiError("ValidationException", "1 validation error detected: Value '%s' at "
                           "'documentName' failed to satisfy constraint: Member must satisfy "
                           "regular expression pattern: ^[a-zA-Z0-9_\\-.:/]{3,128}$" % doc)
        caller = self._caller(sres)
        for rule in st.document_deny:
            if rule.get("document", "*") in ("*", doc) and \
                    rule.get("caller", "*") in ("*", caller, sres.access_key):
                arn = sres.entry.get("arn") or \
                    "arn:aws:iam::%s:user/%s" % (account_of(sres.entry), caller)
                raise ApiError("AccessDeniedException",
                               "User: %s is not authorized to perform: ssm:StartSession on "
                               "resource: arn:aws:ssm:%s::document/%s because no "
                               "identity-based policy allows the ssm:StartSession action"
                               % (arn, sres.region, doc))
        if doc not in DOCUMENTS:
            raise ApiError("InvalidDocument", "Document %s does not exist in your account"
                           % doc, message_key="Message")
        reason = p.get("Reason")
        if reason is not None:
            if not isinstance(reason, str):
                raise ApiError("SerializationException", "Reason must be a string")
            if not 1 <= len(reason) <= 256:
                raise ApiError("ValidationException", "1 validation error detected: Value at "
                               "'reason' failed to satisfy constraint: Member must have "
                               "length between 1 and 256")
        raw = p.get("Parameters", {})
        if not isinstance(raw, dict):
            raise ApiError("SerializationException", "Parameters must be a map")
        props = {}
        for k, v in raw.items():
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise ApiError("SerializationException", "Unexpected value for parameter %s: "
                               "Parameters values must be lists of strings" % k)
            if not 1 <= len(k) <= 255 or any(not 1 <= len(x) <= 65535 for x in v):
                raise ApiError("ValidationException", "1 validation error detected: Value at "
                               "'parameters' failed to satisfy constraint")
            if k not in DOCUMENTS[doc]:
                raise ApiError("InvalidParameters", "Parameter \"%s\" is not defined in "
                               "document %s." % (k, doc), message_key="Message")
            if len(v) != 1:
                raise ApiError("InvalidParameters", "Parameter \"%s\" must have exactly one "
                               "value." % k, message_key="Message")
            props[k] = v[0]
        for k, dflt in DOCUMENTS[doc].items():
            if k not in props:
                if dflt is None:
                    raise ApiError("InvalidParameters", "Parameter \"%s\" is required."
                                   % k, message_key="Message")
                props[k] = dflt
        for k in ("portNumber", "localPortNumber"):
            if k in props and not (props[k].isdigit() and 0 <= int(props[k]) <= 65535
                                   and (k == "localPortNumber" or int(props[k]) >= 1)):
                raise ApiError("InvalidParameters", "Parameter \"%s\" has an invalid value "
                               "\"%s\"." % (k, props[k]), message_key="Message")
        inst = st.instances.get(target)
        if not self._visible(inst, sres):
            inst = None
        if inst is None or inst.get("ping_status") != "Online" or \
                inst.get("state", "running") != "running":
            raise ApiError("TargetNotConnected", "%s is not connected." % target,
                           message_key="Message")
        sid = "%s-%s" % (self._caller(sres), secrets.token_hex(9)[:17])
        sess = fake_agent.Session(st, sid, target, inst, doc, props, sres.access_key,
                                  reason)
        st.sessions[sid] = sess
        return self._session_answer(sess)

    async def op_ssm_ResumeSession(self, p, sres, req):
        sid = self._req_str(p, "SessionId", 1, 96)
        sess = self._own_session(sid, sres)
        if sess is not None:
            sess.stats["resume_calls"] += 1
        if sess is None or (sess.terminated and
                            sess.faults.get("resume_mode") == "does_not_exist"):
            raise ApiError("DoesNotExistException", "Session %s does not exist" % sid,
                           message_key="Message")
        if sess.terminated:
            return {"SessionId": sid}
        if sess.faults.get("new_cell_on_resume", True):
            sess.cell = fake_agent.make_cell()
        return self._session_answer(sess)

    async def op_ssm_TerminateSession(self, p, sres, req):
        sid = self._req_str(p, "SessionId", 1, 96)
        sess = self._own_session(sid, sres)
        if sess is not None and not sess.terminated:
            sess.stats["terminate_api"] = True
            await sess.terminate("Session terminated by TerminateSession.")
        return {"SessionId": sid}

    async def op_ssm_DescribeInstanceInformation(self, p, sres, req):
        st = self.state
        st.tick()
        filters = p.get("Filters")
        legacy = p.get("InstanceInformationFilterList")
        if filters is not None and legacy is not None:
            raise ApiError("ValidationException", "InstanceInformationFilterList and Filters "
                           "cannot be specified together")
        maxr = p.get("MaxResults", 10)
        if not isinstance(maxr, int) or isinstance(maxr, bool):
            raise ApiError("SerializationException", "MaxResults must be an integer")
        if not 5 <= maxr <= 50:
            raise ApiError("ValidationException", "1 validation error detected: Value '%d' at "
                           "'maxResults' failed to satisfy constraint: Member must have value "
                           "%s" % (maxr, "greater than or equal to 5" if maxr < 5 else
                                   "less than or equal to 50"))
        conds = []
        for f in (filters or []):
            if not isinstance(f, dict) or not isinstance(f.get("Key"), str) or \
                    not isinstance(f.get("Values"), list) or not f["Values"]:
                raise ApiError("ValidationException", "Filters must have Key and Values")
            conds.append((f["Key"], f["Values"]))
        for f in (legacy or []):
            if not isinstance(f, dict) or "key" not in f or "valueSet" not in f:
                raise ApiError("ValidationException", "Invalid InstanceInformationFilterList")
            conds.append((f["key"], f["valueSet"]))
        tagf = [c for c in conds if c[0].startswith("tag:") or c[0] == "tag-key"]
        if tagf and len(tagf) != len(conds):
            raise ApiError("InvalidFilterKey", "Tag filters cannot be combined with other "
                           "filter types", message_key="Message")
        known = {"InstanceIds", "AgentVersion", "PingStatus", "PlatformTypes",
                 "ActivationIds", "IamRole", "ResourceType", "AssociationStatus",
                 "SourceIds", "SourceTypes", "tag-key"}
        for k, _ in conds:
            if k not in known and not k.startswith("tag:"):
                raise ApiError("InvalidFilterKey", "%s is not a valid filter key" % k,
                               message_key="Message")
        items = []
        for iid in sorted(st.instances):
            inst = st.instances[iid]
            if inst.get("state", "running") not in ("running", "pending", "stopping") or \
                    not self._visible(inst, sres):
                continue
            ok = True
            for k, vals in conds:
                if k == "InstanceIds":
                    ok = iid in vals
                elif k == "PingStatus":
                    ok = inst.get("ping_status") in vals
                elif k == "PlatformTypes":
                    ok = inst.get("platform") in vals
                elif k == "AgentVersion":
                    ok = inst.get("agent_version") in vals
                elif k == "ResourceType":
                    ok = ("ManagedInstance" if iid.startswith("mi-") else "EC2Instance") in vals
                elif k == "tag-key":
                    ok = any(t in inst["tags"] for t in vals)
                elif k.startswith("tag:"):
                    ok = inst["tags"].get(k[4:]) in vals
                if not ok:
                    break
            if ok:
                items.append(self._inst_info(iid, inst))
        digest = hashlib.sha256(json.dumps(conds, sort_keys=True).encode()).hexdigest()[:16]
        start = 0
        tok = p.get("NextToken")
        if tok is not None:
            try:
                d = json.loads(base64.b64decode(tok).decode())
                if d["f"] != digest:
                    raise ValueError
                start = int(d["o"])
            except Exception:  # noqa: BLE001
                raise ApiError("InvalidNextToken", "The specified token is not valid.",
                               message_key="Message")
        page = items[start:start + maxr]
        out = {"InstanceInformationList": page}
        if start + maxr < len(items):
            out["NextToken"] = base64.b64encode(json.dumps(
                {"o": start + maxr, "f": digest, "pad": secrets.token_hex(8)}).encode()
            ).decode()
        return out

    def _inst_info(self, iid, inst):
        d = {"InstanceId": iid, "PingStatus": inst.get("ping_status", "Online"),
             "LastPingDateTime": time.time() - 30.5,
             "AgentVersion": inst.get("agent_version"), "IsLatestVersion": False,
             "PlatformType": inst.get("platform", "Linux"),
             "PlatformName": inst.get("platform_name", "Amazon Linux"),
             "PlatformVersion": "2023",
             "ResourceType": "ManagedInstance" if iid.startswith("mi-") else "EC2Instance",
             "IPAddress": inst.get("ip", "10.0.0.1"),
             "ComputerName": "ip-%s.ec2.internal" % inst.get("ip", "10.0.0.1").replace(".", "-"),
             "AssociationStatus": "Success", "LastAssociationExecutionDate": 1.7E9,
             "SourceId": iid, "SourceType": "AWS::EC2::Instance"}
        if iid.startswith("mi-"):
            d["Name"] = inst.get("name") or ""
            d["SourceType"] = "AWS::SSM::ManagedInstance"
        return d

    # -- EC2 Instance Connect -------------------------------------------------

    async def op_eic_SendSSHPublicKey(self, p, sres, req):
        st = self.state
        iid = self._req_str(p, "InstanceId", 10, 32)
        if not re.match(r"^i-[a-f0-9]+$", iid):
            raise ApiError("ValidationException", "1 validation error detected: Value '%s' at "
                           "'instanceId' failed to satisfy constraint: Member must satisfy "
                           "regular expression pattern: ^i-[a-f0-9]+$" % iid)
        user = self._req_str(p, "InstanceOSUser", 1, 32)
        if not re.match(r"^([A-Za-z_][A-Za-z0-9@._-]{0,30}[A-Za-z0-9@._$-]?)$|^([0-9]+"
                        r"[A-Za-z_][A-Za-z0-9@._-]{0,30}[A-Za-z0-9@._$-]?)$", user):
            raise ApiError("ValidationException", "1 validation error detected: Value '%s' at "
                           "'instanceOSUser' failed to satisfy constraint: Member must satisfy "
                           "regular expression pattern" % user)
        key = self._req_str(p, "SSHPublicKey", 80, 4096, "sSHPublicKey")
        az = p.get("AvailabilityZone")
        if az is not None and (not isinstance(az, str) or
                               not re.match(r"^(\w+-){2,3}\d+\w+$", az)):
            raise ApiError("ValidationException", "1 validation error detected: Value at "
                           "'availabilityZone' failed to satisfy constraint")
        parts = key.split()
        ok_types = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
                    "ecdsa-sha2-nistp521")
        valid = len(parts) >= 2 and parts[0] in ok_types
        if valid:
            try:
                blob = base64.b64decode(parts[1], validate=True)
                n = int.from_bytes(blob[:4], "big")
                valid = blob[4:4 + n].decode() == parts[0]
            except Exception:  # noqa: BLE001
                valid = False
        if not valid:
            raise ApiError("InvalidArgsException", "SSH Public key is invalid",
                           namespace="com.amazon.aws.ec2instanceconnect", message_key="Message")
        inst = st.instances.get(iid)
        if inst is None or iid.startswith("mi-") or not self._visible(inst, sres):
            raise ApiError("EC2InstanceNotFoundException", "Instance not found: %s" % iid,
                           message_key="Message")
        for rule in st.eic_deny + inst.get("eic_deny", []):
            if rule.get("instance", "*") in ("*", iid) and rule.get("user", "*") in ("*", user):
                raise ApiError("AuthException", "Not authorized for this instance/user: "
                               "ec2:osuser %s" % user, message_key="Message")
        if inst.get("state", "running") != "running":
            raise ApiError("EC2InstanceStateInvalidException",
                           "Instance %s is in state %s" % (iid, inst.get("state")),
                           message_key="Message")
        t = time.time()
        rec = {"time": t, "expires": t + 60, "instance": iid, "user": user, "key": key}
        with open(st.eic_path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        os.chmod(st.eic_path, 0o644)
        return {"RequestId": str(uuid.uuid4()), "Success": True}

    # -- STS (Query) ----------------------------------------------------------

    async def query_call(self, req, rid):
        st = self.state
        try:
            form = urllib.parse.parse_qsl(req.body.decode("utf-8"), keep_blank_values=True,
                                          strict_parsing=bool(req.body))
        except (ValueError, UnicodeDecodeError):
            form = []
        params = dict(form)
        action = params.get("Action", "")
        if params.get("Version") == "2016-11-15":
            return await self.ec2_call(req, rid, params)
        entry = {"protocol": "query", "service": "sts", "action": action, "request_id": rid,
                 "access_key": None, "params": redact(params), "status": None, "error": None}
        try:
            if params.get("Version") != "2011-06-15":
                raise ApiError("InvalidAction", "Could not find operation %s for version %s"
                               % (action, params.get("Version")), 400)
            sres = None
            if action != "AssumeRoleWithWebIdentity":
                try:
                    sres = verify_sigv4(st, req.method, req.target, req.headers, req.body,
                                        ["sts"])
                except ApiError as e:
                    raise self.map_auth_error(e, "query")
                entry["access_key"] = sres.access_key
                entry["region"] = sres.region
                entry["signed_headers"] = sres.signed_headers
            elif req.header("authorization"):
                entry["signed"] = True
            if await self.raise_or_drop(entry, action, "query", rid,
                                        sres.entry.get("arn", "") if sres else ""):
                return None
            handler = getattr(self, "op_sts_%s" % action, None)
            if handler is None:
                raise ApiError("InvalidAction", "Could not find operation %s for version "
                               "2011-06-15" % action, 400)
            xml = handler(params, sres)
        except ApiError as e:
            entry["status"] = e.status
            entry["error"] = e.code
            entry["error_message"] = e.message
            st.record(entry)
            log("call sts %s -> %d %s" % (action, e.status, e.code))
            return self.sts_err(e, rid)
        entry["status"] = 200
        st.record(entry)
        log("call sts %s -> 200" % action)
        body = ('<%sResponse xmlns="%s">\n  <%sResult>\n%s  </%sResult>\n'
                '  <ResponseMetadata>\n    <RequestId>%s</RequestId>\n'
                '  </ResponseMetadata>\n</%sResponse>\n'
                % (action, STS_NS, action, xml, action, rid, action))
        return HttpResponse(200, body, ctype="text/xml", headers=[("x-amzn-RequestId", rid)])

    def _issue_creds(self, caller, arn, user_id, duration, via):
        akid = "ASIA" + "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
                                for _ in range(16))
        secret = base64.b64encode(secrets.token_bytes(30)).decode()
        token = "IQoJb3JpZ2luX2VjEFAKE" + base64.b64encode(secrets.token_bytes(600)).decode()
        now = time.time()
        exp = now + (self.state.temp_creds_ttl_s or duration)
        self.state.creds[akid] = {"secret": secret, "token": token, "caller": caller,
                                  "arn": arn, "user_id": user_id, "expires": exp,
                                  "issued": now, "issued_by": via}
        return akid, secret, token, exp

    @staticmethod
    def _dur(params, max_d):
        d = params.get("DurationSeconds")
        if d is None:
            return 3600
        if not d.isdigit() or not 900 <= int(d) <= 43200:
            raise ApiError("ValidationError", "1 validation error detected: Value '%s' at "
                           "'durationSeconds' failed to satisfy constraint: Member must have "
                           "value greater than or equal to 900" % d, 400)
        if int(d) > max_d:
            raise ApiError("ValidationError", "The requested DurationSeconds exceeds the "
                           "MaxSessionDuration set for this role.", 400)
        return int(d)

    def _role(self, params, caller_arn):
        arn = params.get("RoleArn")
        name = params.get("RoleSessionName")
        if not arn or not 20 <= len(arn) <= 2048:
            raise ApiError("ValidationError", "1 validation error detected: Value at "
                           "'roleArn' failed to satisfy constraint", 400)
        if not name or not re.match(r"^[\w+=,.@-]{2,64}$", name):
            raise ApiError("ValidationError", "1 validation error detected: Value '%s' at "
                           "'roleSessionName' failed to satisfy constraint: Member must "
                           "satisfy regular expression pattern: [\\w+=,.@-]*" % name, 400)
        m = re.match(r"^arn:aws[\w-]*:iam::(\d{12}):role/(?:[\w+=,.@-]+/)*([\w+=,.@-]+)$", arn)
        if not m:
            raise ApiError("ValidationError", "%s is invalid" % arn, 400)
        role = self.state.roles.get(arn)
        if self.state.roles and role is None:
            raise ApiError("AccessDenied", "User: %s is not authorized to perform: "
                           "sts:AssumeRole on resource: %s" % (caller_arn, arn), 403)
        return arn, name, m.group(1), m.group(2), role or {}

    def _creds_xml(self, akid, secret, token, exp, arn, name, account, role_name):
        return ('    <Credentials>\n      <AccessKeyId>%s</AccessKeyId>\n'
                '      <SecretAccessKey>%s</SecretAccessKey>\n'
                '      <SessionToken>%s</SessionToken>\n'
                '      <Expiration>%s</Expiration>\n    </Credentials>\n'
                '    <AssumedRoleUser>\n      <AssumedRoleId>AROAFAKEROLEID000001:%s'
                '</AssumedRoleId>\n      <Arn>arn:aws:sts::%s:assumed-role/%s/%s</Arn>\n'
                '    </AssumedRoleUser>\n'
                % (akid, xml_escape(secret), xml_escape(token), iso(exp), xml_escape(name),
                   account, xml_escape(role_name), xml_escape(name)))

    def op_sts_AssumeRole(self, params, sres):
        arn, name, account, rname, role = self._role(params, sres.entry.get("arn", ""))
        ext = params.get("ExternalId")
        if ext is not None and not re.match(r"^[\w+=,.@:/-]{2,1224}$", ext):
            raise ApiError("ValidationError", "1 validation error detected: Value at "
                           "'externalId' failed to satisfy constraint", 400)
        if role.get("external_id") is not None and ext != role["external_id"]:
            raise ApiError("AccessDenied", "User: %s is not authorized to perform: "
                           "sts:AssumeRole on resource: %s" % (sres.entry.get("arn", ""), arn),
                           403)
        dur = self._dur(params, role.get("max_duration", 43200))
        akid, secret, token, exp = self._issue_creds(
            name, "arn:aws:sts::%s:assumed-role/%s/%s" % (account, rname, name),
            "AROAFAKEROLEID000001:%s" % name, dur, "AssumeRole")
        return self._creds_xml(akid, secret, token, exp, arn, name, account, rname) + \
            "    <PackedPolicySize>6</PackedPolicySize>\n"

    def op_sts_AssumeRoleWithWebIdentity(self, params, sres):
        tok = params.get("WebIdentityToken")
        if not tok or not 4 <= len(tok) <= 20000:
            raise ApiError("ValidationError", "1 validation error detected: Value at "
                           "'webIdentityToken' failed to satisfy constraint", 400)
        if tok.startswith("expired"):
            raise ApiError("ExpiredTokenException", "Token expired: current date/time is "
                           "after the token's expiration", 400)
        if tok not in self.state.web_identity_tokens:
            raise ApiError("InvalidIdentityToken", "Couldn't retrieve verification key from "
                           "your identity provider", 400)
        arn, name, account, rname, role = self._role(params, "web-identity")
        dur = self._dur(params, role.get("max_duration", 43200))
        akid, secret, token, exp = self._issue_creds(
            name, "arn:aws:sts::%s:assumed-role/%s/%s" % (account, rname, name),
            "AROAFAKEROLEID000001:%s" % name, dur, "AssumeRoleWithWebIdentity")
        return self._creds_xml(akid, secret, token, exp, arn, name, account, rname) + \
            ("    <SubjectFromWebIdentityToken>system:serviceaccount:default:fake"
             "</SubjectFromWebIdentityToken>\n    <Audience>sts.amazonaws.com</Audience>\n"
             "    <Provider>arn:aws:iam::%s:oidc-provider/fake</Provider>\n" % account)

    def op_sts_GetCallerIdentity(self, params, sres):
        e = sres.entry
        return ("    <Arn>%s</Arn>\n    <UserId>%s</UserId>\n    <Account>%s</Account>\n"
                % (xml_escape(e.get("arn", "")), xml_escape(e.get("user_id", "")),
                   e.get("account", ACCOUNT)))

    # -- SSO portal -----------------------------------------------------------

    async def sso(self, req, rid):
        st = self.state
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(req.target).query))
        entry = {"protocol": "rest-json", "service": "sso", "action": "GetRoleCredentials",
                 "request_id": rid, "params": q, "status": None, "error": None,
                 "signed": bool(req.header("authorization"))}

        def err(code, msg, status):
            entry["status"] = status
            entry["error"] = code
            st.record(entry)
            log("call sso GetRoleCredentials -> %d %s" % (status, code))
            return HttpResponse(status, json.dumps({"message": msg}), ctype="application/json",
                                headers=[("x-amzn-RequestId", rid),
                                         ("x-amzn-ErrorType", "%s:http://internal.amazon.com/"
                                          "coral/com.amazonaws.switchboard.portal/" % code)])
        f = await self.apply_fault("GetRoleCredentials", "sso", rid)
        if f == "drop":
            return None
        if f:
            return err(f.code, f.message, f.status)
        bearer = req.header("x-amz-sso_bearer_token")
        if not q.get("role_name") or not re.match(r"^\d{12}$", q.get("account_id", "")):
            return err("InvalidRequestException", "role_name and account_id are required", 400)
        if not bearer or bearer not in st.sso_tokens:
            return err("UnauthorizedException", "Session token not found or invalid", 401)
        allowed = st.sso_tokens[bearer].get("roles")
        rk = "%s/%s" % (q["account_id"], q["role_name"])
        if allowed is not None and rk not in allowed:
            return err("ResourceNotFoundException", "No access", 404)
        akid, secret, token, exp = self._issue_creds(
            "sso-user", "arn:aws:sts::%s:assumed-role/AWSReservedSSO_%s_0123/sso-user"
            % (q["account_id"], q["role_name"]), "AROAFAKESSO:sso-user", 3600,
            "GetRoleCredentials")
        entry["status"] = 200
        st.record(entry)
        log("call sso GetRoleCredentials -> 200")
        return HttpResponse(200, json.dumps({"roleCredentials": {
            "accessKeyId": akid, "secretAccessKey": secret, "sessionToken": token,
            "expiration": int(exp * 1000)}}), ctype="application/json",
            headers=[("x-amzn-RequestId", rid)])

    # -- EC2 (Query variant) ------------------------------------------------

    def ec2_err(self, e, rid):
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>%s'
                '</Code><Message>%s</Message></Error></Errors><RequestID>%s</RequestID>'
                '</Response>' % (xml_escape(e.code), xml_escape(e.message or ""), rid))
        return HttpResponse(e.status, body, ctype="text/xml;charset=UTF-8")

    async def ec2_call(self, req, rid, params):
        st = self.state
        action = params.get("Action", "")
        entry = {"protocol": "ec2", "service": "ec2", "action": action, "request_id": rid,
                 "access_key": None, "params": params, "status": None, "error": None}
        try:
            try:
                sres = verify_sigv4(st, req.method, req.target, req.headers, req.body, ["ec2"])
            except ApiError as e:
                raise self.map_auth_error(e, "ec2")
            entry["access_key"] = sres.access_key
            entry["region"] = sres.region
            f = await self.apply_fault(action, "ec2", rid, sres.entry.get("arn", ""))
            if f == "drop":
                return None
            if f:
                if f.code == "ThrottlingException":
                    f = ApiError("RequestLimitExceeded", "Request limit exceeded.", 503)
                elif f.code == "InternalServerError":
                    f = ApiError("InternalError", "An internal error has occurred", 500)
                elif f.code == "AccessDeniedException":
                    f = ApiError("UnauthorizedOperation", "You are not authorized to "
                                 "perform this operation.", 403)
                raise f
            st.tick()
            if action == "StartInstances":
                xml = self.ec2_start(params, sres)
            elif action == "DescribeInstances":
                xml = self.ec2_describe(params, sres)
            else:
                raise ApiError("InvalidAction", "The action %s is not valid for this web "
                               "service." % action, 400)
        except ApiError as e:
            entry["status"], entry["error"] = e.status, e.code
            st.record(entry)
            log("call ec2 %s -> %d %s" % (action, e.status, e.code))
            return self.ec2_err(e, rid)
        entry["status"] = 200
        st.record(entry)
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n<%sResponse '
                'xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">\n    <requestId>%s'
                '</requestId>\n%s</%sResponse>' % (action, rid, xml, action))
        return HttpResponse(200, body, ctype="text/xml;charset=UTF-8")

    EC2_STATES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48,
                  "stopping": 64, "stopped": 80}

    def ec2_start(self, params, sres):
        """StartInstances: InstanceId.N, all known to the caller and in a
        state that can start (EC2 checks every id before starting any)."""
        st = self.state
        ids = [v for k, v in sorted(params.items()) if re.match(r"^InstanceId\.\d+$", k)]
        if not ids:
            raise ApiError("MissingParameter", "The request must contain the parameter "
                           "InstanceId", 400)
        for i in ids:
            if not re.match(r"^i-[0-9a-f]{8,17}$", i):
                raise ApiError("InvalidInstanceID.Malformed", "Invalid id: \"%s\"" % i, 400)
            inst = st.instances.get(i)
            if not self._visible(inst, sres):
                raise ApiError("InvalidInstanceID.NotFound", "The instance ID '%s' does not "
                               "exist" % i, 400)
            if inst.get("state", "running") in ("stopping", "shutting-down", "terminated"):
                raise ApiError("IncorrectInstanceState", "The instance '%s' is not in a state "
                               "from which it can be started." % i, 400)
        items = []
        for i in ids:
            prev, cur = st.start_instance(st.instances[i])
            items.append("        <item>\n            <instanceId>%s</instanceId>\n"
                         "            <currentState><code>%d</code><name>%s</name>"
                         "</currentState>\n            <previousState><code>%d</code>"
                         "<name>%s</name></previousState>\n        </item>\n"
                         % (i, self.EC2_STATES[cur], cur, self.EC2_STATES[prev], prev))
        return "    <instancesSet>\n%s    </instancesSet>\n" % "".join(items)

    def ec2_describe(self, params, sres):
        st = self.state
        seen = {iid: inst for iid, inst in st.instances.items() if self._visible(inst, sres)}
        filters = {}
        ids = []
        for k, v in params.items():
            m = re.match(r"^Filter\.(\d+)\.Name$", k)
            if m:
                filters.setdefault(m.group(1), [v, []])[0] = v
            m = re.match(r"^Filter\.(\d+)\.Value\.(\d+)$", k)
            if m:
                filters.setdefault(m.group(1), [None, []])[1].append(v)
            if re.match(r"^InstanceId\.\d+$", k):
                ids.append(v)
        maxr = params.get("MaxResults")
        if maxr is not None and ids:
            raise ApiError("InvalidParameterCombination", "The parameter instancesSet cannot "
                           "be used with the parameter maxResults", 400)
        for i in ids:
            if not re.match(r"^i-[0-9a-f]{8,17}$", i):
                raise ApiError("InvalidInstanceID.Malformed", "Invalid id: \"%s\"" % i, 400)
            if i not in seen:
                raise ApiError("InvalidInstanceID.NotFound", "The instance ID '%s' does not "
                               "exist" % i, 400)
        states = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48,
                  "stopping": 64, "stopped": 80}
        out = []
        for iid in sorted(seen):
            inst = seen[iid]
            if not iid.startswith("i-") or (ids and iid not in ids):
                continue
            ok = True
            for name, vals in filters.values():
                if name == "instance-state-name":
                    ok = inst.get("state", "running") in vals
                elif name == "instance-id":
                    ok = iid in vals
                elif name == "tag-key":
                    ok = any(t in inst["tags"] for t in vals)
                elif name and name.startswith("tag:"):
                    ok = inst["tags"].get(name[4:]) in vals
                elif name == "private-ip-address":
                    ok = inst.get("ip") in vals
                else:
                    raise ApiError("InvalidParameterValue", "The filter '%s' is invalid"
                                   % name, 400)
                if not ok:
                    break
            if ok:
                out.append((iid, inst))
        start = 0
        if params.get("NextToken"):
            try:
                start = int(base64.b64decode(params["NextToken"]).decode())
            except Exception:  # noqa: BLE001
                raise ApiError("InvalidParameterValue", "Invalid NextToken", 400)
        n = int(maxr) if maxr and maxr.isdigit() else 1000
        if not 5 <= n <= 1000:
            raise ApiError("InvalidParameterValue", "Value ( %d ) for parameter maxResults "
                           "is invalid. Expecting a value greater than 5." % n, 400)
        page = out[start:start + n]
        items = []
        for iid, inst in page:
            st_name = inst.get("state", "running")
            tags = "".join("<item><key>%s</key><value>%s</value></item>"
                           % (xml_escape(k), xml_escape(v)) for k, v in inst["tags"].items())
            ip = inst.get("ip", "10.0.0.1")
            items.append(
                "        <item>\n            <reservationId>r-%s</reservationId>\n"
                "            <ownerId>%s</ownerId>\n            <instancesSet>\n"
                "                <item>\n                    <instanceId>%s</instanceId>\n"
                "                    <instanceState><code>%d</code><name>%s</name>"
                "</instanceState>\n"
                "                    <privateDnsName>ip-%s.ec2.internal</privateDnsName>\n"
                "                    <privateIpAddress>%s</privateIpAddress>\n"
                "                    <placement><availabilityZone>%sa</availabilityZone>"
                "<tenancy>default</tenancy></placement>\n"
                "                    <platformDetails>%s</platformDetails>\n"
                "                    <tagSet>%s</tagSet>\n                </item>\n"
                "            </instancesSet>\n        </item>\n"
                % (iid[2:], inst.get("account", ACCOUNT), iid, states.get(st_name, 16), st_name,
                   ip.replace(".", "-"), ip, inst.get("region") or sres.region,
                   "Windows" if inst.get("platform") == "Windows" else "Linux/UNIX", tags))
        xml = "    <reservationSet>\n%s    </reservationSet>\n" % "".join(items)
        if start + n < len(out):
            xml += "    <nextToken>%s</nextToken>\n" % base64.b64encode(
                str(start + n).encode()).decode()
        return xml

    # -- SSO OIDC CreateToken (refresh) -------------------------------------------

    async def oidc(self, req, rid):
        st = self.state
        entry = {"protocol": "rest-json", "service": "sso-oidc", "action": "CreateToken",
                 "request_id": rid, "status": None, "error": None}

        def err(code, oauth, desc, status=400):
            entry["status"], entry["error"] = status, code
            st.record(entry)
            return HttpResponse(status, json.dumps({"error": oauth, "error_description": desc}),
                                ctype="application/json",
                                headers=[("x-amzn-RequestId", rid), ("x-amzn-ErrorType", code)])
        f = await self.apply_fault("CreateToken", "sso", rid)
        if f == "drop":
            return None
        if f:
            return err(f.code, "slow_down", f.message, f.status)
        try:
            b = json.loads(req.body.decode())
        except (ValueError, UnicodeDecodeError):
            return err("InvalidRequestException", "invalid_request", "bad JSON")
        entry["params"] = {"clientId": b.get("clientId"), "grantType": b.get("grantType")}
        clients = st.oidc_clients
        c = clients.get(b.get("clientId"))
        if c is None or c.get("secret") != b.get("clientSecret"):
            return err("InvalidClientException", "invalid_client", "Invalid client")
        if b.get("grantType") != "refresh_token":
            return err("UnsupportedGrantTypeException", "unsupported_grant_type",
                       "Unsupported grant type")
        if b.get("refreshToken") not in c.get("refresh_tokens", []):
            return err("InvalidGrantException", "invalid_grant", "Invalid refresh token")
        access = "fake-sso-access-" + secrets.token_hex(16)
        new_refresh = "fake-refresh-" + secrets.token_hex(8)
        c["refresh_tokens"] = [new_refresh]
        st.sso_tokens[access] = {}
        entry["status"] = 200
        st.record(entry)
        return HttpResponse(200, json.dumps({"accessToken": access, "tokenType": "Bearer",
                                             "expiresIn": 28800, "refreshToken": new_refresh}),
                            ctype="application/json", headers=[("x-amzn-RequestId", rid)])

    # -- control endpoints ----------------------------------------------------

    async def control(self, req, path):
        st = self.state
        try:
            body = json.loads(req.body.decode() or "{}")
        except ValueError:
            return HttpResponse(400, '{"error":"bad json"}', ctype="application/json")
        out = {"ok": True}
        if path == "/_fake/calls" and req.method == "GET":
            out = {"calls": st.calls}
        elif path == "/_fake/calls/clear":
            st.calls.clear()
        elif path == "/_fake/faults" and req.method == "POST":
            st.set_faults(body)
        elif path == "/_fake/faults" and req.method == "GET":
            out = {"api": st.api_faults, "dc": st.dc_faults, "clock_offset": st.clock_offset,
                   "api_rate": st.api_rate}
        elif path == "/_fake/instances" and req.method == "POST":
            for k, v in body.items():
                st.set_instance(k, v)
            out = {"instances": st.instances}
        elif path == "/_fake/instances" and req.method == "GET":
            out = {"instances": st.instances}
        elif path == "/_fake/credentials" and req.method == "POST":
            st.creds.update(body)
        elif path == "/_fake/credentials" and req.method == "GET":
            # who holds which key until when; never a secret or token
            out = {"credentials": {k: {n: v.get(n) for n in (
                "caller", "arn", "expires", "issued", "issued_by")}
                for k, v in st.creds.items()}}
        elif path == "/_fake/config" and req.method == "POST":
            st.load_config(body)
        elif path == "/_fake/sessions" and req.method == "GET":
            out = {"sessions": {sid: s.describe() for sid, s in st.sessions.items()}}
        elif path.startswith("/_fake/sessions/") and req.method == "POST":
            rest = path[len("/_fake/sessions/"):]
            sid, _, verb = rest.rpartition("/")
            s = st.sessions.get(sid)
            if s is None:
                return HttpResponse(404, '{"error":"no such session"}', ctype="application/json")
            out = await s.control(verb, body)
        elif path == "/_fake/ws" and req.method == "GET":
            out = {"ws": st.ws_log}
        elif path == "/_fake/peers" and req.method == "GET":
            out = dict(st.peers, only_from=st.only_from)
        elif path == "/_fake/peers/clear":
            st.peers = {"api": {}, "ws": {}, "refused_api": 0, "refused_ws": 0}
        elif path == "/_fake/eic-keys" and req.method == "GET":
            out = {"keys": read_eic_keys(st.eic_path)}
        else:
            return HttpResponse(404, '{"error":"unknown control path"}',
                                ctype="application/json")
        return HttpResponse(200, json.dumps(out, default=str), ctype="application/json")


def read_eic_keys(path):
    out = []
    try:
        with open(path) as f:
            for ln in f:
                try:
                    out.append(json.loads(ln))
                except ValueError:
                    pass
    except OSError:
        pass
    return out


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

async def amain(args):
    os.makedirs(args.state_dir, exist_ok=True)
    state = State(args)
    state.pace_ms = args.agent_pace_ms
    state.payload_size = args.payload_size
    if args.config:
        with open(args.config) as f:
            state.load_config(json.load(f))
    if args.instances:
        with open(args.instances) as f:
            d = json.load(f)
        for k, v in d.get("instances", d).items():
            state.set_instance(k, v)
    if args.faults:
        with open(args.faults) as f:
            state.set_faults(json.load(f))
    for kv in args.dc_fault:
        k, _, v = kv.partition("=")
        try:
            state.dc_faults[k] = json.loads(v)
        except ValueError:
            state.dc_faults[k] = v
    for spec in args.api_fault:
        parts = spec.split(":")
        state.api_faults.append({"action": parts[0], "kind": parts[1] if len(parts) > 1
                                 else "throttle", "count": int(parts[2]) if len(parts) > 2
                                 else 1})
    fake_agent.VERIFY = verify_sigv4
    ctx, ca_path = make_tls(args.state_dir)
    api = Api(state)
    api_srv = await asyncio.start_server(
        lambda r, w: http_serve(r, w, api.handle), "127.0.0.1", args.api_port, ssl=ctx,
        limit=MAX_HEAD)
    state.api_port = api_srv.sockets[0].getsockname()[1]
    ws_srv = await fake_agent.serve(state, ctx, args.ws_port)
    state.ws_port = ws_srv.sockets[0].getsockname()[1]
    info = {"pid": os.getpid(), "ca": ca_path,
            "api": "https://127.0.0.1:%d" % state.api_port,
            "ws": "wss://127.0.0.1:%d" % state.ws_port,
            "regions": state.regions,
            "eic_keys": state.eic_path,
            "credentials": {k: {"secret": v["secret"], "token": v.get("token"),
                                "caller": v.get("caller")}
                            for k, v in DEFAULT_CREDENTIALS.items()}}
    tmp = os.path.join(args.state_dir, "ready.json.tmp")
    with open(tmp, "w") as f:
        json.dump(info, f, indent=1)
    os.rename(tmp, os.path.join(args.state_dir, "ready.json"))
    log("ca %s" % ca_path)
    log("api %s" % info["api"])
    log("ws %s" % info["ws"])
    log("ready")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log("stopping")
    api_srv.close()
    ws_srv.close()
    for s in list(state.sessions.values()):
        s.shutdown()
    # Open WebSockets and keep-alive connections would hold a graceful shutdown
    # for seconds; a test fake has nothing to flush.
    sys.stderr.flush()
    os._exit(0)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--config", help="JSON: credentials, instances, roles, sso_tokens, "
                    "web_identity_tokens, eic_deny, regions, faults")
    ap.add_argument("--instances", help="JSON: {instance id: spec} (or {'instances': ...})")
    ap.add_argument("--faults", help="JSON fault spec (same as POST /_fake/faults)")
    ap.add_argument("--dc-fault", action="append", default=[], metavar="KEY=VALUE",
                    help="data channel fault for new sessions (VALUE parsed as JSON if it "
                    "can be), e.g. --dc-fault cut_after_bytes=100000")
    ap.add_argument("--api-fault", action="append", default=[],
                    metavar="ACTION:KIND[:COUNT]",
                    help="API fault rule, e.g. --api-fault StartSession:throttle:2")
    ap.add_argument("--region", default="us-east-1",
                    help="comma-separated signing regions accepted")
    ap.add_argument("--external-agent", default=None,
                    help="wss://127.0.0.1:PORT of tests/fastagent: StreamUrls point there")
    ap.add_argument("--only-from", default=None, metavar="ADDR",
                    help="refuse AWS requests and WebSocket upgrades from any other peer "
                    "address (e.g. a test proxy's outgoing address)")
    ap.add_argument("--api-port", type=int, default=0)
    ap.add_argument("--ws-port", type=int, default=0)
    ap.add_argument("--agent-pace-ms", type=float, default=1.0,
                    help="agent sleep after each destination read (0 = unpaced)")
    ap.add_argument("--payload-size", type=int, default=1024,
                    help="max payload bytes per agent message")
    args = ap.parse_args()
    asyncio.run(amain(args))


if __name__ == "__main__":
    main()
