#!/usr/bin/python3
"""Chaos run (issue 8): a three-server ZooKeeper ensemble and a three-node kvfs cluster, every
process in its own network namespace (harness.py), clients on every mount recording a history
(workload.py), and randomized faults drawn from a seed, each followed by a heal and a recovery
window:

  kill9_leader, kill9_follower   kill -9 of a node, restarted after a while
  stop_short, stop_long          SIGSTOP of a node (leader or follower) for less / more than the
                                 session timeout, then SIGCONT
  cut_leader_peers               the leader cut from both peers (it keeps ZooKeeper)
  cut_leader_zk                  the leader cut from every ZooKeeper server
  isolate_leader                 the leader cut from everything
  isolate_leader_slowly          the leader cut from everything one link at a time, 0.5-3.5 s
                                 apart (in random order), as a network that fails piece by piece
  minority_zk                    the leader and one ZooKeeper server cut from the rest
  bridge                         the leader and one follower cannot see each other
  zk_kill                        a ZooKeeper server killed with SIGKILL, restarted

It logs, timestamped: who leads at which epoch (polled from /.status), each injection and heal,
how long writes were unavailable after each fault (the longest time without an acknowledged
write, on any node, from the last one before the injection to the end of the recovery window),
the largest lag_entries/lag_ms seen and the stalest reads; at the end the history checker's
verdict (history.py) and a table per fault kind. The same seed gives the
same schedule of faults (kinds, targets by role, durations); what the cluster does in between is
real time.

Usage: chaos.py [--minutes N] [--seed S] [--read local|linearizable] [--kvfs PATH]
(scripts/chaos.sh wraps it; tests/cluster/test_chaos.py runs it briefly in CI). Everything it
starts is cleaned up by harness.py (processes by PID, mounts, namespaces, nftables rules) on
exit, error and Ctrl-C.
"""

import argparse
import gc
import os
import random
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import agreement, settle, st_int, start_in_order, statuses  # noqa: E402
from test_replication import tree  # noqa: E402
from workload import Workload, check_history  # noqa: E402

SESSION_MS = 2000
OPTS = dict(netns=True, session_timeout=SESSION_MS,
            extra=["--write-timeout", "3000", "--snapshot-bytes", "262144"])
KINDS = ["kill9_leader", "kill9_follower", "stop_short", "stop_long", "cut_leader_peers",
         "cut_leader_zk", "isolate_leader", "isolate_leader_slowly", "minority_zk", "bridge",
         "zk_kill"]
RECOVERY_TIMEOUT_S = 30


class Fault:
    def __init__(self, index, kind, hold, pick, calm):
        self.index = index
        self.kind = kind
        self.hold = hold      # seconds the fault lasts
        self.pick = pick      # in [0, 1): which follower, node or server, by rank
        self.calm = calm      # seconds of normal operation after the recovery
        self.t_inject = None
        self.unavail_ms = None
        self.recovery_ms = None
        self.what = ""


def schedule(seed, kinds=None):
    """The endless fault schedule of SEED (faults of KINDS, default all)."""
    rng = random.Random(seed)
    i = 0
    while True:
        i += 1
        kind = rng.choice(kinds or KINDS)
        if kind == "stop_short":
            hold = rng.uniform(0.3, 0.6 * SESSION_MS / 1000)
        elif kind == "stop_long":
            hold = rng.uniform(1.5 * SESSION_MS / 1000, 2.5 * SESSION_MS / 1000)
        elif kind.startswith("kill9"):
            hold = rng.uniform(0.5, 4.0)
        else:
            hold = rng.uniform(2.0, 6.0)
        yield Fault(i, kind, round(hold, 2), rng.random(), round(rng.uniform(1.0, 3.0), 2))


class Watcher:
    """Polls /.status of every node: logs each new (leader, epoch), remembers the largest lag
    a follower showed, and any epoch at which two nodes said they lead."""

    def __init__(self, h, nodes, say):
        self.h = h
        self.nodes = nodes
        self.say = say
        self.leaders = {}        # epoch -> set of node ids that said leader
        self.max_lag_entries = 0
        self.max_lag_ms = 0
        self.max_lag_entries_at = self.max_lag_ms_at = None
        self.samples = {n.id: [] for n in nodes}  # node id -> [(time, status facts)]
        self.running = True
        self.th = threading.Thread(target=self.run, daemon=True)
        self.th.start()

    def run(self):
        while self.running:
            sts = statuses([n for n in self.nodes if n.alive() and not n.stopped], timeout=0.5)
            for nid, st in sts.items():
                if not st:
                    continue
                ep = st_int(st, "epoch")
                if st.get("role") == "leader" and ep is not None:
                    ids = self.leaders.setdefault(ep, set())
                    if nid not in ids:
                        ids.add(nid)
                        self.say("n%d leads at epoch %d%s" %
                                 (nid, ep, "  (TWO LEADERS at this epoch: %s)" %
                                  sorted(ids) if len(ids) > 1 else ""))
                self.samples[nid].append((time.monotonic(), {
                    k: st.get(k) for k in ("role", "leader", "epoch", "zk", "applied_index",
                                           "lag_entries", "lag_ms")}))
                le = st_int(st, "lag_entries")
                lm = st_int(st, "lag_ms")
                if le is not None and le > self.max_lag_entries:
                    self.max_lag_entries = le
                    self.max_lag_entries_at = (nid, self.samples[nid][-1][1])
                if lm is not None and lm > self.max_lag_ms:
                    self.max_lag_ms = lm
                    self.max_lag_ms_at = (nid, self.samples[nid][-1][1])
            time.sleep(0.25)

    def stop(self):
        self.running = False
        self.th.join(3)

    def around(self, nid, t):
        """What node NID's /.status said last before T (seconds before, facts), or None."""
        before = [x for x in self.samples.get(nid, ()) if x[0] <= t]
        return (t - before[-1][0], before[-1][1]) if before else None


class Chaos:
    def __init__(self, h, seed, seconds, read, say=None, kinds=None):
        self.h = h
        self.kinds = kinds
        self.seed = seed
        self.seconds = seconds
        self.read = read
        self.say = say or h.log
        self.faults = []

    def leader(self):
        sts = statuses(self.nodes)
        a = agreement(self.nodes, sts)
        if a:
            return next(n for n in self.nodes if n.id == a[0])
        for n in self.nodes:
            st = sts.get(n.id)
            if st and st.get("role") == "leader":
                return n
        return self.nodes[0]

    def recover(self, timeout=RECOVERY_TIMEOUT_S):
        """Waits until every node agrees on one leader and none lags; ms or None."""
        def cond():
            sts = statuses(self.nodes)
            a = agreement(self.nodes, sts)
            if not a:
                return False
            return all(st and st_int(st, "lag_entries") == 0 for st in sts.values())
        return self.h.wait_for(cond, timeout, interval=0.1)

    def restart(self, n):
        n.start(timeout=30)
        self.wl.up(n)

    def inject(self, f):
        h, nodes = self.h, self.nodes
        leader = self.leader()
        followers = [n for n in nodes if n is not leader]
        follower = followers[int(f.pick * len(followers))]
        servers = h.ensemble().servers
        f.t_inject = time.monotonic()
        k = f.kind
        if k.startswith("kill9"):
            victim = leader if k == "kill9_leader" else follower
            f.what = "kill -9 %s (%s), restart after %.1f s" % (
                victim.name, "leader" if victim is leader else "follower", f.hold)
            self.say("FAULT %d %s: %s" % (f.index, k, f.what))
            self.wl.down(victim)
            victim.kill9()
            f.t_inject = time.monotonic()
            time.sleep(f.hold)
            self.restart(victim)
            self.say("HEAL %d: %s restarted" % (f.index, victim.name))
        elif k.startswith("stop"):
            victim = leader if f.pick < 0.5 else follower
            f.what = "SIGSTOP %s (%s) for %.1f s (session timeout %.1f s)" % (
                victim.name, "leader" if victim is leader else "follower", f.hold,
                SESSION_MS / 1000)
            self.say("FAULT %d %s: %s" % (f.index, k, f.what))
            victim.sigstop()
            f.t_inject = time.monotonic()
            time.sleep(f.hold)
            victim.sigcont()
            self.say("HEAL %d: %s continued" % (f.index, victim.name))
        elif k == "zk_kill":
            z = servers[int(f.pick * len(servers))]
            f.what = "kill -9 ZooKeeper server %s (%s) for %.1f s" % (z.name, z.mode(), f.hold)
            self.say("FAULT %d %s: %s" % (f.index, k, f.what))
            z.kill()
            f.t_inject = time.monotonic()
            time.sleep(f.hold)
            z.start()
            try:
                h.ensemble().wait_serving(60, servers=[z])
            except RuntimeError as e:
                h.check(False, "ZooKeeper server %s serves again after its restart" % z.name,
                        str(e))
            self.say("HEAL %d: %s serving again (%s)" % (f.index, z.name, z.mode()))
        else:
            if k == "cut_leader_peers":
                f.what = "%s (leader) cut from %s" % (
                    leader.name, "/".join(n.name for n in followers))
                act = lambda: h.isolate(leader, from_=followers)  # noqa: E731
            elif k == "cut_leader_zk":
                f.what = "%s (leader) cut from every ZooKeeper server" % leader.name
                act = lambda: h.cut_zk(leader)  # noqa: E731
            elif k == "isolate_leader":
                f.what = "%s (leader) cut from everything" % leader.name
                act = lambda: h.isolate(leader)  # noqa: E731
            elif k == "isolate_leader_slowly":
                others = followers + servers
                random.Random("%s-%d" % (self.seed, f.index)).shuffle(others)
                f.what = "%s (leader) cut from %s, one link at a time" % (
                    leader.name, ", ".join(o.name for o in others))
                pause = 0.5 + 3.0 * f.pick

                def act(others=others, pause=pause):
                    for o in others:
                        h.cut(leader, o)
                        time.sleep(pause)
            elif k == "minority_zk":
                zmin = [s for s in servers if s.alive()]
                zf = [s for s in zmin if s.mode() == "follower"] or zmin
                z = zf[int(f.pick * len(zf))]
                f.what = "%s (leader) and %s cut from %s and the other servers" % (
                    leader.name, z.name, "/".join(n.name for n in followers))
                act = lambda: h.partition([[leader, z],  # noqa: E731
                                           followers + [s for s in servers if s is not z]])
            else:  # bridge
                f.what = "%s (leader) and %s (follower) cut from each other, %s bridges" % (
                    leader.name, follower.name,
                    "/".join(n.name for n in followers if n is not follower))
                act = lambda: h.cut(leader, follower)  # noqa: E731
            self.say("FAULT %d %s: %s for %.1f s" % (f.index, k, f.what, f.hold))
            act()
            f.t_inject = time.monotonic()  # the rules are in
            time.sleep(f.hold)
            h.heal()
            self.say("HEAL %d: every link restored" % f.index)

    def unavailability(self, f, t_end):
        """The longest time without an acknowledged write from the injection to T_END: from the
        last write acknowledged before (the injection, or a gap's start) to the next one; ms, or
        None when no write was acknowledged before the injection."""
        rets = sorted(o.ret for o in self.wl.history.snapshot()
                      if o.kind != "read" and o.outcome == "ok" and o.ret is not None and
                      o.ret <= t_end)
        before = [t for t in rets if t <= f.t_inject]
        if not before:
            return None
        points = [before[-1]] + [t for t in rets if t > f.t_inject] + [t_end]
        return max(b - a for a, b in zip(points, points[1:])) * 1000

    def run(self):
        # The history grows to millions of objects in a long run, and full collections over it
        # pause every client thread; Op objects form no cycles, so none is needed.
        gc.disable()
        try:
            return self._run()
        finally:
            gc.enable()

    def _run(self):
        h = self.h
        h.ensemble(netns=True)
        zk = h.zk_client()
        opts = dict(OPTS, extra=OPTS["extra"] + ["--read", self.read])
        self.nodes = nodes = h.nodes(h.cluster_name("chaos"), 3, **opts)
        start_in_order(h, nodes, zk)
        leader, epoch = settle(h, nodes, what="one leader, established")
        self.wl = wl = Workload(nodes, seed=self.seed, pace=0.01)
        wl.setup()
        watcher = Watcher(h, nodes, self.say)
        self.say("chaos: seed %s, --read %s, %.0f s of faults, session timeout %d ms; %s leads "
                 "at epoch %d" % (self.seed, self.read, self.seconds, SESSION_MS, leader.name,
                                  epoch))
        wl.start()
        time.sleep(2)
        t_end = time.monotonic() + self.seconds
        for f in schedule(self.seed, self.kinds):
            if time.monotonic() + f.hold > t_end:
                break
            for n in nodes:
                if not n.alive():
                    h.check(False, "%s still runs before fault %d" % (n.name, f.index),
                            "exit status %s\n%s" % (n.proc.returncode, n.tail(20)))
                    self.wl.down(n)
                    self.restart(n)
            self.inject(f)
            self.faults.append(f)
            ms = self.recover()
            f.recovery_ms = ms
            if ms is None:
                h.check(False, "fault %d (%s): the cluster recovers within %d s of the heal" %
                        (f.index, f.kind, RECOVERY_TIMEOUT_S), h.last and str(h.last))
                self.say("RECOVERY %d: not within %d s" % (f.index, RECOVERY_TIMEOUT_S))
            time.sleep(f.calm)
            f.unavail_ms = self.unavailability(f, time.monotonic())
            self.say("RECOVERY %d: one leader, no lag %s ms after the heal; longest time "
                     "without an acknowledged write %s ms" %
                     (f.index, "%d" % ms if ms is not None else "never",
                      "%d" % f.unavail_ms if f.unavail_ms is not None else "?"))
        # The end: everything up and healed, caught up; then the checker.
        h.heal()
        for n in nodes:
            if n.stopped:
                n.sigcont()
            if not n.alive():
                h.check(False, "%s still runs at the end" % n.name,
                        "exit status %s\n%s" % (n.proc.returncode, n.tail(20)))
                self.wl.down(n)
                self.restart(n)
        ms = self.recover()
        h.check(ms is not None, "at the end: one leader, every node caught up (within %d s)" %
                RECOVERY_TIMEOUT_S)
        time.sleep(1)
        wl.finish()
        ms = self.recover()
        watcher.stop()
        res = check_history(h, wl, nodes, self.read, "chaos seed %s" % self.seed, tree)
        wl.close_fds()
        two = {e: ids for e, ids in watcher.leaders.items() if len(ids) > 1}
        h.check(not two, "never two leaders at one epoch", str(two))
        self.say("stale reads: the largest lag a node showed was %d entries, %d ms; the checker "
                 "saw %d reads of a value overwritten before the read began (at most %d ms "
                 "behind)" % (watcher.max_lag_entries, watcher.max_lag_ms,
                              res.stats["stale_reads"], res.stats["max_stale_ms"]))
        if watcher.max_lag_entries_at:
            self.say("largest lag_entries: n%d said %s" % watcher.max_lag_entries_at)
        if watcher.max_lag_ms_at:
            self.say("largest lag_ms: n%d said %s" % watcher.max_lag_ms_at)
        # A read staler than the lag its node showed last before it (plus the time since, and
        # 250 ms of slack): --read local promises staleness "by the lag /.status shows".
        beyond = []
        for r, q, behind in res.stale:
            a = watcher.around(r.node, r.inv)
            lm = st_int(a[1], "lag_ms") if a else None
            if a and lm is not None and lm >= 0 and behind > lm + a[0] * 1000 + 250:
                beyond.append((r, q, behind, a))
        self.say("stale reads beyond the lag /.status showed (by more than 250 ms): %d" %
                 len(beyond))
        worst = sorted(beyond, key=lambda x: -x[2])[:5] or \
            [(r, q, b, watcher.around(r.node, r.inv)) for r, q, b in
             sorted(res.stale, key=lambda x: -x[2])[:3]]
        for r, q, behind, a in worst:
            self.say("stale read at %.3fs: n%d read %s %.0f ms after %r was acknowledged (%s); "
                     "n%d's /.status %s" % (r.inv - h.log.t0, r.node, r.key, behind,
                                            q.value[:12], q.client, r.node,
                                            "%.2f s before said %s" % a if a else "unknown"))
        self.beyond_lag = len(beyond)
        for v in res.violations:
            self.say("VIOLATION " + v)
        verdict = res.verdict() if not h.test_failed or not res.ok else \
            "FAILED CHECKS (%d, see above)" % h.test_failed
        self.say("chaos: seed %s, %d faults, %d acknowledged ops, verdict: %s" %
                 (self.seed, len(self.faults), res.stats["acked_writes"], verdict))
        self.say(self.table())
        return res

    def table(self):
        rows = ["%-18s %5s %16s %16s %14s" % ("fault", "count", "max unavail ms",
                                             "mean unavail ms", "max recover ms")]
        for k in KINDS:
            fs = [f for f in self.faults if f.kind == k]
            if not fs:
                continue
            u = [f.unavail_ms for f in fs if f.unavail_ms is not None]
            r = [f.recovery_ms for f in fs if f.recovery_ms is not None]
            rows.append("%-18s %5d %16s %16s %14s" % (
                k, len(fs), "%d" % max(u) if u else "-", "%d" % (sum(u) / len(u)) if u else "-",
                "%d" % max(r) if r else "-"))
        return "\n".join(rows)


def build_kvfs(root):
    build = os.path.join(root, "build")
    if not os.path.exists(os.path.join(build, "build.ninja")):
        subprocess.run(["meson", "setup", build, "--buildtype=debugoptimized"], cwd=root,
                       check=True)
    subprocess.run(["ninja", "-C", build], check=True)
    return os.path.join(build, "fs", "kvfs")


def main():
    ap = argparse.ArgumentParser(description="kvfs chaos run (see the top of this file)")
    ap.add_argument("--minutes", type=float, default=5.0, help="time spent injecting faults")
    ap.add_argument("--seed", default=None, help="fault schedule seed (default: random)")
    ap.add_argument("--read", choices=("local", "linearizable"), default="local")
    ap.add_argument("--kvfs", default=None, help="kvfs binary (default: build ./build)")
    ap.add_argument("--faults", default=None,
                    help="comma-separated fault kinds to draw from (default: all): " +
                    ", ".join(KINDS))
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else str(random.randrange(1, 1 << 30))
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    kvfs = args.kvfs or build_kvfs(root)
    seconds = args.minutes * 60
    kinds = [k for k in (args.faults or "").split(",") if k] or None
    bad = [k for k in kinds or () if k not in KINDS]
    if bad:
        ap.error("unknown fault kinds %s (known: %s)" % (bad, ", ".join(KINDS)))

    def test_chaos(h):
        """Randomized faults under clients on every mount, then the history checker."""
        Chaos(h, seed, seconds, args.read, kinds=kinds).run()

    os.environ.setdefault("KVFS_TEST_TIMEOUT", str(int(seconds + 600)))
    os.environ.setdefault("KVFS_LOG_LIVE", "1")
    sys.argv = [sys.argv[0], kvfs]
    harness.main([test_chaos])


if __name__ == "__main__":
    main()
