"""iris-sandboxd's E2B-compatible API, black box: the control plane (create,
get, list, timeout, refresh, delete, auth, the cap, expiry) and the sandbox
plane (routing by headers and by Host, /execute's live NDJSON stream,
contexts in three languages, serialized executions, interrupts on
disconnect, rich results, the output cap, an answer in ASCII), and a
SIGTERM that leaves nothing behind.  Shapes and texts follow
docs/e2b-protocol.md (E2B's own).
"""

import http.client
import json
import re
import signal
import time

import pytest
import requests

from sandboxd import (ENVD_PORT, ID_RE, ISO_RE, NOT_FOUND_502, UUID_RE,
                      daemon_fixture, describe,
                      in_thread, png_ok, start_daemon, still_running)

# No pool here: a pooled sandbox can be handed out while it is still starting
# (see test_pool_hands_out_only_started_sandboxes), which would make the
# other tests flaky; the pool has tests of its own below.
daemon = daemon_fixture(name="daemon", POOL=0)


@pytest.fixture(scope="module")
def sbx(daemon):
    """One long-lived code-interpreter sandbox most tests share."""
    sid = daemon.create(timeout=600)
    yield sid
    daemon.delete(sid)


def wait_log(d, text, n, timeout=15):
    """Waits until the daemon's log holds text n times."""
    deadline = time.monotonic() + timeout
    while d.log_path.read_text(errors="replace").count(text) < n:
        assert time.monotonic() < deadline, "no %d x %r in the log\n%s" % (n, text, d.log())
        time.sleep(0.05)


def assert_api_error(r, status):
    """E2B's control-plane error: {"code": status, "message": "..."}."""
    assert r.status_code == status, describe(r)
    body = r.json()
    assert body.get("code") == status, describe(r)
    assert isinstance(body.get("message"), str) and body["message"], describe(r)
    return body


def assert_proxy_502(r, sid):
    assert r.status_code == 502, describe(r)
    assert r.json() == {"sandboxId": sid, "message": NOT_FOUND_502, "code": 502}, describe(r)


# --- control plane --------------------------------------------------------------

def test_health_needs_no_key(daemon):
    r = daemon.api("GET", "/health", key=None)
    assert r.status_code == 200, describe(r)
    assert r.text == "Health check successful"


@pytest.mark.parametrize("key", [None, "wrong", "e2b_" + "0" * 40, ""])
def test_control_plane_needs_the_key(daemon, sbx, key):
    calls = [("POST", "/sandboxes", {"templateID": "base"}),
             ("POST", "/v2/sandboxes", {"templateID": "base"}),
             ("GET", "/sandboxes", None), ("GET", "/v2/sandboxes", None),
             ("GET", "/sandboxes/" + sbx, None),
             ("POST", "/sandboxes/%s/timeout" % sbx, {"timeout": 1}),
             ("POST", "/sandboxes/%s/refreshes" % sbx, {}),
             ("DELETE", "/sandboxes/" + sbx, None)]
    for method, path, body in calls:
        r = daemon.api(method, path, key=key, json=body)
        assert_api_error(r, 401)
    # None of them took effect: the sandbox is still there, still long-lived.
    r = daemon.api("GET", "/sandboxes/" + sbx)
    assert r.status_code == 200, describe(r)
    assert daemon.execute(sbx, "1").text == "1"


def test_create_shape(daemon):
    r = daemon.api("POST", "/sandboxes", json={
        "templateID": "code-interpreter-v1", "timeout": 120, "secure": True,
        "metadata": {"owner": "test"}, "envVars": {"FOO": "bar"},
        "allow_internet_access": True})
    assert r.status_code == 201, describe(r)
    body = r.json()
    sid = body["sandboxID"]
    try:
        assert ID_RE.match(sid), body
        assert body["templateID"] == "code-interpreter-v1", body
        assert body["clientID"] == "6532622b", body
        assert re.match(r"^\d+\.\d+\.\d+$", body["envdVersion"]), body
        assert tuple(int(x) for x in body["envdVersion"].split(".")) >= (0, 1, 0), body
        assert isinstance(body["envdAccessToken"], str) and len(body["envdAccessToken"]) >= 16
        # envVars are the sandbox's environment.
        ex = daemon.run(sid, "import os\nos.environ['FOO']")
        assert ex.text == "bar", ex
    finally:
        daemon.delete(sid)
    # Without secure, no token; /v2/sandboxes creates too; "base" works.
    r = daemon.api("POST", "/v2/sandboxes", json={"templateID": "base", "timeout": 60})
    assert r.status_code == 201, describe(r)
    body = r.json()
    assert "envdAccessToken" not in body, body
    assert body["templateID"] == "base"
    assert daemon.delete(body["sandboxID"]).status_code == 204


def test_create_rejects_bad_requests(daemon):
    assert_api_error(daemon.api("POST", "/sandboxes", json={"timeout": 10}), 400)
    assert_api_error(daemon.api("POST", "/sandboxes", data=b"{not json",
                                headers={"Content-Type": "application/json"}), 400)
    assert_api_error(daemon.api("POST", "/sandboxes",
                                json={"templateID": "base", "timeout": 0}), 400)
    assert_api_error(daemon.api("POST", "/sandboxes",
                                json={"templateID": "base", "timeout": "x"}), 400)
    assert_api_error(daemon.api("POST", "/sandboxes",
                                json={"templateID": "base", "metadata": {"a": 1}}), 400)
    assert_api_error(daemon.api("POST", "/sandboxes",
                                json={"templateID": "no-such-template"}), 404)


def test_get_list_filter(daemon):
    tag = "list-%d" % time.monotonic_ns()
    a = daemon.create(timeout=100, metadata={"suite": tag, "n": "1"})
    b = daemon.create(template="base", timeout=100, metadata={"suite": tag, "n": "2"})
    try:
        r = daemon.api("GET", "/sandboxes/" + a)
        assert r.status_code == 200, describe(r)
        d = r.json()
        for field in ("templateID", "sandboxID", "clientID", "startedAt", "endAt",
                      "cpuCount", "memoryMB", "diskSizeMB", "state", "envdVersion"):
            assert field in d, d
        assert d["sandboxID"] == a and d["state"] == "running", d
        assert d["metadata"] == {"suite": tag, "n": "1"}, d
        assert ISO_RE.match(d["startedAt"]) and ISO_RE.match(d["endAt"]), d
        assert "envdAccessToken" not in d, d
        # The legacy "<id>-<clientID>" form names the same sandbox.
        r = daemon.api("GET", "/sandboxes/%s-6532622b" % a)
        assert r.status_code == 200 and r.json()["sandboxID"] == a, describe(r)

        for path in ("/sandboxes", "/v2/sandboxes"):
            r = daemon.api("GET", path)
            assert r.status_code == 200, describe(r)
            ids = {s["sandboxID"] for s in r.json()}
            assert {a, b} <= ids, r.json()
            assert int(r.headers["X-Total-Running"]) >= 2, r.headers
            r = daemon.api("GET", path + "?metadata=suite%3D" + tag)
            assert sorted(s["sandboxID"] for s in r.json()) == sorted([a, b]), describe(r)
            r = daemon.api("GET", path + "?metadata=suite%3D" + tag + "%26n%3D2")
            assert [s["sandboxID"] for s in r.json()] == [b], describe(r)
            listed = r.json()[0]
            assert listed["templateID"] == "base" and listed["state"] == "running", listed
            r = daemon.api("GET", path + "?metadata=suite%3D" + tag + "&limit=1")
            assert len(r.json()) == 1, describe(r)
            r = daemon.api("GET", path + "?state=paused&metadata=suite%3D" + tag)
            assert r.status_code == 200 and r.json() == [], describe(r)
            r = daemon.api("GET", path + "?state=running&metadata=suite%3D" + tag)
            assert len(r.json()) == 2, describe(r)
        assert_api_error(daemon.api("GET", "/v2/sandboxes?limit=0"), 400)
    finally:
        daemon.delete(a)
        daemon.delete(b)
    # Gone from the list as soon as they are deleted.
    assert daemon.api("GET", "/v2/sandboxes?metadata=suite%3D" + tag).json() == []


def test_list_metadata_as_the_js_sdk_encodes_it(daemon):
    # encodeURIComponent on each key and value, then the query's own encoding.
    from urllib.parse import quote
    sid = daemon.create(timeout=100, metadata={"owner": "John Doe & co", "k=1": "a/b"})
    try:
        md = "owner=%s&%s=%s" % (quote("John Doe & co", safe=""), quote("k=1", safe=""),
                                 quote("a/b", safe=""))
        r = daemon.api("GET", "/v2/sandboxes?metadata=" + quote(md, safe=""))
        assert [x["sandboxID"] for x in r.json()] == [sid], describe(r)
    finally:
        daemon.delete(sid)


def test_list_pages_orders_and_filters(daemon):
    tag = "page-%d" % time.monotonic_ns()
    ids = [daemon.create(template=t, timeout=100, metadata={"suite": tag})
           for t in ("code-interpreter-v1", "base", "code-interpreter-v1")]
    q = "/v2/sandboxes?metadata=suite%3D" + tag
    try:
        # Newest first by default; pages of 2 walk all three exactly once.
        r = daemon.api("GET", q + "&limit=2")
        assert r.status_code == 200 and len(r.json()) == 2, describe(r)
        token = r.headers.get("X-Next-Token")
        assert token, r.headers
        r2 = daemon.api("GET", q + "&limit=2&nextToken=" + token)
        assert len(r2.json()) == 1 and "X-Next-Token" not in r2.headers, describe(r2)
        walked = [x["sandboxID"] for x in r.json() + r2.json()]
        assert walked == ids[::-1], walked
        started = [x["startedAt"] for x in r.json() + r2.json()]
        assert started == sorted(started, reverse=True), started
        asc = daemon.api("GET", q + "&order=asc").json()
        assert [x["sandboxID"] for x in asc] == ids, asc
        # template and startedAfter filter.
        r = daemon.api("GET", q + "&template=base")
        assert [x["sandboxID"] for x in r.json()] == [ids[1]], describe(r)
        r = daemon.api("GET", q + "&order=asc&startedAfter=" + asc[1]["startedAt"])
        assert [x["sandboxID"] for x in r.json()] == ids[1:], describe(r)
        for bad in ("&order=up", "&startedAfter=yesterday", "&nextToken=junk", "&limit=101"):
            assert_api_error(daemon.api("GET", q + bad), 400)
        assert_api_error(daemon.api("GET", "/v2/sandboxes?metadata=suite"), 400)
    finally:
        for sid in ids:
            daemon.delete(sid)


def test_metrics_of_a_sandbox(daemon, sbx):
    # A busy second of CPU and 64 MiB held show in the next sample.
    daemon.run(sbx, "import time\nx = bytearray(64 << 20)\nt = time.monotonic()\n"
               "while time.monotonic() - t < 1.0:\n    pass\n"
               "open('/home/user/m.bin', 'wb').write(b'm' * (8 << 20))")
    r = daemon.api("GET", "/sandboxes/%s/metrics" % sbx)
    assert r.status_code == 200, describe(r)
    [m] = r.json()
    assert set(m) == {"timestamp", "timestampUnix", "cpuCount", "cpuUsedPct", "memUsed",
                      "memTotal", "memCache", "diskUsed", "diskTotal"}, m
    assert ISO_RE.match(m["timestamp"]) and abs(m["timestampUnix"] - time.time()) < 60, m
    assert 0 < m["cpuUsedPct"] <= 100 and m["cpuCount"] == 2, m
    assert (64 << 20) <= m["memUsed"] <= m["memTotal"], m
    assert (8 << 20) <= m["diskUsed"] <= m["diskTotal"], m
    assert_api_error(daemon.api("GET", "/sandboxes/inotthere0000000000000/metrics"), 404)
    # A range around now has the sample; one that ended an hour ago has none.
    now = int(time.time())
    r = daemon.api("GET", "/sandboxes/%s/metrics?start=%d&end=%d" % (sbx, now - 60, now))
    assert len(r.json()) == 1, describe(r)
    r = daemon.api("GET", "/sandboxes/%s/metrics?start=%d&end=%d" % (sbx, now - 3600, now - 1800))
    assert r.status_code == 200 and r.json() == [], describe(r)
    assert_api_error(daemon.api("GET", "/sandboxes/%s/metrics?start=soon" % sbx), 400)
    # Several at once: the live ones among those named.
    r = daemon.api("GET", "/sandboxes/metrics?sandbox_ids=%s,inotthere0000000000000,../x" % sbx)
    assert r.status_code == 200 and list(r.json()["sandboxes"]) == [sbx], describe(r)
    assert r.json()["sandboxes"][sbx]["cpuCount"] == 2, describe(r)
    assert_api_error(daemon.api("GET", "/sandboxes/metrics"), 400)
    assert_api_error(daemon.api("GET", "/sandboxes/metrics?sandbox_ids=" + ",".join(["a"] * 101)), 400)


def test_what_this_provider_lacks_says_so(daemon, sbx):
    # Never the 404 that would tell the SDK the sandbox is gone.
    for method, path in (("POST", "/sandboxes/%s/pause" % sbx), ("POST", "/sandboxes/%s/snapshots" % sbx),
                         ("POST", "/sandboxes/%s/fork" % sbx), ("PUT", "/sandboxes/%s/network" % sbx),
                         ("GET", "/snapshots"), ("DELETE", "/templates/x")):
        body = assert_api_error(daemon.api(method, path, json={}), 501)
        assert "not supported by this provider" in body["message"], body
    assert_api_error(daemon.api("POST", "/sandboxes/inotthere0000000000000/pause", json={}), 404)
    assert daemon.run(sbx, "1 + 1").text == "2"          # and it is still there


def test_timeout_and_refresh(daemon):
    sid = daemon.create(template="base", timeout=30)
    try:
        def end_in():
            d = daemon.api("GET", "/sandboxes/" + sid).json()
            # endAt - startedAt is enough here: both come from the daemon's clock.
            from datetime import datetime
            parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))
            return (parse(d["endAt"]) - parse(d["startedAt"])).total_seconds()
        assert 25 <= end_in() <= 35
        r = daemon.api("POST", "/sandboxes/%s/timeout" % sid, json={"timeout": 500})
        assert r.status_code == 204 and r.content == b"", describe(r)
        assert 490 <= end_in() <= 520
        # /timeout may shorten; /refreshes only extends.
        r = daemon.api("POST", "/sandboxes/%s/timeout" % sid, json={"timeout": 100})
        assert r.status_code == 204, describe(r)
        assert 90 <= end_in() <= 120
        r = daemon.api("POST", "/sandboxes/%s/refreshes" % sid, json={"duration": 20})
        assert r.status_code == 204, describe(r)
        assert 90 <= end_in() <= 120
        r = daemon.api("POST", "/sandboxes/%s/refreshes" % sid)
        assert r.status_code == 204, describe(r)
        assert_api_error(daemon.api("POST", "/sandboxes/%s/timeout" % sid, json={}), 400)
        assert_api_error(daemon.api("POST", "/sandboxes/%s/timeout" % sid,
                                    json={"timeout": "x"}), 400)
        for path in ("/sandboxes/iunknown0000000000000/timeout",
                     "/sandboxes/iunknown0000000000000/refreshes"):
            assert_api_error(daemon.api("POST", path, json={"timeout": 5}), 404)
    finally:
        daemon.delete(sid)


def test_delete(daemon):
    sid = daemon.create(template="base", timeout=60)
    daemon.run(sid, "x = 1")
    procs = daemon.sandbox_procs(sid)
    assert len(procs) >= 3, procs         # bwrap, supervisor (pid 1), kernel
    r = daemon.delete(sid)
    assert r.status_code == 204 and r.content == b"", describe(r)
    body = assert_api_error(daemon.delete(sid), 404)
    assert sid in body["message"], body
    assert_api_error(daemon.api("GET", "/sandboxes/" + sid), 404)
    assert_proxy_502(daemon.sbx("POST", sid, "/execute", json={"code": "1"}), sid)
    assert_proxy_502(daemon.sbx("GET", sid, "/health"), sid)
    left = daemon.wait_clean(sid)
    assert not any(left.values()), left
    deadline = time.monotonic() + 5
    while still_running(procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not still_running(procs), still_running(procs)


@pytest.mark.parametrize("template", ["base", "code-interpreter-v1"])
def test_delete_during_execution(daemon, template):
    """An execution whose sandbox goes away (killed, or retired for reuse
    when it has a project) is cut off as on E2B: the connection drops
    with no end_of_execution (no last chunk), and the sandbox's envd
    health answers 502: what E2B's SDK reads as "the sandbox was killed
    while the request was in progress".  A kernel that dies on its own is
    an error instead (test_sandboxd_security's memory bomb)."""
    meta = {"metadata": {"projectId": "p-cut"}} if template != "base" else {}
    sid = daemon.create(template=template, timeout=60, **meta)
    r = daemon.sbx("POST", sid, "/execute", stream=True, json={
        "code": "print('started', flush=True)\nimport time\ntime.sleep(300)"})
    assert r.status_code == 200, describe(r)
    events, cut = [], None
    try:
        for line in r.iter_lines():
            events.append(json.loads(line))
            if events[-1].get("type") == "stdout":
                assert daemon.delete(sid).status_code == 204
    except requests.exceptions.ChunkedEncodingError as e:
        cut = e
    finally:
        r.close()
    assert cut is not None, "the answer ended in order: %r" % events[-5:]
    assert [e.get("text") for e in events if e.get("type") == "stdout"] == \
        ["started\n"], events
    assert "end_of_execution" not in [e.get("type") for e in events], events
    assert_proxy_502(daemon.sbx("GET", sid, "/health", port=ENVD_PORT), sid)

def test_timeout_expiry(daemon):
    sid = daemon.create(template="base", timeout=2)
    ex = daemon.run(sid, "import time\ntime.sleep(0.2)\n'alive'")
    assert ex.text == "alive"
    procs = daemon.sandbox_procs(sid)
    assert procs, "no host process for %s" % sid
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        r = daemon.api("GET", "/sandboxes/" + sid)
        if r.status_code == 404:
            break
        time.sleep(0.2)
    assert_api_error(r, 404)
    assert_proxy_502(daemon.sbx("POST", sid, "/execute", json={"code": "1"}), sid)
    left = daemon.wait_clean(sid)
    assert not any(left.values()), left
    assert not still_running(procs), still_running(procs)


def test_cap_answers_429(tmp_path, request):
    d = start_daemon(request, tmp_path, MAX=2, POOL=0)
    a = d.create(template="base", timeout=60)
    b = d.create(template="base", timeout=60)
    for path in ("/sandboxes", "/v2/sandboxes"):
        r = d.api("POST", path, json={"templateID": "base", "timeout": 60})
        body = assert_api_error(r, 429)
        assert "maximum number of concurrent E2B sandboxes (2)" in body["message"], body
    assert d.api("GET", "/sandboxes").headers["X-Total-Running"] == "2"
    assert d.delete(a).status_code == 204
    c = d.create(template="base", timeout=60)
    assert {s["sandboxID"] for s in d.api("GET", "/sandboxes").json()} == {b, c}
    d.stop_and_check()


# --- sandbox plane: routing -----------------------------------------------------------

@pytest.mark.parametrize("host_style", [False, True], ids=["headers", "host"])
def test_sandbox_plane_routing(daemon, sbx, host_style):
    r = daemon.sbx("GET", sbx, "/health", host_style=host_style)
    assert r.status_code == 200 and r.json() == "OK", describe(r)
    ex = daemon.execute(sbx, "6 * 7", host_style=host_style)
    assert ex.status == 200 and ex.text == "42" and ex.ended, ex
    # The sandbox plane needs no API key, and the control plane's key is
    # not what routes it.
    assert "X-API-Key" not in r.request.headers
    unknown = "i" + "0" * 20
    assert_proxy_502(daemon.sbx("GET", unknown, "/health", host_style=host_style), unknown)
    assert_proxy_502(daemon.sbx("POST", unknown, "/execute", host_style=host_style,
                                json={"code": "1"}), unknown)


def test_sandbox_plane_bad_routes(daemon, sbx):
    # One routing header without the other: E2B's proxy says which is missing.
    r = daemon.http.get(daemon.url("/health"), headers={"E2b-Sandbox-Id": sbx}, timeout=10)
    assert r.status_code == 400 and "E2b-Sandbox-Port" in r.text, describe(r)
    r = daemon.http.get(daemon.url("/health"), headers={"E2b-Sandbox-Port": "49999"}, timeout=10)
    assert r.status_code == 400 and "E2b-Sandbox-Id" in r.text, describe(r)
    # A port with nothing on it.
    r = daemon.sbx("GET", sbx, "/health", port=8080)
    assert r.status_code == 502, describe(r)
    assert r.json()["message"] == "The sandbox is running but port is not open", describe(r)
    # A malformed id never reaches a sandbox.
    r = daemon.sbx("GET", "../../etc", "/health")
    assert r.status_code == 502, describe(r)
    r = daemon.sbx("GET", sbx, "/no-such-path")
    assert r.status_code == 404, describe(r)


# --- sandbox plane: executions -----------------------------------------------------------

def test_execute_events(daemon, sbx):
    ctx = daemon.new_context(sbx)
    ex = daemon.execute(sbx, "import sys\nprint('out')\nprint('err', file=sys.stderr)\n"
                             "a = 20\na + 1", context_id=ctx)
    assert ex.status == 200, ex
    assert ex.types[0] == "number_of_executions" and ex.count == 1, ex
    assert ex.ended and ex.types.count("end_of_execution") == 1, ex
    assert ex.stdout == "out\n" and ex.stderr == "err\n", ex
    assert ex.text == "21" and ex.error is None, ex
    main = [r for r in ex.results if r["is_main_result"]]
    assert len(main) == 1, ex
    ex = daemon.execute(sbx, "def f():\n    return 1 / 0\nf()", context_id=ctx)
    assert ex.count == 2 and ex.ended, ex
    err = ex.error
    assert err["name"] == "ZeroDivisionError" and err["value"] == "division by zero", ex
    assert "f()" in err["traceback"] and "kernel" not in err["traceback"].lower(), err
    assert "\x1b[" not in err["traceback"], err
    assert ex.text is None
    # State survives an error.
    assert daemon.run(sbx, "a", context_id=ctx).text == "20"
    ex = daemon.execute(sbx, "def broken(:\n  pass", context_id=ctx)
    assert ex.error and ex.error["name"] == "SyntaxError", ex


def test_execute_bad_requests(daemon, sbx):
    r = daemon.sbx("POST", sbx, "/execute", json={"language": "python"})
    assert r.status_code == 422, describe(r)
    ctx = daemon.new_context(sbx)
    r = daemon.sbx("POST", sbx, "/execute", json={"code": "1", "context_id": ctx,
                                                  "language": "python"})
    assert r.status_code == 400, describe(r)
    assert r.text == "Only one of context_id or language can be provided", describe(r)
    r = daemon.sbx("POST", sbx, "/execute", json={"code": "1", "context_id": "nope"})
    assert r.status_code == 404 and r.text == "Context nope not found", describe(r)
    r = daemon.sbx("POST", sbx, "/execute", json={"code": "1", "language": "cobol"})
    assert r.status_code in (400, 500), describe(r)


def test_env_vars_per_execution(daemon, sbx):
    ctx = daemon.new_context(sbx)
    ex = daemon.run(sbx, "import os\nos.environ.get('ONLY_NOW')", context_id=ctx,
                    env_vars={"ONLY_NOW": "yes"})
    assert ex.text == "yes", ex
    ex = daemon.run(sbx, "os.environ.get('ONLY_NOW')", context_id=ctx)
    assert ex.text is None, ex      # None is no main result


def test_contexts_three_languages(daemon, sbx):
    py1 = daemon.new_context(sbx, "python")
    py2 = daemon.new_context(sbx, "python", cwd="/tmp")
    js = daemon.new_context(sbx, "javascript")
    sh = daemon.new_context(sbx, "bash")
    for cid in (py1, py2, js, sh):
        assert UUID_RE.match(cid), cid
    listed = daemon.sbx("GET", sbx, "/contexts")
    assert listed.status_code == 200, describe(listed)
    by_id = {c["id"]: c for c in listed.json()}
    assert by_id[py1] == {"id": py1, "language": "python", "cwd": "/home/user"}
    assert by_id[py2] == {"id": py2, "language": "python", "cwd": "/tmp"}
    assert by_id[js]["language"] == "javascript" and by_id[sh]["language"] == "bash"

    # State is per context.
    daemon.run(sbx, "x = 'one'", context_id=py1)
    assert daemon.run(sbx, "x", context_id=py1).text == "one"
    ex = daemon.execute(sbx, "x", context_id=py2)
    assert ex.error and ex.error["name"] == "NameError", ex
    assert daemon.run(sbx, "import os\nos.getcwd()", context_id=py2).text == "/tmp"

    daemon.run(sbx, "let y = 5\nconsole.log('log', y)\nconsole.error('warn')", context_id=js)
    ex = daemon.run(sbx, "y * 2", context_id=js)
    assert ex.text == "10", ex
    ex = daemon.run(sbx, "console.log('hi'); await new Promise(r => setTimeout(r, 50)); 'done'",
                    context_id=js)
    assert ex.stdout == "hi\n" and ex.text == "done", ex
    ex = daemon.execute(sbx, "throw new TypeError('bad')", context_id=js)
    assert ex.error and ex.error["name"] == "TypeError" and ex.error["value"] == "bad", ex
    # The language's default context works too (and "js" is javascript).
    assert daemon.run(sbx, "1 + 1", language="js").text == "2"

    daemon.run(sbx, "X=7\ncd /tmp", context_id=sh)
    ex = daemon.run(sbx, "echo $X; pwd; echo oops >&2", context_id=sh)
    assert ex.stdout == "7\n/tmp\n" and ex.stderr == "oops\n", ex
    ex = daemon.execute(sbx, "false", context_id=sh)
    assert ex.error and ex.error["name"] == "ExitStatus", ex



def test_context_restart_clears_state(daemon, sbx):
    ctxs = {lang: daemon.new_context(sbx, lang) for lang in ("python", "javascript", "bash")}
    daemon.run(sbx, "x = 1", context_id=ctxs["python"])
    daemon.run(sbx, "let y = 1", context_id=ctxs["javascript"])
    daemon.run(sbx, "X=1", context_id=ctxs["bash"])
    for lang, cid in ctxs.items():
        r = daemon.sbx("POST", sbx, "/contexts/%s/restart" % cid, timeout=60)
        assert r.status_code == 200 and r.json() is None, describe(r)
    ex = daemon.execute(sbx, "x", context_id=ctxs["python"])
    assert ex.error and ex.error["name"] == "NameError", ex
    assert ex.count == 1, ex
    ex = daemon.execute(sbx, "y", context_id=ctxs["javascript"])
    assert ex.error and ex.error["name"] == "ReferenceError", ex
    daemon.run(sbx, 'test -z "$X"', context_id=ctxs["bash"])
    r = daemon.sbx("POST", sbx, "/contexts/00000000-0000-4000-8000-000000000000/restart")
    assert r.status_code == 404, describe(r)


def test_context_delete(daemon, sbx):
    daemon.run(sbx, "1")      # the default context's kernel is up
    before = set(daemon.sandbox_procs(sbx))
    ctxs = []
    for lang, code in (("python", "1"), ("javascript", "1"), ("bash", "true")):
        ctxs.append(daemon.new_context(sbx, lang))
        daemon.run(sbx, code, context_id=ctxs[-1])
    assert len(set(daemon.sandbox_procs(sbx)) - before) >= 3
    for cid in ctxs:
        r = daemon.sbx("DELETE", sbx, "/contexts/" + cid)
        assert r.status_code == 200 and r.json() is None, describe(r)
        r = daemon.sbx("DELETE", sbx, "/contexts/" + cid)
        assert r.status_code == 404, describe(r)
        r = daemon.sbx("POST", sbx, "/contexts/%s/restart" % cid)
        assert r.status_code == 404, describe(r)
        r = daemon.sbx("POST", sbx, "/execute", json={"code": "1", "context_id": cid})
        assert r.status_code == 404, describe(r)
    ids = {c["id"] for c in daemon.sbx("GET", sbx, "/contexts").json()}
    assert not ids & set(ctxs), ids
    # Their kernels (processes of the sandbox's tree on the host) are gone.
    deadline = time.monotonic() + 5
    while set(daemon.sandbox_procs(sbx)) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    extra = {p: i[4] for p, i in daemon.sandbox_procs(sbx).items() if p not in before}
    assert not extra, extra


def test_executions_in_a_context_are_serialized(daemon, sbx):
    ctx = daemon.new_context(sbx)
    daemon.run(sbx, "import time", context_id=ctx)
    code = "t0 = time.time()\ntime.sleep(0.4)\nprint(repr(t0), repr(time.time()))"
    joins = []
    for _ in range(3):
        joins.append(in_thread(daemon.execute, sbx, code, context_id=ctx))
        time.sleep(0.15)      # so the order they arrive in is known
    runs = [j() for j in joins]
    for ex in runs:
        assert ex.status == 200 and ex.ended and ex.error is None, ex
    counts = [ex.count for ex in runs]
    assert counts == [2, 3, 4], runs      # in the order they were sent
    spans = [tuple(float(x) for x in ex.stdout.split()) for ex in runs]
    for (s1, e1), (s2, e2) in zip(spans, spans[1:]):
        assert e1 <= s2, "executions overlapped: %r" % spans


def test_streaming_is_live(daemon, sbx):
    ex = daemon.run(sbx, "print(1, flush=True)\nimport time\ntime.sleep(1.5)")
    first = ex.times[ex.types.index("stdout")]
    end = ex.times[-1]
    assert end - first >= 1.0, (ex.times, ex)


def test_keepalive_while_silent(daemon, sbx):
    ex = daemon.run(sbx, "import time\ntime.sleep(6)\nprint('after')")
    assert "keepalive" in ex.types, ex
    ka = ex.types.index("keepalive")
    assert ex.types.index("stdout") > ka and 4.5 <= ex.times[ka] <= 6.5, (ex.times, ex)
    assert ex.of("keepalive")[0] == {"type": "keepalive"}


def test_dataframe_html(daemon, sbx):
    ex = daemon.run(sbx, "import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})")
    main = [r for r in ex.results if r["is_main_result"]]
    assert len(main) == 1, ex
    assert "<table" in main[0]["html"] and "<td>x</td>" in main[0]["html"], ex
    assert "a" in main[0]["text"], ex


def test_matplotlib_png(daemon, sbx):
    ex = daemon.run(sbx, "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\n"
                         "plt.title('t')\nplt.show()")
    pngs = [r for r in ex.results if r.get("png")]
    assert len(pngs) == 1, ex
    assert png_ok(pngs[0]["png"]) and pngs[0]["is_main_result"] is False, ex
    # A figure left open (no show) comes back too, and is then closed.
    ex = daemon.run(sbx, "fig = plt.figure()\nfig.add_subplot().bar([1, 2], [3, 4])\nNone")
    assert len([r for r in ex.results if r.get("png")]) == 1, ex
    ex = daemon.run(sbx, "len(plt.get_fignums())")
    assert ex.text == "0", ex


def test_disconnect_interrupts_and_keeps_state(daemon, sbx):
    ctx = daemon.new_context(sbx)
    s = daemon.stream(sbx, "kept = 41\nprint('started', flush=True)\nimport time\n"
                           "time.sleep(60)\nkept = 0", context_id=ctx)
    s.until(lambda e: e.get("type") == "stdout")
    s.abandon()
    t0 = time.monotonic()
    ex = daemon.run(sbx, "kept + 1", context_id=ctx, timeout=20)
    assert ex.text == "42", ex
    assert time.monotonic() - t0 < 5, "the next run waited %.1f s" % (time.monotonic() - t0)


def test_output_cap(daemon, sbx):
    # The daemon's default cap: 1 MiB per stream per execution.
    cap = 1 << 20
    ex = daemon.run(sbx, "import sys\nprint('x' * (3 << 20))\nsys.stderr.write('e' * (2 << 20))\n"
                         "print('tail')\n'done'")
    assert ex.text == "done", repr(ex)[:2000]
    # A prefix of each stream, nothing written into it; one record after.
    assert ex.stdout == "x" * cap, len(ex.stdout)
    assert ex.stderr == "e" * cap, len(ex.stderr)
    assert ex.of("output_truncated") == [{
        "type": "output_truncated",
        "stdout": {"kept_bytes": cap, "dropped_bytes": (3 << 20) + 1 + 5 - cap},
        "stderr": {"kept_bytes": cap, "dropped_bytes": (2 << 20) - cap}}], repr(ex)[-2000:]
    assert ex.types[-2:] == ["output_truncated", "end_of_execution"]
    # The next execution has its own budget.
    assert daemon.run(sbx, "print('fine')").stdout == "fine\n"


def raw_execute(daemon, sid, **body):
    """POST /execute; the answer's bytes as they came."""
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=120)
    try:
        headers = daemon.sbx_headers(sid)
        headers["Content-Type"] = "application/json"
        conn.request("POST", "/execute", json.dumps(body).encode(), headers)
        resp = conn.getresponse()
        assert resp.status == 200, (resp.status, resp.read()[:500])
        return resp.read()
    finally:
        conn.close()


def test_execute_answer_is_ascii(daemon, sbx):
    # Non-ASCII text travels as JSON escapes, as E2B's server sends it: E2B's
    # JavaScript SDK decodes each network chunk on its own, so a character
    # split between two chunks would reach it as U+FFFD.  From the
    # JavaScript kernel (which writes UTF-8), and in the piece of a stream
    # the daemon cuts at its cap (which it writes itself).
    text = "ø€😀" * 30000
    cases = [
        ({"language": "javascript",
          "code": "console.log('ø€😀'.repeat(30000)); 'ø€😀'.repeat(30000)"},
         text + "\n", text),
        ({"code": "print('€' * 400000)"}, "€" * ((1 << 20) // 3), None),
    ]
    for body, out, value in cases:
        raw = raw_execute(daemon, sbx, **body)
        high = next((i for i, b in enumerate(raw) if b >= 0x80), None)
        assert high is None, (body["code"], high, raw[max(0, (high or 0) - 40):(high or 0) + 40])
        events = [json.loads(line) for line in raw.splitlines()]
        assert "".join(e["text"] for e in events if e["type"] == "stdout") == out, body["code"]
        if value is not None:
            assert [e["text"] for e in events if e["type"] == "result"] == [value]


def test_other_sandboxes_served_while_one_is_busy(daemon, sbx):
    other = daemon.create(template="base", timeout=120)
    try:
        s = daemon.stream(other, "print('spinning', flush=True)\nwhile True:\n    pass")
        s.until(lambda e: e.get("type") == "stdout")
        for _ in range(3):
            t0 = time.monotonic()
            assert daemon.run(sbx, "1 + 1").text == "2"
            r = daemon.api("GET", "/sandboxes/" + other)
            assert r.status_code == 200, describe(r)
            assert time.monotonic() - t0 < 2.0, "took %.2f s" % (time.monotonic() - t0)
        s.abandon()
        t0 = time.monotonic()
        assert daemon.run(other, "'free'", timeout=20).text == "free"
        assert time.monotonic() - t0 < 5
    finally:
        daemon.delete(other)


# --- shutdown --------------------------------------------------------------------

def test_sigterm_leaves_nothing(tmp_path, request):
    d = start_daemon(request, tmp_path, POOL=1)
    wait_log(d, "data stack preloaded", 1)   # see test_pool_hands_out_only_started_sandboxes
    time.sleep(0.3)
    a = d.create(timeout=300)
    b = d.create(template="base", timeout=300)
    d.run(a, "x = 1")
    sh = d.new_context(a, "bash")
    js = d.new_context(b, "javascript")
    # Things that outlive their execution: a background process, a timer.
    d.run(a, "(sleep 300 &) ; nohup sleep 301 >/dev/null 2>&1 &", context_id=sh)
    d.run(b, "setInterval(() => {}, 1000); 1", context_id=js)
    # One execution still running when the signal comes.
    s = d.stream(a, "print('busy', flush=True)\nimport time\ntime.sleep(120)")
    s.until(lambda e: e.get("type") == "stdout")
    before = d.leftovers()
    assert len(before["sandbox_dirs"]) >= 2 and before["processes"], before
    if any(c.startswith("/sys/fs/cgroup/memory/") for c in before["cgroups"]):
        assert len([c for c in before["cgroups"] if "/memory/" in c]) >= 2, before
    t0 = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    rc = d.proc.wait(20)
    took = time.monotonic() - t0
    d.returncode = rc
    d.stopped_at = time.monotonic()
    d._log.close()
    s.close()
    assert rc == 0, d.log()
    left = d.wait_clean(timeout=5)
    assert not any(left.values()), left
    assert not d.state_dir.exists(), list(d.state_dir.rglob("*"))   # all removed
    assert d.sandbox_dirs() == []
    for cg in d.cgroup_dirs:
        if cg.exists():
            assert not [p for p in cg.iterdir() if p.is_dir()], list(cg.iterdir())
    assert took < 10, "SIGTERM took %.1f s" % took


# --- the pool --------------------------------------------------------------------

def test_pool_hands_out_only_started_sandboxes(tmp_path, request):
    """A create right after start-up, while the pool's first sandbox is still
    starting (its supervisor preloads the data stack for ~1 s), must not get
    that half-started sandbox: the daemon logs "sandbox <id> started" once a
    sandbox is up, so by the time create answers, that line is there."""
    d = start_daemon(request, tmp_path, POOL=1)
    r = d.api("POST", "/sandboxes", json={"templateID": "code-interpreter-v1", "timeout": 120})
    assert r.status_code == 201, describe(r)
    sid = r.json()["sandboxID"]
    log = d.log_path.read_text(errors="replace")
    assert "sandbox %s started" % sid in log, (
        "create answered %s before that sandbox had started (the pool handed out "
        "a sandbox still starting; a run in it now races the pool's own wait for "
        "the supervisor's ready line):\n%s" % (sid, log))
    # Use it at once, as a client would.
    ex = d.run(sid, "import sys\n'pandas' in sys.modules")
    assert ex.text == "True", ex
    d.stop_and_check()


def test_pool_makes_first_run_fast(tmp_path, request):
    d = start_daemon(request, tmp_path, POOL=1)
    wait_log(d, "data stack preloaded", 1)
    time.sleep(0.3)     # its Python kernel starts just after
    t0 = time.monotonic()
    sid = d.create(timeout=120)
    took = time.monotonic() - t0
    ex = d.run(sid, "import sys\n'pandas' in sys.modules and 'matplotlib' in sys.modules")
    first = time.monotonic() - t0
    assert ex.text == "True", ex
    assert took < 0.5 and first < 1.5, "create %.2f s, first run done at %.2f s" % (took, first)
    wait_log(d, "data stack preloaded", 2)     # it refills
    d.stop_and_check()
