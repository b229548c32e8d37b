#!/usr/bin/python3
"""Plays systemd's side of sd_notify(3) for test_notify.sh: binds a datagram socket at ADDRESS (a
path, or @name in the abstract namespace), receives notifications until SIGTERM and appends one
line per datagram to OUT:

    <sender pid> <message, its newlines shown as |> <check>

<check> is what a service manager relying on READY=1 would find at that moment: for a datagram
with READY=1 and a MOUNTPOINT given, "status=ok" when MOUNTPOINT/.status could be read within 2 s
and starts with "node: ", else "status=FAIL(<why>)"; "-" otherwise. The sender's pid comes from
SCM_CREDENTIALS (SO_PASSCRED), as systemd gets it. Prints "listening" once bound.

Usage: notify_listen.py ADDRESS OUT [MOUNTPOINT]
"""

import os
import signal
import socket
import struct
import sys
import threading


def read_status(mnt):
    """Reads MNT/.status in a thread (a hung mount must not hang us)."""
    box = {}

    def run():
        try:
            with open(os.path.join(mnt, ".status"), "rb") as f:
                box["text"] = f.read().decode(errors="replace")
        except OSError as e:
            box["err"] = e.strerror or str(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(2.0)
    if "text" in box:
        return "status=ok" if box["text"].startswith("node: ") else "status=FAIL(bad-text)"
    return "status=FAIL(%s)" % box.get("err", "timeout").replace(" ", "-")


def main():
    if len(sys.argv) not in (3, 4):
        sys.stderr.write(__doc__)
        return 2
    addr, out = sys.argv[1], sys.argv[2]
    mnt = sys.argv[3] if len(sys.argv) == 4 else None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    s.bind("\0" + addr[1:] if addr.startswith("@") else addr)
    print("listening", flush=True)
    cred_size = struct.calcsize("3i")
    while True:
        msg, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(cred_size))
        pid = -1
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("3i", data[:cred_size])[0]
        text = msg.decode(errors="replace")
        check = "-"
        if mnt and "READY=1" in text.split("\n"):
            check = read_status(mnt)
        with open(out, "a") as f:
            f.write("%d %s %s\n" % (pid, text.rstrip("\n").replace("\n", "|"), check))


if __name__ == "__main__":
    sys.exit(main())
