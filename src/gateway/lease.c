/* Choosing, creating, renewing and ending the sandboxes requests run in. */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/arena.h"
#include "common/ids.h"
#include "common/log.h"
#include "common/timestamp.h"
#include "gateway/admission.h"
#include "gateway/config.h"
#include "gateway/lease.h"
#include "gateway/request.h"

#define PENDING_STALE_MS	120000	/* a create that never finished */
#define SESSION_WAIT_MS		90000	/* for another request's create */
#define EXPIRED_BATCH		64
#define RETRY_FULL_S		1	/* Retry-After when the queue is full */
#define RETRY_WAITED_S		5	/* when a wait ran out */

static void
nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int
pending(const struct store_sandbox *row)
{
	return strncmp(row->sandbox_id, STORE_PENDING_PREFIX,
	    strlen(STORE_PENDING_PREFIX)) == 0;
}

/* Over its lifetime: the reaper's, whatever the reaper has not done yet. */
static int
past(const struct store_sandbox *row)
{
	char now[TS_ISO_LEN];

	ts_format(ts_now_ms(), now);
	return strcmp(row->expires_at, now) <= 0;
}

/* Ends an expired row found before the reaper got to it. */
static void
expire(struct request *req, const struct store_sandbox *row)
{
	if (store_sandbox_end(req->store, row->sandbox_id, row->project_id,
	    "expired", "idle for its whole lifetime") == STORE_OK)
		e2b_kill(req->e2b, row->sandbox_id);
}

static void
use_row(struct lease *l, const struct store_sandbox *row)
{
	l->row = *row;
	memset(&l->sb, 0, sizeof(l->sb));
	snprintf(l->sb.id, sizeof(l->sb.id), "%s", row->sandbox_id);
}

/* Ends an evicted session's sandbox at the provider (its row is closed). */
static void
kill_evicted(struct request *req, const char *id)
{
	log_info("%s: sandbox %s of %s evicted (its idle session was the "
	    "least recently used) to make room", req->id, id, req->project_id);
	e2b_kill(req->e2b, id);
}

static enum store_status
try_claim(struct request *req, struct store_sandbox *row, long run_s,
    char *evicted)
{
	return store_sandbox_claim(req->store, row, ts_now_ms(), run_s,
	    req->cfg->project_sandboxes, PENDING_STALE_MS, evicted);
}

/*
 * Claims the row, waiting at the project's cap in the admission queue
 * until wait_ms has passed (an idle session is evicted first, by the
 * store, if there is one).  OUT: l->retry_after_s when refused.
 */
static enum store_status
claim(struct request *req, struct store_sandbox *row, long run_s,
    long wait_ms, struct lease *l)
{
	int64_t deadline = ts_mono_ms() + wait_ms;
	struct admission_ticket t;
	enum store_status sst = STORE_LIMIT;
	char evicted[IDS_MAX_LEN + 1];
	int tried = 0;

	/* No call of the project waits: no need to queue for a first try. */
	if (!admission_queued(req->admission, req->project_id)) {
		tried = 1;
		if ((sst = try_claim(req, row, run_s, evicted)) != STORE_LIMIT)
			goto done;
	}
	if (admission_enter(req->admission, &t, req->project_id) == -1) {
		l->retry_after_s = RETRY_FULL_S;
		return STORE_LIMIT;
	}
	for (;;) {
		if (admission_wait(req->admission, &t, deadline, !tried) == -1) {
			sst = STORE_LIMIT;
			l->retry_after_s = RETRY_WAITED_S;
			break;
		}
		tried = 1;
		if ((sst = try_claim(req, row, run_s, evicted)) != STORE_LIMIT)
			break;
	}
	admission_leave(req->admission, &t);
done:
	if (sst == STORE_OK && evicted[0])
		kill_evicted(req, evicted);
	return sst;
}

/* A pending row for a new sandbox of req's project.  -1 if no id. */
static int
pending_row(struct request *req, const char *session_id,
    const char *language, long idle_s, struct store_sandbox *row)
{
	char pending_id[IDS_ULID_BUFSZ];

	memset(row, 0, sizeof(*row));
	if (ids_ulid(STORE_PENDING_PREFIX, pending_id, sizeof(pending_id)) ==
	    -1)
		return -1;
	snprintf(row->sandbox_id, sizeof(row->sandbox_id), "%s", pending_id);
	snprintf(row->project_id, sizeof(row->project_id), "%s",
	    req->project_id);
	snprintf(row->session_id, sizeof(row->session_id), "%s",
	    session_id ? session_id : "");
	snprintf(row->provider, sizeof(row->provider), "%s",
	    req->cfg->provider);
	snprintf(row->language, sizeof(row->language), "%s", language);
	row->idle_timeout_s = idle_s;
	return 0;
}

/*
 * Creates the claimed row's sandbox at the provider and gives the row its
 * id; on failure the row is gone.  OUT: l->sb, *pst.
 */
static enum lease_err
provider_create(struct request *req, const struct store_sandbox *row,
    int lifetime_s, struct lease *l, enum e2b_status *pst)
{
	struct json_object *md = json_object_new_object();

	json_object_object_add(md, "projectId",
	    json_object_new_string(req->project_id));
	if (row->session_id[0])
		json_object_object_add(md, "sessionId",
		    json_object_new_string(row->session_id));
	memset(&l->sb, 0, sizeof(l->sb));
	*pst = e2b_create(req->e2b, lifetime_s, md, &l->sb);
	json_object_put(md);
	if (*pst != E2B_OK) {
		store_sandbox_forget(req->store, row->sandbox_id);
		admission_signal(req->admission, req->project_id);
		return LEASE_PROVIDER;
	}
	if (store_sandbox_rename(req->store, row->sandbox_id, l->sb.id) !=
	    STORE_OK) {
		/* No row can say it exists: do not leave it running. */
		e2b_kill(req->e2b, l->sb.id);
		store_sandbox_forget(req->store, row->sandbox_id);
		return LEASE_DB;
	}
	store_sandbox_event(req->store, l->sb.id, req->project_id, "created",
	    row->session_id[0] ? "for a session" : l->fresh ?
	    "for one execution" : "pre-warmed");
	return LEASE_OK;
}

/*
 * Claims a row for a new sandbox, creates it at the provider, and gives
 * the row its id.  The row comes first: the cap and the one-per-session
 * rule are decided by the database, whatever the concurrency.
 */
static enum lease_err
create(struct request *req, const char *session_id, const char *language,
    long idle_s, long run_s, long wait_ms, struct lease *l,
    enum e2b_status *pst)
{
	struct store_sandbox row;
	enum store_status sst;
	enum lease_err err;

	if (pending_row(req, session_id, language, idle_s, &row) == -1)
		return LEASE_DB;
	sst = claim(req, &row, run_s, wait_ms, l);
	if (sst == STORE_LIMIT)
		return LEASE_LIMIT;
	if (sst == STORE_EXISTS)
		return LEASE_NOT_FOUND;		/* the caller looks again */
	if (sst != STORE_OK)
		return LEASE_DB;
	if ((err = provider_create(req, &row, (int)(idle_s + run_s), l,
	    pst)) != LEASE_OK)
		return err;
	snprintf(row.sandbox_id, sizeof(row.sandbox_id), "%s", l->sb.id);
	ts_format(ts_now_ms(), row.created_at);
	memcpy(row.last_used_at, row.created_at, sizeof(row.created_at));
	ts_format(ts_now_ms() + (idle_s + run_s) * 1000, row.expires_at);
	snprintf(row.status, sizeof(row.status), "running");
	l->row = row;
	l->created = 1;
	return LEASE_OK;
}

/* The live sandbox sandbox_id of the project.  OUT: l. */
static enum lease_err
by_id(struct request *req, const char *sandbox_id, struct lease *l)
{
	struct store_sandbox row;
	enum store_status sst;

	sst = store_sandbox_live(req->store, req->project_id, sandbox_id, NULL,
	    &row);
	if (sst == STORE_NOT_FOUND || (sst == STORE_OK && pending(&row)))
		return LEASE_NOT_FOUND;
	if (sst != STORE_OK)
		return LEASE_DB;
	if (past(&row)) {
		expire(req, &row);
		return LEASE_NOT_FOUND;
	}
	use_row(l, &row);
	return LEASE_OK;
}

/*
 * The session's sandbox; the first request creates it, the others wait
 * for that one create (the claim lets only one through).  OUT: l, *pst.
 */
static enum lease_err
for_session(struct request *req, const char *session_id,
    const char *language, long idle_s, long run_s, long wait_ms,
    struct lease *l, enum e2b_status *pst)
{
	int64_t deadline = ts_mono_ms() + SESSION_WAIT_MS;
	struct store_sandbox row;
	enum store_status sst;
	enum lease_err err;

	while (ts_mono_ms() < deadline) {
		sst = store_sandbox_live(req->store, req->project_id, NULL,
		    session_id, &row);
		if (sst == STORE_OK && !pending(&row) && past(&row)) {
			expire(req, &row);	/* the session starts afresh */
			continue;
		}
		if (sst == STORE_OK && !pending(&row)) {
			use_row(l, &row);
			return LEASE_OK;
		}
		if (sst == STORE_OK) {
			nap_ms(50);
			continue;
		}
		if (sst != STORE_NOT_FOUND)
			return LEASE_DB;
		/* Evicted since its last call: told once, then afresh. */
		if ((sst = store_session_evicted(req->store, req->project_id,
		    session_id)) == STORE_OK)
			return LEASE_EVICTED;
		if (sst != STORE_NOT_FOUND)
			return LEASE_DB;
		if ((err = create(req, session_id, language, idle_s, run_s,
		    wait_ms, l, pst)) != LEASE_NOT_FOUND)
			return err;
	}
	*pst = E2B_TIMEOUT;
	return LEASE_PROVIDER;
}

enum lease_err
lease_acquire(struct request *req, const char *sandbox_id,
    const char *session_id, const char *language, long idle_s, long run_s,
    long wait_s, int prewarm, struct lease *l, enum e2b_status *pst)
{
	memset(l, 0, sizeof(*l));
	*pst = E2B_OK;
	if (sandbox_id)
		return by_id(req, sandbox_id, l);
	if (wait_s > req->cfg->admission_wait_s)
		wait_s = req->cfg->admission_wait_s;
	if (session_id == NULL) {
		l->fresh = !prewarm;
		return create(req, NULL, language, idle_s, run_s, wait_s * 1000,
		    l, pst);
	}
	return for_session(req, session_id, language, idle_s, run_s,
	    wait_s * 1000, l, pst);
}

/* After the answer: a one-off sandbox is closed. */
static void
close_fresh(struct request *req, void *arg)
{
	const char *id = arg;

	store_sandbox_end(req->store, id, req->project_id, "closed",
	    "closed after its one execution");
	/* Room for a waiting call at once; the provider's end after. */
	admission_signal(req->admission, req->project_id);
	e2b_kill(req->e2b, id);
}

void
lease_release(struct request *req, struct lease *l, long executions,
    int failed)
{
	const char *id = l->row.sandbox_id;
	char *copy;

	if (failed) {
		store_sandbox_end(req->store, id, req->project_id, "failed",
		    "the provider no longer has it");
		admission_signal(req->admission, req->project_id);
		return;
	}
	/*
	 * The row now expires when idle; the provider's end, set by
	 * lease_hold for the run, is later by the run's timeout: only a
	 * backstop, should every gateway be gone, since our reaper ends it
	 * on time.  So no second call to the provider here.
	 */
	store_sandbox_touch(req->store, id, ts_now_ms(), executions, 0);
	if (!l->fresh) {
		/* Evictable again: a waiting call may take its room. */
		admission_signal(req->admission, req->project_id);
		return;
	}
	/* Closing it takes the provider a while: after the answer. */
	if ((copy = arena_strndup(req->arena, id, strlen(id))) != NULL &&
	    req->after == NULL) {
		req->after = close_fresh;
		req->after_arg = copy;
	} else
		close_fresh(req, (void *)id);
}

enum lease_err
lease_hold(struct request *req, struct lease *l, long run_s,
    enum e2b_status *pst)
{
	const char *id = l->row.sandbox_id;
	enum store_status sst;

	/* Busy first: from now on no create evicts it. */
	sst = store_sandbox_touch(req->store, id, ts_now_ms(), 0, run_s);
	if (sst == STORE_NOT_FOUND && l->row.session_id[0] &&
	    store_session_evicted(req->store, req->project_id,
	    l->row.session_id) == STORE_OK)
		return LEASE_EVICTED;	/* since it was found, a moment ago */
	if (sst == STORE_NOT_FOUND)
		return LEASE_NOT_FOUND;
	*pst = e2b_set_timeout(req->e2b, id, (int)(l->row.idle_timeout_s +
	    run_s));
	if (*pst != E2B_OK)
		return LEASE_PROVIDER;
	return LEASE_OK;
}

enum lease_err
lease_close(struct request *req, const char *project_id,
    const char *sandbox_id)
{
	struct store_sandbox row;
	enum store_status sst;
	enum e2b_status est;

	sst = store_sandbox_live(req->store, project_id, sandbox_id, NULL,
	    &row);
	if (sst == STORE_NOT_FOUND || (sst == STORE_OK && pending(&row)))
		return LEASE_NOT_FOUND;
	if (sst != STORE_OK)
		return LEASE_DB;
	est = e2b_kill(req->e2b, sandbox_id);
	if (est != E2B_OK && est != E2B_NOT_FOUND)
		return LEASE_PROVIDER;
	sst = store_sandbox_end(req->store, sandbox_id, project_id, "closed",
	    "closed by the API");
	admission_signal(req->admission, project_id);
	return sst == STORE_OK || sst == STORE_NOT_FOUND ? LEASE_OK : LEASE_DB;
}

void
lease_reap(struct store *st, struct e2b *c)
{
	static char ids[EXPIRED_BATCH][IDS_MAX_LEN + 1];
	static char projects[EXPIRED_BATCH][IDS_MAX_LEN + 1];
	int n, i;

	if ((n = store_sandbox_expired(st, ts_now_ms(), ids, projects,
	    EXPIRED_BATCH)) <= 0)
		return;
	for (i = 0; i < n; i++) {
		/* Whoever ends the row (one process of many) kills it. */
		if (store_sandbox_end(st, ids[i], projects[i], "expired",
		    "idle for its whole lifetime") != STORE_OK)
			continue;
		if (e2b_kill(c, ids[i]) == E2B_UNREACHABLE)
			log_warnx("reaper: provider unreachable; sandbox %s "
			    "ends at its own timeout", ids[i]);
		log_info("sandbox %s of %s expired", ids[i], projects[i]);
	}
}
