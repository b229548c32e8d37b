/*
 * Store images for unit tests (see store_image.h): a walk of the store copied into plain arrays,
 * and a field-by-field comparison with cmocka assertions.
 */
#include "store_image.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "kvfs/store.h"
#include "kvfs/store_xattr.h"
#include "kvfs/value.h"

/* Appends u32 len and len bytes to the growing buffer *buf of *len bytes. */
static void put_blob(uint8_t **buf, size_t *len, const struct kvfs_value *v)
{
	uint32_t n = (uint32_t)value_size(v);

	*buf = realloc(*buf, *len + 4 + n + 1);
	assert_non_null(*buf);
	memcpy(*buf + *len, &n, 4);
	if (n)
		memcpy(*buf + *len + 4, v->data, n);
	*len += 4 + n;
}

static int image_inode(void *arg, const struct kvfs_dentry *d, bool first)
{
	const struct kvfs_inode *in = d->in;
	struct store_image *im = arg;
	struct store_image_inode *r;

	if (im->n == im->cap) {
		im->cap = im->cap ? im->cap * 2 : 64;
		im->inodes = realloc(im->inodes, im->cap * sizeof(*im->inodes));
		assert_non_null(im->inodes);
	}
	r = &im->inodes[im->n++];
	r->ino = in->ino;
	r->parent = d->dir ? d->dir->ino : 0;
	r->first = first;
	im->ninodes += first;
	r->rdev = in->rdev;
	r->nchildren = in->nchildren;
	r->nlink = in->nlink;
	r->mode = in->mode;
	r->uid = in->uid;
	r->gid = in->gid;
	r->atime_ns = in->atime_ns;
	r->mtime_ns = in->mtime_ns;
	r->ctime_ns = in->ctime_ns;
	r->name = strdup(d->name);
	assert_non_null(r->name);
	assert_int_equal(strlen(r->name), d->name_len);
	r->value_len = value_size(in->value);
	/* One more byte so that an empty value still has a buffer to compare. */
	r->value = malloc(r->value_len + 1);
	assert_non_null(r->value);
	if (r->value_len)
		memcpy(r->value, in->value->data, r->value_len);
	r->xattrs = malloc(1);
	assert_non_null(r->xattrs);
	r->xattrs_len = 0;
	for (uint32_t i = 0; in->xattrs && i < in->xattrs->n; i++) {
		put_blob(&r->xattrs, &r->xattrs_len, in->xattrs->a[i].name);
		put_blob(&r->xattrs, &r->xattrs_len, in->xattrs->a[i].value);
	}
	return 0;
}

static int image_session(void *arg, const struct kvfs_session *sess)
{
	struct store_image *im = arg;

	if (im->nsess == im->sess_cap) {
		im->sess_cap = im->sess_cap ? im->sess_cap * 2 : 16;
		im->sess = realloc(im->sess, im->sess_cap * sizeof(*im->sess));
		assert_non_null(im->sess);
	}
	im->sess[im->nsess++] = *sess;
	return 0;
}

struct store_image *store_image_of(const struct kvfs_store *s)
{
	struct store_image *im = calloc(1, sizeof(*im));

	assert_non_null(im);
	assert_int_equal(store_foreach(s, image_inode, im), 0);
	assert_int_equal(store_session_foreach(s, image_session, im), 0);
	im->index = store_applied_index(s);
	im->epoch = store_applied_epoch(s);
	im->inode_count = store_inode_count(s);
	im->value_bytes = store_value_bytes(s);
	im->xattr_bytes = store_xattr_bytes(s);
	return im;
}

void store_image_free(struct store_image *im)
{
	if (!im)
		return;
	for (size_t i = 0; i < im->n; i++) {
		free(im->inodes[i].name);
		free(im->inodes[i].value);
		free(im->inodes[i].xattrs);
	}
	free(im->inodes);
	free(im->sess);
	free(im);
}

void assert_store_images_equal(const struct store_image *x, const struct store_image *y)
{
	assert_int_equal(x->n, y->n);
	assert_int_equal(x->ninodes, x->inode_count);
	assert_int_equal(x->ninodes, y->ninodes);
	for (size_t i = 0; i < x->n; i++) {
		const struct store_image_inode *a = &x->inodes[i], *b = &y->inodes[i];

		assert_int_equal(a->ino, b->ino);
		assert_int_equal(a->parent, b->parent);
		assert_int_equal(a->first, b->first);
		assert_int_equal(a->rdev, b->rdev);
		assert_int_equal(a->nchildren, b->nchildren);
		assert_int_equal(a->nlink, b->nlink);
		assert_int_equal(a->mode, b->mode);
		assert_int_equal(a->uid, b->uid);
		assert_int_equal(a->gid, b->gid);
		assert_int_equal(a->atime_ns, b->atime_ns);
		assert_int_equal(a->mtime_ns, b->mtime_ns);
		assert_int_equal(a->ctime_ns, b->ctime_ns);
		assert_string_equal(a->name, b->name);
		assert_int_equal(a->value_len, b->value_len);
		assert_memory_equal(a->value, b->value, a->value_len);
		assert_int_equal(a->xattrs_len, b->xattrs_len);
		assert_memory_equal(a->xattrs, b->xattrs, a->xattrs_len);
	}
	assert_int_equal(x->nsess, y->nsess);
	for (size_t i = 0; i < x->nsess; i++) {
		assert_int_equal(x->sess[i].origin, y->sess[i].origin);
		assert_int_equal(x->sess[i].seq, y->sess[i].seq);
		assert_int_equal(x->sess[i].err, y->sess[i].err);
		assert_int_equal(x->sess[i].ino, y->sess[i].ino);
	}
	assert_int_equal(x->index, y->index);
	assert_int_equal(x->epoch, y->epoch);
	assert_int_equal(x->inode_count, y->inode_count);
	assert_int_equal(x->value_bytes, y->value_bytes);
	assert_int_equal(x->xattr_bytes, y->xattr_bytes);
}

void assert_stores_equal(const struct kvfs_store *a, const struct kvfs_store *b)
{
	struct store_image *x = store_image_of(a), *y = store_image_of(b);

	assert_store_images_equal(x, y);
	store_image_free(x);
	store_image_free(y);
}
