"""accuracy (top-1 / top-k) and multiway_scores, against brute-force loops."""

from __future__ import annotations

import itertools

import pytest
import torch

from mmlab.metrics import accuracy, multiway_scores


def _accuracy_brute(scores: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Average over every order of each row's tied classes: is the label in the first k?"""
    total = 0.0
    for row, y in zip(scores.tolist(), labels.tolist()):
        groups = sorted(set(row), reverse=True)  # distinct scores, best first
        orders = itertools.product(*(itertools.permutations([c for c in range(len(row)) if row[c] == v])
                                     for v in groups))
        hits = [y in sum(o, ())[:k] for o in orders]  # each order of the tie groups, equally likely
        total += sum(hits) / len(hits)
    return total / len(labels)


@pytest.mark.parametrize("k", [1, 2, 3, 7])
@pytest.mark.parametrize("ties", [False, True])
def test_accuracy_matches_brute_force(k, ties):
    g = torch.Generator().manual_seed(k + 10 * ties)
    scores = torch.randn(50, 6, generator=g, dtype=torch.float64)
    if ties:  # coarse values: many ties, counted in expectation over their order
        scores = scores.round()
    labels = torch.randint(0, 6, (50,), generator=g)
    assert accuracy(scores, labels, k=k) == pytest.approx(_accuracy_brute(scores, labels, k), abs=1e-15)


def test_accuracy_top1_is_argmax_and_closed_forms():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (40,), generator=g)
    untied = torch.randn(40, 5, generator=g)
    assert accuracy(untied, labels) == pytest.approx(float((untied.argmax(1) == labels).double().mean()))
    # one-hot scores of the labels: 1.0; of the next class: 0.0 at k = 1, 1.0 at k = 2
    y = torch.tensor([0, 3, 1, 2, 2])
    onehot = torch.nn.functional.one_hot(y, 4).float()
    assert accuracy(onehot, y) == 1.0
    shifted = torch.nn.functional.one_hot((y + 1) % 4, 4).float() + 0.5 * onehot
    assert accuracy(shifted, y) == 0.0 and accuracy(shifted, y, k=2) == 1.0
    # all-equal scores (a collapsed model): chance, k / C, whatever the labels; k ≥ C always hits
    flat = torch.zeros(4, 3)
    assert accuracy(flat, torch.tensor([0, 1, 2, 0])) == pytest.approx(1 / 3)
    assert accuracy(flat, torch.tensor([0, 0, 0, 0]), k=2) == pytest.approx(2 / 3)
    assert accuracy(flat, torch.tensor([0, 1, 2, 2]), k=3) == 1.0 and accuracy(flat, torch.tensor([2]).repeat(4), k=9) == 1.0
    assert isinstance(accuracy(onehot, y), float)


def test_accuracy_errors_name_the_argument():
    s, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    with pytest.raises(ValueError, match="`scores`"):
        accuracy(torch.randn(4), y)
    with pytest.raises(ValueError, match="`labels`"):
        accuracy(s, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"`labels`.*\[0, 3\)"):
        accuracy(s, torch.tensor([0, 1, 3, 0]))
    with pytest.raises(TypeError, match="`labels`"):
        accuracy(s, y.float())
    with pytest.raises(TypeError, match="`scores`"):
        accuracy(s.long(), y)
    with pytest.raises(ValueError, match="`scores`"):
        accuracy(torch.tensor([[0.0, float("nan"), 1.0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="`k`"):
        accuracy(s, y, k=0)


def test_multiway_scores_match_loops_and_gradients():
    g = torch.Generator().manual_seed(1)
    x, y = (torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(2))
    gal = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    mip = multiway_scores(x, y, gal)
    summed = multiway_scores(x, y, gal, multiway=False)
    assert mip.shape == (4, 5) and summed.shape == (4, 5)
    xl, yl, gl = x.tolist(), y.tolist(), gal.tolist()
    for i, j in itertools.product(range(4), range(5)):
        ref_mip = sum(xl[i][d] * yl[i][d] * gl[j][d] for d in range(3))
        ref_sum = sum(xl[i][d] * gl[j][d] + yl[i][d] * gl[j][d] for d in range(3))
        assert float(mip[i, j].detach()) == pytest.approx(ref_mip, abs=1e-12)
        assert float(summed[i, j].detach()) == pytest.approx(ref_sum, abs=1e-12)
    # gradient of Σ_ij S_ij w.r.t. gallery row j: Σ_i x_i ⊙ y_i (MIP), Σ_i (x_i + y_i) (summed)
    (gx,) = torch.autograd.grad(mip.sum(), gal)
    torch.testing.assert_close(gx, (x * y).sum(0).detach().expand(5, 3))
    (gs,) = torch.autograd.grad(summed.sum(), gal)
    torch.testing.assert_close(gs, (x + y).sum(0).detach().expand(5, 3))
    # the MIP of the paired row agrees with the loss module's multilinear_inner_product
    from mmlab.losses import multilinear_inner_product
    torch.testing.assert_close(multiway_scores(x, y, gal[:4]).diagonal(), multilinear_inner_product(x, y, gal[:4]))


def test_multiway_scores_errors():
    a = torch.randn(4, 3)
    with pytest.raises(ValueError, match="`x`.*`y`"):
        multiway_scores(a, torch.randn(5, 3), a)
    with pytest.raises(ValueError, match="`gallery`"):
        multiway_scores(a, a, torch.randn(6, 2))
    with pytest.raises(TypeError, match="`multiway`"):
        multiway_scores(a, a, a, multiway="mip")
    with pytest.raises(ValueError, match="`gallery`"):
        multiway_scores(a, a, torch.full((2, 3), float("inf")))
