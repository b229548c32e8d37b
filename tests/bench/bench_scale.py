#!/usr/bin/python3
"""Scale benchmark (prints figures; not a test): memory per key, start-up, catch-up and snapshot
transfer of kvfs at a million keys. Run through scripts/bench_scale.sh, which prints the rows.

A real three-server ZooKeeper ensemble and three kvfs nodes on real mounts (tests/cluster/
harness.py), data directories on the disk under /tmp. In order:
  load       N keys (default 1,000,000) of 100 bytes with 8-byte names, in 1000 directories,
             written by 48 threads spread over the three mounts (kvfs has no bulk load: a
             restore is tar through a mount, the same puts). Every node runs with
             --snapshot-bytes 1G, so the whole load stays in the log.
  memory     VmRSS growth of each node over the load, per key.
  start-up   follower F stopped (SIGTERM) and started again: from exec to its /.status
             answering with every key there (kvfs recovers before it mounts, so the mount
             answering is serving). Its data: the log of N entries, no snapshot.
  catch-up   F stopped, CATCHUP (100,000) puts through the other two, F started: from exec to
             its /.status saying applied_index = the leader's commit_index (the leader sends
             the log).
  snapshot   the other two restarted one at a time with --snapshot-bytes 8M --segment-bytes
             4M (they compact their logs), F stopped, puts until the leader has compacted
             past F, F started: it installs the leader's snapshot; bytes / (time from its
             "receiving a snapshot" to its "installed the snapshot" log line).
  start-up   F restarted again: from its snapshot of N keys and a short log tail.
  catch-up   every node restarted with the default --snapshot-bytes, F stopped, CATCHUP puts
             through the other two, F started: from exec (its snapshot and short log) to
             applied_index = the leader's commit_index.
  disk       dd of 1 GiB with conv=fdatasync beside the data directories.

Usage: tests/bench/bench_scale.py KVFS_BIN [N [CATCHUP]]; the rows (markdown, `| workload |
figure | target | ratio |`) go to the file named by KVFS_SCALE_ROWS (default: stdout at the
end).
"""

import errno
import os
import re
import subprocess
import sys
import threading
import time
from datetime import datetime

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cluster"))
import harness  # noqa: E402
from harness import settle, st_int, start_in_order  # noqa: E402

N = int(sys.argv[2]) if len(sys.argv) > 2 else 1000000
CATCHUP = int(sys.argv[3]) if len(sys.argv) > 3 else 100000
THREADS = 48
RETRIES = 20
DIRS = 1000
NAME_LEN, VALUE_LEN = 8, 100
BOUND = 2 * (NAME_LEN + VALUE_LEN) + 128  # the memory target per key

rows = []


def row(workload, figure, target, ratio):
    rows.append("| %s | %s | %s | %s |" % (workload, figure, target, ratio))


def key_path(mnt, i):
    return os.path.join(mnt, "d%03d" % (i % DIRS), "k%07d" % i)


def value(i, gen):
    return (b"%07d-%d-" % (i, gen)).ljust(VALUE_LEN, b"v")


def put(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def load(h, mounts, keys, gen, threads=THREADS):
    """Writes keys 0..KEYS-1 (value generation GEN) with THREADS threads over MOUNTS; returns
    the seconds it took. A put that fails with EIO (no majority answered in time: a leader
    change, on a loaded machine) is written again, the same bytes, up to RETRIES times; any
    other failure ends the benchmark."""
    errors = []
    retried = [0]

    def writer(k):
        mnt = mounts[k % len(mounts)]
        try:
            for i in range(k, keys, threads):
                for attempt in range(RETRIES + 1):
                    try:
                        put(key_path(mnt, i), value(i, gen))
                        break
                    except OSError as e:
                        if e.errno != errno.EIO or attempt == RETRIES:
                            raise
                        retried[0] += 1
                        time.sleep(0.5)
        except OSError as e:
            errors.append("%s: %s" % (mnt, e))

    t0 = time.monotonic()
    ts = [threading.Thread(target=writer, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    took = time.monotonic() - t0
    h.require(not errors, "%d puts over %d mounts" % (keys, len(mounts)), "; ".join(errors[:3]))
    h.log("%d puts (generation %d) over %d mounts with %d threads in %.1f s (%.0f/s), %d "
          "written again after EIO" % (keys, gen, len(mounts), threads, took, keys / took,
                                       retried[0]))
    return took


def rss_kib(node):
    with open("/proc/%d/status" % node.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def log_time(line):
    """The timestamp of a kvfs log line (2026-12-04T13:04:57.123Z ...), in seconds."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z", line)
    return datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").timestamp() if m else None


class Perf:
    """With KVFS_SCALE_PERF=DIR: `perf record -a -g` into DIR/NAME.data while a phase runs
    (system-wide: the phase starts with an exec; filter with perf report --pid or --comm)."""

    def __init__(self, name):
        d = os.environ.get("KVFS_SCALE_PERF")
        self.proc = None
        if d:
            self.proc = subprocess.Popen(["perf", "record", "-a", "-g", "-q", "-o",
                                          os.path.join(d, name + ".data")],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)

    def stop(self):
        if self.proc:
            self.proc.send_signal(2)
            self.proc.wait(timeout=60)


def restart_timed(h, f, leader, want_keys, last, want, caught=False, timeout=120,
                  perf=None):
    """Stops F (SIGTERM) unless it is down and starts it. Returns (mounted, done): seconds from
    exec until its /.status answers, and until it serves what it should: WANT_KEYS keys and LAST
    reading WANT, and with CAUGHT, applied_index at the leader's commit index of before the
    start too. done is None if that never came."""
    if f.alive():
        f.stop()
    commit = st_int(leader.status(), "commit_index") if caught else 0
    p = Perf(perf) if perf else None
    try:
        return _restart_timed(h, f, want_keys, last, want, caught, commit, timeout)
    finally:
        if p:
            p.stop()


def _restart_timed(h, f, want_keys, last, want, caught, commit, timeout):
    f.start(wait=False)
    t0 = f.started_at
    deadline = t0 + timeout
    mounted = None
    while time.monotonic() < deadline:
        st = f.status(timeout=1)
        if st is not None and mounted is None:
            mounted = time.monotonic() - t0
        if st is not None and st_int(st, "keys") >= want_keys and \
                (not caught or st_int(st, "applied_index") >= commit):
            data, _ = harness.read_file_timeout(last, 5)
            if data == want:
                return mounted, time.monotonic() - t0
        if not f.alive():
            break
        time.sleep(0.005)
    h.check(False, "%s serves its data again" % f.name, f.output()[-2000:])
    return mounted, None


def disk_rate(h, where):
    """MB/s of a 1 GiB sequential write made durable (dd conv=fdatasync) in WHERE: the median
    of three, which differ widely on a virtual disk shared with others."""
    path = os.path.join(where, "dd-probe")
    rates = []
    for _ in range(3):
        t0 = time.monotonic()
        subprocess.run(["dd", "if=/dev/zero", "of=" + path, "bs=1M", "count=1024",
                        "conv=fdatasync"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        rates.append(1024 * 1048576 / (time.monotonic() - t0) / 1e6)
        os.unlink(path)
    h.log("dd 1 GiB conv=fdatasync: %s MB/s" % ", ".join("%.0f" % r for r in rates))
    return sorted(rates)[1]


def fmt_ratio(x):
    return "%.2f×" % x


def bench_scale(h):
    """N keys: memory, start-up, catch-up, snapshot transfer."""
    cluster = h.cluster_name("scale")
    zk = h.zk_client()
    big = ["--snapshot-bytes", "1G", "--segment-bytes", "4M"]
    small = ["--snapshot-bytes", "8M", "--segment-bytes", "4M"]
    nodes = h.nodes(cluster, 3, extra=big)
    start_in_order(h, nodes, zk)
    leader, _ = settle(h, nodes)
    mounts = [n.mnt for n in nodes]
    for d in range(DIRS):
        os.mkdir(os.path.join(leader.mnt, "d%03d" % d))
    time.sleep(1)  # the directories reach the followers
    r0 = {n.name: rss_kib(n) for n in nodes}
    empty = min(r0.values())  # an empty node's RSS (KiB): the baseline of the per-key figures
    took = load(h, mounts, N, 0)
    time.sleep(1)
    per_key = {n.name: (rss_kib(n) - r0[n.name]) * 1024 / N for n in nodes}
    h.log("RSS growth per key: %s" % per_key)
    row("load: %d puts of %d B, %d writers over 3 mounts" % (N, VALUE_LEN, THREADS),
        "%.0f s (%.0f puts/s)" % (took, N / took), "-", "-")
    worst = max(per_key.values())
    row("memory: RSS growth per key over the load, worst of 3 nodes (with the log since the "
        "last snapshot, which a node keeps in memory: here all of it)", "%.0f B" % worst,
        "-", "-")

    f = [n for n in nodes if n is not leader][0]
    g = [n for n in nodes if n is not leader and n is not f][0]
    last = key_path(f.mnt, N - 1)
    want = value(N - 1, 0)
    lst = leader.status()
    h.log("leader log_bytes %s for %d keys" % (lst.get("log_bytes"), N))

    # Start-up from the log alone.
    _, served = restart_timed(h, f, leader, N + DIRS, last, want, perf="startup-log")
    st = f.status()
    rss_after = (rss_kib(f) - empty) * 1024 / N if f.alive() else 0
    row("start-up to serving, %d keys in the log (%s B), no snapshot" %
        (N, st.get("log_bytes", "?") if st else "?"),
        "%.2f s" % served if served else "-", "≤ 3 s", fmt_ratio(served / 3) if served else "-")
    row("memory: RSS per key after that start-up (the store and the whole log in memory)",
        "%.0f B" % rss_after, "-", "-")

    # Catch-up of CATCHUP entries, sent from the leader's log.
    f.stop()
    load(h, [leader.mnt, g.mnt], CATCHUP, 1, threads=32)
    want = value(CATCHUP - 1, 1)
    served, total = restart_timed(h, f, leader, N + DIRS, key_path(f.mnt, CATCHUP - 1), want,
                                  caught=True)
    row("catch-up of a replica %d entries behind (from exec; mounted after %s)" %
        (CATCHUP, "%.2f s" % served if served else "-"),
        "%.2f s" % total if total else "-", "≤ 2 s", fmt_ratio(total / 2) if total else "-")
    if total and served:
        row("catch-up of %d entries, from the mount answering" % CATCHUP,
            "%.2f s" % (total - served),
            "≤ 2 s", fmt_ratio((total - served) / 2))

    # Snapshot transfer: the other two compact their logs; F, down, falls behind the leader's.
    for n in [n for n in nodes if n is not f]:  # the leader may have moved since g was picked
        n.extra = list(small)
        n.stop()
        n.start()
        settle(h, nodes, what="one leader after restarting %s" % n.name)
    leader, _ = settle(h, nodes)
    f.stop()
    live = [n for n in nodes if n is not f]
    leader, _ = settle(h, live)
    snaps = set()
    gen = 2
    t_end = time.monotonic() + 300
    while time.monotonic() < t_end:
        load(h, [n.mnt for n in live], CATCHUP, gen, threads=32)  # ~16 MB of log
        time.sleep(2)  # a snapshot is written in the background
        for n in live:
            st = n.status()
            if st:
                snaps.add((n.name, st.get("snapshot_index")))
        if len([s for s in snaps if s[0] == leader.name]) >= 3:
            break
        gen += 1
    h.log("snapshots of the live nodes while F was down: %s" % sorted(snaps))
    want = value(CATCHUP - 1, gen)
    served, total = restart_timed(h, f, leader, N + DIRS, key_path(f.mnt, CATCHUP - 1), want,
                                  caught=True, perf="snapshot")
    out = f.output()
    m0 = re.search(r"^(.*)receiving a snapshot at index (\d+) \((\d+) bytes\)", out, re.M)
    m1 = re.search(r"^(.*)installed the snapshot at index (\d+)", out, re.M)
    h.check(m0 is not None and m1 is not None, "%s installs a snapshot" % f.name, out[-2000:])
    # kvfs since issue 14 logs the steps in between: received (the last chunk written),
    # sealed (fsync, rename), loaded (into a new store, on a worker).
    steps = {}
    for what in ("received", "sealed", "loaded"):
        m = re.search(r"^(.*)%s the snapshot at index" % what, out, re.M)
        if m:
            steps[what] = log_time(m.group(1))
    rate = wire = None
    if m0 and m1:
        size = int(m0.group(3))
        t0, t1 = log_time(m0.group(1)), log_time(m1.group(1))
        secs = max(t1 - t0, 0.001)
        rate = size / secs / 1e6
        h.log("snapshot: %d bytes in %.3f s (%.1f MB/s); steps %s" %
              (size, secs, rate, {k: "%.3f" % (v - t0) for k, v in steps.items()}))
        row("snapshot install: %d MB (%d keys) received, written, fsynced, loaded, swapped in" %
            (size / 1e6, N), "%.2f s" % secs, "-", "-")
        if len(steps) == 3:
            wire = size / max(steps["received"] - t0, 0.001) / 1e6
            row("snapshot install, its steps: transfer (chunks written) / seal (fsync) / "
                "load / swap and free the old store", "%.2f / %.2f / %.2f / %.2f s" %
                (steps["received"] - t0, steps["sealed"] - steps["received"],
                 steps["loaded"] - steps["sealed"], t1 - steps["loaded"]), "-", "-")
    disk = disk_rate(h, h.tmp)
    row("disk: sequential write, dd 1 GiB conv=fdatasync (median of 3)", "%.0f MB/s" % disk,
        "-", "-")
    row("snapshot transfer rate (bytes / time from first chunk to installed)",
        "%.0f MB/s" % rate if rate else "-", "≥ %.0f MB/s (0.5× disk)" % (disk / 2),
        fmt_ratio(rate / disk) if rate else "-")
    if wire:
        row("snapshot transfer rate, the transfer alone (bytes / time until the last chunk is "
            "written)", "%.0f MB/s" % wire, "≥ %.0f MB/s (0.5× disk)" % (disk / 2),
            fmt_ratio(wire / disk))
    if total:
        row("catch-up by snapshot (from exec; mounted after %s)" %
            ("%.2f s" % served if served else "-"), "%.2f s" % total, "-", "-")

    # Start-up from the snapshot F installed and a short tail.
    _, served = restart_timed(h, f, leader, N + DIRS, key_path(f.mnt, CATCHUP - 1), want,
                              perf="startup-snapshot")
    st = f.status()
    row("start-up to serving, %d keys: snapshot + log tail (%s B)" %
        (N, st.get("log_bytes", "?") if st else "?"),
        "%.2f s" % served if served else "-", "≤ 3 s", fmt_ratio(served / 3) if served else "-")
    time.sleep(1)
    rss = (rss_kib(f) - empty) * 1024 / N if f.alive() else 0
    h.log("%s after a start from its snapshot: RSS %d KiB, an empty node's %d KiB" %
          (f.name, rss_kib(f), empty))
    row("memory: RSS per key, %d keys of %d B name + value (a node started from its snapshot, "
        "less an empty node's RSS)" % (N, NAME_LEN + VALUE_LEN), "%.0f B" % rss,
        "≤ %d B" % BOUND, fmt_ratio(rss / BOUND))

    # Catch-up as it runs with the defaults: every node with the default --snapshot-bytes, F
    # starting from its snapshot and short log tail and then taking CATCHUP entries from the
    # leader's log (64 MB of log since a snapshot covers them, so no snapshot is sent).
    for n in [n for n in nodes if n is not f]:
        n.extra = []
        n.stop()
        n.start()
        settle(h, nodes, what="one leader after restarting %s" % n.name)
    f.extra = []
    f.stop()
    live = [n for n in nodes if n is not f]
    leader, _ = settle(h, live)
    gen += 1
    load(h, [n.mnt for n in live], CATCHUP, gen, threads=32)
    want = value(CATCHUP - 1, gen)
    served, total = restart_timed(h, f, leader, N + DIRS, key_path(f.mnt, CATCHUP - 1), want,
                                  caught=True)
    how = "by snapshot" if "receiving a snapshot" in f.output() else "from the log"
    row("catch-up of a replica %d entries behind, default settings (%s; from exec, starting "
        "from its snapshot of %d keys; mounted after %s)" %
        (CATCHUP, how, N, "%.2f s" % served if served else "-"),
        "%.2f s" % total if total else "-", "≤ 2 s", fmt_ratio(total / 2) if total else "-")


def main():
    try:
        harness.main([bench_scale])
    finally:
        text = "\n".join(rows) + "\n"
        out = os.environ.get("KVFS_SCALE_ROWS")
        if out:
            with open(out, "w") as fp:
                fp.write(text)
        else:
            print(text)


if __name__ == "__main__":
    main()
