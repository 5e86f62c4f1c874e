"""Notebook 05 (three modalities): Symile's multilinear inner product and pairwise CLIP.

- MIP (Saporta et al. 2024): MIP(a_i, b_i, c_i) = Σ_d a_id b_id c_id, row by row.
- Pairwise CLIP: the mean of InfoNCE over the three pairs (a, b), (a, c), (b, c).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmlab.exercises._core import Case, Exercise, Mistake
from mmlab.exercises._inputs import F32, F64, SIZES, label, paired, rows
from mmlab.losses import info_nce, multilinear_inner_product, pairwise_info_nce

_IMPORTS = "import torch\nimport torch.nn.functional as F\n\n\n"


def _triple_cases(gen: torch.Generator) -> list[Case]:
    out = []
    for B, D, dtype in SIZES:
        a, b = paired(gen, B, D, dtype)
        c = rows(gen, B, D, F64).to(dtype) + 0.5 * b
        out.append(Case(label(B=B, D=D, dtype=dtype), {"a": a, "b": b, "c": c},
                        grad=("a", "b", "c")))
    return out


def _n(x):
    return F.normalize(x, dim=1)


SYMILE_MIP = Exercise(
    name="symile_mip", notebook="05", signature="symile_mip(a, b, c) -> (B,) tensor",
    summary="Symile's multilinear inner product of each row: Σ_d a_id b_id c_id.",
    stub=_IMPORTS + '''def symile_mip(a, b, c):
    """The multilinear inner product (Saporta et al. 2024), the dot product of three vectors.

    a, b, c: (B, D) float tensors, paired row by row (used as they are: no normalisation).
    Returns a (B,) tensor: entry i is MIP(a_i, b_i, c_i) = Σ_d a_id · b_id · c_id.
    """
    raise NotImplementedError''',
    solution_code=_IMPORTS + '''def symile_mip(a, b, c):
    return (a * b * c).sum(dim=1)     # (B, D) product of the three, summed over d''',
    hints=("With two vectors this would be the dot product, (a * b).sum(dim=1). Multiply all "
           "three element by element first.",
           "(a * b * c) is (B, D); sum over the coordinates (dim=1), not over the rows, to get "
           "one number per row."),
    reference=lambda a, b, c: multilinear_inner_product(a, b, c),
    reference_name="mmlab.losses.multilinear_inner_product(a, b, c)",
    make_cases=_triple_cases,
    mistakes=(
        Mistake("you normalised the rows first; the MIP takes the vectors as they are (the "
                "Symile loss normalises before calling it).",
                lambda a, b, c: (_n(a) * _n(b) * _n(c)).sum(1)),
        Mistake("that is the sum of the three pairwise dot products, a·b + a·c + b·c; the MIP "
                "multiplies all three coordinates together: Σ_d a_d b_d c_d.",
                lambda a, b, c: (a * b).sum(1) + (a * c).sum(1) + (b * c).sum(1)),
        Mistake("a mean over the D coordinates where a sum is meant.",
                lambda a, b, c: (a * b * c).mean(1)),
        Mistake("the product of two dot products, (a·b)(b·c), is not the MIP: multiply the "
                "coordinates first, then sum.", lambda a, b, c: (a * b).sum(1) * (b * c).sum(1)),
    ),
)


def _pairwise_cases(gen: torch.Generator) -> list[Case]:
    cases = _triple_cases(gen)
    return [Case(f"{c.label}, temperature = {t}", {**c.args, "temperature": t}, c.grad)
            for c, t in zip(cases, (0.1, 0.5, 0.07, 0.2, 0.3))]


PAIRWISE_INFO_NCE = Exercise(
    name="pairwise_info_nce", notebook="05",
    signature="pairwise_info_nce(a, b, c, temperature) -> 0-d tensor",
    summary="Pairwise CLIP for three modalities: the mean of InfoNCE over (a, b), (a, c), (b, c).",
    stub=_IMPORTS + '''def pairwise_info_nce(a, b, c, temperature):
    """Pairwise CLIP over three modalities: the mean of the symmetric InfoNCE of every pair.

    a, b, c: (B, D) float tensors, paired row by row (not normalised yet); temperature: τ > 0.
    Returns a 0-d tensor: (1/3) [info_nce(a, b) + info_nce(a, c) + info_nce(b, c)], each the
    symmetric CLIP loss ½[CE(S/τ, I) + CE(Sᵀ/τ, I)] of that pair at temperature τ.
    """
    raise NotImplementedError''',
    solution_code=_IMPORTS + '''def clip_loss(x, y, temperature):
    logits = F.normalize(x, dim=1) @ F.normalize(y, dim=1).T / temperature   # (B, B)
    labels = torch.arange(x.shape[0])
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def pairwise_info_nce(a, b, c, temperature):
    pairs = [(a, b), (a, c), (b, c)]
    return sum(clip_loss(x, y, temperature) for x, y in pairs) / len(pairs)''',
    hints=("Write (or reuse) the two-modality CLIP loss first; three modalities have three "
           "pairs: (a, b), (a, c) and (b, c).",
           "Average the three pair losses (divide their sum by 3). Leaving out (b, c) gives the "
           "anchor objective with a as the anchor, a different model."),
    reference=lambda a, b, c, t: pairwise_info_nce(a, b, c, temperature=t).loss,
    reference_name="mmlab.losses.pairwise_info_nce(a, b, c, temperature=τ).loss",
    make_cases=_pairwise_cases,
    mistakes=(
        Mistake("the sum of the three pair losses: take their mean.",
                lambda a, b, c, t: 3 * pairwise_info_nce(a, b, c, temperature=t).loss),
        Mistake("only the pairs with a, (a, b) and (a, c): that is the anchor objective "
                "(ImageBind) with a as the anchor. Pairwise CLIP also trains (b, c).",
                lambda a, b, c, t: (info_nce(a, b, t).loss + info_nce(a, c, t).loss) / 2),
        Mistake("τ is missing: your value is the loss at τ = 1.",
                lambda a, b, c, t: pairwise_info_nce(a, b, c, temperature=1.0).loss),
        Mistake("no L2 normalisation: your logits use raw dot products.",
                lambda a, b, c, t: pairwise_info_nce(a, b, c, temperature=t,
                                                     normalize=False).loss),
    ),
)

EXERCISES = (SYMILE_MIP, PAIRWISE_INFO_NCE)
