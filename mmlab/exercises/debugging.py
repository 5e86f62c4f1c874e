"""Notebook 11 (debugging): the effective rank, the collapse detector (Roy & Vetterli 2007).

    erank(x) = exp(−Σ_k p_k log p_k),   p_k = σ_k / Σ_l σ_l,   σ the singular values of x.
"""

from __future__ import annotations

import torch

from mmlab.exercises._core import Case, Exercise, Mistake
from mmlab.exercises._inputs import F32, F64, label, randn
from mmlab.metrics import effective_rank

_IMPORTS = "import torch\n\n\n"


def _rank_cases(gen: torch.Generator) -> list[Case]:
    out = []
    for N, D, dtype in ((8, 5, F64), (3, 6, F32), (1, 4, F64), (12, 8, F32), (6, 6, F64)):
        scales = torch.linspace(1.0, 0.1, D, dtype=F64)  # unequal directions: 1 < erank < D
        x = randn(gen, N, D) * scales
        out.append(Case(label(N=N, D=D, dtype=dtype), {"x": x.to(dtype)}, grad=("x",)))
    return out


def _entropy(p):
    return -(p * p.log()).sum()


EFFECTIVE_RANK = Exercise(
    name="effective_rank", notebook="11", signature="effective_rank(x) -> 0-d tensor",
    summary="exp of the entropy of the normalised singular values: how many directions x uses.",
    stub=_IMPORTS + '''def effective_rank(x):
    """Effective rank (Roy & Vetterli 2007): how many directions a cloud really uses.

    x: (N, D) float tensor (used as it is: not centred, not normalised); its singular values
        are all non-zero here.
    Returns a 0-d tensor exp(−Σ_k p_k log p_k) with p_k = σ_k / Σ_l σ_l, σ the singular values.
    """
    raise NotImplementedError''',
    solution_code=_IMPORTS + '''def effective_rank(x):
    sigma = torch.linalg.svdvals(x)          # (min(N, D),) singular values
    p = sigma / sigma.sum()                  # a distribution over the directions
    entropy = -(p * torch.log(p)).sum()
    return torch.exp(entropy)''',
    hints=("torch.linalg.svdvals(x) returns the singular values σ; divide them by their sum "
           "to get a probability distribution p.",
           "The entropy is −Σ p log p (natural log); the effective rank is its exponential: "
           "1 for one direction, r for r equal directions."),
    reference=lambda x: effective_rank(x),
    reference_name="mmlab.metrics.effective_rank(x)",
    make_cases=_rank_cases,
    mistakes=(
        Mistake("you used the squared singular values (the eigenvalues of xᵀx, variances); the "
                "effective rank normalises the singular values themselves.",
                lambda x: (lambda s: _entropy(s / s.sum()).exp())(torch.linalg.svdvals(x) ** 2)),
        Mistake("the exp is missing: that is the entropy H(p); the effective rank is exp(H).",
                lambda x: (lambda s: _entropy(s / s.sum()))(torch.linalg.svdvals(x))),
        Mistake("you centred the rows first; this measure takes x as it is (notebook 11 centres "
                "before calling it, to remove the cone).",
                lambda x: effective_rank(x - x.mean(dim=0, keepdim=True))),
        Mistake("the entropy is in bits (log2) but exponentiated with exp: use the natural log "
                "with exp (or log2 with 2 **).",
                lambda x: effective_rank(x) ** (1 / torch.log(torch.tensor(2.0, dtype=x.dtype)))),
    ),
)

EXERCISES = (EFFECTIVE_RANK,)
