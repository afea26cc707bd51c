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

#endif
