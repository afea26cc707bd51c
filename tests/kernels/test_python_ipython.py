"""The Python kernel on IPython: what code written for Jupyter or for E2B's
code interpreter expects -- displays and mimebundles, IPython syntax, each
result format, DataFrames' `data`, figures, PIL, seaborn and plotly.

Plays the daemon as test_kernels.py does (its harness), against a
supervisor with --preload, as the sandbox pool runs it.

Run with: /usr/bin/python3 -m pytest tests/kernels
"""

import base64
import json
import os
import signal
import time

import pytest

from test_kernels import HAVE_PYLIBS, Result, kernel_fixture, supervisor_fixture

needs_pylibs = pytest.mark.skipif(not HAVE_PYLIBS, reason="numpy/pandas/matplotlib missing")


sup = supervisor_fixture("ipy", preload=HAVE_PYLIBS)
py = kernel_fixture("ipy")


def ok(r):
    assert r.error is None, r
    return r


def png_of(result):
    raw = base64.b64decode(result["png"], validate=True)
    assert raw.startswith(b"\x89PNG\r\n\x1a\n"), raw[:16]
    return raw


# ---------------------------------------------------------------------------
# Displays


def test_display_and_mimebundle(py):
    r = ok(py.run("from IPython.display import display, HTML, Markdown\n"
                  "display(HTML('<b>x</b>'), Markdown('# t'))\n"
                  "class B:\n"
                  "    def _repr_mimebundle_(self, include=None, exclude=None):\n"
                  "        return {'text/plain': 'plain B', 'text/html': '<i>B</i>',\n"
                  "                'application/vnd.custom+json': {'k': 1}}\n"
                  "display(B())\n"
                  "B()"))
    html, md, shown, main = r.results
    assert html["html"] == "<b>x</b>" and html["is_main_result"] is False
    assert md["markdown"] == "# t"
    # the bundle's own text/plain, not repr(); unknown mime types in extra
    for x in (shown, main):
        assert x["text"] == "plain B" and x["html"] == "<i>B</i>"
        assert x["extra"] == {"application/vnd.custom+json": {"k": 1}}
    assert main["is_main_result"] is True and shown["is_main_result"] is False


def test_ipython_display_method(py):
    r = ok(py.run("from IPython.display import display\n"
                  "class D:\n"
                  "    def _ipython_display_(self):\n"
                  "        print('displaying myself')\n"
                  "        display({'text/plain': 'mine'}, raw=True)\n"
                  "D()"))
    assert r.stdout == "displaying myself\n"
    assert [(x["text"], x["is_main_result"]) for x in r.results] == [("mine", False)]


def test_repr_methods_each_format(py):
    r = ok(py.run("class R:\n"
                  "    def __repr__(self): return 'R()'\n"
                  "    def _repr_html_(self): return '<p>r</p>'\n"
                  "    def _repr_markdown_(self): return '**r**'\n"
                  "    def _repr_svg_(self): return '<svg></svg>'\n"
                  "    def _repr_png_(self): return b'\\x89PNG\\r\\n\\x1a\\nfake'\n"
                  "    def _repr_jpeg_(self): return b'\\xff\\xd8jpeg'\n"
                  "    def _repr_pdf_(self): return b'%PDF-1.4'\n"
                  "    def _repr_latex_(self): return r'$\\alpha$'\n"
                  "    def _repr_json_(self): return {'v': [1, 2]}\n"
                  "    def _repr_javascript_(self): return 'console.log(1)'\n"
                  "R()"))
    m = r.main[0]
    assert m["text"] == "R()" and m["html"] == "<p>r</p>" and m["markdown"] == "**r**"
    assert m["svg"] == "<svg></svg>" and m["latex"] == "$\\alpha$"
    assert m["json"] == {"v": [1, 2]} and m["javascript"] == "console.log(1)"
    assert png_of(m).endswith(b"fake")
    assert base64.b64decode(m["jpeg"], validate=True) == b"\xff\xd8jpeg"
    assert base64.b64decode(m["pdf"], validate=True) == b"%PDF-1.4"
    assert m["extra"] == {}


def test_lists_and_dicts_have_json(py):
    m = ok(py.run("{'a': [1, 2.5, None], 3: True}")).main[0]
    assert m["json"] == {"a": [1, 2.5, None], "3": True}
    assert m["text"] == "{'a': [1, 2.5, None], 3: True}"
    # a large one: in full (E2B shows sequences untruncated), no json
    m = ok(py.run("list(range(300000))")).main[0]
    assert m["text"] == repr(list(range(300000))) and "json" not in m
    m = ok(py.run("[object()]")).main[0]
    assert "json" not in m and m["text"].startswith("[<object at 0x")


# ---------------------------------------------------------------------------
# IPython syntax


def test_common_indent_is_stripped(py):
    # as E2B's own tests send code: a newline, then every line indented
    r = py.run("\n    x = 6\n    for i in range(2):\n        x += i\n    x * 7\n    ")
    assert ok(r).text == "49"
    # line numbers are the sender's, blank first line included
    r = py.run("\n    a = 1\n    1 / 0\n")
    assert r.error["name"] == "ZeroDivisionError"
    assert 'File "<cell-' in r.error["traceback"] and "line 3" in r.error["traceback"], r.error


def test_top_level_await_and_state(py):
    r = ok(py.run("import asyncio\nasync def twice(v):\n    await asyncio.sleep(0.01)\n"
                  "    return v * 2\nw = await twice(21)\nw"))
    assert r.text == "42"
    assert ok(py.run("w + 1")).text == "43"
    # a task started in one cell runs on in the next one's loop
    ok(py.run("t = asyncio.ensure_future(twice(5))\nawait asyncio.sleep(0)"))
    assert ok(py.run("await t")).text == "10"


def test_shell_escapes_and_magics(py):
    r = ok(py.run("n = 3\n!echo out {n}\n!echo err >&2\nfiles = !printf 'a\\nb\\n'\nfiles"))
    assert r.stdout == "out 3\n" and r.stderr == "err\n"
    assert r.text == "['a', 'b']"
    r = ok(py.run("%env IRIS_MAGIC=yes\nimport os\nos.environ['IRIS_MAGIC']"))
    assert r.text == "yes"
    assert ok(py.run("%timeit -n1 -r1 sum(range(10))")).stdout.endswith("loop each)\n")
    assert ok(py.run("%load_ext autoreload\n%autoreload 2\n'reloading'")).text == "reloading"
    r = py.run("%nosuchmagic")
    assert r.error["name"] == "UsageError" and "nosuchmagic" in r.error["value"]


def test_exceptions_name_value_traceback(py):
    r = py.run("def inner():\n    raise ValueError('bad: ü')\n\ninner()")
    e = r.error
    assert e["name"] == "ValueError" and e["value"] == "bad: ü"
    tb = e["traceback"]
    assert tb.startswith("Traceback (most recent call last):\n"), tb
    assert 'File "<cell-' in tb and "line 4" in tb and "line 2, in inner" in tb, tb
    assert "interactiveshell" not in tb and "kernel_python" not in tb and "\x1b[" not in tb
    r = py.run("try:\n    {}['k']\nexcept KeyError as e:\n    raise RuntimeError('wrapped') from e")
    assert r.error["name"] == "RuntimeError" and "KeyError: 'k'" in r.error["traceback"]
    r = py.run("def broken(:\n    pass")
    assert r.error["name"] == "SyntaxError"
    assert r.error["traceback"].startswith('  File "<cell-'), r.error
    # each cell still counts, and the kernel goes on
    before = py.run("1").count
    assert py.run("2").count == before + 1


def test_exit_and_quit_leave_the_kernel(py):
    """As in a Jupyter kernel: exit() and quit() are no errors, the cell
    goes on, the state stays."""
    for call in ("exit()", "quit()"):
        r = ok(py.run("kept = 'still here'\n%s\nprint('after')" % call))
        assert r.stdout == "after\n" and r.stderr == "", r
        assert ok(py.run("kept")).text == "still here"


def test_interrupt_async_cell(py):
    py.start("import asyncio\nprint('waiting', flush=True)\nawait asyncio.sleep(30)")
    assert py.read()["type"] == "number_of_executions"
    assert py.read()["type"] == "stdout"
    time.sleep(0.2)
    os.kill(py.pid, signal.SIGINT)
    r = Result([{"type": "number_of_executions", "execution_count": 0}] + py.collect(timeout=10))
    assert r.error["name"] == "KeyboardInterrupt", r
    # the cancelled cell reports nothing later; the loop still works
    r = ok(py.run("await asyncio.sleep(0, result='next')"))
    assert r.text == "next" and r.stderr == ""


# ---------------------------------------------------------------------------
# DataFrames


@needs_pylibs
def test_dataframe_data_keeps_index(py):
    r = ok(py.run("import pandas as pd\n"
                  "df = pd.DataFrame({'region': ['n', 's', 'e', 'n'], 'sales': [10, 20, 40, 30]})\n"
                  "df.groupby('region').agg(total=('sales', 'sum'))"))
    m = r.main[0]
    assert m["data"] == {"region": ["e", "n", "s"], "total": [40, 40, 20]}
    assert "<table" in m["html"]
    # the default 0..n-1 index adds nothing (nor does an empty frame's);
    # an unnamed other one is "index"
    assert ok(py.run("pd.DataFrame({'a': [1, 2]})")).main[0]["data"] == {"a": [1, 2]}
    assert ok(py.run("pd.DataFrame()")).main[0]["data"] == {}
    assert ok(py.run("pd.DataFrame({'a': []})")).main[0]["data"] == {"a": []}
    assert ok(py.run("df[df.sales > 15]")).main[0]["data"] == {
        "index": [1, 2, 3], "region": ["s", "e", "n"], "sales": [20, 40, 30]}
    m = ok(py.run("df.set_index(['region', 'sales']).assign(one=1)")).main[0]
    assert m["data"] == {"region": ["n", "s", "e", "n"], "sales": [10, 20, 40, 30],
                         "one": [1, 1, 1, 1]}


@needs_pylibs
def test_dataframe_duplicate_columns_and_values(py):
    m = ok(py.run("import pandas as pd, numpy as np\n"
                  "pd.DataFrame([[1, 2], [3, 4]], columns=['x', 'x'])")).main[0]
    assert m["data"] == {"x": [1, 3], "x.1": [2, 4]}
    m = ok(py.run("pd.DataFrame({'t': pd.to_datetime(['2024-01-02', None]),\n"
                  "              'f': [np.nan, 1.5], 's': ['a', None]})")).main[0]
    assert m["data"] == {"t": ["2024-01-02T00:00:00", None], "f": [None, 1.5], "s": ["a", None]}
    # displayed too, not only as the value
    r = ok(py.run("display(pd.DataFrame({'k': [7]}))"))
    assert r.results[0]["data"] == {"k": [7]} and r.results[0]["is_main_result"] is False


# ---------------------------------------------------------------------------
# Figures


@needs_pylibs
def test_figures_shown_once_blank_ones_never(py):
    r = ok(py.run("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()\n"
                  "plt.savefig('out.png')"))
    assert len(r.results) == 1 and r.results[0]["is_main_result"] is False
    png_of(r.results[0])
    assert os.path.getsize(os.path.join(py_home(py), "out.png")) > 0
    # savefig (which saves through PIL) shows nothing itself: one figure, one PNG
    r = ok(py.run("plt.plot([3, 1])\nplt.savefig('again.png')"))
    assert [x["text"] for x in r.results] == ["<Figure size 640x480 with 1 Axes>"]
    png_of(r.results[0])
    # plt.figure() as the value: its text as Jupyter shows it, no image
    r = ok(py.run("plt.figure()"))
    assert [(x["text"], "png" in x) for x in r.results] == [("<Figure size 640x480 with 0 Axes>", False)]
    # a figure as the value is sent once, as the main result
    r = ok(py.run("fig, ax = plt.subplots()\nax.bar(['a', 'b'], [1, 2])\nfig"))
    assert len(r.results) == 1 and r.results[0]["is_main_result"] is True
    png_of(r.results[0])
    assert r.results[0]["text"] == "<Figure size 640x480 with 1 Axes>"
    assert ok(py.run("len(plt.get_fignums())")).text == "0"
    r = ok(py.run("%matplotlib inline\nplt.plot([2, 1]);"))
    assert len(r.results) == 1 and r.results[0]["extra"] == {}
    png_of(r.results[0])


@needs_pylibs
def test_figures_shown_with_agg_chosen(py):
    # code written for scripts: Agg picked by hand still shows its figures
    r = ok(py.run("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
                  "plt.plot([1, 2])\nplt.show()\nmatplotlib.get_backend()"))
    assert [("png" in x, x["is_main_result"]) for x in r.results] == [(True, False), (False, True)]
    assert "non-interactive" not in r.stderr and "inline" in r.text


@needs_pylibs
def test_figure_chart_field(py):
    r = ok(py.run("import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.title('t')\nplt.show()"))
    res = r.results[0]
    # sandbox/iris_charts.py is optional: loaded (at the first figure) if it is there
    have = ok(py.run("import sys\n'iris_charts' in sys.modules"))
    if have.text == "True":
        assert isinstance(res.get("chart"), dict), res
    else:
        assert "chart" not in res


@needs_pylibs
def test_seaborn(py):
    r = ok(py.run("import seaborn as sns, pandas as pd\n"
                  "sns.barplot(data=pd.DataFrame({'k': ['a', 'b'], 'v': [1, 3]}), x='k', y='v')"))
    pngs = [x for x in r.results if "png" in x]
    assert len(pngs) == 1 and not pngs[0]["is_main_result"], r.results
    png_of(pngs[0])


# ---------------------------------------------------------------------------
# PIL and plotly


@needs_pylibs
def test_pil_show_save_and_value(py):
    setup = ("from PIL import Image\n"
             "im = Image.new('RGB', (8, 8), (255, 0, 0))\n")
    r = ok(py.run(setup + "im.show()\nprint('done')"))
    assert r.stdout == "done\n" and len(r.results) == 1
    png_of(r.results[0])
    r = ok(py.run("im.save('red.png')"))
    assert len(r.results) == 1
    png_of(r.results[0])
    assert os.path.getsize(os.path.join(py_home(py), "red.png")) > 0
    r = ok(py.run("import io\nim.save(io.BytesIO(), 'PNG')"))     # not to a file: not shown
    assert r.results == []
    r = ok(py.run("im"))
    assert len(r.results) == 1 and r.results[0]["is_main_result"] is True
    png_of(r.results[0])


@needs_pylibs
def test_plotly_html_and_json(py):
    r = ok(py.run("import plotly.express as px\n"
                  "fig = px.bar(x=['a', 'b'], y=[1, 3])\nfig.show()\nfig"))
    assert len(r.results) == 2, r.results
    for x in r.results:
        assert "<div" in x["html"] and "cdn.plot.ly" in x["html"]
        fig = x["extra"]["application/vnd.plotly.v1+json"]
        assert fig["data"][0]["type"] == "bar", fig
        json.dumps(x)


def py_home(k):
    return json.loads(k.run("import json, os\njson.dumps(os.getcwd())").text)


# ---------------------------------------------------------------------------
# The zygote and the kernel's footprint


def test_supervisor_stays_single_threaded(sup):
    # it forks kernels: a thread (IPython's history saver, say) would be
    # a hazard in every fork
    assert os.listdir("/proc/%d/task" % sup.proc.pid) == [str(sup.proc.pid)]


def test_nothing_written_under_home(sup, py):
    before = sorted(os.listdir(sup.home))
    ok(py.run("x = 1"))
    py.run("1 / 0")
    py.run("%nosuchmagic")
    ok(py.run("%cd ~\n%env A=b\n!true\nimport IPython\nIPython.get_ipython().db['k'] = 1"))
    after = sorted(os.listdir(sup.home))
    assert after == before, (before, after)
    assert not os.path.exists(os.path.join(sup.home, ".ipython"))


def test_forked_child_finishing_the_cell_stays_silent(py):
    # the child runs the rest of the cell too (its value, an error): none of
    # it may reach the socket, and the child must end, not hang
    r = ok(py.run("import os\npid = os.fork()\n"
                  "if pid == 0:\n    print('child', flush=True)\n    display('from child')\n"
                  "else:\n    os.waitpid(pid, 0)\n"
                  "'value of ' + ('child' if pid == 0 else 'parent')", timeout=30))
    assert r.stdout == "child\n"
    assert [x["text"] for x in r.results] == ["value of parent"]
    r = py.run("pid = os.fork()\nif pid:\n    os.waitpid(pid, 0)\nelse:\n    1 / 0\n'after'")
    assert r.error is None and r.text == "after", r
