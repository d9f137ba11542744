"""The soak's ledger of every byte: a verifiable byte pattern per stream,
its checker, and the destination server (loopback) that checks what a
tunnel delivered and answers with its own pattern.

Pattern: a stream is a sequence of 8-byte big-endian records
(tag << 32 | counter), counter = offset // 8, tag unique per stream and
direction. A byte lost, duplicated, reordered or written into another
stream shows at the first wrong offset, and the record found there says
which: the right tag with an earlier counter is a duplicate (or a replay
from a reorder), a later counter is a loss, anything else corruption.

Connection protocol (client -> destination), all lengths agreed in a
32-byte header so that neither side needs an in-band delimiter:
    b"SOAK" conn_id:u32 mode:u8 0:u8 0:u16 seed:u32 up_len:u64 down_len:u64
  MODE_BULK    both sides send their whole pattern at once; the destination
               then waits for the client's EOF and closes.
  MODE_ONESHOT client sends up_len, shuts down its sending side (half-close)
               and reads until EOF; the destination reads up_len, answers
               down_len and closes (it never waits for the client's EOF).
  MODE_ROUNDS  request/response rounds: round i's sizes come from
               rounds(seed); the client ends after a whole round (the
               destination sees EOF at a round boundary)."""

import array
import random
import socket
import struct
import sys
import threading
import time

from harness import ThreadedServer, recv_exact

HEADER = struct.Struct(">4sIBBHIQQ")
MAGIC = b"SOAK"
MODE_BULK, MODE_ONESHOT, MODE_ROUNDS = 1, 2, 3
BIG_ENDIAN_HOST = sys.byteorder == "big"


def tag_for(conn_id, direction):
    """A 32-bit tag, never 0, distinct per (connection, direction)."""
    return ((conn_id * 2 + direction) * 2654435761 + 0x5bd1e995) & 0xffffffff or 1


def pattern(tag, offset, n):
    """Bytes [offset, offset + n) of the stream with this tag."""
    if n <= 0:
        return b""
    first = offset >> 3
    last = (offset + n + 7) >> 3
    base = tag << 32
    a = array.array("Q", range(base + (first & 0xffffffff),
                               base + (first & 0xffffffff) + (last - first)))
    if not BIG_ENDIAN_HOST:
        a.byteswap()
    skip = offset & 7
    return a.tobytes()[skip:skip + n]


def rounds(seed, big=False):
    """Endless (request, response) sizes of a MODE_ROUNDS connection."""
    rng = random.Random(seed)
    while True:
        if big:  # idle-then-burst: a burst each way
            yield rng.randint(16 << 10, 512 << 10), rng.randint(16 << 10, 1 << 20)
        else:
            yield rng.randint(1, 2000), rng.randint(1, 16000)


class StreamCheck:
    """Verifies one direction of one connection as it arrives."""

    def __init__(self, tag):
        self.tag = tag
        self.offset = 0       # bytes received
        self.verified = 0     # bytes that matched the pattern
        self.error = None     # (kind, offset, detail) of the first mismatch
        self._tail = b""      # the last 7 bytes, to decode a record on a boundary

    def feed(self, data):
        n = len(data)
        if self.error is None:
            want = pattern(self.tag, self.offset, n)
            if data == want:
                self.verified += n
            else:
                i = next(k for k in range(n) if data[k] != want[k])
                self.verified += i
                self.error = self._classify(data, self.offset + i)
        keep = (self._tail + data)[-7:]
        self.offset += n
        self._tail = keep

    def _classify(self, data, bad):
        """What the record at the first wrong offset says."""
        start = bad & ~7
        joined = self._tail + data
        base = self.offset - len(self._tail)
        rec = joined[start - base:start - base + 8] if start >= base else b""
        if len(rec) < 8:
            return ("corrupt", bad, "short record at the mismatch")
        tag, ctr = struct.unpack(">II", rec)
        want = (start >> 3) & 0xffffffff
        if tag != self.tag:
            return ("corrupt", bad, "tag %08x, want %08x" % (tag, self.tag))
        if ctr < want:
            return ("duplicate", bad, "record %d again at record %d" % (ctr, want))
        if ctr > want:
            return ("lost", bad, "record %d where %d was due (%d bytes skipped)"
                    % (ctr, want, (ctr - want) * 8))
        return ("corrupt", bad, "byte changed inside record %d" % ctr)

    def as_dict(self):
        d = {"received": self.offset, "verified": self.verified}
        if self.error:
            d["error"] = {"kind": self.error[0], "offset": self.error[1],
                          "detail": self.error[2]}
        return d


class Budget:
    """The clients' bytes per second in one direction, shared by every
    lane: a token bucket (100 ms deep) whose debt the taker sleeps off. It
    keeps the whole run within what the machine carries -- the fake is one
    Python process, and the lanes and destinations check every byte in
    Python too -- so a stall means the gateway, not a saturated harness
    (README: Load). rate 0 = no bound."""

    def __init__(self, rate):
        self.rate = rate
        self.lock = threading.Lock()
        self.tokens = rate * 0.1
        self.t = time.monotonic()

    def take(self, n):
        if not self.rate:
            return
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.rate * 0.1,
                              self.tokens + (now - self.t) * self.rate) - n
            self.t = now
            wait = -self.tokens / self.rate if self.tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)


def send_pattern(sock, tag, offset, n, chunk=32 << 10, budget=None):
    """Sends n bytes of the stream from offset; returns the new offset."""
    end = offset + n
    while offset < end:
        k = min(chunk, end - offset)
        if budget is not None:
            budget.take(k)
        sock.sendall(pattern(tag, offset, k))
        offset += k
    return offset


def recv_into_check(sock, check, n, on_progress=None, budget=None):
    """Receives exactly n more bytes into check; False on EOF first."""
    left = n
    while left > 0:
        d = sock.recv(min(left, 1 << 16))
        if not d:
            return False
        check.feed(d)
        left -= len(d)
        if budget is not None:
            budget.take(len(d))
        if on_progress:
            on_progress()
    return True


class DestServer(ThreadedServer):
    """The destination of every port-forward tunnel: one loopback port, a
    thread per connection, a record per connection id in self.conns."""

    def __init__(self, stall_s):
        self.stall_s = stall_s
        self.lock = threading.Lock()
        self.conns = {}       # conn_id -> record
        self.bad_headers = []
        self.open = 0
        super().__init__(self._handle, backlog=1024)

    def _handle(self, c):
        rec = None
        with self.lock:
            self.open += 1
        try:
            c.settimeout(self.stall_s)
            hdr = recv_exact(c, HEADER.size)
            if len(hdr) < HEADER.size:
                if hdr:
                    self.bad_headers.append("short header %r" % hdr)
                return  # a connection that never said anything: no record
            magic, cid, mode, _, _, seed, up_len, down_len = HEADER.unpack(hdr)
            if magic != MAGIC:
                self.bad_headers.append("bad header %r" % hdr)
                return
            rec = {"up": StreamCheck(tag_for(cid, 0)), "down_sent": 0,
                   "mode": mode, "end": None, "t_open": time.time()}
            with self.lock:
                if cid in self.conns:
                    self.bad_headers.append("conn %d twice" % cid)
                    return
                self.conns[cid] = rec
            dtag = tag_for(cid, 1)
            if mode == MODE_BULK:
                self._bulk(c, rec, dtag, up_len, down_len)
            elif mode == MODE_ONESHOT:
                if not recv_into_check(c, rec["up"], up_len):
                    rec["end"] = "eof before the request was whole"
                    return
                rec["down_sent"] = send_pattern(c, dtag, 0, down_len)
                rec["end"] = "ok"
            elif mode == MODE_ROUNDS:
                self._rounds(c, rec, dtag, seed, up_len)
            else:
                rec["end"] = "unknown mode %d" % mode
        except socket.timeout:
            if rec is not None:
                rec["end"] = "stalled %ds" % self.stall_s
        except OSError as e:
            if rec is not None:
                rec["end"] = "socket error: %s" % e
        finally:
            if rec is not None:
                rec["t_end"] = time.time()
            c.close()
            with self.lock:
                self.open -= 1

    def _bulk(self, c, rec, dtag, up_len, down_len):
        err = []

        def writer():
            try:
                rec["down_sent"] = 0
                off = 0
                while off < down_len:
                    k = min(32 << 10, down_len - off)
                    c.sendall(pattern(dtag, off, k))
                    off += k
                    rec["down_sent"] = off
            except OSError as e:
                err.append(str(e))

        w = threading.Thread(target=writer, daemon=True)
        w.start()
        whole = recv_into_check(c, rec["up"], up_len)
        w.join(self.stall_s)
        if not whole:
            rec["end"] = "eof before the upload was whole"
        elif err:
            rec["end"] = "send failed: %s" % err[0]
        elif w.is_alive():
            rec["end"] = "download stalled"
        else:
            extra = c.recv(1)  # the client's EOF after the whole exchange
            rec["end"] = "ok" if extra == b"" else "bytes after the upload"
            if extra:
                rec["up"].feed(extra)

    def _rounds(self, c, rec, dtag, seed, big):
        down_off = 0
        rec["rounds"] = 0
        for req, resp in rounds(seed, bool(big)):
            first = c.recv(min(req, 1 << 16))
            if not first:
                rec["end"] = "ok"  # EOF on a round boundary: the client's end
                return
            rec["up"].feed(first)
            if not recv_into_check(c, rec["up"], req - len(first)):
                rec["end"] = "eof inside round %d" % rec["rounds"]
                return
            down_off = send_pattern(c, dtag, down_off, resp)
            rec["down_sent"] = down_off
            rec["rounds"] += 1
