"""A background writer for the cluster tests (test_score, test_membership): one thread writing
SUBDIR/w-<seq> through a node's mount, a pause between writes; it records what close()
acknowledged, when, and every error, so a test can check that no acknowledged write was lost and
measure the longest gap between acknowledgements during a change."""

import errno
import os
import threading
import time

from test_replication import write_file


class Writer:
    def __init__(self, node, subdir, pause):
        self.node = node
        self.subdir = subdir
        self.pause = pause
        self.acked = {}  # rel -> bytes
        self.times = []  # monotonic time of each acknowledgement, in order
        self.errors = []  # (rel, errno name)
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()

    def _run(self):
        seq = 0
        while not self.stop_ev.is_set():
            seq += 1
            rel = "%s/w-%06d" % (self.subdir, seq)
            data = ("%s written through %s\n" % (rel, self.node.name)).encode()
            err = write_file(os.path.join(self.node.mnt, rel), data)
            with self.lock:
                if err == 0:
                    self.acked[rel] = data
                    self.times.append(time.monotonic())
                else:
                    self.errors.append((rel, errno.errorcode.get(err, str(err))))
            self.stop_ev.wait(self.pause)

    def max_gap_ms(self, t0, t1):
        """The largest interval between consecutive acknowledgements from the last one before
        T0 to the first one after T1 (the whole window), in ms; None if fewer than two."""
        with self.lock:
            ts = list(self.times)
        before = [t for t in ts if t < t0][-1:]
        inside = [t for t in ts if t0 <= t <= t1]
        after = [t for t in ts if t > t1][:1]
        seq = before + inside + after
        if len(seq) < 2:
            return None
        return max(b - a for a, b in zip(seq, seq[1:])) * 1000

    def stop(self):
        self.stop_ev.set()
        self.thread.join(20)
