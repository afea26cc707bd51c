#ifndef IRIS_UTF8_H
#define IRIS_UTF8_H

#include <stddef.h>

/*
 * 1 if s[0..len) is valid UTF-8 as RFC 3629 defines it: no overlong
 * forms, no surrogates (U+D800-DFFF), nothing above U+10FFFF; else 0.
 */
int	utf8_valid(const char *s, size_t len);

#endif
