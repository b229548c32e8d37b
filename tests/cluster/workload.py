"""Clients on every mount of a kvfs cluster that record a history (history.py) for the checker.

Per node: one register client (puts and reads of a few keys, r/k<slot>-g<generation>), one
reader of those keys, one appender (a/log<i>-<generation>, tokens "<client>.<seq>", a new
generation every APPENDS_PER_LOG appends so that no log nears --max-value), and every ROUND_S
seconds a round in which each node tries to create x/e<round> with O_CREAT|O_EXCL or x/d<round>
with mkdir.

Register keys stay small for the linearizability search: after MAX_PUTS acknowledged puts a slot
moves to a new key, which one client makes atomically (write t/<tmp>, rename to the key: a plain
create would show an empty file first) before anyone uses it. Every value is exactly VALUE_LEN
bytes and a put opens the key with neither O_CREAT nor O_TRUNC and overwrites it whole, so a put
is one atomic register write even when a FLUSH comes early: every close() of any copy of the
descriptor commits the buffer, and the driver's child processes (nft, kvfs, java) inherit the
clients' descriptors until their exec closes them. (With O_TRUNC, such an early flush between
open and write commits an empty value: a real write the history would not know.)

Every operation goes through a directory descriptor of the node's mount, never through a path: a
mount detached after kill -9 then answers ENOTCONN instead of letting a create land in the empty
directory beneath it. The driver calls down(node) before stopping or killing a node and up(node)
once it answers again; clients of a node that is down wait.
"""

import errno
import os
import random
import threading
import time

from history import History

MAX_PUTS = 12
VALUE_LEN = 40
SLOTS = 4
LOGS = 2
APPENDS_PER_LOG = 3000
ROUND_S = 0.75

# Errnos after which a write certainly did nothing (the name is missing, or taken).
DEFINITE = (errno.ENOENT, errno.EEXIST, errno.ENOTDIR)


class Workload:
    def __init__(self, nodes, seed=0, history=None, round_s=ROUND_S, pace=0.0):
        self.nodes = list(nodes)
        self.history = history or History()
        self.rng = random.Random(seed)
        self.seed = seed
        self.round_s = round_s
        self.pace = pace  # extra sleep between a client's operations
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.dfd = {}        # node id -> directory descriptor of its mount, or None when down
        self.old_fds = []
        self.slots = [{"gen": 0, "next": 1, "puts": 0, "moving": False} for _ in range(SLOTS)]
        self.tmp_seq = 0
        self.threads = []
        self.round_busy = {}
        self.rounds = 0
        self.appends = 0

    # --- setup and node state ---

    def setup(self):
        """Makes the directories, the append logs and the first key of each slot through the
        first node; call with the cluster healthy, before start()."""
        n = self.nodes[0]
        for n_ in self.nodes:
            self.up(n_)
        d = self.dfd[n.id]
        for sub in ("r", "a", "x", "t"):
            try:
                os.mkdir(sub, dir_fd=d)
            except FileExistsError:
                pass
        for i in range(SLOTS):
            ok = self._init_key(n, "setup", self.key(i, 0))
            if not ok:
                raise RuntimeError("cannot make the first register keys through %s" % n.name)

    def key(self, slot, gen):
        return "r/k%d-g%d" % (slot, gen)

    def up(self, node):
        """NODE's mount answers again: its clients go on (through a new descriptor)."""
        fd = os.open(node.mnt, os.O_RDONLY | os.O_DIRECTORY)
        with self.lock:
            old = self.dfd.get(node.id)
            if old is not None:
                self.old_fds.append(old)
            self.dfd[node.id] = fd

    def down(self, node):
        """NODE is about to be stopped or killed: its clients wait. (The old descriptor stays
        open: a client may be using it; closing it could hand its number to another file.)"""
        with self.lock:
            old = self.dfd.get(node.id)
            if old is not None:
                self.old_fds.append(old)
            self.dfd[node.id] = None

    def _fd(self, node):
        while not self.stop_ev.is_set():
            with self.lock:
                fd = self.dfd.get(node.id)
            if fd is not None:
                return fd
            time.sleep(0.05)
        return None

    # --- operations ---

    def _put(self, node, client, key, value):
        h = self.history
        fd = self._fd(node)
        if fd is None:
            return None
        op = h.invoke(client, node.id, "put", key, value)
        err = 0
        try:
            f = os.open(key, os.O_WRONLY, dir_fd=fd)
            try:
                os.write(f, value)
            finally:
                os.close(f)
        except OSError as e:
            err = e.errno or errno.EIO
        h.complete(op, err, definite=(errno.ENOENT,))
        return op

    def _read(self, node, client, key):
        h = self.history
        fd = self._fd(node)
        if fd is None:
            return None
        op = h.invoke(client, node.id, "read", key)
        err = 0
        data = None
        try:
            f = os.open(key, os.O_RDONLY, dir_fd=fd)
            try:
                chunks = []
                while True:
                    b = os.read(f, 65536)
                    if not b:
                        break
                    chunks.append(b)
                data = b"".join(chunks)
            finally:
                os.close(f)
        except OSError as e:
            if e.errno == errno.ENOENT:
                data = None  # a successful read of a missing key
            else:
                err = e.errno or errno.EIO
        h.complete(op, err, value=data)
        return op

    def _append(self, node, client, key, token):
        h = self.history
        fd = self._fd(node)
        if fd is None:
            return None
        op = h.invoke(client, node.id, "append", key, token)
        err = 0
        try:
            f = os.open(key, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644, dir_fd=fd)
            try:
                os.write(f, token)
            finally:
                os.close(f)
        except OSError as e:
            err = e.errno or errno.EIO
        h.complete(op, err, definite=(errno.ENOENT,))
        return op

    def _exclusive(self, node, client, kind, key):
        h = self.history
        fd = self._fd(node)
        if fd is None:
            return None
        op = h.invoke(client, node.id, kind, key)
        err = 0
        try:
            if kind == "mkdir":
                os.mkdir(key, 0o755, dir_fd=fd)
            else:
                f = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=fd)
                try:
                    os.close(f)
                except OSError:
                    pass  # the create is decided at open; an empty close commits nothing
        except OSError as e:
            err = e.errno or errno.EIO
        h.complete(op, err, definite=(errno.EEXIST,))
        return op

    def _init_key(self, node, client, key):
        """Makes KEY hold a first value atomically: write t/<tmp>, rename it to KEY (recorded as
        a put of that value). True when the rename was acknowledged."""
        fd = self._fd(node)
        if fd is None:
            return False
        with self.lock:
            self.tmp_seq += 1
            tmp = "t/%s-%d" % (client, self.tmp_seq)
        value = ("%s init %s" % (client, key)).encode().ljust(VALUE_LEN, b".")
        assert len(value) == VALUE_LEN
        try:
            f = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=fd)
            try:
                os.write(f, value)
            finally:
                os.close(f)
        except OSError:
            return False
        h = self.history
        op = h.invoke(client, node.id, "put", key, value)
        err = 0
        try:
            os.rename(tmp, key, src_dir_fd=fd, dst_dir_fd=fd)
        except OSError as e:
            err = e.errno or errno.EIO
        h.complete(op, err, definite=(errno.ENOENT,))
        return err == 0

    # --- clients ---

    def start(self):
        for n in self.nodes:
            for target in (self._register_client, self._reader, self._appender):
                t = threading.Thread(target=target, args=(n,), daemon=True)
                t.start()
                self.threads.append(t)
        t = threading.Thread(target=self._rounds, daemon=True)
        t.start()
        self.threads.append(t)

    def _pause(self, op):
        t = self.pace
        if op is not None and op.err:
            t += 0.05
        if t:
            time.sleep(t)

    def _register_client(self, node):
        client = "w%d" % node.id
        rng = random.Random("%s-%s" % (self.seed, client))
        seq = 0
        while not self.stop_ev.is_set():
            slot = rng.randrange(SLOTS)
            with self.lock:
                s = self.slots[slot]
                gen = s["gen"]
                move = s["puts"] >= MAX_PUTS and not s["moving"]
                if move:
                    s["moving"] = True
                    new = s["next"]
                    s["next"] += 1  # never tried twice: a failed rename may still happen
            if move:
                ok = self._init_key(node, client, self.key(slot, new))
                with self.lock:
                    s["moving"] = False
                    if ok:
                        s["gen"], s["puts"] = new, 0
                continue
            key = self.key(slot, gen)
            if rng.random() < 0.5:
                seq += 1
                value = ("%s.%d %s" % (client, seq, key)).encode().ljust(VALUE_LEN, b".")
                assert len(value) == VALUE_LEN
                op = self._put(node, client, key, value)
                if op is not None and op.err == 0:
                    with self.lock:
                        if s["gen"] == gen:
                            s["puts"] += 1
            else:
                op = self._read(node, client, key)
            self._pause(op)

    def _reader(self, node):
        client = "r%d" % node.id
        rng = random.Random("%s-%s" % (self.seed, client))
        while not self.stop_ev.is_set():
            slot = rng.randrange(SLOTS)
            with self.lock:
                gen = self.slots[slot]["gen"]
            op = self._read(node, client, self.key(slot, gen))
            self._pause(op)
            time.sleep(0.01)

    def _appender(self, node):
        client = "a%d" % node.id
        rng = random.Random("%s-%s" % (self.seed, client))
        seq = 0
        while not self.stop_ev.is_set():
            seq += 1
            with self.lock:
                self.appends += 1
                gen = self.appends // APPENDS_PER_LOG
            op = self._append(node, client, "a/log%d-%d" % (rng.randrange(LOGS), gen),
                              b"%s.%d\n" % (client.encode(), seq))
            self._pause(op)
            time.sleep(0.01)

    def _rounds(self):
        r = 0
        while not self.stop_ev.wait(self.round_s):
            kind = "mkdir" if r % 2 else "create"
            key = "x/%s%d" % ("d" if kind == "mkdir" else "e", r)
            go = threading.Event()
            ts = []
            for n in self.nodes:
                with self.lock:
                    if self.round_busy.get(n.id) or self.dfd.get(n.id) is None:
                        continue  # still stuck in an earlier round, or down
                    self.round_busy[n.id] = True
                t = threading.Thread(target=self._contend, args=(n, kind, key, go), daemon=True)
                t.start()
                ts.append(t)
            go.set()
            r += 1
            self.rounds = r

    def _contend(self, node, kind, key, go):
        go.wait()
        try:
            self._exclusive(node, "x%d" % node.id, kind, key)
        finally:
            with self.lock:
                self.round_busy[node.id] = False

    # --- the end ---

    def finish(self, timeout=15):
        """Stops the clients (those stuck in a call are left behind; their operations count as
        unknown) and closes the history; returns its operations."""
        self.stop_ev.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, deadline - time.monotonic()))
        ops = self.history.close()
        return ops

    def close_fds(self):
        with self.lock:
            fds = [fd for fd in self.dfd.values() if fd is not None] + self.old_fds
            self.dfd = {k: None for k in self.dfd}
            self.old_fds = []
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass

    def acked_writes(self, since=None):
        """(invocation, return) of acknowledged writes, by return time."""
        return sorted((o.inv, o.ret) for o in self.history.snapshot()
                      if o.kind in ("put", "append", "create", "mkdir") and o.outcome == "ok"
                      and (since is None or o.inv >= since))


def final_trees(nodes, tree):
    """{node name: tree} of each node's mount, for history.check()."""
    return {n.name: tree(n.mnt) for n in nodes}


def check_history(h, wl, nodes, mode, what, tree):
    """After the heal, with every node caught up: closes WL's history (its clients must have
    been stopped with finish()), takes every mount's tree and runs the checker; logs its counts
    and counts one check. Returns the history.Result."""
    import history
    ops = wl.history.snapshot()
    trees = final_trees(nodes, tree)
    res = history.check(ops, trees, mode)
    st = res.stats
    h.log("%s: history of %d operations (%d acknowledged writes, %d unknown, %d reads, "
          "%d O_EXCL/mkdir rounds), --read %s: %s; %d stale reads (max %d ms behind)%s" %
          (what, st["ops"], st["acked_writes"], st["unknown_writes"], st["reads"], wl.rounds,
           mode, res.verdict(), st["stale_reads"], st["max_stale_ms"],
           ", %d of %d keys undecided" % (st["keys_undecided"], st["keys_checked"])
           if st["keys_undecided"] else ""))
    for note in res.notes[:5]:
        h.log("  " + note)
    if st["own_buffer_reads"]:
        h.log("  %d reads overlapped a put of the same key on their own node and saw its "
              "uncommitted buffer (left out of the checks)" % st["own_buffer_reads"])
    if not res.ok:
        h.log("  history saved to %s" % save_history(h, ops, trees, what))
    h.check(res.ok, "%s: the history checker finds no violation (%d operations, --read %s)" %
            (what, st["ops"], mode), "\n".join(res.violations[:8]))
    return res


def save_history(h, ops, trees, what):
    """Writes OPS and the final trees as JSON (bytes as latin-1 strings) next to the execution
    log, for a closer look at a violation; returns the path."""
    import json
    import re

    def b(v):
        return v.decode("latin-1") if isinstance(v, bytes) else v

    d = os.environ.get("KVFS_CLUSTER_LOG_DIR") or "/tmp/kvfs-cluster-logs"
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "%s-history-%s.json" % (h.name, re.sub(r"[^a-z0-9]+", "-",
                                                                   what.lower()).strip("-")))
    with open(path, "w") as f:
        json.dump({"ops": [dict(client=o.client, node=o.node, kind=o.kind, key=o.key,
                                value=b(o.value), inv=o.inv,
                                ret=None if o.ret in (None, float("inf")) else o.ret,
                                outcome=o.outcome, err=o.err) for o in ops],
                   "trees": {n: {k: b(v) for k, v in t.items()} for n, t in trees.items()}},
                  f)
    return path
