#!/usr/bin/python3
"""Harness for the kvfs cluster tests: a real ZooKeeper ensemble and real kvfs nodes on real FUSE
mounts, all inside one temporary directory, and a tiny runner that counts checks.

A test file lists test functions taking the Harness and ends with `harness.main([...])`:

    def test_one_leader(h):
        nodes = h.nodes(h.cluster_name("one"), 3)   # on the file's ensemble, started on first use
        for n in nodes:
            n.start()                                 # returns once its /.status answers
        ms, leader_id, epoch = h.wait_agreement(nodes, 10)
        h.check(ms is not None, "one leader that every node names", h.last_view)

    if __name__ == "__main__":
        harness.main([test_one_leader])

Runs under Debian's /usr/bin/python3 (stdlib + python3-kazoo); argv[1] is the kvfs binary.
Layout: $T/zk/<i>/{zoo.cfg,data/,server.log}, $T/<cluster>/n<id>/{data/,mnt/,kvfs.log}.
Everything this starts (nodes, ZooKeeper servers, kazoo clients) is stopped by PID and every mount
under $T detached before $T is removed: at the end of each test (its nodes), at the end of the
file, on SIGTERM/SIGINT/SIGHUP, at exit, and when the watchdog (KVFS_TEST_TIMEOUT seconds,
default 500, below meson's 600) fires. Status files are read in threads with timeouts, so a hung
or stopped daemon never blocks the test.

Output: `ok`/`FAIL` per check as it happens; at the end the execution log (timestamped: who won,
epochs, what was killed, takeover times in ms), on failure the tail of each node's log, and one
line `N passed, N failed`. The execution log is also saved to
$KVFS_CLUSTER_LOG_DIR/<test>.log (meson sets it to the build directory's tests/cluster;
default /tmp/kvfs-cluster-logs). KVFS_KEEP=1 keeps $T after a failure; KVFS_TESTS=a,b runs only
the tests whose names contain a or b; KVFS_VERBOSE=1 prints the execution log as it grows;
KVFS_LOG_LIVE=1 prints it timestamped as it grows and not again at the end (chaos.py).

ZooKeeper access: every node gets the run's digest credentials (h.zk_auth, in the mode-600 file
h.zk_auth_file; a Node's `zk_auth_file` = None starts it without), so its znodes carry ACLs for
them alone, and h.zk_client() authenticates with them too (zk_client(auth=None): an outsider).

Partitions (class Net): by default everything listens on loopback. A file that calls
`h.ensemble(netns=True)` and makes its nodes with `netns=True` gets each ZooKeeper server and each
node in its own network namespace (kvfs-<pid>-m<k>), linked by veths to one bridge in a "switch"
namespace, addresses 10.77.R.0/24 (the test itself is .254 over one more veth, to reach
ZooKeeper). Nodes and servers start under `nsenter --net=...` (their mounts stay visible). Then
`h.cut(a, b)`, `h.partition([[a, b], [c, z1]])`, `h.isolate(x, from_=[...])`, `h.cut_zk(node)`
and `h.heal()` drop or restore traffic at once with nftables rules inside those namespaces (a, b,
... are Nodes or ZkServers, `h.ensemble().server(i)`). Every test ends healed; the namespaces go
with the test's nodes and at cleanup, and a SIGKILLed run's leftovers are deleted by the next.
"""

import atexit
import datetime
import base64
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import logging

try:
    from kazoo.client import KazooClient
    from kazoo.exceptions import NoNodeError
except ImportError:  # pragma: no cover - reported by main()
    KazooClient = None
    NoNodeError = Exception

JAVA = shutil.which("java") or "/usr/bin/java"
ZK_JARS = ["/usr/share/java/zookeeper.jar"]
# Optional: without a binding slf4j logs nothing, and ZooKeeper's own log helps when a test fails.
ZK_LOG_JARS = ["/usr/share/java/slf4j-log4j12.jar", "/usr/share/java/log4j-1.2.jar"]
FUSERMOUNT = shutil.which("fusermount3") or "fusermount3"
DEFAULT_SESSION_MS = 6000
ELECTION_CHILD_RE = re.compile(r"^.+-n_[0-9]{10}$")


class Abort(Exception):
    """Raised by Harness.require: the rest of the current test would be meaningless."""


class Interrupted(BaseException):
    """A signal or the watchdog ended the run (BaseException: no test code swallows it)."""


# --- small helpers ------------------------------------------------------------------------------

_used_ports = set()
_ports_lock = threading.Lock()


def free_port():
    """A TCP port on 127.0.0.1 that nobody listens on, below the ephemeral range (so that no
    outgoing connection takes it meanwhile), never the same twice in one run."""
    with _ports_lock:
        for _ in range(2000):
            port = random.randrange(20000, 32000)
            if port in _used_ports:
                continue
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            finally:
                s.close()
            _used_ports.add(port)
            return port
    raise RuntimeError("no free TCP port on 127.0.0.1 between 20000 and 32000")


def parse_kv(text):
    """'id=2 addr=127.0.0.1:7002 epoch=5' -> {'id': '2', 'addr': ..., 'epoch': '5'}."""
    out = {}
    for tok in (text or "").split():
        k, sep, v = tok.partition("=")
        if sep:
            out[k] = v
    return out


def parse_status(text):
    """/.status text -> dict of its `key: value` lines (first one wins); `peer` lines are
    collected in a list under 'peers'. The leader score's lines (priority mode), when present:
    `member: ID k=v ...` under 'members' and `score: ID k=v ... why=TEXT` under 'scores', each a
    dict by node id (int) of dicts (see parse_score_line)."""
    st = {"peers": []}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "peer":
            st["peers"].append(value)
        elif key in ("member", "score"):
            d = parse_score_line(value)
            if d is not None:
                st.setdefault(key + "s", {})[d["id"]] = d
        elif key not in st:
            st[key] = value
    return st


def parse_score_line(value):
    """'2 rank=1 eligible=yes ... why=no contact with a majority' -> {'id': 2, 'rank': '1',
    'eligible': 'yes', ..., 'why': 'no contact with a majority'} (values are strings but for
    the id; `why`, last, keeps its spaces). None if it does not start with a node id."""
    head, _, why = value.partition(" why=")
    words = head.split()
    if not words or not words[0].isdigit():
        return None
    d = parse_kv(" ".join(words[1:]))
    d["id"] = int(words[0])
    if _:
        d["why"] = why
    return d


def st_ms(value):
    """A status figure in ms ('0.41', '-1') as a float, None when unknown or absent."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if v < 0 else v


def st_int(st, key):
    """The integer value of KEY in a status dict, or None (no status, no key, not a number)."""
    if not st:
        return None
    try:
        return int(st.get(key, ""))
    except ValueError:
        return None


def is_mounted(path):
    """True when PATH is a mount point (dead FUSE mounts included, unlike os.path.ismount)."""
    return bool(mounts_under("/", exact=path))


def mounts_under(prefix, exact=None):
    """Mount points from /proc/mounts under PREFIX (or equal to EXACT), deepest first."""
    found = []
    try:
        with open("/proc/mounts") as f:
            for line in f:
                fields = line.split()
                if len(fields) < 2:
                    continue
                mp = fields[1].replace("\\040", " ")
                if exact is not None:
                    if mp == exact:
                        found.append(mp)
                elif mp.startswith(prefix.rstrip("/") + "/"):
                    found.append(mp)
    except OSError:
        pass
    return sorted(found, key=len, reverse=True)


def detach(path):
    """Lazily detaches the mount at PATH (dead or alive) if there is one."""
    for _ in range(5):
        if not is_mounted(path):
            return
        r = subprocess.run([FUSERMOUNT, "-uz", path], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=10)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", path], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=10)


def wait_pid(proc, timeout):
    """Waits up to TIMEOUT s for a Popen to exit; its exit status, or None if still running."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def four_letter(port, cmd, timeout=1.0, host="127.0.0.1"):
    """Sends a ZooKeeper four-letter command to HOST:PORT; the answer, or None."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(cmd.encode())
            chunks = []
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
            return b"".join(chunks).decode(errors="replace")
    except OSError:
        return None


def read_file_timeout(path, timeout):
    """Reads PATH in a daemon thread: (bytes, None) on success, (None, OSError) on an error,
    (None, None) when it did not answer within TIMEOUT s (the thread is left behind; a stopped
    daemon answers it later, a killed one fails it)."""
    box = {}

    def run():
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                chunks = []
                while True:
                    b = os.read(fd, 65536)
                    if not b:
                        break
                    chunks.append(b)
            finally:
                os.close(fd)
            box["data"] = b"".join(chunks)
        except OSError as e:
            box["error"] = e

    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.join(timeout)
    if th.is_alive():
        return None, None
    return box.get("data"), box.get("error")


# --- the execution log --------------------------------------------------------------------------

class ExecLog:
    """Timestamped lines (seconds since the start and wall clock), thread-safe."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.lines = []
        self.lock = threading.Lock()

    def __call__(self, msg):
        now = time.monotonic()
        wall = datetime.datetime.now().strftime("%H:%M:%S.%f")[:-3]
        with self.lock:
            new = []
            for i, part in enumerate(str(msg).splitlines() or [""]):
                prefix = "[%8.3fs %s] " % (now - self.t0, wall) if i == 0 else " " * 24
                new.append(prefix + part)
            self.lines += new
            if os.environ.get("KVFS_LOG_LIVE"):
                print("\n".join(new), flush=True)
        if os.environ.get("KVFS_LOG_LIVE"):
            pass
        elif os.environ.get("KVFS_VERBOSE"):
            print("  log: " + str(msg), flush=True)

    def text(self):
        with self.lock:
            return "\n".join(self.lines) + "\n"


# --- network namespaces and partitions ----------------------------------------------------------

NETNS_DIR = "/var/run/netns"
NETNS_PREFIX = "kvfs-"  # kvfs-<pid of the test>-<what>: a run's names never collide with another's


def _run(args, stdin=None, check=True):
    """Runs a command (ip, nft, nsenter); raises RuntimeError with its output when it fails."""
    r = subprocess.run(args, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=20)
    if check and r.returncode != 0:
        raise RuntimeError("%s: exit status %d: %s" % (" ".join(args), r.returncode,
                                                        r.stdout.strip()))
    return r


def netns_leftovers():
    """Network namespaces of the harness whose test process is gone (a SIGKILLed run)."""
    out = []
    try:
        names = os.listdir(NETNS_DIR)
    except OSError:
        return out
    for name in names:
        m = re.match(r"^%s([0-9]+)-" % re.escape(NETNS_PREFIX), name)
        if m and not os.path.exists("/proc/%s" % m.group(1)):
            out.append(name)
    return out


class NetMember:
    """One network namespace holding one process (a kvfs node or a ZooKeeper server): a veth
    `eth0` with address IP/24, whose other end is a port of the run's bridge."""

    def __init__(self, net, label, index):
        self.net = net
        self.label = label
        self.index = index
        self.ns = "%s%d-m%d" % (NETNS_PREFIX, net.pid, index)
        self.port = "p%d" % index  # the bridge's end, in the switch namespace
        self.ip = "%s.%d" % (net.prefix, index)
        self.path = os.path.join(NETNS_DIR, self.ns)

    def wrap(self, argv):
        """ARGV run inside this namespace (network only: mounts stay shared, FUSE works)."""
        return ["nsenter", "--net=" + self.path] + list(argv)

    def __repr__(self):
        return "%s(%s)" % (self.label, self.ip)


class Net:
    """The run's network of namespaces: one "switch" namespace with a bridge; one namespace per
    member (NetMember) with a veth into the bridge; one veth from the test's own namespace into
    the bridge (10.77.R.254), so that kazoo and the four-letter words reach ZooKeeper. Addresses
    are 10.77.R.0/24, R chosen unused on this machine; nothing is routed anywhere else (the
    namespaces have no default route, the test's namespace only a route to that /24).

    Partitions are nftables rules, installed in the member namespaces: table `inet kvfs_part`
    with an input and an output chain that drop every packet from/to the addresses cut off, so
    cutting and healing are instant, exact and both ways. Arguments of cut/partition/isolate are
    members, or objects with an `ns` attribute (Node, ZkServer). All is deleted by destroy()
    (Harness.cleanup), and a run's leftovers (a SIGKILLed test) by the next run."""

    def __init__(self, h):
        self.h = h
        self.pid = os.getpid()
        self.up = False
        self.members = []
        self.made = 0  # members made so far: indexes (names, addresses) are never reused
        self.cuts = set()  # frozenset({member, member})
        self.switch = "%s%d-sw" % (NETNS_PREFIX, self.pid)
        self.host_if = "kvh%d" % self.pid
        self.prefix = None

    def _setup(self):
        if self.up:
            return
        for name in netns_leftovers():
            _run(["ip", "netns", "delete", name], check=False)
            self.h.log("net: deleted namespace %s left by a run that is gone" % name)
        routes = _run(["ip", "-4", "route", "show"]).stdout
        used = set(int(m) for m in re.findall(r"^10\.77\.([0-9]+)\.", routes, re.M))
        free = [r for r in range(1, 255) if r not in used]
        if not free:
            raise RuntimeError("no free 10.77.R.0/24 for the test network")
        self.prefix = "10.77.%d" % random.choice(free)
        self.up = True  # from here on destroy() has something to do
        _run(["ip", "netns", "add", self.switch])
        _run(["ip", "-n", self.switch, "link", "add", "br0", "type", "bridge"])
        _run(["ip", "-n", self.switch, "link", "set", "br0", "up"])
        _run(["ip", "-n", self.switch, "link", "add", "phost", "type", "veth", "peer", "name",
              self.host_if, "netns", str(self.pid)])
        _run(["ip", "-n", self.switch, "link", "set", "phost", "master", "br0", "up"])
        _run(["ip", "addr", "add", self.prefix + ".254/24", "dev", self.host_if])
        _run(["ip", "link", "set", self.host_if, "up"])
        self.h.log("net: switch namespace %s, %s.0/24, the test at %s.254 (%s)" %
                   (self.switch, self.prefix, self.prefix, self.host_if))

    def member(self, label):
        """A new namespace for LABEL (a node's or a server's name), linked to the bridge."""
        self._setup()
        self.made += 1
        index = self.made
        if index > 250:
            raise RuntimeError("more than 250 namespaces in one run")
        m = NetMember(self, label, index)
        _run(["ip", "netns", "add", m.ns])
        self.members.append(m)
        sw = ["ip", "-n", self.switch]
        _run(sw + ["link", "add", m.port, "type", "veth", "peer", "name", "eth0", "netns", m.ns])
        _run(sw + ["link", "set", m.port, "master", "br0", "up"])
        inside = ["ip", "-n", m.ns]
        _run(inside + ["link", "set", "lo", "up"])
        _run(inside + ["addr", "add", m.ip + "/24", "dev", "eth0"])
        _run(inside + ["link", "set", "eth0", "up"])
        _run(m.wrap(["nft", "-f", "-"]), stdin=(
            "table inet kvfs_part {\n"
            "  chain input { type filter hook input priority 0; policy accept; }\n"
            "  chain output { type filter hook output priority 0; policy accept; }\n"
            "}\n"))
        return m

    def release(self, m):
        """Deletes member M's namespace (its process must be gone); its cuts are forgotten."""
        if m not in self.members:
            return
        self.members.remove(m)
        self.cuts = {c for c in self.cuts if m not in c}
        _run(["ip", "netns", "delete", m.ns], check=False)

    @staticmethod
    def _m(x):
        m = x if isinstance(x, NetMember) else getattr(x, "ns", None)
        if not isinstance(m, NetMember):
            raise ValueError("%r is not in a network namespace (start it with netns=True)" % x)
        return m

    def _apply(self, members):
        """Rewrites the drop rules of MEMBERS' namespaces from self.cuts, one atomic nft
        transaction each."""
        for m in members:
            peers = sorted((o for c in self.cuts if m in c for o in c if o is not m),
                           key=lambda o: o.index)
            rules = ["flush chain inet kvfs_part input", "flush chain inet kvfs_part output"]
            for o in peers:
                rules.append("add rule inet kvfs_part input ip saddr %s drop" % o.ip)
                rules.append("add rule inet kvfs_part output ip daddr %s drop" % o.ip)
            _run(m.wrap(["nft", "-f", "-"]), stdin="\n".join(rules) + "\n")

    def _cut_pairs(self, pairs, what):
        pairs = [(self._m(a), self._m(b)) for a, b in pairs]
        touched = set()
        for a, b in pairs:
            if a is b:
                continue
            self.cuts.add(frozenset((a, b)))
            touched.update((a, b))
        self._apply(touched)
        self.h.log("net: cut %s" % what)

    def cut(self, a, b):
        """Drops everything between A and B, both ways."""
        self._cut_pairs([(a, b)], "%s | %s" % (self._m(a), self._m(b)))

    def partition(self, groups):
        """GROUPS: lists of members; every pair in different groups is cut. Members in no group
        keep every link they have (the test's own veth is never cut)."""
        gs = [[self._m(x) for x in g] for g in groups]
        pairs = [(a, b) for i, g in enumerate(gs) for h2 in gs[i + 1:] for a in g for b in h2]
        self._cut_pairs(pairs, " | ".join(" ".join(map(repr, g)) for g in gs))

    def isolate(self, x, from_):
        """Cuts X from each of FROM_."""
        m = self._m(x)
        others = [self._m(o) for o in from_ if self._m(o) is not m]
        self._cut_pairs([(m, o) for o in others],
                        "%r from %s" % (m, " ".join(map(repr, others))))

    def heal(self):
        """Removes every cut."""
        touched = {m for c in self.cuts for m in c}
        self.cuts = set()
        self._apply([m for m in touched if m in self.members])
        if touched:
            self.h.log("net: healed")

    def destroy(self):
        """Deletes every namespace, veth and bridge of this run (idempotent, never raises)."""
        if not self.up:
            return
        self.up = False
        for m in list(self.members):
            _run(["ip", "netns", "delete", m.ns], check=False)
        self.members = []
        _run(["ip", "link", "delete", self.host_if], check=False)
        _run(["ip", "netns", "delete", self.switch], check=False)
        left = [n for n in (os.listdir(NETNS_DIR) if os.path.isdir(NETNS_DIR) else [])
                if n.startswith("%s%d-" % (NETNS_PREFIX, self.pid))]
        if left:
            print("cleanup: network namespaces left: %s" % left, flush=True)


# --- ZooKeeper ----------------------------------------------------------------------------------

class ZkServer:
    """One ZooKeeper server (QuorumPeerMain run directly by java, so its PID is ours)."""

    def __init__(self, ens, sid):
        self.ens = ens
        self.sid = sid
        self.dir = os.path.join(ens.dir, str(sid))
        self.data = os.path.join(self.dir, "data")
        self.cfg = os.path.join(self.dir, "zoo.cfg")
        self.log_path = os.path.join(self.dir, "server.log")
        self.client_port = free_port()
        self.quorum_port = free_port()
        self.election_port = free_port()
        self.proc = None
        # In a network namespace (Ensemble(netns=True)): its own address there; else loopback.
        self.ns = ens.h.net.member("z%d" % sid) if ens.netns else None
        self.host = self.ns.ip if self.ns else "127.0.0.1"

    @property
    def name(self):
        return "zk%d" % self.sid

    def write_config(self):
        os.makedirs(self.data, exist_ok=True)
        with open(os.path.join(self.data, "myid"), "w") as f:
            f.write("%d\n" % self.sid)
        lines = [
            "tickTime=%d" % self.ens.tick_ms,
            "initLimit=10",
            "syncLimit=5",
            "dataDir=%s" % self.data,
            "clientPort=%d" % self.client_port,
            "clientPortAddress=%s" % self.host,
            "maxClientCnxns=0",
            "admin.enableServer=false",
            "4lw.commands.whitelist=*",
            "autopurge.purgeInterval=0",
        ]
        if len(self.ens.servers) > 1:
            for s in self.ens.servers:
                lines.append("server.%d=%s:%d:%d" % (s.sid, s.host, s.quorum_port,
                                                     s.election_port))
        with open(self.cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(os.path.join(self.dir, "log4j.properties"), "w") as f:
            f.write("log4j.rootLogger=INFO, CONSOLE\n"
                    "log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender\n"
                    "log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout\n"
                    "log4j.appender.CONSOLE.layout.ConversionPattern="
                    "%d{ISO8601} %-5p [%t:%C{1}@%L] - %m%n\n")

    def command(self):
        jars = ZK_JARS + [j for j in ZK_LOG_JARS if os.path.exists(j)]
        flags = ["-Xmx128m", "-Xms16m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                 "-Djava.net.preferIPv4Stack=true",
                 # Test data only: no fsync (a killed server's writes are in the page cache
                 # anyway) and small preallocated log files.
                 "-Dzookeeper.forceSync=no", "-Dzookeeper.preAllocSize=1024",
                 "-Dzookeeper.admin.enableServer=false",
                 "-Dzookeeper.log.dir=" + self.dir,
                 "-Dlog4j.configuration=file:" + os.path.join(self.dir, "log4j.properties")]
        flags += os.environ.get("SERVER_JVMFLAGS", "").split()
        flags += os.environ.get("JVMFLAGS", "").split()
        cmd = [JAVA] + flags + ["-cp", ":".join(jars),
                                "org.apache.zookeeper.server.quorum.QuorumPeerMain", self.cfg]
        return self.ns.wrap(cmd) if self.ns else cmd

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        if self.alive():
            return
        self.write_config()
        with open(self.log_path, "ab") as log:
            log.write(("=== %s started by the test\n" % time.strftime("%T")).encode())
            log.flush()
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        self.ens.h.log("zk%d: started (pid %d, client port %d)" %
                       (self.sid, self.proc.pid, self.client_port))

    def stop(self, timeout=5):
        """SIGTERM, then SIGKILL after TIMEOUT s. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            rc = wait_pid(self.proc, timeout)
            if rc is None:
                self.ens.h.log("zk%d: did not stop within %d s of SIGTERM: SIGKILL" %
                               (self.sid, timeout))
                self.proc.kill()
                wait_pid(self.proc, 10)
            self.ens.h.log("zk%d: stopped (SIGTERM, pid %d)" % (self.sid, self.proc.pid))
        return self.proc.returncode

    def kill(self):
        """SIGKILL by PID."""
        if self.alive():
            self.proc.kill()
            wait_pid(self.proc, 10)
            self.ens.h.log("zk%d: killed with SIGKILL (pid %d)" % (self.sid, self.proc.pid))

    def four(self, cmd, timeout=1.0):
        return four_letter(self.client_port, cmd, timeout, self.host)

    def mode(self):
        """'leader', 'follower', 'standalone', or None (down or not serving)."""
        out = self.four("srvr")
        m = re.search(r"^Mode: (\w+)", out or "", re.M)
        return m.group(1) if m else None

    def serving(self):
        return self.alive() and self.four("ruok") == "imok" and self.mode() is not None

    def session_ids(self):
        """Session ids (ints) of the client connections this server holds (from `cons`)."""
        out = self.four("cons") or ""
        return {int(m, 16) for m in re.findall(r"sid=0x([0-9a-f]+)", out)}


class Ensemble:
    """N ZooKeeper servers on free loopback ports, tickTime 500 ms (so sessions may be as short as
    1 s), admin server off, four-letter words on. With NETNS each server runs in its own network
    namespace (see Net) and listens on its address there."""

    def __init__(self, h, n=3, tick_ms=500, netns=False):
        self.h = h
        self.netns = netns
        self.tick_ms = tick_ms
        self.dir = os.path.join(h.tmp, "zk")
        self.servers = []
        for sid in range(1, n + 1):
            self.servers.append(ZkServer(self, sid))

    @property
    def hosts(self):
        return ",".join("%s:%d" % (s.host, s.client_port) for s in self.servers)

    def server(self, sid):
        return self.servers[sid - 1]

    def start(self, timeout=60):
        """Starts every server that is not running and waits until all of them serve."""
        t0 = time.monotonic()
        for s in self.servers:
            s.start()
        self.wait_serving(timeout)
        self.h.log("zookeeper: %d servers serving after %d ms (%s)" %
                   (len(self.servers), (time.monotonic() - t0) * 1000, self.modes()))

    def wait_serving(self, timeout=60, servers=None):
        servers = servers or [s for s in self.servers if s.alive()]
        deadline = time.monotonic() + timeout
        while True:
            dead = [s for s in servers if not s.alive()]
            if dead:
                raise RuntimeError("ZooKeeper server %d exited (status %s); end of %s:\n%s" %
                                   (dead[0].sid, dead[0].proc.returncode, dead[0].log_path,
                                    tail(dead[0].log_path, 20)))
            if all(s.serving() for s in servers):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("ZooKeeper servers not serving after %d s: %s" %
                                   (timeout, self.modes()))
            time.sleep(0.1)

    def modes(self):
        return ", ".join("zk%d=%s" % (s.sid, s.mode() if s.alive() else "down")
                         for s in self.servers)

    def leader(self):
        """The server that is the ensemble's leader, or None."""
        for s in self.servers:
            if s.alive() and s.mode() in ("leader", "standalone"):
                return s
        return None

    def stop(self):
        for s in self.servers:
            s.stop()


# --- kvfs nodes ---------------------------------------------------------------------------------

class Node:
    """One kvfs daemon `kvfs -f --zk ...` with its data directory, mount point and log. The
    options are attributes, read at each start (change `priority` and start again); `env` is
    added to the daemon's environment."""

    def __init__(self, h, node_id, cluster, zk_hosts, election="sequential", priority=None,
                 session_timeout=None, hold_down=None, cluster_size=3, data=None, extra=(),
                 env=None, netns=False, link_delay=None):
        self.h = h
        self.id = node_id
        self.cluster = cluster
        self.zk_hosts = zk_hosts
        self.election = election
        self.priority = priority
        self.session_timeout = session_timeout
        self.hold_down = hold_down
        self.cluster_size = cluster_size
        self.extra = list(extra)
        # --secret-file(s) given at each start, unless extra holds --insecure
        self.secret_files = [h.secret]
        # --zk-auth-file given at each start (the run's ZooKeeper credentials), None: without
        self.zk_auth_file = h.zk_auth_file
        self.env = dict(env or {})  # added to the daemon's environment (e.g. LD_PRELOAD)
        self.dir = os.path.join(h.tmp, cluster, "n%d" % node_id)
        # LINK_DELAY (ms, jitter_ms) or None: started with the test hook --test-peer-delay on
        # self.delay_file (KVFS_TEST_HOOKS=1), which set_link_delay() rewrites while it runs.
        self.delay_file = os.path.join(self.dir, "link-delay")
        self.link_delay = None
        self.data = data or os.path.join(self.dir, "data")
        self.mnt = os.path.join(self.dir, "mnt")
        self.log_path = os.path.join(self.dir, "kvfs.log")
        self.port = free_port()
        # With NETNS: its own network namespace (see Net), listening on its address there.
        self.ns = h.net.member("%s-n%d" % (cluster, node_id)) if netns else None
        self.host = self.ns.ip if self.ns else "127.0.0.1"
        self.addr = "%s:%d" % (self.host, self.port)
        self.proc = None
        self.stopped = False  # SIGSTOPped by the test
        self.checked = False  # its log was checked for sanitizer reports since its start
        self.log_offset = 0
        self.started_at = None
        self.label = None
        self._inflight = 0
        self._lock = threading.Lock()
        os.makedirs(self.mnt, exist_ok=True)
        if link_delay is not None:
            self.set_link_delay(*link_delay)

    def set_link_delay(self, ms, jitter=0):
        """Delays every message this node sends to its peers by MS +- JITTER ms (uniform) from
        now on (within 100 ms when it runs), or from its next start: the file is replaced
        atomically and the node started with the test hook. (0, 0): no delay."""
        tmp = self.delay_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d %d\n" % (ms, jitter))
        os.rename(tmp, self.delay_file)
        self.link_delay = (ms, jitter)

    @property
    def name(self):
        """How logs call the node: `label` when a test set one, else n<id>."""
        return self.label or "n%d" % self.id

    @property
    def prio(self):
        """The priority the node announces (the daemon's default is 1)."""
        return 1 if self.priority is None else self.priority

    def args(self):
        a = [self.h.kvfs, "-f", "--zk", self.zk_hosts, "--id", str(self.id),
             "--cluster", self.cluster, "--cluster-size", str(self.cluster_size),
             "--data", self.data, "--listen", self.addr, "--election", self.election]
        if self.priority is not None:
            a += ["--priority", str(self.priority)]
        if self.session_timeout is not None:
            a += ["--session-timeout", str(self.session_timeout)]
        if self.hold_down is not None:
            a += ["--hold-down", str(self.hold_down)]
        if "--insecure" not in self.extra:
            for f in self.secret_files:
                a += ["--secret-file", f]
        if self.zk_auth_file is not None:
            a += ["--zk-auth-file", self.zk_auth_file]
        if self.link_delay is not None:
            a += ["--test-peer-delay", self.delay_file]
        a += self.extra + [self.mnt]
        # nsenter --net, not `ip netns exec`: that also makes a private mount namespace, which
        # would hide the FUSE mount from the test.
        return self.ns.wrap(a) if self.ns else a

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, wait=True, timeout=20):
        """Starts the daemon; with WAIT, waits until its /.status answers and raises Abort (after
        counting a failure) when it exits first or does not answer within TIMEOUT s."""
        if self.alive():
            raise RuntimeError("%s is already running" % self.name)
        os.makedirs(self.mnt, exist_ok=True)
        args = self.args()
        with open(self.log_path, "ab") as log:
            self.log_offset = log.tell()
            log.write(("=== %s test: %s\n" % (time.strftime("%T"), " ".join(args))).encode())
            log.flush()
            self.started_at = time.monotonic()
            env = dict(self.env)
            if self.link_delay is not None:
                env["KVFS_TEST_HOOKS"] = "1"
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT,
                                         env=dict(os.environ, **env) if env else None)
        self.stopped = False
        self.checked = False
        self.h.log("%s: started (pid %d, cluster %s, %s, priority %s, session timeout %s)" %
                   (self.name, self.proc.pid, self.cluster, self.election, self.prio,
                    self.session_timeout or "default"))
        if not wait:
            return
        deadline = time.monotonic() + timeout
        while True:
            if self.status(timeout=2) is not None:
                self.h.log("%s: mounted after %d ms" %
                           (self.name, (time.monotonic() - self.started_at) * 1000))
                return
            if not self.alive():
                self.h.require(False, "%s starts" % self.name,
                               "exited with status %s before its /.status answered:\n%s" %
                               (self.proc.returncode, self.output()[-3000:]))
            if time.monotonic() > deadline:
                self.h.require(False, "%s starts" % self.name,
                               "/.status not readable %d s after start:\n%s" %
                               (timeout, self.output()[-3000:]))
            time.sleep(0.05)

    def output(self):
        """What the daemon wrote since its last start."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def wait_exit(self, timeout):
        """The exit status once the daemon has exited, or None if it still runs after TIMEOUT s."""
        if self.proc is None:
            return None
        return wait_pid(self.proc, timeout)

    def stop(self, timeout=10):
        """SIGTERM (after SIGCONT if stopped), SIGKILL after TIMEOUT s; then detaches a mount left
        behind. Returns the exit status; self.mount_left tells whether the mount outlived it."""
        self.mount_left = False
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            if self.stopped:
                self.sigcont()
            t0 = time.monotonic()
            self.proc.terminate()
            rc = wait_pid(self.proc, timeout)
            if rc is None:
                self.h.log("%s: still running %d s after SIGTERM: SIGKILL; its threads were:\n%s" %
                           (self.name, timeout, self.backtrace()))
                self.proc.kill()
                wait_pid(self.proc, 10)
            self.h.log("%s: stopped with SIGTERM, exit status %s after %d ms" %
                       (self.name, self.proc.returncode, (time.monotonic() - t0) * 1000))
            self._mark("stopped with SIGTERM by the test, exit status %s" % self.proc.returncode)
            check_sanitizers(self)
        elif not self.checked:
            check_sanitizers(self)  # it had exited on its own
        self.checked = True
        if is_mounted(self.mnt):
            self.mount_left = True
            detach(self.mnt)
        return self.proc.returncode

    def kill9(self):
        """SIGKILL by PID; the dead mount is detached."""
        if not self.alive():
            raise RuntimeError("%s is not running" % self.name)
        self.proc.kill()
        wait_pid(self.proc, 10)
        self.stopped = False
        self.h.log("%s: killed with SIGKILL (pid %d)" % (self.name, self.proc.pid))
        self._mark("killed with SIGKILL by the test")
        detach(self.mnt)

    def sigstop(self):
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.stopped = True
        self.h.log("%s: SIGSTOP (pid %d)" % (self.name, self.proc.pid))

    def sigcont(self):
        os.kill(self.proc.pid, signal.SIGCONT)
        self.stopped = False
        self.h.log("%s: SIGCONT (pid %d)" % (self.name, self.proc.pid))
        self._mark("SIGCONT by the test")

    def backtrace(self):
        """The stack of every thread of the running daemon (gdb, else the kernel's view), to
        show where a hung daemon hangs."""
        if not self.alive():
            return "(not running)"
        pid = self.proc.pid
        if shutil.which("gdb"):
            try:
                r = subprocess.run(["gdb", "-batch", "-nx", "-p", str(pid), "-ex",
                                    "thread apply all bt 25"], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   timeout=60)
                lines = [l for l in r.stdout.splitlines() if l.startswith(("Thread ", "#"))]
                if lines:
                    return "\n".join(lines[:250])
            except (OSError, subprocess.TimeoutExpired):
                pass
        out = []
        for tid in sorted(os.listdir("/proc/%d/task" % pid)):
            try:
                with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                    comm = f.read().strip()
                with open("/proc/%d/task/%s/wchan" % (pid, tid)) as f:
                    wchan = f.read().strip()
                out.append("thread %s (%s): waiting in %s" % (tid, comm, wchan))
            except OSError:
                pass
        return "\n".join(out)

    def _mark(self, what):
        try:
            with open(self.log_path, "a") as f:
                f.write("=== %s %s\n" % (time.strftime("%T"), what))
        except OSError:
            pass

    def read(self, name=".status", timeout=2.0):
        """The bytes of a file at the root of the mount, or None when it cannot be read within
        TIMEOUT s (dead mount, no mount, stopped daemon). At most 4 reads per node are left
        hanging; beyond that this answers None at once."""
        with self._lock:
            if self._inflight >= 4:
                return None
            self._inflight += 1
        try:
            data, err = read_file_timeout(os.path.join(self.mnt, name), timeout)
        finally:
            with self._lock:
                self._inflight -= 1
        return data

    def status(self, timeout=2.0):
        """/.status as a dict (see parse_status), or None when it cannot be read in time."""
        data = self.read(".status", timeout)
        if data is None:
            return None
        return parse_status(data.decode(errors="replace"))

    def read_status_blocking(self):
        """Reads /.status without a timeout (for the sampler's own threads)."""
        try:
            with open(os.path.join(self.mnt, ".status"), "rb") as f:
                return parse_status(f.read().decode(errors="replace"))
        except OSError:
            return None

    def tail(self, n=30):
        """The last N lines of the log that are the daemon's own, then the last 3 lines of the
        ZooKeeper C client (which can repeat one line many times a second)."""
        lines = tail(self.log_path, 2000).splitlines()
        own = [l for l in lines if "ZOO_" not in l]
        client = [l for l in lines if "ZOO_" in l]
        out = own[-n:]
        if client:
            out.append("(%d lines of the ZooKeeper client in the last %d lines of the log; "
                       "the last 3:)" % (len(client), len(lines)))
            out += client[-3:]
        return "\n".join(out)


def stop_nodes(nodes, timeout=10):
    """Stops NODES like Node.stop, all at once (a hung daemon costs TIMEOUT s once, not each)."""
    running = [n for n in nodes if n.alive()]
    t0 = time.monotonic()
    for n in running:
        if n.stopped:
            n.sigcont()
        n.proc.terminate()
    for n in running:
        rc = wait_pid(n.proc, max(0.1, t0 + timeout - time.monotonic()))
        if rc is None:
            n.h.log("%s: still running %d s after SIGTERM: SIGKILL; its threads were:\n%s" %
                    (n.name, timeout, n.backtrace()))
            n.proc.kill()
            wait_pid(n.proc, 10)
        n.h.log("%s: stopped with SIGTERM, exit status %s" % (n.name, n.proc.returncode))
        n._mark("stopped with SIGTERM by the test, exit status %s" % n.proc.returncode)
        check_sanitizers(n)
    for n in nodes:
        detach(n.mnt)


SANITIZER_REPORTS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def check_sanitizers(n):
    """Counts a failure when the daemon's log since its last start holds a report of
    AddressSanitizer, LeakSanitizer or UndefinedBehaviorSanitizer (in the ASan build)."""
    out = n.output()
    found = [p for p in SANITIZER_REPORTS if p in out]
    if found:
        at = out.find(found[0])
        n.h.check(False, "%s: no sanitizer report in its log" % n.name, out[at:at + 4000])


def tail(path, n):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 300 * n))
            lines = f.read().decode(errors="replace").splitlines()
        return "\n".join(lines[-n:])
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)


# --- views of the cluster -----------------------------------------------------------------------

def statuses(nodes, timeout=1.0):
    """{node id: status dict or None}, read in parallel."""
    out = {}
    threads = []

    def one(n):
        out[n.id] = n.status(timeout)

    for n in nodes:
        th = threading.Thread(target=one, args=(n,), daemon=True)
        th.start()
        threads.append(th)
    for th in threads:
        th.join(timeout + 0.5)
    return {n.id: out.get(n.id) for n in nodes}


def agreement(nodes, sts=None):
    """(leader id, epoch) when every node answers with zk connected, exactly one says role
    leader, it is the node all of them name as leader, all report the same epoch, and the others
    say follower. Otherwise None."""
    sts = sts if sts is not None else statuses(nodes)
    if any(st is None for st in sts.values()):
        return None
    leaders = [nid for nid, st in sts.items() if st.get("role") == "leader"]
    if len(leaders) != 1:
        return None
    lid = leaders[0]
    epochs = {st_int(st, "epoch") for st in sts.values()}
    named = {st_int(st, "leader") for st in sts.values()}
    if named != {lid} or len(epochs) != 1 or None in epochs:
        return None
    if any(st.get("zk") != "connected" for st in sts.values()):
        return None
    if any(st.get("role") != "follower" for nid, st in sts.items() if nid != lid):
        return None
    if any(st_int(st, "node") != nid for nid, st in sts.items()):
        return None
    return lid, epochs.pop()


def view_str(sts):
    """One line per node: the status fields that matter here."""
    lines = []
    for nid, st in sorted(sts.items()):
        if st is None:
            lines.append("n%d: (no answer)" % nid)
        else:
            lines.append("n%d: role=%s leader=%s epoch=%s zk=%s election=%s priority=%s" % (
                nid, st.get("role"), st.get("leader"), st.get("epoch"), st.get("zk"),
                st.get("election"), st.get("priority")))
    return "\n".join(lines)


class Sampler:
    """Reads /.status of each node in its own thread, every INTERVAL s, without a timeout: a read
    that a stopped daemon holds is recorded when it is answered, with that time. `samples` holds
    (monotonic time the answer arrived, node id, status dict or None)."""

    def __init__(self, h, nodes, interval=0.03):
        self.h = h
        self.interval = interval
        self.samples = []
        self.lock = threading.Lock()
        self.running = True
        self.threads = []
        for n in nodes:
            self.add(n)

    def add(self, node):
        th = threading.Thread(target=self._loop, args=(node,), daemon=True)
        th.start()
        self.threads.append(th)

    def _loop(self, node):
        while self.running:
            if node.alive() and os.path.isdir(node.mnt):
                st = node.read_status_blocking()
                with self.lock:
                    self.samples.append((time.monotonic(), node.id, st))
            time.sleep(self.interval)

    def stop(self):
        self.running = False
        for th in self.threads:
            th.join(2)

    def snapshot(self):
        with self.lock:
            return list(self.samples)

    def leaders_by_epoch(self):
        """{epoch: set of node ids that ever said role leader at that epoch}."""
        out = {}
        for _, nid, st in self.snapshot():
            if st and st.get("role") == "leader":
                out.setdefault(st_int(st, "epoch"), set()).add(nid)
        return out

    def duplicate_leaders(self):
        return {e: ids for e, ids in self.leaders_by_epoch().items() if len(ids) > 1}

    def find(self, pred, since=None, until=None):
        """Samples (t, id, st) with since <= t < until for which pred(id, st) holds."""
        return [(t, nid, st) for t, nid, st in self.snapshot()
                if (since is None or t >= since) and (until is None or t < until) and pred(nid, st)]

    def count(self):
        return len(self.snapshot())


# --- the harness and runner ---------------------------------------------------------------------

class Harness:
    def __init__(self, name, kvfs):
        self.name = name
        self.kvfs = kvfs
        self.tmp = tempfile.mkdtemp(prefix="kvfs-%s." % name, dir="/tmp")
        self.log = ExecLog()
        self.passed = 0
        self.failed = 0
        self.failures = []
        self.test = None
        self.test_failed = 0
        self.all_nodes = []
        self.test_nodes = []
        self.zk_clients = []
        self.test_zk_clients = []
        self.samplers = []
        self._ensemble = None
        self._cleaned = False
        self._cluster_seq = 0
        self.net = Net(self)
        # The peers' shared secret (--secret-file), as an operator makes one: 32 random bytes,
        # base64, mode 600. Every node of every cluster in this run holds it.
        self.secret = self.make_secret("secret")
        # The ZooKeeper digest credentials (--zk-auth-file) of every node of every cluster in
        # this run, so their znodes carry ACLs for them alone; zk_client() uses them too.
        self.zk_auth = "kvfs:%s" % base64.b32encode(os.urandom(10)).decode().lower()
        self.zk_auth_file = self.make_secret("zk-auth", (self.zk_auth + "\n").encode())

    def make_secret(self, name, data=None):
        """Writes a secret file NAME (mode 600) in the temporary directory; returns its path."""
        path = os.path.join(self.tmp, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data if data is not None else base64.b64encode(os.urandom(32)) + b"\n")
        return path

    # checks

    def _where(self):
        for fr in reversed(traceback.extract_stack()[:-2]):
            if os.path.basename(fr.filename) != "harness.py":
                return "%s:%d" % (os.path.basename(fr.filename), fr.lineno)
        return "?"

    def check(self, cond, desc, detail=""):
        """Counts and prints one check; returns COND as a bool."""
        if cond:
            self.passed += 1
            print("ok   %s" % desc, flush=True)
            return True
        self.failed += 1
        self.test_failed += 1
        where = self._where()
        print("FAIL %s   (%s)" % (desc, where), flush=True)
        if detail:
            print("\n".join("    " + l for l in str(detail).splitlines()), flush=True)
        self.failures.append("%s: %s   (%s)" % (self.test, desc, where))
        self.log("FAIL %s   (%s)%s" % (desc, where, ("\n" + str(detail)) if detail else ""))
        return False

    def require(self, cond, desc, detail=""):
        """Like check, but a failure ends the current test."""
        if not self.check(cond, desc, detail):
            raise Abort(desc)
        return True

    # resources

    def ensemble(self, n=3, netns=None):
        """The file's ensemble, started on first use and reused by later tests. NETNS=True
        starts it with each server in its own network namespace (Net); a file uses one kind."""
        if self._ensemble is None:
            self._ensemble = Ensemble(self, n, netns=bool(netns))
            self._ensemble.start()
        elif netns is not None and bool(netns) != self._ensemble.netns:
            raise RuntimeError("the file's ensemble is %s network namespaces" %
                               ("in" if self._ensemble.netns else "not in"))
        return self._ensemble

    def cluster_name(self, tag):
        self._cluster_seq += 1
        return "%s-%d-%d" % (tag, os.getpid(), self._cluster_seq)

    def node(self, node_id, cluster, **opts):
        hosts = opts.pop("zk_hosts", None) or \
            self.ensemble(netns=True if opts.get("netns") else None).hosts
        n = Node(self, node_id, cluster, hosts, **opts)
        self.all_nodes.append(n)
        self.test_nodes.append(n)
        return n

    def nodes(self, cluster, count, **opts):
        """Nodes 1..COUNT; netns=True puts each in its own network namespace (see Net), which
        the partition helpers below need."""
        return [self.node(i, cluster, **opts) for i in range(1, count + 1)]

    # partitions (nodes and servers in network namespaces only; see Net). Each logs what it
    # did; every cut is undone by heal(), at the end of each test and by cleanup().

    def cut(self, a, b):
        """Drops all traffic between A and B (nodes or ZooKeeper servers), both ways."""
        self.net.cut(a, b)

    def partition(self, groups):
        """Cuts every pair of members that are in different GROUPS (lists of nodes and
        ZooKeeper servers); members in no group keep their links."""
        self.net.partition(groups)

    def isolate(self, x, from_=None):
        """Cuts X from each of FROM_ (default: every other namespaced node of this test and
        every ZooKeeper server)."""
        if from_ is None:
            from_ = [n for n in self.test_nodes if n.ns is not None and n is not x]
            if self._ensemble is not None and self._ensemble.netns:
                from_ += self._ensemble.servers
        self.net.isolate(x, from_)

    def cut_zk(self, node):
        """Cuts NODE from every ZooKeeper server (it still reaches its peers)."""
        self.net.isolate(node, self.ensemble().servers)

    def heal(self):
        """Undoes every cut."""
        self.net.heal()

    def zk_client(self, auth=True):
        """A kazoo client connected to the ensemble, closed at the end of the test. AUTH: True
        authenticates with the nodes' credentials (h.zk_auth), a "user:password" with those,
        None or False not at all (an outsider: the znodes' ACLs answer it NoAuthError)."""
        if auth is True:
            auth = self.zk_auth
        zk = KazooClient(hosts=self.ensemble().hosts, timeout=10,
                         auth_data=[("digest", auth)] if auth else None)
        zk.start(timeout=20)
        self.zk_clients.append(zk)
        self.test_zk_clients.append(zk)
        return zk

    def sampler(self, nodes, interval=0.03):
        s = Sampler(self, nodes, interval)
        self.samplers.append(s)
        return s

    def watch_leader(self, zk, cluster):
        """Logs every change of /kvfs/CLUSTER/leader as ZooKeeper shows it."""
        path = "/kvfs/%s/leader" % cluster
        last = [object()]

        def changed(data, stat):
            text = data.decode(errors="replace") if data is not None else None
            if text != last[0]:
                last[0] = text
                self.log("zk: %s = %s" % (path.split("/", 3)[-1],
                                          text if text is not None else "(none)"))
            return None

        zk.DataWatch(path, changed)

    # waiting

    def wait_for(self, cond, timeout, interval=0.02):
        """Calls COND until it returns something truthy, at most TIMEOUT s. Returns the elapsed
        time in ms (a float) or None on timeout; self.last holds COND's last value."""
        t0 = time.monotonic()
        while True:
            self.last = cond()
            if self.last:
                return (time.monotonic() - t0) * 1000
            if time.monotonic() - t0 > timeout:
                return None
            time.sleep(interval)

    def wait_agreement(self, nodes, timeout, pred=None):
        """Waits until agreement(nodes) holds (and PRED(leader, epoch) if given). Returns
        (ms, leader id, epoch) or (None, None, None); self.last_view holds the last statuses."""
        box = {}

        def cond():
            sts = statuses(nodes)
            box["sts"] = sts
            a = agreement(nodes, sts)
            if a and (pred is None or pred(*a)):
                return a
            return None

        ms = self.wait_for(cond, timeout)
        self.last_view = view_str(box.get("sts", {}))
        if ms is None:
            return None, None, None
        return ms, self.last[0], self.last[1]

    def wait_election_child(self, zk, cluster, node_id, timeout=10):
        """Waits until /kvfs/CLUSTER/election holds a child whose data says id=NODE_ID."""
        def cond():
            return node_id in [int(kv.get("id", -1)) for _, kv, _ in election_children(zk, cluster)]
        return self.wait_for(cond, timeout, interval=0.05)

    # life cycle

    def begin_test(self, name, doc):
        self.test = name
        self.test_failed = 0
        self.test_nodes = []
        self.test_zk_clients = []
        print("--- %s%s" % (name, (": " + doc) if doc else ""), flush=True)
        self.log("=== %s" % name)

    def end_test(self):
        """Stops the test's nodes and clients; after a failure logs each node's log tail."""
        for s in self.samplers:
            s.stop()
        self.samplers = []
        stop_nodes(self.test_nodes)
        for zk in self.test_zk_clients:
            close_zk(zk)
        self.net.heal()
        for n in self.test_nodes:
            if n.ns is not None and not n.alive():
                self.net.release(n.ns)
        if self.test_failed:
            for n in self.test_nodes:
                self.log("last 30 lines of %s (%s/%s):\n%s" %
                         (n.log_path, n.cluster, n.name, n.tail(30)))

    def cleanup(self):
        """Idempotent: everything this run started goes, whatever state it is in."""
        if self._cleaned:
            return
        self._cleaned = True
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        signal.alarm(0)
        for s in self.samplers:
            s.running = False
        for n in self.all_nodes:
            if n.alive():
                try:
                    os.kill(n.proc.pid, signal.SIGCONT)
                    n.proc.kill()
                    wait_pid(n.proc, 5)
                except OSError:
                    pass
        for _ in range(5):
            left = mounts_under(self.tmp)
            if not left:
                break
            for mp in left:
                detach(mp)
        for zk in self.zk_clients:
            close_zk(zk)
        if self._ensemble is not None:
            for s in self._ensemble.servers:
                try:
                    s.stop()
                except Exception:
                    pass
        self.net.destroy()
        if mounts_under(self.tmp):
            print("cleanup: mounts left under %s: %s" % (self.tmp, mounts_under(self.tmp)))
        elif self.failed and os.environ.get("KVFS_KEEP"):
            print("kept %s for inspection (KVFS_KEEP is set)" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def report(self):
        text = self.log.text()
        if not os.environ.get("KVFS_LOG_LIVE"):  # else it was printed as it grew
            print("\n--- execution log of %s" % self.name)
            sys.stdout.write(text)
        d = os.environ.get("KVFS_CLUSTER_LOG_DIR") or "/tmp/kvfs-cluster-logs"
        try:
            os.makedirs(d, exist_ok=True)
            path = os.path.join(d, self.name + ".log")
            with open(path, "w") as f:
                f.write(text)
                f.write("%d passed, %d failed\n" % (self.passed, self.failed))
            print("--- execution log saved to %s" % path)
        except OSError as e:
            print("--- cannot save the execution log in %s: %s" % (d, e))
        if self.failures:
            print("--- failed checks:")
            for f in self.failures:
                print("  FAIL " + f)
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)


def close_zk(zk):
    try:
        zk.stop()
        zk.close()
    except Exception:
        pass


def election_children(zk, cluster):
    """[(name, parsed data, ZnodeStat)] of /kvfs/CLUSTER/election, sorted by sequence number."""
    base = "/kvfs/%s/election" % cluster
    out = []
    try:
        names = zk.get_children(base)
    except NoNodeError:
        return []
    for name in names:
        try:
            data, stat = zk.get(base + "/" + name)
        except NoNodeError:
            continue
        out.append((name, parse_kv(data.decode(errors="replace")), stat))
    out.sort(key=lambda c: c[0].rsplit("-n_", 1)[-1])
    return out


def zk_get(zk, path):
    """(data as text, ZnodeStat) or (None, None) when PATH does not exist."""
    try:
        data, stat = zk.get(path)
        return (data or b"").decode(errors="replace"), stat
    except NoNodeError:
        return None, None


def check_zk_view(h, zk, cluster, live, leader=None, epoch=None, candidates=None, optional=()):
    """What an outside ZooKeeper client sees under /kvfs/CLUSTER, checked against the nodes:
    one election child per live candidate (CANDIDATES, default all of LIVE; nodes in OPTIONAL
    may have one or not), named
    <guid>-n_<10 digits>, owned by the session that owns the node's /members/<id>; /members
    lists the live nodes with their addresses and priorities; /leader names LEADER (a Node) at
    EPOCH, and /epoch holds EPOCH; /config says size=3 and a hex cluster id."""
    base = "/kvfs/%s" % cluster
    candidates = live if candidates is None else candidates
    cfg, _ = zk_get(zk, base + "/config")
    h.check(cfg is not None and re.fullmatch(r"cluster_id=[0-9a-fA-F]+ size=3", cfg.strip()),
            "zk: %s/config is 'cluster_id=<hex> size=3'" % base, "config: %r" % cfg)

    owners = {}
    try:
        member_ids = sorted(int(m) for m in zk.get_children(base + "/members"))
    except (NoNodeError, ValueError) as e:
        member_ids = "error: %s" % e
    h.check(member_ids == sorted(n.id for n in live),
            "zk: members/ lists the live nodes %s" % sorted(n.id for n in live),
            "members: %s" % member_ids)
    bad = []
    for n in live:
        text, stat = zk_get(zk, "%s/members/%d" % (base, n.id))
        kv = parse_kv(text)
        if stat is not None:
            owners[n.id] = stat.ephemeralOwner
        if stat is None or kv.get("addr") != n.addr or kv.get("priority") != str(n.prio) \
                or not stat.ephemeralOwner:
            bad.append("members/%d = %r (want addr=%s priority=%s, ephemeral)" %
                       (n.id, text, n.addr, n.prio))
    h.check(not bad, "zk: members/<id> are ephemeral with each node's addr and priority",
            "\n".join(bad))

    children = election_children(zk, cluster)
    desc = "\n".join("%s: %s (owner 0x%x)" % (name, kv, st.ephemeralOwner)
                     for name, kv, st in children)
    h.check(all(ELECTION_CHILD_RE.match(name) for name, _, _ in children),
            "zk: election children are named <guid>-n_<10-digit sequence>", desc)
    ids = sorted(int(kv.get("id", -1)) for _, kv, _ in children)
    opt = [n.id for n in optional if n.id in ids and n not in candidates]
    h.check(sorted(set(ids) - set(opt)) == sorted(n.id for n in candidates)
            and len(set(ids)) == len(ids),
            "zk: one election child per live candidate %s" % sorted(n.id for n in candidates),
            "election children:\n%s" % desc)
    bad = []
    by_id = {n.id: n for n in live}
    for name, kv, st in children:
        n = by_id.get(int(kv.get("id", -1)))
        if n is None:
            bad.append("%s: not a live node: %s" % (name, kv))
            continue
        if kv.get("addr") != n.addr or kv.get("priority") != str(n.prio):
            bad.append("%s: %s (want addr=%s priority=%s)" % (name, kv, n.addr, n.prio))
        if owners.get(n.id) != st.ephemeralOwner:
            bad.append("%s: owner 0x%x is not the session of members/%d (0x%x)" %
                       (name, st.ephemeralOwner, n.id, owners.get(n.id) or 0))
    h.check(not bad, "zk: each election child carries its node's id, addr, priority and session",
            "\n".join(bad))

    if leader is not None:
        text, stat = zk_get(zk, base + "/leader")
        kv = parse_kv(text)
        want = {"id": str(leader.id), "addr": leader.addr, "epoch": str(epoch)}
        h.check(text is not None and {k: kv.get(k) for k in want} == want
                and stat.ephemeralOwner == owners.get(leader.id),
                "zk: /leader names n%d at epoch %s, owned by its session" % (leader.id, epoch),
                "leader: %r (owner %s), want %s" %
                (text, stat and hex(stat.ephemeralOwner), want))
        text, _ = zk_get(zk, base + "/epoch")
        h.check(text is not None and text.strip() == str(epoch),
                "zk: /epoch holds %s" % epoch, "epoch znode: %r" % text)


def _on_signal(signum, frame):
    raise Interrupted("signal %d" % signum)


def _on_alarm(signum, frame):
    raise Interrupted("watchdog: KVFS_TEST_TIMEOUT (%s s) passed" %
                      os.environ.get("KVFS_TEST_TIMEOUT", "500"))


def start_in_order(h, nodes, zk):
    """Starts NODES one after the other, each once the previous one's election znode exists, so
    that the order of the sequence numbers is the order of the list."""
    for n in nodes:
        n.start()
        ms = h.wait_election_child(zk, n.cluster, n.id, timeout=15)
        h.require(ms is not None, "%s joins the election (its znode appears)" % n.name,
                  "election children: %s" %
                  [(c[0], c[1]) for c in election_children(zk, n.cluster)])


def settle(h, nodes, timeout=15, what="one leader that every node names"):
    """Waits for agreement among NODES; returns (leader Node, epoch) or ends the test."""
    t0 = time.monotonic()
    ms, lid, epoch = h.wait_agreement(nodes, timeout)
    names = "/".join(n.name for n in nodes)
    h.require(ms is not None, "%s: %s (within %d s)" % (names, what, timeout), h.last_view)
    leader = next(n for n in nodes if n.id == lid)
    h.log("%s lead%s at epoch %d (agreed %d ms after we started waiting)" %
          (leader.name, "s", epoch, (time.monotonic() - t0) * 1000))
    return leader, epoch



def main(tests):
    """Runs TESTS (functions taking the Harness) in order and exits 0 when every check passed."""
    name = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    if len(sys.argv) < 2:
        print("usage: %s KVFS_BIN" % sys.argv[0], file=sys.stderr)
        sys.exit(2)
    kvfs = os.path.realpath(sys.argv[1])
    problems = []
    if not os.access(kvfs, os.X_OK):
        problems.append("%s is not an executable" % kvfs)
    if KazooClient is None:
        problems.append("cannot import kazoo: run with Debian's /usr/bin/python3 and "
                        "python3-kazoo (scripts/install-deps.sh)")
    if not os.path.exists(ZK_JARS[0]) or not os.access(JAVA, os.X_OK):
        problems.append("ZooKeeper or java missing (%s, %s): scripts/install-deps.sh" %
                        (ZK_JARS[0], JAVA))
    if problems:
        print("\n".join(problems) + "\n0 passed, 1 failed", flush=True)
        sys.exit(1)
    logging.basicConfig(level=logging.WARNING, format="kazoo: %(levelname)s %(message)s")
    logging.getLogger("kazoo").setLevel(logging.CRITICAL)

    h = Harness(name, kvfs)
    atexit.register(h.cleanup)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(int(os.environ.get("KVFS_TEST_TIMEOUT", "500")))
    h.log("%s: temporary directory %s, kvfs %s" % (name, h.tmp, kvfs))
    t_all = time.monotonic()
    only = [t for t in os.environ.get("KVFS_TESTS", "").split(",") if t]
    if only:
        tests = [fn for fn in tests if any(t in fn.__name__ for t in only)]
    try:
        for fn in tests:
            h.begin_test(fn.__name__, (fn.__doc__ or "").strip().split("\n")[0])
            t0 = time.monotonic()
            try:
                fn(h)
            except Abort:
                pass
            except Interrupted:
                raise
            except Exception as e:
                # The summary at the end is often all a CI log keeps: name the exception and
                # where in the tests it came from there, not only in the traceback above it.
                tb = [f for f in traceback.extract_tb(e.__traceback__)
                      if "/tests/" in f.filename]
                at = ("%s:%d " % (os.path.basename(tb[-1].filename), tb[-1].lineno)
                      if tb else "")
                msg = " ".join(str(e).split())[:400]
                h.check(False, "%s runs to its end (%s%s: %s)" %
                        (fn.__name__, at, type(e).__name__, msg), traceback.format_exc())
            finally:
                try:
                    h.end_test()
                except Exception:
                    h.check(False, "%s: stopping its nodes" % fn.__name__, traceback.format_exc())
            h.log("%s took %.1f s" % (fn.__name__, time.monotonic() - t0))
    except Interrupted as e:
        h.check(False, "the run is not interrupted", str(e))
        for n in h.test_nodes:
            h.log("last 30 lines of %s:\n%s" % (n.log_path, n.tail(30)))
    finally:
        h.cleanup()
        h.log("%s: %.1f s in all" % (name, time.monotonic() - t_all))
        left = subprocess.run(["pgrep", "-f", "QuorumPeerMain.*%s" % h.tmp],
                              stdout=subprocess.PIPE, text=True).stdout.split()
        if left:
            h.check(False, "no ZooKeeper server left running", "pids: %s" % left)
        h.report()
    sys.exit(1 if h.failed else 0)
