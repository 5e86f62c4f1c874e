"""Fusion operators with one interface: `op(features, present=None) -> (B, out_dim)`.

`features` is a dict modality → (B, D_m) (the order of `dims` fixes the modality order) and
`present` an optional dict modality → bool (B,) (a missing key means "all present"). Every
operator has `out_dim` and defines what a missing modality means (see each docstring);
operators that cannot work without some modality raise a ValueError naming it and an
alternative. Attention operators accept `return_attention=True`.

    from mmlab.fusion import OPERATORS, make_fusion
    for name in OPERATORS:
        op = make_fusion(name, {"image": 64, "audio": 32}, out_dim=16)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmlab._checks import check_choice
from mmlab.fusion._base import FusionOperator, check_dims
from mmlab.fusion.attention import (CoAttentionFusion, CrossAttentionFusion, MultiHeadAttention,
                                    TransformerFusion)
from mmlab.fusion.basic import ConcatFusion, GatedFusion, ProductFusion, SumFusion
from mmlab.fusion.classifier import FusionClassifier
from mmlab.fusion.contrastive import FusedContrastiveModel
from mmlab.fusion.dropout import modality_dropout
from mmlab.fusion.film import FiLMFusion
from mmlab.fusion.late import LateFusion
from mmlab.fusion.modulation import modulate_gradients_, ogm_ge_coefficients, scale_gradient
from mmlab.fusion.tensor import (BilinearFusion, LowRankTensorFusion, TensorFusion,
                                 outer_product_features)

OPERATORS: dict[str, type[FusionOperator]] = {
    "concat": ConcatFusion,
    "sum": SumFusion,
    "product": ProductFusion,
    "gated": GatedFusion,
    "bilinear": BilinearFusion,
    "tensor": TensorFusion,
    "low_rank": LowRankTensorFusion,
    "film": FiLMFusion,
    "cross_attention": CrossAttentionFusion,
    "co_attention": CoAttentionFusion,
    "transformer": TransformerFusion,
    "late": LateFusion,
}


def make_fusion(name: str, dims: Mapping[str, int], out_dim: int, **kw: Any) -> FusionOperator:
    """Build a fusion operator by its registry name.

    Args:
        name: a key of `OPERATORS` ("concat", "sum", ..., "late").
        dims: modality name → D_m.
        out_dim: the output width (for "late": the number of classes).
        **kw: extra arguments of the operator (e.g. `rank=`, `heads=`, `condition=`, `query=`).
    Returns:
        The operator, an `nn.Module` with `out_dim`.
    """
    check_choice("name", name, OPERATORS)
    if name == "late":
        return LateFusion(dims, num_classes=out_dim, **kw)
    return OPERATORS[name](dims, out_dim=out_dim, **kw)


__all__ = [
    "FusionOperator", "check_dims", "ConcatFusion", "SumFusion", "ProductFusion", "GatedFusion",
    "BilinearFusion", "TensorFusion", "LowRankTensorFusion", "outer_product_features", "FiLMFusion",
    "CrossAttentionFusion", "CoAttentionFusion", "TransformerFusion", "MultiHeadAttention",
    "LateFusion",
    "FusionClassifier", "modality_dropout", "OPERATORS", "make_fusion",
    "FusedContrastiveModel", "ogm_ge_coefficients", "scale_gradient", "modulate_gradients_",
]
