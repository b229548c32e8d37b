/*
 * bench_nullfs: the thinnest FUSE filesystem we can think of, as a baseline for kvfs's FUSE
 * figures (scripts/bench_compare.sh). Everything lives in memory behind one mutex, nothing is
 * durable, and requests are served by libfuse's multi-threaded loop: what it costs to go through
 * the kernel and back, and little else. It prints nothing; it is not a test.
 *
 *   bench_nullfs MOUNTPOINT [--threads N]
 *     Mounts at MOUNTPOINT and serves in the foreground with at most N (default 64) worker
 *     threads, until unmounted (fusermount3 -u) or signalled.
 *
 * It answers what kvfs answers in the same cache mode: attribute and entry timeouts of 1 s,
 * keep_cache on open, O_TRUNC with open() (FUSE_CAP_ATOMIC_O_TRUNC) and no writeback cache, so
 * every write() reaches it. Operations: lookup, forget, getattr, setattr (mode, size), mkdir,
 * unlink, rmdir, create, open, read, write, release, readdir. Inode numbers are never reused;
 * an inode's memory goes when it is unlinked and the kernel has forgotten it.
 */
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NBUCKETS (1u << 16)
#define TIMEOUT 1.0
#define MAX_FILE (1u << 20)

struct node {
	fuse_ino_t ino;
	fuse_ino_t parent;
	mode_t mode;
	unsigned nlink;
	uint64_t nlookup; /* the kernel's lookup count */
	char *name;
	char *data;
	size_t size;
	struct timespec mtime;
	struct node *next; /* in its hash bucket */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct node **nodes;     /* by inode number; protected by lock */
static fuse_ino_t nnodes, cap;  /* protected by lock */
static struct node *buckets[NBUCKETS]; /* (parent, name) -> node; protected by lock */

static unsigned hash(fuse_ino_t parent, const char *name)
{
	uint32_t h = 2166136261u ^ (uint32_t)parent;

	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 16777619u;
	return h & (NBUCKETS - 1);
}

static struct node *node_get(fuse_ino_t ino)
{
	return ino < nnodes ? nodes[ino] : NULL;
}

static struct node *find(fuse_ino_t parent, const char *name)
{
	struct node *n = buckets[hash(parent, name)];

	while (n != NULL && (n->parent != parent || strcmp(n->name, name) != 0))
		n = n->next;
	return n;
}

static void unhash(struct node *n)
{
	struct node **p = &buckets[hash(n->parent, n->name)];

	while (*p != n)
		p = &(*p)->next;
	*p = n->next;
}

/* Drops N unless the kernel or a name still refers to it. Called with lock held. */
static void maybe_free(struct node *n)
{
	if (n->nlink > 0 || n->nlookup > 0 || n->ino == FUSE_ROOT_ID)
		return;
	nodes[n->ino] = NULL;
	free(n->name);
	free(n->data);
	free(n);
}

/* A new node named NAME in PARENT, hashed; NULL when out of memory. Called with lock held. */
static struct node *node_new(fuse_ino_t parent, const char *name, mode_t mode)
{
	struct node *n;

	if (nnodes == cap) {
		fuse_ino_t c = cap ? 2 * cap : 1024;
		struct node **p = realloc(nodes, c * sizeof(*p));

		if (p == NULL)
			return NULL;
		nodes = p;
		cap = c;
	}
	n = calloc(1, sizeof(*n));
	if (n == NULL || (n->name = strdup(name)) == NULL) {
		free(n);
		return NULL;
	}
	n->ino = nnodes;
	n->parent = parent;
	n->mode = mode;
	n->nlink = S_ISDIR(mode) ? 2 : 1;
	clock_gettime(CLOCK_REALTIME, &n->mtime);
	nodes[nnodes++] = n;
	if (parent != 0) {
		unsigned h = hash(parent, name);

		n->next = buckets[h];
		buckets[h] = n;
	}
	return n;
}

static void fill_stat(const struct node *n, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = n->ino;
	st->st_mode = n->mode;
	st->st_nlink = n->nlink;
	st->st_size = (off_t)n->size;
	st->st_blocks = (blkcnt_t)((n->size + 511) / 512);
	st->st_blksize = 4096;
	st->st_mtim = n->mtime;
	st->st_ctim = n->mtime;
	st->st_atim = n->mtime;
}

/* Fills E for N and counts one more kernel reference to it. Called with lock held. */
static void fill_entry(struct node *n, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = n->ino;
	e->attr_timeout = TIMEOUT;
	e->entry_timeout = TIMEOUT;
	fill_stat(n, &e->attr);
	n->nlookup++;
}

static void nf_init(void *userdata, struct fuse_conn_info *conn)
{
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
}

static void nf_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	struct node *n;

	pthread_mutex_lock(&lock);
	n = find(parent, name);
	if (n != NULL)
		fill_entry(n, &e);
	pthread_mutex_unlock(&lock);
	if (n == NULL)
		fuse_reply_err(req, ENOENT);
	else
		fuse_reply_entry(req, &e);
}

static void forget_one(fuse_ino_t ino, uint64_t nlookup)
{
	struct node *n = node_get(ino);

	if (n == NULL)
		return;
	n->nlookup = nlookup < n->nlookup ? n->nlookup - nlookup : 0;
	maybe_free(n);
}

static void nf_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	pthread_mutex_lock(&lock);
	forget_one(ino, nlookup);
	pthread_mutex_unlock(&lock);
	fuse_reply_none(req);
}

static void nf_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < count; i++)
		forget_one(forgets[i].ino, forgets[i].nlookup);
	pthread_mutex_unlock(&lock);
	fuse_reply_none(req);
}

static void nf_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	struct node *n;

	pthread_mutex_lock(&lock);
	n = node_get(ino);
	if (n != NULL)
		fill_stat(n, &st);
	pthread_mutex_unlock(&lock);
	if (n == NULL)
		fuse_reply_err(req, ENOENT);
	else
		fuse_reply_attr(req, &st, TIMEOUT);
}

/* Sets N's size to SIZE, zero-filling; -errno on failure. Called with lock held. */
static int resize(struct node *n, size_t size)
{
	if (size > MAX_FILE)
		return -EFBIG;
	if (size > n->size) {
		char *p = realloc(n->data, size);

		if (p == NULL)
			return -ENOMEM;
		memset(p + n->size, 0, size - n->size);
		n->data = p;
	}
	n->size = size;
	clock_gettime(CLOCK_REALTIME, &n->mtime);
	return 0;
}

static void nf_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
	struct stat st;
	struct node *n;
	int rv = 0;

	pthread_mutex_lock(&lock);
	n = node_get(ino);
	if (n == NULL)
		rv = -ENOENT;
	if (rv == 0 && (to_set & FUSE_SET_ATTR_MODE))
		n->mode = (n->mode & S_IFMT) | (attr->st_mode & 07777);
	if (rv == 0 && (to_set & FUSE_SET_ATTR_SIZE))
		rv = S_ISDIR(n->mode) ? -EISDIR : resize(n, (size_t)attr->st_size);
	if (rv == 0)
		fill_stat(n, &st);
	pthread_mutex_unlock(&lock);
	if (rv != 0)
		fuse_reply_err(req, -rv);
	else
		fuse_reply_attr(req, &st, TIMEOUT);
}

/* A new node in PARENT: fills E, or returns -errno. */
static int make(fuse_ino_t parent, const char *name, mode_t mode, struct fuse_entry_param *e)
{
	struct node *p, *n;
	int rv = 0;

	pthread_mutex_lock(&lock);
	p = node_get(parent);
	if (p == NULL || !S_ISDIR(p->mode))
		rv = -ENOTDIR;
	else if (find(parent, name) != NULL)
		rv = -EEXIST;
	else if ((n = node_new(parent, name, mode)) == NULL)
		rv = -ENOMEM;
	if (rv == 0) {
		if (S_ISDIR(mode))
			p->nlink++;
		fill_entry(n, e);
	}
	pthread_mutex_unlock(&lock);
	return rv;
}

static void nf_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct fuse_entry_param e;
	int rv = make(parent, name, S_IFDIR | (mode & 07777), &e);

	if (rv != 0)
		fuse_reply_err(req, -rv);
	else
		fuse_reply_entry(req, &e);
}

static void nf_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	int rv = make(parent, name, S_IFREG | (mode & 07777), &e);

	if (rv != 0) {
		fuse_reply_err(req, -rv);
		return;
	}
	fi->keep_cache = 1;
	fuse_reply_create(req, &e, fi);
}

/* Removes NAME from PARENT (a directory when DIR, else not one); 0 or -errno. */
static int remove_name(fuse_ino_t parent, const char *name, bool dir)
{
	struct node *n, *c;
	int rv = 0;

	pthread_mutex_lock(&lock);
	n = find(parent, name);
	if (n == NULL)
		rv = -ENOENT;
	else if (dir && !S_ISDIR(n->mode))
		rv = -ENOTDIR;
	else if (!dir && S_ISDIR(n->mode))
		rv = -EISDIR;
	for (fuse_ino_t i = 0; rv == 0 && dir && i < nnodes; i++)
		if ((c = nodes[i]) != NULL && c->parent == n->ino && c->nlink > 0)
			rv = -ENOTEMPTY;
	if (rv == 0) {
		unhash(n);
		n->nlink = 0;
		if (dir)
			nodes[parent]->nlink--;
		maybe_free(n);
	}
	pthread_mutex_unlock(&lock);
	return rv;
}

static void nf_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, -remove_name(parent, name, false));
}

static void nf_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, -remove_name(parent, name, true));
}

static void nf_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct node *n;
	int rv = 0;

	pthread_mutex_lock(&lock);
	n = node_get(ino);
	if (n == NULL)
		rv = -ENOENT;
	else if (S_ISDIR(n->mode))
		rv = -EISDIR;
	else if (fi->flags & O_TRUNC)
		rv = resize(n, 0);
	pthread_mutex_unlock(&lock);
	if (rv != 0) {
		fuse_reply_err(req, -rv);
		return;
	}
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

static void nf_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
	char small[4096], *buf = small;
	struct node *n;
	size_t len = 0;
	int rv = 0;

	if (size > sizeof(small) && (buf = malloc(size)) == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* Copied out under the lock, replied without it: a reply is a write to /dev/fuse. */
	pthread_mutex_lock(&lock);
	n = node_get(ino);
	if (n == NULL)
		rv = -ENOENT;
	else if (off >= 0 && (size_t)off < n->size) {
		len = n->size - (size_t)off < size ? n->size - (size_t)off : size;
		memcpy(buf, n->data + off, len);
	}
	pthread_mutex_unlock(&lock);
	if (rv != 0)
		fuse_reply_err(req, -rv);
	else
		fuse_reply_buf(req, buf, len);
	if (buf != small)
		free(buf);
}

static void nf_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
	struct node *n;
	int rv = 0;

	pthread_mutex_lock(&lock);
	n = node_get(ino);
	if (n == NULL)
		rv = -ENOENT;
	else if (off < 0 || (size_t)off > MAX_FILE || size > MAX_FILE - (size_t)off)
		rv = -EFBIG;
	else if ((size_t)off + size > n->size)
		rv = resize(n, (size_t)off + size);
	if (rv == 0) {
		memcpy(n->data + off, buf, size);
		clock_gettime(CLOCK_REALTIME, &n->mtime);
	}
	pthread_mutex_unlock(&lock);
	if (rv != 0)
		fuse_reply_err(req, -rv);
	else
		fuse_reply_write(req, size);
}

/* Adds one entry to BUF if it fits (then returns true), as fuse_add_direntry does. */
static bool add_entry(fuse_req_t req, char *buf, size_t size, size_t *used, const char *name,
                      fuse_ino_t ino, mode_t mode, off_t next)
{
	struct stat st = {.st_ino = ino, .st_mode = mode};
	size_t len = fuse_add_direntry(req, buf + *used, size - *used, name, &st, next);

	if (len > size - *used)
		return false;
	*used += len;
	return true;
}

/* Offsets: 1 after ".", 2 after "..", then the last entry's inode number + 2 (never reused). */
static void nf_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
	char *buf = malloc(size);
	size_t used = 0;
	struct node *d, *c;
	bool room = true;

	if (buf == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_lock(&lock);
	d = node_get(ino);
	if (d == NULL || !S_ISDIR(d->mode)) {
		pthread_mutex_unlock(&lock);
		free(buf);
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (off < 1)
		room = add_entry(req, buf, size, &used, ".", ino, S_IFDIR, 1);
	if (off < 2 && room)
		room = add_entry(req, buf, size, &used, "..", d->parent ? d->parent : ino, S_IFDIR,
		                 2);
	for (fuse_ino_t i = off > 2 ? (fuse_ino_t)off - 1 : 1; i < nnodes && room; i++) {
		if ((c = nodes[i]) == NULL || c->parent != ino || c->nlink == 0)
			continue;
		room = add_entry(req, buf, size, &used, c->name, c->ino, c->mode, (off_t)c->ino + 2);
	}
	pthread_mutex_unlock(&lock);
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static const struct fuse_lowlevel_ops ops = {
    .init = nf_init,
    .lookup = nf_lookup,
    .forget = nf_forget,
    .forget_multi = nf_forget_multi,
    .getattr = nf_getattr,
    .setattr = nf_setattr,
    .mkdir = nf_mkdir,
    .unlink = nf_unlink,
    .rmdir = nf_rmdir,
    .create = nf_create,
    .open = nf_open,
    .read = nf_read,
    .write = nf_write,
    .readdir = nf_readdir,
};

int main(int argc, char **argv)
{
	char *fargv[] = {argv[0], "-o", "fsname=bench_nullfs,subtype=nullfs", NULL};
	struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
	struct fuse_loop_config *cfg;
	struct fuse_session *se;
	unsigned threads = 64;
	int rv = 1;

	if (argc == 4 && strcmp(argv[2], "--threads") == 0)
		threads = (unsigned)atoi(argv[3]);
	if ((argc != 2 && argc != 4) || threads < 1) {
		fprintf(stderr, "usage: bench_nullfs MOUNTPOINT [--threads N]\n");
		return 2;
	}
	/* Inode 0 is no inode; 1 is the root. */
	if (node_new(0, "", 0) == NULL || node_new(0, "", S_IFDIR | 0755) == NULL)
		return 1;
	se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	if (se == NULL)
		return 1;
	if (fuse_set_signal_handlers(se) != 0)
		goto err_destroy;
	if (fuse_session_mount(se, argv[1]) != 0)
		goto err_signals;
	cfg = fuse_loop_cfg_create();
	if (cfg == NULL)
		goto err_unmount;
	/* As many idle threads as workers: no thread is made and ended per request burst. */
	fuse_loop_cfg_set_max_threads(cfg, threads);
	fuse_loop_cfg_set_idle_threads(cfg, threads);
	rv = fuse_session_loop_mt(se, cfg) != 0;
	fuse_loop_cfg_destroy(cfg);
err_unmount:
	fuse_session_unmount(se);
err_signals:
	fuse_remove_signal_handlers(se);
err_destroy:
	fuse_session_destroy(se);
	return rv;
}
