"""Each checker accepts a correct answer written independently of the library (loops, closed
forms, other torch routines) and rejects typical wrong answers with the right diagnosis.

The wrong answers here are written out again, not taken from the checkers' own `Mistake`s, so a
checker whose diagnosis table were wrong would fail.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import mmlab.exercises as ex
from test_exercises_01 import WRONG_01, similarity_matrix  # noqa: F401  (notebook 01's exercise)
from test_exercises_06_11 import CORRECT_06_11, WRONG_06_11  # the second exercises, 06-11


def _unit(x):
    return x / x.norm(dim=1, keepdim=True)


# ---- correct answers, written independently -------------------------------------------------
def info_nce(a, b, t):
    a, b = _unit(a), _unit(b)
    total = 0
    for i in range(len(a)):
        row, col = (a[i] * b).sum(1) / t, (b[i] * a).sum(1) / t  # (B,), (B,)
        total = total + torch.logsumexp(row, 0) - row[i] + torch.logsumexp(col, 0) - col[i]
    return total / (2 * len(a))


def recall_at_1(sim):
    hits = sum(1 for i in range(len(sim)) if int(torch.argmax(sim[i])) == i)
    return hits / len(sim)


def alignment(a, b):
    a, b = _unit(a), _unit(b)
    return sum(((a[i] - b[i]) ** 2).sum() for i in range(len(a))) / len(a)


def uniformity(x):
    x = _unit(x)
    terms = [torch.exp(-2 * ((x[i] - x[j]) ** 2).sum())
             for i in range(len(x)) for j in range(i + 1, len(x))]
    return torch.log(sum(terms) / len(terms))


def modality_gap(a, b):
    a, b = _unit(a), _unit(b)
    delta = sum(a[i] for i in range(len(a))) / len(a) - sum(b[i] for i in range(len(b))) / len(b)
    return torch.sqrt((delta ** 2).sum())


def mean_pairwise_cosine(x):
    n = len(x)
    cos = [F.cosine_similarity(x[i], x[j], dim=0) for i in range(n) for j in range(n) if i != j]
    return sum(cos) / len(cos)


def gradient_weights(sim, t):
    B = len(sim)
    out = torch.empty_like(sim)
    for i in range(B):
        z = torch.exp(sim[i] / t).sum()
        for j in range(B):
            out[i, j] = (torch.exp(sim[i, j] / t) / z - (1.0 if i == j else 0.0)) / t
    return out


def tolerance(x, labels):
    pairs = [F.cosine_similarity(x[i], x[j], dim=0) for i in range(len(x)) for j in range(len(x))
             if i != j and labels[i] == labels[j]]
    return sum(pairs) / len(pairs)


def symile_mip(a, b, c):
    return torch.einsum("bd,bd,bd->b", a, b, c)


def _clip(x, y, t):
    logits = _unit(x) @ _unit(y).T / t
    return -(logits.log_softmax(1).diagonal().mean() + logits.log_softmax(0).diagonal().mean()) / 2


def pairwise_info_nce(a, b, c, t):
    return (_clip(a, b, t) + _clip(b, c, t) + _clip(c, a, t)) / 3


def gated_fusion(xa, xb, Wa, Wb, Wz):
    ha = torch.tanh(torch.einsum("fd,bd->bf", Wa, xa))
    hb = torch.tanh(torch.einsum("fd,bd->bf", Wb, xb))
    z = 1 / (1 + torch.exp(-(xa @ Wz[:, :xa.shape[1]].T + xb @ Wz[:, xa.shape[1]:].T)))
    return hb + z * (ha - hb)


def _layer(a):
    m = a.mean(dim=0) + torch.eye(a.shape[-1], dtype=a.dtype)  # (T, T)
    return m / m.sum(dim=1, keepdim=True)


def attention_rollout(attentions):
    out = []
    for i in range(attentions[0].shape[0]):  # one sample at a time, last layer first
        r = _layer(attentions[-1][i])
        for a in reversed(attentions[:-1]):
            r = r @ _layer(a[i])
        out.append(r)
    return torch.stack(out)


def siglip(a, b, t, bias):
    s = _unit(a) @ _unit(b).T / t + bias
    B = len(a)
    total = sum(F.softplus(-s[i, j] if i == j else s[i, j]) for i in range(B) for j in range(B))
    return total / B


def _debiased_rows(logits, t, tp):
    n = len(logits) - 1
    losses = []
    for i in range(len(logits)):
        p = torch.exp(logits[i, i])
        neg = sum(torch.exp(logits[i, j]) for j in range(len(logits)) if j != i)
        ng = torch.maximum((neg - n * tp * p) / (1 - tp),
                           torch.tensor(n * math.exp(-1 / t), dtype=logits.dtype))
        losses.append(-torch.log(p / (p + ng)))
    return sum(losses) / len(losses)


def debiased_info_nce(a, b, t, tp):
    logits = _unit(a) @ _unit(b).T / t
    return (_debiased_rows(logits, t, tp) + _debiased_rows(logits.T, t, tp)) / 2


def zero_shot_predict(x, e):
    return torch.tensor([int(F.cosine_similarity(x[i][None], e, dim=1).argmax())
                         for i in range(len(x))], dtype=torch.int64)


def prompt_ensemble(e):
    return F.normalize(F.normalize(e, dim=-1).mean(dim=0), dim=-1)


def rank_info_nce(a, b, t, r, w):
    n = len(a) // w
    a, b = _unit(a), _unit(b)
    total = 0
    for k in range(r * n, (r + 1) * n):
        la, lb = (a[k] * b).sum(1) / t, (b[k] * a).sum(1) / t
        total = total + torch.logsumexp(la, 0) - la[k] + torch.logsumexp(lb, 0) - lb[k]
    return total / (2 * n)


def effective_rank(x):
    gram = x @ x.T if x.shape[0] <= x.shape[1] else x.T @ x
    sigma = torch.linalg.eigvalsh(gram).clamp_min(0).sqrt()
    p = sigma / sigma.sum()
    return torch.exp(-torch.special.xlogy(p, p).sum())


CORRECT = {name: fn for name, fn in globals().items() if name in ex.names()}
CORRECT.update(CORRECT_06_11)


def test_every_exercise_has_an_independent_answer():
    assert sorted(CORRECT) == sorted(ex.names())


@pytest.mark.parametrize("name", sorted(CORRECT))
def test_independent_correct_answer_passes(name, capsys):
    assert ex.get(name).check(CORRECT[name]) is True
    assert "✓" in capsys.readouterr().out


# ---- typical wrong answers, each with the diagnosis it must get ------------------------------
def _one_way(a, b, t):
    return F.cross_entropy(_unit(a) @ _unit(b).T / t, torch.arange(len(a)))


def _pairs(x):
    return [(i, j) for i in range(len(x)) for j in range(len(x)) if i != j]


WRONG = {
    "info_nce": [(_one_way, "only one direction"),
                 (lambda a, b, t: info_nce(a, b, 1.0), "τ is missing"),
                 (lambda a, b, t: (F.cross_entropy(a @ b.T / t, torch.arange(len(a)))
                                   + F.cross_entropy(b @ a.T / t, torch.arange(len(a)))) / 2,
                  "no L2 normalisation"),
                 (lambda a, b, t: len(a) * info_nce(a, b, t), "a sum where a mean"),
                 (lambda a, b, t: info_nce(a, b, t).detach(), "no gradient flows"),
                 (lambda a, b, t: torch.tensor(info_nce(a, b, t).item(), dtype=a.dtype),
                  "no gradient flows")],
    "recall_at_1": [(lambda s: recall_at_1(s.T), "ranked each column"),
                    (lambda s: recall_at_1(s) * len(s), "a count of hits")],
    "alignment": [(lambda a, b: ((a - b) ** 2).sum(1).mean(), "no L2 normalisation"),
                  (lambda a, b: (_unit(a) - _unit(b)).norm(dim=1).mean(), "not squared")],
    "uniformity": [(lambda x: torch.log(torch.exp(-2 * torch.cdist(_unit(x), _unit(x)) ** 2)
                                        .mean()), "included the pairs i = j"),
                   (lambda x: torch.exp(uniformity(x)), "the log is missing"),
                   (lambda x: torch.log(torch.exp(-2 * torch.pdist(_unit(x)) ** 2).sum()),
                    "a sum over the pairs inside the log")],
    "modality_gap": [(lambda a, b: (_unit(a) - _unit(b)).norm(dim=1).mean(),
                      "a mean of per-pair distances"),
                     (lambda a, b: (a.mean(0) - b.mean(0)).norm(), "no L2 normalisation")],
    "mean_pairwise_cosine": [(lambda x: (_unit(x) @ _unit(x).T).mean(), "included the diagonal"),
                             (lambda x: sum((x[i] * x[j]).sum() for i, j in _pairs(x))
                              / len(_pairs(x)), "no L2 normalisation")],
    "gradient_weights": [(lambda s, t: gradient_weights(s, t) * t, "1/τ in front is missing"),
                         (lambda s, t: torch.softmax(s / t, 1) / t, "positive's −1 is missing")],
    "tolerance": [(lambda x, y: tolerance(x, torch.zeros_like(y)), "labels are ignored"),
                  (lambda x, y: (_unit(x) @ _unit(x).T)[y[:, None] == y[None, :]].mean(),
                   "included i = j")],
    "symile_mip": [(lambda a, b, c: symile_mip(_unit(a), _unit(b), _unit(c)), "normalised"),
                   (lambda a, b, c: torch.einsum("bd,bd,bd->b", a, b, c) / a.shape[1],
                    "a mean over the D coordinates")],
    "pairwise_info_nce": [(lambda a, b, c, t: 3 * pairwise_info_nce(a, b, c, t), "the sum"),
                          (lambda a, b, c, t: (_clip(a, b, t) + _clip(a, c, t)) / 2,
                           "anchor objective")],
    "gated_fusion": [(lambda *w: _swapped_gmu(*w), "wrong modality"),
                     (lambda xa, xb, Wa, Wb, Wz: _gmu_no_tanh(xa, xb, Wa, Wb, Wz),
                      "tanh is missing")],
    "attention_rollout": [(lambda att: _rollout_no_eye(att), "residual connection is missing"),
                          (lambda att: _rollout_reversed(att), "wrong order")],
    "siglip": [(lambda a, b, t, bias: siglip(a, b, t, bias) / len(a), "a mean over all B²"),
               (lambda a, b, t, bias: siglip(a, b, t, 0.0), "the bias is missing")],
    "debiased_info_nce": [(lambda a, b, t, tp: debiased_info_nce(a, b, t, 0.0), "τ⁺ is ignored"),
                          (lambda a, b, t, tp: _debiased_rows(_unit(a) @ _unit(b).T / t, t, tp),
                           "only one direction")],
    "zero_shot_predict": [(lambda x, e: (x @ e.T).argmax(1), "no L2 normalisation"),
                          (lambda x, e: (_unit(x) @ _unit(e).T).argmin(1), "lowest score")],
    "prompt_ensemble": [(lambda e: F.normalize(e.mean(0), dim=-1), "not normalised before"),
                        (lambda e: F.normalize(e, dim=-1).mean(0), "result is not normalised")],
    "rank_info_nce": [(lambda a, b, t, r, w: _rank_no_offset(a, b, t, r, w), "not offset"),
                      (lambda a, b, t, r, w: info_nce(a[r * (len(a) // w):(r + 1) * (len(a) // w)],
                                                      b[r * (len(a) // w):(r + 1) * (len(a) // w)],
                                                      t), "without the gather")],
    "effective_rank": [(lambda x: -torch.special.xlogy(_p(x), _p(x)).sum(), "the exp is missing"),
                       (lambda x: torch.exp(-torch.special.xlogy(_p(x, 2), _p(x, 2)).sum()),
                        "squared singular values")],
}


def _swapped_gmu(xa, xb, Wa, Wb, Wz):
    z = torch.sigmoid(torch.cat([xa, xb], 1) @ Wz.T)
    return (1 - z) * torch.tanh(xa @ Wa.T) + z * torch.tanh(xb @ Wb.T)


def _gmu_no_tanh(xa, xb, Wa, Wb, Wz):
    z = torch.sigmoid(torch.cat([xa, xb], 1) @ Wz.T)
    return z * (xa @ Wa.T) + (1 - z) * (xb @ Wb.T)


def _rollout_no_eye(att):
    r = torch.eye(att[0].shape[-1], dtype=att[0].dtype)
    for a in att:
        r = a.mean(1) @ r
    return r


def _rollout_reversed(att):
    r = torch.eye(att[0].shape[-1], dtype=att[0].dtype)
    for a in att:
        m = a.mean(1) + torch.eye(a.shape[-1], dtype=a.dtype)
        r = r @ (m / m.sum(-1, keepdim=True))
    return r


def _rank_no_offset(a, b, t, r, w):
    n = len(a) // w
    la = _unit(a)[r * n:(r + 1) * n] @ _unit(b).T / t
    lb = _unit(b)[r * n:(r + 1) * n] @ _unit(a).T / t
    return (F.cross_entropy(la, torch.arange(n)) + F.cross_entropy(lb, torch.arange(n))) / 2


def _p(x, power=1):
    s = torch.linalg.svdvals(x) ** power
    return s / s.sum()


WRONG.update(WRONG_01)
WRONG.update(WRONG_06_11)


def test_every_exercise_has_two_wrong_answers():
    assert sorted(WRONG) == sorted(ex.names())
    assert all(len(v) >= 2 for v in WRONG.values())


@pytest.mark.parametrize("name,k", [(n, k) for n in sorted(WRONG) for k in range(len(WRONG[n]))])
def test_typical_wrong_answer_fails_with_its_diagnosis(name, k, capsys):
    fn, diagnosis = WRONG[name][k]
    assert ex.get(name).check(fn) is False
    out = capsys.readouterr().out
    assert "✗" in out and diagnosis in " ".join(out.split()), out


def test_rank_reference_averages_to_the_one_process_loss():
    """The local losses of all ranks average to mmlab.losses.info_nce on the whole batch."""
    from mmlab.losses import info_nce as lib_info_nce
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(12, 5, generator=g, dtype=torch.float64), torch.randn(12, 5, generator=g,
                                                                             dtype=torch.float64)
    ref = ex.get("rank_info_nce").reference
    for w in (1, 2, 3, 4):
        mean = sum(ref(a, b, 0.2, r, w) for r in range(w)) / w
        assert torch.allclose(mean, lib_info_nce(a, b, 0.2).loss, atol=1e-12)
