#!/usr/bin/python3
"""Network partitions (issue 8), with every ZooKeeper server and every kvfs node in its own
network namespace and links cut with nftables (harness.py, class Net): writers on all three
mounts throughout, and in turn

 1. the leader cut from both peers (it keeps ZooKeeper): it takes no write, the others elect a
    new leader and take writes; after the heal it follows the new leader, caught up, fast;
 2. the leader cut from ZooKeeper only: it stops leading, a new leader is elected; after the
    heal all three agree;
 3. the leader and one ZooKeeper server cut from the rest (ZooKeeper split 1|2): the majority
    elects a new leader and goes on writing; after the heal the old leader catches up fast;
 4. a "bridge": the leader and a follower cannot see each other, the third node sees both;
    after the heal the cut-off follower catches up fast.

After each heal: every write whose close() returned 0 is on every node, the three trees are
identical, no node crashed. Besides the writers, clients on every mount (workload.py: puts and
reads of a few keys, appends, O_EXCL and mkdir rounds) record a history that the checker
(history.py) verifies after the heal; scenarios 2 and 4 run with --read linearizable, so there
each key's history must be linearizable, and the others read their own writes.
"Fast" is RECOVERY_BOUND_MS from the heal, generous for a loaded two-core machine but well
under what a connection kept until a 10 s idle timeout costs. Nodes run with
--session-timeout 2000 --write-timeout 2000 and small snapshots, so that a node coming back
usually needs a snapshot.

Usage: test_partitions.py KVFS_BIN        (run by `meson test --suite cluster`)
"""

import errno
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import settle, st_int, start_in_order, statuses  # noqa: E402
from test_replication import check_identical, tree, wait_caught_up, write_file  # noqa: E402
from workload import Workload, check_history  # noqa: E402

RECOVERY_BOUND_MS = int(os.environ.get("KVFS_RECOVERY_BOUND_MS", "2500"))
# How long the majority side goes on alone. Some 7 s of partition in all: long enough that TCP's
# retransmission backoff (0.2, 0.4, 0.8 ... s) would leave a kept connection silent for seconds
# after the heal, short enough that the run stays under two minutes.
PARTITION_S = 5
OPTS = dict(netns=True, session_timeout=2000,
            extra=["--write-timeout", "2000", "--snapshot-bytes", "16384"])


class Writers:
    """One thread per node writing new files p<id>-<k> (about 200 bytes each) in a loop; every
    write is recorded as (node id, start, end, errno or 0, path, data)."""

    def __init__(self, nodes):
        self.nodes = nodes
        self.writes = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(n,), daemon=True) for n in nodes]
        for t in self.threads:
            t.start()

    def run(self, node):
        k = 0
        while not self.stop.is_set():
            k += 1
            rel = "p%d-%05d" % (node.id, k)
            data = (b"%s through %s " % (rel.encode(), node.name.encode())).ljust(200, b".")
            t0 = time.monotonic()
            rv = write_file(os.path.join(node.mnt, rel), data + b"\n")
            with self.lock:
                self.writes.append((node.id, t0, time.monotonic(), rv, rel, data + b"\n"))
            time.sleep(0.05 if rv else 0.01)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def select(self, node=None, since=None, until=None, ok=None):
        """Writes of NODE that started at or after SINCE and ended before UNTIL, acknowledged
        (OK True) or not (False)."""
        with self.lock:
            return [w for w in self.writes
                    if (node is None or w[0] == node.id) and (since is None or w[1] >= since)
                    and (until is None or w[2] < until)
                    and (ok is None or (w[3] == 0) == ok)]


def start_three(h, tag, read="local"):
    """Three nodes with --read READ, settled, and a Workload on them (not started yet)."""
    h.ensemble(netns=True)
    zk = h.zk_client()
    opts = dict(OPTS, extra=OPTS["extra"] + ["--read", read])
    nodes = h.nodes(h.cluster_name(tag), 3, **opts)
    start_in_order(h, nodes, zk)
    leader, epoch = settle(h, nodes, what="one leader, established")
    wl = Workload(nodes, seed=tag, pace=0.02)
    wl.setup()
    wl.read_mode = read
    return nodes, leader, epoch, wl


def wait_new_leader(h, nodes, old_epoch, timeout=15):
    """Waits until NODES agree on a leader at an epoch above OLD_EPOCH; (leader, epoch)."""
    ms, lid, epoch = h.wait_agreement(nodes, timeout, pred=lambda lid, ep: ep > old_epoch)
    h.require(ms is not None, "%s agree on a new leader at an epoch above %d" %
              ("/".join(n.name for n in nodes), old_epoch), h.last_view)
    leader = next(n for n in nodes if n.id == lid)
    h.log("%s leads at epoch %d (agreed after %d ms of waiting)" % (leader.name, epoch, ms))
    return leader, epoch


def majority_writes_go_on(h, w, nodes, since, secs):
    """Lets the writers run SECS s and checks each of NODES got writes acknowledged."""
    time.sleep(secs)
    for n in nodes:
        got = w.select(n, since=since, ok=True)
        h.check(len(got) > 0, "%s (majority side) takes writes during the partition (%d)" %
                (n.name, len(got)))


def wait_caught_up_with(h, node, leader, epoch, target, what, bound_ms=RECOVERY_BOUND_MS):
    """From now (just after a heal): waits until NODE follows LEADER at EPOCH with lag_entries
    0 and has applied at least TARGET; logs the time and checks it is within BOUND_MS."""
    t0 = time.monotonic()
    box = {}

    def cond():
        st = node.status(timeout=1.0)
        box["st"] = st
        return (st is not None and st.get("role") == "follower" and
                st_int(st, "leader") == leader.id and st_int(st, "epoch") == epoch and
                st_int(st, "lag_entries") == 0 and (st_int(st, "applied_index") or 0) >= target)

    ms = h.wait_for(cond, 20, interval=0.02)
    st = box.get("st") or {}
    h.log("RECOVERY %s: %s follows %s at epoch %d with lag 0 (applied %s >= %d) %s ms after "
          "the heal" % (what, node.name, leader.name, epoch, st.get("applied_index"), target,
                        "%d" % ms if ms is not None else "never (20 s)"))
    h.check(ms is not None and ms <= bound_ms,
            "%s: %s follows %s, caught up, within %d ms of the heal (took %s)" %
            (what, node.name, leader.name, bound_ms, "%d ms" % ms if ms is not None else "> 20 s"),
            "last status: %s" % {k: st.get(k) for k in ("role", "leader", "epoch", "zk",
                                                        "applied_index", "lag_entries")})
    return ms


def commit_index(h, node):
    st = node.status(timeout=2.0)
    return st_int(st, "commit_index") or 0


def finish(h, w, wl, nodes, what):
    """Stops the writers and the workload's clients and checks: every acknowledged write on
    every node, identical trees, no node crashed, the history checker's verdict."""
    time.sleep(1)
    w.finish()
    wl.finish()
    acked = {p: d for _, _, _, rv, p, d in w.select(ok=True)}
    failed = w.select(ok=False)
    h.log("%s: %d writes acknowledged, %d failed (%s)" %
          (what, len(acked), len(failed),
           ", ".join(sorted({errno.errorcode.get(f[3], str(f[3])) for f in failed}))))
    h.check(all(n.alive() for n in nodes), "%s: no node exited" % what,
            "\n".join("%s: exit status %s" % (n.name, n.proc.returncode)
                      for n in nodes if not n.alive()))
    wait_caught_up(h, nodes, 20)
    trees = check_identical(h, nodes, what)
    missing = [p for p, d in acked.items() if trees.get(p) != d]
    h.check(not missing, "%s: every write whose close() returned 0 (%d) is on every node" %
            (what, len(acked)), "missing or different: %s" % missing[:10])
    check_history(h, wl, nodes, wl.read_mode, what, tree)
    wl.close_fds()


def test_leader_cut_from_peers(h):
    """The leader is cut from both peers but keeps ZooKeeper: it takes no write, the others
    elect a new leader; after the heal it follows, caught up, within RECOVERY_BOUND_MS."""
    nodes, old, epoch, wl = start_three(h, "cutpeers")
    rest = [n for n in nodes if n is not old]
    w = Writers(nodes)
    wl.start()
    time.sleep(1.5)
    h.isolate(old, from_=rest)
    t_cut = time.monotonic()  # after the rules are in: a write started before may commit
    new, new_epoch = wait_new_leader(h, rest, epoch)
    t_new = time.monotonic()
    majority_writes_go_on(h, w, rest, t_new, PARTITION_S)
    t_heal = time.monotonic()
    target = commit_index(h, new)
    h.heal()
    during = w.select(old, since=t_cut, until=t_heal)
    h.check(during and all(x[3] == errno.EIO for x in during),
            "the old leader %s acknowledges no write started after the cut: each fails with EIO "
            "(%d writes)" % (old.name, len(during)),
            "\n".join("%s started %.3f s after the cut, ended %.3f s after: %s" %
                      (x[4], x[1] - t_cut, x[2] - t_cut, errno.errorcode.get(x[3], x[3]))
                      for x in during))
    wait_caught_up_with(h, old, new, new_epoch, target, "leader cut from its peers")
    finish(h, w, wl, nodes, "leader cut from its peers, healed")


def test_leader_cut_from_zookeeper(h):
    """The leader is cut from every ZooKeeper server (it still reaches its peers): it stops
    leading, a new leader is elected; after the heal all three agree."""
    nodes, old, epoch, wl = start_three(h, "cutzk", read="linearizable")
    rest = [n for n in nodes if n is not old]
    w = Writers(nodes)
    wl.start()
    time.sleep(1.5)
    h.cut_zk(old)
    new, new_epoch = wait_new_leader(h, rest, epoch)
    st = old.status()
    h.check(st is not None and st.get("role") != "leader",
            "the old leader %s no longer says it leads (role %s, zk %s)" %
            (old.name, st and st.get("role"), st and st.get("zk")))
    majority_writes_go_on(h, w, rest, time.monotonic(), 2)
    h.heal()
    ms, lid, ep = h.wait_agreement(nodes, 20)
    h.log("RECOVERY leader cut from ZooKeeper: all three agree on n%s at epoch %s %s ms after "
          "the heal" % (lid, ep, "%d" % ms if ms is not None else "never (20 s)"))
    h.check(ms is not None, "after the heal all three agree on one leader", h.last_view)
    finish(h, w, wl, nodes, "leader cut from ZooKeeper, healed")


def test_minority_with_one_zookeeper(h):
    """The leader and one ZooKeeper server are cut from the two other nodes and servers: the
    majority elects a new leader and goes on writing; after the heal the old leader follows,
    caught up, within RECOVERY_BOUND_MS."""
    nodes, old, epoch, wl = start_three(h, "minority")
    rest = [n for n in nodes if n is not old]
    servers = h.ensemble().servers
    # A follower among the servers: the two others keep their quorum leader, so the majority
    # side's ZooKeeper goes on at once.
    zmin = next((s for s in servers if s.mode() == "follower"), servers[0])
    zmaj = [s for s in servers if s is not zmin]
    w = Writers(nodes)
    wl.start()
    time.sleep(1.5)
    h.partition([[old, zmin], rest + zmaj])
    new, new_epoch = wait_new_leader(h, rest, epoch)
    majority_writes_go_on(h, w, rest, time.monotonic(), PARTITION_S)
    target = commit_index(h, new)
    h.heal()
    wait_caught_up_with(h, old, new, new_epoch, target, "minority with one ZooKeeper server")
    finish(h, w, wl, nodes, "minority with one ZooKeeper server, healed")


def test_bridge(h):
    """The leader and one follower cannot see each other; the third node sees both (a bridge).
    The leader keeps its majority through the bridge; after the heal the cut-off follower is
    caught up within RECOVERY_BOUND_MS."""
    nodes, leader, epoch, wl = start_three(h, "bridge", read="linearizable")
    cutoff, bridge = [n for n in nodes if n is not leader]
    w = Writers(nodes)
    wl.start()
    time.sleep(1.5)
    h.cut(leader, cutoff)
    t_cut = time.monotonic()
    majority_writes_go_on(h, w, [leader, bridge], t_cut + 0.5, PARTITION_S + 2)
    target = commit_index(h, leader)
    sts = statuses(nodes)
    h.check(st_int(sts[leader.id], "epoch") == epoch and sts[leader.id].get("role") == "leader",
            "%s still leads at epoch %d through the bridge %s" % (leader.name, epoch, bridge.name),
            harness.view_str(sts))
    h.heal()
    wait_caught_up_with(h, cutoff, leader, epoch, target, "bridge")
    finish(h, w, wl, nodes, "bridge, healed")


if __name__ == "__main__":
    harness.main([test_leader_cut_from_peers, test_leader_cut_from_zookeeper,
                  test_minority_with_one_zookeeper, test_bridge])
