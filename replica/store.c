/*
 * The store (see store.h): the replica's tree of names and inodes in memory, pins, walks,
 * loading from a snapshot and the exactly-once table; the operations live in store_apply.c.
 *
 * Every inode sits in the number table (store_hash.c), linked or unlinked-but-pinned; every name
 * (a struct kvfs_dentry) other than the root's sits in the name table, keyed by (directory
 * number, name), which makes a rename O(length of the name). A directory keeps its names in a
 * doubly linked list in creation order, which gives readdir and snapshots a stable order; an
 * inode keeps its own names in a singly linked list (a directory has exactly one). An inode is
 * linked while it has a name: nlink counts the names of a non-directory, and is 2 + its
 * subdirectories for a directory.
 */
#include "kvfs/store.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kvfs/op.h"
#include "kvfs/store_xattr.h"
#include "kvfs/value.h"
#include "store_hash.h"
#include "store_internal.h"

struct kvfs_inode *store_inode_new(uint64_t ino, uint32_t mode)
{
	struct kvfs_inode *in = calloc(1, sizeof(*in));

	if (!in)
		return NULL;
	in->ino = ino;
	in->mode = mode;
	in->nlink = S_ISDIR(mode) ? 2 : 0;
	return in;
}

struct kvfs_dentry *store_dentry_new(const char *name, size_t len)
{
	size_t size = offsetof(struct kvfs_dentry, name) + len + 1;
	struct kvfs_dentry *d;

	if (len > UINT32_MAX - 1u)
		return NULL;
	/* At least the whole struct: a short name ends inside its padding. */
	d = calloc(1, size > sizeof(*d) ? size : sizeof(*d));
	if (!d)
		return NULL;
	if (len)
		memcpy(d->name, name, len);
	d->name[len] = '\0';
	d->name_len = (uint32_t)len;
	return d;
}

void store_dentry_free(struct kvfs_dentry *d)
{
	free(d);
}

/* Frees in with the names it still has (the store is closing) and its value reference. */
static void inode_free(struct kvfs_inode *in)
{
	struct kvfs_dentry *d = in->aliases, *next;

	for (; d; d = next) {
		next = d->alias_next;
		store_dentry_free(d);
	}
	value_unref(in->value);
	store_xattr_unref(in->xattrs);
	free(in);
}

void store_attach(struct kvfs_store *s, struct kvfs_inode *dir, struct kvfs_dentry *d)
{
	struct kvfs_dentry *head = dir->child_head;

	d->dir = dir;
	store_hash_add_name(&s->hash, d);
	d->sib_next = NULL;
	if (head) {
		d->sib_prev = head->sib_prev;
		head->sib_prev->sib_next = d;
		head->sib_prev = d;
	} else {
		d->sib_prev = d;
		dir->child_head = d;
	}
	dir->nchildren++;
	if (S_ISDIR(d->in->mode))
		dir->nlink++;
}

void store_detach(struct kvfs_store *s, struct kvfs_dentry *d)
{
	struct kvfs_inode *dir = d->dir;
	struct kvfs_dentry *head = dir->child_head;

	store_hash_del_name(&s->hash, d);
	if (d == head) {
		dir->child_head = d->sib_next;
		if (d->sib_next)
			d->sib_next->sib_prev = d->sib_prev;
	} else {
		d->sib_prev->sib_next = d->sib_next;
		/* The last entry's successor is the first entry's sib_prev. */
		(d->sib_next ? d->sib_next : head)->sib_prev = d->sib_prev;
	}
	d->sib_prev = d->sib_next = NULL;
	dir->nchildren--;
	if (S_ISDIR(d->in->mode))
		dir->nlink--;
	d->dir = NULL;
}

/* Adds d to in's names (most recent first); a non-directory counts it in nlink. */
static void alias_add(struct kvfs_inode *in, struct kvfs_dentry *d)
{
	d->in = in;
	d->alias_next = in->aliases;
	in->aliases = d;
	if (!S_ISDIR(in->mode))
		in->nlink++;
}

/* Takes d off its inode's names, undoing alias_add(); d->in stays set. */
static void alias_del(struct kvfs_dentry *d)
{
	struct kvfs_inode *in = d->in;
	struct kvfs_dentry **pp = &in->aliases;

	while (*pp != d)
		pp = &(*pp)->alias_next;
	*pp = d->alias_next;
	d->alias_next = NULL;
	if (!S_ISDIR(in->mode))
		in->nlink--;
}

void store_replace_alias(struct kvfs_dentry *old, struct kvfs_dentry *nd)
{
	struct kvfs_dentry **pp = &old->in->aliases;

	while (*pp != old)
		pp = &(*pp)->alias_next;
	nd->in = old->in;
	nd->alias_next = old->alias_next;
	*pp = nd;
	old->alias_next = NULL;
}

void store_link_name(struct kvfs_store *s, struct kvfs_inode *dir, struct kvfs_dentry *d,
                     struct kvfs_inode *in)
{
	alias_add(in, d);
	store_attach(s, dir, d);
}

void store_unlink_name(struct kvfs_store *s, struct kvfs_dentry *d)
{
	store_detach(s, d);
	alias_del(d);
}

void store_rebind(struct kvfs_dentry *d, struct kvfs_inode *to)
{
	if (S_ISDIR(d->in->mode))
		d->dir->nlink--;
	alias_del(d);
	alias_add(to, d);
	if (S_ISDIR(to->mode))
		d->dir->nlink++;
}

void store_drop_inode(struct kvfs_store *s, struct kvfs_inode *in, int64_t time_ns)
{
	assert(in->nchildren == 0 && !in->aliases);
	s->inode_count--;
	if (S_ISREG(in->mode))
		s->value_bytes -= value_size(in->value);
	/* An unlinked file open somewhere keeps its attributes (fgetxattr) until it is freed. */
	if (in->xattrs)
		s->xattr_bytes -= in->xattrs->bytes;
	in->nlink = 0;
	in->ctime_ns = time_ns;
	/* Here, not when the last pin goes: pins differ between replicas, the table must not. */
	store_lock_drop_ino(s, in->ino);
	if (in->pins == 0) {
		store_hash_del_ino(&s->hash, in);
		inode_free(in);
	}
}

int store_init(struct kvfs_store **out)
{
	struct kvfs_store *s = calloc(1, sizeof(*s));
	struct kvfs_dentry *d;

	if (!s)
		return -ENOMEM;
	if (store_hash_init(&s->hash))
		goto err_free_store;
	s->root = store_inode_new(KVFS_ROOT_INO, S_IFDIR | 0755);
	if (!s->root)
		goto err_free_hash;
	d = store_dentry_new("", 0);
	if (!d)
		goto err_free_root;
	alias_add(s->root, d);
	store_hash_add_ino(&s->hash, s->root);
	s->inode_count = 1;
	*out = s;
	return 0;

err_free_root:
	free(s->root);
err_free_hash:
	store_hash_free(&s->hash);
err_free_store:
	free(s);
	return -ENOMEM;
}

void store_close(struct kvfs_store *s)
{
	if (!s)
		return;
	store_hash_drain(&s->hash, inode_free);
	store_hash_free(&s->hash);
	free(s->sessions);
	free(s->locks);
	free(s);
}

uint64_t store_applied_index(const struct kvfs_store *s)
{
	return s->applied_index;
}

const struct kvfs_config *store_config(const struct kvfs_store *s, uint64_t *index)
{
	if (index)
		*index = s->config_index;
	return s->config_index ? &s->config : NULL;
}

uint64_t store_applied_epoch(const struct kvfs_store *s)
{
	return s->applied_epoch;
}

uint64_t store_inode_count(const struct kvfs_store *s)
{
	return s->inode_count;
}

uint64_t store_value_bytes(const struct kvfs_store *s)
{
	return s->value_bytes;
}

struct kvfs_inode *store_get(const struct kvfs_store *s, uint64_t ino)
{
	return store_hash_get_ino(&s->hash, ino);
}

struct kvfs_inode *store_get_linked(const struct kvfs_store *s, uint64_t ino)
{
	struct kvfs_inode *in = store_get(s, ino);

	return in && in->nlink ? in : NULL;
}

struct kvfs_dentry *store_find_name(const struct kvfs_store *s, const struct kvfs_inode *dir,
                                    const char *name, size_t len)
{
	if (!dir || !S_ISDIR(dir->mode) || len == 0 || dir->nchildren == 0)
		return NULL;
	return store_hash_get_name(&s->hash, dir, name, len);
}

const struct kvfs_dentry *store_lookup_dentry(const struct kvfs_store *s,
                                              const struct kvfs_inode *dir, const char *name,
                                              size_t len)
{
	return store_find_name(s, dir, name, len);
}

struct kvfs_inode *store_lookup(const struct kvfs_store *s, const struct kvfs_inode *dir,
                                const char *name, size_t len)
{
	const struct kvfs_dentry *d = store_lookup_dentry(s, dir, name, len);

	return d ? d->in : NULL;
}

struct kvfs_inode *store_dir_of(const struct kvfs_inode *dir)
{
	return dir->aliases ? dir->aliases->dir : NULL;
}

struct kvfs_inode *store_parent(const struct kvfs_inode *dir)
{
	if (!dir || !S_ISDIR(dir->mode) || !dir->aliases)
		return NULL;
	/* The root's name is in no directory: its ".." is itself. */
	return dir->aliases->dir ? dir->aliases->dir : dir->aliases->in;
}

void store_pin(struct kvfs_store *s, struct kvfs_inode *in, uint64_t n)
{
	/* Stuck for good rather than wrapped: a count too low would free an inode still known. */
	in->pins = n >= (uint64_t)KVFS_PINS_STUCK - in->pins ? KVFS_PINS_STUCK : in->pins + (uint32_t)n;
}

void store_unpin(struct kvfs_store *s, struct kvfs_inode *in, uint64_t n)
{
	if (in->pins == KVFS_PINS_STUCK)
		return;
	assert(in->pins >= n);
	in->pins -= (uint32_t)n;
	if (in->pins == 0 && in->nlink == 0) {
		store_hash_del_ino(&s->hash, in);
		inode_free(in);
	}
}

const struct kvfs_dentry *store_child_first(const struct kvfs_inode *dir)
{
	return dir->child_head;
}

const struct kvfs_dentry *store_child_next(const struct kvfs_dentry *d)
{
	return d->sib_next;
}

size_t store_path_len(const struct kvfs_dentry *d)
{
	size_t n = 0;

	for (; d && d->dir; d = d->dir->aliases)
		n += d->name_len + (store_dir_of(d->dir) ? 1 : 0);
	return n;
}

static bool name_is(const char *name, size_t len, const char *s)
{
	return len == strlen(s) && memcmp(name, s, len) == 0;
}

static bool name_starts(const char *name, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && memcmp(name, prefix, n) == 0;
}

int store_check_name(const char *name, size_t len)
{
	if (len == 0 || name_is(name, len, ".") || name_is(name, len, ".."))
		return -EINVAL;
	if (memchr(name, '/', len) || memchr(name, '\0', len))
		return -EINVAL;
	if (len > KVFS_NAME_MAX)
		return -ENAMETOOLONG;
	return 0;
}

/*
 * Protocol 1 counted the path from the root against KVFS_PATH_MAX; the kernel already holds
 * every path a process passes to PATH_MAX, relative to its working directory, so protocol 2
 * (rules2) does not: a tree may be deeper than any one path can name from the root.
 */
int store_check_new_name(const struct kvfs_inode *dir, const char *name, size_t len, bool rules2)
{
	int rv = store_check_name(name, len);

	if (rv)
		return rv;
	if (dir->nchildren == UINT32_MAX)
		return -ENOSPC;
	if (dir->ino != KVFS_ROOT_INO) {
		if (rules2)
			return 0;
		return store_path_len(dir->aliases) + 1 + len > KVFS_PATH_MAX ? -ENAMETOOLONG : 0;
	}
	if (name_is(name, len, ".status") || name_is(name, len, ".status.json"))
		return -EEXIST;
	if (name_starts(name, len, ".status") || name_starts(name, len, ".kvfs"))
		return -EACCES;
	return 0;
}

/*
 * Pre-order over names, without recursion: trees can be thousands of levels deep. An inode with
 * several names is marked with the walk's number the first time it is reached (a directory or
 * a single-named inode is reached once). The walk counter lives in the store, which therefore
 * changes under a const pointer: stores are only ever allocated by store_init(), never defined
 * const, and a walk is not reentrant on one store.
 */
/* The mark of a new walk. When the 32-bit counter wraps, every inode's mark goes back to 0 (no
 * walk's) first, so that no mark left from 2^32 walks ago passes for the new walk's. */
static uint32_t next_walk(struct kvfs_store *s)
{
	if (++s->walks == 0) {
		for (size_t b = 0; b < s->hash.ino_buckets; b++)
			for (struct kvfs_inode *in = s->hash.by_ino[b]; in; in = in->ino_next)
				in->visit_mark = 0;
		s->walks = 1;
	}
	return s->walks;
}

int store_foreach(const struct kvfs_store *s, kvfs_store_visit_fn fn, void *arg)
{
	const struct kvfs_dentry *top = s->root->aliases, *d = top;
	uint32_t mark = next_walk((struct kvfs_store *)s);
	int rv;

	while (d) {
		struct kvfs_inode *in = d->in;
		bool first = true;

		if (!S_ISDIR(in->mode) && in->nlink > 1) {
			first = in->visit_mark != mark;
			in->visit_mark = mark;
		}
		rv = fn(arg, d, first);
		if (rv)
			return rv;
		if (in->child_head) {
			d = in->child_head;
			continue;
		}
		while (d != top && !d->sib_next)
			d = d->dir->aliases;
		d = d == top ? NULL : d->sib_next;
	}
	return 0;
}

/* The types store_apply() makes. */
static bool type_known(uint32_t type)
{
	return type == S_IFREG || type == S_IFDIR || type == S_IFLNK || type == S_IFIFO ||
	       type == S_IFSOCK || type == S_IFCHR || type == S_IFBLK;
}

/* Loading: the linked directory parent_ino where `name` is free and well-formed, or NULL. */
static struct kvfs_inode *load_dir(const struct kvfs_store *s, uint64_t parent_ino,
                                   const char *name, uint32_t name_len)
{
	struct kvfs_inode *dir = store_get_linked(s, parent_ino);

	if (!dir || !S_ISDIR(dir->mode) || store_check_name(name, name_len))
		return NULL;
	return store_lookup(s, dir, name, name_len) ? NULL : dir;
}

/*
 * See store.h. Checks that the inode makes a valid tree: a known ino is -EBADMSG, as are a number
 * below KVFS_INO_BASE (other than the root), an unknown type, a device number on anything but a
 * device, a value on anything but a file or symlink, a symlink without one, and a malformed or
 * taken name. Path lengths and reserved names are not checked: a renamed directory can
 * legitimately hold paths longer than KVFS_PATH_MAX.
 */
int store_load_inode(struct kvfs_store *s, uint64_t parent_ino, const char *name, uint32_t name_len,
                     const struct kvfs_inode *in)
{
	uint32_t type = in->mode & S_IFMT;
	struct kvfs_inode *dir, *n;
	struct kvfs_dentry *d;

	if (in->ino == KVFS_ROOT_INO) {
		if (parent_ino != 0 || type != S_IFDIR || name_len != 0 || in->value || in->rdev)
			return -EBADMSG;
		s->root->mode = in->mode;
		s->root->uid = in->uid;
		s->root->gid = in->gid;
		s->root->atime_ns = in->atime_ns;
		s->root->mtime_ns = in->mtime_ns;
		s->root->ctime_ns = in->ctime_ns;
		return 0;
	}
	if (in->ino < KVFS_INO_BASE || store_get(s, in->ino) || !type_known(type))
		return -EBADMSG;
	if (in->rdev && type != S_IFCHR && type != S_IFBLK)
		return -EBADMSG;
	if (in->value && type != S_IFREG && type != S_IFLNK)
		return -EBADMSG;
	if (type == S_IFLNK && value_size(in->value) == 0)
		return -EBADMSG;
	dir = load_dir(s, parent_ino, name, name_len);
	if (!dir)
		return -EBADMSG;

	n = store_inode_new(in->ino, in->mode);
	d = store_dentry_new(name, name_len);
	if (!n || !d) {
		free(n);
		store_dentry_free(d);
		return -ENOMEM;
	}
	n->uid = in->uid;
	n->gid = in->gid;
	n->rdev = in->rdev;
	n->atime_ns = in->atime_ns;
	n->mtime_ns = in->mtime_ns;
	n->ctime_ns = in->ctime_ns;
	n->value = value_ref(in->value);
	store_hash_grow(&s->hash);
	store_hash_add_ino(&s->hash, n);
	store_link_name(s, dir, d, n);
	s->inode_count++;
	if (type == S_IFREG)
		s->value_bytes += value_size(n->value);
	return 0;
}

/* See store.h: another name for a linked non-directory that has fewer than KVFS_LINK_MAX. */
int store_load_link(struct kvfs_store *s, uint64_t parent_ino, const char *name, uint32_t name_len,
                    uint64_t ino)
{
	struct kvfs_inode *in = store_get_linked(s, ino), *dir;
	struct kvfs_dentry *d;

	if (!in || S_ISDIR(in->mode) || in->nlink >= KVFS_LINK_MAX)
		return -EBADMSG;
	dir = load_dir(s, parent_ino, name, name_len);
	if (!dir)
		return -EBADMSG;
	d = store_dentry_new(name, name_len);
	if (!d)
		return -ENOMEM;
	store_hash_grow(&s->hash);
	store_link_name(s, dir, d, in);
	return 0;
}

void store_load_done(struct kvfs_store *s, uint64_t index, uint64_t epoch)
{
	s->applied_index = index;
	s->applied_epoch = epoch;
}

void store_load_config(struct kvfs_store *s, const struct kvfs_config *c, uint64_t index)
{
	s->config = *c;
	s->config_index = index;
}

size_t store_session_find(const struct kvfs_store *s, uint32_t origin, bool *found)
{
	size_t lo = 0, hi = s->nsessions;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->sessions[mid].origin < origin)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < s->nsessions && s->sessions[lo].origin == origin;
	return lo;
}

int store_session_reserve(struct kvfs_store *s)
{
	struct kvfs_session *t;
	size_t cap;

	if (s->nsessions < s->sessions_cap)
		return 0;
	cap = s->sessions_cap ? s->sessions_cap * 2 : 8;
	t = realloc(s->sessions, cap * sizeof(*t));
	if (!t)
		return -ENOMEM;
	s->sessions = t;
	s->sessions_cap = cap;
	return 0;
}

void store_session_set(struct kvfs_store *s, const struct kvfs_session *sess)
{
	bool found;
	size_t i = store_session_find(s, sess->origin, &found);

	if (!found) {
		assert(s->nsessions < s->sessions_cap);
		memmove(&s->sessions[i + 1], &s->sessions[i],
		        (s->nsessions - i) * sizeof(*s->sessions));
		s->nsessions++;
	}
	s->sessions[i] = *sess;
}

/* Visits the sessions in increasing origin order; a non-zero return stops and is returned. */
int store_session_foreach(const struct kvfs_store *s, kvfs_store_session_fn fn, void *arg)
{
	for (size_t i = 0; i < s->nsessions; i++) {
		int rv = fn(arg, &s->sessions[i]);

		if (rv)
			return rv;
	}
	return 0;
}

/* Adds a session while loading a snapshot: -EBADMSG for origin or seq 0, a seq over
 * KVFS_SEQ_MAX (store_apply never records one) or a known origin. */
int store_session_load(struct kvfs_store *s, const struct kvfs_session *sess)
{
	bool found;

	if (sess->origin == 0 || sess->seq == 0 || sess->seq > KVFS_SEQ_MAX)
		return -EBADMSG;
	store_session_find(s, sess->origin, &found);
	if (found)
		return -EBADMSG;
	if (store_session_reserve(s))
		return -ENOMEM;
	store_session_set(s, sess);
	return 0;
}

void store_exchange(struct kvfs_store *a, struct kvfs_store *b)
{
	struct kvfs_store t = *a;

	*a = *b;
	*b = t;
}

bool store_session_get(const struct kvfs_store *s, uint32_t origin, struct kvfs_session *out)
{
	bool found;
	size_t i = store_session_find(s, origin, &found);

	if (found)
		*out = s->sessions[i];
	return found;
}
