#ifndef IRIS_IDS_H
#define IRIS_IDS_H

#include <stddef.h>

/* Longest id a client may send: projectId, sessionId, sandboxId. */
#define IDS_MAX_LEN	128

/* A prefixed ULID ("req_" + 26 chars) and its NUL fit in this. */
#define IDS_ULID_BUFSZ	40

/*
 * Writes prefix followed by a ULID (48-bit millisecond time, 80 random bits,
 * Crockford base32) to out, so ids sort by creation time.
 * Returns 0, or -1 if out is too small or randomness failed.
 */
int	ids_ulid(const char *prefix, char *out, size_t outsz);

/*
 * 1 if s[0..len) is a valid client id: 1 to IDS_MAX_LEN characters of
 * A-Z a-z 0-9 . _ : -; else 0.
 */
int	ids_valid(const char *s, size_t len);

/*
 * 1 if s is a sandbox id as E2B makes them (and iris-sandboxd): 1 to
 * maxlen characters of [a-z0-9]; else 0.
 */
int	ids_sandbox_valid(const char *s, size_t maxlen);

#endif
