#!/usr/bin/python3
"""Promises kept under faults (issue #8), against a real three-server ZooKeeper ensemble and three
kvfs nodes on real FUSE mounts (see harness.py):

- every descriptor's close() reports the outcome of the commit that carries its bytes: with no
  majority, closing a dup()ed descriptor and then the original gives EIO on both, for O_APPEND
  and for plain writes; with a majority, both return 0 and the bytes are there;
- a read returns one committed value whole: a reader on one node never sees another node's new
  value cut to the old value's length or padded with NUL, in one read() or in a read-until-EOF;
- a restarted node never answers reads from a state older than what it acknowledged before it was
  killed, and its /.status does not claim lag 0 before it has heard its leader.

Usage: test_promises.py KVFS_BIN        (run by `meson test --suite cluster`)
"""

import errno
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import parse_status, st_int  # noqa: E402
from test_replication import three_nodes, wait_caught_up, write_file  # noqa: E402


def close_fd(fd):
    """close(fd): 0 or the errno, and how long it took in ms."""
    t0 = time.monotonic()
    try:
        os.close(fd)
        rv = 0
    except OSError as e:
        rv = e.errno or errno.EIO
    return rv, (time.monotonic() - t0) * 1000


def dup_close(path, flags, data):
    """Opens PATH, writes DATA, dup()s the descriptor, closes the duplicate in a thread and the
    original 0.3 s later. Returns ((rv, ms) of the duplicate, (rv, ms) of the original)."""
    fd = os.open(path, flags)
    os.write(fd, data)
    fd2 = os.dup(fd)
    got = {}
    t = threading.Thread(target=lambda: got.setdefault("dup", close_fd(fd2)), daemon=True)
    t.start()
    time.sleep(0.3)
    orig = close_fd(fd)
    t.join(30)
    return got.get("dup", (None, 0)), orig


def test_dup_close_reports_commit_outcome(h):
    """Two descriptors of one open file: each close() reports the commit that carries the bytes.
    """
    nodes, leader, epoch = three_nodes(h, "dup", extra=["--write-timeout", "2000"])
    app = os.path.join(leader.mnt, "appended")
    plain = os.path.join(leader.mnt, "plain")
    h.require(write_file(app, b"start\n") == 0 and write_file(plain, b"start\n") == 0,
              "the files are created")

    # With a majority: both closes succeed and the bytes are there, once.
    d, o = dup_close(app, os.O_WRONLY | os.O_APPEND, b"one\n")
    h.check(d[0] == 0 and o[0] == 0, "with a majority, both descriptors' close() return 0",
            "duplicate %s, original %s" % (d, o))
    h.check(harness.read_file_timeout(app, 3)[0] == b"start\none\n",
            "the append is there once", repr(harness.read_file_timeout(app, 3)[0]))

    rest = [n for n in nodes if n is not leader]
    for n in rest:
        n.stop()
    for path, flags, what in ((app, os.O_WRONLY | os.O_APPEND, "O_APPEND"),
                              (plain, os.O_WRONLY | os.O_TRUNC, "plain write")):
        d, o = dup_close(path, flags, b"never committed\n")
        h.log("%s with no majority: duplicate's close %s after %d ms, original's %s after %d ms"
              % (what, d[0] is not None and os.strerror(d[0]), d[1], os.strerror(o[0]), o[1]))
        h.check(d[0] == errno.EIO, "%s, no majority: the duplicate's close() fails with EIO"
                % what, "got %s" % (d[0] is not None and os.strerror(d[0])))
        h.check(o[0] == errno.EIO,
                "%s, no majority: the original's close() fails with EIO too, never 0 for bytes "
                "that were not committed" % what, "got %s after %d ms" % (os.strerror(o[0]), o[1]))
    # A child closes its inherited copy first and hears EIO; the owner's close comes after the
    # commit failed, with nothing left to commit: it must hear EIO too, not 0.
    for path, flags, what in ((app, os.O_WRONLY | os.O_APPEND, "O_APPEND"),
                              (plain, os.O_WRONLY | os.O_TRUNC, "plain write")):
        fd = os.open(path, flags)
        os.write(fd, b"never committed either\n")
        d = close_fd(os.dup(fd))
        o = close_fd(fd)
        h.log("%s, no majority, one close after the other: %s after %d ms, then %s after %d ms"
              % (what, os.strerror(d[0]), d[1], os.strerror(o[0]), o[1]))
        h.check(d[0] == errno.EIO and o[0] == errno.EIO,
                "%s, no majority: a close after another descriptor's failed close reports EIO "
                "too" % what, "first %s, then %s" % (os.strerror(d[0]), os.strerror(o[0])))
    for n in rest:
        n.start()
    wait_caught_up(h, nodes, 30)


def self_checking_value(length, fill):
    """LENGTH bytes: the length in 8 digits, then FILL repeated."""
    return (b"%08d" % length) + bytes([fill]) * (length - 8)


def whole(data):
    """Whether DATA is one value of self_checking_value, whole."""
    if len(data) < 8 or not data[:8].isdigit() or int(data[:8]) != len(data):
        return False
    body = data[8:]
    return body == bytes([body[0]]) * len(body) if body else True


def test_reads_are_whole(h):
    """Readers on one node while two other nodes replace a value with longer and shorter ones:
    every read() returns one committed value whole, and so does every read until EOF."""
    nodes, leader, epoch = three_nodes(h, "whole")
    reader, w1, w2 = nodes[0], nodes[1], nodes[2]
    name = "flip"
    h.require(write_file(os.path.join(w1.mnt, name), self_checking_value(100, 65)) == 0,
              "the file is created")
    wait_caught_up(h, nodes, 20)
    stop = threading.Event()
    bad = []
    counts = {"single": 0, "chunked": 0, "writes": 0}
    lengths = (100, 4000, 9000, 30000, 1500)

    def writer(node, seed):
        i = seed
        while not stop.is_set():
            v = self_checking_value(lengths[i % len(lengths)], 65 + i % 26)
            if write_file(os.path.join(node.mnt, name), v) == 0:
                counts["writes"] += 1
            i += 1

    def single_reads(path):
        while not stop.is_set():
            fd = os.open(path, os.O_RDONLY)
            try:
                data = os.read(fd, 1 << 20)
            finally:
                os.close(fd)
            counts["single"] += 1
            if not whole(data):
                bad.append("one read() returned %d bytes starting %r" % (len(data), data[:12]))

    def chunked_reads(path):
        while not stop.is_set():
            parts = []
            fd = os.open(path, os.O_RDONLY)
            try:
                while True:
                    b = os.read(fd, 4096)
                    if not b:
                        break
                    parts.append(b)
            finally:
                os.close(fd)
            data = b"".join(parts)
            counts["chunked"] += 1
            if not whole(data):
                bad.append("reads until EOF returned %d bytes starting %r" % (len(data),
                                                                              data[:12]))

    path = os.path.join(reader.mnt, name)
    threads = [threading.Thread(target=writer, args=(w1, 0), daemon=True),
               threading.Thread(target=writer, args=(w2, 2), daemon=True),
               threading.Thread(target=single_reads, args=(path,), daemon=True),
               threading.Thread(target=single_reads, args=(path,), daemon=True),
               threading.Thread(target=chunked_reads, args=(path,), daemon=True)]
    for t in threads:
        t.start()
    time.sleep(12)
    stop.set()
    for t in threads:
        t.join(15)
    h.log("whole reads: %d single read()s, %d reads until EOF, %d writes from two other nodes, "
          "%d not whole" % (counts["single"], counts["chunked"], counts["writes"], len(bad)))
    h.check(counts["writes"] > 100 and counts["single"] > 1000,
            "the value changed often while it was read", str(counts))
    h.check(not bad, "every read returned one committed value whole", "\n".join(bad[:10]))


def read_with_timeout(path, timeout):
    """(bytes or None, errno or None) of reading PATH, without blocking the test past TIMEOUT."""
    data, err = harness.read_file_timeout(path, timeout)
    return data, (err.errno or errno.EIO) if err else None


def test_restart_serves_no_older_state(h):
    """A follower killed -9 after acknowledging writes and restarted while its leader is stopped:
    until it has heard a leader, /.status says it does not know its lag, and no read answers
    from a state older than what it acknowledged (a missing file, an old value)."""
    nodes, leader, epoch = three_nodes(
        h, "restart", session_timeout=3000,
        extra=["--snapshot-bytes", "65536", "--write-timeout", "20000"])
    f = [n for n in nodes if n is not leader][0]
    names = ["k%03d" % i for i in range(150)]
    for i, name in enumerate(names):
        h.require(write_file(os.path.join(f.mnt, name), b"old %d\n" % i + b"x" * 600) == 0,
                  "write %s through %s" % (name, f.name))
    for i, name in enumerate(names):
        h.require(write_file(os.path.join(f.mnt, name), b"new %d\n" % i) == 0,
                  "overwrite %s through %s" % (name, f.name))
    f.kill9()
    leader.sigstop()
    try:
        f.start()
        st = f.status()
        h.log("%s after its restart, leader stopped: %s" % (f.name, st and {
            k: st.get(k) for k in ("role", "commit_index", "applied_index", "lag_entries",
                                   "lag_ms", "catching_up")}))
        h.check(st is not None and st.get("lag_entries") == "-1" and
                st.get("catching_up") == "yes",
                "before it has heard a leader, the restarted node shows lag_entries: -1 and "
                "catching_up: yes", str(st))
        stale = []
        served = 0
        t0 = time.monotonic()
        for i, name in enumerate(names[::10]):
            data, err = read_with_timeout(os.path.join(f.mnt, name), 25)
            idx = names.index(name)
            if data is not None:
                served += 1
                if data != b"new %d\n" % idx:
                    stale.append("%s: %r" % (name, data[:20]))
            elif err != errno.EIO:
                stale.append("%s: %s" % (name, os.strerror(err) if err else "no answer"))
        h.log("%d reads on the restarted node answered in %d ms (leader stopped)" %
              (served, (time.monotonic() - t0) * 1000))
        h.check(not stale, "no read on the restarted node answers from a state older than what "
                "it acknowledged", "\n".join(stale[:10]))
    finally:
        leader.sigcont()
    wait_caught_up(h, nodes, 30)
    st = parse_status(harness.read_file_timeout(os.path.join(f.mnt, ".status"), 3)[0].decode())
    h.check(st.get("catching_up") == "no" and st_int(st, "lag_entries") == 0,
            "once caught up, catching_up: no and lag_entries: 0", str(st))
    wrong = [n for i, n in enumerate(names)
             if harness.read_file_timeout(os.path.join(f.mnt, n), 3)[0] != b"new %d\n" % i]
    h.check(not wrong, "every acknowledged value is read on the restarted node", str(wrong[:10]))


if __name__ == "__main__":
    harness.main([
        test_dup_close_reports_commit_outcome,
        test_reads_are_whole,
        test_restart_serves_no_older_state,
    ])
