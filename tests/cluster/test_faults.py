#!/usr/bin/python3
"""Faults of one node's own machine, against a real three-server ZooKeeper ensemble and three kvfs
nodes on real FUSE mounts (see harness.py). A data disk that fails under a running node: every
node runs with tests/fs/fail_sync.c preloaded ($KVFS_FAIL_SYNC_LIB, set by meson), which makes
fsync/fdatasync fail with EIO once that node's trigger file exists. A node out of file
descriptors: tests/fs/fail_open.c ($KVFS_FAIL_OPEN_LIB) makes opens of log segments fail with
EMFILE once that node's other trigger file exists.

 - The leader's disk fails: the write that meets it fails with EIO, the leader exits with status
   1 and its mount is gone; it closed its ZooKeeper session at once (before draining and
   unmounting: /leader stops naming it within a second or so), so a survivor leads and takes a
   write within a few seconds (far less than the 6 s session timeout plus an election); every
   write acknowledged before is on both survivors.
 - A follower's disk fails: it exits with status 1, its mount is gone, and the two others go on
   taking writes.
 - The leader runs out of descriptors for new log segments (issue 9: idle connections took them
   all): that is not a disk failure. It keeps running and leading at the same epoch, the writes
   meanwhile wait for it and succeed once descriptors are back (or fail with EIO), and every
   acknowledged write is on every node.

Usage: test_faults.py KVFS_BIN        (run by `meson test --suite cluster`)
"""

import errno
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import is_mounted, settle, start_in_order, statuses, view_str  # noqa: E402
from test_replication import write_file  # noqa: E402

FAILOVER_BOUND_MS = 4000  # arming the leader's disk to a write taken by a survivor
RELEASE_BOUND_MS = 1500   # arming the leader's disk to /leader no longer naming it


def shim_env(n):
    """The environment that gives node N a disk that fails once N.arm exists, and no descriptor
    for a new log segment once N.arm_open exists."""
    libs = [os.environ.get("KVFS_FAIL_SYNC_LIB", ""), os.environ.get("KVFS_FAIL_OPEN_LIB", "")]
    n.arm = os.path.join(n.dir, "disk-fails-now")
    n.arm_open = os.path.join(n.dir, "out-of-descriptors-now")
    asan = os.environ.get("ASAN_OPTIONS")
    # An AddressSanitizer build refuses a preloaded library unless told not to check the order.
    return {"LD_PRELOAD": " ".join(libs), "KVFS_FAIL_SYNC_TRIGGER": n.arm,
            "KVFS_FAIL_OPEN_TRIGGER": n.arm_open, "KVFS_FAIL_OPEN_MATCH": "log-",
            "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0"}


def three_nodes(h, tag, extra=()):
    for var, name in (("KVFS_FAIL_SYNC_LIB", "fail_sync"), ("KVFS_FAIL_OPEN_LIB", "fail_open")):
        lib = os.environ.get(var, "")
        h.require(os.path.exists(lib), "the %s shim is built" % name,
                  "%s=%r (meson sets it to tests/fs/lib%s.so)" % (var, lib, name))
    cluster = h.cluster_name(tag)
    zk = h.zk_client()
    nodes = h.nodes(cluster, 3, extra=list(extra))
    for n in nodes:
        n.env = shim_env(n)
    start_in_order(h, nodes, zk)
    leader, epoch = settle(h, nodes, what="one leader, established (its no-op committed)")
    return nodes, leader, epoch


def write_some(h, nodes, prefix, count):
    """COUNT writes spread over NODES' mounts, each required to succeed; returns {name: data}."""
    acked = {}
    for i in range(count):
        n = nodes[i % len(nodes)]
        name = "%s%d" % (prefix, i)
        data = ("%s written on %s\n" % (name, n.name)).encode()
        rv = write_file(os.path.join(n.mnt, name), data)
        if rv != 0:
            h.require(False, "write %s on %s succeeds" % (name, n.name), os.strerror(rv))
        acked[name] = data
    h.check(True, "%d writes (%s*) on %s succeed" %
            (count, prefix, "/".join(n.name for n in nodes)))
    return acked


def arm(h, n):
    with open(n.arm, "w"):
        pass
    h.log("%s: its disk fails now (fsync/fdatasync answer EIO)" % n.name)
    return time.monotonic()


def check_stops(h, n, t0):
    """N's disk failed at T0: it must unmount and exit with status 1 by itself, within 5 s."""
    ms = h.wait_for(lambda: not is_mounted(n.mnt), 10)
    h.log("%s: mount gone %s ms after its disk failed" %
          (n.name, "%d" % ((time.monotonic() - t0) * 1000) if ms is not None else "never"))
    h.check(ms is not None and (time.monotonic() - t0) < 5,
            "%s: its mount is gone within 5 s of the disk failure" % n.name)
    rc = n.wait_exit(max(0.1, t0 + 10 - time.monotonic()))
    h.log("%s: exit status %s" % (n.name, rc))
    h.check(rc == 1, "%s exits by itself with status 1 (runtime error)" % n.name,
            "exit status %s; last lines of its log:\n%s" % (rc, n.tail(20)))
    out = n.output()
    h.check(n.data in out and ("fsync" in out or "Input/output" in out),
            "%s: its log says why, naming its data directory" % n.name, n.tail(20))
    n.stop()  # the sanitizer check of its log; detaches a mount left behind


def check_on(h, nodes, acked, what):
    """Every write in ACKED reads back on every one of NODES (waiting for them to catch up)."""
    for n in nodes:
        def missing():
            bad = []
            for name, data in sorted(acked.items()):
                got = harness.read_file_timeout(os.path.join(n.mnt, name), 2)[0]
                if got != data:
                    bad.append(name)
            return bad
        ms = h.wait_for(lambda: not missing(), 15, interval=0.2)
        h.check(ms is not None, "%s: %s: all %d acknowledged writes are on %s" %
                (what, n.name, len(acked), n.name), "missing or different: %s" % missing()[:10])


def test_leader_disk_fails(h):
    """The leader's disk fails: it stops, exits 1, and a survivor leads within a few seconds."""
    nodes, leader, epoch = three_nodes(h, "leaderdisk")
    survivors = [n for n in nodes if n is not leader]
    acked = write_some(h, nodes, "before", 30)
    zk = h.zk_client()
    leader_path = "/kvfs/%s/leader" % leader.cluster

    t0 = arm(h, leader)
    rv = write_file(os.path.join(leader.mnt, "doomed"), b"never acknowledged\n")
    h.check(rv == errno.EIO, "the write that meets the leader's failed disk fails with EIO",
            "got %s" % (os.strerror(rv) if rv else "success"))
    # It gives the lead up at once: /leader no longer names it (gone, or another's already).
    released = h.wait_for(
        lambda: harness.parse_kv(harness.zk_get(zk, leader_path)[0] or "").get("id")
        != str(leader.id), 10, interval=0.01)
    released_ms = released and (time.monotonic() - t0) * 1000
    h.log("%s: /leader no longer names it %s ms after its disk failed" %
          (leader.name, "%d" % released_ms if released else "never"))
    h.check(released is not None and released_ms < RELEASE_BOUND_MS,
            "the failed leader gives up /leader within %d ms (before it finishes stopping, "
            "not at its session timeout)" % RELEASE_BOUND_MS,
            "released after %s ms" % released_ms)

    # A writer on a survivor: its first write taken after the failure measures the failover.
    target = survivors[0]
    first_ok = None
    attempts = []
    while time.monotonic() - t0 < 30:
        rv = write_file(os.path.join(target.mnt, "after-failover"), b"after the failover\n")
        attempts.append(os.strerror(rv) if rv else "ok")
        if rv == 0:
            first_ok = (time.monotonic() - t0) * 1000
            acked["after-failover"] = b"after the failover\n"
            break
        time.sleep(0.05)
    h.log("first write taken on %s %s ms after the leader's disk failed (attempts: %s)" %
          (target.name, "%d" % first_ok if first_ok is not None else "never", attempts[:10]))
    h.check(first_ok is not None and first_ok < FAILOVER_BOUND_MS,
            "a survivor takes a write within %d ms of the leader's disk failure "
            "(session timeout 6 s)" % FAILOVER_BOUND_MS,
            "first write after %s ms; attempts: %s" % (first_ok, attempts[:10]))
    check_stops(h, leader, t0)
    out = leader.output()
    h.check("closed the ZooKeeper session before stopping" in out,
            "%s: its log says it closed its ZooKeeper session before stopping" % leader.name,
            leader.tail(20))

    new_leader, new_epoch = settle(h, survivors, what="a survivor leads")
    h.check(new_epoch > epoch, "the new leader %s leads a newer epoch (%d > %d)" %
            (new_leader.name, new_epoch, epoch))
    acked.update(write_some(h, survivors, "later", 10))
    check_on(h, survivors, acked, "after the leader's disk failed")


def test_follower_disk_fails(h):
    """A follower's disk fails: it stops and exits 1; the two others go on taking writes."""
    nodes, leader, epoch = three_nodes(h, "followerdisk")
    follower = next(n for n in nodes if n is not leader)
    others = [n for n in nodes if n is not follower]
    acked = write_some(h, nodes, "before", 30)

    t0 = arm(h, follower)
    # The leader's next write reaches the follower's log, which cannot be made durable.
    rv = write_file(os.path.join(leader.mnt, "during"), b"written while a follower's disk dies\n")
    h.check(rv == 0, "a write on the leader succeeds while a follower's disk fails",
            os.strerror(rv) if rv else "")
    if rv == 0:
        acked["during"] = b"written while a follower's disk dies\n"
    check_stops(h, follower, t0)

    sts = statuses(others)
    h.check(all(st is not None and st.get("leader") == str(leader.id) for st in sts.values()),
            "%s still leads for the two others" % leader.name, view_str(sts))
    acked.update(write_some(h, others, "after", 20))
    check_on(h, others, acked, "after a follower's disk failed")


def test_leader_out_of_descriptors(h):
    """The leader cannot open a new log segment (EMFILE) for a while: it does not stop, keeps
    leading at the same epoch, and the writes meanwhile succeed once it can (or fail with EIO)."""
    # Tiny segments: nearly every write needs a new one. A short write timeout bounds the wait
    # of a write that cannot be made durable.
    nodes, leader, epoch = three_nodes(h, "leaderfds",
                                       extra=["--segment-bytes", "4096", "--write-timeout", "5000"])
    acked = write_some(h, nodes, "before", 10)
    blob = os.urandom(3000)

    with open(leader.arm_open, "w"):
        pass
    t0 = time.monotonic()
    h.log("%s: no descriptor for a new log segment from now" % leader.name)
    results = {}

    def writer(k):
        name = "during%d" % k
        results[name] = write_file(os.path.join(nodes[k % 3].mnt, name), blob)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
        time.sleep(0.1)
    time.sleep(max(0.0, 1.5 - (time.monotonic() - t0)))
    waiting = sum(1 for t in threads if t.is_alive())
    h.log("%d of %d writes still wait after %d ms out of descriptors" %
          (waiting, len(threads), (time.monotonic() - t0) * 1000))
    h.check(leader.alive() and is_mounted(leader.mnt),
            "%s runs on, out of descriptors for its log" % leader.name, leader.tail(20))
    os.unlink(leader.arm_open)
    h.log("%s: descriptors are back" % leader.name)
    for t in threads:
        t.join(15)
    bad = {k: os.strerror(v) for k, v in results.items() if v not in (0, errno.EIO)}
    h.check(len(results) == len(threads) and not bad,
            "each write made while the leader had no descriptors succeeds or fails with EIO",
            "results: %s" % {k: os.strerror(v) if v else "ok" for k, v in results.items()})
    h.log("writes while out of descriptors: %s" %
          {k: os.strerror(v) if v else "ok" for k, v in sorted(results.items())})
    for name, rv in results.items():
        if rv == 0:
            acked[name] = blob
    out = leader.output()
    h.check("Too many open files" in out and "trying again" in out,
            "%s: its log says it ran out of descriptors and tries again" % leader.name,
            leader.tail(20))
    h.check("stopping" not in out and leader.alive(),
            "%s did not stop" % leader.name, leader.tail(20))
    h.check(out.count("out of file descriptors, not a disk failure") == 1,
            "%s: ... once, not at every attempt" % leader.name, leader.tail(20))
    h.check(h.wait_for(lambda: "is written again" in leader.output(), 5) is not None,
            "%s: its log says the log is written again once descriptors are back" % leader.name,
            leader.tail(20))
    sts = statuses(nodes)
    h.check(all(st is not None and st.get("leader") == str(leader.id) and
                st.get("epoch") == str(epoch) for st in sts.values()),
            "%s still leads, at the same epoch %d" % (leader.name, epoch), view_str(sts))
    acked.update(write_some(h, nodes, "after", 20))
    check_on(h, nodes, acked, "after the leader ran out of descriptors")


if __name__ == "__main__":
    harness.main([test_leader_disk_fails, test_follower_disk_fails,
                  test_leader_out_of_descriptors])
