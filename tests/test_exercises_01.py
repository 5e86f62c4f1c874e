"""The exercise added for notebook 01, `similarity_matrix`: an independent correct answer (loops
over the pairs) passes, typical wrong answers fail with the right diagnosis.

`CORRECT_01` and `WRONG_01` also join the tables of tests/test_exercises.py, whose completeness
tests ask for every registered exercise.
"""

from __future__ import annotations

import math

import pytest
import torch

import mmlab.exercises as ex


def similarity_matrix(a, b):
    """S_ij = Σ_d a_id b_jd / (‖a_i‖ ‖b_j‖), one pair at a time (no F.normalize, no matmul)."""
    rows = []
    for i in range(len(a)):
        norm_a = torch.sqrt((a[i] ** 2).sum())
        rows.append(torch.stack([(a[i] * b[j]).sum() / (norm_a * torch.sqrt((b[j] ** 2).sum()))
                                 for j in range(len(b))]))
    return torch.stack(rows)  # (N, M)


def _raw_dots(a, b):
    return torch.stack([torch.stack([(a[i] * b[j]).sum() for j in range(len(b))])
                        for i in range(len(a))])


def _column_normalised(a, b):
    a = a / a.norm(dim=0, keepdim=True)
    b = b / b.norm(dim=0, keepdim=True)
    return a @ b.T


CORRECT_01 = {"similarity_matrix": similarity_matrix}

WRONG_01 = {
    "similarity_matrix": [
        (_raw_dots, "no L2 normalisation"),
        (lambda a, b: similarity_matrix(b, a), "you returned Sᵀ"),
        (_column_normalised, "wrong dimension"),
        (lambda a, b: torch.nn.functional.cosine_similarity(a, b, dim=1), "only the paired"),
        (lambda a, b: similarity_matrix(a, b).detach(), "no gradient flows"),
    ],
}


def test_registered_for_notebook_01():
    assert ex.names("01") == ["similarity_matrix", "mean_pairwise_cosine"]
    assert ex.get("similarity_matrix").notebook == "01"


def test_independent_correct_answer_passes(capsys):
    assert ex.get("similarity_matrix").check(similarity_matrix) is True
    assert "✓ similarity_matrix: correct" in capsys.readouterr().out


@pytest.mark.parametrize("k", range(len(WRONG_01["similarity_matrix"])))
def test_typical_wrong_answer_fails_with_its_diagnosis(k, capsys):
    fn, diagnosis = WRONG_01["similarity_matrix"][k]
    assert ex.get("similarity_matrix").check(fn) is False
    out = capsys.readouterr().out
    assert "✗" in out and diagnosis in " ".join(out.split()), out


def test_cases_include_non_square_and_a_single_row():
    """Some inputs have N ≠ M (a transposed answer fails on shape), one has N = M = 1."""
    cases = ex.get("similarity_matrix").make_cases(torch.Generator().manual_seed(0))
    shapes = {(c.args["a"].shape[0], c.args["b"].shape[0]) for c in cases}
    assert any(n != m for n, m in shapes) and (1, 1) in shapes
    assert {c.args["a"].dtype for c in cases} == {torch.float32, torch.float64}


def test_reference_is_the_closed_form_on_a_known_example():
    a = torch.tensor([[3.0, 4.0], [0.0, 2.0]], dtype=torch.float64)
    b = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, -5.0]], dtype=torch.float64)
    s = ex.get("similarity_matrix").reference(a, b)
    r = 1 / math.sqrt(2)
    want = torch.tensor([[0.6, 0.7 * 2 * r, -0.8], [0.0, r, -1.0]], dtype=torch.float64)
    torch.testing.assert_close(s, want)


def test_solution_passes_and_stub_is_not_attempted(capsys):
    q = ex.get("similarity_matrix")
    for code, ok, mark in ((q.solution_code, True, "✓"), (q.stub, False, "not attempted yet")):
        space: dict = {}
        exec(code, space)
        assert q.check(space["similarity_matrix"]) is ok
        assert mark in capsys.readouterr().out
