"""The front door: health, routing, methods, media types, sizes, request
validation and authentication, through nginx, as api.md describes them."""

import json
import secrets

import pytest

from conftest import (NGINX_TOO_LARGE, Stack, assert_error, assert_json_type, assert_ran,
                      assert_ok, describe, key_hash, key_id)

MIB = 1024 * 1024
MAX_CODE = 102400


# --- health ---

def test_health_needs_no_key(stack):
    r = stack.get("/api/iris/health", key=None)
    body = assert_ok(r)
    assert body["status"] == "ok", describe(r)
    assert body["version"] == "0.1.0", describe(r)
    assert body["checks"]["database"] == "ok", describe(r)


def test_health_reveals_no_configuration(stack):
    r = stack.get("/api/iris/health", key=None)
    text = r.text
    assert str(stack.dir) not in text and "sqlite" not in text.lower(), describe(r)
    assert set(r.json()) <= {"status", "version", "checks"}, describe(r)


def test_security_headers_on_success_and_error(stack):
    for r in (stack.get("/api/iris/health", key=None),
              stack.get("/api/iris/nope"),
              stack.get("/api/iris/sandbox", key=None)):
        assert r.headers.get("X-Content-Type-Options") == "nosniff", describe(r)
        assert r.headers.get("X-Frame-Options") == "DENY", describe(r)
        assert r.headers.get("Referrer-Policy") == "no-referrer", describe(r)
        csp = r.headers.get("Content-Security-Policy", "")
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, describe(r)
        # server_tokens off: no version.
        assert r.headers.get("Server", "nginx") == "nginx", describe(r)


# --- routing ---

def test_sandbox_list_is_empty(stack):
    r = stack.get("/api/iris/sandbox")
    assert assert_ok(r) == {"success": True, "sandboxes": []}, describe(r)


def test_sandbox_list_with_x_api_key(stack):
    r = stack.get("/api/iris/sandbox", header="X-API-Key")
    assert assert_ok(r) == {"success": True, "sandboxes": []}, describe(r)


def test_unknown_sandbox(stack):
    assert_error(stack.get("/api/iris/sandbox?sandboxId=abc"), 404, "sandbox_not_found")


def test_longest_valid_sandbox_id_is_looked_up(stack):
    sid = "A-z.0_9:" * 16  # 128 characters, every kind the rule allows
    assert_error(stack.get("/api/iris/sandbox", params={"sandboxId": sid}),
                 404, "sandbox_not_found")


@pytest.mark.parametrize("bad", ["a b", "x" * 129, "x" * 200, "", "a/b", "a;b", "é", "a\tb",
                                 "a+b", "<script>"])
def test_bad_sandbox_id(stack, bad):
    r = stack.get("/api/iris/sandbox", params={"sandboxId": bad})
    assert_error(r, 400, "invalid_request", "sandboxId")


def test_unknown_query_parameter(stack):
    assert_error(stack.get("/api/iris/sandbox?foo=1"), 400, "invalid_request", "foo")


def test_repeated_query_parameter(stack):
    r = stack.get("/api/iris/sandbox?sandboxId=a&sandboxId=b")
    body = assert_error(r, 400, "invalid_request")
    assert body["error"].get("field") in (None, "sandboxId"), describe(r)


@pytest.mark.parametrize("path", ["/api/iris/nope", "/api/iris/health/", "/api/iris/",
                                  "/api/iris/sandbox/abc", "/api/iris/execute/",
                                  "/api/iris/HEALTH", "/api/iris/execute/x"])
def test_unknown_route(stack, path):
    assert_error(stack.get(path), 404, "not_found")


@pytest.mark.parametrize("path", ["/api/iris", "/api/other", "/api/"])
def test_api_paths_outside_the_gateway_are_json_404(stack, path):
    r = stack.get(path)
    assert_error(r, 404, "not_found", gateway=False)


@pytest.mark.parametrize("method,path,allow", [
    ("PUT", "/api/iris/sandbox", "GET,POST,DELETE"),
    ("PUT", "/api/iris/health", "GET"),
    ("POST", "/api/iris/health", "GET"),
    ("DELETE", "/api/iris/health", "GET"),
    ("GET", "/api/iris/execute", "POST"),
    ("PUT", "/api/iris/execute", "POST"),
])
def test_method_not_allowed(stack, method, path, allow):
    r = stack.request(method, path)
    assert_error(r, 405, "method_not_allowed")
    assert r.headers.get("Allow", "").replace(" ", "") == allow, describe(r)


def test_stream_route_reaches_the_gateway(stack):
    # nginx's stream location passes it on; the gateway answers events.
    r = stack.post("/api/iris/execute/stream", json={"code": "print(1)"})
    assert r.status_code == 200 and r.headers.get("X-Request-Id"), describe(r)
    assert r.headers["Content-Type"].startswith("text/event-stream"), describe(r)
    assert "event: done" in r.text, describe(r)


# --- POST /api/iris/execute: media type and sizes ---

@pytest.mark.parametrize("ctype", ["application/json", "application/json; charset=utf-8",
                                   "application/json;charset=utf-8"])
def test_execute_valid_request_runs(stack, ctype):
    r = stack.execute({"code": "print(1)"}, content_type=ctype)
    assert assert_ran(r)["result"]["output"] == "1\n", describe(r)


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded",
                                   "application/jsonx", "multipart/form-data; boundary=x",
                                   "application/json; charset=latin-1", "json"])
def test_execute_needs_json_media_type(stack, ctype):
    r = stack.execute({"code": "print(1)"}, content_type=ctype)
    assert_error(r, 415, "unsupported_media_type")


def test_body_over_one_mib_is_refused_by_nginx(stack):
    before = stack.sql("SELECT count(*) FROM audit_log")[0][0]
    r = stack.execute(b"x" * (MIB + 1))
    assert_error(r, 413, "payload_too_large", gateway=False)
    assert r.json() == NGINX_TOO_LARGE, describe(r)
    # It never reached the gateway, so it left no audit row.
    assert stack.sql("SELECT count(*) FROM audit_log")[0][0] == before


def test_chunked_body_over_one_mib_is_refused_by_nginx(stack):
    def chunks():
        for _ in range(20):
            yield b"x" * 65536
    r = stack.execute(chunks())
    assert_error(r, 413, "payload_too_large", gateway=False)


def test_chunked_body_reaches_the_gateway_whole(stack):
    payload = json.dumps({"code": "print(1)", "context": {"pad": "y" * 200000}}).encode()

    def chunks():
        for i in range(0, len(payload), 4096):
            yield payload[i:i + 4096]
    assert_ran(stack.execute(chunks()))


def test_body_of_exactly_one_mib_reaches_the_gateway(stack):
    # The body is accepted; the code in it is what is too large.
    prefix, suffix = b'{"code":"', b'"}'
    body = prefix + b"x" * (MIB - len(prefix) - len(suffix)) + suffix
    assert len(body) == MIB
    assert_error(stack.execute(body), 413, "code_too_large")


def test_code_at_the_limit(stack):
    assert_ran(stack.execute({"code": "#" * MAX_CODE}))


def test_code_over_the_limit(stack):
    assert_error(stack.execute({"code": "#" * (MAX_CODE + 1)}), 413, "code_too_large")


def test_code_limit_counts_bytes(stack):
    # 51201 two-byte characters: 102402 bytes.
    assert_error(stack.execute({"code": "é" * 51201}), 413, "code_too_large")


def test_gateway_body_cap():
    # The code cap may not exceed the body cap (the gateway refuses to start).
    with Stack(name="small-body", env={"IRIS_MAX_BODY": "4096", "IRIS_MAX_CODE": "1024"}) as s:
        r = s.execute(b'{"code":"' + b"x" * 4985 + b'"}')
        assert len(r.request.body) == 4996
        assert_error(r, 413, "payload_too_large")  # with requestId: the gateway's
        assert_ran(s.execute({"code": "1", "context": {"pad": "y" * 3900}}))


# --- POST /api/iris/execute: the body ---

@pytest.mark.parametrize("body", [
    b"", b" ", b"not json", b"[]", b"1", b'"code"', b"null", b"true", b"{", b'{"code":',
    b'{"code":"1"} x', b'{"code":"1"}{}', b'{"code":"1",}', b"{'code':'1'}",
    b'{"code":"\xff"}', b'{"code":"\xc0\xaf"}', b'\xef\xbb\xbf\xff{}', b'{code:"1"}',
    b'{"code":"1"' + b" " * 10,
], ids=lambda b: repr(b)[:40])
def test_invalid_json(stack, body):
    assert_error(stack.execute(body), 400, "invalid_json")


def nested(depth):
    """{"code":"1","context":{"a":{"a":...}}} with depth objects in all."""
    inner = "{}"
    for _ in range(depth - 2):
        inner = '{"a":%s}' % inner
    return ('{"code":"1","context":%s}' % inner).encode()


def test_nesting_over_32_is_invalid_json(stack):
    assert_error(stack.execute(nested(40)), 400, "invalid_json")


def test_moderate_nesting_is_fine(stack):
    assert_ran(stack.execute(nested(8)))


def test_trailing_whitespace_is_not_garbage(stack):
    assert_ran(stack.execute(b' {"code":"1"}\r\n\t '))


S = "print(1)"


@pytest.mark.parametrize("body,field", [
    ({}, "code"),
    ({"language": "python"}, "code"),
    ({"code": 1}, "code"),
    ({"code": ""}, "code"),
    ({"code": None}, "code"),
    ({"code": ["print(1)"]}, "code"),
    ({"code": {"a": 1}}, "code"),
    ({"code": True}, "code"),
    ({"code": S, "language": "ruby"}, "language"),
    ({"code": S, "language": ""}, "language"),
    ({"code": S, "language": 1}, "language"),
    ({"code": S, "language": ["python"]}, "language"),
    ({"code": S, "timeout": 0}, "timeout"),
    ({"code": S, "timeout": 301}, "timeout"),
    ({"code": S, "timeout": -1}, "timeout"),
    ({"code": S, "timeout": 1.5}, "timeout"),
    ({"code": S, "timeout": "30"}, "timeout"),
    ({"code": S, "timeout": True}, "timeout"),
    ({"code": S, "timeout": 10 ** 20}, "timeout"),
    ({"code": S, "projectId": ""}, "projectId"),
    ({"code": S, "projectId": "a b"}, "projectId"),
    ({"code": S, "projectId": "x" * 129}, "projectId"),
    ({"code": S, "projectId": 5}, "projectId"),
    ({"code": S, "sessionId": ""}, "sessionId"),
    ({"code": S, "sessionId": "a/b"}, "sessionId"),
    ({"code": S, "sessionId": "x" * 129}, "sessionId"),
    ({"code": S, "sessionId": 7}, "sessionId"),
    ({"code": S, "sandboxId": ""}, "sandboxId"),
    ({"code": S, "sandboxId": "é"}, "sandboxId"),
    ({"code": S, "sandboxId": "x" * 200}, "sandboxId"),
    ({"code": S, "sandboxId": []}, "sandboxId"),
    ({"code": S, "envVars": {"A": 1}}, "envVars"),
    ({"code": S, "envVars": {"A": None}}, "envVars"),
    ({"code": S, "envVars": {"A": ["x"]}}, "envVars"),
    ({"code": S, "envVars": []}, "envVars"),
    ({"code": S, "envVars": "A=1"}, "envVars"),
    ({"code": S, "envVars": {"1A": "x"}}, "envVars"),
    ({"code": S, "envVars": {"A-B": "x"}}, "envVars"),
    ({"code": S, "envVars": {"": "x"}}, "envVars"),
    ({"code": S, "envVars": {"A B": "x"}}, "envVars"),
    ({"code": S, "envVars": {"A=B": "x"}}, "envVars"),
    ({"code": S, "packages": "numpy"}, "packages"),
    ({"code": S, "packages": [1]}, "packages[0]"),
    ({"code": S, "packages": {}}, "packages"),
    ({"code": S, "packages": [["numpy"]]}, "packages[0]"),
    ({"code": S, "packages": ["numpy", "a b"]}, "packages[1]"),
    ({"code": "1", "foo": 1}, "foo"),
    ({"code": "1", "Language": "python"}, "Language"),
], ids=lambda v: json.dumps(v)[:60] if isinstance(v, dict) else str(v))
def test_invalid_field(stack, body, field):
    assert_error(stack.execute(body), 400, "invalid_request", field)


@pytest.mark.parametrize("extra", [
    {"language": "python"}, {"language": "javascript"}, {"language": "js"},
    {"language": "bash"}, {"timeout": 1}, {"timeout": 300},
    {"projectId": "alpha"}, {"sessionId": "s-1.a:b_C"}, {"sessionId": "x" * 128},
    {"context": {}}, {"context": {"a": [1, {"b": None}]}}, {"context": [{"age": 45}]},
    {"context": "x"}, {"context": []}, {"context": 1}, {"context": 2.5}, {"context": False},
    {"envVars": {}}, {"envVars": {"A_1": "x", "_b": "", "Z": "é"}},
    {"packages": []}, {"packages": ["numpy"]},
], ids=lambda v: json.dumps(v)[:60])
def test_valid_fields_pass_validation(stack, extra):
    body = {"code": S}
    body.update(extra)
    assert_ran(stack.execute(body))


def test_project_mismatch(stack):
    assert_error(stack.execute({"code": S, "projectId": "beta"}), 403, "project_mismatch")
    assert_error(stack.execute({"code": S, "projectId": "no-such-project"}), 403,
                 "project_mismatch")
    # The other project's key is refused the first project the same way.
    assert_error(stack.execute({"code": S, "projectId": "alpha"}, key=stack.key_beta), 403,
                 "project_mismatch")


# --- authentication ---

def unauthorized(stack, r):
    body = assert_error(r, 401, "unauthorized")
    assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), describe(r)
    return body["error"]


def test_auth_failures_look_alike(stack):
    real_id = key_id(stack.key)
    revoked = stack.create_key("alpha")
    stack.admin("key", "revoke", key_id(revoked))
    unknown = "iris_%s_%s" % (secrets.token_hex(8), secrets.token_hex(24))
    wrong_secret = "iris_%s_%s" % (real_id, secrets.token_hex(24))
    cases = {
        "missing": dict(key=None),
        "unknown": dict(key=unknown),
        "wrong secret": dict(key=wrong_secret),
        "revoked": dict(key=revoked),
        "malformed": dict(key="abc"),
        "empty": dict(key=""),
        "prefix only": dict(key="iris_"),
        "upper-case hex": dict(key=stack.key.upper().replace("IRIS_", "iris_")),
        "key plus junk": dict(key=stack.key + "x"),
        "x-api-key unknown": dict(key=unknown, header="X-API-Key"),
        "x-api-key revoked": dict(key=revoked, header="X-API-Key"),
        "wrong scheme": dict(key=None, headers={"Authorization": "Basic " + stack.key}),
        "no scheme": dict(key=None, headers={"Authorization": stack.key}),
    }
    errors = {}
    for name, kw in cases.items():
        r = stack.get("/api/iris/sandbox", **kw)
        assert r.status_code == 401, "%s: %s" % (name, describe(r))
        err = unauthorized(stack, r)
        errors[name] = (err["code"], err["message"], err.get("field"))
    assert len(set(errors.values())) == 1, errors


def test_auth_checked_on_every_keyed_route(stack):
    unauthorized(stack, stack.get("/api/iris/sandbox", key=None))
    unauthorized(stack, stack.get("/api/iris/sandbox?sandboxId=abc", key=None))
    unauthorized(stack, stack.execute({"code": "1"}, key=None))
    # Authentication comes before validation: nothing about the body leaks.
    unauthorized(stack, stack.execute(b"not json", key=None))


def test_revoke_by_key_and_by_id(stack):
    by_id = stack.create_key("alpha")
    by_key = stack.create_key("alpha")
    for k in (by_id, by_key):
        assert_ok(stack.get("/api/iris/sandbox", key=k))
    stack.admin("key", "revoke", key_id(by_id))
    stack.admin("key", "revoke", by_key)
    for k in (by_id, by_key):
        unauthorized(stack, stack.get("/api/iris/sandbox", key=k))
    assert_ok(stack.get("/api/iris/sandbox"))  # the others still work


def test_keys_are_stored_hashed(stack):
    k = stack.create_key("alpha", name="hashed")
    kid = key_id(k)
    secret = k.rsplit("_", 1)[1]
    rows = stack.sql("SELECT * FROM api_keys WHERE key_id = ?", (kid,))
    assert len(rows) == 1
    row = dict(rows[0])
    assert row["project_id"] == "alpha"
    assert row["key_hash"] == key_hash(k)
    for col, value in row.items():
        if isinstance(value, str):
            assert secret not in value, "column %s holds the secret" % col


def test_key_list_shows_ids_not_secrets(stack):
    k = stack.create_key("alpha", name="listed")
    out = stack.admin("key", "list")
    assert key_id(k) in out, out
    assert k.rsplit("_", 1)[1] not in out, "key list prints the secret"


def test_health_ignores_a_bad_key(stack):
    r = stack.get("/api/iris/health", key="nonsense")
    assert assert_ok(r)["status"] == "ok"
