#!/usr/bin/python3
"""systemd's view of a cluster node (issue 10, Type=notify): with NOTIFY_SOCKET pointing at a
datagram socket bound here (as systemd does), each node of a three-node cluster sends READY=1
and keeps a STATUS= line naming its role, its leader and the epoch, the same as its /.status;
when the leader stops it says STOPPING=1, and the follower that takes over says it leads, at the
new epoch, while the other names it. STATUS= is sent on a change only, a few per second at most.
Against a one-server ZooKeeper (what is tested is the node's side). The standalone side (READY=1
only once /.status answers, MAINPID=, the abstract socket) is tests/fs/test_notify.sh.

Usage: test_notify.py KVFS_BIN        (run by `meson test --suite cluster`)
"""

import os
import re
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

STATUS_RE = re.compile(r"^role: (\w+), leader: (\w+), epoch: (\d+)")


class Listener:
    """systemd's end of NOTIFY_SOCKET: a bound datagram socket and a thread that keeps every
    message as (monotonic time, sender pid, {KEY: VALUE})."""

    def __init__(self, path):
        self.path = path
        self.msgs = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        size = struct.calcsize("3i")
        while self.running:
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(size))
            except socket.timeout:
                continue
            except OSError:
                return
            pid = -1
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("3i", cdata[:size])[0]
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            with self.lock:
                self.msgs.append((time.monotonic(), pid, fields))

    def messages(self):
        with self.lock:
            return list(self.msgs)

    def with_key(self, key):
        return [m for m in self.messages() if key in m[2]]

    def last_status(self):
        st = self.with_key("STATUS")
        return st[-1][2]["STATUS"] if st else None

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


def status_matches(node, listener):
    """The node's /.status and its last STATUS= agree on role, leader and epoch: returns that
    STATUS= text, else None."""
    st = node.status()
    text = listener.last_status()
    m = STATUS_RE.match(text or "")
    if not st or not m:
        return None
    return text if m.groups() == (st.get("role"), st.get("leader"), st.get("epoch")) else None


def test_status_names_role(h):
    """READY=1 and STATUS= with role, leader and epoch from every node; STOPPING=1 and a new
    STATUS= when the leader stops."""
    h.ensemble(n=1)
    nodes = h.nodes(h.cluster_name("notify"), 3)
    listeners = {}
    try:
        for n in nodes:
            listeners[n.id] = Listener(os.path.join(h.tmp, "notify-%d.sock" % n.id))
            n.env["NOTIFY_SOCKET"] = listeners[n.id].path
        for n in nodes:
            n.start()
        t_started = time.monotonic()
        leader, epoch = harness.settle(h, nodes)
        for n in nodes:
            ready = listeners[n.id].with_key("READY")
            h.check(len(ready) == 1 and ready[0][1] == n.pid and
                    ready[0][2].get("READY") == "1",
                    "%s sent READY=1 once, from its own pid" % n.name,
                    [m[1:] for m in listeners[n.id].messages()])
        for n in nodes:
            text = h.last if h.wait_for(lambda n=n: status_matches(n, listeners[n.id]), 5) else None
            want = "leader" if n is leader else "follower"
            h.check(text is not None and text.startswith("role: %s, leader: %d, epoch: %d" %
                                                         (want, leader.id, epoch)),
                    "%s's STATUS= names its role (%s), the leader and the epoch, as its /.status"
                    % (n.name, want),
                    "last STATUS=%r, /.status %s" % (listeners[n.id].last_status(),
                                                      harness.view_str({n.id: n.status()})))

        leader.stop()
        h.check(any(m[2].get("STOPPING") == "1" for m in listeners[leader.id].messages()),
                "the stopped leader %s said STOPPING=1" % leader.name,
                [m[1:] for m in listeners[leader.id].messages()])
        rest = [n for n in nodes if n is not leader]
        new_leader, new_epoch = harness.settle(h, rest, timeout=20,
                                               what="a new leader that both others name")
        h.check(new_epoch > epoch, "the new epoch %d is above %d" % (new_epoch, epoch))
        for n in rest:
            want = "leader" if n is new_leader else "follower"
            text = h.last if h.wait_for(lambda n=n: status_matches(n, listeners[n.id]), 5) else None
            h.check(text is not None and text.startswith("role: %s, leader: %d, epoch: %d" %
                                                         (want, new_leader.id, new_epoch)),
                    "then %s's STATUS= says %s, leader %d at epoch %d" %
                    (n.name, want, new_leader.id, new_epoch),
                    "last STATUS=%r" % listeners[n.id].last_status())

        elapsed = time.monotonic() - t_started
        for n in nodes:
            sts = [m[2]["STATUS"] for m in listeners[n.id].with_key("STATUS")]
            repeats = sum(1 for a, b in zip(sts, sts[1:]) if a == b)
            h.check(repeats == 0 and len(sts) <= 4 * (elapsed + 1),
                    "%s sent STATUS= only on a change (%d in %.1f s)" % (n.name, len(sts),
                                                                          elapsed), sts)
        h.log("STATUS= lines: %s" % {n.name: [m[2].get("STATUS") for m in
                                              listeners[n.id].with_key("STATUS")]
                                     for n in nodes})
    finally:
        for l in listeners.values():
            l.close()


if __name__ == "__main__":
    harness.main([test_status_names_role])
