"""Tests of sandbox/iris_charts.py: the `chart` result field (the chart
schema of E2B's code-interpreter SDK) read from matplotlib figures.

Run with: /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/kernels/test_charts.py

Each test draws a figure the way a user would, and checks the chart as the
SDK receives it: after a strict JSON round trip (no NaN, tuples as arrays).
"""

import datetime
import io
import json
import sys
from pathlib import Path

import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sandbox"))
from iris_charts import chart_of  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def chart(fig=None):
    """chart_of(fig or the current figure), as JSON would carry it."""
    c = chart_of(fig if fig is not None else plt.gcf())
    return json.loads(json.dumps(c, allow_nan=False))


def png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# -- line -------------------------------------------------------------------

def test_line_with_dates_units_and_labels():
    days = [datetime.date(2024, 3, 1) + datetime.timedelta(days=i)
            for i in range(30)]
    plt.figure()
    plt.plot(days, np.linspace(5, 15, 30), label="Oslo")
    plt.plot(days, np.linspace(12, 20, 30), label="Rome")
    plt.xlabel("Day [d]")
    plt.ylabel("Temperature (°C)")
    plt.title("March temperatures")
    c = chart()
    assert c["type"] == "line"
    assert c["title"] == "March temperatures"
    assert (c["x_label"], c["y_label"]) == ("Day [d]", "Temperature (°C)")
    assert (c["x_unit"], c["y_unit"]) == ("d", "°C")
    assert (c["x_scale"], c["y_scale"]) == ("datetime", "linear")
    assert c["x_ticks"] and all(isinstance(t, str) for t in c["x_ticks"])
    datetime.datetime.fromisoformat(c["x_ticks"][0])
    assert all(isinstance(t, float) for t in c["y_ticks"])
    assert len(c["x_tick_labels"]) == len(c["x_ticks"])
    assert all(isinstance(t, str) for t in c["x_tick_labels"] + c["y_tick_labels"])
    assert [e["label"] for e in c["elements"]] == ["Oslo", "Rome"]
    oslo = c["elements"][0]["points"]
    assert len(oslo) == 30
    assert oslo[0] == ["2024-03-01", 5.0]
    assert oslo[-1] == ["2024-03-30", 15.0]


def test_line_numbers_unnamed_lines_and_reference_lines():
    plt.plot([0, 1, 2], [2, 4, 3])
    plt.plot([0, 1, 2], [1, 1, 1])
    plt.axhline(3.5, color="grey")          # a reference line, not data
    plt.fill_between([0, 1, 2], [1, 2, 2], [3, 5, 4], alpha=0.2)
    plt.text(1, 4, "peak")
    c = chart()
    assert c["type"] == "line"
    assert c["title"] is None and c["x_label"] is None and c["y_unit"] is None
    assert [e["label"] for e in c["elements"]] == ["Line 0", "Line 1"]
    assert c["elements"][0]["points"] == [[0.0, 2.0], [1.0, 4.0], [2.0, 3.0]]
    assert c["elements"][1]["points"] == [[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]]


def test_line_gaps_are_null():
    plt.plot([1, 2, 3], [1.0, float("nan"), 3.0])
    assert chart()["elements"][0]["points"] == [[1.0, 1.0], [2.0, None], [3.0, 3.0]]


def test_ticks_are_those_in_view_with_their_labels():
    plt.plot([0, 2.5], [0, 1])      # the locator also places -0.5 and 3.0
    c = chart()
    assert c["x_ticks"] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert c["x_tick_labels"] == ["0.0", "0.5", "1.0", "1.5", "2.0", "2.5"]


# -- scales -----------------------------------------------------------------

def test_log_scale_and_unit_in_parentheses():
    x = np.linspace(1, 50, 50)
    plt.plot(x, np.exp(x / 5), label="growth")
    plt.yscale("log")
    plt.ylabel("Cells (log scale)")
    c = chart()
    assert (c["x_scale"], c["y_scale"]) == ("linear", "log")
    assert c["y_unit"] == "log scale" and c["x_unit"] is None
    assert all(isinstance(t, float) for t in c["x_ticks"] + c["y_ticks"])
    assert all(isinstance(t, str) for t in c["y_tick_labels"])
    assert len(c["elements"][0]["points"]) == 50


@pytest.mark.parametrize("scale", ["symlog", "logit", "asinh"])
def test_other_scales_by_name(scale):
    if scale == "asinh" and not hasattr(matplotlib.scale, "AsinhScale"):
        pytest.skip("matplotlib without asinh")
    plt.plot([0.1, 0.5, 0.9], [0.2, 0.4, 0.6])
    plt.xscale(scale)
    assert chart()["x_scale"] == scale


def test_categorical_scale_from_strings():
    plt.plot([1, 2, 3], ["low", "mid", "high"])
    c = chart()
    assert c["type"] == "line"
    assert (c["x_scale"], c["y_scale"]) == ("linear", "categorical")
    assert c["y_tick_labels"] == ["low", "mid", "high"]
    assert c["elements"][0]["points"] == [[1.0, "low"], [2.0, "mid"], [3.0, "high"]]


def test_categorical_scale_from_labelled_ticks():
    plt.plot([0, 1, 2], [5, 7, 6])
    plt.xticks([0, 1, 2], ["Mon", "Tue", "Wed"])
    c = chart()
    assert c["x_scale"] == "categorical"
    assert c["x_tick_labels"] == ["Mon", "Tue", "Wed"]


def test_datetime_scale_from_numpy_datetimes():
    t = np.arange("2024-01-01T00", "2024-01-01T06", dtype="datetime64[h]")
    plt.plot(t, [3, 1, 4, 1, 5, 9])
    c = chart()
    assert c["x_scale"] == "datetime"
    assert c["elements"][0]["points"][0] == ["2024-01-01T00:00:00", 3.0]


def test_datetime_points_of_pandas_and_numpy():
    pd = pytest.importorskip("pandas")
    plt.plot(pd.to_datetime(["2024-02-01 06:00", "2024-02-02 00:00:00.25"]), [1, 2])
    plt.plot(np.array(["2024-02-03", "NaT"], dtype="datetime64[D]"), [3, 4])
    first, second = chart()["elements"]
    assert first["points"] == [["2024-02-01T06:00:00.000000", 1.0],
                               ["2024-02-02T00:00:00.250000", 2.0]]
    assert second["points"] == [["2024-02-03", 3.0], [None, 4.0]]


def test_pandas_time_series_counted_in_periods():
    pd = pytest.importorskip("pandas")
    hours = pd.date_range("2024-06-01 06:00", periods=4, freq="H")
    pd.Series([1, 3, 2, 5], index=hours).plot()     # x: hours since 1970
    c = chart()
    assert c["x_scale"] == "datetime"
    assert c["x_ticks"] and all(t.startswith("2024-06-01T") for t in c["x_ticks"])
    assert [p[0] for p in c["elements"][0]["points"]] == [
        "2024-06-01T06:00:00", "2024-06-01T07:00:00", "2024-06-01T08:00:00",
        "2024-06-01T09:00:00"]


# -- scatter ----------------------------------------------------------------

def test_scatter_two_datasets():
    plt.scatter([1, 2, 3], [4, 5, 6], label="Left")
    plt.scatter([7, 8], [9, 10], c="red", label="Right")
    plt.xlabel("Width")
    plt.ylabel("Height")
    c = chart()
    assert c["type"] == "scatter"
    assert c["title"] is None
    assert (c["x_label"], c["y_label"]) == ("Width", "Height")
    assert (c["x_scale"], c["y_scale"]) == ("linear", "linear")
    assert all(isinstance(t, float) for t in c["x_ticks"] + c["y_ticks"])
    assert [e["label"] for e in c["elements"]] == ["Left", "Right"]
    assert c["elements"][0]["points"] == [[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]]
    assert c["elements"][1]["points"] == [[7.0, 9.0], [8.0, 10.0]]


def test_scatter_on_categories_and_dates_gives_names_and_iso_text():
    plt.scatter(["red", "green"], [datetime.datetime(2024, 5, 1, 12),
                                   datetime.datetime(2024, 5, 2)])
    c = chart()
    assert (c["x_scale"], c["y_scale"]) == ("categorical", "datetime")
    assert c["elements"][0]["label"] == "Scatter 0"
    assert c["elements"][0]["points"] == [
        ["red", "2024-05-01T12:00:00+00:00"], ["green", "2024-05-02T00:00:00+00:00"]]


# -- bar --------------------------------------------------------------------

def test_bar_vertical_categories():
    plt.bar(["Paris", "Lyon", "Nice"], [210, 52, 34], label="Population")
    plt.xlabel("City")
    plt.ylabel("People [10k]")
    plt.title("Cities")
    c = chart()
    assert c["type"] == "bar"
    assert c["title"] == "Cities"
    assert (c["x_label"], c["y_label"]) == ("City", "People [10k]")
    assert (c["x_unit"], c["y_unit"]) == (None, "10k")
    assert c["elements"] == [
        {"label": "Paris", "value": 210, "group": "Population"},
        {"label": "Lyon", "value": 52, "group": "Population"},
        {"label": "Nice", "value": 34, "group": "Population"}]
    assert "x_ticks" not in c and "x_scale" not in c


def test_bar_horizontal_swaps_axes_to_category_first():
    plt.barh(["tea", "coffee"], [3.5, 2.0], label="Cups")
    plt.xlabel("Per day (cups)")
    plt.ylabel("Drink")
    c = chart()
    assert (c["x_label"], c["y_label"]) == ("Drink", "Per day (cups)")
    assert (c["x_unit"], c["y_unit"]) == (None, "cups")
    assert c["elements"] == [{"label": "tea", "value": 3.5, "group": "Cups"},
                             {"label": "coffee", "value": 2.0, "group": "Cups"}]


def test_bar_grouped_around_labelled_ticks():
    x = np.arange(2)
    plt.bar(x - 0.2, [1, 2], 0.4, label="2023")
    plt.bar(x + 0.2, [3, 4], 0.4, label="2024")
    plt.xticks(x, ["Q1", "Q2"])
    assert [(e["label"], e["value"], e["group"]) for e in chart()["elements"]] == [
        ("Q1", 1, "2023"), ("Q2", 2, "2023"), ("Q1", 3, "2024"), ("Q2", 4, "2024")]


def test_bar_stacked_unnamed_groups_and_error_bars():
    plt.bar(["a", "b"], [1, 2], yerr=[0.1, 0.2])
    plt.bar(["a", "b"], [3, 1], bottom=[1, 2])
    c = chart()
    assert c["type"] == "bar"
    assert [(e["label"], e["value"], e["group"]) for e in c["elements"]] == [
        ("a", 1, "Group 0"), ("b", 2, "Group 0"), ("a", 3, "Group 1"), ("b", 1, "Group 1")]


def test_bar_error_bars_drawn_as_lines_belong_to_the_bars():
    fig, ax = plt.subplots()
    ax.bar(["a", "b"], [2, 3])
    ax.plot([0, 0], [1.5, 2.5], color="black")      # seaborn draws them so
    ax.plot([1, 1], [2.5, 3.5], color="black")
    assert chart(fig)["type"] == "bar"
    ax.plot([0.3, 0.3], [1, 2])                      # not through a bar
    assert chart(fig)["type"] == "unknown"


def test_seaborn_bar_plot_and_histogram():
    sns = pytest.importorskip("seaborn")
    sns.barplot(x=["cat", "dog", "cat", "dog"], y=[4, 6, 2, 8])   # means, with CIs
    assert [(e["label"], e["value"]) for e in chart()["elements"]] == [("cat", 3), ("dog", 7)]
    plt.close("all")
    sns.histplot([1, 2, 2, 3, 3, 3], bins=3)    # with an invisible NaN bar for its legend
    c = chart()
    assert c["type"] == "bar" and c["y_label"] == "Count"
    assert [e["value"] for e in c["elements"]] == [1, 2, 3]


def test_histogram_bars_are_labelled_by_their_middle():
    plt.hist([1, 2, 2, 3, 3, 3, 4], bins=[0, 2, 4])
    assert [(e["label"], e["value"]) for e in chart()["elements"]] == [("1", 1), ("3", 6)]


def test_pandas_bar_plot_labels_from_the_index():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"north": [5, 7], "south": [2, 9]}, index=["2023", "2024"])
    df.plot.bar()
    assert [(e["label"], e["value"], e["group"]) for e in chart()["elements"]] == [
        ("2023", 5, "north"), ("2024", 7, "north"), ("2023", 2, "south"), ("2024", 9, "south")]


# -- pie --------------------------------------------------------------------

def test_pie_angles_and_radius():
    fig, ax = plt.subplots()
    ax.pie([2, 1, 1], labels=["rent", "food", "fun"], startangle=90,
           autopct="%1.0f%%", radius=0.8)
    ax.set_title("Budget")
    c = chart(fig)
    assert c == {"type": "pie", "title": "Budget", "elements": [
        {"label": "rent", "angle": 180, "radius": 0.8},
        {"label": "food", "angle": 90, "radius": 0.8},
        {"label": "fun", "angle": 90, "radius": 0.8}]}


def test_pie_float32_noise_is_rounded_and_unlabelled_slices_named():
    fig, ax = plt.subplots()
    ax.pie([85, 15], startangle=90)           # 306.0 is 305.99999... in float32
    assert [(e["label"], e["angle"]) for e in chart(fig)["elements"]] == [
        ("Slice 0", 306), ("Slice 1", 54)]


# -- box and whisker --------------------------------------------------------

BOX_DATA = {"even": [10, 12, 14, 16, 18], "spread": [1, 5, 6, 7, 8, 30]}
BOX_STATS = [
    {"label": "even", "min": 10, "first_quartile": 12, "median": 14,
     "third_quartile": 16, "max": 18, "outliers": []},
    {"label": "spread", "min": 5, "first_quartile": 5.25, "median": 6.5,
     "third_quartile": 7.75, "max": 8, "outliers": [1, 30]}]


@pytest.mark.parametrize("patch_artist", [True, False])
def test_box_and_whisker(patch_artist):
    fig, ax = plt.subplots()
    ax.boxplot(list(BOX_DATA.values()), labels=list(BOX_DATA), patch_artist=patch_artist)
    ax.set_title("Spread")
    ax.set_xlabel("Sample")
    ax.set_ylabel("Value (mm)")
    c = chart(fig)
    assert c["type"] == "box_and_whisker"
    assert c["title"] == "Spread"
    assert (c["x_label"], c["y_label"], c["x_unit"], c["y_unit"]) == (
        "Sample", "Value (mm)", None, "mm")
    assert c["elements"] == BOX_STATS


def test_box_and_whisker_horizontal_and_notched():
    fig, ax = plt.subplots()
    ax.boxplot(list(BOX_DATA.values()), labels=list(BOX_DATA), vert=False, notch=True)
    ax.set_xlabel("Value")
    ax.set_ylabel("Sample")
    c = chart(fig)
    assert c["type"] == "box_and_whisker"
    assert (c["x_label"], c["y_label"]) == ("Sample", "Value")
    assert c["elements"] == BOX_STATS


def test_box_and_whisker_means_are_not_outliers():
    fig, ax = plt.subplots()
    ax.boxplot(list(BOX_DATA.values()), labels=list(BOX_DATA), showmeans=True)
    c = chart(fig)                       # the mean of "spread" (9.5) > max (8)
    assert c["elements"] == BOX_STATS


def test_seaborn_boxplot():
    sns = pytest.importorskip("seaborn")
    sns.boxplot(x=["even"] * 5 + ["spread"] * 6,
                y=BOX_DATA["even"] + BOX_DATA["spread"])
    assert chart()["elements"] == BOX_STATS


def test_a_closed_line_alone_is_a_line_chart_not_a_box():
    plt.plot([0, 1, 1, 0, 0], [0, 0, 1, 1, 0])
    c = chart()
    assert c["type"] == "line" and len(c["elements"][0]["points"]) == 5


# -- superchart -------------------------------------------------------------

def test_superchart_of_several_axes():
    fig, (left, right, spare) = plt.subplots(1, 3)
    fig.suptitle("Overview")
    left.plot([1, 2, 3], [3, 1, 2])
    left.set_title("Trend")
    right.scatter([1, 2], [2, 1], label="Points")
    right.set_xlabel("X (m)")
    right.set_title("Cloud")
    c = chart(fig)
    assert c["type"] == "superchart"
    assert c["title"] == "Overview"
    assert sorted(c) == ["elements", "title", "type"]
    first, second = c["elements"]                  # the spare axes holds no data
    assert (first["type"], first["title"], first["x_label"]) == ("line", "Trend", None)
    assert len(first["elements"][0]["points"]) == 3
    assert (second["type"], second["title"], second["x_unit"]) == ("scatter", "Cloud", "m")
    assert second["elements"][0]["label"] == "Points"


def test_superchart_without_suptitle_mixes_types():
    fig, axs = plt.subplots(2, 1)
    axs[0].pie([1, 3])
    axs[1].imshow(np.eye(2))
    c = chart(fig)
    assert c["title"] is None
    assert [e["type"] for e in c["elements"]] == ["pie", "unknown"]


def test_colorbar_is_not_an_axes_of_its_own():
    fig, ax = plt.subplots()
    fig.colorbar(ax.scatter([1, 2], [3, 4], c=[0.1, 0.9]))
    c = chart(fig)
    assert c["type"] == "scatter" and c["elements"][0]["points"] == [[1.0, 3.0], [2.0, 4.0]]


# -- unknown and blank ------------------------------------------------------

def test_3d_axes_are_unknown():
    fig = plt.figure()
    ax = fig.add_subplot(projection="3d")
    ax.plot([0, 1], [1, 2], [2, 3])
    assert chart(fig)["type"] == "unknown"


def test_unknown_for_other_content():
    fig, ax = plt.subplots()
    ax.add_patch(plt.Circle((0, 0), 1, fill=False))
    ax.set_title("Ring")
    assert chart(fig) == {"type": "unknown", "title": "Ring", "elements": []}


@pytest.mark.parametrize("draw", [
    lambda ax: ax.imshow(np.eye(3)),
    lambda ax: (ax.bar([1, 2], [3, 4]), ax.plot([1, 2], [3, 4])),
    lambda ax: (ax.plot([1, 2]), ax.scatter([1], [2])),
    lambda ax: ax.errorbar([1, 2], [1, 2], yerr=[0.1, 0.2]),
    lambda ax: ax.fill_between([0, 1], [0, 1]),
    lambda ax: ax.violinplot([[1, 2, 3]]),
])
def test_unknown_for_mixed_or_unsupported_artists(draw):
    fig, ax = plt.subplots()
    draw(ax)
    assert chart(fig)["type"] == "unknown"


@pytest.mark.parametrize("make", [
    lambda: plt.figure(),
    lambda: plt.subplots()[0],
    lambda: plt.subplots(2, 2)[0],
    lambda: (plt.figure(), plt.title("only a title"), plt.text(0.5, 0.5, "hi"))[0],
])
def test_blank_figure_has_no_chart(make):
    assert chart_of(make()) is None


# -- robustness -------------------------------------------------------------

class BrokenLine(matplotlib.lines.Line2D):
    def get_xdata(self, orig=True):
        raise RuntimeError("broken on purpose")


def test_broken_artist_gives_unknown_not_an_exception():
    fig, ax = plt.subplots()
    ax.add_line(BrokenLine([0, 1], [0, 1]))
    ax.set_title("Odd")
    assert chart(fig) == {"type": "unknown", "title": "Odd", "elements": []}


def test_broken_axes_in_a_superchart_only_spoils_its_own_chart():
    fig, (good, bad) = plt.subplots(1, 2)
    good.bar(["a"], [1])
    bad.add_line(BrokenLine([0, 1], [0, 1]))
    bad.get_title = None                           # not callable: raises
    assert [e["type"] for e in chart(fig)["elements"]] == ["bar", "unknown"]


@pytest.mark.parametrize("thing", [None, 42, "figure", object()])
def test_not_a_figure_gives_none(thing):
    assert chart_of(thing) is None


def test_odd_data_is_still_json():
    fig, ax = plt.subplots()
    ax.plot([float("inf"), 1, 2], np.ma.masked_array([1, 2, 3], mask=[0, 1, 0]))
    points = chart(fig)["elements"][0]["points"]
    assert points == [[None, 1.0], [1.0, None], [2.0, 3.0]]


def test_the_figure_draws_the_same_with_or_without_a_chart():
    def make():
        fig, axs = plt.subplots(1, 3)
        axs[0].plot([datetime.date(2024, 1, d) for d in (1, 2, 3)], [1, 3, 2])
        axs[1].bar(["x", "y"], [2, 1])
        axs[2].boxplot([[1, 2, 3, 4, 9]])
        return fig
    untouched, touched = make(), make()
    chart_of(touched)                              # before any draw
    before = png(touched)
    chart_of(touched)                              # and after one
    assert png(untouched) == before == png(touched)
