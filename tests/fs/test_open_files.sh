#!/usr/bin/env bash
# Open files that outlive other changes, on a real mount: the cases where a write buffer shared
# by several descriptors, an append, a failed write or an unlink meet. Each case is what a local
# filesystem does, and what kvfs must do without losing an acknowledged byte.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

kvfs_start a --max-value 1048576
M=$(kvfs_mnt a)

# Each case runs as a small Python program (exact syscalls) and prints "ok" or why not.
pycase() {
	local name=$1
	shift
	local out
	out=$(cd "$M" && python3 - "$@" 2>&1) || true
	if [[ "$out" == "ok" ]]; then
		lib_pass "$name"
	else
		lib_fail "$name" "$out"
	fi
}

pycase "an append lands while another descriptor is open: reads show it, a later write keeps it" <<'PY'
import os
open("f1", "w").write("old\n")
fd = os.open("f1", os.O_RDWR)
with open("f1", "a") as a:
    a.write("app\n")
got = open("f1").read()
assert got == "old\napp\n", "read after the append: %r" % got
os.pwrite(fd, b"X", 0)
os.close(fd)
got = open("f1").read()
assert got == "Xld\napp\n", "after the other descriptor's write: %r" % got
print("ok")
PY

pycase "EFBIG on one descriptor does not undo what another one's close() acknowledged" <<'PY'
import errno, os
open("f2", "w").write("old\n")
fd1 = os.open("f2", os.O_RDWR)
fd2 = os.open("f2", os.O_RDWR | os.O_TRUNC)
os.write(fd2, b"new\n")
os.close(fd2)
try:
    os.pwrite(fd1, b"z" * 65536, 1048576)
    raise SystemExit("a write past --max-value succeeded")
except OSError as e:
    assert e.errno == errno.EFBIG, e
try:
    os.close(fd1)
except OSError as e:
    assert e.errno == errno.EFBIG, e
got = open("f2").read()
assert got == "new\n", "after the EFBIG: %r" % got
print("ok")
PY

pycase "EFBIG after an fsync keeps what the fsync acknowledged (and what write() said it took)" \
	"$T/f3.want" <<'PY'
import errno, os, sys
fd = os.open("f3", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
os.write(fd, b"synced\n")
os.fsync(fd)
# The kernel sends the rest of the first page alone, then the 1 MiB piece that crosses the limit:
# write() returns the first piece as a short count, and those bytes must stay.
n = 0
try:
    n = os.write(fd, b"z" * 2000000)
    assert 0 < n < 2000000, n
    os.close(fd)
except OSError as e:
    assert e.errno == errno.EFBIG, e
    try:
        os.close(fd)
    except OSError as e:
        assert e.errno == errno.EFBIG, e
want = b"synced\n" + b"z" * n
got = open("f3", "rb").read()
assert got == want, "after the EFBIG: %d bytes, %r..." % (len(got), got[:16])
open(sys.argv[1], "wb").write(want)
print("ok")
PY

# --- --max-value and the kernel's split writes (issue 11) ---------------------------------------
# The kernel (no writeback cache) sends one buffered write() as several WRITE requests: the first
# page alone when the write starts inside a page it has not cached, then pieces of max_write bytes.
# An error on a later piece becomes a short count for the write(). So a write() past the limit
# either fails with EFBIG and changes nothing, or returns a short count, and then what it counted
# is committed by close(), which succeeds; the rest fails with EFBIG, changing nothing more.
# Each case saves what the file must hold in $T, checked again after a restart.

# crossing(): one write() of data at off that crosses the limit, checked as described above; saves
# what the file must hold in want_path and prints "ok".
cat >"$T/efbig.py" <<'PY'
import errno, os

def crossing(path, fd, old, data, off, want_path, append=False):
    try:
        n = os.write(fd, data) if append else os.pwrite(fd, data, off)
    except OSError as e:
        assert e.errno == errno.EFBIG, e
        n = -1
    if n >= 0:
        assert 0 < n < len(data) and off + n <= 1048576, "write() returned %d" % n
        # A program that loops on short writes sends the rest: refused whole, nothing more taken.
        try:
            if append:
                os.write(fd, data[n:])
            else:
                os.pwrite(fd, data[n:], off + n)
            raise SystemExit("the rest past the limit was taken")
        except OSError as e:
            assert e.errno == errno.EFBIG, e
        try:
            os.close(fd)
        except OSError as e:
            raise SystemExit("close() after a short write: %s (the %d bytes write() took are lost)"
                             % (e, n))
        want = old + data[:n]
    else:
        try:
            os.close(fd)
        except OSError as e:
            assert e.errno == errno.EFBIG, e
        want = old
    got = open(path, "rb").read()
    assert got == want, "%s holds %d bytes, not the %d expected (old %d, write() took %d)" % (
        path, len(got), len(want), len(old), n)
    open(want_path, "wb").write(want)
    open(want_path + ".n", "w").write("EFBIG\n" if n < 0 else "%d\n" % n)
    print("ok")

def case(tdir, name, old_len, flags, data_len, off, append=False, cached=False):
    """File NAME holding OLD_LEN random bytes, opened with FLAGS; crossing() of DATA_LEN random
    bytes at OFF. CACHED: read the page the write starts in through the descriptor first."""
    old = os.urandom(old_len)
    if old_len or not flags & os.O_CREAT:
        with open(name, "wb") as f:
            f.write(old)
    fd = os.open(name, flags)
    if cached:
        page = off - off % 4096
        assert os.pread(fd, 8192, page) == old[page:page + 8192]
    crossing(name, fd, old, os.urandom(data_len), off, "%s/%s.want" % (tdir, name), append)
PY

# efbig CASE-ARGS...: one crossing write (efbig.py case()), as a check named DESCRIPTION.
efbig() {
	local desc=$1
	shift
	pycase "$desc" "$T" "$@" <<'PY'
import os, sys
sys.path.insert(0, sys.argv[1])
from efbig import case
name, old_len, flags, data_len, off, extra = (sys.argv[2:] + [""])[:6]
case(sys.argv[1], name, int(old_len), eval(flags, vars(os)), int(data_len), int(off),
     append="append" in extra, cached="cached" in extra)
PY
}

efbig "issue 11: pwrite of 10,890 bytes at 1,042,459 over a 1,042,459-byte file (O_RDWR)" \
	g1 1042459 O_RDWR 10890 1042459

efbig "the same pwrite on O_WRONLY" g2 1042459 O_WRONLY 10890 1042459

efbig "a write() longer than max_write that crosses the limit, on a new file" \
	g3 0 "O_WRONLY|O_CREAT|O_TRUNC" $((1048576 + 8192)) 0

efbig "O_APPEND crossing the limit from mid-page" \
	g4 1042459 "O_WRONLY|O_APPEND" 10890 1042459 append

# (read-write descriptors read through the page cache: the kernel then sends the write whole)
efbig "the same pwrite once the kernel has that page cached (it then sends the write whole)" \
	g8 1042459 O_RDWR 10890 1042459 cached

lib_log "what the crossing write()s returned (g1-g4, g8): $(cat "$T"/g[1-48].want.n | tr '\n' ' ')"

pycase "O_APPEND crossing the limit in one piece: EFBIG, nothing appended" <<'PY'
import errno, os
old = os.urandom(1040384)  # ends on a page boundary: the kernel sends the append whole
with open("g5", "wb") as f:
    f.write(old)
fd = os.open("g5", os.O_WRONLY | os.O_APPEND)
try:
    os.write(fd, b"a" * 10000)
    raise SystemExit("an append past --max-value succeeded")
except OSError as e:
    assert e.errno == errno.EFBIG, e
try:
    os.close(fd)
except OSError as e:
    assert e.errno == errno.EFBIG, e
assert open("g5", "rb").read() == old, "the append changed the file"
print("ok")
PY

pycase "a write() within the limit, then one past it: EFBIG, and the file is as it was" <<'PY'
import errno, os
open("g6", "w").write("old\n")
fd = os.open("g6", os.O_RDWR)
assert os.pwrite(fd, b"new", 0) == 3
try:
    os.pwrite(fd, b"z" * 8192, 1048576 - 4096)
    raise SystemExit("a write past --max-value succeeded")
except OSError as e:
    assert e.errno == errno.EFBIG, e
# DESIGN 1: nothing of that file is changed; close() reports the EFBIG (the program saw it too).
try:
    os.close(fd)
    raise SystemExit("close() after the EFBIG succeeded")
except OSError as e:
    assert e.errno == errno.EFBIG, e
got = open("g6").read()
assert got == "old\n", "after the EFBIG: %r" % got
print("ok")
PY

pycase "truncate and ftruncate past the limit: EFBIG, unchanged" <<'PY'
import errno, os
open("g7", "w").write("small\n")
for how in ("truncate", "ftruncate"):
    try:
        if how == "truncate":
            os.truncate("g7", 1048577)
        else:
            fd = os.open("g7", os.O_RDWR)
            try:
                os.ftruncate(fd, 1048577)
            finally:
                os.close(fd)
        raise SystemExit(how + " past --max-value succeeded")
    except OSError as e:
        assert e.errno == errno.EFBIG, (how, e)
    assert open("g7").read() == "small\n", how
os.truncate("g7", 1048576)
assert os.stat("g7").st_size == 1048576
print("ok")
PY

pycase "writing to a file removed while open: fsync and close succeed, as on a local disk" <<'PY'
import os
fd = os.open("f4", os.O_RDWR | os.O_CREAT)
os.unlink("f4")
os.write(fd, b"scratch\n")
os.fsync(fd)
assert os.pread(fd, 100, 0) == b"scratch\n"
os.close(fd)
assert not os.path.exists("f4")
print("ok")
PY

pycase "a file replaced by rename while a writer has it open: the writer's close succeeds" <<'PY'
import os
open("f5", "w").write("first\n")
fd = os.open("f5", os.O_WRONLY)
open("f5.tmp", "w").write("second\n")
os.rename("f5.tmp", "f5")
os.write(fd, b"late\n")
os.close(fd)
got = open("f5").read()
assert got == "second\n", "the renamed-in file: %r" % got
print("ok")
PY

pycase "O_APPEND|O_TRUNC truncates first" <<'PY'
import os
open("f6", "w").write("old\n")
fd = os.open("f6", os.O_WRONLY | os.O_APPEND | os.O_TRUNC)
os.write(fd, b"new\n")
os.close(fd)
got = open("f6").read()
assert got == "new\n", repr(got)
print("ok")
PY

pycase "write, futimens, close keeps the time that was set" <<'PY'
import os
fd = os.open("f7", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
os.write(fd, b"x")
os.utime(fd, (981173106, 981173106))
os.close(fd)
st = os.stat("f7")
assert int(st.st_mtime) == 981173106, st.st_mtime
assert open("f7").read() == "x"
print("ok")
PY

pycase "two descriptors: the second close() waits for the commit that carries its bytes" <<'PY'
import os
fd1 = os.open("f8", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
fd2 = os.open("f8", os.O_WRONLY)
os.pwrite(fd2, b"from fd2\n", 0)
os.close(fd1)   # commits fd2's bytes too
os.close(fd2)   # nothing of its own left to write, but must not return before that commit
assert open("f8").read() == "from fd2\n"
print("ok")
PY

check "clean stop" kvfs_stop a
kvfs_start a
assert_eq "after a restart, the append case kept every byte" "$(printf 'Xld\napp\n')" "$(cat "$M/f1")"
assert_eq "after a restart, the acknowledged value survived the other EFBIG" "new" "$(cat "$M/f2")"
check "after a restart, the fsynced bytes and what write() took survived the EFBIG" \
	cmp -s "$T/f3.want" "$M/f3"
for g in g1 g2 g3 g4 g8; do
	check "after a restart, $g holds what write() said it took" cmp -s "$T/$g.want" "$M/$g"
done

lib_finish
