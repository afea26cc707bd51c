"""Exact output through nginx, the gateway and iris-sandboxd: each run's
bytes decoded on their own; one clean cut at the cap with one record of
what was kept and dropped (never a marker in the text); logs that do not
repeat a flood; capped final values; stdout and stderr in the order
written by the kernel itself; partial lines streamed while the code runs.
"""

import json
import time

import pytest
import requests

from conftest import TIMEOUT, Stack, assert_ran, describe
from test_stream import stream

CAP = 1 << 20                         # IRIS_OUTPUT_CAP's default
LOGS_CAP = CAP // 16                  # what logs keep once output was cut
CODE_PORT = 49999


@pytest.fixture(scope="module")
def stack():
    s = Stack(name="output", sandboxd_env={"IRIS_SANDBOX_POOL": "2"})
    s.start()
    yield s
    s.stop()


def run(stack, code, session, **fields):
    body = {"code": code, "sessionId": session}
    body.update(fields)
    r = stack.execute(body, timeout=120)
    return assert_ran(r)["result"], r


# --- each run's bytes decoded on their own -----------------------------------

def test_bash_run_ending_inside_a_character(stack):
    res, r = run(stack, r"printf 'A\xe2'", "utf8-bash", language="bash")
    assert res["output"] == "A\ufffd", describe(r)
    res, r = run(stack, r"printf '\x82\xacB\n'", "utf8-bash", language="bash")
    assert res["output"] == "\ufffd\ufffdB\n", describe(r)
    assert res["truncated"] is False and res["truncation"] is None


def test_python_fd_write_ending_inside_a_character(stack):
    res, r = run(stack, 'import os\nos.write(1, b"A\\xe2")', "utf8-py")
    assert res["output"] == "A\ufffd", describe(r)
    res, r = run(stack, 'os.write(1, b"\\x82\\xacB\\n")', "utf8-py")
    assert res["output"] == "\ufffd\ufffdB\n", describe(r)


# --- the cut at the cap --------------------------------------------------------

def test_cut_ends_on_a_whole_character_with_one_record(stack):
    res, r = run(stack, 'print("\u20ac" * 400000)', "cap")
    written = "\u20ac" * 400000 + "\n"
    out = res["output"]
    assert res["truncated"] is True
    assert out == "\u20ac" * (CAP // 3), len(out)          # a prefix, whole characters
    assert written.startswith(out)
    kept = len(out.encode())
    assert res["truncation"]["stdout"] == {
        "keptBytes": kept, "droppedBytes": len(written.encode()) - kept}, res["truncation"]
    assert "stderr" not in res["truncation"]


def test_cut_just_before_a_character_leaves_no_marker(stack):
    res, r = run(stack, 'print("a" * 1048574 + "\u20ac")', "cap")
    assert res["output"] == "a" * 1048574, (len(res["output"]), res["output"][-40:])
    assert res["truncation"]["stdout"] == {"keptBytes": 1048574, "droppedBytes": 4}
    # The next run has its own budget and nothing left of this one.
    res, r = run(stack, 'print("fine")', "cap")
    assert res["output"] == "fine\n" and res["truncated"] is False
    assert res["truncation"] is None


def test_stderr_cut_and_execution_row(stack):
    res, r = run(stack, 'import sys\nsys.stderr.write("e" * (3 << 20))\nprint("out")', "cap")
    assert res["stderr"] == "e" * CAP
    assert res["output"] == "out\n"
    assert res["truncation"]["stderr"] == {"keptBytes": CAP, "droppedBytes": (3 << 20) - CAP}
    assert "stdout" not in res["truncation"]
    assert stack.execution_row(r)["stderr_bytes"] == 3 << 20


def test_fd_level_flood_is_cut_once(stack):
    # Past the provider's own ceiling too: the count still adds up.
    res, r = run(stack, "import subprocess\n"
                        "subprocess.run('yes abcdefg | head -c 4000000', shell=True)", "cap")
    assert res["output"] == ("abcdefg\n" * 500000)[:CAP]
    assert res["truncation"]["stdout"] == {"keptBytes": CAP, "droppedBytes": 4000000 - CAP}


# --- logs past the cap ------------------------------------------------------------

def test_logs_do_not_repeat_a_flood(stack):
    res, r = run(stack, 'print("x" * 5_000_000)', "logs")
    assert len(r.content) < CAP + 2 * LOGS_CAP, len(r.content)
    assert res["output"] == "x" * CAP
    assert res["logs"] == ["x" * LOGS_CAP]
    assert res["truncation"]["stdout"] == {"keptBytes": CAP, "droppedBytes": 5_000_001 - CAP}
    assert res["truncation"]["logs"] == {"keptBytes": LOGS_CAP, "droppedBytes": CAP - LOGS_CAP}


def test_logs_of_many_lines_past_the_cap(stack):
    res, r = run(stack, "for i in range(400000):\n    print('%07d' % i)", "logs")
    # About the cap: the output (as JSON) and a little more.
    assert len(r.content) < len(json.dumps(res["output"])) + 2 * LOGS_CAP, len(r.content)
    n = LOGS_CAP // 7
    # Whole lines, then a prefix of the one that did not fit.
    assert res["logs"] == ["%07d" % i for i in range(n)] + [("%07d" % n)[:LOGS_CAP % 7]]
    assert res["output"].startswith("0000000\n0000001\n")


def test_logs_whole_under_the_cap(stack):
    res, r = run(stack, "for i in range(20000):\n    print('%07d' % i)", "logs")
    assert res["truncated"] is False and res["truncation"] is None
    assert res["logs"] == ["%07d" % i for i in range(20000)]


# --- final values and rich results ------------------------------------------------

# A value whose text is its repr, the same in any Python kernel.
BIG_REPR = ("class Big:\n"
            "    def __repr__(self):\n"
            "        return '<' + 'y' * %d + '>'\n"
            "Big()")


def test_big_final_value_is_capped(stack):
    res, r = run(stack, BIG_REPR % 1_500_000, "results")
    main = [x for x in res["results"] if x["isMainResult"]]
    assert len(main) == 1, describe(r)
    text = main[0]["text"]
    assert text == "<" + "y" * (CAP - 1), len(text)
    assert res["truncated"] is True
    assert res["truncation"]["results"] == [
        {"index": 0, "field": "text", "keptBytes": CAP, "droppedBytes": 1_500_002 - CAP}]
    assert len(r.content) < CAP + (64 << 10), len(r.content)


def test_small_final_value_is_whole(stack):
    res, r = run(stack, BIG_REPR % 1000, "results")
    assert res["results"][0]["text"] == "<" + "y" * 1000 + ">"
    assert res["truncation"] is None


# --- stdout and stderr in the order written --------------------------------------
# (by the kernel and by the processes it starts: sandbox/README.md says how,
# and where order across the streams may slip)

def test_fd_writes_order_python(stack):
    code = ("import os\n"
            "for i in range(50):\n"
            "    os.write(1, b'o%d\\n' % i)\n"
            "    os.write(2, b'e%d\\n' % i)\n")
    res, r = run(stack, code, "order")
    assert res["logs"] == [x for i in range(50) for x in ("o%d" % i, "e%d" % i)], res["logs"]


def test_print_and_fd_writes_order_python(stack):
    code = ("import os, sys\n"
            "print('p1')\nos.write(2, b'f2\\n')\nprint('p3', file=sys.stderr)\n"
            "os.write(1, b'f4\\n')\nprint('p5')\n")
    res, r = run(stack, code, "order")
    assert res["logs"] == ["p1", "f2", "p3", "f4", "p5"], res["logs"]


def test_subprocess_writes_order_python(stack):
    code = ("import subprocess\n"
            "subprocess.run('echo one; echo two >&2; echo three; echo four >&2', shell=True)\n")
    res, r = run(stack, code, "order")
    assert res["logs"] == ["one", "two", "three", "four"], res["logs"]


def test_writes_order_bash(stack):
    code = "for i in 1 2 3; do echo o$i; echo e$i >&2; done; printf 'x\\n' >&2; echo y"
    res, r = run(stack, code, "order-bash", language="bash")
    assert res["logs"] == ["o1", "e1", "o2", "e2", "o3", "e3", "x", "y"], res["logs"]


def test_large_fd_writes_still_whole(stack):
    # Big single writes (cat's, a C program's) under the cap come whole.
    code = ("import subprocess, sys\n"
            "open('/tmp/big', 'w').write('c' * 900000)\n"
            "subprocess.run([sys.executable, '-c', 'import os; os.write(1, b\"a\" * 600000)'],"
            " check=True)\n"
            "subprocess.run('echo; cat /tmp/big >&2', shell=True, check=True)\n")
    res, r = run(stack, code, "order")
    assert res["output"] == "a" * 600000 + "\n", len(res["output"])
    assert res["stderr"] == "c" * 900000, len(res["stderr"])
    assert res["truncated"] is False


# --- partial lines streamed while the code runs -----------------------------------

def _touch_in_sandbox(stack, sandbox_id, path):
    """Creates path in the sandbox, from a context of its own, straight at the
    provider (the gateway's run is still going)."""
    h = {"E2b-Sandbox-Id": sandbox_id, "E2b-Sandbox-Port": str(CODE_PORT),
         "X-API-Key": stack.sandboxd_key}
    r = requests.post(stack.sandboxd_url + "/contexts", json={"language": "bash"},
                      headers=h, timeout=60)
    assert r.status_code == 200, r.text
    r = requests.post(stack.sandboxd_url + "/execute",
                      json={"code": "touch %s" % path, "context_id": r.json()["id"]},
                      headers=h, timeout=60)
    assert r.status_code == 200, r.text


def _partial_line_streamed(stack, code, language):
    r = stack.post("/api/iris/sandbox", json={"language": language})
    assert r.status_code == 201, describe(r)
    sid = r.json()["sandbox"]["sandboxId"]
    seen = {}

    def touch_when_x(name, data):
        if name == "stdout" and not seen:
            seen["x"] = data["text"]
            _touch_in_sandbox(stack, sid, "/tmp/iris-go")

    resp, events = stream_until(stack, {"code": code, "sandboxId": sid, "language": language,
                                        "timeout": 60}, touch_when_x)
    assert resp.status_code == 200
    assert seen.get("x") == "x", events
    done = events[-1]
    assert done[1] == "done", events
    res = done[2]["result"]
    # It ended because the file came: the "x" was seen while it waited.
    assert res["success"] is True and res["output"] == "x", res
    stack.request("DELETE", "/api/iris/sandbox?sandboxId=" + sid)


def stream_until(stack, body, on_event):
    """Like test_stream.stream, calling on_event(name, data) as each comes."""
    r = stack.post("/api/iris/execute/stream", json=body, stream=True, timeout=TIMEOUT)
    events, name, data = [], None, []
    for line in r.iter_lines(decode_unicode=False):
        line = line.decode("utf-8")
        if line == "":
            if name is not None or data:
                ev = (time.monotonic(), name or "message", json.loads("\n".join(data)))
                events.append(ev)
                on_event(ev[1], ev[2])
            name, data = None, []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
    r.close()
    return r, events


def test_partial_line_streamed_python(stack):
    _partial_line_streamed(stack, 'import os, time\nprint("x", end="")\n'
                                  'deadline = time.monotonic() + 50\n'
                                  'while not os.path.exists("/tmp/iris-go") and '
                                  'time.monotonic() < deadline:\n'
                                  '    time.sleep(0.02)\n'
                                  'assert os.path.exists("/tmp/iris-go")\n', "python")


def test_partial_line_streamed_bash(stack):
    _partial_line_streamed(stack, "printf x; for i in $(seq 2500); do "
                                  "[ -e /tmp/iris-go ] && break; sleep 0.02; done; "
                                  "[ -e /tmp/iris-go ]", "bash")


def test_stream_done_has_the_record(stack):
    resp, events = stream(stack, {"code": 'print("z" * 1_200_000)', "sessionId": "stream-cap"})
    done = [e for e in events if e[1] == "done"][0][2]["result"]
    streamed = "".join(e[2]["text"] for e in events if e[1] == "stdout")
    assert streamed == done["output"] == "z" * CAP
    assert done["truncation"]["stdout"] == {"keptBytes": CAP, "droppedBytes": 1_200_001 - CAP}
