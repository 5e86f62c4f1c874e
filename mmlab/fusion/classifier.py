"""A small classification head on top of any fusion operator, for the fusion notebook.

logits = head(fusion(features, present)), with head a linear layer (or Linear → GELU → Linear
when `hidden` is given). LateFusion already returns class logits, so it gets no head.
"""

from __future__ import annotations

from torch import Tensor, nn

from mmlab._checks import check_int
from mmlab.fusion._base import FusionOperator
from mmlab.fusion.late import LateFusion


class FusionClassifier(nn.Module):
    """logits = head(fusion(features, present)): (B, num_classes).

    Args:
        fusion: any fusion operator (an `nn.Module` with `out_dim` and the fusion interface).
        num_classes: C.
        hidden: if given, a hidden layer of this width (Linear → GELU → Linear); else one Linear.
    """

    def __init__(self, fusion: FusionOperator, num_classes: int, hidden: int | None = None) -> None:
        super().__init__()
        if (not isinstance(fusion, nn.Module)
                or not isinstance(getattr(fusion, "out_dim", None), int)):
            raise TypeError("`fusion` must be a fusion operator "
                            "(an nn.Module with an int `out_dim`), got "
                            f"{type(fusion).__name__}; build one with "
                            "mmlab.fusion.make_fusion(name, dims, out_dim).")
        self.fusion = fusion
        self.num_classes = self.out_dim = check_int("num_classes", num_classes)
        if isinstance(fusion, LateFusion):
            if fusion.out_dim != num_classes:
                raise ValueError(f"LateFusion already outputs logits for {fusion.out_dim} "
                                 f"classes, but `num_classes` is {num_classes}; "
                                 f"build LateFusion(dims, num_classes={num_classes}).")
            if hidden is not None:
                raise ValueError("LateFusion already outputs logits, so `hidden` must be None.")
            self.head: nn.Module = nn.Identity()
        elif hidden is None:
            self.head = nn.Linear(fusion.out_dim, num_classes)
        else:
            check_int("hidden", hidden)
            self.head = nn.Sequential(nn.Linear(fusion.out_dim, hidden), nn.GELU(),
                                      nn.Linear(hidden, num_classes))

    def forward(self, features: dict[str, Tensor], present: dict[str, Tensor] | None = None,
                return_attention: bool = False) -> Tensor | tuple[Tensor, object]:
        """Classify.

        Args:
            features: dict modality → (B, D_m).
            present: optional dict modality → bool (B,).
            return_attention: pass through to an attention operator and return
                `(logits, attention)`.
        Returns:
            logits (B, num_classes), or `(logits, attention)`.
        """
        if return_attention:
            if not getattr(self.fusion, "attends", False):
                raise ValueError(f"{type(self.fusion).__name__} has no attention weights; "
                                 "`return_attention=True` works with CrossAttentionFusion, "
                                 "CoAttentionFusion and TransformerFusion.")
            fused, attn = self.fusion(features, present, return_attention=True)
            return self.head(fused), attn  # (B, C)
        return self.head(self.fusion(features, present))  # (B, C)
