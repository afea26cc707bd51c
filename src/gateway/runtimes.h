#ifndef IRIS_RUNTIMES_H
#define IRIS_RUNTIMES_H

#include <stddef.h>

struct json_object;

/*
 * What a sandbox of the configured provider runs: each language with its
 * version and the packages its code can import.  The facts come from
 * probes run in a sandbox of that provider (iris-sandboxd or E2B cloud:
 * their images differ), never from a list kept by hand; the same kind of
 * probe checks an execute call's "packages" in the call's own sandbox.
 */

/* A probe's report follows this marker on a line of its own (stdout). */
#define RUNTIMES_MARK	"\x1e" "iris-probe:"

/* The environment variable that hands a check its names (a JSON array). */
#define RUNTIMES_NAMES_ENV	"IRIS_PACKAGES_CHECK"

/*
 * The language a request names (len bytes: a name or an alias, "js",
 * "ts"), as the gateway and its providers call it ("javascript"), or NULL
 * if it names none.  RUNTIMES_LANGUAGES is the list for error messages.
 */
const char	*runtimes_language(const char *name, size_t len);
#define RUNTIMES_LANGUAGES "python, javascript (js), typescript (ts), bash"

/*
 * The code that checks, in a sandbox's kernel for language, that each
 * name of the JSON array in RUNTIMES_NAMES_ENV can be imported (Python:
 * a module or an installed distribution's modules, imported for real;
 * JavaScript and TypeScript: require.resolve), and reports after
 * RUNTIMES_MARK.  Returns static text, or NULL: the language has no
 * packages (bash).
 */
const char	*runtimes_check_code(const char *language);

/*
 * The code that installs the packages named in RUNTIMES_NAMES_ENV for
 * language (Python: pip for the kernel's interpreter), failing if it
 * cannot; only for sandboxes that reach the network (E2B cloud).  Returns
 * static text, or NULL: the language has no installer.
 */
const char	*runtimes_install_code(const char *language);

/*
 * Parses the report on line (what follows RUNTIMES_MARK, up to a newline
 * or the end): one JSON object.  Returns it (a new reference), or NULL.
 */
struct json_object *runtimes_report(const char *line);

/*
 * Reads a check's report (the JSON after the marker) against the n names
 * asked for.  OUT: *found, a new array of {"name", "version"} (version a
 * string or null) of the importable ones in the order asked; *missing, the
 * index of the first one that is not (-1: none); why (size bytes), what
 * importing it raised.  Returns 0, or -1 if report is not a check's
 * report (then *found is NULL).
 */
int		 runtimes_check_read(struct json_object *report, size_t n,
		    struct json_object **found, long *missing, char *why,
		    size_t size);

/*
 * Turns one language's probe report into the API's <Runtime>: language,
 * version, aliases, runtime, packages.  Returns a new object, or NULL if
 * report is not a probe's report.
 */
struct json_object *runtimes_entry(const char *language,
		    struct json_object *report);

#endif
