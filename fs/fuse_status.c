/*
 * The virtual files at the root, reachable by name and never listed: /.status, /.status.json and
 * /.metrics, rendered from the node's facts at every open (and at every getattr, for an honest
 * size), and /.kvfs-backup.tar (fuse_backup.c). All are served with direct I/O and a zero
 * attribute timeout so no cache ever shows an old one.
 */
#include "fs.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "kvfs/node.h"
#include "kvfs/status.h"
#include "kvfs/store.h"

bool fuse_status_is_virtual(fuse_ino_t ino)
{
	return ino == KVFS_STATUS_INO || ino == KVFS_STATUS_JSON_INO || ino == KVFS_METRICS_INO ||
	       ino == KVFS_BACKUP_INO || fuse_changes_is_feed(ino);
}

fuse_ino_t fuse_status_lookup(const char *name)
{
	if (strcmp(name, ".status") == 0)
		return KVFS_STATUS_INO;
	if (strcmp(name, ".status.json") == 0)
		return KVFS_STATUS_JSON_INO;
	if (strcmp(name, ".kvfs-backup.tar") == 0)
		return KVFS_BACKUP_INO;
	if (strcmp(name, ".metrics") == 0)
		return KVFS_METRICS_INO;
	if (strcmp(name, ".changes") == 0)
		return KVFS_CHANGES_INO;
	if (strcmp(name, ".changes.json") == 0)
		return KVFS_CHANGES_JSON_INO;
	return 0;
}

char *fuse_status_render(struct kvfs_fs *fs, fuse_ino_t ino, size_t *len)
{
	struct kvfs_status st;
	size_t (*render)(const struct kvfs_status *, char *, size_t) =
	    ino == KVFS_STATUS_JSON_INO ? status_render_json : status_render_text;
	size_t need;
	char *buf;

	if (ino == KVFS_METRICS_INO)
		return fuse_metrics_render(fs, len);
	node_status(fs->node, &st);
	need = render(&st, NULL, 0);
	buf = malloc(need + 1);
	if (!buf)
		return NULL;
	*len = render(&st, buf, need + 1);
	return buf;
}

void fuse_status_attr(struct kvfs_fs *fs, fuse_ino_t ino, struct stat *st)
{
	size_t len = 0;
	char *text;

	if (ino == KVFS_BACKUP_INO) {
		fuse_backup_attr(fs, st);
		return;
	}
	if (fuse_changes_is_feed(ino)) {
		fuse_status_virtual_attr(fs, ino, 0444, 0, st); /* a stream: no size */
		return;
	}
	text = fuse_status_render(fs, ino, &len);
	free(text);
	fuse_status_virtual_attr(fs, ino, 0444, len, st);
}

void fuse_status_virtual_attr(const struct kvfs_fs *fs, fuse_ino_t ino, mode_t perm, uint64_t size,
                              struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFREG | perm;
	st->st_nlink = 1;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_size = (off_t)size;
	st->st_blksize = 4096;
	clock_gettime(CLOCK_REALTIME, &st->st_mtim);
	st->st_atim = st->st_ctim = st->st_mtim;
}
