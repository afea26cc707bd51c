"""The audit log: one row per request that reached the gateway, written
before the answer left, found by the X-Request-Id of the answer."""

import datetime
import secrets

from conftest import TIME_RE, assert_error, assert_ok, describe, key_id


def parse_time(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)


def check_row(stack, r, method, route, status, error_code, key):
    row = stack.audit_row(r)
    assert row["method"] == method, dict(row)
    assert row["route"] == route, dict(row)
    assert row["status"] == status == r.status_code, (dict(row), describe(r))
    assert row["error_code"] == error_code, dict(row)
    if key is None:
        assert row["key_id"] is None and row["project_id"] is None, dict(row)
    else:
        assert row["key_id"] == key_id(key), dict(row)
    assert row["client_addr"] == "127.0.0.1", dict(row)
    assert isinstance(row["duration_ms"], int) and 0 <= row["duration_ms"] < 10000, dict(row)
    assert TIME_RE.match(row["created_at"]), dict(row)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - parse_time(row["created_at"])).total_seconds()) < 60, dict(row)
    return row


def test_health_is_audited(stack):
    r = stack.get("/api/iris/health", key=None)
    assert r.status_code == 200
    check_row(stack, r, "GET", "/api/iris/health", 200, None, None)


def test_success_names_key_and_project(stack):
    r = stack.get("/api/iris/sandbox")
    assert_ok(r)
    row = check_row(stack, r, "GET", "/api/iris/sandbox", 200, None, stack.key)
    assert row["project_id"] == "alpha"
    r = stack.get("/api/iris/sandbox", key=stack.key_beta)
    row = check_row(stack, r, "GET", "/api/iris/sandbox", 200, None, stack.key_beta)
    assert row["project_id"] == "beta"


def test_route_has_no_query_string(stack):
    r = stack.get("/api/iris/sandbox?sandboxId=abc")
    assert_error(r, 404, "sandbox_not_found")
    check_row(stack, r, "GET", "/api/iris/sandbox", 404, "sandbox_not_found", stack.key)


def test_refusals_are_audited(stack):
    cases = [
        (stack.get("/api/iris/sandbox", key=None), "GET", "/api/iris/sandbox", 401,
         "unauthorized", None),
        (stack.get("/api/iris/sandbox", key="iris_%s_%s" % (key_id(stack.key), "f" * 48)),
         "GET", "/api/iris/sandbox", 401, "unauthorized", None),
        (stack.get("/api/iris/nope"), "GET", "/api/iris/nope", 404, "not_found", stack.key),
        (stack.request("PUT", "/api/iris/sandbox"), "PUT", "/api/iris/sandbox", 405,
         "method_not_allowed", stack.key),
        (stack.request("DELETE", "/api/iris/sandbox"), "DELETE", "/api/iris/sandbox", 400,
         "invalid_request", stack.key),
        (stack.execute({"code": 1}), "POST", "/api/iris/execute", 400, "invalid_request",
         stack.key),
        (stack.execute(b"{"), "POST", "/api/iris/execute", 400, "invalid_json", stack.key),
        (stack.execute({"code": "1"}, content_type="text/plain"), "POST", "/api/iris/execute",
         415, "unsupported_media_type", stack.key),
        (stack.execute({"code": "1", "projectId": "beta"}), "POST", "/api/iris/execute", 403,
         "project_mismatch", stack.key),
        (stack.execute({"code": "1"}), "POST", "/api/iris/execute", 200, None,
         stack.key),
        (stack.request("PUT", "/api/iris/health", key=None), "PUT", "/api/iris/health", 405,
         "method_not_allowed", ...),
    ]
    for r, method, route, status, code, key in cases:
        if key is ...:  # no key sent; whether the row names one is moot
            row = stack.audit_row(r)
            assert (row["method"], row["route"], row["status"], row["error_code"]) == \
                (method, route, status, code), dict(row)
        else:
            check_row(stack, r, method, route, status, code, key)


def test_rate_limited_is_audited(stack):
    k = stack.create_key("alpha", rate=1, window=3600)
    assert stack.get("/api/iris/sandbox", key=k).status_code == 200
    r = stack.get("/api/iris/sandbox", key=k)
    assert_error(r, 429, "rate_limited")
    row = check_row(stack, r, "GET", "/api/iris/sandbox", 429, "rate_limited", k)
    assert row["project_id"] == "alpha"


def test_one_row_per_request(stack):
    before = stack.sql("SELECT count(*) FROM audit_log")[0][0]
    ids = []
    for i in range(30):
        r = [lambda: stack.get("/api/iris/sandbox"),
             lambda: stack.get("/api/iris/nope"),
             lambda: stack.get("/api/iris/health", key=None),
             lambda: stack.get("/api/iris/sandbox", key=None),
             lambda: stack.execute({"code": "x"})][i % 5]()
        ids.append(r.headers.get("X-Request-Id"))
    assert all(ids) and len(set(ids)) == len(ids), ids
    after = stack.sql("SELECT count(*) FROM audit_log")[0][0]
    assert after - before == 30
    for rid in ids:
        assert len(stack.audit_rows(rid)) == 1, rid


def test_request_ids_are_unique_across_runs(stack):
    ids = {stack.get("/api/iris/health", key=None).headers["X-Request-Id"] for _ in range(50)}
    assert len(ids) == 50
    dup = stack.sql("SELECT request_id FROM audit_log GROUP BY request_id HAVING count(*) > 1")
    assert not dup, [tuple(d) for d in dup]


def test_client_request_id_is_not_trusted(stack):
    fake = "req_" + secrets.token_hex(8)
    r = stack.get("/api/iris/sandbox", headers={"X-Request-Id": fake})
    assert r.headers.get("X-Request-Id") != fake, describe(r)
    assert not stack.audit_rows(fake)
