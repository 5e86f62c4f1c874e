"""A plotly figure that can be updated inside an ipywidgets layout.

`plotly.graph_objects.FigureWidget` updates the browser in place but needs the `anywidget`
package. Without it we hold a plain `go.Figure` and redraw it in an `ipywidgets.Output`
(one plotly mime bundle per update; a few milliseconds for a bar chart).
"""

from __future__ import annotations

import functools

import ipywidgets as widgets
import plotly.graph_objects as go


@functools.cache
def has_figure_widget() -> bool:
    """True when `go.FigureWidget` can be built (plotly ≥ 6 needs `anywidget`)."""
    try:
        go.FigureWidget()
    except ImportError:
        return False
    return True


class LiveFigure:
    """A figure (`.fig`) plus the widget that shows it (`.widget`); call `refresh()` after
    changes."""

    def __init__(self, fig: go.Figure) -> None:
        if has_figure_widget():
            self.fig = go.FigureWidget(fig)
            self.widget = self.fig
            self._output = None
        else:
            self.fig = fig
            self._output = widgets.Output()
            self.widget = self._output
        self.refresh()

    def refresh(self) -> None:
        """Redraw the figure in its Output (a no-op for a FigureWidget, which syncs itself)."""
        if self._output is None:
            return
        self._output.clear_output(wait=True)
        with self._output:
            self.fig.show()
