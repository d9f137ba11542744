"""Issue 13 item 3: the service's recycle (normal close 1000 of the data
channel WebSocket, about every 60 minutes) during a long scp, while the
temporary credentials expire meanwhile, for each credential source:
assume-role (role_arn + source_profile), SSO (sso_* profile with a cached
token) and IMDS (tests/fake/fake_imds.py).

Real scp through the gateway's SOCKS listener to a real sshd. The fake
recycles every RECYCLE_S after each open (close_count -1: forever) and
issues temporary credentials that expire after TTL_S; a call or a signed
upgrade made with expired credentials fails as at AWS (ExpiredToken / 403).
A recycle must be a resume (ResumeSession: new token, new cell), with fresh
credentials, and the local connection must never notice.

Default suite: 6 MiB each way at the real pace (~1 MB/s), a recycle every
2 s and credentials that live 4 s. SSMGATE_LONG=1: the issue's target,
500 MiB each way, a recycle every 20 s, credentials that live 60 s, unpaced
(SSMGATE_RECYCLE_PACE=real for the service's 990 messages/s pace)."""

import json
import os
import re
import subprocess
import sys
import time

import pytest

from harness import FAKE_DIR, PYTHON, Gateway, Process, sha256_file as sha

sys.path.insert(0, FAKE_DIR)
from fakeaws import DEFAULT_AKID, DEFAULT_SECRET, FakeAws  # noqa: E402
from sshd import Sshd  # noqa: E402
from test_aws_layer import sso_setup, write  # noqa: E402

LONG = os.environ.get("SSMGATE_LONG") == "1"
REAL_PACE = not LONG or os.environ.get("SSMGATE_RECYCLE_PACE") == "real"
SIZE = (500 if LONG else 6) * 1024 * 1024
RECYCLE_S = 20 if LONG else 2
TTL_S = 60 if LONG else 4
IID = "i-0123456789abcdef0"


class Imds(Process):
    def __init__(self, fake, ttl):
        super().__init__([PYTHON, os.path.join(FAKE_DIR, "fake_imds.py"), "--api",
                          fake.api_url, "--ca", fake.ca, "--ttl", str(ttl)], name="imds")
        self.wait_for("fake_imds: ready")
        self.url = re.search(r"fake_imds: (http://\S+)", self.stderr_text()).group(1)

    def log(self):
        import urllib.request
        with urllib.request.urlopen(self.url + "/_imds/log", timeout=10) as r:
            return json.loads(r.read())


def source_env(source, fake, home, imds):
    """The gateway's environment and profile for one credential source: no
    static keys anywhere but the assume-role source profile."""
    env = fake.env()
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        env[k] = ""   # empty = unset for the chain; os.environ may hold some
    env.update({"HOME": home, "AWS_CONFIG_FILE": os.path.join(home, "config"),
                "AWS_SHARED_CREDENTIALS_FILE": os.path.join(home, "credentials"),
                "AWS_PROFILE": "", "PATH": "/usr/bin:/bin"})
    if source == "assume-role":
        # the source profile's static keys in the config file (the CLI reads them
        # there too), the role in profile r
        write(os.path.join(home, "config"), "".join([
            "[profile base]\n", "aws_access_key_id = %s\n" % DEFAULT_AKID,
            "aws_secret_access_key = %s\n\n" % DEFAULT_SECRET, "[profile r]\n",
            "region = us-east-1\n", "role_arn = arn:aws:iam::123456789012:role/ops\n",
            "source_profile = base\n", "role_session_name = recycle\n"]))
        return env, "r"
    if source == "sso":
        sso_setup(home, "2099-01-01T00:00:00Z")
        return env, "sso"
    write(os.path.join(home, "config"), "[default]\nregion = us-east-1\n")
    env["AWS_EC2_METADATA_DISABLED"] = "false"
    env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = imds.url
    return env, ""


def issuing_calls(source, fake, imds):
    """How many credential sets the source handed out."""
    if source == "imds":
        return len(imds.log()["issued"])
    action = "AssumeRole" if source == "assume-role" else "GetRoleCredentials"
    return len([c for c in fake.calls(action) if c["status"] == 200])


@pytest.mark.parametrize("source", ["assume-role", "sso", "imds"])
def test_scp_through_recycles_with_expiring_credentials(source, tmp_path):
    home = str(tmp_path / "home")
    os.makedirs(home)
    src = tmp_path / "src.bin"
    with open(src, "wb") as f:
        for _ in range(SIZE >> 20):
            f.write(os.urandom(1 << 20))
    up, down = tmp_path / "up.bin", tmp_path / "down.bin"
    faults = {"dc": {"close_after_s": RECYCLE_S, "close_count": -1}}
    if not REAL_PACE:
        faults["dc"]["rate_limit"] = 0  # unpaced: the subject is the recycle
    with FakeAws(config={"temp_creds_ttl_s": TTL_S}, faults=faults,
                 pace_ms=1 if REAL_PACE else 0) as fake, \
            Sshd(fake.state_dir, instance_id="*") as sd:
        fake.set_instances({IID: {"name": "web", "ports": {"22": sd.port}}})
        imds = Imds(fake, TTL_S) if source == "imds" else None
        try:
            env, profile = source_env(source, fake, home, imds)
            cfg = "[gateway]\nmessage_rate = %d\nprofile = %s\n" % (
                990 if REAL_PACE else 0, profile)
            with Gateway(cfg, env=env) as gw:
                opts = gw.ssh_opts("-o", "IdentitiesOnly=no")
                dest = "%s@%s" % (sd.user, IID)
                times = []
                for args in ([str(src), "%s:%s" % (dest, up)],
                             ["%s:%s" % (dest, up), str(down)]):
                    t0 = time.time()
                    r = subprocess.run(["scp", "-q"] + opts + args, capture_output=True,
                                       text=True, timeout=3600)
                    times.append(time.time() - t0)
                    assert r.returncode == 0, r.stderr + gw.stderr_text()[-4000:]
                log = gw.stderr_text()
            assert sha(src) == sha(up) == sha(down)
            sessions = fake.sessions()
            calls = fake.calls()
            creds = fake._ctl("GET", "/_fake/credentials")["credentials"]
            issued = issuing_calls(source, fake, imds)
            ws_log = fake.ws_log()
        finally:
            if imds:
                imds.stop()
    # Both scps rode warm port-forward sessions (ssh to port 22) that
    # outlived their recycles by resuming: the second joined the first's,
    # or opened its own when the first's connection still counted as busy
    # (it moved data within the last second: sessions_per_target spreads).
    assert 1 <= len(sessions) <= 2, list(sessions)
    closes = [s["stats"].get("normal_closes", 0) for s in sessions.values()]
    resumes = [s["stats"].get("resumes", 0) for s in sessions.values()]
    for sid, s in sessions.items():
        assert s["stats"].get("normal_closes", 0) >= 1, (sid, s["stats"])
        # every recycle (but one the session may have ended in) was resumed
        assert s["stats"]["resumes"] >= s["stats"]["normal_closes"] - 1, s["stats"]
        assert s["stats"]["resume_calls"] >= s["stats"]["resumes"]
        assert not s["violations"], s["violations"]
        # ended by scp's own end (sshd's EOF, the client's Flag or
        # TerminateSession), not by a fault
        assert not re.match(r"(Session failed|Session terminated:|Handshake|Unable)",
                            s["end_reason"] or ""), s["end_reason"]
    assert "session end" not in log
    # The credentials were refreshed during the transfer, and no call made
    # with expired credentials succeeded (the fake refuses them; check it).
    assert issued >= 2, issued
    ok = [c for c in calls if c["status"] == 200 and c.get("access_key")]
    used = {c["access_key"] for c in ok if c["access_key"] in creds and
            creds[c["access_key"]].get("expires")}
    assert len(used) >= 2, used
    for c in ok:
        exp = creds.get(c["access_key"], {}).get("expires")
        assert not exp or c["time"] <= exp + 0.5, c
    expired = [c for c in calls if (c.get("error") or "").startswith("ExpiredToken")]
    ws_expired = [w for w in ws_log if w.get("error") == "expired token"]
    # "Refresh first": the gateway renews credentials before they expire,
    # it does not wait for the service to refuse them (plugin issue 136).
    assert not expired, expired[:3]
    assert not ws_expired, ws_expired[:3]
    resume_ok = len([c for c in calls if c.get("action") == "ResumeSession"
                     and c["status"] == 200])
    assert resume_ok >= sum(resumes)
    print("%s: %d MiB up %.1f s (%.2f MB/s), down %.1f s (%.2f MB/s); recycles %s, "
          "resumes %s, credential sets issued %d, keys used %d, calls refused as "
          "expired %d, upgrades refused as expired %d, pace %s" % (
              source, SIZE >> 20, times[0], SIZE / times[0] / 1e6, times[1],
              SIZE / times[1] / 1e6, closes, resumes, issued, len(used), len(expired),
              len(ws_expired), "real" if REAL_PACE else "unpaced"))
