"""Output capture of the Python and bash kernels, byte for byte: each run's
bytes decoded on their own, stdout and stderr in the order written (by the
kernel, by any process it starts), partial lines sent while the code runs.

Run with: /usr/bin/python3 -m pytest tests/kernels/test_capture.py
The daemon is played as in test_kernels.py (whose helpers this uses).
"""

from test_kernels import HAVE_PYLIBS, kernel_fixture, supervisor_fixture

# Python code that waits for a file, so a test can see what was streamed
# before the code goes on (no timing assumption: the test makes the file).
WAIT_FOR = ("import os, time\n"
            "deadline = time.monotonic() + 60\n"
            "while not os.path.exists(%r) and time.monotonic() < deadline:\n"
            "    time.sleep(0.01)\n")


sup = supervisor_fixture("capture", preload=HAVE_PYLIBS)
py = kernel_fixture("cap-py")
sh = kernel_fixture("cap-sh", "bash")


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


# --- stdout and stderr in the order written -----------------------------------

def test_python_fd_writes_keep_their_order(py):
    r = py.run("import os\n"
               "for i in range(200):\n"
               "    os.write(1, b'o%d\\n' % i)\n"
               "    os.write(2, b'e%d\\n' % i)\n")
    want = [(s, "%s%d\n" % (s[3], i)) for i in range(200) for s in ("stdout", "stderr")]
    assert streams(r) == [(s, t) for s, t in want], streams(r)[:10]


def test_python_print_fd_writes_and_buffer_writes_in_order(py):
    r = py.run("import os, sys\n"
               "print('p1')\nos.write(2, b'f2\\n')\nprint('p3', file=sys.stderr)\n"
               "sys.stdout.buffer.write(b'b4\\n')\nos.write(1, memoryview(b'f5\\n'))\n"
               "sys.stderr.buffer.write(bytearray(b'b6\\n'))\nprint('p7')\n")
    assert streams(r) == [("stdout", "p1\n"), ("stderr", "f2\np3\n"), ("stdout", "b4\nf5\n"),
                          ("stderr", "b6\n"), ("stdout", "p7\n")], streams(r)


def test_python_os_write_keeps_its_contract(py, tmp_path):
    path = tmp_path / "f"
    r = py.run("import os\n"
               "n = os.write(1, b'abc')\n"
               "fd = os.open(%r, os.O_WRONLY | os.O_CREAT)\n"
               "m = os.write(fd, b'to a file')\n"
               "os.close(fd)\n"
               "try:\n"
               "    os.write(1, 'not bytes')\n"
               "except TypeError as e:\n"
               "    t = str(e)\n"
               "(n, m, t)" % str(path))
    assert r.stdout == "abc", r
    assert r.text == "(3, 9, \"a bytes-like object is required, not 'str'\")", r
    assert path.read_bytes() == b"to a file"
    # fd 1 moved by the code: os.write follows it, as the real one does.
    out = tmp_path / "out"
    r = py.run("import os, sys\n"
               "saved = os.dup(1)\n"
               "fd = os.open(%r, os.O_WRONLY | os.O_CREAT)\n"
               "os.dup2(fd, 1)\n"
               "os.write(1, b'moved')\n"
               "os.dup2(saved, 1)\n"
               "os.write(1, b'back\\n')" % str(out))
    assert r.stdout == "back\n", r
    assert out.read_bytes() == b"moved"


def test_python_forked_child_writes_to_the_fd(py):
    r = py.run("import os\n"
               "pid = os.fork()\n"
               "if pid == 0:\n"
               "    os.write(1, b'child\\n')\n"
               "    os._exit(0)\n"
               "os.waitpid(pid, 0)\n"
               "os.write(1, b'parent\\n')")
    assert r.stdout == "child\nparent\n", r


def test_python_big_os_write_whole(py):
    r = py.run("import os\nos.write(1, b'x' * (5 << 20))\nos.write(2, b'y' * 100000)")
    assert r.stdout == "x" * (5 << 20)
    assert r.stderr == "y" * 100000


# --- other processes' writes: in order across the two streams ---------------------

SHELL_PAIRS = "for i in $(seq %d); do echo o$i; echo e$i >&2; done"


def pairs(n, first=1):
    return [(s, "%s%d\n" % (s[3], i)) for i in range(first, first + n)
            for s in ("stdout", "stderr")]


def test_python_subprocess_writes_keep_their_order(py):
    r = py.run("import subprocess\n"
               "subprocess.run('echo one; echo two >&2; echo three; echo four >&2',"
               " shell=True)\n")
    assert streams(r) == [("stdout", "one\n"), ("stderr", "two\n"),
                          ("stdout", "three\n"), ("stderr", "four\n")], streams(r)


def test_python_subprocess_many_writes_keep_their_order(py):
    # 200 writes a stream: fewer than a pipe holds (OutputPipes), so exact.
    r = py.run("import subprocess\nsubprocess.run(%r, shell=True)\n" % (SHELL_PAIRS % 200))
    assert streams(r) == pairs(200), streams(r)[:6]


def test_bash_writes_keep_their_order(sh):
    r = sh.run("echo one; echo two >&2; ls /nonexistent-dir; echo four")
    assert [s for s, _ in streams(r)] == ["stdout", "stderr", "stdout"], streams(r)
    assert streams(r)[1][1].startswith("two\nls: "), streams(r)


def test_bash_many_writes_keep_their_order(sh):
    r = sh.run(SHELL_PAIRS % 200)
    assert streams(r) == pairs(200), streams(r)[:6]


def test_bash_long_write_between_short_ones_keeps_its_place(sh):
    # A write of several packets is read whole before the next signal's.
    r = sh.run("echo a; head -c 10000 /dev/zero | tr '\\0' b >&2; echo c; echo d >&2")
    assert streams(r) == [("stdout", "a\n"), ("stderr", "b" * 10000),
                          ("stdout", "c\n"), ("stderr", "d\n")], [(s, len(t)) for s, t in streams(r)]


def test_bash_reopened_dev_stderr_is_captured(sh):
    # /dev/stderr opened anew is the same pipe (not a socket): it works.
    r = sh.run("echo a > /dev/stderr; echo b > /dev/stdout; echo c >&2")
    assert r.stdout == "b\n" and sorted(r.stderr.split()) == ["a", "c"], r


def test_bash_flood_of_writes_loses_nothing(sh):
    # Past a pipe's 256 writes ahead of the reader, order across the streams
    # may slip (sandbox/README.md); every byte still comes, each stream in order.
    r = sh.run(SHELL_PAIRS % 5000)
    assert r.stdout == "".join("o%d\n" % i for i in range(1, 5001))
    assert r.stderr == "".join("e%d\n" % i for i in range(1, 5001))


def test_shell_children_do_not_inherit_blocked_signals(sh, py):
    # The reading thread blocks the pipes' signal; what user code starts does not.
    for k, code in ((sh, "grep SigBlk /proc/self/status"),
                    (py, "import subprocess\n"
                         "subprocess.run('grep SigBlk /proc/self/status', shell=True)")):
        r = k.run(code)
        assert r.stdout == "SigBlk:\t0000000000000000\n", r
