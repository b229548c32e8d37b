/*
 * The replication state machine, pure (DESIGN §2, §4). It decides what one replica does with the
 * log: who gets which entries, when an entry is committed, when it is applied, what is promised.
 * Leadership and epochs come from outside (ZooKeeper elects; the epoch is the fencing token,
 * strictly increasing per new leader, at most one leader per epoch): the binding calls
 * repl_become_leader() / repl_become_follower() when ZooKeeper says so.
 *
 * It includes no libuv, FUSE, ZooKeeper or socket header, reads no clock and draws no random
 * number: it is driven by events (a message arrived, a disk write completed, a timer fired) and
 * reaches out only through struct kvfs_repl_io. Every action it asks for is asynchronous; the
 * binding reports completions by calling back in (repl_persisted(), repl_epoch_persisted()),
 * never from inside an io function. The simulation in tests/unit/replica/test_repl_sim.c drives
 * whole clusters of these through lossy networks, slow disks and crashes.
 *
 * The protocol in one paragraph: every message carries the sender's epoch, and each replica
 * durably promises the highest epoch it has heard and rejects anything older. A new leader sends
 * NEW_EPOCH; a majority answers EPOCH_ACK with their durable last (epoch, index); the leader
 * adopts the most up-to-date of those logs (fetching what it lacks with FETCH), brings followers
 * in line with APPEND (prev-entry check, conflicting suffixes dropped), appends a no-op of its
 * epoch and takes proposals once that no-op commits. An entry of the current epoch commits when a
 * majority, the leader included, holds it durably; earlier entries commit with it.
 *
 * Trust (DESIGN §4, "nothing from a peer is trusted blindly"). Epochs are ZooKeeper's to issue,
 * so no peer message ever raises this replica's epoch: only ZooKeeper's view does
 * (repl_zk_view(), or repl_become_leader()/repl_become_follower() directly). A follower promises
 * epoch e durably only once ZooKeeper has shown it e, and it takes leader messages (NEW_EPOCH,
 * APPEND, FETCH) of its epoch only from the node ZooKeeper named leader of that epoch. A
 * NEW_EPOCH that arrives before ZooKeeper's view does (the /leader watch usually fires within
 * milliseconds of the new leader's first message) is held, one at a time, and answered as soon
 * as the view names its sender at its epoch; the candidate resends NEW_EPOCH every tick anyway,
 * so a lost or overwritten hold costs at most a tick, never a deadlock. A reply (EPOCH_ACK,
 * APPEND_ACK, FETCH_REPLY) of a higher epoch is ignored: a leader learns that it was deposed
 * from ZooKeeper (its lease) and, meanwhile, counts no answers from those who moved on, so it
 * cannot commit and gives up after KVFS_REPL_LOST_TICKS. Thus a bogus NEW_EPOCH(2^62) changes
 * nothing, a node cannot be made to promise an epoch to someone other than its ZooKeeper-elected
 * leader, and should ZooKeeper ever hand a node an epoch it has promised already (to another,
 * or a disk that said so), the node gives the lead up (leadership_lost: the binding resigns and
 * stands again) instead of waiting. The leader counts an acknowledgement of this epoch only up
 * to what it sent that peer in this epoch; a follower commits only up to the last entry the
 * current APPEND proved to match its leader's log, and only APPENDs from that leader.
 *
 * Snapshots. The log may start after a snapshot (repl_init's base) and be compacted behind the
 * applied index (repl_compact()) to bound memory. A follower that needs compacted entries is
 * caught up by the binding: need_snapshot asks it to send one, repl_snapshot_sent() says the
 * follower has installed it, and the follower's binding calls repl_snapshot_installed().
 *
 * Rejoining (a replaced disk). The recovery above relies on every answer describing a durable log
 * that still holds what that replica acknowledged: a majority that answers then includes one
 * replica of every majority that committed an entry. A replica whose data directory was lost and
 * started empty breaks that: with 3 replicas, entry E committed on {1, 2}, 2's disk replaced and
 * 1 down, a leader 3 that counted 2's empty answer would adopt 3's log, without E. So the binding
 * starts such a replica with repl_set_rejoining() (it keeps a durable marker, so that a crash
 * while catching up keeps it so, and it has durably promised the highest epoch ZooKeeper had
 * issued before it started, so that no deposed leader to which its lost disk had promised more
 * can use it). Rejoining, it answers NEW_EPOCH with EPOCH_ACK ok = 0 at the leader's epoch
 * (counted by no leader, this version or older), and as a candidate it does not count itself;
 * its own log may still be the one adopted, as any log a leader built may. It does acknowledge
 * APPENDs of its leader, and those count toward commits: the leader's log holds every committed
 * entry (its recovery counted no rejoining replica), an acknowledgement says the entries are
 * durable here, and an entry committed with it is on a majority that now holds it. It stops
 * rejoining once its durable log (log or snapshot) reaches both rejoin_target, the first commit
 * index its leader sent it in the leader's epoch (sent after this replica started, see
 * readidx.h's transport rule, so it covers every entry that leader's epoch had committed before
 * the disk was lost), and an entry of the leader's epoch (the leader's no-op committed: the
 * leader is established, and its log, of which this is a prefix, holds every entry committed in
 * an earlier epoch). That durable log then holds every entry committed before the disk was lost
 * and every later one it acknowledged, which is all a voter's answer must vouch for; io.rejoined
 * tells the binding to remove its marker. A rejoining replica that becomes an established leader
 * itself stops rejoining the same way, once its no-op is durable. If a majority of replicas are
 * rejoining at once (their disks were all lost), no leader can establish itself: that is the
 * safe outcome, and the operator decides (see the README, "Replacing a node").
 *
 * Membership (config.h). Which ids are members, and which of them vote, is itself in the log: a
 * CONFIG entry sets the configuration from its index on, starting from the configuration at the
 * log's base (repl_init's base_cfg: the bootstrap one, voters 1..cluster size, or a snapshot's).
 * Every majority the core counts is of voters, through config_quorum(): a leader commits on a
 * majority of the voters of its latest configuration (observers' acknowledgements update their
 * match index and count for nothing), a leader or candidate that does not hear a majority of
 * them for KVFS_REPL_LOST_TICKS ticks gives up, and recovery counts as said below. Messages go to
 * the members of the latest configuration (NEW_EPOCH, during recovery, also to every member of
 * any configuration an answer names). Rules, as in Raft's single-server changes (Ongaro's
 * dissertation, 4.1):
 *  1. A configuration is in force on every replica as soon as its entry is appended, committed
 *     or not; cutting the entry off reverts to the one before (repl_log_cut), compaction folds
 *     it into the base, a snapshot brings its own (repl_snapshot_installed).
 *  2. Only an established leader proposes one (its no-op committed: a leader elected in a new
 *     epoch may hold an uncommitted configuration of an older one, and must not add a second
 *     on top of it, which is the bug Ongaro reported in 2015), only when no configuration in its
 *     log is uncommitted (-EBUSY), and only one step from the latest: one member's role changes,
 *     voters change by at most one (add or remove an observer or a voter, promote, demote). It
 *     never removes or demotes itself (a leader hands over first) and keeps a voter.
 *  3. Recovery counts a majority of the configuration of the log it adopts, not of its own:
 *     EPOCH_ACK carries the configuration at the answerer's durable end (cfg, cfg_index), the
 *     candidate picks the most up-to-date log among the answers as before, and goes on only
 *     once the answers (itself included if it votes there and is not rejoining) are a majority
 *     of that log's configuration. If it does not vote in that configuration it gives up.
 *  4. An observer or a non-member handed the lead (ZooKeeper can, in a race with a demotion)
 *     gives it up at once (leadership_lost), promising nothing.
 * Why that is safe. Let entry E be committed, and C_k the latest committed configuration. (a)
 * Any majority of a configuration C and any majority of C' = C with one voter more or less
 * intersect: with n voters in C, a majority of C' has at least floor((n + 1) / 2) + 1 voters,
 * at most one of them outside C, so at least floor((n + 1) / 2) in C, and a majority of C has
 * floor(n / 2) + 1; the two sum to more than n. (b) By rule 2, at most one configuration beyond
 * C_k exists in any log (C_{k+1}, one step from C_k), and whatever any leader counted with was
 * C_k, C_{k+1} or an earlier committed one. (c) Let G be the answers a candidate counted and B
 * the most up-to-date log among them, and suppose config(B) is older than C_k, some C_j with
 * j < k. The entry installing C_{j+1} was committed by a majority of C_{j+1} (rule 2: C_{j+2}
 * is appended only once C_{j+1} is committed, so whoever committed it counted with C_{j+1}),
 * which by (a) meets G's majority of C_j: some answer in G holds it durably, and B, at least as up
 * to date, holds it too (the highest (last epoch, last index) holds every committed entry any
 * answer holds, by DESIGN 4's induction): a contradiction. So config(B) is C_k or C_{k+1}, and
 * G's majority of it meets, by (a), every majority that committed anything since C_k (under C_k
 * or C_{k+1}); as in the recovery argument without changes, B holds every committed entry. With
 * the candidate's own configuration instead, a lagging candidate could count a majority of C_j
 * that misses every holder of E: with voters 1..3, then 4 added (committed on 2, 3, 4), then 5
 * (committed on 3, 4, 5) and E on 3, 4, 5, candidate 1 that lags at the bootstrap would adopt 2's
 * log from {1, 2}, without E (test_repl_member.c). Joint consensus would allow any change in one
 * step, at the price of two majorities for every test; one step at a time is enough here.
 * A wiped replica rejoining (above) abstains whatever configuration its empty log believes in, so
 * that stale belief is never counted.
 */
#ifndef KVFS_REPL_H
#define KVFS_REPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvfs/config.h"

struct kvfs_repl;

/* Entries sent in one APPEND or FETCH_REPLY at most, and about how many bytes of data (one
 * entry, however large, always goes). */
#define KVFS_REPL_BATCH       64
#define KVFS_REPL_BATCH_BYTES (4u << 20)

/* No log index gets near this (a billion entries a second would take 146 years): a message
 * that names a higher one is malformed (repl_wire.c), so that index + 1 never wraps. */
#define KVFS_REPL_INDEX_MAX ((uint64_t)1 << 62)

/* A leader that hears from no majority during this many consecutive ticks gives up (the
 * default; see repl_set_lost_ticks()). */
#define KVFS_REPL_LOST_TICKS 3

/*
 * A log entry. An entry with len 0 is the no-op a new leader appends. Wherever the core hands an
 * entry out (io functions, messages, repl_entry()), data stays valid only until the call returns
 * or the core is next called, whichever comes first: copy what you keep.
 */
struct kvfs_repl_entry {
	uint64_t epoch;
	uint64_t index;
	uint32_t len;
	const uint8_t *data;
};

enum kvfs_repl_msg_type {
	KVFS_REPL_NEW_EPOCH = 1, /* epoch */
	KVFS_REPL_EPOCH_ACK,     /* epoch, ok, last_epoch, last_index (the durable log's end),
	                            cfg_index, cfg (the configuration there; set when ok) */
	KVFS_REPL_APPEND,        /* epoch, prev_epoch, prev_index, commit, entries[n_entries] */
	KVFS_REPL_APPEND_ACK,  /* epoch, ok, match_index, hint (the follower's last index, or where
	                          the leader should back off to when prev did not match) */
	KVFS_REPL_FETCH,       /* epoch, from_index */
	KVFS_REPL_FETCH_REPLY, /* epoch, ok, from_index, entries[n_entries] */
};

/*
 * One message, in memory (the wire codec is elsewhere). Fields a type does not list above are 0.
 * A reply with ok = 0 carries the replier's (higher) epoch; the deposed sender does not take it
 * on the replier's word (see Trust above) but counts it as no answer.
 */
struct kvfs_repl_msg {
	enum kvfs_repl_msg_type type;
	uint64_t epoch; /* the sender's epoch: every message */
	uint8_t ok;
	uint64_t last_epoch, last_index;
	uint64_t prev_epoch, prev_index, commit;
	uint64_t match_index, hint;
	uint64_t from_index;
	uint64_t cfg_index;          /* the entry that set cfg (0: at or before a snapshot) */
	struct kvfs_config_bits cfg; /* EPOCH_ACK: the configuration at last_index */
	const struct kvfs_repl_entry *entries; /* owned by the sender; see struct kvfs_repl_entry */
	uint32_t n_entries;
};

/*
 * The actions. All are asynchronous except apply, and none may call back into the core before it
 * returns. The log actions (persist, truncate) are carried out in the order they are asked for;
 * persist_epoch may complete before or after them (the promise may live in another file). A crash
 * may lose any of them that has not completed.
 */
struct kvfs_repl_io {
	void *arg;
	/* Sends m to replica `to`. It may be lost, duplicated, reordered or delayed. */
	void (*send)(void *arg, uint32_t to, const struct kvfs_repl_msg *m);
	/* Appends e[0..n) durably after what the log holds, then calls repl_persisted() with the
	 * epoch and index of e[n-1]. Several consecutive persists may be completed by one call for
	 * the last of them (group commit). */
	void (*persist)(void *arg, const struct kvfs_repl_entry *e, size_t n);
	/* Drops every entry after index `after`; durable before any later persist is. No
	 * completion call. */
	void (*truncate)(void *arg, uint64_t after);
	/* Records durably that no epoch below `epoch` will be accepted (the promise), then calls
	 * repl_epoch_persisted(). */
	void (*persist_epoch)(void *arg, uint64_t epoch);
	/* A committed entry: in index order, exactly once per index per incarnation. A proposal
	 * made at index i succeeded iff the entry applied at i carries the epoch it was made in. */
	void (*apply)(void *arg, const struct kvfs_repl_entry *e);
	/* This replica led (or was taking the lead) and cannot go on: it heard from no majority
	 * for KVFS_REPL_LOST_TICKS ticks, or learnt of a newer epoch. The binding gives the
	 * leadership up (deletes its znodes) so that another can try. */
	void (*leadership_lost)(void *arg);
	/* Optional. Peer `to` needs entries this leader compacted away: send it a snapshot and
	 * call repl_snapshot_sent() once it has installed one. Asked once per need. */
	void (*need_snapshot)(void *arg, uint32_t to);
	/* Optional. This candidate must adopt the log of peer `from`, which compacted entries it
	 * lacks: get that peer's snapshot and call repl_snapshot_installed(). Without it, the
	 * candidate gives up after a few tries (leadership_lost). */
	void (*need_snapshot_from)(void *arg, uint32_t from);
	/* Optional. This replica, started with repl_set_rejoining(), has caught up (see Rejoining
	 * above) and votes again: the binding removes its durable marker. A crash before the
	 * removal is durable only makes it rejoin once more, which is safe. */
	void (*rejoined)(void *arg);
	/* Optional. The latest configuration changed (a CONFIG entry was appended, or cut away
	 * and an earlier one is back, or a snapshot brought one): cfg (valid until the core is
	 * next called) holds from entry `index` on (0: at or before the log's base). Whether it
	 * is committed is for repl_committed_config() to say. Called in the middle of an append or
	 * a truncation: it must not call back into the core (record, act at the next tick). */
	void (*config_changed)(void *arg, const struct kvfs_config *cfg, uint64_t index);
};

enum kvfs_repl_role {
	KVFS_REPL_FOLLOWER,  /* follows r's leader, or waits for one (leader 0) */
	KVFS_REPL_CANDIDATE, /* leads its epoch, but its no-op has not committed: no proposals */
	KVFS_REPL_LEADER,    /* an established leader: takes proposals */
};

/*
 * Creates a replica from what its disk holds: the promised epoch, a snapshot that ends at entry
 * base of epoch base_epoch (0, 0 for none), and the log after it, log[0..n) (indices base + 1 ..
 * base + n in order, epochs not decreasing; copied). base_cfg is the configuration at base: the
 * snapshot's, or the bootstrap one (voters 1..cluster size, config_bootstrap()); the CONFIG
 * entries of the log change it from there. id (1..KVFS_CONFIG_ID_MAX) need not be a member.
 * Entries up to commit_hint (base at least)
 * are known committed and the caller's state already reflects them (it recovered its store from
 * them); the core applies from commit_hint + 1 on. The replica starts as a follower with no known
 * leader. Returns 0 and sets *out, or -EINVAL (bad arguments or log, commit_hint outside
 * base .. base + n, base_cfg malformed), -ENOMEM. io is copied; io->arg must outlive the replica.
 */
int repl_init(struct kvfs_repl **out, uint32_t id, const struct kvfs_config *base_cfg,
              const struct kvfs_repl_io *io, uint64_t promised_epoch, uint64_t base,
              uint64_t base_epoch, const struct kvfs_repl_entry *log, size_t n,
              uint64_t commit_hint);

/* Starts r rejoining (see Rejoining above): call right after repl_init, for a replica whose data
 * directory was lost since it last held data. */
void repl_set_rejoining(struct kvfs_repl *r);

/* Frees r. No io function is called. */
void repl_close(struct kvfs_repl *r);

/*
 * ZooKeeper made this replica the leader of `epoch`. If it has already promised that epoch or a
 * higher one, it cannot lead it and calls leadership_lost (unless it already leads `epoch`).
 * Otherwise it promises the epoch and starts the recovery (NEW_EPOCH to all).
 */
void repl_become_leader(struct kvfs_repl *r, uint64_t epoch);

/* ZooKeeper says `leader` leads `epoch`. Ignored if r has promised a higher epoch. A held
 * NEW_EPOCH from `leader` at `epoch` is answered once the promise is durable. */
void repl_become_follower(struct kvfs_repl *r, uint32_t leader, uint64_t epoch);

/*
 * What ZooKeeper shows now (the binding calls it on every change and tick): whether this node
 * leads, and who leads at which epoch. Leading a newer epoch: repl_become_leader(). Leading an
 * epoch this replica already promised (to another leader, or one it gave up) or an older one
 * while not acting as leader: leadership_lost, so that the binding resigns and stands again.
 * Another leader: repl_become_follower(). Anything else (no leader known) changes nothing.
 */
void repl_zk_view(struct kvfs_repl *r, bool leading, uint32_t leader, uint64_t epoch);

/*
 * Appends op (copied) as a new entry of the leader's epoch and starts replicating it; *index is
 * its index. Returns 0, -EROFS unless r is an established leader, -EINVAL (len > 0 with no op),
 * -ENOMEM. Whether it commits is learnt from apply (see struct kvfs_repl_io).
 */
int repl_propose(struct kvfs_repl *r, const uint8_t *op, uint32_t len, uint64_t *index);

/*
 * Appends a CONFIG entry for `next` (req: the request's name, NULL or up to KVFS_CONFIG_REQ_MAX
 * bytes) and replicates it; it is in force from now on, here and on each replica that appends
 * it (see Membership above). Returns 0 and *index, -EROFS unless r is an established leader,
 * -EBUSY while the latest configuration is not committed, -EINVAL if next is not one step from
 * the latest configuration (config_one_step()), would remove or demote this leader, or req is
 * too long; -ENOMEM. repl_propose() refuses CONFIG entries (-EINVAL).
 */
int repl_propose_config(struct kvfs_repl *r, const struct kvfs_config *next, const char *req,
                        uint64_t *index);

/* The latest configuration (in force) and the index of its entry (*index, 0 if at or before
 * the log's base); valid until the core is next called. */
const struct kvfs_config *repl_config(const struct kvfs_repl *r, uint64_t *index);
/* The configuration at `index` (repl_base_index() .. repl_last_index(); NULL outside), and the
 * index of its entry. */
const struct kvfs_config *repl_config_at(const struct kvfs_repl *r, uint64_t index,
                                         uint64_t *set_at);
/* The configuration at the commit index (what ZooKeeper's /config may show). */
const struct kvfs_config *repl_committed_config(const struct kvfs_repl *r, uint64_t *index);
/* Whether the latest configuration is not committed yet (a change is under way). */
bool repl_config_pending(const struct kvfs_repl *r);

/* A message from replica `from` (1..KVFS_CONFIG_ID_MAX). Malformed messages, and those that the
 * rules of trust above refuse, are ignored. */
void repl_receive(struct kvfs_repl *r, uint32_t from, const struct kvfs_repl_msg *m);

/* Completion of persist actions, up to the one whose last entry is (epoch, index). */
void repl_persisted(struct kvfs_repl *r, uint64_t epoch, uint64_t index);

/*
 * A persist action whose entries begin at `first` failed cleanly: the disk refused it (a full
 * disk) and the log holds nothing of it nor of any persist asked after it. Only the leader of a
 * cluster of one (its latest configuration has no other member) may go on from this, since no other
 * replica holds those entries: they are dropped as if never proposed (no truncate action: the disk
 * lacks them already), and should the leader's no-op be among them, it is appended again at the
 * next tick. Returns 0, or -EINVAL (not the leader of a cluster of one, or `first` not after every
 * durable entry): the caller must then stop, as for any failed persist.
 */
int repl_persist_failed(struct kvfs_repl *r, uint64_t first);

/* Completion of persist_epoch(epoch). */
void repl_epoch_persisted(struct kvfs_repl *r, uint64_t epoch);

/*
 * The caller's timer (every 100 ms, say): a leader resends what is unanswered (heartbeats carry
 * the commit index) and checks that it still hears from a majority.
 */
void repl_tick(struct kvfs_repl *r);

/* How many ticks without a majority make a leader give up. */
void repl_set_lost_ticks(struct kvfs_repl *r, unsigned ticks);

/*
 * Forgets the entries up to min(upto, applied index), which a snapshot now holds; a follower that
 * needs them later gets the snapshot (need_snapshot). No io function is called.
 */
void repl_compact(struct kvfs_repl *r, uint64_t upto);

/* Leader: peer `to` has durably installed a snapshot ending at entry `index`. */
void repl_snapshot_sent(struct kvfs_repl *r, uint32_t to, uint64_t index);

/* Whether a snapshot ending at `index` would be taken now (repl_snapshot_installed): a
 * follower's, or a candidate's that asked need_snapshot_from. */
bool repl_snapshot_wanted(const struct kvfs_repl *r, uint64_t index);

/* Who may send this replica a snapshot now: its leader (follower), or the peer it asked with
 * need_snapshot_from (candidate); 0 if none. */
uint32_t repl_snapshot_source(const struct kvfs_repl *r);

/*
 * The binding has durably replaced its state with a snapshot ending at entry (index, epoch),
 * which repl_snapshot_wanted() accepted just before: the core's log goes the same way
 * (keeping what follows if it has entry index of that epoch; otherwise repl_last_index() is index
 * afterwards and the binding empties its log too) and index counts as committed and applied.
 * cfg is the configuration the snapshot holds at index, set by the entry at cfg_index; NULL for
 * a snapshot that carries none (KVFSSNP2): then the configuration this replica's history gives
 * at index stands in, which is right only if no change it lacks happened before index (the
 * node passes the snapshot's, KVFSSNP3, or the bootstrap one: never NULL).
 * Returns 0, or -EINVAL (not wanted, or cfg malformed or cfg_index past index: nothing changed).
 */
int repl_snapshot_installed(struct kvfs_repl *r, uint64_t index, uint64_t epoch,
                            const struct kvfs_config *cfg, uint64_t cfg_index);

/* Leader: peer `id` showed a sign of life outside the core's messages (a snapshot chunk's
 * acknowledgement), which counts toward the majority a leader must keep hearing. */
void repl_peer_heard(struct kvfs_repl *r, uint32_t id);

/* Getters for /.status and tests. */
bool repl_rejoining(const struct kvfs_repl *r); /* started rejoining, not caught up yet */
/* On a candidate or leader: peer `id` answered this epoch's NEW_EPOCH that it is rejoining (and
 * has not been counted since). */
bool repl_peer_rejoining(const struct kvfs_repl *r, uint32_t id);
enum kvfs_repl_role repl_role(const struct kvfs_repl *r);
uint64_t repl_epoch(const struct kvfs_repl *r);          /* highest epoch heard (promised or
                                                            being promised) */
uint64_t repl_promised_epoch(const struct kvfs_repl *r); /* the durable promise */
uint32_t repl_leader(const struct kvfs_repl *r);         /* leader of repl_epoch(), 0 if unknown */
uint64_t repl_commit_index(const struct kvfs_repl *r);
/* The committed entries this replica holds on its disk (in its log or a snapshot) go up to
 * here; a follower's commit index may run ahead of it (entries not yet durable here). */
uint64_t repl_durable_commit(const struct kvfs_repl *r);
uint64_t repl_applied_index(const struct kvfs_repl *r);
uint64_t repl_last_index(const struct kvfs_repl *r);
uint64_t repl_base_index(const struct kvfs_repl *r);
/* The highest commit index this replica knows the leader has (its own on a leader). */
uint64_t repl_leader_commit(const struct kvfs_repl *r);
/* On a follower: the highest commit index its leader of the current epoch has sent, 0 if none yet
 * (then, or on a candidate or leader, 0). */
uint64_t repl_heard_commit(const struct kvfs_repl *r);
/* Leader or candidate: consecutive ticks without hearing from a majority (0 on a follower). */
unsigned repl_missed_ticks(const struct kvfs_repl *r);
/* A leader's view of peer `id`'s durable match index (its own durable index for itself); 0 on
 * a follower or for an unknown id. */
uint64_t repl_peer_match(const struct kvfs_repl *r, uint32_t id);
/* The entry at index (see struct kvfs_repl_entry for how long data lives). 0 or -ENOENT. */
int repl_entry(const struct kvfs_repl *r, uint64_t index, struct kvfs_repl_entry *e);

#endif /* KVFS_REPL_H */
