#ifndef IRIS_KERNEL_H
#define IRIS_KERNEL_H

#include <stddef.h>
#include <sys/types.h>

struct json_object;
struct sandbox;

/*
 * Contexts and executions.  A context is one kernel process in a sandbox
 * (docs/sandbox-internals.md); its executions run one at a time, in the
 * order they arrived.  A kernel that died is started again on next use.
 * Contexts are reference counted: find/default/new take a reference that
 * kernel_context_put gives back.
 */
struct context;
struct exec;

#define KERNEL_KEEPALIVE_MS	5000
/* After an execution's interrupt (its timeout, its client gone), how long
 * its kernel has to end it before it is killed. */
#define KERNEL_INTERRUPT_GRACE_MS	2000

/* Creates a context (and its kernel) in sb.  OUT: err.  NULL on failure. */
struct context	*kernel_context_new(struct sandbox *sb, const char *language,
		    const char *cwd, char *err, size_t errlen);

/* Finds a context by id; NULL if none. */
struct context	*kernel_context_find(struct sandbox *sb, const char *id);

/* The default context of language, created on first use.  OUT: err. */
struct context	*kernel_context_default(struct sandbox *sb,
		    const char *language, char *err, size_t errlen);

/*
 * Makes sure sb lists the default contexts a sandbox starts with, as E2B's
 * do: python, then javascript (after any there are already).  Those not
 * there yet are only listed: each kernel starts on its context's first
 * use, so no sandbox pays for a node process it never uses.  -1 if out of
 * memory.
 */
int		 kernel_context_defaults(struct sandbox *sb);

void		 kernel_context_put(struct context *ctx);

/* Kills the kernel and starts a fresh one (after running executions). */
int		 kernel_context_restart(struct sandbox *sb, struct context *ctx,
		    char *err, size_t errlen);

/* Removes a context (after running executions).  -1 if there is none. */
int		 kernel_context_delete(struct sandbox *sb, const char *id);

/* A new JSON array of {"id", "language", "cwd"}, oldest first. */
struct json_object *kernel_context_list(struct sandbox *sb);

/* The JSON object {"id", "language", "cwd"} of ctx. */
struct json_object *kernel_context_json(const struct context *ctx);

/* Normalizes a language name ("js" -> "javascript"); NULL if unknown. */
const char	*kernel_language(const char *name);

/*
 * Starts running code in ctx, waiting for the executions before it.
 * env_vars: an object of strings, or NULL.  timeout_ms: from the start
 * (0: none); past it the code is interrupted, and its kernel killed if it
 * has not stopped KERNEL_INTERRUPT_GRACE_MS later; the execution's error
 * is then a TimeoutError that says whether the context's state is kept.
 * client_fd: the HTTP client's socket, watched for a hang-up that
 * interrupts the execution (-1: none).  A kernel found stopped (SIGSTOP)
 * is replaced first, and the execution's stderr says so.
 * Returns the execution (kernel_exec_free), or NULL with err set.
 */
struct exec	*kernel_exec_start(struct sandbox *sb, struct context *ctx,
		    const char *code, const struct json_object *env_vars,
		    long timeout_ms, int store_history, int client_fd,
		    char *err, size_t errlen);

/*
 * Fills buf with the next bytes of the NDJSON answer, blocking until
 * there are some (sending keepalive lines while the kernel is silent).
 * Returns how many, 0 at the end, or -1 if the client went away or the
 * sandbox was killed or retired meanwhile (the answer is then cut off:
 * no end_of_execution, as E2B ends it).
 */
ssize_t		 kernel_exec_read(struct exec *ex, char *buf, size_t max);

/* Ends an execution: if unfinished, interrupts it (or kills the kernel). */
void		 kernel_exec_free(struct exec *ex);

/* The sandbox is dying: wake everything blocked on its kernels. */
void		 kernel_close_all(struct sandbox *sb);

/* Frees the contexts of a sandbox no one refers to any more. */
void		 kernel_free_all(struct sandbox *sb);

#endif
