"""`figure_browser`: one live figure redrawn in place from the controls' values."""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import pytest

from mmlab.viz import figure_browser


def _draw(i: int = 0, kind: str = "bar"):
    y = np.arange(3) * (i + 1)
    trace = go.Bar(y=y) if kind == "bar" else go.Scatter(y=y)
    return go.Figure(trace, layout=dict(title=f"{kind} {i}")), f"<b>sample {i}</b>"


def test_redraws_in_place_from_every_control():
    i, kind = widgets.IntSlider(0, 0, 4), widgets.Dropdown(options=["bar", "line"], value="bar")
    box = figure_browser(_draw, {"i": i, "kind": kind})
    fig, note = box.children[1], box.children[2]
    assert isinstance(fig, go.FigureWidget) and box.figure is fig
    assert list(fig.data[0].y) == [0, 1, 2] and note.value == "<b>sample 0</b>"
    i.value = 3
    assert list(fig.data[0].y) == [0, 4, 8] and fig.layout.title.text == "bar 3" and note.value == "<b>sample 3</b>"
    kind.value = "line"
    assert len(fig.data) == 1 and fig.data[0].type == "scatter" and fig.layout.title.text == "line 3"
    assert box.children[0].children == (i, kind)


def test_a_figure_alone_and_errors():
    box = figure_browser(lambda i: go.Figure(go.Bar(y=[i])), {"i": widgets.IntSlider(2, 0, 4)})
    assert list(box.figure.data[0].y) == [2] and box.children[2].value == ""
    with pytest.raises(TypeError, match="draw"):
        figure_browser(lambda i: "not a figure", {"i": widgets.IntSlider()})
    with pytest.raises(TypeError, match="draw"):
        figure_browser(None, {"i": widgets.IntSlider()})
    with pytest.raises(ValueError, match="controls"):
        figure_browser(_draw, {})
    with pytest.raises(TypeError, match=r"controls\['i'\]"):
        figure_browser(_draw, {"i": 3})
