"""iris_charts -- the `chart` result field: a matplotlib Figure described in
the chart schema of E2B's code-interpreter SDK (its chart types: line,
scatter, bar, pie, box_and_whisker, superchart, unknown).

    chart_of(fig) -> dict | None

The dict is JSON-ready (str, float, None, dicts, lists; points are tuples,
which json writes as arrays; no NaN).  None means
nothing chartable: no axes holds data.  chart_of never raises and never
changes what the figure draws; an axes it cannot read becomes an `unknown`
chart.  Field by field, and what each matplotlib construct maps to:
docs/charts.md.

Imported by the Python kernel (pre-imported in the zygote), so matplotlib and
numpy are imported here, once.
"""

import datetime
import gc
import math
import re
import sys
import warnings

import numpy as np
from matplotlib import category, ticker
from matplotlib import dates as mdates
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.container import BarContainer
from matplotlib.lines import Line2D
from matplotlib.patches import PathPatch, Rectangle, Wedge
from matplotlib.text import Text

__all__ = ["chart_of"]

# A unit is the text in "(...)" after a space, or in "[...]": "Time (s)",
# "Mass [kg]".
_UNIT = re.compile(r"\s\(([^()]+)\)|\[([^\[\]]+)\]")

_DATE_CONVERTERS = tuple(c for c in (
    getattr(mdates, "DateConverter", None),
    getattr(mdates, "ConciseDateConverter", None),
    getattr(mdates, "_SwitchableDateConverter", None)) if c is not None)
_DATE_FORMATTERS = (mdates.DateFormatter, mdates.AutoDateFormatter,
                    mdates.ConciseDateFormatter)


def chart_of(fig):
    """The chart dict of matplotlib Figure fig, or None when no axes of it
    holds data (or fig is not a figure).  Several axes (colorbars and hidden
    axes not counted) make a `superchart` whose elements are the charts of
    the axes that hold data.  Never raises."""
    gc_was_on = gc.isenabled()
    gc.disable()        # a chart is acyclic: collecting while building it
    try:                # (a million points) would only cost time
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _figure_chart(fig)
    except Exception:
        return None
    finally:
        if gc_was_on:
            gc.enable()


def _figure_chart(fig):
    layout = [ax for ax in fig.get_axes()
              if ax.get_visible() and not hasattr(ax, "_colorbar")]
    filled = [ax for ax in layout if ax.has_data()]
    if not filled:
        return None
    if len(layout) == 1:
        return _axes_chart(filled[0])
    return {"type": "superchart", "title": _suptitle(fig),
            "elements": [_axes_chart(ax) for ax in filled]}


def _suptitle(fig):
    text = getattr(fig, "_suptitle", None)
    return (text.get_text() or None) if text is not None else None


# -- one axes ---------------------------------------------------------------

def _axes_chart(ax):
    """The chart of one axes: its type decides the extractors tried (the
    first that reads the axes wins)."""
    try:
        for extract in _EXTRACTORS.get(_chart_type(ax), ()):
            chart = extract(ax)
            if chart is not None:
                return chart
    except Exception:
        pass
    return _unknown(ax)


def _unknown(ax):
    try:
        title = _title(ax)
    except Exception:
        title = None
    return {"type": "unknown", "title": title, "elements": []}


# What each artist of an axes counts as.  Texts, reference lines (axhline,
# axvline, axline: not in data coordinates) and the error bars that bar()
# draws count as nothing.
def _artist_kind(ax, artist, bars, ignored):
    if isinstance(artist, Text) or id(artist) in ignored:
        return None
    if isinstance(artist, Line2D):
        return "line" if _is_data_line(ax, artist) else None
    if isinstance(artist, PathCollection):
        return "scatter"
    if isinstance(artist, PolyCollection):
        return "band"                   # fill_between, a confidence band
    if isinstance(artist, Wedge):
        return "pie"
    if isinstance(artist, Rectangle):
        return "bar" if id(artist) in bars else "other"
    if isinstance(artist, PathPatch):
        return "box"
    return "other"


# The set of artist kinds -> the chart type.
_TYPE_OF_KINDS = {
    frozenset({"line"}): "line",
    frozenset({"line", "band"}): "line",
    frozenset({"scatter"}): "scatter",
    frozenset({"bar"}): "bar",
    frozenset({"pie"}): "pie",
    frozenset({"box"}): "box_and_whisker",
    frozenset({"box", "line"}): "box_and_whisker",
}


def _chart_type(ax):
    if ax.name not in ("rectilinear", "polar"):
        return "unknown"                # 3-D, map projections
    containers = _bar_containers(ax)
    bars = {id(r) for c in containers for r in c}
    ignored = {id(a) for c in containers for a in _errorbar_artists(c)}
    kinds = {_artist_kind(ax, a, bars, ignored) for a in _artists(ax)} - {None}
    # Error bars drawn as plain lines (seaborn's barplot) belong to the bars.
    if kinds == {"bar", "line"} and _lines_are_error_bars(ax, containers):
        kinds = {"bar"}
    return _TYPE_OF_KINDS.get(frozenset(kinds), "unknown")


def _artists(ax):
    """The artists added to ax, in order (matplotlib >= 3.5 keeps one list)."""
    children = getattr(ax, "_children", None)
    if children is not None:
        return list(children)
    return (list(ax.lines) + list(ax.patches) + list(ax.collections)
            + list(ax.images) + list(ax.artists) + list(ax.texts))


def _errorbar_artists(cont):
    """The artists of bar(yerr=...)'s ErrorbarContainer, flattened."""
    out, todo = [], [getattr(cont, "errorbar", None)]
    while todo:
        item = todo.pop()
        if isinstance(item, (tuple, list)):
            todo.extend(item)
        elif item is not None:
            out.append(item)
    return out


def _lines_are_error_bars(ax, containers):
    """Every data line is a segment along the value axis through the middle
    of a bar."""
    x_middles, y_middles = [], []       # of vertical bars, of horizontal ones
    for cont in containers:
        if _is_horizontal(cont):
            y_middles += [r.get_y() + r.get_height() / 2 for r in cont]
        else:
            x_middles += [r.get_x() + r.get_width() / 2 for r in cont]
    for line in ax.get_lines():
        if not _is_data_line(ax, line):
            continue
        xs, ys = _xy(line)
        if len(xs) != 2 or not (_at_one_of(xs, x_middles)
                                or _at_one_of(ys, y_middles)):
            return False
    return True


def _at_one_of(coords, middles):
    """Both coordinates are one of middles."""
    return coords[0] == coords[1] and any(abs(coords[0] - m) < 1e-9
                                          for m in middles)


def _is_data_line(ax, line):
    return line.get_transform() is ax.transData


def _title(ax):
    for loc in ("center", "left", "right"):
        text = ax.get_title(loc)
        if text:
            return text
    return None


def _labels(ax, swap=False):
    """x_label, y_label, x_unit, y_unit; swap for horizontal bars and boxes
    (x_* then describe the category axis, as for vertical ones)."""
    x, y = ax.get_xlabel() or None, ax.get_ylabel() or None
    if swap:
        x, y = y, x
    return {"x_label": x, "y_label": y, "x_unit": _unit(x), "y_unit": _unit(y)}


def _unit(label):
    m = _UNIT.search(label) if label else None
    return (m.group(1) or m.group(2)) if m else None


# -- numbers and axes -------------------------------------------------------

def _round(x, digits=12):
    """x rounded to `digits` significant digits (float noise such as
    84.75000000000001 removed); None if not finite."""
    x = float(x)
    return float("%.*g" % (digits, x)) if math.isfinite(x) else None


def _number_text(x):
    x = _round(x, 10)
    return "%g" % x if x is not None else ""


def _is_datetime(axis):
    return (isinstance(getattr(axis, "converter", None), _DATE_CONVERTERS)
            or isinstance(axis.get_major_formatter(), _DATE_FORMATTERS))


def _is_categorical(axis):
    return isinstance(getattr(axis, "converter", None),
                      category.StrCategoryConverter)


def _categories(axis):
    """{position: name} of a categorical axis, else {}."""
    if not _is_categorical(axis):
        return {}
    mapping = getattr(getattr(axis, "units", None), "_mapping", None) or {}
    return {int(v): str(k) for k, v in mapping.items()}


def _ticks(axis):
    """[(location, label text)] of the major ticks inside the view."""
    locs = list(axis.get_majorticklocs())
    axis.get_majorticklabels()      # formats the tick labels, as a draw does
    ticks = axis.get_major_ticks(len(locs))
    lo, hi = sorted(axis.get_view_interval())
    eps = 1e-9 * ((hi - lo) or 1.0)
    return [(float(loc), t.label1.get_text()) for loc, t in zip(locs, ticks)
            if lo - eps <= loc <= hi + eps]


def _axis_fields(ax, name):
    """x_ticks, x_tick_labels, x_scale (name "x"), or the same for y."""
    axis = ax.xaxis if name == "x" else ax.yaxis
    ticks = _ticks(axis)
    if _is_datetime(axis):
        date_text = _date_texter(axis)
        locs = [date_text(loc) for loc, _ in ticks]
    else:
        locs = [_round(loc) for loc, _ in ticks]
    return {name + "_ticks": locs,
            name + "_tick_labels": [text for _, text in ticks],
            name + "_scale": _scale(axis, ticks)}


def _scale(axis, ticks):
    if _is_datetime(axis):
        return "datetime"
    scale = axis.get_scale()
    if scale != "linear":
        return scale
    if _is_categorical(axis) or _fixed_labels_at_indices(axis, ticks):
        return "categorical"
    return "linear"


def _ticks_placed(axis):
    """Ticks placed by hand (set_xticks, boxplot, pandas and seaborn bar
    plots), not by a locator that spaces them by value."""
    return isinstance(axis.get_major_locator(), ticker.FixedLocator)


def _fixed_labels_at_indices(axis, ticks):
    """Labels set by hand (set_xticks(range(n), labels)) at 0..n-1 that are
    not those numbers: categories, as pandas' bar plots make them."""
    if not ticks or not _ticks_placed(axis):
        return False
    return (all(loc == i for i, (loc, _) in enumerate(ticks))
            and any(text != str(i) for i, (_, text) in enumerate(ticks)))


def _date_texter(axis):
    """A function: number on the date axis -> ISO 8601 text.  matplotlib
    counts days; pandas' time series plots count periods of their
    frequency."""
    pd = sys.modules.get("pandas")
    freq = getattr(axis.get_major_formatter(), "freq", None)
    if (pd is not None and freq is not None
            and type(getattr(axis, "converter", None)).__name__ == "PeriodConverter"):
        return lambda num: pd.Period(ordinal=int(round(num)),
                                     freq=freq).to_timestamp().isoformat()
    return lambda num: mdates.num2date(num).isoformat()


def _labeller(axis):
    """A function: position on axis -> the name of the category there, else
    (ticks labelled by name: categories, set_xticks(labels=...)) the label of
    the nearest tick within half a tick spacing (grouped bars sit around
    their tick), else the position itself as text (a date on a date axis)."""
    names = _categories(axis)
    date_text = _date_texter(axis) if _is_datetime(axis) else None
    named = bool(names) or _ticks_placed(axis)
    ticks = [(loc, text) for loc, text in _ticks(axis) if text] if named else []
    locs = sorted(loc for loc, _ in ticks)
    reach = min((b - a for a, b in zip(locs, locs[1:])), default=math.inf) / 2

    def label(pos):
        k = round(pos)
        if abs(pos - k) < 1e-6 and k in names:
            return names[k]
        if ticks:
            loc, text = min(ticks, key=lambda t: abs(t[0] - pos))
            if abs(loc - pos) < reach:
                return text
        return date_text(pos) if date_text else _number_text(pos)
    return label


# -- values of points -------------------------------------------------------

def _values(data, axis):
    """A line's or scatter's coordinates as JSON values: dates as ISO 8601
    text, strings kept, numbers as floats (on a date axis: ISO text), masked
    or non-finite values as None."""
    arr = np.ma.asarray(data)
    date_text = _date_texter(axis) if _is_datetime(axis) else None
    if arr.dtype.kind in "iufb":
        nums = np.ma.filled(arr.astype(float), np.nan).ravel()
        if date_text:
            return [date_text(v) if math.isfinite(v) else None for v in nums]
        out = nums.tolist()
        if not np.isfinite(nums).all():
            out = [v if math.isfinite(v) else None for v in out]
        return out
    if arr.dtype.kind == "M":
        return _datetimes(np.ma.filled(arr, np.datetime64("NaT")).ravel())
    return [_value(v, date_text) for v in np.ma.filled(arr, None).ravel()]


def _datetimes(arr):
    """numpy datetimes as ISO text: dates as dates, times to the second (to
    the microsecond when they have fractions), NaT as None."""
    unit = np.datetime_data(arr.dtype)[0]
    if unit in ("Y", "M", "W", "D"):
        arr, unit = arr.astype("datetime64[D]"), "D"
    else:
        whole = arr.astype("datetime64[s]")
        unit = "s" if (np.isnat(arr) | (arr == whole)).all() else "us"
    return [None if t == "NaT" else t
            for t in np.datetime_as_string(arr, unit=unit).tolist()]


def _value(v, date_text):
    if isinstance(v, (datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, np.datetime64):
        return _datetimes(np.array([v]))[0]
    if hasattr(v, "to_timestamp"):                  # a pandas Period
        return v.to_timestamp().isoformat()
    if isinstance(v, (str, np.str_)):
        return str(v)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not math.isfinite(f):
        return None
    return date_text(f) if date_text else f


def _name(label, fallback):
    """matplotlib's unnamed artists have labels starting with "_"."""
    label = str(label) if label is not None else ""
    return fallback if not label or label.startswith("_") else label


def _point_chart(ax, kind, series):
    chart = {"type": kind, "title": _title(ax), "elements": series}
    chart.update(_labels(ax))
    chart.update(_axis_fields(ax, "x"))
    chart.update(_axis_fields(ax, "y"))
    return chart


# -- extractors -------------------------------------------------------------

def _line_chart(ax):
    lines = [ln for ln in ax.get_lines() if _is_data_line(ax, ln)]
    series = []
    for i, line in enumerate(lines):
        xs = _values(line.get_xdata(), ax.xaxis)
        ys = _values(line.get_ydata(), ax.yaxis)
        series.append({"label": _name(line.get_label(), "Line %d" % i),
                       "points": list(zip(xs, ys))})
    return _point_chart(ax, "line", series)


def _scatter_chart(ax):
    series = []
    for i, coll in enumerate(c for c in ax.collections
                             if isinstance(c, PathCollection)):
        offsets = np.ma.asarray(coll.get_offsets()).reshape(-1, 2)
        xs = _scatter_values(offsets[:, 0], ax.xaxis)
        ys = _scatter_values(offsets[:, 1], ax.yaxis)
        series.append({"label": _name(coll.get_label(), "Scatter %d" % i),
                       "points": list(zip(xs, ys))})
    return _point_chart(ax, "scatter", series)


def _scatter_values(nums, axis):
    """Scatter offsets are numbers: categories get their names back."""
    names = _categories(axis)
    values = _values(nums, axis)
    if not names:
        return values
    return [names.get(round(v), v) if isinstance(v, float) else v
            for v in values]


def _bar_containers(ax):
    return [c for c in ax.containers if isinstance(c, BarContainer)]


def _bar_chart(ax):
    containers = _bar_containers(ax)
    horizontal = [_is_horizontal(c) for c in containers]
    labels = {}                             # axis name -> its labeller
    bars = []
    for i, (cont, horiz) in enumerate(zip(containers, horizontal)):
        group = _name(cont.get_label(), "Group %d" % i)
        for rect in cont:
            if not _finite_rect(rect):
                continue                # seaborn's NaN legend handles
            if horiz:
                pos = rect.get_y() + rect.get_height() / 2
                value, axis = rect.get_width(), ax.yaxis
            else:
                pos = rect.get_x() + rect.get_width() / 2
                value, axis = rect.get_height(), ax.xaxis
            if axis.axis_name not in labels:
                labels[axis.axis_name] = _labeller(axis)
            bars.append({"label": labels[axis.axis_name](pos),
                         "value": _round(value, 15), "group": group})
    chart = {"type": "bar", "title": _title(ax), "elements": bars}
    chart.update(_labels(ax, swap=bool(horizontal) and all(horizontal)))
    return chart


def _finite_rect(rect):
    return all(math.isfinite(v) for v in (rect.get_x(), rect.get_y(),
                                          rect.get_width(), rect.get_height()))


def _is_horizontal(cont):
    orientation = getattr(cont, "orientation", None)
    if orientation is not None:
        return orientation == "horizontal"
    thickness = {r.get_height() for r in cont}   # barh: one for all bars
    return len(cont) > 1 and len(thickness) == 1


def _pie_chart(ax):
    wedges = [p for p in ax.patches if isinstance(p, Wedge)]
    # pie() computes its fractions in float32: 6 significant digits are
    # exact (324, not 323.99999141693115).
    slices = [{"label": _name(w.get_label(), "Slice %d" % i),
               "angle": _round(abs(w.theta2 - w.theta1), 6),
               "radius": _round(w.r, 6)} for i, w in enumerate(wedges)]
    return {"type": "pie", "title": _title(ax), "elements": slices}


# -- box and whisker --------------------------------------------------------
#
# boxplot() leaves no record of its statistics on the axes, only artists:
# a box outline (a PathPatch with patch_artist, else a closed line) whose
# full-width edges are Q1 and Q3; a median segment across it; whiskers along
# the value axis from those edges to min and max; caps; fliers (a
# marker-only line, after the means' one with showmeans).  Both orientations
# are tried; the one in which every box has a median and a whisker wins.

def _line_box(line):
    """The vertices of a closed box outline line (5 points; 11 for a notched
    box), else None."""
    if len(line.get_xdata()) not in (5, 11):
        return None
    xs, ys = _xy(line)
    if xs[0] != xs[-1] or ys[0] != ys[-1]:
        return None
    return np.column_stack([xs, ys])


def _xy(line):
    """A line's coordinates as numbers (dates and categories converted)."""
    xs = np.asarray(line.get_xdata(orig=False), dtype=float).ravel()
    ys = np.asarray(line.get_ydata(orig=False), dtype=float).ravel()
    return xs, ys


def _box_chart(ax):
    """A boxplot with patch_artist: its boxes are PathPatches."""
    lines = [ln for ln in ax.get_lines() if _is_data_line(ax, ln)]
    outlines = [p.get_path().vertices for p in ax.patches
                if isinstance(p, PathPatch)]
    return _boxes_chart(ax, outlines, lines)


def _line_box_chart(ax):
    """A boxplot without patch_artist is lines only: its boxes are closed
    lines.  None (a line chart, then) if there are none."""
    pairs = [(ln, _line_box(ln)) for ln in ax.get_lines()
             if _is_data_line(ax, ln)]
    outlines = [v for _, v in pairs if v is not None]
    lines = [ln for ln, v in pairs if v is None]
    return _boxes_chart(ax, outlines, lines) if outlines else None


def _boxes_chart(ax, outlines, lines):
    if not outlines:
        return None
    segments, markers = _segments(lines, len(outlines))
    found, vert, stats = max((_boxes_stats(outlines, segments, markers, vert)
                              for vert in (True, False)), key=lambda r: r[0])
    if found < len(outlines):
        return None
    label = _labeller(ax.xaxis if vert else ax.yaxis)
    elements = [dict(label=label(s.pop("middle")), **s) for s in stats]
    chart = {"type": "box_and_whisker", "title": _title(ax),
             "elements": elements}
    chart.update(_labels(ax, swap=not vert))
    return chart


def _segments(lines, boxes):
    """Two-point lines (whiskers, caps, medians) as (x0, x1, y0, y1), and the
    marker points (x, y) that may be outliers: per box, when boxplot()'s
    order shows which line holds its fliers (one marker line per box, or a
    means line then a fliers line); else all of them, for every box."""
    segments, markers = [], []
    for line in lines:
        xs, ys = _xy(line)
        if line.get_linestyle() in ("None", " ", ""):
            markers.append(list(zip(xs.tolist(), ys.tolist())))
        elif len(xs) == 2:
            segments.append((xs[0], xs[1], ys[0], ys[1]))
    if len(markers) in (boxes, 2 * boxes):
        step = len(markers) // boxes
        return segments, markers[step - 1::step]
    return segments, [[p for m in markers for p in m]] * boxes


def _boxes_stats(outlines, segments, markers, vert):
    """(how many boxes were read, vert, [stats]) with the category axis x
    (vert) or y."""
    if vert:
        segs = segments
    else:
        segs = [(s[2], s[3], s[0], s[1]) for s in segments]
        markers = [[(p[1], p[0]) for p in m] for m in markers]
    stats = []
    for verts, points in zip(outlines, markers):
        cv = verts if vert else verts[:, ::-1]
        s = _box_stats(cv[:, 0], cv[:, 1], segs, points)
        if s is None:
            return len(stats), vert, stats
        stats.append(s)
    return len(stats), vert, stats


def _box_stats(c, v, segs, points):
    """The statistics of one box whose outline is (c, v) (category and value
    coordinates), or None if its median or whiskers are not found."""
    c0, c1 = float(c.min()), float(c.max())
    tol = 1e-9 * max(1.0, abs(c1), float(np.abs(v).max()))
    full = [v[i] for i in range(len(v) - 1) if abs(v[i] - v[i + 1]) <= tol
            and abs(abs(c[i] - c[i + 1]) - (c1 - c0)) <= tol]
    q1, q3 = (min(full), max(full)) if full else (v.min(), v.max())
    mid = (c0 + c1) / 2
    # The median: the widest segment across the box, between Q1 and Q3.
    across = [s for s in segs if abs(s[2] - s[3]) <= tol
              and q1 - tol <= s[2] <= q3 + tol
              and c0 - tol <= min(s[0], s[1]) and max(s[0], s[1]) <= c1 + tol]
    # Whiskers: along the value axis through the middle, outside the box.
    along = [s for s in segs if abs(s[0] - mid) <= tol and abs(s[1] - mid) <= tol
             and (min(s[2], s[3]) >= q3 - tol or max(s[2], s[3]) <= q1 + tol)]
    if not across or not along:
        return None
    median = max(across, key=lambda s: abs(s[1] - s[0]))[2]
    ends = [e for s in along for e in (s[2], s[3])]
    low, high = min(ends + [q1]), max(ends + [q3])
    outliers = [p for cp, p in points if c0 - tol <= cp <= c1 + tol
                and (p < low - tol or p > high + tol)]
    return {"middle": mid, "min": _round(low), "first_quartile": _round(q1),
            "median": _round(median), "third_quartile": _round(q3),
            "max": _round(high), "outliers": [_round(p) for p in outliers]}


# Chart type -> the extractors to try, in order.
_EXTRACTORS = {
    "line": (_line_box_chart, _line_chart),
    "scatter": (_scatter_chart,),
    "bar": (_bar_chart,),
    "pie": (_pie_chart,),
    "box_and_whisker": (_box_chart,),
}
