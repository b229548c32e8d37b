#!/usr/bin/python3
"""Leader election in sequential mode (issue #3), against a real three-server ZooKeeper ensemble
started here (see harness.py): one leader that every node names; kill -9, SIGTERM and SIGSTOP of
the leader; loss of one ZooKeeper server and of the whole ensemble; and what an outside
ZooKeeper client sees. Every test uses its own --cluster name on the one ensemble of this file;
the ensemble test comes last because it stops the servers.

Usage: test_election.py KVFS_BIN        (run by `meson test --suite cluster`)
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from kazoo.exceptions import KazooException  # noqa: E402
from harness import (DEFAULT_SESSION_MS, check_zk_view, election_children, settle,  # noqa: E402
                     st_int, start_in_order, statuses, view_str)

SHORT_SESSION_MS = 2000  # the shortest the tests' ensemble allows is 2 ticks = 1000 ms


def check_no_shared_epoch(h, sampler):
    dup = sampler.duplicate_leaders()
    h.check(not dup, "no two nodes ever said role leader with the same epoch (%d samples)" %
            sampler.count(), "epoch -> nodes that said leader: %s" % dup)
    h.log("leaders seen by epoch: %s" % {e: sorted(ids) for e, ids in
                                           sorted(sampler.leaders_by_epoch().items(), key=str)})


def three_nodes(h, tag, **opts):
    cluster = h.cluster_name(tag)
    zk = h.zk_client()
    h.watch_leader(zk, cluster)
    nodes = h.nodes(cluster, 3, **opts)
    start_in_order(h, nodes, zk)
    leader, epoch = settle(h, nodes)
    return cluster, zk, nodes, leader, epoch


def test_three_nodes_one_leader(h):
    """Three nodes: exactly one leader, all agree, the first started leads; ZooKeeper agrees."""
    cluster, zk, nodes, leader, epoch = three_nodes(h, "one")
    h.check(leader.id == 1, "the first node started (n1) leads", "leader: %s" % leader.name)
    sts = statuses(nodes)
    h.check(all(st and st.get("leader_addr") == leader.addr for st in sts.values()),
            "every node names the leader's address %s" % leader.addr, view_str(sts) +
            "\nleader_addr: %s" % [st and st.get("leader_addr") for st in sts.values()])
    h.check(all(st and st.get("election") == "sequential" for st in sts.values()),
            "every node says election: sequential", view_str(sts))
    h.check(all(st and st_int(st, "priority") == 1 for st in sts.values()),
            "every node says priority: 1 (the default)", view_str(sts))
    h.check(epoch >= 1, "the epoch is at least 1", "epoch: %s" % epoch)
    # /.status.json says the same.
    bad = []
    for n in nodes:
        raw = n.read(".status.json")
        try:
            js = json.loads(raw.decode()) if raw is not None else None
        except ValueError as e:
            js = None
            bad.append("%s: not JSON (%s): %r" % (n.name, e, raw[:300]))
        if not isinstance(js, dict):
            bad.append("%s: /.status.json: %r" % (n.name, raw and raw[:300]))
            continue
        for k in ("node", "role", "leader", "leader_addr", "epoch", "zk", "election", "priority"):
            if str(js.get(k)) != (sts[n.id] or {}).get(k):
                bad.append("%s: %s is %r in /.status.json, %r in /.status" %
                           (n.name, k, js.get(k), (sts[n.id] or {}).get(k)))
    h.check(not bad, "/.status.json holds the same node, role, leader, epoch, zk, ... as /.status",
            "\n".join(bad))
    # Item 7: an outside client sees the same.
    check_zk_view(h, zk, cluster, nodes, leader=leader, epoch=epoch)
    # Stable: nothing changes when nothing happens.
    time.sleep(1)
    sts = statuses(nodes)
    h.check(harness.agreement(nodes, sts) == (leader.id, epoch),
            "a second later: the same leader at the same epoch", view_str(sts))


def kill9_leader(h, tag, session_ms):
    """kill -9 of the leader with the given session timeout; returns nothing, checks all."""
    opts = {"session_timeout": session_ms} if session_ms != DEFAULT_SESSION_MS else {}
    cluster, zk, nodes, old, e1 = three_nodes(h, tag, **opts)
    sampler = h.sampler(nodes)
    time.sleep(0.3)
    rest = [n for n in nodes if n is not old]
    t0 = time.monotonic()
    old.kill9()
    limit = session_ms + 2000
    ms, lid, e2 = h.wait_agreement(rest, limit / 1000 + 1, pred=lambda lid, e: lid != old.id)
    took = (time.monotonic() - t0) * 1000
    h.require(ms is not None and took <= limit,
              "after kill -9 of the leader %s (session timeout %d ms) another node leads "
              "within %d ms" % (old.name, session_ms, limit),
              "took %s ms; last view:\n%s" %
              (int(took) if ms is not None else "more than %d" % limit, h.last_view))
    new = next(n for n in rest if n.id == lid)
    h.log("TAKEOVER after kill -9 (session timeout %d ms): %s -> %s in %d ms, epoch %d -> %d" %
          (session_ms, old.name, new.name, took, e1, e2))
    h.check(new.id == min(n.id for n in rest),
            "the next in line (n%d) leads" % min(n.id for n in rest), "leader: %s" % new.name)
    h.check(e2 > e1, "the epoch grew (%d -> %d)" % (e1, e2))
    sampler.stop()
    check_no_shared_epoch(h, sampler)
    return cluster, zk, nodes, rest, new, e2


def test_kill9_leader_short_session(h):
    """kill -9 the leader (session timeout 2 s): the next in line leads within 4 s."""
    cluster, zk, nodes, rest, new, e2 = kill9_leader(h, "kill9s", SHORT_SESSION_MS)
    # Once the dead node's session has expired, ZooKeeper holds the survivors only. (Fast
    # failover removes its election znode at once; its /members/<id> goes with the session.)
    base = "/kvfs/%s" % cluster
    ms = h.wait_for(lambda: len(election_children(zk, cluster)) == len(rest) and
                    len(zk.get_children(base + "/members")) == len(rest),
                    (SHORT_SESSION_MS + 3000) / 1000)
    h.check(ms is not None, "the dead leader's znodes are gone within its session timeout",
            "children: %s" % [(c[0], c[1]) for c in election_children(zk, cluster)])
    check_zk_view(h, zk, cluster, rest, leader=new, epoch=e2)


def test_kill9_leader_default_session(h):
    """kill -9 the leader with the default session timeout (6 s): a new leader within 8 s."""
    kill9_leader(h, "kill9d", DEFAULT_SESSION_MS)


def test_sigterm_leader(h):
    """SIGTERM the leader: it hands over and exits cleanly, a new leader within 1 s."""
    cluster, zk, nodes, old, e1 = three_nodes(h, "term")
    sampler = h.sampler(nodes)
    time.sleep(0.3)
    rest = [n for n in nodes if n is not old]
    t0 = time.monotonic()
    old.proc.terminate()
    h.log("%s: SIGTERM (pid %d)" % (old.name, old.pid))
    ms, lid, e2 = h.wait_agreement(rest, 5, pred=lambda lid, e: lid != old.id)
    took = (time.monotonic() - t0) * 1000
    h.check(ms is not None and took <= 1000,
            "after SIGTERM of the leader %s another node leads within 1000 ms" % old.name,
            "took %s ms; last view:\n%s" % (int(took) if ms is not None else "more than 5000",
                                          h.last_view))
    if ms is not None:
        new = next(n for n in rest if n.id == lid)
        h.log("TAKEOVER after SIGTERM: %s -> %s in %d ms, epoch %d -> %d" %
              (old.name, new.name, took, e1, e2))
        h.check(e2 > e1, "the epoch grew (%d -> %d)" % (e1, e2))
    rc = old.wait_exit(10)
    h.check(rc == 0, "the old leader exits with status 0 within 10 s of SIGTERM",
            "exit status: %s\n%s" % (rc, old.output()[-2000:]))
    h.check(not harness.is_mounted(old.mnt), "the old leader unmounted itself")
    old.stop()
    sampler.stop()
    check_no_shared_epoch(h, sampler)
    if ms is not None:
        # A clean shutdown closes the session: its znodes go at once, not at session expiry.
        check_zk_view(h, zk, cluster, rest, leader=new, epoch=e2)


def test_sigstop_leader(h):
    """SIGSTOP the leader past its session, SIGCONT: it follows, never acting with its old epoch."""
    session = SHORT_SESSION_MS
    cluster, zk, nodes, old, e1 = three_nodes(h, "stop", session_timeout=session)
    sampler = h.sampler(nodes, interval=0.02)
    time.sleep(0.3)
    rest = [n for n in nodes if n is not old]
    t_stop = time.monotonic()
    old.sigstop()
    ms, lid, e2 = h.wait_agreement(rest, (session + 3000) / 1000, pred=lambda lid, e: lid != old.id)
    took = (time.monotonic() - t_stop) * 1000
    h.require(ms is not None, "while %s is stopped another node leads within %d ms" %
              (old.name, session + 2000), "last view:\n%s" % h.last_view)
    new = next(n for n in rest if n.id == lid)
    h.log("TAKEOVER after SIGSTOP (session timeout %d ms): %s -> %s in %d ms, epoch %d -> %d" %
          (session, old.name, new.name, took, e1, e2))
    h.check(e2 > e1, "the epoch grew (%d -> %d)" % (e1, e2))
    # Stay stopped well past the session timeout, then resume.
    time.sleep(max(0.0, (session + 1500) / 1000 - (time.monotonic() - t_stop)))
    t_cont = time.monotonic()
    old.sigcont()
    ms, lid2, e3 = h.wait_agreement(nodes, (session + 8000) / 1000)
    h.check(ms is not None and lid2 == new.id and e3 == e2,
            "after SIGCONT %s follows %s at epoch %d (all three agree)" % (old.name, new.name, e2),
            "agreement: %s at epoch %s; last view:\n%s" % (lid2, e3, h.last_view))
    if ms is not None:
        h.log("%s: follower again %d ms after SIGCONT" %
              (old.name, (time.monotonic() - t_cont) * 1000))
    time.sleep(1)
    sampler.stop()
    def said_leader(epoch=None):
        found = sampler.find(lambda nid, st: nid == old.id and st is not None
                             and st.get("role") == "leader"
                             and (epoch is None or st_int(st, "epoch") == epoch), since=t_cont)
        return "\n".join("+%d ms after SIGCONT: %s" % ((t - t_cont) * 1000, view_str({nid: st}))
                         for t, nid, st in found[:10])

    stale = said_leader(e1)
    h.check(not stale, "after SIGCONT %s never says role leader with its old epoch %d" %
            (old.name, e1), stale)
    stale = said_leader()
    h.check(not stale, "after SIGCONT %s never says role leader at all (it is last in line)" %
            old.name, stale)
    seen = []
    for t, nid, st in sampler.find(lambda nid, st: nid == old.id, since=t_cont):
        v = st and "%s/%s/%s" % (st.get("role"), st.get("epoch"), st.get("zk"))
        if not seen or seen[-1][1] != v:
            seen.append((t, v))
    h.log("%s after SIGCONT (role/epoch/zk): %s" %
          (old.name, ", ".join("+%dms %s" % ((t - t_cont) * 1000, v) for t, v in seen)))
    check_no_shared_epoch(h, sampler)
    sts = statuses(nodes)
    h.check(harness.agreement(nodes, sts) == (new.id, e2),
            "a second later %s still leads at epoch %d" % (new.name, e2), view_str(sts))
    # It rejoined with a new session: it is last in line now.
    ch = election_children(zk, cluster)
    h.check(len(ch) == 3 and int(ch[-1][1].get("id", -1)) == old.id,
            "%s rejoined the election at the end of the line" % old.name,
            "children: %s" % [(c[0], c[1]) for c in ch])
    check_zk_view(h, zk, cluster, nodes, leader=new, epoch=e2)


def test_zookeeper_loss(h):
    """One ZooKeeper server killed: nothing changes; whole ensemble restarted: a new epoch."""
    ens = h.ensemble()
    cluster, zk, nodes, leader, e1 = three_nodes(h, "zkloss")
    sampler = h.sampler(nodes)
    time.sleep(0.3)
    # Kill the server that holds the leader's session, so that the leader itself is disconnected.
    _, stat = harness.zk_get(zk, "/kvfs/%s/leader" % cluster)
    victim = None
    if stat is not None:
        victim = next((s for s in ens.servers if stat.ephemeralOwner in s.session_ids()), None)
    how = "holds the leader's session"
    if victim is None:
        victim, how = ens.leader(), "is the ensemble's leader"
    h.log("killing zk%d (%s; it is a %s)" % (victim.sid, how, victim.mode()))
    t_kill = time.monotonic()
    victim.kill()
    ens.wait_serving(30)
    h.log("zookeeper serving again after %d ms: %s" %
          ((time.monotonic() - t_kill) * 1000, ens.modes()))
    ms, lid, e = h.wait_agreement(nodes, 15)
    h.check(ms is not None and (lid, e) == (leader.id, e1),
            "one ZooKeeper server killed: the same leader %s at the same epoch %d, zk connected "
            "everywhere" % (leader.name, e1),
            "agreement: %s at %s; last view:\n%s" % (lid, e, h.last_view))
    h.log("after the loss of zk%d: %s leads at epoch %s, settled %d ms after the kill" %
          (victim.sid, "n%s" % lid, e, (time.monotonic() - t_kill) * 1000))
    other = sampler.find(lambda nid, st: st is not None and st.get("role") == "leader"
                         and (nid != leader.id or st_int(st, "epoch") != e1), since=t_kill)
    h.check(not other, "meanwhile no other node and no other epoch said role leader",
            "\n".join(view_str({nid: st}) for _, nid, st in other[:10]))
    victim.start()
    ens.wait_serving(30)

    # The whole ensemble down for longer than the sessions last, then back.
    session = DEFAULT_SESSION_MS
    t_down = time.monotonic()
    ens.stop()
    time.sleep((session + 2000) / 1000)
    sts = statuses(nodes, timeout=1)
    h.check(all(st is not None for st in sts.values()),
            "with ZooKeeper down, /.status still answers on every node within 1 s", view_str(sts))
    h.check(all(st is None or st.get("zk") != "connected" for st in sts.values()),
            "with ZooKeeper down no node says zk: connected", view_str(sts))
    h.check(all(st is None or st.get("role") != "leader" for st in sts.values()),
            "with ZooKeeper down for %d s no node says role leader" % ((session + 2000) / 1000),
            view_str(sts))
    h.log("zookeeper down for %d ms; nodes: %s" %
          ((time.monotonic() - t_down) * 1000, view_str(sts).replace("\n", " | ")))
    t_up = time.monotonic()
    ens.start()
    ms, lid, e2 = h.wait_agreement(nodes, (session + 15000) / 1000)
    h.check(ms is not None and e2 > e1,
            "ensemble restarted: exactly one leader, every node names it, at an epoch above %d" %
            e1,
            "agreement: %s at %s; last view:\n%s" % (lid, e2, h.last_view))
    if ms is not None:
        h.log("after the ensemble restart: n%d leads at epoch %d, %d ms after the servers "
              "were started" %
              (lid, e2, (time.monotonic() - t_up) * 1000))
        new = next(n for n in nodes if n.id == lid)
        # Old sessions may linger on the servers until they expire; wait for them to go. Our
        # own kazoo client's old session is one of them: a restarted ensemble may take it back
        # and expire it a few seconds later, in the middle of the checks. A new client, with a
        # session made after the restart, sees the same znodes without that race.
        zk = h.zk_client()

        def three_children():
            try:
                return len(election_children(zk, cluster)) == 3
            except KazooException:
                return False

        h.wait_for(three_children, (session + 3000) / 1000, 0.1)
        check_zk_view(h, zk, cluster, nodes, leader=new, epoch=e2)
    sampler.stop()
    check_no_shared_epoch(h, sampler)


if __name__ == "__main__":
    harness.main([
        test_three_nodes_one_leader,
        test_kill9_leader_short_session,
        test_kill9_leader_default_session,
        test_sigterm_leader,
        test_sigstop_leader,
        test_zookeeper_loss,
    ])
