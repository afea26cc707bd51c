"""/api/iris/sandbox through nginx with a real iris-sandboxd: POST
(pre-warm), GET (list, one), DELETE (one, all), idle expiry by the
gateway's reaper, the per-project cap (429 sandbox_limit), and that
another project's sandbox is invisible on every route.
"""

import json
import threading
import time
from datetime import datetime, timezone

import pytest

from conftest import TIME_RE, Stack, assert_error, assert_ok, assert_ran, describe

SANDBOX_KEYS = {"sandboxId", "projectId", "sessionId", "provider", "status", "createdAt",
                "lastUsedAt", "expiresAt", "executions"}
MISSING = "i" + "0" * 20
REAPER_PERIOD = 5  # seconds between the gateway's expiry sweeps


@pytest.fixture(scope="module")
def stack():
    s = Stack(name="sandbox-routes", sandboxd_env={"IRIS_SANDBOX_POOL": "3"})
    s.start()
    yield s
    s.stop()


def epoch(iso):
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc).timestamp()


def check_sandbox(sb, project="alpha", status="running"):
    assert set(sb) == SANDBOX_KEYS, sb
    assert sb["projectId"] == project and sb["status"] == status, sb
    assert sb["provider"] == "local"
    for k in ("createdAt", "lastUsedAt", "expiresAt"):
        assert TIME_RE.match(sb[k]), sb
    assert sb["createdAt"] <= sb["lastUsedAt"] <= sb["expiresAt"]
    assert isinstance(sb["executions"], int)
    return sb


def create(stack, body=None, key=..., status=201):
    kw = {} if body is None else {"json": body}
    r = stack.post("/api/iris/sandbox", key=key, **kw)
    b = assert_ok(r, status)
    assert b["success"] is True and set(b) == {"success", "sandbox"}, describe(r)
    return b["sandbox"]


def delete(stack, query, key=...):
    return stack.request("DELETE", "/api/iris/sandbox" + query, key=key)


def listed(stack, key=...):
    r = stack.get("/api/iris/sandbox", key=key)
    b = assert_ok(r)
    assert set(b) == {"success", "sandboxes"}
    return b["sandboxes"]


def events(stack, sid):
    return [e["event"] for e in stack.sql(
        "SELECT event FROM sandbox_events WHERE sandbox_id = ? ORDER BY id", (sid,))]


# --- POST ----------------------------------------------------------------------


def test_post_without_body(stack):
    t0 = time.time()
    sb = check_sandbox(create(stack))
    assert sb["sessionId"] is None and sb["executions"] == 0
    assert abs(epoch(sb["createdAt"]) - t0) < 60
    # The default idle lifetime: 300 s.
    assert round(epoch(sb["expiresAt"]) - epoch(sb["lastUsedAt"])) == 300
    assert stack.provider_status(sb["sandboxId"]) == 200
    assert events(stack, sb["sandboxId"]) == ["created"]
    row = stack.sql("SELECT * FROM sandboxes WHERE sandbox_id = ?", (sb["sandboxId"],))[0]
    assert row["status"] == "running" and row["project_id"] == "alpha"
    assert delete(stack, "?sandboxId=" + sb["sandboxId"]).status_code == 200


def test_post_with_session_then_again(stack):
    sb = check_sandbox(create(stack, {"sessionId": "rt-s1", "language": "js", "timeout": 60}))
    assert sb["sessionId"] == "rt-s1"
    assert round(epoch(sb["expiresAt"]) - epoch(sb["lastUsedAt"])) == 60
    again = check_sandbox(create(stack, {"sessionId": "rt-s1"}, status=200))
    assert again["sandboxId"] == sb["sandboxId"]
    assert events(stack, sb["sandboxId"]) == ["created"]
    # An execution of the session runs there, and counts.
    r = stack.execute({"code": "print(1)", "sessionId": "rt-s1"})
    assert assert_ran(r)["sandboxId"] == sb["sandboxId"]
    got = stack.get("/api/iris/sandbox?sandboxId=" + sb["sandboxId"]).json()["sandbox"]
    assert got["executions"] == 1 and got["lastUsedAt"] >= sb["lastUsedAt"]
    assert delete(stack, "?sandboxId=" + sb["sandboxId"]).status_code == 200


@pytest.mark.parametrize("body,field", [
    ({"bogus": 1}, "bogus"),
    ({"timeout": 0}, "timeout"),
    ({"timeout": 3601}, "timeout"),
    ({"timeout": "60"}, "timeout"),
    ({"timeout": 1.5}, "timeout"),
    ({"language": "ruby"}, "language"),
    ({"sessionId": "bad id"}, "sessionId"),
    ({"sessionId": "x" * 129}, "sessionId"),
    ({"sessionId": 5}, "sessionId"),
])
def test_post_invalid(stack, body, field):
    before = len(listed(stack))
    r = stack.post("/api/iris/sandbox", json=body)
    assert_error(r, 400, "invalid_request", field=field)
    assert len(listed(stack)) == before


def test_post_not_json(stack):
    r = stack.post("/api/iris/sandbox", data="{x", headers={"Content-Type": "application/json"})
    assert_error(r, 400, "invalid_json")
    r = stack.post("/api/iris/sandbox", data="[]", headers={"Content-Type": "application/json"})
    assert_error(r, 400, "invalid_json")
    r = stack.post("/api/iris/sandbox", key=None, json={})
    assert_error(r, 401, "unauthorized")


# --- GET -------------------------------------------------------------------------


def test_get_list_and_one(stack):
    a = create(stack, {"sessionId": "rt-list"})
    b = create(stack, {"sessionId": "rt-list"}, key=stack.key_beta)
    closed = create(stack)
    assert delete(stack, "?sandboxId=" + closed["sandboxId"]).status_code == 200
    try:
        mine = listed(stack)
        for sb in mine:
            check_sandbox(sb)
        ids = [sb["sandboxId"] for sb in mine]
        assert a["sandboxId"] in ids
        assert b["sandboxId"] not in ids       # beta's
        assert closed["sandboxId"] not in ids  # live only
        assert b["sandboxId"] in [sb["sandboxId"] for sb in listed(stack, key=stack.key_beta)]
        assert a["sandboxId"] not in [sb["sandboxId"] for sb in listed(stack, key=stack.key_beta)]

        one = assert_ok(stack.get("/api/iris/sandbox?sandboxId=" + a["sandboxId"]))
        assert set(one) == {"success", "sandbox"}
        assert check_sandbox(one["sandbox"])["sandboxId"] == a["sandboxId"]
        # A closed one of the project, by id: its status says so.
        one = assert_ok(stack.get("/api/iris/sandbox?sandboxId=" + closed["sandboxId"]))
        assert one["sandbox"]["status"] == "closed"

        theirs = stack.get("/api/iris/sandbox?sandboxId=" + b["sandboxId"])
        missing = stack.get("/api/iris/sandbox?sandboxId=" + MISSING)
        x = assert_error(theirs, 404, "sandbox_not_found")
        y = assert_error(missing, 404, "sandbox_not_found")
        assert x["error"] == y["error"]
        assert_error(stack.get("/api/iris/sandbox?sandboxId=bad%20id"), 400, "invalid_request",
                     field="sandboxId")
    finally:
        delete(stack, "?sandboxId=" + a["sandboxId"])
        delete(stack, "?sandboxId=" + b["sandboxId"], key=stack.key_beta)


# --- DELETE ------------------------------------------------------------------------


def test_delete_one(stack):
    sb = create(stack, {"sessionId": "rt-del"})
    sid = sb["sandboxId"]
    r = delete(stack, "?sandboxId=" + sid)
    body = assert_ok(r)
    assert body == {"success": True, "closed": [sid]}
    row = stack.sql("SELECT status, closed_at FROM sandboxes WHERE sandbox_id = ?", (sid,))[0]
    assert row["status"] == "closed" and TIME_RE.match(row["closed_at"])
    assert events(stack, sid) == ["created", "closed"]
    assert stack.provider_status(sid) == 404
    again = delete(stack, "?sandboxId=" + sid)
    missing = delete(stack, "?sandboxId=" + MISSING)
    a = assert_error(again, 404, "sandbox_not_found")
    b = assert_error(missing, 404, "sandbox_not_found")
    assert a["error"] == b["error"]
    # Its session starts afresh.
    r = stack.execute({"code": "print(globals().get('z'))", "sessionId": "rt-del"})
    new = assert_ran(r)["sandboxId"]
    assert new != sid
    delete(stack, "?sandboxId=" + new)


def test_delete_during_run(stack):
    """A session's sandbox closed while its code runs: the run is told at
    once that the sandbox and its state are gone (the provider cuts the
    answer off, and the sandbox no longer answers), not "the provider
    failed"; its row says so."""
    sid = create(stack, {"sessionId": "rt-cut"})["sandboxId"]
    r = stack.post("/api/iris/execute/stream", stream=True, timeout=120, json={
        "code": "print('go', flush=True)\nimport time\ntime.sleep(300)",
        "sessionId": "rt-cut", "timeout": 120})
    assert r.status_code == 200, r.text
    events, event = [], None
    for line in r.iter_lines(decode_unicode=True):
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            events.append((event, json.loads(line[6:])))
            if event == "stdout":
                assert_ok(delete(stack, "?sandboxId=" + sid))
    r.close()
    assert [e for e, _ in events].count("stdout") == 1, events
    (e1, err), (e2, done) = events[-2:]
    assert (e1, e2) == ("error", "done") and done["success"] is False, events
    assert err["code"] == "sandbox_not_found" and "state" in err["message"], err
    row = stack.sql("SELECT status, error_message FROM executions "
                    "WHERE sandbox_id = ? ORDER BY rowid DESC LIMIT 1", (sid,))[0]
    assert row["status"] == "upstream_error" and "lost" in row["error_message"], row

def test_delete_all(stack):
    mine = [create(stack, {"sessionId": "rt-all-%d" % i})["sandboxId"] for i in range(3)]
    theirs = create(stack, {"sessionId": "rt-all"}, key=stack.key_beta)["sandboxId"]
    try:
        live = {sb["sandboxId"] for sb in listed(stack)}
        assert set(mine) <= live
        r = delete(stack, "?all=true")
        body = assert_ok(r)
        assert set(body) == {"success", "closed"} and body["success"] is True
        assert sorted(body["closed"]) == sorted(live)
        assert listed(stack) == []
        for sid in mine:
            assert stack.provider_status(sid) == 404
            assert events(stack, sid)[-1] == "closed"
        # beta's is spared, and still works.
        assert stack.provider_status(theirs) == 200
        assert [sb["sandboxId"] for sb in listed(stack, key=stack.key_beta)] == [theirs]
        r = stack.execute({"code": "print('still here')", "sandboxId": theirs}, key=stack.key_beta)
        assert assert_ran(r)["result"]["output"] == "still here\n"
        # Nothing left: an empty list.
        assert assert_ok(delete(stack, "?all=true")) == {"success": True, "closed": []}
    finally:
        delete(stack, "?sandboxId=" + theirs, key=stack.key_beta)


@pytest.mark.parametrize("query,field", [
    ("", ...),
    ("?all=false", "all"),
    ("?all=1", "all"),
    ("?all=true&sandboxId=" + MISSING, ...),
    ("?sandboxId=bad%20id", "sandboxId"),
    ("?bogus=1", "bogus"),
])
def test_delete_invalid(stack, query, field):
    sb = create(stack)
    try:
        assert_error(delete(stack, query), 400, "invalid_request", field=field)
        assert stack.provider_status(sb["sandboxId"]) == 200
    finally:
        delete(stack, "?sandboxId=" + sb["sandboxId"])


# --- another project -----------------------------------------------------------------


def test_another_projects_sandbox_is_invisible_on_every_route(stack):
    sid = create(stack, {"sessionId": "rt-iso"}, key=stack.key_beta)["sandboxId"]
    try:
        assert_ran(stack.execute({"code": "v = 'beta'", "sandboxId": sid}, key=stack.key_beta))
        answers = {
            "execute": (stack.execute({"code": "print(v)", "sandboxId": sid}),
                        stack.execute({"code": "print(v)", "sandboxId": MISSING})),
            "stream": (stack.post("/api/iris/execute/stream", json={"code": "1", "sandboxId": sid}),
                       stack.post("/api/iris/execute/stream",
                                  json={"code": "1", "sandboxId": MISSING})),
            "get": (stack.get("/api/iris/sandbox?sandboxId=" + sid),
                    stack.get("/api/iris/sandbox?sandboxId=" + MISSING)),
            "delete": (delete(stack, "?sandboxId=" + sid), delete(stack, "?sandboxId=" + MISSING)),
        }
        for route, (theirs, missing) in answers.items():
            a = assert_error(theirs, 404, "sandbox_not_found")
            b = assert_error(missing, 404, "sandbox_not_found")
            assert a["error"] == b["error"], route
            assert sid not in theirs.text, route
        assert sid not in [sb["sandboxId"] for sb in listed(stack)]
        assert_ok(delete(stack, "?all=true"))
        # beta's sandbox is untouched by all of that.
        r = stack.execute({"code": "print(v)", "sandboxId": sid}, key=stack.key_beta)
        assert assert_ran(r)["result"]["output"] == "beta\n"
        row = stack.sql("SELECT status, executions FROM sandboxes WHERE sandbox_id = ?", (sid,))[0]
        assert row["status"] == "running" and row["executions"] == 2
    finally:
        delete(stack, "?sandboxId=" + sid, key=stack.key_beta)


# --- the project cap -------------------------------------------------------------------


def capped_stack(stack, name, cap="2", **env):
    return Stack(name=name, sandboxd=False, env=dict(
        stack.provider_env(), IRIS_PROJECT_SANDBOXES=cap, **env))


def test_cap_evicts_the_least_recently_used_idle_session(stack):
    """At the cap an idle session never blocks a call: the least recently
    used one is evicted, its next call is told so (409 session_evicted),
    and the one after that starts it afresh."""
    with capped_stack(stack, "sandbox-cap") as capped:
        a = create(capped, {"sessionId": "cap-1"})
        b = create(capped, {"sessionId": "cap-2"})
        assert_ran(capped.execute({"code": "x = 2", "sessionId": "cap-2"}))
        # cap-1 is the least recently used: a one-shot call takes its room.
        r = capped.execute({"code": "print(3)"})
        assert assert_ran(r)["result"]["output"] == "3\n"
        ended = capped.sql("SELECT status FROM sandboxes WHERE sandbox_id = ?",
                           (a["sandboxId"],))[0]
        assert ended["status"] == "closed"
        detail = capped.sql("SELECT detail FROM sandbox_events WHERE sandbox_id = ? "
                            "AND event = 'closed'", (a["sandboxId"],))[0]["detail"]
        assert detail.startswith("evicted:"), detail
        # Told once, plainly, with its own code; the row says it too.
        r = capped.execute({"code": "print(1)", "sessionId": "cap-1"})
        body = assert_error(r, 409, "session_evicted")
        assert body["error"]["field"] == "sessionId" and "evicted" in body["error"]["message"]
        row = capped.execution_row(r)
        assert row["status"] == "rejected" and row["error_name"] == "session_evicted"
        # Then afresh, in a new sandbox of its own.
        r = capped.execute({"code": "print('again')", "sessionId": "cap-1"})
        assert assert_ran(r)["result"]["output"] == "again\n"
        # cap-2 is now the least recently used: the next one-shot evicts it.
        assert_ran(capped.execute({"code": "print(4)"}))
        assert_error(capped.execute({"code": "x", "sessionId": "cap-2"}), 409,
                     "session_evicted")
        r = capped.execute({"code": "print('cap-1 kept')", "sessionId": "cap-1"})
        assert assert_ran(r)["result"]["output"] == "cap-1 kept\n"
        assert capped.sql("SELECT count(*) AS n FROM sandboxes WHERE project_id = 'alpha' "
                          "AND status = 'running'")[0]["n"] <= 2
        # Another project is not affected.
        r = capped.execute({"code": "print('beta')", "sessionId": "cap-3"}, key=capped.key_beta)
        assert assert_ran(r)["result"]["output"] == "beta\n"
        assert b["sandboxId"] != a["sandboxId"]
        assert_ok(delete(capped, "?all=true"))
        assert_ok(delete(capped, "?all=true", key=capped.key_beta))


def run_in_thread(fn):
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", fn()))
    t.start()
    return t, out


def wait_busy(capped, n, deadline_s=30):
    """Until n sandboxes of alpha are running code (busy_until set)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        rows = capped.sql("SELECT count(*) AS n FROM sandboxes WHERE project_id = 'alpha' "
                          "AND status = 'running' AND busy_until IS NOT NULL")
        if rows[0]["n"] >= n:
            return
        time.sleep(0.05)
    raise AssertionError("%d busy sandboxes never showed" % n)


def test_cap_queues_a_call_until_room_comes(stack):
    """Every sandbox running code: a call waits its turn instead of failing,
    and runs as soon as one is given back."""
    with capped_stack(stack, "sandbox-queue") as capped:
        runs = [run_in_thread(lambda i=i: capped.execute(
            {"code": "import time; time.sleep(2); print(%d)" % i, "sessionId": "busy-%d" % i}))
            for i in range(2)]
        wait_busy(capped, 2)
        t0 = time.monotonic()
        r = capped.execute({"code": "print('queued')", "timeout": 30})
        assert assert_ran(r)["result"]["output"] == "queued\n"
        assert time.monotonic() - t0 < 30
        for t, out in runs:
            t.join(60)
            assert assert_ran(out["r"])["result"]["success"]
        assert_ok(delete(capped, "?all=true"))


def test_a_session_running_code_is_never_evicted(stack):
    """A session with a long run under way stays busy while a shorter run
    of it (another language) ends: the idle session is the one evicted."""
    with capped_stack(stack, "sandbox-busy") as capped:
        assert_ran(capped.execute({"code": "x = 1", "sessionId": "long"}))
        t, out = run_in_thread(lambda: capped.execute(
            {"code": "import time; time.sleep(4); print(x)", "sessionId": "long"}))
        wait_busy(capped, 1)
        assert_ran(capped.execute({"code": "echo quick", "language": "bash",
                                   "sessionId": "long"}))
        assert_ran(capped.execute({"code": "y = 2", "sessionId": "idle"}))
        r = capped.execute({"code": "print('room')"})
        assert assert_ran(r)["result"]["output"] == "room\n"
        t.join(60)
        assert assert_ran(out["r"])["result"]["output"] == "1\n"
        assert_error(capped.execute({"code": "print(y)", "sessionId": "idle"}), 409,
                     "session_evicted")
        assert_ok(delete(capped, "?all=true"))


def test_cap_refuses_after_its_wait_with_retry_after(stack):
    """Busy to the end of the call's own timeout: 429 with Retry-After, and
    its executions row; the busy runs are untouched."""
    with capped_stack(stack, "sandbox-refuse", cap="1") as capped:
        t, out = run_in_thread(lambda: capped.execute(
            {"code": "import time; time.sleep(4); print('long')", "sessionId": "long"}))
        wait_busy(capped, 1)
        r = capped.execute({"code": "print(3)", "timeout": 1})
        body = assert_error(r, 429, "sandbox_limit")
        assert "1 live sandboxes" in body["error"]["message"]
        assert int(r.headers["Retry-After"]) >= 1
        row = capped.execution_row(r)
        assert row["status"] == "rejected" and row["error_name"] == "sandbox_limit"
        r = capped.post("/api/iris/sandbox", json={"sessionId": "other"})
        t.join(60)
        assert assert_ran(out["r"])["result"]["output"] == "long\n"
        assert_ok(delete(capped, "?all=true"))


def test_cap_full_queue_is_refused_at_once(stack):
    """With no room in the queue itself, the refusal is immediate."""
    with capped_stack(stack, "sandbox-noqueue", cap="1", IRIS_ADMISSION_QUEUE="0") as capped:
        t, out = run_in_thread(lambda: capped.execute(
            {"code": "import time; time.sleep(3)", "sessionId": "long"}))
        wait_busy(capped, 1)
        t0 = time.monotonic()
        r = capped.execute({"code": "print(3)", "timeout": 20})
        assert_error(r, 429, "sandbox_limit")
        assert r.headers["Retry-After"] == "1"
        assert time.monotonic() - t0 < 20
        t.join(60)
        assert_ok(delete(capped, "?all=true"))


# --- idle lifetime ------------------------------------------------------------------------


def test_idle_expiry(stack):
    sb = create(stack, {"timeout": 3, "sessionId": "rt-idle"})
    sid = sb["sandboxId"]
    assert round(epoch(sb["expiresAt"]) - epoch(sb["createdAt"])) == 3
    deadline = time.monotonic() + 3 + REAPER_PERIOD + 7
    while time.monotonic() < deadline:
        row = stack.sql("SELECT status FROM sandboxes WHERE sandbox_id = ?", (sid,))[0]
        if row["status"] != "running":
            break
        time.sleep(0.25)
    assert row["status"] == "expired", "still %s after %d s" % (row["status"],
                                                                3 + REAPER_PERIOD + 7)
    assert events(stack, sid) == ["created", "expired"]
    assert stack.provider_status(sid) == 404
    assert sid not in [x["sandboxId"] for x in listed(stack)]
    got = assert_ok(stack.get("/api/iris/sandbox?sandboxId=" + sid))["sandbox"]
    assert got["status"] == "expired"
    assert_error(stack.execute({"code": "1", "sandboxId": sid}), 404, "sandbox_not_found")
    # Its session gets a new sandbox.
    r = stack.execute({"code": "print(1)", "sessionId": "rt-idle"})
    assert assert_ran(r)["sandboxId"] != sid
    delete(stack, "?all=true")


def sweep_time(stack):
    """The monotonic time of one of the gateway's expiry sweeps (found by
    watching a sandbox with a 1 s lifetime end); the next are every 5 s."""
    sid = create(stack, {"timeout": 1})["sandboxId"]
    deadline = time.monotonic() + 1 + REAPER_PERIOD + 5
    while time.monotonic() < deadline:
        if stack.sql("SELECT status FROM sandboxes WHERE sandbox_id = ?",
                     (sid,))[0]["status"] == "expired":
            return time.monotonic()
        time.sleep(0.02)
    raise AssertionError("no expiry sweep in %d s" % (1 + REAPER_PERIOD + 5))


def test_session_sandbox_past_its_lifetime_is_expired_not_lost(stack):
    """Between the end of a sandbox's idle lifetime (the provider ends it
    then) and the gateway's next sweep, its session is treated as after
    the sweep: a new sandbox, and the old one recorded as expired -- not a
    404 for a 'lost' sandbox and a 'failed' row, depending on timing."""
    swept = sweep_time(stack)
    sid = create(stack, {"timeout": 2, "sessionId": "rt-past"})["sandboxId"]
    # The provider ends it by +3 s; the gateway sweeps again at +5 s.
    time.sleep(max(0, swept + 3.6 - time.monotonic()))
    r = stack.execute({"code": "print('fresh')", "sessionId": "rt-past"})
    try:
        body = assert_ran(r)
        assert body["sandboxId"] != sid and body["result"]["output"] == "fresh\n"
        time.sleep(max(0, swept + REAPER_PERIOD + 1 - time.monotonic()))
        row = stack.sql("SELECT status FROM sandboxes WHERE sandbox_id = ?", (sid,))[0]
        assert row["status"] == "expired"
        assert events(stack, sid) == ["created", "expired"]
    finally:
        delete(stack, "?all=true")


def test_run_longer_than_the_idle_lifetime_is_not_cut(stack):
    """A sandbox in use is not idle: a run that lasts longer than the
    sandbox's idle lifetime must not be killed by that lifetime."""
    sid = create(stack, {"timeout": 2, "sessionId": "rt-long"})["sandboxId"]
    r = stack.execute({"code": "import time\ntime.sleep(4)\nprint('finished')",
                       "sessionId": "rt-long", "timeout": 20})
    res = assert_ran(r)["result"]
    assert res["success"] is True and res["output"] == "finished\n", describe(r)
    assert res["metadata"]["sandboxId"] == sid
    delete(stack, "?all=true")
