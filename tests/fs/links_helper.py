#!/usr/bin/env python3
"""Small system-call helpers for test_links.sh: what shell tools cannot do directly.

  links_helper.py link SRC DST           os.link; prints the errno name on failure (exit 1)
  links_helper.py rename SRC DST         os.rename (rename(2))
  links_helper.py exchange A B           renameat2(A, B, RENAME_EXCHANGE)
  links_helper.py noreplace-exchange A B renameat2 with RENAME_EXCHANGE|RENAME_NOREPLACE
  links_helper.py socket-echo PATH       binds an AF_UNIX socket at PATH, connects to it through
                                         the same path and echoes one message
  links_helper.py falloc PATH MODE OFF LEN  fallocate(2) on PATH opened read-write
  links_helper.py falloc-buffered PATH   write, punch, write on one descriptor, then close
"""
import ctypes
import errno
import os
import socket
import sys

libc = ctypes.CDLL(None, use_errno=True)
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
AT_FDCWD = -100
FALLOC = {"keep": 1, "punch": 2 | 1, "zero": 0x10, "zero-keep": 0x10 | 1, "collapse": 8, "0": 0}


def fail(e):
    print(errno.errorcode.get(e, str(e)))
    sys.exit(1)


def renameat2(a, b, flags):
    if libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), flags) != 0:
        fail(ctypes.get_errno())


def falloc(path, mode, off, length):
    fd = os.open(path, os.O_RDWR)
    try:
        rv = libc.fallocate(fd, ctypes.c_int(mode), ctypes.c_longlong(off), ctypes.c_longlong(length))
        if rv != 0:
            fail(ctypes.get_errno())
    finally:
        os.close(fd)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    try:
        if cmd == "link":
            os.link(args[0], args[1])
        elif cmd == "rename":
            os.rename(args[0], args[1])
        elif cmd == "exchange":
            renameat2(args[0], args[1], RENAME_EXCHANGE)
        elif cmd == "noreplace-exchange":
            renameat2(args[0], args[1], RENAME_EXCHANGE | RENAME_NOREPLACE)
        elif cmd == "socket-echo":
            srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            srv.bind(args[0])
            srv.listen(1)
            cli = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            cli.connect(args[0])
            conn, _ = srv.accept()
            cli.sendall(b"hello over a socket on kvfs")
            print(conn.recv(100).decode())
        elif cmd == "falloc":
            falloc(args[0], FALLOC[args[1]], int(args[2]), int(args[3]))
        elif cmd == "falloc-buffered":
            fd = os.open(args[0], os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, b"A" * 1000)
            if libc.fallocate(fd, 3, ctypes.c_longlong(100), ctypes.c_longlong(100)) != 0:
                fail(ctypes.get_errno())
            os.pwrite(fd, b"B" * 10, 990)
            os.close(fd)
        else:
            sys.exit("unknown command " + cmd)
    except OSError as e:
        fail(e.errno)


main()
