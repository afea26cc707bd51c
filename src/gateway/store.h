#ifndef IRIS_STORE_H
#define IRIS_STORE_H

#include <stdint.h>

#include "common/apikey.h"
#include "common/ids.h"
#include "common/timestamp.h"
#include "gateway/ratelimit.h"

/*
 * The gateway's database access: the only gateway file that sees SQLite.
 * A struct store is one connection with its statements prepared once; use
 * it from one thread at a time.  Writes from all threads of the process
 * are serialized by one mutex before SQLite's own lock, so threads queue
 * without SQLite's busy sleeps; processes still share the file safely.
 */
struct store;

enum store_status {
	STORE_OK = 0,
	STORE_NOT_FOUND,
	STORE_BUSY,		/* locked for longer than the busy timeout */
	STORE_ERROR,		/* logged */
	STORE_LIMIT,		/* the project has its maximum of sandboxes */
	STORE_EXISTS		/* the session has a live sandbox already */
};

struct store_key {
	char		 project_id[IDS_MAX_LEN + 1];
	unsigned char	 hash[CRYPTO_SHA256_LEN];
	int		 revoked;
};

/* One audit_log row. */
struct audit_rec {
	char		 created_at[TS_ISO_LEN];
	char		 request_id[IDS_ULID_BUFSZ];
	char		 method[16];
	char		 route[256];
	int		 status;
	const char	*error_code;		/* static string, or NULL */
	char		 key_id[APIKEY_ID_LEN + 1];	/* "" if none */
	char		 project_id[IDS_MAX_LEN + 1];	/* "" if none */
	char		 client_addr[64];
	long		 duration_ms;
};

/* One sandboxes row, as the API shows it. */
struct store_sandbox {
	char	 sandbox_id[IDS_MAX_LEN + 1];
	char	 project_id[IDS_MAX_LEN + 1];
	char	 session_id[IDS_MAX_LEN + 1];	/* "" if none */
	char	 provider[8];
	char	 status[16];
	char	 created_at[TS_ISO_LEN];
	char	 last_used_at[TS_ISO_LEN];
	char	 expires_at[TS_ISO_LEN];
	char	 language[16];
	long	 idle_timeout_s;
	long	 executions;
};

/* A sandbox row whose provider sandbox is still being created. */
#define STORE_PENDING_PREFIX	"pending-"

/* One executions row. */
struct exec_row {
	char		 execution_id[IDS_ULID_BUFSZ];
	const char	*request_id;
	char		 created_at[TS_ISO_LEN];
	const char	*project_id;
	const char	*key_id;
	const char	*session_id;	/* NULL if none */
	const char	*sandbox_id;	/* NULL if none */
	const char	*provider;
	const char	*language;
	long		 code_bytes;
	char		 code_sha256[2 * CRYPTO_SHA256_LEN + 1];
	const char	*code;		/* NULL unless kept */
	size_t		 code_len;
	const char	*status;	/* ok error timeout upstream_error rejected */
	const char	*error_name;
	const char	*error_message;
	long		 duration_ms;
	long		 stdout_bytes;
	long		 stderr_bytes;
	long		 result_count;
};

/*
 * Opens a connection to the database at path, which must already be at
 * this build's schema version.  Returns it (store_close), or NULL.
 */
struct store	*store_open(const char *path, int busy_ms);
void		 store_close(struct store *st);

/* Brings the schema up to date (creating the file).  Returns 0, or -1. */
int		 store_migrate(const char *path, int busy_ms);

/* STORE_OK if the database answers and its schema is current. */
enum store_status store_ping(struct store *st);

/* Finds key_id.  OUT: key.  STORE_NOT_FOUND if there is no such key. */
enum store_status store_key_find(struct store *st, const char *key_id,
		    struct store_key *key);

/* One write of a batch: a rate-limit decision or an audit row. */
struct store_op {
	enum { STORE_OP_ADMIT, STORE_OP_AUDIT } kind;
	/* ADMIT: charge one request at now_us to key_id's limit. */
	const char		*key_id;
	int64_t			 now_us;
	struct rl_result	*res;		/* OUT */
	long			*limit;		/* OUT: the key's limit */
	/* AUDIT: insert this row. */
	const struct audit_rec	*rec;
	enum store_status	 status;	/* OUT: STORE_NOT_FOUND for an
						 * ADMIT of an unknown or
						 * revoked key */
};

/*
 * Carries out n operations, in order, in one write transaction: each
 * decision sees the ones before it, so limits stay exact.  If the
 * transaction fails, every op's status is that failure.  Returns it, or
 * STORE_OK.
 */
enum store_status store_batch(struct store *st, struct store_op *ops, int n);

/* Finds a sandbox of project.  OUT: sb. */
enum store_status store_sandbox_get(struct store *st, const char *project_id,
		    const char *sandbox_id, struct store_sandbox *sb);

/*
 * Calls fn for each live (running) sandbox of project, oldest first; stops
 * with STORE_ERROR if fn returns -1.
 */
enum store_status store_sandbox_list(struct store *st, const char *project_id,
		    int (*fn)(void *, const struct store_sandbox *), void *arg);

/*
 * Adds a running sandbox row (sb: id, project, session, provider,
 * language, idle_timeout_s; created now_ms, busy for busy_s, expiring
 * idle_timeout_s + busy_s later) unless sb's session has one
 * (STORE_EXISTS) or the project has `cap` live ones: then, in the same
 * transaction, its least recently used idle session (none busy) is closed
 * to make room, its id put in evicted (IDS_MAX_LEN + 1 bytes; "" if none)
 * for the caller to kill, and its session left a notice (see
 * store_session_evicted); STORE_LIMIT if there is none to evict.  Rows
 * left pending for longer than stale_ms are removed first.
 */
enum store_status store_sandbox_claim(struct store *st,
		    const struct store_sandbox *sb, int64_t now_ms, long busy_s,
		    long cap, int64_t stale_ms, char *evicted);

/*
 * Takes the eviction notice of a session: STORE_OK if its sandbox was
 * evicted since its last call (the notice is gone now), STORE_NOT_FOUND
 * if not.
 */
enum store_status store_session_evicted(struct store *st,
		    const char *project_id, const char *session_id);

/* The live sandbox of project with this id, or of this session. */
enum store_status store_sandbox_live(struct store *st, const char *project_id,
		    const char *sandbox_id, const char *session_id,
		    struct store_sandbox *sb);

/* Gives a pending row its provider's id; or removes the pending row. */
enum store_status store_sandbox_rename(struct store *st, const char *from,
		    const char *to);
enum store_status store_sandbox_forget(struct store *st, const char *id);

/*
 * Records a use: last used now, adds executions, and expires
 * idle_timeout_s + busy_s from now (busy_s: a run about to start may
 * last that long).
 */
enum store_status store_sandbox_touch(struct store *st, const char *id,
		    int64_t now_ms, long executions, long busy_s);

/*
 * Ends a running sandbox with status (closed, expired, failed) and the
 * matching sandbox_events row.  STORE_NOT_FOUND if it was not running.
 */
enum store_status store_sandbox_end(struct store *st, const char *id,
		    const char *project_id, const char *status,
		    const char *detail);

/* Adds a sandbox_events row. */
enum store_status store_sandbox_event(struct store *st, const char *id,
		    const char *project_id, const char *event,
		    const char *detail);

/*
 * Up to max live sandboxes (not pending) whose expiry has passed: ids and
 * projects (IDS_MAX_LEN + 1 bytes each).  Returns how many, or -1.
 */
int		 store_sandbox_expired(struct store *st, int64_t now_ms,
		    char (*ids)[IDS_MAX_LEN + 1],
		    char (*projects)[IDS_MAX_LEN + 1], int max);

/* A project's figures since a time (GET /api/iris/metrics). */
struct store_metrics {
	long	total;		/* calls that ran, or tried to: not rejected */
	long	succeeded;	/* ok */
	long	failed;		/* error + upstream_error */
	long	errors;		/* error: the code raised or its kernel died */
	long	upstream_errors;
	long	timed_out;	/* timeout */
	long	p50, p95, p99;	/* duration_ms of ok/error/timeout runs,
				 * nearest rank; -1 if none */
	long	live;		/* running sandboxes now */
	long	created;	/* sandboxes created since */
};

/*
 * Fills m for project since the time (ISO 8601), and calls fn for each
 * error type (name, count), most frequent first, at most 20.
 */
enum store_status store_metrics(struct store *st, const char *project_id,
		    const char *since, struct store_metrics *m,
		    int (*fn)(void *, const char *, long), void *arg);

/* One executions row as GET /api/iris/executions lists it. */
struct store_exec_item {
	const char	*execution_id, *created_at, *session_id, *sandbox_id;
	const char	*language, *status, *error_name;
	long		 duration_ms, code_bytes;
};

/*
 * Calls fn for up to limit executions of project, newest first, older
 * than `before` (an execution id) if given, of session_id and with
 * status if given.  STORE_NOT_FOUND if before names no execution of the
 * project.
 */
enum store_status store_executions(struct store *st, const char *project_id,
		    const char *before, const char *session_id,
		    const char *status, int limit,
		    int (*fn)(void *, const struct store_exec_item *),
		    void *arg);

/* Writes one executions row. */
enum store_status store_execution_insert(struct store *st,
		    const struct exec_row *row);

#endif
