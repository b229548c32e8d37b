/*
 * Unit tests for the tar header encoding (fs/tar.c): ustar fields and checksums, and the pax
 * records that carry what ustar cannot (long paths and link targets, exact and negative mtimes,
 * big sizes and ids, names that are not UTF-8). GNU tar and Python's tarfile reading whole
 * archives are tested in tests/fs/test_backup.sh.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvfs/store_xattr.h"
#include "kvfs/value.h"
#include "tar.h"

static uint8_t buf[16384];

/* The header sum as ustar defines it: every byte, the checksum field counted as spaces. */
static unsigned header_sum(const uint8_t *h)
{
	unsigned sum = 0;

	for (size_t i = 0; i < 512; i++)
		sum += (i >= 148 && i < 156) ? ' ' : h[i];
	return sum;
}

static uint64_t octal(const uint8_t *field, size_t width)
{
	char tmp[16];

	memcpy(tmp, field, width);
	tmp[width] = '\0';
	return strtoull(tmp, NULL, 8);
}

/* Checks what every ustar header must hold: magic, version, a right checksum. */
static void assert_ustar(const uint8_t *h, char type)
{
	assert_memory_equal(h + 257,
	                    "ustar\0"
	                    "00",
	                    8);
	assert_int_equal(h[156], type);
	assert_int_equal(h[154], '\0');
	assert_int_equal(h[155], ' ');
	assert_int_equal(octal(h + 148, 6), header_sum(h));
}

/* Encodes e into buf, checking that asking for the size first gives the same size. */
static size_t encode(const struct kvfs_tar_entry *e)
{
	size_t need = tar_header(e, NULL, 0);

	memset(buf, 0xa5, sizeof(buf));
	assert_true(need % 512 == 0 && need <= sizeof(buf));
	assert_int_equal(tar_header(e, buf, sizeof(buf)), need);
	return need;
}

/*
 * Finds the record `key` in the pax data at rec (len bytes), checking that every record's
 * length prefix is exact; returns a pointer to its value and its length in *vlen, or NULL.
 */
static const char *pax_find(const uint8_t *rec, size_t len, const char *key, size_t *vlen)
{
	const char *found = NULL;
	size_t off = 0, klen = strlen(key);

	while (off < len) {
		char *sp;
		size_t rlen = strtoul((const char *)rec + off, &sp, 10);
		const char *kv = sp + 1;

		assert_int_equal(*sp, ' ');
		assert_true(rlen > 0 && off + rlen <= len);
		assert_int_equal(rec[off + rlen - 1], '\n');
		if (strncmp(kv, key, klen) == 0 && kv[klen] == '=') {
			found = kv + klen + 1;
			*vlen = (size_t)((const char *)rec + off + rlen - 1 - found);
		}
		off += rlen;
	}
	assert_int_equal(off, len);
	return found;
}

/* The pax data of the 'x' header at the start of buf. */
static size_t pax_len(void)
{
	assert_ustar(buf, 'x');
	return (size_t)octal(buf + 124, 11);
}

static void test_plain_file_is_one_ustar_block(void **state)
{
	struct kvfs_tar_entry e = {.path = "./dir/f",
	                           .path_len = 7,
	                           .type = KVFS_TAR_FILE,
	                           .mode = 0640,
	                           .uid = 1000,
	                           .gid = 100,
	                           .mtime_ns = 1700000000ll * 1000000000,
	                           .size = 12345};

	assert_int_equal(encode(&e), 512);
	assert_ustar(buf, '0');
	assert_string_equal((const char *)buf, "./dir/f");
	assert_memory_equal(buf + 100, "0000640", 8);
	assert_int_equal(octal(buf + 108, 7), 1000);
	assert_int_equal(octal(buf + 116, 7), 100);
	assert_int_equal(octal(buf + 124, 11), 12345);
	assert_int_equal(octal(buf + 136, 11), 1700000000);
	assert_int_equal(buf[157], '\0'); /* no link name */
}

static void test_directory_and_symlink(void **state)
{
	struct kvfs_tar_entry d = {
	    .path = "./d/", .path_len = 4, .type = KVFS_TAR_DIR, .mode = 0755, .size = 4096};
	struct kvfs_tar_entry l = {.path = "./l",
	                           .path_len = 3,
	                           .type = KVFS_TAR_SYMLINK,
	                           .mode = 0777,
	                           .link = "../target",
	                           .link_len = 9,
	                           .size = 9};

	assert_int_equal(encode(&d), 512);
	assert_ustar(buf, '5');
	assert_int_equal(octal(buf + 124, 11), 0); /* a directory has no data */
	assert_int_equal(encode(&l), 512);
	assert_ustar(buf, '2');
	assert_int_equal(octal(buf + 124, 11), 0);
	assert_string_equal((const char *)buf + 157, "../target");
}

/* 100 bytes fit the name field exactly (no NUL); 101 need a pax path record. */
static void test_long_path_goes_to_pax(void **state)
{
	char path[300];
	struct kvfs_tar_entry e = {.path = path, .type = KVFS_TAR_FILE, .mode = 0644};
	const char *v;
	size_t vlen, rlen;

	memset(path, 'p', sizeof(path));
	e.path_len = 100;
	assert_int_equal(encode(&e), 512);
	assert_memory_equal(buf, path, 100);
	e.path_len = 101;
	assert_int_equal(encode(&e), 3 * 512);
	rlen = pax_len();
	v = pax_find(buf + 512, rlen, "path", &vlen);
	assert_non_null(v);
	assert_int_equal(vlen, 101);
	assert_memory_equal(v, path, 101);
	assert_null(pax_find(buf + 512, rlen, "hdrcharset", &vlen)); /* ASCII is UTF-8 */
	assert_ustar(buf + 1024, '0');
}

/* A record's length counts its own digits: lengths around 99/100 and 999/1000 must be exact. */
static void test_record_length_across_digit_boundaries(void **state)
{
	char path[1100];
	struct kvfs_tar_entry e = {.path = path, .type = KVFS_TAR_FILE, .mode = 0644};
	size_t vlen;

	memset(path, 'q', sizeof(path));
	for (size_t len = 101; len < sizeof(path); len++) {
		e.path_len = len;
		encode(&e);
		assert_non_null(pax_find(buf + 512, pax_len(), "path", &vlen));
		assert_int_equal(vlen, len);
	}
}

static void test_names_that_are_not_utf8_are_marked_binary(void **state)
{
	char path[200];
	struct kvfs_tar_entry e = {.path = path, .path_len = sizeof(path), .type = KVFS_TAR_FILE};
	const char *v;
	size_t vlen;

	memset(path, 'x', sizeof(path));
	memcpy(path + 50, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9); /* é € 😀 */
	encode(&e);
	assert_null(pax_find(buf + 512, pax_len(), "hdrcharset", &vlen));
	path[60] = '\xff';
	encode(&e);
	v = pax_find(buf + 512, pax_len(), "hdrcharset", &vlen);
	assert_non_null(v);
	assert_memory_equal(v, "BINARY", vlen);
	assert_non_null(v = pax_find(buf + 512, pax_len(), "path", &vlen));
	assert_memory_equal(v, path, sizeof(path)); /* byte for byte */
	path[60] = '\xc0';                          /* an overlong form of '/' */
	path[61] = '\xaf';
	encode(&e);
	assert_non_null(pax_find(buf + 512, pax_len(), "hdrcharset", &vlen));
}

static void test_long_link_target(void **state)
{
	char target[4095];
	struct kvfs_tar_entry e = {.path = "./l",
	                           .path_len = 3,
	                           .type = KVFS_TAR_SYMLINK,
	                           .link = target,
	                           .link_len = sizeof(target)};
	const char *v;
	size_t vlen;

	memset(target, 't', sizeof(target));
	encode(&e);
	v = pax_find(buf + 512, pax_len(), "linkpath", &vlen);
	assert_non_null(v);
	assert_int_equal(vlen, sizeof(target));
	assert_null(pax_find(buf + 512, pax_len(), "path", &vlen));
}

/* Returns the pax mtime value of an entry with mtime ns ("" if none) and its ustar mtime. */
static const char *mtime_of(int64_t ns, uint64_t *ustar)
{
	static char val[64];
	struct kvfs_tar_entry e = {
	    .path = "./f", .path_len = 3, .type = KVFS_TAR_FILE, .mtime_ns = ns};
	size_t n = encode(&e), vlen;
	const char *v;

	val[0] = '\0';
	*ustar = octal(buf + n - 512 + 136, 11);
	if (n == 512)
		return val;
	v = pax_find(buf + 512, pax_len(), "mtime", &vlen);
	assert_non_null(v);
	memcpy(val, v, vlen);
	val[vlen] = '\0';
	return val;
}

static void test_exact_and_negative_mtimes(void **state)
{
	uint64_t u;

	assert_string_equal(mtime_of(1700000000ll * 1000000000, &u), "");
	assert_int_equal(u, 1700000000);
	assert_string_equal(mtime_of(1700000000ll * 1000000000 + 500000000, &u), "1700000000.5");
	assert_int_equal(u, 1700000000);
	assert_string_equal(mtime_of(1700000000ll * 1000000000 + 123456789, &u),
	                    "1700000000.123456789");
	assert_string_equal(mtime_of(1000000000ll + 1, &u), "1.000000001");
	assert_string_equal(mtime_of(-1500000000ll, &u), "-1.5");
	assert_int_equal(u, 0);
	assert_string_equal(mtime_of(-2000000000ll, &u), "-2");
	assert_string_equal(mtime_of(INT64_MIN, &u), "-9223372036.854775808");
	/* Past the 11 octal digits (year 6000-something): pax, the ustar field says 0. */
	assert_string_equal(mtime_of(9000000000ll * 1000000000, &u), "9000000000");
	assert_int_equal(u, 0);
}

static void test_big_size_uid_and_gid(void **state)
{
	struct kvfs_tar_entry e = {.path = "./big",
	                           .path_len = 5,
	                           .type = KVFS_TAR_FILE,
	                           .size = 077777777777ull,
	                           .uid = 07777777,
	                           .gid = 07777777};
	const char *v;
	size_t vlen;

	assert_int_equal(encode(&e), 512);
	assert_int_equal(octal(buf + 124, 11), 077777777777ull);
	e.size = 10000000000ull;
	e.uid = 4000000000u;
	e.gid = 2097152;
	encode(&e);
	assert_non_null(v = pax_find(buf + 512, pax_len(), "size", &vlen));
	assert_memory_equal(v, "10000000000", vlen);
	assert_non_null(v = pax_find(buf + 512, pax_len(), "uid", &vlen));
	assert_memory_equal(v, "4000000000", vlen);
	assert_non_null(v = pax_find(buf + 512, pax_len(), "gid", &vlen));
	assert_memory_equal(v, "2097152", vlen);
	assert_int_equal(octal(buf + 1024 + 124, 11), 0);
	assert_int_equal(octal(buf + 1024 + 108, 7), 0);
}

static void test_global_header(void **state)
{
	const char *keys[] = {"comment", "KVFS.applied_index"};
	const char *vals[] = {"kvfs backup", "10423"};
	size_t n = tar_global(keys, vals, 2, 1700000000, NULL, 0), vlen;
	const char *v;

	assert_int_equal(n, 1024);
	assert_int_equal(tar_global(keys, vals, 2, 1700000000, buf, sizeof(buf)), n);
	assert_ustar(buf, 'g');
	assert_string_equal((const char *)buf, "pax_global_header");
	assert_int_equal(octal(buf + 136, 11), 1700000000);
	assert_non_null(
	    v = pax_find(buf + 512, (size_t)octal(buf + 124, 11), "KVFS.applied_index", &vlen));
	assert_memory_equal(v, "10423", vlen);
}

/* A buffer too small is left untouched, and the size needed is returned. */
/* A value of n bytes, as value.c makes them (this test links tar.c only). */
static struct kvfs_value *mkvalue(const void *data, size_t n)
{
	struct kvfs_value *v = malloc(sizeof(*v) + n + 1);

	assert_non_null(v);
	v->refs = 1;
	v->size = v->cap = n;
	memcpy(v->data, data, n);
	return v;
}

/* Extended attributes become "SCHILY.xattr.NAME" records holding the value's bytes as they are
 * (NUL, newline and '=' included), as GNU tar --xattrs writes them; an empty value is a record
 * with nothing after '='. */
static void test_xattrs_go_to_schily_records(void **state)
{
	struct kvfs_xattrs *x = malloc(sizeof(*x) + 2 * sizeof(x->a[0]));
	struct kvfs_tar_entry e = {
	    .path = "./f", .path_len = 3, .type = KVFS_TAR_FILE, .mode = 0644, .size = 3};
	const char *v;
	size_t vlen, rlen;

	assert_non_null(x);
	x->refs = 1;
	x->n = 2;
	x->a[0].name = mkvalue("user.bin", 8);
	x->a[0].value = mkvalue("a\0\n=b", 5);
	x->a[1].name = mkvalue("user.empty", 10);
	x->a[1].value = NULL;
	e.xattrs = x;
	assert_int_equal(encode(&e), 3 * 512);
	rlen = pax_len();
	v = pax_find(buf + 512, rlen, "SCHILY.xattr.user.bin", &vlen);
	assert_non_null(v);
	assert_int_equal(vlen, 5);
	assert_memory_equal(v, "a\0\n=b", 5);
	v = pax_find(buf + 512, rlen, "SCHILY.xattr.user.empty", &vlen);
	assert_non_null(v);
	assert_int_equal(vlen, 0);
	assert_ustar(buf + 1024, '0');
	for (uint32_t i = 0; i < x->n; i++) {
		free(x->a[i].name);
		free(x->a[i].value);
	}
	free(x);
}

static void test_short_buffer_is_not_written(void **state)
{
	struct kvfs_tar_entry e = {
	    .path = "./f", .path_len = 3, .type = KVFS_TAR_FILE, .mtime_ns = 5};
	uint8_t small[1535];

	memset(small, 0x5a, sizeof(small));
	assert_int_equal(tar_header(&e, small, sizeof(small)), 1536); /* x, records, ustar */
	for (size_t i = 0; i < sizeof(small); i++)
		assert_int_equal(small[i], 0x5a);
	assert_int_equal(tar_padded(0), 0);
	assert_int_equal(tar_padded(1), 512);
	assert_int_equal(tar_padded(512), 512);
	assert_int_equal(tar_padded(513), 1024);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain_file_is_one_ustar_block),
	    cmocka_unit_test(test_directory_and_symlink),
	    cmocka_unit_test(test_long_path_goes_to_pax),
	    cmocka_unit_test(test_record_length_across_digit_boundaries),
	    cmocka_unit_test(test_names_that_are_not_utf8_are_marked_binary),
	    cmocka_unit_test(test_long_link_target),
	    cmocka_unit_test(test_exact_and_negative_mtimes),
	    cmocka_unit_test(test_big_size_uid_and_gid),
	    cmocka_unit_test(test_global_header),
	    cmocka_unit_test(test_short_buffer_is_not_written),
	    cmocka_unit_test(test_xattrs_go_to_schily_records),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
