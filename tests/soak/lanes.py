"""The soak's tunnels ("lanes"): each lane is a thread that keeps one kind
of client busy through one access path until the run ends, opening a new
connection whenever the last one ended (so long-lived tunnels, churn and
one-shots all happen), and records every connection in the ledger.

Access paths: a [forward] static port, SOCKS5 to a [route] host name
(AWS-StartPortForwardingSessionToRemoteHost), SOCKS5 to an instance id
and port (AWS-StartPortForwardingSession), HTTP CONNECT to a [route] host
name, a real ssh through the SOCKS listener and the daemon's ssh agent
(the key push, and a warm AWS-StartPortForwardingSession to port 22 by
default: ssh_document = auto), and the "doom" forward whose sessions (up to
sessions_per_target of them) the fault schedule ends on purpose
(channel_closed)."""

import random
import socket
import struct
import subprocess
import threading
import time

import ledger
from harness import recv_exact

PORT = 7000  # the instances' port mapped to the destination server


class Conn:
    """One connection's client-side record."""

    def __init__(self, cid, lane):
        self.id = cid
        self.lane = lane.index
        self.path = lane.path
        self.traffic = lane.traffic
        self.t_open = time.time()
        self.t_end = None
        self.up_sent = 0
        self.down = ledger.StreamCheck(ledger.tag_for(cid, 1))
        self.ok = False
        self.error = None
        self.rounds = 0
        self.progress = time.time()

    def as_dict(self):
        return {"id": self.id, "lane": self.lane, "path": self.path,
                "traffic": self.traffic, "t_open": self.t_open, "t_end": self.t_end,
                "up_sent": self.up_sent, "down": self.down.as_dict(), "ok": self.ok,
                "error": self.error, "rounds": self.rounds}


class Lane:
    def __init__(self, index, path, traffic, world, seed):
        self.index = index
        self.path = path          # "fwd" "route" "inst" "http" "ssh" "doom"
        self.traffic = traffic    # "bulk" "rounds" "burst" "oneshot" "churn" "echo"
        self.world = world
        self.k = index % len(world.instances)
        self.host = "h%d.r%d.soak" % (index % 3, self.k)
        self.rng = random.Random(seed * 1000003 + index)
        self.conns = []
        self.thread = None

    def name(self):
        return "lane %d (%s/%s)" % (self.index, self.path, self.traffic)

    # -- the loop ------------------------------------------------------------------

    def start(self):
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()

    def _main(self):
        w = self.world
        # Spread the first connects over a few seconds, like clients do.
        w.stop.wait(self.rng.uniform(0, w.p["ramp_s"]))
        while not w.stop.is_set():
            conn = Conn(w.next_conn_id(), self)
            self.conns.append(conn)
            try:
                if self.path == "ssh":
                    self._ssh(conn)
                else:
                    s = self._open(conn)
                    try:
                        getattr(self, "_" + self.traffic)(s, conn)
                    finally:
                        s.close()
                    conn.ok = conn.error is None
            except (OSError, ValueError) as e:
                conn.error = conn.error or "%s: %s" % (type(e).__name__, e)
                if isinstance(e, socket.timeout):
                    w.on_stall(conn)
            conn.t_end = time.time()
            if conn.error:
                w.stop.wait(1.0)  # never a hot loop of failures
            elif self.traffic in ("bulk", "oneshot", "echo"):
                w.stop.wait(self.rng.uniform(0.1, w.p["gap_s"]))

    def _open(self, conn):
        w = self.world
        stall = w.p["stall_s"]
        if self.path in ("fwd", "doom"):
            name = "doom" if self.path == "doom" else "f%d" % self.k
            s = socket.create_connection(w.gw.listeners[name], timeout=stall)
        elif self.path in ("route", "inst"):
            host = self.host if self.path == "route" else w.instances[self.k]
            s = socket.create_connection(w.gw.socks, timeout=stall)
            socks5(s, host, PORT)
        elif self.path == "http":
            s = socket.create_connection(w.gw.socks, timeout=stall)
            http_connect(s, self.host, PORT)
        else:
            raise ValueError("unknown path " + self.path)
        s.settimeout(stall)
        return s

    def _header(self, s, conn, mode, up_len, down_len, seed=0):
        s.sendall(ledger.HEADER.pack(ledger.MAGIC, conn.id, mode, 0, 0, seed,
                                     up_len, down_len))

    # -- traffic kinds ------------------------------------------------------------

    def _bulk(self, s, conn):
        """Bulk both ways at once (each side its own pattern)."""
        lo, hi = self.world.p["bulk_bytes"]
        up = self.rng.randint(lo, hi) if self.rng.random() < 0.8 else 0
        down = self.rng.randint(lo, hi) if up == 0 or self.rng.random() < 0.8 else 0
        self._header(s, conn, ledger.MODE_BULK, up, down)
        err = []

        def writer():
            try:
                off = 0
                while off < up:
                    k = min(32 << 10, up - off)
                    self.world.up_budget.take(k)
                    s.sendall(ledger.pattern(ledger.tag_for(conn.id, 0), off, k))
                    off += k
                    conn.up_sent = off
                    conn.progress = time.time()
            except OSError as e:
                err.append("upload: %s: %s" % (type(e).__name__, e))

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        try:
            whole = ledger.recv_into_check(s, conn.down, down, self._progress(conn),
                                           self.world.down_budget)
        finally:
            t.join(self.world.p["stall_s"])
        if err:
            conn.error = err[0]
        elif t.is_alive():
            conn.error = "upload stalled"
        elif not whole:
            conn.error = "EOF after %d of %d download bytes" % (conn.down.offset, down)

    def _oneshot(self, s, conn):
        """A request, then a half-close, then the whole reply until EOF."""
        up = self.rng.randint(1, 20000)
        down = self.rng.randint(1, 200000)
        self._header(s, conn, ledger.MODE_ONESHOT, up, down)
        conn.up_sent = ledger.send_pattern(s, ledger.tag_for(conn.id, 0), 0, up,
                                           budget=self.world.up_budget)
        s.shutdown(socket.SHUT_WR)
        while True:
            d = s.recv(1 << 16)
            if not d:
                break
            self.world.down_budget.take(len(d))
            conn.down.feed(d)
            conn.progress = time.time()
        if conn.down.offset != down:
            conn.error = "one-shot reply: %d of %d bytes before EOF" % (
                conn.down.offset, down)

    def _rounds(self, s, conn, big=False, lifetime=None, idle=(0.0, 0.3)):
        """Request/response rounds until the lifetime (or the run) ends;
        big with long idle gaps = idle-then-burst."""
        w = self.world
        seed = self.rng.randrange(1 << 32)
        if lifetime is None:
            lifetime = self.rng.uniform(*w.p["life_s"])
        self._header(s, conn, ledger.MODE_ROUNDS, int(big), 0, seed)
        up_off = down_need = 0
        t_end = time.time() + lifetime
        up_tag = ledger.tag_for(conn.id, 0)
        for req, resp in ledger.rounds(seed, big):
            up_off = ledger.send_pattern(s, up_tag, up_off, req, budget=w.up_budget)
            conn.up_sent = up_off
            down_need += resp
            if not ledger.recv_into_check(s, conn.down, resp, self._progress(conn),
                                          w.down_budget):
                conn.error = "EOF in round %d" % conn.rounds
                return
            conn.rounds += 1
            if isinstance(lifetime, int) and conn.rounds >= lifetime:
                return
            if not isinstance(lifetime, int) and time.time() >= t_end:
                return
            if w.stop.wait(self.rng.uniform(*idle)):
                return

    def _burst(self, s, conn):
        self._rounds(s, conn, big=True, idle=self.world.p["idle_s"])

    def _churn(self, s, conn):
        self._rounds(s, conn, lifetime=self.rng.randint(1, 5), idle=(0.0, 0.1))

    def _progress(self, conn):
        def f():
            conn.progress = time.time()
        return f

    # -- ssh ----------------------------------------------------------------------

    def _ssh(self, conn):
        """A real ssh session running cat on the instance: the echo of the
        pattern must come back whole (the far end is sshd, so the echo is
        both ends' ledger)."""
        w = self.world
        n = self.rng.randint(*w.p["ssh_bytes"])
        argv = ["ssh"] + w.gw.ssh_opts("-o", "IdentitiesOnly=no",
                                       "-o", "ConnectTimeout=%d" % w.p["stall_s"]) + \
            ["%s@%s" % (w.sshd.user, w.instances[self.k]), "cat"]
        conn.down = ledger.StreamCheck(ledger.tag_for(conn.id, 0))  # the echo
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        err = []

        def writer():
            try:
                off = 0
                tag = ledger.tag_for(conn.id, 0)
                while off < n:
                    k = min(32 << 10, n - off)
                    w.up_budget.take(k)
                    p.stdin.write(ledger.pattern(tag, off, k))
                    p.stdin.flush()
                    off += k
                    conn.up_sent = off
                p.stdin.close()
            except (OSError, ValueError) as e:
                err.append(str(e))

        def watchdog():
            while p.poll() is None:
                if time.time() - conn.progress > w.p["stall_s"]:
                    err.append("stalled %ds" % w.p["stall_s"])
                    p.kill()
                time.sleep(1)

        threading.Thread(target=writer, daemon=True).start()
        threading.Thread(target=watchdog, daemon=True).start()
        while True:
            d = p.stdout.read1(1 << 16)
            if not d:
                break
            w.down_budget.take(len(d))
            conn.down.feed(d)
            conn.progress = time.time()
        rc = p.wait()
        stderr = p.stderr.read().decode("utf-8", "replace").strip()
        if rc != 0 or err:
            conn.error = "ssh rc %d %s: %s" % (rc, "; ".join(err), stderr[-300:])
        elif conn.down.offset != n:
            conn.error = "ssh echo: %d of %d bytes" % (conn.down.offset, n)
        conn.ok = conn.error is None


def socks5(s, host, port):
    s.sendall(b"\x05\x01\x00")
    if recv_exact(s, 2) != b"\x05\x00":
        raise ValueError("SOCKS5 greeting refused")
    name = host.encode()
    s.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + struct.pack(">H", port))
    head = recv_exact(s, 4)
    if len(head) < 4 or head[1] != 0:
        raise ValueError("SOCKS5 reply %r for %s:%d" % (head, host, port))
    alen = {1: 4, 4: 16}.get(head[3])
    if alen is None:
        alen = recv_exact(s, 1)[0]
    recv_exact(s, alen + 2)


def http_connect(s, host, port):
    s.sendall(b"CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (
        host.encode(), port, host.encode(), port))
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(1)
        if not d:
            raise ValueError("HTTP CONNECT: EOF in the reply head %r" % head)
        head += d
    if not head.startswith(b"HTTP/1.1 200") and not head.startswith(b"HTTP/1.0 200"):
        raise ValueError("HTTP CONNECT reply %r" % head[:200])


# The mix: every 25 lanes hold each path and traffic kind; lanes beyond 25
# repeat it on the next instance. Doom lanes talk all the time so that the
# end of their session is seen at once.
TEMPLATE = [
    ("fwd", "bulk"), ("fwd", "rounds"), ("fwd", "burst"), ("fwd", "oneshot"),
    ("fwd", "churn"), ("route", "bulk"), ("route", "rounds"), ("route", "burst"),
    ("route", "oneshot"), ("route", "churn"), ("inst", "bulk"), ("inst", "rounds"),
    ("inst", "churn"), ("http", "bulk"), ("http", "rounds"), ("http", "oneshot"),
    ("http", "churn"), ("ssh", "echo"), ("doom", "rounds"), ("doom", "bulk"),
    ("fwd", "rounds"), ("route", "burst"), ("inst", "oneshot"), ("http", "burst"),
    ("fwd", "bulk"),
]


def make_lanes(n, world, seed):
    return [Lane(i, TEMPLATE[i % len(TEMPLATE)][0], TEMPLATE[i % len(TEMPLATE)][1],
                 world, seed) for i in range(n)]
