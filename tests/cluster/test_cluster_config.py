#!/usr/bin/python3
"""A node refuses to join a cluster it does not belong to (issue #3, DESIGN §3): started with
another --cluster-size than /kvfs/<cluster>/config says, or with a data directory that belongs to
another cluster, it exits with status 5 and says why, without disturbing the cluster. Against a
real three-server ZooKeeper ensemble started here (see harness.py).

Usage: test_cluster_config.py KVFS_BIN        (run by `meson test --suite cluster`)
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import view_str, zk_get  # noqa: E402

EXIT_CLUSTER_MISMATCH = 5


def wait_joined(h, zk, node, what):
    """Waits until NODE says zk: connected, its /members/<id> znode exists and its role, leader
    and epoch have not changed for a second (a lone node need not lead: once replication needs a
    majority it may not); returns its status."""
    path = "/kvfs/%s/members/%d" % (node.cluster, node.id)
    seen = {"state": None, "since": 0.0}

    def settled():
        st = node.status()
        if not st or st.get("zk") != "connected" or not zk.exists(path):
            seen["state"] = None
            return None
        state = tuple(st.get(k) for k in ("role", "leader", "epoch"))
        now = time.monotonic()
        if state != seen["state"]:
            seen["state"], seen["since"] = state, now
        return st if now - seen["since"] >= 1.0 else None

    ms = h.wait_for(settled, 15, interval=0.05)
    h.require(ms is not None, what, view_str({node.id: node.status()}))
    h.log("%s: joined, %s" % (node.name, view_str({node.id: h.last})))
    return h.last


def same_state(st1, st2):
    keys = ("role", "leader", "epoch", "zk")
    return st1 and st2 and all(st1.get(k) == st2.get(k) for k in keys)


def expect_refusal(h, node, what, message_re, status=EXIT_CLUSTER_MISMATCH):
    """Starts NODE, which must exit with STATUS (5) within 20 s, leave no mount behind and say
    why (MESSAGE_RE, case-insensitive, somewhere in its output)."""
    node.start(wait=False)
    rc = node.wait_exit(20)
    out = node.output()
    if rc is None:
        node.stop()
    h.log("%s (%s) exited with status %s; it said:\n%s" %
          (node.name, what, rc, out.strip()[-1500:]))
    still = " (still running after 20 s)" if rc is None else ""
    h.check(rc == status, "%s: exits with status %d" % (what, status),
            "exit status: %s%s\noutput:\n%s" % (rc, still, out[-2000:]))
    h.check(re.search(message_re, out, re.I | re.S) is not None,
            "%s: the message says why (matches /%s/)" % (what, message_re),
            "output:\n%s" % out[-2000:])
    h.check(not harness.is_mounted(node.mnt), "%s: no mount left behind" % what)
    harness.detach(node.mnt)


def test_cluster_size_mismatch(h):
    """--cluster-size 5 against a cluster created with size 3: exit 5."""
    cluster = h.cluster_name("size")
    zk = h.zk_client()
    n1 = h.node(1, cluster)
    n1.start()
    before = wait_joined(h, zk, n1, "n1 alone creates the cluster and joins it")
    cfg, _ = zk_get(zk, "/kvfs/%s/config" % cluster)
    h.check(cfg is not None and cfg.strip().endswith("size=3"), "/config says size=3",
            "config: %r" % cfg)
    bad = h.node(2, cluster, cluster_size=5)
    expect_refusal(h, bad, "a node with --cluster-size 5 in a cluster of size 3",
                   r"(size.*\b5\b.*\b3\b|size.*\b3\b.*\b5\b)")
    cfg2, _ = zk_get(zk, "/kvfs/%s/config" % cluster)
    h.check(cfg2 == cfg, "/config is unchanged", "before %r, after %r" % (cfg, cfg2))
    after = n1.status()
    h.check(same_state(before, after), "n1 is unaffected (same role, leader, epoch, zk)",
            "before:\n%s\nafter:\n%s" % (view_str({1: before}), view_str({1: after})))
    members = zk.get_children("/kvfs/%s/members" % cluster)
    h.check(members == ["1"], "the refused node left no member znode", "members: %s" % members)


def test_data_dir_of_another_cluster(h):
    """A data directory that belongs to another cluster: exit 5; it still works in its own."""
    zk = h.zk_client()
    name_a = h.cluster_name("dirA")
    name_b = h.cluster_name("dirB")
    a1 = h.node(1, name_a)
    a1.label = "A/n1"
    a1.start()
    wait_joined(h, zk, a1, "cluster A: n1 joins")
    h.check(a1.stop() == 0, "cluster A: n1 stops cleanly (exit 0)")
    b1 = h.node(1, name_b)
    b1.label = "B/n1"
    b1.start()
    before = wait_joined(h, zk, b1, "cluster B: n1 joins")
    cfg_a, _ = zk_get(zk, "/kvfs/%s/config" % name_a)
    cfg_b, _ = zk_get(zk, "/kvfs/%s/config" % name_b)
    h.check(cfg_a and cfg_b and cfg_a != cfg_b, "the two clusters have different cluster ids",
            "A: %r, B: %r" % (cfg_a, cfg_b))
    intruder = h.node(2, name_b, data=a1.data)
    intruder.label = "B/n2"
    expect_refusal(h, intruder, "a node of cluster B on a data directory of cluster A",
                   r"cluster")
    after = b1.status()
    h.check(same_state(before, after), "cluster B: n1 is unaffected (same role, leader, epoch, zk)",
            "before:\n%s\nafter:\n%s" % (view_str({1: before}), view_str({1: after})))
    members = zk.get_children("/kvfs/%s/members" % name_b)
    h.check(members == ["1"], "cluster B: the refused node left no member znode",
            "members: %s" % members)
    # The refusal is about the mismatch only: the directory still works in its own cluster.
    a1.start()
    wait_joined(h, zk, a1, "the data directory still starts in cluster A")


def test_duplicate_id(h):
    """A second process started with a running node's --id (its own data directory and mount):
    it exits with status 5 instead of competing for the id's znodes; the running node is not
    disturbed (same role, leader, epoch; still the only holder of members/1)."""
    cluster = h.cluster_name("dupid")
    zk = h.zk_client()
    n1 = h.node(1, cluster)
    n1.start()
    before = wait_joined(h, zk, n1, "n1 joins")
    twin = h.node(1, cluster)
    twin.dir = os.path.join(h.tmp, cluster, "twin")
    twin.data = os.path.join(twin.dir, "data")
    twin.mnt = os.path.join(twin.dir, "mnt")
    twin.log_path = os.path.join(twin.dir, "kvfs.log")
    os.makedirs(twin.mnt, exist_ok=True)
    twin.label = "twin-of-n1"
    expect_refusal(h, twin, "a second process with --id 1", r"own --id")
    time.sleep(1.0)
    after = n1.status()
    h.check(same_state(before, after), "n1 is unaffected (same role, leader, epoch, zk)",
            "before:\n%s\nafter:\n%s" % (view_str({1: before}), view_str({1: after})))
    kids = zk.get_children("/kvfs/%s/election" % cluster)
    h.check(len(kids) == 1, "one election child: n1's", "children: %s" % kids)


def test_secret_rules(h):
    """The peer secret (issue 9): a cluster node without --secret-file, with a secret file that
    group or others may read, or with one too short, refuses to start (status 2, and says what to
    do); with the secret /.status says peer_security: encrypted; with --insecure it starts, warns
    loudly and says peer_security: insecure."""
    cluster = h.cluster_name("secret")
    n = h.node(1, cluster)
    n.secret_files = []
    expect_refusal(h, n, "no --secret-file", r"--secret-file is required with --zk", 2)
    loose = h.make_secret("loose", b"x" * 40)
    os.chmod(loose, 0o644)
    n.secret_files = [loose]
    expect_refusal(h, n, "a secret file of mode 644", r"chmod 600", 2)
    n.secret_files = [h.make_secret("short", b"only-16-bytes-xx\n")]
    expect_refusal(h, n, "a secret of 16 bytes", r"at least 32", 2)
    n.secret_files = [h.secret]
    n.start()
    st = n.status()
    h.check(st is not None and st.get("peer_security") == "encrypted",
            "with the secret: peer_security: encrypted", view_str({n.id: st}))
    n.stop()
    n.extra = ["--insecure"]
    n.start()
    st = n.status()
    h.check(st is not None and st.get("peer_security") == "insecure",
            "with --insecure: peer_security: insecure", view_str({n.id: st}))
    h.check("--insecure: peers neither authenticate nor encrypt" in n.output(),
            "with --insecure: a warning in the log", n.output()[-1500:])
    n.stop()


if __name__ == "__main__":
    harness.main([test_cluster_size_mismatch, test_data_dir_of_another_cluster,
                  test_duplicate_id, test_secret_rules])
