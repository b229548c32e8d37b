#!/usr/bin/python3
"""Replication (issue #4), against a real three-server ZooKeeper ensemble and three kvfs nodes on
real FUSE mounts (see harness.py): a write on a follower is read on every node; writers on all
three mounts while the leader is killed with -9 (every write whose close() returned 0 is on every
replica afterwards, and the replicas are identical); appends and mkdir/O_EXCL races from three
nodes at once; a follower restarted after many writes catches up from the log; /.status shows
commit and applied indices, lag, and one peer line per replica.

Usage: test_replication.py KVFS_BIN        (run by `meson test --suite cluster`)
"""

import errno
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import settle, st_int, start_in_order, statuses, view_str  # noqa: E402


def three_nodes(h, tag, **opts):
    cluster = h.cluster_name(tag)
    zk = h.zk_client()
    nodes = h.nodes(cluster, 3, **opts)
    start_in_order(h, nodes, zk)
    leader, epoch = settle(h, nodes, what="one leader, established (its no-op committed)")
    return nodes, leader, epoch


def write_file(path, data):
    """Writes DATA to PATH with open/write/close; returns 0 or the errno of the failing call."""
    try:
        with open(path, "wb") as f:
            f.write(data)
        return 0
    except OSError as e:
        return e.errno or errno.EIO


def read_file(path, timeout=3.0):
    """The file's bytes, or None (missing, an error, or no answer within TIMEOUT s)."""
    return harness.read_file_timeout(path, timeout)[0]


def tree(mnt):
    """{relative path: bytes (files) or None (directories)} of everything under MNT."""
    out = {}
    for root, dirs, files in os.walk(mnt):
        rel = os.path.relpath(root, mnt)
        for d in dirs:
            out[os.path.normpath(os.path.join(rel, d))] = None
        for f in files:
            if rel == "." and f.startswith(".status"):
                continue
            p = os.path.join(root, f)
            key = os.path.normpath(os.path.join(rel, f))
            if os.path.islink(p):
                out[key] = ("link", os.readlink(p))
                continue
            with open(p, "rb") as fh:
                out[key] = fh.read()
    return out


def wait_caught_up(h, nodes, timeout=20):
    """Waits until every node has applied the same index and none lags; returns that index."""
    got = {}

    def cond():
        sts = statuses(nodes)
        if any(st is None for st in sts.values()):
            return False
        applied = {st_int(st, "applied_index") for st in sts.values()}
        commits = {st_int(st, "commit_index") for st in sts.values()}
        got["view"] = sts
        if len(applied) == 1 and applied == commits and \
                all(st_int(st, "lag_entries") == 0 for st in sts.values()):
            got["index"] = applied.pop()
            return True
        return False

    ms = h.wait_for(cond, timeout, 0.1)
    h.check(ms is not None, "every node has applied the same index, lag 0 (within %d s)" % timeout,
            "\n".join("%s: commit %s applied %s lag %s" %
                      (nid, st and st.get("commit_index"), st and st.get("applied_index"),
                       st and st.get("lag_entries"))
                      for nid, st in (got.get("view") or {}).items()))
    return got.get("index")


def check_identical(h, nodes, what):
    trees = {n.name: tree(n.mnt) for n in nodes}
    first = nodes[0].name
    diff = []
    for name, t in trees.items():
        if t != trees[first]:
            only_a = sorted(set(trees[first]) - set(t))[:5]
            only_b = sorted(set(t) - set(trees[first]))[:5]
            differ = sorted(k for k in set(t) & set(trees[first]) if t[k] != trees[first][k])[:5]
            diff.append("%s vs %s: only in %s %s, only in %s %s, different %s" %
                        (first, name, first, only_a, name, only_b, differ))
    h.check(not diff, "%s: the three replicas hold identical trees (%d entries)" %
            (what, len(trees[first])), "\n".join(diff))
    return trees[first]


def test_follower_write_read_everywhere(h):
    """A write on a follower's mount is read back there at once and on every node."""
    nodes, leader, epoch = three_nodes(h, "fwd")
    follower = next(n for n in nodes if n is not leader)
    path = os.path.join(follower.mnt, "greeting")
    t0 = time.monotonic()
    rv = write_file(path, b"hello from %s\n" % follower.name.encode())
    h.log("write on follower %s: %s in %d ms" % (follower.name, os.strerror(rv) if rv else "ok",
                                                  (time.monotonic() - t0) * 1000))
    h.require(rv == 0, "a write on follower %s succeeds" % follower.name, os.strerror(rv))
    got = read_file(path)
    h.check(got == b"hello from %s\n" % follower.name.encode(),
            "read-your-writes: %s reads it right after close()" % follower.name, repr(got))
    for n in nodes:
        p = os.path.join(n.mnt, "greeting")
        ms = h.wait_for(lambda: read_file(p) == b"hello from %s\n" % follower.name.encode(), 5)
        h.check(ms is not None, "%s reads the follower's write" % n.name, repr(read_file(p)))
    # The other operations forwarded too.
    base = os.path.join(follower.mnt, "d")
    ops_ok = True
    try:
        os.mkdir(base)
        os.symlink("greeting", os.path.join(base, "link"))
        write_file(os.path.join(base, "f"), b"1")
        os.rename(os.path.join(base, "f"), os.path.join(base, "g"))
        os.chmod(os.path.join(base, "g"), 0o600)
    except OSError as e:
        ops_ok = False
        h.check(False, "mkdir, symlink, rename, chmod on a follower succeed", str(e))
    if ops_ok:
        index = wait_caught_up(h, nodes)
        trees = check_identical(h, nodes, "after forwarded mkdir/symlink/rename/chmod")
        h.check(trees.get("d/g") == b"1" and "d/f" not in trees,
                "the renamed file is there on every node", sorted(trees))
        modes = {n.name: oct(os.stat(os.path.join(n.mnt, "d/g")).st_mode & 0o777) for n in nodes}
        h.check(set(modes.values()) == {"0o600"}, "chmod is seen on every node", str(modes))
        inos = {n.name: os.stat(os.path.join(n.mnt, "d/g")).st_ino for n in nodes}
        h.check(len(set(inos.values())) == 1, "the inode number is the same on every node",
                str(inos))
        h.log("all caught up at index %s" % index)
    # /.status: commit and applied indices, lag and one peer line per replica.
    sts = statuses(nodes)
    lst = sts[leader.id]
    h.wait_for(lambda: b"unknown" not in (leader.read(".status") or b"unknown"), 3, 0.1)
    raw = (leader.read(".status") or b"").decode()
    peer_lines = [l for l in raw.splitlines() if l.startswith("peer: ")]
    h.check(len(peer_lines) == 3, "the leader's /.status has one peer line per replica",
            raw)
    commit = st_int(lst, "commit_index") if lst else None
    for line in peer_lines:
        parts = line.split()
        fields = dict(p.split("=", 1) for p in parts if "=" in p)
        h.check(len(parts) >= 7 and parts[2].count(":") == 1 and
                fields.get("match") == str(commit) and
                fields.get("lag_entries") == "0" and parts[3] in ("leader", "follower"),
                "peer line '%s' shows match = commit_index %s and lag 0" % (line, commit))
    # A follower shows every replica too, as the leader sees it.
    def follower_peers_caught_up():
        got["raw"] = (follower.read(".status") or b"").decode()
        fst = harness.parse_status(got["raw"])
        lines = [l.split() for l in got["raw"].splitlines() if l.startswith("peer: ")]
        return fst and len(lines) == 3 and all(
            dict(p.split("=", 1) for p in l if "=" in p) ==
            {"match": fst.get("commit_index"), "lag_entries": "0", "lag_ms": "0"}
            for l in lines)

    got = {}
    ms = h.wait_for(follower_peers_caught_up, 3, 0.1)
    h.check(ms is not None, "follower %s shows one peer line per replica, each at match = "
            "commit_index and lag 0" % follower.name, got.get("raw", ""))
    keys = [l.split(":")[0] for l in raw.splitlines()]
    want = ["node", "role", "leader", "leader_addr", "epoch", "zk", "election", "priority",
            "commit_index", "applied_index", "lag_entries", "lag_ms"]
    h.check(keys[:len(want)] == want, "/.status starts with the keys of DESIGN §1, in order",
            raw)


class Writers:
    """One thread per node writing files w<id>-<k> with unique contents, recording which writes
    close() acknowledged."""

    def __init__(self, h, nodes):
        self.h = h
        self.nodes = nodes
        # A node's writer pauses while the node is down: its mount point is then a plain
        # directory (the harness detaches the dead mount), whose writes prove nothing.
        self.running = {n.id: threading.Event() for n in nodes}
        for e in self.running.values():
            e.set()
        self.acked = {}  # relative path -> bytes
        self.failed = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(n,), daemon=True) for n in nodes]
        self.first_ok_after = {}

    def run(self, node):
        k = 0
        while not self.stop.is_set():
            if not self.running[node.id].wait(0.1):
                continue
            k += 1
            rel = "w%d-%05d" % (node.id, k)
            data = (b"%s written through %s, round %d\n" % (rel.encode(), node.name.encode(), k))
            rv = write_file(os.path.join(node.mnt, rel), data)
            with self.lock:
                if rv == 0:
                    self.acked[rel] = data
                else:
                    self.failed += 1
            if rv:
                time.sleep(0.05)

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def test_kill9_leader_under_writers(h):
    """Writers on all three mounts; kill -9 of the leader; the old leader restarts and catches
    up: every acknowledged write is on every replica, and the replicas are identical."""
    nodes, leader, epoch = three_nodes(h, "kill")
    rest = [n for n in nodes if n is not leader]
    w = Writers(h, nodes)
    w.start()
    time.sleep(2)
    with w.lock:
        before = len(w.acked)
    w.running[leader.id].clear()
    time.sleep(0.2)  # its writer finishes the write in flight
    t_kill = time.monotonic()
    leader.kill9()
    h.log("kill -9 %s (leader, epoch %d) with %d writes acknowledged so far" %
          (leader.name, epoch, before))
    # Failover: how long until a survivor accepts a write.
    probe = os.path.join(rest[0].mnt, "probe")
    ms = h.wait_for(lambda: write_file(probe, b"after the crash\n") == 0, 10, 0.01)
    took = (time.monotonic() - t_kill) * 1000
    h.log("FAILOVER after kill -9 (default 6 s session): a survivor accepted a write %d ms "
          "after the kill" % took)
    h.check(ms is not None and took < 1000,
            "a new leader accepts writes within 1 s of kill -9 of the leader (took %d ms)" % took)
    time.sleep(2)
    leader.start()
    w.running[leader.id].set()
    h.log("%s restarted" % leader.name)
    time.sleep(2)
    w.finish()
    h.log("writers stopped: %d writes acknowledged, %d failed" % (len(w.acked), w.failed))
    h.check(len(w.acked) > before, "writes went on after the kill (%d -> %d acknowledged)" %
            (before, len(w.acked)))
    wait_caught_up(h, nodes, 30)
    trees = check_identical(h, nodes, "after kill -9 and restart")
    missing = [p for p, d in w.acked.items() if trees.get(p) != d]
    h.check(not missing, "every write whose close() returned 0 (%d) is on every replica" %
            len(w.acked), "missing or different: %s" % missing[:10])


def test_concurrent_appends_and_races(h):
    """`>>` appends from three nodes at once keep every line; mkdir and O_EXCL races on three
    nodes have exactly one winner per round."""
    nodes, leader, epoch = three_nodes(h, "race")
    lines_per_node = 40

    def appender(n):
        for i in range(lines_per_node):
            with open(os.path.join(n.mnt, "log"), "ab") as f:
                f.write(b"%s line %d\n" % (n.name.encode(), i))

    ts = [threading.Thread(target=appender, args=(n,)) for n in nodes]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    wait_caught_up(h, nodes)
    for n in nodes:
        got = (read_file(os.path.join(n.mnt, "log")) or b"").splitlines()
        want = sorted(b"%s line %d" % (m.name.encode(), i) for m in nodes
                      for i in range(lines_per_node))
        h.check(sorted(got) == want, "%s: all %d appended lines are there, none torn" %
                (n.name, len(want)), "got %d lines" % len(got))
    rounds = 10
    bad = []
    for r in range(rounds):
        for kind in ("mkdir", "excl"):
            results = {}
            barrier = threading.Barrier(len(nodes))

            def contend(n, kind=kind, r=r):
                p = os.path.join(n.mnt, "%s-%d" % (kind, r))
                barrier.wait()
                try:
                    if kind == "mkdir":
                        os.mkdir(p)
                    else:
                        os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
                    results[n.name] = 0
                except OSError as e:
                    results[n.name] = e.errno

            ts = [threading.Thread(target=contend, args=(n,)) for n in nodes]
            for t in ts:
                t.start()
            for t in ts:
                t.join(30)
            winners = [k for k, v in results.items() if v == 0]
            losers = [k for k, v in results.items() if v == errno.EEXIST]
            if len(winners) != 1 or len(losers) != len(nodes) - 1:
                bad.append("%s round %d: %s" % (kind, r, results))
    h.check(not bad, "mkdir and O_EXCL races: exactly one winner, the others EEXIST, in each of "
            "%d rounds" % rounds, "\n".join(bad))
    wait_caught_up(h, nodes)
    check_identical(h, nodes, "after the races")


def test_follower_restart_catches_up_from_log(h):
    """A follower stopped while 300 files are written through the others catches up from the
    log after its restart."""
    nodes, leader, epoch = three_nodes(h, "catch")
    follower = nodes[-1] if nodes[-1] is not leader else nodes[0]
    other = next(n for n in nodes if n is not leader and n is not follower)
    follower.stop()
    h.log("%s stopped" % follower.name)
    t0 = time.monotonic()
    bad = [k for k in range(300)
           if write_file(os.path.join((leader if k % 2 else other).mnt, "c%03d" % k),
                         b"%d\n" % k) != 0]
    h.log("300 writes with %s down took %d ms" % (follower.name, (time.monotonic() - t0) * 1000))
    h.check(not bad, "writes go on with one follower down (a majority remains)", str(bad[:5]))
    follower.start()
    t1 = time.monotonic()
    index = wait_caught_up(h, nodes, 30)
    h.log("%s caught up to index %s in %d ms" % (follower.name, index,
                                                  (time.monotonic() - t1) * 1000))
    trees = check_identical(h, nodes, "after the restart")
    h.check(all(trees.get("c%03d" % k) == b"%d\n" % k for k in range(300)),
            "%s has all 300 files" % follower.name)
    sts = statuses(nodes)
    h.check(all(st and st.get("lag_ms") == "0" for st in sts.values()),
            "lag_ms is 0 everywhere once caught up", view_str(sts))


def loose_entries(data):
    """Entries under the data directory DATA that other local users could read: every directory
    must be 0700 and every file 0600 (DESIGN §5). Returns ["mode path", ...]."""
    bad = []
    for root, dirs, files in os.walk(data):
        for name, want in [(None, 0o700)] + [(d, 0o700) for d in dirs] + [(f, 0o600) for f in files]:
            p = os.path.join(root, name) if name else root
            try:
                mode = os.lstat(p).st_mode & 0o7777
            except FileNotFoundError:
                continue  # a temporary file renamed meanwhile
            if mode != want:
                bad.append("%04o %s" % (mode, p))
    return bad


def test_follower_restart_catches_up_from_snapshot(h):
    """A follower stopped while the others write enough to snapshot and compact their logs
    catches up from a snapshot the leader sends, then from the log."""
    small = ["--snapshot-bytes", "65536", "--segment-bytes", "32768"]
    nodes, leader, epoch = three_nodes(h, "snap", extra=small)
    follower = nodes[-1] if nodes[-1] is not leader else nodes[0]
    other = next(n for n in nodes if n is not leader and n is not follower)
    for k in range(20):
        write_file(os.path.join(leader.mnt, "before%02d" % k), b"b%d\n" % k)
    wait_caught_up(h, nodes)
    follower.stop()
    blob = os.urandom(3000)
    bad = [k for k in range(400)
           if write_file(os.path.join((leader if k % 2 else other).mnt, "s%03d" % k),
                         b"%d:" % k + blob) != 0]
    h.check(not bad, "400 writes of 3 KB with one follower down", str(bad[:5]))
    os.chmod(os.path.join(leader.mnt, "s000"), 0o600)  # a value its owner keeps private
    os.unlink(os.path.join(leader.mnt, "before00"))
    lst = leader.status()
    h.log("leader %s: snapshot_index %s, log_bytes %s" %
          (leader.name, lst and lst.get("snapshot_index"), lst and lst.get("log_bytes")))
    h.check(lst is not None and st_int(lst, "snapshot_index") > 100,
            "the leader took snapshots while the follower was down",
            view_str({leader.id: lst}))
    follower.start()
    t1 = time.monotonic()
    index = wait_caught_up(h, nodes, 30)
    h.log("%s caught up to index %s in %d ms" % (follower.name, index,
                                                  (time.monotonic() - t1) * 1000))
    out = follower.output()
    h.check("installed the snapshot" in out, "%s was sent a snapshot and installed it" %
            follower.name, out[-2000:])
    trees = check_identical(h, nodes, "after catch-up from a snapshot")
    for n in nodes:
        bad = loose_entries(n.data)
        h.check(not bad, "%s: its data directory is 0700 and every file in it 0600%s" %
                (n.name, " (it received a snapshot)" if n is follower else ""), str(bad[:10]))
    h.check("before00" not in trees and trees.get("before01") == b"b1\n" and
            all(trees.get("s%03d" % k) == b"%d:" % k + blob for k in range(400)),
            "%s has every file, and not the one removed while it was down" % follower.name)
    # It goes on replicating after the snapshot, and a restart recovers from it.
    write_file(os.path.join(leader.mnt, "after"), b"after\n")
    follower.stop()
    follower.start()
    wait_caught_up(h, nodes, 30)
    h.check(read_file(os.path.join(follower.mnt, "after")) == b"after\n" and
            read_file(os.path.join(follower.mnt, "s399")) == b"399:" + blob,
            "%s restarts from the installed snapshot and keeps up" % follower.name)


def test_candidate_pulls_snapshot(h):
    """Priority mode: the only node that may lead is behind, and the only other live node (a
    priority-0 one) compacted what it lacks: the candidate pulls that node's snapshot, then
    leads, with every acknowledged write."""
    small = ["--snapshot-bytes", "65536", "--segment-bytes", "32768"]
    cluster = h.cluster_name("pull")
    zk = h.zk_client()
    a = h.node(1, cluster, election="priority", priority=10, extra=small)
    b = h.node(2, cluster, election="priority", priority=0, extra=small)
    c = h.node(3, cluster, election="priority", priority=5, extra=small)
    nodes = [a, b, c]
    start_in_order(h, nodes, zk)
    settle(h, nodes, what="one leader (n1, priority 10)")
    a.stop()
    ms, lid, epoch = h.wait_agreement([b, c], 20)
    h.require(ms is not None and lid == 3, "with n1 down, n3 (priority 5) leads", h.last_view)
    blob = os.urandom(3000)
    bad = [k for k in range(300)
           if write_file(os.path.join((b if k % 2 else c).mnt, "p%03d" % k), b"%d:" % k + blob)]
    h.check(not bad, "300 writes through n2 and n3", str(bad[:5]))
    wait_caught_up(h, [b, c])
    c.stop()
    h.log("n1 and n3 stopped; n2 (priority 0) alone has the newest log, compacted")
    a.start()
    ms, lid, e2 = h.wait_agreement([a, b], 30)
    h.check(ms is not None and lid == 1, "n1 leads again, having pulled n2's snapshot",
            h.last_view + "\n" + a.output()[-2000:])
    out = a.output()
    h.check("installed the snapshot" in out, "n1's log says it installed n2's snapshot",
            out[-2000:])
    ok = h.wait_for(lambda: write_file(os.path.join(b.mnt, "after"), b"after\n") == 0, 15, 0.2)
    h.check(ok is not None, "writes go on through n2")
    c.start()
    wait_caught_up(h, nodes, 30)
    trees = check_identical(h, nodes, "after the pull")
    h.check(all(trees.get("p%03d" % k) == b"%d:" % k + blob for k in range(300)) and
            trees.get("after") == b"after\n", "every acknowledged write is on every replica")


def test_snapshot_install_with_open_files(h):
    """A follower holding files open receives a snapshot: the open files read on (a file the
    snapshot removed reads what it had), and the node catches up and keeps up."""
    small = ["--snapshot-bytes", "65536", "--segment-bytes", "32768"]
    nodes, leader, epoch = three_nodes(h, "snapopen", extra=small)
    follower = nodes[-1] if nodes[-1] is not leader else nodes[0]
    write_file(os.path.join(leader.mnt, "kept"), b"kept\n")
    write_file(os.path.join(leader.mnt, "doomed"), b"doomed\n")
    wait_caught_up(h, nodes)
    kept = os.open(os.path.join(follower.mnt, "kept"), os.O_RDONLY)
    doomed = os.open(os.path.join(follower.mnt, "doomed"), os.O_RDONLY)
    try:
        follower.sigstop()
        blob = os.urandom(3000)
        # A first batch, then past the peer transport's idle timeout, so that the leader has
        # closed its connection with the stopped follower: a snapshot it began to send then
        # holds no log back. The second batch is then compacted away for good, and the
        # follower, when it wakes up, needs a snapshot. (Writing everything at once let the
        # leader keep the log from the snapshot it was sending when the writes ended, and the
        # follower sometimes caught up from that log instead.)
        for k in range(20):
            write_file(os.path.join(leader.mnt, "o%03d" % k), b"%d:" % k + blob)
        time.sleep(11)
        for k in range(20, 300):
            write_file(os.path.join(leader.mnt, "o%03d" % k), b"%d:" % k + blob)
        os.unlink(os.path.join(leader.mnt, "doomed"))
        time.sleep(1)
        follower.sigcont()
        index = wait_caught_up(h, nodes, 40)
        out = follower.output()
        h.check("installed the snapshot" in out, "%s installed a snapshot with two files open" %
                follower.name, out[-2000:])
        h.check(os.pread(kept, 100, 0) == b"kept\n", "a file open across the install reads on")
        h.check(os.pread(doomed, 100, 0) == b"doomed\n",
                "a file the snapshot removed reads what it had while it stays open")
        h.log("caught up at index %s" % index)
    finally:
        if follower.stopped:
            follower.sigcont()
        os.close(kept)
        os.close(doomed)
    trees = check_identical(h, nodes, "after the install")
    h.check("doomed" not in trees and trees.get("o299") == b"299:" + blob,
            "%s has the new files and not the removed one" % follower.name)
    write_file(os.path.join(follower.mnt, "later"), b"later\n")
    wait_caught_up(h, nodes)
    h.check(all(read_file(os.path.join(n.mnt, "later")) == b"later\n" for n in nodes),
            "a write through %s after the install reaches every node" % follower.name)


def test_no_majority_write_timeout(h):
    """With two of three nodes down, a write fails with EIO after --write-timeout and the log
    says why; once a second node is back, writes succeed again."""
    nodes, leader, epoch = three_nodes(h, "eio", extra=["--write-timeout", "2000"])
    rest = [n for n in nodes if n is not leader]
    for n in rest:
        n.stop()
    t0 = time.monotonic()
    rv = write_file(os.path.join(leader.mnt, "lonely"), b"no majority\n")
    took = (time.monotonic() - t0) * 1000
    h.log("write with no majority: %s after %d ms" % (os.strerror(rv) if rv else "ok", took))
    h.check(rv == errno.EIO and 1500 <= took <= 6000,
            "a write with no majority fails with EIO after about --write-timeout (2 s)",
            "%s after %d ms" % (os.strerror(rv) if rv else "success", took))
    h.wait_for(lambda: "nothing was committed within 2000 ms" in leader.output(), 2, 0.05)
    out = leader.output()
    h.check("nothing was committed within 2000 ms" in out,
            "the log line says that nothing was committed within the write timeout", out[-1500:])
    rest[0].start()
    ms = h.wait_for(lambda: write_file(os.path.join(leader.mnt, "back"), b"ok\n") == 0 or
                    write_file(os.path.join(rest[0].mnt, "back"), b"ok\n") == 0, 30, 0.2)
    h.check(ms is not None, "with a majority back, writes succeed again (after %s ms)" % ms)


def test_leader_without_majority_gives_up(h):
    """A leader that hears from no majority for a session timeout gives the lead up (deletes
    its /leader); once the others are back, a leader is established and writes go on."""
    session = 2000
    nodes, leader, epoch = three_nodes(h, "giveup", session_timeout=session)
    rest = [n for n in nodes if n is not leader]
    for n in rest:
        n.sigstop()
    try:
        ms = h.wait_for(lambda: "gave up the lead" in leader.output(), (session + 4000) / 1000,
                        0.1)
        h.check(ms is not None, "%s gives the lead up after hearing from no majority for about "
                "the session timeout (%d ms)" % (leader.name, session), leader.output()[-1500:])
        if ms is not None:
            h.log("%s gave up the lead %d ms after its followers were stopped" %
                  (leader.name, ms))
    finally:
        for n in rest:
            n.sigcont()
    ms, lid, e2 = h.wait_agreement(nodes, 30)
    h.check(ms is not None and e2 > epoch,
            "with everyone back, one leader again at a higher epoch (was %d)" % epoch,
            h.last_view)
    ok = h.wait_for(lambda: write_file(os.path.join(rest[0].mnt, "again"), b"again\n") == 0,
                    15, 0.2)
    h.check(ok is not None, "writes go on")


def test_linearizable_reads(h):
    """--read linearizable: a value acknowledged through one node is what any other node reads
    next, new names included; reads on every node of 100 alternating writes."""
    nodes, leader, epoch = three_nodes(h, "lin", extra=["--read", "linearizable"])
    bad = []
    t_read = 0.0
    for i in range(100):
        w = nodes[i % 3]
        r = nodes[(i + 1 + i // 3) % 3]
        if r is w:
            r = nodes[(i + 2) % 3]
        name = "k%d" % (i % 7)
        data = b"value %d from %s\n" % (i, w.name.encode())
        if write_file(os.path.join(w.mnt, name), data) != 0:
            bad.append("write %d on %s failed" % (i, w.name))
            continue
        t0 = time.monotonic()
        got = read_file(os.path.join(r.mnt, name))
        t_read += time.monotonic() - t0
        if got != data:
            bad.append("%s wrote %r, %s read %r next" % (w.name, data, r.name, got))
        fresh = "new-%d" % i
        if write_file(os.path.join(w.mnt, fresh), b"x") != 0 or \
                read_file(os.path.join(r.mnt, fresh)) != b"x":
            bad.append("a new file %s written on %s is not found on %s next" %
                       (fresh, w.name, r.name))
    h.log("linearizable reads: 200 reads right after a write on another node, %.2f ms per "
          "read of an existing name on average" % (t_read / 100 * 1000))
    h.check(not bad, "every read right after an acknowledged write on another node sees it "
            "(200 reads)", "\n".join(bad[:10]))


if __name__ == "__main__":
    harness.main([
        test_follower_write_read_everywhere,
        test_kill9_leader_under_writers,
        test_concurrent_appends_and_races,
        test_follower_restart_catches_up_from_log,
        test_follower_restart_catches_up_from_snapshot,
        test_snapshot_install_with_open_files,
        test_candidate_pulls_snapshot,
        test_no_majority_write_timeout,
        test_leader_without_majority_gives_up,
        test_linearizable_reads,
    ])
