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
 *     LINK:           u64 ino  u64 parent  u32 name_len  name
 *     MKNOD:          u64 parent  u32 mode  u32 uid  u32 gid  u32 rdev  u32 name_len  name
 *     FALLOCATE:      u64 ino  u64 offset  u64 length
 *     SETXATTR:       u64 ino  u32 name_len  name  u32 data_len  data
 *     REMOVEXATTR:    u64 ino  u32 name_len  name
 *     CONFIG:         u8 version  u32 count  count x (u32 id, u8 role)  u32 req_len  req
 *                     (data is version .. the last member; config.c checks what they say)
 *     LOCK:           u64 ino  u32 lk_node  u64 lk_inc  u64 lk_owner  u8 lk_kind  u8 lk_type
 *                     u64 lk_start  u64 lk_end  u32 lk_pid
 *     UNLOCK_OWNER:   u64 ino  u32 lk_node  u64 lk_inc  u64 lk_owner  u8 lk_kind
 *     RELEASE_NODE:   u32 lk_node  u64 lk_inc
 *     NOOP:           nothing more
 *
 * Types 0..9 are those of protocol 1, laid out as they were then; 10.. came with protocol 2
 * (KVFS_OP_RULES2 in the flags marks an op written under its rules, whatever its type); 14 and 15
 * (extended attributes) with protocol 4. Fields a
 * type does not carry are not encoded and decode as zero. The decoder checks every length against
 * what is left before it reads, and never allocates: the op it fills borrows its name, newname
 * and data from the decoded buffer.
 */
#include "kvfs/op.h"

#include "kvfs/config.h"
#include "kvfs/store_xattr.h"
#include "kvfs/wire.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define OP_HEADER_SIZE KVFS_OP_HEADER_SIZE

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
	case KVFS_OP_LINK:
		return n + 8 + 8 + 4 + op->name_len;
	case KVFS_OP_MKNOD:
		return n + 8 + 4 + 4 + 4 + 4 + 4 + op->name_len;
	case KVFS_OP_FALLOCATE:
		return n + 8 + 8 + 8;
	case KVFS_OP_CONFIG:
		return n + op->data_len + 4 + op->name_len;
	case KVFS_OP_SETXATTR:
		return n + 8 + 4 + op->name_len + 4 + op->data_len;
	case KVFS_OP_REMOVEXATTR:
		return n + 8 + 4 + op->name_len;
	case KVFS_OP_LOCK:
		return n + 8 + 4 + 8 + 8 + 1 + 1 + 8 + 8 + 4;
	case KVFS_OP_UNLOCK_OWNER:
		return n + 8 + 4 + 8 + 8 + 1;
	case KVFS_OP_RELEASE_NODE:
		return n + 4 + 8;
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
	struct kvfs_wcur w = {buf};

	wire_put_u8(&w, op->type);
	wire_put_u32(&w, op->flags);
	wire_put_u32(&w, op->origin);
	wire_put_u64(&w, op->seq);
	wire_put_u64(&w, (uint64_t)op->time_ns);
	wire_put_u64(&w, op->max_value);

	switch (op->type) {
	case KVFS_OP_PUT:
	case KVFS_OP_APPEND:
		wire_put_u64(&w, op->ino);
		wire_put_bytes(&w, op->data, op->data_len);
		break;
	case KVFS_OP_CREATE:
	case KVFS_OP_MKDIR:
		wire_put_u64(&w, op->parent);
		wire_put_u32(&w, op->mode);
		wire_put_u32(&w, op->uid);
		wire_put_u32(&w, op->gid);
		wire_put_bytes(&w, op->name, op->name_len);
		break;
	case KVFS_OP_SYMLINK:
		wire_put_u64(&w, op->parent);
		wire_put_u32(&w, op->uid);
		wire_put_u32(&w, op->gid);
		wire_put_bytes(&w, op->name, op->name_len);
		wire_put_bytes(&w, op->data, op->data_len);
		break;
	case KVFS_OP_UNLINK:
	case KVFS_OP_RMDIR:
		wire_put_u64(&w, op->parent);
		wire_put_bytes(&w, op->name, op->name_len);
		break;
	case KVFS_OP_RENAME:
		wire_put_u64(&w, op->parent);
		wire_put_u64(&w, op->newparent);
		wire_put_bytes(&w, op->name, op->name_len);
		wire_put_bytes(&w, op->newname, op->newname_len);
		break;
	case KVFS_OP_SETATTR:
		wire_put_u64(&w, op->ino);
		wire_put_u32(&w, op->mode);
		wire_put_u32(&w, op->uid);
		wire_put_u32(&w, op->gid);
		wire_put_u64(&w, op->size);
		wire_put_u64(&w, (uint64_t)op->atime_ns);
		wire_put_u64(&w, (uint64_t)op->mtime_ns);
		break;
	case KVFS_OP_LINK:
		wire_put_u64(&w, op->ino);
		wire_put_u64(&w, op->parent);
		wire_put_bytes(&w, op->name, op->name_len);
		break;
	case KVFS_OP_MKNOD:
		wire_put_u64(&w, op->parent);
		wire_put_u32(&w, op->mode);
		wire_put_u32(&w, op->uid);
		wire_put_u32(&w, op->gid);
		wire_put_u32(&w, op->rdev);
		wire_put_bytes(&w, op->name, op->name_len);
		break;
	case KVFS_OP_FALLOCATE:
		wire_put_u64(&w, op->ino);
		wire_put_u64(&w, op->offset);
		wire_put_u64(&w, op->length);
		break;
	case KVFS_OP_CONFIG:
		if (op->data_len)
			memcpy(w.p, op->data, op->data_len);
		w.p += op->data_len;
		wire_put_bytes(&w, op->name, op->name_len);
		break;
	case KVFS_OP_SETXATTR:
		wire_put_u64(&w, op->ino);
		wire_put_bytes(&w, op->name, op->name_len);
		wire_put_bytes(&w, op->data, op->data_len);
		break;
	case KVFS_OP_REMOVEXATTR:
		wire_put_u64(&w, op->ino);
		wire_put_bytes(&w, op->name, op->name_len);
		break;
	case KVFS_OP_LOCK:
	case KVFS_OP_UNLOCK_OWNER:
		wire_put_u64(&w, op->ino);
		wire_put_u32(&w, op->lk_node);
		wire_put_u64(&w, op->lk_inc);
		wire_put_u64(&w, op->lk_owner);
		wire_put_u8(&w, op->lk_kind);
		if (op->type == KVFS_OP_UNLOCK_OWNER)
			break;
		wire_put_u8(&w, op->lk_type);
		wire_put_u64(&w, op->lk_start);
		wire_put_u64(&w, op->lk_end);
		wire_put_u32(&w, op->lk_pid);
		break;
	case KVFS_OP_RELEASE_NODE:
		wire_put_u32(&w, op->lk_node);
		wire_put_u64(&w, op->lk_inc);
		break;
	default:
		break;
	}
	return (size_t)(w.p - buf);
}

/* A CONFIG body's layout (config.c checks what it says): version, count, members, request. */
static void decode_config(struct kvfs_rcur *r, struct kvfs_op *op)
{
	const uint8_t *start = r->p, *b;
	uint32_t count;

	(void)wire_get_u8(r);
	count = wire_get_u32(r);
	if (!r->ok || count > KVFS_CONFIG_MAX) {
		r->ok = false;
		return;
	}
	wire_get_raw(r, &b, 5 * (size_t)count);
	if (!r->ok)
		return;
	op->data = start;
	op->data_len = (uint32_t)(r->p - start);
	wire_get_bytes(r, &b, &op->name_len, KVFS_CONFIG_REQ_MAX);
	op->name = (const char *)b;
}

/* Decodes exactly one operation, see op.h. -EBADMSG on any malformation; never allocates. */
int op_decode(struct kvfs_op *op, const uint8_t *buf, size_t len)
{
	struct kvfs_rcur r = {buf, len, true};
	const uint8_t *b;

	memset(op, 0, sizeof(*op));
	op->type = wire_get_u8(&r);
	op->flags = wire_get_u32(&r);
	op->origin = wire_get_u32(&r);
	op->seq = wire_get_u64(&r);
	op->time_ns = (int64_t)wire_get_u64(&r);
	op->max_value = wire_get_u64(&r);
	if (!r.ok)
		return -EBADMSG;

	switch (op->type) {
	case KVFS_OP_NOOP:
		break;
	case KVFS_OP_PUT:
	case KVFS_OP_APPEND:
		op->ino = wire_get_u64(&r);
		wire_get_bytes(&r, &b, &op->data_len, KVFS_DATA_MAX);
		op->data = b;
		break;
	case KVFS_OP_CREATE:
	case KVFS_OP_MKDIR:
		op->parent = wire_get_u64(&r);
		op->mode = wire_get_u32(&r);
		op->uid = wire_get_u32(&r);
		op->gid = wire_get_u32(&r);
		wire_get_bytes(&r, &b, &op->name_len, KVFS_NAME_MAX);
		op->name = (const char *)b;
		break;
	case KVFS_OP_SYMLINK:
		op->parent = wire_get_u64(&r);
		op->uid = wire_get_u32(&r);
		op->gid = wire_get_u32(&r);
		wire_get_bytes(&r, &b, &op->name_len, KVFS_NAME_MAX);
		op->name = (const char *)b;
		wire_get_bytes(&r, &b, &op->data_len, KVFS_DATA_MAX);
		op->data = b;
		break;
	case KVFS_OP_UNLINK:
	case KVFS_OP_RMDIR:
		op->parent = wire_get_u64(&r);
		wire_get_bytes(&r, &b, &op->name_len, KVFS_NAME_MAX);
		op->name = (const char *)b;
		break;
	case KVFS_OP_RENAME:
		op->parent = wire_get_u64(&r);
		op->newparent = wire_get_u64(&r);
		wire_get_bytes(&r, &b, &op->name_len, KVFS_NAME_MAX);
		op->name = (const char *)b;
		wire_get_bytes(&r, &b, &op->newname_len, KVFS_NAME_MAX);
		op->newname = (const char *)b;
		break;
	case KVFS_OP_SETATTR:
		op->ino = wire_get_u64(&r);
		op->mode = wire_get_u32(&r);
		op->uid = wire_get_u32(&r);
		op->gid = wire_get_u32(&r);
		op->size = wire_get_u64(&r);
		op->atime_ns = (int64_t)wire_get_u64(&r);
		op->mtime_ns = (int64_t)wire_get_u64(&r);
		break;
	case KVFS_OP_LINK:
		op->ino = wire_get_u64(&r);
		op->parent = wire_get_u64(&r);
		wire_get_bytes(&r, &b, &op->name_len, KVFS_NAME_MAX);
		op->name = (const char *)b;
		break;
	case KVFS_OP_MKNOD:
		op->parent = wire_get_u64(&r);
		op->mode = wire_get_u32(&r);
		op->uid = wire_get_u32(&r);
		op->gid = wire_get_u32(&r);
		op->rdev = wire_get_u32(&r);
		wire_get_bytes(&r, &b, &op->name_len, KVFS_NAME_MAX);
		op->name = (const char *)b;
		break;
	case KVFS_OP_FALLOCATE:
		op->ino = wire_get_u64(&r);
		op->offset = wire_get_u64(&r);
		op->length = wire_get_u64(&r);
		break;
	case KVFS_OP_CONFIG:
		decode_config(&r, op);
		break;
	case KVFS_OP_SETXATTR:
		op->ino = wire_get_u64(&r);
		wire_get_bytes(&r, &b, &op->name_len, KVFS_XATTR_NAME_MAX);
		op->name = (const char *)b;
		wire_get_bytes(&r, &b, &op->data_len, KVFS_XATTR_VALUE_MAX);
		op->data = b;
		break;
	case KVFS_OP_REMOVEXATTR:
		op->ino = wire_get_u64(&r);
		wire_get_bytes(&r, &b, &op->name_len, KVFS_XATTR_NAME_MAX);
		op->name = (const char *)b;
		break;
	case KVFS_OP_LOCK:
	case KVFS_OP_UNLOCK_OWNER:
		op->ino = wire_get_u64(&r);
		op->lk_node = wire_get_u32(&r);
		op->lk_inc = wire_get_u64(&r);
		op->lk_owner = wire_get_u64(&r);
		op->lk_kind = wire_get_u8(&r);
		if (op->type == KVFS_OP_UNLOCK_OWNER)
			break;
		op->lk_type = wire_get_u8(&r);
		op->lk_start = wire_get_u64(&r);
		op->lk_end = wire_get_u64(&r);
		op->lk_pid = wire_get_u32(&r);
		break;
	case KVFS_OP_RELEASE_NODE:
		op->lk_node = wire_get_u32(&r);
		op->lk_inc = wire_get_u64(&r);
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
	    [KVFS_OP_NOOP] = "noop",           [KVFS_OP_PUT] = "put",
	    [KVFS_OP_APPEND] = "append",       [KVFS_OP_CREATE] = "create",
	    [KVFS_OP_MKDIR] = "mkdir",         [KVFS_OP_SYMLINK] = "symlink",
	    [KVFS_OP_UNLINK] = "unlink",       [KVFS_OP_RMDIR] = "rmdir",
	    [KVFS_OP_RENAME] = "rename",       [KVFS_OP_SETATTR] = "setattr",
	    [KVFS_OP_LINK] = "link",           [KVFS_OP_MKNOD] = "mknod",
	    [KVFS_OP_FALLOCATE] = "fallocate", [KVFS_OP_CONFIG] = "config",
	    [KVFS_OP_SETXATTR] = "setxattr",   [KVFS_OP_REMOVEXATTR] = "removexattr",
	    [KVFS_OP_LOCK] = "lock",           [KVFS_OP_UNLOCK_OWNER] = "unlock_owner",
	    [KVFS_OP_RELEASE_NODE] = "release_node",
	};

	return type < KVFS_OP__COUNT && names[type] ? names[type] : "unknown";
}
