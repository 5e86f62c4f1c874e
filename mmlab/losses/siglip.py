"""The sigmoid loss for language–image pre-training, SigLIP (Zhai et al. 2023), and its module.

Every pair (i, j) is an independent binary classification, positive on the diagonal:

    L_ij = cos(a_i, b_j)/τ + bias,   z_ij = +1 if i = j else −1,
    loss = −(1/B) Σ_i Σ_j log σ(z_ij L_ij).

There is no softmax over the batch, so no normalisation across rows; the bias (init −10)
offsets the B−1 : 1 imbalance of negatives to positives at the start of training.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmlab.losses._prep import as_bias, as_scale, as_tensor_scalar, in_float32, prepare
from mmlab.losses.chunking import check_chunk_size, resolve_chunk_size
from mmlab.losses.fused import fused_sigmoid_sum
from mmlab.losses.output import LossOutput
from mmlab.losses.temperature import LearnableTemperature


@in_float32
def siglip(a: Tensor, b: Tensor, temperature: float | Tensor = 0.1, bias: float | Tensor = -10.0,
           *, normalize: bool = True, chunk_size: int | str | None = None) -> LossOutput:
    """SigLIP loss −(1/B) Σ_i Σ_j log σ(z_ij (S_ij/τ + bias)), z = +1 on the diagonal, −1
    elsewhere.

    Zhai et al. 2023 "Sigmoid Loss for Language Image Pre-Training".

    Args:
        a: (B, D) embeddings; row i is paired with row i of `b`.
        b: (B, D) embeddings.
        temperature: τ > 0 (float or 0-d tensor); SigLIP initialises 1/τ = 10.
        bias: the learnable offset b (float or 0-d tensor); SigLIP initialises −10.
        normalize: L2-normalise a and b first.
        chunk_size: None: choose (see `mmlab.losses.chunking`); an int K: blocks of K rows, loss
            and gradient in one pass, never the (B, B) logits (`logits` is then None); "full".
    Returns:
        LossOutput with `logits` S/τ + bias (B, B) and terms {"pos": −(1/B) Σ_i log σ(L_ii),
        "neg": −(1/B) Σ_{i≠j} log σ(−L_ij)} (pos + neg = loss).
    """
    a, b = prepare(("a", "b"), (a, b), normalize)
    scale = as_scale(temperature, a)
    bias = as_bias(bias, a)
    chunk_size = resolve_chunk_size(chunk_size, a.shape[0], b.shape[0], a.device)
    n = a.shape[0]
    if chunk_size is not None:
        a_scaled = a * scale  # (B, D)
        loss = fused_sigmoid_sum(a_scaled, b, as_tensor_scalar(bias, a), chunk_size) / n
        pos_logits = (a_scaled * b).sum(dim=-1) + bias  # (B,)
        logits = None
    else:
        logits = (a * scale) @ b.T + bias  # (B, B)
        pos_logits = logits.diagonal()  # (B,)
        # Σ_ij −log σ(z_ij L_ij) without a (B, B) sign matrix: score every pair as a negative,
        # −log σ(−L_ij), then turn the diagonal positive with −log σ(L) = −log σ(−L) − L.
        loss = (-F.logsigmoid(-logits).sum() - pos_logits.sum()) / n
    pos = -F.logsigmoid(pos_logits).sum() / n
    return LossOutput(loss, logits, {"pos": pos, "neg": loss - pos})


class SigLipLoss(LearnableTemperature):
    """SigLIP loss with learnable `logit_scale = log(1/τ)` (init log 10) and `bias` (init −10).

    The clamp `logit_scale ≤ MAX_LOGIT_SCALE = log 100` happens in `forward` on the value used;
    `clamp_()` clamps the stored parameter in place (call it after each optimiser step).

    Args:
        init_temperature: initial τ (SigLIP: 0.1, i.e. t' = log 10).
        init_bias: initial bias (SigLIP: −10).
        learnable: whether `logit_scale` and `bias` receive gradients.
        normalize: L2-normalise inside the loss.
        chunk_size: passed to `siglip` (None: choose; an int K: blocks of K rows; "full").
    """

    multiway = False

    def __init__(self, init_temperature: float = 0.1, init_bias: float = -10.0,
                 learnable: bool = True, *, normalize: bool = True,
                 chunk_size: int | str | None = None) -> None:
        super().__init__(init_temperature, learnable)
        self.bias = nn.Parameter(torch.tensor(float(as_bias(init_bias, torch.empty(0)))),
                                 requires_grad=bool(learnable))
        self.normalize = normalize
        self.chunk_size = check_chunk_size(chunk_size)

    def forward(self, a: Tensor, b: Tensor) -> LossOutput:
        """Args: a, b: (B, D) paired embeddings. Returns: `siglip(a, b, τ, bias)`."""
        return siglip(a, b, 1.0 / self.scale(), self.bias, normalize=self.normalize,
                      chunk_size=self.chunk_size)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature:.4g}, bias={float(self.bias.detach()):.4g}"
