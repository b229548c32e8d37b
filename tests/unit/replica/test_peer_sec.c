/*
 * Peer security (peer_sec.c): the handshake between two ends fed each other's bytes in every
 * chunking, a wrong secret, another cluster, a stranger, a replayed handshake, wrong ids, key
 * rotation; sealed records through the frame reader (tampered, replayed, reordered, wrong
 * direction); random bytes fed to the handshake decoder; and secret files (secret_file.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../xorshift.h"
#include "kvfs/frame.h"
#include "kvfs/peer_sec.h"
#include "kvfs/secret_file.h"

static const char *cluster = "0123456789abcdef0123456789abcdef";

static void keys_from(struct kvfs_sec_keys *k, char fill)
{
	uint8_t secret[40];

	memset(k, 0, sizeof(*k));
	memset(secret, fill, sizeof(secret));
	assert_int_equal(sec_keys_add(k, secret, sizeof(secret)), 0);
}

/*
 * Runs a handshake between initiator a and responder b, moving output in chunks of `chunk` bytes
 * until both are done or one fails. Returns a's result in *ra and b's in *rb (1 done, <0 failed,
 * 0 stuck).
 */
static void run(struct kvfs_handshake *a, struct kvfs_handshake *b, size_t chunk, int *ra, int *rb)
{
	uint8_t qa[256], qb[256]; /* bytes in flight a->b, b->a */
	size_t na = 0, nb = 0, used;
	int steps;

	*ra = *rb = 0;
	na = hs_take_output(a, qa);
	nb = hs_take_output(b, qb);
	for (steps = 0; steps < 1000 && (*ra == 0 || *rb == 0); steps++) {
		size_t n;

		if (na == 0 && nb == 0)
			break;
		if (na > 0 && *rb == 0) {
			n = na < chunk ? na : chunk;
			*rb = hs_feed(b, qa, n, &used);
			assert_true(*rb < 0 || used == n);
			memmove(qa, qa + n, na - n);
			na -= n;
			nb += hs_take_output(b, qb + nb);
		} else if (na > 0) {
			na = 0;
		}
		if (nb > 0 && *ra == 0) {
			n = nb < chunk ? nb : chunk;
			*ra = hs_feed(a, qb, n, &used);
			assert_true(*ra < 0 || used == n);
			memmove(qb, qb + n, nb - n);
			nb -= n;
			na += hs_take_output(a, qa + na);
		} else if (nb > 0) {
			nb = 0;
		}
	}
}

static void test_handshake_ok_any_chunking(void **state)
{
	struct kvfs_sec_keys k;
	struct kvfs_handshake a, b;
	int ra, rb;

	(void)state;
	keys_from(&k, 'x');
	for (size_t chunk = 1; chunk <= 64; chunk++) {
		hs_start(&a, &k, cluster, 3, 1, 2);
		hs_start(&b, &k, cluster, 3, 2, 0);
		run(&a, &b, chunk, &ra, &rb);
		assert_int_equal(ra, 1);
		assert_int_equal(rb, 1);
		assert_int_equal(a.peer, 2);
		assert_int_equal(b.peer, 1);
		assert_memory_equal(a.tx.key, b.rx.key, KVFS_SEC_KEY_BYTES);
		assert_memory_equal(a.rx.key, b.tx.key, KVFS_SEC_KEY_BYTES);
		assert_memory_not_equal(a.tx.key, a.rx.key, KVFS_SEC_KEY_BYTES);
	}
}

static void test_handshake_fresh_keys_each_time(void **state)
{
	struct kvfs_sec_keys k;
	struct kvfs_handshake a, b, a2, b2;
	int ra, rb;

	(void)state;
	keys_from(&k, 'x');
	hs_start(&a, &k, cluster, 3, 1, 2);
	hs_start(&b, &k, cluster, 3, 2, 0);
	run(&a, &b, 64, &ra, &rb);
	hs_start(&a2, &k, cluster, 3, 1, 2);
	hs_start(&b2, &k, cluster, 3, 2, 0);
	run(&a2, &b2, 64, &ra, &rb);
	assert_int_equal(ra, 1);
	assert_memory_not_equal(a.tx.key, a2.tx.key, KVFS_SEC_KEY_BYTES);
}

static void test_wrong_secret(void **state)
{
	struct kvfs_sec_keys k1, k2;
	struct kvfs_handshake a, b;
	int ra, rb;

	(void)state;
	keys_from(&k1, 'x');
	keys_from(&k2, 'y');
	hs_start(&a, &k1, cluster, 3, 1, 2);
	hs_start(&b, &k2, cluster, 3, 2, 0);
	run(&a, &b, 64, &ra, &rb);
	assert_int_equal(rb, -EACCES);
	assert_int_not_equal(ra, 1); /* b never answered message 3 */
	assert_int_equal(b.state, KVFS_HS_FAILED);
}

static void test_other_cluster(void **state)
{
	struct kvfs_sec_keys k;
	struct kvfs_handshake a, b;
	int ra, rb;

	(void)state;
	keys_from(&k, 'x');
	hs_start(&a, &k, cluster, 3, 1, 2);
	hs_start(&b, &k, "fedcba9876543210fedcba9876543210", 3, 2, 0);
	run(&a, &b, 64, &ra, &rb);
	assert_int_equal(rb, -EACCES);
}

static void test_rotation(void **state)
{
	struct kvfs_sec_keys old_only, both, new_only;
	uint8_t s_old[32], s_new[32];
	struct kvfs_handshake a, b;
	int ra, rb;

	(void)state;
	memset(s_old, 'o', sizeof(s_old));
	memset(s_new, 'n', sizeof(s_new));
	memset(&old_only, 0, sizeof(old_only));
	memset(&both, 0, sizeof(both));
	memset(&new_only, 0, sizeof(new_only));
	assert_int_equal(sec_keys_add(&old_only, s_old, 32), 0);
	assert_int_equal(sec_keys_add(&new_only, s_new, 32), 0);
	assert_int_equal(sec_keys_add(&both, s_new, 32), 0);
	assert_int_equal(sec_keys_add(&both, s_old, 32), 0);
	assert_int_equal(sec_keys_add(&both, s_old, 32), -ENOSPC);
	assert_int_equal(sec_keys_add(&new_only, s_old, 31), -EINVAL);

	/* A node holding both accepts a peer dialing with either. */
	hs_start(&a, &old_only, cluster, 3, 1, 2);
	hs_start(&b, &both, cluster, 3, 2, 0);
	run(&a, &b, 64, &ra, &rb);
	assert_int_equal(ra, 1);
	assert_int_equal(rb, 1);
	assert_int_equal(b.key_index, 1);
	hs_start(&a, &new_only, cluster, 3, 1, 2);
	hs_start(&b, &both, cluster, 3, 2, 0);
	run(&a, &b, 64, &ra, &rb);
	assert_int_equal(ra, 1);
	assert_int_equal(b.key_index, 0);
	/* It dials with its first key. */
	hs_start(&a, &both, cluster, 3, 1, 2);
	hs_start(&b, &new_only, cluster, 3, 2, 0);
	run(&a, &b, 64, &ra, &rb);
	assert_int_equal(ra, 1);
	hs_start(&a, &both, cluster, 3, 1, 2);
	hs_start(&b, &old_only, cluster, 3, 2, 0);
	run(&a, &b, 64, &ra, &rb);
	assert_int_equal(rb, -EACCES);
}

static void test_wrong_ids(void **state)
{
	struct kvfs_sec_keys k;
	struct kvfs_handshake a, b;
	int ra, rb;

	(void)state;
	keys_from(&k, 'x');
	/* a dialed node 3, but node 2 answers. */
	hs_start(&a, &k, cluster, 3, 1, 3);
	hs_start(&b, &k, cluster, 3, 2, 0);
	run(&a, &b, 64, &ra, &rb);
	assert_int_equal(rb, -ENXIO);
	/* a claims our own id. */
	hs_start(&a, &k, cluster, 3, 2, 2);
	hs_start(&b, &k, cluster, 3, 2, 0);
	run(&a, &b, 64, &ra, &rb);
	assert_int_equal(rb, -ENXIO);
	/* a claims an id outside the cluster. */
	hs_start(&a, &k, cluster, 9, 7, 2);
	hs_start(&b, &k, cluster, 3, 2, 0);
	run(&a, &b, 64, &ra, &rb);
	assert_int_equal(rb, -ENXIO);
}

static void test_stranger_and_insecure_peer(void **state)
{
	static const uint8_t frame_hello[] = {'K', 'V', 'F', 'S', 1, 0, 0, 0};
	static const uint8_t http[] = "GET / HTTP/1.0\r\n\r\n";
	struct kvfs_sec_keys k;
	struct kvfs_handshake b;
	size_t used;

	(void)state;
	keys_from(&k, 'x');
	hs_start(&b, &k, cluster, 3, 2, 0);
	assert_int_equal(hs_feed(&b, http, sizeof(http) - 1, &used), -EPROTO);
	assert_true(used <= sizeof(http) - 1);
	hs_start(&b, &k, cluster, 3, 2, 0);
	assert_int_equal(hs_feed(&b, frame_hello, sizeof(frame_hello), &used), -EPROTO);
	/* After failing it stays failed. */
	assert_int_equal(hs_feed(&b, frame_hello, 1, &used), -EPROTO);
}

/* What a node without keys sees first tells a message 1 from a bare frame (both open "KVFS"). */
static void test_looks_like_m1(void **state)
{
	static const uint8_t frame_hello[] = {'K', 'V', 'F', 'S', 1, 0, 0, 0};
	struct kvfs_sec_keys k;
	struct kvfs_handshake a;
	uint8_t m1[sizeof(a.out)];
	size_t n;

	(void)state;
	keys_from(&k, 'x');
	hs_start(&a, &k, cluster, 3, 1, 2);
	n = hs_take_output(&a, m1);
	assert_int_equal(n, KVFS_SEC_M1_BYTES);
	for (size_t len = 5; len <= n; len++)
		assert_true(sec_looks_like_m1(m1, len));
	for (size_t len = 0; len <= 4; len++) /* "KVFS" alone could be a frame */
		assert_false(sec_looks_like_m1(m1, len));
	assert_false(sec_looks_like_m1(frame_hello, sizeof(frame_hello)));
	assert_false(sec_looks_like_m1((const uint8_t *)"GET / HTTP/1.0", 14));
	hs_wipe(&a);
}

/* A captured initiator's messages, replayed to a responder, do not open: its key is fresh. */
static void test_replayed_handshake(void **state)
{
	struct kvfs_sec_keys k;
	struct kvfs_handshake a, b, b2;
	uint8_t from_a[128], buf[128];
	size_t na, used;
	int rv;

	(void)state;
	keys_from(&k, 'x');
	hs_start(&a, &k, cluster, 3, 1, 2);
	hs_start(&b, &k, cluster, 3, 2, 0);
	na = hs_take_output(&a, from_a); /* message 1 */
	hs_take_output(&b, buf);
	assert_int_equal(hs_feed(&a, buf, KVFS_SEC_M1_BYTES, &used), 0);
	na += hs_take_output(&a, from_a + na); /* message 2 */
	assert_int_equal(na, KVFS_SEC_M1_BYTES + KVFS_SEC_AUTH_BYTES);
	assert_int_equal(hs_feed(&b, from_a, na, &used), 1); /* the real exchange works */

	hs_start(&b2, &k, cluster, 3, 2, 0);
	rv = hs_feed(&b2, from_a, na, &used);
	assert_int_equal(rv, -EACCES);
	assert_int_equal(hs_take_output(&b2, buf), 0); /* nothing after its message 1 */
}

/* A degenerate public key (a low-order point) is refused. */
static void test_degenerate_key(void **state)
{
	struct kvfs_sec_keys k;
	struct kvfs_handshake a;
	uint8_t m1[KVFS_SEC_M1_BYTES] = {'K', 'V', 'F', 'S', '-', 'H', 'S', '1'};
	size_t used;

	(void)state;
	keys_from(&k, 'x');
	hs_start(&a, &k, cluster, 3, 1, 2);
	assert_int_equal(hs_feed(&a, m1, sizeof(m1), &used), -EBADMSG); /* all-zero key */
}

/* Random bytes never make a handshake succeed, crash it or read past what was fed (ASan). */
static void test_fuzz_handshake(void **state)
{
	struct kvfs_sec_keys k;
	struct kvfs_handshake b, a;
	uint64_t rng = 42;
	uint8_t buf[256], real[128];
	size_t used, n;

	(void)state;
	keys_from(&k, 'x');
	for (int i = 0; i < 20000; i++) {
		int rv;

		hs_start(&b, &k, cluster, 3, 2, 0);
		n = xorshift64s(&rng) % sizeof(buf);
		for (size_t j = 0; j < n; j++)
			buf[j] = (uint8_t)xorshift64s(&rng);
		/* Often a valid message 1 first, so that message 2's decoder gets random bytes. */
		if (i % 2 == 0 && n >= KVFS_SEC_M1_BYTES) {
			hs_start(&a, &k, cluster, 3, 1, 2);
			hs_take_output(&a, real);
			memcpy(buf, real, KVFS_SEC_M1_BYTES);
		}
		rv = hs_feed(&b, buf, n, &used);
		assert_true(rv <= 0);
		assert_true(used <= n);
	}
}

/* ---- records ---- */

struct chan {
	struct kvfs_sec_dir tx, rx;
};

static int open_cb(void *arg, uint8_t *rec, uint32_t L)
{
	return sec_open(&((struct chan *)arg)->rx, rec, L);
}

static void pair(struct chan *x, struct chan *y)
{
	struct kvfs_sec_keys k;
	struct kvfs_handshake a, b;
	int ra, rb;

	keys_from(&k, 'x');
	hs_start(&a, &k, cluster, 3, 1, 2);
	hs_start(&b, &k, cluster, 3, 2, 0);
	run(&a, &b, 64, &ra, &rb);
	assert_int_equal(ra, 1);
	x->tx = a.tx;
	x->rx = a.rx;
	y->tx = b.tx;
	y->rx = b.rx;
}

/* Seals a frame of type t with payload p (n bytes) into out; returns its size. */
static size_t seal(struct chan *c, uint8_t *out, uint8_t t, const char *p, uint32_t n)
{
	assert_int_equal(frame_encode(out + KVFS_SEC_LEN_BYTES, t, p, n), 0);
	assert_int_equal(sec_seal(&c->tx, out, KVFS_FRAME_HEADER + n), 0);
	return KVFS_SEC_OVERHEAD + KVFS_FRAME_HEADER + n;
}

static void test_records_roundtrip(void **state)
{
	struct chan x, y;
	struct kvfs_frame_reader r;
	struct kvfs_frame f;
	uint8_t wire[4096];
	size_t n = 0;

	(void)state;
	pair(&x, &y);
	frame_reader_init(&r);
	frame_reader_set_opener(&r, open_cb, &y);
	n += seal(&x, wire + n, 7, "hello", 5);
	n += seal(&x, wire + n, 8, NULL, 0);
	n += seal(&x, wire + n, 9, "world!", 6);
	/* byte by byte */
	for (size_t i = 0; i < n; i++)
		assert_int_equal(frame_reader_feed(&r, wire + i, 1), 0);
	assert_int_equal(frame_reader_next(&r, &f), 1);
	assert_int_equal(f.type, 7);
	assert_int_equal(f.len, 5);
	assert_memory_equal(f.payload, "hello", 5);
	assert_int_equal(frame_reader_next(&r, &f), 1);
	assert_int_equal(f.type, 8);
	assert_int_equal(f.len, 0);
	assert_int_equal(frame_reader_next(&r, &f), 1);
	assert_int_equal(f.type, 9);
	assert_memory_equal(f.payload, "world!", 6);
	assert_int_equal(frame_reader_next(&r, &f), 0);
	frame_reader_free(&r);
}

static void expect_violation(struct chan *y, const uint8_t *wire, size_t n, int err);

/* Several frames in one record (queued together) come out one by one; a record that ends inside
 * a frame is refused. */
static void test_records_with_several_frames(void **state)
{
	struct chan x, y, yy;
	struct kvfs_frame_reader r;
	struct kvfs_frame f;
	uint8_t wire[512];
	size_t n = KVFS_SEC_LEN_BYTES;

	(void)state;
	pair(&x, &y);
	yy = y;
	assert_int_equal(frame_encode(wire + n, 1, "a", 1), 0);
	n += KVFS_FRAME_HEADER + 1;
	assert_int_equal(frame_encode(wire + n, 2, NULL, 0), 0);
	n += KVFS_FRAME_HEADER;
	assert_int_equal(frame_encode(wire + n, 3, "ccc", 3), 0);
	n += KVFS_FRAME_HEADER + 3;
	assert_int_equal(sec_seal(&x.tx, wire, (uint32_t)(n - KVFS_SEC_LEN_BYTES)), 0);
	n += KVFS_SEC_TAG_BYTES;
	n += seal(&x, wire + n, 4, "dd", 2); /* a second record, one frame */

	frame_reader_init(&r);
	frame_reader_set_opener(&r, open_cb, &y);
	for (size_t i = 0; i < n; i += 7)
		assert_int_equal(frame_reader_feed(&r, wire + i, n - i < 7 ? n - i : 7), 0);
	for (uint8_t t = 1; t <= 4; t++) {
		assert_int_equal(frame_reader_next(&r, &f), 1);
		assert_int_equal(f.type, t);
	}
	assert_int_equal(frame_reader_next(&r, &f), 0);
	frame_reader_free(&r);

	/* A record whose last frame claims more bytes than the record holds. */
	{
		struct chan z;
		uint8_t bad[128];
		size_t m = KVFS_SEC_LEN_BYTES;

		pair(&z, &yy);
		assert_int_equal(frame_encode(bad + m, 1, "abcdef", 6), 0);
		m += KVFS_FRAME_HEADER + 3; /* cut in the middle of the payload */
		assert_int_equal(sec_seal(&z.tx, bad, (uint32_t)(m - KVFS_SEC_LEN_BYTES)), 0);
		m += KVFS_SEC_TAG_BYTES;
		expect_violation(&yy, bad, m, -EPROTO);
	}
}

/* Each violation is fatal to the reader (sticky), and is reported as the kind it is. */
static void expect_violation(struct chan *y, const uint8_t *wire, size_t n, int err)
{
	struct kvfs_frame_reader r;
	struct kvfs_frame f;
	int rv;

	frame_reader_init(&r);
	frame_reader_set_opener(&r, open_cb, y);
	assert_int_equal(frame_reader_feed(&r, wire, n), 0);
	do
		rv = frame_reader_next(&r, &f);
	while (rv == 1);
	assert_int_equal(rv, err);
	assert_int_equal(frame_reader_next(&r, &f), err);
	frame_reader_free(&r);
}

static void test_records_tampered_replayed_reordered(void **state)
{
	struct chan x, y;
	uint8_t r1[64], r2[64], wire[256];
	size_t n1, n2;

	(void)state;
	pair(&x, &y);
	n1 = seal(&x, r1, 7, "one", 3);
	n2 = seal(&x, r2, 7, "two", 3);

	/* a flipped bit anywhere after the length */
	for (size_t i = KVFS_SEC_LEN_BYTES; i < n1; i++) {
		struct chan yy = y;

		memcpy(wire, r1, n1);
		wire[i] ^= 0x10;
		expect_violation(&yy, wire, n1, -EBADMSG);
	}
	/* replayed: r1 twice */
	{
		struct chan yy = y;

		memcpy(wire, r1, n1);
		memcpy(wire + n1, r1, n1);
		expect_violation(&yy, wire, 2 * n1, -EBADMSG);
	}
	/* reordered: r2 before r1 */
	{
		struct chan yy = y;

		memcpy(wire, r2, n2);
		memcpy(wire + n2, r1, n1);
		expect_violation(&yy, wire, n1 + n2, -EBADMSG);
	}
	/* reflected: our own record sent back to us */
	{
		struct chan xx = x;

		xx.rx.counter = 0;
		memcpy(wire, r1, n1);
		expect_violation(&xx, wire, n1, -EBADMSG);
	}
	/* a length too small to hold a frame, or beyond the maximum: refused before buffering */
	{
		struct chan yy = y;
		uint8_t small[4] = {5, 0, 0, 0}, huge[4] = {0xff, 0xff, 0xff, 0x7f};

		expect_violation(&yy, small, 4, -EPROTO);
		expect_violation(&yy, huge, 4, -EMSGSIZE);
	}
	/* a bare (unsealed) frame where sealed records are expected */
	{
		struct chan yy = y;

		assert_int_equal(frame_encode(wire, 7, "bare", 4), 0);
		expect_violation(&yy, wire, KVFS_FRAME_HEADER + 4, -EMSGSIZE);
	}
}

/* ---- secret files ---- */

static char dir[] = "/tmp/kvfs-test-secret.XXXXXX";

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_secret_file(void **state)
{
	uint8_t buf[KVFS_SECRET_FILE_MAX + 1];
	char path[256], err[512];
	size_t len;
	int rv;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/s", dir);

	write_file(path, "0123456789abcdef0123456789abcdef\n", 0600);
	rv = secret_file_read("--secret-file", path, 32, buf, sizeof(buf), &len, err, sizeof(err));
	assert_int_equal(rv, 0);
	assert_int_equal(len, 32); /* the newline is dropped */

	write_file(path, "0123456789abcdef0123456789abcdef\n", 0640);
	rv = secret_file_read("--secret-file", path, 32, buf, sizeof(buf), &len, err, sizeof(err));
	assert_int_equal(rv, -EPERM);
	assert_non_null(strstr(err, "chmod 600"));
	write_file(path, "0123456789abcdef0123456789abcdef\n", 0604);
	assert_int_equal(secret_file_read("--secret-file", path, 32, buf, sizeof(buf), &len, err,
	                                  sizeof(err)),
	                 -EPERM);

	write_file(path, "short\n", 0400);
	rv = secret_file_read("--secret-file", path, 32, buf, sizeof(buf), &len, err, sizeof(err));
	assert_int_equal(rv, -EINVAL);
	assert_non_null(strstr(err, "at least 32"));

	rv = secret_file_read("--secret-file", dir, 32, buf, sizeof(buf), &len, err, sizeof(err));
	assert_int_equal(rv, -EINVAL); /* a directory */
	snprintf(path, sizeof(path), "%s/missing", dir);
	rv = secret_file_read("--secret-file", path, 32, buf, sizeof(buf), &len, err, sizeof(err));
	assert_int_equal(rv, -ENOENT);
	assert_non_null(strstr(err, path));

	snprintf(path, sizeof(path), "rm -rf %s", dir);
	assert_int_equal(system(path), 0);
}

static void test_digest_check(void **state)
{
	static const struct {
		const char *text;
		int rv;
		const char *msg;
	} cases[] = {
	    {"kvfs:s3cret", 0, NULL},
	    {"kvfs:pass:with:colons", 0, NULL},
	    {"u:p", 0, NULL},
	    {"nocolon", -EINVAL, "no ':'"},
	    {":password", -EINVAL, "user"},
	    {"user:", -EINVAL, "password"},
	    {"user:pass\nsecond:line", -EINVAL, "control character"},
	    {"", -EINVAL, "no ':'"},
	};
	char err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].text);

		err[0] = '\0';
		assert_int_equal(secret_file_check_digest("--zk-auth-file", "/p",
		                                          (const uint8_t *)cases[i].text, len, err,
		                                          sizeof(err)),
		                 cases[i].rv);
		if (cases[i].msg) {
			assert_non_null(strstr(err, cases[i].msg));
			assert_non_null(strstr(err, "/p"));
			/* The password never shows. */
			assert_null(strstr(err, "s3cret"));
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_handshake_ok_any_chunking),
	    cmocka_unit_test(test_handshake_fresh_keys_each_time),
	    cmocka_unit_test(test_wrong_secret),
	    cmocka_unit_test(test_other_cluster),
	    cmocka_unit_test(test_rotation),
	    cmocka_unit_test(test_wrong_ids),
	    cmocka_unit_test(test_stranger_and_insecure_peer),
	    cmocka_unit_test(test_looks_like_m1),
	    cmocka_unit_test(test_replayed_handshake),
	    cmocka_unit_test(test_degenerate_key),
	    cmocka_unit_test(test_fuzz_handshake),
	    cmocka_unit_test(test_records_roundtrip),
	    cmocka_unit_test(test_records_with_several_frames),
	    cmocka_unit_test(test_records_tampered_replayed_reordered),
	    cmocka_unit_test(test_secret_file),
	    cmocka_unit_test(test_digest_check),
	};

	if (sec_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
