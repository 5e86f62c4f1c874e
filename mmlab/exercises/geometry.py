"""Notebooks 01 and 04 (geometry): alignment, uniformity, the modality gap and the cone.

- Alignment and uniformity (Wang & Isola 2020): L_align = mean_i ‖â_i − b̂_i‖²,
  L_unif = log mean_{i<j} exp(−2 ‖x̂_i − x̂_j‖²).
- Modality gap (Liang et al. 2022): ‖mean_i â_i − mean_i b̂_i‖.
- The cone effect (Liang et al. 2022): the mean cosine over pairs i ≠ j.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmlab.exercises._core import Case, Exercise, Mistake
from mmlab.exercises._inputs import F32, F64, SIZES, label, paired, randn, rows
from mmlab.metrics import alignment, mean_pairwise_cosine, modality_gap, uniformity

CLOUDS = ((8, 5, F64), (3, 4, F32), (2, 3, F64), (16, 8, F32), (5, 2, F64))
"""(N, D, dtype) of one-cloud cases (N ≥ 2: these measures compare pairs of rows)."""

_IMPORTS = "import torch\nimport torch.nn.functional as F\n\n\n"


def _pair_cases(gen: torch.Generator) -> list[Case]:
    out = []
    for B, D, dtype in SIZES:
        a, b = paired(gen, B, D, dtype)
        out.append(Case(label(B=B, D=D, dtype=dtype), {"a": a, "b": b}, grad=("a", "b")))
    return out


def _cloud_cases(gen: torch.Generator) -> list[Case]:
    out = []
    for N, D, dtype in CLOUDS:
        x = rows(gen, N, D, F64) + 0.5 * randn(gen, 1, D)  # a shared offset: a loose cone
        out.append(Case(label(N=N, D=D, dtype=dtype), {"x": x.to(dtype)}, grad=("x",)))
    return out


def _n(x):
    return F.normalize(x, dim=1)


def _offdiag_mean(m):
    n = m.shape[0]
    return (m.sum() - m.diagonal().sum()) / (n * (n - 1))


ALIGNMENT = Exercise(
    name="alignment", notebook="04", signature="alignment(a, b) -> 0-d tensor",
    summary="Wang & Isola's alignment: mean_i ‖â_i − b̂_i‖² over the paired rows.",
    stub=_IMPORTS + '''def alignment(a, b):
    """Alignment of positive pairs (Wang & Isola 2020): mean_i ‖â_i − b̂_i‖².

    a, b: (B, D) float tensors paired row by row (not normalised yet; â = a / ‖a‖).
    Returns a 0-d tensor: 0 when every pair points the same way, 4 when all are opposite.
    """
    raise NotImplementedError''',
    solution_code=_IMPORTS + '''def alignment(a, b):
    diff = F.normalize(a, dim=1) - F.normalize(b, dim=1)   # (B, D): â_i − b̂_i
    return diff.pow(2).sum(dim=1).mean()                    # mean_i of ‖â_i − b̂_i‖²''',
    hints=("Normalise the rows first (F.normalize(x, dim=1)); then take the difference of "
           "each pair, â_i − b̂_i.",
           "‖v‖² is the sum over the D coordinates of v²: .pow(2).sum(dim=1) gives one number "
           "per pair, and .mean() averages over the B pairs."),
    reference=lambda a, b: alignment(a, b),
    reference_name="mmlab.metrics.alignment(a, b)",
    make_cases=_pair_cases,
    mistakes=(
        Mistake("no L2 normalisation: your value uses the raw rows. Normalise first: "
                "â = F.normalize(a, dim=1).", lambda a, b: (a - b).pow(2).sum(1).mean()),
        Mistake("the distance is not squared: alignment uses ‖â_i − b̂_i‖², not ‖â_i − b̂_i‖.",
                lambda a, b: alignment(a, b, alpha=1)),
        Mistake("a mean over the D coordinates as well: ‖v‖² is the *sum* of v_d² over d; "
                "only the B pairs are averaged.",
                lambda a, b: (_n(a) - _n(b)).pow(2).mean()),
        Mistake("a sum over the pairs where a mean is meant: divide by B.",
                lambda a, b: a.shape[0] * alignment(a, b)),
    ),
)

UNIFORMITY = Exercise(
    name="uniformity", notebook="04", signature="uniformity(x) -> 0-d tensor",
    summary="Wang & Isola's uniformity: log mean_{i<j} exp(−2‖x̂_i − x̂_j‖²).",
    stub=_IMPORTS + '''def uniformity(x):
    """Uniformity (Wang & Isola 2020): log of the mean over pairs i < j of exp(−2‖x̂_i − x̂_j‖²).

    x: (N, D) float tensor, N ≥ 2 (not normalised yet; x̂ = x / ‖x‖).
    Returns a 0-d tensor: 0 when all points coincide, lower when they spread over the sphere.
    """
    raise NotImplementedError''',
    solution_code=_IMPORTS + '''def uniformity(x):
    x_hat = F.normalize(x, dim=1)                          # (N, D)
    sq_dist = torch.pdist(x_hat).pow(2)                    # (N(N−1)/2,) ‖x̂_i − x̂_j‖², i < j
    return sq_dist.mul(-2).exp().mean().log()''',
    hints=("Normalise the rows, then list the squared distances of every pair i < j. "
           "torch.pdist(x_hat) gives the distances of exactly those pairs.",
           "exp(−2 d²) per pair, the mean over the N(N−1)/2 pairs, then the log. (The pairs "
           "i = j have distance 0: leave them out.)"),
    reference=lambda x: uniformity(x),
    reference_name="mmlab.metrics.uniformity(x)",
    make_cases=_cloud_cases,
    mistakes=(
        Mistake("you included the pairs i = j (distance 0, so exp(0) = 1 each), which pulls the "
                "value up. Average over the pairs i < j only.",
                lambda x: torch.exp(-2 * torch.cdist(_n(x), _n(x)).pow(2)).mean().log()),
        Mistake("no L2 normalisation: your value uses the raw rows. Normalise first.",
                lambda x: torch.pdist(x).pow(2).mul(-2).exp().mean().log()),
        Mistake("the factor 2 is missing: the exponent is −2‖x̂_i − x̂_j‖² (t = 2).",
                lambda x: uniformity(x, t=1)),
        Mistake("the distance is not squared: use exp(−2‖x̂_i − x̂_j‖²).",
                lambda x: torch.pdist(_n(x)).mul(-2).exp().mean().log()),
        Mistake("the log is missing: uniformity is the log of the mean.",
                lambda x: uniformity(x).exp()),
        Mistake("a sum over the pairs inside the log where a mean is meant: divide by the "
                "N(N−1)/2 pairs before taking the log.",
                lambda x: torch.pdist(_n(x)).pow(2).mul(-2).exp().sum().log()),
    ),
)

MODALITY_GAP = Exercise(
    name="modality_gap", notebook="04", signature="modality_gap(a, b) -> 0-d tensor",
    summary="Liang et al.'s modality gap: ‖mean_i â_i − mean_i b̂_i‖, the distance of the centres.",
    stub=_IMPORTS + '''def modality_gap(a, b):
    """The modality gap (Liang et al. 2022): ‖mean_i â_i − mean_i b̂_i‖.

    a, b: (B, D) float tensors, one batch per modality (not normalised yet).
    Returns a 0-d tensor: the distance between the centres of the two clouds on the sphere.
    """
    raise NotImplementedError''',
    solution_code=_IMPORTS + '''def modality_gap(a, b):
    centre_a = F.normalize(a, dim=1).mean(dim=0)           # (D,)
    centre_b = F.normalize(b, dim=1).mean(dim=0)           # (D,)
    return (centre_a - centre_b).norm()''',
    hints=("Put each cloud on the unit sphere, then find its centre: the mean over the rows, "
           ".mean(dim=0), a (D,) vector.",
           "The gap is the length of the difference of the two centres: "
           "(centre_a − centre_b).norm(). Not squared, and not a mean of per-pair distances."),
    reference=lambda a, b: modality_gap(a, b),
    reference_name="mmlab.metrics.modality_gap(a, b)",
    make_cases=_pair_cases,
    mistakes=(
        Mistake("no L2 normalisation: your centres are means of the raw rows. Normalise first.",
                lambda a, b: (a.mean(0) - b.mean(0)).norm()),
        Mistake("a mean of per-pair distances, mean_i ‖â_i − b̂_i‖: the gap is the distance "
                "between the two centres, ‖mean_i â_i − mean_i b̂_i‖ (average first).",
                lambda a, b: (_n(a) - _n(b)).norm(dim=1).mean()),
        Mistake("the squared distance: the gap is ‖Δ‖, not ‖Δ‖².",
                lambda a, b: modality_gap(a, b).pow(2)),
    ),
)

MEAN_PAIRWISE_COSINE = Exercise(
    name="mean_pairwise_cosine", notebook="01",
    signature="mean_pairwise_cosine(x) -> 0-d tensor",
    summary="The cone effect: the mean of cos(x_i, x_j) over all pairs i ≠ j.",
    stub=_IMPORTS + '''def mean_pairwise_cosine(x):
    """The mean cosine over pairs of different rows, mean_{i≠j} x̂_i·x̂_j (the cone effect).

    x: (N, D) float tensor, N ≥ 2 (not normalised yet).
    Returns a 0-d tensor: near 1 when the rows sit in a narrow cone, near 0 when spread out.
    """
    raise NotImplementedError''',
    solution_code=_IMPORTS + '''def mean_pairwise_cosine(x):
    x_hat = F.normalize(x, dim=1)                          # (N, D)
    cos = x_hat @ x_hat.T                                  # (N, N) every pair's cosine
    n = x.shape[0]
    off_diagonal = ~torch.eye(n, dtype=torch.bool)         # leave out i = j (cos = 1)
    return cos[off_diagonal].mean()''',
    hints=("With normalised rows, x̂ x̂ᵀ is the (N, N) matrix of all cosines.",
           "Its diagonal holds cos(x_i, x_i) = 1, which is not a pair: average only the "
           "N(N−1) off-diagonal entries (mask with ~torch.eye(N, dtype=torch.bool))."),
    reference=lambda x: mean_pairwise_cosine(x),
    reference_name="mmlab.metrics.mean_pairwise_cosine(x)",
    make_cases=_cloud_cases,
    mistakes=(
        Mistake("you included the diagonal i = j (cos = 1), which pulls the mean towards 1. "
                "Average over the pairs i ≠ j only.",
                lambda x: (_n(x) @ _n(x).T).mean()),
        Mistake("no L2 normalisation: your value averages dot products, not cosines.",
                lambda x: _offdiag_mean(x @ x.T)),
        Mistake("a sum where a mean is meant: divide by the N(N−1) pairs.",
                lambda x: _offdiag_mean(_n(x) @ _n(x).T) * x.shape[0] * (x.shape[0] - 1)),
    ),
)

EXERCISES = (MEAN_PAIRWISE_COSINE, ALIGNMENT, UNIFORMITY, MODALITY_GAP)
