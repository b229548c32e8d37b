#!/usr/bin/python3
"""Hard links, FIFOs, sockets, device nodes, owners, RENAME_EXCHANGE and fallocate in a cluster
(issue 11), and user.* extended attributes (issue 13), against a real ZooKeeper ensemble and three kvfs nodes on real FUSE mounts.

Made on a follower's mount, each of them reaches every replica with the same inode numbers, link
counts, types, modes, owners and device numbers; a follower that was down while the others
compacted their logs gets them in the snapshot it installs. Another node's unlink of one of
several names leaves this node's kernel with the right link count (no stale count, no zero).
Extended attributes set on one node read the same on the others, snapshot included, and another
node's setxattr moves the ctime this node's stat shows. A listing (`ls -l`, READDIRPLUS) right
after another node changed its entries shows the changes, not what an earlier listing cached.

Usage: test_posix.py KVFS_BIN        (run by `meson test --suite cluster`)
"""

import ctypes
import hashlib
import os
import socket
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import settle, st_int, start_in_order, statuses  # noqa: E402

SMALL = ["--snapshot-bytes", "65536", "--segment-bytes", "32768"]
libc = ctypes.CDLL(None, use_errno=True)


def xattrs(p):
    """Sorted (name, value) of the extended attributes of p."""
    return tuple(sorted((n, os.getxattr(p, n)) for n in os.listxattr(p)))


def listing(mnt):
    """{path: (type, ino, nlink, mode, uid, gid, rdev, size, sha256 of a regular file,
    extended attributes of a regular file or directory)}."""
    out = {}
    for root, dirs, files in os.walk(mnt):
        for name in dirs + files:
            p = os.path.join(root, name)
            rel = os.path.relpath(p, mnt)
            if rel.startswith(".status"):
                continue
            st = os.lstat(p)
            digest = None
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()[:16]
            out[rel] = (stat.S_IFMT(st.st_mode), st.st_ino, st.st_nlink, st.st_mode & 0o7777,
                        st.st_uid, st.st_gid, st.st_rdev, st.st_size if not
                        stat.S_ISDIR(st.st_mode) else 0, digest,
                        xattrs(p) if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)
                        else ())
    return out


def caught_up(h, nodes, timeout=30):
    def cond():
        sts = statuses(nodes)
        if any(st is None for st in sts.values()):
            return False
        applied = {st_int(st, "applied_index") for st in sts.values()}
        return len(applied) == 1 and all(st_int(st, "lag_entries") == 0 for st in sts.values())
    return h.wait_for(cond, timeout)


def make_objects(m):
    with open(os.path.join(m, "a"), "wb") as f:
        f.write(b"shared value\n")
    os.mkdir(os.path.join(m, "d"))
    os.link(os.path.join(m, "a"), os.path.join(m, "d", "b"))
    os.link(os.path.join(m, "a"), os.path.join(m, "c"))
    os.mkfifo(os.path.join(m, "fifo"), 0o640)
    os.mknod(os.path.join(m, "null"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(os.path.join(m, "disk"), 0o660 | stat.S_IFBLK, os.makedev(8, 16))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(os.path.join(m, "sock"))
    s.close()
    os.chown(os.path.join(m, "c"), 1234, 5678)
    os.chmod(os.path.join(m, "d"), 0o2775)
    with open(os.path.join(m, "x"), "wb") as f:
        f.write(b"x" * 5000)
    fd = os.open(os.path.join(m, "x"), os.O_RDWR)
    os.posix_fallocate(fd, 0, 20000)
    if libc.fallocate(fd, 3, ctypes.c_longlong(100), ctypes.c_longlong(900)) != 0:
        raise OSError(ctypes.get_errno(), "fallocate punch")
    os.close(fd)
    with open(os.path.join(m, "y"), "wb") as f:
        f.write(b"y\n")
    os.setxattr(os.path.join(m, "a"), "user.color", b"blue")
    os.setxattr(os.path.join(m, "a"), "user.bin", bytes(range(256)) * 40)
    os.setxattr(os.path.join(m, "d"), "user.empty", b"")
    os.setxattr(os.path.join(m, "y"), "user.gone", b"x")
    os.removexattr(os.path.join(m, "y"), "user.gone")
    if libc.renameat2(-100, os.path.join(m, "x").encode(), -100,
                      os.path.join(m, "y").encode(), 2) != 0:
        raise OSError(ctypes.get_errno(), "renameat2 exchange")


def test_objects_replicate_and_snapshot(h):
    cluster = h.cluster_name("posix")
    zk = h.zk_client()
    # default_permissions: stat shows the stored owners (chown is checked below).
    nodes = h.nodes(cluster, 3, extra=SMALL + ["-o", "default_permissions"])
    start_in_order(h, nodes, zk)
    leader, _ = settle(h, nodes, what="one leader, established")
    followers = [n for n in nodes if n is not leader]
    f1, f2 = followers
    f2.stop()
    try:
        make_objects(f1.mnt)
        h.check(True, "links, FIFO, devices, socket, chown, setgid, fallocate, exchange, "
                "xattrs on follower %s" % f1.name)
    except OSError as e:
        h.check(False, "making the objects on follower %s" % f1.name, repr(e))
    blob = os.urandom(3000)
    for k in range(200):
        with open(os.path.join(leader.mnt, "fill%03d" % k), "wb") as f:
            f.write(blob)
    lst = leader.status()
    h.check(lst is not None and st_int(lst, "snapshot_index") > 50,
            "the leader took a snapshot while %s was down" % f2.name)
    f2.start()
    h.check(caught_up(h, nodes), "%s caught up" % f2.name)
    h.check("installed the snapshot" in f2.output(), "%s installed a snapshot" % f2.name)
    views = {n.name: listing(n.mnt) for n in nodes}
    ref = views[f1.name]
    diff = ["%s: %s" % (name, sorted(k for k in set(v) | set(ref) if v.get(k) != ref.get(k))[:8])
            for name, v in views.items() if v != ref]
    h.check(not diff, "identical names, inodes, link counts, types, modes, owners, devices, "
            "xattrs on all three (%d entries)" % len(ref), "\n".join(diff))
    h.check(ref.get("a", ())[9:10] == ((("user.bin", bytes(range(256)) * 40),
                                        ("user.color", b"blue")),) and
            ref.get("d", ())[9:10] == ((("user.empty", b""),),) and
            ref.get("y", ())[9:10] == ((),),
            "xattrs kept, through the snapshot on %s" % f2.name,
            repr((ref.get("a", ())[9:], ref.get("d", ())[9:])))
    # Another node's setxattr: the value and the new ctime are seen here at once.
    before = os.stat(os.path.join(f2.mnt, "y")).st_ctime_ns
    os.setxattr(os.path.join(f1.mnt, "y"), "user.late", b"now")
    h.check(caught_up(h, nodes), "the setxattr reached every node")
    after = os.stat(os.path.join(f2.mnt, "y")).st_ctime_ns
    h.check(os.getxattr(os.path.join(f2.mnt, "y"), "user.late") == b"now" and after > before,
            "%s reads %s's new xattr and its new ctime" % (f2.name, f1.name),
            repr((before, after)))
    a = ref.get("a")
    h.check(a is not None and a[2] == 3 and ref.get("c", (0, 0))[1] == a[1] and
            ref.get("d/b", (0, 0))[1] == a[1], "a, c and d/b are one inode with 3 links",
            repr((a, ref.get("c"), ref.get("d/b"))))
    h.check(ref.get("null", ())[6:7] == (os.makedev(1, 3),) and
            ref.get("disk", ())[6:7] == (os.makedev(8, 16),), "device numbers kept")
    h.check(ref.get("c", ())[4:6] == (1234, 5678), "chown kept", repr(ref.get("c")))
    h.check(ref.get("y", ())[7] == 20000 and ref.get("x", ())[7] == 2,
            "fallocate and the exchange kept", repr((ref.get("x"), ref.get("y"))))
    # Another node unlinks one name: here the other names keep their (right) count at once.
    for n in nodes:
        os.stat(os.path.join(n.mnt, "c"))  # the kernels cache the inode
    os.unlink(os.path.join(leader.mnt, "a"))
    h.check(caught_up(h, nodes), "the unlink reached every node")
    counts = {n.name: (os.stat(os.path.join(n.mnt, "c")).st_nlink,
                       os.path.exists(os.path.join(n.mnt, "a"))) for n in nodes}
    h.check(all(v == (2, False) for v in counts.values()),
            "after another node's unlink of a, c shows 2 links and a is gone everywhere",
            repr(counts))
    with open(os.path.join(f2.mnt, "d", "b"), "rb") as f:
        h.check(f.read() == b"shared value\n", "d/b still reads the value on %s" % f2.name)
    listings_follow_remote_changes(h, nodes, f1, f2)


def ls_l(d):
    """{name: (mode, nlink, size)} as `ls -l` sees it: a listing (READDIRPLUS) and lstat."""
    out = {}
    for e in os.scandir(d):
        st = e.stat(follow_symlinks=False)
        out[e.name] = (st.st_mode, st.st_nlink, st.st_size)
    return out


def listings_follow_remote_changes(h, nodes, f1, f2):
    """A listing on f2 caches the entries and their attributes (READDIRPLUS, for a second); f1
    changes them; within that second f2's stat of each name, and its next listing, show the
    changes: the invalidations of another node's changes hold for what a listing cached."""
    d1, d2 = os.path.join(f1.mnt, "ls"), os.path.join(f2.mnt, "ls")
    os.mkdir(d1)
    for name in ("grow", "mode", "old", "gone"):
        with open(os.path.join(d1, name), "wb") as f:
            f.write(b"12345")
    h.check(caught_up(h, nodes), "the listing's files reached every node")
    before = ls_l(d2)
    with open(os.path.join(d1, "grow"), "ab") as f:
        f.write(b"678")
    os.chmod(os.path.join(d1, "mode"), 0o600)
    os.rename(os.path.join(d1, "old"), os.path.join(d1, "new"))
    os.unlink(os.path.join(d1, "gone"))
    h.check(caught_up(h, nodes), "the changes reached every node")
    want = ls_l(d1)

    def lstat_all(names):
        out = {}
        for name in names:
            try:
                st = os.lstat(os.path.join(d2, name))
                out[name] = (st.st_mode, st.st_nlink, st.st_size)
            except FileNotFoundError:
                pass
        return out

    # Through the entries and attributes the listing cached: only invalidations refresh them.
    # They reach the kernel from a thread of their own, a moment after the apply: a short
    # retry, well inside the second the cache would otherwise hold.
    deadline = time.monotonic() + 0.3
    while True:
        cached = lstat_all(["grow", "mode", "old", "gone", "new"])
        if cached == want or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    h.check(cached == want and before != want,
            "%s's cached entries show %s's changes at once" % (f2.name, f1.name),
            repr((before, cached, want)))
    after = ls_l(d2)
    h.check(after == want, "%s's next listing shows them" % f2.name, repr((after, want)))


if __name__ == "__main__":
    harness.main([test_objects_replicate_and_snapshot])
