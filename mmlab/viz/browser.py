"""Browse a figure with sliders and dropdowns, redrawing it in place.

`ipywidgets.interact` re-displays a new figure inside an `Output` widget at every change. A
`figure_browser` instead keeps one plotly `FigureWidget` and swaps its traces and layout, so the
page does not jump, and a cell can be re-run any number of times (headless runners such as
nbclient can stall re-running an `interact` whose output holds a plotly figure). An optional
HTML line under the figure carries text that goes with it (e.g. a token overlay).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from mmlab.viz._widgets import LiveFigure

Drawing = go.Figure | tuple[go.Figure, str]


def _split(out: Any) -> tuple[go.Figure, str | None]:
    if isinstance(out, go.Figure):
        return out, None
    if (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], go.Figure)
            and isinstance(out[1], str)):
        return out
    raise TypeError(f"`draw` must return a plotly Figure or a (Figure, html str) pair, "
                    f"got {type(out).__name__}.")


def figure_browser(draw: Callable[..., Drawing],
                   controls: Mapping[str, widgets.ValueWidget]) -> widgets.VBox:
    """Controls on top, then the figure `draw(**values)`, redrawn in place when a control changes.

    Args:
        draw: called with one keyword argument per control (its current value); returns a
            `go.Figure`, or a `(figure, html)` pair whose HTML is shown under the figure.
        controls: keyword name → an ipywidgets value widget (`IntSlider`, `Dropdown`, ...).
    Returns:
        A `VBox` (controls, figure, HTML); display it, or let it be a cell's last expression.
        `box.figure` is the live figure, `box.redraw()` redraws with the current values.
    """
    if not callable(draw):
        raise TypeError(f"`draw` must be callable (values → Figure), got {type(draw).__name__}.")
    if not isinstance(controls, Mapping) or not controls:
        raise ValueError("`controls` must be a non-empty dict of name → widget, e.g. "
                         "{'i': widgets.IntSlider(0, 0, 9)}.")
    for name, w in controls.items():
        if not isinstance(w, widgets.ValueWidget):
            raise TypeError(f"`controls[{name!r}]` must be an ipywidgets value widget "
                            f"(IntSlider, Dropdown, ...), got {type(w).__name__}.")

    def values() -> dict[str, Any]:
        return {name: w.value for name, w in controls.items()}

    fig, html = _split(draw(**values()))
    live = LiveFigure(fig)
    note = widgets.HTML(html or "")

    def redraw(*_: Any) -> None:
        new, new_html = _split(draw(**values()))
        if isinstance(live.fig, go.FigureWidget):
            with live.fig.batch_update():
                live.fig.data = ()
                live.fig.add_traces(list(new.data))
                live.fig.layout = new.layout
        else:
            live.fig = new
            live.refresh()
        note.value = new_html or ""

    for w in controls.values():
        w.observe(redraw, names="value")
    box = widgets.VBox([widgets.HBox(list(controls.values())), live.widget, note])
    box.figure, box.redraw = live.fig, redraw  # for tests and for code that wants to reach in
    return box
