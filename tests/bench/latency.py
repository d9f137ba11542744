"""A TCP relay that puts a network's round trip between two loopback
ends: every byte waits rtt/2 before it goes on, each way, and a new
connection waits one rtt before its first byte moves (the TCP handshake
a real network charges). TLS and HTTP pass through untouched, so a TLS
handshake costs its real flights and a kept-alive connection saves them,
as on the way to AWS. tc's netem would do this in the kernel, but it is
not on every machine (this one has no sch_netem), and a relay needs no
privileges."""

import asyncio
import threading
import time


class LatencyRelay:
    """Listens on 127.0.0.1 (port from the OS) and relays to
    (host, port) with rtt seconds of round trip."""

    def __init__(self, host, port, rtt):
        self.target = (host, port)
        self.rtt = rtt
        self.loop = asyncio.new_event_loop()
        self.connections = 0
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,),
                                       daemon=True)
        self.thread.start()
        ready.wait(10)

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _pipe(self, r, w):
        """Copies r to w, each chunk rtt/2 after it arrived, in order."""
        q = asyncio.Queue()

        async def deliver():
            while True:
                due, data = await q.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    try:
                        w.write_eof()
                    except (OSError, RuntimeError):
                        pass
                    return
                w.write(data)
                try:
                    await w.drain()
                except OSError:
                    return
        task = asyncio.ensure_future(deliver())
        try:
            while True:
                data = await r.read(1 << 16)
                q.put_nowait((time.monotonic() + self.rtt / 2, data or None))
                if not data:
                    break
        except OSError:
            q.put_nowait((time.monotonic(), None))
        await task

    async def _client(self, cr, cw):
        self.connections += 1
        await asyncio.sleep(self.rtt)  # SYN, SYN-ACK
        try:
            ur, uw = await asyncio.open_connection(*self.target)
        except OSError:
            cw.close()
            return
        await asyncio.gather(self._pipe(cr, uw), self._pipe(ur, cw),
                             return_exceptions=True)
        for w in (cw, uw):
            w.close()

    async def _shutdown(self):
        self.server.close()
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.loop.stop()

    def close(self):
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop)
        self.thread.join(5)
