"""mmlab.metrics.fewshot against independent computations: a brute-force cosine loop, a seeded
numpy sampler's invariants, and scikit-learn's LogisticRegression fitted by hand."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from mmlab.metrics import (few_shot_curve, few_shot_probe, prompt_ensemble, sample_k_shot, zero_shot_accuracy,
                           zero_shot_predict)


def _blobs(n_per_class=20, classes=3, dim=8, seed=0, spread=0.3):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g, dtype=torch.float64)
    y = torch.arange(classes).repeat_interleave(n_per_class)
    x = centres[y] + spread * torch.randn(len(y), dim, generator=g, dtype=torch.float64)
    return x, y, centres


def test_zero_shot_predict_matches_brute_force_loop():
    x, _, _ = _blobs(seed=1)
    e = torch.randn(3, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    pred = zero_shot_predict(x, e)
    for i in range(len(x)):
        cos = [float(x[i] @ e[c]) / (float(x[i].norm()) * float(e[c].norm())) for c in range(3)]
        assert int(pred[i]) == int(np.argmax(cos))


def test_zero_shot_predict_agrees_with_zero_shot_accuracy():
    x, y, centres = _blobs(seed=3)
    acc = float((zero_shot_predict(x, centres) == y).double().mean())
    assert acc == pytest.approx(zero_shot_accuracy(x, centres, y))
    assert acc > 0.9  # the class centres are good class embeddings


@pytest.mark.parametrize("k", [1, 2, 5])
def test_sample_k_shot_exactly_k_per_class_reproducible(k):
    y = torch.tensor([0] * 7 + [1] * 5 + [2] * 9 + [5] * 6)
    idx = sample_k_shot(y, k, seed=4)
    assert idx.dtype == torch.int64 and len(idx) == 4 * k and len(set(idx.tolist())) == len(idx)
    for c in (0, 1, 2, 5):
        assert int((y[idx] == c).sum()) == k
    assert torch.equal(idx, sample_k_shot(y, k, seed=4))
    draws = {tuple(sample_k_shot(y, k, seed=s).tolist()) for s in range(10)}
    assert len(draws) > 1  # the seed changes the draw


def test_sample_k_shot_classes_and_errors():
    y = torch.tensor([0, 0, 1, 1, 1, 2])
    idx = sample_k_shot(y, 1, seed=0, classes=[2, 0])
    assert y[idx].tolist() == [2, 0]
    with pytest.raises(ValueError, match="fewer than k"):
        sample_k_shot(y, 2, seed=0)


def test_few_shot_probe_matches_sklearn_reference():
    x, y, centres = _blobs(seed=5, spread=1.0)
    test_x, test_y, _ = _blobs(seed=6, spread=1.0)
    test_x = test_x - _blobs(seed=6)[2][test_y] + centres[test_y]  # same centres as the pool
    idx = sample_k_shot(y, 2, seed=0)
    text_x, text_y = centres * 3.0, torch.arange(3)

    def reference(tx=None, ty=None):
        X = (x[idx] / x[idx].norm(dim=1, keepdim=True)).numpy()
        Y = y[idx].numpy()
        if tx is not None:
            X = np.concatenate([X, (tx / tx.norm(dim=1, keepdim=True)).numpy()])
            Y = np.concatenate([Y, ty.numpy()])
        clf = LogisticRegression(C=1.0, max_iter=1000).fit(X, Y)
        return float(np.mean(clf.predict((test_x / test_x.norm(dim=1, keepdim=True)).numpy()) == test_y.numpy()))

    assert few_shot_probe(x[idx], y[idx], test_x, test_y) == pytest.approx(reference())
    assert few_shot_probe(x[idx], y[idx], test_x, test_y, text_x=text_x, text_y=text_y) == pytest.approx(
        reference(text_x, text_y))


def test_text_examples_at_the_class_centres_help_one_shot():
    # 1 noisy shot per class vs the same shot plus the (noise-free) class direction as a text example
    x, y, centres = _blobs(n_per_class=50, seed=7, spread=1.5)
    pool, test = torch.arange(0, 150, 2), torch.arange(1, 150, 2)
    plain = few_shot_curve(x[pool], y[pool], x[test], y[test], [1], draws=20, seed=0)[1]
    cross = few_shot_curve(x[pool], y[pool], x[test], y[test], [1], draws=20, seed=0,
                           text_x=centres, text_y=torch.arange(3))[1]
    assert plain.shape == (20,) and cross.mean() > plain.mean() + 0.05


def test_prompt_ensemble_is_normalised_mean():
    e = torch.randn(4, 3, 5, dtype=torch.float64)
    out = prompt_ensemble(e)
    unit = e / e.norm(dim=-1, keepdim=True)
    ref = unit.mean(0) / unit.mean(0).norm(dim=-1, keepdim=True)
    torch.testing.assert_close(out, ref)
    with pytest.raises(ValueError, match="T, C, D"):
        prompt_ensemble(e[0])


def test_few_shot_probe_argument_errors():
    x, y, _ = _blobs()
    with pytest.raises(ValueError, match="together"):
        few_shot_probe(x, y, x, y, text_x=x[:3])
    with pytest.raises(ValueError, match="same width"):
        few_shot_probe(x, y, x, y, text_x=x[:3, :4], text_y=torch.arange(3))
