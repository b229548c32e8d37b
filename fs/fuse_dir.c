/*
 * Directory listings through FUSE: opendir takes the whole listing of a directory at once into its
 * handle (".", "..", then its entries in the store's order), so the offsets readdir hands out stay
 * valid whatever changes later; readdir answers from that copy; releasedir frees it. Under --read
 * linearizable, opendir waits for the node's read barrier first (fuse_ops_gate), so a listing
 * shows every name committed before it began.
 */
#include "fs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h> /* R_OK */

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

void fuse_dir_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_file_free_handle(fuse_req_userdata(req), (struct handle *)(uintptr_t)fi->fh, false);
	fuse_reply_err(req, 0);
}

void fuse_dir_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0); /* directory changes are durable when their call returns */
}
