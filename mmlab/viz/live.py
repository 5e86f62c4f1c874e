"""`LivePlot`: the loss and τ of a `fit` run, redrawn while it trains (a `fit` callback)."""

from __future__ import annotations

import contextlib
import math
from typing import Any

from plotly.subplots import make_subplots

from mmlab import _checks
from mmlab.train import Callback, History, TrainState
from mmlab.viz._widgets import LiveFigure, has_figure_widget

__all__ = ["LivePlot"]


class LivePlot(Callback):
    """Loss and τ against steps in one figure, redrawn every `every` steps while training.

    A plotly `FigureWidget` when anywidget is installed, otherwise a plain figure redrawn in an
    ipywidgets Output (`mmlab.viz._widgets.LiveFigure`). Redrawing reads the logged values
    from the device (a sync on a GPU), so keep `every` ≥ 10. Outside a notebook it only keeps
    `self.figure` up to date.

    Args:
        every: redraw every this many steps.
        display: show the figure in the notebook when training starts.
        title: the figure title.
    """

    def __init__(self, every: int = 10, display: bool = True, title: str = "Training") -> None:
        self.every = _checks.check_int("every", every)
        self.display = bool(display)
        fig = make_subplots(specs=[[{"secondary_y": True}]])
        fig.add_scatter(x=[], y=[], name="loss", mode="lines", secondary_y=False)
        fig.add_scatter(x=[], y=[], name="temperature τ", mode="lines", secondary_y=True)
        fig.update_layout(title=title, height=320, margin=dict(l=60, r=60, t=50, b=40))
        fig.update_xaxes(title_text="step")
        fig.update_yaxes(title_text="training loss (nats)", secondary_y=False)
        fig.update_yaxes(title_text="temperature τ", secondary_y=True)
        self.is_widget = has_figure_widget()
        self._live = LiveFigure(fig)
        self.figure: Any = self._live.fig
        self._shown = False

    def _show(self) -> None:
        if self._shown or not self.display:
            return
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:
            return
        if get_ipython() is not None:
            display(self._live.widget)
            self._shown = True

    def update(self, history: History) -> None:
        """Copy `history` into the figure and redraw."""
        taus = [math.nan if t is None else t for t in history.temperature]
        with self.figure.batch_update() if self.is_widget else contextlib.nullcontext():
            self.figure.data[0].x, self.figure.data[0].y = list(history.step), list(history.loss)
            self.figure.data[1].x, self.figure.data[1].y = list(history.step), taus
        self._show()
        self._live.refresh()

    def on_start(self, state: TrainState) -> None:  # noqa: D102
        self._show()

    def on_step(self, state: TrainState) -> None:  # noqa: D102
        if state.step % self.every == 0:
            self.update(state.history)

    def on_end(self, state: TrainState) -> None:  # noqa: D102
        self.update(state.history)
