"""What the helpers that run a real child process share (fakeaws.FakeAws,
sshd.Sshd): a loopback port from the OS, and the lifecycle of a `with`
block, start() on entering it and stop() on leaving it."""

import socket
import subprocess


def free_port():
    """A loopback port that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Child:
    """A subclass's start() sets self.proc (a Popen) and self.errfile (the
    file its stderr goes to) and returns self."""

    proc = None
    stop_wait_s = 10  # after SIGTERM, before SIGKILL

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(self.stop_wait_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.errfile.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
