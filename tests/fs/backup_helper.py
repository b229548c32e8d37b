#!/usr/bin/python3
"""Helpers of test_backup.sh, for what bash does badly (names with newlines, offsets, bytes).

    backup_helper.py list DIR [--seconds] [--no-link-times]
                                            one line per entry, the root "." included: path
                                            (repr), type, mode, mtime (ns, or whole seconds;
                                            none for symlinks with --no-link-times), size and
                                            sha256 (files), target (symlinks)
    backup_helper.py make DIR NDIRS NFILES SIZE [NBIG BIGSIZE]
                                            creates NFILES files of SIZE bytes spread over NDIRS
                                            directories, and NBIG files of BIGSIZE, with 32
                                            threads (so the node commits them in groups)
    backup_helper.py writer DIR [STOP]      until file STOP exists: writes DIR/a, then DIR/b, then appends a
                                            line to DIR/log, each with one write and a close
                                            (so each is one committed change), the round's
                                            number in each
    backup_helper.py globals TAR            the pax global header of TAR, "key=value" lines
    backup_helper.py extract TAR DIR        extracts TAR into DIR with Python's tarfile
    backup_helper.py members TAR            the number of members TAR holds
    backup_helper.py chunks FILE            reads FILE through several descriptors, each with
                                            another read size (the first 5000 bytes of one
                                            byte at a time), then at random offsets (pread)
                                            of one descriptor; fails unless every way gives
                                            the same archive (the global header aside)
    backup_helper.py rss-read FILE PID      reads FILE in 128 KiB reads, sampling PID's VmRSS;
                                            prints "BASE PEAK BYTES" (RSS in KiB before the
                                            open and its peak while the file is open)
"""

import hashlib
import os
import random
import stat
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor


def listing(root, seconds=False, link_times=True):
    out = []

    def walk(path, rel):
        st = os.lstat(path)
        mtime = st.st_mtime_ns // 10**9 if seconds else st.st_mtime_ns
        if stat.S_ISDIR(st.st_mode):
            out.append("%r d %o %d" % (rel, stat.S_IMODE(st.st_mode), mtime))
            for name in sorted(os.listdir(path)):
                walk(os.path.join(path, name), name if rel == "." else rel + "/" + name)
        elif stat.S_ISLNK(st.st_mode):
            out.append("%r l %s %r" % (rel, mtime if link_times else "-", os.readlink(path)))
        else:
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()[:16]
            out.append("%r f %o %d %d %s" % (rel, stat.S_IMODE(st.st_mode), mtime, st.st_size,
                                             digest))

    walk(root, ".")
    return "\n".join(out)


def make(root, ndirs, nfiles, size, nbig=0, bigsize=0):
    for d in range(ndirs):
        os.mkdir(os.path.join(root, "d%03d" % d))

    def one(i):
        if i < nfiles:
            path = os.path.join(root, "d%03d" % (i % ndirs), "k%06d" % i)
            data = (b"%06d" % i) * (size // 6 + 1)
            data = data[:size]
        else:
            path = os.path.join(root, "big%03d" % (i - nfiles))
            data = os.urandom(bigsize)
        with open(path, "wb") as f:
            f.write(data)

    with ThreadPoolExecutor(32) as ex:
        list(ex.map(one, range(nfiles + nbig)))


def writer(root, stop=None):
    i = 0
    while stop is None or not os.path.exists(stop):
        i += 1
        for name, mode in (("a", "wb"), ("b", "wb"), ("log", "ab")):
            with open(os.path.join(root, name), mode) as f:
                f.write(b"%d\n" % i)


def global_header_len(data):
    """Bytes of the pax global header at the start of an archive."""
    assert data[156:157] == b"g", "the archive does not start with a pax global header"
    size = int(data[124:135], 8)
    return 512 + (size + 511) // 512 * 512


def read_all(path, chunk, limit=None):
    fd = os.open(path, os.O_RDONLY)
    try:
        parts = []
        n = 0
        while limit is None or n < limit:
            b = os.read(fd, chunk)
            if not b:
                break
            parts.append(b)
            n += len(b)
        return b"".join(parts)
    finally:
        os.close(fd)


def chunks(path):
    ref = read_all(path, 65536)
    g = global_header_len(ref)
    start = read_all(path, 1, 5000)
    if start[global_header_len(start):] != ref[g:5000]:
        sys.exit("reads of 1 byte gave another start of the archive")
    for chunk in (511, 4097, 1 << 20):
        data = read_all(path, chunk)
        if data[global_header_len(data):] != ref[g:]:
            sys.exit("reads of %d bytes gave another archive (%d bytes, not %d)"
                     % (chunk, len(data), len(ref)))
    fd = os.open(path, os.O_RDONLY)
    try:
        # Everything in a random order, through one descriptor (no write meanwhile: the
        # archive has the same length).
        data = bytearray(len(ref))
        pieces = list(range(0, len(data), 3000))
        random.Random(7).shuffle(pieces)
        for off in pieces:
            b = os.pread(fd, 3000, off)
            data[off:off + len(b)] = b
        if bytes(data[global_header_len(data):]) != ref[g:]:
            sys.exit("reads at random offsets gave another archive")
        if os.pread(fd, 100, len(data)) != b"" or os.pread(fd, 100, len(data) + 12345) != b"":
            sys.exit("a read past the end returned bytes")
    finally:
        os.close(fd)
    print("%d bytes the same in every way" % len(ref))


def vmrss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("no VmRSS for %d" % pid)


def rss_read(path, pid):
    base = vmrss(pid)
    peak = base
    total = 0
    fd = os.open(path, os.O_RDONLY)
    try:
        n = 0
        while True:
            b = os.read(fd, 131072)
            if not b:
                break
            total += len(b)
            n += 1
            if n % 16 == 0:
                peak = max(peak, vmrss(pid))
        peak = max(peak, vmrss(pid))
    finally:
        os.close(fd)
    print(base, peak, total)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "list":
        print(listing(args[0], "--seconds" in args, "--no-link-times" not in args))
    elif cmd == "make":
        make(args[0], *map(int, args[1:]))
    elif cmd == "writer":
        writer(args[0], args[1] if len(args) > 1 else None)
    elif cmd == "globals":
        with tarfile.open(args[0]) as t:
            t.getmembers()
            for k, v in sorted(t.pax_headers.items()):
                print("%s=%s" % (k, v))
    elif cmd == "extract":
        with tarfile.open(args[0]) as t:
            if hasattr(tarfile, "fully_trusted_filter"):
                t.extractall(args[1], filter="fully_trusted")
            else:
                t.extractall(args[1])
    elif cmd == "members":
        with tarfile.open(args[0]) as t:
            print(len(t.getmembers()))
    elif cmd == "chunks":
        chunks(args[0])
    elif cmd == "rss-read":
        rss_read(args[0], int(args[1]))
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
