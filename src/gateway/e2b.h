#ifndef IRIS_E2B_H
#define IRIS_E2B_H

#include <stddef.h>

struct json_object;

/*
 * A client of E2B's wire protocol (docs: e2b-protocol.md), the only file
 * that sees libcurl: the control plane (create, kill, timeout, get) and
 * the code interpreter (execute, streamed as NDJSON).  One struct e2b per
 * worker thread: its curl handles keep their connections between calls.
 * Nothing from the provider (its key, tokens, raw bodies) is ever logged
 * or handed back in an error message.
 */
struct e2b;

struct e2b_config {
	const char	*api_url;	/* E2B_API_URL */
	const char	*sandbox_url;	/* E2B_SANDBOX_URL, or NULL: Host routing */
	const char	*domain;	/* E2B_DOMAIN, for "49999-<id>.<domain>" */
	const char	*scheme;	/* of Host-routed URLs: "https" */
	const char	*connect_to;	/* curl CONNECT_TO rule, or NULL */
	const char	*api_key;	/* E2B_API_KEY */
	const char	*template_id;
	long		 connect_timeout_ms;
	long		 request_timeout_ms;	/* control-plane calls */
	long		 create_retries;	/* on 429 from create */
	/* The provider ends a run at its timeout itself (iris-sandboxd:
	 * "timeout" in the /execute body) within this grace, ms; 0: it
	 * does not (E2B's server has no execution deadline). */
	long		 run_deadline_grace_ms;
};

enum e2b_status {
	E2B_OK = 0,
	E2B_NOT_FOUND,		/* no such sandbox (404, or the proxy's 502) */
	E2B_LIMIT,		/* 429: the provider's capacity */
	E2B_UNREACHABLE,	/* could not connect */
	E2B_TIMEOUT,		/* no answer in time */
	E2B_BAD,		/* an error status or an unusable answer */
	E2B_ABORTED		/* the event callback stopped it */
};

/* What it takes to reach a sandbox. */
struct e2b_sandbox {
	char	id[129];
	char	token[160];	/* envdAccessToken, or "" */
	char	domain[128];	/* the sandbox's domain, or "" for ours */
};

/* Once, before threads start.  Returns 0, or -1. */
int		 e2b_global_init(const struct e2b_config *cfg);
void		 e2b_global_release(void);

struct e2b	*e2b_new(void);
void		 e2b_free(struct e2b *c);

/* Human words for a status, for logs and error messages. */
const char	*e2b_strerror(enum e2b_status st);

/* GET /health of the control plane. */
enum e2b_status	 e2b_health(struct e2b *c);

/*
 * Creates a sandbox that lives timeout_s unless refreshed; metadata (an
 * object of strings, or NULL) is stored with it.  429s are retried as
 * Retry-After says (else with backoff), create_retries times.  OUT: sb.
 */
enum e2b_status	 e2b_create(struct e2b *c, int timeout_s,
		    struct json_object *metadata, struct e2b_sandbox *sb);
enum e2b_status	 e2b_kill(struct e2b *c, const char *id);
/* The sandbox now ends timeout_s from now. */
enum e2b_status	 e2b_set_timeout(struct e2b *c, const char *id,
		    int timeout_s);

/* One run: what POST /execute is sent. */
struct e2b_run {
	const char		*code;
	size_t			 code_len;
	const char		*language;
	struct json_object	*env_vars;	/* an object of strings, or NULL */
	long			 timeout_ms;
	/* 0: a run of Iris's own (a context or package helper), which a
	 * kernel that knows Jupyter's store_history does not count in its
	 * execution count; E2B's server ignores it. */
	int			 store_history;
};

/*
 * Runs run->code in sb's default context for its language, handing each
 * event (a JSON object of the E2B NDJSON stream; keepalives too, every 5 s
 * of silence, so the caller can look at its own client) to on_event as it
 * arrives; on_event returns -1 to stop.  It ends at end_of_execution, or
 * when timeout_ms passes (E2B_TIMEOUT; *started tells whether the
 * provider had begun answering).  With a provider that keeps the deadline
 * itself (run_deadline_grace_ms), the provider is told it and the run's
 * own TimeoutError comes from it -- saying whether the context's state was
 * kept -- and timeout_ms is only the backstop, later by the grace and 3 s.
 */
enum e2b_status	 e2b_execute(struct e2b *c, const struct e2b_sandbox *sb,
		    const struct e2b_run *run,
		    int (*on_event)(void *arg, struct json_object *event),
		    void *arg, int *started);

#endif
