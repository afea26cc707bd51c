"""JavaScript and TypeScript end to end: through the gateway
(POST /api/iris/execute with "language") and through iris-sandboxd's E2B
API as E2B's clients use it (/contexts: the python and javascript
contexts every sandbox starts with, a javascript kernel started only when
first used, typescript contexts, a context whose cwd is /root), and with
E2B's own JavaScript SDK (tests/e2b-sdk/contexts.mjs).

The kernel's npm packages (sandbox/node) are installed by
sandbox/node/install, as scripts/run and scripts/test do.
"""

import subprocess

import pytest

from conftest import Stack, assert_error, assert_ran, describe
from sandboxd import UUID_RE, daemon_fixture
from test_e2b_sdk import SDK_DIR, assert_check, run_script, sdk  # noqa: F401  (sdk: a fixture)


@pytest.fixture(scope="module", autouse=True)
def node_packages():
    r = subprocess.run([str(SDK_DIR.parents[1] / "sandbox" / "node" / "install")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, "sandbox/node/install failed (is the npm registry " \
        "reachable?)\n%s\n%s" % (r.stdout, r.stderr)


@pytest.fixture(scope="module")
def stack(node_packages):
    s = Stack(name="kernel-js", sandboxd_env={"IRIS_SANDBOX_POOL": "2"})
    s.start()
    yield s
    s.stop()


daemon = daemon_fixture(name="daemon", POOL=1)


def run(stack, code, **fields):
    r = stack.execute(dict(code=code, **fields))
    return assert_ran(r)["result"], r


# --- through the gateway ----------------------------------------------------------


def test_javascript_import_declarations(stack):
    res, r = run(stack, "import fs from 'fs'\nimport { join } from 'node:path'\n"
                        "import * as os from 'os'\n"
                        "console.log(typeof fs.readFileSync, join('a', 'b'), typeof os.cpus)",
                 language="javascript")
    assert res["success"] is True and res["output"] == "function a/b function\n", describe(r)


def test_import_bindings_persist_in_a_session(stack):
    sess = "js-imports"
    run(stack, "import { basename } from 'path'", language="js", sessionId=sess)
    res, r = run(stack, "basename('/x/y.txt')", language="js", sessionId=sess)
    assert [x["text"] for x in res["results"] if x["isMainResult"]] == ["y.txt"], describe(r)


@pytest.mark.parametrize("language", ["typescript", "ts"])
def test_typescript(stack, language):
    code = ("interface Row { region: string; sales: number }\n"
            "enum Level { Low, High }\n"
            "const rows: Row[] = [{ region: 'n', sales: 3 }, { region: 's', sales: 4 }]\n"
            "console.log('total', rows.reduce((a: number, x: Row) => a + x.sales, 0))\n"
            "Level.High")
    res, r = run(stack, code, language=language)
    assert res["success"] is True, describe(r)
    assert res["output"] == "total 7\n"
    assert [x["text"] for x in res["results"] if x["isMainResult"]] == ["1"]
    assert res["metadata"]["language"] == "typescript"
    assert stack.execution_row(r)["language"] == "typescript"


def test_typescript_errors(stack):
    res, r = run(stack, "let n: number = 'text'\nconsole.log(n)", language="ts")
    assert res["success"] is True and res["output"] == "text\n", describe(r)   # transpile only
    res, r = run(stack, "let n: number = ;", language="ts")
    assert res["success"] is False and res["error"]["name"] == "SyntaxError", describe(r)


def test_child_output_captured(stack):
    code = ("const cp = require('child_process')\n"
            "console.log('first')\n"
            "cp.execSync('echo from-child', { stdio: 'inherit' })\n"
            "require('fs').writeSync(1, 'fd-one\\n')\n"
            "cp.spawnSync('sh', ['-c', 'echo child-err >&2'], { stdio: 'inherit' })\n"
            "console.log('last')")
    res, r = run(stack, code, language="js")
    assert res["output"] == "first\nfrom-child\nfd-one\nlast\n", describe(r)
    assert res["stderr"] == "child-err\n"
    assert res["logs"] == ["first", "from-child", "fd-one", "child-err", "last"]


def test_typescript_session(stack):
    r = stack.post("/api/iris/sandbox", json={"sessionId": "ts-sess", "language": "ts"})
    assert r.status_code == 201, describe(r)
    sid = r.json()["sandbox"]["sandboxId"]
    row = stack.sql("SELECT language FROM sandboxes WHERE sandbox_id = ?", (sid,))[0]
    assert row["language"] == "typescript"
    run(stack, "const kept: number[] = [1, 2]", language="ts", sessionId="ts-sess")
    res, r = run(stack, "kept.length", language="ts", sessionId="ts-sess")
    assert r.json()["sandboxId"] == sid, describe(r)
    assert [x["text"] for x in res["results"] if x["isMainResult"]] == ["2"], describe(r)
    r = stack.post("/api/iris/sandbox", json={"language": "cobol"})
    body = assert_error(r, 400, "invalid_request", field="language")
    assert "typescript (ts)" in body["error"]["message"], describe(r)
    stack.request("DELETE", "/api/iris/sandbox?sandboxId=" + sid)


def test_unknown_language_names_the_field(stack):
    r = stack.execute({"code": "1", "language": "cobol"})
    body = assert_error(r, 400, "invalid_request", field="language")
    assert "typescript" in body["error"]["message"], describe(r)


# --- through iris-sandboxd's E2B API ------------------------------------------------


def node_kernels(daemon, sid):
    return [p for p, info in daemon.sandbox_procs(sid).items() if "kernel.js" in info[4]]


def test_default_contexts_listed_and_started_on_first_use(daemon):
    sid = daemon.create()
    try:
        listed = daemon.sbx("GET", sid, "/contexts").json()
        assert [c["language"] for c in listed] == ["python", "javascript"], listed
        assert all(UUID_RE.match(c["id"]) and c["cwd"] == "/home/user" for c in listed)
        # Listed, but no node runs for it yet.
        assert node_kernels(daemon, sid) == []
        ex = daemon.run(sid, "import { sep } from 'path'\nsep", context_id=listed[1]["id"])
        assert ex.text == "/", ex
        assert len(node_kernels(daemon, sid)) == 1
        # language "js" is that same context.
        assert daemon.run(sid, "sep + sep", language="js").text == "//"
        # A new context comes after them.
        new = daemon.new_context(sid, "javascript")
        assert [c["id"] for c in daemon.sbx("GET", sid, "/contexts").json()] == \
            [listed[0]["id"], listed[1]["id"], new]
    finally:
        daemon.delete(sid)


def test_default_javascript_context_restart_and_delete(daemon):
    sid = daemon.create()
    try:
        js = daemon.sbx("GET", sid, "/contexts").json()[1]
        # Restarted and deleted before it ever ran, as after.
        r = daemon.sbx("POST", sid, "/contexts/%s/restart" % js["id"], timeout=60)
        assert r.status_code == 200 and r.json() is None, describe(r)
        daemon.run(sid, "let kept = 1", context_id=js["id"])
        r = daemon.sbx("POST", sid, "/contexts/%s/restart" % js["id"], timeout=60)
        assert r.status_code == 200, describe(r)
        ex = daemon.execute(sid, "kept", context_id=js["id"])
        assert ex.error and ex.error["name"] == "ReferenceError", ex
        r = daemon.sbx("DELETE", sid, "/contexts/" + js["id"])
        assert r.status_code == 200 and r.json() is None, describe(r)
        listed = daemon.sbx("GET", sid, "/contexts").json()
        assert [c["language"] for c in listed] == ["python"], listed
        # The next javascript run makes a default context again.
        assert daemon.run(sid, "1 + 1", language="javascript").text == "2"
    finally:
        daemon.delete(sid)


def test_typescript_contexts(daemon):
    sid = daemon.create()
    try:
        for name in ("typescript", "ts"):
            r = daemon.sbx("POST", sid, "/contexts", json={"language": name}, timeout=60)
            assert r.status_code == 200 and r.json()["language"] == "typescript", describe(r)
        cid = r.json()["id"]
        ex = daemon.run(sid, "const n: number = 41; n + 1", context_id=cid)
        assert ex.text == "42", ex
        # The default typescript context is its own, apart from javascript's.
        daemon.run(sid, "let onlyTs: string = 'ts'", language="ts")
        ex = daemon.execute(sid, "onlyTs", language="js")
        assert ex.error and ex.error["name"] == "ReferenceError", ex
        assert daemon.run(sid, "onlyTs", language="typescript").text == "ts"
    finally:
        daemon.delete(sid)


def test_context_with_cwd_root(daemon):
    sid = daemon.create()
    try:
        r = daemon.sbx("POST", sid, "/contexts", json={"language": "python", "cwd": "/root"},
                       timeout=60)
        assert r.status_code == 200, describe(r)
        ctx = r.json()
        assert ctx["cwd"] == "/root" and ctx["language"] == "python", ctx
        assert daemon.sbx("GET", sid, "/contexts").json()[-1] == ctx
        # Usable: the sandbox's one user has its home there too.
        ex = daemon.run(sid, "open('in-root.txt', 'w').write('x')\n"
                             "import os\nsorted(os.listdir('/home/user'))", context_id=ctx["id"])
        assert "in-root.txt" in ex.text, ex
        r = daemon.sbx("POST", sid, "/contexts", json={"language": "javascript", "cwd": "/root"},
                       timeout=60)
        assert r.status_code == 200, describe(r)
        ex = daemon.run(sid, "require('fs').readFileSync('in-root.txt', 'utf8')",
                        context_id=r.json()["id"])
        assert ex.text == "x", ex
        # A cwd that is no directory is refused, naming it.
        r = daemon.sbx("POST", sid, "/contexts", json={"cwd": "/no/such/dir"}, timeout=60)
        assert r.status_code >= 400 and "cwd" in r.text, describe(r)
    finally:
        daemon.delete(sid)


# --- with E2B's own SDK ---------------------------------------------------------------


CHECKS = ["default contexts listed at start", "default javascript context runs imports",
          "typescript", "context with cwd /root",
          "restart and remove the default javascript context"]


@pytest.fixture(scope="module")
def sdk_run(daemon, sdk, tmp_path_factory):  # noqa: F811  (sdk: the fixture imported above)
    return run_script(daemon, sdk, "contexts.mjs", tmp_path_factory.mktemp("e2b-sdk"))


@pytest.mark.parametrize("name", CHECKS)
def test_sdk(sdk_run, name):
    assert_check(sdk_run, name)
