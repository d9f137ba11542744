"""Python helper to run fake_aws.py from tests (Debian /usr/bin/python3).

    import sys; sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "fake"))
    from fakeaws import FakeAws

    with FakeAws(instances={"i-0123456789abcdef0": {"name": "web",
                                                   "ports": {"22": sshd.port}}},
                 pace_ms=0) as fake:
        env = fake.env()          # AWS_* variables for a child (gateway, aws CLI)
        ...
        fake.calls("StartSession")            # call log entries for one action
        fake.set_faults({"api": [{"action": "StartSession", "kind": "throttle",
                                  "count": 2}]})
        fake.sessions()                       # data channel sessions with stats

The class starts the process, waits for "fake_aws: ready", and on exit stops it
(SIGTERM). Control requests go over the same HTTPS port under /_fake/.
"""

import json
import os
import ssl
import subprocess
import tempfile
import time
import urllib.request

from child import Child

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"

DEFAULT_AKID = "AKIDFAKEEXAMPLE00001"
DEFAULT_SECRET = "fakeSecretKey/Example+0123456789abcdefghij"


class FakeAws(Child):
    def __init__(self, instances=None, config=None, faults=None, region="us-east-1",
                 pace_ms=1.0, payload_size=1024, state_dir=None, extra_args=()):
        self.state_dir = state_dir or tempfile.mkdtemp(prefix="fake-aws-")
        os.chmod(self.state_dir, 0o755)
        self.region = region
        argv = [PYTHON, os.path.join(HERE, "fake_aws.py"), "--state-dir", self.state_dir,
                "--region", region, "--agent-pace-ms", str(pace_ms),
                "--payload-size", str(payload_size)]
        cfg = dict(config or {})
        if instances:
            cfg.setdefault("instances", {}).update(instances)
        if faults:
            cfg["faults"] = faults
        if cfg:
            path = os.path.join(self.state_dir, "config.json")
            with open(path, "w") as f:
                json.dump(cfg, f)
            argv += ["--config", path]
        argv += list(extra_args)
        self.argv = argv
        self.errpath = os.path.join(self.state_dir, "fake_aws.stderr")
        self.proc = None
        self.info = None

    # -- lifecycle --------------------------------------------------------------

    def start(self, timeout=20.0):
        self.errfile = open(self.errpath, "wb")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.errfile)
        ready = os.path.join(self.state_dir, "ready.json")
        deadline = time.time() + timeout
        while True:
            if os.path.exists(ready) and "fake_aws: ready" in self.stderr_text():
                break
            if self.proc.poll() is not None:
                raise RuntimeError("fake_aws exited (%s):\n%s" % (self.proc.returncode,
                                                                 self.stderr_text()))
            if time.time() > deadline:
                raise TimeoutError("fake_aws not ready:\n" + self.stderr_text())
            time.sleep(0.02)
        with open(ready) as f:
            self.info = json.load(f)
        self.ca = self.info["ca"]
        self.api_url = self.info["api"]
        self.ws_url = self.info["ws"]
        self._ctx = ssl.create_default_context(cafile=self.ca)
        return self

    def stderr_text(self):
        with open(self.errpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    # -- environment for children ----------------------------------------------

    def env(self, akid=DEFAULT_AKID, secret=DEFAULT_SECRET, token=None):
        """Variables that point an SDK-style client at the fake (CA bundle, endpoints,
        static keys). botocore 1.29 / CLI 2.9 ignore AWS_ENDPOINT_URL_*: pass
        endpoint_url / --endpoint-url there."""
        e = {"AWS_CA_BUNDLE": self.ca, "AWS_ACCESS_KEY_ID": akid,
             "AWS_SECRET_ACCESS_KEY": secret, "AWS_REGION": self.region,
             "AWS_DEFAULT_REGION": self.region,
             "AWS_ENDPOINT_URL_SSM": self.api_url,
             "AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT": self.api_url,
             "AWS_ENDPOINT_URL_EC2": self.api_url,
             "AWS_ENDPOINT_URL_STS": self.api_url,
             "AWS_ENDPOINT_URL_SSO": self.api_url,
             "AWS_CONFIG_FILE": os.path.join(self.state_dir, "no-config"),
             "AWS_SHARED_CREDENTIALS_FILE": os.path.join(self.state_dir, "no-credentials"),
             "AWS_EC2_METADATA_DISABLED": "true"}
        if token:
            e["AWS_SESSION_TOKEN"] = token
        return e

    def boto_client(self, service, akid=DEFAULT_AKID, secret=DEFAULT_SECRET, token=None,
                    region=None):
        import botocore.session
        from botocore.config import Config
        s = botocore.session.get_session()
        return s.create_client(service, region_name=region or self.region,
                               endpoint_url=self.api_url, verify=self.ca,
                               aws_access_key_id=akid, aws_secret_access_key=secret,
                               aws_session_token=token,
                               config=Config(retries={"mode": "standard", "total_max_attempts": 1}))

    # -- control ------------------------------------------------------------------

    def _ctl(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.api_url + path, data=data, method=method)
        with urllib.request.urlopen(req, context=self._ctx, timeout=10) as r:
            return json.loads(r.read())

    def calls(self, action=None):
        c = self._ctl("GET", "/_fake/calls")["calls"]
        return [x for x in c if action is None or x.get("action") == action]

    def clear_calls(self):
        self._ctl("POST", "/_fake/calls/clear", {})

    def set_faults(self, faults):
        """{"api": [rules]} replaces API rules, {"api_add": [...]} appends,
        {"dc": {...}} data channel faults for NEW sessions,
        {"sessions": {sid: {...}}} for live sessions, {"clock_offset": s}."""
        return self._ctl("POST", "/_fake/faults", faults)

    def set_instances(self, instances):
        return self._ctl("POST", "/_fake/instances", instances)

    def set_only_from(self, addr):
        """Refuse AWS requests and WebSocket upgrades from any peer address
        but addr (None: any)."""
        return self._ctl("POST", "/_fake/config", {"only_from": addr})

    def peers(self):
        """{"api": {addr: n}, "ws": {addr: n}, "refused_api": n, "refused_ws": n,
        "only_from": addr}: who made the AWS requests and upgrades."""
        return self._ctl("GET", "/_fake/peers")

    def clear_peers(self):
        self._ctl("POST", "/_fake/peers/clear", {})

    def set_external_agent(self, url):
        """StreamUrls of new sessions point at tests/fastagent (None: back
        to the fake's own agent)."""
        return self._ctl("POST", "/_fake/config", {"external_agent": url})

    def add_credentials(self, creds):
        return self._ctl("POST", "/_fake/credentials", creds)

    def sessions(self):
        return self._ctl("GET", "/_fake/sessions")["sessions"]

    def session(self, sid):
        return self.sessions()[sid]

    def session_action(self, sid, verb, body=None):
        """verb: cut | close | channel_closed | pause | start | faults"""
        return self._ctl("POST", "/_fake/sessions/%s/%s" % (sid, verb), body or {})

    def ws_log(self):
        return self._ctl("GET", "/_fake/ws")["ws"]

    def eic_keys(self):
        return self._ctl("GET", "/_fake/eic-keys")["keys"]

    def wait_for(self, pred, timeout=10.0, what="condition"):
        deadline = time.time() + timeout
        while True:
            v = pred()
            if v:
                return v
            if time.time() > deadline:
                raise TimeoutError("fake_aws: %s not met within %.0fs" % (what, timeout))
            time.sleep(0.05)
