"""AuthorizedKeysCommand for the sshd harness, standing in for EC2 Instance
Connect's eic_run_authorized_keys: prints the keys fake_aws recorded for this
instance and OS user that are still inside their 60-second window.

    /usr/bin/python3 eic_keys.py EIC_KEYS_JSONL INSTANCE_ID USER [FINGERPRINT]

Every invocation is appended to EIC_KEYS_JSONL + ".calls" (sshd runs it twice per
login: once for the public-key query, once for the signed attempt)."""

import json
import sys
import time


def main():
    if len(sys.argv) < 4:
        return 1
    path, instance, user = sys.argv[1:4]
    fp = sys.argv[4] if len(sys.argv) > 4 else ""
    now = time.time()
    printed = 0
    try:
        with open(path) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("user") != user or rec.get("expires", 0) <= now:
                    continue
                if instance != "*" and rec.get("instance") != instance:
                    continue
                sys.stdout.write(rec["key"].strip() + "\n")
                printed += 1
    except OSError:
        pass
    try:
        with open(path + ".calls", "a") as f:
            f.write(json.dumps({"time": now, "user": user, "instance": instance,
                                "fingerprint": fp, "printed": printed}) + "\n")
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
