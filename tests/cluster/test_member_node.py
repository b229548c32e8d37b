#!/usr/bin/python3
"""Membership as a node shows it (issue 12, the node binding), before any change: every node of a
new cluster shows the bootstrap configuration in /.status (member_role, config_index, voters,
observers) and logs it; a node started with an id that is not in the configuration (--id 4 on a
cluster created with 3) starts, never stands for leader (no election znode), shows
member_role: none, and the three voters go on taking writes. A node started without
--cluster-size takes the size the cluster was created with. Changes themselves (kvfs member)
are test_membership.py's. Against a real three-server ZooKeeper ensemble (see harness.py).

Usage: test_member_node.py KVFS_BIN        (run by `meson test --suite cluster`)
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import election_children, settle, view_str  # noqa: E402


def test_bootstrap_and_non_member(h):
    """A 3-node cluster shows voters 1,2,3; a 4th id waits outside without standing."""
    cluster = h.cluster_name("members")
    nodes = h.nodes(cluster, 3)
    for n in nodes:
        n.start()
    leader, epoch = settle(h, nodes)
    for n in nodes:
        st = n.status() or {}
        h.check(st.get("member_role") == "voter" and st.get("config_index") == "0" and
                st.get("voters") == "1,2,3" and st.get("observers") == "none",
                "%s: member_role voter, config_index 0, voters 1,2,3, observers none" % n.name,
                view_str({n.id: st}))
        h.check("configuration at index 0: voters 1,2,3 (committed)" in n.output(),
                "%s logs the configuration in force" % n.name, n.output()[-800:])

    four = h.node(4, cluster)
    four.start()
    zk = h.zk_client()
    t_end = time.monotonic() + 5
    stood = False
    while time.monotonic() < t_end:
        stood = stood or any(c[1].get("id") == "4" for c in election_children(zk, cluster))
        time.sleep(0.1)
    h.check(not stood, "node 4 (not in the configuration) never stands: no election znode",
            str(election_children(zk, cluster)))
    st = four.status() or {}
    h.log("n4: %s" % view_str({4: st}))
    h.check(st.get("member_role") == "none" and st.get("voters") == "1,2,3" and
            st.get("role") != "leader",
            "n4: member_role none, voters 1,2,3, not leader", view_str({4: st}))
    h.check("is not a voter of cluster" in four.output(),
            "n4 logs that it does not stand", four.output()[-800:])
    path = os.path.join(leader.mnt, "after-four")
    with open(path, "w") as f:
        f.write("x")
    with open(path) as f:
        h.check(f.read() == "x", "the three voters take writes with node 4 around")
    st = leader.status() or {}
    h.check(st.get("writable") == "yes" and st.get("epoch") == str(epoch),
            "%s still leads, writable, at epoch %d" % (leader.name, epoch),
            view_str({leader.id: st}))
    four.stop()
    for n in nodes:
        n.stop()


def without_cluster_size(node):
    """Makes NODE start without --cluster-size (the harness always passes one)."""
    orig = node.args

    def args():
        a = orig()
        i = a.index("--cluster-size")
        return a[:i] + a[i + 2:]
    node.args = args


def test_size_taken_from_cluster(h):
    """Without --cluster-size, a node takes the cluster's creation size (5 here, not 3)."""
    cluster = h.cluster_name("size")
    nodes = h.nodes(cluster, 3, cluster_size=5)
    for n in nodes:
        n.start()
    settle(h, nodes)
    six = h.node(6, cluster)
    without_cluster_size(six)
    six.start()
    st = six.status() or {}
    h.check(st.get("voters") == "1,2,3,4,5" and st.get("member_role") == "none",
            "n6 without --cluster-size: voters 1,2,3,4,5 (the cluster's), member_role none",
            view_str({6: st}))
    seven = h.node(7, cluster)  # --cluster-size 3, given: still refused (exit 5)
    seven.start(wait=False)
    rc = seven.wait_exit(20)
    h.check(rc == 5, "n7 with --cluster-size 3 on a cluster created with 5 exits 5",
            "exit status %s; %s" % (rc, seven.output()[-500:]))
    if rc is None:
        seven.stop()
    for n in [six] + nodes:
        n.stop()


if __name__ == "__main__":
    harness.main([test_bootstrap_and_non_member, test_size_taken_from_cluster])
