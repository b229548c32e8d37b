/*
 * Directory listings through FUSE: opendir takes the whole listing of a directory at once into its
 * handle (".", "..", then its entries in the store's order), so the offsets readdir hands out stay
 * valid whatever changes later; readdir and readdirplus answer from that copy; releasedir frees
 * it. Under --read linearizable, opendir waits for the node's read barrier first (fuse_ops_gate),
 * so a listing shows every name committed before it began.
 *
 * readdirplus gives each entry's attributes with its name, so `ls -l` costs no LOOKUP per name.
 * The kernel then counts a lookup for every entry given with an inode, as for a LOOKUP reply:
 * each is pinned here (fuse_ops_reply_entry's rule), and the FORGET that the kernel sends when it
 * lets the inode go drops it. The kernel caches what it is given for the usual entry and
 * attribute timeouts, and the invalidations of fuse_ops_on_apply keep it correct as they keep the
 * LOOKUP replies correct.
 */
#include "fs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h> /* R_OK, X_OK */

#include "kvfs/store.h"

static void gated_opendir(fuse_req_t req, struct kvfs_fs *fs, fuse_ino_t ino, const char *name,
                          struct fuse_file_info *fi)
{
	const struct kvfs_dentry *c;
	struct kvfs_inode *dir, *up;
	struct handle *h;
	size_t n = 0, cap;
	int rv = fuse_ops_dir(req, fs, ino, R_OK, &dir);

	if (rv < 0) {
		fuse_reply_err(req, -rv);
		return;
	}
	/* The listing is taken once here, so readdir offsets stay valid whatever changes later. */
	cap = dir->nchildren + 2;
	h = calloc(1, sizeof(*h));
	if (!h)
		goto err_nomem;
	h->kind = HANDLE_DIR;
	h->ents = calloc(cap, sizeof(*h->ents));
	if (!h->ents)
		goto err_free;
	h->ents[n++] = (struct dirent_snap){.name = strdup("."), .ino = dir->ino, .mode = S_IFDIR};
	up = store_parent(dir); /* NULL once unlinked */
	h->ents[n++] = (struct dirent_snap){
	    .name = strdup(".."), .ino = up ? up->ino : dir->ino, .mode = S_IFDIR};
	/* The virtual files (/.status ...) are reachable by name but never listed (DESIGN §1, like
	 * ZFS's snapdir=hidden), so tar, rsync -a --delete, cp -a and find copy only user data. */
	for (c = store_child_first(dir); c && n < cap; c = store_child_next(c))
		h->ents[n++] = (struct dirent_snap){
		    .name = strdup(c->name), .ino = c->in->ino, .mode = c->in->mode & S_IFMT};
	h->nents = n;
	for (size_t i = 0; i < n; i++)
		if (!h->ents[i].name)
			goto err_free;
	fuse_file_link_handle(fs, h);
	fi->fh = (uint64_t)(uintptr_t)h;
	if (fuse_reply_open(req, fi) != 0)
		fuse_file_free_handle(fs, h, false);
	return;

err_free:
	for (size_t i = 0; h->ents && i < n; i++)
		free(h->ents[i].name);
	free(h->ents);
	free(h);
err_nomem:
	fuse_reply_err(req, ENOMEM);
}

void fuse_dir_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* --read linearizable: a listing shows every name committed before it began. */
	fuse_ops_gate(req, ino, NULL, fi, true, gated_opendir);
}

void fuse_dir_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                      struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	size_t used = 0;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (size_t i = (size_t)off; i < h->nents; i++) {
		struct stat st = {.st_ino = h->ents[i].ino, .st_mode = h->ents[i].mode};
		size_t need = fuse_add_direntry(req, buf + used, size - used, h->ents[i].name, &st,
		                                (off_t)(i + 1));

		if (need > size - used)
			break;
		used += need;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

/*
 * Whether the kernel may cache the entry d of directory dir as it is now: the name must still
 * lead to the inode the listing took. A name removed, renamed or replaced since opendir is given
 * alone, as readdir gives it: the kernel would otherwise cache a name that no longer exists, or
 * a second name for an inode that moved.
 */
static struct kvfs_inode *entry_now(const struct kvfs_fs *fs, const struct kvfs_inode *dir,
                                    const struct dirent_snap *d)
{
	struct kvfs_inode *in = dir ? store_lookup(fs->store, dir, d->name, strlen(d->name)) : NULL;

	return in && in->ino == d->ino ? in : NULL;
}

void fuse_dir_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                          struct fuse_file_info *fi)
{
	struct kvfs_fs *fs = fuse_req_userdata(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct kvfs_inode *dir = store_get(fs->store, ino), *in;
	char *buf = malloc(size);
	size_t used = 0, i;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* With --no-default-permissions kvfs checks permissions itself: a caller who may not look
	 * names up in dir (no search permission) gets the names alone, as from readdir, and a
	 * LOOKUP refuses it the rest. */
	if (dir && (!S_ISDIR(dir->mode) || fuse_perm_may(req, fs, dir, X_OK) < 0))
		dir = NULL;
	for (i = (size_t)off; i < h->nents; i++) {
		const struct dirent_snap *d = &h->ents[i];
		/* "." and ".." (the first two) count no lookup: the kernel skips them. */
		struct fuse_entry_param e = {.attr = {.st_ino = d->ino, .st_mode = d->mode}};
		size_t need;

		in = i >= 2 ? entry_now(fs, dir, d) : NULL;
		if (in) {
			e.ino = in->ino;
			e.attr_timeout = fs->attr_timeout;
			e.entry_timeout = fs->entry_timeout;
			fuse_ops_fill_attr(fs, in, &e.attr);
		}
		need = fuse_add_direntry_plus(req, buf + used, size - used, d->name, &e,
		                              (off_t)(i + 1));
		if (need > size - used)
			break;
		used += need;
		if (in)
			store_pin(fs->store, in, 1);
	}
	if (fuse_reply_buf(req, buf, used) != 0) {
		/* Interrupted: the kernel took none of them. Nothing changed the store meanwhile
		 * (one thread), so the same entries are found again. */
		for (size_t j = (size_t)off; j < i; j++)
			if (j >= 2 && (in = entry_now(fs, dir, &h->ents[j])) != NULL)
				store_unpin(fs->store, in, 1);
	}
	free(buf);
}

void fuse_dir_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_file_free_handle(fuse_req_userdata(req), (struct handle *)(uintptr_t)fi->fh, false);
	fuse_reply_err(req, 0);
}

void fuse_dir_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0); /* directory changes are durable when their call returns */
}
