/* Strict UTF-8 validation (RFC 3629). */
#include "common/utf8.h"

int
utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, n, k;
	unsigned char lo, hi;

	while (i < len) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		/* The lead byte gives the length and the second byte's range. */
		lo = 0x80;
		hi = 0xbf;
		if (s[i] >= 0xc2 && s[i] <= 0xdf)
			n = 2;
		else if (s[i] >= 0xe0 && s[i] <= 0xef) {
			n = 3;
			if (s[i] == 0xe0)
				lo = 0xa0;	/* no overlong forms */
			else if (s[i] == 0xed)
				hi = 0x9f;	/* no surrogates */
		} else if (s[i] >= 0xf0 && s[i] <= 0xf4) {
			n = 4;
			if (s[i] == 0xf0)
				lo = 0x90;	/* no overlong forms */
			else if (s[i] == 0xf4)
				hi = 0x8f;	/* nothing past U+10FFFF */
		} else
			return 0;
		if (len - i < n || s[i + 1] < lo || s[i + 1] > hi)
			return 0;
		for (k = 2; k < n; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return 0;
		i += n;
	}
	return 1;
}
