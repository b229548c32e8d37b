#!/usr/bin/python3
"""Restart benchmark (prints figures; not a test): what the restart contract costs a node that
starts again after kill -9.

A real three-server ZooKeeper ensemble and three kvfs nodes on real mounts (tests/cluster/
harness.py). N puts of 100 bytes go through one follower (8 writers), with snapshots far apart so
that the restarted node has the whole log to read. The follower is killed with -9 and started
again, three times; each time the figures are, from the moment the process starts:
  mount    its /.status answers (the mount is up)
  read     a read of the last key it acknowledged returns that value (a read that waits, or
           answers an older state, counts until it is right)
  caught   /.status says it has caught up: catching_up no (older kvfs: lag_entries 0 with
           applied_index at the leader's commit_index)

Usage: tests/bench/bench_restart.py KVFS_BIN [N (default 20000)]
Run it once per binary to compare builds (same machine, back to back).
"""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cluster"))
import harness  # noqa: E402
from harness import settle, st_int, start_in_order  # noqa: E402

N = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
ROUNDS = 3


def put(path, data):
    with open(path, "wb") as f:
        f.write(data)


def bench_restart(h):
    """N puts through a follower, then kill -9 and restart it, three times."""
    cluster = h.cluster_name("restart")
    zk = h.zk_client()
    nodes = h.nodes(cluster, 3, extra=["--snapshot-bytes", str(1 << 30)])
    start_in_order(h, nodes, zk)
    leader, epoch = settle(h, nodes)
    f = [n for n in nodes if n is not leader][0]
    os.makedirs(os.path.join(f.mnt, "d"), exist_ok=True)
    t0 = time.monotonic()

    def writer(k):
        for i in range(k, N, 8):
            put(os.path.join(f.mnt, "d", "k%06d" % i), b"%099d" % i)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - t0
    h.log("%d puts through %s in %.1f s (%.0f puts/s)" % (N, f.name, took, N / took))
    last = os.path.join(f.mnt, "d", "k%06d" % (N - 1))
    want = b"%099d" % (N - 1)
    rows = []
    for r in range(ROUNDS):
        put(last, want)  # acknowledged by f just before the kill
        f.kill9()
        f.start(wait=False)
        t_start = time.monotonic()
        got = {}
        deadline = t_start + 60
        while time.monotonic() < deadline and len(got) < 3:
            now = (time.monotonic() - t_start) * 1000
            st = f.status(timeout=1)
            if st is not None and "mount" not in got:
                got["mount"] = now
            if "mount" in got and "read" not in got:
                data, _ = harness.read_file_timeout(last, 20)
                if data == want:
                    got["read"] = (time.monotonic() - t_start) * 1000
            if st is not None and "caught" not in got:
                lst = leader.status(timeout=1)
                if st.get("catching_up") == "no" or (
                        "catching_up" not in st and lst is not None and
                        st_int(st, "lag_entries") == 0 and
                        st_int(st, "applied_index") >= st_int(lst, "commit_index")):
                    got["caught"] = (time.monotonic() - t_start) * 1000
            time.sleep(0.005)
        rows.append(got)
        h.log("restart %d: mount %s ms, read %s ms, caught up %s ms" % (
            r + 1, *("%.0f" % got[k] if k in got else "-" for k in ("mount", "read", "caught"))))
        h.check(len(got) == 3, "restart %d: mounted, read its last write and caught up" % (r + 1),
                str(got))
    print("\nrestart after kill -9 of a follower holding %d keys in its log (kvfs %s):" %
          (N, h.kvfs))
    print("%-8s %10s %10s %12s" % ("restart", "mount ms", "read ms", "caught ms"))
    for i, got in enumerate(rows):
        print("%-8d %10s %10s %12s" % (i + 1, *("%.0f" % got[k] if k in got else "-"
                                               for k in ("mount", "read", "caught"))))


if __name__ == "__main__":
    harness.main([bench_restart])
