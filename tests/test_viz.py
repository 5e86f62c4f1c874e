"""Tests for mmlab.viz: figure structure, the reducer and its cache, τ statistics, offline HTML."""

from __future__ import annotations

import math
import re

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
import torch
from sklearn.decomposition import PCA

import ipywidgets as widgets

import mmlab.viz as V
from mmlab.viz.reduce import Reducer


def _emb(b: int = 12, d: int = 6, mods=("image", "text"), seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(b, d, generator=g, dtype=torch.float64) for m in mods}


def _n_segments(trace) -> int:
    """Segments in a None-separated line trace: each is start, end, None."""
    xs = list(trace.x)
    assert len(xs) % 3 == 0
    assert all(v is None for v in xs[2::3]) and all(v is not None for i, v in enumerate(xs) if i % 3 != 2)
    return len(xs) // 3


# ---------------------------------------------------------------- reducer
def test_pca_matches_sklearn_up_to_sign():
    x = torch.randn(40, 7, dtype=torch.float64) * torch.linspace(3, 0.5, 7)
    ours = Reducer("pca", 3).fit_transform(x)
    ref = PCA(3).fit_transform(x.numpy())
    for k in range(3):
        sign = np.sign(ours[:, k] @ ref[:, k])
        np.testing.assert_allclose(ours[:, k], sign * ref[:, k], atol=1e-9)


def test_pca_transform_equals_fit_and_pads_narrow_data():
    x = torch.randn(10, 5, dtype=torch.float64)
    r = Reducer("pca", 2)
    np.testing.assert_allclose(r.fit_transform(x), r.transform(x), atol=1e-12)
    y = Reducer("pca", 3).fit_transform(torch.randn(6, 2, dtype=torch.float64))  # D = 2 < dim = 3
    assert y.shape == (6, 3) and np.all(y[:, 2] == 0)


def test_reduce_cache_hit_on_second_call():
    V.clear_cache()
    x = torch.randn(30, 5)
    y1 = V.reduce(x, "pca", 2)
    y2 = V.reduce(x.clone(), "pca", 2)  # same values, new tensor: hashed by content
    info = V.cache_info()
    assert info["fits"] == 1 and info["hits"] == 1 and info["misses"] == 1
    np.testing.assert_array_equal(y1, y2)
    V.reduce(x + 1e-3, "pca", 2)
    V.reduce(x, "pca", 3)
    assert V.cache_info()["fits"] == 3
    plot_x = _emb(8, 4)
    V.clear_cache()
    V.plot_embeddings(plot_x)
    V.plot_embeddings(plot_x, color_by="modality", pair_lines=False)
    assert V.cache_info()["fits"] == 1


def test_tsne_keeps_two_far_clusters_apart():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(15, 5, generator=g) + 10, torch.randn(15, 5, generator=g) - 10])
    y = V.reduce(x, "tsne", 2, use_cache=False)
    assert y.shape == (30, 2) and np.isfinite(y).all()
    d = np.linalg.norm(y[:, None] - y[None], axis=-1)  # (30, 30)
    assert d[:15, 15:].min() > max(d[:15, :15].max(), d[15:, 15:].max()) * 0.5


@pytest.mark.slow
def test_umap_runs_and_keeps_clusters():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(40, 8, generator=g) + 8, torch.randn(40, 8, generator=g) - 8])
    y = V.reduce(x, "umap", 2, use_cache=False)
    c0, c1 = y[:40].mean(0), y[40:].mean(0)
    spread = max(np.linalg.norm(y[:40] - c0, axis=1).mean(), np.linalg.norm(y[40:] - c1, axis=1).mean())
    assert np.linalg.norm(c0 - c1) > 2 * spread


# ---------------------------------------------------------------- plot_embeddings
@pytest.mark.parametrize("mods", [("image", "text"), ("image", "audio", "text")])
def test_plot_embeddings_traces_and_pair_lines(mods):
    b = 10
    emb = _emb(b, 5, mods)
    fig = V.plot_embeddings(emb, labels=torch.arange(b) % 3, hover={"text": [f"cap {i}" for i in range(b)]})
    names = [t.name for t in fig.data]
    assert names == ["pairs", *mods]
    m = len(mods)
    assert _n_segments(fig.data[0]) == b * m * (m - 1) // 2
    for t in fig.data[1:]:
        assert len(t.x) == b and len(t.y) == b
    assert "cap 3" in fig.data[names.index("text")].text[3] and "class 0" in fig.data[1].text[3]
    assert fig.layout.title.text and fig.layout.xaxis.title.text == "PC 1 (a.u.)"
    assert fig.layout.yaxis.title.text == "PC 2 (a.u.)"


def test_plot_embeddings_pair_segments_join_the_right_points():
    emb = _emb(6, 4)
    fig = V.plot_embeddings(emb)
    pairs, img, txt = fig.data
    for i in range(6):
        assert pairs.x[3 * i] == pytest.approx(img.x[i]) and pairs.x[3 * i + 1] == pytest.approx(txt.x[i])
        assert pairs.y[3 * i] == pytest.approx(img.y[i]) and pairs.y[3 * i + 1] == pytest.approx(txt.y[i])
    # the joint fit equals an independent PCA on the concatenation
    ref = PCA(2).fit_transform(torch.cat([emb["image"], emb["text"]]).numpy())
    sign = np.sign(np.asarray(img.x) @ ref[:6, 0])
    np.testing.assert_allclose(np.asarray(img.x), sign * ref[:6, 0], atol=1e-9)


def test_plot_embeddings_color_by_label_and_3d():
    b = 9
    labels = [0, 1, 2] * 3
    fig = V.plot_embeddings(_emb(b, 5), labels=labels, color_by="label", dim=3, pair_lines=False)
    assert [t.name for t in fig.data] == ["class 0", "class 1", "class 2"]
    assert all(isinstance(t, go.Scatter3d) and len(t.x) == 2 * 3 for t in fig.data)
    assert fig.layout.scene.zaxis.title.text == "PC 3 (a.u.)"


def test_plot_embeddings_uses_webgl_for_many_points():
    fig = V.plot_embeddings(_emb(1100, 4), pair_lines=False)
    assert all(isinstance(t, go.Scattergl) for t in fig.data)


@pytest.mark.parametrize("kwargs, err", [
    (dict(method="lda"), ValueError), (dict(dim=4), ValueError), (dict(color_by="colour"), ValueError),
    (dict(color_by="label"), ValueError), (dict(labels=[0, 1]), ValueError),
    (dict(hover={"audio": ["x"] * 5}), ValueError),
])
def test_plot_embeddings_rejects_bad_options(kwargs, err):
    with pytest.raises(err):
        V.plot_embeddings(_emb(5, 3), **kwargs)


def test_plot_embeddings_rejects_bad_embeddings():
    with pytest.raises(TypeError, match="embeddings"):
        V.plot_embeddings([torch.randn(3, 2)])
    with pytest.raises(ValueError, match="same number of rows"):
        V.plot_embeddings({"a": torch.randn(3, 2), "b": torch.randn(4, 2)})
    with pytest.raises(ValueError, match="width"):
        V.plot_embeddings({"a": torch.randn(3, 2), "b": torch.randn(3, 5)})
    with pytest.raises(ValueError, match="2-D"):
        V.plot_embeddings({"a": torch.randn(3)})
    bad = _emb(4, 3)
    bad["text"][2, 1] = math.inf
    with pytest.raises(ValueError, match=r"`embeddings\['text'\]`.*1 Inf"):
        V.plot_embeddings(bad)


def test_reduce_rejects_non_float_inputs():
    """Integer, bool and complex points are a TypeError (documented); float16 and float arrays work."""
    x = torch.randn(6, 3, dtype=torch.float64)
    for bad in (x.long(), x > 0, x.to(torch.complex64), x.numpy().astype(np.int64), x.numpy() > 0):
        with pytest.raises(TypeError, match="`x` must have a floating dtype"):
            V.reduce(bad, use_cache=False)
    ref = V.reduce(x, use_cache=False)
    np.testing.assert_allclose(V.reduce(x.numpy(), use_cache=False), ref)
    assert V.reduce(x.half(), use_cache=False).shape == (6, 2)


# ---------------------------------------------------------------- trajectory
def test_trajectory_frames_share_axes_and_match_joint_pca():
    snaps = [_emb(7, 4, seed=s) for s in range(3)]
    fig = V.trajectory_figure(snaps, [0, 10, 20], labels=list(range(7)))
    assert [f.name for f in fig.frames] == ["step 0", "step 10", "step 20"]
    assert len(fig.layout.sliders[0].steps) == 3 and fig.layout.updatemenus[0].buttons[0].method == "animate"
    all_x = torch.cat([s[m] for s in snaps for m in ("image", "text")]).numpy()
    ref = PCA(2).fit_transform(all_x)
    x_last_img = np.asarray(fig.frames[2].data[0].x)
    sign = np.sign(x_last_img @ ref[28:35, 0])
    np.testing.assert_allclose(x_last_img, sign * ref[28:35, 0], atol=1e-9)
    lo, hi = fig.layout.xaxis.range
    assert all(lo <= v <= hi for f in fig.frames for v in f.data[0].x)
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text and fig.layout.title.text
    with pytest.raises(ValueError, match="steps"):
        V.trajectory_figure(snaps, [0, 1])
    with pytest.raises(ValueError, match="snapshots\\[1\\]"):
        V.trajectory_figure([snaps[0], _emb(5, 4)], [0, 1])


# ---------------------------------------------------------------- geometry
def test_modality_gap_figure_centroids_and_histograms():
    b = 8
    a, t = _emb(b, 5)["image"] + 2.0, _emb(b, 5, seed=1)["text"]
    fig = V.modality_gap_figure(a, t, names=("image", "text"))
    assert [tr.name for tr in fig.data] == ["image", "text", "centroids", "gap Δ", "matched pairs", "unmatched pairs"]
    a_hat = a / a.norm(dim=1, keepdim=True)
    t_hat = t / t.norm(dim=1, keepdim=True)
    gap = float((a_hat.mean(0) - t_hat.mean(0)).norm())
    assert f"{gap:.3f}" in fig.layout.title.text
    cent = fig.data[2]
    assert cent.x[0] == pytest.approx(np.mean(fig.data[0].x)) and cent.y[1] == pytest.approx(np.mean(fig.data[1].y))
    matched = np.sort(np.asarray(fig.data[4].x))
    brute = np.sort([float(a_hat[i] @ t_hat[i]) for i in range(b)])
    np.testing.assert_allclose(matched, brute, atol=1e-12)
    assert len(fig.data[5].x) == b * (b - 1)
    assert fig.layout.xaxis2.title.text and fig.layout.yaxis2.title.text and fig.layout.xaxis.title.text
    with pytest.raises(ValueError, match="names"):
        V.modality_gap_figure(a, t, names="image")
    with pytest.raises(ValueError):
        V.modality_gap_figure(a, t[:4])


def test_similarity_heatmap_hits_match_brute_force():
    b = 10
    e = _emb(b, 4)
    a, t = e["image"], e["image"] + 0.8 * e["text"]
    fig = V.similarity_heatmap(a, t, names=("image", "text"))
    heat, hit, miss = fig.data
    assert (heat.name, hit.name, miss.name) == ("cosine", "top-1 hit", "top-1 miss")
    z = np.asarray(heat.z)
    for i in range(b):
        for j in range(b):
            assert z[i, j] == pytest.approx(float(a[i] @ t[j] / (a[i].norm() * t[j].norm())), abs=1e-12)
    hits = {(int(x), int(y)) for x, y in zip(hit.x, hit.y)}
    misses = {(int(x), int(y)) for x, y in zip(miss.x, miss.y)}
    for i in range(b):
        j = max(range(b), key=lambda c: z[i, c])
        assert ((j, i) in hits) == (j == i) and ((j, i) in misses) == (j != i)
    assert len(hits) + len(misses) == b
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
    # with labels: the same class counts as a hit
    labels = [0] * b
    fig2 = V.similarity_heatmap(a, t, labels=labels, max_items=4)
    assert np.asarray(fig2.data[0].z).shape == (4, 4) and len(fig2.data[1].x) == 4 and len(fig2.data[2].x) == 0
    a_nan = a.clone()
    a_nan[3, 0] = math.nan
    with pytest.raises(ValueError, match="`a`.*1 NaN"):
        V.similarity_heatmap(a_nan, t)


def test_top1_hits_match_loops_and_validate():
    g = torch.Generator().manual_seed(3)
    sim = torch.randn(7, 7, generator=g, dtype=torch.float64)
    labels = [0, 1, 0, 2, 1, 0, 2]
    for lab in (None, labels, torch.tensor(labels)):
        top1, hit = V.top1_hits(sim, lab)
        for i in range(7):
            j = max(range(7), key=lambda c: float(sim[i, c]))
            assert int(top1[i]) == j
            assert bool(hit[i]) == (j == i if lab is None else labels[j] == labels[i])
    for bad, exc, pattern in [(sim[0], ValueError, "2-D"), (sim[:, :5], ValueError, "square"),
                              (sim[:0, :0], ValueError, "empty"), (sim.long(), TypeError, "floating"),
                              (sim.masked_fill(torch.eye(7, dtype=torch.bool), math.nan), ValueError, "7 NaN")]:
        with pytest.raises(exc, match=f"`sim`.*{pattern}|{pattern}.*`sim`|`sim` {pattern}"):
            V.top1_hits(bad)
    with pytest.raises(ValueError, match="`labels` has 3 entries"):
        V.top1_hits(sim, labels[:3])


# ---------------------------------------------------------------- temperature
def _by_hand(s: list[float], tau: float, p: int):
    ex = [math.exp((v - max(s)) / tau) for v in s]
    z = sum(ex)
    probs = [e / z for e in ex]
    ent = -sum(q * math.log(q) for q in probs if q > 0)
    return probs, ent, -math.log(probs[p])


@pytest.mark.parametrize("tau, p", [(0.07, 0), (0.5, 2), (3.0, 4)])
def test_temperature_stats_against_hand_softmax_and_autograd(tau, p):
    s = torch.tensor([0.8, 0.1, -0.3, 0.5, 0.45, 0.0], dtype=torch.float64)
    st = V.temperature_stats(s, tau, positive=p)
    probs, ent, loss = _by_hand(s.tolist(), tau, p)
    np.testing.assert_allclose(st["probs"].numpy(), probs, rtol=1e-12)
    assert st["entropy"] == pytest.approx(ent, rel=1e-10) and st["loss"] == pytest.approx(loss, rel=1e-10)
    x = s.clone().requires_grad_(True)
    l_ref = torch.nn.functional.cross_entropy((x / tau)[None], torch.tensor([p]))  # one-anchor InfoNCE
    (g,) = torch.autograd.grad(l_ref, x)
    np.testing.assert_allclose(st["grad_weights"].numpy(), g.numpy(), rtol=1e-10, atol=1e-14)
    neg = [j for j in range(len(s)) if j != p]
    np.testing.assert_allclose(st["grad_weights"][neg].numpy(), np.asarray(probs)[neg] / tau, rtol=1e-12)


def test_temperature_entropy_limits():
    s = torch.tensor([0.9, 0.2, 0.1, -0.5, 0.3], dtype=torch.float64)
    assert V.temperature_stats(s, 1e-4)["entropy"] < 1e-6
    assert V.temperature_stats(s, 1e4)["entropy"] == pytest.approx(math.log(5), abs=1e-6)
    ents = [V.temperature_stats(s, t)["entropy"] for t in (0.01, 0.1, 1.0, 10.0)]
    assert ents == sorted(ents)


def test_temperature_stats_validation():
    with pytest.raises(ValueError, match="temperature"):
        V.temperature_stats(torch.randn(4), 0.0)
    with pytest.raises(ValueError, match="similarities"):
        V.temperature_stats(torch.randn(4, 4), 0.1)
    with pytest.raises(ValueError, match="positive"):
        V.temperature_stats(torch.randn(4), 0.1, positive=4)
    with pytest.raises(TypeError):
        V.temperature_stats([0.1, 0.2], 0.1)
    with pytest.raises(ValueError, match="`similarities`.*1 NaN"):
        V.temperature_stats(torch.tensor([0.1, math.nan, 0.3]), 0.1)
    with pytest.raises(ValueError, match="`similarities`.*1 Inf"):
        V.temperature_explorer(torch.tensor([[0.1, 0.2], [-math.inf, 0.3]]))


@pytest.fixture(params=["figure_widget", "output"])
def widget_mode(request, monkeypatch):
    """Run a widget test with plotly's FigureWidget (needs anywidget) and with the Output fallback."""
    import mmlab.viz._widgets as w

    if request.param == "figure_widget" and not w.has_figure_widget():
        pytest.skip("anywidget is not installed, so go.FigureWidget is unavailable")
    if request.param == "output":
        monkeypatch.setattr(w, "has_figure_widget", lambda: False)
    return request.param


def test_temperature_explorer_update_changes_figures(widget_mode):
    s = torch.tensor([0.7, 0.2, 0.5, -0.1, 0.3])
    app = V.temperature_explorer(s, init=0.07)
    assert isinstance(app.softmax_fig, go.FigureWidget) == (widget_mode == "figure_widget")
    assert app.slider.min == pytest.approx(-3) and app.slider.max == pytest.approx(1)
    before = list(app.softmax_fig.data[0].y)
    grads_before = list(app.grad_fig.data[0].y)
    app.update(2.0)
    after = list(app.softmax_fig.data[0].y)
    assert before != after and grads_before != list(app.grad_fig.data[0].y)
    ref = V.temperature_stats(s, 2.0)["probs"].tolist()
    np.testing.assert_allclose(after, ref, rtol=1e-12)
    assert app.slider.value == pytest.approx(2.0, rel=1e-9) and "entropy" in app.text.value
    app.slider.value = 0.01  # the slider drives the same update
    np.testing.assert_allclose(list(app.softmax_fig.data[0].y), V.temperature_stats(s, 0.01)["probs"].tolist(),
                               rtol=1e-12)
    assert app.softmax_fig.layout.title.text and app.softmax_fig.layout.yaxis.title.text
    assert app.grad_fig.layout.xaxis.title.text


def test_temperature_explorer_matrix_anchor():
    sim = torch.randn(6, 6, dtype=torch.float64)
    app = V.temperature_explorer(sim, anchor=2, init=0.5)
    np.testing.assert_allclose(list(app.softmax_fig.data[0].y), V.temperature_stats(sim[2], 0.5, 2)["probs"].tolist())
    app.anchor.value = 4
    np.testing.assert_allclose(list(app.softmax_fig.data[0].y), V.temperature_stats(sim[4], 0.5, 4)["probs"].tolist())
    assert "P_4" in app.text.value


@pytest.mark.parametrize("args, kwargs", [
    ((torch.randn(3, 4),), {}), ((torch.randn(4),), dict(init=100.0)), ((torch.randn(4),), dict(temperatures=(1, 0.1))),
    ((torch.randn(4, 4),), dict(anchor=4)), ((torch.randn(4),), dict(labels=["a"])),
])
def test_temperature_explorer_validation(args, kwargs):
    with pytest.raises(ValueError):
        V.temperature_explorer(*args, **kwargs)


# ---------------------------------------------------------------- curves and charts
def test_training_curves_from_dict():
    hist = {"step": [0, 1, 2, 3], "loss": [4.0, 3.0, 2.5, 2.0], "temperature": [0.07, 0.06, 0.05, 0.05],
            "evals": [{"step": 1, "image→text R@1": 0.2, "text→image R@1": 0.1, "gap": 0.9, "uniformity": -1.0,
                       "image→text R@10": 0.9},
                      {"step": 3, "image→text R@1": 0.5, "text→image R@1": 0.4, "gap": 0.7, "uniformity": -2.0,
                       "image→text R@10": 1.0}]}
    fig = V.training_curves(hist)
    names = [t.name for t in fig.data]
    assert names == ["loss", "τ", "image→text R@1", "text→image R@1", "gap", "uniformity"]
    r1 = fig.data[2]
    assert list(r1.x) == [1, 3] and list(r1.y) == [0.2, 0.5]
    assert fig.layout.title.text
    for ax in ("xaxis", "yaxis", "xaxis5", "yaxis5"):
        assert fig.layout[ax].title.text

    class History:  # fit's History shape: attributes
        step, loss, temperature, evals = hist["step"], hist["loss"], hist["temperature"], hist["evals"]

    assert [t.name for t in V.training_curves(History()).data] == names
    train = pytest.importorskip("mmlab.train")
    real = train.History(step=hist["step"], loss=hist["loss"], temperature=hist["temperature"], evals=hist["evals"])
    assert [t.name for t in V.training_curves(real).data] == names
    no_tau = V.training_curves({"step": [1, 2], "loss": [1.0, 0.5], "temperature": [None, None],
                                "evals": [{"step": 2, "gap image-text": 0.3, "uniformity image": -1.0}]})
    assert [t.name for t in no_tau.data] == ["loss", "gap image-text", "uniformity image"]
    titles = [a.text for a in no_tau.layout.annotations]
    assert titles == ["loss", "gap", "uniformity"]  # no empty τ or R@1 panel
    bare = V.training_curves({"step": [1, 2], "loss": [1.0, 0.5], "temperature": [0.1, 0.09]})
    assert [a.text for a in bare.layout.annotations] == ["loss", "temperature"]
    assert bare.layout.yaxis2.type == "log" and "xaxis3" not in bare.layout
    with pytest.raises(ValueError, match="steps"):
        V.training_curves({"step": [0, 1], "loss": [1.0]})
    with pytest.raises(TypeError):
        V.training_curves([1, 2])


def test_bar_and_line_charts():
    fig = V.bar_chart({"clip": 0.5, "siglip": 0.6}, title="R@1", yaxis="R@1 (fraction)", xaxis="loss")
    assert list(fig.data[0].y) == [0.5, 0.6] and fig.layout.yaxis.title.text == "R@1 (fraction)"
    fig = V.line_chart([1, 2, 3], {"a": [1, 2, 3], "b": [3, 2, 1]}, title="t", xaxis="τ (unitless)",
                       yaxis="loss (nats)", log_x=True)
    assert [t.name for t in fig.data] == ["a", "b"] and fig.layout.xaxis.type == "log"
    with pytest.raises(ValueError):
        V.line_chart([1, 2], {"a": [1]}, title="t", xaxis="x", yaxis="y")
    with pytest.raises(ValueError):
        V.bar_chart({}, title="t", yaxis="y")
    assert list(V.bar_chart({"a": torch.tensor(0.25), "b": np.float32(0.5), "c": 2}, title="t", yaxis="y").data[0].y) \
        == [0.25, 0.5, 2.0]
    for value in (math.nan, math.inf, torch.tensor(math.nan)):
        with pytest.raises(ValueError, match=r"`values\['b'\]` is"):
            V.bar_chart({"a": 1.0, "b": value}, title="t", yaxis="y")
    with pytest.raises(TypeError, match=r"`values\['a'\]` must be a number"):
        V.bar_chart({"a": [1.0, 2.0]}, title="t", yaxis="y")


# ---------------------------------------------------------------- offline
def test_setup_notebook_picks_renderer(monkeypatch):
    old = pio.renderers.default
    try:
        monkeypatch.delenv("MMLAB_HTML_EXPORT", raising=False)
        assert V.setup_notebook() == "plotly_mimetype" == pio.renderers.default
        monkeypatch.setenv("MMLAB_HTML_EXPORT", "1")
        assert V.setup_notebook() == "plotly_mimetype+notebook" == pio.renderers.default
        assert pio.renderers["notebook"].connected is False  # inline plotly.js, no CDN
        assert V.setup_notebook(html_export=False) == "plotly_mimetype"
        with pytest.raises(TypeError):
            V.setup_notebook("yes")
    finally:
        pio.renderers.default = old


def test_no_cdn_anywhere():
    figs = [V.plot_embeddings(_emb(5, 3)), V.similarity_heatmap(_emb(5, 3)["image"], _emb(5, 3)["text"]),
            V.bar_chart({"a": 1.0}, title="t", yaxis="y")]
    for fig in figs:
        assert "https://" not in fig.to_json() and "cdn.plot.ly" not in fig.to_json()
        bare = V.figure_html(fig, include_plotlyjs=False)
        assert "https://" not in bare and "cdn" not in bare
        full = V.figure_html(fig, include_plotlyjs=True, full_html=True)
        assert not re.search(r"<script[^>]*src=", full)  # plotly.js is inline, nothing is fetched
    with pytest.raises(ValueError, match="CDN"):
        V.figure_html(figs[0], include_plotlyjs="cdn")
    old = pio.renderers.default
    try:
        V.setup_notebook(html_export=True)
        bundle = pio.renderers._build_mime_bundle(figs[0].to_dict(), pio.renderers.default)
        html = bundle["text/html"]
        assert "cdn.plot.ly" not in html and not re.search(r"<script[^>]*src=", html)
    finally:
        pio.renderers.default = old


# ---------------------------------------------------------------- retrieval app
class _ToyData:
    modalities = ("image", "audio", "text")

    def __init__(self, n: int = 7):
        g = torch.Generator().manual_seed(1)
        self.image = torch.rand(n, 3, 8, 8, generator=g)
        self.audio = torch.rand(n, 400, generator=g) - 0.5
        self.text = [f"caption {i}" for i in range(n)]

    def __len__(self):
        return len(self.text)

    def batch(self, idx):
        idx = torch.as_tensor(idx)
        return {"image": self.image[idx], "audio": self.audio[idx], "text": [self.text[i] for i in idx.tolist()],
                "index": idx}


class _ToyModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Linear(3 * 8 * 8, 4)
        self.calls = 0

    def encode(self, batch):
        self.calls += 1
        img = self.w(batch["image"].flatten(1))
        txt = torch.stack([torch.tensor([float(len(t)), float(t[-1]), 1.0, -1.0]) for t in batch["text"]])
        aud = torch.stack([batch["audio"].mean(1), batch["audio"].std(1), batch["audio"][:, 0], torch.ones(len(txt))], 1)
        return {"image": img, "audio": aud, "text": txt}


def test_retrieval_app_topk_matches_brute_force():
    ds, model = _ToyData(), _ToyModel()
    app = V.retrieval_app(model, ds, k=3)
    assert model.calls == 1  # encoded once
    img = torch.nn.functional.normalize(model.w(ds.image.flatten(1)), dim=1).detach()
    txt = torch.nn.functional.normalize(model.encode(ds.batch(torch.arange(7)))["text"], dim=1)
    res = app.results("image", 2)["text"]
    brute = sorted(range(7), key=lambda j: -float(img[2] @ txt[j]))[:3]
    assert [j for j, _ in res] == brute
    assert res[0][1] == pytest.approx(float(img[2] @ txt[brute[0]]), abs=1e-6)
    app.modality.value, app.index.value = "text", 5
    assert "text #5" in app.results_box.children[0].value
    rows = app.results_box.children
    assert [r.value for r in rows[2::2]] == ["<b>top-3 image</b>", "<b>top-3 audio</b>"]
    image_cards, audio_cards = rows[3].children, rows[5].children
    assert len(image_cards) == 3 and all(isinstance(c.children[1], widgets.Image) for c in image_cards)
    assert all(isinstance(c.children[1], widgets.Audio) for c in audio_cards)
    assert image_cards[0].children[1].value[:4] == b"\x89PNG" and audio_cards[0].children[1].value[:4] == b"RIFF"
    app.explain.value = True  # the toy model has no encoders: the app still works and says why
    with pytest.raises(ValueError, match="modalities"):
        V.retrieval_app(model, ds, modalities=["audio"])
    with pytest.raises(TypeError, match="encode"):
        V.retrieval_app(object(), ds)


@pytest.mark.slow
def test_retrieval_app_with_real_model_and_attribution():
    data = pytest.importorskip("mmlab.data")
    enc = pytest.importorskip("mmlab.encoders")
    losses = pytest.importorskip("mmlab.losses")
    ds = data.load("shapes", n=10, audio=False)
    tok = enc.Tokenizer.from_texts(ds.batch(torch.arange(len(ds)))["text"])
    from mmlab.model import ContrastiveModel

    model = ContrastiveModel({"image": enc.ViTEncoder(out_dim=8),
                              "text": enc.TextTransformer(tok, out_dim=8)}, None, losses.ClipLoss())
    app = V.retrieval_app(model, ds, k=2)
    z = model.encode(ds.batch(torch.arange(len(ds))))
    brute = torch.topk(z["text"] @ z["image"][3], 2).indices.tolist()
    assert [j for j, _ in app.results("image", 3)["text"]] == brute
    app.index.value = 3
    app.explain.value = True
    cards = app.results_box.children[3].children
    overlay = cards[0].children[2]
    assert isinstance(overlay, widgets.HTML) and "no attribution" not in overlay.value  # token overlay HTML
