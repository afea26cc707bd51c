"""The JavaScript and TypeScript kernel (sandbox/kernel.js) through the
supervisor, without bubblewrap: ES-module import declarations, TypeScript,
and output written to fds 1/2 (children with stdio "inherit", fs.writeSync),
in order.

The kernel loads acorn and typescript from sandbox/node (its lockfile);
the module fixture installs them with sandbox/node/install when stale, as
scripts/run and scripts/test do.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from test_kernels import HAVE_NODE, ROOT, Result, kernel_fixture, supervisor_fixture

pytestmark = pytest.mark.skipif(not HAVE_NODE, reason="node missing")

INSTALL = ROOT / "sandbox" / "node" / "install"


def install_node_packages():
    r = subprocess.run([str(INSTALL)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, "sandbox/node/install failed (is the npm registry " \
        "reachable?)\n%s\n%s" % (r.stdout, r.stderr)


sup = supervisor_fixture("js", preload=False, before=install_node_packages)
js = kernel_fixture("js", "javascript")
ts = kernel_fixture("ts", "typescript")


def ok(k, code, **kw):
    r = k.run(code, **kw)
    assert r.error is None, r
    return r


def wait_for(pred, what, timeout=20):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "no %s within %s s" % (what, timeout)
        time.sleep(0.02)


def streams(r):
    """The stdout/stderr lines of r, in order, as (stream, text)."""
    return [(x["type"], x["text"]) for x in r.lines if x["type"] in ("stdout", "stderr")]


# ---------------------------------------------------------------------------
# import declarations


def test_import_forms_and_their_bindings_persist(js):
    r = ok(js, "import fs from 'fs'\n"
               "import { readFileSync as rf, existsSync } from 'node:fs'\n"
               "import * as path from 'path'\n"
               "import os, { cpus } from 'os'\n"
               "[typeof fs.readFileSync, rf === fs.readFileSync, typeof existsSync,\n"
               " path.join('a', 'b'), typeof path.default.join, cpus === os.cpus]")
    assert r.text == "[ 'function', true, 'function', 'a/b', 'function', true ]"
    # Bindings of the context, like its other top-level declarations.
    r = ok(js, "[typeof fs.statSync, typeof rf, path.sep, typeof cpus]")
    assert r.text == "[ 'function', 'function', '/', 'function' ]"
    # Running an import cell again is no redeclaration; require gives the
    # same module instance.
    assert ok(js, "import fs from 'fs'\nfs === require('fs')").text == "true"


def test_import_in_indented_cell(js):
    # A cell written inside a template literal, as E2B's clients send it.
    r = ok(js, "\n    import { readFileSync } from 'fs'\n    console.log(typeof readFileSync)\n    ")
    assert r.stdout == "function\n"


def test_imports_load_before_the_cell_runs(js, sup):
    home = Path(sup.home)
    (home / "side.js").write_text("require('fs').writeFileSync('side-ran', 'yes')\n")
    r = js.run("console.log('body ran')\nimport 'nope-no-such-module'")
    assert r.error is not None and "nope-no-such-module" in r.error["value"], r
    assert r.stdout == ""            # as an ES module: imports first, or nothing
    r = ok(js, "import './side.js'\nrequire('fs').readFileSync('side-ran', 'utf8')")
    assert r.text == "yes"


def test_import_of_an_es_module_and_dynamic_import(js, sup):
    (Path(sup.home) / "esm.mjs").write_text("export default 40\nexport const two = 2\n")
    assert ok(js, "import forty, { two } from './esm.mjs'\nforty + two").text == "42"
    assert ok(js, "const m = await import('./esm.mjs'); m.default + m.two + 1").text == "43"
    assert ok(js, "(await import('node:path')).basename('/a/b.txt')").text == "b.txt"


def test_import_with_top_level_await(js):
    r = ok(js, "import { sep } from 'path'\nawait Promise.resolve(sep + sep)")
    assert r.text == "//"
    assert ok(js, "sep").text == "/"


def test_import_syntax_errors_and_require(js):
    r = js.run("import { from 'fs'")
    assert r.error["name"] == "SyntaxError", r
    assert ok(js, "require('path').join('x', 'y')").text == "x/y"
    # `export` in front of a declaration is dropped: the name is the cell's.
    assert ok(js, "export const exported = 7\nexported * 2").text == "14"
    assert ok(js, "exported").text == "7"


# ---------------------------------------------------------------------------
# TypeScript


def test_typescript_runs_transpiled(ts):
    assert ts.hello["language"] == "typescript"
    r = ok(ts, 'const message: string = "Hello World!"; console.log(message)')
    assert r.stdout == "Hello World!\n"
    r = ok(ts, "interface Point { x: number; y: number }\n"
               "enum Color { Red, Green, Blue }\n"
               "function norm<T extends Point>(p: T): number { return Math.abs(p.x) + Math.abs(p.y) }\n"
               "const p: Point = { x: -2, y: 3 }\n"
               "norm(p) * 10 + Color.Blue")
    assert r.text == "52"
    # State persists between cells, enums included.
    assert ok(ts, "Color[1] + ' ' + message").text == "Green Hello World!"
    assert ok(ts, "{ a: 1 }").text == "{ a: 1 }"              # as in node's REPL
    assert ok(ts, "{ let inner: number = 2; inner }").text == "2"


def test_typescript_imports(ts):
    r = ok(ts, "import { join } from 'path'\nimport type { Stats } from 'fs'\n"
               "let s: Stats | null = null\njoin('a', 'b')")
    assert r.text == "a/b"
    assert ok(ts, "join('c', 'd')").text == "c/d"


def test_typescript_type_errors_do_not_block(ts):
    r = ok(ts, "const n: number = 'not a number' as any as number; const m: string = 5 as any\n"
               "let wrong: number = 'text'\nwrong")
    assert r.text == "text"


def test_typescript_syntax_error(ts):
    r = ts.run("let x: number = ;")
    assert r.error["name"] == "SyntaxError", r
    assert "TS1109" in r.error["traceback"] and "(1:17)" in r.error["value"], r
    assert ok(ts, "1 + 1").text == "2"          # the kernel is fine


def test_typescript_tracebacks_name_typescript_lines(ts):
    # Interfaces and blank lines are gone from the JavaScript that runs;
    # the traceback still names the lines of the cell as written.
    ok(ts, "interface A { a: number }\n\n\ntype B = string\n"
           "function fails(): void {\n  throw new RangeError('deep')\n}\n")
    r = ts.run("interface C {}\n\nfails()")
    assert r.error["name"] == "RangeError", r
    tb = r.error["traceback"]
    cell = "<cell-%d>" % (r.count - 1)
    assert "at fails (%s:6:9)" % cell in tb and "<cell-%d>:3:1" % r.count in tb, tb
    r = ts.run("interface D { d: string }\nconst d: D = null as any\nd.d.length")
    assert r.error["name"] == "TypeError", r
    assert r.error["traceback"].startswith("<cell-%d>:3\nd.d.length\n" % r.count), r.error


def test_typescript_and_javascript_states_apart(sup, ts, js):
    ok(ts, "let shared: number = 1")
    r = js.run("shared")
    assert r.error["name"] == "ReferenceError", r
    assert ok(ts, "process.cwd()").text == sup.home


# ---------------------------------------------------------------------------
# output written to fds 1 and 2


def test_fd_output_in_order(js):
    r = ok(js, "const cp = require('child_process')\n"
               "console.log('one')\n"
               "cp.execSync('echo two', { stdio: 'inherit' })\n"
               "require('fs').writeSync(1, 'three\\n')\n"
               "cp.spawnSync('sh', ['-c', 'echo four; echo err-five >&2'], { stdio: 'inherit' })\n"
               "process.stdout.write('six\\n')\n"
               "require('fs').writeSync(2, Buffer.from('err-seven\\n'))\n"
               "cp.execFileSync('sh', ['-c', 'echo eight'], { stdio: 'inherit' })\n"
               "console.error('err-nine')\n"
               "'end'")
    assert streams(r) == [("stdout", "one\n"), ("stdout", "two\n"), ("stdout", "three\n"),
                          ("stdout", "four\n"), ("stderr", "err-five\n"), ("stdout", "six\n"),
                          ("stderr", "err-seven\n"), ("stdout", "eight\n"),
                          ("stderr", "err-nine\n")], r
    # Everything before the result.
    assert r.lines[-2]["type"] == "result" and r.text == "end"


def test_fd_output_in_order_at_volume(js):
    # Interleaved writes leave no time for a reader to catch up: the order
    # is kept by design (fs.writeSync of fds 1/2 takes console's path).
    r = ok(js, "for (let i = 0; i < 3000; i++) {\n"
               "  require('fs').writeSync(1, 'a' + i + '\\n'); console.log('b' + i) }")
    assert r.stdout == "".join("a%d\nb%d\n" % (i, i) for i in range(3000))


def test_fd_output_of_a_child_that_fills_the_pipe(js):
    # More than a pipe holds, while the kernel's thread is blocked in execSync;
    # all of it comes before what the cell prints next.
    r = ok(js, "require('child_process').execSync('seq 1 200000', { stdio: 'inherit' })\n"
               "console.log('after'); 'back'")
    assert r.stdout == "".join("%d\n" % i for i in range(1, 200001)) + "after\n"
    assert r.text == "back"


def test_fd_output_streams_live(js, sup):
    go = Path(sup.home) / "go-live"
    js.start("const { spawn } = require('child_process')\n"
             "spawn('sh', ['-c', 'echo live'], { stdio: 'inherit' })\n"
             "await new Promise((done) => { const t = setInterval(() => {\n"
             "  if (require('fs').existsSync('go-live')) { clearInterval(t); done() } }, 20) })\n"
             "'finished'")
    lines = [js.read()]
    while not any(x.get("text") == "live\n" for x in lines):
        lines.append(js.read())
        assert lines[-1]["type"] != "end_of_execution", lines
    go.write_text("")                   # the cell ends only now
    r = Result(lines + js.collect())
    assert r.stdout == "live\n" and r.text == "finished"


def test_background_child_output_comes_with_the_next_run(js, sup):
    home = Path(sup.home)
    ok(js, "require('child_process').spawn('sh', ['-c', "
           "'while [ ! -e go-bg ]; do sleep 0.02; done; echo later; echo late-err >&2; "
           ": > bg-done'], { stdio: 'inherit' }); 'started'")
    (home / "go-bg").write_text("")
    wait_for(lambda: (home / "bg-done").exists(), "background child")
    r = ok(js, "'next'")
    assert sorted(streams(r)) == [("stderr", "late-err\n"), ("stdout", "later\n")], r
    assert r.text == "next"


def test_utf8_decoded_per_run(js):
    # A character split across writes stays whole...
    r = ok(js, "process.stdout.write(Buffer.from([0xe2, 0x82])); "
               "process.stdout.write(Buffer.from([0xac, 0x0a])); undefined")
    assert r.stdout == "\u20ac\n"
    # ...but a run's bytes are decoded on their own: nothing carried over.
    r = ok(js, "require('child_process').execSync(\"printf 'A\\\\342'\", { stdio: 'inherit' })\n"
               "require('fs').writeSync(2, Buffer.from([0x42, 0xe2]))")
    assert r.stdout == "A\ufffd" and r.stderr == "B\ufffd", r
    r = ok(js, "require('child_process').execSync(\"printf '\\\\202\\\\254B\\\\n'\", "
               "{ stdio: 'inherit' }); undefined")
    assert r.stdout == "\ufffd\ufffdB\n", r


def test_interrupt_in_an_output_loop_leaves_a_working_kernel(js):
    js.start("let i = 0; while (true) { console.log(i++); require('fs').writeSync(2, 'e\\n') }")
    seen = 0
    while seen < 50:
        if js.read()["type"] == "stdout":
            seen += 1
    os.kill(js.pid, signal.SIGINT)
    r = Result([{"type": "number_of_executions", "execution_count": 0}] + js.collect(timeout=10))
    assert r.error is not None and "interrupted" in r.error["value"], r.error
    r = ok(js, "console.log('still'); require('child_process').execSync('echo fine', "
               "{ stdio: 'inherit' }); i > 0")
    assert r.stdout == "still\nfine\n" and r.text == "true"


def test_kernel_messages_stay_out_of_user_output(js):
    js.conn.sendall(b"not json\n")       # logged by the kernel, on the sandbox log
    r = ok(js, "'quiet'")
    assert r.stderr == "" and r.stdout == "" and r.text == "quiet"
