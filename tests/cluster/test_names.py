#!/usr/bin/python3
"""Host names as peer addresses (issue 10), against a real ZooKeeper ensemble and real mounts:
 1. unusable addresses are refused at option checking with exit status 2, before anything is
    created (no data directory, no znode, nothing mounted): --listen nosuch.invalid:7001,
    --listen on an address of another machine, --advertise with a malformed host name;
 2. three nodes whose --listen and --advertise are `localhost:PORT` replicate a write made on a
    follower, show the names in /.status (peer lines and leader_addr), and fail over when the
    leader is killed with -9;
 3. re-resolution: node 3 listens and advertises a name of its own (a line this test adds to
    /etc/hosts), in its own network namespace, and can dial no one (an nftables rule drops its
    outgoing connection attempts to its peers), so only its peers' dials connect it. It stops,
    comes back in a new namespace at a new address under the same name, with the old, dead
    address still listed first for the name: its peers must resolve the name again at their
    redials and try its addresses in order to reach it, and a write on the leader reaches it.

/etc/hosts: the test appends its lines after the file's original bytes, which it never rewrites,
and truncates the file back to exactly those bytes at the end of the test, at exit, and (for a
run that was SIGKILLed) at the start of the next run.

Usage: test_names.py KVFS_BIN        (run by `meson test --suite cluster`)
"""

import atexit
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import settle, start_in_order, statuses  # noqa: E402
from test_replication import read_file, write_file  # noqa: E402

HOSTS = "/etc/hosts"
MARK = "# kvfs test_names pid "


class HostsLines:
    """Names this run adds to /etc/hosts, after the original bytes (never rewritten)."""

    def __init__(self):
        with open(HOSTS, "rb") as f:
            data = f.read()
        # A SIGKILLed run's lines: at the end of the file, marked with a pid that is gone.
        lines = data.decode(errors="replace").splitlines(keepends=True)
        while lines and MARK in lines[-1]:
            m = re.search(re.escape(MARK) + r"([0-9]+)", lines[-1])
            if m is None or os.path.exists("/proc/%s" % m.group(1)):
                break
            lines.pop()
        self.orig = "".join(lines).encode()
        if self.orig != data:
            self._truncate()
        self.names = {}
        atexit.register(self.restore)

    def _truncate(self):
        with open(HOSTS, "r+b") as f:
            cur = f.read()
            if not cur.startswith(self.orig):
                raise RuntimeError("%s changed under the test" % HOSTS)
            f.truncate(len(self.orig))

    def set(self, name, ips):
        """NAME resolves to IPS (in that order) from now on."""
        self.names[name] = list(ips)
        self._truncate()
        sep = b"" if self.orig.endswith(b"\n") or not self.orig else b"\n"
        text = "".join("%s %s %s%d\n" % (ip, n, MARK, os.getpid())
                       for n, addrs in self.names.items() for ip in addrs)
        with open(HOSTS, "ab") as f:
            f.write(sep + text.encode())

    def restore(self):
        """The file as it was, byte for byte (idempotent)."""
        if not self.names:
            return
        self.names = {}
        try:
            self._truncate()
        except (OSError, RuntimeError) as e:
            print("cleanup: cannot restore %s: %s" % (HOSTS, e), flush=True)


def raw_status(n):
    return read_file(os.path.join(n.mnt, ".status"), 3) or b""


def run_kvfs(h, args, timeout=20):
    return subprocess.run([h.kvfs] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=timeout, text=True)


def test_unusable_refused(h):
    """Unusable addresses: exit 2 before any data directory, znode or mount exists."""
    hosts = h.ensemble(netns=True).hosts  # the file's ensemble: test_readdress needs netns
    zk = h.zk_client()
    cases = [
        (["--listen", "nosuch.invalid:7001"], "--listen: 'nosuch.invalid:7001' is unusable"),
        (["--listen", "192.0.2.1:7001"], "not an address of this machine"),
        (["--listen", "localhost:7001", "--advertise", "bad name:7001"], "not a valid host name"),
        (["--listen", "::1:7001"], "brackets"),
        (["--listen", "0.0.0.0:7001"], "peers cannot dial"),
    ]
    for i, (opts, want) in enumerate(cases):
        cluster = h.cluster_name("unusable")
        base = os.path.join(h.tmp, cluster)
        data, mnt = os.path.join(base, "data"), os.path.join(base, "mnt")
        os.makedirs(mnt)
        r = run_kvfs(h, ["-f", "--zk", hosts, "--cluster", cluster, "--id", "1",
                         "--insecure", "--data", data] + opts + [mnt])
        what = " ".join(opts)
        h.check(r.returncode == 2, "%s: exit status 2" % what,
                "status %s: %s" % (r.returncode, r.stdout))
        h.check(want in r.stdout, "%s: the error says '%s'" % (what, want), r.stdout)
        h.check(not os.path.exists(data), "%s: no data directory" % what)
        h.check(zk.exists("/kvfs/%s" % cluster) is None, "%s: no znode" % what)
        h.check(not harness.is_mounted(mnt), "%s: nothing mounted" % what)


def test_localhost_names(h):
    """Three nodes on localhost:PORT names replicate, show the names, and fail over."""
    cluster = h.cluster_name("localhost")
    h.ensemble(netns=True)  # the file's ensemble (test_readdress needs netns)
    zk = h.zk_client()
    nodes = h.nodes(cluster, 3)
    for n in nodes:
        n.addr = "localhost:%d" % n.port
        n.extra += ["--advertise", n.addr]
    start_in_order(h, nodes, zk)
    leader, epoch = settle(h, nodes, what="one leader, established")
    followers = [n for n in nodes if n is not leader]
    h.check(write_file(os.path.join(followers[0].mnt, "k1"), b"v1") == 0,
            "a write on follower %s is acknowledged" % followers[0].name)
    for n in nodes:
        ok = h.wait_for(lambda: read_file(os.path.join(n.mnt, "k1")) == b"v1", 10) is not None
        h.check(ok, "%s reads the write" % n.name)
    st = raw_status(followers[1]).decode(errors="replace")
    h.check("leader_addr: localhost:%d\n" % leader.port in st,
            "/.status shows the leader's advertised name as leader_addr", st)
    for n in nodes:
        h.check(re.search(r"^peer: %d localhost:%d " % (n.id, n.port), st, re.M) is not None,
                "/.status names node %d by its advertised name" % n.id, st)

    leader.kill9()
    rest = followers
    new_leader, epoch2 = settle(h, rest, timeout=20, what="a new leader after kill -9")
    h.check(epoch2 > epoch, "the new leader's epoch is higher (%d > %d)" % (epoch2, epoch))
    h.check(write_file(os.path.join(rest[0].mnt, "k2"), b"v2") == 0,
            "a write after the failover is acknowledged")
    for n in rest:
        ok = h.wait_for(lambda: read_file(os.path.join(n.mnt, "k2")) == b"v2", 10) is not None
        h.check(ok, "%s reads the write made after the failover" % n.name)


def block_dials(ns, ips):
    """In namespace NS, drops outgoing connection attempts (SYN) to IPS."""
    harness._run(ns.wrap(["nft", "-f", "-"]), stdin=(
        "table inet kvfs_names {\n"
        "  chain output { type filter hook output priority 0; policy accept;\n"
        "    ip daddr { %s } tcp flags & (syn | ack) == syn drop; }\n"
        "}\n" % ", ".join(ips)))


def test_readdressed_node(h, hosts):
    """A node back at a new address under its name is reached by its peers' dials."""
    cluster = h.cluster_name("readdress")
    h.ensemble(netns=True)
    zk = h.zk_client()
    nodes = h.nodes(cluster, 3, netns=True)
    n3 = nodes[2]
    name = "kvfs-names-%d-n3" % os.getpid()
    old = n3.ns
    hosts.set(name, [old.ip])
    n3.addr = "%s:%d" % (name, n3.port)
    peers_ips = [n.ns.ip for n in nodes[:2]]
    block_dials(old, peers_ips)
    start_in_order(h, nodes, zk)
    leader, _ = settle(h, nodes, what="one leader, node 3 reached through its name")
    h.check(write_file(os.path.join(leader.mnt, "a"), b"1") == 0, "a first write commits")
    ok = h.wait_for(lambda: read_file(os.path.join(n3.mnt, "a")) == b"1", 10) is not None
    h.check(ok, "node 3 (dialed by name only) receives it")

    n3.stop()
    h.net.release(old)
    new = h.net.member("%s-n3-new" % cluster)
    n3.ns = new
    n3.host = new.ip
    # The dead address first: the peers must go on to the next one.
    hosts.set(name, [old.ip, new.ip])
    block_dials(new, peers_ips)
    h.log("%s now resolves to %s then %s (node 3 moved to %s)" % (name, old.ip, new.ip, new.ip))
    n3.start()
    h.check(write_file(os.path.join(leader.mnt, "b"), b"2") == 0,
            "a write on the leader commits while node 3 is back")
    ok = h.wait_for(lambda: read_file(os.path.join(n3.mnt, "b")) == b"2", 15) is not None
    h.check(ok, "node 3 at its new address receives it (its peers resolved its name again)",
            raw_status(n3).decode(errors="replace"))
    sts = statuses(nodes)
    h.check(all(st is not None for st in sts.values()), "every node answers /.status")
    out = leader.output()
    h.check(("connected to node 3 (%s:%d, dialed)" % (new.ip, n3.port)) in out or
            leader.id == 3, "the leader dialed node 3 at its new address",
            out[-2000:])


def test_readdress(h):
    """Node 3 moves to a new address under its name (an /etc/hosts line of this test)."""
    hosts = HostsLines()
    try:
        test_readdressed_node(h, hosts)
    finally:
        hosts.restore()


if __name__ == "__main__":
    harness.main([test_unusable_refused, test_localhost_names, test_readdress])
