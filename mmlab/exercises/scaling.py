"""Notebook 10 (scaling up): the loss one process computes after a gather-with-grad.

With N processes, each holds B/N rows. After the all-gather every rank has the whole batch
(a, b) but computes the loss of its own rows only, against all B columns (open_clip's local
loss), with labels offset by rank · B/N:

    L_r = ½ [CE(â_r b̂ᵀ/τ, y_r) + CE(b̂_r âᵀ/τ, y_r)],   y_r = r·B/N + (0, …, B/N − 1),

and the mean of L_r over the ranks is the 1-process `info_nce(a, b, τ)`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmlab.exercises._core import Case, Exercise, Mistake
from mmlab.exercises._inputs import F32, F64, label, paired
from mmlab.losses import info_nce

_IMPORTS = "import torch\nimport torch.nn.functional as F\n\n\n"


def _rank_directions(a, b, t, rank, world_size, offset=True):
    """(a→b, b→a) cross-entropies of this rank's rows against every column."""
    n = a.shape[0] // world_size
    rows = slice(rank * n, (rank + 1) * n)
    a_hat, b_hat = F.normalize(a, dim=1), F.normalize(b, dim=1)
    labels = torch.arange(n) + (rank * n if offset else 0)
    return (F.cross_entropy(a_hat[rows] @ b_hat.T / t, labels),
            F.cross_entropy(b_hat[rows] @ a_hat.T / t, labels))


def _rank_loss(a, b, t, rank, world_size):
    """The reference (its mean over ranks equals mmlab.losses.info_nce; see the tests)."""
    a_to_b, b_to_a = _rank_directions(a, b, t, rank, world_size)
    return (a_to_b + b_to_a) / 2


def _local_only(a, b, t, rank, world_size):
    n = a.shape[0] // world_size
    rows = slice(rank * n, (rank + 1) * n)
    return info_nce(a[rows], b[rows], t).loss


def _rank_cases(gen: torch.Generator) -> list[Case]:
    out = []
    for B, D, W, r, tau, dtype in ((8, 5, 2, 1, 0.1, F64), (6, 4, 3, 2, 0.5, F32),
                                   (4, 3, 1, 0, 0.07, F64), (16, 8, 4, 1, 0.2, F32),
                                   (4, 6, 4, 3, 0.3, F64)):
        a, b = paired(gen, B, D, dtype)
        out.append(Case(label(B=B, D=D, temperature=tau, rank=r, world_size=W, dtype=dtype),
                        {"a": a, "b": b, "temperature": tau, "rank": r, "world_size": W},
                        grad=("a", "b")))
    return out


RANK_INFO_NCE = Exercise(
    name="rank_info_nce", notebook="10",
    signature="rank_info_nce(a, b, temperature, rank, world_size) -> 0-d tensor",
    summary="The InfoNCE one rank computes after gather-with-grad: its rows against all columns.",
    stub=_IMPORTS + '''def rank_info_nce(a, b, temperature, rank, world_size):
    """The loss process `rank` of `world_size` computes after gathering the whole batch.

    a, b: (B, D) float tensors, the gathered batch (not normalised yet); B is divisible by
        world_size and rank r holds rows r·B/N to (r+1)·B/N − 1 (N = world_size).
    temperature: τ > 0. rank: 0 ≤ r < N.
    Returns a 0-d tensor: ½ [CE(â_r b̂ᵀ/τ, y) + CE(b̂_r âᵀ/τ, y)], where â_r are this rank's
    rows of â, the columns are all B rows, and y = r·B/N + (0, 1, …, B/N − 1).
    """
    raise NotImplementedError''',
    solution_code=_IMPORTS + '''def rank_info_nce(a, b, temperature, rank, world_size):
    n = a.shape[0] // world_size                          # rows per process
    mine = slice(rank * n, (rank + 1) * n)                # this rank's rows
    a_hat, b_hat = F.normalize(a, dim=1), F.normalize(b, dim=1)
    labels = rank * n + torch.arange(n)                   # where my partners sit among all B
    a_to_b = F.cross_entropy(a_hat[mine] @ b_hat.T / temperature, labels)   # (n, B) logits
    b_to_a = F.cross_entropy(b_hat[mine] @ a_hat.T / temperature, labels)   # (n, B) logits
    return (a_to_b + b_to_a) / 2''',
    hints=("This rank's rows are a slice of the batch, rank·n to (rank+1)·n with n = B/N; the "
           "columns are all B rows of the other modality, so the logits are (n, B).",
           "Row k of the slice is global row rank·n + k, so its partner is column rank·n + k: "
           "offset the labels. Do both directions (a's rows against all b, b's rows against "
           "all a) and average."),
    reference=_rank_loss,
    reference_name="the local loss of open_clip (its mean over ranks is mmlab.losses.info_nce)",
    make_cases=_rank_cases,
    mistakes=(
        Mistake("the labels are not offset by rank · B/N: this rank's row k is global row "
                "rank·n + k, so its partner is that column.",
                lambda a, b, t, r, w: sum(_rank_directions(a, b, t, r, w, offset=False)) / 2),
        Mistake("only this rank's rows as columns: that is the loss without the gather, with "
                "B/N − 1 negatives per row instead of B − 1. Use all B columns.",
                _local_only),
        Mistake("only one direction (this rank's a rows against all b); average with b's rows "
                "against all a.", lambda a, b, t, r, w: _rank_directions(a, b, t, r, w)[0]),
        Mistake("that is the loss of the whole batch (every rank's rows); each process computes "
                "the loss of its own B/N rows only.",
                lambda a, b, t, r, w: info_nce(a, b, t).loss),
    ),
)

EXERCISES = (RANK_INFO_NCE,)
