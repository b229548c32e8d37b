#!/usr/bin/python3
"""Online membership change (issue 12, must-haves 2 and 3), against a real three-server
ZooKeeper ensemble started here (see harness.py), with `kvfs member` as a user runs it and a
writer acknowledging writes through one mount all along.

(1) 3 -> 5: nodes 4 and 5 start (--id 4/5, not members yet); `kvfs member add 4`, `add 5`
    (each: observer, catch-up, promotion); every /.status then shows voters 1,2,3,4,5; `add 4`
    again is done at once, `promote 9` is refused (exit 1), a cluster that does not exist
    exits 5.
(2) 5 -> 3: `kvfs member remove L` of the current leader (it hands the lead over first), then
    of another node; both removed nodes exit 0; every remaining /.status shows the three voters
    left; the three survive a kill -9 of one of them (a write still goes through).
(3) An observer: node 6 started with --role observer --read linearizable joins by itself, shows
    `role: observer`, reads at once a write made on another node, takes writes (forwarded), and
    never leads.
Every acknowledged write is read back at the end on every live node.

Log lines a reader can quote: MEMBER (per change: request, index, duration, the largest gap
between consecutive acknowledged writes during it), HISTORY, OBSERVER.

Usage: test_membership.py KVFS_BIN        (run by `meson test --suite cluster`)
"""

import os
import re
import subprocess
import sys
import threading
import time

os.environ.setdefault("KVFS_TEST_TIMEOUT", "150")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import st_int, start_in_order, statuses, view_str  # noqa: E402
from writer import Writer  # noqa: E402
from test_replication import read_file, write_file  # noqa: E402

SESSION_MS = 3000
MEMBER_TIMEOUT_MS = 30000


def member(h, node, *args):
    """Runs `kvfs member ARGS --zk ... --cluster ...`; returns (exit status, stdout, stderr,
    ms)."""
    cmd = [h.kvfs, "member", "--zk", node.zk_hosts, "--cluster", node.cluster,
           "--timeout", str(MEMBER_TIMEOUT_MS)] + list(args)
    if node.zk_auth_file:
        cmd += ["--zk-auth-file", node.zk_auth_file]
    t0 = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=MEMBER_TIMEOUT_MS / 1000 + 15)
    ms = (time.monotonic() - t0) * 1000
    h.log("$ kvfs member %s -> %d\n    %s%s" %
          (" ".join(args), p.returncode, p.stdout.strip(),
           "\n    " + p.stderr.strip().replace("\n", "\n    ") if p.stderr.strip() else ""))
    return p.returncode, p.stdout, p.stderr, ms


def change(h, writer, node, what, *args):
    """One `kvfs member` change under the writer: checks it is done and logs its MEMBER line.
    Returns the stdout line."""
    t0 = time.monotonic()
    rc, out, err, ms = member(h, node, *args)
    t1 = time.monotonic()
    m = re.search(r"index (\d+)", out)
    req = re.search(r"request (req-\d+)", err)
    gap = writer.max_gap_ms(t0, t1)
    h.check(rc == 0, "kvfs member %s is done (exit 0)" % " ".join(args), out + err)
    h.log("MEMBER %s %s: done at index %s in %d ms; max write gap %s ms" %
          (what, req.group(1) if req else "req-?", m.group(1) if m else "?", ms,
           "%d" % gap if gap is not None else "?"))
    return out


def ids(text):
    return sorted(int(x) for x in text.split(",") if x.strip().isdigit()) if text else []


def wait_voters(h, nodes, want, timeout=20):
    """Waits until every node's /.status says `voters: WANT`; checks it."""
    def cond():
        sts = statuses(nodes)
        return all(sts.get(n.id) and ids(sts[n.id].get("voters", "")) == want
                   for n in nodes) and sts
    ms = h.wait_for(cond, timeout, interval=0.2)
    sts = statuses(nodes)
    h.check(ms is not None, "every node (%s) shows voters %s in /.status" %
            (",".join(n.name for n in nodes), ",".join(map(str, want))),
            "\n".join("%s: voters %s" % (n.name, (sts.get(n.id) or {}).get("voters"))
                      for n in nodes))


def wait_exit0(h, node, timeout=10):
    t0 = time.monotonic()
    while node.alive() and time.monotonic() - t0 < timeout:
        time.sleep(0.1)
    rc = node.proc.poll() if node.proc else None
    h.check(rc == 0, "removed %s exits with status 0" % node.name,
            "status %s; log:\n%s" % (rc, node.tail(15)))


def test_membership(h):
    cluster = h.cluster_name("member")
    zk = h.zk_client()
    h.watch_leader(zk, cluster)
    opts = dict(session_timeout=SESSION_MS, extra=["--write-timeout", "5000"])
    nodes = h.nodes(cluster, 3, **opts)
    start_in_order(h, nodes, zk)
    ms, lid, epoch = h.wait_agreement(nodes, 20)
    h.require(ms is not None, "the three nodes agree on a leader", h.last_view)
    # the writer's node: the last one in line that does not lead, so that it still stands
    # when the leader is removed and the next one in line (then leading) is killed
    w_node = next(n for n in reversed(nodes) if n.id != lid)
    os.makedirs(os.path.join(w_node.mnt, "m"), exist_ok=True)
    writer = Writer(w_node, "m", 0.02)
    writer.start()
    h.log("writer through %s; leader n%d at epoch %d" % (w_node.name, lid, epoch))

    # (1) 3 -> 5
    n4, n5 = h.node(4, cluster, **opts), h.node(5, cluster, **opts)
    for n in (n4, n5):
        n.start()
    time.sleep(1)
    rc, out, _, _ = member(h, nodes[0], "list")
    h.check(rc == 0 and "bootstrap: voters 1..3" in out,
            "kvfs member list shows the bootstrap configuration", out)
    t0 = time.monotonic()
    time.sleep(1)
    gap = writer.max_gap_ms(t0, time.monotonic())
    h.log("BASELINE max write gap %s ms over 1 s without a change" %
          ("%d" % gap if gap is not None else "?"))
    change(h, writer, nodes[0], "add 4 (voter)", "add", "4")
    change(h, writer, nodes[0], "add 5 (voter)", "add", "5")
    five = nodes + [n4, n5]
    wait_voters(h, five, [1, 2, 3, 4, 5])
    rc, out, _, _ = member(h, nodes[0], "add", "4")
    h.check(rc == 0 and "voters 1,2,3,4,5" in out,
            "kvfs member add 4 again is done at once (a request already satisfied)", out)
    rc, out, _, _ = member(h, nodes[0], "promote", "9")
    h.check(rc == 1 and out.startswith("refused: node 9 is not a member"),
            "kvfs member promote 9 (not a member) is refused: exit 1 and why", out)
    rc, out, err, _ = member(h, nodes[0], "list", "--cluster", "no-such-cluster")
    h.check(rc == 5 and "no cluster 'no-such-cluster'" in err,
            "kvfs member list of a cluster that does not exist exits 5", out + err)
    rc, out, _, _ = member(h, nodes[0], "list")
    h.check(rc == 0 and "voters 1,2,3,4,5" in out,
            "kvfs member list shows voters 1,2,3,4,5 (from /config)", out)

    # (2) 5 -> 3: the leader first, then another node that is not the writer's
    ms, lid, epoch = h.wait_agreement(five, 20)
    h.require(ms is not None, "the five nodes agree on a leader", h.last_view)
    leader = next(n for n in five if n.id == lid)
    change(h, writer, w_node, "remove %d (the leader)" % lid, "remove", str(lid))
    wait_exit0(h, leader)
    rest = [n for n in five if n is not leader]
    other = next(n for n in reversed(rest) if n is not w_node)
    change(h, writer, w_node, "remove %d" % other.id, "remove", str(other.id))
    wait_exit0(h, other)
    three = [n for n in rest if n is not other]
    wait_voters(h, three, sorted(n.id for n in three))
    rc, out, _, _ = member(h, w_node, "list")
    want = ",".join(str(n.id) for n in three)
    h.check(rc == 0 and "voters %s, observers none" % want in out,
            "kvfs member list shows voters %s (from /config)" % want, out)
    ms, lid, epoch = h.wait_agreement(three, 20)
    victim = next((n for n in three if n.id == lid and n is not w_node), None) or \
        next(n for n in three if n is not w_node)
    victim.kill9()
    h.log("kill -9 %s (%s)" % (victim.name, "the leader" if victim.id == lid else "a follower"))
    survivors = [n for n in three if n is not victim]
    ms, lid, epoch = h.wait_agreement(survivors, 20)
    h.check(ms is not None, "the two survivors of three voters agree on a leader",
            h.last_view)
    probe = os.path.join(w_node.mnt, "m/after-kill")
    h.check(h.wait_for(lambda: write_file(probe, b"two of three\n") == 0, 15, 0.2) is not None,
            "a write goes through with two of the three voters")

    # A change that could not commit now is not made: removing the other live voter would
    # leave the writer's node and the dead one.
    other_live = next(n for n in survivors if n is not w_node)
    rc, out, err, ms = member(h, w_node, "remove", str(other_live.id), "--timeout", "3000")
    h.check(rc == 3 and "would not make a majority" in err,
            "kvfs member remove %d with node %d down waits (the new voters would not make a "
            "majority) and times out: exit 3" % (other_live.id, victim.id), out + err)
    h.check(h.wait_for(lambda: write_file(probe, b"still\n") == 0, 10, 0.2) is not None,
            "writes go on after the refused change")

    # (3) an observer joins by itself
    n6 = h.node(6, cluster, session_timeout=SESSION_MS,
                extra=["--role", "observer", "--read", "linearizable", "--write-timeout",
                       "5000"])
    n6.start()

    def observer():
        st = statuses([n6]).get(6)
        return st if st and st.get("role") == "observer" else None
    ms = h.wait_for(observer, 20, interval=0.2)
    h.check(ms is not None, "n6 (--role observer) joins as an observer: role: observer",
            view_str(statuses([n6])))
    leaders = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            st = statuses([n6] + survivors)
            leaders.extend(st_int(s, "leader") for s in st.values() if s)
            stop.wait(0.2)
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    stale = 0
    for i in range(20):
        rel = "m/obs-%02d" % i
        data = ("%d\n" % i).encode()
        if write_file(os.path.join(survivors[0].mnt, rel), data) == 0 and \
                read_file(os.path.join(n6.mnt, rel)) != data:
            stale += 1
    h.check(stale == 0, "n6 reads at once each of 20 writes made on %s" % survivors[0].name,
            "%d stale" % stale)
    via = os.path.join(n6.mnt, "m/through-observer")
    h.check(write_file(via, b"via n6\n") == 0 and
            read_file(os.path.join(survivors[0].mnt, "m/through-observer")) == b"via n6\n",
            "a write through the observer n6 succeeds and reads back on %s" %
            survivors[0].name)
    time.sleep(3)  # a few more samples of who leads
    stop.set()
    th.join(5)
    h.check(6 not in leaders, "n6 never leads (%d samples)" % len(leaders))
    h.log("OBSERVER n6: 20 reads after writes on %s, %d stale; never leader (%d samples)" %
          (survivors[0].name, stale, len(leaders)))

    # (4) the observer promoted to a voter (4 voters, one of them dead: 3 of 4 make a
    # majority), then demoted again
    change(h, writer, w_node, "promote 6", "promote", "6")
    wait_voters(h, survivors + [n6], sorted([n.id for n in three] + [6]))
    change(h, writer, w_node, "demote 6", "demote", "6")
    wait_voters(h, survivors + [n6], sorted(n.id for n in three))
    st = statuses([n6]).get(6) or {}
    h.check(st.get("role") == "observer", "n6 is an observer again after the demotion",
            view_str({6: st}))

    # history: every acknowledged write, on every live node
    writer.stop()
    acked = dict(writer.acked)
    live = survivors + [n6]
    last = sorted(acked)[-1:]
    h.wait_for(lambda: all(read_file(os.path.join(n.mnt, k)) == acked[k]
                           for n in live for k in last), 15, interval=0.2)
    lost = ["%s: %s" % (n.name, k) for n in live for k, v in sorted(acked.items())
            if read_file(os.path.join(n.mnt, k)) != v]
    h.check(len(acked) >= 50, "the writer got writes through all along (%d acknowledged, %d "
            "failed)" % (len(acked), len(writer.errors)))
    h.check(not lost, "every acknowledged write reads back on every live node", "\n".join(lost[:10]))
    h.log("HISTORY %d acknowledged writes, %d lost (%d failed writes: %s)" %
          (len(acked), len({x.split(": ")[1] for x in lost}), len(writer.errors),
           writer.errors[:5]))


if __name__ == "__main__":
    harness.main([test_membership])
