#!/usr/bin/python3
"""Metrics and health (issue 10): /.metrics on every node and the --metrics-listen endpoint,
parsed with the real Prometheus parser (Debian's python3-prometheus-client); counters and
histograms that move with writes and reads; hostile HTTP clients (oversized head, slowloris, many
connections, garbage, other methods) that get the documented answers without disturbing the node;
`kvfs health` on a healthy cluster, on a node cut from its majority (the other two killed: it must
not claim leadership in a way a script would trust) and with ZooKeeper gone past the session.

Usage: test_metrics.py KVFS_BIN        (run by `meson test --suite cluster`)
"""

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import free_port, settle, start_in_order, statuses, view_str  # noqa: E402

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # reported by the first test
    text_string_to_metric_families = None

SHORT_SESSION_MS = 2000
WRITE_TIMEOUT_MS = 2000

# Every family /.metrics documents (README), with its type as the parser reports it (a counter's
# family name drops _total).
FAMILIES = {
    "kvfs_node_id": "gauge", "kvfs_role": "gauge", "kvfs_leader_id": "gauge",
    "kvfs_epoch": "gauge", "kvfs_zk_state": "gauge", "kvfs_peer_security": "gauge",
    "kvfs_priority": "gauge", "kvfs_commit_index": "gauge", "kvfs_applied_index": "gauge",
    "kvfs_lag_entries": "gauge", "kvfs_lag_seconds": "gauge", "kvfs_catching_up": "gauge",
    "kvfs_writable": "gauge", "kvfs_peer_up": "gauge", "kvfs_peer_match_index": "gauge",
    "kvfs_peer_lag_entries": "gauge", "kvfs_peer_lag_seconds": "gauge", "kvfs_keys": "gauge",
    "kvfs_value_bytes": "gauge", "kvfs_log_bytes": "gauge", "kvfs_snapshot_bytes": "gauge",
    "kvfs_snapshot_index": "gauge", "kvfs_writes": "counter",
    "kvfs_write_duration_seconds": "histogram", "kvfs_reads": "counter",
    "kvfs_read_duration_seconds": "histogram", "kvfs_read_wait_duration_seconds": "histogram",
    "kvfs_eio": "counter", "kvfs_fsync_duration_seconds": "histogram",
    "kvfs_fsync_bytes": "counter",
}


def parse(text):
    """{family name: family} from Prometheus text; raises ValueError on a malformed text."""
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(fams, name, **labels):
    """The value of sample NAME (a sample name, e.g. kvfs_writes_total) with exactly LABELS."""
    for f in fams.values():
        for s in f.samples:
            if s.name == name and s.labels == {k: str(v) for k, v in labels.items()}:
                return s.value
    return None


def metrics_of(n):
    raw = n.read(".metrics")
    return parse(raw.decode()) if raw is not None else None


def http(port, path="/metrics", method="GET", timeout=5):
    """(status, headers, body) of one request to 127.0.0.1:PORT."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def raw_exchange(port, data, timeout=8.0, shut=False):
    """Sends DATA on a new connection, reads until the server closes or TIMEOUT s pass. Returns
    (bytes, seconds, closed by the server)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    t0 = time.monotonic()
    got, closed = b"", False
    try:
        if data:
            s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        while time.monotonic() - t0 < timeout:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not b:
                closed = True
                break
            got += b
    finally:
        s.close()
    return got, time.monotonic() - t0, closed


def health(h, n, timeout_ms=3000):
    """(exit status, output line, seconds) of `kvfs health` on N's mount."""
    t0 = time.monotonic()
    p = subprocess.run([h.kvfs, "health", "--timeout", str(timeout_ms), n.mnt],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    return p.returncode, p.stdout.decode(errors="replace").strip(), time.monotonic() - t0


def write_file(path, data, timeout):
    """Writes and closes PATH in a thread; returns the errno (0) or None if it did not return."""
    box = {}

    def run():
        try:
            with open(path, "wb") as f:
                f.write(data)
            box["err"] = 0
        except OSError as e:
            box["err"] = e.errno

    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.join(timeout)
    return box.get("err")


def cluster_with_metrics(h, tag, **opts):
    cluster = h.cluster_name(tag)
    zk = h.zk_client()
    nodes = h.nodes(cluster, 3, **opts)
    for n in nodes:
        n.metrics_port = free_port()
        n.extra += ["--metrics-listen", "127.0.0.1:%d" % n.metrics_port]
    start_in_order(h, nodes, zk)
    leader, epoch = settle(h, nodes)
    return nodes, leader, epoch


def wait_writable(h, nodes, timeout=10):
    return h.wait_for(lambda: all(st and st.get("writable") == "yes"
                                  for st in statuses(nodes).values()), timeout)


def test_metrics_parse_and_move(h):
    """/.metrics and GET /metrics parse on every node, carry the /.status facts, and move."""
    h.require(text_string_to_metric_families is not None,
              "prometheus_client imports (Debian's python3-prometheus-client)")
    nodes, leader, epoch = cluster_with_metrics(h, "parse")
    h.check(wait_writable(h, nodes) is not None, "every node says writable: yes",
            view_str(statuses(nodes)))
    # Followers connect to each other lazily (the lower id dials when it learns the other's
    # address; the higher id waits a moment to give it a head start): let that mesh form.
    h.wait_for(lambda: all(all(value(metrics_of(n) or {}, "kvfs_peer_up", peer=i) == 1
                               for i in (1, 2, 3)) for n in nodes), 5, 0.1)
    sts = statuses(nodes)
    before = {}
    for n in nodes:
        try:
            fams = metrics_of(n)
        except ValueError as e:
            h.check(False, "%s: /.metrics parses" % n.name, str(e))
            continue
        h.check(fams is not None, "%s: /.metrics reads" % n.name)
        if fams is None:
            continue
        missing = {k: v for k, v in FAMILIES.items() if k not in fams or fams[k].type != v}
        h.check(not missing, "%s: /.metrics has every documented family with its type" % n.name,
                "missing or mistyped: %s" % missing)
        role = "leader" if n is leader else "follower"
        h.check(value(fams, "kvfs_role", role=role) == 1 and
                sum(s.value for s in fams["kvfs_role"].samples) == 1,
                "%s: kvfs_role{role=\"%s\"} 1 and no other role" % (n.name, role),
                str(fams.get("kvfs_role")))
        st = sts[n.id] or {}
        for name, key in (("kvfs_epoch", "epoch"), ("kvfs_leader_id", "leader"),
                          ("kvfs_node_id", "node")):
            h.check(str(int(value(fams, name) or -1)) == st.get(key),
                    "%s: %s agrees with /.status %s: %s" % (n.name, name, key, st.get(key)),
                    "metric %s" % value(fams, name))
        h.check(value(fams, "kvfs_zk_state", state="connected") == 1,
                "%s: kvfs_zk_state{state=\"connected\"} 1" % n.name)
        h.check(value(fams, "kvfs_peer_security", mode="encrypted") == 1,
                "%s: kvfs_peer_security{mode=\"encrypted\"} 1" % n.name)
        h.check(value(fams, "kvfs_writable") == 1, "%s: kvfs_writable 1" % n.name)
        h.check(all(value(fams, "kvfs_peer_up", peer=i) == 1 for i in (1, 2, 3)),
                "%s: kvfs_peer_up{peer=1..3} 1" % n.name)
        # The same over HTTP.
        code, hdrs, body = http(n.metrics_port)
        h.check(code == 200 and hdrs.get("Content-Type", "").startswith(
            "text/plain; version=0.0.4"),
            "%s: GET /metrics answers 200 text/plain; version=0.0.4" % n.name,
            "%s %s" % (code, hdrs))
        try:
            hf = parse(body.decode())
            h.check(set(FAMILIES) <= set(hf), "%s: the HTTP body parses with every family" %
                    n.name)
        except ValueError as e:
            h.check(False, "%s: the HTTP body parses" % n.name, str(e))
        before[n.id] = fams

    # Writes through a follower and reads there: its counters move; the leader's fsyncs too.
    f = next(n for n in nodes if n is not leader)
    for i in range(20):
        with open(os.path.join(f.mnt, "k%d" % i), "wb") as fh:
            fh.write(b"v" * (i + 1))
    for i in range(20):
        with open(os.path.join(f.mnt, "k%d" % i), "rb") as fh:
            fh.read()
    after_f, after_l = metrics_of(f), metrics_of(leader)
    bf, bl = before.get(f.id), before.get(leader.id)
    if bf and bl and after_f and after_l:
        d = lambda a, b, name: (value(a, name) or 0) - (value(b, name) or 0)  # noqa: E731
        h.check(d(after_f, bf, "kvfs_writes_total") >= 20,
                "%s: kvfs_writes_total rose by at least 20 after 20 files were written" % f.name,
                "delta %s" % d(after_f, bf, "kvfs_writes_total"))
        h.check(d(after_f, bf, "kvfs_write_duration_seconds_count") >= 20 and
                d(after_f, bf, "kvfs_write_duration_seconds_sum") > 0,
                "%s: the write latency histogram counted them" % f.name)
        h.check(d(after_f, bf, "kvfs_reads_total") >= 20 and
                d(after_f, bf, "kvfs_read_duration_seconds_count") >= 20,
                "%s: kvfs_reads_total and the read histogram rose by at least 20" % f.name)
        h.check(d(after_l, bl, "kvfs_fsync_duration_seconds_count") >= 1 and
                d(after_l, bl, "kvfs_fsync_bytes_total") > 0,
                "%s (leader): the fsync histogram and bytes moved" % leader.name)
        h.check(d(after_l, bl, "kvfs_commit_index") >= 20 and
                d(after_f, bf, "kvfs_applied_index") >= 20,
                "commit index (leader) and applied index (follower) rose by at least 20")
        h.check(d(after_f, bf, "kvfs_keys") == 20 and d(after_f, bf, "kvfs_value_bytes") == 210,
                "%s: kvfs_keys +20 and kvfs_value_bytes +210" % f.name)
        h.check(value(after_f, "kvfs_eio_total") == 0, "%s: kvfs_eio_total 0" % f.name)
    # Hidden from listings, reserved: creating /.metrics is refused.
    h.check(".metrics" not in os.listdir(f.mnt), "/.metrics is not listed by readdir")
    try:
        fd = os.open(os.path.join(f.mnt, ".metrics"), os.O_WRONLY | os.O_CREAT, 0o644)
        os.close(fd)
        refused = False
    except OSError:
        refused = True
    h.check(refused, "opening /.metrics for writing (O_CREAT) is refused")

    # kvfs health: exit 0 on the leader and the followers, one line.
    for n in nodes:
        rc, line, secs = health(h, n)
        want = "healthy: leader" if n is leader else "healthy: follower of %d" % leader.id
        h.check(rc == 0 and line.startswith(want),
                "%s: kvfs health exits 0 saying '%s...'" % (n.name, want),
                "exit %s: %s" % (rc, line))


def test_hostile_http(h):
    """Strangers on --metrics-listen get the documented answers and do not disturb the node."""
    nodes, leader, epoch = cluster_with_metrics(h, "hostile")
    n = leader
    port = n.metrics_port
    got, secs, closed = raw_exchange(port, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000)
    h.check(got.startswith(b"HTTP/1.1 431 "), "a head over 8 KiB: 431", got[:100])
    got, secs, closed = raw_exchange(port, b"\x00\xff\x13garbage\r\n\r\n")
    h.check(got.startswith(b"HTTP/1.1 400 ") and closed, "garbage bytes: 400, then close",
            got[:100])
    for method in ("POST", "DELETE", "PUT"):
        code, hdrs, _ = http(port, method=method)
        h.check(code == 405 and "GET" in hdrs.get("Allow", ""),
                "%s /metrics: 405 with Allow: GET, HEAD" % method, "%s %s" % (code, hdrs))
    code, _, _ = http(port, path="/status")
    h.check(code == 404, "GET /status: 404", code)
    # Slowloris: a head that never ends is cut at the deadline (5 s), not kept open.
    got, secs, closed = raw_exchange(port, b"GET /metr", timeout=10)
    h.check(closed and secs < 8, "a head that never ends: closed by the node within 8 s",
            "closed %s after %.1f s" % (closed, secs))
    # Many connections: 100 idle ones; a scraper still gets its answer (the oldest go).
    idle = []
    try:
        for _ in range(100):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(0.3)
        code, _, body = http(port)
        h.check(code == 200 and b"kvfs_role" in body,
                "with 100 idle connections open, GET /metrics still answers 200")
        dropped = 0
        for s in idle:
            s.settimeout(0.2)
            try:
                if s.recv(1) == b"":
                    dropped += 1
            except ConnectionResetError:
                dropped += 1
            except socket.timeout:
                pass
        h.check(dropped >= 100 - 32, "the node kept at most 32 of them (%d closed)" % dropped)
    finally:
        for s in idle:
            s.close()
    # The node did not mind.
    err = write_file(os.path.join(n.mnt, "after-hostile"), b"ok", 10)
    h.check(err == 0, "after all that, a write on the node succeeds", "errno %s" % err)
    rc, line, secs = health(h, n)
    h.check(rc == 0, "after all that, kvfs health exits 0", line)
    h.check(n.alive(), "the node is still running")


def test_minority_survivor(h):
    """The other two killed: the survivor is not writable, health fails promptly, and it never
    names itself leader while it is a candidate (issue 10's display bug)."""
    nodes, leader, epoch = cluster_with_metrics(
        h, "minority", session_timeout=SHORT_SESSION_MS,
        extra=["--write-timeout", str(WRITE_TIMEOUT_MS)])
    h.check(wait_writable(h, nodes) is not None, "every node says writable: yes")
    survivor = leader
    others = [n for n in nodes if n is not survivor]
    sampler = h.sampler([survivor], interval=0.05)
    t_kill = time.monotonic()
    for n in others:
        n.kill9()
    h.log("killed %s; %s survives" % ([n.name for n in others], survivor.name))
    ms = h.wait_for(lambda: (survivor.status() or {}).get("writable") == "no", 3)
    h.check(ms is not None, "%s says writable: no within 3 s of losing its majority" %
            survivor.name, view_str({survivor.id: survivor.status()}))
    rc, line, secs = health(h, survivor)
    h.check(rc == 1 and line.startswith("unhealthy: ") and secs < 4,
            "kvfs health exits 1 promptly on the survivor", "exit %s after %.1f s: %s" %
            (rc, secs, line))
    before = metrics_of(survivor)
    err = write_file(os.path.join(survivor.mnt, "lost"), b"x", WRITE_TIMEOUT_MS / 1000 + 8)
    h.check(err is not None and err != 0, "a write on the survivor fails (EIO)",
            "errno %s" % err)
    after = metrics_of(survivor)
    if before and after:
        h.check((value(after, "kvfs_eio_total") or 0) > (value(before, "kvfs_eio_total") or 0),
                "kvfs_eio_total rose", "%s -> %s" % (value(before, "kvfs_eio_total"),
                                                     value(after, "kvfs_eio_total")))
        h.check(value(after, "kvfs_writable") == 0, "kvfs_writable 0 on the survivor")
    # Long enough for the leader to give up and stand again (session timeout + retries).
    time.sleep((SHORT_SESSION_MS * 3) / 1000)
    sampler.stop()
    samples = sampler.snapshot()
    since = [(t, st) for t, nid, st in samples if st is not None and t > t_kill]
    named_self = [st for t, st in since
                  if st.get("role") != "leader" and st.get("leader") == str(survivor.id)]
    trusted = [st for t, st in since if t > t_kill + 3 and st.get("writable") != "no"]
    roles = sorted({st.get("role") for t, st in since})
    h.log("survivor's roles after the kill: %s (%d samples)" % (roles, len(since)))
    h.check(len(since) > 20, "the survivor's status was sampled (%d samples)" % len(since))
    h.check(not named_self, "the survivor never named itself leader unless role leader",
            "\n".join(view_str({survivor.id: st}) for st in named_self[:5]))
    h.check(not trusted, "from 3 s after the kill on, it always said writable: no",
            "\n".join(view_str({survivor.id: st}) for st in trusted[:5]))
    st = survivor.status() or {}
    h.check(st.get("role") != "leader" and st.get("leader") == "none",
            "%.0f s after the kill it says role %s, leader none" %
            (time.monotonic() - t_kill, st.get("role")), view_str({survivor.id: st}))


def test_zookeeper_gone(h):
    """ZooKeeper gone past the session timeout: health fails promptly on every node. Last: it
    stops the ensemble."""
    nodes, leader, epoch = cluster_with_metrics(h, "zkgone", session_timeout=SHORT_SESSION_MS)
    h.check(wait_writable(h, nodes) is not None, "every node says writable: yes")
    h.ensemble().stop()
    time.sleep((SHORT_SESSION_MS + 1500) / 1000)
    for n in nodes:
        rc, line, secs = health(h, n)
        h.check(rc == 1 and "zookeeper" in line and secs < 4,
                "%s: with ZooKeeper gone, kvfs health exits 1 within 4 s naming ZooKeeper" %
                n.name, "exit %s after %.1f s: %s" % (rc, secs, line))
        fams = metrics_of(n)
        h.check(fams is not None and value(fams, "kvfs_writable") == 0 and
                value(fams, "kvfs_zk_state", state="connected") == 0,
                "%s: kvfs_writable 0, kvfs_zk_state{state=\"connected\"} 0" % n.name)
    # A stopped daemon: the health check answers 3 within its timeout, never hangs.
    n = nodes[0]
    n.sigstop()
    try:
        rc, line, secs = health(h, n, timeout_ms=1000)
        h.check(rc == 3 and secs < 3, "a stopped daemon: kvfs health exits 3 within 3 s",
                "exit %s after %.1f s: %s" % (rc, secs, line))
    finally:
        n.sigcont()


if __name__ == "__main__":
    harness.main([test_metrics_parse_and_move, test_hostile_http, test_minority_survivor,
                  test_zookeeper_gone])
