#!/usr/bin/python3
"""Unit tests of the history checker (history.py) on small hand-made histories: valid ones
pass, and each kind of violation is caught, so that a checker that cannot fail is noticed.
Needs no ZooKeeper and no mount; runs in well under a second.

Usage: test_history_checker.py        (run by `meson test --suite cluster`)
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from history import FAIL, INF, OK, UNKNOWN, Op, check, linearizable_register  # noqa: E402


def put(c, n, key, v, inv, ret, outcome=OK, err=0):
    return Op(c, n, "put", key, v, inv, INF if outcome == UNKNOWN else ret, outcome, err)


def read(c, n, key, v, inv, ret):
    return Op(c, n, "read", key, v, inv, ret, OK)


def app(c, n, key, tok, inv, ret, outcome=OK, err=0):
    return Op(c, n, "append", key, tok, inv, INF if outcome == UNKNOWN else ret, outcome, err)


def excl(c, n, key, inv, ret, outcome=OK, err=0, kind="create"):
    return Op(c, n, kind, key, None, inv, INF if outcome == UNKNOWN else ret, outcome, err)


def trees(t, nodes=("n1", "n2", "n3")):
    return {n: dict(t) for n in nodes}


class Registers(unittest.TestCase):
    def kinds(self, res):
        return {v.split(":", 1)[0] for v in res.violations}

    def test_sequential_valid(self):
        ops = [put("c1", 1, "k", b"a", 0, 1), read("c2", 2, "k", b"a", 2, 3),
               put("c2", 2, "k", b"b", 4, 5), read("c3", 3, "k", b"b", 6, 7)]
        for mode in ("local", "linearizable"):
            res = check(ops, trees({"k": b"b"}), mode)
            self.assertTrue(res.ok, res.violations)

    def test_concurrent_reads_either_order(self):
        # Two overlapping puts; readers during the overlap may see either, in either order,
        # but once one reader saw b, a later reader cannot see a (unless a was written later).
        ops = [put("c1", 1, "k", b"a", 0, 10), put("c2", 2, "k", b"b", 1, 9),
               read("c3", 3, "k", b"b", 2, 3), read("c3", 3, "k", b"a", 4, 5)]
        self.assertTrue(check(ops, trees({"k": b"a"}), "linearizable").ok)
        bad = ops[:2] + [read("c3", 3, "k", b"b", 2, 3), read("c3", 3, "k", b"a", 4, 5),
                         read("c3", 3, "k", b"b", 6, 7)]
        res = check(bad, trees({"k": b"b"}), "linearizable")
        self.assertIn("not linearizable", self.kinds(res))

    def test_stale_read_caught_in_linearizable_mode_only(self):
        ops = [put("c1", 1, "k", b"a", 0, 1), put("c1", 1, "k", b"b", 2, 3),
               read("c2", 2, "k", b"a", 4, 5)]
        res = check(ops, trees({"k": b"b"}), "linearizable")
        self.assertIn("not linearizable", self.kinds(res))
        self.assertIn("stale read", self.kinds(res))
        res = check(ops, trees({"k": b"b"}), "local")
        self.assertTrue(res.ok, res.violations)
        self.assertEqual(res.stats["stale_reads"], 1)

    def test_read_your_writes(self):
        ops = [put("c1", 1, "k", b"a", 0, 1), put("c2", 2, "k", b"b", 2, 3),
               read("c2", 2, "k", b"a", 4, 5)]
        res = check(ops, trees({"k": b"b"}), "local")
        self.assertEqual(self.kinds(res), {"read-your-writes"}, res.violations)
        # Another node may read the older value (stale, allowed in local mode).
        ops[2] = read("c3", 3, "k", b"a", 4, 5)
        self.assertTrue(check(ops, trees({"k": b"b"}), "local").ok)
        # Missing after one's own acknowledged put.
        ops = [put("c1", 1, "k", b"a", 0, 1), read("c1", 1, "k", None, 2, 3)]
        res = check(ops, trees({"k": b"a"}), "local")
        self.assertEqual(self.kinds(res), {"read-your-writes"}, res.violations)

    def test_unknown_put_may_or_may_not_happen(self):
        base = [put("c1", 1, "k", b"a", 0, 1), put("c2", 2, "k", b"x", 2, None, UNKNOWN, 5)]
        # Never took effect.
        self.assertTrue(check(base + [read("c3", 3, "k", b"a", 10, 11)],
                              trees({"k": b"a"}), "linearizable").ok)
        # Took effect late, after reads that saw the old value.
        res = check(base + [read("c3", 3, "k", b"a", 10, 11), read("c3", 3, "k", b"x", 12, 13)],
                    trees({"k": b"x"}), "linearizable")
        self.assertTrue(res.ok, res.violations)
        # But not before it was invoked.
        ops = [put("c1", 1, "k", b"a", 0, 1), read("c3", 3, "k", b"x", 1.5, 1.8),
               put("c2", 2, "k", b"x", 2, None, UNKNOWN, 5)]
        res = check(ops, trees({"k": b"x"}), "linearizable")
        self.assertFalse(res.ok)

    def test_own_buffer_reads(self):
        # n3 reads while its own put is in progress: the O_TRUNC'd buffer, then the value.
        ops = [put("c1", 1, "k", b"a", 0, 1), put("w3", 3, "k", b"b", 2, 5),
               read("r3", 3, "k", b"", 2.5, 2.6), read("r3", 3, "k", b"b", 3, 3.1),
               read("r1", 1, "k", b"a", 3.2, 3.3)]
        res = check(ops, trees({"k": b"b"}), "linearizable")
        self.assertTrue(res.ok, res.violations)
        self.assertEqual(res.stats["own_buffer_reads"], 2)
        res = check(ops, trees({"k": b"b"}), "linearizable", allow_own_buffer=False)
        self.assertEqual(self.kinds(res), {"phantom read", "not linearizable"}, res.violations)
        # Not after the put returned, even when its outcome is unknown.
        late = put("w3", 3, "k", b"c", 6, None, UNKNOWN, 5)
        late.done = 7
        res = check(ops + [late, read("r3", 3, "k", b"", 8, 9)], trees({"k": b"c"}),
                    "linearizable")
        self.assertIn("phantom read", self.kinds(res))
        # On another node the same reads are violations.
        ops[2] = read("r2", 2, "k", b"", 2.5, 2.6)
        self.assertIn("phantom read", self.kinds(check(ops, trees({"k": b"b"}), "linearizable")))

    def test_lost_write_and_phantom(self):
        ops = [put("c1", 1, "k", b"a", 0, 1), put("c2", 2, "k", b"b", 2, 3)]
        for mode in ("local", "linearizable"):
            res = check(ops, trees({"k": b"a"}), mode)
            self.assertIn("lost write", self.kinds(res))
            res = check(ops, trees({}), mode)
            self.assertIn("lost write", self.kinds(res))
            res = check(ops + [read("c3", 3, "k", b"zz", 4, 5)], trees({"k": b"b"}), mode)
            self.assertIn("phantom read", self.kinds(res))
        # A definitely failed put is not a value anyone may see.
        ops = [put("c1", 1, "k", b"a", 0, 1), put("c2", 2, "k", b"b", 2, 3, FAIL, 2)]
        self.assertIn("lost write", self.kinds(check(ops, trees({"k": b"b"}), "local")))

    def test_search_handles_many_ops(self):
        ops = []
        t = 0.0
        for i in range(60):
            ops.append(put("c%d" % (i % 3), i % 3 + 1, "k", b"v%d" % i, t, t + 0.5))
            ops.append(read("r", 1, "k", b"v%d" % i, t + 0.6, t + 0.7))
            if i % 7 == 0:
                ops.append(put("u", 2, "k", b"u%d" % i, t, None, UNKNOWN, 5))
            t += 0.4  # puts overlap their neighbours
        self.assertTrue(linearizable_register(ops, b"v59"))
        self.assertFalse(linearizable_register(ops, b"v3"))


class Appends(unittest.TestCase):
    ops = [app("c1", 1, "log", b"c1.1\n", 0, 1), app("c2", 2, "log", b"c2.1\n", 0, 1),
           app("c3", 3, "log", b"c3.1\n", 0, None, UNKNOWN, 5),
           app("c3", 3, "log", b"c3.2\n", 2, 3, FAIL, 2)]

    def kinds(self, t):
        return {v.split(":", 1)[0] for v in check(self.ops, trees({"log": t}), "local").violations}

    def test_valid(self):
        self.assertEqual(self.kinds(b"c2.1\nc1.1\n"), set())
        self.assertEqual(self.kinds(b"c2.1\nc3.1\nc1.1\n"), set())
        ops = [app("c3", 3, "log", b"c3.1\n", 0, None, UNKNOWN, 5)]
        self.assertTrue(check(ops, trees({"log": b""}), "local").ok)  # created, not appended
        self.assertFalse(check(ops, trees({"log": b"\n"}), "local").ok)

    def test_violations(self):
        self.assertEqual(self.kinds(b"c2.1\n"), {"lost append"})
        self.assertEqual(self.kinds(b"c1.1\nc2.1\nc1.1\n"), {"duplicate append"})
        self.assertEqual(self.kinds(b"c1.1\nc2.1\nc3.1\nc3.1\n"), {"duplicate append"})
        self.assertEqual(self.kinds(b"c1.1\nc2.1\nc3.2\n"), {"phantom append"})
        self.assertEqual(self.kinds(b"c1.1\nc2.1\nc9.9\n"), {"phantom append"})
        self.assertEqual(self.kinds(b"c1.1\nc2."), {"phantom append", "lost append"})

    def test_one_node_differs(self):
        t = trees({"log": b"c1.1\nc2.1\n"})
        t["n3"]["log"] = b"c1.1\n"
        kinds = {v.split(":", 1)[0] for v in check(self.ops, t, "local").violations}
        self.assertEqual(kinds, {"replicas differ", "lost append"})


class Exclusive(unittest.TestCase):
    def kinds(self, ops, t):
        return {v.split(":", 1)[0] for v in check(ops, trees(t), "local").violations}

    def test_one_winner(self):
        ops = [excl("c1", 1, "e0", 0, 1), excl("c2", 2, "e0", 0, 1, FAIL, 17),
               excl("c3", 3, "e0", 0, 1, FAIL, 17)]
        self.assertEqual(self.kinds(ops, {"e0": b""}), set())
        self.assertEqual(self.kinds(ops, {}), {"lost create"})
        # An unknown outcome may have won.
        ops = [excl("c1", 1, "d0", 0, 1, UNKNOWN, 5, "mkdir"),
               excl("c2", 2, "d0", 0, 1, FAIL, 17, "mkdir")]
        self.assertEqual(self.kinds(ops, {"d0": None}), set())

    def test_two_winners(self):
        ops = [excl("c1", 1, "d0", 0, 1, kind="mkdir"), excl("c2", 2, "d0", 0, 1, kind="mkdir")]
        self.assertEqual(self.kinds(ops, {"d0": None}), {"two winners"})

    def test_no_winner(self):
        ops = [excl("c1", 1, "e1", 0, 1, FAIL, 17), excl("c2", 2, "e1", 0, 1, FAIL, 17)]
        self.assertEqual(self.kinds(ops, {"e1": b""}), {"no winner"})

    def test_wrong_type(self):
        ops = [excl("c1", 1, "d1", 0, 1, kind="mkdir")]
        self.assertEqual(self.kinds(ops, {"d1": b""}), {"lost create"})


class Identical(unittest.TestCase):
    def test_differ(self):
        t = trees({"a": b"1", "d": None})
        self.assertTrue(check([], t, "local").ok)
        t["n2"]["a"] = b"2"
        self.assertEqual({v.split(":", 1)[0] for v in check([], t, "local").violations},
                         {"replicas differ"})


if __name__ == "__main__":
    unittest.main(verbosity=1)
