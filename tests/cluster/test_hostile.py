#!/usr/bin/python3
"""Hostile peers (issue 9), against a real three-server ZooKeeper ensemble and kvfs nodes started
as the README says (with --secret-file; see harness.py). An attacker who can reach the
replication ports but does not hold the secret speaks the wire format from here (struct and
socket: bare frames of include/kvfs/frame.h, messages of peer_msg.h, operations of op.h, the
handshake's message 1 of peer_sec.h) and must get nothing and change nothing:

 - bare frames (a HELLO with the right cluster id, then FETCH, APPEND with a commit index past the
   end, NEW_EPOCH 2^62 and epoch+1, FORWARD of a CREATE, a PUT and a huge SETATTR, SNAPSHOT_PULL),
   to the leader and to each follower;
 - random bytes (several seeds and lengths), a well-formed message 1 followed by a forged
   message 2, a degenerate public key, a handshake dribbled a byte at a time, one never finished;
 - a handshake captured by a relay between two real nodes, replayed to either side;
 - a real node started with another secret, and a real node started with --insecure;
 - 2,000 idle connections to the leader's port (and some to each follower) while writers run;
   and a steady stream of them (1,000 a second) to the leader and a follower that is restarted:
   it rejoins and catches up.

Each time: the node closes the connection having sent nothing but its 40-byte message 1 (never
the cluster id, never a value), no key appears on any mount, a file's value and size do not
change, /.status keeps its leader and epoch, DATA/promise does not move, writes on the mounts
keep succeeding, and the logs say what happened without filling up.

Usage: test_hostile.py KVFS_BIN        (run by `meson test --suite cluster`)
"""

import errno
import os
import random
import re
import resource
import selectors
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import settle, st_int, start_in_order, statuses, view_str  # noqa: E402
from test_replication import read_file, write_file  # noqa: E402

# --- the wire, spoken from outside -------------------------------------------------------------

FRAME_MAGIC = 0x5346564b  # "KVFS"
M1_MAGIC = b"KVFS-HS1"
M1_BYTES = 40
ROOT_INO = 1

HELLO, NEW_EPOCH, APPEND, FORWARD, READ_INDEX, READ_INDEX_REPLY, FETCH, SNAPSHOT_PULL = \
    1, 2, 4, 6, 8, 9, 12, 15
OP_PUT, OP_CREATE, OP_SETATTR = 1, 3, 9
SET_SIZE, SET_MODE = 0x08, 0x01


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC32C_TABLE = _crc32c_table()


def crc32c(data, crc=0):
    """CRC32C (Castagnoli), extending CRC as replica/crc32c.c does."""
    crc ^= 0xffffffff
    for b in data:
        crc = CRC32C_TABLE[(crc ^ b) & 0xff] ^ (crc >> 8)
    return crc ^ 0xffffffff


assert crc32c(b"123456789") == 0xe3069283


def frame(type_, payload=b""):
    """A bare frame (frame.h): magic, version 1, type, flags 0, length, crc32c, payload."""
    hdr = struct.pack("<IBBHI", FRAME_MAGIC, 1, type_, 0, len(payload))
    return hdr + struct.pack("<I", crc32c(payload, crc32c(hdr))) + payload


def parse_frames(data):
    """[(type, payload)] of the whole bare frames at the start of DATA (checksums verified)."""
    out = []
    while len(data) >= 16:
        magic, version, type_, flags, length, crc = struct.unpack("<IBBHII", data[:16])
        if magic != FRAME_MAGIC or version != 1 or flags != 0 or len(data) < 16 + length:
            break
        payload = data[16:16 + length]
        if crc32c(payload, crc32c(data[:12])) != crc:
            break
        out.append((type_, payload))
        data = data[16 + length:]
    return out


PEER_PROTOCOL = 4  # KVFS_PEER_PROTOCOL_VERSION (peer_msg.h); 3 before issue 13, 2 before 12, 1 before 11


def hello(cluster_id, node_id, epoch, version=PEER_PROTOCOL):
    cid = cluster_id.encode()
    return struct.pack("<BB", version, len(cid)) + cid + struct.pack("<IQ", node_id, epoch)


def op_header(type_, flags=0, origin=0, seq=0, time_ns=0, max_value=1 << 20):
    return struct.pack("<BIIQqQ", type_, flags, origin, seq, time_ns, max_value)


def op_put(ino, data, **kw):
    return op_header(OP_PUT, **kw) + struct.pack("<QI", ino, len(data)) + data


def op_create(parent, name, mode=0o644, **kw):
    return op_header(OP_CREATE, **kw) + struct.pack("<QIIII", parent, mode, 0, 0, len(name)) + name


def op_setattr(ino, size, mode=0o777, **kw):
    return op_header(OP_SETATTR, flags=SET_SIZE | SET_MODE, **kw) + \
        struct.pack("<QIIIQqq", ino, mode, 0, 0, size, 0, 0)


def forward(origin, seq, op):
    return struct.pack("<IQI", origin, seq, len(op)) + op


def append(epoch, prev_epoch, prev_index, commit, entries):
    body = struct.pack("<QQQQI", epoch, prev_epoch, prev_index, commit, len(entries))
    for e, i, data in entries:
        body += struct.pack("<QQI", e, i, len(data)) + data
    return body


def u64(v):
    return struct.pack("<Q", v)


# --- talking to a node ------------------------------------------------------------------------

def recv_chunk(sock):
    """What a non-blocking SOCK has: (bytes, None); (None, None) when nothing has come yet;
    (b"", None) at EOF; (b"", why) when the connection failed ("reset", or the error)."""
    try:
        return sock.recv(4096), None
    except BlockingIOError:
        return None, None
    except ConnectionResetError:
        return b"", "reset"
    except OSError as e:
        return b"", e.strerror or str(e)


def exchange(port, chunks, gap=0.0, timeout=3.0, first_wait=0.0):
    """Connects to 127.0.0.1:PORT, waits FIRST_WAIT s, sends CHUNKS (GAP s apart; a send the node
    refuses ends the sending), then reads until the node closes or TIMEOUT s have passed since
    the connection was made. Returns (bytes received, "eof" | "reset" | "open" | an error,
    seconds from the connection to its end)."""
    t0 = time.monotonic()
    got = bytearray()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError as e:
        return b"", "connect: %s" % e, 0.0
    how = "open"
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if first_wait:
            time.sleep(first_wait)
        for i, c in enumerate(chunks):
            if i and gap:
                time.sleep(gap)
            try:
                s.sendall(c)
            except OSError:
                break
        while True:
            left = t0 + timeout - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                how = "reset"
                break
            except OSError as e:
                how = str(e)
                break
            if not d:
                how = "eof"
                break
            got += d
    finally:
        s.close()
    return bytes(got), how, time.monotonic() - t0


def only_m1(got):
    """Whether GOT is (a prefix of) one handshake message 1 and nothing more."""
    return len(got) <= M1_BYTES and got[:8] == M1_MAGIC[:min(8, len(got))]


def judge(h, results, secrets, what, max_s=None):
    """Checks EXCHANGE results [(label, (got, how, secs))]: each closed by the node, with nothing
    but message 1 received and none of SECRETS in it (and within MAX_S s)."""
    lengths = {}
    for _, (g, _, _) in results:
        lengths[len(g)] = lengths.get(len(g), 0) + 1
    h.log("%s: bytes received per connection: %s" %
          (what, ", ".join("%d on %d" % kv for kv in sorted(lengths.items()))))
    bad_close = ["%s: %s after %.2f s" % (l, how, s) for l, (g, how, s) in results
                 if how not in ("eof", "reset")]
    h.check(not bad_close, "%s: the node closes every connection (%d)" % (what, len(results)),
            "\n".join(bad_close))
    more = ["%s: %d bytes %r" % (l, len(g), g[:60]) for l, (g, how, s) in results if not only_m1(g)]
    h.check(not more, "%s: nothing comes back but the 40-byte handshake message 1" % what,
            "\n".join(more))
    leaked = ["%s: %r" % (l, sec) for l, (g, how, s) in results for sec in secrets if sec in g]
    h.check(not leaked, "%s: neither the cluster id nor any value written is ever received" % what,
            "\n".join(leaked))
    if max_s is not None:
        slow = ["%s: %.2f s" % (l, s) for l, (g, how, s) in results if s > max_s]
        h.check(not slow, "%s: closed within %.1f s of connecting" % (what, max_s),
                "\n".join(slow))


# --- the cluster and what must not move --------------------------------------------------------

def cluster_id(zk, cluster):
    text, _ = harness.zk_get(zk, "/kvfs/%s/config" % cluster)
    m = re.search(r"cluster_id=([0-9a-fA-F]+)", text or "")
    return m.group(1) if m else None


def start_cluster(h, tag, count=3, configure=None):
    """COUNT nodes (of a cluster of 3) started in order and settled. CONFIGURE(nodes) may change
    them before they start. Returns (nodes, leader, epoch, cluster id)."""
    cluster = h.cluster_name(tag)
    zk = h.zk_client()
    nodes = h.nodes(cluster, count)
    if configure:
        configure(nodes)
    start_in_order(h, nodes, zk)
    leader, epoch = settle(h, nodes, what="one leader, established (its no-op committed)")
    cid = cluster_id(zk, cluster)
    h.require(cid is not None, "the cluster id is in ZooKeeper's /config")
    sts = statuses(nodes)
    h.check(all(st and st.get("peer_security") == "encrypted" for st in sts.values()),
            "/.status says peer_security: encrypted on every node",
            {nid: st and st.get("peer_security") for nid, st in sts.items()})
    return nodes, leader, epoch, cid


def promise(n):
    try:
        with open(os.path.join(n.data, "promise"), "rb") as f:
            return f.read()
    except OSError as e:
        return "unreadable: %s" % e


def state(nodes):
    """{node id: (role, leader, epoch, DATA/promise)}: what an attack must not move."""
    sts = statuses(nodes)
    return {n.id: (sts[n.id] and sts[n.id].get("role"), sts[n.id] and sts[n.id].get("leader"),
                   st_int(sts[n.id], "epoch"), promise(n)) for n in nodes}


def hostile_names(nodes):
    """Names starting with "hostile" at the root of any mount."""
    found = []
    for n in nodes:
        try:
            found += ["%s: %s" % (n.name, e) for e in os.listdir(n.mnt) if e.startswith("hostile")]
        except OSError as e:
            found.append("%s: cannot list: %s" % (n.name, e))
    return found


def check_unchanged(h, nodes, before, victim, what):
    """Nothing moved: state(), no hostile key, VICTIM (name, bytes) unchanged on every node."""
    # What got in would take a round trip or a commit to show: give it time to.
    time.sleep(0.5)
    after = state(nodes)
    h.check(after == before, "%s: role, leader, epoch and DATA/promise of every node do not move"
            % what, "before %s\nafter  %s" % (before, after))
    h.check(not hostile_names(nodes), "%s: no key appears on any mount" % what,
            "\n".join(hostile_names(nodes)))
    if victim:
        name, value = victim
        bad = []
        for n in nodes:
            got = read_file(os.path.join(n.mnt, name))
            if got != value:
                bad.append("%s: %r" % (n.name, got if got is None else got[:80]))
        h.check(not bad, "%s: the file's value and size do not change on any node" % what,
                "\n".join(bad))


class Writers:
    """One thread per node writing (overwriting) a few files on its mount in a loop, each value
    carrying MARK, until stop() or the node's end; counts the writes and keeps the failures."""

    def __init__(self, nodes, mark, tag):
        self.mark = mark
        self.ok = 0
        self.failed = []
        self.running = True
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(n, tag), daemon=True)
                        for n in nodes]
        for t in self.threads:
            t.start()

    def _run(self, n, tag):
        i = 0
        # A test that ends early stops its nodes: the thread stops with them.
        while self.running and n.alive():
            name = "%s-%s-%d" % (tag, n.name, i % 8)
            rv = write_file(os.path.join(n.mnt, name), self.mark + b" %d" % i)
            with self.lock:
                if rv == 0:
                    self.ok += 1
                else:
                    self.failed.append("%s: %s" % (name, os.strerror(rv)))
            i += 1
            time.sleep(0.01)

    def stop(self, h, what):
        self.running = False
        for t in self.threads:
            t.join(15)
        h.log("%s: %d writes on the mounts, %d failed" % (what, self.ok, len(self.failed)))
        h.check(self.ok > 0 and not self.failed,
                "%s: writes on the mounts keep succeeding (%d, none failed)" % (what, self.ok),
                "\n".join(self.failed[:10]))


def log_mark(nodes):
    return {n.id: len(n.output()) for n in nodes}


def log_since(n, mark):
    return n.output()[mark[n.id]:]


def stranger_lines(text):
    return [l for l in text.splitlines()
            if "closing connection from" in l or "such warnings" in l]


def check_quiet_logs(h, nodes, mark, what, most=3):
    """Each node warned about the strangers, and only a few lines (the warnings are summed up)."""
    for n in nodes:
        lines = stranger_lines(log_since(n, mark))
        h.check(1 <= len(lines) <= most,
                "%s: %s's log warns about the strangers in 1 to %d lines" % (what, n.name, most),
                "\n".join(lines[:20]) or "(none)")


def setup_victim(h, nodes, leader, mark):
    """A file written on the leader and replicated everywhere: (name, value, inode)."""
    value = mark + b" victim"
    path = os.path.join(leader.mnt, "victim")
    h.require(write_file(path, value) == 0, "a file is written")
    ms = h.wait_for(lambda: all(read_file(os.path.join(n.mnt, "victim")) == value
                                for n in nodes), 10, 0.05)
    h.require(ms is not None, "every node reads it")
    return "victim", value, os.stat(path).st_ino


# --- the tests ----------------------------------------------------------------------------------

def test_plaintext_frames(h):
    """Bare frames (a HELLO with the right cluster id, then FETCH, APPEND, NEW_EPOCH, FORWARD,
    SNAPSHOT_PULL) to the leader and each follower: closed, nothing back, nothing moves."""
    nodes, leader, epoch, cid = start_cluster(h, "plain")
    mark = b"kvfs-hostile-value-%08x" % random.getrandbits(32)
    name, value, ino = setup_victim(h, nodes, leader, mark)
    last = st_int(leader.status(), "commit_index") or 1
    before = state(nodes)
    follower = next(n for n in nodes if n is not leader)
    attacks = [
        ("fetch from index 1", frame(FETCH, u64(epoch) + u64(1))),
        ("append, commit index past the end",
         frame(APPEND, append(epoch, epoch, last, last + 1000,
                              [(epoch, last + 1, op_create(ROOT_INO, b"hostile-append")),
                               (epoch, last + 2, op_put(ino, b"hostile put"))]))),
        ("new_epoch 2^62", frame(NEW_EPOCH, u64(1 << 62))),
        ("new_epoch epoch+1", frame(NEW_EPOCH, u64(epoch + 1))),
        ("forward create", frame(FORWARD, forward(
            follower.id, 1 << 40, op_create(ROOT_INO, b"hostile-create", origin=follower.id,
                                            seq=1 << 40)))),
        ("forward put", frame(FORWARD, forward(
            follower.id, (1 << 40) + 1, op_put(ino, b"hostile put", origin=follower.id,
                                               seq=(1 << 40) + 1)))),
        ("forward huge setattr", frame(FORWARD, forward(
            follower.id, (1 << 40) + 2, op_setattr(ino, 1 << 62, origin=follower.id,
                                                   seq=(1 << 40) + 2, max_value=1 << 62)))),
        ("snapshot_pull", frame(SNAPSHOT_PULL, u64(epoch + 1))),
    ]
    mark_logs = log_mark(nodes)
    writers = Writers(nodes, mark, "w")
    results = []
    for n in nodes:
        # Claim to be the leader when talking to a follower, a follower when talking to the
        # leader: the sender each message would have.
        claimed = leader.id if n is not leader else follower.id
        for what, msg in attacks:
            results.append(("%s to %s" % (what, n.name),
                             exchange(n.port, [frame(HELLO, hello(cid, claimed, epoch)) + msg])))
            # And the message alone, as if the HELLO had been taken.
            results.append(("%s alone to %s" % (what, n.name), exchange(n.port, [msg])))
    judge(h, results, [cid.encode(), mark], "bare frames", max_s=1.5)
    check_unchanged(h, nodes, before, (name, value), "after bare frames")
    writers.stop(h, "during bare frames")
    check_quiet_logs(h, nodes, mark_logs, "bare frames")
    lines = stranger_lines(log_since(leader, mark_logs))
    h.check(any("does not speak the kvfs handshake" in l for l in lines),
            "the leader's log says the stranger does not speak the kvfs handshake",
            "\n".join(lines))


def test_random_bytes(h):
    """Random bytes, a forged message 2 after a valid-looking message 1, a degenerate key, a
    handshake dribbled or never finished: closed within about a second, nothing moves."""
    nodes, leader, epoch, cid = start_cluster(h, "random")
    mark = b"kvfs-hostile-value-%08x" % random.getrandbits(32)
    name, value, ino = setup_victim(h, nodes, leader, mark)
    before = state(nodes)
    mark_logs = log_mark(nodes)
    writers = Writers(nodes, mark, "w")
    cases = []
    for seed in range(1, 6):
        rng = random.Random(seed)
        for length in (1, 5, 16, 40, 64, 1000, 70000):
            cases.append(("seed %d, %d random bytes" % (seed, length),
                          [bytes(rng.getrandbits(8) for _ in range(length))], 0))
        pk = bytes(rng.getrandbits(8) for _ in range(32))
        cases.append(("seed %d, message 1 and a random message 2" % seed,
                      [M1_MAGIC + pk + bytes(rng.getrandbits(8) for _ in range(24))], 0))
        cases.append(("seed %d, message 1 and random records" % seed,
                      [M1_MAGIC + pk + bytes(rng.getrandbits(8) for _ in range(4000))], 0))
    cases += [
        ("a zero public key and a message 2", [M1_MAGIC + bytes(32) + bytes(24)], 0),
        ("message 1 and nothing more", [M1_MAGIC + os.urandom(32)], 0),
        ("\"KVFS-HS1\" alone", [M1_MAGIC], 0),
        ("a handshake dribbled a byte each 50 ms",
         [bytes([b]) for b in M1_MAGIC + os.urandom(32) + os.urandom(24)], 0.05),
        ("a frame header claiming 80 MiB", [struct.pack("<IBBHII", FRAME_MAGIC, 1, HELLO, 0,
                                                        80 << 20, 0)], 0),
    ]
    results = []
    lock = threading.Lock()

    def run(n, label, chunks, gap):
        r = exchange(n.port, chunks, gap=gap, timeout=4.0)
        with lock:
            results.append(("%s to %s" % (label, n.name), r))

    threads = [threading.Thread(target=run, args=(n,) + c, daemon=True)
               for n in nodes for c in cases]
    for i, t in enumerate(threads):
        t.start()
        if i % 16 == 15:
            time.sleep(0.05)
    for t in threads:
        t.join(10)
    h.log("random bytes: %d connections, the slowest closed after %.2f s" %
          (len(results), max(s for _, (g, how, s) in results)))
    judge(h, results, [cid.encode(), mark], "random bytes", max_s=1.5)
    check_unchanged(h, nodes, before, (name, value), "after random bytes")
    writers.stop(h, "during random bytes")
    check_quiet_logs(h, nodes, mark_logs, "random bytes")


class Relay:
    """Listens on a port of its own and forwards each connection to 127.0.0.1:TARGET, keeping
    the first CAP bytes of each direction: sessions[i] = {"up": client to target, "down"}."""
    CAP = 1 << 20

    def __init__(self, target):
        self.target = target
        self.port = harness.free_port()
        self.sessions = []
        self.lock = threading.Lock()
        self.socks = []
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", self.port))
        self.lsock.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                t = socket.create_connection(("127.0.0.1", self.target), timeout=2)
                t.settimeout(None)
            except OSError:
                c.close()
                continue
            s = {"up": bytearray(), "down": bytearray()}
            with self.lock:
                self.sessions.append(s)
                self.socks += [c, t]
            for sk in (c, t):
                sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pump, args=(c, t, s["up"]), daemon=True).start()
            threading.Thread(target=self._pump, args=(t, c, s["down"]), daemon=True).start()

    def _pump(self, src, dst, buf):
        try:
            while True:
                d = src.recv(65536)
                if not d:
                    break
                with self.lock:
                    if len(buf) < self.CAP:
                        buf += d[:self.CAP - len(buf)]
                dst.sendall(d)
        except OSError:
            pass
        for sk in (src, dst):
            try:
                sk.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def recorded(self, least):
        """A copy of the sessions that carried at least LEAST bytes each way."""
        with self.lock:
            return [(bytes(s["up"]), bytes(s["down"])) for s in self.sessions
                    if len(s["up"]) >= least and len(s["down"]) >= least]

    def close(self):
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self.socks)
        for sk in socks:
            try:
                sk.shutdown(socket.SHUT_RDWR)
                sk.close()
            except OSError:
                pass


def test_replayed_handshake(h):
    """A relay between real nodes records a handshake and what followed; replayed to either side
    in a new connection it gets nothing beyond message 1 and is closed, and nothing moves."""
    relays = []
    try:
        def behind_relays(nodes):
            # Each node listens on its port but announces its relay's: every connection between
            # them goes through a relay, whichever side dials.
            for n in nodes:
                relays.append(Relay(n.port))
                n.extra += ["--advertise", "127.0.0.1:%d" % relays[-1].port]

        nodes, leader, epoch, cid = start_cluster(h, "replay", configure=behind_relays)
        mark = b"kvfs-hostile-value-%08x" % random.getrandbits(32)
        name, value, ino = setup_victim(h, nodes, leader, mark)

        def recorded():
            # Traffic: the writes above, and pings four times a second.
            return [(n, up, down) for n, r in zip(nodes, relays) for up, down in r.recorded(2000)]

        ms = h.wait_for(recorded, 10, 0.1)
        h.require(ms is not None, "the relays record a connection carrying traffic",
                  "sessions: %s" % [[(len(s["up"]), len(s["down"])) for s in r.sessions]
                                    for r in relays])
        target, up, down = recorded()[-1]
        h.log("replaying a connection to %s: %d bytes recorded from the dialer, %d from %s" %
              (target.name, len(up), len(down), target.name))
        h.check(up[:8] == M1_MAGIC and down[:8] == M1_MAGIC and value not in up + down
                and cid.encode() not in up + down,
                "the recorded traffic starts with two messages 1 and shows neither the cluster "
                "id nor a value written")
        before = state(nodes)
        mark_logs = log_mark(nodes)
        writers = Writers(nodes, mark, "w")
        results = []
        # The dialer's bytes (message 1, its proof, sealed records) to the node it proved
        # itself to, at once, and in the recorded rhythm after the node's fresh message 1.
        results.append(("the dialer's recorded bytes to %s" % target.name,
                        exchange(target.port, [up[:8192]])))
        results.append(("the dialer's recorded bytes to %s, after its message 1" % target.name,
                        exchange(target.port, [up[:64], up[64:8192]], gap=0.1, first_wait=0.1)))
        # The answering side's bytes (message 1, its proof, records) to every other node, as if
        # we had dialed it.
        for n in nodes:
            if n is not target:
                results.append(("%s's recorded bytes to %s" % (target.name, n.name),
                                exchange(n.port, [down[:8192]])))
        judge(h, results, [cid.encode(), mark], "replayed handshake", max_s=1.5)
        check_unchanged(h, nodes, before, (name, value), "after replayed handshakes")
        writers.stop(h, "during replayed handshakes")
        sts = statuses(nodes)
        down_peers = ["n%d: %s" % (nid, p) for nid, st in sts.items()
                      for p in (st or {"peers": ["no status"]})["peers"] if " down " in p + " "]
        h.check(not down_peers, "every node still shows its peers connected", "\n".join(down_peers))
        lines = stranger_lines(log_since(target, mark_logs))
        h.check(any("did not prove it holds this cluster's secret" in l for l in lines),
                "%s's log says the replayed dialer did not prove it holds the secret" %
                target.name, "\n".join(lines) or "(nothing)")
    finally:
        for r in relays:
            r.close()


def flood_wave(h, nodes, per):
    """Opens PER[id] idle connections to each node at once and waits (5 s at most) for the nodes
    to close them. Returns [(label, (bytes received, how it ended, seconds it lasted))]."""
    sel = selectors.DefaultSelector()
    conns = []
    refused = []
    t0 = time.monotonic()
    for n in nodes:
        for _ in range(per[n.id]):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            rv = s.connect_ex(("127.0.0.1", n.port))
            if rv not in (0, errno.EINPROGRESS):
                refused.append("%s: %s" % (n.name, os.strerror(rv)))
                s.close()
                continue
            c = {"node": n, "sock": s, "t": time.monotonic(), "got": bytearray(), "end": None,
                 "how": None}
            conns.append(c)
            sel.register(s, selectors.EVENT_READ, c)
    opened_s = time.monotonic() - t0
    deadline = time.monotonic() + 5
    left = len(conns)
    while left and time.monotonic() < deadline:
        for key, _ in sel.select(0.1):
            c = key.data
            d, why = recv_chunk(c["sock"])
            if d is None:
                continue
            c["how"] = c["how"] or why
            if d:
                c["got"] += d
                continue
            c["end"] = time.monotonic()
            c["how"] = c["how"] or "eof"
            sel.unregister(c["sock"])
            c["sock"].close()
            left -= 1
    for c in conns:
        if c["end"] is None:
            sel.unregister(c["sock"])
            c["sock"].close()
    sel.close()
    slowest = {}
    for c in conns:
        if c["end"]:
            n = c["node"].name
            slowest[n] = max(slowest.get(n, 0), c["end"] - c["t"])
    h.log("flood: %d connections opened in %.2f s; %d still open 5 s later; the slowest were "
          "closed after %s" % (len(conns), opened_s, left,
                               ", ".join("%.2f s (%s)" % (v, k) for k, v in sorted(slowest.items()))))
    return refused, [("%s #%d" % (c["node"].name, i),
                      (bytes(c["got"]), c["how"] or "open", (c["end"] or time.monotonic()) - c["t"]))
                     for i, c in enumerate(conns)]


def raise_nofile(need):
    """Raises this process's RLIMIT_NOFILE to NEED descriptors if it is lower (within the hard
    limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (need if hard == resource.RLIM_INFINITY else min(need, hard), hard))


def test_idle_flood(h):
    """2,000 idle connections to the leader's port and 200 to each follower, three times, while
    writers run: no write fails, the leader stays leader, the nodes close every connection
    within about a second, and their logs do not take a line per connection."""
    nodes, leader, epoch, cid = start_cluster(h, "flood")
    per = {n.id: 2000 if n is leader else 200 for n in nodes}
    raise_nofile(sum(per.values()) + 1024)
    mark = b"kvfs-hostile-value-%08x" % random.getrandbits(32)
    before = state(nodes)
    mark_logs = log_mark(nodes)
    writers = Writers(nodes, mark, "w")
    time.sleep(0.3)
    for wave in range(3):
        refused, results = flood_wave(h, nodes, per)
        h.check(not refused, "every connection is accepted by the kernel",
                "\n".join(refused[:10]))
        judge(h, results, [cid.encode(), mark], "%d idle connections (wave %d)" %
              (len(results), wave + 1), max_s=2.0)
    writers.stop(h, "during the flood")
    after = state(nodes)
    h.check(after == before, "after the flood: the leader is still leader at the same epoch, "
            "DATA/promise unchanged", "before %s\nafter  %s" % (before, after))
    for n in nodes:
        text = log_since(n, mark_logs)
        h.check(len(text.splitlines()) < 40,
                "%s's log took %d lines for %d strangers (no line per connection)" %
                (n.name, len(text.splitlines()), 3 * per[n.id]), text[-3000:])


class Flood:
    """A thread that opens idle connections to each node TARGETS() names, RATE a second to each,
    reads what comes back and notes how each ends, until stop() (which waits for the nodes to
    close those still open). `done` holds (node, bytes received, how it ended, seconds it
    lasted)."""

    def __init__(self, targets, rate):
        self.targets = targets
        self.rate = rate
        self.done = []
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _end(self, sel, c, how):
        sel.unregister(c["sock"])
        c["sock"].close()
        self.done.append((c["node"], bytes(c["got"]), how, time.monotonic() - c["t"]))

    def _run(self):
        sel = selectors.DefaultSelector()
        due = time.monotonic()
        # Once stopped, no new connections: those open get 2.5 s to be closed by the node.
        while self.running or (sel.get_map() and time.monotonic() < self.stopped_at + 2.5):
            now = time.monotonic()
            while self.running and due <= now:
                for n in self.targets():
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    s.setblocking(False)
                    rv = s.connect_ex(("127.0.0.1", n.port))
                    c = {"node": n, "sock": s, "t": now, "got": bytearray()}
                    sel.register(s, selectors.EVENT_READ, c)
                    if rv not in (0, errno.EINPROGRESS):
                        self._end(sel, c, os.strerror(rv))
                due += 1.0 / self.rate
            for key, _ in sel.select(0.002 if self.running else 0.05):
                c = key.data
                d, why = recv_chunk(c["sock"])
                if d:
                    c["got"] += d
                elif d is not None:
                    self._end(sel, c, why or "eof")
        for key in list(sel.get_map().values()):
            self._end(sel, key.data, "open")
        sel.close()

    def stop(self):
        self.stopped_at = time.monotonic()
        self.running = False
        self.thread.join(15)


def test_flood_keeps_no_peer_out(h):
    """While strangers keep connecting to the leader's port and a follower's (1,000 a second to
    each), that follower, restarted, rejoins and catches up; writes on the other mounts go on."""
    nodes, leader, epoch, cid = start_cluster(h, "rejoin")
    victim = next(n for n in reversed(nodes) if n is not leader)
    others = [n for n in nodes if n is not victim]
    raise_nofile(4096)
    mark = b"kvfs-hostile-value-%08x" % random.getrandbits(32)
    writers = Writers(others, mark, "w")
    flood = Flood(lambda: (leader, victim), 1000)
    try:
        time.sleep(0.5)
        victim.stop()
        time.sleep(0.5)
        victim.start()
        t0 = time.monotonic()

        def caught_up():
            sts = statuses(nodes)
            st, lst = sts[victim.id], sts[leader.id]
            return (st and lst and st.get("leader") == str(leader.id) and
                    st_int(st, "applied_index") == st_int(lst, "commit_index") and
                    st_int(st, "lag_entries") == 0 and
                    not any(" down " in p + " " for p in st["peers"] + lst["peers"]))

        ms = h.wait_for(caught_up, 15, 0.1)
        h.log("%s rejoined %s ms after its start" % (victim.name, ms and int(ms)))
        time.sleep(0.5)
    finally:
        flood.stop()
    writers.stop(h, "while the flood went on and %s restarted" % victim.name)
    h.check(ms is not None, "%s, restarted during the flood, rejoins and catches up (within 15 s)"
            % victim.name, view_str(statuses(nodes)))
    counts = {}
    for n, g, how, secs in flood.done:
        counts[(n.name, how)] = counts.get((n.name, how), 0) + 1
    h.log("flood: %s" % ", ".join("%s %s: %d" % (k[0], k[1], v) for k, v in sorted(counts.items())))
    during = [d for d in flood.done if d[0] is leader]
    h.check(len(during) >= 1000, "the flood went on meanwhile (%d connections to %s, %d to %s)" %
            (len(during), leader.name, len(flood.done) - len(during), victim.name))
    # While the victim is down its port refuses: that is all a connection may get besides.
    bad = ["%s: %s after %.2f s, %r" % (n.name, how, secs, g[:40]) for n, g, how, secs in flood.done
           if not only_m1(g) or how not in ("eof", "reset", "Connection refused")
           or (how == "Connection refused" and n is not victim) or secs > 2.0]
    h.check(not bad, "every flood connection got nothing but message 1 and was closed within "
            "2 s", "\n".join(bad[:10]))
    got = read_file(os.path.join(victim.mnt, "w-%s-0" % others[0].name))
    h.check(got is not None and got.startswith(mark),
            "%s has the writes made while it was down" % victim.name, repr(got))


def peer_3_connected(nodes, seconds):
    """For SECONDS, every 0.2 s: the /.status lines of NODES that do not show peer 3 down."""
    shown = []
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        for nid, st in statuses(nodes).items():
            p3 = [p for p in (st or {}).get("peers", []) if p.startswith("3 ")]
            if not p3 or " down " not in p3[0] + " ":
                shown.append("n%d: %s" % (nid, p3))
        time.sleep(0.2)
    return shown

def test_wrong_secret_node(h):
    """A real node started with another secret in a free slot (id 3): nothing connects, the good
    nodes log one warning naming it and never show it connected; it gets no data; writes go on."""
    nodes, leader, epoch, cid = start_cluster(h, "wrong", count=2)
    mark = b"kvfs-hostile-value-%08x" % random.getrandbits(32)
    name, value, ino = setup_victim(h, nodes, leader, mark)
    before = state(nodes)
    mark_logs = log_mark(nodes)
    n3 = h.node(3, nodes[0].cluster)
    n3.secret_files = [h.make_secret("wrong-secret")]
    writers = Writers(nodes, mark, "w")
    n3.start()
    shown = peer_3_connected(nodes, 4)
    writers.stop(h, "with a node of another secret")
    h.check(not shown, "n1 and n2 never show n3 connected (peer 3 ... down)", "\n".join(shown[:5]))
    check_unchanged(h, nodes, before, (name, value), "with a node of another secret")
    got = read_file(os.path.join(n3.mnt, name), 2)
    h.check(got is None or value not in got, "n3 never gets the cluster's data", repr(got))
    st3 = n3.status()
    h.check(st3 is not None and st_int(st3, "applied_index") == 0,
            "n3 has applied nothing", st3 and "applied_index: %s" % st3.get("applied_index"))
    for n in nodes:
        lines = stranger_lines(log_since(n, mark_logs))
        h.check(len(lines) <= 2, "%s's log sums up n3's attempts (%d lines about strangers)" %
                (n.name, len(lines)), "\n".join(lines[:20]))
        lines = [l for l in log_since(n, mark_logs).splitlines() if n3.addr in l]
        h.check(len(lines) == 1 and "--secret-file" in lines[0],
                "%s logs one warning naming n3's address %s and the secret" % (n.name, n3.addr),
                "\n".join(lines[:10]) or "(none)")
    text = n3.output()
    h.check("secret" in text and "connected to node" not in text,
            "n3's own log says its peers do not hold its secret, and it connects to none",
            text[-2000:])
    n3.stop()


def test_insecure_node(h):
    """A node started with --insecure among secure ones cannot connect, and both sides say why
    in their logs; it answers bare frames (as --insecure says), which shows the frames spoken
    here are well-formed."""
    nodes, leader, epoch, cid = start_cluster(h, "insecure", count=2)
    mark = b"kvfs-hostile-value-%08x" % random.getrandbits(32)
    name, value, ino = setup_victim(h, nodes, leader, mark)
    before = state(nodes)
    mark_logs = log_mark(nodes)
    n3 = h.node(3, nodes[0].cluster, extra=["--insecure"])
    writers = Writers(nodes, mark, "w")
    n3.start()
    st3 = n3.status()
    h.check(st3 is not None and st3.get("peer_security") == "insecure",
            "n3's /.status says peer_security: insecure", st3 and st3.get("peer_security"))
    t_watch = time.monotonic()
    shown = peer_3_connected(nodes, 3)
    writers.stop(h, "with an --insecure node")
    h.check(not shown, "n1 and n2 never show n3 connected", "\n".join(shown[:5]))
    check_unchanged(h, nodes, before, (name, value), "with an --insecure node")
    for n in nodes:
        lines = [l for l in log_since(n, mark_logs).splitlines() if n3.addr in l]
        h.check(len(lines) == 1 and "--insecure" in lines[0],
                "%s logs one line naming n3's address and --insecure" % n.name,
                "\n".join(lines[:10]) or "(none)")
    lines = [l for l in n3.output().splitlines() if "secret" in l and "node 1" in l]
    h.check(lines, "n3's log says node 1 speaks the authenticated handshake (--secret-file)",
            n3.tail(20))
    warns = [l for l in n3.output().splitlines() if " warn: " in l]
    h.check(len(warns) <= 5, "n3's log holds a few warnings, not one per redial (%d in %.0f s)" %
            (len(warns), time.monotonic() - t_watch), "\n".join(warns[:30]))
    # The frames of this file, as an --insecure node takes them: its HELLO comes back at once
    # (the cluster id in the clear), and a READ_INDEX from "node 1" gets its reply.
    got, how, secs = exchange(n3.port, [frame(HELLO, hello(cid, 1, epoch)) +
                                        frame(READ_INDEX, u64(77))], timeout=1.5)
    frames = parse_frames(got)
    types = [t for t, _ in frames]
    h.check(types[:1] == [HELLO] and cid.encode() in frames[0][1],
            "an --insecure node sends its HELLO, cluster id included, to anyone", repr(got[:120]))
    h.check(READ_INDEX_REPLY in types and
            struct.unpack("<Q", frames[types.index(READ_INDEX_REPLY)][1][:8])[0] == 77,
            "it takes our HELLO and answers our READ_INDEX: the frames spoken here are valid",
            "frame types received: %s (%s)" % (types, how))
    # A node of the previous release (peer protocol 1) would apply this one's new operations
    # as no-ops: its HELLO is refused, and the log says why.
    mark3 = len(n3.output())
    got, how, secs = exchange(n3.port, [frame(HELLO, hello(cid, 1, epoch, version=1)) +
                                        frame(READ_INDEX, u64(78))], timeout=1.5)
    types = [t for t, _ in parse_frames(got)]
    h.check(READ_INDEX_REPLY not in types and how in ("eof", "reset"),
            "a HELLO of peer protocol 1 is refused: the connection closes, no READ_INDEX answer",
            "frame types received: %s (%s)" % (types, how))
    ms = h.wait_for(lambda: "node 1 speaks peer protocol 1, this node %d; refusing it: run the "
                    "same kvfs version on every node" % PEER_PROTOCOL in n3.output()[mark3:],
                    5, 0.05)
    h.check(ms is not None, "n3's log says node 1 speaks peer protocol 1 and is refused",
            n3.output()[mark3:][-2000:])
    n3.stop()


if __name__ == "__main__":
    harness.main([test_plaintext_frames, test_random_bytes, test_replayed_handshake,
                  test_idle_flood, test_flood_keeps_no_peer_out, test_wrong_secret_node,
                  test_insecure_node])
