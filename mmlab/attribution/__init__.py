"""Attribution: which patches, frames or tokens drive a similarity?

Four ways to explain a score `s = cos(z_i, z_j)` of a contrastive model, from cheapest to
most principled:

- **Attention rollout** (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers"):
  multiply the head-averaged attention maps of all layers, with the residual stream as `+ I`.
  Class-agnostic: it ignores which score is being explained.
- **Gradient-weighted attention** (Chefer, Gur & Wolf 2021, "Generic Attention-model
  Explainability for Interpreting Bi-Modal and Encoder-Decoder Transformers", Eqs. 5-6):
  weight every attention map by its gradient `∂s/∂A`, keep the positive part and accumulate
  `R ← R + Ā·R` through the layers.
- **Input × gradient** (Shrikumar et al. 2016): `(x − x') ⊙ ∇s(x)`, a one-step linearisation.
- **Integrated gradients** (Sundararajan, Taly & Yan 2017, "Axiomatic Attribution for Deep
  Networks"): average the gradient along the straight path from a baseline `x'` to `x`;
  the attributions then sum to `s(x) − s(x')` (completeness).

Plus the helpers a notebook needs to judge an explanation: the share of positive attribution
mass inside the object's bounding box or inside the time span where a phrase is spoken, the
sanity check of Adebayo et al. 2018 ("Sanity Checks for Saliency Maps": a randomly
re-initialised model must give a different map), and Spearman rank correlation to compare two maps.

One concept per file:

    attention.py             attention_rollout, gradient_attention
    integrated_gradients.py  integrated_gradients, IGResult
    similarity.py            similarity_attribution (patches, pixels, frames, tokens)
    towers.py                the per-modality explainers behind it
    result.py                Attribution, the explanation it returns
    regions.py               attribution_in_box, box_share, upsample_to_image,
                             attribution_in_span, span_share
    sanity.py                randomize_weights, rank_correlation

Notation as in docs/DESIGN.md: `B` batch, `h` heads, `T` tokens, `A_l` the attention of layer
`l` with shape (B, h, T, T), rows summing to 1.
"""

from mmlab.attribution.attention import HEAD_FUSIONS, attention_rollout, gradient_attention
from mmlab.attribution.integrated_gradients import IG_METHODS, IGResult, integrated_gradients
from mmlab.attribution.regions import (attribution_in_box, attribution_in_span, box_share,
                                       span_share, upsample_to_image)
from mmlab.attribution.sanity import randomize_weights, rank_correlation
from mmlab.attribution.similarity import (ATTENTION_METHODS, SIMILARITY_METHODS, Attribution,
                                          similarity_attribution)

__all__ = [
    "Attribution", "IGResult", "attention_rollout", "gradient_attention", "integrated_gradients",
    "similarity_attribution", "attribution_in_box", "box_share", "upsample_to_image",
    "attribution_in_span", "span_share", "randomize_weights", "rank_correlation",
]
