"""A real OpenSSH sshd on 127.0.0.1 for end-to-end tests.

    from sshd import Sshd
    with Sshd(fake.state_dir, instance_id="i-0123...") as sd:   # EIC mode
        sd.port, sd.user, sd.known_hosts        # user = the current OS user
        sd.ssh(private_key_path, "echo", "hi")  # CompletedProcess

Modes:
  * EIC (default): AuthorizedKeysFile none; AuthorizedKeysCommand prints the keys
    fake_aws recorded via SendSSHPublicKey for (instance_id, %u) in the last 60 s
    (fake state dir file eic_keys.jsonl; pass instance_id="*" for any instance).
  * fixed key: Sshd(None, authorized_keys="ssh-ed25519 AAAA...") for mi- targets
    that use the user's own key (AuthorizedKeysFile = a generated file).

Works as root (PermitRootLogin yes; /run/sshd is created if missing) and as a
normal user (sshd then only lets that same user in). The AuthorizedKeysCommand is
"/usr/bin/python3 .../eic_keys.py": sshd only checks ownership/permissions of the
program path (root-owned /usr/bin/python3), so the script may live in a checkout.
"""

import getpass
import os
import subprocess
import tempfile
import time

from child import Child, free_port

HERE = os.path.dirname(os.path.abspath(__file__))
SSHD = "/usr/sbin/sshd"


class Sshd(Child):
    stop_wait_s = 5

    def __init__(self, fake_state_dir=None, instance_id="*", authorized_keys=None,
                 extra_config=""):
        self.user = getpass.getuser()
        self.dir = tempfile.mkdtemp(prefix="fake-sshd-")
        os.chmod(self.dir, 0o755)
        self.hostkey = os.path.join(self.dir, "host_ed25519")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.hostkey],
                       check=True)
        self.eic_path = os.path.join(fake_state_dir, "eic_keys.jsonl") if fake_state_dir \
            else None
        self.instance_id = instance_id
        lines = ["ListenAddress 127.0.0.1", "HostKey %s" % self.hostkey,
                 "PidFile none", "UsePAM no", "PasswordAuthentication no",
                 "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
                 "PermitRootLogin yes", "StrictModes no", "LogLevel VERBOSE",
                 "MaxStartups 100:30:200", "Subsystem sftp internal-sftp",
                 "AllowTcpForwarding yes", "PrintMotd no"]
        if authorized_keys is not None:
            ak = os.path.join(self.dir, "authorized_keys")
            with open(ak, "w") as f:
                f.write(authorized_keys.strip() + "\n")
            os.chmod(ak, 0o600)
            lines.append("AuthorizedKeysFile %s" % ak)
        else:
            if not self.eic_path:
                raise ValueError("EIC mode needs the fake's state dir")
            lines += ["AuthorizedKeysFile none",
                      "AuthorizedKeysCommand /usr/bin/python3 %s %s %s %%u %%f"
                      % (os.path.join(HERE, "eic_keys.py"), self.eic_path, instance_id),
                      "AuthorizedKeysCommandUser %s" % self.user]
        self.extra_config = extra_config
        self.lines = lines
        self.proc = None
        self.port = None

    def start(self, timeout=15.0):
        if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
            os.makedirs("/run/sshd", 0o755, exist_ok=True)
        for attempt in range(5):
            self.port = free_port()
            cfg = os.path.join(self.dir, "sshd_config")
            with open(cfg, "w") as f:
                f.write("Port %d\n" % self.port + "\n".join(self.lines) + "\n" +
                        self.extra_config + "\n")
            self.errpath = os.path.join(self.dir, "sshd.log")
            self.errfile = open(self.errpath, "wb")
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", cfg],
                                         stdin=subprocess.DEVNULL, stdout=self.errfile,
                                         stderr=self.errfile)
            deadline = time.time() + timeout
            while time.time() < deadline:
                if "Server listening on 127.0.0.1 port %d" % self.port in self.log():
                    break
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
            if self.proc.poll() is None and "Server listening" in self.log():
                break
            self.stop()
            if "Address already in use" not in self.log():
                raise RuntimeError("sshd did not start:\n" + self.log())
        with open(self.hostkey + ".pub") as f:
            pub = " ".join(f.read().split()[:2])
        self.known_hosts = os.path.join(self.dir, "known_hosts")
        with open(self.known_hosts, "w") as f:
            f.write("[127.0.0.1]:%d %s\n" % (self.port, pub))
        return self

    def log(self):
        try:
            with open(self.errpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def eic_calls(self):
        """AuthorizedKeysCommand invocations (two per login)."""
        import json
        try:
            with open(self.eic_path + ".calls") as f:
                return [json.loads(x) for x in f if x.strip()]
        except (OSError, TypeError):
            return []

    def ssh_argv(self, key, *cmd):
        return ["ssh", "-F", "/dev/null", "-i", key, "-o", "IdentitiesOnly=yes",
                "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
                "-o", "UserKnownHostsFile=%s" % self.known_hosts,
                "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10",
                "-p", str(self.port), "%s@127.0.0.1" % self.user] + list(cmd)

    def ssh(self, key, *cmd, timeout=30):
        return subprocess.run(self.ssh_argv(key, *cmd), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
