"""A burst of real ssh through ssmgate against a service that throttles
(issue 13 item 5): 40 parallel ssh (ansible forks=40) to 4 instances, the
fake answering ThrottlingException above 3 StartSession and 5
SendSSHPublicKey calls per sliding second per account. The adaptive
limiter queues the burst: every ssh succeeds, and no call makes more
attempts than max_attempts (3), counted from the fake's call log by each
call's amz-sdk-invocation-id."""

import collections
import socket
import subprocess
import sys
import time

from harness import FAKE_DIR, EchoServer, Gateway, run_parallel

sys.path.insert(0, FAKE_DIR)
from fakeaws import FakeAws  # noqa: E402
from sshd import Sshd  # noqa: E402

INSTANCES = ["i-0123456789abcde%02x" % i for i in range(4)]
N_SSH = 40
MAX_ATTEMPTS = 3
RATES = {"StartSession": 3, "SendSSHPublicKey": 5}


def attempts_by_call(calls):
    by = collections.defaultdict(list)
    for c in calls:
        by[c["invocation_id"]].append(c)
    return by


def test_forty_parallel_ssh_against_throttling(tmp_path):
    with FakeAws(pace_ms=0, config={"api_rate": RATES}) as fake, \
            Sshd(fake.state_dir, instance_id="*") as sd:
        fake.set_instances({iid: {"ports": {"22": sd.port}} for iid in INSTANCES})
        # One session per ssh (the old mode): a burst of 40 StartSessions,
        # where warm ssh would need only sessions_per_target per instance.
        with Gateway("[gateway]\nmessage_rate = 0\nssh_document = ssh\n",
                     env=fake.env()) as gw:
            opts = gw.ssh_opts("-o", "IdentitiesOnly=no",
                               "-o", "ConnectTimeout=50")
            fake.clear_calls()
            t0 = time.time()
            procs = [subprocess.Popen(
                ["ssh"] + opts + ["%s@%s" % (sd.user, INSTANCES[i % 4]),
                                  "echo ok-%d" % i],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for i in range(N_SSH)]
            results = []
            for p in procs:
                try:
                    out, err = p.communicate(timeout=max(1, 55 - (time.time() - t0)))
                except subprocess.TimeoutExpired:
                    p.kill()
                    out, err = p.communicate()
                results.append((p.returncode, out, err))
            wall = time.time() - t0
            ok = sum(1 for i, (rc, out, _) in enumerate(results)
                     if rc == 0 and out.strip() == "ok-%d" % i)
            starts = fake.calls("StartSession")
            pushes = fake.calls("SendSSHPublicKey")
            by_start = attempts_by_call(starts)
            by_push = attempts_by_call(pushes)
            s_thr = sum(1 for c in starts if c.get("throttled"))
            p_thr = sum(1 for c in pushes if c.get("throttled"))
            print("\n%d/%d ssh ok in %.1f s; StartSession: %d attempts for %d "
                  "calls, max %d per call, %d throttled; SendSSHPublicKey: %d "
                  "attempts for %d calls, max %d, %d throttled" % (
                      ok, N_SSH, wall, len(starts), len(by_start),
                      max(map(len, by_start.values()), default=0), s_thr,
                      len(pushes), len(by_push),
                      max(map(len, by_push.values()), default=0), p_thr))
            print("\n".join(l for l in gw.stderr_text().splitlines() if "rate now" in l))
            bad = [(i, rc, err.strip()[-300:]) for i, (rc, out, err)
                   in enumerate(results) if rc != 0 or out.strip() != "ok-%d" % i]
            assert ok == N_SSH, (bad[:5], gw.stderr_text()[-4000:])
            # The burst did meet the service's limit, and no call went
            # beyond its retry budget.
            assert s_thr > 0
            assert len(by_start) == N_SSH
            assert max(map(len, by_start.values())) <= MAX_ATTEMPTS
            assert max(map(len, by_push.values())) <= MAX_ATTEMPTS
            # Each call's attempts are numbered 1..n by amz-sdk-request.
            for calls in list(by_start.values()) + list(by_push.values()):
                assert [c["sdk_request"].split(";")[0] for c in calls] == \
                    ["attempt=%d" % (k + 1) for k in range(len(calls))]
            assert sum(1 for c in starts if c["status"] == 200) == N_SSH


def http_connect(addr, target, timeout=30):
    """An HTTP CONNECT through the gateway: (status line, body, seconds);
    the body (the reason) is read to EOF for a refusal only."""
    t0 = time.time()
    with socket.create_connection(addr, timeout=timeout) as s:
        s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
        f = s.makefile("rb")
        status = f.readline().decode(errors="replace").strip()
        for line in iter(f.readline, b""):
            if line in (b"\r\n", b"\n"):
                break
        body = b"" if status.startswith("HTTP/1.1 200") else f.read()
        return status, body.decode(errors="replace"), time.time() - t0


def test_queued_past_the_connect_deadline_names_the_throttle():
    """A call still waiting for its limiter when the connect's deadline
    (connect_timeout_ms) passes fails with a reason naming the throttle,
    which the client sees, before the front end's own timeout."""
    with EchoServer() as echo, FakeAws(pace_ms=0, config={
            "api_rate": {"StartSession": 1}}) as fake:
        many = ["i-0fedcba98765432%02x" % i for i in range(8)]
        fake.set_instances({iid: {"ports": {"7": echo.port}} for iid in many})
        cfg = "[gateway]\nmessage_rate = 0\nconnect_timeout_ms = 4000\n"
        with Gateway(cfg, env=fake.env()) as gw:
            out = [None] * 8

            def one(i):
                out[i] = http_connect(gw.socks, "%s:7" % many[i])
            run_parallel(one, 8, 30)
            ok = [o for o in out if o and o[0].startswith("HTTP/1.1 200")]
            failed = [o for o in out if o and not o[0].startswith("HTTP/1.1 200")]
            print("\n%d ok, %d failed: %s" % (len(ok), len(failed),
                                              [(o[0], round(o[2], 1)) for o in failed]))
            assert ok and failed and len(ok) + len(failed) == 8
            for status, body, took in failed:
                assert "throttl" in body, (status, body)
                assert took < 5.9  # before the front end's 4 + 2 s timer
            assert "no turn for it within its deadline" in gw.stderr_text()
            starts = attempts_by_call(fake.calls("StartSession"))
            assert max(map(len, starts.values())) <= MAX_ATTEMPTS
