/*
 * The kvfs daemon: parses the command line, recovers the node from its data directory, mounts the
 * FUSE filesystem and runs everything on one libuv loop until it is unmounted or signalled.
 *
 * Start-up does every check that can fail before it detaches, so a bad mountpoint, a locked or
 * damaged data directory or a bad option is reported on the terminal with its own exit status.
 * Shutdown (SIGTERM, SIGINT, fusermount3 -u) lets writes in flight finish before it unmounts.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <sodium.h>
#include <uv.h>

#include "daemon.h"
#include "fs.h"
#include "health.h"
#include "watch.h"
#include "member.h"
#include "fuse_mount_opts.h"
#include "options.h"
#include "sd_notify.h"
#include "kvfs/logging.h"
#include "kvfs/metrics_http.h"
#include "kvfs/node.h"
#include "kvfs/peer_sec.h"
#include "kvfs/secret_file.h"
#include "kvfs/status.h"
#include "kvfs/member_req.h"
#include "kvfs/zk_election.h"

#define EXIT_RUNTIME    1
#define EXIT_USAGE      2
#define EXIT_MOUNTPOINT 3
#define EXIT_DATA       4
#define EXIT_CLUSTER    5

#define DRAIN_POLL_MS            20
#define FAILED_DRAIN_MS          1000
#define FUSE_REQUESTS_PER_WAKEUP 64
#define LOCK_RETRY_MS            1000

struct app {
	struct kvfs_options opts;
	struct kvfs_fs fs;
	uv_loop_t loop;
	uv_poll_t poll;
	uv_signal_t sig[4];
	uv_timer_t drain;
	uv_timer_t lock_retry; /* failed lock releases, again every second (fuse_lock_retry) */
	struct fuse_buf fbuf;
	uint64_t drain_deadline;
	bool stopping;
	bool release_now; /* a failed node: give the lead up before draining (on_drain_timer) */
	bool unmounted;
	int exit_code;
	struct kvfs_zk *zk;  /* NULL: standalone */
	uv_async_t zk_async; /* the election thread's "something changed" */
	struct kvfs_node_cluster cluster;
	int daemon_pipe; /* background start: tells the waiting parent our exit status; -1 */
	struct kvfs_sec_keys keys; /* from --secret-file; n == 0: none (standalone, --insecure) */
	char *zk_auth; /* "user:password" from --zk-auth-file, until the session has it */
	struct kvfs_metrics_http *metrics; /* --metrics-listen; NULL: none */
};

static void on_drain_timer(uv_timer_t *t);
static void release_cluster(struct app *a);

/*
 * Checks the mountpoint before anything is started, for a message that says what to do.
 * Returns 0, or -1 after printing the problem.
 */
static int check_mountpoint(const char *mnt)
{
	char parent[PATH_MAX];
	struct stat st, pst;
	struct statfs sfs;

	/* statfs always reaches the filesystem (stat may be answered from the kernel's attribute
	 * cache), so a FUSE mount whose daemon died is seen as what it is. */
	if (statfs(mnt, &sfs) < 0 && errno == ENOTCONN) {
		fprintf(stderr,
		        "kvfs: %s is a dead FUSE mount (a previous kvfs stopped without "
		        "unmounting); run fusermount3 -u %s first\n",
		        mnt, mnt);
		return -1;
	}
	if (stat(mnt, &st) < 0) {
		if (errno == ENOENT)
			fprintf(stderr,
			        "kvfs: mountpoint %s does not exist; create it with mkdir -p %s\n",
			        mnt, mnt);
		else if (errno == ENOTCONN)
			fprintf(stderr,
			        "kvfs: %s is a dead FUSE mount (a previous kvfs stopped without "
			        "unmounting); run fusermount3 -u %s first\n",
			        mnt, mnt);
		else
			fprintf(stderr, "kvfs: cannot use mountpoint %s: %s\n", mnt,
			        strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "kvfs: mountpoint %s is not a directory\n", mnt);
		return -1;
	}
	snprintf(parent, sizeof(parent), "%s", mnt);
	if (stat(dirname(parent), &pst) == 0 && pst.st_dev != st.st_dev && strcmp(mnt, "/") != 0) {
		fprintf(stderr,
		        "kvfs: %s is already a mount point (another kvfs?); unmount it or choose "
		        "another directory\n",
		        mnt);
		return -1;
	}
	return 0;
}

static void on_fuse_readable(uv_poll_t *h, int status, int events)
{
	struct app *a = h->data;
	struct fuse_session *se = a->fs.se;

	/* A bounded number per wake-up: between wake-ups the loop runs the group commit. */
	for (int i = 0; i < FUSE_REQUESTS_PER_WAKEUP; i++) {
		int rv = fuse_session_receive_buf(se, &a->fbuf);

		if (rv == -EINTR || rv == -EAGAIN)
			return;
		if (rv <= 0 || fuse_session_exited(se)) {
			if (rv < 0) {
				log_error("reading /dev/fuse: %s", strerror(-rv));
				a->exit_code = EXIT_RUNTIME;
			} else
				log_info("%s was unmounted", a->opts.mountpoint);
			a->unmounted = true;
			uv_poll_stop(&a->poll);
			if (!a->stopping) {
				a->stopping = true;
				sd_notify_stopping();
				a->drain_deadline = uv_now(&a->loop) + a->opts.write_timeout_ms;
				uv_timer_start(&a->drain, on_drain_timer, 0, DRAIN_POLL_MS);
			}
			return;
		}
		fuse_session_process_buf(se, &a->fbuf);
	}
}

static void on_handle_closed(uv_handle_t *h)
{
}

static void on_node_closed(void *arg)
{
	struct app *a = arg;

	a->fs.node = NULL;
	uv_close((uv_handle_t *)&a->drain, on_handle_closed);
	uv_close((uv_handle_t *)&a->lock_retry, on_handle_closed);
	if (uv_is_active((uv_handle_t *)&a->zk_async))
		uv_close((uv_handle_t *)&a->zk_async, on_handle_closed);
	for (int i = 0; i < 4; i++)
		uv_close((uv_handle_t *)&a->sig[i], on_handle_closed);
}

/* Runs from the drain timer: once nothing is in flight (or the wait is over), unmount and close. */
static void finish_stop(struct app *a)
{
	if (node_busy(a->fs.node) && uv_now(&a->loop) < a->drain_deadline)
		return;
	if (node_busy(a->fs.node))
		log_warn("stopping with writes still in flight");
	uv_timer_stop(&a->drain);
	metrics_http_close(a->metrics); /* it renders from the node, which goes next */
	a->metrics = NULL;
	/* Close the poll handle before the session closes the fd it watches. */
	uv_close((uv_handle_t *)&a->poll, on_handle_closed);
	/* Lock requests still waiting hear ENOLCK while the session can still carry it. */
	fuse_lock_stop(&a->fs);
	/* No notification may be in the middle of a write to /dev/fuse when the fd closes. */
	fuse_inval_stop(a->fs.inval);
	/* Also after an outside unmount: libfuse then sees the dead connection, skips the
	 * umount, and frees what fuse_session_mount allocated. */
	fuse_session_unmount(a->fs.se);
	a->unmounted = true;
	while (a->fs.handles)
		fuse_file_free_handle(&a->fs, a->fs.handles, false);
	fuse_changes_shutdown(&a->fs);
	/* Step down and close the session now (if a failure has not already): the others elect
	 * at once. */
	release_cluster(a);
	node_close(a->fs.node, on_node_closed, a);
}

/*
 * Gives up any leadership at once: closing the ZooKeeper session deletes /leader and this node's
 * candidacy, so the others elect a new leader while this one still drains and unmounts. For a
 * node that failed: one that cannot write its log must not hold the lead (and the writes of the
 * whole cluster) until it has finished stopping. Blocks for the round trips to ZooKeeper.
 */
static void release_cluster(struct app *a)
{
	if (!a->zk)
		return;
	zk_election_close(a->zk);
	a->zk = NULL;
	log_info("closed the ZooKeeper session before stopping: another node takes the lead");
}

static void on_drain_timer(uv_timer_t *t)
{
	struct app *a = t->data;

	/* Here, at the first run of the timer (the next loop iteration), not in on_fatal, which
	 * may run inside the node's walk of its lists: the node's view changes with it. */
	if (a->release_now) {
		a->release_now = false;
		release_cluster(a);
	}
	finish_stop(a);
}

static void begin_stop(struct app *a, int code)
{
	if (code > a->exit_code)
		a->exit_code = code;
	if (a->stopping)
		return;
	a->stopping = true;
	sd_notify_stopping();
	a->release_now = code != 0;
	/* After a failure, writes in flight fail at the next loop iteration (their callers hear
	 * EIO, not a torn-down mount): wait for that, briefly, not for the write timeout. */
	a->drain_deadline =
	    uv_now(&a->loop) + (code ? FAILED_DRAIN_MS : a->opts.write_timeout_ms);
	uv_timer_start(&a->drain, on_drain_timer, 0, DRAIN_POLL_MS);
}

/* SIGUSR1, SIGHUP: logrotate has moved the log file away (its postrotate). */
static void on_reopen_signal(uv_signal_t *h, int signum)
{
	int rv = logging_reopen();

	if (rv > 0)
		log_info("got %s: reopened the log file", strsignal(signum));
	else if (rv == 0)
		log_info("got %s: logging to stderr, no log file to reopen", strsignal(signum));
	else
		log_warn("got %s: cannot reopen the log file: %s (still writing the old one)",
		         strsignal(signum), strerror(-rv));
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct app *a = h->data;

	log_info("got %s; finishing writes in flight and unmounting %s", strsignal(signum),
	         a->opts.mountpoint);
	begin_stop(a, 0);
}

/* Membership: a committed configuration left this node out (the node logged it): stop as on
 * SIGTERM, exit status 0. */
static void on_removed(void *arg)
{
	struct app *a = (struct app *)((char *)arg - offsetof(struct app, fs));

	log_info("unmounting %s, exit status 0", a->opts.mountpoint);
	begin_stop(a, 0);
}

/*
 * Raises the soft limit on open files to the hard one: every peer connection, open segment and
 * snapshot being sent takes a descriptor, and the usual soft limit (1024) is soon reached by
 * idle connections. Where the hard limit is "unlimited", the kernel's own ceiling (nr_open).
 */
static void raise_open_files_limit(void)
{
	struct rlimit rl;
	rlim_t was;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_debug("cannot read the open files limit: %s", strerror(errno));
		return;
	}
	was = rl.rlim_cur;
	if (rl.rlim_cur != rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0 && rl.rlim_max == RLIM_INFINITY) {
			FILE *f = fopen("/proc/sys/fs/nr_open", "re");
			unsigned long long nr = 0;

			if (f) {
				if (fscanf(f, "%llu", &nr) != 1)
					nr = 0;
				fclose(f);
			}
			rl.rlim_cur = nr > was ? (rlim_t)nr : was;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	log_debug("open files limit: %llu (was %llu, hard limit %s%llu)",
	          (unsigned long long)rl.rlim_cur, (unsigned long long)was,
	          rl.rlim_max == RLIM_INFINITY ? "unlimited, " : "",
	          (unsigned long long)rl.rlim_max);
}

/*
 * The node cannot go on (its data directory failed it; the node has logged why). Its hooks get
 * node_start's arg, which is &a->fs (the filesystem's hooks need that): the app around it is
 * found from there. The ZooKeeper session closes first, at the next loop iteration (the others
 * elect at once, whatever happens next here); then a short drain (what was in flight has
 * failed), the unmount, and exit with EXIT_RUNTIME, whatever signal comes later.
 */
static void on_fatal(void *arg)
{
	struct app *a = (struct app *)((char *)arg - offsetof(struct app, fs));

	log_error("stopping after a fatal error in data directory %s: unmounting %s, exit "
	          "status %d",
	          a->opts.data_dir, a->opts.mountpoint, EXIT_RUNTIME);
	begin_stop(a, EXIT_RUNTIME);
}

/* Builds the FUSE session from our -o options. NULL (libfuse has said why) on failure. */
static struct fuse_session *new_session(struct app *a)
{
	char *mopts;
	char *argv[5];
	int argc = 0;
	struct fuse_args args;
	struct fuse_session *se;

	if (asprintf(&mopts, "fsname=kvfs,subtype=kvfs%s%s", a->opts.fuse_opts ? "," : "",
	             a->opts.fuse_opts ? a->opts.fuse_opts : "") < 0)
		return NULL;
	argv[argc++] = "kvfs";
	argv[argc++] = "-o";
	argv[argc++] = mopts;
	if (a->opts.debug)
		argv[argc++] = "-d";
	argv[argc] = NULL;
	args = (struct fuse_args)FUSE_ARGS_INIT(argc, argv);
	se = fuse_session_new(&args, &fuse_ops_table, sizeof(fuse_ops_table), &a->fs);
	fuse_opt_free_args(&args);
	free(mopts);
	return se;
}

/*
 * Checks the FUSE options before anything is created (the data directory; with --zk, the
 * cluster's /config, whose size is fixed for good): libfuse parses them in a session that is
 * built and dropped at once, then what this user may not mount with. Returns 0, or -1 with a
 * message in err (libfuse has printed its own line first).
 */
static int check_fuse_opts(struct app *a, char *err, size_t errlen)
{
	struct fuse_session *se = new_session(a);

	if (!se) {
		snprintf(err, errlen,
		         "bad FUSE options '-o %s' (see fuse(8) and mount(8) for the FUSE and mount "
		         "options; kvfs's own are its long options as key=value)",
		         a->opts.fuse_opts ? a->opts.fuse_opts : "");
		return -1;
	}
	fuse_session_destroy(se);
	return daemon_check_fuse_user(&a->opts, "/etc/fuse.conf", err, errlen);
}

/*
 * Background start. libfuse's fuse_daemonize forks after the mount, which would leave
 * ZooKeeper's threads behind in the parent; so we fork first, and the parent waits for one byte,
 * the child's exit status: 0 once it serves the mount, the status of whatever failed otherwise
 * (the child prints why on the still-shared terminal). The parent exits with it.
 */
static int daemonize_begin(struct app *a)
{
	int p[2];
	pid_t pid;

	if (pipe(p) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		unsigned char code = EXIT_RUNTIME;

		close(p[1]);
		if (read(p[0], &code, 1) != 1)
			code = EXIT_RUNTIME; /* the child died before it could say */
		if (code == 0)
			sd_notify_mainpid(pid); /* we exit now: systemd follows the child */
		_exit(code);
	}
	close(p[0]);
	setsid();
	a->daemon_pipe = p[1];
	return 0;
}

static void daemonize_end(struct app *a, int code)
{
	unsigned char c = (unsigned char)code;
	int fd;

	if (a->daemon_pipe < 0)
		return;
	if (write(a->daemon_pipe, &c, 1) != 1)
		log_warn("cannot tell the starting shell our status");
	close(a->daemon_pipe);
	a->daemon_pipe = -1;
	if (code != 0)
		return;
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	if (chdir("/") < 0)
		log_warn("cannot chdir to /");
}

/*
 * Reads the --secret-file(s) into a->keys (a cluster member only; standalone has no peers).
 * Returns 0, or -1 after printing why (a usage problem: exit 2).
 */
static int load_secrets(struct app *a)
{
	uint8_t buf[KVFS_SECRET_FILE_MAX + 1];
	char err[1024];
	size_t len;
	int rv = 0;

	if (!a->opts.zk) {
		if (a->opts.n_secret_files > 0 || a->opts.insecure)
			log_info("standalone: no peers, so --secret-file and --insecure do nothing");
		return 0;
	}
	if (a->opts.insecure) {
		log_warn("--insecure: peers neither authenticate nor encrypt; anyone who can reach "
		         "the replication port of a node can read and write everything and wreck "
		         "the cluster. Use it only where every host on the network is trusted");
		return 0;
	}
	if (sec_init() != 0) {
		fprintf(stderr, "kvfs: cannot initialise libsodium\n");
		return -1;
	}
	for (unsigned i = 0; i < a->opts.n_secret_files && rv == 0; i++) {
		rv = secret_file_read("--secret-file", a->opts.secret_files[i], KVFS_SEC_SECRET_MIN,
		                      buf, sizeof(buf), &len, err, sizeof(err));
		if (rv < 0)
			fprintf(stderr, "kvfs: %s\n", err);
		else
			rv = sec_keys_add(&a->keys, buf, len);
		sodium_memzero(buf, sizeof(buf));
	}
	return rv < 0 ? -1 : 0;
}

/*
 * Reads the --zk-auth-file into a->zk_auth (a cluster member only), by the rules of the peer
 * secret, and checks it holds user:password. Without one, warns that the cluster's znodes are
 * open. Returns 0, or -1 after printing why (a usage problem: exit 2).
 */
static int load_zk_auth(struct app *a)
{
	uint8_t buf[KVFS_SECRET_FILE_MAX + 1];
	char err[1024];
	size_t len;
	int rv;

	if (!a->opts.zk) {
		if (a->opts.zk_auth_file)
			log_info("standalone: no ZooKeeper, so --zk-auth-file does nothing");
		return 0;
	}
	if (!a->opts.zk_auth_file) {
		log_warn("no --zk-auth-file: the cluster's znodes in ZooKeeper are open to anyone "
		         "(world:anyone); anyone who can reach ZooKeeper can disturb the election "
		         "or keep nodes from starting. Give every node --zk-auth-file with the "
		         "cluster's user:password");
		return 0;
	}
	rv = secret_file_read("--zk-auth-file", a->opts.zk_auth_file, 3, buf, sizeof(buf), &len,
	                      err, sizeof(err));
	if (rv == 0)
		rv = secret_file_check_digest("--zk-auth-file", a->opts.zk_auth_file, buf, len, err,
		                              sizeof(err));
	if (rv == 0) {
		a->zk_auth = malloc(len + 1);
		if (a->zk_auth) {
			memcpy(a->zk_auth, buf, len);
			a->zk_auth[len] = '\0';
		} else {
			rv = -ENOMEM;
			snprintf(err, sizeof(err), "--zk-auth-file: out of memory");
		}
	}
	sodium_memzero(buf, sizeof(buf));
	if (rv < 0) {
		fprintf(stderr, "kvfs: %s\n", err);
		return -1;
	}
	return 0;
}

static void wipe_zk_auth(struct app *a)
{
	if (!a->zk_auth)
		return;
	sodium_memzero(a->zk_auth, strlen(a->zk_auth));
	free(a->zk_auth);
	a->zk_auth = NULL;
}

/* From any thread: the election changed. Only wakes the loop (on_zk_change). */
static void zk_notify(void *arg)
{
	uv_async_send(&((struct app *)arg)->zk_async);
}

/* On the loop: the election thread may have found a reason to stop. */
static void on_zk_change(uv_async_t *h)
{
	struct app *a = h->data;
	char msg[256];

	if (a->zk && zk_election_fatal(a->zk, msg, sizeof(msg)) < 0)
		begin_stop(a, EXIT_CLUSTER);
	else if (a->zk && a->fs.node) {
		uint8_t live[32];
		uint64_t seq;
		bool known = zk_election_live_members(a->zk, live, sizeof(live), &seq);

		node_cluster_changed(a->fs.node);
		fuse_lock_members(&a->fs, known, live, sizeof(live), seq);
		fuse_lock_retry(&a->fs); /* a leader may be known again */
	}
}

static void on_lock_retry(uv_timer_t *t)
{
	struct app *a = t->data;

	if (a->fs.node)
		fuse_lock_retry(&a->fs);
}

/* Locks: new lock requests need this node's ZooKeeper session (fuse_lock_set_session). Stopping
 * (the election closed): not connected. */
static bool lock_session_connected(void *arg)
{
	struct app *a = arg;

	return a->zk && zk_election_session_connected(a->zk);
}

/* The node's hooks into the election (struct kvfs_node_cluster). After zk_election_close (a
 * stop in progress) they see no leader and do nothing. */
static void cluster_view(void *arg, struct kvfs_node_view *nv)
{
	struct app *a = arg;
	struct kvfs_zk_view v;

	memset(nv, 0, sizeof(*nv));
	if (!a->zk)
		return;
	zk_election_view(a->zk, &v);
	nv->leading = v.leading;
	nv->leader = v.leader;
	nv->epoch = v.epoch;
}

static void cluster_member_addr(void *arg, uint32_t id, char *buf, size_t len)
{
	struct app *a = arg;

	buf[0] = '\0';
	if (a->zk)
		zk_election_member_addr(a->zk, id, buf, len);
}

static void cluster_resign(void *arg)
{
	struct app *a = arg;

	if (a->zk)
		zk_election_resign(a->zk);
}

static void cluster_evict(void *arg, uint32_t id, uint64_t epoch)
{
	struct app *a = arg;

	if (a->zk)
		zk_election_evict(a->zk, id, epoch);
}

static void cluster_set_ready(void *arg, uint32_t id, bool ready)
{
	struct app *a = arg;

	if (a->zk)
		zk_election_set_ready(a->zk, id, ready);
}

static void cluster_set_facts(void *arg, const struct kvfs_score_measured *m)
{
	struct app *a = arg;

	if (a->zk)
		zk_election_set_facts(a->zk, m);
}

static void cluster_set_config(void *arg, const struct kvfs_config *cfg, uint64_t index,
                               bool committed)
{
	struct app *a = arg;

	if (a->zk)
		zk_election_set_config(a->zk, cfg, index, committed);
}

static int cluster_next_request(void *arg, struct kvfs_member_req *req)
{
	struct app *a = arg;

	return a->zk ? zk_election_next_request(a->zk, req) : -ENOENT;
}

static void cluster_request_result(void *arg, const struct kvfs_member_req *req,
                                   const struct kvfs_member_result *res)
{
	struct app *a = arg;

	if (a->zk)
		zk_election_request_result(a->zk, req, res);
}

/* Priority mode: each candidate's score as the election's last round saw it. */
static void status_scores(struct kvfs_zk *zk, struct kvfs_status *st)
{
	struct kvfs_zk_score s[KVFS_STATUS_MAX_PEERS];
	size_t n = zk_election_scores(zk, s, KVFS_STATUS_MAX_PEERS);

	for (size_t i = 0; i < n; i++) {
		const struct kvfs_score_facts *f = &s[i].c.f;

		st->scores[i] = (struct kvfs_status_score){
		    .id = s[i].c.id,
		    .rank = s[i].rank,
		    .eligible = s[i].eligible,
		    .priority = s[i].c.priority,
		    .quorum_rtt_us = f->known ? f->rtt_us : UINT64_MAX,
		    .rtt_b = f->known ? f->rtt_b : UINT32_MAX,
		    .lag_b = f->known ? f->lag_b : UINT32_MAX,
		    .leader = s[i].leader,
		    .beats_leader_ms = s[i].beats_ms,
		};
		snprintf(st->scores[i].why, sizeof(st->scores[i].why), "%s", s[i].why);
		snprintf(st->scores[i].zone, sizeof(st->scores[i].zone), "%s", f->zone);
	}
	st->nscores = (unsigned)n;
}

static void cluster_status(void *arg, struct kvfs_status *st)
{
	struct kvfs_zk_view v;

	if (!((struct app *)arg)->zk)
		return;
	zk_election_view(((struct app *)arg)->zk, &v);
	if (strcmp(((struct app *)arg)->opts.election, "priority") == 0)
		status_scores(((struct app *)arg)->zk, st);
	st->role = election_role(v.leading, v.leader != 0);
	st->leader = v.leader;
	snprintf(st->leader_addr, sizeof(st->leader_addr), "%s", v.leader_addr);
	st->epoch = v.epoch;
	st->zk = v.zk;
	st->zk_auth = ((struct app *)arg)->opts.zk_auth_file ? "digest" : "none";
}

static const struct kvfs_node_reset reset_hooks = {.done = fuse_ops_on_reset};

/* Connects to ZooKeeper and checks the cluster, before anything is mounted. */
static int open_cluster(struct app *a, char *cluster_id, char *err, size_t errlen)
{
	char session_file[PATH_MAX];
	int rv;
	struct kvfs_zk_config zc = {
	    .hosts = a->opts.zk,
	    .cluster = a->opts.cluster,
	    .id = a->opts.id,
	    .cluster_size = a->opts.cluster_size,
	    .cluster_size_given = a->opts.cluster_size_given,
	    .addr = a->opts.advertise,
	    .priority = a->opts.priority,
	    .mode = strcmp(a->opts.election, "priority") == 0 ? KVFS_ELECTION_PRIORITY
	                                                      : KVFS_ELECTION_SEQUENTIAL,
	    .session_timeout_ms = a->opts.session_timeout_ms,
	    .hold_down_ms = a->opts.hold_down_ms,
	    .min_tenure_ms = a->opts.min_tenure_ms,
	    .rtt_margin_pct = a->opts.rtt_margin_pct,
	    .zone = a->opts.zone,
	    .zpref = a->opts.zpref,
	    .connect_timeout_ms = a->opts.write_timeout_ms,
	    .session_file = session_file,
	    .auth = a->zk_auth,
	    .role = a->opts.role_observer ? KVFS_ROLE_OBSERVER : KVFS_ROLE_VOTER,
	};

	/* The data directory may not exist yet (node_open makes it later): then there is no file
	 * from an earlier run either, and the election thread writes it once it is there. */
	snprintf(session_file, sizeof(session_file), "%s/zk-session", a->opts.data_dir);
	rv = zk_election_open(&a->zk, &zc, cluster_id, err, errlen);
	if (rv == 0) /* the bootstrap configuration is the cluster's: voters 1..its size */
		a->opts.cluster_size = zk_election_cluster_size(a->zk);
	return rv;
}

/* --metrics-listen, before anything else runs on the loop: a port in use is reported like a bad
 * option, on the terminal, and nothing was started. */
static int start_metrics(struct app *a)
{
	char err[512];
	int rv;

	if (!a->opts.metrics_listen)
		return 0;
	rv = metrics_http_start(&a->metrics, &a->loop, a->opts.metrics_listen, fuse_metrics_render,
	                        &a->fs, err, sizeof(err));
	if (rv == 0) {
		log_info("serving metrics on http://%s/metrics", a->opts.metrics_listen);
		return 0;
	}
	if (!a->opts.foreground) /* the log goes to a file by now: the terminal hears it too */
		fprintf(stderr, "kvfs: %s\n", err);
	log_error("%s", err);
	uv_run(&a->loop, UV_RUN_NOWAIT); /* the listener's close */
	uv_loop_close(&a->loop);
	return rv;
}

static int run_loop(struct app *a)
{
	static const int signals[4] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1};
	int fd = fuse_session_fd(a->fs.se), rv;
	bool forked = a->daemon_pipe >= 0; /* then our waiting parent says READY=1 */

	rv = uv_loop_init(&a->loop);
	if (rv < 0)
		goto err;
	if (start_metrics(a) < 0)
		return EXIT_USAGE;
	rv = node_start(a->fs.node, &a->loop, fuse_ops_on_apply, on_fatal, &a->fs);
	if (rv < 0)
		goto err;
	a->fs.node_id = a->opts.id;
	rv = fuse_lock_start(&a->fs);
	if (rv < 0)
		goto err;
	if (a->zk)
		fuse_lock_set_session(&a->fs, lock_session_connected, a);
	uv_timer_init(&a->loop, &a->lock_retry);
	a->lock_retry.data = a;
	uv_timer_start(&a->lock_retry, on_lock_retry, LOCK_RETRY_MS, LOCK_RETRY_MS);
	if (a->zk) {
		rv = uv_async_init(&a->loop, &a->zk_async, on_zk_change);
		if (rv < 0)
			goto err;
		a->zk_async.data = a;
		rv = zk_election_start(a->zk, zk_notify, a);
		if (rv < 0)
			goto err;
	}
	rv = fuse_inval_start(&a->fs.inval, a->fs.se);
	if (rv < 0)
		goto err;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	uv_timer_init(&a->loop, &a->drain);
	a->drain.data = a;
	rv = uv_poll_init(&a->loop, &a->poll, fd);
	if (rv < 0)
		goto err;
	a->poll.data = a;
	uv_poll_start(&a->poll, UV_READABLE, on_fuse_readable);
	for (int i = 0; i < 4; i++) {
		uv_signal_init(&a->loop, &a->sig[i]);
		a->sig[i].data = a;
		uv_signal_start(&a->sig[i], i < 2 ? on_signal : on_reopen_signal, signals[i]);
	}
	log_info("serving %s (data in %s, %s)", a->opts.mountpoint, a->opts.data_dir,
	         a->zk ? "cluster member" : "standalone");
	daemonize_end(a, 0);
	rv = sd_notify_ready(&a->loop, a->fs.node, !forked);
	if (rv < 0)
		log_warn("cannot watch the node for systemd's STATUS=: %s", uv_strerror(rv));
	uv_run(&a->loop, UV_RUN_DEFAULT);
	fuse_lock_free(&a->fs); /* the node is closed: no proposal calls back any more */
	fuse_inval_free(a->fs.inval);
	uv_loop_close(&a->loop);
	return a->exit_code;

err:
	log_error("cannot start the event loop: %s", uv_strerror(rv));
	return EXIT_RUNTIME;
}

int main(int argc, char **argv)
{
	struct app a = {.daemon_pipe = -1};
	char err[1024] = "", cluster_id[2 * KVFS_GUID_LEN + 1] = "";
	struct kvfs_node_config cfg;
	int rv, code = EXIT_RUNTIME;

	if (argc >= 2 && strcmp(argv[1], "health") == 0)
		return health_main(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "member") == 0)
		return member_main(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "watch") == 0)
		return watch_main(argc - 1, argv + 1);
	rv = options_parse(&a.opts, argc, argv, err, sizeof(err));
	if (rv == KVFS_OPTIONS_HELP) {
		options_usage(stdout, "kvfs");
		options_free(&a.opts);
		return 0;
	}
	if (rv == KVFS_OPTIONS_VERSION) {
		daemon_print_version(stdout);
		options_free(&a.opts);
		return 0;
	}
	if (rv < 0) {
		fprintf(stderr,
		        "kvfs: %s\nusage: kvfs [options] MOUNTPOINT\nTry 'kvfs --help' for the "
		        "options.\n",
		        err[0] ? err : strerror(-rv));
		options_free(&a.opts);
		return EXIT_USAGE;
	}
	if (check_fuse_opts(&a, err, sizeof(err)) < 0 ||
	    daemon_start_logging(&a.opts, err, sizeof(err)) < 0) {
		fprintf(stderr, "kvfs: %s\n", err);
		code = EXIT_USAGE;
		goto out_opts;
	}
	if (a.opts.default_permissions_implied)
		log_info("-o allow_other: adding default_permissions, so the kernel checks modes "
		         "and owners as on a local filesystem (--no-default-permissions opts out, "
		         "unsafe)");
	else if (options_has_fuse_opt(a.opts.fuse_opts, "allow_other") &&
	         !options_has_fuse_opt(a.opts.fuse_opts, "default_permissions"))
		log_warn("--no-default-permissions with -o allow_other: kvfs checks permissions "
		         "itself; the kernel does not (see README, Owners and permissions)");
	/* Until the loop handles them (on_reopen_signal), a rotation must not kill the start. */
	signal(SIGHUP, SIG_IGN);
	signal(SIGUSR1, SIG_IGN);
	if (sd_notify_init(err, sizeof(err)) < 0) {
		log_warn("%s", err);
		err[0] = '\0';
	}
	if (load_secrets(&a) < 0 || load_zk_auth(&a) < 0) {
		code = EXIT_USAGE;
		goto out_opts;
	}
	raise_open_files_limit();
	if (!a.opts.foreground && daemonize_begin(&a) < 0) {
		fprintf(stderr, "kvfs: cannot start in the background: %s\n", strerror(errno));
		goto out_opts;
	}
	if (check_mountpoint(a.opts.mountpoint) < 0) {
		code = EXIT_MOUNTPOINT;
		goto out_opts;
	}
	if (a.opts.zk) {
		rv = open_cluster(&a, cluster_id, err, sizeof(err));
		wipe_zk_auth(&a); /* the session keeps its own copy */
		if (rv < 0) {
			fprintf(stderr, "kvfs: %s\n", err[0] ? err : strerror(-rv));
			code = EXIT_CLUSTER;
			goto out_opts;
		}
	}
	cfg = (struct kvfs_node_config){
	    .id = a.opts.id,
	    .data_dir = a.opts.data_dir,
	    .max_value = a.opts.max_value,
	    .segment_bytes = a.opts.segment_bytes,
	    .snapshot_bytes = a.opts.snapshot_bytes,
	    .changes_history = a.opts.changes_history,
	    .election = a.opts.election,
	    .priority = a.opts.priority,
	    .cluster_id = a.zk ? cluster_id : NULL,
	    .cluster_size = a.zk ? a.opts.cluster_size : 0,
	    .listen = a.opts.listen,
	    .advertise = a.opts.advertise,
	    .write_timeout_ms = a.opts.write_timeout_ms,
	    .session_timeout_ms = a.opts.session_timeout_ms,
	    .peer_keys = a.keys.n ? &a.keys : NULL,
	    .test_peer_delay = a.opts.test_peer_delay,
	};
	if (a.zk)
		zk_election_history(a.zk, &cfg.zk_epoch, &cfg.id_held_data);
	rv = node_open(&a.fs.node, &cfg, err, sizeof(err));
	if (rv < 0) {
		fprintf(stderr, "kvfs: %s\n", err[0] ? err : strerror(-rv));
		code = rv == -EXDEV ? EXIT_CLUSTER : EXIT_DATA;
		goto out_opts;
	}
	if (daemon_log_to_data_dir(&a.opts, err, sizeof(err)) < 0) {
		fprintf(stderr, "kvfs: %s; logging nowhere once started\n", err);
		logging_release();
	}
	if (a.zk) {
		a.cluster = (struct kvfs_node_cluster){
		    .view = cluster_view,
		    .status = cluster_status,
		    .member_addr = cluster_member_addr,
		    .resign = cluster_resign,
		    .evict = cluster_evict,
		    .set_ready = cluster_set_ready,
		    .set_facts = cluster_set_facts,
		    .set_config = cluster_set_config,
		    .next_request = cluster_next_request,
		    .request_result = cluster_request_result,
		    .arg = &a,
		};
		node_set_cluster(a.fs.node, &a.cluster);
		node_set_reset(a.fs.node, &reset_hooks);
		node_set_removed(a.fs.node, on_removed);
	}
	a.fs.store = node_store(a.fs.node);
	a.fs.data_dir = a.opts.data_dir;
	a.fs.max_value = a.opts.max_value;
	a.fs.uid = getuid();
	a.fs.gid = getgid();
	/* Who checks permissions (README "Owners and permissions"): the kernel with
	 * default_permissions; kvfs itself (fuse_perm.c) on a shared mount without it. */
	a.fs.kernel_perms = options_has_fuse_opt(a.opts.fuse_opts, "default_permissions");
	a.fs.check_access =
	    !a.fs.kernel_perms && options_has_fuse_opt(a.opts.fuse_opts, "allow_other");
	a.fs.stored_owner = a.fs.kernel_perms || a.fs.check_access;
	/* Device nodes as on a tmpfs mounted by root: only a root daemon makes them (a mount by an
	 * ordinary user through fusermount is nodev anyway). */
	a.fs.may_mknod_dev = geteuid() == 0;
	a.fs.linearizable = a.opts.read_mode == KVFS_READ_LINEARIZABLE;
	/* Linearizable reads cannot let the kernel answer from its caches; nor can kvfs's own
	 * search permission checks, which need every path walk to ask (lookup). */
	a.fs.entry_timeout = a.fs.linearizable || a.fs.check_access ? 0.0 : 1.0;
	a.fs.attr_timeout = a.fs.linearizable ? 0.0 : 1.0;
	a.fs.write_timeout_ms = a.opts.write_timeout_ms;
	a.fs.cluster = a.zk ? a.opts.cluster : NULL; /* named in backups (fuse_backup.c) */
	a.fs.cluster_id = a.zk ? cluster_id : NULL;

	a.fs.se = new_session(&a);
	if (!a.fs.se) {
		fprintf(stderr, "kvfs: bad FUSE options '-o %s'\n",
		        a.opts.fuse_opts ? a.opts.fuse_opts : "");
		code = EXIT_USAGE;
		goto out_node;
	}
	if (fuse_session_mount(a.fs.se, a.opts.mountpoint) != 0) {
		fuse_mount_opts_hint("/dev/fuse", err, sizeof(err));
		fprintf(stderr, "kvfs: cannot mount %s: %s\n", a.opts.mountpoint, err);
		code = EXIT_MOUNTPOINT;
		goto out_session;
	}
	signal(SIGPIPE, SIG_IGN);
	code = run_loop(&a);
	if (a.fs.node) {
		/* The loop never started: close what it would have closed. */
		node_close(a.fs.node, NULL, NULL);
		a.fs.node = NULL;
	}
	if (!a.unmounted)
		fuse_session_unmount(a.fs.se);
out_session:
	fuse_session_destroy(a.fs.se);
	free(a.fbuf.mem);
out_node:
	if (a.fs.node)
		node_close(a.fs.node, NULL, NULL);
out_opts:
	if (a.zk)
		zk_election_close(a.zk);
	if (code != 0)
		logging_release(); /* the lines held for a log file that never opened */
	daemonize_end(&a, code);
	sec_keys_wipe(&a.keys);
	wipe_zk_auth(&a);
	options_free(&a.opts);
	if (code == 0)
		log_info("stopped cleanly");
	return code;
}
