"""Projection heads: the map g_m from an encoder's features to the shared space.

CLIP (Radford et al., 2021) uses a linear projection, SimCLR (Chen et al., 2020) an MLP. The head
returns the raw projection g_m(h); L2 normalisation happens once, in `mmlab.model.ContrastiveModel`
(or in the loss, which normalises by default).
"""

from __future__ import annotations

from torch import Tensor, nn

from mmlab._checks import check_choice, check_int, check_probability, check_tensor

__all__ = ["ProjectionHead"]


class ProjectionHead(nn.Module):
    """Linear or MLP projection to the shared space: `g(h)` (not normalised; the model does that).

    Parameters: linear `in·out + out`; mlp `in·hidden + hidden + hidden·out + out`.

    Args:
        in_dim: encoder feature width.
        out_dim: shared embedding width D.
        kind: "linear" (CLIP) or "mlp" (SimCLR: Linear, GELU, Dropout, Linear).
        hidden: hidden width of the MLP (default: in_dim).
        dropout: dropout after the hidden activation (mlp only).
    """

    KINDS = ("linear", "mlp")

    def __init__(self, in_dim: int, out_dim: int, kind: str = "linear", hidden: int | None = None,
                 dropout: float = 0.0) -> None:
        super().__init__()
        check_int("in_dim", in_dim)
        check_int("out_dim", out_dim)
        check_choice("kind", kind, self.KINDS)
        check_probability("dropout", dropout, inclusive=False)
        self.in_dim, self.out_dim, self.kind = in_dim, out_dim, kind
        if kind == "linear":
            self.net: nn.Module = nn.Linear(in_dim, out_dim)
        else:
            hidden = in_dim if hidden is None else check_int("hidden", hidden)
            self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                     nn.Linear(hidden, out_dim))

    def forward(self, h: Tensor) -> Tensor:
        """Args: h (B, in_dim). Returns: g(h) (B, out_dim)."""
        check_tensor("h", h, ndim=2, what=f"of shape (B, in_dim={self.in_dim})")
        if h.shape[1] != self.in_dim:
            raise ValueError(f"`h` must be a tensor of shape (B, in_dim={self.in_dim}), "
                             f"got {tuple(h.shape)}.")
        return self.net(h)  # (B, out_dim)
