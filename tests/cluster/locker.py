#!/usr/bin/python3
"""A process that takes locks on command, for test_locks.py: reads one command per line on
stdin, answers one line on stdout, "ok T [value]" or "err ERRNO T" (T = time.time() when the call
returned).

    open PATH                 opens PATH read-write (the descriptor all later calls use)
    flock ex|sh|un [nb]       flock(2)
    lockf ex|sh|un START LEN [nb]   an fcntl record lock (F_SETLKW, or F_SETLK with nb)
    token                     the user.kvfs.lock attribute of PATH
    close                     closes the descriptor
"""
import errno
import fcntl
import os
import struct
import sys
import time

KIND = {"ex": fcntl.LOCK_EX, "sh": fcntl.LOCK_SH, "un": fcntl.LOCK_UN}
TYPE = {"ex": fcntl.F_WRLCK, "sh": fcntl.F_RDLCK, "un": fcntl.F_UNLCK}


def main():
    fd = None
    path = None
    for line in sys.stdin:
        w = line.split()
        if not w:
            continue
        value = ""
        try:
            if w[0] == "open":
                path = w[1]
                fd = os.open(path, os.O_RDWR)
            elif w[0] == "flock":
                fcntl.flock(fd, KIND[w[1]] | (fcntl.LOCK_NB if "nb" in w[2:] else 0))
            elif w[0] == "lockf":
                cmd = fcntl.F_SETLK if "nb" in w[4:] else fcntl.F_SETLKW
                fcntl.fcntl(fd, cmd, struct.pack("hhqqi", TYPE[w[1]], 0, int(w[2]), int(w[3]), 0))
            elif w[0] == "token":
                value = " " + os.getxattr(path, "user.kvfs.lock").decode()
            elif w[0] == "close":
                os.close(fd)
                fd = None
            else:
                raise OSError(errno.EINVAL, "unknown command")
            print("ok %.6f%s" % (time.time(), value), flush=True)
        except OSError as e:
            print("err %d %.6f" % (e.errno or 0, time.time()), flush=True)


if __name__ == "__main__":
    main()
