#!/usr/bin/python3
"""Faults of one node's own machine, against a real three-server ZooKeeper ensemble and three kvfs
nodes on real FUSE mounts (see harness.py). A data disk that fails under a running node: every
node runs with tests/fs/fail_sync.c preloaded ($KVFS_FAIL_SYNC_LIB, set by meson), which makes
fsync/fdatasync fail with EIO once that node's trigger file exists.

 - The leader's disk fails: the write that meets it fails with EIO, the leader exits with status
   1 and its mount is gone; it closed its ZooKeeper session, so a survivor leads and takes a write
   within a few seconds (far less than the 6 s session timeout plus an election); every write
   acknowledged before is on both survivors.
 - A follower's disk fails: it exits with status 1, its mount is gone, and the two others go on
   taking writes.

Usage: test_faults.py KVFS_BIN        (run by `meson test --suite cluster`)
"""

import errno
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import is_mounted, settle, start_in_order, statuses, view_str  # noqa: E402
from test_replication import write_file  # noqa: E402

FAILOVER_BOUND_MS = 4000  # arming the leader's disk to a write taken by a survivor


def shim_env(n):
    """The environment that gives node N a disk that fails once N.arm exists."""
    lib = os.environ.get("KVFS_FAIL_SYNC_LIB", "")
    n.arm = os.path.join(n.dir, "disk-fails-now")
    asan = os.environ.get("ASAN_OPTIONS")
    # An AddressSanitizer build refuses a preloaded library unless told not to check the order.
    return {"LD_PRELOAD": lib, "KVFS_FAIL_SYNC_TRIGGER": n.arm,
            "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0"}


def three_nodes(h, tag):
    lib = os.environ.get("KVFS_FAIL_SYNC_LIB", "")
    h.require(os.path.exists(lib), "the fail_sync shim is built",
              "KVFS_FAIL_SYNC_LIB=%r (meson sets it to tests/fs/libfail_sync.so)" % lib)
    cluster = h.cluster_name(tag)
    zk = h.zk_client()
    nodes = h.nodes(cluster, 3)
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

    t0 = arm(h, leader)
    rv = write_file(os.path.join(leader.mnt, "doomed"), b"never acknowledged\n")
    h.check(rv == errno.EIO, "the write that meets the leader's failed disk fails with EIO",
            "got %s" % (os.strerror(rv) if rv else "success"))

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


if __name__ == "__main__":
    harness.main([test_leader_disk_fails, test_follower_disk_fails])
