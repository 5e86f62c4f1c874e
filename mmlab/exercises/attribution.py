"""Notebook 07 (attention and attribution): attention rollout (Abnar & Zuidema 2020).

    Â_l = normalise_rows(mean_h A_l + I),   rollout = Â_L · … · Â_2 · Â_1.
"""

from __future__ import annotations

import torch

from mmlab.attribution import attention_rollout
from mmlab.exercises._core import Case, Exercise, Mistake
from mmlab.exercises._inputs import F32, F64, label, randn

_IMPORTS = "import torch\n\n\n"


def _attention_cases(gen: torch.Generator) -> list[Case]:
    out = []
    for L, B, H, T, dtype in ((3, 2, 2, 5, F64), (2, 1, 1, 3, F32), (1, 3, 4, 4, F64),
                              (4, 2, 3, 6, F32)):
        maps = [torch.softmax(2 * randn(gen, B, H, T, T, dtype=dtype), dim=-1) for _ in range(L)]
        out.append(Case(label(layers=L, B=B, heads=H, T=T, dtype=dtype), {"attentions": maps},
                        grad=("attentions",)))
    return out


def _fused(attentions, residual=True, normalise=True):
    out = []
    for a in attentions:
        f = a.mean(dim=1)
        if residual:
            f = f + torch.eye(f.shape[-1], dtype=f.dtype)
        out.append(f / f.sum(dim=-1, keepdim=True) if normalise else f)
    return out


def _product(mats, reverse=False):
    r = torch.eye(mats[0].shape[-1], dtype=mats[0].dtype).expand_as(mats[0])
    for m in mats:
        r = r @ m if reverse else m @ r
    return r


ATTENTION_ROLLOUT = Exercise(
    name="attention_rollout", notebook="07",
    signature="attention_rollout(attentions) -> (B, T, T) tensor",
    summary="Attention rollout: the product over layers of row-normalised (mean-head A + I).",
    stub=_IMPORTS + '''def attention_rollout(attentions):
    """Attention rollout (Abnar & Zuidema 2020): how much each input token flows into each output.

    attentions: a list with one (B, heads, T, T) tensor per layer, first layer first; each
        row of each map sums to 1.
    For every layer l: Â_l = (mean over heads of A_l) + I, then each row divided by its sum.
    Returns the (B, T, T) product Â_L · … · Â_2 · Â_1 (the last layer on the left).
    """
    raise NotImplementedError''',
    solution_code=_IMPORTS + '''def attention_rollout(attentions):
    B, _, T, _ = attentions[0].shape
    eye = torch.eye(T, dtype=attentions[0].dtype)          # the skip connection
    rollout = eye.expand(B, T, T)
    for a in attentions:                                    # first layer first
        a_hat = a.mean(dim=1) + eye                         # (B, T, T): heads averaged, + I
        a_hat = a_hat / a_hat.sum(dim=-1, keepdim=True)     # rows sum to 1 again
        rollout = a_hat @ rollout                           # Â_l · (Â_{l−1} ⋯ Â_1)
    return rollout''',
    hints=("Per layer: average the heads (dim=1), add the identity torch.eye(T) for the "
           "residual connection, and divide each row by its sum.",
           "Start from the identity and multiply each new layer on the left: rollout = a_hat @ "
           "rollout. The @ operator multiplies the last two dimensions batch by batch."),
    reference=lambda attentions: attention_rollout(attentions),
    reference_name="mmlab.attribution.attention_rollout(attentions)",
    make_cases=_attention_cases,
    mistakes=(
        Mistake("the identity for the residual connection is missing: Â_l = normalise_rows("
                "mean_h A_l + I).", lambda att: attention_rollout(att, residual=False)),
        Mistake("the rows are not renormalised after adding I: divide each row of "
                "mean_h A_l + I by its sum (it is 2).",
                lambda att: _product(_fused(att, normalise=False))),
        Mistake("the layers are multiplied in the wrong order: the last layer goes on the left, "
                "rollout = Â_L · … · Â_1 (rollout = a_hat @ rollout).",
                lambda att: _product(_fused(att), reverse=True)),
        Mistake("the heads are fused with a max; rollout averages them (mean over dim=1).",
                lambda att: attention_rollout(att, head_fusion="max")),
        Mistake("only the last layer: rollout multiplies the maps of every layer.",
                lambda att: _fused(att)[-1]),
    ),
)

EXERCISES = (ATTENTION_ROLLOUT,)
