#!/usr/bin/env python3
"""Extended-attribute system calls for test_xattr.sh, with the errno name on failure.

    xattr_helper.py set PATH NAME VALUE [create|replace]   setxattr(2) with those flags
    xattr_helper.py setsize PATH NAME SIZE                  a value of SIZE bytes 'v'
    xattr_helper.py get PATH NAME [BUFSIZE]                 getxattr(2) into a buffer of BUFSIZE
                                                            (default: ask the size first)
    xattr_helper.py size PATH NAME                          getxattr(2) with size 0: the size
    xattr_helper.py list PATH [BUFSIZE]                     listxattr(2), names one a line
    xattr_helper.py remove PATH NAME
    xattr_helper.py unlinked PATH NAME                      opens PATH, unlinks it, then
                                                            fgetxattr(NAME) on the descriptor
Prints what it read; exits 1 printing only the errno name (EEXIST ...) when the call fails.
"""
import ctypes
import errno
import os
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.getxattr.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
libc.getxattr.restype = ctypes.c_ssize_t
libc.listxattr.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
libc.listxattr.restype = ctypes.c_ssize_t


def fail(e):
    print(errno.errorcode.get(e, str(e)))
    sys.exit(1)


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    try:
        if cmd == "set":
            flags = {"": 0, "create": os.XATTR_CREATE, "replace": os.XATTR_REPLACE}[
                sys.argv[5] if len(sys.argv) > 5 else ""]
            os.setxattr(path, sys.argv[3], sys.argv[4].encode(), flags, follow_symlinks=False)
        elif cmd == "setsize":
            os.setxattr(path, sys.argv[3], b"v" * int(sys.argv[4]))
        elif cmd == "size":
            n = libc.getxattr(path.encode(), sys.argv[3].encode(), None, 0)
            if n < 0:
                fail(ctypes.get_errno())
            print(n)
        elif cmd in ("get", "list"):
            p = path.encode()
            name = sys.argv[3].encode() if cmd == "get" else None
            args = [3, 4] if cmd == "get" else [3]
            size = int(sys.argv[args[-1]]) if len(sys.argv) > args[-1] else -1
            call = (lambda b, n: libc.getxattr(p, name, b, n)) if cmd == "get" else \
                (lambda b, n: libc.listxattr(p, b, n))
            if size < 0:
                size = call(None, 0)
                if size < 0:
                    fail(ctypes.get_errno())
            buf = ctypes.create_string_buffer(max(size, 1))
            n = call(buf, size)
            if n < 0:
                fail(ctypes.get_errno())
            data = buf.raw[:n]
            if cmd == "get":
                sys.stdout.write(data.decode(errors="replace"))
            else:
                for nm in data.split(b"\0")[:-1]:
                    print(nm.decode())
        elif cmd == "remove":
            os.removexattr(path, sys.argv[3], follow_symlinks=False)
        elif cmd == "unlinked":
            fd = os.open(path, os.O_RDONLY)
            os.unlink(path)
            sys.stdout.write(os.getxattr(fd, sys.argv[3]).decode())
            os.close(fd)
        else:
            sys.exit("unknown command " + cmd)
    except OSError as e:
        fail(e.errno)


main()
