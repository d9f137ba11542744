"""fake_imds: the EC2 instance metadata service's credential endpoints, as a
standalone process on 127.0.0.1, whose role credentials expire every TTL s.

Model (from /work/shared/docs/aws-and-local-protocols.md, not from the
gateway's code):
  PUT /latest/api/token            IMDSv2 session token; needs
                                   X-aws-ec2-metadata-token-ttl-seconds 1..21600
                                   (else 400); X-Forwarded-For -> 403.
  GET /latest/meta-data/iam/security-credentials/        the role name
  GET /latest/meta-data/iam/security-credentials/ROLE    the credentials JSON
                                   (Code, LastUpdated, Type, AccessKeyId,
                                   SecretAccessKey, Token, Expiration)
  GET without a valid token (missing, unknown or past its TTL) -> 401 (IMDSv2
  required, as on instances with HttpTokens=required).
Credential rotation as the real service does it, scaled: each set is valid
--ttl seconds and a new set is made available once the current one has less
than half its life left (the real IMDS: new keys at least 5 minutes before
the old expire). Every set is registered with the fake AWS (POST
/_fake/credentials with its "expires"), so calls signed with it pass there
until it expires and then answer ExpiredToken.

Control: GET /_imds/log -> {"tokens": n, "role_gets": n, "cred_gets": n,
"unauthorized": n, "issued": [{"akid", "issued", "expires"}]}.

Usage: fake_imds.py --api https://127.0.0.1:PORT --ca CA.pem [--ttl 60]
       [--role fake-instance-role] [--port 0]
Prints "fake_imds: http://127.0.0.1:PORT" and "fake_imds: ready" on stderr.
"""

import argparse
import base64
import http.server
import json
import secrets
import ssl
import sys
import threading
import time
import urllib.request

CRED_PATH = "/latest/meta-data/iam/security-credentials/"


def iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class Imds:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.tokens = {}        # token -> expiry
        self.current = None     # the credential set served now
        self.log = {"tokens": 0, "role_gets": 0, "cred_gets": 0, "unauthorized": 0,
                    "issued": []}
        self.ctx = ssl.create_default_context(cafile=args.ca)

    def register(self, cred):
        body = json.dumps({cred["AccessKeyId"]: {
            "secret": cred["SecretAccessKey"], "token": cred["Token"],
            "caller": "imds-" + self.args.role,
            "arn": "arn:aws:sts::123456789012:assumed-role/%s/i-0123456789abcdef0"
                   % self.args.role,
            "user_id": "AROAFAKEIMDS:i-0123456789abcdef0",
            "expires": cred["_expires"], "issued": cred["_issued"],
            "issued_by": "imds"}}).encode()
        req = urllib.request.Request(self.args.api.rstrip("/") + "/_fake/credentials",
                                     data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=self.ctx, timeout=10) as r:
            r.read()

    def credentials(self):
        """The set to serve: a new one once the current has < ttl/2 left."""
        with self.lock:
            now = time.time()
            cur = self.current
            if cur is None or cur["_expires"] - now < self.args.ttl / 2.0:
                akid = "ASIA" + "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
                                        for _ in range(16))
                cur = {"Code": "Success", "LastUpdated": iso(now), "Type": "AWS-HMAC",
                       "AccessKeyId": akid,
                       "SecretAccessKey": base64.b64encode(secrets.token_bytes(30)).decode(),
                       "Token": "IQoJb3JpZ2luX2VjEIMDS" +
                                base64.b64encode(secrets.token_bytes(600)).decode(),
                       "Expiration": iso(now + self.args.ttl),
                       "_issued": now, "_expires": now + self.args.ttl}
                # registered before it is served: a client can use it at once
                self.register(cur)
                self.current = cur
                self.log["issued"].append({"akid": akid, "issued": now,
                                           "expires": cur["_expires"]})
                sys.stderr.write("fake_imds: new credentials %s, expire in %g s\n"
                                 % (akid, self.args.ttl))
                sys.stderr.flush()
            return {k: v for k, v in cur.items() if not k.startswith("_")}

    def token_ok(self, tok):
        with self.lock:
            exp = self.tokens.get(tok or "")
            return exp is not None and exp > time.time()


def make_handler(imds):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def send(self, code, body=b"", ctype="text/plain"):
            if isinstance(body, str):
                body = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Server", "EC2ws")
            self.end_headers()
            self.wfile.write(body)

        def do_PUT(self):
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                self.rfile.read(n)
            if self.path != "/latest/api/token":
                return self.send(404, "Not Found")
            if self.headers.get("X-Forwarded-For"):
                return self.send(403, "Forbidden")
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
            if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                return self.send(400, "Bad Request")
            tok = base64.urlsafe_b64encode(secrets.token_bytes(42)).decode()
            with imds.lock:
                imds.tokens[tok] = time.time() + int(ttl)
                imds.log["tokens"] += 1
            self.send(200, tok)

        def do_GET(self):
            if self.path == "/_imds/log":
                with imds.lock:
                    return self.send(200, json.dumps(imds.log), "application/json")
            if not self.path.startswith("/latest/"):
                return self.send(404, "Not Found")
            if not imds.token_ok(self.headers.get("X-aws-ec2-metadata-token")):
                with imds.lock:
                    imds.log["unauthorized"] += 1
                return self.send(401, "Unauthorized")
            if self.path == CRED_PATH:
                with imds.lock:
                    imds.log["role_gets"] += 1
                return self.send(200, imds.args.role)
            if self.path == CRED_PATH + imds.args.role:
                with imds.lock:
                    imds.log["cred_gets"] += 1
                try:
                    cred = imds.credentials()
                except OSError as e:
                    sys.stderr.write("fake_imds: cannot register with fake_aws: %s\n" % e)
                    return self.send(500, "Internal Server Error")
                return self.send(200, json.dumps(cred, indent=2), "text/plain")
            return self.send(404, "Not Found")

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--api", required=True, help="the fake AWS API URL")
    ap.add_argument("--ca", required=True, help="the fake AWS CA bundle")
    ap.add_argument("--ttl", type=float, default=60.0)
    ap.add_argument("--role", default="fake-instance-role")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    imds = Imds(args)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(imds))
    srv.daemon_threads = True
    sys.stderr.write("fake_imds: http://127.0.0.1:%d\n" % srv.server_address[1])
    sys.stderr.write("fake_imds: ready\n")
    sys.stderr.flush()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
