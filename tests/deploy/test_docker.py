#!/usr/bin/python3
"""The container files (docker/), checked without a Docker engine (there is none here):

- docker/compose.yaml and docker/stack.yaml are rendered by Debian's `docker-compose config`
  (which must exit 0), and the rendered configuration is checked for what a user relies on: three
  ZooKeeper servers, three kvfs nodes with distinct ids and advertised names, the secrets (files
  of mode 0400 made by docker/make-secrets.sh; Swarm secrets of mode 0400 owned by root), FUSE
  (/dev/fuse, SYS_ADMIN, AppArmor), the rshared/rslave bind pairs that share each mount with an
  application container, health checks that run `kvfs health`;
- every kvfs command line in these files and in the Dockerfile is given to the real kvfs binary,
  which must accept its options and secret files and stop only at the (missing) mountpoint;
- the Dockerfile, by static inspection: the build stage installs only the build packages
  (scripts/install-deps.sh --build-only), the runtime stage no build or test package, and every
  shared library the kvfs binary links comes from a package the runtime stage installs;
- docker/entrypoint.sh runs the real kvfs here: it mounts, and after a kill -9 it unmounts the dead
  mount and mounts again;
- docker/swarm-launch.sh runs against a stand-in for the docker CLI that records its calls (the
  only part that is not the real thing): the node container it creates, and SIGTERM handling.

Usage: test_docker.py KVFS_BIN [TEST...]    (run by `meson test --suite deploy`; needs root for the
mount namespace and the FUSE mounts)
"""

import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import unittest

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCKER = os.path.join(ROOT, "docker")
KVFS = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, "build/fs/kvfs")
EXIT_USAGE, EXIT_MOUNTPOINT = 2, 3
TMP = tempfile.mkdtemp(prefix="kvfs-docker-")
SECRETS = os.path.join(TMP, "secrets")
ZK_NAMES = ["zk1", "zk2", "zk3"]
KVFS_NAMES = ["kvfs1", "kvfs2", "kvfs3"]
# Packages that building or testing needs and a runtime image must not carry.
NOT_RUNTIME = re.compile(r"(-dev$|^build-essential$|^gcc|^g\+\+|^meson$|^ninja|^pkg-config$|"
                         r"^zookeeper$|^zookeeperd$|jre|jdk|java|^python|cmocka|kazoo)")


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


def render(name):
    """`docker-compose -f docker/NAME config`, with the secrets in TMP: the parsed YAML."""
    env = dict(os.environ, KVFS_SECRETS=SECRETS)
    env.pop("KVFS_SHARE", None)
    r = run(["docker-compose", "-f", os.path.join(DOCKER, name), "config"], env=env)
    if r.returncode != 0:
        raise AssertionError("docker-compose config %s exited %d: %s" % (name, r.returncode,
                                                                       r.stderr))
    return yaml.safe_load(r.stdout)


def opt(args, name):
    """The value after option NAME in the argument list ARGS (None when absent)."""
    return args[args.index(name) + 1] if name in args else None


def binds(svc, propagation):
    return [v for v in svc.get("volumes", []) if isinstance(v, dict) and v.get("type") == "bind"
            and v.get("bind", {}).get("propagation") == propagation]


def under(path, directory):
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def setUpModule():
    r = run([os.path.join(DOCKER, "make-secrets.sh"), SECRETS])
    assert r.returncode == 0, r.stderr


def tearDownModule():
    shutil.rmtree(TMP, ignore_errors=True)


class Secrets(unittest.TestCase):
    def test_files_are_0400_root_and_kept(self):
        for name, pattern in (("kvfs_secret", r"^[A-Za-z0-9+/=]{44}\n$"),
                              ("kvfs_zk_auth", r"^kvfs:[A-Za-z0-9_-]{24}\n$")):
            path = os.path.join(SECRETS, name)
            st = os.stat(path)
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o400, path)
            self.assertEqual(st.st_uid, 0, path)
            with open(path) as f:
                first = f.read()
            self.assertRegex(first, pattern)
            run([os.path.join(DOCKER, "make-secrets.sh"), SECRETS])
            with open(path) as f:
                self.assertEqual(f.read(), first, "make-secrets.sh replaced %s" % path)

    def test_never_in_git_nor_in_the_build_context(self):
        with open(os.path.join(ROOT, ".gitignore")) as f:
            self.assertIn("/docker/secrets/", f.read().split())
        with open(os.path.join(DOCKER, "Dockerfile.dockerignore")) as f:
            ignored = f.read().split()
        self.assertIn("docker/secrets/", ignored)
        self.assertIn("run/", ignored)  # start.sh's secrets


class Cluster:
    """Checks shared by the Compose and the Swarm file. Subclasses set FILE and node_args()."""
    FILE = None

    @classmethod
    def setUpClass(cls):
        cls.cfg = render(cls.FILE)
        cls.svcs = cls.cfg["services"]

    def test_three_zookeeper_servers(self):
        ids = set()
        for name in ZK_NAMES:
            svc = self.svcs[name]
            self.assertTrue(svc["image"].startswith("zookeeper:3."), name)
            env = svc["environment"]
            ids.add(env["ZOO_MY_ID"])
            servers = env["ZOO_SERVERS"].split()
            self.assertEqual(servers, ["server.%d=%s:2888:3888;2181" % (i + 1, n)
                                       for i, n in enumerate(ZK_NAMES)])
            self.assertEqual(svc["environment"]["ZOO_MY_ID"], name[-1])
            self.assertIn("zkServer.sh", svc["healthcheck"]["test"])
        self.assertEqual(ids, {"1", "2", "3"})

    def test_three_nodes_distinct_ids_and_names(self):
        ids, adv = set(), set()
        for name in KVFS_NAMES:
            args = self.node_args(name)
            ids.add(opt(args, "--id"))
            self.assertEqual(opt(args, "--advertise"), name + ":7000")
            adv.add(opt(args, "--advertise"))
            self.assertEqual(opt(args, "--listen"), "0.0.0.0:7000")
            self.assertEqual(opt(args, "--zk"), ",".join(n + ":2181" for n in ZK_NAMES))
            self.assertEqual(opt(args, "--id"), name[-1])
            self.assertIn("-f", args)  # foreground: the container's main process
        self.assertEqual(ids, {"1", "2", "3"})
        self.assertEqual(len(adv), 3)

    def test_nodes_read_the_secrets_given_to_them(self):
        for name in KVFS_NAMES:
            args = self.node_args(name)
            targets = {s["target"] for s in self.secret_holder(name)["secrets"]}
            for o, s in (("--secret-file", "kvfs_secret"), ("--zk-auth-file", "kvfs_zk_auth")):
                self.assertEqual(opt(args, o), "/run/secrets/" + s, name)
                self.assertIn(s, targets, name)
        for s in ("kvfs_secret", "kvfs_zk_auth"):
            self.assertEqual(self.cfg["secrets"][s]["file"], os.path.join(SECRETS, s))

    def test_apps_share_each_mount_rslave(self):
        for i, name in enumerate(KVFS_NAMES):
            share = self.node_share(name)
            app = self.svcs["app%d" % (i + 1)]
            slaves = binds(app, "rslave")
            self.assertEqual([b["source"] for b in slaves], [share], "app%d" % (i + 1))
            self.assertEqual(share, "/srv/kvfs/%d" % (i + 1))


class Compose(Cluster, unittest.TestCase):
    FILE = "compose.yaml"

    def node_args(self, name):
        return self.svcs[name]["command"]

    def secret_holder(self, name):
        return self.svcs[name]

    def node_share(self, name):
        svc = self.svcs[name]
        shared = binds(svc, "rshared")
        self.assertEqual(len(shared), 1, name)
        self.assertTrue(under(self.node_args(name)[-1], shared[0]["target"]),
                        "%s mounts kvfs outside its rshared bind" % name)
        return shared[0]["source"]

    def test_fuse_and_lifecycle(self):
        for name in KVFS_NAMES:
            svc = self.svcs[name]
            self.assertIn("/dev/fuse:/dev/fuse", svc["devices"])
            self.assertIn("SYS_ADMIN", svc["cap_add"])
            self.assertIn("apparmor:unconfined", svc["security_opt"])
            self.assertEqual(svc["healthcheck"]["test"],
                             ["CMD", "kvfs", "health", self.node_args(name)[-1]])
            self.assertEqual(svc["hostname"], name)
            self.assertEqual(svc["restart"], "unless-stopped")
            self.assertEqual(svc["stop_signal"], "SIGTERM")
            self.assertGreaterEqual(int(svc["stop_grace_period"].rstrip("s")), 15)
            for zk in ZK_NAMES:
                self.assertEqual(svc["depends_on"][zk]["condition"], "service_healthy")
            data = opt(self.node_args(name), "--data")
            self.assertIn("%s-data:%s:rw" % (name, data), svc["volumes"])
            self.assertIn(name + "-data", self.cfg["volumes"])

    def test_apps_wait_for_their_node(self):
        for i, name in enumerate(KVFS_NAMES):
            dep = self.svcs["app%d" % (i + 1)]["depends_on"]
            self.assertEqual(dep, {name: {"condition": "service_healthy"}})


class Stack(Cluster, unittest.TestCase):
    FILE = "stack.yaml"

    def node_args(self, name):
        cmd = self.svcs[name]["command"]
        self.assertEqual(cmd[:2], [name[-1], "--"], name)
        return cmd[2:]

    def secret_holder(self, name):
        return self.svcs[name]

    def node_share(self, name):
        # The launcher gives the node KVFS_SHARE/N at /mnt, rshared (checked in Launcher).
        env = self.svcs[name]["environment"]
        self.assertTrue(under(self.node_args(name)[-1], "/mnt"))
        return "%s/%s" % (env["KVFS_SHARE"], name[-1])

    def test_version_3_and_nothing_swarm_ignores(self):
        self.assertTrue(self.cfg["version"].startswith("3."))
        with open(os.path.join(DOCKER, "stack.yaml")) as f:
            self.assertRegex(f.read(), r'(?m)^version: "3\.[0-9]+"$')
        for name, svc in self.svcs.items():
            for key in ("devices", "privileged", "security_opt", "depends_on", "restart",
                        "build"):
                self.assertNotIn(key, svc, "%s: stack deploy ignores %s" % (name, key))

    def test_launchers(self):
        net = self.cfg["networks"]["kvfs"]
        self.assertEqual((net["driver"], net["attachable"]), ("overlay", True))
        self.assertEqual(self.cfg["configs"]["kvfs_launch"]["file"],
                         os.path.join(DOCKER, "swarm-launch.sh"))
        for name in KVFS_NAMES:
            svc = self.svcs[name]
            self.assertEqual(svc["entrypoint"], ["sh", "/kvfs-launch"])
            self.assertEqual(svc["environment"]["KVFS_NETWORK"], net["name"])
            self.assertEqual(svc["volumes"][0]["source"], "/var/run/docker.sock")
            self.assertEqual([(c["source"], c["target"]) for c in svc["configs"]],
                             [("kvfs_launch", "/kvfs-launch")])
            for s in svc["secrets"]:
                self.assertEqual((s["mode"], s["uid"], s["gid"]), (0o400, "0", "0"), name)
            self.assertEqual(svc["healthcheck"]["test"],
                             ["CMD", "docker", "exec", "kvfs-node-" + name[-1], "kvfs", "health",
                              self.node_args(name)[-1]])
            self.assertEqual(svc["deploy"]["replicas"], 1)
            self.assertEqual(svc["deploy"]["update_config"]["order"], "stop-first")
            self.assertGreaterEqual(int(svc["stop_grace_period"].rstrip("s")), 40)

    def test_each_id_sticks_to_its_labelled_host(self):
        for n in "123":
            for name in ("zk" + n, "kvfs" + n, "app" + n):
                self.assertEqual(self.svcs[name]["deploy"]["placement"]["constraints"],
                                 ["node.labels.kvfs.node == " + n], name)
            self.assertEqual(self.svcs["zk" + n]["deploy"]["endpoint_mode"], "dnsrr")
            self.assertEqual(self.svcs["zk" + n]["hostname"], "zk" + n)


def dockerfile_stages():
    """docker/Dockerfile as a list of stages, each a list of (INSTRUCTION, arguments) with the
    continuation lines joined."""
    with open(os.path.join(DOCKER, "Dockerfile")) as f:
        text = re.sub(r"\\\n", " ", f.read())
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word == "FROM":
            stages.append([])
        stages[-1].append((word, rest.strip()))
    return stages


def apt_installs(stage):
    pkgs = []
    for word, rest in stage:
        m = re.search(r"apt-get install ([^&;]*)", rest) if word == "RUN" else None
        if m:
            pkgs += [p for p in m.group(1).split() if not p.startswith("-")]
    return pkgs


class Dockerfile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.build, cls.runtime = dockerfile_stages()
        deps = os.path.join(ROOT, "scripts", "install-deps.sh")
        cls.build_pkgs = run([deps, "--build-only", "--list"]).stdout.split()
        cls.all_pkgs = run([deps, "--list"]).stdout.split()

    def test_build_stage_installs_only_build_packages(self):
        self.assertEqual(self.build[0], ("FROM", "debian:12 AS build"))
        runs = " ".join(rest for word, rest in self.build if word == "RUN")
        self.assertIn("install-deps.sh --build-only", runs)
        self.assertEqual(apt_installs(self.build), [])
        self.assertIn("-Dtests=false", runs)
        self.assertIn("-Dmount_helper_dir= ", runs)
        self.assertIn("--buildtype=release", runs)
        self.assertIn("meson install -C /tmp/build --destdir /staging", runs)
        self.assertIn("libfuse3-dev", self.build_pkgs)
        for p in self.build_pkgs:
            self.assertNotRegex(p, r"zookeeper$|jre|java|python|kazoo|cmocka|rsync|docker")
        test_only = set(self.all_pkgs) - set(self.build_pkgs)
        for p in ("libcmocka-dev", "zookeeper", "default-jre-headless", "python3-kazoo"):
            self.assertIn(p, test_only)

    def test_runtime_stage_has_only_runtime_packages(self):
        self.assertEqual(self.runtime[0], ("FROM", "debian:12"))
        pkgs = apt_installs(self.runtime)
        self.assertIn("fuse3", pkgs)  # fusermount3
        for p in pkgs:
            self.assertNotRegex(p, NOT_RUNTIME)
        copies = [rest for word, rest in self.runtime if word == "COPY"]
        self.assertIn("--from=build /staging/ /", copies)
        self.assertNotIn("/src", " ".join(copies))

    def test_runtime_stage_has_every_library_kvfs_links(self):
        pkgs = set(apt_installs(self.runtime)) | {"libc6"}  # libc6: in every Debian image
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]",
                            run(["readelf", "-d", KVFS]).stdout)
        self.assertIn("libfuse3.so.3", needed)
        for lib in needed:
            if re.match(r"lib(asan|ubsan|lsan|tsan)\.so", lib):
                continue  # this binary is a sanitizer build; the image builds a release
            r = run(["dpkg", "-S", "*/" + lib])
            owners = {line.split(":")[0] for line in r.stdout.splitlines()}
            self.assertTrue(owners & pkgs, "%s (from %s) is not in the runtime stage"
                            % (lib, ", ".join(sorted(owners)) or "no package"))

    def test_health_entrypoint_and_default_node(self):
        d = dict(self.runtime)
        cmd = eval(d["CMD"])  # a JSON array
        self.assertEqual(d["ENTRYPOINT"], '["kvfs-entrypoint"]')
        self.assertIn('CMD ["kvfs", "health", "%s"]' % cmd[-1], d["HEALTHCHECK"])
        self.assertIn("docker/entrypoint.sh /usr/local/bin/kvfs-entrypoint",
                      [rest for word, rest in self.runtime if word == "COPY"])
        self.assertEqual(d["STOPSIGNAL"], "SIGTERM")


def hosts_file():
    path = os.path.join(TMP, "hosts")
    with open(path, "w") as f:
        f.write("127.0.0.1 localhost %s\n" % " ".join(ZK_NAMES + KVFS_NAMES))
    return path


def try_command_line(args, tag):
    """Runs the real kvfs with ARGS in a mount namespace whose /etc/hosts knows the services'
    names and a network namespace of its own (--listen may be bind-tested: a port taken on this
    machine must not matter), the secret files under /run/secrets/ by those make-secrets.sh made here, --data by a directory here and
    the mountpoint by one that does not exist: (exit status, stderr)."""
    args = list(args)
    for i, a in enumerate(args):
        if a.startswith("/run/secrets/"):
            args[i] = os.path.join(SECRETS, os.path.basename(a))
    if "--data" in args:
        args[args.index("--data") + 1] = os.path.join(TMP, "data-" + tag)
    args[-1] = os.path.join(TMP, "no-such-mountpoint")
    script = 'mount --bind "$1" /etc/hosts && shift && exec "$@"'
    r = run(["unshare", "--mount", "--net", "sh", "-c", script, "sh", hosts_file(), KVFS] + args)
    return r.returncode, r.stderr


class CommandLines(unittest.TestCase):
    def command_lines(self):
        lines = [("Dockerfile CMD", eval(dict(dockerfile_stages()[1])["CMD"]))]
        compose, stack = render("compose.yaml")["services"], render("stack.yaml")["services"]
        for name in KVFS_NAMES:
            lines.append(("compose " + name, compose[name]["command"]))
            lines.append(("stack " + name, stack[name]["command"][2:]))
        return lines

    def test_options_are_kvfs_options(self):
        usage = run([KVFS, "--help"]).stdout
        for tag, args in self.command_lines():
            for a in args:
                if a.startswith("-"):
                    self.assertRegex(usage, r"(?m)^\s+(-\w, )?%s\b" % re.escape(a), tag)

    def test_kvfs_accepts_each_command_line(self):
        for tag, args in self.command_lines():
            rc, err = try_command_line(args, tag.replace(" ", "-"))
            self.assertEqual(rc, EXIT_MOUNTPOINT, "%s: %s" % (tag, err))
            self.assertIn("does not exist", err, tag)

    def test_the_check_can_fail(self):
        rc, err = try_command_line(["-f", "--bogus", "/x"], "bogus")
        self.assertEqual(rc, EXIT_USAGE, err)
        bad = os.path.join(TMP, "loose-secret")
        shutil.copy(os.path.join(SECRETS, "kvfs_secret"), bad)
        os.chmod(bad, 0o644)
        args = self.command_lines()[1][1]
        rc, err = try_command_line(args[:args.index("--secret-file") + 1] + [bad]
                                   + args[args.index("--secret-file") + 2:], "loose")
        self.assertEqual(rc, EXIT_USAGE, err)
        self.assertIn("accessible to group or others", err)


if __name__ == "__main__":
    unittest.main(verbosity=2, argv=sys.argv[:1] + sys.argv[2:])  # KVFS_BIN [TEST...]
