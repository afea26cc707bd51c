#ifndef IRIS_SANDBOX_H
#define IRIS_SANDBOX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct json_object;
struct context;

/*
 * Sandboxes: one bubblewrap container each, started by a child that has
 * dropped to the sandbox slot's own unprivileged host uid, holding the
 * supervisor (sandbox/supervisor.py) and one kernel per context.  A
 * sandbox is reference counted: sandbox_find takes a reference that
 * sandbox_put gives back; killing it removes it from the registry at once
 * and frees it when the last reference is gone.
 */
struct sandbox;

#define SANDBOX_ID_LEN	21	/* "i" + 20 of [a-z0-9] */
#define SANDBOX_GROUP_LEN	128	/* a recycling group's name */

/* What GET /health tells of the pool and of recycling. */
struct sandbox_stats {
	long	pooled;		/* started ahead, ready */
	long	recycled_ready;	/* scrubbed, waiting for their group */
	long	scrubbing;	/* retired, not yet scrubbed */
	long	scrubs;		/* scrubs passed, ever */
	long	scrub_failures;	/* scrubs failed (each one destroyed) */
	long	recycled_taken;	/* creates served by a recycled one */
};

struct sandbox_limits {
	long	memory_mb;	/* whole sandbox (cgroup), else per process */
	long	procs;		/* processes of the slot's uid */
	long	home_mb;	/* size of the /home/user tmpfs */
	long	output_bytes;	/* per stream per execution */
	long	nofile;
};

struct sandbox_config {
	const char		*state_dir;	/* holds sandboxes/<id>/ */
	const char		*progs_dir;	/* the repo's sandbox/ */
	long			 uid_base;	/* slot i runs as uid_base + i */
	long			 max_live;	/* sandboxes clients may hold */
	long			 pool_size;	/* pre-started, on top of that */
	long			 max_timeout_s;	/* longest lifetime */
	int			 debug;		/* supervisor stderr to ours */
	struct sandbox_limits	 limits;
};

enum sandbox_err {
	SANDBOX_OK = 0,
	SANDBOX_LIMIT,		/* max_live reached */
	SANDBOX_FAILED		/* could not start (logged) */
};

/* Prepares directories, cgroups and slots.  Returns 0, or -1. */
int		 sandbox_init(const struct sandbox_config *cfg);

/*
 * Starts a sandbox.  preload: the supervisor imports the data stack
 * first; pooled: it does not count against max_live and does not expire
 * until sandbox_claim.  env_vars (an object of strings, or NULL) is the
 * environment of every process in it.  OUT: *err.
 * Returns a reference, or NULL.
 */
struct sandbox	*sandbox_start(const char *template_id, int preload,
		    int pooled, struct json_object *env_vars,
		    enum sandbox_err *err);

/*
 * Makes a pooled sandbox a client's: counts it against max_live, sets its
 * metadata (taking ownership) and lifetime, and its recycling group (the
 * owner whose creates may get it back after a scrub; NULL: ""), and
 * whether envd wants its access token (secure).  Returns 0, or -1 with
 * SANDBOX_LIMIT in *err if max_live is reached.
 */
int		 sandbox_claim(struct sandbox *sb, int timeout_s,
		    struct json_object *metadata, const char *group, int secure,
		    enum sandbox_err *err);

/* Finds a live, claimed sandbox by id; NULL if none.  Takes a reference. */
struct sandbox	*sandbox_find(const char *id);
void		 sandbox_put(struct sandbox *sb);

/* Kills sb (its whole process tree) and removes its files. */
void		 sandbox_kill(struct sandbox *sb);

/* Kills every sandbox, pooled ones too (shutdown). */
void		 sandbox_kill_all(void);

/*
 * Kills the claimed sandboxes whose lifetime is over (or hands them to
 * recycle, if not NULL and they can be: see sandbox_retire), dead ones,
 * and recycled ones no one took for two minutes.
 */
void		 sandbox_reap(void (*recycle)(struct sandbox *));

/*
 * Recycling (docs/sandbox-internals.md, "Recycling").  sandbox_retire takes
 * a claimed sandbox out of use instead of killing it: unknown by its id at
 * once, not counted, its relays woken.  Returns 0 with a reference for the
 * recycler, or -1 if it cannot be recycled (no group: its creator named
 * no owner; started with env vars or without preloading or cgroups; dead
 * or killed): then kill it.
 */
int		 sandbox_retire(struct sandbox *sb);

/*
 * Ends a claimed sandbox's life for its client: retired and handed to
 * recycle (which takes the reference sandbox_retire took) if it can be,
 * else killed.
 */
void		 sandbox_end(struct sandbox *sb,
		    void (*recycle)(struct sandbox *));

/*
 * Makes a retired sandbox new: waits for its last users, frees its
 * contexts, has the supervisor scrub it, checks the result from outside
 * and gives it a new id and token.  Returns 0, or -1 with err (then kill
 * it: a sandbox that fails any check is never offered again).
 */
int		 sandbox_scrub(struct sandbox *sb, char *err, size_t errlen);

/* Offers a scrubbed sandbox to creates of its group. */
void		 sandbox_offer_recycled(struct sandbox *sb);

/* Counts for GET /health.  OUT: out. */
void		 sandbox_get_stats(struct sandbox_stats *out);

/* Slots (uids) free for new sandboxes. */
long		 sandbox_free_slots(void);

/* Sets the end of life to now + seconds (clamped to the maximum). */
void		 sandbox_set_timeout(struct sandbox *sb, long seconds);

/* Extends the end of life to at least now + seconds. */
void		 sandbox_extend(struct sandbox *sb, long seconds);

/* Calls fn for each claimed sandbox (with a reference held). */
void		 sandbox_foreach(void (*fn)(struct sandbox *, void *),
		    void *arg);

/* The number of claimed, live sandboxes; of pooled ones. */
long		 sandbox_count(void);
long		 sandbox_pool_count(void);

/* Lets a pooled sandbox be taken: it has started, its kernel too. */
void		 sandbox_offer(struct sandbox *sb);

/*
 * Takes an offered sandbox of template_id: a recycled one of group if
 * any (*recycled = 1) -- waiting up to wait_ms for one of group being
 * scrubbed -- else a pooled one (*recycled = 0).  NULL if none; else a
 * reference.
 */
struct sandbox	*sandbox_pool_take(const char *template_id, const char *group,
		    int wait_ms, int *recycled);

/* Accessors. */
const char	*sandbox_id(const struct sandbox *sb);
const char	*sandbox_template(const struct sandbox *sb);
/* The name of its cgroups and directory: for its whole life. */
const char	*sandbox_cgroup(const struct sandbox *sb);
const char	*sandbox_token(const struct sandbox *sb);
int64_t		 sandbox_started_ms(const struct sandbox *sb);
int64_t		 sandbox_end_ms(const struct sandbox *sb);
const struct json_object *sandbox_metadata(const struct sandbox *sb);
const struct sandbox_limits *sandbox_limits(void);

/*
 * Talking to the supervisor (kernel.c), under sandbox_lock: sends line and
 * waits up to timeout_ms for its "spawned" (returns 0) or "error" (-1,
 * with its message in err) about context.
 */
void		 sandbox_lock(struct sandbox *sb);
void		 sandbox_unlock(struct sandbox *sb);
int		 sandbox_request(struct sandbox *sb, const char *line,
		    const char *context, int timeout_ms, char *err,
		    size_t errlen);
/* Consumes what the supervisor said unasked.  -1 if it is gone. */
int		 sandbox_drain(struct sandbox *sb);
/* The socket kernels connect to. */
int		 sandbox_kernel_listener(const struct sandbox *sb);
/* 1 once sandbox_kill has begun. */
int		 sandbox_killed(const struct sandbox *sb);
/* 1 once killed or retired: no new execution may start in it. */
int		 sandbox_gone(const struct sandbox *sb);
/* The host uid its processes run as. */
uid_t		 sandbox_uid(const struct sandbox *sb);
/*
 * A directory fd (O_PATH) of the sandbox's root as its processes see it
 * (its supervisor's /proc/<pid>/root), for openat2(RESOLVE_IN_ROOT); or -1
 * with errno ESRCH when the sandbox has no live supervisor.
 */
int		 sandbox_root_fd(const struct sandbox *sb);
/* What E2B's SandboxMetric says of a sandbox (GET /sandboxes/{id}/metrics). */
struct sandbox_metrics {
	double		 cpu_used_pct;	/* of cpus, since the last sample or start */
	long long	 mem_used;	/* bytes: its memory group's */
	long long	 mem_total;
	long long	 mem_cache;
	long long	 disk_used;	/* bytes: its home's file system */
	long long	 disk_total;
};
/*
 * Samples sb: CPU of every process in its group (and what its supervisor
 * reaped), memory from its group, disk from its home as it sees it.
 * Returns 0, or -1 when the sandbox is going (nothing to read).
 */
int		 sandbox_metrics(struct sandbox *sb, int cpus,
		    struct sandbox_metrics *out);
/* 1 if created with "secure": envd then wants its access token. */
int		 sandbox_secure(const struct sandbox *sb);

/* The contexts of a sandbox (owned by it; kernel.c manages the list). */
struct context	**sandbox_contexts(struct sandbox *sb);

#endif
