"""The Python kernel on IPython, end to end: POST /api/iris/execute through
nginx and the gateway into real sandboxes of a real iris-sandboxd.  Code as
people paste it from Jupyter or E2B's code interpreter: indented cells,
display(), IPython syntax, DataFrames, figures, PIL, seaborn and plotly --
each answer in the API's result fields (docs/api.md, docs/sandbox-internals.md).

All tests share one session's sandbox (state persists between them, as a
notebook's does), so they do not drain the pool.
"""

import base64

import pytest

from conftest import Stack, assert_ran, describe

SESSION = "ipython-kernel"


@pytest.fixture(scope="module")
def stack():
    s = Stack(name="kernel_python", sandboxd_env={"IRIS_SANDBOX_POOL": "1"})
    s.start()
    yield s
    s.stop()


def run(stack, code, **fields):
    """Runs code in the module's session; returns the API's result."""
    body = {"code": code, "sessionId": SESSION}
    body.update(fields)
    r = stack.execute(body)
    res = assert_ran(r)["result"]
    return res, r


def ran(stack, code):
    res, r = run(stack, code)
    assert res["success"] is True, describe(r)
    return res


def png(result):
    raw = base64.b64decode(result["png"], validate=True)
    assert raw.startswith(b"\x89PNG\r\n\x1a\n"), raw[:16]
    return raw


def test_indented_cell_and_state_between_calls(stack):
    res = ran(stack, "\n    import math\n    radius = 2\n    math.floor(math.pi * radius ** 2)\n")
    assert [(x["isMainResult"], x["text"]) for x in res["results"]] == [(True, "12")]
    res = ran(stack, "radius * 10")
    assert res["results"][0]["text"] == "20"


def test_display_markdown_html_and_mimebundle_text(stack):
    res = ran(stack, "from IPython.display import display, HTML, Markdown\n"
                     "display(Markdown('**bold**'))\n"
                     "class Money:\n"
                     "    def _repr_mimebundle_(self, include=None, exclude=None):\n"
                     "        return {'text/plain': '12.50 EUR', 'text/html': '<b>12.50</b> EUR'}\n"
                     "Money()")
    md, main = res["results"]
    assert md == {"isMainResult": False, "text": "<IPython.core.display.Markdown object>",
                  "markdown": "**bold**", "extra": {}}, md
    assert main["isMainResult"] is True
    assert main["text"] == "12.50 EUR" and main["html"] == "<b>12.50</b> EUR"


def test_await_and_shell_escape(stack):
    res = ran(stack, "import asyncio\nawait asyncio.sleep(0.01)\n!echo from-shell\n"
                     "await asyncio.sleep(0, result='awaited')")
    assert res["output"] == "from-shell\n"
    assert res["results"][0]["text"] == "awaited"


def test_dataframe_data_keeps_the_index(stack):
    res = ran(stack, "import pandas as pd\n"
                     "sales = pd.DataFrame({'region': ['north', 'south', 'east', 'north'],\n"
                     "                      'sales': [10, 20, 40, 30]})\n"
                     "sales.groupby('region').agg(total=('sales', 'sum'))")
    main = res["results"][0]
    assert main["data"] == {"region": ["east", "north", "south"], "total": [40, 40, 20]}
    assert "<table" in main["html"]
    res = ran(stack, "pd.DataFrame([[1, 2], [3, 4]], columns=['x', 'x'])")
    assert res["results"][0]["data"] == {"x": [1, 3], "x.1": [2, 4]}


def test_one_png_per_figure_none_for_blank_ones(stack):
    res = ran(stack, "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()\n"
                     "plt.savefig('out.png')")
    assert len(res["results"]) == 1, res["results"]
    assert res["results"][0]["isMainResult"] is False
    png(res["results"][0])
    res = ran(stack, "plt.figure()")
    assert [("png" in x, x["text"]) for x in res["results"]] == \
        [(False, "<Figure size 640x480 with 0 Axes>")], res["results"]


def test_pil_images_shown_and_saved(stack):
    ran(stack, "from PIL import Image\nimage = Image.new('RGBA', (16, 16), (0, 128, 255, 255))")
    for code in ("image.show()", "image.save('image.png')", "image"):
        res = ran(stack, code)
        assert len(res["results"]) == 1, (code, res["results"])
        png(res["results"][0])


def test_seaborn_and_plotly(stack):
    res = ran(stack, "import seaborn as sns\n"
                     "sns.lineplot(x=[1, 2, 3], y=[3, 1, 2])")
    pngs = [x for x in res["results"] if "png" in x]
    assert len(pngs) == 1, res["results"]
    res = ran(stack, "import plotly.graph_objects as go\n"
                     "go.Figure(go.Scatter(x=[1, 2], y=[4, 3]))")
    (fig,) = res["results"]
    assert "<div" in fig["html"], fig
    assert fig["extra"]["application/vnd.plotly.v1+json"]["data"][0]["type"] == "scatter"


def test_exception_name_value_traceback(stack):
    res, r = run(stack, "def ratio(a, b):\n    return a / b\n\nratio(1, 0)")
    assert res["success"] is False, describe(r)
    err = res["error"]
    assert err["name"] == "ZeroDivisionError" and err["value"] == "division by zero"
    tb = err["traceback"]
    assert "line 4" in tb and "line 2, in ratio" in tb and "return a / b" in tb, tb
    assert "IPython" not in tb and "\x1b[" not in tb, tb
    # a magic that does not exist is IPython's UsageError
    res, _ = run(stack, "%no_such_magic")
    assert res["error"]["name"] == "UsageError", res
