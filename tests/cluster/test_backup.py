#!/usr/bin/python3
"""Backups of a cluster (issue 10), against a real ZooKeeper ensemble and real FUSE mounts (see
harness.py): /.kvfs-backup.tar read on a follower of a --read linearizable cluster while a
writer runs on the leader is always a consistent cut (b, written after a, is never newer than a;
the log of appends has no hole), names the cluster, its id and the follower in its pax global
header, and, taken after the last write was acknowledged, holds it. Restored with
`tar -C MNT -xpf FILE` into a follower's mount of a new three-node cluster, the tree is the same
on all three nodes: names, types, modes, mtimes to the nanosecond, sizes, contents, targets.

Usage: test_backup.py KVFS_BIN        (run by `meson test --suite cluster`)
"""

import io
import os
import re
import subprocess
import sys
import tarfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fs"))
import harness  # noqa: E402
from harness import settle, st_int, start_in_order, statuses  # noqa: E402
from backup_helper import listing  # noqa: E402

BACKUP = ".kvfs-backup.tar"


def three_nodes(h, tag, **opts):
    cluster = h.cluster_name(tag)
    nodes = h.nodes(cluster, 3, **opts)
    start_in_order(h, nodes, h.zk_client())
    leader, _ = settle(h, nodes, what="one leader, established (its no-op committed)")
    return nodes, leader


def make_tree(root):
    os.makedirs(os.path.join(root, "dir", "sub"))
    os.mkdir(os.path.join(root, "empty dir"))
    with open(os.path.join(root, "dir", "sub", "f"), "wb") as f:
        f.write(os.urandom(100000))
    open(os.path.join(root, "empty"), "wb").close()
    with open(os.path.join(root, "name with space and é"), "wb") as f:
        f.write(b"x\n")
    os.symlink("dir/sub/f", os.path.join(root, "link"))
    os.chmod(os.path.join(root, "dir", "sub"), 0o700)
    os.utime(os.path.join(root, "empty"), ns=(0, 981173106123456789))
    os.utime(os.path.join(root, "link"), ns=(0, 1049522828500000000), follow_symlinks=False)
    os.utime(os.path.join(root, "empty dir"), ns=(0, 1286705410000000001))
    os.utime(root, ns=(0, 1321009871000000000))


def writer(root, stop, counts):
    """a, then b, then a line appended to log, round after round: each a committed change."""
    i = 0
    while not stop.is_set():
        i += 1
        for name, mode in (("a", "wb"), ("b", "wb"), ("log", "ab")):
            with open(os.path.join(root, name), mode) as f:
                f.write(b"%d\n" % i)
        counts["rounds"] = i


def member(t, name):
    f = t.extractfile(name)
    return f.read() if f else None


def check_cut(h, data, k):
    """The cut/ files in archive DATA are a state the store went through; returns b."""
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        a = int(member(t, "./cut/a"))
        b = int(member(t, "./cut/b"))
        log = member(t, "./cut/log").decode()
    lines = [int(x) for x in log.split()]
    last = lines[-1] if lines else 0
    ok = (a in (b, b + 1)) and (last in (b, b - 1)) and lines == list(range(1, last + 1))
    h.check(ok, "follower backup %d is a consistent cut (a=%d b=%d log ..%d)" % (k, a, b, last),
            "log: %d lines" % len(lines))
    return b


def test_backup_on_a_follower_and_restore(h):
    nodes, leader = three_nodes(h, "bk", extra=["--read", "linearizable"])
    follower = next(n for n in nodes if n is not leader)
    make_tree(leader.mnt)
    cut = os.path.join(leader.mnt, "cut")
    os.mkdir(cut)
    for name in ("a", "b"):
        with open(os.path.join(cut, name), "wb") as f:
            f.write(b"0\n")
    open(os.path.join(cut, "log"), "wb").close()

    stop, counts = threading.Event(), {"rounds": 0}
    th = threading.Thread(target=writer, args=(cut, stop, counts), daemon=True)
    th.start()
    seen = []
    try:
        time.sleep(0.5)
        for k in range(1, 9):
            t0 = time.monotonic()
            with open(os.path.join(follower.mnt, BACKUP), "rb") as f:
                data = f.read()
            h.log("backup %d on %s: %d bytes in %.0f ms, writer at round %d" %
                  (k, follower.name, len(data), (time.monotonic() - t0) * 1000,
                   counts["rounds"]))
            seen.append(check_cut(h, data, k))
            time.sleep(0.2)
    finally:
        stop.set()
        th.join(10)
    h.check(len(set(seen)) > 1, "the writer made progress between the backups", seen)
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        t.getmembers()
        g = t.pax_headers
    h.check(g.get("KVFS.cluster") == leader.cluster, "the global header names the cluster", g)
    h.check(g.get("KVFS.node") == str(follower.id), "the global header names the follower", g)
    h.check(re.fullmatch(r"[0-9a-f]{32}", g.get("KVFS.cluster_id", "")) is not None,
            "the global header has the cluster id", g)
    st = follower.status()
    h.check(st is not None and 0 < int(g.get("KVFS.applied_index", 0)) <= st_int(st, "commit_index"),
            "its applied index is one the cluster committed", (g, st))

    # --read linearizable: a backup opened after the last write was acknowledged holds it.
    last = open(os.path.join(cut, "b"), "rb").read()
    path = os.path.join(h.tmp, "bk.tar")
    with open(os.path.join(follower.mnt, BACKUP), "rb") as f, open(path, "wb") as out:
        out.write(f.read())
    with tarfile.open(path) as t:
        h.check(member(t, "./cut/b") == last,
                "a follower's backup opened after the last acknowledged write holds it")
    src = listing(leader.mnt)
    ext = os.path.join(h.tmp, "extracted")
    os.mkdir(ext)
    r = subprocess.run(["tar", "-C", ext, "-xpf", path], capture_output=True, text=True)
    h.check(r.returncode == 0, "GNU tar extracts the follower's backup", r.stderr)
    h.check(listing(ext) == src, "the extracted tree is the leader's mount, exactly",
            "\n".join(set(listing(ext).splitlines()) ^ set(src.splitlines())))
    for n in nodes:
        n.stop()

    new, new_leader = three_nodes(h, "restore")
    target = next(n for n in new if n is not new_leader)
    r = subprocess.run(["tar", "-C", target.mnt, "-xpf", path], capture_output=True, text=True)
    h.check(r.returncode == 0, "restore: tar -C FOLLOWER_MNT -xpf FILE into a new cluster exits 0",
            r.stderr)

    def same_everywhere():
        sts = statuses(new)
        if any(s is None for s in sts.values()):
            return False
        if len({st_int(s, "applied_index") for s in sts.values()}) != 1:
            return False
        return all(listing(n.mnt) == src for n in new)

    ms = h.wait_for(same_everywhere, 20, 0.2)
    h.check(ms is not None, "restore: every node of the new cluster shows the backed-up tree",
            "\n".join("%s: %s" % (n.name, set(listing(n.mnt).splitlines()) ^ set(src.splitlines()))
                      for n in new))


if __name__ == "__main__":
    harness.main([test_backup_on_a_follower_and_restore])
