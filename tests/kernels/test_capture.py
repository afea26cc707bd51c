"""Output capture of the Python and bash kernels, byte for byte: each run's
bytes decoded on their own, stdout and stderr in the order written (by the
kernel, by any process it starts), partial lines sent while the code runs.

Run with: /usr/bin/python3 -m pytest tests/kernels/test_capture.py
The daemon is played as in test_kernels.py (whose helpers this uses).
"""

import pytest

from test_kernels import HAVE_PYLIBS, Supervisor, new_ctx

# Python code that waits for a file, so a test can see what was streamed
# before the code goes on (no timing assumption: the test makes the file).
WAIT_FOR = ("import os, time\n"
            "deadline = time.monotonic() + 60\n"
            "while not os.path.exists(%r) and time.monotonic() < deadline:\n"
            "    time.sleep(0.01)\n")


@pytest.fixture(scope="module")
def sup(tmp_path_factory):
    s = Supervisor(tmp_path_factory.mktemp("capture"), preload=HAVE_PYLIBS)
    yield s
    s.stop()


@pytest.fixture
def py(sup):
    k = sup.spawn(new_ctx("cap-py"))
    yield k
    k.close()


@pytest.fixture
def sh(sup):
    k = sup.spawn(new_ctx("cap-sh"), "bash")
    yield k
    k.close()


def streams(result):
    """[(stream, text)] with consecutive pieces of one stream joined."""
    out = []
    for x in result.lines:
        if x["type"] in ("stdout", "stderr"):
            if out and out[-1][0] == x["type"]:
                out[-1] = (x["type"], out[-1][1] + x["text"])
            else:
                out.append((x["type"], x["text"]))
    return out


# --- each run's bytes decoded on their own -----------------------------------

def test_bash_incomplete_utf8_ends_with_its_run(sh):
    r = sh.run(r"printf 'A\xe2'")
    assert r.stdout == "A\ufffd", r
    r = sh.run(r"printf '\x82\xacB\n'")
    assert r.stdout == "\ufffd\ufffdB\n", r
    r = sh.run(r"printf 'C\xe2' >&2")
    assert r.stderr == "C\ufffd", r
    r = sh.run(r"printf '\xe2\x82\xac\n'")
    assert r.stdout == "\u20ac\n", r


def test_python_incomplete_utf8_ends_with_its_run(py):
    r = py.run('import os\nos.write(1, b"A\\xe2")')
    assert r.stdout == "A\ufffd", r
    r = py.run('os.write(1, b"\\x82\\xacB\\n")')
    assert r.stdout == "\ufffd\ufffdB\n", r
    r = py.run('os.write(2, b"C\\xe2")')
    assert r.stderr == "C\ufffd", r
    # A character split across two writes of one run is whole.
    r = py.run('os.write(1, b"\\xe2"); os.write(1, b"\\x82\\xac\\n")')
    assert r.stdout == "\u20ac\n", r


# --- partial lines streamed while the code runs -------------------------------

def partial_line_streams(kernel, tmp_path, code):
    """Starts code (which writes "x" without a newline, then waits for a
    file); returns once "x" has arrived while the code still runs."""
    flag = tmp_path / "go"
    kernel.start(code % {"flag": str(flag)})
    got = []
    while True:
        line = kernel.read(timeout=20)     # raises if "x" never comes
        got.append(line)
        assert line["type"] != "end_of_execution", got
        if line["type"] == "stdout":
            assert line["text"] == "x", got
            break
    flag.touch()
    rest = kernel.collect(timeout=60)
    assert [x for x in rest if x["type"] in ("stdout", "stderr", "error")] == [], rest


def test_python_partial_line_is_sent_while_running(py, tmp_path):
    partial_line_streams(py, tmp_path, 'print("x", end="")\n' + WAIT_FOR % "%(flag)s")


def test_python_partial_line_of_sys_stdout_write(py, tmp_path):
    partial_line_streams(py, tmp_path, 'import sys\nsys.stdout.write("x")\n' +
                         WAIT_FOR % "%(flag)s")


def test_bash_partial_line_is_sent_while_running(sh, tmp_path):
    partial_line_streams(sh, tmp_path, "printf x; while [ ! -e %(flag)s ]; do sleep 0.01; done")


def test_bash_underscore_tail_is_sent_while_running(sh, tmp_path):
    # "_" could begin the kernel's end marker: it is held only briefly.
    flag = tmp_path / "go"
    sh.start("printf _; while [ ! -e %s ]; do sleep 0.01; done" % flag)
    line = sh.read(timeout=20)
    while line["type"] == "number_of_executions":
        line = sh.read(timeout=20)
    assert line == {**line, "type": "stdout", "text": "_"}, line
    flag.touch()
    sh.collect(timeout=60)
