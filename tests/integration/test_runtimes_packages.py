"""context of any JSON type, packages that must be importable, and
GET /api/iris/runtimes -- through nginx, the gateway and real sandboxes
of iris-sandboxd (docs/runtimes.md).

context: every JSON type reaches Python and JavaScript as that value;
without one, code that names it sees None / undefined.  packages: each
name is checked importable in the run's own sandbox, packagesInstalled
says what was found with its version, a name that is not there is refused
naming packages[i].  runtimes: what a probe found in a sandbox of the
provider, checked against what runs in a sandbox report themselves.
"""

import json
import re
import threading
import time

import pytest
import requests

from conftest import Stack, assert_error, assert_ok, assert_ran, describe

DEADLINE = 60


@pytest.fixture(scope="module")
def stack():
    s = Stack(name="runtimes", sandboxd_env={"IRIS_SANDBOX_POOL": "2"})
    s.start()
    yield s
    s.stop()


def run(stack, code, session=None, **fields):
    """Runs code (in session, if given); returns the result of the 200."""
    body = {"code": code}
    if session:
        body["sessionId"] = session
    body.update(fields)
    r = stack.execute(body)
    res = assert_ran(r)["result"]
    assert res["success"] is True, describe(r)
    return res


def wait_for(what, cond, deadline=DEADLINE):
    end = time.monotonic() + deadline
    while True:
        v = cond()
        if v:
            return v
        assert time.monotonic() < end, "timed out waiting for " + what
        time.sleep(0.1)


# --- context -------------------------------------------------------------------

VALUES = [
    ("object", {"a": [1, {"b": None}], "name": "ü \"q\""}),
    ("array", [{"age": 45}, {"age": 52}]),
    ("empty-array", []),
    ("string", "rows: 'x' $HOME"),
    ("empty-string", ""),
    ("int", 42),
    ("float", -2.5),
    ("true", True),
    ("false", False),
]


@pytest.mark.parametrize("kind,value", VALUES, ids=[k for k, _ in VALUES])
def test_context_any_type_python(stack, kind, value):
    code = ("import json\n"
            "print(json.dumps([type(context).__name__, context]))\n"
            "print(json.dumps(json.loads(context_data)))")
    res = run(stack, code, session="ctx-py", context=value)
    first, second = res["output"].splitlines()
    name, seen = json.loads(first)
    assert seen == value and json.loads(second) == value, res
    want = {dict: "dict", list: "list", str: "str", int: "int", float: "float",
            bool: "bool"}[type(value)]
    assert name == want, res


@pytest.mark.parametrize("kind,value", VALUES, ids=[k for k, _ in VALUES])
def test_context_any_type_javascript(stack, kind, value):
    code = ("console.log(JSON.stringify([Array.isArray(context) ? 'array' : typeof context,"
            " context, JSON.parse(context_data)]))")
    res = run(stack, code, session="ctx-js", language="javascript", context=value)
    name, seen, parsed = json.loads(res["output"])
    assert seen == value and parsed == value, res
    want = {dict: "object", list: "array", str: "string", int: "number",
            float: "number", bool: "boolean"}[type(value)]
    assert name == want, res


def test_context_list_of_rows_is_data(stack):
    """The issue's own example: a list of rows as the context."""
    res = run(stack, "sum(r['age'] for r in context) / len(context)",
              context=[{"age": 45}, {"age": 52}])
    assert res["results"][0]["text"] == "48.5", res


def test_context_array_in_bash(stack):
    res = run(stack, 'printf "%s\\n" "$IRIS_CONTEXT"', language="bash",
              context=[1, "two", None])
    assert json.loads(res["output"]) == [1, "two", None]


def test_no_context_python_is_none(stack):
    """A fresh sandbox: no NameError, both names None."""
    res = run(stack, "print(context is None, context_data is None)")
    assert res["output"] == "True True\n", res


def test_no_context_javascript_is_undefined(stack):
    res = run(stack, "console.log(typeof context, typeof context_data, context === undefined)",
              language="javascript")
    assert res["output"] == "undefined undefined true\n", res


@pytest.mark.parametrize("language,show", [
    ("python", "print(repr(context))"),
    ("javascript", "console.log(String(context))"),
])
def test_no_context_after_one_was_sent(stack, language, show):
    """A session's later call without a context does not see the earlier
    call's: it is per call, like envVars."""
    sess = "ctx-then-none-" + language
    res = run(stack, show, session=sess, language=language, context={"a": 1})
    assert "1" in res["output"] or "object" in res["output"], res
    res = run(stack, show, session=sess, language=language)
    assert res["output"] == ("None\n" if language == "python" else "undefined\n"), res


@pytest.mark.parametrize("language,own,show,want", [
    ("python", "context = {'mine': True}", "print(context)", "{'mine': True}\n"),
    ("javascript", "context = 'mine'", "console.log(context)", "mine\n"),
])
def test_own_context_variable_is_kept(stack, language, own, show, want):
    """Code that binds `context` itself keeps it across calls that send
    none (only a handed-over context is cleared)."""
    sess = "ctx-own-" + language
    run(stack, own, session=sess, language=language)
    assert run(stack, show, session=sess, language=language)["output"] == want


@pytest.mark.parametrize("language,show", [
    ("python", "print(context)"), ("javascript", "console.log(context)")])
def test_context_runs_count_once(stack, language, show):
    """The helper run that hands a context over is not an execution of the
    caller's: executionCount goes 1, 2, 3, as the calls do."""
    sess = "ctx-count-" + language
    counts = [run(stack, show, session=sess, language=language, context=[i])["executionCount"]
              for i in range(3)]
    counts.append(run(stack, show, session=sess, language=language)["executionCount"])
    assert counts == [1, 2, 3, 4], counts


def test_no_context_keeps_line_numbers(stack):
    r = stack.execute({"code": "context\n1/0"})
    res = assert_ran(r)["result"]
    assert res["error"]["name"] == "ZeroDivisionError", describe(r)
    assert "line 2" in res["error"]["traceback"], res["error"]


# --- packages ----------------------------------------------------------------------


def test_requests_is_accepted_with_its_version(stack):
    """import requests works without asking, so asking for it works too;
    packagesInstalled says what the run itself sees."""
    res = run(stack, "import requests\nprint(requests.__version__)", packages=["requests"])
    version = res["output"].strip()
    assert version and res["packagesInstalled"] == [{"name": "requests", "version": version}]


def test_distribution_and_module_names(stack):
    """pip's names (scikit-learn, pillow) and import names (sklearn, PIL)
    both work; each comes back as asked, in order, with its version."""
    names = ["scikit-learn", "sklearn", "pillow", "PIL", "numpy", "matplotlib.pyplot"]
    res = run(stack, "import sklearn, PIL, numpy, matplotlib\n"
                     "print(sklearn.__version__, PIL.__version__, numpy.__version__,"
                     " matplotlib.__version__)", packages=names)
    sk, pil, np, mpl = res["output"].split()
    assert res["packagesInstalled"] == [
        {"name": "scikit-learn", "version": sk}, {"name": "sklearn", "version": sk},
        {"name": "pillow", "version": pil}, {"name": "PIL", "version": pil},
        {"name": "numpy", "version": np}, {"name": "matplotlib.pyplot", "version": mpl}], res


DATA_STACK = ["numpy", "pandas", "matplotlib", "seaborn", "plotly", "scipy", "statsmodels",
              "scikit-learn", "openpyxl", "pillow", "IPython", "requests"]


def test_the_data_stack_is_importable(stack):
    res = run(stack, "print(1)", packages=DATA_STACK)
    got = res["packagesInstalled"]
    assert [p["name"] for p in got] == DATA_STACK, res
    assert all(isinstance(p["version"], str) and p["version"] for p in got), got


def test_not_installed_is_refused_naming_it(stack):
    sess = "pkg-missing"
    run(stack, "kept = 7", session=sess)
    r = stack.execute({"code": "import torch", "packages": ["numpy", "torch"],
                       "sessionId": sess})
    body = assert_error(r, 400, "invalid_request", field="packages[1]")
    msg = body["error"]["message"]
    assert "torch" in msg and "ModuleNotFoundError" in msg, msg
    assert "/api/iris/runtimes" in msg, msg
    row = stack.execution_row(r)
    assert row["status"] == "rejected", dict(row)
    # The code did not run; the session lives on.
    assert run(stack, "print(kept)", session=sess)["output"] == "7\n"


def test_broken_package_is_refused_with_what_import_raised(stack):
    """The check imports for real: a module that raises is not importable."""
    sess = "pkg-broken"
    run(stack, "open('brokenmod.py', 'w').write('raise ImportError(\"half-installed\")')",
        session=sess)
    r = stack.execute({"code": "1", "packages": ["brokenmod"], "sessionId": sess})
    body = assert_error(r, 400, "invalid_request", field="packages[0]")
    assert "half-installed" in body["error"]["message"], body


def test_session_module_counts(stack):
    """The check runs in the session's sandbox: what the code made
    importable there is importable."""
    sess = "pkg-own-module"
    run(stack, "open('mymod.py', 'w').write('__version__ = \"0.3\"')", session=sess)
    res = run(stack, "import mymod\nprint(mymod.__version__)", session=sess,
              packages=["mymod"])
    assert res["packagesInstalled"] == [{"name": "mymod", "version": "0.3"}], res


def test_javascript_packages_are_resolved(stack):
    """JavaScript: require.resolve in the session's kernel; built-ins and
    a package of ./node_modules (with its package.json's version)."""
    sess = "pkg-js"
    run(stack, "const fs = require('fs');\n"
               "fs.mkdirSync('node_modules/leftpad-iris', {recursive: true});\n"
               "fs.writeFileSync('node_modules/leftpad-iris/package.json',"
               " JSON.stringify({name: 'leftpad-iris', version: '1.2.3'}));\n"
               "fs.writeFileSync('node_modules/leftpad-iris/index.js',"
               " 'module.exports = (s) => \" \" + s;');", session=sess, language="js")
    res = run(stack, "console.log(require('leftpad-iris')('x'))", session=sess, language="js",
              packages=["fs", "path", "leftpad-iris"])
    assert res["output"] == " x\n", res
    assert res["packagesInstalled"] == [
        {"name": "fs", "version": None}, {"name": "path", "version": None},
        {"name": "leftpad-iris", "version": "1.2.3"}], res
    r = stack.execute({"code": "1", "language": "js", "sessionId": sess,
                       "packages": ["leftpad-iris", "no-such-node-pkg"]})
    body = assert_error(r, 400, "invalid_request", field="packages[1]")
    assert "no-such-node-pkg" in body["error"]["message"], body
    # A Python module is not a Node one: the check is the language's.
    r = stack.execute({"code": "1", "language": "js", "packages": ["numpy"]})
    assert_error(r, 400, "invalid_request", field="packages[0]")


def test_bash_packages_are_refused(stack):
    before = stack.sql("SELECT count(*) FROM sandboxes")[0][0]
    r = stack.execute({"code": "echo hi", "language": "bash", "packages": ["jq"]})
    body = assert_error(r, 400, "invalid_request", field="packages")
    assert "bash" in body["error"]["message"], body
    assert stack.execution_row(r)["status"] == "rejected"
    # Refused before any sandbox was made for it.
    assert stack.sql("SELECT count(*) FROM sandboxes")[0][0] == before


def test_package_names_are_checked_by_element(stack):
    for pkgs, field in [([1], "packages[0]"), (["numpy", "a b"], "packages[1]"),
                        (["x;y"], "packages[0]"), (["@scope/"], None)]:
        r = stack.execute({"code": "1", "packages": pkgs})
        if field is None:
            # Well-formed, only not there.
            assert_error(r, 400, "invalid_request", field="packages[0]")
        else:
            assert_error(r, 400, "invalid_request", field=field)


# --- GET /api/iris/runtimes -------------------------------------------------------


def runtimes(stack):
    r = stack.get("/api/iris/runtimes", timeout=120)
    return assert_ok(r), r


def test_runtimes_needs_a_key(stack):
    for r in [stack.get("/api/iris/runtimes", key=None),
              stack.get("/api/iris/runtimes", key="iris_" + "0" * 16 + "_" + "0" * 48)]:
        assert_error(r, 401, "unauthorized")
        assert r.headers.get("WWW-Authenticate") == "Bearer"
    r = stack.post("/api/iris/runtimes")
    assert_error(r, 405, "method_not_allowed")
    assert r.headers.get("Allow") == "GET"
    assert_error(stack.get("/api/iris/runtimes?language=python"), 400, "invalid_request",
                 field="language")


def test_runtimes_shape(stack):
    body, r = runtimes(stack)
    assert set(body) == {"success", "provider", "checkedAt", "expiresAt", "runtimes"}, body
    assert body["success"] is True and body["provider"] == "local"
    assert body["checkedAt"] < body["expiresAt"]
    langs = [rt["language"] for rt in body["runtimes"]]
    assert langs[0] == "python" and "javascript" in langs and "bash" in langs, langs
    for rt in body["runtimes"]:
        assert {"language", "version", "aliases", "runtime", "packages"} <= set(rt), rt
        assert isinstance(rt["aliases"], list) and isinstance(rt["packages"], list)
        for p in rt["packages"]:
            assert isinstance(p["name"], str) and p["name"]
            assert p["version"] is None or isinstance(p["version"], str)
    js = next(rt for rt in body["runtimes"] if rt["language"] == "javascript")
    assert js["aliases"] == ["js"] and js["runtime"] == "node"
    # Recorded like any request.
    audit = stack.audit_row(r)
    assert (audit["method"], audit["route"], audit["status"]) == ("GET", "/api/iris/runtimes", 200)
    assert audit["project_id"] == "alpha"


def test_runtimes_are_true(stack):
    """What it lists is what a run reports: the interpreters' versions,
    and each data-stack package with its version, importable as its
    `modules` say."""
    body, _ = runtimes(stack)
    by = {rt["language"]: rt for rt in body["runtimes"]}
    py = by["python"]
    pkgs = {p["name"].lower(): p for p in py["packages"]}
    for name in DATA_STACK:
        assert name.lower() in pkgs, (name, sorted(pkgs))
    probe = {name: pkgs[name.lower()]["modules"][0] for name in DATA_STACK}
    code = ("import importlib, json, platform\n"
            "print(json.dumps([platform.python_version(), {n: getattr(importlib.import_module(m),"
            " '__version__', None) for n, m in %r.items()}]))" % probe)
    version, seen = json.loads(run(stack, code)["output"])
    assert py["version"] == version and py["runtime"] == "cpython"
    assert pkgs["numpy"]["version"] == seen["numpy"], (pkgs["numpy"], seen)
    for name in ["pandas", "matplotlib", "scipy", "requests", "seaborn", "openpyxl"]:
        assert pkgs[name]["version"] == seen[name], (name, pkgs[name], seen[name])
    assert pkgs["scikit-learn"]["modules"] == ["sklearn"]
    assert "PIL" in pkgs["pillow"]["modules"]
    node = run(stack, "console.log(process.versions.node)", language="js")["output"].strip()
    assert by["javascript"]["version"] == node
    bash = run(stack, 'echo "${BASH_VERSINFO[0]}.${BASH_VERSINFO[1]}.${BASH_VERSINFO[2]}"',
               language="bash")["output"].strip()
    assert by["bash"]["version"] == bash and by["bash"]["packages"] == []
    ts = by["typescript"]
    assert ts["aliases"] == ["ts"] and ts["runtime"] == "node", ts
    assert re.match(r"^\d+\.\d+\.\d+$", ts["version"] or ""), ts


def test_runtimes_versions_where_metadata_says_less(stack):
    """Distributions whose metadata names no modules (a one-file
    .egg-info) are still listed, as their name's module; those whose
    metadata says 0.0.0 (as Debian builds some) get their module's
    __version__."""
    body, _ = runtimes(stack)
    py = next(rt for rt in body["runtimes"] if rt["language"] == "python")
    pkgs = {p["name"].lower(): p for p in py["packages"]}
    # pexpect (IPython's) and kiwisolver (matplotlib's), as Debian 12 has them
    assert pkgs["pexpect"]["modules"] == ["pexpect"], pkgs.get("pexpect")
    assert [p for p in pkgs.values() if p["version"] == "0.0.0"] == []
    seen = json.loads(run(stack, "import json, pexpect, kiwisolver\n"
                             "print(json.dumps([pexpect.__version__, kiwisolver.__version__]))")
                      ["output"])
    assert [pkgs["pexpect"]["version"], pkgs["kiwisolver"]["version"]] == seen


def test_every_listed_python_package_passes_the_check(stack):
    """The list and the packages check agree: what runtimes lists, a call
    may ask for (the first 64, the most a call may name)."""
    body, _ = runtimes(stack)
    py = next(rt for rt in body["runtimes"] if rt["language"] == "python")
    names = [p["name"] for p in py["packages"]][:64]
    res = run(stack, "1", packages=names)
    assert [p["name"] for p in res["packagesInstalled"]] == names


def test_runtimes_are_kept(stack):
    first, _ = runtimes(stack)
    again, _ = runtimes(stack)
    assert again["checkedAt"] == first["checkedAt"], (first["checkedAt"], again["checkedAt"])
    assert again["expiresAt"] == first["expiresAt"]
    assert again["runtimes"] == first["runtimes"]


def test_runtimes_lifetime_zero_probes_each_time_in_a_recorded_sandbox():
    """IRIS_RUNTIMES_TTL=0: every call probes, each in a sandbox of the
    caller's project that is recorded and closed after, like a one-shot
    run's."""
    with Stack(name="runtimes-ttl0", env={"IRIS_RUNTIMES_TTL": "0"}) as s:
        r1 = assert_ok(s.get("/api/iris/runtimes", timeout=120))
        r2 = assert_ok(s.get("/api/iris/runtimes", timeout=120))
        assert r1["checkedAt"] < r2["checkedAt"], (r1["checkedAt"], r2["checkedAt"])
        assert r2["checkedAt"] == r2["expiresAt"]
        rows = wait_for("both probe sandboxes closed", lambda: [
            r for r in s.sql("SELECT project_id, session_id, status FROM sandboxes")
            if r["status"] == "closed"] if all(
            r["status"] == "closed" for r in s.sql("SELECT status FROM sandboxes")) else None)
        assert len(rows) == 2, [dict(r) for r in rows]
        assert all(r["project_id"] == "alpha" and r["session_id"] is None for r in rows)
        assert_error(s.get("/api/iris/runtimes", key=None), 401, "unauthorized")


def test_concurrent_first_calls_probe_once():
    """Calls that arrive together while nothing is kept: one probes, the
    others wait for its answer (one probe sandbox in all)."""
    with Stack(name="runtimes-once") as s:
        out = []

        def one():
            r = s.get("/api/iris/runtimes", timeout=180, session=requests.Session())
            out.append((r.status_code, r.json().get("checkedAt")))
        threads = [threading.Thread(target=one) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(200)
        assert len(out) == 4 and {st for st, _ in out} == {200}, out
        assert len({at for _, at in out}) == 1, out
        assert s.sql("SELECT count(*) FROM sandboxes")[0][0] == 1


def test_e2b_provider_checks_in_the_sandbox_and_pip_is_only_for_the_list():
    """IRIS_PROVIDER=e2b (E2B cloud's rules) against iris-sandboxd: the
    check still runs in the sandbox, so what is there is accepted without
    pip; a missing name off IRIS_PACKAGES is refused at once; one on it
    is given to pip, which cannot reach the network here: refused, saying
    so."""
    env = {"IRIS_PROVIDER": "e2b", "IRIS_PACKAGES": "definitely-not-installed-pkg"}
    with Stack(name="runtimes-e2b", env=env) as s:
        res = assert_ran(s.execute({"code": "print(1)", "packages": ["requests"]}))["result"]
        assert res["packagesInstalled"][0]["name"] == "requests", res
        body = assert_error(s.execute({"code": "1", "packages": ["torch"]}), 400,
                            "invalid_request", field="packages[0]")
        assert "cannot be imported" in body["error"]["message"], body
        r = s.execute({"code": "1", "packages": ["requests", "definitely-not-installed-pkg"]},
                      timeout=180)
        body = assert_error(r, 400, "invalid_request", field="packages[1]")
        assert "pip" in body["error"]["message"], body


# --- the stream route: the same checks --------------------------------------------


def sse_events(r):
    events, name, data = [], None, []
    for line in r.iter_lines(decode_unicode=False):
        line = line.decode("utf-8")
        if line == "":
            if name is not None:
                events.append((name, json.loads("\n".join(data))))
            name, data = None, []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
    return events


def test_stream_packages_and_context(stack):
    r = stack.post("/api/iris/execute/stream", timeout=120, stream=True, json={
        "code": "import requests\nprint(len(context), requests.__version__)",
        "context": [1, 2, 3], "packages": ["requests"]})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream"), \
        describe(r)
    events = sse_events(r)
    r.close()
    done = events[-1]
    assert done[0] == "done", events
    res = done[1]["result"]
    n, version = res["output"].split()
    assert n == "3" and res["packagesInstalled"] == [{"name": "requests", "version": version}]
    # A missing package: refused before the stream starts, as JSON.
    r = stack.post("/api/iris/execute/stream", timeout=120,
                   json={"code": "1", "packages": ["torch"]})
    assert_error(r, 400, "invalid_request", field="packages[0]")
