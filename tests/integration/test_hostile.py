"""Hostile input: each gets a 4xx in our JSON envelope, and the gateway is
still healthy afterwards (checked after every test)."""

import json
import random

import pytest

from conftest import assert_error, assert_json_type, describe, raw_http

S = "print(1)"


@pytest.fixture(autouse=True)
def still_healthy(stack):
    yield
    for i, p in enumerate(stack.gateways):
        assert p.poll() is None, "gateway %d died (status %s)\n%s" % (
            i, p.returncode, stack.log_tails())
    assert stack.healthy(), stack.log_tails()


def envelope(r, statuses):
    """r is one of statuses, in our envelope; returns the error object."""
    assert r.status_code in statuses, describe(r)
    assert_json_type(r)
    body = r.json()
    assert body["success"] is False and body["error"]["code"], describe(r)
    return body["error"]


# --- bodies ---

def test_random_bytes(stack):
    rng = random.Random(1)
    for size in (1, 7, 100, 4096, 65536):
        body = bytes(rng.randrange(256) for _ in range(size))
        assert_error(stack.execute(body), 400, "invalid_json")


def test_random_printable_garbage(stack):
    rng = random.Random(2)
    alphabet = '{}[]":,\\ 0123456789truefalsenull'
    for _ in range(40):
        body = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 200)))
        r = stack.execute(body)
        # Rarely the garbage is valid JSON; then it is answered for what it is.
        envelope(r, (400,))


def test_raw_nul_bytes(stack):
    assert_error(stack.execute(b'{"code":"a\x00b"}'), 400, "invalid_json")
    assert_error(stack.execute(b'\x00{"code":"1"}'), 400, "invalid_json")
    assert_error(stack.execute(b'{"code":"1"}\x00'), 400, "invalid_json")
    assert_error(stack.execute(b"\x00" * 1000), 400, "invalid_json")


def test_escaped_nul_where_names_must_be_clean(stack):
    for body, field in [
        ({"code": S, "sessionId": "a\u0000b"}, "sessionId"),
        ({"code": S, "projectId": "alpha\u0000"}, "projectId"),
        ({"code": S, "language": "python\u0000"}, "language"),
        ({"code": S, "envVars": {"A": "x\u0000y"}}, "envVars"),
    ]:
        assert_error(stack.execute(body), 400, "invalid_request", field)


def test_escaped_nul_in_names(stack):
    # json-c keeps object keys as C strings, cut at the NUL: "A\u0000B" would
    # become a variable named "A".  Whatever the code, it must be refused.
    for body in [{"code": S, "envVars": {"A\u0000B": "x"}}, {"code": S, "co\u0000de": "1"},
                 {"code\u0000x": S}]:
        r = stack.execute(body)
        assert envelope(r, (400,))["code"] in ("invalid_request", "invalid_json"), describe(r)


def test_escaped_nul_in_code(stack):
    # Valid JSON; whether code may hold NUL is the gateway's call, but the
    # answer is ours and nothing is cut at the NUL silently into success.
    r = stack.execute({"code": "print(1)\u0000rm -rf /"})
    envelope(r, (400, 503))


def test_invalid_utf8_everywhere(stack):
    for body in [b'{"code":"\x80"}', b'{"code":"a\xed\xa0\x80b"}', b'{"\xfe":"1"}',
                 b'{"code":"1","sessionId":"\xc3"}', b'{"code":"\xf4\x90\x80\x80"}']:
        assert_error(stack.execute(body), 400, "invalid_json")


def test_lone_surrogate_escapes(stack):
    for body in [b'{"code":"\\ud800"}', b'{"code":"1","sessionId":"\\udc00"}']:
        envelope(stack.execute(body), (400,))


def test_duplicate_fields(stack):
    envelope(stack.execute(b'{"code":"1","code":2}'), (400, 503))


def test_non_finite_numbers(stack):
    for body in [b'{"code":"1","timeout":NaN}', b'{"code":"1","timeout":Infinity}',
                 b'{"code":"1","timeout":-Infinity}', b'{"code":"1","timeout":1e999}']:
        envelope(stack.execute(body), (400,))


@pytest.mark.parametrize("depth", [33, 1000, 10000])
def test_deep_nesting(stack, depth):
    assert_error(stack.execute(b"[" * depth), 400, "invalid_json")
    assert_error(stack.execute(b'{"code":"1","context":' + b'{"a":' * depth), 400,
                 "invalid_json")
    closed = b'{"code":"1","context":' + b'{"a":' * depth + b"1" + b"}" * (depth + 1)
    assert_error(stack.execute(closed), 400, "invalid_json")


def test_many_fields(stack):
    body = {"code": S}
    body.update({"f%d" % i: i for i in range(5000)})
    r = stack.execute(body)
    assert_error(r, 400, "invalid_request")


def test_huge_strings_in_other_fields(stack):
    big = "x" * 500000
    assert_error(stack.execute({"code": S, "sessionId": big}), 400, "invalid_request",
                 "sessionId")
    assert_error(stack.execute({"code": S, "language": big}), 400, "invalid_request",
                 "language")


WRONG = {"null": None, "true": True, "int": 1, "float": 1.5, "string": "s",
         "array": [], "object": {}}
ALLOWED = {
    "code": ("string",),
    "language": ("string", "null"),
    "timeout": ("int", "null"),
    "projectId": ("string", "null"),
    "sessionId": ("string", "null"),
    "sandboxId": ("string", "null"),
    "context": tuple(WRONG),  # any JSON value
    "envVars": ("object", "null"),
    "packages": ("array", "null"),
}


@pytest.mark.parametrize("field,kind", [
    (f, k) for f, ok in ALLOWED.items() for k in WRONG if k not in ok])
def test_wrong_type(stack, field, kind):
    body = {"code": S}
    body[field] = WRONG[kind]
    assert_error(stack.execute(body), 400, "invalid_request", field)


# --- query strings ---

def test_very_long_query_string(stack):
    # Long, but within nginx's 8 KiB request line: the gateway's to refuse.
    r = stack.get("/api/iris/sandbox?sandboxId=" + "a" * 7000)
    assert_error(r, 400, "invalid_request", "sandboxId")
    r = stack.get("/api/iris/sandbox?" + "&".join("p%d=1" % i for i in range(1000)))
    assert_error(r, 400, "invalid_request")
    # Past it: nginx's, still JSON.
    r = stack.get("/api/iris/sandbox?sandboxId=" + "a" * 20000)
    assert_error(r, 414, "invalid_request", gateway=False)


@pytest.mark.parametrize("query", [
    "sandboxId=%zz", "sandboxId=%", "sandboxId=%0", "sandboxId=%00", "sandboxId=a%00b",
    "sandboxId=%E9", "sandboxId=%C3", "sandboxId=%2", "sandboxId=a%20b",
])
def test_percent_garbage_in_values(stack, query):
    r = stack.get("/api/iris/sandbox?" + query)
    err = assert_error(r, 400, "invalid_request")["error"]
    assert err.get("field") in (None, "sandboxId"), describe(r)


@pytest.mark.parametrize("query", ["%zz=1", "%00=1", "sand%00boxId=a", "=1", "%=%"])
def test_percent_garbage_in_names(stack, query):
    assert_error(stack.get("/api/iris/sandbox?" + query), 400, "invalid_request")


# --- headers ---

def test_one_huge_header(stack):
    r = stack.get("/api/iris/sandbox", headers={"X-Big": "a" * 20000})
    assert_error(r, 400, "invalid_request", gateway=False)


def test_too_many_header_bytes(stack):
    headers = {"X-H%d" % i: "b" * 1000 for i in range(40)}
    r = stack.get("/api/iris/sandbox", headers=headers)
    assert_error(r, 400, "invalid_request", gateway=False)


def test_huge_authorization(stack):
    r = stack.get("/api/iris/sandbox", key="iris_" + "a" * 7000)
    assert_error(r, 401, "unauthorized")


def test_nul_in_a_header(stack):
    status, headers, body = raw_http(
        stack.port, b"GET /api/iris/sandbox HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n"
        b"Connection: close\r\n\r\n")
    assert status == 400, body
    assert json.loads(body)["error"]["code"] == "invalid_request", body


@pytest.mark.parametrize("request_line", [
    b"get /api/iris/health HTTP/1.1", b"GARBAGE", b"\x00\x01\x02\xff",
    b"GET /api/iris/%00 HTTP/1.1", b"GET /api/iris/health HTTP/9.9",
], ids=repr)
def test_malformed_request_lines(stack, request_line):
    status, headers, body = raw_http(stack.port, request_line + b"\r\nHost: x\r\n"
                                     b"Connection: close\r\n\r\n")
    assert status == 400, (status, body)
    assert headers.get("content-type", "").replace(" ", "") == "application/json;charset=utf-8"
    assert json.loads(body)["error"]["code"] == "invalid_request", body


# --- methods ---

@pytest.mark.parametrize("method,path,allow", [
    ("PATCH", "/api/iris/execute", "POST"),
    ("OPTIONS", "/api/iris/execute", "POST"),
    ("PATCH", "/api/iris/sandbox", "GET,POST,DELETE"),
    ("OPTIONS", "/api/iris/sandbox", "GET,POST,DELETE"),
    ("PROPFIND", "/api/iris/sandbox", "GET,POST,DELETE"),
    ("FOO-BAR", "/api/iris/health", "GET"),
])
def test_other_methods(stack, method, path, allow):
    r = stack.request(method, path)
    assert_error(r, 405, "method_not_allowed")
    assert r.headers.get("Allow", "").replace(" ", "") == allow, describe(r)


def test_trace_is_refused_by_nginx(stack):
    r = stack.request("TRACE", "/api/iris/execute")
    assert_error(r, 405, "method_not_allowed", gateway=False)


def test_head_is_not_a_way_in(stack):
    r = stack.request("HEAD", "/api/iris/execute")
    assert r.status_code == 405, describe(r)
    assert r.headers.get("Allow", "").replace(" ", "") == "POST", describe(r)
    assert_json_type(r)
    assert r.content == b""
