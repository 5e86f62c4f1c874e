"""Notebook 01 (embedding spaces): the cosine similarity matrix of two batches.

S_ij = cos(a_i, b_j) = â_i · b̂_j with â = a / ‖a‖ (`mmlab.metrics.similarity`): every
comparison a contrastive model makes between two modalities is an entry of this matrix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmlab.exercises._core import Case, Exercise, Mistake
from mmlab.exercises._inputs import F32, F64, label, paired, rows
from mmlab.metrics import similarity

SHAPES = ((8, 8, 5, F64), (3, 5, 4, F32), (1, 1, 3, F64), (16, 16, 8, F32), (2, 6, 6, F64))
"""(N, M, D, dtype) of the cases: square and not (N ≠ M), N = 1 included, both dtypes."""

_IMPORTS = "import torch\nimport torch.nn.functional as F\n\n\n"


def _cases(gen: torch.Generator) -> list[Case]:
    out = []
    for N, M, D, dtype in SHAPES:
        if N == M:  # paired rows: the diagonal is larger than the rest, as after training
            a, b = paired(gen, N, D, dtype)
        else:
            a, b = rows(gen, N, D, dtype), rows(gen, M, D, dtype)
        out.append(Case(label(N=N, M=M, D=D, dtype=dtype), {"a": a, "b": b}, grad=("a", "b")))
    return out


def _n(x, dim=1):
    return F.normalize(x, dim=dim)


SIMILARITY_MATRIX = Exercise(
    name="similarity_matrix", notebook="01", signature="similarity_matrix(a, b) -> (N, M) tensor",
    summary="The cosine similarity matrix S_ij = cos(a_i, b_j) = â_i · b̂_j of two batches.",
    stub=_IMPORTS + '''def similarity_matrix(a, b):
    """Cosine similarity of every row of a with every row of b: S_ij = â_i · b̂_j.

    a: (N, D) and b: (M, D) float tensors (not normalised yet; â = a / ‖a‖).
    Returns an (N, M) tensor of cosines in [-1, 1]: row i compares a_i with every b_j.
    """
    raise NotImplementedError''',
    solution_code=_IMPORTS + '''def similarity_matrix(a, b):
    a_hat = F.normalize(a, dim=1)                          # (N, D) unit rows
    b_hat = F.normalize(b, dim=1)                          # (M, D) unit rows
    return a_hat @ b_hat.T                                 # (N, M): S_ij = â_i · b̂_j''',
    hints=("A cosine is the dot product of two unit vectors: first put every row of a and of b "
           "on the unit sphere (F.normalize(x, dim=1) divides each row by its length).",
           "One matrix product gives all N·M dot products at once: a_hat @ b_hat.T is (N, M), "
           "with a's rows down the side and b's along the top."),
    reference=lambda a, b: similarity(a, b),
    reference_name="mmlab.metrics.similarity(a, b)",
    make_cases=_cases,
    mistakes=(
        Mistake("no L2 normalisation: your values are dot products of the raw rows, which grow "
                "with their lengths. Normalise both first: â = F.normalize(a, dim=1).",
                lambda a, b: a @ b.T),
        Mistake("only a is normalised: b's rows keep their lengths. Normalise both batches.",
                lambda a, b: _n(a) @ b.T),
        Mistake("only b is normalised: a's rows keep their lengths. Normalise both batches.",
                lambda a, b: a @ _n(b).T),
        Mistake("normalised along the wrong dimension: F.normalize(x, dim=0) makes every "
                "*column* (coordinate) unit length. Each embedding is a row: use dim=1.",
                lambda a, b: _n(a, 0) @ _n(b, 0).T),
        Mistake("you returned Sᵀ (b's rows down the side): row i must compare a_i with every "
                "b_j, so compute â b̂ᵀ, not b̂ âᵀ.",
                lambda a, b: _n(b) @ _n(a).T),
        Mistake("only the paired cosines cos(a_i, b_i), the diagonal of S: the matrix holds every "
                "pair (i, j), one matrix product â b̂ᵀ.",
                lambda a, b: (_n(a) * _n(b)).sum(1)),
    ),
)

EXERCISES = (SIMILARITY_MATRIX,)
