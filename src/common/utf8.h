#ifndef IRIS_UTF8_H
#define IRIS_UTF8_H

#include <stddef.h>

/*
 * 1 if s[0..len) is valid UTF-8 as RFC 3629 defines it: no overlong
 * forms, no surrogates (U+D800-DFFF), nothing above U+10FFFF; else 0.
 */
int	utf8_valid(const char *s, size_t len);

/*
 * Copies s[0..len) into out (outsz bytes, NUL-terminated) as valid UTF-8:
 * each invalid byte becomes '?', and the copy is cut on a character
 * boundary to fit.  For text from a client that goes back out in JSON.
 * Returns the length written.
 */
size_t	utf8_clean(const char *s, size_t len, char *out, size_t outsz);

/*
 * The length of the longest prefix of s[0..len) that is at most max bytes
 * and ends on a character boundary (never inside a multi-byte sequence).
 * For cutting text that is already UTF-8; len itself if it fits.
 */
size_t	utf8_prefix(const char *s, size_t len, size_t max);

/*
 * Copies JSON text s[0..len) into out (outsz bytes, not NUL-terminated)
 * as ASCII: each non-ASCII character becomes a \uXXXX escape (a surrogate
 * pair past U+FFFF) and each invalid byte \ufffd -- equal JSON, since such
 * bytes can only be inside its strings.  Stops before a character whose
 * escape (at most 12 bytes) does not fit.  Returns the bytes written to
 * out; *used is set to the bytes of s consumed.
 */
size_t	utf8_json_ascii(const char *s, size_t len, char *out, size_t outsz,
	    size_t *used);

#endif
