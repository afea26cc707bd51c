"""POST /api/iris/execute through nginx, in real sandboxes of a real
iris-sandboxd: the answer's shape (docs/api.md), languages, errors,
rich results, context, envVars, timeouts, the output cap, packages,
sessions and sandbox choice, and the executions/audit rows each call
leaves.

One module stack (a pool of pre-started sandboxes keeps creation fast);
settings that need another gateway (IRIS_KEEP_CODE=0) get a second
gateway + nginx sharing the same iris-sandboxd.  Most feature tests run
in one session's sandbox so that they do not drain the pool.
"""

import base64
import hashlib
import json
import re
import socket
import threading
import time
from datetime import datetime, timezone

import pytest
import requests

from conftest import (REQUEST_ID_RE, TIME_RE, Stack, assert_error, assert_json_type,
                      assert_ran, describe, key_id)

EXECUTION_ID_RE = re.compile(r"^ex_[0-9A-Za-z]{10,}$")
SANDBOX_ID_RE = re.compile(r"^[a-z0-9]{1,64}$")

BODY_KEYS = {"success", "result", "sandboxId", "timestamp"}
RESULT_KEYS = {"success", "output", "stderr", "logs", "error", "results", "executionCount",
               "executionTime", "truncated", "truncation", "packagesInstalled", "metadata"}
METADATA_KEYS = {"sandboxId", "projectId", "sessionId", "executionId", "language", "timestamp"}


@pytest.fixture(scope="module")
def stack():
    s = Stack(name="execute", sandboxd_env={"IRIS_SANDBOX_POOL": "3"})
    s.start()
    yield s
    s.stop()


SESSION = "exec-features"


def run(stack, code, **fields):
    """Runs code in the module's feature session; returns the 200 body."""
    body = {"code": code, "sessionId": SESSION}
    body.update(fields)
    r = stack.execute(body)
    return assert_ran(r)["result"], r


def epoch(iso):
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc).timestamp()


def sha256(s):
    return hashlib.sha256(s.encode()).hexdigest()


# --- the answer ------------------------------------------------------------


def test_success_shape_and_fresh_sandbox_closed(stack):
    code = "print('hi')\nimport sys\nprint('oops', file=sys.stderr)\n6 * 7"
    t0 = time.time()
    r = stack.execute({"code": code})
    body = assert_ran(r)
    assert_json_type(r)
    assert REQUEST_ID_RE.match(r.headers.get("X-Request-Id", "")), describe(r)
    assert set(body) == BODY_KEYS, describe(r)
    res = body["result"]
    assert set(res) == RESULT_KEYS, describe(r)
    assert res["success"] is True
    assert res["output"] == "hi\n"
    assert res["stderr"] == "oops\n"
    assert res["logs"] == ["hi", "oops"]
    assert res["error"] is None
    assert len(res["results"]) == 1, res["results"]
    main = res["results"][0]
    assert main["isMainResult"] is True and main["text"] == "42", main
    assert isinstance(res["executionCount"], int) and res["executionCount"] >= 1
    assert isinstance(res["executionTime"], int) and 0 <= res["executionTime"] < 30000
    assert res["truncated"] is False and res["truncation"] is None
    assert res["packagesInstalled"] == []
    md = res["metadata"]
    assert set(md) == METADATA_KEYS, md
    assert md["sandboxId"] == body["sandboxId"] and SANDBOX_ID_RE.match(md["sandboxId"])
    assert md["projectId"] == "alpha"
    assert md["sessionId"] is None
    assert EXECUTION_ID_RE.match(md["executionId"]), md
    assert md["language"] == "python"
    assert TIME_RE.match(md["timestamp"]) and TIME_RE.match(body["timestamp"]), body
    assert md["timestamp"] <= body["timestamp"]
    # The times are now (UTC), not some other clock.
    assert abs(epoch(md["timestamp"]) - t0) < 60, (md["timestamp"], t0)
    assert abs(epoch(body["timestamp"]) - time.time()) < 60

    # Its executions row, by request id.
    row = stack.execution_row(r)
    assert row["execution_id"] == md["executionId"]
    assert row["status"] == "ok"
    assert row["project_id"] == "alpha" and row["key_id"] == key_id(stack.key)
    assert row["sandbox_id"] == body["sandboxId"] and row["session_id"] is None
    assert row["provider"] == "local" and row["language"] == "python"
    assert row["code_bytes"] == len(code.encode()) and row["code_sha256"] == sha256(code)
    assert row["code"] == code  # IRIS_KEEP_CODE defaults to 1
    assert row["stdout_bytes"] == 3 and row["stderr_bytes"] == 5
    assert row["result_count"] == 1
    assert row["error_name"] is None
    assert TIME_RE.match(row["created_at"])
    # ... and its audit row.
    audit = stack.audit_row(r)
    assert (audit["method"], audit["route"], audit["status"]) == ("POST", "/api/iris/execute", 200)
    assert audit["project_id"] == "alpha" and audit["key_id"] == key_id(stack.key)

    # No session, no sandboxId: a sandbox of its own, closed afterwards
    # (right after the answer is sent, so allow a moment).
    sid = body["sandboxId"]
    deadline = time.monotonic() + 5
    while True:
        rows = stack.sql("SELECT * FROM sandboxes WHERE sandbox_id = ?", (sid,))
        if (rows and rows[0]["status"] == "closed") or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert len(rows) == 1 and rows[0]["status"] == "closed", [dict(x) for x in rows]
    assert rows[0]["closed_at"] and rows[0]["session_id"] is None
    events = [e["event"] for e in stack.sql(
        "SELECT event FROM sandbox_events WHERE sandbox_id = ? ORDER BY id", (sid,))]
    assert events == ["created", "closed"]
    assert stack.provider_status(sid) == 404
    listed = stack.get("/api/iris/sandbox").json()["sandboxes"]
    assert sid not in [s["sandboxId"] for s in listed]


def test_every_fresh_request_gets_its_own_sandbox(stack):
    a = assert_ran(stack.execute({"code": "x = 1"}))
    b = assert_ran(stack.execute({"code": "print(x)"}))
    assert a["sandboxId"] != b["sandboxId"]
    assert b["result"]["success"] is False and b["result"]["error"]["name"] == "NameError"


@pytest.mark.parametrize("language", ["javascript", "js"])
def test_javascript(stack, language):
    res, r = run(stack, "console.log('a', 1 + 1);\nconsole.error('e');\n[1, 2].length + 1",
                 language=language)
    assert res["success"] is True, describe(r)
    assert res["output"] == "a 2\n" and res["stderr"] == "e\n"
    assert res["logs"] == ["a 2", "e"]
    assert [x["text"] for x in res["results"] if x["isMainResult"]] == ["3"]
    assert res["metadata"]["language"] == "javascript"
    assert stack.execution_row(r)["language"] == "javascript"


def test_bash(stack):
    res, r = run(stack, "echo one\necho two >&2\nx=$((6*7)); echo $x", language="bash")
    assert res["success"] is True, describe(r)
    assert res["output"] == "one\n42\n" and res["stderr"] == "two\n"
    # (The order across the two streams is test_logs_are_both_streams_in_order's.)
    assert sorted(res["logs"]) == sorted(["one", "two", "42"])
    assert res["metadata"]["language"] == "bash"


def test_exception(stack):
    res, r = run(stack, "x=1\n1/0")
    assert res["success"] is False
    err = res["error"]
    assert set(err) >= {"name", "value", "traceback"}, err
    assert err["name"] == "ZeroDivisionError" and err["value"] == "division by zero"
    tb = err["traceback"]
    # The user's code only, with its own line numbers.
    assert "line 2" in tb and "1/0" in tb, tb
    frames = [ln for ln in tb.splitlines() if ln.lstrip().startswith("File ")]
    assert frames and all("<cell" in f for f in frames), tb
    assert "/opt/iris" not in tb and "kernel" not in tb.lower(), tb
    row = stack.execution_row(r)
    assert row["status"] == "error"
    assert row["error_name"] == "ZeroDivisionError"
    assert row["error_message"] == "division by zero"


def test_exception_keeps_what_was_printed(stack):
    res, _ = run(stack, "print('before')\nraise ValueError('bad value')\nprint('after')")
    assert res["success"] is False
    assert res["output"] == "before\n" and res["logs"] == ["before"]
    assert res["error"]["name"] == "ValueError" and res["error"]["value"] == "bad value"
    assert "line 2" in res["error"]["traceback"]


def test_javascript_exception(stack):
    res, r = run(stack, "let y = 1;\nthrow new Error('boom');", language="js")
    assert res["success"] is False, describe(r)
    assert res["error"]["name"] == "Error" and res["error"]["value"] == "boom"
    assert ":2" in res["error"]["traceback"], res["error"]
    assert stack.execution_row(r)["status"] == "error"


def test_logs_are_both_streams_in_order(stack):
    """api.md: logs is every output line of both streams, in the order
    produced -- here each line is flushed before the next is written."""
    code = ("import sys\n"
            "for i in range(20):\n"
            "    print('out', i, flush=True)\n"
            "    print('err', i, file=sys.stderr, flush=True)\n"
            "sys.stdout.write('no newline'); sys.stdout.flush()")
    res, _ = run(stack, code)
    want = [x for i in range(20) for x in ("out %d" % i, "err %d" % i)] + ["no newline"]
    assert res["output"] == "".join("out %d\n" % i for i in range(20)) + "no newline"
    assert res["stderr"] == "".join("err %d\n" % i for i in range(20))
    assert res["logs"] == want, res["logs"]


def test_matplotlib_figure_is_a_png(stack):
    code = ("import matplotlib.pyplot as plt\n"
            "plt.plot([1, 3, 2])\n"
            "plt.title('chart')\n"
            "plt.show()")
    res, r = run(stack, code)
    assert res["success"] is True, describe(r)
    pngs = [x for x in res["results"] if "png" in x]
    assert len(pngs) == 1, res["results"]
    assert pngs[0]["isMainResult"] is False
    raw = base64.b64decode(pngs[0]["png"], validate=True)
    assert raw.startswith(b"\x89PNG\r\n\x1a\n") and len(raw) > 1000
    assert stack.execution_row(r)["result_count"] == len(res["results"])


def test_dataframe_final_value_is_html(stack):
    res, r = run(stack, "import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})")
    assert res["success"] is True, describe(r)
    assert len(res["results"]) == 1
    main = res["results"][0]
    assert main["isMainResult"] is True
    assert "<table" in main["html"]
    assert "a" in main["text"] and "x" in main["text"]


def test_final_expression_and_none(stack):
    res, _ = run(stack, "'abc'.upper()")
    # E2B strips the quotes of a str's repr; either form names the value.
    assert [(x["isMainResult"], x["text"].strip("'")) for x in res["results"]] == [(True, "ABC")]
    res, _ = run(stack, "None")
    assert res["results"] == []
    res, _ = run(stack, "1 + 1;")  # a trailing ';' hides it
    assert res["results"] == []


# --- context and envVars ---------------------------------------------------

CONTEXT = {"name": "it's \"quoted\" $HOME `x` ü", "n": [1, 2.5, None, True], "nested": {"k": "v"}}


def test_context_python(stack):
    code = ("import json\n"
            "assert isinstance(context, dict)\n"
            "print(json.dumps(context, sort_keys=True))\n"
            "print(json.dumps(json.loads(context_data), sort_keys=True))")
    res, r = run(stack, code, context=CONTEXT)
    assert res["success"] is True, describe(r)
    want = json.dumps(CONTEXT, sort_keys=True)
    assert res["output"] == want + "\n" + want + "\n"


def test_context_does_not_shift_line_numbers(stack):
    res, _ = run(stack, "x=1\n1/0", context={"a": 1})
    assert res["error"]["name"] == "ZeroDivisionError"
    assert "line 2" in res["error"]["traceback"], res["error"]
    assert "line 3" not in res["error"]["traceback"] and "line 4" not in res["error"]["traceback"]
    res, _ = run(stack, "let q = 1;\nthrow new Error('ctx')", language="js", context={"a": 1})
    assert res["error"]["value"] == "ctx"
    assert ":2" in res["error"]["traceback"], res["error"]


def test_context_javascript(stack):
    res, r = run(stack, "console.log(JSON.stringify(context))", language="javascript",
                 context=CONTEXT)
    assert res["success"] is True, describe(r)
    assert json.loads(res["output"]) == CONTEXT


def test_context_bash(stack):
    res, r = run(stack, 'printf "%s\\n" "$IRIS_CONTEXT"', language="bash", context=CONTEXT)
    assert res["success"] is True, describe(r)
    assert json.loads(res["output"]) == CONTEXT


def test_context_after_the_code_declared_its_own_in_javascript(stack):
    """User code may declare `context` itself (let/const); a later call
    with a context still runs the code (200), it is not a provider
    failure."""
    sess = "exec-js-own-context"
    assert_ran(stack.execute({"code": "let context = 5;\nconst context_data = 'mine';",
                              "language": "js", "sessionId": sess}))
    r = stack.execute({"code": "console.log('ran')", "language": "js", "sessionId": sess,
                       "context": {"a": 1}})
    res = assert_ran(r)["result"]
    assert res["output"] == "ran\n", describe(r)


BACKGROUND = ("import threading, time\n"
              "def later():\n"
              "    time.sleep(0.3)\n"
              "    print('background', flush=True)\n"
              "threading.Thread(target=later).start()")


@pytest.mark.parametrize("extra", [{"context": {"a": 1}}, {"packages": ["numpy"]}],
                         ids=["context", "packages"])
def test_background_output_with_context_or_packages(stack, extra):
    """Output a session's threads wrote between executions comes with the
    next execution (sandbox/README.md); a call with context or packages
    must neither lose it nor fail on it."""
    sess = "exec-bg-" + "-".join(extra)
    assert_ran(stack.execute({"code": BACKGROUND, "sessionId": sess}))
    time.sleep(1)
    body = dict(extra, code="print('me')", sessionId=sess)
    r = stack.execute(body)
    res = assert_ran(r)["result"]
    assert res["success"] is True, describe(r)
    assert res["logs"] == ["background", "me"], describe(r)


def test_client_gone_interrupts_the_run(stack):
    """A caller of /execute that hangs up: the run is interrupted (the
    gateway notices at the provider's next keepalive, every 5 s), the
    session keeps its state and is free again."""
    sess = "exec-gone"
    assert_ran(stack.execute({"code": "kept = 'yes'", "sessionId": sess}))
    body = json.dumps({"code": "while True:\n    pass", "sessionId": sess,
                       "timeout": 120}).encode()
    sock = socket.create_connection(("127.0.0.1", stack.port), timeout=10)
    try:
        sock.sendall(b"POST /api/iris/execute HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Authorization: Bearer " + stack.key.encode() + b"\r\n"
                     b"Content-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body)
        time.sleep(1)
    finally:
        sock.close()
    t0 = time.monotonic()
    r = stack.execute({"code": "print(kept)", "sessionId": sess}, timeout=60)
    res = assert_ran(r)["result"]
    assert time.monotonic() - t0 < 15
    assert res["output"] == "yes\n", describe(r)


@pytest.mark.parametrize("language,show", [
    ("python", "import os; print(os.environ.get('IRIS_T_VAR', 'unset'))"),
    ("javascript", "console.log(process.env.IRIS_T_VAR || 'unset')"),
    ("bash", "echo ${IRIS_T_VAR:-unset}"),
])
def test_env_vars_seen_and_not_kept(stack, language, show):
    value = "v a l'u\"e $x ü"
    res, r = run(stack, show, language=language, envVars={"IRIS_T_VAR": value})
    assert res["success"] is True, describe(r)
    assert res["output"] == value + "\n"
    # The next run of the same session does not see it.
    res2, r2 = run(stack, show, language=language)
    assert res2["metadata"]["sandboxId"] == res["metadata"]["sandboxId"]
    assert res2["output"] == "unset\n", describe(r2)


# --- timeout and output cap --------------------------------------------------


def test_timeout_keeps_output_and_session(stack):
    sess = "exec-timeout"
    assert_ran(stack.execute({"code": "x = 41", "sessionId": sess}))
    t0 = time.monotonic()
    r = stack.execute({"code": "import time; print('a', flush=True); time.sleep(10)",
                       "timeout": 2, "sessionId": sess})
    elapsed = time.monotonic() - t0
    res = assert_ran(r)["result"]
    assert 1.9 <= elapsed < 8, elapsed
    assert res["success"] is False
    assert res["error"]["name"] == "TimeoutError"
    assert res["error"]["value"] == "execution timed out after 2 s"
    assert res["output"] == "a\n" and res["logs"] == ["a"]
    row = stack.execution_row(r)
    assert row["status"] == "timeout" and row["error_name"] == "TimeoutError"
    # Right after: the same sandbox, its state kept, and nothing left running.
    t0 = time.monotonic()
    r = stack.execute({"code": "print(x + 1)", "sessionId": sess})
    res2 = assert_ran(r)["result"]
    assert time.monotonic() - t0 < 5
    assert res2["success"] is True and res2["output"] == "42\n", describe(r)
    assert res2["metadata"]["sandboxId"] == res["metadata"]["sandboxId"]


def test_output_cap(stack):
    res, r = run(stack, "print('x' * 3_000_000)")
    assert res["truncated"] is True, describe(r)
    out = res["output"]
    assert 0 < len(out.encode()) <= 1048576
    assert out == "x" * len(out)
    assert res["truncation"]["stdout"] == {"keptBytes": len(out),
                                           "droppedBytes": 3_000_001 - len(out)}
    row = stack.execution_row(r)
    assert row["stdout_bytes"] >= len(out)
    # A small one afterwards is whole again.
    res, _ = run(stack, "print('y' * 10)")
    assert res["truncated"] is False and res["output"] == "y" * 10 + "\n"


# --- packages ------------------------------------------------------------------


def test_packages_importable(stack):
    res, r = run(stack, "import numpy\nprint(numpy.arange(3).sum(), numpy.__version__)",
                 packages=["numpy"])
    total, version = res["output"].split()
    assert res["success"] is True and total == "3", describe(r)
    assert res["packagesInstalled"] == [{"name": "numpy", "version": version}]
    assert stack.execution_row(r)["status"] == "ok"


def test_package_not_installed(stack):
    """No allowlist kept by hand: what the sandbox can import is allowed,
    anything else is refused naming its element (more in
    test_runtimes_packages.py)."""
    r = stack.execute({"code": "import torch", "packages": ["numpy", "torch"],
                       "sessionId": SESSION})
    body = assert_error(r, 400, "invalid_request", field="packages[1]")
    assert "torch" in body["error"]["message"]
    row = stack.execution_row(r)
    assert row["status"] == "rejected"
    assert row["code_sha256"] == sha256("import torch")
    r = stack.execute({"code": "print(1)", "packages": ["definitely-not-installed-pkg"],
                       "sessionId": SESSION})
    body = assert_error(r, 400, "invalid_request", field="packages[0]")
    assert "definitely-not-installed-pkg" in body["error"]["message"]
    assert stack.execution_row(r)["status"] == "rejected"


# --- sessions and sandbox choice ---------------------------------------------------


def test_session_reuses_one_sandbox(stack):
    sess = "exec-reuse"
    bodies = [assert_ran(stack.execute({"code": c, "sessionId": sess}))
              for c in ("n = 1", "n += 1", "print(n)")]
    ids = {b["sandboxId"] for b in bodies}
    assert len(ids) == 1, ids
    assert bodies[2]["result"]["output"] == "2\n"
    counts = [b["result"]["executionCount"] for b in bodies]
    assert counts == sorted(counts) and len(set(counts)) == 3, counts
    for b in bodies:
        assert b["result"]["metadata"]["sessionId"] == sess
    sid = ids.pop()
    got = stack.get("/api/iris/sandbox?sandboxId=" + sid).json()["sandbox"]
    assert got["sessionId"] == sess and got["status"] == "running"
    assert got["executions"] == 3
    rows = stack.sql("SELECT sandbox_id FROM executions WHERE session_id = ? "
                     "AND project_id = 'alpha'", (sess,))
    assert [x["sandbox_id"] for x in rows] == [sid] * 3


def test_concurrent_first_requests_of_a_session_share_one_sandbox(stack):
    sess = "exec-race"
    n = 4
    barrier = threading.Barrier(n)
    answers = [None] * n

    def one(i):
        with requests.Session() as s:
            barrier.wait(timeout=10)
            answers[i] = stack.execute({"code": "import os\nprint(os.getpid())",
                                        "sessionId": sess}, session=s)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(a is not None for a in answers), "a request did not come back"
    bodies = [assert_ran(a) for a in answers]
    ids = {b["sandboxId"] for b in bodies}
    assert len(ids) == 1, ids
    sid = ids.pop()
    # One kernel answered them all: one sandbox, one process.
    assert len({b["result"]["output"] for b in bodies}) == 1
    created = stack.sql("SELECT * FROM sandbox_events WHERE sandbox_id = ? AND event = 'created'",
                        (sid,))
    assert len(created) == 1
    rows = stack.sql("SELECT sandbox_id, status FROM sandboxes WHERE project_id = 'alpha' "
                     "AND session_id = ?", (sess,))
    assert [(x["sandbox_id"], x["status"]) for x in rows] == [(sid, "running")]
    assert stack.sql("SELECT executions FROM sandboxes WHERE sandbox_id = ?",
                     (sid,))[0]["executions"] == n
    counts = sorted(b["result"]["executionCount"] for b in bodies)
    assert len(set(counts)) == n, counts


def test_sandbox_id_runs_in_that_sandbox(stack):
    r = stack.post("/api/iris/sandbox", json={})
    assert r.status_code == 201, describe(r)
    sid = r.json()["sandbox"]["sandboxId"]
    try:
        a = assert_ran(stack.execute({"code": "secret = 'kept'", "sandboxId": sid}))
        b = assert_ran(stack.execute({"code": "print(secret)", "sandboxId": sid}))
        assert a["sandboxId"] == b["sandboxId"] == sid
        assert b["result"]["output"] == "kept\n"
        assert b["result"]["metadata"]["sandboxId"] == sid
        # Named by id, it is not closed after the run.
        row = stack.sql("SELECT status, executions FROM sandboxes WHERE sandbox_id = ?", (sid,))[0]
        assert row["status"] == "running" and row["executions"] == 2
        assert stack.provider_status(sid) == 200
    finally:
        stack.request("DELETE", "/api/iris/sandbox?sandboxId=" + sid)


def test_another_projects_sandbox_is_not_found(stack):
    r = stack.post("/api/iris/sandbox", json={}, key=stack.key_beta)
    assert r.status_code == 201, describe(r)
    beta_sid = r.json()["sandbox"]["sandboxId"]
    try:
        assert_ran(stack.execute({"code": "mine = 'beta'", "sandboxId": beta_sid},
                                 key=stack.key_beta))
        theirs = stack.execute({"code": "print(mine)", "sandboxId": beta_sid})
        missing = stack.execute({"code": "print(mine)", "sandboxId": "i" + "0" * 20})
        a = assert_error(theirs, 404, "sandbox_not_found")
        b = assert_error(missing, 404, "sandbox_not_found")
        # Indistinguishable from a missing one.
        assert a["error"] == b["error"]
        assert set(a) == set(b)
        assert stack.execution_row(theirs)["status"] == "rejected"
        # beta's sandbox is untouched.
        res = assert_ran(stack.execute({"code": "print(mine)", "sandboxId": beta_sid},
                                       key=stack.key_beta))["result"]
        assert res["output"] == "beta\n"
    finally:
        stack.request("DELETE", "/api/iris/sandbox?sandboxId=" + beta_sid, key=stack.key_beta)


def test_session_names_are_per_project(stack):
    sess = "exec-shared-name"
    a = assert_ran(stack.execute({"code": "who = 'alpha'", "sessionId": sess}))
    b = assert_ran(stack.execute({"code": "print(globals().get('who'))", "sessionId": sess},
                                 key=stack.key_beta))
    assert a["sandboxId"] != b["sandboxId"]
    assert b["result"]["output"] == "None\n"
    assert b["result"]["metadata"]["projectId"] == "beta"


# --- telemetry ---------------------------------------------------------------------


def test_rejected_request_leaves_a_rejected_row(stack):
    code = "print('never run ü')"
    r = stack.execute({"code": code, "timeout": 0})
    assert_error(r, 400, "invalid_request", field="timeout")
    row = stack.execution_row(r)
    assert row["status"] == "rejected"
    assert row["code_bytes"] == len(code.encode()) and row["code_sha256"] == sha256(code)
    assert row["project_id"] == "alpha" and row["sandbox_id"] is None
    assert stack.audit_row(r)["status"] == 400
    # Unknown fields and unauthenticated calls: likewise refused; the latter
    # has no project, so no executions row.
    r = stack.execute({"code": code, "bogus": 1})
    assert_error(r, 400, "invalid_request", field="bogus")
    assert stack.execution_row(r)["status"] == "rejected"
    r = stack.execute({"code": code}, key=None)
    assert_error(r, 401, "unauthorized")
    assert stack.execution_rows(r.headers["X-Request-Id"]) == []
    assert len(stack.audit_rows(r.headers["X-Request-Id"])) == 1


def test_one_row_per_call(stack):
    before = stack.sql("SELECT count(*) AS n FROM executions")[0]["n"]
    rs = [stack.execute({"code": "1", "sessionId": SESSION}) for _ in range(3)]
    for r in rs:
        assert_ran(r)
        assert stack.execution_row(r)["status"] == "ok"
    after = stack.sql("SELECT count(*) AS n FROM executions")[0]["n"]
    assert after - before == 3


def test_keep_code_off(stack):
    """IRIS_KEEP_CODE=0: the code's size and hash are kept, not the code."""
    with Stack(name="execute-nocode", sandboxd=False,
               env=dict(stack.provider_env(), IRIS_KEEP_CODE="0")) as other:
        code = "print('not kept')"
        r = other.execute({"code": code})
        assert assert_ran(r)["result"]["output"] == "not kept\n"
        row = other.execution_row(r)
        assert row["code"] is None
        assert row["code_bytes"] == len(code) and row["code_sha256"] == sha256(code)
        assert row["status"] == "ok"
        r = other.execute({"code": code, "timeout": 999})
        assert_error(r, 400, "invalid_request", field="timeout")
        assert other.execution_row(r)["code"] is None
