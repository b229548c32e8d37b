#!/usr/bin/python3
"""Leader election in priority mode (issue #3), against a real three-server ZooKeeper ensemble
started here (see harness.py). Priorities {0, 5, 10}: 10 leads; kill it: 5 leads; 0 never leads,
not even alone; a node with priority 20 started later takes over only after the hold-down, and
at no moment do two nodes say role leader with the same epoch (every node's /.status is sampled
every few tens of ms for the whole test).

Usage: test_priority.py KVFS_BIN        (run by `meson test --suite cluster`)
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check_zk_view, st_int, statuses, view_str  # noqa: E402

HOLD_DOWN_MS = 3000  # the daemon's default, passed explicitly
SESSION_MS = 2000


def wait_leader(h, nodes, want, timeout, what):
    """Waits until NODES agree that WANT (a Node) leads; returns (ms, epoch) or ends the test."""
    ms, lid, epoch = h.wait_agreement(nodes, timeout, pred=lambda lid, e: lid == want.id)
    h.require(ms is not None, what, "last view:\n%s" % h.last_view)
    return ms, epoch


def check_statuses(h, nodes):
    sts = statuses(nodes)
    bad = [n.name for n in nodes if not sts[n.id] or sts[n.id].get("election") != "priority"
           or st_int(sts[n.id], "priority") != n.prio]
    h.check(not bad, "every node says election: priority and its own priority", view_str(sts))


def test_priority_election(h):
    """Priorities 0, 5, 10 and a newcomer with 20: the highest leads, after the hold-down."""
    cluster = h.cluster_name("prio")
    zk = h.zk_client()
    h.watch_leader(zk, cluster)
    common = dict(election="priority", session_timeout=SESSION_MS, hold_down=HOLD_DOWN_MS)
    p0 = h.node(1, cluster, priority=0, **common)
    p5 = h.node(2, cluster, priority=5, **common)
    p10 = h.node(3, cluster, priority=10, **common)
    nodes = [p0, p5, p10]
    sampler = h.sampler(nodes)  # reads each node while it runs

    # Priority 0 alone: it never leads.
    p0.start()
    time.sleep(2.5)
    st = p0.status()
    h.check(st is not None and st.get("role") != "leader" and st.get("leader") == "none",
            "priority 0 alone for 2.5 s: not leader, leader: none", view_str({p0.id: st}))
    h.check(st is not None and st.get("zk") == "connected", "priority 0 alone: zk connected",
            view_str({p0.id: st}))
    h.check(zk.exists("/kvfs/%s/leader" % cluster) is None, "priority 0 alone: no /leader znode")

    # Then 10, then 5: 10 leads and stays.
    p10.start()
    ms, e1 = wait_leader(h, [p0, p10], p10, 10, "priority 10 leads once it joins priority 0")
    h.log("%s (priority 10) leads at epoch %d, %d ms after it joined" % (p10.name, e1, ms))
    p5.start()
    ms, e = wait_leader(h, nodes, p10, 10, "priority 5 joins: all three name priority 10 as leader")
    h.check(e == e1, "priority 10 stays leader at the same epoch when priority 5 joins",
            "epoch %s, was %s" % (e, e1))
    check_statuses(h, nodes)
    check_zk_view(h, zk, cluster, nodes, leader=p10, epoch=e1, candidates=[p5, p10], optional=[p0])

    # kill -9 the leader: priority 5 leads.
    t0 = time.monotonic()
    p10.kill9()
    ms, e2 = wait_leader(h, [p0, p5], p5, (SESSION_MS + 3000) / 1000,
                         "after kill -9 of priority 10, priority 5 leads")
    took = (time.monotonic() - t0) * 1000
    h.check(took <= SESSION_MS + 2000, "priority 5 leads within %d ms of the kill (session timeout "
            "%d ms + 2 s)" % (SESSION_MS + 2000, SESSION_MS), "took %d ms" % took)
    h.check(e2 > e1, "the epoch grew (%d -> %d)" % (e1, e2))
    h.log("TAKEOVER after kill -9: %s (priority 10) -> %s (priority 5) in %d ms, epoch %d -> %d" %
          (p10.name, p5.name, took, e1, e2))

    # A newcomer with priority 20 (node 3 again, same data directory).
    p20 = p10
    p20.priority = 20
    t_start = time.monotonic()
    p20.start()
    h.log("%s restarted with priority 20; the hold-down is %d ms" % (p20.name, HOLD_DOWN_MS))
    # Just before the hold-down has passed (counted from the start of the process, before it
    # could even have joined): priority 5 still leads and the newcomer follows it.
    time.sleep(max(0.0, (HOLD_DOWN_MS - 500) / 1000 - (time.monotonic() - t_start)))
    sts = statuses(nodes)
    h.check(harness.agreement(nodes, sts) == (p5.id, e2),
            "%d ms after the start of priority 20: priority 5 still leads at epoch %d, priority 20 "
            "follows" % (HOLD_DOWN_MS - 500, e2), view_str(sts))
    left = (HOLD_DOWN_MS + 8000) / 1000 - (time.monotonic() - t_start)
    ms, lid, e3 = h.wait_agreement(nodes, left, pred=lambda lid, e: lid == p20.id)
    took = (time.monotonic() - t_start) * 1000
    h.check(ms is not None and took <= HOLD_DOWN_MS + 5000,
            "priority 20 leads within %d ms of its start (hold-down %d ms + 5 s)" %
            (HOLD_DOWN_MS + 5000, HOLD_DOWN_MS),
            "took %s ms; last view:\n%s" % (int(took) if ms is not None else "more than %d" %
                                          (HOLD_DOWN_MS + 8000), h.last_view))
    early = sampler.find(lambda nid, st: nid == p20.id and st is not None
                         and st.get("role") == "leader",
                         since=t_start, until=t_start + HOLD_DOWN_MS / 1000)
    h.check(not early, "priority 20 never says role leader before the hold-down (%d ms) has "
            "passed" % HOLD_DOWN_MS,
            "\n".join("+%d ms: %s" % ((t - t_start) * 1000, view_str({nid: st}))
                      for t, nid, st in early[:10]))
    if ms is not None:
        h.log("HANDOVER: %s (priority 5) -> %s (priority 20) %d ms after the newcomer started "
              "(hold-down %d ms), epoch %d -> %d" % (p5.name, p20.name, took, HOLD_DOWN_MS, e2, e3))
        h.check(e3 > e2, "the epoch grew (%d -> %d)" % (e2, e3))
        first = sampler.find(lambda nid, st: nid == p20.id and st is not None
                             and st.get("role") == "leader", since=t_start)
        if first:
            h.log("%s first said role leader %d ms after its start" %
                  (p20.name, (first[0][0] - t_start) * 1000))
        check_statuses(h, nodes)
        check_zk_view(h, zk, cluster, nodes, leader=p20, epoch=e3, candidates=[p5, p20],
                      optional=[p0])

    # Leave priority 0 alone again: still never leads.
    p20.stop()
    ms, e4 = wait_leader(h, [p0, p5], p5, 5, "after SIGTERM of priority 20, priority 5 leads")
    h.log("%s (priority 5) leads again at epoch %d, %d ms after %s was stopped" %
          (p5.name, e4, ms, p20.name))
    p5.stop()
    time.sleep(2)
    st = p0.status()
    h.check(st is not None and st.get("role") != "leader" and st.get("leader") == "none",
            "priority 0 left alone: not leader, leader: none", view_str({p0.id: st}))

    sampler.stop()
    zero = sampler.find(lambda nid, st: nid == p0.id and st is not None
                        and st.get("role") == "leader")
    h.check(not zero, "priority 0 never said role leader (%d samples)" % sampler.count(),
            "\n".join(view_str({nid: st}) for _, nid, st in zero[:10]))
    dup = sampler.duplicate_leaders()
    h.check(not dup, "no two nodes ever said role leader with the same epoch",
            "epoch -> nodes that said leader: %s" % dup)
    h.log("leaders seen by epoch: %s" % {e: sorted(ids) for e, ids in
                                           sorted(sampler.leaders_by_epoch().items(), key=str)})


if __name__ == "__main__":
    harness.main([test_priority_election])
