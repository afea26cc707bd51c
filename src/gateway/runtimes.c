/*
 * GET /api/iris/runtimes, and the probes behind it and behind an execute
 * call's "packages": small programs run in a sandbox of the configured
 * provider that report, after RUNTIMES_MARK, what that sandbox runs and
 * can import.  So the answer is true for iris-sandboxd and for E2B cloud
 * alike, whatever their images hold.
 *
 * A probe costs a sandbox, so each gateway process keeps the last answer
 * for IRIS_RUNTIMES_TTL seconds (checkedAt and expiresAt say so); one
 * request probes at a time, the others wait for its answer.
 */
#include <json-c/json.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/timestamp.h"
#include "gateway/config.h"
#include "gateway/e2b.h"
#include "gateway/handlers.h"
#include "gateway/lease.h"
#include "gateway/outcome.h"
#include "gateway/reply.h"
#include "gateway/request.h"
#include "gateway/runtimes.h"

#define PROBE_TIMEOUT_MS	60000
#define PROBE_RUN_S		120	/* every probe of one sandbox */
#define PROBE_OUTPUT_MAX	(4 << 20)

/* --- the programs -------------------------------------------------------- */

/*
 * Python: the installed distributions whose top-level modules the import
 * system finds (no import: some have side effects), with their versions.
 * A distribution whose metadata lists no modules (a one-file .egg-info)
 * is its name's module if there is one; one whose metadata says 0.0.0
 * (Debian builds some so) has its module's __version__, the one case
 * where a module is imported (in the probe's own fresh sandbox).
 */
static const char py_probe[] =
"def _iris_probe():\n"
"    import importlib.metadata as md, importlib.util as iu\n"
"    import json, platform, re, sys\n"
"    mods = {}\n"
"    for m, ds in md.packages_distributions().items():\n"
"        for d in ds:\n"
"            mods.setdefault(d, set()).add(m)\n"
"    def spec(m):\n"
"        try:\n"
"            return m.isidentifier() and iu.find_spec(m) is not None\n"
"        except Exception:\n"
"            return False\n"
"    def real_version(m):\n"
"        try:\n"
"            v = getattr(__import__(m), '__version__', None)\n"
"        except Exception:\n"
"            return None\n"
"        return v if isinstance(v, str) else None\n"
"    seen, pkgs = set(), []\n"
"    for d in md.distributions():\n"
"        name = d.metadata['Name']\n"
"        key = re.sub(r'[-_.]+', '-', name or '').lower()\n"
"        if not name or key in seen:\n"
"            continue\n"
"        own = mods.get(name) or [key.replace('-', '_')]\n"
"        ms = sorted(m for m in own if not m.startswith('_') and spec(m))\n"
"        if ms:\n"
"            seen.add(key)\n"
"            version = d.version\n"
"            if version in (None, '0.0.0'):\n"
"                version = real_version(ms[0]) or version\n"
"            pkgs.append({'name': name, 'version': version,\n"
"                         'modules': ms})\n"
"    pkgs.sort(key=lambda p: p['name'].lower())\n"
"    print('" RUNTIMES_MARK "' + json.dumps({\n"
"        'version': platform.python_version(),\n"
"        'runtime': sys.implementation.name, 'packages': pkgs}),\n"
"        flush=True)\n"
"try:\n"
"    _iris_probe()\n"
"finally:\n"
"    del _iris_probe\n";

/*
 * Python's check: each name is a module (dotted names too) or an
 * installed distribution ("scikit-learn", "pillow"), and is imported for
 * real, in the session's own kernel: what the code will import next.
 * The map of every distribution's modules (~0.1 s) is read only when a
 * name and its distribution's differ.
 */
static const char py_check[] =
"def _iris_check():\n"
"    import importlib, importlib.metadata as md, importlib.util as iu\n"
"    import json, os\n"
"    tops = []\n"
"    def top_of(mod):\n"
"        if not tops:\n"
"            tops.append(md.packages_distributions())\n"
"        return tops[0].get(mod) or []\n"
"    def spec(m):\n"
"        try:\n"
"            return m.isidentifier() and iu.find_spec(m) is not None\n"
"        except Exception:\n"
"            return False\n"
"    def dist(name):\n"
"        try:\n"
"            return md.distribution(name)\n"
"        except Exception:\n"
"            return None\n"
"    def as_module(name):\n"
"        parts = name.split('.')\n"
"        if not all(p.isidentifier() for p in parts) or not spec(parts[0]):\n"
"            return None, None\n"
"        d = dist(parts[0])\n"
"        if d is None and top_of(parts[0]):\n"
"            d = dist(top_of(parts[0])[0])\n"
"        return [name], d\n"
"    def as_distribution(name):\n"
"        d = dist(name)\n"
"        if d is None:\n"
"            return [], None\n"
"        top = (d.read_text('top_level.txt') or '').split()\n"
"        if not top:\n"
"            top_of('')\n"
"            top = [m for m, ds in tops[0].items()\n"
"                   if d.metadata['Name'] in ds]\n"
"        return sorted(m for m in set(top) if not m.startswith('_')\n"
"                      and spec(m)), d\n"
"    found, missing = [], []\n"
"    names = json.loads(os.environ['" RUNTIMES_NAMES_ENV "'])\n"
"    for i, name in enumerate(names):\n"
"        mods, d = as_module(name)\n"
"        if mods is None:\n"
"            mods, d = as_distribution(name)\n"
"        try:\n"
"            if not mods:\n"
"                raise ModuleNotFoundError('no module or installed '\n"
"                                          'distribution named %r' % name)\n"
"            for m in mods:\n"
"                mod = importlib.import_module(m)\n"
"        except BaseException as e:\n"
"            missing.append({'index': i, 'name': name,\n"
"                            'error': '%s: %s' % (type(e).__name__, e)})\n"
"            continue\n"
"        v = d.version if d else getattr(mod, '__version__', None)\n"
"        found.append({'name': name, 'modules': mods, 'version': v})\n"
"    print('" RUNTIMES_MARK "' + json.dumps({'found': found,\n"
"                                            'missing': missing}),\n"
"          flush=True)\n"
"try:\n"
"    _iris_check()\n"
"finally:\n"
"    del _iris_check\n";

/*
 * pip for the kernel's own interpreter (E2B cloud, whose sandboxes reach
 * the network): the names come from the environment, as the check's.
 */
static const char py_install[] =
"def _iris_pip():\n"
"    import json, os, subprocess, sys\n"
"    subprocess.run([sys.executable, '-m', 'pip', 'install', '--quiet',\n"
"                    '--disable-pip-version-check']\n"
"                   + json.loads(os.environ['" RUNTIMES_NAMES_ENV "']),\n"
"                   stdin=subprocess.DEVNULL, check=True)\n"
"try:\n"
"    _iris_pip()\n"
"finally:\n"
"    del _iris_pip\n";

/*
 * Node: the packages of every folder require() looks in, each listed if
 * require.resolve finds it, as the code's own require would.
 */
static const char js_probe[] =
"(() => {\n"
"  const fs = require('fs'), path = require('path');\n"
"  const seen = new Set(), packages = [];\n"
"  const add = (dir) => {\n"
"    try {\n"
"      const j = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'),\n"
"        'utf8'));\n"
"      if (typeof j.name !== 'string' || seen.has(j.name)) return;\n"
"      require.resolve(j.name);\n"
"      seen.add(j.name);\n"
"      packages.push({name: j.name,\n"
"        version: typeof j.version === 'string' ? j.version : null});\n"
"    } catch (e) {}\n"
"  };\n"
"  const list = (dir) => {\n"
"    try { return fs.readdirSync(dir); } catch (e) { return []; }\n"
"  };\n"
"  for (const dir of require.resolve.paths('x') || [])\n"
"    for (const n of list(dir))\n"
"      if (n.startsWith('@'))\n"
"        list(path.join(dir, n)).forEach((m) => add(path.join(dir, n, m)));\n"
"      else if (!n.startsWith('.')) add(path.join(dir, n));\n"
"  packages.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));\n"
"  let typescript = null;\n"
"  try {\n"
"    typescript = process.versions.typescript || require('typescript').version;\n"
"  } catch (e) {}\n"
"  console.log('" RUNTIMES_MARK "' + JSON.stringify({\n"
"    version: process.versions.node, runtime: 'node', typescript,\n"
"    packages}));\n"
"})();\n"
"void 0;\n";

/* Node's check: require.resolve, and the version of the package.json. */
static const char js_check[] =
"(() => {\n"
"  const fs = require('fs'), path = require('path');\n"
"  const builtin = require('module').isBuiltin;\n"
"  const own = (name) =>\n"
"    name.split('/').slice(0, name.startsWith('@') ? 2 : 1).join('/');\n"
"  const version = (file, name) => {\n"
"    for (let d = path.dirname(file); ; d = path.dirname(d)) {\n"
"      try {\n"
"        const j = JSON.parse(fs.readFileSync(path.join(d, 'package.json'),\n"
"          'utf8'));\n"
"        if (j.name === own(name))\n"
"          return typeof j.version === 'string' ? j.version : null;\n"
"      } catch (e) {}\n"
"      if (path.dirname(d) === d) return null;\n"
"    }\n"
"  };\n"
"  const found = [], missing = [];\n"
"  JSON.parse(process.env." RUNTIMES_NAMES_ENV ").forEach((name, index) => {\n"
"    try {\n"
"      const file = require.resolve(name);\n"
"      found.push({name,\n"
"        version: builtin(name) ? null : version(file, name)});\n"
"    } catch (e) {\n"
"      missing.push({index, name, error: (e.code || e.name) + ': ' +\n"
"        String(e.message).split('\\n')[0]});\n"
"    }\n"
"  });\n"
"  console.log('" RUNTIMES_MARK "' + JSON.stringify({found, missing}));\n"
"})();\n"
"void 0;\n";

static const char bash_probe[] =
"printf '" RUNTIMES_MARK "{\"version\":\"%s\",\"runtime\":\"bash\","
"\"packages\":[]}\\n' \"${BASH_VERSINFO[0]}.${BASH_VERSINFO[1]}."
"${BASH_VERSINFO[2]}\"\n";

static const char *const no_aliases[] = { NULL };
static const char *const js_aliases[] = { "js", NULL };
static const char *const ts_aliases[] = { "ts", NULL };

/* The languages probed, in the order listed. */
static const struct lang {
	const char		*name;
	const char *const	*aliases;	/* the gateway's other names */
	const char		*probe;
	const char		*check;		/* packages; NULL: none */
	const char		*install;	/* them; NULL: cannot */
	const char		*version_key;	/* in the probe's report */
	int			 required;	/* no answer without it */
} langs[] = {
	{ .name = "python", .aliases = no_aliases, .probe = py_probe,
	  .check = py_check, .install = py_install, .version_key = "version",
	  .required = 1 },
	{ .name = "javascript", .aliases = js_aliases, .probe = js_probe,
	  .check = js_check, .version_key = "version" },
	{ .name = "typescript", .aliases = ts_aliases, .probe = js_probe,
	  .check = js_check, .version_key = "typescript" },
	{ .name = "bash", .aliases = no_aliases, .probe = bash_probe,
	  .version_key = "version" },
};

#define NLANGS	(sizeof(langs) / sizeof(langs[0]))

const char *
runtimes_language(const char *name, size_t len)
{
	const char *const *a;
	size_t i;

	if (strlen(name) != len)
		return NULL;		/* a NUL inside */
	for (i = 0; i < NLANGS; i++) {
		if (strcmp(name, langs[i].name) == 0)
			return langs[i].name;
		for (a = langs[i].aliases; *a; a++)
			if (strcmp(name, *a) == 0)
				return langs[i].name;
	}
	return NULL;
}

static const struct lang *
lang_find(const char *name)
{
	size_t i;

	for (i = 0; i < NLANGS; i++)
		if (strcmp(langs[i].name, name) == 0)
			return &langs[i];
	return NULL;
}

const char *
runtimes_check_code(const char *language)
{
	const struct lang *l = lang_find(language);

	return l ? l->check : NULL;
}

const char *
runtimes_install_code(const char *language)
{
	const struct lang *l = lang_find(language);

	return l ? l->install : NULL;
}

/* --- reading reports ----------------------------------------------------- */

static struct json_object *
member(struct json_object *o, const char *name, enum json_type type)
{
	struct json_object *v;

	if (json_object_is_type(o, json_type_object) &&
	    json_object_object_get_ex(o, name, &v) &&
	    json_object_is_type(v, type))
		return v;
	return NULL;
}

/* A copy of o's member name if it is a string, else JSON null. */
static struct json_object *
string_or_null(struct json_object *o, const char *name)
{
	struct json_object *v = member(o, name, json_type_string);

	return v ? json_object_new_string(json_object_get_string(v)) : NULL;
}

/* {"name", "version"[, "modules"]} of a report's package p, or NULL. */
static struct json_object *
package_of(struct json_object *p, int with_modules)
{
	struct json_object *name = member(p, "name", json_type_string);
	struct json_object *mods, *out, *list;
	size_t i;

	if (name == NULL)
		return NULL;
	out = json_object_new_object();
	json_object_object_add(out, "name",
	    json_object_new_string(json_object_get_string(name)));
	json_object_object_add(out, "version", string_or_null(p, "version"));
	if (!with_modules)
		return out;
	list = json_object_new_array();
	if ((mods = member(p, "modules", json_type_array)) != NULL)
		for (i = 0; i < json_object_array_length(mods); i++)
			if (json_object_is_type(json_object_array_get_idx(mods,
			    i), json_type_string))
				json_object_array_add(list, json_object_get(
				    json_object_array_get_idx(mods, i)));
	json_object_object_add(out, "modules", list);
	return out;
}

int
runtimes_check_read(struct json_object *report, size_t n,
    struct json_object **found, long *missing, char *why, size_t size)
{
	struct json_object *f = member(report, "found", json_type_array);
	struct json_object *m = member(report, "missing", json_type_array);
	struct json_object *e, *idx, *p;
	size_t i;
	int64_t k;

	*found = NULL;
	*missing = -1;
	why[0] = '\0';
	if (f == NULL || m == NULL || json_object_array_length(f) +
	    json_object_array_length(m) != n)
		return -1;
	for (i = 0; i < json_object_array_length(m); i++) {
		e = json_object_array_get_idx(m, i);
		if ((idx = member(e, "index", json_type_int)) == NULL ||
		    (k = json_object_get_int64(idx)) < 0 || (uint64_t)k >= n)
			return -1;
		if (*missing == -1 || k < *missing) {
			*missing = (long)k;
			p = member(e, "error", json_type_string);
			snprintf(why, size, "%s", p ? json_object_get_string(p) :
			    "it cannot be imported");
		}
	}
	*found = json_object_new_array();
	for (i = 0; i < json_object_array_length(f); i++) {
		if ((p = package_of(json_object_array_get_idx(f, i), 0)) ==
		    NULL) {
			json_object_put(*found);
			*found = NULL;
			return -1;
		}
		json_object_array_add(*found, p);
	}
	return 0;
}

struct json_object *
runtimes_entry(const char *language, struct json_object *report)
{
	const struct lang *l = lang_find(language);
	struct json_object *out, *aliases, *pkgs, *list, *p;
	const char *const *a;
	size_t i;

	if (l == NULL || !json_object_is_type(report, json_type_object) ||
	    (pkgs = member(report, "packages", json_type_array)) == NULL)
		return NULL;
	out = json_object_new_object();
	json_object_object_add(out, "language",
	    json_object_new_string(l->name));
	json_object_object_add(out, "version",
	    string_or_null(report, l->version_key));
	aliases = json_object_new_array();
	for (a = l->aliases; *a; a++)
		json_object_array_add(aliases, json_object_new_string(*a));
	json_object_object_add(out, "aliases", aliases);
	json_object_object_add(out, "runtime",
	    string_or_null(report, "runtime"));
	if (strcmp(l->version_key, "version") != 0)
		/* TypeScript's version is its compiler's; node runs it. */
		json_object_object_add(out, "runtimeVersion",
		    string_or_null(report, "version"));
	list = json_object_new_array();
	for (i = 0; i < json_object_array_length(pkgs); i++)
		if ((p = package_of(json_object_array_get_idx(pkgs, i),
		    strcmp(l->name, "python") == 0)) != NULL)
			json_object_array_add(list, p);
	json_object_object_add(out, "packages", list);
	return out;
}

struct json_object *
runtimes_report(const char *line)
{
	struct json_tokener *tok;
	struct json_object *o;
	size_t n = strcspn(line, "\n");

	if (n == 0 || n > PROBE_OUTPUT_MAX ||
	    (tok = json_tokener_new()) == NULL)
		return NULL;
	o = json_tokener_parse_ex(tok, line, (int)n);
	if (o != NULL && (json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != n ||
	    !json_object_is_type(o, json_type_object))) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

/* --- probing ------------------------------------------------------------- */

/* The report after the marker in out's stdout, or NULL (a new object). */
static struct json_object *
report_of(struct outcome *o)
{
	const char *text = o->out[0].data ? o->out[0].data : "";
	const char *p = strstr(text, RUNTIMES_MARK);

	return p ? runtimes_report(p + strlen(RUNTIMES_MARK)) : NULL;
}

/*
 * Runs l's probe in sb.  OUT: *entry, its <Runtime>, or NULL if the
 * provider does not run the language (it refused it, or the probe
 * failed).  Returns the provider's status: anything but E2B_OK and
 * E2B_BAD means it could not be asked.
 */
static enum e2b_status
probe_one(struct request *req, const struct e2b_sandbox *sb,
    const struct lang *l, struct json_object **entry)
{
	struct json_object *report = NULL;
	struct outcome o;
	enum e2b_status st;
	struct e2b_run run;
	int started;

	*entry = NULL;
	outcome_init(&o, PROBE_OUTPUT_MAX);
	run = (struct e2b_run){ .code = l->probe, .code_len = strlen(l->probe),
	    .language = l->name, .timeout_ms = PROBE_TIMEOUT_MS };
	st = e2b_execute(req->e2b, sb, &run, outcome_collect, &o, &started);
	if (st == E2B_OK && !outcome_failed(&o) &&
	    (report = report_of(&o)) != NULL)
		*entry = runtimes_entry(l->name, report);
	if (st == E2B_OK && *entry == NULL)
		log_info("%s: the %s probe gave no report: the provider does "
		    "not run %s", req->id, l->name, l->name);
	json_object_put(report);
	outcome_release(&o);
	return st;
}

/* Answers a failure to get or use the probe's sandbox. */
static void
probe_failed(struct request *req, enum lease_err err, enum e2b_status st,
    const struct lease *l)
{
	if (err == LEASE_LIMIT) {
		reply_header(req, "Retry-After", "%d", l->retry_after_s);
		reply_error(req, 429, "sandbox_limit", NULL, LEASE_LIMIT_MESSAGE,
		    req->cfg->project_sandboxes);
	} else if (err == LEASE_DB)
		reply_error(req, 503, "unavailable", NULL,
		    "the database is not answering; try again shortly");
	else if (st == E2B_UNREACHABLE || st == E2B_LIMIT)
		reply_error(req, 503, "unavailable", NULL, "the sandbox "
		    "provider cannot be reached or is at capacity; try again "
		    "shortly");
	else if (st == E2B_TIMEOUT)
		reply_error(req, 504, "upstream_timeout", NULL,
		    "the sandbox provider did not answer in time");
	else
		reply_error(req, 502, "upstream_error", NULL, "the sandbox "
		    "provider failed or answered something unusable");
}

/*
 * Probes every language in one fresh sandbox of the caller's project
 * (recorded in sandboxes like any other, closed after).  Returns the
 * <Runtime> list (a new array), or NULL after answering the failure.
 */
static struct json_object *
probe_all(struct request *req)
{
	struct json_object *list, *entry;
	enum lease_err err;
	enum e2b_status st = E2B_OK;
	struct lease l;
	size_t i;
	long runs = 0;

	err = lease_acquire(req, NULL, NULL, "python",
	    req->cfg->idle_timeout_s, PROBE_RUN_S, PROBE_RUN_S, 0, &l, &st);
	if (err != LEASE_OK) {
		probe_failed(req, err, st, &l);
		return NULL;
	}
	list = json_object_new_array();
	for (i = 0; i < NLANGS; i++) {
		st = probe_one(req, &l.sb, &langs[i], &entry);
		runs++;
		if (st != E2B_OK && st != E2B_BAD)
			break;
		if (entry != NULL)
			json_object_array_add(list, entry);
		else if (langs[i].required)
			break;
		st = E2B_OK;
	}
	lease_release(req, &l, runs, st == E2B_NOT_FOUND);
	if (i < NLANGS) {
		json_object_put(list);
		probe_failed(req, LEASE_PROVIDER, st, &l);
		return NULL;
	}
	return list;
}

/* --- the route ----------------------------------------------------------- */

/* One gateway process's last answer. */
static struct {
	pthread_mutex_t	 lock;
	char		*runtimes;	/* the list, serialized; or NULL */
	int64_t		 until_ms;	/* monotonic */
	char		 checked_at[TS_ISO_LEN];
	char		 expires_at[TS_ISO_LEN];
} cache = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Keeps list for the configured lifetime.  Called with the lock held. */
static void
cache_put(const struct config *cfg, struct json_object *list)
{
	int64_t now = ts_now_ms();

	free(cache.runtimes);
	cache.runtimes = strdup(json_object_to_json_string_ext(list,
	    JSON_C_TO_STRING_PLAIN));
	cache.until_ms = ts_mono_ms() + cfg->runtimes_ttl_s * 1000;
	ts_format(now, cache.checked_at);
	ts_format(now + cfg->runtimes_ttl_s * 1000, cache.expires_at);
}

/* The answer from the cache; it must be fresh.  Lock held. */
static void
reply_cached(struct request *req)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "success", json_object_new_boolean(1));
	json_object_object_add(o, "provider",
	    json_object_new_string(req->cfg->provider));
	json_object_object_add(o, "checkedAt",
	    json_object_new_string(cache.checked_at));
	json_object_object_add(o, "expiresAt",
	    json_object_new_string(cache.expires_at));
	json_object_object_add(o, "runtimes",
	    json_tokener_parse(cache.runtimes));
	reply_json(req, 200, o);
}

void
runtimes_get(struct request *req)
{
	struct json_object *list;

	if (req->cfg->e2b_api_url == NULL) {
		reply_error(req, 503, "unavailable", NULL,
		    "no sandbox provider is configured (E2B_API_URL)");
		return;
	}
	pthread_mutex_lock(&cache.lock);
	if (cache.runtimes == NULL || ts_mono_ms() >= cache.until_ms) {
		if ((list = probe_all(req)) == NULL) {
			pthread_mutex_unlock(&cache.lock);
			return;
		}
		cache_put(req->cfg, list);
		json_object_put(list);
	}
	if (cache.runtimes != NULL)
		reply_cached(req);
	else
		reply_error(req, 503, "unavailable", NULL,
		    "the gateway is out of memory; try again shortly");
	pthread_mutex_unlock(&cache.lock);
}
