#!/usr/bin/python3
"""Short chaos runs in CI (issue 8): chaos.py's randomized faults (kill -9, SIGSTOP, partitions,
ZooKeeper server loss) under clients on every mount, for fixed seeds, once with --read local and
once with --read linearizable; each ends with the history checker (history.py), whose verdict
must be clean. scripts/chaos.sh runs the same for as long as you like.

Usage: test_chaos.py KVFS_BIN        (run by `meson test --suite cluster`)
KVFS_CHAOS_SECONDS overrides the fault time of each run (default 70).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from chaos import Chaos  # noqa: E402

SECONDS = float(os.environ.get("KVFS_CHAOS_SECONDS", "70"))


def test_chaos_local_seed_11(h):
    """Seed 11, --read local: every acknowledged write kept, appends exactly once, one winner
    per round, read-your-writes, identical replicas."""
    res = Chaos(h, "11", SECONDS, "local").run()
    h.check(res.ok, "seed 11, --read local: the checker's verdict is OK", res.verdict())


def test_chaos_linearizable_seed_12(h):
    """Seed 12, --read linearizable: the same, and each key's history is linearizable."""
    res = Chaos(h, "12", SECONDS, "linearizable").run()
    h.check(res.ok, "seed 12, --read linearizable: the checker's verdict is OK", res.verdict())


if __name__ == "__main__":
    harness.main([test_chaos_local_seed_11, test_chaos_linearizable_seed_12])
