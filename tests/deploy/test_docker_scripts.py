#!/usr/bin/python3
"""The two scripts of docker/ that run inside containers, run here:

- docker/entrypoint.sh (the image's entry point) with the real kvfs on a real FUSE mount: it
  creates the mountpoint, execs kvfs (which stays the main process and stops cleanly on SIGTERM),
  and after a kill -9 left a dead mount it unmounts it and mounts again, the data intact; with a
  `kvfs health` subcommand, that answers 0 on the live node and non-zero on the dead mount;
- docker/swarm-launch.sh (the Swarm launcher) against a stand-in for the docker CLI that records
  every call (no Docker engine here): the node container it creates (FUSE device, capability,
  AppArmor, network alias, volumes, the kvfs arguments unchanged), the secrets it copies in, a
  container an earlier launcher left, SIGTERM (the node is stopped with its grace, the launcher
  exits with the node's status) and its usage errors.

Usage: test_docker_scripts.py KVFS_BIN [TEST...]    (run by `meson test --suite deploy`; needs root)
"""

import errno
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCKER = os.path.join(ROOT, "docker")
KVFS = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, "build/fs/kvfs")
NODE_EXIT = 7  # the status the stand-in reports for the node container

# The stand-in docker CLI: appends each call to $FAKE/calls (one line, arguments joined by
# spaces); `start --attach` blocks until `stop` (or its own SIGTERM); `container inspect` says
# whether the container exists ($FAKE/exists) and, with --format, prints NODE_EXIT.
FAKE_DOCKER = r"""#!/bin/sh
echo "$*" >> "$FAKE/calls"
case "$1 $2" in
"container inspect")
	case "$3" in --format) echo %d; exit 0 ;; esac
	[ -e "$FAKE/exists" ]; exit ;;
"create "*) touch "$FAKE/exists"; echo 0123456789ab ;;
"start --attach")
	echo $$ > "$FAKE/start.pid"
	sleep 60 >/dev/null 2>&1 &
	trap 'kill $! 2>/dev/null; exit 0' TERM
	wait ;;
"stop "*) [ -e "$FAKE/start.pid" ] && kill "$(cat "$FAKE/start.pid")" 2>/dev/null; true ;;
"rm "*) rm -f "$FAKE/exists" ;;
esac
""" % NODE_EXIT


def dead(path):
    try:
        os.statvfs(path)
        return False
    except OSError as e:
        return e.errno == errno.ENOTCONN


def kvfs_mounted(path):
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == path and line.split()[2] == "fuse.kvfs" for line in f)


def wait_for(pred, what, timeout=15):
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.05)


class Entrypoint(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="kvfs-entry-")
        self.bin = os.path.join(self.tmp, "bin")
        os.mkdir(self.bin)
        os.symlink(KVFS, os.path.join(self.bin, "kvfs"))
        self.env = dict(os.environ, PATH=self.bin + ":" + os.environ["PATH"])
        self.mnt = os.path.join(self.tmp, "share", "kvfs")  # made by the entry point
        self.data = os.path.join(self.tmp, "data")
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stderr.close()
        if kvfs_mounted(self.mnt):
            subprocess.run(["fusermount3", "-u", "-z", self.mnt])
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self):
        p = subprocess.Popen(["sh", os.path.join(DOCKER, "entrypoint.sh"), "-f", "--data",
                              self.data, self.mnt], env=self.env, stderr=subprocess.PIPE,
                             text=True)
        self.procs.append(p)
        wait_for(lambda: kvfs_mounted(self.mnt) and not dead(self.mnt) or p.poll() is not None,
                 "the mount")
        if p.poll() is not None:
            self.fail("kvfs exited with status %d: %s" % (p.returncode, p.stderr.read()))
        return p

    def health(self):
        usage = subprocess.run([KVFS, "--help"], capture_output=True, text=True).stdout
        if " health" not in usage:
            return None  # a kvfs without the subcommand: nothing to ask
        return subprocess.run([KVFS, "health", self.mnt], capture_output=True,
                              timeout=30).returncode

    def test_mounts_and_stops_on_sigterm(self):
        p = self.start()
        with open("/proc/%d/cmdline" % p.pid) as f:
            self.assertEqual(os.path.basename(f.read().split("\0")[0]), "kvfs")  # exec'd
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=30), 0)
        self.assertFalse(kvfs_mounted(self.mnt))

    def test_replaces_a_dead_mount(self):
        p = self.start()
        with open(os.path.join(self.mnt, "before"), "w") as f:
            f.write("kept\n")
        self.assertIn(self.health(), (0, None))
        p.kill()
        p.wait()
        self.assertTrue(dead(self.mnt), "kill -9 should leave a dead mount")
        self.assertNotIn(self.health(), (0,))
        plain = subprocess.run([KVFS, "-f", "--data", self.data, self.mnt], env=self.env,
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(plain.returncode, 3, "kvfs itself refuses a dead mount")
        p = self.start()
        self.assertIn("dead kvfs mount", p.stderr.readline())
        with open(os.path.join(self.mnt, "before")) as f:
            self.assertEqual(f.read(), "kept\n")
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=30), 0)

    def test_passes_help_and_version_through(self):
        for args, want in (([], "usage:"), (["--version"], "kvfs ")):
            r = subprocess.run(["sh", os.path.join(DOCKER, "entrypoint.sh")] + args,
                               env=self.env, capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0)
            self.assertIn(want, r.stdout)


class Launcher(unittest.TestCase):
    ARGS = ["-f", "--zk", "zk1:2181", "--id", "2", "--data", "/data", "/mnt/kvfs"]

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="kvfs-launch-")
        self.fake = os.path.join(self.tmp, "fake")
        os.mkdir(self.fake)
        docker = os.path.join(self.tmp, "docker")
        with open(docker, "w") as f:
            f.write(FAKE_DOCKER)
        os.chmod(docker, 0o755)
        self.secrets = os.path.join(self.tmp, "secrets")
        subprocess.run([os.path.join(DOCKER, "make-secrets.sh"), self.secrets],
                       capture_output=True, check=True)
        self.env = dict(os.environ, PATH=self.tmp + ":" + os.environ["PATH"], FAKE=self.fake,
                        KVFS_IMAGE="registry.example/kvfs:1", KVFS_NETWORK="kvfs-net",
                        KVFS_SHARE="/srv/kvfs", KVFS_SECRETS_DIR=self.secrets)
        self.proc = None

    def tearDown(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        pid = os.path.join(self.fake, "start.pid")
        if os.path.exists(pid):
            with open(pid) as f:
                try:
                    os.kill(int(f.read()), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(self.tmp, ignore_errors=True)

    def calls(self):
        with open(os.path.join(self.fake, "calls")) as f:
            return f.read().splitlines()

    def launch(self, args):
        self.proc = subprocess.Popen(["sh", os.path.join(DOCKER, "swarm-launch.sh")] + args,
                                     env=self.env, stderr=subprocess.PIPE, text=True)
        return self.proc

    def run_until_sigterm(self):
        p = self.launch(["2", "--"] + self.ARGS)
        wait_for(lambda: os.path.exists(os.path.join(self.fake, "start.pid")), "docker start")
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=30)
        return p.returncode, err

    def test_creates_the_node_container(self):
        rc, err = self.run_until_sigterm()
        self.assertEqual(rc, NODE_EXIT, err)
        calls = self.calls()
        create = [c for c in calls if c.startswith("create ")]
        self.assertEqual(len(create), 1, calls)
        want = ("create --name kvfs-node-2 --hostname kvfs2 --network kvfs-net "
                "--network-alias kvfs2 --device /dev/fuse --cap-add SYS_ADMIN "
                "--security-opt apparmor:unconfined --stop-timeout 30 ")
        self.assertTrue(create[0].startswith(want), create[0])
        self.assertIn(" -v kvfs2-data:/data -v /srv/kvfs/2:/mnt:rshared ", create[0])
        self.assertTrue(create[0].endswith(" registry.example/kvfs:1 " + " ".join(self.ARGS)))
        for s in ("kvfs_secret", "kvfs_zk_auth"):
            self.assertIn("cp %s/%s kvfs-node-2:/run/secrets/%s" % (self.secrets, s, s), calls)
        order = [c.split()[0] for c in calls]
        self.assertLess(order.index("cp"), order.index("start"))
        self.assertIn("stop -t 30 kvfs-node-2", calls)
        self.assertEqual(calls[-1], "rm -f kvfs-node-2")
        self.assertIn("kvfs-node-2 exited with status %d" % NODE_EXIT, err)

    def test_replaces_a_container_left_behind(self):
        open(os.path.join(self.fake, "exists"), "w").close()
        rc, err = self.run_until_sigterm()
        calls = self.calls()
        self.assertEqual(calls[1:3], ["stop -t 30 kvfs-node-2", "rm -f kvfs-node-2"], calls)
        self.assertTrue(calls[3].startswith("create "), calls)

    def test_usage_errors(self):
        for args in (["x", "--"] + self.ARGS, ["2"] + self.ARGS, ["2"]):
            _, err = self.launch(args).communicate(timeout=30)
            self.assertEqual(self.proc.returncode, 2, args)
            self.assertIn("kvfs-launch:", err)
        env = self.env
        self.env = dict(env)
        del self.env["KVFS_IMAGE"]
        _, err = self.launch(["2", "--"] + self.ARGS).communicate(timeout=30)
        self.assertNotEqual(self.proc.returncode, 0)
        self.assertIn("KVFS_IMAGE", err)
        self.assertFalse(os.path.exists(os.path.join(self.fake, "calls")))


if __name__ == "__main__":
    unittest.main(verbosity=2, argv=sys.argv[:1] + sys.argv[2:])  # KVFS_BIN [TEST...]
