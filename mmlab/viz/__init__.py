"""Interactive views: plotly figures and ipywidgets apps for embeddings, τ, retrieval and training.

Everything works offline (plotly.js is never loaded from a CDN). Call `setup_notebook()` once at
the top of a notebook; it picks the renderer (see `mmlab.viz.notebook`). Viz imports the rest of
mmlab; nothing imports viz.
"""

from mmlab.viz.audio_attribution import frame_attribution_figure
from mmlab.viz.browser import figure_browser
from mmlab.viz.controls_07 import (clip_attribution_figure, image_attribution_map,
                                   sample_attribution_figure)
from mmlab.viz.controls_a import cone_explorer, gap_shift_explorer, xor_explorer
from mmlab.viz.curves import bar_chart, line_chart, training_curves
from mmlab.viz.embeddings import plot_embeddings, trajectory_figure
from mmlab.viz.geometry import modality_gap_figure, similarity_heatmap, top1_hits
from mmlab.viz.live import LivePlot
from mmlab.viz.notebook import figure_html, setup_notebook
from mmlab.viz.overlays import image_overlay, spectrogram_overlay, token_overlay
from mmlab.viz.preview import (audio_player, audio_players, image_grid, show_batch,
                               spectrogram_figure, spectrogram_grid)
from mmlab.viz.reduce import Reducer, cache_info, clear_cache, reduce
from mmlab.viz.retrieval import RetrievalApp, encode_dataset, retrieval_app
from mmlab.viz.temperature import TemperatureExplorer, temperature_explorer, temperature_stats
from mmlab.viz.controls_b import *  # noqa: F401,F403  (notebooks 06, 08-11: the controls)

__all__ = ["setup_notebook", "figure_html", "Reducer", "reduce", "cache_info", "clear_cache",
           "plot_embeddings", "trajectory_figure", "modality_gap_figure", "similarity_heatmap",
           "top1_hits", "temperature_stats", "temperature_explorer", "TemperatureExplorer",
           "retrieval_app", "RetrievalApp", "encode_dataset", "training_curves", "LivePlot",
           "bar_chart", "line_chart", "image_overlay", "spectrogram_overlay", "token_overlay",
           "frame_attribution_figure", "figure_browser", "image_grid", "audio_player",
           "audio_players", "spectrogram_figure", "spectrogram_grid", "show_batch",
           "cone_explorer", "gap_shift_explorer", "xor_explorer", "image_attribution_map",
           "sample_attribution_figure", "clip_attribution_figure"]
