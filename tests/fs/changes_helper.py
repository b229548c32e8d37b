#!/usr/bin/python3
"""Helper of test_changes.sh: the parts of reading /.changes that the shell cannot do itself.

  changes_helper.py nonblock MNT      an O_NONBLOCK read with nothing ready fails with EAGAIN
  changes_helper.py poll MNT          poll() says not ready, then POLLIN once a change commits
  changes_helper.py eintr MNT         a signal interrupts a waiting read (EINTR), the feed goes on
  changes_helper.py json MNT START    every line of .changes.json@START is one JSON object
  changes_helper.py fallout MNT N     a reader that falls N changes behind (more than the node
                                      keeps) gets ERANGE from read, not a skipped line
Exit status 0 when it behaved, 1 otherwise (with a message).
"""

import errno
import json
import os
import select
import signal
import sys
import time


def fail(msg):
    print("changes_helper: " + msg)
    sys.exit(1)


def touch(mnt, name):
    os.close(os.open(os.path.join(mnt, name), os.O_CREAT | os.O_WRONLY, 0o644))


def main():
    mode, mnt = sys.argv[1], sys.argv[2]
    feed = os.path.join(mnt, ".changes")
    if mode == "nonblock":
        fd = os.open(feed, os.O_RDONLY | os.O_NONBLOCK)
        try:
            os.read(fd, 4096)
            fail("read returned with nothing committed")
        except BlockingIOError:
            pass
    elif mode == "poll":
        fd = os.open(feed, os.O_RDONLY)
        p = select.poll()
        p.register(fd, select.POLLIN)
        if p.poll(100):
            fail("poll says ready before any change")
        touch(mnt, "polled")
        t0 = time.monotonic()
        ev = p.poll(5000)
        if not ev or not ev[0][1] & select.POLLIN:
            fail("no POLLIN within 5 s of a change: %s" % ev)
        data = os.read(fd, 4096).decode()
        if " /polled" not in data:
            fail("the line read after POLLIN is not the change: %r" % data)
        r, _, _ = select.select([fd], [], [], 0.05)
        print("POLLIN %.1f ms after the change" % ((time.monotonic() - t0) * 1000))
    elif mode == "eintr":
        class Alarm(Exception):
            pass

        def on_alarm(signum, frame):
            raise Alarm()
        fd = os.open(feed, os.O_RDONLY)
        signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        t0 = time.monotonic()
        try:
            os.read(fd, 4096)
            fail("the read returned without a change")
        except Alarm:
            pass
        took = time.monotonic() - t0
        if took > 2:
            fail("the interrupted read took %.1f s" % took)
        touch(mnt, "after_eintr")
        data = os.read(fd, 4096).decode()
        if " /after_eintr" not in data:
            fail("after EINTR the feed gave %r" % data)
    elif mode == "json":
        fd = os.open(os.path.join(mnt, ".changes.json@" + sys.argv[3]),
                     os.O_RDONLY | os.O_NONBLOCK)
        out = b""
        while True:
            try:
                got = os.read(fd, 65536)
            except BlockingIOError:
                break
            out += got
        n = 0
        for line in out.decode().splitlines():
            obj = json.loads(line)
            for key in ("index", "epoch", "time_ns", "op", "origin", "size", "path"):
                if key not in obj:
                    fail("%s missing in %s" % (key, line))
            n += 1
        if n == 0:
            fail("no JSON lines")
        print("%d JSON lines" % n)
    elif mode == "fallout":
        fd = os.open(feed, os.O_RDONLY)
        for i in range(int(sys.argv[3])):
            touch(mnt, "fall%d" % i)
        try:
            data = os.read(fd, 4096)
            fail("read gave %r, not ERANGE" % data)
        except OSError as e:
            if e.errno != errno.ERANGE:
                fail("read failed with %s, not ERANGE" % e)
    else:
        fail("unknown mode " + mode)


if __name__ == "__main__":
    main()
