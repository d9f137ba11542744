"""fake_agent: the data channel side of fake_aws = MGS + amazon-ssm-agent's Port plugin.

Model (from /work/shared/docs/ssm-data-channel.md, not from the gateway's code):
one Session per StartSession. The session outlives WebSocket connections: a
client that loses its socket calls ResumeSession, reopens with the new token and
the agent-side state (sequence numbers, unacked and out-of-order buffers, RTO,
destination sockets, smux streams) simply continues.

Per session:
  agent_main   HandshakeRequest (seq 0, flags 1) -> wait HandshakeResponse (15 s)
               -> HandshakeComplete -> start the Port plugin in its mode:
               stream (AWS-StartSSHSession: no "type"), basic or mux (smux v1 server).
  resender     every 100 ms resend only the oldest unacked message once older than RTO.
  reader       one per WebSocket: strict frame validation, digest check, acks
               (re-ack duplicates, buffer out-of-order, never ack acks).
While no client socket is attached the agent behaves as paused (stops reading
destinations, no retransmission), which is what we assume MGS does.

MGS's flow control toward the client (faults, off by default): it pauses the
client (pause_publication) when more than client_window_bytes of client data
wait in MGS for the agent, or after every pause_client_every_bytes of client
data for pause_client_ms; it sends start_publication when the backlog halves /
the time is up. A client input_stream_data that arrives more than
pause_grace_ms after the pause went out is a send while paused: counted
(client_sends_while_paused) and, with pause_action "close" (default), the
channel is closed (channel_closed) as the service does.
"""

import asyncio
import base64
import collections
import hashlib
import http
import json
import re
import secrets
import struct
import sys
import time
import urllib.parse
import uuid

import websockets

VERIFY = None  # set by fake_aws: verify_sigv4(state, method, path, headers, body, services)

# This process's own event-loop stalls: (end, seconds). Frames that reached the
# socket while the loop was stalled are all stamped at its end, so a stall near
# the start of a 1-second window moves earlier arrivals into it; the rate check
# must not blame the client for that.
LOOP_STALLS = collections.deque(maxlen=4096)
LOOP_TICK = 0.005


async def watch_loop():
    while True:
        t = time.monotonic()
        await asyncio.sleep(LOOP_TICK)
        lag = time.monotonic() - t - LOOP_TICK
        if lag > 0.002:
            LOOP_STALLS.append((time.monotonic(), lag))


def loop_stall_since(t0):
    """Seconds this loop spent stalled in stalls that ended after t0."""
    return sum(lag for end, lag in LOOP_STALLS if end > t0)

HDR = struct.Struct(">I32sIQqQ16s32sII")
assert HDR.size == 120
EMPTY_SHA = hashlib.sha256(b"").digest()

PT_OUTPUT, PT_HS_REQ, PT_HS_RESP, PT_HS_DONE, PT_FLAG = 1, 5, 6, 7, 10
FLAG_DISCONNECT, FLAG_TERMINATE, FLAG_CONNECT_ERROR = 1, 2, 3

SMUX_SYN, SMUX_FIN, SMUX_PSH, SMUX_NOP, SMUX_UPD = 0, 1, 2, 3, 4
SMUX_HDR = struct.Struct("<BBHI")
SMUX_MAX_FRAME = 32768

DEFAULT_FAULTS = {
    "handshake_timeout_s": 15.0,
    "token_ttl_s": 60.0,
    "rate_limit": 1000,          # client input_stream_data messages per second
    "rate_count": "stream",      # "stream" (input_stream_data) or "all" (any binary frame)
    "rate_action": "record",     # "record" or "close" (drop the session like the service)
    "new_cell_on_resume": True,
    "resume_mode": "empty_token",
    "max_unacked": 100000,
    "max_inbuf": 100000,
    "client_window_bytes": 0,       # 0 = never pause for backlog
    "pause_client_every_bytes": 0,  # 0 = no injected pauses
    "pause_client_ms": 500,
    "pause_grace_ms": 200,
    "pause_action": "close",        # "close" or "record"
    "delay_in_ms": 0,               # the agent's time per client message
}


def log(msg):
    sys.stderr.write("fake_aws: %s\n" % msg)
    sys.stderr.flush()


def make_cell():
    """An opaque base64 string that surely contains '+', '/' and '='."""
    while True:
        s = base64.b64encode(secrets.token_bytes(31)).decode()
        if "+" in s and "/" in s and s.endswith("="):
            return s


def vkey(v):
    """Agent-style version compare key: numeric components, more components greater."""
    out = []
    for p in str(v).split("."):
        out.append((0, int(p), "") if p.isdigit() else (1, 0, p))
    return out


def uuid_to_wire(u):
    b = u.bytes
    return b[8:16] + b[0:8]


def wire_to_uuid(b):
    return uuid.UUID(bytes=bytes(b[8:16]) + bytes(b[0:8]))


def build_msg(mtype, seq, flags, ptype, payload, mid=None):
    mid = mid or uuid.uuid4()
    return HDR.pack(116, mtype.encode().ljust(32, b" "), 1, int(time.time() * 1000), seq,
                    flags, uuid_to_wire(mid), hashlib.sha256(payload).digest(), ptype,
                    len(payload)) + payload


class BadFrame(Exception):
    pass


def parse_msg(frame):
    n = len(frame)
    if n < 120:
        raise BadFrame("frame of %d bytes is shorter than the 120-byte header" % n)
    hl, mt, _sv, cd, seq, flags, mid, dig, pt, plen = HDR.unpack_from(frame)
    if hl != 116:
        raise BadFrame("HeaderLength %d (expected 116)" % hl)
    mtype = mt.strip(b"\x00").strip().decode("ascii", "replace")
    if not mtype:
        raise BadFrame("empty MessageType")
    payload = frame[120:]
    if plen != len(payload):
        raise BadFrame("PayloadLength %d but %d payload bytes" % (plen, len(payload)))
    if cd == 0 and mtype not in ("start_publication", "pause_publication"):
        raise BadFrame("CreatedDate is 0")
    if hashlib.sha256(payload).digest() != dig:
        raise BadFrame("payload digest mismatch")
    if mid == b"\x00" * 16:
        raise BadFrame("all-zero MessageId")
    return mtype, seq, flags, wire_to_uuid(mid), pt, payload, cd


class Session:
    def __init__(self, state, sid, target, inst, doc, props, access_key, reason):
        self.state = state
        self.sid = sid
        self.target = target
        self.inst = inst
        self.doc = doc
        self.props = props
        self.access_key = access_key
        self.reason = reason
        self.cell = make_cell()
        self.token = None
        self.token_time = 0
        self.token_used = True
        self.terminated = False
        self.end_reason = None
        self.faults = dict(DEFAULT_FAULTS)
        self.faults.update(state.dc_faults)
        self.faults.update(inst.get("faults", {}))
        self.pace = self.faults.get("pace_ms", getattr(state, "pace_ms", 1.0)) / 1000.0
        self.payload_size = int(self.faults.get("payload_size",
                                                getattr(state, "payload_size", 1024)))
        self.ws = None
        self.opens = []
        self.tasks = []
        self.started = False
        # reliability state
        self.out_seq = 0
        self.unacked = collections.OrderedDict()   # seq -> [msg bytes, last sent, uuid]
        self.front_seq, self.front_resends = None, 0  # the resender's target
        self.rtt, self.rttv, self.rto = 0.1, 0.0, 0.2
        self.expected = 0
        self.inbuf = {}
        self.paused = False
        self.flow = asyncio.Event()
        self.held = None
        # handshake / plugin
        self.hs_future = asyncio.get_event_loop().create_future()
        self.handshake_done = False
        self.client_version = None
        self.mode = None
        self.ready = False
        self.dest_r = self.dest_w = None
        self.need_redial = False
        self.smux_rx = bytearray()
        self.smux_out = collections.deque()
        self.smux_out_len = 0
        self.smux_ev = asyncio.Event()
        self.smux_room = asyncio.Event()
        self.smux_room.set()
        self.streams = {}
        self.smux_last_in = 0.0
        self.smux_keepalive_on = False
        self.rate_win = collections.deque()
        self.client_paused = None   # None, "window" or "injected"
        self.client_paused_at = 0.0
        self.client_backlog = 0     # client stream bytes queued in MGS
        self.client_since_pause = 0
        self.drop_run_left = set()  # seqs of the drop_run not acked yet
        self.drop_run_t0 = 0.0
        # Lost ones the resender brought back before the first message past
        # the run went out: the client saw those in order, never as a gap.
        self.drop_run_early = set()
        self.drop_run_past_sent = False
        self.inq = asyncio.Queue(maxsize=100000)
        self.proc_task = None
        self.cut_base = 0
        self.stats = collections.defaultdict(int)
        self.stats.update({"resume_calls": 0, "max_client_msgs_per_s": 0,
                           "max_client_msgs_per_s_net": 0, "max_window_loop_stall_ms": 0,
                           "client_pauses": 0, "client_sends_while_paused": 0,
                           "client_sends_in_pause_grace": 0,
                           "rate_violations": 0, "terminate_api": False})
        self.violations = []
        self.events = []

    # -- bookkeeping ------------------------------------------------------------

    def event(self, what, **kw):
        kw["what"] = what
        kw["time"] = time.time()
        self.events.append(kw)
        if len(self.events) > 2000:
            del self.events[:1000]

    def violation(self, what):
        self.stats["violations"] += 1
        if len(self.violations) < 200:
            self.violations.append(what)
        log("session %s: client violation: %s" % (self.sid, what))

    def new_token(self):
        self.token = base64.b64encode(secrets.token_bytes(96)).decode()
        self.token_time = time.time()
        self.token_used = False
        return self.token

    def update_faults(self, f):
        self.faults.update(f)
        if "pace_ms" in f:
            self.pace = f["pace_ms"] / 1000.0
        if "payload_size" in f:
            self.payload_size = int(f["payload_size"])

    def describe(self):
        return {"sid": self.sid, "target": self.target, "document": self.doc,
                "properties": self.props, "access_key": self.access_key,
                "reason": self.reason, "mode": self.mode,
                "client_version": self.client_version, "terminated": self.terminated,
                "end_reason": self.end_reason, "connected": self.ws is not None,
                "handshake_done": self.handshake_done, "opens": self.opens,
                "smux_keepalive": self.smux_keepalive_on,
                "out_seq": self.out_seq, "expected_in": self.expected,
                "unacked": len(self.unacked), "rto": self.rto,
                "oldest_unacked": next(iter(self.unacked), None),
                "resends_of_oldest": self.front_resends,
                "paused": self.paused,
                "stats": dict(self.stats), "violations": self.violations,
                "events": self.events[-200:], "streams": len(self.streams),
                "faults": self.faults,
                # Where the agent is stuck, if it is: the processor's await,
                # its queue, the smux pipe toward the client and each
                # stream's destination buffer.
                "agent_view": {"proc_at": getattr(self, "proc_at", None),
                               "inq": self.inq.qsize(),
                               "flow": self.flow.is_set(),
                               "smux_out_len": self.smux_out_len,
                               "smux_room": self.smux_room.is_set(),
                               "ws_buffer": (self.ws.transport.get_write_buffer_size()
                                             if self.ws is not None else None),
                               "streams": {sid: {"w_buf": (st.w.transport.get_write_buffer_size()
                                                           if st.w is not None else None),
                                                 "pending": (len(st.pending)
                                                             if st.pending is not None else None),
                                                 "closed": st.closed}
                                           for sid, st in self.streams.items()}}}

    def _update_flow(self):
        if self.ws is not None and not self.paused and not self.terminated and \
                len(self.unacked) < self.faults["max_unacked"]:
            self.flow.set()
        else:
            self.flow.clear()

    # -- socket attach / detach -------------------------------------------------

    def attach(self, ws, info):
        old = self.ws
        if old is not None:
            self.event("replaced_socket")
            old.transport.abort()
        self.ws = ws
        self.opens.append(info)
        if len(self.opens) > 1:
            self.stats["resumes"] += 1
        self.paused = False
        self.client_paused = None  # a new socket starts unpaused
        self._update_flow()
        loop = asyncio.get_event_loop()
        if not self.started:
            self.started = True
            self.tasks.append(loop.create_task(self.agent_main()))
            self.tasks.append(loop.create_task(self.resender()))
            if self.faults.get("pause_client_every_ms"):
                self.tasks.append(loop.create_task(self.pause_timer()))
            t = self.faults.get("channel_closed_after_s")
            if t:
                loop.call_later(t, lambda: loop.create_task(
                    self.terminate(self.faults.get("channel_closed_text",
                                                   "Session terminated due to idle timeout."))))
        # The service's recycle: a normal close T s after each open, close_count
        # times (-1: forever, "every 20 s"). The client must ResumeSession: the
        # token it opened with is spent.
        t = self.faults.get("close_after_s")
        cnt = self.faults.get("close_count", 1)
        if t and cnt != 0:
            if cnt > 0:
                self.faults["close_count"] = cnt - 1
            loop.call_later(t, lambda: loop.create_task(self._normal_close(ws)))
        if self.faults.get("resend_all_on_attach"):
            loop.create_task(self._resend_all())

    async def _normal_close(self, ws):
        if self.ws is ws and not self.terminated:
            self.event("normal_close")
            self.stats["normal_closes"] += 1
            await ws.close(1000, "Bye")

    async def _resend_all(self):
        for seq, ent in list(self.unacked.items()):
            ent[1] = time.monotonic()
            await self._ws_send(ent[0])

    def detach(self, ws):
        if self.ws is ws:
            self.ws = None
            self._update_flow()
            self.event("detached")

    def shutdown(self):
        for t in self.tasks:
            t.cancel()
        self._close_dest()
        for st in list(self.streams.values()):
            st.close()

    # -- transmit -----------------------------------------------------------------

    async def _ws_send(self, msg):
        ws = self.ws
        if ws is None:
            return
        try:
            await ws.send(msg)
        except websockets.ConnectionClosed:
            return
        self.stats["bytes_to_client_ws"] += len(msg)
        self._check_cut(len(msg))

    def _check_cut(self, n):
        f = self.faults
        self.cut_base += n
        self.stats["ws_msgs"] += 1
        cut = False
        if f.get("cut_after_bytes") and f.get("cut_count", 1) > 0 and \
                self.cut_base >= f["cut_after_bytes"]:
            cut = True
        if f.get("cut_after_messages") and f.get("cut_count", 1) > 0 and \
                self.stats["ws_msgs"] - self.stats.get("ws_msgs_base", 0) >= \
                f["cut_after_messages"]:
            cut = True
        if cut and self.ws is not None:
            f["cut_count"] = f.get("cut_count", 1) - 1
            self.cut_base = 0
            self.stats["ws_msgs_base"] = self.stats["ws_msgs"]
            self.stats["cuts"] += 1
            self.event("cut")
            log("session %s: fault: cutting the WebSocket" % self.sid)
            self.ws.transport.abort()
            self.detach(self.ws)

    async def send_stream(self, ptype, payload):
        """Agent SendStreamDataMessage: sequence, store (even if not sent), send."""
        seq = self.out_seq
        self.out_seq += 1
        msg = build_msg("output_stream_data", seq, 1 if seq == 0 else 0, ptype, payload)
        if len(self.unacked) < self.faults["max_unacked"]:
            self.unacked[seq] = [msg, time.monotonic()]
        else:
            self.stats["not_retained"] += 1
        if ptype == PT_OUTPUT:
            self.stats["bytes_to_client"] += len(payload)
        self.stats["stream_msgs_to_client"] += 1
        self._update_flow()
        await self._tx(msg)

    async def _tx(self, msg):
        f = self.faults
        if self.ws is None:
            return
        if f.get("delay_ms"):
            await asyncio.sleep(f["delay_ms"] / 1000.0)
        n = self.stats["stream_msgs_to_client"]
        if f.get("drop_out_every") and n % f["drop_out_every"] == 0:
            self.stats["dropped_out"] += 1
            return
        # A burst lost at once (a WebSocket dropped mid-burst): stream messages
        # M .. M+K-1 are stored but not sent; only the resender brings them back.
        m, k = f.get("drop_run_after_messages"), f.get("drop_run_count", 0)
        if m and k and m <= n < m + k:
            seq = HDR.unpack_from(msg)[4]
            if n == m:
                self.event("drop_run_start", seq=seq, count=k)
                self.drop_run_t0 = time.time()
            self.drop_run_left.add(seq)
            self.stats["dropped_run"] += 1
            return
        if m and k and n == m + k:
            self.drop_run_past_sent = True
            self.stats["drop_run_resent_before_past"] = len(self.drop_run_early)
        if f.get("reorder_every") and n % f["reorder_every"] == 0 and self.held is None:
            self.held = msg
            self.stats["reordered"] += 1
            return
        await self._ws_send(msg)
        if self.held is not None:
            h, self.held = self.held, None
            await self._ws_send(h)
        if f.get("duplicate_every") and n % f["duplicate_every"] == 0:
            self.stats["duplicated"] += 1
            await self._ws_send(msg)
        pa = f.get("pause_after_messages")
        if pa and n == pa:
            await self.send_control("pause_publication")
            self.event("sent_pause_publication")
            if f.get("start_after_ms"):
                await asyncio.sleep(f["start_after_ms"] / 1000.0)
                await self.send_control("start_publication")

    async def send_control(self, mtype, payload=b""):
        await self._ws_send(build_msg(mtype, 0, 0, 0, payload))

    async def send_ack(self, mtype, mid, seq):
        f = self.faults
        self.stats["acks_to_client"] += 1
        k = self.stats["acks_to_client"]
        if f.get("drop_ack_nth") and k == f["drop_ack_nth"]:
            self.stats["acks_dropped"] += 1
            return
        if f.get("drop_ack_every") and k % f["drop_ack_every"] == 0:
            self.stats["acks_dropped"] += 1
            return
        body = ('{"AcknowledgedMessageType":"%s","AcknowledgedMessageId":"%s",'
                '"AcknowledgedMessageSequenceNumber":%d,"IsSequentialMessage":true}'
                % (mtype, mid, seq)).encode()
        await self._ws_send(build_msg("acknowledge", 0, 3, 0, body))

    async def resender(self):
        while not self.terminated:
            await asyncio.sleep(0.1)
            if self.ws is None or self.paused or not self.unacked:
                continue
            seq = next(iter(self.unacked))
            ent = self.unacked[seq]
            if time.monotonic() - ent[1] > self.rto:
                ent[1] = time.monotonic()
                self.stats["retransmits"] += 1
                if seq != self.front_seq:
                    self.front_seq, self.front_resends = seq, 0
                self.front_resends += 1
                if seq in self.drop_run_left and not self.drop_run_past_sent:
                    self.drop_run_early.add(seq)
                await self._ws_send(ent[0])

    # -- receive --------------------------------------------------------------------

    def _rate(self, is_stream):
        if self.faults["rate_count"] == "stream" and not is_stream:
            return
        now = time.monotonic()
        w = self.rate_win
        w.append(now)
        while w and w[0] < now - 1.0:
            w.popleft()
        lim = self.faults.get("rate_limit")
        over = len(w)
        if lim and len(w) > lim:
            # Arrivals stamped late by our own stalls could have come before
            # the window: only what is left beyond that counts as over.
            stall = loop_stall_since(now - 1.0)
            over = max(lim, len(w) - int(lim * stall))
            if len(w) > self.stats["max_client_msgs_per_s"]:
                self.stats["max_window_loop_stall_ms"] = round(stall * 1000, 1)
        if len(w) > self.stats["max_client_msgs_per_s"]:
            self.stats["max_client_msgs_per_s"] = len(w)
        if over > self.stats["max_client_msgs_per_s_net"]:
            self.stats["max_client_msgs_per_s_net"] = over
        if lim and over > lim:
            self.stats["rate_violations"] += 1
            if self.stats["rate_violations"] == 1:
                self.violation("more than %d messages/s from the client" % lim)
            if self.faults["rate_action"] == "close" and self.ws is not None:
                asyncio.get_event_loop().create_task(
                    self.terminate("Session terminated: client exceeded the message rate "
                                   "limit."))

    def on_wire(self, frame):
        """What MGS sees: count, rate-check and queue every client frame at once, so a
        destination that blocks the agent never stops the WebSocket from being read
        (MGS buffers between client and agent)."""
        self.stats["frames_from_client"] += 1
        self.stats["bytes_from_client_ws"] += len(frame)
        is_stream = frame[4:21] == b"input_stream_data"
        self._rate(is_stream)
        if is_stream:
            self._client_flow(len(frame))
        self.inq.put_nowait(frame)
        if self.proc_task is None:
            self.proc_task = asyncio.get_event_loop().create_task(self.processor())
            self.tasks.append(self.proc_task)
        self._check_cut(len(frame))

    async def processor(self):
        while not self.terminated:
            self.proc_at = "inq"
            frame = await self.inq.get()
            self.proc_at = "on_frame"
            await self.on_frame(frame)
            if frame[4:21] == b"input_stream_data":
                if self.faults.get("delay_in_ms"):  # a slow agent
                    await asyncio.sleep(self.faults["delay_in_ms"] / 1000.0)
                self.client_backlog -= len(frame)
                if self.client_paused == "window" and \
                        self.client_backlog <= self.faults["client_window_bytes"] // 2:
                    await self._start_client(None)

    # -- MGS's flow control toward the client ------------------------------------

    def _client_flow(self, n):
        f = self.faults
        now = time.monotonic()
        self.client_backlog += n
        if self.client_paused:
            if now - self.client_paused_at <= f["pause_grace_ms"] / 1000.0:
                self.stats["client_sends_in_pause_grace"] += 1
                return
            self.stats["client_sends_while_paused"] += 1
            if self.stats["client_sends_while_paused"] == 1:
                self.violation("input_stream_data while paused")
                self.event("client_sent_while_paused")
                if f["pause_action"] == "close":
                    asyncio.get_event_loop().create_task(self.terminate(
                        "Session terminated: the client kept sending while paused."))
            return
        self.client_since_pause += n
        every, win = f.get("pause_client_every_bytes"), f.get("client_window_bytes")
        why = None
        if every and self.client_since_pause >= every:
            why = "injected"
        elif win and self.client_backlog > win:
            why = "window"
        if why is not None:
            self._pause_client(why)

    async def pause_timer(self):
        """pause_client_every_ms: a pause of pause_client_ms injected on a clock,
        whatever the client sends (downloads too: acks are allowed while paused,
        smux frames and retransmissions are not)."""
        while not self.terminated:
            await asyncio.sleep(self.faults["pause_client_every_ms"] / 1000.0)
            if self.ws is not None and not self.client_paused:
                self._pause_client("timed")

    def _pause_client(self, why):
        f = self.faults
        now = time.monotonic()
        self.client_paused, self.client_paused_at = why, now
        self.client_since_pause = 0
        self.stats["client_pauses"] += 1
        self.event("paused_client", why=why, backlog=self.client_backlog)
        loop = asyncio.get_event_loop()
        loop.create_task(self.send_control("pause_publication"))
        if why in ("injected", "timed"):
            ws = self.ws
            loop.call_later(f["pause_client_ms"] / 1000.0,
                            lambda: loop.create_task(self._start_client(ws)))

    async def _start_client(self, ws):
        if not self.client_paused or (ws is not None and ws is not self.ws):
            return
        self.client_paused = None
        self.event("started_client")
        await self.send_control("start_publication")

    async def on_frame(self, frame):
        try:
            mtype, seq, flags, mid, pt, payload, cd = parse_msg(frame)
        except BadFrame as e:
            self.stats["bad_frames"] += 1
            self.violation("bad frame dropped: %s" % e)
            return
        if mtype == "acknowledge":
            self.on_ack(payload)
            return
        if mtype != "input_stream_data":
            self.violation("unexpected MessageType %r from the client" % mtype)
            return
        if self.paused:
            self.paused = False
            self._update_flow()
        self.stats["stream_msgs_from_client"] += 1
        if flags not in (0, 1):
            self.stats["odd_flags"] += 1
        if seq == self.expected:
            r = await self.process(pt, payload, seq)
            if r == "notready":
                self.stats["not_ready"] += 1
                return
            await self.send_ack("input_stream_data", mid, seq)
            self.expected += 1
            while self.expected in self.inbuf:
                pt2, pl2, seq2 = self.inbuf.pop(self.expected)
                while await self.process(pt2, pl2, seq2) == "notready":
                    await asyncio.sleep(0.01)
                self.expected += 1
        elif seq > self.expected:
            if len(self.inbuf) < self.faults["max_inbuf"]:
                if seq in self.inbuf:
                    self.stats["dup_from_client"] += 1
                self.inbuf[seq] = (pt, payload, seq)
                self.stats["out_of_order_from_client"] += 1
                await self.send_ack("input_stream_data", mid, seq)
        else:
            self.stats["dup_from_client"] += 1
            await self.send_ack("input_stream_data", mid, seq)

    def _drop_run_acked(self, seq):
        """Times the recovery of a drop_run: its first and its last lost
        message acknowledged (seconds since the loss)."""
        first = "drop_run_first_acked_s" not in self.stats
        self.drop_run_left.discard(seq)
        dt = time.time() - self.drop_run_t0
        if first:
            self.stats["drop_run_first_acked_s"] = round(dt, 3)
            self.event("drop_run_first_acked", seq=seq)
        if not self.drop_run_left:
            self.stats["drop_run_recovered_s"] = round(dt, 3)
            self.event("drop_run_recovered", seq=seq)

    def on_ack(self, payload):
        self.stats["acks_from_client"] += 1
        try:
            a = json.loads(payload)
            aseq = a["AcknowledgedMessageSequenceNumber"]
            atype = a.get("AcknowledgedMessageType")
            aid = a.get("AcknowledgedMessageId")
            if not isinstance(aseq, int) or isinstance(aseq, bool):
                raise ValueError("seq not an integer")
        except (ValueError, KeyError, TypeError) as e:
            self.violation("bad acknowledge payload: %s" % e)
            return
        if atype != "output_stream_data":
            self.violation("ack of a %r message" % atype)
        ent = self.unacked.pop(aseq, None)
        if ent is None:
            self.stats["acks_unknown"] += 1
            return
        if aseq in self.drop_run_left:
            self._drop_run_acked(aseq)
        mid = str(wire_to_uuid(ent[0][64:80]))
        if aid != mid:
            self.violation("ack for seq %d names id %r, expected %s" % (aseq, aid, mid))
        r = time.monotonic() - ent[1]
        self.rttv = 0.75 * self.rttv + 0.25 * abs(self.rtt - r)
        self.rtt = 0.875 * self.rtt + 0.125 * r
        self.rto = min(1.0, self.rtt + max(0.01, 4 * self.rttv))
        if self.paused:
            self.paused = False
        self._update_flow()

    async def process(self, pt, payload, seq):
        if not self.handshake_done:
            if pt == PT_HS_RESP:
                if not self.hs_future.done():
                    self.hs_future.set_result(payload)
                else:
                    self.violation("second HandshakeResponse")
                return "ok"
            self.stats["early_discarded"] += 1
            self.violation("input seq %d type %d before HandshakeComplete (discarded)"
                           % (seq, pt))
            return "ok"
        if pt == PT_OUTPUT:
            if not self.ready:
                return "notready"
            self.stats["bytes_from_client"] += len(payload)
            await self.plugin_data(payload)
            return "ok"
        if pt == PT_FLAG:
            if len(payload) != 4:
                self.violation("flag payload of %d bytes" % len(payload))
                return "ok"
            await self.on_flag(struct.unpack(">I", payload)[0])
            return "ok"
        if pt == PT_HS_RESP:
            self.violation("HandshakeResponse after the handshake")
            return "ok"
        self.stats["ignored_payload_type_%d" % pt] += 1
        return "ok"

    # -- handshake ------------------------------------------------------------------

    async def agent_main(self):
        try:
            await self._agent_main()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001
            log("session %s: agent error %r" % (self.sid, e))
            await self.terminate("Session failed: %s" % e)

    async def _agent_main(self):
        f = self.faults
        if f.get("no_handshake"):
            self.event("no_handshake")
            return
        actions = [{"ActionType": "SessionType",
                    "ActionParameters": {"SessionType": "Port",
                                         "Properties": self.handshake_properties()}}]
        if f.get("request_kms"):
            actions.append({"ActionType": "KMSEncryption", "ActionParameters": {
                "KMSKeyId": "arn:aws:kms:us-east-1:123456789012:key/fake-key",
                "Challenge": base64.b64encode(secrets.token_bytes(16)).decode()}})
        agent_version = self.inst.get("agent_version", "3.3.987.0")
        t0 = time.monotonic()
        await self.send_stream(PT_HS_REQ, json.dumps(
            {"AgentVersion": agent_version, "RequestedClientActions": actions}).encode())
        self.event("handshake_request")
        try:
            raw = await asyncio.wait_for(asyncio.shield(self.hs_future),
                                         f["handshake_timeout_s"])
        except asyncio.TimeoutError:
            self.stats["handshake_timeout"] = 1
            await self.terminate("Handshake timed out. Please ensure that you have the latest "
                                 "version of the session manager plugin.")
            return
        try:
            resp = json.loads(raw)
            cv = resp["ClientVersion"]
            pca = resp["ProcessedClientActions"]
            if not isinstance(cv, str) or not isinstance(pca, list):
                raise ValueError("bad types")
        except (ValueError, KeyError, TypeError) as e:
            self.violation("bad HandshakeResponse: %s" % e)
            await self.terminate("Handshake failed: malformed HandshakeResponse")
            return
        self.client_version = cv
        self.event("handshake_response", client_version=cv, actions=pca)
        failed = []
        seen = set()
        for a in pca:
            if not isinstance(a, dict):
                failed.append("non-object action")
                continue
            seen.add(a.get("ActionType"))
            if a.get("ActionStatus") != 1:
                failed.append("%s: status %r error %r" % (a.get("ActionType"),
                                                          a.get("ActionStatus"), a.get("Error")))
        for a in actions:
            if a["ActionType"] not in seen:
                failed.append("%s: not answered" % a["ActionType"])
        if failed:
            self.stats["handshake_failed"] = 1
            self.event("handshake_failed", failed=failed)
            await self.terminate("Handshake failed: %s" % "; ".join(failed))
            return
        if f.get("request_kms"):
            # cannot happen for a correct client: it must refuse KMS in a Port session
            self.violation("client accepted KMSEncryption in a Port session")
            await self.terminate("Handshake failed: encryption challenge not supported")
            return
        await self.send_stream(PT_HS_DONE, json.dumps(
            {"HandshakeTimeToComplete": int((time.monotonic() - t0) * 1e9),
             "CustomerMessage": ""}).encode())
        self.handshake_done = True
        self.event("handshake_complete")
        typ = self.handshake_properties().get("type")
        if typ == "LocalPortForwarding":
            mux = vkey(cv) >= vkey("1.1.70") and vkey(agent_version) > vkey("3.0.196.0")
            self.mode = "mux" if mux else "basic"
        else:
            self.mode = "stream"
        log("session %s: handshake done, client %s, mode %s" % (self.sid, cv, self.mode))
        if self.mode == "mux":
            self.ready = True
            self.tasks.append(asyncio.get_event_loop().create_task(self.smux_pump()))
            av = vkey(agent_version)
            if av < vkey("3.1.1446.0"):
                keepalive = True            # always on in old agents
            elif av <= vkey("3.1.1511.0"):
                keepalive = False           # always off in this range
            else:
                keepalive = vkey(cv) <= vkey("1.2.331.0")
            self.smux_keepalive_on = keepalive
            if keepalive:
                self.tasks.append(asyncio.get_event_loop().create_task(self.smux_keepalive()))
        else:
            await self.plugin_start()

    def handshake_properties(self):
        p = {"portNumber": self.props["portNumber"]}
        if self.doc != "AWS-StartSSHSession":
            p["type"] = "LocalPortForwarding"
            p["localPortNumber"] = self.props.get("localPortNumber", "0")
        if "host" in self.props:
            p["host"] = self.props["host"]
        return p

    # -- destination -------------------------------------------------------------------

    def dest_addr(self):
        if self.faults.get("dial_fail"):
            return None
        port = int(self.props["portNumber"])
        port = int(self.inst.get("ports", {}).get(str(port), port))
        host = self.props.get("host", "localhost")
        if host not in ("localhost", "127.0.0.1", "::1"):
            mapped = self.inst.get("hosts", {}).get(host)
            if mapped is None:
                return None
            host = str(mapped)
            if ":" in host and not host.startswith("["):
                host, p = host.rsplit(":", 1)
                port = int(p)
        if host == "localhost":
            host = "127.0.0.1"
        if host not in ("127.0.0.1", "::1"):
            return None    # loopback only, ever
        return host, port

    async def dial(self):
        a = self.dest_addr()
        if a is None:
            raise OSError("dial tcp: lookup failed or not allowed")
        return await asyncio.open_connection(a[0], a[1])

    async def plugin_start(self):
        try:
            self.dest_r, self.dest_w = await self.dial()
        except OSError as e:
            self.event("dial_failed", error=str(e))
            await self.terminate("Unable to start port, %s" % e)
            return
        self.ready = True
        self.tasks.append(asyncio.get_event_loop().create_task(self.dest_reader()))

    async def dest_reader(self):
        r = self.dest_r
        while not self.terminated:
            await self.flow.wait()
            try:
                data = await r.read(self.payload_size)
            except (ConnectionError, OSError):
                data = None
            if r is not self.dest_r:
                return     # closed by DisconnectToPort; a new reader runs after redial
            if not data:
                self.event("dest_eof")
                if self.mode == "stream":
                    await self.finish("\r\n\r\nExiting session with sessionId: %s.\r\n\r\n"
                                      % self.sid, success=data is not None)
                else:
                    self._close_dest()
                    self.need_redial = True
                return
            await self.send_stream(PT_OUTPUT, data)
            if self.pace:
                await asyncio.sleep(self.pace)

    def _close_dest(self):
        if self.dest_w is not None:
            try:
                self.dest_w.close()
            except Exception:  # noqa: BLE001
                pass
        self.dest_w = self.dest_r = None

    async def plugin_data(self, payload):
        if self.mode == "mux":
            await self.smux_input(payload)
            return
        if self.dest_w is None:
            if self.mode == "basic" and self.need_redial:
                try:
                    self.dest_r, self.dest_w = await self.dial()
                except OSError as e:
                    await self.terminate("Unable to reconnect to port: %s" % e)
                    return
                self.need_redial = False
                self.stats["redials"] += 1
                self.tasks.append(asyncio.get_event_loop().create_task(self.dest_reader()))
            else:
                return
        self.dest_w.write(payload)
        if self.dest_w.transport.get_write_buffer_size() > 256 * 1024:
            try:
                await self.dest_w.drain()
            except (ConnectionError, OSError):
                pass

    async def on_flag(self, flag):
        self.event("flag", flag=flag)
        self.stats["flag_%d" % flag] += 1
        if flag == FLAG_TERMINATE:
            await self.finish("", success=True)
        elif flag == FLAG_DISCONNECT:
            if self.mode == "basic":
                # Both ways at once: the reader stops, unsent replies are dropped.
                self._close_dest()
                self.need_redial = True
            elif self.mode == "stream":
                self._close_dest()
                await self.terminate("Session failed: connection to destination closed by "
                                     "DisconnectToPort")
        else:
            self.violation("unexpected flag %d from the client" % flag)

    # -- smux v1 server -------------------------------------------------------------------

    async def smux_input(self, payload):
        rx = self.smux_rx
        rx += payload
        pos = 0
        n = len(rx)
        while n - pos >= 8:
            ver, cmd, ln, sid = SMUX_HDR.unpack_from(rx, pos)
            if ver != 1:
                self.violation("smux version %d" % ver)
                await self.terminate("Session failed: smux protocol error (version)")
                return
            if cmd in (SMUX_SYN, SMUX_FIN, SMUX_NOP) and ln != 0:
                self.violation("smux control frame cmd %d with length %d" % (cmd, ln))
                await self.terminate("Session failed: smux protocol error (length)")
                return
            if cmd not in (SMUX_SYN, SMUX_FIN, SMUX_PSH, SMUX_NOP, SMUX_UPD):
                self.violation("smux cmd %d" % cmd)
                await self.terminate("Session failed: smux protocol error (cmd)")
                return
            if n - pos < 8 + ln:
                break
            data = bytes(rx[pos + 8:pos + 8 + ln])
            pos += 8 + ln
            self.stats["smux_frames_in"] += 1
            self.smux_last_in = time.monotonic()
            if cmd == SMUX_SYN:
                if sid not in self.streams:
                    st = MuxStream(self, sid)
                    self.streams[sid] = st
                    self.stats["smux_streams"] += 1
                    if sid % 2 == 0:
                        self.stats["smux_even_ids"] += 1
                    st.start()
            elif cmd == SMUX_PSH:
                st = self.streams.get(sid)
                if st is not None and data:
                    await st.write(data)
                else:
                    self.stats["smux_psh_unknown"] += len(data)
            elif cmd == SMUX_FIN:
                st = self.streams.get(sid)
                if st is not None:
                    st.remote_fin()
            elif cmd == SMUX_NOP:
                self.stats["smux_nop_in"] += 1
            else:
                self.stats["smux_upd_in"] += 1
        del rx[:pos]

    def smux_emit(self, cmd, sid, data=b""):
        fr = SMUX_HDR.pack(1, cmd, len(data), sid) + data
        self.smux_out.append(fr)
        self.smux_out_len += len(fr)
        self.smux_ev.set()
        if self.smux_out_len > 256 * 1024:
            self.smux_room.clear()

    async def smux_pump(self):
        """The agent reads its smux pipe payload_size bytes at a time: chunks ignore
        frame boundaries."""
        out = self.smux_out
        while not self.terminated:
            if not out:
                self.smux_ev.clear()
                await self.smux_ev.wait()
                continue
            await self.flow.wait()
            want = self.payload_size
            parts = []
            while out and want:
                fr = out[0]
                if len(fr) <= want:
                    parts.append(fr)
                    out.popleft()
                    want -= len(fr)
                else:
                    parts.append(fr[:want])
                    out[0] = fr[want:]
                    want = 0
            chunk = b"".join(parts)
            self.smux_out_len -= len(chunk)
            if self.smux_out_len <= 64 * 1024:
                self.smux_room.set()
            await self.send_stream(PT_OUTPUT, chunk)
            if self.pace:
                await asyncio.sleep(self.pace)

    async def smux_keepalive(self):
        """smux keepalive as enabled (doc 10.5): NOP every 10 s; every 30 s the session
        dies if no frame at all arrived from the client since the previous check."""
        iv = float(self.faults.get("smux_keepalive_interval_s", 10.0))
        to = float(self.faults.get("smux_keepalive_timeout_s", 30.0))
        last_check = time.monotonic()
        seen_at_check = self.smux_last_in
        next_nop = time.monotonic() + iv
        while not self.terminated:
            await asyncio.sleep(min(iv, to) / 4)
            now = time.monotonic()
            if now >= next_nop:
                self.smux_emit(SMUX_NOP, 0)
                self.stats["smux_nop_out"] += 1
                next_nop = now + iv
            if now - last_check >= to:
                if self.smux_last_in == seen_at_check:
                    self.event("smux_keepalive_timeout")
                    await self.terminate("Session failed: smux keepalive timeout (no frame "
                                         "from the client in %.0f s)" % to)
                    return
                last_check, seen_at_check = now, self.smux_last_in

    # -- end of session -------------------------------------------------------------------

    async def finish(self, output, success=True):
        """Plugin ended: wait up to 2 s for acks, then MGS sends channel_closed."""
        deadline = time.monotonic() + 2.0
        while self.unacked and time.monotonic() < deadline and self.ws is not None:
            await asyncio.sleep(0.05)
        await self.terminate(output, success)

    async def terminate(self, output, success=False):
        if self.terminated:
            return
        self.terminated = True
        self.end_reason = output
        self.event("terminated", output=output)
        log("session %s: terminated: %s" % (self.sid, output.strip()))
        self._update_flow()
        payload = json.dumps({"MessageId": str(uuid.uuid4()),
                              "CreatedDate": time.strftime("%Y-%m-%dT%H:%M:%S.000Z",
                                                           time.gmtime()),
                              "DestinationId": self.target, "SessionId": self.sid,
                              "MessageType": "channel_closed", "SchemaVersion": 1,
                              "Output": output}).encode()
        ws = self.ws
        if ws is not None:
            await self.send_control("channel_closed", payload)
            try:
                await ws.close(1000, "")
            except Exception:  # noqa: BLE001
                pass
        me = asyncio.current_task()
        for t in self.tasks:
            if t is not me:
                t.cancel()
        self._close_dest()
        for st in list(self.streams.values()):
            st.close()

    async def control(self, verb, body):
        if verb == "cut":
            if self.ws is not None:
                self.stats["cuts"] += 1
                ws = self.ws
                ws.transport.abort()
                self.detach(ws)
        elif verb == "close":
            if self.ws is not None:
                await self.ws.close(body.get("code", 1000), body.get("reason", ""))
        elif verb == "channel_closed":
            await self.terminate(body.get("output", "Session terminated."))
        elif verb == "pause":
            await self.send_control("pause_publication")
        elif verb == "start":
            await self.send_control("start_publication")
        elif verb == "faults":
            self.update_faults(body)
        else:
            return {"error": "unknown verb %s" % verb}
        return {"ok": True, "session": self.describe()}


class MuxStream:
    def __init__(self, sess, sid):
        self.sess = sess
        self.sid = sid
        self.w = None
        self.pending = []
        self.closed = False
        self.fin_sent = False
        self.task = None

    def start(self):
        self.task = asyncio.get_event_loop().create_task(self.run())
        self.sess.tasks.append(self.task)

    async def run(self):
        s = self.sess
        try:
            r, w = await s.dial()
        except OSError as e:
            s.event("mux_dial_failed", stream=self.sid, error=str(e))
            s.stats["connect_errors"] += 1
            await s.send_stream(PT_FLAG, struct.pack(">I", FLAG_CONNECT_ERROR))
            self.close()
            return
        if self.closed:
            w.close()
            return
        self.w = w
        for d in self.pending:
            w.write(d)
        self.pending = None
        while not self.closed:
            await s.flow.wait()
            await s.smux_room.wait()
            try:
                data = await r.read(SMUX_MAX_FRAME)
            except (ConnectionError, OSError):
                data = b""
            if self.closed:
                return
            if not data:
                break
            s.stats["bytes_to_client_mux"] += len(data)
            s.smux_emit(SMUX_PSH, self.sid, data)
        self.close()

    async def write(self, data):
        if self.closed:
            return
        if self.w is None:
            self.pending.append(data)
            return
        self.w.write(data)
        if self.w.transport.get_write_buffer_size() > 256 * 1024:
            self.sess.proc_at = "stream %d drain" % self.sid
            try:
                await self.w.drain()
            except (ConnectionError, OSError):
                pass

    def remote_fin(self):
        """The client's FIN: like amazon-ssm-agent, whose stream copy ends and closes
        the destination socket both ways, the destination is closed at once and
        whatever it still sends is dropped (smux v1 has no half-close)."""
        self.sess.event("mux_fin_in", stream=self.sid)
        self.close()

    def close(self):
        if not self.fin_sent and not self.sess.terminated:
            self.fin_sent = True
            self.sess.smux_emit(SMUX_FIN, self.sid)
        if self.closed:
            return
        self.closed = True
        if self.w is not None:
            try:
                self.w.close()
            except Exception:  # noqa: BLE001
                pass
        self.sess.streams.pop(self.sid, None)


# ---------------------------------------------------------------------------
# WebSocket server
# ---------------------------------------------------------------------------

PATH_RE = re.compile(r"^/v1/data-channel/([^?/]+)(?:\?(.*))?$")


async def serve(state, ssl_ctx, port):
    state.ws_log = []
    state.loop_watch = asyncio.get_running_loop().create_task(watch_loop())

    def check_sig(path, headers):
        """Returns (signed, ok, error)."""
        raw = list(headers.raw_items())
        if not any(n.lower() == "authorization" for n, _ in raw):
            return False, None, None
        try:
            res = VERIFY(state, "GET", path, raw, b"", ["ssmmessages"])
            return True, True, res.access_key
        except Exception as e:  # noqa: BLE001 (ApiError)
            return True, False, "%s: %s" % (getattr(e, "code", "?"),
                                            str(getattr(e, "message", e))[:200])

    def process_request(path, headers):
        m = PATH_RE.match(path)
        if not m:
            state.ws_log.append({"time": time.time(), "path": path, "error": "bad path"})
            return http.HTTPStatus.NOT_FOUND, [], b"not found\n"
        signed, ok, info = check_sig(path, headers)
        if signed and not ok and info.startswith("ExpiredToken"):
            # Signed with temporary credentials past their expiration: the
            # service refuses the upgrade (plugin issue 136).
            state.ws_log.append({"time": time.time(), "path": path,
                                 "error": "expired token", "detail": info})
            log("ws: rejected upgrade signed with expired credentials")
            return http.HTTPStatus.FORBIDDEN, [], \
                b"The security token included in the request is expired\n"
        if signed and not ok:
            state.ws_log.append({"time": time.time(), "path": path,
                                 "error": "bad signature", "detail": info})
            log("ws: rejected upgrade with a bad signature: %s" % info)
            return http.HTTPStatus.FORBIDDEN, [], b"signature does not match\n"
        if not signed and state.dc_faults.get("require_signed_ws"):
            state.ws_log.append({"time": time.time(), "path": path, "error": "unsigned"})
            return http.HTTPStatus.FORBIDDEN, [], b"missing authentication\n"
        return None

    async def handler(ws, path=None):
        path = ws.path
        m = PATH_RE.match(path)
        sid = urllib.parse.unquote(m.group(1))
        signed, ok, info = check_sig(path, ws.request_headers)
        entry = {"time": time.time(), "sid": sid, "path": path, "signed": signed,
                 "signed_by": info if ok else None,
                 "query": m.group(2) or "",
                 # header names (+ values of the harmless ones) the client sent
                 "headers": {n.lower(): (v if n.lower() in (
                     "host", "origin", "sec-websocket-protocol", "sec-websocket-extensions",
                     "user-agent", "x-amz-date") else "<%d chars>" % len(v))
                     for n, v in ws.request_headers.raw_items()}}
        state.ws_log.append(entry)
        try:
            first = await asyncio.wait_for(ws.recv(), 30)
        except (asyncio.TimeoutError, websockets.ConnectionClosed):
            entry["error"] = "no OpenDataChannel"
            return
        if not isinstance(first, str):
            entry["error"] = "first frame not text"
            await ws.close(1008, "expected OpenDataChannel text frame")
            return
        try:
            odc = json.loads(first)
            if not isinstance(odc, dict):
                raise ValueError
        except ValueError:
            entry["error"] = "OpenDataChannel not JSON"
            await ws.close(1008, "bad OpenDataChannel")
            return
        entry["client_version"] = odc.get("ClientVersion")
        entry["client_id"] = odc.get("ClientId")
        entry["request_id"] = odc.get("RequestId")
        entry["fields"] = sorted(odc)
        sess = state.sessions.get(sid)
        problems = []
        if odc.get("MessageSchemaVersion") != "1.0":
            problems.append("MessageSchemaVersion")
        for k in ("RequestId", "ClientId"):
            if not isinstance(odc.get(k), str) or len(odc.get(k)) < 16:
                problems.append(k)
        if "ClientInstanceId" in odc:
            problems.append("ClientInstanceId sent")
        tok = odc.get("TokenValue")
        if sess is None:
            problems.append("unknown session")
        elif sess.terminated:
            problems.append("session terminated")
        elif not isinstance(tok, str) or tok != sess.token:
            problems.append("bad token")
        elif sess.token_used:
            problems.append("token already used")
        elif time.time() - sess.token_time > sess.faults["token_ttl_s"]:
            problems.append("token expired")
        if problems:
            entry["error"] = ", ".join(problems)
            log("ws: session %s: rejected OpenDataChannel: %s" % (sid, entry["error"]))
            await ws.close(1008, "OpenDataChannel rejected")
            return
        sess.token_used = True
        entry["ok"] = True
        sess.attach(ws, {"time": entry["time"], "signed": signed,
                         "client_version": entry["client_version"],
                         "client_id": entry["client_id"], "query": entry["query"]})
        try:
            async for frame in ws:
                if sess.ws is not ws:
                    break
                if isinstance(frame, str):
                    sess.violation("text frame after OpenDataChannel")
                    continue
                while sess.inq.full():          # bounded: stop reading, like a full MGS
                    await asyncio.sleep(0.01)
                sess.on_wire(frame)
        except websockets.ConnectionClosed:
            pass
        finally:
            sess.detach(ws)

    class Protocol(websockets.WebSocketServerProtocol):
        """Counts upgrades by peer address and applies the peer rule
        (state.only_from) before anything else."""

        async def process_request(self, path, headers):
            peer = self.remote_address[0] if self.remote_address else "?"
            state.peers["ws"][peer] = state.peers["ws"].get(peer, 0) + 1
            if state.only_from and peer != state.only_from:
                state.peers["refused_ws"] += 1
                state.ws_log.append({"time": time.time(), "path": path,
                                     "error": "refused peer %s" % peer})
                log("ws: refused an upgrade from %s (only %s may connect)"
                    % (peer, state.only_from))
                return http.HTTPStatus.FORBIDDEN, [], b"not from the allowed address\n"
            return await super().process_request(path, headers)

    return await websockets.serve(handler, "127.0.0.1", port, ssl=ssl_ctx,
                                  create_protocol=Protocol,
                                  process_request=process_request, compression=None,
                                  max_size=None, max_queue=64, ping_interval=None)
