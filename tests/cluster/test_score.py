#!/usr/bin/python3
"""The leader score (issue 12, must-have 1), against a real three-server ZooKeeper ensemble
started here (see harness.py). Three nodes in priority mode, all priority 1, --hold-down 3000,
--rtt-margin 20, a writer running through one mount. Slow links are made with the transport's
test hook (--test-peer-delay, KVFS_TEST_HOOKS=1: every message a node sends to a peer is held
DELAY +- JITTER ms), so a delay on one node slows every round trip through it.

(a) The leader's links get 40 +- 10 ms: leadership moves to a well-connected node, no sooner
    than the hold-down and within hold-down + 5 s.
(b) 2 +- 2 ms on the other two nodes' links (the slow one keeps its 40 +- 10 ms), every node's
    /.status sampled every 200 ms for 30 s: no leader change, no epoch change.
(c) The old leader's links restored (to the others' 2 +- 2 ms): no move back within 10 s.
(d) The old leader restarted with priority 2, links slow again (40 +- 10 ms): it leads within
    hold-down + 10 s of its start despite its links (priority dominates RTT).
Every write acknowledged is read back on every node at the end.

The execution log has lines a reader can quote: SCORE (leader, epoch, each node's quorum RTT
and the scores the leader shows), HANDOVER, STABLE, NO-MOVE-BACK, PRIORITY.

Usage: test_score.py KVFS_BIN        (run by `meson test --suite cluster`)
"""

import os
import re
import sys
import time

os.environ.setdefault("KVFS_TEST_TIMEOUT", "150")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import agreement, st_int, st_ms, start_in_order, statuses, view_str  # noqa: E402
from writer import Writer  # noqa: E402
from test_replication import read_file  # noqa: E402

HOLD_DOWN_MS = 3000
SESSION_MS = 3000
RTT_MARGIN = 20
SLOW = (40, 10)     # ms, jitter ms
JITTER = (2, 2)
SAMPLE_S = 0.2
STABLE_S = 30
NO_MOVE_BACK_S = 10


class Clock:
    """Seconds since the test's start, for the log lines."""

    def __init__(self):
        self.t0 = time.monotonic()

    def __call__(self, t=None):
        return "t=+%.1fs" % ((time.monotonic() if t is None else t) - self.t0)


def qrtt(st):
    """A node's quorum_rtt_ms as shown ('0.31ms', or '?' when unknown or absent)."""
    v = st_ms(st.get("quorum_rtt_ms")) if st else None
    return "?" if v is None else "%.2fms" % v


def score_lines(st):
    """The score: lines a status shows, one string each, rank order."""
    scores = (st or {}).get("scores", {})
    out = []
    for sid, s in sorted(scores.items(), key=lambda kv: int(kv[1].get("rank", "99"))):
        out.append("n%d rank=%s eligible=%s priority=%s quorum_rtt_ms=%s rtt_b=%s lag_b=%s "
                   "leader=%s beats_leader_ms=%s why=%s" %
                   (sid, s.get("rank"), s.get("eligible"), s.get("priority"),
                    s.get("quorum_rtt_ms"), s.get("rtt_b"), s.get("lag_b"), s.get("leader"),
                    s.get("beats_leader_ms"), s.get("why")))
    return out


def log_score(h, clock, nodes, sts, tag="SCORE", t=None):
    """One SCORE line (leader, epoch, each node's quorum RTT) and the leader's score lines."""
    a = agreement(nodes, sts)
    lead = "n%d epoch %d" % a if a else "none agreed"
    h.log("%s %s leader %s; quorum_rtt %s" %
          (tag, clock(t), lead, " ".join("%s %s" % (n.name, qrtt(sts.get(n.id))) for n in nodes)))
    if a:
        for line in score_lines(sts.get(a[0])):
            h.log("    score (as n%d shows it): %s" % (a[0], line))
    return a


def poll(nodes):
    """(monotonic time, statuses) of every node now."""
    t = time.monotonic()
    return t, statuses(nodes, timeout=1.0)


def wait_leader(h, clock, nodes, pred, timeout, log_every=1.0):
    """Polls every SAMPLE_S until the nodes agree on a leader id for which PRED holds. Logs a
    SCORE line every LOG_EVERY s. Returns (time of the first sample that showed it, agreement,
    the statuses then, the statuses of the sample before) or (None, None, None, last)."""
    end = time.monotonic() + timeout
    last_log = 0.0
    prev = None
    while time.monotonic() < end:
        t, sts = poll(nodes)
        a = agreement(nodes, sts)
        if a and pred(a[0]):
            return t, a, sts, prev
        if t - last_log >= log_every:
            log_score(h, clock, nodes, sts, t=t)
            last_log = t
        prev = sts
        time.sleep(max(0.0, SAMPLE_S - (time.monotonic() - t)))
    return None, None, None, prev


def sample_stable(h, nodes, seconds, want):
    """Samples every SAMPLE_S for SECONDS: returns (samples, changes, missed, quorum RTT range
    per node id) where changes lists (t, id, leader, epoch) of each node answering another
    (leader, epoch) than WANT."""
    end = time.monotonic() + seconds
    samples = missed = 0
    changes = []
    rtts = {n.id: [] for n in nodes}
    while time.monotonic() < end:
        t, sts = poll(nodes)
        samples += 1
        for n in nodes:
            st = sts.get(n.id)
            if st is None:
                missed += 1
                continue
            seen = (st_int(st, "leader"), st_int(st, "epoch"))
            if seen != want:
                changes.append((t, n.name, seen))
            v = st_ms(st.get("quorum_rtt_ms"))
            if v is not None:
                rtts[n.id].append(v)
        time.sleep(max(0.0, SAMPLE_S - (time.monotonic() - t)))
    return samples, changes, missed, rtts


def rtt_range(nodes, rtts):
    return " ".join("%s %s" % (n.name, "%.2f..%.2fms" % (min(rtts[n.id]), max(rtts[n.id]))
                               if rtts[n.id] else "?") for n in nodes)


def test_score(h):
    """Equal priorities: the well-connected node leads after the hold-down, no flapping under
    jitter, no move back; priority 2 leads despite slow links."""
    clock = Clock()
    cluster = h.cluster_name("score")
    zk = h.zk_client()
    h.watch_leader(zk, cluster)
    nodes = h.nodes(cluster, 3, election="priority", priority=1, session_timeout=SESSION_MS,
                    hold_down=HOLD_DOWN_MS, link_delay=(0, 0),
                    extra=["--rtt-margin", str(RTT_MARGIN), "--write-timeout", "5000"])
    start_in_order(h, nodes, zk)
    ms, lid, epoch = h.wait_agreement(nodes, 20)
    h.require(ms is not None, "the three nodes agree on a leader", h.last_view)
    old = next(n for n in nodes if n.id == lid)
    # Let the RTTs settle (pings every 100 ms, SRTT over about 8 samples) and the facts publish.
    time.sleep(2)
    t, sts = poll(nodes)
    a = log_score(h, clock, nodes, sts, t=t)
    h.check(a == (lid, epoch), "the leader stays n%d at epoch %d while links are fast" %
            (lid, epoch), view_str(sts))
    h.check(all(sts[n.id] and "quorum_rtt_ms" in sts[n.id] for n in nodes),
            "every node shows quorum_rtt_ms in /.status", view_str(sts))
    h.check(all(sts[n.id] and len(sts[n.id].get("scores", {})) == 3 for n in nodes),
            "every node shows a score: line for each of the three candidates",
            "\n".join("n%d: %s" % (i, score_lines(st)) for i, st in sts.items()))
    h.check(all(sts[n.id] and len(sts[n.id].get("members", {})) == 2 for n in nodes),
            "every node shows a member: line for each of its two peers",
            "\n".join("n%d: %s" % (i, (st or {}).get("members")) for i, st in sts.items()))

    os.mkdir(os.path.join(next(n for n in nodes if n is not old).mnt, "s"))
    writer = Writer(next(n for n in nodes if n is not old), "s", 0.2)
    writer.start()
    h.log("writer: a write every 200 ms through %s" % writer.node.name)
    try:
        _scenario(h, clock, nodes, old, epoch)
    finally:
        writer.stop()
        _daemon_lines(h, nodes)
    _read_back(h, nodes, writer)


DAEMON_LINES = re.compile(r"beats this leader|no longer beats|handing over|leading at epoch|"
                          r"info: score: ")


def _daemon_lines(h, nodes):
    """The daemons' own account of the election (the challenge, the hand-over, each published
    change of facts), for the execution log."""
    for n in nodes:
        try:
            with open(n.log_path, "rb") as f:  # every start's lines, not only the last
                text = f.read().decode(errors="replace")
        except OSError:
            text = ""
        for line in text.splitlines():
            if DAEMON_LINES.search(line):
                h.log("DAEMON %s %s" % (n.name, line.strip()))


def _scenario(h, clock, nodes, old, epoch):
    # (a) The leader's links slow down: leadership moves after the hold-down.
    old.set_link_delay(*SLOW)
    t_slow = time.monotonic()
    h.log("SLOW %s %s's links now %d +- %d ms (the hold-down is %d ms)" %
          (clock(t_slow), old.name, SLOW[0], SLOW[1], HOLD_DOWN_MS))
    limit = (HOLD_DOWN_MS + 5000) / 1000
    t, a, sts, before = wait_leader(h, clock, nodes, lambda lid: lid != old.id, limit + 3)
    took = (t - t_slow) * 1000 if t else None
    h.require(a is not None, "leadership moves away from the slow %s" % old.name,
              "no agreement on another leader within %.1f s:\n%s" % (limit + 3, view_str(before or {})))
    new = next(n for n in nodes if n.id == a[0])
    if before:
        log_score(h, clock, nodes, before, tag="SCORE-BEFORE", t=t - SAMPLE_S)
    log_score(h, clock, nodes, sts, tag="SCORE-AFTER", t=t)
    h.log("HANDOVER %s %s -> %s, %d ms after %s's links slowed (hold-down %d ms), epoch %d -> %d"
          % (clock(t), old.name, new.name, took, old.name, HOLD_DOWN_MS, epoch, a[1]))
    h.check(took >= HOLD_DOWN_MS, "the move comes no sooner than the hold-down (%d ms)" %
            HOLD_DOWN_MS, "it came after %d ms" % took)
    h.check(took <= HOLD_DOWN_MS + 5000, "the move comes within hold-down + 5 s (%d ms)" %
            (HOLD_DOWN_MS + 5000), "it came after %d ms" % took)
    h.check(a[1] > epoch, "the epoch grew (%d -> %d)" % (epoch, a[1]))
    want = a

    # (b) Jitter on the two well-connected nodes: no flapping.
    for n in nodes:
        if n is not old:
            n.set_link_delay(*JITTER)
    h.log("JITTER %s %s's links now %d +- %d ms, %s's still %d +- %d ms; sampling every %d ms "
          "for %d s" % (clock(), " and ".join(n.name for n in nodes if n is not old), JITTER[0],
                        JITTER[1], old.name, SLOW[0], SLOW[1], SAMPLE_S * 1000, STABLE_S))
    time.sleep(0.3)
    samples, changes, missed, rtts = sample_stable(h, nodes, STABLE_S, want)
    t, sts = poll(nodes)
    log_score(h, clock, nodes, sts, t=t)
    epochs = len({e for _, _, (_, e) in changes if e != want[1]})
    h.log("STABLE %d s under +-%d ms jitter: leader n%d epoch %d, %d epoch changes, %d leader "
          "changes seen, %d samples (%d unanswered reads); quorum RTT range %s" %
          (STABLE_S, JITTER[1], want[0], want[1], epochs, len(changes), samples, missed,
           rtt_range(nodes, rtts)))
    h.check(not changes, "%d s under +-%d ms jitter: no node ever names another leader or epoch "
            "than n%d at %d (%d samples)" % (STABLE_S, JITTER[1], want[0], want[1], samples),
            "\n".join("%s: %s says leader %s epoch %s" % (clock(t), name, l, e)
                      for t, name, (l, e) in changes[:20]))
    h.check(samples >= STABLE_S / SAMPLE_S * 0.6, "the sampler kept up (%d samples)" % samples)

    # (c) The old leader's links restored: no move back.
    old.set_link_delay(*JITTER)
    h.log("RESTORE %s %s's links back to the others' %d +- %d ms" %
          (clock(), old.name, JITTER[0], JITTER[1]))
    samples, changes, missed, rtts = sample_stable(h, nodes, NO_MOVE_BACK_S, want)
    t, sts = poll(nodes)
    log_score(h, clock, nodes, sts, t=t)
    h.log("NO-MOVE-BACK %d s after %s's links were restored: leader n%d epoch %d, %d leader "
          "changes seen, %d samples; quorum RTT range %s" %
          (NO_MOVE_BACK_S, old.name, want[0], want[1], len(changes), samples,
           rtt_range(nodes, rtts)))
    h.check(not changes, "no move back to %s within %d s of its links being restored" %
            (old.name, NO_MOVE_BACK_S),
            "\n".join("%s: %s says leader %s epoch %s" % (clock(t), name, l, e)
                      for t, name, (l, e) in changes[:20]))

    # (d) Priority dominates RTT: the slow node, restarted with priority 2, leads.
    a0 = agreement(nodes)
    e_before = a0[1] if a0 else want[1]
    old.set_link_delay(*SLOW)
    old.stop()
    old.priority = 2
    t_start = time.monotonic()
    old.start()
    h.log("PRIORITY %s %s restarted with priority 2, links still %d +- %d ms" %
          (clock(t_start), old.name, SLOW[0], SLOW[1]))
    limit = (HOLD_DOWN_MS + 10000) / 1000
    t, a, sts, before = wait_leader(h, clock, nodes, lambda lid: lid == old.id,
                                    limit - (time.monotonic() - t_start))
    ok = a is not None
    took = (t - t_start) * 1000 if t else None
    h.check(ok, "%s (priority 2, slow links) leads within hold-down + 10 s of its start" %
            old.name, "agreement %s; last view:\n%s" % (a, view_str(sts or before or {})))
    if a:
        log_score(h, clock, nodes, sts, t=t)
        h.log("PRIORITY %s %s (priority 2, quorum RTT %s) leads, %d ms after its start "
              "(hold-down %d ms), epoch %d -> %d; the others' quorum RTTs %s" %
              (clock(t), old.name, qrtt(sts.get(old.id)), took,
               HOLD_DOWN_MS, e_before, a[1],
               " ".join("%s %s" % (n.name, qrtt(sts.get(n.id))) for n in nodes if n is not old)))
        h.check(took >= HOLD_DOWN_MS, "%s leads no sooner than the hold-down after its "
                "start" % old.name, "after %s ms" % took)


def _read_back(h, nodes, writer):
    """Every acknowledged write, read back through every node's mount."""
    acked = dict(writer.acked)
    h.log("writer: %d writes acknowledged, %d failed%s" %
          (len(acked), len(writer.errors),
           " (%s)" % ", ".join("%s %s" % e for e in writer.errors[:5]) if writer.errors else ""))
    h.check(len(acked) >= 50, "the writer got writes through all along (%d acknowledged)" %
            len(acked))
    last = sorted(acked)[-1:] if acked else []

    def caught_up():
        return all(read_file(os.path.join(n.mnt, k)) == acked[k] for n in nodes for k in last)
    h.wait_for(caught_up, 15, interval=0.2)
    missing = ["%s: %s" % (n.name, k) for n in nodes for k, v in sorted(acked.items())
               if read_file(os.path.join(n.mnt, k)) != v]
    h.check(not missing, "every acknowledged write (%d) reads back on every node" % len(acked),
            "\n".join(missing[:10]))


if __name__ == "__main__":
    harness.main([test_score])
