/* Strict UTF-8 validation (RFC 3629). */
#include "common/utf8.h"

/* The length of the valid character at s[0..len), or 0 if there is none. */
static size_t
char_len(const unsigned char *s, size_t len)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n, k;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		if (s[0] == 0xe0)
			lo = 0xa0;	/* no overlong forms */
		else if (s[0] == 0xed)
			hi = 0x9f;	/* no surrogates */
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		if (s[0] == 0xf0)
			lo = 0x90;	/* no overlong forms */
		else if (s[0] == 0xf4)
			hi = 0x8f;	/* nothing past U+10FFFF */
	} else
		return 0;
	if (len < n || s[1] < lo || s[1] > hi)
		return 0;
	for (k = 2; k < n; k++)
		if (s[k] < 0x80 || s[k] > 0xbf)
			return 0;
	return n;
}

size_t
utf8_clean(const char *str, size_t len, char *out, size_t outsz)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, o = 0, n;

	while (i < len) {
		if ((n = char_len(s + i, len - i)) == 0) {
			if (o + 1 >= outsz)
				break;
			out[o++] = '?';
			i++;
			continue;
		}
		if (o + n >= outsz)
			break;
		while (n-- > 0)
			out[o++] = (char)s[i++];
	}
	out[o] = '\0';
	return o;
}

int
utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, n;

	while (i < len) {
		if ((n = char_len(s + i, len - i)) == 0)
			return 0;
		i += n;
	}
	return 1;
}


size_t
utf8_prefix(const char *s, size_t len, size_t max)
{
	size_t n = max;

	if (len <= max)
		return len;
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return n;
}
