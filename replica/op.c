/*
 * The operation codec: how a struct kvfs_op is laid out in a log record's payload and in a peer
 * frame. The layout is fixed and little-endian:
 *
 *     u8 type  u32 flags  u32 origin  u64 seq  i64 time_ns  u64 max_value      (all types)
 *     PUT, APPEND:    u64 ino  u32 data_len  data
 *     CREATE, MKDIR:  u64 parent  u32 mode  u32 uid  u32 gid  u32 name_len  name
 *     SYMLINK:        u64 parent  u32 uid  u32 gid  u32 name_len  name  u32 data_len  data
 *     UNLINK, RMDIR:  u64 parent  u32 name_len  name
 *     RENAME:         u64 parent  u64 newparent  u32 name_len  name  u32 newname_len  newname
 *     SETATTR:        u64 ino  u32 mode  u32 uid  u32 gid  u64 size  i64 atime_ns  i64 mtime_ns
 *     NOOP:           nothing more
 *
 * Fields a type does not carry are not encoded and decode as zero. The decoder checks every
 * length against what is left before it reads, and never allocates: the op it fills borrows its
 * name, newname and data from the decoded buffer.
 */
#include "kvfs/op.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define OP_HEADER_SIZE (1 + 4 + 4 + 8 + 8 + 8)

/* A write cursor; the caller has sized the buffer with op_encoded_size(). */
struct wcur {
	uint8_t *p;
};

/* A read cursor that fails (ok = false) instead of reading past the end. */
struct rcur {
	const uint8_t *p;
	size_t left;
	bool ok;
};

static void put_u8(struct wcur *w, uint8_t v)
{
	*w->p++ = v;
}

static void put_u32(struct wcur *w, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		*w->p++ = (uint8_t)(v >> (8 * i));
}

static void put_u64(struct wcur *w, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		*w->p++ = (uint8_t)(v >> (8 * i));
}

/* A u32 length, then the bytes (which may be NULL when len is 0). */
static void put_bytes(struct wcur *w, const void *b, uint32_t len)
{
	put_u32(w, len);
	if (len) {
		memcpy(w->p, b, len);
		w->p += len;
	}
}

static uint8_t get_u8(struct rcur *r)
{
	if (!r->ok || r->left < 1) {
		r->ok = false;
		return 0;
	}
	r->left--;
	return *r->p++;
}

static uint32_t get_u32(struct rcur *r)
{
	uint32_t v = 0;

	if (!r->ok || r->left < 4) {
		r->ok = false;
		return 0;
	}
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)r->p[i] << (8 * i);
	r->p += 4;
	r->left -= 4;
	return v;
}

static uint64_t get_u64(struct rcur *r)
{
	uint64_t v = 0;

	if (!r->ok || r->left < 8) {
		r->ok = false;
		return 0;
	}
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)r->p[i] << (8 * i);
	r->p += 8;
	r->left -= 8;
	return v;
}

/*
 * A u32 length of at most max, then that many bytes, which *out then borrows. Fails the cursor
 * if the length is over max or runs past the end.
 */
static void get_bytes(struct rcur *r, const void **out, uint32_t *len, uint32_t max)
{
	uint32_t n = get_u32(r);

	*out = NULL;
	*len = 0;
	if (!r->ok || n > max || n > r->left) {
		r->ok = false;
		return;
	}
	*out = n ? r->p : NULL;
	*len = n;
	r->p += n;
	r->left -= n;
}

size_t op_encoded_size(const struct kvfs_op *op)
{
	size_t n = OP_HEADER_SIZE;

	switch (op->type) {
	case KVFS_OP_PUT:
	case KVFS_OP_APPEND:
		return n + 8 + 4 + op->data_len;
	case KVFS_OP_CREATE:
	case KVFS_OP_MKDIR:
		return n + 8 + 4 + 4 + 4 + 4 + op->name_len;
	case KVFS_OP_SYMLINK:
		return n + 8 + 4 + 4 + 4 + op->name_len + 4 + op->data_len;
	case KVFS_OP_UNLINK:
	case KVFS_OP_RMDIR:
		return n + 8 + 4 + op->name_len;
	case KVFS_OP_RENAME:
		return n + 8 + 8 + 4 + op->name_len + 4 + op->newname_len;
	case KVFS_OP_SETATTR:
		return n + 8 + 4 + 4 + 4 + 8 + 8 + 8;
	default:
		return n;
	}
}

/*
 * Encodes op into buf (op_encoded_size(op) bytes). Cannot fail; an unknown type is encoded as its
 * header alone, which the decoder then rejects.
 */
size_t op_encode(const struct kvfs_op *op, uint8_t *buf)
{
	struct wcur w = {buf};

	put_u8(&w, op->type);
	put_u32(&w, op->flags);
	put_u32(&w, op->origin);
	put_u64(&w, op->seq);
	put_u64(&w, (uint64_t)op->time_ns);
	put_u64(&w, op->max_value);

	switch (op->type) {
	case KVFS_OP_PUT:
	case KVFS_OP_APPEND:
		put_u64(&w, op->ino);
		put_bytes(&w, op->data, op->data_len);
		break;
	case KVFS_OP_CREATE:
	case KVFS_OP_MKDIR:
		put_u64(&w, op->parent);
		put_u32(&w, op->mode);
		put_u32(&w, op->uid);
		put_u32(&w, op->gid);
		put_bytes(&w, op->name, op->name_len);
		break;
	case KVFS_OP_SYMLINK:
		put_u64(&w, op->parent);
		put_u32(&w, op->uid);
		put_u32(&w, op->gid);
		put_bytes(&w, op->name, op->name_len);
		put_bytes(&w, op->data, op->data_len);
		break;
	case KVFS_OP_UNLINK:
	case KVFS_OP_RMDIR:
		put_u64(&w, op->parent);
		put_bytes(&w, op->name, op->name_len);
		break;
	case KVFS_OP_RENAME:
		put_u64(&w, op->parent);
		put_u64(&w, op->newparent);
		put_bytes(&w, op->name, op->name_len);
		put_bytes(&w, op->newname, op->newname_len);
		break;
	case KVFS_OP_SETATTR:
		put_u64(&w, op->ino);
		put_u32(&w, op->mode);
		put_u32(&w, op->uid);
		put_u32(&w, op->gid);
		put_u64(&w, op->size);
		put_u64(&w, (uint64_t)op->atime_ns);
		put_u64(&w, (uint64_t)op->mtime_ns);
		break;
	default:
		break;
	}
	return (size_t)(w.p - buf);
}

/* Decodes exactly one operation, see op.h. -EBADMSG on any malformation; never allocates. */
int op_decode(struct kvfs_op *op, const uint8_t *buf, size_t len)
{
	struct rcur r = {buf, len, true};
	const void *b;

	memset(op, 0, sizeof(*op));
	op->type = get_u8(&r);
	op->flags = get_u32(&r);
	op->origin = get_u32(&r);
	op->seq = get_u64(&r);
	op->time_ns = (int64_t)get_u64(&r);
	op->max_value = get_u64(&r);
	if (!r.ok)
		return -EBADMSG;

	switch (op->type) {
	case KVFS_OP_NOOP:
		break;
	case KVFS_OP_PUT:
	case KVFS_OP_APPEND:
		op->ino = get_u64(&r);
		get_bytes(&r, &b, &op->data_len, KVFS_DATA_MAX);
		op->data = b;
		break;
	case KVFS_OP_CREATE:
	case KVFS_OP_MKDIR:
		op->parent = get_u64(&r);
		op->mode = get_u32(&r);
		op->uid = get_u32(&r);
		op->gid = get_u32(&r);
		get_bytes(&r, &b, &op->name_len, KVFS_NAME_MAX);
		op->name = b;
		break;
	case KVFS_OP_SYMLINK:
		op->parent = get_u64(&r);
		op->uid = get_u32(&r);
		op->gid = get_u32(&r);
		get_bytes(&r, &b, &op->name_len, KVFS_NAME_MAX);
		op->name = b;
		get_bytes(&r, &b, &op->data_len, KVFS_DATA_MAX);
		op->data = b;
		break;
	case KVFS_OP_UNLINK:
	case KVFS_OP_RMDIR:
		op->parent = get_u64(&r);
		get_bytes(&r, &b, &op->name_len, KVFS_NAME_MAX);
		op->name = b;
		break;
	case KVFS_OP_RENAME:
		op->parent = get_u64(&r);
		op->newparent = get_u64(&r);
		get_bytes(&r, &b, &op->name_len, KVFS_NAME_MAX);
		op->name = b;
		get_bytes(&r, &b, &op->newname_len, KVFS_NAME_MAX);
		op->newname = b;
		break;
	case KVFS_OP_SETATTR:
		op->ino = get_u64(&r);
		op->mode = get_u32(&r);
		op->uid = get_u32(&r);
		op->gid = get_u32(&r);
		op->size = get_u64(&r);
		op->atime_ns = (int64_t)get_u64(&r);
		op->mtime_ns = (int64_t)get_u64(&r);
		break;
	default:
		return -EBADMSG;
	}
	if (!r.ok || r.left != 0)
		return -EBADMSG;
	return 0;
}

const char *op_type_name(unsigned type)
{
	static const char *const names[KVFS_OP__COUNT] = {
	    [KVFS_OP_NOOP] = "noop",       [KVFS_OP_PUT] = "put",     [KVFS_OP_APPEND] = "append",
	    [KVFS_OP_CREATE] = "create",   [KVFS_OP_MKDIR] = "mkdir", [KVFS_OP_SYMLINK] = "symlink",
	    [KVFS_OP_UNLINK] = "unlink",   [KVFS_OP_RMDIR] = "rmdir", [KVFS_OP_RENAME] = "rename",
	    [KVFS_OP_SETATTR] = "setattr",
	};

	return type < KVFS_OP__COUNT ? names[type] : "unknown";
}
