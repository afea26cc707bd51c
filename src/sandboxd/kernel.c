/*
 * Contexts and the relay of executions between a kernel's socket and the
 * HTTP client.  Every byte from a kernel is untrusted (user code shares
 * its process): lines are bounded, parsed, and re-checked before they are
 * passed on; output is capped per stream.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/timestamp.h"
#include "common/utf8.h"
#include "sandboxd/cgroup.h"
#include "sandboxd/kernel.h"
#include "sandboxd/proc.h"
#include "sandboxd/sandbox.h"

#define SPAWN_TIMEOUT_MS	30000
#define HELLO_TIMEOUT_MS	10000
#define DRAIN_TIMEOUT_MS	KERNEL_INTERRUPT_GRACE_MS	/* then SIGKILL */
#define TREE_MAX		1024	/* processes of one kernel we kill */
#define LINE_MAX_BYTES		(16 << 20)	/* one kernel line */
#define TEXT_CHUNK		(64 << 10)

struct context {
	char		 id[37];	/* a UUID, like Jupyter's kernel ids */
	char		 language[16];
	char		 cwd[256];
	struct sandbox	*sb;
	int		 fd;		/* the kernel's socket, or -1 */
	pid_t		 pid;		/* its host pid */
	int		 refs;
	int		 deleted;
	pthread_mutex_t	 lock;
	pthread_cond_t	 turn_cv;
	unsigned long	 next_ticket;	/* executions run in ticket order */
	unsigned long	 serving;
	struct context	*next;
};

struct exec {
	struct context	*ctx;
	int		 client_fd;
	struct buf	 out;		/* NDJSON ready for the client */
	size_t		 out_off;
	char		 esc[12];	/* an escape cut by a short read */
	size_t		 esc_len, esc_off;
	struct buf	 line;		/* a partial kernel line */
	int		 skipping;	/* dropping an over-long line */
	long		 stream_bytes[2];	/* stdout, stderr relayed */
	long		 dropped[2];	/* bytes past the ceiling */
	int		 finished;	/* end_of_execution queued */
	int64_t		 last_out_ms;
	long		 oom_kills;	/* the sandbox's count at the start */
	long		 timeout_ms;	/* 0: none */
	int64_t		 deadline_ms;	/* monotonic: then interrupt */
	int64_t		 grace_ms;	/* monotonic: then kill; 0 before */
	int		 timeout_said;	/* its TimeoutError is queued */
};

static pthread_mutex_t ref_lock = PTHREAD_MUTEX_INITIALIZER;

const char *
kernel_language(const char *name)
{
	static const char *const names[][2] = {
		{ "python", "python" }, { "python3", "python" },
		{ "javascript", "javascript" }, { "js", "javascript" },
		{ "typescript", "typescript" }, { "ts", "typescript" },
		{ "bash", "bash" }, { "sh", "bash" },
	};
	size_t i;

	if (name == NULL || *name == '\0')
		return "python";
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(name, names[i][0]) == 0)
			return names[i][1];
	return NULL;
}

static void
uuid4(char out[37])
{
	unsigned char b[16];
	char hex[33];

	if (crypto_random(b, sizeof(b)) == -1)
		fatalx("no randomness");
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	crypto_hex(b, sizeof(b), hex);
	snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8,
	    hex + 12, hex + 16, hex + 20);
}

/* --- the kernel process ----------------------------------------------- */

/* Reads one line (without '\n') into out within the deadline. */
static int
read_hello(int fd, char *out, size_t outsz, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t n = 0;
	ssize_t r;
	int wait;

	while (n < outsz - 1) {
		wait = (int)(deadline - ts_mono_ms());
		if (wait <= 0 || poll(&pfd, 1, wait) <= 0)
			return -1;
		if ((r = read(fd, out + n, 1)) <= 0)
			return -1;
		if (out[n] == '\n') {
			out[n] = '\0';
			return 0;
		}
		n++;
	}
	return -1;
}

/* Accepts the connection of ctx's new kernel; the sandbox lock is held. */
static int
accept_kernel(struct context *ctx, int64_t deadline)
{
	int lfd = sandbox_kernel_listener(ctx->sb);
	struct pollfd pfd = { .fd = lfd, .events = POLLIN };
	struct json_object *hello, *v;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	char line[512];
	int fd, ok, wait;

	for (;;) {
		wait = (int)(deadline - ts_mono_ms());
		if (wait <= 0 || poll(&pfd, 1, wait) <= 0)
			return -1;
		if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) == -1)
			continue;
		ok = read_hello(fd, line, sizeof(line), deadline) == 0 &&
		    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
		    cred.pid > 0 && (hello = json_tokener_parse(line)) != NULL;
		if (ok) {
			ok = json_object_object_get_ex(hello, "context", &v) &&
			    strcmp(json_object_get_string(v), ctx->id) == 0;
			json_object_put(hello);
		}
		if (!ok) {	/* not our kernel: something else in there */
			close(fd);
			continue;
		}
		ctx->fd = fd;
		ctx->pid = cred.pid;
		return 0;
	}
}

/* Starts ctx's kernel.  Returns 0, or -1 with err. */
static int
spawn_kernel(struct context *ctx, char *err, size_t errlen)
{
	struct json_object *req = json_object_new_object(), *env;
	char line[1024];
	int rc;

	json_object_object_add(req, "op", json_object_new_string("spawn"));
	json_object_object_add(req, "context", json_object_new_string(ctx->id));
	json_object_object_add(req, "language",
	    json_object_new_string(ctx->language));
	json_object_object_add(req, "cwd", json_object_new_string(ctx->cwd));
	env = json_object_new_object();
	json_object_object_add(env, "E2B_SANDBOX_ID",
	    json_object_new_string(sandbox_id(ctx->sb)));
	json_object_object_add(req, "env", env);
	snprintf(line, sizeof(line), "%s\n", json_object_to_json_string_ext(
	    req, JSON_C_TO_STRING_PLAIN));
	json_object_put(req);

	sandbox_lock(ctx->sb);
	if (sandbox_killed(ctx->sb)) {
		snprintf(err, errlen, "the sandbox was killed");
		rc = -1;
	} else if ((rc = sandbox_request(ctx->sb, line, ctx->id,
	    SPAWN_TIMEOUT_MS, err, errlen)) == 0 &&
	    (rc = accept_kernel(ctx, ts_mono_ms() + HELLO_TIMEOUT_MS)) == -1)
		snprintf(err, errlen, "the %s kernel did not start",
		    ctx->language);
	sandbox_unlock(ctx->sb);
	return rc;
}

/*
 * SIGKILLs a kernel and its descendants (a bash kernel's shell and what
 * it runs lead process groups of their own).  Each is stopped first, so
 * none forks while the tree is walked; and each must run as the
 * sandbox's uid: a pid the host has handed to another process since
 * (the kernel died and was reaped) is never touched.  Descendants that
 * left the tree (daemons, reparented to the supervisor) stay: they are
 * the sandbox's, and die with it or in its scrub.
 */
static void
kill_tree(pid_t root, uid_t uid)
{
	pid_t *list;
	size_t i, n = 1;
	uid_t owner;

	if ((list = calloc(TREE_MAX, sizeof(*list))) == NULL)
		return;
	list[0] = root;
	for (i = 0; i < n; i++) {
		if (proc_uid(list[i], &owner) == -1 || owner != uid) {
			list[i] = 0;
			continue;
		}
		kill(list[i], SIGSTOP);
		proc_children(list[i], list, &n, TREE_MAX);
	}
	for (i = 0; i < n; i++)
		if (list[i] > 0)
			kill(list[i], SIGKILL);
	free(list);
}

/* 1 if the kernel is stopped (SIGSTOP, a tracer): it will never answer. */
static int
kernel_stopped(pid_t pid)
{
	char state = proc_state(pid);

	return state == 'T' || state == 't';
}

/* Kills ctx's kernel; the context lock is held. */
static void
stop_kernel(struct context *ctx)
{
	if (ctx->fd == -1)
		return;
	if (ctx->pid > 0)
		kill_tree(ctx->pid, sandbox_uid(ctx->sb));
	close(ctx->fd);
	ctx->fd = -1;
	ctx->pid = 0;
}

/* --- contexts ----------------------------------------------------------------- */

static struct context *
context_alloc(struct sandbox *sb, const char *language, const char *cwd)
{
	struct context *ctx;

	if ((ctx = calloc(1, sizeof(*ctx))) == NULL)
		return NULL;
	uuid4(ctx->id);
	snprintf(ctx->language, sizeof(ctx->language), "%s", language);
	snprintf(ctx->cwd, sizeof(ctx->cwd), "%s", cwd ? cwd : "/home/user");
	ctx->sb = sb;
	ctx->fd = -1;
	ctx->refs = 2;		/* the sandbox's list and the caller */
	pthread_mutex_init(&ctx->lock, NULL);
	pthread_cond_init(&ctx->turn_cv, NULL);
	return ctx;
}

static void
context_free(struct context *ctx)
{
	stop_kernel(ctx);
	pthread_mutex_destroy(&ctx->lock);
	pthread_cond_destroy(&ctx->turn_cv);
	free(ctx);
}

void
kernel_context_put(struct context *ctx)
{
	int last;

	if (ctx == NULL)
		return;
	pthread_mutex_lock(&ref_lock);
	last = --ctx->refs == 0;
	pthread_mutex_unlock(&ref_lock);
	if (last)
		context_free(ctx);
}

static void
context_get(struct context *ctx)
{
	pthread_mutex_lock(&ref_lock);
	ctx->refs++;
	pthread_mutex_unlock(&ref_lock);
}

/* Appends ctx to sb's list, the newest last. */
static void
context_link(struct sandbox *sb, struct context *ctx)
{
	struct context **pp;

	sandbox_lock(sb);
	for (pp = sandbox_contexts(sb); *pp; pp = &(*pp)->next)
		;
	*pp = ctx;
	sandbox_unlock(sb);
}

struct context *
kernel_context_new(struct sandbox *sb, const char *language, const char *cwd,
    char *err, size_t errlen)
{
	struct context *ctx;

	if ((ctx = context_alloc(sb, language, cwd)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (spawn_kernel(ctx, err, errlen) == -1) {
		ctx->refs = 1;
		kernel_context_put(ctx);
		return NULL;
	}
	context_link(sb, ctx);
	return ctx;
}

static struct context *
find_locked(struct sandbox *sb, const char *id, const char *default_lang)
{
	struct context *ctx;

	for (ctx = *sandbox_contexts(sb); ctx; ctx = ctx->next) {
		if (id && strcmp(ctx->id, id) == 0)
			break;
		/* The first context of a language is its default. */
		if (default_lang && strcmp(ctx->language, default_lang) == 0)
			break;
	}
	if (ctx)
		context_get(ctx);
	return ctx;
}

struct context *
kernel_context_find(struct sandbox *sb, const char *id)
{
	struct context *ctx;

	sandbox_lock(sb);
	ctx = find_locked(sb, id, NULL);
	sandbox_unlock(sb);
	return ctx;
}

/*
 * The default context of language, linked (the newest last) if there is
 * none; the sandbox lock is held.  Its kernel starts on first use, in
 * turn, so a second caller finds this one.  NULL if out of memory.
 */
static struct context *
default_locked(struct sandbox *sb, const char *language)
{
	struct context *ctx, **pp;

	if ((ctx = find_locked(sb, NULL, language)) != NULL)
		return ctx;
	if ((ctx = context_alloc(sb, language, NULL)) == NULL)
		return NULL;
	for (pp = sandbox_contexts(sb); *pp; pp = &(*pp)->next)
		;
	*pp = ctx;
	return ctx;
}

struct context *
kernel_context_default(struct sandbox *sb, const char *language, char *err,
    size_t errlen)
{
	struct context *ctx;

	sandbox_lock(sb);
	ctx = default_locked(sb, language);
	sandbox_unlock(sb);
	if (ctx == NULL)
		snprintf(err, errlen, "out of memory");
	return ctx;
}

int
kernel_context_defaults(struct sandbox *sb)
{
	static const char *const languages[] = { "python", "javascript" };
	struct context *ctx;
	size_t i;
	int rc = 0;

	sandbox_lock(sb);
	for (i = 0; i < sizeof(languages) / sizeof(languages[0]); i++) {
		if ((ctx = default_locked(sb, languages[i])) == NULL)
			rc = -1;
		kernel_context_put(ctx);
	}
	sandbox_unlock(sb);
	return rc;
}

/* Waits for ctx's turn: executions and admin work run one at a time. */
static void
turn_take(struct context *ctx)
{
	unsigned long ticket;

	pthread_mutex_lock(&ctx->lock);
	ticket = ctx->next_ticket++;
	while (ctx->serving != ticket)
		pthread_cond_wait(&ctx->turn_cv, &ctx->lock);
	pthread_mutex_unlock(&ctx->lock);
}

static void
turn_give(struct context *ctx)
{
	pthread_mutex_lock(&ctx->lock);
	ctx->serving++;
	pthread_cond_broadcast(&ctx->turn_cv);
	pthread_mutex_unlock(&ctx->lock);
}

int
kernel_context_restart(struct sandbox *sb, struct context *ctx, char *err,
    size_t errlen)
{
	int rc;

	(void)sb;
	turn_take(ctx);
	stop_kernel(ctx);
	rc = spawn_kernel(ctx, err, errlen);
	turn_give(ctx);
	return rc;
}

int
kernel_context_delete(struct sandbox *sb, const char *id)
{
	struct context **pp, *ctx = NULL;

	sandbox_lock(sb);
	for (pp = sandbox_contexts(sb); *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->id, id) == 0) {
			ctx = *pp;
			*pp = ctx->next;
			break;
		}
	sandbox_unlock(sb);
	if (ctx == NULL)
		return -1;
	turn_take(ctx);
	ctx->deleted = 1;
	stop_kernel(ctx);
	turn_give(ctx);
	kernel_context_put(ctx);
	return 0;
}

struct json_object *
kernel_context_json(const struct context *ctx)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_string(ctx->id));
	json_object_object_add(o, "language",
	    json_object_new_string(ctx->language));
	json_object_object_add(o, "cwd", json_object_new_string(ctx->cwd));
	return o;
}

struct json_object *
kernel_context_list(struct sandbox *sb)
{
	struct json_object *list = json_object_new_array();
	struct context *ctx;

	sandbox_lock(sb);
	for (ctx = *sandbox_contexts(sb); ctx; ctx = ctx->next)
		json_object_array_add(list, kernel_context_json(ctx));
	sandbox_unlock(sb);
	return list;
}

void
kernel_close_all(struct sandbox *sb)
{
	struct context *ctx;

	/*
	 * shutdown, not close: a relay may be polling the fd right now.  The
	 * kernels die with the sandbox: forget their pids, which the host
	 * may hand to unrelated processes from now on.
	 */
	for (ctx = *sandbox_contexts(sb); ctx; ctx = ctx->next) {
		pthread_mutex_lock(&ctx->lock);
		if (ctx->fd != -1)
			shutdown(ctx->fd, SHUT_RDWR);
		ctx->pid = 0;
		pthread_mutex_unlock(&ctx->lock);
	}
}

void
kernel_free_all(struct sandbox *sb)
{
	struct context *ctx, *next;

	for (ctx = *sandbox_contexts(sb); ctx; ctx = next) {
		next = ctx->next;
		kernel_context_put(ctx);
	}
	*sandbox_contexts(sb) = NULL;
}

/* --- executions ------------------------------------------------------------ */

static void
emit_raw(struct exec *ex, const char *line, size_t len)
{
	if (buf_append(&ex->out, line, len) == -1 ||
	    buf_append(&ex->out, "\n", 1) == -1)
		log_warnx("execution answer over its ceiling; line dropped");
}

/* Queues a JSON object (consumed) as one line. */
static void
emit(struct exec *ex, struct json_object *obj)
{
	size_t len;
	const char *s = json_object_to_json_string_length(obj,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);

	emit_raw(ex, s, len);
	json_object_put(obj);
}

static struct json_object *
event(const char *type)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "type", json_object_new_string(type));
	return o;
}

static void
emit_error(struct exec *ex, const char *name, const char *value)
{
	struct json_object *o = event("error");

	json_object_object_add(o, "name", json_object_new_string(name));
	json_object_object_add(o, "value", json_object_new_string(value));
	json_object_object_add(o, "traceback", json_object_new_string(""));
	emit(ex, o);
}

/* The record of what the ceiling dropped, if it dropped anything. */
static void
emit_truncation(struct exec *ex)
{
	static const char *const names[] = { "stdout", "stderr" };
	struct json_object *o, *st;
	int i;

	if (ex->dropped[0] == 0 && ex->dropped[1] == 0)
		return;
	o = event("output_truncated");
	for (i = 0; i < 2; i++) {
		st = json_object_new_object();
		json_object_object_add(st, "kept_bytes",
		    json_object_new_int64(ex->stream_bytes[i]));
		json_object_object_add(st, "dropped_bytes",
		    json_object_new_int64(ex->dropped[i]));
		json_object_object_add(o, names[i], st);
	}
	emit(ex, o);
}

static void
finish(struct exec *ex)
{
	emit_truncation(ex);
	emit(ex, event("end_of_execution"));
	ex->finished = 1;
}

/*
 * The execution's own deadline passed: its error says so, and whether the
 * context's state survived (an interrupt stopped the code) or not (the
 * kernel had to be killed).
 */
static void
timeout_error(struct exec *ex, int lost)
{
	char value[512];
	long s = ex->timeout_ms / 1000;

	/* The words the gateway's API documents, and why the state is gone. */
	if (lost)
		snprintf(value, sizeof(value), "execution timed out after %ld "
		    "s; the code did not stop within %d s of its interrupt, so "
		    "the %s kernel was killed: its state is lost, and the next "
		    "run starts a fresh kernel", s,
		    KERNEL_INTERRUPT_GRACE_MS / 1000, ex->ctx->language);
	else
		snprintf(value, sizeof(value), "execution timed out after %ld "
		    "s", s);
	emit_error(ex, "TimeoutError", value);
	ex->timeout_said = 1;
}

/*
 * A stdout/stderr line, counted against the stream's relay ceiling.  Past
 * it the text is cut on a character boundary and the rest only counted:
 * nothing is written into the stream (the client decides what a cut
 * looks like), and one "output_truncated" event says how much was
 * dropped before the execution ends.
 */
static void
stream_line(struct exec *ex, struct json_object *obj, int which,
    const char *raw, size_t rawlen)
{
	long cap = sandbox_limits()->output_bytes;
	struct json_object *text, *o, *ts;
	const char *s;
	size_t n, keep;

	if (!json_object_object_get_ex(obj, "text", &text) ||
	    !json_object_is_type(text, json_type_string))
		return;
	s = json_object_get_string(text);
	n = (size_t)json_object_get_string_len(text);
	if (ex->dropped[which] == 0 && ex->stream_bytes[which] + (long)n <=
	    cap) {
		ex->stream_bytes[which] += (long)n;
		emit_raw(ex, raw, rawlen);
		return;
	}
	keep = ex->dropped[which] ? 0 : utf8_prefix(s, n,
	    (size_t)(cap - ex->stream_bytes[which]));
	ex->stream_bytes[which] += (long)keep;
	ex->dropped[which] += (long)(n - keep);
	if (keep == 0)
		return;
	o = event(which ? "stderr" : "stdout");
	json_object_object_add(o, "text", json_object_new_string_len(s,
	    (int)keep));
	if (json_object_object_get_ex(obj, "timestamp", &ts) &&
	    json_object_is_type(ts, json_type_string))
		json_object_object_add(o, "timestamp", json_object_get(ts));
	emit(ex, o);
}

/* Checks one line from the kernel and queues what the client may see. */
static void
kernel_line(struct exec *ex, const char *line, size_t len)
{
	static const char *const passed[] = {
		"number_of_executions", "result", "error",
	};
	struct json_tokener *tok;
	struct json_object *obj, *type;
	const char *t;
	size_t i;

	if ((tok = json_tokener_new_ex(64)) == NULL)
		return;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	obj = json_tokener_parse_ex(tok, line, (int)len);
	if (json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != len ||
	    !json_object_is_type(obj, json_type_object) ||
	    !json_object_object_get_ex(obj, "type", &type) ||
	    !json_object_is_type(type, json_type_string)) {
		json_tokener_free(tok);
		json_object_put(obj);
		return;
	}
	json_tokener_free(tok);
	t = json_object_get_string(type);
	if (strcmp(t, "stdout") == 0)
		stream_line(ex, obj, 0, line, len);
	else if (strcmp(t, "stderr") == 0)
		stream_line(ex, obj, 1, line, len);
	else if (strcmp(t, "end_of_execution") == 0) {
		if (ex->grace_ms && !ex->timeout_said)
			timeout_error(ex, 0);
		finish(ex);
	} else if (ex->grace_ms && strcmp(t, "error") == 0) {
		/* The interrupt's own error: say why it came. */
		if (!ex->timeout_said)
			timeout_error(ex, 0);
	} else
		for (i = 0; i < sizeof(passed) / sizeof(passed[0]); i++)
			if (strcmp(t, passed[i]) == 0)
				emit_raw(ex, line, len);
	json_object_put(obj);
}

/* The kernel's socket closed mid-execution: it died. */
static void
kernel_died(struct exec *ex)
{
	struct context *ctx = ex->ctx;
	char value[256];
	int oom = cgroup_oom_kills(sandbox_cgroup(ctx->sb)) > ex->oom_kills;

	snprintf(value, sizeof(value), "the %s kernel died%s; its state is "
	    "lost and a new kernel starts on the next run", ctx->language,
	    oom ? " (the sandbox ran out of memory)" : "");
	pthread_mutex_lock(&ctx->lock);
	stop_kernel(ctx);
	pthread_mutex_unlock(&ctx->lock);
	if (ex->grace_ms && !ex->timeout_said)	/* it died of its timeout */
		timeout_error(ex, 1);
	else if (!ex->grace_ms)
		emit_error(ex, "KernelDied", value);
	finish(ex);
}

/* Splits what was read into lines.  Returns 0, or -1 at EOF. */
static int
read_kernel(struct exec *ex)
{
	char chunk[65536], *nl, *p;
	ssize_t r;
	size_t n;

	do
		r = read(ex->ctx->fd, chunk, sizeof(chunk));
	while (r == -1 && errno == EINTR);
	if (r <= 0)
		return -1;
	for (p = chunk, n = (size_t)r; n > 0 && !ex->finished; ) {
		nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) : n;

		if (!ex->skipping && buf_append(&ex->line, p, take) == -1) {
			/* Longer than any line may be: drop it whole. */
			ex->skipping = 1;
			buf_reset(&ex->line);
			emit_error(ex, "OutputTooLarge", "a single output "
			    "(a result or a line) was over 16 MiB and was dropped");
		}
		if (nl) {
			if (!ex->skipping)
				kernel_line(ex, ex->line.data ? ex->line.data : "",
				    ex->line.len);
			ex->skipping = 0;
			buf_reset(&ex->line);
			take++;
		}
		p += take;
		n -= take;
	}
	return 0;
}

/* A stopped kernel cannot run anything: kill it.  1 if it was. */
static int
replace_stopped(struct context *ctx)
{
	if (ctx->fd == -1 || ctx->pid <= 0 || !kernel_stopped(ctx->pid))
		return 0;
	log_warnx("context %s: its kernel (pid %d) is stopped; replaced",
	    ctx->id, (int)ctx->pid);
	pthread_mutex_lock(&ctx->lock);
	stop_kernel(ctx);
	pthread_mutex_unlock(&ctx->lock);
	return 1;
}

/* Tells the run that its context's kernel had to be replaced. */
static void
say_replaced(struct exec *ex)
{
	struct json_object *o = event("stderr");
	char text[256];

	snprintf(text, sizeof(text), "[the %s kernel of this context was "
	    "stopped (SIGSTOP) and could not run anything: it was replaced "
	    "by a fresh kernel, and its state is lost]\n", ex->ctx->language);
	json_object_object_add(o, "text", json_object_new_string(text));
	emit(ex, o);
}

struct exec *
kernel_exec_start(struct sandbox *sb, struct context *ctx, const char *code,
    const struct json_object *env_vars, long timeout_ms, int store_history,
    int client_fd, char *err, size_t errlen)
{
	int64_t t0 = ts_mono_ms();	/* the wait for its turn counts */
	struct json_object *req;
	struct exec *ex;
	const char *text;
	size_t len;
	int replaced;

	turn_take(ctx);
	if (ctx->deleted || sandbox_gone(sb)) {
		snprintf(err, errlen, ctx->deleted ? "the context was deleted" :
		    "the sandbox was killed");
		turn_give(ctx);
		return NULL;
	}
	replaced = replace_stopped(ctx);
	if (ctx->fd == -1 && spawn_kernel(ctx, err, errlen) == -1) {
		turn_give(ctx);
		return NULL;
	}
	if ((ex = calloc(1, sizeof(*ex))) == NULL) {
		snprintf(err, errlen, "out of memory");
		turn_give(ctx);
		return NULL;
	}
	context_get(ctx);
	ex->ctx = ctx;
	ex->client_fd = client_fd;
	buf_init(&ex->out, (size_t)LINE_MAX_BYTES * 2);
	buf_init(&ex->line, LINE_MAX_BYTES);
	ex->last_out_ms = ts_mono_ms();
	ex->oom_kills = cgroup_oom_kills(sandbox_cgroup(sb));
	ex->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
	ex->deadline_ms = t0 + ex->timeout_ms;
	if (replaced)
		say_replaced(ex);

	req = json_object_new_object();
	json_object_object_add(req, "op", json_object_new_string("execute"));
	json_object_object_add(req, "code", json_object_new_string(code));
	if (env_vars)
		json_object_object_add(req, "env_vars",
		    json_object_get((struct json_object *)env_vars));
	if (!store_history)
		json_object_object_add(req, "store_history",
		    json_object_new_boolean(0));
	text = json_object_to_json_string_length(req, JSON_C_TO_STRING_PLAIN,
	    &len);
	if (send(ctx->fd, text, len, MSG_NOSIGNAL) != (ssize_t)len ||
	    send(ctx->fd, "\n", 1, MSG_NOSIGNAL) != 1)
		kernel_died(ex);	/* answered as a dead kernel */
	json_object_put(req);
	return ex;
}

/* How long poll may wait: until the next keepalive, interrupt or kill. */
static int
poll_wait(const struct exec *ex)
{
	int64_t now = ts_mono_ms(), until = ex->last_out_ms +
	    KERNEL_KEEPALIVE_MS;

	if (ex->timeout_ms && !ex->grace_ms && ex->deadline_ms < until)
		until = ex->deadline_ms;
	if (ex->grace_ms && ex->grace_ms < until)
		until = ex->grace_ms;
	return until > now ? (int)(until - now) : 0;
}

/*
 * The execution's timeout: at its deadline the code is interrupted; if the
 * kernel has not ended the execution a grace later, it is killed.
 */
static void
enforce_deadline(struct exec *ex)
{
	struct context *ctx = ex->ctx;
	int64_t now = ts_mono_ms();

	if (!ex->timeout_ms || now < ex->deadline_ms)
		return;
	if (!ex->grace_ms) {
		ex->grace_ms = now + KERNEL_INTERRUPT_GRACE_MS;
		if (ctx->pid > 0)
			kill(ctx->pid, SIGINT);
		return;
	}
	if (now < ex->grace_ms)
		return;
	log_warnx("context %s: kernel did not stop within %d ms of its "
	    "interrupt; killed", ctx->id, KERNEL_INTERRUPT_GRACE_MS);
	pthread_mutex_lock(&ctx->lock);
	stop_kernel(ctx);
	pthread_mutex_unlock(&ctx->lock);
	timeout_error(ex, 1);
	finish(ex);
}

/*
 * Copies queued NDJSON into buf as ASCII (utf8_json_ascii): E2B's
 * JavaScript SDK decodes each network chunk on its own, so a character
 * split between two chunks would reach it as U+FFFD; E2B's own server
 * sends ASCII too.  Returns the bytes copied.
 */
static size_t
copy_out(struct exec *ex, char *buf, size_t max)
{
	size_t n, used;

	if (ex->esc_off == ex->esc_len && ex->out_off < ex->out.len) {
		n = utf8_json_ascii(ex->out.data + ex->out_off,
		    ex->out.len - ex->out_off, buf, max, &used);
		ex->out_off += used;
		if (n > 0 || max == 0)
			return n;
		/* buf is shorter than the next escape: send it in pieces. */
		ex->esc_len = utf8_json_ascii(ex->out.data + ex->out_off,
		    ex->out.len - ex->out_off, ex->esc, sizeof(ex->esc), &used);
		ex->esc_off = 0;
		ex->out_off += used;
	}
	n = ex->esc_len - ex->esc_off;
	if (n > max)
		n = max;
	memcpy(buf, ex->esc + ex->esc_off, n);
	ex->esc_off += n;
	return n;
}

ssize_t
kernel_exec_read(struct exec *ex, char *buf, size_t max)
{
	struct pollfd pfd[2];
	size_t n;
	int wait, nfds;

	for (;;) {
		if (ex->out_off < ex->out.len || ex->esc_off < ex->esc_len) {
			n = copy_out(ex, buf, max);
			ex->last_out_ms = ts_mono_ms();
			return (ssize_t)n;
		}
		buf_reset(&ex->out);
		ex->out_off = 0;
		if (ex->finished)
			return 0;
		pfd[0] = (struct pollfd){ .fd = ex->ctx->fd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = ex->client_fd,
		    .events = POLLRDHUP };
		nfds = ex->client_fd == -1 ? 1 : 2;
		wait = poll_wait(ex);
		if (poll(pfd, (nfds_t)nfds, wait) == -1 && errno != EINTR)
			return -1;
		if (nfds == 2 && (pfd[1].revents & (POLLRDHUP | POLLHUP |
		    POLLERR)))
			return -1;	/* the client is gone */
		if (pfd[0].revents) {
			/*
			 * A sandbox killed or retired mid-execution ends the
			 * answer as E2B's does: the connection drops, with no
			 * end_of_execution (its SDK then finds the sandbox gone
			 * and says it was killed).  A kernel that died alone is
			 * an error of the execution.
			 */
			if (read_kernel(ex) == -1) {
				if (sandbox_gone(ex->ctx->sb))
					return -1;
				kernel_died(ex);
			}
		} else if (ts_mono_ms() - ex->last_out_ms >=
		    KERNEL_KEEPALIVE_MS)
			emit(ex, event("keepalive"));
		if (!ex->finished)
			enforce_deadline(ex);
	}
}

/* Interrupts an unfinished execution and waits for its end; or kills. */
static void
interrupt(struct exec *ex)
{
	struct context *ctx = ex->ctx;
	int64_t deadline = ts_mono_ms() + DRAIN_TIMEOUT_MS;
	struct pollfd pfd = { .fd = ctx->fd, .events = POLLIN };
	int wait;

	log_debug("context %s: interrupting kernel pid %d", ctx->id,
	    (int)ctx->pid);
	if (ctx->pid > 0 && kill(ctx->pid, SIGINT) == -1)
		log_warn("context %s: interrupt", ctx->id);
	while (!ex->finished) {
		wait = (int)(deadline - ts_mono_ms());
		if (wait <= 0 || poll(&pfd, 1, wait) <= 0)
			break;
		if (read_kernel(ex) == -1)
			break;
		buf_reset(&ex->out);	/* no one is listening */
	}
	if (!ex->finished) {
		log_warnx("context %s: kernel did not stop when interrupted; "
		    "killed", ctx->id);
		pthread_mutex_lock(&ctx->lock);
		stop_kernel(ctx);
		pthread_mutex_unlock(&ctx->lock);
	}
}

void
kernel_exec_free(struct exec *ex)
{
	if (ex == NULL)
		return;
	if (!ex->finished && ex->ctx->fd != -1)
		interrupt(ex);
	buf_release(&ex->out);
	buf_release(&ex->line);
	turn_give(ex->ctx);
	kernel_context_put(ex->ctx);
	free(ex);
}
