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

/* The code point of the valid n-byte character at s. */
static unsigned long
decode(const unsigned char *s, size_t n)
{
	unsigned long cp = s[0] & (0xff >> (n + 1));
	size_t k;

	for (k = 1; k < n; k++)
		cp = cp << 6 | (s[k] & 0x3f);
	return cp;
}

/* Writes \uXXXX for the UTF-16 unit u at out; returns 6. */
static size_t
escape_unit(unsigned long u, char *out)
{
	static const char hex[] = "0123456789abcdef";
	int k;

	out[0] = '\\';
	out[1] = 'u';
	for (k = 0; k < 4; k++)
		out[2 + k] = hex[(u >> (12 - 4 * k)) & 0xf];
	return 6;
}

size_t
utf8_json_ascii(const char *str, size_t len, char *out, size_t outsz,
    size_t *used)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, o = 0, n;
	unsigned long cp;

	while (i < len) {
		if (s[i] < 0x80) {
			if (o + 1 > outsz)
				break;
			out[o++] = (char)s[i++];
			continue;
		}
		n = char_len(s + i, len - i);
		cp = n ? decode(s + i, n) : 0xfffd;
		if (o + (cp > 0xffff ? 12 : 6) > outsz)
			break;
		if (cp > 0xffff) {
			o += escape_unit(0xd800 + ((cp - 0x10000) >> 10), out + o);
			o += escape_unit(0xdc00 + ((cp - 0x10000) & 0x3ff),
			    out + o);
		} else
			o += escape_unit(cp, out + o);
		i += n ? n : 1;
	}
	*used = i;
	return o;
}
