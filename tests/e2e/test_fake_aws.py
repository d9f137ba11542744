"""Tests of the fake AWS itself (tests/fake/): the API answers like AWS to the real
AWS CLI and botocore, rejects bad signatures, and the data channel agent speaks
the protocol of ssm-data-channel.md to a small client written here on its own
(own codec, own SigV4 for the upgrade) rather than reusing the fake's code."""

import asyncio
import hashlib
import hmac
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

import pytest
import websockets

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fake"))

from fakeaws import DEFAULT_AKID, DEFAULT_SECRET, FakeAws  # noqa: E402
import sshd as sshd_harness  # noqa: E402
from harness import EchoServer  # noqa: E402

AWS = "/usr/bin/aws"
IID = "i-0123456789abcdef0"
STOPPED = "i-00000000000000bad"
ED_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINdamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea "
          "ssmgate")


# ---------------------------------------------------------------------------
# helpers: a minimal independent data channel client
# ---------------------------------------------------------------------------

def enc_msg(mtype, seq, flags, ptype, payload, mid=None):
    mid = mid or uuid.uuid4()
    b = mid.bytes
    hdr = struct.pack(">I", 116) + mtype.encode().ljust(32, b" ") + struct.pack(
        ">IQqQ", 1, int(time.time() * 1000), seq, flags) + b[8:] + b[:8] + \
        hashlib.sha256(payload).digest() + struct.pack(">II", ptype, len(payload))
    return hdr + payload


def dec_msg(frame):
    mtype = frame[4:36].decode().strip(" \x00")
    seq, flags = struct.unpack(">qQ", frame[48:64])
    mid = uuid.UUID(bytes=frame[72:80] + frame[64:72])
    ptype, plen = struct.unpack(">II", frame[112:120])
    payload = frame[120:]
    assert plen == len(payload)
    assert hashlib.sha256(payload).digest() == frame[80:112]
    return mtype, seq, flags, mid, ptype, payload


def sign_ws(url, akid, secret, region, token=None):
    """SigV4 for the upgrade GET, written per ssm-data-channel.md 2.2 (not botocore)."""
    u = urllib.parse.urlsplit(url)
    amz = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    q = urllib.parse.parse_qsl(u.query, keep_blank_values=True)
    enc = lambda s: urllib.parse.quote(s, safe="-_.~")  # noqa: E731
    cq = "&".join("%s=%s" % kv for kv in sorted((enc(k), enc(v)) for k, v in q))
    cpath = urllib.parse.quote(u.path, safe="/-_.~")
    heads = {"host": u.netloc, "x-amz-date": amz}
    if token:
        heads["x-amz-security-token"] = token
    names = sorted(heads)
    creq = "\n".join(["GET", cpath, cq, "".join("%s:%s\n" % (n, heads[n]) for n in names),
                      ";".join(names), hashlib.sha256(b"").hexdigest()])
    scope = "%s/%s/ssmmessages/aws4_request" % (amz[:8], region)
    sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(creq.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (amz[:8], region, "ssmmessages", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    h = {"X-Amz-Date": amz, "Authorization": "AWS4-HMAC-SHA256 Credential=%s/%s, "
         "SignedHeaders=%s, Signature=%s" % (akid, scope, ";".join(names), sig)}
    if token:
        h["X-Amz-Security-Token"] = token
    return h


class Client:
    """Just enough of a Session Manager client: handshake, acks, in-order delivery,
    resend of unacked messages after a reconnect."""

    def __init__(self, fake, ssm, sid, token, url, client_version="1.2.694.0", sign=True):
        self.fake, self.ssm, self.sid = fake, ssm, sid
        self.token, self.url = token, url
        self.cv = client_version
        self.sign = sign
        self.ctx = ssl.create_default_context(cafile=fake.ca)
        self.client_id = str(uuid.uuid4())
        self.ws = None
        self.out_seq = 0
        self.expected = 0
        self.unacked = {}
        self.inbuf = {}
        self.data = asyncio.Queue()
        self.flags = []
        self.closed = asyncio.get_event_loop().create_future()
        self.handshake_req = None
        self.hs_done = asyncio.get_event_loop().create_future()
        self.reader = None
        self.resender = None
        LIVE_CLIENTS.append(self)
        self.acked_by_agent = 0

    async def open(self):
        hdrs = sign_ws(self.url, DEFAULT_AKID, DEFAULT_SECRET, "us-east-1") if self.sign \
            else {}
        self.ws = await websockets.connect(self.url, ssl=self.ctx, extra_headers=hdrs,
                                           compression=None, max_size=None)
        await self.ws.send(json.dumps({
            "MessageSchemaVersion": "1.0", "RequestId": str(uuid.uuid4()),
            "TokenValue": self.token, "ClientId": self.client_id,
            "ClientVersion": self.cv}))
        self.reader = asyncio.get_event_loop().create_task(self._read(self.ws))
        if self.resender is None:
            self.resender = asyncio.get_event_loop().create_task(self._resend())

    async def _resend(self):
        """Oldest unacked message again once 300 ms old (a plain RTO)."""
        while True:
            await asyncio.sleep(0.1)
            if not self.unacked or self.reader.done():
                continue
            seq = min(self.unacked)
            m, t = self.unacked[seq]
            if time.monotonic() - t > 0.3:
                self.unacked[seq] = (m, time.monotonic())
                try:
                    await self.ws.send(m)
                except websockets.ConnectionClosed:
                    pass

    async def resume(self):
        r = self.ssm.resume_session(SessionId=self.sid)
        self.token, self.url = r["TokenValue"], r.get("StreamUrl") or self.url
        await self.open()
        for seq in sorted(self.unacked):
            await self.ws.send(self.unacked[seq][0])

    async def _read(self, ws):
        try:
            async for frame in ws:
                await self._on(frame)
        except websockets.ConnectionClosed:
            pass

    async def _ack(self, mid, seq):
        body = json.dumps({"AcknowledgedMessageType": "output_stream_data",
                           "AcknowledgedMessageId": str(mid),
                           "AcknowledgedMessageSequenceNumber": seq,
                           "IsSequentialMessage": True}).encode()
        try:
            await self.ws.send(enc_msg("acknowledge", 0, 3, 0, body))
        except websockets.ConnectionClosed:
            pass

    async def _on(self, frame):
        mtype, seq, flags, mid, ptype, payload = dec_msg(frame)
        if mtype == "acknowledge":
            a = json.loads(payload)
            self.unacked.pop(a["AcknowledgedMessageSequenceNumber"], None)
            self.acked_by_agent += 1
            return
        if mtype == "channel_closed":
            if not self.closed.done():
                self.closed.set_result(json.loads(payload))
            return
        if mtype != "output_stream_data":
            return
        await self._ack(mid, seq)
        if seq < self.expected:
            return
        self.inbuf[seq] = (ptype, payload)
        while self.expected in self.inbuf:
            pt, pl = self.inbuf.pop(self.expected)
            self.expected += 1
            await self._deliver(pt, pl)

    async def _deliver(self, pt, pl):
        if pt == 5:
            self.handshake_req = json.loads(pl)
            acts = [{"ActionType": a["ActionType"],
                     "ActionStatus": 1 if a["ActionType"] == "SessionType" else 3,
                     "ActionResult": None,
                     "Error": "" if a["ActionType"] == "SessionType" else "unsupported"}
                    for a in self.handshake_req["RequestedClientActions"]]
            await self.send(6, json.dumps({"ClientVersion": self.cv,
                                           "ProcessedClientActions": acts,
                                           "Errors": None}).encode())
        elif pt == 7:
            self.hs_done.set_result(json.loads(pl))
        elif pt == 10:
            self.flags.append(struct.unpack(">I", pl)[0])
        elif pt == 1:
            await self.data.put(pl)

    async def send(self, ptype, payload):
        seq = self.out_seq
        self.out_seq += 1
        m = enc_msg("input_stream_data", seq, 0, ptype, payload)
        self.unacked[seq] = (m, time.monotonic())
        try:
            await self.ws.send(m)
        except websockets.ConnectionClosed:
            pass

    async def send_data(self, data, chunk=1024):
        for i in range(0, len(data), chunk):
            await self.send(1, data[i:i + chunk])

    async def recv_exactly(self, n, timeout=20):
        buf = bytearray()
        while len(buf) < n:
            buf += await asyncio.wait_for(self.data.get(), timeout)
        return bytes(buf)


def start(fake, doc, params, **kw):
    ssm = fake.boto_client("ssm")
    r = ssm.start_session(Target=IID, DocumentName=doc, Parameters=params)
    return Client(fake, ssm, r["SessionId"], r["TokenValue"], r["StreamUrl"], **kw)


def smux(cmd, sid, data=b""):
    return struct.pack("<BBHI", 1, cmd, len(data), sid) + data


class SmuxReader:
    def __init__(self, client):
        self.c = client
        self.buf = bytearray()
        self.streams = {}

    async def pump_until(self, pred, timeout=20):
        deadline = time.time() + timeout
        while not pred():
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("smux condition not met")
            self.buf += await asyncio.wait_for(self.c.data.get(), left)
            while len(self.buf) >= 8:
                ver, cmd, ln, sid = struct.unpack_from("<BBHI", self.buf)
                assert ver == 1
                if len(self.buf) < 8 + ln:
                    break
                data = bytes(self.buf[8:8 + ln])
                del self.buf[:8 + ln]
                s = self.streams.setdefault(sid, {"data": bytearray(), "fin": False})
                if cmd == 2:
                    s["data"] += data
                elif cmd == 1:
                    s["fin"] = True


@pytest.fixture
def echo():
    with EchoServer() as e:
        yield e


@pytest.fixture
def fake(echo):
    with FakeAws(instances={
            IID: {"name": "web", "ports": {"22": echo.port, "80": echo.port},
                  "hosts": {"db.internal": "127.0.0.1:%d" % echo.port}},
            "i-0fedcba9876543210": {"name": "old", "agent_version": "3.0.161.0",
                                    "ports": {"80": echo.port}},
            STOPPED: {"name": "stopped", "state": "stopped"},
            "mi-0123456789abcdef0": {"name": "onprem", "ping_status": "ConnectionLost"}},
            pace_ms=0) as f:
        yield f


LIVE_CLIENTS = []


def run(coro, timeout=40):
    async def wrapped():
        try:
            return await asyncio.wait_for(coro, timeout)
        finally:
            # Drop sockets at once: a closing handshake with a peer that already
            # went away would wait close_timeout (10 s).
            for c in LIVE_CLIENTS:
                for t in (c.reader, c.resender):
                    if t:
                        t.cancel()
                if c.ws is not None:
                    c.ws.transport.abort()
            LIVE_CLIENTS.clear()
    return asyncio.run(wrapped())


# ---------------------------------------------------------------------------
# API, through the real AWS CLI and botocore
# ---------------------------------------------------------------------------

def aws_cli(fake, *args, secret=DEFAULT_SECRET):
    env = dict(os.environ)
    env.update(fake.env(secret=secret))
    return subprocess.run([AWS, "--endpoint-url", fake.api_url, "--output", "json"] +
                          list(args), env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(not os.path.exists(AWS), reason="awscli not installed")
def test_aws_cli_calls(fake):
    r = aws_cli(fake, "ssm", "describe-instance-information", "--filters",
                "Key=tag:Name,Values=web")
    assert r.returncode == 0, r.stderr
    lst = json.loads(r.stdout)["InstanceInformationList"]
    assert [i["InstanceId"] for i in lst] == [IID]

    r = aws_cli(fake, "ec2-instance-connect", "send-ssh-public-key", "--instance-id", IID,
                "--instance-os-user", "ec2-user", "--ssh-public-key", ED_KEY)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Success"] is True
    keys = fake.eic_keys()
    assert keys[-1]["instance"] == IID and keys[-1]["user"] == "ec2-user"


    r = aws_cli(fake, "sts", "get-caller-identity")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Arn"].endswith(":user/alice")

    r = aws_cli(fake, "sts", "assume-role", "--role-arn",
                "arn:aws:iam::123456789012:role/ops", "--role-session-name", "e2e",
                "--duration-seconds", "900")
    assert r.returncode == 0, r.stderr
    c = json.loads(r.stdout)["Credentials"]
    assert c["AccessKeyId"].startswith("ASIA") and c["SessionToken"]
    sts2 = fake.boto_client("sts", akid=c["AccessKeyId"], secret=c["SecretAccessKey"],
                            token=c["SessionToken"])
    assert sts2.get_caller_identity()["Arn"].endswith("assumed-role/ops/e2e")

    r = aws_cli(fake, "ssm", "describe-instance-information", secret="wrong-secret")
    assert r.returncode != 0 and "InvalidSignatureException" in r.stderr
    r = aws_cli(fake, "sts", "get-caller-identity", secret="wrong-secret")
    assert r.returncode != 0 and "SignatureDoesNotMatch" in r.stderr
    calls = fake.calls("SendSSHPublicKey")
    assert len(calls) == 1 and calls[0]["access_key"] == DEFAULT_AKID


def test_api_errors_and_faults(fake):
    from botocore.exceptions import ClientError
    ssm = fake.boto_client("ssm")

    def code(fn, **kw):
        with pytest.raises(ClientError) as ei:
            fn(**kw)
        return ei.value.response["Error"]["Code"], ei.value.response["Error"]["Message"]

    assert code(fake.boto_client("ssm", akid="AKIDUNKNOWN000000000").describe_instance_information)[0] \
        == "UnrecognizedClientException"
    assert code(fake.boto_client("ssm", region="eu-west-1").describe_instance_information)[0] \
        == "InvalidSignatureException"
    assert code(ssm.start_session, Target="mi-0123456789abcdef0",
                DocumentName="AWS-StartSSHSession")[0] == "TargetNotConnected"
    assert code(ssm.start_session, Target=IID, DocumentName="AWS-StartNothing")[0] \
        == "InvalidDocument"
    assert code(ssm.resume_session, SessionId="alice-00000000000000000")[0] \
        == "DoesNotExistException"
    eic = fake.boto_client("ec2-instance-connect")
    assert code(eic.send_ssh_public_key, InstanceId="i-0123456789abcdef1",
                InstanceOSUser="ec2-user", SSHPublicKey=ED_KEY)[0] \
        == "EC2InstanceNotFoundException"
    assert code(eic.send_ssh_public_key, InstanceId=IID, InstanceOSUser="ec2-user",
                SSHPublicKey="sk-ssh-ed25519@openssh.com " + "A" * 90)[0] \
        == "InvalidArgsException"
    assert code(eic.send_ssh_public_key, InstanceId=STOPPED, InstanceOSUser="ec2-user",
                SSHPublicKey=ED_KEY)[0] == "EC2InstanceStateInvalidException"
    assert code(eic.send_ssh_public_key, InstanceId="mi-0123456789abcdef0",
                InstanceOSUser="ec2-user", SSHPublicKey=ED_KEY)[0] == "ValidationException"

    # pagination
    seen, tok = [], None
    while True:
        kw = {"MaxResults": 5}
        if tok:
            kw["NextToken"] = tok
        r = ssm.describe_instance_information(**kw)
        seen += [i["InstanceId"] for i in r["InstanceInformationList"]]
        tok = r.get("NextToken")
        if not tok:
            break
    assert IID in seen and STOPPED not in seen

    fake.set_faults({"api": [{"action": "StartSession", "kind": "throttle", "count": 2},
                             {"action": "DescribeInstanceInformation", "kind": "deny"}]})
    for _ in range(2):
        assert code(ssm.start_session, Target=IID, DocumentName="AWS-StartSSHSession")[0] \
            == "ThrottlingException"
    assert ssm.start_session(Target=IID, DocumentName="AWS-StartSSHSession")["SessionId"]
    c, m = code(ssm.describe_instance_information)
    assert c == "AccessDeniedException" and "ssm:DescribeInstanceInformation" in m
    fake.set_faults({"api": [], "clock_offset": 600})
    c, m = code(ssm.describe_instance_information)
    assert c == "InvalidSignatureException" and "Signature expired" in m
    fake.set_faults({"clock_offset": 0})
    assert ssm.describe_instance_information()["InstanceInformationList"]
    starts = fake.calls("StartSession")
    assert [x["error"] for x in starts[-3:]] == ["ThrottlingException"] * 2 + [None]


# ---------------------------------------------------------------------------
# data channel
# ---------------------------------------------------------------------------

def test_stream_mode_echo_and_terminate(fake):
    async def go():
        c = start(fake, "AWS-StartSSHSession", {"portNumber": ["22"]})
        await c.open()
        hs = await asyncio.wait_for(c.hs_done, 10)
        assert "HandshakeTimeToComplete" in hs
        req = c.handshake_req
        assert req["AgentVersion"] == "3.3.987.0"
        st = req["RequestedClientActions"][0]["ActionParameters"]
        assert st == {"SessionType": "Port", "Properties": {"portNumber": "22"}}
        blob = os.urandom(300000)
        await c.send_data(blob)
        got = await c.recv_exactly(len(blob))
        assert got == blob
        await c.send(10, struct.pack(">I", 2))
        closed = await asyncio.wait_for(c.closed, 10)
        assert closed["SessionId"] == c.sid and closed["MessageType"] == "channel_closed"
        return c.sid
    sid = run(go())
    s = fake.session(sid)
    assert s["mode"] == "stream" and s["terminated"]
    assert s["stats"]["bytes_from_client"] == 300000
    assert s["stats"]["bytes_to_client"] == 300000
    assert s["violations"] == []
    assert s["opens"][0]["signed"] is True
    assert s["opens"][0]["client_version"] == "1.2.694.0"


def test_mux_mode_streams_and_connect_error(fake):
    async def go():
        c = start(fake, "AWS-StartPortForwardingSession",
                  {"portNumber": ["80"], "localPortNumber": ["0"]})
        await c.open()
        await asyncio.wait_for(c.hs_done, 10)
        props = c.handshake_req["RequestedClientActions"][0]["ActionParameters"]["Properties"]
        assert props["type"] == "LocalPortForwarding"
        m = SmuxReader(c)
        a, b = os.urandom(70000), os.urandom(5000)
        await c.send_data(smux(0, 3) + smux(2, 3, a[:30000]) + smux(0, 5) +
                          smux(2, 5, b) + smux(2, 3, a[30000:]))
        await m.pump_until(lambda: len(m.streams.get(3, {}).get("data", b"")) >= len(a) and
                           len(m.streams.get(5, {}).get("data", b"")) >= len(b))
        assert bytes(m.streams[3]["data"]) == a and bytes(m.streams[5]["data"]) == b
        await c.send_data(smux(1, 3))
        await m.pump_until(lambda: m.streams[3]["fin"])
        fake.set_faults({"sessions": {c.sid: {"dial_fail": True}}})
        await c.send_data(smux(0, 7))
        await m.pump_until(lambda: m.streams.get(7, {}).get("fin"))
        assert c.flags == [3]
        return c.sid
    sid = run(go())
    s = fake.session(sid)
    assert s["mode"] == "mux" and s["stats"]["smux_streams"] == 3
    assert s["stats"]["connect_errors"] == 1 and s["violations"] == []


def test_basic_mode_for_old_client_and_old_agent(fake, echo):
    async def go(cv):
        c = start(fake, "AWS-StartPortForwardingSession", {"portNumber": ["80"]},
                  client_version=cv, sign=False)
        await c.open()
        await asyncio.wait_for(c.hs_done, 10)
        await c.send_data(b"hello")
        assert await c.recv_exactly(5) == b"hello"
        await c.send(10, struct.pack(">I", 1))     # DisconnectToPort
        await asyncio.sleep(0.2)
        await c.send_data(b"again")                # agent redials
        assert await c.recv_exactly(5) == b"again"
        return c.sid
    sid = run(go("1.1.61.0"))
    s = fake.session(sid)
    assert s["mode"] == "basic" and s["stats"]["redials"] == 1
    assert s["opens"][0]["signed"] is False


def test_resume_after_cut_keeps_state(fake):
    fake.set_faults({"dc": {"cut_after_bytes": 150000, "cut_count": 1,
                            "duplicate_every": 7, "reorder_every": 11,
                            "drop_out_every": 13, "drop_ack_nth": 5}})

    async def go():
        c = start(fake, "AWS-StartSSHSession", {"portNumber": ["22"]})
        await c.open()
        await asyncio.wait_for(c.hs_done, 10)
        blob = os.urandom(400000)
        sender = asyncio.get_event_loop().create_task(c.send_data(blob))
        got = bytearray()
        while len(got) < len(blob):
            try:
                got += await asyncio.wait_for(c.data.get(), 1.5)
            except asyncio.TimeoutError:
                if c.reader.done():          # socket cut: resume like the plugin
                    await c.resume()
        await sender
        assert bytes(got) == blob
        return c.sid
    sid = run(go(), 60)
    s = fake.session(sid)
    assert s["stats"]["cuts"] == 1 and s["stats"]["resumes"] == 1
    assert s["stats"]["resume_calls"] == 1
    assert s["stats"]["duplicated"] > 0 and s["stats"]["retransmits"] > 0
    assert s["opens"][0]["query"] != s["opens"][1]["query"]   # new cell-number
    assert s["violations"] == []


def test_bad_token_and_bad_signature_rejected(fake):
    async def go():
        ssm = fake.boto_client("ssm")
        r = ssm.start_session(Target=IID, DocumentName="AWS-StartSSHSession")
        ctx = ssl.create_default_context(cafile=fake.ca)
        ws = await websockets.connect(r["StreamUrl"], ssl=ctx)
        await ws.send(json.dumps({"MessageSchemaVersion": "1.0", "RequestId": str(uuid.uuid4()),
                                  "TokenValue": "nope", "ClientId": str(uuid.uuid4()),
                                  "ClientVersion": "1.2.694.0"}))
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        h = sign_ws(r["StreamUrl"], DEFAULT_AKID, "wrong-secret", "us-east-1")
        with pytest.raises(websockets.InvalidStatusCode) as ei:
            await websockets.connect(r["StreamUrl"], ssl=ctx, extra_headers=h)
        assert ei.value.status_code == 403
    run(go())
    log = fake.ws_log()
    assert any(e.get("error") == "bad token" for e in log)
    assert any(e.get("error") == "bad signature" for e in log)


def test_kms_request_refused_and_handshake_timeout(fake):
    fake.set_faults({"dc": {"request_kms": True}})

    async def go():
        c = start(fake, "AWS-StartSSHSession", {"portNumber": ["22"]})
        await c.open()
        closed = await asyncio.wait_for(c.closed, 10)
        assert "Handshake failed" in closed["Output"]
    run(go())
    fake.set_faults({"dc": {"handshake_timeout_s": 0.5}})

    async def go2():
        c = start(fake, "AWS-StartSSHSession", {"portNumber": ["22"]})
        c._deliver_orig = c._deliver

        async def mute(pt, pl):
            if pt != 5:
                await c._deliver_orig(pt, pl)
        c._deliver = mute
        await c.open()
        closed = await asyncio.wait_for(c.closed, 10)
        assert "timed out" in closed["Output"]
    run(go2())


def test_rate_limit_recorded(fake):
    fake.set_faults({"dc": {"rate_limit": 200}})

    async def go():
        c = start(fake, "AWS-StartSSHSession", {"portNumber": ["22"]})
        await c.open()
        await asyncio.wait_for(c.hs_done, 10)
        await c.send_data(os.urandom(500 * 100), chunk=100)
        await c.recv_exactly(500 * 100)
        return c.sid
    s = fake.session(run(go()))
    assert s["stats"]["max_client_msgs_per_s"] > 200
    assert s["stats"]["rate_violations"] > 0


# ---------------------------------------------------------------------------
# sshd harness
# ---------------------------------------------------------------------------

@pytest.mark.skipif(not os.path.exists("/usr/sbin/sshd"), reason="no sshd")
def test_sshd_accepts_pushed_key_only(fake, tmp_path):
    with sshd_harness.Sshd(fake.state_dir, instance_id=IID) as sd:
        user = sd.user
        keys = []
        for n in ("pushed", "other"):
            p = str(tmp_path / n)
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", p], check=True)
            keys.append(p)
        eic = fake.boto_client("ec2-instance-connect")
        with open(keys[0] + ".pub") as f:
            eic.send_ssh_public_key(InstanceId=IID, InstanceOSUser=user,
                                    SSHPublicKey=f.read().strip())
        ok = sd.ssh(keys[0], "echo", "hello-from-sshd")
        assert ok.returncode == 0 and "hello-from-sshd" in ok.stdout, ok.stderr
        calls = sd.eic_calls()
        assert len(calls) == 2 and all(c["user"] == user for c in calls)
        bad = sd.ssh(keys[1], "true")
        assert bad.returncode != 0
        # a push for another instance or another user does not let the key in
        with open(keys[1] + ".pub") as f:
            eic.send_ssh_public_key(InstanceId="i-0fedcba9876543210", InstanceOSUser=user,
                                    SSHPublicKey=f.read().strip())
        assert sd.ssh(keys[1], "true").returncode != 0


def test_web_identity_sso_and_expired_temp_creds(fake):
    import botocore.session
    from botocore import UNSIGNED
    from botocore.config import Config
    from botocore.exceptions import ClientError
    s = botocore.session.get_session()
    unsigned = Config(signature_version=UNSIGNED, retries={"mode": "standard",
                                                          "total_max_attempts": 1})
    sts = s.create_client("sts", region_name="us-east-1", endpoint_url=fake.api_url,
                          verify=fake.ca, config=unsigned)
    r = sts.assume_role_with_web_identity(
        RoleArn="arn:aws:iam::123456789012:role/web", RoleSessionName="wi",
        WebIdentityToken="fake-web-identity-token", DurationSeconds=900)
    assert r["Credentials"]["AccessKeyId"].startswith("ASIA")
    with pytest.raises(ClientError) as ei:
        sts.assume_role_with_web_identity(RoleArn="arn:aws:iam::123456789012:role/web",
                                          RoleSessionName="wi", WebIdentityToken="bad-token")
    assert ei.value.response["Error"]["Code"] == "InvalidIdentityToken"
    sso = s.create_client("sso", region_name="us-east-1", endpoint_url=fake.api_url,
                          verify=fake.ca, config=unsigned)
    rc = sso.get_role_credentials(roleName="ReadOnly", accountId="123456789012",
                                  accessToken="fake-sso-bearer-token")["roleCredentials"]
    assert rc["expiration"] > time.time() * 1000 + 3000 * 1000
    with pytest.raises(ClientError) as ei:
        sso.get_role_credentials(roleName="ReadOnly", accountId="123456789012",
                                 accessToken="wrong")
    assert ei.value.response["Error"]["Code"] == "UnauthorizedException"
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 401
    # SSO credentials work for SSM; an expired temporary key is refused
    ssm = fake.boto_client("ssm", akid=rc["accessKeyId"], secret=rc["secretAccessKey"],
                           token=rc["sessionToken"])
    assert ssm.describe_instance_information()["InstanceInformationList"]
    fake.add_credentials({"ASIAEXPIREDKEY000001": {"secret": "x" * 40, "token": "tok" * 40,
                                                   "caller": "old", "expires": 1.0}})
    with pytest.raises(ClientError) as ei:
        fake.boto_client("ssm", akid="ASIAEXPIREDKEY000001", secret="x" * 40,
                         token="tok" * 40).describe_instance_information()
    assert ei.value.response["Error"]["Code"] == "ExpiredTokenException"
    with pytest.raises(ClientError) as ei:
        fake.boto_client("ssm", token="not-the-token").describe_instance_information()
    assert ei.value.response["Error"]["Code"] == "UnrecognizedClientException"
    wi = fake.calls("AssumeRoleWithWebIdentity")
    assert wi[0]["params"]["WebIdentityToken"].startswith("<redacted")


def test_normal_close_pause_and_idle_channel_closed(fake):
    fake.set_faults({"dc": {"close_after_s": 0.5, "pause_after_messages": 3,
                            "start_after_ms": 50, "channel_closed_after_s": 3.0}})

    async def go():
        c = start(fake, "AWS-StartSSHSession", {"portNumber": ["22"]})
        await c.open()
        await asyncio.wait_for(c.hs_done, 10)
        await c.send_data(b"x" * 3000)
        assert await c.recv_exactly(3000) == b"x" * 3000
        await asyncio.wait_for(c.reader, 5)      # the fake closed the socket normally
        assert c.ws.close_code == 1000
        await c.resume()
        await c.send_data(b"after-close")
        assert await c.recv_exactly(11) == b"after-close"
        closed = await asyncio.wait_for(c.closed, 10)
        assert "idle" in closed["Output"]
        r = c.ssm.resume_session(SessionId=c.sid)
        assert not r.get("TokenValue")
        return c.sid
    s = fake.session(run(go()))
    assert s["stats"]["resumes"] == 1 and s["terminated"]
    assert any(e["what"] == "sent_pause_publication" for e in s["events"])


def test_destination_close_ends_stream_session(fake):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def banner():
        c, _ = srv.accept()
        c.sendall(b"SSH-2.0-fake\r\n")
        c.close()
    threading.Thread(target=banner, daemon=True).start()
    fake.set_instances({IID: {"ports": {"2022": srv.getsockname()[1]}}})

    async def go():
        c = start(fake, "AWS-StartSSHSession", {"portNumber": ["2022"]})
        await c.open()
        await asyncio.wait_for(c.hs_done, 10)
        assert await c.recv_exactly(14) == b"SSH-2.0-fake\r\n"
        closed = await asyncio.wait_for(c.closed, 10)
        assert c.sid in closed["Output"]
        return c.sid
    s = fake.session(run(go()))
    srv.close()
    assert s["terminated"] and any(e["what"] == "dest_eof" for e in s["events"])


@pytest.mark.skipif(not os.path.exists("/usr/sbin/sshd"), reason="no sshd")
def test_sshd_fixed_key_mode(tmp_path):
    p = str(tmp_path / "own")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", p], check=True)
    with open(p + ".pub") as f:
        pub = f.read()
    with sshd_harness.Sshd(None, authorized_keys=pub) as sd:
        r = sd.ssh(p, "echo", "own-key")
        assert r.returncode == 0 and "own-key" in r.stdout, r.stderr + sd.log()


def test_ec2_describe_instances_and_oidc_refresh(fake):
    from botocore.exceptions import ClientError
    ec2 = fake.boto_client("ec2")
    r = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": ["web"]},
                                        {"Name": "instance-state-name", "Values": ["running"]}])
    insts = [i for res in r["Reservations"] for i in res["Instances"]]
    assert [i["InstanceId"] for i in insts] == [IID]
    assert insts[0]["State"]["Name"] == "running"
    with pytest.raises(ClientError) as ei:
        ec2.describe_instances(InstanceIds=["i-0000000000000dead"])
    assert ei.value.response["Error"]["Code"] == "InvalidInstanceID.NotFound"
    with pytest.raises(ClientError) as ei:
        fake.boto_client("ec2", secret="nope").describe_instances()
    assert ei.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    import botocore.session
    from botocore import UNSIGNED
    from botocore.config import Config
    oidc = botocore.session.get_session().create_client(
        "sso-oidc", region_name="us-east-1", endpoint_url=fake.api_url, verify=fake.ca,
        config=Config(signature_version=UNSIGNED))
    t = oidc.create_token(clientId="fake-oidc-client", clientSecret="fake-oidc-secret",
                          grantType="refresh_token", refreshToken="fake-refresh-token")
    assert t["accessToken"] and t["refreshToken"] != "fake-refresh-token"
    with pytest.raises(ClientError) as ei:
        oidc.create_token(clientId="fake-oidc-client", clientSecret="fake-oidc-secret",
                          grantType="refresh_token", refreshToken="fake-refresh-token")
    assert ei.value.response["Error"]["Code"] == "InvalidGrantException"
    sso = botocore.session.get_session().create_client(
        "sso", region_name="us-east-1", endpoint_url=fake.api_url, verify=fake.ca,
        config=Config(signature_version=UNSIGNED))
    assert sso.get_role_credentials(roleName="R", accountId="123456789012",
                                    accessToken=t["accessToken"])["roleCredentials"]


def test_at_sign_session_id_signed_upgrade_and_session_token(fake):
    """Caller 'user@example.com': '@' stays raw in the request line and is %40 in the
    canonical URI; temporary credentials sign x-amz-security-token too."""
    akid2, secret2 = "AKIDFAKEEXAMPLE00002", "fakeSecretKey/Example+second-user-secret00"
    fake.add_credentials({"ASIAWSTOKENTEST00001": {
        "secret": "tmpsecret/abc+def", "token": "tok/en+with=chars" * 20, "caller": "tmp"}})

    async def go():
        ctx = ssl.create_default_context(cafile=fake.ca)
        ssm = fake.boto_client("ssm", akid=akid2, secret=secret2)
        r = ssm.start_session(Target=IID, DocumentName="AWS-StartSSHSession")
        assert r["SessionId"].startswith("user@example.com-")
        assert "/data-channel/user@example.com-" in r["StreamUrl"]
        ws = await websockets.connect(r["StreamUrl"], ssl=ctx, extra_headers=sign_ws(
            r["StreamUrl"], akid2, secret2, "us-east-1"))
        ws.transport.abort()
        h = sign_ws(r["StreamUrl"], "ASIAWSTOKENTEST00001", "tmpsecret/abc+def", "us-east-1",
                    token="tok/en+with=chars" * 20)
        ws = await websockets.connect(r["StreamUrl"], ssl=ctx, extra_headers=h)
        ws.transport.abort()
        h["X-Amz-Security-Token"] = "other"
        with pytest.raises(websockets.InvalidStatusCode):
            await websockets.connect(r["StreamUrl"], ssl=ctx, extra_headers=h)
    run(go())
    log = fake.ws_log()
    assert [e["signed_by"] for e in log if e.get("signed_by")] == \
        ["AKIDFAKEEXAMPLE00002", "ASIAWSTOKENTEST00001"]
    assert log[-1]["error"] == "bad signature"


def test_smux_keepalive_for_old_client(fake):
    fake.set_faults({"dc": {"smux_keepalive_interval_s": 0.15,
                            "smux_keepalive_timeout_s": 0.5}})

    async def go(cv, send_nops):
        c = start(fake, "AWS-StartPortForwardingSession", {"portNumber": ["80"]},
                  client_version=cv)
        await c.open()
        await asyncio.wait_for(c.hs_done, 10)
        m = SmuxReader(c)
        t_end = time.time() + 1.3
        while time.time() < t_end and not c.closed.done():
            if send_nops:
                await c.send_data(smux(3, 0))
            await asyncio.sleep(0.1)
        if c.closed.done():
            return c.sid, c.closed.result(), m
        return c.sid, None, m
    sid, closed, _ = run(go("1.2.300.0", False))
    assert closed and "keepalive" in closed["Output"]
    s = fake.session(sid)
    assert s["smux_keepalive"] and s["stats"]["smux_nop_out"] >= 1
    sid, closed, _ = run(go("1.2.300.0", True))
    assert closed is None
    sid, closed, _ = run(go("1.2.694.0", False))
    assert closed is None and not fake.session(sid)["smux_keepalive"]


def test_rate_limit_close_action(fake):
    fake.set_faults({"dc": {"rate_limit": 50, "rate_action": "close"}})

    async def go():
        c = start(fake, "AWS-StartSSHSession", {"portNumber": ["22"]})
        await c.open()
        await asyncio.wait_for(c.hs_done, 10)
        await c.send_data(os.urandom(100 * 100), chunk=100)
        closed = await asyncio.wait_for(c.closed, 10)
        assert "rate limit" in closed["Output"]
        return c.sid
    s = fake.session(run(go()))
    assert s["terminated"] and s["stats"]["rate_violations"] > 0


def test_instances_seen_only_by_their_account_and_region(fake):
    """An instance of another account (or another region) does not exist
    for a caller: each API answers as AWS does for an unknown instance."""
    from botocore.exceptions import ClientError
    other, key, secret = "210987654321", "AKIDFAKESTAGING00001", "stagingSecret/0123456789abcdefghijklmn"
    fake.add_credentials({key: {"secret": secret, "caller": "carol",
                                "arn": "arn:aws:iam::%s:user/carol" % other}})
    theirs = "i-0aaaabbbbccccdddd"
    fake.set_instances({theirs: {"name": "web", "account": other},
                        "i-0eeeeffff00001111": {"name": "west", "region": "us-west-2"}})

    def code(fn, **kw):
        with pytest.raises(ClientError) as ei:
            fn(**kw)
        return ei.value.response["Error"]["Code"]

    for akid, sec, mine, not_mine in ((DEFAULT_AKID, DEFAULT_SECRET, IID, theirs),
                                      (key, secret, theirs, IID)):
        ssm = fake.boto_client("ssm", akid=akid, secret=sec)
        eic = fake.boto_client("ec2-instance-connect", akid=akid, secret=sec)
        ec2 = fake.boto_client("ec2", akid=akid, secret=sec)
        lst = ssm.describe_instance_information(
            Filters=[{"Key": "tag:Name", "Values": ["web"]}])["InstanceInformationList"]
        assert [i["InstanceId"] for i in lst] == [mine]
        assert code(ssm.start_session, Target=not_mine,
                    DocumentName="AWS-StartSSHSession") == "TargetNotConnected"
        assert code(eic.send_ssh_public_key, InstanceId=not_mine, InstanceOSUser="u",
                    SSHPublicKey=ED_KEY) == "EC2InstanceNotFoundException"
        assert code(ec2.describe_instances, InstanceIds=[not_mine]) == \
            "InvalidInstanceID.NotFound"
        r = ec2.describe_instances(InstanceIds=[mine])["Reservations"][0]
        assert r["OwnerId"] == (other if mine == theirs else "123456789012")
        sid = ssm.start_session(Target=mine, DocumentName="AWS-StartSSHSession")["SessionId"]
        # The other account cannot resume it.
        other_ssm = fake.boto_client("ssm", akid=key if akid == DEFAULT_AKID else DEFAULT_AKID,
                                     secret=secret if akid == DEFAULT_AKID else DEFAULT_SECRET)
        assert code(other_ssm.resume_session, SessionId=sid) == "DoesNotExistException"
        assert ssm.resume_session(SessionId=sid)["TokenValue"]
    # A region-bound instance is there only for calls signed for its region.
    ssm = fake.boto_client("ssm")
    assert code(ssm.start_session, Target="i-0eeeeffff00001111",
                DocumentName="AWS-StartSSHSession") == "TargetNotConnected"
