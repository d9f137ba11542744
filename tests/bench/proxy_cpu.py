"""Runs a ProxyCommand and writes its CPU seconds (user,sys) to a file
when it ends: proxy_cpu.py OUT CMD [ARG...]. ssh sends its ProxyCommand
SIGHUP at exit, which would kill GNU time before it writes; this wrapper
ignores it (so does the command: the bench's relays end on their own when
the tunnel closes) and waits."""

import os
import resource
import signal
import subprocess
import sys

signal.signal(signal.SIGHUP, signal.SIG_IGN)
out = sys.argv[1]
rc = subprocess.call(sys.argv[2:])
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(out + ".tmp", "w") as f:
    f.write("%f,%f\n" % (ru.ru_utime, ru.ru_stime))
os.rename(out + ".tmp", out)
sys.exit(rc)
