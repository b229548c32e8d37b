/*
 * POSIX tar headers (see tar.h): ustar headers, pax extended and global headers.
 *
 * Layout of a ustar header (offsets in bytes): name 0 (100), mode 100 (8), uid 108 (8), gid 116
 * (8), size 124 (12), mtime 136 (12), chksum 148 (8), typeflag 156, linkname 157 (100), magic 257
 * ("ustar\0"), version 263 ("00"), uname 265 (32), gname 297 (32), devmajor 329, devminor 337,
 * prefix 345 (155). Numbers are octal, zero-padded, NUL-terminated. A pax record is
 * "LEN KEY=VALUE\n", LEN counting the whole record, its own digits included.
 */
#include "tar.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "kvfs/store_xattr.h"
#include "kvfs/value.h"

#define NAME_LEN        100u
#define OCTAL_MAX_7     07777777ull     /* mode, uid, gid: 7 digits */
#define OCTAL_MAX_11    077777777777ull /* size, mtime: 11 digits */
#define NS_PER_S        1000000000ll
#define XATTR_KEY       "SCHILY.xattr."
#define PAX_HEADER_NAME "././@PaxHeader"

/* Writes v as width-1 octal digits and a NUL; v must fit. */
static void put_octal(uint8_t *field, size_t width, uint64_t v)
{
	for (size_t i = width - 1; i-- > 0; v >>= 3)
		field[i] = (uint8_t)('0' + (v & 7));
	field[width - 1] = '\0';
}

static void put_bytes(uint8_t *field, size_t width, const char *s, size_t len)
{
	memcpy(field, s, len < width ? len : width);
}

/* Fills in the checksum of a header whose other fields are set. */
static void put_checksum(uint8_t *h)
{
	unsigned sum = 0;

	memset(h + 148, ' ', 8);
	for (size_t i = 0; i < KVFS_TAR_BLOCK; i++)
		sum += h[i];
	put_octal(h + 148, 7, sum); /* six digits and a NUL, then the space that stays */
}

/* A ustar header at h (512 zeroed bytes). Numbers that do not fit are left 0: a pax record
 * carries them. */
static void put_ustar(uint8_t *h, const char *name, size_t name_len, char type, uint32_t mode,
                      uint64_t uid, uint64_t gid, int64_t mtime, uint64_t size, const char *link,
                      size_t link_len, uint32_t devmajor, uint32_t devminor)
{
	put_bytes(h, NAME_LEN, name, name_len);
	put_octal(h + 100, 8, mode & 07777);
	put_octal(h + 108, 8, uid <= OCTAL_MAX_7 ? uid : 0);
	put_octal(h + 116, 8, gid <= OCTAL_MAX_7 ? gid : 0);
	put_octal(h + 124, 12, size <= OCTAL_MAX_11 ? size : 0);
	put_octal(h + 136, 12, mtime >= 0 && (uint64_t)mtime <= OCTAL_MAX_11 ? (uint64_t)mtime : 0);
	h[156] = (uint8_t)type;
	if (link)
		put_bytes(h + 157, NAME_LEN, link, link_len);
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	put_octal(h + 329, 8, devmajor); /* at most 12 bits in Linux's encoding: always fits */
	put_octal(h + 337, 8, devminor); /* at most 20 bits: fits in 7 octal digits */
	put_checksum(h);
}

static size_t digits(size_t n)
{
	size_t d = 1;

	while (n >= 10) {
		n /= 10;
		d++;
	}
	return d;
}

/* Writes the record "LEN key=value\n" at dst (NULL: only counts). Returns its length. */
static size_t put_record(uint8_t *dst, const char *key, const char *val, size_t vlen)
{
	size_t base = strlen(key) + vlen + 3; /* ' ', '=', '\n' */
	size_t len = base + digits(base);
	int n;

	if (digits(len) > digits(base))
		len = base + digits(len);
	if (!dst)
		return len;
	n = sprintf((char *)dst, "%zu %s=", len, key);
	memcpy(dst + n, val, vlen);
	dst[len - 1] = '\n';
	return len;
}

/* Whether s (len bytes) is valid UTF-8: no overlong forms, surrogates or code points past
 * U+10FFFF. */
static bool valid_utf8(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;

	while (p < end) {
		uint32_t c = *p++;
		int more = c < 0x80             ? 0
		           : (c & 0xe0) == 0xc0 ? 1
		           : (c & 0xf0) == 0xe0 ? 2
		           : (c & 0xf8) == 0xf0 ? 3
		                                : -1;
		static const uint32_t min[] = {0, 0x80, 0x800, 0x10000};

		if (more < 0 || end - p < more)
			return false;
		c &= 0x7f >> more;
		for (int i = 0; i < more; i++, p++) {
			if ((*p & 0xc0) != 0x80)
				return false;
			c = c << 6 | (*p & 0x3f);
		}
		if (c < min[more] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return false;
	}
	return true;
}

/* Seconds and nanoseconds of ns, as "S" or "S.F" (F without trailing zeros), "-" before a
 * negative time. */
static size_t format_time(char *buf, size_t len, int64_t ns)
{
	uint64_t mag = ns < 0 ? (uint64_t)0 - (uint64_t)ns : (uint64_t)ns;
	uint64_t frac = mag % (uint64_t)NS_PER_S;
	int n =
	    snprintf(buf, len, "%s%llu", ns < 0 ? "-" : "", (unsigned long long)(mag / NS_PER_S));
	int digits9 = 9;

	if (frac) {
		while (frac % 10 == 0) {
			frac /= 10;
			digits9--;
		}
		n += snprintf(buf + n, len - (size_t)n, ".%0*llu", digits9,
		              (unsigned long long)frac);
	}
	return (size_t)n;
}

/* Whole seconds of ns, rounded down (toward the past). */
static int64_t seconds_of(int64_t ns)
{
	return ns >= 0 ? ns / NS_PER_S : -((-(ns + 1)) / NS_PER_S) - 1;
}

/* The pax records e needs (written at dst unless NULL); returns their length, 0 if none. */
static size_t pax_records(const struct kvfs_tar_entry *e, uint8_t *dst)
{
	bool long_path = e->path_len > NAME_LEN, long_link = e->link && e->link_len > NAME_LEN;
	int64_t sec = seconds_of(e->mtime_ns);
	char num[48];
	size_t n = 0;

#define REC(key, val, vlen) (n += put_record(dst ? dst + n : NULL, key, val, vlen))
	if ((long_path && !valid_utf8(e->path, e->path_len)) ||
	    (long_link && !valid_utf8(e->link, e->link_len)))
		REC("hdrcharset", "BINARY", 6);
	if (long_path)
		REC("path", e->path, e->path_len);
	if (long_link)
		REC("linkpath", e->link, e->link_len);
	if (e->mtime_ns % NS_PER_S != 0 || sec < 0 || (uint64_t)sec > OCTAL_MAX_11)
		REC("mtime", num, format_time(num, sizeof(num), e->mtime_ns));
	if (e->size > OCTAL_MAX_11)
		REC("size", num,
		    (size_t)snprintf(num, sizeof(num), "%llu", (unsigned long long)e->size));
	if (e->uid > OCTAL_MAX_7)
		REC("uid", num,
		    (size_t)snprintf(num, sizeof(num), "%llu", (unsigned long long)e->uid));
	if (e->gid > OCTAL_MAX_7)
		REC("gid", num,
		    (size_t)snprintf(num, sizeof(num), "%llu", (unsigned long long)e->gid));
	for (uint32_t i = 0; e->xattrs && i < e->xattrs->n; i++) {
		const struct kvfs_xattr *x = &e->xattrs->a[i];
		char key[sizeof(XATTR_KEY) + KVFS_XATTR_NAME_MAX];
		size_t klen = (size_t)x->name->size;

		/* A pax keyword ends at the first '=': a name holding one cannot be written so that
		 * a reader gets it back, and is left out (README, "Copies, backup and restore"). */
		if (memchr(x->name->data, '=', klen))
			continue;
		/* Names are at most KVFS_XATTR_NAME_MAX bytes without NUL (store_xattr.h). */
		memcpy(key, XATTR_KEY, sizeof(XATTR_KEY) - 1);
		memcpy(key + sizeof(XATTR_KEY) - 1, x->name->data, klen);
		key[sizeof(XATTR_KEY) - 1 + klen] = '\0';
		REC(key, x->value ? (const char *)x->value->data : "",
		    (size_t)value_size(x->value));
	}
#undef REC
	return n;
}

size_t tar_header(const struct kvfs_tar_entry *e, uint8_t *buf, size_t len)
{
	size_t rlen = pax_records(e, NULL);
	size_t total = (rlen ? KVFS_TAR_BLOCK + tar_padded(rlen) : 0) + KVFS_TAR_BLOCK;
	int64_t sec = seconds_of(e->mtime_ns);
	uint8_t *h = buf;

	if (!buf || total > len)
		return total;
	memset(buf, 0, total);
	if (rlen) {
		put_ustar(h, PAX_HEADER_NAME, strlen(PAX_HEADER_NAME), 'x', 0644, 0, 0, sec, rlen,
		          NULL, 0, 0, 0);
		pax_records(e, h + KVFS_TAR_BLOCK);
		h += KVFS_TAR_BLOCK + tar_padded(rlen);
	}
	put_ustar(h, e->path, e->path_len, e->type, e->mode, e->uid, e->gid, sec,
	          e->type == KVFS_TAR_FILE ? e->size : 0, e->link, e->link_len, e->devmajor,
	          e->devminor);
	return total;
}

size_t tar_global(const char *const *keys, const char *const *values, size_t n, int64_t mtime,
                  uint8_t *buf, size_t len)
{
	static const char name[] = "pax_global_header";
	size_t rlen = 0, total, off = KVFS_TAR_BLOCK;

	for (size_t i = 0; i < n; i++)
		rlen += put_record(NULL, keys[i], values[i], strlen(values[i]));
	total = KVFS_TAR_BLOCK + tar_padded(rlen);
	if (!buf || total > len)
		return total;
	memset(buf, 0, total);
	put_ustar(buf, name, sizeof(name) - 1, 'g', 0644, 0, 0, mtime, rlen, NULL, 0, 0, 0);
	for (size_t i = 0; i < n; i++)
		off += put_record(buf + off, keys[i], values[i], strlen(values[i]));
	return total;
}
