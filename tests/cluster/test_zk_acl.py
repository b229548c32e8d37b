#!/usr/bin/python3
"""ZooKeeper authentication and ACLs (issue 9 item 2, DESIGN §3), against a real three-server
ZooKeeper ensemble started here (see harness.py). With --zk-auth-file (the harness gives every node
the run's credentials) every znode of the cluster carries an ACL for that digest identity alone:
an outsider with an ordinary ZooKeeper client can neither read nor change the election, while
writes go on; other credentials, none, or a credentials file others may read are refused with
their own exit status and message; a node whose session expired authenticates its new one. Without
--zk-auth-file the znodes stay open (with a warning) until a node with credentials tightens them.

Usage: test_zk_acl.py KVFS_BIN        (run by `meson test --suite cluster`)
"""

import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from kazoo.exceptions import NoAuthError, NoNodeError  # noqa: E402
from harness import (election_children, settle, start_in_order, statuses, view_str,  # noqa: E402
                     zk_get)

EXIT_USAGE = 2
EXIT_CLUSTER = 5
SHORT_SESSION_MS = 2000
ALL = 31  # ZooKeeper's READ|WRITE|CREATE|DELETE|ADMIN
READ_CREATE = 1 | 4


class Writer:
    """Writes small files, one after the other, round-robin on the mounts of NODES (that keep
    running) until stopped; remembers every outcome."""

    def __init__(self, h, nodes):
        self.h = h
        self.nodes = nodes
        self.done = []  # (name, node, errno or 0)
        self.stop_ev = threading.Event()
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        i = 0
        while not self.stop_ev.is_set():
            n = self.nodes[i % len(self.nodes)]
            name = "w%04d" % i
            try:
                with open(os.path.join(n.mnt, name), "wb") as f:
                    f.write(b"value %d\n" % i)
                rc = 0
            except OSError as e:
                rc = e.errno or -1
            self.done.append((name, n.name, rc))
            i += 1
            time.sleep(0.02)

    def stop(self):
        self.stop_ev.set()
        self.th.join(15)
        failed = [d for d in self.done if d[2] != 0]
        self.h.check(self.done and not failed,
                     "every write on the mounts succeeded throughout (%d writes)" % len(self.done),
                     "failed: %s" % failed[:20])
        return self.done


def acl_of(zk, path):
    """[(scheme, id, perms)] of PATH as an authenticated client reads it; None if it is gone."""
    try:
        acls, _ = zk.get_acls(path)
    except NoNodeError:
        return None
    return sorted((a.id.scheme, a.id.id, a.perms) for a in acls)


def check_acls(h, zk, cluster, what):
    """Every znode under /kvfs/CLUSTER (and the cluster's own) carries exactly one ACL entry: the
    run's digest identity, all rights; /kvfs adds world READ|CREATE and nothing else."""
    base = "/kvfs/%s" % cluster
    user = h.zk_auth.split(":", 1)[0]
    paths = [base] + ["%s/%s" % (base, r) for r in ("config", "epoch", "election", "members",
                                                    "nodes", "requests")]
    for d in ("election", "members", "nodes"):
        paths += ["%s/%s/%s" % (base, d, c) for c in zk.get_children("%s/%s" % (base, d))]
    if zk.exists(base + "/leader"):
        paths.append(base + "/leader")
    bad = []
    for p in paths:
        a = acl_of(zk, p)
        if a is None:
            continue  # an ephemeral that went meanwhile
        if len(a) != 1 or a[0][0] != "digest" or not a[0][1].startswith(user + ":") \
                or a[0][2] != ALL:
            bad.append("%s: %s" % (p, a))
    h.check(not bad, "%s: the %d znodes of the cluster are for digest user %s alone, all rights" %
            (what, len(paths), user), "\n".join(bad))
    root = acl_of(zk, "/kvfs")
    h.check(("world", "anyone", READ_CREATE) in root and
            all(s == "digest" and p == ALL for s, _, p in root if s != "world") and
            len([r for r in root if r[0] == "world"]) == 1,
            "%s: /kvfs: its creator all rights, anyone only READ and CREATE" % what,
            "/kvfs: %s" % root)
    return paths


def refused(h, fn, what):
    """Runs FN (an outsider's ZooKeeper call), which must raise NoAuthError."""
    try:
        fn()
        got = "it succeeded"
    except NoAuthError:
        got = None
    except Exception as e:  # noqa: BLE001 - name what came instead
        got = "%s: %s" % (type(e).__name__, e)
    h.check(got is None, "outsider: %s: NoAuthError" % what, got or "")


def expect_exit(h, node, code, message_re, what):
    """Starts NODE, which must exit with CODE within 20 s, say MESSAGE_RE and leave no mount."""
    node.start(wait=False)
    rc = node.wait_exit(20)
    out = node.output()
    if rc is None:
        node.stop()
    h.log("%s (%s) exited with status %s; it said:\n%s" % (node.name, what, rc,
                                                           out.strip()[-1500:]))
    h.check(rc == code, "%s: exits with status %d" % (what, code),
            "exit status: %s\noutput:\n%s" % (rc, out[-2000:]))
    h.check(re.search(message_re, out, re.S) is not None,
            "%s: the message says why (/%s/)" % (what, message_re), "output:\n%s" % out[-2000:])
    h.check(not harness.is_mounted(node.mnt), "%s: no mount left behind" % what)
    node.stop()  # it has exited: this looks for sanitizer reports and detaches


def wait_readable_everywhere(h, nodes, names, timeout=15):
    """Waits until every node reads every file in NAMES with the value the writer wrote."""
    def ok():
        for n in nodes:
            for name in names:
                want = b"value %d\n" % int(name[1:])
                data, _ = harness.read_file_timeout(os.path.join(n.mnt, name), 2)
                if data != want:
                    return None
        return True
    return h.wait_for(ok, timeout, interval=0.2)


def test_protected_cluster(h):
    """Three nodes with --zk-auth-file: an outsider can read and change nothing of the election
    while writes go on; other, missing or readable credentials are refused; a session that expired
    is authenticated again and its new znodes are protected."""
    cluster = h.cluster_name("acl")
    base = "/kvfs/%s" % cluster
    zk = h.zk_client()
    outsider = h.zk_client(auth=None)
    nodes = h.nodes(cluster, 3, session_timeout=SHORT_SESSION_MS)
    start_in_order(h, nodes, zk)
    leader, epoch = settle(h, nodes)
    sts = statuses(nodes)
    h.check(all(st and st.get("zk_auth") == "digest" for st in sts.values()),
            "every node says zk_auth: digest", view_str(sts) + "\nzk_auth: %s" %
            [st and st.get("zk_auth") for st in sts.values()])
    check_acls(h, zk, cluster, "after start")
    target = next(n for n in nodes if n is not leader)
    others = [n for n in nodes if n is not target]
    writer = Writer(h, others)
    time.sleep(0.3)

    # The attacks of issue 9: keep the cluster leaderless, rewrite what a restart reads.
    kids = election_children(zk, cluster)
    refused(h, lambda: outsider.delete(base + "/leader"), "delete /leader")
    refused(h, lambda: outsider.delete("%s/election/%s" % (base, kids[0][0])),
            "delete the leader's election znode")
    refused(h, lambda: outsider.create(base + "/election/00000000000000000000000000000000-n_",
                                       b"id=1 addr=127.0.0.1:1 priority=1000",
                                       ephemeral=True, sequence=True),
            "create an election znode")
    refused(h, lambda: outsider.create(base + "/leader-fake", b"id=9"), "create a znode in it")
    refused(h, lambda: outsider.set(base + "/config", b"cluster_id=00 size=5"), "set /config")
    refused(h, lambda: outsider.set(base + "/epoch", b"999999"), "set /epoch")
    refused(h, lambda: outsider.get(base + "/config"), "read /config")
    refused(h, lambda: outsider.get(base + "/epoch"), "read /epoch")
    refused(h, lambda: outsider.get_children(base + "/members"), "list /members")
    refused(h, lambda: outsider.get_children(base + "/election"), "list /election")
    refused(h, lambda: outsider.get("%s/members/%d" % (base, leader.id)), "read /members/<id>")
    refused(h, lambda: outsider.set_acls(base, [harness_open_acl()]), "open the cluster's ACL")
    refused(h, lambda: outsider.delete(base, recursive=True), "delete /kvfs/<cluster>")
    refused(h, lambda: outsider.set_acls("/kvfs", [harness_open_acl()]), "open /kvfs's ACL")
    # What /kvfs allows anyone: listing it, and making another cluster's znode beside ours.
    other = "/kvfs/%s-other" % cluster
    try:
        outsider.create(other, b"")
        made = True
    except Exception as e:  # noqa: BLE001
        made = "%s: %s" % (type(e).__name__, e)
    h.check(made is True, "outsider: may still create another cluster's /kvfs/<name>", made)
    time.sleep(0.5)
    ms, lid, e2 = h.wait_agreement(nodes, 5)
    h.check((lid, e2) == (leader.id, epoch),
            "after the attacks: the same leader %s at the same epoch %d" % (leader.name, epoch),
            h.last_view)

    # Wrong credentials, none, and a credentials file others may read: refused.
    h.check(target.stop() == 0, "%s stops cleanly" % target.name)
    wrong = h.make_secret("zk-auth-wrong", b"kvfs:not-the-password\n")
    target.zk_auth_file = wrong
    expect_exit(h, target, EXIT_CLUSTER,
                r"NOAUTH: %s/config is protected by ZooKeeper ACLs for other credentials" % base,
                "%s with other credentials" % target.name)
    target.zk_auth_file = None
    expect_exit(h, target, EXIT_CLUSTER,
                r"NOAUTH: %s/config is protected by ZooKeeper ACLs: start with --zk-auth-file "
                r"holding the cluster's credentials" % base,
                "%s without --zk-auth-file" % target.name)
    loose = h.make_secret("zk-auth-0644", (h.zk_auth + "\n").encode())
    os.chmod(loose, 0o644)
    target.zk_auth_file = loose
    expect_exit(h, target, EXIT_USAGE, r"--zk-auth-file: .*mode 0644.*chmod 600",
                "%s with a --zk-auth-file of mode 0644" % target.name)
    bad = h.make_secret("zk-auth-bad", b"no-colon-here\n")
    target.zk_auth_file = bad
    expect_exit(h, target, EXIT_USAGE, r"--zk-auth-file: .*user:password",
                "%s with a --zk-auth-file without user:password" % target.name)
    target.zk_auth_file = h.zk_auth_file
    target.start()
    ms, lid, e3 = h.wait_agreement(nodes, 10)
    h.check(ms is not None and lid == leader.id,
            "%s rejoins with the right credentials; %s still leads" % (target.name, leader.name),
            h.last_view)

    # Session expiry: SIGSTOP past the session timeout; the new session authenticates again.
    path = "%s/members/%d" % (base, target.id)
    _, st0 = zk_get(zk, path)
    h.require(st0 is not None, "%s's members znode exists" % target.name)
    out0 = target.output().count("authenticated as digest user")
    target.sigstop()
    gone = h.wait_for(lambda: not zk.exists(path), (SHORT_SESSION_MS + 5000) / 1000, 0.1)
    h.check(gone is not None, "%s's session expires while it is stopped (members/%d goes)" %
            (target.name, target.id))
    time.sleep(0.5)
    target.sigcont()

    def rejoined():
        _, st = zk_get(zk, path)
        return st is not None and st.ephemeralOwner != st0.ephemeralOwner and \
            any(int(kv.get("id", -1)) == target.id and s.ephemeralOwner == st.ephemeralOwner
                for _, kv, s in election_children(zk, cluster))
    ms = h.wait_for(rejoined, 15, 0.1)
    h.check(ms is not None, "%s rejoins with a new session after SIGCONT (members and election "
            "znodes owned by it)" % target.name,
            "children: %s" % [(c[0], c[1]) for c in election_children(zk, cluster)])
    out1 = target.output().count("authenticated as digest user")
    h.check(out1 > out0, "%s authenticated its new session (log: 'authenticated as digest user' "
            "%d times, was %d)" % (target.name, out1, out0), target.tail(20))
    ms, lid, _ = h.wait_agreement(nodes, 10)
    h.check(ms is not None and lid == leader.id,
            "all three agree again, %s leading" % leader.name, h.last_view)
    check_acls(h, zk, cluster, "after %s's session expired" % target.name)
    mine = [c for c in election_children(zk, cluster) if int(c[1].get("id", -1)) == target.id]
    if mine:
        refused(h, lambda: outsider.delete("%s/election/%s" % (base, mine[0][0])),
                "delete %s's new election znode" % target.name)
    refused(h, lambda: outsider.get(path), "read %s's new members znode" % target.name)

    done = writer.stop()
    names = [d[0] for d in done if d[2] == 0]
    picks = names[:: max(1, len(names) // 10)] + names[-1:]
    ms = wait_readable_everywhere(h, nodes, picks)
    h.check(ms is not None, "every node reads what was written (%d files sampled)" % len(picks))
    try:
        zk.delete(other)  # /kvfs is ours (this file's first cluster made it): we may
    except Exception:  # noqa: BLE001
        pass


def harness_open_acl():
    from kazoo.security import OPEN_ACL_UNSAFE
    return OPEN_ACL_UNSAFE[0]


def test_without_credentials_then_upgrade(h):
    """Without --zk-auth-file: zk_auth none, a warning, znodes open to anyone; a node with
    credentials refuses to join while one runs without. Restarted with it, the node tightens the
    cluster's znodes and the outsider is locked out. A chroot missing from ZooKeeper is named."""
    cluster = h.cluster_name("open")
    base = "/kvfs/%s" % cluster
    zk = h.zk_client()
    outsider = h.zk_client(auth=None)
    n1 = h.node(1, cluster)
    n1.zk_auth_file = None
    n1.start()
    h.wait_election_child(zk, cluster, 1, timeout=10)
    st = n1.status()
    h.check(st and st.get("zk_auth") == "none", "without --zk-auth-file: zk_auth: none",
            view_str({1: st}))
    out = n1.output()
    h.check(out.count("no --zk-auth-file") == 1 and "open to anyone" in out,
            "without --zk-auth-file: one warning in the log that the znodes are open",
            n1.tail(20))
    cfg, _ = zk_get(outsider, base + "/config")
    h.check(cfg is not None and cfg.startswith("cluster_id="),
            "without --zk-auth-file: an outsider reads /config (open, as before)", repr(cfg))
    # A node with credentials while n1 runs without: it would lock n1 out of the election.
    n2 = h.node(2, cluster)
    expect_exit(h, n2, EXIT_CLUSTER,
                r"node\(s\) 1 of cluster '%s' run without --zk-auth-file.*stop them, then start "
                r"every node with --zk-auth-file" % cluster,
                "n2 with credentials while n1 runs without")
    cfg, _ = zk_get(outsider, base + "/config")
    h.check(cfg is not None, "the cluster's znodes are still open (n2 changed nothing)")
    ms = h.wait_election_child(zk, cluster, 1, timeout=2)
    h.check(ms is not None and n1.status() is not None, "n1 is still in the election")
    h.check(n1.stop() == 0, "n1 stops cleanly")

    n1.zk_auth_file = h.zk_auth_file
    n1.start()
    h.wait_election_child(zk, cluster, 1, timeout=10)
    st = n1.status()
    h.check(st and st.get("zk_auth") == "digest", "restarted with --zk-auth-file: zk_auth: digest",
            view_str({1: st}))
    out = n1.output()
    tightened = sorted(set(re.findall(r"(/kvfs/\S+) was open to anyone", out)))
    # /nodes and /nodes/1 too: whoever could delete /nodes/<id> could make a node that lost its
    # disk vote with an empty log.
    want = sorted([base] + ["%s/%s" % (base, r) for r in ("config", "election", "epoch",
                                                          "members", "nodes", "nodes/1",
                                                          "requests")])
    h.check(tightened == want, "the restart tightened the cluster's open znodes, with a log line "
            "each", "tightened: %s\nlog:\n%s" % (tightened, n1.tail(20)))
    check_acls(h, zk, cluster, "after the upgrade")
    refused(h, lambda: outsider.get(base + "/config"), "after the upgrade: read /config")
    refused(h, lambda: outsider.set(base + "/epoch", b"7"), "after the upgrade: set /epoch")
    refused(h, lambda: outsider.delete(base + "/nodes/1"), "after the upgrade: delete /nodes/1")
    h.check(n1.stop() == 0, "n1 stops cleanly")

    # A chroot that does not exist: named, exit 5.
    chroot = "/no-such-chroot-%d" % os.getpid()
    n3 = h.node(3, cluster, zk_hosts=h.ensemble().hosts + chroot)
    expect_exit(h, n3, EXIT_CLUSTER,
                r"the chroot %s in --zk does not exist in ZooKeeper: create it first" % chroot,
                "a --zk whose chroot does not exist")


if __name__ == "__main__":
    harness.main([test_protected_cluster, test_without_credentials_then_upgrade])
