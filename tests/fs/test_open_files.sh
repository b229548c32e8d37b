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

pycase "EFBIG after an fsync keeps what the fsync acknowledged" <<'PY'
import errno, os
fd = os.open("f3", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
os.write(fd, b"synced\n")
os.fsync(fd)
try:
    os.write(fd, b"z" * 2000000)
except OSError as e:
    assert e.errno == errno.EFBIG, e
try:
    os.close(fd)
except OSError as e:
    assert e.errno == errno.EFBIG, e
got = open("f3").read()
assert got == "synced\n", "after the EFBIG: %r" % got
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
assert_eq "after a restart, the fsynced bytes survived the EFBIG" "synced" "$(cat "$M/f3")"

lib_finish
