#!/usr/bin/python3
"""The change feed across a cluster (issue 13): a watcher reading node 3's /.changes sees every
change made on nodes 1 and 2, in commit order, none missed and none twice, across a kill -9 of
the leader and a restart of node 3 (resuming with /.changes@INDEX after the last index it saw);
its lines are exactly the lines every other node's feed gives for the same indices. Node 3, down
while the others snapshot and compact their logs, installs a snapshot when it comes back: its
history then starts after it (ERANGE below, never a silent gap) while node 2's still has those
changes. Also which
inotify events a watcher on one node's mount gets for changes made on another node (the table
the README gives), and the feed's latency, commit time (the leader's time stamp) to the line
read on node 3, p50/p99. One cluster for everything (about 7 s once ZooKeeper is up).

Usage: test_changes.py KVFS_BIN        (run by `meson test --suite cluster`)
"""

import errno
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import settle, st_int, start_in_order, statuses  # noqa: E402

INOTIFYWAIT = shutil.which("inotifywait")
# Snapshots (and log compaction) after 64 KiB of log: the last part makes node 3 install one.
SMALL = ["--snapshot-bytes", "65536", "--segment-bytes", "32768"]


class Feed:
    """Reads NODE's /.changes@START (opened here, so an error shows at once) in a thread and keeps
    each line's fields with the time it was read."""

    def __init__(self, node, start):
        self.lines = []  # (fields, line, time_ns read)
        self.error = None
        self.lock = threading.Lock()
        self.fd = os.open(os.path.join(node.mnt, ".changes@%d" % start), os.O_RDONLY)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        buf = b""
        while True:
            try:
                got = os.read(self.fd, 65536)
            except OSError as e:
                self.error = e
                break
            if not got:
                break
            now = time.time_ns()
            buf += got
            *done, buf = buf.split(b"\n")
            with self.lock:
                for line in done:
                    self.lines.append((line.decode().split(" "), line, now))
        os.close(self.fd)

    def snapshot(self):
        with self.lock:
            return list(self.lines)

    def last_index(self):
        lines = self.snapshot()
        return int(lines[-1][0][0]) if lines else 0


def feed_now(node, start):
    """The lines NODE's feed holds from START on, read with O_NONBLOCK until EAGAIN."""
    fd = os.open(os.path.join(node.mnt, ".changes@%d" % start), os.O_RDONLY | os.O_NONBLOCK)
    out = b""
    try:
        while True:
            try:
                got = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not got:
                break
            out += got
    finally:
        os.close(fd)
    return [l for l in out.split(b"\n") if l]


def write_file(h, node, path, data, timeout=15):
    """Writes DATA to PATH on NODE's mount, retrying while a failover makes it fail (EIO)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(os.path.join(node.mnt, path), "w") as f:
                f.write(data)
            return
        except OSError as e:
            if e.errno not in (errno.EIO, errno.ENOTCONN) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def wait_index(h, feed, index, timeout=15):
    return h.wait_for(lambda: feed.last_index() >= index, timeout)


def applied(node):
    st = node.status()
    return st_int(st, "applied_index") if st else 0


def inotify_table(h, src, dst):
    """Makes changes under d/ on SRC's mount and records which inotify events inotifywait,
    watching d/ and each file and directory in it on DST's mount (whose kernel has looked every
    name up first, as `ls -l` would), reports for each. Returns {operation: sorted events}, an
    event of the watched entry itself written as EVENT@self, of the directory as EVENT."""
    d_src = os.path.join(src.mnt, "d")
    d_dst = os.path.join(dst.mnt, "d")
    os.mkdir(d_src)
    for name in ("f", "mv_me", "gone"):
        write_file(h, src, "d/" + name, "one\n")
    os.mkdir(os.path.join(d_src, "sub"))
    h.wait_for(lambda: os.path.exists(os.path.join(d_dst, "sub")), 10)
    watched = [d_dst] + [os.path.join(d_dst, n) for n in ("f", "mv_me", "gone", "sub")]
    # Not open/access/close: those are the listing's own (lookups below).
    proc = subprocess.Popen([INOTIFYWAIT, "-m", "--format", "%e %w|%f", "-e",
                             "create,modify,attrib,close_write,moved_from,moved_to,move_self,"
                             "delete,delete_self"] + watched,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    events = []
    lock = threading.Lock()

    def reader():
        for line in proc.stdout:
            ev, where = line.rstrip("\n").split(" ", 1)
            self_ = where.split("|")[1] == ""
            with lock:
                events.extend(e + ("@self" if self_ and where.split("|")[0] != d_dst else "")
                              for e in ev.split(","))
    t = threading.Thread(target=reader, daemon=True)
    try:
        # "Setting up watches." and "Watches established." on stderr.
        proc.stderr.readline()
        proc.stderr.readline()
        t.start()
        ops = [
            ("create", lambda: open(os.path.join(d_src, "new"), "x").close()),
            ("write", lambda: write_file(h, src, "d/f", "two\n")),
            ("append", lambda: open(os.path.join(d_src, "f"), "a").write("more\n")),
            ("chmod", lambda: os.chmod(os.path.join(d_src, "f"), 0o600)),
            ("touch", lambda: os.utime(os.path.join(d_src, "f"))),
            ("rename", lambda: os.rename(os.path.join(d_src, "mv_me"),
                                         os.path.join(d_src, "moved"))),
            ("unlink", lambda: os.unlink(os.path.join(d_src, "gone"))),
            ("mkdir", lambda: os.mkdir(os.path.join(d_src, "sub2"))),
            ("rmdir", lambda: os.rmdir(os.path.join(d_src, "sub"))),
        ]
        table = {}
        for name, op in ops:
            for n in os.listdir(d_dst):  # the names in DST's dentry cache
                os.lstat(os.path.join(d_dst, n))
            with lock:
                events.clear()
            op()
            target = applied(src)
            h.wait_for(lambda: applied(dst) >= target, 10)
            time.sleep(0.3)  # the invalidation thread's notices, then inotifywait's output
            with lock:
                table[name] = sorted(set(events))
        return table
    finally:
        proc.terminate()
        proc.wait(5)


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def test_changes(h):
    cluster = h.cluster_name("changes")
    zk = h.zk_client()
    nodes = h.nodes(cluster, 3, session_timeout=4000, extra=SMALL)
    start_in_order(h, nodes, zk)
    leader, epoch = settle(h, nodes)
    n1, n2, n3 = nodes
    h.require(leader is n1, "node 1 leads (started first)")
    st = n3.status()
    h.check("changes_first" in st and "changes_last" in st,
            "/.status shows changes_first and changes_last", str(st))

    # inotify on node 2 for changes made on node 1.
    if INOTIFYWAIT:
        table = inotify_table(h, n1, n2)
        for op, ev in table.items():
            h.log("inotify on another node for a remote %-6s: %s" % (op, " ".join(ev) or "-"))
        want = {"create": [], "write": [], "append": [], "chmod": [], "touch": [],
                "rename": [], "unlink": ["DELETE_SELF@self"], "mkdir": [],
                "rmdir": ["DELETE_SELF@self"]}
        h.check(table == want, "inotify events for remote changes are those the README lists",
                "got %s, want %s" % (table, want))
    else:
        h.check(False, "inotifywait is installed (inotify-tools, scripts/install-deps.sh)")

    start = applied(n3) + 1
    watcher = Feed(n3, start)
    expect = []  # (node, path) of every write, in the order made
    for i in range(40):
        src = n1 if i % 2 == 0 else n2
        path = "w%d-%d" % (src.id, i)
        write_file(h, src, path, "x" * (i + 1))
        expect.append(path)
    # The leader dies; the writes go on on node 2.
    h.log("kill -9 of the leader %s" % n1.name)
    n1.kill9()
    for i in range(40, 60):
        path = "w2-%d" % i
        write_file(h, n2, path, "y")
        expect.append(path)
    settle(h, [n2, n3])
    target = applied(n2)
    h.check(wait_index(h, watcher, target), "the watcher on node 3 reaches index %d" % target)
    n1.start()
    # Node 3 restarts; the watcher resumes after the last index it saw.
    seen = watcher.snapshot()
    last = watcher.last_index()
    h.log("restart of %s; its watcher saw up to index %d" % (n3.name, last))
    n3.stop()
    watcher.thread.join(10)
    for i in range(60, 70):
        path = "w2-%d" % i
        write_file(h, n2, path, "z")
        expect.append(path)
    n3.start()
    try:
        watcher2 = Feed(n3, last + 1)
    except OSError as e:
        h.require(False, "node 3's feed reopens at %d after its restart" % (last + 1), str(e))
    for i in range(70, 80):
        path = "w1-%d" % i
        write_file(h, n1, path, "w")
        expect.append(path)
    target = applied(n1)
    h.check(wait_index(h, watcher2, target), "the resumed watcher reaches index %d" % target)
    lines = seen + watcher2.snapshot()
    idx = [int(f[0]) for f, _, _ in lines]
    h.check(idx == sorted(set(idx)), "commit order, none twice (%d lines)" % len(idx),
            str(idx[:80]))
    puts = [f[6][1:] for f, _, _ in lines if f[3] == "put"]
    h.check(puts == expect, "every write, once, in the order made (%d)" % len(expect),
            "missing %s, extra %s" % (sorted(set(expect) - set(puts)),
                                      sorted(set(puts) - set(expect))))
    # What node 2's own feed says for the same indices, line for line.
    other = [l for l in feed_now(n2, start) if int(l.split(b" ")[0]) <= idx[-1]]
    h.check(other == [l for _, l, _ in lines], "node 2's feed gives the same lines",
            "%d vs %d lines" % (len(other), len(lines)))
    # Latency: the leader's time stamp of each put to the line read on node 3 (same machine).
    lat = [(t - int(f[2].replace(".", ""))) / 1e6 for f, _, t in seen if f[3] == "put"]
    if lat:
        h.log("feed latency (commit time stamp to line on node 3) over %d puts: p50 %.2f ms, "
              "p99 %.2f ms, max %.2f ms" % (len(lat), pct(lat, 50), pct(lat, 99), max(lat)))
        print("feed latency: p50 %.2f ms p99 %.2f ms (n=%d)" % (pct(lat, 50), pct(lat, 99),
                                                               len(lat)))
    # Node 3, down while the others write enough to snapshot and compact their logs, installs a
    # snapshot when it comes back: its history starts after it (ERANGE for the indices it
    # stands for, never a silent gap), while node 2 still has those changes in memory.
    resume = idx[-1] + 1
    n3.stop()
    for k in range(100):
        write_file(h, n2, "fill%03d" % k, "s" * 3000)
    target = applied(n2)
    h.check(h.wait_for(lambda: st_int(n2.status(), "snapshot_index") > resume, 20),
            "node 2 took a snapshot past index %d" % resume)
    n3.start()
    h.check(h.wait_for(lambda: applied(n3) >= target, 20), "node 3 caught up")
    h.check("installed the snapshot" in n3.output(), "node 3 installed a snapshot")
    first3 = st_int(n3.status(), "changes_first")
    h.check(first3 > resume, "node 3's history starts after the snapshot (changes_first %d)"
            % first3)
    try:
        os.close(os.open(os.path.join(n3.mnt, ".changes@%d" % resume), os.O_RDONLY))
        h.check(False, "node 3: /.changes@%d fails with ERANGE" % resume)
    except OSError as e:
        h.check(e.errno == errno.ERANGE, "node 3: /.changes@%d fails with ERANGE" % resume,
                str(e))
    fills = [l for l in feed_now(n2, resume) if b" put " in l and b" /fill" in l]
    h.check(len(fills) == 100, "node 2's feed still gives them (%d puts)" % len(fills))
    # Index 0 never is in any history.
    try:
        os.close(os.open(os.path.join(n3.mnt, ".changes@0"), os.O_RDONLY))
        h.check(False, "/.changes@0 fails with ERANGE")
    except OSError as e:
        h.check(e.errno == errno.ERANGE, "/.changes@0 fails with ERANGE", str(e))
    zk.stop()


if __name__ == "__main__":
    harness.main([test_changes])
