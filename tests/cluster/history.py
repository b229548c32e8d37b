"""A history of client operations on a kvfs cluster and a checker for what DESIGN §1 promises.

Clients (workload.py) record every operation: which client, through which node, what (put,
append, create, mkdir, read), on which key, with which value or token, when it was invoked and
when it returned (time.monotonic()), and how it ended: OK, FAIL (a definite failure: nothing
happened, e.g. EEXIST, ENOENT) or UNKNOWN (EIO and every other error of a write: the operation may
still take effect, whole, at any time after its invocation, or never). An operation still running
when the history is closed is UNKNOWN too. A read that failed tells nothing and is left out.

check(history, final_trees, mode) then verifies, stdlib only:

 - every final tree is the same on every node (replicas identical after healing);
 - registers (keys written whole with put, read with read): every read and the final state show
   a value that was written to that key (or the key's absence before any write), no acknowledged
   put is lost (the final value is not one that an acknowledged put definitely overwrote, and not
   absent when a put was acknowledged); in `linearizable` mode each key's history is linearizable
   as a register (Wing & Gong / Lowe search with memoization; the final state is a read after
   everything), in `local` mode each node reads its own writes (a read on node N that began after
   a put on N was acknowledged returns that put's value or one not known to be older), and reads
   that returned a value already overwritten by a put acknowledged before the read began are
   counted as stale (allowed in local mode). A read overlapping a put of the same key on its own
   node may see that put's uncommitted buffer (kvfs shares an open file's buffer among the
   node's handles): such reads are counted apart and left out, unless allow_own_buffer=False;
 - appends: in the final file of every node each acknowledged token appears exactly once, an
   unknown one at most once, and nothing else appears (no definite failure, no torn or invented
   line);
 - O_EXCL creates and mkdirs: per name at most one caller succeeded; an EEXIST answer means the
   name exists at the end; a name that exists at the end was attempted and not only failed; when
   somebody got EEXIST and nobody got OK, somebody's outcome is unknown (else a winner was told
   EEXIST: exactly-once broken).

Everything is plain data so that tests/cluster/test_history_checker.py can feed it hand-made
histories: a checker that cannot fail is caught there.
"""

import threading
import time

OK = "ok"
FAIL = "fail"
UNKNOWN = "unknown"

INF = float("inf")
WRITE_KINDS = ("put", "append", "create", "mkdir")


class Op:
    """One operation. VALUE: the bytes written (put), the token (append, bytes), the bytes read
    or None for a missing key (read); unused for create/mkdir. ERR: the errno when not OK."""

    __slots__ = ("client", "node", "kind", "key", "value", "inv", "ret", "outcome", "err",
                 "done")

    def __init__(self, client, node, kind, key, value=None, inv=0.0, ret=None, outcome=None,
                 err=0):
        self.client = client
        self.node = node
        self.kind = kind
        self.key = key
        self.value = value
        self.inv = inv
        self.ret = ret
        self.outcome = outcome
        self.err = err
        self.done = None  # when the call really returned (ret is INF for an unknown outcome)

    def __repr__(self):
        v = self.value
        if isinstance(v, bytes) and len(v) > 24:
            v = v[:24] + b"..."
        return "%s@n%s %s %s %r [%.3f, %s] %s%s" % (
            self.client, self.node, self.kind, self.key, v, self.inv,
            "inf" if self.ret in (None, INF) else "%.3f" % self.ret, self.outcome,
            " errno %d" % self.err if self.err else "")


class History:
    """Thread-safe recorder. invoke() before the call, complete() after it."""

    def __init__(self):
        self.ops = []
        self.lock = threading.Lock()
        self.closed_at = None

    def invoke(self, client, node, kind, key, value=None):
        op = Op(client, node, kind, key, value, inv=time.monotonic())
        with self.lock:
            self.ops.append(op)
        return op

    def complete(self, op, err, value=None, definite=()):
        """ERR 0: OK; an errno in DEFINITE: FAIL; any other errno: UNKNOWN for a write and
        dropped for a read. VALUE: what a read returned."""
        op.ret = time.monotonic()
        op.err = err
        if op.kind == "read" and err == 0:
            op.value = value
        if err == 0:
            op.outcome = OK
        elif err in definite:
            op.outcome = FAIL
        else:
            op.outcome = UNKNOWN

    def close(self):
        """Operations still running count as UNKNOWN, returning never; failed reads go."""
        with self.lock:
            self.closed_at = time.monotonic()
            for op in self.ops:
                if op.outcome is None:
                    op.outcome = UNKNOWN
                    op.ret = INF
                elif op.outcome == UNKNOWN:
                    op.done = op.ret
                    op.ret = INF  # may take effect at any time after its invocation
            self.ops = [op for op in self.ops if not (op.kind == "read" and op.outcome != OK)]
        return self.ops

    def snapshot(self):
        with self.lock:
            return list(self.ops)


class Result:
    """What check() found: violations (strings; empty means the history is valid), notes
    (stale reads, undecided keys) and counters."""

    def __init__(self):
        self.violations = []
        self.notes = []
        self.stale = []  # (read, the acknowledged put that had replaced its value, ms behind)
        self.stats = {"ops": 0, "acked_writes": 0, "unknown_writes": 0, "reads": 0,
                      "stale_reads": 0, "max_stale_ms": 0, "keys_checked": 0,
                      "keys_undecided": 0, "own_buffer_reads": 0}

    @property
    def ok(self):
        return not self.violations

    def bad(self, kind, msg):
        self.violations.append("%s: %s" % (kind, msg))

    def verdict(self):
        if self.ok:
            return "OK"
        kinds = {}
        for v in self.violations:
            k = v.split(":", 1)[0]
            kinds[k] = kinds.get(k, 0) + 1
        return "VIOLATIONS " + ", ".join("%s x%d" % kv for kv in sorted(kinds.items()))


def _fmt_ops(ops, t0=None):
    if t0 is None:
        t0 = min((o.inv for o in ops), default=0.0)
    out = []
    for o in sorted(ops, key=lambda o: o.inv):
        v = o.value
        if isinstance(v, bytes) and len(v) > 24:
            v = v[:24] + b"..."
        out.append("  %-8s n%s %-6s %-12r [%8.3f, %8s] %s%s" % (
            o.client, o.node, o.kind, v, o.inv - t0,
            "inf" if o.ret in (None, INF) else "%.3f" % (o.ret - t0), o.outcome,
            " errno %d" % o.err if o.err else ""))
    return "\n".join(out)


# --- registers --------------------------------------------------------------------------------

def linearizable_register(ops, final, budget=500000):
    """Is the history OPS of one key (puts and reads; unknown puts have ret INF) linearizable as a
    register that starts absent (None) and ends holding FINAL (a read after everything)?
    Returns True, False, or None when the search passed BUDGET steps (undecided).

    Unknown puts whose value nobody read may never have happened and are left out (a put that
    nobody saw can always be dropped from a linearization); unknown puts somebody read must
    have happened, at some point after their invocation."""
    seen = {o.value for o in ops if o.kind == "read"} | {final}
    entries = []
    for o in ops:
        if o.kind == "put":
            if o.outcome == OK:
                entries.append((o.inv, o.ret, True, o.value))
            elif o.outcome == UNKNOWN and o.value in seen:
                entries.append((o.inv, INF, True, o.value))
        elif o.kind == "read" and o.outcome == OK:
            entries.append((o.inv, o.ret, False, o.value))
    entries.sort(key=lambda e: (e[0], e[1]))
    n = len(entries)
    t_end = max([e[0] for e in entries] + [0.0]) + 1.0
    inv = [e[0] for e in entries] + [t_end]
    ret = [e[1] for e in entries] + [INF]
    is_write = [e[2] for e in entries] + [False]
    val = [e[3] for e in entries] + [final]
    full = (1 << (n + 1)) - 1
    final_bit = 1 << n
    # Depth-first search over (set of linearized entries, register value), iteratively.
    seen_states = set()
    stack = [(0, None)]
    steps = 0
    while stack:
        mask, value = stack.pop()
        if mask == full:
            return True
        if (mask, value) in seen_states:
            continue
        seen_states.add((mask, value))
        steps += 1
        if steps > budget:
            return None
        # The earliest return among the entries not yet linearized bounds what may go next.
        min_ret = INF
        for i in range(n + 1):
            if not mask & (1 << i) and ret[i] < min_ret:
                min_ret = ret[i]
        # A read that may go next and sees the current value goes at once: it changes nothing
        # and only relaxes what the others wait for, so no linearization is lost.
        forced = None
        for i in range(n):
            if not mask & (1 << i) and not is_write[i] and inv[i] <= min_ret and \
                    val[i] == value:
                forced = i
                break
        if forced is not None:
            stack.append((mask | (1 << forced), value))
            continue
        for i in range(n + 1):
            bit = 1 << i
            if mask & bit or inv[i] > min_ret:
                continue
            if bit == final_bit:
                if mask | bit == full and value == final:
                    return True
                continue
            if is_write[i]:
                stack.append((mask | bit, val[i]))
            elif val[i] == value:
                stack.append((mask | bit, value))
    return False


def own_buffer_reads(ops):
    """Reads that may have been served from a write buffer on their own node: kvfs keeps an open
    file's new value in a buffer shared by every handle on that node (fs/fuse_file.c: "as on a
    local disk"), so a read on node N overlapping a put on N of the same key may return that
    put's value before it commits, or b"" (its O_TRUNC), whatever the --read mode. The set of
    such reads (by id) that returned one of those values."""
    puts = {}
    for o in ops:
        if o.kind == "put":
            puts.setdefault((o.node, o.key), []).append(o)
    out = set()
    for r in ops:
        if r.kind != "read":
            continue
        for p in puts.get((r.node, r.key), ()):
            end = p.done if p.done is not None else p.ret
            if p.inv <= r.ret and (end is None or end >= r.inv) and \
                    r.value in (b"", p.value):
                out.add(id(r))
                break
    return out


def _check_registers(res, ops, final_tree, mode, allow_own_buffer=True):
    buffered = own_buffer_reads(ops) if allow_own_buffer else set()
    res.stats["own_buffer_reads"] = len(buffered)
    by_key = {}
    for o in ops:
        if o.kind in ("put", "read") and id(o) not in buffered:
            by_key.setdefault(o.key, []).append(o)
    for key, kops in sorted(by_key.items()):
        puts = [o for o in kops if o.kind == "put"]
        reads = [o for o in kops if o.kind == "read"]
        final = final_tree.get(key) if final_tree is not None else None
        written = {o.value: o for o in puts if o.outcome != FAIL}
        acked = [o for o in puts if o.outcome == OK]
        # Values that exist: every read and the final state show one of them (or absence).
        for r in reads:
            if r.value is not None and r.value not in written:
                res.bad("phantom read", "%s read %r from %s, a value never written there\n%s" %
                        (r.client, r.value, key, _fmt_ops(kops)))
            elif r.value is not None and written[r.value].inv > r.ret:
                res.bad("phantom read", "%s read %r from %s before it was written\n%s" %
                        (r.client, r.value, key, _fmt_ops(kops)))
        if final_tree is not None:
            if final is not None and final not in written:
                res.bad("lost write", "the final value of %s, %r, was never written there\n%s" %
                        (key, final, _fmt_ops(kops)))
            elif final is None and acked:
                res.bad("lost write", "%s is missing at the end although %d puts were "
                        "acknowledged\n%s" % (key, len(acked), _fmt_ops(kops)))
            elif final is not None:
                w = written[final]
                later = [q for q in acked if w.outcome == OK and q.inv > w.ret]
                if later:
                    res.bad("lost write", "the final value of %s is %r, but the acknowledged "
                            "put of %r began after it returned and is gone\n%s" %
                            (key, final, later[0].value, _fmt_ops(kops)))
        # Stale reads: a value that an acknowledged put started after it returned had replaced
        # before the read began.
        for r in reads:
            w = written.get(r.value)
            if w is None or w.outcome != OK:
                continue
            newer = [q for q in acked if q.inv > w.ret and q.ret < r.inv]
            if newer:
                res.stats["stale_reads"] += 1
                ms = (r.inv - min(q.ret for q in newer)) * 1000
                res.stale.append((r, min(newer, key=lambda q: q.ret), ms))
                res.stats["max_stale_ms"] = max(res.stats["max_stale_ms"], int(ms))
                if mode == "linearizable":
                    res.bad("stale read", "%s on n%s read %r from %s, overwritten by %r "
                            "acknowledged %.0f ms before the read began\n%s" %
                            (r.client, r.node, r.value, key, newer[0].value, ms, _fmt_ops(kops)))
        if mode == "local":
            _check_read_your_writes(res, key, kops, puts, reads, written)
        elif mode == "linearizable":
            res.stats["keys_checked"] += 1
            got = linearizable_register(kops, final if final_tree is not None else None) \
                if final_tree is not None else linearizable_register_nofinal(kops)
            if got is None:
                res.stats["keys_undecided"] += 1
                res.notes.append("linearizability of %s undecided (%d ops, search budget "
                                 "spent)" % (key, len(kops)))
            elif not got:
                res.bad("not linearizable", "the history of %s is not linearizable as a "
                        "register (final value %r)\n%s" % (key, final, _fmt_ops(kops)))


def linearizable_register_nofinal(ops):
    """linearizable_register without a known final state: tried with every possible one."""
    candidates = {None} | {o.value for o in ops if o.kind == "put" and o.outcome != FAIL}
    undecided = False
    for f in candidates:
        got = linearizable_register(ops, f)
        if got:
            return True
        if got is None:
            undecided = True
    return None if undecided else False


def _check_read_your_writes(res, key, kops, puts, reads, written):
    for r in reads:
        mine = [w for w in puts if w.outcome == OK and w.node == r.node and w.ret < r.inv]
        if not mine:
            continue
        last = max(mine, key=lambda w: w.ret)
        if r.value is None:
            res.bad("read-your-writes", "n%s read %s as missing after its put of %r was "
                    "acknowledged\n%s" % (r.node, key, last.value, _fmt_ops(kops)))
            continue
        got = written.get(r.value)
        if got is None:
            continue  # reported as a phantom read
        # Older for sure: GOT returned before one of the node's acknowledged puts began.
        older_than = [w for w in mine if got is not w and got.ret < w.inv]
        if older_than:
            res.bad("read-your-writes", "n%s read %r from %s, older than its own put of %r "
                    "acknowledged before the read began\n%s" %
                    (r.node, r.value, key, older_than[0].value, _fmt_ops(kops)))


# --- appends ----------------------------------------------------------------------------------

def _check_appends(res, ops, final_trees):
    by_key = {}
    for o in ops:
        if o.kind == "append":
            by_key.setdefault(o.key, []).append(o)
    for key, kops in sorted(by_key.items()):
        tokens = {o.value.rstrip(b"\n"): o for o in kops}
        for node, tree in sorted(final_trees.items()):
            data = tree.get(key)
            if data is None:
                if any(o.outcome == OK for o in kops):
                    res.bad("lost append", "%s is missing on %s" % (key, node))
                continue
            counts = {}
            lines = data.split(b"\n") if data else []  # an empty file: created, no append yet
            if data.endswith(b"\n"):
                lines.pop()
            for line in lines:
                counts[line] = counts.get(line, 0) + 1
            for tok, c in counts.items():
                o = tokens.get(tok)
                if o is None:
                    res.bad("phantom append", "%s on %s holds the line %r that nobody appended"
                            % (key, node, tok))
                elif o.outcome == FAIL:
                    res.bad("phantom append", "%s on %s holds %r whose append failed "
                            "definitely (errno %d)" % (key, node, tok, o.err))
                elif c > 1:
                    res.bad("duplicate append", "%s on %s holds %r %d times (%s)" %
                            (key, node, tok, c, o))
            for tok, o in tokens.items():
                if o.outcome == OK and tok not in counts:
                    res.bad("lost append", "%s on %s lacks the acknowledged append %s" %
                            (key, node, o))


# --- O_EXCL and mkdir rounds ------------------------------------------------------------------

def _check_exclusive(res, ops, final_tree):
    by_key = {}
    for o in ops:
        if o.kind in ("create", "mkdir"):
            by_key.setdefault(o.key, []).append(o)
    for key, kops in sorted(by_key.items()):
        oks = [o for o in kops if o.outcome == OK]
        eexist = [o for o in kops if o.outcome == FAIL and o.err == 17]
        unknown = [o for o in kops if o.outcome == UNKNOWN]
        if len(oks) > 1:
            res.bad("two winners", "%d callers created %s\n%s" % (len(oks), key, _fmt_ops(kops)))
        if final_tree is None:
            continue
        exists = key in final_tree
        if (oks or eexist) and not exists:
            res.bad("lost create", "%s is missing at the end although %s\n%s" %
                    (key, "a caller created it" if oks else "a caller got EEXIST",
                     _fmt_ops(kops)))
        if exists and not oks and not unknown:
            res.bad("no winner", "%s exists but every caller failed definitely\n%s" %
                    (key, _fmt_ops(kops)))
        if eexist and not oks and not unknown:
            res.bad("no winner", "callers of %s got EEXIST, nobody created it\n%s" %
                    (key, _fmt_ops(kops)))
        if exists and oks:
            kind = "dir" if kops[0].kind == "mkdir" else "file"
            v = final_tree[key]
            if (kind == "dir") != (v is None):
                res.bad("lost create", "%s is a %s at the end, created as a %s" %
                        (key, "directory" if v is None else "file", kind))


# --- everything -------------------------------------------------------------------------------

def check_identical(res, final_trees):
    names = sorted(final_trees)
    if not names:
        return
    first = final_trees[names[0]]
    for name in names[1:]:
        t = final_trees[name]
        if t == first:
            continue
        only_a = sorted(set(first) - set(t))[:5]
        only_b = sorted(set(t) - set(first))[:5]
        differ = sorted(k for k in set(t) & set(first) if t[k] != first[k])[:5]
        res.bad("replicas differ", "%s vs %s: only in %s %s, only in %s %s, different %s" %
                (names[0], name, names[0], only_a, name, only_b, differ))


def check(ops, final_trees, mode, allow_own_buffer=True):
    """Checks OPS (a closed history: Op objects with outcomes) against FINAL_TREES ({node name:
    {key: bytes, or None for a directory}}, taken after healing; None or {} when unknown) in
    MODE 'local' or 'linearizable'. With ALLOW_OWN_BUFFER, reads that overlap a put of the same
    key on their own node and return its value or b"" are left out (see own_buffer_reads).
    Returns a Result."""
    res = Result()
    res.stats["ops"] = len(ops)
    res.stats["acked_writes"] = sum(1 for o in ops if o.kind in WRITE_KINDS and o.outcome == OK)
    res.stats["unknown_writes"] = sum(1 for o in ops
                                      if o.kind in WRITE_KINDS and o.outcome == UNKNOWN)
    res.stats["reads"] = sum(1 for o in ops if o.kind == "read")
    final_trees = final_trees or {}
    check_identical(res, final_trees)
    first = final_trees[sorted(final_trees)[0]] if final_trees else None
    _check_registers(res, ops, first, mode, allow_own_buffer)
    _check_appends(res, ops, final_trees)
    _check_exclusive(res, ops, first)
    return res
