"""Notebook 02 (CLIP): the symmetric InfoNCE loss and retrieval R@1.

InfoNCE / CLIP (Oord et al. 2018; Radford et al. 2021), with S_ij = cos(a_i, b_j):
    loss = ½ [CE(S/τ, I) + CE(Sᵀ/τ, I)].
R@1: the share of rows i whose highest score is in column i.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmlab.exercises._core import Case, Exercise, Mistake
from mmlab.exercises._inputs import F32, F64, SIZES, label, paired, randn
from mmlab.losses import info_nce as _info_nce
from mmlab.metrics import recall_at_k

TEMPERATURES = (0.1, 0.5, 0.07, 0.2, 0.05)


def _info_nce_cases(gen: torch.Generator) -> list[Case]:
    cases = []
    for (B, D, dtype), tau in zip(SIZES, TEMPERATURES):
        a, b = paired(gen, B, D, dtype)
        cases.append(Case(label(B=B, D=D, dtype=dtype, temperature=tau),
                          {"a": a, "b": b, "temperature": tau}, grad=("a", "b")))
    return cases


def _ce(a, b, temperature):
    """CE(S/τ, I) in one direction (rows of a ask which b)."""
    logits = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / temperature
    return F.cross_entropy(logits, torch.arange(a.shape[0]))


INFO_NCE = Exercise(
    name="info_nce", notebook="02",
    signature="info_nce(a, b, temperature) -> 0-d tensor",
    summary="Symmetric InfoNCE (CLIP): ½[CE(S/τ, I) + CE(Sᵀ/τ, I)], S_ij = cos(a_i, b_j).",
    stub='''import torch
import torch.nn.functional as F


def info_nce(a, b, temperature):
    """Symmetric InfoNCE (CLIP) loss, the mean of both directions.

    a, b: (B, D) float tensors; row i of `a` is paired with row i of `b` (not normalised yet).
    temperature: τ > 0, a float.
    Returns a 0-d tensor: ½ [CE(S/τ, I) + CE(Sᵀ/τ, I)], S_ij = cos(a_i, b_j), where CE(L, I)
    is the cross-entropy of each row of L with its diagonal entry as the right class.
    """
    raise NotImplementedError''',
    solution_code='''import torch
import torch.nn.functional as F


def info_nce(a, b, temperature):
    a_hat = F.normalize(a, dim=1)                  # (B, D) unit rows
    b_hat = F.normalize(b, dim=1)                  # (B, D)
    logits = a_hat @ b_hat.T / temperature         # (B, B): S/τ
    labels = torch.arange(a.shape[0])              # (B,): row i's answer is column i
    a_to_b = F.cross_entropy(logits, labels)       # each a_i picks its b among all b
    b_to_a = F.cross_entropy(logits.T, labels)     # each b_j picks its a among all a
    return (a_to_b + b_to_a) / 2''',
    hints=("Normalise both batches onto the unit sphere first (F.normalize(x, dim=1)); then the "
           "similarity matrix S = â b̂ᵀ holds the cosines, and the logits are S / τ.",
           "Row i of the logits should pick column i: that is F.cross_entropy(logits, labels) "
           "with labels = torch.arange(B). The other direction is the same on logits.T; return "
           "the mean of the two (F.cross_entropy already averages over the rows)."),
    reference=lambda a, b, temperature: _info_nce(a, b, temperature).loss,
    reference_name="mmlab.losses.info_nce(a, b, temperature).loss",
    make_cases=_info_nce_cases,
    mistakes=(
        Mistake("only one direction: your value is CE(S/τ, I), the a→b rows alone. The "
                "symmetric loss is the mean of both directions, ½[CE(S/τ, I) + CE(Sᵀ/τ, I)].",
                _ce),
        Mistake("only one direction: your value is CE(Sᵀ/τ, I), the b→a direction alone. The "
                "symmetric loss is the mean of both directions, ½[CE(S/τ, I) + CE(Sᵀ/τ, I)].",
                lambda a, b, t: _ce(b, a, t)),
        Mistake("τ is missing: your value is the loss at τ = 1. Divide the cosines by the "
                "temperature: logits = S / τ.", lambda a, b, t: _info_nce(a, b, 1.0).loss),
        Mistake("τ multiplies instead of dividing: the logits are S / τ (a small τ makes them "
                "larger).", lambda a, b, t: _info_nce(a, b, 1.0 / t).loss),
        Mistake("no L2 normalisation: your value is the loss on the raw dot products a_i·b_j. "
                "Normalise the rows first (F.normalize(a, dim=1)), so that S holds cosines.",
                lambda a, b, t: _info_nce(a, b, t, normalize=False).loss),
        Mistake("a sum where a mean is meant: your value is B times the loss. Average over the "
                "B rows (F.cross_entropy does, with its default reduction='mean').",
                lambda a, b, t: a.shape[0] * _info_nce(a, b, t).loss),
        Mistake("the sum of the two directions: take their mean, ½[CE(S/τ, I) + CE(Sᵀ/τ, I)].",
                lambda a, b, t: 2 * _info_nce(a, b, t).loss),
    ),
)


def _recall_cases(gen: torch.Generator) -> list[Case]:
    cases = []
    for B, dtype in ((10, F64), (7, F32), (1, F64), (25, F32), (4, F64)):
        sim = randn(gen, B, B, dtype=F64)
        sim = sim + torch.diag(2.0 * torch.rand(B, generator=gen, dtype=F64))  # pairs score higher
        cases.append(Case(label(B=B, dtype=dtype), {"sim": sim.to(dtype)}))
    return cases


RECALL_AT_1 = Exercise(
    name="recall_at_1", notebook="02",
    signature="recall_at_1(sim) -> float",
    summary="The share of rows i of a (B, B) score matrix whose highest score is in column i.",
    stub='''import torch


def recall_at_1(sim):
    """Retrieval R@1 of a square score matrix (rows are queries, columns the gallery).

    sim: (B, B) float tensor; sim[i, j] scores query i against item j; the right item for
        query i is item i (rows and columns are paired by position; no ties).
    Returns a Python float in [0, 1]: the share of rows whose highest score is in column i.
    """
    raise NotImplementedError''',
    solution_code='''import torch


def recall_at_1(sim):
    best = sim.argmax(dim=1)                        # (B,) each query's top item
    hits = best == torch.arange(sim.shape[0])       # (B,) True where it is the paired one
    return hits.float().mean().item()''',
    hints=("For each row (a query), find the column with the highest score: "
           "sim.argmax(dim=1). The right column for row i is i.",
           "Compare the top columns with torch.arange(B), turn the booleans into floats, take "
           "the mean, and return it as a Python float with .item()."),
    reference=lambda sim: recall_at_k(sim, 1),
    reference_name="mmlab.metrics.recall_at_k(sim, 1)",
    make_cases=_recall_cases,
    output="float", differentiable=False,
    mistakes=(
        Mistake("you ranked each column (argmax over dim 0): that answers the other direction "
                "(items querying the queries). Rank each row: sim.argmax(dim=1).",
                lambda sim: recall_at_k(sim.T, 1)),
        Mistake("a count of hits, not their share: divide by the number of rows B.",
                lambda sim: sim.shape[0] * recall_at_k(sim, 1)),
        Mistake("you picked the lowest score in each row (argmin); the retrieved item is the "
                "highest-scoring one.", lambda sim: recall_at_k(-sim, 1)),
        Mistake("a percentage: return a share in [0, 1], not 100 times it.",
                lambda sim: 100 * recall_at_k(sim, 1)),
    ),
)

EXERCISES = (INFO_NCE, RECALL_AT_1)
