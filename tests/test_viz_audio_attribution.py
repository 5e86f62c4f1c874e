"""Tests for mmlab.viz.audio_attribution.frame_attribution_figure: curves checked against loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmlab.viz import frame_attribution_figure

DT = torch.float64


def positive_mass_per_frame(scores: torch.Tensor) -> np.ndarray:
    """Independent: a Python loop over frames and mel bins keeping each cell's positive part."""
    s = scores.double()
    if s.ndim == 1:
        return np.array([max(float(v), 0.0) for v in s])
    return np.array([sum(max(float(s[m, k]), 0.0) for m in range(s.shape[0])) for k in range(s.shape[1])])


def _no_cdn(fig) -> None:
    page = fig.to_html(include_plotlyjs=False, full_html=False)
    assert "cdn" not in page.lower() and "<script src=" not in page


def test_curves_times_and_span() -> None:
    torch.manual_seed(0)
    spec = torch.randn(8, 50, dtype=DT)
    ga = torch.rand(50, dtype=DT)
    ig = torch.randn(8, 50, dtype=DT)
    fig = frame_attribution_figure(spec, {"grad_attention": ga, "integrated_gradients": ig}, span=(0.1, 0.3),
                                   hop_seconds=0.02, title="when")
    heat, c_ga, c_ig, legend = fig.data
    assert fig.layout.title.text == "when"
    np.testing.assert_allclose(np.asarray(heat.z), spec.numpy())
    np.testing.assert_allclose(np.asarray(heat.x), [0.02 * k for k in range(50)])
    expected_ga, expected_ig = positive_mass_per_frame(ga), positive_mass_per_frame(ig)
    np.testing.assert_allclose(np.asarray(c_ga.y), expected_ga / expected_ga.max())
    np.testing.assert_allclose(np.asarray(c_ig.y), expected_ig / expected_ig.max())
    assert (c_ga.name, c_ig.name, legend.name) == ("grad_attention", "integrated_gradients", "spoken caption")
    bands = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(bands) == 2 and all((b.x0, b.x1) == (0.1, 0.3) for b in bands)  # one band per panel
    assert fig.layout.xaxis2.title.text == "time (s)" and fig.layout.yaxis.title.text == "mel bin"
    assert "attribution" in fig.layout.yaxis2.title.text
    _no_cdn(fig)


def test_single_map_without_normalisation_or_span() -> None:
    spec = torch.randn(4, 10)
    scores = torch.tensor([0.5, -1.0, 2.0, 0.0, 0.1, 0.2, -0.3, 0.0, 1.0, 3.0])
    fig = frame_attribution_figure(spec, scores, normalize=False)
    assert len(fig.data) == 2 and not fig.layout.shapes
    np.testing.assert_allclose(np.asarray(fig.data[1].y), positive_mass_per_frame(scores))
    # an all-negative map stays at zero instead of dividing by zero
    flat = frame_attribution_figure(spec, -torch.ones(10))
    np.testing.assert_array_equal(np.asarray(flat.data[1].y), np.zeros(10))


def test_rejects_bad_input() -> None:
    spec = torch.randn(4, 10)
    with pytest.raises(ValueError, match="`frame_scores` has shape .* but `spec`"):
        frame_attribution_figure(spec, torch.rand(9))
    with pytest.raises(ValueError, match=r"`frame_scores\['ig'\]` has shape"):
        frame_attribution_figure(spec, {"ig": torch.rand(5, 10)})
    with pytest.raises(ValueError, match="`frame_scores` is an empty dict"):
        frame_attribution_figure(spec, {})
    with pytest.raises(ValueError, match="`spec` must be a 2-D"):
        frame_attribution_figure(spec[None], torch.rand(10))
    with pytest.raises(TypeError, match="`frame_scores` must have a floating dtype"):
        frame_attribution_figure(spec, torch.arange(10))
    with pytest.raises(ValueError, match="`frame_scores`.*1 NaN"):
        frame_attribution_figure(spec, torch.rand(10).masked_fill(torch.arange(10) == 2, math.nan))
    with pytest.raises(ValueError, match="`span`"):
        frame_attribution_figure(spec, torch.rand(10), span=(0.3, 0.1))
    with pytest.raises(TypeError, match="`span`"):
        frame_attribution_figure(spec, torch.rand(10), span=0.3)
    with pytest.raises(ValueError, match="`hop_seconds`"):
        frame_attribution_figure(spec, torch.rand(10), hop_seconds=-0.01)
