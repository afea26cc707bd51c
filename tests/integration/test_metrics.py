"""GET /api/iris/metrics and GET /api/iris/executions: the key's project's
telemetry, checked against the database itself and for project scoping."""

import pytest

from conftest import Stack, assert_error, assert_ran, describe


@pytest.fixture(scope="module")
def stack():
    with Stack(name="metrics", sandboxd_env={"IRIS_SANDBOX_POOL": "2"}) as s:
        # alpha: one ok, one error, one timeout, one rejected, all in a session.
        for code, timeout in (("print(1)", 30), ("1/0", 30),
                              ("import time\ntime.sleep(5)", 1)):
            assert_ran(s.execute({"code": code, "sessionId": "m", "timeout": timeout}))
        assert s.execute({"code": 1}).status_code == 400
        yield s


def nearest_rank(values, p):
    values = sorted(values)
    k = max(1, -(-p * len(values) // 100))
    return values[k - 1]


def test_metrics_match_the_database(stack):
    r = stack.get("/api/iris/metrics")
    assert r.status_code == 200, describe(r)
    m = r.json()
    assert m["success"] is True and m["projectId"] == "alpha"
    rows = stack.sql("SELECT status, duration_ms, error_name FROM executions "
                     "WHERE project_id = 'alpha' AND created_at >= ?", (m["since"],))
    ran = [x for x in rows if x["status"] != "rejected"]
    assert m["executions"] == {
        "total": len(ran),
        "succeeded": sum(x["status"] == "ok" for x in ran),
        "failed": sum(x["status"] in ("error", "upstream_error") for x in ran),
        "timedOut": sum(x["status"] == "timeout" for x in ran),
    }, m
    assert m["executions"]["total"] == 3 and m["executions"]["timedOut"] == 1, m
    code_ran = [x for x in ran if x["status"] in ("ok", "error", "timeout")]
    assert m["successRate"] == pytest.approx(
        sum(x["status"] == "ok" for x in code_ran) / len(code_ran))
    assert m["successRate"] == pytest.approx(1 / 3)
    # The same figures as the operators' view.
    day = stack.sql("SELECT sum(succeeded) AS ok, sum(failed) AS error, "
                    "sum(timed_out) AS timeout FROM v_project_daily "
                    "WHERE project_id = 'alpha'")[0]
    assert (day["ok"], day["error"], day["timeout"]) == (
        m["executions"]["succeeded"], m["executions"]["failed"], m["executions"]["timedOut"])
    durations = [x["duration_ms"] for x in code_ran]
    for p in (50, 95, 99):
        assert m["executionTimeMs"]["p%d" % p] == nearest_rank(durations, p), m
    names = sorted((t["name"], t["count"]) for t in m["errorTypes"])
    assert names == [("TimeoutError", 1), ("ZeroDivisionError", 1)], m
    assert m["sandboxes"]["live"] == 1 and m["sandboxes"]["created"] >= 1, m


def test_metrics_are_the_keys_project_only(stack):
    m = stack.get("/api/iris/metrics", key=stack.key_beta).json()
    assert m["projectId"] == "beta"
    assert m["executions"] == {"total": 0, "succeeded": 0, "failed": 0, "timedOut": 0}, m
    assert m["successRate"] is None and m["errorTypes"] == []
    assert m["executionTimeMs"] == {"p50": None, "p95": None, "p99": None}


def test_metrics_since(stack):
    m = stack.get("/api/iris/metrics?since=2999-01-01").json()
    assert m["since"] == "2999-01-01T00:00:00.000Z" and m["executions"]["total"] == 0, m
    m = stack.get("/api/iris/metrics?since=2000-01-01T00:00:00.000Z").json()
    assert m["executions"]["total"] == 3, m


@pytest.mark.parametrize("query,field", [
    ("since=yesterday", "since"), ("since=2026-13-01", "since"), ("since=", "since"),
    ("foo=1", "foo"),
])
def test_metrics_bad_parameters(stack, query, field):
    assert_error(stack.get("/api/iris/metrics?" + query), 400, "invalid_request", field)


def test_executions_newest_first_and_paged(stack):
    rows = stack.sql("SELECT execution_id FROM executions WHERE project_id = 'alpha' "
                     "ORDER BY created_at DESC, execution_id DESC")
    want = [x["execution_id"] for x in rows]
    assert len(want) == 4
    got, before = [], None
    while True:
        q = "/api/iris/executions?limit=3" + ("&before=" + before if before else "")
        body = stack.get(q).json()
        assert body["success"] is True, body
        got += [e["executionId"] for e in body["executions"]]
        before = body["next"]
        if before is None:
            break
    assert got == want
    first = stack.get("/api/iris/executions?limit=1").json()["executions"][0]
    assert set(first) == {"executionId", "createdAt", "sessionId", "sandboxId", "language",
                          "status", "errorName", "durationMs", "codeBytes"}
    assert first["status"] == "rejected" and "code" not in first


def test_executions_filters(stack):
    body = stack.get("/api/iris/executions?sessionId=m&status=error").json()
    assert [e["errorName"] for e in body["executions"]] == ["ZeroDivisionError"], body
    body = stack.get("/api/iris/executions?sessionId=nobody").json()
    assert body == {"success": True, "executions": [], "next": None}


def test_executions_are_the_keys_project_only(stack):
    body = stack.get("/api/iris/executions", key=stack.key_beta).json()
    assert body["executions"] == [], body
    alpha_id = stack.get("/api/iris/executions?limit=1").json()["executions"][0]["executionId"]
    # Another project's id is no page marker here.
    assert_error(stack.get("/api/iris/executions?before=" + alpha_id, key=stack.key_beta),
                 400, "invalid_request", "before")


@pytest.mark.parametrize("query,field", [
    ("limit=0", "limit"), ("limit=201", "limit"), ("limit=x", "limit"), ("limit=1.5", "limit"),
    ("before=nope", "before"), ("before=ex_" + "0" * 26, "before"),
    ("sessionId=a%20b", "sessionId"), ("status=failed", "status"), ("bogus=1", "bogus"),
])
def test_executions_bad_parameters(stack, query, field):
    assert_error(stack.get("/api/iris/executions?" + query), 400, "invalid_request", field)
