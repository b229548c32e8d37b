#!/usr/bin/env python3
"""Lock checks on one kvfs mount (tests/fs/test_locks.sh): flock and fcntl locks between
processes, waiting and waking, EINTR, EDEADLK between waiters of one node, release on close and on
kill -9, F_GETLK, OFD locks, the root directory (a node-local lock) and the fencing token (user.kvfs.lock). Prints "ok ..." or "FAIL ..." per check; exits 1 if any failed.

Usage: locks_helper.py MOUNTPOINT
"""
import errno
import fcntl
import os
import select
import signal
import struct
import sys
import time

FAILED = []


def ok(cond, desc, detail=""):
    if cond:
        print("ok   " + desc)
    else:
        print("FAIL " + desc + ("   " + detail if detail else ""))
        FAILED.append(desc)


def child(fn):
    """Runs fn() in a forked child; returns its pid. The child exits 0 if fn returns true."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        # Inherited descriptors would keep the parent's open files (and their flock locks)
        # alive: a child holds only what it opens itself, as with a fresh process.
        for fd in range(3, 256):
            if fd != w:
                try:
                    os.close(fd)
                except OSError:
                    pass
        try:
            code = 0 if fn(w) else 1
        except BaseException as e:  # report, never fall back into the parent's code
            os.write(w, ("exception %r\n" % (e,)).encode())
            code = 3
        os._exit(code)
    os.close(w)
    return pid, r


def wait_line(r, timeout=10.0):
    """The next line the child wrote to its pipe, or None after timeout."""
    buf = b""
    deadline = time.time() + timeout
    while not buf.endswith(b"\n"):
        left = deadline - time.time()
        if left <= 0:
            return None
        if not select.select([r], [], [], left)[0]:
            return None
        b = os.read(r, 1)
        if not b:
            return buf.decode() or None
        buf += b
    return buf.decode().strip()


def reap(pid, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        p, st = os.waitpid(pid, os.WNOHANG)
        if p:
            return os.waitstatus_to_exitcode(st)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def try_flock(path, how):
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
        return 0
    except OSError as e:
        return e.errno
    finally:
        os.close(fd)


def token_after_release(path, timeout=3.0):
    """user.kvfs.lock once the kernel's asynchronous RELEASE of a dead process's files has come
    through (close(2) of the last descriptor returns before it): the token, or the errno."""
    deadline = time.time() + timeout
    while True:
        try:
            tok = os.getxattr(path, "user.kvfs.lock")
        except OSError as e:
            return e.errno
        if time.time() > deadline:
            return tok
        time.sleep(0.01)


def say(w, s):
    os.write(w, (s + "\n").encode())


def main(mnt):
    f = os.path.join(mnt, "lockme")
    with open(f, "w") as fp:
        fp.write("x" * 100)

    # 1. flock: exclusion between processes; shared readers; token.
    fd = os.open(f, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    tok1 = int(os.getxattr(f, "user.kvfs.lock"))
    ok(tok1 > 0, "user.kvfs.lock gives the holder's fencing token (%d)" % tok1)
    pid, r = child(lambda w: say(w, str(try_flock(f, fcntl.LOCK_SH))) or True)
    ok(wait_line(r) == str(errno.EWOULDBLOCK), "flock LOCK_SH|LOCK_NB in another process: EWOULDBLOCK")
    reap(pid)
    fcntl.flock(fd, fcntl.LOCK_SH)  # downgrade
    pid, r = child(lambda w: say(w, str(try_flock(f, fcntl.LOCK_SH))) or True)
    ok(wait_line(r) == "0", "after a downgrade another reader gets LOCK_SH")
    reap(pid)

    # 2. blocking flock waits without polling and wakes when the holder closes.
    fcntl.flock(fd, fcntl.LOCK_EX)

    def blocker(w):
        g = os.open(f, os.O_RDONLY)
        say(w, "waiting")
        t = time.time()
        fcntl.flock(g, fcntl.LOCK_EX)
        say(w, "%.3f" % (time.time() - t))
        return True

    pid, r = child(blocker)
    ok(wait_line(r) == "waiting", "a blocking flock starts")
    time.sleep(0.3)
    os.close(fd)  # the last close of the open file releases it
    line = wait_line(r)
    ok(line is not None and 0.2 < float(line) < 5, "the blocked flock wakes when the holder closes",
       "waited %s s" % line)
    reap(pid)
    tok2 = token_after_release(f)
    ok(tok2 == errno.ENODATA, "no lock held: user.kvfs.lock is ENODATA", str(tok2))

    # 3. fcntl: F_SETLKW waits for an overlapping range and is woken by F_UNLCK; disjoint ranges
    #    do not conflict; F_GETLK names the holder's pid.
    fd = os.open(f, os.O_RDWR)
    fcntl.lockf(fd, fcntl.LOCK_EX, 10, 0)

    def ranges(w):
        g = os.open(f, os.O_RDWR)
        fcntl.lockf(g, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 20)
        say(w, "disjoint")
        got = fcntl.fcntl(g, fcntl.F_GETLK, struct.pack("hhqqi", fcntl.F_WRLCK, 0, 5, 1, 0))
        t = struct.unpack("hhqqi", got)
        say(w, "%d %d %d %d" % (t[0], t[2], t[3], t[4]))
        t = time.time()
        fcntl.lockf(g, fcntl.LOCK_EX, 10, 5)
        say(w, "%.3f" % (time.time() - t))
        return True

    pid, r = child(ranges)
    ok(wait_line(r) == "disjoint", "fcntl locks on disjoint ranges coexist")
    ok(wait_line(r) == "%d 0 10 %d" % (fcntl.F_WRLCK, os.getpid()),
       "F_GETLK shows the conflicting write lock and its pid")
    time.sleep(0.3)
    fcntl.lockf(fd, fcntl.LOCK_UN, 10, 0)
    line = wait_line(r)
    ok(line is not None and 0.2 < float(line) < 5, "F_SETLKW wakes on F_UNLCK", "waited %s s" % line)
    reap(pid)

    # 4. EINTR: a signal interrupts F_SETLKW.
    fcntl.lockf(fd, fcntl.LOCK_EX, 0, 0)

    class Alarm(Exception):
        pass

    def interrupted(w):
        def on_alarm(sig, frame):
            raise Alarm()
        signal.signal(signal.SIGALRM, on_alarm)
        g = os.open(f, os.O_RDWR)
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        t = time.time()
        try:
            fcntl.lockf(g, fcntl.LOCK_EX, 0, 0)
            say(w, "granted")
        except Alarm:
            say(w, "EINTR %.3f" % (time.time() - t))
        return True

    pid, r = child(interrupted)
    line = wait_line(r) or ""
    ok(line.startswith("EINTR"), "a signal interrupts a waiting F_SETLKW", line)
    reap(pid)
    # The interrupted request left nothing behind: after the holder unlocks, another gets it.
    fcntl.lockf(fd, fcntl.LOCK_UN, 0, 0)
    pid, r = child(lambda w: (fcntl.lockf(os.open(f, os.O_RDWR), fcntl.LOCK_EX | fcntl.LOCK_NB, 0, 0),
                              say(w, "free")))
    ok(wait_line(r) == "free", "an interrupted waiter holds nothing afterwards")
    reap(pid)
    os.close(fd)

    # 4b. Two processes of one node that would wait for each other: EDEADLK, as on Linux.
    fd = os.open(f, os.O_RDWR)
    fcntl.lockf(fd, fcntl.LOCK_EX, 1, 0)

    def crosser(w):
        g = os.open(f, os.O_RDWR)
        fcntl.lockf(g, fcntl.LOCK_EX, 1, 1)
        say(w, "holding")
        fcntl.lockf(g, fcntl.LOCK_EX, 1, 0)  # waits for the parent
        say(w, "granted")
        return True

    pid, r = child(crosser)
    ok(wait_line(r) == "holding", "a child holds byte 1")
    time.sleep(0.2)  # the child is parked on byte 0
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX, 1, 1)
        ok(False, "a lock that would wait for a waiter on this one: EDEADLK")
    except OSError as e:
        ok(e.errno == errno.EDEADLK, "a lock that would wait for a waiter on this one: EDEADLK",
           str(e))
    os.close(fd)  # the parent's locks go: the child is granted byte 0
    ok(wait_line(r) == "granted", "the waiting child gets the lock once the parent closes")
    reap(pid)

    # 5. Release on close (fcntl: any close by the owning process) and on kill -9.
    def close_release(w):
        g = os.open(f, os.O_RDWR)
        fcntl.lockf(g, fcntl.LOCK_EX, 0, 0)
        h = os.open(f, os.O_RDONLY)
        os.close(h)  # POSIX: closing any descriptor of the file drops the process's locks
        say(w, "closed")
        time.sleep(3)
        return True

    pid, r = child(close_release)
    ok(wait_line(r) == "closed", "child locked and closed another descriptor")
    fd = os.open(f, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 0, 0)
        ok(True, "close(2) of any descriptor released the process's record lock")
        fcntl.lockf(fd, fcntl.LOCK_UN, 0, 0)
    except OSError as e:
        ok(False, "close(2) of any descriptor released the process's record lock", str(e))
    os.kill(pid, signal.SIGKILL)
    reap(pid)

    def holder(w):
        g = os.open(f, os.O_RDWR)
        fcntl.flock(g, fcntl.LOCK_EX)
        fcntl.lockf(g, fcntl.LOCK_EX, 0, 0)
        say(w, "held")
        time.sleep(60)
        return True

    pid, r = child(holder)
    ok(wait_line(r) == "held", "child holds a flock and a record lock")
    ok(try_flock(f, fcntl.LOCK_EX) == errno.EWOULDBLOCK, "... which exclude this process")
    os.kill(pid, signal.SIGKILL)
    reap(pid)
    signal.setitimer(signal.ITIMER_REAL, 5)
    try:
        g = os.open(f, os.O_RDWR)
        fcntl.flock(g, fcntl.LOCK_EX)
        fcntl.lockf(g, fcntl.LOCK_EX, 0, 0)
        ok(True, "kill -9 of the holder releases both")
        os.close(g)
    except Exception as e:
        ok(False, "kill -9 of the holder releases both", repr(e))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)

    # 6. OFD locks: owned by the open file, so two opens in one process conflict, and closing
    #    the holder's open file releases it.
    if hasattr(fcntl, "F_OFD_SETLK"):
        a = os.open(f, os.O_RDWR)
        b = os.open(f, os.O_RDWR)
        wr = struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 0, 0)
        fcntl.fcntl(a, fcntl.F_OFD_SETLK, wr)
        try:
            fcntl.fcntl(b, fcntl.F_OFD_SETLK, wr)
            ok(False, "OFD locks of two opens in one process conflict")
        except OSError as e:
            ok(e.errno == errno.EAGAIN, "OFD locks of two opens in one process conflict", str(e))
        os.close(a)
        try:
            fcntl.fcntl(b, fcntl.F_OFD_SETLK, wr)
            ok(True, "closing the OFD holder's file releases its lock")
        except OSError as e:
            ok(False, "closing the OFD holder's file releases its lock", str(e))
        os.close(b)

    # 7. The mount's root directory can be flocked (`flock /mnt cmd`), but only node-local: FUSE
    #    never passes a directory's locks to kvfs (the kernel keeps them), so no token either.
    root = os.open(mnt, os.O_RDONLY)
    fcntl.flock(root, fcntl.LOCK_EX)
    pid, r = child(lambda w: say(w, str(try_flock(mnt, fcntl.LOCK_EX))) or True)
    ok(wait_line(r) == str(errno.EWOULDBLOCK),
       "flock on the mount's root excludes on this node (a node-local kernel lock)")
    reap(pid)
    try:
        tok = os.getxattr(mnt, "user.kvfs.lock")
    except OSError as e:
        tok = e.errno
    ok(tok == errno.ENODATA, "... which kvfs never sees: the root has no lock token", str(tok))
    os.close(root)

    # 8. No lock is left behind.
    tok = token_after_release(f)
    ok(tok == errno.ENODATA, "no lock is left behind", str(tok))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
