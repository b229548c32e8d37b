/*
 * Unit tests of the operation codec (replica/op.c): every type survives a round trip, and the
 * decoder refuses every truncation, trailing bytes, unknown types and lengths over the limits or
 * past the end, without reading outside the buffer (run under ASan). The proposal checks
 * (op_validate.c) are tested in test_op_validate.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kvfs/op.h"

#define HEADER_SIZE 33 /* u8 type, u32 flags, u32 origin, u64 seq, i64 time_ns, u64 max_value */

/* A sample op of each type, with every field the type carries set to something distinctive. */
static struct kvfs_op sample(unsigned type)
{
	struct kvfs_op op = {
	    .type = (uint8_t)type,
	    .flags = 0x5a5a0001u + type,
	    .origin = 7,
	    .seq = 0x0102030405060708ull,
	    .time_ns = -1234567890123ll,
	    .max_value = 1u << 20,
	};

	switch (type) {
	case KVFS_OP_PUT:
	case KVFS_OP_APPEND:
		op.ino = 0xdeadbeefcafe;
		op.data = (const uint8_t *)"hello\0world";
		op.data_len = 11;
		break;
	case KVFS_OP_CREATE:
	case KVFS_OP_MKDIR:
		op.parent = 17;
		op.mode = 0100644;
		op.uid = 1000;
		op.gid = 1001;
		op.name = "file.txt";
		op.name_len = 8;
		break;
	case KVFS_OP_SYMLINK:
		op.parent = 18;
		op.uid = 1000;
		op.gid = 1001;
		/* Not 4 bytes: then u32 len, name, u32 len, data would also read as MKNOD's
		 * u32 rdev, u32 len, name; not 6: 44 bytes, SETATTR's size, would read as one
		 * (test_flipped_type_rejected). */
		op.name = "links";
		op.name_len = 5;
		op.data = (const uint8_t *)"../target/path";
		op.data_len = 14;
		break;
	case KVFS_OP_UNLINK:
	case KVFS_OP_RMDIR:
		op.parent = 19;
		op.name = "gone";
		op.name_len = 4;
		break;
	case KVFS_OP_RENAME:
		op.parent = 20;
		op.newparent = 21;
		op.name = "old";
		op.name_len = 3;
		op.newname = "brand-new";
		op.newname_len = 9;
		break;
	case KVFS_OP_SETATTR:
		op.ino = 22;
		op.mode = 0600;
		op.uid = 5;
		op.gid = 6;
		op.size = 1ull << 40;
		op.atime_ns = -5;
		op.mtime_ns = 1700000000123456789ll;
		break;
	case KVFS_OP_LINK:
		op.ino = 0x0123456789abull;
		op.parent = 0x7766554433ull;
		op.name = "second-name";
		op.name_len = 11;
		break;
	case KVFS_OP_MKNOD:
		op.parent = 0x1122334455ull;
		op.mode = S_IFCHR | 02640;
		op.uid = 1002;
		op.gid = 1003;
		op.rdev = 0x00c80403u; /* makedev(0x804, 0xc8003) in Linux's encoding, roughly */
		op.name = "tty9";
		op.name_len = 4;
		break;
	case KVFS_OP_FALLOCATE:
		op.ino = 0xfeedfacecafeull;
		op.offset = 0x7000000012345678ull;
		op.length = 0x0fedcba987654321ull;
		break;
	case KVFS_OP_LOCK:
		op.lk_type = KVFS_LOCK_WR;
		op.lk_start = 0x1122334455667788ull;
		op.lk_end = 0x7122334455667799ull;
		op.lk_pid = 4242;
		/* fall through */
	case KVFS_OP_UNLOCK_OWNER:
		op.ino = 0xabcdef01234ull;
		op.lk_kind = KVFS_LOCK_POSIX;
		op.lk_owner = 0x8877665544332211ull;
		/* fall through */
	case KVFS_OP_RELEASE_NODE:
		op.lk_node = 3;
		op.lk_inc = 0x0001020304050607ull;
		break;
	case KVFS_OP_CONFIG:
		/* version 1, 2 members: 1 voter, 6 observer (config.c checks what they say) */
		op.data = (const uint8_t *)"\x01\x02\0\0\0\x01\0\0\0\x01\x06\0\0\0\x02";
		op.data_len = 15;
		op.name = "member-req-0000000007";
		op.name_len = 21;
		break;
	case KVFS_OP_SETXATTR:
		op.ino = 0x5e7a77c0ffeeull;
		op.name = "user.mime_type";
		op.name_len = 14;
		op.data = (const uint8_t *)"text/plain\0;x";
		op.data_len = 13;
		break;
	case KVFS_OP_REMOVEXATTR:
		op.ino = 0x5e7a77c0ffefull;
		op.name = "user.checksum";
		op.name_len = 13;
		break;
	default:
		break;
	}
	return op;
}

/* Whether t is an operation type of this release. */
static bool known(unsigned t)
{
	return t < KVFS_OP__COUNT;
}

/* Encodes op into a fresh buffer of exactly op_encoded_size(op) bytes. */
static uint8_t *encode(const struct kvfs_op *op, size_t *len)
{
	size_t n = op_encoded_size(op);
	uint8_t *buf = malloc(n ? n : 1);

	assert_non_null(buf);
	assert_int_equal(op_encode(op, buf), n);
	*len = n;
	return buf;
}

static void assert_bytes_equal(const void *a, uint32_t alen, const void *b, uint32_t blen)
{
	assert_int_equal(alen, blen);
	if (alen)
		assert_memory_equal(a, b, alen);
}

static void assert_op_equal(const struct kvfs_op *a, const struct kvfs_op *b)
{
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->flags, b->flags);
	assert_int_equal(a->origin, b->origin);
	assert_int_equal(a->seq, b->seq);
	assert_int_equal(a->time_ns, b->time_ns);
	assert_int_equal(a->max_value, b->max_value);
	assert_int_equal(a->ino, b->ino);
	assert_int_equal(a->parent, b->parent);
	assert_int_equal(a->newparent, b->newparent);
	assert_int_equal(a->mode, b->mode);
	assert_int_equal(a->uid, b->uid);
	assert_int_equal(a->gid, b->gid);
	assert_int_equal(a->size, b->size);
	assert_int_equal(a->rdev, b->rdev);
	assert_int_equal(a->offset, b->offset);
	assert_int_equal(a->length, b->length);
	assert_int_equal(a->atime_ns, b->atime_ns);
	assert_int_equal(a->mtime_ns, b->mtime_ns);
	assert_bytes_equal(a->name, a->name_len, b->name, b->name_len);
	assert_bytes_equal(a->newname, a->newname_len, b->newname, b->newname_len);
	assert_bytes_equal(a->data, a->data_len, b->data, b->data_len);
	assert_int_equal(a->lk_node, b->lk_node);
	assert_int_equal(a->lk_inc, b->lk_inc);
	assert_int_equal(a->lk_owner, b->lk_owner);
	assert_int_equal(a->lk_kind, b->lk_kind);
	assert_int_equal(a->lk_type, b->lk_type);
	assert_int_equal(a->lk_start, b->lk_start);
	assert_int_equal(a->lk_end, b->lk_end);
	assert_int_equal(a->lk_pid, b->lk_pid);
}

static void test_roundtrip_every_type(void **state)
{
	for (unsigned t = 0; t < KVFS_OP__COUNT; t++) {
		if (!known(t))
			continue;
		struct kvfs_op op = sample(t), out;
		size_t len;
		uint8_t *buf = encode(&op, &len);

		assert_int_equal(op_decode(&out, buf, len), 0);
		assert_op_equal(&op, &out);
		/* Borrowed pointers point into the buffer. */
		if (out.name_len)
			assert_true((const uint8_t *)out.name >= buf &&
			            (const uint8_t *)out.name + out.name_len <= buf + len);
		if (out.data_len)
			assert_true(out.data >= buf && out.data + out.data_len <= buf + len);
		free(buf);
	}
}

static void test_roundtrip_empty_fields(void **state)
{
	struct kvfs_op op = sample(KVFS_OP_PUT), out;
	uint8_t *buf;
	size_t len;

	op.data = NULL;
	op.data_len = 0;
	buf = encode(&op, &len);
	assert_int_equal(len, HEADER_SIZE + 8 + 4);
	assert_int_equal(op_decode(&out, buf, len), 0);
	assert_op_equal(&op, &out);
	free(buf);
}

/* Fields a type does not carry are not encoded: they decode as zero. */
static void test_unused_fields_not_encoded(void **state)
{
	struct kvfs_op op = sample(KVFS_OP_UNLINK), out;
	uint8_t *buf;
	size_t len;

	op.ino = 99;
	op.size = 5;
	op.data = (const uint8_t *)"x";
	op.data_len = 1;
	buf = encode(&op, &len);
	assert_int_equal(op_decode(&out, buf, len), 0);
	assert_int_equal(out.ino, 0);
	assert_int_equal(out.size, 0);
	assert_int_equal(out.data_len, 0);
	assert_null(out.data);
	assert_int_equal(out.parent, op.parent);
	free(buf);
}

/* Appends v's n low bytes, little-endian, at *p. */
static void put_le(uint8_t **p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		*(*p)++ = (uint8_t)(v >> (8 * i));
}

/* The types of protocol 2 are laid out as op.c's header says, byte for byte (after the header,
 * which every type shares and the round trips cover). */
static void test_new_type_layouts(void **state)
{
	static const unsigned types[] = {KVFS_OP_LINK, KVFS_OP_MKNOD, KVFS_OP_FALLOCATE,
	                                 KVFS_OP_SETXATTR, KVFS_OP_REMOVEXATTR};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		struct kvfs_op op = sample(types[i]);
		uint8_t want[HEADER_SIZE + 64], *p = want + HEADER_SIZE;
		size_t len;
		uint8_t *buf = encode(&op, &len);

		switch (op.type) {
		case KVFS_OP_LINK:
			put_le(&p, op.ino, 8);
			put_le(&p, op.parent, 8);
			put_le(&p, op.name_len, 4);
			break;
		case KVFS_OP_MKNOD:
			put_le(&p, op.parent, 8);
			put_le(&p, op.mode, 4);
			put_le(&p, op.uid, 4);
			put_le(&p, op.gid, 4);
			put_le(&p, op.rdev, 4);
			put_le(&p, op.name_len, 4);
			break;
		case KVFS_OP_SETXATTR:
		case KVFS_OP_REMOVEXATTR:
			put_le(&p, op.ino, 8);
			put_le(&p, op.name_len, 4);
			break;
		default:
			put_le(&p, op.ino, 8);
			put_le(&p, op.offset, 8);
			put_le(&p, op.length, 8);
			break;
		}
		if (op.name_len)
			memcpy(p, op.name, op.name_len);
		p += op.name_len;
		if (op.type == KVFS_OP_SETXATTR) {
			put_le(&p, op.data_len, 4);
			memcpy(p, op.data, op.data_len);
			p += op.data_len;
		}
		assert_int_equal(len, (size_t)(p - want));
		assert_int_equal(buf[0], op.type);
		assert_memory_equal(buf + HEADER_SIZE, want + HEADER_SIZE, len - HEADER_SIZE);
		free(buf);
	}
}

static void test_every_truncation_rejected(void **state)
{
	for (unsigned t = 0; t < KVFS_OP__COUNT; t++) {
		if (!known(t))
			continue;
		struct kvfs_op op = sample(t), out;
		size_t len;
		uint8_t *buf = encode(&op, &len);

		for (size_t cut = 0; cut < len; cut++) {
			/* A copy of exactly cut bytes, so ASan sees any read past it. */
			uint8_t *p = malloc(cut ? cut : 1);

			assert_non_null(p);
			memcpy(p, buf, cut);
			assert_int_equal(op_decode(&out, p, cut), -EBADMSG);
			free(p);
		}
		free(buf);
	}
	assert_int_equal(op_decode(&(struct kvfs_op){0}, NULL, 0), -EBADMSG);
}

static void test_trailing_bytes_rejected(void **state)
{
	for (unsigned t = 0; t < KVFS_OP__COUNT; t++) {
		if (!known(t))
			continue;
		struct kvfs_op op = sample(t), out;
		size_t len;
		uint8_t *buf = encode(&op, &len);
		uint8_t *p = malloc(len + 1);

		assert_non_null(p);
		memcpy(p, buf, len);
		p[len] = 0;
		assert_int_equal(op_decode(&out, p, len + 1), -EBADMSG);
		free(p);
		free(buf);
	}
}

static void test_unknown_type_rejected(void **state)
{
	struct kvfs_op op = sample(KVFS_OP_NOOP), out;
	size_t len;
	uint8_t *buf = encode(&op, &len);

	for (unsigned t = 0; t < 256; t++) {
		if (known(t))
			continue;
		buf[0] = (uint8_t)t;
		assert_int_equal(op_decode(&out, buf, len), -EBADMSG);
	}
	free(buf);

	/* An unknown type encodes as a header only, which is refused too. */
	op.type = 200;
	buf = encode(&op, &len);
	assert_int_equal(len, HEADER_SIZE);
	assert_int_equal(op_decode(&out, buf, len), -EBADMSG);
	free(buf);
}

/* Types whose encodings have the same shape (u64, u32 length, bytes ...): one class each. */
static int shape(unsigned t)
{
	switch (t) {
	case KVFS_OP_PUT:
	case KVFS_OP_APPEND:
	case KVFS_OP_UNLINK:
	case KVFS_OP_RMDIR:
	case KVFS_OP_REMOVEXATTR:
		return 1;
	case KVFS_OP_CREATE:
	case KVFS_OP_MKDIR:
		return 2;
	case KVFS_OP_SYMLINK:
	case KVFS_OP_RENAME:
		return 3;
	default:
		return 10 + (int)t;
	}
}

/* Changing the type byte of a valid encoding to a type of another shape is refused. */
static void test_flipped_type_rejected(void **state)
{
	for (unsigned t = 0; t < KVFS_OP__COUNT; t++) {
		if (!known(t))
			continue;
		struct kvfs_op op = sample(t), out;
		size_t len;
		uint8_t *buf = encode(&op, &len);

		for (unsigned u = 0; u < KVFS_OP__COUNT; u++) {
			buf[0] = (uint8_t)u;
			if (op_decode(&out, buf, len) != (shape(u) == shape(t) ? 0 : -EBADMSG))
				fail_msg("%s decoded as %s", op_type_name(t), op_type_name(u));
			assert_int_equal(op_decode(&out, buf, len),
			                 shape(u) == shape(t) ? 0 : -EBADMSG);
			if (shape(u) == shape(t))
				assert_int_equal(out.type, u);
		}
		free(buf);
	}
}

/* Offsets of the u32 length fields in sample(t)'s encoding; returns how many. */
static size_t length_offsets(unsigned t, size_t off[2])
{
	struct kvfs_op op = sample(t);

	switch (t) {
	case KVFS_OP_PUT:
	case KVFS_OP_APPEND:
		off[0] = HEADER_SIZE + 8;
		return 1;
	case KVFS_OP_CREATE:
	case KVFS_OP_MKDIR:
		off[0] = HEADER_SIZE + 8 + 12;
		return 1;
	case KVFS_OP_SYMLINK:
		off[0] = HEADER_SIZE + 8 + 8;
		off[1] = off[0] + 4 + op.name_len;
		return 2;
	case KVFS_OP_UNLINK:
	case KVFS_OP_RMDIR:
	case KVFS_OP_REMOVEXATTR:
		off[0] = HEADER_SIZE + 8;
		return 1;
	case KVFS_OP_SETXATTR:
		off[0] = HEADER_SIZE + 8;
		off[1] = off[0] + 4 + op.name_len;
		return 2;
	case KVFS_OP_RENAME:
		off[0] = HEADER_SIZE + 16;
		off[1] = off[0] + 4 + op.name_len;
		return 2;
	case KVFS_OP_LINK:
		off[0] = HEADER_SIZE + 16;
		return 1;
	case KVFS_OP_MKNOD:
		off[0] = HEADER_SIZE + 8 + 16;
		return 1;
	default:
		return 0;
	}
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void test_flipped_lengths_rejected(void **state)
{
	for (unsigned t = 0; t < KVFS_OP__COUNT; t++) {
		if (!known(t))
			continue;
		struct kvfs_op op = sample(t), out;
		size_t len, off[2];
		size_t n = length_offsets(t, off);
		uint8_t *buf = encode(&op, &len);

		for (size_t i = 0; i < n; i++) {
			uint32_t orig = get_le32(buf + off[i]);
			static const uint32_t bad[] = {0xffffffffu, 0x80000000u, 256u, 0x01000000u};

			for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
				put_le32(buf + off[i], bad[b]);
				assert_int_equal(op_decode(&out, buf, len), -EBADMSG);
			}
			/* The last length field: one more runs past the end, one less leaves a
			 * byte. */
			if (i == n - 1) {
				put_le32(buf + off[i], orig + 1);
				assert_int_equal(op_decode(&out, buf, len), -EBADMSG);
				put_le32(buf + off[i], orig - 1);
				assert_int_equal(op_decode(&out, buf, len), -EBADMSG);
			}
			put_le32(buf + off[i], orig);
			assert_int_equal(op_decode(&out, buf, len), 0);
		}
		free(buf);
	}
}

static void test_name_limit(void **state)
{
	char name[KVFS_NAME_MAX + 1];
	struct kvfs_op op = sample(KVFS_OP_RENAME), out;
	uint8_t *buf;
	size_t len;

	memset(name, 'n', sizeof(name));
	op.name = name;
	op.name_len = KVFS_NAME_MAX;
	buf = encode(&op, &len);
	assert_int_equal(op_decode(&out, buf, len), 0);
	free(buf);

	op.name_len = KVFS_NAME_MAX + 1;
	buf = encode(&op, &len);
	assert_int_equal(op_decode(&out, buf, len), -EBADMSG);
	free(buf);

	op.name_len = 3;
	op.newname = name;
	op.newname_len = KVFS_NAME_MAX + 1;
	buf = encode(&op, &len);
	assert_int_equal(op_decode(&out, buf, len), -EBADMSG);
	free(buf);
}

static void test_data_limit(void **state)
{
	uint8_t *data = calloc(1, KVFS_DATA_MAX + 1);
	struct kvfs_op op = sample(KVFS_OP_PUT), out;
	uint8_t *buf;
	size_t len;

	assert_non_null(data);
	op.data = data;
	op.data_len = KVFS_DATA_MAX;
	buf = encode(&op, &len);
	assert_int_equal(op_decode(&out, buf, len), 0);
	assert_int_equal(out.data_len, KVFS_DATA_MAX);
	free(buf);

	op.data_len = KVFS_DATA_MAX + 1;
	buf = encode(&op, &len);
	assert_int_equal(op_decode(&out, buf, len), -EBADMSG);
	free(buf);
	free(data);
}

/* An attribute's name is at most KVFS_XATTR_NAME_MAX bytes and its value KVFS_XATTR_VALUE_MAX
 * (the decoder refuses more: no committed op can carry what no replica would store). */
static void test_xattr_limits(void **state)
{
	static uint8_t value[(64u << 10) + 1];
	char name[256 + 1];
	struct kvfs_op op = sample(KVFS_OP_SETXATTR), out;
	uint8_t *buf;
	size_t len;

	memset(name, 'n', sizeof(name));
	memcpy(name, "user.", 5);
	op.name = name;
	op.data = value;
	op.name_len = 255;
	op.data_len = 64u << 10;
	buf = encode(&op, &len);
	assert_int_equal(op_decode(&out, buf, len), 0);
	assert_op_equal(&op, &out);
	free(buf);

	op.name_len = 256;
	buf = encode(&op, &len);
	assert_int_equal(op_decode(&out, buf, len), -EBADMSG);
	free(buf);

	op.name_len = 255;
	op.data_len = (64u << 10) + 1;
	buf = encode(&op, &len);
	assert_int_equal(op_decode(&out, buf, len), -EBADMSG);
	free(buf);
}

/* Random bytes: the decoder never reads out of bounds, and what it accepts re-encodes the same. */
static void test_random_bytes(void **state)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;
	uint8_t src[128];

	for (int iter = 0; iter < 200000; iter++) {
		struct kvfs_op op;
		size_t len;
		uint8_t *p;

		for (size_t i = 0; i < sizeof(src); i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			src[i] = (uint8_t)x;
		}
		/* Small types and small lengths, so that some inputs are valid. */
		src[0] %= KVFS_OP__COUNT + 1;
		for (size_t i = HEADER_SIZE; i < sizeof(src); i++)
			if (x >> 63)
				src[i] &= 0x0f;
		len = (size_t)(x % (sizeof(src) + 1));
		p = malloc(len ? len : 1);
		assert_non_null(p);
		memcpy(p, src, len);
		if (op_decode(&op, p, len) == 0) {
			size_t n;
			uint8_t *again = encode(&op, &n);

			assert_int_equal(n, len);
			assert_memory_equal(again, p, len);
			free(again);
		}
		free(p);
	}
}

static void test_type_names(void **state)
{
	static const char *const names[] = {
	    "noop",    "put",     "append",  "create",       "mkdir",       "symlink",   "unlink",
	    "rmdir",   "rename",  "setattr", "link",         "mknod",       "fallocate", "config",
	    "setxattr", "removexattr", "lock",    "unlock_owner", "release_node"};

	assert_int_equal(sizeof(names) / sizeof(names[0]), KVFS_OP__COUNT);
	for (unsigned t = 0; t < KVFS_OP__COUNT; t++)
		assert_string_equal(op_type_name(t), names[t]);
	assert_string_equal(op_type_name(KVFS_OP__COUNT), "unknown");
	assert_string_equal(op_type_name(~0u), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip_every_type),
	    cmocka_unit_test(test_roundtrip_empty_fields),
	    cmocka_unit_test(test_unused_fields_not_encoded),
	    cmocka_unit_test(test_new_type_layouts),
	    cmocka_unit_test(test_every_truncation_rejected),
	    cmocka_unit_test(test_trailing_bytes_rejected),
	    cmocka_unit_test(test_unknown_type_rejected),
	    cmocka_unit_test(test_flipped_type_rejected),
	    cmocka_unit_test(test_flipped_lengths_rejected),
	    cmocka_unit_test(test_name_limit),
	    cmocka_unit_test(test_data_limit),
	    cmocka_unit_test(test_xattr_limits),
	    cmocka_unit_test(test_random_bytes),
	    cmocka_unit_test(test_type_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
