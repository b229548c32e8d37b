#!/usr/bin/env bash
# A full disk, for real: the data directory is a 1 MiB tmpfs. A write that does not fit fails at
# close() with ENOSPC ("No space left on device") and leaves nothing behind; everything
# acknowledged before is intact and readable; once there is room again (the tmpfs grows) the same
# node takes writes again, without a restart; and after a restart everything acknowledged is there.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

D=$(kvfs_dir a)
mkdir -p "$D/data"
mount -t tmpfs -o size=1m kvfs-test-full "$D/data"
kvfs_start a --segment-bytes 65536
M=$(kvfs_mnt a)

# Fill the disk with 40 KB values until one does not fit.
n=0
err=""
while ((n < 100)); do
	head -c 40000 /dev/urandom >"$T/ref$n"
	if ! err=$(cp "$T/ref$n" "$M/f$n" 2>&1); then
		break
	fi
	n=$((n + 1))
done
lib_log "acknowledged $n values before the disk was full"
check "some values fit before the disk filled" test "$n" -gt 5
check "the disk did fill up" test "$n" -lt 100
assert_match "the failed write says why" "No space left on device" "$err"

ok=1
for ((i = 0; i < n; i++)); do
	cmp -s "$T/ref$i" "$M/f$i" || ok=0
done
check "every acknowledged value is intact on the full disk" test "$ok" = 1
size=$(stat -c %s "$M/f$n" 2>/dev/null || echo missing)
check "the value that did not fit left nothing of its bytes" test "$size" = 0 -o "$size" = missing
check "/.status still answers" grep -q "^role: standalone" "$M/.status"
expect_error "a second write on the full disk fails the same way" "No space left on device" \
	cp "$T/ref0" "$M/again"

# Two descriptors share a file's write buffer: A's close commits B's bytes too. When that
# commit fails, B's close must say so rather than return 0 for bytes that are gone.
out=$(cd "$M" && python3 - <<'PY' 2>&1
import errno, os
a = os.open("shared", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
b = os.open("shared", os.O_WRONLY)
os.pwrite(b, os.urandom(100000), 0)
try:
    os.close(a)
    print("close(A) succeeded on a full disk")
except OSError as e:
    if e.errno != errno.ENOSPC:
        print("close(A): %s" % e)
try:
    os.close(b)
    print("close(B) returned 0 although its bytes were not written")
except OSError as e:
    print("ok" if e.errno == errno.ENOSPC else "close(B): %s" % e)
PY
)
assert_eq "a writer whose bytes another descriptor's failed commit carried hears ENOSPC" ok "$out"

mount -o remount,size=8m "$D/data"
check "with room again, writes work without a restart" cp "$T/ref0" "$M/after"
assert_same_file "the new value reads back" "$T/ref0" "$M/after"

check "clean stop" kvfs_stop a
kvfs_start a
ok=1
for ((i = 0; i < n; i++)); do
	cmp -s "$T/ref$i" "$M/f$i" || ok=0
done
check "after a restart every acknowledged value is intact" test "$ok" = 1
assert_same_file "and the one written after the disk had room" "$T/ref0" "$M/after"

lib_finish
