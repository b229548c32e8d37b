#!/usr/bin/python3
"""pjdfstest on a FOLLOWER's mount of a three-node cluster (real ZooKeeper, see harness.py): every
change the suite makes goes through the leader and comes back applied, so its POSIX answers must
be the standalone ones. Mounted with `-o allow_other,default_permissions` like
tests/fs/test_pjdfstest.sh, run as root with `prove -rv` from a directory on the follower's mount,
checked by tests/fs/pjdfstest/check.py against tests/fs/pjdfstest/expected_failures.txt (or
KVFS_PJDFSTEST_EXPECTED): a failure not listed fails, and so does a listed one that passes now.

Usage: test_pjdfstest.py KVFS_BIN PJDFSTEST_BIN     (run by `meson test --suite cluster`)
Environment: KVFS_PJDFSTEST_OPTS, KVFS_PJDFSTEST_EXPECTED, KVFS_PJDFSTEST_GROUPS as for
test_pjdfstest.sh; prove's output is kept as $KVFS_CLUSTER_LOG_DIR/pjdfstest-follower.tap.
"""

import glob
import os
import signal
import subprocess
import sys
import time

# The suite takes minutes; meson's timeout is 900 s (the harness's default watchdog is 500 s).
os.environ.setdefault("KVFS_TEST_TIMEOUT", "870")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import settle, start_in_order  # noqa: E402

PJD_DIR = os.path.join(HERE, "..", "fs", "pjdfstest")
OPTS = os.environ.get("KVFS_PJDFSTEST_OPTS", "allow_other,default_permissions")
EXPECTED = os.environ.get("KVFS_PJDFSTEST_EXPECTED",
                          os.path.join(PJD_DIR, "expected_failures.txt"))


def extract_suite(h, pjd_bin):
    """Upstream's layout under $T/pjdfstest: tests/<group>/*.t and the helper as ./pjdfstest.
    Returns the directories prove runs over."""
    root = os.path.join(h.tmp, "pjdfstest")
    os.mkdir(root)
    archive = glob.glob(os.path.join(PJD_DIR, "pjdfstest-*.tar.gz"))
    h.require(len(archive) == 1, "one vendored pjdfstest archive in %s" % PJD_DIR, archive)
    r = subprocess.run(["tar", "-xzf", archive[0], "-C", root, "--strip-components=1",
                        "--wildcards", "*/tests/"], capture_output=True, text=True)
    h.require(r.returncode == 0, "tar extracts the pjdfstest archive", r.stderr)
    os.symlink(pjd_bin, os.path.join(root, "pjdfstest"))
    groups = os.environ.get("KVFS_PJDFSTEST_GROUPS", "").split()
    return [os.path.join(root, "tests", g) for g in groups] or [os.path.join(root, "tests")]


def run_prove(cwd, roots, out_path, err_path):
    """prove -rv over ROOTS from CWD, in its own process group (killed whole if we are
    interrupted); returns its exit status."""
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        p = subprocess.Popen(["prove", "-rv"] + roots, cwd=cwd, stdin=subprocess.DEVNULL,
                             stdout=out, stderr=err, start_new_session=True)
        try:
            return p.wait()
        except BaseException:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            raise


def test_pjdfstest_on_a_follower(h):
    """pjdfstest on a follower's mount gives the expected results"""
    pjd_bin = os.path.realpath(sys.argv[2]) if len(sys.argv) > 2 else ""
    h.require(os.access(pjd_bin, os.X_OK), "the pjdfstest helper is given (argv[2])", pjd_bin)
    h.require(os.geteuid() == 0, "runs as root (pjdfstest switches to other users itself)")
    os.chmod(h.tmp, 0o755)  # as for the standalone run: a private $T changes nothing it tests
    roots = extract_suite(h, pjd_bin)

    cluster = h.cluster_name("pjd")
    nodes = h.nodes(cluster, 3, extra=["-o", OPTS])
    start_in_order(h, nodes, h.zk_client())
    leader, _ = settle(h, nodes, what="one leader, established (its no-op committed)")
    follower = next(n for n in nodes if n is not leader)
    work = os.path.join(follower.mnt, "pjd")
    os.mkdir(work)
    h.log("prove -rv on %s's mount (leader %s, -o %s)" % (follower.name, leader.name, OPTS))

    out = os.path.join(h.tmp, "prove.out")
    t0 = time.monotonic()
    rc = run_prove(work, roots, out, os.path.join(h.tmp, "prove.err"))
    h.log("prove exited with status %d after %.0f s" % (rc, time.monotonic() - t0))
    logdir = os.environ.get("KVFS_CLUSTER_LOG_DIR") or "/tmp/kvfs-cluster-logs"
    try:
        os.makedirs(logdir, exist_ok=True)
        with open(out, "rb") as src, open(os.path.join(logdir, "pjdfstest-follower.tap"),
                                          "wb") as dst:
            dst.write(src.read())
        h.log("prove's output kept in %s" % os.path.join(logdir, "pjdfstest-follower.tap"))
    except OSError as e:
        h.log("cannot keep prove's output in %s: %s" % (logdir, e))

    cmd = [sys.executable, os.path.join(PJD_DIR, "check.py"), "--expected", EXPECTED,
           "--title", "cluster follower, -o %s" % OPTS]
    for r in roots:
        cmd += ["--tests-dir", r]
    r = subprocess.run(cmd + [out], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(r.stdout, flush=True)
    h.check(r.returncode == 0, "pjdfstest's failures on the follower are exactly the expected "
            "ones (%s)" % os.path.basename(EXPECTED),
            "check.py exit status %d (its report above)" % r.returncode)
    for n in nodes:
        h.check(n.status() is not None, "%s still answers after the suite" % n.name)


if __name__ == "__main__":
    harness.main([test_pjdfstest_on_a_follower])
