"""Offline plotly set-up for notebooks: pick a renderer, export HTML without a CDN.

In a Jupyter kernel, plotly's `plotly_mimetype` renderer emits `application/vnd.plotly.v1+json`,
which JupyterLab draws with its bundled extension. `nbconvert --to html` drops that mime type,
so a notebook exported to HTML needs `plotly_mimetype+notebook`, which also embeds plotly.js
(about 5 MB per notebook). Nothing here ever loads JavaScript from a CDN: the course must work
offline, and `include_plotlyjs="cdn"` renders a blank page without network access.
"""

from __future__ import annotations

import os
import re

import plotly.graph_objects as go
import plotly.io as pio
from plotly.io._base_renderers import NotebookRenderer

HTML_EXPORT_ENV = "MMLAB_HTML_EXPORT"
RENDERER_LIVE = "plotly_mimetype"
RENDERER_EXPORT = "plotly_mimetype+notebook"
# plotly's notebook renderer hard-codes `include_mathjax="cdn"`: every figure's HTML then loads
# MathJax from cdnjs.cloudflare.com. We strip that tag (our figures use no LaTeX).
_MATHJAX_CDN = re.compile(r'<script src="https?://[^"]*mathjax[^"]*"></script>', re.IGNORECASE)


class OfflineNotebookRenderer(NotebookRenderer):
    """plotly's "notebook" renderer with plotly.js inlined and no MathJax CDN script tag."""

    def __init__(self) -> None:
        super().__init__(connected=False)

    def to_mimebundle(self, fig_dict: dict) -> dict:
        bundle = super().to_mimebundle(fig_dict)
        bundle["text/html"] = _MATHJAX_CDN.sub("", bundle["text/html"])
        return bundle


def setup_notebook(html_export: bool | None = None) -> str:
    """Choose plotly's renderer for this kernel; call once at the top of a notebook.

    Args:
        html_export: True to embed plotly.js so that `nbconvert --to html` keeps the plots
            (`plotly_mimetype+notebook`); False for live JupyterLab only (`plotly_mimetype`).
            None (default) reads the environment variable `MMLAB_HTML_EXPORT` (`make course`
            sets it to 1).
    Returns:
        The renderer name now in `plotly.io.renderers.default`.
    """
    if html_export is None:
        html_export = (os.environ.get(HTML_EXPORT_ENV, "").strip().lower()
                       in {"1", "true", "yes", "on"})
    if not isinstance(html_export, bool):
        raise TypeError(f"`html_export` must be True, False or None, "
                        f"got {type(html_export).__name__}.")
    renderer = RENDERER_EXPORT if html_export else RENDERER_LIVE
    if html_export and not isinstance(pio.renderers["notebook"], OfflineNotebookRenderer):
        # the notebook renderer must inline plotly.js and fetch nothing from a CDN
        pio.renderers["notebook"] = OfflineNotebookRenderer()
    pio.renderers.default = renderer
    return renderer


def figure_html(fig: go.Figure, *, include_plotlyjs: bool = True, full_html: bool = False) -> str:
    """HTML for a figure that works offline: plotly.js inlined (True) or assumed present (False).

    Args:
        fig: a plotly figure.
        include_plotlyjs: True inlines plotly.js (~5 MB); False emits only the plot div and the
            call to an already loaded plotly.js. "cdn" and URLs are refused (offline course).
        full_html: wrap the result in `<html>…</html>`.
    Returns:
        The HTML string.
    """
    if not isinstance(fig, go.Figure):
        raise TypeError(f"`fig` must be a plotly.graph_objects.Figure, got {type(fig).__name__}.")
    if not isinstance(include_plotlyjs, bool):
        raise ValueError(f"`include_plotlyjs` must be True or False, got {include_plotlyjs!r}; "
                         "a CDN or URL would need network access, which the course never assumes.")
    return fig.to_html(include_plotlyjs=include_plotlyjs, full_html=full_html)
