"""CLIP-Lite: a Jensen–Shannon mutual-information bound with one negative per positive
(Shrivastava et al. 2021, "CLIP-Lite: Information Efficient Visual Representation Learning
with Language Supervision"; the JSD estimator of Nowozin et al. 2016 / Hjelm et al. 2019).

With the critic T(x, y) = cos(x, y)/τ, the JSD lower bound on I(a; b) is

    I_JSD = E_{p(a,b)}[−softplus(−T(a, b))] − E_{p(a)p(b)}[softplus(T(a, b'))],

and the loss is −I_JSD estimated on the batch. The one negative for a_i is b_{i−1} (the
batch rolled by one row), a sample from the product of the marginals:

    loss = (1/B) Σ_i softplus(−T(a_i, b_i)) + (1/B) Σ_i softplus(T(a_i, b_{(i−1) mod B})).

With all critic scores 0 the loss is exactly 2 ln 2. With B = 1 the negative is the positive
itself, so the loss cannot go below 2 ln 2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mmlab.losses._prep import as_scale, in_float32, prepare
from mmlab.losses.output import DEFAULT_TEMPERATURE, LossOutput


@in_float32
def clip_lite(a: Tensor, b: Tensor, temperature: float | Tensor = DEFAULT_TEMPERATURE, *,
              normalize: bool = True) -> LossOutput:
    """CLIP-Lite JSD loss: mean softplus(−T(a_i, b_i)) + mean softplus(T(a_i, b_{i−1})),
    T = S/τ.

    Shrivastava et al. 2021. See the module docstring for the estimator.

    Args:
        a: (B, D) embeddings; row i is paired with row i of `b`.
        b: (B, D) embeddings.
        temperature: τ > 0, a float or a 0-d tensor.
        normalize: L2-normalise a and b first.
    Returns:
        LossOutput with `logits` None (no matrix is built) and terms {"pos", "neg"} (they sum
        to the loss).
    """
    a, b = prepare(("a", "b"), (a, b), normalize)
    scale = as_scale(temperature, a)
    a = a * scale  # (B, D)
    t_pos = (a * b).sum(dim=-1)  # (B,): T(a_i, b_i)
    t_neg = (a * torch.roll(b, shifts=1, dims=0)).sum(dim=-1)  # (B,): T(a_i, b_{i−1})
    pos = -F.logsigmoid(t_pos).mean()  # softplus(−T), exact (F.softplus cuts off at 20)
    neg = -F.logsigmoid(-t_neg).mean()  # softplus(T)
    return LossOutput(pos + neg, None, {"pos": pos, "neg": neg})
