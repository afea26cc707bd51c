/* Identifiers: time-ordered ULIDs for our ids, and the client id rule. */
#include <string.h>

#include "common/crypto.h"
#include "common/ids.h"
#include "common/timestamp.h"

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

int
ids_ulid(const char *prefix, char *out, size_t outsz)
{
	unsigned char rnd[10];
	size_t plen = strlen(prefix), i;
	unsigned long long t = (unsigned long long)ts_now_ms();
	unsigned int acc = 0, bits = 0;
	char *p;

	if (outsz < plen + 26 + 1 || crypto_random(rnd, sizeof(rnd)) == -1)
		return -1;
	memcpy(out, prefix, plen);
	p = out + plen;
	/* 48 bits of time as 10 characters (the first holds 3 bits). */
	for (i = 0; i < 10; i++)
		p[9 - i] = crockford[(t >> (5 * i)) & 31];
	p += 10;
	/* 80 random bits as 16 characters. */
	for (i = 0; i < sizeof(rnd); i++) {
		acc = (acc << 8) | rnd[i];
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			*p++ = crockford[(acc >> bits) & 31];
		}
	}
	*p = '\0';
	return 0;
}

int
ids_valid(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > IDS_MAX_LEN)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == ':' || c == '-'))
			return 0;
	}
	return 1;
}

int
ids_sandbox_valid(const char *s, size_t maxlen)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (i == maxlen || !((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9')))
			return 0;
	return i > 0;
}
