/*
 * The store's hash tables (see store_hash.h): inodes by number, names by (directory number,
 * name). Numbers go through the murmur3 finalizer so that consecutive ones spread over the
 * buckets; names through FNV-1a seeded with the directory's number. A table doubles when it holds
 * as many entries as buckets (load factor 1); a resize that cannot get memory is simply skipped,
 * which keeps store_apply()'s promise that nothing but the operation itself can fail with -ENOMEM.
 */
#include "store_hash.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kvfs/store.h"

#define STORE_HASH_MIN_BUCKETS 64u

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static size_t ino_bucket(size_t buckets, uint64_t ino)
{
	return (size_t)mix64(ino) & (buckets - 1);
}

static size_t name_bucket(size_t buckets, uint64_t parent, const char *name, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull ^ mix64(parent);

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)name[i];
		h *= 0x100000001b3ull;
	}
	return (size_t)mix64(h) & (buckets - 1);
}

int store_hash_init(struct kvfs_store_hash *h)
{
	memset(h, 0, sizeof(*h));
	h->ino_buckets = h->name_buckets = STORE_HASH_MIN_BUCKETS;
	h->by_ino = calloc(h->ino_buckets, sizeof(*h->by_ino));
	if (!h->by_ino)
		return -ENOMEM;
	h->by_name = calloc(h->name_buckets, sizeof(*h->by_name));
	if (!h->by_name) {
		free(h->by_ino);
		return -ENOMEM;
	}
	return 0;
}

void store_hash_free(struct kvfs_store_hash *h)
{
	free(h->by_ino);
	free(h->by_name);
}

/* A table of n buckets (of pointers), or NULL if that does not fit or out of memory. */
static void *table_new(size_t buckets)
{
	if (buckets > SIZE_MAX / sizeof(void *))
		return NULL;
	return calloc(buckets, sizeof(void *));
}

/* Moves the number table to one of n buckets, if it gets the memory. */
static void rehash_ino(struct kvfs_store_hash *h, size_t n)
{
	struct kvfs_inode **t = table_new(n), *in, *next;

	if (!t)
		return;
	for (size_t b = 0; b < h->ino_buckets; b++) {
		for (in = h->by_ino[b]; in; in = next) {
			size_t nb = ino_bucket(n, in->ino);

			next = in->ino_next;
			in->ino_next = t[nb];
			t[nb] = in;
		}
	}
	free(h->by_ino);
	h->by_ino = t;
	h->ino_buckets = n;
}

/* Moves the name table to one of n buckets, if it gets the memory. */
static void rehash_name(struct kvfs_store_hash *h, size_t n)
{
	struct kvfs_dentry **dt = table_new(n), *d, *dnext;

	if (!dt)
		return;
	for (size_t b = 0; b < h->name_buckets; b++) {
		for (d = h->by_name[b]; d; d = dnext) {
			size_t nb = name_bucket(n, d->dir->ino, d->name, d->name_len);

			dnext = d->name_next;
			d->name_next = dt[nb];
			dt[nb] = d;
		}
	}
	free(h->by_name);
	h->by_name = dt;
	h->name_buckets = n;
}

void store_hash_grow(struct kvfs_store_hash *h)
{
	if (h->ino_entries >= h->ino_buckets && h->ino_buckets <= SIZE_MAX / 2)
		rehash_ino(h, h->ino_buckets * 2);
	if (h->name_entries >= h->name_buckets && h->name_buckets <= SIZE_MAX / 2)
		rehash_name(h, h->name_buckets * 2);
}

void store_hash_reserve(struct kvfs_store_hash *h, size_t n)
{
	size_t buckets = STORE_HASH_MIN_BUCKETS;

	while (buckets < n && buckets <= SIZE_MAX / 2)
		buckets *= 2;
	if (buckets > h->ino_buckets)
		rehash_ino(h, buckets);
	if (buckets > h->name_buckets)
		rehash_name(h, buckets);
}

void store_hash_add_ino(struct kvfs_store_hash *h, struct kvfs_inode *in)
{
	size_t b = ino_bucket(h->ino_buckets, in->ino);

	in->ino_next = h->by_ino[b];
	h->by_ino[b] = in;
	h->ino_entries++;
}

void store_hash_del_ino(struct kvfs_store_hash *h, struct kvfs_inode *in)
{
	struct kvfs_inode **pp = &h->by_ino[ino_bucket(h->ino_buckets, in->ino)];

	while (*pp != in)
		pp = &(*pp)->ino_next;
	*pp = in->ino_next;
	in->ino_next = NULL;
	h->ino_entries--;
}

struct kvfs_inode *store_hash_get_ino(const struct kvfs_store_hash *h, uint64_t ino)
{
	struct kvfs_inode *in = h->by_ino[ino_bucket(h->ino_buckets, ino)];

	while (in && in->ino != ino)
		in = in->ino_next;
	return in;
}

void store_hash_add_name(struct kvfs_store_hash *h, struct kvfs_dentry *d)
{
	size_t b = name_bucket(h->name_buckets, d->dir->ino, d->name, d->name_len);

	d->name_next = h->by_name[b];
	h->by_name[b] = d;
	h->name_entries++;
}

void store_hash_del_name(struct kvfs_store_hash *h, struct kvfs_dentry *d)
{
	size_t b = name_bucket(h->name_buckets, d->dir->ino, d->name, d->name_len);
	struct kvfs_dentry **pp = &h->by_name[b];

	while (*pp != d)
		pp = &(*pp)->name_next;
	*pp = d->name_next;
	d->name_next = NULL;
	h->name_entries--;
}

/* len > 0: an empty name is in no directory. */
struct kvfs_dentry *store_hash_get_name(const struct kvfs_store_hash *h,
                                        const struct kvfs_inode *dir, const char *name, size_t len)
{
	struct kvfs_dentry *d = h->by_name[name_bucket(h->name_buckets, dir->ino, name, len)];

	for (; d; d = d->name_next) {
		if (d->dir == dir && d->name_len == len && memcmp(d->name, name, len) == 0)
			return d;
	}
	return NULL;
}

void store_hash_drain(struct kvfs_store_hash *h, void (*fn)(struct kvfs_inode *in))
{
	for (size_t b = 0; b < h->ino_buckets; b++) {
		struct kvfs_inode *in = h->by_ino[b], *next;

		for (; in; in = next) {
			next = in->ino_next;
			fn(in);
		}
		h->by_ino[b] = NULL;
	}
	h->ino_entries = 0;
}
