#!/usr/bin/python3
"""Replacing a node whose data directory was lost (issue 10; README "Replacing a node"), against a
real three-server ZooKeeper ensemble and three kvfs nodes on real FUSE mounts (harness.py).

 - A follower is killed with SIGKILL while writers run on the two other nodes, its data directory
   is deleted, and it is started again under the same id with the same secret. It says it is
   rejoining (log, `rejoining: yes` until caught up), catches up by snapshot (the leader compacted
   its log: --snapshot-bytes is small), removes its DATA/rejoining marker and votes again. The
   writers see no error at all (no leader changed), every acknowledged write is on every node,
   and the three trees are identical.
 - The dangerous case: node C lags (SIGSTOP) while writes are acknowledged by the leader and B;
   B is killed, its disk wiped, B restarted; the leader is killed; C resumes. C and B alone must
   not establish a leader (B's empty log would make C's, without those writes, the adopted one):
   no node says `role: leader` while the old leader is down, and the candidate's log says why.
   Once the old leader is back, a leader is established, every acknowledged write is on every
   node, and B has caught up.

Usage: test_replace.py KVFS_BIN        (run by `meson test --suite cluster`)
"""

import errno
import os
import shutil
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import start_in_order, statuses, view_str  # noqa: E402
from test_replication import read_file, tree, write_file  # noqa: E402

VALUE = 2048  # bytes per write: a few hundred writes pass --snapshot-bytes
EXTRA = ["--snapshot-bytes", "65536", "--write-timeout", "5000"]


class Writers:
    """One thread per node writing new files w/<node>-<seq> through that node's mount until
    stopped; records what close() acknowledged and every error."""

    def __init__(self, h, nodes):
        self.h = h
        self.nodes = nodes
        self.acked = {}   # relative path -> bytes
        self.errors = []  # (node name, path, errno name)
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                        for n in nodes]

    def start(self):
        for t in self.threads:
            t.start()

    def _run(self, node):
        seq = 0
        while not self.stop_ev.is_set():
            seq += 1
            rel = "w/%s-%06d" % (node.name, seq)
            data = (("%s %d " % (rel, seq)) * VALUE).encode()[:VALUE]
            err = write_file(os.path.join(node.mnt, rel), data)
            with self.lock:
                if err == 0:
                    self.acked[rel] = data
                else:
                    self.errors.append((node.name, rel, errno.errorcode.get(err, str(err))))
            # A few hundred writes a second at most: enough to pass --snapshot-bytes many
            # times over, few enough that reading every tree stays quick.
            time.sleep(0.05 if err else 0.005)

    def count(self):
        with self.lock:
            return len(self.acked)

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(20)


def wait_writes(h, w, more, timeout=30):
    """Waits until the writers have MORE acknowledged writes than now."""
    target = w.count() + more
    return h.wait_for(lambda: w.count() >= target, timeout, interval=0.05) is not None


def wipe(h, node):
    """Deletes NODE's data directory (the node is down), then waits until ZooKeeper has expired
    the killed process's session: its /members/<id> is the lock on the id, and with the data
    directory went the session file that would let the new process tell its own leftover from
    another live process (README: wait a session timeout before starting the replacement)."""
    shutil.rmtree(node.data)
    h.log("%s: data directory %s deleted" % (node.name, node.data))
    zk = h.zk_client()
    path = "/kvfs/%s/members/%d" % (node.cluster, node.id)
    ms = h.wait_for(lambda: zk.exists(path) is None, 20, interval=0.1)
    h.require(ms is not None, "the killed %s's session expires" % node.name, path)
    h.log("%s: %s gone after %d ms" % (node.name, path, ms))


def check_all_there(h, nodes, acked, what):
    """Every acknowledged write is on every node, and the trees are identical."""
    last = list(acked.items())[-20:]

    def latest_everywhere():
        trees = [tree(n.mnt) for n in nodes]  # once per poll: a tree reads every file
        return all(t.get(k) == v for t in trees for k, v in last)
    ms = h.wait_for(latest_everywhere, 30, interval=0.2)
    trees = {n.name: tree(n.mnt) for n in nodes}
    missing = ["%s lacks %s" % (name, k) for name, t in trees.items()
               for k, v in acked.items() if t.get(k) != v]
    h.check(ms is not None and not missing,
            "%s: all %d acknowledged writes are on every node" % (what, len(acked)),
            "\n".join(missing[:10]))
    first = trees[nodes[0].name]
    h.check(all(t == first for t in trees.values()),
            "%s: the replicas are identical (%d entries)" % (what, len(first)),
            "; ".join("%s: %d entries" % (k, len(t)) for k, t in trees.items()))


def three(h, tag):
    nodes = h.nodes(h.cluster_name(tag), 3, extra=EXTRA)
    start_in_order(h, nodes, h.zk_client())
    ms, leader, epoch = h.wait_agreement(nodes, 20)
    h.require(ms is not None, "the three nodes agree on a leader", h.last_view)
    os.mkdir(os.path.join(nodes[0].mnt, "w"))
    return nodes, next(n for n in nodes if n.id == leader)


def test_replace_follower(h):
    """A follower's data directory is lost under writers; it rejoins by snapshot."""
    nodes, leader = three(h, "replace")
    victim = next(n for n in nodes if n is not leader)
    others = [n for n in nodes if n is not victim]
    w = Writers(h, others)
    w.start()
    h.check(wait_writes(h, w, 50), "writers on %s make progress" %
            ", ".join(n.name for n in others))
    victim.kill9()
    wipe(h, victim)
    # Enough while it is away that the leader's snapshot covers what the victim lacks.
    h.check(wait_writes(h, w, 150), "the writers go on while %s is down" % victim.name)
    victim.start()
    st = victim.status()
    h.log("%s after its start: rejoining=%s catching_up=%s" %
          (victim.name, st and st.get("rejoining"), st and st.get("catching_up")))
    out = victim.output()
    h.check("rejoining" in out and "/nodes/%d" % victim.id in out,
            "%s says at start that it rejoins after losing its data" % victim.name,
            out[-2000:])
    marker = os.path.join(victim.data, "rejoining")

    def caught_up():
        s = victim.status()
        return (s and s.get("rejoining") == "no" and s.get("catching_up") == "no" and
                not os.path.exists(marker))
    ms = h.wait_for(caught_up, 30, interval=0.1)
    h.check(ms is not None, "%s catches up and votes again (rejoining: no, marker gone)" %
            victim.name, view_str(statuses(nodes)))
    out = victim.output()
    h.check("installed the snapshot" in out, "%s caught up by snapshot" % victim.name,
            out[-2000:])
    h.check("votes again" in out, "%s's log says it votes again" % victim.name, out[-2000:])
    h.check(wait_writes(h, w, 50), "the writers go on after %s is back" % victim.name)
    w.stop()
    h.check(not w.errors, "the writers saw no error (no leader change)",
            "%d errors, first: %s" % (len(w.errors), w.errors[:5]))
    check_all_there(h, nodes, w.acked, "replaced follower")
    ms, _, _ = h.wait_agreement(nodes, 10)
    h.check(ms is not None, "the three nodes agree on the leader", h.last_view)


def test_no_leader_with_a_wiped_majority(h):
    """A lagging node and a wiped one must not elect a leader that lacks acknowledged writes."""
    nodes, leader = three(h, "wiped")
    b, c = [n for n in nodes if n is not leader]
    w = Writers(h, [leader])
    w.start()
    h.check(wait_writes(h, w, 20), "writes through the leader %s" % leader.name)
    c.sigstop()
    h.check(wait_writes(h, w, 50), "writes acknowledged by %s and %s while %s is stopped" %
            (leader.name, b.name, c.name))
    w.stop()
    b.kill9()
    wipe(h, b)
    b.start()
    leader.kill9()
    c.sigcont()
    t0 = time.monotonic()
    leaders = []
    while time.monotonic() - t0 < 8:
        for n in (b, c):
            s = n.status(timeout=1)
            if s and s.get("role") == "leader":
                leaders.append((n.name, s.get("epoch")))
        time.sleep(0.2)
    h.check(not leaders, "no leader is established by %s (lagging) and %s (wiped)" %
            (c.name, b.name), "%s" % leaders[:5])
    st = b.status()
    h.check(st is not None and st.get("rejoining") == "yes",
            "%s shows rejoining: yes" % b.name, "%s" % st)
    logs = b.output() + c.output()
    h.check("rejoin without a vote" in logs, "the candidate's log says who does not vote",
            logs[-3000:])
    leader.start()
    ms, _, _ = h.wait_agreement(nodes, 30)
    h.check(ms is not None, "a leader is established once %s is back" % leader.name,
            h.last_view)
    ms = h.wait_for(lambda: (b.status() or {}).get("rejoining") == "no", 30, interval=0.1)
    h.check(ms is not None, "%s has caught up" % b.name, view_str(statuses(nodes)))
    check_all_there(h, nodes, w.acked, "lagging + wiped")
    h.check(write_file(os.path.join(c.mnt, "after"), b"x") == 0 and
            read_file(os.path.join(b.mnt, "after")) in (b"x", None),
            "the cluster takes writes again")


if __name__ == "__main__":
    harness.main([test_replace_follower, test_no_leader_with_a_wiped_majority])
