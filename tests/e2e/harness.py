"""Shared helpers for end-to-end tests: start real processes on loopback,
wait for their readiness lines, and tear them down checking for sanitizer
reports. Every test starts its own processes; ports come from the OS."""

import json
import os
import re
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time

SSMGATE_BIN = os.environ.get("SSMGATE_BIN", "")
SOURCE_DIR = os.environ.get(
    "SSMGATE_SOURCE_DIR",
    os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
SANITIZED = os.environ.get("SSMGATE_SANITIZE", "0") in ("1", "ON", "TRUE")
FAKE_DIR = os.path.join(SOURCE_DIR, "tests", "fake")
PYTHON = "/usr/bin/python3"  # Debian's, with python3-websockets/botocore

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer")

LISTEN_RE = re.compile(r"ssmgate: listening on (\S+):(\d+) \((.+)\)")


class Process:
    """A child whose stderr is collected into a file and scanned for lines.
    As a context manager it is stopped on exit."""

    def __init__(self, argv, env=None, name="proc", cwd=None):
        self.name = name
        self.argv = argv
        self.logdir = tempfile.mkdtemp(prefix="ssmgate-e2e-")
        self.errpath = os.path.join(self.logdir, name + ".stderr")
        self.errfile = open(self.errpath, "w+b")
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=self.errfile, env=full_env,
                                     cwd=cwd)

    def stderr_text(self):
        with open(self.errpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_for(self, pattern, count=1, timeout=20.0):
        """Waits until pattern (a regex) matched count lines of stderr;
        returns the list of match objects."""
        rx = re.compile(pattern)
        deadline = time.time() + timeout
        while True:
            matches = [m for m in (rx.search(line) for line in
                                   self.stderr_text().splitlines()) if m]
            if len(matches) >= count:
                return matches
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %s before %r:\n%s" % (
                    self.name, self.proc.returncode, pattern,
                    self.stderr_text()))
            if time.time() > deadline:
                raise TimeoutError("%s: no %r within %.0fs:\n%s" % (
                    self.name, pattern, timeout, self.stderr_text()))
            time.sleep(0.02)

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Signals the process and waits; returns its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.errfile.close()
        return self.proc.returncode

    def assert_clean(self):
        text = self.stderr_text()
        for marker in SANITIZER_MARKERS:
            assert marker not in text, "%s: sanitizer report:\n%s" % (
                self.name, text)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Gateway(Process):
    """ssmgate run in the foreground with a config written to a temp file.
    listeners maps KIND (e.g. 'socks', a [forward] name) to (host, port).
    Leaving it as a context manager closes it and requires exit status 0."""

    def __init__(self, config_text="", args=(), env=None, ready=True):
        self.tmp = tempfile.mkdtemp(prefix="ssmgate-gw-")
        os.chmod(self.tmp, 0o700)
        self.config_path = os.path.join(self.tmp, "config.ini")
        with open(self.config_path, "w") as f:
            f.write(config_text)
        self.runtime_dir = os.path.join(self.tmp, "run")
        argv = [SSMGATE_BIN, "run", "--config", self.config_path,
                "--runtime-dir", self.runtime_dir] + list(args)
        # Never the default 1080: tests run in parallel.
        if not any(a.startswith("--listen") for a in args):
            argv += ["--listen", "127.0.0.1:0"]
        base_env = {"HOME": self.tmp, "XDG_CONFIG_HOME": self.tmp,
                    "XDG_RUNTIME_DIR": self.tmp}
        if env:
            base_env.update(env)
        super().__init__(argv, env=base_env, name="ssmgate")
        self.listeners = {}
        if ready:
            self.wait_ready()

    def wait_ready(self, count=None, timeout=20.0):
        """Waits for the 'listening on' lines (all of them: they are
        printed together once every listener is bound)."""
        self.wait_for(LISTEN_RE.pattern, 1, timeout)
        time.sleep(0.05)
        for m in LISTEN_RE.finditer(self.stderr_text()):
            host = m.group(1).strip("[]")
            self.listeners[m.group(3)] = (host, int(m.group(2)))
        return self.listeners

    @property
    def socks(self):
        for kind in ("socks", "socks/http", "proxy"):
            if kind in self.listeners:
                return self.listeners[kind]
        return next(iter(self.listeners.values()))

    def status_run(self):
        """Runs `ssmgate status --json` against this daemon."""
        return subprocess.run([SSMGATE_BIN, "status", "--json", "--config",
                               self.config_path, "--runtime-dir", self.runtime_dir],
                              capture_output=True, text=True, timeout=30)

    def status(self):
        """The daemon's `ssmgate status --json`, parsed."""
        r = self.status_run()
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def close(self):
        rc = self.stop()
        self.assert_clean()
        return rc

    def __exit__(self, *exc):
        assert self.close() == 0

    def ssh_opts(self, *extra):
        """ssh/scp options that reach hosts through this gateway's SOCKS
        listener (nc -X 5) and log in with its agent; extra options go
        before the ProxyCommand."""
        host, port = self.socks
        agent = os.path.join(self.runtime_dir, "agent.sock")
        return ["-F", "/dev/null", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-o", "BatchMode=yes", "-o", "IdentityAgent=" + agent] + \
            list(extra) + \
            ["-o", "ProxyCommand=nc -X 5 -x %s:%d %%r@%%h %%p" % (host, port)]


def forwards_config(*forwards, gateway=""):
    """A config: [gateway] unpaced (message_rate = 0) plus the lines in
    gateway, then one [forward NAME] listening on a port from the OS per
    (name, target, lines), lines being the rest of the section."""
    return "[gateway]\nmessage_rate = 0\n" + gateway + "".join(
        "[forward %s]\nlisten = 127.0.0.1:0\ntarget = %s\n%s" % f
        for f in forwards)


def run_parallel(fn, n, timeout):
    """Runs fn(0) .. fn(n - 1), each in a thread of its own, and waits up
    to timeout seconds for each."""
    threads = [threading.Thread(target=fn, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)


def run_vectors(binary, env_var, vectors, path):
    """Writes vectors as JSON to path, runs the C checker binary with
    env_var naming that file, requires it to exit 0; returns its output."""
    path.write_text(json.dumps(vectors, ensure_ascii=False), encoding="utf-8")
    env = dict(os.environ, **{env_var: str(path)})
    proc = subprocess.run([binary], env=env, capture_output=True, text=True,
                          timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    return out


def fastagent_bin():
    """tests/fastagent's binary in the build tree (SSMGATE_BUILD_DIR)."""
    build = os.environ.get("SSMGATE_BUILD_DIR") or os.path.dirname(SSMGATE_BIN)
    return os.path.join(build, "tests", "ssmgate-fastagent")


class FastAgent(Process):
    """The C data-channel agent, serving TLS with the fake's server cert.
    Point the fake at it with fake.set_external_agent(agent.url)."""

    def __init__(self, state_dir, pace_ms=0, payload_size=1024):
        argv = [fastagent_bin(),
                "--cert", os.path.join(state_dir, "server.pem"),
                "--key", os.path.join(state_dir, "server.key"),
                "--pace-ms", str(pace_ms), "--payload-size", str(payload_size)]
        super().__init__(argv, name="fastagent")
        self.wait_for("fastagent: ready")
        self.url = re.search(r"fastagent: ws (\S+)",
                             self.stderr_text()).group(1)

    def stats(self):
        """The exit line's counters (after stop())."""
        m = re.search(r"fastagent: stats (.*)", self.stderr_text())
        return dict(kv.split("=") for kv in m.group(1).split()) if m else {}


class ThreadedServer:
    """A loopback TCP server on a port from the OS: handler(conn) runs in
    a thread per connection. As a context manager it closes on exit."""

    def __init__(self, handler, backlog=512):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._handler = handler
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._handler, args=(c,),
                                   daemon=True).start()

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class EchoServer(ThreadedServer):
    """A loopback TCP echo server on a port from the OS (threads)."""

    def __init__(self):
        super().__init__(self._echo)

    @staticmethod
    def _echo(c):
        try:
            while True:
                d = c.recv(1 << 16)
                if not d:
                    break
                c.sendall(d)
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            c.close()


def send_forever(c, chunk, pause_s):
    """A destination that talks: chunk every pause_s until the peer goes;
    then c is closed."""
    try:
        while True:
            c.sendall(chunk)
            time.sleep(pause_s)
    except OSError:
        pass
    finally:
        c.close()


def recv_exact(s, n):
    """Up to n bytes: fewer only when the peer closed first."""
    out = b""
    while len(out) < n:
        d = s.recv(n - len(out))
        if not d:
            break
        out += d
    return out


def recv_until_eof(s):
    """Every byte the peer sends on socket s until it closes."""
    got = b""
    while True:
        d = s.recv(65536)
        if not d:
            return got
        got += d


def sha256_file(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fd_kinds(pid):
    """A process's open fds by kind: {"tcp 127.0.0.1:N -> :443 ESTABLISHED": 2, ...},
    so a count that grew can say what grew."""
    socks = {}
    states = {"01": "ESTABLISHED", "0A": "LISTEN", "06": "TIME_WAIT", "08": "CLOSE_WAIT"}
    for name in ("tcp", "tcp6"):
        try:
            with open("/proc/%d/net/%s" % (pid, name)) as f:
                next(f)
                for line in f:
                    c = line.split()
                    lport = int(c[1].rsplit(":", 1)[1], 16)
                    rport = int(c[2].rsplit(":", 1)[1], 16)
                    socks[c[9]] = "tcp :%d -> :%d %s" % (
                        lport if c[3] == "0A" else 0, rport, states.get(c[3], c[3]))
        except OSError:
            pass
    out = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if t.startswith("socket:["):
            t = socks.get(t[8:-1], "socket (unix or other)")
        elif t.startswith("/"):
            t = "file " + t
        out[t] = out.get(t, 0) + 1
    return out


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
