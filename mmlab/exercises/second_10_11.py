"""Second exercises of notebooks 10 (scaling up) and 11 (debugging).

10, InfoNCE from log-sum-exps computed K rows at a time (as `info_nce(..., chunk_size=K)`):

    r_i = log Σ_j e^{L_ij},  c_j = log Σ_i e^{L_ij} = log Σ_chunks e^{c_j^(chunk)},
    ℒ = ½ [ mean_i (r_i − L_ii) + mean_j (c_j − L_jj) ],   L = â b̂ᵀ / τ.

11, the ratio of two towers' gradient norms, as `mmlab.train.GradientNorms` logs them:

    ‖∇θ_m‖ = sqrt(Σ_p Σ (∂ℓ/∂θ_p)²) over every parameter tensor p of tower m.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmlab.exercises._core import Case, Exercise, Mistake
from mmlab.exercises._inputs import F32, F64, label, paired, randn
from mmlab.losses import info_nce

_IMPORTS = "import torch\nimport torch.nn.functional as F\n\n\n"


# ---------------------------------------------------------------------- 10: chunked InfoNCE
def _chunk_cases(gen: torch.Generator) -> list[Case]:
    out = []
    for B, D, K, tau, dtype in ((8, 5, 4, 0.1, F64), (10, 4, 4, 0.2, F32), (1, 3, 1, 0.5, F64),
                                (16, 8, 5, 0.07, F32), (7, 6, 3, 0.3, F64)):
        a, b = paired(gen, B, D, dtype)
        out.append(Case(label(B=B, D=D, temperature=tau, chunk_size=K, dtype=dtype),
                        {"a": a, "b": b, "temperature": tau, "chunk_size": K}, grad=("a", "b")))
    return out


def _logits(a, b, t):
    return F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / t  # (B, B)


def _per_chunk(a, b, t, k):
    """Σ_chunks K_c · info_nce(chunk rows, chunk columns) / B: negatives within a chunk only."""
    B = a.shape[0]
    return sum(info_nce(a[s:s + k], b[s:s + k], t).loss * len(a[s:s + k])
               for s in range(0, B, k)) / B


def _summed_columns(a, b, t, k):
    L = _logits(a, b, t)
    B = L.shape[0]
    r = torch.logsumexp(L, dim=1)
    c = sum(torch.logsumexp(L[s:s + k], dim=0) for s in range(0, B, k))
    pos = L.diagonal()
    return ((r - pos).mean() + (c - pos).mean()) / 2


def _dropped_last(a, b, t, k):
    n = (a.shape[0] // k) * k
    L = _logits(a, b, t)[:n]  # the ragged last chunk never computed
    pos = L.diagonal()
    return ((torch.logsumexp(L, 1) - pos).mean() + (torch.logsumexp(L[:, :n], 0) - pos).mean()) / 2


CHUNKED_INFO_NCE = Exercise(
    name="chunked_info_nce", notebook="10",
    signature="chunked_info_nce(a, b, temperature, chunk_size) -> 0-d tensor",
    summary="InfoNCE from row and column log-sum-exps computed K rows at a time: the full loss.",
    stub=_IMPORTS + '''def chunked_info_nce(a, b, temperature, chunk_size):
    """Symmetric InfoNCE without the (B, B) logits: K = chunk_size rows of them at a time.

    a, b: (B, D) float tensors, paired by row (not normalised yet). temperature: τ > 0.
    With L = â b̂ᵀ / τ, compute each (K, B) block L[s:s+K] in turn and from it
        r_i = log Σ_j exp L_ij            (the rows of the block),
        c_j = log Σ_i exp L_ij            (combine the blocks' partial column sums),
    and return ½ [mean_i (r_i − L_ii) + mean_j (c_j − L_jj)], equal to the full InfoNCE.
    B need not be a multiple of K (the last block is smaller).
    """
    raise NotImplementedError''',
    solution_code=_IMPORTS + '''def chunked_info_nce(a, b, temperature, chunk_size):
    a_hat, b_hat = F.normalize(a, dim=1), F.normalize(b, dim=1)
    rows, cols = [], []
    for s in range(0, a.shape[0], chunk_size):
        block = a_hat[s:s + chunk_size] @ b_hat.T / temperature   # (K, B): K rows of L
        rows.append(torch.logsumexp(block, dim=1))               # (K,) r_i of these rows
        cols.append(torch.logsumexp(block, dim=0))               # (B,) partial c_j
    r = torch.cat(rows)                                          # (B,)
    c = torch.logsumexp(torch.stack(cols), dim=0)                # (B,) log Σ_chunks exp
    pos = (a_hat * b_hat).sum(dim=1) / temperature               # (B,) L_ii, O(BD)
    return ((r - pos).mean() + (c - pos).mean()) / 2''',
    hints=("Each block L[s:s+K] = â[s:s+K] b̂ᵀ/τ holds whole rows, so its logsumexp over dim=1 "
           "gives r_i for those rows directly. Its logsumexp over dim=0 is only a partial "
           "column sum.",
           "Partial log-sum-exps combine with another log-sum-exp: c_j = logsumexp over the "
           "blocks of the blocks' column values (torch.stack, then logsumexp(dim=0)). The "
           "positives L_ii = â_i·b̂_i/τ need no block."),
    reference=lambda a, b, t, k: info_nce(a, b, t).loss,
    reference_name="the full mmlab.losses.info_nce(a, b, temperature).loss",
    make_cases=_chunk_cases,
    mistakes=(
        Mistake("only one direction: mean_i (r_i − L_ii) is the a→b half; average it with the "
                "columns' mean_j (c_j − L_jj).",
                lambda a, b, t, k: F.cross_entropy(_logits(a, b, t), torch.arange(len(a)))),
        Mistake("each chunk's rows only met the same chunk's columns: that is the loss with "
                "K − 1 negatives per row. A block holds K rows against all B columns.",
                _per_chunk),
        Mistake("the blocks' column log-sum-exps were added; partial sums of exponentials "
                "combine as log Σ_blocks exp(c_j^block), a logsumexp over the blocks.",
                _summed_columns),
        Mistake("the last, smaller chunk is missing: range(0, B, K) includes it when B is not "
                "a multiple of K.", _dropped_last),
        Mistake("τ is missing: the logits are L = â b̂ᵀ / τ.",
                lambda a, b, t, k: info_nce(a, b, 1.0).loss),
    ),
)


# ---------------------------------------------------------------------- 11: gradient norms
def _norm(grads):
    return torch.stack([g.pow(2).sum() for g in grads]).sum().sqrt()


def _ratio_cases(gen: torch.Generator) -> list[Case]:
    out = []
    for shapes_a, shapes_b, scale, dtype in (
            (((4, 3), (4,)), ((5, 2), (5,), (2, 5)), 1.0, F64),
            (((3, 3),), ((2, 4), (2,)), 1e-3, F32),
            (((6, 2), (6,), (1, 6)), ((1,),), 10.0, F64),
            (((8, 4), (8,)), ((8, 4), (8,)), 0.5, F32)):
        ga = [scale * randn(gen, *s, dtype=dtype) for s in shapes_a]
        gb = [randn(gen, *s, dtype=dtype) for s in shapes_b]
        out.append(Case(label(tower_a=[tuple(s) for s in shapes_a],
                              tower_b=[tuple(s) for s in shapes_b], dtype=dtype),
                        {"grads_a": ga, "grads_b": gb}, grad=("grads_a", "grads_b")))
    return out


GRAD_NORM_RATIO = Exercise(
    name="grad_norm_ratio", notebook="11",
    signature="grad_norm_ratio(grads_a, grads_b) -> 0-d tensor",
    summary="‖∇θ_a‖ / ‖∇θ_b‖, each the L2 norm over all of a tower's gradient entries.",
    stub=_IMPORTS + '''def grad_norm_ratio(grads_a, grads_b):
    """How much more gradient tower a gets than tower b (a starved tower: ratio far from 1).

    grads_a, grads_b: lists of float tensors, the gradients of every parameter of each tower
        (any shapes, e.g. [p.grad for p in model.encoders["image"].parameters()]).
    ‖∇θ_m‖ = sqrt(Σ over all tensors and all their entries of g²), as GradientNorms logs it.
    Returns the 0-d tensor ‖∇θ_a‖ / ‖∇θ_b‖.
    """
    raise NotImplementedError''',
    solution_code=_IMPORTS + '''def grad_norm_ratio(grads_a, grads_b):
    norm_a = torch.sqrt(sum((g ** 2).sum() for g in grads_a))   # one norm over the whole tower
    norm_b = torch.sqrt(sum((g ** 2).sum() for g in grads_b))
    return norm_a / norm_b''',
    hints=("A tower's gradient norm treats all its parameters as one long vector: add the "
           "squares of every entry of every tensor, then take one square root.",
           "torch.sqrt(sum((g ** 2).sum() for g in grads_a)) for tower a, the same for b, "
           "then divide."),
    reference=lambda grads_a, grads_b: _norm(grads_a) / _norm(grads_b),
    reference_name="the per-tower norms of mmlab.train.GradientNorms",
    make_cases=_ratio_cases,
    mistakes=(
        Mistake("you added the norms of the tensors, Σ_p ‖g_p‖; the tower's norm is one "
                "norm over all entries, sqrt(Σ_p ‖g_p‖²).",
                lambda ga, gb: sum(g.norm() for g in ga) / sum(g.norm() for g in gb)),
        Mistake("the square root is missing: that is the ratio of the squared norms.",
                lambda ga, gb: _norm(ga) ** 2 / _norm(gb) ** 2),
        Mistake("the ratio is upside down: tower a's norm goes on top.",
                lambda ga, gb: _norm(gb) / _norm(ga)),
        Mistake("you averaged the squares (an RMS); the norm sums them, so a tower with more "
                "parameters has a larger norm.",
                lambda ga, gb: (torch.cat([g.flatten() for g in ga]).pow(2).mean().sqrt()
                                / torch.cat([g.flatten() for g in gb]).pow(2).mean().sqrt())),
    ),
)

EXERCISES = (CHUNKED_INFO_NCE, GRAD_NORM_RATIO)
